//! `pi-deploy destroy`: delete everything the deployment created, dependents first, each
//! marked `deleting` before its delete call and removed from the state only once gone.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use tokio::time::Instant;

use super::{CmdError, Session, existing_graph, load_config, open_session, resolve_zones, search_graph, validate};
use crate::aws::DestroyOptions;
use crate::cli::{DestroyArgs, GlobalArgs};
use crate::core::config::Purpose;
use crate::core::event::{Event, EventSink};
use crate::core::executor::{Executor, Limits, StateStore};
use crate::core::graph::Graph;
use crate::core::latency;
use crate::core::orphans::{Found, find_unrecorded};
use crate::core::resource::Outputs;
use crate::core::state::{ResourceRecord, State, Status};
use crate::resources::Aws;
use crate::resources::AwsCloud;
use crate::resources::discover;

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

    let extras = record_unrecorded(&mut session, cloud.as_ref(), &search, events.as_ref()).await?;
    // `snapshot`'s role goes; its DB snapshots and recovery points stay (the user's data).
    super::snapshot::hand_backup_role_to_destroy(&session.aws, &mut session.state).await?;
    // A restore's other instance (the old one kept, or a restored one not switched to) goes
    // too, and so does a restore's other file system.
    super::restore_fs::resolve_for_destroy(&session.aws, &mut session.state, events.as_ref()).await?;
    super::restore::hand_to_destroy(&mut session.state);
    if let Some(kept) = super::snapshot::kept_by_destroy(&session.aws, &session.state).await {
        events.emit(Event::Warning { message: kept });
    }
    if session.state.resources.is_empty() {
        // A run killed after its last delete but before removing the file left an empty
        // state behind: finish that removal (a no-op when there is no file).
        session.state_file.remove()?;
        events.emit(Event::RunFinished {
            command: "destroy".into(),
            ok: true,
            elapsed_ms: started.elapsed().as_millis() as u64,
            usable_ms: None,
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

    confirm(global, &cfg.deployment, &session.state, &session.aws, &extras).await?;
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
        limits: Limits::from(global),
        cancel: super::ctrl_c_channel(),
    };
    let outcome = executor.destroy(graph.clone(), session.state, &weights).await;
    session.aws.clients.dump_call_counts();

    let error = if let Some(why) = &outcome.state_write_failed {
        Some(super::state_write_failed(why))
    } else if let Some((key, e)) = outcome.failed.first() {
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
        usable_ms: None,
        counts,
        outputs: final_snapshot_outputs(&session.aws.env.final_snapshots.lock().unwrap()),
        error: error.clone(),
    });
    match error {
        None => Ok(()),
        Some(message) => Err(CmdError::Failed {
            message,
            hint: Some(
                if outcome.state_write_failed.is_some() {
                    super::STATE_WRITE_HINT
                } else {
                    "run `pi-deploy destroy` again: it resumes where it stopped"
                }
                .into(),
            ),
            reported: true,
        }),
    }
}

/// Before deleting: what does AWS hold that the state does not record? (A run killed
/// between a create call and its record, a lost state file, a resource of an older version
/// or a second copy.) Recorded first, so nothing found is ever lost, then deleted with the
/// rest. Returns the extras (tagged, unknown to the spec) named for the confirmation.
async fn record_unrecorded(
    session: &mut Session,
    cloud: &AwsCloud,
    search: &Graph,
    events: &dyn EventSink,
) -> Result<Vec<String>, CmdError> {
    // Both searches are reads and independent: at once.
    let ((found, failed), scanned) = tokio::join!(
        find_unrecorded(cloud, search, &session.state),
        discover::tagged(&session.aws)
    );
    for (key, e) in &failed {
        events.emit(Event::Warning {
            message: format!("could not look for `{key}`: {e}"),
        });
    }
    let mut changed = !found.is_empty();
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
    }
    // The kinds' finds know only the spec's keys: anything else tagged with the deployment
    // comes from the tag scan that `status` reports leaks with.
    let extras = match scanned {
        Ok(scanned) => extras(&scanned, &session.state),
        Err(e) => {
            events.emit(Event::Warning {
                message: format!(
                    "could not scan for resources tagged with the deployment, so only what the state records or the lookups found is deleted: {e}"
                ),
            });
            Vec::new()
        }
    };
    let described: Vec<String> = extras.iter().map(|x| x.described.clone()).collect();
    if !extras.is_empty() {
        events.emit(Event::Warning {
            message: format!(
                "found {} resources tagged with deployment `{}` that it does not know; they will be deleted too: {}",
                extras.len(),
                session.aws.env.deployment,
                described.join(", ")
            ),
        });
        changed = true;
        record_found(&mut session.state, extras.into_iter().map(|x| x.record).collect());
    }
    if changed {
        session.state.serial += 1;
        session.state_file.write(&session.state)?;
    }
    Ok(described)
}

/// A resource tagged with the deployment that the state holds under no key: its record,
/// and how the confirmation names it.
#[derive(Debug, PartialEq)]
struct Extra {
    record: Found,
    described: String,
}

/// The scanned resources tagged with the deployment whose id the state does not hold
/// (under a key the spec does not know, or a second copy), as records under a key of their
/// own, `<kind>/extra-<id>`, deleted by their kind's delete. Each depends on the recorded
/// or extra resources it sits in (its VPC, subnets, groups, file system...), so the reverse
/// walk deletes it before them. Untagged resources found by name alone are left to the
/// kinds' finds, which decide whether such a resource is ours.
fn extras(scanned: &[discover::Found], state: &State) -> Vec<Extra> {
    let recorded: BTreeSet<&str> = state.resources.values().filter_map(|r| r.outputs.get("id")).collect();
    let mut seen = BTreeSet::new();
    let unknown: Vec<&discover::Found> = scanned
        .iter()
        .filter(|f| f.tagged && !recorded.contains(f.id.as_str()))
        .filter(|f| seen.insert((f.kind, f.id.as_str())))
        .collect();
    let extra_key = |f: &discover::Found| format!("{}/extra-{}", f.kind.as_str(), f.id);
    let key_of_id: BTreeMap<&str, String> = state
        .resources
        .iter()
        .filter_map(|(k, r)| Some((r.outputs.get("id")?, k.clone())))
        .chain(unknown.iter().map(|f| (f.id.as_str(), extra_key(f))))
        .collect();
    unknown
        .into_iter()
        .map(|f| {
            let key = extra_key(f);
            let mut deps: Vec<String> = f
                .within
                .iter()
                .filter_map(|id| key_of_id.get(id.as_str()))
                .filter(|k| **k != key)
                .cloned()
                .collect();
            deps.sort();
            deps.dedup();
            let mut outputs = Outputs::new().with("id", &f.id);
            for (name, value) in &f.attrs {
                outputs.set(name, value);
            }
            Extra {
                described: format!("{} {} (key `{}`)", f.kind, f.id, f.key),
                record: Found {
                    key,
                    kind: f.kind,
                    outputs,
                    deps,
                },
            }
        })
        .collect()
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
                settings: Default::default(),
                retiring: None,
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
async fn confirm(
    global: &GlobalArgs,
    deployment: &str,
    state: &State,
    aws: &Aws,
    extras: &[String],
) -> Result<(), CmdError> {
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
    if !extras.is_empty() {
        let _ = writeln!(
            err,
            "Among them, {} tagged with the deployment that it does not know (e.g. left by an older version):",
            extras.len()
        );
        for x in extras {
            let _ = writeln!(err, "      {x}");
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::Kind;
    use crate::core::state::Identity;

    fn state_with(records: &[(&str, Kind, &str)]) -> State {
        let mut st = State::new(&Identity {
            deployment: "pi".into(),
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            partition: "aws".into(),
        });
        for (key, kind, id) in records {
            st.resources.insert(
                key.to_string(),
                ResourceRecord {
                    kind: *kind,
                    status: Status::Ready,
                    client_token: "t".into(),
                    outputs: Outputs::new().with("id", *id),
                    deps: vec![],
                    settings: Default::default(),
                    retiring: None,
                    updated_at: chrono::Utc::now(),
                },
            );
        }
        st
    }

    fn scanned(key: &str, kind: Kind, id: &str, within: &[&str]) -> discover::Found {
        discover::Found {
            key: key.into(),
            kind,
            id: id.into(),
            tagged: true,
            within: within.iter().map(|s| s.to_string()).collect(),
            attrs: vec![],
        }
    }

    fn by_key(extras: &[Extra]) -> BTreeMap<&str, &Found> {
        extras.iter().map(|x| (x.record.key.as_str(), &x.record)).collect()
    }

    #[test]
    fn tagged_resources_the_state_does_not_hold_become_records_deleted_before_their_vpc() {
        let st = state_with(&[("vpc", Kind::Vpc, "vpc-1"), ("subnet-app-a", Kind::Subnet, "subnet-1")]);
        let scan = vec![
            scanned("vpc", Kind::Vpc, "vpc-1", &[]),
            scanned("subnet-app-a", Kind::Subnet, "subnet-1", &["vpc-1"]),
            scanned("bogus/subnet", Kind::Subnet, "subnet-9", &["vpc-1"]),
            scanned("bogus/sg", Kind::SecurityGroup, "sg-9", &["vpc-1"]),
            scanned("bogus/eip", Kind::ElasticIp, "eipalloc-9", &[]),
            scanned(
                "bogus/nat",
                Kind::NatGateway,
                "nat-9",
                &["subnet-9", "vpc-1", "eipalloc-9"],
            ),
            // A second copy under a key the spec knows is an extra too.
            scanned("vpc", Kind::Vpc, "vpc-2", &[]),
            scanned("bogus/sg", Kind::SecurityGroup, "sg-8", &["vpc-2", "vpc-elsewhere"]),
        ];
        let extras = extras(&scan, &st);
        let got = by_key(&extras);
        assert_eq!(
            got.keys().copied().collect::<Vec<_>>(),
            [
                "elastic-ip/extra-eipalloc-9",
                "nat-gateway/extra-nat-9",
                "security-group/extra-sg-8",
                "security-group/extra-sg-9",
                "subnet/extra-subnet-9",
                "vpc/extra-vpc-2",
            ]
        );
        assert_eq!(got["subnet/extra-subnet-9"].deps, ["vpc"]);
        assert_eq!(got["subnet/extra-subnet-9"].kind, Kind::Subnet);
        assert_eq!(got["subnet/extra-subnet-9"].outputs.get("id"), Some("subnet-9"));
        assert_eq!(got["security-group/extra-sg-9"].deps, ["vpc"]);
        assert_eq!(
            got["nat-gateway/extra-nat-9"].deps,
            ["elastic-ip/extra-eipalloc-9", "subnet/extra-subnet-9", "vpc"]
        );
        // An id outside the deployment gives no edge.
        assert_eq!(got["security-group/extra-sg-8"].deps, ["vpc/extra-vpc-2"]);
        assert!(got["vpc/extra-vpc-2"].deps.is_empty());
        let named = extras.iter().find(|x| x.record.key == "subnet/extra-subnet-9").unwrap();
        assert_eq!(named.described, "subnet subnet-9 (key `bogus/subnet`)");
    }

    #[test]
    fn untagged_and_duplicate_scan_results_are_not_extras_and_attrs_are_kept() {
        let st = state_with(&[
            ("subnet-app-a", Kind::Subnet, "subnet-1"),
            ("sg-lambda", Kind::SecurityGroup, "sg-1"),
        ]);
        let mut bucket = scanned("bucket", Kind::Bucket, "pi-bucket-other", &[]);
        bucket.tagged = false;
        let mut lambda = scanned("bogus/lambda", Kind::LambdaFunction, "pi-fn", &["subnet-1", "sg-1"]);
        lambda.attrs = vec![
            ("subnet_ids".into(), "subnet-1".into()),
            ("security_group_id".into(), "sg-1".into()),
        ];
        let scan = vec![bucket, lambda.clone(), lambda];
        let extras = extras(&scan, &st);
        assert_eq!(extras.len(), 1, "{extras:?}");
        let r = &extras[0].record;
        assert_eq!(r.key, "lambda-function/extra-pi-fn");
        assert_eq!(r.deps, ["sg-lambda", "subnet-app-a"]);
        assert_eq!(r.outputs.get("subnet_ids"), Some("subnet-1"));
        assert_eq!(r.outputs.get("security_group_id"), Some("sg-1"));
    }

    #[test]
    fn nothing_extra_when_the_state_holds_every_id() {
        let st = state_with(&[("vpc", Kind::Vpc, "vpc-1")]);
        assert!(extras(&[scanned("vpc", Kind::Vpc, "vpc-1", &[])], &st).is_empty());
    }
}
