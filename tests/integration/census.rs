//! Counts a deployment's resources from AWS's side, by tag, the way an operator would.
//! Each kind maps to the `pi-deploy:key` tags found, so a duplicate shows as a repeated key.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{Filter, Tag};
use pi_deploy::aws::Clients;

pub type Census = BTreeMap<&'static str, Vec<String>>;

fn by_deployment(deployment: &str) -> Filter {
    Filter::builder()
        .name("tag:pi-deploy:deployment")
        .values(deployment)
        .build()
}

fn key_of(tags: &[Tag], deployment: &str) -> Option<String> {
    let ours = tags
        .iter()
        .any(|t| t.key() == Some("pi-deploy:deployment") && t.value() == Some(deployment));
    ours.then(|| {
        tags.iter()
            .find(|t| t.key() == Some("pi-deploy:key"))
            .and_then(|t| t.value())
            .unwrap_or("?")
            .to_string()
    })
}

fn push(c: &mut Census, kind: &'static str, key: Option<String>) {
    if let Some(k) = key {
        c.entry(kind).or_default().push(k);
    }
}

pub async fn network(c: &Clients, dep: &str) -> Census {
    let mut out = Census::new();
    let f = || by_deployment(dep);
    for v in c.ec2.describe_vpcs().filters(f()).send().await.unwrap().vpcs() {
        push(&mut out, "vpc", key_of(v.tags(), dep));
    }
    for s in c.ec2.describe_subnets().filters(f()).send().await.unwrap().subnets() {
        push(&mut out, "subnet", key_of(s.tags(), dep));
    }
    for g in c
        .ec2
        .describe_internet_gateways()
        .filters(f())
        .send()
        .await
        .unwrap()
        .internet_gateways()
    {
        push(&mut out, "internet-gateway", key_of(g.tags(), dep));
    }
    for a in c
        .ec2
        .describe_addresses()
        .filters(f())
        .send()
        .await
        .unwrap()
        .addresses()
    {
        push(&mut out, "elastic-ip", key_of(a.tags(), dep));
    }
    // DescribeNatGateways ignores tag filters on moto and lists deleted NATs: check both.
    let nats: Vec<aws_sdk_ec2::types::NatGateway> = c
        .ec2
        .describe_nat_gateways()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    for n in &nats {
        let live = !matches!(
            n.state().map(|s| s.as_str()),
            Some("deleted") | Some("deleting") | Some("failed")
        );
        if live {
            push(&mut out, "nat-gateway", key_of(n.tags(), dep));
        }
    }
    for r in c
        .ec2
        .describe_route_tables()
        .filters(f())
        .send()
        .await
        .unwrap()
        .route_tables()
    {
        push(&mut out, "route-table", key_of(r.tags(), dep));
    }
    for a in c
        .ec2
        .describe_network_acls()
        .filters(f())
        .send()
        .await
        .unwrap()
        .network_acls()
    {
        push(&mut out, "network-acl", key_of(a.tags(), dep));
    }
    for g in c
        .ec2
        .describe_security_groups()
        .filters(f())
        .send()
        .await
        .unwrap()
        .security_groups()
    {
        push(&mut out, "security-group", key_of(g.tags(), dep));
    }
    for e in c
        .ec2
        .describe_vpc_endpoints()
        .filters(f())
        .send()
        .await
        .unwrap()
        .vpc_endpoints()
    {
        let live = !matches!(e.state().map(|s| s.as_str()), Some("deleted") | Some("deleting"));
        if live {
            push(&mut out, "vpc-endpoint", key_of(e.tags(), dep));
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// Every EFS file system of the account and region, every page.
pub async fn file_systems(c: &Clients) -> Vec<aws_sdk_efs::types::FileSystemDescription> {
    c.efs
        .describe_file_systems()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap()
}

/// Every kind's keys, for comparing with the state file.
pub fn all_keys(c: &Census) -> Vec<String> {
    let mut keys: Vec<String> = c.values().flatten().cloned().collect();
    keys.sort();
    keys
}

fn tag_key<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>, deployment: &str) -> Option<String> {
    let tags: Vec<(&str, &str)> = tags.into_iter().collect();
    let ours = tags
        .iter()
        .any(|(k, v)| *k == "pi-deploy:deployment" && *v == deployment);
    ours.then(|| {
        tags.iter()
            .find(|(k, _)| *k == "pi-deploy:key")
            .map(|(_, v)| v.to_string())
            .unwrap_or_else(|| "?".into())
    })
}

/// The data tier: the bucket and the DB groups by their derived names; file systems,
/// access points, DB instances and secrets by tag; mount targets through our file systems
/// (they take no tags; listed as `<file system key>@<subnet id>`); the endpoint parameter by name.
pub async fn data(c: &Clients, dep: &str) -> Census {
    use pi_deploy::core::names;
    let mut out = Census::new();
    let identity = c.identity(dep).await.unwrap();
    let bucket = names::bucket(dep, &identity.account_id, &identity.region);
    if c.s3.head_bucket().bucket(&bucket).send().await.is_ok() {
        push(&mut out, "s3-bucket", Some(bucket));
    }

    // Every page: the suite's deployments share one emulator, whose pages hold 10 (AWS's 100).
    for fs in &file_systems(c).await {
        let gone = matches!(fs.life_cycle_state().as_str(), "deleted" | "deleting");
        let Some(key) = tag_key(fs.tags().iter().map(|t| (t.key(), t.value())), dep) else {
            continue;
        };
        if gone {
            continue;
        }
        let targets: Vec<aws_sdk_efs::types::MountTargetDescription> = c
            .efs
            .describe_mount_targets()
            .file_system_id(fs.file_system_id())
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .unwrap();
        for m in &targets {
            if !matches!(m.life_cycle_state().as_str(), "deleted" | "deleting") {
                push(&mut out, "efs-mount-target", Some(format!("{key}@{}", m.subnet_id())));
            }
        }
        push(&mut out, "efs-file-system", Some(key));
    }
    let points: Vec<aws_sdk_efs::types::AccessPointDescription> = c
        .efs
        .describe_access_points()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    for a in &points {
        let live = !matches!(
            a.life_cycle_state().map(|s| s.as_str()),
            Some("deleted") | Some("deleting")
        );
        if live {
            push(
                &mut out,
                "efs-access-point",
                tag_key(a.tags().iter().map(|t| (t.key(), t.value())), dep),
            );
        }
    }

    let instances: Vec<aws_sdk_rds::types::DbInstance> = c
        .rds
        .describe_db_instances()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    for db in &instances {
        let key = tag_key(
            db.tag_list()
                .iter()
                .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))),
            dep,
        );
        let named = db.db_instance_identifier() == Some(names::db_identifier(dep).as_str());
        push(&mut out, "db-instance", key.or(named.then(|| "?untagged".into())));
    }
    // By name: an unknown name is DBSubnetGroupNotFoundFault / DBParameterGroupNotFound on
    // AWS, an empty list on moto; both count as absent.
    let subnet_group = names::db_subnet_group(dep);
    if let Ok(o) = c
        .rds
        .describe_db_subnet_groups()
        .db_subnet_group_name(&subnet_group)
        .send()
        .await
        && o.db_subnet_groups()
            .iter()
            .any(|g| g.db_subnet_group_name() == Some(subnet_group.as_str()))
    {
        push(&mut out, "db-subnet-group", Some(subnet_group));
    }
    // One per family the deployment went through until its replaced group is deleted:
    // named after the family (names::db_parameter_group_of).
    let groups: Vec<aws_sdk_rds::types::DbParameterGroup> = c
        .rds
        .describe_db_parameter_groups()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap_or_default();
    for g in groups {
        if let Some(name) = g.db_parameter_group_name()
            && names::is_db_parameter_group(dep, name)
        {
            push(&mut out, "db-parameter-group", Some(name.to_string()));
        }
    }

    let pages: Vec<aws_sdk_secretsmanager::operation::list_secrets::ListSecretsOutput> = c
        .secrets
        .list_secrets()
        .filters(
            aws_sdk_secretsmanager::types::Filter::builder()
                .key("tag-value".into())
                .values(dep)
                .build(),
        )
        .into_paginator()
        .send()
        .try_collect()
        .await
        .unwrap();
    for s in pages.iter().flat_map(|p| p.secret_list()) {
        if s.deleted_date().is_none() {
            push(
                &mut out,
                "secret",
                tag_key(
                    s.tags()
                        .iter()
                        .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))),
                    dep,
                ),
            );
        }
    }
    if c.ssm
        .get_parameter()
        .name(names::db_endpoint_parameter(dep))
        .send()
        .await
        .is_ok()
    {
        push(&mut out, "ssm-parameter", Some(names::db_endpoint_parameter(dep)));
    }
    // The log groups RDS exports the instance's logs into (created before the instance).
    for key in log_groups(c, dep, &format!("/aws/rds/instance/{}/", names::db_identifier(dep))).await {
        push(&mut out, "log-group", Some(key));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// The tag keys (`?untagged` when not ours by tag) of the log groups under `prefix`.
async fn log_groups(c: &Clients, dep: &str, prefix: &str) -> Vec<String> {
    let groups = c
        .logs
        .describe_log_groups()
        .log_group_name_prefix(prefix)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    let mut keys = Vec::new();
    for g in &groups {
        let arn = g
            .log_group_arn()
            .map(String::from)
            .unwrap_or_else(|| g.arn().unwrap_or_default().trim_end_matches(":*").to_string());
        let tags = c.logs.list_tags_for_resource().resource_arn(arn).send().await.unwrap();
        let key = tags
            .tags()
            .and_then(|t| tag_key(t.iter().map(|(k, v)| (k.as_str(), v.as_str())), dep));
        keys.push(key.unwrap_or_else(|| "?untagged".into()));
    }
    keys
}

/// The compute and edge tier: the logs bucket and the VPC's flow log; launch templates and instances by tag; the target group, load
/// balancer (with its listeners), Auto Scaling group (with its hook and policies) and
/// instance profile by their derived names, each reported by its `pi-deploy:key` tag (`?` when
/// the name is ours but the tags are not); alarms by name prefix.
pub async fn compute(c: &Clients, dep: &str) -> Census {
    use pi_deploy::core::names;
    let mut out = Census::new();
    // The ALB's access-log bucket, by its derived name (listed by its spec key).
    let identity = c.identity(dep).await.unwrap();
    let logs = names::logs_bucket(dep, &identity.account_id, &identity.region);
    if c.s3.head_bucket().bucket(&logs).send().await.is_ok() {
        push(&mut out, "s3-bucket", Some("logs-bucket".into()));
    }
    // The VPC's flow log into that bucket, by tag (AWS stops, then removes, a deleted VPC's).
    let flow_logs = c
        .ec2
        .describe_flow_logs()
        .filter(by_deployment(dep))
        .send()
        .await
        .unwrap();
    for f in flow_logs.flow_logs() {
        push(&mut out, "vpc-flow-log", key_of(f.tags(), dep));
    }

    let lts = c
        .ec2
        .describe_launch_templates()
        .filters(by_deployment(dep))
        .send()
        .await
        .unwrap();
    for lt in lts.launch_templates() {
        push(&mut out, "launch-template", key_of(lt.tags(), dep));
    }
    let named = c
        .ec2
        .describe_launch_templates()
        .launch_template_names(names::launch_template(dep))
        .send()
        .await;
    if let Ok(o) = named {
        for lt in o.launch_templates() {
            if key_of(lt.tags(), dep).is_none() {
                push(&mut out, "launch-template", Some("?untagged".into()));
            }
        }
    }
    let instances = c
        .ec2
        .describe_instances()
        .filters(by_deployment(dep))
        .send()
        .await
        .unwrap();
    for i in instances.reservations().iter().flat_map(|r| r.instances()) {
        let state = i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str().to_string())
            .unwrap_or_default();
        if state != "terminated" {
            push(&mut out, "ec2-instance", key_of(i.tags(), dep));
        }
    }

    let elb_key = |arn: String| {
        let c = c.clone();
        let dep = dep.to_string();
        async move {
            let t = c.elb.describe_tags().resource_arns(&arn).send().await.unwrap();
            let tags: Vec<(String, String)> = t
                .tag_descriptions()
                .iter()
                .flat_map(|d| d.tags())
                .map(|t| (t.key().unwrap_or("").to_string(), t.value().unwrap_or("").to_string()))
                .collect();
            tag_key(tags.iter().map(|(k, v)| (k.as_str(), v.as_str())), &dep).or(Some("?".into()))
        }
    };
    // The group of every dashboard port (`dashboard_port` replaces it under the port's name).
    let mut marker = None;
    loop {
        let tgs = c.elb.describe_target_groups().set_marker(marker).send().await.unwrap();
        for tg in tgs.target_groups() {
            if names::is_target_group(dep, tg.target_group_name().unwrap_or_default()) {
                let key = elb_key(tg.target_group_arn().unwrap().to_string()).await;
                push(&mut out, "target-group", key);
            }
        }
        match tgs.next_marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    if let Ok(lbs) = c.elb.describe_load_balancers().names(names::alb(dep)).send().await {
        for lb in lbs.load_balancers() {
            let arn = lb.load_balancer_arn().unwrap().to_string();
            push(&mut out, "load-balancer", elb_key(arn.clone()).await);
            let listeners = c.elb.describe_listeners().load_balancer_arn(&arn).send().await.unwrap();
            for l in listeners.listeners() {
                let key = elb_key(l.listener_arn().unwrap().to_string()).await;
                push(&mut out, "listener", key);
            }
        }
    }

    let asg_name = names::asg(dep);
    let groups = c
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&asg_name)
        .send()
        .await
        .unwrap();
    for g in groups.auto_scaling_groups() {
        let key = tag_key(
            g.tags()
                .iter()
                .map(|t| (t.key().unwrap_or(""), t.value().unwrap_or(""))),
            dep,
        );
        push(&mut out, "auto-scaling-group", key.or(Some("?".into())));
        let hooks = c
            .autoscaling
            .describe_lifecycle_hooks()
            .auto_scaling_group_name(&asg_name)
            .send()
            .await
            .unwrap();
        for h in hooks.lifecycle_hooks() {
            push(&mut out, "lifecycle-hook", h.lifecycle_hook_name().map(String::from));
        }
        let policies = c
            .autoscaling
            .describe_policies()
            .auto_scaling_group_name(&asg_name)
            .send()
            .await
            .unwrap();
        for p in policies.scaling_policies() {
            push(&mut out, "scaling-policy", p.policy_name().map(String::from));
        }
    }

    let alarms = c
        .cloudwatch
        .describe_alarms()
        .alarm_name_prefix(format!("{dep}-"))
        .send()
        .await
        .unwrap();
    for a in alarms.metric_alarms() {
        push(&mut out, "alarm", a.alarm_name().map(String::from));
    }

    let profile = names::instance_profile(dep);
    if let Ok(p) = c
        .iam
        .get_instance_profile()
        .instance_profile_name(&profile)
        .send()
        .await
    {
        let t = p.instance_profile().map(|p| p.tags()).unwrap_or_default();
        let key = tag_key(t.iter().map(|t| (t.key(), t.value())), dep);
        push(&mut out, "instance-profile", key.or(Some("?".into())));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// IAM roles whose name starts with `<deployment>-`, each reported by its `pi-deploy:key`
/// tag (`?untagged` when the name is ours but the tags are not). ListRoles carries no tags,
/// so each candidate is read with GetRole.
pub async fn iam_roles(c: &Clients, dep: &str) -> Census {
    let mut out = Census::new();
    let roles = c
        .iam
        .list_roles()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    for r in roles.iter().filter(|r| r.role_name().starts_with(&format!("{dep}-"))) {
        let Ok(got) = c.iam.get_role().role_name(r.role_name()).send().await else {
            continue;
        };
        let tags = got.role().map(|r| r.tags().to_vec()).unwrap_or_default();
        let key = tag_key(tags.iter().map(|t| (t.key(), t.value())), dep);
        push(&mut out, "iam-role", key.or(Some("?untagged".into())));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// The side-loading tier: the Lambda function and its log group by their derived names,
/// each reported by its `pi-deploy:key` tag (`?untagged` when the name is ours but the tags
/// are not). The permission and the bucket notification have no tags: the sideload tests
/// read them from the function's policy and the bucket.
pub async fn sideload(c: &Clients, dep: &str) -> Census {
    use pi_deploy::core::names;
    let mut out = Census::new();
    let functions = c
        .lambda
        .list_functions()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .unwrap();
    for f in functions
        .iter()
        .filter(|f| f.function_name().is_some_and(|n| n.starts_with(&format!("{dep}-"))))
    {
        let got = c
            .lambda
            .get_function()
            .function_name(f.function_name().unwrap())
            .send()
            .await
            .unwrap();
        let key = got
            .tags()
            .and_then(|t| tag_key(t.iter().map(|(k, v)| (k.as_str(), v.as_str())), dep));
        push(&mut out, "lambda-function", key.or(Some("?untagged".into())));
    }
    let prefix = names::lambda_log_group(dep).replace(&names::lambda_function(dep), &format!("{dep}-"));
    for key in log_groups(c, dep, &prefix).await {
        push(&mut out, "log-group", Some(key));
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// Every service at once: what an operator would find of the deployment anywhere.
pub async fn everything(c: &Clients, dep: &str) -> Census {
    let mut out = Census::new();
    for part in [
        network(c, dep).await,
        data(c, dep).await,
        iam_roles(c, dep).await,
        sideload(c, dep).await,
        compute(c, dep).await,
    ] {
        for (kind, mut keys) in part {
            out.entry(kind).or_default().append(&mut keys);
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}
