//! `pi-deploy restore` of the database on the emulator (moto 5.2.5 implements
//! RestoreDBInstanceFromDBSnapshot and RestoreDBInstanceToPointInTime): the deployment ends
//! on the restored instance (the endpoint parameter, the `db` record, the launch template's
//! user data naming its secret, every instance replaced) with a healthy target at every
//! poll; `--abort` returns to the old instance and deletes the restored one; `--finish`
//! deletes the old one; `destroy` after an unfinished restore leaves nothing.
//!
//! The marker: moto's snapshot keeps the instance's attributes as they were when it was
//! taken (a copy), and the restore takes the size from the snapshot (pi-deploy does not set
//! it), so the allocated storage set before the snapshot, then changed after it, tells
//! the snapshot's data from the live instance's. moto's point-in-time restore copies the
//! instance as it is now (it has no history), so that test shows the switch, not the time.

use base64::Engine;

use crate::census;
use pi_deploy::aws::Clients;

use crate::common::{self, Deployment, clients, events, ok_config, ok_keeping_a_healthy_target, run_config, show};
use crate::common::{default_version, fleet_config, fleet_of, recorded, seen};

fn outputs(out: &std::process::Output) -> serde_json::Value {
    let ev = events(out);
    let last = ev.last().expect("events").clone();
    assert_eq!(last["event"], "run_finished", "{}", show(out));
    last["outputs"].clone()
}

pub(crate) async fn instance(c: &Clients, id: &str) -> Option<aws_sdk_rds::types::DbInstance> {
    match c.rds.describe_db_instances().db_instance_identifier(id).send().await {
        Ok(o) => o.db_instances().first().cloned(),
        Err(_) => None,
    }
}

pub(crate) async fn endpoint_of(c: &Clients, id: &str) -> String {
    let db = instance(c, id).await.unwrap_or_else(|| panic!("{id} exists"));
    let e = db.endpoint().expect("an endpoint");
    format!("{}:{}", e.address().unwrap(), e.port().unwrap())
}

pub(crate) async fn parameter(c: &Clients, d: &Deployment) -> String {
    c.ssm
        .get_parameter()
        .name(format!("/{}/db-endpoint", d.name))
        .send()
        .await
        .unwrap()
        .parameter()
        .and_then(|p| p.value())
        .unwrap()
        .to_string()
}

/// The user data of the launch template's default version.
pub(crate) async fn user_data(c: &Clients, d: &Deployment) -> String {
    let out = c
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(recorded(d, "launch-template", "id"))
        .versions("$Default")
        .send()
        .await
        .unwrap();
    let data = out.launch_template_versions()[0].launch_template_data().unwrap();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(data.user_data().expect("user data"))
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// The dashboard role's inline policy documents (URL-decoded enough to search for ARNs).
pub(crate) async fn role_policy(c: &Clients, d: &Deployment) -> String {
    let role = recorded(d, "ec2-role", "id");
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
        docs.push_str(got.policy_document());
    }
    docs.replace("%3A", ":").replace("%21", "!").replace("%2F", "/")
}

pub(crate) fn names_secret(user_data: &str, secret: &str) -> bool {
    user_data.contains(&format!("readonly DB_SECRET_ARN='{secret}'"))
}

/// The DB instances tagged with the deployment.
pub(crate) async fn db_instances(c: &Clients, dep: &str) -> Vec<String> {
    let mut v: Vec<String> = c
        .rds
        .describe_db_instances()
        .send()
        .await
        .unwrap()
        .db_instances()
        .iter()
        .filter(|db| {
            db.tag_list()
                .iter()
                .any(|t| t.key() == Some("pi-deploy:deployment") && t.value() == Some(dep))
        })
        .filter_map(|db| db.db_instance_identifier().map(String::from))
        .collect();
    v.sort();
    v
}

async fn set_storage(c: &Clients, id: &str, gib: i32) {
    c.rds
        .modify_db_instance()
        .db_instance_identifier(id)
        .allocated_storage(gib)
        .apply_immediately(true)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restore_from_a_snapshot_switches_the_deployment_and_abort_and_finish_work() {
    let c = clients().await;
    let d = Deployment::new("rst");
    let cfg = fleet_config(&d, 1, 3, 2);
    ok_config(&d, &cfg, &["up", "--ami", &common::ami('A'), "--yes"]);
    let old = recorded(&d, "db", "id");
    let old_secret = recorded(&d, "db", "secret_arn");
    let old_endpoint = endpoint_of(&c, &old).await;
    assert_eq!(parameter(&c, &d).await, old_endpoint);

    // The marker: the configured 20 GiB when the snapshot is taken, 40 after it.
    let snap = ok_config(&d, &cfg, &["snapshot", "--label", "marker", "--no-files", "--json"]);
    let snapshot = outputs(&snap)["db_snapshot"].as_str().unwrap().to_string();
    set_storage(&c, &old, 40).await;

    // Bad input is refused before anything (exit 2), naming the flag.
    for (args, flag) in [
        (vec!["restore", "--db-time", "yesterday"], "--db-time"),
        (vec!["restore", "--db-time", "2999-01-01T00:00:00Z"], "--db-time"),
        (vec!["restore", "--db-snapshot", "no-such-snapshot"], "--db-snapshot"),
    ] {
        let out = run_config(&d, &cfg, &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", show(&out));
        assert!(show(&out).contains(flag), "{}", show(&out));
    }
    assert!(d.state().get("restore").is_none(), "nothing recorded");
    assert_eq!(db_instances(&c, &d.name).await, std::slice::from_ref(&old));
    let nothing = ok_config(&d, &cfg, &["restore", "--finish"]);
    assert!(
        show(&nothing).contains("no restore is in progress"),
        "{}",
        show(&nothing)
    );

    // The restore, with a healthy target at every poll of the switch.
    let before = fleet_of(&d).await;
    let tg = recorded(&d, "tg", "id");
    let out = ok_keeping_a_healthy_target(
        &d,
        &cfg,
        &tg,
        &["restore", "--db-snapshot", &snapshot, "--yes", "--json"],
    );
    let o = outputs(&out);
    let new = o["db_instance"].as_str().unwrap().to_string();
    assert!(new.starts_with(&format!("{}-db-r", d.name)), "{new}");
    assert_eq!(o["kept_db_instance"], old.as_str());
    let steps: Vec<String> = events(&out)
        .iter()
        .filter(|e| e["event"] == "restore")
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect();
    for s in ["started", "restoring", "switching", "rolling", "kept"] {
        assert!(steps.contains(&s.to_string()), "{s} in {steps:?}");
    }

    // The restored instance holds the snapshot's data (the marker), with the blueprint's
    // settings and the deployment's tags; the old one is kept, unchanged.
    let restored = instance(&c, &new).await.expect("the restored instance");
    assert_eq!(restored.allocated_storage(), Some(20), "the snapshot's size");
    assert_eq!(restored.db_instance_status(), Some("available"));
    assert_eq!(
        restored.db_subnet_group().and_then(|g| g.db_subnet_group_name()),
        Some(pi_deploy::core::names::db_subnet_group(&d.name).as_str())
    );
    assert_eq!(restored.publicly_accessible(), Some(false));
    assert_eq!(restored.deletion_protection(), Some(false), "as the config says");
    let new_secret = restored
        .master_user_secret()
        .and_then(|s| s.secret_arn())
        .expect("a managed master secret")
        .to_string();
    assert_ne!(new_secret, old_secret);
    let tag = |k: &str| {
        restored
            .tag_list()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(String::from)
    };
    assert_eq!(tag("pi-deploy:deployment").as_deref(), Some(d.name.as_str()));
    assert_eq!(
        tag(pi_deploy::core::restore::SOURCE_TAG),
        Some(format!("snapshot:{snapshot}"))
    );
    let kept = instance(&c, &old).await.expect("the old instance is kept");
    assert_eq!(kept.allocated_storage(), Some(40));

    // The deployment points at it: the parameter, the records, the launch template's
    // default version, and every instance replaced from that version.
    assert_eq!(parameter(&c, &d).await, endpoint_of(&c, &new).await);
    assert_eq!(recorded(&d, "db", "id"), new);
    assert_eq!(recorded(&d, "db", "secret_arn"), new_secret);
    let ud = user_data(&c, &d).await;
    assert!(names_secret(&ud, &new_secret), "the user data names the new secret");
    // The dashboard role reads both secrets while the old instance is kept.
    let policy = role_policy(&c, &d).await;
    assert!(policy.contains(&new_secret) && policy.contains(&old_secret), "{policy}");
    let after = fleet_of(&d).await;
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after.iter().all(|i| !before.contains(i)),
        "every instance replaced: {after:?}"
    );
    let s = seen(&d).await;
    assert_eq!(s.version, default_version(&d).await.to_string());
    assert!(s.suspended.is_empty(), "{:?}", s.suspended);
    assert!(d.state().get("upgrade").is_none());
    assert_eq!(d.state()["restore"]["step"]["name"], "kept");

    // `outputs` and `status` say so; the same command again changes nothing; another
    // restore is refused.
    let outs = ok_config(&d, &cfg, &["outputs", "--json"]);
    let outs: serde_json::Value = serde_json::from_slice(&outs.stdout).unwrap();
    assert_eq!(outs["restore_kept_db_instance"], old.as_str(), "{outs}");
    assert_eq!(outs["db_endpoint"], endpoint_of(&c, &new).await.as_str(), "{outs}");
    let status = run_config(&d, &cfg, &["status"]);
    assert!(show(&status).contains("restore --finish"), "{}", show(&status));
    assert_eq!(
        status.status.code(),
        Some(0),
        "the kept instance is no leak: {}",
        show(&status)
    );
    // `plan` names the restore and has nothing to do: the records follow the restored
    // instance.
    let plan = run_config(&d, &cfg, &["plan", "--ami", &common::ami('A'), "--detailed-exitcode"]);
    assert!(show(&plan).contains("restore --finish"), "{}", show(&plan));
    assert_eq!(plan.status.code(), Some(0), "{}", show(&plan));
    let again = ok_config(&d, &cfg, &["restore", "--db-snapshot", &snapshot, "--yes", "--json"]);
    assert_eq!(outputs(&again)["db_instance"], new.as_str());
    assert_eq!(db_instances(&c, &d.name).await.len(), 2);
    let other = run_config(&d, &cfg, &["restore", "--latest", "--yes"]);
    assert_eq!(other.status.code(), Some(3), "{}", show(&other));

    // --abort: back to the old instance, every instance rolled again, the restored one gone.
    ok_keeping_a_healthy_target(
        &d,
        &cfg,
        &tg,
        &["restore", "--abort", "--skip-final-snapshot", "--json"],
    );
    assert_eq!(parameter(&c, &d).await, old_endpoint);
    assert_eq!(recorded(&d, "db", "id"), old);
    assert!(names_secret(&user_data(&c, &d).await, &old_secret));
    let policy = role_policy(&c, &d).await;
    assert!(
        policy.contains(&old_secret) && !policy.contains(&new_secret),
        "{policy}"
    );
    assert!(instance(&c, &new).await.is_none(), "{new} deleted");
    assert_eq!(db_instances(&c, &d.name).await, std::slice::from_ref(&old));
    assert!(d.state().get("restore").is_none());
    assert!(d.state().get("upgrade").is_none());

    // Again, then --finish: the old instance deleted, the restored one serves.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let out = ok_config(&d, &cfg, &["restore", "--db-snapshot", &snapshot, "--yes", "--json"]);
    let new = outputs(&out)["db_instance"].as_str().unwrap().to_string();
    let out = ok_config(
        &d,
        &cfg,
        &["restore", "--finish", "--skip-final-snapshot", "--yes", "--json"],
    );
    assert_eq!(outputs(&out)["deleted"], old.as_str());
    assert!(instance(&c, &old).await.is_none(), "{old} deleted");
    assert_eq!(db_instances(&c, &d.name).await, std::slice::from_ref(&new));
    assert_eq!(recorded(&d, "db", "id"), new);
    assert_eq!(parameter(&c, &d).await, endpoint_of(&c, &new).await);
    assert!(d.state().get("restore").is_none());
    let policy = role_policy(&c, &d).await;
    let secret = recorded(&d, "db", "secret_arn");
    assert!(policy.contains(&secret) && !policy.contains(&old_secret), "{policy}");
    // Nothing left to do for `up`: `plan` is empty.
    let plan = run_config(&d, &cfg, &["plan", "--ami", &common::ami('A'), "--detailed-exitcode"]);
    assert_eq!(plan.status.code(), Some(0), "{}", show(&plan));

    let gone = d.destroy();
    let left = census::everything(&c, &d.name).await;
    assert!(left.is_empty(), "left behind: {left:?}\n{}", show(&gone));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_point_in_time_restore_switches_and_destroy_after_it_leaves_nothing() {
    let c = clients().await;
    let d = Deployment::new("rpit");
    let cfg = fleet_config(&d, 1, 2, 1);
    ok_config(&d, &cfg, &["up", "--ami", &common::ami('A'), "--yes"]);
    let old = recorded(&d, "db", "id");
    let at = (chrono::Utc::now() - chrono::Duration::seconds(5))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let out = ok_config(&d, &cfg, &["restore", "--db-time", &at, "--yes", "--json"]);
    let new = outputs(&out)["db_instance"].as_str().unwrap().to_string();
    let restored = instance(&c, &new).await.expect("restored");
    assert!(restored.master_user_secret().is_some());
    assert_eq!(parameter(&c, &d).await, endpoint_of(&c, &new).await);
    assert_eq!(recorded(&d, "db", "id"), new);
    assert!(names_secret(
        &user_data(&c, &d).await,
        &recorded(&d, "db", "secret_arn")
    ));
    assert_eq!(db_instances(&c, &d.name).await.len(), 2);
    assert_eq!(
        restored
            .tag_list()
            .iter()
            .find(|t| t.key() == Some(pi_deploy::core::restore::SOURCE_TAG))
            .and_then(|t| t.value()),
        Some(format!("time:{at}").as_str())
    );
    assert!(instance(&c, &old).await.is_some(), "the old instance is kept");

    // Unfinished: destroy deletes both instances, and nothing else is left.
    let gone = d.destroy();
    assert!(db_instances(&c, &d.name).await.is_empty(), "{}", show(&gone));
    let left = census::everything(&c, &d.name).await;
    assert!(left.is_empty(), "left behind: {left:?}\n{}", show(&gone));
}

/// A snapshot taken before a major engine upgrade comes up on the old major, which the
/// deployment's parameter group (of the new family) cannot serve: RDS would refuse the
/// restore, or worse, after the record was made. pi-deploy refuses it first (exit 2,
/// naming --db-snapshot and both versions), with nothing recorded or created.
#[tokio::test(flavor = "multi_thread")]
async fn a_snapshot_from_before_a_major_upgrade_is_refused_before_anything() {
    let c = clients().await;
    let d = Deployment::new("rmaj");
    let engine = |v: &str| {
        common::config(
            &d,
            &format!("[database]\ndeletion_protection = false\nengine_version = \"{v}\"\n"),
        )
    };
    let ami = common::ami('A');
    let before = engine("10.11");
    ok_config(&d, &before, &["up", "--ami", &ami, "--yes"]);
    let snap = ok_config(&d, &before, &["snapshot", "--no-files", "--json"]);
    let snapshot = outputs(&snap)["db_snapshot"].as_str().unwrap().to_string();
    let after = engine("11.4");
    ok_config(&d, &after, &["up", "--ami", &ami, "--yes"]);

    let out = run_config(&d, &after, &["restore", "--db-snapshot", &snapshot, "--yes"]);
    let text = show(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    for part in ["--db-snapshot", "10.11", "mariadb11.4", &snapshot] {
        assert!(text.contains(part), "{part} in {text}");
    }
    assert!(d.state().get("restore").is_none(), "nothing recorded");
    assert_eq!(db_instances(&c, &d.name).await.len(), 1, "no instance restored");
    ok_config(&d, &after, &["destroy", "--yes"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_state_lost_status_and_destroy_find_the_restored_instance_by_its_tags() {
    let c = clients().await;
    let d = Deployment::new("rlost");
    let cfg = fleet_config(&d, 1, 1, 1);
    ok_config(&d, &cfg, &["up", "--ami", &common::ami('A'), "--yes"]);
    let out = ok_config(&d, &cfg, &["restore", "--latest", "--yes", "--json"]);
    let new = outputs(&out)["db_instance"].as_str().unwrap().to_string();
    assert_eq!(db_instances(&c, &d.name).await.len(), 2);

    // The state that named it is gone: found by its tags, not only `<deployment>-db`.
    d.remove_state();
    let status = run_config(&d, &cfg, &["status", "--json"]);
    assert!(show(&status).contains(&new), "{}", show(&status));
    let gone = d.destroy();
    assert!(db_instances(&c, &d.name).await.is_empty(), "{}", show(&gone));
    let left = census::everything(&c, &d.name).await;
    assert!(left.is_empty(), "left behind: {left:?}\n{}", show(&gone));
}
