//! A subnet in one availability zone. Public subnets get no public IPs on launch: only the
//! NAT gateway (its own EIP) and the load balancer live there, and neither needs it.
//!
//! Day 2: `read` returns whether the subnet gives public IPs on launch; turned on by hand,
//! it is an `update` that `converge` turns off again (ModifySubnetAttribute). Its CIDR and
//! zone follow the VPC's and the config's zones, whose changes the VPC and the config refuse.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{self as t, AttributeBooleanValue, ResourceType, SubnetState};

use super::{Aws, ResourceKind, ec2, props};
use crate::aws::consistency;
use crate::aws::wait::{self, Backoff, Poll};
use crate::aws::{err, tags};
use crate::core::diff::{AttrSpec, ChangeAction, Settings, settings};
use crate::core::inspect::{InspectCtx, Inspection, Live};
use crate::core::latency;
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props};

pub struct Subnet;

const CIDR_NOTE: &str = "a subnet's CIDR cannot change, and the ACLs and the instances in it follow it: keep the old value, or deploy a new deployment beside this one and move the data (`pi-deploy snapshot`, then `restore` there)";

/// The CIDR is one attribute per tier, so that a refusal names the tier's config field.
pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::with(
        "public_ips_on_launch",
        ChangeAction::Update,
        "ModifySubnetAttribute turns it off again: nothing pi-deploy runs there needs one",
        &[],
    ),
    AttrSpec::with(
        "public_cidr",
        ChangeAction::Forbidden,
        CIDR_NOTE,
        &["network.public_subnet_cidrs"],
    ),
    AttrSpec::with(
        "app_cidr",
        ChangeAction::Forbidden,
        CIDR_NOTE,
        &["network.app_subnet_cidrs"],
    ),
    AttrSpec::with(
        "db_cidr",
        ChangeAction::Forbidden,
        CIDR_NOTE,
        &["network.db_subnet_cidrs"],
    ),
];

/// The CIDR attribute of the subnet under `key` (`subnet-<tier>-<zone>`).
fn cidr_attr(key: &str) -> &'static str {
    match key.strip_prefix("subnet-").and_then(|k| k.split('-').next()) {
        Some("public") => "public_cidr",
        Some("db") => "db_cidr",
        _ => "app_cidr",
    }
}

/// The desired settings (pure): the configured CIDR, never public IPs on launch.
pub fn desired_settings(key: &str, cidr: &str) -> Settings {
    settings([
        ("public_ips_on_launch", "off".to_string()),
        (cidr_attr(key), cidr.to_string()),
    ])
}

fn live_settings(key: &str, s: &t::Subnet) -> Settings {
    let on = s.map_public_ip_on_launch() == Some(true);
    let mut live = settings([("public_ips_on_launch", if on { "on" } else { "off" }.to_string())]);
    if let Some(cidr) = s.cidr_block() {
        live.insert(cidr_attr(key).into(), cidr.to_string());
    }
    live
}

fn outputs_of(s: &t::Subnet) -> Option<Outputs> {
    Some(
        Outputs::new()
            .with("id", s.subnet_id()?)
            .with("vpc_id", s.vpc_id().unwrap_or_default())
            .with("az", s.availability_zone().unwrap_or_default())
            .with("cidr", s.cidr_block().unwrap_or_default()),
    )
}

/// One poll of a new subnet: NotFound right after create is "not yet".
async fn poll(aws: &Aws, id: &str) -> Result<Poll<t::Subnet>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_subnets()
        .subnet_ids(id)
        .send()
        .await
        .map_err(err("describing the subnet"));
    let Some(out) = ec2::not_found_is_none(out)? else {
        return consistency::not_visible(format!("subnet {id}"));
    };
    let Some(s) = out.subnets().first() else {
        return consistency::not_visible(format!("subnet {id}"));
    };
    Ok(match s.state() {
        Some(SubnetState::Available) => Poll::Ready(s.clone()),
        Some(state @ (SubnetState::Failed | SubnetState::FailedInsufficientCapacity)) => {
            Poll::Failed(state.as_str().into())
        }
        state => Poll::Pending(state.map_or("unknown", |s| s.as_str()).into()),
    })
}

/// A recorded subnet whose CIDR no longer matches the config cannot be changed in place.
fn check_cidr(s: &t::Subnet, want: &str) -> Result<(), ResourceError> {
    match s.cidr_block() {
        Some(have) if have != want => Err(ResourceError::new(
            ErrorClass::Invalid,
            format!("subnet {} has CIDR {have}, but the config asks for {want}", s.subnet_id().unwrap_or("?")),
        )
        .with_hint("a subnet's CIDR cannot change: restore the old value in the config, or destroy and re-create the deployment")),
        _ => Ok(()),
    }
}

#[async_trait]
impl ResourceKind for Subnet {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let out = aws
            .clients
            .ec2
            .describe_subnets()
            .set_filters(Some(tags::ec2_filters(&aws.env.deployment, &cx.spec.key)))
            .send()
            .await
            .map_err(err("looking up the subnet by tag"))?;
        Ok(out
            .subnets()
            .iter()
            .find(|s| tags::ec2_is_ours(s.tags(), &aws.env.deployment, &cx.spec.key))
            .and_then(outputs_of))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (vpc, cidr, az) = props!(cx, Subnet { vpc, cidr, az });
        let vpc_id = cx.dep_id(vpc)?;
        let out = aws
            .clients
            .ec2
            .create_subnet()
            .vpc_id(vpc_id)
            .cidr_block(cidr)
            .availability_zone(az)
            .tag_specifications(tags::ec2_spec(ResourceType::Subnet, &aws.env.deployment, &cx.spec.key))
            .send()
            .await
            .map_err(err("creating the subnet"))?;
        let id = out.subnet().and_then(|s| s.subnet_id()).unwrap_or_default();
        if let Some(s) = out.subnet().filter(|s| s.state() == Some(&SubnetState::Available)) {
            aws.answers.keep(id, s.clone());
        }
        Ok(Outputs::new()
            .with("id", id)
            .with("vpc_id", vpc_id)
            .with("az", az)
            .with("cidr", cidr))
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (cidr,) = props!(cx, Subnet { cidr });
        let id = outputs.id()?.to_string();
        // Created `available` by this process: the answer is the read-back.
        let subnet = match aws.answers.take::<t::Subnet>(&id) {
            Some(s) => s,
            None => {
                wait::wait_for(
                    &format!("subnet {id} to become available"),
                    latency::create_deadline(Kind::Subnet),
                    Backoff::QUICK,
                    || poll(aws, &id),
                )
                .await?
            }
        };
        check_cidr(&subnet, cidr)?;
        if subnet.map_public_ip_on_launch() == Some(true) {
            // Drift: someone turned it on. Nothing of ours needs it, and it would give any
            // instance launched there a public address.
            aws.clients
                .ec2
                .modify_subnet_attribute()
                .subnet_id(&id)
                .map_public_ip_on_launch(AttributeBooleanValue::builder().value(false).build())
                .send()
                .await
                .map_err(err("turning off public IPs on launch"))?;
        }
        outputs_of(&subnet).ok_or_else(|| ResourceError::new(ErrorClass::Invalid, "subnet without an id"))
    }

    async fn inspect(&self, aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
        let out = aws
            .clients
            .ec2
            .describe_subnets()
            .subnet_ids(cx.outputs.id()?)
            .send()
            .await
            .map_err(err("describing the subnet"));
        let subnet = ec2::not_found_is_none(out)?.and_then(|o| o.subnets().first().cloned());
        Ok(match subnet.as_ref().and_then(|s| s.state()) {
            None => Inspection::missing(),
            Some(SubnetState::Available) => Inspection::available(),
            Some(s @ (SubnetState::Failed | SubnetState::FailedInsufficientCapacity)) => {
                Inspection::of(Live::Deleting).with_detail(s.as_str())
            }
            Some(s) => Inspection::of(Live::Creating).with_detail(s.as_str()),
        })
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, _deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::Subnet { cidr, .. } => desired_settings(&spec.key, cidr),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let out = aws
            .clients
            .ec2
            .describe_subnets()
            .subnet_ids(outputs.id()?)
            .send()
            .await
            .map_err(err("reading the subnet"));
        Ok(
            match ec2::not_found_is_none(out)?.and_then(|o| o.subnets().first().cloned()) {
                Some(s) => Observed::Present(live_settings(&cx.spec.key, &s)),
                None => Observed::Missing,
            },
        )
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let id = cx.outputs.id()?;
        // DependencyViolation while an ENI (Lambda, endpoint, NAT) is still in it.
        let result = ec2::delete_retrying(Kind::Subnet, &format!("deleting subnet {id}"), || async {
            aws.clients
                .ec2
                .delete_subnet()
                .subnet_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(err("deleting the subnet"))
        })
        .await;
        match result {
            Err(e) => Err(ec2::explain_holders(aws, "subnet-id", id, e).await),
            ok => ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diff::diff;

    fn subnet(on: Option<bool>) -> t::Subnet {
        t::Subnet::builder()
            .set_map_public_ip_on_launch(on)
            .cidr_block("10.0.1.0/24")
            .build()
    }

    #[test]
    fn public_ips_turned_on_by_hand_are_an_update_back_to_off() {
        let want = desired_settings("subnet-public-a", "10.0.1.0/24");
        for live in [Some(false), None] {
            assert!(diff(ATTRS, &want, &live_settings("subnet-public-a", &subnet(live)), None).is_empty());
        }
        let c = diff(
            ATTRS,
            &want,
            &live_settings("subnet-public-a", &subnet(Some(true))),
            None,
        );
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].old.as_str(), c[0].new.as_str()), ("on", "off"));
        assert_eq!(c[0].action, ChangeAction::Update);
    }

    #[test]
    fn another_cidr_in_the_config_is_forbidden_naming_the_tier_s_field() {
        for (key, attr, field) in [
            ("subnet-public-a", "public_cidr", "network.public_subnet_cidrs"),
            ("subnet-app-b", "app_cidr", "network.app_subnet_cidrs"),
            ("subnet-db-a", "db_cidr", "network.db_subnet_cidrs"),
        ] {
            let c = diff(
                ATTRS,
                &desired_settings(key, "10.0.9.0/24"),
                &live_settings(key, &subnet(Some(false))),
                None,
            );
            assert_eq!(c.len(), 1, "{key}");
            assert_eq!(
                (
                    c[0].attribute.as_str(),
                    c[0].old.as_str(),
                    c[0].new.as_str(),
                    c[0].action
                ),
                (attr, "10.0.1.0/24", "10.0.9.0/24", ChangeAction::Forbidden)
            );
            assert_eq!(c[0].fields, [field]);
        }
    }
}
