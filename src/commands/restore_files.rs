//! `pi-deploy restore --files RECOVERY_POINT_ARN --path /themes ...`: an item-level AWS
//! Backup restore of the deployment's file system, into the same file system (AWS Backup
//! writes the items under `aws-backup-restore_<time>` at its root; core::restore_files).
//! Without `--path` the whole file system is restored into a new one (commands::restore_fs).
//!
//! Order of one run (recorded in `State::files_restore` before StartRestoreJob, so `kill -9`
//! anywhere is finished by running the same command again, which waits for the same job):
//! 1. The flags checked (exit 2): a recovery point ARN, one to five absolute paths.
//! 2. The state locked; a files restore in progress with other flags is refused (exit 3).
//! 3. Read checks: the file system (`available`), the recovery point among its recovery
//!    points (exit 2 when it is not: another resource's), the vault's access policy: a
//!    statement that denies backup:StartRestoreJob is refused before anything (exit 3,
//!    naming the vault and the statement).
//! 4. The record (`files_restore`, with the idempotency token), then the role AWS Backup
//!    assumes (`<deployment>-backup-role`, created if `snapshot` never made it) and its
//!    restore permissions, scoped to the file system.
//! 5. StartRestoreJob (the same token on a rerun: the same job); its id recorded.
//! 6. Waited for (the one wait helper), with progress; the record removed when the job
//!    ended (a FAILED or ABORTED job too: the next run starts another), the restore
//!    permissions removed from the role once it completed.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;

use super::{CmdError, load_config, open_session, recorded, validate};
use crate::cli::{GlobalArgs, RestoreArgs};
use crate::core::config::Purpose;
use crate::core::event::{Event, EventSink};
use crate::core::executor::StateStore;
use crate::core::resource::ErrorClass;
use crate::core::restore_files::{self as rf, FilesRestoreRecord};
use crate::core::snapshot as snap;
use crate::core::state::State;
use crate::resources::Aws;
use crate::resources::backup;
use crate::resources::restore_files::{self as rr, AwsRestoreJobs, StartRestore};

const EFS: &str = "efs";

/// The flags, checked before anything is called: the ARN and the paths as AWS gets them.
fn checked(args: &RestoreArgs) -> Result<(String, Vec<String>), CmdError> {
    let arn = args.files.clone().unwrap_or_default();
    rf::check_recovery_point_arn(&arn, None).map_err(|p| CmdError::input("--files", p, rf::ARN_RULE))?;
    let paths = rf::check_paths(&args.paths).map_err(|p| CmdError::input("--path", p, rf::PATH_RULE))?;
    Ok((arn, paths))
}

pub async fn run(global: &GlobalArgs, args: &RestoreArgs, events: Arc<dyn EventSink>) -> Result<(), CmdError> {
    let cfg = load_config(global)?;
    validate(&cfg, Purpose::Other)?;
    let (arn, paths) = checked(args)?;
    let started = Instant::now();
    let mut session = open_session(&cfg, global, "restore", events.clone()).await?;
    let aws = session.aws.clone();
    let mut run = Run {
        aws: &aws,
        state: &mut session.state,
        store: &session.state_file,
        events: events.clone(),
        started,
    };
    let result = run.restore(&arn, &paths).await;
    aws.clients.dump_call_counts();
    if let Err(e @ (CmdError::Refused { .. } | CmdError::Input(_))) = result {
        return Err(e);
    }
    let (outputs, error) = match &result {
        Ok(o) => (o.clone(), None),
        Err(CmdError::Failed { message, .. }) => (BTreeMap::new(), Some(message.clone())),
        Err(_) => (BTreeMap::new(), Some("failed".into())),
    };
    events.emit(Event::RunFinished {
        command: "restore".into(),
        ok: error.is_none(),
        elapsed_ms: started.elapsed().as_millis() as u64,
        usable_ms: None,
        counts: BTreeMap::new(),
        outputs,
        error,
    });
    result.map(|_| ()).map_err(|e| match e {
        CmdError::Failed { message, hint, .. } => CmdError::Failed {
            message,
            hint,
            reported: true,
        },
        other => other,
    })
}

fn refused(message: String, hint: String) -> CmdError {
    CmdError::Refused {
        message,
        hint: Some(hint),
    }
}

struct Run<'a> {
    aws: &'a Aws,
    state: &'a mut State,
    store: &'a dyn StateStore,
    events: Arc<dyn EventSink>,
    started: Instant,
}

impl Run<'_> {
    fn emit(&self, step: &str, message: String) {
        self.events.emit(Event::Restore {
            step: step.into(),
            message,
            elapsed_ms: self.started.elapsed().as_millis() as u64,
        });
    }

    fn save(&mut self) -> Result<(), CmdError> {
        self.state.serial += 1;
        self.store.save(self.state).map_err(|why| CmdError::Failed {
            message: super::state_write_failed(&why),
            hint: Some(super::STATE_WRITE_HINT.into()),
            reported: false,
        })
    }

    fn record(&mut self, rec: Option<FilesRestoreRecord>) -> Result<(), CmdError> {
        self.state.files_restore = rec;
        self.save()
    }

    async fn restore(&mut self, arn: &str, paths: &[String]) -> Result<BTreeMap<String, String>, CmdError> {
        let dep = self.aws.env.deployment.clone();
        rf::check_recovery_point_arn(arn, Some(&self.aws.env.region))
            .map_err(|p| CmdError::input("--files", p, rf::ARN_RULE))?;
        if let Some(r) = self.state.files_restore.as_ref().filter(|r| r.full.is_some()) {
            return Err(refused(
                format!("{}; refusing to start another restore of files", r.describe()),
                format!(
                    "finish it with `pi-deploy restore --deployment {dep} --finish` (or `{}` while it is not switched yet), or undo it with `--abort`; then restore the items from the file system it left",
                    r.flags()
                ),
            ));
        }
        if let Some(r) = &self.state.files_restore
            && !r.same_request(arn, paths)
        {
            return Err(refused(
                format!(
                    "a restore of {} from {} is in progress{}; refusing to start another",
                    r.paths.join(", "),
                    r.recovery_point_arn,
                    r.job_id.as_deref().map(|j| format!(" (job {j})")).unwrap_or_default()
                ),
                format!(
                    "wait for it with `pi-deploy restore --deployment {dep} --files {} {}`, then restore again",
                    r.recovery_point_arn,
                    r.paths
                        .iter()
                        .map(|p| format!("--path {p}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ),
            ));
        }
        let fs_id = recorded(self.state, EFS, "id", "a restore of the file system")?.to_string();
        let fs = rr::file_system_facts(self.aws, &fs_id).await?.ok_or_else(|| {
            refused(
                format!("the file system {fs_id} that the state records does not exist"),
                "run `pi-deploy up` to build it again, or `pi-deploy status` to see what is missing".into(),
            )
        })?;
        let vault = checked_vault(self.aws, &fs, arn, &self.events, self.started).await?;
        // A recovery point of an earlier file system (one a whole restore replaced) cannot
        // be restored item by item into this one: AWS restores items into their own.
        if rr::current_point_vault(self.aws, &fs.arn, arn).await?.is_none() {
            return Err(CmdError::input(
                "--path",
                format!(
                    "`{arn}` is a recovery point of an earlier file system of the deployment (a whole-file-system restore replaced it), not of {}",
                    fs.id
                ),
                "restore it whole, without --path (into a new file system, then --finish), or give a recovery point of the current file system (`pi-deploy snapshot --list`)",
            ));
        }

        let mut rec = match self.state.files_restore.clone() {
            Some(r) => {
                self.emit(
                    "resuming",
                    format!(
                        "resuming the restore of {} ({})",
                        r.paths.join(", "),
                        r.job_id.as_deref().unwrap_or("not started yet")
                    ),
                );
                r
            }
            None => {
                let now = chrono::Utc::now();
                let rec = FilesRestoreRecord {
                    recovery_point_arn: arn.to_string(),
                    paths: paths.to_vec(),
                    file_system_id: fs_id.clone(),
                    started_at: now,
                    token: rf::token(&self.state.lineage.to_string(), arn, paths, &now),
                    job_id: None,
                    full: None,
                };
                self.emit(
                    "started",
                    format!(
                        "restore of {} into {fs_id} from {arn} (vault `{vault}`)",
                        paths.join(", ")
                    ),
                );
                self.record(Some(rec.clone()))?;
                rec
            }
        };

        let role = snap::backup_role(&dep);
        if self.state.backup_role.as_deref() != Some(role.as_str()) {
            self.state.backup_role = Some(role.clone());
            self.save()?;
        }
        let role_arn = backup::ensure_backup_role(self.aws, &role).await?;
        let kms_arn = fs.kms_key_id.as_deref().filter(|_| fs.encrypted);
        rr::put_restore_policy(
            self.aws,
            &role,
            &rf::restore_role_policy(&fs.arn, kms_arn, &self.aws.env.region),
        )
        .await?;

        let api = AwsRestoreJobs(self.aws);
        let job = match rec.job_id.clone() {
            Some(j) => j,
            None => {
                let j = rr::start_restore(
                    &api,
                    &StartRestore {
                        recovery_point_arn: arn.to_string(),
                        role_arn,
                        metadata: rf::item_metadata(&fs, &rec.token, paths),
                        idempotency_token: rec.token.clone(),
                        vault: vault.clone(),
                    },
                )
                .await?;
                self.emit("restoring", format!("AWS Backup restore job {j} started"));
                rec.job_id = Some(j.clone());
                self.record(Some(rec.clone()))?;
                j
            }
        };
        let events = self.events.clone();
        let started = self.started;
        let jid = job.clone();
        let progress = move |seen: &str| {
            events.emit(Event::Restore {
                step: "waiting".into(),
                message: format!("restore job {jid}: {seen}"),
                elapsed_ms: started.elapsed().as_millis() as u64,
            })
        };
        match rr::wait_restore(&api, &job, rr::RESTORE_JOB_DEADLINE, &progress).await {
            Ok(_) => {}
            Err(e) if e.is(ErrorClass::Failed) => {
                // The job ended without the items: nothing to wait for; the next run starts
                // another job.
                self.record(None)?;
                return Err(CmdError::Failed {
                    message: format!("AWS Backup restore job {job} failed: {e}"),
                    hint: Some(
                        "read AWS's message above; run the same command again to start another restore job".into(),
                    ),
                    reported: false,
                });
            }
            Err(e) => return Err(e.into()),
        }
        self.record(None)?;
        rr::remove_restore_policy(self.aws, &role).await?;
        let message = format!(
            "restored {} into {fs_id} under the directory aws-backup-restore_<time> at its root (job {job}); move what you need from there",
            paths.join(", ")
        );
        self.emit("done", message.clone());
        Ok(BTreeMap::from([
            ("restore_job_id".to_string(), job),
            ("file_system_id".to_string(), fs_id),
            ("paths".to_string(), paths.join(",")),
            ("recovery_point_arn".to_string(), arn.to_string()),
            ("message".to_string(), message),
        ]))
    }
}

/// The vault that holds recovery point `arn` of the file system `fs` (exit 2 when it is not
/// one of its recovery points), its access policy checked (`check_vault`; a conditional
/// Deny reported as a `vault_policy` restore event).
pub(super) async fn checked_vault(
    aws: &Aws,
    fs: &rf::FileSystemFacts,
    arn: &str,
    events: &Arc<dyn EventSink>,
    started: Instant,
) -> Result<String, CmdError> {
    let vault = rr::recovery_point_vault(aws, &fs.arn, arn).await?.ok_or_else(|| {
        CmdError::input(
            "--files",
            format!(
                "`{arn}` is not a recovery point of the deployment's file system {} or of an earlier one",
                fs.id
            ),
            "give one `pi-deploy snapshot --list` shows (kind efs-recovery-point)",
        )
    })?;
    let events = events.clone();
    check_vault(aws, &vault, arn, &move |m| {
        events.emit(Event::Restore {
            step: "vault_policy".into(),
            message: m,
            elapsed_ms: started.elapsed().as_millis() as u64,
        })
    })
    .await?;
    Ok(vault)
}

/// The vault's access policy: a statement that denies backup:StartRestoreJob on this
/// recovery point is refused before anything (a conditional one is reported through
/// `note`, and AWS judges it).
async fn check_vault(
    aws: &Aws,
    vault: &str,
    recovery_point: &str,
    note: &(dyn Fn(String) + Send + Sync),
) -> Result<(), CmdError> {
    let Some(policy) = rr::vault_access_policy(aws, vault).await? else {
        return Ok(());
    };
    match rf::denying_statement(&policy, rf::START_RESTORE, recovery_point) {
        Ok(Some(d)) if !d.conditional => Err(refused(
            format!(
                "the access policy of the AWS Backup vault `{vault}` denies {} (statement {}): AWS Backup would refuse the restore",
                rf::START_RESTORE,
                d.statement
            ),
            format!(
                "remove that statement or exempt this caller (aws backup get-backup-vault-access-policy --backup-vault-name {vault}; aws backup put-backup-vault-access-policy ...), then run the same command again"
            ),
        )),
        Ok(Some(d)) => {
            note(format!(
                "the access policy of the vault `{vault}` denies {} under a condition (statement {}); trying, AWS decides",
                rf::START_RESTORE,
                d.statement
            ));
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(why) => {
            note(format!("vault `{vault}`: {why}; trying, AWS decides"));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(files: &str, paths: &[&str]) -> RestoreArgs {
        RestoreArgs {
            db_snapshot: None,
            db_time: None,
            latest: false,
            finish: false,
            abort: false,
            skip_final_snapshot: false,
            files: Some(files.into()),
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }
    }

    fn field(e: CmdError) -> String {
        match e {
            CmdError::Input(errs) => errs[0].field.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_flags_are_checked_before_anything_naming_the_field() {
        let rp = "arn:aws:backup:eu-west-1:123456789012:recovery-point:abc";
        assert_eq!(
            checked(&args(rp, &["/themes/"])).unwrap(),
            (rp.to_string(), vec!["/themes".to_string()])
        );
        assert_eq!(field(checked(&args("fs-1", &["/themes"])).unwrap_err()), "--files");
        assert_eq!(field(checked(&args(rp, &[])).unwrap_err()), "--path");
        assert_eq!(field(checked(&args(rp, &["themes"])).unwrap_err()), "--path");
        assert_eq!(
            field(checked(&args(rp, &["/a", "/b", "/c", "/d", "/e", "/f"])).unwrap_err()),
            "--path"
        );
    }
}
