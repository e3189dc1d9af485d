//! The EFS file system: encrypted, generalPurpose, automatic backups on (`Backup=true` at
//! create, so AWS Backup keeps restore points; PutBackupPolicy repairs drift and turns them on for a file system a restore made), and,
//! with `storage.efs_require_tls`, a file-system policy that refuses NFS without TLS
//! (`core::policy::efs_tls_only`; the instances mount with amazon-efs-utils `-o tls`, the
//! Lambda always mounts over TLS).
//!
//! Day 2: `read` returns the file-system policy (`tls_only_policy`: `yes`, `none`, or another
//! policy) and the backup policy; `update` puts or deletes the TLS-only policy as
//! `storage.efs_require_tls` says and turns backups back on. Both go through `EfsPolicies`,
//! so the calls moto does not serve (DeleteFileSystemPolicy; PutBackupPolicy, which the
//! emulator launcher answers for a restored file system) are
//! tested against a scripted fake.
//!
//! Found by its creation token, which derives from the deployment: the token is EFS's own
//! idempotency key, so a retried create returns `FileSystemAlreadyExists`, which does not
//! always carry the id: the lookup by token finds it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_efs::types::{self as t, BackupPolicy, LifeCycleState, PerformanceMode, Status};
use serde_json::Value;

use super::{Aws, ResourceKind, ec2, observe, props};
use crate::aws::consistency;
use crate::aws::wait::{self, Backoff, Poll};
use crate::aws::{err, tags};
use crate::core::diff::{AttrSpec, Change, ChangeAction, Settings, settings};
use crate::core::latency::{self, Transition};
use crate::core::names;
use crate::core::policy;
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props};

pub struct FileSystem;

/// What `up` changes on a live file system.
pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::with(
        "tls_only_policy",
        ChangeAction::Update,
        "applies to new mounts; an instance mounted without TLS keeps its mount until it is replaced (roll or upgrade)",
        &["storage.efs_require_tls"],
    ),
    AttrSpec::update("backup_policy", &[]),
];

const TLS_ONLY: &str = "yes";
const NO_POLICY: &str = "none";
const OTHER_POLICY: &str = "another policy (it does not deny access without TLS)";
const BACKUPS_ON: &str = "enabled";

/// The desired settings (pure): backups always on (the blueprint), the TLS-only policy as
/// the config says, and no policy at all when it does not ask for one.
pub fn desired_settings(require_tls: bool) -> Settings {
    settings([
        (
            "tls_only_policy",
            if require_tls { TLS_ONLY } else { NO_POLICY }.to_string(),
        ),
        ("backup_policy", BACKUPS_ON.to_string()),
    ])
}

/// Whether a file-system policy denies every request made without TLS (what
/// `policy::efs_tls_only` writes; AWS may return it reformatted, so read its meaning).
pub fn is_tls_only(doc: &Value) -> bool {
    let statements = match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        one @ Value::Object(_) => vec![one.clone()],
        _ => return false,
    };
    let is = |v: &Value, want: &str| match v {
        Value::String(s) => s == want,
        Value::Array(a) => a.iter().any(|x| x.as_str() == Some(want)),
        _ => false,
    };
    statements.iter().any(|s| {
        let principal = &s["Principal"];
        let everyone = principal.as_str() == Some("*") || is(&principal["AWS"], "*");
        let insecure = &s["Condition"]["Bool"]["aws:SecureTransport"];
        let on_insecure = is(insecure, "false") || insecure.as_bool() == Some(false);
        let every_action = is(&s["Action"], "*") || is(&s["Action"], "elasticfilesystem:*");
        s["Effect"].as_str() == Some("Deny") && everyone && on_insecure && every_action
    })
}

/// The live settings (pure) from the policy (`None`: PolicyNotFound) and the backup
/// policy's status (`None`: no backup policy).
pub fn live_settings(policy: Option<&Value>, backup: Option<&Status>) -> Settings {
    let tls = match policy {
        None => NO_POLICY,
        Some(p) if is_tls_only(p) => TLS_ONLY,
        Some(_) => OTHER_POLICY,
    };
    let backup = match backup {
        Some(Status::Enabled | Status::Enabling) => BACKUPS_ON.to_string(),
        Some(s) => s.as_str().to_ascii_lowercase(),
        None => "none".to_string(),
    };
    settings([("tls_only_policy", tls.to_string()), ("backup_policy", backup)])
}

/// The file system's two policies, behind a trait so that `apply` can be driven by a
/// scripted fake (moto serves neither DeleteFileSystemPolicy nor PutBackupPolicy; the
/// launcher answers the latter).
#[async_trait]
pub trait EfsPolicies: Send + Sync {
    /// The policy document, `None` when there is none (PolicyNotFound).
    async fn policy(&self) -> Result<Option<Value>, ResourceError>;
    async fn put_policy(&self, doc: &Value) -> Result<(), ResourceError>;
    /// Already gone is success.
    async fn delete_policy(&self) -> Result<(), ResourceError>;
    /// The backup policy's status, `None` when there is none.
    async fn backup(&self) -> Result<Option<Status>, ResourceError>;
    async fn enable_backup(&self) -> Result<(), ResourceError>;
}

/// Read the live settings through `api`.
pub async fn read_settings(api: &dyn EfsPolicies) -> Result<Settings, ResourceError> {
    let policy = api.policy().await?;
    let backup = api.backup().await?;
    Ok(live_settings(policy.as_ref(), backup.as_ref()))
}

/// Apply the planned changes: each one sets its attribute whole, so a rerun after a crash
/// repeats it harmlessly.
pub async fn apply(
    api: &dyn EfsPolicies,
    arn: &str,
    require_tls: bool,
    changes: &[Change],
) -> Result<(), ResourceError> {
    for c in changes {
        match c.attribute.as_str() {
            "tls_only_policy" if require_tls => api.put_policy(&policy::efs_tls_only(arn)).await?,
            "tls_only_policy" => api.delete_policy().await?,
            "backup_policy" => api.enable_backup().await?,
            other => {
                return Err(ResourceError::new(
                    ErrorClass::Invalid,
                    format!("the file system has no setting `{other}` to update"),
                ));
            }
        }
    }
    Ok(())
}

/// The real thing, for one file system.
struct LivePolicies<'a> {
    aws: &'a Aws,
    id: &'a str,
}

#[async_trait]
impl EfsPolicies for LivePolicies<'_> {
    async fn policy(&self) -> Result<Option<Value>, ResourceError> {
        file_system_policy(self.aws, self.id).await
    }

    async fn put_policy(&self, doc: &Value) -> Result<(), ResourceError> {
        self.aws
            .clients
            .efs
            .put_file_system_policy()
            .file_system_id(self.id)
            .policy(doc.to_string())
            .send()
            .await
            .map(|_| ())
            .map_err(err("putting the file system's TLS-only policy"))
    }

    async fn delete_policy(&self) -> Result<(), ResourceError> {
        let out = self
            .aws
            .clients
            .efs
            .delete_file_system_policy()
            .file_system_id(self.id)
            .send()
            .await
            .map(|_| ())
            .map_err(err("deleting the file system's policy"));
        match out {
            Err(e) if e.is(ErrorClass::NotFound) => Ok(()),
            other => other,
        }
    }

    async fn backup(&self) -> Result<Option<Status>, ResourceError> {
        backup_status(self.aws, self.id).await
    }

    async fn enable_backup(&self) -> Result<(), ResourceError> {
        self.aws
            .clients
            .efs
            .put_backup_policy()
            .file_system_id(self.id)
            .backup_policy(backup_enabled()?)
            .send()
            .await
            .map(|_| ())
            .map_err(err("turning automatic backups on"))
    }
}

pub(super) fn invalid(e: impl std::fmt::Display) -> ResourceError {
    ResourceError::new(ErrorClass::Invalid, format!("building an EFS request: {e}"))
}

/// The three tags in EFS's shape.
pub(super) fn efs_tags(deployment: &str, key: &str) -> Result<Vec<t::Tag>, ResourceError> {
    tags::pairs(deployment, key)
        .into_iter()
        .map(|(k, v)| t::Tag::builder().key(k).value(v).build().map_err(invalid))
        .collect()
}

pub(super) fn efs_is_ours(tags: &[t::Tag], deployment: &str, key: &str) -> bool {
    let has = |k: &str, v: &str| tags.iter().any(|t| t.key() == k && t.value() == v);
    has(tags::DEPLOYMENT_TAG, deployment) && has(tags::KEY_TAG, key)
}

/// Lifecycle states an EFS object never leaves towards `available`.
pub(super) fn is_gone(state: Option<&LifeCycleState>) -> bool {
    matches!(
        state,
        Some(LifeCycleState::Deleting | LifeCycleState::Deleted | LifeCycleState::Error)
    )
}

pub(super) fn state_name(state: Option<&LifeCycleState>) -> String {
    state.map_or("unknown", |s| s.as_str()).to_string()
}

/// One poll of an EFS object's lifecycle while waiting for `available`.
pub(super) fn poll_available(state: Option<&LifeCycleState>) -> Poll<()> {
    match state {
        Some(LifeCycleState::Available) => Poll::Ready(()),
        s if is_gone(s) => Poll::Failed(state_name(s)),
        s => Poll::Pending(state_name(s)),
    }
}

/// Backups are on when the policy is ENABLED or on its way there; anything else (disabled
/// by hand, no policy at all) is drift to repair.
pub fn backup_needs_repair(status: Option<&Status>) -> bool {
    !matches!(status, Some(Status::Enabled | Status::Enabling))
}

pub fn backup_enabled() -> Result<BackupPolicy, ResourceError> {
    BackupPolicy::builder().status(Status::Enabled).build().map_err(invalid)
}

fn outputs_of(fs: &t::FileSystemDescription) -> Outputs {
    Outputs::new()
        .with("id", fs.file_system_id())
        .with("arn", fs.file_system_arn().unwrap_or_default())
}

async fn describe(aws: &Aws, id: &str) -> Result<Option<t::FileSystemDescription>, ResourceError> {
    let out = aws
        .clients
        .efs
        .describe_file_systems()
        .file_system_id(id)
        .send()
        .await
        .map_err(err("describing the file system"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.file_systems().first().cloned()))
}

/// What `find` knows of one listed file system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Listed {
    pub id: String,
    pub creation_token: String,
    pub ours: bool,
}

/// The deployment's file system among those listed (live ones only): the one made with its
/// creation token; else, as a full restore replaces it with one made under the restore's
/// token and tagged as the deployment's, the one tagged as the node's key. Two tagged ones
/// and none with the token (a full restore between its steps, its state lost) is not
/// guessed: the operator deletes the one not in use.
pub(super) fn choose_file_system<'a>(listed: &'a [Listed], token: &str) -> Result<Option<&'a Listed>, String> {
    if let Some(fs) = listed.iter().find(|fs| fs.creation_token == token) {
        return Ok(Some(fs));
    }
    let tagged: Vec<&Listed> = listed.iter().filter(|fs| fs.ours).collect();
    match tagged.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        many => Err(format!(
            "file systems {} are all tagged as this deployment's and none has its creation token `{token}` \
             (a whole-file-system restore whose state was lost?): delete the one that is not in use \
             (its mount targets first), then run `up` again",
            many.iter().map(|fs| fs.id.as_str()).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// Every file system of the account and region, every page (EFS has no tag filter).
pub(super) async fn list_all(aws: &Aws) -> Result<Vec<t::FileSystemDescription>, ResourceError> {
    aws.clients
        .efs
        .describe_file_systems()
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(err("listing the file systems"))
}

/// One listing (a creation-token lookup cannot see a restored file system).
async fn find_ours(aws: &Aws, key: &str) -> Result<Option<Outputs>, ResourceError> {
    let dep = aws.env.deployment.as_str();
    let all = list_all(aws).await?;
    let live: Vec<&t::FileSystemDescription> = all.iter().filter(|fs| !is_gone(Some(fs.life_cycle_state()))).collect();
    let listed: Vec<Listed> = live
        .iter()
        .map(|fs| Listed {
            id: fs.file_system_id().to_string(),
            creation_token: fs.creation_token().to_string(),
            ours: efs_is_ours(fs.tags(), dep, key),
        })
        .collect();
    let chosen = choose_file_system(&listed, &names::efs_creation_token(dep))
        .map_err(|m| ResourceError::new(ErrorClass::Other, m))?;
    Ok(chosen.and_then(|c| {
        live.iter()
            .find(|fs| fs.file_system_id() == c.id)
            .map(|fs| outputs_of(fs))
    }))
}

/// The file system made with `token` (EFS's idempotency key), if it exists.
pub(super) async fn find_by_creation_token(aws: &Aws, token: &str) -> Result<Option<Outputs>, ResourceError> {
    let found: Vec<t::FileSystemDescription> = aws
        .clients
        .efs
        .describe_file_systems()
        .creation_token(token)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(err("looking up the file system by creation token"))?;
    Ok(found
        .iter()
        .filter(|fs| fs.creation_token() == token && !is_gone(Some(fs.life_cycle_state())))
        .map(outputs_of)
        .next())
}

#[async_trait]
impl ResourceKind for FileSystem {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        find_ours(aws, &cx.spec.key).await
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let created = aws
            .clients
            .efs
            .create_file_system()
            .creation_token(names::efs_creation_token(&aws.env.deployment))
            .performance_mode(PerformanceMode::GeneralPurpose)
            .encrypted(true)
            .backup(true)
            .set_tags(Some(efs_tags(&aws.env.deployment, &cx.spec.key)?))
            .send()
            .await
            .map_err(err("creating the file system"));
        match created {
            Ok(out) => {
                if out.life_cycle_state() == &LifeCycleState::Creating {
                    aws.started.note(out.file_system_id());
                }
                // Created with backups on: no repair to check.
                aws.answers.keep(out.file_system_id(), BackupAsked);
                Ok(Outputs::new()
                    .with("id", out.file_system_id())
                    .with("arn", out.file_system_arn().unwrap_or_default()))
            }
            // Created by an earlier attempt with the same token: look it up (the error does
            // not always name the id), allowing for a lookup that lags the create.
            Err(e) if e.is(ErrorClass::AlreadyExists) => {
                ec2::retry_not_found("looking up the existing file system", || async {
                    find_by_creation_token(aws, &names::efs_creation_token(&aws.env.deployment))
                        .await?
                        .ok_or_else(|| {
                            ResourceError::new(ErrorClass::NotFound, "the file system exists but is not listed yet")
                        })
                })
                .await
            }
            Err(e) => Err(e),
        }
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (require_tls,) = props!(cx, FileSystem { require_tls });
        let id = outputs.id()?.to_string();
        wait::wait_for(
            &format!("file system {id} to become available"),
            latency::create_deadline(Kind::FileSystem),
            Backoff::expecting(Transition::FileSystemCreate, aws.started.get(&id)),
            || async {
                Ok(match describe(aws, &id).await? {
                    // Just created: a NotFound is the read lagging the create; else it is gone.
                    None => return consistency::not_visible(format!("file system {id}")),
                    Some(fs) => poll_available(Some(fs.life_cycle_state())),
                })
            },
        )
        .await?;
        if aws.answers.take::<BackupAsked>(&id).is_none() {
            repair_backup_policy(aws, &id).await?;
        }
        if *require_tls {
            put_tls_policy(aws, &id, outputs.require("arn")?).await?;
        }
        Ok(outputs)
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, _deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::FileSystem { require_tls } => desired_settings(*require_tls),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let id = outputs.id()?;
        let found = describe(aws, id)
            .await?
            .filter(|fs| !is_gone(Some(fs.life_cycle_state())));
        if found.is_none() {
            return Ok(Observed::Missing);
        }
        let live = read_settings(&LivePolicies { aws, id }).await?;
        Ok(observe::observed(found, |_| live))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &NodeCtx<'_>,
        outputs: Outputs,
        changes: &[Change],
    ) -> Result<Outputs, ResourceError> {
        let (require_tls,) = props!(cx, FileSystem { require_tls });
        let id = outputs.id()?.to_string();
        apply(
            &LivePolicies { aws, id: &id },
            outputs.require("arn")?,
            *require_tls,
            changes,
        )
        .await?;
        Ok(outputs)
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let id = cx.outputs.id()?;
        // FileSystemInUse while mount targets are still being deleted: retried.
        let started = ec2::delete_started(Kind::FileSystem, &format!("deleting file system {id}"), || async {
            aws.clients
                .efs
                .delete_file_system()
                .file_system_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(err("deleting the file system"))
        })
        .await?;
        wait::wait_for(
            &format!("file system {id} to be deleted"),
            latency::delete_deadline(Kind::FileSystem),
            Backoff::expecting(Transition::FileSystemDelete, started),
            || async {
                Ok(match describe(aws, id).await? {
                    None => Poll::Ready(()),
                    Some(fs) if fs.life_cycle_state() == &LifeCycleState::Deleted => Poll::Ready(()),
                    Some(fs) => Poll::Pending(state_name(Some(fs.life_cycle_state()))),
                })
            },
        )
        .await
    }
}

/// Kept by `create` for a file system it made with backups on (see `answers`).
struct BackupAsked;

/// The file system's policy as a document, `None` when it has none (PolicyNotFound).
async fn file_system_policy(aws: &Aws, id: &str) -> Result<Option<serde_json::Value>, ResourceError> {
    let out = aws
        .clients
        .efs
        .describe_file_system_policy()
        .file_system_id(id)
        .send()
        .await
        .map_err(err("reading the file system's policy"));
    Ok(match out {
        Ok(o) => o.policy().and_then(|p| serde_json::from_str(p).ok()),
        Err(e) if e.is(ErrorClass::NotFound) => None,
        Err(e) => return Err(e),
    })
}

/// Put the TLS-only policy unless the file system already has exactly it.
async fn put_tls_policy(aws: &Aws, id: &str, arn: &str) -> Result<(), ResourceError> {
    let desired = policy::efs_tls_only(arn);
    if file_system_policy(aws, id).await?.as_ref() == Some(&desired) {
        return Ok(());
    }
    aws.clients
        .efs
        .put_file_system_policy()
        .file_system_id(id)
        .policy(desired.to_string())
        .send()
        .await
        .map_err(err("putting the file system's TLS-only policy"))?;
    Ok(())
}

/// The backup policy's status, `None` when the file system has none (PolicyNotFound).
async fn backup_status(aws: &Aws, id: &str) -> Result<Option<Status>, ResourceError> {
    let described = aws
        .clients
        .efs
        .describe_backup_policy()
        .file_system_id(id)
        .send()
        .await
        .map_err(err("reading the file system's backup policy"));
    match described {
        Ok(out) => Ok(out.backup_policy().map(|p| p.status().clone())),
        // PolicyNotFound: no policy at all, which is "off".
        Err(e) if e.is(ErrorClass::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Backups were asked for at create time; put them back if someone turned them off.
async fn repair_backup_policy(aws: &Aws, id: &str) -> Result<(), ResourceError> {
    let status = backup_status(aws, id).await?;
    if backup_needs_repair(status.as_ref()) {
        tracing::info!(file_system = id, "automatic backups were off: turning them on");
        aws.clients
            .efs
            .put_backup_policy()
            .file_system_id(id)
            .backup_policy(backup_enabled()?)
            .send()
            .await
            .map_err(err("turning automatic backups on"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(id: &str, token: &str, ours: bool) -> Listed {
        Listed {
            id: id.into(),
            creation_token: token.into(),
            ours,
        }
    }

    #[test]
    fn the_creation_token_wins_then_the_one_tagged_ours_and_two_tagged_are_not_guessed() {
        let tok = "pi-deploy-d-efs";
        let id = |l: &[Listed]| choose_file_system(l, tok).map(|c| c.map(|c| c.id.clone()));
        assert_eq!(id(&[]), Ok(None));
        // Someone else's file systems (no token of ours, no tags of ours) are never adopted.
        assert_eq!(id(&[fs("fs-a", "other", false)]), Ok(None));
        // The one made with the token, even beside a restored one (a restore between steps).
        let both = [fs("fs-new", "pi-restore-1", true), fs("fs-old", tok, true)];
        assert_eq!(id(&both), Ok(Some("fs-old".into())));
        // After a whole-file-system restore and `--finish`: the restored one, by its tags.
        let restored = [fs("fs-a", "other", false), fs("fs-new", "pi-restore-1", true)];
        assert_eq!(id(&restored), Ok(Some("fs-new".into())));
        // Two tagged, none with the token: an error naming both and the fix.
        let two = [fs("fs-1", "pi-restore-1", true), fs("fs-2", "pi-restore-2", true)];
        let e = id(&two).unwrap_err();
        assert!(
            e.contains("fs-1, fs-2") && e.contains("delete the one that is not in use"),
            "{e}"
        );
    }

    #[test]
    fn backup_policy_repair_decision() {
        assert!(!backup_needs_repair(Some(&Status::Enabled)));
        assert!(!backup_needs_repair(Some(&Status::Enabling)));
        assert!(backup_needs_repair(Some(&Status::Disabled)));
        assert!(backup_needs_repair(Some(&Status::Disabling)));
        assert!(backup_needs_repair(None));
        assert_eq!(backup_enabled().unwrap().status(), &Status::Enabled);
    }

    #[test]
    fn repair_request_enables_backups_on_the_file_system() {
        let client = aws_sdk_efs::Client::from_conf(
            aws_sdk_efs::Config::builder()
                .behavior_version(aws_sdk_efs::config::BehaviorVersion::latest())
                .region(aws_sdk_efs::config::Region::new("eu-west-1"))
                .build(),
        );
        let req = client
            .put_backup_policy()
            .file_system_id("fs-1")
            .backup_policy(backup_enabled().unwrap());
        assert_eq!(req.as_input().get_file_system_id().as_deref(), Some("fs-1"));
        assert_eq!(
            req.as_input().get_backup_policy().as_ref().map(|p| p.status()),
            Some(&Status::Enabled)
        );
    }

    #[test]
    fn lifecycle_polls() {
        assert!(matches!(
            poll_available(Some(&LifeCycleState::Available)),
            Poll::Ready(())
        ));
        assert!(matches!(poll_available(Some(&LifeCycleState::Creating)), Poll::Pending(s) if s == "creating"));
        assert!(matches!(poll_available(Some(&LifeCycleState::Error)), Poll::Failed(_)));
        assert!(matches!(
            poll_available(Some(&LifeCycleState::Deleting)),
            Poll::Failed(_)
        ));
    }

    const ARN: &str = "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-1";

    fn plan(require_tls: bool, live: &Settings) -> Vec<Change> {
        crate::core::diff::diff(ATTRS, &desired_settings(require_tls), live, None)
    }

    #[test]
    fn the_tls_policy_follows_the_switch_and_backups_are_drift() {
        let tls = policy::efs_tls_only(ARN);
        let converged = live_settings(Some(&tls), Some(&Status::Enabled));
        assert!(plan(true, &converged).is_empty());
        assert!(plan(false, &live_settings(None, Some(&Status::Enabling))).is_empty());

        // Switched on for a file system without a policy, and off again.
        let on = plan(true, &live_settings(None, Some(&Status::Enabled)));
        assert_eq!(on.len(), 1);
        assert_eq!(
            (on[0].attribute.as_str(), on[0].old.as_str(), on[0].new.as_str()),
            ("tls_only_policy", "none", "yes")
        );
        assert_eq!(on[0].action, ChangeAction::Update);
        assert_eq!(on[0].fields, vec!["storage.efs_require_tls".to_string()]);
        let off = plan(false, &converged);
        assert_eq!((off[0].old.as_str(), off[0].new.as_str()), ("yes", "none"));

        // A policy put by hand that allows plain NFS is replaced; backups turned off come back.
        let other = serde_json::json!({"Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "*"}]});
        let drifted = plan(true, &live_settings(Some(&other), Some(&Status::Disabled)));
        let got: Vec<(&str, &str, &str)> = drifted
            .iter()
            .map(|c| (c.attribute.as_str(), c.old.as_str(), c.new.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("tls_only_policy", OTHER_POLICY, "yes"),
                ("backup_policy", "disabled", "enabled")
            ]
        );
        assert_eq!(
            plan(true, &live_settings(Some(&tls), None))[0].old,
            "none",
            "no backup policy at all is off"
        );
    }

    #[test]
    fn a_reformatted_tls_policy_still_reads_as_tls_only() {
        // AWS may return the document with a single statement object and plain "*".
        let doc = serde_json::json!({"Version": "2012-10-17", "Statement": {
            "Effect": "Deny", "Principal": "*", "Action": ["*"],
            "Condition": {"Bool": {"aws:SecureTransport": false}}}});
        assert!(is_tls_only(&doc));
        let allow = serde_json::json!({"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "*",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]});
        assert!(!is_tls_only(&allow));
        assert!(!is_tls_only(&serde_json::json!({})));
    }

    /// A file system's policies as the calls leave them, and the calls made.
    #[derive(Default)]
    struct Fake {
        policy: std::sync::Mutex<Option<Value>>,
        backup: std::sync::Mutex<Option<Status>>,
        calls: std::sync::Mutex<Vec<&'static str>>,
    }

    #[async_trait]
    impl EfsPolicies for Fake {
        async fn policy(&self) -> Result<Option<Value>, ResourceError> {
            self.calls.lock().unwrap().push("DescribeFileSystemPolicy");
            Ok(self.policy.lock().unwrap().clone())
        }
        async fn put_policy(&self, doc: &Value) -> Result<(), ResourceError> {
            self.calls.lock().unwrap().push("PutFileSystemPolicy");
            *self.policy.lock().unwrap() = Some(doc.clone());
            Ok(())
        }
        async fn delete_policy(&self) -> Result<(), ResourceError> {
            self.calls.lock().unwrap().push("DeleteFileSystemPolicy");
            *self.policy.lock().unwrap() = None;
            Ok(())
        }
        async fn backup(&self) -> Result<Option<Status>, ResourceError> {
            self.calls.lock().unwrap().push("DescribeBackupPolicy");
            Ok(self.backup.lock().unwrap().clone())
        }
        async fn enable_backup(&self) -> Result<(), ResourceError> {
            self.calls.lock().unwrap().push("PutBackupPolicy");
            *self.backup.lock().unwrap() = Some(Status::Enabled);
            Ok(())
        }
    }

    /// read, diff, apply, read again: what `plan` and `up` do, against the fake.
    async fn converge_once(fake: &Fake, require_tls: bool) -> Vec<Change> {
        let changes = plan(require_tls, &read_settings(fake).await.unwrap());
        apply(fake, ARN, require_tls, &changes).await.unwrap();
        assert!(
            plan(require_tls, &read_settings(fake).await.unwrap()).is_empty(),
            "a second plan has nothing to do"
        );
        changes
    }

    #[tokio::test]
    async fn switching_tls_off_deletes_the_policy_and_on_puts_it_back() {
        let fake = Fake {
            policy: std::sync::Mutex::new(Some(policy::efs_tls_only(ARN))),
            backup: std::sync::Mutex::new(Some(Status::Enabled)),
            ..Fake::default()
        };
        let off = converge_once(&fake, false).await;
        assert_eq!(off.len(), 1);
        assert!(fake.policy.lock().unwrap().is_none());
        let on = converge_once(&fake, true).await;
        assert_eq!((on[0].old.as_str(), on[0].new.as_str()), ("none", "yes"));
        assert_eq!(*fake.policy.lock().unwrap(), Some(policy::efs_tls_only(ARN)));
        let writes: Vec<&str> = fake
            .calls
            .lock()
            .unwrap()
            .iter()
            .copied()
            .filter(|c| !c.starts_with("Describe"))
            .collect();
        assert_eq!(writes, vec!["DeleteFileSystemPolicy", "PutFileSystemPolicy"]);
    }

    #[tokio::test]
    async fn backups_turned_off_by_hand_are_turned_on_and_nothing_else_is_touched() {
        let fake = Fake {
            policy: std::sync::Mutex::new(None),
            backup: std::sync::Mutex::new(Some(Status::Disabled)),
            ..Fake::default()
        };
        let changes = converge_once(&fake, false).await;
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].attribute, "backup_policy");
        assert_eq!(*fake.backup.lock().unwrap(), Some(Status::Enabled));
        assert!(!fake.calls.lock().unwrap().contains(&"PutFileSystemPolicy"));
        assert!(!fake.calls.lock().unwrap().contains(&"DeleteFileSystemPolicy"));
    }

    #[test]
    fn tags_are_ours_only_with_deployment_and_key() {
        let t = efs_tags("pi", "efs").unwrap();
        assert!(efs_is_ours(&t, "pi", "efs"));
        assert!(!efs_is_ours(&t, "pi-2", "efs"));
        assert!(!efs_is_ours(&t, "pi", "efs-ap"));
    }
}
