//! Crash at every boundary: `up` and `destroy` are SIGKILLed right after each state
//! transition k (each write of the state file increments `serial`), run again, and the end
//! state is checked from AWS's side: every blueprint resource exists exactly once and is
//! recorded, or (for destroy) nothing is left.
//!
//! By default every 5th transition plus the first and last 3 are tested;
//! `PI_DEPLOY_CRASH_EVERY=1` tests every transition. `PI_DEPLOY_CRASH_THREADS` (default 4)
//! deployments run at once. The figures are printed (run with `--nocapture` to see them)
//! and quoted in docs/RELIABILITY.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Stdio;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pi_deploy::aws::Clients;
use pi_deploy::core::spec::Kind;

use crate::census;
use crate::common::{Deployment, ami, clients, events, show};

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

/// The transitions to crash at, of `1..=total`: all of them, or every 5th plus the first and
/// last 3 (the edges are where the start-up and the final outputs are written).
fn chosen(total: u64, every: bool) -> Vec<u64> {
    (1..=total)
        .filter(|k| every || k % 5 == 0 || *k <= 3 || *k + 3 > total)
        .collect()
}

fn exhaustive() -> bool {
    std::env::var("PI_DEPLOY_CRASH_EVERY").is_ok_and(|v| v == "1")
}

fn threads() -> usize {
    std::env::var("PI_DEPLOY_CRASH_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4)
}

/// The state file's serial: None while there is no file; an unparseable file is an error,
/// because every write is atomic (a torn read would be a bug of the state file).
fn serial(path: &Path) -> Result<Option<u64>, String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("reading the state file: {e}")),
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("BUG: the state file did not parse mid-run ({e}): torn write"))?;
    v["serial"]
        .as_u64()
        .map(Some)
        .ok_or_else(|| "BUG: the state file has no serial".to_string())
}

/// Start the command, SIGKILL it as soon as the state file's serial reaches `k` (polled every
/// ~1 ms). Ok(true) when killed, Ok(false) when it exited successfully first.
fn kill_at(d: &Deployment, args: &[&str], k: u64) -> Result<bool, String> {
    let mut child = d
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        match serial(&d.state_path()) {
            Ok(Some(s)) if s >= k => {
                child.kill().unwrap();
                child.wait().unwrap();
                return Ok(true);
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
                Ok(false)
            } else {
                Err(format!("the run to be killed failed by itself: {status}"))
            };
        }
        if start.elapsed() > Duration::from_secs(180) {
            child.kill().ok();
            child.wait().ok();
            return Err(format!("serial never reached {k}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
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
    if d.state_path().exists() {
        return Err("the state file is still there".into());
    }
    Ok(())
}

fn run_ok(d: &Deployment, args: &[&str]) -> Result<(), String> {
    let out = d.run(args);
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{args:?} failed: {}\n{}", out.status, show(&out)))
    }
}

/// Run `case` for each k on a few threads; returns (how many were killed, failures).
fn run_cases(ks: &[u64], case: impl Fn(u64) -> Result<bool, String> + Sync) -> (usize, Vec<String>) {
    let next = AtomicUsize::new(0);
    let killed = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..threads() {
            s.spawn(|| {
                while let Some(&k) = ks.get(next.fetch_add(1, Ordering::SeqCst)) {
                    match case(k) {
                        Ok(true) => {
                            killed.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(false) => {}
                        Err(e) => failures.lock().unwrap().push(format!("k={k}: {e}")),
                    }
                }
            });
        }
    });
    (killed.into_inner(), failures.into_inner().unwrap())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn up_killed_at_each_transition_converges_on_the_next_run() {
    let rt = runtime();
    let c = rt.block_on(clients());
    let ami = ami('A');
    let up = up_args(&ami);
    let up: Vec<&str> = up.iter().map(String::as_str).collect();

    // A clean run: how many transitions, and which keys make the blueprint.
    let reference = Deployment::new("crref");
    reference.ok(&up);
    let total = reference.state()["serial"].as_u64().unwrap();
    let blueprint: BTreeSet<String> = reference.state()["resources"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    check_converged(&reference, &c, &rt, &blueprint).unwrap();
    reference.destroy();

    let ks = chosen(total, exhaustive());
    let started = Instant::now();
    let (killed, failures) = run_cases(&ks, |k| {
        let d = Deployment::new(&format!("cu{k}"));
        let was_killed = kill_at(&d, &up, k)?;
        run_ok(&d, &up)?;
        check_converged(&d, &c, &rt, &blueprint)?;
        run_ok(&d, &destroy_args())?;
        check_empty(&d, &c, &rt)?;
        Ok(was_killed)
    });
    println!(
        "crash/up: {total} transitions, {} tested ({killed} killed, the rest exited first), {} threads, {:.0} s",
        ks.len(),
        threads(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        ks.len(),
        failures.join("\n\n")
    );
}

#[test]
fn destroy_killed_at_each_transition_finishes_on_the_next_run() {
    let rt = runtime();
    let c = rt.block_on(clients());
    let ami = ami('A');
    let up = up_args(&ami);
    let up: Vec<&str> = up.iter().map(String::as_str).collect();
    let reference = Deployment::new("crdref");
    reference.ok(&up);
    let mut args = destroy_args();
    args.push("--json");
    // Each `deleting` and each `deleted` event follows exactly one state write.
    let ev = events(&reference.ok(&args));
    let resource_events = |status: &str| {
        ev.iter()
            .filter(|e| e["event"] == "resource" && e["status"] == status)
            .count() as u64
    };
    let total = resource_events("deleting") + resource_events("deleted");
    check_empty(&reference, &c, &rt).unwrap();

    let ks = chosen(total, exhaustive());
    let started = Instant::now();
    let (killed, failures) = run_cases(&ks, |k| {
        let d = Deployment::new(&format!("cd{k}"));
        run_ok(&d, &up)?;
        let base = d.state()["serial"].as_u64().unwrap();
        let was_killed = kill_at(&d, &destroy_args(), base + k)?;
        run_ok(&d, &destroy_args())?;
        check_empty(&d, &c, &rt)?;
        Ok(was_killed)
    });
    println!(
        "crash/destroy: {total} transitions, {} tested ({killed} killed, the rest exited first), {} threads, {:.0} s",
        ks.len(),
        threads(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        ks.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_sample_keeps_the_edges_and_every_fifth() {
    assert_eq!(chosen(12, false), vec![1, 2, 3, 5, 10, 11, 12]);
    assert_eq!(chosen(4, true), vec![1, 2, 3, 4]);
}
