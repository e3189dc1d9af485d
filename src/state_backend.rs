//! Where the state lives, behind one type, so commands do not care: a local directory
//! (`state_file`, the default) or S3 (`state_s3`). Both lock the deployment for the whole
//! run, refuse a corrupt, newer or foreign document without touching it, and refuse a write
//! when the document moved on without the run; such a refusal trips the fence
//! (src/aws/fence.rs), so the run makes no further AWS change, and the command exits 3.
//!
//! Also the facts about this process that a lock records (user, host, pid, machine).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::aws::fence::Fence;
use crate::aws::objects::S3Objects;
use crate::core::executor::StateStore;
use crate::core::lock::{LockInfo, Machine};
use crate::core::state::State;
use crate::core::state_url::StateLocation;
use crate::state_file::{Location, StateFile, StateFileError};
use crate::state_s3::{Bridge, S3Location, S3State, Timing};

pub enum StateBackend {
    Local(StateFile),
    S3(S3State),
}

/// How to reach an S3 location: the caller's AWS configuration (loaded the standard way
/// when `None`) and the bucket's region (the configuration's when `None`).
pub struct Connect<'a> {
    pub config: Option<&'a aws_config::SdkConfig>,
    pub region: Option<String>,
}

/// Connect to an S3 state location (no S3 call is made yet).
pub fn connect_s3(bucket: &str, prefix: &str, how: &Connect<'_>) -> Result<S3Location, StateFileError> {
    let bridge = Bridge::new().map_err(|source| StateFileError::Io {
        path: PathBuf::from("(state runtime)"),
        source,
    })?;
    let config = match how.config {
        Some(c) => c.clone(),
        None => {
            let region = how.region.clone();
            bridge
                .run(async move { crate::aws::sdk_config(region.as_deref()).await })
                .map_err(StateFileError::Remote)?
        }
    };
    let region = how
        .region
        .clone()
        .or_else(|| config.region().map(|r| r.to_string()))
        .unwrap_or_default();
    Ok(S3Location {
        bridge: Arc::new(bridge),
        store: Arc::new(S3Objects::new(&config, &region, bucket)),
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    })
}

impl StateBackend {
    /// Lock the deployment's state at `location` for `command`.
    pub fn open(
        location: &StateLocation,
        deployment: &str,
        command: &str,
        s3: Option<Connect<'_>>,
        fence: Arc<Fence>,
    ) -> Result<Self, StateFileError> {
        let info = this_process(command);
        match location {
            StateLocation::Local { dir } => Ok(StateBackend::Local(StateFile::lock(dir, deployment, info)?)),
            StateLocation::S3 { bucket, prefix } => {
                let how = s3.expect("an S3 location is opened with its AWS configuration");
                let loc = connect_s3(bucket, prefix, &how)?;
                Ok(StateBackend::S3(loc.lock(
                    deployment,
                    info,
                    machine(),
                    fence,
                    Timing::default(),
                )?))
            }
        }
    }

    /// Where the document is, for messages.
    pub fn location(&self) -> Location {
        match self {
            StateBackend::Local(f) => Location::File(f.path()),
            StateBackend::S3(s) => s.location(),
        }
    }

    /// The local file's path (the local backend only; `None` for S3).
    pub fn path(&self) -> Option<PathBuf> {
        match self {
            StateBackend::Local(f) => Some(f.path()),
            StateBackend::S3(_) => None,
        }
    }

    pub fn lock_info(&self) -> &LockInfo {
        match self {
            StateBackend::Local(f) => f.lock_info(),
            StateBackend::S3(s) => s.lock_info(),
        }
    }

    pub fn load(&self) -> Result<Option<State>, StateFileError> {
        match self {
            StateBackend::Local(f) => f.load(),
            StateBackend::S3(s) => s.load(),
        }
    }

    pub fn write(&self, state: &State) -> Result<(), StateFileError> {
        let written = match self {
            StateBackend::Local(f) => f.write(state),
            StateBackend::S3(s) => s.write(state),
        };
        self.stop_on_refusal(written)
    }

    pub fn write_bytes(
        &self,
        bytes: Vec<u8>,
        lineage: uuid::Uuid,
        serial: u64,
        any_serial: bool,
    ) -> Result<(), StateFileError> {
        let written = match self {
            StateBackend::Local(f) => f.write_bytes(bytes, lineage, serial, any_serial),
            StateBackend::S3(s) => s.write_bytes(bytes, lineage, serial, any_serial),
        };
        self.stop_on_refusal(written)
    }

    /// After a complete destroy: remove the document (S3 keeps its history).
    pub fn remove(&self) -> Result<(), StateFileError> {
        let removed = match self {
            StateBackend::Local(f) => f.remove(),
            StateBackend::S3(s) => s.remove(),
        };
        self.stop_on_refusal(removed)
    }

    /// A refused write means the document moved on without this run: no AWS change may
    /// follow (the S3 store trips the fence itself; the local file's refusals do it here).
    fn stop_on_refusal(&self, r: Result<(), StateFileError>) -> Result<(), StateFileError> {
        if let Err(e) = &r
            && e.is_refusal()
        {
            crate::aws::fence::process().trip(format!("{e}"));
        }
        r
    }
}

impl StateStore for StateBackend {
    fn save(&self, state: &State) -> Result<(), String> {
        self.write(state).map_err(|e| e.to_string())
    }
}

/// This process, as a lock records it.
pub fn this_process(command: &str) -> LockInfo {
    let now = chrono::Utc::now();
    LockInfo {
        id: uuid::Uuid::new_v4().to_string(),
        user: user(),
        host: hostname(),
        pid: std::process::id(),
        command: command.into(),
        created_at: now,
        refreshed_at: Some(now),
        machine: machine(),
        version: env!("CARGO_PKG_VERSION").into(),
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", unsafe { libc::getuid() }))
}

/// This kernel's boot and this process's pid namespace (Linux); `None` elsewhere.
pub fn machine() -> Option<Machine> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let pid_namespace = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(Machine {
        boot_id: boot_id.trim().to_string(),
        pid_namespace: pid_namespace.to_string_lossy().into_owned(),
    })
}

/// Whether a process with this pid exists on this machine.
pub fn pid_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // Signal 0 checks existence and permission only; EPERM means it exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The local state directory of a location (`state` when the location is S3: `state push`
/// and `state pull` use it as the local side).
pub fn local_dir(location: &StateLocation, fallback: &Path) -> PathBuf {
    match location {
        StateLocation::Local { dir } => dir.clone(),
        StateLocation::S3 { .. } => fallback.to_path_buf(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_described_and_alive() {
        let me = this_process("plan");
        assert_eq!(me.pid, std::process::id());
        assert!(pid_exists(me.pid));
        assert!(!pid_exists(0) && !pid_exists(2_000_000_000) && !pid_exists(u32::MAX));
        assert!(me.describe().contains("`plan`"));
        assert_eq!(me.machine, machine());
    }
}
