//! The operator's commands on the emulator: `plan` (no mutating call, then nothing to do),
//! `status` (drift, leaks, Lambda errors, exit codes), `outputs` (no AWS at all), the
//! `--help` texts and completions, and the endpoint switch (one env var picks the emulator).
//!
//! Snapshots live in `tests/integration/snapshots/`; after an intended change of the output
//! (or of the architecture, which changes the resource lists) review them with
//! `cargo insta review`, or accept them with `INSTA_UPDATE=always cargo test --test integration operator`.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ec2::types::{IpPermission, IpRange, ResourceType, Tag, TagSpecification};
use pi_deploy::aws::Clients;

use crate::common::{self, Deployment, clients, show};

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", show(out)))
}

/// Placeholders for what changes from run to run: the deployment name and AWS ids
/// (`vpc-0a1b...` -> `vpc-<id>`: a known prefix followed by at least 8 hex digits).
fn redact(text: &str, deployment: &str) -> String {
    const PREFIXES: [&str; 15] = [
        "vpc-",
        "fl-",
        "subnet-",
        "sg-",
        "acl-",
        "nat-",
        "eipalloc-",
        "igw-",
        "rtb-",
        "vpce-",
        "fs-",
        "fsap-",
        "fsmt-",
        "i-",
        "lt-",
    ];
    let text = text.replace(deployment, "<deployment>");
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    'scan: while i < bytes.len() {
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'-');
        if boundary {
            for p in PREFIXES {
                if text[i..].starts_with(p) {
                    let hex = text[i + p.len()..].bytes().take_while(u8::is_ascii_hexdigit).count();
                    let end = i + p.len() + hex;
                    let ends_word = end == bytes.len() || !bytes[end].is_ascii_alphanumeric();
                    if hex >= 8 && ends_word {
                        out.push_str(p);
                        out.push_str("<id>");
                        i = end;
                        continue 'scan;
                    }
                }
            }
        }
        // ARN suffixes (`.../app/<deployment>-alb/50dc6c495c0c9188`).
        if i > 0 && bytes[i - 1] == b'/' {
            let hex = text[i..].bytes().take_while(u8::is_ascii_hexdigit).count();
            let end = i + hex;
            if hex >= 16 && (end == bytes.len() || !bytes[end].is_ascii_alphanumeric()) {
                out.push_str("<id>");
                i = end;
                continue 'scan;
            }
        }
        let ch = text[i..].chars().next().unwrap();
        out.push(ch);
        i += ch.len_utf8();
    }
    out
}

/// Operation names of a call-count dump (`{"EC2.DescribeVpcs": 3}`), which must exist.
fn operations(path: &Path) -> Vec<String> {
    assert!(path.exists(), "the binary wrote no call counts at {}", path.display());
    crate::common::call_counts(path).into_keys().collect()
}

fn is_read_only(op: &str) -> bool {
    common::is_read_only(op) || op == "STS.GetCallerIdentity"
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_makes_no_mutating_call_then_up_leaves_nothing_to_do_and_outputs_needs_no_aws() {
    let d = Deployment::new("opl");
    let ami = common::ami('A');
    let calls = d.state_dir.path().join("calls.json");

    // Empty account: every resource of the blueprint is a create; only read-only calls.
    let out = d
        .command(&["plan", "--ami", &ami, "--json"])
        .env("PI_DEPLOY_CALL_COUNTS", &calls)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let plan = json(&out);
    let steps = plan["steps"].as_array().unwrap();
    assert!(!steps.is_empty());
    for s in steps {
        assert_eq!(s["action"], "create", "{s}");
    }
    assert_eq!(plan["counts"]["create"].as_u64().unwrap() as usize, steps.len());
    let ops = operations(&calls);
    assert!(!ops.is_empty());
    let mutating: Vec<&String> = ops.iter().filter(|o| !is_read_only(o)).collect();
    assert!(mutating.is_empty(), "plan made mutating calls: {mutating:?}");
    assert!(!d.state_exists(), "plan must not write the state file");

    // The human text, ids redacted.
    let human = d.ok(&["plan", "--ami", &ami]);
    insta::assert_snapshot!("plan_empty_account", redact(&stdout(&human), &d.name));

    // `up` builds exactly what the plan listed.
    let up = d.up(&["--json"]);
    let finished = common::events(&up).last().cloned().unwrap();
    let st = d.state();
    let mut recorded: Vec<&str> = st["resources"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut planned: Vec<&str> = steps.iter().map(|s| s["key"].as_str().unwrap()).collect();
    recorded.sort();
    planned.sort();
    assert_eq!(recorded, planned);

    // After `up`: nothing to do, and the state file is not touched (not even its serial).
    let before = d.state_bytes().unwrap();
    let out = d
        .command(&["plan", "--ami", &ami, "--json"])
        .env("PI_DEPLOY_CALL_COUNTS", &calls)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    let plan = json(&out);
    for s in plan["steps"].as_array().unwrap() {
        assert_eq!(s["action"], "nothing", "{s}");
    }
    assert!(operations(&calls).iter().all(|o| is_read_only(o)));
    let human = d.ok(&["plan", "--ami", &ami]);
    insta::assert_snapshot!("plan_after_up", redact(&stdout(&human), &d.name));
    assert_eq!(d.state_bytes().unwrap(), before, "plan changed the state file");

    // `outputs`: what `up` printed, from the state alone; for a local state with no
    // credentials and an endpoint that does not answer (an S3 state needs its GetObject).
    let outputs_cmd = |args: &[&str]| {
        let mut c = d.command(args);
        if !d.is_s3() {
            c.env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
                .env_remove("AWS_ACCESS_KEY_ID")
                .env_remove("AWS_SECRET_ACCESS_KEY")
                .env_remove("AWS_REGION");
        }
        c.env("PI_DEPLOY_CALL_COUNTS", d.state_dir.path().join("outputs-calls.json"));
        c.output().unwrap()
    };
    let out = outputs_cmd(&["outputs", "--json"]);
    assert!(out.status.success(), "{}", show(&out));
    let outputs = json(&out);
    let expected = &finished["outputs"];
    let main_output = if expected.get("dashboard_url").is_some() {
        "dashboard_url"
    } else {
        "vpc_id"
    };
    assert!(
        expected[main_output].is_string(),
        "up printed no {main_output}: {finished}"
    );
    assert_eq!(outputs[main_output], expected[main_output]);
    assert_eq!(&outputs, expected, "outputs differ from what up printed");
    assert!(
        !d.state_dir.path().join("outputs-calls.json").exists(),
        "outputs made AWS calls"
    );
    let text = stdout(&outputs_cmd(&["outputs"]));
    assert!(text.contains(expected[main_output].as_str().unwrap()), "{text}");

    // Quiet: nothing but the final result.
    let out = d.ok(&["plan", "--ami", &ami, "-q"]);
    assert_eq!(
        stdout(&out),
        format!("No changes: all {} resources are up to date.\n", planned.len())
    );
    assert!(out.stderr.is_empty(), "{}", show(&out));

    d.destroy();
    // No state left: `outputs` refuses with exit 3 and says what to do.
    let out = outputs_cmd(&["outputs"]);
    assert_eq!(out.status.code(), Some(3), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("no state at {}", d.state_where())) && err.contains("hint: run `pi-deploy up` first"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_reports_drift_leaks_and_lambda_errors_with_exit_1() {
    let d = Deployment::new("ost");
    d.up(&[]);
    let c = clients().await;

    let out = d.run(&["status", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "a fresh deployment is healthy: {}",
        show(&out)
    );
    let report = json(&out);
    assert_eq!(report["healthy"], true);
    let live = |r: &serde_json::Value, key: &str| -> String {
        let res = r["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["key"] == key)
            .unwrap_or_else(|| panic!("{key} missing"));
        res["live"].as_str().unwrap().to_string()
    };
    for key in [
        "vpc",
        "subnet-app-a",
        "nat-a",
        "sg-alb",
        "nacl-app",
        "vpce-s3",
        "bucket",
        "db",
    ] {
        assert_eq!(live(&report, key), "available", "{key} is inspected");
    }
    // The compute tier, when `up` builds it: inspected, and every target healthy.
    if d.state()["resources"].get("asg").is_some() {
        for key in ["asg", "tg"] {
            assert_eq!(live(&report, key), "available", "{key} is inspected");
        }
        let targets = report["targets"]
            .as_array()
            .expect("targets are reported once a target group exists");
        assert!(
            !targets.is_empty() && targets.iter().all(|t| t["state"] == "healthy"),
            "{targets:?}"
        );
    }

    // Drift: a rule added by hand to the ALB's group.
    let st = d.state();
    let sg = st["resources"]["sg-alb"]["outputs"]["id"].as_str().unwrap();
    c.ec2
        .authorize_security_group_ingress()
        .group_id(sg)
        .ip_permissions(
            IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(22)
                .to_port(22)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build(),
        )
        .send()
        .await
        .unwrap();
    // Leak: a VPC tagged with the deployment that the state does not list.
    let tags = TagSpecification::builder()
        .resource_type(ResourceType::Vpc)
        .tags(Tag::builder().key("pi-deploy:deployment").value(&d.name).build())
        .tags(Tag::builder().key("pi-deploy:key").value("vpc-leak").build())
        .build();
    let leak = c
        .ec2
        .create_vpc()
        .cidr_block("10.9.0.0/16")
        .tag_specifications(tags)
        .send()
        .await
        .unwrap();
    let leak_id = leak.vpc().and_then(|v| v.vpc_id()).unwrap().to_string();
    // An ERROR line in the side-loading Lambda's log group.
    let group = pi_deploy::core::names::lambda_log_group(&d.name);
    c.logs
        .create_log_stream()
        .log_group_name(&group)
        .log_stream_name("test")
        .send()
        .await
        .unwrap();
    let event = aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
        .timestamp(chrono::Utc::now().timestamp_millis())
        .message("ERROR copy of images/logo.png failed: disk full")
        .build()
        .unwrap();
    c.logs
        .put_log_events()
        .log_group_name(&group)
        .log_stream_name("test")
        .log_events(event)
        .send()
        .await
        .unwrap();

    let out = d.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let report = json(&out);
    assert_eq!(report["healthy"], false);
    let sg_report = report["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "sg-alb")
        .unwrap();
    let drift = sg_report["drift"].as_array().unwrap();
    assert!(
        drift.iter().any(|x| x["attribute"] == "ingress"
            && x["actual"] == "tcp 22 from 0.0.0.0/0"
            && x["expected"] == "absent"),
        "{sg_report}"
    );
    let leaks = report["leaks"].as_array().unwrap();
    assert!(
        leaks
            .iter()
            .any(|l| l["key"] == "vpc-leak" && l["id"] == leak_id.as_str() && l["kind"] == "vpc"),
        "{leaks:?}"
    );
    let errors = report["lambda_errors"].as_array().unwrap();
    assert!(
        errors.iter().any(|e| e.as_str().unwrap().contains("disk full")),
        "{errors:?}"
    );

    // The human text: exit 1, the problems, and what to do next.
    let out = d.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!("status_drift_and_leak", redact(&stdout(&out), &d.name));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hint: run `pi-deploy up`"), "{err}");
    // Quiet: only the verdict and its problem list.
    let quiet = stdout(&d.run(&["status", "-q"]));
    assert!(quiet.starts_with("Status: "), "{quiet}");

    c.ec2.delete_vpc().vpc_id(&leak_id).send().await.unwrap();
    d.destroy();
}

#[test]
fn help_texts_have_an_example_for_every_command() {
    let help = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_pi-deploy"))
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", show(&out));
        stdout(&out)
    };
    insta::assert_snapshot!("help", help(&["--help"]));
    // Every subcommand clap knows, so a new command cannot ship without an example.
    // (and every subcommand of those, e.g. `state init`).
    let root = <pi_deploy::cli::Cli as clap::CommandFactory>::command();
    let mut commands: Vec<Vec<String>> = Vec::new();
    for c in root.get_subcommands() {
        commands.push(vec![c.get_name().to_string()]);
        for sub in c.get_subcommands() {
            commands.push(vec![c.get_name().to_string(), sub.get_name().to_string()]);
        }
    }
    assert!(commands.len() >= 6, "{commands:?}");
    for cmd in &commands {
        let mut args: Vec<&str> = cmd.iter().map(String::as_str).collect();
        let name = args.join(" ");
        args.push("--help");
        let text = help(&args);
        assert!(
            text.contains("Example") && text.contains(&format!("\n  pi-deploy {name} ")),
            "`{name} --help` has no example:\n{text}"
        );
        // One snapshot per top-level command, as before.
        if cmd.len() == 1 {
            insta::assert_snapshot!(format!("help_{name}"), text);
        }
    }
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = Command::new(env!("CARGO_BIN_EXE_pi-deploy"))
            .args(["completions", shell])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", show(&out));
        let text = stdout(&out);
        for cmd in ["plan", "status", "outputs", "destroy"] {
            assert!(text.contains(cmd), "{shell} completion lacks `{cmd}`");
        }
    }
    let out = Command::new(env!("CARGO_BIN_EXE_pi-deploy"))
        .args(["completions", "tcsh"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn redaction_replaces_ids_but_not_keys() {
    let text = "  sg-alb  security-group  available  sg-0a1b2c3d4e5f67890\n  route  rtb-12345678/0.0.0.0/0 fs-1d1577aa nat-a t-abc";
    assert_eq!(
        redact(text, "t-abc"),
        "  sg-alb  security-group  available  sg-<id>\n  route  rtb-<id>/0.0.0.0/0 fs-<id> nat-a <deployment>"
    );
    let arn =
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/t-abc-alb/2e579f465a3767a3/832fe6351efa39b5";
    assert_eq!(
        redact(arn, "t-abc"),
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:listener/app/<deployment>-alb/<id>/<id>"
    );
}

/// A second emulator, stopped (by its PID, through emu-stop.sh) when dropped.
struct SecondEmulator {
    endpoint: String,
    port: String,
}

impl SecondEmulator {
    fn start() -> Self {
        let root = env!("CARGO_MANIFEST_DIR");
        let out = Command::new("bash")
            .arg(format!("{root}/scripts/emu-start.sh"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "emu-start.sh failed: {}", show(&out));
        let exports = stdout(&out);
        let var = |name: &str| {
            exports
                .lines()
                .find_map(|l| l.strip_prefix(&format!("export {name}=")))
                .unwrap_or_else(|| panic!("emu-start.sh printed no {name}: {exports}"))
                .to_string()
        };
        Self {
            endpoint: var("AWS_ENDPOINT_URL"),
            port: var("PI_DEPLOY_EMU_PORT"),
        }
    }
}

impl Drop for SecondEmulator {
    fn drop(&mut self) {
        let root = env!("CARGO_MANIFEST_DIR");
        let _ = Command::new("bash")
            .arg(format!("{root}/scripts/emu-stop.sh"))
            .arg(&self.port)
            .stdin(Stdio::null())
            .output();
    }
}

async fn clients_at(endpoint: &str) -> Clients {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(common::REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    Clients::from_config(config)
}

async fn tagged_vpcs(c: &Clients, deployment: &str) -> usize {
    let f = aws_sdk_ec2::types::Filter::builder()
        .name("tag:pi-deploy:deployment")
        .values(deployment)
        .build();
    c.ec2.describe_vpcs().filters(f).send().await.unwrap().vpcs().len()
}

/// What `AWS_ENDPOINT_URL=http://127.0.0.1:4566 bash scripts/test.sh` relies on: the suite's
/// command setup with only AWS_ENDPOINT_URL changed sends everything to that endpoint.
#[tokio::test(flavor = "multi_thread")]
async fn aws_endpoint_url_alone_selects_the_emulator() {
    let second = SecondEmulator::start();
    assert_ne!(second.endpoint, common::endpoint());
    let d = Deployment::new("oep");
    if d.is_s3() {
        // The state lives where the run's AWS calls go.
        common::ensure_state_bucket(&second.endpoint);
    }
    let ami = common::ami('A');
    let out = d
        .command(&["up", "--ami", &ami, "--yes", "-q"])
        .env("AWS_ENDPOINT_URL", &second.endpoint)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out));
    assert_eq!(
        tagged_vpcs(&clients_at(&second.endpoint).await, &d.name).await,
        1,
        "the VPC is on the second emulator"
    );
    assert_eq!(
        tagged_vpcs(&clients().await, &d.name).await,
        0,
        "nothing reached the first emulator"
    );
    let out = d
        .command(&["status", "-q"])
        .env("AWS_ENDPOINT_URL", &second.endpoint)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", show(&out));
    drop(second);
}
