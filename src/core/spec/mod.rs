//! The desired architecture: one `NodeSpec` per resource of the blueprint, built from the
//! validated config. Pure data; the graph orders it and the resource kinds realise it.

use serde::{Deserialize, Serialize};

use super::config::{Config, HealthCheckConfig};
use super::names;
use super::rules::{AclRule, SgRule};

pub use super::kind::Kind;

mod compute;
mod data;
mod network;
mod sideload;

pub use compute::{ALARM_PERIOD_SECONDS, DASHBOARD_PORT, SCALING_COOLDOWN_SECONDS};
pub use network::{INTERFACE_ENDPOINT_SERVICES, endpoint_service_name};
pub use sideload::SIDELOAD_PREFIXES;
use {compute::compute, data::data, network::network, sideload::sideload};

/// What a route points at.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RouteTarget {
    InternetGateway(String),
    NatGateway(String),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndpointType {
    /// Interface endpoint with private DNS in these subnets, guarded by these SGs.
    Interface {
        subnets: Vec<String>,
        security_groups: Vec<String>,
    },
    /// Gateway endpoint on these route tables.
    Gateway { route_tables: Vec<String> },
}

/// Kind-specific properties. Keys name other nodes; kinds read their ids from `deps`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Props {
    Vpc {
        cidr: String,
    },
    InternetGateway {
        vpc: String,
    },
    Subnet {
        vpc: String,
        cidr: String,
        az: String,
        public: bool,
    },
    ElasticIp,
    NatGateway {
        subnet: String,
        eip: String,
    },
    RouteTable {
        vpc: String,
        subnets: Vec<String>,
        /// The destinations of the routes the config puts in this table (each a `Route`
        /// node of its own). Any other route made with CreateRoute, apart from a VPC
        /// endpoint's, was made by hand: drift, deleted by `up`.
        routes: Vec<String>,
    },
    Route {
        table: String,
        destination: String,
        target: RouteTarget,
    },
    NetworkAcl {
        vpc: String,
        subnets: Vec<String>,
        rules: Vec<AclRule>,
    },
    SecurityGroup {
        vpc: String,
        description: String,
        ingress: Vec<SgRule>,
        restrict_egress: bool,
    },
    VpcEndpoint {
        vpc: String,
        service: String,
        endpoint: EndpointType,
    },
    /// The VPC's flow log, delivered to the logs bucket (under `AWSLogs/<account>/`,
    /// AWS's own layout), every `max_aggregation_interval` seconds.
    FlowLog {
        vpc: String,
        bucket: String,
        traffic_type: String,
        max_aggregation_interval: i32,
    },
    // ---- storage and data (names derive from the deployment; see `names`) ----
    Bucket {
        versioning: bool,
        /// What the bucket holds (its name and policy follow); the resources bucket by default.
        #[serde(default)]
        purpose: BucketPurpose,
    },
    FileSystem {
        /// A file-system policy refuses every request made without TLS.
        #[serde(default)]
        require_tls: bool,
    },
    MountTarget {
        file_system: String,
        subnet: String,
        security_group: String,
    },
    /// `path` is created with `uid`/`gid` and mode 0755 when it does not exist.
    AccessPoint {
        file_system: String,
        uid: i64,
        gid: i64,
        path: String,
    },
    DbSubnetGroup {
        subnets: Vec<String>,
    },
    /// (name, value, apply method) triples; static parameters need `pending-reboot`.
    DbParameterGroup {
        family: String,
        parameters: Vec<(String, String, String)>,
    },
    DbInstance {
        subnet_group: String,
        parameter_group: String,
        security_group: String,
        db: DbSettings,
    },
    /// Waits until the DB is available and verified Multi-AZ, sets the secret's rotation,
    /// then writes `/<deployment>/db-endpoint` (host:port) for the instances to read.
    DbEndpoint {
        db: String,
        expect_multi_az: bool,
        rotation_days: i64,
    },
    /// Usable early: converts the `db` instance, created Single-AZ by this run, to Multi-AZ
    /// in place (ModifyDBInstance MultiAZ, at once) and waits until the standby exists. It
    /// owns the instance's `multi_az` setting. Nothing depends on it: the dashboard goes on
    /// with the Single-AZ instance meanwhile.
    DbStandby {
        db: String,
    },
    /// The licence secret; the value is read at create time from `source`, never stored.
    Secret {
        name: String,
        source: SecretSource,
    },
    // ---- side-loading ----
    IamRole {
        name: String,
        service: String,
        managed_policies: Vec<String>,
        policy: RolePolicy,
    },
    LogGroup {
        name: String,
        retention_days: i32,
    },
    LambdaFunction {
        name: String,
        runtime: String,
        role: String,
        subnets: Vec<String>,
        security_group: String,
        access_point: String,
        log_group: String,
    },
    LambdaPermission {
        function: String,
        bucket: String,
    },
    BucketNotification {
        bucket: String,
        function: String,
        prefixes: Vec<String>,
    },
    // ---- compute and edge ----
    InstanceProfile {
        name: String,
        role: String,
    },
    LaunchTemplate {
        name: String,
        profile: String,
        security_groups: Vec<String>,
        file_system: String,
        db: String,
        licence: Option<String>,
        instance: InstanceSettings,
    },
    TargetGroup {
        name: String,
        vpc: String,
        port: i32,
        health_check: HealthCheckConfig,
    },
    LoadBalancer {
        name: String,
        subnets: Vec<String>,
        security_group: String,
        /// Access logs into this bucket (node key) under this prefix.
        #[serde(default)]
        access_logs: Option<AccessLogs>,
    },
    Listener {
        load_balancer: String,
        port: i32,
        action: ListenerAction,
    },
    AutoScalingGroup {
        name: String,
        launch_template: String,
        subnets: Vec<String>,
        target_group: String,
        min: i32,
        max: i32,
        desired: i32,
        health_check_grace_seconds: i32,
        /// The launch hook given at creation (also converged as its own node).
        hook_name: String,
        heartbeat_seconds: i32,
    },
    LifecycleHook {
        asg: String,
        name: String,
        heartbeat_seconds: i32,
    },
    ScalingPolicy {
        asg: String,
        adjustment: i32,
        cooldown_seconds: i32,
    },
    Alarm {
        name: String,
        asg: String,
        policy: String,
        high: bool,
        threshold: f64,
        period_seconds: i32,
        evaluation_periods: i32,
    },
    DnsRecord {
        zone_id: String,
        domain: String,
        load_balancer: String,
    },
    /// `up` ends when a target is healthy behind the load balancer; its id is the URL.
    DashboardCheck {
        target_group: String,
        load_balancer: String,
        https: bool,
        domain: Option<String>,
    },
    /// A resource known only from the state file (destroy of something the config no
    /// longer describes): it can be deleted, not created.
    Recorded,
}

/// What a bucket of the deployment is for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketPurpose {
    /// The resources bucket users drop files into (side-loaded to EFS).
    #[default]
    Resources,
    /// The deployment's logs, kept `expire_days` days: the load balancer's access logs under
    /// `alb_prefix` when they are on, the VPC's flow logs when `flow_logs` (each writer is
    /// granted its place in the bucket policy).
    Logs {
        alb_prefix: Option<String>,
        flow_logs: bool,
        expire_days: i32,
    },
}

/// Where the load balancer writes its access logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLogs {
    pub bucket: String,
    pub prefix: String,
}

/// The access-log prefix in the logs bucket.
pub const ALB_LOG_PREFIX: &str = "alb";

/// The flow log records accepted and rejected traffic (CIS AWS Foundations 3.9 asks for
/// rejected at least; both answer "what talked to what" after an incident).
pub const FLOW_LOG_TRAFFIC: &str = "ALL";

/// Seconds a flow log aggregates before it writes (AWS's default: 600; 60 costs more PUTs).
pub const FLOW_LOG_INTERVAL: i32 = 600;

/// Where the licence value comes from (read at call time; the value itself is never kept).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretSource {
    Env(String),
    File(std::path::PathBuf),
}

/// The inline policy of a role, built from its dependencies' ARNs at converge time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolePolicy {
    SideloadLambda,
    DashboardEc2,
}

/// Database settings copied from the config (the password is never here: AWS manages it).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DbSettings {
    pub identifier: String,
    pub instance_class: String,
    pub allocated_storage_gib: i32,
    pub engine_version: String,
    pub multi_az: bool,
    pub master_username: String,
    pub backup_retention_days: i32,
    pub deletion_protection: bool,
    /// Day-2 modifications now, or in the maintenance window.
    pub apply_immediately: bool,
    /// Logs RDS exports to CloudWatch Logs (`error`), into log groups `up` creates first.
    #[serde(default)]
    pub log_exports: Vec<String>,
    /// Usable early (`multi_az` and `database.usable_early`): a create makes the instance
    /// Single-AZ and the `db-standby` node converts it and owns `multi_az` from then on.
    pub standby_later: bool,
}

impl DbSettings {
    /// What CreateDBInstance asks for: Single-AZ when the standby follows later.
    pub fn create_multi_az(&self) -> bool {
        self.multi_az && !self.standby_later
    }
}

/// What an instance boots with (besides the ids of other resources): every change to it
/// needs new instances.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceSettings {
    /// Names in the user data derive from it.
    pub deployment: String,
    pub region: String,
    /// `amazonaws.com`, or `amazonaws.com.cn` in the China regions.
    pub dns_suffix: String,
    pub ami: String,
    pub instance_type: String,
    pub root_volume_gib: i32,
    pub key_pair: Option<String>,
    /// POSIX owner of the shared files (user data).
    pub efs_uid: i64,
    pub efs_gid: i64,
    /// Mount the file system with TLS (user data).
    pub efs_require_tls: bool,
    /// How long a new instance waits for the database endpoint (the hook's heartbeat).
    pub endpoint_wait_seconds: i32,
}

impl InstanceSettings {
    pub fn from_config(cfg: &Config, region: &str) -> Self {
        Self {
            deployment: cfg.deployment.clone(),
            region: region.to_string(),
            dns_suffix: names::dns_suffix(region).to_string(),
            ami: cfg.ami.clone().unwrap_or_default(),
            instance_type: cfg.instance_type.clone(),
            root_volume_gib: cfg.root_volume_gib,
            key_pair: cfg.key_pair.clone(),
            efs_uid: cfg.storage.efs_uid,
            efs_gid: cfg.storage.efs_gid,
            efs_require_tls: cfg.storage.efs_require_tls,
            endpoint_wait_seconds: cfg.scaling.lifecycle_heartbeat_seconds,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ListenerAction {
    /// HTTP 80 -> HTTPS 443 (HTTP_301).
    RedirectToHttps,
    /// Forward to the target group; HTTPS when a certificate is given.
    Forward {
        target_group: String,
        certificate_arn: Option<String>,
        tls_policy: Option<String>,
    },
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
        self.nodes.push(NodeSpec {
            key: key.into(),
            kind,
            deps,
            props,
        });
    }
}

/// The whole architecture for one deployment.
pub fn build(input: &SpecInput<'_>) -> Vec<NodeSpec> {
    let mut b = Builder { nodes: Vec::new() };
    network(&mut b, input);
    data(&mut b, input);
    sideload(&mut b, input);
    compute(&mut b, input);
    b.nodes
}

fn keys(prefix: &str) -> Vec<String> {
    ZONES.iter().map(|z| format!("{prefix}-{z}")).collect()
}

fn with(mut deps: Vec<String>, more: &[&str]) -> Vec<String> {
    deps.extend(more.iter().map(|s| s.to_string()));
    deps
}

/// Whether `up` takes the usable-early path: a Multi-AZ database created Single-AZ, the
/// dashboard going on as soon as it is available, the standby built afterwards by the
/// `db-standby` node. Only a database this run creates is created Single-AZ; an existing one
/// is adopted as it is (the standby node then only confirms Multi-AZ).
pub fn usable_early(cfg: &Config) -> bool {
    cfg.database.multi_az && cfg.database.usable_early
}

/// The licence secret exists only when a licence source is configured.
pub fn licence_source(cfg: &Config) -> Option<SecretSource> {
    match (&cfg.licence.env, &cfg.licence.file) {
        (Some(var), _) => Some(SecretSource::Env(var.clone())),
        (None, Some(path)) => Some(SecretSource::File(path.clone())),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::core::graph::Graph;

    fn input(cfg: &Config) -> SpecInput<'_> {
        SpecInput {
            config: cfg,
            region: "eu-west-1",
            azs: ["eu-west-1a".into(), "eu-west-1b".into()],
        }
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
        assert_eq!(count(Kind::NetworkAcl), 3);
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
    fn compute_tier_follows_the_certificate_and_the_domain() {
        let count = |nodes: &[NodeSpec], k: Kind| nodes.iter().filter(|n| n.kind == k).count();
        let cfg = Config::default();
        let plain = build(&input(&cfg));
        assert_eq!(count(&plain, Kind::Listener), 1);
        assert_eq!(count(&plain, Kind::DnsRecord), 0);
        assert_eq!(count(&plain, Kind::ScalingPolicy), 2);
        assert_eq!(count(&plain, Kind::Alarm), 2);
        assert_eq!(count(&plain, Kind::DashboardCheck), 1);
        Graph::new(plain).expect("valid graph");
        let cfg = Config {
            certificate_arn: Some("arn:aws:acm:eu-west-1:123456789012:certificate/x".into()),
            hosted_zone_id: Some("Z123".into()),
            domain_name: Some("dash.example.com".into()),
            ..Config::default()
        };
        let full = build(&input(&cfg));
        assert_eq!(count(&full, Kind::Listener), 2);
        assert_eq!(count(&full, Kind::DnsRecord), 1);
        let check = full.iter().find(|n| n.kind == Kind::DashboardCheck).unwrap();
        for dep in ["listener-http", "listener-https", "dns-record", "db-endpoint", "asg"] {
            assert!(
                check.deps.contains(&dep.to_string()),
                "the dashboard check waits for {dep}"
            );
        }
        Graph::new(full).expect("valid graph");
    }

    /// The logs bucket exists for whichever writer is on; the flow log records the VPC into
    /// it and waits for it (its policy grants the delivery); the ALB waits for it only when
    /// it writes access logs there. Both off: neither node.
    #[test]
    fn the_logs_bucket_serves_the_access_logs_and_the_flow_log() {
        let built = |alb: bool, flow: bool| {
            let mut cfg = Config::default();
            (cfg.logging.alb_access_logs, cfg.logging.vpc_flow_logs) = (alb, flow);
            let nodes = build(&input(&cfg));
            Graph::new(nodes.clone()).expect("valid graph");
            nodes
        };
        let node = |nodes: &[NodeSpec], key: &str| nodes.iter().find(|n| n.key == key).cloned();
        let purpose = |nodes: &[NodeSpec]| match node(nodes, "logs-bucket").map(|n| n.props) {
            Some(Props::Bucket { purpose, .. }) => Some(purpose),
            _ => None,
        };
        let both = built(true, true);
        assert_eq!(
            purpose(&both),
            Some(BucketPurpose::Logs {
                alb_prefix: Some(ALB_LOG_PREFIX.into()),
                flow_logs: true,
                expire_days: 90
            })
        );
        let flow = node(&both, "flow-log").expect("a flow log by default");
        assert_eq!(flow.kind, Kind::FlowLog);
        assert_eq!(flow.deps, ["logs-bucket", "vpc"]);
        assert_eq!(
            flow.props,
            Props::FlowLog {
                vpc: "vpc".into(),
                bucket: "logs-bucket".into(),
                traffic_type: "ALL".into(),
                max_aggregation_interval: 600
            }
        );
        assert!(node(&both, "alb").unwrap().deps.contains(&"logs-bucket".to_string()));

        let flow_only = built(false, true);
        assert_eq!(
            purpose(&flow_only),
            Some(BucketPurpose::Logs {
                alb_prefix: None,
                flow_logs: true,
                expire_days: 90
            })
        );
        assert!(
            !node(&flow_only, "alb")
                .unwrap()
                .deps
                .contains(&"logs-bucket".to_string())
        );
        assert!(node(&flow_only, "flow-log").is_some());

        let alb_only = built(true, false);
        assert!(node(&alb_only, "flow-log").is_none());
        assert!(matches!(
            purpose(&alb_only),
            Some(BucketPurpose::Logs {
                flow_logs: false,
                alb_prefix: Some(_),
                ..
            })
        ));

        let neither = built(false, false);
        assert!(node(&neither, "logs-bucket").is_none() && node(&neither, "flow-log").is_none());
    }

    /// Usable early (the default): the instance is created Single-AZ, the endpoint does not
    /// wait for Multi-AZ, and the standby node (after the endpoint) is the only one that
    /// does; nothing waits for it. Off, or Multi-AZ off: today's graph, no standby node.
    #[test]
    fn usable_early_adds_a_standby_nothing_waits_for() {
        let db_of = |nodes: &[NodeSpec]| match &nodes.iter().find(|n| n.key == "db").unwrap().props {
            Props::DbInstance { db, .. } => db.clone(),
            other => panic!("{other:?}"),
        };
        let expects = |nodes: &[NodeSpec]| match &nodes.iter().find(|n| n.key == "db-endpoint").unwrap().props {
            Props::DbEndpoint { expect_multi_az, .. } => *expect_multi_az,
            other => panic!("{other:?}"),
        };
        let cfg = Config::default();
        assert!(usable_early(&cfg));
        let nodes = build(&input(&cfg));
        let standby = nodes
            .iter()
            .find(|n| n.kind == Kind::DbStandby)
            .expect("a standby node");
        assert_eq!(standby.key, "db-standby");
        assert_eq!(standby.deps, vec!["db".to_string(), "db-endpoint".to_string()]);
        assert!(matches!(&standby.props, Props::DbStandby { db } if db == "db"));
        assert!(
            nodes.iter().all(|n| !n.deps.contains(&standby.key)),
            "nothing waits for the standby"
        );
        let db = db_of(&nodes);
        assert!(db.multi_az && db.standby_later && !db.create_multi_az());
        assert!(!expects(&nodes));
        Graph::new(nodes).expect("valid graph");

        for cfg in [
            Config {
                database: crate::core::config::DatabaseConfig {
                    usable_early: false,
                    ..Default::default()
                },
                ..Config::default()
            },
            Config {
                database: crate::core::config::DatabaseConfig {
                    multi_az: false,
                    ..Default::default()
                },
                ..Config::default()
            },
        ] {
            assert!(!usable_early(&cfg));
            let nodes = build(&input(&cfg));
            assert!(nodes.iter().all(|n| n.kind != Kind::DbStandby));
            let db = db_of(&nodes);
            assert!(!db.standby_later);
            assert_eq!(db.create_multi_az(), cfg.database.multi_az);
            assert_eq!(expects(&nodes), cfg.database.multi_az);
        }
    }

    #[test]
    fn interface_endpoints_can_be_switched_off_and_the_group_then_waits_for_the_nat_route() {
        let on = build(&input(&Config::default()));
        let interface = |nodes: &[NodeSpec]| -> Vec<String> {
            nodes
                .iter()
                .filter(|n| {
                    matches!(
                        &n.props,
                        Props::VpcEndpoint {
                            endpoint: EndpointType::Interface { .. },
                            ..
                        }
                    )
                })
                .map(|n| n.key.clone())
                .collect()
        };
        assert_eq!(
            interface(&on),
            [
                "vpce-secretsmanager",
                "vpce-ssm",
                "vpce-ssmmessages",
                "vpce-ec2messages"
            ]
        );
        let mut cfg = Config::default();
        cfg.network.interface_endpoints = false;
        let off = build(&input(&cfg));
        assert!(interface(&off).is_empty());
        // The S3 gateway endpoint (free) stays; nothing else goes.
        assert!(off.iter().any(|n| n.key == "vpce-s3"));
        let keys = |nodes: &[NodeSpec]| nodes.iter().map(|n| n.key.clone()).collect::<BTreeSet<_>>();
        let gone: Vec<String> = keys(&on).difference(&keys(&off)).cloned().collect();
        assert_eq!(
            gone,
            interface(&on)
                .into_iter()
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
        );
        let asg = off.iter().find(|n| n.key == "asg").unwrap();
        assert!(!asg.deps.iter().any(|d| d.starts_with("vpce-")), "{:?}", asg.deps);
        assert!(
            asg.deps.contains(&"route-private-default".to_string()),
            "{:?}",
            asg.deps
        );
        Graph::new(off).expect("valid graph");
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

    /// Basic monitoring publishes every 5 minutes: an alarm period must be a multiple of it
    /// (a 60 s period sits in INSUFFICIENT_DATA on AWS; no emulator shows that).
    #[test]
    fn the_alarm_periods_fit_basic_monitoring() {
        let cfg = Config {
            ami: Some("ami-0123456789abcdef0".into()),
            ..Config::default()
        };
        let nodes = build(&input(&cfg));
        let periods: Vec<i32> = nodes
            .iter()
            .filter_map(|n| match &n.props {
                Props::Alarm { period_seconds, .. } => Some(*period_seconds),
                _ => None,
            })
            .collect();
        assert_eq!(periods.len(), 2);
        assert!(periods.iter().all(|p| p % 300 == 0), "{periods:?}");
    }
}
