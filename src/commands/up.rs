//! `pi-deploy up`: build every resource of the architecture, creating only what is missing.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;

use super::{
    CmdError, desired_graph, existing_graph, load_config, open_session, refuse_changes, resolve_zones, validate,
};
use crate::cli::{GlobalArgs, UpArgs};
use crate::core::config::Purpose;
use crate::core::diff::ChangeAction;
use crate::core::event::{Event, EventSink};
use crate::core::executor::{Executor, Limits, StateStore};
use crate::core::graph::Graph;
use crate::core::latency;
use crate::core::phase::{PhaseTracker, Progress};
use crate::core::plan;
use crate::core::resource::Cloud;
use crate::core::state::{State, Status};
use crate::core::usable::UsableTracker;
use crate::resources::AwsCloud;

pub async fn run(global: &GlobalArgs, args: &UpArgs, events: Arc<dyn EventSink>) -> Result<(), CmdError> {
    let mut cfg = load_config(global)?;
    if let Some(ami) = &args.ami {
        cfg.ami = Some(ami.clone());
    }
    if let Some(arn) = &args.certificate_arn {
        cfg.certificate_arn = Some(arn.clone());
    }
    validate(&cfg, Purpose::Up)?;
    check_licence(&cfg)?;

    let started = Instant::now();
    let mut session = open_session(&cfg, global, "up", events.clone()).await?;
    if let Some(message) = super::keep_upgraded_ami(&mut cfg, &session.state) {
        events.emit(Event::Warning { message });
    }
    // An upgrade to another image than the config's, left in progress: the operator's.
    super::upgrade::refuse_for_up(&session.state, cfg.ami.as_deref().unwrap_or_default())?;
    super::restore::refuse_while_restoring(&session.state, "up")?;
    let zones = resolve_zones(&mut session, &cfg).await?;
    // Everything a read call can check, before the first write or create (exit 2).
    super::preflight::check(&session, &cfg, &zones, |message| {
        events.emit(Event::Warning { message })
    })
    .await?;
    let graph = Arc::new(desired_graph(&cfg, &session.aws.env.region, zones.clone())?);
    let cloud = Arc::new(AwsCloud {
        aws: session.aws.clone(),
    });
    // A change AWS cannot make is refused from the recorded settings, before any change.
    refuse_changes(&plan::recorded_forbidden(&graph, &session.state, cloud.as_ref()))?;
    // A roll (or upgrade) a killed or failed run left in progress is finished, or rolled back
    // when the config asks for other launch settings now, before anything else changes
    // (`upgrade::resume_for_up` says when which).
    let mut resumed_roll = 0;
    if session.state.upgrade.is_some() {
        let digest = launch_digest(&graph, &session.state, &cloud);
        match super::upgrade::resume_for_up(
            session.aws.clone(),
            &cfg,
            zones.clone(),
            &mut session.state,
            &session.state_file,
            events.clone(),
            started,
            &digest,
        )
        .await?
        {
            Some(super::upgrade::Resumed::Finished(n)) => resumed_roll = n,
            Some(super::upgrade::Resumed::RolledBack(message)) => events.emit(Event::Warning { message }),
            None => {}
        }
    }
    // Ready resources that are out of date (new Lambda code) are converged again.
    for n in graph.nodes() {
        if let Some(r) = session.state.resources.get_mut(&n.key)
            && r.status == Status::Ready
            && crate::resources::outdated(n, &r.outputs)
        {
            r.status = Status::Created;
        }
    }
    // Day 2: read every recorded resource (read-only, concurrently), then refuse what `up`
    // will not do before the first change.
    let limits = Limits::from(global);
    let mut observed = plan::observe(&graph, &session.state, cloud.as_ref(), limits.concurrency)
        .await
        .map_err(|(key, e)| {
            CmdError::from(e.with_hint(format!("could not read `{key}` from AWS; run `pi-deploy up` again")))
        })?;
    let pending_changes = live_changes(&graph, &session.state, cloud.as_ref(), &observed);
    refuse_changes(
        &pending_changes
            .iter()
            .filter(|(k, c)| c.action != ChangeAction::Update && !is_roll(k, c) && !is_replace(&graph, &cloud, k, c))
            .cloned()
            .collect::<Vec<_>>(),
    )?;
    // What the instances boot with changed: the executor leaves the launch template to the
    // roll that follows it (a new version, then the blue/green swap).
    let roll: Vec<String> = pending_changes
        .iter()
        .filter(|(k, c)| is_roll(k, c))
        .map(|(_, c)| format!("{}: {} -> {}", c.attribute, c.old, c.new))
        .collect();
    if !roll.is_empty()
        && let Some(crate::core::resource::Observed::Present(live)) = observed.get_mut(LAUNCH_TEMPLATE)
    {
        live.clear();
    }
    let unwanted = plan::unwanted(&graph, &session.state);

    // The lineage and the resolved zones are on disk before the first create call.
    session.state.serial += 1;
    session.state_file.write(&session.state)?;

    let changed: std::collections::BTreeSet<&String> = pending_changes.iter().map(|(k, _)| k).collect();
    let pending = graph
        .nodes()
        .iter()
        .filter(|n| {
            changed.contains(&n.key)
                || matches!(observed.get(&n.key), Some(crate::core::resource::Observed::Missing))
                || session
                    .state
                    .resources
                    .get(&n.key)
                    .is_none_or(|r| !matches!(r.status, Status::Ready | Status::Updating))
        })
        .count()
        + unwanted.len();
    events.emit(Event::RunStarted {
        command: "up".into(),
        deployment: cfg.deployment.clone(),
        region: session.aws.env.region.clone(),
        planned: pending,
        unchanged: graph.len() - (pending - unwanted.len()),
    });
    if cfg.certificate_arn.is_none() {
        events.emit(Event::Warning {
            message: "no certificate given: the load balancer will serve plain HTTP on port 80 only (pass --certificate-arn for HTTPS)".into(),
        });
    }

    let weights = graph.longest_remaining(|n| latency::node_create_timing(n).median_s);
    // "phase `network` done after ..." lines, from the tiers' last resources.
    let progress = Progress::new(graph.nodes(), |k| {
        session
            .state
            .resources
            .get(k)
            .is_some_and(|r| r.status == Status::Ready)
    });
    // The dashboard's usable moment is told when it happens (usable early: before the
    // database's Multi-AZ standby is finished), and again in the summary.
    let usable = Arc::new(UsableTracker::new(events.clone(), started.into_std()));
    let phases: Arc<dyn EventSink> = Arc::new(PhaseTracker::new(usable.clone(), started.into_std(), progress));
    let store: Arc<dyn StateStore> = Arc::new(session.state_file);
    let executor = Executor {
        cloud: cloud.clone(),
        store: store.clone(),
        events: phases,
        limits,
        cancel: super::ctrl_c_channel(),
    };
    let outcome = executor
        .converge(graph.clone(), session.state, &weights, observed)
        .await;
    let mut completed = outcome.completed.len();
    let mut failed = outcome.failed.clone();
    let mut skipped = outcome.skipped.len();
    let mut cancelled = outcome.cancelled;
    let mut state_write_failed = outcome.state_write_failed.clone();
    let mut state = outcome.state;
    // What the config no longer wants goes last, dependents first, once everything that
    // replaces it is in place (a route table after the endpoint and subnets moved off it).
    // Again after the walk: a resource replaced in it (create before destroy) is kept as a
    // retiring record, deleted here once every dependent moved to its replacement.
    let mut unwanted = plan::unwanted(&graph, &state);
    // A major upgrade held for the maintenance window keeps the instance on the group it
    // replaces: that group waits for a run after the window (core::window).
    let held = crate::core::window::held(&state, &unwanted);
    if !held.is_empty()
        && let Some(h) = super::window::held_upgrade(&session.aws, &state).await
    {
        unwanted.retain(|k| !held.contains(k));
        let kept: Vec<String> = held.iter().map(|k| h.keeps(k)).collect();
        events.emit(Event::Warning {
            message: format!("{}; {}", h.describe(), kept.join("; ")),
        });
    }
    if failed.is_empty() && !cancelled && skipped == 0 && !unwanted.is_empty() {
        let keep: std::collections::BTreeSet<String> = unwanted.iter().cloned().collect();
        let doomed = existing_graph(&Graph::new(Vec::new()).expect("empty graph"), &state).restrict(&keep);
        let weights = doomed.longest_remaining_reverse(|n| latency::delete_timing(n.kind).median_s);
        let gone = executor.destroy(Arc::new(doomed), state, &weights).await;
        completed += gone.completed.len();
        failed.extend(gone.failed);
        skipped += gone.skipped.len();
        cancelled |= gone.cancelled;
        state_write_failed = state_write_failed.or(gone.state_write_failed);
        state = gone.state;
    }
    // The roll, once everything it launches into is converged.
    let mut roll_error = None;
    let mut rolled = resumed_roll;
    if !roll.is_empty() && failed.is_empty() && !cancelled && skipped == 0 && state_write_failed.is_none() {
        events.emit(Event::Warning {
            message: format!(
                "rolling the instances (blue/green, one at a time behind the load balancer): {}",
                roll.join("; ")
            ),
        });
        let digest = launch_digest(&graph, &state, &cloud);
        match super::upgrade::roll_for_up(
            session.aws.clone(),
            &cfg,
            zones,
            &mut state,
            store.as_ref(),
            events.clone(),
            started,
            &digest,
        )
        .await
        {
            Ok(n) => rolled += n,
            Err(e) => roll_error = Some(e),
        }
    }
    state.outputs = outputs(&state);
    state.serial += 1;
    let saved = store.save(&state);
    session.aws.clients.dump_call_counts();

    let mut counts = BTreeMap::new();
    counts.insert("done".to_string(), completed);
    counts.insert("unchanged".to_string(), outcome.unchanged.len());
    counts.insert("failed".to_string(), failed.len());
    counts.insert("skipped".to_string(), skipped);
    if rolled > 0 {
        counts.insert("rolled".to_string(), rolled);
    }
    let error = if let Some(why) = &state_write_failed {
        Some(super::state_write_failed(why))
    } else if let Some((key, e)) = failed.first() {
        Some(format!("{key}: {e}"))
    } else if cancelled {
        Some("interrupted; run `pi-deploy up` again to resume".to_string())
    } else if let Some(e) = &roll_error {
        Some(match e {
            CmdError::Failed { message, .. } | CmdError::Refused { message, .. } => message.clone(),
            other => format!("the roll failed: {other:?}"),
        })
    } else {
        saved.as_ref().err().cloned()
    };
    events.emit(Event::RunFinished {
        command: "up".into(),
        ok: error.is_none(),
        elapsed_ms: started.elapsed().as_millis() as u64,
        usable_ms: usable.usable_ms(),
        counts,
        outputs: if error.is_none() {
            state.outputs.clone()
        } else {
            BTreeMap::new()
        },
        error: error.clone(),
    });
    if let Some(CmdError::Failed { message, hint, .. } | CmdError::Refused { message, hint }) = roll_error {
        return Err(CmdError::Failed {
            message,
            hint,
            reported: true,
        });
    }
    let hint = if state_write_failed.is_some() {
        super::STATE_WRITE_HINT
    } else if failed.is_empty() {
        // Interrupted (Ctrl-C, SIGTERM) or the final write: there is no cause to fix.
        "run `pi-deploy up` again: it resumes where it stopped"
    } else {
        "fix the cause, then run `pi-deploy up` again: it resumes where it stopped"
    };
    match error {
        None => Ok(()),
        Some(message) => Err(CmdError::Failed {
            message,
            hint: Some(hint.into()),
            reported: true,
        }),
    }
}

/// The changes the live reads show, judged with the recorded ids of the dependencies (what
/// `up` is about to do, before a dependency created again in this run moves anything).
fn live_changes(
    graph: &Graph,
    state: &State,
    cloud: &AwsCloud,
    observed: &BTreeMap<String, crate::core::resource::Observed>,
) -> Vec<(String, crate::core::diff::Change)> {
    let mut out = Vec::new();
    for spec in graph.nodes() {
        let Some(crate::core::resource::Observed::Present(live)) = observed.get(&spec.key) else {
            continue;
        };
        let deps = spec
            .deps
            .iter()
            .filter_map(|d| state.resources.get(d).map(|r| (d.clone(), r.outputs.clone())))
            .collect();
        let desired = cloud.desired(spec, &deps);
        out.extend(
            cloud
                .diff(spec, &desired, live)
                .into_iter()
                .map(|c| (spec.key.clone(), c)),
        );
    }
    out
}

/// A change `up` carries out create-before-destroy: a `replace` of a kind that opts in.
fn is_replace(graph: &Graph, cloud: &AwsCloud, key: &str, c: &crate::core::diff::Change) -> bool {
    c.action == ChangeAction::Replace && graph.get(key).is_some_and(|n| cloud.replaceable(n))
}

const LAUNCH_TEMPLATE: &str = "launch-template";

/// A change `up` carries out by rolling the instances: the launch template's.
fn is_roll(key: &str, c: &crate::core::diff::Change) -> bool {
    key == LAUNCH_TEMPLATE && c.action == ChangeAction::Roll
}

/// A digest of the launch template's desired settings with the recorded ids: names the
/// roll's new version (its client token), the same on a resumed run of the same change.
pub(super) fn launch_digest(graph: &Graph, state: &State, cloud: &AwsCloud) -> String {
    let Some(spec) = graph.get(LAUNCH_TEMPLATE) else {
        return String::new();
    };
    let deps = spec
        .deps
        .iter()
        .filter_map(|d| state.resources.get(d).map(|r| (d.clone(), r.outputs.clone())))
        .collect();
    let desired = cloud.desired(spec, &deps);
    crate::resources::launch_template::user_data_digest(format!("{desired:?}").as_bytes())
}

/// A configured licence must be readable before anything is created: a missing env var
/// or file is bad input (exit 2), not a failure halfway through the run.
fn check_licence(cfg: &crate::core::config::Config) -> Result<(), CmdError> {
    match crate::core::spec::licence_source(cfg) {
        Some(source) => crate::resources::secret::read_licence(&source)
            .map(drop)
            .map_err(|e| CmdError::input(e.field, e.problem, e.fix)),
        None => Ok(()),
    }
}

/// The values an operator needs, from the recorded resources.
pub fn outputs(state: &State) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut take = |name: &str, key: &str, output: &str| {
        if let Some(v) = state.resources.get(key).and_then(|r| r.outputs.get(output)) {
            out.insert(name.to_string(), v.to_string());
        }
    };
    take("vpc_id", "vpc", "id");
    take("dashboard_url", "dashboard", "id");
    take("asg_name", "asg", "id");
    take("bucket_name", "bucket", "id");
    take("file_system_id", "efs", "id");
    take("db_secret_arn", "db", "secret_arn");
    let endpoint = state
        .resources
        .get("db-endpoint")
        .map(|r| (r.outputs.get("address"), r.outputs.get("port")));
    if let Some((Some(host), Some(port))) = endpoint {
        out.insert("db_endpoint".to_string(), format!("{host}:{port}"));
    }
    out
}
