//! Injected faults (built with `--features fault-injection`): with a share of all requests
//! failing as throttling or 503 before they are sent, `up` and `destroy` still succeed and
//! reach exactly the end state they reach without faults. See src/aws/fault.rs.

use std::collections::BTreeSet;
use std::process::{Command, Output, Stdio};

use crate::common::{Deployment, ami, clients, events, show};
use crate::crash::{check_converged, check_empty};

const FAULTS: &str = "throttle=0.1,5xx=0.05,seed=42";

/// The binary under test: `PI_DEPLOY_FAULTS_BIN` overrides it for a shared target
/// directory, where a build without the feature may replace `target/debug/pi-deploy`.
fn binary() -> String {
    std::env::var("PI_DEPLOY_FAULTS_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_pi-deploy").to_string())
}

fn with_faults(d: &Deployment, args: &[&str]) -> Output {
    let base = d.command(args);
    let mut c = Command::new(binary());
    c.args(base.get_args())
        .stdin(Stdio::null())
        .env("PI_DEPLOY_FAULTS", FAULTS);
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    let out = c.output().unwrap();
    assert!(out.status.success(), "{args:?} with faults failed:\n{}", show(&out));
    out
}

fn injected(out: &Output) -> usize {
    String::from_utf8_lossy(&out.stderr).matches("injected fault:").count()
}

#[test]
fn up_and_destroy_reach_the_same_end_state_under_throttling_and_5xx() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let c = rt.block_on(clients());
    let ami = ami('A');
    let up = ["up", "--ami", ami.as_str(), "--yes", "--json"];

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
    let first = with_faults(&d, &up);
    check_converged(&d, &c, &rt, &blueprint).unwrap();
    let again = with_faults(&d, &up);
    let ev = events(&again);
    let created = ev
        .iter()
        .filter(|e| {
            e["event"] == "resource" && matches!(e["status"].as_str(), Some("created" | "creating" | "adopted"))
        })
        .count();
    assert_eq!(
        created,
        0,
        "a second `up` under faults changed something:\n{}",
        show(&again)
    );
    check_converged(&d, &c, &rt, &blueprint).unwrap();
    let gone = with_faults(
        &d,
        &[
            "destroy",
            "--yes",
            "--skip-final-snapshot",
            "--disable-deletion-protection",
        ],
    );
    check_empty(&d, &c, &rt).unwrap();

    let faults = [injected(&first), injected(&again), injected(&gone)];
    println!("faults: {FAULTS}: injected {faults:?} faults in up, second up, destroy");
    assert!(faults.iter().all(|n| *n > 0), "no fault was injected: {faults:?}");
}
