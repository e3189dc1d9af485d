//! The meaning of the state file: which resources exist, in which step of their life, with
//! which ids. Its bytes (locking, atomic writes) live in `state_file`.
//!
//! Life of a resource record:
//! `creating` (intent, with its client token, written before the create call) ->
//! `created` (id known, written the moment the create call returns; not usable yet) ->
//! `ready` (converged and waited; dependents may start) -> `deleting` -> removed. On day 2 a
//! `ready` resource whose settings differ from the config goes `updating` (written before the
//! first update call) -> `ready`; a crash while `updating` is finished by the next run, which
//! reads and compares again.
//! A resource replaced create-before-destroy (a kind that holds no data and opts in,
//! `Cloud::replaceable`) is moved, in one write before its replacement's create, to a
//! `retiring` record (`retiring_key`, with the reason) while the node's own record starts
//! again at `creating` under `replace_token`; the retiring record goes `deleting` -> removed
//! once every dependent moved to the replacement.
//! No secret value is ever stored: secrets are referenced by ARN only.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::diff::Settings;
use super::resource::Outputs;
use super::spec::Kind;
use super::upgrade::UpgradeRecord;

pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Creating,
    Created,
    Ready,
    Updating,
    Deleting,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResourceRecord {
    pub kind: Kind,
    pub status: Status,
    pub client_token: String,
    #[serde(default)]
    pub outputs: Outputs,
    /// Keys this resource depended on when it was created (destroy order without a config).
    #[serde(default)]
    pub deps: Vec<String>,
    /// The settings last applied (the config's values; never a sensitive one): how a change
    /// that AWS cannot make is refused before any AWS call.
    #[serde(default, skip_serializing_if = "Settings::is_empty")]
    pub settings: Settings,
    /// Set on a resource being replaced (create before destroy): why. Its record is kept,
    /// under `retiring_key`, from before its replacement's create until AWS confirms its
    /// delete, which comes after every dependent moved to the replacement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// The key under which the resource `id` of node `key` is kept while it is replaced: not a
/// node of the desired graph, so `up` deletes it after its walk (dependents first) and
/// `destroy` deletes it like any record.
pub fn retiring_key(key: &str, id: &str) -> String {
    format!("{key}/retiring-{id}")
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub format_version: u32,
    pub lineage: Uuid,
    pub serial: u64,
    pub deployment: String,
    pub region: String,
    pub account_id: String,
    pub partition: String,
    /// Choices resolved on the first run that later runs must keep (e.g. the two zones).
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    #[serde(default)]
    pub resources: BTreeMap<String, ResourceRecord>,
    #[serde(default)]
    pub outputs: BTreeMap<String, String>,
    /// A blue/green upgrade in progress (`pi-deploy upgrade`), recorded at every step so a
    /// killed run resumes or rolls back; absent when none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade: Option<UpgradeRecord>,
    /// A `pi-deploy snapshot` in progress, recorded before each start so a killed run is
    /// finished by the next (core::snapshot); absent when none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<super::snapshot::SnapshotRecord>,
    /// The IAM role AWS Backup assumes (`pi-deploy snapshot`), by name, recorded before its
    /// CreateRole: not a node of the architecture (`up` and `plan` leave it alone), deleted by
    /// `destroy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_role: Option<String>,
    /// A `pi-deploy restore` of the database in progress, or switched with the old instance
    /// kept (core::restore); absent when none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<super::restore::RestoreRecord>,
    /// A `pi-deploy restore --files ... --path ...` job in progress (core::restore_files):
    /// recorded before StartRestoreJob, removed once the job ended; absent when none is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_restore: Option<super::restore_files::FilesRestoreRecord>,
}

/// Who the caller is, from STS, and where it acts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub deployment: String,
    pub region: String,
    pub account_id: String,
    pub partition: String,
}

/// Why a state file is refused. The file is never touched when refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateRefusal {
    #[error("the state file is not valid ({0}); it may be truncated or edited by hand")]
    Unparseable(String),
    #[error("the state file has format version {found}, newer than this pi-deploy understands ({supported})")]
    NewerFormat { found: u32, supported: u32 },
    #[error("the state file belongs to {field} `{found}`, not `{expected}`")]
    Foreign {
        field: &'static str,
        found: String,
        expected: String,
    },
    #[error(
        "the state file on disk has lineage {found}, not {expected}: another deployment's state was put in its place"
    )]
    LineageMismatch { found: Uuid, expected: Uuid },
    #[error("the state file on disk has serial {found}, newer than this run's {ours}: another run wrote it")]
    NewerSerial { found: u64, ours: u64 },
    #[error("resource `{key}` has an invalid record: {problem}")]
    BadRecord { key: String, problem: String },
}

/// Why a recorded id cannot be an id of its kind (`vpc-` then letters and digits...), if it
/// cannot: such a record was edited or damaged, and acting on it would address nothing, or
/// something else.
fn id_problem(kind: Kind, id: &str) -> Option<String> {
    let prefix = kind.id_prefix()?;
    // A route's id is `<route table id>/<destination>`.
    let id_part = id
        .split_once('/')
        .filter(|_| kind == Kind::Route)
        .map_or(id, |(table, _)| table);
    let rest = id_part.strip_prefix(prefix).unwrap_or_default();
    match !rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphanumeric()) {
        true => None,
        false => Some(format!(
            "its id `{id}` is not a {kind} id (`{prefix}` then letters and digits)"
        )),
    }
}

impl State {
    pub fn new(id: &Identity) -> Self {
        Self {
            format_version: FORMAT_VERSION,
            lineage: Uuid::new_v4(),
            serial: 0,
            deployment: id.deployment.clone(),
            region: id.region.clone(),
            account_id: id.account_id.clone(),
            partition: id.partition.clone(),
            settings: BTreeMap::new(),
            resources: BTreeMap::new(),
            outputs: BTreeMap::new(),
            upgrade: None,
            snapshot: None,
            backup_role: None,
            restore: None,
            files_restore: None,
        }
    }

    /// Parse and check the document's own consistency (not yet who it belongs to).
    pub fn parse(bytes: &[u8]) -> Result<Self, StateRefusal> {
        #[derive(Deserialize)]
        struct VersionOnly {
            format_version: u32,
        }
        let v: VersionOnly = serde_json::from_slice(bytes).map_err(|e| StateRefusal::Unparseable(e.to_string()))?;
        if v.format_version > FORMAT_VERSION {
            return Err(StateRefusal::NewerFormat {
                found: v.format_version,
                supported: FORMAT_VERSION,
            });
        }
        let state: State = serde_json::from_slice(bytes).map_err(|e| StateRefusal::Unparseable(e.to_string()))?;
        for (key, rec) in &state.resources {
            if rec.client_token.is_empty() {
                return Err(StateRefusal::BadRecord {
                    key: key.clone(),
                    problem: "no client token".into(),
                });
            }
            if matches!(rec.status, Status::Created | Status::Ready | Status::Updating)
                && rec.outputs.get("id").is_none_or(str::is_empty)
            {
                return Err(StateRefusal::BadRecord {
                    key: key.clone(),
                    problem: "recorded as created but has no id".into(),
                });
            }
            if let Some(problem) = rec.outputs.get("id").and_then(|id| id_problem(rec.kind, id)) {
                return Err(StateRefusal::BadRecord {
                    key: key.clone(),
                    problem,
                });
            }
            if rec.outputs.0.values().any(|v| v.chars().any(char::is_control)) {
                return Err(StateRefusal::BadRecord {
                    key: key.clone(),
                    problem: "an output holds control characters".into(),
                });
            }
        }
        Ok(state)
    }

    /// Refuse a state that belongs to another deployment, region or account.
    pub fn check_owner(&self, id: &Identity) -> Result<(), StateRefusal> {
        for (field, found, expected) in [
            ("deployment", &self.deployment, &id.deployment),
            ("region", &self.region, &id.region),
            ("account", &self.account_id, &id.account_id),
        ] {
            if found != expected {
                return Err(StateRefusal::Foreign {
                    field,
                    found: found.clone(),
                    expected: expected.clone(),
                });
            }
        }
        Ok(())
    }

    /// The client token for a key: stable for this lineage, so a retried create after a
    /// crash sends the same token and AWS returns the first result instead of a duplicate.
    pub fn client_token(&self, key: &str) -> String {
        Uuid::new_v5(&self.lineage, key.as_bytes()).to_string()
    }

    /// The token for creating `key` again after the resource `vanished_id` was deleted outside
    /// pi-deploy. Not the first one: AWS answers a repeated token with the resource it first
    /// created (a deleted NAT gateway or VPC endpoint) or an idempotency error. Derived, so
    /// a retry of this create after a crash sends the same token again.
    pub fn recreate_token(&self, key: &str, vanished_id: &str) -> String {
        Uuid::new_v5(&self.lineage, format!("{key}\u{0}{vanished_id}").as_bytes()).to_string()
    }

    /// The token for creating `key`'s replacement of the resource `old_id` (create before
    /// destroy): not the first one, stable across a crash (derived, and recorded with the
    /// intent before the create).
    pub fn replace_token(&self, key: &str, old_id: &str) -> String {
        Uuid::new_v5(&self.lineage, format!("{key}\u{0}replaces\u{0}{old_id}").as_bytes()).to_string()
    }

    /// Move `key`'s record to a retiring record (see `retiring_key`) and start the node again
    /// at `creating` with `token`, in one change: the replacement's intent and the old
    /// resource's retirement are recorded together. Records that depended on `key` also
    /// depend on the retiring one until they are recorded again (with their new references),
    /// so a `destroy` before they moved deletes them first.
    pub fn retire(&mut self, key: &str, why: &str, token: &str) -> Option<String> {
        let mut old = self.resources.get(key)?.clone();
        let id = old.outputs.get("id")?.to_string();
        let rkey = retiring_key(key, &id);
        old.status = Status::Ready;
        old.retiring = Some(why.to_string());
        old.updated_at = Utc::now();
        let mut fresh = old.clone();
        fresh.status = Status::Creating;
        fresh.client_token = token.to_string();
        fresh.outputs = Outputs::new();
        fresh.settings = Settings::new();
        fresh.retiring = None;
        for r in self.resources.values_mut() {
            if r.deps.iter().any(|d| d == key) && !r.deps.contains(&rkey) {
                r.deps.push(rkey.clone());
            }
        }
        self.resources.insert(rkey.clone(), old);
        self.resources.insert(key.to_string(), fresh);
        Some(rkey)
    }

    /// Undo `retire` (the replacement turned out to be the resource in place): `key` gets
    /// its record `before` back, and the retiring record of `id` is gone, also from the
    /// records that depended on it.
    pub fn unretire(&mut self, key: &str, id: &str, before: ResourceRecord) {
        let rkey = retiring_key(key, id);
        self.resources.remove(&rkey);
        for r in self.resources.values_mut() {
            r.deps.retain(|d| *d != rkey);
        }
        self.resources.insert(key.to_string(), before);
    }

    /// The records of resources being replaced, by key.
    pub fn retiring(&self) -> impl Iterator<Item = (&String, &ResourceRecord)> {
        self.resources.iter().filter(|(_, r)| r.retiring.is_some())
    }

    pub fn serialize(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("state serialises");
        v.push(b'\n');
        v
    }

    pub fn ready_outputs(&self) -> BTreeMap<String, Outputs> {
        self.resources
            .iter()
            .filter(|(_, r)| matches!(r.status, Status::Ready | Status::Updating))
            .map(|(k, r)| (k.clone(), r.outputs.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            deployment: "pi".into(),
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            partition: "aws".into(),
        }
    }

    #[test]
    fn round_trips() {
        let mut s = State::new(&identity());
        s.resources.insert(
            "vpc".into(),
            ResourceRecord {
                kind: Kind::Vpc,
                status: Status::Ready,
                client_token: s.client_token("vpc"),
                outputs: Outputs::new().with("id", "vpc-1"),
                deps: vec![],
                settings: Default::default(),
                retiring: None,
                updated_at: Utc::now(),
            },
        );
        assert_eq!(State::parse(&s.serialize()).unwrap(), s);
    }

    #[test]
    fn refusals() {
        let s = State::new(&identity());
        let bytes = s.serialize();
        assert!(matches!(State::parse(b""), Err(StateRefusal::Unparseable(_))));
        assert!(matches!(
            State::parse(&bytes[..bytes.len() / 2]),
            Err(StateRefusal::Unparseable(_))
        ));
        assert!(matches!(State::parse(b"{not json"), Err(StateRefusal::Unparseable(_))));
        let newer = String::from_utf8(bytes.clone())
            .unwrap()
            .replace("\"format_version\": 1", "\"format_version\": 99");
        assert!(matches!(
            State::parse(newer.as_bytes()),
            Err(StateRefusal::NewerFormat { found: 99, .. })
        ));
        let mut other = identity();
        other.region = "us-east-1".into();
        assert!(matches!(
            s.check_owner(&other),
            Err(StateRefusal::Foreign { field: "region", .. })
        ));
        let mut other = identity();
        other.account_id = "999999999999".into();
        assert!(matches!(
            s.check_owner(&other),
            Err(StateRefusal::Foreign { field: "account", .. })
        ));
        let mut other = identity();
        other.deployment = "x".into();
        assert!(matches!(
            s.check_owner(&other),
            Err(StateRefusal::Foreign {
                field: "deployment",
                ..
            })
        ));
    }

    #[test]
    fn a_created_record_without_an_id_is_refused() {
        let mut s = State::new(&identity());
        s.resources.insert(
            "vpc".into(),
            ResourceRecord {
                kind: Kind::Vpc,
                status: Status::Created,
                client_token: "t".into(),
                outputs: Outputs::new(),
                deps: vec![],
                settings: Default::default(),
                retiring: None,
                updated_at: Utc::now(),
            },
        );
        assert!(matches!(
            State::parse(&s.serialize()),
            Err(StateRefusal::BadRecord { .. })
        ));
    }

    #[test]
    fn an_id_of_the_wrong_shape_is_refused() {
        let parse = |kind: Kind, id: &str| {
            let mut s = State::new(&identity());
            s.resources.insert(
                "x".into(),
                ResourceRecord {
                    kind,
                    status: Status::Ready,
                    client_token: "t".into(),
                    outputs: Outputs::new().with("id", id),
                    deps: vec![],
                    settings: Default::default(),
                    retiring: None,
                    updated_at: Utc::now(),
                },
            );
            State::parse(&s.serialize())
        };
        for (kind, id) in [
            (Kind::Subnet, "banana"),
            (Kind::Subnet, "vpc-0abc"),
            (Kind::Vpc, "vpc-"),
            (Kind::SecurityGroup, "sg-01 ; rm"),
            (Kind::Route, "subnet-1/0.0.0.0/0"),
        ] {
            let refused = parse(kind, id);
            assert!(
                matches!(&refused, Err(StateRefusal::BadRecord { problem, .. }) if problem.contains(id)),
                "{kind} {id}: {refused:?}"
            );
        }
        for (kind, id) in [
            (Kind::Subnet, "subnet-0123abcd"),
            (Kind::Route, "rtb-0abc/0.0.0.0/0"),
            (Kind::ElasticIp, "eipalloc-12ab"),
            (Kind::IamRole, "any-name-at-all"),
            (
                Kind::LoadBalancer,
                "arn:aws:elasticloadbalancing:eu-west-1:1:loadbalancer/app/x/1",
            ),
        ] {
            assert!(parse(kind, id).is_ok(), "{kind} {id}");
        }
    }

    #[test]
    fn tokens_are_stable_per_lineage_and_key() {
        let s = State::new(&identity());
        assert_eq!(s.client_token("vpc"), s.client_token("vpc"));
        assert_ne!(s.client_token("vpc"), s.client_token("igw"));
        assert_ne!(s.client_token("vpc"), State::new(&identity()).client_token("vpc"));
    }
}
