//! The side-loading tier end to end on the emulator: the Lambda's role (trust, managed and
//! inline policy), its log group, the function (runtime, VPC, role, environment), the S3
//! permission (SourceArn and SourceAccount) and the bucket notification (five folders, both
//! event types) read back as the blueprint says; a second `up` touches nothing; a changed
//! handler updates the code and nothing else; `destroy` removes all of it, including a
//! detached Lambda ENI left in the subnets.
//!
//! What the emulator cannot show is unit-tested instead: the CreateFunction request
//! (moto drops FileSystemConfigs), IAM propagation, Pending -> Active, slow ENI release.

use std::collections::BTreeSet;

use pi_deploy::core::names;
use pi_deploy::core::policy::{self, ArnScope};
use pi_deploy::core::spec::SIDELOAD_PREFIXES;
use serde_json::Value;

use crate::census;
use crate::common::{self, Deployment, clients, count_status, events, kill_when_state, out};

/// IAM returns policy documents URL-encoded.
fn decode(s: &str) -> Value {
    let b = s.as_bytes();
    let mut bytes = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            bytes.push(u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap(), 16).unwrap());
            i += 3;
        } else {
            bytes.push(b[i]);
            i += 1;
        }
    }
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not a JSON policy ({e}): {s}"))
}

fn resource_statuses(ev: &[Value]) -> Vec<(String, String)> {
    ev.iter()
        .filter(|e| e["event"] == "resource")
        .map(|e| {
            (
                e["key"].as_str().unwrap_or("").to_string(),
                e["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A copy of the handler with one more line, for the "code changed" run.
fn changed_handler(d: &Deployment) -> std::path::PathBuf {
    let original = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/lambda/sideload/handler.py")).unwrap();
    let path = d.state_dir.path().join("handler.py");
    std::fs::write(
        &path,
        format!("{original}\n# changed by the sideload integration test\n"),
    )
    .unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn sideload_tier_reads_back_updates_only_changed_code_and_is_destroyed() {
    let d = Deployment::new("sl");
    let first = d.up(&["--json"]);
    assert!(
        events(&first).last().unwrap()["ok"].as_bool().unwrap(),
        "{}",
        common::show(&first)
    );
    let c = clients().await;
    let id = c.identity(&d.name).await.unwrap();
    let scope = ArnScope {
        partition: &id.partition,
        region: &id.region,
        account: &id.account_id,
    };
    let st = d.state();

    // Found by name from AWS's side, each once, tagged with its key.
    let sl = census::sideload(&c, &d.name).await;
    assert_eq!(sl.get("lambda-function"), Some(&vec!["lambda".to_string()]), "{sl:?}");
    assert_eq!(
        sl.get("log-group"),
        Some(&vec!["lambda-log-group".to_string()]),
        "{sl:?}"
    );
    let roles = census::iam_roles(&c, &d.name).await;
    assert_eq!(
        roles["iam-role"].iter().filter(|k| *k == "lambda-role").count(),
        1,
        "{roles:?}"
    );
    assert!(!roles["iam-role"].iter().any(|k| k.starts_with('?')), "{roles:?}");

    // Role: trusted by Lambda only; the VPC access policy; the inline policy on our ARNs only.
    let role_name = names::lambda_role(&d.name);
    assert_eq!(out(&st, "lambda-role", "id"), role_name);
    let role = c.iam.get_role().role_name(&role_name).send().await.unwrap();
    let role = role.role().unwrap();
    assert_eq!(role.arn(), out(&st, "lambda-role", "arn"));
    assert_eq!(
        decode(role.assume_role_policy_document().unwrap()),
        policy::trust_policy("lambda.amazonaws.com", &id.account_id)
    );
    let attached = c
        .iam
        .list_attached_role_policies()
        .role_name(&role_name)
        .send()
        .await
        .unwrap();
    let attached: Vec<&str> = attached
        .attached_policies()
        .iter()
        .filter_map(|p| p.policy_arn())
        .collect();
    assert_eq!(
        attached,
        [policy::managed_policy_arn(
            &id.partition,
            "service-role/AWSLambdaVPCAccessExecutionRole"
        )]
    );
    let inline = c.iam.list_role_policies().role_name(&role_name).send().await.unwrap();
    assert_eq!(inline.policy_names(), ["pi-deploy"]);
    let doc = c
        .iam
        .get_role_policy()
        .role_name(&role_name)
        .policy_name("pi-deploy")
        .send()
        .await
        .unwrap();
    let expected = policy::sideload_lambda(
        &scope,
        &out(&st, "bucket", "arn"),
        &out(&st, "efs", "arn"),
        Some(&out(&st, "efs-ap", "arn")),
        &names::lambda_log_group(&d.name),
    );
    assert_eq!(decode(doc.policy_document()), expected);

    // Log group: retention set at create.
    let groups = c
        .logs
        .describe_log_groups()
        .log_group_name_prefix(names::lambda_log_group(&d.name))
        .send()
        .await
        .unwrap();
    let group = groups
        .log_groups()
        .iter()
        .find(|g| g.log_group_name() == Some(names::lambda_log_group(&d.name).as_str()))
        .unwrap();
    assert_eq!(group.retention_in_days(), Some(365));

    // Function: runtime, handler, role, VPC (app subnets, lambda SG), environment, no tracing.
    let fname = names::lambda_function(&d.name);
    let f = c.lambda.get_function().function_name(&fname).send().await.unwrap();
    let cfg = f.configuration().unwrap().clone();
    assert_eq!(cfg.runtime().map(|r| r.as_str()), Some("python3.12"));
    assert_eq!(cfg.handler(), Some("handler.handler"));
    assert_eq!(cfg.role(), Some(out(&st, "lambda-role", "arn").as_str()));
    assert_eq!(cfg.timeout(), Some(60));
    assert_eq!(cfg.memory_size(), Some(256));
    let vpc = cfg.vpc_config().unwrap();
    let subnets: BTreeSet<&str> = vpc.subnet_ids().iter().map(String::as_str).collect();
    let app: BTreeSet<String> = [out(&st, "subnet-app-a", "id"), out(&st, "subnet-app-b", "id")].into();
    assert_eq!(subnets, app.iter().map(String::as_str).collect());
    assert_eq!(vpc.security_group_ids(), [out(&st, "sg-lambda", "id")]);
    let env = cfg.environment().and_then(|e| e.variables()).unwrap();
    assert_eq!(env.get("EFS_ROOT").map(String::as_str), Some("/mnt/efs"));
    assert_ne!(
        cfg.tracing_config().and_then(|t| t.mode()).map(|m| m.as_str()),
        Some("Active")
    );
    assert_eq!(cfg.code_sha256(), Some(out(&st, "lambda", "code_sha256").as_str()));
    assert_eq!(f.tags().unwrap().get("pi-deploy:deployment"), Some(&d.name));

    // Permission: S3 may invoke it, for our bucket in our account only.
    let pol: Value = serde_json::from_str(
        c.lambda
            .get_policy()
            .function_name(&fname)
            .send()
            .await
            .unwrap()
            .policy()
            .unwrap(),
    )
    .unwrap();
    let statements = pol["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{pol}");
    let s = &statements[0];
    assert_eq!(s["Sid"], format!("s3-invoke-{}", d.name));
    assert_eq!(s["Principal"]["Service"], "s3.amazonaws.com");
    assert_eq!(s["Action"], "lambda:InvokeFunction");
    assert_eq!(s["Condition"]["ArnLike"]["AWS:SourceArn"], out(&st, "bucket", "arn"));
    assert_eq!(s["Condition"]["StringEquals"]["AWS:SourceAccount"], id.account_id);

    // Notification: one configuration per folder, created and removed events, to our function.
    let bucket = out(&st, "bucket", "id");
    let n =
        c.s3.get_bucket_notification_configuration()
            .bucket(&bucket)
            .send()
            .await
            .unwrap();
    let configs = n.lambda_function_configurations();
    assert_eq!(configs.len(), 5, "{configs:?}");
    let mut prefixes = BTreeSet::new();
    for conf in configs {
        assert_eq!(conf.lambda_function_arn(), out(&st, "lambda", "arn"));
        let events: BTreeSet<&str> = conf.events().iter().map(|e| e.as_str()).collect();
        assert_eq!(events, ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"].into());
        let rules = conf
            .filter()
            .and_then(|f| f.key())
            .map(|k| k.filter_rules().to_vec())
            .unwrap_or_default();
        assert_eq!(rules.len(), 1, "{conf:?}");
        assert_eq!(
            rules[0].name().map(|n| n.as_str().to_ascii_lowercase()).as_deref(),
            Some("prefix")
        );
        prefixes.insert(rules[0].value().unwrap().to_string());
    }
    assert_eq!(prefixes, SIDELOAD_PREFIXES.iter().map(|p| p.to_string()).collect());

    // A second `up` touches nothing.
    let again = d.up(&["--json"]);
    let ev = events(&again);
    assert!(resource_statuses(&ev).is_empty(), "{}", common::show(&again));

    // A changed handler: only the function is converged, only its code changes.
    let before = d.state();
    let handler = changed_handler(&d);
    let ami = common::ami('A');
    let mut cmd = d.command(&["up", "--ami", &ami, "--yes", "--json"]);
    let changed = cmd.env("PI_DEPLOY_SIDELOAD_HANDLER", &handler).output().unwrap();
    assert!(changed.status.success(), "{}", common::show(&changed));
    let ev = events(&changed);
    let touched: BTreeSet<String> = resource_statuses(&ev).into_iter().map(|(k, _)| k).collect();
    assert_eq!(touched, ["lambda".to_string()].into(), "{}", common::show(&changed));
    assert_eq!(count_status(&ev, "created") + count_status(&ev, "adopted"), 0);
    let after_cfg = c
        .lambda
        .get_function_configuration()
        .function_name(&fname)
        .send()
        .await
        .unwrap();
    assert_ne!(after_cfg.code_sha256(), cfg.code_sha256(), "the code was not updated");
    let after = d.state();
    assert_eq!(
        after_cfg.code_sha256(),
        Some(out(&after, "lambda", "code_sha256").as_str())
    );
    assert_eq!(after_cfg.runtime(), cfg.runtime());
    assert_eq!(after_cfg.role(), cfg.role());
    assert_eq!(after_cfg.handler(), cfg.handler());
    assert_eq!(after_cfg.timeout(), cfg.timeout());
    assert_eq!(after_cfg.memory_size(), cfg.memory_size());
    assert_eq!(after_cfg.environment(), cfg.environment());
    assert_eq!(after_cfg.vpc_config(), cfg.vpc_config());
    for (key, rec) in before["resources"].as_object().unwrap() {
        if key != "lambda" {
            assert_eq!(
                &after["resources"][key], rec,
                "{key} changed although only the handler did"
            );
        }
    }
    // The same changed handler again: nothing to do.
    let mut cmd = d.command(&["up", "--ami", &ami, "--yes", "--json"]);
    let same = cmd.env("PI_DEPLOY_SIDELOAD_HANDLER", &handler).output().unwrap();
    assert!(same.status.success(), "{}", common::show(&same));
    assert!(resource_statuses(&events(&same)).is_empty(), "{}", common::show(&same));

    // A detached Lambda ENI left in an app subnet (AWS's Hyperplane ENIs outlive the
    // function): destroy deletes it before the subnets and the security group.
    let eni = c
        .ec2
        .create_network_interface()
        .subnet_id(out(&st, "subnet-app-a", "id"))
        .groups(out(&st, "sg-lambda", "id"))
        .description(format!("AWS Lambda VPC ENI-{fname}-0f1e2d3c"))
        .send()
        .await
        .unwrap();
    let eni_id = eni
        .network_interface()
        .unwrap()
        .network_interface_id()
        .unwrap()
        .to_string();

    // `destroy` removes the whole tier.
    d.destroy();
    assert!(census::sideload(&c, &d.name).await.is_empty());
    assert!(census::iam_roles(&c, &d.name).await.is_empty());
    assert!(c.iam.get_role().role_name(&role_name).send().await.is_err());
    assert!(c.lambda.get_function().function_name(&fname).send().await.is_err());
    let left = c
        .ec2
        .describe_network_interfaces()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("network-interface-id")
                .values(&eni_id)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        left.network_interfaces().is_empty(),
        "the detached Lambda ENI was left behind"
    );
    assert!(!d.state_exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_of_the_same_name_that_is_not_ours_is_never_adopted() {
    let d = Deployment::new("slx");
    let c = clients().await;
    let role_name = names::lambda_role(&d.name);
    c.iam
        .create_role()
        .role_name(&role_name)
        .assume_role_policy_document(policy::trust_policy("lambda.amazonaws.com", "123456789012").to_string())
        .send()
        .await
        .unwrap();

    let ami = common::ami('A');
    let failed = d.run(&["up", "--ami", &ami, "--yes"]);
    assert!(!failed.status.success(), "{}", common::show(&failed));
    let text = common::show(&failed);
    assert!(
        text.contains(&role_name) && text.contains("without this deployment's tags"),
        "{text}"
    );
    // Nothing was attached to the foreign role.
    let attached = c
        .iam
        .list_attached_role_policies()
        .role_name(&role_name)
        .send()
        .await
        .unwrap();
    assert!(attached.attached_policies().is_empty());
    assert!(
        c.iam
            .list_role_policies()
            .role_name(&role_name)
            .send()
            .await
            .unwrap()
            .policy_names()
            .is_empty()
    );

    d.destroy();
    // The foreign role survives our destroy.
    assert!(c.iam.get_role().role_name(&role_name).send().await.is_ok());
    c.iam.delete_role().role_name(&role_name).send().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_up_in_the_sideload_tier_resumes_without_duplicates() {
    let c = clients().await;
    for key in ["lambda-role", "lambda", "lambda-permission"] {
        let d = Deployment::new("slkill");
        let ami = common::ami('A');
        let up = ["up", "--ami", ami.as_str(), "--yes", "--json"];
        let killed = kill_when_state(&d, &up, &format!("{key} recorded"), |v| {
            v["resources"].get(key).is_some()
        });
        d.up(&[]);
        let sl = census::sideload(&c, &d.name).await;
        assert_eq!(
            sl.get("lambda-function"),
            Some(&vec!["lambda".to_string()]),
            "killed at {key} ({killed}): {sl:?}"
        );
        assert_eq!(
            sl.get("log-group"),
            Some(&vec!["lambda-log-group".to_string()]),
            "killed at {key} ({killed})"
        );
        let pol = c
            .lambda
            .get_policy()
            .function_name(names::lambda_function(&d.name))
            .send()
            .await
            .unwrap();
        let pol: Value = serde_json::from_str(pol.policy().unwrap()).unwrap();
        assert_eq!(
            pol["Statement"].as_array().unwrap().len(),
            1,
            "killed at {key} ({killed}): {pol}"
        );
        let st = d.state();
        let n =
            c.s3.get_bucket_notification_configuration()
                .bucket(out(&st, "bucket", "id"))
                .send()
                .await
                .unwrap();
        assert_eq!(
            n.lambda_function_configurations().len(),
            5,
            "killed at {key} ({killed})"
        );
        d.destroy();
        assert!(census::sideload(&c, &d.name).await.is_empty());
        assert!(census::iam_roles(&c, &d.name).await.is_empty());
    }
}
