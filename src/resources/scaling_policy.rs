//! Simple scaling policies: +1 instance (scale out) and -1 instance (scale in), 300 s cooldown.
//! The CPU alarms invoke them by ARN. PutScalingPolicy is an upsert; its answer carries the
//! PolicyARN on AWS, but not on every implementation, so a missing ARN is read back with
//! DescribePolicies (`resolve_arn`), which is also correct on AWS.

use std::collections::BTreeMap;
use std::future::Future;

use async_trait::async_trait;
use aws_sdk_autoscaling::types as t;

use super::auto_scaling_group::{describe_group, is_deleting, reclassify_missing_group};
use super::{Aws, ResourceKind, ec2, props};
use crate::aws::sdk;
use crate::core::diff::{AttrSpec, Change, Settings, settings};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{NodeSpec, Props};

pub struct ScalingPolicy;

pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::update("adjustment", &[]),
    AttrSpec::update("cooldown_seconds", &[]),
    AttrSpec::update("policy_type", &[]),
];

pub fn desired_settings(adjustment: i32, cooldown_seconds: i32) -> Settings {
    settings([
        ("adjustment", adjustment.to_string()),
        ("cooldown_seconds", cooldown_seconds.to_string()),
        ("policy_type", "SimpleScaling ChangeInCapacity".to_string()),
    ])
}

pub fn live_settings(p: &t::ScalingPolicy) -> Settings {
    settings([
        ("adjustment", p.scaling_adjustment().unwrap_or_default().to_string()),
        ("cooldown_seconds", p.cooldown().unwrap_or_default().to_string()),
        (
            "policy_type",
            format!(
                "{} {}",
                p.policy_type().unwrap_or_default(),
                p.adjustment_type().unwrap_or_default()
            ),
        ),
    ])
}

/// Policy `name` on group `asg`, if it exists.
async fn described(aws: &Aws, asg: &str, name: &str) -> Result<Option<t::ScalingPolicy>, ResourceError> {
    let out = aws
        .clients
        .autoscaling
        .describe_policies()
        .auto_scaling_group_name(asg)
        .policy_names(name)
        .send()
        .await
        .map_err(|e| reclassify_missing_group(sdk("describing the scaling policies", e)));
    let out = match out {
        Err(e) if e.is(ErrorClass::NotFound) => return Ok(None),
        other => other?,
    };
    Ok(out
        .scaling_policies()
        .iter()
        .find(|p| p.policy_name() == Some(name))
        .cloned())
}

/// `<deployment>-scale-out` for a positive adjustment, `<deployment>-scale-in` otherwise.
pub fn policy_name(deployment: &str, adjustment: i32) -> String {
    crate::core::names::scaling_policy(deployment, adjustment)
}

/// The policy's ARN: the one PutScalingPolicy returned, else the one `read_back` finds.
pub async fn resolve_arn<F, Fut>(from_put: Option<&str>, read_back: F) -> Result<String, ResourceError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<Option<String>, ResourceError>>,
{
    if let Some(arn) = from_put.filter(|a| !a.is_empty()) {
        return Ok(arn.to_string());
    }
    read_back()
        .await?
        .ok_or_else(|| ResourceError::new(ErrorClass::NotFound, "the scaling policy has no ARN yet"))
}

/// The ARN of policy `name` on group `asg`, if the policy exists.
async fn described_arn(aws: &Aws, asg: &str, name: &str) -> Result<Option<String>, ResourceError> {
    Ok(described(aws, asg, name)
        .await?
        .and_then(|p| p.policy_arn().map(String::from)))
}

fn outputs(name: &str, arn: &str, asg: &str) -> Outputs {
    Outputs::new().with("id", name).with("arn", arn).with("asg", asg)
}

#[async_trait]
impl ResourceKind for ScalingPolicy {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (asg, adjustment) = props!(cx, ScalingPolicy { asg, adjustment });
        let group = cx.dep_id(asg)?;
        let name = policy_name(&aws.env.deployment, *adjustment);
        Ok(described_arn(aws, group, &name)
            .await?
            .map(|arn| outputs(&name, &arn, group)))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (asg, adjustment, cooldown) = props!(
            cx,
            ScalingPolicy {
                asg,
                adjustment,
                cooldown_seconds
            }
        );
        let group = cx.dep_id(asg)?;
        let name = policy_name(&aws.env.deployment, *adjustment);
        let out = aws
            .clients
            .autoscaling
            .put_scaling_policy()
            .auto_scaling_group_name(group)
            .policy_name(&name)
            .policy_type("SimpleScaling")
            .adjustment_type("ChangeInCapacity")
            .scaling_adjustment(*adjustment)
            .cooldown(*cooldown)
            .send()
            .await
            .map_err(|e| sdk("putting the scaling policy", e))?;
        let arn = resolve_arn(out.policy_arn(), || {
            ec2::retry_not_found("reading the scaling policy's ARN", || async {
                described_arn(aws, group, &name).await?.map(Some).ok_or_else(|| {
                    ResourceError::new(
                        ErrorClass::NotFound,
                        format!("scaling policy {name} is not visible yet"),
                    )
                })
            })
        })
        .await?;
        Ok(outputs(&name, &arn, group))
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, _deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::ScalingPolicy {
                adjustment,
                cooldown_seconds,
                ..
            } => desired_settings(*adjustment, *cooldown_seconds),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(match described(aws, outputs.require("asg")?, outputs.id()?).await? {
            Some(p) => Observed::Present(live_settings(&p)),
            None => Observed::Missing,
        })
    }

    /// PutScalingPolicy is an upsert: the create call again (the alarms follow its ARN).
    async fn update(
        &self,
        aws: &Aws,
        cx: &NodeCtx<'_>,
        _outputs: Outputs,
        _changes: &[Change],
    ) -> Result<Outputs, ResourceError> {
        self.create(aws, cx).await
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let name = cx.outputs.id()?;
        let group = cx.outputs.require("asg")?;
        // Gone with its group, going with it (AWS deletes a group's policies with the group,
        // which a destroy need not wait for: `Kind::deleted_with_container`), or never put.
        match describe_group(aws, group).await? {
            None => return Ok(()),
            Some(g) if is_deleting(&g) => return Ok(()),
            Some(_) => {}
        }
        if described_arn(aws, group, name).await?.is_none() {
            return Ok(());
        }
        let r = aws
            .clients
            .autoscaling
            .delete_policy()
            .auto_scaling_group_name(group)
            .policy_name(name)
            .send()
            .await
            .map_err(|e| reclassify_missing_group(sdk("deleting the scaling policy", e)));
        match r {
            Err(e) if !e.is(ErrorClass::NotFound) => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    #[test]
    fn names_follow_the_direction() {
        assert_eq!(policy_name("pi", 1), "pi-scale-out");
        assert_eq!(policy_name("pi", -1), "pi-scale-in");
    }

    #[tokio::test]
    async fn a_returned_arn_is_used_without_reading_back() {
        let reads = AtomicUsize::new(0);
        let arn = resolve_arn(Some("arn:aws:autoscaling:policy/1"), || {
            reads.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok(Some("other".to_string())))
        })
        .await
        .unwrap();
        assert_eq!(arn, "arn:aws:autoscaling:policy/1");
        assert_eq!(reads.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_missing_or_empty_arn_is_read_back() {
        for from_put in [None, Some("")] {
            let reads = AtomicUsize::new(0);
            let arn = resolve_arn(from_put, || {
                reads.fetch_add(1, Ordering::SeqCst);
                std::future::ready(Ok(Some("arn:aws:autoscaling:policy/2".to_string())))
            })
            .await
            .unwrap();
            assert_eq!(arn, "arn:aws:autoscaling:policy/2");
            assert_eq!(reads.load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test]
    async fn no_arn_anywhere_is_an_error() {
        let e = resolve_arn(None, || std::future::ready(Ok(None))).await.unwrap_err();
        assert_eq!(e.class, ErrorClass::NotFound);
    }
}
