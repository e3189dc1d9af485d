//! What a resource kind is, in one place: `Kind` (the variants, whose serde names the state
//! file records) and `Kind::info`, one arm per kind and no wildcard, so a new kind does not
//! compile until every fact about it is decided. The old readers (`Kind::service`,
//! `phase::phase_of`, `latency::create_timing`, `bench_model::vendor_stack`, ...) read this
//! table; where a reader also looks at a node's props (`bench_model::tier`,
//! `latency::create_transition` / `delete_transition`), the table gives the kind's default and
//! the reader keeps the refinement.

use serde::{Deserialize, Serialize};

use super::bench_model::{Tier, VendorStack};
use super::latency::Transition;

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
    FlowLog,
    // Storage and data.
    Bucket,
    FileSystem,
    MountTarget,
    AccessPoint,
    DbSubnetGroup,
    DbParameterGroup,
    DbInstance,
    DbEndpoint,
    DbStandby,
    Secret,
    // Side-loading.
    IamRole,
    LogGroup,
    LambdaFunction,
    LambdaPermission,
    BucketNotification,
    // Compute and edge.
    InstanceProfile,
    LaunchTemplate,
    TargetGroup,
    LoadBalancer,
    Listener,
    AutoScalingGroup,
    LifecycleHook,
    ScalingPolicy,
    Alarm,
    DnsRecord,
    DashboardCheck,
}

/// Every fact pi-deploy keeps about one kind.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KindInfo {
    /// `Kind::as_str`: the name the terminal shows (not the state file's serde name).
    pub name: &'static str,
    /// `Kind::service`: the AWS service whose API creates the kind.
    pub service: &'static str,
    /// `Kind::id_prefix`: how its AWS ids begin, when they have a fixed shape.
    pub id_prefix: Option<&'static str>,
    /// `Kind::container`: the kind it exists only inside.
    pub container: Option<Kind>,
    /// `Kind::deleted_with_container`: AWS deletes it with its container.
    pub deleted_with_container: bool,
    /// `Kind::is_tagged`: it has an AWS object with tags of its own.
    pub tagged: bool,
    /// `phase::phase_of`: the phase `up` reports it in.
    pub phase: &'static str,
    /// `bench_model::vendor_stack`: the vendor's nested stack that holds its equivalent.
    pub vendor_stack: VendorStack,
    /// `bench_model::tier`: its tier in the benchmark's charts (a node's props may refine it).
    pub tier: Tier,
    /// The latency model's entries that make up its create (create call + converge + wait).
    pub create: &'static [&'static str],
    /// The latency model's entries that make up its delete.
    pub delete: &'static [&'static str],
    /// The intermediate state AWS shows after its create, if any (a node's props may decide).
    pub create_transition: Option<Transition>,
    /// The intermediate state AWS shows after its delete, if any (a node's props may decide).
    pub delete_transition: Option<Transition>,
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
        Kind::FlowLog,
        Kind::Bucket,
        Kind::FileSystem,
        Kind::MountTarget,
        Kind::AccessPoint,
        Kind::DbSubnetGroup,
        Kind::DbParameterGroup,
        Kind::DbInstance,
        Kind::DbEndpoint,
        Kind::DbStandby,
        Kind::Secret,
        Kind::IamRole,
        Kind::LogGroup,
        Kind::LambdaFunction,
        Kind::LambdaPermission,
        Kind::BucketNotification,
        Kind::InstanceProfile,
        Kind::LaunchTemplate,
        Kind::TargetGroup,
        Kind::LoadBalancer,
        Kind::Listener,
        Kind::AutoScalingGroup,
        Kind::LifecycleHook,
        Kind::ScalingPolicy,
        Kind::Alarm,
        Kind::DnsRecord,
        Kind::DashboardCheck,
    ];

    /// The one table: everything pi-deploy keeps about a kind. One arm per kind, no wildcard.
    pub const fn info(self) -> &'static KindInfo {
        match self {
            Kind::Vpc => &KindInfo {
                name: "vpc",
                service: "ec2",
                id_prefix: Some("vpc-"),
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "network",
                vendor_stack: VendorStack::Network,
                tier: Tier::Network,
                create: &["create.vpc", "create.vpc_dns_attributes"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::InternetGateway => &KindInfo {
                name: "internet-gateway",
                service: "ec2",
                id_prefix: Some("igw-"),
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "network",
                vendor_stack: VendorStack::Network,
                tier: Tier::Network,
                create: &["create.internet_gateway_and_attach"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::Subnet => &KindInfo {
                name: "subnet",
                service: "ec2",
                id_prefix: Some("subnet-"),
                container: Some(Kind::Vpc),
                deleted_with_container: false,
                tagged: true,
                phase: "network",
                vendor_stack: VendorStack::Network,
                tier: Tier::Network,
                create: &["create.subnet"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::ElasticIp => &KindInfo {
                name: "elastic-ip",
                service: "ec2",
                id_prefix: Some("eipalloc-"),
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "network",
                vendor_stack: VendorStack::Network,
                tier: Tier::Network,
                create: &["create.eip"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::NatGateway => &KindInfo {
                name: "nat-gateway",
                service: "ec2",
                id_prefix: Some("nat-"),
                container: Some(Kind::Subnet),
                deleted_with_container: false,
                tagged: true,
                phase: "network",
                vendor_stack: VendorStack::Network,
                tier: Tier::Network,
                create: &["create.nat_gateway"],
                delete: &["delete.nat_gateway"],
                create_transition: Some(Transition::NatCreate),
                delete_transition: Some(Transition::NatDelete),
            },
            Kind::RouteTable => &KindInfo {
                name: "route-table",
                service: "ec2",
                id_prefix: Some("rtb-"),
                container: Some(Kind::Vpc),
                deleted_with_container: false,
                tagged: true,
                phase: "network",
                vendor_stack: VendorStack::Network,
                tier: Tier::Network,
                create: &["create.route_table", "create.route_table_association"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::Route => &KindInfo {
                name: "route",
                service: "ec2",
                id_prefix: Some("rtb-"),
                container: Some(Kind::RouteTable),
                deleted_with_container: false,
                tagged: false,
                phase: "network",
                vendor_stack: VendorStack::Network,
                tier: Tier::Network,
                create: &["create.route"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::NetworkAcl => &KindInfo {
                name: "network-acl",
                service: "ec2",
                id_prefix: Some("acl-"),
                container: Some(Kind::Vpc),
                deleted_with_container: false,
                tagged: true,
                phase: "network",
                vendor_stack: VendorStack::Network,
                tier: Tier::Network,
                create: &["create.network_acl_with_entries"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::SecurityGroup => &KindInfo {
                name: "security-group",
                service: "ec2",
                id_prefix: Some("sg-"),
                container: Some(Kind::Vpc),
                deleted_with_container: false,
                tagged: true,
                phase: "network",
                vendor_stack: VendorStack::Network,
                tier: Tier::Network,
                create: &["create.security_group_with_rules"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::VpcEndpoint => &KindInfo {
                name: "vpc-endpoint",
                service: "ec2",
                id_prefix: Some("vpce-"),
                container: Some(Kind::Vpc),
                deleted_with_container: false,
                tagged: true,
                phase: "network",
                vendor_stack: VendorStack::Network,
                tier: Tier::Network,
                create: &["create.vpc_endpoint_interface"],
                delete: &["delete.vpc_endpoint_interface"],
                // Interface or gateway: the props decide (`latency::create_transition`).
                create_transition: None,
                // Interface or gateway: the props decide (`latency::delete_transition`).
                delete_transition: None,
            },
            Kind::FlowLog => &KindInfo {
                name: "vpc-flow-log",
                service: "ec2",
                id_prefix: Some("fl-"),
                // AWS removes a deleted VPC's flow logs only "eventually": deleted first.
                container: Some(Kind::Vpc),
                deleted_with_container: false,
                tagged: true,
                phase: "network",
                vendor_stack: VendorStack::Network,
                tier: Tier::Network,
                // One synchronous call, like a route.
                create: &["create.route"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::Bucket => &KindInfo {
                name: "s3-bucket",
                service: "s3",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "data",
                vendor_stack: VendorStack::Lambda,
                tier: Tier::Data,
                create: &["create.s3_bucket_with_configs"],
                delete: &["delete.s3_bucket_versioned"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::FileSystem => &KindInfo {
                name: "efs-file-system",
                service: "efs",
                id_prefix: Some("fs-"),
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "data",
                vendor_stack: VendorStack::Efs,
                tier: Tier::Data,
                create: &["create.efs_file_system"],
                delete: &["delete.efs_file_system"],
                create_transition: Some(Transition::FileSystemCreate),
                delete_transition: Some(Transition::FileSystemDelete),
            },
            Kind::MountTarget => &KindInfo {
                name: "efs-mount-target",
                service: "efs",
                id_prefix: Some("fsmt-"),
                container: Some(Kind::FileSystem),
                deleted_with_container: false,
                tagged: true,
                phase: "data",
                vendor_stack: VendorStack::Efs,
                tier: Tier::Data,
                create: &["create.efs_mount_target"],
                delete: &["delete.efs_mount_target"],
                create_transition: Some(Transition::MountTargetCreate),
                delete_transition: Some(Transition::MountTargetDelete),
            },
            Kind::AccessPoint => &KindInfo {
                name: "efs-access-point",
                service: "efs",
                id_prefix: Some("fsap-"),
                container: Some(Kind::FileSystem),
                deleted_with_container: false,
                tagged: true,
                phase: "data",
                vendor_stack: VendorStack::Efs,
                tier: Tier::Data,
                create: &["create.efs_access_point"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::DbSubnetGroup => &KindInfo {
                name: "db-subnet-group",
                service: "rds",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "data",
                vendor_stack: VendorStack::Rds,
                tier: Tier::Data,
                create: &["create.db_subnet_group"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::DbParameterGroup => &KindInfo {
                name: "db-parameter-group",
                service: "rds",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "data",
                vendor_stack: VendorStack::Rds,
                tier: Tier::Data,
                create: &["create.db_parameter_group"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::DbInstance => &KindInfo {
                name: "db-instance",
                service: "rds",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "data",
                vendor_stack: VendorStack::Rds,
                tier: Tier::Data,
                // The create call returns at once; the long wait is the endpoint node's.
                create: &["create.secretsmanager_secret"],
                delete: &["delete.rds_multi_az_with_final_snapshot"],
                create_transition: None,
                // `final_snapshot` as `destroy` is asked (`latency::delete_transition`).
                delete_transition: Some(Transition::DbDelete { final_snapshot: true }),
            },
            Kind::DbEndpoint => &KindInfo {
                name: "db-endpoint",
                service: "ssm",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: false,
                phase: "data",
                vendor_stack: VendorStack::Rds,
                tier: Tier::Data,
                create: &["create.rds_mariadb_multi_az"],
                delete: &["delete.ec2_primitives"],
                // Multi-AZ or not: the props decide (`latency::create_transition`).
                create_transition: None,
                delete_transition: None,
            },
            Kind::DbStandby => &KindInfo {
                name: "db-standby",
                service: "rds",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: false,
                phase: "data",
                vendor_stack: VendorStack::Rds,
                tier: Tier::Data,
                // Usable early: the in-place conversion of the Single-AZ instance.
                create: &["modify.rds_single_az_to_multi_az"],
                delete: &["delete.ec2_primitives"],
                create_transition: Some(Transition::DbToMultiAz),
                delete_transition: None,
            },
            Kind::Secret => &KindInfo {
                name: "secret",
                service: "secretsmanager",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "data",
                vendor_stack: VendorStack::Config,
                tier: Tier::Data,
                create: &["create.secretsmanager_secret"],
                delete: &["delete.secret_force"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::IamRole => &KindInfo {
                name: "iam-role",
                service: "iam",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: true,
                // IAM roles count with side-loading: the Lambda's and the instances' roles are
                // built together, early.
                phase: "side-loading",
                vendor_stack: VendorStack::Iam,
                // The instances' role; one the Lambda assumes is side-loading's
                // (`bench_model::tier` reads the props).
                tier: Tier::Compute,
                create: &["create.iam_role"],
                delete: &["delete.iam_role_with_policies"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::LogGroup => &KindInfo {
                name: "log-group",
                service: "logs",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "side-loading",
                vendor_stack: VendorStack::Lambda,
                tier: Tier::Sideload,
                create: &["create.cloudwatch_alarm_and_scaling_policy"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::LambdaFunction => &KindInfo {
                name: "lambda-function",
                service: "lambda",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "side-loading",
                vendor_stack: VendorStack::Lambda,
                tier: Tier::Sideload,
                create: &["create.iam_propagation", "create.lambda_function_vpc_pending_to_active"],
                // Deleting the detached Hyperplane ENIs ourselves: minutes, not AWS's 20-45.
                delete: &["delete.lambda_eni_detach"],
                create_transition: Some(Transition::LambdaCreate),
                delete_transition: Some(Transition::LambdaDelete),
            },
            Kind::LambdaPermission => &KindInfo {
                name: "lambda-permission",
                service: "lambda",
                id_prefix: None,
                container: Some(Kind::LambdaFunction),
                deleted_with_container: false,
                tagged: false,
                phase: "side-loading",
                vendor_stack: VendorStack::Lambda,
                tier: Tier::Sideload,
                create: &["create.lambda_permission_and_bucket_notification"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::BucketNotification => &KindInfo {
                name: "bucket-notification",
                service: "s3",
                id_prefix: None,
                container: Some(Kind::Bucket),
                deleted_with_container: false,
                tagged: false,
                phase: "side-loading",
                vendor_stack: VendorStack::Lambda,
                tier: Tier::Sideload,
                create: &["create.lambda_permission_and_bucket_notification"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::InstanceProfile => &KindInfo {
                name: "instance-profile",
                service: "iam",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "compute",
                vendor_stack: VendorStack::Iam,
                tier: Tier::Compute,
                create: &["create.iam_instance_profile", "create.iam_propagation"],
                delete: &["delete.iam_role_with_policies"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::LaunchTemplate => &KindInfo {
                name: "launch-template",
                service: "ec2",
                id_prefix: Some("lt-"),
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "compute",
                vendor_stack: VendorStack::Ec2,
                tier: Tier::Compute,
                create: &["create.launch_template"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::TargetGroup => &KindInfo {
                name: "target-group",
                service: "elasticloadbalancing",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "compute",
                vendor_stack: VendorStack::Ec2,
                tier: Tier::Compute,
                create: &["create.target_group"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::LoadBalancer => &KindInfo {
                name: "load-balancer",
                service: "elasticloadbalancing",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "compute",
                vendor_stack: VendorStack::Ec2,
                tier: Tier::Compute,
                create: &["create.alb"],
                delete: &["delete.alb"],
                create_transition: Some(Transition::LoadBalancerCreate),
                delete_transition: Some(Transition::LoadBalancerDelete),
            },
            Kind::Listener => &KindInfo {
                name: "listener",
                service: "elasticloadbalancing",
                id_prefix: None,
                container: Some(Kind::LoadBalancer),
                deleted_with_container: false,
                tagged: true,
                phase: "compute",
                vendor_stack: VendorStack::Ec2,
                tier: Tier::Compute,
                create: &["create.listener"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::AutoScalingGroup => &KindInfo {
                name: "auto-scaling-group",
                service: "autoscaling",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "compute",
                vendor_stack: VendorStack::Ec2,
                tier: Tier::Compute,
                // The group is created at once; instances boot while RDS is still being built.
                create: &["create.cloudwatch_alarm_and_scaling_policy"],
                delete: &["delete.asg_with_instances"],
                create_transition: None,
                delete_transition: Some(Transition::GroupDelete),
            },
            Kind::LifecycleHook => &KindInfo {
                name: "lifecycle-hook",
                service: "autoscaling",
                id_prefix: None,
                container: Some(Kind::AutoScalingGroup),
                deleted_with_container: true,
                tagged: false,
                phase: "compute",
                vendor_stack: VendorStack::Ec2,
                tier: Tier::Compute,
                create: &["create.cloudwatch_alarm_and_scaling_policy"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::ScalingPolicy => &KindInfo {
                name: "scaling-policy",
                service: "autoscaling",
                id_prefix: None,
                container: Some(Kind::AutoScalingGroup),
                deleted_with_container: true,
                tagged: false,
                phase: "compute",
                vendor_stack: VendorStack::Ec2,
                tier: Tier::Compute,
                create: &["create.cloudwatch_alarm_and_scaling_policy"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::Alarm => &KindInfo {
                name: "alarm",
                service: "cloudwatch",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "compute",
                vendor_stack: VendorStack::Ec2,
                tier: Tier::Compute,
                create: &["create.cloudwatch_alarm_and_scaling_policy"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::DnsRecord => &KindInfo {
                name: "dns-record",
                service: "route53",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: true,
                phase: "compute",
                vendor_stack: VendorStack::Ec2,
                tier: Tier::Compute,
                create: &["create.route53_change_insync"],
                delete: &["delete.ec2_primitives"],
                create_transition: None,
                delete_transition: None,
            },
            Kind::DashboardCheck => &KindInfo {
                name: "dashboard-check",
                service: "elasticloadbalancing",
                id_prefix: None,
                container: None,
                deleted_with_container: false,
                tagged: false,
                phase: "dashboard healthy",
                vendor_stack: VendorStack::Ec2,
                tier: Tier::Compute,
                create: &["create.target_healthy_after_app_ready"],
                delete: &["delete.ec2_primitives"],
                create_transition: Some(Transition::TargetHealthy),
                delete_transition: None,
            },
        }
    }

    /// The name the terminal shows (`plan`, `status`, progress lines). The state file records
    /// the serde name, which differs for the S3 bucket and the EFS kinds.
    pub fn as_str(self) -> &'static str {
        self.info().name
    }

    /// The kind this one exists only inside (a subnet inside its VPC, a listener inside its
    /// load balancer...). When `up` has just created the container, nothing can be inside it
    /// yet, so the lookup before creating is skipped: one read saved per such resource. A
    /// match found outside the container would be wrong to adopt anyway.
    pub fn container(self) -> Option<Kind> {
        self.info().container
    }

    /// Whether AWS deletes this kind with its `container`, so a destroy need not delete it
    /// first: DeleteAutoScalingGroup "deletes the policies" of the group (and its lifecycle
    /// hooks, which exist only on it). The child's own delete still runs, and finds nothing
    /// left to do once its group is deleting or gone.
    pub fn deleted_with_container(self) -> bool {
        self.info().deleted_with_container
    }

    /// How AWS ids of this kind begin, for kinds whose id has a fixed shape; a recorded id
    /// of another shape was edited or damaged (see `State::parse`).
    pub fn id_prefix(self) -> Option<&'static str> {
        self.info().id_prefix
    }

    /// The AWS service whose API creates this kind (for per-service concurrency caps).
    pub fn service(self) -> &'static str {
        self.info().service
    }

    /// Kinds with no AWS object or tags of their own (found by their parent, not by tag).
    pub fn is_tagged(self) -> bool {
        self.info().tagged
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Kind;
    use crate::core::spec::{NodeSpec, Props};
    use crate::core::{bench_model, latency, phase};

    /// One line per kind: every value the kind's tables give, as they were before the tables
    /// became one (`KIND_TABLE` pins them).
    fn table() -> String {
        let mut out = String::new();
        for &k in Kind::ALL {
            let node = NodeSpec {
                key: k.as_str().into(),
                kind: k,
                deps: vec![],
                props: Props::Recorded,
            };
            out.push_str(&format!(
                "{} serde={} service={} id_prefix={:?} container={:?} deleted_with_container={} tagged={} \
                 phase={} vendor={:?} tier={:?} create={:?} delete={:?} create_transition={:?} \
                 delete_transition={:?}/{:?}\n",
                k.as_str(),
                serde_json::to_string(&k).unwrap(),
                k.service(),
                k.id_prefix(),
                k.container(),
                k.deleted_with_container(),
                k.is_tagged(),
                phase::phase_of(k),
                bench_model::vendor_stack(k),
                bench_model::tier(&node),
                latency::create_entries(k),
                latency::delete_entries(k),
                latency::create_transition(&node),
                latency::delete_transition(&node, false),
                latency::delete_transition(&node, true),
            ));
        }
        out
    }

    /// The props-dependent refinements, node by node of the full architecture.
    fn nodes() -> String {
        let cfg = crate::core::config::Config {
            ami: Some("ami-0123456789abcdef0".into()),
            ..Default::default()
        };
        let nodes = crate::core::spec::build(&crate::core::spec::SpecInput {
            config: &cfg,
            region: "eu-west-1",
            azs: ["eu-west-1a".into(), "eu-west-1b".into()],
        });
        let mut out = String::new();
        for n in &nodes {
            out.push_str(&format!(
                "{} tier={:?} create_transition={:?} delete_transition={:?}/{:?}\n",
                n.key,
                bench_model::tier(n),
                latency::create_transition(n),
                latency::delete_transition(n, false),
                latency::delete_transition(n, true),
            ));
        }
        out
    }

    /// What every kind's tables gave before they became one table, for every kind and for
    /// every node of the full architecture (the props-dependent refinements). A change here
    /// is a change of behaviour: make it on purpose, and update `kind_pins.txt` with it.
    #[test]
    fn every_kind_keeps_what_its_tables_gave() {
        let got = format!("{}\n{}", table(), nodes());
        let want = include_str!("kind_pins.txt");
        for (i, (g, w)) in got.lines().zip(want.lines()).enumerate() {
            assert_eq!(g, w, "line {}", i + 1);
        }
        assert_eq!(got, want);
    }

    /// `Kind::ALL` lists every variant once, in declaration order. A new variant fails to
    /// compile here (the match has no wildcard) until it is listed, and then fails the
    /// assertions until `Kind::ALL` has it.
    #[test]
    fn all_lists_every_variant() {
        macro_rules! every {
            ($($v:ident),* $(,)?) => {{
                let exhaustive = |k: Kind| match k {
                    $(Kind::$v => (),)*
                };
                let listed = [$(Kind::$v),*];
                listed.iter().for_each(|&k| exhaustive(k));
                listed
            }};
        }
        let listed = every!(
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
            FlowLog,
            Bucket,
            FileSystem,
            MountTarget,
            AccessPoint,
            DbSubnetGroup,
            DbParameterGroup,
            DbInstance,
            DbEndpoint,
            DbStandby,
            Secret,
            IamRole,
            LogGroup,
            LambdaFunction,
            LambdaPermission,
            BucketNotification,
            InstanceProfile,
            LaunchTemplate,
            TargetGroup,
            LoadBalancer,
            Listener,
            AutoScalingGroup,
            LifecycleHook,
            ScalingPolicy,
            Alarm,
            DnsRecord,
            DashboardCheck,
        );
        for k in listed {
            assert!(Kind::ALL.contains(&k), "Kind::ALL lacks {k:?}");
        }
        assert_eq!(Kind::ALL.len(), listed.len());
        assert!(
            Kind::ALL.windows(2).all(|w| w[0] < w[1]),
            "Kind::ALL in declaration order, once each"
        );
    }
}
