//! The two CPU alarms on the Auto Scaling group (AWS/EC2 CPUUtilization, Average), each
//! invoking its scaling policy: above `scale_out_cpu_percent` for one minute adds an instance,
//! below `scale_in_cpu_percent` for two minutes removes one. PutMetricAlarm is an upsert.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricAlarm, Statistic, Tag};

use super::{Aws, ResourceKind, props};
use crate::aws::{sdk, tags};
use crate::core::diff::{AttrSpec, Change, Settings, settings};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{NodeSpec, Props};

pub struct Alarm;

pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::update(
        "threshold",
        &["scaling.scale_out_cpu_percent", "scaling.scale_in_cpu_percent"],
    ),
    AttrSpec::update("comparison", &[]),
    AttrSpec::update("period_seconds", &[]),
    AttrSpec::update("evaluation_periods", &[]),
    AttrSpec::update("action", &[]),
];

/// The desired settings (pure); the action is the policy's ARN.
pub fn desired_settings(t: &Trigger, policy_arn: &str) -> Settings {
    settings([
        ("threshold", t.threshold.to_string()),
        ("comparison", t.comparison.as_str().to_string()),
        ("period_seconds", t.period_seconds.to_string()),
        ("evaluation_periods", t.evaluation_periods.to_string()),
        ("action", policy_arn.to_string()),
    ])
}

pub fn live_settings(a: &MetricAlarm) -> Settings {
    settings([
        ("threshold", a.threshold().unwrap_or_default().to_string()),
        (
            "comparison",
            a.comparison_operator()
                .map(|c| c.as_str().to_string())
                .unwrap_or_default(),
        ),
        ("period_seconds", a.period().unwrap_or_default().to_string()),
        (
            "evaluation_periods",
            a.evaluation_periods().unwrap_or_default().to_string(),
        ),
        ("action", crate::core::diff::list(a.alarm_actions().iter().cloned())),
    ])
}

/// When an alarm fires.
#[derive(Clone, Debug, PartialEq)]
pub struct Trigger {
    pub threshold: f64,
    pub comparison: ComparisonOperator,
    pub period_seconds: i32,
    pub evaluation_periods: i32,
}

/// The trigger of an alarm's props: above the threshold for a high alarm, below for a low one.
pub fn trigger_of(props: &Props) -> Option<Trigger> {
    let Props::Alarm {
        high,
        threshold,
        period_seconds,
        evaluation_periods,
        ..
    } = props
    else {
        return None;
    };
    Some(Trigger {
        threshold: *threshold,
        comparison: match high {
            true => ComparisonOperator::GreaterThanThreshold,
            false => ComparisonOperator::LessThanThreshold,
        },
        period_seconds: *period_seconds,
        evaluation_periods: *evaluation_periods,
    })
}

async fn describe(aws: &Aws, name: &str) -> Result<Option<MetricAlarm>, ResourceError> {
    let out = aws
        .clients
        .cloudwatch
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .map_err(|e| sdk("describing the alarm", e))?;
    Ok(out
        .metric_alarms()
        .iter()
        .find(|a| a.alarm_name() == Some(name))
        .cloned())
}

async fn arn_of(aws: &Aws, name: &str) -> Result<Option<String>, ResourceError> {
    Ok(describe(aws, name)
        .await?
        .map(|a| a.alarm_arn().unwrap_or_default().to_string()))
}

#[async_trait]
impl ResourceKind for Alarm {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (name,) = props!(cx, Alarm { name });
        Ok(arn_of(aws, name)
            .await?
            .map(|arn| Outputs::new().with("id", name).with("arn", arn)))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (name, asg, policy, high) = props!(
            cx,
            Alarm {
                name,
                asg,
                policy,
                high
            }
        );
        let group = cx.dep_id(asg)?;
        let policy_arn = cx.dep(policy)?.require("arn")?;
        let t = trigger_of(&cx.spec.props)
            .ok_or_else(|| ResourceError::new(ErrorClass::Invalid, "an alarm without a trigger"))?;
        let direction = if *high { "add an instance" } else { "remove an instance" };
        let tags: Vec<Tag> = tags::pairs(&aws.env.deployment, &cx.spec.key)
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        aws.clients
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(name)
            .alarm_description(format!(
                "pi-deploy {}: average CPU of {group}; {direction}",
                aws.env.deployment
            ))
            .actions_enabled(true)
            .alarm_actions(policy_arn)
            .namespace("AWS/EC2")
            .metric_name("CPUUtilization")
            .statistic(Statistic::Average)
            .dimensions(Dimension::builder().name("AutoScalingGroupName").value(group).build())
            .period(t.period_seconds)
            .evaluation_periods(t.evaluation_periods)
            .threshold(t.threshold)
            .comparison_operator(t.comparison)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| sdk("putting the CPU alarm", e))?;
        // PutMetricAlarm answers nothing; an alarm's ARN is its name's.
        let arn = aws.env.arn("cloudwatch", &aws.env.region, &format!("alarm:{name}"));
        Ok(Outputs::new().with("id", name).with("arn", arn))
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        match (&spec.props, trigger_of(&spec.props)) {
            (Props::Alarm { policy, .. }, Some(t)) => desired_settings(&t, &super::dep_output(deps, policy, "arn")),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(match describe(aws, outputs.id()?).await? {
            Some(a) => Observed::Present(live_settings(&a)),
            None => Observed::Missing,
        })
    }

    /// PutMetricAlarm overwrites the whole alarm: the create call again, every field sent.
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
        let r = aws
            .clients
            .cloudwatch
            .delete_alarms()
            .alarm_names(name)
            .send()
            .await
            .map_err(|e| sdk("deleting the alarm", e));
        match r {
            Err(e) if !e.is(ErrorClass::NotFound) => Err(e),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(high: bool, threshold: f64) -> Props {
        Props::Alarm {
            name: "a".into(),
            asg: "asg".into(),
            policy: "p".into(),
            high,
            threshold,
            period_seconds: 300,
            evaluation_periods: if high { 1 } else { 2 },
        }
    }

    #[test]
    fn high_fires_above_the_threshold_low_below() {
        let t = trigger_of(&props(true, 70.0)).unwrap();
        assert_eq!(
            t,
            Trigger {
                threshold: 70.0,
                comparison: ComparisonOperator::GreaterThanThreshold,
                period_seconds: 300,
                evaluation_periods: 1
            }
        );
        let t = trigger_of(&props(false, 15.0)).unwrap();
        assert_eq!(t.comparison, ComparisonOperator::LessThanThreshold);
        assert_eq!(t.evaluation_periods, 2);
    }

    #[test]
    fn a_new_threshold_is_an_update() {
        let t = trigger_of(&props(true, 70.0)).unwrap();
        let live = live_settings(
            &MetricAlarm::builder()
                .threshold(70.0)
                .comparison_operator(ComparisonOperator::GreaterThanThreshold)
                .period(300)
                .evaluation_periods(1)
                .alarm_actions("arn:p")
                .build(),
        );
        assert!(crate::core::diff::diff(ATTRS, &desired_settings(&t, "arn:p"), &live, None).is_empty());
        let t80 = trigger_of(&props(true, 80.0)).unwrap();
        let c = crate::core::diff::diff(ATTRS, &desired_settings(&t80, "arn:p"), &live, None);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].attribute.as_str(), c[0].old.as_str(), c[0].new.as_str()),
            ("threshold", "70", "80")
        );
    }
}
