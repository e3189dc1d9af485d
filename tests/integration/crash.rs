//! Crash at every boundary: `up`, `destroy` and `upgrade` are SIGKILLed right after each
//! state transition k (each write of the state file increments `serial`), run again, and
//! the end state is checked from AWS's side: every blueprint resource exists exactly once
//! and is recorded, nothing is left (destroy), every instance runs the new AMI with the
//! group as configured (upgrade; each killed upgrade is also rolled back with `upgrade
//! --abort` first, and checked), every instance is of the new launch version (an `up`
//! that rolls the instances, `roll`), or the database is on the new major version with the
//! one parameter group of the new family (an `up` that replaces the group create-before-
//! destroy, `major-upgrade`), or both at once (an `up` that rolls and replaces,
//! `roll-replace`).
//!
//! By default every 5th transition plus the first and last 3 are tested;
//! `PI_DEPLOY_CRASH_EVERY=1` tests every transition (what `scripts/test.sh` runs when the
//! executor or state code changed), `PI_DEPLOY_CRASH_K=3,17` only those transitions (to
//! rerun a failure). `PI_DEPLOY_CRASH_THREADS` (default 4) cases run at once, each in a
//! lane with its own moto (`lanes.rs`). The figures are printed (run with `--nocapture`)
//! and quoted in docs/RELIABILITY.md.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use pi_deploy::aws::Clients;
use pi_deploy::core::spec::Kind;

use crate::census;
use crate::common::{Deployment, ami, clients, events};
use crate::common::{LT, assert_on, default_version, fleet_config, fleet_of, recorded, seen, versions};
use crate::lanes::Lane;

fn destroy_args() -> Vec<&'static str> {
    vec![
        "destroy",
        "--yes",
        "--skip-final-snapshot",
        "--disable-deletion-protection",
    ]
}

fn up_args(ami: &str) -> Vec<String> {
    ["up", "--ami", ami, "--yes", "--json"].map(String::from).to_vec()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The state's serial: how many transitions (state writes) the deployment has made.
fn serial(d: &Deployment) -> u64 {
    d.state()["serial"].as_u64().unwrap()
}

/// The keys the state records: after a clean run, the blueprint.
fn recorded_keys(d: &Deployment) -> BTreeSet<String> {
    d.state()["resources"].as_object().unwrap().keys().cloned().collect()
}

/// A clean `up` of `d` with the config `cfg`: how many transitions it made.
fn transitions_of(lane: &Lane, d: &Deployment, cfg: &Path) -> u64 {
    let base = serial(d);
    lane.ok(d, &strs(&up_with(cfg))).unwrap();
    serial(d) - base
}

/// `args` with `--config cfg`.
fn with_config(cfg: &Path, args: &[&str]) -> Vec<String> {
    args.iter()
        .map(|s| s.to_string())
        .chain(["--config".to_string(), cfg.to_str().unwrap().to_string()])
        .collect()
}

/// The transitions to crash at, of `1..=total`: all of them, or every 5th plus the first and
/// last 3 (the edges are where the start-up and the final outputs are written).
fn chosen(total: u64, every: bool) -> Vec<u64> {
    if let Ok(only) = std::env::var("PI_DEPLOY_CRASH_K") {
        return only
            .split(',')
            .map(|k| k.trim().parse().expect("PI_DEPLOY_CRASH_K: transition numbers"))
            .collect();
    }
    (1..=total)
        .filter(|k| every || k % 5 == 0 || *k <= 3 || *k + 3 > total)
        .collect()
}

fn exhaustive() -> bool {
    std::env::var("PI_DEPLOY_CRASH_EVERY").is_ok_and(|v| v == "1")
}

/// Which transitions `chosen` picks, in words (scripts/test.sh looks for "every transition").
fn variant() -> &'static str {
    if std::env::var("PI_DEPLOY_CRASH_K").is_ok() {
        "PI_DEPLOY_CRASH_K"
    } else if exhaustive() {
        "every transition"
    } else {
        "every 5th and the first and last 3"
    }
}

fn threads() -> usize {
    std::env::var("PI_DEPLOY_CRASH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// In the up test, a lane with its own server forgets its deployments every this many cases
/// instead of destroying each: a reset and the slower first run after it cost about 2.5 s
/// of moto CPU, a `destroy` about 1 s of CPU (pi-deploy and moto) plus a census to check
/// it, and each deployment moto holds makes an `up` about 0.15 s of moto CPU dearer, so
/// resetting every 6th case costs about 0.8 s a case against 1.3 s or more (measured on
/// the shared 2-core machine, docs/RELIABILITY.md). A destroyed deployment leaves next to nothing in moto (a terminated
/// instance, a deleted NAT gateway), so the destroy test never resets.
const RESET_EVERY: usize = 6;

/// A case killed past k (two writes within one poll) is run again, up to this many times,
/// to hit k itself; the late kill was checked all the same.
const RETRIES_PAST_K: usize = 2;

/// The state file as this test last read it. Each new version is parsed once (a byte
/// comparison tells a new one; parsing ~50 kB at every ~1 ms poll in the debug test binary
/// would compete with the runs it watches). A version that does not parse is a torn write,
/// a bug of the state file, since every write is atomic.
struct StateWatch<'a> {
    d: &'a Deployment,
    last: Vec<u8>,
    serial: Option<u64>,
    /// The last version, parsed.
    value: serde_json::Value,
}

impl<'a> StateWatch<'a> {
    fn new(d: &'a Deployment) -> Self {
        Self {
            d,
            last: Vec::new(),
            serial: None,
            value: serde_json::Value::Null,
        }
    }

    /// The serial of the state (file or S3 object); None while there is none.
    fn serial(&mut self) -> Result<Option<u64>, String> {
        let Some(bytes) = self.d.state_bytes() else {
            return Ok(None);
        };
        if bytes != self.last {
            let v: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| format!("BUG: the state file did not parse mid-run ({e}): torn write"))?;
            let serial = v["serial"].as_u64().ok_or("BUG: the state file has no serial")?;
            self.serial = Some(serial);
            self.value = v;
            self.last = bytes;
        }
        Ok(self.serial)
    }
}

/// How a run that was to be killed at transition k ended.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// SIGKILLed when the state file's serial was `seen`, aiming at `target` (the serial of
    /// transition k; `seen > target` when two writes came within one poll).
    Killed { seen: u64, target: u64 },
    /// It exited successfully before the poll saw k (only possible at the last transitions).
    ExitedFirst,
}

/// Start the command, SIGKILL it as soon as the state file's serial reaches `target` (polled
/// every ~1 ms).
fn kill_at(lane: &Lane, d: &Deployment, args: &[&str], target: u64) -> Result<Kill, String> {
    let killed = kill_when(lane, d, args, &[], &format!("serial {target}"), |serial, _| {
        serial >= target
    })?;
    Ok(match killed {
        Some(seen) => Kill::Killed { seen, target },
        None => Kill::ExitedFirst,
    })
}

/// Start the command (with `env`), SIGKILL it as soon as a version of the state satisfies
/// `when(serial, state)` (polled every ~1 ms): the serial it was killed at, or `None` when
/// it exited successfully first.
fn kill_when(
    lane: &Lane,
    d: &Deployment,
    args: &[&str],
    env: &[(&str, &str)],
    what: &str,
    when: impl Fn(u64, &serde_json::Value) -> bool,
) -> Result<Option<u64>, String> {
    // Its stderr goes to a file (a pipe nobody reads could fill and stall the run), quoted
    // when the run fails by itself.
    let mut stderr = tempfile::tempfile().unwrap();
    let mut command = lane.command(d, args);
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr.try_clone().unwrap()))
        .spawn()
        .unwrap();
    let mut watch = StateWatch::new(d);
    let start = Instant::now();
    loop {
        match watch.serial() {
            Ok(Some(seen)) if when(seen, &watch.value) => {
                child.kill().unwrap();
                child.wait().unwrap();
                d.force_unlock_after_kill();
                return Ok(Some(seen));
            }
            Ok(_) => {}
            Err(e) => {
                child.kill().ok();
                child.wait().ok();
                return Err(e);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return if status.success() {
                Ok(None)
            } else {
                Err(format!(
                    "the run to be killed failed by itself: {status}; its stderr ended with:\n{}",
                    tail(&mut stderr, 20)
                ))
            };
        }
        if start.elapsed() > Duration::from_secs(180) {
            child.kill().ok();
            child.wait().ok();
            return Err(format!("the state never reached {what}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The last `lines` lines of a run's stderr file.
fn tail(file: &mut std::fs::File, lines: usize) -> String {
    use std::io::{Read, Seek};
    let mut text = String::new();
    file.rewind().ok();
    file.read_to_string(&mut text).ok();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Kinds the census reports by something other than the `pi-deploy:key` tag (derived names,
/// `<file system>@<subnet>`): compared by count, not by key.
fn named_in_census(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Bucket | Kind::DbSubnetGroup | Kind::DbParameterGroup | Kind::MountTarget | Kind::Alarm
    )
}

/// After a successful `up`: every blueprint key recorded and ready, and every tagged kind
/// found in AWS exactly as often as the state records it (a duplicate is a repeated key,
/// an orphan an unrecorded one).
pub fn check_converged(
    d: &Deployment,
    c: &Clients,
    rt: &tokio::runtime::Runtime,
    blueprint: &BTreeSet<String>,
) -> Result<(), String> {
    let st = d.state();
    let resources = st["resources"].as_object().ok_or("no resources in the state")?;
    let recorded: BTreeSet<String> = resources.keys().cloned().collect();
    if &recorded != blueprint {
        return Err(format!(
            "state keys differ from the blueprint: {:?}",
            recorded.symmetric_difference(blueprint).collect::<Vec<_>>()
        ));
    }
    if let Some((k, _)) = resources.iter().find(|(_, r)| r["status"] != "ready") {
        return Err(format!("`{k}` is not ready"));
    }
    let mut by_kind: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (key, r) in resources {
        let kind: Kind = serde_json::from_value(r["kind"].clone()).map_err(|e| e.to_string())?;
        if kind.is_tagged() {
            by_kind.entry(kind.as_str()).or_default().push(key.clone());
        }
    }
    let found = rt.block_on(census::everything(c, &d.name));
    for kind in Kind::ALL.iter().filter(|k| k.is_tagged()) {
        let mut want = by_kind.remove(kind.as_str()).unwrap_or_default();
        want.sort();
        let got = found.get(kind.as_str()).cloned().unwrap_or_default();
        let ok = if named_in_census(*kind) {
            got.len() == want.len() && got.iter().collect::<BTreeSet<_>>().len() == got.len()
        } else {
            got == want
        };
        if !ok {
            return Err(format!("{kind}: AWS has {got:?}, the state records {want:?}"));
        }
    }
    if let Some((kind, keys)) = found.iter().find(|(_, keys)| keys.iter().any(|k| k.starts_with('?'))) {
        return Err(format!("{kind}: ours by name but not by tag: {keys:?}"));
    }
    Ok(())
}

pub fn check_empty(d: &Deployment, c: &Clients, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    let left = rt.block_on(census::everything(c, &d.name));
    if !left.is_empty() {
        return Err(format!("left behind: {left:?}"));
    }
    if d.state_exists() {
        return Err("the state file is still there".into());
    }
    Ok(())
}

/// Wall time per phase of the cases, for the summary line.
#[derive(Default)]
struct Phases(Mutex<Vec<(&'static str, Duration, u32)>>);

impl Phases {
    fn time<T>(&self, phase: &'static str, f: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let out = f();
        let took = started.elapsed();
        let mut all = self.0.lock().unwrap();
        match all.iter_mut().find(|(p, ..)| *p == phase) {
            Some((_, total, n)) => {
                *total += took;
                *n += 1;
            }
            None => all.push((phase, took, 1)),
        }
        out
    }

    /// "killed up 2.1 s x164, rerun 1.9 s x164, ..." (means)
    fn summary(&self) -> String {
        let all = self.0.lock().unwrap();
        let mean =
            |(p, total, n): &(&str, Duration, u32)| format!("{p} {:.1} s x{n}", total.as_secs_f64() / f64::from(*n));
        all.iter().map(mean).collect::<Vec<_>>().join(", ")
    }
}

/// What a crash test prints and asserts at its end.
#[derive(Default)]
struct Tally {
    killed: AtomicUsize,
    past_k: AtomicUsize,
    retried: AtomicUsize,
    exited_first: AtomicUsize,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn count(&self, kill: Kill) {
        match kill {
            Kill::Killed { seen, target } => {
                self.killed.fetch_add(1, Ordering::SeqCst);
                if seen > target {
                    self.past_k.fetch_add(1, Ordering::SeqCst);
                }
            }
            Kill::ExitedFirst => {
                self.exited_first.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Run a case, a helper that asserts failing the case instead of the lane.
fn caught(case: impl FnOnce() -> Result<Kill, String>) -> Result<Kill, String> {
    catch_unwind(AssertUnwindSafe(case)).unwrap_or_else(|p| Err(panic_message(p)))
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panicked".into())
}

/// Run `case` for each k, one lane per thread (`case` gets the lane's index and the lane);
/// print the figures and fail listing every failed case.
fn run_cases(
    name: &str,
    total: u64,
    lanes: &[Lane],
    ks: &[u64],
    phases: &Phases,
    case: impl Fn(usize, &Lane, u64) -> Result<Kill, String> + Sync,
) {
    let load_before = load_average();
    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let tally = Tally::default();
    std::thread::scope(|s| {
        for (i, lane) in lanes.iter().enumerate() {
            let (next, tally, case) = (&next, &tally, &case);
            s.spawn(move || {
                while let Some(&k) = ks.get(next.fetch_add(1, Ordering::SeqCst)) {
                    for attempt in 0..=RETRIES_PAST_K {
                        match caught(|| case(i, lane, k)) {
                            Ok(Kill::Killed { seen, target }) if seen > target && attempt < RETRIES_PAST_K => {
                                tally.retried.fetch_add(1, Ordering::SeqCst);
                            }
                            Ok(kill) => {
                                tally.count(kill);
                                break;
                            }
                            Err(e) => {
                                tally.failures.lock().unwrap().push(format!("k={k}: {e}"));
                                break;
                            }
                        }
                    }
                }
            });
        }
    });
    let failures = tally.failures.into_inner().unwrap();
    let summary = format!(
        "crash/{name}: {total} transitions, {} tested ({}): {} killed, {} of them past k after {} reruns; {} exited first; {} failed; lanes: {}; {:.0} s; load average {load_before} -> {}\n  per run: {}",
        ks.len(),
        variant(),
        tally.killed.into_inner(),
        tally.past_k.into_inner(),
        tally.retried.into_inner(),
        tally.exited_first.into_inner(),
        failures.len(),
        Lane::describe(lanes),
        started.elapsed().as_secs_f64(),
        load_average(),
        phases.summary()
    );
    println!("{summary}");
    // scripts/test.sh shows these, and stamps the exhaustive pass when all three say so.
    if let Some(dir) = std::env::var_os("PI_DEPLOY_CRASH_REPORT_DIR") {
        std::fs::write(PathBuf::from(dir).join(format!("{name}.txt")), format!("{summary}\n")).unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        ks.len(),
        failures.join("\n\n")
    );
}

/// The 1-minute load average, for the printed figures.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// One clean `up` and `destroy`, shared by the up and destroy tests: how many transitions
/// each makes, and which keys make the blueprint.
struct Reference {
    up_transitions: u64,
    destroy_transitions: u64,
    blueprint: BTreeSet<String>,
}

fn reference() -> &'static Reference {
    static REFERENCE: OnceLock<Reference> = OnceLock::new();
    REFERENCE.get_or_init(|| {
        let rt = runtime();
        let lane = &Lane::on_suite_endpoint(1, &rt)[0];
        let c = &lane.clients;
        let d = Deployment::new("crref");
        lane.ok(&d, &strs(&up_args(&ami('A')))).unwrap();
        let up_transitions = serial(&d);
        let blueprint = recorded_keys(&d);
        check_converged(&d, c, &rt, &blueprint).unwrap();
        let mut args = destroy_args();
        args.push("--json");
        // Each `deleting` and each `deleted` event follows exactly one state write.
        let ev = events(&lane.ok(&d, &args).unwrap());
        let resource_events = |status: &str| {
            ev.iter()
                .filter(|e| e["event"] == "resource" && e["status"] == status)
                .count() as u64
        };
        let destroy_transitions = resource_events("deleting") + resource_events("deleted");
        check_empty(&d, c, &rt).unwrap();
        Reference {
            up_transitions,
            destroy_transitions,
            blueprint,
        }
    })
}

/// The reference (run once per process), while the lanes' servers start.
fn reference_and_lanes(rt: &tokio::runtime::Runtime) -> (&'static Reference, Vec<Lane>) {
    std::thread::scope(|s| {
        let lanes = s.spawn(|| Lane::start(threads(), rt));
        (reference(), lanes.join().unwrap())
    })
}

/// After an up case: a lane with its own server forgets its deployments every
/// RESET_EVERY cases.
fn after_case(lane: &Lane, cases: &AtomicUsize, phases: &Phases) -> Result<(), String> {
    if lane.own_server() && (cases.fetch_add(1, Ordering::SeqCst) + 1).is_multiple_of(RESET_EVERY) {
        phases.time("reset", || lane.reset())?;
    }
    Ok(())
}

#[test]
fn up_killed_at_each_transition_converges_on_the_next_run() {
    let rt = runtime();
    let (reference, lanes) = reference_and_lanes(&rt);
    let up = up_args(&ami('A'));
    let up = strs(&up);
    let cases: Vec<AtomicUsize> = lanes.iter().map(|_| AtomicUsize::new(0)).collect();
    let phases = Phases::default();
    let ks = chosen(reference.up_transitions, exhaustive());
    run_cases("up", reference.up_transitions, &lanes, &ks, &phases, |i, lane, k| {
        let d = Deployment::new(&format!("cu{k}"));
        let kill = phases.time("killed up", || kill_at(lane, &d, &up, k))?;
        phases.time("rerun", || lane.ok(&d, &up))?;
        phases.time("census", || {
            check_converged(&d, &lane.clients, &rt, &reference.blueprint)
        })?;
        if !lane.own_server() {
            // Nothing may be left on a server other tests share.
            phases.time("destroy and check", || {
                lane.ok(&d, &destroy_args())?;
                check_empty(&d, &lane.clients, &rt)
            })?;
        }
        after_case(lane, &cases[i], &phases)?;
        Ok(kill)
    });
}

/// Usable early (issue 20): `up` killed -9 at the moments of the database's way to
/// Multi-AZ, in the emulator's latency mode (so the Single-AZ create and the conversion
/// take their scaled time instead of moto's none): during the Single-AZ create (`db`
/// recorded `created`, the endpoint node waiting), between `available` and the conversion
/// (`db-endpoint` ready, the standby not started), with the conversion's intent recorded
/// (`db-standby` `creating`: the modification may or may not have been sent), and during
/// the conversion (`db-standby` `created`). The next `up` finishes it: one database,
/// Multi-AZ, every resource recorded once and ready.
///
/// What moto cannot show: the rerun is a new process, whose latency mode did not see the
/// first one's calls, and moto applied the modification at once; so the rerun finds the
/// instance Multi-AZ (adopted), never `modifying`. The resumed wait through a conversion
/// still under way is covered by `db_standby`'s unit tests of `standby_of`/`standby_poll`.
#[cfg(feature = "fault-injection")]
#[test]
fn usable_early_up_killed_around_the_conversion_converges_with_one_database() {
    let rt = runtime();
    // One lane, and the blueprint from the spec (the keys of the default deployment) rather
    // than the shared reference run: four cases do not pay for four servers and a reference
    // `up` and `destroy`. A lane with its own server is stopped with what it holds.
    let lanes = Lane::start(1, &rt);
    let lane = &lanes[0];
    let cfg = pi_deploy::core::config::Config {
        ami: Some(ami('A')),
        ..Default::default()
    };
    let blueprint: BTreeSet<String> = pi_deploy::core::spec::build(&pi_deploy::core::spec::SpecInput {
        config: &cfg,
        region: "eu-west-1",
        azs: ["eu-west-1a".into(), "eu-west-1b".into()],
    })
    .into_iter()
    .map(|n| n.key)
    .collect();
    assert!(blueprint.contains("db-standby"));
    let up = up_args(&ami('A'));
    let up = strs(&up);
    let status = |st: &serde_json::Value, key: &str| st["resources"][key]["status"].as_str().map(String::from);
    type When = fn(&serde_json::Value, &dyn Fn(&serde_json::Value, &str) -> Option<String>) -> bool;
    let moments: [(&str, When); 4] = [
        // `db` is ready as soon as RDS accepted the create (a few ms after `created`, too
        // short a window to poll for); `db-endpoint` waits for the instance to be available.
        ("during the Single-AZ create", |st, s| {
            s(st, "db-endpoint").as_deref() == Some("creating") && s(st, "db-standby").is_none()
        }),
        ("between available and the conversion", |st, s| {
            s(st, "db-endpoint").as_deref() == Some("ready") && s(st, "db-standby").is_none()
        }),
        ("with the conversion's intent recorded", |st, s| {
            s(st, "db-standby").as_deref() == Some("creating")
        }),
        ("during the conversion", |st, s| {
            s(st, "db-standby").as_deref() == Some("created")
        }),
    ];
    let mut failures = Vec::new();
    let mut killed = 0;
    for (i, (moment, when)) in moments.iter().enumerate() {
        let mut case = || -> Result<(), String> {
            // A moment between two writes a few ms apart can be missed by the ~1 ms poll of a
            // loaded machine: the run then ends by itself, and the case is tried again on a
            // new deployment (the finished one is destroyed where the server is shared).
            let mut attempt = 0;
            let (d, seen) = loop {
                let d = Deployment::new(&format!("cz{i}{attempt}"));
                match kill_when(lane, &d, &up, &[("PI_DEPLOY_LATENCY", "0.01")], moment, |_, st| {
                    when(st, &status)
                })? {
                    Some(seen) => break (d, seen),
                    None if attempt + 1 < MISSED_MOMENT_TRIES => {
                        println!("crash/usable-early: {moment}: the run ended before the poll saw it; again");
                        if !lane.own_server() {
                            lane.ok(&d, &destroy_args())?;
                        }
                        attempt += 1;
                    }
                    None => {
                        return Err(format!(
                            "{moment}: the run ended before it could be killed, {MISSED_MOMENT_TRIES} times"
                        ));
                    }
                }
            };
            killed += 1;
            println!("crash/usable-early: killed {moment} at serial {seen}");
            lane.ok(&d, &up)?;
            check_converged(&d, &lane.clients, &rt, &blueprint)?;
            let id = d.state()["resources"]["db"]["outputs"]["id"]
                .as_str()
                .ok_or("no db id")?
                .to_string();
            let db = rt
                .block_on(
                    lane.clients
                        .rds
                        .describe_db_instances()
                        .db_instance_identifier(&id)
                        .send(),
                )
                .map_err(|e| format!("{e:?}"))?;
            let db = &db.db_instances()[0];
            if db.multi_az() != Some(true) {
                return Err(format!("{moment}: {id} is not Multi-AZ after the rerun"));
            }
            if !lane.own_server() {
                // Nothing may be left on a server other tests share.
                lane.ok(&d, &destroy_args())?;
                check_empty(&d, &lane.clients, &rt)?;
            }
            Ok(())
        };
        if let Err(e) = case() {
            failures.push(format!("{moment}: {e}"));
        }
    }
    println!(
        "crash/usable-early: {killed} of {} moments killed and converged",
        moments.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn destroy_killed_at_each_transition_finishes_on_the_next_run() {
    let rt = runtime();
    let (reference, lanes) = reference_and_lanes(&rt);
    let up = up_args(&ami('A'));
    let up = strs(&up);
    let phases = Phases::default();
    let total = reference.destroy_transitions;
    let ks = chosen(total, exhaustive());
    run_cases("destroy", total, &lanes, &ks, &phases, |_, lane, k| {
        let d = Deployment::new(&format!("cd{k}"));
        phases.time("up", || lane.ok(&d, &up))?;
        let base = serial(&d);
        let kill = phases.time("killed destroy", || kill_at(lane, &d, &destroy_args(), base + k))?;
        phases.time("rerun", || lane.ok(&d, &destroy_args()))?;
        phases.time("census", || check_empty(&d, &lane.clients, &rt))?;
        Ok(kill)
    });
}

/// How many runs a moment-based case starts before it gives up seeing its moment.
const MISSED_MOMENT_TRIES: usize = 3;

/// The group's size in the upgrade cases: desired == max, so every round raises max by one
/// and the end must put it back.
const SCALING: (i32, i32, i32) = (1, 2, 2);

/// A deployment that serves several upgrade cases, going A -> B, then B -> A, ...
struct Fleet {
    d: Deployment,
    cfg: PathBuf,
    on: String,
}

impl Fleet {
    fn up(lane: &Lane, prefix: &str) -> Result<Fleet, String> {
        let d = Deployment::new(prefix);
        let (min, max, desired) = SCALING;
        let cfg = fleet_config(&d, min, max, desired);
        let on = ami('A');
        lane.ok(&d, &["up", "--ami", &on, "--yes", "--config", cfg.to_str().unwrap()])?;
        Ok(Fleet { d, cfg, on })
    }

    fn next_ami(&self) -> String {
        if self.on == ami('A') { ami('B') } else { ami('A') }
    }

    fn upgrade_args<'a>(&'a self, to: &'a str) -> Vec<&'a str> {
        vec!["upgrade", "--ami", to, "--yes", "--config", self.cfg.to_str().unwrap()]
    }

    fn serial(&self) -> u64 {
        serial(&self.d)
    }
}

/// What AWS says of the group, which must run `ami` on every instance (`assert_on`: as many
/// as desired, no other instance running, no process suspended) with the configured
/// min/max/desired (`SCALING`).
async fn on_image_as_configured(d: &Deployment, ami: &str) -> Result<crate::common::Seen, String> {
    let (min, max, desired) = SCALING;
    let s = seen(d).await;
    assert_on(&s, ami, desired);
    if (s.min, s.max, s.desired) != (min, max, desired) {
        return Err(format!(
            "the group is {}/{}/{} (min/max/desired), the config says {min}/{max}/{desired}",
            s.min, s.max, s.desired
        ));
    }
    Ok(s)
}

/// After a finished upgrade to `ami`, as `upgrade.rs` checks it: every instance of the group
/// on `ami` and no other instance running, capacity as configured, no process suspended,
/// the group on the recorded version (the template's default, holding `ami`), exactly one new
/// version, the record cleared, and every instance a healthy target.
async fn check_upgraded(d: &Deployment, ami: &str, versions_before: usize) -> Result<(), String> {
    let s = on_image_as_configured(d, ami).await?;
    let st = d.state();
    if st.get("upgrade").is_some() {
        return Err(format!("the upgrade record is still there: {}", st["upgrade"]));
    }
    let version = recorded(d, LT, "version");
    if st["resources"][LT]["outputs"]["ami"] != ami || s.version != version {
        return Err(format!(
            "the state records version {version} with {}, the group launches version {}",
            st["resources"][LT]["outputs"]["ami"], s.version
        ));
    }
    let all = versions(d).await;
    if all.len() != versions_before + 1 || !all.iter().any(|(v, a)| v.to_string() == version && a == ami) {
        return Err(format!(
            "one new version holding {ami} expected; before: {versions_before}, now: {all:?}"
        ));
    }
    let default = default_version(d).await;
    if default.to_string() != version {
        return Err(format!("the default version is {default}, the group's {version}"));
    }
    healthy_targets_are_the_group(d).await
}

/// After `upgrade --abort` of an upgrade from `from` (launch template version
/// `from_version`) to `to` killed at some transition, `left` being the record the kill left
/// (null: none): the record cleared, capacity as configured, no process suspended, no
/// instance left over, every instance of the group a healthy target. Rolled back (a record
/// before `done`): the group on `from_version`, still the template's default, every instance
/// on `from` except replacements whose round was finished (on `to`). Killed before the record
/// existed: nothing changed. Killed at `done` or after the record was cleared: upgraded.
async fn check_aborted(
    d: &Deployment,
    from_version: &str,
    left: &serde_json::Value,
    from: &str,
    to: &str,
) -> Result<(), String> {
    let (min, max, desired) = SCALING;
    let st = d.state();
    if st.get("upgrade").is_some() {
        return Err(format!("the upgrade record is still there: {}", st["upgrade"]));
    }
    let s = seen(d).await;
    if (s.min, s.max, s.desired) != (min, max, desired) || !s.suspended.is_empty() {
        return Err(format!(
            "the group is {}/{}/{} with {:?} suspended; the config says {min}/{max}/{desired}",
            s.min, s.max, s.desired, s.suspended
        ));
    }
    let n = usize::try_from(desired).unwrap();
    if s.images.len() != n || s.tagged_running != n {
        return Err(format!(
            "{n} instance(s) expected: the group's run {:?}, {} running",
            s.images, s.tagged_running
        ));
    }
    let version = recorded(d, LT, "version");
    let step = left["step"]["name"].as_str();
    let completed = step == Some("done") || (left.is_null() && version != from_version);
    let allowed: &[&str] = if completed {
        &[to]
    } else if left.is_null() {
        &[from]
    } else {
        &[from, to]
    };
    if !s.images.iter().all(|i| allowed.contains(&i.as_str())) {
        return Err(format!(
            "killed at {step:?}: images {:?}, expected only {allowed:?}",
            s.images
        ));
    }
    if !completed {
        let default = default_version(d).await.to_string();
        if version != from_version || s.version != from_version || default != from_version {
            return Err(format!(
                "killed at {step:?}: the state records version {version}, the group launches {}, the default is {default}; {from_version} expected",
                s.version
            ));
        }
    } else if s.version != version {
        return Err(format!(
            "the state records version {version}, the group launches {}",
            s.version
        ));
    }
    healthy_targets_are_the_group(d).await
}

/// Every instance of the group is a healthy target, and any other target is an instance EC2
/// reports terminated: moto 5.2.5 keeps a registered instance the group terminates (the
/// in-flight instance a rollback ends) listed as a `healthy` target, where AWS deregisters
/// it; the old instances a swap terminates are deregistered first, by pi-deploy.
async fn healthy_targets_are_the_group(d: &Deployment) -> Result<(), String> {
    let c = clients().await;
    let group = c
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(recorded(d, "asg", "id"))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let members: BTreeSet<String> = group
        .auto_scaling_groups()
        .iter()
        .flat_map(|g| g.instances())
        .filter_map(|i| i.instance_id().map(String::from))
        .collect();
    let health = c
        .elb
        .describe_target_health()
        .target_group_arn(recorded(d, "tg", "id"))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let healthy: BTreeSet<String> = health
        .target_health_descriptions()
        .iter()
        .filter(|t| t.target_health().and_then(|h| h.state()).map(|s| s.as_str()) == Some("healthy"))
        .filter_map(|t| t.target().and_then(|t| t.id()).map(String::from))
        .collect();
    if !members.is_subset(&healthy) {
        return Err(format!("group members {members:?}, healthy targets {healthy:?}"));
    }
    let others: Vec<String> = health
        .target_health_descriptions()
        .iter()
        .filter_map(|t| t.target().and_then(|t| t.id()).map(String::from))
        .filter(|id| !members.contains(id))
        .collect();
    if !others.is_empty() {
        let out = c
            .ec2
            .describe_instances()
            .set_instance_ids(Some(others.clone()))
            .send()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let live: Vec<String> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .filter(|i| {
                !matches!(
                    i.state().and_then(|s| s.name()).map(|n| n.as_str()),
                    Some("terminated" | "shutting-down")
                )
            })
            .filter_map(|i| i.instance_id().map(String::from))
            .collect();
        if !live.is_empty() {
            return Err(format!("targets outside the group still running: {live:?}"));
        }
    }
    Ok(())
}

/// Each case: the upgrade killed at transition k and rolled back with `upgrade --abort`
/// (`check_aborted`), then killed at k again and run again to the end (`check_upgraded`).
#[test]
fn upgrade_killed_at_each_transition_finishes_on_the_next_run() {
    let rt = runtime();
    // The upgrade's checks (upgrade.rs) read the suite's endpoint: the lanes share it.
    let lanes = Lane::on_suite_endpoint(threads(), &rt);

    // A clean upgrade: how many transitions. Its deployment serves the first lane's cases.
    let reference = Fleet::up(&lanes[0], "crupg").unwrap();
    let base = reference.serial();
    let to = reference.next_ami();
    let versions_before = rt.block_on(versions(&reference.d)).len();
    lanes[0].ok(&reference.d, &reference.upgrade_args(&to)).unwrap();
    rt.block_on(check_upgraded(&reference.d, &to, versions_before)).unwrap();
    let total = reference.serial() - base;
    let reference = Fleet { on: to, ..reference };

    let fleets: Vec<Mutex<Option<Fleet>>> = lanes.iter().map(|_| Mutex::new(None)).collect();
    *fleets[0].lock().unwrap() = Some(reference);
    let phases = Phases::default();
    // The step each first kill left recorded, which `--abort` then rolled back.
    let aborted_at: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    let ks = chosen(total, exhaustive());
    run_cases("upgrade", total, &lanes, &ks, &phases, |i, lane, k| {
        let mut slot = fleets[i].lock().unwrap();
        if slot.is_none() {
            *slot = Some(phases.time("up", || Fleet::up(lane, &format!("cg{i}")))?);
        }
        let fleet = slot.as_mut().unwrap();
        let to = fleet.next_ami();
        let versions_before = rt.block_on(versions(&fleet.d)).len();
        let base = fleet.serial();
        let from_version = recorded(&fleet.d, LT, "version");
        let case = || {
            // First the upgrade killed at k and rolled back with `--abort` ...
            let kill = phases.time("killed upgrade", || {
                kill_at(lane, &fleet.d, &fleet.upgrade_args(&to), base + k)
            })?;
            let left = fleet.d.state()["upgrade"].clone();
            let step = left["step"]["name"].as_str().unwrap_or("none").to_string();
            *aborted_at.lock().unwrap().entry(step).or_default() += 1;
            phases.time("abort", || lane.ok(&fleet.d, &["upgrade", "--abort"]))?;
            phases.time("abort checks", || {
                rt.block_on(check_aborted(&fleet.d, &from_version, &left, &fleet.on, &to))
            })?;
            // ... then killed at k again (counted from the abort's end) and run again.
            let base = fleet.serial();
            phases.time("killed upgrade", || {
                kill_at(lane, &fleet.d, &fleet.upgrade_args(&to), base + k)
            })?;
            phases.time("rerun", || lane.ok(&fleet.d, &fleet.upgrade_args(&to)))?;
            phases.time("checks", || rt.block_on(check_upgraded(&fleet.d, &to, versions_before)))?;
            Ok(kill)
        };
        let outcome = caught(case);
        match outcome {
            Ok(_) => fleet.on = to,
            // The fleet is in an unknown state: the lane's next case starts a new one.
            Err(_) => *slot = None,
        }
        outcome
    });
    for fleet in fleets.into_iter().filter_map(|f| f.into_inner().unwrap()) {
        lanes[0].ok(&fleet.d, &destroy_args()).unwrap();
    }
    let aborted_at = aborted_at.into_inner().unwrap();
    println!("crash/upgrade: aborted with the record at step (cases): {aborted_at:?}");
    if exhaustive() {
        // The steps past which a round's old instance may be out of the load balancer.
        let missed: Vec<&str> = ["launching", "draining", "terminating"]
            .into_iter()
            .filter(|s| !aborted_at.contains_key(*s))
            .collect();
        assert!(
            missed.is_empty(),
            "no kill left the upgrade at {missed:?}: {aborted_at:?}"
        );
    }
}

/// A lane's deployment that serves its cases in turn, going back and forth between two
/// configs (`config(d, false)` and `config(d, true)`): the deployment and which it is on.
type Toggling = Mutex<Option<(Deployment, bool)>>;

/// One case on the lane's toggling deployment (first made with `up` on `config(d, false)`
/// when the lane has none): `case` gets it, which config it goes to, that config and its
/// `up` arguments. A case that succeeds leaves the deployment on that config; one that
/// fails leaves it in an unknown state, so it is dropped and the lane's next case starts a
/// new one.
fn toggle_case(
    slot: &Toggling,
    lane: &Lane,
    prefix: &str,
    phases: &Phases,
    config: fn(&Deployment, bool) -> PathBuf,
    case: impl FnOnce(&Deployment, bool, &Path, &[&str]) -> Result<Kill, String>,
) -> Result<Kill, String> {
    let mut slot = slot.lock().unwrap();
    if slot.is_none() {
        let d = Deployment::new(prefix);
        phases.time("up", || lane.ok(&d, &strs(&up_with(&config(&d, false)))))?;
        *slot = Some((d, false));
    }
    let (d, on) = slot.as_mut().unwrap();
    let to = !*on;
    let cfg = config(d, to);
    let args = up_with(&cfg);
    let outcome = caught(|| case(d, to, &cfg, &strs(&args)));
    match outcome {
        Ok(_) => *on = to,
        Err(_) => *slot = None,
    }
    outcome
}

/// The roll cases' config: the group as in the upgrade cases, and one of two instance types
/// (a change of what the instances boot with: `up` rolls them).
fn roll_config(d: &Deployment, large: bool) -> PathBuf {
    let (min, max, desired) = SCALING;
    let instance_type = if large { "t3.large" } else { "t3.medium" };
    crate::common::config(
        d,
        &format!(
            "instance_type = \"{instance_type}\"\n\n[database]\ndeletion_protection = false\n\n[scaling]\nmin = {min}\nmax = {max}\ndesired = {desired}\n"
        ),
    )
}

fn up_with(cfg: &std::path::Path) -> Vec<String> {
    ["up", "--ami", &ami('A'), "--yes", "--config", cfg.to_str().unwrap()]
        .map(String::from)
        .to_vec()
}

/// After an `up` that rolled to `instance_type`: one fleet of the new launch version (every
/// instance of the group, and every running instance of the deployment, of that type on
/// the image, the group on the template's new default version, which the state records),
/// exactly one new launch template version, the record cleared, capacity as configured with
/// no process suspended, every instance a healthy target, and `plan --detailed-exitcode`
/// with nothing to do.
async fn check_rolled(
    lane: &Lane,
    d: &Deployment,
    cfg: &std::path::Path,
    instance_type: &str,
    versions_before: usize,
) -> Result<(), String> {
    let (_, _, desired) = SCALING;
    let s = on_image_as_configured(d, &ami('A')).await?;
    let running = fleet_of(d).await;
    if running.len() != usize::try_from(desired).unwrap() || running.iter().any(|(_, t, _)| t != instance_type) {
        return Err(format!(
            "{desired} instance(s) of {instance_type} expected: {running:?}"
        ));
    }
    let st = d.state();
    if st.get("upgrade").is_some() {
        return Err(format!("the roll's record is still there: {}", st["upgrade"]));
    }
    let version = recorded(d, LT, "version");
    if s.version != version {
        return Err(format!(
            "the state records version {version}, the group launches version {}",
            s.version
        ));
    }
    let all = versions(d).await;
    if all.len() != versions_before + 1 {
        return Err(format!(
            "one new version expected; before: {versions_before}, now: {all:?}"
        ));
    }
    let default = default_version(d).await;
    if default.to_string() != version || all.last().map(|(v, _)| v.to_string()) != Some(version.clone()) {
        return Err(format!(
            "the group's version {version} is not the new default ({default}): {all:?}"
        ));
    }
    healthy_targets_are_the_group(d).await?;
    check_settled(lane, d, cfg)
}

/// Issue 18: an `up` that rolls the instances (a new instance type) killed at each of its
/// transitions, then `up` again with the same config: the next run finishes the roll (or,
/// killed before the roll began, carries it out), and the end is `check_rolled`'s. The
/// transitions are all of the `up`'s: its first write, the executor's (nothing else
/// changes), the roll's (record, new version, suspending, pointing, each round, finishing,
/// done, cleared) and the final outputs.
#[test]
fn up_rolling_the_instances_killed_at_each_transition_converges_on_the_next_run() {
    let rt = runtime();
    // The checks (upgrade.rs) read the suite's endpoint: the lanes share it.
    let lanes = Lane::on_suite_endpoint(threads(), &rt);

    // A clean rolling `up`: how many transitions. Its deployment serves the first lane.
    let reference = Deployment::new("crrol");
    lanes[0]
        .ok(&reference, &strs(&up_with(&roll_config(&reference, false))))
        .unwrap();
    let versions_before = rt.block_on(versions(&reference)).len();
    let large = roll_config(&reference, true);
    let total = transitions_of(&lanes[0], &reference, &large);
    rt.block_on(check_rolled(&lanes[0], &reference, &large, "t3.large", versions_before))
        .unwrap();

    // One deployment per lane, going back and forth between the two instance types.
    let fleets: Vec<Toggling> = lanes.iter().map(|_| Mutex::new(None)).collect();
    *fleets[0].lock().unwrap() = Some((reference, true));
    let phases = Phases::default();
    // The roll's step each kill left recorded (the rerun had to finish it): the test must
    // reach into the roll, not only the `up` around it.
    let mid_roll: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    let ks = chosen(total, exhaustive());
    run_cases("roll", total, &lanes, &ks, &phases, |i, lane, k| {
        let prefix = format!("cr{i}");
        toggle_case(&fleets[i], lane, &prefix, &phases, roll_config, |d, to, cfg, args| {
            let versions_before = rt.block_on(versions(d)).len();
            let base = serial(d);
            let kill = phases.time("killed up", || kill_at(lane, d, args, base + k))?;
            if let Some(step) = d.state()["upgrade"]["step"]["name"].as_str() {
                *mid_roll.lock().unwrap().entry(step.to_string()).or_default() += 1;
            }
            phases.time("rerun", || lane.ok(d, args))?;
            let instance_type = if to { "t3.large" } else { "t3.medium" };
            phases.time("checks", || {
                rt.block_on(check_rolled(lane, d, cfg, instance_type, versions_before))
            })?;
            Ok(kill)
        })
    });
    for (d, _) in fleets.into_iter().filter_map(|f| f.into_inner().unwrap()) {
        lanes[0].ok(&d, &destroy_args()).unwrap();
    }
    let mid_roll = mid_roll.into_inner().unwrap();
    println!("crash/roll: killed with the roll recorded at step (cases): {mid_roll:?}");
    if exhaustive() {
        let every = [
            "started",
            "suspending",
            "pointing",
            "choosing",
            "launching",
            "draining",
            "terminating",
            "finishing",
            "done",
        ];
        let missed: Vec<&str> = every.into_iter().filter(|s| !mid_roll.contains_key(*s)).collect();
        assert!(missed.is_empty(), "no kill left the roll at {missed:?}: {mid_roll:?}");
    }
}

/// Two configs an update run goes between: several settings of several kinds at once
/// (Auto Scaling group, target group, alarm, log group, database), all applied in place.
fn settings_config(d: &Deployment, changed: bool) -> PathBuf {
    let body = if changed {
        "[database]\ndeletion_protection = false\nbackup_retention_days = 14\n\
         [scaling]\nmax = 6\nscale_out_cpu_percent = 80.0\n\
         [health_check]\npath = \"/health\"\n[lambda]\nlog_retention_days = 60\n"
    } else {
        "[database]\ndeletion_protection = false\n"
    };
    crate::common::config(d, body)
}

/// After an update run: `plan` finds nothing to change, and every record is `ready`.
fn check_settled(lane: &Lane, d: &Deployment, cfg: &std::path::Path) -> Result<(), String> {
    let ami = ami('A');
    let out = lane.run(
        d,
        &[
            "plan",
            "--ami",
            &ami,
            "--config",
            cfg.to_str().unwrap(),
            "--detailed-exitcode",
        ],
    );
    if out.status.code() != Some(0) {
        return Err(format!(
            "plan after the rerun: exit {:?}\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout)
        ));
    }
    let st = d.state();
    let unsettled: Vec<String> = st["resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["status"] != "ready")
        .map(|(k, r)| format!("{k}: {}", r["status"]))
        .collect();
    if unsettled.is_empty() {
        Ok(())
    } else {
        Err(format!("not ready: {unsettled:?}"))
    }
}

#[test]
fn update_killed_at_each_transition_converges_on_the_next_run() {
    let rt = runtime();
    let lanes = Lane::start(threads(), &rt);

    // A clean update run: how many transitions.
    let reference = Deployment::new("crupd");
    lanes[0]
        .ok(&reference, &strs(&up_with(&settings_config(&reference, false))))
        .unwrap();
    let changed = settings_config(&reference, true);
    let total = transitions_of(&lanes[0], &reference, &changed);
    check_settled(&lanes[0], &reference, &changed).unwrap();
    assert!(
        total >= 10,
        "five resources updated: at least two writes each, got {total}"
    );
    lanes[0].ok(&reference, &destroy_args()).unwrap();

    // One deployment per lane, going back and forth between the two configs.
    let fleets: Vec<Toggling> = lanes.iter().map(|_| Mutex::new(None)).collect();
    let phases = Phases::default();
    let ks = chosen(total, exhaustive());
    run_cases("update", total, &lanes, &ks, &phases, |i, lane, k| {
        let prefix = format!("cx{i}");
        toggle_case(
            &fleets[i],
            lane,
            &prefix,
            &phases,
            settings_config,
            |d, _, cfg, args| {
                let base = serial(d);
                let kill = phases.time("killed update", || kill_at(lane, d, args, base + k))?;
                phases.time("rerun", || lane.ok(d, args))?;
                phases.time("checks", || check_settled(lane, d, cfg))?;
                Ok(kill)
            },
        )
    });
    // Each lane has its own server: a deployment is destroyed where it lives.
    for (lane, fleet) in lanes.iter().zip(fleets) {
        if let Some((d, _)) = fleet.into_inner().unwrap() {
            lane.ok(&d, &destroy_args()).unwrap();
        }
    }
}

#[test]
fn the_sample_keeps_the_edges_and_every_fifth() {
    if std::env::var("PI_DEPLOY_CRASH_K").is_ok() {
        return;
    }
    assert_eq!(chosen(12, false), vec![1, 2, 3, 5, 10, 11, 12]);
    assert_eq!(chosen(4, true), vec![1, 2, 3, 4]);
}

/// The config of the major-upgrade cases: the engine on `version`.
fn engine_config(d: &Deployment, version: &str) -> PathBuf {
    crate::common::config(
        d,
        &format!("[database]\ndeletion_protection = false\nengine_version = \"{version}\"\n"),
    )
}

/// After a major upgrade to 11.4: RDS has the instance on 11.4 with the group of family
/// mariadb11.4 that the state records, the deployment has no other parameter group (the
/// census, through `check_converged`: every key of the blueprint once, no retiring record
/// left), and `plan` has nothing to do.
fn check_major_upgraded(
    lane: &Lane,
    d: &Deployment,
    rt: &tokio::runtime::Runtime,
    cfg: &std::path::Path,
    blueprint: &BTreeSet<String>,
) -> Result<(), String> {
    check_converged(d, &lane.clients, rt, blueprint)?;
    let st = d.state();
    let group = crate::common::id(&st, "db-params");
    if group != format!("{}-db-params-mariadb11-4", d.name) {
        return Err(format!("the state records parameter group {group}"));
    }
    let db = rt
        .block_on(
            lane.clients
                .rds
                .describe_db_instances()
                .db_instance_identifier(crate::common::id(&st, "db"))
                .send(),
        )
        .map_err(|e| format!("describing the instance: {e:?}"))?;
    let db = &db.db_instances()[0];
    let on: Vec<&str> = db
        .db_parameter_groups()
        .iter()
        .filter_map(|g| g.db_parameter_group_name())
        .collect();
    if db.engine_version() != Some("11.4") || on != [group.as_str()] {
        return Err(format!(
            "the instance is on {:?} with {on:?}, not 11.4 with {group}",
            db.engine_version()
        ));
    }
    check_settled(lane, d, cfg)
}

/// Issue 18: an `up` that upgrades the engine a major version (10.11 -> 11.4: the parameter
/// group replaced create-before-destroy, the instance moved onto it with the new version,
/// the old group deleted) killed at each of its transitions, then `up` again: one group of
/// the new family, the instance on it, the old group gone, nothing left to change. The
/// transitions: the first write, the group's retirement with the replacement's intent, its
/// created and ready, the instance's updating and ready, the old group's deleting and
/// deleted, the final outputs.
#[test]
fn major_upgrade_killed_at_each_transition_converges_on_the_next_run() {
    let rt = runtime();
    let lanes = Lane::start(threads(), &rt);

    // A clean upgrading `up`: how many transitions, and the blueprint after it.
    let reference = Deployment::new("crmaj");
    lanes[0]
        .ok(&reference, &strs(&up_with(&engine_config(&reference, "10.11"))))
        .unwrap();
    let upgraded = engine_config(&reference, "11.4");
    let total = transitions_of(&lanes[0], &reference, &upgraded);
    let blueprint = recorded_keys(&reference);
    check_major_upgraded(&lanes[0], &reference, &rt, &upgraded, &blueprint).unwrap();
    assert!(
        total >= 8,
        "retire + create (3 writes), the instance (2), the old group (2), outputs: got {total}"
    );
    lanes[0].ok(&reference, &destroy_args()).unwrap();

    let phases = Phases::default();
    let ks = chosen(total, exhaustive());
    run_cases("major-upgrade", total, &lanes, &ks, &phases, |_, lane, k| {
        let d = Deployment::new(&format!("cm{k}"));
        phases.time("up on 10.11", || {
            lane.ok(&d, &strs(&up_with(&engine_config(&d, "10.11"))))
        })?;
        let cfg = engine_config(&d, "11.4");
        let args = up_with(&cfg);
        let base = serial(&d);
        let kill = phases.time("killed upgrade", || kill_at(lane, &d, &strs(&args), base + k))?;
        phases.time("rerun", || lane.ok(&d, &strs(&args)))?;
        phases.time("checks", || check_major_upgraded(lane, &d, &rt, &cfg, &blueprint))?;
        phases.time("destroy", || lane.ok(&d, &destroy_args()))?;
        Ok(kill)
    });
}

/// `up` on 10.11, then an `up` to 11.4 killed mid-replace: the old parameter group retiring
/// (recorded), its replacement created and recorded ready, the instance not moved yet; both
/// groups exist in AWS. The moment lasts a few calls, which a loaded machine's poll can miss:
/// the run then ends by itself and the case starts again on a new deployment
/// (`MISSED_MOMENT_TRIES`). The deployment it was killed in.
fn killed_mid_replace(lane: &Lane, rt: &tokio::runtime::Runtime, name: &str) -> Deployment {
    for attempt in 0..MISSED_MOMENT_TRIES {
        let d = Deployment::new(&format!("{name}{attempt}"));
        lane.ok(&d, &strs(&up_with(&engine_config(&d, "10.11")))).unwrap();
        let old_group = crate::common::id(&d.state(), "db-params");
        let upgrade = up_with(&engine_config(&d, "11.4"));
        let retiring = format!("db-params/retiring-{old_group}");
        // Before the retiring group's delete intent: seen later (a poll that lagged on a
        // loaded machine), the kill could come after its delete call, and one group is left.
        let killed = kill_when(lane, &d, &strs(&upgrade), &[], "the replacement recorded", |_, st| {
            st["resources"]
                .get(&retiring)
                .is_some_and(|r| r["status"] != "deleting")
                && st["resources"]["db-params"]["status"] == "ready"
        })
        .unwrap();
        if killed.is_none() {
            println!("crash/mid-replace: the up ended before the poll saw the replacement recorded; again");
            if !lane.own_server() {
                lane.ok(&d, &destroy_args()).unwrap();
            }
            continue;
        }
        let st = d.state();
        assert!(st["resources"].get(&retiring).is_some(), "{st:#}");
        let groups = rt.block_on(census::everything(&lane.clients, &d.name))["db-parameter-group"].clone();
        assert_eq!(groups.len(), 2, "both groups exist: {groups:?}");
        return d;
    }
    panic!("the up ended before the replacement was recorded, {MISSED_MOMENT_TRIES} times");
}

/// Issue 18: `destroy` after an `up` killed mid-replace (the old parameter group retiring,
/// its replacement created and recorded, the instance not moved yet): both groups, the
/// instance and everything else are deleted, nothing is left.
#[test]
fn destroy_after_a_replace_killed_midway_deletes_the_retiring_resource_too() {
    let rt = runtime();
    let lane = &Lane::start(1, &rt)[0];
    let d = killed_mid_replace(lane, &rt, "crrd");
    lane.ok(&d, &destroy_args()).unwrap();
    check_empty(&d, &lane.clients, &rt).unwrap();
}

/// After a restore killed and then rolled back with `restore --abort`, or never started:
/// the deployment on `db` (the record, the endpoint parameter, the launch template's user
/// data naming its secret), it the deployment's only DB instance, no restore or upgrade
/// record, every instance of the group a healthy target with none suspended.
async fn check_on_database(d: &Deployment, c: &Clients, db: &str, others: usize) -> Result<(), String> {
    use crate::restore::{db_instances, endpoint_of, names_secret, parameter, role_policy, user_data};
    let state = d.state();
    if let Some(r) = state.get("restore").filter(|_| others == 0) {
        return Err(format!("a restore is still recorded: {r}"));
    }
    if let Some(u) = state.get("upgrade") {
        return Err(format!("a swap is still recorded: {u}"));
    }
    if recorded(d, "db", "id") != db {
        return Err(format!("the db record names {}, not {db}", recorded(d, "db", "id")));
    }
    let (param, want) = (parameter(c, d).await, endpoint_of(c, db).await);
    if param != want {
        return Err(format!("the endpoint parameter is {param}, not {want} ({db})"));
    }
    let secret = recorded(d, "db", "secret_arn");
    if !names_secret(&user_data(c, d).await, &secret) {
        return Err(format!("the default launch template version does not name {secret}"));
    }
    // The role reads the current secret, and the kept one only while it is kept.
    let policy = role_policy(c, d).await;
    let secrets = policy.matches("rds!").count();
    if !policy.contains(&secret) || secrets != 2 * (1 + others) {
        return Err(format!(
            "the dashboard role's policy names {secrets} DB secret ARNs (want {}): {policy}",
            2 * (1 + others)
        ));
    }
    let all = db_instances(c, &d.name).await;
    if !all.contains(&db.to_string()) || all.len() != 1 + others {
        return Err(format!(
            "DB instances of the deployment: {all:?}, expected {db} and {others} other(s)"
        ));
    }
    group_settled(d).await
}

/// No process suspended, the group launching the default version, every instance of it a
/// healthy target.
async fn group_settled(d: &Deployment) -> Result<(), String> {
    let s = seen(d).await;
    if !s.suspended.is_empty() {
        return Err(format!("processes left suspended: {:?}", s.suspended));
    }
    if s.version != default_version(d).await.to_string() {
        return Err(format!("the group launches version {}, not the default", s.version));
    }
    healthy_targets_are_the_group(d).await
}

/// Each case: `restore --db-snapshot` killed at transition k and undone with `restore
/// --abort` (back on the old instance, the restored one gone), then killed at k again, run
/// again to the end (on the restored instance, the old one kept) and finished with
/// `restore --finish` (the old one gone). The next case of the lane restores again, from
/// the instance the last one left.
#[test]
fn restore_killed_at_each_transition_is_finished_or_aborted_by_the_next_run() {
    let rt = runtime();
    // The checks (restore.rs, upgrade.rs) read the suite's endpoint: the lanes share it.
    let lanes = Lane::on_suite_endpoint(threads(), &rt);
    let c = &lanes[0].clients;

    struct Restored {
        fleet: Fleet,
        snapshot: String,
    }
    let prepare = |lane: &Lane, prefix: &str| -> Result<Restored, String> {
        let fleet = Fleet::up(lane, prefix)?;
        let cfg = fleet.cfg.to_str().unwrap().to_string();
        let out = lane.ok(
            &fleet.d,
            &["snapshot", "--label", "crash", "--no-files", "--json", "--config", &cfg],
        )?;
        let ev = events(&out);
        let snapshot = ev
            .last()
            .and_then(|e| e["outputs"]["db_snapshot"].as_str())
            .ok_or("no snapshot")?
            .to_string();
        Ok(Restored { fleet, snapshot })
    };
    let args = |r: &Restored| with_config(&r.fleet.cfg, &["restore", "--db-snapshot", &r.snapshot, "--yes"]);
    let with_cfg = |r: &Restored, a: &[&str]| with_config(&r.fleet.cfg, a);

    // A clean restore and finish: how many transitions the restore makes.
    let reference = prepare(&lanes[0], "crrst").unwrap();
    let base = reference.fleet.serial();
    let old = d_db(&reference.fleet.d);
    lanes[0].ok(&reference.fleet.d, &strs(&args(&reference))).unwrap();
    let total = reference.fleet.serial() - base;
    lanes[0]
        .ok(
            &reference.fleet.d,
            &strs(&with_cfg(
                &reference,
                &["restore", "--finish", "--skip-final-snapshot", "--yes"],
            )),
        )
        .unwrap();
    rt.block_on(check_on_database(&reference.fleet.d, c, &d_db(&reference.fleet.d), 0))
        .unwrap();
    assert_ne!(old, d_db(&reference.fleet.d));

    let slots: Vec<Mutex<Option<Restored>>> = lanes.iter().map(|_| Mutex::new(None)).collect();
    *slots[0].lock().unwrap() = Some(reference);
    let phases = Phases::default();
    let aborted_at: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    let ks = chosen(total, exhaustive());
    run_cases("restore", total, &lanes, &ks, &phases, |i, lane, k| {
        let mut slot = slots[i].lock().unwrap();
        if slot.is_none() {
            *slot = Some(phases.time("up", || prepare(lane, &format!("cr{i}")))?);
        }
        let r = slot.as_ref().unwrap();
        let d = &r.fleet.d;
        let c = &lane.clients;
        let case = || {
            let old = d_db(d);
            let base = r.fleet.serial();
            let kill = phases.time("killed restore", || kill_at(lane, d, &strs(&args(r)), base + k))?;
            let step = d.state()["restore"]["step"]["name"]
                .as_str()
                .unwrap_or("none")
                .to_string();
            *aborted_at.lock().unwrap().entry(step).or_default() += 1;
            phases.time("abort", || {
                lane.ok(d, &strs(&with_cfg(r, &["restore", "--abort", "--skip-final-snapshot"])))
            })?;
            phases.time("abort checks", || rt.block_on(check_on_database(d, c, &old, 0)))?;
            // A new restore in the next second (its name has the second in it).
            std::thread::sleep(Duration::from_millis(1100));
            let base = r.fleet.serial();
            phases.time("killed restore", || kill_at(lane, d, &strs(&args(r)), base + k))?;
            phases.time("rerun", || lane.ok(d, &strs(&args(r))))?;
            let new = d_db(d);
            if new == old {
                return Err(format!("the rerun left the deployment on {old}"));
            }
            phases.time("checks", || rt.block_on(check_on_database(d, c, &new, 1)))?;
            phases.time("finish", || {
                lane.ok(
                    d,
                    &strs(&with_cfg(r, &["restore", "--finish", "--skip-final-snapshot", "--yes"])),
                )
            })?;
            phases.time("finish checks", || rt.block_on(check_on_database(d, c, &new, 0)))?;
            Ok(kill)
        };
        let outcome = caught(case);
        if outcome.is_err() {
            // The deployment is in an unknown state: the lane's next case starts a new one.
            *slot = None;
        }
        outcome
    });
    for r in slots.into_iter().filter_map(|s| s.into_inner().unwrap()) {
        lanes[0].ok(&r.fleet.d, &destroy_args()).unwrap();
        check_empty(&r.fleet.d, &lanes[0].clients, &rt).unwrap();
    }
    println!(
        "crash/restore: aborted with the record at step (cases): {:?}",
        aborted_at.into_inner().unwrap()
    );
}

/// `restore --finish` and `restore --abort` killed at each of their own transitions (the
/// test above runs them unkilled): each case restores to `kept`, kills `--abort` at
/// transition k, runs `--abort` again (back on the old instance, the restored one gone),
/// restores again, kills `--finish` at k (when it has that many), runs `--finish` again (on
/// the restored instance, the old one gone).
#[test]
fn restore_finish_and_abort_killed_at_each_transition_converge_on_the_rerun() {
    let rt = runtime();
    let lanes = Lane::on_suite_endpoint(threads(), &rt);
    let c = &lanes[0].clients;
    let prepare = |lane: &Lane, prefix: &str| -> Result<Fleet, String> { Fleet::up(lane, prefix) };
    let restore = |f: &Fleet| with_config(&f.cfg, &["restore", "--latest", "--yes"]);
    let abort = |f: &Fleet| with_config(&f.cfg, &["restore", "--abort", "--skip-final-snapshot"]);
    let finish = |f: &Fleet| with_config(&f.cfg, &["restore", "--finish", "--skip-final-snapshot", "--yes"]);

    // A clean restore, abort, restore, finish: how many transitions each makes.
    let reference = prepare(&lanes[0], "crfa").unwrap();
    let old = d_db(&reference.d);
    lanes[0].ok(&reference.d, &strs(&restore(&reference))).unwrap();
    let base = reference.serial();
    lanes[0].ok(&reference.d, &strs(&abort(&reference))).unwrap();
    let abort_total = reference.serial() - base;
    rt.block_on(check_on_database(&reference.d, c, &old, 0)).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    lanes[0].ok(&reference.d, &strs(&restore(&reference))).unwrap();
    let base = reference.serial();
    lanes[0].ok(&reference.d, &strs(&finish(&reference))).unwrap();
    let finish_total = reference.serial() - base;
    rt.block_on(check_on_database(&reference.d, c, &d_db(&reference.d), 0))
        .unwrap();
    assert_ne!(old, d_db(&reference.d));

    let slots: Vec<Mutex<Option<Fleet>>> = lanes.iter().map(|_| Mutex::new(None)).collect();
    *slots[0].lock().unwrap() = Some(reference);
    let phases = Phases::default();
    let total = abort_total.max(finish_total);
    let ks = chosen(total, exhaustive());
    run_cases("restore-finish-abort", total, &lanes, &ks, &phases, |i, lane, k| {
        let mut slot = slots[i].lock().unwrap();
        if slot.is_none() {
            *slot = Some(phases.time("up", || prepare(lane, &format!("crfa{i}")))?);
        }
        let f = slot.as_ref().unwrap();
        let d = &f.d;
        let c = &lane.clients;
        let case = || {
            let old = d_db(d);
            std::thread::sleep(Duration::from_millis(1100));
            phases.time("restore", || lane.ok(d, &strs(&restore(f))))?;
            let mut kill = Kill::ExitedFirst;
            if k <= abort_total {
                let base = f.serial();
                kill = phases.time("killed abort", || kill_at(lane, d, &strs(&abort(f)), base + k))?;
            }
            phases.time("abort", || lane.ok(d, &strs(&abort(f))))?;
            phases.time("abort checks", || rt.block_on(check_on_database(d, c, &old, 0)))?;
            std::thread::sleep(Duration::from_millis(1100));
            phases.time("restore", || lane.ok(d, &strs(&restore(f))))?;
            let new = d_db(d);
            if new == old {
                return Err(format!("the restore left the deployment on {old}"));
            }
            if k <= finish_total {
                let base = f.serial();
                kill = phases.time("killed finish", || kill_at(lane, d, &strs(&finish(f)), base + k))?;
            }
            phases.time("finish", || lane.ok(d, &strs(&finish(f))))?;
            phases.time("finish checks", || rt.block_on(check_on_database(d, c, &new, 0)))?;
            Ok(kill)
        };
        let outcome = caught(case);
        if outcome.is_err() {
            *slot = None;
        }
        outcome
    });
    for f in slots.into_iter().filter_map(|s| s.into_inner().unwrap()) {
        lanes[0].ok(&f.d, &destroy_args()).unwrap();
        check_empty(&f.d, &lanes[0].clients, &rt).unwrap();
    }
    println!("crash/restore-finish-abort: --abort makes {abort_total} transitions, --finish {finish_total}");
}

/// After a restore of the file system, its abort or its finish converged: the deployment on
/// file system `fs` (the records, the user data of the default launch template version, the
/// Lambda's access point), `1 + others` file systems tagged with the deployment (the other:
/// the one a kept restore keeps, with its mount targets), no restore record unless one is
/// kept, no swap recorded, the group settled.
async fn check_on_file_system(d: &Deployment, c: &Clients, fs: &str, others: usize) -> Result<(), String> {
    use crate::restore_files::{file_systems, lambda_access_point, made_on};
    let state = d.state();
    match (state.get("files_restore"), others) {
        (Some(r), 0) => return Err(format!("a restore of the file system is still recorded: {r}")),
        (Some(r), _) if r["full"]["step"]["name"] != "kept" => {
            return Err(format!("the restore of the file system is not kept: {r}"));
        }
        (None, 1) => return Err("no restore of the file system is recorded".into()),
        _ => {}
    }
    if let Some(u) = state.get("upgrade") {
        return Err(format!("a swap is still recorded: {u}"));
    }
    if recorded(d, "efs", "id") != fs {
        return Err(format!("the efs record names {}, not {fs}", recorded(d, "efs", "id")));
    }
    for key in ["efs-mt-a", "efs-mt-b", "efs-ap"] {
        if recorded(d, key, "file_system_id") != fs {
            return Err(format!("the {key} record is on {}", recorded(d, key, "file_system_id")));
        }
    }
    let (subnets, points) = made_on(c, fs).await;
    let ap = recorded(d, "efs-ap", "arn");
    if subnets.len() != 2 || points != [ap.clone()] {
        return Err(format!(
            "{fs} has mount targets in {subnets:?} and access points {points:?} (want 2, [{ap}])"
        ));
    }
    if !crate::restore::user_data(c, d)
        .await
        .contains(&format!("readonly EFS_ID='{fs}'"))
    {
        return Err(format!("the default launch template version does not mount {fs}"));
    }
    let mounted = lambda_access_point(c, d).await;
    if mounted != ap {
        return Err(format!("the Lambda mounts {mounted}, not {ap}"));
    }
    let all = file_systems(c, &d.name).await;
    if !all.contains(&fs.to_string()) || all.len() != 1 + others {
        return Err(format!(
            "file systems of the deployment: {all:?}, expected {fs} and {others} other(s)"
        ));
    }
    for other in all.iter().filter(|f| *f != fs) {
        if made_on(c, other).await.0.len() != 2 {
            return Err(format!("the kept file system {other} lost its mount targets"));
        }
    }
    group_settled(d).await
}

/// The file system the `efs` record names.
fn d_fs(d: &Deployment) -> String {
    recorded(d, "efs", "id")
}

/// Issue 21: a full restore of the file system (`restore --files ARN`, into a new one) and
/// its `--abort` and `--finish`, each killed at transition k and run again: killed restore,
/// killed abort, abort (back on the old file system, the new one gone); killed restore,
/// rerun (on the new one, the old one kept), killed finish, finish (the old one gone). Each
/// case restores from a new backup of the file system the lane's last case left.
#[test]
fn files_restore_killed_at_each_transition_is_finished_or_aborted_by_the_next_run() {
    let rt = runtime();
    let lanes = Lane::on_suite_endpoint(threads(), &rt);
    let c = &lanes[0].clients;
    // A new backup each time (`snapshot` with a label it took already answers that one).
    let backup = |lane: &Lane, f: &Fleet, label: &str| -> Result<String, String> {
        let out = lane.ok(
            &f.d,
            &strs(&with_config(&f.cfg, &["snapshot", "--label", label, "--json"])),
        )?;
        events(&out)
            .last()
            .and_then(|e| e["outputs"]["recovery_point_arn"].as_str().map(String::from))
            .ok_or_else(|| format!("no recovery point: {:?}", events(&out).last()))
    };
    let restore = |f: &Fleet, rp: &str| with_config(&f.cfg, &["restore", "--files", rp, "--yes"]);
    let abort = |f: &Fleet| with_config(&f.cfg, &["restore", "--abort"]);
    let finish = |f: &Fleet| with_config(&f.cfg, &["restore", "--finish", "--yes"]);

    // A clean restore, abort, restore, finish: how many transitions each makes.
    let reference = Fleet::up(&lanes[0], "crfs").unwrap();
    let d = &reference.d;
    let old = d_fs(d);
    let rp = backup(&lanes[0], &reference, "reference").unwrap();
    let base = reference.serial();
    lanes[0].ok(d, &strs(&restore(&reference, &rp))).unwrap();
    let restore_total = reference.serial() - base;
    rt.block_on(check_on_file_system(d, c, &d_fs(d), 1)).unwrap();
    let base = reference.serial();
    lanes[0].ok(d, &strs(&abort(&reference))).unwrap();
    let abort_total = reference.serial() - base;
    rt.block_on(check_on_file_system(d, c, &old, 0)).unwrap();
    lanes[0].ok(d, &strs(&restore(&reference, &rp))).unwrap();
    let base = reference.serial();
    lanes[0].ok(d, &strs(&finish(&reference))).unwrap();
    let finish_total = reference.serial() - base;
    rt.block_on(check_on_file_system(d, c, &d_fs(d), 0)).unwrap();
    assert_ne!(old, d_fs(d));

    let slots: Vec<Mutex<Option<Fleet>>> = lanes.iter().map(|_| Mutex::new(None)).collect();
    *slots[0].lock().unwrap() = Some(reference);
    let phases = Phases::default();
    let total = restore_total.max(abort_total).max(finish_total);
    let ks = chosen(total, exhaustive());
    run_cases("files-restore", total, &lanes, &ks, &phases, |i, lane, k| {
        let mut slot = slots[i].lock().unwrap();
        if slot.is_none() {
            *slot = Some(phases.time("up", || Fleet::up(lane, &format!("crfs{i}")))?);
        }
        let f = slot.as_ref().unwrap();
        let d = &f.d;
        let c = &lane.clients;
        let case = || {
            let old = d_fs(d);
            let rp = phases.time("backup", || backup(lane, f, &format!("case{k}")))?;
            let mut kill = Kill::ExitedFirst;
            if k <= restore_total {
                let base = f.serial();
                kill = phases.time("killed restore", || kill_at(lane, d, &strs(&restore(f, &rp)), base + k))?;
            }
            if k <= abort_total && d.state().get("files_restore").is_some() {
                let base = f.serial();
                kill = phases.time("killed abort", || kill_at(lane, d, &strs(&abort(f)), base + k))?;
            }
            phases.time("abort", || lane.ok(d, &strs(&abort(f))))?;
            phases.time("abort checks", || rt.block_on(check_on_file_system(d, c, &old, 0)))?;
            if k <= restore_total {
                let base = f.serial();
                kill = phases.time("killed restore", || kill_at(lane, d, &strs(&restore(f, &rp)), base + k))?;
            }
            phases.time("rerun", || lane.ok(d, &strs(&restore(f, &rp))))?;
            let new = d_fs(d);
            if new == old {
                return Err(format!("the rerun left the deployment on {old}"));
            }
            phases.time("checks", || rt.block_on(check_on_file_system(d, c, &new, 1)))?;
            if k <= finish_total {
                let base = f.serial();
                kill = phases.time("killed finish", || kill_at(lane, d, &strs(&finish(f)), base + k))?;
            }
            phases.time("finish", || lane.ok(d, &strs(&finish(f))))?;
            phases.time("finish checks", || rt.block_on(check_on_file_system(d, c, &new, 0)))?;
            Ok(kill)
        };
        let outcome = caught(case);
        if outcome.is_err() {
            *slot = None;
        }
        outcome
    });
    for f in slots.into_iter().filter_map(|s| s.into_inner().unwrap()) {
        lanes[0].ok(&f.d, &destroy_args()).unwrap();
        check_empty(&f.d, &lanes[0].clients, &rt).unwrap();
    }
    println!(
        "crash/files-restore: the restore makes {restore_total} transitions, --abort {abort_total}, --finish {finish_total}"
    );
}

/// The DB instance the `db` record names.
fn d_db(d: &Deployment) -> String {
    recorded(d, "db", "id")
}

/// The roll-and-replace cases' config: the group as in the roll cases, and either the first
/// instance type on 10.11 with the dashboard on 8224 or the second on 11.4 on 8443 (what the
/// instances boot with, the engine's major version and the dashboard port change at once:
/// `up` rolls the fleet and replaces the parameter group and the target group).
fn roll_replace_config(d: &Deployment, upgraded: bool) -> PathBuf {
    let (min, max, desired) = SCALING;
    let (instance_type, engine, port) = if upgraded {
        ("t3.large", "11.4", 8443)
    } else {
        ("t3.medium", "10.11", 8224)
    };
    crate::common::config(
        d,
        &format!(
            "instance_type = \"{instance_type}\"\ndashboard_port = {port}\n\n[database]\ndeletion_protection = false\nengine_version = \"{engine}\"\n\n[scaling]\nmin = {min}\nmax = {max}\ndesired = {desired}\n"
        ),
    )
}

/// Issue 18: one `up` that rolls the instances (a new instance type) and replaces the
/// parameter group (a major engine upgrade) killed at each of its transitions, then `up`
/// again with the same config: the end is both `check_rolled`'s (one fleet of the new launch
/// template version, no duplicate instance, no extra version, the roll's record cleared, a
/// healthy target each) and `check_major_upgraded`'s (the instance on 11.4 with the one group
/// of the new family, no orphan group in the census, `plan` with nothing to do). Each case
/// is a new deployment (a major upgrade has no way back), destroyed after its checks.
#[test]
fn up_rolling_and_replacing_killed_at_each_transition_converges_on_the_next_run() {
    let rt = runtime();
    // The roll's checks (upgrade.rs) read the suite's endpoint: the lanes share it.
    let lanes = Lane::on_suite_endpoint(threads(), &rt);

    // A clean rolling and replacing `up`: how many transitions, and the blueprint after it.
    let reference = Deployment::new("crrr");
    lanes[0]
        .ok(&reference, &strs(&up_with(&roll_replace_config(&reference, false))))
        .unwrap();
    let versions_before = rt.block_on(versions(&reference)).len();
    let upgraded = roll_replace_config(&reference, true);
    let total = transitions_of(&lanes[0], &reference, &upgraded);
    let blueprint = recorded_keys(&reference);
    rt.block_on(check_rolled(
        &lanes[0],
        &reference,
        &upgraded,
        "t3.large",
        versions_before,
    ))
    .unwrap();
    check_major_upgraded(&lanes[0], &reference, &rt, &upgraded, &blueprint).unwrap();
    rt.block_on(check_port_moved(&lanes[0], &reference)).unwrap();
    assert!(
        total >= 18,
        "the replace (at least 8 writes) and the roll (at least 10): got {total}"
    );
    lanes[0].ok(&reference, &destroy_args()).unwrap();

    let phases = Phases::default();
    // Where each kill left the run: the roll's recorded step, or the replace's retiring
    // record (the rerun had to finish it), or neither.
    let left: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    let ks = chosen(total, exhaustive());
    run_cases("roll-replace", total, &lanes, &ks, &phases, |i, lane, k| {
        let d = Deployment::new(&format!("cq{i}k{k}"));
        phases.time("up on 10.11", || {
            lane.ok(&d, &strs(&up_with(&roll_replace_config(&d, false))))
        })?;
        let cfg = roll_replace_config(&d, true);
        let args = up_with(&cfg);
        let versions_before = rt.block_on(versions(&d)).len();
        let base = serial(&d);
        let kill = phases.time("killed up", || kill_at(lane, &d, &strs(&args), base + k))?;
        let st = d.state();
        let mut at = Vec::new();
        if let Some(step) = st["upgrade"]["step"]["name"].as_str() {
            at.push(format!("roll {step}"));
        }
        if st["resources"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.contains("/retiring-"))
        {
            at.push("retiring group".to_string());
        }
        if at.is_empty() {
            at.push("neither".to_string());
        }
        *left.lock().unwrap().entry(at.join(" + ")).or_default() += 1;
        phases.time("rerun", || lane.ok(&d, &strs(&args)))?;
        phases.time("checks", || {
            rt.block_on(check_rolled(lane, &d, &cfg, "t3.large", versions_before))?;
            check_major_upgraded(lane, &d, &rt, &cfg, &blueprint)?;
            rt.block_on(check_port_moved(lane, &d))
        })?;
        phases.time("destroy", || lane.ok(&d, &destroy_args()))?;
        Ok(kill)
    });
    let left = left.into_inner().unwrap();
    println!("crash/roll-replace: the kills left (cases): {left:?}");
    if exhaustive() {
        assert!(
            left.keys().any(|k| k.contains("retiring group")),
            "no kill left the old group retiring: {left:?}"
        );
        for step in ["started", "launching", "draining", "done"] {
            assert!(
                left.keys().any(|k| k.contains(&format!("roll {step}"))),
                "no kill left the roll at {step}: {left:?}"
            );
        }
    }
}

/// After the roll-and-replace: the recorded target group is the one of port 8443 (named after
/// it), the only one of the deployment's names left; every listener forwards to it and the
/// Auto Scaling group is attached to it alone.
async fn check_port_moved(lane: &Lane, d: &Deployment) -> Result<(), String> {
    let st = d.state();
    let tg = crate::common::id(&st, "tg");
    let c = &lane.clients;
    let mut found = Vec::new();
    for name in [format!("{}-tg", d.name), format!("{}-tg-8443", d.name)] {
        if let Ok(out) = c.elb.describe_target_groups().names(&name).send().await {
            found.extend(
                out.target_groups()
                    .iter()
                    .map(|g| (g.target_group_arn().map(String::from), g.port())),
            );
        }
    }
    if found != [(Some(tg.clone()), Some(8443))] {
        return Err(format!("target groups {found:?}, not only {tg} on 8443"));
    }
    let listeners = c
        .elb
        .describe_listeners()
        .load_balancer_arn(crate::common::id(&st, "alb"))
        .send()
        .await
        .map_err(|e| format!("describing the listeners: {e:?}"))?;
    let forwards: Vec<Option<String>> = listeners
        .listeners()
        .iter()
        .flat_map(|l| l.default_actions())
        .map(|a| a.target_group_arn().map(String::from))
        .collect();
    if forwards.iter().any(|f| f.as_deref() != Some(tg.as_str())) {
        return Err(format!("the listeners forward to {forwards:?}, not {tg}"));
    }
    let groups = c
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(crate::common::id(&st, "asg"))
        .send()
        .await
        .map_err(|e| format!("describing the group: {e:?}"))?;
    let attached = groups.auto_scaling_groups()[0].target_group_arns().to_vec();
    if attached != [tg.clone()] {
        return Err(format!("the Auto Scaling group is attached to {attached:?}, not {tg}"));
    }
    Ok(())
}

/// Issue 18 with the state lost: an `up` killed mid-replace (both parameter groups exist),
/// then the state file removed and `destroy` run without it: the tag and name scan
/// (`resources/discover.rs`) finds the group of each family, not only the first name, and
/// nothing is left.
#[test]
fn destroy_without_the_state_after_a_replace_killed_midway_finds_both_groups() {
    let rt = runtime();
    let lane = &Lane::start(1, &rt)[0];
    let d = killed_mid_replace(lane, &rt, "crrl");
    d.remove_state();
    lane.ok(&d, &destroy_args()).unwrap();
    check_empty(&d, &lane.clients, &rt).unwrap();
}
