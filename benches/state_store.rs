//! State store benchmark: what an S3 state costs against the local file, on a moto server
//! this program starts (scripts/emu-start.sh) and stops (scripts/emu-stop.sh).
//! `cargo bench --locked --bench state_store` (add `--profile dev` to reuse the test build: the
//! figures are dominated by the round trips to the server, not by pi-deploy's CPU).
//!
//! 1. Writes: the same realistic state document (the default architecture, every resource
//!    recorded with ids and ARNs) written `PI_BENCH_WRITES` times (default 300) through the
//!    product's stores, `StateFile::write` (temp file, fsync, rename, fsync of the directory,
//!    backup) and `S3State::write` (a conditional PutObject), each write a new serial, as the
//!    executor writes them; wall time per write, median [p10..p90] and mean. Also the S3
//!    lock's take and release.
//! 2. Runs: `up` then `destroy` of the full architecture with a local state and with an S3
//!    state, `PI_BENCH_RUNS` rounds (default 2), alternating which goes first; the wall time of
//!    each, and the difference per resource and per state write (the serial `up` ends at).
//!
//! `cargo test --bench state_store` (no `--bench` argument) runs only the self-test of the
//! statistics.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pi_deploy::aws::fence::Fence;
use pi_deploy::core::config::Config;
use pi_deploy::core::resource::Outputs;
use pi_deploy::core::spec::{self, SpecInput};
use pi_deploy::core::state::{Identity, ResourceRecord, State, Status};
use pi_deploy::state_backend::{Connect, connect_s3, this_process};
use pi_deploy::state_file::StateFile;
use pi_deploy::state_s3::Timing;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = env!("CARGO_BIN_EXE_pi-deploy");
const REGION: &str = "eu-west-1";
const BUCKET: &str = "pi-bench-state";

struct Moto {
    endpoint: String,
    port: String,
}

impl Moto {
    fn start() -> Moto {
        let out = Command::new("bash")
            .arg("scripts/emu-start.sh")
            .current_dir(ROOT)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/emu-start.sh");
        assert!(out.status.success(), "scripts/emu-start.sh failed");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let get = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("export {k}=")))
                .unwrap_or_else(|| panic!("emu-start.sh printed no {k}"))
                .to_string()
        };
        Moto {
            endpoint: get("AWS_ENDPOINT_URL"),
            port: get("PI_DEPLOY_EMU_PORT"),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg("scripts/emu-stop.sh")
            .arg(&self.port)
            .current_dir(ROOT)
            .status();
    }
}

/// median, p10, p90, mean (seconds).
fn stats(v: &[f64]) -> (f64, f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let at = |q: f64| s[((s.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.1), at(0.9), s.iter().sum::<f64>() / s.len() as f64)
}

fn ms(s: f64) -> String {
    format!("{:.2} ms", s * 1000.0)
}

fn self_test() {
    let (median, p10, p90, mean) = stats(&[5.0, 1.0, 3.0, 2.0, 4.0]);
    assert_eq!((median, p10, p90, mean), (3.0, 1.0, 5.0, 3.0));
}

/// The state `up` leaves for the default architecture, with realistic ids and ARNs.
fn realistic_state() -> State {
    let cfg = Config {
        ami: Some("ami-0123456789abcdef0".into()),
        ..Config::default()
    };
    let nodes = spec::build(&SpecInput {
        config: &cfg,
        region: REGION,
        azs: ["eu-west-1a".into(), "eu-west-1b".into()],
    });
    let mut st = State::new(&Identity {
        deployment: "bench".into(),
        region: REGION.into(),
        account_id: "123456789012".into(),
        partition: "aws".into(),
    });
    for (i, n) in nodes.iter().enumerate() {
        let id = match n.kind.id_prefix() {
            Some(p) => format!("{p}0{i:016x}"),
            None => format!("bench-{}-{i}", n.key),
        };
        let outputs = Outputs::new()
            .with("id", id.clone())
            .with("arn", format!("arn:aws:ec2:{REGION}:123456789012:{}/{id}", n.kind));
        st.resources.insert(
            n.key.clone(),
            ResourceRecord {
                kind: n.kind,
                status: Status::Ready,
                client_token: st.client_token(&n.key),
                outputs,
                deps: n.deps.clone(),
                retiring: None,
                updated_at: chrono::Utc::now(),
                settings: Default::default(),
            },
        );
    }
    st
}

fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(
            aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(REGION))
                .endpoint_url(endpoint)
                .credentials_provider(aws_sdk_sts::config::Credentials::new(
                    "test", "test", None, None, "bench",
                ))
                .load(),
        )
}

fn create_bucket(moto: &Moto) {
    let config = sdk_config(&moto.endpoint);
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            s3.create_bucket()
                .bucket(BUCKET)
                .create_bucket_configuration(
                    aws_sdk_s3::types::CreateBucketConfiguration::builder()
                        .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(REGION))
                        .build(),
                )
                .send()
                .await
                .expect("create the bench bucket");
            s3.put_bucket_versioning()
                .bucket(BUCKET)
                .versioning_configuration(
                    aws_sdk_s3::types::VersioningConfiguration::builder()
                        .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                        .build(),
                )
                .send()
                .await
                .expect("version the bench bucket");
        });
}

/// Part 1: per-write wall time of each store.
fn writes(moto: &Moto, n: usize) -> Vec<String> {
    let base = realistic_state();
    let bytes = base.serialize().len();
    let mut lines = vec![format!(
        "document: {} resources, {bytes} bytes (the default architecture)",
        base.resources.len()
    )];
    let time_writes = |write: &dyn Fn(&State)| -> Vec<f64> {
        let mut st = base.clone();
        let keys: Vec<String> = st.resources.keys().cloned().collect();
        let mut took = Vec::with_capacity(n);
        for i in 0..n {
            st.serial += 1;
            // One transition, as the executor makes them.
            let rec = st.resources.get_mut(&keys[i % keys.len()]).unwrap();
            rec.status = if rec.status == Status::Ready {
                Status::Created
            } else {
                Status::Ready
            };
            rec.updated_at = chrono::Utc::now();
            let t = Instant::now();
            write(&st);
            took.push(t.elapsed().as_secs_f64());
        }
        took
    };

    let dir = tempfile::tempdir().unwrap();
    let local = StateFile::lock(dir.path(), "bench", this_process("bench")).unwrap();
    let local_times = time_writes(&|s| local.write(s).unwrap());

    let config = sdk_config(&moto.endpoint);
    let loc = connect_s3(
        BUCKET,
        "bench",
        &Connect {
            config: Some(&config),
            region: Some(REGION.into()),
        },
    )
    .unwrap();
    let mut lock_times = Vec::new();
    let mut release_times = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let held = loc
            .lock(
                "lockbench",
                this_process("bench"),
                None,
                Arc::new(Fence::default()),
                Timing::default(),
            )
            .unwrap();
        lock_times.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        drop(held);
        release_times.push(t.elapsed().as_secs_f64());
    }
    let s3 = loc
        .lock(
            "bench",
            this_process("bench"),
            None,
            Arc::new(Fence::default()),
            Timing::default(),
        )
        .unwrap();
    s3.load().unwrap();
    let s3_times = time_writes(&|s| s3.write(s).unwrap());

    for (name, v) in [
        ("local file write", &local_times),
        ("S3 write (conditional PutObject)", &s3_times),
        ("S3 lock taken", &lock_times),
        ("S3 lock released", &release_times),
    ] {
        let (m, p10, p90, mean) = stats(v);
        lines.push(format!(
            "{name:<34} median {} [p10 {} .. p90 {}], mean {} ({} samples)",
            ms(m),
            ms(p10),
            ms(p90),
            ms(mean),
            v.len()
        ));
    }
    let extra = stats(&s3_times).3 - stats(&local_times).3;
    lines.push(format!("S3 write minus local write, mean:  {}", ms(extra)));
    lines
}

struct Run {
    wall: f64,
    serial: u64,
    resources: usize,
}

fn run(moto: &Moto, dir: &Path, deployment: &str, state: &[&str], args: &[&str]) -> Duration {
    let t = Instant::now();
    let out = Command::new(BIN)
        .args(args)
        .args(["--deployment", deployment, "--yes"])
        .args(state)
        .current_dir(dir)
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pi-deploy {args:?} {state:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.elapsed()
}

fn demo_ami() -> String {
    let text = std::fs::read_to_string(Path::new(ROOT).join("scripts/emu-amis.env")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("PI_DEMO_AMI_A="))
        .expect("PI_DEMO_AMI_A in scripts/emu-amis.env")
        .trim()
        .to_string()
}

/// Part 2: whole runs with each store.
fn runs(moto: &Moto, rounds: usize) -> Vec<String> {
    let ami = demo_ami();
    let dir = tempfile::tempdir().unwrap();
    let up = ["up", "--ami", ami.as_str()];
    let destroy = ["destroy", "--skip-final-snapshot", "--disable-deletion-protection"];
    // Warm-up (moto loads its backends on first use), untimed.
    let warm = ["--state-dir", "warm"];
    run(moto, dir.path(), "bench-warm", &warm, &up);
    run(moto, dir.path(), "bench-warm", &warm, &destroy);
    let mut samples: BTreeMap<&str, Vec<(Run, f64)>> = BTreeMap::new();
    for round in 1..=rounds {
        let order = if round % 2 == 1 {
            ["local", "s3"]
        } else {
            ["s3", "local"]
        };
        for which in order {
            let name = format!("bench-{which}{round}");
            let url = format!("s3://{BUCKET}/runs");
            let state: Vec<&str> = match which {
                "local" => vec!["--state-dir", "state"],
                _ => vec!["--state", url.as_str()],
            };
            let up_wall = run(moto, dir.path(), &name, &state, &up).as_secs_f64();
            let doc: serde_json::Value = match which {
                "local" => serde_json::from_slice(
                    &std::fs::read(dir.path().join("state").join(format!("{name}.json"))).unwrap(),
                )
                .unwrap(),
                _ => {
                    let out = Command::new(BIN)
                        .args(["state", "pull", "--out", "-", "--deployment", &name, "--state", &url])
                        .env("AWS_ENDPOINT_URL", &moto.endpoint)
                        .env("AWS_ACCESS_KEY_ID", "test")
                        .env("AWS_SECRET_ACCESS_KEY", "test")
                        .env("AWS_REGION", REGION)
                        .output()
                        .unwrap();
                    serde_json::from_slice(&out.stdout).expect("the pulled state")
                }
            };
            let destroy_wall = run(moto, dir.path(), &name, &state, &destroy).as_secs_f64();
            let r = Run {
                wall: up_wall,
                serial: doc["serial"].as_u64().unwrap(),
                resources: doc["resources"].as_object().unwrap().len(),
            };
            println!(
                "  round {round} {which:<5}  up {up_wall:6.1} s ({} writes, {} resources)  destroy {destroy_wall:6.1} s",
                r.serial, r.resources
            );
            samples.entry(which).or_default().push((r, destroy_wall));
        }
    }
    let mean = |which: &str, f: &dyn Fn(&(Run, f64)) -> f64| {
        let v = &samples[which];
        v.iter().map(f).sum::<f64>() / v.len() as f64
    };
    let up_local = mean("local", &|s| s.0.wall);
    let up_s3 = mean("s3", &|s| s.0.wall);
    let destroy_local = mean("local", &|s| s.1);
    let destroy_s3 = mean("s3", &|s| s.1);
    let resources = samples["s3"][0].0.resources as f64;
    let writes = mean("s3", &|s| s.0.serial as f64);
    vec![
        format!(
            "up, mean of {rounds}:      local {up_local:.1} s, S3 {up_s3:.1} s, difference {:+.1} s",
            up_s3 - up_local
        ),
        format!(
            "destroy, mean of {rounds}: local {destroy_local:.1} s, S3 {destroy_s3:.1} s, difference {:+.1} s",
            destroy_s3 - destroy_local
        ),
        format!(
            "up with an S3 state: {:+.0} ms per resource ({resources} resources), {:+.1} ms per state write ({writes:.0} writes)",
            (up_s3 - up_local) * 1000.0 / resources,
            (up_s3 - up_local) * 1000.0 / writes
        ),
    ]
}

fn main() {
    self_test();
    if !std::env::args().any(|a| a == "--bench") {
        println!("state_store bench: self-test passed (run `cargo bench --bench state_store` for the benchmark)");
        return;
    }
    let n = std::env::var("PI_BENCH_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let rounds = std::env::var("PI_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&r: &usize| r >= 1)
        .unwrap_or(2);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("== state store benchmark (load average at the start: {})", load.trim());
    let moto = Moto::start();
    create_bucket(&moto);
    println!("-- 1. writes ({n} per store) on moto at {}", moto.endpoint);
    for l in writes(&moto, n) {
        println!("  {l}");
    }
    println!("-- 2. up + destroy of the full architecture, {rounds} rounds per store");
    for l in runs(&moto, rounds) {
        println!("  {l}");
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("== done (load average at the end: {})", load.trim());
}
