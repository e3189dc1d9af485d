//! Usable early (issue 20) on the emulator, in its latency mode (src/aws/fault/latency.rs)
//! so that the Single-AZ create and the conversion to Multi-AZ take their scaled model time
//! (moto itself answers both at once): a full `up` tells the usable moment before the
//! conversion ends, ends Multi-AZ with the database's checks passing, and says both times in
//! its summary; a second `up` changes nothing; an existing deployment (the standby node not
//! recorded) is adopted, not modified; `usable_early = false` creates the database Multi-AZ
//! with no standby node.

use crate::common::{Deployment, ami, block, clients, config, count_status, events, ok_with, out, show};

/// 1/100: the Single-AZ create 3 s, the conversion 4.2 s, an instance's boot after the
/// endpoint 1.8 s.
const LATENCY: (&str, &str) = ("PI_DEPLOY_LATENCY", "0.01");

fn position(ev: &[serde_json::Value], what: impl Fn(&serde_json::Value) -> bool) -> Option<usize> {
    ev.iter().position(what)
}

fn resource_event(key: &'static str, status: &'static str) -> impl Fn(&serde_json::Value) -> bool {
    move |e| e["event"] == "resource" && e["key"] == key && e["status"] == status
}

/// The database as the verifier checks it: Multi-AZ with nothing pending, encrypted, not
/// public, backups kept, deletion protection on.
async fn check_database(c: &pi_deploy::aws::Clients, id: &str) {
    let got = c
        .rds
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .unwrap();
    assert_eq!(got.db_instances().len(), 1);
    let db = &got.db_instances()[0];
    assert_eq!(db.multi_az(), Some(true), "{db:?}");
    assert_eq!(db.pending_modified_values().and_then(|p| p.multi_az()), None);
    assert_eq!(db.db_instance_status(), Some("available"));
    assert_eq!(db.storage_encrypted(), Some(true));
    assert_eq!(db.publicly_accessible(), Some(false));
    assert_eq!(db.backup_retention_period(), Some(7));
    assert_eq!(db.deletion_protection(), Some(true));
    // One database for the deployment, whatever its name.
    let all = c.rds.describe_db_instances().send().await.unwrap();
    let ours = all
        .db_instances()
        .iter()
        .filter(|d| d.db_instance_identifier() == Some(id))
        .count();
    assert_eq!(ours, 1);
}

#[test]
fn the_dashboard_is_usable_before_the_standby_and_up_ends_multi_az() {
    let d = Deployment::new("early");
    let a = ami('A');
    let up = ["up", "--ami", a.as_str(), "--yes", "--json"];
    let first = ok_with(&d, &up, &[LATENCY]);
    let ev = events(&first);
    let usable =
        position(&ev, |e| e["event"] == "usable").unwrap_or_else(|| panic!("no usable event:\n{}", show(&first)));
    let standby_ready = position(&ev, resource_event("db-standby", "ready")).expect("db-standby ready");
    let standby_created = position(&ev, resource_event("db-standby", "created")).expect("the conversion was asked for");
    let dashboard_ready = position(&ev, resource_event("dashboard", "ready")).expect("dashboard ready");
    assert!(
        usable < standby_ready,
        "the usable event ({usable}) comes after the conversion's end ({standby_ready})"
    );
    assert_eq!(
        usable,
        dashboard_ready + 1,
        "told right when the dashboard check passes"
    );
    // The endpoint was published with the instance still Single-AZ: the conversion was
    // asked for by this run, after it.
    let endpoint_ready = position(&ev, resource_event("db-endpoint", "ready")).unwrap();
    assert!(endpoint_ready < standby_created);
    let st = d.state();
    assert_eq!(ev[usable]["url"].as_str(), Some(out(&st, "dashboard", "id").as_str()));
    let last = ev.last().unwrap();
    assert_eq!(last["event"], "run_finished");
    assert_eq!(last["ok"], true);
    let (usable_ms, elapsed_ms) = (
        last["usable_ms"].as_u64().unwrap(),
        last["elapsed_ms"].as_u64().unwrap(),
    );
    assert_eq!(Some(usable_ms), ev[usable]["elapsed_ms"].as_u64());
    assert!(
        usable_ms < elapsed_ms,
        "usable {usable_ms} ms, complete {elapsed_ms} ms"
    );
    println!(
        "usable early on the emulator (latency 1/100): usable after {usable_ms} ms, complete after {elapsed_ms} ms"
    );

    let c = block(clients());
    let id = out(&st, "db", "id");
    block(check_database(&c, &id));
    assert_eq!(st["resources"]["db-standby"]["status"], "ready");

    // Nothing left to do.
    let again = events(&d.up(&["--json"]));
    for status in ["created", "updating", "adopted"] {
        assert_eq!(count_status(&again, status), 0, "{status}: {again:?}");
    }

    // An existing deployment (before usable early): the standby node is found Multi-AZ and
    // adopted, never modified.
    let mut st = d.state();
    st["resources"].as_object_mut().unwrap().remove("db-standby");
    d.write_state(&serde_json::to_vec_pretty(&st).unwrap());
    let adopted = events(&d.up(&["--json"]));
    assert!(
        position(&adopted, resource_event("db-standby", "adopted")).is_some(),
        "{adopted:?}"
    );
    assert_eq!(count_status(&adopted, "created"), 0, "{adopted:?}");
    block(check_database(&c, &id));

    // `status` shows no drift of Multi-AZ on the instance or its standby.
    let status = d.run(&["status", "--json"]);
    let report: serde_json::Value =
        serde_json::from_slice(&status.stdout).unwrap_or_else(|_| panic!("{}", show(&status)));
    for r in report["resources"].as_array().unwrap() {
        if r["key"] == "db" || r["key"] == "db-standby" {
            assert!(r.get("inspection").and_then(|i| i.get("drift")).is_none(), "{r}");
        }
    }
    d.destroy();
}

#[test]
fn usable_early_off_creates_the_database_multi_az_with_no_standby_node() {
    let d = Deployment::new("early-off");
    let cfg = config(&d, "[database]\nusable_early = false\n");
    let a = ami('A');
    let up = [
        "up",
        "--ami",
        a.as_str(),
        "--yes",
        "--json",
        "--config",
        cfg.to_str().unwrap(),
    ];
    let plan = d.ok(&["plan", "--ami", a.as_str(), "--json", "--config", cfg.to_str().unwrap()]);
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(plan["database_path"], "multi_az_at_create");
    let ev = events(&ok_with(&d, &up, &[LATENCY]));
    let st = d.state();
    assert!(st["resources"].get("db-standby").is_none());
    assert!(!ev.iter().any(|e| e["key"] == "db-standby"));
    // Usable when the check passes, which is also (nearly) the end here.
    assert!(position(&ev, |e| e["event"] == "usable").is_some());
    let c = block(clients());
    let id = out(&st, "db", "id");
    block(check_database(&c, &id));
    d.destroy();
}

#[test]
fn plan_says_which_path_up_takes() {
    let d = Deployment::new("early-plan");
    let a = ami('A');
    let plan = d.ok(&["plan", "--ami", a.as_str(), "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    assert_eq!(json["database_path"], "usable_early");
    let text = d.ok(&["plan", "--ami", a.as_str()]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("usable early"), "{text}");
}
