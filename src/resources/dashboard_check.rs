//! The last node of `up`: the dashboard is usable once at least one target is `healthy` behind
//! the load balancer. It owns no AWS object; its id is the dashboard's URL.
//!
//! It starts after the database endpoint is published, so what remains is an instance noticing
//! the endpoint, starting the dashboard, completing its lifecycle action, and passing the
//! health checks. The deadline covers all of that at the latency model's slow figures, twice.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::TargetHealthStateEnum;

use super::auto_scaling_group::scaling_activities;
use super::{Aws, ResourceKind, ec2, observe, props};
use crate::aws::err;
use crate::aws::wait::{self, Backoff, Poll};
use crate::core::activity::{self, Activity};
use crate::core::diff::{AttrSpec, Change, ChangeAction, Settings, settings};
use crate::core::latency::{self, Transition};
use crate::core::names;
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{NodeSpec, Props};

pub struct DashboardCheck;

pub const ATTRS: &[AttrSpec] = &[AttrSpec::with(
    "url",
    ChangeAction::Update,
    "the dashboard's address changes; `up` waits for a healthy target again",
    &["certificate_arn", "domain_name", "hosted_zone_id"],
)];

/// `https://<domain>` with a domain and a certificate; else the load balancer's name, over
/// HTTPS when there is a certificate.
pub fn dashboard_url(https: bool, domain: Option<&str>, lb_dns: &str) -> String {
    match (domain, https) {
        (Some(domain), true) => format!("https://{domain}"),
        (_, true) => format!("https://{lb_dns}"),
        (_, false) => format!("http://{lb_dns}"),
    }
}

fn url_of(spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Option<String> {
    let Props::DashboardCheck {
        load_balancer,
        https,
        domain,
        ..
    } = &spec.props
    else {
        return None;
    };
    Some(dashboard_url(
        *https,
        domain.as_deref(),
        &super::dep_output(deps, load_balancer, "dns_name"),
    ))
}

/// How long to wait for a healthy target: group to InService, boot, first passing checks.
pub fn deadline() -> Duration {
    let m = latency::model();
    let slow: f64 = [
        "create.asg_to_instances_inservice",
        "create.ec2_boot_to_app_ready",
        "create.target_healthy_after_app_ready",
    ]
    .iter()
    .map(|k| m.get(*k).map_or(300.0, |t| t.slow_s))
    .sum();
    Duration::from_secs_f64((slow * 2.0).max(600.0))
}

/// Ready with the first healthy target's id; otherwise the states seen, for the progress line.
pub fn health_poll(targets: &[(String, String)]) -> Poll<String> {
    if let Some((id, _)) = targets.iter().find(|(_, s)| s == "healthy") {
        return Poll::Ready(id.clone());
    }
    if targets.is_empty() {
        return Poll::Pending("no instance registered yet".into());
    }
    Poll::Pending(
        targets
            .iter()
            .map(|(id, s)| format!("{id} {s}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// No healthy target yet: keep waiting, unless the group's latest launch failed (AWS will not
/// make that instance by waiting; its message says why).
pub fn launch_poll(pending: Poll<String>, activities: &[Activity]) -> Result<Poll<String>, ResourceError> {
    match activity::launch_failure(activities, &BTreeSet::new()) {
        Some(why) => Err(ResourceError::new(ErrorClass::Failed, why).with_hint(
            "fix the cause AWS names (subscribe to the Marketplace image, another instance type or zone, a quota \
             increase; an abandoned lifecycle action: the user data failed, see /var/log/cloud-init-output.log), \
             then run `pi-deploy up` again",
        )),
        None => Ok(pending),
    }
}

async fn target_states(aws: &Aws, tg_arn: &str) -> Result<Vec<(String, String)>, ResourceError> {
    let out = aws
        .clients
        .elb
        .describe_target_health()
        .target_group_arn(tg_arn)
        .send()
        .await
        .map_err(err("reading the targets' health"))?;
    Ok(out
        .target_health_descriptions()
        .iter()
        .map(|d| {
            let id = d.target().and_then(|t| t.id()).unwrap_or("?").to_string();
            let state = d
                .target_health()
                .and_then(|h| h.state())
                .unwrap_or(&TargetHealthStateEnum::Unavailable);
            (id, state.as_str().to_string())
        })
        .collect())
}

#[async_trait]
impl ResourceKind for DashboardCheck {
    async fn find(&self, _aws: &Aws, _cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        Ok(None)
    }

    async fn create(&self, _aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (https, domain, load_balancer) = props!(
            cx,
            DashboardCheck {
                https,
                domain,
                load_balancer
            }
        );
        let url = dashboard_url(*https, domain.as_deref(), cx.dep(load_balancer)?.require("dns_name")?);
        Ok(Outputs::new().with("id", url))
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (target_group,) = props!(cx, DashboardCheck { target_group });
        let tg_arn = cx.dep_id(target_group)?.to_string();
        // Published by this run's `db-endpoint`: the instances start the dashboard now, and
        // a target is healthy after one check. A read at once all the same (the instances
        // may have been ready long before, e.g. on a resumed run).
        let published = aws.started.get(&names::db_endpoint_parameter(&aws.env.deployment));
        let backoff = Backoff::expecting(Transition::TargetHealthy, published).look_first();
        let group = names::asg(&aws.env.deployment);
        let healthy = wait::wait_for("a healthy dashboard instance behind the load balancer", deadline(), backoff, || async {
            let poll = health_poll(&target_states(aws, &tg_arn).await?);
            if !matches!(poll, Poll::Pending(_)) {
                return Ok(poll);
            }
            launch_poll(poll, &scaling_activities(aws, &group).await?)
        })
        .await
        .map_err(|e| {
            e.with_hint(
                "open a Session Manager shell on an instance of the Auto Scaling group and read /var/log/cloud-init-output.log \
                 (user data) and `journalctl -u panintelligence`; run `pi-deploy up` again to keep waiting",
            )
        })?;
        Ok(outputs.with("healthy_instance", healthy))
    }

    async fn delete(&self, _aws: &Aws, _cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        Ok(())
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        url_of(spec, deps).map_or_else(Settings::new, |url| settings([("url", url)]))
    }

    /// It owns no AWS object: its live setting is the URL it recorded. But it stands for a
    /// dashboard behind the recorded load balancer and target group: with either gone, it is
    /// missing too (and `up` waits for a healthy target again).
    async fn read(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let (target_group, load_balancer) = props!(
            cx,
            DashboardCheck {
                target_group,
                load_balancer
            }
        );
        let recorded = |key: &str| cx.deps.get(key).and_then(|o| o.get("id")).map(String::from);
        let (Some(tg), Some(lb)) = (recorded(target_group), recorded(load_balancer)) else {
            return Ok(Observed::Missing);
        };
        let tg_there = ec2::not_found_is_none(target_states(aws, &tg).await)?.is_some();
        let lb_there = tg_there && super::load_balancer::describe(aws, &lb).await?.is_some();
        let url = outputs.id()?.to_string();
        Ok(observe::observed(lb_there.then_some(url), |url| {
            settings([("url", url)])
        }))
    }

    /// A new address: record it and wait for a healthy target again.
    async fn update(
        &self,
        aws: &Aws,
        cx: &NodeCtx<'_>,
        outputs: Outputs,
        _changes: &[Change],
    ) -> Result<Outputs, ResourceError> {
        let fresh = self.create(aws, cx).await?;
        let mut outputs = outputs;
        outputs.set("id", fresh.id()?);
        self.converge(aws, cx, outputs).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn the_url_prefers_the_domain_with_a_certificate() {
        let lb = "pi-alb-1.elb.amazonaws.com";
        assert_eq!(dashboard_url(false, None, lb), "http://pi-alb-1.elb.amazonaws.com");
        assert_eq!(dashboard_url(true, None, lb), "https://pi-alb-1.elb.amazonaws.com");
        assert_eq!(
            dashboard_url(true, Some("dash.example.com"), lb),
            "https://dash.example.com"
        );
        assert_eq!(
            dashboard_url(false, Some("dash.example.com"), lb),
            "http://pi-alb-1.elb.amazonaws.com"
        );
    }

    #[test]
    fn one_healthy_target_is_enough() {
        assert!(matches!(health_poll(&[]), Poll::Pending(s) if s.contains("no instance")));
        assert!(matches!(health_poll(&t(&[("i-1", "initial")])), Poll::Pending(s) if s == "i-1 initial"));
        assert!(matches!(health_poll(&t(&[("i-1", "unhealthy"), ("i-2", "healthy")])), Poll::Ready(id) if id == "i-2"));
    }

    #[tokio::test(start_paused = true)]
    async fn never_healthy_times_out_with_the_last_states() {
        let e = wait::wait_for("dashboard", Duration::from_secs(120), Backoff::SLOW, || {
            std::future::ready(Ok(health_poll(&t(&[("i-1", "unhealthy")]))))
        })
        .await
        .unwrap_err();
        assert!(e.message.contains("i-1 unhealthy"), "{}", e.message);
    }

    fn launch(id: &str, status: &str, message: &str) -> Activity {
        Activity {
            id: id.into(),
            status: status.into(),
            description: "Launching a new EC2 instance.  Status Reason: x".into(),
            message: Some(message.into()),
            started: None,
        }
    }

    /// AWS lists a launch it could not make (here: the Marketplace image is not subscribed)
    /// only as a failed scaling activity. The wait ends at that poll with AWS's message, not
    /// at the deadline (about 45 min) blaming cloud-init.
    #[tokio::test(start_paused = true)]
    async fn a_failed_launch_ends_the_wait_at_once_with_aws_s_message() {
        let subscribe = "In order to use this AWS Marketplace product you need to accept terms and subscribe.";
        let script = std::sync::Mutex::new(vec![
            vec![launch("a1", "InProgress", "")],
            vec![launch("a1", "InProgress", "")],
            vec![launch("a1", "Failed", subscribe)],
        ]);
        let start = tokio::time::Instant::now();
        let polls = std::sync::atomic::AtomicUsize::new(0);
        let e = wait::wait_for("dashboard", deadline(), Backoff::SLOW, || {
            polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let acts = {
                let mut s = script.lock().unwrap();
                if s.len() > 1 { s.remove(0) } else { s[0].clone() }
            };
            std::future::ready(launch_poll(health_poll(&[]), &acts))
        })
        .await
        .unwrap_err();
        assert!(e.message.contains(subscribe), "{}", e.message);
        assert!(e.is(ErrorClass::Failed), "{e:?}");
        assert_eq!(polls.load(std::sync::atomic::Ordering::SeqCst), 3);
        assert!(start.elapsed() < Duration::from_secs(120), "{:?}", start.elapsed());
    }

    #[test]
    fn a_launch_in_progress_or_recovered_keeps_waiting() {
        let pending = || Poll::Pending("no instance registered yet".into());
        assert!(matches!(launch_poll(pending(), &[]), Ok(Poll::Pending(_))));
        let recovered = [launch("a2", "Successful", ""), launch("a1", "Failed", "no capacity")];
        assert!(matches!(launch_poll(pending(), &recovered), Ok(Poll::Pending(_))));
    }

    #[test]
    fn the_deadline_covers_boot_and_health_checks() {
        assert!(deadline() >= Duration::from_secs(600));
    }
}
