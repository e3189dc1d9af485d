//! `pi-deploy restore --db-snapshot ID | --db-time RFC3339 | --latest`: restore the database
//! into a NEW instance and switch the deployment to it; `restore --finish` deletes the old
//! instance, `restore --abort` switches back (core::restore has the record and its steps).
//!
//! Order of one run (each step recorded in `State::restore` before its calls, so `kill -9`
//! anywhere is finished by the same command again, or undone by `--abort`):
//! 1. The flags checked (exit 2); the state locked; a restore in progress with the same
//!    flags goes on, another is refused (exit 3); an upgrade or roll in progress is refused.
//! 2. `restoring`: RestoreDBInstanceFromDBSnapshot / RestoreDBInstanceToPointInTime into
//!    `<deployment>-db-r<UTC time>` with the blueprint's subnet group, security group,
//!    parameter group, class, Multi-AZ, a managed master secret, deletion protection and
//!    the deployment's tags (found by its identifier on a rerun).
//! 3. `waiting`: until it is `available` (the one wait helper).
//! 4. `switching`: its secret's rotation and resource policy, the endpoint parameter
//!    `/<deployment>/db-endpoint`, and the state's `db` and `db-endpoint` records (the old
//!    ones kept in the restore record).
//! 5. `rolling`: `up`'s roll (upgrade::roll_for_up): a new launch template version whose
//!    user data names the new secret, the instances replaced one at a time behind the load
//!    balancer, health-gated; a killed roll is finished by the rerun (upgrade::resume_for_up).
//! 6. `kept`: done; the old instance keeps running (no instance reads its endpoint any more)
//!    until `--finish` (deleted, a final snapshot unless --skip-final-snapshot) or `--abort`
//!    (steps `reverting`, `rolling_back`, `discarding`: the same switch the other way, then
//!    the restored instance deleted, with a final snapshot once it has served).
//!
//! `restore --files RECOVERY_POINT_ARN` without `--path` restores the file system into a new
//! one with the same steps (commands::restore_fs); `--finish` and `--abort` finish or undo
//! whichever restores are in progress, the database's first.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;

use super::{CmdError, desired_graph, load_config, open_session, resolve_zones, validate};
use crate::aws::DestroyOptions;
use crate::cli::{GlobalArgs, RestoreArgs};
use crate::core::config::{Config, Purpose};
use crate::core::event::{Event, EventSink};
use crate::core::executor::StateStore;
use crate::core::graph::Graph;
use crate::core::resource::{Cloud, ErrorClass, NodeCtx, Outputs, ResourceError};
use crate::core::restore::{self as rs, Endpoint, RestoreRecord, Resume, Source, Step};
use crate::core::spec::{DbSettings, Props};
use crate::core::state::{ResourceRecord, State, Status};
use crate::core::upgrade::Fleet;
use crate::resources::restore as rr;
use crate::resources::{Aws, AwsCloud};

const DB: &str = "db";
const DB_ENDPOINT: &str = "db-endpoint";
const LAUNCH_TEMPLATE: &str = "launch-template";
/// The dashboard instances' role: its inline policy names the DB secret.
const EC2_ROLE: &str = "ec2-role";

/// What the command was asked to do.
enum Ask {
    Start(Source),
    /// A full restore of the file system from this recovery point into a new one.
    Files(String),
    Finish,
    Abort,
}

fn ask_of(args: &RestoreArgs) -> Result<Ask, CmdError> {
    if args.finish {
        return Ok(Ask::Finish);
    }
    if args.abort {
        return Ok(Ask::Abort);
    }
    if let Some(arn) = &args.files {
        crate::core::restore_files::check_recovery_point_arn(arn, None)
            .map_err(|p| CmdError::input("--files", p, crate::core::restore_files::ARN_RULE))?;
        return Ok(Ask::Files(arn.clone()));
    }
    if let Some(id) = &args.db_snapshot {
        rs::check_snapshot_identifier(id).map_err(|p| CmdError::input("--db-snapshot", p, rs::SNAPSHOT_ID_RULE))?;
        return Ok(Ask::Start(Source::Snapshot { id: id.clone() }));
    }
    if let Some(t) = &args.db_time {
        let at = rs::parse_time(t, &chrono::Utc::now()).map_err(|p| CmdError::input("--db-time", p, rs::TIME_RULE))?;
        return Ok(Ask::Start(Source::Time { at }));
    }
    if args.latest {
        return Ok(Ask::Start(Source::Latest));
    }
    Err(CmdError::input(
        "restore",
        "nothing to do",
        "give --db-snapshot ID, --db-time TIME or --latest; --files RECOVERY_POINT_ARN --path PATH; or --finish / --abort",
    ))
}

pub async fn run(global: &GlobalArgs, args: &RestoreArgs, events: Arc<dyn EventSink>) -> Result<(), CmdError> {
    if args.files.is_some() && !args.paths.is_empty() {
        return super::restore_files::run(global, args, events).await;
    }
    let mut cfg = load_config(global)?;
    validate(&cfg, Purpose::Other)?;
    let ask = ask_of(args)?;
    let started = Instant::now();
    let mut session = open_session(&cfg, global, "restore", events.clone()).await?;
    // Deletes here (`--finish`, `--abort`) take a final snapshot unless told not to; the
    // instances a restore leaves are pi-deploy's to delete, protected or not.
    Arc::get_mut(&mut session.aws)
        .expect("the session is not shared yet")
        .env
        .destroy = DestroyOptions {
        skip_final_snapshot: args.skip_final_snapshot,
        disable_deletion_protection: true,
    };
    let zones = resolve_zones(&mut session, &cfg).await?;
    let aws = session.aws.clone();
    // The roll keeps the image the fleet runs: a restore changes the database only.
    let current_ami = current_image(&aws, &session.state, &cfg.deployment).await?;
    cfg.ami = Some(current_ami);
    let graph = desired_graph(&cfg, &aws.env.region, zones.clone())?;
    let mut run = Run {
        aws: aws.clone(),
        state: &mut session.state,
        store: &session.state_file,
        events: events.clone(),
        started,
        cfg: &cfg,
        graph: &graph,
        zones,
        yes: global.yes,
    };
    let result = match ask {
        Ask::Start(source) => run.start(source).await,
        Ask::Files(arn) => run.start_files(&arn).await,
        Ask::Finish => run.finish_all().await,
        Ask::Abort => run.abort_all().await,
    };
    aws.clients.dump_call_counts();
    if let Err(e @ (CmdError::Refused { .. } | CmdError::Input(_))) = result {
        return Err(e);
    }
    let (outputs, error) = match &result {
        Ok(o) => (o.clone(), None),
        Err(e) => (BTreeMap::new(), Some(error_text(e))),
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

fn error_text(e: &CmdError) -> String {
    match e {
        CmdError::Failed { message, .. } | CmdError::Refused { message, .. } => message.clone(),
        CmdError::Input(errs) => errs.iter().map(|e| e.problem.clone()).collect::<Vec<_>>().join("; "),
        CmdError::Status(c) => format!("status {c}"),
    }
}

pub(super) fn refused(message: String, hint: String) -> CmdError {
    CmdError::Refused {
        message,
        hint: Some(hint),
    }
}

/// The image the group launches now (its launch template's default version).
async fn current_image(aws: &Aws, state: &State, deployment: &str) -> Result<String, CmdError> {
    let ids = super::upgrade::Ids::from_state(state, deployment)?;
    let fleet = ids.fleet(aws);
    let group = fleet.group().await?;
    let version = fleet.resolve_version(group.version.as_deref()).await?;
    fleet.version_image(&version).await?.ok_or_else(|| {
        CmdError::from(ResourceError::new(
            ErrorClass::Failed,
            format!("the launch template's version {version} names no image"),
        ))
    })
}

pub(super) struct Run<'a> {
    pub(super) aws: Arc<Aws>,
    pub(super) state: &'a mut State,
    pub(super) store: &'a dyn StateStore,
    pub(super) events: Arc<dyn EventSink>,
    pub(super) started: Instant,
    pub(super) cfg: &'a Config,
    pub(super) graph: &'a Graph,
    pub(super) zones: [String; 2],
    /// `--yes`: no confirmation asked.
    pub(super) yes: bool,
}

impl Run<'_> {
    pub(super) fn emit(&self, step: &str, message: String) {
        self.events.emit(Event::Restore {
            step: step.into(),
            message,
            elapsed_ms: self.started.elapsed().as_millis() as u64,
        });
    }

    pub(super) fn save(&mut self) -> Result<(), CmdError> {
        self.state.serial += 1;
        self.store.save(self.state).map_err(|why| CmdError::Failed {
            message: super::state_write_failed(&why),
            hint: Some(super::STATE_WRITE_HINT.into()),
            reported: false,
        })
    }

    fn record(&mut self, rec: &RestoreRecord) -> Result<(), CmdError> {
        self.state.restore = Some(rec.clone());
        self.save()
    }

    pub(super) fn dep(&self) -> &str {
        &self.cfg.deployment
    }

    fn db_settings(&self) -> Result<(DbSettings, [String; 3]), CmdError> {
        let Some(Props::DbInstance {
            subnet_group,
            parameter_group,
            security_group,
            db,
        }) = self.graph.get(DB).map(|n| &n.props)
        else {
            return Err(internal("the architecture has no database"));
        };
        let id = |key: &str| super::recorded(self.state, key, "id", "a restore").map(String::from);
        Ok((
            db.clone(),
            [id(subnet_group)?, id(parameter_group)?, id(security_group)?],
        ))
    }

    fn rotation_days(&self) -> i64 {
        match self.graph.get(DB_ENDPOINT).map(|n| &n.props) {
            Some(Props::DbEndpoint { rotation_days, .. }) => *rotation_days,
            _ => 30,
        }
    }

    async fn start(&mut self, source: Source) -> Result<BTreeMap<String, String>, CmdError> {
        let dep = self.dep().to_string();
        let mut rec = match rs::resume(self.state.restore.as_ref(), &source) {
            Resume::Refuse(what) => {
                return Err(refused(
                    format!("{what}; refusing to start another restore"),
                    match &self.state.restore {
                        Some(r) if r.step.aborting() => {
                            format!("finish the abort with `pi-deploy restore --deployment {dep} --abort`")
                        }
                        Some(r) if r.step == Step::Finishing => {
                            format!("finish it with `pi-deploy restore --deployment {dep} --finish`")
                        }
                        Some(r) => format!(
                            "finish it with `pi-deploy restore --deployment {dep} {}` then `--finish`, or undo it with `--abort`; then restore again",
                            r.source.flags()
                        ),
                        None => String::new(),
                    },
                ));
            }
            Resume::Done => {
                let rec = self.state.restore.clone().expect("resumed");
                self.emit("kept", rec.describe());
                return Ok(summary(&rec));
            }
            Resume::Continue => {
                let rec = self.state.restore.clone().expect("resumed");
                self.emit(
                    "resuming",
                    format!(
                        "resuming the restore into {} that stopped at step `{}`",
                        rec.new_instance,
                        rec.step.name()
                    ),
                );
                rec
            }
            Resume::New => self.prepare(source).await?,
        };
        if rec.step == Step::Restoring {
            let (db, [subnet_group, parameter_group, security_group]) = self.db_settings()?;
            let asked = rr::restore(
                &self.aws,
                &rec.source,
                &rr::Target {
                    identifier: &rec.new_instance,
                    db: &db,
                    subnet_group: &subnet_group,
                    parameter_group: &parameter_group,
                    security_group: &security_group,
                    current: rec.old_instance(),
                },
            )
            .await
            .map_err(|e| self.restore_failed(e))?;
            if asked {
                self.emit(
                    "restoring",
                    format!("RDS restores {} into {}", rec.source.describe(), rec.new_instance),
                );
            }
            rec.step = Step::Waiting;
            self.record(&rec)?;
        }
        if rec.step == Step::Waiting {
            let events = self.events.clone();
            let started = self.started;
            let name = rec.new_instance.clone();
            let progress = move |seen: &str| {
                events.emit(Event::Restore {
                    step: "waiting".into(),
                    message: format!("DB instance {name}: {seen}"),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                })
            };
            let (outputs, endpoint) = rr::wait_available(&self.aws, &rec.new_instance, &progress).await?;
            rec.new = Some(outputs);
            rec.new_endpoint = Some(endpoint);
            rec.step = Step::Switching;
            self.record(&rec)?;
        }
        if rec.step == Step::Switching {
            let (outputs, endpoint) = match (&rec.new, &rec.new_endpoint) {
                (Some(o), Some(e)) => (o.clone(), e.clone()),
                _ => return Err(internal("the restore record has no new instance at `switching`")),
            };
            let kept = rec.old.clone();
            self.switch_to(&outputs, &endpoint, &kept).await?;
            self.emit(
                "switching",
                format!(
                    "the endpoint parameter and the secret now name {} ({}:{})",
                    rec.new_instance, endpoint.address, endpoint.port
                ),
            );
            rec.step = Step::Rolling {
                from_version: self.template_version(),
            };
            self.record(&rec)?;
        }
        if let Step::Rolling { from_version } = rec.step.clone() {
            self.emit(
                "rolling",
                "rolling the instances onto the restored database (blue/green, one at a time)".into(),
            );
            self.roll(&mut rec, from_version).await?;
            rec.step = Step::Kept;
            self.record(&rec)?;
        }
        self.emit("kept", rec.describe());
        Ok(summary(&rec))
    }

    /// A new restore: the read checks, then the record (`restoring`).
    /// What a new restore of either kind refuses to start beside (exit 3): an upgrade or
    /// roll in progress, an `up` whose replace stopped midway.
    pub(super) fn refuse_if_busy(&self) -> Result<(), CmdError> {
        let dep = self.dep();
        if let Some(u) = &self.state.upgrade {
            return Err(refused(
                format!(
                    "an upgrade or roll to {} is in progress (step `{}`); a restore rolls the instances too",
                    u.ami,
                    u.step.name()
                ),
                format!(
                    "finish it (`pi-deploy up`, `pi-deploy upgrade --ami {}`) or roll it back (`pi-deploy upgrade --deployment {dep} --abort`), then restore",
                    u.ami
                ),
            ));
        }
        if let Some((key, _)) = self.state.resources.iter().find(|(_, r)| r.retiring.is_some()) {
            return Err(refused(
                format!("an `up` that replaces a resource stopped midway (`{key}` is still retiring)"),
                format!("finish it with `pi-deploy up --deployment {dep}`, then restore"),
            ));
        }
        Ok(())
    }

    async fn prepare(&mut self, source: Source) -> Result<RestoreRecord, CmdError> {
        let dep = self.dep().to_string();
        self.refuse_if_busy()?;
        if let Some(r) = self
            .state
            .files_restore
            .as_ref()
            .filter(|r| r.full.as_ref().is_some_and(|f| f.step != Step::Kept))
        {
            return Err(refused(
                format!("{}; a restore of the database rolls the instances too", r.describe()),
                format!(
                    "finish it with `pi-deploy restore --deployment {dep} {}` (or undo it with `--abort`), then restore",
                    r.flags()
                ),
            ));
        }
        let db = self
            .state
            .resources
            .get(DB)
            .filter(|r| r.status == Status::Ready && r.outputs.get("secret_arn").is_some())
            .map(|r| r.outputs.clone())
            .ok_or_else(|| {
                refused(
                    format!("deployment `{dep}` has no ready database to restore in place of"),
                    "run `pi-deploy up` first".into(),
                )
            })?;
        let old_endpoint = self.state.resources.get(DB_ENDPOINT).and_then(|r| {
            Some(Endpoint {
                address: r.outputs.get("address")?.to_string(),
                port: r.outputs.get("port")?.to_string(),
            })
        });
        if let Source::Snapshot { id } = &source {
            let Some(snap) = crate::resources::backup::db_snapshot(&self.aws, id).await? else {
                return Err(CmdError::input(
                    "--db-snapshot",
                    format!("there is no DB snapshot `{id}` in this account and region"),
                    "give one `pi-deploy snapshot --list` shows (its id), or use --db-time / --latest",
                ));
            };
            let (settings, _) = self.db_settings()?;
            if let Some(why) = snapshot_engine_mismatch(id, snap.engine_version.as_deref(), &settings.engine_version) {
                return Err(CmdError::input("--db-snapshot", why, SNAPSHOT_ENGINE_HINT));
            }
        }
        confirm(
            self.yes,
            &format!(
                "restore the database of deployment `{dep}` from {} into a new instance and roll every dashboard instance onto it (the current instance {} is kept)",
                source.describe(),
                db.get("id").unwrap_or_default()
            ),
        )?;
        let mut now = chrono::Utc::now();
        // Never the name of the instance it replaces (an earlier restore in this second).
        if rs::instance_name(&dep, &now) == db.get("id").unwrap_or_default() {
            now += chrono::Duration::seconds(1);
        }
        let name = rs::instance_name(&dep, &now);
        rs::check_instance_identifier(&name).map_err(|p| internal(&p))?;
        let rec = RestoreRecord {
            source,
            step: Step::Restoring,
            started_at: now,
            new_instance: name,
            old: db,
            old_endpoint,
            new: None,
            new_endpoint: None,
        };
        self.emit(
            "started",
            format!(
                "restore of {} from {} into {}",
                rec.old_instance(),
                rec.source.describe(),
                rec.new_instance
            ),
        );
        self.record(&rec)?;
        Ok(rec)
    }

    fn restore_failed(&self, e: ResourceError) -> CmdError {
        let hint = e.hint.clone().unwrap_or_default();
        CmdError::Failed {
            message: format!("the restore call failed: {e}"),
            hint: Some(format!(
                "{hint}{}run the same command again, or `pi-deploy restore --deployment {} --abort` to give up (nothing was switched)",
                if hint.is_empty() { "" } else { "; " },
                self.dep()
            )),
            reported: false,
        }
    }

    pub(super) fn template_version(&self) -> String {
        self.state
            .resources
            .get(LAUNCH_TEMPLATE)
            .and_then(|r| r.outputs.get("version"))
            .unwrap_or_default()
            .to_string()
    }

    /// Point what the instances read at `outputs`/`endpoint` and record it: the secret's
    /// policy and rotation and the endpoint parameter (AWS), then the `db` and `db-endpoint`
    /// records (the state), which the next launch template version is made from.
    async fn switch_to(&mut self, outputs: &Outputs, endpoint: &Endpoint, kept: &Outputs) -> Result<(), CmdError> {
        let secret = outputs.require("secret_arn")?.to_string();
        rr::publish(&self.aws, &secret, self.rotation_days(), endpoint).await?;
        let now = chrono::Utc::now();
        if let Some(r) = self.state.resources.get_mut(DB) {
            r.outputs = outputs.clone();
            // The instances still running on the other database keep reading its secret.
            if let Some(k) = kept.get("secret_arn") {
                r.outputs.set(rs::KEPT_SECRET, k);
            }
            r.updated_at = now;
        }
        if let Some(r) = self.state.resources.get_mut(DB_ENDPOINT) {
            r.outputs.set("address", &endpoint.address);
            r.outputs.set("port", &endpoint.port);
            r.updated_at = now;
        }
        self.state.outputs = super::up::outputs(self.state);
        self.converge_role().await
    }

    /// The dashboard role's inline policy as the `db` record now asks (the secret, and the
    /// kept one while a restore keeps it).
    async fn converge_role(&mut self) -> Result<(), CmdError> {
        self.converge_recorded(EC2_ROLE).await
    }

    /// The recorded resource `key` made as the state's records now ask: its kind's own
    /// converge, with the recorded dependencies; the outputs it answers recorded (saved by
    /// the caller's next write). Nothing when the architecture or the state has no `key`.
    pub(super) async fn converge_recorded(&mut self, key: &str) -> Result<(), CmdError> {
        let (Some(spec), Some(rec)) = (self.graph.get(key), self.state.resources.get(key)) else {
            return Ok(());
        };
        let deps: BTreeMap<String, Outputs> = spec
            .deps
            .iter()
            .filter_map(|d| self.state.resources.get(d).map(|r| (d.clone(), r.outputs.clone())))
            .collect();
        let token = rec.client_token.clone();
        let cx = NodeCtx {
            spec,
            deps: &deps,
            token: &token,
        };
        let outputs = AwsCloud { aws: self.aws.clone() }
            .converge(&cx, rec.outputs.clone())
            .await?;
        if let Some(r) = self.state.resources.get_mut(key)
            && r.outputs != outputs
        {
            r.outputs = outputs;
            r.updated_at = chrono::Utc::now();
        }
        Ok(())
    }

    /// The `db` record names one database again: its kept secret dropped, the role's
    /// policy narrowed to the one secret.
    async fn forget_kept(&mut self) -> Result<(), CmdError> {
        if let Some(r) = self.state.resources.get_mut(DB)
            && r.outputs.0.remove(rs::KEPT_SECRET).is_some()
        {
            r.updated_at = chrono::Utc::now();
            self.save()?;
        }
        self.converge_role().await
    }

    /// `up`'s roll onto a launch template version made from the state's records as they
    /// are now (the secret the `db` record names).
    async fn roll(&mut self, rec: &mut RestoreRecord, from_version: String) -> Result<usize, CmdError> {
        let restep = |state: &mut State, from_version: String| {
            if let Some(r) = state.restore.as_mut() {
                r.step = match r.step {
                    Step::RollingBack { .. } => Step::RollingBack { from_version },
                    _ => Step::Rolling { from_version },
                };
            }
        };
        let rolled = self.roll_fleet(from_version, &restep).await;
        if let Some(r) = &self.state.restore {
            rec.step = r.step.clone();
        }
        rolled
    }

    /// `up`'s roll onto a launch template version made from the state's records as they
    /// are now (the secret the `db` record names, the file system the `efs` record names).
    /// A roll a killed run left is finished (ours) or settled first (another: then
    /// `restep` records the restore's roll step from the template's version now), and one
    /// that completed since `from_version` is not done again.
    pub(super) async fn roll_fleet(
        &mut self,
        from_version: String,
        restep: &(dyn Fn(&mut State, String) + Send + Sync),
    ) -> Result<usize, CmdError> {
        let cloud = AwsCloud { aws: self.aws.clone() };
        let digest = super::up::launch_digest(self.graph, self.state, &cloud);
        if let Some(u) = self.state.upgrade.clone() {
            let ours = u.launch.as_deref() == Some(digest.as_str());
            let resumed = super::upgrade::resume_for_up(
                self.aws.clone(),
                self.cfg,
                self.zones.clone(),
                self.state,
                self.store,
                self.events.clone(),
                self.started,
                &digest,
            )
            .await?;
            if ours {
                return Ok(match resumed {
                    Some(super::upgrade::Resumed::Finished(n)) => n,
                    _ => 0,
                });
            }
            // Another swap was settled (the restore's roll, when aborting): ours from here.
            let from_version = self.template_version();
            restep(self.state, from_version);
            self.save()?;
        } else if self.template_version() != from_version {
            // The roll completed before the run that did it was killed.
            return Ok(0);
        }
        super::upgrade::roll_for_up(
            self.aws.clone(),
            self.cfg,
            self.zones.clone(),
            self.state,
            self.store,
            self.events.clone(),
            self.started,
            &digest,
        )
        .await
    }

    /// `--finish`: the database's restore, then the file system's (each deletes what it kept).
    async fn finish_all(&mut self) -> Result<BTreeMap<String, String>, CmdError> {
        let files = self.state.files_restore.as_ref().is_some_and(|r| r.full.is_some());
        if self.state.restore.is_none() && !files {
            let message = "no restore is in progress: nothing to finish".to_string();
            self.emit("done", message.clone());
            return Ok(BTreeMap::from([("message".to_string(), message)]));
        }
        let mut out = BTreeMap::new();
        if self.state.restore.is_some() {
            merge(&mut out, self.finish().await?);
        }
        if files {
            merge(&mut out, self.finish_files().await?);
        }
        Ok(out)
    }

    /// `--abort`: the database's restore, then the file system's (each switches back).
    async fn abort_all(&mut self) -> Result<BTreeMap<String, String>, CmdError> {
        let files = self.state.files_restore.as_ref().is_some_and(|r| r.full.is_some());
        if self.state.restore.is_none() && !files {
            let message = "no restore is in progress: nothing to abort".to_string();
            self.emit("done", message.clone());
            return Ok(BTreeMap::from([("message".to_string(), message)]));
        }
        let mut out = BTreeMap::new();
        if self.state.restore.is_some() {
            merge(&mut out, self.abort().await?);
        }
        if files {
            merge(&mut out, self.abort_files().await?);
        }
        Ok(out)
    }

    /// `--finish`: delete the old instance (a final snapshot unless --skip-final-snapshot).
    async fn finish(&mut self) -> Result<BTreeMap<String, String>, CmdError> {
        let dep = self.dep().to_string();
        let Some(mut rec) = self.state.restore.clone() else {
            let message = "no restore is in progress: nothing to finish".to_string();
            self.emit("done", message.clone());
            return Ok(BTreeMap::from([("message".to_string(), message)]));
        };
        if !matches!(rec.step, Step::Kept | Step::Finishing) {
            return Err(refused(
                format!(
                    "the restore into {} stopped at step `{}`: the deployment is not switched to it yet",
                    rec.new_instance,
                    rec.step.name()
                ),
                if rec.step.aborting() {
                    format!("finish the abort with `pi-deploy restore --deployment {dep} --abort`")
                } else {
                    format!(
                        "run `pi-deploy restore --deployment {dep} {}` to finish switching, or `--abort`",
                        rec.source.flags()
                    )
                },
            ));
        }
        if rec.step == Step::Kept {
            confirm(
                self.yes,
                &format!(
                    "delete the old DB instance {} of deployment `{dep}` ({})",
                    rec.old_instance(),
                    if self.aws.env.destroy.skip_final_snapshot {
                        "NO final snapshot"
                    } else {
                        "a final snapshot first"
                    }
                ),
            )?;
        }
        rec.step = Step::Finishing;
        self.record(&rec)?;
        let old = rec.old_instance().to_string();
        // No instance reads the old secret any more: the role stops naming it first.
        self.forget_kept().await?;
        self.emit("finishing", format!("deleting the old DB instance {old}"));
        rr::delete(&self.aws, rs::OLD_KEY, &old).await?;
        self.state.restore = None;
        self.save()?;
        let mut out = BTreeMap::from([
            ("db_instance".to_string(), rec.new_instance.clone()),
            ("deleted".to_string(), old.clone()),
        ]);
        if let Some(s) = self.aws.env.final_snapshots.lock().unwrap().first() {
            out.insert("final_snapshot".into(), s.clone());
        }
        self.emit(
            "done",
            format!("restore finished: {} serves; {old} deleted", rec.new_instance),
        );
        Ok(out)
    }

    /// `--abort`: back to the old instance, then the restored one deleted.
    async fn abort(&mut self) -> Result<BTreeMap<String, String>, CmdError> {
        let Some(mut rec) = self.state.restore.clone() else {
            let message = "no restore is in progress: nothing to abort".to_string();
            self.emit("done", message.clone());
            return Ok(BTreeMap::from([("message".to_string(), message)]));
        };
        if rec.step == Step::Finishing {
            return Err(refused(
                format!(
                    "the old instance {} is being deleted (`restore --finish`): there is nothing to go back to",
                    rec.old_instance()
                ),
                format!(
                    "finish it with `pi-deploy restore --deployment {} --finish`",
                    self.dep()
                ),
            ));
        }
        if rec.step.switched() {
            rec.step = Step::Reverting;
            self.record(&rec)?;
        } else if !rec.step.aborting() {
            rec.step = Step::Discarding;
            self.record(&rec)?;
        }
        if rec.step == Step::Reverting {
            let endpoint = rec
                .old_endpoint
                .clone()
                .ok_or_else(|| internal("the restore record has no old endpoint"))?;
            let old = rec.old.clone();
            let kept = rec.new.clone().unwrap_or_default();
            self.switch_to(&old, &endpoint, &kept).await?;
            self.emit(
                "reverting",
                format!(
                    "the endpoint parameter and the secret name {} again",
                    rec.old_instance()
                ),
            );
            rec.step = Step::RollingBack {
                from_version: self.template_version(),
            };
            self.record(&rec)?;
        }
        if let Step::RollingBack { from_version } = rec.step.clone() {
            self.emit(
                "rolling_back",
                "rolling the instances back onto the old database (blue/green, one at a time)".into(),
            );
            self.roll(&mut rec, from_version).await?;
            rec.step = Step::Discarding;
            self.record(&rec)?;
        }
        // Discarding: a final snapshot first unless --skip-final-snapshot (once it has
        // served, the restored instance holds writes of its own).
        self.forget_kept().await?;
        self.emit(
            "discarding",
            format!("deleting the restored DB instance {}", rec.new_instance),
        );
        rr::delete(&self.aws, rs::NEW_KEY, &rec.new_instance).await?;
        self.state.restore = None;
        self.save()?;
        let message = format!(
            "restore aborted: the deployment runs on {} again; {} deleted",
            rec.old_instance(),
            rec.new_instance
        );
        self.emit("done", message.clone());
        Ok(BTreeMap::from([
            ("db_instance".to_string(), rec.old_instance().to_string()),
            ("deleted".to_string(), rec.new_instance.clone()),
            ("message".to_string(), message),
        ]))
    }
}

/// Both restores' outputs in one answer (their messages joined).
fn merge(out: &mut BTreeMap<String, String>, more: BTreeMap<String, String>) {
    for (k, v) in more {
        match out.get_mut(&k) {
            Some(m) if k == "message" => {
                m.push_str("; ");
                m.push_str(&v);
            }
            _ => {
                out.insert(k, v);
            }
        }
    }
}

const SNAPSHOT_ENGINE_HINT: &str = "restore a snapshot taken on the deployment's major version (`pi-deploy snapshot --list`), or a point in time (--db-time); to go back to an older major, set database.engine_version to it in a new deployment and restore the snapshot there";

/// Why a snapshot cannot be restored into this deployment: the restored instance comes up on
/// the snapshot's engine version, and RDS refuses a parameter group of another family
/// (the deployment's group follows database.engine_version). None when the families agree
/// or a version is not one pi-deploy knows the family of (RDS then has the last word).
fn snapshot_engine_mismatch(id: &str, snapshot: Option<&str>, configured: &str) -> Option<String> {
    use crate::core::config::mariadb_family;
    let snapshot = snapshot?;
    let (theirs, ours) = (mariadb_family(snapshot).ok()?, mariadb_family(configured).ok()?);
    (theirs != ours).then(|| {
        format!(
            "DB snapshot `{id}` was taken on MariaDB {snapshot}, but the deployment's database is configured for {configured} (database.engine_version) with a parameter group of family {ours}, which RDS refuses for a restore of a {theirs} snapshot"
        )
    })
}

/// Ask on a terminal, unless --yes; without a terminal, refuse (exit 3).
pub(super) fn confirm(yes: bool, what: &str) -> Result<(), CmdError> {
    use std::io::{BufRead, IsTerminal, Write};
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CmdError::Refused {
            message: format!("restore needs confirmation: {what}"),
            hint: Some("pass --yes to confirm without a terminal".into()),
        });
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "This will {what}. Continue? [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    match matches!(answer.trim(), "y" | "Y" | "yes") {
        true => Ok(()),
        false => Err(CmdError::Refused {
            message: "restore cancelled".into(),
            hint: None,
        }),
    }
}

fn summary(rec: &RestoreRecord) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([
        ("db_instance".to_string(), rec.new_instance.clone()),
        ("kept_db_instance".to_string(), rec.old_instance().to_string()),
        ("restored_from".to_string(), rec.source.tag_value()),
        ("step".to_string(), rec.step.name().to_string()),
    ]);
    if let Some(e) = &rec.new_endpoint {
        out.insert("db_endpoint".into(), format!("{}:{}", e.address, e.port));
    }
    out
}

pub(super) fn internal(what: &str) -> CmdError {
    CmdError::Failed {
        message: format!("internal error: {what}"),
        hint: Some("please report this as a bug".into()),
        reported: false,
    }
}

/// `up` and `upgrade` refuse to run while a restore is between its steps (not yet
/// switched and rolled, or being finished or aborted): they would roll the instances or
/// converge the database under it. A restore that is `kept` (switched, the old instance
/// kept) is the deployment's normal state until `--finish`: they run.
pub fn refuse_while_restoring(state: &State, command: &str) -> Result<(), CmdError> {
    if let Some(r) = &state.files_restore
        && let Some(full) = r.full.as_ref().filter(|f| f.step != Step::Kept)
    {
        let d = &state.deployment;
        let again = if full.step.aborting() {
            format!("`pi-deploy restore --deployment {d} --abort`")
        } else if full.step == Step::Finishing {
            format!("`pi-deploy restore --deployment {d} --finish`")
        } else {
            format!(
                "`pi-deploy restore --deployment {d} {}` (or `--abort` to undo it)",
                r.flags()
            )
        };
        return Err(refused(
            format!("{}; `{command}` would change the instances under it", r.describe()),
            format!("finish it with {again}, then run `{command}` again"),
        ));
    }
    let Some(rec) = &state.restore else { return Ok(()) };
    if rec.step == Step::Kept {
        return Ok(());
    }
    let d = &state.deployment;
    let again = if rec.step.aborting() {
        format!("`pi-deploy restore --deployment {d} --abort`")
    } else if rec.step == Step::Finishing {
        format!("`pi-deploy restore --deployment {d} --finish`")
    } else {
        format!(
            "`pi-deploy restore --deployment {d} {}` (or `--abort` to undo it)",
            rec.source.flags()
        )
    };
    Err(refused(
        format!("{}; `{command}` would change the instances under it", rec.describe()),
        format!("finish it with {again}, then run `{command}` again"),
    ))
}

/// `destroy`: the instance a restore left besides the one the `db` record names (the old
/// one kept, or a restored one not switched to) becomes a record the destroy walk deletes
/// like the database (final snapshot and deletion protection as `destroy` is told), with
/// the `db` record's dependencies so it goes before its subnet and parameter groups. The
/// restore record is then cleared: nothing of it is left to finish.
pub fn hand_to_destroy(state: &mut State) {
    hand_files_to_destroy(state);
    let Some(rec) = state.restore.take() else { return };
    let current = state
        .resources
        .get(DB)
        .and_then(|r| r.outputs.get("id"))
        .map(String::from);
    let deps = state.resources.get(DB).map(|r| r.deps.clone()).unwrap_or_default();
    for (key, id) in [
        (rs::OLD_KEY, rec.old_instance().to_string()),
        (rs::NEW_KEY, rec.new_instance.clone()),
    ] {
        if id.is_empty() || current.as_deref() == Some(id.as_str()) || state.resources.contains_key(key) {
            continue;
        }
        state.resources.insert(
            key.to_string(),
            ResourceRecord {
                kind: crate::core::spec::Kind::DbInstance,
                status: Status::Ready,
                client_token: state.client_token(key),
                outputs: Outputs::new().with("id", &id),
                deps: deps.clone(),
                settings: Default::default(),
                updated_at: chrono::Utc::now(),
                retiring: None,
            },
        );
    }
}

/// `destroy`: what a full restore of the file system left besides what the records name
/// (core::restore_files::left_behind) becomes records the destroy walk deletes like the
/// ones they stand for (`<key>-restore-old` / `-new`, with the same dependencies, the file
/// system's mapped to its own), so mount targets and access points go before it.
fn hand_files_to_destroy(state: &mut State) {
    use crate::core::restore_files::{FILE_SYSTEM_KEY, left_behind};
    let Some(rec) = state.files_restore.take_if(|r| r.full.is_some()) else {
        return;
    };
    let current = state
        .resources
        .get(FILE_SYSTEM_KEY)
        .and_then(|r| r.outputs.get("id"))
        .map(String::from);
    let (which, left) = left_behind(&rec, current.as_deref());
    let handed = |key: &str| format!("{key}-restore-{which}");
    for (key, outputs) in left {
        let Some(like) = state.resources.get(&key) else {
            continue;
        };
        let name = handed(&key);
        if state.resources.contains_key(&name) {
            continue;
        }
        let record = ResourceRecord {
            kind: like.kind,
            status: Status::Ready,
            client_token: state.client_token(&name),
            outputs,
            deps: like
                .deps
                .iter()
                .map(|d| if d == FILE_SYSTEM_KEY { handed(d) } else { d.clone() })
                .collect(),
            settings: Default::default(),
            updated_at: chrono::Utc::now(),
            retiring: None,
        };
        state.resources.insert(name, record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::Identity;

    fn state_with(step: Option<Step>) -> State {
        let mut st = State::new(&Identity {
            deployment: "pi".into(),
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            partition: "aws".into(),
        });
        st.restore = step.map(|step| RestoreRecord {
            source: Source::Latest,
            step,
            started_at: chrono::Utc::now(),
            new_instance: "pi-db-r20261206-220000".into(),
            old: Outputs::new().with("id", "pi-db"),
            old_endpoint: None,
            new: None,
            new_endpoint: None,
        });
        st
    }

    #[test]
    fn up_and_upgrade_run_beside_a_kept_restore_only() {
        assert!(refuse_while_restoring(&state_with(None), "up").is_ok());
        assert!(refuse_while_restoring(&state_with(Some(Step::Kept)), "up").is_ok());
        for (step, hint) in [
            (Step::Waiting, "restore --deployment pi --latest"),
            (
                Step::Rolling {
                    from_version: "2".into(),
                },
                "--abort",
            ),
            (Step::Finishing, "--finish"),
            (Step::Discarding, "--abort"),
        ] {
            match refuse_while_restoring(&state_with(Some(step.clone())), "upgrade") {
                Err(CmdError::Refused { message, hint: Some(h) }) => {
                    assert!(message.contains("`upgrade`"), "{message}");
                    assert!(h.contains(hint), "{step:?}: {h}");
                }
                other => panic!("{step:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_snapshot_of_another_major_version_is_refused_and_a_minor_is_not() {
        let why = snapshot_engine_mismatch("s1", Some("10.6.14"), "11.4").unwrap();
        assert!(
            why.contains("10.6.14") && why.contains("11.4") && why.contains("s1"),
            "{why}"
        );
        assert_eq!(snapshot_engine_mismatch("s1", Some("10.11.9"), "10.11"), None);
        assert_eq!(snapshot_engine_mismatch("s1", Some("10.11.9"), "10.11.10"), None);
        assert_eq!(snapshot_engine_mismatch("s1", None, "10.11"), None);
    }

    #[test]
    fn destroy_gets_the_instance_the_db_record_does_not_name() {
        let record = |id: &str| ResourceRecord {
            kind: crate::core::spec::Kind::DbInstance,
            status: Status::Ready,
            client_token: "t".into(),
            outputs: Outputs::new().with("id", id),
            deps: vec!["db-subnet-group".into()],
            settings: Default::default(),
            updated_at: chrono::Utc::now(),
            retiring: None,
        };
        // Switched: the db record names the restored instance; the old one goes too.
        let mut st = state_with(Some(Step::Kept));
        st.resources.insert(DB.into(), record("pi-db-r20261206-220000"));
        hand_to_destroy(&mut st);
        assert!(st.restore.is_none());
        let old = &st.resources[rs::OLD_KEY];
        assert_eq!(old.outputs.get("id"), Some("pi-db"));
        assert_eq!(old.deps, ["db-subnet-group"]);
        assert!(!st.resources.contains_key(rs::NEW_KEY));
        // Not switched: the restored instance goes too.
        let mut st = state_with(Some(Step::Waiting));
        st.resources.insert(DB.into(), record("pi-db"));
        hand_to_destroy(&mut st);
        assert_eq!(
            st.resources[rs::NEW_KEY].outputs.get("id"),
            Some("pi-db-r20261206-220000")
        );
        assert!(!st.resources.contains_key(rs::OLD_KEY));
    }
}
