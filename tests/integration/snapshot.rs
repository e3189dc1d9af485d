//! `pi-deploy snapshot` on the emulator: a manual DB snapshot (moto's RDS) and an AWS Backup
//! job of the file system (the launcher's AWS Backup shim, tests/emu/moto_launcher.py: moto
//! 5.2.5 has no backup jobs), listed back from both services, not duplicated by a second
//! call, finished (not duplicated) after `kill -9`, refused while the database is not
//! available, and kept by `destroy`, which deletes the role AWS Backup assumed (also without
//! the state file).

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::census;
use crate::common::{self, Deployment, clients, events, show};

/// The outputs of a `--json` run's last event (`run_finished`).
fn outputs(out: &std::process::Output) -> serde_json::Value {
    let ev = events(out);
    let last = ev.last().expect("events").clone();
    assert_eq!(last["event"], "run_finished", "{}", show(out));
    last["outputs"].clone()
}

fn list(d: &Deployment) -> Vec<serde_json::Value> {
    let out = d.ok(&["snapshot", "--list", "--json"]);
    serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
        .unwrap_or_else(|e| panic!("not a JSON list ({e}):\n{}", show(&out)))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_labelled_snapshot_is_listed_from_rds_and_backup_not_duplicated_and_kept_by_destroy() {
    let c = clients().await;
    let d = Deployment::new("snap");
    d.up(&[]);
    let fs_arn = common::out(&d.state(), "efs", "arn");

    // A label RDS would refuse is refused before anything (exit 2, naming the flag).
    let bad = d.run(&["snapshot", "--label", "Before_Change"]);
    assert_eq!(bad.status.code(), Some(2), "{}", show(&bad));
    assert!(show(&bad).contains("--label"), "{}", show(&bad));
    assert!(common::db_snapshots(&c, &d.name).await.is_empty());

    // A database that is not available is refused before anything is taken (exit 3).
    let db_id = common::id(&d.state(), "db");
    c.rds
        .stop_db_instance()
        .db_instance_identifier(&db_id)
        .send()
        .await
        .unwrap();
    let stopped = d.run(&["snapshot", "--label", "before-change"]);
    assert_eq!(stopped.status.code(), Some(3), "{}", show(&stopped));
    assert!(
        show(&stopped).contains("is `stopped`, not `available`"),
        "{}",
        show(&stopped)
    );
    assert!(common::db_snapshots(&c, &d.name).await.is_empty());
    assert!(d.state().get("snapshot").is_none(), "nothing recorded");
    c.rds
        .start_db_instance()
        .db_instance_identifier(&db_id)
        .send()
        .await
        .unwrap();

    let first = d.ok(&["snapshot", "--label", "before-change", "--json"]);
    let o = outputs(&first);
    let db_snapshot = o["db_snapshot"].as_str().expect("db_snapshot").to_string();
    let recovery_point = o["recovery_point_arn"].as_str().expect("recovery point").to_string();
    assert!(
        db_snapshot.starts_with(&format!("{}-snap-before-change-", d.name)),
        "{db_snapshot}"
    );
    let steps: Vec<String> = events(&first)
        .iter()
        .filter(|e| e["event"] == "snapshot")
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect();
    assert!(
        steps.contains(&"waiting".to_string()) && steps.last().map(String::as_str) == Some("done"),
        "{steps:?}"
    );
    assert!(
        d.state().get("snapshot").is_none(),
        "the record is removed once complete"
    );

    // Read back from the services themselves.
    assert_eq!(
        common::db_snapshots(&c, &d.name).await,
        [(db_snapshot.clone(), Some("before-change".into()), "available".into())]
    );
    assert_eq!(
        common::recovery_points(&c, &fs_arn).await,
        std::slice::from_ref(&recovery_point)
    );
    let items = list(&d);
    assert_eq!(items.len(), 2, "{items:?}");
    let db_item = items.iter().find(|i| i["kind"] == "db-snapshot").expect("db item");
    assert_eq!(db_item["id"], db_snapshot.as_str());
    assert_eq!(db_item["label"], "before-change");
    assert_eq!(db_item["status"], "available");
    let rp_item = items
        .iter()
        .find(|i| i["kind"] == "efs-recovery-point")
        .expect("rp item");
    assert_eq!(rp_item["id"], recovery_point.as_str());
    assert_eq!(rp_item["label"], "before-change");
    assert_eq!(rp_item["status"], "COMPLETED");
    assert!(
        rp_item["created"].is_string() && rp_item["size_bytes"].is_number(),
        "{rp_item}"
    );
    let human = String::from_utf8_lossy(&d.ok(&["snapshot", "--list"]).stdout).to_string();
    assert!(
        human.contains("1 DB snapshots, 1 file system recovery points."),
        "{human}"
    );

    // The same call again: the label names the snapshot that exists; nothing new.
    let again = d.ok(&["snapshot", "--label", "before-change", "--json"]);
    let o = outputs(&again);
    assert_eq!(o["existing"], "true", "{}", show(&again));
    assert_eq!(o["db_snapshot"], db_snapshot.as_str());
    assert_eq!(o["recovery_point_arn"], recovery_point.as_str());
    assert_eq!(common::db_snapshots(&c, &d.name).await.len(), 1);
    assert_eq!(common::recovery_points(&c, &fs_arn).await.len(), 1);

    // The role AWS Backup assumed is the deployment's (tagged); destroy deletes it and says
    // what it keeps.
    assert_eq!(
        census::iam_roles(&c, &d.name)
            .await
            .get("iam-role")
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter(|k| *k == "backup-role")
            .count(),
        1
    );
    let gone = d.destroy();
    assert!(
        show(&gone).contains("kept: 1 DB snapshots and 1 file system recovery points"),
        "{}",
        show(&gone)
    );
    let left = census::everything(&c, &d.name).await;
    assert!(left.is_empty(), "left behind: {left:?}\n{}", show(&gone));
    assert_eq!(
        common::db_snapshots(&c, &d.name).await.len(),
        1,
        "the DB snapshot is kept"
    );
    assert_eq!(
        common::recovery_points(&c, &fs_arn).await,
        [recovery_point],
        "the recovery point is kept"
    );
}

/// When to kill: a test of the state's snapshot record.
type RecordTest = dyn Fn(&serde_json::Value) -> bool;

/// Start `snapshot --label LABEL`, kill -9 it the moment the state's snapshot record
/// satisfies `when` (polled every ~2 ms); the step it was killed at.
fn kill_snapshot_when(d: &Deployment, label: &str, when: impl Fn(&serde_json::Value) -> bool) -> String {
    let mut child = d
        .command(&["snapshot", "--label", label])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    let step = loop {
        if let Some(rec) = d
            .state_bytes()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|s| s.get("snapshot").cloned())
            .filter(|r| when(r))
        {
            child.kill().unwrap();
            break rec["step"].as_str().unwrap_or_default().to_string();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the snapshot ended ({status}) before the record was seen");
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no record within 120 s");
        std::thread::sleep(Duration::from_millis(2));
    };
    child.wait().unwrap();
    d.force_unlock_after_kill();
    step
}

#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_killed_after_its_intent_is_recorded_is_finished_by_the_rerun_not_duplicated() {
    let c = clients().await;
    let d = Deployment::new("snapkill");
    d.up(&[]);
    let fs_arn = common::out(&d.state(), "efs", "arn");
    // Killed at the first record (the intent, before any AWS call of the snapshot), then
    // while both are being waited for (the backup job's id recorded, the job still running).
    let cases: [(&str, &RecordTest); 2] = [
        ("first-record", &|_| true),
        ("job-running", &|r| {
            r["step"] == "waiting" && r["backup_job_id"].is_string()
        }),
    ];
    for (n, (label, when)) in cases.iter().enumerate() {
        let step = kill_snapshot_when(&d, label, when);
        eprintln!("snapshot --label {label}: killed at step `{step}`");
        let recorded = d.state()["snapshot"]["name"]
            .as_str()
            .expect("the record survives")
            .to_string();
        let rerun = d.ok(&["snapshot", "--label", label, "--json"]);
        let o = outputs(&rerun);
        assert_eq!(
            o["db_snapshot"],
            recorded.as_str(),
            "killed at `{step}`: {}",
            show(&rerun)
        );
        assert!(o.get("existing").is_none(), "{}", show(&rerun));
        let dbs = common::db_snapshots(&c, &d.name).await;
        assert_eq!(dbs.len(), n + 1, "killed at `{step}`: {dbs:?}");
        assert_eq!(
            dbs.iter().filter(|(_, l, _)| l.as_deref() == Some(*label)).count(),
            1,
            "killed at `{step}`: one DB snapshot"
        );
        assert_eq!(
            common::recovery_points(&c, &fs_arn).await.len(),
            n + 1,
            "killed at `{step}`: one recovery point per snapshot"
        );
        assert!(d.state().get("snapshot").is_none());
    }
    // Without the state, destroy still finds the backup role by its name and tags.
    d.remove_state();
    d.destroy();
    assert!(census::everything(&c, &d.name).await.is_empty());
    assert_eq!(common::db_snapshots(&c, &d.name).await.len(), 2);
}
