//! Emulator benchmark: the release binary's `up` and `destroy` of the full architecture (the
//! deployment config of scripts/demo.sh) against a moto server this program starts
//! (scripts/emu-start.sh) and stops (scripts/emu-stop.sh). `cargo bench --locked --bench emulator`.
//!
//! Each round runs pi-deploy as users run it (default `--max-parallel`) and a sequential
//! reference: the same binary with `--max-parallel 1`, i.e. one resource at a time in
//! topological order, each resource's calls one at a time, against the same server. The two
//! alternate (the order flips every round) and each uses its own deployment name, so drift in
//! the server (memory, leftovers) hits both alike. One untimed `up` + `destroy` first warms moto up
//! (it loads its backends and AMI catalogue on first use).
//!
//! Per run it measures: wall time (spawn to exit), the child's own CPU time (user + sys, from
//! wait4's rusage), moto's CPU time over the run (/proc/PID/stat: near 100 % of the wall, moto
//! sets the pace), the API calls by operation (PI_DEPLOY_CALL_COUNTS, the binary's call-counting
//! interceptor), split into mutating and read calls by `classify`, and when each resource
//! started and finished (the `--json` event lines, timed as they arrive). It prints every run,
//! then median [min..max] per command and runner, the reference/pi-deploy wall ratio, the
//! critical chain of pi-deploy's median run (which resources the wall time went to), the calls
//! by operation and headline lines, and writes a markdown table to target/tmp/emulator-bench.md.
//!
//! Env: PI_BENCH_RUNS (rounds, default 5). `cargo test --bench emulator` (no `--bench` argument)
//! runs only the self-tests of `classify` and the statistics, without moto.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use pi_deploy::core::spec::Kind;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const BIN: &str = env!("CARGO_BIN_EXE_pi-deploy");
/// The region of scripts/emu-amis.env's images (and of scripts/demo.sh).
const REGION: &str = "eu-west-1";
const DEFAULT_ROUNDS: usize = 5;

// ---- operation classes ----------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Mutating,
    Read,
}

/// Whether an API operation (`EC2.CreateVpc` or `CreateVpc`) changes something, by the verb its
/// name starts with. An unknown verb counts as a read, which can only make the total/mutating
/// ratio look worse, and is reported by name.
fn classify(op: &str) -> (Class, bool) {
    const READ: &[&str] = &["Describe", "Get", "List", "Head", "Lookup", "Search"];
    const MUTATING: &[&str] = &[
        "Create",
        "Delete",
        "Put",
        "Modify",
        "Attach",
        "Detach",
        "Associate",
        "Disassociate",
        "Authorize",
        "Revoke",
        "Run",
        "Terminate",
        "Update",
        "Add",
        "Remove",
        "Register",
        "Deregister",
        "Allocate",
        "Release",
        "Tag",
        "Untag",
        "Set",
        "Complete",
        "Enable",
        "Disable",
        "Replace",
        "Rotate",
        "Change",
        "Import",
        "Request",
        "Start",
        "Stop",
        "Suspend",
        "Resume",
        "Reboot",
        "Restore",
        "Cancel",
        "Invoke",
        "Publish",
        "Send",
        "Upload",
        "Copy",
        "Reset",
    ];
    let name = op.rsplit('.').next().unwrap_or(op);
    let starts = |verbs: &[&str]| {
        verbs.iter().any(|v| {
            name.strip_prefix(v)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_uppercase()))
        })
    };
    if starts(READ) {
        (Class::Read, true)
    } else if starts(MUTATING) {
        (Class::Mutating, true)
    } else {
        (Class::Read, false)
    }
}

fn self_test_classify() {
    for op in [
        "EC2.CreateVpc",
        "EC2.AuthorizeSecurityGroupIngress",
        "EC2.RevokeSecurityGroupEgress",
        "EC2.ReplaceNetworkAclAssociation",
        "Auto Scaling.PutLifecycleHook",
        "Elastic Load Balancing v2.ModifyTargetGroupAttributes",
        "Secrets Manager.RotateSecret",
        "S3.PutBucketNotificationConfiguration",
        "IAM.RemoveRoleFromInstanceProfile",
        "EC2.DisassociateRouteTable",
        "EC2.ReleaseAddress",
        "DeleteVpc",
    ] {
        assert_eq!(classify(op), (Class::Mutating, true), "{op}");
    }
    for op in [
        "EC2.DescribeVpcs",
        "S3.HeadBucket",
        "STS.GetCallerIdentity",
        "IAM.ListAttachedRolePolicies",
        "Lambda.GetFunctionConfiguration",
        "DescribeSubnets",
    ] {
        assert_eq!(classify(op), (Class::Read, true), "{op}");
    }
    // A verb must be a whole word: `Settle` is not `Set`, `Getaway` not `Get`.
    assert_eq!(classify("X.Settle"), (Class::Read, false));
    assert_eq!(classify("X.Frobnicate"), (Class::Read, false));
    assert_eq!(classify("X.Getaway"), (Class::Read, false));
}

// ---- statistics -----------------------------------------------------------------------------

/// Median, min and max (the median of an even count is the mean of the middle two).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

fn spread(values: &[f64]) -> Spread {
    assert!(!values.is_empty(), "no runs");
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Spread {
        median,
        min: v[0],
        max: v[n - 1],
    }
}

impl Spread {
    fn show(&self, decimals: usize) -> String {
        format!("{:.d$} [{:.d$}..{:.d$}]", self.median, self.min, self.max, d = decimals)
    }
}

fn self_test_spread() {
    assert_eq!(
        spread(&[3.0, 1.0, 2.0]),
        Spread {
            median: 2.0,
            min: 1.0,
            max: 3.0
        }
    );
    assert_eq!(spread(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
    assert_eq!(spread(&[1.5]).show(2), "1.50 [1.50..1.50]");
}

// ---- moto -----------------------------------------------------------------------------------

/// A moto server started by scripts/emu-start.sh, stopped by scripts/emu-stop.sh on drop (also
/// when the benchmark panics).
struct Moto {
    endpoint: String,
    port: String,
    pid: i32,
    python: String,
}

impl Moto {
    fn start() -> Moto {
        let out = Command::new("bash")
            .arg("scripts/emu-start.sh")
            .current_dir(ROOT)
            .stderr(Stdio::inherit())
            .output()
            .expect("run scripts/emu-start.sh");
        assert!(
            out.status.success(),
            "scripts/emu-start.sh failed (is the venv installed? bash scripts/emu-install.sh)"
        );
        let exports: BTreeMap<String, String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export "))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let get = |k: &str| {
            exports
                .get(k)
                .cloned()
                .unwrap_or_else(|| panic!("emu-start.sh printed no {k}"))
        };
        Moto {
            endpoint: get("AWS_ENDPOINT_URL"),
            port: get("PI_DEPLOY_EMU_PORT"),
            pid: get("PI_DEPLOY_EMU_PID").parse().expect("moto pid"),
            python: get("PI_DEPLOY_EMU_PYTHON"),
        }
    }

    fn version(&self) -> String {
        Command::new(&self.python)
            .args(["-c", "import moto; print(moto.__version__)"])
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "?".into())
    }

    /// The server's CPU time so far (all its threads), in seconds.
    fn cpu_s(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // Fields after the command name (which may hold spaces) start at the state, field 3.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return 0.0;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i - 3).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        (ticks(14) + ticks(15)) / hz.max(1.0)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .args(["scripts/emu-stop.sh", &self.port])
            .current_dir(ROOT)
            .status();
    }
}

// ---- one run --------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Runner {
    PiDeploy,
    Reference,
}

impl Runner {
    fn name(self) -> &'static str {
        match self {
            Runner::PiDeploy => "pi-deploy",
            Runner::Reference => "reference",
        }
    }
    /// The reference is the same binary, one resource at a time.
    fn flags(self) -> &'static [&'static str] {
        match self {
            Runner::PiDeploy => &[],
            Runner::Reference => &["--max-parallel", "1"],
        }
    }
    fn letter(self) -> char {
        match self {
            Runner::PiDeploy => 'p',
            Runner::Reference => 's',
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Up,
    Destroy,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Up => "up",
            Op::Destroy => "destroy",
        }
    }
    /// As scripts/demo.sh runs them.
    fn args(self, ami: &str) -> Vec<String> {
        let args: &[&str] = match self {
            Op::Up => &["up", "--ami", ami, "--yes"],
            Op::Destroy => &[
                "destroy",
                "--yes",
                "--skip-final-snapshot",
                "--disable-deletion-protection",
            ],
        };
        args.iter().map(|s| s.to_string()).collect()
    }
}

#[derive(Clone, Debug)]
struct Sample {
    wall_s: f64,
    cpu_s: f64,
    moto_cpu_s: f64,
    calls: BTreeMap<String, u64>,
    /// When each resource started and finished, seconds after the spawn.
    spans: BTreeMap<String, Span>,
}

/// One resource's work in a run: from its first event to `ready` (up) or `deleted` (destroy).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Span {
    start: f64,
    end: f64,
}

/// The spans of a run from its NDJSON events, each timed when its line arrived (pi-deploy
/// flushes every event line).
fn spans_of(lines: &[(f64, String)], op: Op) -> BTreeMap<String, Span> {
    let done = match op {
        Op::Up => "ready",
        Op::Destroy => "deleted",
    };
    let mut spans: BTreeMap<String, Span> = BTreeMap::new();
    for (t, line) in lines {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if event["event"] != "resource" {
            continue;
        }
        let Some(key) = event["key"].as_str() else { continue };
        let span = spans.entry(key.to_string()).or_insert(Span {
            start: *t,
            end: f64::NAN,
        });
        if event["status"] == done {
            span.end = *t;
        }
    }
    spans.retain(|_, s| s.end.is_finite());
    spans
}

/// The chain that decided the run's length: from the resource that finished last, back
/// through the blocker (up: dependency, destroy: dependent) that finished last.
fn critical_chain(spans: &BTreeMap<String, Span>, blockers: impl Fn(&str) -> Vec<String>) -> Vec<String> {
    let by_end = |a: &&String, b: &&String| spans[*a].end.total_cmp(&spans[*b].end);
    let mut chain = Vec::new();
    let mut at = spans.keys().max_by(by_end).cloned();
    while let Some(key) = at {
        let before: Vec<String> = blockers(&key).into_iter().filter(|b| spans.contains_key(b)).collect();
        at = before.iter().max_by(by_end).cloned();
        chain.push(key);
    }
    chain.reverse();
    chain
}

fn self_test_chain() {
    let lines: Vec<(f64, String)> = [
        (0.1, r#"{"event":"run_started"}"#),
        (0.2, r#"{"event":"resource","key":"vpc","status":"creating"}"#),
        (0.3, r#"{"event":"resource","key":"vpc","status":"ready"}"#),
        (0.3, r#"{"event":"resource","key":"a","status":"creating"}"#),
        (0.3, r#"{"event":"resource","key":"b","status":"creating"}"#),
        (0.4, r#"{"event":"resource","key":"a","status":"ready"}"#),
        (0.6, r#"{"event":"resource","key":"b","status":"ready"}"#),
        (0.6, r#"{"event":"resource","key":"c","status":"creating"}"#),
        (0.7, r#"{"event":"resource","key":"c","status":"ready"}"#),
    ]
    .into_iter()
    .map(|(t, l)| (t, l.to_string()))
    .collect();
    let spans = spans_of(&lines, Op::Up);
    assert_eq!(spans["b"], Span { start: 0.3, end: 0.6 });
    let deps = |k: &str| -> Vec<String> {
        match k {
            "a" | "b" => vec!["vpc".into()],
            "c" => vec!["a".into(), "b".into()],
            _ => vec![],
        }
    };
    assert_eq!(critical_chain(&spans, deps), ["vpc", "b", "c"]);
}

impl Sample {
    fn total(&self) -> u64 {
        self.calls.values().sum()
    }
    fn mutating(&self) -> u64 {
        self.calls
            .iter()
            .filter(|(op, _)| classify(op).0 == Class::Mutating)
            .map(|(_, n)| n)
            .sum()
    }
    fn cpu_share(&self) -> f64 {
        self.cpu_s / self.wall_s
    }
    /// How busy the server was over the run: moto answers one call at a time (one Python
    /// interpreter lock), so near 100 % it, not the client, sets the pace.
    fn moto_share(&self) -> f64 {
        self.moto_cpu_s / self.wall_s
    }
    fn calls_per_mutation(&self) -> f64 {
        self.total() as f64 / self.mutating().max(1) as f64
    }
}

struct Bench {
    moto: Moto,
    ami: String,
    dir: tempfile::TempDir,
}

impl Bench {
    /// Run one command to completion; panics (stopping moto) if it fails.
    #[expect(clippy::zombie_processes, reason = "the child is reaped by wait4 in wait_with_cpu")]
    fn run(&self, deployment: &str, runner: Runner, op: Op, latency: Option<Pace>) -> Sample {
        let tag = format!("{deployment}-{}", op.name());
        let counts = self.dir.path().join(format!("{tag}.calls.json"));
        let log = self.dir.path().join(format!("{tag}.log"));
        let log_file = std::fs::File::create(&log).expect("create the run's log");
        let mut cmd = Command::new(BIN);
        cmd.args(op.args(&self.ami))
            // NDJSON on stdout, one flushed line per event: the resources' spans.
            .args(["--json", "--deployment", deployment, "--state-dir"])
            .arg(self.dir.path().join("state"))
            .args(runner.flags())
            // No ./pi-deploy.toml from the repository: the defaults, as in the demo.
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", std::env::var_os("HOME").unwrap_or_default())
            .env("AWS_ENDPOINT_URL", &self.moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", REGION)
            .env("AWS_DEFAULT_REGION", REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("NO_COLOR", "1")
            .env("PI_DEPLOY_CALL_COUNTS", &counts)
            .envs(latency.map(|p| ("PI_DEPLOY_LATENCY", p.env())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file.try_clone().expect("log file"));
        let moto_cpu_before = self.moto.cpu_s();
        let started = Instant::now();
        let mut child = cmd.spawn().expect("spawn pi-deploy");
        let stdout = child.stdout.take().expect("piped stdout");
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .map(|line| (started.elapsed().as_secs_f64(), line))
                .collect::<Vec<_>>()
        });
        let (ok, cpu_s) = wait_with_cpu(child.id() as libc::pid_t);
        let wall_s = started.elapsed().as_secs_f64();
        let moto_cpu_s = self.moto.cpu_s() - moto_cpu_before;
        let lines = reader.join().expect("stdout reader");
        let mut log_file = log_file;
        for (_, line) in &lines {
            let _ = writeln!(log_file, "{line}");
        }
        if !ok {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "pi-deploy {} ({}) failed; last lines of {}:\n{}",
                op.name(),
                runner.name(),
                log.display(),
                tail.join("\n")
            );
        }
        let calls = std::fs::read(&counts)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| panic!("no call counts in {}", counts.display()));
        Sample {
            wall_s,
            cpu_s,
            moto_cpu_s,
            calls,
            spans: spans_of(&lines, op),
        }
    }

    /// Each resource's dependencies, from the state file `up` left for `deployment`.
    fn deps(&self, deployment: &str) -> Deps {
        let path = self.dir.path().join("state").join(format!("{deployment}.json"));
        let state: serde_json::Value = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_else(|| panic!("no state file {}", path.display()));
        let resources = state["resources"].as_object().cloned().unwrap_or_default();
        let kind = |key: &str| {
            resources
                .get(key)
                .and_then(|r| serde_json::from_value::<Kind>(r["kind"].clone()).ok())
        };
        let mut deps = Deps::default();
        for (key, r) in &resources {
            let of: Vec<String> = r["deps"]
                .as_array()
                .map(|d| d.iter().filter_map(|v| v.as_str().map(String::from)).collect())
                .unwrap_or_default();
            for parent in &of {
                if let (Some(k), Some(p)) = (kind(key), kind(parent))
                    && k.deleted_with_container()
                    && k.container() == Some(p)
                {
                    deps.deleted_with.insert((key.clone(), parent.clone()));
                }
            }
            deps.of.insert(key.clone(), of);
        }
        deps
    }
}

/// The deployment's edges: each key's dependencies, and the (child, container) pairs whose
/// child AWS deletes with its container (a destroy does not wait for it: `Graph::destroy_after`).
#[derive(Default)]
struct Deps {
    of: BTreeMap<String, Vec<String>>,
    deleted_with: std::collections::BTreeSet<(String, String)>,
}

impl Deps {
    fn is_empty(&self) -> bool {
        self.of.is_empty()
    }

    /// What `key` waited for in `op`.
    fn blockers(&self, op: Op, key: &str) -> Vec<String> {
        match op {
            Op::Up => self.of.get(key).cloned().unwrap_or_default(),
            Op::Destroy => self
                .of
                .iter()
                .filter(|(k, d)| {
                    d.iter().any(|x| x == key) && !self.deleted_with.contains(&((*k).clone(), key.to_string()))
                })
                .map(|(k, _)| k.clone())
                .collect(),
        }
    }
}

/// Wait for the child and return (exited with 0, its user + sys CPU seconds): wait4 gives the
/// rusage of exactly this child, not of every child this process ever had.
fn wait_with_cpu(pid: libc::pid_t) -> (bool, f64) {
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value of this plain C struct.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own child, not yet reaped; the pointers are valid for the call.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "wait4: {err}");
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, secs(usage.ru_utime) + secs(usage.ru_stime))
}

// ---- the machine ----------------------------------------------------------------------------

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|t| t.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn nproc() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn demo_ami() -> String {
    let path = Path::new(ROOT).join("scripts/emu-amis.env");
    std::fs::read_to_string(&path)
        .expect("read scripts/emu-amis.env")
        .lines()
        .find_map(|l| l.strip_prefix("PI_DEMO_AMI_A="))
        .map(|v| v.trim().trim_matches('"').to_string())
        .expect("PI_DEMO_AMI_A in scripts/emu-amis.env")
}

// ---- report ---------------------------------------------------------------------------------

type Samples = BTreeMap<(Op, Runner), Vec<Sample>>;

fn print_run(round: usize, runner: Runner, op: Op, s: &Sample) {
    println!(
        "  run {round}  {:<9} {:<7}  wall {:6.2} s  cpu {:5.2} s ({:4.1} %)  moto cpu {:5.2} s ({:5.1} %)  calls {:4} (mutating {:3}, x{:.2})",
        runner.name(),
        op.name(),
        s.wall_s,
        s.cpu_s,
        100.0 * s.cpu_share(),
        s.moto_cpu_s,
        100.0 * s.moto_share(),
        s.total(),
        s.mutating(),
        s.calls_per_mutation()
    );
}

struct Figures {
    wall: Spread,
    cpu: Spread,
    cpu_share: Spread,
    moto_cpu: Spread,
    moto_share: Spread,
    total: Spread,
    mutating: Spread,
    per_mutation: Spread,
}

fn figures(samples: &[Sample]) -> Figures {
    let of = |f: &dyn Fn(&Sample) -> f64| spread(&samples.iter().map(f).collect::<Vec<_>>());
    Figures {
        wall: of(&|s| s.wall_s),
        cpu: of(&|s| s.cpu_s),
        cpu_share: of(&|s| 100.0 * s.cpu_share()),
        moto_cpu: of(&|s| s.moto_cpu_s),
        moto_share: of(&|s| 100.0 * s.moto_share()),
        total: of(&|s| s.total() as f64),
        mutating: of(&|s| s.mutating() as f64),
        per_mutation: of(&|s| s.calls_per_mutation()),
    }
}

/// Reference wall / pi-deploy wall, per round.
fn wall_ratios(samples: &Samples, op: Op) -> Spread {
    let p = &samples[&(op, Runner::PiDeploy)];
    let r = &samples[&(op, Runner::Reference)];
    spread(&p.iter().zip(r).map(|(p, r)| r.wall_s / p.wall_s).collect::<Vec<_>>())
}

/// Median count of each operation over the runs, for pi-deploy and the reference.
fn calls_by_operation(samples: &Samples, op: Op) -> Vec<(String, f64, f64)> {
    let median_of = |runner: Runner, name: &str| {
        spread(
            &samples[&(op, runner)]
                .iter()
                .map(|s| s.calls.get(name).copied().unwrap_or(0) as f64)
                .collect::<Vec<_>>(),
        )
        .median
    };
    let mut names: Vec<String> = samples[&(op, Runner::PiDeploy)]
        .iter()
        .chain(&samples[&(op, Runner::Reference)])
        .flat_map(|s| s.calls.keys().cloned())
        .collect();
    names.sort();
    names.dedup();
    let mut rows: Vec<(String, f64, f64)> = names
        .into_iter()
        .map(|n| {
            let p = median_of(Runner::PiDeploy, &n);
            let r = median_of(Runner::Reference, &n);
            (n, p, r)
        })
        .collect();
    rows.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    rows
}

fn headlines(samples: &Samples) -> Vec<String> {
    let mut lines = Vec::new();
    for op in [Op::Up, Op::Destroy] {
        let p = figures(&samples[&(op, Runner::PiDeploy)]);
        let r = figures(&samples[&(op, Runner::Reference)]);
        let ratio = wall_ratios(samples, op);
        lines.push(format!(
            "{o} wall: pi-deploy {:.2} s, sequential reference {:.2} s: reference / pi-deploy = {:.2} (median of the rounds; goal >= 1.5)",
            p.wall.median,
            r.wall.median,
            ratio.median,
            o = op.name()
        ));
        lines.push(format!(
            "{o} pi-deploy CPU / wall = {:.1} % (goal < 25 %)",
            p.cpu_share.median,
            o = op.name()
        ));
        lines.push(format!(
            "{o} moto CPU / pi-deploy wall = {:.0} % (reference: {:.0} %; near 100 % moto sets the pace)",
            p.moto_share.median,
            r.moto_share.median,
            o = op.name()
        ));
        lines.push(format!(
            "{o} calls: {:.0} total / {:.0} mutating = {:.2} (goal <= 1.5)",
            p.total.median,
            p.mutating.median,
            p.per_mutation.median,
            o = op.name()
        ));
    }
    lines
}

fn markdown(samples: &Samples, rounds: usize, machine: &str, moto: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "{machine}; {moto}; {rounds} runs of each, interleaved; median [min..max].\n"
    );
    let _ = writeln!(
        md,
        "| command | runner | wall s | CPU s (user+sys) | CPU / wall % | moto CPU / wall % | calls | mutating | calls / mutating | reference / pi-deploy wall |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    for op in [Op::Up, Op::Destroy] {
        for runner in [Runner::PiDeploy, Runner::Reference] {
            let f = figures(&samples[&(op, runner)]);
            let ratio = match runner {
                Runner::PiDeploy => wall_ratios(samples, op).show(2),
                Runner::Reference => String::new(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                op.name(),
                runner.name(),
                f.wall.show(2),
                f.cpu.show(2),
                f.cpu_share.show(1),
                f.moto_share.show(0),
                f.total.show(0),
                f.mutating.show(0),
                f.per_mutation.show(2),
                ratio
            );
        }
    }
    md
}

/// The run with the median wall time (the upper middle one of an even count).
fn median_run(runs: &[Sample]) -> &Sample {
    let mut by_wall: Vec<&Sample> = runs.iter().collect();
    by_wall.sort_by(|a, b| a.wall_s.total_cmp(&b.wall_s));
    by_wall[by_wall.len() / 2]
}

/// `setup 0.15 s | vpc 0.10 -> sg-alb 0.42 -> ... | 0.03 s to exit`: the chain's resources
/// with their own durations, and what came before and after it.
fn show_chain(s: &Sample, op: Op, deps: &Deps) -> String {
    let chain = critical_chain(&s.spans, |key| deps.blockers(op, key));
    let (Some(first), Some(last)) = (chain.first(), chain.last()) else {
        return "no resource events".into();
    };
    let links: Vec<String> = chain
        .iter()
        .map(|k| format!("{k} {:.2}", s.spans[k].end - s.spans[k].start))
        .collect();
    format!(
        "{} resources, {:.2} s of {:.2} s: before the first {:.2} s | {} | after the last {:.2} s",
        chain.len(),
        s.spans[last].end - s.spans[first].start,
        s.wall_s,
        s.spans[first].start,
        links.join(" -> "),
        s.wall_s - s.spans[last].end
    )
}

fn report(samples: &Samples, deps: &Deps, rounds: usize, machine: &str, moto: &str) {
    println!("\n== summary: median [min..max] over {rounds} runs");
    for op in [Op::Up, Op::Destroy] {
        for runner in [Runner::PiDeploy, Runner::Reference] {
            let f = figures(&samples[&(op, runner)]);
            println!("  {} ({})", op.name(), runner.name());
            println!("    wall              {} s", f.wall.show(2));
            println!("    CPU (user+sys)    {} s", f.cpu.show(2));
            println!("    CPU / wall        {} %", f.cpu_share.show(1));
            println!("    moto CPU          {} s", f.moto_cpu.show(2));
            println!("    moto CPU / wall   {} %", f.moto_share.show(1));
            println!("    calls             {}", f.total.show(0));
            println!("    mutating calls    {}", f.mutating.show(0));
            println!("    calls / mutating  {}", f.per_mutation.show(2));
        }
        println!(
            "  {}: reference / pi-deploy wall = {}",
            op.name(),
            wall_ratios(samples, op).show(2)
        );
    }

    println!("\n== critical chain of pi-deploy's run with the median wall (seconds per resource)");
    for op in [Op::Up, Op::Destroy] {
        let run = median_run(&samples[&(op, Runner::PiDeploy)]);
        println!("  {} (pi-deploy): {}", op.name(), show_chain(run, op, deps));
    }

    for op in [Op::Up, Op::Destroy] {
        println!(
            "\n== {} calls by operation (median per run; M = mutating, R = read, ? = unknown verb)",
            op.name()
        );
        println!("  {:>9} {:>9}  operation", "pi-deploy", "reference");
        for (name, p, r) in calls_by_operation(samples, op) {
            let (class, known) = classify(&name);
            let mark = match (class, known) {
                (_, false) => '?',
                (Class::Mutating, _) => 'M',
                (Class::Read, _) => 'R',
            };
            println!("  {p:>9} {r:>9}  {mark} {name}");
        }
    }

    let md = markdown(samples, rounds, machine, moto);
    let md_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("emulator-bench.md");
    match std::fs::write(&md_path, &md) {
        Ok(()) => println!("\n== markdown table (also in {})\n{md}", md_path.display()),
        Err(e) => println!("\n== markdown table (could not write {}: {e})\n{md}", md_path.display()),
    }

    println!("== headline");
    for line in headlines(samples) {
        println!("{line}");
    }
}

// ---- main -----------------------------------------------------------------------------------

fn main() {
    self_test_classify();
    self_test_spread();
    self_test_chain();
    self_test_ideal();
    // `cargo bench` passes --bench; `cargo test --bench emulator` does not: self-tests only.
    if !std::env::args().any(|a| a == "--bench") {
        println!("emulator bench: self-tests passed (run `cargo bench --bench emulator` for the benchmark)");
        return;
    }
    let rounds = env_count("PI_BENCH_RUNS", DEFAULT_ROUNDS);

    let moto = Moto::start();
    let bench = Bench {
        ami: demo_ami(),
        dir: tempfile::Builder::new()
            .prefix("pi-deploy-emu-bench.")
            .tempdir()
            .expect("temp dir"),
        moto,
    };
    let machine = format!(
        "nproc {}, {}, load average {} at the start",
        nproc(),
        cpu_model(),
        load_average()
    );
    let moto_desc = format!("moto {} at {}", bench.moto.version(), bench.moto.endpoint);
    println!("== emulator benchmark: {moto_desc}");
    println!("  binary   {BIN}");
    println!("  machine  {machine}");
    println!(
        "  runs     {rounds} rounds of up + destroy (deployment config of scripts/demo.sh, AMI {}), pi-deploy and the reference (--max-parallel 1) interleaved",
        bench.ami
    );

    print!("  warm-up  up + destroy (untimed) ...");
    let _ = std::io::Write::flush(&mut std::io::stdout());
    bench.run("bench-warm", Runner::PiDeploy, Op::Up, None);
    bench.run("bench-warm", Runner::PiDeploy, Op::Destroy, None);
    println!(" done");

    let mut samples: Samples = BTreeMap::new();
    // The graph is the same for every deployment name: read it from the first state file.
    let mut deps = Deps::default();
    for round in 1..=rounds {
        let order = if round % 2 == 1 {
            [Runner::PiDeploy, Runner::Reference]
        } else {
            [Runner::Reference, Runner::PiDeploy]
        };
        for runner in order {
            let deployment = format!("bench-{}{round}", runner.letter());
            for op in [Op::Up, Op::Destroy] {
                let s = bench.run(&deployment, runner, op, None);
                if op == Op::Up && deps.is_empty() {
                    deps = bench.deps(&deployment);
                }
                print_run(round, runner, op, &s);
                samples.entry((op, runner)).or_default().push(s);
            }
        }
    }
    let machine_then = format!("{machine}, {} at the end", load_average());
    report(&samples, &deps, rounds, &machine_then, &moto_desc);

    if !cfg!(feature = "fault-injection") {
        println!(
            "\n== latency variant skipped: the binary needs the fault-injection feature (cargo bench --locked --features fault-injection --bench emulator)"
        );
        return;
    }
    for pace in latency_paces() {
        latency_variant(&bench, pace, &mut deps, &moto_desc);
    }
}

/// One latency variant: `PI_BENCH_LATENCY_RUNS` rounds of both runners under `pace`.
fn latency_variant(bench: &Bench, pace: Pace, deps: &mut Deps, moto_desc: &str) {
    let lrounds = env_count("PI_BENCH_LATENCY_RUNS", DEFAULT_LATENCY_ROUNDS);
    let machine = format!(
        "nproc {}, {}, load average {} at the start",
        nproc(),
        cpu_model(),
        load_average()
    );
    println!(
        "\n== latency variant: PI_DEPLOY_LATENCY={} ({}), {lrounds} rounds",
        pace.env(),
        pace.describe()
    );
    let mut lsamples: Samples = BTreeMap::new();
    for round in 1..=lrounds {
        let order = if round % 2 == 1 {
            [Runner::PiDeploy, Runner::Reference]
        } else {
            [Runner::Reference, Runner::PiDeploy]
        };
        for runner in order {
            let deployment = format!("{}-{}{round}", pace.prefix(), runner.letter());
            for op in [Op::Up, Op::Destroy] {
                let s = bench.run(&deployment, runner, op, Some(pace));
                if deps.is_empty() && op == Op::Up {
                    *deps = bench.deps(&deployment);
                }
                print_run(round, runner, op, &s);
                lsamples.entry((op, runner)).or_default().push(s);
            }
        }
    }
    let machine = format!("{machine}, {} at the end", load_average());
    latency_report(
        &lsamples,
        deps,
        &Ideal::new(&bench.ami, pace),
        lrounds,
        pace,
        &machine,
        moto_desc,
    );
}

// ---- latency variant ------------------------------------------------------------------------

const DEFAULT_LATENCY_ROUNDS: usize = 3;

/// How the latency mode times transitions (`PI_DEPLOY_LATENCY`): the model's medians times
/// a factor (waits sped up alike), or a fixed number of seconds each with the waits at real
/// speed, as an outside emulator that ignores AWS's timings would show them.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Pace {
    Scaled(f64),
    Fixed(f64),
}

impl Pace {
    fn parse(v: &str) -> Pace {
        let v = v.trim();
        match v.strip_prefix("fixed:") {
            Some(secs) => Pace::Fixed(secs.parse().expect("PI_BENCH_LATENCY: fixed:<seconds>, e.g. fixed:2")),
            None => Pace::Scaled(v.parse().expect("PI_BENCH_LATENCY: a factor like 0.01, or fixed:2")),
        }
    }

    fn env(self) -> String {
        match self {
            Pace::Scaled(f) => f.to_string(),
            Pace::Fixed(s) => format!("fixed:{s}"),
        }
    }

    fn describe(self) -> String {
        match self {
            Pace::Scaled(f) => format!("AWS's intermediate states for the latency model's medians x {f}"),
            Pace::Fixed(s) => format!("every intermediate state for {s} s, the waits at real speed"),
        }
    }

    /// Deployment names and headline lines.
    fn prefix(self) -> String {
        match self {
            Pace::Scaled(_) => "latency".into(),
            Pace::Fixed(s) => format!("fixed{s}s"),
        }
    }
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n >= 1)
        .unwrap_or(default)
}

/// `PI_BENCH_LATENCY`: a comma-separated list of paces (default `0.01,fixed:2`), `0` to skip.
fn latency_paces() -> Vec<Pace> {
    match std::env::var("PI_BENCH_LATENCY") {
        Ok(v) if v.trim() == "0" => vec![],
        Ok(v) => v.split(',').map(Pace::parse).collect(),
        Err(_) => vec![Pace::Scaled(0.01), Pace::Fixed(2.0)],
    }
}

/// A node's weight in seconds.
type Weight<'a> = dyn Fn(&pi_deploy::core::spec::NodeSpec) -> f64 + 'a;

/// The lower bound of each command under the latency mode: the longest chain of the
/// deployment's graph, each node weighing what the mode makes it take (its transition, or
/// its kind's model figure), scaled; and the sum of all weights.
struct Ideal {
    /// Per command: (chain seconds, chain keys, sum of all weights).
    chains: BTreeMap<Op, (f64, Vec<String>, f64)>,
    /// Per command: each key's weight, seconds.
    weights: BTreeMap<Op, BTreeMap<String, f64>>,
}

impl Ideal {
    fn new(ami: &str, pace: Pace) -> Ideal {
        use pi_deploy::core::config::{Config, Purpose};
        use pi_deploy::core::graph::Graph;
        use pi_deploy::core::latency::{
            Transition, create_transition, delete_transition, emulated_create_s, emulated_delete_s,
        };
        use pi_deploy::core::spec::{self, SpecInput};
        let cfg = Config {
            ami: Some(ami.to_string()),
            ..Config::default()
        };
        assert!(cfg.validate(Purpose::Up).is_empty(), "the benchmark's config is valid");
        let input = SpecInput {
            config: &cfg,
            region: REGION,
            azs: [format!("{REGION}a"), format!("{REGION}b")],
        };
        let graph = Graph::new(spec::build(&input)).expect("the architecture graph is valid");
        let mut chains = BTreeMap::new();
        let mut weights = BTreeMap::new();
        // `destroy` as the benchmark runs it: --skip-final-snapshot.
        // At a fixed pace, a node weighs its shown states only (the synchronous ones are an
        // emulator call or two); the targets are healthy after three (instances in service,
        // the app answering, one health check), as the mode's `healthy_at` has it.
        let periods = |t: Transition| if t == Transition::TargetHealthy { 3.0 } else { 1.0 };
        let weigh: [(Op, Box<Weight<'_>>); 2] = match pace {
            Pace::Scaled(factor) => [
                (Op::Up, Box::new(move |n| emulated_create_s(n) * factor)),
                (Op::Destroy, Box::new(move |n| emulated_delete_s(n, false) * factor)),
            ],
            Pace::Fixed(secs) => [
                (
                    Op::Up,
                    Box::new(move |n| create_transition(n).map_or(0.0, |t| secs * periods(t))),
                ),
                (
                    Op::Destroy,
                    Box::new(move |n| delete_transition(n, false).map_or(0.0, |t| secs * periods(t))),
                ),
            ],
        };
        for (op, w) in weigh {
            let w = w.as_ref();
            let (total, keys) = match op {
                Op::Up => graph.critical_path(w),
                Op::Destroy => graph.destroy_critical_path(w),
            };
            let sum: f64 = graph.nodes().iter().map(w).sum();
            chains.insert(op, (total, keys, sum));
            weights.insert(op, graph.nodes().iter().map(|n| (n.key.clone(), w(n))).collect());
        }
        Ideal { chains, weights }
    }

    fn chain_s(&self, op: Op) -> f64 {
        self.chains[&op].0
    }

    /// Sum of all weights over the chain: what a sequential run can be slower by, at most.
    fn bound(&self, op: Op) -> f64 {
        let (chain, _, sum) = &self.chains[&op];
        sum / chain
    }

    fn describe(&self, op: Op) -> String {
        let (total, keys, sum) = &self.chains[&op];
        let w = &self.weights[&op];
        let links: Vec<String> = keys.iter().map(|k| format!("{k} ({:.2})", w[k])).collect();
        format!("{total:.2} s: {}; sum of all {sum:.2} s", links.join(" -> "))
    }
}

/// The ideal chains of the default deployment at 1/100: the Single-AZ create and the
/// conversion to Multi-AZ behind the security groups for `up` (usable early, the default); the group's and the database's deletes for `destroy`; and each
/// bound is the sum of all weights over the chain.
fn self_test_ideal() {
    let ideal = Ideal::new("ami-0123456789abcdef0", Pace::Scaled(0.01));
    let near = |a: f64, b: f64| (a - b).abs() < 1e-9;
    let (up, up_keys, up_sum) = &ideal.chains[&Op::Up];
    assert!(near(*up, 7.33), "{up}");
    assert_eq!(up_keys.first().map(String::as_str), Some("vpc"));
    assert!(
        up_keys.ends_with(&["db-endpoint".into(), "db-standby".into()]),
        "{up_keys:?}"
    );
    let (destroy, destroy_keys, _) = &ideal.chains[&Op::Destroy];
    // The group's delete starts at once: AWS deletes its policies and hook with it.
    assert!(near(*destroy, 7.30), "{destroy} {destroy_keys:?}");
    assert!(
        !destroy_keys.iter().any(|k| k.contains("alarm") || k.contains("policy")),
        "{destroy_keys:?}"
    );
    assert_eq!(destroy_keys.last().map(String::as_str), Some("vpc"));
    assert!(
        destroy_keys.iter().position(|k| k == "asg") < destroy_keys.iter().position(|k| k == "db"),
        "{destroy_keys:?}"
    );
    assert!(near(ideal.bound(Op::Up), up_sum / up));
    assert!(ideal.bound(Op::Up) > 1.0 && ideal.bound(Op::Destroy) > 1.0);
    // At a fixed 2 s, the chain counts shown states only: a whole number of periods, ending
    // with the targets' three.
    let fixed = Ideal::new("ami-0123456789abcdef0", Pace::Fixed(2.0));
    let (up, up_keys, _) = &fixed.chains[&Op::Up];
    assert!(*up >= 8.0 && near(up % 2.0, 0.0), "{up} {up_keys:?}");
    assert_eq!(fixed.weights[&Op::Up]["dashboard"], 6.0);
    assert_eq!(fixed.weights[&Op::Up]["vpc"], 0.0);
    assert_eq!(Pace::parse("fixed:2"), Pace::Fixed(2.0));
    assert_eq!(Pace::parse("0.01").env(), "0.01");
}

/// Per-round ratio of runner `a`'s wall to `b`'s.
fn ratio_of(samples: &Samples, op: Op, a: Runner, b: Runner) -> Spread {
    let x = &samples[&(op, a)];
    let y = &samples[&(op, b)];
    spread(&x.iter().zip(y).map(|(x, y)| x.wall_s / y.wall_s).collect::<Vec<_>>())
}

/// The median run's critical chain, each link's time beside its weight in the ideal chain
/// and how much longer it took (poll overshoot and the calls around the wait).
fn show_latency_chain(s: &Sample, op: Op, deps: &Deps, ideal: &Ideal) -> String {
    let chain = critical_chain(&s.spans, |key| deps.blockers(op, key));
    let (Some(first), Some(last)) = (chain.first(), chain.last()) else {
        return "no resource events".into();
    };
    let w = &ideal.weights[&op];
    let links: Vec<String> = chain
        .iter()
        .map(|k| {
            let took = s.spans[k].end - s.spans[k].start;
            let weight = w.get(k).copied().unwrap_or(0.0);
            format!("{k} {took:.2} (ideal {weight:.2}, {:+.2})", took - weight)
        })
        .collect();
    format!(
        "before the first {:.2} s | {} | after the last {:.2} s",
        s.spans[first].start,
        links.join(" -> "),
        s.wall_s - s.spans[last].end
    )
}

fn latency_headlines(samples: &Samples, ideal: &Ideal, prefix: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for op in [Op::Up, Op::Destroy] {
        let p = figures(&samples[&(op, Runner::PiDeploy)]);
        let chain = ideal.chain_s(op);
        lines.push(format!(
            "{prefix} {o}: pi-deploy / ideal chain = {:.2} ({:.2} s / {chain:.2} s; goal <= 1.15)",
            p.wall.median / chain,
            p.wall.median,
            o = op.name()
        ));
    }
    for op in [Op::Up, Op::Destroy] {
        let seq = ratio_of(samples, op, Runner::Reference, Runner::PiDeploy);
        lines.push(format!(
            "{prefix} {o}: sequential / pi-deploy = {:.2} (bound: sum of all latencies / chain = {:.2})",
            seq.median,
            ideal.bound(op),
            o = op.name()
        ));
    }
    for op in [Op::Up, Op::Destroy] {
        let p = figures(&samples[&(op, Runner::PiDeploy)]);
        lines.push(format!(
            "{prefix} {o} calls: {:.0} total / {:.0} mutating = {:.2} (goal <= 1.5)",
            p.total.median,
            p.mutating.median,
            p.per_mutation.median,
            o = op.name()
        ));
    }
    lines
}

fn latency_report(samples: &Samples, deps: &Deps, ideal: &Ideal, rounds: usize, pace: Pace, machine: &str, moto: &str) {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "{machine}; {moto}; PI_DEPLOY_LATENCY={}; {rounds} runs of each, interleaved; median [min..max].\n",
        pace.env()
    );
    let _ = writeln!(
        md,
        "| command | runner | wall s | ideal chain s | wall / ideal | sequential / pi-deploy (bound) | calls | mutating | calls / mutating |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    println!(
        "\n== latency variant {}: median [min..max] over {rounds} runs",
        pace.env()
    );
    for op in [Op::Up, Op::Destroy] {
        let chain = ideal.chain_s(op);
        println!("  {}: ideal chain {}", op.name(), ideal.describe(op));
        for runner in [Runner::PiDeploy, Runner::Reference] {
            let f = figures(&samples[&(op, runner)]);
            let over_ideal = spread(
                &samples[&(op, runner)]
                    .iter()
                    .map(|s| s.wall_s / chain)
                    .collect::<Vec<_>>(),
            );
            let seq = match runner {
                Runner::PiDeploy => format!(
                    "{} ({:.2})",
                    ratio_of(samples, op, Runner::Reference, Runner::PiDeploy).show(2),
                    ideal.bound(op)
                ),
                Runner::Reference => String::new(),
            };
            println!(
                "  {} ({}): wall {} s, / ideal chain {}, calls {} / mutating {} = {}",
                op.name(),
                runner.name(),
                f.wall.show(2),
                over_ideal.show(2),
                f.total.show(0),
                f.mutating.show(0),
                f.per_mutation.show(2)
            );
            let _ = writeln!(
                md,
                "| {} | {} | {} | {chain:.2} | {} | {seq} | {} | {} | {} |",
                op.name(),
                runner.name(),
                f.wall.show(2),
                over_ideal.show(2),
                f.total.show(0),
                f.mutating.show(0),
                f.per_mutation.show(2)
            );
        }
        println!(
            "  {}: sequential / pi-deploy = {} (bound {:.2})",
            op.name(),
            ratio_of(samples, op, Runner::Reference, Runner::PiDeploy).show(2),
            ideal.bound(op)
        );
    }
    println!("\n== latency variant: critical chain of pi-deploy's run with the median wall (seconds per resource)");
    let _ = writeln!(
        md,
        "\nCritical chain of pi-deploy's median run (seconds; ideal = the link's weight in the ideal chain):\n"
    );
    for op in [Op::Up, Op::Destroy] {
        let line = show_latency_chain(median_run(&samples[&(op, Runner::PiDeploy)]), op, deps, ideal);
        println!("  {} (pi-deploy): {line}", op.name());
        let _ = writeln!(md, "- {}: {line}", op.name());
    }
    let md_path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("emulator-bench-latency.md");
    match std::fs::write(&md_path, &md) {
        Ok(()) => println!("\n== latency markdown table (also in {})\n{md}", md_path.display()),
        Err(e) => println!(
            "\n== latency markdown table (could not write {}: {e})\n{md}",
            md_path.display()
        ),
    }
    println!("== latency headline");
    for line in latency_headlines(samples, ideal, &pace.prefix()) {
        println!("{line}");
    }
}
