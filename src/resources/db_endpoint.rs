//! The database endpoint, published for the instances: this node does the long wait for
//! the RDS instance (16-30 minutes for Multi-AZ), checks that AWS really made it Multi-AZ,
//! sets the 30-day rotation schedule on the RDS-managed master secret, and writes
//! `/<deployment>/db-endpoint` = `host:port` to SSM Parameter Store, where the instances'
//! user data waits for it. Nothing else waits for the database, so compute is built
//! meanwhile.
//!
//! It also puts a resource policy on that secret (`core::policy::db_secret_policy`): only
//! the dashboard instances' role reads its value; AWS services (RDS rotates it) are not
//! affected.
//!
//! Rotation is set on the RDS-managed secret only, never on the licence secret: a plain
//! secret has no rotation function, and AWS refuses (some emulators accept and rotate it).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_secretsmanager::types::RotationRulesType;
use aws_sdk_ssm::types::ParameterType;
use tokio::time::Instant;

use super::rds::describe_instance;
use super::{Aws, ResourceKind, ec2, props};
use crate::aws::err;
use crate::aws::wait::{self, Backoff, Poll};
use crate::core::diff::{AttrSpec, Settings, settings};
use crate::core::latency::{self, Transition};
use crate::core::names;
use crate::core::policy::{self, ArnScope};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props};

pub struct DbEndpoint;

pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::update("rotation_days", &["database.rotation_days"]),
    AttrSpec::update("secret_policy", &[]),
];

/// The `secret_policy` setting when the managed secret has pi-deploy's resource policy
/// (`core::policy::db_secret_policy`); `read` compares the documents, which depend on the
/// account `desired` does not know.
pub const OUR_SECRET_POLICY: &str = "the dashboard role reads it";
/// Any other resource policy, or none.
pub const OTHER_SECRET_POLICY: &str = "another policy or none";

/// The desired settings (pure).
pub fn desired_settings(rotation_days: i64) -> Settings {
    settings([
        ("rotation_days", rotation_days.to_string()),
        ("secret_policy", OUR_SECRET_POLICY.to_string()),
    ])
}

/// The managed secret's schedule as `plan` shows it.
pub fn rotation_setting(enabled: Option<bool>, every_days: Option<i64>) -> String {
    match (enabled, every_days) {
        (Some(true), Some(d)) => d.to_string(),
        _ => "not rotated".to_string(),
    }
}

/// What the wait needs to know about the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbView {
    pub status: String,
    pub multi_az: Option<bool>,
    pub address: Option<String>,
    pub port: Option<i32>,
}

impl DbView {
    /// The view of a described instance (also `restore`'s wait).
    pub fn of_instance(db: &aws_sdk_rds::types::DbInstance) -> Self {
        Self::of(db)
    }

    fn of(db: &aws_sdk_rds::types::DbInstance) -> Self {
        Self {
            status: db.db_instance_status().unwrap_or("unknown").to_string(),
            multi_az: db.multi_az(),
            address: db.endpoint().and_then(|e| e.address()).map(String::from),
            port: db.endpoint().and_then(|e| e.port()),
        }
    }
}

/// States from which an instance does not become `available` without an operator.
pub fn is_failure_state(status: &str) -> bool {
    matches!(
        status,
        "failed" | "storage-full" | "deleting" | "restore-error" | "stopped" | "stopping"
    ) || status.starts_with("incompatible-")
        || status.starts_with("inaccessible-encryption-credentials")
}

/// One poll. `missing_for` is how long the instance has been unknown to RDS: briefly
/// after this run created it that is eventual consistency (`may_lag`, the step's window,
/// src/aws/consistency.rs); longer, or for a database an earlier run created, it was
/// deleted behind our back.
pub fn poll_db(view: Option<DbView>, missing_for: Duration, may_lag: bool) -> Poll<DbView> {
    match view {
        None if may_lag && missing_for < ec2::CONSISTENCY_BUDGET => Poll::Pending("not visible yet".into()),
        None => Poll::Failed("gone (deleted outside pi-deploy?)".into()),
        Some(v) if v.status == "available" && v.address.is_some() => Poll::Ready(v),
        Some(v) if is_failure_state(&v.status) => Poll::Failed(v.status),
        Some(v) => Poll::Pending(v.status),
    }
}

/// AWS may create a "Multi-AZ" instance Single-AZ when the second zone has no capacity,
/// and still report success: refuse to go on silently.
pub fn check_multi_az(identifier: &str, expected: bool, actual: Option<bool>) -> Result<(), ResourceError> {
    if expected && actual != Some(true) {
        return Err(ResourceError::new(
            ErrorClass::Failed,
            format!("DB instance {identifier} is Single-AZ although Multi-AZ was requested (AWS could not place the standby)"),
        )
        .with_hint(format!(
            "convert it with `aws rds modify-db-instance --db-instance-identifier {identifier} --multi-az --apply-immediately` and run `pi-deploy up` again, or set database.multi_az = false to accept a single zone"
        )));
    }
    Ok(())
}

/// RDS-managed master secrets are named `rds!db-<uuid>`; only those may be rotated here.
pub fn is_rds_managed_secret(arn: &str) -> bool {
    arn.split(':').nth(6).is_some_and(|name| name.starts_with("rds!"))
}

/// The secret whose rotation this node sets: the instance's managed master secret, taken
/// from the `db` dependency, and nothing else.
pub fn rotation_target(db: &Outputs) -> Result<&str, ResourceError> {
    let arn = db.require("secret_arn")?;
    if !is_rds_managed_secret(arn) {
        return Err(ResourceError::new(
            ErrorClass::Invalid,
            format!("refusing to set rotation on {arn}: it is not an RDS-managed master secret"),
        ));
    }
    Ok(arn)
}

/// Whether the secret's schedule differs from the wanted one.
pub fn rotation_needed(enabled: Option<bool>, every_days: Option<i64>, want_days: i64) -> bool {
    !(enabled == Some(true) && every_days == Some(want_days))
}

pub fn rotation_rules(days: i64) -> RotationRulesType {
    RotationRulesType::builder().automatically_after_days(days).build()
}

pub fn endpoint_value(address: &str, port: i32) -> String {
    format!("{address}:{port}")
}

async fn set_rotation(aws: &Aws, secret_arn: &str, days: i64) -> Result<(), ResourceError> {
    let sm = &aws.clients.secrets;
    // RDS creates the secret alongside the instance; by `available` it exists, but a
    // read can lag.
    let described = ec2::retry_not_found("reading the DB secret's rotation", || async {
        sm.describe_secret()
            .secret_id(secret_arn)
            .send()
            .await
            .map_err(err("reading the DB secret's rotation"))
    })
    .await?;
    let every = described.rotation_rules().and_then(|r| r.automatically_after_days());
    if !rotation_needed(described.rotation_enabled(), every, days) {
        return Ok(());
    }
    sm.rotate_secret()
        .secret_id(secret_arn)
        .rotation_rules(rotation_rules(days))
        .rotate_immediately(false)
        .send()
        .await
        .map_err(err("setting the DB secret's rotation schedule"))?;
    Ok(())
}

/// The dashboard role's ARN: deterministic, so the policy needs no dependency on the role
/// (a Condition may name a role that does not exist yet; a Principal may not).
fn dashboard_role_arn(aws: &Aws) -> String {
    format!(
        "arn:{}:iam::{}:role/{}",
        aws.env.partition,
        aws.env.account_id,
        names::ec2_role(&aws.env.deployment)
    )
}

fn secret_policy(aws: &Aws) -> serde_json::Value {
    let scope = ArnScope {
        partition: &aws.env.partition,
        region: &aws.env.region,
        account: &aws.env.account_id,
    };
    policy::db_secret_policy(&scope, &dashboard_role_arn(aws), &aws.env.deployment)
}

/// Whether the secret's resource policy is `secret_policy`.
async fn has_secret_policy(aws: &Aws, secret_arn: &str) -> Result<bool, ResourceError> {
    let current = aws
        .clients
        .secrets
        .get_resource_policy()
        .secret_id(secret_arn)
        .send()
        .await
        .map_err(err("reading the DB secret's resource policy"))?;
    Ok(current
        .resource_policy()
        .and_then(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .is_some_and(|p| p == secret_policy(aws)))
}

async fn put_secret_policy(aws: &Aws, secret_arn: &str) -> Result<(), ResourceError> {
    if has_secret_policy(aws, secret_arn).await? {
        return Ok(());
    }
    let desired = secret_policy(aws);
    let sm = &aws.clients.secrets;
    sm.put_resource_policy()
        .secret_id(secret_arn)
        .resource_policy(desired.to_string())
        .block_public_policy(true)
        .send()
        .await
        .map_err(err("putting the DB secret's resource policy"))?;
    Ok(())
}

/// Point what the instances read at a database (`pi-deploy restore`'s switch and its way
/// back): the managed secret's rotation schedule and resource policy, as `converge` sets
/// them, then the endpoint parameter `host:port`.
pub async fn publish(
    aws: &Aws,
    secret_arn: &str,
    rotation_days: i64,
    address: &str,
    port: &str,
) -> Result<(), ResourceError> {
    if !is_rds_managed_secret(secret_arn) {
        return Err(ResourceError::new(
            ErrorClass::Invalid,
            format!("refusing to set rotation on {secret_arn}: it is not an RDS-managed master secret"),
        ));
    }
    set_rotation(aws, secret_arn, rotation_days).await?;
    put_secret_policy(aws, secret_arn).await?;
    let name = names::db_endpoint_parameter(&aws.env.deployment);
    put_endpoint(aws, &name, &format!("{address}:{port}"), false).await
}

/// `absent`: this process's lookup found no parameter, so there is nothing to compare.
async fn put_endpoint(aws: &Aws, name: &str, value: &str, absent: bool) -> Result<(), ResourceError> {
    let ssm = &aws.clients.ssm;
    if absent {
        return put_parameter(ssm, name, value).await;
    }
    let current = ssm
        .get_parameter()
        .name(name)
        .send()
        .await
        .map_err(err("reading the endpoint parameter"));
    match current {
        Ok(out) if out.parameter().and_then(|p| p.value()) == Some(value) => return Ok(()),
        Ok(_) => {}
        Err(e) if e.is(ErrorClass::NotFound) => {}
        Err(e) => return Err(e),
    }
    put_parameter(ssm, name, value).await
}

async fn put_parameter(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) -> Result<(), ResourceError> {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::String)
        .overwrite(true)
        .description("pi-deploy: the dashboard database endpoint (host:port)")
        .send()
        .await
        .map_err(err("writing the endpoint parameter"))?;
    Ok(())
}

/// Kept by `create` (see `answers`): the lookup of this process found no parameter.
struct Absent;

#[async_trait]
impl ResourceKind for DbEndpoint {
    async fn find(&self, aws: &Aws, _cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let name = names::db_endpoint_parameter(&aws.env.deployment);
        let got = aws
            .clients
            .ssm
            .get_parameter()
            .name(&name)
            .send()
            .await
            .map_err(err("reading the endpoint parameter"));
        Ok(ec2::not_found_is_none(got)?.map(|_| Outputs::new().with("id", &name)))
    }

    /// Nothing to call yet: the parameter is written once the database is ready.
    async fn create(&self, aws: &Aws, _cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let name = names::db_endpoint_parameter(&aws.env.deployment);
        aws.answers.keep(&name, Absent);
        Ok(Outputs::new().with("id", name))
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (db, expect_multi_az, rotation_days) = props!(
            cx,
            DbEndpoint {
                db,
                expect_multi_az,
                rotation_days
            }
        );
        let db_outputs = cx.dep(db)?;
        let identifier = db_outputs.id()?.to_string();
        let started = Instant::now();
        let missing_since: Mutex<Option<Instant>> = Mutex::new(None);
        let view = wait::wait_for(
            &format!("DB instance {identifier} to become available"),
            latency::create_deadline(Kind::DbEndpoint),
            Backoff::expecting(
                Transition::DbCreate {
                    multi_az: *expect_multi_az,
                },
                aws.started.get(&identifier),
            ),
            || async {
                let view = describe_instance(aws, &identifier).await?.as_ref().map(DbView::of);
                let missing_for = {
                    let mut since = missing_since.lock().unwrap();
                    match view {
                        Some(_) => *since = None,
                        None => _ = since.get_or_insert_with(Instant::now),
                    }
                    since.map_or(Duration::ZERO, |s| s.elapsed())
                };
                Ok(poll_db(view, missing_for, crate::aws::consistency::may_lag()))
            },
        )
        .await
        .map_err(|e| match e.class {
            ErrorClass::Failed => e.with_hint(format!(
                "look at the instance's events: `aws rds describe-events --source-type db-instance --source-identifier {identifier}`"
            )),
            _ => e,
        })?;
        tracing::debug!(db = %identifier, waited_s = started.elapsed().as_secs(), "database available");
        check_multi_az(&identifier, *expect_multi_az, view.multi_az)?;
        let secret = rotation_target(db_outputs)?;
        set_rotation(aws, secret, *rotation_days).await?;
        put_secret_policy(aws, secret).await?;

        let name = outputs.id()?.to_string();
        let (address, port) = (view.address.unwrap_or_default(), view.port.unwrap_or(3306));
        let absent = aws.answers.take::<Absent>(&name).is_some();
        put_endpoint(aws, &name, &endpoint_value(&address, port), absent).await?;
        // The instances' user data waits for it: the dashboard check's transition starts.
        aws.started.note(&name);
        Ok(Outputs::new()
            .with("id", name)
            .with("address", address)
            .with("port", port.to_string()))
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, _deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::DbEndpoint { rotation_days, .. } => desired_settings(*rotation_days),
            _ => Settings::new(),
        }
    }

    /// The parameter (missing: written again) and the managed secret's rotation schedule.
    async fn read(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let (db,) = props!(cx, DbEndpoint { db });
        let got = aws
            .clients
            .ssm
            .get_parameter()
            .name(outputs.id()?)
            .send()
            .await
            .map_err(err("reading the endpoint parameter"));
        if ec2::not_found_is_none(got)?.is_none() {
            return Ok(Observed::Missing);
        }
        let Some(arn) = cx.deps.get(db.as_str()).and_then(|o| o.get("secret_arn")) else {
            return Ok(Observed::Present(Settings::new()));
        };
        let described = aws
            .clients
            .secrets
            .describe_secret()
            .secret_id(arn)
            .send()
            .await
            .map_err(err("reading the DB secret's rotation"));
        let Some(d) = ec2::not_found_is_none(described)? else {
            return Ok(Observed::Present(Settings::new()));
        };
        let every = d.rotation_rules().and_then(|r| r.automatically_after_days());
        let ours = has_secret_policy(aws, arn).await?;
        Ok(Observed::Present(settings([
            ("rotation_days", rotation_setting(d.rotation_enabled(), every)),
            (
                "secret_policy",
                if ours { OUR_SECRET_POLICY } else { OTHER_SECRET_POLICY }.to_string(),
            ),
        ])))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let name = cx.outputs.id()?;
        let deleted = aws
            .clients
            .ssm
            .delete_parameter()
            .name(name)
            .send()
            .await
            .map_err(err("deleting the endpoint parameter"));
        match deleted {
            Err(e) if e.is(ErrorClass::NotFound) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(status: &str, multi_az: bool) -> DbView {
        DbView {
            status: status.into(),
            multi_az: Some(multi_az),
            address: (status == "available").then(|| "pi-db.abc.eu-west-1.rds.amazonaws.com".into()),
            port: Some(3306),
        }
    }

    /// Polls a scripted sequence of describes through the real wait helper.
    async fn wait_scripted(script: Vec<Option<DbView>>) -> Result<DbView, ResourceError> {
        let steps = Mutex::new(script);
        wait::wait_for(
            "the database",
            latency::create_deadline(Kind::DbEndpoint),
            Backoff::SLOW,
            || {
                let mut s = steps.lock().unwrap();
                let next = if s.len() > 1 { s.remove(0) } else { s[0].clone() };
                std::future::ready(Ok(poll_db(next, Duration::ZERO, true)))
            },
        )
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn creating_backing_up_then_available() {
        let start = Instant::now();
        let script = vec![
            None,
            Some(view("creating", true)),
            Some(view("creating", true)),
            Some(view("backing-up", true)),
            Some(view("configuring-enhanced-monitoring", true)),
            Some(view("available", true)),
        ];
        let v = wait_scripted(script).await.unwrap();
        assert_eq!(v.status, "available");
        assert_eq!(
            endpoint_value(v.address.as_deref().unwrap(), v.port.unwrap()),
            "pi-db.abc.eu-west-1.rds.amazonaws.com:3306"
        );
        // Five backoff sleeps, well under the SDK waiter's 30 s fixed delay each.
        assert!(start.elapsed() < Duration::from_secs(60), "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn failure_states_stop_the_wait() {
        for bad in [
            "failed",
            "incompatible-network",
            "incompatible-parameters",
            "storage-full",
            "deleting",
        ] {
            let e = wait_scripted(vec![Some(view("creating", true)), Some(view(bad, true))])
                .await
                .unwrap_err();
            assert_eq!(e.class, ErrorClass::Failed, "{bad}");
            assert!(e.message.contains(bad), "{e}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn never_available_times_out_naming_the_last_state() {
        let e = wait_scripted(vec![Some(view("creating", true))]).await.unwrap_err();
        assert_eq!(e.class, ErrorClass::Timeout);
        assert!(e.message.contains("creating"), "{e}");
    }

    #[test]
    fn an_instance_missing_for_long_is_a_failure() {
        assert!(matches!(poll_db(None, Duration::from_secs(5), true), Poll::Pending(_)));
        assert!(matches!(poll_db(None, Duration::from_secs(600), true), Poll::Failed(_)));
        // A database this run did not just create is gone at the first NotFound.
        assert!(matches!(poll_db(None, Duration::ZERO, false), Poll::Failed(_)));
    }

    #[test]
    fn silently_single_az_is_a_clear_error() {
        assert!(check_multi_az("pi-db", true, Some(true)).is_ok());
        assert!(check_multi_az("pi-db", false, Some(false)).is_ok());
        assert!(check_multi_az("pi-db", false, Some(true)).is_ok());
        for actual in [Some(false), None] {
            let e = check_multi_az("pi-db", true, actual).unwrap_err();
            assert!(e.message.contains("Single-AZ") && e.message.contains("pi-db"), "{e}");
            assert!(e.hint.as_deref().unwrap().contains("--multi-az"));
        }
    }

    #[test]
    fn only_the_rds_managed_secret_is_ever_rotated() {
        let managed =
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0a1b2c3d-1111-2222-3333-444455556666-AbCdEf";
        let licence = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pi-deploy/pi/licence-AbCdEf";
        assert!(is_rds_managed_secret(managed));
        assert!(!is_rds_managed_secret(licence));
        assert_eq!(
            rotation_target(&Outputs::new().with("id", "pi-db").with("secret_arn", managed)).unwrap(),
            managed
        );
        assert!(rotation_target(&Outputs::new().with("id", "pi-db").with("secret_arn", licence)).is_err());
        assert!(rotation_target(&Outputs::new().with("id", "pi-db")).is_err());
    }

    /// Rotation is set by the endpoint node on its `db` dependency's secret only; the
    /// licence secret's spec has no rotation at all (AWS refuses rotation without a function).
    #[test]
    fn the_licence_secret_is_never_a_rotation_target_in_the_spec() {
        use crate::core::config::Config;
        use crate::core::spec::{self, Props, SpecInput};
        let mut cfg = Config::default();
        cfg.licence.env = Some("PI_LICENCE".into());
        let nodes = spec::build(&SpecInput {
            config: &cfg,
            region: "eu-west-1",
            azs: ["eu-west-1a".into(), "eu-west-1b".into()],
        });
        let licence = nodes
            .iter()
            .find(|n| n.kind == Kind::Secret)
            .expect("a licence secret when a licence is configured");
        assert!(matches!(&licence.props, Props::Secret { .. }));
        let endpoints: Vec<_> = nodes.iter().filter(|n| n.kind == Kind::DbEndpoint).collect();
        assert_eq!(endpoints.len(), 1);
        assert_eq!(endpoints[0].deps, vec!["db".to_string()]);
        assert!(matches!(&endpoints[0].props, Props::DbEndpoint { db, rotation_days: 30, .. } if db == "db"));
        let db = nodes.iter().find(|n| n.key == "db").unwrap();
        assert_eq!(db.kind, Kind::DbInstance);
        assert!(!db.deps.contains(&licence.key));
        crate::core::graph::Graph::new(nodes.clone()).expect("valid graph");
    }

    #[test]
    fn a_changed_rotation_schedule_is_an_update() {
        use crate::core::diff::{ChangeAction, diff};
        let live = settings([("rotation_days", rotation_setting(Some(true), Some(30)))]);
        assert!(diff(ATTRS, &desired_settings(30), &live, None).is_empty());
        let c = diff(ATTRS, &desired_settings(7), &live, None);
        assert_eq!(
            (c[0].old.as_str(), c[0].new.as_str(), c[0].action),
            ("30", "7", ChangeAction::Update)
        );
        assert_eq!(rotation_setting(Some(false), Some(30)), "not rotated");
    }

    #[test]
    fn rotation_is_set_only_when_the_schedule_differs() {
        assert!(rotation_needed(None, None, 30));
        assert!(rotation_needed(Some(false), Some(30), 30));
        assert!(rotation_needed(Some(true), Some(7), 30));
        assert!(!rotation_needed(Some(true), Some(30), 30));
        assert_eq!(rotation_rules(30).automatically_after_days(), Some(30));
    }
}
