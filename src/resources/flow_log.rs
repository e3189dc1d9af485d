//! The VPC's flow log, delivered to the logs bucket (`logging.vpc_flow_logs`): every
//! connection accepted or rejected in the VPC, in AWS's S3 layout (`AWSLogs/<account>/
//! vpcflowlogs/<region>/...`), kept as long as the bucket keeps logs. The bucket's policy
//! grants the delivery (`core::policy::log_bucket_policy`), so CreateFlowLogs does not
//! rewrite it.
//!
//! A flow log cannot be changed: what it records, where and how often is fixed at create.
//! A different one is a replacement, created before the old one is deleted; `find` looks
//! for a flow log of ours with exactly the desired settings, so it never returns the one
//! being replaced. CreateFlowLogs takes the client token, so a retried create is one flow
//! log. AWS removes a deleted VPC's flow logs only "eventually": `destroy` deletes it first.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{self as t, FlowLogsResourceType, LogDestinationType, ResourceType, TrafficType};

use super::{Aws, ResourceKind, dep_output, ec2, observe, props};
use crate::aws::{err, tags};
use crate::core::diff::{AttrSpec, ChangeAction, Settings, settings};
use crate::core::inspect::{InspectCtx, Inspection};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{NodeSpec, Props};

pub struct FlowLog;

const FIXED: &str = "a flow log cannot be changed: a new one is created, then the old one deleted";

/// Day 2: every attribute is fixed at create (the config has only the switch; these change
/// when the VPC or the bucket is another one, or someone swapped the flow log by hand).
const ATTRS: &[AttrSpec] = &[
    AttrSpec::with("vpc", ChangeAction::Replace, FIXED, &[]),
    AttrSpec::with("destination", ChangeAction::Replace, FIXED, &[]),
    AttrSpec::with("traffic_type", ChangeAction::Replace, FIXED, &[]),
    AttrSpec::with("max_aggregation_interval", ChangeAction::Replace, FIXED, &[]),
];

/// The desired settings (pure): the VPC's and the bucket's ids from `deps`.
fn desired_settings(props: &Props, deps: &BTreeMap<String, Outputs>) -> Settings {
    match props {
        Props::FlowLog {
            vpc,
            bucket,
            traffic_type,
            max_aggregation_interval,
        } => settings([
            ("vpc", dep_output(deps, vpc, "id")),
            ("destination", dep_output(deps, bucket, "arn")),
            ("traffic_type", traffic_type.clone()),
            ("max_aggregation_interval", max_aggregation_interval.to_string()),
        ]),
        _ => Settings::new(),
    }
}

/// What AWS says the flow log does, in `desired_settings`' terms. An S3 destination reads
/// as the bucket's ARN, with a trailing `/` when AWS added one.
fn live_settings(fl: &t::FlowLog) -> Settings {
    let destination = fl.log_destination().unwrap_or("-").trim_end_matches('/');
    let destination = match fl.log_destination_type() {
        Some(LogDestinationType::S3) | None => destination.to_string(),
        Some(other) => format!("{}:{destination}", other.as_str()),
    };
    settings([
        ("vpc", fl.resource_id().unwrap_or("-").to_string()),
        ("destination", destination),
        (
            "traffic_type",
            fl.traffic_type().map_or("-", |t| t.as_str()).to_string(),
        ),
        (
            "max_aggregation_interval",
            fl.max_aggregation_interval().map_or("-".into(), |i| i.to_string()),
        ),
    ])
}

/// A flow log AWS stopped: the VPC it records is gone, or its delivery was deleted.
fn stopped(fl: &t::FlowLog) -> bool {
    fl.flow_log_status().is_some_and(|s| !s.eq_ignore_ascii_case("ACTIVE"))
}

async fn describe(aws: &Aws, id: &str) -> Result<Option<t::FlowLog>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_flow_logs()
        .flow_log_ids(id)
        .send()
        .await
        .map_err(err("describing the flow log"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.flow_logs().iter().find(|f| f.flow_log_id() == Some(id)).cloned()))
}

#[async_trait]
impl ResourceKind for FlowLog {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let want = desired_settings(&cx.spec.props, cx.deps);
        let mut filters = tags::ec2_filters(&aws.env.deployment, &cx.spec.key);
        filters.push(ec2::filter("resource-id", [want["vpc"].clone()]));
        let out = aws
            .clients
            .ec2
            .describe_flow_logs()
            .set_filter(Some(filters))
            .send()
            .await
            .map_err(err("looking up the flow log by tag"))?;
        Ok(out
            .flow_logs()
            .iter()
            .filter(|f| tags::ec2_is_ours(f.tags(), &aws.env.deployment, &cx.spec.key))
            .filter(|f| !stopped(f) && live_settings(f) == want)
            .find_map(|f| f.flow_log_id())
            .map(|id| Outputs::new().with("id", id)))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (vpc, bucket, traffic_type, interval) = props!(
            cx,
            FlowLog {
                vpc,
                bucket,
                traffic_type,
                max_aggregation_interval
            }
        );
        let vpc_id = cx.dep_id(vpc)?;
        let destination = cx
            .dep(bucket)?
            .get("arn")
            .ok_or_else(|| ResourceError::new(ErrorClass::Invalid, format!("`{bucket}` has no recorded ARN")))?;
        let out = aws
            .clients
            .ec2
            .create_flow_logs()
            .resource_type(FlowLogsResourceType::Vpc)
            .resource_ids(vpc_id)
            .traffic_type(TrafficType::from(traffic_type.as_str()))
            .log_destination_type(LogDestinationType::S3)
            .log_destination(destination)
            .max_aggregation_interval(*interval)
            .client_token(cx.token)
            .tag_specifications(tags::ec2_spec(
                ResourceType::VpcFlowLog,
                &aws.env.deployment,
                &cx.spec.key,
            ))
            .send()
            .await
            .map_err(err("creating the VPC flow log"))?;
        // A refusal for the one resource comes back as an `Unsuccessful` item, not an error.
        if let Some(e) = out.unsuccessful().iter().find_map(|u| u.error()) {
            let code = e.code().unwrap_or("Unsuccessful");
            return Err(ResourceError::new(
                ErrorClass::Invalid,
                format!(
                    "AWS refused the VPC flow log into {destination}: {code}: {}",
                    e.message().unwrap_or("")
                ),
            )
            .with_code(code)
            .with_hint("the logs bucket's policy must let delivery.logs.amazonaws.com write; run `pi-deploy up` again, or set logging.vpc_flow_logs = false"));
        }
        let id = out
            .flow_log_ids()
            .first()
            .ok_or_else(|| ResourceError::new(ErrorClass::Transient, "CreateFlowLogs answered no flow log id"))?;
        Ok(Outputs::new().with("id", id))
    }

    async fn inspect(&self, aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
        let Some(fl) = describe(aws, cx.outputs.id()?).await? else {
            return Ok(Inspection::missing());
        };
        if stopped(&fl) {
            return Ok(
                Inspection::missing().with_detail(format!("flow log status {}", fl.flow_log_status().unwrap_or("?")))
            );
        }
        let mut i = Inspection::available();
        if let Some(Props::FlowLog { vpc, .. }) = cx.spec.map(|s| &s.props) {
            i.check_opt("vpc", cx.id_of(vpc).unwrap_or(vpc), fl.resource_id());
        }
        if let Some(e) = fl.deliver_logs_error_message() {
            i = i.with_detail(format!("delivery: {e}"));
        }
        Ok(i)
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn replaceable(&self) -> bool {
        true
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        desired_settings(&spec.props, deps)
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(observe::observed_unless(
            describe(aws, outputs.id()?).await?,
            stopped,
            |f| live_settings(&f),
        ))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let id = cx.outputs.id()?;
        let out = aws
            .clients
            .ec2
            .delete_flow_logs()
            .flow_log_ids(id)
            .send()
            .await
            .map_err(err("deleting the VPC flow log"));
        // Gone already: an error (moto) or an `Unsuccessful` item (AWS) with this code.
        const GONE: &str = "InvalidFlowLogId.NotFound";
        let out = match out {
            Err(e) if e.is(ErrorClass::NotFound) || ec2::has_code(&e, GONE) => return Ok(()),
            other => other?,
        };
        match out.unsuccessful().iter().find_map(|u| u.error()) {
            Some(e) if e.code() == Some(GONE) => Ok(()),
            Some(e) => Err(ResourceError::new(
                ErrorClass::Transient,
                format!(
                    "deleting the VPC flow log {id}: {}: {}",
                    e.code().unwrap_or("Unsuccessful"),
                    e.message().unwrap_or("")
                ),
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diff::{KNOWN_AFTER_UP, diff};

    fn props() -> Props {
        Props::FlowLog {
            vpc: "vpc".into(),
            bucket: "logs-bucket".into(),
            traffic_type: "ALL".into(),
            max_aggregation_interval: 600,
        }
    }

    fn deps() -> BTreeMap<String, Outputs> {
        BTreeMap::from([
            ("vpc".to_string(), Outputs::new().with("id", "vpc-1")),
            (
                "logs-bucket".to_string(),
                Outputs::new().with("id", "pi-logs").with("arn", "arn:aws:s3:::pi-logs"),
            ),
        ])
    }

    fn live(destination: &str, traffic: TrafficType, status: &str) -> t::FlowLog {
        t::FlowLog::builder()
            .flow_log_id("fl-1")
            .resource_id("vpc-1")
            .log_destination_type(LogDestinationType::S3)
            .log_destination(destination)
            .traffic_type(traffic)
            .max_aggregation_interval(600)
            .flow_log_status(status)
            .build()
    }

    #[test]
    fn a_flow_log_as_created_has_nothing_to_change() {
        let want = desired_settings(&props(), &deps());
        assert_eq!(want["destination"], "arn:aws:s3:::pi-logs");
        // AWS may answer the bucket ARN with a trailing slash.
        for dest in ["arn:aws:s3:::pi-logs", "arn:aws:s3:::pi-logs/"] {
            let got = live_settings(&live(dest, TrafficType::All, "ACTIVE"));
            assert!(diff(ATTRS, &want, &got, None).is_empty(), "{dest}: {got:?}");
        }
    }

    #[test]
    fn another_bucket_or_traffic_is_a_replacement() {
        let want = desired_settings(&props(), &deps());
        let got = live_settings(&live("arn:aws:s3:::elsewhere", TrafficType::Reject, "ACTIVE"));
        let c = diff(ATTRS, &want, &got, None);
        let changed: Vec<_> = c.iter().map(|c| (c.attribute.as_str(), c.action)).collect();
        assert_eq!(
            changed,
            [
                ("destination", ChangeAction::Replace),
                ("traffic_type", ChangeAction::Replace)
            ]
        );
        // A CloudWatch Logs destination of the same name is not this one.
        let cw = t::FlowLog::builder()
            .log_destination_type(LogDestinationType::CloudWatchLogs)
            .log_destination("arn:aws:s3:::pi-logs")
            .build();
        assert_ne!(live_settings(&cw)["destination"], want["destination"]);
    }

    #[test]
    fn unknown_dependencies_read_as_known_after_up_and_a_stopped_flow_log_is_missing() {
        let want = desired_settings(&props(), &BTreeMap::new());
        assert_eq!(want["vpc"], KNOWN_AFTER_UP);
        assert_eq!(want["destination"], KNOWN_AFTER_UP);
        assert!(!stopped(&live("arn:aws:s3:::pi-logs", TrafficType::All, "ACTIVE")));
        assert!(stopped(&live("arn:aws:s3:::pi-logs", TrafficType::All, "INACTIVE")));
        let gone = observe::observed_unless(Some(live("x", TrafficType::All, "INACTIVE")), stopped, |f| {
            live_settings(&f)
        });
        assert_eq!(gone, Observed::Missing);
    }
}
