//! The network tier: the VPC, its subnets, gateways, route tables, ACLs, security groups
//! and endpoints.

use super::{Builder, EndpointType, Kind, Props, RouteTarget, SpecInput, TIERS, ZONES, subnet_key};
use crate::core::rules;

pub(super) fn network(b: &mut Builder, input: &SpecInput<'_>) {
    let cfg = input.config;
    let net = &cfg.network;
    let vpc = "vpc".to_string();
    b.add(
        &vpc,
        Kind::Vpc,
        vec![],
        Props::Vpc {
            cidr: net.vpc_cidr.clone(),
        },
    );
    b.add(
        "igw",
        Kind::InternetGateway,
        vec![vpc.clone()],
        Props::InternetGateway { vpc: vpc.clone() },
    );

    for (tier, cidrs) in TIERS
        .iter()
        .zip([&net.public_subnet_cidrs, &net.app_subnet_cidrs, &net.db_subnet_cidrs])
    {
        for (i, zone) in ZONES.iter().enumerate() {
            b.add(
                subnet_key(tier, zone),
                Kind::Subnet,
                vec![vpc.clone()],
                Props::Subnet {
                    vpc: vpc.clone(),
                    cidr: cidrs[i].clone(),
                    az: input.azs[i].clone(),
                    public: *tier == "public",
                },
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
    const DEFAULT_ROUTE: &str = "0.0.0.0/0";
    let public_subnets: Vec<String> = ZONES.iter().map(|z| subnet_key("public", z)).collect();
    let mut deps = public_subnets.clone();
    deps.push(vpc.clone());
    b.add(
        "rt-public",
        Kind::RouteTable,
        deps,
        Props::RouteTable {
            vpc: vpc.clone(),
            subnets: public_subnets,
            routes: vec![DEFAULT_ROUTE.into()],
        },
    );
    b.add(
        "route-public-default",
        Kind::Route,
        vec!["rt-public".into(), "igw".into()],
        Props::Route {
            table: "rt-public".into(),
            destination: DEFAULT_ROUTE.into(),
            target: RouteTarget::InternetGateway("igw".into()),
        },
    );
    let private_tables = private_route_tables(net.nat_per_az);
    for (table, zones) in &private_tables {
        let subnets: Vec<String> = zones
            .iter()
            .flat_map(|z| [subnet_key("app", z), subnet_key("db", z)])
            .collect();
        let mut deps = subnets.clone();
        deps.push(vpc.clone());
        b.add(
            table.clone(),
            Kind::RouteTable,
            deps,
            Props::RouteTable {
                vpc: vpc.clone(),
                subnets,
                routes: vec![DEFAULT_ROUTE.into()],
            },
        );
        let nat = format!("nat-{}", if net.nat_per_az { zones[0] } else { "a" });
        b.add(
            format!("route-{}-default", table.trim_start_matches("rt-")),
            Kind::Route,
            vec![table.clone(), nat.clone()],
            Props::Route {
                table: table.clone(),
                destination: DEFAULT_ROUTE.into(),
                target: RouteTarget::NatGateway(nat),
            },
        );
    }

    // Network ACLs, associated with their subnets (the db subnets would otherwise stay on
    // the VPC's default ACL, which allows everything).
    let public_cidrs = net.public_subnet_cidrs.clone();
    for (key, tier, rules) in [
        ("nacl-public", "public", rules::public_acl_rules(&net.app_subnet_cidrs)),
        (
            "nacl-app",
            "app",
            rules::app_acl_rules(&net.vpc_cidr, &public_cidrs, cfg.dashboard_port),
        ),
        ("nacl-db", "db", rules::db_acl_rules(&net.app_subnet_cidrs)),
    ] {
        let subnets: Vec<String> = ZONES.iter().map(|z| subnet_key(tier, z)).collect();
        let mut deps = subnets.clone();
        deps.push(vpc.clone());
        b.add(
            key,
            Kind::NetworkAcl,
            deps,
            Props::NetworkAcl {
                vpc: vpc.clone(),
                subnets,
                rules,
            },
        );
    }

    // Security groups: references between tiers are SG ids, never CIDRs.
    for sg in rules::security_groups(cfg.dashboard_port) {
        let mut deps: Vec<String> = sg
            .ingress
            .iter()
            .filter_map(|r| r.source_group().map(String::from))
            .collect();
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

    // VPC endpoints: interface endpoints in the app subnets (unless switched off: then the
    // instances reach these APIs through the NAT), S3 gateway on the private tables.
    let app_subnets: Vec<String> = ZONES.iter().map(|z| subnet_key("app", z)).collect();
    for &svc in interface_endpoint_services(net.interface_endpoints) {
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
                endpoint: EndpointType::Interface {
                    subnets: app_subnets.clone(),
                    security_groups: sgs,
                },
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
        Props::VpcEndpoint {
            vpc,
            service: "s3".into(),
            endpoint: EndpointType::Gateway { route_tables: tables },
        },
    );
}

/// The AWS APIs the instances reach through interface endpoints (`network.interface_endpoints`):
/// the DB secret and licence, the endpoint parameter, and Session Manager's three.
pub const INTERFACE_ENDPOINT_SERVICES: [&str; 4] = ["secretsmanager", "ssm", "ssmmessages", "ec2messages"];

pub(super) fn interface_endpoint_services(on: bool) -> &'static [&'static str] {
    if on { &INTERFACE_ENDPOINT_SERVICES } else { &[] }
}

pub(super) fn private_route_tables(nat_per_az: bool) -> Vec<(String, Vec<&'static str>)> {
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
