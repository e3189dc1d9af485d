//! The operator's day on the emulator: `sideload` (a receipt that matches what the
//! side-loading Lambda did), `connect` and `connect --db` (the Session Manager commands, run
//! through a stub `aws` on the PATH that records its arguments), `logs` (the Lambda's log
//! events and the instances' console output), and their bad input.
//!
//! moto cannot run the Lambda (no Docker), so `tests/emu/sideload_lambda.py` plays S3's
//! event delivery and the Lambda runtime: it watches the bucket and calls the real handler
//! with each object's event record, EFS being a local directory, and writes the handler's
//! log lines to the function's log group.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use pi_deploy::core::names;
use serde_json::Value;

use crate::common::{self, Deployment, clients, out, show};

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{}", show(o)))
}

/// The Lambda stand-in, stopped (stop file, then kill) when dropped.
struct LambdaStandIn {
    child: Child,
    stop: PathBuf,
}

impl LambdaStandIn {
    fn start(d: &Deployment, bucket: &str, efs: &Path) -> Self {
        let python = std::env::var("PI_DEPLOY_EMU_PYTHON")
            .expect("PI_DEPLOY_EMU_PYTHON: run the suite with `bash scripts/test.sh` (it sets the emulator's Python)");
        let stop = d.state_dir.path().join("stop-lambda");
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/emu/sideload_lambda.py");
        let mut child = Command::new(python)
            .arg(script)
            .args(["--bucket", bucket, "--log-group", &names::lambda_log_group(&d.name)])
            .arg("--efs-root")
            .arg(efs)
            .arg("--stop-file")
            .arg(&stop)
            .env("AWS_ENDPOINT_URL", common::endpoint())
            .env("AWS_REGION", common::REGION)
            .env("AWS_DEFAULT_REGION", common::REGION)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start tests/emu/sideload_lambda.py");
        let mut first = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert_eq!(first.trim(), "ready", "the Lambda stand-in did not start");
        Self { child, stop }
    }
}

impl Drop for LambdaStandIn {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.stop, b"");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Files below `top`, relative, with their bytes.
fn files(top: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(top: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.map(Result::unwrap) {
            let p = e.path();
            let t = std::fs::symlink_metadata(&p).unwrap().file_type();
            if t.is_dir() {
                walk(top, &p, out);
            } else if t.is_file() {
                let rel = p.strip_prefix(top).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(top, top, &mut out);
    out
}

async fn bucket_keys(c: &pi_deploy::aws::Clients, bucket: &str) -> Vec<String> {
    let listed = c.s3.list_objects_v2().bucket(bucket).send().await.unwrap();
    listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(String::from))
        .collect()
}

fn by_key(receipt: &Value) -> BTreeMap<String, Value> {
    receipt["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            let name = o["key"].as_str().or(o["path"].as_str()).unwrap().to_string();
            (name, o.clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sideload_prints_a_receipt_that_matches_what_the_lambda_did() {
    let d = Deployment::new("osl");
    d.up(&[]);
    let c = clients().await;
    let bucket = out(&d.state(), "bucket", "id");
    // A deployment built before the Lambda reported outcomes: its role's inline policy has no
    // s3:PutObjectTagging. The next `up` puts the current document again (before the
    // bucket's policy and notification are lifted below: `up` would put them back too).
    let role = names::lambda_role(&d.name);
    let inline = |doc: String| doc.contains("PutObjectTagging");
    let older = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": format!("arn:aws:s3:::{bucket}/*")}]
    });
    c.iam
        .put_role_policy()
        .role_name(&role)
        .policy_name("pi-deploy")
        .policy_document(older.to_string())
        .send()
        .await
        .unwrap();
    let read_inline = || async {
        c.iam
            .get_role_policy()
            .role_name(&role)
            .policy_name("pi-deploy")
            .send()
            .await
            .unwrap()
            .policy_document()
            .to_string()
    };
    assert!(!inline(read_inline().await));
    d.up(&[]);
    assert!(
        inline(read_inline().await),
        "up did not put the role's inline policy again"
    );

    // moto applies the bucket's TLS-only Deny without evaluating its condition
    // (aws:SecureTransport), so it refuses every object call made over its plain HTTP; AWS
    // refuses only calls made without TLS. Lifted for this test only.
    c.s3.delete_bucket_policy().bucket(&bucket).send().await.unwrap();
    // The stand-in below delivers the events. moto's own delivery to the function tries
    // Docker, fails, and writes that failure into the function's log group with fractional
    // millisecond timestamps, which no SDK parses as the integer AWS sends: off for this test.
    c.s3.put_bucket_notification_configuration()
        .bucket(&bucket)
        .notification_configuration(aws_sdk_s3::types::NotificationConfiguration::builder().build())
        .send()
        .await
        .unwrap();

    let work = tempfile::tempdir().unwrap();
    let efs = work.path().join("efs");
    let outside = work.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    // What the operator sends: good names, names the Lambda refuses, and two files the
    // Lambda will refuse or fail on because of what the file system holds.
    let media = work.path().join("media");
    std::fs::create_dir_all(media.join("sub")).unwrap();
    std::fs::create_dir_all(media.join("evil")).unwrap();
    std::fs::create_dir_all(media.join("blocked")).unwrap();
    let logo: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(media.join("logo.png"), &logo).unwrap();
    std::fs::write(media.join("sub").join("a b+c.svg"), b"<svg/>").unwrap();
    let big: Vec<u8> = (0..9 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(media.join("big.bin"), &big).unwrap();
    std::fs::write(media.join("evil").join("x.png"), b"through a link").unwrap();
    std::fs::write(media.join("blocked").join("a.png"), b"needs a directory").unwrap();
    std::fs::write(media.join("back\\slash.png"), b"x").unwrap();
    std::fs::write(media.join("new\nline.png"), b"x").unwrap();
    {
        use std::os::unix::ffi::OsStrExt;
        std::fs::write(media.join(std::ffi::OsStr::from_bytes(b"caf\xe9.png")), b"x").unwrap();
    }
    // On "EFS": a link out of the tree, and a file where a directory is needed.
    let efs_media = efs.join("images").join("media");
    std::fs::create_dir_all(&efs_media).unwrap();
    std::os::unix::fs::symlink(&outside, efs_media.join("evil")).unwrap();
    std::fs::write(efs_media.join("blocked"), b"a file, not a directory").unwrap();
    let before = files(&efs);

    let lambda = LambdaStandIn::start(&d, &bucket, &efs);
    let media_arg = media.to_str().unwrap();
    let run = d.run(&["sideload", media_arg, "--to", "images", "--wait", "120", "--json"]);
    assert_eq!(run.status.code(), Some(1), "rejections and a failure: {}", show(&run));
    let receipt = json(&run);
    assert_eq!(receipt["bucket"], bucket.as_str());
    assert_eq!(receipt["ok"], false);
    let objects = by_key(&receipt);

    // Copied: on "EFS" with the same bytes (the 9 MiB one went as a multipart upload).
    let copied: Vec<&String> = objects.keys().filter(|k| objects[*k]["outcome"] == "copied").collect();
    assert_eq!(
        copied,
        [
            "images/media/big.bin",
            "images/media/logo.png",
            "images/media/sub/a b+c.svg"
        ],
        "{receipt:#}"
    );
    let now = files(&efs);
    assert_eq!(now["images/media/logo.png"], logo);
    assert_eq!(now["images/media/big.bin"], big);
    assert_eq!(now["images/media/sub/a b+c.svg"], b"<svg/>");
    for k in &copied {
        assert_eq!(objects[*k]["by"], "lambda");
    }

    // Refused by pi-deploy: never sent, nothing on "EFS".
    let keys = bucket_keys(&c, &bucket).await;
    let refused: Vec<(&String, &Value)> = objects.iter().filter(|(_, o)| o["by"] == "pi-deploy").collect();
    assert_eq!(refused.len(), 3, "{receipt:#}");
    for (k, o) in &refused {
        assert_eq!(o["outcome"], "rejected");
        assert!(!keys.contains(*k), "{k} was sent");
    }
    assert_eq!(objects["images/media/back\\slash.png"]["detail"], "backslash in key");
    assert_eq!(
        objects["images/media/new\nline.png"]["detail"],
        "NUL or control character in key"
    );
    let non_utf8 = refused.iter().find(|(k, _)| k.contains("caf")).unwrap().1;
    assert!(non_utf8["detail"].as_str().unwrap().contains("not UTF-8"), "{non_utf8}");

    // Refused by the Lambda: the link out of the tree was not followed.
    let evil = &objects["images/media/evil/x.png"];
    assert_eq!(
        (evil["outcome"].as_str(), evil["by"].as_str()),
        (Some("rejected"), Some("lambda")),
        "{receipt:#}"
    );
    assert!(
        evil["detail"].as_str().unwrap().starts_with("resolves outside"),
        "{evil}"
    );
    assert!(files(&outside).is_empty(), "the Lambda wrote through the link");

    // Failed: the Lambda's error line, and no file.
    let blocked = &objects["images/media/blocked/a.png"];
    assert_eq!(blocked["outcome"], "failed");
    let error = blocked["detail"].as_str().unwrap();
    assert!(
        error.starts_with("FileExistsError") || error.starts_with("NotADirectoryError"),
        "{blocked}"
    );

    // Nothing else happened on "EFS"; every object sent is in the receipt.
    let mut expected = before.clone();
    for k in &copied {
        expected.insert(k.to_string(), now[*k].clone());
    }
    assert_eq!(now.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>());
    for k in &keys {
        assert!(objects.contains_key(k), "{k} is in the bucket but not in the receipt");
    }

    // The same command again: what was copied is not sent again; the human receipt.
    let again = d.run(&["sideload", media_arg, "--to", "images", "--wait", "120"]);
    assert_eq!(again.status.code(), Some(1), "{}", show(&again));
    let text = stdout(&again);
    assert!(text.contains("unchanged images/media/logo.png"), "{text}");
    assert!(text.contains("unchanged images/media/big.bin"), "{text}");
    assert!(
        text.contains("rejected  images/media/back\\\\slash.png  backslash in key (not sent)"),
        "{text}"
    );
    assert!(text.contains("(by the Lambda)"), "{text}");
    assert!(text.contains("Sideload: 1 failed, 4 rejected, 3 unchanged."), "{text}");
    assert!(
        stderr(&again).contains("hint: rename the files rejected by pi-deploy"),
        "{}",
        show(&again)
    );

    // --delete: the objects go, and the Lambda removes their files.
    let del = d.run(&[
        "sideload",
        "--to",
        "images",
        "--delete",
        "media/logo.png",
        "media/sub",
        "media/never-sent.png",
        "--yes",
        "--json",
        "--wait",
        "120",
    ]);
    assert!(del.status.success(), "{}", show(&del));
    let receipt = json(&del);
    let objects = by_key(&receipt);
    assert_eq!(objects["images/media/logo.png"]["outcome"], "deleted", "{receipt:#}");
    assert_eq!(
        objects["images/media/sub/a b+c.svg"]["outcome"], "deleted",
        "{receipt:#}"
    );
    assert_eq!(
        objects["images/media/never-sent.png"]["outcome"], "absent",
        "{receipt:#}"
    );
    let after = files(&efs);
    assert!(!after.contains_key("images/media/logo.png"));
    assert!(!after.contains_key("images/media/sub/a b+c.svg"));
    assert_eq!(after["images/media/big.bin"], big);
    let keys = bucket_keys(&c, &bucket).await;
    assert!(
        !keys
            .iter()
            .any(|k| k == "images/media/logo.png" || k.starts_with("images/media/sub/"))
    );
    // Without --yes and without a terminal: refused, nothing deleted.
    let refused = d.run(&["sideload", "--to", "images", "--delete", "media/big.bin"]);
    assert_eq!(refused.status.code(), Some(3), "{}", show(&refused));
    assert!(
        bucket_keys(&c, &bucket)
            .await
            .contains(&"images/media/big.bin".to_string())
    );

    drop(lambda);
    d.destroy();
}

/// A directory with stand-ins for `aws` (records its arguments, one per line, in
/// `aws-args`, and exits with the code in `aws-exit` when that file exists) and, when
/// `plugin`, `session-manager-plugin`.
fn stub_path(dir: &Path, plugin: bool) -> String {
    let bin = dir.join(if plugin { "bin-full" } else { "bin-cli-only" });
    std::fs::create_dir_all(&bin).unwrap();
    let record = dir.join("aws-args");
    let exit = dir.join("aws-exit");
    let aws = format!(
        "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\nif [ -f '{}' ]; then exit \"$(cat '{}')\"; fi\nexit 0\n",
        record.display(),
        exit.display(),
        exit.display()
    );
    let write_exe = |name: &str, text: &str| {
        use std::os::unix::fs::PermissionsExt;
        let p = bin.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    write_exe("aws", &aws);
    if plugin {
        write_exe("session-manager-plugin", "#!/bin/sh\nexit 0\n");
    }
    format!("{}:/usr/bin:/bin", bin.display())
}

fn recorded_args(dir: &Path) -> Option<Vec<String>> {
    std::fs::read_to_string(dir.join("aws-args"))
        .ok()
        .map(|t| t.lines().map(String::from).collect())
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_runs_session_manager_and_logs_shows_the_lambda_and_the_consoles() {
    let d = Deployment::new("ocn");
    d.up(&[]);
    let c = clients().await;
    let st = d.state();
    let stubs = tempfile::tempdir().unwrap();
    let full = stub_path(stubs.path(), true);
    let cli_only = stub_path(stubs.path(), false);
    let connect = |path: &str, args: &[&str]| -> Output {
        let _ = std::fs::remove_file(stubs.path().join("aws-args"));
        d.command(args).env("PATH", path).output().unwrap()
    };

    // The group's instances and which are healthy behind the load balancer.
    let group = c
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(names::asg(&d.name))
        .send()
        .await
        .unwrap();
    let in_service: Vec<String> = group.auto_scaling_groups()[0]
        .instances()
        .iter()
        .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
        .filter_map(|i| i.instance_id().map(String::from))
        .collect();
    assert!(!in_service.is_empty());

    // A shell: `aws ssm start-session` on a healthy InService instance of the group.
    let o = connect(&full, &["connect"]);
    assert!(o.status.success(), "{}", show(&o));
    let args = recorded_args(stubs.path()).expect("aws was run");
    assert_eq!(args[..3], ["ssm", "start-session", "--target"], "{args:?}");
    assert!(in_service.contains(&args[3]), "{args:?} not in {in_service:?}");
    assert_eq!(args[4..], ["--region", common::REGION]);
    let target = args[3].clone();
    assert!(
        stderr(&o).contains(&format!("Session Manager shell on {target} (InService, healthy)")),
        "{}",
        show(&o)
    );

    // The same instance asked by id; a session that ends badly is exit 1.
    std::fs::write(stubs.path().join("aws-exit"), "7").unwrap();
    let o = connect(&full, &["connect", "--instance", &target]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(recorded_args(stubs.path()).unwrap()[3], target);
    assert!(stderr(&o).contains("the session ended"), "{}", show(&o));
    std::fs::remove_file(stubs.path().join("aws-exit")).unwrap();

    // The database: a port forward to the endpoint, and a client line that reads the
    // password itself. The password never shows.
    let o = connect(&full, &["connect", "--db", "--local-port", "13306"]);
    assert!(o.status.success(), "{}", show(&o));
    let args = recorded_args(stubs.path()).unwrap();
    assert_eq!(
        args[..6],
        [
            "ssm",
            "start-session",
            "--target",
            target.as_str(),
            "--region",
            common::REGION
        ]
    );
    assert_eq!(
        args[6..8],
        ["--document-name", "AWS-StartPortForwardingSessionToRemoteHost"]
    );
    assert_eq!(args[8], "--parameters");
    let params: Value = serde_json::from_str(&args[9]).unwrap();
    let host = out(&st, "db-endpoint", "address");
    let port = out(&st, "db-endpoint", "port");
    assert_eq!(
        params,
        serde_json::json!({"host": [host], "portNumber": [port], "localPortNumber": ["13306"]})
    );
    let secret_arn = out(&st, "db", "secret_arn");
    let err = stderr(&o);
    assert!(
        err.contains("mariadb --host 127.0.0.1 --port 13306 --user pi_admin dashboard"),
        "{err}"
    );
    assert!(err.contains(&secret_arn) && err.contains("get-secret-value"), "{err}");
    let secret = c
        .secrets
        .get_secret_value()
        .secret_id(&secret_arn)
        .send()
        .await
        .unwrap();
    let password = serde_json::from_str::<Value>(secret.secret_string().unwrap()).unwrap()["password"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(password.len() >= 8);
    for text in [stdout(&o), stderr(&o), args.join(" ")] {
        assert!(!text.contains(&password), "the password was shown");
    }

    // No plugin: the exact command, how to install the plugin, exit 1, nothing run.
    let o = connect(&cli_only, &["connect"]);
    assert_eq!(o.status.code(), Some(1), "{}", show(&o));
    assert_eq!(
        stdout(&o),
        format!("aws ssm start-session --target {target} --region {}\n", common::REGION)
    );
    assert!(
        stderr(&o).contains("session-manager-plugin") && stderr(&o).contains("install"),
        "{}",
        show(&o)
    );
    assert!(recorded_args(stubs.path()).is_none(), "aws was run without its plugin");

    // --json: the commands, nothing run.
    let o = connect(&full, &["connect", "--db", "--json"]);
    assert!(o.status.success(), "{}", show(&o));
    let plan = json(&o);
    assert_eq!(plan["instance"]["instance_id"], target.as_str());
    assert_eq!(plan["command"][6], "--document-name");
    assert_eq!(plan["database"]["local_port"], 3306);
    assert_eq!(plan["aws_cli"], true);
    assert!(recorded_args(stubs.path()).is_none(), "--json ran aws");

    // An id of the right shape that is not one of the group's: bad input.
    let o = connect(&full, &["connect", "--instance", "i-0123456789abcdef0"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));
    assert!(
        stderr(&o).contains("--instance") && stderr(&o).contains(&target),
        "{}",
        show(&o)
    );

    // logs: the Lambda's events since --since, oldest first.
    let group = names::lambda_log_group(&d.name);
    c.logs
        .create_log_stream()
        .log_group_name(&group)
        .log_stream_name("test")
        .send()
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let event = |ms: i64, text: &str| {
        aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
            .timestamp(ms)
            .message(text)
            .build()
            .unwrap()
    };
    c.logs
        .put_log_events()
        .log_group_name(&group)
        .log_stream_name("test")
        .log_events(event(now - 2 * 3_600_000, "two hours ago"))
        .log_events(event(now - 60_000, "action=copy bucket='b' key='images/a.png' size=3"))
        .log_events(event(
            now - 30_000,
            "action=reject bucket='b' key='excel/x' reason='not allowed'",
        ))
        .send()
        .await
        .unwrap();
    let o = d.run(&["logs"]);
    assert!(o.status.success(), "{}", show(&o));
    let lines: Vec<String> = stdout(&o).lines().map(String::from).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0].ends_with("Z  action=copy bucket='b' key='images/a.png' size=3"),
        "{lines:?}"
    );
    assert!(
        lines[1].ends_with("action=reject bucket='b' key='excel/x' reason='not allowed'"),
        "{lines:?}"
    );
    let o = d.run(&["logs", "--since", "3h", "--json"]);
    assert!(o.status.success(), "{}", show(&o));
    let events: Vec<Value> = common::events(&o);
    let messages: Vec<&str> = events.iter().map(|e| e["message"].as_str().unwrap()).collect();
    assert_eq!(messages[0], "two hours ago");
    assert_eq!(messages.len(), 3);
    assert!(events.iter().all(|e| e["source"] == "lambda" && e["stream"] == "test"));

    // --follow: a new event shows up; Ctrl-C ends it with exit 0.
    let mut follow = d
        .command(&["logs", "--follow", "--since", "1m"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = BufReader::new(follow.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in reader.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    c.logs
        .put_log_events()
        .log_group_name(&group)
        .log_stream_name("test")
        .log_events(event(chrono::Utc::now().timestamp_millis(), "followed"))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while !seen.iter().any(|l: &String| l.ends_with("followed")) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "--follow never printed the new event: {seen:?}");
        if let Ok(l) = rx.recv_timeout(left) {
            seen.push(l);
        }
    }
    unsafe { libc::kill(follow.id() as i32, libc::SIGINT) };
    let status = follow.wait().unwrap();
    assert!(status.success(), "Ctrl-C ended --follow with {status}");

    // logs --instance: the console output EC2 has for it.
    let console = c.ec2.get_console_output().instance_id(&target).send().await.unwrap();
    let o = d.run(&["logs", "--instance", &target]);
    assert!(o.status.success(), "{}", show(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with(&format!("==> console output of {target} (running")),
        "{text}"
    );
    if let Some(b64) = console.output().filter(|b| !b.is_empty()) {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD.decode(b64.trim()).unwrap();
        let decoded = String::from_utf8_lossy(&decoded);
        assert!(text.contains(decoded.trim_end()), "{text}");
    }
    let o = d.run(&["logs", "--instance", "--json"]);
    assert!(o.status.success(), "{}", show(&o));
    let docs = common::events(&o);
    for id in &in_service {
        assert!(
            docs.iter()
                .any(|x| x["source"] == "console" && x["instance_id"] == id.as_str()),
            "{id} missing: {docs:?}"
        );
    }
    let o = d.run(&["logs", "--instance", "i-0123456789abcdef0"]);
    assert_eq!(o.status.code(), Some(2), "{}", show(&o));

    d.destroy();
}

/// Bad flags of the day-to-day commands: exit 2 naming the flag and the fix, no AWS call;
/// no state file: exit 3.
#[test]
fn day_to_day_bad_input_exits_2_and_no_state_exits_3_with_no_aws_call() {
    let dir = tempfile::tempdir().unwrap();
    let exists = dir.path().join("logo.png");
    std::fs::write(&exists, b"png").unwrap();
    let exists = exists.to_str().unwrap();
    let missing = dir.path().join("nope.png");
    let missing = missing.to_str().unwrap();
    let cases: [(&[&str], i32, &str); 7] = [
        (&["sideload", missing, "--to", "images"], 2, "PATH"),
        (&["sideload", exists, "--to", "excel"], 2, "--to"),
        (&["logs", "--since", "yesterday"], 2, "--since"),
        (&["logs", "--instance", "web-1"], 2, "--instance"),
        (&["connect", "--instance", "i-123"], 2, "--instance"),
        (&["sideload", exists, "--to", "images"], 3, "no state at"),
        (&["connect", "--db"], 3, "no state at"),
    ];
    for (i, (args, code, named)) in cases.iter().enumerate() {
        let counts = dir.path().join(format!("calls{i}.json"));
        let o = Command::new(env!("CARGO_BIN_EXE_pi-deploy"))
            .args(*args)
            .args(["--deployment", "nothing-here", "--state-dir"])
            .arg(dir.path())
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_REGION", "eu-west-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("PI_DEPLOY_CALL_COUNTS", &counts)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(*code), "{args:?}: {}", show(&o));
        let err = stderr(&o);
        assert!(err.contains(named), "{args:?} does not name {named}: {err}");
        if *code == 2 && *named != "--to" {
            assert!(err.contains("fix:"), "{args:?}: no fix: {err}");
        }
        assert!(!counts.exists(), "{args:?} made AWS calls");
    }
}
