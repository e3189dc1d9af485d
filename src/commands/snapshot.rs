//! `pi-deploy snapshot [--label L] [--no-files]`: a manual DB snapshot of the deployment's
//! database and an on-demand AWS Backup job of its file system, waited for together;
//! `snapshot --list`: the deployment's DB snapshots and recovery points, newest first.
//!
//! Order of one run (each step recorded in `State::snapshot` before its call, so `kill -9`
//! anywhere is finished by running the same command again):
//! 1. `--label` checked (exit 2); the state locked; a snapshot in progress with the same
//!    label is resumed, one with another label refused (exit 3); a label that names an
//!    existing snapshot is reported and nothing is taken.
//! 2. Read checks: the DB instance `available`, the file system `available` (exit 3).
//! 3. The name `<deployment>-snap[-<label>]-<UTC time>` is recorded (`started`).
//! 4. With files: the account's `Default` vault (created if the account has none) and the
//!    role AWS Backup assumes (`State::backup_role` recorded before CreateRole).
//! 5. `db_requested`, then CreateDBSnapshot (found by its identifier on a rerun).
//! 6. `backup_requested`, then StartBackupJob with an idempotency token from the state's
//!    lineage and the name (a rerun gets the same job); its id recorded (`waiting`).
//! 7. Both waited for at once (the one wait helper, from 2 s growing to 15 s); a job that
//!    ended FAILED/ABORTED is started again by the next run with a new token.
//! 8. The record removed.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;

use super::{CmdError, load_config, open_read_only, open_session, recorded, validate};
use crate::cli::{GlobalArgs, SnapshotArgs};
use crate::core::config::Purpose;
use crate::core::event::{Event, EventSink};
use crate::core::executor::StateStore;
use crate::core::resource::{ErrorClass, Outputs, ResourceError};
use crate::core::snapshot::{self as snap, Resume, SnapshotRecord, SnapshotStep};
use crate::core::spec::Kind;
use crate::core::state::{ResourceRecord, State, Status};
use crate::resources::Aws;
use crate::resources::backup::{self, AwsBackupJobs, StartJob};

const DB: &str = "db";
const EFS: &str = "efs";

pub async fn run(global: &GlobalArgs, args: &SnapshotArgs, events: Arc<dyn EventSink>) -> Result<(), CmdError> {
    let cfg = load_config(global)?;
    validate(&cfg, Purpose::Other)?;
    if let Some(label) = &args.label {
        snap::check_label(label).map_err(|problem| CmdError::input("--label", problem, snap::LABEL_RULE))?;
    }
    if args.list {
        return list(global, &cfg).await;
    }
    let started = Instant::now();
    let mut session = open_session(&cfg, global, "snapshot", events.clone()).await?;
    let aws = session.aws.clone();
    let mut run = Run {
        aws: &aws,
        state: &mut session.state,
        store: &session.state_file,
        events: events.clone(),
        started,
    };
    let result = run.take(args).await;
    aws.clients.dump_call_counts();
    // A refusal (exit 3) is reported once, by main, like every command's.
    if let Err(e @ CmdError::Refused { .. }) = result {
        return Err(e);
    }
    let (outputs, error) = match &result {
        Ok(outputs) => (outputs.clone(), None),
        Err(e) => (BTreeMap::new(), Some(error_text(e))),
    };
    // `1 taken` for a new snapshot, `1 existing` for a label that named one already.
    let counts = match &outputs {
        o if o.contains_key("existing") => BTreeMap::from([("existing".to_string(), 1)]),
        o if o.contains_key("db_snapshot") => BTreeMap::from([("taken".to_string(), 1)]),
        _ => BTreeMap::new(),
    };
    events.emit(Event::RunFinished {
        command: "snapshot".into(),
        ok: error.is_none(),
        elapsed_ms: started.elapsed().as_millis() as u64,
        usable_ms: None,
        counts,
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

fn error_text(e: &CmdError) -> String {
    match e {
        CmdError::Failed { message, .. } | CmdError::Refused { message, .. } => message.clone(),
        CmdError::Input(errs) => errs.iter().map(|e| e.problem.clone()).collect::<Vec<_>>().join("; "),
        CmdError::Status(c) => format!("status {c}"),
    }
}

fn refused(message: String, hint: &str) -> CmdError {
    CmdError::Refused {
        message,
        hint: Some(hint.into()),
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
        self.events.emit(Event::Snapshot {
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

    fn record(&mut self, rec: &SnapshotRecord) -> Result<(), CmdError> {
        self.state.snapshot = Some(rec.clone());
        self.save()
    }

    async fn take(&mut self, args: &SnapshotArgs) -> Result<BTreeMap<String, String>, CmdError> {
        let label = args.label.as_deref();
        let dep = self.aws.env.deployment.clone();
        let mut rec = match snap::resume(self.state.snapshot.as_ref(), label) {
            Resume::Other { label: other, name } => {
                let again = match &other {
                    Some(l) => format!("pi-deploy snapshot --deployment {dep} --label {l}"),
                    None => format!("pi-deploy snapshot --deployment {dep}"),
                };
                return Err(refused(
                    format!("snapshot `{name}` is in progress; refusing to start another"),
                    &format!("finish it with `{again}`, then take the next one"),
                ));
            }
            Resume::Finish => {
                let rec = self.state.snapshot.clone().expect("resumed");
                self.emit(
                    "resuming",
                    format!(
                        "resuming snapshot {} that stopped at step `{}`",
                        rec.name,
                        rec.step.name()
                    ),
                );
                rec
            }
            Resume::New => match self.prepare(args).await? {
                Ok(rec) => rec,
                Err(existing) => return Ok(existing),
            },
        };
        self.emit("started", format!("snapshot {}", rec.name));
        self.record(&rec)?;

        let role_arn = match &rec.file_system_arn {
            Some(_) => Some(self.backup_prerequisites().await?),
            None => None,
        };

        if rec.step == SnapshotStep::Started {
            rec.step = SnapshotStep::DbRequested;
            self.record(&rec)?;
        }
        let tags = backup::snapshot_tags(&dep, &rec.name, rec.label.as_deref());
        if backup::create_db_snapshot(self.aws, &rec.name, &rec.db_instance, &tags).await? {
            self.emit("db_snapshot", format!("CreateDBSnapshot {} asked", rec.name));
        }

        if let (Some(fs_arn), Some(role_arn)) = (rec.file_system_arn.clone(), role_arn) {
            let api = AwsBackupJobs(self.aws);
            // A job a previous run saw fail is started again, with a new token.
            if let Some(job) = rec.backup_job_id.clone() {
                let v = backup::BackupJobs::describe(&api, &job).await?;
                if backup::job_failed(&v) {
                    self.emit(
                        "backup_job",
                        format!("AWS Backup job {job} ended {}; starting another", v.state),
                    );
                    rec.backup_job_id = None;
                    rec.failed_jobs.push(job);
                }
            }
            if rec.backup_job_id.is_none() {
                rec.step = SnapshotStep::BackupRequested;
                self.record(&rec)?;
                let key = format!("snapshot/{}", rec.name);
                let token = match rec.failed_jobs.last() {
                    None => self.state.client_token(&key),
                    Some(failed) => self.state.recreate_token(&key, failed),
                };
                let job = backup::start_job(
                    &api,
                    &StartJob {
                        vault: snap::VAULT.into(),
                        resource_arn: fs_arn,
                        role_arn,
                        idempotency_token: token,
                        tags: tags.clone(),
                    },
                )
                .await?;
                self.emit("backup_job", format!("AWS Backup job {job} started"));
                rec.backup_job_id = Some(job);
            }
        }
        rec.step = SnapshotStep::Waiting;
        self.record(&rec)?;

        let events = self.events.clone();
        let started = self.started;
        let progress = |what: &'static str| {
            let events = events.clone();
            move |seen: &str| {
                events.emit(Event::Snapshot {
                    step: "waiting".into(),
                    message: format!("{what}: {seen}"),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                })
            }
        };
        let db_progress = progress("DB snapshot");
        let job_progress = progress("file system backup");
        let api = AwsBackupJobs(self.aws);
        let db_wait = backup::wait_db_snapshot(self.aws, &rec.name, &db_progress);
        let job_wait = async {
            match &rec.backup_job_id {
                Some(job) => backup::wait_job(&api, job, backup::BACKUP_JOB_DEADLINE, &job_progress)
                    .await
                    .map(Some),
                None => Ok(None),
            }
        };
        let (db, job) = tokio::join!(db_wait, job_wait);
        db.map_err(|e| failed_half(e, "the DB snapshot", &rec))?;
        let recovery_point = job.map_err(|e| failed_half(e, "the file system's backup", &rec))?;

        self.state.snapshot = None;
        self.save()?;
        let mut outputs = BTreeMap::from([
            ("name".to_string(), rec.name.clone()),
            ("db_snapshot".to_string(), rec.name.clone()),
        ]);
        if let Some(l) = &rec.label {
            outputs.insert("label".into(), l.clone());
        }
        if let Some(rp) = recovery_point {
            outputs.insert("recovery_point_arn".into(), rp);
        }
        self.emit("done", format!("snapshot {} complete", rec.name));
        Ok(outputs)
    }

    /// A new snapshot: `Err(outputs)` when the label names one that exists; else the record,
    /// after the read checks.
    async fn prepare(
        &mut self,
        args: &SnapshotArgs,
    ) -> Result<Result<SnapshotRecord, BTreeMap<String, String>>, CmdError> {
        let dep = self.aws.env.deployment.clone();
        let db = recorded(self.state, DB, "id", "a snapshot")?.to_string();
        let fs = match args.no_files {
            true => None,
            false => Some((
                recorded(self.state, EFS, "id", "a backup of the file system")?.to_string(),
                recorded(self.state, EFS, "arn", "a backup of the file system")?.to_string(),
            )),
        };
        if let Some(label) = &args.label {
            let existing = backup::db_snapshots(self.aws, &db).await?;
            if let Some(found) = existing.iter().find(|i| i.label.as_deref() == Some(label)) {
                self.emit(
                    "exists",
                    format!(
                        "snapshot `{label}` exists ({}, {}): nothing taken; choose another label for a new one",
                        found.id, found.status
                    ),
                );
                let mut outputs = BTreeMap::from([
                    (
                        "name".to_string(),
                        found.name.clone().unwrap_or_else(|| found.id.clone()),
                    ),
                    ("db_snapshot".to_string(), found.id.clone()),
                    ("label".to_string(), label.clone()),
                    ("existing".to_string(), "true".to_string()),
                ]);
                if let Some((_, arn)) = &fs {
                    let name = found.name.as_deref();
                    if let Some(rp) = backup::recovery_points(self.aws, arn)
                        .await?
                        .into_iter()
                        .find(|rp| name.is_some() && rp.name.as_deref() == name)
                    {
                        outputs.insert("recovery_point_arn".into(), rp.id);
                    }
                }
                return Ok(Err(outputs));
            }
        }
        match backup::db_instance_status(self.aws, &db).await? {
            Some(s) if s == "available" => {}
            Some(s) => {
                return Err(refused(
                    format!("the database {db} is `{s}`, not `available`: RDS snapshots an available instance only"),
                    "wait until it is available (`pi-deploy status`), then run the command again",
                ));
            }
            None => {
                return Err(refused(
                    format!("the database {db} that the state records does not exist"),
                    "run `pi-deploy up` to build it again, or `pi-deploy status` to see what is missing",
                ));
            }
        }
        if let Some((id, _)) = &fs {
            match backup::file_system_state(self.aws, id).await? {
                Some(s) if s == "available" => {}
                Some(s) => {
                    return Err(refused(
                        format!("the file system {id} is `{s}`, not `available`"),
                        "wait until it is available, run the command again, or pass --no-files to snapshot only the database",
                    ));
                }
                None => {
                    return Err(refused(
                        format!("the file system {id} that the state records does not exist"),
                        "run `pi-deploy up` to build it again, or pass --no-files to snapshot only the database",
                    ));
                }
            }
        }
        let now = chrono::Utc::now();
        let name = snap::snapshot_name(&dep, args.label.as_deref(), &now);
        snap::check_db_snapshot_identifier(&name).map_err(|p| CmdError::Failed {
            message: format!("internal error: {p}"),
            hint: Some("please report this as a bug".into()),
            reported: false,
        })?;
        Ok(Ok(SnapshotRecord {
            name,
            label: args.label.clone(),
            step: SnapshotStep::Started,
            started_at: now,
            db_instance: db,
            file_system_arn: fs.map(|(_, arn)| arn),
            backup_job_id: None,
            failed_jobs: Vec::new(),
        }))
    }

    /// The vault and the role AWS Backup assumes; the role's ARN.
    async fn backup_prerequisites(&mut self) -> Result<String, CmdError> {
        let token = self.state.client_token("backup-vault");
        backup::ensure_vault(self.aws, &token).await?;
        let name = snap::backup_role(&self.aws.env.deployment);
        if self.state.backup_role.as_deref() != Some(name.as_str()) {
            self.state.backup_role = Some(name.clone());
            self.save()?;
        }
        Ok(backup::ensure_backup_role(self.aws, &name).await?)
    }
}

/// A half that failed: the record stays, so the next run finishes or restarts it.
fn failed_half(e: ResourceError, what: &str, rec: &SnapshotRecord) -> CmdError {
    let hint = match e.class {
        ErrorClass::Failed if what.contains("backup") => format!(
            "run the same command again: it starts a new backup job for snapshot {} (the DB snapshot is kept)",
            rec.name
        ),
        ErrorClass::Failed => format!(
            "RDS could not make DB snapshot {}: delete it (aws rds delete-db-snapshot --db-snapshot-identifier {}), then run the same command again",
            rec.name, rec.name
        ),
        _ => "run the same command again: it resumes the same snapshot".into(),
    };
    CmdError::Failed {
        message: format!("{what}: {e}"),
        hint: Some(hint),
        reported: false,
    }
}

/// `snapshot --list`: read-only, without the lock (it never writes the state).
async fn list(global: &GlobalArgs, cfg: &crate::core::config::Config) -> Result<(), CmdError> {
    let (aws, state) = open_read_only(cfg, global).await?;
    let db = recorded(&state, DB, "id", "listing snapshots")?.to_string();
    let mut items = backup::db_snapshots(&aws, &db).await?;
    if let Some(arn) = state.resources.get(EFS).and_then(|r| r.outputs.get("arn")) {
        items.extend(backup::recovery_points(&aws, arn).await?);
        // Those of the file systems a whole-file-system restore replaced: still restorable.
        items.extend(backup::earlier_recovery_points(&aws, arn).await?);
    }
    snap::sort_newest_first(&mut items);
    aws.clients.dump_call_counts();
    if global.json {
        crate::ui::report::print_json(&items);
    } else {
        print!("{}", snap::render_list(&cfg.deployment, &items));
    }
    Ok(())
}

/// `destroy`: the role AWS Backup assumes, as a record the destroy walk deletes (IAM role
/// kind: managed policies detached, then DeleteRole). Found by its name too, so a state that
/// lost the record (or a lost state) still has it deleted; a role of that name without this
/// deployment's tags is left alone. DB snapshots and recovery points are not touched: they
/// are the user's data.
pub async fn hand_backup_role_to_destroy(aws: &Aws, state: &mut State) -> Result<(), CmdError> {
    let name = state
        .backup_role
        .clone()
        .unwrap_or_else(|| snap::backup_role(&aws.env.deployment));
    if state.resources.contains_key(backup::ROLE_KEY) {
        return Ok(());
    }
    if let Some((arn, true)) = backup::get_backup_role(aws, &name).await? {
        state.resources.insert(
            backup::ROLE_KEY.into(),
            ResourceRecord {
                kind: Kind::IamRole,
                status: Status::Ready,
                client_token: state.client_token(backup::ROLE_KEY),
                outputs: Outputs::new().with("id", &name).with("arn", &arn),
                deps: Vec::new(),
                settings: Default::default(),
                retiring: None,
                updated_at: chrono::Utc::now(),
            },
        );
    }
    state.backup_role = None;
    Ok(())
}

/// What `destroy` says it keeps: the snapshots' and recovery points' count, read before the
/// database and file system are gone (their ids come from the state).
pub async fn kept_by_destroy(aws: &Aws, state: &State) -> Option<String> {
    let db = state.resources.get(DB).and_then(|r| r.outputs.get("id"))?;
    let dbs = backup::db_snapshots(aws, db).await.ok()?.len();
    // A destroy that resumes after the file system is gone no longer knows its ARN.
    let rps = match state.resources.get(EFS).and_then(|r| r.outputs.get("arn")) {
        Some(arn) => backup::recovery_points(aws, arn).await.ok().map(|v| v.len()),
        None => None,
    };
    let files = match rps {
        Some(n) => format!("{n} file system recovery points"),
        None => "the file system's recovery points (if any)".to_string(),
    };
    (dbs > 0 || rps.unwrap_or(0) > 0).then(|| {
        format!(
            "kept: {dbs} DB snapshots and {files} of this deployment (your data; they cost storage until you delete them: `aws rds delete-db-snapshot`, `aws backup delete-recovery-point`)"
        )
    })
}
