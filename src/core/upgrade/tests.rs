//! The swap against a scripted fake group + target group in virtual time: instances boot,
//! become healthy (or never do), drain for the deregistration delay; the fake enforces
//! AWS's size rules (min <= desired <= max, no decrement below min) and records the number
//! of healthy targets after every call.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::*;

const A: &str = "ami-0aaaaaaa";
const B: &str = "ami-0bbbbbbb";

#[derive(Clone, Debug, PartialEq)]
enum Target {
    None,
    Registered,
    Draining(Instant),
}

#[derive(Clone, Debug)]
struct Fake {
    id: String,
    image: String,
    version: String,
    launched: Instant,
    in_service_at: Instant,
    healthy_at: Option<Instant>,
    target: Target,
    /// The group registers an instance once, when it enters service.
    registered_once: bool,
}

struct World {
    start: Instant,
    capacity: Capacity,
    version: String,
    versions: BTreeMap<String, String>,
    instances: Vec<Fake>,
    suspended: BTreeSet<String>,
    next: u32,
    /// Instances on B become healthy (false: never).
    b_healthy: bool,
    boot: Duration,
    health_delay: Duration,
    drain_delay: Duration,
    /// Healthy targets after every call.
    timeline: Vec<usize>,
    max_seen: Vec<i32>,
    mutations: usize,
    /// Fail the n-th terminate call once (1-based).
    fail_terminate: Option<usize>,
    terminates: usize,
    /// Ids the fake scaled in on its own (a swap must never make it do that).
    scaled_in: Vec<String>,
    /// Launches of B refused with this message (as AWS refuses an unsubscribed Marketplace
    /// image): each attempt is a failed scaling activity and no instance.
    refuse_b: Option<String>,
    /// Scaling activities, newest first.
    activities: Vec<crate::core::activity::Activity>,
    /// The group's ELB health check takes a target deregistered by hand and drained
    /// (`unused`) for unhealthy and replaces its instance (AWS's documentation does not say
    /// whether it does: see `drain`).
    replaces_unused: bool,
    /// Instances the group replaced as unhealthy.
    replaced: Vec<String>,
}

impl World {
    fn new(instances: usize, capacity: Capacity) -> Self {
        let start = Instant::now();
        let mut w = World {
            start,
            capacity,
            version: "1".into(),
            versions: BTreeMap::from([("1".into(), A.into()), ("2".into(), B.into())]),
            instances: Vec::new(),
            suspended: BTreeSet::new(),
            next: 0,
            b_healthy: true,
            boot: Duration::from_secs(40),
            health_delay: Duration::from_secs(30),
            drain_delay: Duration::from_secs(300),
            timeline: Vec::new(),
            max_seen: vec![capacity.max],
            mutations: 0,
            fail_terminate: None,
            terminates: 0,
            scaled_in: Vec::new(),
            refuse_b: None,
            activities: Vec::new(),
            replaces_unused: false,
            replaced: Vec::new(),
        };
        for _ in 0..instances {
            let id = w.launch();
            let i = w.instances.iter_mut().find(|i| i.id == id).unwrap();
            i.in_service_at = start;
            i.healthy_at = Some(start);
            i.target = Target::Registered;
            i.registered_once = true;
        }
        w
    }

    fn activity(&mut self, status: &str, description: String, message: Option<String>) {
        let base = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let id = format!("act-{}", self.activities.len() + 1);
        self.activities.insert(
            0,
            crate::core::activity::Activity {
                id,
                status: status.into(),
                description,
                message,
                started: Some(base + chrono::Duration::from_std(Instant::now() - self.start).unwrap()),
            },
        );
    }

    fn launch(&mut self) -> String {
        self.next += 1;
        let id = format!("i-{:04}", self.next);
        self.activity("Successful", format!("Launching a new EC2 instance: {id}"), None);
        let now = Instant::now();
        let image = self.versions[&self.version].clone();
        let healthy = image != B || self.b_healthy;
        self.instances.push(Fake {
            id: id.clone(),
            image,
            version: self.version.clone(),
            launched: now,
            in_service_at: now + self.boot,
            healthy_at: healthy.then_some(now + self.boot + self.health_delay),
            target: Target::None,
            registered_once: false,
        });
        id
    }

    /// What AWS does on its own as time passes.
    fn tick(&mut self) {
        let now = Instant::now();
        for i in &mut self.instances {
            if now >= i.in_service_at && !i.registered_once {
                i.target = Target::Registered;
                i.registered_once = true;
            }
            if let Target::Draining(until) = i.target
                && now >= until
            {
                i.target = Target::None;
            }
        }
        if self.replaces_unused {
            let (unused, kept): (Vec<Fake>, Vec<Fake>) = std::mem::take(&mut self.instances)
                .into_iter()
                .partition(|i| i.registered_once && i.target == Target::None);
            self.instances = kept;
            self.replaced.extend(unused.into_iter().map(|i| i.id));
        }
        while (self.instances.len() as i32) < self.capacity.desired {
            if let Some(why) = self.refuse_b.clone().filter(|_| self.versions[&self.version] == B) {
                // AWS retries later; each attempt is one more failed activity.
                self.activity(
                    "Failed",
                    "Launching a new EC2 instance.  Status Reason: see the message".into(),
                    Some(why),
                );
                break;
            }
            self.launch();
        }
        while (self.instances.len() as i32) > self.capacity.desired {
            let gone = self.instances.remove(0);
            self.scaled_in.push(gone.id);
        }
    }

    fn healthy(&self) -> Vec<String> {
        let now = Instant::now();
        self.instances
            .iter()
            .filter(|i| i.target == Target::Registered && i.healthy_at.is_some_and(|h| now >= h))
            .map(|i| i.id.clone())
            .collect()
    }

    fn images(&self) -> Vec<String> {
        self.instances.iter().map(|i| i.image.clone()).collect()
    }
}

struct FakeFleet {
    world: Mutex<World>,
    crashed: AtomicBool,
    crash_after_mutation: Option<usize>,
    crash: Notify,
}

impl FakeFleet {
    fn new(world: World) -> Self {
        Self {
            world: Mutex::new(world),
            crashed: AtomicBool::new(false),
            crash_after_mutation: None,
            crash: Notify::new(),
        }
    }

    /// The next run: a new process, as if started again after the crash.
    fn revive(&mut self) {
        self.crashed.store(false, Ordering::SeqCst);
        self.crash_after_mutation = None;
        // A notification left over by the crashed run must not stop the next one.
        self.crash = Notify::new();
    }

    fn crash_now(&self) {
        self.crashed.store(true, Ordering::SeqCst);
        self.crash.notify_one();
    }

    /// A killed process makes no more calls.
    async fn enter(&self) -> MutexGuard<'_, World> {
        if self.crashed.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        // Every call takes a little time, as a network round trip does.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut w = self.world.lock().unwrap();
        w.tick();
        w
    }

    fn done(&self, mut w: MutexGuard<'_, World>, mutation: bool) {
        w.tick();
        let healthy = w.healthy().len();
        w.timeline.push(healthy);
        let max = w.capacity.max;
        w.max_seen.push(max);
        if mutation {
            w.mutations += 1;
            if Some(w.mutations) == self.crash_after_mutation {
                drop(w);
                self.crash_now();
            }
        }
    }

    fn w(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }
}

fn invalid(msg: impl Into<String>) -> ResourceError {
    ResourceError::new(ErrorClass::Invalid, msg).with_code("ValidationError")
}

#[async_trait]
impl Fleet for FakeFleet {
    async fn group(&self) -> Result<Group, ResourceError> {
        let w = self.enter().await;
        let now = Instant::now();
        let base = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let g = Group {
            capacity: w.capacity,
            version: Some(w.version.clone()),
            instances: w
                .instances
                .iter()
                .map(|i| Instance {
                    id: i.id.clone(),
                    image: Some(i.image.clone()),
                    version: Some(i.version.clone()),
                    lifecycle: if now >= i.in_service_at { "InService" } else { "Pending" }.into(),
                    launched_at: Some(base + chrono::Duration::from_std(i.launched - w.start).unwrap()),
                })
                .collect(),
            suspended: w.suspended.iter().cloned().collect(),
        };
        self.done(w, false);
        Ok(g)
    }

    async fn set_capacity(&self, desired: i32, max: i32) -> Result<(), ResourceError> {
        let mut w = self.enter().await;
        if desired < w.capacity.min || desired > max {
            let e = invalid(format!("desired {desired} outside min {} / max {max}", w.capacity.min));
            self.done(w, false);
            return Err(e);
        }
        w.capacity.desired = desired;
        w.capacity.max = max;
        self.done(w, true);
        Ok(())
    }

    async fn set_version(&self, version: &str) -> Result<(), ResourceError> {
        let mut w = self.enter().await;
        if !w.versions.contains_key(version) {
            self.done(w, false);
            return Err(invalid(format!("no version {version}")));
        }
        w.version = version.to_string();
        self.done(w, true);
        Ok(())
    }

    async fn suspend(&self, processes: &[String]) -> Result<(), ResourceError> {
        let mut w = self.enter().await;
        w.suspended.extend(processes.iter().cloned());
        self.done(w, true);
        Ok(())
    }

    async fn resume(&self, processes: &[String]) -> Result<(), ResourceError> {
        let mut w = self.enter().await;
        for p in processes {
            w.suspended.remove(p);
        }
        self.done(w, true);
        Ok(())
    }

    async fn healthy_targets(&self) -> Result<Vec<String>, ResourceError> {
        let w = self.enter().await;
        let h = w.healthy();
        self.done(w, false);
        Ok(h)
    }

    async fn register(&self, instance: &str) -> Result<(), ResourceError> {
        let mut w = self.enter().await;
        let now = Instant::now();
        let delay = w.health_delay;
        let Some(i) = w.instances.iter_mut().find(|i| i.id == instance) else {
            self.done(w, false);
            return Err(
                invalid(format!("The following targets are not in a running state: {instance}"))
                    .with_code("InvalidTarget"),
            );
        };
        if i.target != Target::Registered {
            // `initial` until the health checks pass again (never, for an instance that is not
            // healthy).
            i.target = Target::Registered;
            i.healthy_at = i.healthy_at.map(|_| now + delay);
        }
        self.done(w, true);
        Ok(())
    }

    async fn deregister(&self, instance: &str) -> Result<(), ResourceError> {
        let mut w = self.enter().await;
        let delay = w.drain_delay;
        if let Some(i) = w.instances.iter_mut().find(|i| i.id == instance)
            && i.target == Target::Registered
        {
            i.target = Target::Draining(Instant::now() + delay);
        }
        self.done(w, true);
        Ok(())
    }

    async fn is_registered(&self, instance: &str) -> Result<bool, ResourceError> {
        let w = self.enter().await;
        let r = w.instances.iter().any(|i| i.id == instance && i.target != Target::None);
        self.done(w, false);
        Ok(r)
    }

    async fn terminate(&self, instance: &str) -> Result<(), ResourceError> {
        let mut w = self.enter().await;
        w.terminates += 1;
        if w.fail_terminate == Some(w.terminates) {
            self.done(w, false);
            return Err(ResourceError::new(ErrorClass::Other, "AccessDenied").with_code("AccessDenied"));
        }
        let Some(pos) = w.instances.iter().position(|i| i.id == instance) else {
            self.done(w, false);
            return Err(invalid(format!("Instance Id not found - {instance}")));
        };
        if w.capacity.desired - 1 < w.capacity.min {
            self.done(w, false);
            return Err(invalid(
                "terminating without replacement would violate the group's min size",
            ));
        }
        w.instances.remove(pos);
        w.capacity.desired -= 1;
        self.done(w, true);
        Ok(())
    }

    async fn activities(&self) -> Result<Vec<crate::core::activity::Activity>, ResourceError> {
        let w = self.enter().await;
        let a = w.activities.clone();
        self.done(w, false);
        Ok(a)
    }
}

fn plan() -> Plan {
    Plan {
        health_timeout: Duration::from_secs(900),
        drain_timeout: Duration::from_secs(360),
        poll: Backoff::SLOW,
    }
}

async fn record_for(fleet: &FakeFleet) -> UpgradeRecord {
    let g = fleet.group().await.unwrap();
    let mut rec = UpgradeRecord::new(B, Some(A.into()), "lt-1", "1", "token".into(), &g, false);
    rec.new_version = Some("2".into());
    rec
}

/// Run the swap, persisting every record; with `crash_at`, the process "dies" right after
/// persisting that record (1-based) and makes no further call.
async fn run(
    fleet: &FakeFleet,
    rec: UpgradeRecord,
    crash_at: Option<usize>,
) -> (Option<Result<UpgradeRecord, SwapFailure>>, Vec<UpgradeRecord>) {
    let mut records: Vec<UpgradeRecord> = Vec::new();
    let result = {
        let mut on_step = |r: &UpgradeRecord| {
            // A dead process writes nothing (a crash right after a mutation, before its record).
            if fleet.crashed.load(Ordering::SeqCst) {
                return Ok(());
            }
            records.push(r.clone());
            if Some(records.len()) == crash_at {
                fleet.crash_now();
            }
            Ok(())
        };
        let p = plan();
        tokio::select! {
            biased;
            _ = fleet.crash.notified() => None,
            r = swap(fleet, &p, rec, &mut on_step) => Some(r),
        }
    };
    (result, records)
}

fn assert_never_dark(fleet: &FakeFleet) {
    let w = fleet.w();
    assert!(!w.timeline.is_empty());
    assert!(
        w.timeline.iter().all(|&n| n >= 1),
        "no healthy target at some moment: {:?}",
        w.timeline
    );
    assert!(
        w.scaled_in.is_empty(),
        "the group scaled in on its own: {:?}",
        w.scaled_in
    );
}

fn assert_upgraded(fleet: &FakeFleet, capacity: Capacity, n: usize) {
    let w = fleet.w();
    assert_eq!(w.version, "2");
    assert_eq!(w.capacity, capacity);
    assert_eq!(w.images(), vec![B.to_string(); n]);
    assert!(w.suspended.is_empty(), "{:?}", w.suspended);
}

fn assert_restored(fleet: &FakeFleet, capacity: Capacity, n: usize) {
    let w = fleet.w();
    assert_eq!(w.version, "1", "the group points at the previous version again");
    assert_eq!(w.capacity, capacity);
    assert_eq!(
        w.images(),
        vec![A.to_string(); n],
        "the in-flight instances are gone, the old ones stay"
    );
    assert!(w.suspended.is_empty(), "{:?}", w.suspended);
}

const TWO: Capacity = Capacity {
    min: 1,
    max: 4,
    desired: 2,
};

#[tokio::test(start_paused = true)]
async fn a_happy_swap_replaces_both_instances_oldest_first() {
    let fleet = FakeFleet::new(World::new(2, TWO));
    let rec = record_for(&fleet).await;
    assert_eq!(rec.old_instances, ["i-0001", "i-0002"]);
    assert_eq!(rec.suspended, SUSPENDED_PROCESSES);
    let (result, records) = run(&fleet, rec, None).await;
    let done = result.unwrap().unwrap();
    assert_eq!(done.step, Step::Done);
    assert_eq!(done.new_instances.len(), 2);
    assert_upgraded(&fleet, TWO, 2);
    assert_never_dark(&fleet);
    let names: Vec<&str> = records.iter().map(|r| r.step.name()).collect();
    assert_eq!(
        names,
        [
            "suspending",
            "pointing",
            "choosing",
            "launching",
            "draining",
            "terminating",
            "choosing",
            "launching",
            "draining",
            "terminating",
            "choosing",
            "finishing",
            "done"
        ]
    );
    let replaced: Vec<&str> = records
        .iter()
        .filter_map(|r| match &r.step {
            Step::Launching { replacing, .. } => Some(replacing.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(replaced, ["i-0001", "i-0002"]);
    assert!(records.iter().all(|r| !r.describe().is_empty()));
}

/// If the group's ELB health check took a drained target (`unused`) for unhealthy, it would
/// replace the old instance itself during the drain, from the new version, and the capacity
/// set back after the round lets it scale in one more instance (on AWS, drained first: the
/// group is attached to the target group). The swap still ends with every instance on the
/// new image, the original capacity and a healthy target throughout.
#[tokio::test(start_paused = true)]
async fn a_drained_instance_the_group_replaces_itself_still_converges() {
    let mut world = World::new(2, TWO);
    world.replaces_unused = true;
    let fleet = FakeFleet::new(world);
    let rec = record_for(&fleet).await;
    let (result, _) = run(&fleet, rec, None).await;
    let done = result.unwrap().unwrap();
    assert_eq!(done.step, Step::Done);
    assert_upgraded(&fleet, TWO, 2);
    let w = fleet.w();
    assert_eq!(
        w.replaced.first().map(String::as_str),
        Some("i-0001"),
        "the group replaced the drained instance"
    );
    assert!(w.timeline.iter().all(|&n| n >= 1), "{:?}", w.timeline);
}

/// A roll that keeps the image (a new instance type or user data: version 3 launches A, as
/// version 1 does) tells the new instances from the old by their launch template version.
#[tokio::test(start_paused = true)]
async fn a_roll_that_keeps_the_image_replaces_every_instance_by_version() {
    let mut world = World::new(2, TWO);
    world.versions.insert("3".into(), A.into());
    let fleet = FakeFleet::new(world);
    let g = fleet.group().await.unwrap();
    assert!(runs_everywhere(&g, A, "1"), "every instance runs A from version 1");
    let mut rec = UpgradeRecord::new(A, Some(A.into()), "lt-1", "1", "token".into(), &g, true);
    assert_eq!(
        rec.old_instances,
        ["i-0001", "i-0002"],
        "a relaunch replaces every instance"
    );
    rec.new_version = Some("3".into());
    let (result, _) = run(&fleet, rec, None).await;
    let done = result.unwrap().unwrap();
    assert_eq!(done.new_instances.len(), 2);
    let w = fleet.w();
    assert_eq!(w.version, "3");
    assert_eq!(w.capacity, TWO);
    let live: Vec<(&str, &str)> = w
        .instances
        .iter()
        .map(|i| (i.image.as_str(), i.version.as_str()))
        .collect();
    assert_eq!(live, [(A, "3"), (A, "3")], "only instances of version 3 are left");
    assert!(!w.instances.iter().any(|i| i.id == "i-0001" || i.id == "i-0002"));
    drop(w);
    assert_never_dark(&fleet);
}

#[tokio::test(start_paused = true)]
async fn an_old_instance_is_deregistered_only_after_its_replacement_is_healthy() {
    let mut world = World::new(
        3,
        Capacity {
            min: 1,
            max: 5,
            desired: 3,
        },
    );
    world.boot = Duration::from_secs(240);
    world.health_delay = Duration::from_secs(200);
    let fleet = FakeFleet::new(world);
    let rec = record_for(&fleet).await;
    let start = Instant::now();
    let (result, _) = run(&fleet, rec, None).await;
    result.unwrap().unwrap();
    assert_upgraded(
        &fleet,
        Capacity {
            min: 1,
            max: 5,
            desired: 3,
        },
        3,
    );
    assert_never_dark(&fleet);
    // Three rounds of boot + health + drain, polled at most 15 s late each.
    let took = start.elapsed();
    assert!(
        took >= Duration::from_secs(3 * (440 + 300)) && took < Duration::from_secs(3 * (440 + 300 + 60)),
        "{took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_single_instance_swap_never_leaves_the_dashboard_without_a_healthy_target() {
    let one = Capacity {
        min: 1,
        max: 3,
        desired: 1,
    };
    let fleet = FakeFleet::new(World::new(1, one));
    let rec = record_for(&fleet).await;
    run(&fleet, rec, None).await.0.unwrap().unwrap();
    assert_upgraded(&fleet, one, 1);
    let w = fleet.w();
    // One healthy target, two while both are up, one again: never zero.
    assert_eq!(w.timeline.iter().min(), Some(&1));
    assert_eq!(w.timeline.iter().max(), Some(&2));
}

#[tokio::test(start_paused = true)]
async fn a_new_instance_that_never_becomes_healthy_is_rolled_back() {
    let mut world = World::new(2, TWO);
    world.b_healthy = false;
    let fleet = FakeFleet::new(world);
    let rec = record_for(&fleet).await;
    let start = Instant::now();
    let (result, records) = run(&fleet, rec, None).await;
    let failure = result.unwrap().unwrap_err();
    assert!(failure.rolled_back);
    assert!(
        matches!(&failure.record.step, Step::RolledBack { .. }),
        "{:?}",
        failure.record.step
    );
    assert!(
        failure.error.message.contains("InService and healthy"),
        "{}",
        failure.error.message
    );
    assert!(
        failure.error.message.contains("upgrade_health_timeout_seconds"),
        "{}",
        failure.error.message
    );
    assert!(start.elapsed() >= Duration::from_secs(900));
    assert_restored(&fleet, TWO, 2);
    assert_never_dark(&fleet);
    assert_eq!(records.last().map(|r| r.step.name()), Some("rolled_back"));
    assert!(records.iter().any(|r| r.step.name() == "rolling_back"));
}

#[tokio::test(start_paused = true)]
async fn when_desired_equals_max_max_is_raised_for_the_swap_and_restored() {
    let full = Capacity {
        min: 1,
        max: 2,
        desired: 2,
    };
    let fleet = FakeFleet::new(World::new(2, full));
    let rec = record_for(&fleet).await;
    run(&fleet, rec, None).await.0.unwrap().unwrap();
    assert_upgraded(&fleet, full, 2);
    assert_never_dark(&fleet);
    assert_eq!(fleet.w().max_seen.iter().max(), Some(&3));
}

#[tokio::test(start_paused = true)]
async fn a_rollback_at_full_capacity_restores_max_too() {
    let full = Capacity {
        min: 1,
        max: 1,
        desired: 1,
    };
    let mut world = World::new(1, full);
    world.b_healthy = false;
    let fleet = FakeFleet::new(world);
    let rec = record_for(&fleet).await;
    let failure = run(&fleet, rec, None).await.0.unwrap().unwrap_err();
    assert!(failure.rolled_back);
    assert_restored(&fleet, full, 1);
    assert_eq!(fleet.w().max_seen.iter().max(), Some(&2));
}

#[tokio::test(start_paused = true)]
async fn processes_suspended_by_someone_else_stay_suspended() {
    let mut world = World::new(1, TWO);
    world.capacity.desired = 1;
    world.suspended.insert("AZRebalance".into());
    let fleet = FakeFleet::new(world);
    let rec = record_for(&fleet).await;
    assert_eq!(rec.suspended, ["AlarmNotification", "ScheduledActions"]);
    run(&fleet, rec, None).await.0.unwrap().unwrap();
    assert_eq!(fleet.w().suspended, BTreeSet::from(["AZRebalance".to_string()]));
}

#[tokio::test(start_paused = true)]
async fn a_failure_after_the_deregistration_keeps_the_record_and_the_next_run_finishes() {
    let mut world = World::new(2, TWO);
    world.fail_terminate = Some(1);
    let fleet = FakeFleet::new(world);
    let rec = record_for(&fleet).await;
    let failure = run(&fleet, rec, None).await.0.unwrap().unwrap_err();
    assert!(!failure.rolled_back);
    assert!(
        matches!(&failure.record.step, Step::Terminating { replacing, .. } if replacing == "i-0001"),
        "{:?}",
        failure.record.step
    );
    assert!(failure.error.message.contains("AccessDenied"));
    // Not left suspended while waiting for the operator.
    assert!(fleet.w().suspended.is_empty());
    let (result, _) = run(&fleet, failure.record, None).await;
    result.unwrap().unwrap();
    assert_upgraded(&fleet, TWO, 2);
    assert_never_dark(&fleet);
}

#[tokio::test(start_paused = true)]
async fn a_group_already_on_the_ami_needs_nothing() {
    let mut world = World::new(2, TWO);
    world.version = "2".into();
    for i in &mut world.instances {
        i.image = B.into();
        i.version = "2".into();
    }
    let fleet = FakeFleet::new(world);
    let g = fleet.group().await.unwrap();
    assert!(runs_everywhere(&g, B, "2"));
    assert!(!runs_everywhere(&g, A, "2"));
    // A roll keeps the image: instances of another version are all still to replace.
    assert!(!runs_everywhere(&g, B, "3"));
}

/// Crash right after persisting record k (before its action) for every k, and after the
/// n-th mutation (before the next record) for every n; the next run must end like an
/// uninterrupted one, with a healthy target at every moment across both runs.
async fn resume_everywhere(b_healthy: bool, capacity: Capacity, instances: usize) {
    let world = || {
        let mut w = World::new(instances, capacity);
        w.b_healthy = b_healthy;
        w
    };
    let reference = FakeFleet::new(world());
    let rec = record_for(&reference).await;
    let (_, records) = run(&reference, rec, None).await;
    let mutations = reference.w().mutations;
    assert!(records.len() > 5 && mutations > 5);

    let check = |fleet: &FakeFleet, result: Result<UpgradeRecord, SwapFailure>, what: &str| {
        if b_healthy {
            let done = result.unwrap_or_else(|f| panic!("{what}: {f:?}"));
            assert_eq!(done.step, Step::Done, "{what}");
            assert_upgraded(fleet, capacity, instances);
        } else {
            let failure = result.expect_err(what);
            assert!(failure.rolled_back, "{what}: {failure:?}");
            assert_restored(fleet, capacity, instances);
        }
        assert_never_dark(fleet);
    };
    for k in 1..=records.len() {
        let mut fleet = FakeFleet::new(world());
        let rec = record_for(&fleet).await;
        let (result, saved) = run(&fleet, rec.clone(), Some(k)).await;
        assert_eq!(saved.len(), k);
        // After the last record the swap returns without another call: nothing to crash.
        assert!(result.is_none() || k == records.len(), "crash at record {k}");
        fleet.revive();
        let (result, _) = run(&fleet, saved.last().cloned().unwrap_or(rec), None).await;
        check(
            &fleet,
            result.unwrap(),
            &format!("resumed from record {k} ({})", saved[k - 1].step.name()),
        );
    }
    for n in 1..=mutations {
        let mut fleet = FakeFleet::new(world());
        fleet.crash_after_mutation = Some(n);
        let rec = record_for(&fleet).await;
        let (result, saved) = run(&fleet, rec.clone(), None).await;
        assert!(result.is_none() || n == mutations, "crash after mutation {n}");
        fleet.revive();
        let (result, _) = run(&fleet, saved.last().cloned().unwrap_or(rec), None).await;
        check(&fleet, result.unwrap(), &format!("resumed after mutation {n}"));
    }
}

#[tokio::test(start_paused = true)]
async fn a_swap_resumes_from_every_recorded_step() {
    resume_everywhere(true, TWO, 2).await;
    resume_everywhere(
        true,
        Capacity {
            min: 1,
            max: 1,
            desired: 1,
        },
        1,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_rollback_resumes_from_every_recorded_step() {
    resume_everywhere(false, TWO, 2).await;
}

#[test]
fn old_instances_are_replaced_oldest_first_and_unknown_amis_count_as_old() {
    let t = |s: &str| Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc));
    let i = |id: &str, image: Option<&str>, lifecycle: &str, at| Instance {
        id: id.into(),
        image: image.map(String::from),
        version: None,
        lifecycle: lifecycle.into(),
        launched_at: at,
    };
    let g = Group {
        capacity: TWO,
        version: Some("1".into()),
        instances: vec![
            i("i-3", Some(A), "InService", t("2026-01-03T00:00:00Z")),
            i("i-1", Some(A), "InService", t("2026-01-01T00:00:00Z")),
            i("i-2", Some(B), "InService", t("2026-01-02T00:00:00Z")),
            i("i-4", None, "Pending", None),
            i("i-5", Some(A), "Terminating:Wait", t("2025-01-01T00:00:00Z")),
        ],
        suspended: vec![],
    };
    let ids: Vec<&str> = to_replace(&g, B, None).iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["i-1", "i-3", "i-4"]);
    assert!(!runs_everywhere(&g, B, "1"));
}

#[test]
fn the_record_round_trips_and_names_its_step() {
    let g = Group {
        capacity: TWO,
        version: Some("1".into()),
        instances: vec![],
        suspended: vec![],
    };
    let mut rec = UpgradeRecord::new(B, None, "lt-1", "1", "t".into(), &g, false);
    rec.step = Step::Launching {
        replacing: "i-1".into(),
        known: vec!["i-1".into()],
    };
    let json = serde_json::to_string(&rec).unwrap();
    assert!(json.contains("\"name\":\"launching\""), "{json}");
    assert_eq!(serde_json::from_str::<UpgradeRecord>(&json).unwrap(), rec);
    assert!(rec.describe().contains("desired 3, max 4"), "{}", rec.describe());
}

#[test]
fn the_plan_follows_the_config() {
    let mut cfg = Config::default();
    cfg.scaling.upgrade_health_timeout_seconds = 600;
    cfg.health_check.deregistration_delay_seconds = 30;
    let p = Plan::new(&cfg);
    assert_eq!(p.health_timeout, Duration::from_secs(600));
    assert_eq!(p.drain_timeout, Duration::from_secs(90));
}

/// A launch AWS refuses (unsubscribed Marketplace image, no capacity, a quota) shows up only
/// as a failed scaling activity: the swap rolls back at that poll, with AWS's message, instead
/// of after the health timeout (900 s here) blaming the instance.
#[tokio::test(start_paused = true)]
async fn a_launch_aws_refuses_rolls_back_at_once_with_aws_s_message() {
    let why = "You are not subscribed to this service. Please go to http://aws.amazon.com to subscribe. Launching EC2 instance failed.";
    let mut world = World::new(2, TWO);
    world.refuse_b = Some(why.into());
    let fleet = FakeFleet::new(world);
    let rec = record_for(&fleet).await;
    let start = Instant::now();
    let (result, _) = run(&fleet, rec, None).await;
    let failure = result.unwrap().unwrap_err();
    assert!(failure.rolled_back, "{failure:?}");
    assert!(failure.error.message.contains(why), "{}", failure.error.message);
    assert!(
        start.elapsed() < Duration::from_secs(120),
        "rolled back after {:?}",
        start.elapsed()
    );
    assert_restored(&fleet, TWO, 2);
    // The old instances served throughout.
    assert!(fleet.w().timeline.iter().all(|&h| h == 2), "{:?}", fleet.w().timeline);
}

/// A failed launch from before the upgrade (yesterday's quota problem) is not the new
/// instance's failure.
#[tokio::test(start_paused = true)]
async fn a_failed_launch_from_before_the_upgrade_does_not_stop_it() {
    let mut world = World::new(2, TWO);
    world.activity(
        "Failed",
        "Launching a new EC2 instance.  Status Reason: quota".into(),
        Some("You have requested more vCPU capacity than your current vCPU limit".into()),
    );
    let fleet = FakeFleet::new(world);
    let rec = record_for(&fleet).await;
    run(&fleet, rec, None).await.0.unwrap().unwrap();
    assert_upgraded(&fleet, TWO, 2);
}

#[test]
fn a_record_without_an_origin_is_an_upgrade_and_an_up_roll_keeps_its_origin() {
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
    let rec = UpgradeRecord::new(B, Some(A.into()), "lt-1", "1", "token".into(), &g, false);
    let json = serde_json::to_value(&rec).unwrap();
    assert!(json.get("by").is_none() && json.get("launch").is_none(), "{json}");
    let back: UpgradeRecord = serde_json::from_value(json).unwrap();
    assert_eq!(
        back.by,
        Origin::Upgrade,
        "a record of an earlier version is `upgrade`'s"
    );
    let mut roll = rec.clone();
    roll.by = Origin::Up;
    roll.launch = Some("digest".into());
    let json = serde_json::to_value(&roll).unwrap();
    assert_eq!(
        (json["by"].as_str(), json["launch"].as_str()),
        (Some("up"), Some("digest"))
    );
    assert_eq!(serde_json::from_value::<UpgradeRecord>(json).unwrap(), roll);
}

#[test]
fn a_rollback_is_offered_only_while_no_old_instance_is_out_of_the_load_balancer() {
    let round = |replacing: &str| (replacing.to_string(), "i-new".to_string());
    let (replacing, replacement) = round("i-old");
    let may = [
        Step::Started,
        Step::Suspending,
        Step::Pointing,
        Step::Choosing,
        Step::Launching {
            replacing: replacing.clone(),
            known: vec![replacing.clone()],
        },
        Step::Reinstating {
            replacing: replacing.clone(),
            replacement: replacement.clone(),
            reason: "r".into(),
        },
        Step::RollingBack { reason: "r".into() },
        Step::RolledBack { reason: "r".into() },
    ];
    let may_not = [
        Step::Draining {
            replacing: replacing.clone(),
            replacement: replacement.clone(),
        },
        Step::Terminating { replacing, replacement },
        Step::Finishing,
        Step::Done,
    ];
    assert!(may.iter().all(may_roll_back), "{may:?}");
    assert!(!may_not.iter().any(may_roll_back), "{may_not:?}");
}

/// `upgrade --abort` of a swap killed once a round's old instance may be out of the target
/// group (record at `draining` or `terminating`, the deregistration or the terminate made or
/// not): the rollback never leaves the fleet with fewer healthy targets than it had (never
/// none with one instance), and ends on the old version with every instance a healthy target
/// and the original capacity and processes. The abort itself is killed at each of its records
/// and mutations too, and the rerun of `--abort` ends the same way.
async fn abort_everywhere(capacity: Capacity, instances: usize) {
    let reference = FakeFleet::new(World::new(instances, capacity));
    let rec = record_for(&reference).await;
    let (_, records) = run(&reference, rec, None).await;
    let mutations = reference.w().mutations;
    let out = |s: &Step| matches!(s, Step::Draining { .. } | Step::Terminating { .. });
    // The swap killed after record k, or after mutation n, with the record at a step past
    // which a round's old instance may be out of the target group.
    let kills: Vec<(Option<usize>, Option<usize>)> = (1..=records.len())
        .map(|k| (Some(k), None))
        .chain((1..=mutations).map(|n| (None, Some(n))))
        .collect();
    let (mut aborted, mut aborts_killed) = (0, 0);
    for (k, n) in kills {
        let killed = || async {
            let mut fleet = FakeFleet::new(World::new(instances, capacity));
            fleet.crash_after_mutation = n;
            let rec = record_for(&fleet).await;
            let (_, saved) = run(&fleet, rec, k).await;
            fleet.revive();
            (fleet, saved.last().cloned().unwrap())
        };
        let (fleet, left) = killed().await;
        if !out(&left.step) {
            continue;
        }
        aborted += 1;
        let (Step::Draining { replacing, .. } | Step::Terminating { replacing, .. }) = left.step.clone() else {
            unreachable!()
        };
        // Replacements that stay: rounds finished before, and this round's if its old
        // instance is gone already.
        let gone = fleet.w().instances.iter().all(|i| i.id != replacing);
        let kept = left.new_instances.len() + usize::from(gone);
        let what = format!("killed at {k:?}/{n:?} ({}, old gone: {gone})", left.step.name());
        let mut abort = left.clone();
        abort.step = rollback_step(&left.step, "aborted");
        assert_eq!(abort.step.name(), "reinstating", "{what}");
        let check = |fleet: &FakeFleet, result: Result<UpgradeRecord, SwapFailure>, what: &str| {
            let failure = result.expect_err(what);
            assert!(failure.rolled_back, "{what}: {failure:?}");
            assert_eq!(failure.record.new_instances.len(), kept, "{what}");
            assert_never_dark(fleet);
            let w = fleet.w();
            // The swap keeps as many healthy targets as the fleet had; so must the abort.
            assert!(
                w.timeline.iter().all(|&h| h >= instances),
                "{what}: fewer healthy targets than the fleet had: {:?}",
                w.timeline
            );
            assert_eq!(w.version, "1", "{what}");
            assert_eq!(w.capacity, capacity, "{what}");
            assert_eq!(w.instances.len(), instances, "{what}");
            assert_eq!(w.images().iter().filter(|i| *i == B).count(), kept, "{what}");
            let healthy = w.healthy();
            assert!(
                w.instances.iter().all(|i| healthy.contains(&i.id)),
                "{what}: every instance a healthy target: {healthy:?}"
            );
            assert!(w.suspended.is_empty(), "{what}: {:?}", w.suspended);
        };
        let before = fleet.w().mutations;
        let (result, abort_records) = run(&fleet, abort.clone(), None).await;
        check(&fleet, result.unwrap(), &what);
        let abort_mutations = fleet.w().mutations - before;
        // The abort killed too, and run again.
        let again: Vec<(Option<usize>, Option<usize>)> = (1..=abort_records.len())
            .map(|j| (Some(j), None))
            .chain((1..=abort_mutations).map(|m| (None, Some(m))))
            .collect();
        for (j, m) in again {
            aborts_killed += 1;
            let (mut fleet, _) = killed().await;
            let before = fleet.w().mutations;
            fleet.crash_after_mutation = m.map(|m| before + m);
            let (_, saved) = run(&fleet, abort.clone(), j).await;
            fleet.revive();
            let (result, _) = run(&fleet, saved.last().cloned().unwrap_or(abort.clone()), None).await;
            check(&fleet, result.unwrap(), &format!("{what}, abort killed at {j:?}/{m:?}"));
        }
    }
    eprintln!(
        "{instances} instance(s): {aborted} swaps killed past a deregistration and aborted, {aborts_killed} aborts killed and run again"
    );
    assert!(aborted >= 4, "{aborted} kills past a deregistration");
}

#[tokio::test(start_paused = true)]
async fn an_abort_past_the_deregistration_serves_the_old_instance_again_before_its_replacement_goes() {
    abort_everywhere(
        Capacity {
            min: 1,
            max: 3,
            desired: 1,
        },
        1,
    )
    .await;
    abort_everywhere(TWO, 2).await;
}
