//! `pi-deploy upgrade` (blue/green to a new AMI) end to end on the emulator: every instance of
//! the group ends on the new AMI (read back from EC2), the group points at the new explicit
//! launch template version, min/max/desired are what they were, no process is left
//! suspended; an upgrade to the AMI the group already runs changes nothing; a run killed with
//! SIGKILL mid-swap is finished (or rolled back with `--abort`) by the next run.
//!
//! Emulator notes (moto 5.2.5): new instances are InService and their targets healthy at
//! once, and a deregistered target is `unused` at once (no draining), so the health timeout,
//! the rollback and the drain wait are covered by the scripted fake in `core::upgrade`'s
//! unit tests, not here. The swap tells new instances by their AMI and the launch template
//! version they were launched from, which moto 5.2.5 reports wrongly (the template's default
//! for every instance): the test harness's moto launcher fixes that (tests/emu/
//! moto_launcher.py, fourth fix, checked by tests/emu/check_launcher_fix.py).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::common::{
    self, Deployment, LT, assert_on, clients, default_version, events, fleet_config, fleet_of, ok_config,
    ok_keeping_a_healthy_target, recorded, run_config, seen, versions,
};

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

#[tokio::test(flavor = "multi_thread")]
async fn upgrade_swaps_every_instance_to_the_new_ami_and_restores_the_group() {
    let d = Deployment::new("upg");
    let (a, b) = (common::ami('A'), common::ami('B'));
    // desired == max: the swap must raise max by one and put it back.
    let cfg = fleet_config(&d, 1, 2, 2);

    // Nothing deployed: refused before any change, with a pointer to `up`.
    let none = run_config(&d, &cfg, &["upgrade", "--ami", &b, "--yes"]);
    assert_eq!(code(&none), Some(3), "{}", common::show(&none));
    assert!(
        String::from_utf8_lossy(&none.stderr).contains("pi-deploy up"),
        "{}",
        common::show(&none)
    );

    ok_config(&d, &cfg, &["up", "--ami", &a, "--yes"]);
    let before = seen(&d).await;
    assert_on(&before, &a, 2);
    assert_eq!(
        (before.min, before.max, before.desired, before.version.as_str()),
        (1, 2, 2, "1")
    );

    // Bad input is refused before anything changes (exit 2).
    let bad = run_config(&d, &cfg, &["upgrade", "--ami", "ami-nothex", "--yes"]);
    assert_eq!(code(&bad), Some(2), "{}", common::show(&bad));
    let unknown = run_config(&d, &cfg, &["upgrade", "--ami", "ami-0123456789abcdef0", "--yes"]);
    assert_eq!(code(&unknown), Some(2), "{}", common::show(&unknown));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("does not exist"),
        "{}",
        common::show(&unknown)
    );

    // The AMI the group already runs: nothing to do, no new version.
    let same = ok_config(&d, &cfg, &["upgrade", "--ami", &a, "--yes", "--json"]);
    let ev = events(&same);
    assert!(
        ev.iter().all(|e| e["event"] != "upgrade"),
        "no step for a no-op: {ev:?}"
    );
    assert!(
        ev.last().unwrap()["outputs"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing to upgrade")
    );
    assert_eq!(versions(&d).await, [(1, a.clone())]);

    // The upgrade itself.
    let up = ok_config(&d, &cfg, &["upgrade", "--ami", &b, "--yes", "--json"]);
    let ev = events(&up);
    let steps: Vec<&str> = ev
        .iter()
        .filter(|e| e["event"] == "upgrade")
        .filter_map(|e| e["step"].as_str())
        .collect();
    for step in [
        "started",
        "suspending",
        "pointing",
        "launching",
        "draining",
        "terminating",
        "finishing",
        "done",
    ] {
        assert!(steps.contains(&step), "no `{step}` step in {steps:?}");
    }
    assert_eq!(
        steps.iter().filter(|s| **s == "launching").count(),
        2,
        "one round per instance: {steps:?}"
    );
    let last = ev.last().unwrap();
    assert_eq!(last["event"], "run_finished");
    assert!(last["ok"].as_bool().unwrap(), "{}", common::show(&up));
    assert_eq!(last["outputs"]["replaced"], "2");

    let after = seen(&d).await;
    assert_on(&after, &b, 2);
    assert_eq!(
        (after.min, after.max, after.desired),
        (before.min, before.max, before.desired),
        "capacity restored"
    );
    assert_eq!(after.version, "2", "the group points at the new explicit version");
    assert_eq!(
        versions(&d).await,
        [(1, a.clone()), (2, b.clone())],
        "the new version holds the new AMI"
    );
    assert_eq!(
        default_version(&d).await,
        2,
        "the new version is the default once the swap succeeded"
    );
    let st = d.state();
    assert!(st.get("upgrade").is_none(), "the upgrade record is cleared");
    assert_eq!(st["resources"][LT]["outputs"]["version"], "2");
    assert_eq!(st["resources"][LT]["outputs"]["ami"], b.as_str());
    assert_eq!(st["resources"]["asg"]["outputs"]["launch_template_version"], "2");

    // The full data is in the new version, not only the AMI (no inheritance on every cloud).
    let c = clients().await;
    let v2 = c
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(recorded(&d, LT, "id"))
        .versions("2")
        .send()
        .await
        .unwrap();
    let data = v2.launch_template_versions()[0].launch_template_data().unwrap();
    assert!(
        data.user_data().is_some_and(|u| !u.is_empty()),
        "user data in the new version"
    );
    assert!(
        data.iam_instance_profile().and_then(|p| p.arn()).is_some(),
        "instance profile in the new version"
    );
    assert_eq!(
        data.metadata_options()
            .and_then(|m| m.http_tokens())
            .map(|t| t.as_str()),
        Some("required")
    );
    assert!(
        !data.block_device_mappings().is_empty(),
        "root volume in the new version"
    );

    // Again with the same AMI: nothing changes.
    ok_config(&d, &cfg, &["upgrade", "--ami", &b, "--yes"]);
    assert_eq!(versions(&d).await.len(), 2, "no new version for the AMI the group runs");
    assert_eq!(seen(&d).await.version, "2");

    // `up` afterwards keeps the upgraded fleet.
    ok_config(&d, &cfg, &["up", "--ami", &a, "--yes"]);
    assert_on(&seen(&d).await, &b, 2);

    d.destroy();
}

/// Start `upgrade` and SIGKILL it as soon as the state records a step in `kill_at`.
fn kill_mid_swap(d: &Deployment, cfg: &Path, ami: &str, kill_at: &[&str]) -> String {
    kill_mid_run(
        d,
        &["upgrade", "--ami", ami, "--yes", "--config", cfg.to_str().unwrap()],
        kill_at,
    )
}

/// Start pi-deploy with `args` and SIGKILL it as soon as the state records a swap step in
/// `kill_at`.
fn kill_mid_run(d: &Deployment, args: &[&str], kill_at: &[&str]) -> String {
    let mut child = d
        .command(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let step = loop {
        // The file is replaced atomically (rename): every read is a complete document.
        if let Some(bytes) = d.state_bytes()
            && let Ok(st) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && let Some(step) = st["upgrade"]["step"]["name"].as_str()
            && kill_at.contains(&step)
        {
            child.kill().unwrap(); // SIGKILL
            break step.to_string();
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{args:?} finished ({status}) before a step in {kill_at:?} was seen");
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "no step in {kill_at:?} within 2 min"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    child.wait().unwrap();
    d.force_unlock_after_kill();
    let left = d.state()["upgrade"]["step"].clone();
    eprintln!(
        "{}: {} killed after seeing step `{step}`; the state records {left}",
        d.name, args[0]
    );
    step
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_killed_mid_swap_is_finished_by_the_next_run() {
    let d = Deployment::new("upk");
    let (a, b) = (common::ami('A'), common::ami('B'));
    let cfg = fleet_config(&d, 1, 4, 3);
    ok_config(&d, &cfg, &["up", "--ami", &a, "--yes"]);

    let killed_at = kill_mid_swap(&d, &cfg, &b, &["launching", "draining", "terminating"]);
    let st = d.state();
    let rec = &st["upgrade"];
    assert_eq!(
        rec["ami"],
        b.as_str(),
        "the record survives the kill (killed at `{killed_at}`)"
    );
    assert!(rec["new_version"].is_string());

    // `up` refuses to run against the half-done upgrade and says how to proceed.
    let up = run_config(&d, &cfg, &["up", "--ami", &a, "--yes"]);
    assert_eq!(code(&up), Some(3), "{}", common::show(&up));
    let stderr = String::from_utf8_lossy(&up.stderr);
    assert!(
        stderr.contains(&format!("upgrade --deployment {} --ami {b}", d.name)) && stderr.contains("--abort"),
        "{stderr}"
    );

    // Another AMI is refused while this one is in progress.
    let other = run_config(&d, &cfg, &["upgrade", "--ami", &a, "--yes"]);
    assert_eq!(code(&other), Some(3), "{}", common::show(&other));
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("--abort"),
        "{}",
        common::show(&other)
    );

    // The same AMI finishes it.
    let resumed = ok_config(&d, &cfg, &["upgrade", "--ami", &b, "--yes", "--json"]);
    let ev = events(&resumed);
    assert!(
        ev.iter()
            .any(|e| e["event"] == "warning" && e["message"].as_str().unwrap_or("").contains("resuming")),
        "{}",
        common::show(&resumed)
    );
    let after = seen(&d).await;
    assert_on(&after, &b, 3);
    assert_eq!((after.min, after.max, after.desired), (1, 4, 3));
    assert_eq!(after.version, "2");
    assert_eq!(
        versions(&d).await.len(),
        2,
        "the resumed run reused the version of the killed one"
    );
    assert!(d.state().get("upgrade").is_none());
    ok_config(&d, &cfg, &["up", "--ami", &a, "--yes"]);

    d.destroy();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_killed_mid_swap_can_be_rolled_back_with_abort() {
    let d = Deployment::new("upa");
    let (a, b) = (common::ami('A'), common::ami('B'));
    let cfg = fleet_config(&d, 1, 3, 3);
    ok_config(&d, &cfg, &["up", "--ami", &a, "--yes"]);

    let killed_at = kill_mid_swap(&d, &cfg, &b, &["launching", "draining"]);
    let rec = d.state()["upgrade"].clone();
    assert!(rec.is_object(), "killed at `{killed_at}`");
    let accepted = rec["new_instances"].as_array().map_or(0, Vec::len);

    let aborted = ok_config(&d, &cfg, &["upgrade", "--abort", "--json"]);
    let ev = events(&aborted);
    assert!(
        ev.iter().any(|e| e["event"] == "upgrade" && e["step"] == "rolled_back"),
        "{}",
        common::show(&aborted)
    );
    let after = seen(&d).await;
    assert_eq!(after.version, "1", "the group launches the previous version again");
    assert_eq!((after.min, after.max, after.desired), (1, 3, 3), "capacity restored");
    assert!(
        after.suspended.is_empty(),
        "processes left suspended: {:?}",
        after.suspended
    );
    assert_eq!(after.images.len(), 3);
    assert_eq!(after.tagged_running, 3, "the in-flight instance is gone");
    // Replacements accepted before the kill stay (healthy, on B); every other instance runs A.
    assert_eq!(
        after.images.iter().filter(|i| **i == b).count(),
        accepted,
        "{:?}",
        after.images
    );
    assert_eq!(
        after.images.iter().filter(|i| **i == a).count(),
        3 - accepted,
        "{:?}",
        after.images
    );
    assert_eq!(default_version(&d).await, 1, "the previous version stays the default");
    assert!(d.state().get("upgrade").is_none());
    assert_eq!(recorded(&d, LT, "version"), "1");

    // Nothing left to abort; and the deployment is usable again.
    ok_config(&d, &cfg, &["upgrade", "--abort"]);
    ok_config(&d, &cfg, &["up", "--ami", &a, "--yes"]);
    d.destroy();
}

/// Issue 18: `upgrade --abort` of a one-instance swap killed once the round's old instance
/// was deregistered (the record at `terminating`: the drain is over): the old instance is
/// registered again and healthy before its replacement is terminated, so a poller of the
/// target group never sees zero healthy targets; the end is the previous version on the
/// full fleet, every instance a healthy target, no record, no process suspended. (Had the
/// kill landed after the terminate, the round is finished instead and its replacement kept.)
///
/// moto cannot show the outage this guards against: its Auto Scaling registers every member
/// of the group again on each UpdateAutoScalingGroup (so the rollback's capacity change
/// re-registers the old instance anyway), and it keeps a terminated instance listed `healthy`.
/// With the re-registration taken out (run once), the poller here still saw a healthy target
/// at every poll; the test that fails without it is
/// `core::upgrade::tests::an_abort_past_the_deregistration_...` on the scripted fake. This
/// one checks the path end to end: RegisterTargets accepted, the steps, the end state.
#[tokio::test(flavor = "multi_thread")]
async fn an_abort_after_the_old_instance_left_the_load_balancer_keeps_a_healthy_target() {
    let d = Deployment::new("uabd");
    let (a, b) = (common::ami('A'), common::ami('B'));
    let cfg = fleet_config(&d, 1, 3, 1);
    ok_config(&d, &cfg, &["up", "--ami", &a, "--yes"]);
    let tg = recorded(&d, "tg", "id");

    let killed_at = kill_mid_swap(&d, &cfg, &b, &["terminating"]);
    let rec = d.state()["upgrade"].clone();
    let old = rec["step"]["replacing"].as_str().unwrap().to_string();
    let new = rec["step"]["replacement"].as_str().unwrap().to_string();
    let c = clients().await;
    let healthy = || async {
        let out = c
            .elb
            .describe_target_health()
            .target_group_arn(&tg)
            .send()
            .await
            .unwrap();
        let mut ids: Vec<String> = out
            .target_health_descriptions()
            .iter()
            .filter(|t| t.target_health().and_then(|h| h.state()).map(|s| s.as_str()) == Some("healthy"))
            .filter_map(|t| t.target().and_then(|t| t.id()).map(String::from))
            .collect();
        ids.sort();
        ids
    };
    let members = || async {
        let out = c
            .autoscaling
            .describe_auto_scaling_groups()
            .auto_scaling_group_names(recorded(&d, "asg", "id"))
            .send()
            .await
            .unwrap();
        let mut ids: Vec<String> = out.auto_scaling_groups()[0]
            .instances()
            .iter()
            .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
            .filter_map(|i| i.instance_id().map(String::from))
            .collect();
        ids.sort();
        ids
    };
    let old_stays = members().await.contains(&old);
    assert_eq!(
        healthy().await,
        vec![new.clone()],
        "killed at `{killed_at}`: only the replacement serves, {old} is out of the target group"
    );

    let aborted = ok_keeping_a_healthy_target(&d, &cfg, &tg, &["upgrade", "--abort", "--json"]);
    let ev = events(&aborted);
    for step in ["reinstating", "rolled_back"] {
        assert!(
            ev.iter().any(|e| e["event"] == "upgrade" && e["step"] == step),
            "no `{step}` step: {}",
            common::show(&aborted)
        );
    }
    let s = seen(&d).await;
    assert_eq!(s.version, "1", "the group launches the previous version again");
    assert_eq!((s.min, s.max, s.desired), (1, 3, 1), "capacity restored");
    assert!(s.suspended.is_empty(), "processes left suspended: {:?}", s.suspended);
    assert_eq!(s.tagged_running, 1, "one instance left: {:?}", s.images);
    let serving = if old_stays { old.clone() } else { new.clone() };
    assert_eq!(members().await, vec![serving.clone()]);
    // moto lists a terminated instance as `healthy` still, so: every member is healthy.
    assert!(
        healthy().await.contains(&serving),
        "every instance of the group is a healthy target: {:?}",
        healthy().await
    );
    assert_on(&s, if old_stays { &a } else { &b }, 1);
    assert!(d.state().get("upgrade").is_none());
    let message = ev
        .iter()
        .rev()
        .find_map(|e| e["outputs"]["message"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains(&old) && message.contains(&new),
        "the message names what happened to both instances: {message}\n{}",
        common::show(&aborted)
    );
    ok_config(&d, &cfg, &["up", "--ami", &a, "--yes"]);
    d.destroy();
}

/// The config of the roll tests: `instance_type`, two instances (1..3), no deletion
/// protection.
fn write_fleet_config(path: &std::path::Path, instance_type: &str) {
    std::fs::write(
        path,
        format!(
            "instance_type = \"{instance_type}\"\n\n[database]\ndeletion_protection = false\n\n[scaling]\nmin = 1\nmax = 3\ndesired = 2\n"
        ),
    )
    .unwrap();
}

/// The roll tests' start: a deployment of two t3.medium instances on image A
/// (`write_fleet_config`), and its config file.
fn medium_fleet(prefix: &str) -> (Deployment, PathBuf) {
    let d = Deployment::new(prefix);
    let cfg = d.state_dir.path().join("pi-deploy.toml");
    write_fleet_config(&cfg, "t3.medium");
    ok_config(&d, &cfg, &["up", "--ami", &common::ami('A'), "--yes"]);
    (d, cfg)
}

/// The deployment's running instances (`fleet_of`), required to be `n`, each of
/// `instance_type` on `ami`.
async fn fleet_is(d: &Deployment, n: usize, instance_type: &str, ami: &str) -> Vec<(String, String, String)> {
    let fleet = fleet_of(d).await;
    assert_eq!(fleet.len(), n, "{fleet:?}");
    assert!(
        fleet.iter().all(|(_, t, i)| t == instance_type && i == ami),
        "{fleet:?}"
    );
    fleet
}

/// `plan --detailed-exitcode` with this config and image: nothing left to do (exit 0).
fn nothing_to_plan(d: &Deployment, cfg: &Path, ami: &str) {
    let plan = run_config(d, cfg, &["plan", "--ami", ami, "--detailed-exitcode"]);
    assert_eq!(code(&plan), Some(0), "{}", common::show(&plan));
}

/// Issue 18: a change to what the instances boot with is carried out by `up` itself: `plan`
/// names the roll, `up` makes a new launch template version with the config's launch data
/// and swaps every instance blue/green (a healthy target at every poll), and `up --ami`
/// does what `upgrade --ami` does. A later `up` has nothing left to do.
#[tokio::test(flavor = "multi_thread")]
async fn up_rolls_the_instances_when_what_they_boot_with_changes() {
    let (d, cfg) = medium_fleet("uroll");
    let (a, b) = (common::ami('A'), common::ami('B'));
    let write = |instance_type: &str| write_fleet_config(&cfg, instance_type);
    let first = fleet_is(&d, 2, "t3.medium", &a).await;

    // A new instance type: `plan` names the roll.
    write("t3.large");
    let plan = ok_config(&d, &cfg, &["plan", "--ami", &a, "--json"]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let text = plan.to_string();
    assert!(
        text.contains("\"roll\"") && text.contains("instance_type") && text.contains("t3.large"),
        "{text}"
    );
    assert!(text.contains("2 replaced one at a time"), "the instance counts: {text}");

    let out = ok_keeping_a_healthy_target(
        &d,
        &cfg,
        &recorded(&d, "tg", "id"),
        &["up", "--ami", &a, "--yes", "--json"],
    );
    let ev = events(&out);
    let finished = ev.iter().find(|e| e["event"] == "run_finished").expect("run_finished");
    assert_eq!(finished["counts"]["rolled"], 2, "{finished}");
    assert!(
        ev.iter().any(|e| e["event"] == "upgrade"),
        "the roll's steps are reported"
    );
    let rolled = fleet_is(&d, 2, "t3.large", &a).await;
    assert!(
        rolled.iter().all(|r| !first.contains(r)),
        "old instances left: {rolled:?}"
    );
    let s = seen(&d).await;
    assert_eq!((s.min, s.max, s.desired), (1, 3, 2));
    assert_eq!(s.version, "2");
    assert_eq!(default_version(&d).await, 2);
    assert!(d.state().get("upgrade").is_none());

    // `up --ami` rolls the image as `upgrade --ami` would.
    ok_config(&d, &cfg, &["up", "--ami", &b, "--yes"]);
    let s = seen(&d).await;
    assert_on(&s, &b, 2);
    assert!(fleet_of(&d).await.iter().all(|(_, t, _)| t == "t3.large"));
    assert_eq!(default_version(&d).await, 3);

    // Nothing left to do.
    let again = ok_config(&d, &cfg, &["up", "--ami", &b, "--yes", "--json"]);
    let ev = events(&again);
    let finished = ev.iter().find(|e| e["event"] == "run_finished").unwrap();
    assert!(finished["counts"].get("rolled").is_none(), "{finished}");
    assert_eq!(versions(&d).await.len(), 3);
    // After the rolls, `plan` has nothing to do and `status` finds no drift.
    nothing_to_plan(&d, &cfg, &b);
    let status = run_config(&d, &cfg, &["status"]);
    assert_eq!(code(&status), Some(0), "{}", common::show(&status));
    d.destroy();
}

/// Issue 18: one `up` that both rolls the instances (a new instance type) and replaces the
/// parameter group (a major engine upgrade, 10.11 -> 11.4). `plan` shows both: the roll with
/// its instance counts, the group's `-/+ replace`, the instance's upgrade with the downtime
/// warning. `up` carries out both (a healthy target at every poll during it): every instance
/// of the new type, the instance on 11.4 with the group of the new family, the old group
/// gone; a second `plan` has nothing to do.
#[tokio::test(flavor = "multi_thread")]
async fn up_rolls_the_instances_and_replaces_the_parameter_group_in_one_run() {
    let d = Deployment::new("urrep");
    let a = common::ami('A');
    let cfg = d.state_dir.path().join("pi-deploy.toml");
    let write = |instance_type: &str, engine: &str| {
        std::fs::write(
            &cfg,
            format!(
                "instance_type = \"{instance_type}\"\n\n[database]\ndeletion_protection = false\nengine_version = \"{engine}\"\n\n[scaling]\nmin = 1\nmax = 3\ndesired = 2\n"
            ),
        )
        .unwrap();
    };
    write("t3.medium", "10.11");
    ok_config(&d, &cfg, &["up", "--ami", &a, "--yes"]);
    let first = fleet_of(&d).await;
    let old_group = recorded(&d, "db-params", "id");
    let versions_before = versions(&d).await.len();

    write("t3.large", "11.4");
    let plan = run_config(&d, &cfg, &["plan", "--ami", &a, "--json", "--detailed-exitcode"]);
    assert_eq!(code(&plan), Some(4), "{}", common::show(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let steps = plan["steps"].as_array().unwrap();
    let step = |key: &str| steps.iter().find(|s| s["key"] == key).cloned().unwrap_or_default();
    let roll: Vec<&serde_json::Value> = steps.iter().filter(|s| s["action"] == "roll").collect();
    assert_eq!(roll.len(), 1, "one roll: {plan:#}");
    let reason = roll[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("2 replaced one at a time") && reason.contains("2 -> 3 -> 2"),
        "the instance counts: {reason}"
    );
    assert!(roll[0].to_string().contains("t3.large"), "{}", roll[0]);
    assert_eq!(step("db-params")["action"], "replace", "{plan:#}");
    assert!(
        step("db-params")["reason"].as_str().unwrap().starts_with("-/+ replace"),
        "{plan:#}"
    );
    assert_eq!(step("db")["action"], "update", "{plan:#}");
    let db = step("db").to_string();
    assert!(db.contains("DOWNTIME") && db.contains("pi-deploy snapshot"), "{db}");
    let text = ok_config(&d, &cfg, &["plan", "--ami", &a]);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("-/+ replace") && text.contains("DOWNTIME") && text.contains("2 replaced one at a time"),
        "{text}"
    );

    let out = ok_keeping_a_healthy_target(
        &d,
        &cfg,
        &recorded(&d, "tg", "id"),
        &["up", "--ami", &a, "--yes", "--json"],
    );
    let ev = events(&out);
    let finished = ev.iter().find(|e| e["event"] == "run_finished").expect("run_finished");
    assert_eq!(finished["counts"]["rolled"], 2, "{finished}");
    let deleted: Vec<&str> = ev
        .iter()
        .filter(|e| e["event"] == "resource" && e["status"] == "deleted")
        .filter_map(|e| e["key"].as_str())
        .collect();
    assert_eq!(
        deleted,
        vec![format!("db-params/retiring-{old_group}")],
        "only the old group"
    );

    // Read back: the fleet, the database, the groups.
    let rolled = fleet_is(&d, 2, "t3.large", &a).await;
    assert!(
        rolled.iter().all(|r| !first.contains(r)),
        "old instances left: {rolled:?}"
    );
    let s = seen(&d).await;
    assert_eq!((s.min, s.max, s.desired), (1, 3, 2));
    assert!(s.suspended.is_empty(), "{:?}", s.suspended);
    assert_eq!(versions(&d).await.len(), versions_before + 1);
    assert_eq!(s.version, recorded(&d, LT, "version"));
    assert!(d.state().get("upgrade").is_none());
    let c = clients().await;
    let new_group = recorded(&d, "db-params", "id");
    assert_eq!(new_group, format!("{}-db-params-mariadb11-4", d.name));
    common::on_major_version(&c, &recorded(&d, "db", "id"), "11.4", &new_group, &old_group).await;

    nothing_to_plan(&d, &cfg, &a);
    d.destroy();
}

/// Issue 18: a roll that `up` started and a kill interrupted is the next `up`'s to finish
/// or undo. Killed mid-swap, then the config asks for another instance type: the next `up`
/// rolls the unfinished roll back (as `upgrade --abort` does) and rolls to the new type,
/// with a healthy target at every poll; killed while an old instance drains, it finishes
/// the roll first and then rolls to the new type. An `upgrade --ami` killed mid-swap is finished by an
/// `up` that asks for the same image; one that asks for another is refused, naming both
/// ways out.
#[tokio::test(flavor = "multi_thread")]
async fn up_finishes_or_rolls_back_a_roll_a_killed_run_left() {
    let (d, cfg) = medium_fleet("urres");
    let (a, b) = (common::ami('A'), common::ami('B'));
    let write = |instance_type: &str| write_fleet_config(&cfg, instance_type);

    // A roll to t3.large, killed while its first replacement launches.
    write("t3.large");
    let up_args = ["up", "--ami", a.as_str(), "--yes", "--config", cfg.to_str().unwrap()];
    kill_mid_run(&d, &up_args, &["launching"]);
    let rec = d.state()["upgrade"].clone();
    assert_eq!(rec["by"], "up", "{rec}");
    assert!(rec["launch"].is_string(), "{rec}");

    // The config now asks for t3.xlarge: rolled back, then rolled to it.
    write("t3.xlarge");
    let out = ok_keeping_a_healthy_target(
        &d,
        &cfg,
        &recorded(&d, "tg", "id"),
        &["up", "--ami", &a, "--yes", "--json"],
    );
    let ev = events(&out);
    assert!(
        ev.iter()
            .any(|e| e["event"] == "warning" && e["message"].as_str().unwrap_or("").contains("rolling it back first")),
        "{}",
        common::show(&out)
    );
    assert!(
        ev.iter().any(|e| e["event"] == "upgrade" && e["step"] == "rolled_back"),
        "{}",
        common::show(&out)
    );
    fleet_is(&d, 2, "t3.xlarge", &a).await;
    let s = seen(&d).await;
    assert_on(&s, &a, 2);
    assert_eq!((s.min, s.max, s.desired), (1, 3, 2));
    // v1, v2 (t3.large, rolled back; kept as any rolled-back version is), v3.
    assert_eq!(versions(&d).await.len(), 3);
    assert_eq!(s.version, "3");
    assert_eq!(default_version(&d).await, 3);
    assert!(d.state().get("upgrade").is_none());
    nothing_to_plan(&d, &cfg, &a);

    // A roll to t3.large killed once a round's old instance is being taken out of the load
    // balancer, then the config asks for t3.medium: finished first (a rollback would leave
    // that instance out of the target group), then rolled to t3.medium.
    write("t3.large");
    kill_mid_run(&d, &up_args, &["draining", "terminating"]);
    // The kill lands within ~1 ms of the write: the record says where the run stopped.
    let step = d.state()["upgrade"]["step"]["name"].as_str().unwrap().to_string();
    let expected = if ["draining", "terminating", "finishing", "done"].contains(&step.as_str()) {
        "finishing it first"
    } else {
        "rolling it back first"
    };
    write("t3.medium");
    let out = ok_keeping_a_healthy_target(
        &d,
        &cfg,
        &recorded(&d, "tg", "id"),
        &["up", "--ami", &a, "--yes", "--json"],
    );
    let ev = events(&out);
    assert!(
        ev.iter()
            .any(|e| e["event"] == "warning" && e["message"].as_str().unwrap_or("").contains(expected)),
        "killed at `{step}`, expected \"{expected}\": {}",
        common::show(&out)
    );
    fleet_is(&d, 2, "t3.medium", &a).await;
    assert_on(&seen(&d).await, &a, 2);
    // v4 (t3.large: finished, or rolled back) and v5 (t3.medium).
    assert_eq!(versions(&d).await.len(), 5);
    assert_eq!(default_version(&d).await, 5);
    assert!(d.state().get("upgrade").is_none());

    // An `upgrade --ami B` killed mid-swap: `up` with the old image is refused ...
    kill_mid_swap(&d, &cfg, &b, &["launching", "draining", "terminating"]);
    assert_eq!(d.state()["upgrade"]["ami"], b.as_str());
    let refused = run_config(&d, &cfg, &["up", "--ami", &a, "--yes"]);
    assert_eq!(code(&refused), Some(3), "{}", common::show(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("upgrade --deployment {} --ami {b}", d.name)) && stderr.contains("--abort"),
        "{stderr}"
    );
    // ... and `up --ami B` finishes it.
    ok_config(&d, &cfg, &["up", "--ami", &b, "--yes"]);
    let s = seen(&d).await;
    assert_on(&s, &b, 2);
    assert!(fleet_of(&d).await.iter().all(|(_, t, _)| t == "t3.medium"));
    assert_eq!(versions(&d).await.len(), 6, "the killed upgrade's version was reused");
    assert_eq!(default_version(&d).await, 6);
    assert!(d.state().get("upgrade").is_none());
    nothing_to_plan(&d, &cfg, &b);
    d.destroy();
}
