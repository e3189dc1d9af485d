//! The launch lifecycle hook, converged like any resource: the group's creation-time hook list
//! is not honoured everywhere, so `find` describes the group's hooks and `create` puts it.
//! PutLifecycleHook is an upsert, so running it again after a crash is harmless.

use async_trait::async_trait;

use super::auto_scaling_group::{LAUNCH_TRANSITION, describe_group, reclassify_missing_group};
use super::{Aws, ResourceKind, props};
use crate::aws::sdk;
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Outputs, ResourceError};

pub struct LifecycleHook;

fn outputs(name: &str, asg: &str) -> Outputs {
    Outputs::new().with("id", name).with("asg", asg)
}

async fn exists(aws: &Aws, asg: &str, name: &str) -> Result<bool, ResourceError> {
    let out = aws
        .clients
        .autoscaling
        .describe_lifecycle_hooks()
        .auto_scaling_group_name(asg)
        .lifecycle_hook_names(name)
        .send()
        .await
        .map_err(|e| reclassify_missing_group(sdk("describing the lifecycle hooks", e)));
    match out {
        Ok(o) => Ok(o
            .lifecycle_hooks()
            .iter()
            .any(|h| h.lifecycle_hook_name() == Some(name))),
        Err(e) if e.is(ErrorClass::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl ResourceKind for LifecycleHook {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (asg, name) = props!(cx, LifecycleHook { asg, name });
        let group = cx.dep_id(asg)?;
        Ok(exists(aws, group, name).await?.then(|| outputs(name, group)))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (asg, name) = props!(cx, LifecycleHook { asg, name });
        let group = cx.dep_id(asg)?;
        let scaling = &aws.env.config.scaling;
        aws.clients
            .autoscaling
            .put_lifecycle_hook()
            .auto_scaling_group_name(group)
            .lifecycle_hook_name(name)
            .lifecycle_transition(LAUNCH_TRANSITION)
            .heartbeat_timeout(scaling.lifecycle_heartbeat_seconds)
            .default_result("ABANDON")
            .send()
            .await
            .map_err(|e| sdk("putting the launch lifecycle hook", e))?;
        Ok(outputs(name, group))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let name = cx.outputs.id()?;
        let group = cx.outputs.require("asg")?;
        // Gone with its group, or never put: nothing to do.
        if describe_group(aws, group).await?.is_none() || !exists(aws, group, name).await? {
            return Ok(());
        }
        let r = aws
            .clients
            .autoscaling
            .delete_lifecycle_hook()
            .auto_scaling_group_name(group)
            .lifecycle_hook_name(name)
            .send()
            .await
            .map_err(|e| reclassify_missing_group(sdk("deleting the lifecycle hook", e)));
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.is(ErrorClass::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
