//! What an outside probe found (issue 17), each as a test against the emulator:
//! - everything a read call can check is refused with exit 2, naming the field and the fix,
//!   before anything is created (the names AWS reserves are in hostile_input.rs);
//! - a state write that fails stops the run: nothing is created after it, no temporary
//!   file is left, and the next run converges;
//! - SIGTERM drains like Ctrl-C (the lock released, every record settled), a second one
//!   exits at once, and the next run converges;
//! - a deployment deleted behind pi-deploy's back: `status` reports every resource missing
//!   instead of aborting, and `up` does not wait on a NotFound of a recorded id;
//! - an unreachable endpoint fails within seconds, naming the endpoint, with the right hint.

use std::collections::BTreeSet;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::census;
use crate::common::{Deployment, ami, clients, events, hosted_zone, is_read_only, show};
use crate::crash::check_converged;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn keys(state: &serde_json::Value) -> BTreeSet<String> {
    state["resources"].as_object().unwrap().keys().cloned().collect()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn write_config(d: &Deployment, name: &str, toml: &str) -> String {
    let path = d.state_dir.path().join(name);
    std::fs::write(&path, toml).unwrap();
    path.to_str().unwrap().to_string()
}

/// (case, config, --ami, extra flags, the field the error must name, text it must hold)
type Case<'a> = (&'a str, String, &'a str, Vec<&'a str>, &'a str, &'a str);

#[tokio::test(flavor = "multi_thread")]
async fn what_a_read_call_can_check_is_refused_before_anything_is_created() {
    let c = clients().await;
    let d = Deployment::new("pflt");
    let zone_name = format!("{}.example.com", d.name);
    let zone_id = hosted_zone(&c, &d, &zone_name).await;
    let missing_cert = "arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-0000-0000-000000000000";
    let good_ami = ami('A');
    // (case, config, --ami, extra flags, the field the error must name, text it must hold)
    let cases: Vec<Case> = vec![
        (
            "AMI that does not exist in the region",
            String::new(),
            "ami-0123456789abcdef0",
            vec![],
            "ami",
            "no AMI ami-0123456789abcdef0 exists",
        ),
        (
            "instance type offered nowhere",
            "instance_type = \"zz9.huge\"".into(),
            &good_ami,
            vec![],
            "instance_type",
            "is not offered",
        ),
        (
            "instance type of another architecture than the AMI",
            "instance_type = \"t4g.medium\"".into(),
            &good_ami,
            vec![],
            "instance_type",
            "x86_64",
        ),
        (
            "zone that does not exist",
            "availability_zones = [\"eu-west-1a\", \"eu-west-1z\"]".into(),
            &good_ami,
            vec![],
            "availability_zones",
            "eu-west-1z",
        ),
        (
            "key pair that does not exist",
            "key_pair = \"no-such-key-pair\"".into(),
            &good_ami,
            vec![],
            "key_pair",
            "no-such-key-pair",
        ),
        (
            "hosted zone that does not exist",
            "hosted_zone_id = \"Z0000000000000000000\"\ndomain_name = \"dash.example.com\"".into(),
            &good_ami,
            vec![],
            "hosted_zone_id",
            "Z0000000000000000000",
        ),
        (
            "domain outside the hosted zone",
            format!("hosted_zone_id = \"{zone_id}\"\ndomain_name = \"dash.example.org\""),
            &good_ami,
            vec![],
            "domain_name",
            "is not in hosted zone",
        ),
        (
            "TLS policy that does not exist",
            "tls_policy = \"ELBSecurityPolicy-TLS13-1-2-2099-01\"".into(),
            &good_ami,
            vec!["--certificate-arn", missing_cert],
            "tls_policy",
            "ELBSecurityPolicy-TLS13-1-2-2099-01",
        ),
    ];
    for (i, (name, toml, ami, extra, field, says)) in cases.iter().enumerate() {
        let cfg = write_config(&d, &format!("case{i}.toml"), toml);
        for command in ["up", "plan"] {
            let calls = d.state_dir.path().join(format!("calls-{command}-{i}.json"));
            let mut args = vec![command, "--ami", ami, "--config", &cfg];
            if command == "up" {
                args.push("--yes");
            }
            args.extend(extra.iter().copied());
            let out = d.command(&args).env("PI_DEPLOY_CALL_COUNTS", &calls).output().unwrap();
            let err = stderr(&out);
            assert_eq!(
                out.status.code(),
                Some(2),
                "{name} / {command}: expected exit 2\n{}",
                show(&out)
            );
            assert!(
                err.contains(&format!("error: {field}:")) && err.contains(says) && err.contains("fix:"),
                "{name} / {command}: the error does not name `{field}` with `{says}` and a fix:\n{err}"
            );
            let ops: Vec<String> = crate::common::call_counts(&calls).into_keys().collect();
            assert!(!ops.is_empty(), "{name}: the checks made no AWS call");
            // With an image that exists, EC2 is asked (dry run) whether it would launch it.
            assert_eq!(
                ops.iter().any(|o| o.ends_with("RunInstances.DryRun")),
                *ami == good_ami.as_str(),
                "{name} / {command}: the launch dry run: {ops:?}"
            );
            let mutating: Vec<&String> = ops.iter().filter(|o| !is_read_only(o)).collect();
            assert!(mutating.is_empty(), "{name} / {command}: mutating calls {mutating:?}");
            assert!(!d.state_exists(), "{name} / {command}: a state was written");
        }
    }
    assert!(census::everything(&c, &d.name).await.is_empty());
    c.route53.delete_hosted_zone().id(&zone_id).send().await.unwrap();
}

/// Where the crash tests kill at every transition, this fails the state write at one, as a
/// full disk would (the fault hook of the test build: src/state_file.rs).
#[cfg(feature = "fault-injection")]
#[test]
fn a_failed_state_write_stops_the_run_and_the_next_run_converges() {
    const FAIL_AT: u64 = 40;
    let rt = runtime();
    let c = rt.block_on(clients());
    // A local state whatever the suite's mode: the hook is the local file's (a full disk);
    // an S3 write that fails is the executor's same path (a failed save), unit-tested with
    // `core::executor` tests' failing store.
    let d = Deployment::with_state("wfail", false);
    let a = ami('A');
    let started = Instant::now();
    let out = d
        .command(&["up", "--ami", &a, "--yes", "--json"])
        .env("PI_DEPLOY_FAIL_STATE_WRITE", FAIL_AT.to_string())
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let ev = events(&out);
    let last = ev.last().unwrap();
    let error = last["error"].as_str().unwrap_or_default();
    let dir = d.state_dir.path().to_str().unwrap();
    assert!(
        error.contains("state file could not be written") && error.contains(dir) && error.contains("No space left"),
        "{error}"
    );
    assert!(stderr(&out).contains("free space"), "{}", show(&out));
    // Nothing started or made after the first failed write.
    let first_failure = ev
        .iter()
        .position(|e| e["event"] == "resource" && e["status"] == "failed")
        .expect("a failed resource event");
    let after: Vec<&serde_json::Value> = ev[first_failure..]
        .iter()
        .filter(|e| {
            e["event"] == "resource" && matches!(e["status"].as_str(), Some("creating" | "created" | "adopted"))
        })
        .collect();
    assert!(after.is_empty(), "work went on after the failed write: {after:?}");
    // The last good write is on disk, and no temporary file is left.
    let failed_state = d.state();
    assert_eq!(failed_state["serial"].as_u64(), Some(FAIL_AT - 1));
    let leftovers: Vec<String> = std::fs::read_dir(d.state_dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let found = rt.block_on(census::everything(&c, &d.name));

    let rerun = d.up(&[]);
    let blueprint = keys(&d.state());
    check_converged(&d, &c, &rt, &blueprint).unwrap_or_else(|e| panic!("{e}\n{}", show(&rerun)));
    // Everything the failed run made had its intent on disk.
    let recorded = keys(&failed_state);
    for (kind, ks) in &found {
        for k in ks.iter().filter(|k| blueprint.contains(*k)) {
            assert!(recorded.contains(k), "{kind} `{k}` was made without its intent on disk");
        }
    }
    eprintln!(
        "state write failed at write {FAIL_AT}: up exited 1 after {:.1} s with {} records on disk",
        took.as_secs_f64(),
        recorded.len()
    );
    d.destroy();
}

fn send(pid: u32, signal: i32) {
    // SAFETY: kill(2) on a child process id this test spawned and has not waited for.
    let rc = unsafe { libc::kill(pid as i32, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal})");
}

fn serial(d: &Deployment) -> u64 {
    d.state_bytes()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["serial"].as_u64())
        .unwrap_or(0)
}

/// How a run that received SIGTERM ended.
struct Stopped {
    out: Output,
    /// The run had finished before the signal could be sent.
    finished_first: bool,
    took_after_signal: Duration,
}

/// Start `up`, send SIGTERM once the state's serial reaches `at` (and again after `again`).
fn sigterm_at(d: &Deployment, at: u64, again: Option<Duration>) -> Stopped {
    let a = ami('A');
    let child = d
        .command(&["up", "--ami", &a, "--yes"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut child = child;
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return Stopped {
                out,
                finished_first: true,
                took_after_signal: Duration::ZERO,
            };
        }
        if serial(d) >= at {
            break;
        }
        assert!(Instant::now() < deadline, "serial {at} never reached");
        std::thread::sleep(Duration::from_millis(2));
    }
    send(pid, libc::SIGTERM);
    let signalled = Instant::now();
    if let Some(pause) = again {
        std::thread::sleep(pause);
        if child.try_wait().unwrap().is_none() {
            send(pid, libc::SIGTERM);
        }
    }
    let out = child.wait_with_output().unwrap();
    Stopped {
        out,
        finished_first: false,
        took_after_signal: signalled.elapsed(),
    }
}

#[test]
fn sigterm_drains_like_ctrl_c_and_the_next_run_converges() {
    let rt = runtime();
    let c = rt.block_on(clients());
    // Early (network tier), late (compute tier), and a second signal in the middle.
    let points: [(u64, Option<Duration>); 3] = [(4, None), (110, None), (60, Some(Duration::from_millis(300)))];
    for (at, again) in points {
        let d = Deployment::new("sigterm");
        let s = sigterm_at(&d, at, again);
        let err = stderr(&s.out);
        if s.finished_first {
            eprintln!("SIGTERM at serial {at}: the run finished first");
        } else if again.is_some() && s.out.status.code() == Some(128 + libc::SIGTERM) {
            assert!(err.contains("SIGTERM again: exiting now"), "{}", show(&s.out));
        } else {
            // Drained: exit 1, interrupted, every record settled, no "fix the cause".
            assert_eq!(
                s.out.status.code(),
                Some(1),
                "SIGTERM at serial {at}:\n{}",
                show(&s.out)
            );
            assert!(err.contains("interrupted"), "{}", show(&s.out));
            assert!(!err.contains("fix the cause"), "{}", show(&s.out));
            assert!(err.contains("run `pi-deploy up` again"), "{}", show(&s.out));
            let st = d.state();
            let unsettled: Vec<&String> = st["resources"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(_, r)| r["status"] != "ready")
                .map(|(k, _)| k)
                .collect();
            assert!(
                unsettled.is_empty(),
                "SIGTERM at serial {at}: not drained: {unsettled:?}"
            );
        }
        assert!(!d.lock_exists(), "SIGTERM at serial {at}: the lock is left");
        eprintln!(
            "SIGTERM at serial {at}{}: exit {:?} {:.1} s after the signal, {} records",
            if again.is_some() { " (twice)" } else { "" },
            s.out.status.code(),
            s.took_after_signal.as_secs_f64(),
            keys(&d.state()).len()
        );
        d.up(&[]);
        let blueprint = keys(&d.state());
        check_converged(&d, &c, &rt, &blueprint).unwrap_or_else(|e| panic!("SIGTERM at serial {at}: {e}"));
        d.destroy();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deployment_deleted_behind_its_back_is_reported_missing_and_waits_end_at_once() {
    let d = Deployment::new("vanish");
    let cfg = write_config(
        &d,
        "licence.toml",
        "[licence]\nenv = \"PI_DEPLOY_TEST_VANISH_LICENCE\"\n",
    );
    let a = ami('A');
    let with_licence = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--config", cfg.as_str()]);
        d.command(&all)
            .env("PI_DEPLOY_TEST_VANISH_LICENCE", "LICENCE-1234")
            .output()
            .unwrap()
    };
    let up = with_licence(&["up", "--ami", &a, "--yes"]);
    assert!(up.status.success(), "{}", show(&up));

    // With a licence set, an unchanged deployment plans no change (the licence is compared
    // by its keyed fingerprint, not rewritten every time).
    let plan = with_licence(&["plan", "--ami", &a, "--json"]);
    assert!(plan.status.success(), "{}", show(&plan));
    let counts = &serde_json::from_slice::<serde_json::Value>(&plan.stdout).unwrap()["counts"];
    assert_eq!(counts["update"].as_u64(), Some(0), "{}", show(&plan));
    assert_eq!(counts["create"].as_u64(), Some(0), "{}", show(&plan));

    // Delete everything behind its back: a destroy, then the state put back as it was.
    d.delete_behind_its_back(
        &["--config", cfg.as_str()],
        &[("PI_DEPLOY_TEST_VANISH_LICENCE", "LICENCE-1234")],
    );

    // `status` reports each recorded resource missing instead of aborting on the first.
    let started = Instant::now();
    let status = with_licence(&["status", "--json"]);
    let status_took = started.elapsed();
    assert_eq!(status.status.code(), Some(1), "{}", show(&status));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout)
        .unwrap_or_else(|e| panic!("status printed no report ({e}):\n{}", show(&status)));
    let rows = report["resources"].as_array().unwrap();
    assert_eq!(rows.len(), keys(&d.state()).len());
    let live = |row: &serde_json::Value| row["live"].as_str().unwrap_or_default().to_string();
    // Nothing, the dashboard check included (it owns no AWS object, but its load balancer
    // and target group are gone), is shown available.
    let available: Vec<String> = rows
        .iter()
        .filter(|r| live(r) == "available")
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect();
    assert!(
        available.is_empty(),
        "reported available after the delete: {available:?}"
    );
    let missing = rows.iter().filter(|r| live(r) == "missing").count();
    assert!(
        missing >= 25,
        "only {missing} of {} reported missing:\n{}",
        rows.len(),
        show(&status)
    );
    let problems = report["problems"].as_array().unwrap();
    assert!(
        problems.iter().any(|p| p.as_str().unwrap().ends_with(": missing")),
        "{problems:?}"
    );

    // `up` over records of a run interrupted before its converges (every record `created`):
    // a NotFound of a recorded id ends each wait at once, so `up` finds and creates again
    // instead of waiting out consistency budgets (60 s) and deadlines (300 s and more).
    let mut st = d.state();
    // Recorded two hours ago: a record written moments before a run may still be settling
    // in AWS (src/aws/consistency.rs), an old one may not.
    let long_ago = (chrono::Utc::now() - chrono::Duration::hours(2)).to_rfc3339();
    for r in st["resources"].as_object_mut().unwrap().values_mut() {
        r["status"] = "created".into();
        r["updated_at"] = long_ago.clone().into();
    }
    d.write_state(&serde_json::to_vec_pretty(&st).unwrap());
    let started = Instant::now();
    let again = with_licence(&["up", "--ami", &a, "--yes"]);
    let up_took = started.elapsed();
    let err = stderr(&again);
    assert!(
        !err.contains("not visible yet"),
        "a wait took a NotFound for lag:\n{err}"
    );
    assert!(
        !err.contains("gave up after"),
        "a retry took a NotFound for lag:\n{err}"
    );
    assert!(
        up_took < Duration::from_secs(90),
        "up took {up_took:?} over a vanished deployment:\n{}",
        show(&again)
    );
    if !again.status.success() {
        assert!(
            err.contains("does not exist") || err.contains("gone") || err.contains("NotFound"),
            "the failure does not say what is missing:\n{err}"
        );
    }
    eprintln!(
        "vanished deployment: status {:.1} s ({missing} of {} missing), up over `created` records {:.1} s, exit {:?}",
        status_took.as_secs_f64(),
        rows.len(),
        up_took.as_secs_f64(),
        again.status.code()
    );
    let cleanup = d
        .command(&[
            "destroy",
            "--yes",
            "--skip-final-snapshot",
            "--disable-deletion-protection",
            "--config",
            &cfg,
        ])
        .env("PI_DEPLOY_TEST_VANISH_LICENCE", "LICENCE-1234")
        .output()
        .unwrap();
    assert!(cleanup.status.success(), "{}", show(&cleanup));
}

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn an_unreachable_endpoint_fails_within_seconds_naming_it() {
    let d = Deployment::new("unreach");
    let port = closed_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    for verbose in [false, true] {
        let mut args = vec!["status"];
        if verbose {
            args.push("-vv");
        }
        let started = Instant::now();
        let out = d.command(&args).env("AWS_ENDPOINT_URL", &endpoint).output().unwrap();
        let took = started.elapsed();
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{}", show(&out));
        assert!(took < Duration::from_secs(15), "took {took:?}:\n{err}");
        assert!(err.contains(&format!("cannot connect to {endpoint}")), "{err}");
        assert!(err.contains("AWS_ENDPOINT_URL"), "{err}");
        assert!(!err.contains("credentials"), "{err}");
        // The SDK's Debug dump only with -vv.
        assert_eq!(err.contains("ConnectorError"), verbose, "{err}");
        eprintln!(
            "closed port{}: exit 1 after {:.1} s",
            if verbose { " (-vv)" } else { "" },
            took.as_secs_f64()
        );
    }

    // A region that does not exist: its endpoints have no DNS name.
    let started = Instant::now();
    let out = d
        .command(&["status", "--region", "mars-west-1"])
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(took < Duration::from_secs(15), "took {took:?}:\n{err}");
    assert!(
        err.contains("cannot connect to https://sts.mars-west-1.amazonaws.com"),
        "{err}"
    );
    assert!(err.contains("region `mars-west-1`"), "{err}");
    eprintln!("region mars-west-1: exit 1 after {:.1} s", took.as_secs_f64());
}
