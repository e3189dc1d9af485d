//! The contract between the executor and a cloud.
//!
//! Every resource kind is driven through the same four steps:
//!
//! 1. `find`: look the resource up in the cloud by its tags or deterministic name. This is
//!    the real idempotency mechanism: a run killed after a create call but before the state
//!    recorded the id finds the resource again here instead of creating a duplicate.
//! 2. `create`: one create call (tagged on create, with a client token where the API takes
//!    one). It returns as soon as the cloud has accepted the request so the executor can
//!    persist the id before anything slow happens.
//! 3. `converge`: bring the settings that are separate calls in line (attachments, rules,
//!    attributes) and wait until the resource is usable. Must tolerate running again after a
//!    crash at any point, so every call in it is idempotent.
//! 4. `delete`: delete and wait until gone. A resource that is already gone counts as deleted.
//!
//! Day 2 (a resource already recorded `ready`): `read` its live settings, compare them with the
//! `desired` ones (`diff`, pure), and `update` what AWS can change in place; see `core::diff`.
//!
//! Guarantees the executor gives a kind: a node starts only after every dependency is ready;
//! `deps` holds their outputs; the client token is stable for the lineage and key.

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::diff::{AttrSpec, Change, Settings};
use super::spec::{Kind, NodeSpec};

/// What a resource exposes to its dependents and to `destroy`: ids, ARNs, names.
/// `id` is the primary identifier; a kind stores every value its delete needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Outputs(pub BTreeMap<String, String>);

impl Outputs {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.insert(name.to_string(), value.into());
        self
    }
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(name.to_string(), value.into());
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
    /// The primary id. Kinds always set it, so a missing id is a bug or a foreign state.
    pub fn id(&self) -> Result<&str, ResourceError> {
        self.require("id")
    }
    pub fn require(&self, name: &str) -> Result<&str, ResourceError> {
        self.get(name).ok_or_else(|| {
            ResourceError::new(
                ErrorClass::Invalid,
                format!("output `{name}` is missing from the recorded resource"),
            )
        })
    }
}

/// The class of a failure, which decides whether and how it is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    NotFound,
    AlreadyExists,
    Throttled,
    /// Something else still uses the resource (DependencyViolation, ResourceInUse, ...).
    InUse,
    /// IAM has not propagated yet (a role or profile that cannot be used right after create).
    IamPropagation,
    /// A transient server-side or network failure.
    Transient,
    /// The endpoint answered nothing (refused, unresolvable, unroutable) for the whole
    /// retry budget of seconds (src/aws/reach.rs).
    Unreachable,
    /// A create call whose outcome is unknown: the request was sent and the connection
    /// failed, timed out or answered 5xx, so the resource may exist. Never retried blindly
    /// (that could make a duplicate): the executor looks for it first (`create_or_adopt`).
    Ambiguous,
    /// The resource reached a state it cannot leave (failed, deleted while waiting).
    Failed,
    /// A wait ran past its deadline.
    Timeout,
    /// Bad input or a recorded value that makes no sense.
    Invalid,
    /// The run was cancelled.
    Cancelled,
    Other,
}

/// A failure of one resource operation, carrying what an operator needs to act on it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceError {
    pub class: ErrorClass,
    pub code: Option<String>,
    pub message: String,
    pub request_id: Option<String>,
    pub hint: Option<String>,
}

impl ResourceError {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            code: None,
            message: message.into(),
            request_id: None,
            hint: None,
        }
    }
    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
    pub fn is(&self, class: ErrorClass) -> bool {
        self.class == class
    }
}

impl fmt::Display for ResourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        if let Some(code) = &self.code {
            write!(f, " (code {code}")?;
            if let Some(rid) = &self.request_id {
                write!(f, ", request id {rid}")?;
            }
            write!(f, ")")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ResourceError {}

/// Everything a kind needs to create or converge one node.
pub struct NodeCtx<'a> {
    pub spec: &'a NodeSpec,
    /// Outputs of every dependency, by key.
    pub deps: &'a BTreeMap<String, Outputs>,
    /// Idempotency token for this lineage and key (stable across retries and restarts).
    pub token: &'a str,
}

impl NodeCtx<'_> {
    /// The outputs of dependency `key`; the graph guarantees it is ready.
    pub fn dep(&self, key: &str) -> Result<&Outputs, ResourceError> {
        self.deps.get(key).ok_or_else(|| {
            ResourceError::new(
                ErrorClass::Invalid,
                format!("`{}` needs `{key}`, which is not ready", self.spec.key),
            )
        })
    }
    pub fn dep_id(&self, key: &str) -> Result<&str, ResourceError> {
        self.dep(key)?.id()
    }
}

/// What a delete knows: the key, the kind and the recorded outputs (no spec needed, so a
/// resource found only by its tags can be deleted too).
pub struct DeleteCtx<'a> {
    pub key: &'a str,
    pub kind: Kind,
    pub outputs: &'a Outputs,
}

/// What a read of a recorded resource found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Observed {
    /// AWS does not know the recorded id: deleted outside pi-deploy.
    Missing,
    /// It exists; the settings the kind reads (only those: nothing is claimed about others).
    Present(Settings),
}

/// The cloud the executor drives. The AWS implementation dispatches on the kind; tests and
/// the benchmark implement it with fakes that run in virtual time.
#[async_trait]
pub trait Cloud: Send + Sync + 'static {
    async fn find(&self, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError>;
    async fn create(&self, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError>;
    async fn converge(&self, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError>;
    async fn delete(&self, cx: &DeleteCtx<'_>) -> Result<(), ResourceError>;

    /// The attributes a kind manages and how each may change (pure).
    fn attrs(&self, kind: Kind) -> &'static [AttrSpec] {
        let _ = kind;
        &[]
    }
    /// Pure: the desired settings of `spec`, with dependencies' ids from `deps` (a dependency
    /// that is not there yet reads `diff::KNOWN_AFTER_UP`).
    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        let _ = (spec, deps);
        Settings::new()
    }
    /// Pure: what differs between desired and live settings, and what `up` does about it.
    fn diff(&self, spec: &NodeSpec, desired: &Settings, live: &Settings) -> Vec<Change> {
        super::diff::diff(self.attrs(spec.kind), desired, live, None)
    }
    /// Whether a `replace` change of this node is carried out create-before-destroy: the
    /// kind holds no data and names a replacement after what forces it (so its `find`
    /// never returns the resource being replaced). Data kinds never opt in.
    fn replaceable(&self, spec: &NodeSpec) -> bool {
        let _ = spec;
        false
    }
    /// Read-only: whether the recorded resource exists, and its live settings.
    async fn read(&self, cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let _ = (cx, outputs);
        Ok(Observed::Present(Settings::new()))
    }
    /// Apply `changes` (all `ChangeAction::Update`) in place and wait until the resource is
    /// usable again. Must be idempotent: a crash halfway is finished by the next run, which
    /// reads and diffs again.
    async fn update(&self, cx: &NodeCtx<'_>, outputs: Outputs, changes: &[Change]) -> Result<Outputs, ResourceError> {
        let _ = changes;
        self.converge(cx, outputs).await
    }
}
