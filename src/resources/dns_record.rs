//! The optional Route 53 alias A record `<domain> -> the load balancer`. `create` UPSERTs it
//! (safe to repeat) and `converge` waits until the change is INSYNC. `delete` removes exactly
//! the record that exists (Route 53 needs the full record to delete it); a record that is
//! already gone counts as deleted.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_route53::types::{AliasTarget, Change, ChangeAction, ChangeBatch, ChangeStatus, ResourceRecordSet, RrType};

use super::{Aws, ResourceKind, dep_output, observe, props};
use crate::aws::wait::{self, Backoff, Poll};
use crate::aws::{err, sdk};
use crate::core::diff::{self, AttrSpec, Settings, settings};
use crate::core::latency;
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props};

pub struct DnsRecord;

/// DNS names compare without the trailing dot and case-insensitively.
pub fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.').eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// Whether an alias points at the load balancer (Route 53 may add `dualstack.`).
pub fn aliases(alias_dns: &str, lb_dns: &str) -> bool {
    let a = alias_dns.trim_end_matches('.').to_ascii_lowercase();
    same_name(a.strip_prefix("dualstack.").unwrap_or(&a), lb_dns)
}

/// Day 2: the load balancer the alias points at. A load balancer created again has a new
/// name: the record is UPSERTed to it.
const ATTRS: &[AttrSpec] = &[AttrSpec::update("alias_target", &[])];

/// The canonical form of an alias target: lower case, no trailing dot, no `dualstack.`.
pub fn alias_name(dns: &str) -> String {
    let a = dns.trim_end_matches('.').to_ascii_lowercase();
    a.strip_prefix("dualstack.").map(String::from).unwrap_or(a)
}

/// The live settings of the record (`-` for a record that is not an alias).
fn live_settings(r: &ResourceRecordSet) -> Settings {
    settings([(
        "alias_target",
        diff::opt(r.alias_target().map(|a| alias_name(a.dns_name()))),
    )])
}

fn bad(what: &str, e: impl std::fmt::Display) -> ResourceError {
    ResourceError::new(ErrorClass::Invalid, format!("building {what}: {e}"))
}

fn alias_record(domain: &str, lb_zone: &str, lb_dns: &str) -> Result<ResourceRecordSet, ResourceError> {
    let target = AliasTarget::builder()
        .hosted_zone_id(lb_zone)
        .dns_name(lb_dns)
        .evaluate_target_health(false)
        .build()
        .map_err(|e| bad("the alias target", e))?;
    ResourceRecordSet::builder()
        .name(domain)
        .r#type(RrType::A)
        .alias_target(target)
        .build()
        .map_err(|e| bad("the alias record", e))
}

fn change(action: ChangeAction, record: ResourceRecordSet) -> Result<ChangeBatch, ResourceError> {
    let c = Change::builder()
        .action(action)
        .resource_record_set(record)
        .build()
        .map_err(|e| bad("the change", e))?;
    ChangeBatch::builder()
        .comment("pi-deploy")
        .changes(c)
        .build()
        .map_err(|e| bad("the change batch", e))
}

/// The A record named `domain` in the zone, if any.
async fn current(aws: &Aws, zone: &str, domain: &str) -> Result<Option<ResourceRecordSet>, ResourceError> {
    let out = aws
        .clients
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .start_record_name(domain)
        .start_record_type(RrType::A)
        .max_items(1)
        .send()
        .await
        .map_err(err("listing the hosted zone's records"))?;
    Ok(out
        .resource_record_sets()
        .iter()
        .find(|r| same_name(r.name(), domain) && r.r#type() == &RrType::A)
        .cloned())
}

async fn wait_insync(aws: &Aws, change_id: &str) -> Result<(), ResourceError> {
    wait::wait_for(
        &format!("Route 53 change {change_id} to be INSYNC"),
        latency::create_deadline(Kind::DnsRecord),
        Backoff::QUICK,
        || async {
            let out = aws
                .clients
                .route53
                .get_change()
                .id(change_id)
                .send()
                .await
                .map_err(err("reading the Route 53 change"))?;
            Ok(match out.change_info().map(|c| c.status()) {
                Some(ChangeStatus::Insync) => Poll::Ready(()),
                s => Poll::Pending(s.map_or("unknown", |s| s.as_str()).to_string()),
            })
        },
    )
    .await
}

fn outputs(zone: &str, domain: &str, lb_zone: &str, lb_dns: &str) -> Outputs {
    Outputs::new()
        .with("id", domain)
        .with("zone_id", zone)
        .with("alias_zone_id", lb_zone)
        .with("alias_dns_name", lb_dns)
}

#[async_trait]
impl ResourceKind for DnsRecord {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (zone_id, domain, load_balancer) = props!(
            cx,
            DnsRecord {
                zone_id,
                domain,
                load_balancer
            }
        );
        let lb = cx.dep(load_balancer)?;
        let lb_dns = lb.require("dns_name")?;
        let Some(r) = current(aws, zone_id, domain).await? else {
            return Ok(None);
        };
        // Only a record that already points at our load balancer is adopted; anything else is
        // replaced by the UPSERT in `create`.
        let ours = r.alias_target().is_some_and(|a| aliases(a.dns_name(), lb_dns));
        Ok(ours.then(|| {
            outputs(
                zone_id,
                domain,
                lb.require("canonical_hosted_zone_id").unwrap_or_default(),
                lb_dns,
            )
        }))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (zone_id, domain, load_balancer) = props!(
            cx,
            DnsRecord {
                zone_id,
                domain,
                load_balancer
            }
        );
        let lb = cx.dep(load_balancer)?;
        let (lb_zone, lb_dns) = (lb.require("canonical_hosted_zone_id")?, lb.require("dns_name")?);
        let batch = change(ChangeAction::Upsert, alias_record(domain, lb_zone, lb_dns)?)?;
        let out = aws
            .clients
            .route53
            .change_resource_record_sets()
            .hosted_zone_id(zone_id)
            .change_batch(batch)
            .send()
            .await
            .map_err(err("writing the alias record"))?;
        let mut o = outputs(zone_id, domain, lb_zone, lb_dns);
        if let Some(c) = out.change_info() {
            o.set("change_id", c.id());
        }
        Ok(o)
    }

    async fn converge(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        if let Some(id) = outputs.get("change_id") {
            wait_insync(aws, id).await?;
        }
        Ok(outputs)
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::DnsRecord { load_balancer, .. } => {
                settings([("alias_target", alias_name(&dep_output(deps, load_balancer, "dns_name")))])
            }
            _ => Settings::new(),
        }
    }

    /// Missing when the zone no longer lists an A record of the recorded name (or the zone
    /// itself is gone).
    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let listed = current(aws, outputs.require("zone_id")?, outputs.id()?).await;
        let record = match listed {
            Err(e) if e.is(ErrorClass::NotFound) => None,
            other => other?,
        };
        Ok(observe::observed(record, |r| live_settings(&r)))
    }

    /// The alias points elsewhere: UPSERT it to the load balancer and wait until INSYNC.
    async fn update(
        &self,
        aws: &Aws,
        cx: &NodeCtx<'_>,
        _outputs: Outputs,
        _changes: &[diff::Change],
    ) -> Result<Outputs, ResourceError> {
        let written = self.create(aws, cx).await?;
        self.converge(aws, cx, written).await
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let domain = cx.outputs.id()?;
        let zone = cx.outputs.require("zone_id")?;
        let alias_dns = cx.outputs.require("alias_dns_name")?;
        let record = match current(aws, zone, domain).await {
            Err(e) if e.is(ErrorClass::NotFound) => return Ok(()),
            other => other?,
        };
        // Not there, or no longer pointing at our load balancer (someone repointed it): leave it.
        let Some(record) = record.filter(|r| r.alias_target().is_some_and(|a| aliases(a.dns_name(), alias_dns))) else {
            return Ok(());
        };
        let out = aws
            .clients
            .route53
            .change_resource_record_sets()
            .hosted_zone_id(zone)
            .change_batch(change(ChangeAction::Delete, record)?)
            .send()
            .await
            .map_err(|e| sdk("deleting the alias record", e));
        match out {
            Ok(o) => match o.change_info() {
                Some(c) => wait_insync(aws, c.id()).await,
                None => Ok(()),
            },
            // InvalidChangeBatch "... not found": deleted meanwhile.
            Err(e) if e.is(ErrorClass::NotFound) || e.message.to_ascii_lowercase().contains("not found") => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_compare_like_dns() {
        assert!(same_name("dash.example.com.", "Dash.Example.com"));
        assert!(!same_name("dash.example.com", "example.com"));
    }

    #[test]
    fn an_alias_to_the_dualstack_name_is_ours() {
        let lb = "pi-alb-123.eu-west-1.elb.amazonaws.com";
        assert!(aliases("dualstack.pi-alb-123.eu-west-1.elb.amazonaws.com.", lb));
        assert!(aliases("PI-ALB-123.eu-west-1.elb.amazonaws.com", lb));
        assert!(!aliases("other-alb.eu-west-1.elb.amazonaws.com", lb));
    }

    #[test]
    fn the_live_alias_target_compares_with_the_load_balancer_name() {
        let lb = "pi-alb-1.eu-west-1.elb.amazonaws.com";
        let r = alias_record(
            "dash.example.com",
            "Z32O12XQLNTSW2",
            "dualstack.PI-ALB-1.eu-west-1.elb.amazonaws.com.",
        )
        .unwrap();
        assert_eq!(live_settings(&r)["alias_target"], lb);
        assert_eq!(alias_name(lb), lb);
        // A record pointing elsewhere (the load balancer created again) is an update.
        let stale =
            live_settings(&alias_record("dash.example.com", "Z1", "pi-alb-0.eu-west-1.elb.amazonaws.com").unwrap());
        let want = settings([("alias_target", alias_name(lb))]);
        let changes = diff::diff(ATTRS, &want, &stale, None);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].action, diff::ChangeAction::Update);
        assert!(diff::diff(ATTRS, &want, &live_settings(&r), None).is_empty());
    }

    #[test]
    fn the_upsert_is_an_alias_a_record() {
        let r = alias_record(
            "dash.example.com",
            "Z32O12XQLNTSW2",
            "pi-alb-1.eu-west-1.elb.amazonaws.com",
        )
        .unwrap();
        assert_eq!(r.r#type(), &RrType::A);
        let a = r.alias_target().unwrap();
        assert_eq!(a.hosted_zone_id(), "Z32O12XQLNTSW2");
        assert_eq!(a.dns_name(), "pi-alb-1.eu-west-1.elb.amazonaws.com");
        let b = change(ChangeAction::Upsert, r).unwrap();
        assert_eq!(b.changes()[0].action(), &ChangeAction::Upsert);
    }
}
