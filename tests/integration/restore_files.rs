//! `pi-deploy restore --files RECOVERY_POINT_ARN --path ...` on the emulator: moto 5.2.5 has
//! no AWS Backup jobs; the launcher's shim (tests/emu/moto_launcher.py) answers
//! StartRestoreJob / DescribeRestoreJob and the vault access policy calls as AWS documents
//! them (it copies no file data: moto keeps none). Bad flags are refused before anything
//! (exit 2), a vault policy that denies the restore is refused naming the vault and the
//! statement (exit 3), the restore job is started with the item-level metadata and waited
//! for, a run killed after StartRestoreJob waits for the same job when run again, and
//! `destroy` leaves nothing.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::census;
use crate::common::{self, Deployment, clients, events, show};

fn outputs(out: &std::process::Output) -> serde_json::Value {
    let ev = events(out);
    let last = ev.last().expect("events").clone();
    assert_eq!(last["event"], "run_finished", "{}", show(out));
    last["outputs"].clone()
}

const DENY: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Sid":"allow-all","Effect":"Allow","Principal":"*","Action":"backup:*","Resource":"*"},
  {"Sid":"no-restores","Effect":"Deny","Principal":{"AWS":"*"},"Action":["backup:DeleteRecoveryPoint","backup:StartRestoreJob"],"Resource":"*"}]}"#;

async fn restore_policy(c: &pi_deploy::aws::Clients, role: &str) -> Vec<String> {
    c.iam
        .list_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap()
        .policy_names()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn items_are_restored_into_the_same_file_system_after_the_checks_and_a_killed_run_waits_for_the_same_job() {
    let c = clients().await;
    let d = Deployment::new("rfiles");
    d.up(&[]);
    let fs_id = common::id(&d.state(), "efs");
    let o = outputs(&d.ok(&["snapshot", "--label", "files", "--json"]));
    let rp = o["recovery_point_arn"].as_str().expect("recovery point").to_string();

    // Bad flags: exit 2 naming the field, nothing recorded.
    let six = ["/a", "/b", "/c", "/d", "/e", "/f"];
    let mut too_many = vec!["restore", "--files", rp.as_str()];
    for p in &six {
        too_many.extend(["--path", p]);
    }
    for (args, field) in [
        (too_many.clone(), "--path"),
        (vec!["restore", "--files", rp.as_str(), "--path", "themes"], "--path"),
        (vec!["restore", "--files", rp.as_str()], "--path"),
        (vec!["restore", "--files", "fs-123", "--path", "/themes"], "--files"),
        (
            vec![
                "restore",
                "--files",
                "arn:aws:backup:eu-west-1:123456789012:recovery-point:not-ours",
                "--path",
                "/themes",
            ],
            "--files",
        ),
    ] {
        let out = d.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        assert!(show(&out).contains(field), "{args:?}: {}", show(&out));
        assert!(d.state().get("files_restore").is_none(), "{args:?}");
    }

    // The vault's access policy denies StartRestoreJob: refused before anything, naming it.
    c.backup
        .put_backup_vault_access_policy()
        .backup_vault_name("Default")
        .policy(DENY)
        .send()
        .await
        .unwrap();
    let denied = d.run(&["restore", "--files", &rp, "--path", "/themes"]);
    assert_eq!(denied.status.code(), Some(3), "{}", show(&denied));
    assert!(
        show(&denied).contains("vault `Default`") && show(&denied).contains("`no-restores`"),
        "{}",
        show(&denied)
    );
    assert!(d.state().get("files_restore").is_none());
    c.backup
        .delete_backup_vault_access_policy()
        .backup_vault_name("Default")
        .send()
        .await
        .unwrap();

    // The restore: the job started, waited for with its progress, the record removed and
    // the role's restore permissions removed once it completed.
    let done = d.ok(&[
        "restore", "--files", &rp, "--path", "/themes/", "--path", "/images", "--json",
    ]);
    let o = outputs(&done);
    let job = o["restore_job_id"].as_str().expect("job id").to_string();
    assert_eq!(o["file_system_id"], fs_id.as_str());
    assert_eq!(o["paths"], "/themes,/images");
    let seen: Vec<String> = events(&done)
        .iter()
        .filter(|e| e["event"] == "restore" && e["step"] == "waiting")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect();
    // Progress before the end (which of PENDING and RUNNING a read lands on depends on the
    // wait's read times against the shim's 1 s / 3 s clock), then COMPLETED.
    assert!(
        seen.len() >= 2
            && seen[..seen.len() - 1]
                .iter()
                .all(|m| m.contains("PENDING") || m.contains("RUNNING"))
            && seen.last().is_some_and(|m| m.contains("COMPLETED")),
        "{seen:?}"
    );
    let described = c
        .backup
        .describe_restore_job()
        .restore_job_id(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(described.status().map(|s| s.as_str()), Some("COMPLETED"));
    assert!(d.state().get("files_restore").is_none());
    let role = format!("{}-backup-role", d.name);
    assert!(
        restore_policy(&c, &role).await.is_empty(),
        "restore permissions removed"
    );

    // Killed once the job's id is recorded: the rerun waits for that job, starts none.
    let mut child = d
        .command(&["restore", "--files", &rp, "--path", "/themes"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let start = Instant::now();
    let recorded = loop {
        if let Some(j) = d
            .state_bytes()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|s| s["files_restore"]["job_id"].as_str().map(String::from))
        {
            child.kill().unwrap();
            break j;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the restore ended ({status}) before its job was recorded");
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no job within 120 s");
        std::thread::sleep(Duration::from_millis(2));
    };
    child.wait().unwrap();
    d.force_unlock_after_kill();
    assert_ne!(recorded, job, "a later restore of the same items is another job");
    assert!(
        !restore_policy(&c, &role).await.is_empty(),
        "killed mid-job: the permissions are still there"
    );
    // `status` and `outputs` say it is in progress, with its job.
    let status = d.ok(&["status", "--json"]);
    assert!(
        show(&status).contains(&format!("AWS Backup restore job {recorded}")),
        "{}",
        show(&status)
    );
    let outs = d.ok(&["outputs", "--json"]);
    assert!(show(&outs).contains(&recorded), "{}", show(&outs));
    // Other flags are refused while it is recorded.
    let other = d.run(&["restore", "--files", &rp, "--path", "/images"]);
    assert_eq!(other.status.code(), Some(3), "{}", show(&other));
    let rerun = d.ok(&["restore", "--files", &rp, "--path", "/themes", "--json"]);
    assert_eq!(outputs(&rerun)["restore_job_id"], recorded.as_str(), "{}", show(&rerun));
    assert!(d.state().get("files_restore").is_none());

    // A files restore leaves nothing of its own: destroy removes everything (the role too).
    let gone = d.destroy();
    let left = census::everything(&c, &d.name).await;
    assert!(left.is_empty(), "left behind: {left:?}\n{}", show(&gone));
}
