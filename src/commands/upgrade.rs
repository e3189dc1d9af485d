//! `pi-deploy upgrade --ami ami-...`: replace every dashboard instance with one on a new AMI,
//! blue/green, without downtime (the swap itself is `core::upgrade`).
//!
//! Before anything changes: the AMI id's format and existence are checked (exit 2), the
//! deployment must have a ready Auto Scaling group, and a group that already runs the AMI
//! everywhere is left alone. Then: record the upgrade in the state, create (or find) the new
//! launch template version with the complete launch data, swap, and only after the swap has
//! succeeded make that version the template's default and record it. The record is written
//! at every step, so a run that was killed resumes when run again with the same AMI;
//! `--abort` rolls such an upgrade back instead.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use tokio::time::Instant;

use super::{CmdError, desired_graph, load_config, open_session, resolve_zones, validate};
use crate::aws::wait::Backoff;
use crate::cli::{GlobalArgs, UpgradeArgs};
use crate::core::config::{Config, Purpose, is_ami_id};
use crate::core::event::{Event, EventSink};
use crate::core::executor::StateStore;
use crate::core::resource::{ErrorClass, Outputs, ResourceError};
use crate::core::spec::Props;
use crate::core::state::{State, Status};
use crate::core::upgrade::{self, Fleet, Origin, Plan, Step, SwapFailure, UpgradeRecord};
use crate::resources::fleet::AwsFleet;
use crate::resources::launch_template::{self, TemplateInputs, TemplateRefs};

const LAUNCH_TEMPLATE: &str = "launch-template";
const GROUP: &str = "asg";
const TARGET_GROUP: &str = "tg";

pub async fn run(global: &GlobalArgs, args: &UpgradeArgs, events: Arc<dyn EventSink>) -> Result<(), CmdError> {
    let cfg = load_config(global)?;
    validate(&cfg, Purpose::Other)?;
    if let Some(ami) = &args.ami
        && !is_ami_id(ami)
    {
        return Err(CmdError::input(
            "--ami",
            format!("`{ami}` is not an AMI id"),
            "use `ami-` followed by 8 or 17 lowercase hex digits (the new Panintelligence image)",
        ));
    }
    let started = Instant::now();
    let mut session = open_session(&cfg, global, "upgrade", events.clone()).await?;
    super::restore::refuse_while_restoring(&session.state, "upgrade")?;
    let ids = Ids::from_state(&session.state, &cfg.deployment)?;
    let zones = resolve_zones(&mut session, &cfg).await?;
    let aws = session.aws.clone();
    let fleet = ids.fleet(&aws);
    let mut run = Run {
        aws: aws.clone(),
        state: &mut session.state,
        store: &session.state_file,
        zones,
        events: events.clone(),
        started,
        cfg: &cfg,
        caller: Origin::Upgrade,
    };
    let Some(ami) = args.ami.as_deref() else {
        return run.abort(&fleet).await;
    };
    let root = check_ami(&aws, ami).await?;
    check_launch(&aws, &cfg, ami, &root, run.state, &events).await?;
    if let Some(message) = launch_template::root_volume_note(ami, cfg.root_volume_gib, root.snapshot_gib) {
        events.emit(Event::Warning { message });
    }

    let rec = match run.state.upgrade.clone() {
        Some(rec) if rec.ami != ami => {
            return Err(CmdError::Refused {
                message: format!(
                    "an upgrade to {} is in progress (step `{}`); refusing to start another to {ami}",
                    rec.ami,
                    rec.step.name()
                ),
                hint: Some(format!(
                    "finish it with `pi-deploy upgrade --deployment {d} --ami {}`, or roll it back with `pi-deploy upgrade --deployment {d} --abort`, then upgrade to {ami}",
                    rec.ami,
                    d = cfg.deployment
                )),
            });
        }
        Some(rec) => {
            events.emit(Event::Warning {
                message: format!(
                    "resuming the upgrade to {ami} that stopped at step `{}`",
                    rec.step.name()
                ),
            });
            rec
        }
        None => match prepare(&fleet, run.state, ami, None).await? {
            None => return run.nothing_to_do(ami),
            Some(rec) => {
                confirm(global, &cfg.deployment, &rec)?;
                rec
            }
        },
    };
    run.start(&rec);
    let rec = match rec.new_version {
        Some(_) => rec,
        None => run.create_version(&fleet, rec, ami).await?,
    };
    let outcome = run.swap(&fleet, rec).await;
    run.finish(&fleet, outcome).await
}

/// `up`'s roll: what the instances boot with differs from the launch template's default
/// version (the template's `roll` attributes). The same swap as `upgrade`: a new version with
/// the config's complete launch data, the instances replaced one at a time behind the load
/// balancer, health-gated, rolled back on failure, every step recorded with `Origin::Up` and
/// `launch_digest` (which names the new launch settings; the version's client token follows
/// it), so that a run killed midway is finished, or rolled back, by the next `up`
/// (`resume_for_up`). Returns how many instances were replaced.
#[allow(clippy::too_many_arguments)]
pub async fn roll_for_up(
    aws: Arc<crate::resources::Aws>,
    cfg: &Config,
    zones: [String; 2],
    state: &mut State,
    store: &dyn StateStore,
    events: Arc<dyn EventSink>,
    started: Instant,
    launch_digest: &str,
) -> Result<usize, CmdError> {
    let ami = cfg.ami.clone().unwrap_or_default();
    let ids = Ids::from_state(state, &cfg.deployment)?;
    let fleet = ids.fleet(&aws);
    let mut run = Run {
        aws: aws.clone(),
        state,
        store,
        zones,
        events,
        started,
        cfg,
        caller: Origin::Up,
    };
    let Some(rec) = prepare(&fleet, run.state, &ami, Some(launch_digest)).await? else {
        return Ok(0);
    };
    let rec = run.create_version(&fleet, rec, &ami).await?;
    run.finish_for_up(&fleet, rec).await
}

/// What `up` did with a swap that an earlier run left in the state (`resume_for_up`).
#[derive(Debug, PartialEq, Eq)]
pub enum Resumed {
    /// Finished: this many instances were replaced by it in all.
    Finished(usize),
    /// Rolled back (the config asks for other launch settings now): the message. `up` then
    /// rolls to what the config asks for, as for any roll.
    RolledBack(String),
}

/// Whether `up`, whose config asks for `ami` and launch settings `launch_digest`, finishes
/// the recorded swap `rec`: a roll `up` started for the same settings, or an `upgrade` to the
/// image the config asks for (what the operator asked for both times). An `up` roll to other
/// settings is not wanted any more; an `upgrade` to another image is the operator's explicit
/// command, and `up` leaves it to them (`refuse_for_up`).
pub fn wanted_by_up(rec: &UpgradeRecord, ami: &str, launch_digest: &str) -> bool {
    match rec.by {
        Origin::Up => rec.launch.as_deref() == Some(launch_digest),
        Origin::Upgrade => rec.ami == ami,
    }
}

/// `up` refuses to run against an `upgrade --ami` that a killed or failed run left in
/// progress to another image than the config's: finishing it is not what this config asks
/// for, and rolling back the operator's explicit upgrade is theirs to decide.
pub fn refuse_for_up(state: &State, ami: &str) -> Result<(), CmdError> {
    let Some(rec) = &state.upgrade else { return Ok(()) };
    if rec.by != Origin::Upgrade || rec.ami == ami {
        return Ok(());
    }
    Err(CmdError::Refused {
        message: format!(
            "an upgrade of deployment `{d}` to {} is in progress (stopped at step `{}`), and the config asks for {ami}",
            rec.ami,
            rec.step.name(),
            d = state.deployment
        ),
        hint: Some(format!(
            "finish it with `pi-deploy upgrade --deployment {d} --ami {}` (or `pi-deploy up --ami {}`), or roll it back with `pi-deploy upgrade --deployment {d} --abort`; then run `up` again",
            rec.ami,
            rec.ami,
            d = state.deployment
        )),
    })
}

/// `up` with a swap an earlier run left in progress (killed, or stopped by a failure that
/// could not be rolled back), before `up` changes anything else: the group must not be
/// converged around a half-swapped fleet whose processes may be suspended.
///
/// - A roll `up` started for the launch settings the config still asks for, or an `upgrade`
///   to the image the config asks for (`wanted_by_up`): finished, on the same path `upgrade`
///   resumes on (the recorded step, the same client token, so no second version).
/// - A roll `up` started for other settings than the config's now: rolled back as
///   `upgrade --abort` does (the in-flight instance terminated, the group on its previous
///   version with its capacity and processes; instances already replaced keep running and
///   serving), and `up` goes on to roll to what the config asks for. Except past the point
///   where finishing is the shorter way (`upgrade::may_roll_back`: a round's old instance
///   deregistered, its replacement serving in its place, or every instance already
///   replaced): then the roll is finished first, and `up` rolls again from there. Either
///   way the end is one fleet on the config's launch settings, with a healthy target at
///   every moment.
/// - An `upgrade` to another image: refused before (`refuse_for_up`).
///
/// A swap that ends rolled back (it was rolling back when the earlier run stopped) or stops
/// again is an error: `up` changes nothing else, and says what happened and how to go on.
#[allow(clippy::too_many_arguments)]
pub async fn resume_for_up(
    aws: Arc<crate::resources::Aws>,
    cfg: &Config,
    zones: [String; 2],
    state: &mut State,
    store: &dyn StateStore,
    events: Arc<dyn EventSink>,
    started: Instant,
    launch_digest: &str,
) -> Result<Option<Resumed>, CmdError> {
    let Some(rec) = state.upgrade.clone() else {
        return Ok(None);
    };
    let ami = cfg.ami.clone().unwrap_or_default();
    refuse_for_up(state, &ami)?;
    let ids = Ids::from_state(state, &cfg.deployment)?;
    let fleet = ids.fleet(&aws);
    let mut run = Run {
        aws: aws.clone(),
        state,
        store,
        zones,
        events: events.clone(),
        started,
        cfg,
        caller: Origin::Up,
    };
    let what = match rec.by {
        Origin::Up => format!("the roll to {} that an earlier `up` started", rec.ami),
        Origin::Upgrade => format!("the upgrade to {}", rec.ami),
    };
    if !wanted_by_up(&rec, &ami, launch_digest) && upgrade::may_roll_back(&rec.step) {
        events.emit(Event::Warning {
            message: format!(
                "{what} stopped at step `{}` and the config now asks for other launch settings: rolling it back first",
                rec.step.name()
            ),
        });
        let reason = "the config asks for other launch settings (rolled back by `pi-deploy up`)";
        return run
            .roll_back_recorded(&fleet, rec, reason)
            .await
            .map(|m| Some(Resumed::RolledBack(m)));
    }
    events.emit(Event::Warning {
        message: if wanted_by_up(&rec, &ami, launch_digest) {
            format!("resuming {what}, stopped at step `{}`", rec.step.name())
        } else {
            format!(
                "{what} stopped at step `{}`, past the point where finishing is the shorter way (a replacement already serves in place of an old instance): finishing it first, then rolling to the config's launch settings",
                rec.step.name()
            )
        },
    });
    let rec = match rec.new_version {
        Some(_) => rec,
        None => {
            let target = rec.ami.clone();
            run.create_version(&fleet, rec, &target).await?
        }
    };
    run.finish_for_up(&fleet, rec).await.map(|n| Some(Resumed::Finished(n)))
}

/// The recorded ids the upgrade acts on.
pub struct Ids {
    group: String,
    launch_template: String,
    target_group: String,
}

impl Ids {
    pub fn fleet<'a>(&self, aws: &'a crate::resources::Aws) -> AwsFleet<'a> {
        AwsFleet {
            aws,
            group: self.group.clone(),
            launch_template_id: self.launch_template.clone(),
            target_group_arn: self.target_group.clone(),
        }
    }

    pub fn from_state(state: &State, deployment: &str) -> Result<Self, CmdError> {
        let ready = |key: &str| {
            state
                .resources
                .get(key)
                .filter(|r| r.status == Status::Ready)
                .and_then(|r| r.outputs.get("id"))
                .map(String::from)
                .ok_or_else(|| CmdError::Refused {
                    message: format!("deployment `{deployment}` has no ready `{key}`: there is no fleet to upgrade"),
                    hint: Some(format!(
                        "run `pi-deploy up --deployment {deployment} --ami ...` first (check --deployment, --region and --state-dir)"
                    )),
                })
        };
        Ok(Self {
            group: ready(GROUP)?,
            launch_template: ready(LAUNCH_TEMPLATE)?,
            target_group: ready(TARGET_GROUP)?,
        })
    }
}

/// The AMI must exist in the region (DescribeImages) before anything changes: exit 2 if not.
/// Its root device (and the size of its root snapshot) is the answer.
async fn check_ami(aws: &crate::resources::Aws, ami: &str) -> Result<launch_template::RootDevice, CmdError> {
    match launch_template::root_device(aws, ami).await {
        Ok(root) => Ok(root),
        Err(e) if e.is(ErrorClass::Invalid) => Err(CmdError::input(
            "--ami",
            e.message,
            e.hint
                .unwrap_or_else(|| "give the id of the new Panintelligence image in this region".into()),
        )),
        Err(e) => Err(e.into()),
    }
}

/// EC2 must accept a launch of the new image as the launch template will describe it (a
/// `RunInstances` dry run in one of the fleet's subnets): an image this account may not
/// launch (OptInRequired for an unsubscribed Marketplace product) is refused here, exit 2,
/// instead of after the swap's first launch failed. A dry run the caller may not make, or
/// an answer that says nothing about the launch, only warns.
async fn check_launch(
    aws: &crate::resources::Aws,
    cfg: &Config,
    ami: &str,
    root: &launch_template::RootDevice,
    state: &State,
    events: &Arc<dyn EventSink>,
) -> Result<(), CmdError> {
    use crate::resources::preflight::{DryLaunch, LaunchProbe, launch_dry_run};
    let Some(subnet) = super::preflight::app_subnet(state) else {
        return Ok(());
    };
    let probe = LaunchProbe {
        ami: ami.to_string(),
        instance_type: cfg.instance_type.clone(),
        key_name: cfg.key_pair.clone(),
        root: Some((
            root.name.clone(),
            launch_template::root_volume_gib(cfg.root_volume_gib, root.snapshot_gib),
        )),
        subnet: Some(subnet),
        zone: String::new(),
    };
    let warn = |why: String| {
        events.emit(Event::Warning {
            message: format!("the launch of {ami} was not checked before the swap: {why}"),
        })
    };
    match launch_dry_run(aws, &probe).await {
        Ok(DryLaunch::WouldLaunch) => Ok(()),
        Ok(DryLaunch::Refused { field, code, message }) => Err(CmdError::input(
            if field == "ami" { "--ami" } else { field },
            format!("EC2 would refuse to launch {ami} ({code}): {message}"),
            if field == "ami" {
                "subscribe this account to the image's AWS Marketplace product (or give an image it may launch), then run again".to_string()
            } else {
                format!("change {field} in the config, or give another image")
            },
        )),
        Ok(DryLaunch::CannotJudge(why)) => {
            warn(why);
            Ok(())
        }
        Err(e) if crate::aws::error::is_denied(&e) => {
            warn(e.message);
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The record of a new upgrade, or `None` when the group already launches `ami` and every
/// instance runs it. `relaunch`: what the instances boot with changes beyond the image (a
/// digest of the new launch settings): every instance is replaced from a new version.
async fn prepare(
    fleet: &AwsFleet<'_>,
    state: &State,
    ami: &str,
    relaunch: Option<&str>,
) -> Result<Option<UpgradeRecord>, CmdError> {
    let group = fleet.group().await?;
    let current = fleet.resolve_version(group.version.as_deref()).await?;
    let current_ami = fleet.version_image(&current).await?;
    let launches_it = current_ami.as_deref() == Some(ami) && relaunch.is_none();
    if launches_it && upgrade::runs_everywhere(&group, ami, &current) {
        return Ok(None);
    }
    // Stable across a resumed run, distinct for each (AMI, launch settings, replaced
    // version).
    let token = match relaunch {
        None => state.client_token(&format!("upgrade:{ami}:from-{current}")),
        Some(digest) => state.client_token(&format!("roll:{ami}:{digest}:from-{current}")),
    };
    let mut rec = UpgradeRecord::new(
        ami,
        current_ami,
        &fleet.launch_template_id,
        &current,
        token,
        &group,
        relaunch.is_some(),
    );
    if let Some(digest) = relaunch {
        // `up`'s roll: the next `up` finishes it while the config asks for the same settings.
        rec.by = Origin::Up;
        rec.launch = Some(digest.to_string());
    }
    if launches_it {
        // The group already launches this AMI (e.g. back to it after a rollback): replace
        // the other instances without a new version.
        rec.new_version = Some(current);
    }
    Ok(Some(rec))
}

/// Starting a swap replaces every instance: ask, unless --yes.
fn confirm(global: &GlobalArgs, deployment: &str, rec: &UpgradeRecord) -> Result<(), CmdError> {
    if global.yes {
        return Ok(());
    }
    let what = format!(
        "upgrade deployment `{deployment}` to {}: {} instance(s) replaced one at a time",
        rec.ami,
        rec.old_instances.len()
    );
    if !std::io::stdin().is_terminal() {
        return Err(CmdError::Refused {
            message: format!("upgrade needs confirmation: {what}"),
            hint: Some("pass --yes to confirm without a terminal".into()),
        });
    }
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "This will {what}. Continue? [y/N] ");
    let _ = err.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err(CmdError::Refused {
            message: "upgrade cancelled".into(),
            hint: None,
        })
    }
}

/// The ids and ARNs the launch template refers to, from the records of the resources the
/// spec names for it.
fn template_refs(
    state: &State,
    cfg: &Config,
    zones: [String; 2],
) -> Result<(TemplateRefs, crate::core::spec::InstanceSettings), CmdError> {
    let graph = desired_graph(cfg, &state.region, zones)?;
    let Some(Props::LaunchTemplate {
        profile,
        security_groups,
        file_system,
        db,
        licence,
        instance,
        ..
    }) = graph.get(LAUNCH_TEMPLATE).map(|n| &n.props)
    else {
        return Err(CmdError::Failed {
            message: "internal error: the architecture has no launch template".into(),
            hint: Some("please report this as a bug".into()),
            reported: false,
        });
    };
    let outputs = |key: &str| -> Result<&Outputs, CmdError> {
        state
            .resources
            .get(key)
            .filter(|r| r.status == Status::Ready)
            .map(|r| &r.outputs)
            .ok_or_else(|| CmdError::Refused {
                message: format!("`{key}`, which the launch template uses, is not ready"),
                hint: Some("run `pi-deploy up` to finish the deployment first".into()),
            })
    };
    let req = |key: &str, name: &str| -> Result<String, CmdError> { Ok(outputs(key)?.require(name)?.to_string()) };
    let refs = TemplateRefs {
        profile_arn: req(profile, "arn")?,
        security_group_ids: security_groups.iter().map(|k| req(k, "id")).collect::<Result<_, _>>()?,
        file_system_id: req(file_system, "id")?,
        db_secret_arn: req(db, "secret_arn")?,
        licence_secret_arn: licence.as_deref().map(|k| req(k, "id")).transpose()?,
    };
    Ok((refs, instance.clone()))
}

/// One run's state, where it is kept, its events and clock.
struct Run<'a> {
    aws: Arc<crate::resources::Aws>,
    state: &'a mut State,
    store: &'a dyn StateStore,
    zones: [String; 2],
    events: Arc<dyn EventSink>,
    started: Instant,
    cfg: &'a Config,
    /// Whose messages and hints (`upgrade`'s or `up`'s).
    caller: Origin,
}

fn save(state: &mut State, store: &dyn StateStore) -> Result<(), CmdError> {
    state.serial += 1;
    store.save(state).map_err(|why| CmdError::Failed {
        message: super::state_write_failed(&why),
        hint: Some(super::STATE_WRITE_HINT.into()),
        reported: false,
    })
}

impl Run<'_> {
    fn elapsed_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn emit_step(&self, rec: &UpgradeRecord) {
        self.events.emit(Event::Upgrade {
            step: rec.step.name().into(),
            message: rec.describe(),
            elapsed_ms: self.elapsed_ms(),
        });
    }

    fn finished(&self, ok: bool, outputs: BTreeMap<String, String>, error: Option<String>) {
        let mut counts = BTreeMap::new();
        if let Some(n) = outputs.get("replaced").and_then(|n| n.parse().ok()) {
            counts.insert("replaced".to_string(), n);
        }
        self.events.emit(Event::RunFinished {
            command: "upgrade".into(),
            ok,
            elapsed_ms: self.elapsed_ms(),
            usable_ms: None,
            counts,
            outputs,
            error,
        });
    }

    fn start(&self, rec: &UpgradeRecord) {
        self.events.emit(Event::RunStarted {
            command: "upgrade".into(),
            deployment: self.cfg.deployment.clone(),
            region: self.aws.env.region.clone(),
            planned: rec.old_instances.len(),
            unchanged: rec.initial_instances.len().saturating_sub(rec.old_instances.len()),
        });
    }

    fn nothing_to_do(&self, ami: &str) -> Result<(), CmdError> {
        let message = format!("every instance already runs {ami} and the group launches it: nothing to upgrade");
        self.finished(true, BTreeMap::from([("message".to_string(), message)]), None);
        Ok(())
    }

    fn record(&mut self, rec: Option<&UpgradeRecord>) -> Result<(), CmdError> {
        self.state.upgrade = rec.cloned();
        save(self.state, self.store)
    }

    /// Record the upgrade, then create or find its launch template version. Nothing has
    /// changed on the group yet, so a failure here simply clears the record.
    async fn create_version(
        &mut self,
        fleet: &AwsFleet<'_>,
        mut rec: UpgradeRecord,
        ami: &str,
    ) -> Result<UpgradeRecord, CmdError> {
        self.record(Some(&rec))?;
        self.emit_step(&rec);
        let created = async {
            let (refs, instance) = template_refs(self.state, self.cfg, self.zones.clone())?;
            let instance = crate::core::spec::InstanceSettings {
                ami: ami.to_string(),
                ..instance
            };
            let inputs = TemplateInputs::new(&instance, LAUNCH_TEMPLATE, &refs);
            let data = launch_template::build_data(&self.aws, &inputs).await?;
            Ok::<_, CmdError>(fleet.ensure_version(&rec, data).await?)
        }
        .await;
        match created {
            Ok(v) => {
                rec.new_version = Some(v);
                self.record(Some(&rec))?;
                Ok(rec)
            }
            Err(e) => {
                self.record(None)?;
                Err(e)
            }
        }
    }

    async fn swap(&mut self, fleet: &AwsFleet<'_>, rec: UpgradeRecord) -> Result<UpgradeRecord, SwapFailure> {
        let plan = Plan {
            poll: Backoff::SLOW,
            ..Plan::new(self.cfg)
        };
        let started = self.started;
        let events = self.events.clone();
        let (state, store) = (&mut *self.state, self.store);
        let mut on_step = |rec: &UpgradeRecord| -> Result<(), String> {
            state.upgrade = Some(rec.clone());
            state.serial += 1;
            store.save(state)?;
            let elapsed_ms = started.elapsed().as_millis() as u64;
            events.emit(Event::Upgrade {
                step: rec.step.name().into(),
                message: rec.describe(),
                elapsed_ms,
            });
            Ok(())
        };
        upgrade::swap(fleet, &plan, rec, &mut on_step).await
    }

    /// Make the new version the default, record it, clear the upgrade.
    async fn complete(&mut self, fleet: &AwsFleet<'_>, rec: &UpgradeRecord) -> Result<(), CmdError> {
        let version = rec.new_version.clone().unwrap_or_default();
        fleet.make_default(&version).await.map_err(|e| CmdError::Failed {
            message: format!(
                "every instance runs {}, but making version {version} the default failed: {e}",
                rec.ami
            ),
            hint: Some(match self.caller {
                Origin::Upgrade => format!("run `pi-deploy upgrade --ami {}` again to finish", rec.ami),
                Origin::Up => "run `pi-deploy up` again to finish".to_string(),
            }),
            reported: false,
        })?;
        let now = chrono::Utc::now();
        if let Some(r) = self.state.resources.get_mut(LAUNCH_TEMPLATE) {
            r.outputs.set("version", &version);
            r.outputs.set("ami", &rec.ami);
            // The image it replaced: a config that still names it does not undo this
            // change (`commands::keep_upgraded_ami`).
            if let Some(previous) = rec.previous_ami.as_deref().filter(|p| *p != rec.ami) {
                r.outputs.set("replaced_ami", previous);
            }
            r.updated_at = now;
        }
        if let Some(r) = self.state.resources.get_mut(GROUP) {
            r.outputs.set("launch_template_version", &version);
            r.updated_at = now;
        }
        self.record(None)
    }

    async fn finish(
        &mut self,
        fleet: &AwsFleet<'_>,
        outcome: Result<UpgradeRecord, SwapFailure>,
    ) -> Result<(), CmdError> {
        self.aws.clients.dump_call_counts();
        match outcome {
            Ok(rec) => {
                self.complete(fleet, &rec).await?;
                let outputs = BTreeMap::from([
                    ("ami".to_string(), rec.ami.clone()),
                    (
                        "template_version".to_string(),
                        rec.new_version.clone().unwrap_or_default(),
                    ),
                    ("replaced".to_string(), rec.new_instances.len().to_string()),
                ]);
                self.finished(true, outputs, None);
                Ok(())
            }
            Err(f) => self.failed(f),
        }
    }

    fn failed(&mut self, f: SwapFailure) -> Result<(), CmdError> {
        let (message, hint) = self.settle(f)?;
        self.finished(false, BTreeMap::new(), Some(message.clone()));
        Err(CmdError::Failed {
            message,
            hint: Some(hint),
            reported: true,
        })
    }

    /// Record how a swap that did not succeed ended (cleared when rolled back, kept to
    /// resume otherwise): the message and the hint.
    fn settle(&mut self, f: SwapFailure) -> Result<(String, String), CmdError> {
        let rec = &f.record;
        let (what, again) = match self.caller {
            Origin::Upgrade => ("upgrade", format!("`pi-deploy upgrade --ami {}`", rec.ami)),
            Origin::Up => ("roll", "`pi-deploy up`".to_string()),
        };
        let (message, hint) = if f.rolled_back {
            self.record(None)?;
            let kept = if rec.new_instances.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} instance(s) replaced before it ({}) keep running {} and serve healthily",
                    rec.new_instances.len(),
                    rec.new_instances.join(", "),
                    rec.ami
                )
            };
            (
                format!(
                    "{what} to {} rolled back: {}. The group launches version {} again, with its original capacity and processes{kept}",
                    rec.ami, f.error.message, rec.old_version
                ),
                format!(
                    "check why the new instances do not pass the health check (instance console output, /var/log/cloud-init-output.log), then run {again} again{}",
                    match (self.caller, rec.previous_ami.as_deref()) {
                        (Origin::Upgrade, Some(a)) => format!(" (or `--ami {a}` to bring every instance back)"),
                        (Origin::Up, _) => " (it rolls again)".to_string(),
                        _ => String::new(),
                    }
                ),
            )
        } else {
            self.record(Some(rec))?;
            (
                format!(
                    "{what} to {} stopped at step `{}`: {}",
                    rec.ami,
                    rec.step.name(),
                    f.error.message
                ),
                match self.caller {
                    Origin::Upgrade => format!(
                        "fix the cause, then run {again} again to finish, or `pi-deploy upgrade --abort` to roll back"
                    ),
                    Origin::Up => format!(
                        "fix the cause, then run {again} again: it finishes the roll (or rolls it back first if the config asks for other launch settings by then)"
                    ),
                },
            )
        };
        Ok((message, f.error.hint.clone().unwrap_or(hint)))
    }

    /// `--abort`: roll back the upgrade a previous run left in progress.
    async fn abort(&mut self, fleet: &AwsFleet<'_>) -> Result<(), CmdError> {
        let Some(rec) = self.state.upgrade.clone() else {
            let message = "no upgrade is in progress: nothing to abort".to_string();
            self.finished(true, BTreeMap::from([("message".to_string(), message)]), None);
            return Ok(());
        };
        self.start(&rec);
        if rec.step == Step::Done {
            // The swap had finished: there is nothing left to roll back, only to record.
            self.events.emit(Event::Warning {
                message: format!(
                    "the upgrade to {} had already replaced every instance; completing it instead",
                    rec.ami
                ),
            });
            return self.finish(fleet, Ok(rec)).await;
        }
        match self
            .roll_back_recorded(fleet, rec, "aborted by the operator (`pi-deploy upgrade --abort`)")
            .await
        {
            Ok(message) => {
                self.finished(true, BTreeMap::from([("message".to_string(), message)]), None);
                Ok(())
            }
            Err(CmdError::Failed { message, hint, .. }) => {
                self.finished(false, BTreeMap::new(), Some(message.clone()));
                Err(CmdError::Failed {
                    message,
                    hint,
                    reported: true,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Roll back the recorded swap `rec` (`--abort`, or `up` whose config asks for other
    /// launch settings): the message once it is rolled back and the record cleared.
    async fn roll_back_recorded(
        &mut self,
        fleet: &AwsFleet<'_>,
        mut rec: UpgradeRecord,
        reason: &str,
    ) -> Result<String, CmdError> {
        let what = match rec.by {
            Origin::Upgrade => "upgrade",
            Origin::Up => "roll",
        };
        if rec.new_version.is_none() {
            // Nothing changed on the group before the version existed.
            self.record(None)?;
            return Ok(format!("{what} to {} aborted before it changed anything", rec.ami));
        }
        if !matches!(
            rec.step,
            Step::Reinstating { .. } | Step::RollingBack { .. } | Step::RolledBack { .. }
        ) {
            rec.step = upgrade::rollback_step(&rec.step, reason);
            self.record(Some(&rec))?;
            self.emit_step(&rec);
        }
        let round = match &rec.step {
            Step::Reinstating {
                replacing, replacement, ..
            } => Some((replacing.clone(), replacement.clone())),
            _ => None,
        };
        match self.swap(fleet, rec).await {
            Err(f) if f.rolled_back => {
                self.record(None)?;
                let r = &f.record;
                let round = match round {
                    Some((old, new)) if r.new_instances.contains(&new) => format!(
                        " ({old} had already been terminated by the upgrade: its replacement {new} was kept, as the rollback keeps every finished round)"
                    ),
                    Some((old, new)) => format!(
                        " ({old} was registered in the target group again and was healthy before its replacement {new} was terminated)"
                    ),
                    None => String::new(),
                };
                Ok(format!(
                    "{what} to {} aborted: the group launches version {} again, with its original capacity and processes; {} instance(s) already replaced keep running {}{round}",
                    r.ami,
                    r.old_version,
                    r.new_instances.len(),
                    r.ami
                ))
            }
            Err(f) => {
                let (message, hint) = self.settle(f)?;
                Err(CmdError::Failed {
                    message,
                    hint: Some(hint),
                    reported: false,
                })
            }
            Ok(rec) => Err(ResourceError::new(
                ErrorClass::Other,
                format!(
                    "internal error: the rollback of the {what} to {} ended as a success",
                    rec.ami
                ),
            )
            .into()),
        }
    }

    /// `up`'s end of a swap: completed (the number of instances it replaced), or the
    /// failure, in `up`'s words.
    async fn finish_for_up(&mut self, fleet: &AwsFleet<'_>, rec: UpgradeRecord) -> Result<usize, CmdError> {
        match self.swap(fleet, rec).await {
            Ok(rec) => {
                self.complete(fleet, &rec).await?;
                Ok(rec.new_instances.len())
            }
            Err(f) => {
                let (message, hint) = self.settle(f)?;
                Err(CmdError::Failed {
                    message,
                    hint: Some(hint),
                    reported: false,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::upgrade::{Capacity, Group};

    fn record(by: Origin, launch: Option<&str>) -> UpgradeRecord {
        let g = Group {
            capacity: Capacity {
                min: 1,
                max: 2,
                desired: 1,
            },
            version: Some("1".into()),
            instances: Vec::new(),
            suspended: Vec::new(),
        };
        let mut rec = UpgradeRecord::new(
            "ami-b",
            Some("ami-a".into()),
            "lt-1",
            "1",
            "t".into(),
            &g,
            by == Origin::Up,
        );
        rec.by = by;
        rec.launch = launch.map(String::from);
        rec
    }

    #[test]
    fn up_finishes_its_own_roll_for_the_same_settings_and_an_upgrade_to_its_image() {
        let roll = record(Origin::Up, Some("d1"));
        assert!(wanted_by_up(&roll, "ami-b", "d1"));
        assert!(!wanted_by_up(&roll, "ami-b", "d2"), "other launch settings");
        let upgrade = record(Origin::Upgrade, None);
        assert!(wanted_by_up(&upgrade, "ami-b", "anything"));
        assert!(!wanted_by_up(&upgrade, "ami-a", "anything"));
    }

    #[test]
    fn up_refuses_only_an_upgrade_to_another_image() {
        let mut state = State::new(&crate::core::state::Identity {
            deployment: "pi".into(),
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            partition: "aws".into(),
        });
        assert!(refuse_for_up(&state, "ami-a").is_ok(), "nothing in progress");
        state.upgrade = Some(record(Origin::Up, Some("d1")));
        assert!(
            refuse_for_up(&state, "ami-a").is_ok(),
            "`up`'s own roll is never refused"
        );
        state.upgrade = Some(record(Origin::Upgrade, None));
        assert!(refuse_for_up(&state, "ami-b").is_ok(), "the image it upgrades to");
        match refuse_for_up(&state, "ami-a") {
            Err(CmdError::Refused { message, hint }) => {
                assert!(message.contains("ami-b") && message.contains("ami-a"), "{message}");
                let hint = hint.unwrap();
                assert!(
                    hint.contains("upgrade --deployment pi --ami ami-b") && hint.contains("--abort"),
                    "{hint}"
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
