//! Injected faults (built with `--features fault-injection`): with throttling and 503s on a
//! share of all requests, connection resets after a share of the successful creates,
//! intermediate states on the first reads, NotFound on the first reads by id of new EC2
//! resources, deletes refused while a just-deleted NAT gateway or DB still holds what they
//! delete, and IAM propagation errors on the first uses of a new role or profile,
//! `up`, a second `up`, an `upgrade` and `destroy` still succeed and reach exactly the end
//! state they reach without faults. See src/aws/fault.rs and docs/RELIABILITY.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::common::{Deployment, ami, clients, events, show};
use crate::crash::{check_converged, check_empty};

const FAULTS: &str = "throttle=0.1,5xx=0.05,reset=0.2,pending=2,notfound=1,inuse=1,iam=1,seed=42";

/// The binary under test: `PI_DEPLOY_FAULTS_BIN` overrides it for a shared target
/// directory, where a build without the feature may replace `target/debug/pi-deploy`.
fn binary() -> String {
    std::env::var("PI_DEPLOY_FAULTS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pi-deploy").to_string())
}

/// Run with faults on; returns the output and the faults injected, by kind.
fn with_faults(d: &Deployment, args: &[&str]) -> (Output, BTreeMap<String, u64>) {
    with_env(d, args, ("PI_DEPLOY_FAULTS", FAULTS))
}

/// Run with one injection variable set; returns the output and what was injected, by kind.
fn with_env(d: &Deployment, args: &[&str], (var, value): (&str, &str)) -> (Output, BTreeMap<String, u64>) {
    let counts = d.state_dir.path().join("fault-counts.json");
    let _ = std::fs::remove_file(&counts);
    let base = d.command(args);
    let mut c = Command::new(binary());
    c.args(base.get_args())
        .stdin(Stdio::null())
        .env(var, value)
        .env("PI_DEPLOY_FAULT_COUNTS", &counts);
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} with {var}={value} failed:\n{}",
        show(&out)
    );
    (out, read_counts(&counts))
}

fn read_counts(path: &Path) -> BTreeMap<String, u64> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn changed(out: &Output) -> usize {
    events(out)
        .iter()
        .filter(|e| {
            e["event"] == "resource" && matches!(e["status"].as_str(), Some("created" | "creating" | "adopted"))
        })
        .count()
}

fn destroy_args() -> [&'static str; 4] {
    [
        "destroy",
        "--yes",
        "--skip-final-snapshot",
        "--disable-deletion-protection",
    ]
}

#[test]
fn up_upgrade_and_destroy_reach_the_same_end_state_under_faults() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = rt.block_on(clients());
    let (a, b) = (ami('A'), ami('B'));
    let up = ["up", "--ami", a.as_str(), "--yes", "--json"];
    let upgrade = ["upgrade", "--ami", b.as_str(), "--yes", "--json"];

    // The blueprint's keys, from a run without faults.
    let reference = Deployment::new("fltref");
    reference.ok(&up);
    let blueprint: BTreeSet<String> = reference.state()["resources"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    reference.destroy();

    let d = Deployment::new("faults");
    let (_, first) = with_faults(&d, &up);
    check_converged(&d, &c, &rt, &blueprint).unwrap();

    let (again, second) = with_faults(&d, &up);
    assert_eq!(
        changed(&again),
        0,
        "a second `up` under faults changed something:\n{}",
        show(&again)
    );
    check_converged(&d, &c, &rt, &blueprint).unwrap();

    let (upgraded, during_upgrade) = with_faults(&d, &upgrade);
    let last = events(&upgraded).last().cloned().unwrap();
    assert!(last["ok"].as_bool().unwrap_or(false), "{}", show(&upgraded));
    check_converged(&d, &c, &rt, &blueprint).unwrap();
    let st = d.state();
    assert!(st.get("upgrade").is_none(), "the upgrade record is cleared");
    assert_eq!(st["resources"]["launch-template"]["outputs"]["ami"], b.as_str());

    let (_, during_destroy) = with_faults(&d, &destroy_args());
    check_empty(&d, &c, &rt).unwrap();

    let runs = [
        ("up", &first),
        ("second up", &second),
        ("upgrade", &during_upgrade),
        ("destroy", &during_destroy),
    ];
    let mut total: BTreeMap<String, u64> = BTreeMap::new();
    for (name, counts) in runs {
        println!("faults: {FAULTS}: {name}: injected {counts:?}");
        assert!(counts.values().sum::<u64>() > 0, "no fault was injected in {name}");
        for (k, n) in counts {
            *total.entry(k.clone()).or_default() += n;
        }
    }
    println!("faults: {FAULTS}: total injected {total:?}");
    for kind in ["throttle", "5xx", "reset", "pending", "notfound", "inuse", "iam"] {
        assert!(
            total.get(kind).copied().unwrap_or(0) > 0,
            "no `{kind}` fault was injected: {total:?}"
        );
    }
}

/// 1/500 of the latency model: the Multi-AZ database's 960 s take 1.9 s.
const LATENCY: f64 = 0.002;

fn elapsed_s(out: &Output) -> f64 {
    let last = events(out).last().cloned().unwrap();
    assert!(last["ok"].as_bool().unwrap_or(false), "{}", show(out));
    last["elapsed_ms"].as_f64().unwrap() / 1000.0
}

/// The latency mode (src/aws/fault/latency.rs): every create and delete of a kind with an
/// intermediate state on AWS shows it for its scaled model time, and the refusals AWS makes
/// meanwhile apply. `up` and `destroy` still converge, and each takes at least its longest
/// transition (the database's create; the group's and the database's deletes, one after the
/// other): the waits wait for what they wait for, however the reads are timed.
#[test]
fn up_and_destroy_converge_when_aws_takes_its_time() {
    use pi_deploy::core::latency::Transition;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = rt.block_on(clients());
    let a = ami('A');
    let factor = LATENCY.to_string();
    let d = Deployment::new("latency");
    let (up, during_up) = with_env(
        &d,
        &["up", "--ami", a.as_str(), "--yes", "--json"],
        ("PI_DEPLOY_LATENCY", &factor),
    );
    let blueprint: BTreeSet<String> = d.state()["resources"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(blueprint.len(), 59, "the default deployment: {blueprint:?}");
    check_converged(&d, &c, &rt, &blueprint).unwrap();
    // Usable early (the default): the Single-AZ create, then the conversion.
    let db = (Transition::DbCreate { multi_az: false }.timing().median_s + Transition::DbToMultiAz.timing().median_s)
        * LATENCY;
    assert!(
        elapsed_s(&up) >= db,
        "`up` took {} s, less than the database's {db} s",
        elapsed_s(&up)
    );

    let destroy = [&destroy_args()[..], &["--json"]].concat();
    let (destroyed, during_destroy) = with_env(&d, &destroy, ("PI_DEPLOY_LATENCY", &factor));
    check_empty(&d, &c, &rt).unwrap();
    let chain = (Transition::GroupDelete.timing().median_s
        + Transition::DbDelete { final_snapshot: false }.timing().median_s)
        * LATENCY;
    assert!(
        elapsed_s(&destroyed) >= chain,
        "`destroy` took {} s, less than the group's and the database's deletes ({chain} s)",
        elapsed_s(&destroyed)
    );
    println!("latency {factor}: up {:.2} s, injected {during_up:?}", elapsed_s(&up));
    println!(
        "latency {factor}: destroy {:.2} s, injected {during_destroy:?}",
        elapsed_s(&destroyed)
    );
    for (name, counts) in [("up", &during_up), ("destroy", &during_destroy)] {
        assert!(
            counts.get("pending").copied().unwrap_or(0) > 0,
            "{name} was shown no intermediate state: {counts:?}"
        );
    }
}

/// The latency mode at a fixed pace (`PI_DEPLOY_LATENCY=fixed:2`): every intermediate state
/// lasts 2 s whatever AWS's medians are, and the waits sleep at real speed, as against an
/// emulator (or a harness) that shows AWS-like states without AWS's timings. `up` and
/// `destroy` converge, and neither waits for the model's figures: `up` ends long before the
/// database's Single-AZ create would on AWS (300 s), the first of the two transitions it
/// waits for one after the other (the waits used to read first at the model's median).
#[test]
fn up_and_destroy_do_not_wait_for_the_model_when_the_states_end_sooner() {
    use pi_deploy::core::latency::Transition;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = rt.block_on(clients());
    let a = ami('A');
    let d = Deployment::new("fixedpace");
    let pace = ("PI_DEPLOY_LATENCY", "fixed:2");
    let (up, during_up) = with_env(&d, &["up", "--ami", a.as_str(), "--yes", "--json"], pace);
    let blueprint: BTreeSet<String> = d.state()["resources"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(blueprint.len(), 59, "the default deployment: {blueprint:?}");
    check_converged(&d, &c, &rt, &blueprint).unwrap();
    let model = Transition::DbCreate { multi_az: false }.timing().median_s;
    let took = elapsed_s(&up);
    // The Single-AZ create and the conversion, 2 s each, one after the other.
    assert!(took >= 4.0, "`up` took {took} s, less than the database's two states");
    assert!(
        took < model,
        "`up` took {took} s: it waited for the model's {model} s instead of reading the 2 s state"
    );
    let destroy = [&destroy_args()[..], &["--json"]].concat();
    let (destroyed, during_destroy) = with_env(&d, &destroy, pace);
    check_empty(&d, &c, &rt).unwrap();
    let took_destroy = elapsed_s(&destroyed);
    let group = Transition::GroupDelete.timing().median_s;
    assert!(
        took_destroy < group,
        "`destroy` took {took_destroy} s: it waited for the model's {group} s"
    );
    println!(
        "fixed:2: up {took:.2} s, injected {during_up:?}; destroy {took_destroy:.2} s, injected {during_destroy:?}"
    );
    for (name, counts) in [("up", &during_up), ("destroy", &during_destroy)] {
        assert!(
            counts.get("pending").copied().unwrap_or(0) > 0,
            "{name} was shown no intermediate state: {counts:?}"
        );
    }
}
