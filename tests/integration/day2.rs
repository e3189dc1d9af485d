//! Day 2 on the emulator: a live deployment converges to its config. Each setting is changed
//! in the config, `plan` shows exactly that change with its action, `up` applies it, AWS read
//! back shows the new value, and a second `plan` shows no changes. Drift made by hand and a
//! resource deleted by hand are repaired; what the config no longer wants is deleted.

use std::path::Path;

use crate::common::{
    Deployment, ami, assert_flow_log_into_the_logs_bucket, clients, config, db_parameter, events, id,
    import_certificate, is_read_only, ok_with, on_major_version, run_with, show, succeeded, target_group_attributes,
    vpc_flow_logs,
};

/// The changes `plan --json` lists for `key`, as (attribute, old, new, action).
fn planned(plan: &serde_json::Value, key: &str) -> Vec<(String, String, String, String)> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["key"] == key)
        .flat_map(|s| s["changes"].as_array().cloned().unwrap_or_default())
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
            (s("attribute"), s("old"), s("new"), s("action"))
        })
        .collect()
}

fn action_of(plan: &serde_json::Value, key: &str) -> String {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .map(|s| s["action"].as_str().unwrap_or_default().to_string())
        .unwrap_or_else(|| "absent".into())
}

/// `plan --json --detailed-exitcode`: the document and the exit code.
fn plan(d: &Deployment, cfg: &Path) -> (serde_json::Value, i32) {
    let ami = ami('A');
    let out = run_with(
        d,
        &[
            "plan",
            "--ami",
            &ami,
            "--config",
            cfg.to_str().unwrap(),
            "--json",
            "--detailed-exitcode",
        ],
        &[],
    );
    let code = out.status.code().unwrap_or(-1);
    assert!(code == 0 || code == 4, "plan failed: {code}\n{}", show(&out));
    let doc = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("plan --json: {e}\n{}", show(&out)));
    (doc, code)
}

/// `up --json` with this config, required to succeed: its events.
fn up(d: &Deployment, cfg: &Path) -> Vec<serde_json::Value> {
    events(&succeeded_up(d, cfg, &[]))
}

/// `up --json --yes` with this config and extra environment: its output.
fn up_run(d: &Deployment, cfg: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let ami = ami('A');
    run_with(
        d,
        &[
            "up",
            "--ami",
            &ami,
            "--yes",
            "--config",
            cfg.to_str().unwrap(),
            "--json",
        ],
        env,
    )
}

/// The same, required to succeed.
fn succeeded_up(d: &Deployment, cfg: &Path, env: &[(&str, &str)]) -> std::process::Output {
    succeeded(
        &["up", "--yes", "--json", "--config", cfg.to_str().unwrap()],
        up_run(d, cfg, env),
    )
}

/// Forbidden: `up --json` with this config is refused with exit 2 before any resource is
/// touched (no `resource` event). Its output, for the caller to check what it names.
fn up_refused(d: &Deployment, cfg: &Path) -> std::process::Output {
    let out = up_run(d, cfg, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(
        events(&out).iter().all(|e| e["event"] != "resource"),
        "nothing is touched: {}",
        show(&out)
    );
    out
}

/// A settings change planned as an in-place update: (attribute, old, new, "update").
fn update(attribute: &str, old: &str, new: &str) -> (String, String, String, String) {
    (
        attribute.to_string(),
        old.to_string(),
        new.to_string(),
        "update".to_string(),
    )
}

/// `status --json` after drift made by hand: exit 1, and the report of resource `key`.
fn drifted(d: &Deployment, cfg: &Path, key: &str) -> serde_json::Value {
    let status = run_with(d, &["status", "--config", cfg.to_str().unwrap(), "--json"], &[]);
    assert_eq!(status.status.code(), Some(1), "{}", show(&status));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no {key} in the status: {report:#}"))
        .clone()
}

/// `destroy` with this config (no final snapshot).
fn destroy(d: &Deployment, cfg: &Path) {
    ok_with(
        d,
        &[
            "destroy",
            "--yes",
            "--skip-final-snapshot",
            "--config",
            cfg.to_str().unwrap(),
        ],
        &[],
    );
}

fn changed_keys(ev: &[serde_json::Value]) -> Vec<String> {
    let mut keys: Vec<String> = ev
        .iter()
        .filter(|e| e["event"] == "resource" && e["status"] == "updated")
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

const BASE: &str = "[database]\ndeletion_protection = false\n";

#[tokio::test(flavor = "multi_thread")]
async fn compute_settings_are_planned_applied_read_back_and_drift_is_repaired() {
    let d = Deployment::new("d2c");
    let cfg = config(&d, BASE);
    up(&d, &cfg);
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 0, "a fresh deployment has nothing to change: {doc:#}");

    // A no-change `up` makes read calls only, and changes nothing.
    let counts = d.state_dir.path().join("no-change.calls.json");
    let started = std::time::Instant::now();
    let out = succeeded_up(&d, &cfg, &[("PI_DEPLOY_CALL_COUNTS", counts.to_str().unwrap())]);
    let wall = started.elapsed();
    assert!(changed_keys(&events(&out)).is_empty(), "{}", show(&out));
    let calls: std::collections::BTreeMap<String, u64> =
        serde_json::from_slice(&std::fs::read(&counts).unwrap()).unwrap();
    let writes: Vec<&String> = calls.keys().filter(|op| !is_read_only(op)).collect();
    assert!(writes.is_empty(), "a no-change up made mutating calls: {writes:?}");
    eprintln!(
        "no-change up: {} read calls in {:.2} s (moto): {calls:?}",
        calls.values().sum::<u64>(),
        wall.as_secs_f64()
    );

    // Every compute setting at once; the plan names each, with its action.
    let changed = format!(
        "{BASE}[scaling]\nmax = 8\nhealth_check_grace_seconds = 120\nlifecycle_heartbeat_seconds = 3000\n\
         scale_out_cpu_percent = 80.0\nscale_in_cpu_percent = 10.0\n\
         [health_check]\npath = \"/health\"\nmatcher = \"200\"\ninterval_seconds = 20\n\
         deregistration_delay_seconds = 60\nstickiness_seconds = 3600\n\
         [logging]\nalb_access_log_days = 30\n"
    );
    let cfg = config(&d, &changed);
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4, "changes pending: {doc:#}");
    assert_eq!(
        planned(&doc, "asg"),
        vec![
            update("max_size", "5", "8"),
            update("health_check_grace_seconds", "300", "120")
        ]
    );
    assert_eq!(
        planned(&doc, "tg"),
        vec![
            update("health_check_path", "/", "/health"),
            update("health_check_matcher", "200,302", "200"),
            update("health_check_interval_seconds", "15", "20"),
            update("deregistration_delay_seconds", "300", "60"),
            update("stickiness", "lb_cookie 86400 s", "lb_cookie 3600 s"),
        ]
    );
    assert_eq!(
        planned(&doc, "lifecycle-hook"),
        vec![update("heartbeat_seconds", "2400", "3000")]
    );
    assert_eq!(planned(&doc, "cpu-high-alarm"), vec![update("threshold", "70", "80")]);
    assert_eq!(planned(&doc, "cpu-low-alarm"), vec![update("threshold", "20", "10")]);
    assert_eq!(
        planned(&doc, "logs-bucket"),
        vec![update("log_expiry_days", "90", "30")]
    );
    for key in ["vpc", "alb", "listener-http", "db", "bucket", "scale-out-policy"] {
        assert_eq!(action_of(&doc, key), "nothing", "{key}");
    }
    assert_eq!(doc["counts"]["update"], 6, "{doc:#}");

    let ev = up(&d, &cfg);
    assert_eq!(
        changed_keys(&ev),
        vec![
            "asg",
            "cpu-high-alarm",
            "cpu-low-alarm",
            "lifecycle-hook",
            "logs-bucket",
            "tg"
        ]
    );
    for e in &ev {
        assert!(
            !(e["event"] == "resource" && ["creating", "deleting"].contains(&e["status"].as_str().unwrap_or(""))),
            "a settings change creates or deletes nothing: {e}"
        );
    }

    // Read back from AWS's side.
    let st = d.state();
    let c = clients().await;
    let lifecycle =
        c.s3.get_bucket_lifecycle_configuration()
            .bucket(id(&st, "logs-bucket"))
            .send()
            .await
            .unwrap();
    let expiry: Vec<Option<i32>> = lifecycle
        .rules()
        .iter()
        .map(|r| r.expiration().and_then(|e| e.days()))
        .collect();
    assert_eq!(expiry, [Some(30)], "{lifecycle:?}");
    let asg_name = id(&st, "asg");
    let g = c
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&asg_name)
        .send()
        .await
        .unwrap();
    let g = &g.auto_scaling_groups()[0];
    assert_eq!(g.max_size(), Some(8));
    assert_eq!(g.health_check_grace_period(), Some(120));
    let tg_arn = id(&st, "tg");
    let tg = c
        .elb
        .describe_target_groups()
        .target_group_arns(&tg_arn)
        .send()
        .await
        .unwrap();
    let tg = &tg.target_groups()[0];
    assert_eq!(tg.health_check_path(), Some("/health"));
    assert_eq!(tg.matcher().and_then(|m| m.http_code()), Some("200"));
    assert_eq!(tg.health_check_interval_seconds(), Some(20));
    let attrs = target_group_attributes(&c, &tg_arn).await;
    let attr = |k: &str| attrs.get(k).cloned();
    assert_eq!(attr("deregistration_delay.timeout_seconds").as_deref(), Some("60"));
    assert_eq!(attr("stickiness.lb_cookie.duration_seconds").as_deref(), Some("3600"));
    let hooks = c
        .autoscaling
        .describe_lifecycle_hooks()
        .auto_scaling_group_name(&asg_name)
        .send()
        .await
        .unwrap();
    assert_eq!(hooks.lifecycle_hooks()[0].heartbeat_timeout(), Some(3000));
    let alarms = c
        .cloudwatch
        .describe_alarms()
        .alarm_names(id(&st, "cpu-high-alarm"))
        .alarm_names(id(&st, "cpu-low-alarm"))
        .send()
        .await
        .unwrap();
    let mut thresholds: Vec<f64> = alarms.metric_alarms().iter().filter_map(|a| a.threshold()).collect();
    thresholds.sort_by(f64::total_cmp);
    assert_eq!(thresholds, vec![10.0, 80.0]);
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 0, "after up, nothing is left to change: {doc:#}");

    // Drift made by hand: `status` reports it, `plan` shows the repair, `up` makes it.
    c.autoscaling
        .update_auto_scaling_group()
        .auto_scaling_group_name(&asg_name)
        .max_size(3)
        .send()
        .await
        .unwrap();
    let asg = drifted(&d, &cfg, "asg");
    assert!(
        asg["drift"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["attribute"] == "max_size" && x["expected"] == "8" && x["actual"] == "3"),
        "{asg:#}"
    );
    let (doc, _) = plan(&d, &cfg);
    assert_eq!(planned(&doc, "asg"), vec![update("max_size", "3", "8")]);
    up(&d, &cfg);
    let g = c
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&asg_name)
        .send()
        .await
        .unwrap();
    assert_eq!(g.auto_scaling_groups()[0].max_size(), Some(8));

    // A resource deleted by hand is created again.
    c.cloudwatch
        .delete_alarms()
        .alarm_names(id(&st, "cpu-low-alarm"))
        .send()
        .await
        .unwrap();
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4);
    assert_eq!(action_of(&doc, "cpu-low-alarm"), "create", "{doc:#}");
    up(&d, &cfg);
    let alarms = c
        .cloudwatch
        .describe_alarms()
        .alarm_names(id(&st, "cpu-low-alarm"))
        .send()
        .await
        .unwrap();
    assert_eq!(alarms.metric_alarms().len(), 1);
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 0, "{doc:#}");

    destroy(&d, &cfg);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_added_later_gets_https_and_the_redirect_and_removed_goes_back() {
    let d = Deployment::new("d2t");
    let cfg = config(&d, BASE);
    up(&d, &cfg);
    let c = clients().await;
    let cert = import_certificate(&c, "dash.example.com").await;

    let with_cert = config(&d, &format!("certificate_arn = \"{cert}\"\n{BASE}"));
    let (doc, code) = plan(&d, &with_cert);
    assert_eq!(code, 4);
    assert_eq!(action_of(&doc, "listener-https"), "create", "{doc:#}");
    assert_eq!(action_of(&doc, "listener-http"), "update");
    let http = planned(&doc, "listener-http");
    assert!(
        http.iter()
            .any(|(a, _, n, act)| a == "action" && n == "redirect to HTTPS:443" && act == "update"),
        "{http:?}"
    );
    assert_eq!(action_of(&doc, "dashboard"), "update");

    up(&d, &with_cert);
    let st = d.state();
    let lb = id(&st, "alb");
    let listeners = c.elb.describe_listeners().load_balancer_arn(&lb).send().await.unwrap();
    let by_port = |p: i32| listeners.listeners().iter().find(|l| l.port() == Some(p)).cloned();
    let https = by_port(443).expect("a 443 listener");
    assert_eq!(https.certificates()[0].certificate_arn(), Some(cert.as_str()));
    let http = by_port(80).unwrap();
    assert_eq!(http.default_actions()[0].r#type().map(|t| t.as_str()), Some("redirect"));
    let outputs = ok_with(&d, &["outputs", "--json"], &[]);
    let outputs: serde_json::Value = serde_json::from_slice(&outputs.stdout).unwrap();
    assert!(
        outputs["dashboard_url"].as_str().unwrap().starts_with("https://"),
        "{outputs:#}"
    );
    assert_eq!(plan(&d, &with_cert).1, 0);

    // Removing the certificate deletes the 443 listener and forwards port 80 again.
    let cfg = config(&d, BASE);
    let (doc, _) = plan(&d, &cfg);
    assert_eq!(action_of(&doc, "listener-https"), "delete", "{doc:#}");
    up(&d, &cfg);
    let listeners = c.elb.describe_listeners().load_balancer_arn(&lb).send().await.unwrap();
    assert_eq!(listeners.listeners().len(), 1, "{listeners:?}");
    assert_eq!(
        listeners.listeners()[0].default_actions()[0]
            .r#type()
            .map(|t| t.as_str()),
        Some("forward")
    );
    assert!(d.state()["resources"].get("listener-https").is_none());
    assert_eq!(plan(&d, &cfg).1, 0);

    destroy(&d, &cfg);
}

#[tokio::test(flavor = "multi_thread")]
async fn data_settings_are_applied_in_place_and_a_storage_shrink_is_refused() {
    let d = Deployment::new("d2d");
    let cfg = config(&d, BASE);
    up(&d, &cfg);
    let c = clients().await;

    let changed = "[database]\ndeletion_protection = true\ninstance_class = \"db.t3.small\"\n\
                   allocated_storage_gib = 30\nbackup_retention_days = 14\nrotation_days = 7\n\
                   [storage]\nbucket_versioning = true\n[lambda]\nlog_retention_days = 60\n";
    let cfg = config(&d, changed);
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(
        planned(&doc, "db"),
        vec![
            update("instance_class", "db.t3.micro", "db.t3.small"),
            update("allocated_storage_gib", "20", "30"),
            update("backup_retention_days", "7", "14"),
            update("deletion_protection", "false", "true"),
        ]
    );
    assert_eq!(planned(&doc, "db-endpoint"), vec![update("rotation_days", "30", "7")]);
    assert_eq!(planned(&doc, "bucket"), vec![update("versioning", "off", "enabled")]);
    assert_eq!(
        planned(&doc, "lambda-log-group"),
        vec![update("retention_days", "365", "60")]
    );
    // The DB's error log group keeps the Lambda's retention too.
    assert_eq!(
        planned(&doc, "db-error-log-group"),
        vec![update("retention_days", "365", "60")]
    );
    let ev = up(&d, &cfg);
    assert_eq!(
        changed_keys(&ev),
        vec!["bucket", "db", "db-endpoint", "db-error-log-group", "lambda-log-group"]
    );

    // Read back from AWS's side.
    let st = d.state();
    let db = c
        .rds
        .describe_db_instances()
        .db_instance_identifier(id(&st, "db"))
        .send()
        .await
        .unwrap();
    let db = &db.db_instances()[0];
    assert_eq!(db.db_instance_class(), Some("db.t3.small"));
    assert_eq!(db.allocated_storage(), Some(30));
    assert_eq!(db.backup_retention_period(), Some(14));
    assert_eq!(db.deletion_protection(), Some(true));
    let secret = c
        .secrets
        .describe_secret()
        .secret_id(crate::common::out(&st, "db", "secret_arn"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        secret.rotation_rules().and_then(|r| r.automatically_after_days()),
        Some(7)
    );
    let v =
        c.s3.get_bucket_versioning()
            .bucket(id(&st, "bucket"))
            .send()
            .await
            .unwrap();
    assert_eq!(v.status().map(|s| s.as_str()), Some("Enabled"));
    let groups = c
        .logs
        .describe_log_groups()
        .log_group_name_prefix(id(&st, "lambda-log-group"))
        .send()
        .await
        .unwrap();
    assert_eq!(groups.log_groups()[0].retention_in_days(), Some(60));
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 0, "after up, nothing is left to change: {doc:#}");

    // Forbidden: RDS cannot shrink storage. Refused with exit 2, naming the field, before
    // any change (the recorded settings suffice: only the caller's identity is read).
    let shrink = config(
        &d,
        &changed.replace("allocated_storage_gib = 30", "allocated_storage_gib = 20"),
    );
    let out = up_refused(&d, &shrink);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("database.allocated_storage_gib") && err.contains("cannot shrink"),
        "{err}"
    );

    // Forbidden: another network (every CIDR moved to 10.1/16, a valid config on its own).
    // AWS cannot change a VPC's or a subnet's CIDR; without the refusal, `up` would rewrite
    // the ACLs and rules for addresses the subnets do not have.
    let moved = config(
        &d,
        &format!(
            "{changed}[network]\nvpc_cidr = \"10.1.0.0/16\"\n\
             public_subnet_cidrs = [\"10.1.2.0/24\", \"10.1.3.0/24\"]\n\
             app_subnet_cidrs = [\"10.1.0.0/24\", \"10.1.1.0/24\"]\n\
             db_subnet_cidrs = [\"10.1.4.0/24\", \"10.1.5.0/24\"]\n"
        ),
    );
    let ami = ami('A');
    let refused = run_with(&d, &["plan", "--ami", &ami, "--config", moved.to_str().unwrap()], &[]);
    assert_eq!(refused.status.code(), Some(2), "{}", show(&refused));
    let said = String::from_utf8_lossy(&refused.stderr);
    for field in [
        "network.vpc_cidr",
        "network.public_subnet_cidrs",
        "network.app_subnet_cidrs",
        "network.db_subnet_cidrs",
    ] {
        assert!(said.contains(field), "{field}: {said}");
    }
    let out = up_refused(&d, &moved);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("network.vpc_cidr") && err.contains("cannot change"),
        "{err}"
    );

    // A rule added by hand is removed; the group's own rules stay.
    let cfg = config(&d, changed);
    let sg = id(&st, "sg-db");
    c.ec2
        .authorize_security_group_ingress()
        .group_id(&sg)
        .ip_protocol("tcp")
        .from_port(22)
        .to_port(22)
        .cidr_ip("0.0.0.0/0")
        .send()
        .await
        .unwrap();
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4);
    let sg_changes = planned(&doc, "sg-db");
    assert!(
        sg_changes.len() == 1 && sg_changes[0].0 == "ingress" && sg_changes[0].1.contains("tcp 22 from 0.0.0.0/0"),
        "{sg_changes:?}"
    );
    up(&d, &cfg);
    let g = c.ec2.describe_security_groups().group_ids(&sg).send().await.unwrap();
    let ports: Vec<Option<i32>> = g.security_groups()[0]
        .ip_permissions()
        .iter()
        .map(|p| p.from_port())
        .collect();
    assert_eq!(ports, vec![Some(3306)], "{g:?}");
    assert_eq!(plan(&d, &cfg).1, 0);

    // A bucket made before pi-deploy disabled ACLs (no ownership controls): `up` sets
    // Object Ownership BucketOwnerEnforced in place.
    let bucket = id(&st, "bucket");
    c.s3.delete_bucket_ownership_controls()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(
        planned(&doc, "bucket"),
        vec![update("object_ownership", "none", "BucketOwnerEnforced")]
    );
    up(&d, &cfg);
    let o =
        c.s3.get_bucket_ownership_controls()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
    assert_eq!(
        o.ownership_controls().unwrap().rules()[0].object_ownership().as_str(),
        "BucketOwnerEnforced"
    );
    assert_eq!(plan(&d, &cfg).1, 0);

    d.destroy();
}

/// The subnets' route tables and where each table's default route goes, read from AWS.
async fn private_routing(c: &pi_deploy::aws::Clients, st: &serde_json::Value) -> Vec<(String, String)> {
    let vpc = id(st, "vpc");
    let tables = c
        .ec2
        .describe_route_tables()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(&vpc)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut out = Vec::new();
    for key in ["subnet-app-a", "subnet-app-b", "subnet-db-a", "subnet-db-b"] {
        let subnet = id(st, key);
        let table = tables
            .route_tables()
            .iter()
            .find(|t| t.associations().iter().any(|a| a.subnet_id() == Some(subnet.as_str())))
            .unwrap_or_else(|| panic!("{key} has no route table"));
        let nat = table
            .routes()
            .iter()
            .find(|r| r.destination_cidr_block() == Some("0.0.0.0/0"))
            .and_then(|r| r.nat_gateway_id())
            .unwrap_or("none")
            .to_string();
        out.push((key.to_string(), nat));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn nat_per_az_switched_on_and_off_moves_routes_and_the_s3_endpoint_and_leaves_nothing() {
    let d = Deployment::new("d2n");
    let cfg = config(&d, BASE);
    up(&d, &cfg);
    let c = clients().await;

    let per_az = config(&d, &format!("{BASE}[network]\nnat_per_az = true\n"));
    let (doc, code) = plan(&d, &per_az);
    assert_eq!(code, 4);
    for key in ["eip-nat-b", "nat-b", "rt-private-a", "rt-private-b"] {
        assert_eq!(action_of(&doc, key), "create", "{key}: {doc:#}");
    }
    for key in ["rt-private", "route-private-default"] {
        assert_eq!(action_of(&doc, key), "delete", "{key}: {doc:#}");
    }
    up(&d, &per_az);
    let st = d.state();
    let (nat_a, nat_b) = (id(&st, "nat-a"), id(&st, "nat-b"));
    let routing = private_routing(&c, &st).await;
    let want = |a: &str, b: &str| {
        vec![
            ("subnet-app-a".to_string(), a.to_string()),
            ("subnet-app-b".to_string(), b.to_string()),
            ("subnet-db-a".to_string(), a.to_string()),
            ("subnet-db-b".to_string(), b.to_string()),
        ]
    };
    assert_eq!(routing, want(&nat_a, &nat_b));
    let ep = c
        .ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(id(&st, "vpce-s3"))
        .send()
        .await
        .unwrap();
    let mut tables: Vec<String> = ep.vpc_endpoints()[0].route_table_ids().to_vec();
    tables.sort();
    let mut expected = vec![id(&st, "rt-private-a"), id(&st, "rt-private-b")];
    expected.sort();
    assert_eq!(tables, expected, "the S3 endpoint follows the route tables");
    assert!(st["resources"].get("rt-private").is_none());
    assert_eq!(plan(&d, &per_az).1, 0);

    // Back to one NAT: the second NAT and its address are deleted, nothing is left.
    let cfg = config(&d, BASE);
    let (doc, _) = plan(&d, &cfg);
    for key in ["eip-nat-b", "nat-b", "rt-private-a", "rt-private-b"] {
        assert_eq!(action_of(&doc, key), "delete", "{key}: {doc:#}");
    }
    let eip_b = id(&st, "eip-nat-b");
    up(&d, &cfg);
    let st = d.state();
    assert_eq!(private_routing(&c, &st).await, want(&nat_a, &nat_a));
    let nat = c
        .ec2
        .describe_nat_gateways()
        .nat_gateway_ids(&nat_b)
        .send()
        .await
        .unwrap();
    assert!(
        nat.nat_gateways()
            .iter()
            .all(|n| matches!(n.state().map(|s| s.as_str()), Some("deleted" | "deleting"))),
        "{nat:?}"
    );
    let addresses = c.ec2.describe_addresses().send().await.unwrap();
    assert!(
        addresses
            .addresses()
            .iter()
            .all(|a| a.allocation_id() != Some(eip_b.as_str())),
        "the second NAT's address is released"
    );
    assert_eq!(plan(&d, &cfg).1, 0);
    d.destroy();
}

/// The file system's policy, read from EFS (`None`: PolicyNotFound).
async fn efs_policy(c: &pi_deploy::aws::Clients, fs: &str) -> Option<serde_json::Value> {
    match c.efs.describe_file_system_policy().file_system_id(fs).send().await {
        Ok(o) => o.policy().map(|p| serde_json::from_str(p).unwrap()),
        Err(e) => {
            let code = e.as_service_error().and_then(|s| s.meta().code()).map(String::from);
            assert_eq!(code.as_deref(), Some("PolicyNotFound"), "{e:?}");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn security_switches_reach_a_live_deployment_and_hand_made_drift_is_repaired() {
    let d = Deployment::new("d2s");
    let no_tls = "[database]\ndeletion_protection = false\n[storage]\nefs_require_tls = false\n";
    let cfg = config(&d, no_tls);
    up(&d, &cfg);
    assert_eq!(plan(&d, &cfg).1, 0);
    let c = clients().await;
    let st = d.state();
    let (fs, group) = (id(&st, "efs"), id(&st, "db-params"));
    assert_eq!(efs_policy(&c, &fs).await, None);
    assert_eq!(db_parameter(&c, &group, "require_secure_transport").await, None);

    // Both TLS switches on: the file-system policy and the DB parameter, in place (the
    // instances roll for the TLS mount in their user data).
    let tls = "[database]\ndeletion_protection = false\nrequire_tls = true\n[storage]\nefs_require_tls = true\n";
    let cfg = config(&d, tls);
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(planned(&doc, "efs"), vec![update("tls_only_policy", "none", "yes")]);
    assert_eq!(
        planned(&doc, "db-params"),
        vec![update("require_secure_transport", "0", "1")]
    );
    assert_eq!(action_of(&doc, "launch-template"), "roll", "{doc:#}");
    let ev = up(&d, &cfg);
    let changed = changed_keys(&ev);
    assert!(
        changed.contains(&"efs".to_string()) && changed.contains(&"db-params".to_string()),
        "{changed:?}"
    );
    let policy = efs_policy(&c, &fs).await.expect("a file-system policy");
    let denies_plain_nfs = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["Effect"] == "Deny" && s["Condition"]["Bool"]["aws:SecureTransport"] == "false");
    assert!(denies_plain_nfs, "{policy:#}");
    assert_eq!(
        db_parameter(&c, &group, "require_secure_transport").await.as_deref(),
        Some("1")
    );
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 0, "after up, nothing is left to change: {doc:#}");

    // The database switch off again: the parameter goes back to the engine default (OFF).
    let db_off = "[database]\ndeletion_protection = false\n[storage]\nefs_require_tls = true\n";
    let cfg = config(&d, db_off);
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4);
    assert_eq!(
        planned(&doc, "db-params"),
        vec![update("require_secure_transport", "1", "0")]
    );
    assert_eq!(action_of(&doc, "efs"), "nothing");
    assert_eq!(changed_keys(&up(&d, &cfg)), vec!["db-params"]);
    assert_eq!(
        db_parameter(&c, &group, "require_secure_transport").await.as_deref(),
        Some("0")
    );
    assert_eq!(plan(&d, &cfg).1, 0);

    // The file-system switch off is planned as a policy delete. Not applied here: the
    // emulator has no DeleteFileSystemPolicy (file_system.rs tests it on a scripted fake).
    let (doc, _) = plan(&d, &config(&d, no_tls));
    assert_eq!(planned(&doc, "efs"), vec![update("tls_only_policy", "yes", "none")]);
    // (`config` writes the deployment's one config file: back to the applied one.)
    let cfg = config(&d, db_off);

    // A rule added to the DB subnets' ACL by hand, and a DB subnet moved back to the
    // default ACL by hand: `plan` shows both, `up` repairs both.
    let acl = id(&st, "nacl-db");
    c.ec2
        .create_network_acl_entry()
        .network_acl_id(&acl)
        .rule_number(90)
        .egress(false)
        .protocol("6")
        .cidr_block("0.0.0.0/0")
        .port_range(aws_sdk_ec2::types::PortRange::builder().from(22).to(22).build())
        .rule_action(aws_sdk_ec2::types::RuleAction::Allow)
        .send()
        .await
        .unwrap();
    let subnet_a = id(&st, "subnet-db-a");
    let acls = c
        .ec2
        .describe_network_acls()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("vpc-id")
                .values(id(&st, "vpc"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let default = acls
        .network_acls()
        .iter()
        .find(|a| a.is_default() == Some(true))
        .and_then(|a| a.network_acl_id())
        .unwrap()
        .to_string();
    let assoc = acls
        .network_acls()
        .iter()
        .flat_map(|a| a.associations())
        .find(|a| a.subnet_id() == Some(subnet_a.as_str()))
        .and_then(|a| a.network_acl_association_id())
        .unwrap()
        .to_string();
    c.ec2
        .replace_network_acl_association()
        .association_id(&assoc)
        .network_acl_id(&default)
        .send()
        .await
        .unwrap();
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4);
    let acl_changes = planned(&doc, "nacl-db");
    assert_eq!(acl_changes.len(), 2, "{acl_changes:?}");
    assert_eq!(acl_changes[0].0, "entries");
    assert!(
        acl_changes[0].1.contains("in #90 allow tcp 22-22 0.0.0.0/0") && !acl_changes[0].2.contains("#90"),
        "{acl_changes:?}"
    );
    assert_eq!(acl_changes[1].0, "subnets");
    assert!(!acl_changes[1].1.contains(&subnet_a) && acl_changes[1].2.contains(&subnet_a));
    assert!(acl_changes.iter().all(|c| c.3 == "update"));
    assert_eq!(changed_keys(&up(&d, &cfg)), vec!["nacl-db"]);
    let after = c
        .ec2
        .describe_network_acls()
        .network_acl_ids(&acl)
        .send()
        .await
        .unwrap();
    let after = &after.network_acls()[0];
    assert!(after.entries().iter().all(|e| e.rule_number() != Some(90)), "{after:?}");
    assert!(
        after
            .associations()
            .iter()
            .any(|a| a.subnet_id() == Some(subnet_a.as_str())),
        "{after:?}"
    );
    assert_eq!(plan(&d, &cfg).1, 0);

    // A DB subnet taken off its route table by hand (it falls back to the VPC's main table,
    // which has no default route): `plan` shows it, `up` associates it again.
    let routing = private_routing(&c, &st).await;
    let tables = c
        .ec2
        .describe_route_tables()
        .route_table_ids(id(&st, "rt-private"))
        .send()
        .await
        .unwrap();
    let assoc = tables.route_tables()[0]
        .associations()
        .iter()
        .find(|a| a.subnet_id() == Some(subnet_a.as_str()))
        .and_then(|a| a.route_table_association_id())
        .unwrap()
        .to_string();
    c.ec2
        .disassociate_route_table()
        .association_id(&assoc)
        .send()
        .await
        .unwrap();
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4);
    let rt_changes = planned(&doc, "rt-private");
    assert_eq!(rt_changes.len(), 1, "{rt_changes:?}");
    assert_eq!(rt_changes[0].0, "subnets");
    assert!(!rt_changes[0].1.contains(&subnet_a) && rt_changes[0].2.contains(&subnet_a));
    assert_eq!(rt_changes[0].3, "update");
    assert_eq!(changed_keys(&up(&d, &cfg)), vec!["rt-private"]);
    assert_eq!(private_routing(&c, &st).await, routing);
    assert_eq!(plan(&d, &cfg).1, 0);

    // A route added by hand to the private table (here to the internet gateway: traffic to
    // that network would leave the NAT's control): `status` and `plan` name it, `up`
    // deletes it, the default route and the S3 endpoint's prefix-list route stay.
    let table_id = id(&st, "rt-private");
    let routes_of = || async {
        let t = c
            .ec2
            .describe_route_tables()
            .route_table_ids(&table_id)
            .send()
            .await
            .unwrap();
        let mut r: Vec<String> = t.route_tables()[0]
            .routes()
            .iter()
            .map(|r| {
                r.destination_cidr_block()
                    .or(r.destination_prefix_list_id())
                    .unwrap_or("?")
                    .to_string()
            })
            .collect();
        r.sort();
        r
    };
    let before = routes_of().await;
    assert!(
        before.iter().any(|r| r.starts_with("pl-")),
        "the S3 endpoint's route: {before:?}"
    );
    c.ec2
        .create_route()
        .route_table_id(&table_id)
        .destination_cidr_block("172.31.0.0/16")
        .gateway_id(id(&st, "igw"))
        .send()
        .await
        .unwrap();
    let rt = drifted(&d, &cfg, "rt-private");
    assert!(rt["drift"].to_string().contains("172.31.0.0/16"), "{rt}");
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4);
    let rt_changes = planned(&doc, "rt-private");
    assert_eq!(rt_changes.len(), 1, "{rt_changes:?}");
    assert_eq!(
        (
            rt_changes[0].0.as_str(),
            rt_changes[0].2.as_str(),
            rt_changes[0].3.as_str()
        ),
        ("other_routes", "-", "update")
    );
    assert_eq!(rt_changes[0].1, format!("172.31.0.0/16 -> {}", id(&st, "igw")));
    assert_eq!(changed_keys(&up(&d, &cfg)), vec!["rt-private"]);
    assert_eq!(routes_of().await, before);
    assert_eq!(private_routing(&c, &st).await, routing);
    assert_eq!(plan(&d, &cfg).1, 0);

    // Public IPs on launch turned on in a public subnet, and an app subnet put in the DB
    // subnet group in place of a DB subnet, by hand: `plan` shows both, `up` puts both back.
    let public_a = id(&st, "subnet-public-a");
    c.ec2
        .modify_subnet_attribute()
        .subnet_id(&public_a)
        .map_public_ip_on_launch(aws_sdk_ec2::types::AttributeBooleanValue::builder().value(true).build())
        .send()
        .await
        .unwrap();
    let db_subnets = || {
        let mut v = vec![id(&st, "subnet-db-a"), id(&st, "subnet-db-b")];
        v.sort();
        v
    };
    let group = id(&st, "db-subnet-group");
    c.rds
        .modify_db_subnet_group()
        .db_subnet_group_name(&group)
        .subnet_ids(id(&st, "subnet-db-a"))
        .subnet_ids(id(&st, "subnet-app-b"))
        .send()
        .await
        .unwrap();
    let group_subnets = || async {
        let g = c
            .rds
            .describe_db_subnet_groups()
            .db_subnet_group_name(&group)
            .send()
            .await
            .unwrap();
        let mut v: Vec<String> = g.db_subnet_groups()[0]
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_identifier().map(String::from))
            .collect();
        v.sort();
        v
    };
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4);
    assert_eq!(
        planned(&doc, "subnet-public-a"),
        vec![update("public_ips_on_launch", "on", "off")]
    );
    let group_changes = planned(&doc, "db-subnet-group");
    assert_eq!(group_changes.len(), 1, "{group_changes:?}");
    assert_eq!(group_changes[0].0, "subnets");
    assert_eq!(group_changes[0].2, db_subnets().join(", "));
    let mut changed = changed_keys(&up(&d, &cfg));
    changed.sort();
    assert_eq!(changed, vec!["db-subnet-group", "subnet-public-a"]);
    let s = c.ec2.describe_subnets().subnet_ids(&public_a).send().await.unwrap();
    assert_eq!(s.subnets()[0].map_public_ip_on_launch(), Some(false));
    assert_eq!(group_subnets().await, db_subnets());
    assert_eq!(plan(&d, &cfg).1, 0);

    // The load balancer's deletion protection turned off by hand: shown, then put back.
    let alb = id(&st, "alb");
    let protection = |on: &str| {
        aws_sdk_elasticloadbalancingv2::types::LoadBalancerAttribute::builder()
            .key("deletion_protection.enabled")
            .value(on)
            .build()
    };
    c.elb
        .modify_load_balancer_attributes()
        .load_balancer_arn(&alb)
        .attributes(protection("false"))
        .send()
        .await
        .unwrap();
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4);
    assert_eq!(planned(&doc, "alb"), vec![update("deletion_protection", "off", "on")]);
    assert_eq!(changed_keys(&up(&d, &cfg)), vec!["alb"]);
    let attrs = c
        .elb
        .describe_load_balancer_attributes()
        .load_balancer_arn(&alb)
        .send()
        .await
        .unwrap();
    assert!(attrs.attributes().contains(&protection("true")), "{attrs:?}");
    assert_eq!(plan(&d, &cfg).1, 0);

    // The side-loading Lambda's memory and timeout changed by hand: shown, then put back.
    let function = id(&st, "lambda");
    c.lambda
        .update_function_configuration()
        .function_name(&function)
        .memory_size(1024)
        .timeout(5)
        .send()
        .await
        .unwrap();
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4);
    assert_eq!(
        planned(&doc, "lambda"),
        vec![update("memory_mb", "1024", "256"), update("timeout_seconds", "5", "60")]
    );
    assert_eq!(changed_keys(&up(&d, &cfg)), vec!["lambda"]);
    let f = c
        .lambda
        .get_function_configuration()
        .function_name(&function)
        .send()
        .await
        .unwrap();
    assert_eq!((f.memory_size(), f.timeout()), (Some(256), Some(60)));
    assert_eq!(plan(&d, &cfg).1, 0);

    // One of the bucket's notifications to the side-loading Lambda edited by hand (its
    // delete events dropped): shown, then put back, with everything else kept.
    let bucket = id(&st, "bucket");
    let events_of = || async {
        let n =
            c.s3.get_bucket_notification_configuration()
                .bucket(&bucket)
                .send()
                .await
                .unwrap();
        let mut v: Vec<(String, usize)> = n
            .lambda_function_configurations()
            .iter()
            .map(|l| (l.id().unwrap_or_default().to_string(), l.events().len()))
            .collect();
        v.sort();
        (v, n)
    };
    let (before, doc) = events_of().await;
    assert_eq!(before.len(), 5, "{before:?}");
    let mut lambdas = doc.lambda_function_configurations().to_vec();
    lambdas[0] = aws_sdk_s3::types::LambdaFunctionConfiguration::builder()
        .set_id(lambdas[0].id().map(String::from))
        .lambda_function_arn(lambdas[0].lambda_function_arn())
        .events(aws_sdk_s3::types::Event::from("s3:ObjectCreated:*"))
        .set_filter(lambdas[0].filter().cloned())
        .build()
        .unwrap();
    c.s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(
            aws_sdk_s3::types::NotificationConfiguration::builder()
                .set_lambda_function_configurations(Some(lambdas))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_ne!(events_of().await.0, before);
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4);
    let changes = planned(&doc, "bucket-notification");
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        (changes[0].0.as_str(), changes[0].3.as_str()),
        ("configurations", "update")
    );
    assert_eq!(changed_keys(&up(&d, &cfg)), vec!["bucket-notification"]);
    assert_eq!(events_of().await.0, before);
    assert_eq!(plan(&d, &cfg).1, 0);

    d.destroy();
}

/// A major engine upgrade (10.11 -> 11.4): `plan` shows the parameter group's `-/+ replace`
/// and the instance's upgrade with its downtime warning; `up` creates the group of the new
/// family, moves the instance onto it with the new version in one ModifyDBInstance, then
/// deletes the old group; a second `plan` has nothing to do, and a downgrade is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_major_engine_upgrade_replaces_the_parameter_group_create_before_destroy() {
    let d = Deployment::new("d2m");
    let cfg = config(&d, &format!("{BASE}engine_version = \"10.11\"\n"));
    up(&d, &cfg);
    let c = clients().await;
    let old_group = id(&d.state(), "db-params");
    assert_eq!(old_group, format!("{}-db-params", d.name));

    let cfg = config(&d, &format!("{BASE}engine_version = \"11.4\"\n"));
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(action_of(&doc, "db-params"), "replace");
    assert_eq!(
        planned(&doc, "db-params"),
        vec![(
            "family".to_string(),
            "mariadb10.11".to_string(),
            "mariadb11.4".to_string(),
            "replace".to_string()
        )]
    );
    let step = |key: &str| {
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["key"] == key)
            .cloned()
            .unwrap()
    };
    let reason = step("db-params")["reason"].as_str().unwrap().to_string();
    assert!(reason.starts_with("-/+ replace"), "{reason}");
    assert_eq!(action_of(&doc, "db"), "update");
    let db_changes = planned(&doc, "db");
    assert_eq!(
        db_changes,
        vec![
            (
                "engine_version".to_string(),
                "10.11".to_string(),
                "11.4".to_string(),
                "update".to_string()
            ),
            (
                "parameter_group".to_string(),
                old_group.clone(),
                "(known after up)".to_string(),
                "update".to_string()
            ),
        ]
    );
    let note = step("db")["changes"][0]["note"].as_str().unwrap().to_string();
    assert!(
        note.contains("DOWNTIME") && note.contains("pi-deploy snapshot"),
        "{note}"
    );
    // The human plan says it too.
    let ami = ami('A');
    let text = ok_with(&d, &["plan", "--ami", &ami, "--config", cfg.to_str().unwrap()], &[]);
    let text = String::from_utf8_lossy(&text.stdout).to_string();
    assert!(
        text.contains("-/+ replace") && text.contains("DOWNTIME") && text.contains("pi-deploy snapshot"),
        "{text}"
    );

    let ev = up(&d, &cfg);
    assert_eq!(changed_keys(&ev), vec!["db"], "the instance moved in place");
    let st = d.state();
    let new_group = id(&st, "db-params");
    assert_eq!(new_group, format!("{}-db-params-mariadb11-4", d.name));
    let retiring_key = format!("db-params/retiring-{old_group}");
    let deleted: Vec<&str> = ev
        .iter()
        .filter(|e| e["event"] == "resource" && e["status"] == "deleted")
        .filter_map(|e| e["key"].as_str())
        .collect();
    assert_eq!(deleted, vec![retiring_key.as_str()], "only the old group is deleted");
    assert!(
        st["resources"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.contains("/retiring-")),
        "{st:#}"
    );

    // Read back from AWS's side: the version and the new group on the instance, the group of
    // the new family, the old group gone.
    on_major_version(&c, &id(&st, "db"), "11.4", &new_group, &old_group).await;
    let groups = c
        .rds
        .describe_db_parameter_groups()
        .db_parameter_group_name(&new_group)
        .send()
        .await
        .unwrap();
    assert_eq!(
        groups.db_parameter_groups()[0].db_parameter_group_family(),
        Some("mariadb11.4")
    );
    assert_eq!(
        db_parameter(&c, &new_group, "lower_case_table_names").await.as_deref(),
        Some("1"),
        "the new group has the dashboard's parameters"
    );
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 0, "after up, nothing is left to change: {doc:#}");

    // A downgrade is refused (exit 2) before any change.
    let back = config(&d, &format!("{BASE}engine_version = \"10.11\"\n"));
    let out = up_refused(&d, &back);
    assert!(show(&out).contains("downgrade"), "{}", show(&out));
    assert_eq!(id(&d.state(), "db-params"), new_group);
    d.destroy();
}

/// The ports the dashboard instances' group admits from the load balancer's group, and the
/// ports the app subnets' ACL admits from the public subnets (rules 100 and 101).
async fn dashboard_ports(c: &pi_deploy::aws::Clients, st: &serde_json::Value) -> (Vec<i32>, Vec<i32>) {
    let alb_sg = id(st, "sg-alb");
    let sg = c
        .ec2
        .describe_security_groups()
        .group_ids(id(st, "sg-app"))
        .send()
        .await
        .unwrap();
    let mut from_alb: Vec<i32> = sg.security_groups()[0]
        .ip_permissions()
        .iter()
        .filter(|p| {
            p.user_id_group_pairs()
                .iter()
                .any(|g| g.group_id() == Some(alb_sg.as_str()))
        })
        .filter_map(|p| p.from_port())
        .collect();
    from_alb.sort();
    let acl = c
        .ec2
        .describe_network_acls()
        .network_acl_ids(id(st, "nacl-app"))
        .send()
        .await
        .unwrap();
    let mut acl_ports: Vec<i32> = acl.network_acls()[0]
        .entries()
        .iter()
        .filter(|e| e.egress() == Some(false) && matches!(e.rule_number(), Some(100 | 101)))
        .filter_map(|e| e.port_range().and_then(|r| r.from()))
        .collect();
    acl_ports.sort();
    (from_alb, acl_ports)
}

/// A change of `dashboard_port` replaces the target group create-before-destroy: `plan`
/// marks it `replace` with the port and the moves; `up` makes the new group (named after the
/// port), moves the listener and the Auto Scaling group to it (the instances registered
/// with it), opens the new port in the security group and the ACL in place of the old one,
/// then deletes the old group. Read back from AWS; a second `plan` is clean.
#[tokio::test(flavor = "multi_thread")]
async fn a_dashboard_port_change_replaces_the_target_group_and_moves_the_listener() {
    let d = Deployment::new("d2p");
    let cfg = config(&d, BASE);
    up(&d, &cfg);
    let c = clients().await;
    let st = d.state();
    let old_tg = id(&st, "tg");
    assert_eq!(dashboard_ports(&c, &st).await, (vec![8224], vec![8224, 8224]));

    let cfg = config(&d, &format!("dashboard_port = 8443\n{BASE}"));
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(action_of(&doc, "tg"), "replace", "{doc:#}");
    assert_eq!(
        planned(&doc, "tg"),
        vec![(
            "port".to_string(),
            "8224".to_string(),
            "8443".to_string(),
            "replace".to_string()
        )]
    );
    for key in ["listener-http", "asg", "sg-app", "nacl-app"] {
        assert_eq!(action_of(&doc, key), "update", "{key}: {doc:#}");
    }
    assert!(
        planned(&doc, "asg")
            .iter()
            .any(|(a, o, _, act)| a == "target_groups" && *o == old_tg && act == "update"),
        "{:?}",
        planned(&doc, "asg")
    );

    let ev = up(&d, &cfg);
    let mut changed = changed_keys(&ev);
    changed.retain(|k| k != "dashboard");
    assert_eq!(changed, vec!["asg", "listener-http", "nacl-app", "sg-app"], "{ev:#?}");
    let deleted: Vec<&str> = ev
        .iter()
        .filter(|e| e["event"] == "resource" && e["status"] == "deleted")
        .filter_map(|e| e["key"].as_str())
        .collect();
    assert_eq!(
        deleted,
        vec![format!("tg/retiring-{old_tg}").as_str()],
        "only the old group is deleted"
    );

    // From AWS's side: the new group on 8443 under the port's name, the listener forwarding
    // to it, the Auto Scaling group attached to it alone with its instances registered, the
    // old group gone, and 8443 (not 8224) open from the load balancer.
    let st = d.state();
    let new_tg = id(&st, "tg");
    assert_ne!(new_tg, old_tg);
    let groups = c
        .elb
        .describe_target_groups()
        .target_group_arns(&new_tg)
        .send()
        .await
        .unwrap();
    let g = &groups.target_groups()[0];
    assert_eq!(g.port(), Some(8443));
    assert_eq!(g.target_group_name(), Some(format!("{}-tg-8443", d.name).as_str()));
    let listeners = c
        .elb
        .describe_listeners()
        .load_balancer_arn(id(&st, "alb"))
        .send()
        .await
        .unwrap();
    let forwards: Vec<Option<&str>> = listeners
        .listeners()
        .iter()
        .flat_map(|l| l.default_actions())
        .map(|a| a.target_group_arn())
        .collect();
    assert_eq!(forwards, vec![Some(new_tg.as_str())]);
    let asg = c
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(id(&st, "asg"))
        .send()
        .await
        .unwrap();
    let asg = &asg.auto_scaling_groups()[0];
    assert_eq!(asg.target_group_arns(), std::slice::from_ref(&new_tg));
    let health = c
        .elb
        .describe_target_health()
        .target_group_arn(&new_tg)
        .send()
        .await
        .unwrap();
    assert_eq!(
        health.target_health_descriptions().len(),
        asg.instances().len(),
        "every instance registered with the new group: {health:?}"
    );
    assert!(
        c.elb
            .describe_target_groups()
            .target_group_arns(&old_tg)
            .send()
            .await
            .is_err(),
        "the old group is deleted"
    );
    assert_eq!(dashboard_ports(&c, &st).await, (vec![8443], vec![8443, 8443]));
    assert!(
        st["resources"]
            .as_object()
            .unwrap()
            .keys()
            .all(|k| !k.contains("/retiring-")),
        "{st:#}"
    );
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 0, "after up, nothing is left to change: {doc:#}");
    // `status` compares with AWS the same way: no drift, and the old group (gone) is not
    // reported as a leak nor the new one as unknown.
    let status = run_with(&d, &["status", "--config", cfg.to_str().unwrap(), "--json"], &[]);
    assert_eq!(status.status.code(), Some(0), "{}", show(&status));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["healthy"], true, "{report:#}");
    d.destroy();
}

/// The VPC flow log (`logging.vpc_flow_logs`, on by default): deleted by hand, `plan` shows
/// it created again and `up` does; switched off, `up` deletes it and takes the delivery out
/// of the logs bucket's policy (the bucket stays for the access logs); on again, both come
/// back. Each step read back from AWS.
#[tokio::test(flavor = "multi_thread")]
async fn the_flow_log_is_repaired_switched_off_and_on_again() {
    let d = Deployment::new("d2f");
    let cfg = config(&d, BASE);
    up(&d, &cfg);
    let c = clients().await;
    let st = d.state();
    assert_flow_log_into_the_logs_bucket(&c, &st).await;

    // Deleted by hand: planned as a create, made again by `up`.
    c.ec2
        .delete_flow_logs()
        .flow_log_ids(id(&st, "flow-log"))
        .send()
        .await
        .unwrap();
    let (doc, code) = plan(&d, &cfg);
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(action_of(&doc, "flow-log"), "create", "{doc:#}");
    up(&d, &cfg);
    let st = d.state();
    assert_flow_log_into_the_logs_bucket(&c, &st).await;
    assert_eq!(plan(&d, &cfg).1, 0);

    // Off: the flow log goes, the bucket's policy no longer lets the delivery write.
    let off = config(&d, &format!("{BASE}[logging]\nvpc_flow_logs = false\n"));
    let (doc, code) = plan(&d, &off);
    assert_eq!(code, 4, "{doc:#}");
    assert_eq!(action_of(&doc, "flow-log"), "delete", "{doc:#}");
    assert_eq!(
        planned(&doc, "logs-bucket"),
        vec![update("log_writers", "alb+vpc-flow-logs", "alb")]
    );
    up(&d, &off);
    let st = d.state();
    assert!(vpc_flow_logs(&c, &st).await.is_empty());
    assert!(st["resources"].get("flow-log").is_none(), "{st:#}");
    let policy =
        c.s3.get_bucket_policy()
            .bucket(id(&st, "logs-bucket"))
            .send()
            .await
            .unwrap();
    assert!(
        !policy.policy().unwrap().contains("delivery.logs.amazonaws.com"),
        "{:?}",
        policy.policy()
    );
    assert_eq!(plan(&d, &off).1, 0);

    // On again.
    let on = config(&d, BASE);
    up(&d, &on);
    let st = d.state();
    assert_flow_log_into_the_logs_bucket(&c, &st).await;
    assert_eq!(plan(&d, &on).1, 0);

    // A flow log already gone when `destroy` deletes it is no error.
    c.ec2
        .delete_flow_logs()
        .flow_log_ids(id(&st, "flow-log"))
        .send()
        .await
        .unwrap();
    destroy(&d, &on);
    assert!(vpc_flow_logs(&c, &st).await.is_empty());
}
