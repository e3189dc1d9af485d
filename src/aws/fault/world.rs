//! The fault interceptor's model of what this process has seen created, used and deleted,
//! built only from the calls it saw (their typed inputs and answers), never read from the
//! emulator. The `notfound`, `inuse` and `iam` faults are judged from it: a resource a
//! create just returned, a NAT gateway deleted a moment ago, a group another group's
//! ingress admits, an IAM role or instance profile made seconds ago.
//!
//! It is per process: a `destroy` knows nothing of what the `up` before it created, only
//! what its own calls (the deletes and the reads around them) show.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::client::interceptors::context::{Input, Output};

use super::Fault;

/// How long after a NAT gateway (or a DB instance) is gone AWS still holds what it used:
/// the NAT's network interface in its subnet, its public address in the VPC, its Elastic IP;
/// the DB's hold on its subnet group.
pub const IN_USE_WINDOW: Duration = Duration::from_millis(1500);

/// How long after a role or instance profile is created (or a role added to a profile) a
/// service that is handed it may not see it yet.
pub const IAM_WINDOW: Duration = Duration::from_secs(10);

/// What a call names in its input, read before it is serialized (the hooks after the
/// answer no longer see the input). The meaning of `ids` depends on the operation: see
/// `named_in`.
#[derive(Clone, Debug, Default)]
pub struct Call {
    pub operation: String,
    pub ids: Vec<String>,
}

/// A refusal AWS would answer: the error code and message, and the fault it counts as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub fault: Fault,
    pub code: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(fault: Fault, code: &'static str, message: String) -> Self {
        Self { fault, code, message }
    }
}

#[derive(Debug, Default)]
struct Nat {
    subnet: Option<String>,
    vpc: Option<String>,
    allocation: Option<String>,
    /// Last seen on its way out (DeleteNatGateway answered, `deleting`), or first seen
    /// `deleted` (then `settled`, and the time no longer moves).
    gone_at: Option<Instant>,
    settled: bool,
}

#[derive(Debug, Default)]
struct Db {
    subnet_group: Option<String>,
    /// Last seen after its DeleteDBInstance (the answer, or a read still listing it).
    deleted_at: Option<Instant>,
}

#[derive(Debug, Default)]
pub struct World {
    /// EC2 ids returned by creates in this process.
    created: BTreeSet<String>,
    /// (operation, id) -> NotFound answers given.
    not_found_given: HashMap<(String, String), u32>,
    nats: HashMap<String, Nat>,
    /// Group -> the groups whose ingress admits it (and that were not seen deleted).
    admitted_by: HashMap<String, BTreeSet<String>>,
    dbs: HashMap<String, Db>,
    /// Role / instance profile name or ARN -> when it was created or last given a role.
    iam_made: HashMap<String, Instant>,
    /// Launch template id or name -> the instance profile its data names.
    profile_of_template: HashMap<String, String>,
    /// (operation, role or profile) -> propagation errors given.
    iam_given: HashMap<(String, String), u32>,
}

/// The ids a call names, by operation (what each decision and `learn_call` reads).
pub fn named_in(operation: &str, input: &Input) -> Vec<String> {
    use aws_sdk_ec2::operation as ec2;
    let all = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
    let one = |v: &Option<String>| v.iter().cloned().collect::<Vec<_>>();
    macro_rules! input {
        ($t:ty) => {
            input.downcast_ref::<$t>()
        };
    }
    let found = match operation {
        "DescribeVpcs" => input!(ec2::describe_vpcs::DescribeVpcsInput).map(|i| all(&i.vpc_ids)),
        "DescribeSubnets" => input!(ec2::describe_subnets::DescribeSubnetsInput).map(|i| all(&i.subnet_ids)),
        "DescribeSecurityGroups" => {
            input!(ec2::describe_security_groups::DescribeSecurityGroupsInput).map(|i| all(&i.group_ids))
        }
        "DescribeRouteTables" => {
            input!(ec2::describe_route_tables::DescribeRouteTablesInput).map(|i| all(&i.route_table_ids))
        }
        "DescribeInternetGateways" => {
            input!(ec2::describe_internet_gateways::DescribeInternetGatewaysInput).map(|i| all(&i.internet_gateway_ids))
        }
        "DescribeNatGateways" => {
            input!(ec2::describe_nat_gateways::DescribeNatGatewaysInput).map(|i| all(&i.nat_gateway_ids))
        }
        "DescribeNetworkAcls" => {
            input!(ec2::describe_network_acls::DescribeNetworkAclsInput).map(|i| all(&i.network_acl_ids))
        }
        "DescribeVpcEndpoints" => {
            input!(ec2::describe_vpc_endpoints::DescribeVpcEndpointsInput).map(|i| all(&i.vpc_endpoint_ids))
        }
        "DescribeAddresses" => input!(ec2::describe_addresses::DescribeAddressesInput).map(|i| all(&i.allocation_ids)),
        "DescribeLaunchTemplates" => {
            input!(ec2::describe_launch_templates::DescribeLaunchTemplatesInput).map(|i| all(&i.launch_template_ids))
        }
        "ModifyVpcAttribute" => input!(ec2::modify_vpc_attribute::ModifyVpcAttributeInput).map(|i| one(&i.vpc_id)),
        // [gateway, VPC] for both.
        "AttachInternetGateway" => input!(ec2::attach_internet_gateway::AttachInternetGatewayInput)
            .map(|i| [one(&i.internet_gateway_id), one(&i.vpc_id)].concat()),
        "DetachInternetGateway" => input!(ec2::detach_internet_gateway::DetachInternetGatewayInput)
            .map(|i| [one(&i.internet_gateway_id), one(&i.vpc_id)].concat()),
        "DeleteSubnet" => input!(ec2::delete_subnet::DeleteSubnetInput).map(|i| one(&i.subnet_id)),
        "ReleaseAddress" => input!(ec2::release_address::ReleaseAddressInput).map(|i| one(&i.allocation_id)),
        "DeleteSecurityGroup" => input!(ec2::delete_security_group::DeleteSecurityGroupInput).map(|i| one(&i.group_id)),
        // [group, the groups its new rules admit...]
        "AuthorizeSecurityGroupIngress" => {
            input!(ec2::authorize_security_group_ingress::AuthorizeSecurityGroupIngressInput)
                .map(|i| [one(&i.group_id), admitted(i.ip_permissions.as_deref())].concat())
        }
        "RevokeSecurityGroupIngress" => input!(ec2::revoke_security_group_ingress::RevokeSecurityGroupIngressInput)
            .map(|i| [one(&i.group_id), admitted(i.ip_permissions.as_deref())].concat()),
        "DeleteDBSubnetGroup" => input!(aws_sdk_rds::operation::delete_db_subnet_group::DeleteDbSubnetGroupInput)
            .map(|i| one(&i.db_subnet_group_name)),
        "DescribeDBInstances" => input!(aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesInput)
            .map(|i| one(&i.db_instance_identifier)),
        // [profile, role]
        "AddRoleToInstanceProfile" => {
            input!(aws_sdk_iam::operation::add_role_to_instance_profile::AddRoleToInstanceProfileInput)
                .map(|i| [one(&i.instance_profile_name), one(&i.role_name)].concat())
        }
        // [the instance profile (ARN or name), the template's name]
        "CreateLaunchTemplate" => input!(ec2::create_launch_template::CreateLaunchTemplateInput).map(|i| {
            let profile = i
                .launch_template_data
                .as_ref()
                .and_then(|d| d.iam_instance_profile.as_ref());
            let profile = profile.and_then(|p| p.arn.clone().or(p.name.clone()));
            [profile.into_iter().collect(), one(&i.launch_template_name)].concat()
        }),
        // [launch template id or name]
        "CreateAutoScalingGroup" => {
            input!(aws_sdk_autoscaling::operation::create_auto_scaling_group::CreateAutoScalingGroupInput).map(|i| {
                let lt = i.launch_template.as_ref().or(i
                    .mixed_instances_policy
                    .as_ref()
                    .and_then(|m| m.launch_template.as_ref())
                    .and_then(|l| l.launch_template_specification.as_ref()));
                lt.and_then(|l| l.launch_template_id.clone().or(l.launch_template_name.clone()))
                    .into_iter()
                    .collect()
            })
        }
        "CreateFunction" => {
            input!(aws_sdk_lambda::operation::create_function::CreateFunctionInput).map(|i| one(&i.role))
        }
        _ => None,
    };
    found.unwrap_or_default()
}

fn admitted(perms: Option<&[aws_sdk_ec2::types::IpPermission]>) -> Vec<String> {
    perms
        .unwrap_or_default()
        .iter()
        .flat_map(|p| p.user_id_group_pairs())
        .filter_map(|g| g.group_id().map(String::from))
        .collect()
}

/// Describe-by-id (and the calls on one new resource) that AWS can answer NotFound right
/// after the create: operation -> (error code, noun of the message).
const NOT_FOUND: &[(&str, &str, &str)] = &[
    ("DescribeVpcs", "InvalidVpcID.NotFound", "vpc ID"),
    ("ModifyVpcAttribute", "InvalidVpcID.NotFound", "vpc ID"),
    ("DescribeSubnets", "InvalidSubnetID.NotFound", "subnet ID"),
    ("DescribeSecurityGroups", "InvalidGroup.NotFound", "security group"),
    ("DescribeRouteTables", "InvalidRouteTableID.NotFound", "routeTable ID"),
    (
        "DescribeInternetGateways",
        "InvalidInternetGatewayID.NotFound",
        "internetGateway ID",
    ),
    (
        "AttachInternetGateway",
        "InvalidInternetGatewayID.NotFound",
        "internetGateway ID",
    ),
    ("DescribeNatGateways", "NatGatewayNotFound", "NAT gateway"),
    ("DescribeNetworkAcls", "InvalidNetworkAclID.NotFound", "networkAcl ID"),
    ("DescribeVpcEndpoints", "InvalidVpcEndpointId.NotFound", "VPC endpoint"),
    ("DescribeAddresses", "InvalidAllocationID.NotFound", "allocation ID"),
    (
        "DescribeLaunchTemplates",
        "InvalidLaunchTemplateId.NotFound",
        "launch template ID",
    ),
];

/// The operations any of the three faults may refuse (each needs its typed error).
pub fn refusable(operation: &str) -> bool {
    NOT_FOUND.iter().any(|(op, ..)| *op == operation)
        || matches!(
            operation,
            "DeleteSubnet"
                | "DetachInternetGateway"
                | "ReleaseAddress"
                | "DeleteSecurityGroup"
                | "DeleteDBSubnetGroup"
                | "CreateLaunchTemplate"
                | "CreateAutoScalingGroup"
                | "CreateFunction"
        )
}

/// `notfound=N`: the first N calls of each operation above that name a resource created in
/// this process answer NotFound.
impl World {
    pub fn not_found(&mut self, call: &Call, times: u32) -> Option<Refusal> {
        let (_, code, noun) = NOT_FOUND.iter().find(|(op, ..)| *op == call.operation)?;
        // AttachInternetGateway names the gateway first; the VPC is older.
        let id = call.ids.iter().find(|id| self.created.contains(*id))?;
        let given = self
            .not_found_given
            .entry((call.operation.clone(), id.clone()))
            .or_default();
        if *given >= times {
            return None;
        }
        *given += 1;
        Some(Refusal::new(
            Fault::NotFound,
            code,
            format!("The {noun} '{id}' does not exist"),
        ))
    }
}

/// `inuse`: deletes AWS refuses while something it knows of still holds the resource.
impl World {
    pub fn in_use(&mut self, call: &Call, now: Instant) -> Option<Refusal> {
        let id = call.ids.first()?;
        match call.operation.as_str() {
            "DeleteSubnet" => self.nat_in_window(now, |n| n.subnet.as_ref() == Some(id)).map(|nat| {
                Refusal::new(
                    Fault::InUse,
                    "DependencyViolation",
                    format!("The subnet '{id}' has dependencies and cannot be deleted. (NAT gateway {nat})"),
                )
            }),
            "DetachInternetGateway" => {
                let vpc = call.ids.get(1)?;
                self.nat_in_window(now, |n| n.vpc.as_ref() == Some(vpc)).map(|_| {
                    Refusal::new(
                        Fault::InUse,
                        "DependencyViolation",
                        format!("Network {vpc} has some mapped public address(es). Please unmap those public address(es) before detaching the gateway."),
                    )
                })
            }
            "ReleaseAddress" => self.nat_in_window(now, |n| n.allocation.as_ref() == Some(id)).map(|_| {
                Refusal::new(
                    Fault::InUse,
                    "InvalidIPAddress.InUse",
                    format!("Address {id} is in use."),
                )
            }),
            "DeleteSecurityGroup" => {
                let by = self.admitted_by.get(id).and_then(|s| s.iter().find(|g| *g != id))?;
                Some(Refusal::new(
                    Fault::InUse,
                    "DependencyViolation",
                    format!("resource {id} has a dependent object (an ingress rule of {by})"),
                ))
            }
            "DeleteDBSubnetGroup" => {
                let (db, _) = self.dbs.iter().find(|(_, d)| {
                    d.subnet_group.as_ref() == Some(id)
                        && d.deleted_at
                            .is_some_and(|t| now.saturating_duration_since(t) < IN_USE_WINDOW)
                })?;
                Some(Refusal::new(
                    Fault::InUse,
                    "InvalidDBSubnetGroupStateFault",
                    format!(
                        "Cannot delete the subnet group '{id}' because at least one database instance: {db} is still using it."
                    ),
                ))
            }
            _ => None,
        }
    }

    /// A NAT gateway matching `of` that went (or is going) less than the window ago.
    fn nat_in_window(&self, now: Instant, of: impl Fn(&Nat) -> bool) -> Option<String> {
        self.nats
            .iter()
            .find(|(_, n)| {
                of(n)
                    && n.gone_at
                        .is_some_and(|t| now.saturating_duration_since(t) < IN_USE_WINDOW)
            })
            .map(|(id, _)| id.clone())
    }
}

/// `iam=N`: the first N uses by each create of a role or instance profile made less than
/// `IAM_WINDOW` ago answer the propagation error AWS gives.
impl World {
    pub fn iam(&mut self, call: &Call, now: Instant, times: u32) -> Option<Refusal> {
        let used = match call.operation.as_str() {
            "CreateLaunchTemplate" | "CreateFunction" => call.ids.first()?.clone(),
            "CreateAutoScalingGroup" => self.profile_of_template.get(call.ids.first()?)?.clone(),
            _ => return None,
        };
        let made = *self.iam_made.get(&used)?;
        if now.saturating_duration_since(made) >= IAM_WINDOW {
            return None;
        }
        let given = self
            .iam_given
            .entry((call.operation.clone(), used.clone()))
            .or_default();
        if *given >= times {
            return None;
        }
        *given += 1;
        let (code, message) = match call.operation.as_str() {
            "CreateFunction" => (
                "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda.".to_string(),
            ),
            "CreateAutoScalingGroup" => (
                "ValidationError",
                format!(
                    "You must use a valid fully-formed launch template. Value ({used}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN"
                ),
            ),
            _ if used.starts_with("arn:") => (
                "InvalidParameterValue",
                format!(
                    "Value ({used}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN"
                ),
            ),
            _ => (
                "InvalidParameterValue",
                format!(
                    "Value ({used}) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name"
                ),
            ),
        };
        Some(Refusal::new(Fault::Iam, code, message))
    }
}

/// Learning: from the inputs of calls that succeeded and from the answers.
impl World {
    /// What a successful call's input tells (its answer is read by `learn_answer`).
    pub fn learn_call(&mut self, call: &Call, now: Instant) {
        let ids = &call.ids;
        match (call.operation.as_str(), ids.split_first()) {
            ("AuthorizeSecurityGroupIngress", Some((group, admits))) => {
                for a in admits {
                    self.admitted_by.entry(a.clone()).or_default().insert(group.clone());
                }
            }
            ("RevokeSecurityGroupIngress", Some((group, admits))) => {
                for a in admits {
                    self.admitted_by.entry(a.clone()).or_default().remove(group);
                }
            }
            ("DeleteSecurityGroup", Some((group, _))) => {
                for by in self.admitted_by.values_mut() {
                    by.remove(group);
                }
            }
            // The profile becomes usable with its role: a fresh start for propagation.
            ("AddRoleToInstanceProfile", Some((profile, _))) => {
                let arns: Vec<String> = self
                    .iam_made
                    .keys()
                    .filter(|k| k.ends_with(&format!(":instance-profile/{profile}")))
                    .cloned()
                    .collect();
                for k in arns.into_iter().chain([profile.clone()]) {
                    self.iam_made.insert(k, now);
                }
            }
            ("CreateLaunchTemplate", Some((profile, rest))) => {
                for name in rest {
                    self.profile_of_template.insert(name.clone(), profile.clone());
                }
            }
            _ => {}
        }
    }

    /// What a successful answer tells: ids created, NAT gateways and DB instances with what
    /// they hold, groups admitted, roles and profiles made.
    pub fn learn_answer(&mut self, call: &Call, output: &Output, now: Instant) {
        self.learn_ec2_creates(output);
        self.learn_nats(output, now);
        self.learn_groups(output);
        self.learn_dbs(output, now);
        self.learn_iam(call, output, now);
    }

    fn learn_ec2_creates(&mut self, output: &Output) {
        use aws_sdk_ec2::operation as ec2;
        let id = if let Some(o) = output.downcast_ref::<ec2::create_vpc::CreateVpcOutput>() {
            o.vpc.as_ref().and_then(|v| v.vpc_id.clone())
        } else if let Some(o) = output.downcast_ref::<ec2::create_subnet::CreateSubnetOutput>() {
            o.subnet.as_ref().and_then(|v| v.subnet_id.clone())
        } else if let Some(o) = output.downcast_ref::<ec2::create_security_group::CreateSecurityGroupOutput>() {
            o.group_id.clone()
        } else if let Some(o) = output.downcast_ref::<ec2::create_route_table::CreateRouteTableOutput>() {
            o.route_table.as_ref().and_then(|v| v.route_table_id.clone())
        } else if let Some(o) = output.downcast_ref::<ec2::create_internet_gateway::CreateInternetGatewayOutput>() {
            o.internet_gateway.as_ref().and_then(|v| v.internet_gateway_id.clone())
        } else if let Some(o) = output.downcast_ref::<ec2::create_nat_gateway::CreateNatGatewayOutput>() {
            o.nat_gateway.as_ref().and_then(|v| v.nat_gateway_id.clone())
        } else if let Some(o) = output.downcast_ref::<ec2::create_network_acl::CreateNetworkAclOutput>() {
            o.network_acl.as_ref().and_then(|v| v.network_acl_id.clone())
        } else if let Some(o) = output.downcast_ref::<ec2::create_vpc_endpoint::CreateVpcEndpointOutput>() {
            o.vpc_endpoint.as_ref().and_then(|v| v.vpc_endpoint_id.clone())
        } else if let Some(o) = output.downcast_ref::<ec2::allocate_address::AllocateAddressOutput>() {
            o.allocation_id.clone()
        } else if let Some(o) = output.downcast_ref::<ec2::create_launch_template::CreateLaunchTemplateOutput>() {
            o.launch_template.as_ref().and_then(|v| v.launch_template_id.clone())
        } else {
            None
        };
        if let Some(id) = id {
            self.created.insert(id);
        }
    }

    fn learn_nats(&mut self, output: &Output, now: Instant) {
        use aws_sdk_ec2::operation as ec2;
        use aws_sdk_ec2::types::NatGatewayState;
        let seen: Vec<&aws_sdk_ec2::types::NatGateway> =
            if let Some(o) = output.downcast_ref::<ec2::create_nat_gateway::CreateNatGatewayOutput>() {
                o.nat_gateway.iter().collect()
            } else if let Some(o) = output.downcast_ref::<ec2::describe_nat_gateways::DescribeNatGatewaysOutput>() {
                o.nat_gateways.iter().flatten().collect()
            } else {
                if let Some(o) = output.downcast_ref::<ec2::delete_nat_gateway::DeleteNatGatewayOutput>()
                    && let Some(id) = &o.nat_gateway_id
                {
                    self.nats.entry(id.clone()).or_default().gone_at = Some(now);
                }
                return;
            };
        for n in seen {
            let Some(id) = &n.nat_gateway_id else { continue };
            let nat = self.nats.entry(id.clone()).or_default();
            nat.subnet = n.subnet_id.clone().or(nat.subnet.take());
            nat.vpc = n.vpc_id.clone().or(nat.vpc.take());
            let allocation = n.nat_gateway_addresses().iter().find_map(|a| a.allocation_id.clone());
            nat.allocation = allocation.or(nat.allocation.take());
            match n.state {
                Some(NatGatewayState::Deleting) if !nat.settled => nat.gone_at = Some(now),
                Some(NatGatewayState::Deleted) if !nat.settled => {
                    nat.gone_at = Some(now);
                    nat.settled = true;
                }
                _ => {}
            }
        }
    }

    fn learn_groups(&mut self, output: &Output) {
        use aws_sdk_ec2::operation::describe_security_groups::DescribeSecurityGroupsOutput;
        let Some(o) = output.downcast_ref::<DescribeSecurityGroupsOutput>() else {
            return;
        };
        for g in o.security_groups.iter().flatten() {
            let Some(id) = &g.group_id else { continue };
            for a in admitted(g.ip_permissions.as_deref()) {
                self.admitted_by.entry(a).or_default().insert(id.clone());
            }
        }
    }

    fn learn_dbs(&mut self, output: &Output, now: Instant) {
        use aws_sdk_rds::operation as rds;
        let (seen, deleting): (Vec<&aws_sdk_rds::types::DbInstance>, bool) =
            if let Some(o) = output.downcast_ref::<rds::delete_db_instance::DeleteDbInstanceOutput>() {
                (o.db_instance.iter().collect(), true)
            } else if let Some(o) = output.downcast_ref::<rds::describe_db_instances::DescribeDbInstancesOutput>() {
                (o.db_instances.iter().flatten().collect(), false)
            } else if let Some(o) = output.downcast_ref::<rds::create_db_instance::CreateDbInstanceOutput>() {
                (o.db_instance.iter().collect(), false)
            } else {
                return;
            };
        for d in seen {
            let Some(id) = &d.db_instance_identifier else { continue };
            let db = self.dbs.entry(id.clone()).or_default();
            let group = d.db_subnet_group.as_ref().and_then(|g| g.db_subnet_group_name.clone());
            db.subnet_group = group.or(db.subnet_group.take());
            if deleting || db.deleted_at.is_some() {
                db.deleted_at = Some(now);
            }
        }
    }

    fn learn_iam(&mut self, call: &Call, output: &Output, now: Instant) {
        use aws_sdk_iam::operation as iam;
        let mut made = vec![];
        if let Some(o) = output.downcast_ref::<iam::create_role::CreateRoleOutput>()
            && let Some(r) = &o.role
        {
            made.extend([r.role_name.clone(), r.arn.clone()]);
        } else if let Some(o) = output.downcast_ref::<iam::create_instance_profile::CreateInstanceProfileOutput>()
            && let Some(p) = &o.instance_profile
        {
            made.extend([p.instance_profile_name.clone(), p.arn.clone()]);
        } else if let Some(o) =
            output.downcast_ref::<aws_sdk_ec2::operation::create_launch_template::CreateLaunchTemplateOutput>()
            && let (Some(lt), Some(profile)) = (&o.launch_template, call.ids.first())
            && let Some(id) = &lt.launch_template_id
        {
            self.profile_of_template.insert(id.clone(), profile.clone());
        }
        for name in made {
            self.iam_made.insert(name, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(operation: &str, ids: &[&str]) -> Call {
        Call {
            operation: operation.into(),
            ids: ids.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn create_vpc(w: &mut World, id: &str) {
        use aws_sdk_ec2::operation::create_vpc::CreateVpcOutput;
        let out = Output::erase(
            CreateVpcOutput::builder()
                .vpc(aws_sdk_ec2::types::Vpc::builder().vpc_id(id).build())
                .build(),
        );
        w.learn_answer(&call("CreateVpc", &[]), &out, Instant::now());
    }

    #[test]
    fn a_new_resource_is_not_found_once_per_operation_and_an_old_one_never() {
        let mut w = World::default();
        create_vpc(&mut w, "vpc-new");
        let describe = call("DescribeVpcs", &["vpc-new"]);
        let r = w.not_found(&describe, 1).unwrap();
        assert_eq!((r.fault, r.code), (Fault::NotFound, "InvalidVpcID.NotFound"));
        assert!(r.message.contains("vpc-new"), "{}", r.message);
        assert_eq!(w.not_found(&describe, 1), None);
        assert!(w.not_found(&call("ModifyVpcAttribute", &["vpc-new"]), 1).is_some());
        assert_eq!(w.not_found(&call("DescribeVpcs", &["vpc-old"]), 1), None);
        assert_eq!(w.not_found(&call("DeleteVpc", &["vpc-new"]), 1), None);
    }

    fn nat(w: &mut World, state: aws_sdk_ec2::types::NatGatewayState, at: Instant) {
        use aws_sdk_ec2::operation::describe_nat_gateways::DescribeNatGatewaysOutput;
        use aws_sdk_ec2::types::{NatGateway, NatGatewayAddress};
        let n = NatGateway::builder()
            .nat_gateway_id("nat-1")
            .subnet_id("subnet-pub")
            .vpc_id("vpc-1")
            .nat_gateway_addresses(NatGatewayAddress::builder().allocation_id("eipalloc-1").build())
            .state(state)
            .build();
        let out = Output::erase(DescribeNatGatewaysOutput::builder().nat_gateways(n).build());
        w.learn_answer(&call("DescribeNatGateways", &["nat-1"]), &out, at);
    }

    #[test]
    fn what_a_deleted_nat_held_is_refused_for_the_window_after_it_is_seen_deleted() {
        use aws_sdk_ec2::types::NatGatewayState::{Available, Deleted, Deleting};
        let mut w = World::default();
        let t0 = Instant::now();
        nat(&mut w, Available, t0);
        let subnet = call("DeleteSubnet", &["subnet-pub"]);
        let detach = call("DetachInternetGateway", &["igw-1", "vpc-1"]);
        let release = call("ReleaseAddress", &["eipalloc-1"]);
        // Alive and not being deleted: not this fault's business (the destroy order is).
        assert_eq!(w.in_use(&subnet, t0), None);
        nat(&mut w, Deleting, t0 + Duration::from_secs(1));
        nat(&mut w, Deleted, t0 + Duration::from_secs(3));
        // Later reads of `deleted` do not move the moment it went.
        nat(&mut w, Deleted, t0 + Duration::from_secs(4));
        let soon = t0 + Duration::from_millis(4000);
        assert_eq!(w.in_use(&subnet, soon).unwrap().code, "DependencyViolation");
        assert!(
            w.in_use(&detach, soon)
                .unwrap()
                .message
                .contains("mapped public address")
        );
        assert_eq!(w.in_use(&release, soon).unwrap().code, "InvalidIPAddress.InUse");
        assert_eq!(w.in_use(&call("DeleteSubnet", &["subnet-other"]), soon), None);
        let later = t0 + Duration::from_millis(4600);
        assert_eq!(w.in_use(&subnet, later), None);
        assert_eq!(w.in_use(&release, later), None);
    }

    #[test]
    fn a_group_is_refused_while_a_group_whose_ingress_admits_it_exists() {
        let mut w = World::default();
        let now = Instant::now();
        w.learn_call(&call("AuthorizeSecurityGroupIngress", &["sg-app", "sg-alb"]), now);
        let delete_alb = call("DeleteSecurityGroup", &["sg-alb"]);
        assert_eq!(w.in_use(&delete_alb, now).unwrap().code, "DependencyViolation");
        assert_eq!(w.in_use(&call("DeleteSecurityGroup", &["sg-app"]), now), None);
        w.learn_call(&call("DeleteSecurityGroup", &["sg-app"]), now);
        assert_eq!(w.in_use(&delete_alb, now), None);
    }

    #[test]
    fn a_subnet_group_is_refused_just_after_its_db_was_deleted() {
        use aws_sdk_rds::operation::delete_db_instance::DeleteDbInstanceOutput;
        use aws_sdk_rds::types::{DbInstance, DbSubnetGroup};
        let mut w = World::default();
        let t0 = Instant::now();
        let db = DbInstance::builder()
            .db_instance_identifier("db-1")
            .db_subnet_group(DbSubnetGroup::builder().db_subnet_group_name("dbsg").build())
            .build();
        let delete = call("DeleteDBSubnetGroup", &["dbsg"]);
        assert_eq!(w.in_use(&delete, t0), None);
        let out = Output::erase(DeleteDbInstanceOutput::builder().db_instance(db).build());
        w.learn_answer(&call("DeleteDBInstance", &[]), &out, t0);
        assert_eq!(
            w.in_use(&delete, t0 + Duration::from_millis(200)).unwrap().code,
            "InvalidDBSubnetGroupStateFault"
        );
        assert_eq!(w.in_use(&delete, t0 + Duration::from_secs(2)), None);
    }

    #[test]
    fn a_new_profile_or_role_is_refused_once_per_create_within_the_window() {
        use aws_sdk_iam::operation::create_instance_profile::CreateInstanceProfileOutput;
        use aws_sdk_iam::operation::create_role::CreateRoleOutput;
        use aws_sdk_iam::types::{InstanceProfile, Role};
        let mut w = World::default();
        let t0 = Instant::now();
        let date = aws_smithy_types::DateTime::from_secs(0);
        let profile = InstanceProfile::builder()
            .instance_profile_name("p")
            .arn("arn:aws:iam::1:instance-profile/p")
            .path("/")
            .instance_profile_id("id")
            .create_date(date)
            .set_roles(Some(vec![]))
            .build()
            .unwrap();
        let out = Output::erase(CreateInstanceProfileOutput::builder().instance_profile(profile).build());
        w.learn_answer(&call("CreateInstanceProfile", &[]), &out, t0);
        let role = Role::builder()
            .role_name("r")
            .arn("arn:aws:iam::1:role/r")
            .path("/")
            .role_id("id")
            .create_date(date)
            .build()
            .unwrap();
        let out = Output::erase(CreateRoleOutput::builder().role(role).build());
        w.learn_answer(&call("CreateRole", &[]), &out, t0);

        let lt = call(
            "CreateLaunchTemplate",
            &["arn:aws:iam::1:instance-profile/p", "lt-name"],
        );
        let r = w.iam(&lt, t0, 1).unwrap();
        assert_eq!((r.fault, r.code), (Fault::Iam, "InvalidParameterValue"));
        assert_eq!(
            crate::aws::error::class_of(r.code, &r.message),
            crate::core::resource::ErrorClass::IamPropagation
        );
        assert_eq!(w.iam(&lt, t0, 1), None, "once");
        w.learn_call(&lt, t0);
        let asg = call("CreateAutoScalingGroup", &["lt-name"]);
        let r = w.iam(&asg, t0 + Duration::from_secs(1), 1).unwrap();
        assert_eq!(
            crate::aws::error::class_of(r.code, &r.message),
            crate::core::resource::ErrorClass::IamPropagation
        );
        let f = call("CreateFunction", &["arn:aws:iam::1:role/r"]);
        assert_eq!(w.iam(&f, t0 + IAM_WINDOW, 1), None, "past the window");
        let r = w.iam(&f, t0, 1).unwrap();
        assert_eq!(
            crate::aws::error::class_of(r.code, &r.message),
            crate::core::resource::ErrorClass::IamPropagation
        );
    }
}
