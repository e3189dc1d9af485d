//! The two CPU alarms on the Auto Scaling group (AWS/EC2 CPUUtilization, Average), each
//! invoking its scaling policy: above `scale_out_cpu_percent` for one minute adds an instance,
//! below `scale_in_cpu_percent` for two minutes removes one. PutMetricAlarm is an upsert.

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic, Tag};

use super::{Aws, ResourceKind, props};
use crate::aws::{sdk, tags};
use crate::core::config::ScalingConfig;
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Outputs, ResourceError};

pub struct Alarm;

/// When an alarm fires.
#[derive(Clone, Debug, PartialEq)]
pub struct Trigger {
    pub threshold: f64,
    pub comparison: ComparisonOperator,
    pub period_seconds: i32,
    pub evaluation_periods: i32,
}

/// High: > scale-out percent for 1 x 60 s. Low: < scale-in percent for 2 x 60 s.
pub fn trigger(high: bool, scaling: &ScalingConfig) -> Trigger {
    if high {
        Trigger {
            threshold: scaling.scale_out_cpu_percent,
            comparison: ComparisonOperator::GreaterThanThreshold,
            period_seconds: 60,
            evaluation_periods: 1,
        }
    } else {
        Trigger {
            threshold: scaling.scale_in_cpu_percent,
            comparison: ComparisonOperator::LessThanThreshold,
            period_seconds: 60,
            evaluation_periods: 2,
        }
    }
}

async fn arn_of(aws: &Aws, name: &str) -> Result<Option<String>, ResourceError> {
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
        let t = trigger(*high, &aws.env.config.scaling);
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
        let arn = arn_of(aws, name).await?.unwrap_or_default();
        Ok(Outputs::new().with("id", name).with("arn", arn))
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

    #[test]
    fn high_fires_after_one_minute_above_the_scale_out_percent() {
        let t = trigger(true, &ScalingConfig::default());
        assert_eq!(
            t,
            Trigger {
                threshold: 70.0,
                comparison: ComparisonOperator::GreaterThanThreshold,
                period_seconds: 60,
                evaluation_periods: 1
            }
        );
    }

    #[test]
    fn low_fires_after_two_minutes_below_the_scale_in_percent() {
        let s = ScalingConfig {
            scale_in_cpu_percent: 15.0,
            ..ScalingConfig::default()
        };
        let t = trigger(false, &s);
        assert_eq!(
            t,
            Trigger {
                threshold: 15.0,
                comparison: ComparisonOperator::LessThanThreshold,
                period_seconds: 60,
                evaluation_periods: 2
            }
        );
    }
}
