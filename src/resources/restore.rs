//! The AWS calls of `pi-deploy restore` (the database): the two RDS restores into a new
//! instance with the blueprint's settings, the wait until it is available, the switch of
//! what the instances read (the endpoint parameter; the managed secret's policy and
//! rotation), and the delete of the instance a restore leaves (`--finish`, `--abort`).
//!
//! Idempotent by the new instance's identifier: a rerun finds the instance a killed run
//! asked for (DescribeDBInstances) before asking again, and takes it on
//! DBInstanceAlreadyExists.

use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_rds::types as t;
use tokio::time::Instant;

use super::db_endpoint::{self, DbView};
use super::rds::{describe_instance, rds_tags};
use super::{Aws, ResourceKind};
use crate::aws::err;
use crate::aws::wait::{self, Backoff};
use crate::core::latency;
use crate::core::resource::{DeleteCtx, ErrorClass, Outputs, ResourceError};
use crate::core::restore::{Endpoint, SOURCE_TAG, Source};
use crate::core::spec::{DbSettings, Kind};

/// What a restored instance is created with besides its source: the blueprint's settings.
pub struct Target<'a> {
    pub identifier: &'a str,
    pub db: &'a DbSettings,
    pub subnet_group: &'a str,
    pub parameter_group: &'a str,
    pub security_group: &'a str,
    /// The instance the deployment runs on (the source of a point-in-time restore).
    pub current: &'a str,
}

fn tags(aws: &Aws, source: &Source) -> Vec<t::Tag> {
    let mut tags = rds_tags(&aws.env.deployment, "db");
    tags.push(t::Tag::builder().key(SOURCE_TAG).value(source.tag_value()).build());
    tags
}

/// Ask RDS for the new instance, unless it exists already (an earlier run asked).
/// Returns whether this call asked.
pub async fn restore(aws: &Aws, source: &Source, to: &Target<'_>) -> Result<bool, ResourceError> {
    if describe_instance(aws, to.identifier).await?.is_some() {
        return Ok(false);
    }
    let rds = &aws.clients.rds;
    let db = to.db;
    let logs = (!db.log_exports.is_empty()).then(|| db.log_exports.clone());
    // Encryption follows the source (a snapshot of an encrypted instance restores
    // encrypted; RDS has no switch for it on a restore).
    let sent = match source {
        Source::Snapshot { id } => rds
            .restore_db_instance_from_db_snapshot()
            .db_instance_identifier(to.identifier)
            .db_snapshot_identifier(id)
            .db_instance_class(&db.instance_class)
            .db_subnet_group_name(to.subnet_group)
            .db_parameter_group_name(to.parameter_group)
            .vpc_security_group_ids(to.security_group)
            .multi_az(db.multi_az)
            .publicly_accessible(false)
            .storage_type("gp3")
            .manage_master_user_password(true)
            .deletion_protection(db.deletion_protection)
            .backup_retention_period(db.backup_retention_days)
            .copy_tags_to_snapshot(true)
            .set_enable_cloudwatch_logs_exports(logs)
            .set_tags(Some(tags(aws, source)))
            .send()
            .await
            .map(|o| o.db_instance().cloned())
            .map_err(err("restoring the DB snapshot")),
        Source::Time { .. } | Source::Latest => {
            let req = rds
                .restore_db_instance_to_point_in_time()
                .source_db_instance_identifier(to.current)
                .target_db_instance_identifier(to.identifier)
                .db_instance_class(&db.instance_class)
                .db_subnet_group_name(to.subnet_group)
                .db_parameter_group_name(to.parameter_group)
                .vpc_security_group_ids(to.security_group)
                .multi_az(db.multi_az)
                .publicly_accessible(false)
                .storage_type("gp3")
                .manage_master_user_password(true)
                .deletion_protection(db.deletion_protection)
                .backup_retention_period(db.backup_retention_days)
                .copy_tags_to_snapshot(true)
                .set_enable_cloudwatch_logs_exports(logs)
                .set_tags(Some(tags(aws, source)));
            let req = match source {
                Source::Time { at } => req.restore_time(aws_smithy_types::DateTime::from_secs(at.timestamp())),
                _ => req.use_latest_restorable_time(true),
            };
            req.send()
                .await
                .map(|o| o.db_instance().cloned())
                .map_err(err("restoring the DB instance to a point in time"))
        }
    };
    match sent {
        Ok(Some(d)) => {
            if let Some(id) = d.db_instance_identifier() {
                aws.started.note(id);
            }
            Ok(true)
        }
        Ok(None) => Ok(true),
        Err(e) if e.is(ErrorClass::AlreadyExists) => Ok(false),
        Err(e) if e.is(ErrorClass::NotFound) => Err(match source {
            Source::Snapshot { id } => e.with_hint(format!(
                "no DB snapshot `{id}` in this account and region: list them with `pi-deploy snapshot --list`"
            )),
            _ => e,
        }),
        Err(e) => Err(e.with_hint(
            "a point in time must lie within the instance's backup retention period, after its earliest restorable time; see `aws rds describe-db-instances --query 'DBInstances[].[EarliestRestorableTime,LatestRestorableTime]'`",
        )),
    }
}

/// Wait until the restored instance is available; its outputs (as the `db` record keeps
/// them) and endpoint. `progress` is told each new status.
pub async fn wait_available(
    aws: &Aws,
    identifier: &str,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(Outputs, Endpoint), ResourceError> {
    let last = Mutex::new(String::new());
    let missing_since: Mutex<Option<Instant>> = Mutex::new(None);
    let view = wait::wait_for(
        &format!("restored DB instance {identifier} to become available"),
        latency::create_deadline(Kind::DbEndpoint),
        Backoff::SLOW,
        || async {
            let db = describe_instance(aws, identifier).await?;
            let view = db.as_ref().map(db_endpoint::DbView::of_instance);
            let missing_for = {
                let mut since = missing_since.lock().unwrap();
                match view {
                    Some(_) => *since = None,
                    None => _ = since.get_or_insert_with(Instant::now),
                }
                since.map_or(Duration::ZERO, |s| s.elapsed())
            };
            let seen = view.as_ref().map_or("not visible yet".to_string(), |v| v.status.clone());
            {
                let mut l = last.lock().unwrap();
                if *l != seen {
                    progress(&seen);
                    *l = seen;
                }
            }
            Ok(db_endpoint::poll_db(view, missing_for, true))
        },
    )
    .await
    .map_err(|e| match e.class {
        ErrorClass::Failed => e.with_hint(format!(
            "look at the instance's events: `aws rds describe-events --source-type db-instance --source-identifier {identifier}`; `pi-deploy restore --abort` deletes it and keeps the deployment as it was"
        )),
        _ => e,
    })?;
    let db = describe_instance(aws, identifier)
        .await?
        .ok_or_else(|| ResourceError::new(ErrorClass::Failed, format!("DB instance {identifier} vanished")))?;
    let outputs = outputs_of(&db);
    if outputs.get("secret_arn").is_none() {
        return Err(ResourceError::new(
            ErrorClass::Failed,
            format!("the restored DB instance {identifier} has no RDS-managed master secret"),
        )
        .with_hint(format!(
            "run `aws rds modify-db-instance --db-instance-identifier {identifier} --manage-master-user-password --apply-immediately`, then the same restore command again"
        )));
    }
    let DbView { address, port, .. } = view;
    Ok((
        outputs,
        Endpoint {
            address: address.unwrap_or_default(),
            port: port.unwrap_or(3306).to_string(),
        },
    ))
}

/// The `db` record's outputs of an instance.
fn outputs_of(db: &t::DbInstance) -> Outputs {
    let mut o = Outputs::new()
        .with("id", db.db_instance_identifier().unwrap_or_default())
        .with("arn", db.db_instance_arn().unwrap_or_default())
        .with("resource_id", db.dbi_resource_id().unwrap_or_default());
    if let Some(arn) = db.master_user_secret().and_then(|s| s.secret_arn()) {
        o.set("secret_arn", arn);
    }
    o
}

/// Point what the instances read at `endpoint` with `secret_arn`: the managed secret's
/// rotation and resource policy (as `up` sets them), then the endpoint parameter.
pub async fn publish(
    aws: &Aws,
    secret_arn: &str,
    rotation_days: i64,
    endpoint: &Endpoint,
) -> Result<(), ResourceError> {
    db_endpoint::publish(aws, secret_arn, rotation_days, &endpoint.address, &endpoint.port).await
}

/// The instance's status, `None` when RDS does not know it.
pub async fn status(aws: &Aws, identifier: &str) -> Result<Option<String>, ResourceError> {
    Ok(describe_instance(aws, identifier)
        .await?
        .map(|d| d.db_instance_status().unwrap_or("unknown").to_string()))
}

/// Delete an instance a restore leaves, as `destroy` deletes the database (the DB instance
/// kind's delete: deletion protection turned off when `aws.env.destroy` says so, a final
/// snapshot `<deployment>-<key>-final-<time>` unless skipped), and wait until it is gone.
pub async fn delete(aws: &Aws, key: &str, identifier: &str) -> Result<(), ResourceError> {
    let outputs = Outputs::new().with("id", identifier);
    super::db_instance::DbInstance
        .delete(
            aws,
            &DeleteCtx {
                key,
                kind: Kind::DbInstance,
                outputs: &outputs,
            },
        )
        .await
}
