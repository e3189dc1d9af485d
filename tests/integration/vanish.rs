//! A deployment whose resources vanished (issue 17 item 4; issue 15 "a resource deleted by
//! hand is created again"): every resource of a full deployment (licence secret, domain and
//! certificate included) is deleted behind pi-deploy's back. Then `plan` lists every one of
//! them as to be created, `status` reports each missing without aborting, `up` creates
//! everything again, a second `plan` says no changes, and `destroy` leaves nothing. A licence
//! secret only scheduled for deletion is missing too, and `up` restores it (same ARN). Then
//! part of it deleted by hand (the load balancer and the EC2 role): what still exists but
//! points at them (the DNS record, the instance profile) is updated, not left stale.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::census;
use crate::common::{Deployment, ami, clients, config, id, out, run_with, show, zone_and_certificate};

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
    let (zone_id, domain, cert) = zone_and_certificate(&c, &d).await;
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

    // Part of it deleted by hand: the load balancer (its deletion protection turned off
    // first, as AWS requires; its listeners go with it) and the EC2 role (taken out of its
    // instance profile first, as IAM requires). The DNS record and the instance profile are
    // still there, pointing at what is gone: they are updated, not left.
    let st = d.state();
    let old_alb = id(&st, "alb");
    let refused = c.elb.delete_load_balancer().load_balancer_arn(&old_alb).send().await;
    assert!(refused.is_err(), "pi-deploy's load balancer is protected from deletion");
    c.elb
        .modify_load_balancer_attributes()
        .load_balancer_arn(&old_alb)
        .attributes(
            aws_sdk_elasticloadbalancingv2::types::LoadBalancerAttribute::builder()
                .key("deletion_protection.enabled")
                .value("false")
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.elb
        .delete_load_balancer()
        .load_balancer_arn(&old_alb)
        .send()
        .await
        .unwrap();
    delete_role_by_hand(&c, &id(&st, "ec2-role"), &id(&st, "instance-profile")).await;
    let (doc, code) = plan(&d, cfg);
    assert_eq!(code, 4, "{doc:#}");
    let creates = keys_with(&doc, "create");
    for k in ["alb", "listener-http", "listener-https", "ec2-role", "dashboard"] {
        assert!(
            creates.contains(k),
            "`{k}` is not planned as create: {creates:?}\n{doc:#}"
        );
    }
    let updates = keys_with(&doc, "update");
    assert!(updates.contains("instance-profile"), "{doc:#}");
    assert!(updates.iter().any(|k| k.starts_with("dns")), "{doc:#}");
    let (repaired, repaired_s) = up(&d, cfg);
    assert!(repaired.status.success(), "{}", show(&repaired));
    let st = d.state();
    assert_ne!(id(&st, "alb"), old_alb, "the load balancer was not created again");
    // moto names every load balancer `<name>-1.<region>.elb.amazonaws.com`, so the new name
    // equals the old one here; on AWS it differs (the mapping is unit-tested in dns_record.rs).
    let new_dns = out(&st, "alb", "dns_name");
    let records = c
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .send()
        .await
        .unwrap();
    let alias = records
        .resource_record_sets()
        .iter()
        .find(|r| r.name().trim_end_matches('.') == domain)
        .and_then(|r| r.alias_target())
        .map(|a| a.dns_name().trim_end_matches('.').to_ascii_lowercase())
        .unwrap_or_default();
    assert!(
        alias.ends_with(&new_dns.to_ascii_lowercase()),
        "{alias} is not {new_dns}"
    );
    let profile = c
        .iam
        .get_instance_profile()
        .instance_profile_name(id(&st, "instance-profile"))
        .send()
        .await
        .unwrap();
    let roles: Vec<&str> = profile
        .instance_profile()
        .unwrap()
        .roles()
        .iter()
        .map(|r| r.role_name())
        .collect();
    assert_eq!(roles, [id(&st, "ec2-role").as_str()]);
    let (doc, code) = plan(&d, cfg);
    assert_eq!(code, 0, "after repairing the load balancer and the role:\n{doc:#}");

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
        "vanished deployment: {} resources; first up {first_s:.1} s, status {status_s:.1} s (all missing), up again {again_s:.1} s; \
         load balancer and EC2 role deleted by hand, repaired in {repaired_s:.1} s",
        keys.len()
    );
}

/// Delete an IAM role as a person would: out of its instance profile, its policies detached
/// and deleted, then the role.
async fn delete_role_by_hand(c: &pi_deploy::aws::Clients, role: &str, profile: &str) {
    c.iam
        .remove_role_from_instance_profile()
        .instance_profile_name(profile)
        .role_name(role)
        .send()
        .await
        .unwrap();
    let attached = c
        .iam
        .list_attached_role_policies()
        .role_name(role)
        .send()
        .await
        .unwrap();
    for p in attached.attached_policies() {
        c.iam
            .detach_role_policy()
            .role_name(role)
            .policy_arn(p.policy_arn().unwrap())
            .send()
            .await
            .unwrap();
    }
    let inline = c.iam.list_role_policies().role_name(role).send().await.unwrap();
    for name in inline.policy_names() {
        c.iam
            .delete_role_policy()
            .role_name(role)
            .policy_name(name)
            .send()
            .await
            .unwrap();
    }
    c.iam.delete_role().role_name(role).send().await.unwrap();
}
