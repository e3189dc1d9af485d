//! The target group: HTTP to the instances on `dashboard_port` (8224), with the config's health check (15 s x 2 to
//! become healthy, 5 failures to leave, instead of the vendor's 65 s x 4), and, as separate
//! attributes, the deregistration delay and load-balancer-cookie stickiness.
//!
//! The name is deterministic and follows the port (`names::target_group_of`), so a port
//! change is a create-before-destroy replace; a group of that name is adopted only if its
//! tags say it is this deployment's.

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{self as t, Matcher, ProtocolEnum, TargetGroupAttribute, TargetTypeEnum};

use std::collections::BTreeMap;

use super::{Aws, ResourceKind, ec2, elb, props};
use crate::aws::err;
use crate::core::config::HealthCheckConfig;
use crate::core::diff::{AttrSpec, Change, ChangeAction, Settings, settings};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props};

pub struct TargetGroup;

/// What `up` can change on a live target group.
pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::with(
        "port",
        ChangeAction::Replace,
        "a target group's port cannot change: a new group (create before destroy), the listeners and the Auto Scaling group moved to it; the dashboard answers again once the instances serve the new port (an image that listens there)",
        &["dashboard_port"],
    ),
    AttrSpec::with(
        "health_check_path",
        ChangeAction::Update,
        "a path the dashboard does not answer turns every target unhealthy",
        &["health_check.path"],
    ),
    AttrSpec::with(
        "health_check_matcher",
        ChangeAction::Update,
        "codes the dashboard does not return turn every target unhealthy",
        &["health_check.matcher"],
    ),
    AttrSpec::update("health_check_interval_seconds", &["health_check.interval_seconds"]),
    AttrSpec::update("health_check_timeout_seconds", &["health_check.timeout_seconds"]),
    AttrSpec::update("healthy_threshold", &["health_check.healthy_threshold"]),
    AttrSpec::update("unhealthy_threshold", &["health_check.unhealthy_threshold"]),
    AttrSpec::with(
        "deregistration_delay_seconds",
        ChangeAction::Update,
        "applies to later deregistrations",
        &["health_check.deregistration_delay_seconds"],
    ),
    AttrSpec::with(
        "stickiness",
        ChangeAction::Update,
        "cookies already issued keep their expiry",
        &["health_check.stickiness_seconds"],
    ),
];

/// The desired settings from the props (pure).
pub fn desired_settings(port: i32, hc: &HealthCheckConfig) -> Settings {
    settings([
        ("port", port.to_string()),
        ("health_check_path", hc.path.clone()),
        ("health_check_matcher", hc.matcher.clone()),
        ("health_check_interval_seconds", hc.interval_seconds.to_string()),
        ("health_check_timeout_seconds", hc.timeout_seconds.to_string()),
        ("healthy_threshold", hc.healthy_threshold.to_string()),
        ("unhealthy_threshold", hc.unhealthy_threshold.to_string()),
        (
            "deregistration_delay_seconds",
            hc.deregistration_delay_seconds.to_string(),
        ),
        (
            "stickiness",
            stickiness(true, "lb_cookie", &hc.stickiness_seconds.to_string()),
        ),
    ])
}

fn stickiness(enabled: bool, kind: &str, seconds: &str) -> String {
    match enabled {
        true => format!("{kind} {seconds} s"),
        false => "off".to_string(),
    }
}

/// The live settings of a described group and its attributes (pure).
pub fn live_settings(g: &t::TargetGroup, attrs: &[(String, String)]) -> Settings {
    let attr = |k: &str| attrs.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    let mut s = settings([
        ("port", g.port().map(|p| p.to_string()).unwrap_or_default()),
        (
            "health_check_path",
            g.health_check_path().unwrap_or_default().to_string(),
        ),
        (
            "health_check_matcher",
            g.matcher().and_then(|m| m.http_code()).unwrap_or_default().to_string(),
        ),
        (
            "health_check_interval_seconds",
            g.health_check_interval_seconds().unwrap_or_default().to_string(),
        ),
        (
            "health_check_timeout_seconds",
            g.health_check_timeout_seconds().unwrap_or_default().to_string(),
        ),
        (
            "healthy_threshold",
            g.healthy_threshold_count().unwrap_or_default().to_string(),
        ),
        (
            "unhealthy_threshold",
            g.unhealthy_threshold_count().unwrap_or_default().to_string(),
        ),
    ]);
    if let Some(d) = attr("deregistration_delay.timeout_seconds") {
        s.insert("deregistration_delay_seconds".into(), d.to_string());
    }
    if let Some(enabled) = attr("stickiness.enabled") {
        s.insert(
            "stickiness".into(),
            stickiness(
                enabled == "true",
                attr("stickiness.type").unwrap_or("lb_cookie"),
                attr("stickiness.lb_cookie.duration_seconds").unwrap_or("?"),
            ),
        );
    }
    s
}

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
        let (name, vpc, port, hc) = props!(
            cx,
            TargetGroup {
                name,
                vpc,
                port,
                health_check
            }
        );
        // CreateTargetGroup with the same name and settings returns the existing group.
        let out = aws
            .clients
            .elb
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(*port)
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

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (hc,) = props!(cx, TargetGroup { health_check });
        let arn = outputs.id()?.to_string();
        let attrs: Vec<TargetGroupAttribute> = attributes(hc)
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

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    /// It holds no data, and its name follows its port (`names::target_group_of`): a port
    /// change is a create-before-destroy replace.
    fn replaceable(&self) -> bool {
        true
    }

    fn desired(&self, spec: &NodeSpec, _deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::TargetGroup { port, health_check, .. } => desired_settings(*port, health_check),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let arn = outputs.id()?;
        let out = aws
            .clients
            .elb
            .describe_target_groups()
            .target_group_arns(arn)
            .send()
            .await
            .map_err(err("reading the target group"));
        let Some(g) = ec2::not_found_is_none(out)?.and_then(|o| o.target_groups().first().cloned()) else {
            return Ok(Observed::Missing);
        };
        let attrs = aws
            .clients
            .elb
            .describe_target_group_attributes()
            .target_group_arn(arn)
            .send()
            .await
            .map_err(err("reading the target group's attributes"))?;
        let pairs: Vec<(String, String)> = attrs
            .attributes()
            .iter()
            .filter_map(|a| Some((a.key()?.to_string(), a.value()?.to_string())))
            .collect();
        Ok(Observed::Present(live_settings(&g, &pairs)))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &NodeCtx<'_>,
        outputs: Outputs,
        changes: &[Change],
    ) -> Result<Outputs, ResourceError> {
        let (hc,) = props!(cx, TargetGroup { health_check });
        let arn = outputs.id()?.to_string();
        if changes
            .iter()
            .any(|c| c.attribute.starts_with("health") || c.attribute.ends_with("threshold"))
        {
            aws.clients
                .elb
                .modify_target_group()
                .target_group_arn(&arn)
                .health_check_path(&hc.path)
                .health_check_interval_seconds(hc.interval_seconds)
                .health_check_timeout_seconds(hc.timeout_seconds)
                .healthy_threshold_count(hc.healthy_threshold)
                .unhealthy_threshold_count(hc.unhealthy_threshold)
                .matcher(Matcher::builder().http_code(&hc.matcher).build())
                .send()
                .await
                .map_err(err("changing the target group's health check"))?;
        }
        // The attributes are set whole (idempotent).
        self.converge(aws, cx, outputs).await
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
    fn a_changed_health_check_is_an_update_and_a_port_a_replacement() {
        let hc = HealthCheckConfig::default();
        let live = desired_settings(8224, &hc);
        let want = desired_settings(
            8224,
            &HealthCheckConfig {
                path: "/health".into(),
                deregistration_delay_seconds: 60,
                ..hc.clone()
            },
        );
        let changes = crate::core::diff::diff(ATTRS, &want, &live, None);
        let names: Vec<(&str, &str, &str, ChangeAction)> = changes
            .iter()
            .map(|c| (c.attribute.as_str(), c.old.as_str(), c.new.as_str(), c.action))
            .collect();
        assert_eq!(
            names,
            vec![
                ("health_check_path", "/", "/health", ChangeAction::Update),
                ("deregistration_delay_seconds", "300", "60", ChangeAction::Update),
            ]
        );
        assert_eq!(changes[0].fields, vec!["health_check.path".to_string()]);
        let moved = crate::core::diff::diff(ATTRS, &desired_settings(8080, &hc), &live, None);
        assert_eq!(moved[0].action, ChangeAction::Replace);
        assert!(crate::core::diff::diff(ATTRS, &live, &live, None).is_empty());
    }

    #[test]
    fn live_settings_read_what_desired_writes() {
        let hc = HealthCheckConfig::default();
        let g = t::TargetGroup::builder()
            .port(8224)
            .health_check_path("/")
            .matcher(Matcher::builder().http_code("200,302").build())
            .health_check_interval_seconds(15)
            .health_check_timeout_seconds(5)
            .healthy_threshold_count(2)
            .unhealthy_threshold_count(5)
            .build();
        let attrs = attributes(&hc);
        assert_eq!(live_settings(&g, &attrs), desired_settings(8224, &hc));
        let off = vec![("stickiness.enabled".to_string(), "false".to_string())];
        assert_eq!(live_settings(&g, &off)["stickiness"], "off");
    }

    #[test]
    fn defaults_follow_the_blueprint() {
        let a = attributes(&HealthCheckConfig::default());
        assert!(a.contains(&("deregistration_delay.timeout_seconds".into(), "300".into())));
        assert!(a.contains(&("stickiness.lb_cookie.duration_seconds".into(), "86400".into())));
    }
}
