//! The Auto Scaling group's scaling activities, as plain data: a launch that AWS could not
//! make (an unsubscribed Marketplace image, no capacity, a vCPU quota, a bad block device
//! mapping, a lifecycle action that was abandoned) shows up ONLY as a failed activity, never
//! as an instance. The waits for instances ask for them, so that such a launch fails at once
//! with AWS's message instead of at the end of the wait (emulators never fail a launch and
//! list no activities: this is unit-tested on scripted activities).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

/// One scaling activity (DescribeScalingActivities), newest first as AWS lists them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Activity {
    pub id: String,
    /// StatusCode: `Successful`, `Failed`, `Cancelled`, `InProgress`, `WaitingFor...`, ...
    pub status: String,
    /// `Launching a new EC2 instance: i-...`, `Terminating EC2 instance: i-...`.
    pub description: String,
    /// StatusMessage: AWS's reason for a failure.
    pub message: Option<String>,
    pub started: Option<DateTime<Utc>>,
}

impl Activity {
    pub fn is_launch(&self) -> bool {
        self.description.starts_with("Launching")
    }
    /// Ended without an instance in service: `Failed`, or `Cancelled` (an abandoned lifecycle
    /// action ends a launch so).
    pub fn failed(&self) -> bool {
        matches!(self.status.as_str(), "Failed" | "Cancelled")
    }
}

/// AWS's account of why the group's latest launch failed, when it did: the newest launch
/// activity not in `seen` (the ids listed before the wait began), if it `failed`. A later
/// launch that succeeded or is still running means the group recovered (another zone had
/// capacity): keep waiting.
pub fn launch_failure(activities: &[Activity], seen: &BTreeSet<String>) -> Option<String> {
    let mut launches: Vec<&Activity> = activities
        .iter()
        .filter(|a| a.is_launch() && !seen.contains(&a.id))
        .collect();
    // Newest first (AWS lists them so; the stable sort only makes it independent of that).
    launches.sort_by_key(|a| std::cmp::Reverse(a.started));
    let latest = launches.first().filter(|a| a.failed())?;
    let why = latest
        .message
        .as_deref()
        .filter(|m| !m.trim().is_empty())
        .unwrap_or("AWS gave no status message");
    Some(format!(
        "the Auto Scaling group could not launch an instance ({} {}): {why}",
        latest.status, latest.description
    ))
}

/// The ids of `activities`: what a wait that starts now must not blame on its instances.
pub fn ids(activities: &[Activity]) -> BTreeSet<String> {
    activities.iter().map(|a| a.id.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn act(id: &str, status: &str, description: &str, minute: u32) -> Activity {
        Activity {
            id: id.into(),
            status: status.into(),
            description: description.into(),
            message: (status == "Failed").then(|| {
                "In order to use this AWS Marketplace product you need to accept terms and subscribe. \
                 Launching EC2 instance failed."
                    .to_string()
            }),
            started: Some(
                DateTime::parse_from_rfc3339(&format!("2026-01-01T00:{minute:02}:00Z"))
                    .unwrap()
                    .with_timezone(&Utc),
            ),
        }
    }

    const LAUNCH: &str = "Launching a new EC2 instance.  Status Reason: see message";

    #[test]
    fn the_latest_failed_launch_is_reported_with_aws_s_message() {
        let acts = [act("a2", "Failed", LAUNCH, 2), act("a1", "Successful", LAUNCH, 1)];
        let m = launch_failure(&acts, &BTreeSet::new()).unwrap();
        assert!(m.contains("accept terms and subscribe"), "{m}");
        assert!(m.contains("Failed"), "{m}");
    }

    #[test]
    fn a_later_successful_or_running_launch_means_the_group_recovered() {
        for status in ["Successful", "InProgress", "PreInService", "WaitingForInstanceId"] {
            // Listed in any order: the newest decides.
            let acts = [act("a1", "Failed", LAUNCH, 1), act("a2", status, LAUNCH, 2)];
            assert_eq!(launch_failure(&acts, &BTreeSet::new()), None, "{status}");
        }
    }

    #[test]
    fn an_abandoned_lifecycle_action_is_a_failed_launch_too() {
        let mut a = act("a1", "Cancelled", "Launching a new EC2 instance: i-0abc", 1);
        a.message = Some("Instance failed to complete user's Lifecycle Action: Lifecycle Action with token t was abandoned: Lifecycle Action Completed with ABANDON Result".into());
        let m = launch_failure(&[a], &BTreeSet::new()).unwrap();
        assert!(m.contains("ABANDON"), "{m}");
    }

    #[test]
    fn failures_seen_before_the_wait_and_failed_terminations_are_not_blamed() {
        let old = [act("a1", "Failed", LAUNCH, 1)];
        assert_eq!(launch_failure(&old, &ids(&old)), None);
        let term = [act("t1", "Failed", "Terminating EC2 instance: i-0abc", 3)];
        assert_eq!(launch_failure(&term, &BTreeSet::new()), None);
        // A new failure after an old one is reported.
        let acts = [act("a3", "Failed", LAUNCH, 3), act("a1", "Failed", LAUNCH, 1)];
        assert!(launch_failure(&acts, &ids(&old)).is_some());
        assert_eq!(launch_failure(&[], &BTreeSet::new()), None);
    }
}
