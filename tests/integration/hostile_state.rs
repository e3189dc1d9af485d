//! Hostile state: every damaged or foreign state document (a file, or an S3 object with
//! `PI_DEPLOY_TEST_STATE=s3`) is refused with exit 3 and left byte-for-byte untouched; a
//! stale local lock of a dead process is no obstacle; a second run while one holds the lock
//! is refused naming the holder.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::{Deployment, ami, show};

fn valid_state(d: &Deployment) -> serde_json::Value {
    serde_json::json!({
        "format_version": 1,
        "lineage": "6f1c2b8e-8d4e-4a53-9a55-1c1c8f1e0a11",
        "serial": 3,
        "deployment": d.name,
        "region": "eu-west-1",
        "account_id": "123456789012",
        "partition": "aws",
        "settings": {},
        "resources": {},
        "outputs": {}
    })
}

#[test]
fn damaged_or_foreign_state_is_refused_and_untouched() {
    let d = Deployment::new("hstate");
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        (
            "truncated",
            serde_json::to_vec(&valid_state(&d)).unwrap()[..40].to_vec(),
        ),
        ("invalid json", b"{ this is not json".to_vec()),
        ("json array", b"[1, 2, 3]".to_vec()),
    ];
    let mut with = |name: &'static str, f: &dyn Fn(&mut serde_json::Value)| {
        let mut v = valid_state(&d);
        f(&mut v);
        cases.push((name, serde_json::to_vec_pretty(&v).unwrap()));
    };
    with("newer format", &|v| v["format_version"] = 99.into());
    with("another deployment", &|v| v["deployment"] = "someone-else".into());
    with("another region", &|v| v["region"] = "us-east-1".into());
    with("another account", &|v| v["account_id"] = "999999999999".into());
    with("unknown field", &|v| v["surprise"] = true.into());
    with("created resource without an id", &|v| {
        v["resources"]["vpc"] = serde_json::json!({
            "kind": "vpc", "status": "ready", "client_token": "t", "outputs": {}, "deps": [],
            "updated_at": "2026-01-01T00:00:00Z"
        })
    });
    with("resource with an id of the wrong shape", &|v| {
        v["resources"]["subnet-app-a"] = serde_json::json!({
            "kind": "subnet", "status": "ready", "client_token": "t", "outputs": {"id": "banana"},
            "deps": [], "updated_at": "2026-01-01T00:00:00Z"
        })
    });
    with("resource of an unknown kind", &|v| {
        v["resources"]["vpc"] = serde_json::json!({
            "kind": "spaceship", "status": "ready", "client_token": "t", "outputs": {"id": "x"}, "deps": [],
            "updated_at": "2026-01-01T00:00:00Z"
        })
    });
    let ami = ami('A');
    for (name, bytes) in &cases {
        d.write_state(bytes);
        for cmd in [vec!["up", "--ami", ami.as_str(), "--yes"], vec!["destroy", "--yes"]] {
            let out = d.run(&cmd);
            assert_eq!(
                out.status.code(),
                Some(3),
                "{name} / {}: expected exit 3\n{}",
                cmd[0],
                show(&out)
            );
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("hint:"),
                "{name}: no hint\n{}",
                show(&out)
            );
            assert_eq!(
                &d.state_bytes().unwrap(),
                bytes,
                "{name} / {}: the state was changed",
                cmd[0]
            );
        }
    }
}

#[test]
fn a_stale_lock_of_a_dead_process_does_not_block() {
    let d = Deployment::new("stale");
    if d.is_s3() {
        // The flock of a local state dies with its process; an S3 lock stays until
        // `force-unlock` (state_s3.rs::a_killed_holder_leaves_a_stale_lock_...).
        eprintln!("local lock semantics: not applicable to an S3 state");
        return;
    }
    // A lock file left by a process that no longer exists (kill -9): the kernel released
    // its flock, so the file alone blocks nothing.
    std::fs::create_dir_all(d.state_dir.path()).unwrap();
    std::fs::write(
        d.state_dir.path().join(format!("{}.lock", d.name)),
        r#"{"pid":999999,"host":"gone","command":"up","started_at":"2026-01-01T00:00:00Z"}"#,
    )
    .unwrap();
    let out = d.ok(&["destroy", "--yes"]);
    assert!(out.status.success());
}

#[test]
fn a_second_run_is_refused_while_the_first_holds_the_lock() {
    let d = Deployment::new("locked");
    let ami = ami('A');
    let mut first = d
        .command(&["up", "--ami", &ami, "--yes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the first run has written its state (it holds the lock by then).
    let start = Instant::now();
    while !d.state_exists() {
        assert!(start.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(2));
    }
    let second = d.run(&["up", "--ami", &ami, "--yes"]);
    let finished_first = first.try_wait().unwrap().is_some();
    first.wait().unwrap();
    if finished_first {
        // The first run was faster than the check: nothing to conclude, but no harm either.
        return;
    }
    assert_eq!(second.status.code(), Some(3), "{}", show(&second));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("locked") && err.contains("`up`"), "{err}");
    d.ok(&[
        "destroy",
        "--yes",
        "--skip-final-snapshot",
        "--disable-deletion-protection",
    ]);
}
