//! The target group: HTTP 8224 to instances, with the config's health check (15 s x 2 to
//! become healthy, 5 failures to leave, instead of the vendor's 65 s x 4), and, as separate
//! attributes, the deregistration delay and load-balancer-cookie stickiness.
//!
//! The name is deterministic (`names::target_group`); a group of that name is adopted only if
//! its tags say it is this deployment's.

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{self as t, Matcher, ProtocolEnum, TargetGroupAttribute, TargetTypeEnum};

use super::{Aws, ResourceKind, ec2, elb, props};
use crate::aws::err;
use crate::core::config::HealthCheckConfig;
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Outputs, ResourceError};
use crate::core::spec::Kind;

pub struct TargetGroup;

/// The dashboard's port on the instances.
pub const DASHBOARD_PORT: i32 = 8224;

/// The attributes set after create (ModifyTargetGroupAttributes), as (key, value).
pub fn attributes(hc: &HealthCheckConfig) -> Vec<(String, String)> {
    [
        (
            "deregistration_delay.timeout_seconds",
            hc.deregistration_delay_seconds.to_string(),
        ),
        ("stickiness.enabled", "true".to_string()),
        ("stickiness.type", "lb_cookie".to_string()),
        (
            "stickiness.lb_cookie.duration_seconds",
            hc.stickiness_seconds.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn outputs_of(g: &t::TargetGroup) -> Option<Outputs> {
    let arn = g.target_group_arn()?;
    Some(
        Outputs::new()
            .with("id", arn)
            .with("name", g.target_group_name().unwrap_or_default())
            .with("arn_suffix", elb::arn_suffix(arn).unwrap_or_default()),
    )
}

async fn by_name(aws: &Aws, name: &str) -> Result<Option<t::TargetGroup>, ResourceError> {
    let out = aws
        .clients
        .elb
        .describe_target_groups()
        .names(name)
        .send()
        .await
        .map_err(err("looking up the target group by name"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.target_groups().first().cloned()))
}

#[async_trait]
impl ResourceKind for TargetGroup {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (name,) = props!(cx, TargetGroup { name });
        let Some(g) = by_name(aws, name).await? else {
            return Ok(None);
        };
        let arn = g.target_group_arn().unwrap_or_default();
        if !elb::is_ours(aws, arn, &cx.spec.key).await? {
            return Err(elb::foreign("target group", name));
        }
        Ok(outputs_of(&g))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (name, vpc) = props!(cx, TargetGroup { name, vpc });
        let hc = &aws.env.config.health_check;
        // CreateTargetGroup with the same name and settings returns the existing group.
        let out = aws
            .clients
            .elb
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(DASHBOARD_PORT)
            .vpc_id(cx.dep_id(vpc)?)
            .target_type(TargetTypeEnum::Instance)
            .health_check_enabled(true)
            .health_check_protocol(ProtocolEnum::Http)
            .health_check_path(&hc.path)
            .health_check_interval_seconds(hc.interval_seconds)
            .health_check_timeout_seconds(hc.timeout_seconds)
            .healthy_threshold_count(hc.healthy_threshold)
            .unhealthy_threshold_count(hc.unhealthy_threshold)
            .matcher(Matcher::builder().http_code(&hc.matcher).build())
            .set_tags(Some(elb::elb_tags(&aws.env.deployment, &cx.spec.key)))
            .send()
            .await
            .map_err(err("creating the target group"))?;
        out.target_groups()
            .first()
            .and_then(outputs_of)
            .ok_or_else(|| ResourceError::new(ErrorClass::Other, "CreateTargetGroup returned no group"))
    }

    async fn converge(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let arn = outputs.id()?.to_string();
        let attrs: Vec<TargetGroupAttribute> = attributes(&aws.env.config.health_check)
            .into_iter()
            .map(|(k, v)| TargetGroupAttribute::builder().key(k).value(v).build())
            .collect();
        // Right after create, ELB may not know the ARN yet.
        ec2::retry_not_found("setting the target group's attributes", || async {
            aws.clients
                .elb
                .modify_target_group_attributes()
                .target_group_arn(&arn)
                .set_attributes(Some(attrs.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(err("setting the target group's attributes"))
        })
        .await?;
        Ok(outputs)
    }

    async fn inspect(
        &self,
        aws: &Aws,
        cx: &crate::core::inspect::InspectCtx<'_>,
    ) -> Result<crate::core::inspect::Inspection, ResourceError> {
        super::inspect::target_group(aws, cx).await
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let arn = cx.outputs.id()?;
        // ResourceInUse while a listener or a group still points at it: retried.
        ec2::delete_retrying(Kind::TargetGroup, &format!("deleting target group {arn}"), || async {
            aws.clients
                .elb
                .delete_target_group()
                .target_group_arn(arn)
                .send()
                .await
                .map(|_| ())
                .map_err(err("deleting the target group"))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_come_from_the_config() {
        let hc = HealthCheckConfig {
            deregistration_delay_seconds: 60,
            stickiness_seconds: 3600,
            ..HealthCheckConfig::default()
        };
        let a = attributes(&hc);
        let get = |k: &str| a.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("deregistration_delay.timeout_seconds"), Some("60"));
        assert_eq!(get("stickiness.enabled"), Some("true"));
        assert_eq!(get("stickiness.type"), Some("lb_cookie"));
        assert_eq!(get("stickiness.lb_cookie.duration_seconds"), Some("3600"));
    }

    #[test]
    fn defaults_follow_the_blueprint() {
        let a = attributes(&HealthCheckConfig::default());
        assert!(a.contains(&("deregistration_delay.timeout_seconds".into(), "300".into())));
        assert!(a.contains(&("stickiness.lb_cookie.duration_seconds".into(), "86400".into())));
    }
}
