//! `pi-deploy restore` of the database as data: where the restored instance comes from, its
//! name, the record the state keeps while a restore is in progress, and what a rerun does.
//!
//! A restore never touches the instance the deployment runs on: RDS restores into a NEW
//! instance (`<deployment>-db-r<YYYYMMDD-HHMMSS>`), and the deployment is switched to it
//! (the endpoint parameter, the state's `db` record whose secret ARN the launch template
//! names, a roll of the fleet). The old instance is kept until `restore --finish` deletes it
//! or `restore --abort` switches back to it.
//!
//! Every step is recorded (`RestoreRecord::step`) before the call it names, so a run killed
//! anywhere is finished by running the same command again, or undone by `--abort`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::resource::Outputs;

/// Tag on the restored instance: what it was restored from (`snapshot:<id>`, `time:<t>`,
/// `latest`).
pub const SOURCE_TAG: &str = "pi-deploy:restored-from";
/// Longest DB instance identifier RDS accepts.
pub const MAX_DB_IDENTIFIER_LEN: usize = 63;
/// Output of the `db` record while a restore keeps a second instance: that instance's
/// secret, which the dashboard role may still read (core::policy::with_kept_db_secret).
pub const KEPT_SECRET: &str = "kept_secret_arn";
/// State keys `destroy` gives the instances a restore left (`hand_to_destroy`).
pub const OLD_KEY: &str = "db-restore-old";
pub const NEW_KEY: &str = "db-restore-new";

/// What the new instance is restored from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Source {
    /// A DB snapshot (RestoreDBInstanceFromDBSnapshot).
    Snapshot { id: String },
    /// A point in time of the current instance (RestoreDBInstanceToPointInTime).
    Time { at: DateTime<Utc> },
    /// The latest restorable time of the current instance.
    Latest,
}

impl Source {
    pub fn describe(&self) -> String {
        match self {
            Source::Snapshot { id } => format!("snapshot {id}"),
            Source::Time { at } => format!("the point in time {}", at.format("%Y-%m-%dT%H:%M:%SZ")),
            Source::Latest => "the latest restorable time".into(),
        }
    }

    pub fn tag_value(&self) -> String {
        match self {
            Source::Snapshot { id } => format!("snapshot:{id}"),
            Source::Time { at } => format!("time:{}", at.format("%Y-%m-%dT%H:%M:%SZ")),
            Source::Latest => "latest".into(),
        }
    }

    /// The flags that ask for this restore again.
    pub fn flags(&self) -> String {
        match self {
            Source::Snapshot { id } => format!("--db-snapshot {id}"),
            Source::Time { at } => format!("--db-time {}", at.format("%Y-%m-%dT%H:%M:%SZ")),
            Source::Latest => "--latest".into(),
        }
    }
}

/// `--db-time`: an RFC 3339 time in the past (RDS refuses a future one; said here, exit 2).
pub fn parse_time(text: &str, now: &DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let at = DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("`{text}` is not an RFC 3339 time ({e})"))?
        .with_timezone(&Utc);
    if at > *now {
        return Err(format!("`{text}` is in the future"));
    }
    Ok(at)
}

pub const TIME_RULE: &str =
    "give a past UTC time such as 2026-12-01T10:00:00Z, within the backup retention period (or use --latest)";

/// `<deployment>-db-r<YYYYMMDD-HHMMSS>`: never the name of the instance it replaces, nor of
/// an earlier restore's (one per second at most, and a restore holds the state lock).
pub fn instance_name(deployment: &str, at: &DateTime<Utc>) -> String {
    format!("{deployment}-db-r{}", at.format("%Y%m%d-%H%M%S"))
}

/// Where a restore in progress stands; recorded before the action it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "name")]
pub enum Step {
    /// The restore call is being asked (found by its identifier on a rerun).
    Restoring,
    /// RDS accepted it: waiting until the new instance is available.
    Waiting,
    /// The deployment is being switched to the new instance: its secret's policy and
    /// rotation, the endpoint parameter, the state's `db` record.
    Switching,
    /// The fleet is being rolled onto a launch template version that names the new secret;
    /// `from_version` is the template's version before (the roll is done once it changed).
    Rolling { from_version: String },
    /// Switched and rolled: the old instance is kept until `--finish` or `--abort`.
    Kept,
    /// `--finish`: the old instance is being deleted.
    Finishing,
    /// `--abort`: the deployment is being switched back to the old instance.
    Reverting,
    /// `--abort`: the fleet is being rolled back onto a version that names the old secret.
    RollingBack { from_version: String },
    /// `--abort`: the restored instance is being deleted.
    Discarding,
}

impl Step {
    pub fn name(&self) -> &'static str {
        match self {
            Step::Restoring => "restoring",
            Step::Waiting => "waiting",
            Step::Switching => "switching",
            Step::Rolling { .. } => "rolling",
            Step::Kept => "kept",
            Step::Finishing => "finishing",
            Step::Reverting => "reverting",
            Step::RollingBack { .. } => "rolling_back",
            Step::Discarding => "discarding",
        }
    }

    /// The deployment already uses (or is being switched to) the new instance.
    pub fn switched(&self) -> bool {
        matches!(
            self,
            Step::Switching | Step::Rolling { .. } | Step::Kept | Step::Finishing
        )
    }

    /// An `--abort` is under way: only `--abort` goes on with it.
    pub fn aborting(&self) -> bool {
        matches!(self, Step::Reverting | Step::RollingBack { .. } | Step::Discarding)
    }
}

/// The endpoint the instances read: `host` and `port` of an instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub address: String,
    pub port: String,
}

/// A restore in progress (`State::restore`); removed by `--finish` and `--abort`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreRecord {
    pub source: Source,
    pub step: Step,
    pub started_at: DateTime<Utc>,
    /// The restored instance's identifier.
    pub new_instance: String,
    /// The `db` record's outputs before the switch (id, arn, resource_id, secret_arn).
    pub old: Outputs,
    /// The endpoint the old instance served on (the `db-endpoint` record's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_endpoint: Option<Endpoint>,
    /// The restored instance's outputs and endpoint, once it is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<Outputs>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_endpoint: Option<Endpoint>,
}

impl RestoreRecord {
    pub fn old_instance(&self) -> &str {
        self.old.get("id").unwrap_or_default()
    }

    /// One line for `status`, `plan` and `outputs`.
    pub fn describe(&self) -> String {
        let old = self.old_instance();
        match &self.step {
            Step::Kept => format!(
                "restore from {}: the deployment runs on {}; the old instance {old} is kept until `restore --finish` (deletes it) or `restore --abort` (switches back)",
                self.source.describe(),
                self.new_instance
            ),
            s if s.aborting() => format!(
                "restore from {} being aborted (step `{}`): back to {old}, {} to be deleted",
                self.source.describe(),
                s.name(),
                self.new_instance
            ),
            s => format!(
                "restore from {} into {} in progress (step `{}`); the old instance {old} is kept",
                self.source.describe(),
                self.new_instance,
                s.name()
            ),
        }
    }
}

/// What a `restore --db-...` run does with the restore the state records.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// Nothing in progress: start a new one.
    New,
    /// The same request, not yet kept: go on with it.
    Continue,
    /// The same request, already switched: nothing to do but say so.
    Done,
    /// Another request, or an abort under way: refuse, naming the record.
    Refuse(String),
}

pub fn resume(in_progress: Option<&RestoreRecord>, asked: &Source) -> Resume {
    match in_progress {
        None => Resume::New,
        Some(r) if r.step.aborting() => Resume::Refuse(format!(
            "an abort of the restore into {} is under way (step `{}`)",
            r.new_instance,
            r.step.name()
        )),
        Some(r) if r.step == Step::Finishing => Resume::Refuse(format!(
            "the restore into {} is being finished (deleting the old instance {})",
            r.new_instance,
            r.old_instance()
        )),
        // `--latest` resolves to no fixed time: the same flag is the same request.
        Some(r) if r.source == *asked && r.step == Step::Kept => Resume::Done,
        Some(r) if r.source == *asked => Resume::Continue,
        Some(r) => Resume::Refuse(format!(
            "a restore from {} into {} is in progress (step `{}`)",
            r.source.describe(),
            r.new_instance,
            r.step.name()
        )),
    }
}

/// Why `name` is not a valid DB instance identifier, if it is not.
pub fn check_instance_identifier(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_DB_IDENTIFIER_LEN
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.contains("--")
        && !name.ends_with('-');
    match ok {
        true => Ok(()),
        false => Err(format!("`{name}` is not a valid DB instance identifier")),
    }
}

/// Longest DB snapshot identifier RDS accepts.
pub const MAX_SNAPSHOT_IDENTIFIER_LEN: usize = 255;

pub const SNAPSHOT_ID_RULE: &str = "give a DB snapshot identifier (letters, digits and single hyphens, starting with a letter: `pi-deploy snapshot --list` shows them), an automated one (`rds:<instance>-<date>`), or a shared snapshot's ARN";

/// Why `id` cannot name a DB snapshot (checked before anything is called), if it cannot: a
/// manual snapshot's identifier, an automated one's (`rds:` or `awsbackup:` prefixed), or a
/// snapshot ARN (`arn:<partition>:rds:<region>:<account>:snapshot:<identifier>`).
pub fn check_snapshot_identifier(id: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "`{}` is not a DB snapshot identifier or ARN",
            id.escape_debug()
        ))
    };
    let name = match id.strip_prefix("arn:") {
        Some(rest) => match rest.split_once(":rds:").and_then(|(_, r)| r.rsplit_once(":snapshot:")) {
            Some((_, name)) => name,
            None => return bad(),
        },
        None => id,
    };
    let name = ["rds:", "awsbackup:"]
        .iter()
        .find_map(|p| name.strip_prefix(p))
        .unwrap_or(name);
    let ok = !name.is_empty()
        && id.len() <= MAX_SNAPSHOT_IDENTIFIER_LEN + 64
        && name.len() <= MAX_SNAPSHOT_IDENTIFIER_LEN
        && name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.contains("--")
        && !name.ends_with('-');
    if ok { Ok(()) } else { bad() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_ids_are_identifiers_automated_names_or_arns() {
        for good in [
            "pi-snap-before-upgrade-20261206-210509",
            "rds:pi-db-2026-12-01-10-00",
            "awsbackup:job-1b2c3d4e-aaaa-bbbb-cccc-1234567890ab",
            "arn:aws:rds:eu-west-1:123456789012:snapshot:shared-snap-1",
            "arn:aws-cn:rds:cn-north-1:123456789012:snapshot:rds:pi-db-2026-12-01-10-00",
        ] {
            assert_eq!(check_snapshot_identifier(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "../../x",
            "1snap",
            "snap--1",
            "snap-",
            "snap 1",
            "snap\n1",
            "rds:",
            "arn:aws:s3:::bucket",
            "arn:aws:rds:eu-west-1:123456789012:snapshot:",
            &"s".repeat(256),
        ] {
            assert!(check_snapshot_identifier(bad).is_err(), "{bad}");
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn record(source: Source, step: Step) -> RestoreRecord {
        RestoreRecord {
            source,
            step,
            started_at: at("2026-12-06T22:00:00Z"),
            new_instance: "pi-db-r20261206-220000".into(),
            old: Outputs::new().with("id", "pi-db"),
            old_endpoint: None,
            new: None,
            new_endpoint: None,
        }
    }

    #[test]
    fn names_are_valid_identifiers_distinct_from_the_instance_they_replace() {
        let t = at("2026-12-06T21:05:09Z");
        assert_eq!(instance_name("pi-prod", &t), "pi-prod-db-r20261206-210509");
        let longest = "a".repeat(crate::core::names::MAX_DEPLOYMENT_LEN);
        for dep in ["pi", "pi-prod", longest.as_str()] {
            let n = instance_name(dep, &t);
            assert_eq!(check_instance_identifier(&n), Ok(()), "{n}");
            assert_ne!(n, format!("{dep}-db"));
        }
        for bad in ["", "1a", "a--b", "a-", "a_b", &"a".repeat(64)] {
            assert!(check_instance_identifier(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_must_be_rfc3339_and_past() {
        let now = at("2026-12-06T22:00:00Z");
        assert_eq!(parse_time("2026-12-01T10:00:00Z", &now), Ok(at("2026-12-01T10:00:00Z")));
        assert_eq!(
            parse_time("2026-12-01T11:00:00+01:00", &now),
            Ok(at("2026-12-01T10:00:00Z"))
        );
        assert!(parse_time("2026-12-01 10:00", &now).unwrap_err().contains("RFC 3339"));
        assert!(parse_time("2027-01-01T00:00:00Z", &now).unwrap_err().contains("future"));
    }

    #[test]
    fn a_rerun_continues_the_same_restore_and_refuses_another() {
        let snap = Source::Snapshot { id: "s1".into() };
        assert_eq!(resume(None, &snap), Resume::New);
        let r = record(snap.clone(), Step::Waiting);
        assert_eq!(resume(Some(&r), &snap), Resume::Continue);
        assert!(matches!(resume(Some(&r), &Source::Latest), Resume::Refuse(m) if m.contains("snapshot s1")));
        let kept = record(snap.clone(), Step::Kept);
        assert_eq!(resume(Some(&kept), &snap), Resume::Done);
        let other = Source::Snapshot { id: "s2".into() };
        assert!(matches!(resume(Some(&kept), &other), Resume::Refuse(_)));
        for s in [
            Step::Reverting,
            Step::RollingBack {
                from_version: "3".into(),
            },
            Step::Discarding,
            Step::Finishing,
        ] {
            assert!(matches!(
                resume(Some(&record(snap.clone(), s)), &snap),
                Resume::Refuse(_)
            ));
        }
    }

    #[test]
    fn the_record_round_trips_and_says_what_is_kept() {
        let mut r = record(
            Source::Time {
                at: at("2026-12-01T10:00:00Z"),
            },
            Step::Rolling {
                from_version: "2".into(),
            },
        );
        r.new = Some(Outputs::new().with("id", "pi-db-r20261206-220000"));
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<RestoreRecord>(&json).unwrap(), r);
        assert!(json.contains("\"name\":\"rolling\""), "{json}");
        assert!(r.describe().contains("old instance pi-db is kept"), "{}", r.describe());
        r.step = Step::Kept;
        assert!(r.describe().contains("restore --finish"), "{}", r.describe());
        assert!(Step::Kept.switched() && !Step::Waiting.switched() && !Step::Reverting.switched());
        assert_eq!(r.source.flags(), "--db-time 2026-12-01T10:00:00Z");
        assert_eq!(Source::Latest.tag_value(), "latest");
    }
}
