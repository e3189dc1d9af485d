//! Helpers shared by the integration tests: run the real binary against the emulator and
//! inspect the deployment from AWS's side.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{LazyLock, Mutex, OnceLock};

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

/// Where the suite keeps the deployments' state: `PI_DEPLOY_TEST_STATE=s3` puts each one in
/// an S3 bucket on the emulator (what `scripts/test.sh` runs for a representative part of
/// the suite), anything else in a temporary directory.
pub fn s3_state() -> bool {
    std::env::var("PI_DEPLOY_TEST_STATE").is_ok_and(|v| v == "s3")
}

/// The S3 state bucket of this test process (no policy: moto answers the plain-HTTP
/// requests of the tests, which a TLS-only policy would deny; versioning on).
pub fn state_bucket() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| format!("pi-test-state-{}", &uuid::Uuid::new_v4().simple().to_string()[..10]))
}

/// Endpoints where this process created the state bucket (a lane's reset forgets it).
static BUCKETS: LazyLock<Mutex<BTreeSet<String>>> = LazyLock::new(Default::default);

/// Run a future to completion from any test, sync or async (on a runtime of its own, in a
/// scoped thread, so it never blocks inside the caller's runtime).
pub fn block<T: Send>(f: impl Future<Output = T> + Send) -> T {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    });
    std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join().unwrap())
}

/// An S3 client of an emulator endpoint (cached).
pub fn s3_at(endpoint: &str) -> aws_sdk_s3::Client {
    static CLIENTS: LazyLock<Mutex<BTreeMap<String, aws_sdk_s3::Client>>> = LazyLock::new(Default::default);
    let mut all = CLIENTS.lock().unwrap();
    all.entry(endpoint.to_string())
        .or_insert_with(|| block(clients_at(endpoint)).s3)
        .clone()
}

/// Create the state bucket at `endpoint` once (again after `forget_state_bucket`).
pub fn ensure_state_bucket(endpoint: &str) {
    if BUCKETS.lock().unwrap().contains(endpoint) {
        return;
    }
    create_bucket(endpoint, state_bucket(), true);
    BUCKETS.lock().unwrap().insert(endpoint.to_string());
}

/// After a lane's server was reset: its buckets are gone.
pub fn forget_state_bucket(endpoint: &str) {
    BUCKETS.lock().unwrap().remove(endpoint);
}

/// A bucket in the suite's region, versioned or not (tolerates an existing one).
pub fn create_bucket(endpoint: &str, name: &str, versioned: bool) {
    let s3 = s3_at(endpoint);
    block(async {
        let created = s3
            .create_bucket()
            .bucket(name)
            .create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = created {
            let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e)
                .unwrap_or_default()
                .to_string();
            assert!(code.starts_with("BucketAlready"), "creating bucket {name}: {e:?}");
        }
        if versioned {
            s3.put_bucket_versioning()
                .bucket(name)
                .versioning_configuration(
                    aws_sdk_s3::types::VersioningConfiguration::builder()
                        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
    });
}

/// An object's bytes, `None` when there is none.
pub fn get_object(endpoint: &str, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let s3 = s3_at(endpoint);
    block(async {
        match s3.get_object().bucket(bucket).key(key).send().await {
            Ok(o) => Some(o.body.collect().await.unwrap().into_bytes().to_vec()),
            Err(e) if aws_sdk_s3::error::ProvideErrorMetadata::code(&e) == Some("NoSuchKey") => None,
            Err(e) => panic!("reading s3://{bucket}/{key}: {e:?}"),
        }
    })
}

pub fn put_object(endpoint: &str, bucket: &str, key: &str, bytes: &[u8]) {
    let s3 = s3_at(endpoint);
    block(async {
        s3.put_object()
            .bucket(bucket)
            .key(key)
            .body(bytes.to_vec().into())
            .send()
            .await
            .unwrap()
    });
}

/// An object's bytes and ETag, `None` when there is none.
pub fn get_object_tagged(endpoint: &str, bucket: &str, key: &str) -> Option<(Vec<u8>, String)> {
    let s3 = s3_at(endpoint);
    block(async {
        match s3.get_object().bucket(bucket).key(key).send().await {
            Ok(o) => {
                let etag = o.e_tag().unwrap_or_default().to_string();
                Some((o.body.collect().await.unwrap().into_bytes().to_vec(), etag))
            }
            Err(e) if aws_sdk_s3::error::ProvideErrorMetadata::code(&e) == Some("NoSuchKey") => None,
            Err(e) => panic!("reading s3://{bucket}/{key}: {e:?}"),
        }
    })
}

/// Put `bytes` only if the object is still the version with this ETag (`If-Match`);
/// `false` when it changed meanwhile.
pub fn put_object_if_match(endpoint: &str, bucket: &str, key: &str, bytes: &[u8], etag: &str) -> bool {
    let s3 = s3_at(endpoint);
    block(async {
        match s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .if_match(etag)
            .body(bytes.to_vec().into())
            .send()
            .await
        {
            Ok(_) => true,
            Err(e) if aws_sdk_s3::error::ProvideErrorMetadata::code(&e) == Some("PreconditionFailed") => false,
            Err(e) => panic!("writing s3://{bucket}/{key} if it is still {etag}: {e:?}"),
        }
    })
}

pub fn delete_object(endpoint: &str, bucket: &str, key: &str) {
    let s3 = s3_at(endpoint);
    block(async { s3.delete_object().bucket(bucket).key(key).send().await.unwrap() });
}

/// Every version of an object, newest first: (version id, bytes; `None` for a delete marker).
pub fn object_versions(endpoint: &str, bucket: &str, key: &str) -> Vec<(String, Option<Vec<u8>>)> {
    let s3 = s3_at(endpoint);
    block(async {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .prefix(key)
            .send()
            .await
            .unwrap();
        let mut all: Vec<(aws_smithy_types::DateTime, String, bool)> = page
            .versions()
            .iter()
            .filter(|v| v.key() == Some(key))
            .map(|v| (*v.last_modified().unwrap(), v.version_id().unwrap().to_string(), true))
            .chain(
                page.delete_markers()
                    .iter()
                    .filter(|m| m.key() == Some(key))
                    .map(|m| (*m.last_modified().unwrap(), m.version_id().unwrap().to_string(), false)),
            )
            .collect();
        all.sort_by_key(|(t, _, _)| std::cmp::Reverse((t.secs(), t.subsec_nanos())));
        let mut out = Vec::new();
        for (_, id, is_object) in all {
            let bytes = if is_object {
                let o = s3
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .version_id(&id)
                    .send()
                    .await
                    .unwrap();
                Some(o.body.collect().await.unwrap().into_bytes().to_vec())
            } else {
                None
            };
            out.push((id, bytes));
        }
        out
    })
}

/// One deployment under test, with its own directory (config files, call counts) and its
/// state in that directory or, with `PI_DEPLOY_TEST_STATE=s3`, in the suite's S3 state bucket.
pub struct Deployment {
    pub name: String,
    pub state_dir: tempfile::TempDir,
    /// The S3 prefix of its state (S3 mode), unique to the deployment.
    pub s3_prefix: Option<String>,
    /// The emulator its runs talk to (a crash lane's own server, or the suite's).
    endpoint: Mutex<String>,
}

/// A test that fails (panics) leaves its deployment behind: it is destroyed here, best
/// effort and bounded, so what it made does not crowd the emulator the suite's deployments
/// share (moto pages EFS file systems by 10: leftovers of one failed test once made checks of
/// others miss their own file system, and each of those left more). Nothing here may panic
/// (a panic while unwinding aborts the test process).
impl Drop for Deployment {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let endpoint = match self.endpoint.lock() {
            Ok(e) => e.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let args = [
            "destroy",
            "--yes",
            "--skip-final-snapshot",
            "--disable-deletion-protection",
        ];
        let spawned = self
            .command_at(Path::new(env!("CARGO_BIN_EXE_pi-deploy")), &endpoint, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = spawned else {
            return;
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
        while let Ok(None) = child.try_wait() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

impl Deployment {
    pub fn new(prefix: &str) -> Self {
        Self::with_state(prefix, s3_state())
    }

    /// With an S3 state whatever the suite's mode (tests of the S3 state itself).
    pub fn with_state(prefix: &str, s3: bool) -> Self {
        let name = deployment(prefix);
        Self {
            s3_prefix: s3.then(|| format!("st/{name}")),
            name,
            state_dir: tempfile::tempdir().unwrap(),
            endpoint: Mutex::new(endpoint()),
        }
    }

    pub fn is_s3(&self) -> bool {
        self.s3_prefix.is_some()
    }

    /// The emulator the deployment's runs talk to (and, in S3 mode, where its state is).
    pub fn endpoint(&self) -> String {
        self.endpoint.lock().unwrap().clone()
    }

    /// Run against another emulator from now on (a crash lane's own server).
    pub fn use_endpoint(&self, endpoint: &str) {
        *self.endpoint.lock().unwrap() = endpoint.to_string();
    }

    /// The local state file (local mode).
    pub fn state_path(&self) -> PathBuf {
        self.state_dir.path().join(format!("{}.json", self.name))
    }

    /// `s3://bucket/prefix` (S3 mode).
    pub fn state_url(&self) -> Option<String> {
        self.s3_prefix.as_ref().map(|p| format!("s3://{}/{p}", state_bucket()))
    }

    /// The key of the state object and of the lock object (S3 mode).
    pub fn state_key(&self) -> String {
        format!("{}/{}.json", self.s3_prefix.as_deref().unwrap_or_default(), self.name)
    }

    pub fn lock_key(&self) -> String {
        format!("{}/{}.lock", self.s3_prefix.as_deref().unwrap_or_default(), self.name)
    }

    /// The flags that point a run at this deployment's state.
    pub fn state_args(&self) -> Vec<String> {
        match self.state_url() {
            Some(url) => vec!["--state".into(), url],
            None => vec!["--state-dir".into(), self.state_dir.path().display().to_string()],
        }
    }

    /// Where the state is, for messages.
    pub fn state_where(&self) -> String {
        self.state_url()
            .unwrap_or_else(|| self.state_path().display().to_string())
    }

    /// The state document's bytes as they are now; `None` when there is none.
    pub fn state_bytes(&self) -> Option<Vec<u8>> {
        if self.is_s3() {
            ensure_state_bucket(&self.endpoint());
            return get_object(&self.endpoint(), state_bucket(), &self.state_key());
        }
        match std::fs::read(self.state_path()) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => panic!("reading {}: {e}", self.state_path().display()),
        }
    }

    pub fn state_exists(&self) -> bool {
        self.state_bytes().is_some()
    }

    /// Whether a run's lock is there: the lock object (S3 mode) or the lock file.
    pub fn lock_exists(&self) -> bool {
        if self.is_s3() {
            return get_object(&self.endpoint(), state_bucket(), &self.lock_key()).is_some();
        }
        self.state_dir.path().join(format!("{}.lock", self.name)).exists()
    }

    /// Put these bytes in place of the state, as a person or another tool would.
    pub fn write_state(&self, bytes: &[u8]) {
        if self.is_s3() {
            ensure_state_bucket(&self.endpoint());
            put_object(&self.endpoint(), state_bucket(), &self.state_key(), bytes);
        } else {
            std::fs::create_dir_all(self.state_dir.path()).unwrap();
            std::fs::write(self.state_path(), bytes).unwrap();
        }
    }

    /// Lose the state (and its backup), as a lost laptop would.
    pub fn remove_state(&self) {
        if self.is_s3() {
            delete_object(&self.endpoint(), state_bucket(), &self.state_key());
        } else {
            std::fs::remove_file(self.state_path()).unwrap();
            std::fs::remove_file(self.state_dir.path().join(format!("{}.json.backup", self.name))).ok();
        }
    }

    /// The version before the current one: the `.backup` file, or the previous S3 version.
    pub fn previous_state_bytes(&self) -> Option<Vec<u8>> {
        if self.is_s3() {
            return object_versions(&self.endpoint(), state_bucket(), &self.state_key())
                .into_iter()
                .nth(1)
                .and_then(|(_, b)| b);
        }
        std::fs::read(self.state_dir.path().join(format!("{}.json.backup", self.name))).ok()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        self.command_of(Path::new(env!("CARGO_BIN_EXE_pi-deploy")), args)
    }

    /// The same with another copy of the binary (the crash tests run their own snapshot).
    pub fn command_of(&self, program: &Path, args: &[&str]) -> Command {
        let endpoint = self.endpoint();
        if self.is_s3() {
            ensure_state_bucket(&endpoint);
        }
        self.command_at(program, &endpoint, args)
    }

    /// `command_of` against `endpoint`, without its checks (nothing here panics: the
    /// `Drop` above uses it while a test unwinds).
    fn command_at(&self, program: &Path, endpoint: &str, args: &[&str]) -> Command {
        let mut c = pi_deploy_of(program, endpoint, args);
        c.arg("--deployment")
            .arg(&self.name)
            .args(self.state_args())
            // The licence fingerprint key (src/resources/secret.rs) of this test only.
            .env("PI_DEPLOY_KEY_FILE", self.state_dir.path().join("fingerprint.key"));
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run pi-deploy")
    }

    /// After a run of this deployment was killed: an S3 lock stays (it is never removed
    /// silently), so do what the operator is told to do, `force-unlock` with the lock's id.
    /// A local state's flock died with the process: nothing to do.
    pub fn force_unlock_after_kill(&self) {
        if !self.is_s3() {
            return;
        }
        let Some(bytes) = get_object(&self.endpoint(), state_bucket(), &self.lock_key()) else {
            return;
        };
        let lock: serde_json::Value = serde_json::from_slice(&bytes).expect("lock json");
        let id = lock["id"].as_str().expect("lock id").to_string();
        self.ok(&["force-unlock", &id]);
    }

    /// Run and require success, showing the output on failure.
    pub fn ok(&self, args: &[&str]) -> Output {
        succeeded(args, self.run(args))
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

    /// Delete every resource of the deployment behind pi-deploy's back (as by hand, or an
    /// emulator restarted): a destroy, then the state put back as it was. `args` and `env`
    /// are added to the destroy (the config and what it reads).
    pub fn delete_behind_its_back(&self, args: &[&str], env: &[(&str, &str)]) {
        let recorded = self.state_bytes().expect("a state to put back");
        let mut all = vec![
            "destroy",
            "--yes",
            "--skip-final-snapshot",
            "--disable-deletion-protection",
        ];
        all.extend_from_slice(args);
        let mut c = self.command(&all);
        for (k, v) in env {
            c.env(k, v);
        }
        let gone = c.output().expect("run pi-deploy");
        self.write_state(&recorded);
        assert!(
            gone.status.success(),
            "the destroy behind its back failed:\n{}",
            show(&gone)
        );
    }

    pub fn state(&self) -> serde_json::Value {
        let bytes = self
            .state_bytes()
            .unwrap_or_else(|| panic!("no state at {}", self.state_where()));
        serde_json::from_slice(&bytes).expect("state json")
    }
}

/// pi-deploy with these arguments and the emulator's environment, nothing else added.
pub fn pi_deploy(args: &[&str]) -> Command {
    pi_deploy_of(Path::new(env!("CARGO_BIN_EXE_pi-deploy")), &endpoint(), args)
}

fn pi_deploy_of(program: &Path, endpoint: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", REGION)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env_remove("AWS_PROFILE")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
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
    succeeded(args, run_with(d, args, env))
}

/// A run of `args` that must have succeeded: the output, or a failure showing it.
pub fn succeeded(args: &[&str], out: Output) -> Output {
    assert!(
        out.status.success(),
        "pi-deploy {args:?} failed: {}\n{}",
        out.status,
        show(&out)
    );
    out
}

/// Run with `--config cfg` added after `args`.
pub fn run_config(d: &Deployment, cfg: &Path, args: &[&str]) -> Output {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--config", cfg.to_str().unwrap()]);
    d.run(&all)
}

/// The same, requiring success.
pub fn ok_config(d: &Deployment, cfg: &Path, args: &[&str]) -> Output {
    succeeded(args, run_config(d, cfg, args))
}

/// Run `args` with `--config cfg`, requiring success, while a poller watches the target
/// group `tg_arn`: the load balancer had a healthy target at every poll (and was polled).
pub fn ok_keeping_a_healthy_target(d: &Deployment, cfg: &Path, tg_arn: &str, args: &[&str]) -> Output {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = watch_health(tg_arn.to_string(), stop.clone());
    let out = run_config(d, cfg, args);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (fewest, polls) = watcher.join().unwrap();
    let out = succeeded(args, out);
    assert!(
        polls > 0 && fewest >= 1,
        "a moment without a healthy target: fewest {fewest} in {polls} polls"
    );
    out
}

/// The fewest healthy targets seen by a poller running until `stop` (after the first
/// healthy one: before it, the deployment is still coming up), and how many polls it made.
pub fn watch_health(
    tg_arn: String,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = clients().await;
            let (mut fewest, mut polls) = (usize::MAX, 0);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Ok(out) = c.elb.describe_target_health().target_group_arn(&tg_arn).send().await {
                    let healthy = out
                        .target_health_descriptions()
                        .iter()
                        .filter(|t| t.target_health().and_then(|h| h.state()).map(|s| s.as_str()) == Some("healthy"))
                        .count();
                    fewest = fewest.min(healthy);
                    polls += 1;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            (fewest, polls)
        })
    })
}

/// Start pi-deploy with `args` and SIGKILL it as soon as a version of the state satisfies
/// `when` (polled every ~1 ms; the state is replaced atomically, so every read that parses
/// is a whole document); a lock it leaves is released as the operator would. `false` when
/// the run finished first; a failure naming `what` when the state never got there in 3 min.
pub fn kill_when_state(d: &Deployment, args: &[&str], what: &str, when: impl Fn(&serde_json::Value) -> bool) -> bool {
    let mut child = d
        .command(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    loop {
        if let Some(bytes) = d.state_bytes()
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(&bytes)
            && when(&v)
        {
            child.kill().unwrap();
            child.wait().unwrap();
            d.force_unlock_after_kill();
            return true;
        }
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(180),
            "{args:?} never reached {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The same, once the state records `n` resources (in any status).
pub fn kill_after_resources(d: &Deployment, args: &[&str], n: usize) -> bool {
    kill_when_state(d, args, &format!("{n} resources"), |v| {
        v["resources"].as_object().is_some_and(|r| r.len() >= n)
    })
}

/// A public hosted zone named `zone_name` (the deployment's name as caller reference); its id
/// without the `/hostedzone/` prefix, as the config takes it.
pub async fn hosted_zone(c: &Clients, d: &Deployment, zone_name: &str) -> String {
    let zone = c
        .route53
        .create_hosted_zone()
        .name(zone_name)
        .caller_reference(&d.name)
        .send()
        .await
        .unwrap();
    zone.hosted_zone()
        .unwrap()
        .id()
        .trim_start_matches("/hostedzone/")
        .to_string()
}

/// The zone `<deployment>.example.com` (`hosted_zone`) and a certificate for
/// `dash.<deployment>.example.com` (`import_certificate`), as a deployment with its own
/// domain uses them: (zone id, domain, certificate ARN).
pub async fn zone_and_certificate(c: &Clients, d: &Deployment) -> (String, String, String) {
    let zone_name = format!("{}.example.com", d.name);
    let domain = format!("dash.{zone_name}");
    let zone_id = hosted_zone(c, d, &zone_name).await;
    let cert = import_certificate(c, &domain).await;
    (zone_id, domain, cert)
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

/// Whether a call-count key (`EC2.DescribeVpcs`, as PI_DEPLOY_CALL_COUNTS writes them) is a
/// call that changes nothing: a read, or a dry run (`EC2.RunInstances.DryRun`).
pub fn is_read_only(op: &str) -> bool {
    let name = op.rsplit('.').next().unwrap_or(op);
    name == "DryRun" || ["Describe", "Get", "List", "Head"].iter().any(|p| name.starts_with(p))
}

/// The deployment's DB snapshots (manual, tagged with the deployment) of its instance, read
/// from RDS: (identifier, `pi-deploy:snapshot-label`, status).
pub async fn db_snapshots(c: &Clients, dep: &str) -> Vec<(String, Option<String>, String)> {
    let out = c
        .rds
        .describe_db_snapshots()
        .db_instance_identifier(pi_deploy::core::names::db_identifier(dep))
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    let tag = |s: &aws_sdk_rds::types::DbSnapshot, k: &str| {
        s.tag_list()
            .iter()
            .find(|t| t.key() == Some(k))
            .and_then(|t| t.value())
            .map(String::from)
    };
    out.db_snapshots()
        .iter()
        .filter(|s| tag(s, "pi-deploy:deployment").as_deref() == Some(dep))
        .map(|s| {
            (
                s.db_snapshot_identifier().unwrap_or_default().to_string(),
                tag(s, pi_deploy::core::snapshot::LABEL_TAG),
                s.status().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The recovery points AWS Backup holds for a file system (any vault): their ARNs.
pub async fn recovery_points(c: &Clients, file_system_arn: &str) -> Vec<String> {
    c.backup
        .list_recovery_points_by_resource()
        .resource_arn(file_system_arn)
        .send()
        .await
        .unwrap()
        .recovery_points()
        .iter()
        .filter_map(|r| r.recovery_point_arn().map(String::from))
        .collect()
}

/// The flow logs AWS has for the deployment's VPC (`vpc` in the state).
pub async fn vpc_flow_logs(c: &Clients, st: &serde_json::Value) -> Vec<aws_sdk_ec2::types::FlowLog> {
    let out = c
        .ec2
        .describe_flow_logs()
        .filter(
            aws_sdk_ec2::types::Filter::builder()
                .name("resource-id")
                .values(id(st, "vpc"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    out.flow_logs().to_vec()
}

/// The deployment's VPC has exactly one flow log, read from AWS: all traffic into the logs
/// bucket (S3, AWS's default 600 s aggregation), tagged with its key, the one the state
/// records; and the bucket's policy lets the flow log delivery write there, for this
/// account only.
pub async fn assert_flow_log_into_the_logs_bucket(c: &Clients, st: &serde_json::Value) {
    use aws_sdk_ec2::types::{LogDestinationType, TrafficType};
    let logs = vpc_flow_logs(c, st).await;
    assert_eq!(logs.len(), 1, "{logs:?}");
    let f = &logs[0];
    assert_eq!(f.flow_log_id(), Some(id(st, "flow-log").as_str()));
    assert_eq!(f.log_destination_type(), Some(&LogDestinationType::S3));
    let bucket = id(st, "logs-bucket");
    assert_eq!(
        f.log_destination().map(|d| d.trim_end_matches('/')),
        Some(format!("arn:aws:s3:::{bucket}").as_str())
    );
    assert_eq!(f.traffic_type(), Some(&TrafficType::All));
    assert_eq!(f.max_aggregation_interval(), Some(600));
    let tag = |k: &str| f.tags().iter().find(|t| t.key() == Some(k)).and_then(|t| t.value());
    assert_eq!(tag("pi-deploy:key"), Some("flow-log"));
    let policy = c.s3.get_bucket_policy().bucket(&bucket).send().await.unwrap();
    let policy: serde_json::Value = serde_json::from_str(policy.policy().unwrap()).unwrap();
    let delivery = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Principal"]["Service"] == "delivery.logs.amazonaws.com" && s["Action"] == "s3:PutObject")
        .unwrap_or_else(|| panic!("no flow log delivery in the logs bucket's policy: {policy:#}"));
    assert_eq!(delivery["Effect"], "Allow");
    let account = st["account_id"].as_str().unwrap();
    assert_eq!(
        delivery["Resource"],
        format!("arn:aws:s3:::{bucket}/AWSLogs/{account}/*")
    );
    assert_eq!(delivery["Condition"]["StringEquals"]["aws:SourceAccount"], account);
}

/// The user-set value of parameter `name` in the DB parameter group `group`, read from RDS.
pub async fn db_parameter(c: &Clients, group: &str, name: &str) -> Option<String> {
    let out = c
        .rds
        .describe_db_parameters()
        .db_parameter_group_name(group)
        .source("user")
        .send()
        .await
        .unwrap();
    out.parameters()
        .iter()
        .find(|p| p.parameter_name() == Some(name))
        .and_then(|p| p.parameter_value())
        .map(String::from)
}

/// The attributes of the target group `arn` (`deregistration_delay.timeout_seconds`, ...),
/// read from ELB.
pub async fn target_group_attributes(c: &Clients, arn: &str) -> BTreeMap<String, String> {
    let out = c
        .elb
        .describe_target_group_attributes()
        .target_group_arn(arn)
        .send()
        .await
        .unwrap();
    out.attributes()
        .iter()
        .filter_map(|a| Some((a.key()?.to_string(), a.value()?.to_string())))
        .collect()
}

/// After a major engine upgrade, read from RDS: the DB instance `db` on `version` with the
/// one parameter group `new_group`, and the group it left, `old_group`, gone.
pub async fn on_major_version(c: &Clients, db: &str, version: &str, new_group: &str, old_group: &str) {
    let out = c
        .rds
        .describe_db_instances()
        .db_instance_identifier(db)
        .send()
        .await
        .unwrap();
    let db = &out.db_instances()[0];
    assert_eq!(db.engine_version(), Some(version));
    let on: Vec<&str> = db
        .db_parameter_groups()
        .iter()
        .filter_map(|g| g.db_parameter_group_name())
        .collect();
    assert_eq!(on, vec![new_group]);
    let old = c
        .rds
        .describe_db_parameter_groups()
        .db_parameter_group_name(old_group)
        .send()
        .await;
    // RDS answers DBParameterGroupNotFound; moto an empty list.
    assert!(
        old.as_ref().map_or(true, |o| o.db_parameter_groups().is_empty()),
        "the old group {old_group} is gone: {old:?}"
    );
}

// ---- the fleet, read back (upgrade, crash, restore) ----

pub const LT: &str = "launch-template";

/// A config file for this deployment (kept in its state directory): the group's sizes, no
/// deletion protection (the fleet tests' config).
pub fn fleet_config(d: &Deployment, min: i32, max: i32, desired: i32) -> PathBuf {
    config(
        d,
        &format!(
            "[database]\ndeletion_protection = false\n\n[scaling]\nmin = {min}\nmax = {max}\ndesired = {desired}\n"
        ),
    )
}

/// Output `name` of resource `key` in the deployment's state as it is now.
pub fn recorded(d: &Deployment, key: &str, name: &str) -> String {
    out(&d.state(), key, name)
}

/// What AWS says about the group after an upgrade.
pub struct Seen {
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    pub version: String,
    pub suspended: Vec<String>,
    /// ImageId of every running/pending instance of the group, from EC2.
    pub images: Vec<String>,
    /// Running/pending instances tagged with the deployment (the group's, nothing else).
    pub tagged_running: usize,
}

pub async fn seen(d: &Deployment) -> Seen {
    let c = clients().await;
    let name = recorded(d, "asg", "id");
    let out = c
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&name)
        .send()
        .await
        .unwrap();
    let g = out.auto_scaling_groups().first().expect("the group exists");
    let ids: Vec<String> = g
        .instances()
        .iter()
        .filter_map(|i| i.instance_id().map(String::from))
        .collect();
    let state_filter = aws_sdk_ec2::types::Filter::builder()
        .name("instance-state-name")
        .values("running")
        .values("pending")
        .build();
    let images = if ids.is_empty() {
        Vec::new()
    } else {
        let out = c
            .ec2
            .describe_instances()
            .set_instance_ids(Some(ids))
            .send()
            .await
            .unwrap();
        out.reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| i.image_id().unwrap_or("?").to_string())
            .collect()
    };
    let tagged = c
        .ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:pi-deploy:deployment")
                .values(&d.name)
                .build(),
        )
        .filters(state_filter)
        .send()
        .await
        .unwrap();
    Seen {
        min: g.min_size().unwrap(),
        max: g.max_size().unwrap(),
        desired: g.desired_capacity().unwrap(),
        version: g.launch_template().and_then(|l| l.version()).unwrap_or("?").to_string(),
        suspended: g
            .suspended_processes()
            .iter()
            .filter_map(|p| p.process_name().map(String::from))
            .collect(),
        images,
        tagged_running: tagged.reservations().iter().map(|r| r.instances().len()).sum(),
    }
}

/// (version number, AMI) of every version of the deployment's launch template.
pub async fn versions(d: &Deployment) -> Vec<(i64, String)> {
    let c = clients().await;
    let out = c
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(recorded(d, LT, "id"))
        .send()
        .await
        .unwrap();
    let mut v: Vec<(i64, String)> = out
        .launch_template_versions()
        .iter()
        .map(|v| {
            let ami = v
                .launch_template_data()
                .and_then(|d| d.image_id())
                .unwrap_or("?")
                .to_string();
            (v.version_number().unwrap(), ami)
        })
        .collect();
    v.sort();
    v
}

pub async fn default_version(d: &Deployment) -> i64 {
    let c = clients().await;
    let out = c
        .ec2
        .describe_launch_templates()
        .launch_template_ids(recorded(d, LT, "id"))
        .send()
        .await
        .unwrap();
    out.launch_templates()[0].default_version_number().unwrap()
}

pub fn assert_on(s: &Seen, ami: &str, desired: i32) {
    assert_eq!(s.images.len(), desired as usize, "{:?}", s.images);
    assert!(
        s.images.iter().all(|i| i == ami),
        "every instance of the group runs {ami}: {:?}",
        s.images
    );
    assert_eq!(s.tagged_running, desired as usize, "no instance left over");
    assert!(s.suspended.is_empty(), "processes left suspended: {:?}", s.suspended);
}

/// (instance id, type, image) of every running instance of the deployment, from EC2.
pub async fn fleet_of(d: &Deployment) -> Vec<(String, String, String)> {
    let c = clients().await;
    let out = c
        .ec2
        .describe_instances()
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("tag:pi-deploy:deployment")
                .values(&d.name)
                .build(),
        )
        .filters(
            aws_sdk_ec2::types::Filter::builder()
                .name("instance-state-name")
                .values("running")
                .values("pending")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut v: Vec<(String, String, String)> = out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            (
                i.instance_id().unwrap_or("?").to_string(),
                i.instance_type().map_or("?", |t| t.as_str()).to_string(),
                i.image_id().unwrap_or("?").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// The call counts a run wrote where `PI_DEPLOY_CALL_COUNTS` pointed (`Service.Operation`,
/// e.g. `EC2.DescribeVpcs`, `Auto Scaling.DescribeAutoScalingGroups`, `EC2.RunInstances.DryRun`
/// -> calls); empty when the run wrote none.
pub fn call_counts(path: &Path) -> BTreeMap<String, u64> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}
