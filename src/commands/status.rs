//! `pi-deploy status`: every recorded resource against AWS (live state and drift of what
//! pi-deploy sets), resources tagged with the deployment that the state does not list
//! (leaks), the health of the targets behind the load balancer, and ERROR lines the
//! side-loading Lambda logged in the last hour. Exit 0 when all is healthy and in sync.
//!
//! Read-only: it holds the lock like every command, and never writes the state.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{StreamExt, stream};

use super::{CmdError, Session, desired_graph, load_config, open_session, resolve_zones, validate};
use crate::cli::GlobalArgs;
use crate::core::config::{Config, Purpose};
use crate::core::event::EventSink;
use crate::core::graph::Graph;
use crate::core::inspect::{InspectCtx, Inspection, Live};
use crate::core::names;
use crate::core::report::{Leak, ResourceStatus, StatusReport, TargetHealth, status_name};
use crate::core::resource::{ErrorClass, Observed, Outputs};
use crate::core::spec::Kind;
use crate::core::state::{State, Status};
use crate::resources::discover::{self, Found};
use crate::resources::inspect::{lambda_errors, target_health};
use crate::ui::report;

/// How many resources are inspected at once.
const CONCURRENCY: usize = 8;

pub async fn run(global: &GlobalArgs, events: Arc<dyn EventSink>) -> Result<(), CmdError> {
    let mut cfg = load_config(global)?;
    validate(&cfg, Purpose::Other)?;
    let mut session = open_session(&cfg, global, "status", events).await?;
    // As `up` judges it: an image an upgrade replaced is not drift (`up` would keep it).
    let _ = super::keep_upgraded_ami(&mut cfg, &session.state);
    let result = collect(&mut session, &cfg).await;
    session.aws.clients.dump_call_counts();
    let report = result?;
    if global.json {
        report::print_json(&report);
    } else {
        print!("{}", report::status_text(&report, report::Style::from_global(global)));
    }
    if report.healthy {
        Ok(())
    } else {
        Err(CmdError::Failed {
            message: format!("{} problems", report.problems.len()),
            hint: Some(hint(&report)),
            reported: true,
        })
    }
}

/// What to do next, for the kinds of problem found.
fn hint(r: &StatusReport) -> String {
    let mut steps = Vec::new();
    if r.resources.iter().any(ResourceStatus::is_problem) {
        steps.push("run `pi-deploy up` to converge drifted, missing or unfinished resources (`pi-deploy plan` shows what it would do)");
    }
    if !r.leaks.is_empty() {
        steps.push("delete leaked resources in the console, or run `pi-deploy destroy` to remove everything tagged with the deployment");
    }
    if r.targets
        .as_ref()
        .is_some_and(|t| t.iter().any(|t| t.state != "healthy"))
        || r.lambda_errors.as_ref().is_some_and(|l| !l.is_empty())
    {
        steps.push("check the instances' and the Lambda's logs in CloudWatch");
    }
    steps.join("; ")
}

async fn collect(session: &mut Session, cfg: &Config) -> Result<StatusReport, CmdError> {
    let aws = session.aws.clone();
    let state_found = !session.fresh;
    let desired = if state_found {
        let zones = resolve_zones(session, cfg).await?;
        Some(desired_graph(cfg, &aws.env.region, zones)?)
    } else {
        None
    };
    let state = &session.state;
    let resources = inspect_all(&aws, state, desired.as_ref()).await;
    // Nothing here aborts the report: what cannot be read is a problem line of its own, and
    // a missing target group or log group is already shown by its resource's row.
    let mut unread = Vec::new();
    let found = discover::tagged(&aws).await.unwrap_or_else(|e| {
        unread.push(format!("could not scan for leaks: {}", e.message));
        Vec::new()
    });
    let leaks = leaks(&found, state);
    let targets = match state.resources.get("tg").and_then(|r| r.outputs.get("id")) {
        Some(arn) => match target_health(&aws, arn).await {
            Ok(t) => Some(t),
            Err(e) if e.is(ErrorClass::NotFound) => None,
            Err(e) => {
                unread.push(format!("could not read the targets' health: {}", e.message));
                None
            }
        },
        None => None,
    };
    let since = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let lambda_errors = lambda_errors(&aws, &names::lambda_log_group(&aws.env.deployment), since)
        .await
        .unwrap_or_else(|e| {
            unread.push(format!("could not read the Lambda's log: {}", e.message));
            None
        });
    let mut problems = problems(&resources, &leaks, targets.as_deref(), lambda_errors.as_deref());
    problems.extend(unread);
    let pending = super::window::held_upgrade(&aws, state)
        .await
        .map(|h| vec![h.describe()])
        .unwrap_or_default();
    Ok(StatusReport {
        deployment: aws.env.deployment.clone(),
        region: aws.env.region.clone(),
        state_found,
        healthy: problems.is_empty(),
        resources,
        leaks,
        targets,
        lambda_errors,
        problems,
        restore: {
            // The database's restore and a files restore job in progress, when any.
            let lines: Vec<String> = (state.restore.iter().map(|r| r.describe()))
                .chain(state.files_restore.iter().map(|r| r.describe()))
                .collect();
            (!lines.is_empty()).then(|| lines.join("; "))
        },
        pending,
    })
}

async fn inspect_all(aws: &crate::resources::Aws, state: &State, desired: Option<&Graph>) -> Vec<ResourceStatus> {
    let recorded: BTreeMap<String, Outputs> = state
        .resources
        .iter()
        .map(|(k, r)| (k.clone(), r.outputs.clone()))
        .collect();
    let recorded = &recorded;
    stream::iter(state.resources.iter())
        .map(|(key, rec)| async move {
            let id = rec.outputs.get("id").map(String::from);
            let inspection = if id.is_none() {
                // An intent without an id: the create may or may not have happened.
                Inspection::of(Live::Missing).with_detail("no id recorded (the create did not finish)")
            } else {
                let cx = InspectCtx {
                    key,
                    kind: rec.kind,
                    spec: desired.and_then(|g| g.get(key)),
                    outputs: &rec.outputs,
                    recorded,
                };
                let mut inspection = match crate::resources::inspect(aws, &cx).await {
                    Ok(i) => i,
                    // Deleted behind pi-deploy's back: a fact to report, not a failure.
                    Err(e) if e.is(ErrorClass::NotFound) => Inspection::missing().with_detail(e.message),
                    Err(e) => Inspection::unknown().with_detail(format!("could not inspect: {}", e.message)),
                };
                if let Some(spec) = cx.spec {
                    compare(aws, spec, rec, recorded, &mut inspection).await;
                }
                inspection
            };
            ResourceStatus {
                key: key.clone(),
                kind: rec.kind,
                recorded: rec.status,
                id,
                inspection,
            }
        })
        .buffered(CONCURRENCY)
        .collect()
        .await
}

/// The day-2 comparison `plan` and `up` make (the kind's `read` against its desired
/// settings), added to what `inspect` found: each differing setting is drift.
async fn compare(
    aws: &crate::resources::Aws,
    spec: &crate::core::spec::NodeSpec,
    rec: &crate::core::state::ResourceRecord,
    recorded: &BTreeMap<String, Outputs>,
    i: &mut Inspection,
) {
    let deps: BTreeMap<String, Outputs> = spec
        .deps
        .iter()
        .filter_map(|d| recorded.get(d).map(|o| (d.clone(), o.clone())))
        .collect();
    let cx = crate::core::resource::NodeCtx {
        spec,
        deps: &deps,
        token: &rec.client_token,
    };
    match crate::resources::read(aws, &cx, &rec.outputs).await {
        Ok(Observed::Missing) => i.live = Live::Missing,
        Ok(Observed::Present(live)) => {
            if i.live == Live::Unknown && !crate::resources::attrs(spec.kind).is_empty() {
                i.live = Live::Available;
            }
            let desired = crate::resources::desired(spec, &deps);
            for c in crate::resources::diff_of(spec, &desired, &live) {
                if !i.drift.iter().any(|d| d.attribute == c.attribute) {
                    i.drift(c.attribute, c.new, c.old);
                }
            }
        }
        Err(e) => {
            if i.detail.is_none() {
                i.detail = Some(format!("could not read its settings: {}", e.message));
            }
        }
    }
}

fn leaks(found: &[Found], state: &State) -> Vec<Leak> {
    let recorded_id = |key: &str| state.resources.get(key).and_then(|r| r.outputs.get("id"));
    // The instances a restore keeps (the old one, or one not switched to yet) are its own.
    let restoring: Vec<&str> = state
        .restore
        .iter()
        .flat_map(|r| [r.old_instance(), r.new_instance.as_str()])
        .collect();
    // And the file systems (with their mount targets and access points) a full restore of
    // the file system keeps or made.
    let files: Vec<String> = state.files_restore.iter().flat_map(|r| r.kept_ids()).collect();
    discover::leaks(found, recorded_id)
        .into_iter()
        .filter(|f| !(f.kind == Kind::DbInstance && restoring.contains(&f.id.as_str())))
        .filter(|f| !files.contains(&f.id))
        .map(|f| Leak {
            key: f.key.clone(),
            kind: f.kind,
            id: f.id.clone(),
            recorded_id: recorded_id(&f.key).map(String::from),
        })
        .collect()
}

/// One line per problem, in the order the report shows them.
pub fn problems(
    resources: &[ResourceStatus],
    leaks: &[Leak],
    targets: Option<&[TargetHealth]>,
    errors: Option<&[String]>,
) -> Vec<String> {
    let mut out = Vec::new();
    for r in resources {
        if r.recorded != Status::Ready {
            out.push(format!("{}: recorded as {}, not ready", r.key, status_name(r.recorded)));
        }
        if r.inspection.live.is_problem() {
            out.push(format!("{}: {}", r.key, r.inspection.live.as_str()));
        } else if r
            .inspection
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("could not inspect"))
        {
            out.push(format!(
                "{}: {}",
                r.key,
                r.inspection.detail.as_deref().unwrap_or_default()
            ));
        }
        for d in &r.inspection.drift {
            out.push(format!("{}: {} drifted", r.key, d.attribute));
        }
    }
    for l in leaks {
        out.push(format!("leak: {} {} ({})", l.kind, l.id, l.key));
    }
    if let Some(targets) = targets {
        if !targets.iter().any(|t| t.state == "healthy") {
            out.push("no healthy target behind the load balancer".into());
        }
        for t in targets.iter().filter(|t| t.state != "healthy") {
            out.push(format!("target {} is {}", t.id, t.state));
        }
    }
    if let Some(errors) = errors.filter(|e| !e.is_empty()) {
        out.push(format!(
            "the side-loading Lambda logged {} ERROR lines in the last hour",
            errors.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(key: &str, recorded: Status, inspection: Inspection) -> ResourceStatus {
        ResourceStatus {
            key: key.into(),
            kind: Kind::Vpc,
            recorded,
            id: Some("x".into()),
            inspection,
        }
    }

    #[test]
    fn healthy_means_no_problem_of_any_kind() {
        let ok = [
            res("vpc", Status::Ready, Inspection::available()),
            res("route", Status::Ready, Inspection::unknown()),
        ];
        assert!(problems(&ok, &[], None, None).is_empty());
        assert!(problems(&ok, &[], None, Some(&[])).is_empty());
        let healthy = TargetHealth {
            id: "i-1".into(),
            state: "healthy".into(),
            reason: None,
        };
        assert!(problems(&ok, &[], Some(std::slice::from_ref(&healthy)), None).is_empty());

        let mut drifted = Inspection::available();
        drifted.drift("ingress", "absent", "tcp 22 from 0.0.0.0/0");
        let bad = [
            res("sg-alb", Status::Ready, drifted),
            res("nat-a", Status::Ready, Inspection::missing()),
            res("db", Status::Created, Inspection::available()),
        ];
        let leak = Leak {
            key: "vpc-leak".into(),
            kind: Kind::Vpc,
            id: "vpc-9".into(),
            recorded_id: None,
        };
        let sick = TargetHealth {
            id: "i-2".into(),
            state: "unhealthy".into(),
            reason: None,
        };
        let p = problems(&bad, &[leak], Some(&[sick]), Some(&["ERROR boom".into()]));
        assert_eq!(
            p,
            vec![
                "sg-alb: ingress drifted",
                "nat-a: missing",
                "db: recorded as created, not ready",
                "leak: vpc vpc-9 (vpc-leak)",
                "no healthy target behind the load balancer",
                "target i-2 is unhealthy",
                "the side-loading Lambda logged 1 ERROR lines in the last hour",
            ]
        );
    }
}
