use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::*;
use crate::core::event::Recorder;
use crate::core::fake::FakeCloud;
use crate::core::graph::tests::node;
use crate::core::spec::Kind;
use crate::core::state::Identity;

fn identity() -> Identity {
    Identity {
        deployment: "t".into(),
        region: "eu-west-1".into(),
        account_id: "123456789012".into(),
        partition: "aws".into(),
    }
}

struct Run {
    cloud: Arc<FakeCloud>,
    events: Arc<Recorder>,
    cancel_tx: watch::Sender<bool>,
    exec: Executor<FakeCloud>,
}

fn run_with(cloud: FakeCloud, concurrency: usize) -> Run {
    let cloud = Arc::new(cloud);
    let events = Arc::new(Recorder::default());
    let (cancel_tx, cancel) = watch::channel(false);
    let exec = Executor {
        cloud: cloud.clone(),
        store: Arc::new(NoStore),
        events: events.clone(),
        limits: Limits {
            concurrency,
            per_service: Default::default(),
        },
        cancel,
    };
    Run {
        cloud,
        events,
        cancel_tx,
        exec,
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A diamond plus a long chain: a -> {b, c} -> d; a -> long1 -> long2.
fn graph() -> Arc<Graph> {
    Arc::new(
        Graph::new(vec![
            node("a", &[]),
            node("b", &["a"]),
            node("c", &["a"]),
            node("d", &["b", "c"]),
            node("long1", &["a"]),
            node("long2", &["long1"]),
        ])
        .unwrap(),
    )
}

fn equal_weights(g: &Graph) -> Vec<f64> {
    g.longest_remaining(|_| 1.0)
}

#[tokio::test(start_paused = true)]
async fn creates_everything_dependencies_first() {
    let mut cloud = FakeCloud::new();
    for k in ["a", "b", "c", "d", "long1", "long2"] {
        cloud.create_time.insert(k.into(), secs(1));
    }
    let r = run_with(cloud, 8);
    let g = graph();
    let out = r.exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    assert!(out.ok(), "{:?}", out.failed);
    assert_eq!(out.state.resources.len(), 6);
    assert!(out.state.resources.values().all(|r| r.status == Status::Ready));
    let spans = r.cloud.spans();
    let end_of = |k: &str| spans.iter().filter(|s| s.key == k).map(|s| s.end).max().unwrap();
    let start_of = |k: &str| {
        spans
            .iter()
            .filter(|s| s.key == k && s.op == "create")
            .map(|s| s.start)
            .min()
            .unwrap()
    };
    assert!(start_of("d") >= end_of("b") && start_of("d") >= end_of("c"));
    // b, c and long1 ran at the same time.
    assert_eq!(start_of("b"), start_of("c"));
    assert_eq!(start_of("b"), start_of("long1"));
}

#[tokio::test(start_paused = true)]
async fn concurrency_bound_is_respected() {
    let mut nodes = vec![node("root", &[])];
    for i in 0..10 {
        nodes.push(node(&format!("leaf{i}"), &["root"]));
    }
    let g = Arc::new(Graph::new(nodes).unwrap());
    let mut cloud = FakeCloud::new();
    for i in 0..10 {
        cloud.create_time.insert(format!("leaf{i}"), secs(5));
    }
    let r = run_with(cloud, 3);
    let out = r.exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    assert!(out.ok());
    assert_eq!(r.cloud.max_in_flight(), 3);
}

#[tokio::test(start_paused = true)]
async fn longest_chain_starts_first() {
    // With one slot, the long chain's head must start before the quick leaves.
    let g = Arc::new(
        Graph::new(vec![
            node("quick1", &[]),
            node("quick2", &[]),
            node("slow", &[]),
            node("after-slow", &["slow"]),
        ])
        .unwrap(),
    );
    let weights = g.longest_remaining(|n| if n.key == "slow" { 100.0 } else { 1.0 });
    let r = run_with(FakeCloud::new(), 1);
    let out = r.exec.up(g.clone(), State::new(&identity()), &weights).await;
    assert!(out.ok());
    assert_eq!(out.completed.first().map(String::as_str), Some("slow"));
}

#[tokio::test(start_paused = true)]
async fn failure_drains_in_flight_and_skips_dependents() {
    let mut cloud = FakeCloud::new();
    cloud.create_time.insert("long1".into(), secs(30));
    cloud.create_time.insert("b".into(), secs(1));
    cloud.fail_create.insert(
        "b".into(),
        ResourceError::new(ErrorClass::Other, "boom").with_code("InternalFailure"),
    );
    let r = run_with(cloud, 8);
    let g = graph();
    let out = r.exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    assert!(!out.ok());
    assert_eq!(out.failed.len(), 1, "root cause reported once");
    assert_eq!(out.failed[0].0, "b");
    // long1 was in flight when b failed: it finished and was recorded.
    assert_eq!(out.state.resources["long1"].status, Status::Ready);
    // d (needs b) and long2 (not started when the run stopped) were skipped.
    assert!(out.skipped.contains(&"d".to_string()));
    assert!(out.skipped.contains(&"long2".to_string()));
    // b's intent is recorded so the next run finds or creates it.
    assert_eq!(out.state.resources["b"].status, Status::Creating);
    let skipped_events = r
        .events
        .events()
        .into_iter()
        .filter(|e| {
            matches!(
                e,
                Event::Resource {
                    status: ResourceStatus::Skipped,
                    ..
                }
            )
        })
        .count();
    assert_eq!(skipped_events, out.skipped.len());
}

#[tokio::test(start_paused = true)]
async fn cancellation_drains_and_stops() {
    let mut cloud = FakeCloud::new();
    cloud.create_time.insert("a".into(), secs(10));
    let r = run_with(cloud, 8);
    let g = graph();
    let tx = r.cancel_tx.clone();
    tokio::spawn(async move {
        tokio::time::sleep(secs(5)).await;
        tx.send(true).unwrap();
    });
    let out = r.exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    assert!(out.cancelled);
    assert_eq!(
        out.state.resources["a"].status,
        Status::Ready,
        "in-flight node finished"
    );
    assert_eq!(out.state.resources.len(), 1);
    assert_eq!(out.skipped.len(), 5);
}

#[tokio::test(start_paused = true)]
async fn rerun_adopts_instead_of_duplicating() {
    let g = graph();
    let r = run_with(FakeCloud::new(), 8);
    r.cloud.preexisting("a", Outputs::new().with("id", "id-a"));
    // The state says `a` was being created when the last run died.
    let mut st = State::new(&identity());
    st.resources.insert(
        "a".into(),
        ResourceRecord {
            kind: g.get("a").unwrap().kind,
            status: Status::Creating,
            client_token: st.client_token("a"),
            outputs: Outputs::new(),
            deps: vec![],
            settings: Default::default(),
            retiring: None,
            updated_at: Utc::now(),
        },
    );
    let out = r.exec.up(g.clone(), st, &equal_weights(&g)).await;
    assert!(out.ok());
    assert_eq!(r.cloud.calls("create"), 5, "a was adopted, not created again");
    assert!(
        r.events
            .events()
            .iter()
            .any(|e| matches!(e, Event::Resource { key, status: ResourceStatus::Adopted, .. } if key == "a"))
    );
}

#[tokio::test(start_paused = true)]
async fn second_up_does_nothing() {
    let g = graph();
    let r = run_with(FakeCloud::new(), 8);
    let out = r.exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    let r2 = run_with(FakeCloud::new(), 8);
    let out2 = r2.exec.up(g.clone(), out.state, &equal_weights(&g)).await;
    assert!(out2.ok());
    assert_eq!(
        r2.cloud.calls("find") + r2.cloud.calls("create") + r2.cloud.calls("converge"),
        0
    );
}

#[tokio::test(start_paused = true)]
async fn destroy_deletes_dependents_first() {
    let g = graph();
    let r = run_with(FakeCloud::new(), 8);
    let out = r.exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    let weights = g.longest_remaining_reverse(|_| 1.0);
    let mut cloud = FakeCloud::new();
    for k in ["a", "b", "c", "d", "long1", "long2"] {
        cloud.delete_time.insert(k.into(), secs(1));
        cloud.preexisting(k, Outputs::new().with("id", format!("id-{k}")));
    }
    let r2 = run_with(cloud, 8);
    let out2 = r2.exec.destroy(g.clone(), out.state, &weights).await;
    assert!(out2.ok(), "{:?}", out2.failed);
    assert!(out2.state.resources.is_empty());
    assert!(r2.cloud.existing_keys().is_empty());
    let spans = r2.cloud.spans();
    let end_of = |k: &str| spans.iter().find(|s| s.key == k).unwrap().end;
    let start_of = |k: &str| spans.iter().find(|s| s.key == k).unwrap().start;
    assert!(start_of("a") >= end_of("b") && start_of("a") >= end_of("long1"));
    assert!(start_of("b") >= end_of("d"));
}

#[tokio::test(start_paused = true)]
async fn failed_delete_keeps_the_record_and_its_dependencies() {
    let g = graph();
    let r = run_with(FakeCloud::new(), 8);
    let out = r.exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    let mut cloud = FakeCloud::new();
    cloud
        .fail_delete
        .insert("d".into(), ResourceError::new(ErrorClass::InUse, "still in use"));
    let r2 = run_with(cloud, 8);
    let out2 = r2
        .exec
        .destroy(g.clone(), out.state, &g.longest_remaining_reverse(|_| 1.0))
        .await;
    assert!(!out2.ok());
    assert_eq!(out2.state.resources["d"].status, Status::Deleting);
    for k in ["a", "b", "c"] {
        assert!(out2.state.resources.contains_key(k), "{k} must stay: d still needs it");
    }
}

/// Counts saves so a test can check that every transition is persisted.
struct CountingStore(std::sync::Mutex<Vec<State>>);

impl StateStore for CountingStore {
    fn save(&self, state: &State) -> Result<(), String> {
        self.0.lock().unwrap().push(state.clone());
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn intent_is_persisted_before_create_and_id_before_converge() {
    let g = Arc::new(Graph::new(vec![node("a", &[])]).unwrap());
    let store = Arc::new(CountingStore(Default::default()));
    let (_tx, cancel) = watch::channel(false);
    let exec = Executor {
        cloud: Arc::new(FakeCloud::new()),
        store: store.clone(),
        events: Arc::new(Recorder::default()),
        limits: Limits::default(),
        cancel,
    };
    exec.up(g.clone(), State::new(&identity()), &[1.0]).await;
    let saves = store.0.lock().unwrap();
    let statuses: Vec<Status> = saves.iter().map(|s| s.resources["a"].status).collect();
    assert_eq!(statuses, [Status::Creating, Status::Created, Status::Ready]);
    assert_eq!(saves[1].resources["a"].outputs.get("id"), Some("id-a"));
    let serials: Vec<u64> = saves.iter().map(|s| s.serial).collect();
    assert_eq!(serials, [1, 2, 3]);
}

fn one_node() -> Arc<Graph> {
    Arc::new(Graph::new(vec![node("a", &[])]).unwrap())
}

fn ambiguous_then(cloud: &FakeCloud, key: &str, happened: &[bool]) {
    cloud
        .ambiguous_create
        .lock()
        .unwrap()
        .insert(key.into(), happened.to_vec());
}

#[tokio::test(start_paused = true)]
async fn a_create_that_happened_despite_a_reset_is_adopted_not_duplicated() {
    let g = one_node();
    let cloud = FakeCloud::new();
    ambiguous_then(&cloud, "a", &[true]);
    let r = run_with(cloud, 8);
    let out = r.exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    assert!(out.ok(), "{:?}", out.failed);
    assert_eq!(r.cloud.calls("create"), 1, "not created a second time");
    assert_eq!(r.cloud.calls("duplicate"), 0);
    assert_eq!(
        r.cloud.calls("find"),
        2,
        "looked for it again after the unknown outcome"
    );
    assert_eq!(out.state.resources["a"].outputs.get("id"), Some("id-a"));
    let ev = r.events.events();
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Resource { key, status: ResourceStatus::Adopted, .. } if key == "a"))
    );
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Warning { message } if message.contains("outcome is unknown")))
    );
}

#[tokio::test(start_paused = true)]
async fn a_create_that_did_not_happen_is_made_again_once() {
    let g = one_node();
    let cloud = FakeCloud::new();
    ambiguous_then(&cloud, "a", &[false]);
    let r = run_with(cloud, 8);
    let out = r.exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    assert!(out.ok(), "{:?}", out.failed);
    assert_eq!(r.cloud.calls("create"), 2);
    assert_eq!(r.cloud.calls("duplicate"), 0);
    assert!(r.cloud.exists("a"));
    assert_eq!(out.state.resources["a"].status, Status::Ready);
}

#[tokio::test(start_paused = true)]
async fn unknown_outcomes_are_bounded_and_reported_as_such() {
    let g = one_node();
    let cloud = FakeCloud::new();
    ambiguous_then(&cloud, "a", &[false, false, false, false]);
    let r = run_with(cloud, 8);
    let out = r.exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    assert_eq!(r.cloud.calls("create"), CREATE_TRIES as usize);
    assert_eq!(out.failed.len(), 1);
    assert!(out.failed[0].1.is(ErrorClass::Ambiguous));
    assert!(!r.cloud.exists("a"));
    // The intent stays recorded, so the next run (or destroy) looks for it first.
    assert_eq!(out.state.resources["a"].status, Status::Creating);
}

fn throttle(cloud: &FakeCloud, call: &str, key: &str, happened: &[bool]) {
    cloud
        .throttled
        .lock()
        .unwrap()
        .insert(format!("{call}:{key}"), happened.to_vec());
}

/// Account-wide throttling outlasts the SDK's retries: the executor pauses and makes the
/// call again, looking first for a create whose first step did happen.
#[tokio::test(start_paused = true)]
async fn creates_refused_as_throttled_are_made_again_after_a_pause_without_a_duplicate() {
    let g = graph();
    let cloud = FakeCloud::new();
    // `a` refused twice outright; `b` throttled after its first step made the resource.
    throttle(&cloud, "create", "a", &[false, false]);
    throttle(&cloud, "create", "b", &[true]);
    let r = run_with(cloud, 8);
    let began = tokio::time::Instant::now();
    let out = r.exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    assert!(out.ok(), "{:?}", out.failed);
    assert_eq!(r.cloud.calls("throttled"), 3);
    assert_eq!(
        r.cloud.calls("duplicate"),
        0,
        "the half-made b was found, not made again"
    );
    assert_eq!(out.state.resources["b"].outputs.get("id"), Some("id-b"));
    for k in ["a", "b"] {
        assert_eq!(out.state.resources[k].status, Status::Ready, "{k}");
    }
    assert!(
        began.elapsed() >= THROTTLED_PAUSES[0] + THROTTLED_PAUSES[1],
        "paused before trying again"
    );
    let warnings = r
        .events
        .events()
        .into_iter()
        .filter(|e| matches!(e, Event::Warning { message } if message.contains("throttled the create")))
        .count();
    assert_eq!(warnings, 3);
}

#[tokio::test(start_paused = true)]
async fn throttling_beyond_the_pauses_fails_the_node_with_its_intent_kept() {
    let g = one_node();
    let cloud = FakeCloud::new();
    throttle(&cloud, "create", "a", &[false; 8]);
    let r = run_with(cloud, 8);
    let out = r.exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    assert_eq!(out.failed.len(), 1);
    assert!(out.failed[0].1.is(ErrorClass::Throttled));
    assert_eq!(r.cloud.calls("throttled"), THROTTLED_PAUSES.len() + 1);
    assert_eq!(out.state.resources["a"].status, Status::Creating);
}

#[tokio::test(start_paused = true)]
async fn updates_and_deletes_refused_as_throttled_are_made_again() {
    let (mut cloud, state) = deployed(&[("b", "size", "1")]).await;
    cloud.desired.get_mut("b").unwrap().insert("size".into(), "3".into());
    throttle(&cloud, "update", "b", &[false, false]);
    let observed = observe(&cloud, &state).await;
    let r = run_with(cloud, 8);
    let g = graph();
    let out = r.exec.converge(g.clone(), state, &equal_weights(&g), observed).await;
    assert!(out.ok(), "{:?}", out.failed);
    assert_eq!(r.cloud.live("b").get("size").map(String::as_str), Some("3"));
    assert_eq!(r.cloud.calls("throttled"), 2);

    let cloud = FakeCloud::new();
    throttle(&cloud, "delete", "d", &[false]);
    let r2 = run_with(cloud, 8);
    let out2 = r2
        .exec
        .destroy(g.clone(), out.state, &g.longest_remaining_reverse(|_| 1.0))
        .await;
    assert!(out2.ok(), "{:?}", out2.failed);
    assert!(out2.state.resources.is_empty());
    assert_eq!(r2.cloud.calls("throttled"), 1);
    assert_eq!(r2.cloud.calls("delete"), 6, "each once, d after its pause");
}

/// vpc -> subnet -> nat, each of the kind its name says.
fn nested() -> Arc<Graph> {
    let of = |key: &str, kind: Kind, deps: &[&str]| NodeSpec {
        kind,
        ..node(key, deps)
    };
    Arc::new(
        Graph::new(vec![
            of("vpc", Kind::Vpc, &[]),
            of("subnet", Kind::Subnet, &["vpc"]),
            of("nat", Kind::NatGateway, &["subnet"]),
        ])
        .unwrap(),
    )
}

#[tokio::test(start_paused = true)]
async fn nothing_is_looked_up_inside_a_container_this_run_created() {
    let g = nested();
    let r = run_with(FakeCloud::new(), 8);
    let out = r.exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    assert!(out.ok());
    assert_eq!(r.cloud.calls("find"), 1, "only the VPC is looked up");
    assert_eq!(r.cloud.calls("create"), 3);
}

#[tokio::test(start_paused = true)]
async fn an_adopted_container_is_searched_inside() {
    let g = nested();
    let r = run_with(FakeCloud::new(), 8);
    r.cloud.preexisting("vpc", Outputs::new().with("id", "id-vpc"));
    r.cloud.preexisting("subnet", Outputs::new().with("id", "id-subnet"));
    let out = r.exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    assert!(out.ok());
    assert_eq!(r.cloud.calls("find"), 3);
    assert_eq!(r.cloud.calls("create"), 1, "vpc and subnet adopted, nat created");
    assert_eq!(r.cloud.calls("duplicate"), 0);
}

// ---- day 2: compare ready nodes with AWS, update in place, recreate what vanished ----

/// Build `graph()` from nothing, then return the cloud (with its live settings) and the state.
async fn deployed(desired: &[(&str, &str, &str)]) -> (FakeCloud, State) {
    let mut cloud = FakeCloud::new();
    for (key, attr, value) in desired {
        cloud
            .desired
            .entry(key.to_string())
            .or_default()
            .insert(attr.to_string(), value.to_string());
    }
    let g = graph();
    let cloud = Arc::new(cloud);
    let (_tx, cancel) = watch::channel(false);
    let exec = Executor {
        cloud: cloud.clone(),
        store: Arc::new(NoStore),
        events: Arc::new(Recorder::default()),
        limits: Limits::default(),
        cancel,
    };
    let out = exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    assert!(out.ok(), "{:?}", out.failed);
    drop(exec);
    (Arc::try_unwrap(cloud).ok().expect("one owner"), out.state)
}

async fn observe(cloud: &FakeCloud, state: &State) -> BTreeMap<String, Observed> {
    crate::core::plan::observe(&graph(), state, cloud, 4).await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_second_run_reads_everything_and_calls_nothing_else_when_nothing_changed() {
    let (cloud, state) = deployed(&[("b", "size", "1")]).await;
    // Settings are recorded with the resource.
    assert_eq!(state.resources["b"].settings.get("size").map(String::as_str), Some("1"));
    let observed = observe(&cloud, &state).await;
    assert_eq!(observed.len(), 6);
    let ops = ["create", "converge", "update", "delete", "find"];
    let before: Vec<usize> = ops.iter().map(|op| cloud.calls(op)).collect();
    let r = run_with(cloud, 4);
    let g = graph();
    let out = r.exec.converge(g.clone(), state, &equal_weights(&g), observed).await;
    assert!(out.ok(), "{:?}", out.failed);
    assert!(out.completed.is_empty(), "{:?}", out.completed);
    assert_eq!(out.unchanged.len(), 6);
    for (op, before) in ops.iter().zip(before) {
        assert_eq!(r.cloud.calls(op), before, "{op}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_changed_setting_is_updated_in_place_with_the_intent_recorded_first() {
    let (mut cloud, state) = deployed(&[("b", "size", "1")]).await;
    cloud.desired.get_mut("b").unwrap().insert("size".into(), "3".into());
    let observed = observe(&cloud, &state).await;
    let store = Arc::new(CountingStore(Default::default()));
    let cloud = Arc::new(cloud);
    let events = Arc::new(Recorder::default());
    let (_tx, cancel) = watch::channel(false);
    let exec = Executor {
        cloud: cloud.clone(),
        store: store.clone(),
        events: events.clone(),
        limits: Limits::default(),
        cancel,
    };
    let g = graph();
    let out = exec.converge(g.clone(), state, &equal_weights(&g), observed).await;
    assert!(out.ok(), "{:?}", out.failed);
    assert_eq!(out.completed, vec!["b".to_string()]);
    assert_eq!(cloud.calls("update"), 1);
    assert_eq!(cloud.live("b").get("size").map(String::as_str), Some("3"));
    let rec = &out.state.resources["b"];
    assert_eq!(rec.status, Status::Ready);
    assert_eq!(rec.settings.get("size").map(String::as_str), Some("3"));
    // `updating` was on disk before the update call, `ready` with the new settings after.
    let saves = store.0.lock().unwrap();
    let b: Vec<(Status, Option<String>)> = saves
        .iter()
        .map(|s| (s.resources["b"].status, s.resources["b"].settings.get("size").cloned()))
        .collect();
    assert_eq!(
        b,
        [
            (Status::Updating, Some("1".to_string())),
            (Status::Ready, Some("3".to_string()))
        ]
    );
    let statuses: Vec<ResourceStatus> = events
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Resource { key, status, .. } if key == "b" => Some(status),
            _ => None,
        })
        .collect();
    assert_eq!(statuses, [ResourceStatus::Updating, ResourceStatus::Updated]);
}

#[tokio::test(start_paused = true)]
async fn drift_made_by_hand_is_repaired() {
    let (cloud, state) = deployed(&[("c", "size", "2")]).await;
    cloud.set_live("c", "size", "9");
    let observed = observe(&cloud, &state).await;
    let r = run_with(cloud, 4);
    let g = graph();
    let out = r.exec.converge(g.clone(), state, &equal_weights(&g), observed).await;
    assert!(out.ok(), "{:?}", out.failed);
    assert_eq!(r.cloud.live("c").get("size").map(String::as_str), Some("2"));
    assert_eq!(out.completed, vec!["c".to_string()]);
}

#[tokio::test(start_paused = true)]
async fn a_resource_deleted_by_hand_is_created_again_and_its_dependents_follow_its_new_id() {
    let (cloud, state) = deployed(&[]).await;
    cloud.vanish("b");
    let observed = observe(&cloud, &state).await;
    assert_eq!(observed["b"], Observed::Missing);
    let r = run_with(cloud, 4);
    let g = graph();
    let out = r.exec.converge(g.clone(), state, &equal_weights(&g), observed).await;
    assert!(out.ok(), "{:?}", out.failed);
    assert!(r.cloud.exists("b"));
    assert_eq!(out.state.resources["b"].outputs.get("id"), Some("id-b-2"));
    // `d` refers to `b` and `c`: its reference moved to the new id in place.
    assert!(out.completed.contains(&"d".to_string()), "{:?}", out.completed);
    assert_eq!(r.cloud.live("d").get("refs").map(String::as_str), Some("id-b-2, id-c"));
    assert_eq!(r.cloud.calls("duplicate"), 0);
    // Under a token of its own (AWS would answer the first one with the deleted resource),
    // recorded before the call so that a resumed run sends it again.
    let tokens = r.cloud.tokens("b");
    assert_eq!(tokens.len(), 2, "{tokens:?}");
    assert_ne!(tokens[0], tokens[1]);
    assert_eq!(tokens[1], out.state.recreate_token("b", "id-b"));
    assert_eq!(out.state.resources["b"].client_token, tokens[1]);
}

#[tokio::test(start_paused = true)]
async fn a_change_that_needs_new_instances_is_refused_without_a_call() {
    let (mut cloud, state) = deployed(&[("b", "image", "ami-1")]).await;
    cloud
        .desired
        .get_mut("b")
        .unwrap()
        .insert("image".into(), "ami-2".into());
    let observed = observe(&cloud, &state).await;
    let r = run_with(cloud, 4);
    let g = graph();
    let out = r.exec.converge(g.clone(), state, &equal_weights(&g), observed).await;
    assert_eq!(out.failed.len(), 1);
    assert_eq!(out.failed[0].0, "b");
    assert!(out.failed[0].1.message.contains("roll"), "{}", out.failed[0].1);
    assert_eq!(r.cloud.calls("update"), 0);
    assert_eq!(out.state.resources["b"].status, Status::Ready);
}

#[tokio::test(start_paused = true)]
async fn a_crash_while_updating_is_finished_by_the_next_run() {
    let (mut cloud, mut state) = deployed(&[("b", "size", "1")]).await;
    cloud.desired.get_mut("b").unwrap().insert("size".into(), "3".into());
    // The run died after recording the intent and before (or during) the update call.
    state.resources.get_mut("b").unwrap().status = Status::Updating;
    let observed = observe(&cloud, &state).await;
    assert!(
        observed.contains_key("b"),
        "an updating record is read like a ready one"
    );
    let r = run_with(cloud, 4);
    let g = graph();
    let out = r.exec.converge(g.clone(), state, &equal_weights(&g), observed).await;
    assert!(out.ok(), "{:?}", out.failed);
    assert_eq!(out.state.resources["b"].status, Status::Ready);
    assert_eq!(r.cloud.live("b").get("size").map(String::as_str), Some("3"));
}

/// Fails every save from the `fail_from`th on (1-based), as a full disk would, and notes
/// how many creates and deletes the cloud had seen at the first failure.
struct FailingStore {
    fail_from: usize,
    cloud: Arc<FakeCloud>,
    saves: std::sync::Mutex<usize>,
    last_good: std::sync::Mutex<Option<State>>,
    calls_at_failure: std::sync::Mutex<Option<(usize, usize)>>,
    failed_at: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl FailingStore {
    fn new(fail_from: usize, cloud: Arc<FakeCloud>) -> Self {
        Self {
            fail_from,
            cloud,
            saves: Default::default(),
            last_good: Default::default(),
            calls_at_failure: Default::default(),
            failed_at: Default::default(),
        }
    }
}

impl StateStore for FailingStore {
    fn save(&self, state: &State) -> Result<(), String> {
        let mut n = self.saves.lock().unwrap();
        *n += 1;
        if *n >= self.fail_from {
            self.calls_at_failure
                .lock()
                .unwrap()
                .get_or_insert((self.cloud.calls("create"), self.cloud.calls("delete")));
            self.failed_at
                .lock()
                .unwrap()
                .get_or_insert_with(tokio::time::Instant::now);
            return Err("/state/t.json: No space left on device (os error 28)".into());
        }
        *self.last_good.lock().unwrap() = Some(state.clone());
        Ok(())
    }
}

/// A root and six leaves; leaf converges take long, so several are in flight at once.
fn fan() -> Arc<Graph> {
    let mut nodes = vec![node("root", &[])];
    for i in 0..6 {
        nodes.push(node(&format!("leaf{i}"), &["root"]));
    }
    Arc::new(Graph::new(nodes).unwrap())
}

/// The executor and the sender of its cancel channel (a dropped sender cancels the run).
fn exec_with_store(cloud: Arc<FakeCloud>, store: Arc<dyn StateStore>) -> (Executor<FakeCloud>, watch::Sender<bool>) {
    let (tx, cancel) = watch::channel(false);
    let exec = Executor {
        cloud,
        store,
        events: Arc::new(Recorder::default()),
        limits: Limits {
            concurrency: 3,
            per_service: Default::default(),
        },
        cancel,
    };
    (exec, tx)
}

#[tokio::test(start_paused = true)]
async fn a_failed_state_write_stops_every_later_create_and_abandons_work_in_flight() {
    let g = fan();
    for fail_from in 1..=12 {
        let mut cloud = FakeCloud::new();
        for i in 0..6 {
            cloud.create_time.insert(format!("leaf{i}"), secs(i + 1));
            cloud.converge_time.insert(format!("leaf{i}"), secs(600));
        }
        let cloud = Arc::new(cloud);
        let store = Arc::new(FailingStore::new(fail_from, cloud.clone()));
        let (exec, _tx) = exec_with_store(cloud.clone(), store.clone());
        let out = exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
        let why = out.state_write_failed.clone();
        assert!(
            why.as_deref().is_some_and(|w| w.contains("No space left")),
            "fail_from {fail_from}: {why:?}"
        );
        assert!(!out.ok());
        // Nothing was created after the first failed write...
        let (creates, _) = store.calls_at_failure.lock().unwrap().unwrap();
        assert_eq!(
            cloud.calls("create"),
            creates,
            "fail_from {fail_from}: a create after the failure"
        );
        // ...every create had its intent on disk...
        let good = store.last_good.lock().unwrap().clone();
        let recorded = good.map(|s| s.resources.len()).unwrap_or(0);
        assert!(
            creates <= recorded,
            "fail_from {fail_from}: {creates} creates, {recorded} recorded"
        );
        for key in cloud.existing_keys() {
            let good = store.last_good.lock().unwrap();
            assert!(
                good.as_ref().is_some_and(|s| s.resources.contains_key(&key)),
                "fail_from {fail_from}: {key} exists but no intent of it is on disk"
            );
        }
        // ...and the 600 s converges in flight were abandoned, not waited for: the run
        // ended the moment the write failed (paused time: no time passes while draining).
        let failed_at = store.failed_at.lock().unwrap().unwrap();
        let drained = tokio::time::Instant::now() - failed_at;
        assert!(drained < secs(1), "fail_from {fail_from}: drained for {drained:?}");
        // The root cause is the failed write, reported first.
        assert!(
            out.failed[0].1.message.contains("could not write the state file"),
            "{:?}",
            out.failed
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_state_write_stops_every_later_delete() {
    let g = fan();
    let cloud = Arc::new(FakeCloud::new());
    let (exec, _tx) = exec_with_store(cloud.clone(), Arc::new(NoStore));
    let built = exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    assert!(built.ok());
    for fail_from in 1..=8 {
        let mut c = FakeCloud::new();
        for i in 0..6 {
            let key = format!("leaf{i}");
            c.delete_time.insert(key.clone(), secs(i + 1));
            c.preexisting(&key, Outputs::new().with("id", format!("id-{key}")));
        }
        c.preexisting("root", Outputs::new().with("id", "id-root"));
        let c = Arc::new(c);
        let store = Arc::new(FailingStore::new(fail_from, c.clone()));
        let weights = g.longest_remaining_reverse(|_| 1.0);
        let (exec, _tx) = exec_with_store(c.clone(), store.clone());
        let out = exec.destroy(g.clone(), built.state.clone(), &weights).await;
        assert!(out.state_write_failed.is_some(), "fail_from {fail_from}");
        let (_, deletes) = store.calls_at_failure.lock().unwrap().unwrap();
        assert_eq!(
            c.calls("delete"),
            deletes,
            "fail_from {fail_from}: a delete after the failure"
        );
        // Every delete issued was recorded as `deleting` first; root was never deleted.
        assert!(c.exists("root"), "fail_from {fail_from}");
    }
}

// ---- replace, create before destroy ----

/// What `up` does with the executor: read, converge, then delete what the graph no longer
/// has (the retiring records of this walk's replacements), dependents first.
async fn up_like(cloud: Arc<FakeCloud>, store: Arc<dyn StateStore>, state: State) -> Outcome {
    let g = graph();
    let observed = observe(&cloud, &state).await;
    let (exec, _tx) = exec_with_store(cloud.clone(), store);
    let out = exec.converge(g.clone(), state, &equal_weights(&g), observed).await;
    let doomed = crate::core::plan::unwanted(&g, &out.state);
    if !out.ok() || doomed.is_empty() {
        return out;
    }
    let nodes = doomed
        .iter()
        .map(|k| NodeSpec {
            key: k.clone(),
            kind: out.state.resources[k].kind,
            deps: vec![],
            props: crate::core::spec::Props::Recorded,
        })
        .collect();
    let dg = Arc::new(Graph::new(nodes).unwrap());
    let gone = exec.destroy(dg.clone(), out.state, &equal_weights(&dg)).await;
    Outcome {
        completed: out.completed.into_iter().chain(gone.completed).collect(),
        ..gone
    }
}

/// `graph()` built with `b` on port 80, then the config asks for 443: a replace.
async fn deployed_for_replace() -> (FakeCloud, State) {
    let (mut cloud, state) = deployed(&[("b", "port", "80")]).await;
    cloud.replaceable.insert("b".into());
    cloud.desired.get_mut("b").unwrap().insert("port".into(), "443".into());
    (cloud, state)
}

#[tokio::test(start_paused = true)]
async fn a_replace_creates_first_moves_the_dependents_then_deletes_the_old_one() {
    let (cloud, state) = deployed_for_replace().await;
    let cloud = Arc::new(cloud);
    let store = Arc::new(CountingStore(Default::default()));
    let out = up_like(cloud.clone(), store.clone(), state).await;
    assert!(out.ok(), "{:?}", out.failed);
    // The replacement, under its own token; `d` moved to it in place; the old one deleted.
    let b = &out.state.resources["b"];
    assert_eq!((b.status, b.outputs.get("id")), (Status::Ready, Some("id-b-2")));
    assert_eq!(b.client_token, out.state.replace_token("b", "id-b"));
    assert_eq!(cloud.live("d").get("refs").map(String::as_str), Some("id-b-2, id-c"));
    assert!(cloud.retired().is_empty(), "{:?}", cloud.retired());
    assert!(out.state.retiring().next().is_none());
    assert_eq!(cloud.calls("duplicate"), 0);
    assert_eq!(cloud.calls("update"), 1, "only d, the dependent");
    // The writes: the retirement and the replacement's intent in one, the old one kept
    // until `d` was recorded on the new id, `deleting` before its delete call.
    let saves = store.0.lock().unwrap();
    let rkey = crate::core::state::retiring_key("b", "id-b");
    let first = saves.iter().position(|s| s.resources.contains_key(&rkey)).unwrap();
    assert_eq!(saves[first].resources["b"].status, Status::Creating);
    assert_eq!(saves[first].resources[&rkey].outputs.get("id"), Some("id-b"));
    assert!(
        saves[first].resources[&rkey]
            .retiring
            .as_deref()
            .is_some_and(|w| w.contains("port: 80 -> 443")),
        "{:?}",
        saves[first].resources[&rkey].retiring
    );
    assert!(
        saves[first].resources["d"].deps.contains(&rkey),
        "d depends on it until it moved"
    );
    let d_moved = saves
        .iter()
        .position(|s| s.resources["d"].outputs.get("id").is_some() && !s.resources["d"].deps.contains(&rkey))
        .unwrap();
    let deleting = saves
        .iter()
        .position(|s| s.resources.get(&rkey).is_some_and(|r| r.status == Status::Deleting))
        .unwrap();
    assert!(
        first < d_moved && d_moved < deleting,
        "{first} < {d_moved} < {deleting}"
    );
    assert!(!saves.last().unwrap().resources.contains_key(&rkey));
}

#[tokio::test(start_paused = true)]
async fn a_replace_of_a_kind_that_does_not_opt_in_is_refused_without_a_call() {
    let (mut cloud, state) = deployed_for_replace().await;
    cloud.replaceable.clear();
    let cloud = Arc::new(cloud);
    let creates = cloud.calls("create");
    let out = up_like(cloud.clone(), Arc::new(NoStore), state).await;
    assert_eq!(out.failed.len(), 1);
    assert!(out.failed[0].1.message.contains("replace"), "{}", out.failed[0].1);
    assert_eq!(cloud.calls("create"), creates);
    assert_eq!(out.state.resources["b"].outputs.get("id"), Some("id-b"));
}

/// A kill at every state write of the replacing run (a failed write abandons the run at
/// once, as a kill would), then a plain rerun: it converges, with no orphan and no
/// duplicate.
#[tokio::test(start_paused = true)]
async fn a_replace_killed_at_every_write_is_finished_by_the_next_run() {
    let writes = {
        let (cloud, state) = deployed_for_replace().await;
        let store = Arc::new(CountingStore(Default::default()));
        assert!(up_like(Arc::new(cloud), store.clone(), state).await.ok());
        store.0.lock().unwrap().len()
    };
    eprintln!("a replacing run makes {writes} state writes; killed at each, then rerun");
    assert!(writes >= 8, "{writes}");
    for fail_from in 1..=writes {
        let (cloud, state) = deployed_for_replace().await;
        let cloud = Arc::new(cloud);
        let store = Arc::new(FailingStore::new(fail_from, cloud.clone()));
        let killed = up_like(cloud.clone(), store.clone(), state.clone()).await;
        assert!(!killed.ok(), "fail_from {fail_from}");
        let on_disk = store.last_good.lock().unwrap().clone().unwrap_or(state);
        let out = up_like(cloud.clone(), Arc::new(NoStore), on_disk).await;
        assert!(out.ok(), "fail_from {fail_from}: {:?}", out.failed);
        let b = out.state.resources["b"].outputs.get("id").unwrap().to_string();
        assert_eq!(b, "id-b-2", "fail_from {fail_from}: one replacement");
        assert_eq!(
            cloud.live("d").get("refs").map(String::as_str),
            Some("id-b-2, id-c"),
            "fail_from {fail_from}"
        );
        assert!(
            cloud.retired().is_empty(),
            "fail_from {fail_from}: orphan {:?}",
            cloud.retired()
        );
        assert!(out.state.retiring().next().is_none(), "fail_from {fail_from}");
        assert_eq!(cloud.calls("duplicate"), 0, "fail_from {fail_from}");
        assert_eq!(cloud.live("b").get("port").map(String::as_str), Some("443"));
    }
}

/// A kind whose find returns the resource in place for its replacement (a naming bug) never
/// gets it deleted: the executor refuses the replacement and puts the record back as it was.
#[tokio::test(start_paused = true)]
async fn a_replacement_that_is_the_resource_in_place_is_refused_and_nothing_is_retired() {
    let (mut cloud, state) = deployed_for_replace().await;
    cloud.badly_named.insert("b".into());
    let cloud = Arc::new(cloud);
    // The failed run's state is the next run's: it fails the same way, deleting nothing.
    let mut state = state;
    for _ in 0..2 {
        let out = up_like(cloud.clone(), Arc::new(NoStore), state).await;
        assert_eq!(out.failed.len(), 1, "{:?}", out.failed);
        assert!(
            out.failed[0].1.message.contains("the resource it replaces"),
            "{}",
            out.failed[0].1
        );
        let b = &out.state.resources["b"];
        assert_eq!((b.status, b.outputs.get("id")), (Status::Ready, Some("id-b")));
        assert!(out.state.retiring().next().is_none());
        assert!(
            out.state
                .resources
                .values()
                .all(|r| r.deps.iter().all(|d| !d.contains("/retiring-")))
        );
        assert!(cloud.exists("b"));
        assert_eq!(cloud.calls("delete"), 0);
        state = out.state;
    }
}

/// Built with every node of `graph()` and each delete taking 1 s: (the walked graph, its
/// state, a cloud holding every node).
async fn built_for_gate() -> (Arc<Graph>, State, FakeCloud) {
    let g = graph();
    let r = run_with(FakeCloud::new(), 8);
    let out = r.exec.up(g.clone(), State::new(&identity()), &equal_weights(&g)).await;
    let mut cloud = FakeCloud::new();
    for k in ["a", "b", "c", "d", "long1", "long2"] {
        cloud.delete_time.insert(k.into(), secs(1));
        cloud.preexisting(k, Outputs::new().with("id", format!("id-{k}")));
    }
    (g, out.state, cloud)
}

fn held(g: &Graph, keys: &[&str]) -> Vec<bool> {
    (0..g.len()).map(|i| keys.contains(&g.node(i).key.as_str())).collect()
}

#[tokio::test(start_paused = true)]
async fn a_gated_destroy_starts_what_is_not_held_and_the_held_after_the_gate_opens() {
    let (g, state, cloud) = built_for_gate().await;
    let r = run_with(cloud, 8);
    let (tx, open) = oneshot::channel();
    let weights = g.longest_remaining_reverse(|_| 1.0);
    let gate = Gate {
        held: held(&g, &["b", "a"]),
        open,
    };
    // The search answers "nothing found" after 5 s.
    let answer = async {
        tokio::time::sleep(secs(5)).await;
        tx.send(true).unwrap();
    };
    let (out, ()) = tokio::join!(r.exec.destroy_gated(g.clone(), state, &weights, gate), answer);
    assert!(out.ok() && !out.held_back, "{:?}", out.failed);
    assert!(out.state.resources.is_empty());
    let spans = r.cloud.spans();
    let start_of = |k: &str| spans.iter().find(|s| s.key == k).unwrap().start;
    let first = spans.iter().map(|s| s.start).min().unwrap();
    // Not held: at once (d, long2), and what they free (c after d, long1 after long2).
    assert_eq!(start_of("d"), first);
    assert_eq!(start_of("long2"), first);
    assert_eq!(start_of("c") - first, secs(1));
    // Held: b was ready at 1 s (after d) but waited for the gate at 5 s; a after b.
    assert_eq!(start_of("b") - first, secs(5));
    assert_eq!(start_of("a") - first, secs(6));
}

#[tokio::test(start_paused = true)]
async fn a_gated_destroy_whose_search_found_something_leaves_the_held_for_a_second_walk() {
    let (g, state, cloud) = built_for_gate().await;
    let r = run_with(cloud, 8);
    let (tx, open) = oneshot::channel();
    let weights = g.longest_remaining_reverse(|_| 1.0);
    let gate = Gate {
        held: held(&g, &["b", "a"]),
        open,
    };
    let answer = async {
        tokio::time::sleep(secs(5)).await;
        tx.send(false).unwrap();
    };
    let (out, ()) = tokio::join!(r.exec.destroy_gated(g.clone(), state, &weights, gate), answer);
    assert!(out.ok() && out.held_back, "{:?}", out.failed);
    assert!(out.skipped.is_empty(), "held back, not skipped: {:?}", out.skipped);
    let left: Vec<&str> = out.state.resources.keys().map(String::as_str).collect();
    assert_eq!(left, ["a", "b"], "held, and what waits for them");
    assert!(
        !r.events.events().iter().any(|e| matches!(
            e,
            Event::Resource {
                status: ResourceStatus::Skipped,
                ..
            }
        )),
        "no skipped events for a walk that is continued"
    );
    // The second walk deletes the rest.
    let out2 = r.exec.destroy(g.clone(), out.state, &weights).await;
    assert!(out2.ok() && out2.state.resources.is_empty(), "{:?}", out2.failed);
    assert!(r.cloud.existing_keys().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_failed_delete_ends_a_gated_destroy_without_waiting_for_the_gate() {
    let (g, state, mut cloud) = built_for_gate().await;
    cloud
        .fail_delete
        .insert("d".into(), ResourceError::new(ErrorClass::InUse, "still in use"));
    let r = run_with(cloud, 8);
    let (_tx, open) = oneshot::channel::<bool>();
    let weights = g.longest_remaining_reverse(|_| 1.0);
    let gate = Gate {
        held: held(&g, &["b", "a"]),
        open,
    };
    // The gate never answers; the walk must end on its own.
    let out = tokio::time::timeout(secs(3600), r.exec.destroy_gated(g.clone(), state, &weights, gate))
        .await
        .expect("the walk ended");
    assert!(!out.ok() && !out.held_back);
    assert!(out.state.resources.contains_key("b"));
}
