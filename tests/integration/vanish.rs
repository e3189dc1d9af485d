//! A deployment whose resources vanished (issue 17 item 4; issue 15 "a resource deleted by
//! hand is created again"): every resource of a full deployment (licence secret, domain and
//! certificate included) is deleted behind pi-deploy's back. Then `plan` lists every one of
//! them as to be created, `status` reports each missing without aborting, `up` creates
//! everything again, a second `plan` says no changes, and `destroy` leaves nothing. A licence
//! secret only scheduled for deletion is missing too, and `up` restores it (same ARN).

use std::collections::BTreeSet;
use std::time::Instant;

use crate::census;
use crate::common::{Deployment, ami, clients, config, id, import_certificate, run_with, show};

const LICENCE_ENV: &str = "PI_DEPLOY_TEST_VANISHED_LICENCE";
const LICENCE: &str = "LICENCE-5678";

/// A run with the config and the licence's environment; its output.
fn run(d: &Deployment, cfg: &str, args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend(["--config", cfg]);
    run_with(d, &all, &[(LICENCE_ENV, LICENCE)])
}

/// `plan --json --detailed-exitcode`: the document and the exit code (0 no changes, 4 pending).
fn plan(d: &Deployment, cfg: &str) -> (serde_json::Value, i32) {
    let a = ami('A');
    let out = run(d, cfg, &["plan", "--ami", &a, "--json", "--detailed-exitcode"]);
    let code = out.status.code().unwrap_or(-1);
    assert!(code == 0 || code == 4, "plan failed: {code}\n{}", show(&out));
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("plan --json: {e}\n{}", show(&out)));
    (doc, code)
}

/// The keys `plan` gives `action`.
fn keys_with(plan: &serde_json::Value, action: &str) -> BTreeSet<String> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] == action)
        .map(|s| s["key"].as_str().unwrap().to_string())
        .collect()
}

fn recorded_keys(d: &Deployment) -> BTreeSet<String> {
    d.state()["resources"].as_object().unwrap().keys().cloned().collect()
}

/// What a raw SDK error looks like on the terminal (Debug dumps of the error or response).
fn has_raw_sdk_error(text: &str) -> bool {
    ["ServiceError {", "DispatchFailure", "raw: Response", "unhandled error"]
        .iter()
        .any(|m| text.contains(m))
}

fn up(d: &Deployment, cfg: &str) -> (std::process::Output, f64) {
    let a = ami('A');
    let started = Instant::now();
    let out = run(d, cfg, &["up", "--ami", &a, "--yes"]);
    (out, started.elapsed().as_secs_f64())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vanished_deployment_is_planned_reported_and_created_again() {
    let d = Deployment::new("gone");
    let c = clients().await;
    let zone_name = format!("{}.example.com", d.name);
    let domain = format!("dash.{zone_name}");
    let zone = c
        .route53
        .create_hosted_zone()
        .name(&zone_name)
        .caller_reference(&d.name)
        .send()
        .await
        .unwrap();
    let zone_id = zone
        .hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string();
    let cert = import_certificate(&c, &domain).await;
    let cfg = config(
        &d,
        &format!(
            "hosted_zone_id = \"{zone_id}\"\ndomain_name = \"{domain}\"\ncertificate_arn = \"{cert}\"\n\n\
             [licence]\nenv = \"{LICENCE_ENV}\"\n\n[database]\ndeletion_protection = false\n"
        ),
    );
    let cfg = cfg.to_str().unwrap();

    let (first, first_s) = up(&d, cfg);
    assert!(first.status.success(), "{}", show(&first));
    let keys = recorded_keys(&d);
    for kind_key in ["vpc", "tg", "alb", "dns", "licence"] {
        assert!(
            keys.iter().any(|k| k == kind_key || k.starts_with(kind_key)),
            "the deployment has no `{kind_key}`: {keys:?}"
        );
    }
    let before = d.state();

    d.delete_behind_its_back(&["--config", cfg], &[(LICENCE_ENV, LICENCE)]);
    let left = census::everything(&c, &d.name).await;
    assert!(left.is_empty(), "the destroy behind its back left {left:?}");

    // `plan`: every recorded resource is to be created again, none "nothing".
    let (doc, code) = plan(&d, cfg);
    assert_eq!(code, 4, "plan says no changes over a vanished deployment: {doc}");
    let creates = keys_with(&doc, "create");
    let not_created: Vec<&String> = keys.iter().filter(|k| !creates.contains(*k)).collect();
    assert!(
        not_created.is_empty(),
        "plan does not create {not_created:?} again:\n{doc:#}"
    );
    assert!(keys_with(&doc, "nothing").is_empty(), "{doc:#}");

    // `status`: each one reported missing, a report (exit 1), no raw SDK error.
    let started = Instant::now();
    let status = run(&d, cfg, &["status", "--json"]);
    let status_s = started.elapsed().as_secs_f64();
    assert_eq!(status.status.code(), Some(1), "{}", show(&status));
    assert!(!has_raw_sdk_error(&show(&status)), "{}", show(&status));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout)
        .unwrap_or_else(|e| panic!("status printed no report ({e}):\n{}", show(&status)));
    let rows = report["resources"].as_array().unwrap();
    assert_eq!(rows.len(), keys.len());
    let not_missing: Vec<String> = rows
        .iter()
        .filter(|r| r["live"] != "missing")
        .map(|r| format!("{} {}", r["key"], r["live"]))
        .collect();
    assert!(not_missing.is_empty(), "not reported missing: {not_missing:?}");
    let human = run(&d, cfg, &["status"]);
    assert_eq!(human.status.code(), Some(1), "{}", show(&human));
    assert!(!has_raw_sdk_error(&show(&human)), "{}", show(&human));

    // `up` creates everything again.
    let (again, again_s) = up(&d, cfg);
    assert!(again.status.success(), "{}", show(&again));
    let after = d.state();
    let same_vpc = id(&after, "vpc") == id(&before, "vpc");
    assert!(!same_vpc, "the VPC was not created again");
    let built = census::everything(&c, &d.name).await;
    assert!(!built.is_empty());
    let (doc, code) = plan(&d, cfg);
    assert_eq!(code, 0, "a second plan is not empty:\n{doc:#}");
    let status = run(&d, cfg, &["status", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&status.stdout)
        .unwrap_or_else(|e| panic!("status printed no report ({e}):\n{}", show(&status)));
    let missing: Vec<&serde_json::Value> = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["live"] == "missing")
        .map(|r| &r["key"])
        .collect();
    assert!(missing.is_empty(), "still missing after up: {missing:?}");

    // A licence secret only scheduled for deletion (DeletedDate set) is missing too; `up`
    // restores it rather than failing on the name it still holds.
    let licence_key = keys.iter().find(|k| k.starts_with("licence")).unwrap().clone();
    let arn = id(&after, &licence_key);
    c.secrets
        .delete_secret()
        .secret_id(&arn)
        .recovery_window_in_days(7)
        .send()
        .await
        .unwrap();
    let (doc, code) = plan(&d, cfg);
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(
        keys_with(&doc, "create"),
        BTreeSet::from([licence_key.clone()]),
        "{doc:#}"
    );
    let (restored, _) = up(&d, cfg);
    assert!(restored.status.success(), "{}", show(&restored));
    let described = c.secrets.describe_secret().secret_id(&arn).send().await.unwrap();
    assert!(
        described.deleted_date().is_none(),
        "the secret is still scheduled for deletion"
    );
    assert_eq!(id(&d.state(), &licence_key), arn, "not the restored secret");
    let value = c.secrets.get_secret_value().secret_id(&arn).send().await.unwrap();
    assert_eq!(value.secret_string(), Some(LICENCE));
    let (doc, code) = plan(&d, cfg);
    assert_eq!(code, 0, "{doc:#}");

    let destroyed = run(
        &d,
        cfg,
        &[
            "destroy",
            "--yes",
            "--skip-final-snapshot",
            "--disable-deletion-protection",
        ],
    );
    assert!(destroyed.status.success(), "{}", show(&destroyed));
    let left = census::everything(&c, &d.name).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!d.state_exists());
    c.route53.delete_hosted_zone().id(&zone_id).send().await.ok();
    eprintln!(
        "vanished deployment: {} resources; first up {first_s:.1} s, status {status_s:.1} s (all missing), up again {again_s:.1} s",
        keys.len()
    );
}
