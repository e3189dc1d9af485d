//! `pi-deploy destroy`: delete everything the deployment created, dependents first, each
//! marked `deleting` before its delete call and removed from the state only once gone.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use tokio::time::Instant;

use super::{CmdError, desired_graph, existing_graph, load_config, open_session, resolve_zones, validate};
use crate::aws::DestroyOptions;
use crate::cli::{DestroyArgs, GlobalArgs};
use crate::core::config::Purpose;
use crate::core::event::{Event, EventSink};
use crate::core::executor::{Executor, Limits, StateStore};
use crate::core::latency;
use crate::core::state::State;
use crate::resources::AwsCloud;

pub async fn run(global: &GlobalArgs, args: &DestroyArgs, events: Arc<dyn EventSink>) -> Result<(), CmdError> {
    let cfg = load_config(global)?;
    validate(&cfg, Purpose::Other)?;
    let started = Instant::now();
    let mut session = open_session(&cfg, global, "destroy", events.clone()).await?;
    Arc::get_mut(&mut session.aws).expect("the session is not shared yet").env.destroy = DestroyOptions {
        skip_final_snapshot: args.skip_final_snapshot,
        disable_deletion_protection: args.disable_deletion_protection,
    };
    if session.fresh {
        events.emit(Event::RunFinished {
            command: "destroy".into(),
            ok: true,
            elapsed_ms: started.elapsed().as_millis() as u64,
            counts: BTreeMap::from([("deleted".to_string(), 0)]),
            outputs: BTreeMap::new(),
            error: None,
        });
        return Ok(());
    }
    let zones = resolve_zones(&mut session, &cfg).await?;
    let desired = desired_graph(&cfg, &session.aws.env.region, zones)?;
    let graph = Arc::new(existing_graph(&desired, &session.state));

    confirm(global, &cfg.deployment, &session.state)?;
    events.emit(Event::RunStarted {
        command: "destroy".into(),
        deployment: cfg.deployment.clone(),
        region: session.aws.env.region.clone(),
        planned: graph.len(),
        unchanged: 0,
    });

    let weights = graph.longest_remaining_reverse(|n| latency::delete_timing(n.kind).median_s);
    let state_file = Arc::new(session.state_file);
    let store: Arc<dyn StateStore> = state_file.clone();
    let executor = Executor {
        cloud: Arc::new(AwsCloud { aws: session.aws.clone() }),
        store,
        events: events.clone(),
        limits: Limits::default(),
        cancel: super::ctrl_c_channel(),
    };
    let outcome = executor.destroy(graph.clone(), session.state, &weights).await;
    session.aws.clients.dump_call_counts();

    let error = if let Some((key, e)) = outcome.failed.first() {
        Some(format!("{key}: {e}"))
    } else if outcome.cancelled {
        Some("interrupted; run `pi-deploy destroy` again to finish".to_string())
    } else if !outcome.state.resources.is_empty() {
        Some(format!("{} resources are still recorded", outcome.state.resources.len()))
    } else {
        state_file.remove().err().map(|e| e.to_string())
    };
    let counts = BTreeMap::from([
        ("deleted".to_string(), outcome.completed.len()),
        ("failed".to_string(), outcome.failed.len()),
        ("left".to_string(), outcome.state.resources.len()),
    ]);
    events.emit(Event::RunFinished {
        command: "destroy".into(),
        ok: error.is_none(),
        elapsed_ms: started.elapsed().as_millis() as u64,
        counts,
        outputs: final_snapshot_outputs(&session.aws.env.final_snapshots.lock().unwrap()),
        error: error.clone(),
    });
    match error {
        None => Ok(()),
        Some(message) => Err(CmdError::Failed {
            message,
            hint: Some("run `pi-deploy destroy` again: it resumes where it stopped".into()),
            reported: true,
        }),
    }
}

/// The final DB snapshots this run took, for the summary (`final_snapshot`).
fn final_snapshot_outputs(snapshots: &[String]) -> BTreeMap<String, String> {
    match snapshots {
        [] => BTreeMap::new(),
        many => BTreeMap::from([("final_snapshot".to_string(), many.join(","))]),
    }
}

/// Show what will be deleted and ask for the deployment name, unless --yes.
fn confirm(global: &GlobalArgs, deployment: &str, state: &State) -> Result<(), CmdError> {
    if global.yes {
        return Ok(());
    }
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for r in state.resources.values() {
        *by_kind.entry(r.kind.as_str()).or_default() += 1;
    }
    if !std::io::stdin().is_terminal() {
        return Err(CmdError::Refused {
            message: format!("destroy needs confirmation: {} resources of deployment `{deployment}` would be deleted", state.resources.len()),
            hint: Some("pass --yes to confirm without a terminal".into()),
        });
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "This deletes {} resources of deployment `{deployment}` in {}:", state.resources.len(), state.region);
    for (kind, n) in &by_kind {
        let _ = writeln!(err, "  {n:>3} {kind}");
    }
    let _ = write!(err, "Type the deployment name to confirm: ");
    let _ = err.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() == deployment {
        Ok(())
    } else {
        Err(CmdError::Refused { message: "destroy cancelled: the name did not match".into(), hint: None })
    }
}
