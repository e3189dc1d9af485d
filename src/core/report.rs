//! What `plan` and `status` report: their `--json` documents, which the human display
//! (`ui::report`) renders too. Pure data, filled by the commands.

use std::collections::BTreeMap;

use serde::Serialize;

use super::inspect::Inspection;
use super::plan::Step;
use super::spec::Kind;
use super::state::Status;
use super::usable::DbPath;

/// `plan`'s `--json` document; the human display shows the same.
#[derive(Serialize)]
pub struct PlanReport {
    pub deployment: String,
    pub region: String,
    pub steps: Vec<Step>,
    pub counts: BTreeMap<&'static str, usize>,
    /// How `up` builds the database (usable early or not), and why.
    pub database_path: DbPath,
    pub database_path_note: &'static str,
    /// Changes made and waiting for AWS (a major upgrade held for the maintenance window):
    /// not changes to make again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
}

/// One recorded resource as `status` reports it: its record's step and what AWS says.
#[derive(Clone, Debug, Serialize)]
pub struct ResourceStatus {
    pub key: String,
    pub kind: Kind,
    /// The record's step (`creating`, `created`, `ready`, `deleting`).
    pub recorded: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(flatten)]
    pub inspection: Inspection,
}

impl ResourceStatus {
    pub fn is_problem(&self) -> bool {
        self.recorded != Status::Ready || self.inspection.is_problem()
    }
}

/// Something tagged with the deployment that its state does not record (or records with
/// another id).
#[derive(Clone, Debug, Serialize)]
pub struct Leak {
    pub key: String,
    pub kind: Kind,
    pub id: String,
    /// The id the state records for that key, when it records one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recorded_id: Option<String>,
}

/// `status`'s `--json` document; the human display shows the same.
#[derive(Clone, Debug, Serialize)]
pub struct StatusReport {
    pub deployment: String,
    pub region: String,
    /// False when there is no state file (nothing deployed, or another --state-dir).
    pub state_found: bool,
    pub resources: Vec<ResourceStatus>,
    pub leaks: Vec<Leak>,
    /// `None` when the deployment has no target group (the compute tier is not built).
    pub targets: Option<Vec<TargetHealth>>,
    /// `None` when the Lambda's log group does not exist.
    pub lambda_errors: Option<Vec<String>>,
    pub problems: Vec<String>,
    pub healthy: bool,
    /// A `restore` in progress, or switched with the old DB instance kept (not a problem,
    /// and its instances are not leaks).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub restore: Option<String>,
    /// Changes made and waiting for AWS (a major upgrade held for the maintenance window):
    /// not problems, not changes to make again.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<String>,
}

/// One registered target and its health as the load balancer sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TargetHealth {
    pub id: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A record's step, as `status` prints it.
pub fn status_name(s: Status) -> &'static str {
    match s {
        Status::Creating => "creating",
        Status::Created => "created",
        Status::Ready => "ready",
        Status::Updating => "updating",
        Status::Deleting => "deleting",
    }
}
