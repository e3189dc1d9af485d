//! Blue/green upgrade of the dashboard fleet to a new AMI, as the vendor's guide describes it,
//! written as a resumable sequence of steps with a rollback path.
//!
//! Outline (`swap`):
//! 1. suspend the processes that would fight the swap (`AlarmNotification`, `ScheduledActions`,
//!    `AZRebalance`; never `Launch`, `Terminate` or the health checks);
//! 2. point the group at the new, explicit launch template version;
//! 3. for each instance still on the old AMI, oldest first: raise desired by one (and max, when
//!    desired == max), wait until a NEW instance is InService and healthy in the target group,
//!    deregister the old instance, wait for its drain, terminate it with
//!    ShouldDecrementDesiredCapacity;
//! 4. restore the original max (and desired) and resume exactly the processes this upgrade
//!    suspended.
//!
//! Guarantees:
//! - an old instance stops taking traffic only after its replacement is healthy, so at least
//!   one healthy target serves the dashboard at every moment;
//! - the record (`UpgradeRecord`) is handed to `on_step` before each step's action; every action
//!   is idempotent (absolute capacities, membership checked before a terminate), so a run that
//!   was killed resumes from the last recorded step;
//! - when a new instance is not healthy in time, or a step fails before an old instance was
//!   deregistered, the upgrade rolls back: the in-flight instances are terminated, the group
//!   points at the previous version again, capacity and processes are restored, and the caller
//!   gets an error saying what happened;
//! - a rollback asked for after a round's old instance may have been deregistered
//!   (`upgrade --abort` at `Draining` or `Terminating`, `rollback_step`) registers that
//!   instance again and waits until it is healthy before terminating its replacement
//!   (`Reinstating`); if the round had already terminated it, the replacement is kept as a
//!   finished round's is. The rollback never has fewer healthy targets than the fleet had;
//! - a failure that cannot be rolled back (after an old instance was deregistered, or while
//!   finishing) keeps the record for the next run, and still resumes the suspended processes.
//!
//! Which instances are "new" is decided by the AMI they run (EC2's ImageId), which is what the
//! operator asked for and what AWS reports exactly; the launch template version a group
//! reports per instance is shown in messages only.

use std::collections::BTreeSet;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::activity::{self, Activity};
use super::config::Config;
use super::resource::{ErrorClass, ResourceError};
use super::wait::{self, Backoff, Poll};

/// Processes suspended during the swap: scaling alarms and schedules would change the
/// capacity under the swap's feet, and AZ rebalancing would terminate instances on its own.
pub const SUSPENDED_PROCESSES: [&str; 3] = ["AlarmNotification", "ScheduledActions", "AZRebalance"];

/// The group's size settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    pub min: i32,
    pub max: i32,
    pub desired: i32,
}

impl Capacity {
    /// Desired plus one, with max raised as far as that needs (never lowered).
    pub fn raised(&self) -> Capacity {
        Capacity {
            min: self.min,
            max: self.max.max(self.desired + 1),
            desired: self.desired + 1,
        }
    }
}

/// One instance of the group, as the group and EC2 report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    /// The AMI it runs; `None` while EC2 does not know the id yet (eventual consistency).
    pub image: Option<String>,
    /// The launch template version it was launched from, as the group reports it: how a
    /// roll that keeps the image (a new instance type, new user data) tells new from old.
    pub version: Option<String>,
    /// The group's lifecycle state: `Pending`, `Pending:Wait`, `InService`, `Terminating`, ...
    pub lifecycle: String,
    pub launched_at: Option<DateTime<Utc>>,
}

impl Instance {
    /// On its way out of the group: it neither needs replacing nor counts as capacity.
    pub fn is_leaving(&self) -> bool {
        let s = self.lifecycle.as_str();
        s.starts_with("Terminat") || s.starts_with("Detach") || s.starts_with("Warmed")
    }
    pub fn in_service(&self) -> bool {
        self.lifecycle == "InService"
    }
}

/// What one read of the group returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub capacity: Capacity,
    /// The launch template version the group launches from.
    pub version: Option<String>,
    pub instances: Vec<Instance>,
    /// Processes suspended right now (by anyone).
    pub suspended: Vec<String>,
}

impl Group {
    pub fn instance(&self, id: &str) -> Option<&Instance> {
        self.instances.iter().find(|i| i.id == id)
    }
}

/// Exactly the operations the swap needs on the Auto Scaling group and its target group.
/// Every mutation must be idempotent: the swap repeats the last one after a crash.
#[async_trait]
pub trait Fleet: Send + Sync {
    async fn group(&self) -> Result<Group, ResourceError>;
    /// Set desired capacity and max size (absolute values, one call).
    async fn set_capacity(&self, desired: i32, max: i32) -> Result<(), ResourceError>;
    /// Point the group at an explicit launch template version.
    async fn set_version(&self, version: &str) -> Result<(), ResourceError>;
    async fn suspend(&self, processes: &[String]) -> Result<(), ResourceError>;
    async fn resume(&self, processes: &[String]) -> Result<(), ResourceError>;
    /// Ids of the targets the target group reports `healthy`.
    async fn healthy_targets(&self) -> Result<Vec<String>, ResourceError>;
    /// Register an instance of the group in the target group (again); already registered is
    /// success.
    async fn register(&self, instance: &str) -> Result<(), ResourceError>;
    /// Stop sending new requests to a target; already deregistered is success.
    async fn deregister(&self, instance: &str) -> Result<(), ResourceError>;
    /// Whether the target is still registered or draining (false once `unused` / gone).
    async fn is_registered(&self, instance: &str) -> Result<bool, ResourceError>;
    /// Terminate a member of the group and decrement its desired capacity.
    async fn terminate(&self, instance: &str) -> Result<(), ResourceError>;
    /// The group's recent scaling activities, newest first (a failed launch shows up only
    /// there).
    async fn activities(&self) -> Result<Vec<Activity>, ResourceError>;
}

/// Timing of one upgrade.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// How long a new instance may take to be InService and healthy before the rollback.
    pub health_timeout: Duration,
    /// How long a deregistered target may drain (the deregistration delay plus a margin).
    pub drain_timeout: Duration,
    pub poll: Backoff,
}

impl Plan {
    pub fn new(cfg: &Config) -> Self {
        let delay = u64::try_from(cfg.health_check.deregistration_delay_seconds).unwrap_or(0);
        Self {
            health_timeout: Duration::from_secs(cfg.scaling.upgrade_health_timeout_seconds),
            drain_timeout: Duration::from_secs(delay + 60),
            poll: Backoff::SLOW,
        }
    }
}

/// Where an upgrade is. Each step is recorded before its action, and its action is safe to
/// repeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "name", rename_all = "snake_case")]
pub enum Step {
    /// Recorded before anything changes; the new template version may not exist yet.
    Started,
    Suspending,
    /// Pointing the group at the new version.
    Pointing,
    /// Reading the group to pick the next old instance.
    Choosing,
    /// Desired raised by one; waiting for a new instance that is not in `known`.
    Launching {
        replacing: String,
        known: Vec<String>,
    },
    /// The replacement is healthy; the old instance is deregistered and drains.
    Draining {
        replacing: String,
        replacement: String,
    },
    Terminating {
        replacing: String,
        replacement: String,
    },
    /// Every instance runs the new AMI; restoring capacity and processes.
    Finishing,
    /// Rolling back a round whose old instance is (or may be) out of the target group
    /// (`upgrade --abort` at `draining` or `terminating`): `replacing` is registered again
    /// and must be healthy before its replacement goes; if the round had already
    /// terminated it, the round is finished instead (the replacement stays). Then
    /// `RollingBack`.
    Reinstating {
        replacing: String,
        replacement: String,
        reason: String,
    },
    RollingBack {
        reason: String,
    },
    Done,
    RolledBack {
        reason: String,
    },
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Step::Started => "started",
            Step::Suspending => "suspending",
            Step::Pointing => "pointing",
            Step::Choosing => "choosing",
            Step::Launching { .. } => "launching",
            Step::Draining { .. } => "draining",
            Step::Terminating { .. } => "terminating",
            Step::Finishing => "finishing",
            Step::Reinstating { .. } => "reinstating",
            Step::RollingBack { .. } => "rolling_back",
            Step::Done => "done",
            Step::RolledBack { .. } => "rolled_back",
        }
    }
}

/// Which command started a swap: it decides who may finish it (`up` finishes the rolls it
/// started itself; an `upgrade` is finished by `upgrade`, or by `up` when the config asks
/// for the image it upgrades to).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `pi-deploy upgrade --ami` (and every record written before the origin was kept).
    #[default]
    Upgrade,
    /// `pi-deploy up`, rolling what the instances boot with.
    Up,
}

/// An upgrade in progress, persisted in the state file at every step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeRecord {
    /// The command that started it.
    #[serde(default, skip_serializing_if = "is_upgrade")]
    pub by: Origin,
    /// For a roll `up` started: the digest of the launch settings it rolls to
    /// (`commands::up::launch_digest`), so a later `up` knows whether the config still asks
    /// for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch: Option<String>,
    /// The target AMI.
    pub ami: String,
    /// The AMI of the version the group launched from before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_ami: Option<String>,
    pub launch_template_id: String,
    pub old_version: String,
    /// `None` until the new launch template version exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_version: Option<String>,
    /// Token of the CreateLaunchTemplateVersion call (the same on a resumed run).
    pub client_token: String,
    pub original: Capacity,
    /// Processes this upgrade suspended (those already suspended by someone else stay so).
    pub suspended: Vec<String>,
    /// Instances on an old AMI when the upgrade started, oldest first.
    pub old_instances: Vec<String>,
    /// Every instance of the group when it started: never taken for a replacement.
    pub initial_instances: Vec<String>,
    /// Replacements whose old instance is gone.
    pub new_instances: Vec<String>,
    pub step: Step,
    pub started_at: DateTime<Utc>,
}

impl UpgradeRecord {
    /// The record of a new upgrade of `group` to `ami`, before anything changes. `relaunch`:
    /// what the instances boot with changes beyond the image (instance type, user data, ...),
    /// so every instance is old, whatever it runs.
    pub fn new(
        ami: &str,
        previous_ami: Option<String>,
        launch_template_id: &str,
        old_version: &str,
        client_token: String,
        group: &Group,
        relaunch: bool,
    ) -> Self {
        let suspended = SUSPENDED_PROCESSES
            .iter()
            .filter(|p| !group.suspended.iter().any(|s| s == *p))
            .map(|p| p.to_string())
            .collect();
        Self {
            by: Origin::Upgrade,
            launch: None,
            ami: ami.to_string(),
            previous_ami,
            launch_template_id: launch_template_id.to_string(),
            old_version: old_version.to_string(),
            new_version: None,
            client_token,
            original: group.capacity,
            suspended,
            old_instances: if relaunch {
                group
                    .instances
                    .iter()
                    .filter(|i| !i.is_leaving())
                    .map(|i| i.id.clone())
                    .collect()
            } else {
                to_replace(group, ami, None).iter().map(|i| i.id.clone()).collect()
            },
            initial_instances: group.instances.iter().map(|i| i.id.clone()).collect(),
            new_instances: Vec::new(),
            step: Step::Started,
            started_at: Utc::now(),
        }
    }

    /// One line for the operator about the current step.
    pub fn describe(&self) -> String {
        let new = self.new_version.as_deref().unwrap_or("?");
        match &self.step {
            Step::Started => format!(
                "upgrading to {} (launch template {} version {} -> {}); {} instance(s) to replace",
                self.ami,
                self.launch_template_id,
                self.old_version,
                self.new_version
                    .as_deref()
                    .map_or("a new version".to_string(), |v| format!("version {v}")),
                self.old_instances.len()
            ),
            Step::Suspending => format!(
                "suspending {} for the swap",
                if self.suspended.is_empty() {
                    "nothing (already suspended)".to_string()
                } else {
                    self.suspended.join(", ")
                }
            ),
            Step::Pointing => format!("pointing the group at launch template version {new}"),
            Step::Choosing => format!(
                "{} instance(s) replaced; looking for the next one on an old AMI",
                self.new_instances.len()
            ),
            Step::Launching { replacing, .. } => {
                let c = self.original.raised();
                format!(
                    "launching a replacement for {replacing} (desired {}, max {})",
                    c.desired, c.max
                )
            }
            Step::Draining { replacing, replacement } => {
                format!(
                    "{replacement} is in service and healthy; deregistering {replacing} and waiting for it to drain"
                )
            }
            Step::Terminating { replacing, .. } => format!("terminating {replacing}"),
            Step::Finishing => format!(
                "every instance runs {}; restoring max {} / desired {} and resuming processes",
                self.ami, self.original.max, self.original.desired
            ),
            Step::Reinstating {
                replacing,
                replacement,
                reason,
            } => format!(
                "rolling back ({reason}): registering {replacing} in the target group again and waiting for it to be healthy before {replacement} is terminated"
            ),
            Step::RollingBack { reason } => {
                format!("rolling back to launch template version {}: {reason}", self.old_version)
            }
            Step::Done => format!(
                "done: {} instance(s) replaced, every instance runs {}",
                self.new_instances.len(),
                self.ami
            ),
            Step::RolledBack { reason } => {
                format!("rolled back to launch template version {}: {reason}", self.old_version)
            }
        }
    }
}

fn is_upgrade(o: &Origin) -> bool {
    *o == Origin::Upgrade
}

/// Whether `up` rolls a swap stopped at `step` back rather than finishing it first: not while
/// a round's old instance is (or may be) deregistered (`Draining`, `Terminating`), where the
/// healthy replacement already serves in its place and a rollback would have to bring the old
/// one back first (`Reinstating`, as `upgrade --abort` does), only for `up` to roll again; nor
/// once every instance is replaced (`Finishing`, `Done`), where finishing is the shorter way.
pub fn may_roll_back(step: &Step) -> bool {
    !matches!(
        step,
        Step::Draining { .. } | Step::Terminating { .. } | Step::Finishing | Step::Done
    )
}

/// The step a rollback of a swap stopped at `step` starts from: `Reinstating` when a round's
/// old instance is (or may be) out of the target group (`Draining`, `Terminating`), so that
/// it serves again before its replacement is terminated; `RollingBack` otherwise.
pub fn rollback_step(step: &Step, reason: &str) -> Step {
    match step {
        Step::Draining { replacing, replacement } | Step::Terminating { replacing, replacement } => Step::Reinstating {
            replacing: replacing.clone(),
            replacement: replacement.clone(),
            reason: reason.to_string(),
        },
        _ => Step::RollingBack {
            reason: reason.to_string(),
        },
    }
}

/// Whether `i` runs `ami`, launched from `version` when one is given (any version when not).
fn on_target(i: &Instance, ami: &str, version: Option<&str>) -> bool {
    i.image.as_deref() == Some(ami) && version.is_none_or(|v| i.version.as_deref() == Some(v))
}

/// The instances not yet on the target (`ami`, from launch template `version` when given),
/// oldest first. An unknown AMI or version counts as another.
pub fn to_replace<'a>(group: &'a Group, ami: &str, version: Option<&str>) -> Vec<&'a Instance> {
    let mut v: Vec<&Instance> = group
        .instances
        .iter()
        .filter(|i| !i.is_leaving() && !on_target(i, ami, version))
        .collect();
    // Unknown launch times last: a fresh instance EC2 does not report yet is the newest.
    v.sort_by(|a, b| match (a.launched_at, b.launched_at) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.id.cmp(&b.id)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.id.cmp(&b.id),
    });
    v
}

/// Whether every instance of the group runs `ami` from launch template `version`: nothing
/// to upgrade.
pub fn runs_everywhere(group: &Group, ami: &str, version: &str) -> bool {
    to_replace(group, ami, Some(version)).is_empty()
}

/// A new instance that may replace an old one: runs `ami` from the new `version`, did not
/// exist before this round, is InService and healthy in the target group.
fn ready_replacement(
    group: &Group,
    healthy: &BTreeSet<String>,
    ami: &str,
    version: &str,
    known: &[String],
) -> Poll<String> {
    let fresh: Vec<&Instance> = group
        .instances
        .iter()
        .filter(|i| !i.is_leaving() && !known.contains(&i.id) && on_target(i, ami, Some(version)))
        .collect();
    if let Some(i) = fresh.iter().find(|i| i.in_service() && healthy.contains(&i.id)) {
        return Poll::Ready(i.id.clone());
    }
    if fresh.is_empty() {
        return Poll::Pending("no new instance yet".into());
    }
    let seen: Vec<String> = fresh
        .iter()
        .map(|i| {
            format!(
                "{} {}{}",
                i.id,
                i.lifecycle,
                if healthy.contains(&i.id) {
                    " healthy"
                } else {
                    " not healthy"
                }
            )
        })
        .collect();
    Poll::Pending(seen.join(", "))
}

/// Why the swap stopped, and whether rolling back is the right answer.
struct Stop {
    error: ResourceError,
    roll_back: bool,
}

impl From<ResourceError> for Stop {
    fn from(error: ResourceError) -> Self {
        Stop { error, roll_back: true }
    }
}

fn keep_going(error: ResourceError) -> Stop {
    Stop {
        error,
        roll_back: false,
    }
}

/// The end of an upgrade that did not succeed.
#[derive(Debug)]
pub struct SwapFailure {
    /// The record as it ended (`RolledBack`, or the step to resume from).
    pub record: UpgradeRecord,
    /// True when the rollback finished: the record can be cleared.
    pub rolled_back: bool,
    pub error: ResourceError,
}

/// Persists the record (state file) and reports the step; an error stops the swap.
pub type OnStep<'a> = &'a mut (dyn FnMut(&UpgradeRecord) -> Result<(), String> + Send);

fn enter(rec: &mut UpgradeRecord, step: Step, on_step: &mut OnStep<'_>) -> Result<(), Stop> {
    rec.step = step;
    on_step(rec).map_err(|e| {
        Stop::from(ResourceError::new(
            ErrorClass::Other,
            format!("could not record the upgrade's progress: {e}"),
        ))
    })
}

/// Run (or resume) the swap described by `rec`. `rec.new_version` must be set. Returns the
/// final record (`Done`) or how it ended; suspended processes are resumed in every case in
/// which the group could still be reached.
pub async fn swap(
    fleet: &dyn Fleet,
    plan: &Plan,
    mut rec: UpgradeRecord,
    mut on_step: OnStep<'_>,
) -> Result<UpgradeRecord, SwapFailure> {
    if rec.new_version.is_none() {
        let error = ResourceError::new(ErrorClass::Invalid, "the upgrade has no new launch template version");
        return Err(SwapFailure {
            record: rec,
            rolled_back: false,
            error,
        });
    }
    let reason = match &rec.step {
        Step::Done => return Ok(rec),
        Step::Reinstating { reason, .. } | Step::RollingBack { reason } | Step::RolledBack { reason } => reason.clone(),
        _ => match forward(fleet, plan, &mut rec, &mut on_step).await {
            Ok(()) => return Ok(rec),
            Err(Stop {
                error,
                roll_back: false,
            }) => {
                let error = release(fleet, &rec, error).await;
                return Err(SwapFailure {
                    record: rec,
                    rolled_back: false,
                    error,
                });
            }
            Err(Stop { error, roll_back: true }) => error.message,
        },
    };
    if let Step::Reinstating {
        replacing, replacement, ..
    } = rec.step.clone()
        && let Err(e) = reinstate(fleet, plan, &mut rec, &replacing, &replacement).await
    {
        let error = release(fleet, &rec, e).await;
        return Err(SwapFailure {
            record: rec,
            rolled_back: false,
            error,
        });
    }
    if !matches!(rec.step, Step::RolledBack { .. }) {
        // Best effort: the rollback is idempotent too, and the caller persists its outcome.
        rec.step = Step::RollingBack { reason: reason.clone() };
        let _ = on_step(&rec);
        if let Err(e) = roll_back(fleet, &rec).await {
            let e = ResourceError {
                message: format!("rolling back after \"{reason}\" failed: {}", e.message),
                ..e
            };
            let error = release(fleet, &rec, e).await;
            return Err(SwapFailure {
                record: rec,
                rolled_back: false,
                error,
            });
        }
        rec.step = Step::RolledBack { reason: reason.clone() };
        let _ = on_step(&rec);
    }
    let error = ResourceError::new(ErrorClass::Failed, reason);
    Err(SwapFailure {
        record: rec,
        rolled_back: true,
        error,
    })
}

async fn forward(
    fleet: &dyn Fleet,
    plan: &Plan,
    rec: &mut UpgradeRecord,
    on_step: &mut OnStep<'_>,
) -> Result<(), Stop> {
    let new_version = rec.new_version.clone().unwrap_or_default();
    if rec.step == Step::Started {
        enter(rec, Step::Suspending, on_step)?;
    }
    // Also on a resumed run: a run that failed resumed the processes on its way out.
    if !rec.suspended.is_empty() {
        fleet.suspend(&rec.suspended).await?;
    }
    loop {
        match rec.step.clone() {
            Step::Started | Step::Suspending => enter(rec, Step::Pointing, on_step)?,
            Step::Pointing => {
                fleet.set_version(&new_version).await?;
                enter(rec, Step::Choosing, on_step)?;
            }
            Step::Choosing => {
                let group = settled_group(fleet, plan).await?;
                let next = to_replace(&group, &rec.ami, Some(&new_version))
                    .first()
                    .map(|i| i.id.clone());
                let step = match next {
                    None => Step::Finishing,
                    Some(replacing) => Step::Launching {
                        replacing,
                        known: group.instances.iter().map(|i| i.id.clone()).collect(),
                    },
                };
                enter(rec, step, on_step)?;
            }
            Step::Launching { replacing, known } => {
                let raised = rec.original.raised();
                // What failed before this launch is not the new instance's failure.
                let seen = activity::ids(&fleet.activities().await?);
                fleet.set_capacity(raised.desired, raised.max).await?;
                let replacement =
                    wait_for_replacement(fleet, plan, (&rec.ami, &new_version), &replacing, &known, &seen).await?;
                enter(rec, Step::Draining { replacing, replacement }, on_step)?;
            }
            Step::Draining { replacing, replacement } => {
                drain(fleet, plan, &replacing).await?;
                enter(rec, Step::Terminating { replacing, replacement }, on_step)?;
            }
            Step::Terminating { replacing, replacement } => {
                terminate_replaced(fleet, rec, &replacing).await.map_err(keep_going)?;
                if !rec.new_instances.contains(&replacement) {
                    rec.new_instances.push(replacement);
                }
                enter(rec, Step::Choosing, on_step).map_err(|s| keep_going(s.error))?;
            }
            Step::Finishing => {
                let c = rec.original;
                fleet.set_capacity(c.desired, c.max).await.map_err(keep_going)?;
                fleet.resume(&rec.suspended).await.map_err(keep_going)?;
                enter(rec, Step::Done, on_step).map_err(|s| keep_going(s.error))?;
                return Ok(());
            }
            Step::Done | Step::Reinstating { .. } | Step::RollingBack { .. } | Step::RolledBack { .. } => {
                return Ok(());
            }
        }
    }
}

/// The group once EC2 reports the AMI of every member (a fresh instance may be unknown to
/// EC2 for a few seconds; it must not be mistaken for an old one).
async fn settled_group(fleet: &dyn Fleet, plan: &Plan) -> Result<Group, ResourceError> {
    wait::wait_for(
        "EC2 to report the AMI of every instance of the group",
        plan.health_timeout,
        plan.poll,
        || async {
            let g = fleet.group().await?;
            let unknown: Vec<&str> = g
                .instances
                .iter()
                .filter(|i| !i.is_leaving() && i.image.is_none())
                .map(|i| i.id.as_str())
                .collect();
            Ok(if unknown.is_empty() {
                Poll::Ready(g)
            } else {
                Poll::Pending(format!("AMI of {} unknown", unknown.join(", ")))
            })
        },
    )
    .await
}

async fn wait_for_replacement(
    fleet: &dyn Fleet,
    plan: &Plan,
    (ami, version): (&str, &str),
    replacing: &str,
    known: &[String],
    seen: &BTreeSet<String>,
) -> Result<String, Stop> {
    let what =
        format!("a new instance on {ami} (replacing {replacing}) to be InService and healthy in the target group");
    wait::wait_for(&what, plan.health_timeout, plan.poll, || async {
        let group = fleet.group().await?;
        let healthy: BTreeSet<String> = fleet.healthy_targets().await?.into_iter().collect();
        let poll = ready_replacement(&group, &healthy, ami, version, known);
        if matches!(poll, Poll::Pending(_))
            && let Some(why) = activity::launch_failure(&fleet.activities().await?, seen)
        {
            // A launch AWS refused will not succeed by waiting: roll back now.
            return Err(ResourceError::new(ErrorClass::Failed, format!("{what}: {why}"))
                .with_hint("fix the cause AWS names (subscribe to the Marketplace image, another instance type or zone, a quota increase), then run the upgrade again"));
        }
        Ok(poll)
    })
    .await
    .map_err(|e| {
        if e.is(ErrorClass::Timeout) {
            Stop::from(ResourceError {
                message: format!("{} (health timeout: scaling.upgrade_health_timeout_seconds)", e.message),
                ..e
            })
        } else {
            Stop::from(e)
        }
    })
}

/// Deregister `old` once another target is healthy, and wait for its drain. Before the
/// deregistration a failure rolls back; after it, the swap must go on (the old instance no
/// longer takes traffic, its replacement does).
///
/// Why by hand, when TerminateInstanceInAutoScalingGroup also deregisters and drains: a
/// deregistration can be undone (`reinstate` registers the instance again for a rollback or
/// `--abort`), a termination cannot; the drain is waited for and shown while the old
/// instance still exists; and the deregistration waits for another healthy target, which
/// the group's own drain does not. The group's later deregistration of an instance already
/// out of the target group is a no-op. If the group's ELB health check ever took the
/// deregistered (`unused`) instance for unhealthy and replaced it during the drain, the
/// round still converges: `terminate_replaced` finds it leaving and takes the extra
/// capacity back to the recorded size.
async fn drain(fleet: &dyn Fleet, plan: &Plan, old: &str) -> Result<(), Stop> {
    if fleet.is_registered(old).await? {
        let what = format!("another healthy target before deregistering {old}");
        wait::wait_for(&what, plan.health_timeout, plan.poll, || async {
            let others: Vec<String> = fleet
                .healthy_targets()
                .await?
                .into_iter()
                .filter(|t| t != old)
                .collect();
            Ok(if others.is_empty() {
                Poll::Pending("no other healthy target".into())
            } else {
                Poll::Ready(())
            })
        })
        .await?;
        fleet.deregister(old).await?;
    }
    let drained = wait::wait_for(&format!("{old} to drain"), plan.drain_timeout, plan.poll, || async {
        Ok(if fleet.is_registered(old).await? {
            Poll::Pending("draining".into())
        } else {
            Poll::Ready(())
        })
    })
    .await;
    match drained {
        // Past the deregistration delay the load balancer sends it nothing: terminating is safe.
        Ok(()) => Ok(()),
        Err(e) if e.is(ErrorClass::Timeout) => Ok(()),
        Err(e) => Err(keep_going(e)),
    }
}

/// Terminate the replaced instance with a decrement, unless a previous run already did.
async fn terminate_replaced(fleet: &dyn Fleet, rec: &UpgradeRecord, old: &str) -> Result<(), ResourceError> {
    let group = fleet.group().await?;
    match group.instance(old) {
        Some(i) if !i.is_leaving() => fleet.terminate(old).await,
        // Gone already. If it went without the decrement, take the extra capacity back.
        _ if group.capacity.desired > rec.original.desired => {
            fleet
                .set_capacity(rec.original.desired, rec.original.raised().max)
                .await
        }
        _ => Ok(()),
    }
}

/// Before a round whose old instance `old` is (or may be) out of the target group is rolled
/// back: register `old` again and wait until it is a healthy target, so that terminating its
/// replacement leaves as many healthy targets as before the upgrade. If the round had already
/// terminated `old` (or the group is replacing it), the round is finished instead: its
/// replacement is the capacity now, and is kept like the instances replaced before it.
/// Every action is idempotent; nothing is terminated when `old` does not become healthy.
async fn reinstate(
    fleet: &dyn Fleet,
    plan: &Plan,
    rec: &mut UpgradeRecord,
    old: &str,
    replacement: &str,
) -> Result<(), ResourceError> {
    let group = fleet.group().await?;
    if group.instance(old).is_some_and(|i| !i.is_leaving()) {
        fleet.register(old).await?;
        let what = format!("{old} to be a healthy target again before its replacement {replacement} is terminated");
        // It may first finish draining the deregistration, then pass the health check.
        let timeout = plan.health_timeout + plan.drain_timeout;
        return wait::wait_for(&what, timeout, plan.poll, || async {
            if fleet.healthy_targets().await?.iter().any(|t| t == old) {
                return Ok(Poll::Ready(()));
            }
            // A registration made while the target drained may end with the drain.
            if !fleet.is_registered(old).await? {
                fleet.register(old).await?;
            }
            Ok(Poll::Pending("not healthy yet".into()))
        })
        .await
        .map_err(|e| {
            e.with_hint(format!(
                "nothing was terminated and {replacement} keeps serving; check why {old} fails the target group's health check, then run `pi-deploy upgrade --abort` again"
            ))
        });
    }
    terminate_replaced(fleet, rec, old).await?;
    if !rec.new_instances.iter().any(|i| i == replacement) {
        rec.new_instances.push(replacement.to_string());
    }
    Ok(())
}

/// Undo the round in flight: back to the old version first (so nothing else launches from
/// the new one), terminate the new instances not yet accepted, restore capacity and processes.
async fn roll_back(fleet: &dyn Fleet, rec: &UpgradeRecord) -> Result<(), ResourceError> {
    // A launch AWS refused made no instance, so desired is above the members: lower it
    // first. Pointing the group back at the old version would let it launch the missing
    // instance, and restoring the capacity then terminates one, perhaps a healthy old one.
    let group = fleet.group().await?;
    let members = group.instances.iter().filter(|i| !i.is_leaving()).count();
    if group.capacity.desired > rec.original.desired && members <= usize::try_from(rec.original.desired).unwrap_or(0) {
        fleet.set_capacity(rec.original.desired, group.capacity.max).await?;
    }
    fleet.set_version(&rec.old_version).await?;
    let group = fleet.group().await?;
    let mut desired = group.capacity.desired;
    for i in &group.instances {
        let in_flight = !i.is_leaving()
            && on_target(i, &rec.ami, rec.new_version.as_deref())
            && !rec.initial_instances.contains(&i.id)
            && !rec.new_instances.contains(&i.id);
        // Never below the original desired: the last step sets it exactly anyway.
        if in_flight && desired > rec.original.desired {
            fleet.terminate(&i.id).await?;
            desired -= 1;
        }
    }
    fleet.set_capacity(rec.original.desired, rec.original.max).await?;
    fleet.resume(&rec.suspended).await
}

/// On a failure that keeps the record: resume the processes and restore max where the
/// current desired allows; say in the error what could not be undone.
async fn release(fleet: &dyn Fleet, rec: &UpgradeRecord, mut error: ResourceError) -> ResourceError {
    let mut problems = Vec::new();
    if let Err(e) = fleet.resume(&rec.suspended).await {
        problems.push(format!("resuming {} failed: {}", rec.suspended.join(", "), e.message));
    }
    match fleet.group().await {
        Ok(g) if g.capacity.max != rec.original.max && g.capacity.desired <= rec.original.max => {
            if let Err(e) = fleet.set_capacity(g.capacity.desired, rec.original.max).await {
                problems.push(format!("restoring max {} failed: {}", rec.original.max, e.message));
            }
        }
        Ok(_) => {}
        Err(e) => problems.push(format!("reading the group failed: {}", e.message)),
    }
    if !problems.is_empty() {
        error.message = format!("{}; {}", error.message, problems.join("; "));
    }
    error
}

#[cfg(test)]
mod tests;
