//! Real AWS timings from `latency-model.toml` (a copy of `../shared/design`'s), used to
//! schedule the longest chain first, to set wait deadlines, and by the benchmark.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::spec::Kind;

const MODEL: &str = include_str!("latency-model.toml");

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    pub median_s: f64,
    pub slow_s: f64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Figure {
    Median,
    Slow,
}

impl Timing {
    pub fn get(self, f: Figure) -> f64 {
        match f {
            Figure::Median => self.median_s,
            Figure::Slow => self.slow_s,
        }
    }
}

pub fn model() -> &'static BTreeMap<String, Timing> {
    static M: OnceLock<BTreeMap<String, Timing>> = OnceLock::new();
    M.get_or_init(|| {
        let doc: toml::Table = MODEL.parse().expect("latency model parses");
        let mut out = BTreeMap::new();
        for section in ["create", "delete"] {
            let Some(toml::Value::Table(t)) = doc.get(section) else {
                continue;
            };
            for (name, v) in t {
                let num = |k: &str| v.get(k).and_then(|x| x.as_float().or(x.as_integer().map(|i| i as f64)));
                if let (Some(median_s), Some(slow_s)) = (num("median_s"), num("slow_s")) {
                    out.insert(format!("{section}.{name}"), Timing { median_s, slow_s });
                }
                // `lambda_eni_release` also gives the detach time, which is what a destroy that
                // deletes the detached ENIs itself waits for.
                if let (Some(median_s), Some(slow_s)) = (num("detach_median_s"), num("slow_s")) {
                    out.insert(
                        format!("{section}.{}", name.replace("_release", "_detach")),
                        Timing { median_s, slow_s },
                    );
                }
            }
        }
        out
    })
}

fn sum(entries: &[&str]) -> Timing {
    let m = model();
    entries.iter().fold(
        Timing {
            median_s: 0.0,
            slow_s: 0.0,
        },
        |acc, e| {
            let t = m.get(*e).unwrap_or_else(|| panic!("latency model has no `{e}`"));
            Timing {
                median_s: acc.median_s + t.median_s,
                slow_s: acc.slow_s + t.slow_s,
            }
        },
    )
}

/// Model entries that make up one kind's create (create call + converge + wait).
fn create_entries(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Vpc => &["create.vpc", "create.vpc_dns_attributes"],
        Kind::InternetGateway => &["create.internet_gateway_and_attach"],
        Kind::Subnet => &["create.subnet"],
        Kind::ElasticIp => &["create.eip"],
        Kind::NatGateway => &["create.nat_gateway"],
        Kind::RouteTable => &["create.route_table", "create.route_table_association"],
        Kind::Route => &["create.route"],
        Kind::NetworkAcl => &["create.network_acl_with_entries"],
        Kind::SecurityGroup => &["create.security_group_with_rules"],
        Kind::VpcEndpoint => &["create.vpc_endpoint_interface"],
        Kind::Bucket => &["create.s3_bucket_with_configs"],
        Kind::FileSystem => &["create.efs_file_system"],
        Kind::MountTarget => &["create.efs_mount_target"],
        Kind::AccessPoint => &["create.efs_access_point"],
        Kind::DbSubnetGroup => &["create.db_subnet_group"],
        Kind::DbParameterGroup => &["create.db_parameter_group"],
        // The create call returns at once; the long wait is the endpoint node's.
        Kind::DbInstance => &["create.secretsmanager_secret"],
        Kind::DbEndpoint => &["create.rds_mariadb_multi_az"],
        Kind::Secret => &["create.secretsmanager_secret"],
        Kind::IamRole => &["create.iam_role"],
        Kind::LogGroup => &["create.cloudwatch_alarm_and_scaling_policy"],
        Kind::LambdaFunction => &["create.iam_propagation", "create.lambda_function_vpc_pending_to_active"],
        Kind::LambdaPermission | Kind::BucketNotification => &["create.lambda_permission_and_bucket_notification"],
        Kind::InstanceProfile => &["create.iam_instance_profile", "create.iam_propagation"],
        Kind::LaunchTemplate => &["create.launch_template"],
        Kind::TargetGroup => &["create.target_group"],
        Kind::LoadBalancer => &["create.alb"],
        Kind::Listener => &["create.listener"],
        // The group is created at once; instances boot while RDS is still being built.
        Kind::AutoScalingGroup | Kind::LifecycleHook | Kind::ScalingPolicy | Kind::Alarm => {
            &["create.cloudwatch_alarm_and_scaling_policy"]
        }
        Kind::DnsRecord => &["create.route53_change_insync"],
        Kind::DashboardCheck => &["create.target_healthy_after_app_ready"],
    }
}

fn delete_entries(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::NatGateway => &["delete.nat_gateway"],
        Kind::VpcEndpoint => &["delete.vpc_endpoint_interface"],
        Kind::Bucket => &["delete.s3_bucket_versioned"],
        Kind::FileSystem => &["delete.efs_file_system"],
        Kind::MountTarget => &["delete.efs_mount_target"],
        Kind::DbInstance => &["delete.rds_multi_az_with_final_snapshot"],
        Kind::Secret => &["delete.secret_force"],
        Kind::IamRole | Kind::InstanceProfile => &["delete.iam_role_with_policies"],
        // Deleting the detached Hyperplane ENIs ourselves: minutes, not AWS's 20-45.
        Kind::LambdaFunction => &["delete.lambda_eni_detach"],
        Kind::AutoScalingGroup => &["delete.asg_with_instances"],
        Kind::LoadBalancer => &["delete.alb"],
        _ => &["delete.ec2_primitives"],
    }
}

pub fn create_timing(kind: Kind) -> Timing {
    sum(create_entries(kind))
}

pub fn delete_timing(kind: Kind) -> Timing {
    sum(delete_entries(kind))
}

/// Deadline for waiting on a create: the slow figure times three, at least five minutes
/// (Terraform learned to raise its defaults repeatedly; a too-short deadline fails healthy runs).
pub fn create_deadline(kind: Kind) -> std::time::Duration {
    std::time::Duration::from_secs_f64((create_timing(kind).slow_s * 3.0).max(300.0))
}

pub fn delete_deadline(kind: Kind) -> std::time::Duration {
    std::time::Duration::from_secs_f64((delete_timing(kind).slow_s * 3.0).max(300.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_timings() {
        for &k in Kind::ALL {
            assert!(create_timing(k).median_s > 0.0, "{k}");
            assert!(delete_timing(k).median_s > 0.0, "{k}");
        }
        assert_eq!(create_timing(Kind::NatGateway).median_s, 100.0);
    }
}
