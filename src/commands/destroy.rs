//! `pi-deploy destroy`: delete everything the deployment created, dependents first, each
//! marked `deleting` before its delete call and removed from the state only once gone.

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use tokio::time::Instant;

use super::{CmdError, existing_graph, load_config, open_session, resolve_zones, search_graph, validate};
use crate::aws::DestroyOptions;
use crate::cli::{DestroyArgs, GlobalArgs};
use crate::core::config::Purpose;
use crate::core::event::{Event, EventSink};
use crate::core::executor::{Executor, Limits, StateStore};
use crate::core::latency;
use crate::core::orphans::{Found, find_unrecorded};
use crate::core::state::{ResourceRecord, State, Status};
use crate::resources::Aws;
use crate::resources::AwsCloud;

pub async fn run(global: &GlobalArgs, args: &DestroyArgs, events: Arc<dyn EventSink>) -> Result<(), CmdError> {
    let cfg = load_config(global)?;
    validate(&cfg, Purpose::Other)?;
    let started = Instant::now();
    let mut session = open_session(&cfg, global, "destroy", events.clone()).await?;
    Arc::get_mut(&mut session.aws)
        .expect("the session is not shared yet")
        .env
        .destroy = DestroyOptions {
        skip_final_snapshot: args.skip_final_snapshot,
        disable_deletion_protection: args.disable_deletion_protection,
    };
    let zones = resolve_zones(&mut session, &cfg).await?;
    let search = search_graph(&cfg, &session.aws.env.region, zones)?;
    let cloud = Arc::new(AwsCloud {
        aws: session.aws.clone(),
    });

    // Before deleting: what does AWS hold that the state does not record? (A run killed
    // between a create call and its record, or a lost state file.) Recorded first, so
    // nothing found is ever lost, then deleted with the rest.
    let (found, failed) = find_unrecorded(cloud.as_ref(), &search, &session.state).await;
    for (key, e) in &failed {
        events.emit(Event::Warning {
            message: format!("could not look for `{key}`: {e}"),
        });
    }
    if !found.is_empty() {
        let keys: Vec<&str> = found.iter().map(|f| f.key.as_str()).collect();
        events.emit(Event::Warning {
            message: format!(
                "found {} resources the state did not record; they will be deleted too: {}",
                found.len(),
                keys.join(", ")
            ),
        });
        record_found(&mut session.state, found);
        session.state.serial += 1;
        session.state_file.write(&session.state)?;
    }
    if session.state.resources.is_empty() {
        // A run killed after its last delete but before removing the file left an empty
        // state behind: finish that removal (a no-op when there is no file).
        session.state_file.remove()?;
        events.emit(Event::RunFinished {
            command: "destroy".into(),
            ok: true,
            elapsed_ms: started.elapsed().as_millis() as u64,
            counts: BTreeMap::from([("deleted".to_string(), 0)]),
            outputs: BTreeMap::from([(
                "message".to_string(),
                format!("nothing of deployment `{}` exists", cfg.deployment),
            )]),
            error: None,
        });
        return Ok(());
    }
    let graph = Arc::new(existing_graph(&search, &session.state));

    confirm(global, &cfg.deployment, &session.state, &session.aws).await?;
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
        cloud,
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
        Some(format!(
            "{} resources are still recorded",
            outcome.state.resources.len()
        ))
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

/// Add resources found in AWS to the state as `created`, so they are deleted like the rest.
fn record_found(state: &mut State, found: Vec<Found>) {
    for f in found {
        let token = state.client_token(&f.key);
        state.resources.insert(
            f.key,
            ResourceRecord {
                kind: f.kind,
                status: Status::Created,
                client_token: token,
                outputs: f.outputs,
                deps: f.deps,
                updated_at: chrono::Utc::now(),
            },
        );
    }
}

/// Objects in the resources bucket (first page: "1000+" when there are more).
async fn bucket_objects(aws: &Aws, state: &State) -> Option<String> {
    let bucket = state.resources.get("bucket")?.outputs.get("id")?.to_string();
    let out = aws.clients.s3.list_objects_v2().bucket(bucket).send().await.ok()?;
    let n = out.key_count().unwrap_or(0);
    Some(if out.is_truncated() == Some(true) {
        format!("{n}+")
    } else {
        n.to_string()
    })
}

/// Show what will be deleted and ask for the deployment name, unless --yes.
async fn confirm(global: &GlobalArgs, deployment: &str, state: &State, aws: &Aws) -> Result<(), CmdError> {
    if global.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CmdError::Refused {
            message: format!(
                "destroy needs confirmation: {} resources of deployment `{deployment}` would be deleted",
                state.resources.len()
            ),
            hint: Some("pass --yes to confirm without a terminal".into()),
        });
    }
    let mut by_kind: BTreeMap<&str, usize> = BTreeMap::new();
    for r in state.resources.values() {
        *by_kind.entry(r.kind.as_str()).or_default() += 1;
    }
    let objects = bucket_objects(aws, state).await;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "This deletes {} resources of deployment `{deployment}` in {}:",
        state.resources.len(),
        state.region
    );
    for (kind, n) in &by_kind {
        let _ = writeln!(err, "  {n:>3} {kind}");
    }
    if let Some(n) = objects {
        let _ = writeln!(
            err,
            "The resources bucket holds {n} objects: they are deleted with it (every version)."
        );
    }
    if state.resources.contains_key("db") {
        let snapshot = if aws.env.destroy.skip_final_snapshot {
            "NO final snapshot (--skip-final-snapshot)"
        } else {
            "a final snapshot is taken first"
        };
        let _ = writeln!(err, "Database: {snapshot}.");
    }
    let _ = write!(err, "Type the deployment name to confirm: ");
    let _ = err.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if answer.trim() == deployment {
        Ok(())
    } else {
        Err(CmdError::Refused {
            message: "destroy cancelled: the name did not match".into(),
            hint: Some("run it again and type the deployment name exactly, or pass --yes".into()),
        })
    }
}
