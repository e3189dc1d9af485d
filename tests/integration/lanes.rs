//! The workers of the crash tests ("lanes"), each with the emulator endpoint it talks to.
//!
//! When the suite runs on a moto started by `scripts/emu-start.sh` (the endpoint is
//! `http://127.0.0.1:PORT` and `$CACHE/run/moto-PORT.pid` exists), each lane starts a moto
//! server of its own the same way and stops it when dropped. Measured on the shared 2-core
//! machine (docs/RELIABILITY.md): with every worker on the suite's one server, moto used
//! about half of all the CPU a crash case costs and, being one Python process, could not
//! use the second core; a server per lane can, and it stays small. A lane's own server can
//! also be reset (`POST /moto-api/reset`), which a server shared with other tests must
//! never be. On any other endpoint (LocalStack, ...), or when a server does not start, a
//! lane uses the suite's endpoint.
//!
//! The lanes run a private copy of the pi-deploy binary, taken when they start: the crash
//! tests run it thousands of times over many minutes, and where other builds share the
//! target directory the binary at cargo's path can be replaced by another build mid-run.
//! A test process killed from outside leaves its servers running (stop each with
//! `bash scripts/emu-stop.sh PORT`) and its copy in the temp directory.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use pi_deploy::aws::Clients;

use crate::common::{Deployment, clients_at, endpoint, show};

pub struct Lane {
    pub endpoint: String,
    pub clients: Clients,
    /// The moto server this lane started (None: the suite's endpoint, never reset).
    server: Option<Server>,
    binary: Arc<Snapshot>,
}

/// A copy of the pi-deploy binary in a directory removed when the last lane is dropped.
struct Snapshot {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Snapshot {
    fn take() -> Snapshot {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pi-deploy");
        std::fs::copy(env!("CARGO_BIN_EXE_pi-deploy"), &path).expect("copy the pi-deploy binary");
        Snapshot { _dir: dir, path }
    }
}

/// A moto server started by `scripts/emu-start.sh`, stopped by port when dropped.
struct Server {
    port: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(script("emu-stop.sh"))
            .arg(&self.port)
            .stderr(Stdio::null())
            .status();
    }
}

fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

/// Is the suite's endpoint a moto that `scripts/emu-start.sh` started (so starting more of
/// the same tests the same emulator)?
fn suite_runs_on_our_moto() -> bool {
    let Some(port) = endpoint().strip_prefix("http://127.0.0.1:").map(String::from) else {
        return false;
    };
    let cache = std::env::var_os("PI_DEPLOY_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/pi-deploy")));
    cache.is_some_and(|c| c.join("run").join(format!("moto-{port}.pid")).exists())
}

fn start_server() -> Result<Server, String> {
    let out = Command::new("bash")
        .arg(script("emu-start.sh"))
        // Several servers importing moto at once on a busy 2-core machine took over 20 s.
        .env("EMU_START_TIMEOUT", "120")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running emu-start.sh: {e}"))?;
    if !out.status.success() {
        return Err(format!("emu-start.sh failed: {}\n{}", out.status, show(&out)));
    }
    let port = String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("export PI_DEPLOY_EMU_PORT=").map(String::from))
        .ok_or("emu-start.sh printed no port")?;
    Ok(Server { port })
}

impl Lane {
    /// `n` lanes: each on a moto of its own when the suite runs on one (see the module
    /// doc), else on the suite's endpoint. The servers start in parallel (~2 s each when
    /// the machine is idle).
    pub fn start(n: usize, rt: &tokio::runtime::Runtime) -> Vec<Lane> {
        if !suite_runs_on_our_moto() {
            return Self::on_suite_endpoint(n, rt);
        }
        let started: Vec<Result<Server, String>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..n).map(|_| s.spawn(start_server)).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let servers = started
            .into_iter()
            .map(|r| {
                r.map_err(|e| {
                    eprintln!("crash lanes: a lane uses the suite's endpoint, its own moto did not start: {e}")
                })
                .ok()
            })
            .collect();
        Self::build(servers, rt)
    }

    /// `n` lanes on the suite's endpoint (for checks that read it, as upgrade.rs's do).
    pub fn on_suite_endpoint(n: usize, rt: &tokio::runtime::Runtime) -> Vec<Lane> {
        Self::build((0..n).map(|_| None).collect(), rt)
    }

    fn build(servers: Vec<Option<Server>>, rt: &tokio::runtime::Runtime) -> Vec<Lane> {
        let binary = Arc::new(Snapshot::take());
        servers
            .into_iter()
            .map(|server| {
                let endpoint = match &server {
                    Some(s) => format!("http://127.0.0.1:{}", s.port),
                    None => endpoint(),
                };
                Lane {
                    clients: rt.block_on(clients_at(&endpoint)),
                    endpoint,
                    server,
                    binary: binary.clone(),
                }
            })
            .collect()
    }

    /// Does this lane have a server of its own (which it may reset)?
    pub fn own_server(&self) -> bool {
        self.server.is_some()
    }

    pub fn describe(lanes: &[Lane]) -> String {
        let own = lanes.iter().filter(|l| l.own_server()).count();
        match own {
            0 => format!("{} on the suite's endpoint", lanes.len()),
            n if n == lanes.len() => format!("{n}, each with its own moto"),
            n => format!("{}, {n} of them with their own moto", lanes.len()),
        }
    }

    pub fn binary(&self) -> &Path {
        &self.binary.path
    }

    /// pi-deploy (the lanes' copy) for `d`, against this lane's endpoint.
    pub fn command(&self, d: &Deployment, args: &[&str]) -> Command {
        d.use_endpoint(&self.endpoint);
        let mut c = d.command_of(self.binary(), args);
        c.env("AWS_ENDPOINT_URL", &self.endpoint);
        c
    }

    pub fn run(&self, d: &Deployment, args: &[&str]) -> Output {
        self.command(d, args).output().expect("run pi-deploy")
    }

    /// Run and require success.
    pub fn ok(&self, d: &Deployment, args: &[&str]) -> Result<Output, String> {
        let out = self.run(d, args);
        if out.status.success() {
            Ok(out)
        } else {
            Err(format!("{args:?} failed: {}\n{}", out.status, show(&out)))
        }
    }

    /// Forget everything the lane's own server holds (moto's `POST /moto-api/reset`).
    pub fn reset(&self) -> Result<(), String> {
        assert!(self.own_server(), "only a lane's own server may be reset");
        let addr = self.endpoint.trim_start_matches("http://");
        let err = |e: std::io::Error| format!("resetting moto at {addr}: {e}");
        let mut s = TcpStream::connect(addr).map_err(err)?;
        s.set_read_timeout(Some(Duration::from_secs(60))).map_err(err)?;
        write!(
            s,
            "POST /moto-api/reset HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        .map_err(err)?;
        let mut response = String::new();
        s.read_to_string(&mut response).map_err(err)?;
        // The suite's S3 state bucket on this server is gone too.
        crate::common::forget_state_bucket(&self.endpoint);
        match response.split_whitespace().nth(1) {
            Some("200") => Ok(()),
            _ => Err(format!(
                "resetting moto at {addr}: {}",
                response.lines().next().unwrap_or("")
            )),
        }
    }
}
