//! The AWS calls of `pi-deploy snapshot` (core::snapshot): the manual DB snapshot (RDS), the
//! file system's on-demand backup (AWS Backup: the vault, the role AWS Backup assumes, the
//! job), the read checks before them, and the lists `snapshot --list` prints.
//!
//! The backup job's calls go through the small `BackupJobs` trait, so its error paths (a job
//! that ends FAILED or ABORTED, a vault whose access policy denies StartBackupJob, a role IAM
//! has not propagated yet) are tested on a scripted fake; moto 5.2.5 has no backup jobs (the
//! emulator launcher answers them, tests/emu/moto_launcher.py).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_backup::types::RecoveryPointStatus;

use super::rds::describe_instance;
use super::{Aws, ec2};
use crate::aws::wait::{self, Backoff, Poll};
use crate::aws::{err, error, tags};
use crate::core::policy;
use crate::core::resource::{ErrorClass, ResourceError};
use crate::core::snapshot::{self as snap, Item};

/// How long the waits go on. A first backup of a large file system takes hours; a run that
/// stops at the deadline is resumed by running the same command again (the state keeps the
/// job).
pub const DB_SNAPSHOT_DEADLINE: Duration = Duration::from_secs(4 * 3600);
pub const BACKUP_JOB_DEADLINE: Duration = Duration::from_secs(8 * 3600);
/// IAM propagation of a new role to AWS Backup: seconds, rarely a couple of minutes.
const ROLE_PROPAGATION_BUDGET: Duration = Duration::from_secs(120);

fn to_chrono(t: &aws_smithy_types::DateTime) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

// ---- read checks ---------------------------------------------------------------------------

/// The DB instance's status (`available`, `backing-up`...), `None` when RDS does not know it.
pub async fn db_instance_status(aws: &Aws, id: &str) -> Result<Option<String>, ResourceError> {
    Ok(describe_instance(aws, id)
        .await?
        .map(|db| db.db_instance_status().unwrap_or("unknown").to_string()))
}

/// The file system's life cycle state (`available`...), `None` when EFS does not know it.
pub async fn file_system_state(aws: &Aws, id: &str) -> Result<Option<String>, ResourceError> {
    let out = aws
        .clients
        .efs
        .describe_file_systems()
        .file_system_id(id)
        .send()
        .await
        .map_err(err("describing the file system"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| {
        o.file_systems()
            .first()
            .map(|f| f.life_cycle_state().as_str().to_string())
    }))
}

// ---- the DB snapshot -----------------------------------------------------------------------

/// The tags of both halves: the deployment's three (`pi-deploy:key` = `snapshot/<name>`), the
/// name and the label.
pub fn snapshot_tags(deployment: &str, name: &str, label: Option<&str>) -> Vec<(String, String)> {
    let mut t: Vec<(String, String)> = tags::pairs(deployment, &format!("snapshot/{name}")).into();
    t[0].1 = name.to_string();
    t.push((snap::NAME_TAG.into(), name.into()));
    if let Some(l) = label {
        t.push((snap::LABEL_TAG.into(), l.into()));
    }
    t
}

/// The DB snapshot's status by identifier, `None` when RDS does not know it.
pub async fn db_snapshot_status(aws: &Aws, name: &str) -> Result<Option<String>, ResourceError> {
    Ok(db_snapshot(aws, name).await?.map(|s| s.status))
}

/// What a restore needs to know of a DB snapshot before it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbSnapshotInfo {
    pub status: String,
    /// The engine version the snapshot was taken on: a restore comes up on it.
    pub engine_version: Option<String>,
}

/// DescribeDBSnapshots of one snapshot; None when there is no such snapshot.
pub async fn db_snapshot(aws: &Aws, name: &str) -> Result<Option<DbSnapshotInfo>, ResourceError> {
    let out = aws
        .clients
        .rds
        .describe_db_snapshots()
        .db_snapshot_identifier(name)
        .send()
        .await
        .map_err(err("describing the DB snapshot"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| {
        o.db_snapshots().first().map(|s| DbSnapshotInfo {
            status: s.status().unwrap_or("unknown").to_string(),
            engine_version: s.engine_version().map(String::from),
        })
    }))
}

/// CreateDBSnapshot, unless a snapshot of that identifier exists (a rerun after a crash):
/// the identifier is the idempotency key RDS offers.
pub async fn create_db_snapshot(
    aws: &Aws,
    name: &str,
    db_instance: &str,
    tag_pairs: &[(String, String)],
) -> Result<bool, ResourceError> {
    if db_snapshot_status(aws, name).await?.is_some() {
        return Ok(false);
    }
    let tags: Vec<aws_sdk_rds::types::Tag> = tag_pairs
        .iter()
        .map(|(k, v)| aws_sdk_rds::types::Tag::builder().key(k).value(v).build())
        .collect();
    // Refused while the instance is busy (a backup window, a modification): retried.
    let what = format!("creating DB snapshot {name}");
    let created = wait::retry(
        &what,
        Duration::from_secs(600),
        Backoff::SLOW,
        &[ErrorClass::InUse],
        || {
            let req = aws
                .clients
                .rds
                .create_db_snapshot()
                .db_snapshot_identifier(name)
                .db_instance_identifier(db_instance)
                .set_tags(Some(tags.clone()));
            let what = what.clone();
            async move { req.send().await.map(|_| ()).map_err(|e| crate::aws::sdk(what, e)) }
        },
    )
    .await;
    match created {
        Ok(()) => Ok(true),
        // Made by a concurrent attempt whose answer was lost: the same snapshot.
        Err(e) if e.is(ErrorClass::AlreadyExists) => Ok(false),
        Err(e) => Err(e),
    }
}

/// One poll of the DB snapshot: `available` is done; `failed` will not recover; not listed
/// yet right after the create is "not yet".
pub fn db_snapshot_poll(status: Option<&str>) -> Poll<()> {
    match status {
        Some("available") => Poll::Ready(()),
        Some(s @ ("failed" | "error" | "deleted" | "deleting")) => Poll::Failed(s.to_string()),
        Some(s) => Poll::Pending(s.to_string()),
        None => Poll::Pending("not listed yet".into()),
    }
}

// ---- the file system's backup --------------------------------------------------------------

/// The account's `Default` vault, created (untagged: it is the account's, not the
/// deployment's) when the account has none yet.
pub async fn ensure_vault(aws: &Aws, creator_request_id: &str) -> Result<(), ResourceError> {
    let described = aws
        .clients
        .backup
        .describe_backup_vault()
        .backup_vault_name(snap::VAULT)
        .send()
        .await
        .map_err(err("describing the AWS Backup vault `Default`"));
    if ec2::not_found_is_none(described).map_err(vault_hint)?.is_some() {
        return Ok(());
    }
    let created = aws
        .clients
        .backup
        .create_backup_vault()
        .backup_vault_name(snap::VAULT)
        .creator_request_id(creator_request_id)
        .send()
        .await
        .map_err(err("creating the AWS Backup vault `Default`"));
    match created {
        Ok(_) => Ok(()),
        Err(e) if e.is(ErrorClass::AlreadyExists) => Ok(()),
        Err(e) => Err(vault_hint(e)),
    }
}

fn vault_hint(e: ResourceError) -> ResourceError {
    if error::is_denied(&e) {
        e.with_hint("the caller needs backup:DescribeBackupVault and backup:CreateBackupVault (the account's `Default` vault), or create the vault `Default` in the AWS Backup console once")
    } else {
        e
    }
}

/// The role AWS Backup assumes: its ARN and whether it carries this deployment's tags;
/// `None` when there is none.
pub async fn get_backup_role(aws: &Aws, name: &str) -> Result<Option<(String, bool)>, ResourceError> {
    let out = aws
        .clients
        .iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .map_err(err("reading the AWS Backup role"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| {
        o.role().map(|r| {
            let has = |k: &str, v: &str| r.tags().iter().any(|t| t.key() == k && t.value() == v);
            let ours = has(tags::DEPLOYMENT_TAG, &aws.env.deployment) && has(tags::KEY_TAG, ROLE_KEY);
            (r.arn().to_string(), ours)
        })
    }))
}

/// The role's `pi-deploy:key` tag (and its key in `destroy`'s records).
pub const ROLE_KEY: &str = "backup-role";

/// The role AWS Backup assumes, created when missing: trusted by `backup.amazonaws.com` for
/// this account only (`aws:SourceAccount`), tagged on create, with AWS's managed policy for
/// backups attached (AttachRolePolicy is idempotent). A role of that name without this
/// deployment's tags is refused, never adopted.
pub async fn ensure_backup_role(aws: &Aws, name: &str) -> Result<String, ResourceError> {
    let arn = match get_backup_role(aws, name).await? {
        Some((arn, true)) => arn,
        Some((_, false)) => {
            return Err(ResourceError::new(
                ErrorClass::AlreadyExists,
                format!("an IAM role named `{name}` exists without this deployment's tags"),
            )
            .with_hint(
                "another tool or deployment owns that name: delete or rename that role, then run the command again",
            ));
        }
        None => {
            let trust = policy::trust_policy(snap::BACKUP_SERVICE, &aws.env.account_id);
            let tag_list: Vec<aws_sdk_iam::types::Tag> = tags::pairs(&aws.env.deployment, ROLE_KEY)
                .into_iter()
                .map(|(k, v)| aws_sdk_iam::types::Tag::builder().key(k).value(v).build())
                .collect::<Result<_, _>>()
                .map_err(|e| ResourceError::new(ErrorClass::Invalid, format!("building the role's tags: {e}")))?;
            let created = aws
                .clients
                .iam
                .create_role()
                .role_name(name)
                .description("AWS Backup backs up the pi-deploy deployment's file system with this role")
                .assume_role_policy_document(trust.to_string())
                .set_tags(Some(tag_list))
                .send()
                .await
                .map_err(err("creating the AWS Backup role"));
            match created {
                Ok(o) => o.role().map(|r| r.arn().to_string()).unwrap_or_default(),
                // Created by the run a crash interrupted: read it again (and check its tags).
                Err(e) if e.is(ErrorClass::AlreadyExists) => match get_backup_role(aws, name).await? {
                    Some((arn, true)) => arn,
                    _ => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    };
    let managed = policy::managed_policy_arn(&aws.env.partition, snap::BACKUP_MANAGED_POLICY);
    aws.clients
        .iam
        .attach_role_policy()
        .role_name(name)
        .policy_arn(&managed)
        .send()
        .await
        .map_err(err(
            "attaching AWSBackupServiceRolePolicyForBackup to the AWS Backup role",
        ))?;
    Ok(arn)
}

/// What StartBackupJob is asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartJob {
    pub vault: String,
    pub resource_arn: String,
    pub role_arn: String,
    /// From the state's lineage and the snapshot's name: a repeated call after a crash is
    /// answered with the job the first one started.
    pub idempotency_token: String,
    pub tags: Vec<(String, String)>,
}

/// What DescribeBackupJob says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JobView {
    pub state: String,
    pub message: Option<String>,
    pub recovery_point_arn: Option<String>,
    pub percent_done: Option<String>,
}

/// The two AWS Backup job calls, behind a trait for the scripted fake of the tests.
#[async_trait]
pub trait BackupJobs: Send + Sync {
    /// StartBackupJob; the job's id.
    async fn start(&self, req: &StartJob) -> Result<String, ResourceError>;
    /// DescribeBackupJob.
    async fn describe(&self, job_id: &str) -> Result<JobView, ResourceError>;
}

/// The real calls.
pub struct AwsBackupJobs<'a>(pub &'a Aws);

#[async_trait]
impl BackupJobs for AwsBackupJobs<'_> {
    async fn start(&self, req: &StartJob) -> Result<String, ResourceError> {
        let out = self
            .0
            .clients
            .backup
            .start_backup_job()
            .backup_vault_name(&req.vault)
            .resource_arn(&req.resource_arn)
            .iam_role_arn(&req.role_arn)
            .idempotency_token(&req.idempotency_token)
            .set_recovery_point_tags(Some(req.tags.iter().cloned().collect::<HashMap<_, _>>()))
            .send()
            .await
            .map_err(err("starting the file system's AWS Backup job"))?;
        out.backup_job_id()
            .map(String::from)
            .ok_or_else(|| ResourceError::new(ErrorClass::Other, "StartBackupJob answered without a job id"))
    }

    async fn describe(&self, job_id: &str) -> Result<JobView, ResourceError> {
        let out = self
            .0
            .clients
            .backup
            .describe_backup_job()
            .backup_job_id(job_id)
            .send()
            .await
            .map_err(err("describing the AWS Backup job"))?;
        Ok(JobView {
            state: out.state().map(|s| s.as_str().to_string()).unwrap_or_default(),
            message: out.status_message().map(String::from),
            recovery_point_arn: out.recovery_point_arn().map(String::from),
            percent_done: out.percent_done().map(String::from),
        })
    }
}

/// StartBackupJob, retried while IAM has not propagated the new role to AWS Backup; a refusal
/// by the vault's access policy or the caller's permissions says what to fix.
pub async fn start_job(api: &dyn BackupJobs, req: &StartJob) -> Result<String, ResourceError> {
    wait::retry(
        "starting the file system's AWS Backup job",
        ROLE_PROPAGATION_BUDGET,
        Backoff::QUICK,
        &[ErrorClass::IamPropagation],
        || api.start(req),
    )
    .await
    .map_err(|e| {
        if error::is_denied(&e) {
            e.with_hint(format!(
                "AWS Backup refused the job: the vault `{}` may have an access policy that denies backup:StartBackupJob (remove that statement or allow this caller), or the caller lacks backup:StartBackupJob on the vault or iam:PassRole on {}",
                req.vault, req.role_arn
            ))
        } else {
            e
        }
    })
}

/// Terminal job states that are not a completed backup.
pub const JOB_FAILED_STATES: &[&str] = &["FAILED", "ABORTED", "ABORTING", "EXPIRED", "PARTIAL"];

/// One poll of the backup job: COMPLETED with its recovery point; FAILED, ABORTED, EXPIRED,
/// PARTIAL (with AWS's message) will not recover; anything else (CREATED, PENDING, RUNNING)
/// is not yet.
pub fn job_poll(v: &JobView) -> Poll<String> {
    match v.state.as_str() {
        "COMPLETED" => match &v.recovery_point_arn {
            Some(arn) => Poll::Ready(arn.clone()),
            None => Poll::Pending("COMPLETED without a recovery point yet".into()),
        },
        s if JOB_FAILED_STATES.contains(&s) => Poll::Failed(match &v.message {
            Some(m) => format!("{s}: {m}"),
            None => s.to_string(),
        }),
        s => Poll::Pending(match &v.percent_done {
            Some(p) => format!("{s} {p}%"),
            None => s.to_string(),
        }),
    }
}

/// Whether the recorded job ended without a backup (a rerun starts another).
pub fn job_failed(v: &JobView) -> bool {
    JOB_FAILED_STATES.contains(&v.state.as_str())
}

/// Wait for the job, with a growing backoff from 2 s (the one wait helper); `progress` sees
/// each new state. The recovery point's ARN.
pub async fn wait_job(
    api: &dyn BackupJobs,
    job_id: &str,
    deadline: Duration,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<String, ResourceError> {
    let last = std::sync::Mutex::new(String::new());
    wait::wait_for(&format!("AWS Backup job {job_id}"), deadline, Backoff::SLOW, || async {
        let v = api.describe(job_id).await?;
        let poll = job_poll(&v);
        let seen = match &poll {
            Poll::Pending(s) | Poll::Failed(s) => s.clone(),
            Poll::Ready(_) => "COMPLETED".into(),
        };
        let mut l = last.lock().unwrap();
        if *l != seen {
            progress(&seen);
            *l = seen;
        }
        Ok(poll)
    })
    .await
}

/// Wait for the DB snapshot, with the same backoff.
pub async fn wait_db_snapshot(
    aws: &Aws,
    name: &str,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<(), ResourceError> {
    let last = std::sync::Mutex::new(String::new());
    wait::wait_for(
        &format!("DB snapshot {name}"),
        DB_SNAPSHOT_DEADLINE,
        Backoff::SLOW,
        || async {
            let status = db_snapshot_status(aws, name).await?;
            let poll = db_snapshot_poll(status.as_deref());
            let seen = status.unwrap_or_else(|| "not listed yet".into());
            let mut l = last.lock().unwrap();
            if *l != seen {
                progress(&seen);
                *l = seen;
            }
            Ok(poll)
        },
    )
    .await
}

// ---- the lists -----------------------------------------------------------------------------

fn rds_tag<'a>(tags: &'a [aws_sdk_rds::types::Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}

/// The deployment's manual DB snapshots of its instance (tagged with the deployment: those of
/// `snapshot` and `destroy`'s final snapshots).
pub async fn db_snapshots(aws: &Aws, db_instance: &str) -> Result<Vec<Item>, ResourceError> {
    let found = aws
        .clients
        .rds
        .describe_db_snapshots()
        .db_instance_identifier(db_instance)
        .snapshot_type("manual")
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(err("listing the DB snapshots"))?;
    Ok(found
        .iter()
        .filter(|s| rds_tag(s.tag_list(), tags::DEPLOYMENT_TAG) == Some(aws.env.deployment.as_str()))
        .map(|s| Item {
            kind: snap::DB_SNAPSHOT,
            id: s.db_snapshot_identifier().unwrap_or_default().to_string(),
            name: rds_tag(s.tag_list(), snap::NAME_TAG).map(String::from),
            label: rds_tag(s.tag_list(), snap::LABEL_TAG).map(String::from),
            created: s.snapshot_create_time().and_then(to_chrono),
            size_bytes: None,
            size_gib: s.allocated_storage(),
            status: s.status().unwrap_or("unknown").to_string(),
        })
        .collect())
}

/// The file system's recovery points (any vault), with the name and label from their tags.
pub async fn recovery_points(aws: &Aws, file_system_arn: &str) -> Result<Vec<Item>, ResourceError> {
    let found = aws
        .clients
        .backup
        .list_recovery_points_by_resource()
        .resource_arn(file_system_arn)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(err("listing the file system's recovery points"))?;
    let mut items = Vec::new();
    for rp in found {
        let arn = rp.recovery_point_arn().unwrap_or_default().to_string();
        // Recovery points of other vaults (EFS's automatic backups) may not be readable
        // here: listed without a label then.
        let t = recovery_point_tags(aws, &arn).await;
        items.push(recovery_point_item(
            arn,
            &t,
            rp.creation_date(),
            rp.backup_size_bytes(),
            rp.status(),
        ));
    }
    Ok(items)
}

/// A recovery point's tags; empty when they cannot be read.
async fn recovery_point_tags(aws: &Aws, arn: &str) -> HashMap<String, String> {
    aws.clients
        .backup
        .list_tags()
        .resource_arn(arn)
        .send()
        .await
        .ok()
        .and_then(|o| o.tags().cloned())
        .unwrap_or_default()
}

fn recovery_point_item(
    arn: String,
    tags: &HashMap<String, String>,
    created: Option<&aws_smithy_types::DateTime>,
    size_bytes: Option<i64>,
    status: Option<&RecoveryPointStatus>,
) -> Item {
    Item {
        kind: snap::RECOVERY_POINT,
        id: arn,
        name: tags.get(snap::NAME_TAG).cloned(),
        label: tags.get(snap::LABEL_TAG).cloned(),
        created: created.and_then(to_chrono),
        size_bytes,
        size_gib: None,
        status: status.map(RecoveryPointStatus::as_str).unwrap_or("unknown").to_string(),
    }
}

/// The recovery points `snapshot` made of the deployment's earlier file systems (a
/// whole-file-system restore replaced them; `--finish` deleted them, their recovery points
/// stay): EFS recovery points of `snap::VAULT` of another file system than `current`,
/// tagged with the deployment. Each candidate's tags are read (AWS Backup lists by vault
/// without tags); none when the vault does not exist.
pub async fn earlier_recovery_points(aws: &Aws, current: &str) -> Result<Vec<Item>, ResourceError> {
    let listed = aws
        .clients
        .backup
        .list_recovery_points_by_backup_vault()
        .backup_vault_name(snap::VAULT)
        .by_resource_type("EFS")
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(err("listing the recovery points of the AWS Backup vault"));
    let Some(listed) = ec2::not_found_is_none(listed)? else {
        return Ok(Vec::new());
    };
    let mut items = Vec::new();
    for rp in listed
        .iter()
        .filter(|rp| rp.resource_arn().is_some_and(|r| r != current))
    {
        let arn = rp.recovery_point_arn().unwrap_or_default().to_string();
        let t = recovery_point_tags(aws, &arn).await;
        if t.get(tags::DEPLOYMENT_TAG).map(String::as_str) == Some(aws.env.deployment.as_str()) {
            items.push(recovery_point_item(
                arn,
                &t,
                rp.creation_date(),
                rp.backup_size_in_bytes(),
                rp.status(),
            ));
        }
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Scripted answers: each call takes the next; the last one repeats.
    struct Scripted {
        starts: Mutex<Vec<Result<String, (String, String)>>>,
        jobs: Mutex<Vec<JobView>>,
        start_calls: Mutex<usize>,
        describe_calls: Mutex<usize>,
    }

    fn job(state: &str, message: Option<&str>, rp: Option<&str>) -> JobView {
        JobView {
            state: state.into(),
            message: message.map(String::from),
            recovery_point_arn: rp.map(String::from),
            percent_done: None,
        }
    }

    impl Scripted {
        fn new(starts: Vec<Result<&str, (&str, &str)>>, jobs: Vec<JobView>) -> Self {
            Scripted {
                starts: Mutex::new(
                    starts
                        .into_iter()
                        .map(|r| r.map(String::from).map_err(|(c, m)| (c.to_string(), m.to_string())))
                        .collect(),
                ),
                jobs: Mutex::new(jobs),
                start_calls: Mutex::new(0),
                describe_calls: Mutex::new(0),
            }
        }
    }

    fn next<T: Clone>(v: &Mutex<Vec<T>>) -> T {
        let mut v = v.lock().unwrap();
        if v.len() > 1 { v.remove(0) } else { v[0].clone() }
    }

    /// An error as `aws::sdk` makes it from a service answer: classified by its code.
    fn service_error(code: &str, message: &str) -> ResourceError {
        ResourceError::new(error::class_of(code, message), format!("starting the job: {message}")).with_code(code)
    }

    #[async_trait]
    impl BackupJobs for Scripted {
        async fn start(&self, _req: &StartJob) -> Result<String, ResourceError> {
            *self.start_calls.lock().unwrap() += 1;
            next(&self.starts).map_err(|(c, m)| service_error(&c, &m))
        }
        async fn describe(&self, _job_id: &str) -> Result<JobView, ResourceError> {
            *self.describe_calls.lock().unwrap() += 1;
            Ok(next(&self.jobs))
        }
    }

    fn req() -> StartJob {
        StartJob {
            vault: "Default".into(),
            resource_arn: "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-1".into(),
            role_arn: "arn:aws:iam::123456789012:role/pi-backup-role".into(),
            idempotency_token: "t".into(),
            tags: vec![],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_created_running_completed_gives_its_recovery_point_reading_from_two_seconds() {
        let api = Scripted::new(
            vec![Ok("job-1")],
            vec![
                job("CREATED", None, None),
                job("RUNNING", None, None),
                job("RUNNING", None, None),
                job("COMPLETED", None, Some("arn:rp-1")),
            ],
        );
        let id = start_job(&api, &req()).await.unwrap();
        let seen = Mutex::new(Vec::new());
        let start = tokio::time::Instant::now();
        let rp = wait_job(&api, &id, BACKUP_JOB_DEADLINE, &|s| {
            seen.lock().unwrap().push(s.to_string())
        })
        .await
        .unwrap();
        assert_eq!(rp, "arn:rp-1");
        assert_eq!(*seen.lock().unwrap(), ["CREATED", "RUNNING", "COMPLETED"]);
        // At once, then 2 s, 3 s, 4.5 s (jittered +/-20 %): not a fixed late first read.
        let waited = start.elapsed();
        assert!(waited < Duration::from_secs(15), "{waited:?}");
        assert_eq!(*api.describe_calls.lock().unwrap(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_that_fails_or_is_aborted_ends_the_wait_at_once_with_aws_s_message() {
        for (state, message) in [
            ("FAILED", Some("Access denied to the file system")),
            ("ABORTED", None),
            ("EXPIRED", None),
        ] {
            let api = Scripted::new(
                vec![Ok("job-1")],
                vec![job("RUNNING", None, None), job(state, message, None)],
            );
            let start = tokio::time::Instant::now();
            let e = wait_job(&api, "job-1", BACKUP_JOB_DEADLINE, &|_| {}).await.unwrap_err();
            assert_eq!(e.class, ErrorClass::Failed, "{state}");
            assert!(e.message.contains(state), "{}", e.message);
            if let Some(m) = message {
                assert!(e.message.contains(m), "{}", e.message);
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{state}: {:?}",
                start.elapsed()
            );
            assert!(job_failed(&job(state, None, None)));
        }
        assert!(!job_failed(&job("RUNNING", None, None)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_vault_that_denies_the_job_fails_at_once_naming_the_vault_policy() {
        let api = Scripted::new(
            vec![Err((
                "AccessDeniedException",
                "User is not authorized to perform: backup:StartBackupJob on resource: arn:aws:backup:eu-west-1:123456789012:backup-vault:Default with an explicit deny in a resource-based policy",
            ))],
            vec![job("RUNNING", None, None)],
        );
        let e = start_job(&api, &req()).await.unwrap_err();
        assert_eq!(e.code.as_deref(), Some("AccessDeniedException"));
        let hint = e.hint.clone().unwrap_or_default();
        assert!(hint.contains("access policy") && hint.contains("`Default`"), "{hint}");
        assert!(hint.contains("iam:PassRole"), "{hint}");
        assert_eq!(*api.start_calls.lock().unwrap(), 1, "a refusal is not retried");
        assert_eq!(*api.describe_calls.lock().unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_role_iam_has_not_propagated_is_retried_until_aws_backup_can_assume_it() {
        let api = Scripted::new(
            vec![
                Err((
                    "InvalidParameterValueException",
                    "IAM Role arn:aws:iam::123456789012:role/pi-backup-role cannot be assumed by AWS Backup",
                )),
                Err((
                    "InvalidParameterValueException",
                    "IAM Role arn:aws:iam::123456789012:role/pi-backup-role cannot be assumed by AWS Backup",
                )),
                Ok("job-1"),
            ],
            vec![job("COMPLETED", None, Some("arn:rp"))],
        );
        assert_eq!(start_job(&api, &req()).await.unwrap(), "job-1");
        assert_eq!(*api.start_calls.lock().unwrap(), 3);
        // Another invalid parameter is not propagation: not retried.
        let api = Scripted::new(
            vec![Err(("InvalidParameterValueException", "Invalid resource ARN"))],
            vec![job("RUNNING", None, None)],
        );
        start_job(&api, &req()).await.unwrap_err();
        assert_eq!(*api.start_calls.lock().unwrap(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_that_never_ends_hits_the_deadline_naming_its_state() {
        let api = Scripted::new(vec![Ok("job-1")], vec![job("RUNNING", None, None)]);
        let e = wait_job(&api, "job-1", Duration::from_secs(600), &|_| {})
            .await
            .unwrap_err();
        assert_eq!(e.class, ErrorClass::Timeout);
        assert!(e.message.contains("RUNNING"), "{}", e.message);
    }

    #[test]
    fn one_poll_judges_the_db_snapshot() {
        assert!(matches!(db_snapshot_poll(Some("available")), Poll::Ready(())));
        assert!(matches!(db_snapshot_poll(Some("creating")), Poll::Pending(s) if s == "creating"));
        assert!(matches!(db_snapshot_poll(None), Poll::Pending(_)));
        assert!(matches!(db_snapshot_poll(Some("failed")), Poll::Failed(s) if s == "failed"));
    }

    #[test]
    fn both_halves_carry_the_deployment_name_and_label() {
        let t = snapshot_tags("pi", "pi-snap-x-20261206-210509", Some("x"));
        let get = |k: &str| t.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("Name"), Some("pi-snap-x-20261206-210509"));
        assert_eq!(get(tags::DEPLOYMENT_TAG), Some("pi"));
        assert_eq!(get(tags::KEY_TAG), Some("snapshot/pi-snap-x-20261206-210509"));
        assert_eq!(get(snap::NAME_TAG), Some("pi-snap-x-20261206-210509"));
        assert_eq!(get(snap::LABEL_TAG), Some("x"));
        assert!(snapshot_tags("pi", "n", None).iter().all(|(k, _)| k != snap::LABEL_TAG));
    }
}
