//! `pi-deploy restore --files RECOVERY_POINT_ARN` without `--path`: an AWS Backup restore of
//! the whole file system into a NEW file system, then the deployment switched to it the way
//! the database's restore switches (commands::restore; core::restore_files::FullRestore is
//! the record, with core::restore's steps).
//!
//! Order of one run (each step recorded in `State::files_restore` before its calls, so
//! `kill -9` anywhere is finished by the same command again, or undone by `--abort`):
//! 1. The checks (exit 2 / 3): the ARN, a ready file system, the recovery point among its
//!    recovery points, the vault's access policy (a Deny on backup:StartRestoreJob), no
//!    other restore or upgrade between its steps; then the record (`restoring`).
//! 2. `restoring`: the role AWS Backup assumes with the permissions a restore into a new
//!    file system needs (file systems of this account and region, the key through EFS), and
//!    StartRestoreJob (`newFileSystem`, the same encryption and performance mode, the
//!    restore's creation token and idempotency token: a rerun gets the same job).
//! 3. `waiting`: the job waited for; the file system it names recorded, tagged as the
//!    deployment's, made as the blueprint says (the `efs` kind's converge: backups on, the
//!    TLS-only policy), and its mount targets and access point made through their kinds
//!    (found before created, each recorded as it is made). The role's restore permissions
//!    are removed.
//! 4. `switching`: the `efs`, `efs-mt-*` and `efs-ap` records swapped for the new ones in one
//!    state write (the old ones kept in the record), then what reads them converged (the
//!    Lambda's access point and its role's policy).
//! 5. `rolling`: `up`'s roll onto a launch template version whose user data mounts the new
//!    file system (health-gated, one instance at a time); then `kept`: the old file system
//!    stays until `--finish` deletes it (access point, mount targets, file system) or
//!    `--abort` switches back (`reverting`, `rolling_back`) and deletes the new one
//!    (`discarding`).

use std::collections::BTreeMap;

use super::restore::Run;
use super::restore_files::checked_vault;
use super::{CmdError, recorded};
use crate::core::event::{Event, EventSink};
use crate::core::resource::{Cloud, DeleteCtx, ErrorClass, NodeCtx, Outputs};
use crate::core::restore::Step;
use crate::core::restore_files::{self as rf, FILE_SYSTEM_KEY, FilesRestoreRecord, FullRestore};
use crate::core::snapshot as snap;
use crate::core::spec::{Kind, NodeSpec};
use crate::core::state::{State, Status};
use crate::resources::backup;
use crate::resources::restore_files::{self as rr, AwsRestoreJobs, StartRestore};
use crate::resources::{Aws, AwsCloud};

/// `destroy`: the file system a full restore's job made that no run recorded yet (the job
/// waited for when it is known and still running; else found by the restore's creation
/// token, as after a run killed between StartRestoreJob and its state write) is put in the
/// record, so `hand_to_destroy` hands it over with the rest.
pub async fn resolve_for_destroy(aws: &Aws, state: &mut State, events: &dyn EventSink) -> Result<(), CmdError> {
    let Some(rec) = state.files_restore.as_mut() else {
        return Ok(());
    };
    let Some(full) = rec.full.as_mut().filter(|f| f.new_file_system().is_none()) else {
        return Ok(());
    };
    if let Some(job) = &rec.job_id {
        let progress = |seen: &str| {
            events.emit(Event::Warning {
                message: format!("waiting for AWS Backup restore job {job} (a restore of the file system) to end before deleting what it makes: {seen}"),
            })
        };
        match rr::wait_restore(&AwsRestoreJobs(aws), job, rr::RESTORE_JOB_DEADLINE, &progress).await {
            Ok(_) => {}
            // Ended without a file system, or no longer known: the lookup below decides.
            Err(e) if e.is(ErrorClass::Failed) || e.is(ErrorClass::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if let Some(fs) = rr::restored_file_system(aws, &rec.token).await? {
        full.new.insert(FILE_SYSTEM_KEY.to_string(), fs);
    }
    Ok(())
}

/// The file system and what is made on it (mount targets, access point): the state keys a
/// full restore takes over, the file system first.
fn taken_over(nodes: &[NodeSpec]) -> Vec<&NodeSpec> {
    let mut keys: Vec<&NodeSpec> = nodes
        .iter()
        .filter(|n| matches!(n.kind, Kind::FileSystem | Kind::MountTarget | Kind::AccessPoint))
        .collect();
    keys.sort_by_key(|n| n.kind != Kind::FileSystem);
    keys
}

/// What reads the taken-over records and is converged at a switch (in the graph's order):
/// everything that depends on them except the launch template and the group, which the roll
/// makes anew.
fn readers(nodes: &[NodeSpec], order: &[usize]) -> Vec<String> {
    let taken: Vec<&str> = taken_over(nodes).iter().map(|n| n.key.as_str()).collect();
    order
        .iter()
        .map(|&i| &nodes[i])
        .filter(|n| !taken.contains(&n.key.as_str()))
        .filter(|n| !matches!(n.kind, Kind::LaunchTemplate | Kind::AutoScalingGroup))
        .filter(|n| n.deps.iter().any(|d| taken.contains(&d.as_str())))
        .map(|n| n.key.clone())
        .collect()
}

/// The record's full restore (a full restore's record always has one).
fn full_of(rec: &FilesRestoreRecord) -> Result<FullRestore, CmdError> {
    rec.full
        .clone()
        .ok_or_else(|| super::restore::internal("the files restore record is not a full restore"))
}

fn summary(rec: &FilesRestoreRecord, full: &FullRestore) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([
        ("restored_from".to_string(), rec.recovery_point_arn.clone()),
        ("files_restore_step".to_string(), full.step.name().to_string()),
        (
            "kept_file_system".to_string(),
            full.old_file_system().unwrap_or(&rec.file_system_id).to_string(),
        ),
    ]);
    if let Some(fs) = full.new_file_system() {
        out.insert("file_system_id".into(), fs.to_string());
    }
    if let Some(j) = &rec.job_id {
        out.insert("restore_job_id".into(), j.clone());
    }
    out
}

impl Run<'_> {
    fn record_files(&mut self, rec: &FilesRestoreRecord, full: &FullRestore) -> Result<(), CmdError> {
        let mut rec = rec.clone();
        rec.full = Some(full.clone());
        self.state.files_restore = Some(rec);
        self.save()
    }

    fn cloud(&self) -> AwsCloud {
        AwsCloud { aws: self.aws.clone() }
    }

    /// `restore --files ARN`: a new restore, or the one in progress from the same recovery
    /// point resumed.
    pub(super) async fn start_files(&mut self, arn: &str) -> Result<BTreeMap<String, String>, CmdError> {
        let dep = self.dep().to_string();
        rf::check_recovery_point_arn(arn, Some(&self.aws.env.region))
            .map_err(|p| CmdError::input("--files", p, rf::ARN_RULE))?;
        let rec = match self.state.files_restore.clone() {
            Some(r) if r.full.is_some() && r.recovery_point_arn == arn => {
                let step = full_of(&r)?.step;
                if step == Step::Kept {
                    self.emit("kept", r.describe());
                    return Ok(summary(&r, &full_of(&r)?));
                }
                if step.aborting() || step == Step::Finishing {
                    return Err(super::restore::refused(
                        format!("{}; refusing to start it again", r.describe()),
                        format!(
                            "finish it with `pi-deploy restore --deployment {dep} {}`",
                            if step == Step::Finishing { "--finish" } else { "--abort" }
                        ),
                    ));
                }
                self.emit(
                    "resuming",
                    format!(
                        "resuming the restore of the file system that stopped at step `{}`",
                        step.name()
                    ),
                );
                r
            }
            Some(r) => {
                return Err(super::restore::refused(
                    format!("{}; refusing to start another restore of the file system", r.describe()),
                    match &r.full {
                        Some(_) => format!(
                            "finish it with `pi-deploy restore --deployment {dep} {}` then `--finish`, or undo it with `--abort`; then restore again",
                            r.flags()
                        ),
                        None => format!(
                            "wait for it with `pi-deploy restore --deployment {dep} {}`, then restore again",
                            r.flags()
                        ),
                    },
                ));
            }
            None => self.prepare_files(arn).await?,
        };
        let mut full = full_of(&rec)?;
        let mut rec = rec;
        if full.step == Step::Restoring {
            let job = self.start_job(&rec).await?;
            rec.job_id = Some(job);
            full.step = Step::Waiting;
            self.record_files(&rec, &full)?;
        }
        if full.step == Step::Waiting {
            if !self.make_new_file_system(&rec, &mut full).await? {
                return Err(CmdError::Failed {
                    message: format!(
                        "AWS Backup restore job {} ended without a file system",
                        rec.job_id.as_deref().unwrap_or("?")
                    ),
                    hint: Some(
                        "read AWS's message above; nothing was switched: run the same command again to start another restore job".into(),
                    ),
                    reported: false,
                });
            }
            full.step = Step::Switching;
            self.record_files(&rec, &full)?;
        }
        if full.step == Step::Switching {
            // The job is over: AWS Backup needs no restore permissions any more.
            rr::remove_restore_policy(&self.aws, &snap::backup_role(&dep)).await?;
            if full.old.is_empty() {
                full.old = self.recorded_outputs(full.new.keys());
            }
            let new = full.new.clone();
            self.switch_files(&rec, &full, &new).await?;
            self.emit(
                "switching",
                format!(
                    "the deployment's records now name the file system {}",
                    full.new_file_system().unwrap_or_default()
                ),
            );
            full.step = Step::Rolling {
                from_version: self.template_version(),
            };
            self.record_files(&rec, &full)?;
        }
        if let Step::Rolling { from_version } = full.step.clone() {
            self.emit(
                "rolling",
                "rolling the instances onto the restored file system (blue/green, one at a time)".into(),
            );
            self.roll_files(from_version).await?;
            full.step = Step::Kept;
            self.record_files(&rec, &full)?;
        }
        let rec = self.state.files_restore.clone().unwrap_or(rec);
        self.emit("kept", rec.describe());
        Ok(summary(&rec, &full))
    }

    /// A new full restore: the read checks, the confirmation, then the record (`restoring`).
    async fn prepare_files(&mut self, arn: &str) -> Result<FilesRestoreRecord, CmdError> {
        let dep = self.dep().to_string();
        self.refuse_if_busy()?;
        if let Some(r) = self.state.restore.as_ref().filter(|r| r.step != Step::Kept) {
            return Err(super::restore::refused(
                format!("{}; a restore of the file system rolls the instances too", r.describe()),
                format!(
                    "finish it with `pi-deploy restore --deployment {dep} {}` (or undo it with `--abort`), then restore",
                    r.source.flags()
                ),
            ));
        }
        let taken: Vec<String> = taken_over(self.graph.nodes()).iter().map(|n| n.key.clone()).collect();
        if let Some(key) = taken
            .iter()
            .find(|k| self.state.resources.get(*k).is_none_or(|r| r.status != Status::Ready))
        {
            return Err(super::restore::refused(
                format!("deployment `{dep}` has no ready `{key}` to restore in place of"),
                "run `pi-deploy up` first".into(),
            ));
        }
        let fs_id = recorded(self.state, FILE_SYSTEM_KEY, "id", "a restore of the file system")?.to_string();
        let fs = rr::file_system_facts(&self.aws, &fs_id).await?.ok_or_else(|| {
            super::restore::refused(
                format!("the file system {fs_id} that the state records does not exist"),
                "run `pi-deploy up` to build it again, or `pi-deploy status` to see what is missing".into(),
            )
        })?;
        let vault = checked_vault(&self.aws, &fs, arn, &self.events, self.started).await?;
        super::restore::confirm(
            self.yes,
            &format!(
                "restore the file system of deployment `{dep}` from {arn} into a new file system and roll every dashboard instance onto it (the current file system {fs_id} is kept)"
            ),
        )?;
        let now = chrono::Utc::now();
        let rec = FilesRestoreRecord {
            recovery_point_arn: arn.to_string(),
            paths: Vec::new(),
            file_system_id: fs_id.clone(),
            started_at: now,
            token: rf::token(&self.state.lineage.to_string(), arn, &[], &now),
            job_id: None,
            full: Some(FullRestore {
                step: Step::Restoring,
                new: BTreeMap::new(),
                old: BTreeMap::new(),
            }),
        };
        self.emit(
            "started",
            format!("restore of the file system {fs_id} from {arn} (vault `{vault}`) into a new file system"),
        );
        self.state.files_restore = Some(rec.clone());
        self.save()?;
        Ok(rec)
    }

    /// `restoring`: the role and its permissions, then StartRestoreJob (its id).
    async fn start_job(&mut self, rec: &FilesRestoreRecord) -> Result<String, CmdError> {
        let dep = self.dep().to_string();
        let fs = rr::file_system_facts(&self.aws, &rec.file_system_id)
            .await?
            .ok_or_else(|| {
                super::restore::refused(
                    format!(
                        "the file system {} to restore in place of does not exist",
                        rec.file_system_id
                    ),
                    format!("undo the restore with `pi-deploy restore --deployment {dep} --abort`"),
                )
            })?;
        let vault = rr::recovery_point_vault(&self.aws, &fs.arn, &rec.recovery_point_arn)
            .await?
            .unwrap_or_else(|| "Default".into());
        let role = snap::backup_role(&dep);
        if self.state.backup_role.as_deref() != Some(role.as_str()) {
            self.state.backup_role = Some(role.clone());
            self.save()?;
        }
        let role_arn = backup::ensure_backup_role(&self.aws, &role).await?;
        let kms_arn = fs.kms_key_id.as_deref().filter(|_| fs.encrypted);
        rr::put_restore_policy(
            &self.aws,
            &role,
            &rf::new_file_system_role_policy(&fs.arn, kms_arn, &self.aws.env.region),
        )
        .await?;
        let job = rr::start_restore(
            &AwsRestoreJobs(&self.aws),
            &StartRestore {
                recovery_point_arn: rec.recovery_point_arn.clone(),
                role_arn,
                metadata: rf::new_file_system_metadata(&fs, &rec.token),
                idempotency_token: rec.token.clone(),
                vault,
            },
        )
        .await?;
        self.emit(
            "restoring",
            format!("AWS Backup restore job {job} started (into a new file system)"),
        );
        Ok(job)
    }

    /// The file system the job made, once it completed: `None` when the job ended without
    /// one (FAILED, ABORTED).
    async fn job_file_system(&self, job: &str) -> Result<Option<Outputs>, CmdError> {
        let events = self.events.clone();
        let started = self.started;
        let jid = job.to_string();
        let progress = move |seen: &str| {
            events.emit(Event::Restore {
                step: "waiting".into(),
                message: format!("restore job {jid}: {seen}"),
                elapsed_ms: started.elapsed().as_millis() as u64,
            })
        };
        let api = AwsRestoreJobs(&self.aws);
        let view = match rr::wait_restore(&api, job, rr::RESTORE_JOB_DEADLINE, &progress).await {
            Ok(v) => v,
            Err(e) if e.is(ErrorClass::Failed) => {
                self.emit("waiting", format!("AWS Backup restore job {job} failed: {e}"));
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let arn = view.created_resource_arn.unwrap_or_default();
        let id = rf::file_system_id_of_arn(&arn).ok_or_else(|| {
            super::restore::internal(&format!(
                "AWS Backup restore job {job} completed naming `{arn}`, not a file system"
            ))
        })?;
        Ok(Some(Outputs::new().with("id", &id).with("arn", &arn)))
    }

    /// `waiting`: the job's file system recorded, tagged and made as the blueprint says,
    /// then its mount targets and access point. False when the job ended without one (the
    /// record is then removed: nothing was made, the next run starts another job).
    async fn make_new_file_system(
        &mut self,
        rec: &FilesRestoreRecord,
        full: &mut FullRestore,
    ) -> Result<bool, CmdError> {
        if full.new_file_system().is_none() {
            let job = rec
                .job_id
                .clone()
                .ok_or_else(|| super::restore::internal("the files restore record has no job at `waiting`"))?;
            let Some(fs) = self.job_file_system(&job).await? else {
                self.state.files_restore = None;
                self.save()?;
                rr::remove_restore_policy(&self.aws, &snap::backup_role(self.dep())).await?;
                return Ok(false);
            };
            full.new.insert(FILE_SYSTEM_KEY.to_string(), fs);
            self.record_files(rec, full)?;
        }
        let fs_id = full.new_file_system().unwrap_or_default().to_string();
        self.emit(
            "preparing",
            format!("the restored file system {fs_id}: tags, settings, mount targets, access point"),
        );
        rr::tag_file_system(&self.aws, &fs_id, FILE_SYSTEM_KEY).await?;
        let graph = self.graph;
        for spec in taken_over(graph.nodes()) {
            let deps = self.deps_on(spec, &full.new);
            let token = rec.token_for(&spec.key);
            let cx = NodeCtx {
                spec,
                deps: &deps,
                token: &token,
            };
            let cloud = self.cloud();
            let outputs = match full.new.get(&spec.key) {
                Some(o) => o.clone(),
                None => {
                    let made = match cloud.find(&cx).await? {
                        Some(o) => o,
                        None => cloud.create(&cx).await?,
                    };
                    full.new.insert(spec.key.clone(), made.clone());
                    self.record_files(rec, full)?;
                    made
                }
            };
            let outputs = cloud.converge(&cx, outputs).await?;
            if full.new.get(&spec.key) != Some(&outputs) {
                full.new.insert(spec.key.clone(), outputs);
                self.record_files(rec, full)?;
            }
        }
        Ok(true)
    }

    /// The dependencies of `spec` as recorded, with what `made` holds in place of theirs.
    fn deps_on(&self, spec: &NodeSpec, made: &BTreeMap<String, Outputs>) -> BTreeMap<String, Outputs> {
        spec.deps
            .iter()
            .filter_map(|d| {
                made.get(d)
                    .or_else(|| self.state.resources.get(d).map(|r| &r.outputs))
                    .map(|o| (d.clone(), o.clone()))
            })
            .collect()
    }

    fn recorded_outputs<'k>(&self, keys: impl Iterator<Item = &'k String>) -> BTreeMap<String, Outputs> {
        keys.filter_map(|k| self.state.resources.get(k).map(|r| (k.clone(), r.outputs.clone())))
            .collect()
    }

    /// The taken-over records name `to` (one state write with the record), then what reads
    /// them is converged.
    async fn switch_files(
        &mut self,
        rec: &FilesRestoreRecord,
        full: &FullRestore,
        to: &BTreeMap<String, Outputs>,
    ) -> Result<(), CmdError> {
        let now = chrono::Utc::now();
        for (key, outputs) in to {
            if let Some(r) = self.state.resources.get_mut(key) {
                r.outputs = outputs.clone();
                r.updated_at = now;
            }
        }
        self.state.outputs = super::up::outputs(self.state);
        self.record_files(rec, full)?;
        let graph = self.graph;
        for key in readers(graph.nodes(), &graph.topo_order()) {
            self.emit("switching", format!("`{key}` made to use the file system it now names"));
            self.converge_recorded(&key).await?;
            self.save()?;
        }
        Ok(())
    }

    async fn roll_files(&mut self, from_version: String) -> Result<usize, CmdError> {
        let restep = |state: &mut State, from_version: String| {
            if let Some(f) = state.files_restore.as_mut().and_then(|r| r.full.as_mut()) {
                f.step = match f.step {
                    Step::RollingBack { .. } => Step::RollingBack { from_version },
                    _ => Step::Rolling { from_version },
                };
            }
        };
        self.roll_fleet(from_version, &restep).await
    }

    /// Delete what `set` names (access point, mount targets, then the file system), each
    /// through its kind (idempotent: what is gone already is done).
    async fn delete_set(&mut self, set: &BTreeMap<String, Outputs>) -> Result<(), CmdError> {
        let graph = self.graph;
        let mut order = taken_over(graph.nodes());
        order.reverse();
        let cloud = self.cloud();
        // The mount targets and the access point together, then the file system.
        let mut parts = Vec::new();
        for spec in order.iter().filter(|s| s.kind != Kind::FileSystem) {
            if let Some(outputs) = set.get(&spec.key) {
                parts.push(async {
                    cloud
                        .delete(&DeleteCtx {
                            key: &spec.key,
                            kind: spec.kind,
                            outputs,
                        })
                        .await
                });
            }
        }
        for r in futures::future::join_all(parts).await {
            r?;
        }
        if let Some(outputs) = set.get(FILE_SYSTEM_KEY) {
            cloud
                .delete(&DeleteCtx {
                    key: FILE_SYSTEM_KEY,
                    kind: Kind::FileSystem,
                    outputs,
                })
                .await?;
        }
        Ok(())
    }

    /// `--finish`: the old file system, its mount targets and access point deleted.
    pub(super) async fn finish_files(&mut self) -> Result<BTreeMap<String, String>, CmdError> {
        let dep = self.dep().to_string();
        let Some(rec) = self.state.files_restore.clone().filter(|r| r.full.is_some()) else {
            return Ok(BTreeMap::new());
        };
        let mut full = full_of(&rec)?;
        if !matches!(full.step, Step::Kept | Step::Finishing) {
            return Err(super::restore::refused(
                format!(
                    "the restore of the file system stopped at step `{}`: the deployment is not switched to it yet",
                    full.step.name()
                ),
                if full.step.aborting() {
                    format!("finish the abort with `pi-deploy restore --deployment {dep} --abort`")
                } else {
                    format!(
                        "run `pi-deploy restore --deployment {dep} {}` to finish switching, or `--abort`",
                        rec.flags()
                    )
                },
            ));
        }
        let old = full.old_file_system().unwrap_or(&rec.file_system_id).to_string();
        if full.step == Step::Kept {
            super::restore::confirm(
                self.yes,
                &format!(
                    "delete the old file system {old} of deployment `{dep}` with its mount targets and access point (its AWS Backup recovery points stay in their vault)"
                ),
            )?;
            full.step = Step::Finishing;
            self.record_files(&rec, &full)?;
        }
        self.emit("finishing", format!("deleting the old file system {old}"));
        let set = full.old.clone();
        self.delete_set(&set).await?;
        self.state.files_restore = None;
        self.save()?;
        let new = full.new_file_system().unwrap_or_default().to_string();
        let message = format!("restore of the file system finished: {new} serves; {old} deleted");
        self.emit("done", message.clone());
        Ok(BTreeMap::from([
            ("file_system_id".to_string(), new),
            ("deleted_file_system".to_string(), old),
            ("message".to_string(), message),
        ]))
    }

    /// `--abort`: back to the old file system (when switched), then the new one deleted.
    pub(super) async fn abort_files(&mut self) -> Result<BTreeMap<String, String>, CmdError> {
        let Some(rec) = self.state.files_restore.clone().filter(|r| r.full.is_some()) else {
            return Ok(BTreeMap::new());
        };
        let mut full = full_of(&rec)?;
        let old_fs = full.old_file_system().unwrap_or(&rec.file_system_id).to_string();
        if full.step == Step::Finishing {
            return Err(super::restore::refused(
                format!(
                    "the old file system {old_fs} is being deleted (`restore --finish`): there is nothing to go back to"
                ),
                format!(
                    "finish it with `pi-deploy restore --deployment {} --finish`",
                    self.dep()
                ),
            ));
        }
        if full.step.switched() {
            full.step = Step::Reverting;
            self.record_files(&rec, &full)?;
        } else if !full.step.aborting() {
            full.step = Step::Discarding;
            self.record_files(&rec, &full)?;
        }
        if full.step == Step::Reverting {
            let old = full.old.clone();
            self.switch_files(&rec, &full, &old).await?;
            self.emit(
                "reverting",
                format!("the deployment's records name the file system {old_fs} again"),
            );
            full.step = Step::RollingBack {
                from_version: self.template_version(),
            };
            self.record_files(&rec, &full)?;
        }
        if let Step::RollingBack { from_version } = full.step.clone() {
            self.emit(
                "rolling_back",
                "rolling the instances back onto the old file system (blue/green, one at a time)".into(),
            );
            self.roll_files(from_version).await?;
            full.step = Step::Discarding;
            self.record_files(&rec, &full)?;
        }
        // Discarding: a job still running makes its file system all the same: waited for.
        // A job a killed run started but did not record is found by the file system it made
        // (the restore's creation token).
        if full.new_file_system().is_none() {
            let made = match rec.job_id.clone() {
                Some(job) => {
                    self.emit("discarding", format!("waiting for AWS Backup restore job {job} to end"));
                    self.job_file_system(&job).await?
                }
                None => rr::restored_file_system(&self.aws, &rec.token).await?,
            };
            if let Some(fs) = made {
                full.new.insert(FILE_SYSTEM_KEY.to_string(), fs);
                self.record_files(&rec, &full)?;
            }
        }
        // What a killed run made on it without recording it: found as `waiting` would.
        if full.new_file_system().is_some() {
            let graph = self.graph;
            let missing: Vec<&NodeSpec> = taken_over(graph.nodes())
                .into_iter()
                .filter(|s| !full.new.contains_key(&s.key))
                .collect();
            for spec in missing {
                let deps = self.deps_on(spec, &full.new);
                let token = rec.token_for(&spec.key);
                let cx = NodeCtx {
                    spec,
                    deps: &deps,
                    token: &token,
                };
                if let Some(found) = self.cloud().find(&cx).await? {
                    full.new.insert(spec.key.clone(), found);
                    self.record_files(&rec, &full)?;
                }
            }
        }
        let new_fs = full.new_file_system().map(String::from);
        if let Some(fs) = &new_fs {
            self.emit("discarding", format!("deleting the restored file system {fs}"));
        }
        let set = full.new.clone();
        self.delete_set(&set).await?;
        rr::remove_restore_policy(&self.aws, &snap::backup_role(self.dep())).await?;
        self.state.files_restore = None;
        self.save()?;
        let message = format!(
            "restore of the file system aborted: the deployment runs on {old_fs} again{}",
            new_fs.map(|f| format!("; {f} deleted")).unwrap_or_default()
        );
        self.emit("done", message.clone());
        Ok(BTreeMap::from([
            ("file_system_id".to_string(), old_fs),
            ("message".to_string(), message),
        ]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::Props;

    fn node(key: &str, kind: Kind, deps: &[&str]) -> NodeSpec {
        NodeSpec {
            key: key.into(),
            kind,
            deps: deps.iter().map(|d| d.to_string()).collect(),
            props: Props::ElasticIp,
        }
    }

    #[test]
    fn the_file_system_comes_first_and_its_readers_but_the_fleet_are_converged() {
        let nodes = vec![
            node("efs-ap", Kind::AccessPoint, &["efs"]),
            node("efs", Kind::FileSystem, &[]),
            node("efs-mt-a", Kind::MountTarget, &["efs", "subnet"]),
            node("subnet", Kind::Subnet, &[]),
            node("lambda-role", Kind::IamRole, &["efs", "efs-ap"]),
            node("lambda", Kind::LambdaFunction, &["lambda-role", "efs-ap", "efs-mt-a"]),
            node("launch-template", Kind::LaunchTemplate, &["efs"]),
            node("asg", Kind::AutoScalingGroup, &["launch-template", "efs-mt-a"]),
            node("ec2-role", Kind::IamRole, &["db"]),
        ];
        let keys: Vec<&str> = taken_over(&nodes).iter().map(|n| n.key.as_str()).collect();
        assert_eq!(keys, ["efs", "efs-ap", "efs-mt-a"]);
        assert_eq!(readers(&nodes, &[1, 0, 2, 3, 4, 5, 6, 7, 8]), ["lambda-role", "lambda"]);
    }
}
