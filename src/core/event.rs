//! Events: the only way the core talks to the terminal. The UI draws them; `--json` prints
//! them one object per line.

use std::collections::BTreeMap;

use serde::Serialize;

use super::spec::Kind;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceStatus {
    /// Intent recorded; looking it up or calling create.
    Creating,
    /// Found in AWS by tag or name and taken over instead of created.
    Adopted,
    /// The create call returned; its id is recorded.
    Created,
    /// Converging settings and waiting until usable.
    Waiting,
    Ready,
    /// Day 2: the intent is recorded; changing settings in place.
    Updating,
    /// Day 2: changed in place, settings recorded.
    Updated,
    Deleting,
    Deleted,
    Failed,
    /// Not started because a dependency failed or the run was stopped.
    Skipped,
}

impl ResourceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceStatus::Creating => "creating",
            ResourceStatus::Adopted => "adopted",
            ResourceStatus::Created => "created",
            ResourceStatus::Waiting => "waiting",
            ResourceStatus::Ready => "ready",
            ResourceStatus::Updating => "updating",
            ResourceStatus::Updated => "updated",
            ResourceStatus::Deleting => "deleting",
            ResourceStatus::Deleted => "deleted",
            ResourceStatus::Failed => "failed",
            ResourceStatus::Skipped => "skipped",
        }
    }
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ResourceStatus::Ready
                | ResourceStatus::Updated
                | ResourceStatus::Deleted
                | ResourceStatus::Failed
                | ResourceStatus::Skipped
        )
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStarted {
        command: String,
        deployment: String,
        region: String,
        /// Resources this run will act on.
        planned: usize,
        /// Resources already in their final state.
        unchanged: usize,
    },
    Resource {
        key: String,
        kind: Kind,
        status: ResourceStatus,
        /// Time since this resource's step started.
        elapsed_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    Warning {
        message: String,
    },
    /// A named phase of a command finished (e.g. "network", "dashboard healthy").
    Phase {
        name: String,
        elapsed_ms: u64,
    },
    /// One step of `upgrade` (the blue/green swap), recorded before its action.
    Upgrade {
        /// Machine-readable step: `started`, `suspending`, `pointing`, `choosing`, `launching`,
        /// `draining`, `terminating`, `finishing`, `rolling_back`, `done`, `rolled_back`.
        step: String,
        message: String,
        elapsed_ms: u64,
    },
    /// One step of `snapshot`: `started`, `db_snapshot`, `backup_job`, `done`; a
    /// progress line while it waits (`waiting`).
    Snapshot {
        step: String,
        message: String,
        elapsed_ms: u64,
    },
    /// One step of `restore` (core::restore::Step names), and a progress line while the
    /// restored instance is being made (`waiting`).
    Restore {
        step: String,
        message: String,
        elapsed_ms: u64,
    },
    /// The dashboard answers (its check passed): the URL and the time since the run
    /// started. On the usable-early path the run goes on (the database's Multi-AZ standby).
    Usable {
        url: String,
        elapsed_ms: u64,
    },
    RunFinished {
        command: String,
        ok: bool,
        elapsed_ms: u64,
        /// `up`: when the dashboard became usable in this run (see `Event::Usable`).
        #[serde(skip_serializing_if = "Option::is_none")]
        usable_ms: Option<u64>,
        counts: BTreeMap<String, usize>,
        outputs: BTreeMap<String, String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// Receives events; implementations must not block for long.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: Event);
}

/// Collects events in memory (tests, the benchmark).
#[derive(Default)]
pub struct Recorder(pub std::sync::Mutex<Vec<Event>>);

impl EventSink for Recorder {
    fn emit(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Recorder {
    pub fn events(&self) -> Vec<Event> {
        self.0.lock().unwrap().clone()
    }
}

/// Discards events.
pub struct Discard;

impl EventSink for Discard {
    fn emit(&self, _: Event) {}
}
