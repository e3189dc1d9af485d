//! The state in S3 (`--state s3://BUCKET/PREFIX`), on the emulator, whatever the suite's
//! mode: two runs started at once from two working directories (one runs, the other is
//! refused naming the holder; the deployment ends whole); a run killed with SIGKILL (its
//! lock is reported stale, `force-unlock` clears it, `up` converges); a state changed
//! behind a run's back (the run stops, exit 3, with no AWS change after it noticed); push and
//! pull byte for byte, history and earlier versions; `state init`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::census;
use crate::common::{
    self, Deployment, ami, get_object, get_object_tagged, pi_deploy, put_object_if_match, show, state_bucket,
};
use crate::crash::check_converged;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn up_args(ami: &str) -> Vec<&str> {
    vec!["up", "--ami", ami, "--yes"]
}

fn serial_of(bytes: &[u8]) -> Option<u64> {
    serde_json::from_slice::<serde_json::Value>(bytes).ok()?["serial"].as_u64()
}

/// For a run this test acts on mid-way: AWS's waits at 1/100 (the database's alone is
/// seconds), so the run is still going well after the serial the test waits for, however
/// loaded the machine (at moto's speed a whole `up` can end within one poll of it).
/// Without the `fault-injection` feature the variable is not read.
const SLOW: (&str, &str) = ("PI_DEPLOY_LATENCY", "0.01");

/// Poll the state object until its serial reaches `k`; `None` if the run ended first.
fn wait_for_serial(d: &Deployment, child: &mut Child, k: u64) -> Option<Vec<u8>> {
    let start = Instant::now();
    loop {
        if let Some(bytes) = d.state_bytes()
            && serial_of(&bytes).is_some_and(|s| s >= k)
        {
            return Some(bytes);
        }
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        assert!(start.elapsed() < Duration::from_secs(240), "serial {k} never reached");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The state's keys, and a census check that AWS holds each tagged resource exactly once.
fn converged(d: &Deployment) {
    let rt = rt();
    let c = rt.block_on(common::clients());
    let st = d.state();
    let keys: BTreeSet<String> = st["resources"].as_object().unwrap().keys().cloned().collect();
    assert!(keys.len() >= 40, "a whole deployment: {keys:?}");
    check_converged(d, &c, &rt, &keys).unwrap();
}

#[test]
fn two_ups_of_one_deployment_started_at_once_one_runs_the_other_is_refused() {
    let d = Deployment::with_state("twin", true);
    let ami = ami('A');
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let children: Vec<Child> = dirs
        .iter()
        .map(|dir| {
            d.command(&up_args(&ami))
                .current_dir(dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let pids: Vec<u32> = children.iter().map(Child::id).collect();
    let outs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let codes: Vec<Option<i32>> = outs.iter().map(|o| o.status.code()).collect();
    let winner = codes.iter().position(|c| *c == Some(0));
    let loser = codes.iter().position(|c| *c == Some(3));
    let (Some(w), Some(l)) = (winner, loser) else {
        panic!(
            "expected one success and one refusal, got {codes:?}\n{}\n{}",
            show(&outs[0]),
            show(&outs[1])
        )
    };
    let refusal = stderr(&outs[l]);
    for part in [
        format!("deployment `{}` is locked by `up`", d.name),
        format!("pid {}", pids[w]),
        "lock id".to_string(),
        " ago".to_string(),
        "hint:".to_string(),
    ] {
        assert!(refusal.contains(&part), "{part}: {refusal}");
    }
    converged(&d);
    assert!(
        get_object(&d.endpoint(), state_bucket(), &d.lock_key()).is_none(),
        "the winner released its lock"
    );
    // Every version ever written is of one lineage: the loser never wrote.
    let lineages: BTreeSet<String> = common::object_versions(&d.endpoint(), state_bucket(), &d.state_key())
        .into_iter()
        .filter_map(|(_, b)| b)
        .map(|b| serde_json::from_slice::<serde_json::Value>(&b).unwrap()["lineage"].to_string())
        .collect();
    assert_eq!(lineages.len(), 1, "{lineages:?}");
    d.destroy();
    assert!(!d.state_exists());
}

#[test]
fn a_killed_holder_leaves_a_stale_lock_that_force_unlock_clears_and_up_converges() {
    let d = Deployment::with_state("killed", true);
    let ami = ami('A');
    let mut child = d
        .command(&up_args(&ami))
        .env(SLOW.0, SLOW.1)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_serial(&d, &mut child, 30).expect("the run got to transition 30");
    child.kill().unwrap();
    child.wait().unwrap();

    let lock = get_object(&d.endpoint(), state_bucket(), &d.lock_key()).expect("a killed run's lock stays");
    let lock: serde_json::Value = serde_json::from_slice(&lock).unwrap();
    assert_eq!(lock["pid"].as_u64(), Some(u64::from(child.id())));
    let id = lock["id"].as_str().unwrap().to_string();
    let before = d.state_bytes().unwrap();

    let refused = d.run(&up_args(&ami));
    assert_eq!(refused.status.code(), Some(3), "{}", show(&refused));
    let text = stderr(&refused);
    for part in [
        "no longer exists on this machine",
        "looks stale",
        id.as_str(),
        &format!("pi-deploy force-unlock {id} --deployment {}", d.name),
    ] {
        assert!(text.contains(part), "{part}: {text}");
    }
    assert_eq!(d.state_bytes().unwrap(), before, "a refused run writes nothing");

    let wrong = d.run(&["force-unlock", "not-the-id"]);
    assert_eq!(wrong.status.code(), Some(3), "{}", show(&wrong));
    assert!(get_object(&d.endpoint(), state_bucket(), &d.lock_key()).is_some());
    let unlocked = d.ok(&["force-unlock", &id, "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&unlocked.stdout).unwrap();
    assert_eq!(report["removed"], true, "{report}");
    assert_eq!(report["lock"]["id"], id.as_str());
    assert!(get_object(&d.endpoint(), state_bucket(), &d.lock_key()).is_none());

    d.up(&[]);
    converged(&d);

    // A real state pulled back is the object, byte for byte.
    let out = d.state_dir.path().join("pulled.json");
    d.ok(&["state", "pull", "--out", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), d.state_bytes().unwrap());
    d.destroy();
}

/// SIGTERM twice, 10 ms apart, as soon as the run holds its lock: the second signal (or a
/// first one that came before anything could drain) exits at once, skipping destructors;
/// the S3 lock is released all the same, so the next run needs no `force-unlock`.
#[test]
fn a_run_that_exits_at_once_on_a_signal_releases_its_s3_lock() {
    let d = Deployment::with_state("sigexit", true);
    let ami = ami('A');
    let mut child = d
        .command(&up_args(&ami))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while get_object(&d.endpoint(), state_bucket(), &d.lock_key()).is_none() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before it held its lock"
        );
        assert!(start.elapsed() < Duration::from_secs(60), "no lock taken");
        std::thread::sleep(Duration::from_millis(2));
    }
    let pid = child.id() as i32;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    std::thread::sleep(Duration::from_millis(10));
    if child.try_wait().unwrap().is_none() {
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(128 + libc::SIGTERM),
        "an immediate exit: {}",
        show(&out)
    );
    assert!(!stderr(&out).contains("was not released"), "{}", show(&out));
    assert!(
        get_object(&d.endpoint(), state_bucket(), &d.lock_key()).is_none(),
        "the lock is released: {}",
        show(&out)
    );
    d.up(&[]);
    converged(&d);
    d.destroy();
}

#[test]
fn a_state_changed_behind_a_runs_back_stops_it_with_no_aws_change_after() {
    let d = Deployment::with_state("behind", true);
    let ami = ami('A');
    let mut child = d
        .command(&up_args(&ami))
        .env(SLOW.0, SLOW.1)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_serial(&d, &mut child, 20).expect("the run got to transition 20");
    // Someone else writes the state (a run let in by a force-unlock, a restore by hand),
    // starting from the run's latest write: the overwrite is conditional on the version it
    // edited, so every intent the run recorded is in `theirs` (which makes the census check
    // below exact) and the run's next write is the one that finds the change.
    let (theirs, ours_then) = loop {
        let (seen, etag) = get_object_tagged(&d.endpoint(), state_bucket(), &d.state_key()).unwrap();
        let mut theirs: serde_json::Value = serde_json::from_slice(&seen).unwrap();
        let ours_then = theirs["serial"].as_u64().unwrap();
        theirs["serial"] = (ours_then + 1000).into();
        theirs["settings"]["edited_by"] = "someone else".into();
        let theirs = serde_json::to_vec_pretty(&theirs).unwrap();
        if put_object_if_match(&d.endpoint(), state_bucket(), &d.state_key(), &theirs, &etag) {
            break (theirs, ours_then);
        }
    };

    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let text = stderr(&out);
    assert!(text.contains("changed behind this run's back"), "{text}");
    assert!(text.contains(&format!("serial {}", ours_then + 1000)), "{text}");
    assert!(
        text.contains("not sent") || text.contains("no AWS change was attempted"),
        "{text}"
    );
    assert_eq!(
        d.state_bytes().unwrap(),
        theirs,
        "the other writer's state is left as it is"
    );

    // Nothing exists that the state does not record: every create needs its intent written
    // first, and no write succeeded after the change. (The census names some kinds by
    // derived name, so the comparison is by count per kind.)
    let mut recorded: BTreeMap<String, usize> = BTreeMap::new();
    let doc: serde_json::Value = serde_json::from_slice(&theirs).unwrap();
    for r in doc["resources"].as_object().unwrap().values() {
        // The census names kinds as `Kind::as_str` does ("efs-file-system"), the state as
        // serde does ("file-system").
        let kind: pi_deploy::core::spec::Kind = serde_json::from_value(r["kind"].clone()).unwrap();
        *recorded.entry(kind.as_str().to_string()).or_default() += 1;
    }
    let rt = rt();
    let c = rt.block_on(common::clients());
    let found = rt.block_on(census::everything(&c, &d.name));
    assert!(!found.is_empty(), "the run had created something before the change");
    for (kind, keys) in &found {
        assert!(
            keys.len() <= recorded.get(*kind).copied().unwrap_or(0),
            "{kind}: AWS has {keys:?}, the state records {:?}",
            recorded.get(*kind)
        );
    }
    assert!(
        get_object(&d.endpoint(), state_bucket(), &d.lock_key()).is_none(),
        "the stopped run released its lock"
    );

    // The next run starts from the state as it now is and finishes the deployment.
    d.up(&[]);
    assert_eq!(d.state()["settings"]["edited_by"], "someone else");
    converged(&d);
    d.destroy();
}

/// A valid state document of `d`, written compactly (pi-deploy writes it pretty), so a
/// byte-for-byte copy is told apart from a re-serialisation.
fn document(d: &Deployment, lineage: &str, serial: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "format_version": 1,
        "lineage": lineage,
        "serial": serial,
        "deployment": d.name,
        "region": "eu-west-1",
        "account_id": "123456789012",
        "partition": "aws",
        "settings": {"az_a": "eu-west-1a", "az_b": "eu-west-1b"},
        "resources": {},
        "outputs": {}
    }))
    .unwrap()
}

const LINEAGE: &str = "1d4c0e4e-5b7a-4b53-8f0c-3f6a2d9e7b10";
const OTHER: &str = "9a1e2f3b-0c4d-4e5f-8a6b-7c8d9e0f1a2b";

#[test]
fn push_and_pull_move_a_state_byte_for_byte_and_keep_its_history() {
    let d = Deployment::with_state("pushpull", true);
    let local = tempfile::tempdir().unwrap();
    let local_dir = local.path().to_str().unwrap();
    let local_file = local.path().join(format!("{}.json", d.name));
    let v5 = document(&d, LINEAGE, 5);
    std::fs::write(&local_file, &v5).unwrap();

    d.ok(&["state", "push", "--state-dir", local_dir]);
    assert_eq!(d.state_bytes().unwrap(), v5);
    // Not newer than what S3 holds: refused, unless forced.
    let again = d.run(&["state", "push", "--state-dir", local_dir]);
    assert_eq!(again.status.code(), Some(3), "{}", show(&again));
    assert!(stderr(&again).contains("--force"), "{}", show(&again));
    let v7 = document(&d, LINEAGE, 7);
    std::fs::write(&local_file, &v7).unwrap();
    d.ok(&["state", "push", "--state-dir", local_dir, "--json"]);
    assert_eq!(d.state_bytes().unwrap(), v7);

    // Another lineage is never pushed over the state, nor pulled over a local one.
    let foreign = tempfile::tempdir().unwrap();
    std::fs::write(foreign.path().join(format!("{}.json", d.name)), document(&d, OTHER, 99)).unwrap();
    let refused = d.run(&["state", "push", "--state-dir", foreign.path().to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(3), "{}", show(&refused));
    assert!(stderr(&refused).contains("another lineage"), "{}", show(&refused));
    assert_eq!(d.state_bytes().unwrap(), v7, "untouched");
    let refused = d.run(&["state", "pull", "--state-dir", foreign.path().to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(3), "{}", show(&refused));
    assert_eq!(
        std::fs::read(foreign.path().join(format!("{}.json", d.name))).unwrap(),
        document(&d, OTHER, 99)
    );
    // Nor a state of another deployment.
    let elsewhere = tempfile::tempdir().unwrap();
    let mut other_dep: serde_json::Value = serde_json::from_slice(&v7).unwrap();
    other_dep["deployment"] = "someone-else".into();
    std::fs::write(
        elsewhere.path().join(format!("{}.json", d.name)),
        serde_json::to_vec(&other_dep).unwrap(),
    )
    .unwrap();
    let refused = d.run(&["state", "push", "--state-dir", elsewhere.path().to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(3), "{}", show(&refused));

    // Pull: into an empty directory, to a file, to stdout; all the same bytes.
    let fresh = tempfile::tempdir().unwrap();
    d.ok(&["state", "pull", "--state-dir", fresh.path().to_str().unwrap()]);
    assert_eq!(
        std::fs::read(fresh.path().join(format!("{}.json", d.name))).unwrap(),
        v7
    );
    let file = fresh.path().join("copy.json");
    d.ok(&["state", "pull", "--out", file.to_str().unwrap()]);
    assert_eq!(std::fs::read(&file).unwrap(), v7);
    assert_eq!(d.ok(&["state", "pull", "--out", "-"]).stdout, v7);

    // History: both pushes, newest first, with their serials; an earlier version comes back
    // byte for byte, and goes back to S3 with push --force.
    let history: serde_json::Value = serde_json::from_slice(&d.ok(&["state", "history", "--json"]).stdout).unwrap();
    let versions = history.as_array().unwrap();
    let serials: Vec<u64> = versions.iter().filter_map(|v| v["serial"].as_u64()).collect();
    assert_eq!(serials, [7, 5], "{history}");
    assert_eq!(versions[0]["latest"], true);
    let first = versions[1]["version_id"].as_str().unwrap();
    let old = fresh.path().join("old.json");
    d.ok(&["state", "pull", "--version", first, "--out", old.to_str().unwrap()]);
    assert_eq!(std::fs::read(&old).unwrap(), v5);
    let refused = d.run(&[
        "state",
        "pull",
        "--version",
        first,
        "--state-dir",
        fresh.path().to_str().unwrap(),
    ]);
    assert_eq!(
        refused.status.code(),
        Some(3),
        "an older serial over a newer local one needs --force"
    );
    d.ok(&[
        "state",
        "pull",
        "--version",
        first,
        "--state-dir",
        fresh.path().to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(
        std::fs::read(fresh.path().join(format!("{}.json", d.name))).unwrap(),
        v5
    );
    d.ok(&[
        "state",
        "push",
        "--state-dir",
        fresh.path().to_str().unwrap(),
        "--force",
    ]);
    assert_eq!(d.state_bytes().unwrap(), v5);
    let text = String::from_utf8(d.ok(&["state", "history"]).stdout).unwrap();
    assert!(text.contains("3 versions") && text.contains("(current)"), "{text}");
    // No lock left behind by any of them.
    assert!(get_object(&d.endpoint(), state_bucket(), &d.lock_key()).is_none());
}

#[test]
fn state_init_creates_a_safe_bucket_and_names_what_an_existing_one_lacks() {
    let bucket = format!("pi-init-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let url = format!("s3://{bucket}/team");
    let out = pi_deploy(&["state", "init", "--state", &url]).output().unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("created s3://{bucket}")));
    let s3 = common::s3_at(&common::endpoint());
    common::block(async {
        let v = s3.get_bucket_versioning().bucket(&bucket).send().await.unwrap();
        assert_eq!(v.status().map(|s| s.as_str()), Some("Enabled"));
        let e = s3.get_bucket_encryption().bucket(&bucket).send().await.unwrap();
        let rule = &e.server_side_encryption_configuration().unwrap().rules()[0];
        assert_eq!(
            rule.apply_server_side_encryption_by_default()
                .unwrap()
                .sse_algorithm()
                .as_str(),
            "AES256"
        );
        let p = s3.get_public_access_block().bucket(&bucket).send().await.unwrap();
        let p = p.public_access_block_configuration().unwrap();
        assert_eq!(
            (
                p.block_public_acls(),
                p.ignore_public_acls(),
                p.block_public_policy(),
                p.restrict_public_buckets()
            ),
            (Some(true), Some(true), Some(true), Some(true))
        );
        let policy = s3.get_bucket_policy().bucket(&bucket).send().await.unwrap();
        assert!(pi_deploy::resources::inspect::is_tls_only(policy.policy().unwrap()));
    });
    // Again: checked, nothing missing.
    let out = pi_deploy(&["state", "init", "--state", &url, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["created"].as_bool(), report["missing"].as_array().map(Vec::len)),
        (Some(false), Some(0))
    );

    // A plain bucket: each missing setting named with its fix, exit 1, nothing changed.
    let plain = format!("pi-plain-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    common::create_bucket(&common::endpoint(), &plain, false);
    let out = pi_deploy(&["state", "init", "--state", &format!("s3://{plain}")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let text = stderr(&out);
    for gap in ["versioning", "TLS-only bucket policy", "Block Public Access"] {
        assert!(text.contains(gap), "{gap}: {text}");
    }
    assert!(text.contains("aws s3api put-bucket-versioning"), "{text}");
    common::block(async {
        let v = s3.get_bucket_versioning().bucket(&plain).send().await.unwrap();
        assert_eq!(v.status(), None, "an existing bucket is not changed");
    });
    // A local location is bad input for these commands.
    let out = pi_deploy(&["state", "history", "--state", "state"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
}

#[test]
fn a_missing_state_bucket_is_named_with_the_command_that_creates_it() {
    let d = Deployment::with_state("nobucket", true);
    let ami = ami('A');
    let out = pi_deploy(&[
        "up",
        "--ami",
        &ami,
        "--yes",
        "--deployment",
        &d.name,
        "--state",
        "s3://pi-no-such-bucket-here/x",
    ])
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    assert!(
        stderr(&out).contains("pi-deploy state init --state s3://pi-no-such-bucket-here/x"),
        "{}",
        show(&out)
    );
    let rt = rt();
    let c = rt.block_on(common::clients());
    assert!(
        rt.block_on(census::everything(&c, &d.name)).is_empty(),
        "nothing was created"
    );
}

/// The lock of a run is rewritten while the run holds it (its age shows it is alive), with
/// moto's real `If-Match` on its own ETag; a `force-unlock --yes` from another process is
/// noticed at the next refresh: the fence is tripped (no further AWS change) and the next
/// state write is refused. The refresh is shortened here through the store's `Timing`
/// (`pi-deploy` itself refreshes every 20 s).
#[test]
fn a_held_lock_is_refreshed_and_a_force_unlock_stops_its_holder_at_the_next_refresh() {
    use std::sync::Arc;

    use pi_deploy::aws::fence::Fence;
    use pi_deploy::core::state::{Identity, State};
    use pi_deploy::state_backend::{Connect, connect_s3, machine, this_process};
    use pi_deploy::state_file::StateFileError;
    use pi_deploy::state_s3::Timing;

    let d = Deployment::with_state("refresh", true);
    let endpoint = d.endpoint();
    common::ensure_state_bucket(&endpoint);
    let config = common::block(
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(common::REGION))
            .endpoint_url(&endpoint)
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .load(),
    );
    let prefix = d.s3_prefix.clone().unwrap();
    let loc = connect_s3(
        state_bucket(),
        &prefix,
        &Connect {
            config: Some(&config),
            region: Some(common::REGION.into()),
        },
    )
    .unwrap();
    let fence = Arc::new(Fence::default());
    // Short enough to see three refreshes quickly; long enough that `force-unlock` (a new
    // process: read the lock, then delete it on its ETag) usually fits between two.
    let refresh_every = Duration::from_millis(1000);
    let held = loc
        .lock(
            &d.name,
            this_process("up"),
            machine(),
            fence.clone(),
            Timing { refresh_every },
        )
        .unwrap();
    let id = held.lock_info().id.clone();
    let refreshed_at = || {
        let bytes = get_object(&endpoint, state_bucket(), &d.lock_key()).expect("the lock object");
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["id"], id.as_str());
        doc["refreshed_at"].as_str().unwrap().to_string()
    };
    // Three refreshes in a row, each on the ETag of the one before.
    let mut seen = vec![refreshed_at()];
    let start = Instant::now();
    while seen.len() < 4 {
        assert!(start.elapsed() < Duration::from_secs(20), "refreshes seen: {seen:?}");
        std::thread::sleep(Duration::from_millis(50));
        let now = refreshed_at();
        if seen.last() != Some(&now) {
            seen.push(now);
        }
    }
    assert!(fence.reason().is_none(), "{:?}", fence.reason());
    let identity = Identity {
        deployment: d.name.clone(),
        region: common::REGION.into(),
        account_id: "123456789012".into(),
        partition: "aws".into(),
    };
    assert_eq!(held.load().unwrap(), None);
    let mut state = State::new(&identity);
    state.serial = 1;
    held.write(&state).expect("a write while the lock is held");

    // Another operator removes the lock of this live run (it needs --yes).
    let refused = d.run(&["force-unlock", &id]);
    assert_eq!(refused.status.code(), Some(3), "{}", show(&refused));
    assert!(stderr(&refused).contains("--yes"), "{}", show(&refused));
    // A refresh landing between force-unlock's read and its conditional delete makes it
    // refuse, rightly ("its run is alive and refreshed it"); on a loaded machine the process
    // can take longer than a refresh period, so try again a few times.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let out = d.run(&["force-unlock", &id, "--yes"]);
        if out.status.success() {
            break;
        }
        assert!(
            attempts < 5 && out.status.code() == Some(3) && stderr(&out).contains("refreshed it"),
            "force-unlock --yes, attempt {attempts}: {}",
            show(&out)
        );
    }
    let start = Instant::now();
    while fence.reason().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the refresh never noticed the removed lock"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        fence.reason().unwrap().contains("removed or taken over"),
        "{:?}",
        fence.reason()
    );
    state.serial = 2;
    assert!(matches!(held.write(&state), Err(StateFileError::LockLost { .. })));
    drop(held);
    assert!(get_object(&endpoint, state_bucket(), &d.lock_key()).is_none());
    assert_eq!(
        serial_of(&d.state_bytes().unwrap()),
        Some(1),
        "the write after the loss was refused"
    );
}
