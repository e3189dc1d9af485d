//! The desired architecture: one `NodeSpec` per resource of the blueprint, built from the
//! validated config. Pure data; the graph orders it and the resource kinds realise it.

use serde::{Deserialize, Serialize};

use super::config::{Config, HealthCheckConfig};
use super::names;
use super::rules::{self, AclRule, SgRule};

pub use super::kind::Kind;

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
    /// The load balancer's access logs, under `prefix`, kept `expire_days` days.
    AlbLogs { prefix: String, expire_days: i32 },
}

/// Where the load balancer writes its access logs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessLogs {
    pub bucket: String,
    pub prefix: String,
}

/// The access-log prefix in the logs bucket.
pub const ALB_LOG_PREFIX: &str = "alb";

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

/// Every tier of the architecture, whether or not `build` calls it yet (the modelled
/// benchmark schedules the full graph; `build` will call the same four functions).
pub fn build_all(input: &SpecInput<'_>) -> Vec<NodeSpec> {
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

/// Storage and data. The RDS chain is the critical path: vpc -> db subnets -> subnet group
/// -> instance -> endpoint (the long wait); nothing outside it waits for `db-endpoint`
/// except the final dashboard check.
fn data(b: &mut Builder, input: &SpecInput<'_>) {
    let cfg = input.config;
    let dep = &cfg.deployment;
    b.add(
        "bucket",
        Kind::Bucket,
        vec![],
        Props::Bucket {
            versioning: cfg.storage.bucket_versioning,
            purpose: BucketPurpose::Resources,
        },
    );
    b.add(
        "efs",
        Kind::FileSystem,
        vec![],
        Props::FileSystem {
            require_tls: cfg.storage.efs_require_tls,
        },
    );
    for zone in ZONES {
        let subnet = subnet_key("app", zone);
        b.add(
            format!("efs-mt-{zone}"),
            Kind::MountTarget,
            vec!["efs".into(), subnet.clone(), "sg-efs".into()],
            Props::MountTarget {
                file_system: "efs".into(),
                subnet,
                security_group: "sg-efs".into(),
            },
        );
    }
    b.add(
        "efs-ap",
        Kind::AccessPoint,
        vec!["efs".into()],
        Props::AccessPoint {
            file_system: "efs".into(),
            uid: cfg.storage.efs_uid,
            gid: cfg.storage.efs_gid,
            path: "/var/panintelligence".into(),
        },
    );
    let db_subnets = keys("subnet-db");
    b.add(
        "db-subnet-group",
        Kind::DbSubnetGroup,
        db_subnets.clone(),
        Props::DbSubnetGroup { subnets: db_subnets },
    );
    let param = |n: &str, v: &str, m: &str| (n.to_string(), v.to_string(), m.to_string());
    let mut parameters = vec![
        param("sql_mode", "NO_AUTO_VALUE_ON_ZERO", "immediate"),
        param("lower_case_table_names", "1", "pending-reboot"),
        param("log_bin_trust_function_creators", "1", "immediate"),
    ];
    if cfg.database.require_tls {
        // Dynamic: applies to new connections at once, no reboot.
        parameters.push(param("require_secure_transport", "1", "immediate"));
    }
    b.add(
        "db-params",
        Kind::DbParameterGroup,
        vec![],
        Props::DbParameterGroup {
            family: cfg.db_family(),
            parameters,
        },
    );
    let d = &cfg.database;
    let mut db_deps = vec!["db-subnet-group".to_string(), "db-params".into(), "sg-db".into()];
    let log_exports: Vec<String> = if d.export_error_log {
        vec!["error".into()]
    } else {
        vec![]
    };
    for log in &log_exports {
        // Created before the instance, so RDS writes into a group with our retention
        // instead of creating one that keeps everything forever.
        let key = format!("db-{log}-log-group");
        b.add(
            &key,
            Kind::LogGroup,
            vec![],
            Props::LogGroup {
                name: names::db_log_group(dep, log),
                retention_days: cfg.lambda.log_retention_days,
            },
        );
        db_deps.push(key);
    }
    b.add(
        "db",
        Kind::DbInstance,
        db_deps,
        Props::DbInstance {
            subnet_group: "db-subnet-group".into(),
            parameter_group: "db-params".into(),
            security_group: "sg-db".into(),
            db: DbSettings {
                identifier: names::db_identifier(dep),
                instance_class: d.instance_class.clone(),
                allocated_storage_gib: d.allocated_storage_gib,
                engine_version: d.engine_version.clone(),
                multi_az: d.multi_az,
                master_username: d.master_username.clone(),
                backup_retention_days: d.backup_retention_days,
                deletion_protection: d.deletion_protection,
                apply_immediately: d.apply_immediately,
                log_exports,
                standby_later: usable_early(cfg),
            },
        },
    );
    b.add(
        "db-endpoint",
        Kind::DbEndpoint,
        vec!["db".into()],
        Props::DbEndpoint {
            db: "db".into(),
            // Usable early: the endpoint is published once the Single-AZ instance is
            // available; the standby node verifies Multi-AZ.
            expect_multi_az: d.multi_az && !usable_early(cfg),
            rotation_days: d.rotation_days,
        },
    );
    if usable_early(cfg) {
        // After the endpoint: the conversion starts once the instance is `available` (a
        // modification while `creating` is refused), and the endpoint's wait for
        // `available` never sees the conversion's `modifying`.
        b.add(
            "db-standby",
            Kind::DbStandby,
            vec!["db".into(), "db-endpoint".into()],
            Props::DbStandby { db: "db".into() },
        );
    }
    if let Some(source) = licence_source(cfg) {
        b.add(
            "licence-secret",
            Kind::Secret,
            vec![],
            Props::Secret {
                name: names::licence_secret(dep),
                source,
            },
        );
    }
}

/// The folders users drop files into; the Lambda accepts exactly these.
pub const SIDELOAD_PREFIXES: [&str; 5] = ["images/", "themes/", "excel-data/", "svg/", "keys/"];

/// Side-loading: S3 -> Lambda (in the VPC, EFS access point at /mnt/efs) -> EFS.
fn sideload(b: &mut Builder, input: &SpecInput<'_>) {
    let cfg = input.config;
    let dep = &cfg.deployment;
    b.add(
        "lambda-role",
        Kind::IamRole,
        // The access point's ARN narrows the role's EFS mount permission to it.
        vec!["bucket".into(), "efs".into(), "efs-ap".into()],
        Props::IamRole {
            name: names::lambda_role(dep),
            service: "lambda.amazonaws.com".into(),
            managed_policies: vec!["service-role/AWSLambdaVPCAccessExecutionRole".into()],
            policy: RolePolicy::SideloadLambda,
        },
    );
    b.add(
        "lambda-log-group",
        Kind::LogGroup,
        vec![],
        Props::LogGroup {
            name: names::lambda_log_group(dep),
            retention_days: cfg.lambda.log_retention_days,
        },
    );
    let subnets = keys("subnet-app");
    b.add(
        "lambda",
        Kind::LambdaFunction,
        with(
            subnets.clone(),
            &[
                "lambda-role",
                "sg-lambda",
                "efs-ap",
                "efs-mt-a",
                "efs-mt-b",
                "lambda-log-group",
            ],
        ),
        Props::LambdaFunction {
            name: names::lambda_function(dep),
            runtime: cfg.lambda.runtime.clone(),
            role: "lambda-role".into(),
            subnets,
            security_group: "sg-lambda".into(),
            access_point: "efs-ap".into(),
            log_group: "lambda-log-group".into(),
        },
    );
    b.add(
        "lambda-permission",
        Kind::LambdaPermission,
        vec!["lambda".into(), "bucket".into()],
        Props::LambdaPermission {
            function: "lambda".into(),
            bucket: "bucket".into(),
        },
    );
    // S3 validates the destination when the notification is set: the permission first.
    b.add(
        "bucket-notification",
        Kind::BucketNotification,
        vec!["bucket".into(), "lambda".into(), "lambda-permission".into()],
        Props::BucketNotification {
            bucket: "bucket".into(),
            function: "lambda".into(),
            prefixes: SIDELOAD_PREFIXES.iter().map(|p| p.to_string()).collect(),
        },
    );
}

/// Compute and edge. Instances may launch while RDS is still being created: a lifecycle
/// hook holds them until their user data has read the endpoint parameter.
fn compute(b: &mut Builder, input: &SpecInput<'_>) {
    let cfg = input.config;
    let dep = &cfg.deployment;
    let licence = licence_source(cfg).map(|_| "licence-secret".to_string());
    let mut role_deps = vec!["db".to_string()];
    role_deps.extend(licence.clone());
    b.add(
        "ec2-role",
        Kind::IamRole,
        role_deps,
        Props::IamRole {
            name: names::ec2_role(dep),
            service: "ec2.amazonaws.com".into(),
            managed_policies: vec!["AmazonSSMManagedInstanceCore".into()],
            policy: RolePolicy::DashboardEc2,
        },
    );
    b.add(
        "instance-profile",
        Kind::InstanceProfile,
        vec!["ec2-role".into()],
        Props::InstanceProfile {
            name: names::instance_profile(dep),
            role: "ec2-role".into(),
        },
    );
    let mut lt_deps = vec![
        "instance-profile".to_string(),
        "sg-app".into(),
        "efs".into(),
        "db".into(),
    ];
    lt_deps.extend(licence.clone());
    b.add(
        "launch-template",
        Kind::LaunchTemplate,
        lt_deps,
        Props::LaunchTemplate {
            name: names::launch_template(dep),
            profile: "instance-profile".into(),
            security_groups: vec!["sg-app".into()],
            file_system: "efs".into(),
            db: "db".into(),
            licence,
            instance: InstanceSettings::from_config(cfg, input.region),
        },
    );
    b.add(
        "tg",
        Kind::TargetGroup,
        vec!["vpc".into()],
        Props::TargetGroup {
            name: names::target_group(dep),
            vpc: "vpc".into(),
            port: DASHBOARD_PORT,
            health_check: cfg.health_check.clone(),
        },
    );
    let public = keys("subnet-public");
    let mut alb_deps = with(public.clone(), &["sg-alb", "igw", "route-public-default"]);
    let access_logs = cfg.logging.alb_access_logs.then(|| AccessLogs {
        bucket: "logs-bucket".into(),
        prefix: ALB_LOG_PREFIX.into(),
    });
    if access_logs.is_some() {
        // ELB checks that it may write there when logging is switched on: policy first.
        b.add(
            "logs-bucket",
            Kind::Bucket,
            vec![],
            Props::Bucket {
                versioning: false,
                purpose: BucketPurpose::AlbLogs {
                    prefix: ALB_LOG_PREFIX.into(),
                    expire_days: cfg.logging.alb_access_log_days,
                },
            },
        );
        alb_deps.push("logs-bucket".into());
    }
    // An internet-facing ALB stays `provisioning` until the VPC has a working IGW route.
    b.add(
        "alb",
        Kind::LoadBalancer,
        alb_deps,
        Props::LoadBalancer {
            name: names::alb(dep),
            subnets: public,
            security_group: "sg-alb".into(),
            access_logs,
        },
    );
    let forward = |cert: Option<String>| ListenerAction::Forward {
        target_group: "tg".into(),
        tls_policy: cert.as_ref().map(|_| cfg.tls_policy.clone()),
        certificate_arn: cert,
    };
    let mut listeners = vec!["listener-http".to_string()];
    match &cfg.certificate_arn {
        Some(cert) => {
            // HTTPS exists before port 80 redirects to it (a certificate added on day 2
            // never leaves port 80 redirecting to nothing).
            b.add(
                "listener-http",
                Kind::Listener,
                vec!["alb".into(), "listener-https".into()],
                Props::Listener {
                    load_balancer: "alb".into(),
                    port: 80,
                    action: ListenerAction::RedirectToHttps,
                },
            );
            b.add(
                "listener-https",
                Kind::Listener,
                vec!["alb".into(), "tg".into()],
                Props::Listener {
                    load_balancer: "alb".into(),
                    port: 443,
                    action: forward(Some(cert.clone())),
                },
            );
            listeners.push("listener-https".into());
        }
        None => b.add(
            "listener-http",
            Kind::Listener,
            vec!["alb".into(), "tg".into()],
            Props::Listener {
                load_balancer: "alb".into(),
                port: 80,
                action: forward(None),
            },
        ),
    }
    let app = keys("subnet-app");
    let mut asg_deps = with(app.clone(), &["launch-template", "tg", "efs-mt-a", "efs-mt-b"]);
    asg_deps.extend(
        interface_endpoint_services(cfg.network.interface_endpoints)
            .iter()
            .map(|s| format!("vpce-{s}")),
    );
    asg_deps.extend(
        private_route_tables(cfg.network.nat_per_az)
            .iter()
            .map(|(t, _)| format!("route-{}-default", t.trim_start_matches("rt-"))),
    );
    b.add(
        "asg",
        Kind::AutoScalingGroup,
        asg_deps,
        Props::AutoScalingGroup {
            name: names::asg(dep),
            launch_template: "launch-template".into(),
            subnets: app,
            target_group: "tg".into(),
            min: cfg.scaling.min,
            max: cfg.scaling.max,
            desired: cfg.scaling.desired,
            health_check_grace_seconds: cfg.scaling.health_check_grace_seconds,
            hook_name: names::lifecycle_hook(dep),
            heartbeat_seconds: cfg.scaling.lifecycle_heartbeat_seconds,
        },
    );
    b.add(
        "lifecycle-hook",
        Kind::LifecycleHook,
        vec!["asg".into()],
        Props::LifecycleHook {
            asg: "asg".into(),
            name: names::lifecycle_hook(dep),
            heartbeat_seconds: cfg.scaling.lifecycle_heartbeat_seconds,
        },
    );
    for (policy, alarm, adjustment, high) in [
        ("scale-out-policy", "cpu-high-alarm", 1, true),
        ("scale-in-policy", "cpu-low-alarm", -1, false),
    ] {
        b.add(
            policy,
            Kind::ScalingPolicy,
            vec!["asg".into()],
            Props::ScalingPolicy {
                asg: "asg".into(),
                adjustment,
                cooldown_seconds: SCALING_COOLDOWN_SECONDS,
            },
        );
        // High: above the scale-out percent for 1 x 5 min; low: below the scale-in percent
        // for 2 x 5 min (ALARM_PERIOD_SECONDS says why 5 minutes).
        let (threshold, evaluation_periods) = match high {
            true => (cfg.scaling.scale_out_cpu_percent, 1),
            false => (cfg.scaling.scale_in_cpu_percent, 2),
        };
        b.add(
            alarm,
            Kind::Alarm,
            vec!["asg".into(), policy.into()],
            Props::Alarm {
                name: names::alarm(dep, alarm),
                asg: "asg".into(),
                policy: policy.into(),
                high,
                threshold,
                period_seconds: ALARM_PERIOD_SECONDS,
                evaluation_periods,
            },
        );
    }
    let mut check_deps = with(listeners, &["asg", "tg", "alb", "db-endpoint", "lifecycle-hook"]);
    if let (Some(zone), Some(domain)) = (&cfg.hosted_zone_id, &cfg.domain_name) {
        b.add(
            "dns-record",
            Kind::DnsRecord,
            vec!["alb".into()],
            Props::DnsRecord {
                zone_id: zone.clone(),
                domain: domain.clone(),
                load_balancer: "alb".into(),
            },
        );
        check_deps.push("dns-record".into());
    }
    b.add(
        "dashboard",
        Kind::DashboardCheck,
        check_deps,
        Props::DashboardCheck {
            target_group: "tg".into(),
            load_balancer: "alb".into(),
            https: cfg.certificate_arn.is_some(),
            domain: cfg.domain_name.clone().filter(|_| cfg.hosted_zone_id.is_some()),
        },
    );
}

/// The dashboard's port on the instances.
pub const DASHBOARD_PORT: i32 = 8224;

/// Cooldown of the simple scaling policies.
pub const SCALING_COOLDOWN_SECONDS: i32 = 300;

/// The scaling alarms' period. The instances have EC2's basic monitoring, which publishes
/// CPUUtilization every 5 minutes: a shorter period has no data point in most periods, so
/// the alarm sits in INSUFFICIENT_DATA and scale-in (2 periods) almost never fires. Detailed
/// monitoring (1-minute data) would cost about $2.10 a month per instance (7 metrics at
/// $0.30) and a new launch template version (replacing the instances), for alarms that react
/// a few minutes sooner than the policies' 300 s cooldown lets the group act again anyway.
pub const ALARM_PERIOD_SECONDS: i32 = 300;

fn network(b: &mut Builder, input: &SpecInput<'_>) {
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
        ("nacl-app", "app", rules::app_acl_rules(&net.vpc_cidr, &public_cidrs)),
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
    for sg in rules::security_groups() {
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

fn interface_endpoint_services(on: bool) -> &'static [&'static str] {
    if on { &INTERFACE_ENDPOINT_SERVICES } else { &[] }
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
