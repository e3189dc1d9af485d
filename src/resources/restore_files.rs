//! The AWS calls of `pi-deploy restore --files ... --path ...` (core::restore_files): the
//! recovery point's vault, the vault's access policy, the file system's settings, the
//! permissions of the role AWS Backup assumes, and the restore job.
//!
//! The job's two calls go through the small `RestoreJobs` trait, so a job that ends FAILED
//! or ABORTED and a refusal by the vault are tested on a scripted fake; moto 5.2.5 has no
//! restore jobs (the emulator launcher answers them, tests/emu/moto_launcher.py).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;

use super::{Aws, ec2};
use crate::aws::wait::{self, Backoff, Poll};
use crate::aws::{err, error};
use crate::core::resource::{ErrorClass, Outputs, ResourceError};
use crate::core::restore_files::{self as rf, FileSystemFacts};

/// An item-level restore of a few directories: minutes; of a large tree, hours. A run that
/// stops at the deadline is resumed by running the same command again (the state keeps
/// the job).
pub const RESTORE_JOB_DEADLINE: Duration = Duration::from_secs(8 * 3600);
/// IAM propagation of the role's new permissions to AWS Backup.
const ROLE_PROPAGATION_BUDGET: Duration = Duration::from_secs(120);

/// The vault that holds `recovery_point_arn`: found among the file system's recovery
/// points, else among those `snapshot` made of the deployment's earlier file systems (in
/// `snapshot::VAULT`: `backup::earlier_recovery_points`); `None` when it is neither.
pub async fn recovery_point_vault(
    aws: &Aws,
    file_system_arn: &str,
    recovery_point_arn: &str,
) -> Result<Option<String>, ResourceError> {
    if let Some(vault) = current_point_vault(aws, file_system_arn, recovery_point_arn).await? {
        return Ok(Some(vault));
    }
    let earlier = super::backup::earlier_recovery_points(aws, file_system_arn).await?;
    Ok(earlier
        .iter()
        .any(|rp| rp.id == recovery_point_arn)
        .then(|| crate::core::snapshot::VAULT.to_string()))
}

/// The vault of `recovery_point_arn` when it is one of the file system's own recovery
/// points (an item-level restore can restore only those into it).
pub async fn current_point_vault(
    aws: &Aws,
    file_system_arn: &str,
    recovery_point_arn: &str,
) -> Result<Option<String>, ResourceError> {
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
    Ok(found
        .iter()
        .find(|rp| rp.recovery_point_arn() == Some(recovery_point_arn))
        .map(|rp| rp.backup_vault_name().unwrap_or_default().to_string()))
}

/// The vault's access policy document; `None` when it has none.
pub async fn vault_access_policy(aws: &Aws, vault: &str) -> Result<Option<String>, ResourceError> {
    let out = aws
        .clients
        .backup
        .get_backup_vault_access_policy()
        .backup_vault_name(vault)
        .send()
        .await
        .map_err(err("reading the AWS Backup vault's access policy"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.policy().map(String::from)))
}

/// What the restore needs to know of the file system.
pub async fn file_system_facts(aws: &Aws, id: &str) -> Result<Option<FileSystemFacts>, ResourceError> {
    let out = aws
        .clients
        .efs
        .describe_file_systems()
        .file_system_id(id)
        .send()
        .await
        .map_err(err("describing the file system"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| {
        o.file_systems().first().map(|f| FileSystemFacts {
            id: f.file_system_id().to_string(),
            arn: f.file_system_arn().unwrap_or_default().to_string(),
            encrypted: f.encrypted().unwrap_or(false),
            kms_key_id: f.kms_key_id().map(String::from),
            performance_mode: f.performance_mode().as_str().to_string(),
        })
    }))
}

/// The role's inline restore policy (PutRolePolicy replaces it whole: idempotent).
pub async fn put_restore_policy(aws: &Aws, role: &str, document: &serde_json::Value) -> Result<(), ResourceError> {
    aws.clients
        .iam
        .put_role_policy()
        .role_name(role)
        .policy_name(rf::RESTORE_POLICY)
        .policy_document(document.to_string())
        .send()
        .await
        .map(|_| ())
        .map_err(err("putting the AWS Backup role's restore permissions"))
}

/// The restore permissions removed once the job completed (gone already counts as done).
pub async fn remove_restore_policy(aws: &Aws, role: &str) -> Result<(), ResourceError> {
    let out = aws
        .clients
        .iam
        .delete_role_policy()
        .role_name(role)
        .policy_name(rf::RESTORE_POLICY)
        .send()
        .await
        .map(|_| ())
        .map_err(err("removing the AWS Backup role's restore permissions"));
    match out {
        Err(e) if e.is(ErrorClass::NotFound) => Ok(()),
        other => other,
    }
}

/// What StartRestoreJob is asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StartRestore {
    pub recovery_point_arn: String,
    pub role_arn: String,
    pub metadata: Vec<(String, String)>,
    pub idempotency_token: String,
    /// For the refusal's hint.
    pub vault: String,
}

/// What DescribeRestoreJob says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreJobView {
    pub state: String,
    pub message: Option<String>,
    pub percent_done: Option<String>,
    pub created_resource_arn: Option<String>,
}

/// The two AWS Backup restore job calls, behind a trait for the scripted fake of the tests.
#[async_trait]
pub trait RestoreJobs: Send + Sync {
    /// StartRestoreJob; the job's id.
    async fn start(&self, req: &StartRestore) -> Result<String, ResourceError>;
    /// DescribeRestoreJob.
    async fn describe(&self, job_id: &str) -> Result<RestoreJobView, ResourceError>;
}

/// The real calls.
pub struct AwsRestoreJobs<'a>(pub &'a Aws);

#[async_trait]
impl RestoreJobs for AwsRestoreJobs<'_> {
    async fn start(&self, req: &StartRestore) -> Result<String, ResourceError> {
        let out = self
            .0
            .clients
            .backup
            .start_restore_job()
            .recovery_point_arn(&req.recovery_point_arn)
            .iam_role_arn(&req.role_arn)
            .idempotency_token(&req.idempotency_token)
            .resource_type("EFS")
            .set_metadata(Some(req.metadata.iter().cloned().collect::<HashMap<_, _>>()))
            .send()
            .await
            .map_err(err("starting the AWS Backup restore job"))?;
        out.restore_job_id()
            .map(String::from)
            .ok_or_else(|| ResourceError::new(ErrorClass::Other, "StartRestoreJob answered without a job id"))
    }

    async fn describe(&self, job_id: &str) -> Result<RestoreJobView, ResourceError> {
        let out = self
            .0
            .clients
            .backup
            .describe_restore_job()
            .restore_job_id(job_id)
            .send()
            .await
            .map_err(err("describing the AWS Backup restore job"))?;
        Ok(RestoreJobView {
            state: out.status().map(|s| s.as_str().to_string()).unwrap_or_default(),
            message: out.status_message().map(String::from),
            percent_done: out.percent_done().map(String::from),
            created_resource_arn: out.created_resource_arn().map(String::from),
        })
    }
}

/// StartRestoreJob, retried while IAM has not propagated the role's permissions to AWS
/// Backup; a refusal says what to fix.
pub async fn start_restore(api: &dyn RestoreJobs, req: &StartRestore) -> Result<String, ResourceError> {
    wait::retry(
        "starting the AWS Backup restore job",
        ROLE_PROPAGATION_BUDGET,
        Backoff::QUICK,
        &[ErrorClass::IamPropagation],
        || api.start(req),
    )
    .await
    .map_err(|e| {
        if error::is_denied(&e) {
            e.with_hint(format!(
                "AWS Backup refused the restore: the vault `{}` may have an access policy that denies backup:StartRestoreJob (remove that statement or exempt this caller), or the caller lacks backup:StartRestoreJob or iam:PassRole on {}",
                req.vault, req.role_arn
            ))
        } else {
            e
        }
    })
}

/// One poll of the restore job: COMPLETED is done; FAILED and ABORTED (with AWS's message)
/// will not recover; anything else (PENDING, RUNNING) is not yet.
pub fn restore_poll(v: &RestoreJobView) -> Poll<RestoreJobView> {
    match v.state.as_str() {
        "COMPLETED" => Poll::Ready(v.clone()),
        s if rf::JOB_FAILED_STATES.contains(&s) => Poll::Failed(match &v.message {
            Some(m) => format!("{s}: {m}"),
            None => s.to_string(),
        }),
        s => Poll::Pending(match &v.percent_done {
            Some(p) => format!("{s} {p}%"),
            None => s.to_string(),
        }),
    }
}

/// Wait for the restore job (the one wait helper, from 1 s growing to 15 s); `progress`
/// sees each new state.
pub async fn wait_restore(
    api: &dyn RestoreJobs,
    job_id: &str,
    deadline: Duration,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<RestoreJobView, ResourceError> {
    let last = std::sync::Mutex::new(String::new());
    wait::wait_for(
        &format!("AWS Backup restore job {job_id}"),
        deadline,
        Backoff::SLOW,
        || async {
            let v = api.describe(job_id).await?;
            let poll = restore_poll(&v);
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
        },
    )
    .await
}

/// The file system a full restore's job made (its creation token is the restore's), if any.
pub async fn restored_file_system(aws: &Aws, creation_token: &str) -> Result<Option<Outputs>, ResourceError> {
    super::file_system::find_by_creation_token(aws, creation_token).await
}

/// The deployment's tags on the file system a full restore made (AWS Backup restores it
/// without them): `destroy` and `status` find it by them, as the one `up` made.
pub async fn tag_file_system(aws: &Aws, id: &str, key: &str) -> Result<(), ResourceError> {
    aws.clients
        .efs
        .tag_resource()
        .resource_id(id)
        .set_tags(Some(super::file_system::efs_tags(&aws.env.deployment, key)?))
        .send()
        .await
        .map(|_| ())
        .map_err(err("tagging the restored file system"))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Scripted answers: each call takes the next; the last one repeats.
    struct Scripted {
        starts: Mutex<Vec<Result<String, (String, String)>>>,
        jobs: Mutex<Vec<RestoreJobView>>,
        start_calls: Mutex<usize>,
        describe_calls: Mutex<usize>,
    }

    fn job(state: &str, message: Option<&str>) -> RestoreJobView {
        RestoreJobView {
            state: state.into(),
            message: message.map(String::from),
            ..Default::default()
        }
    }

    impl Scripted {
        fn new(starts: Vec<Result<&str, (&str, &str)>>, jobs: Vec<RestoreJobView>) -> Self {
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

    #[async_trait]
    impl RestoreJobs for Scripted {
        async fn start(&self, _req: &StartRestore) -> Result<String, ResourceError> {
            *self.start_calls.lock().unwrap() += 1;
            next(&self.starts).map_err(|(c, m)| {
                ResourceError::new(error::class_of(&c, &m), format!("starting the restore job: {m}")).with_code(c)
            })
        }
        async fn describe(&self, _job_id: &str) -> Result<RestoreJobView, ResourceError> {
            *self.describe_calls.lock().unwrap() += 1;
            Ok(next(&self.jobs))
        }
    }

    fn req() -> StartRestore {
        StartRestore {
            recovery_point_arn: "arn:aws:backup:eu-west-1:123456789012:recovery-point:1".into(),
            role_arn: "arn:aws:iam::123456789012:role/pi-backup-role".into(),
            metadata: vec![],
            idempotency_token: "t".into(),
            vault: "Default".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_pending_running_completed_is_waited_for_with_its_progress() {
        let api = Scripted::new(
            vec![Ok("r-1")],
            vec![
                job("PENDING", None),
                job("RUNNING", None),
                job("RUNNING", None),
                job("COMPLETED", None),
            ],
        );
        let id = start_restore(&api, &req()).await.unwrap();
        let seen = Mutex::new(Vec::new());
        let start = tokio::time::Instant::now();
        let v = wait_restore(&api, &id, RESTORE_JOB_DEADLINE, &|s| {
            seen.lock().unwrap().push(s.to_string())
        })
        .await
        .unwrap();
        assert_eq!(v.state, "COMPLETED");
        assert_eq!(*seen.lock().unwrap(), ["PENDING", "RUNNING", "COMPLETED"]);
        assert!(start.elapsed() < Duration::from_secs(15), "{:?}", start.elapsed());
        assert_eq!(*api.describe_calls.lock().unwrap(), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_or_aborted_restore_job_ends_the_wait_at_once_with_aws_s_message() {
        for (state, message) in [("FAILED", Some("Access denied to the file system")), ("ABORTED", None)] {
            let api = Scripted::new(vec![Ok("r-1")], vec![job("RUNNING", None), job(state, message)]);
            let start = tokio::time::Instant::now();
            let e = wait_restore(&api, "r-1", RESTORE_JOB_DEADLINE, &|_| {})
                .await
                .unwrap_err();
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
            assert_eq!(*api.describe_calls.lock().unwrap(), 2);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_vault_that_denies_the_restore_fails_at_once_naming_the_vault() {
        let api = Scripted::new(
            vec![Err((
                "AccessDeniedException",
                "User is not authorized to perform: backup:StartRestoreJob with an explicit deny in a resource-based policy",
            ))],
            vec![job("RUNNING", None)],
        );
        let e = start_restore(&api, &req()).await.unwrap_err();
        let hint = e.hint.clone().unwrap_or_default();
        assert!(
            hint.contains("vault `Default`") && hint.contains("backup:StartRestoreJob"),
            "{hint}"
        );
        assert_eq!(*api.start_calls.lock().unwrap(), 1, "a refusal is not retried");
        assert_eq!(*api.describe_calls.lock().unwrap(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_role_not_yet_propagated_is_retried() {
        let not_yet = (
            "InvalidParameterValueException",
            "IAM Role arn:aws:iam::123456789012:role/pi-backup-role cannot be assumed by AWS Backup",
        );
        let api = Scripted::new(vec![Err(not_yet), Ok("r-1")], vec![job("COMPLETED", None)]);
        assert_eq!(start_restore(&api, &req()).await.unwrap(), "r-1");
        assert_eq!(*api.start_calls.lock().unwrap(), 2);
    }
}
