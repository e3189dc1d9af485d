//! The EFS file system: encrypted, generalPurpose, automatic backups on (`Backup=true` at
//! create, so AWS Backup keeps restore points; PutBackupPolicy only repairs drift), and,
//! with `storage.efs_require_tls`, a file-system policy that refuses NFS without TLS
//! (`core::policy::efs_tls_only`; the instances mount with amazon-efs-utils `-o tls`, the
//! Lambda always mounts over TLS).
//!
//! Found by its creation token, which derives from the deployment: the token is EFS's own
//! idempotency key, so a retried create returns `FileSystemAlreadyExists`, which does not
//! always carry the id: the lookup by token finds it.

use async_trait::async_trait;
use aws_sdk_efs::types::{self as t, BackupPolicy, LifeCycleState, PerformanceMode, Status};

use super::{Aws, ResourceKind, ec2, observe, props};
use crate::aws::consistency;
use crate::aws::wait::{self, Backoff, Poll};
use crate::aws::{err, tags};
use crate::core::diff::Settings;
use crate::core::latency::{self, Transition};
use crate::core::names;
use crate::core::policy;
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::Kind;

pub struct FileSystem;

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

async fn find_by_token(aws: &Aws) -> Result<Option<Outputs>, ResourceError> {
    let token = names::efs_creation_token(&aws.env.deployment);
    let found: Vec<t::FileSystemDescription> = aws
        .clients
        .efs
        .describe_file_systems()
        .creation_token(&token)
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
    async fn find(&self, aws: &Aws, _cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        find_by_token(aws).await
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
                    find_by_token(aws).await?.ok_or_else(|| {
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

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(observe::observed_unless(
            describe(aws, outputs.id()?).await?,
            |fs| is_gone(Some(fs.life_cycle_state())),
            |_| Settings::new(),
        ))
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
            Backoff::expecting(Transition::FileSystemDelete, started).look_first(),
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

/// Backups were asked for at create time; put them back if someone turned them off.
async fn repair_backup_policy(aws: &Aws, id: &str) -> Result<(), ResourceError> {
    let described = aws
        .clients
        .efs
        .describe_backup_policy()
        .file_system_id(id)
        .send()
        .await
        .map_err(err("reading the file system's backup policy"));
    let status = match described {
        Ok(out) => out.backup_policy().map(|p| p.status().clone()),
        // PolicyNotFound: no policy at all, which is "off".
        Err(e) if e.is(ErrorClass::NotFound) => None,
        Err(e) => return Err(e),
    };
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

    #[test]
    fn tags_are_ours_only_with_deployment_and_key() {
        let t = efs_tags("pi", "efs").unwrap();
        assert!(efs_is_ours(&t, "pi", "efs"));
        assert!(!efs_is_ours(&t, "pi-2", "efs"));
        assert!(!efs_is_ours(&t, "pi", "efs-ap"));
    }
}
