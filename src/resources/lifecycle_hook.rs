//! The launch lifecycle hook, converged like any resource: the group's creation-time hook list
//! is not honoured everywhere, so `find` describes the group's hooks and `create` puts it.
//! PutLifecycleHook is an upsert, so running it again after a crash is harmless.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_autoscaling::types as t;

use super::auto_scaling_group::{LAUNCH_TRANSITION, describe_group, is_deleting, reclassify_missing_group};
use super::{Aws, ResourceKind, props};
use crate::aws::sdk;
use crate::core::diff::{AttrSpec, Change, ChangeAction, Settings, settings};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{NodeSpec, Props};

pub struct LifecycleHook;

pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::with(
        "heartbeat_seconds",
        ChangeAction::Update,
        "applies to instances that enter the hook later",
        &["scaling.lifecycle_heartbeat_seconds"],
    ),
    AttrSpec::update("default_result", &[]),
    AttrSpec::update("transition", &[]),
];

pub fn desired_settings(heartbeat_seconds: i32) -> Settings {
    settings([
        ("heartbeat_seconds", heartbeat_seconds.to_string()),
        ("default_result", "ABANDON".to_string()),
        ("transition", LAUNCH_TRANSITION.to_string()),
    ])
}

pub fn live_settings(h: &t::LifecycleHook) -> Settings {
    settings([
        (
            "heartbeat_seconds",
            h.heartbeat_timeout().unwrap_or_default().to_string(),
        ),
        ("default_result", h.default_result().unwrap_or_default().to_string()),
        ("transition", h.lifecycle_transition().unwrap_or_default().to_string()),
    ])
}

async fn describe(aws: &Aws, asg: &str, name: &str) -> Result<Option<t::LifecycleHook>, ResourceError> {
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
            .find(|h| h.lifecycle_hook_name() == Some(name))
            .cloned()),
        Err(e) if e.is(ErrorClass::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

fn outputs(name: &str, asg: &str) -> Outputs {
    Outputs::new().with("id", name).with("asg", asg)
}

async fn exists(aws: &Aws, asg: &str, name: &str) -> Result<bool, ResourceError> {
    Ok(describe(aws, asg, name).await?.is_some())
}

#[async_trait]
impl ResourceKind for LifecycleHook {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (asg, name) = props!(cx, LifecycleHook { asg, name });
        let group = cx.dep_id(asg)?;
        Ok(exists(aws, group, name).await?.then(|| outputs(name, group)))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (asg, name, heartbeat) = props!(
            cx,
            LifecycleHook {
                asg,
                name,
                heartbeat_seconds
            }
        );
        let group = cx.dep_id(asg)?;
        aws.clients
            .autoscaling
            .put_lifecycle_hook()
            .auto_scaling_group_name(group)
            .lifecycle_hook_name(name)
            .lifecycle_transition(LAUNCH_TRANSITION)
            .heartbeat_timeout(*heartbeat)
            .default_result("ABANDON")
            .send()
            .await
            .map_err(|e| sdk("putting the launch lifecycle hook", e))?;
        Ok(outputs(name, group))
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, _deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::LifecycleHook { heartbeat_seconds, .. } => desired_settings(*heartbeat_seconds),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(match describe(aws, outputs.require("asg")?, outputs.id()?).await? {
            Some(h) => Observed::Present(live_settings(&h)),
            None => Observed::Missing,
        })
    }

    /// PutLifecycleHook is an upsert: the create call again.
    async fn update(
        &self,
        aws: &Aws,
        cx: &NodeCtx<'_>,
        _outputs: Outputs,
        _changes: &[Change],
    ) -> Result<Outputs, ResourceError> {
        self.create(aws, cx).await
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let name = cx.outputs.id()?;
        let group = cx.outputs.require("asg")?;
        // Gone with its group, going with it (a destroy need not wait for the hook:
        // `Kind::deleted_with_container`), or never put: nothing to do.
        match describe_group(aws, group).await? {
            None => return Ok(()),
            Some(g) if is_deleting(&g) => return Ok(()),
            Some(_) => {}
        }
        if !exists(aws, group, name).await? {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_longer_heartbeat_is_an_update_of_the_hook() {
        let live = live_settings(
            &t::LifecycleHook::builder()
                .heartbeat_timeout(2400)
                .default_result("ABANDON")
                .lifecycle_transition(LAUNCH_TRANSITION)
                .build(),
        );
        assert!(crate::core::diff::diff(ATTRS, &desired_settings(2400), &live, None).is_empty());
        let c = crate::core::diff::diff(ATTRS, &desired_settings(3600), &live, None);
        assert_eq!(c.len(), 1);
        assert_eq!((c[0].old.as_str(), c[0].new.as_str()), ("2400", "3600"));
        assert_eq!(c[0].action, ChangeAction::Update);
    }
}
