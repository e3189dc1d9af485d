//! The emulator's latency mode: `PI_DEPLOY_LATENCY=<factor>` (e.g. `0.01`, or `1/100`).
//!
//! moto answers every create and delete in its final state at once. In this mode each create
//! and delete of a kind that has intermediate states on AWS shows them, to every read of this
//! process, for the latency model's median of that transition multiplied by the factor
//! (`core::latency::Transition`: RDS Multi-AZ's 960 s is 9.6 s at 1/100):
//!
//! - NAT gateway `pending` / `deleting`; VPC endpoint `pending` / `deleting`; EFS file
//!   system and mount targets `creating` / `deleting`; DB instance `creating` (no endpoint)
//!   / `deleting`; a DB instance converted to Multi-AZ (ModifyDBInstance MultiAZ, at once)
//!   `modifying`, still Single-AZ, with MultiAZ pending; load balancer `provisioning`;
//!   Lambda function `Pending`;
//! - an Auto Scaling group's instances `Pending` until in service, its targets `initial`
//!   until the dashboard would answer (in service, booted, and the database endpoint
//!   published, which the instances' user data waits for) plus one health check; a deleted
//!   group `Delete in progress` with its instances `shutting-down`;
//! - a deleted Lambda function's network interfaces (one per subnet, made up, as moto has
//!   none) `in-use` until detached, then `available` until deleted;
//!
//! and the in-use refusals AWS makes meanwhile apply (the refused call is neutralized, so
//! moto carries out nothing): a subnet, security group or Elastic IP still held by a NAT
//! gateway, interface endpoint, mount target, DB instance, load balancer (its interfaces
//! linger after it is gone) or Lambda interface; the internet gateway's detach while the
//! VPC has public addresses of a NAT or load balancer; the DB subnet group while its
//! instance is deleting; the file system while a mount target is deleting.
//!
//! What the mode knows comes from the calls of this process only (their inputs and answers):
//! a `destroy` sees transitions it starts, and learns what a resource holds from the reads
//! it makes (its tag scan describes them). Objects that moto already forgot are answered
//! from the last description seen (`deleting`), or a minimal one.
//!
//! The same factor shrinks the waits' sleeps (`aws::wait::set_time_scale`), so a run in this
//! mode is a real run in fast motion, apart from the emulator's own call times.
//!
//! `PI_DEPLOY_LATENCY=fixed:<seconds>` (e.g. `fixed:2`) shows every transition for that
//! many seconds whatever the model says, and leaves the waits' sleeps at their real length:
//! an emulator that does not follow AWS's timings, as an outside harness may be. A run there
//! must not wait for the model's figures (`aws::wait`'s ramp).

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_autoscaling::types::AutoScalingGroup;
use aws_sdk_efs::types::{FileSystemDescription, LifeCycleState, MountTargetDescription};
use aws_sdk_rds::types::DbInstance;
use aws_smithy_runtime_api::client::interceptors::context::{Error as OperationError, Input, Output};

use super::Fault;
use super::world::Refusal;
use crate::core::latency::Transition;

/// How long the mode shows a transition: its model time times a factor, or a fixed time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pace {
    Scaled(f64),
    Fixed(Duration),
}

/// Parse `PI_DEPLOY_LATENCY`: `fixed:<seconds>` or a factor (see `parse`).
pub fn parse_pace(spec: &str) -> Result<Pace, String> {
    match spec.trim().strip_prefix("fixed:") {
        Some(secs) => match secs.trim().parse::<f64>() {
            Ok(s) if s > 0.0 && s <= 3600.0 => Ok(Pace::Fixed(Duration::from_secs_f64(s))),
            _ => Err(format!(
                "`{spec}`: fixed:<seconds> needs a number of seconds in (0, 3600]"
            )),
        },
        None => parse(spec).map(Pace::Scaled),
    }
}

/// Parse the factor: a number in (0, 1], or `1/N`.
pub fn parse(spec: &str) -> Result<f64, String> {
    let spec = spec.trim();
    let factor = match spec.split_once('/') {
        Some((a, b)) => {
            let (a, b) = (a.trim().parse::<f64>(), b.trim().parse::<f64>());
            match (a, b) {
                (Ok(a), Ok(b)) if b != 0.0 => a / b,
                _ => return Err(format!("`{spec}` is not a fraction")),
            }
        }
        None => spec.parse::<f64>().map_err(|_| format!("`{spec}` is not a number"))?,
    };
    if factor > 0.0 && factor <= 1.0 {
        Ok(factor)
    } else {
        Err(format!("`{spec}` is not a factor in (0, 1]"))
    }
}

/// What a call names, read from its typed input before it is serialized.
#[derive(Clone, Debug, Default)]
pub struct Named {
    pub operation: String,
    pub ids: Vec<String>,
    /// Describe filters, by name.
    pub filters: BTreeMap<String, Vec<String>>,
    /// DeleteDBInstance: whether a final snapshot is taken.
    pub final_snapshot: bool,
    /// ModifyDBInstance: MultiAZ=true applied at once (the conversion to Multi-AZ).
    pub to_multi_az: bool,
}

impl aws_smithy_types::config_bag::Storable for Named {
    type Storer = aws_smithy_types::config_bag::StoreReplace<Self>;
}

impl Named {
    fn id(&self) -> Option<&str> {
        self.ids.first().map(String::as_str)
    }
}

pub fn named(operation: &str, input: &Input) -> Named {
    use aws_sdk_ec2::operation as ec2;
    let mut n = Named {
        operation: operation.to_string(),
        ..Named::default()
    };
    let one = |v: &Option<String>| v.iter().cloned().collect::<Vec<_>>();
    macro_rules! input {
        ($t:ty) => {
            input.downcast_ref::<$t>()
        };
    }
    match operation {
        "DeleteSubnet" => {
            n.ids = input!(ec2::delete_subnet::DeleteSubnetInput)
                .map(|i| one(&i.subnet_id))
                .unwrap_or_default()
        }
        "DeleteSecurityGroup" => {
            n.ids = input!(ec2::delete_security_group::DeleteSecurityGroupInput)
                .map(|i| one(&i.group_id))
                .unwrap_or_default()
        }
        "ReleaseAddress" => {
            n.ids = input!(ec2::release_address::ReleaseAddressInput)
                .map(|i| one(&i.allocation_id))
                .unwrap_or_default()
        }
        // [gateway, VPC]
        "DetachInternetGateway" => {
            n.ids = input!(ec2::detach_internet_gateway::DetachInternetGatewayInput)
                .map(|i| [one(&i.internet_gateway_id), one(&i.vpc_id)].concat())
                .unwrap_or_default()
        }
        "DeleteVpcEndpoints" => {
            n.ids = input!(ec2::delete_vpc_endpoints::DeleteVpcEndpointsInput)
                .and_then(|i| i.vpc_endpoint_ids.clone())
                .unwrap_or_default()
        }
        "DeleteNetworkInterface" => {
            n.ids = input!(ec2::delete_network_interface::DeleteNetworkInterfaceInput)
                .map(|i| one(&i.network_interface_id))
                .unwrap_or_default()
        }
        "DescribeNetworkInterfaces" => {
            if let Some(i) = input!(ec2::describe_network_interfaces::DescribeNetworkInterfacesInput) {
                n.ids = i.network_interface_ids.clone().unwrap_or_default();
                for f in i.filters.iter().flatten() {
                    if let Some(name) = &f.name {
                        n.filters
                            .entry(name.clone())
                            .or_default()
                            .extend(f.values.iter().flatten().cloned());
                    }
                }
            }
        }
        "DescribeInstances" => {
            n.ids = input!(ec2::describe_instances::DescribeInstancesInput)
                .and_then(|i| i.instance_ids.clone())
                .unwrap_or_default()
        }
        "DeleteDBSubnetGroup" => {
            n.ids = input!(aws_sdk_rds::operation::delete_db_subnet_group::DeleteDbSubnetGroupInput)
                .map(|i| one(&i.db_subnet_group_name))
                .unwrap_or_default()
        }
        "DeleteDBInstance" => {
            if let Some(i) = input!(aws_sdk_rds::operation::delete_db_instance::DeleteDbInstanceInput) {
                n.ids = one(&i.db_instance_identifier);
                n.final_snapshot = i.skip_final_snapshot != Some(true);
            }
        }
        "ModifyDBInstance" => {
            if let Some(i) = input!(aws_sdk_rds::operation::modify_db_instance::ModifyDbInstanceInput) {
                n.ids = one(&i.db_instance_identifier);
                n.to_multi_az = i.multi_az == Some(true) && i.apply_immediately == Some(true);
            }
        }
        "DescribeDBInstances" => {
            n.ids = input!(aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesInput)
                .map(|i| one(&i.db_instance_identifier))
                .unwrap_or_default()
        }
        "DeleteFileSystem" => {
            n.ids = input!(aws_sdk_efs::operation::delete_file_system::DeleteFileSystemInput)
                .map(|i| one(&i.file_system_id))
                .unwrap_or_default()
        }
        "DescribeFileSystems" => {
            n.ids = input!(aws_sdk_efs::operation::describe_file_systems::DescribeFileSystemsInput)
                .map(|i| one(&i.file_system_id))
                .unwrap_or_default()
        }
        "DeleteMountTarget" => {
            n.ids = input!(aws_sdk_efs::operation::delete_mount_target::DeleteMountTargetInput)
                .map(|i| one(&i.mount_target_id))
                .unwrap_or_default()
        }
        // [mount target] or, by file system, filters["file-system"].
        "DescribeMountTargets" => {
            if let Some(i) = input!(aws_sdk_efs::operation::describe_mount_targets::DescribeMountTargetsInput) {
                n.ids = one(&i.mount_target_id);
                if let Some(fs) = &i.file_system_id {
                    n.filters.insert("file-system".into(), vec![fs.clone()]);
                }
            }
        }
        "DeleteLoadBalancer" => {
            n.ids = input!(aws_sdk_elasticloadbalancingv2::operation::delete_load_balancer::DeleteLoadBalancerInput)
                .map(|i| one(&i.load_balancer_arn))
                .unwrap_or_default()
        }
        "DescribeTargetHealth" => {
            n.ids = input!(aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthInput)
                .map(|i| one(&i.target_group_arn))
                .unwrap_or_default()
        }
        "DeleteFunction" => {
            n.ids = input!(aws_sdk_lambda::operation::delete_function::DeleteFunctionInput)
                .map(|i| one(&i.function_name))
                .unwrap_or_default()
        }
        // [group, target groups...]
        "CreateAutoScalingGroup" => {
            n.ids = input!(aws_sdk_autoscaling::operation::create_auto_scaling_group::CreateAutoScalingGroupInput)
                .map(|i| {
                    [
                        one(&i.auto_scaling_group_name),
                        i.target_group_arns.clone().unwrap_or_default(),
                    ]
                    .concat()
                })
                .unwrap_or_default()
        }
        "DeleteAutoScalingGroup" => {
            n.ids = input!(aws_sdk_autoscaling::operation::delete_auto_scaling_group::DeleteAutoScalingGroupInput)
                .map(|i| one(&i.auto_scaling_group_name))
                .unwrap_or_default()
        }
        "DescribeAutoScalingGroups" => {
            n.ids = input!(aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsInput)
                .and_then(|i| i.auto_scaling_group_names.clone())
                .unwrap_or_default()
        }
        "PutParameter" => {
            n.ids = input!(aws_sdk_ssm::operation::put_parameter::PutParameterInput)
                .map(|i| one(&i.name))
                .unwrap_or_default()
        }
        _ => {}
    }
    n
}

/// The operations this mode may refuse (each has its typed error in fault.rs).
pub fn refusable(operation: &str) -> bool {
    matches!(
        operation,
        "DeleteSubnet"
            | "DeleteSecurityGroup"
            | "ReleaseAddress"
            | "DetachInternetGateway"
            | "DeleteDBSubnetGroup"
            | "DeleteFileSystem"
    )
}

/// A resource in transition: until when, and whether it is going away.
#[derive(Clone, Copy, Debug)]
struct Showing {
    until: Instant,
    deleting: bool,
}

/// What a hold keeps from being deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    Subnet,
    Group,
    /// A VPC with public addresses mapped: its internet gateway cannot be detached.
    VpcAddresses,
    Address,
    DbSubnetGroup,
    FileSystem,
}

#[derive(Clone, Debug)]
enum Until {
    At(Instant),
    /// Until this made-up Lambda network interface is deleted.
    Eni(String),
}

/// The key of a DB instance's conversion to Multi-AZ among the transitions shown (the
/// instance's own key is its create's or delete's).
fn conversion_key(id: &str) -> String {
    format!("{id}#multi-az")
}

#[derive(Clone, Debug)]
struct Hold {
    held: Held,
    id: String,
    by: String,
    until: Until,
}

/// Subnets, security groups and VPC a resource puts network interfaces in.
#[derive(Clone, Debug, Default)]
struct Holders {
    subnets: Vec<String>,
    groups: Vec<String>,
    vpc: Option<String>,
}

#[derive(Clone, Debug)]
struct FakeEni {
    id: String,
    function: String,
    subnet: String,
    groups: Vec<String>,
    detached_at: Instant,
    reaped_at: Instant,
    deleted: bool,
}

/// An Auto Scaling group created by this process: when, and its target groups.
#[derive(Clone, Debug)]
struct Fleet {
    name: String,
    target_groups: Vec<String>,
    at: Instant,
}

#[derive(Debug, Default)]
struct Model {
    scale: f64,
    fixed: Option<Duration>,
    showing: HashMap<String, Showing>,
    holds: Vec<Hold>,
    nats: HashMap<String, (Holders, Option<String>)>,
    endpoints: HashMap<String, (Holders, bool)>,
    dbs: HashMap<String, DbInstance>,
    groups: HashMap<String, AutoScalingGroup>,
    /// Instances of deleted groups -> when they are terminated.
    terminating: HashMap<String, Instant>,
    lbs: HashMap<String, Holders>,
    functions: HashMap<String, Holders>,
    mount_targets: HashMap<String, (MountTargetDescription, Vec<String>)>,
    file_systems: HashMap<String, FileSystemDescription>,
    enis: Vec<FakeEni>,
    fleets: Vec<Fleet>,
    published: Option<Instant>,
}

/// The latency mode's state, shared by every client of the process.
#[derive(Debug)]
pub struct Latency {
    scale: f64,
    fixed: Option<Duration>,
    model: Mutex<Model>,
}

impl Latency {
    pub fn new(scale: f64) -> Self {
        Self::with_pace(Pace::Scaled(scale))
    }

    pub fn with_pace(pace: Pace) -> Self {
        let (scale, fixed) = match pace {
            Pace::Scaled(f) => (f, None),
            Pace::Fixed(d) => (1.0, Some(d)),
        };
        Self {
            scale,
            fixed,
            model: Mutex::new(Model {
                scale,
                fixed,
                ..Model::default()
            }),
        }
    }

    fn lasts(&self, t: Transition) -> Duration {
        self.model_time(t.timing().median_s)
    }

    /// A model figure as the mode shows it.
    fn model_time(&self, model_s: f64) -> Duration {
        self.fixed
            .unwrap_or_else(|| Duration::from_secs_f64(model_s * self.scale))
    }

    /// The refusal AWS would give this call now, if any.
    pub fn refusal(&self, call: &Named, now: Instant) -> Option<Refusal> {
        let m = self.model.lock().unwrap();
        let (held, id) = match call.operation.as_str() {
            "DeleteSubnet" => (Held::Subnet, call.id()?),
            "DeleteSecurityGroup" => (Held::Group, call.id()?),
            "ReleaseAddress" => (Held::Address, call.id()?),
            "DetachInternetGateway" => (Held::VpcAddresses, call.ids.get(1)?.as_str()),
            "DeleteDBSubnetGroup" => (Held::DbSubnetGroup, call.id()?),
            "DeleteFileSystem" => (Held::FileSystem, call.id()?),
            _ => return None,
        };
        let hold = m
            .holds
            .iter()
            .find(|h| h.held == held && h.id == id && m.holds_now(h, now))?;
        let by = &hold.by;
        let (code, message) = match held {
            Held::Subnet => (
                "DependencyViolation",
                format!("The subnet '{id}' has dependencies and cannot be deleted. ({by})"),
            ),
            Held::Group => (
                "DependencyViolation",
                format!("resource {id} has a dependent object ({by})"),
            ),
            Held::VpcAddresses => (
                "DependencyViolation",
                format!(
                    "Network {id} has some mapped public address(es). Please unmap those public address(es) before detaching the gateway. ({by})"
                ),
            ),
            Held::Address => ("InvalidIPAddress.InUse", format!("Address {id} is in use. ({by})")),
            Held::DbSubnetGroup => (
                "InvalidDBSubnetGroupStateFault",
                format!(
                    "Cannot delete the subnet group '{id}' because at least one database instance: {by} is still using it."
                ),
            ),
            Held::FileSystem => (
                "FileSystemInUse",
                format!("File system '{id}' has mount targets. ({by})"),
            ),
        };
        Some(Refusal {
            fault: Fault::InUse,
            code,
            message,
        })
    }

    /// A successful answer: learn from it, start the transitions a create or delete begins
    /// (rewriting the create's answer to show it), and rewrite reads of resources in
    /// transition. Returns how many resources were shown in an intermediate state.
    pub fn answered(&self, call: &Named, output: &mut Output, now: Instant) -> usize {
        let mut m = self.model.lock().unwrap();
        m.learn(output);
        self.start(&mut m, call, output, now);
        m.show(call, output, now)
    }

    /// A failed answer: a read of something moto already forgot but AWS still shows
    /// (`deleting`), or the delete of a made-up network interface; the answer to give
    /// instead, if any.
    pub fn instead_of(&self, call: &Named, error: &OperationError, now: Instant) -> Option<Output> {
        let mut m = self.model.lock().unwrap();
        m.instead_of(call, error, now)
    }

    fn start(&self, m: &mut Model, call: &Named, output: &mut Output, now: Instant) {
        use aws_sdk_ec2::operation as ec2;
        use aws_sdk_ec2::types::{NatGatewayState, State as EndpointState, VpcEndpointType};
        let show = |m: &mut Model, id: &str, t: Transition, deleting: bool| {
            let until = now + self.lasts(t);
            tracing::debug!(id, transition = ?t, lasts = ?self.lasts(t), "latency mode: transition started");
            m.showing.insert(id.to_string(), Showing { until, deleting });
            until
        };
        if let Some(o) = output.downcast_mut::<ec2::create_nat_gateway::CreateNatGatewayOutput>() {
            if let Some(n) = o.nat_gateway.as_mut()
                && let Some(id) = n.nat_gateway_id.clone()
            {
                n.state = Some(NatGatewayState::Pending);
                show(m, &id, Transition::NatCreate, false);
            }
        } else if let Some(o) = output.downcast_mut::<ec2::delete_nat_gateway::DeleteNatGatewayOutput>() {
            if let Some(id) = o.nat_gateway_id.clone() {
                let until = show(m, &id, Transition::NatDelete, true);
                if let Some((h, allocation)) = m.nats.get(&id).cloned() {
                    let by = format!("NAT gateway {id} is deleting");
                    m.hold_all(Held::Subnet, &h.subnets, &by, Until::At(until));
                    m.hold_all(Held::VpcAddresses, h.vpc.as_slice(), &by, Until::At(until));
                    m.hold_all(Held::Address, allocation.as_slice(), &by, Until::At(until));
                }
            }
        } else if let Some(o) = output.downcast_mut::<ec2::create_vpc_endpoint::CreateVpcEndpointOutput>() {
            if let Some(e) = o.vpc_endpoint.as_mut()
                && let Some(id) = e.vpc_endpoint_id.clone()
            {
                let gateway = e.vpc_endpoint_type == Some(VpcEndpointType::Gateway);
                e.state = Some(EndpointState::Pending);
                show(m, &id, Transition::EndpointCreate { gateway }, false);
            }
        } else if output
            .downcast_ref::<ec2::delete_vpc_endpoints::DeleteVpcEndpointsOutput>()
            .is_some()
        {
            for id in &call.ids {
                let (h, gateway) = m.endpoints.get(id).cloned().unwrap_or_default();
                let until = show(m, id, Transition::EndpointDelete { gateway }, true);
                let by = format!("VPC endpoint {id} is deleting");
                m.hold_all(Held::Subnet, &h.subnets, &by, Until::At(until));
                m.hold_all(Held::Group, &h.groups, &by, Until::At(until));
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_efs::operation::create_file_system::CreateFileSystemOutput>() {
            o.life_cycle_state = LifeCycleState::Creating;
            let id = o.file_system_id.clone();
            show(m, &id, Transition::FileSystemCreate, false);
        } else if output
            .downcast_ref::<aws_sdk_efs::operation::delete_file_system::DeleteFileSystemOutput>()
            .is_some()
        {
            if let Some(id) = call.id() {
                show(m, id, Transition::FileSystemDelete, true);
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_efs::operation::create_mount_target::CreateMountTargetOutput>() {
            o.life_cycle_state = LifeCycleState::Creating;
            let id = o.mount_target_id.clone();
            show(m, &id, Transition::MountTargetCreate, false);
        } else if output
            .downcast_ref::<aws_sdk_efs::operation::delete_mount_target::DeleteMountTargetOutput>()
            .is_some()
        {
            if let Some(id) = call.id() {
                let until = show(m, id, Transition::MountTargetDelete, true);
                let by = format!("mount target {id} is deleting");
                // Its file system, if known; else every file system (one per deployment).
                match m.mount_targets.get(id).cloned() {
                    Some((mt, groups)) => {
                        m.hold_all(Held::FileSystem, std::slice::from_ref(&mt.file_system_id), &by, Until::At(until));
                        m.hold_all(Held::Subnet, std::slice::from_ref(&mt.subnet_id), &by, Until::At(until));
                        m.hold_all(Held::Group, &groups, &by, Until::At(until));
                    }
                    None => {
                        let all: Vec<String> = m.file_systems.keys().cloned().collect();
                        m.hold_all(Held::FileSystem, &all, &by, Until::At(until));
                    }
                }
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_rds::operation::create_db_instance::CreateDbInstanceOutput>() {
            if let Some(db) = o.db_instance.as_mut()
                && let Some(id) = db.db_instance_identifier.clone()
            {
                let multi_az = db.multi_az != Some(false);
                db.db_instance_status = Some("creating".into());
                db.endpoint = None;
                show(m, &id, Transition::DbCreate { multi_az }, false);
            }
        } else if call.to_multi_az
            && let Some(o) =
                output.downcast_mut::<aws_sdk_rds::operation::modify_db_instance::ModifyDbInstanceOutput>()
        {
            // A conversion already under way is not started again (AWS refuses a second one
            // while `modifying`; here the first one's end stands).
            if let Some(id) = call.id()
                && m.in_transition(Some(&conversion_key(id)), now).is_none()
            {
                show(m, &conversion_key(id), Transition::DbToMultiAz, false);
            }
            // AWS answers with the change pending, the instance still Single-AZ.
            if let Some(db) = o.db_instance.as_mut() {
                db.multi_az = Some(false);
                db.pending_modified_values = Some(
                    aws_sdk_rds::types::PendingModifiedValues::builder()
                        .multi_az(true)
                        .build(),
                );
            }
        } else if let Some(o) = output.downcast_ref::<aws_sdk_rds::operation::delete_db_instance::DeleteDbInstanceOutput>() {
            if let Some(db) = o.db_instance.clone()
                && let Some(id) = db.db_instance_identifier.clone()
            {
                let until = show(
                    m,
                    &id,
                    Transition::DbDelete {
                        final_snapshot: call.final_snapshot,
                    },
                    true,
                );
                let by = format!("DB instance {id} is deleting");
                let group = db.db_subnet_group.as_ref().and_then(|g| g.db_subnet_group_name.clone());
                let groups: Vec<String> = db
                    .vpc_security_groups()
                    .iter()
                    .filter_map(|g| g.vpc_security_group_id.clone())
                    .collect();
                m.hold_all(Held::DbSubnetGroup, group.as_slice(), &id, Until::At(until));
                m.hold_all(Held::Group, &groups, &by, Until::At(until));
                m.dbs.insert(id, db);
            }
        } else if let Some(o) = output
            .downcast_mut::<aws_sdk_elasticloadbalancingv2::operation::create_load_balancer::CreateLoadBalancerOutput>()
        {
            for lb in o.load_balancers.iter_mut().flatten() {
                lb.state = Some(provisioning());
                if let Some(arn) = lb.load_balancer_arn.clone() {
                    show(m, &arn, Transition::LoadBalancerCreate, false);
                }
            }
        } else if output
            .downcast_ref::<aws_sdk_elasticloadbalancingv2::operation::delete_load_balancer::DeleteLoadBalancerOutput>()
            .is_some()
        {
            // Gone from the API at once; its network interfaces linger.
            if let Some(arn) = call.id()
                && let Some(h) = m.lbs.get(arn).cloned()
            {
                let until = Until::At(now + self.lasts(Transition::LoadBalancerDelete));
                let by = format!("load balancer {} is releasing its network interfaces", short_arn(arn));
                m.hold_all(Held::Subnet, &h.subnets, &by, until.clone());
                m.hold_all(Held::Group, &h.groups, &by, until.clone());
                m.hold_all(Held::VpcAddresses, h.vpc.as_slice(), &by, until);
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_lambda::operation::create_function::CreateFunctionOutput>() {
            o.state = Some(aws_sdk_lambda::types::State::Pending);
            if let Some(name) = o.function_name.clone() {
                show(m, &name, Transition::LambdaCreate, false);
            }
        } else if output
            .downcast_ref::<aws_sdk_lambda::operation::delete_function::DeleteFunctionOutput>()
            .is_some()
        {
            if let Some(name) = call.id()
                && let Some(h) = m.functions.get(name).cloned()
            {
                let detached_at = now + self.lasts(Transition::LambdaDelete);
                let release = crate::core::latency::model()
                    .get("delete.lambda_eni_release")
                    .map_or(1200.0, |t| t.median_s);
                let reaped_at = now + self.model_time(release);
                for subnet in &h.subnets {
                    let eni = FakeEni {
                        id: fake_eni_id(name, subnet),
                        function: name.to_string(),
                        subnet: subnet.clone(),
                        groups: h.groups.clone(),
                        detached_at,
                        reaped_at,
                        deleted: false,
                    };
                    let by = format!("network interface {} of deleted Lambda function {name}", eni.id);
                    m.hold_all(Held::Subnet, std::slice::from_ref(subnet), &by, Until::Eni(eni.id.clone()));
                    m.hold_all(Held::Group, &h.groups, &by, Until::Eni(eni.id.clone()));
                    m.enis.push(eni);
                }
            }
        } else if output
            .downcast_ref::<aws_sdk_autoscaling::operation::create_auto_scaling_group::CreateAutoScalingGroupOutput>()
            .is_some()
        {
            if let Some((name, target_groups)) = call.ids.split_first() {
                m.fleets.push(Fleet {
                    name: name.clone(),
                    target_groups: target_groups.to_vec(),
                    at: now,
                });
            }
        } else if output
            .downcast_ref::<aws_sdk_autoscaling::operation::delete_auto_scaling_group::DeleteAutoScalingGroupOutput>()
            .is_some()
        {
            if let Some(name) = call.id() {
                let until = show(m, name, Transition::GroupDelete, true);
                let instances: Vec<String> = m
                    .groups
                    .get(name)
                    .map(|g| g.instances().iter().filter_map(|i| i.instance_id.clone()).collect())
                    .unwrap_or_default();
                for i in instances {
                    m.terminating.insert(i, until);
                }
            }
        } else if output
            .downcast_ref::<aws_sdk_ssm::operation::put_parameter::PutParameterOutput>()
            .is_some()
            && call.id().is_some_and(|n| n.ends_with("/db-endpoint"))
        {
            m.published = Some(now);
        }
    }
}

impl Model {
    fn lasts(&self, t: Transition) -> Duration {
        self.fixed
            .unwrap_or_else(|| Duration::from_secs_f64(t.timing().median_s * self.scale))
    }

    /// When the targets of a group this process created are first healthy: in service,
    /// booted, the endpoint published (their user data waits for it; when this process
    /// published none, it was before), then one health check.
    fn healthy_at(&self, target_group: &str) -> Option<Instant> {
        let fleet = self
            .fleets
            .iter()
            .find(|f| f.target_groups.iter().any(|t| t == target_group))?;
        let booted = fleet.at + self.lasts(Transition::InstancesInService) + self.lasts(Transition::AppReady);
        let starts = booted.max(self.published.unwrap_or(fleet.at));
        Some(starts + self.lasts(Transition::TargetHealthy))
    }

    fn hold_all(&mut self, held: Held, ids: &[String], by: &str, until: Until) {
        for id in ids.iter().filter(|i| !i.is_empty()) {
            self.holds.push(Hold {
                held,
                id: id.clone(),
                by: by.to_string(),
                until: until.clone(),
            });
        }
    }

    fn holds_now(&self, h: &Hold, now: Instant) -> bool {
        match &h.until {
            Until::At(t) => now < *t,
            Until::Eni(id) => self.enis.iter().any(|e| e.id == *id && e.exists(now)),
        }
    }

    fn in_transition(&self, id: Option<&str>, now: Instant) -> Option<Showing> {
        self.showing.get(id?).copied().filter(|s| now < s.until)
    }

    /// What answers teach: what each resource holds, the last description of what may
    /// have to be answered after moto forgot it.
    fn learn(&mut self, output: &Output) {
        use aws_sdk_ec2::operation as ec2;
        let nat_holders = |n: &aws_sdk_ec2::types::NatGateway| {
            (
                Holders {
                    subnets: n.subnet_id.iter().cloned().collect(),
                    groups: vec![],
                    vpc: n.vpc_id.clone(),
                },
                n.nat_gateway_addresses().iter().find_map(|a| a.allocation_id.clone()),
            )
        };
        if let Some(o) = output.downcast_ref::<ec2::describe_nat_gateways::DescribeNatGatewaysOutput>() {
            for n in o.nat_gateways() {
                if let Some(id) = &n.nat_gateway_id {
                    self.nats.insert(id.clone(), nat_holders(n));
                }
            }
        } else if let Some(o) = output.downcast_ref::<ec2::create_nat_gateway::CreateNatGatewayOutput>() {
            if let Some(n) = &o.nat_gateway
                && let Some(id) = &n.nat_gateway_id
            {
                self.nats.insert(id.clone(), nat_holders(n));
            }
        } else if let Some(o) = output.downcast_ref::<ec2::describe_vpc_endpoints::DescribeVpcEndpointsOutput>() {
            for e in o.vpc_endpoints() {
                self.learn_endpoint(e);
            }
        } else if let Some(o) = output.downcast_ref::<ec2::create_vpc_endpoint::CreateVpcEndpointOutput>() {
            if let Some(e) = &o.vpc_endpoint {
                self.learn_endpoint(e);
            }
        } else if let Some(o) = output.downcast_ref::<aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput>()
        {
            for db in o.db_instances() {
                if let Some(id) = &db.db_instance_identifier {
                    self.dbs.insert(id.clone(), db.clone());
                }
            }
        } else if let Some(o) =
            output.downcast_ref::<aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput>()
        {
            for g in o.auto_scaling_groups() {
                if let Some(name) = &g.auto_scaling_group_name
                    && g.status.is_none()
                {
                    self.groups.insert(name.clone(), g.clone());
                }
            }
        } else if let Some(o) =
            output.downcast_ref::<aws_sdk_elasticloadbalancingv2::operation::describe_load_balancers::DescribeLoadBalancersOutput>()
        {
            for lb in o.load_balancers() {
                self.learn_load_balancer(lb);
            }
        } else if let Some(o) =
            output.downcast_ref::<aws_sdk_elasticloadbalancingv2::operation::create_load_balancer::CreateLoadBalancerOutput>()
        {
            for lb in o.load_balancers() {
                self.learn_load_balancer(lb);
            }
        } else if let Some(o) = output.downcast_ref::<aws_sdk_lambda::operation::get_function::GetFunctionOutput>() {
            if let Some(c) = &o.configuration {
                self.learn_function(c.function_name.as_deref(), c.vpc_config.as_ref());
            }
        } else if let Some(o) =
            output.downcast_ref::<aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput>()
        {
            self.learn_function(o.function_name.as_deref(), o.vpc_config.as_ref());
        } else if let Some(o) = output.downcast_ref::<aws_sdk_lambda::operation::create_function::CreateFunctionOutput>() {
            self.learn_function(o.function_name.as_deref(), o.vpc_config.as_ref());
        } else if let Some(o) = output.downcast_ref::<aws_sdk_efs::operation::describe_mount_targets::DescribeMountTargetsOutput>() {
            for mt in o.mount_targets() {
                let groups = self.mount_targets.get(&mt.mount_target_id).map(|m| m.1.clone());
                self.mount_targets
                    .insert(mt.mount_target_id.clone(), (mt.clone(), groups.unwrap_or_default()));
            }
        } else if let Some(o) = output.downcast_ref::<aws_sdk_efs::operation::create_mount_target::CreateMountTargetOutput>() {
            if let Ok(mt) = MountTargetDescription::builder()
                .mount_target_id(&o.mount_target_id)
                .file_system_id(&o.file_system_id)
                .subnet_id(&o.subnet_id)
                .life_cycle_state(o.life_cycle_state.clone())
                .build()
            {
                self.mount_targets.insert(o.mount_target_id.clone(), (mt, vec![]));
            }
        } else if let Some(o) = output.downcast_ref::<aws_sdk_efs::operation::describe_file_systems::DescribeFileSystemsOutput>() {
            for fs in o.file_systems() {
                self.file_systems.insert(fs.file_system_id.clone(), fs.clone());
            }
        }
    }

    fn learn_endpoint(&mut self, e: &aws_sdk_ec2::types::VpcEndpoint) {
        let Some(id) = &e.vpc_endpoint_id else { return };
        let gateway = e.vpc_endpoint_type == Some(aws_sdk_ec2::types::VpcEndpointType::Gateway);
        let holders = Holders {
            subnets: e.subnet_ids().to_vec(),
            groups: e.groups().iter().filter_map(|g| g.group_id.clone()).collect(),
            vpc: e.vpc_id.clone(),
        };
        self.endpoints.insert(id.clone(), (holders, gateway));
    }

    fn learn_load_balancer(&mut self, lb: &aws_sdk_elasticloadbalancingv2::types::LoadBalancer) {
        let Some(arn) = &lb.load_balancer_arn else { return };
        let holders = Holders {
            subnets: lb
                .availability_zones()
                .iter()
                .filter_map(|z| z.subnet_id.clone())
                .collect(),
            groups: lb.security_groups().to_vec(),
            vpc: lb.vpc_id.clone(),
        };
        self.lbs.insert(arn.clone(), holders);
    }

    fn learn_function(&mut self, name: Option<&str>, vpc: Option<&aws_sdk_lambda::types::VpcConfigResponse>) {
        let (Some(name), Some(vpc)) = (name, vpc) else { return };
        if vpc.subnet_ids().is_empty() {
            return;
        }
        let holders = Holders {
            subnets: vpc.subnet_ids().to_vec(),
            groups: vpc.security_group_ids().to_vec(),
            vpc: vpc.vpc_id.clone(),
        };
        self.functions.insert(name.to_string(), holders);
    }

    /// Rewrite a successful read of resources in transition; how many were shown so.
    fn show(&mut self, call: &Named, output: &mut Output, now: Instant) -> usize {
        use aws_sdk_ec2::operation as ec2;
        use aws_sdk_ec2::types::{NatGatewayState, State as EndpointState};
        let mut shown = 0;
        let mut during = |id: Option<&str>| {
            let s = self.in_transition(id, now);
            shown += usize::from(s.is_some());
            s
        };
        if let Some(o) = output.downcast_mut::<ec2::describe_nat_gateways::DescribeNatGatewaysOutput>() {
            for n in o.nat_gateways.iter_mut().flatten() {
                if let Some(s) = during(n.nat_gateway_id.as_deref()) {
                    n.state = Some(if s.deleting {
                        NatGatewayState::Deleting
                    } else {
                        NatGatewayState::Pending
                    });
                }
            }
        } else if let Some(o) = output.downcast_mut::<ec2::describe_vpc_endpoints::DescribeVpcEndpointsOutput>() {
            for e in o.vpc_endpoints.iter_mut().flatten() {
                if let Some(s) = during(e.vpc_endpoint_id.as_deref()) {
                    e.state = Some(if s.deleting {
                        EndpointState::Deleting
                    } else {
                        EndpointState::Pending
                    });
                }
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_efs::operation::describe_file_systems::DescribeFileSystemsOutput>() {
            for fs in o.file_systems.iter_mut().flatten() {
                if let Some(s) = during(Some(&fs.file_system_id)) {
                    fs.life_cycle_state = if s.deleting {
                        LifeCycleState::Deleting
                    } else {
                        LifeCycleState::Creating
                    };
                }
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_efs::operation::describe_mount_targets::DescribeMountTargetsOutput>() {
            let list = o.mount_targets.get_or_insert_with(Vec::new);
            for mt in list.iter_mut() {
                if let Some(s) = during(Some(&mt.mount_target_id)) {
                    mt.life_cycle_state = if s.deleting {
                        LifeCycleState::Deleting
                    } else {
                        LifeCycleState::Creating
                    };
                }
            }
            // Listed by file system: the ones moto forgot that are still deleting.
            if let Some(fs) = call.filters.get("file-system").and_then(|v| v.first()) {
                let listed: Vec<String> = list.iter().map(|m| m.mount_target_id.clone()).collect();
                for (id, (mt, _)) in &self.mount_targets {
                    let deleting = self.showing.get(id).is_some_and(|s| s.deleting && now < s.until);
                    if deleting && mt.file_system_id == *fs && !listed.contains(id) {
                        let mut mt = mt.clone();
                        mt.life_cycle_state = LifeCycleState::Deleting;
                        list.push(mt);
                        shown += 1;
                    }
                }
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput>() {
            for db in o.db_instances.iter_mut().flatten() {
                if let Some(s) = during(db.db_instance_identifier.as_deref()) {
                    db.db_instance_status = Some(if s.deleting { "deleting" } else { "creating" }.into());
                    if !s.deleting {
                        db.endpoint = None;
                    }
                } else if db.db_instance_status.as_deref() == Some("available")
                    && during(db.db_instance_identifier.as_deref().map(conversion_key).as_deref()).is_some()
                {
                    db.db_instance_status = Some("modifying".into());
                    db.multi_az = Some(false);
                    db.pending_modified_values = Some(
                        aws_sdk_rds::types::PendingModifiedValues::builder()
                            .multi_az(true)
                            .build(),
                    );
                }
            }
        } else if let Some(o) = output
            .downcast_mut::<aws_sdk_elasticloadbalancingv2::operation::describe_load_balancers::DescribeLoadBalancersOutput>()
        {
            for lb in o.load_balancers.iter_mut().flatten() {
                if during(lb.load_balancer_arn.as_deref()).is_some() {
                    lb.state = Some(provisioning());
                }
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_lambda::operation::get_function::GetFunctionOutput>() {
            if let Some(c) = o.configuration.as_mut()
                && during(c.function_name.as_deref()).is_some()
            {
                c.state = Some(aws_sdk_lambda::types::State::Pending);
            }
        } else if let Some(o) =
            output.downcast_mut::<aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput>()
        {
            if during(o.function_name.as_deref()).is_some() {
                o.state = Some(aws_sdk_lambda::types::State::Pending);
            }
        } else if let Some(o) =
            output.downcast_mut::<aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput>()
        {
            let list = o.auto_scaling_groups.get_or_insert_with(Vec::new);
            // New groups: their instances are not in service yet.
            for g in list.iter_mut() {
                let Some(fleet) = self.fleets.iter().find(|f| Some(&f.name) == g.auto_scaling_group_name.as_ref()) else {
                    continue;
                };
                if now < fleet.at + self.lasts(Transition::InstancesInService) {
                    for i in g.instances.iter_mut().flatten() {
                        i.lifecycle_state = Some(aws_sdk_autoscaling::types::LifecycleState::Pending);
                    }
                    shown += 1;
                }
            }
            // Deleted groups still deleting: moto forgot them.
            let listed: Vec<String> = list.iter().filter_map(|g| g.auto_scaling_group_name.clone()).collect();
            for (name, g) in &self.groups {
                let deleting = self.showing.get(name).is_some_and(|s| s.deleting && now < s.until);
                let asked = call.ids.is_empty() || call.ids.contains(name);
                if deleting && asked && !listed.contains(name) {
                    let mut g = g.clone();
                    g.status = Some("Delete in progress".into());
                    list.push(g);
                    shown += 1;
                }
            }
        } else if let Some(o) = output
            .downcast_mut::<aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput>()
        {
            use aws_sdk_elasticloadbalancingv2::types::{TargetHealth, TargetHealthReasonEnum, TargetHealthStateEnum};
            let healthy_at = call.id().and_then(|tg| self.healthy_at(tg));
            if healthy_at.is_some_and(|t| now < t) {
                for d in o.target_health_descriptions.iter_mut().flatten() {
                    d.target_health = Some(
                        TargetHealth::builder()
                            .state(TargetHealthStateEnum::Initial)
                            .reason(TargetHealthReasonEnum::InitialHealthChecking)
                            .description("Initial health checks in progress.")
                            .build(),
                    );
                    shown += 1;
                }
            }
        } else if let Some(o) = output.downcast_mut::<ec2::describe_instances::DescribeInstancesOutput>() {
            for i in o.reservations.iter_mut().flatten().flat_map(|r| r.instances.iter_mut().flatten()) {
                let Some(id) = &i.instance_id else { continue };
                if self.terminating.get(id).is_some_and(|t| now < *t) {
                    i.state = Some(
                        aws_sdk_ec2::types::InstanceState::builder()
                            .code(32)
                            .name(aws_sdk_ec2::types::InstanceStateName::ShuttingDown)
                            .build(),
                    );
                    shown += 1;
                }
            }
        } else if let Some(o) = output.downcast_mut::<ec2::describe_network_interfaces::DescribeNetworkInterfacesOutput>() {
            let list = o.network_interfaces.get_or_insert_with(Vec::new);
            for e in self.enis.iter().filter(|e| e.exists(now) && e.matches(call)) {
                list.push(e.describe(now));
                shown += 1;
            }
        }
        shown
    }

    fn instead_of(&mut self, call: &Named, error: &OperationError, now: Instant) -> Option<Output> {
        let deleting = |m: &Model, id: &str| m.showing.get(id).is_some_and(|s| s.deleting && now < s.until);
        match call.operation.as_str() {
            "DescribeDBInstances" => {
                let id = call.id()?;
                let not_found = error
                    .downcast_ref::<aws_sdk_rds::operation::describe_db_instances::DescribeDBInstancesError>()
                    .is_some_and(|e| e.is_db_instance_not_found_fault());
                if !(not_found && deleting(self, id)) {
                    return None;
                }
                let mut db = self
                    .dbs
                    .get(id)
                    .cloned()
                    .unwrap_or_else(|| DbInstance::builder().db_instance_identifier(id).build());
                db.db_instance_status = Some("deleting".into());
                Some(Output::erase(
                    aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput::builder()
                        .db_instances(db)
                        .build(),
                ))
            }
            "DescribeMountTargets" => {
                let id = call.id()?;
                let not_found = error
                    .downcast_ref::<aws_sdk_efs::operation::describe_mount_targets::DescribeMountTargetsError>()
                    .is_some_and(|e| e.is_mount_target_not_found());
                if !(not_found && deleting(self, id)) {
                    return None;
                }
                let mt = match self.mount_targets.get(id) {
                    Some((mt, _)) => {
                        let mut mt = mt.clone();
                        mt.life_cycle_state = LifeCycleState::Deleting;
                        mt
                    }
                    None => MountTargetDescription::builder()
                        .mount_target_id(id)
                        .file_system_id("")
                        .subnet_id("")
                        .life_cycle_state(LifeCycleState::Deleting)
                        .build()
                        .ok()?,
                };
                Some(Output::erase(
                    aws_sdk_efs::operation::describe_mount_targets::DescribeMountTargetsOutput::builder()
                        .mount_targets(mt)
                        .build(),
                ))
            }
            "DescribeFileSystems" => {
                let id = call.id()?;
                let not_found = error
                    .downcast_ref::<aws_sdk_efs::operation::describe_file_systems::DescribeFileSystemsError>()
                    .is_some_and(|e| e.is_file_system_not_found());
                if !(not_found && deleting(self, id)) {
                    return None;
                }
                let mut fs = match self.file_systems.get(id) {
                    Some(fs) => fs.clone(),
                    None => minimal_file_system(id)?,
                };
                fs.life_cycle_state = LifeCycleState::Deleting;
                Some(Output::erase(
                    aws_sdk_efs::operation::describe_file_systems::DescribeFileSystemsOutput::builder()
                        .file_systems(fs)
                        .build(),
                ))
            }
            "DeleteNetworkInterface" => {
                let id = call.id()?;
                let eni = self.enis.iter_mut().find(|e| e.id == id && e.exists(now))?;
                eni.deleted = true;
                Some(Output::erase(
                    aws_sdk_ec2::operation::delete_network_interface::DeleteNetworkInterfaceOutput::builder().build(),
                ))
            }
            _ => None,
        }
    }
}

impl FakeEni {
    fn exists(&self, now: Instant) -> bool {
        !self.deleted && now < self.reaped_at
    }

    /// Whether a DescribeNetworkInterfaces with these filters lists it (an unknown filter
    /// lists none of the made-up interfaces).
    fn matches(&self, call: &Named) -> bool {
        if !call.ids.is_empty() {
            return call.ids.contains(&self.id);
        }
        call.filters.iter().all(|(name, values)| match name.as_str() {
            "subnet-id" => values.contains(&self.subnet),
            "group-id" => values.iter().any(|v| self.groups.contains(v)),
            "description" => values.iter().any(|v| match v.strip_suffix('*') {
                Some(prefix) => self.description().starts_with(prefix),
                None => *v == self.description(),
            }),
            _ => false,
        })
    }

    fn description(&self) -> String {
        format!("AWS Lambda VPC ENI-{}", self.function)
    }

    fn describe(&self, now: Instant) -> aws_sdk_ec2::types::NetworkInterface {
        use aws_sdk_ec2::types::{GroupIdentifier, NetworkInterface, NetworkInterfaceStatus, NetworkInterfaceType};
        let status = if now < self.detached_at {
            NetworkInterfaceStatus::InUse
        } else {
            NetworkInterfaceStatus::Available
        };
        let mut b = NetworkInterface::builder()
            .network_interface_id(&self.id)
            .subnet_id(&self.subnet)
            .description(self.description())
            .interface_type(NetworkInterfaceType::Lambda)
            .status(status);
        for g in &self.groups {
            b = b.groups(GroupIdentifier::builder().group_id(g).build());
        }
        b.build()
    }
}

/// `eni-` and 17 hex digits, the same for the same function and subnet.
fn fake_eni_id(function: &str, subnet: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (function, subnet).hash(&mut h);
    format!("eni-0{:016x}", h.finish())
}

fn short_arn(arn: &str) -> &str {
    arn.rsplit_once(":loadbalancer/").map_or(arn, |(_, name)| name)
}

fn provisioning() -> aws_sdk_elasticloadbalancingv2::types::LoadBalancerState {
    aws_sdk_elasticloadbalancingv2::types::LoadBalancerState::builder()
        .code(aws_sdk_elasticloadbalancingv2::types::LoadBalancerStateEnum::Provisioning)
        .build()
}

fn minimal_file_system(id: &str) -> Option<FileSystemDescription> {
    FileSystemDescription::builder()
        .owner_id("")
        .creation_token("")
        .file_system_id(id)
        .creation_time(aws_smithy_types::DateTime::from_secs(0))
        .life_cycle_state(LifeCycleState::Deleting)
        .number_of_mount_targets(0)
        .size_in_bytes(aws_sdk_efs::types::FileSystemSize::builder().value(0).build())
        .performance_mode(aws_sdk_efs::types::PerformanceMode::GeneralPurpose)
        .set_tags(Some(vec![]))
        .build()
        .ok()
}

#[cfg(test)]
mod tests {
    use aws_sdk_ec2::types::{NatGateway, NatGatewayAddress, NatGatewayState};

    use super::*;

    /// 1/1000: the NAT's 100 s are 100 ms, RDS Multi-AZ's 960 s are 0.96 s.
    const SCALE: f64 = 0.001;

    fn call(operation: &str, ids: &[&str]) -> Named {
        Named {
            operation: operation.into(),
            ids: ids.iter().map(|s| s.to_string()).collect(),
            ..Named::default()
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn nat(state: NatGatewayState) -> NatGateway {
        NatGateway::builder()
            .nat_gateway_id("nat-1")
            .subnet_id("subnet-pub")
            .vpc_id("vpc-1")
            .nat_gateway_addresses(NatGatewayAddress::builder().allocation_id("eipalloc-1").build())
            .state(state)
            .build()
    }

    fn nat_state(l: &Latency, at: Instant) -> (usize, Option<NatGatewayState>) {
        use aws_sdk_ec2::operation::describe_nat_gateways::DescribeNatGatewaysOutput;
        // moto: `available`, or `deleted` once deleted; here always the final state.
        let mut o = Output::erase(
            DescribeNatGatewaysOutput::builder()
                .nat_gateways(nat(NatGatewayState::Available))
                .build(),
        );
        let shown = l.answered(&call("DescribeNatGateways", &["nat-1"]), &mut o, at);
        let o = o.downcast::<DescribeNatGatewaysOutput>().unwrap();
        (shown, o.nat_gateways()[0].state().cloned())
    }

    #[test]
    fn the_factor_is_parsed_and_bad_ones_are_refused() {
        assert_eq!(parse("0.01").unwrap(), 0.01);
        assert_eq!(parse("1/100").unwrap(), 0.01);
        assert_eq!(parse(" 1 / 50 ").unwrap(), 0.02);
        for bad in ["0", "2", "-0.1", "x", "1/0", "1/x", ""] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_pace("1/100").unwrap(), Pace::Scaled(0.01));
        assert_eq!(parse_pace("fixed:2").unwrap(), Pace::Fixed(Duration::from_secs(2)));
        for bad in ["fixed:", "fixed:0", "fixed:x", "fixed:-1"] {
            assert!(parse_pace(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_fixed_pace_shows_every_transition_for_the_same_time() {
        use aws_sdk_ec2::operation::create_nat_gateway::CreateNatGatewayOutput;
        let l = Latency::with_pace(Pace::Fixed(ms(2000)));
        let t0 = Instant::now();
        let mut created = Output::erase(
            CreateNatGatewayOutput::builder()
                .nat_gateway(nat(NatGatewayState::Available))
                .build(),
        );
        l.answered(&call("CreateNatGateway", &[]), &mut created, t0);
        assert_eq!(nat_state(&l, t0 + ms(1999)), (1, Some(NatGatewayState::Pending)));
        assert_eq!(nat_state(&l, t0 + ms(2000)), (0, Some(NatGatewayState::Available)));
    }

    #[test]
    fn a_new_nat_gateway_is_pending_for_its_scaled_model_time() {
        use aws_sdk_ec2::operation::create_nat_gateway::CreateNatGatewayOutput;
        let l = Latency::new(SCALE);
        let t0 = Instant::now();
        let mut created = Output::erase(
            CreateNatGatewayOutput::builder()
                .nat_gateway(nat(NatGatewayState::Available))
                .build(),
        );
        l.answered(&call("CreateNatGateway", &[]), &mut created, t0);
        let created = created.downcast::<CreateNatGatewayOutput>().unwrap();
        assert_eq!(created.nat_gateway().unwrap().state(), Some(&NatGatewayState::Pending));
        assert_eq!(nat_state(&l, t0 + ms(99)), (1, Some(NatGatewayState::Pending)));
        assert_eq!(nat_state(&l, t0 + ms(100)), (0, Some(NatGatewayState::Available)));
    }

    #[test]
    fn a_deleted_nat_gateway_is_deleting_and_holds_its_subnet_address_and_vpc_meanwhile() {
        use aws_sdk_ec2::operation::delete_nat_gateway::DeleteNatGatewayOutput;
        let l = Latency::new(SCALE);
        let t0 = Instant::now();
        // What it holds is learned from a read (here, the first describe).
        nat_state(&l, t0);
        let mut deleted = Output::erase(DeleteNatGatewayOutput::builder().nat_gateway_id("nat-1").build());
        l.answered(&call("DeleteNatGateway", &["nat-1"]), &mut deleted, t0);
        // NAT delete: 60 s in the model.
        let during = t0 + ms(59);
        assert_eq!(nat_state(&l, during), (1, Some(NatGatewayState::Deleting)));
        let subnet = call("DeleteSubnet", &["subnet-pub"]);
        let address = call("ReleaseAddress", &["eipalloc-1"]);
        let detach = call("DetachInternetGateway", &["igw-1", "vpc-1"]);
        assert_eq!(l.refusal(&subnet, during).unwrap().code, "DependencyViolation");
        assert_eq!(l.refusal(&address, during).unwrap().code, "InvalidIPAddress.InUse");
        assert!(
            l.refusal(&detach, during)
                .unwrap()
                .message
                .contains("mapped public address")
        );
        assert_eq!(l.refusal(&call("DeleteSubnet", &["subnet-other"]), during), None);
        let after = t0 + ms(60);
        assert_eq!(nat_state(&l, after).0, 0);
        for c in [&subnet, &address, &detach] {
            assert_eq!(l.refusal(c, after), None, "{c:?}");
        }
    }

    fn db(id: &str, status: &str) -> DbInstance {
        DbInstance::builder()
            .db_instance_identifier(id)
            .db_instance_status(status)
            .multi_az(true)
            .db_subnet_group(
                aws_sdk_rds::types::DbSubnetGroup::builder()
                    .db_subnet_group_name("dbsg")
                    .build(),
            )
            .vpc_security_groups(
                aws_sdk_rds::types::VpcSecurityGroupMembership::builder()
                    .vpc_security_group_id("sg-db")
                    .build(),
            )
            .endpoint(aws_sdk_rds::types::Endpoint::builder().address("db.example").build())
            .build()
    }

    #[test]
    fn a_new_db_instance_is_creating_without_an_endpoint_for_the_multi_az_figure() {
        use aws_sdk_rds::operation::create_db_instance::CreateDbInstanceOutput;
        use aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput;
        let l = Latency::new(SCALE);
        let t0 = Instant::now();
        let mut created = Output::erase(
            CreateDbInstanceOutput::builder()
                .db_instance(db("pi-db", "available"))
                .build(),
        );
        l.answered(&call("CreateDBInstance", &[]), &mut created, t0);
        let read = |at| {
            let mut o = Output::erase(
                DescribeDbInstancesOutput::builder()
                    .db_instances(db("pi-db", "available"))
                    .build(),
            );
            l.answered(&call("DescribeDBInstances", &["pi-db"]), &mut o, at);
            let o = o.downcast::<DescribeDbInstancesOutput>().unwrap();
            let d = o.db_instances()[0].clone();
            (d.db_instance_status().unwrap().to_string(), d.endpoint().is_some())
        };
        assert_eq!(read(t0 + ms(959)), ("creating".to_string(), false));
        assert_eq!(read(t0 + ms(960)), ("available".to_string(), true));
    }

    #[test]
    fn a_deleted_db_instance_moto_forgot_is_answered_deleting_and_holds_its_subnet_group() {
        use aws_sdk_rds::operation::delete_db_instance::DeleteDbInstanceOutput;
        use aws_sdk_rds::operation::describe_db_instances::{DescribeDBInstancesError, DescribeDbInstancesOutput};
        let l = Latency::new(SCALE);
        let t0 = Instant::now();
        let mut deleted = Output::erase(
            DeleteDbInstanceOutput::builder()
                .db_instance(db("pi-db", "deleting"))
                .build(),
        );
        // --skip-final-snapshot: 390 s in the model.
        let mut delete = call("DeleteDBInstance", &["pi-db"]);
        delete.final_snapshot = false;
        l.answered(&delete, &mut deleted, t0);
        let not_found = OperationError::erase(DescribeDBInstancesError::DbInstanceNotFoundFault(
            aws_sdk_rds::types::error::DbInstanceNotFoundFault::builder().build(),
        ));
        let describe = call("DescribeDBInstances", &["pi-db"]);
        let during = t0 + ms(389);
        let instead = l.instead_of(&describe, &not_found, during).expect("answered deleting");
        let o = instead.downcast::<DescribeDbInstancesOutput>().unwrap();
        assert_eq!(o.db_instances()[0].db_instance_status(), Some("deleting"));
        let group = call("DeleteDBSubnetGroup", &["dbsg"]);
        assert_eq!(
            l.refusal(&group, during).unwrap().code,
            "InvalidDBSubnetGroupStateFault"
        );
        assert_eq!(
            l.refusal(&call("DeleteSecurityGroup", &["sg-db"]), during)
                .unwrap()
                .code,
            "DependencyViolation"
        );
        let after = t0 + ms(390);
        assert!(l.instead_of(&describe, &not_found, after).is_none());
        assert_eq!(l.refusal(&group, after), None);
        // Another read error is not rewritten.
        let other = OperationError::erase(DescribeDBInstancesError::generic(
            aws_smithy_types::error::ErrorMetadata::builder()
                .code("InternalFailure")
                .build(),
        ));
        assert!(l.instead_of(&describe, &other, during).is_none());
    }

    #[test]
    fn a_deleted_lambdas_interfaces_linger_until_detached_and_then_deleted() {
        use aws_sdk_ec2::operation::describe_network_interfaces::DescribeNetworkInterfacesOutput;
        use aws_sdk_lambda::operation::delete_function::DeleteFunctionOutput;
        use aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput;
        use aws_sdk_lambda::types::VpcConfigResponse;
        let l = Latency::new(SCALE);
        let t0 = Instant::now();
        let mut cfg = Output::erase(
            GetFunctionConfigurationOutput::builder()
                .function_name("pi-fn")
                .vpc_config(
                    VpcConfigResponse::builder()
                        .subnet_ids("subnet-a")
                        .subnet_ids("subnet-b")
                        .security_group_ids("sg-lambda")
                        .build(),
                )
                .build(),
        );
        l.answered(&call("GetFunctionConfiguration", &[]), &mut cfg, t0);
        let mut deleted = Output::erase(DeleteFunctionOutput::builder().build());
        l.answered(&call("DeleteFunction", &["pi-fn"]), &mut deleted, t0);
        let mut listing = call("DescribeNetworkInterfaces", &[]);
        listing
            .filters
            .insert("description".into(), vec!["AWS Lambda VPC ENI*".into()]);
        listing
            .filters
            .insert("subnet-id".into(), vec!["subnet-a".into(), "subnet-b".into()]);
        let list = |at| {
            let mut o = Output::erase(DescribeNetworkInterfacesOutput::builder().build());
            l.answered(&listing, &mut o, at);
            let o = o.downcast::<DescribeNetworkInterfacesOutput>().unwrap();
            o.network_interfaces()
                .iter()
                .map(|n| {
                    (
                        n.network_interface_id().unwrap().to_string(),
                        n.status().unwrap().as_str().to_string(),
                    )
                })
                .collect::<Vec<_>>()
        };
        // Detached 240 s (model) after the delete.
        let in_use = list(t0 + ms(239));
        assert_eq!(in_use.len(), 2);
        assert!(in_use.iter().all(|(_, s)| s == "in-use"), "{in_use:?}");
        let sg = call("DeleteSecurityGroup", &["sg-lambda"]);
        assert_eq!(l.refusal(&sg, t0 + ms(239)).unwrap().code, "DependencyViolation");
        let detached = list(t0 + ms(240));
        assert!(detached.iter().all(|(_, s)| s == "available"), "{detached:?}");
        // Still there until deleted: the subnet and group stay held.
        assert!(l.refusal(&call("DeleteSubnet", &["subnet-a"]), t0 + ms(300)).is_some());
        let gone = OperationError::erase(
            aws_sdk_ec2::operation::delete_network_interface::DeleteNetworkInterfaceError::generic(
                aws_smithy_types::error::ErrorMetadata::builder()
                    .code("InvalidNetworkInterfaceID.NotFound")
                    .build(),
            ),
        );
        for (id, _) in &detached {
            let delete = call("DeleteNetworkInterface", &[id]);
            assert!(l.instead_of(&delete, &gone, t0 + ms(300)).is_some(), "{id}");
        }
        assert!(list(t0 + ms(301)).is_empty());
        assert_eq!(l.refusal(&sg, t0 + ms(301)), None);
        assert_eq!(l.refusal(&call("DeleteSubnet", &["subnet-a"]), t0 + ms(301)), None);
        // A listing by another filter does not see made-up interfaces it cannot match.
        let mut other = call("DescribeNetworkInterfaces", &[]);
        other
            .filters
            .insert("attachment.instance-id".into(), vec!["i-1".into()]);
        let mut o = Output::erase(DescribeNetworkInterfacesOutput::builder().build());
        l.answered(&other, &mut o, t0 + ms(10));
        assert!(
            o.downcast::<DescribeNetworkInterfacesOutput>()
                .unwrap()
                .network_interfaces()
                .is_empty()
        );
    }

    #[test]
    fn a_new_groups_targets_are_healthy_once_booted_and_after_the_endpoint_plus_one_check() {
        use aws_sdk_autoscaling::operation::create_auto_scaling_group::CreateAutoScalingGroupOutput;
        use aws_sdk_elasticloadbalancingv2::operation::describe_target_health::DescribeTargetHealthOutput;
        use aws_sdk_elasticloadbalancingv2::types::{
            TargetDescription, TargetHealth, TargetHealthDescription, TargetHealthStateEnum,
        };
        use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
        let l = Latency::new(SCALE);
        let t0 = Instant::now();
        let mut created = Output::erase(CreateAutoScalingGroupOutput::builder().build());
        l.answered(&call("CreateAutoScalingGroup", &["pi-asg", "arn:tg"]), &mut created, t0);
        let health = |at| {
            let mut o = Output::erase(
                DescribeTargetHealthOutput::builder()
                    .target_health_descriptions(
                        TargetHealthDescription::builder()
                            .target(TargetDescription::builder().id("i-1").build())
                            .target_health(TargetHealth::builder().state(TargetHealthStateEnum::Healthy).build())
                            .build(),
                    )
                    .build(),
            );
            l.answered(&call("DescribeTargetHealth", &["arn:tg"]), &mut o, at);
            let o = o.downcast::<DescribeTargetHealthOutput>().unwrap();
            o.target_health_descriptions()[0]
                .target_health()
                .unwrap()
                .state()
                .unwrap()
                .clone()
        };
        // In service 90 s + booted 180 s + one check 8 s, endpoint published at 500 s.
        let mut put = Output::erase(PutParameterOutput::builder().build());
        l.answered(&call("PutParameter", &["/pi/db-endpoint"]), &mut put, t0 + ms(500));
        assert_eq!(health(t0 + ms(507)), TargetHealthStateEnum::Initial);
        assert_eq!(health(t0 + ms(508)), TargetHealthStateEnum::Healthy);
    }

    #[test]
    fn a_deleted_mount_target_holds_its_file_system() {
        use aws_sdk_efs::operation::create_mount_target::CreateMountTargetOutput;
        use aws_sdk_efs::operation::delete_mount_target::DeleteMountTargetOutput;
        let l = Latency::new(SCALE);
        let t0 = Instant::now();
        let mut created = Output::erase(
            CreateMountTargetOutput::builder()
                .mount_target_id("fsmt-1")
                .file_system_id("fs-1")
                .subnet_id("subnet-a")
                .life_cycle_state(LifeCycleState::Available)
                .build()
                .unwrap(),
        );
        l.answered(&call("CreateMountTarget", &[]), &mut created, t0);
        let created = created.downcast::<CreateMountTargetOutput>().unwrap();
        assert_eq!(created.life_cycle_state(), &LifeCycleState::Creating);
        let mut deleted = Output::erase(DeleteMountTargetOutput::builder().build());
        l.answered(&call("DeleteMountTarget", &["fsmt-1"]), &mut deleted, t0 + ms(100));
        // Mount target delete: 45 s in the model.
        let fs = call("DeleteFileSystem", &["fs-1"]);
        assert_eq!(l.refusal(&fs, t0 + ms(144)).unwrap().code, "FileSystemInUse");
        assert_eq!(l.refusal(&fs, t0 + ms(145)), None);
    }
}
