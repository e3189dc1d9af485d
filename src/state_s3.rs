//! The state in S3: `s3://BUCKET/PREFIX/<deployment>.json`, guarded by the lock object
//! `PREFIX/<deployment>.lock`, for teams (several machines, CI and people).
//!
//! - Lock: the lock object is created with `If-None-Match: *` (S3's conditional write; no
//!   DynamoDB table), holding who took it (`core::lock::LockInfo`: user, host, pid, command,
//!   lock id, when). A run holds it for its whole duration and rewrites it every
//!   `lock::REFRESH_EVERY` under `If-Match` on its own ETag, so its Last-Modified shows it is
//!   alive. A second run is refused (exit 3) naming the holder and its age; a lock of a killed
//!   run is reported as stale (at once when its process was on this machine and is gone,
//!   else after `lock::STALE_AFTER` without a refresh) and is never removed silently:
//!   `pi-deploy force-unlock LOCK_ID` does that. A refresh that finds the lock changed (a
//!   force-unlock, another run) trips the fence (src/aws/fence.rs): no further AWS change.
//! - Writes: each is a compare-and-swap, `If-Match` on the ETag of the object this run last
//!   loaded or wrote (`If-None-Match: *` when there was none), after checking the lineage and
//!   serial in memory. A failed condition means someone else wrote (or deleted) the state:
//!   the write is refused, the fence tripped, the run stops (exit 3) and the object is left
//!   as the other writer left it. A write whose answer was lost and whose retry then failed
//!   the condition is recognised (the object holds exactly our bytes) and counts as done.
//! - Reads refuse a corrupt, newer-format or foreign document without touching it (the same
//!   `State::parse` / `check_owner` as the local file). The bucket is versioned: every
//!   earlier state stays readable (`state history`, `state pull --version`).
//!
//! The executor's `StateStore::save` is synchronous and called under its state mutex after
//! every transition. This store keeps that contract with a blocking bridge: its S3 calls run
//! on a private one-thread tokio runtime, and the caller waits for the answer (inside
//! `block_in_place` on a multi-thread runtime, so the caller's worker hands its other tasks
//! over). The private runtime also runs the lock refresh, independent of the run's own
//! scheduling; nothing in src/core changed.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};

use crate::aws::fence::Fence;
use crate::aws::objects::{Condition, Object, ObjectError, ObjectStore, Version};
use crate::core::lock::{self, Liveness, LockInfo};
use crate::core::resource::{ErrorClass, ResourceError};
use crate::core::state::{State, StateRefusal};
use crate::core::state_url::object_key;
use crate::state_file::{Location, StateFileError};

/// A private runtime that runs S3 calls for synchronous callers (see the module doc).
pub struct Bridge {
    rt: Option<Runtime>,
}

impl Bridge {
    pub fn new() -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("pi-deploy-state")
            .enable_all()
            .build()?;
        Ok(Self { rt: Some(rt) })
    }

    fn rt(&self) -> &Runtime {
        self.rt
            .as_ref()
            .expect("the bridge's runtime lives until it is dropped")
    }

    /// Run `f` on the private runtime and wait for its result.
    pub fn run<T: Send + 'static>(&self, f: impl Future<Output = T> + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        self.rt().spawn(async move {
            let _ = tx.send(f.await);
        });
        let wait = move || rx.recv().expect("a state call panicked");
        match Handle::try_current() {
            Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(wait),
            _ => wait(),
        }
    }

    fn spawn(&self, f: impl Future<Output = ()> + Send + 'static) -> tokio::task::JoinHandle<()> {
        self.rt().spawn(f)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // Dropping a runtime blocks; this may run inside the caller's runtime.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// One S3 state location (bucket and prefix), connected.
#[derive(Clone)]
pub struct S3Location {
    pub bridge: Arc<Bridge>,
    pub store: Arc<dyn ObjectStore>,
    pub bucket: String,
    pub prefix: String,
}

/// What `force-unlock` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Unlocked {
    Removed(LockInfo),
    NotLocked,
}

/// How often a held lock is refreshed (tests shorten it).
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub refresh_every: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            refresh_every: lock::REFRESH_EVERY,
        }
    }
}

fn remote(e: ObjectError) -> StateFileError {
    match e {
        ObjectError::Failed(e) => StateFileError::Remote(e),
        other => StateFileError::Remote(ResourceError::new(ErrorClass::Transient, other.to_string())),
    }
}

impl S3Location {
    pub fn state_key(&self, deployment: &str) -> String {
        object_key(&self.prefix, deployment, "json")
    }

    pub fn lock_key(&self, deployment: &str) -> String {
        object_key(&self.prefix, deployment, "lock")
    }

    pub fn at(&self, key: &str) -> Location {
        Location::S3(format!("s3://{}/{key}", self.bucket))
    }

    fn call<T: Send + 'static, F>(&self, f: impl FnOnce(Arc<dyn ObjectStore>) -> F) -> T
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.bridge.run(f(self.store.clone()))
    }

    pub fn get(&self, key: &str, version: Option<&str>) -> Result<Option<Object>, StateFileError> {
        let (key, version) = (key.to_string(), version.map(String::from));
        self.call(|s| async move { s.get(&key, version.as_deref()).await })
            .map_err(remote)
    }

    pub fn versions(&self, key: &str) -> Result<Vec<Version>, StateFileError> {
        let key = key.to_string();
        self.call(|s| async move { s.versions(&key).await }).map_err(remote)
    }

    /// Take the deployment's lock, or say who holds it.
    pub fn lock(
        &self,
        deployment: &str,
        info: LockInfo,
        here: Option<lock::Machine>,
        fence: Arc<Fence>,
        timing: Timing,
    ) -> Result<S3State, StateFileError> {
        let key = self.lock_key(deployment);
        let bytes = info.to_bytes();
        let mut attempt = 0u32;
        let etag = loop {
            attempt += 1;
            let (k, b) = (key.clone(), bytes.clone());
            let put = self.call(|s| async move { s.put(&k, b, Condition::IfAbsent).await });
            match put {
                Ok(w) => break w.etag,
                Err(ObjectError::ConditionFailed) => match self.get(&key, None)? {
                    // Released meanwhile: try again.
                    None if attempt < 5 => continue,
                    // Our own write, whose answer was lost and whose retry met it.
                    Some(obj) if obj.bytes == bytes => break obj.etag,
                    Some(obj) => return Err(self.held(deployment, &obj, here.as_ref())),
                    None => return Err(remote(ObjectError::Busy)),
                },
                Err(ObjectError::Busy) if attempt < 5 => {
                    std::thread::sleep(Duration::from_millis(200 * u64::from(attempt)));
                }
                Err(ObjectError::Failed(e)) => return Err(StateFileError::Remote(lock_failure(self, e))),
                Err(e) => return Err(remote(e)),
            }
        };
        let held = Arc::new(HeldLock {
            key,
            info,
            current: Mutex::new(Seen {
                etag,
                bytes: Arc::from(bytes),
            }),
            lost: AtomicBool::new(false),
        });
        let refresher = self.bridge.spawn(refresh(
            self.store.clone(),
            held.clone(),
            fence.clone(),
            deployment.to_string(),
            timing.refresh_every,
        ));
        HELD.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((self.clone(), held.clone(), refresher.abort_handle()));
        Ok(S3State {
            loc: self.clone(),
            deployment: deployment.to_string(),
            key: self.state_key(deployment),
            held,
            refresher: Some(refresher),
            last: Mutex::new(Last::Unknown),
            conflict: Mutex::new(None),
            fence,
        })
    }

    /// The refusal for a lock someone else holds.
    fn held(&self, deployment: &str, obj: &Object, here: Option<&lock::Machine>) -> StateFileError {
        let info = LockInfo::parse(&obj.bytes);
        let now = Utc::now();
        let since_write = obj.last_modified.map(|t| (now - t).to_std().unwrap_or_default());
        let liveness = lock::judge(info.as_ref(), since_write, here, crate::state_backend::pid_exists);
        let message = lock::held_message(deployment, info.as_ref(), since_write, now, &liveness);
        let url = self.url();
        let id = info.as_ref().map(|i| i.id.clone()).filter(|id| !id.is_empty());
        let unlock = format!(
            "pi-deploy force-unlock {} --deployment {deployment} --state {url}",
            id.as_deref().unwrap_or("LOCK_ID")
        );
        let hint = match liveness {
            l if l.is_stale() => format!(
                "if no run of `{deployment}` is going on any more, remove the lock with `{unlock}`; it is never removed automatically"
            ),
            Liveness::Unknown => format!(
                "the lock object s3://{}/{} is not a pi-deploy lock document; if no run is going on, delete it by hand",
                self.bucket,
                self.lock_key(deployment)
            ),
            _ => format!(
                "wait for that run to finish; if it was killed, the lock is reported stale after {} without a refresh (at once on its own machine), then `{unlock}` removes it",
                lock::human(lock::STALE_AFTER)
            ),
        };
        StateFileError::Locked { message, hint }
    }

    pub fn url(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// Remove the lock named `lock_id`, only if it is still the one read (`If-Match`): a
    /// refresh of a live run in between makes this refuse. A lock that looks alive is removed
    /// only when `even_if_alive`.
    pub fn force_unlock(
        &self,
        deployment: &str,
        lock_id: &str,
        here: Option<&lock::Machine>,
        even_if_alive: bool,
    ) -> Result<Unlocked, StateFileError> {
        let key = self.lock_key(deployment);
        let Some(obj) = self.get(&key, None)? else {
            return Ok(Unlocked::NotLocked);
        };
        let info = LockInfo::parse(&obj.bytes);
        let Some(info) = info else {
            return Err(StateFileError::Locked {
                message: format!("s3://{}/{key} is not a pi-deploy lock document", self.bucket),
                hint: "check what wrote it; if no run is going on, delete the object by hand".into(),
            });
        };
        if info.id != lock_id {
            return Err(wrong_id(deployment, &info, lock_id));
        }
        let now = Utc::now();
        let since_write = obj.last_modified.map(|t| (now - t).to_std().unwrap_or_default());
        let liveness = lock::judge(Some(&info), since_write, here, crate::state_backend::pid_exists);
        if !liveness.is_stale() && !even_if_alive {
            return Err(alive(deployment, &info, since_write));
        }
        let etag = obj.etag.clone();
        match self.call(|s| async move { s.delete(&key, Some(&etag)).await }) {
            Ok(()) => Ok(Unlocked::Removed(info)),
            Err(ObjectError::ConditionFailed) => Err(StateFileError::Locked {
                message: format!(
                    "the lock of deployment `{deployment}` changed while it was being removed: its run is alive and refreshed it"
                ),
                hint: "wait for that run to finish".into(),
            }),
            Err(e) => Err(remote(e)),
        }
    }
}

pub(crate) fn wrong_id(deployment: &str, info: &LockInfo, given: &str) -> StateFileError {
    StateFileError::Locked {
        message: format!(
            "deployment `{deployment}` is locked under lock id `{}`, not `{given}`: {}",
            info.id,
            info.describe()
        ),
        hint:
            "pass the lock id that the refusal of your run named; a different id means another run holds the lock now"
                .into(),
    }
}

pub(crate) fn alive(deployment: &str, info: &LockInfo, since_write: Option<Duration>) -> StateFileError {
    let fresh = since_write
        .map(|a| format!(", last written {} ago", lock::human(a)))
        .unwrap_or_default();
    StateFileError::Locked {
        message: format!(
            "the lock of deployment `{deployment}` does not look stale: {}{fresh}",
            info.describe()
        ),
        hint: "removing a live run's lock lets a second run act beside it; make sure that run is gone, then pass --yes to remove the lock anyway".into(),
    }
}

/// A failure to write the lock: a missing bucket or the wrong region are named with a fix.
fn lock_failure(loc: &S3Location, e: ResourceError) -> ResourceError {
    let hint = if e.class == ErrorClass::NotFound {
        Some(format!(
            "the bucket {} does not exist: create it with `pi-deploy state init --state {}`",
            loc.bucket,
            loc.url()
        ))
    } else if e.code.as_deref().is_some_and(crate::aws::error::is_wrong_region) {
        Some("the bucket is in another region: set [state] region in the config".into())
    } else {
        None
    };
    match hint {
        Some(h) => e.with_hint(h),
        None => e,
    }
}

struct HeldLock {
    key: String,
    info: LockInfo,
    /// The lock document this run last wrote, and its ETag.
    current: Mutex<Seen>,
    lost: AtomicBool,
}

/// An object version this run wrote or read: its ETag and its exact bytes.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    etag: String,
    bytes: Arc<[u8]>,
}

/// How many times one write or delete is retried on the object's current ETag after a
/// failed condition that [`unchanged_since`] explains.
const REBASES: u32 = 3;

/// After a failed `If-Match`: the object's current ETag when the object still holds
/// exactly the bytes this run last wrote or read (`ours`), else `None`.
///
/// A failed condition normally means another writer. But the ETag a run holds can fail to
/// match the object it wrote without anyone writing in between: moto 5.2.5 computes an
/// object's ETag lazily from a buffer that a concurrent GetObject moves, so a PutObject
/// answered while someone reads the object can return an ETag the object does not have
/// (`tests/emu/probe_etag_race.py` shows it; it stopped a crash-test run with exit 3, see
/// docs/RELIABILITY.md). The comparison that matters is of the content: when the object
/// still holds byte for byte what this run based its change on, no other writer's change
/// can be lost by writing over it, and a retry on its current ETag is as safe as the
/// first attempt. (On S3 with MD5 ETags an identical rewrite keeps the ETag, so this is
/// exactly what the condition itself already accepts.)
fn unchanged_since(now: Option<&Object>, ours: &[u8]) -> Option<String> {
    now.filter(|obj| obj.bytes == ours).map(|obj| obj.etag.clone())
}

/// The current ETag of the lock object while it is still this run's lock: the bytes this
/// run last wrote (see [`unchanged_since`]), or a lock document with this run's lock id. The
/// second is this run's own refresh whose PutObject reached S3 after the refresher was
/// stopped (an aborted task does not wait for a request already sent, so its answer never
/// updated `current`): without it the release failed its condition and left the lock of a
/// finished run (`destroy::killed_destroy_finishes_on_the_next_run` with the state in S3,
/// refused as locked by the `up` before it). A lock id is this run's alone: another run's
/// lock, after a takeover, has its own.
fn still_ours(now: Option<&Object>, last: &Seen, lock_id: &str) -> Option<String> {
    unchanged_since(now, &last.bytes).or_else(|| {
        now.filter(|obj| LockInfo::parse(&obj.bytes).is_some_and(|info| info.id == lock_id))
            .map(|obj| obj.etag.clone())
    })
}

/// Delete the lock only if it is still this run's (`If-Match`, on the object's current ETag
/// when its ETag was misreported or this run's last refresh landed late, see [`still_ours`]).
async fn delete_own_lock(store: &dyn ObjectStore, held: &HeldLock) -> Result<(), ObjectError> {
    let mut current = held.current.lock().unwrap().clone();
    for _ in 0..REBASES {
        match store.delete(&held.key, Some(&current.etag)).await {
            Err(ObjectError::ConditionFailed) => {
                let now = store.get(&held.key, None).await?;
                let Some(etag) = still_ours(now.as_ref(), &current, &held.info.id) else {
                    return Err(ObjectError::ConditionFailed);
                };
                current.etag = etag;
            }
            other => return other,
        }
    }
    store.delete(&held.key, Some(&current.etag)).await
}

/// A lock this process holds: where, the lock, and its refresher.
type Held = (S3Location, Arc<HeldLock>, tokio::task::AbortHandle);

/// The S3 locks this process holds, for [`release_held_locks`].
static HELD: Mutex<Vec<Held>> = Mutex::new(Vec::new());

/// How long an exit waits for the release of one lock.
const RELEASE_ON_EXIT_WITHIN: Duration = Duration::from_secs(5);

/// Release the S3 locks this process holds, before an exit that skips destructors (a
/// second Ctrl-C or SIGTERM, or one that came when nothing could drain), as `Drop` would:
/// only a lock that is still ours (`If-Match`). A lock that cannot be released in a few
/// seconds stays, and the message names the `force-unlock` that removes it.
pub fn release_held_locks() {
    let held: Vec<Held> = HELD.lock().unwrap_or_else(|e| e.into_inner()).drain(..).collect();
    for entry in held {
        if let Err(e) = release_now(&entry) {
            eprintln!(
                "the S3 lock {} was not released ({e}); remove it with `pi-deploy force-unlock {}` once no run is going on",
                entry.1.key, entry.1.info.id
            );
        }
    }
}

/// Stop the refresh, then delete the lock if it is still ours. From then on the lock
/// counts as lost: a write still coming is refused.
fn release_now((loc, held, refresher): &Held) -> Result<(), String> {
    refresher.abort();
    if held.lost.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    let (store, held) = (loc.store.clone(), held.clone());
    let deleted = loc
        .bridge
        .run(async move { tokio::time::timeout(RELEASE_ON_EXIT_WITHIN, delete_own_lock(store.as_ref(), &held)).await });
    match deleted {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", RELEASE_ON_EXIT_WITHIN.as_secs())),
    }
}

/// Rewrites the lock every `every` under `If-Match` on its last ETag. A failed condition
/// means the lock was removed or taken over: the run must stop acting.
async fn refresh(
    store: Arc<dyn ObjectStore>,
    held: Arc<HeldLock>,
    fence: Arc<Fence>,
    deployment: String,
    every: Duration,
) {
    loop {
        tokio::time::sleep(every).await;
        let mut info = held.info.clone();
        info.refreshed_at = Some(Utc::now());
        let bytes: Arc<[u8]> = Arc::from(info.to_bytes());
        let mut rebased = 0;
        loop {
            let last = held.current.lock().unwrap().clone();
            let put = store
                .put(&held.key, bytes.to_vec(), Condition::IfMatch(last.etag.clone()))
                .await;
            let etag = match put {
                Ok(w) => w.etag,
                Err(ObjectError::ConditionFailed) => match store.get(&held.key, None).await {
                    // Our own write, whose answer was lost and whose retry met it.
                    Ok(Some(obj)) if *obj.bytes == *bytes => obj.etag,
                    Ok(now) => match unchanged_since(now.as_ref(), &last.bytes) {
                        // Still our last lock document, under another ETag than the one held.
                        Some(etag) if rebased < REBASES => {
                            rebased += 1;
                            held.current.lock().unwrap().etag = etag;
                            continue;
                        }
                        _ => {
                            held.lost.store(true, Ordering::SeqCst);
                            fence.trip(format!(
                                "the lock of deployment `{deployment}` (lock id {}) was removed or taken over by another run while this run held it",
                                held.info.id
                            ));
                            return;
                        }
                    },
                    Err(e) => {
                        tracing::warn!("could not read the lock back after a failed refresh: {e}");
                        break;
                    }
                },
                Err(e) => {
                    tracing::warn!("could not refresh the lock of deployment `{deployment}`: {e}; trying again");
                    break;
                }
            };
            *held.current.lock().unwrap() = Seen {
                etag,
                bytes: bytes.clone(),
            };
            break;
        }
    }
}

/// What the run knows of the state object.
#[derive(Clone, Debug, PartialEq)]
enum Last {
    /// Not read yet.
    Unknown,
    /// Read: there was none (or this run deleted it).
    Absent,
    /// The version this run last read or wrote, with its exact bytes.
    Present {
        seen: Seen,
        lineage: uuid::Uuid,
        serial: u64,
    },
}

/// One deployment's S3 state, locked for as long as this value lives.
pub struct S3State {
    loc: S3Location,
    deployment: String,
    key: String,
    held: Arc<HeldLock>,
    refresher: Option<tokio::task::JoinHandle<()>>,
    last: Mutex<Last>,
    /// Set by the first refused write: every later write is refused too.
    conflict: Mutex<Option<String>>,
    fence: Arc<Fence>,
}

impl S3State {
    pub fn location(&self) -> Location {
        self.loc.at(&self.key)
    }

    pub fn lock_info(&self) -> &LockInfo {
        &self.held.info
    }

    pub fn s3(&self) -> &S3Location {
        &self.loc
    }

    /// The recorded state, `None` when there is no object. Never modifies the object.
    pub fn load(&self) -> Result<Option<State>, StateFileError> {
        let Some(obj) = self.loc.get(&self.key, None)? else {
            *self.last.lock().unwrap() = Last::Absent;
            return Ok(None);
        };
        let state = State::parse(&obj.bytes).map_err(|refusal| StateFileError::Refused {
            at: self.location(),
            refusal,
        })?;
        *self.last.lock().unwrap() = Last::Present {
            seen: Seen {
                etag: obj.etag,
                bytes: Arc::from(obj.bytes),
            },
            lineage: state.lineage,
            serial: state.serial,
        };
        Ok(Some(state))
    }

    /// The object's bytes as they are now (no lock needed to read a whole object).
    pub fn load_bytes(&self) -> Result<Option<Object>, StateFileError> {
        self.loc.get(&self.key, None)
    }

    fn refuse(&self, detail: String) -> StateFileError {
        self.fence.trip(format!("the state {}: {detail}", self.location()));
        *self.conflict.lock().unwrap() = Some(detail.clone());
        StateFileError::Conflict {
            at: self.location(),
            detail,
        }
    }

    /// What the object holds now, to name it in a refusal.
    fn describe_current(&self) -> String {
        match self.loc.get(&self.key, None) {
            Ok(None) => "it was deleted".into(),
            Ok(Some(obj)) => match State::parse(&obj.bytes) {
                Ok(s) => format!("it now has serial {} and lineage {}", s.serial, s.lineage),
                Err(e) => format!("it now holds something else ({e})"),
            },
            Err(e) => format!("it could not be read back ({e})"),
        }
    }

    /// A compare-and-swap of the whole document.
    pub fn write(&self, state: &State) -> Result<(), StateFileError> {
        self.write_bytes(state.serialize(), state.lineage, state.serial, false)
    }

    /// Write these exact bytes (a document of `lineage` at `serial`), conditionally.
    /// `any_serial` lets `state push --force` put back an older serial of the same lineage.
    pub fn write_bytes(
        &self,
        bytes: Vec<u8>,
        lineage: uuid::Uuid,
        serial: u64,
        any_serial: bool,
    ) -> Result<(), StateFileError> {
        if let Some(detail) = self.conflict.lock().unwrap().clone() {
            return Err(StateFileError::Conflict {
                at: self.location(),
                detail,
            });
        }
        if self.held.lost.load(Ordering::SeqCst) {
            return Err(StateFileError::LockLost {
                message: format!(
                    "this run lost the lock of deployment `{}` (lock id {}): it was removed or taken over",
                    self.deployment, self.held.info.id
                ),
            });
        }
        let last = self.last.lock().unwrap().clone();
        let mut condition = match &last {
            Last::Present {
                seen,
                lineage: l,
                serial: s,
            } => {
                if *l != lineage {
                    return Err(self.refuse(
                        StateRefusal::LineageMismatch {
                            found: *l,
                            expected: lineage,
                        }
                        .to_string(),
                    ));
                }
                if serial <= *s && !any_serial {
                    return Err(self.refuse(format!(
                        "this run's serial {serial} is not newer than the serial {s} it loaded"
                    )));
                }
                Condition::IfMatch(seen.etag.clone())
            }
            Last::Absent | Last::Unknown => Condition::IfAbsent,
        };
        let key = self.key.clone();
        let (mut attempt, mut rebased) = (0u32, 0u32);
        let written = loop {
            attempt += 1;
            let (k, b, c) = (key.clone(), bytes.clone(), condition.clone());
            match self.loc.call(|s| async move { s.put(&k, b, c).await }) {
                Ok(w) => break w.etag,
                Err(ObjectError::ConditionFailed) => {
                    let now = self.loc.get(&key, None)?;
                    // Our own write, whose answer was lost and whose retry met it.
                    if let Some(obj) = &now
                        && obj.bytes == bytes
                    {
                        break obj.etag.clone();
                    }
                    // Still the version this run last read or wrote, under another ETag
                    // than the one it held: nobody else wrote (see `unchanged_since`).
                    let unchanged = match &last {
                        Last::Present { seen, .. } => unchanged_since(now.as_ref(), &seen.bytes),
                        _ => None,
                    };
                    match unchanged {
                        Some(etag) if rebased < REBASES => {
                            rebased += 1;
                            tracing::debug!(
                                "the state object holds what this run last wrote under another ETag than the one it held; writing again on {etag}"
                            );
                            condition = Condition::IfMatch(etag);
                        }
                        _ => {
                            let expected = match &last {
                                Last::Present { serial, .. } => {
                                    format!("the version of serial {serial} that it last read or wrote")
                                }
                                _ => "no state object, as it found none".into(),
                            };
                            return Err(self.refuse(format!(
                                "it changed behind this run's back: the run expected {expected}, but {}",
                                self.describe_current()
                            )));
                        }
                    }
                }
                Err(ObjectError::Busy) if attempt < 5 => {
                    std::thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
                }
                Err(e) => return Err(remote(e)),
            }
        };
        *self.last.lock().unwrap() = Last::Present {
            seen: Seen {
                etag: written,
                bytes: Arc::from(bytes),
            },
            lineage,
            serial,
        };
        Ok(())
    }

    /// After a complete destroy: delete the state object (a delete marker in the versioned
    /// bucket; the history stays), only if it is still the version this run wrote.
    pub fn remove(&self) -> Result<(), StateFileError> {
        let last = self.last.lock().unwrap().clone();
        let Last::Present { mut seen, .. } = last else {
            return Ok(());
        };
        let mut rebased = 0;
        let removed = loop {
            let (key, etag) = (self.key.clone(), seen.etag.clone());
            match self.loc.call(|s| async move { s.delete(&key, Some(&etag)).await }) {
                Err(ObjectError::ConditionFailed) if rebased < REBASES => {
                    // Still the version this run wrote, under another ETag (`unchanged_since`)?
                    match unchanged_since(self.loc.get(&self.key, None)?.as_ref(), &seen.bytes) {
                        Some(etag) => {
                            rebased += 1;
                            seen.etag = etag;
                        }
                        None => break Err(ObjectError::ConditionFailed),
                    }
                }
                other => break other,
            }
        };
        match removed {
            Ok(()) => {
                *self.last.lock().unwrap() = Last::Absent;
                Ok(())
            }
            Err(ObjectError::ConditionFailed) => Err(self.refuse(format!(
                "it changed behind this run's back before its removal: {}",
                self.describe_current()
            ))),
            Err(e) => Err(remote(e)),
        }
    }

    /// The refusal recorded by a failed write, if any.
    pub fn conflict(&self) -> Option<String> {
        self.conflict.lock().unwrap().clone()
    }
}

impl Drop for S3State {
    /// Release the lock, only if it is still ours (`If-Match`).
    fn drop(&mut self) {
        HELD.lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(_, h, _)| !Arc::ptr_eq(h, &self.held));
        if let Some(r) = self.refresher.take() {
            r.abort();
        }
        if self.held.lost.load(Ordering::SeqCst) {
            return;
        }
        let held = self.held.clone();
        let released = self
            .loc
            .call(|s| async move { delete_own_lock(s.as_ref(), &held).await });
        if let Err(e) = released {
            tracing::warn!(
                "the lock of deployment `{}` was not released ({e}); remove it with `pi-deploy force-unlock {}` once no run is going on",
                self.deployment,
                self.held.info.id
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::objects::fake::{FakeBucket, Script, WRONG_ETAG};
    use crate::core::lock::Machine;
    use crate::core::state::Identity;

    fn identity() -> Identity {
        Identity {
            deployment: "pi".into(),
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            partition: "aws".into(),
        }
    }

    fn location(bucket: Arc<FakeBucket>) -> S3Location {
        S3Location {
            bridge: Arc::new(Bridge::new().unwrap()),
            store: bucket,
            bucket: "team-state".into(),
            prefix: "pi".into(),
        }
    }

    fn here() -> Machine {
        Machine {
            boot_id: "boot".into(),
            pid_namespace: "ns".into(),
        }
    }

    fn info(pid: u32, command: &str) -> LockInfo {
        LockInfo {
            id: uuid::Uuid::new_v4().to_string(),
            user: "alice".into(),
            host: "laptop".into(),
            pid,
            command: command.into(),
            created_at: Utc::now(),
            refreshed_at: None,
            machine: Some(here()),
            version: "test".into(),
        }
    }

    fn lock(loc: &S3Location, pid: u32, fence: &Arc<Fence>) -> Result<S3State, StateFileError> {
        loc.lock("pi", info(pid, "up"), Some(here()), fence.clone(), Timing::default())
    }

    fn next(mut s: State) -> State {
        s.serial += 1;
        s
    }

    #[test]
    fn a_second_holder_is_refused_naming_the_first_and_the_lock_is_freed_on_drop() {
        let bucket = Arc::new(FakeBucket::default());
        let loc = location(bucket.clone());
        let fence = Arc::new(Fence::default());
        let first = lock(&loc, std::process::id(), &fence).unwrap();
        let id = first.lock_info().id.clone();
        match lock(&loc, 7, &fence) {
            Err(StateFileError::Locked { message, hint }) => {
                assert!(
                    message.contains("`up`") && message.contains(&id) && message.contains("alice"),
                    "{message}"
                );
                assert!(message.contains("last written 0 s ago"), "{message}");
                assert!(
                    !message.contains("stale") && hint.contains("wait"),
                    "{message} / {hint}"
                );
            }
            other => panic!("expected a lock refusal, got {:?}", other.map(|_| ())),
        }
        drop(first);
        assert!(bucket.bytes("pi/pi.lock").is_none(), "released");
        assert!(lock(&loc, 8, &fence).is_ok());
    }

    #[test]
    fn an_exit_that_skips_destructors_releases_the_lock_and_a_later_write_is_refused() {
        let bucket = Arc::new(FakeBucket::default());
        let loc = location(bucket.clone());
        let fence = Arc::new(Fence::default());
        let st = lock(&loc, std::process::id(), &fence).unwrap();
        let entry = {
            let held = HELD.lock().unwrap();
            let e = held
                .iter()
                .find(|(_, h, _)| Arc::ptr_eq(h, &st.held))
                .expect("registered");
            (e.0.clone(), e.1.clone(), e.2.clone())
        };
        // What `release_held_locks` does for each lock, on a signal's immediate exit.
        release_now(&entry).unwrap();
        assert!(bucket.bytes("pi/pi.lock").is_none(), "released");
        assert!(matches!(
            st.write(&next(State::new(&identity()))),
            Err(StateFileError::LockLost { .. })
        ));
        // Released once only; the drop leaves a new holder's lock alone.
        let other = lock(&loc, 9, &Arc::new(Fence::default())).unwrap();
        release_now(&entry).unwrap();
        drop(st);
        assert!(bucket.bytes("pi/pi.lock").is_some(), "the new holder's lock stays");
        drop(other);
        assert!(
            !HELD.lock().unwrap().iter().any(|(_, h, _)| Arc::ptr_eq(h, &entry.1)),
            "a dropped state leaves the registry"
        );
    }

    #[test]
    fn a_killed_holder_is_reported_stale_and_only_force_unlock_with_its_id_removes_it() {
        let bucket = Arc::new(FakeBucket::default());
        let loc = location(bucket.clone());
        let fence = Arc::new(Fence::default());
        // A run on this machine killed with SIGKILL: its lock stays, its pid is gone
        // (pid_max is at most 2^22).
        let dead = info(2_000_000_000, "up");
        let id = dead.id.clone();
        bucket.overwrite("pi/pi.lock", &dead.to_bytes());
        let Err(StateFileError::Locked { message, hint }) = lock(&loc, 9, &fence) else {
            panic!("expected a refusal")
        };
        assert!(
            message.contains("no longer exists") && message.contains("stale"),
            "{message}"
        );
        assert!(
            hint.contains(&format!("force-unlock {id} --deployment pi --state s3://team-state/pi")),
            "{hint}"
        );
        assert!(bucket.bytes("pi/pi.lock").is_some(), "never removed silently");
        assert!(matches!(
            loc.force_unlock("pi", "another-id", Some(&here()), false),
            Err(StateFileError::Locked { .. })
        ));
        assert!(matches!(
            loc.force_unlock("pi", &id, Some(&here()), false),
            Ok(Unlocked::Removed(_))
        ));
        assert!(matches!(
            loc.force_unlock("pi", &id, Some(&here()), false),
            Ok(Unlocked::NotLocked)
        ));
        assert!(lock(&loc, 10, &fence).is_ok());
    }

    #[test]
    fn a_silent_lock_of_another_machine_turns_stale_after_the_documented_time() {
        let bucket = Arc::new(FakeBucket::default());
        let loc = location(bucket.clone());
        let fence = Arc::new(Fence::default());
        let mut other = info(1, "destroy");
        other.machine = Some(Machine {
            boot_id: "elsewhere".into(),
            pid_namespace: "ns".into(),
        });
        bucket.overwrite("pi/pi.lock", &other.to_bytes());
        bucket.age("pi/pi.lock", chrono::Duration::seconds(60));
        let Err(StateFileError::Locked { message, .. }) = lock(&loc, 2, &fence) else {
            panic!()
        };
        assert!(
            !message.contains("stale"),
            "60 s is within the refresh budget: {message}"
        );
        // Force-unlock of a lock that looks alive needs --yes.
        assert!(matches!(
            loc.force_unlock("pi", &other.id, Some(&here()), false),
            Err(StateFileError::Locked { hint, .. }) if hint.contains("--yes")
        ));
        bucket.age("pi/pi.lock", chrono::Duration::seconds(61));
        let Err(StateFileError::Locked { message, .. }) = lock(&loc, 2, &fence) else {
            panic!()
        };
        assert!(
            message.contains("not refreshed for 2 min 1 s") && message.contains("stale"),
            "{message}"
        );
    }

    #[test]
    fn conflicting_lock_writes_are_retried_and_a_lost_answer_is_recognised() {
        let bucket = Arc::new(FakeBucket::default());
        let loc = location(bucket.clone());
        let fence = Arc::new(Fence::default());
        bucket.script("pi/pi.lock", Script::Busy);
        bucket.script("pi/pi.lock", Script::LostAnswer);
        let held = lock(&loc, 3, &fence).expect("409 retried; our own lost write recognised");
        assert_eq!(
            LockInfo::parse(&bucket.bytes("pi/pi.lock").unwrap()).unwrap().id,
            held.lock_info().id
        );
    }

    #[test]
    fn every_write_is_a_compare_and_swap_and_a_change_behind_the_run_stops_it() {
        let bucket = Arc::new(FakeBucket::default());
        let loc = location(bucket.clone());
        let fence = Arc::new(Fence::default());
        let st = lock(&loc, 3, &fence).unwrap();
        assert_eq!(st.load().unwrap(), None);
        let s1 = next(State::new(&identity()));
        st.write(&s1).unwrap();
        let s2 = next(s1.clone());
        st.write(&s2).unwrap();
        assert_eq!(State::parse(&bucket.bytes("pi/pi.json").unwrap()).unwrap(), s2);
        // Another writer, e.g. a second run let in by a force-unlock.
        let mut theirs = s2.clone();
        theirs.serial = 40;
        bucket.overwrite("pi/pi.json", &theirs.serialize());
        let err = st.write(&next(s2.clone())).unwrap_err();
        assert!(matches!(err, StateFileError::Conflict { .. }), "{err}");
        assert!(
            err.to_string().contains("behind this run's back") && err.to_string().contains("serial 40"),
            "{err}"
        );
        assert_eq!(
            State::parse(&bucket.bytes("pi/pi.json").unwrap()).unwrap(),
            theirs,
            "left untouched"
        );
        assert!(fence.reason().is_some(), "no further AWS change");
        // Every later write is refused without a call.
        let calls = bucket.calls.lock().unwrap().len();
        assert!(st.write(&next(next(s2))).is_err());
        assert_eq!(bucket.calls.lock().unwrap().len(), calls);
    }

    #[test]
    fn a_state_created_or_deleted_behind_the_run_is_a_conflict_too() {
        let bucket = Arc::new(FakeBucket::default());
        let loc = location(bucket.clone());
        let fence = Arc::new(Fence::default());
        let st = lock(&loc, 3, &fence).unwrap();
        assert_eq!(st.load().unwrap(), None);
        bucket.overwrite("pi/pi.json", &next(State::new(&identity())).serialize());
        let err = st.write(&next(State::new(&identity()))).unwrap_err();
        assert!(err.to_string().contains("expected no state object"), "{err}");
        drop(st);

        let fence = Arc::new(Fence::default());
        let st = lock(&loc, 3, &fence).unwrap();
        let s = st.load().unwrap().unwrap();
        futures::executor::block_on(bucket.delete("pi/pi.json", None)).unwrap();
        let err = st.write(&next(s)).unwrap_err();
        assert!(err.to_string().contains("it was deleted"), "{err}");
    }

    #[test]
    fn a_lost_answer_of_a_state_write_counts_as_written() {
        let bucket = Arc::new(FakeBucket::default());
        let loc = location(bucket.clone());
        let fence = Arc::new(Fence::default());
        let st = lock(&loc, 3, &fence).unwrap();
        st.load().unwrap();
        let s1 = next(State::new(&identity()));
        st.write(&s1).unwrap();
        bucket.script("pi/pi.json", Script::LostAnswer);
        let s2 = next(s1);
        st.write(&s2).unwrap();
        st.write(&next(s2)).expect("the ETag of the lost write was taken");
        assert!(fence.reason().is_none());
    }

    #[test]
    fn lineage_and_serial_are_checked_before_any_call() {
        let bucket = Arc::new(FakeBucket::default());
        let loc = location(bucket.clone());
        let st = lock(&loc, 3, &Arc::new(Fence::default())).unwrap();
        st.load().unwrap();
        let s1 = next(State::new(&identity()));
        st.write(&s1).unwrap();
        let calls = bucket.calls.lock().unwrap().len();
        assert!(st.write(&s1).unwrap_err().to_string().contains("not newer"));
        assert_eq!(bucket.calls.lock().unwrap().len(), calls);
        let st2 = lock(
            &location(Arc::new(FakeBucket::default())),
            3,
            &Arc::new(Fence::default()),
        )
        .unwrap();
        st2.load().unwrap();
        st2.write(&s1).unwrap();
        let other = next(next(State::new(&identity())));
        assert!(matches!(st2.write(&other), Err(StateFileError::Conflict { .. })));
    }

    #[test]
    fn corrupt_and_newer_objects_are_refused_and_untouched() {
        for bad in [&b""[..], b"{\"format_version\": 1, \"lin", b"{\"format_version\": 7}"] {
            let bucket = Arc::new(FakeBucket::default());
            bucket.overwrite("pi/pi.json", bad);
            let st = lock(&location(bucket.clone()), 3, &Arc::new(Fence::default())).unwrap();
            assert!(matches!(st.load(), Err(StateFileError::Refused { .. })));
            assert!(st.write(&next(State::new(&identity()))).is_err());
            assert_eq!(bucket.bytes("pi/pi.json").unwrap(), bad);
        }
    }

    #[test]
    fn a_removed_lock_is_noticed_by_the_refresh_and_stops_the_run() {
        let bucket = Arc::new(FakeBucket::default());
        let loc = location(bucket.clone());
        let fence = Arc::new(Fence::default());
        let st = loc
            .lock(
                "pi",
                info(3, "up"),
                Some(here()),
                fence.clone(),
                Timing {
                    refresh_every: Duration::from_millis(20),
                },
            )
            .unwrap();
        st.load().unwrap();
        let first = bucket.bytes("pi/pi.lock").unwrap();
        std::thread::sleep(Duration::from_millis(120));
        let refreshed = bucket.bytes("pi/pi.lock").unwrap();
        assert_ne!(first, refreshed, "the lock is rewritten while held");
        assert!(fence.reason().is_none());
        // force-unlock by someone else, and a second run takes the lock.
        futures::executor::block_on(bucket.delete("pi/pi.lock", None)).unwrap();
        let _other = loc.lock(
            "pi",
            info(4, "up"),
            Some(here()),
            Arc::new(Fence::default()),
            Timing::default(),
        );
        std::thread::sleep(Duration::from_millis(120));
        assert!(
            fence.reason().is_some_and(|r| r.contains("removed or taken over")),
            "{:?}",
            fence.reason()
        );
        let err = st.write(&next(State::new(&identity()))).unwrap_err();
        assert!(matches!(err, StateFileError::LockLost { .. }), "{err}");
        drop(st);
        assert!(
            bucket.bytes("pi/pi.lock").is_some(),
            "the other run's lock is not released by the loser"
        );
    }

    /// The crash test's exit 3 at k = 135 (docs/RELIABILITY.md): moto answered a state write
    /// with an ETag the object did not have, and the next write's `If-Match` failed with no
    /// other writer. The object still holds exactly what the run wrote: not a conflict.
    #[test]
    fn a_write_answered_with_an_etag_the_object_does_not_have_is_not_a_conflict() {
        let bucket = Arc::new(FakeBucket::default());
        let loc = location(bucket.clone());
        let fence = Arc::new(Fence::default());
        let st = lock(&loc, 3, &fence).unwrap();
        st.load().unwrap();
        let s1 = next(State::new(&identity()));
        st.write(&s1).unwrap();
        bucket.script("pi/pi.json", Script::WrongEtag);
        let s2 = next(s1);
        st.write(&s2).unwrap();
        assert_ne!(bucket.etag("pi/pi.json").as_deref(), Some(WRONG_ETAG));
        let s3 = next(s2);
        st.write(&s3)
            .expect("the object holds what this run wrote: written on its real ETag");
        assert_eq!(State::parse(&bucket.bytes("pi/pi.json").unwrap()).unwrap(), s3);
        assert!(fence.reason().is_none() && st.conflict().is_none());

        // The same after a read answered with a wrong ETag.
        drop(st);
        let st = lock(&loc, 3, &fence).unwrap();
        bucket.misreport_next_read("pi/pi.json");
        let s = st.load().unwrap().unwrap();
        let s4 = next(s);
        st.write(&s4).expect("the object is the version this run read");
        assert_eq!(State::parse(&bucket.bytes("pi/pi.json").unwrap()).unwrap(), s4);

        // A destroy's removal too.
        bucket.script("pi/pi.json", Script::WrongEtag);
        st.write(&next(s4.clone())).unwrap();
        st.remove().expect("removed on the object's real ETag");
        assert!(bucket.bytes("pi/pi.json").is_none());
        assert!(fence.reason().is_none());
    }

    /// Content, not the ETag, says whether someone else wrote: a real change behind the
    /// run's back is refused all the same when the run's ETag was wrong.
    #[test]
    fn after_a_wrong_etag_a_change_behind_the_run_is_still_refused() {
        let bucket = Arc::new(FakeBucket::default());
        let loc = location(bucket.clone());
        let fence = Arc::new(Fence::default());
        let st = lock(&loc, 3, &fence).unwrap();
        st.load().unwrap();
        let s1 = next(State::new(&identity()));
        bucket.script("pi/pi.json", Script::WrongEtag);
        st.write(&s1).unwrap();
        // Same lineage, another serial: another writer's document.
        let mut theirs = next(s1.clone());
        theirs.serial = 40;
        bucket.overwrite("pi/pi.json", &theirs.serialize());
        let err = st.write(&next(s1.clone())).unwrap_err();
        assert!(matches!(err, StateFileError::Conflict { .. }), "{err}");
        assert!(err.to_string().contains("serial 40"), "{err}");
        assert_eq!(
            State::parse(&bucket.bytes("pi/pi.json").unwrap()).unwrap(),
            theirs,
            "left untouched"
        );
        assert!(fence.reason().is_some());
        // A removal after such a change is refused as well.
        let fence = Arc::new(Fence::default());
        drop(st);
        let st = lock(&loc, 3, &fence).unwrap();
        st.load().unwrap();
        bucket.overwrite("pi/pi.json", &next(theirs.clone()).serialize());
        assert!(matches!(st.remove(), Err(StateFileError::Conflict { .. })));
        assert!(bucket.bytes("pi/pi.json").is_some());
    }

    #[test]
    fn a_lock_refresh_answered_with_a_wrong_etag_keeps_the_lock_and_releases_it_at_the_end() {
        let bucket = Arc::new(FakeBucket::default());
        let loc = location(bucket.clone());
        let fence = Arc::new(Fence::default());
        // The lock's own write, then its first refresh, are answered with a wrong ETag.
        bucket.script("pi/pi.lock", Script::WrongEtag);
        bucket.script("pi/pi.lock", Script::WrongEtag);
        let st = loc
            .lock(
                "pi",
                info(3, "up"),
                Some(here()),
                fence.clone(),
                Timing {
                    refresh_every: Duration::from_millis(20),
                },
            )
            .unwrap();
        let first = bucket.bytes("pi/pi.lock").unwrap();
        std::thread::sleep(Duration::from_millis(150));
        assert_ne!(bucket.bytes("pi/pi.lock").unwrap(), first, "refreshed");
        assert!(fence.reason().is_none(), "{:?}", fence.reason());
        st.load().unwrap();
        st.write(&next(State::new(&identity()))).unwrap();
        drop(st);
        assert!(bucket.bytes("pi/pi.lock").is_none(), "released");

        // A release on an ETag that is wrong (no refresh in between), at the end of a run
        // and on an exit that skips destructors.
        for on_signal in [false, true] {
            bucket.script("pi/pi.lock", Script::WrongEtag);
            let st = lock(&loc, 3, &fence).unwrap();
            if on_signal {
                // What `release_held_locks` does for each lock (only this test's lock here:
                // other tests of this process hold theirs).
                let entry = {
                    let held = HELD.lock().unwrap();
                    let e = held.iter().find(|(_, h, _)| Arc::ptr_eq(h, &st.held)).unwrap();
                    (e.0.clone(), e.1.clone(), e.2.clone())
                };
                release_now(&entry).unwrap();
                assert!(bucket.bytes("pi/pi.lock").is_none(), "released on a signal");
            }
            drop(st);
            assert!(bucket.bytes("pi/pi.lock").is_none(), "released");
        }
        assert!(fence.reason().is_none());
    }

    /// The refresher is stopped at the release, but a refresh already sent may still land:
    /// the object then holds a newer document of this run's lock under an ETag the run never
    /// saw. The release deletes it all the same; another run's lock is never deleted.
    #[test]
    fn a_refresh_that_lands_after_the_release_began_does_not_leave_the_lock() {
        let bucket = Arc::new(FakeBucket::default());
        let loc = location(bucket.clone());
        let fence = Arc::new(Fence::default());
        let st = lock(&loc, 3, &fence).unwrap();
        let mut late = st.lock_info().clone();
        late.refreshed_at = Some(Utc::now() + chrono::Duration::seconds(1));
        bucket.overwrite("pi/pi.lock", &late.to_bytes());
        drop(st);
        assert!(bucket.bytes("pi/pi.lock").is_none(), "released");

        // Taken over by another run (force-unlock, then its own lock): kept.
        let st = lock(&loc, 3, &fence).unwrap();
        let theirs = info(9, "destroy").to_bytes();
        bucket.overwrite("pi/pi.lock", &theirs);
        drop(st);
        assert_eq!(
            bucket.bytes("pi/pi.lock").as_deref(),
            Some(&theirs[..]),
            "not ours: kept"
        );
    }

    #[test]
    fn the_bridge_works_from_every_kind_of_caller() {
        let bucket = Arc::new(FakeBucket::default());
        let loc = location(bucket.clone());
        let fence = Arc::new(Fence::default());
        // Inside a current-thread runtime (tests), and a multi-thread one (the binary).
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async { drop(lock(&loc, 3, &fence).unwrap()) });
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let loc = loc.clone();
                let fence = fence.clone();
                tokio::spawn(async move { drop(lock(&loc, 3, &fence).unwrap()) })
                    .await
                    .unwrap()
            });
        assert!(bucket.bytes("pi/pi.lock").is_none());
    }
}
