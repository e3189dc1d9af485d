//! The network tier, end to end on the emulator: built exactly as the blueprint says, a
//! second `up` creates nothing, a killed `up` converges, `destroy` leaves nothing.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, VpcAttributeName};

use crate::census;
use crate::common::{self, Deployment, clients, count_status, events, kill_after_resources};

fn id_of(state: &serde_json::Value, key: &str) -> String {
    state["resources"][key]["outputs"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{key} has no id in the state"))
        .to_string()
}

fn expected_network_keys() -> Vec<String> {
    let mut keys: Vec<String> = [
        "vpc",
        "igw",
        "eip-nat-a",
        "nat-a",
        "rt-public",
        "rt-private",
        "nacl-public",
        "nacl-app",
        "nacl-db",
        "sg-alb",
        "sg-app",
        "sg-db",
        "sg-efs",
        "sg-lambda",
        "sg-endpoints",
        "vpce-secretsmanager",
        "vpce-ssm",
        "vpce-ssmmessages",
        "vpce-ec2messages",
        "vpce-s3",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for tier in ["public", "app", "db"] {
        for z in ["a", "b"] {
            keys.push(format!("subnet-{tier}-{z}"));
        }
    }
    keys.sort();
    keys
}

#[tokio::test(flavor = "multi_thread")]
async fn network_tier_reads_back_as_the_blueprint_says_and_converges() {
    let d = Deployment::new("net");
    let out = d.up(&["--json"]);
    let ev = events(&out);
    assert!(ev.last().unwrap()["ok"].as_bool().unwrap(), "{}", common::show(&out));
    let c = clients().await;
    let st = d.state();

    // Every network resource exists exactly once, tagged, and the state lists exactly those.
    let census = census::network(&c, &d.name).await;
    let found = census::all_keys(&census);
    assert_eq!(found, expected_network_keys(), "census by tag: {census:?}");
    let recorded: Vec<String> = st["resources"].as_object().unwrap().keys().cloned().collect();
    for k in &found {
        assert!(recorded.contains(k), "{k} exists in AWS but not in the state");
    }

    // VPC: CIDR and both DNS attributes; its default security group holds no rule.
    let vpc = id_of(&st, "vpc");
    let default_sg = c
        .ec2
        .describe_security_groups()
        .filters(Filter::builder().name("vpc-id").values(&vpc).build())
        .filters(Filter::builder().name("group-name").values("default").build())
        .send()
        .await
        .unwrap();
    let default_sg = &default_sg.security_groups()[0];
    assert!(default_sg.ip_permissions().is_empty(), "{default_sg:?}");
    assert!(default_sg.ip_permissions_egress().is_empty(), "{default_sg:?}");

    // Every endpoint's policy names this account (no allow-everything default).
    let account = c.identity(&d.name).await.unwrap().account_id;
    for svc in ["secretsmanager", "ssm", "ssmmessages", "ec2messages", "s3"] {
        let e = c
            .ec2
            .describe_vpc_endpoints()
            .vpc_endpoint_ids(id_of(&st, &format!("vpce-{svc}")))
            .send()
            .await
            .unwrap();
        let doc: serde_json::Value = serde_json::from_str(e.vpc_endpoints()[0].policy_document().unwrap()).unwrap();
        assert_eq!(
            doc["Statement"][0]["Condition"]["StringEquals"]["aws:PrincipalAccount"], account,
            "vpce-{svc}: {doc}"
        );
    }
    let v = c.ec2.describe_vpcs().vpc_ids(&vpc).send().await.unwrap();
    assert_eq!(v.vpcs()[0].cidr_block(), Some("10.0.0.0/16"));
    let tags = v.vpcs()[0].tags();
    assert!(
        tags.iter()
            .any(|t| t.key() == Some("Name") && t.value() == Some(format!("{}-vpc", d.name).as_str()))
    );
    for attr in [VpcAttributeName::EnableDnsSupport, VpcAttributeName::EnableDnsHostnames] {
        let a = c
            .ec2
            .describe_vpc_attribute()
            .vpc_id(&vpc)
            .attribute(attr.clone())
            .send()
            .await
            .unwrap();
        let on = a
            .enable_dns_support()
            .or(a.enable_dns_hostnames())
            .and_then(|b| b.value());
        assert_eq!(on, Some(true), "{attr:?}");
    }

    // Subnets: the blueprint's CIDRs, in two distinct zones.
    let expected = [
        ("subnet-public-a", "10.0.2.0/24"),
        ("subnet-public-b", "10.0.3.0/24"),
        ("subnet-app-a", "10.0.0.0/24"),
        ("subnet-app-b", "10.0.1.0/24"),
        ("subnet-db-a", "10.0.4.0/24"),
        ("subnet-db-b", "10.0.5.0/24"),
    ];
    let mut zones = BTreeMap::new();
    for (key, cidr) in expected {
        let s = c
            .ec2
            .describe_subnets()
            .subnet_ids(id_of(&st, key))
            .send()
            .await
            .unwrap();
        let s = &s.subnets()[0];
        assert_eq!(s.cidr_block(), Some(cidr), "{key}");
        assert_eq!(s.vpc_id(), Some(vpc.as_str()));
        assert_ne!(
            s.map_public_ip_on_launch(),
            Some(true),
            "{key} must not hand out public IPs"
        );
        zones.insert(key, s.availability_zone().unwrap().to_string());
    }
    assert_ne!(zones["subnet-app-a"], zones["subnet-app-b"]);
    assert_eq!(zones["subnet-app-a"], zones["subnet-db-a"]);
    assert_eq!(zones["subnet-public-b"], zones["subnet-db-b"]);

    // IGW attached; NAT available in public-a with the EIP.
    let igw = c
        .ec2
        .describe_internet_gateways()
        .internet_gateway_ids(id_of(&st, "igw"))
        .send()
        .await
        .unwrap();
    assert_eq!(igw.internet_gateways()[0].attachments()[0].vpc_id(), Some(vpc.as_str()));
    let nat = c
        .ec2
        .describe_nat_gateways()
        .nat_gateway_ids(id_of(&st, "nat-a"))
        .send()
        .await
        .unwrap();
    let nat = &nat.nat_gateways()[0];
    assert_eq!(nat.state().map(|s| s.as_str()), Some("available"));
    assert_eq!(nat.subnet_id(), Some(id_of(&st, "subnet-public-a").as_str()));
    assert_eq!(
        nat.nat_gateway_addresses()[0].allocation_id(),
        Some(id_of(&st, "eip-nat-a").as_str())
    );

    // Routes and one association per subnet.
    let rt = |key: &str| {
        let id = id_of(&st, key);
        let c = c.clone();
        async move {
            c.ec2
                .describe_route_tables()
                .route_table_ids(id)
                .send()
                .await
                .unwrap()
                .route_tables()[0]
                .clone()
        }
    };
    let public = rt("rt-public").await;
    assert!(
        public
            .routes()
            .iter()
            .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0")
                && r.gateway_id() == Some(id_of(&st, "igw").as_str()))
    );
    let mut assoc: Vec<String> = public
        .associations()
        .iter()
        .filter_map(|a| a.subnet_id().map(String::from))
        .collect();
    assoc.sort();
    let mut want = vec![id_of(&st, "subnet-public-a"), id_of(&st, "subnet-public-b")];
    want.sort();
    assert_eq!(assoc, want);
    let private = rt("rt-private").await;
    assert!(
        private
            .routes()
            .iter()
            .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0")
                && r.nat_gateway_id() == Some(id_of(&st, "nat-a").as_str()))
    );
    assert_eq!(
        private
            .associations()
            .iter()
            .filter(|a| a.subnet_id().is_some())
            .count(),
        4
    );

    // NACLs associated with their subnets, with the blueprint's rules.
    for (key, tier) in [("nacl-public", "public"), ("nacl-app", "app"), ("nacl-db", "db")] {
        let acl = c
            .ec2
            .describe_network_acls()
            .network_acl_ids(id_of(&st, key))
            .send()
            .await
            .unwrap();
        let acl = &acl.network_acls()[0];
        let mut subnets: Vec<String> = acl
            .associations()
            .iter()
            .filter_map(|a| a.subnet_id().map(String::from))
            .collect();
        subnets.sort();
        let mut want = vec![
            id_of(&st, &format!("subnet-{tier}-a")),
            id_of(&st, &format!("subnet-{tier}-b")),
        ];
        want.sort();
        assert_eq!(subnets, want, "{key}");
        let inbound: Vec<(i32, i32, String, bool)> = acl
            .entries()
            .iter()
            .filter(|e| e.egress() == Some(false) && e.rule_number() != Some(32767))
            .map(|e| {
                let p = e.port_range();
                (
                    p.and_then(|p| p.from()).unwrap_or(0),
                    p.and_then(|p| p.to()).unwrap_or(0),
                    e.cidr_block().unwrap_or("").to_string(),
                    e.rule_action().map(|a| a.as_str()) == Some("allow"),
                )
            })
            .collect();
        if tier == "public" {
            for port in [(80, 80), (443, 443), (1024, 65535)] {
                assert!(
                    inbound.contains(&(port.0, port.1, "0.0.0.0/0".into(), true)),
                    "{key} {port:?}: {inbound:?}"
                );
            }
            // Stateless: what the app subnets send through the NAT enters here with its
            // real destination port (e-mail, LDAP), so everything from them is allowed in.
            for app in ["10.0.0.0/24", "10.0.1.0/24"] {
                let rule = acl
                    .entries()
                    .iter()
                    .find(|e| e.egress() == Some(false) && e.cidr_block() == Some(app))
                    .unwrap_or_else(|| panic!("{key}: no inbound rule for {app}: {inbound:?}"));
                assert_eq!(rule.protocol(), Some("-1"), "{key} {app}");
                assert_eq!(rule.rule_action().map(|a| a.as_str()), Some("allow"), "{key} {app}");
            }
        } else if tier == "db" {
            let mut want = vec![
                (3306, 3306, "10.0.0.0/24".to_string(), true),
                (3306, 3306, "10.0.1.0/24".to_string(), true),
            ];
            let mut got = inbound.clone();
            got.sort();
            want.sort();
            assert_eq!(got, want, "{key}: MariaDB from the app subnets only");
        } else {
            assert!(
                inbound.contains(&(8224, 8224, "10.0.2.0/24".into(), true)),
                "{inbound:?}"
            );
            assert!(
                inbound.contains(&(8224, 8224, "10.0.3.0/24".into(), true)),
                "{inbound:?}"
            );
            assert!(
                inbound.contains(&(2049, 2049, "10.0.0.0/16".into(), true)),
                "{inbound:?}"
            );
            assert!(
                inbound.contains(&(1024, 65535, "0.0.0.0/0".into(), true)),
                "{inbound:?}"
            );
        }
    }

    // Security groups: SG references between tiers, restricted egress where it should be.
    let sg = |key: &str| {
        let id = id_of(&st, key);
        let c = c.clone();
        async move {
            c.ec2
                .describe_security_groups()
                .group_ids(id)
                .send()
                .await
                .unwrap()
                .security_groups()[0]
                .clone()
        }
    };
    let sources = |g: &aws_sdk_ec2::types::SecurityGroup| -> Vec<(i32, String)> {
        let mut v: Vec<(i32, String)> = g
            .ip_permissions()
            .iter()
            .flat_map(|p| {
                let port = p.from_port().unwrap_or(-1);
                let groups = p
                    .user_id_group_pairs()
                    .iter()
                    .filter_map(move |u| u.group_id().map(|g| (port, g.to_string())));
                let cidrs = p
                    .ip_ranges()
                    .iter()
                    .filter_map(move |r| r.cidr_ip().map(|c| (port, c.to_string())));
                groups.chain(cidrs).collect::<Vec<_>>()
            })
            .collect();
        v.sort();
        v
    };
    let app = id_of(&st, "sg-app");
    let lambda = id_of(&st, "sg-lambda");
    assert_eq!(
        sources(&sg("sg-alb").await),
        vec![(80, "0.0.0.0/0".into()), (443, "0.0.0.0/0".into())]
    );
    assert_eq!(sources(&sg("sg-app").await), vec![(8224, id_of(&st, "sg-alb"))]);
    assert_eq!(sources(&sg("sg-db").await), vec![(3306, app.clone())]);
    let mut efs = vec![(2049, app.clone()), (2049, lambda.clone())];
    efs.sort();
    assert_eq!(sources(&sg("sg-efs").await), efs);
    let mut ep = vec![(443, app.clone()), (443, lambda.clone())];
    ep.sort();
    assert_eq!(sources(&sg("sg-endpoints").await), ep);
    assert!(sources(&sg("sg-lambda").await).is_empty());
    for key in ["sg-db", "sg-efs", "sg-endpoints"] {
        assert!(
            sg(key).await.ip_permissions_egress().is_empty(),
            "{key} egress must be revoked"
        );
    }
    assert!(!sg("sg-app").await.ip_permissions_egress().is_empty());

    // VPC endpoints: four interface endpoints with private DNS in the app subnets, S3 gateway on the private table.
    let mut app_subnets = vec![id_of(&st, "subnet-app-a"), id_of(&st, "subnet-app-b")];
    app_subnets.sort();
    for svc in ["secretsmanager", "ssm", "ssmmessages", "ec2messages"] {
        let e = c
            .ec2
            .describe_vpc_endpoints()
            .vpc_endpoint_ids(id_of(&st, &format!("vpce-{svc}")))
            .send()
            .await
            .unwrap();
        let e = &e.vpc_endpoints()[0];
        assert_eq!(
            e.service_name(),
            Some(format!("com.amazonaws.{}.{svc}", common::REGION).as_str())
        );
        assert_eq!(e.vpc_endpoint_type().map(|t| t.as_str()), Some("Interface"));
        assert_eq!(e.private_dns_enabled(), Some(true), "{svc}");
        let mut subnets = e.subnet_ids().to_vec();
        subnets.sort();
        assert_eq!(subnets, app_subnets, "{svc}");
        assert!(
            e.groups()
                .iter()
                .any(|g| g.group_id() == Some(id_of(&st, "sg-endpoints").as_str()))
        );
    }
    let s3 = c
        .ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(id_of(&st, "vpce-s3"))
        .send()
        .await
        .unwrap();
    let s3 = &s3.vpc_endpoints()[0];
    assert_eq!(s3.vpc_endpoint_type().map(|t| t.as_str()), Some("Gateway"));
    assert_eq!(s3.route_table_ids(), [id_of(&st, "rt-private")]);

    // A second `up` creates nothing and adopts nothing.
    let again = d.up(&["--json"]);
    let ev = events(&again);
    assert_eq!(
        count_status(&ev, "created") + count_status(&ev, "adopted") + count_status(&ev, "creating"),
        0,
        "{}",
        common::show(&again)
    );
    assert_eq!(census::network(&c, &d.name).await, census);

    // Destroy leaves nothing tagged and removes the state file.
    d.destroy();
    let left = census::network(&c, &d.name).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!d.state_exists());
    // Nothing untagged either: no VPC with our CIDR tagged Name=<deployment>-vpc.
    let named = c
        .ec2
        .describe_vpcs()
        .filters(
            Filter::builder()
                .name("tag:Name")
                .values(format!("{}-vpc", d.name))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(named.vpcs().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_up_converges_without_duplicates_or_orphans() {
    let c = clients().await;
    for n in [1, 4, 12, 20] {
        let d = Deployment::new(&format!("kill{n}"));
        let ami = common::ami('A');
        let killed = kill_after_resources(&d, &["up", "--ami", &ami, "--yes", "--json"], n);
        d.up(&[]);
        let census = census::network(&c, &d.name).await;
        let keys = census::all_keys(&census);
        assert_eq!(
            keys,
            expected_network_keys(),
            "after a kill at {n} resources (killed: {killed}): {census:?}"
        );
        let st = d.state();
        let recorded: Vec<String> = st["resources"].as_object().unwrap().keys().cloned().collect();
        for k in &keys {
            assert!(recorded.contains(k), "{k} is an orphan after a kill at {n}");
        }
        d.destroy();
        assert!(census::network(&c, &d.name).await.is_empty());
    }
}
