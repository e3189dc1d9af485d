//! The side-loading Lambda's log group, created before the function so that it carries a
//! retention (Lambda would otherwise create it on first invocation, kept forever, untagged).
//!
//! The name is deterministic (`/aws/lambda/<function>`): `find` is an exact match among
//! DescribeLogGroups' prefix results. A group of that name is adopted even without our tags
//! (Lambda itself creates exactly that name); converge then adds the tags.

use std::collections::{BTreeMap, HashMap};

use async_trait::async_trait;
use aws_sdk_cloudwatchlogs::types::LogGroup as AwsLogGroup;

use super::{Aws, ResourceKind, ec2, props};
use crate::aws::{err, tags};
use crate::core::diff::{AttrSpec, Settings, settings};
use crate::core::policy::{self, ArnScope};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{NodeSpec, Props};

pub struct LogGroup;

pub const ATTRS: &[AttrSpec] = &[AttrSpec::update("retention_days", &["lambda.log_retention_days"])];

/// The desired settings (pure).
pub fn desired_settings(retention_days: i32) -> Settings {
    settings([("retention_days", retention_days.to_string())])
}

/// What the group holds now; a group without a retention keeps events forever.
pub fn live_settings(g: &AwsLogGroup) -> Settings {
    settings([(
        "retention_days",
        g.retention_in_days()
            .map_or_else(|| "never expire".to_string(), |d| d.to_string()),
    )])
}

fn tag_map(deployment: &str, key: &str) -> HashMap<String, String> {
    tags::pairs(deployment, key).into_iter().collect()
}

/// The ARN without `:*`, which is what the tagging APIs take.
/// Kept by `create` for a group it made (see `answers`).
struct Created;

fn arn_of(aws: &Aws, g: &AwsLogGroup, name: &str) -> String {
    g.log_group_arn().map(String::from).unwrap_or_else(|| {
        let scope = ArnScope {
            partition: &aws.env.partition,
            region: &aws.env.region,
            account: &aws.env.account_id,
        };
        policy::log_group_arn(&scope, name)
    })
}

async fn describe(aws: &Aws, name: &str) -> Result<Option<AwsLogGroup>, ResourceError> {
    let groups = aws
        .clients
        .logs
        .describe_log_groups()
        .log_group_name_prefix(name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(err("looking up the log group"))?;
    // A prefix also matches `/aws/lambda/pi-sideload-other`: only the exact name counts.
    Ok(groups.into_iter().find(|g| g.log_group_name() == Some(name)))
}

#[async_trait]
impl ResourceKind for LogGroup {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (name,) = props!(cx, LogGroup { name });
        Ok(describe(aws, name).await?.map(|g| {
            Outputs::new()
                .with("id", name.as_str())
                .with("arn", arn_of(aws, &g, name))
        }))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (name,) = props!(cx, LogGroup { name });
        let r = aws
            .clients
            .logs
            .create_log_group()
            .log_group_name(name)
            .set_tags(Some(tag_map(&aws.env.deployment, &cx.spec.key)))
            .send()
            .await
            .map_err(err("creating the log group"));
        match r {
            // New, with the tags asked for and no retention yet.
            Ok(_) => aws.answers.keep(name, Created),
            // Already there (a run that died before recording it): converge repairs it.
            Err(ResourceError {
                class: ErrorClass::AlreadyExists,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        let scope = ArnScope {
            partition: &aws.env.partition,
            region: &aws.env.region,
            account: &aws.env.account_id,
        };
        Ok(Outputs::new()
            .with("id", name.as_str())
            .with("arn", policy::log_group_arn(&scope, name)))
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (retention_days,) = props!(cx, LogGroup { retention_days });
        let name = outputs.id()?.to_string();
        if aws.answers.take::<Created>(&name).is_some() {
            // Created by this process: only the retention is missing.
            ec2::retry_not_found("setting the log group's retention", || async {
                aws.clients
                    .logs
                    .put_retention_policy()
                    .log_group_name(&name)
                    .retention_in_days(*retention_days)
                    .send()
                    .await
                    .map_err(err("setting the log group's retention"))
            })
            .await?;
            return Ok(outputs);
        }
        let group = ec2::retry_not_found("reading the new log group", || async {
            describe(aws, &name)
                .await?
                .ok_or_else(|| ResourceError::new(ErrorClass::NotFound, format!("log group {name} is not visible yet")))
        })
        .await?;
        if group.retention_in_days() != Some(*retention_days) {
            aws.clients
                .logs
                .put_retention_policy()
                .log_group_name(&name)
                .retention_in_days(*retention_days)
                .send()
                .await
                .map_err(err("setting the log group's retention"))?;
        }
        let arn = arn_of(aws, &group, &name);
        let want = tag_map(&aws.env.deployment, &cx.spec.key);
        let have = aws
            .clients
            .logs
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .map_err(err("reading the log group's tags"))?;
        let have = have.tags().cloned().unwrap_or_default();
        if want.iter().any(|(k, v)| have.get(k) != Some(v)) {
            // Only an adopted group (created by Lambda, untagged) gets here.
            aws.clients
                .logs
                .tag_resource()
                .resource_arn(&arn)
                .set_tags(Some(want))
                .send()
                .await
                .map_err(err("tagging the log group"))?;
        }
        Ok(Outputs::new().with("id", name).with("arn", arn))
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, _deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::LogGroup { retention_days, .. } => desired_settings(*retention_days),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(match describe(aws, outputs.id()?).await? {
            Some(g) => Observed::Present(live_settings(&g)),
            None => Observed::Missing,
        })
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let name = cx.outputs.id()?;
        let r = aws
            .clients
            .logs
            .delete_log_group()
            .log_group_name(name)
            .send()
            .await
            .map(|_| ())
            .map_err(err("deleting the log group"));
        match r {
            Err(e) if e.is(ErrorClass::NotFound) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diff::{ChangeAction, diff};

    #[test]
    fn a_retention_change_is_an_update_and_no_retention_shows_as_never() {
        let live = live_settings(&AwsLogGroup::builder().retention_in_days(14).build());
        assert!(diff(ATTRS, &desired_settings(14), &live, None).is_empty());
        let c = diff(ATTRS, &desired_settings(30), &live, None);
        assert_eq!(
            (c[0].old.as_str(), c[0].new.as_str(), c[0].action),
            ("14", "30", ChangeAction::Update)
        );
        let forever = live_settings(&AwsLogGroup::builder().build());
        assert_eq!(
            diff(ATTRS, &desired_settings(30), &forever, None)[0].old,
            "never expire"
        );
    }
}
