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
        for section in ["create", "modify", "delete"] {
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
pub(crate) fn create_entries(kind: Kind) -> &'static [&'static str] {
    kind.info().create
}

/// Model entries that make up one kind's delete.
pub(crate) fn delete_entries(kind: Kind) -> &'static [&'static str] {
    kind.info().delete
}

pub fn create_timing(kind: Kind) -> Timing {
    sum(create_entries(kind))
}

/// One node's create as its props make it: the endpoint node waits for a Single-AZ
/// instance on the usable-early path (the `db-standby` node then waits for the conversion),
/// for a Multi-AZ one otherwise. For the scheduler's weights and the benchmark.
pub fn node_create_timing(node: &super::spec::NodeSpec) -> Timing {
    use super::spec::Props;
    match &node.props {
        Props::DbEndpoint {
            expect_multi_az: false, ..
        } => sum(&["create.rds_mariadb_single_az"]),
        _ => create_timing(node.kind),
    }
}

pub fn delete_timing(kind: Kind) -> Timing {
    sum(delete_entries(kind))
}

/// A change AWS shows as an intermediate state (`pending`, `creating`, `provisioning`,
/// `deleting`, ENIs still attached, instances not in service yet) and its figures from the
/// model. One table for three readers: the waits, which read early and then tighter towards
/// the expected end (`core::wait::Backoff::expecting`); the emulator's latency mode, which shows each state for
/// exactly its median, scaled (src/aws/fault/latency.rs); and the latency benchmark's ideal
/// chain (`emulated_create_s`, `emulated_delete_s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transition {
    NatCreate,
    NatDelete,
    /// An interface endpoint (`gateway: false`) or the S3 gateway endpoint.
    EndpointCreate {
        gateway: bool,
    },
    EndpointDelete {
        gateway: bool,
    },
    FileSystemCreate,
    FileSystemDelete,
    MountTargetCreate,
    MountTargetDelete,
    DbCreate {
        multi_az: bool,
    },
    /// ModifyDBInstance(MultiAZ) applied at once: `modifying` until the standby exists.
    DbToMultiAz,
    DbDelete {
        final_snapshot: bool,
    },
    LoadBalancerCreate,
    /// The load balancer is gone from the API at once; its network interfaces linger.
    LoadBalancerDelete,
    /// `Pending` until `Active` (the function's VPC network interfaces are made).
    LambdaCreate,
    /// A deleted function's network interfaces until they are detached.
    LambdaDelete,
    /// A new Auto Scaling group's instances until `InService`.
    InstancesInService,
    /// An instance in service until the dashboard answers (its user data waits for the
    /// database endpoint).
    AppReady,
    /// A target whose application answers until it is `healthy` (one health check).
    TargetHealthy,
    /// A force-deleted group, its instances draining and terminating.
    GroupDelete,
}

impl Transition {
    fn entry(self) -> &'static str {
        match self {
            Transition::NatCreate => "create.nat_gateway",
            Transition::NatDelete => "delete.nat_gateway",
            Transition::EndpointCreate { gateway: false } => "create.vpc_endpoint_interface",
            Transition::EndpointCreate { gateway: true } => "create.vpc_endpoint_gateway_s3",
            Transition::EndpointDelete { gateway: false } => "delete.vpc_endpoint_interface",
            Transition::EndpointDelete { gateway: true } => "delete.ec2_primitives",
            Transition::FileSystemCreate => "create.efs_file_system",
            Transition::FileSystemDelete => "delete.efs_file_system",
            Transition::MountTargetCreate => "create.efs_mount_target",
            Transition::MountTargetDelete => "delete.efs_mount_target",
            Transition::DbCreate { multi_az: true } => "create.rds_mariadb_multi_az",
            Transition::DbCreate { multi_az: false } => "create.rds_mariadb_single_az",
            Transition::DbToMultiAz => "modify.rds_single_az_to_multi_az",
            Transition::DbDelete { final_snapshot: true } => "delete.rds_multi_az_with_final_snapshot",
            Transition::DbDelete { final_snapshot: false } => "delete.rds_multi_az_skip_final_snapshot",
            Transition::LoadBalancerCreate => "create.alb",
            Transition::LoadBalancerDelete => "delete.alb",
            Transition::LambdaCreate => "create.lambda_function_vpc_pending_to_active",
            Transition::LambdaDelete => "delete.lambda_eni_detach",
            Transition::InstancesInService => "create.asg_to_instances_inservice",
            Transition::AppReady => "create.ec2_boot_to_app_ready",
            Transition::TargetHealthy => "create.target_healthy_after_app_ready",
            Transition::GroupDelete => "delete.asg_with_instances",
        }
    }

    pub fn timing(self) -> Timing {
        sum(&[self.entry()])
    }

    /// The median, as a duration: where a wait's reads are tightest.
    pub fn expected(self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.timing().median_s)
    }
}

/// What one node's create takes under the emulator's latency mode, in model seconds (before
/// scaling): the transition it shows for kinds with one, else the kind's model figure (the
/// synchronous kinds, a second or two, about one emulator call once scaled). The latency
/// benchmark's ideal chain is the longest chain under these weights.
pub fn emulated_create_s(node: &super::spec::NodeSpec) -> f64 {
    create_transition(node).map_or(create_timing(node.kind).median_s, |t| t.timing().median_s)
}

/// The intermediate state the latency mode shows after this node's create, if its kind has
/// one on AWS.
pub fn create_transition(node: &super::spec::NodeSpec) -> Option<Transition> {
    use super::spec::{EndpointType, Props};
    Some(match &node.props {
        Props::VpcEndpoint { endpoint, .. } => Transition::EndpointCreate {
            gateway: matches!(endpoint, EndpointType::Gateway { .. }),
        },
        Props::DbEndpoint { expect_multi_az, .. } => Transition::DbCreate {
            multi_az: *expect_multi_az,
        },
        _ => return node.kind.info().create_transition,
    })
}

/// What one node's delete takes under the latency mode, in model seconds (see
/// `emulated_create_s`); `final_snapshot` as `destroy` was asked.
pub fn emulated_delete_s(node: &super::spec::NodeSpec, final_snapshot: bool) -> f64 {
    delete_transition(node, final_snapshot).map_or(delete_timing(node.kind).median_s, |t| t.timing().median_s)
}

/// The intermediate state the latency mode shows after this node's delete, if any.
pub fn delete_transition(node: &super::spec::NodeSpec, final_snapshot: bool) -> Option<Transition> {
    use super::spec::{EndpointType, Props};
    Some(match &node.props {
        Props::VpcEndpoint { endpoint, .. } => Transition::EndpointDelete {
            gateway: matches!(endpoint, EndpointType::Gateway { .. }),
        },
        _ => match node.kind.info().delete_transition? {
            Transition::DbDelete { .. } => Transition::DbDelete { final_snapshot },
            t => t,
        },
    })
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
    fn without_usable_early_the_endpoint_waits_for_the_multi_az_create() {
        let cfg = crate::core::config::Config {
            ami: Some("ami-0123456789abcdef0".into()),
            database: crate::core::config::DatabaseConfig {
                usable_early: false,
                ..Default::default()
            },
            ..Default::default()
        };
        let nodes = crate::core::spec::build(&crate::core::spec::SpecInput {
            config: &cfg,
            region: "eu-west-1",
            azs: ["eu-west-1a".into(), "eu-west-1b".into()],
        });
        let endpoint = nodes.iter().find(|n| n.key == "db-endpoint").unwrap();
        assert_eq!(node_create_timing(endpoint).median_s, 960.0);
        assert_eq!(emulated_create_s(endpoint), 960.0);
        assert!(nodes.iter().all(|n| n.kind != Kind::DbStandby));
    }

    #[test]
    fn every_kind_has_timings() {
        for &k in Kind::ALL {
            assert!(create_timing(k).median_s > 0.0, "{k}");
            assert!(delete_timing(k).median_s > 0.0, "{k}");
        }
        assert_eq!(create_timing(Kind::NatGateway).median_s, 100.0);
    }

    #[test]
    fn every_transition_has_figures_and_the_emulated_weights_follow_them() {
        use Transition::*;
        for t in [
            NatCreate,
            NatDelete,
            EndpointCreate { gateway: false },
            EndpointCreate { gateway: true },
            EndpointDelete { gateway: false },
            EndpointDelete { gateway: true },
            FileSystemCreate,
            FileSystemDelete,
            MountTargetCreate,
            MountTargetDelete,
            DbCreate { multi_az: true },
            DbCreate { multi_az: false },
            DbToMultiAz,
            DbDelete { final_snapshot: true },
            DbDelete { final_snapshot: false },
            LoadBalancerCreate,
            LoadBalancerDelete,
            LambdaCreate,
            LambdaDelete,
            InstancesInService,
            AppReady,
            TargetHealthy,
            GroupDelete,
        ] {
            assert!(
                t.timing().median_s > 0.0 && t.timing().slow_s >= t.timing().median_s,
                "{t:?}"
            );
        }
        assert_eq!(DbCreate { multi_az: true }.expected().as_secs(), 960);
        assert_eq!(DbToMultiAz.expected().as_secs(), 420);
        assert_eq!(DbDelete { final_snapshot: false }.timing().median_s, 390.0);
        let cfg = crate::core::config::Config {
            ami: Some("ami-0123456789abcdef0".into()),
            ..Default::default()
        };
        let input = crate::core::spec::SpecInput {
            config: &cfg,
            region: "eu-west-1",
            azs: ["eu-west-1a".into(), "eu-west-1b".into()],
        };
        let nodes = crate::core::spec::build(&input);
        let by_key = |k: &str| nodes.iter().find(|n| n.key == k).unwrap();
        assert_eq!(emulated_create_s(by_key("vpce-s3")), 6.0);
        assert_eq!(emulated_create_s(by_key("vpce-ssm")), 90.0);
        // The default path is usable early: Single-AZ, then the conversion.
        assert_eq!(emulated_create_s(by_key("db-endpoint")), 300.0);
        assert_eq!(emulated_create_s(by_key("db-standby")), 420.0);
        assert_eq!(node_create_timing(by_key("db-endpoint")).median_s, 300.0);
        assert_eq!(node_create_timing(by_key("db-standby")).slow_s, 1260.0);
        assert_eq!(emulated_create_s(by_key("vpc")), create_timing(Kind::Vpc).median_s);
        assert_eq!(emulated_delete_s(by_key("db"), false), 390.0);
        assert_eq!(emulated_delete_s(by_key("db"), true), 600.0);
        assert_eq!(emulated_delete_s(by_key("vpce-s3"), false), 1.0);
        assert_eq!(emulated_delete_s(by_key("asg"), false), 330.0);
    }
}
