//! `pi-deploy restore --files RECOVERY_POINT_ARN --path /themes ...` as data: the checks of
//! the flags, the metadata AWS Backup's StartRestoreJob is given for an item-level restore
//! of the deployment's file system, the vault access policy statement that would refuse it,
//! the permissions the role AWS Backup assumes needs for it, and the record the state keeps
//! while a restore job runs (so a killed run waits for the same job instead of starting
//! another).
//!
//! An item-level restore writes the items into the SAME file system, under a new directory
//! `aws-backup-restore_<time>` at its root (AWS Backup never overwrites the live files): the
//! operator moves what they need from there.
//!
//! A full restore (`restore --files ARN` without `--path`) restores into a NEW file system
//! and switches the deployment to it, as the database's restore does (core::restore's
//! steps): `FullRestore` keeps the new file system, its mount targets and access point as
//! they are made, and the records they replaced, until `--finish` deletes the old ones or
//! `--abort` switches back and deletes the new ones.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::resource::Outputs;
use super::restore::Step;

/// AWS Backup's limit of items in one EFS item-level restore.
pub const MAX_PATHS: usize = 5;
/// The inline policy of the role AWS Backup assumes that lets it restore the file system.
pub const RESTORE_POLICY: &str = "pi-deploy-restore-file-system";
/// The action a vault access policy may deny.
pub const START_RESTORE: &str = "backup:StartRestoreJob";

pub const ARN_RULE: &str = "give a recovery point ARN such as arn:aws:backup:eu-west-1:123456789012:recovery-point:1EB3B5E7-9EB0-435A-A80B-108B488B0D45 (`pi-deploy snapshot --list` shows the file system's)";
pub const PATH_RULE: &str = "give one to five absolute paths inside the file system, such as --path /themes --path /images/logo.png (no `..`, not `/` itself)";

/// Why `arn` is not a recovery point ARN (of `region`, when given), if it is not.
pub fn check_recovery_point_arn(arn: &str, region: Option<&str>) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    let ok = parts.len() == 7
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && parts[2] == "backup"
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && parts[5] == "recovery-point"
        && !parts[6].is_empty()
        && !parts[6].contains(char::is_whitespace);
    if !ok {
        return Err(format!("`{arn}` is not an AWS Backup recovery point ARN"));
    }
    if let Some(region) = region.filter(|r| *r != parts[3]) {
        return Err(format!(
            "the recovery point `{arn}` is in region {}, the deployment in {region}",
            parts[3]
        ));
    }
    Ok(())
}

/// The paths as AWS Backup is given them (a trailing `/` dropped), or why they are refused.
pub fn check_paths(paths: &[String]) -> Result<Vec<String>, String> {
    if paths.is_empty() {
        return Err("no path given".into());
    }
    if paths.len() > MAX_PATHS {
        return Err(format!(
            "{} paths given; AWS Backup restores at most {MAX_PATHS} items per job",
            paths.len()
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for p in paths {
        if !p.starts_with('/') {
            return Err(format!("`{p}` is not an absolute path (it must start with `/`)"));
        }
        if p.chars().any(|c| c.is_control()) {
            return Err(format!("`{}` contains a control character", p.escape_debug()));
        }
        if p.split('/').any(|s| s == "..") {
            return Err(format!("`{p}` contains `..`"));
        }
        let trimmed = p.trim_end_matches('/');
        if trimmed.is_empty() {
            return Err("`/` is the whole file system, not an item".into());
        }
        if out.iter().any(|o| o == trimmed) {
            return Err(format!("`{p}` is given twice"));
        }
        out.push(trimmed.to_string());
    }
    Ok(out)
}

/// What the file system is, as DescribeFileSystems says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSystemFacts {
    pub id: String,
    pub arn: String,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub performance_mode: String,
}

/// StartRestoreJob's metadata for an item-level restore into the same file system (AWS
/// Backup's documented keys for EFS).
pub fn item_metadata(fs: &FileSystemFacts, creation_token: &str, paths: &[String]) -> Vec<(String, String)> {
    let mut m = vec![
        ("file-system-id".to_string(), fs.id.clone()),
        ("newFileSystem".to_string(), "false".to_string()),
        ("Encrypted".to_string(), fs.encrypted.to_string()),
        ("PerformanceMode".to_string(), fs.performance_mode.clone()),
        ("CreationToken".to_string(), creation_token.to_string()),
        ("itemsToRestore".to_string(), Value::from(paths.to_vec()).to_string()),
    ];
    if let (true, Some(k)) = (fs.encrypted, &fs.kms_key_id) {
        m.push(("KmsKeyId".to_string(), k.clone()));
    }
    m
}

/// StartRestoreJob's metadata for a full restore into a NEW file system (AWS Backup's
/// documented keys for EFS): encrypted with the same key, the same performance mode, the
/// creation token of this restore (EFS's own idempotency key).
pub fn new_file_system_metadata(fs: &FileSystemFacts, creation_token: &str) -> Vec<(String, String)> {
    let mut m = vec![
        ("newFileSystem".to_string(), "true".to_string()),
        ("Encrypted".to_string(), fs.encrypted.to_string()),
        ("PerformanceMode".to_string(), fs.performance_mode.clone()),
        ("CreationToken".to_string(), creation_token.to_string()),
    ];
    if let (true, Some(k)) = (fs.encrypted, &fs.kms_key_id) {
        m.push(("KmsKeyId".to_string(), k.clone()));
    }
    m
}

/// The file system id an ARN names (`...:file-system/fs-0123`), as a restore job's
/// CreatedResourceArn gives it.
pub fn file_system_id_of_arn(arn: &str) -> Option<String> {
    let (_, id) = arn.rsplit_once(":file-system/")?;
    (id.starts_with("fs-") && id.len() > 3 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .then(|| id.to_string())
}

/// A statement of the vault's access policy that denies StartRestoreJob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// Its `Sid`, or `statement #<n>` (from 1) when it has none.
    pub statement: String,
    /// It has a `Condition`: it may not apply to this caller (AWS decides).
    pub conditional: bool,
}

/// IAM's `*` / `?` wildcard match; actions compare without case, ARNs with it.
fn glob(p: &[u8], a: &[u8], any_case: bool) -> bool {
    match (p.first(), a.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&p[1..], a, any_case) || (!a.is_empty() && glob(p, &a[1..], any_case)),
        (Some(b'?'), Some(_)) => glob(&p[1..], &a[1..], any_case),
        (Some(x), Some(y)) if x == y || (any_case && x.eq_ignore_ascii_case(y)) => glob(&p[1..], &a[1..], any_case),
        _ => false,
    }
}

fn matches_action(pattern: &str, action: &str) -> bool {
    glob(pattern.as_bytes(), action.as_bytes(), true)
}

fn matches_resource(pattern: &str, arn: &str) -> bool {
    glob(pattern.as_bytes(), arn.as_bytes(), false)
}

fn strings(v: Option<&Value>) -> Vec<&str> {
    match v {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

/// The first `Deny` statement of a vault access policy that covers `action` on `resource`
/// (the recovery point's ARN): by `Action`, wildcards included, or by a `NotAction` that
/// leaves it out, and by `Resource` (wildcards included; none given covers all) or a
/// `NotResource` that leaves it out. The principal is not judged: a Deny naming any
/// principal is reported (the vendor's guide sets one for all).
pub fn denying_statement(policy: &str, action: &str, resource: &str) -> Result<Option<Denial>, String> {
    let doc: Value = serde_json::from_str(policy).map_err(|e| format!("the vault access policy is not JSON ({e})"))?;
    let statements = match doc.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(s @ Value::Object(_)) => vec![s.clone()],
        _ => Vec::new(),
    };
    for (i, s) in statements.iter().enumerate() {
        if s.get("Effect").and_then(Value::as_str) != Some("Deny") {
            continue;
        }
        let covered = match s.get("NotAction") {
            Some(v) => !strings(Some(v)).iter().any(|p| matches_action(p, action)),
            None => strings(s.get("Action")).iter().any(|p| matches_action(p, action)),
        };
        let on_resource = match (s.get("NotResource"), s.get("Resource")) {
            (Some(v), _) => !strings(Some(v)).iter().any(|p| matches_resource(p, resource)),
            (None, Some(v)) => strings(Some(v)).iter().any(|p| matches_resource(p, resource)),
            (None, None) => true,
        };
        if covered && on_resource {
            return Ok(Some(Denial {
                statement: s
                    .get("Sid")
                    .and_then(Value::as_str)
                    .map(|sid| format!("`{sid}`"))
                    .unwrap_or_else(|| format!("statement #{}", i + 1)),
                conditional: s.get("Condition").is_some(),
            }));
        }
    }
    Ok(None)
}

/// The permissions AWS Backup needs to restore items into the deployment's file system
/// (the EFS part of AWSBackupServiceRolePolicyForRestores, scoped to that file system; its
/// KMS key through EFS only, when it has one).
pub fn restore_role_policy(fs_arn: &str, kms_key_arn: Option<&str>, region: &str) -> Value {
    let mut statements = vec![json!({
        "Sid": "RestoreIntoTheDeploymentsFileSystem",
        "Effect": "Allow",
        "Action": ["elasticfilesystem:Restore", "elasticfilesystem:DescribeFileSystems"],
        "Resource": fs_arn,
    })];
    if let Some(key) = kms_key_arn.filter(|k| k.starts_with("arn:")) {
        statements.push(json!({
            "Sid": "UseTheFileSystemsKeyThroughEfs",
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncryptFrom", "kms:ReEncryptTo", "kms:DescribeKey", "kms:CreateGrant"],
            "Resource": key,
            "Condition": {"StringEquals": {"kms:ViaService": format!("elasticfilesystem.{region}.amazonaws.com")}},
        }));
    }
    json!({"Version": "2012-10-17", "Statement": statements})
}

/// The permissions AWS Backup needs to restore into a NEW file system: the EFS part of
/// AWSBackupServiceRolePolicyForRestores, limited to file systems of the deployment's account
/// and region (the new one's id is not known before), and the key through EFS only.
pub fn new_file_system_role_policy(fs_arn: &str, kms_key_arn: Option<&str>, region: &str) -> Value {
    let any_fs = match fs_arn.rsplit_once(":file-system/") {
        Some((prefix, _)) => format!("{prefix}:file-system/*"),
        None => fs_arn.to_string(),
    };
    let mut doc = restore_role_policy(&any_fs, kms_key_arn, region);
    doc["Statement"][0]["Sid"] = json!("RestoreIntoANewFileSystem");
    doc["Statement"][0]["Action"] = json!([
        "elasticfilesystem:Restore",
        "elasticfilesystem:CreateFilesystem",
        "elasticfilesystem:DescribeFilesystems",
        "elasticfilesystem:DeleteFilesystem"
    ]);
    doc
}

/// A full restore into a new file system (`FilesRestoreRecord::full`): where it stands
/// (core::restore's steps: `restoring` until the job is started, `waiting` while it runs and
/// the new file system gets its mount targets and access point, then `switching`,
/// `rolling`, `kept`, and `finishing` or `reverting` / `rolling_back` / `discarding`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullRestore {
    pub step: Step,
    /// What has been made for the new file system, by the state key it takes over: `efs`
    /// once the job named it, then each mount target and the access point.
    #[serde(default)]
    pub new: BTreeMap<String, Outputs>,
    /// The records' outputs before the switch (by state key), set at `switching`.
    #[serde(default)]
    pub old: BTreeMap<String, Outputs>,
}

impl FullRestore {
    /// The new file system's id, once the job named it.
    pub fn new_file_system(&self) -> Option<&str> {
        self.new.get(FILE_SYSTEM_KEY).and_then(|o| o.get("id"))
    }

    /// The old file system's id, once switched.
    pub fn old_file_system(&self) -> Option<&str> {
        self.old.get(FILE_SYSTEM_KEY).and_then(|o| o.get("id"))
    }
}

/// The state key of the deployment's file system.
pub const FILE_SYSTEM_KEY: &str = "efs";

/// What a full restore left that the state's records do not name, for `destroy`: the old
/// file system, mount targets and access point once the `efs` record names the new one,
/// else the new ones made so far (`destroy` first looks up a file system the job made that
/// no run recorded: commands::restore_fs::resolve_for_destroy). Answers `old` or `new`, and the outputs by the state key they stand for.
pub fn left_behind(rec: &FilesRestoreRecord, current_fs: Option<&str>) -> (&'static str, BTreeMap<String, Outputs>) {
    let Some(full) = &rec.full else {
        return ("new", BTreeMap::new());
    };
    if full.new_file_system().is_some() && full.new_file_system() == current_fs {
        return ("old", full.old.clone());
    }
    ("new", full.new.clone())
}

impl FilesRestoreRecord {
    /// The ids of what a full restore keeps or made (its own: `status` does not report
    /// them as leaks).
    pub fn kept_ids(&self) -> Vec<String> {
        self.full
            .iter()
            .flat_map(|f| f.new.values().chain(f.old.values()))
            .filter_map(|o| o.get("id").map(String::from))
            .collect()
    }
}

/// A files restore in progress (`State::files_restore`): recorded before StartRestoreJob.
/// An item-level one is removed once the job ended; a rerun with the same flags waits for
/// the same job (the same idempotency token); other flags are refused until it ended. A
/// full one (`full`, no paths) stays until `--finish` or `--abort`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilesRestoreRecord {
    pub recovery_point_arn: String,
    pub paths: Vec<String>,
    pub file_system_id: String,
    pub started_at: DateTime<Utc>,
    /// StartRestoreJob's idempotency token (and the metadata's CreationToken).
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full: Option<FullRestore>,
}

impl FilesRestoreRecord {
    pub fn same_request(&self, arn: &str, paths: &[String]) -> bool {
        self.recovery_point_arn == arn && self.paths == paths
    }

    /// The flags that ask for this restore again.
    pub fn flags(&self) -> String {
        let mut f = format!("--files {}", self.recovery_point_arn);
        for p in &self.paths {
            f.push_str(&format!(" --path {p}"));
        }
        f
    }

    /// The client token of what a full restore makes on the new file system (its access
    /// point): this restore's, per state key.
    pub fn token_for(&self, key: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.token.as_bytes());
        h.update([0]);
        h.update(key.as_bytes());
        let hex: String = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!("pi-restore-{hex}")
    }

    /// One line for `status`, `plan` and `outputs`.
    pub fn describe(&self) -> String {
        if let Some(full) = &self.full {
            return self.describe_full(full);
        }
        format!(
            "restore of {} into the file system {} from {} in progress ({}); `restore --files {} {}` waits for it",
            self.paths.join(", "),
            self.file_system_id,
            self.recovery_point_arn,
            match &self.job_id {
                Some(j) => format!("AWS Backup restore job {j}"),
                None => "the job not started yet".into(),
            },
            self.recovery_point_arn,
            self.paths
                .iter()
                .map(|p| format!("--path {p}"))
                .collect::<Vec<_>>()
                .join(" ")
        )
    }

    fn describe_full(&self, full: &FullRestore) -> String {
        let new = full.new_file_system().unwrap_or("a new file system");
        let old = full.old_file_system().unwrap_or(&self.file_system_id);
        match &full.step {
            Step::Kept => format!(
                "restore of the file system from {}: the deployment runs on {new}; the old file system {old} is kept until `restore --finish` (deletes it) or `restore --abort` (switches back)",
                self.recovery_point_arn
            ),
            s if s.aborting() => format!(
                "restore of the file system from {} being aborted (step `{}`): back to {old}, {new} to be deleted",
                self.recovery_point_arn,
                s.name()
            ),
            s => format!(
                "restore of the file system from {} into {new} in progress (step `{}`{}); the old file system {old} is kept",
                self.recovery_point_arn,
                s.name(),
                self.job_id
                    .as_deref()
                    .map(|j| format!(", AWS Backup restore job {j}"))
                    .unwrap_or_default()
            ),
        }
    }
}

/// The token of one restore: the state's lineage, the request and when it was first asked
/// (a later restore of the same items is another job, a rerun after a crash the same one).
pub fn token(lineage: &str, arn: &str, paths: &[String], at: &DateTime<Utc>) -> String {
    let mut h = Sha256::new();
    h.update(lineage.as_bytes());
    h.update([0]);
    h.update(arn.as_bytes());
    for p in paths {
        h.update([0]);
        h.update(p.as_bytes());
    }
    h.update([0]);
    h.update(at.to_rfc3339().as_bytes());
    let hex: String = h.finalize().iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("pi-restore-{hex}")
}

/// Terminal restore job states that are not a completed restore.
pub const JOB_FAILED_STATES: &[&str] = &["FAILED", "ABORTED"];

#[cfg(test)]
mod tests {
    use super::*;

    const RP: &str = "arn:aws:backup:eu-west-1:123456789012:recovery-point:1EB3B5E7-9EB0-435A-A80B-108B488B0D45";

    fn v(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn recovery_point_arns_are_checked_with_their_region() {
        assert_eq!(check_recovery_point_arn(RP, Some("eu-west-1")), Ok(()));
        assert!(
            check_recovery_point_arn(RP, Some("us-east-1"))
                .unwrap_err()
                .contains("region eu-west-1")
        );
        for bad in [
            "",
            "fs-123",
            "arn:aws:backup:eu-west-1:123456789012:backup-vault:Default",
            "arn:aws:backup:eu-west-1:1234:recovery-point:x",
            "arn:aws:s3:eu-west-1:123456789012:recovery-point:x",
            "arn:aws:backup:eu-west-1:123456789012:recovery-point:",
        ] {
            assert!(check_recovery_point_arn(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_to_five_absolute_paths_without_dot_dot() {
        assert_eq!(
            check_paths(&v(&["/themes/", "/images/a.png"])),
            Ok(v(&["/themes", "/images/a.png"]))
        );
        assert_eq!(check_paths(&v(&["/a", "/b", "/c", "/d", "/e"])).map(|p| p.len()), Ok(5));
        assert!(
            check_paths(&v(&["/a", "/b", "/c", "/d", "/e", "/f"]))
                .unwrap_err()
                .contains("at most 5")
        );
        assert!(check_paths(&[]).unwrap_err().contains("no path"));
        assert!(check_paths(&v(&["themes"])).unwrap_err().contains("absolute"));
        assert!(check_paths(&v(&["/a/../etc"])).unwrap_err().contains(".."));
        assert!(check_paths(&v(&["/"])).unwrap_err().contains("whole file system"));
        assert!(check_paths(&v(&["/a", "/a/"])).unwrap_err().contains("twice"));
        assert!(check_paths(&v(&["/a\nb"])).unwrap_err().contains("control"));
    }

    #[test]
    fn item_level_metadata_names_the_same_file_system_and_the_items_as_a_json_list() {
        let fs = FileSystemFacts {
            id: "fs-1".into(),
            arn: "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-1".into(),
            encrypted: true,
            kms_key_id: Some("arn:aws:kms:eu-west-1:123456789012:key/k".into()),
            performance_mode: "generalPurpose".into(),
        };
        let m = item_metadata(&fs, "tok", &v(&["/themes", "/images/a \"b\".png"]));
        let get = |k: &str| m.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone());
        assert_eq!(get("file-system-id").as_deref(), Some("fs-1"));
        assert_eq!(get("newFileSystem").as_deref(), Some("false"));
        assert_eq!(get("Encrypted").as_deref(), Some("true"));
        assert_eq!(get("KmsKeyId").as_deref(), fs.kms_key_id.as_deref());
        let items: Vec<String> = serde_json::from_str(&get("itemsToRestore").unwrap()).unwrap();
        assert_eq!(items, ["/themes", "/images/a \"b\".png"]);
        let plain = FileSystemFacts { encrypted: false, ..fs };
        assert!(
            item_metadata(&plain, "t", &v(&["/a"]))
                .iter()
                .all(|(k, _)| k != "KmsKeyId")
        );
    }

    #[test]
    fn a_deny_on_start_restore_job_is_found_by_action_wildcard_or_not_action() {
        let deny = |stmt: Value| {
            json!({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "backup:*", "Resource": "*"}, stmt]})
            .to_string()
        };
        let guide = deny(
            json!({"Sid": "deny-restores", "Effect": "Deny", "Principal": {"AWS": "*"},
            "Action": ["backup:DeleteRecoveryPoint", "backup:StartRestoreJob"], "Resource": "*"}),
        );
        assert_eq!(
            denying_statement(&guide, START_RESTORE, RP).unwrap(),
            Some(Denial {
                statement: "`deny-restores`".into(),
                conditional: false
            })
        );
        let wild = deny(json!({"Effect": "Deny", "Principal": "*", "Action": "backup:Start*",
            "Resource": "*", "Condition": {"StringNotEquals": {"aws:PrincipalArn": "x"}}}));
        assert_eq!(
            denying_statement(&wild, START_RESTORE, RP).unwrap(),
            Some(Denial {
                statement: "statement #2".into(),
                conditional: true
            })
        );
        let not_action =
            deny(json!({"Effect": "Deny", "Principal": "*", "NotAction": "backup:Describe*", "Resource": "*"}));
        assert!(denying_statement(&not_action, START_RESTORE, RP).unwrap().is_some());
        let other =
            deny(json!({"Effect": "Deny", "Principal": "*", "Action": "backup:DeleteRecoveryPoint", "Resource": "*"}));
        assert_eq!(denying_statement(&other, START_RESTORE, RP).unwrap(), None);
        let excluded =
            deny(json!({"Effect": "Deny", "Principal": "*", "NotAction": ["backup:StartRestoreJob"], "Resource": "*"}));
        assert_eq!(denying_statement(&excluded, START_RESTORE, RP).unwrap(), None);
        assert!(denying_statement("not json", START_RESTORE, RP).is_err());
    }

    #[test]
    fn a_deny_scoped_to_other_resources_does_not_stop_this_restore() {
        let stmt = |resource: (&str, Value)| {
            let mut s = json!({"Sid": "d", "Effect": "Deny", "Principal": "*", "Action": "backup:StartRestoreJob"});
            s[resource.0] = resource.1;
            json!({"Statement": [s]}).to_string()
        };
        let denied = |r: (&str, Value)| denying_statement(&stmt(r), START_RESTORE, RP).unwrap().is_some();
        assert!(denied(("Resource", json!(RP))));
        assert!(denied((
            "Resource",
            json!("arn:aws:backup:eu-west-1:123456789012:recovery-point:*")
        )));
        assert!(denied((
            "Resource",
            json!([
                "arn:aws:backup:*:*:recovery-point:2222",
                "arn:aws:backup:*:123456789012:*"
            ])
        )));
        assert!(!denied((
            "Resource",
            json!("arn:aws:backup:eu-west-1:123456789012:recovery-point:2222-BBBB")
        )));
        // ARNs compare with their case, as IAM does.
        assert!(!denied(("Resource", json!(RP.to_uppercase()))));
        assert!(denied((
            "NotResource",
            json!("arn:aws:backup:eu-west-1:123456789012:recovery-point:2222-BBBB")
        )));
        assert!(!denied((
            "NotResource",
            json!("arn:aws:backup:*:*:recovery-point:1EB3B5E7-*")
        )));
        let no_resource = json!({"Statement": {"Effect": "Deny", "Principal": "*", "Action": "backup:*"}}).to_string();
        assert!(denying_statement(&no_resource, START_RESTORE, RP).unwrap().is_some());
    }

    #[test]
    fn the_role_may_restore_into_this_file_system_only_and_use_its_key_through_efs() {
        let fs = "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-1";
        let doc = restore_role_policy(fs, None, "eu-west-1");
        let st = doc["Statement"].as_array().unwrap();
        assert_eq!(st.len(), 1);
        assert_eq!(st[0]["Resource"], fs);
        assert!(doc.to_string().contains("elasticfilesystem:Restore"));
        assert!(!doc.to_string().contains("\"*\""), "no wildcard resource: {doc}");
        let key = "arn:aws:kms:eu-west-1:123456789012:key/k";
        let doc = restore_role_policy(fs, Some(key), "eu-west-1");
        assert_eq!(doc["Statement"][1]["Resource"], key);
        assert_eq!(
            doc["Statement"][1]["Condition"]["StringEquals"]["kms:ViaService"],
            "elasticfilesystem.eu-west-1.amazonaws.com"
        );
    }

    #[test]
    fn the_token_is_the_same_for_a_rerun_and_another_for_a_later_restore() {
        let at: DateTime<Utc> = "2026-12-07T00:00:00Z".parse().unwrap();
        let later: DateTime<Utc> = "2026-12-07T01:00:00Z".parse().unwrap();
        let p = v(&["/themes"]);
        let t = token("l", RP, &p, &at);
        assert_eq!(t, token("l", RP, &p, &at));
        assert_ne!(t, token("l", RP, &p, &later));
        assert_ne!(t, token("l", RP, &v(&["/images"]), &at));
        assert!(t.len() <= 64 && t.starts_with("pi-restore-"), "{t}");
        let rec = FilesRestoreRecord {
            recovery_point_arn: RP.into(),
            paths: p.clone(),
            file_system_id: "fs-1".into(),
            started_at: at,
            token: t,
            job_id: Some("job-1".into()),
            full: None,
        };
        assert!(rec.same_request(RP, &p) && !rec.same_request(RP, &v(&["/images"])));
        let line = rec.describe();
        assert!(
            line.contains("job job-1") && line.contains("--path /themes") && line.contains("fs-1"),
            "{line}"
        );
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(serde_json::from_str::<FilesRestoreRecord>(&json).unwrap(), rec);
    }

    #[test]
    fn a_full_restore_asks_for_a_new_file_system_like_the_old_one() {
        let fs = FileSystemFacts {
            id: "fs-1".into(),
            arn: "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-1".into(),
            encrypted: true,
            kms_key_id: Some("arn:aws:kms:eu-west-1:123456789012:key/k".into()),
            performance_mode: "generalPurpose".into(),
        };
        let m: BTreeMap<String, String> = new_file_system_metadata(&fs, "tok").into_iter().collect();
        assert_eq!(m["newFileSystem"], "true");
        assert_eq!(m["CreationToken"], "tok");
        assert_eq!(m["Encrypted"], "true");
        assert_eq!(m["KmsKeyId"], "arn:aws:kms:eu-west-1:123456789012:key/k");
        assert!(!m.contains_key("file-system-id") && !m.contains_key("itemsToRestore"));
        assert_eq!(
            file_system_id_of_arn("arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-0ab12"),
            Some("fs-0ab12".into())
        );
        for bad in [
            "",
            "fs-1",
            "arn:aws:elasticfilesystem:eu-west-1:1:file-system/",
            "arn:x:file-system/fs-1/x",
        ] {
            assert_eq!(file_system_id_of_arn(bad), None, "{bad}");
        }
        let doc = new_file_system_role_policy(&fs.arn, fs.kms_key_id.as_deref(), "eu-west-1");
        assert_eq!(
            doc["Statement"][0]["Resource"],
            "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/*"
        );
        assert!(doc["Statement"][0]["Action"].to_string().contains("CreateFilesystem"));
        assert_eq!(
            doc["Statement"][1]["Resource"],
            "arn:aws:kms:eu-west-1:123456789012:key/k"
        );
    }

    #[test]
    fn a_full_restore_record_says_where_it_stands_and_gives_each_key_its_token() {
        let at: DateTime<Utc> = "2026-12-07T00:00:00Z".parse().unwrap();
        let mut rec = FilesRestoreRecord {
            recovery_point_arn: RP.into(),
            paths: Vec::new(),
            file_system_id: "fs-old".into(),
            started_at: at,
            token: token("l", RP, &[], &at),
            job_id: Some("job-1".into()),
            full: Some(FullRestore {
                step: Step::Waiting,
                new: BTreeMap::from([(FILE_SYSTEM_KEY.to_string(), Outputs::new().with("id", "fs-new"))]),
                old: BTreeMap::new(),
            }),
        };
        assert_eq!(rec.flags(), format!("--files {RP}"));
        let line = rec.describe();
        assert!(
            line.contains("into fs-new")
                && line.contains("`waiting`")
                && line.contains("fs-old")
                && line.contains("job-1"),
            "{line}"
        );
        let full = rec.full.as_mut().unwrap();
        full.step = Step::Kept;
        full.old
            .insert(FILE_SYSTEM_KEY.into(), Outputs::new().with("id", "fs-old"));
        assert!(rec.describe().contains("runs on fs-new") && rec.describe().contains("--finish"));
        rec.full.as_mut().unwrap().step = Step::Reverting;
        assert!(rec.describe().contains("aborted"), "{}", rec.describe());
        assert_ne!(rec.token_for("efs-ap"), rec.token_for("efs-mt-a"));
        assert_ne!(rec.token_for("efs-ap"), rec.token);
        assert!(rec.token_for("efs-ap").len() <= 64);
        // destroy: not switched, the new file system goes.
        let (which, left) = left_behind(&rec, Some("fs-old"));
        assert_eq!((which, left[FILE_SYSTEM_KEY].get("id")), ("new", Some("fs-new")));
        let mut unnamed = rec.clone();
        unnamed.full = None;
        assert!(left_behind(&unnamed, Some("fs-old")).1.is_empty());
        // Switched: the old one goes.
        let (which, left) = left_behind(&rec, Some("fs-new"));
        assert_eq!((which, left[FILE_SYSTEM_KEY].get("id")), ("old", Some("fs-old")));
        assert_eq!(rec.kept_ids(), ["fs-new", "fs-old"]);
        let json = serde_json::to_string(&rec).unwrap();
        assert_eq!(serde_json::from_str::<FilesRestoreRecord>(&json).unwrap(), rec);
    }
}
