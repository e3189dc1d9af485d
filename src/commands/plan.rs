//! `pi-deploy plan`: what `up` would do to each resource, attribute by attribute, without
//! changing anything. It holds the deployment's lock (so it never races an `up`) but never
//! writes the state file, and its only AWS calls are the kinds' read-only reads and lookups.

use std::sync::Arc;

use super::{CmdError, desired_graph, load_config, open_session, refuse_changes, resolve_zones, validate};
use crate::cli::{GlobalArgs, PlanArgs};
use crate::core::config::Purpose;
use crate::core::event::EventSink;
use crate::core::plan::{self, Step};
use crate::core::report::PlanReport;
use crate::core::usable::DbPath;
use crate::resources::AwsCloud;
use crate::ui::report;

pub async fn run(global: &GlobalArgs, plan_args: &PlanArgs, events: Arc<dyn EventSink>) -> Result<(), CmdError> {
    let args = &plan_args.up;
    let mut cfg = load_config(global)?;
    if let Some(ami) = &args.ami {
        cfg.ami = Some(ami.clone());
    }
    if let Some(arn) = &args.certificate_arn {
        cfg.certificate_arn = Some(arn.clone());
    }
    validate(&cfg, Purpose::Up)?;
    let mut session = open_session(&cfg, global, "plan", events).await?;
    if let Some(message) = super::keep_upgraded_ami(&mut cfg, &session.state) {
        session.events.emit(crate::core::event::Event::Warning { message });
    }
    // A restore in progress or kept (the database's, the file system's): said first.
    let restores: Vec<String> = (session.state.restore.iter().map(|r| r.describe()))
        .chain(session.state.files_restore.iter().map(|r| r.describe()))
        .collect();
    for message in restores {
        session.events.emit(crate::core::event::Event::Warning { message });
    }
    let result = plan_session(&mut session, &cfg, global.max_parallel, global.json).await;
    session.aws.clients.dump_call_counts();
    let (steps, pending_in_aws) = result?;
    let counts = plan::counts(&steps);
    let pending = plan::has_changes(&steps);
    let creates_db = steps.iter().any(|s| s.key == "db" && s.action == plan::Action::Create);
    let database_path = DbPath::of(cfg.database.multi_az, cfg.database.usable_early, creates_db);
    let report = PlanReport {
        database_path,
        database_path_note: database_path.describe(),
        deployment: cfg.deployment.clone(),
        region: session.aws.env.region.clone(),
        steps,
        counts,
        pending: pending_in_aws,
    };
    if global.json {
        report::print_json(&report);
    } else {
        print!("{}", report::plan_text(&report, report::Style::from_global(global)));
    }
    match pending && plan_args.detailed_exitcode {
        true => Err(CmdError::Status(4)),
        false => Ok(()),
    }
}

/// The walk itself; the zones are resolved in memory only (nothing is written).
async fn plan_session(
    session: &mut super::Session,
    cfg: &crate::core::config::Config,
    concurrency: usize,
    json: bool,
) -> Result<(Vec<Step>, Vec<String>), CmdError> {
    let zones = resolve_zones(session, cfg).await?;
    // The same read-only checks as `up`: what `up` would refuse, `plan` reports (exit 2).
    // Warnings go to the display (silent with -q), or with --json to stderr: stdout holds
    // the plan as one JSON document.
    let events = session.events.clone();
    super::preflight::check(session, cfg, &zones, |message| {
        if json {
            eprintln!("warning: {message}");
        } else {
            events.emit(crate::core::event::Event::Warning { message });
        }
    })
    .await?;
    let graph = desired_graph(cfg, &session.aws.env.region, zones)?;
    let cloud = AwsCloud {
        aws: session.aws.clone(),
    };
    refuse_changes(&plan::recorded_forbidden(&graph, &session.state, &cloud))?;
    let failed = |(key, mut e): (String, crate::core::resource::ResourceError)| {
        let hint = e
            .hint
            .take()
            .unwrap_or_else(|| "check the resource in the AWS console, then run `pi-deploy plan` again".into());
        CmdError::Failed {
            message: format!("could not look up `{key}`: {e}"),
            hint: Some(hint),
            reported: false,
        }
    };
    let observed = plan::observe(&graph, &session.state, &cloud, concurrency)
        .await
        .map_err(failed)?;
    let steps = plan::plan(&graph, &session.state, &cloud, &observed, crate::resources::outdated)
        .await
        .map_err(failed)?;
    refuse_changes(&plan::forbidden(&steps))?;
    let mut steps = steps;
    let desired = match observed.get("asg") {
        Some(crate::core::resource::Observed::Present(live)) => {
            live.get("desired_capacity").and_then(|d| d.parse().ok())
        }
        _ => None,
    };
    plan::describe_rolls(&mut steps, desired);
    let pending = hold_for_window(session, &mut steps).await;
    Ok((steps, pending))
}

/// A major upgrade held for the maintenance window: said as pending, and the retiring
/// parameter group the instance is still on is not a delete `up` makes now (core::window).
async fn hold_for_window(session: &super::Session, steps: &mut [Step]) -> Vec<String> {
    let Some(h) = super::window::held_upgrade(&session.aws, &session.state).await else {
        return Vec::new();
    };
    let deletes: Vec<String> = steps
        .iter()
        .filter(|s| s.action == plan::Action::Delete)
        .map(|s| s.key.clone())
        .collect();
    let held = crate::core::window::held(&session.state, &deletes);
    let mut pending = vec![h.describe()];
    for step in steps.iter_mut().filter(|s| held.contains(&s.key)) {
        step.action = plan::Action::Nothing;
        step.reason = h.keeps(&step.key);
        pending.push(step.reason.clone());
    }
    pending
}
