//! A security group with exactly the desired ingress rules. Rules between tiers reference
//! the other tier's group, never a CIDR. CreateSecurityGroup adds an allow-all egress rule;
//! tiers that never open connections have it revoked.
//!
//! The group name is `<deployment>-<key>`, unique per VPC: a create that collides with a
//! group of ours (a crash before the id was recorded, and a find that missed it) adopts it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{self as t, IpPermission, IpRange, ResourceType, UserIdGroupPair};

use super::{Aws, ResourceKind, ec2, props};
use crate::aws::{err, tags};
use crate::core::diff::{self, AttrSpec, ChangeAction, Settings, settings};
use crate::core::inspect::{InspectCtx, Inspection};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::rules::{ALL_PROTOCOLS, ANYWHERE, SgRule, SgSource};
use crate::core::spec::{Kind, NodeSpec, Props};

pub struct SecurityGroup;

/// The rules follow the blueprint (no config field): a difference is drift, repaired in place.
pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::with(
        "ingress",
        ChangeAction::Update,
        "missing rules are added before unknown ones are removed",
        &[],
    ),
    AttrSpec::with("egress", ChangeAction::Update, "", &[]),
];

const OPEN_EGRESS: &str = "all traffic to 0.0.0.0/0";

/// Desired settings (pure): the rules as `plan` prints them, group ids from `deps`.
pub fn desired_settings(rules: &[SgRule], restrict_egress: bool, deps: &BTreeMap<String, Outputs>) -> Settings {
    let perms = desired_ingress_with(rules, |key| Ok(super::dep_output(deps, key, "id"))).unwrap_or_default();
    settings([
        ("ingress", diff::list(perms.iter().map(|p| p.to_string()))),
        ("egress", if restrict_egress { "none" } else { OPEN_EGRESS }.to_string()),
    ])
}

/// What the group admits now.
fn live_settings(g: &t::SecurityGroup) -> Settings {
    let open = flatten(g.ip_permissions_egress())
        .iter()
        .any(|e| e.matches(&Perm::allow_all_egress()));
    settings([
        (
            "ingress",
            diff::list(flatten(g.ip_permissions()).iter().map(|p| p.to_string())),
        ),
        ("egress", if open { OPEN_EGRESS } else { "none" }.to_string()),
    ])
}

/// Where one permission admits traffic from, with group ids resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Source {
    Cidr(String),
    Cidr6(String),
    Group(String),
    PrefixList(String),
}

/// One (protocol, ports, source) permission: the unit AWS authorizes and revokes.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Perm {
    protocol: String,
    from_port: Option<i32>,
    to_port: Option<i32>,
    source: Source,
    description: Option<String>,
}

impl Perm {
    /// Same permission as far as AWS is concerned: descriptions are labels, and ports mean
    /// nothing for "all protocols".
    fn matches(&self, other: &Perm) -> bool {
        let proto = protocol_name(&self.protocol);
        proto == protocol_name(&other.protocol)
            && self.source == other.source
            && (proto == ALL_PROTOCOLS || (self.from_port == other.from_port && self.to_port == other.to_port))
    }

    fn allow_all_egress() -> Perm {
        Perm {
            protocol: ALL_PROTOCOLS.into(),
            from_port: None,
            to_port: None,
            source: Source::Cidr(ANYWHERE.into()),
            description: None,
        }
    }
}

impl std::fmt::Display for Perm {
    /// `tcp 443 from 0.0.0.0/0`, `all traffic from sg-0abc` (for drift reports).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let proto = protocol_name(&self.protocol);
        let source = match &self.source {
            Source::Cidr(c) | Source::Cidr6(c) | Source::Group(c) | Source::PrefixList(c) => c,
        };
        match (proto.as_str(), self.from_port, self.to_port) {
            (ALL_PROTOCOLS, _, _) => write!(f, "all traffic from {source}"),
            (p, Some(a), Some(b)) if a == b => write!(f, "{p} {a} from {source}"),
            (p, Some(a), Some(b)) => write!(f, "{p} {a}-{b} from {source}"),
            (p, _, _) => write!(f, "{p} from {source}"),
        }
    }
}

/// Drift of a group against its spec: missing and extra ingress rules, and the egress rule.
fn drift_of(i: &mut Inspection, desired: &[Perm], g: &t::SecurityGroup, restrict_egress: bool) {
    let (missing, extra) = ingress_diff(desired, &flatten(g.ip_permissions()));
    for p in missing {
        i.drift("ingress", p.to_string(), "absent");
    }
    for p in extra {
        i.drift("ingress", "absent", p.to_string());
    }
    let egress = flatten(g.ip_permissions_egress());
    let open = egress.iter().any(|e| e.matches(&Perm::allow_all_egress()));
    let actual = || {
        let rules: Vec<String> = egress
            .iter()
            .map(|p| p.to_string().replacen(" from ", " to ", 1))
            .collect();
        if rules.is_empty() {
            "none".to_string()
        } else {
            rules.join(", ")
        }
    };
    match (restrict_egress, open) {
        (true, true) => i.drift("egress", "none", actual()),
        (false, false) => i.drift("egress", "all traffic to 0.0.0.0/0", actual()),
        _ => {}
    }
}

/// AWS reports TCP as `tcp` whether it was given `tcp` or `6`.
fn protocol_name(p: &str) -> String {
    match p.to_ascii_lowercase().as_str() {
        "6" => "tcp".into(),
        "17" => "udp".into(),
        "1" => "icmp".into(),
        other => other.into(),
    }
}

/// The desired ingress: TCP on one port from a CIDR or from a dependency's group.
fn desired_ingress(cx: &NodeCtx<'_>, rules: &[SgRule]) -> Result<Vec<Perm>, ResourceError> {
    desired_ingress_with(rules, |key| cx.dep_id(key).map(String::from))
}

/// Same, with group keys resolved by `group_id` (dependencies for `up`, the recorded ids for
/// `status`).
fn desired_ingress_with(
    rules: &[SgRule],
    group_id: impl Fn(&str) -> Result<String, ResourceError>,
) -> Result<Vec<Perm>, ResourceError> {
    rules
        .iter()
        .map(|r| {
            let source = match &r.source {
                SgSource::Cidr(c) => Source::Cidr(c.clone()),
                SgSource::Group(key) => Source::Group(group_id(key)?),
            };
            Ok(Perm {
                protocol: "tcp".into(),
                from_port: Some(r.port),
                to_port: Some(r.port),
                source,
                description: Some(r.description.clone()),
            })
        })
        .collect()
}

/// AWS groups sources under one (protocol, ports) entry; split them into single permissions.
fn flatten(perms: &[IpPermission]) -> Vec<Perm> {
    let mut out = Vec::new();
    for p in perms {
        let perm = |source: Source, description: Option<&str>| Perm {
            protocol: p.ip_protocol().unwrap_or_default().to_string(),
            from_port: p.from_port(),
            to_port: p.to_port(),
            source,
            description: description.map(String::from),
        };
        out.extend(
            p.ip_ranges()
                .iter()
                .filter_map(|r| Some(perm(Source::Cidr(r.cidr_ip()?.into()), r.description()))),
        );
        out.extend(
            p.ipv6_ranges()
                .iter()
                .filter_map(|r| Some(perm(Source::Cidr6(r.cidr_ipv6()?.into()), r.description()))),
        );
        out.extend(
            p.user_id_group_pairs()
                .iter()
                .filter_map(|g| Some(perm(Source::Group(g.group_id()?.into()), g.description()))),
        );
        out.extend(
            p.prefix_list_ids()
                .iter()
                .filter_map(|l| Some(perm(Source::PrefixList(l.prefix_list_id()?.into()), l.description()))),
        );
    }
    out
}

/// Desired against existing: (to authorize, to revoke).
fn ingress_diff(desired: &[Perm], existing: &[Perm]) -> (Vec<Perm>, Vec<Perm>) {
    let add = desired
        .iter()
        .filter(|d| !existing.iter().any(|e| e.matches(d)))
        .cloned()
        .collect();
    let remove = existing
        .iter()
        .filter(|e| !desired.iter().any(|d| d.matches(e)))
        .cloned()
        .collect();
    (add, remove)
}

fn to_ip_permission(p: &Perm) -> IpPermission {
    let b = IpPermission::builder()
        .ip_protocol(&p.protocol)
        .set_from_port(p.from_port)
        .set_to_port(p.to_port);
    let d = p.description.clone();
    match &p.source {
        Source::Cidr(c) => b.ip_ranges(IpRange::builder().cidr_ip(c).set_description(d).build()),
        Source::Cidr6(c) => b.ipv6_ranges(t::Ipv6Range::builder().cidr_ipv6(c).set_description(d).build()),
        Source::Group(g) => b.user_id_group_pairs(UserIdGroupPair::builder().group_id(g).set_description(d).build()),
        Source::PrefixList(l) => {
            b.prefix_list_ids(t::PrefixListId::builder().prefix_list_id(l).set_description(d).build())
        }
    }
    .build()
}

fn name(aws: &Aws, key: &str) -> String {
    crate::core::names::security_group(&aws.env.deployment, key)
}

fn outputs_of(g: &t::SecurityGroup) -> Option<Outputs> {
    Some(
        Outputs::new()
            .with("id", g.group_id()?)
            .with("vpc_id", g.vpc_id().unwrap_or_default())
            .with("name", g.group_name().unwrap_or_default()),
    )
}

async fn describe(aws: &Aws, id: &str) -> Result<Option<t::SecurityGroup>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_security_groups()
        .group_ids(id)
        .send()
        .await
        .map_err(err("describing the security group"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.security_groups().first().cloned()))
}

/// After InvalidGroup.Duplicate: the group of that name in the VPC, if it is ours.
async fn adopt_by_name(
    aws: &Aws,
    cx: &NodeCtx<'_>,
    name: &str,
    vpc_id: &str,
    dup: ResourceError,
) -> Result<Outputs, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_security_groups()
        .filters(ec2::filter("group-name", [name]))
        .filters(ec2::filter("vpc-id", [vpc_id]))
        .send()
        .await
        .map_err(err("looking up the security group by name"))?;
    let ours = out
        .security_groups()
        .iter()
        .find(|g| tags::ec2_is_ours(g.tags(), &aws.env.deployment, &cx.spec.key));
    match ours.and_then(outputs_of) {
        Some(o) => Ok(o),
        None => Err(dup.with_hint(format!(
            "a security group named `{name}` already exists in the VPC without this deployment's tags: rename or delete it"
        ))),
    }
}

async fn authorize(aws: &Aws, id: &str, p: &Perm) -> Result<(), ResourceError> {
    let r = aws
        .clients
        .ec2
        .authorize_security_group_ingress()
        .group_id(id)
        .ip_permissions(to_ip_permission(p))
        .send()
        .await
        .map(|_| ())
        .map_err(err("adding an ingress rule"));
    match r {
        Err(e) if ec2::has_code(&e, "InvalidPermission.Duplicate") => Ok(()),
        other => other,
    }
}

/// Revoking what is not there (InvalidPermission.NotFound) is fine: the goal is reached.
fn absent_is_ok(r: Result<(), ResourceError>) -> Result<(), ResourceError> {
    match r {
        Err(e) if e.is(ErrorClass::NotFound) => Ok(()),
        other => other,
    }
}

/// Revokes `p`, a permission read from the group, with the description it has: AWS matches
/// on protocol, ports and source and does not need the description, but accepts the one the
/// rule has; moto 5.2.5 matches a group-sourced rule on its description too, and answered
/// InvalidPermission.NotFound (taken for "already gone") to a revoke without it, so the rule
/// stayed (a changed `dashboard_port` kept the old port open).
async fn revoke_ingress(aws: &Aws, id: &str, p: &Perm) -> Result<(), ResourceError> {
    absent_is_ok(
        aws.clients
            .ec2
            .revoke_security_group_ingress()
            .group_id(id)
            .ip_permissions(to_ip_permission(p))
            .send()
            .await
            .map(|_| ())
            .map_err(err("removing an ingress rule")),
    )
}

/// Egress is either AWS's default allow-all or, for restricted tiers, nothing.
async fn converge_egress(aws: &Aws, g: &t::SecurityGroup, restrict: bool) -> Result<(), ResourceError> {
    let id = g.group_id().unwrap_or_default();
    let all = Perm::allow_all_egress();
    let present = flatten(g.ip_permissions_egress()).iter().any(|e| e.matches(&all));
    let ec2 = &aws.clients.ec2;
    match (restrict, present) {
        (true, true) => absent_is_ok(
            ec2.revoke_security_group_egress()
                .group_id(id)
                .ip_permissions(to_ip_permission(&all))
                .send()
                .await
                .map(|_| ())
                .map_err(err("removing the allow-all egress rule")),
        ),
        (false, false) => {
            let r = ec2
                .authorize_security_group_egress()
                .group_id(id)
                .ip_permissions(to_ip_permission(&all))
                .send()
                .await
                .map(|_| ())
                .map_err(err("restoring the allow-all egress rule"));
            match r {
                Err(e) if ec2::has_code(&e, "InvalidPermission.Duplicate") => Ok(()),
                other => other,
            }
        }
        _ => Ok(()),
    }
}

#[async_trait]
impl ResourceKind for SecurityGroup {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let out = aws
            .clients
            .ec2
            .describe_security_groups()
            .set_filters(Some(tags::ec2_filters(&aws.env.deployment, &cx.spec.key)))
            .send()
            .await
            .map_err(err("looking up the security group by tag"))?;
        Ok(out
            .security_groups()
            .iter()
            .find(|g| tags::ec2_is_ours(g.tags(), &aws.env.deployment, &cx.spec.key))
            .and_then(outputs_of))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (vpc, description) = props!(cx, SecurityGroup { vpc, description });
        let vpc_id = cx.dep_id(vpc)?;
        let name = name(aws, &cx.spec.key);
        let r = aws
            .clients
            .ec2
            .create_security_group()
            .group_name(&name)
            .description(description)
            .vpc_id(vpc_id)
            .tag_specifications(tags::ec2_spec(
                ResourceType::SecurityGroup,
                &aws.env.deployment,
                &cx.spec.key,
            ))
            .send()
            .await
            .map_err(err("creating the security group"));
        match r {
            Ok(out) => {
                let id = out.group_id().unwrap_or_default();
                // What AWS makes a new VPC security group: no ingress rule, egress to anywhere.
                let made = t::SecurityGroup::builder()
                    .group_id(id)
                    .vpc_id(vpc_id)
                    .group_name(&name)
                    .ip_permissions_egress(to_ip_permission(&Perm::allow_all_egress()))
                    .build();
                aws.answers.keep(id, made);
                Ok(Outputs::new().with("id", id).with("vpc_id", vpc_id).with("name", name))
            }
            Err(e) if ec2::has_code(&e, "InvalidGroup.Duplicate") => adopt_by_name(aws, cx, &name, vpc_id, e).await,
            Err(e) => Err(e),
        }
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (ingress, restrict_egress) = props!(
            cx,
            SecurityGroup {
                ingress,
                restrict_egress
            }
        );
        let id = outputs.id()?.to_string();
        let desired = desired_ingress(cx, ingress)?;
        let group = match aws.answers.take::<t::SecurityGroup>(&id) {
            Some(made) => made,
            None => {
                ec2::retry_not_found("reading the new security group", || async {
                    describe(aws, &id).await?.ok_or_else(|| {
                        ResourceError::new(ErrorClass::NotFound, format!("security group {id} is not visible yet"))
                    })
                })
                .await?
            }
        };
        // Add before removing, so a changed rule never leaves a gap.
        let (add, remove) = ingress_diff(&desired, &flatten(group.ip_permissions()));
        for p in &add {
            authorize(aws, &id, p).await?;
        }
        for p in &remove {
            revoke_ingress(aws, &id, p).await?;
        }
        converge_egress(aws, &group, *restrict_egress).await?;
        Ok(outputs_of(&group).unwrap_or(outputs))
    }

    async fn inspect(&self, aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
        let Some(g) = describe(aws, cx.outputs.id()?).await? else {
            return Ok(Inspection::missing());
        };
        let mut i = Inspection::available();
        if let Some(Props::SecurityGroup {
            ingress,
            restrict_egress,
            ..
        }) = cx.spec.map(|s| &s.props)
        {
            let desired = desired_ingress_with(ingress, |key| {
                cx.id_of(key).map(String::from).ok_or_else(|| {
                    ResourceError::new(
                        ErrorClass::Invalid,
                        format!("`{}` admits `{key}`, which is not recorded", cx.key),
                    )
                })
            })?;
            drift_of(&mut i, &desired, &g, *restrict_egress);
        }
        Ok(i)
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::SecurityGroup {
                ingress,
                restrict_egress,
                ..
            } => desired_settings(ingress, *restrict_egress, deps),
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
        let id = cx.outputs.id()?;
        // DependencyViolation while an ENI (a Lambda's, slow to go) or another group's rule
        // still references it.
        let result = ec2::delete_retrying(
            Kind::SecurityGroup,
            &format!("deleting security group {id}"),
            || async {
                aws.clients
                    .ec2
                    .delete_security_group()
                    .group_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(err("deleting the security group"))
            },
        )
        .await;
        match result {
            Err(e) => Err(ec2::explain_holders(aws, "group-id", id, e).await),
            ok => ok,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(port: i32, source: Source) -> Perm {
        Perm {
            protocol: "tcp".into(),
            from_port: Some(port),
            to_port: Some(port),
            source,
            description: None,
        }
    }

    #[test]
    fn missing_rules_are_added_and_strays_removed() {
        let desired = vec![
            tcp(80, Source::Cidr(ANYWHERE.into())),
            tcp(443, Source::Cidr(ANYWHERE.into())),
        ];
        let existing = vec![
            tcp(80, Source::Cidr(ANYWHERE.into())),
            tcp(22, Source::Cidr(ANYWHERE.into())),
        ];
        let (add, remove) = ingress_diff(&desired, &existing);
        assert_eq!(add, vec![desired[1].clone()]);
        assert_eq!(remove, vec![existing[1].clone()]);
    }

    #[test]
    fn descriptions_and_protocol_spelling_do_not_count_as_drift() {
        let mut desired = tcp(8224, Source::Group("sg-alb".into()));
        desired.description = Some("dashboard from the ALB".into());
        let mut existing = tcp(8224, Source::Group("sg-alb".into()));
        existing.protocol = "6".into();
        assert_eq!(ingress_diff(&[desired], &[existing]), (vec![], vec![]));
    }

    #[test]
    fn same_port_from_another_source_is_different() {
        let desired = vec![tcp(3306, Source::Group("sg-app".into()))];
        let existing = vec![tcp(3306, Source::Cidr("10.0.0.0/16".into()))];
        let (add, remove) = ingress_diff(&desired, &existing);
        assert_eq!(add, desired);
        assert_eq!(remove, existing);
    }

    #[test]
    fn aws_grouped_permissions_are_split_per_source() {
        let p = IpPermission::builder()
            .ip_protocol("tcp")
            .from_port(2049)
            .to_port(2049)
            .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-app").build())
            .user_id_group_pairs(UserIdGroupPair::builder().group_id("sg-lambda").build())
            .ip_ranges(IpRange::builder().cidr_ip("10.0.0.0/16").build())
            .build();
        let flat = flatten(&[p]);
        assert_eq!(
            flat,
            vec![
                tcp(2049, Source::Cidr("10.0.0.0/16".into())),
                tcp(2049, Source::Group("sg-app".into())),
                tcp(2049, Source::Group("sg-lambda".into())),
            ]
        );
    }

    #[test]
    fn drift_names_missing_and_extra_rules_and_open_egress() {
        let g = t::SecurityGroup::builder()
            .ip_permissions(to_ip_permission(&tcp(22, Source::Cidr(ANYWHERE.into()))))
            .ip_permissions_egress(to_ip_permission(&Perm::allow_all_egress()))
            .build();
        let mut i = Inspection::available();
        drift_of(&mut i, &[tcp(3306, Source::Group("sg-app1".into()))], &g, true);
        let got: Vec<(&str, &str, &str)> = i
            .drift
            .iter()
            .map(|d| (d.attribute.as_str(), d.expected.as_str(), d.actual.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ingress", "tcp 3306 from sg-app1", "absent"),
                ("ingress", "absent", "tcp 22 from 0.0.0.0/0"),
                ("egress", "none", "all traffic to 0.0.0.0/0"),
            ]
        );
        let mut ok = Inspection::available();
        drift_of(&mut ok, &[tcp(22, Source::Cidr(ANYWHERE.into()))], &g, false);
        assert!(ok.drift.is_empty(), "{:?}", ok.drift);
    }

    #[test]
    fn a_hand_added_rule_and_opened_egress_are_updates() {
        use crate::core::rules::SgRule;
        let rules = vec![SgRule {
            port: 3306,
            source: SgSource::Group("sg-app".into()),
            description: "db from app".into(),
        }];
        let deps: BTreeMap<String, Outputs> = [("sg-app".to_string(), Outputs::new().with("id", "sg-0app"))].into();
        let want = desired_settings(&rules, true, &deps);
        let g = t::SecurityGroup::builder()
            .ip_permissions(to_ip_permission(&tcp(3306, Source::Group("sg-0app".into()))))
            .build();
        assert!(diff::diff(ATTRS, &want, &live_settings(&g), None).is_empty());
        let drifted = t::SecurityGroup::builder()
            .ip_permissions(to_ip_permission(&tcp(3306, Source::Group("sg-0app".into()))))
            .ip_permissions(to_ip_permission(&tcp(22, Source::Cidr(ANYWHERE.into()))))
            .ip_permissions_egress(to_ip_permission(&Perm::allow_all_egress()))
            .build();
        let c = diff::diff(ATTRS, &want, &live_settings(&drifted), None);
        let got: Vec<(&str, &str, &str, ChangeAction)> = c
            .iter()
            .map(|c| (c.attribute.as_str(), c.old.as_str(), c.new.as_str(), c.action))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "ingress",
                    "tcp 22 from 0.0.0.0/0, tcp 3306 from sg-0app",
                    "tcp 3306 from sg-0app",
                    ChangeAction::Update
                ),
                ("egress", OPEN_EGRESS, "none", ChangeAction::Update),
            ]
        );
    }

    #[test]
    fn the_default_egress_rule_is_recognised() {
        let p = IpPermission::builder()
            .ip_protocol("-1")
            .ip_ranges(IpRange::builder().cidr_ip(ANYWHERE).build())
            .build();
        assert!(flatten(&[p]).iter().any(|e| e.matches(&Perm::allow_all_egress())));
    }
}
