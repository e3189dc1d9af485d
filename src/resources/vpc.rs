//! The VPC, with DNS support and DNS hostnames on (interface endpoints' private DNS needs both),
//! and its default security group stripped of its rules: nothing of pi-deploy uses it, and
//! anything put in it by mistake would otherwise talk to everything else in it. `status`
//! reports the rules if they come back.

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, Filter, ResourceType, SecurityGroup, VpcState};

use super::{Aws, ResourceKind, ec2, observe, props};
use crate::aws::wait::{self, Backoff, Poll};
use crate::aws::{err, tags};
use std::collections::BTreeMap;

use crate::core::diff::{AttrSpec, ChangeAction, Settings, settings};
use crate::core::inspect::{InspectCtx, Inspection, Live};
use crate::core::latency;
use crate::core::resource::{DeleteCtx, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props};

pub struct Vpc;

/// The default security group's rules are drift: `up` revokes them again (converge).
pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::update("default_security_group_rules", &[]),
    AttrSpec::with(
        "cidr",
        ChangeAction::Forbidden,
        "a VPC's primary CIDR cannot change, and every subnet, ACL and rule follows it: keep the old network.vpc_cidr (and subnet CIDRs), or deploy a new deployment beside this one and move the data (`pi-deploy snapshot`, then `restore` there)",
        &["network.vpc_cidr"],
    ),
];

/// The `default_security_group_rules` setting of a stripped group.
pub const NO_RULES: &str = "none";

/// The rules as one setting: `none`, or the sorted rule lines.
pub fn rules_setting(rules: Vec<String>) -> String {
    if rules.is_empty() {
        NO_RULES.to_string()
    } else {
        crate::core::diff::list(rules)
    }
}

/// The VPC's default security group (every VPC has one; it cannot be deleted).
async fn default_group(aws: &Aws, vpc_id: &str) -> Result<Option<SecurityGroup>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(vpc_id).build())
        .filters(Filter::builder().name("group-name").values("default").build())
        .send()
        .await
        .map_err(err("describing the VPC's default security group"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| {
        o.security_groups()
            .iter()
            .find(|g| g.group_name() == Some("default"))
            .cloned()
    }))
}

/// The default group's rules, one short line each ("in tcp 22 from 0.0.0.0/0").
pub fn default_group_rules(g: &SecurityGroup) -> Vec<String> {
    let line = |dir: &str, p: &aws_sdk_ec2::types::IpPermission| {
        let proto = match p.ip_protocol() {
            Some("-1") | None => "all".to_string(),
            Some(other) => other.to_string(),
        };
        let ports = match (p.from_port(), p.to_port()) {
            (Some(f), Some(t)) if f == t && f >= 0 => format!(" {f}"),
            (Some(f), Some(t)) if f >= 0 => format!(" {f}-{t}"),
            _ => String::new(),
        };
        let mut peers: Vec<String> = p
            .ip_ranges()
            .iter()
            .filter_map(|r| r.cidr_ip().map(String::from))
            .collect();
        peers.extend(p.ipv6_ranges().iter().filter_map(|r| r.cidr_ipv6().map(String::from)));
        peers.extend(
            p.user_id_group_pairs()
                .iter()
                .filter_map(|g| g.group_id().map(String::from)),
        );
        peers.extend(
            p.prefix_list_ids()
                .iter()
                .filter_map(|l| l.prefix_list_id().map(String::from)),
        );
        let word = if dir == "in" { "from" } else { "to" };
        format!("{dir} {proto}{ports} {word} {}", peers.join("+"))
    };
    let mut rules: Vec<String> = g.ip_permissions().iter().map(|p| line("in", p)).collect();
    rules.extend(g.ip_permissions_egress().iter().map(|p| line("out", p)));
    rules
}

/// Revoke every rule of the VPC's default group (AWS gives it allow-all egress and
/// allow-all ingress from itself). Idempotent: an empty group needs no call.
async fn strip_default_group(aws: &Aws, vpc_id: &str) -> Result<(), ResourceError> {
    let ec2 = &aws.clients.ec2;
    // Created with the VPC, but a describe right after may not see it yet.
    let g = ec2::retry_not_found("finding the VPC's default security group", || async {
        default_group(aws, vpc_id).await?.ok_or_else(|| {
            ResourceError::new(
                crate::core::resource::ErrorClass::NotFound,
                format!("the default security group of {vpc_id} is not visible yet"),
            )
        })
    })
    .await?;
    let id = g.group_id().unwrap_or_default();
    if !g.ip_permissions().is_empty() {
        ec2.revoke_security_group_ingress()
            .group_id(id)
            .set_ip_permissions(Some(g.ip_permissions().to_vec()))
            .send()
            .await
            .map_err(err("revoking the default security group's ingress rules"))?;
    }
    if !g.ip_permissions_egress().is_empty() {
        ec2.revoke_security_group_egress()
            .group_id(id)
            .set_ip_permissions(Some(g.ip_permissions_egress().to_vec()))
            .send()
            .await
            .map_err(err("revoking the default security group's egress rules"))?;
    }
    Ok(())
}

#[async_trait]
impl ResourceKind for Vpc {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let out = aws
            .clients
            .ec2
            .describe_vpcs()
            .set_filters(Some(tags::ec2_filters(&aws.env.deployment, &cx.spec.key)))
            .send()
            .await
            .map_err(err("looking up the VPC by tag"))?;
        Ok(out
            .vpcs()
            .iter()
            .find(|v| tags::ec2_is_ours(v.tags(), &aws.env.deployment, &cx.spec.key))
            .and_then(|v| v.vpc_id())
            .map(|id| Outputs::new().with("id", id)))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (cidr,) = props!(cx, Vpc { cidr });
        let out = aws
            .clients
            .ec2
            .create_vpc()
            .cidr_block(cidr)
            .tag_specifications(tags::ec2_spec(ResourceType::Vpc, &aws.env.deployment, &cx.spec.key))
            .send()
            .await
            .map_err(err("creating the VPC"))?;
        let id = out.vpc().and_then(|v| v.vpc_id()).unwrap_or_default();
        if out.vpc().and_then(|v| v.state()) == Some(&VpcState::Available) {
            aws.answers.keep(id, VpcState::Available);
        }
        Ok(Outputs::new().with("id", id))
    }

    async fn converge(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let id = outputs.id()?.to_string();
        let ec2 = &aws.clients.ec2;
        // Created `available` by this process: no read needed.
        let available = aws.answers.take::<VpcState>(&id).is_some();
        if !available {
            wait::wait_for(
                "VPC to become available",
                latency::create_deadline(Kind::Vpc),
                Backoff::QUICK,
                || async {
                    let out = ec2
                        .describe_vpcs()
                        .vpc_ids(&id)
                        .send()
                        .await
                        .map_err(err("describing the VPC"));
                    // Right after create, EC2 may not know the id yet: not found means not yet.
                    let out = match out {
                        Err(e) if e.is(crate::core::resource::ErrorClass::NotFound) => {
                            return crate::aws::consistency::not_visible(format!("VPC {id}"));
                        }
                        other => other?,
                    };
                    Ok(match out.vpcs().first().and_then(|v| v.state()) {
                        Some(VpcState::Available) => Poll::Ready(()),
                        s => Poll::Pending(format!("{s:?}")),
                    })
                },
            )
            .await?;
        }
        // One attribute per call: the API refuses both in one request. A describe that saw
        // the VPC does not mean every EC2 host does: NotFound here is "not yet" too (the
        // calls are idempotent, so asking again is safe).
        let on = || AttributeBooleanValue::builder().value(true).build();
        ec2::retry_not_found("enabling DNS support", || async {
            ec2.modify_vpc_attribute()
                .vpc_id(&id)
                .enable_dns_support(on())
                .send()
                .await
                .map_err(err("enabling DNS support"))
        })
        .await?;
        ec2::retry_not_found("enabling DNS hostnames", || async {
            ec2.modify_vpc_attribute()
                .vpc_id(&id)
                .enable_dns_hostnames(on())
                .send()
                .await
                .map_err(err("enabling DNS hostnames"))
        })
        .await?;
        strip_default_group(aws, &id).await?;
        Ok(outputs)
    }

    async fn inspect(&self, aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
        let out = aws
            .clients
            .ec2
            .describe_vpcs()
            .vpc_ids(cx.outputs.id()?)
            .send()
            .await
            .map_err(err("describing the VPC"));
        let vpc = ec2::not_found_is_none(out)?.and_then(|o| o.vpcs().first().cloned());
        // The default group's rules are compared by `status` through `read` and the diff.
        Ok(match vpc.as_ref().and_then(|v| v.state()) {
            None => Inspection::missing(),
            Some(VpcState::Available) => Inspection::available(),
            Some(s) => Inspection::of(Live::Creating).with_detail(s.as_str()),
        })
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, _deps: &BTreeMap<String, Outputs>) -> Settings {
        let mut s = settings([("default_security_group_rules", NO_RULES.to_string())]);
        if let Props::Vpc { cidr } = &spec.props {
            s.insert("cidr".into(), cidr.clone());
        }
        s
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let id = outputs.id()?;
        let out = aws
            .clients
            .ec2
            .describe_vpcs()
            .vpc_ids(id)
            .send()
            .await
            .map_err(err("reading the VPC"));
        let Some(vpc) = ec2::not_found_is_none(out)?.and_then(|o| o.vpcs().first().cloned()) else {
            return Ok(Observed::Missing);
        };
        let group = default_group(aws, id).await?;
        let cidr = vpc.cidr_block().map(String::from);
        Ok(observe::observed(Some(vpc), |_| {
            let mut s = match group {
                // A group not visible (yet) reads as nothing to compare.
                None => Settings::new(),
                Some(g) => settings([("default_security_group_rules", rules_setting(default_group_rules(&g)))]),
            };
            if let Some(cidr) = cidr {
                s.insert("cidr".into(), cidr);
            }
            s
        }))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let id = cx.outputs.id()?;
        ec2::delete_retrying(Kind::Vpc, &format!("deleting VPC {id}"), || async {
            aws.clients
                .ec2
                .delete_vpc()
                .vpc_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(err("deleting the VPC"))
        })
        .await
    }
}
