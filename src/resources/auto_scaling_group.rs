//! The Auto Scaling group of dashboard instances: the launch template at an explicit version,
//! both app subnets (multi-AZ), the target group, ELB health checks (a dead dashboard is
//! replaced), termination of the oldest template / oldest instance first, and the launch
//! lifecycle hook that holds each new instance in Pending:Wait until its user data has
//! started the dashboard (the hook is converged again as its own resource, because not every
//! implementation honours the creation-time list).
//!
//! `create` does not wait for instances: they boot while the database is still being built,
//! and the dashboard check at the end of `up` waits for a healthy target.
//!
//! IAM propagation: the group launches instances with the new instance profile at once, and
//! AWS can refuse the profile (`Invalid IamInstanceProfile`) for a minute or two after it was
//! created. Exactly that error class is retried, within a budget (`retry_iam_propagation`).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_autoscaling::types::{self as t, LaunchTemplateSpecification, LifecycleHookSpecification, Tag};

use super::{Aws, ResourceKind, ec2, props};
use crate::aws::wait::{self, Backoff, Poll};
use crate::aws::{err, tags};
use crate::core::activity::Activity;
use crate::core::diff::{self, AttrSpec, Change, ChangeAction, Settings, settings};
use crate::core::latency::{self, Transition};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props};

/// What `up` can change on a live group.
pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::update("min_size", &["scaling.min"]),
    AttrSpec::with(
        "max_size",
        ChangeAction::Update,
        "lowering it below the running count terminates instances (oldest first)",
        &["scaling.max"],
    ),
    AttrSpec::with(
        "desired_capacity",
        ChangeAction::Update,
        "lowering it terminates instances after they drain; between runs the scaling policies own it",
        &["scaling.desired"],
    ),
    AttrSpec::update("health_check_grace_seconds", &["scaling.health_check_grace_seconds"]),
    AttrSpec::with(
        "health_check_type",
        ChangeAction::Update,
        "targets the load balancer reports unhealthy are replaced",
        &[],
    ),
    AttrSpec::with(
        "subnets",
        ChangeAction::Update,
        "instances in a removed subnet are replaced",
        &["network.app_subnet_cidrs"],
    ),
    AttrSpec::update("termination_policies", &[]),
    AttrSpec::with(
        "target_groups",
        ChangeAction::Update,
        "the instances are registered with the new group before they are drained from the old one",
        &["dashboard_port"],
    ),
];

/// The desired settings (pure). `subnets` are the subnets' ids, as dependencies.
pub fn desired_settings(spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
    let Props::AutoScalingGroup {
        subnets,
        target_group,
        min,
        max,
        desired,
        health_check_grace_seconds,
        ..
    } = &spec.props
    else {
        return Settings::new();
    };
    settings([
        ("min_size", min.to_string()),
        ("max_size", max.to_string()),
        ("desired_capacity", desired.to_string()),
        ("health_check_grace_seconds", health_check_grace_seconds.to_string()),
        ("health_check_type", "ELB".to_string()),
        (
            "subnets",
            diff::list(subnets.iter().map(|k| super::dep_output(deps, k, "id"))),
        ),
        ("termination_policies", diff::list(TERMINATION_POLICIES)),
        (
            "target_groups",
            diff::list([super::dep_output(deps, target_group, "id")]),
        ),
    ])
}

/// The live settings of a described group. The live desired capacity counts as the
/// configured one while the config has not changed since it was applied (`applied`: the
/// desired capacity recorded then) and it lies within the configured bounds: between runs
/// the scaling policies own it, and `up` must not undo a scale-out.
pub fn live_settings(g: &t::AutoScalingGroup, configured: (i32, i32, i32), applied: Option<i32>) -> Settings {
    let (min, max, desired) = configured;
    let live_desired = g.desired_capacity().unwrap_or_default();
    let owned_by_policies = applied == Some(desired) && (min..=max).contains(&live_desired);
    settings([
        ("min_size", g.min_size().unwrap_or_default().to_string()),
        ("max_size", g.max_size().unwrap_or_default().to_string()),
        (
            "desired_capacity",
            if owned_by_policies { desired } else { live_desired }.to_string(),
        ),
        (
            "health_check_grace_seconds",
            g.health_check_grace_period().unwrap_or_default().to_string(),
        ),
        (
            "health_check_type",
            g.health_check_type().unwrap_or_default().to_string(),
        ),
        (
            "subnets",
            diff::list(
                g.vpc_zone_identifier()
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty()),
            ),
        ),
        (
            "termination_policies",
            diff::list(g.termination_policies().iter().cloned()),
        ),
        ("target_groups", diff::list(g.target_group_arns().iter().cloned())),
    ])
}

/// The target groups to attach and to detach to go from `live` to `wanted` (pure): every
/// wanted one not attached, every attached one not wanted.
pub fn target_group_moves(wanted: &[String], live: &[String]) -> (Vec<String>, Vec<String>) {
    let attach = wanted.iter().filter(|w| !live.contains(w)).cloned().collect();
    let detach = live.iter().filter(|l| !wanted.contains(l)).cloned().collect();
    (attach, detach)
}

pub struct AutoScalingGroup;

pub const LAUNCH_TRANSITION: &str = "autoscaling:EC2_INSTANCE_LAUNCHING";
pub const TERMINATION_POLICIES: [&str; 2] = ["OldestLaunchTemplate", "OldestInstance"];

/// How long a use of a new instance profile may be refused while IAM propagates: the latency
/// model's slow figure, doubled (AWS documents "a few minutes" at worst).
pub fn iam_propagation_budget() -> Duration {
    let slow = latency::model()
        .get("create.iam_propagation")
        .map_or(120.0, |t| t.slow_s);
    Duration::from_secs_f64((slow * 2.0).max(180.0))
}

/// Run `op` (a call that makes AWS use the instance profile), retrying exactly the IAM
/// propagation error class within `budget`.
pub async fn retry_iam_propagation<T, F, Fut>(what: &str, budget: Duration, op: F) -> Result<T, ResourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ResourceError>>,
{
    wait::retry(what, budget, Backoff::QUICK, &[ErrorClass::IamPropagation], op)
        .await
        .map_err(|e| {
            if e.is(ErrorClass::IamPropagation) {
                e.with_hint(
                    "IAM has not made the instance profile usable yet: run `pi-deploy up` again in a few minutes",
                )
            } else {
                e
            }
        })
}

/// The launch hook: new instances wait (up to the heartbeat) until their user data completes
/// the action; without an answer they are abandoned, never put in service half-configured.
pub fn launch_hook(name: &str, heartbeat_seconds: i32) -> LifecycleHookSpecification {
    LifecycleHookSpecification::builder()
        .lifecycle_hook_name(name)
        .lifecycle_transition(LAUNCH_TRANSITION)
        .heartbeat_timeout(heartbeat_seconds)
        .default_result("ABANDON")
        .build()
}

/// The group's tags, propagated to its instances.
pub fn group_tags(deployment: &str, key: &str, name: &str) -> Vec<Tag> {
    tags::pairs(deployment, key)
        .into_iter()
        .map(|(k, v)| {
            Tag::builder()
                .resource_id(name)
                .resource_type("auto-scaling-group")
                .key(k)
                .value(v)
                .propagate_at_launch(true)
                .build()
        })
        .collect()
}

/// ValidationError "AutoScalingGroup name not found" is how Auto Scaling says NotFound.
pub fn reclassify_missing_group(mut e: ResourceError) -> ResourceError {
    if e.code.as_deref() == Some("ValidationError") && e.message.to_ascii_lowercase().contains("not found") {
        e.class = ErrorClass::NotFound;
    }
    e
}

/// The group, unless it does not exist or is being deleted.
pub async fn describe_group(aws: &Aws, name: &str) -> Result<Option<t::AutoScalingGroup>, ResourceError> {
    let out = aws
        .clients
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(name)
        .send()
        .await
        .map_err(err("describing the Auto Scaling group"))?;
    Ok(out
        .auto_scaling_groups()
        .iter()
        .find(|g| g.auto_scaling_group_name() == Some(name))
        .cloned())
}

/// The group's recent scaling activities (the newest page, newest first): where a launch
/// AWS could not make shows up (`core::activity`).
pub async fn scaling_activities(aws: &Aws, name: &str) -> Result<Vec<Activity>, ResourceError> {
    let out = aws
        .clients
        .autoscaling
        .describe_scaling_activities()
        .auto_scaling_group_name(name)
        .send()
        .await
        .map_err(err("reading the group's scaling activities"));
    let Some(out) = unless_denied(out)? else {
        return Ok(Vec::new());
    };
    Ok(out
        .activities()
        .iter()
        .map(|a| Activity {
            id: a.activity_id().unwrap_or_default().to_string(),
            status: a.status_code().map_or("Unknown", |c| c.as_str()).to_string(),
            description: a.description().unwrap_or_default().to_string(),
            message: a.status_message().map(String::from),
            started: a
                .start_time()
                .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
        })
        .collect())
}

/// A caller whose policy lacks autoscaling:DescribeScalingActivities (added by issue 16) still
/// gets the waits as before, without the early end: a refusal is "nothing known" (logged as
/// a warning), never a failure of the wait.
fn unless_denied<T>(r: Result<T, ResourceError>) -> Result<Option<T>, ResourceError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if crate::aws::error::is_denied(&e) => {
            tracing::warn!(error = %e.message, "scaling activities not readable: a failed launch is noticed only at the end of the wait");
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn is_ours(g: &t::AutoScalingGroup, deployment: &str, key: &str) -> bool {
    let has = |k: &str, v: &str| g.tags().iter().any(|t| t.key() == Some(k) && t.value() == Some(v));
    has(tags::DEPLOYMENT_TAG, deployment) && has(tags::KEY_TAG, key)
}

fn outputs_of(g: &t::AutoScalingGroup) -> Outputs {
    let lt = g.launch_template();
    Outputs::new()
        // The desired capacity last applied from the config (see `live_settings`).
        .with("desired_capacity", g.desired_capacity().unwrap_or_default().to_string())
        .with("id", g.auto_scaling_group_name().unwrap_or_default())
        .with("arn", g.auto_scaling_group_arn().unwrap_or_default())
        .with(
            "launch_template_id",
            lt.and_then(|l| l.launch_template_id()).unwrap_or_default(),
        )
        .with(
            "launch_template_version",
            lt.and_then(|l| l.version()).unwrap_or_default(),
        )
}

/// A group AWS is deleting (`Delete in progress`): its policies and hooks go with it.
pub fn is_deleting(g: &t::AutoScalingGroup) -> bool {
    g.status().is_some_and(|s| s.to_ascii_lowercase().contains("delete"))
}

/// Poll for instances to be terminated; `states` are (id, state name) as EC2 reports them.
pub fn terminated_poll(states: &[(String, String)]) -> Poll<()> {
    let left: Vec<String> = states
        .iter()
        .filter(|(_, s)| s != "terminated")
        .map(|(id, s)| format!("{id} {s}"))
        .collect();
    if left.is_empty() {
        Poll::Ready(())
    } else {
        Poll::Pending(left.join(", "))
    }
}

async fn instance_states(aws: &Aws, ids: &[String]) -> Result<Vec<(String, String)>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(err("describing the group's instances"));
    let Some(out) = ec2::not_found_is_none(out)? else {
        return Ok(Vec::new());
    };
    Ok(out
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .map(|i| {
            let state = i.state().and_then(|s| s.name()).map_or("unknown", |n| n.as_str());
            (i.instance_id().unwrap_or_default().to_string(), state.to_string())
        })
        .collect())
}

impl AutoScalingGroup {
    /// Attaches the wanted target groups first, then detaches the others: the instances are
    /// registered with a replacing group before they drain from the one it replaces. Both
    /// calls are idempotent (attaching an attached group, detaching a detached one: no-ops).
    async fn move_target_groups(&self, aws: &Aws, name: &str, wanted: &[String]) -> Result<(), ResourceError> {
        let live: Vec<String> = describe_group(aws, name)
            .await?
            .map(|g| g.target_group_arns().to_vec())
            .unwrap_or_default();
        let (attach, detach) = target_group_moves(wanted, &live);
        let asg = &aws.clients.autoscaling;
        if !attach.is_empty() {
            asg.attach_load_balancer_target_groups()
                .auto_scaling_group_name(name)
                .set_target_group_arns(Some(attach))
                .send()
                .await
                .map_err(|e| reclassify_missing_group(crate::aws::sdk("attaching the target group", e)))?;
        }
        if !detach.is_empty() {
            asg.detach_load_balancer_target_groups()
                .auto_scaling_group_name(name)
                .set_target_group_arns(Some(detach))
                .send()
                .await
                .map_err(|e| reclassify_missing_group(crate::aws::sdk("detaching the old target group", e)))?;
        }
        Ok(())
    }
}

#[async_trait]
impl ResourceKind for AutoScalingGroup {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (name,) = props!(cx, AutoScalingGroup { name });
        let Some(g) = describe_group(aws, name).await? else {
            return Ok(None);
        };
        if !is_ours(&g, &aws.env.deployment, &cx.spec.key) {
            return Err(ResourceError::new(
                ErrorClass::AlreadyExists,
                format!("an Auto Scaling group named {name} exists but does not belong to this deployment"),
            )
            .with_hint("choose another deployment name, or delete that group if it is a leftover"));
        }
        if is_deleting(&g) {
            return Err(
                ResourceError::new(ErrorClass::InUse, format!("Auto Scaling group {name} is being deleted"))
                    .with_hint("wait until the deletion finishes, then run `pi-deploy up` again"),
            );
        }
        Ok(Some(outputs_of(&g)))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (name, launch_template, subnets, target_group, min, max, desired, grace, hook_name, heartbeat) = props!(
            cx,
            AutoScalingGroup {
                name,
                launch_template,
                subnets,
                target_group,
                min,
                max,
                desired,
                health_check_grace_seconds,
                hook_name,
                heartbeat_seconds
            }
        );
        let lt = cx.dep(launch_template)?;
        let spec = LaunchTemplateSpecification::builder()
            .launch_template_id(lt.id()?)
            .version(lt.require("version")?)
            .build();
        let subnet_ids = subnets
            .iter()
            .map(|k| cx.dep_id(k))
            .collect::<Result<Vec<_>, _>>()?
            .join(",");
        let tg_arn = cx.dep_id(target_group)?;
        let hook = launch_hook(hook_name, *heartbeat);
        let tags = group_tags(&aws.env.deployment, &cx.spec.key, name);
        let created = retry_iam_propagation("creating the Auto Scaling group", iam_propagation_budget(), || async {
            aws.clients
                .autoscaling
                .create_auto_scaling_group()
                .auto_scaling_group_name(name)
                .launch_template(spec.clone())
                .min_size(*min)
                .max_size(*max)
                .desired_capacity(*desired)
                .vpc_zone_identifier(&subnet_ids)
                .target_group_arns(tg_arn)
                .health_check_type("ELB")
                .health_check_grace_period(*grace)
                .set_termination_policies(Some(TERMINATION_POLICIES.iter().map(|s| s.to_string()).collect()))
                .lifecycle_hook_specification_list(hook.clone())
                .set_tags(Some(tags.clone()))
                .send()
                .await
                .map(|_| ())
                .map_err(err("creating the Auto Scaling group"))
        })
        .await;
        match created {
            Ok(()) => {}
            // A create whose answer was lost: adopt the group if it is ours.
            Err(e) if e.is(ErrorClass::AlreadyExists) => return self.find(aws, cx).await?.ok_or(e),
            Err(e) => return Err(e),
        }
        // CreateAutoScalingGroup returns nothing: read the ARN back.
        let g = ec2::retry_not_found("reading the new Auto Scaling group", || async {
            describe_group(aws, name).await?.ok_or_else(|| {
                ResourceError::new(
                    ErrorClass::NotFound,
                    format!("Auto Scaling group {name} is not visible yet"),
                )
            })
        })
        .await?;
        Ok(outputs_of(&g))
    }

    async fn inspect(
        &self,
        aws: &Aws,
        cx: &crate::core::inspect::InspectCtx<'_>,
    ) -> Result<crate::core::inspect::Inspection, ResourceError> {
        super::inspect::auto_scaling_group(aws, cx).await
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        desired_settings(spec, deps)
    }

    async fn read(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let (min, max, desired) = props!(cx, AutoScalingGroup { min, max, desired });
        let Some(g) = describe_group(aws, outputs.id()?).await? else {
            return Ok(Observed::Missing);
        };
        if is_deleting(&g) {
            return Ok(Observed::Missing);
        }
        let applied = outputs.get("desired_capacity").and_then(|d| d.parse().ok());
        Ok(Observed::Present(live_settings(&g, (*min, *max, *desired), applied)))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &NodeCtx<'_>,
        mut outputs: Outputs,
        changes: &[Change],
    ) -> Result<Outputs, ResourceError> {
        let (subnets, target_group, min, max, desired, grace) = props!(
            cx,
            AutoScalingGroup {
                subnets,
                target_group,
                min,
                max,
                desired,
                health_check_grace_seconds
            }
        );
        let name = outputs.id()?.to_string();
        let changed = |a: &str| changes.iter().any(|c| c.attribute == a);
        let subnet_ids = subnets
            .iter()
            .map(|k| cx.dep_id(k))
            .collect::<Result<Vec<_>, _>>()?
            .join(",");
        let mut req = aws
            .clients
            .autoscaling
            .update_auto_scaling_group()
            .auto_scaling_group_name(&name)
            .min_size(*min)
            .max_size(*max)
            .health_check_type("ELB")
            .health_check_grace_period(*grace)
            .vpc_zone_identifier(subnet_ids)
            .set_termination_policies(Some(TERMINATION_POLICIES.iter().map(|s| s.to_string()).collect()));
        // The desired capacity only when the config asks for another one: between runs the
        // scaling policies own it.
        if changed("desired_capacity") {
            req = req.desired_capacity(*desired);
            outputs.set("desired_capacity", desired.to_string());
        }
        req.send()
            .await
            .map_err(|e| reclassify_missing_group(crate::aws::sdk("updating the Auto Scaling group", e)))?;
        if changed("target_groups") {
            self.move_target_groups(aws, &name, &[cx.dep_id(target_group)?.to_string()])
                .await?;
        }
        Ok(outputs)
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let name = cx.outputs.id()?;
        let Some(g) = describe_group(aws, name).await? else {
            return Ok(());
        };
        let instances: Vec<String> = g
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(String::from))
            .collect();
        let asg = &aws.clients.autoscaling;
        let mut started = None;
        if !is_deleting(&g) {
            // ForceDelete terminates the instances with the group (and ends any lifecycle
            // action): a scale to zero before it would only add a call to the chain, as
            // the delete follows at once and waits for no draining.
            started = ec2::delete_started(
                Kind::AutoScalingGroup,
                &format!("deleting Auto Scaling group {name}"),
                || async {
                    asg.delete_auto_scaling_group()
                        .auto_scaling_group_name(name)
                        .force_delete(true)
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|e| reclassify_missing_group(crate::aws::sdk("deleting the Auto Scaling group", e)))
                },
            )
            .await?;
        }
        let deadline = latency::delete_deadline(Kind::AutoScalingGroup);
        wait::wait_for(
            &format!("Auto Scaling group {name} to be deleted"),
            deadline,
            Backoff::expecting(Transition::GroupDelete, started),
            || async {
                Ok(match describe_group(aws, name).await? {
                    None => Poll::Ready(()),
                    Some(g) => Poll::Pending(g.status().unwrap_or("deleting").to_string()),
                })
            },
        )
        .await?;
        if instances.is_empty() {
            return Ok(());
        }
        // The internet gateway and the subnets cannot go while instances hold addresses there.
        wait::wait_for(
            &format!("the instances of {name} to terminate"),
            deadline,
            Backoff::SLOW,
            || async { Ok(terminated_poll(&instance_states(aws, &instances).await?)) },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::aws::error::class_of;

    fn propagation_error() -> ResourceError {
        let msg = "You must use a valid fully-formed launch template. Value (arn:aws:iam::123456789012:instance-profile/pi-dashboard-ec2) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN";
        ResourceError::new(class_of("ValidationError", msg), msg).with_code("ValidationError")
    }

    #[test]
    fn the_propagation_error_is_classified_as_such() {
        assert_eq!(propagation_error().class, ErrorClass::IamPropagation);
    }

    #[tokio::test(start_paused = true)]
    async fn iam_propagation_is_retried_until_the_profile_is_usable() {
        let calls = AtomicUsize::new(0);
        let start = tokio::time::Instant::now();
        let v = retry_iam_propagation("creating the group", iam_propagation_budget(), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(if n < 3 { Err(propagation_error()) } else { Ok("created") })
        })
        .await
        .unwrap();
        assert_eq!(v, "created");
        assert_eq!(calls.load(Ordering::SeqCst), 4);
        assert!(start.elapsed() < Duration::from_secs(30), "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn other_errors_are_not_retried() {
        let calls = AtomicUsize::new(0);
        let e = retry_iam_propagation::<(), _, _>("creating the group", iam_propagation_budget(), || {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Err(ResourceError::new(
                class_of("ValidationError", "Max bigger than min"),
                "bad sizes",
            )))
        })
        .await
        .unwrap_err();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(e.message, "bad sizes");
    }

    #[tokio::test(start_paused = true)]
    async fn propagation_that_never_ends_gives_up_at_the_budget_with_a_hint() {
        let start = tokio::time::Instant::now();
        let budget = Duration::from_secs(240);
        let e = retry_iam_propagation::<(), _, _>("creating the group", budget, || {
            std::future::ready(Err(propagation_error()))
        })
        .await
        .unwrap_err();
        assert_eq!(e.class, ErrorClass::IamPropagation);
        assert!(e.message.contains("gave up"), "{}", e.message);
        assert!(e.hint.is_some());
        assert!(start.elapsed() >= budget && start.elapsed() < budget + Duration::from_secs(10));
    }

    #[test]
    fn the_budget_covers_the_slow_figure() {
        assert!(iam_propagation_budget() >= Duration::from_secs(180));
    }

    fn group(min: i32, max: i32, desired: i32) -> t::AutoScalingGroup {
        t::AutoScalingGroup::builder()
            .min_size(min)
            .max_size(max)
            .desired_capacity(desired)
            .health_check_grace_period(300)
            .health_check_type("ELB")
            .vpc_zone_identifier("subnet-b,subnet-a")
            .set_termination_policies(Some(TERMINATION_POLICIES.iter().map(|s| s.to_string()).collect()))
            .target_group_arns("arn:tg-8224")
            .build()
    }

    fn spec(min: i32, max: i32, desired: i32) -> NodeSpec {
        NodeSpec {
            key: "asg".into(),
            kind: Kind::AutoScalingGroup,
            deps: vec![],
            props: Props::AutoScalingGroup {
                name: "pi-dashboard".into(),
                launch_template: "launch-template".into(),
                subnets: vec!["subnet-app-a".into(), "subnet-app-b".into()],
                target_group: "tg".into(),
                min,
                max,
                desired,
                health_check_grace_seconds: 300,
                hook_name: "h".into(),
                heartbeat_seconds: 2400,
            },
        }
    }

    fn deps() -> BTreeMap<String, Outputs> {
        [
            ("subnet-app-a", "subnet-a"),
            ("subnet-app-b", "subnet-b"),
            ("tg", "arn:tg-8224"),
        ]
        .into_iter()
        .map(|(k, id)| (k.to_string(), Outputs::new().with("id", id)))
        .collect()
    }

    fn changes(want: (i32, i32, i32), live: (i32, i32, i32), applied: i32) -> Vec<(String, String, String)> {
        let desired = desired_settings(&spec(want.0, want.1, want.2), &deps());
        let live = live_settings(&group(live.0, live.1, live.2), want, Some(applied));
        diff::diff(ATTRS, &desired, &live, None)
            .into_iter()
            .map(|c| (c.attribute, c.old, c.new))
            .collect()
    }

    #[test]
    fn raising_max_is_an_update_of_max_only() {
        assert_eq!(
            changes((1, 8, 1), (1, 5, 1), 1),
            vec![("max_size".into(), "5".into(), "8".into())]
        );
        assert!(changes((1, 5, 1), (1, 5, 1), 1).is_empty());
    }

    /// A replaced target group (another dashboard port) is an update of the group: the new
    /// one attached before the old one is detached; one detached by hand is attached again.
    #[test]
    fn a_new_target_group_is_attached_before_the_old_one_is_detached() {
        let mut moved = deps();
        moved.insert("tg".into(), Outputs::new().with("id", "arn:tg-8443"));
        let desired = desired_settings(&spec(1, 5, 1), &moved);
        let live = live_settings(&group(1, 5, 1), (1, 5, 1), Some(1));
        let got: Vec<(String, String, String, ChangeAction)> = diff::diff(ATTRS, &desired, &live, None)
            .into_iter()
            .map(|c| (c.attribute, c.old, c.new, c.action))
            .collect();
        assert_eq!(
            got,
            [(
                "target_groups".to_string(),
                "arn:tg-8224".to_string(),
                "arn:tg-8443".to_string(),
                ChangeAction::Update
            )]
        );
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            target_group_moves(&s(&["arn:new"]), &s(&["arn:old"])),
            (s(&["arn:new"]), s(&["arn:old"]))
        );
        assert_eq!(target_group_moves(&s(&["arn:new"]), &s(&[])), (s(&["arn:new"]), s(&[])));
        assert_eq!(target_group_moves(&s(&["arn:new"]), &s(&["arn:new"])), (s(&[]), s(&[])));
    }

    #[test]
    fn a_scale_out_by_the_policies_is_not_undone() {
        // The policies raised desired to 3; the config still says 1 as when it was applied.
        assert!(changes((1, 5, 1), (1, 5, 3), 1).is_empty());
        // The config now asks for 2: that is applied.
        assert_eq!(
            changes((1, 5, 2), (1, 5, 3), 1),
            vec![("desired_capacity".into(), "3".into(), "2".into())]
        );
        // Out of the configured bounds (max lowered by hand): repaired.
        assert_eq!(
            changes((1, 5, 1), (1, 5, 7), 1)
                .into_iter()
                .map(|c| c.0)
                .collect::<Vec<_>>(),
            vec!["desired_capacity".to_string()]
        );
    }

    #[test]
    fn the_hook_holds_new_instances_and_abandons_by_default() {
        let hook = launch_hook("pi-wait-for-dashboard", 2400);
        assert_eq!(hook.lifecycle_hook_name(), Some("pi-wait-for-dashboard"));
        assert_eq!(hook.lifecycle_transition(), Some(LAUNCH_TRANSITION));
        assert_eq!(hook.heartbeat_timeout(), Some(2400));
        assert_eq!(hook.default_result(), Some("ABANDON"));
    }

    #[test]
    fn tags_propagate_to_instances() {
        let t = group_tags("pi", "asg", "pi-dashboard");
        assert_eq!(t.len(), 3);
        assert!(
            t.iter()
                .all(|t| t.propagate_at_launch() == Some(true) && t.resource_id() == Some("pi-dashboard"))
        );
    }

    #[test]
    fn a_refused_activities_read_is_nothing_known_not_a_failure() {
        let denied = ResourceError::new(ErrorClass::Other, "not authorized").with_code("AccessDenied");
        assert_eq!(unless_denied::<u8>(Err(denied)).unwrap(), None);
        let throttled = ResourceError::new(ErrorClass::Throttled, "slow down").with_code("Throttling");
        assert!(unless_denied::<u8>(Err(throttled)).is_err());
        assert_eq!(unless_denied(Ok(1)).unwrap(), Some(1));
    }

    #[test]
    fn a_missing_group_is_not_found() {
        let e =
            ResourceError::new(ErrorClass::Other, "AutoScalingGroup name not found - x").with_code("ValidationError");
        assert_eq!(reclassify_missing_group(e).class, ErrorClass::NotFound);
        let e = ResourceError::new(ErrorClass::Other, "min > max").with_code("ValidationError");
        assert_eq!(reclassify_missing_group(e).class, ErrorClass::Other);
    }

    #[test]
    fn termination_waits_for_every_instance() {
        let s = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert!(matches!(terminated_poll(&s(&[("i-1", "terminated")])), Poll::Ready(())));
        assert!(matches!(terminated_poll(&[]), Poll::Ready(())));
        match terminated_poll(&s(&[("i-1", "terminated"), ("i-2", "shutting-down")])) {
            Poll::Pending(p) => assert_eq!(p, "i-2 shutting-down"),
            other => panic!("{other:?}"),
        }
    }
}
