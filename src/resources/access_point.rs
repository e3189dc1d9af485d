//! The EFS access point the side-loading Lambda mounts: it acts as the dashboard user
//! (POSIX uid/gid) and roots the Lambda in the dashboard's directory, created 0755 and
//! owned by that user when missing (never uid 0, never 0777).
//!
//! The client token is sent (AWS's idempotency for a retried create), but some
//! implementations ignore it and create a duplicate, so `find` lists the file system's
//! access points and picks ours by tag first.

use async_trait::async_trait;
use aws_sdk_efs::types::{AccessPointDescription, CreationInfo, LifeCycleState, PosixUser, RootDirectory};

use super::file_system::{efs_is_ours, efs_tags, invalid, is_gone, poll_available, state_name};
use super::{Aws, ResourceKind, ec2, observe, props};
use crate::aws::consistency;
use crate::aws::err;
use crate::aws::wait::{self, Backoff, Poll};
use crate::core::diff::Settings;
use crate::core::latency;
use crate::core::resource::{DeleteCtx, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::Kind;

pub struct AccessPoint;

/// Mode of the root directory when EFS creates it: the owner writes, others read.
pub const ROOT_PERMISSIONS: &str = "0755";

pub fn posix_user(uid: i64, gid: i64) -> Result<PosixUser, ResourceError> {
    PosixUser::builder().uid(uid).gid(gid).build().map_err(invalid)
}

pub fn root_directory(path: &str, uid: i64, gid: i64) -> Result<RootDirectory, ResourceError> {
    let creation = CreationInfo::builder()
        .owner_uid(uid)
        .owner_gid(gid)
        .permissions(ROOT_PERMISSIONS)
        .build()
        .map_err(invalid)?;
    Ok(RootDirectory::builder().path(path).creation_info(creation).build())
}

fn outputs_of(a: &AccessPointDescription) -> Option<Outputs> {
    Some(
        Outputs::new()
            .with("id", a.access_point_id()?)
            .with("arn", a.access_point_arn().unwrap_or_default())
            .with("file_system_id", a.file_system_id().unwrap_or_default()),
    )
}

async fn describe(aws: &Aws, id: &str) -> Result<Option<AccessPointDescription>, ResourceError> {
    let out = aws
        .clients
        .efs
        .describe_access_points()
        .access_point_id(id)
        .send()
        .await
        .map_err(err("describing the access point"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.access_points().first().cloned()))
}

#[async_trait]
impl ResourceKind for AccessPoint {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (file_system,) = props!(cx, AccessPoint { file_system });
        let listed = aws
            .clients
            .efs
            .describe_access_points()
            .file_system_id(cx.dep_id(file_system)?)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(err("listing the file system's access points"));
        let Some(points) = ec2::not_found_is_none(listed)? else {
            return Ok(None);
        };
        Ok(points
            .iter()
            .filter(|a| !is_gone(a.life_cycle_state()))
            .find(|a| efs_is_ours(a.tags(), &aws.env.deployment, &cx.spec.key))
            .and_then(outputs_of))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (file_system, uid, gid, path) = props!(
            cx,
            AccessPoint {
                file_system,
                uid,
                gid,
                path
            }
        );
        let fs_id = cx.dep_id(file_system)?;
        let out = aws
            .clients
            .efs
            .create_access_point()
            .client_token(cx.token)
            .file_system_id(fs_id)
            .posix_user(posix_user(*uid, *gid)?)
            .root_directory(root_directory(path, *uid, *gid)?)
            .set_tags(Some(efs_tags(&aws.env.deployment, &cx.spec.key)?))
            .send()
            .await
            .map_err(err("creating the access point"))?;
        Ok(Outputs::new()
            .with("id", out.access_point_id().unwrap_or_default())
            .with("arn", out.access_point_arn().unwrap_or_default())
            .with("file_system_id", fs_id))
    }

    async fn converge(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let id = outputs.id()?.to_string();
        wait::wait_for(
            &format!("access point {id} to become available"),
            latency::create_deadline(Kind::AccessPoint),
            Backoff::QUICK,
            || async {
                Ok(match describe(aws, &id).await? {
                    None => return consistency::not_visible(format!("access point {id}")),
                    Some(a) => poll_available(a.life_cycle_state()),
                })
            },
        )
        .await?;
        Ok(outputs)
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        // Deleted with its file system too (AccessPointNotFound).
        Ok(observe::observed_unless(
            describe(aws, outputs.id()?).await?,
            |a| is_gone(a.life_cycle_state()),
            |_| Settings::new(),
        ))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let id = cx.outputs.id()?;
        ec2::delete_retrying(Kind::AccessPoint, &format!("deleting access point {id}"), || async {
            aws.clients
                .efs
                .delete_access_point()
                .access_point_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(err("deleting the access point"))
        })
        .await?;
        wait::wait_for(
            &format!("access point {id} to be deleted"),
            latency::delete_deadline(Kind::AccessPoint),
            Backoff::QUICK,
            || async {
                Ok(match describe(aws, id).await? {
                    None => Poll::Ready(()),
                    Some(a) if a.life_cycle_state() == Some(&LifeCycleState::Deleted) => Poll::Ready(()),
                    Some(a) => Poll::Pending(state_name(a.life_cycle_state())),
                })
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lambda_acts_as_the_dashboard_user_in_a_0755_root() {
        let u = posix_user(1000, 1001).unwrap();
        assert_eq!((u.uid(), u.gid()), (1000, 1001));
        let r = root_directory("/var/panintelligence", 1000, 1001).unwrap();
        assert_eq!(r.path(), Some("/var/panintelligence"));
        let c = r.creation_info().unwrap();
        assert_eq!((c.owner_uid(), c.owner_gid(), c.permissions()), (1000, 1001, "0755"));
    }
}
