//! docs/operator-policy.json, the least-privilege IAM policy of the operator who runs
//! pi-deploy, is complete: a full cycle on the emulator (plan, up with every optional part,
//! plan, status, outputs, sideload, logs, snapshot, restore --files, restore and its
//! --finish, upgrade, a day-2 up, destroy) records every AWS operation it calls
//! (`PI_DEPLOY_CALL_COUNTS`), each is mapped to the IAM action AWS authorizes it with, and
//! every action must be allowed by an Allow statement of the policy. A new AWS call in the
//! code that the policy does not allow fails here, naming the action.
//!
//! What the cycle does not reach (connect, the S3 state backend, most day-2 changes, and
//! the actions AWS checks that no API call names, such as tag-on-create and iam:PassRole) is
//! in the policy from reading the code and AWS's documentation: docs/operator-policy.md.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::common::{self, Deployment, call_counts, clients, config, run_with, show, succeeded, zone_and_certificate};

fn policy() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/operator-policy.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// A statement's `Action` (or `NotAction`): a string or a list of strings.
fn actions_of(statement: &Value, field: &str) -> Vec<String> {
    match &statement[field] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .map(|v| v.as_str().expect("an action is a string").to_string())
            .collect(),
        Value::Null => vec![],
        other => panic!("{field} is neither a string nor a list: {other}"),
    }
}

/// IAM's action match: case-insensitive, `*` any run of characters, `?` any one.
fn action_matches(pattern: &str, action: &str) -> bool {
    fn m(p: &[u8], a: &[u8]) -> bool {
        match (p.first(), a.first()) {
            (None, None) => true,
            (Some(b'*'), _) => m(&p[1..], a) || (!a.is_empty() && m(p, &a[1..])),
            (Some(b'?'), Some(_)) => m(&p[1..], &a[1..]),
            (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => m(&p[1..], &a[1..]),
            _ => false,
        }
    }
    m(pattern.as_bytes(), action.as_bytes())
}

/// The Sids of the Allow statements whose `Action` matches `action`.
fn allowed_by(policy: &Value, action: &str) -> Vec<String> {
    policy["Statement"]
        .as_array()
        .expect("Statement is a list")
        .iter()
        .filter(|s| s["Effect"] == "Allow")
        .filter(|s| actions_of(s, "Action").iter().any(|p| action_matches(p, action)))
        .map(|s| s["Sid"].as_str().unwrap_or("(no Sid)").to_string())
        .collect()
}

/// The IAM prefix of each service as the SDK's call counter names it (the `Metadata`
/// service name of the aws-sdk-* crates).
const SERVICE_PREFIX: [(&str, &str); 16] = [
    ("ACM", "acm"),
    ("Auto Scaling", "autoscaling"),
    ("Backup", "backup"),
    ("CloudWatch", "cloudwatch"),
    ("CloudWatch Logs", "logs"),
    ("EC2", "ec2"),
    ("EFS", "elasticfilesystem"),
    ("Elastic Load Balancing v2", "elasticloadbalancing"),
    ("IAM", "iam"),
    ("Lambda", "lambda"),
    ("RDS", "rds"),
    ("Route 53", "route53"),
    ("S3", "s3"),
    ("Secrets Manager", "secretsmanager"),
    ("SSM", "ssm"),
    ("STS", "sts"),
];

/// API operations AWS authorizes under an action of another name (Service Authorization
/// Reference): everything else is authorized as `<prefix>:<Operation>`.
const RENAMED: [(&str, &str); 19] = [
    ("S3.ListObjectsV2", "s3:ListBucket"),
    ("S3.ListObjects", "s3:ListBucket"),
    ("S3.HeadBucket", "s3:ListBucket"),
    ("S3.HeadObject", "s3:GetObject"),
    ("S3.ListObjectVersions", "s3:ListBucketVersions"),
    ("S3.ListMultipartUploads", "s3:ListBucketMultipartUploads"),
    ("S3.ListParts", "s3:ListMultipartUploadParts"),
    ("S3.CreateMultipartUpload", "s3:PutObject"),
    ("S3.UploadPart", "s3:PutObject"),
    ("S3.CompleteMultipartUpload", "s3:PutObject"),
    ("S3.DeleteObjects", "s3:DeleteObject"),
    ("S3.PutBucketEncryption", "s3:PutEncryptionConfiguration"),
    ("S3.GetBucketEncryption", "s3:GetEncryptionConfiguration"),
    ("S3.PutBucketLifecycleConfiguration", "s3:PutLifecycleConfiguration"),
    ("S3.GetBucketLifecycleConfiguration", "s3:GetLifecycleConfiguration"),
    ("S3.PutBucketNotificationConfiguration", "s3:PutBucketNotification"),
    ("S3.GetBucketNotificationConfiguration", "s3:GetBucketNotification"),
    ("S3.PutPublicAccessBlock", "s3:PutBucketPublicAccessBlock"),
    ("S3.GetPublicAccessBlock", "s3:GetBucketPublicAccessBlock"),
];

/// The IAM action of a call-count key (`EC2.RunInstances.DryRun` is authorized as the call
/// itself); `Err` for a service missing from `SERVICE_PREFIX`.
fn iam_action(key: &str) -> Result<String, String> {
    let call = key.strip_suffix(".DryRun").unwrap_or(key);
    let (service, op) = call
        .rsplit_once('.')
        .ok_or_else(|| format!("`{key}` is not `Service.Operation`"))?;
    let prefix = SERVICE_PREFIX
        .iter()
        .find(|(s, _)| *s == service)
        .map(|(_, p)| *p)
        .ok_or_else(|| format!("`{key}`: service `{service}` has no IAM prefix in SERVICE_PREFIX"))?;
    let renamed = format!("{prefix}.{op}");
    Ok(RENAMED
        .iter()
        .find(|(api, _)| *api == call || *api == renamed)
        .map(|(_, action)| action.to_string())
        .unwrap_or_else(|| format!("{prefix}:{op}")))
}

/// The managed policies README.md makes of the document (`pi-deploy-operator-<part>`), by
/// the prefixes of their statements' Sids.
const PARTS: [(&str, &[&str]); 3] = [
    ("network", &["Sts", "Ec2", "Route53", "Acm", "Elb"]),
    (
        "compute",
        &["AutoScaling", "CloudWatch", "Logs", "Lambda", "Ssm", "Iam"],
    ),
    ("data", &["S3", "Efs", "Rds", "Secrets", "Kms", "Backup"]),
];

/// Pure, no emulator: the document is an IAM policy of the shape the docs promise.
#[test]
fn the_operator_policy_is_least_privilege_shaped() {
    let p = policy();
    assert_eq!(p["Version"], "2012-10-17");
    let statements = p["Statement"].as_array().expect("Statement is a list");
    assert!(!statements.is_empty());
    let mut sids = BTreeSet::new();
    let shape = regex_lite_action();
    for s in statements {
        let sid = s["Sid"]
            .as_str()
            .unwrap_or_else(|| panic!("a statement without a Sid: {s}"));
        assert!(sids.insert(sid.to_string()), "Sid `{sid}` twice");
        assert!(
            sid.chars().all(|c| c.is_ascii_alphanumeric()),
            "Sid `{sid}`: IAM allows only letters and digits"
        );
        assert_eq!(s["Effect"], "Allow", "{sid}: only Allow statements");
        assert!(
            s.get("NotAction").is_none() && s.get("NotResource").is_none(),
            "{sid}: no Not*"
        );
        assert!(s.get("Resource").is_some(), "{sid}: no Resource");
        let actions = actions_of(s, "Action");
        assert!(!actions.is_empty(), "{sid}: no Action");
        for a in &actions {
            assert!(a != "*" && !a.starts_with("*:"), "{sid}: `{a}` grants everything");
            assert!(!a.eq_ignore_ascii_case("iam:*"), "{sid}: `{a}` grants all of IAM");
            assert!(shape(a), "{sid}: `{a}` is not `service:Name`");
            // Exact names only: a wildcard would grant actions AWS adds later.
            assert!(!a.contains(['*', '?']), "{sid}: `{a}` is a wildcard");
        }
        let resources = match &s["Resource"] {
            Value::String(r) => vec![r.clone()],
            Value::Array(r) => r.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
            other => panic!("{sid}: Resource {other}"),
        };
        for r in &resources {
            assert!(r == "*" || r.starts_with("arn:aws:"), "{sid}: resource `{r}`");
        }
        // A write on every resource is named and explained in docs/operator-policy.md.
        if resources.iter().any(|r| r == "*") {
            assert!(
                sid.ends_with("Read") || sid.ends_with("AnyId") || sid.ends_with("Conditional"),
                "{sid}: a statement on `*` is a Read, an AnyId (ids are unknown before they exist: docs/operator-policy.md) or a Conditional one"
            );
            if sid.ends_with("Conditional") {
                assert!(s.get("Condition").is_some(), "{sid}: Conditional without a Condition");
            }
        }
    }
    // IAM refuses a managed policy above 6,144 characters (whitespace not counted): the
    // README creates it as these parts, chosen by Sid prefix; each fits, and together they
    // hold every statement once.
    let mut parted = 0;
    for (part, prefixes) in PARTS {
        let chosen: Vec<&Value> = statements
            .iter()
            .filter(|s| prefixes.iter().any(|p| s["Sid"].as_str().unwrap().starts_with(p)))
            .collect();
        parted += chosen.len();
        let doc = serde_json::json!({ "Version": p["Version"], "Statement": chosen });
        let size = doc.to_string().chars().filter(|c| !c.is_whitespace()).count();
        assert!(size <= 6144, "part `{part}` is {size} characters; IAM allows 6,144");
    }
    assert_eq!(parted, statements.len(), "a statement in no part, or in two: {PARTS:?}");
    // The mapping's own checks.
    assert_eq!(iam_action("EC2.RunInstances.DryRun").unwrap(), "ec2:RunInstances");
    assert_eq!(iam_action("S3.ListObjectsV2").unwrap(), "s3:ListBucket");
    assert_eq!(
        iam_action("Auto Scaling.DescribeAutoScalingGroups").unwrap(),
        "autoscaling:DescribeAutoScalingGroups"
    );
    assert_eq!(
        iam_action("Elastic Load Balancing v2.DescribeTargetHealth").unwrap(),
        "elasticloadbalancing:DescribeTargetHealth"
    );
    assert!(iam_action("Kinesis.PutRecord").is_err());
    assert!(action_matches("ec2:Describe*", "EC2:DescribeVpcs"));
    assert!(action_matches("s3:Get?ucket*", "s3:GetBucketPolicy"));
    assert!(!action_matches("ec2:Describe*", "ec2:DeleteVpc"));
    assert!(!action_matches("ec2:CreateVpc", "ec2:CreateVpcEndpoint"));
}

/// `service:Name`: a lowercase service prefix, a colon, an action name of letters and digits
/// (a `*` or `?` wildcard allowed inside the name).
fn regex_lite_action() -> impl Fn(&str) -> bool {
    |a: &str| match a.split_once(':') {
        Some((service, name)) => {
            !service.is_empty()
                && service
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && name.starts_with(|c: char| c.is_ascii_uppercase())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '*' || c == '?')
        }
        None => false,
    }
}

/// Run `args` with the call counts in `<dir>/calls-<n>.json` and the licence variable set;
/// the run's output and the operations it called.
fn counted(
    d: &Deployment,
    n: &mut usize,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Output, BTreeMap<String, u64>) {
    *n += 1;
    let path = d.state_dir.path().join(format!("calls-{n}.json"));
    let path_str = path.to_str().unwrap().to_string();
    let mut all: Vec<(&str, &str)> = env.to_vec();
    all.push(("PI_DEPLOY_CALL_COUNTS", &path_str));
    let out = run_with(d, args, &all);
    (out, call_counts(&path))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_aws_call_of_a_full_cycle_is_allowed_by_the_operator_policy() {
    let started = std::time::Instant::now();
    let c = clients().await;
    let d = Deployment::new("iamp");
    let (zone_id, domain, cert) = zone_and_certificate(&c, &d).await;
    let (a, b) = (common::ami('A'), common::ami('B'));
    // Every optional part on: a certificate (HTTPS listener), the domain's alias record, the
    // licence secret, an EC2 key pair, bucket versioning; the defaults already have the interface endpoints,
    // ALB access logs and the DB error log export.
    c.ec2.create_key_pair().key_name(&d.name).send().await.unwrap();
    let settings = |health_check_interval: u32| {
        format!(
            "ami = \"{a}\"\ncertificate_arn = \"{cert}\"\nhosted_zone_id = \"{zone_id}\"\ndomain_name = \"{domain}\"\n\
             key_pair = \"{}\"\n\n[licence]\nenv = \"PI_TEST_IAM_LICENCE\"\n\n[database]\ndeletion_protection = false\n\n\
             [storage]\nbucket_versioning = true\n\n[health_check]\ninterval_seconds = {health_check_interval}\n",
            d.name
        )
    };
    let cfg = config(&d, &settings(15));
    let cfg = cfg.to_str().unwrap();
    let env = [("PI_TEST_IAM_LICENCE", "PI-TEST-LICENCE-iam-policy")];
    let media = d.state_dir.path().join("media");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(media.join("logo.png"), b"not really a png").unwrap();
    let media = media.to_str().unwrap();

    let mut n = 0;
    // operation -> the commands that called it
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut timings = Vec::new();
    // One command of the cycle, with the config; `must_succeed` false: exit 1 is accepted
    // too (its calls count).
    let mut step = |args: &[&str], must_succeed: bool| {
        let what = args
            .iter()
            .filter(|a| **a != media)
            .copied()
            .collect::<Vec<_>>()
            .join(" ");
        let mut all = args.to_vec();
        all.extend(["--config", cfg]);
        let t = std::time::Instant::now();
        let (out, calls) = counted(&d, &mut n, &all, &env);
        let shown = show(&out);
        timings.push(format!(
            "{what}: {:.1}s, {} operations",
            t.elapsed().as_secs_f64(),
            calls.len()
        ));
        eprintln!("iam_policy: {}", timings.last().unwrap());
        if must_succeed {
            succeeded(&all, out);
        } else {
            assert!(
                out.status.code().is_some_and(|c| c <= 1),
                "pi-deploy {what}: {}\n{shown}",
                out.status
            );
        }
        // `outputs` of a local state needs no AWS call; every other command makes calls and
        // writes them.
        let writes_none = what == "outputs";
        assert!(
            !calls.is_empty() || writes_none,
            "pi-deploy {what} wrote no call counts:\n{shown}"
        );
        for op in calls.into_keys() {
            seen.entry(op).or_default().insert(what.clone());
        }
    };

    step(&["plan"], true);
    step(&["up", "--yes"], true);
    step(&["plan"], true);
    // 1 when a target or the Lambda's log is not healthy on the emulator.
    step(&["status"], false);
    step(&["outputs"], true);
    // Without a Lambda on the emulator the receipt may report the object not copied.
    step(&["sideload", media, "--to", "images"], false);
    step(&["logs"], false);
    step(&["logs", "--instance"], false);
    step(&["snapshot", "--label", "before-upgrade"], true);
    step(&["snapshot", "--list"], true);
    // Both restores, from what the snapshot took.
    let fs_arn = common::out(&d.state(), "efs", "arn");
    let point = common::recovery_points(&c, &fs_arn)
        .await
        .pop()
        .expect("a recovery point");
    step(&["restore", "--files", &point, "--path", "/themes"], true);
    // The whole file system into a new one, switched to and rolled, then the old one deleted.
    step(&["restore", "--files", &point, "--yes"], true);
    step(&["restore", "--finish", "--yes"], true);
    let snapshot = common::db_snapshots(&c, &d.name).await.pop().expect("a DB snapshot").0;
    step(&["restore", "--db-snapshot", &snapshot, "--yes"], true);
    step(&["restore", "--finish", "--yes"], true);
    step(&["upgrade", "--ami", &b, "--yes"], true);
    // Day 2: a setting changed in place (the target group's health check).
    std::fs::write(cfg, settings(20)).unwrap();
    step(&["up", "--yes"], true);
    step(
        &[
            "destroy",
            "--yes",
            "--skip-final-snapshot",
            "--disable-deletion-protection",
        ],
        true,
    );
    c.route53.delete_hosted_zone().id(&zone_id).send().await.ok();
    c.ec2.delete_key_pair().key_name(&d.name).send().await.ok();

    let p = policy();
    let mut missing = Vec::new();
    let mut actions = BTreeSet::new();
    for (op, commands) in &seen {
        match iam_action(op) {
            Ok(action) => {
                if allowed_by(&p, &action).is_empty() {
                    missing.push(format!("{action} (called as {op} by {commands:?})"));
                }
                actions.insert(action);
            }
            Err(e) => missing.push(e),
        }
    }
    eprintln!(
        "iam_policy: {} operations ({} IAM actions) in {:.0}s:\n  {}\n  {}",
        seen.len(),
        actions.len(),
        started.elapsed().as_secs_f64(),
        timings.join("\n  "),
        seen.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    assert!(
        missing.is_empty(),
        "docs/operator-policy.json allows none of these calls of the cycle ({} of {}):\n  {}",
        missing.len(),
        seen.len(),
        missing.join("\n  ")
    );
    // The cycle reached what it is meant to reach (else the proof is thinner than it says).
    for must in [
        "ACM.DescribeCertificate",
        "Route 53.ChangeResourceRecordSets",
        "Secrets Manager.CreateSecret",
        "Backup.StartBackupJob",
        "RDS.CreateDBSnapshot",
        "EC2.CreateLaunchTemplateVersion",
        "Elastic Load Balancing v2.CreateListener",
        "S3.PutObject",
        "Lambda.DeleteFunction",
        "RDS.RestoreDBInstanceFromDBSnapshot",
        "Backup.StartRestoreJob",
        "EC2.DescribeKeyPairs",
        "Elastic Load Balancing v2.ModifyTargetGroup",
    ] {
        assert!(seen.contains_key(must), "the cycle never called {must}");
    }
}
