//! The desired architecture: one `NodeSpec` per resource of the blueprint, built from the
//! validated config. Pure data; the graph orders it and the resource kinds realise it.

use serde::{Deserialize, Serialize};

use super::config::Config;
use super::rules::{self, AclRule, SgRule};

/// Every resource kind pi-deploy manages. The string form is what the state file records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Vpc,
    InternetGateway,
    Subnet,
    ElasticIp,
    NatGateway,
    RouteTable,
    Route,
    NetworkAcl,
    SecurityGroup,
    VpcEndpoint,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::Vpc,
        Kind::InternetGateway,
        Kind::Subnet,
        Kind::ElasticIp,
        Kind::NatGateway,
        Kind::RouteTable,
        Kind::Route,
        Kind::NetworkAcl,
        Kind::SecurityGroup,
        Kind::VpcEndpoint,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Vpc => "vpc",
            Kind::InternetGateway => "internet-gateway",
            Kind::Subnet => "subnet",
            Kind::ElasticIp => "elastic-ip",
            Kind::NatGateway => "nat-gateway",
            Kind::RouteTable => "route-table",
            Kind::Route => "route",
            Kind::NetworkAcl => "network-acl",
            Kind::SecurityGroup => "security-group",
            Kind::VpcEndpoint => "vpc-endpoint",
        }
    }

    /// The AWS service whose API creates this kind (for per-service concurrency caps).
    pub fn service(self) -> &'static str {
        "ec2"
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a route points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteTarget {
    InternetGateway(String),
    NatGateway(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndpointType {
    /// Interface endpoint with private DNS in these subnets, guarded by these SGs.
    Interface { subnets: Vec<String>, security_groups: Vec<String> },
    /// Gateway endpoint on these route tables.
    Gateway { route_tables: Vec<String> },
}

/// Kind-specific properties. Keys name other nodes; kinds read their ids from `deps`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Props {
    Vpc { cidr: String },
    InternetGateway { vpc: String },
    Subnet { vpc: String, cidr: String, az: String, public: bool },
    ElasticIp,
    NatGateway { subnet: String, eip: String },
    RouteTable { vpc: String, subnets: Vec<String> },
    Route { table: String, destination: String, target: RouteTarget },
    NetworkAcl { vpc: String, subnets: Vec<String>, rules: Vec<AclRule> },
    SecurityGroup { vpc: String, description: String, ingress: Vec<SgRule>, restrict_egress: bool },
    VpcEndpoint { vpc: String, service: String, endpoint: EndpointType },
}

/// One resource of the desired architecture.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeSpec {
    /// Stable key: the `pi-deploy:key` tag and the state's map key.
    pub key: String,
    pub kind: Kind,
    pub deps: Vec<String>,
    pub props: Props,
}

/// Inputs resolved before planning that are not in the config.
#[derive(Clone, Debug)]
pub struct SpecInput<'a> {
    pub config: &'a Config,
    pub region: &'a str,
    pub azs: [String; 2],
}

pub const ZONES: [&str; 2] = ["a", "b"];
pub const TIERS: [&str; 3] = ["public", "app", "db"];

pub fn subnet_key(tier: &str, zone: &str) -> String {
    format!("subnet-{tier}-{zone}")
}

struct Builder {
    nodes: Vec<NodeSpec>,
}

impl Builder {
    fn add(&mut self, key: impl Into<String>, kind: Kind, mut deps: Vec<String>, props: Props) {
        deps.sort();
        deps.dedup();
        self.nodes.push(NodeSpec { key: key.into(), kind, deps, props });
    }
}

/// The whole architecture for one deployment.
pub fn build(input: &SpecInput<'_>) -> Vec<NodeSpec> {
    let mut b = Builder { nodes: Vec::new() };
    network(&mut b, input);
    b.nodes
}

fn network(b: &mut Builder, input: &SpecInput<'_>) {
    let cfg = input.config;
    let net = &cfg.network;
    let vpc = "vpc".to_string();
    b.add(&vpc, Kind::Vpc, vec![], Props::Vpc { cidr: net.vpc_cidr.clone() });
    b.add("igw", Kind::InternetGateway, vec![vpc.clone()], Props::InternetGateway { vpc: vpc.clone() });

    for (tier, cidrs) in TIERS.iter().zip([&net.public_subnet_cidrs, &net.app_subnet_cidrs, &net.db_subnet_cidrs]) {
        for (i, zone) in ZONES.iter().enumerate() {
            b.add(
                subnet_key(tier, zone),
                Kind::Subnet,
                vec![vpc.clone()],
                Props::Subnet { vpc: vpc.clone(), cidr: cidrs[i].clone(), az: input.azs[i].clone(), public: *tier == "public" },
            );
        }
    }

    // NAT gateways: one in public-a, or one per zone. The EIP waits for the IGW attachment
    // (an EIP in a VPC without an attached gateway cannot be used by a NAT).
    let nat_zones: &[&str] = if net.nat_per_az { &ZONES } else { &ZONES[..1] };
    for zone in nat_zones {
        let eip = format!("eip-nat-{zone}");
        b.add(&eip, Kind::ElasticIp, vec!["igw".into()], Props::ElasticIp);
        let subnet = subnet_key("public", zone);
        b.add(
            format!("nat-{zone}"),
            Kind::NatGateway,
            vec![eip.clone(), subnet.clone(), "igw".into()],
            Props::NatGateway { subnet, eip },
        );
    }

    // Route tables: public -> IGW; private (per NAT) -> NAT for app and db subnets.
    let public_subnets: Vec<String> = ZONES.iter().map(|z| subnet_key("public", z)).collect();
    let mut deps = public_subnets.clone();
    deps.push(vpc.clone());
    b.add("rt-public", Kind::RouteTable, deps, Props::RouteTable { vpc: vpc.clone(), subnets: public_subnets });
    b.add(
        "route-public-default",
        Kind::Route,
        vec!["rt-public".into(), "igw".into()],
        Props::Route { table: "rt-public".into(), destination: "0.0.0.0/0".into(), target: RouteTarget::InternetGateway("igw".into()) },
    );
    let private_tables = private_route_tables(net.nat_per_az);
    for (table, zones) in &private_tables {
        let subnets: Vec<String> = zones
            .iter()
            .flat_map(|z| [subnet_key("app", z), subnet_key("db", z)])
            .collect();
        let mut deps = subnets.clone();
        deps.push(vpc.clone());
        b.add(table.clone(), Kind::RouteTable, deps, Props::RouteTable { vpc: vpc.clone(), subnets });
        let nat = format!("nat-{}", if net.nat_per_az { zones[0] } else { "a" });
        b.add(
            format!("route-{}-default", table.trim_start_matches("rt-")),
            Kind::Route,
            vec![table.clone(), nat.clone()],
            Props::Route { table: table.clone(), destination: "0.0.0.0/0".into(), target: RouteTarget::NatGateway(nat) },
        );
    }

    // Network ACLs, associated with their subnets.
    let public_cidrs = net.public_subnet_cidrs.clone();
    for (key, tier, rules) in [
        ("nacl-public", "public", rules::public_acl_rules()),
        ("nacl-app", "app", rules::app_acl_rules(&net.vpc_cidr, &public_cidrs)),
    ] {
        let subnets: Vec<String> = ZONES.iter().map(|z| subnet_key(tier, z)).collect();
        let mut deps = subnets.clone();
        deps.push(vpc.clone());
        b.add(key, Kind::NetworkAcl, deps, Props::NetworkAcl { vpc: vpc.clone(), subnets, rules });
    }

    // Security groups: references between tiers are SG ids, never CIDRs.
    for sg in rules::security_groups() {
        let mut deps: Vec<String> = sg.ingress.iter().filter_map(|r| r.source_group().map(String::from)).collect();
        deps.push(vpc.clone());
        b.add(
            sg.key,
            Kind::SecurityGroup,
            deps,
            Props::SecurityGroup {
                vpc: vpc.clone(),
                description: sg.description.into(),
                ingress: sg.ingress,
                restrict_egress: sg.restrict_egress,
            },
        );
    }

    // VPC endpoints: interface endpoints in the app subnets, S3 gateway on the private tables.
    let app_subnets: Vec<String> = ZONES.iter().map(|z| subnet_key("app", z)).collect();
    for svc in ["secretsmanager", "ssm", "ssmmessages", "ec2messages"] {
        let sgs = vec!["sg-endpoints".to_string()];
        let mut deps = app_subnets.clone();
        deps.extend(sgs.clone());
        deps.push(vpc.clone());
        b.add(
            format!("vpce-{svc}"),
            Kind::VpcEndpoint,
            deps,
            Props::VpcEndpoint {
                vpc: vpc.clone(),
                service: svc.into(),
                endpoint: EndpointType::Interface { subnets: app_subnets.clone(), security_groups: sgs },
            },
        );
    }
    let tables: Vec<String> = private_tables.iter().map(|(t, _)| t.clone()).collect();
    let mut deps = tables.clone();
    deps.push(vpc.clone());
    b.add(
        "vpce-s3",
        Kind::VpcEndpoint,
        deps,
        Props::VpcEndpoint { vpc, service: "s3".into(), endpoint: EndpointType::Gateway { route_tables: tables } },
    );
}

fn private_route_tables(nat_per_az: bool) -> Vec<(String, Vec<&'static str>)> {
    if nat_per_az {
        ZONES.iter().map(|z| (format!("rt-private-{z}"), vec![*z])).collect()
    } else {
        vec![("rt-private".to_string(), ZONES.to_vec())]
    }
}

/// Interface endpoint service name: `com.amazonaws.<region>.<svc>` (China prefixes `cn.`).
pub fn endpoint_service_name(region: &str, service: &str) -> String {
    if region.starts_with("cn-") {
        format!("cn.com.amazonaws.{region}.{service}")
    } else {
        format!("com.amazonaws.{region}.{service}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::graph::Graph;

    fn input(cfg: &Config) -> SpecInput<'_> {
        SpecInput { config: cfg, region: "eu-west-1", azs: ["eu-west-1a".into(), "eu-west-1b".into()] }
    }

    #[test]
    fn network_tier_is_complete_and_acyclic() {
        let cfg = Config::default();
        let nodes = build(&input(&cfg));
        let count = |k: Kind| nodes.iter().filter(|n| n.kind == k).count();
        assert_eq!(count(Kind::Vpc), 1);
        assert_eq!(count(Kind::Subnet), 6);
        assert_eq!(count(Kind::NatGateway), 1);
        assert_eq!(count(Kind::RouteTable), 2);
        assert_eq!(count(Kind::NetworkAcl), 2);
        assert_eq!(count(Kind::SecurityGroup), 6);
        assert_eq!(count(Kind::VpcEndpoint), 5);
        Graph::new(nodes).expect("valid graph");
    }

    #[test]
    fn nat_per_az_builds_two_nats_and_two_private_tables() {
        let mut cfg = Config::default();
        cfg.network.nat_per_az = true;
        let nodes = build(&input(&cfg));
        assert_eq!(nodes.iter().filter(|n| n.kind == Kind::NatGateway).count(), 2);
        assert_eq!(nodes.iter().filter(|n| n.kind == Kind::RouteTable).count(), 3);
        Graph::new(nodes).expect("valid graph");
    }

    #[test]
    fn nat_waits_for_the_igw_attachment() {
        let cfg = Config::default();
        let nodes = build(&input(&cfg));
        let nat = nodes.iter().find(|n| n.key == "nat-a").unwrap();
        assert!(nat.deps.contains(&"igw".to_string()));
        let eip = nodes.iter().find(|n| n.key == "eip-nat-a").unwrap();
        assert!(eip.deps.contains(&"igw".to_string()));
    }
}
