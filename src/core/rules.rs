//! Network ACL and security group rule sets, as pure data so they can be unit-tested.
//!
//! NACLs are stateless: every inbound allowance needs its return traffic allowed on the
//! ephemeral ports (1024-65535), and outbound is open. Security groups are stateful and
//! reference each other by group, never by CIDR, between tiers.

use serde::{Deserialize, Serialize};

pub const ANYWHERE: &str = "0.0.0.0/0";
pub const TCP: &str = "6";
pub const ALL_PROTOCOLS: &str = "-1";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclRule {
    pub number: i32,
    pub egress: bool,
    /// IANA protocol number as AWS writes it (`6` TCP, `-1` all).
    pub protocol: String,
    pub cidr: String,
    pub from_port: i32,
    pub to_port: i32,
    pub allow: bool,
}

fn inbound_tcp(number: i32, cidr: &str, from_port: i32, to_port: i32) -> AclRule {
    AclRule {
        number,
        egress: false,
        protocol: TCP.into(),
        cidr: cidr.into(),
        from_port,
        to_port,
        allow: true,
    }
}

/// The ephemeral-port rule would otherwise admit service ports above 1024 from anywhere.
fn deny_inbound_tcp(number: i32, port: i32) -> AclRule {
    AclRule {
        number,
        egress: false,
        protocol: TCP.into(),
        cidr: ANYWHERE.into(),
        from_port: port,
        to_port: port,
        allow: false,
    }
}

fn outbound_all() -> AclRule {
    AclRule {
        number: 100,
        egress: true,
        protocol: ALL_PROTOCOLS.into(),
        cidr: ANYWHERE.into(),
        from_port: 0,
        to_port: 65535,
        allow: true,
    }
}

/// Public subnets: web traffic in, return traffic of the NAT gateway and the ALB in, and
/// everything from the VPC's private (app) subnets.
///
/// Why the last rule (130+): a NACL is stateless and judges every packet where it enters a
/// subnet. What the instances and the Lambda function send to the internet goes through the
/// NAT gateway in a public subnet, so it enters the public subnets with its REAL destination
/// port: 443 and 80 would pass the web rules, but e-mail (25/465/587), LDAP (389/636) or any
/// other service the dashboard talks to would be dropped here and time out silently (AWS
/// shows no error; no emulator enforces ACLs). The app subnets are ours and their own ACL
/// and security groups already restrict what runs there, so all protocols from their CIDRs
/// are allowed in; the internet still reaches only 80, 443 and the ephemeral ports.
pub fn public_acl_rules(private_cidrs: &[String]) -> Vec<AclRule> {
    let mut rules = vec![
        inbound_tcp(100, ANYWHERE, 80, 80),
        inbound_tcp(110, ANYWHERE, 443, 443),
        inbound_tcp(120, ANYWHERE, 1024, 65535),
    ];
    rules.extend(private_cidrs.iter().enumerate().map(|(i, cidr)| AclRule {
        number: 130 + i as i32,
        egress: false,
        protocol: ALL_PROTOCOLS.into(),
        cidr: cidr.clone(),
        from_port: 0,
        to_port: 65535,
        allow: true,
    }));
    rules.push(outbound_all());
    rules
}

/// App subnets: the dashboard port (`dashboard_port`) from the public subnets (the ALB),
/// NFS and HTTPS (EFS mount targets, VPC endpoints) from the VPC, and return traffic. The
/// dashboard and NFS ports lie inside the ephemeral range, so explicit denies (evaluated
/// before the ephemeral allowance: lower numbers first) keep them closed to everything else.
pub fn app_acl_rules(vpc_cidr: &str, public_cidrs: &[String], dashboard_port: i32) -> Vec<AclRule> {
    let mut rules: Vec<AclRule> = public_cidrs
        .iter()
        .enumerate()
        .map(|(i, cidr)| inbound_tcp(100 + i as i32, cidr, dashboard_port, dashboard_port))
        .collect();
    rules.push(inbound_tcp(110, vpc_cidr, 2049, 2049));
    rules.push(inbound_tcp(120, vpc_cidr, 443, 443));
    rules.push(deny_inbound_tcp(125, dashboard_port));
    rules.push(deny_inbound_tcp(126, 2049));
    rules.push(inbound_tcp(130, ANYWHERE, 1024, 65535));
    rules.push(outbound_all());
    rules
}

/// DB subnets: MariaDB from the app subnets in, its replies to them out; nothing else
/// either way (without this ACL they sit on the VPC's default one, which allows all).
pub fn db_acl_rules(app_cidrs: &[String]) -> Vec<AclRule> {
    let mut rules = Vec::new();
    for (i, cidr) in app_cidrs.iter().enumerate() {
        rules.push(inbound_tcp(100 + i as i32, cidr, 3306, 3306));
        rules.push(AclRule {
            number: 100 + i as i32,
            egress: true,
            protocol: TCP.into(),
            cidr: cidr.clone(),
            from_port: 1024,
            to_port: 65535,
            allow: true,
        });
    }
    rules
}

/// Where an ingress rule admits traffic from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SgSource {
    Cidr(String),
    /// Another security group, by node key.
    Group(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SgRule {
    pub port: i32,
    pub source: SgSource,
    pub description: String,
}

impl SgRule {
    pub fn source_group(&self) -> Option<&str> {
        match &self.source {
            SgSource::Group(key) => Some(key),
            SgSource::Cidr(_) => None,
        }
    }
}

pub struct SecurityGroupDef {
    pub key: &'static str,
    pub description: &'static str,
    pub ingress: Vec<SgRule>,
    /// Revoke the default allow-all egress: tiers that never open connections.
    pub restrict_egress: bool,
}

fn from_group(port: i32, key: &str, description: &str) -> SgRule {
    SgRule {
        port,
        source: SgSource::Group(key.into()),
        description: description.into(),
    }
}

fn from_anywhere(port: i32, description: &str) -> SgRule {
    SgRule {
        port,
        source: SgSource::Cidr(ANYWHERE.into()),
        description: description.into(),
    }
}

/// The six security groups of the blueprint, exactly; the instances take the dashboard on
/// `dashboard_port`.
pub fn security_groups(dashboard_port: i32) -> Vec<SecurityGroupDef> {
    vec![
        SecurityGroupDef {
            key: "sg-alb",
            description: "Panintelligence load balancer: HTTP and HTTPS from anywhere",
            ingress: vec![from_anywhere(80, "HTTP"), from_anywhere(443, "HTTPS")],
            restrict_egress: false,
        },
        SecurityGroupDef {
            key: "sg-app",
            // A group's description never changes: it does not name the port.
            description: "Panintelligence dashboard instances: the dashboard port from the load balancer",
            ingress: vec![from_group(dashboard_port, "sg-alb", "dashboard from the ALB")],
            restrict_egress: false,
        },
        SecurityGroupDef {
            key: "sg-db",
            description: "Panintelligence database: MariaDB from the dashboard instances",
            ingress: vec![from_group(3306, "sg-app", "MariaDB from the dashboard")],
            restrict_egress: true,
        },
        SecurityGroupDef {
            key: "sg-efs",
            description: "Panintelligence EFS mount targets: NFS from the dashboard and the side-loading Lambda",
            ingress: vec![
                from_group(2049, "sg-app", "NFS from the dashboard"),
                from_group(2049, "sg-lambda", "NFS from the side-loading Lambda"),
            ],
            restrict_egress: true,
        },
        SecurityGroupDef {
            key: "sg-lambda",
            description: "Panintelligence side-loading Lambda: no ingress",
            ingress: vec![],
            restrict_egress: false,
        },
        SecurityGroupDef {
            key: "sg-endpoints",
            description: "Panintelligence VPC interface endpoints: HTTPS from the dashboard and the Lambda",
            ingress: vec![
                from_group(443, "sg-app", "AWS APIs from the dashboard"),
                from_group(443, "sg-lambda", "AWS APIs from the side-loading Lambda"),
            ],
            restrict_egress: true,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NACL semantics: the lowest-numbered matching inbound rule decides; no match denies.
    /// `from` says whether a rule's CIDR covers the source address.
    fn admits(rules: &[AclRule], from: impl Fn(&str) -> bool, port: i32) -> bool {
        let mut inbound: Vec<&AclRule> = rules.iter().filter(|r| !r.egress).collect();
        inbound.sort_by_key(|r| r.number);
        inbound
            .into_iter()
            .find(|r| {
                from(&r.cidr)
                    && (r.protocol == TCP || r.protocol == ALL_PROTOCOLS)
                    && r.from_port <= port
                    && port <= r.to_port
            })
            .is_some_and(|r| r.allow)
    }

    fn app_cidrs() -> Vec<String> {
        vec!["10.0.0.0/24".into(), "10.0.1.0/24".into()]
    }

    #[test]
    fn public_acl_admits_web_and_return_traffic_only_from_the_internet() {
        let rules = public_acl_rules(&app_cidrs());
        let any = |c: &str| c == ANYWHERE;
        assert!(admits(&rules, any, 80));
        assert!(admits(&rules, any, 443));
        assert!(admits(&rules, any, 1024) && admits(&rules, any, 65535));
        assert!(!admits(&rules, any, 22));
        assert!(!admits(&rules, any, 25), "SMTP from the internet");
        assert!(rules.iter().any(|r| r.egress && r.protocol == ALL_PROTOCOLS));
    }

    /// Traffic the app subnets send out through the NAT gateway enters the public subnets
    /// with its real destination port: e-mail and LDAP must pass there, from both app
    /// subnets (the ACL is stateless; without the rule these time out on AWS).
    #[test]
    fn public_acl_admits_what_the_app_subnets_send_through_the_nat() {
        let rules = public_acl_rules(&app_cidrs());
        for app in app_cidrs() {
            let from_app = |c: &str| c == app || c == ANYWHERE;
            for port in [25, 465, 587, 389, 636, 22, 80, 443, 8080] {
                assert!(admits(&rules, from_app, port), "{app} -> port {port}");
            }
        }
        let all_from_app: Vec<&AclRule> = rules
            .iter()
            .filter(|r| !r.egress && app_cidrs().contains(&r.cidr))
            .collect();
        assert_eq!(all_from_app.len(), 2);
        assert!(all_from_app.iter().all(|r| r.protocol == ALL_PROTOCOLS && r.allow));
    }

    #[test]
    fn app_acl_admits_the_dashboard_only_from_public_subnets() {
        let public = vec!["10.0.2.0/24".to_string(), "10.0.3.0/24".to_string()];
        let rules = app_acl_rules("10.0.0.0/16", &public, 8224);
        // A source in public-a matches public-a's rule and 0.0.0.0/0 rules.
        let public_a = |c: &str| c == "10.0.2.0/24" || c == ANYWHERE || c == "10.0.0.0/16";
        let app_b = |c: &str| c == ANYWHERE || c == "10.0.0.0/16";
        let internet = |c: &str| c == ANYWHERE;
        assert!(admits(&rules, public_a, 8224));
        assert!(admits(&rules, |c: &str| c == "10.0.3.0/24" || c == ANYWHERE, 8224));
        assert!(!admits(&rules, internet, 8224));
        assert!(!admits(&rules, app_b, 8224));
        assert!(admits(&rules, app_b, 2049));
        assert!(!admits(&rules, internet, 2049));
        assert!(admits(&rules, app_b, 443));
        assert!(!admits(&rules, internet, 443));
        assert!(admits(&rules, internet, 32768), "ephemeral return traffic");
        assert!(!admits(&rules, internet, 22));
    }

    /// Another image's port: the public subnets reach it, nothing else does, and 8224 is
    /// no longer special; the instances' group takes it from the ALB's group only.
    #[test]
    fn the_dashboard_port_follows_the_config() {
        let public = vec!["10.0.2.0/24".to_string(), "10.0.3.0/24".to_string()];
        let rules = app_acl_rules("10.0.0.0/16", &public, 8443);
        let public_a = |c: &str| c == "10.0.2.0/24" || c == ANYWHERE || c == "10.0.0.0/16";
        let internet = |c: &str| c == ANYWHERE;
        assert!(admits(&rules, public_a, 8443));
        assert!(!admits(&rules, internet, 8443));
        assert!(
            admits(&rules, internet, 8224),
            "8224 is a return port like any other now"
        );
        let app = security_groups(8443).into_iter().find(|g| g.key == "sg-app").unwrap();
        assert_eq!(
            app.ingress
                .iter()
                .map(|r| (r.port, r.source_group()))
                .collect::<Vec<_>>(),
            [(8443, Some("sg-alb"))]
        );
    }

    /// Why 3389 (Prowler's ec2_networkacl_allow_ingress_tcp_port_3389, declared in
    /// tests/security/trade-offs.txt) stays inside the return-traffic range: the NAT gateway
    /// (public subnets) and Lambda (app subnets) take their source ports from all of
    /// 1024-65535, so replies from the internet may come back to any of them; a port left
    /// out would hang the connections mapped to it. Only the app tier's own service ports
    /// are closed, and 22 (below 1024) is not admitted from the internet anywhere.
    #[test]
    fn return_traffic_reaches_every_port_the_nat_gateway_and_lambda_use() {
        let public = vec!["10.0.2.0/24".to_string(), "10.0.3.0/24".to_string()];
        let internet = |c: &str| c == ANYWHERE;
        let public_acl = public_acl_rules(&app_cidrs());
        let app_acl = app_acl_rules("10.0.0.0/16", &public, 8224);
        for port in 1024..=65535 {
            assert!(admits(&public_acl, internet, port), "public, port {port}");
            let closed = port == 8224 || port == 2049;
            assert_eq!(admits(&app_acl, internet, port), !closed, "app, port {port}");
        }
        assert!(admits(&public_acl, internet, 3389) && admits(&app_acl, internet, 3389));
        for port in [22, 25, 389] {
            assert!(!admits(&public_acl, internet, port), "public, port {port}");
            assert!(!admits(&app_acl, internet, port), "app, port {port}");
        }
    }

    /// The outbound counterpart of `admits`: to a destination, on a port.
    fn lets_out(rules: &[AclRule], to: impl Fn(&str) -> bool, port: i32) -> bool {
        let mut outbound: Vec<&AclRule> = rules.iter().filter(|r| r.egress).collect();
        outbound.sort_by_key(|r| r.number);
        outbound
            .into_iter()
            .find(|r| {
                to(&r.cidr)
                    && (r.protocol == TCP || r.protocol == ALL_PROTOCOLS)
                    && r.from_port <= port
                    && port <= r.to_port
            })
            .is_some_and(|r| r.allow)
    }

    #[test]
    fn db_acl_admits_mariadb_from_the_app_subnets_and_answers_them_only() {
        let app = vec!["10.0.0.0/24".to_string(), "10.0.1.0/24".to_string()];
        let rules = db_acl_rules(&app);
        let app_a = |c: &str| c == "10.0.0.0/24" || c == ANYWHERE || c == "10.0.0.0/16";
        let app_b = |c: &str| c == "10.0.1.0/24" || c == ANYWHERE || c == "10.0.0.0/16";
        let public_a = |c: &str| c == "10.0.2.0/24" || c == ANYWHERE || c == "10.0.0.0/16";
        let internet = |c: &str| c == ANYWHERE;
        assert!(admits(&rules, app_a, 3306) && admits(&rules, app_b, 3306));
        assert!(!admits(&rules, public_a, 3306), "not from the public subnets");
        assert!(!admits(&rules, internet, 3306));
        for port in [22, 443, 2049, 8224, 32768] {
            assert!(!admits(&rules, app_a, port), "port {port} from the app subnets");
        }
        // Replies to the app instances' ephemeral ports, and nowhere else.
        assert!(lets_out(&rules, app_a, 32768) && lets_out(&rules, app_b, 65535));
        assert!(
            !lets_out(&rules, app_a, 443),
            "no connection of its own to a service port"
        );
        assert!(!lets_out(&rules, public_a, 32768));
        assert!(!lets_out(&rules, internet, 443));
        assert!(rules.iter().all(|r| r.cidr != ANYWHERE), "no rule names 0.0.0.0/0");
    }

    #[test]
    fn acl_rule_numbers_are_unique_per_direction() {
        for rules in [
            public_acl_rules(&app_cidrs()),
            app_acl_rules("10.0.0.0/16", &["10.0.2.0/24".into(), "10.0.3.0/24".into()], 8224),
            db_acl_rules(&["10.0.0.0/24".into(), "10.0.1.0/24".into()]),
        ] {
            let mut seen = std::collections::HashSet::new();
            for r in &rules {
                assert!(seen.insert((r.egress, r.number)), "duplicate rule number {}", r.number);
            }
        }
    }

    #[test]
    fn security_groups_match_the_blueprint() {
        let sgs = security_groups(8224);
        let get = |k: &str| sgs.iter().find(|s| s.key == k).unwrap();
        let summary = |k: &str| -> Vec<(i32, String)> {
            get(k)
                .ingress
                .iter()
                .map(|r| {
                    let src = match &r.source {
                        SgSource::Cidr(c) => c.clone(),
                        SgSource::Group(g) => g.clone(),
                    };
                    (r.port, src)
                })
                .collect()
        };
        assert_eq!(sgs.len(), 6);
        assert_eq!(summary("sg-alb"), vec![(80, ANYWHERE.into()), (443, ANYWHERE.into())]);
        assert_eq!(summary("sg-app"), vec![(8224, "sg-alb".into())]);
        assert_eq!(summary("sg-db"), vec![(3306, "sg-app".into())]);
        assert_eq!(
            summary("sg-efs"),
            vec![(2049, "sg-app".into()), (2049, "sg-lambda".into())]
        );
        assert_eq!(summary("sg-lambda"), vec![]);
        assert_eq!(
            summary("sg-endpoints"),
            vec![(443, "sg-app".into()), (443, "sg-lambda".into())]
        );
        for k in ["sg-db", "sg-efs", "sg-endpoints"] {
            assert!(get(k).restrict_egress, "{k} never opens connections");
        }
        // No tier other than the ALB is reachable from a CIDR.
        for sg in &sgs {
            if sg.key != "sg-alb" {
                assert!(sg.ingress.iter().all(|r| r.source_group().is_some()), "{}", sg.key);
            }
        }
    }
}
