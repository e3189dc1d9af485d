//! The AWS side of `pi-deploy upgrade`: the `Fleet` the blue/green swap drives (Auto Scaling,
//! ELBv2, and EC2 for each instance's AMI and launch time), and the launch template version
//! it swaps to.
//!
//! The new version carries the COMPLETE launch data (see `launch_template`): AWS would copy a
//! source version, other implementations do not, and a self-contained version reads back
//! clearly. It is created with a client token derived from the state lineage, the AMI and the
//! version it replaces, and found again by its AMI before any create, so a run killed after
//! the create call does not add a second version. It becomes the template's default only
//! after the swap succeeded.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_autoscaling::types::LaunchTemplateSpecification;
use aws_sdk_ec2::types::RequestLaunchTemplateData;
use aws_sdk_elasticloadbalancingv2::types::{TargetDescription, TargetHealthStateEnum};
use chrono::{DateTime, Utc};

use super::auto_scaling_group::{describe_group, reclassify_missing_group, scaling_activities};
use super::{Aws, ec2};
use crate::aws::error::{is_idempotent_mismatch, is_invalid_target};
use crate::aws::wait::{self, Backoff};
use crate::aws::{err, sdk};
use crate::core::activity::Activity;
use crate::core::resource::{ErrorClass, ResourceError};
use crate::core::upgrade::{Capacity, Fleet, Group, Instance, UpgradeRecord};

/// How long a call refused because the group is busy (a scaling activity in progress,
/// ResourceContention) is retried.
const BUSY_BUDGET: Duration = Duration::from_secs(180);

/// One deployment's group, its launch template and its target group.
pub struct AwsFleet<'a> {
    pub aws: &'a Aws,
    pub group: String,
    pub launch_template_id: String,
    pub target_group_arn: String,
}

fn chrono_time(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// Whether DescribeTargetHealth's state for one target means it still takes or drains
/// traffic. `unused` (not registered) and a missing entry mean it is out.
pub fn still_registered(state: Option<&str>) -> bool {
    !matches!(state, None | Some("unused"))
}

impl<'a> AwsFleet<'a> {
    /// A mutating Auto Scaling call, retried while the group is busy.
    async fn busy_retry<F, Fut>(&self, what: &str, op: F) -> Result<(), ResourceError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<(), ResourceError>>,
    {
        wait::retry(what, BUSY_BUDGET, Backoff::QUICK, &[ErrorClass::InUse], op).await
    }

    /// AMI and launch time of each instance, from EC2. Filtering by `instance-id` (rather
    /// than listing ids) leaves out an id EC2 does not know yet instead of failing the call.
    async fn ec2_details(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, (Option<String>, Option<DateTime<Utc>>)>, ResourceError> {
        let mut out = BTreeMap::new();
        if ids.is_empty() {
            return Ok(out);
        }
        let mut token: Option<String> = None;
        loop {
            let page = self
                .aws
                .clients
                .ec2
                .describe_instances()
                .filters(ec2::filter("instance-id", ids.iter().cloned()))
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(err("describing the group's instances"))?;
            for i in page.reservations().iter().flat_map(|r| r.instances()) {
                if let Some(id) = i.instance_id() {
                    out.insert(
                        id.to_string(),
                        (i.image_id().map(String::from), i.launch_time().and_then(chrono_time)),
                    );
                }
            }
            token = page.next_token().filter(|t| !t.is_empty()).map(String::from);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// The explicit number behind a group's version (`$Default` / `$Latest` resolved).
    pub async fn resolve_version(&self, version: Option<&str>) -> Result<String, ResourceError> {
        if let Some(v) = version.filter(|v| v.parse::<u64>().is_ok()) {
            return Ok(v.to_string());
        }
        let out = self
            .aws
            .clients
            .ec2
            .describe_launch_templates()
            .launch_template_ids(&self.launch_template_id)
            .send()
            .await
            .map_err(err("reading the launch template"))?;
        let lt = out.launch_templates().first().ok_or_else(|| {
            ResourceError::new(
                ErrorClass::NotFound,
                format!("launch template {} does not exist", self.launch_template_id),
            )
        })?;
        let n = match version {
            Some("$Latest") => lt.latest_version_number(),
            _ => lt.default_version_number(),
        };
        n.map(|n| n.to_string())
            .ok_or_else(|| ResourceError::new(ErrorClass::Other, "the launch template reports no version number"))
    }

    /// (version number, AMI, description) of the template's versions; from `min_version`
    /// when given.
    async fn versions(&self, min_version: Option<i64>, only: Option<&str>) -> Result<Vec<Version>, ResourceError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self
                .aws
                .clients
                .ec2
                .describe_launch_template_versions()
                .launch_template_id(&self.launch_template_id)
                .set_next_token(token.clone());
            if let Some(v) = only {
                req = req.versions(v);
            } else if let Some(min) = min_version {
                req = req.min_version(min.to_string());
            }
            let page = req
                .send()
                .await
                .map_err(err("reading the launch template's versions"))?;
            for v in page.launch_template_versions() {
                if let Some(n) = v.version_number() {
                    out.push((
                        n,
                        v.launch_template_data().and_then(|d| d.image_id()).map(String::from),
                        v.version_description().unwrap_or_default().to_string(),
                    ));
                }
            }
            token = page.next_token().filter(|t| !t.is_empty()).map(String::from);
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// The AMI one version launches.
    pub async fn version_image(&self, version: &str) -> Result<Option<String>, ResourceError> {
        Ok(self
            .versions(None, Some(version))
            .await?
            .into_iter()
            .next()
            .and_then(|(_, ami, _)| ami))
    }

    /// The version the upgrade swaps to: one created after `rec.old_version` by an earlier
    /// run of the same upgrade (its description names the record's client token), or a new
    /// one with `data`.
    pub async fn ensure_version(
        &self,
        rec: &UpgradeRecord,
        data: RequestLaunchTemplateData,
    ) -> Result<String, ResourceError> {
        let old: i64 = rec.old_version.parse().unwrap_or(0);
        if let Some(found) = made_for(&self.versions(Some(old + 1), None).await?, old, rec) {
            return Ok(found.to_string());
        }
        let out = self
            .aws
            .clients
            .ec2
            .create_launch_template_version()
            .launch_template_id(&self.launch_template_id)
            .client_token(&rec.client_token)
            .version_description(description(rec))
            .launch_template_data(data)
            .send()
            .await
            .map_err(err("creating the launch template version"))
            .map_err(|e| {
                if is_idempotent_mismatch(&e) {
                    // An `up` roll's token follows its launch settings, so only an `upgrade`
                    // resumed (by `upgrade --ami` or `up`) with other launch settings gets here.
                    e.with_hint("the configuration changed since this upgrade started, before its launch template version existed: roll the upgrade back with `pi-deploy upgrade --abort` (nothing was replaced yet), then run `pi-deploy up` (it rolls the instances to the current configuration) or the upgrade again; or finish it with the configuration it started with")
                } else {
                    e
                }
            })?;
        out.launch_template_version()
            .and_then(|v| v.version_number())
            .map(|n| n.to_string())
            .ok_or_else(|| {
                ResourceError::new(
                    ErrorClass::Other,
                    "CreateLaunchTemplateVersion returned no version number",
                )
            })
    }

    /// Make `version` the template's default (after a successful swap).
    pub async fn make_default(&self, version: &str) -> Result<(), ResourceError> {
        self.aws
            .clients
            .ec2
            .modify_launch_template()
            .launch_template_id(&self.launch_template_id)
            .default_version(version)
            .send()
            .await
            .map(|_| ())
            .map_err(err("making the new launch template version the default"))
    }

    async fn target_state(&self, instance: &str) -> Result<Option<String>, ResourceError> {
        let out = self
            .aws
            .clients
            .elb
            .describe_target_health()
            .target_group_arn(&self.target_group_arn)
            .targets(TargetDescription::builder().id(instance).build())
            .send()
            .await
            .map_err(err("reading the target's health"));
        match out {
            Ok(o) => Ok(o
                .target_health_descriptions()
                .iter()
                .find(|d| d.target().and_then(|t| t.id()) == Some(instance))
                .and_then(|d| d.target_health().and_then(|h| h.state()))
                .map(|s| s.as_str().to_string())),
            Err(e) if is_invalid_target(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// The newest version after `old` that launches `ami`.
/// A launch template version: number, AMI, description.
pub type Version = (i64, Option<String>, String);

/// What a version made for `rec` says about itself: its AMI and the record's client token,
/// distinct for each (target, replaced version, launch data) and the same on a resumed run.
pub fn description(rec: &UpgradeRecord) -> String {
    format!("pi-deploy upgrade to {} [{}]", rec.ami, rec.client_token)
}

/// The newest version after `old` made for `rec`: by its description, or, for a version an
/// earlier pi-deploy made (its description names only the AMI), by the AMI alone.
pub fn made_for(versions: &[Version], old: i64, rec: &UpgradeRecord) -> Option<i64> {
    let exact = description(rec);
    let legacy = format!("pi-deploy upgrade to {}", rec.ami);
    versions
        .iter()
        .filter(|(n, ami, d)| *n > old && (*d == exact || (*d == legacy && ami.as_deref() == Some(rec.ami.as_str()))))
        .map(|(n, _, _)| *n)
        .max()
}

#[async_trait]
impl Fleet for AwsFleet<'_> {
    async fn activities(&self) -> Result<Vec<Activity>, ResourceError> {
        scaling_activities(self.aws, &self.group).await
    }

    async fn group(&self) -> Result<Group, ResourceError> {
        let g = describe_group(self.aws, &self.group).await?.ok_or_else(|| {
            ResourceError::new(
                ErrorClass::NotFound,
                format!("Auto Scaling group {} does not exist", self.group),
            )
            .with_hint("run `pi-deploy up` to rebuild it; `pi-deploy status` shows what is missing")
        })?;
        let ids: Vec<String> = g
            .instances()
            .iter()
            .filter_map(|i| i.instance_id().map(String::from))
            .collect();
        let details = self.ec2_details(&ids).await?;
        let instances = g
            .instances()
            .iter()
            .filter_map(|i| {
                let id = i.instance_id()?.to_string();
                let (image, launched_at) = details.get(&id).cloned().unwrap_or((None, None));
                Some(Instance {
                    image: image.or_else(|| i.image_id().map(String::from)),
                    version: i.launch_template().and_then(|l| l.version()).map(String::from),
                    lifecycle: i.lifecycle_state().map_or("Unknown", |s| s.as_str()).to_string(),
                    launched_at,
                    id,
                })
            })
            .collect();
        Ok(Group {
            capacity: Capacity {
                min: g.min_size().unwrap_or(0),
                max: g.max_size().unwrap_or(0),
                desired: g.desired_capacity().unwrap_or(0),
            },
            version: g.launch_template().and_then(|l| l.version()).map(String::from),
            instances,
            suspended: g
                .suspended_processes()
                .iter()
                .filter_map(|p| p.process_name().map(String::from))
                .collect(),
        })
    }

    async fn set_capacity(&self, desired: i32, max: i32) -> Result<(), ResourceError> {
        self.busy_retry("setting the group's capacity", || async {
            self.aws
                .clients
                .autoscaling
                .update_auto_scaling_group()
                .auto_scaling_group_name(&self.group)
                .desired_capacity(desired)
                .max_size(max)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| reclassify_missing_group(sdk("setting the group's capacity", e)))
        })
        .await
    }

    async fn set_version(&self, version: &str) -> Result<(), ResourceError> {
        let spec = LaunchTemplateSpecification::builder()
            .launch_template_id(&self.launch_template_id)
            .version(version)
            .build();
        self.busy_retry("pointing the group at the launch template version", || async {
            self.aws
                .clients
                .autoscaling
                .update_auto_scaling_group()
                .auto_scaling_group_name(&self.group)
                .launch_template(spec.clone())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| reclassify_missing_group(sdk("pointing the group at the launch template version", e)))
        })
        .await
    }

    async fn suspend(&self, processes: &[String]) -> Result<(), ResourceError> {
        // An empty list would mean EVERY process, Launch and Terminate included.
        if processes.is_empty() {
            return Ok(());
        }
        self.busy_retry("suspending the group's processes", || async {
            self.aws
                .clients
                .autoscaling
                .suspend_processes()
                .auto_scaling_group_name(&self.group)
                .set_scaling_processes(Some(processes.to_vec()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| reclassify_missing_group(sdk("suspending the group's processes", e)))
        })
        .await
    }

    async fn resume(&self, processes: &[String]) -> Result<(), ResourceError> {
        // An empty list would resume every process, also those the operator suspended.
        if processes.is_empty() {
            return Ok(());
        }
        self.busy_retry("resuming the group's processes", || async {
            self.aws
                .clients
                .autoscaling
                .resume_processes()
                .auto_scaling_group_name(&self.group)
                .set_scaling_processes(Some(processes.to_vec()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| reclassify_missing_group(sdk("resuming the group's processes", e)))
        })
        .await
    }

    async fn healthy_targets(&self) -> Result<Vec<String>, ResourceError> {
        let out = self
            .aws
            .clients
            .elb
            .describe_target_health()
            .target_group_arn(&self.target_group_arn)
            .send()
            .await
            .map_err(err("reading the targets' health"))?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .filter(|d| d.target_health().and_then(|h| h.state()) == Some(&TargetHealthStateEnum::Healthy))
            .filter_map(|d| d.target().and_then(|t| t.id()).map(String::from))
            .collect())
    }

    async fn register(&self, instance: &str) -> Result<(), ResourceError> {
        self.aws
            .clients
            .elb
            .register_targets()
            .target_group_arn(&self.target_group_arn)
            .targets(TargetDescription::builder().id(instance).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| sdk(format!("registering {instance} in the target group again"), e))
    }

    async fn deregister(&self, instance: &str) -> Result<(), ResourceError> {
        let out = self
            .aws
            .clients
            .elb
            .deregister_targets()
            .target_group_arn(&self.target_group_arn)
            .targets(TargetDescription::builder().id(instance).build())
            .send()
            .await
            .map(|_| ())
            .map_err(err("deregistering the old instance"));
        match out {
            Err(e) if is_invalid_target(&e) => Ok(()),
            other => other,
        }
    }

    async fn is_registered(&self, instance: &str) -> Result<bool, ResourceError> {
        Ok(still_registered(self.target_state(instance).await?.as_deref()))
    }

    async fn terminate(&self, instance: &str) -> Result<(), ResourceError> {
        self.busy_retry(&format!("terminating {instance}"), || async {
            self.aws
                .clients
                .autoscaling
                .terminate_instance_in_auto_scaling_group()
                .instance_id(instance)
                .should_decrement_desired_capacity(true)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| reclassify_missing_group(sdk(format!("terminating {instance}"), e)))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_out_once_unused_or_unlisted() {
        assert!(!still_registered(None));
        assert!(!still_registered(Some("unused")));
        for s in ["draining", "healthy", "unhealthy", "initial", "unavailable"] {
            assert!(still_registered(Some(s)), "{s}");
        }
    }

    #[test]
    fn the_version_of_an_earlier_run_is_found_by_its_record_s_token() {
        let group = crate::core::upgrade::Group {
            capacity: crate::core::upgrade::Capacity {
                min: 1,
                max: 2,
                desired: 1,
            },
            version: Some("1".into()),
            instances: vec![],
            suspended: vec![],
        };
        let rec = |ami: &str, token: &str| UpgradeRecord::new(ami, None, "lt-1", "1", token.into(), &group, false);
        let b = rec("ami-b", "tok-b");
        let v = |n: i64, a: &str, d: String| (n, Some(a.to_string()), d);
        let versions = [
            v(1, "ami-a", String::new()),
            v(2, "ami-b", description(&b)),
            // Same AMI, another attempt (another launch data): not this record's.
            v(3, "ami-b", description(&rec("ami-b", "tok-other"))),
            // Made by an earlier pi-deploy: the description names the AMI only.
            v(4, "ami-c", "pi-deploy upgrade to ami-c".into()),
            (5, None, String::new()),
        ];
        assert_eq!(made_for(&versions, 1, &b), Some(2));
        assert_eq!(made_for(&versions, 2, &b), None);
        assert_eq!(made_for(&versions, 1, &rec("ami-c", "tok-c")), Some(4));
        assert_eq!(made_for(&versions, 1, &rec("ami-a", "tok-a")), None);
    }
}
