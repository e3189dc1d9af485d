//! Walks the graph with bounded concurrency, drives a `Cloud`, persists every transition
//! and emits events. It never prints.
//!
//! Scheduling: every node whose dependencies are ready may start, at most `concurrency` at
//! once (and at most the per-service cap for its service); among ready nodes the one with
//! the longest remaining chain (latency-model weights) starts first, so the RDS chain is
//! started before quick leaves.
//!
//! Persistence: the state records `creating` (with the client token) before the create
//! call and `created` with the id the moment it returns, before any wait; dependents start
//! only after `ready` is persisted.
//!
//! Day 2: a node recorded `ready` whose live settings were read beforehand (`observed`,
//! from `plan::observe`) is compared with its desired settings when its dependencies are
//! done (their ids may have changed in this run): no difference, no call; changes AWS makes
//! in place are recorded as `updating` before the first update call and `ready` with the new
//! settings after it; a resource deleted outside pi-deploy is created again (looked up first).
//! A change that needs a new resource is carried out create-before-destroy when the kind
//! opts in (`Cloud::replaceable`, see `replace`); one that needs new instances (the roll
//! `up` runs after the walk), a new resource of a kind that does not opt in, or that AWS
//! cannot make is refused (the commands refuse it before the walk; here it is a safety net).
//!
//! Failure: stop starting nodes, let in-flight nodes finish and persist (a half-created RDS
//! instance still needs its id recorded), skip the rest, and report the root cause once.
//! Cancellation (Ctrl-C, SIGTERM) drains the same way.
//!
//! A state write that fails is different: no transition can be recorded any more, so no
//! further mutation may be issued (the intent must be on disk before every create and
//! delete). Every later persist refuses without writing, and the nodes in flight are
//! abandoned at once (as a `kill -9` would; the next run finds what they made by tag and
//! name); `Outcome::state_write_failed` says why.
//!
//! Destroy behind a gate (`Executor::destroy_gated`): the walk starts while the command is
//! still searching AWS for what the state does not record, and holds back the nodes such a
//! find could sit in or depend on until the search answers. Nothing found: they go on, one
//! walk. Something found: the walk starts nothing held, lets what runs finish, and returns;
//! the command records the finds and walks again.
//!
//! Runs on tokio's clock, so the benchmark can drive it over a simulated cloud in paused time.

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use chrono::Utc;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::diff::{ChangeAction, Settings};
use super::event::{Event, EventSink, ResourceStatus};
use super::graph::Graph;
use super::resource::{Cloud, DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use super::spec::NodeSpec;
use super::state::{ResourceRecord, State, Status};

/// Persists the state document; the executor calls it after every transition.
pub trait StateStore: Send + Sync {
    fn save(&self, state: &State) -> Result<(), String>;
}

/// Keeps nothing (tests, the benchmark).
pub struct NoStore;

impl StateStore for NoStore {
    fn save(&self, _: &State) -> Result<(), String> {
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct Limits {
    pub concurrency: usize,
    /// Optional caps per AWS service (e.g. `ec2` mutations).
    pub per_service: BTreeMap<String, usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            concurrency: 16,
            per_service: BTreeMap::new(),
        }
    }
}

#[derive(Debug)]
pub struct Outcome {
    pub state: State,
    /// The root causes, in the order they happened.
    pub failed: Vec<(String, ResourceError)>,
    pub skipped: Vec<String>,
    /// Nodes this run created, updated or deleted.
    pub completed: Vec<String>,
    /// Ready nodes that were compared with AWS and needed nothing.
    pub unchanged: Vec<String>,
    pub cancelled: bool,
    /// The first state write that failed (path and error); nothing was issued after it.
    pub state_write_failed: Option<String>,
    /// A gated destroy whose gate answered "found": the held nodes (and what waits for
    /// them) were left for a second walk, neither started nor skipped.
    pub held_back: bool,
}

impl Outcome {
    /// A second walk's outcome, continuing `earlier` (a gated destroy's first walk): what
    /// either completed, the second's state and the rest.
    pub fn after(mut self, earlier: Outcome) -> Outcome {
        let mut completed = earlier.completed;
        completed.append(&mut self.completed);
        let mut failed = earlier.failed;
        failed.append(&mut self.failed);
        Outcome {
            completed,
            failed,
            cancelled: self.cancelled || earlier.cancelled,
            state_write_failed: earlier.state_write_failed.or(self.state_write_failed),
            ..self
        }
    }

    pub fn ok(&self) -> bool {
        self.failed.is_empty() && !self.cancelled && self.skipped.is_empty()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Up,
    Destroy,
}

struct Shared<C> {
    cloud: Arc<C>,
    graph: Arc<Graph>,
    state: Mutex<State>,
    store: Arc<dyn StateStore>,
    events: Arc<dyn EventSink>,
    /// Keys this run created (not adopted, not found): nothing can be inside them yet.
    created_here: Mutex<HashSet<String>>,
    /// Live reads of ready nodes, taken before the walk (day 2).
    observed: BTreeMap<String, Observed>,
    /// Set by the first failed state write; every later persist refuses.
    store_failed: Mutex<Option<String>>,
}

/// What a node's step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Done {
    Changed,
    Unchanged,
}

impl<C> Shared<C> {
    /// Whether the container this node can only exist inside was created by this very run,
    /// so a lookup for the node would certainly find nothing (see `Kind::container`).
    fn container_created_here(&self, spec: &NodeSpec) -> bool {
        let Some(container) = spec.kind.container() else {
            return false;
        };
        let created = self.created_here.lock().unwrap();
        let mut containers = spec
            .deps
            .iter()
            .filter(|d| self.graph.get(d).is_some_and(|n| n.kind == container))
            .peekable();
        containers.peek().is_some() && containers.all(|d| created.contains(d))
    }

    fn emit(
        &self,
        spec: &NodeSpec,
        status: ResourceStatus,
        started: Instant,
        id: Option<String>,
        message: Option<String>,
    ) {
        self.events.emit(Event::Resource {
            key: spec.key.clone(),
            kind: spec.kind,
            status,
            elapsed_ms: started.elapsed().as_millis() as u64,
            id,
            message,
        });
    }

    /// Apply a change to the state and write it; a failed write fails the node, because a
    /// transition that is not on disk must not let dependents start. After one failed
    /// write, every persist refuses: what follows a persist (a create, a delete, a
    /// dependent's start) must not happen unrecorded.
    fn persist(&self, change: impl FnOnce(&mut State)) -> Result<(), ResourceError> {
        self.persist_then(change, || ())
    }

    /// `persist`, then `then` before any other write can happen: the events emitted this way
    /// come in the order of the writes they report, so the event of a transition recorded
    /// before a failed write never follows that failure's.
    fn persist_then(&self, change: impl FnOnce(&mut State), then: impl FnOnce()) -> Result<(), ResourceError> {
        let mut failed = self.store_failed.lock().unwrap();
        if let Some(first) = failed.as_ref() {
            return Err(ResourceError::new(
                ErrorClass::Other,
                format!("not started: the state file could not be written ({first})"),
            ));
        }
        let mut st = self.state.lock().unwrap();
        change(&mut st);
        st.serial += 1;
        self.store.save(&st).map_err(|e| {
            *failed = Some(e.clone());
            ResourceError::new(ErrorClass::Other, format!("could not write the state file: {e}"))
        })?;
        drop(st);
        then();
        Ok(())
    }

    fn store_failed(&self) -> Option<String> {
        self.store_failed.lock().unwrap().clone()
    }

    /// `record`, and the event that reports it (see `persist_then`).
    fn record_announced(
        &self,
        cx: &NodeCtx<'_>,
        status: Status,
        outputs: Outputs,
        event: ResourceStatus,
        started: Instant,
    ) -> Result<(), ResourceError> {
        let spec = cx.spec;
        let settings = self.recorded_settings(&spec.key);
        let id = outputs.get("id").map(String::from);
        self.record_then(spec, status, cx.token, outputs, settings, || {
            self.emit(spec, event, started, id, None)
        })
    }

    fn record_with(
        &self,
        spec: &NodeSpec,
        status: Status,
        token: &str,
        outputs: Outputs,
        settings: Settings,
    ) -> Result<(), ResourceError> {
        self.record_then(spec, status, token, outputs, settings, || ())
    }

    fn record_then(
        &self,
        spec: &NodeSpec,
        status: Status,
        token: &str,
        outputs: Outputs,
        settings: Settings,
        then: impl FnOnce(),
    ) -> Result<(), ResourceError> {
        self.persist_then(
            |st| {
                st.resources.insert(
                    spec.key.clone(),
                    ResourceRecord {
                        kind: spec.kind,
                        status,
                        client_token: token.to_string(),
                        outputs,
                        deps: spec.deps.clone(),
                        settings,
                        retiring: None,
                        updated_at: Utc::now(),
                    },
                );
            },
            then,
        )
    }

    fn recorded_settings(&self, key: &str) -> Settings {
        let st = self.state.lock().unwrap();
        st.resources.get(key).map(|r| r.settings.clone()).unwrap_or_default()
    }
}

pub struct Executor<C: Cloud> {
    pub cloud: Arc<C>,
    pub store: Arc<dyn StateStore>,
    pub events: Arc<dyn EventSink>,
    pub limits: Limits,
    /// Flips to true on the first Ctrl-C.
    pub cancel: watch::Receiver<bool>,
}

/// Scheduling priority: longer remaining chain first, then key for determinism.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Ready {
    priority_ms: u64,
    key: std::cmp::Reverse<String>,
    index: usize,
}

impl<C: Cloud> Executor<C> {
    /// Create or adopt every node of `graph` that is not `ready` in `state`.
    pub async fn up(&self, graph: Arc<Graph>, state: State, weights: &[f64]) -> Outcome {
        self.walk(graph, state, weights, Direction::Up, BTreeMap::new(), None)
            .await
    }

    /// Day 2: as `up`, and every ready node with a live read in `observed` is brought to its
    /// desired settings (updated in place, or created again when it is missing).
    pub async fn converge(
        &self,
        graph: Arc<Graph>,
        state: State,
        weights: &[f64],
        observed: BTreeMap<String, Observed>,
    ) -> Outcome {
        self.walk(graph, state, weights, Direction::Up, observed, None).await
    }

    /// Delete every node of `graph` (which holds only what exists), dependents first.
    pub async fn destroy(&self, graph: Arc<Graph>, state: State, weights: &[f64]) -> Outcome {
        self.walk(graph, state, weights, Direction::Destroy, BTreeMap::new(), None)
            .await
    }

    /// `destroy`, with the nodes `gate.held` marks started only once `gate.open` answers
    /// `true` (see the module doc). On `false` (or a dropped sender) the held nodes, and
    /// whatever waits for them, are neither started nor reported skipped: the outcome's
    /// `held_back` is set and the caller walks again. A failure or a cancel ends the walk
    /// without waiting for the gate.
    pub async fn destroy_gated(&self, graph: Arc<Graph>, state: State, weights: &[f64], gate: Gate) -> Outcome {
        self.walk(graph, state, weights, Direction::Destroy, BTreeMap::new(), Some(gate))
            .await
    }

    async fn walk(
        &self,
        graph: Arc<Graph>,
        state: State,
        weights: &[f64],
        dir: Direction,
        observed: BTreeMap<String, Observed>,
        gate: Option<Gate>,
    ) -> Outcome {
        let n = graph.len();
        let (held, mut gate_open) = match gate {
            Some(g) => (g.held, Some(g.open)),
            None => (Vec::new(), None),
        };
        let is_held = |i: usize| held.get(i).copied().unwrap_or(false);
        // Held nodes that became ready before the gate answered.
        let mut parked: Vec<usize> = Vec::new();
        let mut held_back = false;
        let done_already: Vec<bool> = (0..n)
            .map(|i| {
                let key = &graph.node(i).key;
                match dir {
                    Direction::Up => {
                        state
                            .resources
                            .get(key)
                            .is_some_and(|r| matches!(r.status, Status::Ready | Status::Updating))
                            && !observed.contains_key(key)
                    }
                    Direction::Destroy => !state.resources.contains_key(key),
                }
            })
            .collect();
        let shared = Arc::new(Shared {
            cloud: self.cloud.clone(),
            graph: graph.clone(),
            state: Mutex::new(state),
            store: self.store.clone(),
            events: self.events.clone(),
            created_here: Mutex::new(HashSet::new()),
            observed,
            store_failed: Mutex::new(None),
        });
        // Up: a node waits for its dependencies. Destroy: for its dependents.
        let blockers = |i: usize| -> &[usize] {
            match dir {
                Direction::Up => graph.deps_of(i),
                Direction::Destroy => graph.destroy_after(i),
            }
        };
        let unblocks = |i: usize| -> &[usize] {
            match dir {
                Direction::Up => graph.dependents_of(i),
                Direction::Destroy => graph.destroy_frees(i),
            }
        };
        let mut done = done_already.clone();
        let mut waiting_on: Vec<usize> = (0..n)
            .map(|i| blockers(i).iter().filter(|&&b| !done[b]).count())
            .collect();
        let mut heap = BinaryHeap::new();
        let push = |heap: &mut BinaryHeap<Ready>, i: usize| {
            heap.push(Ready {
                priority_ms: (weights.get(i).copied().unwrap_or(0.0) * 1000.0) as u64,
                key: std::cmp::Reverse(graph.node(i).key.clone()),
                index: i,
            })
        };
        for i in 0..n {
            if !done[i] && waiting_on[i] == 0 {
                if gate_open.is_some() && is_held(i) {
                    parked.push(i);
                } else {
                    push(&mut heap, i);
                }
            }
        }

        let mut running: JoinSet<(usize, Result<Done, ResourceError>)> = JoinSet::new();
        let mut running_per_service: HashMap<&'static str, usize> = HashMap::new();
        let mut started = vec![false; n];
        let mut failed = Vec::new();
        let mut completed = Vec::new();
        let mut unchanged = Vec::new();
        let mut stopping = false;
        let mut cancelled = *self.cancel.borrow();
        let mut cancel = self.cancel.clone();

        loop {
            if !stopping && !cancelled {
                let mut deferred = Vec::new();
                while running.len() < self.limits.concurrency.max(1) {
                    let Some(next) = heap.pop() else { break };
                    let i = next.index;
                    let service = graph.node(i).kind.service();
                    let cap = self.limits.per_service.get(service).copied().unwrap_or(usize::MAX);
                    let busy = running_per_service.entry(service).or_default();
                    if *busy >= cap {
                        deferred.push(next);
                        continue;
                    }
                    *busy += 1;
                    started[i] = true;
                    let shared = shared.clone();
                    running.spawn(async move {
                        let r = match dir {
                            Direction::Up => up_node(&shared, i).await,
                            Direction::Destroy => destroy_node(&shared, i).await.map(|()| Done::Changed),
                        };
                        (i, r)
                    });
                }
                heap.extend(deferred);
            }
            if running.is_empty() {
                // Nothing runs: wait for the gate if it is all that is left, else done.
                let Some(open) = gate_open.as_mut().filter(|_| !stopping && !cancelled) else {
                    break;
                };
                tokio::select! {
                    answer = open => {
                        gate_open = None;
                        if answer.unwrap_or(false) {
                            for i in parked.drain(..) {
                                push(&mut heap, i);
                            }
                        } else {
                            held_back = true;
                        }
                    }
                    changed = cancel.changed(), if !cancelled => {
                        if changed.is_err() || *cancel.borrow() {
                            cancelled = true;
                            self.events.emit(Event::Warning { message: "interrupted: waiting for the resources in progress to finish and be recorded (interrupt again to exit now; the state is saved)".into() });
                        }
                    }
                }
                continue;
            }
            tokio::select! {
                answer = gate_answer(&mut gate_open), if gate_open.is_some() => {
                    gate_open = None;
                    if answer {
                        for i in parked.drain(..) {
                            push(&mut heap, i);
                        }
                    } else {
                        held_back = true;
                    }
                }
                joined = running.join_next() => {
                    let Some(joined) = joined else { continue };
                    if joined.as_ref().is_err_and(|e| e.is_cancelled()) {
                        continue;
                    }
                    let (i, result) = joined.unwrap_or_else(|e| (usize::MAX, Err(ResourceError::new(ErrorClass::Other, format!("task panicked: {e}")))));
                    if i == usize::MAX {
                        failed.push(("<executor>".to_string(), result.unwrap_err()));
                        stopping = true;
                        continue;
                    }
                    *running_per_service.entry(graph.node(i).kind.service()).or_default() -= 1;
                    match result {
                        Ok(what) => {
                            done[i] = true;
                            match what {
                                Done::Changed => completed.push(graph.node(i).key.clone()),
                                Done::Unchanged => unchanged.push(graph.node(i).key.clone()),
                            }
                            for &u in unblocks(i) {
                                waiting_on[u] -= 1;
                                if waiting_on[u] == 0 && !done[u] {
                                    if (gate_open.is_some() || held_back) && is_held(u) {
                                        parked.push(u);
                                    } else {
                                        push(&mut heap, u);
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            failed.push((graph.node(i).key.clone(), e));
                            stopping = true;
                            if shared.store_failed().is_some() {
                                running.abort_all();
                            }
                        }
                    }
                }
                changed = cancel.changed(), if !cancelled => {
                    if changed.is_err() || *cancel.borrow() {
                        cancelled = true;
                        self.events.emit(Event::Warning { message: "interrupted: waiting for the resources in progress to finish and be recorded (interrupt again to exit now; the state is saved)".into() });
                    }
                }
            }
        }

        let mut skipped = Vec::new();
        // Held back for the caller's second walk (nothing failed, nothing cancelled): not skipped.
        let held_back = held_back && failed.is_empty() && !cancelled;
        for i in 0..n {
            if !done[i] && !started[i] && !held_back {
                let spec = graph.node(i);
                skipped.push(spec.key.clone());
                shared.emit(spec, ResourceStatus::Skipped, Instant::now(), None, None);
            }
        }
        let state_write_failed = shared.store_failed();
        let state = Arc::try_unwrap(shared)
            .map(|s| s.state.into_inner().unwrap())
            .unwrap_or_else(|s| s.state.lock().unwrap().clone());
        Outcome {
            state,
            failed,
            skipped,
            completed,
            unchanged,
            cancelled,
            state_write_failed,
            held_back,
        }
    }
}

/// Which nodes of a gated destroy wait for the search, and the search's answer: `true`
/// when it found nothing the state lacks (see `Executor::destroy_gated`).
pub struct Gate {
    /// By node index of the walked graph.
    pub held: Vec<bool>,
    pub open: oneshot::Receiver<bool>,
}

/// The gate's answer; a dropped sender counts as "found" (walk again), never as "go on".
async fn gate_answer(open: &mut Option<oneshot::Receiver<bool>>) -> bool {
    match open {
        Some(rx) => rx.await.unwrap_or(false),
        None => std::future::pending().await,
    }
}

fn deps_outputs<C>(shared: &Shared<C>, spec: &NodeSpec) -> BTreeMap<String, Outputs> {
    let st = shared.state.lock().unwrap();
    spec.deps
        .iter()
        .filter_map(|d| st.resources.get(d).map(|r| (d.clone(), r.outputs.clone())))
        .collect()
}

async fn up_node<C: Cloud>(shared: &Shared<C>, i: usize) -> Result<Done, ResourceError> {
    let spec = shared.graph.node(i);
    let started = Instant::now();
    let result = up_node_inner(shared, spec, started).await;
    if let Err(e) = &result {
        shared.emit(spec, ResourceStatus::Failed, started, None, Some(e.to_string()));
    }
    result
}

async fn up_node_inner<C: Cloud>(shared: &Shared<C>, spec: &NodeSpec, started: Instant) -> Result<Done, ResourceError> {
    let deps = deps_outputs(shared, spec);
    let (token, recorded) = {
        let st = shared.state.lock().unwrap();
        match st.resources.get(&spec.key) {
            Some(r) => (r.client_token.clone(), Some((r.status, r.outputs.clone()))),
            None => (st.client_token(&spec.key), None),
        }
    };
    let cx = NodeCtx {
        spec,
        deps: &deps,
        token: &token,
    };

    let outputs = match recorded {
        Some((Status::Ready | Status::Updating, outputs)) => match shared.observed.get(&spec.key) {
            Some(Observed::Present(live)) => return update_if_needed(shared, &cx, started, outputs, live).await,
            Some(Observed::Missing) => {
                shared.events.emit(Event::Warning {
                    message: format!(
                        "{}: {} was deleted outside pi-deploy; creating it again",
                        spec.key,
                        outputs.get("id").unwrap_or("the recorded resource")
                    ),
                });
                return create_again(shared, &cx, started, &outputs).await;
            }
            None => return Ok(Done::Unchanged),
        },
        Some((Status::Created, outputs)) => match converge(shared, &cx, started, outputs.clone()).await {
            // The recorded resource vanished (deleted by hand): find or create it again.
            Err(e) if e.is(ErrorClass::NotFound) => return create_again(shared, &cx, started, &outputs).await,
            other => return other.and_then(|o| mark_ready(shared, &cx, started, o)),
        },
        _ => create_or_adopt(shared, &cx, started).await?,
    };
    let outputs = converge(shared, &cx, started, outputs).await?;
    mark_ready(shared, &cx, started, outputs)
}

/// Create a resource again whose recorded one (`vanished`) is gone, under a new client token.
async fn create_again<C: Cloud>(
    shared: &Shared<C>,
    cx: &NodeCtx<'_>,
    started: Instant,
    vanished: &Outputs,
) -> Result<Done, ResourceError> {
    let token = {
        let st = shared.state.lock().unwrap();
        st.recreate_token(&cx.spec.key, vanished.get("id").unwrap_or_default())
    };
    let cx = NodeCtx { token: &token, ..*cx };
    let outputs = create_or_adopt(shared, &cx, started).await?;
    let outputs = converge(shared, &cx, started, outputs).await?;
    mark_ready(shared, &cx, started, outputs)
}

/// Day 2 for a ready node: compare, and apply what AWS changes in place.
async fn update_if_needed<C: Cloud>(
    shared: &Shared<C>,
    cx: &NodeCtx<'_>,
    started: Instant,
    outputs: Outputs,
    live: &Settings,
) -> Result<Done, ResourceError> {
    let spec = cx.spec;
    let desired = shared.cloud.desired(spec, cx.deps);
    let changes = shared.cloud.diff(spec, &desired, live);
    let keep = recordable(shared.cloud.as_ref(), spec, &desired);
    if changes.is_empty() {
        let (status, recorded) = {
            let st = shared.state.lock().unwrap();
            st.resources
                .get(&spec.key)
                .map(|r| (r.status, r.settings.clone()))
                .unwrap_or((Status::Ready, Settings::new()))
        };
        if status != Status::Ready || recorded != keep {
            shared.record_with(spec, Status::Ready, cx.token, outputs, keep)?;
        }
        return Ok(Done::Unchanged);
    }
    let replaceable = shared.cloud.replaceable(spec);
    if let Some(c) = changes
        .iter()
        .find(|c| c.action != ChangeAction::Update && !(c.is(ChangeAction::Replace) && replaceable))
    {
        return Err(ResourceError::new(
            ErrorClass::Invalid,
            format!(
                "`{}` of {} changes from {} to {}, which needs a {} ({})",
                c.attribute,
                spec.key,
                c.old,
                c.new,
                c.action.as_str(),
                c.note
            ),
        )
        .with_hint("run `pi-deploy plan` to see every change and what it needs"));
    }
    if changes.iter().any(|c| c.is(ChangeAction::Replace)) {
        return replace(shared, cx, started, &outputs, &changes).await;
    }
    let recorded = shared.recorded_settings(&spec.key);
    shared.record_with(spec, Status::Updating, cx.token, outputs.clone(), recorded)?;
    let summary = changes
        .iter()
        .map(|c| format!("{}: {} -> {}", c.attribute, c.old, c.new))
        .collect::<Vec<_>>()
        .join("; ");
    shared.emit(
        spec,
        ResourceStatus::Updating,
        started,
        outputs.get("id").map(String::from),
        Some(summary),
    );
    let mut throttled = 0;
    let outputs = loop {
        match shared.cloud.update(cx, outputs.clone(), &changes).await {
            Err(e) if pause_if_throttled(shared, &spec.key, "update", &e, &mut throttled).await => {}
            done => break done?,
        }
    };
    let id = outputs.get("id").map(String::from);
    shared.record_with(spec, Status::Ready, cx.token, outputs, keep)?;
    shared.emit(spec, ResourceStatus::Updated, started, id, None);
    Ok(Done::Changed)
}

/// Create before destroy, for a kind that opts in (`Cloud::replaceable`): in one state
/// write, the resource in place becomes a retiring record (its outputs and why) and the node
/// starts again at `creating` under a new token (`State::retire`); then the replacement is
/// found or created, converged and recorded `ready` like any create, so its dependents,
/// which start after it, see its new id in their desired settings and move to it (an
/// update). The retiring resource is not a node of the graph: `up` deletes it after a walk
/// that finished everything (`plan::unwanted`), and `destroy` with the rest. A kill at any
/// point leaves either the node `ready` on the old resource (nothing retired yet: replaced
/// by the next run), or `creating`/`created` with the old one retiring (finished by the next
/// run's create, found by its name).
async fn replace<C: Cloud>(
    shared: &Shared<C>,
    cx: &NodeCtx<'_>,
    started: Instant,
    old: &Outputs,
    changes: &[super::diff::Change],
) -> Result<Done, ResourceError> {
    let spec = cx.spec;
    let old_id = old.id()?.to_string();
    let why = changes
        .iter()
        .filter(|c| c.is(ChangeAction::Replace))
        .map(|c| format!("{}: {} -> {}", c.attribute, c.old, c.new))
        .collect::<Vec<_>>()
        .join("; ");
    let (token, before) = {
        let st = shared.state.lock().unwrap();
        (
            st.replace_token(&spec.key, &old_id),
            st.resources.get(&spec.key).cloned(),
        )
    };
    shared.persist_then(
        |st| {
            st.retire(&spec.key, &why, &token);
        },
        || {
            shared.emit(
                spec,
                ResourceStatus::Updating,
                started,
                Some(old_id.clone()),
                Some(format!("replacing, create before destroy ({why})")),
            )
        },
    )?;
    let cx = NodeCtx { token: &token, ..*cx };
    let outputs = create_or_adopt(shared, &cx, started).await?;
    if outputs.get("id") == Some(old_id.as_str()) {
        // Put the record back as it was: nothing may ever delete the resource in place.
        if let Some(before) = before {
            shared.persist(|st| st.unretire(&spec.key, &old_id, before))?;
        }
        return Err(ResourceError::new(
            ErrorClass::Invalid,
            format!("the replacement of {} is {old_id}, the resource it replaces", spec.key),
        )
        .with_hint("a kind that replaces create-before-destroy must name the replacement after what forces it; report this as a bug"));
    }
    let outputs = converge(shared, &cx, started, outputs).await?;
    mark_ready(shared, &cx, started, outputs)
}

/// The settings worth recording: not a sensitive one (even as a digest), none that depends on
/// a dependency still unknown.
fn recordable<C: Cloud + ?Sized>(_cloud: &C, _spec: &NodeSpec, desired: &Settings) -> Settings {
    desired
        .iter()
        .filter(|(_, v)| v.as_str() != super::diff::KNOWN_AFTER_UP && !v.starts_with(super::diff::SENSITIVE))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn create_or_adopt<C: Cloud>(
    shared: &Shared<C>,
    cx: &NodeCtx<'_>,
    started: Instant,
) -> Result<Outputs, ResourceError> {
    let spec = cx.spec;
    shared.record_announced(cx, Status::Creating, Outputs::new(), ResourceStatus::Creating, started)?;
    let found = match shared.container_created_here(spec) {
        true => None,
        false => shared.cloud.find(cx).await?,
    };
    let (outputs, status) = match found {
        Some(found) => (found, ResourceStatus::Adopted),
        None => create_resolving_ambiguity(shared, cx).await?,
    };
    if status == ResourceStatus::Created {
        shared.created_here.lock().unwrap().insert(spec.key.clone());
    }
    shared.record_announced(cx, Status::Created, outputs.clone(), status, started)?;
    Ok(outputs)
}

/// Create calls tried in all when each one's outcome is unknown (`ErrorClass::Ambiguous`).
const CREATE_TRIES: u32 = 3;

/// The pauses before a create, update or delete that AWS refused as throttled is made again.
/// The SDK retries a throttled call itself, but its retry quota is shared by every call of
/// the client, so account-wide throttling (other tools, a big deployment) exhausts it and
/// the error reaches the executor. A refused call did nothing, so it can be made again:
/// a create after looking for the resource first (a create of several calls may have made
/// its first), an update or delete as it is (both idempotent). 75 s in all, then the error.
const THROTTLED_PAUSES: [std::time::Duration; 4] = [
    std::time::Duration::from_secs(5),
    std::time::Duration::from_secs(10),
    std::time::Duration::from_secs(20),
    std::time::Duration::from_secs(40),
];

/// When `e` is a throttling and pauses are left: warn, pause (spread by the key, so nodes
/// throttled together do not come back together) and say to try again.
async fn pause_if_throttled<C: Cloud>(
    shared: &Shared<C>,
    key: &str,
    call: &str,
    e: &ResourceError,
    pauses: &mut usize,
) -> bool {
    let Some(pause) = THROTTLED_PAUSES.get(*pauses).filter(|_| e.is(ErrorClass::Throttled)) else {
        return false;
    };
    *pauses += 1;
    let spread = key
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
        % 1000;
    let pause = *pause + std::time::Duration::from_millis(spread);
    shared.events.emit(Event::Warning {
        message: format!(
            "{key}: AWS throttled the {call} beyond the SDK's retries (the account's request rate is shared); trying again in {}s: {e}",
            pause.as_secs()
        ),
    });
    tokio::time::sleep(pause).await;
    true
}

/// Create; when the outcome is unknown (the connection failed after the request was sent),
/// look the resource up again (tags, name, client token) and adopt it if the create did
/// happen, else create again. A blind retry could make a duplicate: most creates take no
/// client token. The pause before looking gives list/describe calls time to see a
/// resource that was just created (they are eventually consistent).
async fn create_resolving_ambiguity<C: Cloud>(
    shared: &Shared<C>,
    cx: &NodeCtx<'_>,
) -> Result<(Outputs, ResourceStatus), ResourceError> {
    let mut tries = 1;
    let mut throttled = 0;
    loop {
        match shared.cloud.create(cx).await {
            Ok(outputs) => return Ok((outputs, ResourceStatus::Created)),
            Err(e) if pause_if_throttled(shared, &cx.spec.key, "create", &e, &mut throttled).await => {
                if let Some(found) = shared.cloud.find(cx).await? {
                    return Ok((found, ResourceStatus::Adopted));
                }
            }
            Err(e) if e.is(ErrorClass::Ambiguous) && tries < CREATE_TRIES => {
                shared.events.emit(Event::Warning {
                    message: format!(
                        "{}: the create's outcome is unknown, looking for it before trying again: {e}",
                        cx.spec.key
                    ),
                });
                tokio::time::sleep(std::time::Duration::from_secs(2 * u64::from(tries))).await;
                if let Some(found) = shared.cloud.find(cx).await? {
                    return Ok((found, ResourceStatus::Adopted));
                }
                tries += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

async fn converge<C: Cloud>(
    shared: &Shared<C>,
    cx: &NodeCtx<'_>,
    started: Instant,
    outputs: Outputs,
) -> Result<Outputs, ResourceError> {
    shared.emit(
        cx.spec,
        ResourceStatus::Waiting,
        started,
        outputs.get("id").map(String::from),
        None,
    );
    shared.cloud.converge(cx, outputs).await
}

fn mark_ready<C: Cloud>(
    shared: &Shared<C>,
    cx: &NodeCtx<'_>,
    started: Instant,
    outputs: Outputs,
) -> Result<Done, ResourceError> {
    let spec = cx.spec;
    let id = outputs.get("id").map(String::from);
    let desired = shared.cloud.desired(spec, cx.deps);
    let keep = recordable(shared.cloud.as_ref(), spec, &desired);
    shared.record_with(spec, Status::Ready, cx.token, outputs, keep)?;
    shared.emit(spec, ResourceStatus::Ready, started, id, None);
    Ok(Done::Changed)
}

async fn destroy_node<C: Cloud>(shared: &Shared<C>, i: usize) -> Result<(), ResourceError> {
    let spec = shared.graph.node(i);
    let started = Instant::now();
    let result = destroy_node_inner(shared, spec, started).await;
    if let Err(e) = &result {
        shared.emit(spec, ResourceStatus::Failed, started, None, Some(e.to_string()));
    }
    result
}

async fn destroy_node_inner<C: Cloud>(
    shared: &Shared<C>,
    spec: &NodeSpec,
    started: Instant,
) -> Result<(), ResourceError> {
    let Some(mut record) = shared.state.lock().unwrap().resources.get(&spec.key).cloned() else {
        return Ok(());
    };
    if record.outputs.get("id").is_none() {
        // Only the intent was recorded: the create may or may not have happened.
        let deps = deps_outputs(shared, spec);
        let cx = NodeCtx {
            spec,
            deps: &deps,
            token: &record.client_token,
        };
        match shared.cloud.find(&cx).await? {
            Some(found) => record.outputs = found,
            None => {
                shared.persist(|st| {
                    st.resources.remove(&spec.key);
                })?;
                shared.emit(
                    spec,
                    ResourceStatus::Deleted,
                    started,
                    None,
                    Some("never created".into()),
                );
                return Ok(());
            }
        }
    }
    let id = record.outputs.get("id").map(String::from);
    let outputs = record.outputs.clone();
    shared.persist(|st| {
        record.status = Status::Deleting;
        record.updated_at = Utc::now();
        st.resources.insert(spec.key.clone(), record);
    })?;
    shared.emit(spec, ResourceStatus::Deleting, started, id.clone(), None);
    let mut throttled = 0;
    loop {
        let ctx = DeleteCtx {
            key: &spec.key,
            kind: spec.kind,
            outputs: &outputs,
        };
        match shared.cloud.delete(&ctx).await {
            Err(e) if pause_if_throttled(shared, &spec.key, "delete", &e, &mut throttled).await => {}
            done => break done?,
        }
    }
    shared.persist(|st| {
        st.resources.remove(&spec.key);
    })?;
    shared.emit(spec, ResourceStatus::Deleted, started, id, None);
    Ok(())
}

#[cfg(test)]
mod tests;
