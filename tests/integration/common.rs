//! Helpers shared by the integration tests: run the real binary against the emulator and
//! inspect the deployment from AWS's side.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use aws_config::{BehaviorVersion, Region};
use pi_deploy::aws::Clients;

/// The emulator endpoint; the tests refuse to run against real AWS by accident.
pub fn endpoint() -> String {
    std::env::var("PI_DEPLOY_TEST_ENDPOINT")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .expect(
            "integration tests need an emulator: run `bash scripts/test.sh` (it starts moto), or set AWS_ENDPOINT_URL",
        )
}

pub const REGION: &str = "eu-west-1";

/// AMIs preloaded in moto's eu-west-1 (scripts/emu-amis.env).
pub fn ami(which: char) -> String {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/emu-amis.env")).unwrap();
    let var = format!("PI_DEMO_AMI_{which}=");
    text.lines()
        .find_map(|l| l.strip_prefix(&var))
        .expect("AMI in scripts/emu-amis.env")
        .trim()
        .to_string()
}

/// A deployment name no other test uses.
pub fn deployment(prefix: &str) -> String {
    let n = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}", &n[..6])
}

/// One deployment under test, with its own state directory.
pub struct Deployment {
    pub name: String,
    pub state_dir: tempfile::TempDir,
}

impl Deployment {
    pub fn new(prefix: &str) -> Self {
        Self {
            name: deployment(prefix),
            state_dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn state_path(&self) -> PathBuf {
        self.state_dir.path().join(format!("{}.json", self.name))
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(Path::new(env!("CARGO_BIN_EXE_pi-deploy")), args)
    }

    /// The same with another copy of the binary (the crash tests run their own snapshot).
    pub fn command_of(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .arg("--deployment")
            .arg(&self.name)
            .arg("--state-dir")
            .arg(self.state_dir.path())
            .env("AWS_ENDPOINT_URL", endpoint())
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env_remove("AWS_PROFILE")
            .env("NO_COLOR", "1")
            // The licence fingerprint key (src/resources/secret.rs) of this test only.
            .env("PI_DEPLOY_KEY_FILE", self.state_dir.path().join("fingerprint.key"))
            .stdin(Stdio::null());
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run pi-deploy")
    }

    /// Run and require success, showing the output on failure.
    pub fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "pi-deploy {args:?} failed: {}\n{}",
            out.status,
            show(&out)
        );
        out
    }

    pub fn up(&self, extra: &[&str]) -> Output {
        let ami = ami('A');
        let mut args = vec!["up", "--ami", ami.as_str(), "--yes"];
        args.extend_from_slice(extra);
        self.ok(&args)
    }

    /// Tests do not keep their databases: no final snapshot, deletion protection lifted.
    pub fn destroy(&self) -> Output {
        self.ok(&[
            "destroy",
            "--yes",
            "--skip-final-snapshot",
            "--disable-deletion-protection",
        ])
    }

    pub fn state(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.state_path()).expect("state file")).expect("state json")
    }
}

pub fn show(out: &Output) -> String {
    format!(
        "--- stdout\n{}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Parsed NDJSON events of a `--json` run.
pub fn events(out: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

pub fn count_status(events: &[serde_json::Value], status: &str) -> usize {
    events
        .iter()
        .filter(|e| e["event"] == "resource" && e["status"] == status)
        .count()
}

pub async fn clients() -> Clients {
    clients_at(&endpoint()).await
}

/// Clients for another emulator than the suite's (the crash tests' own servers).
pub async fn clients_at(endpoint: &str) -> Clients {
    let config = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sts::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .load()
        .await;
    Clients::from_config(config)
}

/// Output `name` of resource `key` in a state document.
pub fn out(state: &serde_json::Value, key: &str, name: &str) -> String {
    state["resources"][key]["outputs"][name]
        .as_str()
        .unwrap_or_else(|| panic!("{key} has no output `{name}` in the state"))
        .to_string()
}

/// The recorded id of resource `key`.
pub fn id(state: &serde_json::Value, key: &str) -> String {
    out(state, key, "id")
}

/// A config file for this deployment (kept in its state directory).
pub fn config(d: &Deployment, toml: &str) -> PathBuf {
    let path = d.state_dir.path().join("pi-deploy.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

/// Run with extra environment variables.
pub fn run_with(d: &Deployment, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = d.command(args);
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run pi-deploy")
}

/// The same, requiring success.
pub fn ok_with(d: &Deployment, args: &[&str], env: &[(&str, &str)]) -> Output {
    let o = run_with(d, args, env);
    assert!(
        o.status.success(),
        "pi-deploy {args:?} failed: {}\n{}",
        o.status,
        show(&o)
    );
    o
}

/// A self-signed certificate for `domain`, imported into ACM (ISSUED at once, as on AWS).
pub async fn import_certificate(c: &Clients, domain: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
        .arg(format!("/CN={domain}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{domain}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (needed to make a test certificate)");
    assert!(
        status.status.success(),
        "openssl: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let blob = |p: &PathBuf| aws_smithy_types::Blob::new(std::fs::read(p).unwrap());
    let imported = c
        .acm
        .import_certificate()
        .certificate(blob(&cert))
        .private_key(blob(&key))
        .send()
        .await
        .unwrap();
    imported.certificate_arn().unwrap().to_string()
}
