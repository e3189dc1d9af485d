//! What `up` would do, decided without changing anything, attribute by attribute.
//!
//! 1. `observe` reads every recorded ready resource from AWS (read-only, concurrently).
//! 2. `plan` walks the desired graph in dependency order: a recorded resource is compared with
//!    its desired settings (`Cloud::desired` / `Cloud::diff`) and gets `nothing`, `update`,
//!    `roll`, `replace` (the strongest action among its changes), or `create` when it was
//!    deleted outside pi-deploy; an unrecorded one is `adopt` when the kind's read-only `find`
//!    sees it in the cloud, else `create`; a resource the config no longer wants is `delete`.
//! 3. A change AWS cannot make (`forbidden`) is refused before anything is done: `forbidden`
//!    lists them, and `recorded_forbidden` finds them from the state alone, before any AWS
//!    call.
//!
//! A node whose dependency would be created cannot be looked up (its find needs the
//! dependency's id), so it is `create` too; that is also what `up` would do. A setting that
//! depends on a resource created (or created again) in the same run reads
//! `(known after up)`.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{self, StreamExt};
use serde::Serialize;

use super::diff::{Change, ChangeAction, Settings};
use super::graph::Graph;
use super::resource::{Cloud, NodeCtx, Observed, Outputs, ResourceError};
use super::spec::{Kind, NodeSpec};
use super::state::{State, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Adopt,
    Update,
    Roll,
    Replace,
    Delete,
    Nothing,
}

impl Action {
    pub const ALL: [Action; 7] = [
        Action::Create,
        Action::Adopt,
        Action::Update,
        Action::Roll,
        Action::Replace,
        Action::Delete,
        Action::Nothing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Adopt => "adopt",
            Action::Update => "update",
            Action::Roll => "roll",
            Action::Replace => "replace",
            Action::Delete => "delete",
            Action::Nothing => "nothing",
        }
    }

    /// The step action a change leads to (a forbidden one shows as the replacement it would be).
    pub fn of_change(change: ChangeAction) -> Action {
        Action::of(change)
    }

    fn of(change: ChangeAction) -> Action {
        match change {
            ChangeAction::Update => Action::Update,
            ChangeAction::Roll => Action::Roll,
            // A forbidden change is refused before `up` acts; the step shows what would be.
            ChangeAction::Replace | ChangeAction::Forbidden => Action::Replace,
        }
    }
}

/// One node's planned action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub key: String,
    pub kind: Kind,
    pub action: Action,
    /// The id it has (recorded or found); none for a create.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Why, in a few words.
    pub reason: String,
    /// For update / roll / replace: each attribute's old and new value and action.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
}

/// How far a record alone decides the action.
#[derive(Debug, PartialEq, Eq)]
enum FromRecord {
    Decided(Action, &'static str),
    /// Ready: compare with the live read.
    Compare,
    /// No usable record: ask the cloud.
    LookUp,
}

fn from_record(status: Option<Status>, outdated: bool) -> FromRecord {
    match status {
        Some(Status::Ready | Status::Updating) if outdated => FromRecord::Decided(Action::Update, "out of date"),
        Some(Status::Ready | Status::Updating) => FromRecord::Compare,
        Some(Status::Created) => FromRecord::Decided(Action::Update, "created, not yet converged"),
        // `creating` (a create that may or may not have happened), `deleting`, or no record.
        _ => FromRecord::LookUp,
    }
}

/// The recorded outputs of `spec`'s dependencies.
fn recorded_deps(spec: &NodeSpec, state: &State) -> BTreeMap<String, Outputs> {
    spec.deps
        .iter()
        .filter_map(|d| state.resources.get(d).map(|r| (d.clone(), r.outputs.clone())))
        .collect()
}

/// Read every recorded ready resource of `graph` (at most `concurrency` at once). Read-only.
pub async fn observe<C: Cloud + ?Sized>(
    graph: &Graph,
    state: &State,
    cloud: &C,
    concurrency: usize,
) -> Result<BTreeMap<String, Observed>, (String, ResourceError)> {
    let targets: Vec<(&NodeSpec, Outputs, String)> = graph
        .nodes()
        .iter()
        .filter_map(|spec| {
            let r = state.resources.get(&spec.key)?;
            matches!(r.status, Status::Ready | Status::Updating)
                .then(|| (spec, r.outputs.clone(), r.client_token.clone()))
        })
        .collect();
    let reads = stream::iter(targets.into_iter().map(|(spec, outputs, token)| async move {
        let deps = recorded_deps(spec, state);
        let cx = NodeCtx {
            spec,
            deps: &deps,
            token: &token,
        };
        let observed = cloud.read(&cx, &outputs).await;
        (spec.key.clone(), observed)
    }))
    .buffer_unordered(concurrency.max(1))
    .collect::<Vec<_>>()
    .await;
    let mut out = BTreeMap::new();
    for (key, observed) in reads {
        out.insert(key.clone(), observed.map_err(|e| (key, e))?);
    }
    Ok(out)
}

/// Recorded keys the desired graph no longer has: what `up` deletes, dependents first.
pub fn unwanted(graph: &Graph, state: &State) -> Vec<String> {
    let gone: BTreeSet<&String> = state.resources.keys().filter(|k| graph.get(k).is_none()).collect();
    // Dependents first: a key is listed after every unwanted key that depends on it... reversed.
    let mut order: Vec<String> = Vec::new();
    let mut placed: BTreeSet<String> = BTreeSet::new();
    while placed.len() < gone.len() {
        let before = placed.len();
        for k in &gone {
            if placed.contains(*k) {
                continue;
            }
            let blocked = gone.iter().any(|other| {
                !placed.contains(*other) && *other != *k && state.resources[*other].deps.iter().any(|d| d == *k)
            });
            if !blocked {
                placed.insert((*k).clone());
                order.push((*k).clone());
            }
        }
        if placed.len() == before {
            // A cycle of recorded edges (a hand-edited file): the rest in key order.
            order.extend(gone.iter().filter(|k| !placed.contains(**k)).map(|k| (*k).clone()));
            break;
        }
    }
    order
}

/// The plan, in topological order, then the deletes. Calls only `Cloud::find`, which is
/// read-only by contract; `observed` holds the live reads of recorded resources.
pub async fn plan<C: Cloud + ?Sized>(
    graph: &Graph,
    state: &State,
    cloud: &C,
    observed: &BTreeMap<String, Observed>,
    outdated: impl Fn(&NodeSpec, &Outputs) -> bool,
) -> Result<Vec<Step>, (String, ResourceError)> {
    // Outputs known so far: recorded or found, and not about to change. Nodes to be created
    // (or created again) have none.
    let mut known: BTreeMap<String, Outputs> = BTreeMap::new();
    let mut steps = Vec::with_capacity(graph.len());
    for i in graph.topo_order() {
        let spec = graph.node(i);
        let record = state.resources.get(&spec.key);
        let decided = from_record(
            record.map(|r| r.status),
            record.is_some_and(|r| outdated(spec, &r.outputs)),
        );
        let (action, reason, outputs, changes) = match (decided, record) {
            (FromRecord::Decided(action, reason), Some(r)) => {
                (action, reason.to_string(), Some(r.outputs.clone()), Vec::new())
            }
            (FromRecord::Compare, Some(r)) => match observed.get(&spec.key) {
                Some(Observed::Missing) => (
                    Action::Create,
                    "deleted outside pi-deploy".to_string(),
                    None,
                    Vec::new(),
                ),
                Some(Observed::Present(live)) => {
                    let deps = spec
                        .deps
                        .iter()
                        .filter_map(|d| known.get(d).map(|o| (d.clone(), o.clone())))
                        .collect();
                    let desired = cloud.desired(spec, &deps);
                    let changes = cloud.diff(spec, &desired, live);
                    match super::diff::strongest(&changes) {
                        None => (
                            Action::Nothing,
                            "matches the config".to_string(),
                            Some(r.outputs.clone()),
                            changes,
                        ),
                        Some(strongest) => {
                            let action = Action::of(strongest);
                            let reason = match action {
                                Action::Roll => "needs new instances".to_string(),
                                Action::Replace if strongest == ChangeAction::Replace && cloud.replaceable(spec) => {
                                    replace_reason(&changes)
                                }
                                Action::Replace => "needs a new resource".to_string(),
                                _ => "settings differ".to_string(),
                            };
                            // A replaced resource gets a new id: its dependents see it later.
                            let outputs = (action != Action::Replace).then(|| r.outputs.clone());
                            (action, reason, outputs, changes)
                        }
                    }
                }
                None => (
                    Action::Nothing,
                    "not read".to_string(),
                    Some(r.outputs.clone()),
                    Vec::new(),
                ),
            },
            _ => {
                let (action, reason, outputs) = look_up(spec, state, cloud, &known)
                    .await
                    .map_err(|e| (spec.key.clone(), e))?;
                (action, reason.to_string(), outputs, Vec::new())
            }
        };
        let id = outputs
            .as_ref()
            .and_then(|o| o.get("id"))
            .or_else(|| {
                record
                    .and_then(|r| r.outputs.get("id"))
                    .filter(|_| action != Action::Create)
            })
            .map(String::from);
        if let Some(o) = outputs {
            known.insert(spec.key.clone(), o);
        }
        steps.push(Step {
            key: spec.key.clone(),
            kind: spec.kind,
            action,
            id,
            reason,
            changes,
        });
    }
    for key in unwanted(graph, state) {
        let r = &state.resources[&key];
        steps.push(Step {
            key: key.clone(),
            kind: r.kind,
            action: Action::Delete,
            id: r.outputs.get("id").map(String::from),
            reason: match &r.retiring {
                Some(why) => format!("replaced ({why}): deleted once its dependents moved to the replacement"),
                None => "no longer in the config".to_string(),
            },
            changes: Vec::new(),
        });
    }
    Ok(steps)
}

/// The reason of a create-before-destroy replace: `-/+ replace` and what forces it.
pub fn replace_reason(changes: &[Change]) -> String {
    let forced: Vec<String> = changes
        .iter()
        .filter(|c| c.is(ChangeAction::Replace))
        .map(|c| format!("{} {} -> {}", c.attribute, c.old, c.new))
        .collect();
    format!(
        "-/+ replace: {}; a new one is created, its dependents move to it, then the old one is deleted",
        forced.join(", ")
    )
}

/// Every change among `steps` that AWS cannot make, with its key.
pub fn forbidden(steps: &[Step]) -> Vec<(String, Change)> {
    steps
        .iter()
        .flat_map(|s| {
            s.changes
                .iter()
                .filter(|c| c.is(ChangeAction::Forbidden))
                .map(|c| (s.key.clone(), c.clone()))
        })
        .collect()
}

/// Say in a roll's reason what it goes through: `desired` instances (the group's live
/// desired capacity) replaced one at a time, the group one above desired meanwhile.
pub fn describe_rolls(steps: &mut [Step], desired: Option<u32>) {
    for step in steps.iter_mut().filter(|s| s.action == Action::Roll) {
        step.reason = match desired {
            Some(n) => format!(
                "needs new instances: {n} replaced one at a time, blue/green ({n} -> {} -> {n} instances, each old one drained once its replacement is healthy)",
                n + 1
            ),
            None => "needs new instances: each replaced one at a time, blue/green".to_string(),
        };
    }
}

/// The forbidden changes visible from the state alone (the settings recorded when each
/// resource was last applied against the config's): refused before any AWS call.
pub fn recorded_forbidden<C: Cloud + ?Sized>(graph: &Graph, state: &State, cloud: &C) -> Vec<(String, Change)> {
    let mut out = Vec::new();
    for spec in graph.nodes() {
        let Some(r) = state.resources.get(&spec.key) else {
            continue;
        };
        if r.settings.is_empty() {
            continue;
        }
        let desired: Settings = cloud.desired(spec, &recorded_deps(spec, state));
        for c in cloud.diff(spec, &desired, &r.settings) {
            if c.is(ChangeAction::Forbidden) {
                out.push((spec.key.clone(), c));
            }
        }
    }
    out
}

type Decision = (Action, &'static str, Option<Outputs>);

async fn look_up<C: Cloud + ?Sized>(
    spec: &NodeSpec,
    state: &State,
    cloud: &C,
    known: &BTreeMap<String, Outputs>,
) -> Result<Decision, ResourceError> {
    let deps: BTreeMap<String, Outputs> = spec
        .deps
        .iter()
        .filter_map(|d| known.get(d).map(|o| (d.clone(), o.clone())))
        .collect();
    if deps.len() < spec.deps.len() {
        return Ok((Action::Create, "a dependency is created first", None));
    }
    let token = state
        .resources
        .get(&spec.key)
        .map(|r| r.client_token.clone())
        .unwrap_or_else(|| state.client_token(&spec.key));
    let cx = NodeCtx {
        spec,
        deps: &deps,
        token: &token,
    };
    Ok(match cloud.find(&cx).await? {
        Some(found) => (Action::Adopt, "exists in AWS, not recorded", Some(found)),
        None => (Action::Create, "not found", None),
    })
}

/// How many nodes get each action (every action present, zero included).
pub fn counts(steps: &[Step]) -> BTreeMap<&'static str, usize> {
    let mut c: BTreeMap<&'static str, usize> = Action::ALL.iter().map(|a| (a.as_str(), 0)).collect();
    for s in steps {
        *c.entry(s.action.as_str()).or_default() += 1;
    }
    c
}

/// Whether the plan changes anything.
pub fn has_changes(steps: &[Step]) -> bool {
    steps.iter().any(|s| s.action != Action::Nothing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_roll_says_the_instance_counts_it_goes_through() {
        let step = |action| Step {
            key: "launch-template".into(),
            kind: Kind::LaunchTemplate,
            action,
            id: None,
            reason: "needs new instances".into(),
            changes: vec![],
        };
        let mut steps = vec![step(Action::Roll), step(Action::Update)];
        describe_rolls(&mut steps, Some(2));
        assert!(
            steps[0].reason.contains("2 replaced one at a time") && steps[0].reason.contains("2 -> 3 -> 2"),
            "{}",
            steps[0].reason
        );
        assert_eq!(steps[1].reason, "needs new instances", "only the roll");
        describe_rolls(&mut steps, None);
        assert!(steps[0].reason.contains("one at a time"));
    }
    use crate::core::fake::FakeCloud;
    use crate::core::spec::Props;
    use crate::core::state::{Identity, ResourceRecord};

    fn node(key: &str, deps: &[&str]) -> NodeSpec {
        NodeSpec {
            key: key.into(),
            kind: Kind::Vpc,
            deps: deps.iter().map(|s| s.to_string()).collect(),
            props: Props::ElasticIp,
        }
    }

    fn state() -> State {
        State::new(&Identity {
            deployment: "pi".into(),
            region: "eu-west-1".into(),
            account_id: "1".into(),
            partition: "aws".into(),
        })
    }

    fn record(s: &mut State, key: &str, status: Status) {
        let token = s.client_token(key);
        s.resources.insert(
            key.into(),
            ResourceRecord {
                kind: Kind::Vpc,
                status,
                client_token: token,
                outputs: Outputs::new().with("id", format!("id-{key}")),
                deps: vec![],
                settings: Default::default(),
                retiring: None,
                updated_at: chrono::Utc::now(),
            },
        );
    }

    fn actions(steps: &[Step]) -> Vec<(&str, Action)> {
        steps.iter().map(|s| (s.key.as_str(), s.action)).collect()
    }

    #[tokio::test]
    async fn empty_account_creates_everything_and_looks_up_only_roots() {
        let g = Graph::new(vec![node("a", &[]), node("b", &["a"]), node("c", &["b"])]).unwrap();
        let cloud = FakeCloud::new();
        let steps = plan(&g, &state(), &cloud, &BTreeMap::new(), |_, _| false)
            .await
            .unwrap();
        assert_eq!(
            actions(&steps),
            vec![("a", Action::Create), ("b", Action::Create), ("c", Action::Create)]
        );
        // `b` and `c` cannot be looked up: their dependency does not exist yet.
        assert_eq!(cloud.calls("find"), 1);
        assert_eq!(
            cloud.calls("create") + cloud.calls("converge") + cloud.calls("delete"),
            0
        );
    }

    #[tokio::test]
    async fn recorded_found_and_missing_nodes() {
        let g = Graph::new(vec![
            node("a", &[]),
            node("b", &["a"]),
            node("c", &["b"]),
            node("d", &["a"]),
        ])
        .unwrap();
        let mut s = state();
        record(&mut s, "a", Status::Ready);
        record(&mut s, "d", Status::Created);
        let cloud = FakeCloud::new();
        cloud.preexisting("b", Outputs::new().with("id", "found-b"));
        let steps = plan(&g, &s, &cloud, &BTreeMap::new(), |_, _| false).await.unwrap();
        assert_eq!(
            actions(&steps),
            vec![
                ("a", Action::Nothing),
                ("b", Action::Adopt),
                ("c", Action::Create),
                ("d", Action::Update)
            ]
        );
        assert_eq!(steps[1].id.as_deref(), Some("found-b"));
        assert_eq!(steps[2].reason, "not found");
        assert_eq!(counts(&steps)["nothing"], 1);
        assert_eq!(counts(&steps)["create"], 1);
    }

    #[tokio::test]
    async fn outdated_ready_nodes_are_updates_and_interrupted_creates_are_looked_up() {
        let g = Graph::new(vec![node("a", &[]), node("b", &[])]).unwrap();
        let mut s = state();
        record(&mut s, "a", Status::Ready);
        record(&mut s, "b", Status::Creating);
        let cloud = FakeCloud::new();
        let steps = plan(&g, &s, &cloud, &BTreeMap::new(), |n, _| n.key == "a")
            .await
            .unwrap();
        assert_eq!(actions(&steps), vec![("a", Action::Update), ("b", Action::Create)]);
        assert_eq!(cloud.calls("find"), 1);
    }

    // ---- day 2 ----

    fn live(pairs: &[(&str, &str)]) -> Observed {
        Observed::Present(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    fn desired(cloud: &mut FakeCloud, key: &str, pairs: &[(&str, &str)]) {
        cloud.desired.insert(
            key.into(),
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        );
    }

    #[tokio::test]
    async fn ready_nodes_are_compared_attribute_by_attribute() {
        let g = Graph::new(vec![node("a", &[]), node("b", &["a"]), node("c", &[]), node("d", &[])]).unwrap();
        let mut s = state();
        for k in ["a", "b", "c", "d"] {
            record(&mut s, k, Status::Ready);
        }
        let mut cloud = FakeCloud::new();
        desired(&mut cloud, "a", &[("size", "2")]);
        desired(&mut cloud, "c", &[("image", "ami-2")]);
        desired(&mut cloud, "d", &[("port", "443")]);
        let observed: BTreeMap<String, Observed> = [
            ("a", live(&[("size", "1"), ("refs", "-")])),
            ("b", live(&[("refs", "id-a")])),
            ("c", live(&[("image", "ami-1"), ("refs", "-")])),
            ("d", live(&[("port", "80"), ("refs", "-")])),
        ]
        .into_iter()
        .map(|(k, o)| (k.to_string(), o))
        .collect();
        let steps = plan(&g, &s, &cloud, &observed, |_, _| false).await.unwrap();
        assert_eq!(steps.len(), 4);
        let by_key = |k: &str| steps.iter().find(|s| s.key == k).unwrap();
        assert_eq!(by_key("a").action, Action::Update);
        let c = &by_key("a").changes[0];
        assert_eq!(
            (c.attribute.as_str(), c.old.as_str(), c.new.as_str()),
            ("size", "1", "2")
        );
        assert_eq!(by_key("c").action, Action::Roll);
        assert_eq!(by_key("d").action, Action::Replace);
        assert_eq!(by_key("b").action, Action::Nothing);
        assert!(has_changes(&steps));
        // Reads only: nothing was looked up, created or changed.
        assert_eq!(cloud.calls("find") + cloud.calls("create") + cloud.calls("update"), 0);
    }

    #[tokio::test]
    async fn a_vanished_resource_is_created_again_and_its_dependents_see_a_new_id() {
        let g = Graph::new(vec![node("a", &[]), node("b", &["a"])]).unwrap();
        let mut s = state();
        record(&mut s, "a", Status::Ready);
        record(&mut s, "b", Status::Ready);
        let cloud = FakeCloud::new();
        let observed: BTreeMap<String, Observed> = [
            ("a".to_string(), Observed::Missing),
            ("b".to_string(), live(&[("refs", "id-a")])),
        ]
        .into_iter()
        .collect();
        let steps = plan(&g, &s, &cloud, &observed, |_, _| false).await.unwrap();
        assert_eq!(steps[0].action, Action::Create);
        assert_eq!(steps[0].reason, "deleted outside pi-deploy");
        assert_eq!(steps[1].action, Action::Update);
        assert_eq!(steps[1].changes[0].new, crate::core::diff::KNOWN_AFTER_UP);
    }

    #[tokio::test]
    async fn what_the_config_no_longer_wants_is_deleted_dependents_first() {
        let g = Graph::new(vec![node("a", &[])]).unwrap();
        let mut s = state();
        record(&mut s, "a", Status::Ready);
        record(&mut s, "old-table", Status::Ready);
        record(&mut s, "old-route", Status::Ready);
        s.resources.get_mut("old-route").unwrap().deps = vec!["old-table".into()];
        assert_eq!(unwanted(&g, &s), vec!["old-route".to_string(), "old-table".to_string()]);
        let cloud = FakeCloud::new();
        let steps = plan(&g, &s, &cloud, &BTreeMap::new(), |_, _| false).await.unwrap();
        let deletes: Vec<&str> = steps
            .iter()
            .filter(|s| s.action == Action::Delete)
            .map(|s| s.key.as_str())
            .collect();
        assert_eq!(deletes, vec!["old-route", "old-table"]);
        assert_eq!(counts(&steps)["delete"], 2);
    }

    #[test]
    fn a_forbidden_change_is_found_from_the_recorded_settings_alone() {
        let g = Graph::new(vec![node("a", &[])]).unwrap();
        let mut s = state();
        record(&mut s, "a", Status::Ready);
        s.resources.get_mut("a").unwrap().settings =
            [("cidr".to_string(), "10.0.0.0/16".to_string())].into_iter().collect();
        let mut cloud = FakeCloud::new();
        desired(&mut cloud, "a", &[("cidr", "10.9.0.0/16")]);
        let found = recorded_forbidden(&g, &s, &cloud);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].0, "a");
        assert_eq!(found[0].1.fields, vec!["fake.cidr".to_string()]);
        // No AWS call of any kind.
        assert_eq!(cloud.calls("read") + cloud.calls("find"), 0);
        desired(&mut cloud, "a", &[("cidr", "10.0.0.0/16")]);
        assert!(recorded_forbidden(&g, &s, &cloud).is_empty());
    }
}

#[cfg(test)]
mod replace_tests {
    use super::*;
    use crate::core::fake::FakeCloud;
    use crate::core::spec::Props;
    use crate::core::state::{Identity, ResourceRecord};

    fn node(key: &str, deps: &[&str]) -> NodeSpec {
        NodeSpec {
            key: key.into(),
            kind: Kind::Vpc,
            deps: deps.iter().map(|s| s.to_string()).collect(),
            props: Props::ElasticIp,
        }
    }

    fn ready(s: &mut State, key: &str) {
        let token = s.client_token(key);
        s.resources.insert(
            key.into(),
            ResourceRecord {
                kind: Kind::Vpc,
                status: Status::Ready,
                client_token: token,
                outputs: Outputs::new().with("id", format!("id-{key}")),
                deps: vec![],
                settings: Default::default(),
                retiring: None,
                updated_at: chrono::Utc::now(),
            },
        );
    }

    fn live(pairs: &[(&str, &str)]) -> Observed {
        Observed::Present(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    /// `a` on port 80 asked for 443 (a replace), `b` refers to it.
    async fn planned(replaceable: bool, s: &State) -> Vec<Step> {
        let g = Graph::new(vec![node("a", &[]), node("b", &["a"])]).unwrap();
        let mut cloud = FakeCloud::new();
        cloud
            .desired
            .insert("a".into(), [("port".to_string(), "443".to_string())].into());
        if replaceable {
            cloud.replaceable.insert("a".into());
        }
        let observed: BTreeMap<String, Observed> = [
            ("a".to_string(), live(&[("port", "80"), ("refs", "-")])),
            ("b".to_string(), live(&[("refs", "id-a")])),
        ]
        .into();
        plan(&g, s, &cloud, &observed, |_, _| false).await.unwrap()
    }

    fn state() -> State {
        let mut s = State::new(&Identity {
            deployment: "pi".into(),
            region: "eu-west-1".into(),
            account_id: "1".into(),
            partition: "aws".into(),
        });
        ready(&mut s, "a");
        ready(&mut s, "b");
        s
    }

    #[tokio::test]
    async fn a_replace_of_a_kind_that_opts_in_is_minus_plus_with_what_forces_it() {
        let steps = planned(true, &state()).await;
        assert_eq!(steps[0].action, Action::Replace);
        assert_eq!(
            steps[0].reason,
            "-/+ replace: port 80 -> 443; a new one is created, its dependents move to it, then the old one is deleted"
        );
        // Its dependent's reference is known only after the replacement exists.
        assert_eq!(steps[1].action, Action::Update);
        assert_eq!(steps[1].changes[0].new, crate::core::diff::KNOWN_AFTER_UP);
        // A kind that does not opt in: still a replace `up` refuses.
        let steps = planned(false, &state()).await;
        assert_eq!(
            (steps[0].action, steps[0].reason.as_str()),
            (Action::Replace, "needs a new resource")
        );
    }

    #[tokio::test]
    async fn a_retiring_record_is_a_delete_that_says_why() {
        let mut s = state();
        s.retire("a", "port: 80 -> 443", &s.replace_token("a", "id-a")).unwrap();
        let rkey = crate::core::state::retiring_key("a", "id-a");
        let g = Graph::new(vec![node("a", &[]), node("b", &["a"])]).unwrap();
        assert_eq!(unwanted(&g, &s), vec![rkey.clone()]);
        let steps = planned(true, &s).await;
        let last = steps.last().unwrap();
        assert_eq!((last.key.as_str(), last.action), (rkey.as_str(), Action::Delete));
        assert_eq!(last.id.as_deref(), Some("id-a"));
        assert!(last.reason.starts_with("replaced (port: 80 -> 443)"), "{}", last.reason);
        // The node itself starts again: its replacement is looked up, then created.
        assert_eq!(steps[0].action, Action::Create);
    }
}
