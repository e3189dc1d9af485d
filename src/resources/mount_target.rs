//! An EFS mount target in one app subnet, guarded by the efs security group. Mount targets
//! take no tags and no client token; each subnet's AZ holds at most one per file system,
//! so the subnet identifies it: found by listing the file system's mount targets.
//! Creation takes minutes on AWS (median ~80 s, tail 10 min), so `converge` waits.

use async_trait::async_trait;
use aws_sdk_efs::types::{LifeCycleState, MountTargetDescription};

use super::file_system::{is_gone, poll_available, state_name};
use super::{Aws, ResourceKind, ec2, observe, props};
use crate::aws::consistency;
use crate::aws::err;
use crate::aws::wait::{self, Backoff, Poll};
use crate::core::diff::Settings;
use crate::core::latency::{self, Transition};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::Kind;

pub struct MountTarget;

fn outputs_of(m: &MountTargetDescription) -> Outputs {
    Outputs::new()
        .with("id", m.mount_target_id())
        .with("file_system_id", m.file_system_id())
        .with("subnet_id", m.subnet_id())
}

async fn in_subnet(aws: &Aws, file_system_id: &str, subnet_id: &str) -> Result<Option<Outputs>, ResourceError> {
    let listed = aws
        .clients
        .efs
        .describe_mount_targets()
        .file_system_id(file_system_id)
        .send()
        .await
        .map_err(err("listing the file system's mount targets"));
    let Some(out) = ec2::not_found_is_none(listed)? else {
        return Ok(None);
    };
    Ok(out
        .mount_targets()
        .iter()
        .filter(|m| m.subnet_id() == subnet_id && !is_gone(Some(m.life_cycle_state())))
        .map(outputs_of)
        .next())
}

async fn describe(aws: &Aws, id: &str) -> Result<Option<MountTargetDescription>, ResourceError> {
    let out = aws
        .clients
        .efs
        .describe_mount_targets()
        .mount_target_id(id)
        .send()
        .await
        .map_err(err("describing the mount target"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.mount_targets().first().cloned()))
}

#[async_trait]
impl ResourceKind for MountTarget {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (file_system, subnet) = props!(cx, MountTarget { file_system, subnet });
        in_subnet(aws, cx.dep_id(file_system)?, cx.dep_id(subnet)?).await
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (file_system, subnet, security_group) = props!(
            cx,
            MountTarget {
                file_system,
                subnet,
                security_group
            }
        );
        let (fs_id, subnet_id) = (cx.dep_id(file_system)?, cx.dep_id(subnet)?);
        let created = aws
            .clients
            .efs
            .create_mount_target()
            .file_system_id(fs_id)
            .subnet_id(subnet_id)
            .security_groups(cx.dep_id(security_group)?)
            .send()
            .await
            .map_err(err("creating the mount target"));
        match created {
            Ok(m) => Ok({
                if m.life_cycle_state() == &LifeCycleState::Creating {
                    aws.started.note(m.mount_target_id());
                }
                Outputs::new()
                    .with("id", m.mount_target_id())
                    .with("file_system_id", m.file_system_id())
                    .with("subnet_id", m.subnet_id())
            }),
            // An earlier attempt created it (MountTargetConflict: one per AZ): take it.
            Err(e) if e.code.as_deref() == Some("MountTargetConflict") => {
                ec2::retry_not_found("looking up the existing mount target", || async {
                    in_subnet(aws, fs_id, subnet_id).await?.ok_or_else(|| ResourceError {
                        class: ErrorClass::NotFound,
                        ..e.clone()
                    })
                })
                .await
            }
            Err(e) => Err(e),
        }
    }

    async fn converge(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let id = outputs.id()?.to_string();
        wait::wait_for(
            &format!("mount target {id} to become available"),
            latency::create_deadline(Kind::MountTarget),
            Backoff::expecting(Transition::MountTargetCreate, aws.started.get(&id)),
            || async {
                Ok(match describe(aws, &id).await? {
                    None => return consistency::not_visible(format!("mount target {id}")),
                    Some(m) => poll_available(Some(m.life_cycle_state())),
                })
            },
        )
        .await?;
        Ok(outputs)
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        // Deleted with its file system too (MountTargetNotFound).
        Ok(observe::observed_unless(
            describe(aws, outputs.id()?).await?,
            |m| is_gone(Some(m.life_cycle_state())),
            |_| Settings::new(),
        ))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let id = cx.outputs.id()?;
        let started = ec2::delete_started(Kind::MountTarget, &format!("deleting mount target {id}"), || async {
            aws.clients
                .efs
                .delete_mount_target()
                .mount_target_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(err("deleting the mount target"))
        })
        .await?;
        // The file system refuses deletion until its mount targets are really gone.
        wait::wait_for(
            &format!("mount target {id} to be deleted"),
            latency::delete_deadline(Kind::MountTarget),
            Backoff::expecting(Transition::MountTargetDelete, started),
            || async {
                Ok(match describe(aws, id).await? {
                    None => Poll::Ready(()),
                    Some(m) if m.life_cycle_state() == &LifeCycleState::Deleted => Poll::Ready(()),
                    Some(m) => Poll::Pending(state_name(Some(m.life_cycle_state()))),
                })
            },
        )
        .await
    }
}
