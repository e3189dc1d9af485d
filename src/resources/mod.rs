//! One module per resource kind, each behind the small `ResourceKind` trait. Only these
//! modules (and `aws`) see SDK types; the core sees the `Cloud` trait that `AwsCloud`
//! implements by dispatching on the kind.

mod access_point;
mod alarm;
pub mod answers;
mod auto_scaling_group;
pub mod backup;
mod bucket;
mod bucket_notification;
mod dashboard_check;
mod db_endpoint;
pub mod db_instance;
mod db_standby;
pub mod discover;
mod dns_record;
mod ec2;
mod eip;
mod elb;
mod file_system;
pub mod fleet;
mod flow_log;
mod iam_role;
pub mod inspect;
mod instance_profile;
mod internet_gateway;
mod lambda_code;
mod lambda_enis;
mod lambda_function;
mod lambda_permission;
pub mod launch_template;
mod lifecycle_hook;
pub mod listener;
mod load_balancer;
mod log_group;
mod mount_target;
mod nat_gateway;
mod network_acl;
pub mod objects;
mod observe;
pub mod operator;
pub mod preflight;
mod rds;
pub mod restore;
pub mod restore_files;
mod route;
mod route_table;
mod scaling_policy;
pub mod secret;
mod security_group;
pub mod state_bucket;
mod subnet;
mod target_group;
mod vpc;
mod vpc_endpoint;

use std::sync::Arc;

use async_trait::async_trait;

use crate::aws::consistency::{self, Step};
use crate::aws::{Clients, Env};
use std::collections::BTreeMap;

use crate::core::diff::{self, AttrSpec, Change, Classify, Settings};
use crate::core::inspect::{InspectCtx, Inspection};
use crate::core::resource::{Cloud, DeleteCtx, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec};

/// What every kind module gets: the clients and the run's environment.
pub struct Aws {
    pub clients: Clients,
    pub env: Env,
    /// Transitions this process started (creates, deletes), for the waits that follow.
    pub started: crate::aws::wait::Started,
    /// Create answers kept for the converge that follows (answers.rs).
    pub answers: answers::Answers,
}

/// The contract of one kind; see `core::resource` for what each step must guarantee.
#[async_trait]
pub trait ResourceKind: Send + Sync {
    /// Look the resource up by tag or deterministic name; `None` when it does not exist.
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError>;
    /// One create call, tagged on create; returns the ids as soon as AWS accepted it.
    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError>;
    /// Idempotently apply the separate settings and wait until usable.
    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let _ = (aws, cx);
        Ok(outputs)
    }
    /// Delete and wait until gone; already gone is success.
    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError>;
    /// Whether a resource recorded as ready is out of date in a way only `converge` can
    /// fix (new Lambda code): `up` converges it again. Decided from the recorded outputs.
    fn outdated(&self, spec: &NodeSpec, outputs: &Outputs) -> bool {
        let _ = (spec, outputs);
        false
    }
    /// Read-only: the recorded resource's live state and the drift of the attributes this
    /// kind sets (for `status`). Kinds that do not implement it claim nothing.
    async fn inspect(&self, aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
        let _ = (aws, cx);
        Ok(Inspection::unknown())
    }

    // ---- day 2 (see `core::diff`): declared attributes, desired (pure), live, update ----

    /// The attributes this kind manages and how AWS lets each one change.
    fn attrs(&self) -> &'static [AttrSpec] {
        &[]
    }
    /// Opt in to create-before-destroy `replace` (see `Cloud::replaceable`): only a kind
    /// that holds no data, whose `find` and `create` name the resource after the attributes
    /// that force a replace, so the replacement never collides with the resource it replaces.
    fn replaceable(&self) -> bool {
        false
    }
    /// For attributes whose action depends on the values (grow vs shrink...).
    fn classify(&self) -> Option<Classify> {
        None
    }
    /// Pure: the desired settings from the props; dependencies' ids from `deps`.
    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        let _ = (spec, deps);
        Settings::new()
    }
    /// Read-only: whether the recorded resource exists, and its live settings (the ones
    /// `desired` names; an attribute left out is not compared).
    async fn read(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let _ = (aws, cx, outputs);
        Ok(Observed::Present(Settings::new()))
    }
    /// Apply in-place changes (every one `ChangeAction::Update`) and wait until usable.
    /// Idempotent. By default: converge again, which sets every setting.
    async fn update(
        &self,
        aws: &Aws,
        cx: &NodeCtx<'_>,
        outputs: Outputs,
        changes: &[Change],
    ) -> Result<Outputs, ResourceError> {
        let _ = changes;
        self.converge(aws, cx, outputs).await
    }
}

/// The id (or another output) of dependency `key`, or `(known after up)` when it is not
/// there yet: for `desired`.
pub fn dep_output(deps: &BTreeMap<String, Outputs>, key: &str, output: &str) -> String {
    deps.get(key)
        .and_then(|o| o.get(output))
        .map_or_else(|| diff::KNOWN_AFTER_UP.to_string(), String::from)
}

/// See `ResourceKind::read`.
pub async fn read(aws: &Aws, cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
    kind_impl(cx.spec.kind).read(aws, cx, outputs).await
}

/// See `ResourceKind::attrs`.
pub fn attrs(kind: Kind) -> &'static [AttrSpec] {
    kind_impl(kind).attrs()
}

/// See `ResourceKind::desired`.
pub fn desired(spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
    kind_impl(spec.kind).desired(spec, deps)
}

/// The kind's pure diff: declared attributes, with its own classification.
pub fn diff_of(spec: &NodeSpec, desired: &Settings, live: &Settings) -> Vec<Change> {
    let k = kind_impl(spec.kind);
    diff::diff(k.attrs(), desired, live, k.classify())
}

/// See `ResourceKind::replaceable`.
pub fn replaceable(kind: Kind) -> bool {
    kind_impl(kind).replaceable()
}

/// See `ResourceKind::inspect`.
pub async fn inspect(aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
    kind_impl(cx.kind).inspect(aws, cx).await
}

/// See `ResourceKind::outdated`.
pub fn outdated(spec: &NodeSpec, outputs: &Outputs) -> bool {
    kind_impl(spec.kind).outdated(spec, outputs)
}

fn kind_impl(kind: Kind) -> &'static dyn ResourceKind {
    match kind {
        Kind::Vpc => &vpc::Vpc,
        Kind::InternetGateway => &internet_gateway::InternetGateway,
        Kind::Subnet => &subnet::Subnet,
        Kind::ElasticIp => &eip::ElasticIp,
        Kind::NatGateway => &nat_gateway::NatGateway,
        Kind::RouteTable => &route_table::RouteTable,
        Kind::Route => &route::Route,
        Kind::NetworkAcl => &network_acl::NetworkAcl,
        Kind::SecurityGroup => &security_group::SecurityGroup,
        Kind::VpcEndpoint => &vpc_endpoint::VpcEndpoint,
        Kind::FlowLog => &flow_log::FlowLog,
        Kind::Bucket => &bucket::Bucket,
        Kind::FileSystem => &file_system::FileSystem,
        Kind::MountTarget => &mount_target::MountTarget,
        Kind::AccessPoint => &access_point::AccessPoint,
        Kind::DbSubnetGroup => &rds::DbSubnetGroup,
        Kind::DbParameterGroup => &rds::DbParameterGroup,
        Kind::DbInstance => &db_instance::DbInstance,
        Kind::DbEndpoint => &db_endpoint::DbEndpoint,
        Kind::DbStandby => &db_standby::DbStandby,
        Kind::Secret => &secret::Secret,
        Kind::IamRole => &iam_role::IamRole,
        Kind::LogGroup => &log_group::LogGroup,
        Kind::LambdaFunction => &lambda_function::LambdaFunction,
        Kind::LambdaPermission => &lambda_permission::LambdaPermission,
        Kind::BucketNotification => &bucket_notification::BucketNotification,
        Kind::InstanceProfile => &instance_profile::InstanceProfile,
        Kind::LaunchTemplate => &launch_template::LaunchTemplate,
        Kind::TargetGroup => &target_group::TargetGroup,
        Kind::LoadBalancer => &load_balancer::LoadBalancer,
        Kind::Listener => &listener::Listener,
        Kind::AutoScalingGroup => &auto_scaling_group::AutoScalingGroup,
        Kind::LifecycleHook => &lifecycle_hook::LifecycleHook,
        Kind::ScalingPolicy => &scaling_policy::ScalingPolicy,
        Kind::Alarm => &alarm::Alarm,
        Kind::DnsRecord => &dns_record::DnsRecord,
        Kind::DashboardCheck => &dashboard_check::DashboardCheck,
    }
}

/// The README's table "what `up` does when you change X", generated from every kind's
/// declared attributes (a test keeps the README equal to it): one row per config field and
/// attribute, then the attributes no config field drives (drift `up` repairs).
pub fn change_table() -> String {
    let mut rows = Vec::new();
    let mut drift = Vec::new();
    for &kind in Kind::ALL {
        for a in attrs(kind) {
            if a.fields.is_empty() {
                drift.push(match a.action {
                    diff::ChangeAction::Update => format!("{} `{}`", kind.as_str(), a.name),
                    other => format!("{} `{}` ({})", kind.as_str(), a.name, other.as_str()),
                });
            }
            for f in a.fields {
                rows.push((f.to_string(), kind.as_str(), a.name, a.action.as_str(), a.note));
            }
        }
    }
    rows.sort();
    let mut out = String::from(
        "| config field | resource | attribute | what `up` does | what it interrupts / how |\n|---|---|---|---|---|\n",
    );
    for (field, kind, attr, action, note) in rows {
        let note = if note.is_empty() { "-" } else { note };
        out.push_str(&format!("| `{field}` | {kind} | {attr} | {action} | {note} |\n"));
    }
    out.push_str(&format!(
        "\nAttributes no config field drives (drift found on them is repaired; in place unless marked): {}.\n",
        drift.join(", ")
    ));
    out
}

/// The `Cloud` the executor drives against real AWS (or an emulator at AWS_ENDPOINT_URL).
pub struct AwsCloud {
    pub aws: Arc<Aws>,
}

/// Each step runs inside its consistency window: a NotFound is "not yet" only right after
/// this run's own creates (src/aws/consistency.rs).
#[async_trait]
impl Cloud for AwsCloud {
    async fn find(&self, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let step = Step::Find {
            key: &cx.spec.key,
            deps: &cx.spec.deps,
        };
        let found = consistency::run(step, kind_impl(cx.spec.kind).find(&self.aws, cx)).await;
        if matches!(found, Ok(Some(_))) {
            consistency::found(&cx.spec.key);
        }
        found
    }
    async fn create(&self, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let step = Step::Create {
            key: &cx.spec.key,
            deps: &cx.spec.deps,
        };
        consistency::run(step, kind_impl(cx.spec.kind).create(&self.aws, cx)).await
    }
    async fn converge(&self, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let step = Step::Converge {
            key: &cx.spec.key,
            deps: &cx.spec.deps,
        };
        consistency::run(step, kind_impl(cx.spec.kind).converge(&self.aws, cx, outputs)).await
    }
    async fn delete(&self, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        kind_impl(cx.kind).delete(&self.aws, cx).await
    }
    fn attrs(&self, kind: Kind) -> &'static [AttrSpec] {
        attrs(kind)
    }
    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        desired(spec, deps)
    }
    fn replaceable(&self, spec: &NodeSpec) -> bool {
        replaceable(spec.kind)
    }
    fn diff(&self, spec: &NodeSpec, desired: &Settings, live: &Settings) -> Vec<Change> {
        diff_of(spec, desired, live)
    }
    async fn read(&self, cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        kind_impl(cx.spec.kind).read(&self.aws, cx, outputs).await
    }
    async fn update(&self, cx: &NodeCtx<'_>, outputs: Outputs, changes: &[Change]) -> Result<Outputs, ResourceError> {
        kind_impl(cx.spec.kind).update(&self.aws, cx, outputs, changes).await
    }
}

/// Props of the expected variant, or a bug in the spec.
macro_rules! props {
    ($cx:expr, $variant:ident { $($field:ident),* $(,)? }) => {
        match &$cx.spec.props {
            crate::core::spec::Props::$variant { $($field,)* .. } => ($($field,)*),
            other => {
                return Err(crate::core::resource::ResourceError::new(
                    crate::core::resource::ErrorClass::Invalid,
                    format!("`{}` has props {:?}, expected {}", $cx.spec.key, other, stringify!($variant)),
                ))
            }
        }
    };
}
pub(crate) use props;

#[cfg(test)]
mod change_table_tests {
    const START: &str =
        "<!-- change-table:start (generated from the kinds' AttrSpec; see resources::change_table) -->\n";
    const END: &str = "<!-- change-table:end -->";

    /// The README's table cannot drift from what the kinds declare: change a kind's attributes,
    /// and this test prints the table to paste.
    #[test]
    fn the_readme_table_is_what_the_kinds_declare() {
        let readme = include_str!("../../README.md");
        let start = readme.find(START).expect("README has the change-table start marker") + START.len();
        let end = readme[start..]
            .find(END)
            .expect("README has the change-table end marker")
            + start;
        let want = super::change_table();
        assert!(
            readme[start..end] == want,
            "README.md's change table is out of date; replace it with:\n{want}"
        );
    }

    #[test]
    fn every_field_in_the_table_is_a_config_field() {
        let mut cfg = crate::core::config::Config::default();
        // Optional fields are left out of a serialized default: give each a value.
        let some = || Some("x".to_string());
        (cfg.region, cfg.ami, cfg.certificate_arn, cfg.hosted_zone_id) = (some(), some(), some(), some());
        (cfg.domain_name, cfg.key_pair, cfg.licence.env) = (some(), some(), some());
        cfg.licence.file = Some("x".into());
        cfg.database.parameter_group_family = some();
        let cfg = toml::Value::try_from(cfg).unwrap();
        for &kind in crate::core::spec::Kind::ALL {
            for a in super::attrs(kind) {
                for f in a.fields {
                    let mut v = &cfg;
                    for part in f.split('.') {
                        v = v
                            .get(part)
                            .unwrap_or_else(|| panic!("{kind:?}.{} names `{f}`, which is not a config field", a.name));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod replace_tests {
    use super::*;
    use crate::core::diff::ChangeAction;

    /// Data is never replaced implicitly: the kinds that hold it do not opt in to
    /// create-before-destroy, and none of their attributes is a `replace` (a change that
    /// would need a new one is `forbidden`, naming how to move the data).
    #[test]
    fn data_kinds_never_replace() {
        for kind in [Kind::Bucket, Kind::FileSystem, Kind::DbInstance] {
            assert!(!replaceable(kind), "{kind:?}");
            assert!(
                attrs(kind).iter().all(|a| a.action != ChangeAction::Replace),
                "{kind:?}"
            );
        }
        assert!(replaceable(Kind::DbParameterGroup));
        assert!(replaceable(Kind::TargetGroup));
    }
}
