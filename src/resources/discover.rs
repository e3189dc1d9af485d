//! Finds a deployment's resources from AWS alone, without the state file: `status` reports
//! those the state does not list (leaks), and `destroy` can remove orphans with it.
//!
//! Per-service Describe calls, because no single API sees everything (the Resource Groups
//! Tagging API omits EIPs, NACLs, endpoints, launch templates, IAM and S3 buckets whose tags
//! were dropped). EC2 and EFS are listed by the `pi-deploy:deployment` tag, and the tags are
//! checked here as well (some implementations ignore tag filters, e.g. for NAT gateways).
//! Resources with a name derived from the deployment (IAM, the bucket, the database, the
//! secret, the log group, the load balancer...) are looked up by that name: a resource there
//! tagged for another deployment is not ours; one without our tags is reported under its
//! well-known key, since only this deployment derives that name.
//!
//! Read-only: Describe/Get/List/Head calls only.

use super::{Aws, ec2};
use crate::aws::{err, tags};
use crate::core::names;
use crate::core::resource::ResourceError;
use crate::core::spec::Kind;

/// One resource found in AWS: its `pi-deploy:key` (or the well-known key of its derived
/// name), its kind, and the id the kind records as `id`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Found {
    pub key: String,
    pub kind: Kind,
    pub id: String,
    /// It carries this deployment's tag. False for a resource found by its derived name
    /// alone (untagged, or tags not read): `status` reports it, `destroy` leaves it to the
    /// kinds' own finds, which decide whether such a resource is ours.
    pub tagged: bool,
    /// Ids of what it sits in or holds (its VPC, subnets, groups, file system, addresses,
    /// launch template): AWS refuses to delete those while it exists, so `destroy` deletes
    /// it first.
    pub within: Vec<String>,
    /// Outputs besides `id` that its kind's delete reads (a VPC Lambda's subnets and group,
    /// whose network interfaces the delete removes).
    pub attrs: Vec<(String, String)>,
}

impl Found {
    fn new(key: String, kind: Kind, id: &str) -> Self {
        Found {
            key,
            kind,
            id: id.to_string(),
            tagged: true,
            within: Vec::new(),
            attrs: Vec::new(),
        }
    }

    fn within<'a>(mut self, ids: impl IntoIterator<Item = &'a str>) -> Self {
        self.within
            .extend(ids.into_iter().filter(|id| !id.is_empty()).map(String::from));
        self
    }

    fn tagged(mut self, tagged: bool) -> Self {
        self.tagged = tagged;
        self
    }
}

/// Reported for a resource tagged with the deployment but without a key tag.
pub const UNKEYED: &str = "?";

type Tags = Vec<(String, String)>;

fn tag_list<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Tags {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn tag<'a>(tags: &'a Tags, name: &str) -> Option<&'a str> {
    tags.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The key of a resource listed by the deployment tag: `None` unless the tags say it is
/// this deployment's.
pub fn tagged_key(tags: &Tags, deployment: &str) -> Option<String> {
    (tag(tags, tags::DEPLOYMENT_TAG) == Some(deployment))
        .then(|| tag(tags, tags::KEY_TAG).unwrap_or(UNKEYED).to_string())
}

/// Whether the tags name this deployment.
fn is_tagged(tags: &Tags, deployment: &str) -> bool {
    tag(tags, tags::DEPLOYMENT_TAG) == Some(deployment)
}

/// The key of a resource found by its derived name: its key tag when it carries this
/// deployment's tags, the well-known key when it carries none, `None` when it is tagged for
/// another deployment.
pub fn named_key(tags: &Tags, deployment: &str, well_known: &str) -> Option<String> {
    match tag(tags, tags::DEPLOYMENT_TAG) {
        Some(d) if d == deployment => Some(tag(tags, tags::KEY_TAG).unwrap_or(well_known).to_string()),
        Some(_) => None,
        None => Some(well_known.to_string()),
    }
}

fn ec2_tags(t: &[aws_sdk_ec2::types::Tag]) -> Tags {
    tag_list(
        t.iter()
            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
    )
}

/// Every resource of the deployment that AWS knows, sorted by key.
/// The kinds a resource this scan finds can sit `within` (a subnet's VPC, a NAT gateway's
/// subnet and address, an endpoint's or the Lambda's subnets and security groups, an access
/// point's file system, the group's subnets and launch template). A destroy that starts
/// before the scan has answered holds back every node of these kinds
/// (`core::orphans::held_for_search`); a `within` of another kind must be added here.
pub const EXTRA_CONTAINERS: &[Kind] = &[
    Kind::Vpc,
    Kind::Subnet,
    Kind::ElasticIp,
    Kind::SecurityGroup,
    Kind::FileSystem,
    Kind::LaunchTemplate,
];

pub async fn tagged(aws: &Aws) -> Result<Vec<Found>, ResourceError> {
    // The three groups of listings at once: they are independent reads.
    let (mut found, mut efs, mut named) = (Vec::new(), Vec::new(), Vec::new());
    futures::try_join!(
        ec2_resources(aws, &mut found),
        efs_resources(aws, &mut efs),
        named_resources(aws, &mut named)
    )?;
    found.append(&mut efs);
    found.append(&mut named);
    found.sort();
    Ok(found)
}

async fn ec2_resources(aws: &Aws, out: &mut Vec<Found>) -> Result<(), ResourceError> {
    let dep = aws.env.deployment.as_str();
    let ec2 = &aws.clients.ec2;
    let f = || tags::ec2_deployment_filter(dep);
    let mut push = |kind: Kind, t: &[aws_sdk_ec2::types::Tag], id: Option<&str>, within: Vec<&str>| {
        if let (Some(key), Some(id)) = (tagged_key(&ec2_tags(t), dep), id) {
            out.push(Found::new(key, kind, id).within(within));
        }
    };
    let what = "listing the deployment's resources by tag";
    // Every listing at once: one round trip's wait instead of ten.
    let (
        vpcs,
        subnets,
        internet_gateways,
        addresses,
        nat_gateways,
        route_tables,
        network_acls,
        security_groups,
        vpc_endpoints,
        launch_templates,
        flow_logs,
    ) = futures::try_join!(
        async { ec2.describe_vpcs().filters(f()).send().await.map_err(err(what)) },
        async { ec2.describe_subnets().filters(f()).send().await.map_err(err(what)) },
        async {
            ec2.describe_internet_gateways()
                .filters(f())
                .send()
                .await
                .map_err(err(what))
        },
        async { ec2.describe_addresses().filters(f()).send().await.map_err(err(what)) },
        async { ec2.describe_nat_gateways().filter(f()).send().await.map_err(err(what)) },
        async { ec2.describe_route_tables().filters(f()).send().await.map_err(err(what)) },
        async { ec2.describe_network_acls().filters(f()).send().await.map_err(err(what)) },
        async {
            ec2.describe_security_groups()
                .filters(f())
                .send()
                .await
                .map_err(err(what))
        },
        async {
            ec2.describe_vpc_endpoints()
                .filters(f())
                .send()
                .await
                .map_err(err(what))
        },
        async {
            ec2.describe_launch_templates()
                .filters(f())
                .send()
                .await
                .map_err(err(what))
        },
        async { ec2.describe_flow_logs().filter(f()).send().await.map_err(err(what)) }
    )?;
    for v in vpcs.vpcs() {
        push(Kind::Vpc, v.tags(), v.vpc_id(), vec![]);
    }
    for s in subnets.subnets() {
        push(Kind::Subnet, s.tags(), s.subnet_id(), s.vpc_id().into_iter().collect());
    }
    for g in internet_gateways.internet_gateways() {
        let attached = g.attachments().iter().filter_map(|a| a.vpc_id()).collect();
        push(Kind::InternetGateway, g.tags(), g.internet_gateway_id(), attached);
    }
    for a in addresses.addresses() {
        push(Kind::ElasticIp, a.tags(), a.allocation_id(), vec![]);
    }
    // Deleted NAT gateways stay listed for a while, as on AWS.
    for n in nat_gateways.nat_gateways() {
        let gone = matches!(n.state().map(|s| s.as_str()), Some("deleted" | "deleting" | "failed"));
        if !gone {
            // Its address is released only once the gateway is deleted.
            let mut within: Vec<&str> = [n.subnet_id(), n.vpc_id()].into_iter().flatten().collect();
            within.extend(n.nat_gateway_addresses().iter().filter_map(|a| a.allocation_id()));
            push(Kind::NatGateway, n.tags(), n.nat_gateway_id(), within);
        }
    }
    for r in route_tables.route_tables() {
        push(
            Kind::RouteTable,
            r.tags(),
            r.route_table_id(),
            r.vpc_id().into_iter().collect(),
        );
    }
    for a in network_acls.network_acls() {
        push(
            Kind::NetworkAcl,
            a.tags(),
            a.network_acl_id(),
            a.vpc_id().into_iter().collect(),
        );
    }
    for g in security_groups.security_groups() {
        push(
            Kind::SecurityGroup,
            g.tags(),
            g.group_id(),
            g.vpc_id().into_iter().collect(),
        );
    }
    for e in vpc_endpoints.vpc_endpoints() {
        let gone = matches!(
            e.state().map(|s| s.as_str().to_ascii_lowercase()).as_deref(),
            Some("deleted" | "deleting")
        );
        if !gone {
            let mut within: Vec<&str> = e.vpc_id().into_iter().collect();
            within.extend(e.subnet_ids().iter().map(String::as_str));
            within.extend(e.groups().iter().filter_map(|g| g.group_id()));
            push(Kind::VpcEndpoint, e.tags(), e.vpc_endpoint_id(), within);
        }
    }
    for lt in launch_templates.launch_templates() {
        push(Kind::LaunchTemplate, lt.tags(), lt.launch_template_id(), vec![]);
    }
    for fl in flow_logs.flow_logs() {
        let active = fl.flow_log_status().is_none_or(|s| s.eq_ignore_ascii_case("ACTIVE"));
        if active {
            push(
                Kind::FlowLog,
                fl.tags(),
                fl.flow_log_id(),
                fl.resource_id().into_iter().collect(),
            );
        }
    }
    Ok(())
}

fn efs_tags(t: &[aws_sdk_efs::types::Tag]) -> Tags {
    tag_list(t.iter().map(|t| (t.key(), t.value())))
}

/// EFS has no tag filter: list the file systems, keep ours, then their access points.
async fn efs_resources(aws: &Aws, out: &mut Vec<Found>) -> Result<(), ResourceError> {
    let dep = aws.env.deployment.as_str();
    let efs = &aws.clients.efs;
    let systems = super::file_system::list_all(aws).await?;
    for fs in systems {
        let gone = matches!(fs.life_cycle_state().as_str(), "deleted" | "deleting");
        let Some(key) = tagged_key(&efs_tags(fs.tags()), dep) else {
            continue;
        };
        if gone {
            continue;
        }
        let id = fs.file_system_id().to_string();
        let points: Vec<_> = efs
            .describe_access_points()
            .file_system_id(&id)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(err("listing EFS access points"))?;
        for ap in &points {
            let gone = matches!(ap.life_cycle_state().map(|s| s.as_str()), Some("deleted" | "deleting"));
            if let (false, Some(key), Some(ap_id)) = (gone, tagged_key(&efs_tags(ap.tags()), dep), ap.access_point_id())
            {
                out.push(Found::new(key, Kind::AccessPoint, ap_id).within([id.as_str()]));
            }
        }
        out.push(Found::new(key, Kind::FileSystem, &id));
    }
    Ok(())
}

/// NotFound (in any service's spelling) is `None`.
fn absent<T>(r: Result<T, ResourceError>) -> Result<Option<T>, ResourceError> {
    ec2::not_found_is_none(r)
}

async fn named_resources(aws: &Aws, out: &mut Vec<Found>) -> Result<(), ResourceError> {
    let dep = aws.env.deployment.clone();
    let mut push = |found: Option<Found>| out.extend(found);
    let roles = [
        ("lambda-role", names::lambda_role(&dep)),
        ("ec2-role", names::ec2_role(&dep)),
    ];
    let profile = names::instance_profile(&dep);
    let bucket = names::bucket(&dep, &aws.env.account_id, &aws.env.region);
    let logs_bucket = names::logs_bucket(&dep, &aws.env.account_id, &aws.env.region);
    let db_log_group = names::db_log_group(&dep, "error");
    let db = names::db_identifier(&dep);
    let group = names::db_subnet_group(&dep);
    let secret = names::licence_secret(&dep);
    let log_group = names::lambda_log_group(&dep);
    let function = names::lambda_function(&dep);
    let endpoint = names::db_endpoint_parameter(&dep);
    let alb = names::alb(&dep);
    let asg = names::asg(&dep);
    let get_role = |name: &str| {
        let call = aws.clients.iam.get_role().role_name(name);
        async move { absent(call.send().await.map_err(err("looking up an IAM role"))) }
    };
    let c = &aws.clients;
    // Every lookup at once: they are independent reads (one round trip's wait, not 14).
    let (
        got_roles_0,
        got_roles_1,
        got_profile,
        got_bucket,
        got_logs_bucket,
        got_db,
        got_group,
        got_params,
        got_secret,
        got_log_groups,
        got_db_log_groups,
        got_function,
        got_endpoint,
        got_tg,
        got_alb,
        got_asg,
    ) = futures::join!(
        get_role(&roles[0].1),
        get_role(&roles[1].1),
        async {
            absent(
                c.iam
                    .get_instance_profile()
                    .instance_profile_name(&profile)
                    .send()
                    .await
                    .map_err(err("looking up the instance profile")),
            )
        },
        async {
            c.s3.head_bucket()
                .bucket(&bucket)
                .send()
                .await
                .map_err(err("looking up the bucket"))
        },
        async {
            c.s3.head_bucket()
                .bucket(&logs_bucket)
                .send()
                .await
                .map_err(err("looking up the logs bucket"))
        },
        async {
            // Every instance, not only `<deployment>-db`: a restore's (`<deployment>-db-r<time>`)
            // is found by its tags when the state that named it is lost. RDS has no tag filter.
            c.rds
                .describe_db_instances()
                .into_paginator()
                .items()
                .send()
                .try_collect()
                .await
                .map_err(err("listing the DB instances"))
        },
        async {
            absent(
                c.rds
                    .describe_db_subnet_groups()
                    .db_subnet_group_name(&group)
                    .send()
                    .await
                    .map_err(err("looking up the DB subnet group")),
            )
        },
        // Every group of the account (they cannot be tagged-filtered), kept by name: the
        // deployment's group of each family (a major upgrade's new group, the one it
        // replaces when a run stopped between the two), not only the first name.
        parameter_group_names(aws),
        async {
            absent(
                c.secrets
                    .describe_secret()
                    .secret_id(&secret)
                    .send()
                    .await
                    .map_err(err("looking up the licence secret")),
            )
        },
        async {
            c.logs
                .describe_log_groups()
                .log_group_name_prefix(&log_group)
                .send()
                .await
                .map_err(err("looking up the log group"))
        },
        async {
            c.logs
                .describe_log_groups()
                .log_group_name_prefix(&db_log_group)
                .send()
                .await
                .map_err(err("looking up the DB log group"))
        },
        async {
            absent(
                c.lambda
                    .get_function()
                    .function_name(&function)
                    .send()
                    .await
                    .map_err(err("looking up the Lambda function")),
            )
        },
        async {
            absent(
                c.ssm
                    .get_parameter()
                    .name(&endpoint)
                    .send()
                    .await
                    .map_err(err("looking up the endpoint parameter")),
            )
        },
        target_groups_named(aws, &dep),
        async {
            absent(
                c.elb
                    .describe_load_balancers()
                    .names(&alb)
                    .send()
                    .await
                    .map_err(err("looking up the load balancer")),
            )
        },
        async {
            c.autoscaling
                .describe_auto_scaling_groups()
                .auto_scaling_group_names(&asg)
                .send()
                .await
                .map_err(err("looking up the Auto Scaling group"))
        },
    );

    for ((well_known, name), got) in roles.iter().zip([got_roles_0, got_roles_1]) {
        if let Some(role) = got?.as_ref().and_then(|o| o.role()) {
            let t = tag_list(role.tags().iter().map(|t| (t.key(), t.value())));
            push(by_name(Kind::IamRole, &t, &dep, well_known, name));
        }
    }
    if let Some(p) = got_profile?.as_ref().and_then(|o| o.instance_profile()) {
        let t = tag_list(p.tags().iter().map(|t| (t.key(), t.value())));
        push(by_name(Kind::InstanceProfile, &t, &dep, "instance-profile", &profile));
    }

    for (key, name, got) in [
        ("bucket", &bucket, got_bucket),
        ("logs-bucket", &logs_bucket, got_logs_bucket),
    ] {
        match got {
            Ok(_) => push(Some(untagged(Kind::Bucket, key, name))),
            // 403: the name belongs to another account, so it is not ours either.
            Err(e) if e.is(crate::core::resource::ErrorClass::NotFound) || e.message.contains("403") => {}
            Err(e) => return Err(e),
        }
    }

    for i in got_db? {
        let t = tag_list(
            i.tag_list()
                .iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
        );
        push(db_instance_found(
            i.db_instance_identifier().unwrap_or_default(),
            &t,
            &dep,
            &db,
        ));
    }
    let got = got_group?;
    if got
        .iter()
        .flat_map(|o| o.db_subnet_groups())
        .any(|g| g.db_subnet_group_name() == Some(group.as_str()))
    {
        push(Some(untagged(Kind::DbSubnetGroup, "db-subnet-group", &group)));
    }
    let got = got_params?;
    for found in parameter_groups_of(&dep, got.iter().map(|(n, t)| (n.as_str(), t))) {
        push(Some(found));
    }

    let got = got_secret?;
    if let Some(s) = got.filter(|s| s.deleted_date().is_none()) {
        let t = tag_list(
            s.tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
        );
        push(by_name(
            Kind::Secret,
            &t,
            &dep,
            "licence-secret",
            s.arn().unwrap_or(&secret),
        ));
    }

    let groups = got_log_groups?;
    if groups
        .log_groups()
        .iter()
        .any(|g| g.log_group_name() == Some(log_group.as_str()))
    {
        push(Some(untagged(Kind::LogGroup, "lambda-log-group", &log_group)));
    }
    // The DB's error log group: created before the instance (RDS writes into it).
    if got_db_log_groups?
        .log_groups()
        .iter()
        .any(|g| g.log_group_name() == Some(db_log_group.as_str()))
    {
        push(Some(untagged(Kind::LogGroup, "db-error-log-group", &db_log_group)));
    }
    let got = got_function?;
    if let Some(f) = got {
        let t = tag_list(f.tags().into_iter().flatten().map(|(k, v)| (k.as_str(), v.as_str())));
        let vpc = f.configuration().and_then(|c| c.vpc_config());
        let subnets = vpc.map(|v| v.subnet_ids()).unwrap_or_default();
        let groups = vpc.map(|v| v.security_group_ids()).unwrap_or_default();
        push(
            by_name(Kind::LambdaFunction, &t, &dep, "lambda", &function).map(|found| {
                let mut found = found.within(subnets.iter().chain(groups).map(String::as_str));
                // What the delete reads to remove the function's network interfaces.
                found.attrs = vec![
                    ("subnet_ids".into(), subnets.join(",")),
                    ("security_group_id".into(), groups.first().cloned().unwrap_or_default()),
                ];
                found
            }),
        );
    }

    let got = got_endpoint?;
    if got.is_some() {
        push(Some(untagged(Kind::DbEndpoint, "db-endpoint", &endpoint)));
    }

    // ELBv2 and Auto Scaling: by name (their tags need a second call each).
    for arn in got_tg? {
        push(Some(untagged(Kind::TargetGroup, "tg", &arn)));
    }
    let got = got_alb?;
    for lb in got.iter().flat_map(|o| o.load_balancers()) {
        push(Some(untagged(
            Kind::LoadBalancer,
            "alb",
            lb.load_balancer_arn().unwrap_or_default(),
        )));
    }
    let got = got_asg?;
    for g in got
        .auto_scaling_groups()
        .iter()
        .filter(|g| g.auto_scaling_group_name() == Some(asg.as_str()))
    {
        let t = tag_list(
            g.tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
        );
        // Its instances sit in its subnets and are launched from its template.
        let subnets = g.vpc_zone_identifier().unwrap_or_default().split(',');
        let template = g.launch_template().and_then(|l| l.launch_template_id());
        push(by_name(Kind::AutoScalingGroup, &t, &dep, "asg", &asg).map(|f| f.within(subnets.chain(template))));
    }
    Ok(())
}

/// A DB instance of the deployment: `<deployment>-db` by its name (tagged or not), any
/// other by this deployment's tags (a restored instance, `<deployment>-db-r<time>`).
fn db_instance_found(id: &str, tags: &Tags, deployment: &str, db: &str) -> Option<Found> {
    if id == db {
        return by_name(Kind::DbInstance, tags, deployment, "db", db);
    }
    tagged_key(tags, deployment).map(|key| Found::new(key, Kind::DbInstance, id))
}

/// A resource found by its derived name; `None` when it is tagged for another deployment.
fn by_name(kind: Kind, tags: &Tags, deployment: &str, well_known: &str, id: &str) -> Option<Found> {
    named_key(tags, deployment, well_known).map(|key| Found::new(key, kind, id).tagged(is_tagged(tags, deployment)))
}

/// The ARNs of the deployment's target groups (`names::is_target_group`: the group of each
/// dashboard port), every page of the region's groups.
async fn target_groups_named(aws: &Aws, dep: &str) -> Result<Vec<String>, ResourceError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    // Bounded: a region holds at most 3000 target groups by default (8 pages of 400).
    for _ in 0..50 {
        let page = aws
            .clients
            .elb
            .describe_target_groups()
            .page_size(400)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(err("listing the target groups"))?;
        out.extend(
            page.target_groups()
                .iter()
                .filter(|g| g.target_group_name().is_some_and(|n| names::is_target_group(dep, n)))
                .filter_map(|g| g.target_group_arn().map(String::from)),
        );
        match page.next_marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

/// The deployment's DB parameter groups (`names::is_db_parameter_group`) in the account and
/// region, every page, each with its tags (one ListTagsForResource per group of the
/// deployment's names, not per group of the account).
async fn parameter_group_names(aws: &Aws) -> Result<Vec<(String, Tags)>, ResourceError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    // Bounded: an account holds at most a few hundred parameter groups (quota 50 by default).
    for _ in 0..50 {
        let page = aws
            .clients
            .rds
            .describe_db_parameter_groups()
            .max_records(100)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(err("listing the DB parameter groups"))?;
        for g in page.db_parameter_groups() {
            let Some(name) = g.db_parameter_group_name() else {
                continue;
            };
            if !names::is_db_parameter_group(&aws.env.deployment, name) {
                continue;
            }
            let tags = match g.db_parameter_group_arn() {
                Some(arn) => {
                    let listed = aws
                        .clients
                        .rds
                        .list_tags_for_resource()
                        .resource_name(arn)
                        .send()
                        .await
                        .map_err(err("reading a DB parameter group's tags"))?;
                    tag_list(
                        listed
                            .tag_list()
                            .iter()
                            .map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default())),
                    )
                }
                None => Tags::new(),
            };
            out.push((name.to_string(), tags));
        }
        match page.marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

/// Of the parameter groups `groups` (name, tags), the deployment's: its first name and the
/// name of each family (`names::is_db_parameter_group`), under their key tag or `db-params`
/// (which one the state records there, if any, `leaks` tells); tagged for another
/// deployment, none. Tagged with the deployment, `destroy` deletes one the state does not
/// hold (a major upgrade's group of the new family, with the state lost).
pub fn parameter_groups_of<'a>(dep: &str, groups: impl Iterator<Item = (&'a str, &'a Tags)>) -> Vec<Found> {
    groups
        .filter(|(n, _)| names::is_db_parameter_group(dep, n))
        .filter_map(|(n, t)| by_name(Kind::DbParameterGroup, t, dep, "db-params", n))
        .collect()
}

/// A resource found by its derived name whose tags are not read (one more call each).
fn untagged(kind: Kind, well_known: &str, id: &str) -> Found {
    Found::new(well_known.to_string(), kind, id).tagged(false)
}

/// Found resources the state does not account for: a key it does not record, or the same
/// key with another id (a duplicate, or a resource re-created outside pi-deploy).
pub fn leaks<'a>(found: &'a [Found], recorded_id: impl Fn(&str) -> Option<&'a str>) -> Vec<&'a Found> {
    found
        .iter()
        .filter(|f| {
            recorded_id(&f.key) != Some(f.id.as_str())
                // Being replaced (create before destroy): recorded under its retiring key.
                && recorded_id(&crate::core::state::retiring_key(&f.key, &f.id)) != Some(f.id.as_str())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(pairs: &[(&str, &str)]) -> Tags {
        tag_list(pairs.iter().copied())
    }

    #[test]
    fn tagged_keys_need_this_deployment() {
        let ours = t(&[("pi-deploy:deployment", "pi"), ("pi-deploy:key", "vpc")]);
        assert_eq!(tagged_key(&ours, "pi").as_deref(), Some("vpc"));
        assert_eq!(tagged_key(&ours, "other"), None);
        assert_eq!(
            tagged_key(&t(&[("pi-deploy:deployment", "pi")]), "pi").as_deref(),
            Some(UNKEYED)
        );
        assert_eq!(tagged_key(&t(&[]), "pi"), None);
    }

    #[test]
    fn named_resources_without_tags_are_ours_but_not_when_tagged_for_another_deployment() {
        assert_eq!(named_key(&t(&[]), "pi", "bucket").as_deref(), Some("bucket"));
        let other = t(&[("pi-deploy:deployment", "other"), ("pi-deploy:key", "bucket")]);
        assert_eq!(named_key(&other, "pi", "bucket"), None);
        let ours = t(&[("pi-deploy:deployment", "pi"), ("pi-deploy:key", "lambda-role")]);
        assert_eq!(named_key(&ours, "pi", "x").as_deref(), Some("lambda-role"));
    }

    #[test]
    fn only_resources_carrying_the_deployment_tag_count_as_tagged() {
        let ours = t(&[("pi-deploy:deployment", "pi"), ("pi-deploy:key", "bogus/role")]);
        let f = by_name(Kind::IamRole, &ours, "pi", "lambda-role", "pi-lambda").unwrap();
        assert!(f.tagged);
        assert_eq!(f.key, "bogus/role");
        let bare = by_name(Kind::IamRole, &t(&[]), "pi", "lambda-role", "pi-lambda").unwrap();
        assert!(!bare.tagged);
        assert_eq!(bare.key, "lambda-role");
        assert!(!untagged(Kind::Bucket, "bucket", "b").tagged);
        let within = Found::new("k".into(), Kind::Subnet, "subnet-1").within(["vpc-1", ""]);
        assert_eq!(within.within, ["vpc-1"]);
    }

    #[test]
    fn db_instances_are_found_by_the_derived_name_or_by_the_deployment_tag() {
        let ours = t(&[(tags::DEPLOYMENT_TAG, "pi"), (tags::KEY_TAG, "db")]);
        let theirs = t(&[(tags::DEPLOYMENT_TAG, "other"), (tags::KEY_TAG, "db")]);
        let named = db_instance_found("pi-db", &t(&[]), "pi", "pi-db").unwrap();
        assert_eq!((named.key.as_str(), named.tagged), ("db", false));
        let restored = db_instance_found("pi-db-r20261206-220000", &ours, "pi", "pi-db").unwrap();
        assert_eq!(
            (
                restored.key.as_str(),
                restored.id.as_str(),
                restored.kind,
                restored.tagged
            ),
            ("db", "pi-db-r20261206-220000", Kind::DbInstance, true)
        );
        assert_eq!(
            db_instance_found("pi-db-r20261206-220000", &theirs, "pi", "pi-db"),
            None
        );
        assert_eq!(db_instance_found("someone-elses", &t(&[]), "pi", "pi-db"), None);
        assert_eq!(db_instance_found("pi-db", &theirs, "pi", "pi-db"), None);
    }

    #[test]
    fn leaks_are_unrecorded_keys_and_other_ids() {
        let found = vec![
            Found::new("vpc".into(), Kind::Vpc, "vpc-1"),
            Found::new("vpc".into(), Kind::Vpc, "vpc-2"),
            Found::new("vpc-leak".into(), Kind::Vpc, "vpc-3"),
        ];
        let recorded = |k: &str| (k == "vpc").then_some("vpc-1");
        let l: Vec<&str> = leaks(&found, recorded).iter().map(|f| f.id.as_str()).collect();
        assert_eq!(l, vec!["vpc-2", "vpc-3"]);
    }
    /// State lost after a major upgrade, or during one: the deployment's group of each family
    /// is found by name (not only the first name), nobody else's; with the state, the group
    /// being replaced is recorded under its retiring key and is not a leak.
    #[test]
    fn the_parameter_group_of_each_family_is_found_and_a_retiring_one_is_no_leak() {
        let ours = t(&[(tags::DEPLOYMENT_TAG, "pi"), (tags::KEY_TAG, "db-params")]);
        let theirs = t(&[(tags::DEPLOYMENT_TAG, "pi-db-params-mariadb11")]);
        let none = t(&[]);
        let groups = [
            ("default.mariadb10.11", &none),
            ("pi-db-params", &ours),
            ("pi-db-params-mariadb11-4", &ours),
            ("pi2-db-params", &ours),
            ("pi-db-params-mariadb11-4-copy", &ours),
            ("pi-db-params-mariadb10-6", &theirs),
        ];
        let found = parameter_groups_of("pi", groups.iter().copied());
        let ids: Vec<&str> = found.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, vec!["pi-db-params", "pi-db-params-mariadb11-4"]);
        assert!(
            found
                .iter()
                .all(|f| f.key == "db-params" && f.kind == Kind::DbParameterGroup)
        );
        // No state: both are leaks (destroy deletes both).
        assert_eq!(leaks(&found, |_| None).len(), 2);
        // Mid-replace: the new group recorded as the node, the old one as retiring.
        let recorded = |key: &str| match key {
            "db-params" => Some("pi-db-params-mariadb11-4"),
            "db-params/retiring-pi-db-params" => Some("pi-db-params"),
            _ => None,
        };
        assert!(leaks(&found, recorded).is_empty());
        // After the replace, an old group left behind is a leak.
        let after = |key: &str| (key == "db-params").then_some("pi-db-params-mariadb11-4");
        let left: Vec<&str> = leaks(&found, after).iter().map(|f| f.id.as_str()).collect();
        assert_eq!(left, vec!["pi-db-params"]);
    }
}
