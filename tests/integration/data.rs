//! The data tier end to end on the emulator: S3, EFS, RDS, the licence secret and the
//! endpoint parameter are built as the blueprint says, a second `up` creates nothing,
//! `destroy` leaves nothing (with and without a final snapshot), deletion protection is
//! honoured, and no secret value ever reaches the state, the terminal or the event stream.

use aws_sdk_rds::types::Filter as RdsFilter;

use crate::census;
use crate::common::{
    self, Deployment, clients, config, count_status, db_parameter, events, kill_after_resources, ok_with, out,
};

fn up_args<'a>(ami: &'a str, cfg: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut a = vec!["up", "--ami", ami, "--yes", "--config", cfg];
    a.extend_from_slice(extra);
    a
}

fn expected_data_census(d: &Deployment, bucket: &str, st: &serde_json::Value, licence: bool) -> census::Census {
    let mut c = census::Census::new();
    c.insert("s3-bucket", vec![bucket.to_string()]);
    c.insert("efs-file-system", vec!["efs".into()]);
    let mut mts = vec![
        format!("efs@{}", out(st, "subnet-app-a", "id")),
        format!("efs@{}", out(st, "subnet-app-b", "id")),
    ];
    mts.sort();
    c.insert("efs-mount-target", mts);
    c.insert("efs-access-point", vec!["efs-ap".into()]);
    c.insert("db-instance", vec!["db".into()]);
    c.insert("db-subnet-group", vec![format!("{}-db-subnets", d.name)]);
    c.insert("db-parameter-group", vec![format!("{}-db-params", d.name)]);
    if licence {
        c.insert("secret", vec!["licence-secret".into()]);
    }
    c.insert("ssm-parameter", vec![format!("/{}/db-endpoint", d.name)]);
    // The MariaDB error log's group (database.export_error_log, on by default).
    c.insert("log-group", vec!["db-error-log-group".into()]);
    c
}

/// Make the state forget these resources' ids, as a run killed between the create call and
/// the write of its result would: the next `up` must find them in AWS, not duplicate them.
fn forget(d: &Deployment, keys: &[&str]) {
    let mut st = d.state();
    for key in keys {
        let rec = &mut st["resources"][*key];
        assert!(rec.is_object(), "{key} is not recorded");
        rec["status"] = "creating".into();
        rec["outputs"] = serde_json::json!({});
    }
    d.write_state(&serde_json::to_vec_pretty(&st).unwrap());
}

const DATA_KEYS: [&str; 9] = [
    "bucket",
    "efs",
    "efs-mt-a",
    "efs-mt-b",
    "efs-ap",
    "db-subnet-group",
    "db-params",
    "db",
    "db-endpoint",
];

/// Snapshots whose id starts with the deployment name.
async fn snapshots_of(c: &pi_deploy::aws::Clients, dep: &str) -> Vec<String> {
    let all = c.rds.describe_db_snapshots().send().await.unwrap();
    all.db_snapshots()
        .iter()
        .filter_map(|s| s.db_snapshot_identifier())
        .filter(|id| id.starts_with(&format!("{dep}-final-")))
        .map(String::from)
        .collect()
}

/// GetBucketVersioning's status. moto 5.2.5 names the XML root `GetBucketVersioningResponse`
/// (AWS: `VersioningConfiguration`), which the Rust SDK refuses to parse: on that error the
/// status is read from the raw response body instead.
async fn versioning_status(c: &pi_deploy::aws::Clients, bucket: &str) -> Option<String> {
    match c.s3.get_bucket_versioning().bucket(bucket).send().await {
        Ok(v) => v.status().map(|s| s.as_str().to_string()),
        Err(aws_sdk_s3::error::SdkError::ServiceError(e)) if e.raw().status().is_success() => {
            let body = String::from_utf8_lossy(e.raw().body().bytes().unwrap_or_default()).to_string();
            assert!(
                body.contains("GetBucketVersioningResponse"),
                "unexpected versioning answer: {body}"
            );
            body.split("<Status>")
                .nth(1)
                .and_then(|r| r.split("</Status>").next())
                .map(String::from)
        }
        Err(e) => panic!("GetBucketVersioning: {e:?}"),
    }
}

async fn secret_is_gone(c: &pi_deploy::aws::Clients, arn: &str) -> bool {
    match c.secrets.describe_secret().secret_id(arn).send().await {
        Ok(d) => d.deleted_date().is_some(),
        Err(_) => true,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn data_tier_reads_back_as_the_blueprint_says_converges_and_destroys_with_a_final_snapshot() {
    let d = Deployment::new("data");
    let cfg = config(
        &d,
        "[database]\ndeletion_protection = false\n\n[storage]\nbucket_versioning = true\n",
    );
    let cfg = cfg.to_str().unwrap();
    let ami = common::ami('A');
    let first = d.ok(&up_args(&ami, cfg, &["--json"]));
    let ev = events(&first);
    assert!(ev.last().unwrap()["ok"].as_bool().unwrap(), "{}", common::show(&first));
    let c = clients().await;
    let st = d.state();

    // Everything exists exactly once, and is recorded.
    let bucket = out(&st, "bucket", "id");
    let census = census::data(&c, &d.name).await;
    assert_eq!(census, expected_data_census(&d, &bucket, &st, false));
    for key in [
        "bucket",
        "efs",
        "efs-mt-a",
        "efs-mt-b",
        "efs-ap",
        "db-subnet-group",
        "db-params",
        "db",
        "db-endpoint",
    ] {
        assert_eq!(st["resources"][key]["status"], "ready", "{key}");
    }

    // S3: SSE-S3, the four BPA flags, ACLs disabled, TLS-only policy, versioning on (as
    // configured), tags.
    let enc = c.s3.get_bucket_encryption().bucket(&bucket).send().await.unwrap();
    let rule = &enc.server_side_encryption_configuration().unwrap().rules()[0];
    assert_eq!(
        rule.apply_server_side_encryption_by_default()
            .unwrap()
            .sse_algorithm()
            .as_str(),
        "AES256"
    );
    let pab = c.s3.get_public_access_block().bucket(&bucket).send().await.unwrap();
    let pab = pab.public_access_block_configuration().unwrap();
    assert_eq!(
        [
            pab.block_public_acls(),
            pab.ignore_public_acls(),
            pab.block_public_policy(),
            pab.restrict_public_buckets()
        ],
        [Some(true); 4]
    );
    // ACLs disabled: the bucket owner owns every object.
    let ownership =
        c.s3.get_bucket_ownership_controls()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
    assert_eq!(
        ownership.ownership_controls().unwrap().rules()[0]
            .object_ownership()
            .as_str(),
        "BucketOwnerEnforced"
    );
    let policy = c.s3.get_bucket_policy().bucket(&bucket).send().await.unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let s = &policy["Statement"][0];
    assert_eq!(s["Effect"], "Deny");
    assert_eq!(s["Condition"]["Bool"]["aws:SecureTransport"], "false");
    assert_eq!(
        s["Resource"],
        serde_json::json!([format!("arn:aws:s3:::{bucket}"), format!("arn:aws:s3:::{bucket}/*")])
    );
    assert_eq!(versioning_status(&c, &bucket).await.as_deref(), Some("Enabled"));
    let tagging = c.s3.get_bucket_tagging().bucket(&bucket).send().await.unwrap();
    assert!(
        tagging
            .tag_set()
            .iter()
            .any(|t| t.key() == "pi-deploy:deployment" && t.value() == d.name)
    );
    assert_eq!(
        st["resources"]["bucket"]["outputs"]["arn"],
        format!("arn:aws:s3:::{bucket}")
    );

    // EFS: encrypted, generalPurpose, backups on; mount targets in app-a/b with the efs SG;
    // the access point as uid/gid 1000 with a 0755 root.
    let fs_id = out(&st, "efs", "id");
    let fs = c
        .efs
        .describe_file_systems()
        .file_system_id(&fs_id)
        .send()
        .await
        .unwrap();
    let fs = &fs.file_systems()[0];
    assert_eq!(fs.encrypted(), Some(true));
    assert_eq!(fs.performance_mode().as_str(), "generalPurpose");
    assert_eq!(fs.creation_token(), format!("pi-deploy-{}-efs", d.name));
    let backup = c
        .efs
        .describe_backup_policy()
        .file_system_id(&fs_id)
        .send()
        .await
        .unwrap();
    assert_eq!(backup.backup_policy().unwrap().status().as_str(), "ENABLED");
    for zone in ["a", "b"] {
        let mt_id = out(&st, &format!("efs-mt-{zone}"), "id");
        assert_eq!(out(&st, &format!("efs-mt-{zone}"), "file_system_id"), fs_id);
        let mt = c
            .efs
            .describe_mount_targets()
            .mount_target_id(&mt_id)
            .send()
            .await
            .unwrap();
        let mt = &mt.mount_targets()[0];
        assert_eq!(mt.subnet_id(), out(&st, &format!("subnet-app-{zone}"), "id"));
        assert_eq!(mt.life_cycle_state().as_str(), "available");
        let sgs = c
            .efs
            .describe_mount_target_security_groups()
            .mount_target_id(&mt_id)
            .send()
            .await
            .unwrap();
        assert_eq!(sgs.security_groups(), [out(&st, "sg-efs", "id")]);
    }
    let ap = c
        .efs
        .describe_access_points()
        .access_point_id(out(&st, "efs-ap", "id"))
        .send()
        .await
        .unwrap();
    let ap = &ap.access_points()[0];
    assert_eq!(ap.file_system_id(), Some(fs_id.as_str()));
    assert_eq!(out(&st, "efs-ap", "file_system_id"), fs_id);
    assert_eq!(ap.access_point_arn(), Some(out(&st, "efs-ap", "arn").as_str()));
    let user = ap.posix_user().unwrap();
    assert_eq!((user.uid(), user.gid()), (1000, 1000));
    let root = ap.root_directory().unwrap();
    assert_eq!(root.path(), Some("/var/panintelligence"));
    let info = root.creation_info().unwrap();
    assert_eq!(
        (info.owner_uid(), info.owner_gid(), info.permissions()),
        (1000, 1000, "0755")
    );

    // RDS: the blueprint's instance, its groups and parameters.
    let db_id = out(&st, "db", "id");
    assert_eq!(db_id, format!("{}-db", d.name));
    let db = c
        .rds
        .describe_db_instances()
        .db_instance_identifier(&db_id)
        .send()
        .await
        .unwrap();
    let db = &db.db_instances()[0];
    assert_eq!(db.multi_az(), Some(true));
    assert_eq!(db.storage_encrypted(), Some(true));
    assert_eq!(db.publicly_accessible(), Some(false));
    let sgs: Vec<&str> = db
        .vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id())
        .collect();
    assert_eq!(sgs, [out(&st, "sg-db", "id")]);
    assert_eq!(db.db_name(), Some("dashboard"));
    assert_eq!(db.master_username(), Some("pi_admin"));
    assert_eq!(db.engine(), Some("mariadb"));
    assert_eq!(db.engine_version(), Some("10.11.10"));
    assert_eq!(db.backup_retention_period(), Some(7));
    assert_eq!(db.deletion_protection(), Some(false));
    assert_eq!(db.storage_type(), Some("gp3"));
    assert_eq!(
        db.db_subnet_group().and_then(|g| g.db_subnet_group_name()),
        Some(format!("{}-db-subnets", d.name).as_str())
    );
    let mut db_subnets: Vec<&str> = db
        .db_subnet_group()
        .unwrap()
        .subnets()
        .iter()
        .filter_map(|s| s.subnet_identifier())
        .collect();
    db_subnets.sort();
    let mut want = vec![out(&st, "subnet-db-a", "id"), out(&st, "subnet-db-b", "id")];
    want.sort();
    assert_eq!(db_subnets, want);
    assert_eq!(
        db.db_parameter_groups()
            .first()
            .and_then(|g| g.db_parameter_group_name()),
        Some(format!("{}-db-params", d.name).as_str())
    );
    let groups = c
        .rds
        .describe_db_parameter_groups()
        .db_parameter_group_name(format!("{}-db-params", d.name))
        .send()
        .await
        .unwrap();
    assert_eq!(
        groups.db_parameter_groups()[0].db_parameter_group_family(),
        Some("mariadb10.11")
    );
    let group = format!("{}-db-params", d.name);
    for (name, value) in [
        ("sql_mode", "NO_AUTO_VALUE_ON_ZERO"),
        ("lower_case_table_names", "1"),
        ("log_bin_trust_function_creators", "1"),
    ] {
        assert_eq!(db_parameter(&c, &group, name).await.as_deref(), Some(value), "{name}");
    }

    // The RDS-managed master secret: its ARN is in the state, it exists, rotation is 30 days.
    let secret_arn = out(&st, "db", "secret_arn");
    assert_eq!(
        db.master_user_secret().and_then(|s| s.secret_arn()),
        Some(secret_arn.as_str())
    );
    let secret = c.secrets.describe_secret().secret_id(&secret_arn).send().await.unwrap();
    assert_eq!(secret.rotation_enabled(), Some(true));
    assert_eq!(
        secret.rotation_rules().and_then(|r| r.automatically_after_days()),
        Some(30)
    );

    // The endpoint parameter holds host:port, and `up` reports the operator's outputs.
    let endpoint = db.endpoint().unwrap();
    let host_port = format!("{}:{}", endpoint.address().unwrap(), endpoint.port().unwrap());
    let param = c
        .ssm
        .get_parameter()
        .name(format!("/{}/db-endpoint", d.name))
        .send()
        .await
        .unwrap();
    assert_eq!(param.parameter().unwrap().value(), Some(host_port.as_str()));
    assert_eq!(out(&st, "db-endpoint", "id"), format!("/{}/db-endpoint", d.name));
    let outputs = &ev.last().unwrap()["outputs"];
    assert_eq!(outputs["bucket_name"], bucket);
    assert_eq!(outputs["file_system_id"], fs_id);
    assert_eq!(outputs["db_endpoint"], host_port);
    assert_eq!(outputs["db_secret_arn"], secret_arn);

    // A second `up` creates nothing and adopts nothing.
    let again = d.ok(&up_args(&ami, cfg, &["--json"]));
    let ev = events(&again);
    assert_eq!(
        count_status(&ev, "created") + count_status(&ev, "adopted") + count_status(&ev, "creating"),
        0,
        "{}",
        common::show(&again)
    );
    assert_eq!(census::data(&c, &d.name).await, census);

    // A state that lost every data id: `up` finds each resource again instead of creating it.
    forget(&d, &DATA_KEYS);
    let recovered = d.ok(&up_args(&ami, cfg, &["--json"]));
    let ev = events(&recovered);
    assert_eq!(count_status(&ev, "created"), 0, "{}", common::show(&recovered));
    assert_eq!(
        count_status(&ev, "adopted"),
        DATA_KEYS.len(),
        "{}",
        common::show(&recovered)
    );
    assert_eq!(census::data(&c, &d.name).await, census);
    let again_st = d.state();
    for key in DATA_KEYS {
        assert_eq!(
            again_st["resources"][key]["outputs"], st["resources"][key]["outputs"],
            "{key} adopted with other outputs"
        );
    }

    // Fill the bucket with versions and a delete marker. The TLS-only policy's Deny is
    // enforced without its condition on moto, so it is lifted for the upload and put back.
    let policy_text =
        c.s3.get_bucket_policy()
            .bucket(&bucket)
            .send()
            .await
            .unwrap()
            .policy()
            .unwrap()
            .to_string();
    c.s3.delete_bucket_policy().bucket(&bucket).send().await.unwrap();
    for (key, body) in [("images/a.png", "one"), ("images/a.png", "two"), ("themes/t.css", "x")] {
        c.s3.put_object()
            .bucket(&bucket)
            .key(key)
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .unwrap();
    }
    c.s3.delete_object()
        .bucket(&bucket)
        .key("themes/t.css")
        .send()
        .await
        .unwrap();
    c.s3.put_bucket_policy()
        .bucket(&bucket)
        .policy(policy_text)
        .send()
        .await
        .unwrap();

    // Destroy with the default final snapshot: it is reported and exists; nothing else is left.
    let down = d.ok(&["destroy", "--yes", "--config", cfg, "--json"]);
    let ev = events(&down);
    let finished = ev.last().unwrap();
    assert!(finished["ok"].as_bool().unwrap(), "{}", common::show(&down));
    let snapshot = finished["outputs"]["final_snapshot"]
        .as_str()
        .unwrap_or_else(|| panic!("no final_snapshot: {finished}"))
        .to_string();
    assert!(snapshot.starts_with(&format!("{}-final-", d.name)), "{snapshot}");
    let snaps = c
        .rds
        .describe_db_snapshots()
        .db_snapshot_identifier(&snapshot)
        .send()
        .await
        .unwrap();
    assert_eq!(snaps.db_snapshots()[0].db_instance_identifier(), Some(db_id.as_str()));
    let left = census::data(&c, &d.name).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(census::network(&c, &d.name).await.is_empty());
    assert!(
        secret_is_gone(&c, &secret_arn).await,
        "the RDS-managed secret outlived its instance"
    );
    assert!(!d.state_exists());
    let tagged = c
        .rds
        .describe_db_instances()
        .filters(RdsFilter::builder().name("db-instance-id").values(&db_id).build())
        .send()
        .await;
    assert!(tagged.map(|o| o.db_instances().is_empty()).unwrap_or(true));
    c.rds
        .delete_db_snapshot()
        .db_snapshot_identifier(&snapshot)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_up_finds_the_data_tier_again_without_duplicates() {
    let c = clients().await;
    for n in [2, 6, 20, 34] {
        let d = Deployment::new(&format!("dkill{n}"));
        let cfg = config(&d, "[database]\ndeletion_protection = false\n");
        let cfg = cfg.to_str().unwrap();
        let ami = common::ami('A');
        let killed = kill_after_resources(&d, &up_args(&ami, cfg, &["--json"]), n);
        d.ok(&up_args(&ami, cfg, &[]));
        let st = d.state();
        let bucket = out(&st, "bucket", "id");
        let census = census::data(&c, &d.name).await;
        assert_eq!(
            census,
            expected_data_census(&d, &bucket, &st, false),
            "after a kill at {n} resources (killed: {killed})"
        );
        for key in DATA_KEYS {
            assert_eq!(st["resources"][key]["status"], "ready", "{key} after a kill at {n}");
        }
        d.ok(&["destroy", "--yes", "--skip-final-snapshot", "--config", cfg]);
        assert_eq!(
            census::data(&c, &d.name).await,
            census::Census::new(),
            "after a kill at {n}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn deletion_protection_refuses_destroy_until_disabled_and_skip_snapshot_takes_none() {
    let d = Deployment::new("dprot");
    // Defaults: deletion protection on, versioning off.
    d.up(&[]);
    let c = clients().await;
    let st = d.state();
    let bucket = out(&st, "bucket", "id");
    assert_eq!(
        versioning_status(&c, &bucket).await,
        None,
        "versioning must stay untouched when not configured"
    );
    let db_id = out(&st, "db", "id");

    let refused = d.run(&["destroy", "--yes", "--skip-final-snapshot"]);
    assert_eq!(refused.status.code(), Some(1), "{}", common::show(&refused));
    let text = common::show(&refused);
    assert!(
        text.contains("deletion protection") && text.contains("--disable-deletion-protection"),
        "{text}"
    );
    let db = c
        .rds
        .describe_db_instances()
        .db_instance_identifier(&db_id)
        .send()
        .await
        .unwrap();
    assert_eq!(db.db_instances()[0].deletion_protection(), Some(true));

    d.ok(&[
        "destroy",
        "--yes",
        "--skip-final-snapshot",
        "--disable-deletion-protection",
    ]);
    let left = census::data(&c, &d.name).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(census::network(&c, &d.name).await.is_empty());
    assert!(
        snapshots_of(&c, &d.name).await.is_empty(),
        "--skip-final-snapshot took a snapshot"
    );
    assert!(!d.state_exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreadable_licence_is_bad_input_and_creates_nothing() {
    let c = clients().await;
    for (source, field) in [
        ("env = \"PI_DEPLOY_TEST_NO_SUCH_LICENCE_VAR\"", "licence.env"),
        ("file = \"/nonexistent/pi-licence.txt\"", "licence.file"),
    ] {
        let d = Deployment::new("nolic");
        let cfg = config(&d, &format!("[licence]\n{source}\n"));
        let ami = common::ami('A');
        let o = d.run(&up_args(&ami, cfg.to_str().unwrap(), &[]));
        assert_eq!(o.status.code(), Some(2), "{}", common::show(&o));
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(field),
            "{}",
            common::show(&o)
        );
        assert!(!d.state_exists());
        assert_eq!(census::network(&c, &d.name).await, census::Census::new());
        assert_eq!(census::data(&c, &d.name).await, census::Census::new());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn secret_values_never_reach_the_state_the_terminal_or_the_event_stream() {
    const LICENCE: &str = "PI-LICENCE-7f3a9c1e-known-test-value";
    const RENEWED: &str = "PI-LICENCE-renewed-0b5d2e8f-test-value";
    let var = "PI_DEPLOY_TEST_LICENCE";
    let env = [(var, LICENCE)];
    let d = Deployment::new("leak");
    let cfg = config(
        &d,
        &format!("[licence]\nenv = \"{var}\"\n\n[database]\ndeletion_protection = false\n"),
    );
    let cfg = cfg.to_str().unwrap();
    let ami = common::ami('A');
    let c = clients().await;

    let mut seen: Vec<(String, Vec<u8>)> = Vec::new();
    let first = ok_with(&d, &up_args(&ami, cfg, &["-vv", "--json"]), &env);
    seen.push(("up -vv --json stdout".into(), first.stdout.clone()));
    seen.push(("up -vv --json stderr".into(), first.stderr.clone()));
    let second = ok_with(&d, &up_args(&ami, cfg, &["-v"]), &env);
    seen.push(("up -v stdout".into(), second.stdout.clone()));
    seen.push(("up -v stderr".into(), second.stderr.clone()));
    // The licence secret found again by name and tags, its value compared with the stored one.
    forget(&d, &["licence-secret"]);
    let third = ok_with(&d, &up_args(&ami, cfg, &["-vv"]), &env);
    assert!(
        String::from_utf8_lossy(&third.stderr).contains("adopted"),
        "{}",
        common::show(&third)
    );
    seen.push(("up -vv stdout".into(), third.stdout.clone()));
    seen.push(("up -vv stderr".into(), third.stderr.clone()));
    let st = d.state();
    seen.push(("state file".into(), d.state_bytes().unwrap()));
    seen.push((
        "state backup".into(),
        d.previous_state_bytes().expect("a state backup after three runs"),
    ));

    // The two secrets exist and hold what we search for.
    let licence_arn = out(&st, "licence-secret", "id");
    let licence = c
        .secrets
        .get_secret_value()
        .secret_id(&licence_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(licence.secret_string(), Some(LICENCE));
    let licence_meta = c
        .secrets
        .describe_secret()
        .secret_id(&licence_arn)
        .send()
        .await
        .unwrap();
    assert_ne!(
        licence_meta.rotation_enabled(),
        Some(true),
        "the licence secret must never be rotated"
    );
    let db_secret = c
        .secrets
        .get_secret_value()
        .secret_id(out(&st, "db", "secret_arn"))
        .send()
        .await
        .unwrap();
    let db_secret: serde_json::Value = serde_json::from_str(db_secret.secret_string().unwrap()).unwrap();
    let password = db_secret["password"].as_str().unwrap().to_string();
    assert!(password.len() >= 8, "the managed password looks wrong");

    // A new licence value reaches the secret on the next `up` (and only the secret).
    let renewed_env = [(var, RENEWED)];
    let renewed = ok_with(&d, &up_args(&ami, cfg, &["-vv", "--json"]), &renewed_env);
    seen.push(("up with a new licence stdout".into(), renewed.stdout.clone()));
    seen.push(("up with a new licence stderr".into(), renewed.stderr.clone()));
    let stored = c
        .secrets
        .get_secret_value()
        .secret_id(&licence_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.secret_string(), Some(RENEWED));
    seen.push(("state file after the new licence".into(), d.state_bytes().unwrap()));

    // The default verbosity, and a blue/green upgrade, which writes a new launch template
    // version and reads the instances' state.
    let plain = ok_with(&d, &up_args(&ami, cfg, &[]), &env);
    seen.push(("up stdout".into(), plain.stdout.clone()));
    seen.push(("up stderr".into(), plain.stderr.clone()));
    let ami_b = common::ami('B');
    let upgrade = ok_with(
        &d,
        &["upgrade", "--ami", &ami_b, "--yes", "-vv", "--json", "--config", cfg],
        &env,
    );
    seen.push(("upgrade -vv --json stdout".into(), upgrade.stdout.clone()));
    seen.push(("upgrade -vv --json stderr".into(), upgrade.stderr.clone()));
    seen.push(("state file after the upgrade".into(), d.state_bytes().unwrap()));
    seen.push((
        "state backup after the upgrade".into(),
        d.previous_state_bytes().unwrap(),
    ));
    if d.is_s3() {
        // Every version the bucket keeps of the state object, not only the last two.
        for (id, bytes) in common::object_versions(&d.endpoint(), common::state_bucket(), &d.state_key()) {
            seen.push((format!("state version {id}"), bytes.unwrap_or_default()));
        }
    }
    // What every instance is given: each launch template version's data and user data.
    let versions = c
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(out(&d.state(), "launch-template", "id"))
        .send()
        .await
        .unwrap();
    let versions = versions.launch_template_versions();
    assert!(versions.len() >= 2, "the upgrade made a launch template version");
    for v in versions {
        let n = v.version_number().unwrap_or_default();
        let data = v.launch_template_data().expect("launch template data");
        let user_data = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            data.user_data().expect("user data"),
        )
        .unwrap();
        assert!(
            user_data.starts_with(b"#!"),
            "version {n}'s user data decodes to a script"
        );
        seen.push((format!("user data of launch template version {n}"), user_data));
        seen.push((format!("launch template version {n}"), format!("{data:?}").into_bytes()));
    }

    let down = ok_with(
        &d,
        &[
            "destroy",
            "--yes",
            "--skip-final-snapshot",
            "-vv",
            "--json",
            "--config",
            cfg,
        ],
        &env,
    );
    seen.push(("destroy -vv --json stdout".into(), down.stdout.clone()));
    seen.push(("destroy -vv --json stderr".into(), down.stderr.clone()));

    for (what, bytes) in &seen {
        let text = String::from_utf8_lossy(bytes);
        assert!(!text.contains(LICENCE), "the licence appears in {what}");
        assert!(!text.contains(RENEWED), "the new licence appears in {what}");
        assert!(!text.contains(&password), "the DB password appears in {what}");
    }
    assert_eq!(census::data(&c, &d.name).await, census::Census::new());
    assert!(secret_is_gone(&c, &licence_arn).await);
}
