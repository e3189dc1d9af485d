//! `pi-deploy snapshot` as data: the label's rules, the snapshot's name, the record the state
//! keeps while one is being taken, and the list `snapshot --list` prints.
//!
//! A snapshot is two things taken together: a manual DB snapshot of the deployment's
//! database (CreateDBSnapshot) and an on-demand AWS Backup job of its file system
//! (StartBackupJob into the account's `Default` vault). Both carry the snapshot's name and
//! label as tags, so `snapshot --list` (and a later `restore`) finds them from AWS alone, also
//! after `destroy`, which keeps them: they are the user's data.
//!
//! Idempotency: the name embeds the UTC time the snapshot was asked for, so it is recorded in
//! the state (`SnapshotRecord`) before the first call; a rerun after a crash finishes the
//! recorded snapshot (the DB snapshot is found by its identifier, the backup job by the
//! idempotency token derived from the state's lineage and the name) instead of starting a
//! second one. A label names at most one snapshot per deployment: asking again for a label
//! that exists reports the existing snapshot.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Tag on both halves: the snapshot's name (the DB snapshot's identifier).
pub const NAME_TAG: &str = "pi-deploy:snapshot";
/// Tag on both halves: the label given with `--label` (absent without one).
pub const LABEL_TAG: &str = "pi-deploy:snapshot-label";
/// The vault the file system's recovery points go to: the account's own. Not pi-deploy's: a
/// vault holding recovery points cannot be deleted, and `destroy` keeps recovery points, so a
/// vault of the deployment's would be left behind anyway. Created (untagged, as AWS's console
/// creates it) only when the account has none.
pub const VAULT: &str = "Default";
/// The AWS-managed policy of the role AWS Backup assumes to back the file system up.
pub const BACKUP_MANAGED_POLICY: &str = "service-role/AWSBackupServiceRolePolicyForBackup";
pub const BACKUP_SERVICE: &str = "backup.amazonaws.com";
/// Longest label: the identifier (`<deployment>-snap-<label>-<YYYYMMDD-HHMMSS>`) stays far
/// below RDS's 255 characters, and a label stays readable in a table.
pub const MAX_LABEL_LEN: usize = 63;

pub const LABEL_RULE: &str = "use 1-63 lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen (e.g. `before-upgrade`)";

/// The IAM role AWS Backup assumes for this deployment's backups.
pub fn backup_role(deployment: &str) -> String {
    format!("{deployment}-backup-role")
}

/// Why `label` cannot name a snapshot, if it cannot. RDS stores identifiers in lowercase, so
/// only lowercase is accepted (what the user typed is what they see in the list).
pub fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("the label is empty".into());
    }
    if label.len() > MAX_LABEL_LEN {
        return Err(format!(
            "`{label}` is {} characters, more than {MAX_LABEL_LEN}",
            label.len()
        ));
    }
    if !label.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("`{label}` must start with a lowercase letter"));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "`{label}` holds `{c}`: only lowercase letters, digits and hyphens are allowed"
        ));
    }
    if label.ends_with('-') || label.contains("--") {
        return Err(format!("`{label}` may not end with a hyphen or hold two in a row"));
    }
    Ok(())
}

/// RDS's rules for a DB snapshot identifier: 1-255 letters, digits and hyphens, a letter
/// first, no two hyphens in a row, no hyphen at the end.
pub fn check_db_snapshot_identifier(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 255
        && id.starts_with(|c: char| c.is_ascii_alphabetic())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !id.contains("--")
        && !id.ends_with('-');
    match ok {
        true => Ok(()),
        false => Err(format!("`{id}` is not a valid DB snapshot identifier")),
    }
}

/// `<deployment>-snap[-<label>]-<YYYYMMDD-HHMMSS>` (UTC): the DB snapshot's identifier and the
/// name both halves are tagged with.
pub fn snapshot_name(deployment: &str, label: Option<&str>, at: &DateTime<Utc>) -> String {
    let stamp = at.format("%Y%m%d-%H%M%S");
    match label {
        Some(l) => format!("{deployment}-snap-{l}-{stamp}"),
        None => format!("{deployment}-snap-{stamp}"),
    }
}

/// Where a snapshot in progress stands; recorded before the action it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SnapshotStep {
    /// The name is chosen; nothing asked of AWS yet (the role may be being created).
    Started,
    /// CreateDBSnapshot is being asked (found by its identifier on a rerun).
    DbRequested,
    /// StartBackupJob is being asked (the same idempotency token on a rerun).
    BackupRequested,
    /// Both started; waiting for them.
    Waiting,
}

impl SnapshotStep {
    pub fn name(self) -> &'static str {
        match self {
            SnapshotStep::Started => "started",
            SnapshotStep::DbRequested => "db_requested",
            SnapshotStep::BackupRequested => "backup_requested",
            SnapshotStep::Waiting => "waiting",
        }
    }
}

/// A snapshot being taken (`State::snapshot`); removed once both halves are complete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotRecord {
    /// The DB snapshot's identifier; both halves are tagged with it.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub step: SnapshotStep,
    pub started_at: DateTime<Utc>,
    /// The DB instance it snapshots.
    pub db_instance: String,
    /// The file system it backs up; `None` with `--no-files`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_system_arn: Option<String>,
    /// The AWS Backup job, once StartBackupJob answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_job_id: Option<String>,
    /// Jobs that ended FAILED/ABORTED/EXPIRED: the next start uses a token derived from the
    /// last one (AWS would answer the first token with the failed job).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_jobs: Vec<String>,
}

/// What a rerun does with the snapshot the state records as in progress.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// Nothing in progress: start a new one.
    New,
    /// The same request (same label, or none both times): finish it.
    Finish,
    /// Another label: refuse, naming how to finish the one in progress.
    Other { label: Option<String>, name: String },
}

pub fn resume(in_progress: Option<&SnapshotRecord>, label: Option<&str>) -> Resume {
    match in_progress {
        None => Resume::New,
        Some(r) if r.label.as_deref() == label => Resume::Finish,
        Some(r) => Resume::Other {
            label: r.label.clone(),
            name: r.name.clone(),
        },
    }
}

/// One entry of `snapshot --list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    /// `db-snapshot` or `efs-recovery-point`.
    pub kind: &'static str,
    /// The DB snapshot's identifier, or the recovery point's ARN.
    pub id: String,
    /// The snapshot's name (both halves of one snapshot share it), when tagged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<DateTime<Utc>>,
    /// Bytes when the service says (a recovery point), else `None`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_bytes: Option<i64>,
    /// The DB snapshot's allocated storage, GiB (RDS gives no used size).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size_gib: Option<i32>,
    /// As the service says it: `available`, `creating`; `COMPLETED`, `PARTIAL`...
    pub status: String,
}

/// Newest first; undated last; ties by id so the order is stable.
pub fn sort_newest_first(items: &mut [Item]) {
    items.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
}

/// Human size: `1.5 GiB`, `20 GiB allocated`, `-`.
pub fn size_text(item: &Item) -> String {
    match (item.size_bytes, item.size_gib) {
        (Some(b), _) if b >= 1 << 30 => format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64),
        (Some(b), _) if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
        (Some(b), _) => format!("{b} B"),
        (None, Some(g)) => format!("{g} GiB allocated"),
        (None, None) => "-".into(),
    }
}

/// The table `snapshot --list` prints.
pub fn render_list(deployment: &str, items: &[Item]) -> String {
    let mut out = format!("pi-deploy snapshot --list: deployment `{deployment}`\n");
    if items.is_empty() {
        out.push_str("No snapshots.\n");
        return out;
    }
    for i in items {
        let when = i
            .created
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| "-".into());
        out.push_str(&format!(
            "  {when}  {:<18} {:<20} {:<16} {:<10} {}\n",
            i.kind,
            i.label.as_deref().unwrap_or("-"),
            size_text(i),
            i.status,
            i.id
        ));
    }
    let db = items.iter().filter(|i| i.kind == DB_SNAPSHOT).count();
    out.push_str(&format!(
        "{db} DB snapshots, {} file system recovery points.\n",
        items.len() - db
    ));
    out
}

pub const DB_SNAPSHOT: &str = "db-snapshot";
pub const RECOVERY_POINT: &str = "efs-recovery-point";

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn labels_follow_the_identifier_rules_and_each_refusal_says_why() {
        for ok in ["before-change", "a", "v2", "pre-upgrade-2026"] {
            assert_eq!(check_label(ok), Ok(()), "{ok}");
        }
        let long = "a".repeat(MAX_LABEL_LEN + 1);
        for (bad, why) in [
            ("", "empty"),
            ("2026", "start with a lowercase letter"),
            ("-x", "start with a lowercase letter"),
            ("Before", "start with a lowercase letter"),
            ("before_change", "holds `_`"),
            ("before change", "holds ` `"),
            ("bad--label", "two in a row"),
            ("trailing-", "end with a hyphen"),
            (long.as_str(), "more than 63"),
        ] {
            let e = check_label(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn names_are_valid_rds_identifiers_for_every_valid_label_and_deployment() {
        let t = at("2026-12-06T21:05:09Z");
        assert_eq!(
            snapshot_name("pi-prod", Some("before-change"), &t),
            "pi-prod-snap-before-change-20261206-210509"
        );
        assert_eq!(snapshot_name("pi", None, &t), "pi-snap-20261206-210509");
        let longest_dep = "a".repeat(crate::core::names::MAX_DEPLOYMENT_LEN);
        let longest_label = "b".repeat(MAX_LABEL_LEN);
        for (dep, label) in [
            ("pi", None),
            ("pi-prod", Some("x")),
            (longest_dep.as_str(), Some(longest_label.as_str())),
        ] {
            let name = snapshot_name(dep, label, &t);
            assert_eq!(check_db_snapshot_identifier(&name), Ok(()), "{name}");
        }
        for bad in ["", "1abc", "a--b", "a-", "a_b", &"a".repeat(256)] {
            assert!(check_db_snapshot_identifier(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_rerun_finishes_the_same_request_and_refuses_another_label() {
        let rec = SnapshotRecord {
            name: "pi-snap-x-20261206-210509".into(),
            label: Some("x".into()),
            step: SnapshotStep::Waiting,
            started_at: at("2026-12-06T21:05:09Z"),
            db_instance: "pi-db".into(),
            file_system_arn: None,
            backup_job_id: None,
            failed_jobs: Vec::new(),
        };
        assert_eq!(resume(None, Some("x")), Resume::New);
        assert_eq!(resume(Some(&rec), Some("x")), Resume::Finish);
        assert_eq!(
            resume(Some(&rec), None),
            Resume::Other {
                label: Some("x".into()),
                name: rec.name.clone()
            }
        );
        let unlabelled = SnapshotRecord { label: None, ..rec };
        assert_eq!(resume(Some(&unlabelled), None), Resume::Finish);
    }

    #[test]
    fn the_list_is_newest_first_with_undated_entries_last() {
        let item = |id: &str, created: Option<&str>| Item {
            kind: DB_SNAPSHOT,
            id: id.into(),
            name: None,
            label: None,
            created: created.map(at),
            size_bytes: None,
            size_gib: Some(20),
            status: "available".into(),
        };
        let mut items = vec![
            item("old", Some("2026-12-01T00:00:00Z")),
            item("undated", None),
            item("new", Some("2026-12-06T00:00:00Z")),
        ];
        sort_newest_first(&mut items);
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["new", "old", "undated"]);
        let text = render_list("pi", &items);
        assert!(
            text.contains("3 DB snapshots, 0 file system recovery points."),
            "{text}"
        );
        assert!(text.contains("20 GiB allocated"), "{text}");
        assert!(render_list("pi", &[]).contains("No snapshots."));
    }

    #[test]
    fn sizes_read_naturally() {
        let mut i = Item {
            kind: RECOVERY_POINT,
            id: "arn".into(),
            name: None,
            label: None,
            created: None,
            size_bytes: Some(3 << 29),
            size_gib: None,
            status: "COMPLETED".into(),
        };
        assert_eq!(size_text(&i), "1.5 GiB");
        i.size_bytes = Some(2048);
        assert_eq!(size_text(&i), "2048 B");
        i.size_bytes = None;
        assert_eq!(size_text(&i), "-");
    }
}
