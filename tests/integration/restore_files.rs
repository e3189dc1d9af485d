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

/// A vault policy that denies restoring `rp` (and only it: the `Default` vault is shared by
/// every test running at once, and a Deny on `*` would refuse their restores too), with a
/// Deny on another recovery point beside it that must not count.
fn deny(rp: &str) -> String {
    serde_json::json!({"Version": "2012-10-17", "Statement": [
        {"Sid": "allow-all", "Effect": "Allow", "Principal": "*", "Action": "backup:*", "Resource": "*"},
        {"Sid": "not-this-one", "Effect": "Deny", "Principal": "*", "Action": "backup:StartRestoreJob",
         "Resource": format!("{rp}-not")},
        {"Sid": "no-restores", "Effect": "Deny", "Principal": {"AWS": "*"},
         "Action": ["backup:DeleteRecoveryPoint", "backup:StartRestoreJob"], "Resource": rp}]})
    .to_string()
}

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

    // The vault's access policy denies StartRestoreJob on this recovery point: refused before
    // anything, naming the statement.
    c.backup
        .put_backup_vault_access_policy()
        .backup_vault_name("Default")
        .policy(deny(&rp))
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

/// The file systems tagged with the deployment.
pub(crate) async fn file_systems(c: &pi_deploy::aws::Clients, dep: &str) -> Vec<String> {
    let mut v: Vec<String> = census::file_systems(c)
        .await
        .iter()
        .filter(|fs| {
            fs.tags()
                .iter()
                .any(|t| t.key() == "pi-deploy:deployment" && t.value() == dep)
        })
        .map(|fs| fs.file_system_id().to_string())
        .collect();
    v.sort();
    v
}

/// The mount targets' subnets and the access points' ARNs of a file system (empty when it
/// is gone).
pub(crate) async fn made_on(c: &pi_deploy::aws::Clients, fs: &str) -> (Vec<String>, Vec<String>) {
    let mut subnets: Vec<String> = match c.efs.describe_mount_targets().file_system_id(fs).send().await {
        Ok(o) => o.mount_targets().iter().map(|m| m.subnet_id().to_string()).collect(),
        Err(_) => Vec::new(),
    };
    subnets.sort();
    let points = match c.efs.describe_access_points().file_system_id(fs).send().await {
        Ok(o) => o
            .access_points()
            .iter()
            .filter_map(|a| a.access_point_arn().map(String::from))
            .collect(),
        Err(_) => Vec::new(),
    };
    (subnets, points)
}

/// The access point the side-loading Lambda mounts.
pub(crate) async fn lambda_access_point(c: &pi_deploy::aws::Clients, d: &Deployment) -> String {
    let cfg = c
        .lambda
        .get_function_configuration()
        .function_name(common::recorded(d, "lambda", "id"))
        .send()
        .await
        .unwrap();
    cfg.file_system_configs()
        .first()
        .map(|f| f.arn().to_string())
        .unwrap_or_default()
}

/// The deployment runs on file system `fs` with access point `ap`: the records, the launch
/// template's user data, the Lambda's mount, its role's policy, and every instance of the
/// group launched from the default version.
async fn runs_on(c: &pi_deploy::aws::Clients, d: &Deployment, fs: &str, ap: &str) {
    assert_eq!(common::recorded(d, "efs", "id"), fs);
    assert_eq!(common::recorded(d, "efs-ap", "arn"), ap);
    for key in ["efs-mt-a", "efs-mt-b", "efs-ap"] {
        assert_eq!(common::recorded(d, key, "file_system_id"), fs, "{key}");
    }
    let ud = crate::restore::user_data(c, d).await;
    assert!(
        ud.contains(&format!("readonly EFS_ID='{fs}'")),
        "the user data mounts {fs}"
    );
    assert_eq!(
        lambda_access_point(c, d).await,
        ap,
        "the Lambda mounts the access point"
    );
    let role = common::recorded(d, "lambda-role", "id");
    let names = c.iam.list_role_policies().role_name(&role).send().await.unwrap();
    let mut docs = String::new();
    for name in names.policy_names() {
        let got = c
            .iam
            .get_role_policy()
            .role_name(&role)
            .policy_name(name)
            .send()
            .await
            .unwrap();
        docs.push_str(&got.policy_document().replace("%3A", ":").replace("%2F", "/"));
    }
    assert!(docs.contains(ap), "the Lambda's role names {ap}: {docs}");
    let s = common::seen(d).await;
    assert_eq!(s.version, common::default_version(d).await.to_string());
    assert!(s.suspended.is_empty(), "{:?}", s.suspended);
    assert!(d.state().get("upgrade").is_none());
}

/// `restore --files ARN` without `--path` (issue 21): into a NEW file system (the shim's
/// StartRestoreJob with newFileSystem=true creates it in moto's EFS), made as the blueprint
/// says (tags, mount targets in both subnets, the access point), then the deployment
/// switched to it (records, user data, the Lambda and its role) with every instance rolled
/// and a healthy target at every poll; `--abort` goes back and deletes the new one;
/// `--finish` deletes the old one; `destroy` after a kept restore leaves nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_full_restore_switches_to_a_new_file_system_and_abort_finish_and_destroy_work() {
    let c = clients().await;
    let d = Deployment::new("rfull");
    let cfg = common::fleet_config(&d, 1, 3, 2);
    common::ok_config(&d, &cfg, &["up", "--ami", &common::ami('A'), "--yes"]);
    let old_fs = common::recorded(&d, "efs", "id");
    let old_ap = common::recorded(&d, "efs-ap", "arn");
    let old_subnets = made_on(&c, &old_fs).await.0;
    assert_eq!(old_subnets.len(), 2);
    let o = outputs(&common::ok_config(&d, &cfg, &["snapshot", "--label", "full", "--json"]));
    let rp = o["recovery_point_arn"].as_str().expect("recovery point").to_string();

    // Not a recovery point of the deployment's file system: exit 2, nothing recorded.
    let other = "arn:aws:backup:eu-west-1:123456789012:recovery-point:not-ours";
    let out = common::run_config(&d, &cfg, &["restore", "--files", other, "--yes"]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(d.state().get("files_restore").is_none());

    // The restore.
    let before = common::fleet_of(&d).await;
    let tg = common::recorded(&d, "tg", "id");
    let out = common::ok_keeping_a_healthy_target(&d, &cfg, &tg, &["restore", "--files", &rp, "--yes", "--json"]);
    let o = outputs(&out);
    let new_fs = o["file_system_id"].as_str().expect("the new file system").to_string();
    assert_ne!(new_fs, old_fs);
    assert_eq!(o["kept_file_system"], old_fs.as_str());
    let steps: Vec<String> = events(&out)
        .iter()
        .filter(|e| e["event"] == "restore")
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect();
    for s in [
        "started",
        "restoring",
        "waiting",
        "preparing",
        "switching",
        "rolling",
        "kept",
    ] {
        assert!(steps.contains(&s.to_string()), "{s} in {steps:?}");
    }
    // AWS's side: the new file system is the deployment's, encrypted, with a mount target in
    // each of the same subnets and its own access point; the old one is kept as it was.
    let described = c
        .efs
        .describe_file_systems()
        .file_system_id(&new_fs)
        .send()
        .await
        .unwrap();
    let fs = &described.file_systems()[0];
    assert_eq!(fs.encrypted(), Some(true));
    let tag = |k: &str| fs.tags().iter().find(|t| t.key() == k).map(|t| t.value().to_string());
    assert_eq!(tag("pi-deploy:deployment").as_deref(), Some(d.name.as_str()));
    assert_eq!(tag("pi-deploy:key").as_deref(), Some("efs"));
    let (subnets, points) = made_on(&c, &new_fs).await;
    assert_eq!(subnets, old_subnets);
    assert_eq!(points.len(), 1, "{points:?}");
    let new_ap = points[0].clone();
    assert_ne!(new_ap, old_ap);
    assert_eq!(made_on(&c, &old_fs).await, (old_subnets.clone(), vec![old_ap.clone()]));
    assert_eq!(file_systems(&c, &d.name).await.len(), 2);
    runs_on(&c, &d, &new_fs, &new_ap).await;
    let after = common::fleet_of(&d).await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after.iter().all(|i| !before.contains(i)),
        "every instance replaced: {after:?}"
    );
    assert!(
        restore_policy(&c, &format!("{}-backup-role", d.name)).await.is_empty(),
        "the restore permissions are removed once the job ended"
    );

    // `status` (no leak: the kept file system is the restore's), `plan` (nothing to do) and
    // `outputs` say so; the same command again changes nothing; an item restore waits.
    let status = common::run_config(&d, &cfg, &["status"]);
    assert_eq!(status.status.code(), Some(0), "{}", show(&status));
    assert!(show(&status).contains("restore --finish"), "{}", show(&status));
    let plan = common::run_config(&d, &cfg, &["plan", "--ami", &common::ami('A'), "--detailed-exitcode"]);
    assert!(show(&plan).contains("restore --finish"), "{}", show(&plan));
    assert_eq!(plan.status.code(), Some(0), "{}", show(&plan));
    let outs = common::ok_config(&d, &cfg, &["outputs", "--json"]);
    assert!(show(&outs).contains(&old_fs), "{}", show(&outs));
    let again = common::ok_config(&d, &cfg, &["restore", "--files", &rp, "--yes", "--json"]);
    assert_eq!(outputs(&again)["file_system_id"], new_fs.as_str());
    assert_eq!(file_systems(&c, &d.name).await.len(), 2);
    let items = common::run_config(&d, &cfg, &["restore", "--files", &rp, "--path", "/themes"]);
    assert_eq!(items.status.code(), Some(3), "{}", show(&items));

    // --abort: back on the old file system, rolled again, the new one deleted.
    common::ok_keeping_a_healthy_target(&d, &cfg, &tg, &["restore", "--abort", "--json"]);
    runs_on(&c, &d, &old_fs, &old_ap).await;
    assert_eq!(file_systems(&c, &d.name).await, std::slice::from_ref(&old_fs));
    assert_eq!(made_on(&c, &new_fs).await, (Vec::new(), Vec::new()));
    assert!(d.state().get("files_restore").is_none());

    // Again, then --finish: the old file system, its mount targets and access point deleted.
    let out = common::ok_config(&d, &cfg, &["restore", "--files", &rp, "--yes", "--json"]);
    let new_fs = outputs(&out)["file_system_id"].as_str().unwrap().to_string();
    let new_ap = common::recorded(&d, "efs-ap", "arn");
    common::ok_config(&d, &cfg, &["restore", "--finish", "--yes", "--json"]);
    runs_on(&c, &d, &new_fs, &new_ap).await;
    assert_eq!(file_systems(&c, &d.name).await, std::slice::from_ref(&new_fs));
    assert_eq!(made_on(&c, &old_fs).await, (Vec::new(), Vec::new()));
    assert!(d.state().get("files_restore").is_none());
    let plan = common::run_config(&d, &cfg, &["plan", "--ami", &common::ami('A'), "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", show(&plan));
    // The state lost: `up` finds the restored file system by its tags (its creation token is
    // the restore's) and makes no second one.
    d.remove_state();
    let up = common::ok_config(&d, &cfg, &["up", "--ami", &common::ami('A'), "--yes"]);
    assert_eq!(
        file_systems(&c, &d.name).await,
        std::slice::from_ref(&new_fs),
        "{}",
        show(&up)
    );
    assert_eq!(common::recorded(&d, "efs", "id"), new_fs);
    runs_on(&c, &d, &new_fs, &new_ap).await;

    // The first recovery point is of the file system `--finish` deleted: `snapshot --list`
    // still shows it; an item-level restore of it into the new one is refused naming --path.
    let listed = common::ok_config(&d, &cfg, &["snapshot", "--list", "--json"]);
    assert!(
        String::from_utf8_lossy(&listed.stdout).contains(&rp),
        "{}",
        show(&listed)
    );
    let items = common::run_config(&d, &cfg, &["restore", "--files", &rp, "--path", "/themes", "--yes"]);
    assert_eq!(items.status.code(), Some(2), "{}", show(&items));
    assert!(
        show(&items).contains("--path") && show(&items).contains("earlier file system"),
        "{}",
        show(&items)
    );
    // A restore of it whole, kept, then destroy: nothing left.
    common::ok_config(&d, &cfg, &["restore", "--files", &rp, "--yes"]);
    assert_eq!(file_systems(&c, &d.name).await.len(), 2);
    let gone = d.destroy();
    let left = census::everything(&c, &d.name).await;
    assert!(left.is_empty(), "left behind: {left:?}\n{}", show(&gone));
}

/// A run killed between StartRestoreJob and the state write that records the job (made here
/// by killing once the job is recorded, waiting for the job, then taking the job out of the
/// record as if it had never been written): `--abort` finds the file system the job made by
/// the restore's creation token and deletes it; the same with `destroy`.
#[tokio::test(flavor = "multi_thread")]
async fn a_restore_job_the_state_never_recorded_is_found_by_abort_and_by_destroy() {
    let c = clients().await;
    let d = Deployment::new("rfjob");
    d.up(&[]);
    let old_fs = common::id(&d.state(), "efs");
    let o = outputs(&d.ok(&["snapshot", "--label", "lost", "--json"]));
    let rp = o["recovery_point_arn"].as_str().expect("recovery point").to_string();
    let unrecorded = |d: &Deployment| {
        assert!(
            common::kill_when_state(d, &["restore", "--files", &rp, "--yes"], "the job recorded", |s| {
                s["files_restore"]["job_id"].is_string()
            }),
            "the restore ended before its job was recorded"
        );
        let mut st = d.state();
        let job = st["files_restore"]["job_id"].as_str().unwrap().to_string();
        st["files_restore"].as_object_mut().unwrap().remove("job_id");
        st["files_restore"]["full"]["step"] = serde_json::json!({"name": "restoring"});
        d.write_state(&serde_json::to_vec_pretty(&st).unwrap());
        job
    };
    for finish_with in ["abort", "destroy"] {
        let job = unrecorded(&d);
        // The job makes its file system all the same.
        let made = loop {
            let j = c
                .backup
                .describe_restore_job()
                .restore_job_id(&job)
                .send()
                .await
                .unwrap();
            if let Some(arn) = j.created_resource_arn() {
                break arn.rsplit('/').next().unwrap().to_string();
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        };
        assert_eq!(made_on(&c, &made).await.0.len(), 0, "nothing made on it yet");
        let all_fs = || async {
            let mut v: Vec<String> = census::file_systems(&c)
                .await
                .iter()
                .map(|f| f.file_system_id().to_string())
                .collect();
            v.sort();
            v
        };
        assert!(all_fs().await.contains(&made), "{made} exists");
        if finish_with == "abort" {
            let out = d.ok(&["restore", "--abort", "--json"]);
            assert!(
                !all_fs().await.contains(&made),
                "{made} deleted by --abort\n{}",
                show(&out)
            );
            assert_eq!(common::id(&d.state(), "efs"), old_fs);
            assert!(d.state().get("files_restore").is_none());
        } else {
            let gone = d.destroy();
            assert!(
                !all_fs().await.contains(&made),
                "{made} deleted by destroy\n{}",
                show(&gone)
            );
            let left = census::everything(&c, &d.name).await;
            assert!(left.is_empty(), "left behind: {left:?}\n{}", show(&gone));
        }
    }
}
