//! `pi-deploy destroy`: delete everything the deployment created, dependents first, each
//! marked `deleting` before its delete call and removed from the state only once gone.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{CmdError, existing_graph, load_config, open_session, resolve_zones, search_graph, validate};
use crate::aws::DestroyOptions;
use crate::cli::{DestroyArgs, GlobalArgs};
use crate::core::config::Purpose;
use crate::core::event::{Event, EventSink};
use crate::core::executor::{Executor, Gate, Limits, Outcome, StateStore};
use crate::core::graph::Graph;
use crate::core::latency;
use crate::core::orphans::{Found, find_unrecorded, held_for_search};
use crate::core::resource::{Outputs, ResourceError};
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

    // `snapshot`'s role goes; its DB snapshots and recovery points stay (the user's data).
    super::snapshot::hand_backup_role_to_destroy(&session.aws, &mut session.state).await?;
    // A restore's other instance (the old one kept, or a restored one not switched to) goes
    // too, and so does a restore's other file system.
    super::restore_fs::resolve_for_destroy(&session.aws, &mut session.state, events.as_ref()).await?;
    super::restore::hand_to_destroy(&mut session.state);

    let state_file = Arc::new(session.state_file);
    let store: Arc<dyn StateStore> = state_file.clone();
    let executor = Executor {
        cloud: cloud.clone(),
        store,
        events: events.clone(),
        limits: Limits::from(global),
        cancel: super::ctrl_c_channel(),
    };
    let weights_of = |g: &Graph| g.longest_remaining_reverse(|n| latency::delete_timing(n.kind).median_s);
    let run_started = |planned: usize| {
        events.emit(Event::RunStarted {
            command: "destroy".into(),
            deployment: cfg.deployment.clone(),
            region: session.aws.env.region.clone(),
            planned,
            unchanged: 0,
        })
    };
    let kept = |state: &State| {
        let aws = session.aws.clone();
        let state = state.clone();
        async move { super::snapshot::kept_by_destroy(&aws, &state).await }
    };

    // What AWS holds that the state does not record is searched for first (the lookups of
    // the spec's keys and the tag scan, read-only) and recorded before it is deleted. With
    // --yes and something recorded, the deletes start while the search runs: the nodes a
    // find could need deleted after it wait for its answer (`orphans::held_for_search`,
    // `Executor::destroy_gated`); when it found something, the walk leaves them, the finds
    // are recorded and a second walk deletes the rest. Without --yes the confirmation
    // names what the search found, so the search comes first.
    let snapshot = session.state.clone();
    let outcome = if global.yes && !snapshot.resources.is_empty() {
        let graph = Arc::new(existing_graph(&search, &snapshot));
        let held = held_for_search(&graph, &search, &snapshot, discover::EXTRA_CONTAINERS);
        let (answer, open) = oneshot::channel();
        run_started(graph.len());
        let weights = weights_of(&graph);
        let walk = executor.destroy_gated(graph.clone(), session.state, &weights, Gate { held, open });
        let searching = async {
            let (searched, kept) = tokio::join!(search_unrecorded(cloud.as_ref(), &search, &snapshot), kept(&snapshot));
            let news = News::of(searched, &snapshot);
            let _ = answer.send(news.is_empty());
            if let Some(kept) = kept {
                events.emit(Event::Warning { message: kept });
            }
            news
        };
        let (mut first, news) = tokio::join!(walk, searching);
        let mut state = first.state.clone();
        let (_, changed) = news.record(&mut state, &cfg.deployment, events.as_ref());
        if changed {
            // The finds are on disk before anything they sit in is deleted (those were held).
            state.serial += 1;
            if let Err(e) = state_file.write(&state) {
                first.state_write_failed.get_or_insert_with(|| e.to_string());
            }
        }
        if first.held_back && first.ok() && first.state_write_failed.is_none() {
            let graph = Arc::new(existing_graph(&search, &state));
            let second = executor.destroy(graph.clone(), state, &weights_of(&graph)).await;
            second.after(first)
        } else {
            Outcome { state, ..first }
        }
    } else {
        let searched = search_unrecorded(cloud.as_ref(), &search, &session.state).await;
        let (extras, changed) =
            News::of(searched, &session.state).record(&mut session.state, &cfg.deployment, events.as_ref());
        if changed {
            session.state.serial += 1;
            state_file.write(&session.state)?;
        }
        if let Some(kept) = kept(&session.state).await {
            events.emit(Event::Warning { message: kept });
        }
        if session.state.resources.is_empty() {
            // A run killed after its last delete but before removing the file left an empty
            // state behind: finish that removal (a no-op when there is no file).
            state_file.remove()?;
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
        run_started(graph.len());
        executor
            .destroy(graph.clone(), session.state, &weights_of(&graph))
            .await
    };
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
/// or a second copy.) Both searches are reads and independent: at once.
async fn search_unrecorded(cloud: &AwsCloud, search: &Graph, state: &State) -> Searched {
    let ((found, failed), scanned) = tokio::join!(find_unrecorded(cloud, search, state), discover::tagged(&cloud.aws));
    Searched { found, failed, scanned }
}

struct Searched {
    found: Vec<Found>,
    failed: Vec<(String, ResourceError)>,
    scanned: Result<Vec<discover::Found>, ResourceError>,
}

/// What the search found that `state` (the one it searched against) does not hold, as
/// records, and the warnings that name it.
struct News {
    found: Vec<Found>,
    extras: Vec<Extra>,
    warnings: Vec<String>,
}

impl News {
    fn of(searched: Searched, state: &State) -> News {
        let mut warnings: Vec<String> = searched
            .failed
            .iter()
            .map(|(key, e)| format!("could not look for `{key}`: {e}"))
            .collect();
        // The kinds' finds know only the spec's keys: anything else tagged with the
        // deployment comes from the tag scan that `status` reports leaks with. The lookups'
        // finds count as known (a lost state's VPC is found by both; recorded twice, it
        // would be deleted twice), and as what an extra sits in.
        let mut known = state.clone();
        record_found(&mut known, searched.found.clone());
        let extras = match searched.scanned {
            Ok(scanned) => extras(&scanned, &known),
            Err(e) => {
                warnings.push(format!(
                    "could not scan for resources tagged with the deployment, so only what the state records or the lookups found is deleted: {e}"
                ));
                Vec::new()
            }
        };
        News {
            found: searched.found,
            extras,
            warnings,
        }
    }

    /// Nothing to record (a search that failed is warned about, not waited for).
    fn is_empty(&self) -> bool {
        self.found.is_empty() && self.extras.is_empty()
    }

    /// Records the finds in `state` (not yet written), so nothing found is ever lost, to be
    /// deleted with the rest; says what it found. Returns the extras as the confirmation
    /// names them, and whether the state changed.
    fn record(self, state: &mut State, deployment: &str, events: &dyn EventSink) -> (Vec<String>, bool) {
        let changed = !self.is_empty();
        for message in self.warnings {
            events.emit(Event::Warning { message });
        }
        if !self.found.is_empty() {
            let keys: Vec<&str> = self.found.iter().map(|f| f.key.as_str()).collect();
            events.emit(Event::Warning {
                message: format!(
                    "found {} resources the state did not record; they will be deleted too: {}",
                    self.found.len(),
                    keys.join(", ")
                ),
            });
            record_found(state, self.found);
        }
        let described: Vec<String> = self.extras.iter().map(|x| x.described.clone()).collect();
        if !self.extras.is_empty() {
            events.emit(Event::Warning {
                message: format!(
                    "found {} resources tagged with deployment `{deployment}` that it does not know; they will be deleted too: {}",
                    self.extras.len(),
                    described.join(", ")
                ),
            });
            record_found(state, self.extras.into_iter().map(|x| x.record).collect());
        }
        (described, changed)
    }
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

    #[test]
    fn a_default_deployment_holds_back_its_containers_and_what_an_unbuilt_option_needs_only() {
        // Everything of the default config recorded: the gated destroy's first walk may
        // delete the leaves, the group, the Lambda, the database, the mount targets...; it
        // holds what a find could sit in (VPC, subnets, groups, addresses, file system,
        // launch template) and what the unbuilt options' keys depend on.
        let cfg = crate::core::config::Config::default();
        let zones = ["eu-west-1a".to_string(), "eu-west-1b".to_string()];
        let search = super::super::search_graph(&cfg, "eu-west-1", zones.clone()).unwrap();
        let desired = super::super::desired_graph(&cfg, "eu-west-1", zones).unwrap();
        let records: Vec<(&str, Kind, String)> = desired
            .nodes()
            .iter()
            .map(|n| (n.key.as_str(), n.kind, format!("id-{}", n.key)))
            .collect();
        let st = state_with(
            &records
                .iter()
                .map(|(k, kind, id)| (*k, *kind, id.as_str()))
                .collect::<Vec<_>>(),
        );
        let walked = existing_graph(&search, &st);
        let held = held_for_search(&walked, &search, &st, discover::EXTRA_CONTAINERS);
        let is_held = |key: &str| held[walked.index_of(key).unwrap_or_else(|| panic!("{key}"))];
        for key in [
            "asg",
            "lambda",
            "efs-mt-a",
            "efs-mt-b",
            "db",
            "cpu-high-alarm",
            "bucket-notification",
            "lambda-permission",
            "efs-ap",
        ] {
            assert!(
                !is_held(key),
                "{key} is on destroy's chains and nothing found can need it"
            );
        }
        for key in ["vpc", "efs", "launch-template", "sg-app"] {
            assert!(is_held(key), "{key} can hold a found resource");
        }
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
    fn what_the_lookups_found_is_no_extra_and_the_extras_inside_it_depend_on_its_key() {
        // The state lost: the lookups find the VPC and a subnet by their names, the tag scan
        // finds them too and a restored DB instance the spec has no key for.
        let st = state_with(&[]);
        let found = |key: &str, kind: Kind, id: &str| Found {
            key: key.into(),
            kind,
            outputs: Outputs::new().with("id", id),
            deps: vec![],
        };
        let searched = Searched {
            found: vec![
                found("vpc", Kind::Vpc, "vpc-1"),
                found("subnet-db-a", Kind::Subnet, "subnet-1"),
            ],
            failed: vec![],
            scanned: Ok(vec![
                scanned("vpc", Kind::Vpc, "vpc-1", &[]),
                scanned("subnet-db-a", Kind::Subnet, "subnet-1", &["vpc-1"]),
                scanned("db", Kind::DbInstance, "pi-db-r1", &["subnet-1"]),
            ]),
        };
        let news = News::of(searched, &st);
        let extras = by_key(&news.extras);
        assert_eq!(
            extras.keys().copied().collect::<Vec<_>>(),
            ["db-instance/extra-pi-db-r1"]
        );
        assert_eq!(extras["db-instance/extra-pi-db-r1"].deps, ["subnet-db-a"]);
        let mut recorded = st.clone();
        let (named, changed) = news.record(&mut recorded, "pi", &crate::core::event::Discard);
        assert!(changed);
        assert_eq!(named.len(), 1, "{named:?}");
        assert_eq!(recorded.resources.len(), 3, "{:?}", recorded.resources.keys());
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
