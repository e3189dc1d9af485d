//! The state file's bytes: an exclusive lock for the whole run, atomic writes (temp file,
//! fsync, rename, fsync of the directory), the previous version kept as `.backup`, and
//! refusal — without touching the file — of anything that is not ours.
//!
//! The lock is an advisory `flock` on `<deployment>.lock`: the kernel releases it when the
//! process dies, so a run killed with SIGKILL never leaves a held lock behind; the file
//! records who holds it (`core::lock::LockInfo`, with a lock id) for the refusal message and
//! for `force-unlock`. After taking the flock, the run checks that the path still names the
//! file it locked (a run ending, or a force-unlock, unlinks it), so two runs can never hold
//! locks on two different files of the same name.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fs2::FileExt;

use crate::core::executor::StateStore;
use crate::core::lock::LockInfo;
use crate::core::resource::ResourceError;
use crate::core::state::{State, StateRefusal};

/// Where a state document is: a file, or an S3 object (`s3://bucket/key`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    File(PathBuf),
    S3(String),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::File(p) => write!(f, "{}", p.display()),
            Location::S3(url) => write!(f, "{url}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    /// Another run holds the deployment's lock (the message names it and its age).
    #[error("{message}")]
    Locked { message: String, hint: String },
    #[error("{at}: {refusal}")]
    Refused { at: Location, refusal: StateRefusal },
    /// A write found the state changed behind the run's back (S3 compare-and-swap).
    #[error("the state {at} was not written: {detail}")]
    Conflict { at: Location, detail: String },
    /// The run's S3 lock was removed or taken over while it ran.
    #[error("{message}")]
    LockLost { message: String },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// An S3 call of the state store failed (after the SDK's retries).
    #[error("{0}")]
    Remote(ResourceError),
}

impl StateFileError {
    pub fn hint(&self) -> Option<String> {
        match self {
            StateFileError::Locked { hint, .. } => Some(hint.clone()),
            StateFileError::Refused { at, refusal } => Some(match refusal {
                StateRefusal::Foreign { .. } => {
                    "use the matching --deployment/--region and credentials, or another --state / --state-dir".into()
                }
                StateRefusal::NewerFormat { .. } => "upgrade pi-deploy".into(),
                _ => match at {
                    Location::File(path) => {
                        let backup = backup_of(&fs::canonicalize(path).unwrap_or_else(|_| path.clone()));
                        if backup.exists() {
                            format!(
                                "the file was left untouched; restore {} if it is good, or move the file away and run `pi-deploy destroy` to find resources by tag",
                                backup.display()
                            )
                        } else {
                            "the file was left untouched (there is no backup of it); move it away and run `pi-deploy destroy` to find the deployment's resources by tag, or `pi-deploy status` to see them".into()
                        }
                    }
                    Location::S3(_) => "the object was left untouched; list its earlier versions with `pi-deploy state history` and bring a good one back with `pi-deploy state pull --version ID` then `pi-deploy state push --force`".into(),
                },
            }),
            StateFileError::Conflict { .. } => Some(
                "another run or a person wrote the state while this run held the lock (a force-unlock lets a second run in); no further AWS change was made. See `pi-deploy state history`, then run the command again: it starts from the state as it is now".into(),
            ),
            StateFileError::LockLost { .. } => Some(
                "someone ran `pi-deploy force-unlock` on this run's lock; no further AWS change was made. Make sure no other run is going on, then run the command again".into(),
            ),
            StateFileError::Remote(e) => e.hint.clone(),
            StateFileError::Io { .. } => None,
        }
    }

    /// Refusals that mean the run must not act any more (exit 3), as opposed to failures.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, StateFileError::Io { .. } | StateFileError::Remote(_))
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateFileError + '_ {
    move |source| StateFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `<file>.backup`.
fn backup_of(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".backup");
    path.with_file_name(name)
}

/// Lock files this process holds (path, device, inode), for [`remove_held_locks`].
static HELD: Mutex<Vec<(PathBuf, u64, u64)>> = Mutex::new(Vec::new());

/// Remove the lock files this process holds, before an exit that skips destructors (a
/// second Ctrl-C or SIGTERM). The kernel releases the locks themselves at exit anyway.
/// As in `Drop`, only a file the path still names is removed (a force-unlock may have
/// given the name to another run).
pub fn remove_held_locks() {
    for (p, dev, ino) in HELD.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
        if fs::metadata(&p).is_ok_and(|m| m.dev() == dev && m.ino() == ino) {
            let _ = fs::remove_file(p);
        }
    }
}

/// Whether `path` still names the open file `f` (same device and inode).
fn same_file(f: &File, path: &Path) -> bool {
    match (f.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// What a local `force-unlock` did.
#[derive(Debug, PartialEq, Eq)]
pub enum LocalUnlock {
    /// The lock file was removed; a run still holding it (on another machine sharing the
    /// directory) keeps an unlinked file and blocks no one.
    Removed(LockInfo),
    /// No run held it; a leftover lock file was removed.
    WasFree,
    NotLocked,
}

/// One deployment's state file, locked for as long as this value lives.
pub struct StateFile {
    dir: PathBuf,
    deployment: String,
    lock_file: File,
    info: LockInfo,
    /// Lineage and serial of the last document this run read or wrote: a write is refused
    /// if the file on disk has moved on without us.
    last: Mutex<Option<(uuid::Uuid, u64)>>,
    /// The bytes of our last write: when the file still holds exactly them, nobody else
    /// wrote it, and parsing it again (a large share of a run's CPU) can be skipped.
    last_bytes: Mutex<Option<Vec<u8>>>,
}

impl StateFile {
    pub fn path_for(dir: &Path, deployment: &str) -> PathBuf {
        dir.join(format!("{deployment}.json"))
    }

    pub fn lock_path(dir: &Path, deployment: &str) -> PathBuf {
        dir.join(format!("{deployment}.lock"))
    }

    pub fn lock(dir: &Path, deployment: &str, info: LockInfo) -> Result<Self, StateFileError> {
        fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = Self::lock_path(dir, deployment);
        let mut lock_file = loop {
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&lock_path)
                .map_err(io(&lock_path))?;
            if f.try_lock_exclusive().is_err() {
                let mut text = Vec::new();
                let _ = f.read_to_end(&mut text);
                return Err(local_held(deployment, LockInfo::parse(&text).as_ref()));
            }
            // The holder before us unlinked the file between our open and our lock: lock
            // the file that the path names now instead.
            if same_file(&f, &lock_path) {
                break f;
            }
        };
        lock_file.set_len(0).map_err(io(&lock_path))?;
        lock_file.rewind().map_err(io(&lock_path))?;
        lock_file.write_all(&info.to_bytes()).map_err(io(&lock_path))?;
        lock_file.sync_all().map_err(io(&lock_path))?;
        let meta = lock_file.metadata().map_err(io(&lock_path))?;
        HELD.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((lock_path, meta.dev(), meta.ino()));
        Ok(Self {
            dir: dir.to_path_buf(),
            deployment: deployment.into(),
            lock_file,
            info,
            last: Mutex::new(None),
            last_bytes: Mutex::new(None),
        })
    }

    pub fn lock_info(&self) -> &LockInfo {
        &self.info
    }

    /// `pi-deploy force-unlock LOCK_ID` on a local state directory. The flock of a live run
    /// on this machine cannot be broken (stop the process instead); a lock file held from
    /// another machine sharing the directory is unlinked, so new runs lock a new file.
    pub fn force_unlock(
        dir: &Path,
        deployment: &str,
        lock_id: &str,
        here: Option<&crate::core::lock::Machine>,
    ) -> Result<LocalUnlock, StateFileError> {
        let lock_path = Self::lock_path(dir, deployment);
        let mut f = match OpenOptions::new().read(true).write(true).open(&lock_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LocalUnlock::NotLocked),
            Err(e) => return Err(io(&lock_path)(e)),
        };
        let mut text = Vec::new();
        f.read_to_end(&mut text).map_err(io(&lock_path))?;
        let info = LockInfo::parse(&text);
        if f.try_lock_exclusive().is_ok() {
            // Nobody holds it: a leftover file of a killed run (harmless). Remove it while
            // holding it, so no run is between its open and its lock on this inode.
            if same_file(&f, &lock_path) {
                fs::remove_file(&lock_path).map_err(io(&lock_path))?;
            }
            let _ = FileExt::unlock(&f);
            return Ok(LocalUnlock::WasFree);
        }
        let Some(info) = info else {
            return Err(StateFileError::Locked {
                message: format!(
                    "{} is held by a run whose lock document cannot be read",
                    lock_path.display()
                ),
                hint: "find the pi-deploy process holding it (e.g. `fuser` on the file) and stop it".into(),
            });
        };
        if info.id != lock_id {
            return Err(crate::state_s3::wrong_id(deployment, &info, lock_id));
        }
        let same_machine = matches!((&info.machine, here), (Some(a), Some(b)) if a == b);
        if same_machine || info.machine.is_none() {
            return Err(StateFileError::Locked {
                message: format!(
                    "deployment `{deployment}` is locked by a live process on this machine: {}",
                    info.describe()
                ),
                hint: format!(
                    "a local lock is released by the kernel the moment its process ends: stop it (`kill {}`) if it hangs, and the lock goes with it",
                    info.pid
                ),
            });
        }
        if same_file(&f, &lock_path) {
            fs::remove_file(&lock_path).map_err(io(&lock_path))?;
        }
        Ok(LocalUnlock::Removed(info))
    }

    pub fn path(&self) -> PathBuf {
        Self::path_for(&self.dir, &self.deployment)
    }

    /// The previous version, next to the file the document is written to.
    pub fn backup_path(&self) -> PathBuf {
        backup_of(&self.target())
    }

    /// Where the document is written: the state file itself, or, when it is a symbolic
    /// link, the file the link points to (followed, so the link keeps working; state/README.md).
    pub fn target(&self) -> PathBuf {
        let path = self.path();
        match fs::read_link(&path) {
            Ok(to) if to.is_absolute() => to,
            Ok(to) => path.parent().map(|d| d.join(&to)).unwrap_or(to),
            Err(_) => path,
        }
    }

    /// The recorded state, `None` when there is no file. Never modifies the file.
    pub fn load(&self) -> Result<Option<State>, StateFileError> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        let state = State::parse(&bytes).map_err(|refusal| StateFileError::Refused {
            at: Location::File(path.clone()),
            refusal,
        })?;
        *self.last.lock().unwrap() = Some((state.lineage, state.serial));
        Ok(Some(state))
    }

    fn check_disk(&self, lineage: uuid::Uuid, serial: u64, any_serial: bool) -> Result<(), StateFileError> {
        let path = self.path();
        let last = *self.last.lock().unwrap();
        let (disk_lineage, disk_serial) = match fs::read(&path) {
            Ok(bytes) => match last {
                Some(ours) if self.last_bytes.lock().unwrap().as_deref() == Some(&bytes[..]) => ours,
                _ => {
                    let parsed = State::parse(&bytes).map_err(|refusal| StateFileError::Refused {
                        at: Location::File(path.clone()),
                        refusal,
                    })?;
                    (parsed.lineage, parsed.serial)
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return match last {
                    // We wrote it earlier in this run and it has gone: someone removed it.
                    Some(_) => Err(io(&path)(std::io::Error::other(
                        "the state file was removed during the run",
                    ))),
                    None => Ok(()),
                };
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let refusal = if disk_lineage != lineage {
            Some(StateRefusal::LineageMismatch {
                found: disk_lineage,
                expected: lineage,
            })
        } else if (disk_serial >= serial && !any_serial) || last.is_some_and(|(_, s)| disk_serial != s) {
            Some(StateRefusal::NewerSerial {
                found: disk_serial,
                ours: serial,
            })
        } else {
            None
        };
        match refusal {
            Some(refusal) => Err(StateFileError::Refused {
                at: Location::File(path),
                refusal,
            }),
            None => Ok(()),
        }
    }

    /// Atomic write: the file is always either the old or the new complete document. The
    /// temporary files are removed when a step fails (a full disk, a read-only directory).
    pub fn write(&self, state: &State) -> Result<(), StateFileError> {
        self.check_disk(state.lineage, state.serial, false)?;
        self.replace(state.serialize(), state.lineage, state.serial)
    }

    /// Write these exact bytes (a document of `lineage` at `serial`), with the same checks
    /// (`state pull`); `any_serial` lets an older serial of the same lineage replace the file.
    pub fn write_bytes(
        &self,
        bytes: Vec<u8>,
        lineage: uuid::Uuid,
        serial: u64,
        any_serial: bool,
    ) -> Result<(), StateFileError> {
        self.check_disk(lineage, serial, any_serial)?;
        self.replace(bytes, lineage, serial)
    }

    fn replace(&self, bytes: Vec<u8>, lineage: uuid::Uuid, serial: u64) -> Result<(), StateFileError> {
        let path = self.target();
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| self.dir.clone());
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{}.json", self.deployment));
        let tmp = dir.join(format!(".{file_name}.tmp"));
        let written = (|| {
            let mut f = File::create(&tmp).map_err(io(&tmp))?;
            #[cfg(feature = "fault-injection")]
            fault::before_write(&mut f, &bytes).map_err(io(&path))?;
            f.write_all(&bytes).map_err(io(&tmp))?;
            f.sync_all().map_err(io(&tmp))
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        if path.exists() {
            let backup = backup_of(&path);
            let backup_tmp = dir.join(format!(".{file_name}.backup.tmp"));
            if let Err(e) = fs::copy(&path, &backup_tmp)
                .map_err(io(&backup_tmp))
                .and_then(|_| fs::rename(&backup_tmp, &backup).map_err(io(&backup)))
            {
                let _ = fs::remove_file(&backup_tmp);
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
        }
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(io(&path)(e));
        }
        File::open(&dir).and_then(|d| d.sync_all()).map_err(io(&dir))?;
        *self.last.lock().unwrap() = Some((lineage, serial));
        *self.last_bytes.lock().unwrap() = Some(bytes);
        Ok(())
    }

    /// After a complete destroy nothing is left to describe: remove the file and its backup
    /// (through a symbolic link: the file it points to; the link stays, for the next `up`).
    pub fn remove(&self) -> Result<(), StateFileError> {
        for p in [self.target(), self.backup_path()] {
            match fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&p)(e)),
            }
        }
        *self.last.lock().unwrap() = None;
        *self.last_bytes.lock().unwrap() = None;
        Ok(())
    }
}

impl StateStore for StateFile {
    fn save(&self, state: &State) -> Result<(), String> {
        self.write(state).map_err(|e| e.to_string())
    }
}

impl Drop for StateFile {
    /// Unlink the lock file, only if it is still ours (a force-unlock may have given the
    /// name to another run), then release the flock.
    fn drop(&mut self) {
        let lock_path = Self::lock_path(&self.dir, &self.deployment);
        HELD.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(p, ..)| *p != lock_path);
        if same_file(&self.lock_file, &lock_path) {
            let _ = fs::remove_file(&lock_path);
        }
        let _ = FileExt::unlock(&self.lock_file);
    }
}

/// The refusal for a local lock another live process holds.
fn local_held(deployment: &str, info: Option<&LockInfo>) -> StateFileError {
    let now = chrono::Utc::now();
    let message = crate::core::lock::held_message(deployment, info, None, now, &crate::core::lock::Liveness::Alive);
    StateFileError::Locked {
        message,
        hint: "wait for it to finish; the lock is released automatically when that process exits (also when it is killed); if it hangs, stop it first".into(),
    }
}

/// Test builds only (`--features fault-injection`): `PI_DEPLOY_FAIL_STATE_WRITE=N` makes
/// the Nth write of the process and every later one fail as on a full disk (half the bytes
/// reach the temporary file, then ENOSPC), for the test that a failed write stops the run.
#[cfg(feature = "fault-injection")]
mod fault {
    use std::io::Write;
    use std::sync::atomic::{AtomicU64, Ordering};

    static WRITES: AtomicU64 = AtomicU64::new(0);

    pub fn before_write(f: &mut std::fs::File, bytes: &[u8]) -> std::io::Result<()> {
        let n = WRITES.fetch_add(1, Ordering::SeqCst) + 1;
        let from = std::env::var("PI_DEPLOY_FAIL_STATE_WRITE")
            .ok()
            .and_then(|v| v.parse::<u64>().ok());
        if from.is_some_and(|from| n >= from) {
            f.write_all(&bytes[..bytes.len() / 2])?;
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::Identity;

    fn identity() -> Identity {
        Identity {
            deployment: "pi".into(),
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            partition: "aws".into(),
        }
    }

    fn me(command: &str) -> LockInfo {
        crate::state_backend::this_process(command)
    }

    fn next(mut s: State) -> State {
        s.serial += 1;
        s
    }

    #[test]
    fn writes_are_atomic_and_keep_a_backup() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::lock(dir.path(), "pi", me("up")).unwrap();
        assert!(f.load().unwrap().is_none());
        let s1 = next(State::new(&identity()));
        f.write(&s1).unwrap();
        let s2 = next(s1.clone());
        f.write(&s2).unwrap();
        assert_eq!(f.load().unwrap().unwrap(), s2);
        assert_eq!(State::parse(&fs::read(f.backup_path()).unwrap()).unwrap(), s1);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains("tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn a_second_run_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let _held = StateFile::lock(dir.path(), "pi", me("up")).unwrap();
        match StateFile::lock(dir.path(), "pi", me("destroy")) {
            Err(StateFileError::Locked { message, .. }) => {
                assert!(
                    message.contains("`up`") && message.contains(&std::process::id().to_string()),
                    "{message}"
                );
                assert!(message.contains("lock id") && message.contains("s ago"), "{message}");
            }
            other => panic!("expected a lock refusal, got {:?}", other.map(|_| ())),
        }
        // Another deployment is independent.
        assert!(StateFile::lock(dir.path(), "other", me("up")).is_ok());
    }

    #[test]
    fn the_lock_is_free_again_after_release() {
        let dir = tempfile::tempdir().unwrap();
        drop(StateFile::lock(dir.path(), "pi", me("up")).unwrap());
        assert!(StateFile::lock(dir.path(), "pi", me("up")).is_ok());
    }

    #[test]
    fn corrupt_files_are_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = StateFile::path_for(dir.path(), "pi");
        for bad in [
            &b""[..],
            b"{\"format_version\": 1, \"lin",
            b"[1,2]",
            b"{\"format_version\": 7}",
        ] {
            fs::write(&path, bad).unwrap();
            let f = StateFile::lock(dir.path(), "pi", me("up")).unwrap();
            assert!(matches!(f.load(), Err(StateFileError::Refused { .. })));
            // Even a write attempt does not overwrite it.
            assert!(f.write(&next(State::new(&identity()))).is_err());
            assert_eq!(fs::read(&path).unwrap(), bad);
        }
    }

    #[test]
    fn a_file_replaced_by_another_lineage_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::lock(dir.path(), "pi", me("up")).unwrap();
        let ours = next(State::new(&identity()));
        f.write(&ours).unwrap();
        let foreign = next(next(State::new(&identity())));
        fs::write(f.path(), foreign.serialize()).unwrap();
        let err = f.write(&next(ours)).unwrap_err();
        assert!(
            matches!(
                err,
                StateFileError::Refused {
                    refusal: StateRefusal::LineageMismatch { .. },
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(State::parse(&fs::read(f.path()).unwrap()).unwrap(), foreign);
    }

    #[test]
    fn a_newer_serial_on_disk_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::lock(dir.path(), "pi", me("up")).unwrap();
        let ours = next(State::new(&identity()));
        f.write(&ours).unwrap();
        let mut theirs = ours.clone();
        theirs.serial = 10;
        fs::write(f.path(), theirs.serialize()).unwrap();
        assert!(matches!(
            f.write(&next(ours)),
            Err(StateFileError::Refused {
                refusal: StateRefusal::NewerSerial { .. },
                ..
            })
        ));
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;
    use crate::core::lock::Machine;
    use crate::state_backend::{machine, this_process};

    #[test]
    fn a_lock_file_unlinked_between_open_and_flock_is_not_trusted() {
        // A run opened the lock file, then the holder ended (unlinked it and unlocked):
        // the waiting run must lock the file the path names now, not the orphan.
        let dir = tempfile::tempdir().unwrap();
        let first = StateFile::lock(dir.path(), "pi", this_process("up")).unwrap();
        let orphan = OpenOptions::new()
            .read(true)
            .write(true)
            .open(StateFile::lock_path(dir.path(), "pi"))
            .unwrap();
        drop(first);
        assert!(!same_file(&orphan, &StateFile::lock_path(dir.path(), "pi")));
        let second = StateFile::lock(dir.path(), "pi", this_process("up")).unwrap();
        assert!(
            StateFile::lock(dir.path(), "pi", this_process("destroy")).is_err(),
            "one holder only"
        );
        drop(second);
    }

    #[test]
    fn force_unlock_of_a_local_lock() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            StateFile::force_unlock(dir.path(), "pi", "x", machine().as_ref()).unwrap(),
            LocalUnlock::NotLocked
        );
        // Held by a live process of this machine: refused, with the way out.
        let held = StateFile::lock(dir.path(), "pi", this_process("up")).unwrap();
        let id = held.lock_info().id.clone();
        let e = StateFile::force_unlock(dir.path(), "pi", &id, machine().as_ref()).unwrap_err();
        assert!(
            e.hint().unwrap().contains(&format!("kill {}", std::process::id())),
            "{e}"
        );
        let e = StateFile::force_unlock(dir.path(), "pi", "wrong", machine().as_ref()).unwrap_err();
        assert!(e.to_string().contains("not `wrong`"), "{e}");
        // Held from another machine sharing the directory: the file is unlinked and the
        // next run locks a new one while the old holder keeps its orphan.
        let elsewhere = Machine {
            boot_id: "other".into(),
            pid_namespace: "other".into(),
        };
        assert!(matches!(
            StateFile::force_unlock(dir.path(), "pi", &id, Some(&elsewhere)),
            Ok(LocalUnlock::Removed(_))
        ));
        let next = StateFile::lock(dir.path(), "pi", this_process("up")).expect("a new lock file");
        drop(held);
        assert!(
            StateFile::lock_path(dir.path(), "pi").exists(),
            "the old holder leaves the new file alone"
        );
        drop(next);
        // A leftover file nobody holds.
        std::fs::write(StateFile::lock_path(dir.path(), "pi"), b"{}").unwrap();
        assert_eq!(
            StateFile::force_unlock(dir.path(), "pi", "x", machine().as_ref()).unwrap(),
            LocalUnlock::WasFree
        );
        assert!(!StateFile::lock_path(dir.path(), "pi").exists());
    }
}

#[cfg(test)]
mod link_and_failure_tests {
    use super::*;
    use crate::core::state::Identity;

    fn state() -> State {
        let mut s = State::new(&Identity {
            deployment: "pi".into(),
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            partition: "aws".into(),
        });
        s.serial = 1;
        s
    }

    #[test]
    fn a_symlinked_state_file_is_written_through_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let target = elsewhere.path().join("pi-state.json");
        std::os::unix::fs::symlink(&target, dir.path().join("pi.json")).unwrap();
        let f = StateFile::lock(dir.path(), "pi", crate::state_backend::this_process("up")).unwrap();
        assert!(f.load().unwrap().is_none(), "a dangling link is no state yet");
        let s1 = state();
        f.write(&s1).unwrap();
        let mut s2 = s1.clone();
        s2.serial = 2;
        f.write(&s2).unwrap();
        let link = dir.path().join("pi.json");
        assert!(
            fs::symlink_metadata(&link).unwrap().file_type().is_symlink(),
            "the link was replaced"
        );
        assert_eq!(State::parse(&fs::read(&target).unwrap()).unwrap(), s2);
        assert_eq!(f.load().unwrap().unwrap(), s2);
        // The backup sits next to the file the link points to.
        let backup = elsewhere.path().join("pi-state.json.backup");
        assert_eq!(f.backup_path(), backup);
        assert_eq!(State::parse(&fs::read(&backup).unwrap()).unwrap(), s1);
        // After a destroy the document and its backup go; the link stays.
        f.remove().unwrap();
        assert!(!target.exists() && !backup.exists());
        assert!(fs::symlink_metadata(&link).is_ok(), "the link stays for the next run");
    }

    #[test]
    fn a_relative_link_is_followed_from_the_state_directory() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("real")).unwrap();
        std::os::unix::fs::symlink("real/pi.json", dir.path().join("pi.json")).unwrap();
        let f = StateFile::lock(dir.path(), "pi", crate::state_backend::this_process("up")).unwrap();
        f.write(&state()).unwrap();
        assert!(dir.path().join("real/pi.json").is_file());
        assert!(
            fs::symlink_metadata(dir.path().join("pi.json"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }

    #[test]
    fn a_write_that_fails_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = StateFile::lock(dir.path(), "pi", crate::state_backend::this_process("up")).unwrap();
        let s1 = state();
        f.write(&s1).unwrap();
        // The backup's place is taken by a non-empty directory: renaming onto it fails
        // after both temporary files were written.
        let backup = f.backup_path();
        fs::create_dir(&backup).unwrap();
        fs::write(backup.join("x"), "x").unwrap();
        let mut s2 = s1.clone();
        s2.serial = 2;
        assert!(matches!(f.write(&s2), Err(StateFileError::Io { .. })));
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert_eq!(
            f.load().unwrap().unwrap(),
            s1,
            "the file still holds the last good write"
        );
    }

    #[test]
    fn the_hint_for_a_damaged_file_names_a_backup_only_when_there_is_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = StateFile::path_for(dir.path(), "pi");
        fs::write(&path, b"{ not json").unwrap();
        let refused = |f: &StateFile| match f.load() {
            Err(e @ StateFileError::Refused { .. }) => e.hint().unwrap(),
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        };
        let f = StateFile::lock(dir.path(), "pi", crate::state_backend::this_process("up")).unwrap();
        let hint = refused(&f);
        assert!(!hint.contains(".backup"), "{hint}");
        assert!(hint.contains("no backup"), "{hint}");
        fs::write(f.backup_path(), state().serialize()).unwrap();
        let hint = refused(&f);
        assert!(hint.contains("pi.json.backup"), "{hint}");
    }
}
