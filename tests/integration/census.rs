//! Counts a deployment's resources from AWS's side, by tag, the way an operator would.
//! Each kind maps to the `pi-deploy:key` tags found, so a duplicate shows as a repeated key.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, Tag};
use pi_deploy::aws::Clients;

pub type Census = BTreeMap<&'static str, Vec<String>>;

fn by_deployment(deployment: &str) -> Filter {
    Filter::builder().name("tag:pi-deploy:deployment").values(deployment).build()
}

fn key_of(tags: &[Tag], deployment: &str) -> Option<String> {
    let ours = tags.iter().any(|t| t.key() == Some("pi-deploy:deployment") && t.value() == Some(deployment));
    ours.then(|| tags.iter().find(|t| t.key() == Some("pi-deploy:key")).and_then(|t| t.value()).unwrap_or("?").to_string())
}

fn push(c: &mut Census, kind: &'static str, key: Option<String>) {
    if let Some(k) = key {
        c.entry(kind).or_default().push(k);
    }
}

pub async fn network(c: &Clients, dep: &str) -> Census {
    let mut out = Census::new();
    let f = || by_deployment(dep);
    for v in c.ec2.describe_vpcs().filters(f()).send().await.unwrap().vpcs() {
        push(&mut out, "vpc", key_of(v.tags(), dep));
    }
    for s in c.ec2.describe_subnets().filters(f()).send().await.unwrap().subnets() {
        push(&mut out, "subnet", key_of(s.tags(), dep));
    }
    for g in c.ec2.describe_internet_gateways().filters(f()).send().await.unwrap().internet_gateways() {
        push(&mut out, "internet-gateway", key_of(g.tags(), dep));
    }
    for a in c.ec2.describe_addresses().filters(f()).send().await.unwrap().addresses() {
        push(&mut out, "elastic-ip", key_of(a.tags(), dep));
    }
    // DescribeNatGateways ignores tag filters on moto and lists deleted NATs: check both.
    for n in c.ec2.describe_nat_gateways().send().await.unwrap().nat_gateways() {
        let live = !matches!(n.state().map(|s| s.as_str()), Some("deleted") | Some("deleting") | Some("failed"));
        if live {
            push(&mut out, "nat-gateway", key_of(n.tags(), dep));
        }
    }
    for r in c.ec2.describe_route_tables().filters(f()).send().await.unwrap().route_tables() {
        push(&mut out, "route-table", key_of(r.tags(), dep));
    }
    for a in c.ec2.describe_network_acls().filters(f()).send().await.unwrap().network_acls() {
        push(&mut out, "network-acl", key_of(a.tags(), dep));
    }
    for g in c.ec2.describe_security_groups().filters(f()).send().await.unwrap().security_groups() {
        push(&mut out, "security-group", key_of(g.tags(), dep));
    }
    for e in c.ec2.describe_vpc_endpoints().filters(f()).send().await.unwrap().vpc_endpoints() {
        let live = !matches!(e.state().map(|s| s.as_str()), Some("deleted") | Some("deleting"));
        if live {
            push(&mut out, "vpc-endpoint", key_of(e.tags(), dep));
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// Every kind's keys, for comparing with the state file.
pub fn all_keys(c: &Census) -> Vec<String> {
    let mut keys: Vec<String> = c.values().flatten().cloned().collect();
    keys.sort();
    keys
}
