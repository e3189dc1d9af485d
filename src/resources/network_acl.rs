//! A network ACL with exactly the desired entries, associated with its subnets (the vendor's
//! template created one and never associated it). Every subnet always has exactly one ACL
//! association (the VPC's default ACL unless moved), so associating means replacing that
//! association; on delete, the subnets go back to the default ACL first.
//!
//! Day 2: `read` returns the entries (one line per rule, as `rule_text` writes it) and the
//! subnets associated with the ACL; `update` adds missing and changed entries before it
//! removes unknown ones, moves the config's subnets back onto the ACL and any other subnet
//! associated with it by hand back to the VPC's default ACL.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{self as t, PortRange, ResourceType, RuleAction};

use super::{Aws, ResourceKind, ec2, props};
use crate::aws::wait::{self, Poll};
use crate::aws::{err, tags};
use crate::core::diff::{self, AttrSpec, Change, ChangeAction, Settings, settings};
use crate::core::inspect::{InspectCtx, Inspection};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::rules::{ALL_PROTOCOLS, AclRule};
use crate::core::spec::{Kind, NodeSpec, Props};

pub struct NetworkAcl;

/// The rules and subnets follow the blueprint (no config field): a difference is drift,
/// repaired in place.
pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::with(
        "entries",
        ChangeAction::Update,
        "missing and changed entries go in before unknown ones are removed",
        &[],
    ),
    AttrSpec::with(
        "subnets",
        ChangeAction::Update,
        "the config's subnets are moved back onto the ACL; another subnet goes back to the VPC's default ACL",
        &[],
    ),
];

/// Desired settings (pure): the entries as `rule_text` writes them, the subnets' ids from `deps`.
pub fn desired_settings(rules: &[AclRule], subnets: &[String], deps: &BTreeMap<String, Outputs>) -> Settings {
    settings([
        ("entries", diff::list(rules.iter().map(rule_text))),
        (
            "subnets",
            diff::list(subnets.iter().map(|k| super::dep_output(deps, k, "id"))),
        ),
    ])
}

/// Live settings (pure): AWS's catch-all deny entries, which cannot change, are left out.
fn live_settings(acl: &t::NetworkAcl) -> Settings {
    let entries: Vec<AclRule> = acl
        .entries()
        .iter()
        .filter_map(rule_of)
        .filter(|r| r.number < FIRST_DEFAULT_RULE)
        .collect();
    settings([
        ("entries", diff::list(entries.iter().map(rule_text))),
        (
            "subnets",
            diff::list(
                acl.associations()
                    .iter()
                    .filter_map(|a| a.subnet_id().map(String::from)),
            ),
        ),
    ])
}

/// Rule numbers from here up are AWS's catch-all deny entries (32767 IPv4, 32768 IPv6),
/// which cannot be changed or deleted.
const FIRST_DEFAULT_RULE: i32 = 32767;

/// What to change so the ACL's entries equal the desired rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct AclDiff {
    create: Vec<AclRule>,
    replace: Vec<AclRule>,
    /// (rule number, egress) of entries that are not desired.
    delete: Vec<(i32, bool)>,
}

/// AWS writes protocols as numbers but accepts names; compare in one form.
fn protocol_number(p: &str) -> String {
    match p.to_ascii_lowercase().as_str() {
        "tcp" => "6".into(),
        "udp" => "17".into(),
        "icmp" => "1".into(),
        "all" => ALL_PROTOCOLS.into(),
        other => other.into(),
    }
}

/// Same entry as far as AWS is concerned: ports mean nothing for "all protocols".
fn same_rule(a: &AclRule, b: &AclRule) -> bool {
    let all = protocol_number(&a.protocol) == ALL_PROTOCOLS;
    a.number == b.number
        && a.egress == b.egress
        && protocol_number(&a.protocol) == protocol_number(&b.protocol)
        && a.cidr == b.cidr
        && a.allow == b.allow
        && (all || (a.from_port == b.from_port && a.to_port == b.to_port))
}

/// Desired rules against the ACL's current entries (the default entries are ignored).
fn diff_entries(desired: &[AclRule], existing: &[AclRule]) -> AclDiff {
    let existing: Vec<&AclRule> = existing.iter().filter(|e| e.number < FIRST_DEFAULT_RULE).collect();
    let slot = |r: &AclRule, e: &AclRule| r.number == e.number && r.egress == e.egress;
    let mut diff = AclDiff::default();
    for want in desired {
        match existing.iter().find(|e| slot(want, e)) {
            Some(have) if same_rule(want, have) => {}
            Some(_) => diff.replace.push(want.clone()),
            None => diff.create.push(want.clone()),
        }
    }
    diff.delete = existing
        .iter()
        .filter(|e| !desired.iter().any(|w| slot(w, e)))
        .map(|e| (e.number, e.egress))
        .collect();
    diff
}

/// `in #100 allow tcp 80-80 0.0.0.0/0` (for drift reports).
fn rule_text(r: &AclRule) -> String {
    let dir = if r.egress { "out" } else { "in" };
    let verdict = if r.allow { "allow" } else { "deny" };
    let proto = protocol_number(&r.protocol);
    let what = match proto.as_str() {
        ALL_PROTOCOLS => "all".to_string(),
        "6" => format!("tcp {}-{}", r.from_port, r.to_port),
        "17" => format!("udp {}-{}", r.from_port, r.to_port),
        p => format!("protocol {p} {}-{}", r.from_port, r.to_port),
    };
    format!("{dir} #{} {verdict} {what} {}", r.number, r.cidr)
}

/// Drift of an ACL against its spec: entries (by rule slot) and subnet associations.
fn drift_of(i: &mut Inspection, desired: &[AclRule], existing: &[AclRule], subnets: &[String], associated: &[String]) {
    let diff = diff_entries(desired, existing);
    for r in &diff.create {
        i.drift("entry", rule_text(r), "absent");
    }
    for want in &diff.replace {
        let have = existing
            .iter()
            .find(|e| e.number == want.number && e.egress == want.egress);
        i.drift("entry", rule_text(want), have.map(rule_text).unwrap_or_default());
    }
    for (number, egress) in &diff.delete {
        let have = existing.iter().find(|e| e.number == *number && e.egress == *egress);
        i.drift("entry", "absent", have.map(rule_text).unwrap_or_default());
    }
    for s in subnets.iter().filter(|s| !associated.contains(s)) {
        i.drift("association", s.as_str(), "absent (the subnet uses another ACL)");
    }
}

fn rule_of(e: &t::NetworkAclEntry) -> Option<AclRule> {
    Some(AclRule {
        number: e.rule_number()?,
        egress: e.egress().unwrap_or(false),
        protocol: e.protocol().unwrap_or_default().to_string(),
        cidr: e.cidr_block().or(e.ipv6_cidr_block()).unwrap_or_default().to_string(),
        from_port: e.port_range().and_then(|p| p.from()).unwrap_or(0),
        to_port: e.port_range().and_then(|p| p.to()).unwrap_or(0),
        allow: e.rule_action() == Some(&RuleAction::Allow),
    })
}

fn action(allow: bool) -> RuleAction {
    if allow { RuleAction::Allow } else { RuleAction::Deny }
}

/// Ports only for protocols that have them: "all protocols" takes no port range.
fn port_range(r: &AclRule) -> Option<PortRange> {
    (protocol_number(&r.protocol) != ALL_PROTOCOLS)
        .then(|| PortRange::builder().from(r.from_port).to(r.to_port).build())
}

async fn create_entry(aws: &Aws, acl_id: &str, r: &AclRule) -> Result<(), ResourceError> {
    aws.clients
        .ec2
        .create_network_acl_entry()
        .network_acl_id(acl_id)
        .rule_number(r.number)
        .egress(r.egress)
        .protocol(&r.protocol)
        .cidr_block(&r.cidr)
        .set_port_range(port_range(r))
        .rule_action(action(r.allow))
        .send()
        .await
        .map(|_| ())
        .map_err(err("adding a network ACL entry"))
}

async fn replace_entry(aws: &Aws, acl_id: &str, r: &AclRule) -> Result<(), ResourceError> {
    aws.clients
        .ec2
        .replace_network_acl_entry()
        .network_acl_id(acl_id)
        .rule_number(r.number)
        .egress(r.egress)
        .protocol(&r.protocol)
        .cidr_block(&r.cidr)
        .set_port_range(port_range(r))
        .rule_action(action(r.allow))
        .send()
        .await
        .map(|_| ())
        .map_err(err("replacing a network ACL entry"))
}

async fn delete_entry(aws: &Aws, acl_id: &str, number: i32, egress: bool) -> Result<(), ResourceError> {
    let r = aws
        .clients
        .ec2
        .delete_network_acl_entry()
        .network_acl_id(acl_id)
        .rule_number(number)
        .egress(egress)
        .send()
        .await
        .map(|_| ())
        .map_err(err("deleting a network ACL entry"));
    match r {
        Err(e) if e.is(ErrorClass::NotFound) => Ok(()),
        other => other,
    }
}

async fn describe(aws: &Aws, id: &str) -> Result<Option<t::NetworkAcl>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_network_acls()
        .network_acl_ids(id)
        .send()
        .await
        .map_err(err("describing the network ACL"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.network_acls().first().cloned()))
}

/// Make the entries match. New and changed rules go in before unwanted ones go out, so a
/// rerun never leaves the subnets with less than the old or the new rule set allows.
async fn converge_entries(aws: &Aws, acl_id: &str, desired: &[AclRule]) -> Result<(), ResourceError> {
    let acl = match aws.answers.take::<t::NetworkAcl>(acl_id) {
        Some(created) => created,
        None => {
            ec2::retry_not_found("reading the new network ACL", || async {
                describe(aws, acl_id).await?.ok_or_else(|| {
                    ResourceError::new(ErrorClass::NotFound, format!("network ACL {acl_id} is not visible yet"))
                })
            })
            .await?
        }
    };
    let existing: Vec<AclRule> = acl.entries().iter().filter_map(rule_of).collect();
    let diff = diff_entries(desired, &existing);
    for r in &diff.create {
        match create_entry(aws, acl_id, r).await {
            Err(e) if e.is(ErrorClass::AlreadyExists) => replace_entry(aws, acl_id, r).await?,
            other => other?,
        }
    }
    for r in &diff.replace {
        replace_entry(aws, acl_id, r).await?;
    }
    for &(number, egress) in &diff.delete {
        delete_entry(aws, acl_id, number, egress).await?;
    }
    Ok(())
}

/// One subnet's current ACL association.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Association {
    subnet_id: String,
    association_id: String,
    acl_id: String,
}

/// Every association of these subnets, read through the VPC filter (see route_table.rs on
/// multi-value `association.subnet-id` filters).
async fn associations_of(aws: &Aws, vpc_id: &str, subnets: &[String]) -> Result<Vec<Association>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_network_acls()
        .filters(ec2::filter("vpc-id", [vpc_id]))
        .send()
        .await
        .map_err(err("reading the subnets' network ACL associations"))?;
    Ok(out
        .network_acls()
        .iter()
        .flat_map(|acl| acl.associations())
        .filter(|a| a.subnet_id().is_some_and(|s| subnets.iter().any(|x| x == s)))
        .filter_map(|a| {
            Some(Association {
                subnet_id: a.subnet_id()?.to_string(),
                association_id: a.network_acl_association_id()?.to_string(),
                acl_id: a.network_acl_id()?.to_string(),
            })
        })
        .collect())
}

/// The associations to move to `acl_id`, or the subnets whose association is not visible
/// yet (a subnet created moments ago).
fn plan_associations(acl_id: &str, subnets: &[String], current: &[Association]) -> Result<Vec<String>, Vec<String>> {
    let missing: Vec<String> = subnets
        .iter()
        .filter(|s| !current.iter().any(|a| &a.subnet_id == *s))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(current
        .iter()
        .filter(|a| a.acl_id != acl_id)
        .map(|a| a.association_id.clone())
        .collect())
}

async fn replace_association(aws: &Aws, association_id: &str, acl_id: &str) -> Result<(), ResourceError> {
    aws.clients
        .ec2
        .replace_network_acl_association()
        .association_id(association_id)
        .network_acl_id(acl_id)
        .send()
        .await
        .map(|_| ())
        .map_err(err("associating the network ACL with a subnet"))
}

async fn converge_associations(aws: &Aws, vpc_id: &str, acl_id: &str, subnets: &[String]) -> Result<(), ResourceError> {
    let moves = wait::wait_for(
        "subnets' network ACL associations to be visible",
        ec2::CONSISTENCY_BUDGET,
        wait::Backoff::QUICK,
        || async {
            let current = associations_of(aws, vpc_id, subnets).await?;
            Ok(match plan_associations(acl_id, subnets, &current) {
                Ok(moves) => Poll::Ready(moves),
                Err(missing) => Poll::Pending(format!("no association for {}", missing.join(", "))),
            })
        },
    )
    .await?;
    for association_id in &moves {
        // The new ACL may not be visible to this call yet.
        ec2::retry_not_found("associating the network ACL", || {
            replace_association(aws, association_id, acl_id)
        })
        .await?;
    }
    Ok(())
}

/// Subnets associated with the ACL that the config does not name (moved onto it by hand).
fn strays(acl: &t::NetworkAcl, wanted: &[String]) -> Vec<String> {
    acl.associations()
        .iter()
        .filter(|a| a.subnet_id().is_some_and(|s| !wanted.iter().any(|w| w == s)))
        .filter_map(|a| a.network_acl_association_id().map(String::from))
        .collect()
}

/// Move the strays back to the VPC's default ACL (where every subnet starts).
async fn release_strays(aws: &Aws, acl_id: &str, vpc_id: &str, wanted: &[String]) -> Result<(), ResourceError> {
    let Some(acl) = describe(aws, acl_id).await? else {
        return Ok(());
    };
    let strays = strays(&acl, wanted);
    if strays.is_empty() {
        return Ok(());
    }
    let default = default_acl(aws, acl.vpc_id().unwrap_or(vpc_id)).await?;
    for assoc in &strays {
        match replace_association(aws, assoc, &default).await {
            Err(e) if e.is(ErrorClass::NotFound) => {}
            other => other?,
        }
    }
    Ok(())
}

/// The VPC's default ACL, where a subnet goes back to before our ACL is deleted.
async fn default_acl(aws: &Aws, vpc_id: &str) -> Result<String, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_network_acls()
        .filters(ec2::filter("vpc-id", [vpc_id]))
        .filters(ec2::filter("default", ["true"]))
        .send()
        .await
        .map_err(err("looking up the VPC's default network ACL"))?;
    out.network_acls()
        .iter()
        .find(|a| a.is_default() == Some(true))
        .and_then(|a| a.network_acl_id())
        .map(String::from)
        .ok_or_else(|| ResourceError::new(ErrorClass::NotFound, format!("VPC {vpc_id} has no default network ACL")))
}

#[async_trait]
impl ResourceKind for NetworkAcl {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let out = aws
            .clients
            .ec2
            .describe_network_acls()
            .set_filters(Some(tags::ec2_filters(&aws.env.deployment, &cx.spec.key)))
            .send()
            .await
            .map_err(err("looking up the network ACL by tag"))?;
        Ok(out
            .network_acls()
            .iter()
            .find(|a| tags::ec2_is_ours(a.tags(), &aws.env.deployment, &cx.spec.key))
            .and_then(|a| {
                Some(
                    Outputs::new()
                        .with("id", a.network_acl_id()?)
                        .with("vpc_id", a.vpc_id().unwrap_or_default()),
                )
            }))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (vpc,) = props!(cx, NetworkAcl { vpc });
        let vpc_id = cx.dep_id(vpc)?;
        let out = aws
            .clients
            .ec2
            .create_network_acl()
            .vpc_id(vpc_id)
            .client_token(cx.token)
            .tag_specifications(tags::ec2_spec(
                ResourceType::NetworkAcl,
                &aws.env.deployment,
                &cx.spec.key,
            ))
            .send()
            .await
            .map_err(err("creating the network ACL"))?;
        let id = out.network_acl().and_then(|a| a.network_acl_id()).unwrap_or_default();
        // Its entries as they are (the defaults, or an earlier run's for the same token).
        if let Some(acl) = out.network_acl() {
            aws.answers.keep(id, acl.clone());
        }
        Ok(Outputs::new().with("id", id).with("vpc_id", vpc_id))
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, mut outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (vpc, subnets, rules) = props!(cx, NetworkAcl { vpc, subnets, rules });
        let id = outputs.id()?.to_string();
        let vpc_id = cx.dep_id(vpc)?;
        let subnet_ids = subnets
            .iter()
            .map(|k| cx.dep_id(k).map(String::from))
            .collect::<Result<Vec<_>, _>>()?;
        // Entries first: the subnets move onto the ACL only once it admits their traffic.
        converge_entries(aws, &id, rules).await?;
        converge_associations(aws, vpc_id, &id, &subnet_ids).await?;
        outputs.set("vpc_id", vpc_id);
        Ok(outputs)
    }

    async fn inspect(&self, aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
        let Some(acl) = describe(aws, cx.outputs.id()?).await? else {
            return Ok(Inspection::missing());
        };
        let mut i = Inspection::available();
        if let Some(Props::NetworkAcl { subnets, rules, .. }) = cx.spec.map(|s| &s.props) {
            let existing: Vec<AclRule> = acl.entries().iter().filter_map(rule_of).collect();
            let subnet_ids: Vec<String> = subnets.iter().map(|k| cx.id_of(k).unwrap_or(k).to_string()).collect();
            let associated: Vec<String> = acl
                .associations()
                .iter()
                .filter_map(|a| a.subnet_id().map(String::from))
                .collect();
            drift_of(&mut i, rules, &existing, &subnet_ids, &associated);
        }
        Ok(i)
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::NetworkAcl { subnets, rules, .. } => desired_settings(rules, subnets, deps),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(match describe(aws, outputs.id()?).await? {
            Some(acl) => Observed::Present(live_settings(&acl)),
            None => Observed::Missing,
        })
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &NodeCtx<'_>,
        outputs: Outputs,
        changes: &[Change],
    ) -> Result<Outputs, ResourceError> {
        // Entries and the config's associations, as on create (each step idempotent).
        let outputs = self.converge(aws, cx, outputs).await?;
        if changes.iter().any(|c| c.attribute == "subnets") {
            let (subnets,) = props!(cx, NetworkAcl { subnets });
            let wanted = subnets
                .iter()
                .map(|k| cx.dep_id(k).map(String::from))
                .collect::<Result<Vec<_>, _>>()?;
            release_strays(aws, outputs.id()?, outputs.get("vpc_id").unwrap_or_default(), &wanted).await?;
        }
        Ok(outputs)
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let id = cx.outputs.id()?;
        let Some(acl) = describe(aws, id).await? else {
            return Ok(());
        };
        if !acl.associations().is_empty() {
            let vpc_id = acl.vpc_id().or(cx.outputs.get("vpc_id")).unwrap_or_default();
            let default = default_acl(aws, vpc_id).await?;
            for a in acl.associations() {
                let Some(assoc) = a.network_acl_association_id() else {
                    continue;
                };
                match replace_association(aws, assoc, &default).await {
                    Err(e) if e.is(ErrorClass::NotFound) => {}
                    other => other?,
                }
            }
        }
        ec2::delete_retrying(Kind::NetworkAcl, &format!("deleting network ACL {id}"), || async {
            aws.clients
                .ec2
                .delete_network_acl()
                .network_acl_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(err("deleting the network ACL"))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rules;

    fn rule(number: i32, egress: bool, protocol: &str, cidr: &str, ports: (i32, i32), allow: bool) -> AclRule {
        AclRule {
            number,
            egress,
            protocol: protocol.into(),
            cidr: cidr.into(),
            from_port: ports.0,
            to_port: ports.1,
            allow,
        }
    }

    fn default_entries() -> Vec<AclRule> {
        vec![
            rule(32767, false, "-1", "0.0.0.0/0", (0, 0), false),
            rule(32767, true, "-1", "0.0.0.0/0", (0, 0), false),
        ]
    }

    #[test]
    fn drift_names_changed_missing_and_extra_entries_and_lost_associations() {
        let desired = vec![
            rule(100, false, "6", "0.0.0.0/0", (80, 80), true),
            rule(110, false, "6", "0.0.0.0/0", (443, 443), true),
        ];
        let mut existing = default_entries();
        existing.push(rule(100, false, "6", "0.0.0.0/0", (8080, 8080), true));
        existing.push(rule(90, false, "6", "0.0.0.0/0", (22, 22), true));
        let mut i = Inspection::available();
        drift_of(
            &mut i,
            &desired,
            &existing,
            &["subnet-1".into(), "subnet-2".into()],
            &["subnet-1".into()],
        );
        let got: Vec<(&str, &str, &str)> = i
            .drift
            .iter()
            .map(|d| (d.attribute.as_str(), d.expected.as_str(), d.actual.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("entry", "in #110 allow tcp 443-443 0.0.0.0/0", "absent"),
                (
                    "entry",
                    "in #100 allow tcp 80-80 0.0.0.0/0",
                    "in #100 allow tcp 8080-8080 0.0.0.0/0"
                ),
                ("entry", "absent", "in #90 allow tcp 22-22 0.0.0.0/0"),
                ("association", "subnet-2", "absent (the subnet uses another ACL)"),
            ]
        );
    }

    #[test]
    fn a_new_acl_gets_every_rule_created() {
        let desired = rules::public_acl_rules(&["10.0.0.0/24".into()]);
        let diff = diff_entries(&desired, &default_entries());
        assert_eq!(
            diff,
            AclDiff {
                create: desired,
                replace: vec![],
                delete: vec![]
            }
        );
    }

    #[test]
    fn a_converged_acl_needs_nothing_even_when_aws_reports_other_ports_for_all_protocols() {
        let desired = rules::public_acl_rules(&["10.0.0.0/24".into()]);
        let mut existing = default_entries();
        for r in &desired {
            let mut e = r.clone();
            if e.protocol == ALL_PROTOCOLS {
                // AWS reports no port range for protocol -1: read back as 0-0.
                (e.from_port, e.to_port) = (0, 0);
            }
            existing.push(e);
        }
        assert_eq!(diff_entries(&desired, &existing), AclDiff::default());
    }

    #[test]
    fn drift_is_replaced_and_strays_are_deleted_but_default_entries_are_kept() {
        let desired = vec![
            rule(100, false, "6", "0.0.0.0/0", (80, 80), true),
            rule(110, false, "6", "0.0.0.0/0", (443, 443), true),
            rule(100, true, "-1", "0.0.0.0/0", (0, 65535), true),
        ];
        let mut existing = default_entries();
        existing.extend([
            rule(100, false, "6", "0.0.0.0/0", (8080, 8080), true), // changed port
            rule(110, false, "tcp", "0.0.0.0/0", (443, 443), true), // same, protocol by name
            rule(100, true, "-1", "0.0.0.0/0", (0, 65535), false),  // deny instead of allow
            rule(200, false, "6", "0.0.0.0/0", (22, 22), true),     // stray
            rule(200, true, "6", "10.0.0.0/16", (22, 22), true),    // stray, egress
        ]);
        let diff = diff_entries(&desired, &existing);
        assert_eq!(diff.create, vec![]);
        assert_eq!(diff.replace, vec![desired[0].clone(), desired[2].clone()]);
        assert_eq!(diff.delete, vec![(200, false), (200, true)]);
    }

    #[test]
    fn same_number_in_the_other_direction_is_a_different_entry() {
        let desired = vec![rule(100, true, "-1", "0.0.0.0/0", (0, 65535), true)];
        let existing = vec![rule(100, false, "6", "0.0.0.0/0", (80, 80), true)];
        let diff = diff_entries(&desired, &existing);
        assert_eq!(diff.create, desired);
        assert_eq!(diff.delete, vec![(100, false)]);
    }

    fn acl(entries: &[AclRule], subnets: &[&str]) -> t::NetworkAcl {
        let entry = |r: &AclRule| {
            t::NetworkAclEntry::builder()
                .rule_number(r.number)
                .egress(r.egress)
                .protocol(&r.protocol)
                .cidr_block(&r.cidr)
                .set_port_range(port_range(r))
                .rule_action(action(r.allow))
                .build()
        };
        t::NetworkAcl::builder()
            .network_acl_id("acl-1")
            .set_entries(Some(entries.iter().map(entry).collect()))
            .set_associations(Some(
                subnets
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        t::NetworkAclAssociation::builder()
                            .subnet_id(*s)
                            .network_acl_association_id(format!("aclassoc-{i}"))
                            .network_acl_id("acl-1")
                            .build()
                    })
                    .collect(),
            ))
            .build()
    }

    fn deps() -> BTreeMap<String, Outputs> {
        [("subnet-db-a", "subnet-1"), ("subnet-db-b", "subnet-2")]
            .into_iter()
            .map(|(k, id)| (k.to_string(), Outputs::new().with("id", id)))
            .collect()
    }

    #[test]
    fn a_hand_added_entry_and_a_lost_or_extra_subnet_are_planned_as_updates() {
        let rules = rules::db_acl_rules(&["10.0.10.0/24".into(), "10.0.11.0/24".into()]);
        let keys = vec!["subnet-db-a".to_string(), "subnet-db-b".to_string()];
        let want = desired_settings(&rules, &keys, &deps());
        let mut entries = default_entries();
        entries.extend(rules.iter().cloned());
        let converged = acl(&entries, &["subnet-2", "subnet-1"]);
        assert!(diff::diff(ATTRS, &want, &live_settings(&converged), None).is_empty());

        entries.push(rule(90, false, "6", "0.0.0.0/0", (22, 22), true));
        let drifted = acl(&entries, &["subnet-1", "subnet-9"]);
        let c = diff::diff(ATTRS, &want, &live_settings(&drifted), None);
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(c[0].attribute, "entries");
        assert!(c[0].old.contains("in #90 allow tcp 22-22 0.0.0.0/0"), "{}", c[0].old);
        assert!(!c[0].new.contains("#90"));
        assert!(c.iter().all(|c| c.action == ChangeAction::Update));
        assert_eq!(
            (c[1].attribute.as_str(), c[1].old.as_str(), c[1].new.as_str()),
            ("subnets", "subnet-1, subnet-9", "subnet-1, subnet-2")
        );
        assert_eq!(
            strays(&drifted, &["subnet-1".into(), "subnet-2".into()]),
            vec!["aclassoc-1"]
        );
        // Before the subnets exist, their ids are known after up.
        let fresh = desired_settings(&rules, &keys, &BTreeMap::new());
        assert_eq!(fresh["subnets"], diff::KNOWN_AFTER_UP);
    }

    #[test]
    fn all_protocol_rules_send_no_port_range() {
        assert!(port_range(&rule(100, true, "-1", "0.0.0.0/0", (0, 65535), true)).is_none());
        let p = port_range(&rule(100, false, "6", "0.0.0.0/0", (1024, 65535), true)).unwrap();
        assert_eq!((p.from(), p.to()), (Some(1024), Some(65535)));
    }

    fn assoc(subnet: &str, id: &str, acl: &str) -> Association {
        Association {
            subnet_id: subnet.into(),
            association_id: id.into(),
            acl_id: acl.into(),
        }
    }

    #[test]
    fn associations_move_from_the_default_acl_and_wait_for_unseen_subnets() {
        let subnets = vec!["subnet-a".to_string(), "subnet-b".to_string()];
        let current = vec![
            assoc("subnet-a", "aclassoc-1", "acl-default"),
            assoc("subnet-b", "aclassoc-2", "acl-ours"),
        ];
        assert_eq!(
            plan_associations("acl-ours", &subnets, &current),
            Ok(vec!["aclassoc-1".to_string()])
        );
        assert_eq!(
            plan_associations("acl-ours", &subnets, &current[..1]),
            Err(vec!["subnet-b".to_string()])
        );
    }
}
