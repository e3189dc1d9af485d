//! Read-only calls of the operator's commands (`connect`, `logs`, `sideload --delete`):
//! the deployment's instances (by tag, so one the group has already replaced is still
//! found), an instance's console output, and the side-loading Lambda's log events.

use aws_smithy_types::DateTime as SmithyTime;
use base64::Engine;
use chrono::{DateTime, Utc};

use super::{Aws, ec2};
use crate::aws::{err, tags};
use crate::core::logs::LogEvent;
use crate::core::resource::{ErrorClass, ResourceError};

/// An instance tagged with the deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaggedInstance {
    pub id: String,
    /// EC2's state: `pending`, `running`, `terminated`...
    pub state: String,
    pub launched_at: Option<DateTime<Utc>>,
}

fn chrono_time(t: &SmithyTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// Every instance tagged with the deployment (terminated ones too, while EC2 lists them),
/// oldest first; only `id` when given.
pub async fn instances(aws: &Aws, id: Option<&str>) -> Result<Vec<TaggedInstance>, ResourceError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = aws
            .clients
            .ec2
            .describe_instances()
            .filters(tags::ec2_deployment_filter(&aws.env.deployment))
            .set_next_token(token.take());
        if let Some(id) = id {
            req = req.filters(ec2::filter("instance-id", [id]));
        }
        let page = req.send().await.map_err(err("describing the deployment's instances"))?;
        for i in page.reservations().iter().flat_map(|r| r.instances()) {
            if let Some(id) = i.instance_id() {
                out.push(TaggedInstance {
                    id: id.to_string(),
                    state: i
                        .state()
                        .and_then(|s| s.name())
                        .map_or("unknown", |n| n.as_str())
                        .to_string(),
                    launched_at: i.launch_time().and_then(chrono_time),
                });
            }
        }
        token = page.next_token().filter(|t| !t.is_empty()).map(String::from);
        if token.is_none() {
            break;
        }
    }
    out.sort_by(|a, b| (a.launched_at, &a.id).cmp(&(b.launched_at, &b.id)));
    Ok(out)
}

/// The instance's console output (what it printed at boot, user data included) and when
/// EC2 took it; `None` while it has none yet.
pub async fn console_output(aws: &Aws, id: &str) -> Result<(Option<String>, Option<DateTime<Utc>>), ResourceError> {
    let out = aws
        .clients
        .ec2
        .get_console_output()
        .instance_id(id)
        .send()
        .await
        .map_err(err("reading the instance's console output"))?;
    let text = out.output().filter(|o| !o.is_empty()).map(|b64| {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .unwrap_or_else(|_| b64.as_bytes().to_vec());
        String::from_utf8_lossy(&bytes).into_owned()
    });
    Ok((text, out.timestamp().and_then(chrono_time)))
}

/// One page of the log group's events from `start_ms` on, oldest first, and the token of
/// the next page. A missing group is NotFound with a hint.
pub async fn log_events(
    aws: &Aws,
    group: &str,
    start_ms: i64,
    next: Option<String>,
) -> Result<(Vec<LogEvent>, Option<String>), ResourceError> {
    let page = aws
        .clients
        .logs
        .filter_log_events()
        .log_group_name(group)
        .start_time(start_ms)
        .set_next_token(next)
        .send()
        .await
        .map_err(err("reading the Lambda's log events"))
        .map_err(|e| {
            if e.is(ErrorClass::NotFound) {
                e.with_hint(format!(
                    "the log group {group} does not exist: run `pi-deploy up` to build the side-loading Lambda and its log group"
                ))
            } else {
                e
            }
        })?;
    let events = page
        .events()
        .iter()
        .map(|e| LogEvent {
            id: e.event_id().unwrap_or_default().to_string(),
            timestamp: e.timestamp().unwrap_or(0),
            stream: e.log_stream_name().unwrap_or_default().to_string(),
            message: e.message().unwrap_or_default().to_string(),
        })
        .collect();
    Ok((events, page.next_token().filter(|t| !t.is_empty()).map(String::from)))
}

/// Every event of the group from `start_ms` on (all pages), oldest first.
pub async fn all_log_events(aws: &Aws, group: &str, start_ms: i64) -> Result<Vec<LogEvent>, ResourceError> {
    let mut all = Vec::new();
    let mut next = None;
    loop {
        let (events, token) = log_events(aws, group, start_ms, next).await?;
        all.extend(events);
        match token {
            Some(t) => next = Some(t),
            None => break,
        }
    }
    all.sort_by(|a, b| (a.timestamp, &a.id).cmp(&(b.timestamp, &b.id)));
    Ok(all)
}
