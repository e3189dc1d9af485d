//! What `up` would do, decided without changing anything: for each node of the desired
//! graph, in dependency order, `nothing` (recorded ready), `update` (recorded ready but out of
//! date, or created and not yet converged: `up` converges it), `adopt` (the kind's read-only
//! `find` sees it in the cloud) or `create`.
//!
//! A node whose dependency would be created cannot be looked up (its find needs the
//! dependency's id), so it is `create` too; that is also what `up` would do.

use std::collections::BTreeMap;

use serde::Serialize;

use super::graph::Graph;
use super::resource::{Cloud, NodeCtx, Outputs, ResourceError};
use super::spec::{Kind, NodeSpec};
use super::state::{State, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Adopt,
    Update,
    Nothing,
}

impl Action {
    pub const ALL: [Action; 4] = [Action::Create, Action::Adopt, Action::Update, Action::Nothing];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Adopt => "adopt",
            Action::Update => "update",
            Action::Nothing => "nothing",
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
    pub reason: &'static str,
}

/// How far a record alone decides the action.
#[derive(Debug, PartialEq, Eq)]
enum FromRecord {
    Decided(Action, &'static str),
    /// No usable record: ask the cloud.
    LookUp,
}

fn from_record(status: Option<Status>, outdated: bool) -> FromRecord {
    match status {
        Some(Status::Ready) if outdated => FromRecord::Decided(Action::Update, "out of date"),
        Some(Status::Ready) => FromRecord::Decided(Action::Nothing, "recorded ready"),
        Some(Status::Created) => FromRecord::Decided(Action::Update, "created, not yet converged"),
        // `creating` (a create that may or may not have happened), `deleting`, or no record.
        _ => FromRecord::LookUp,
    }
}

/// The plan, in topological order. Calls only `Cloud::find`, which is read-only by contract.
pub async fn plan<C: Cloud + ?Sized>(
    graph: &Graph,
    state: &State,
    cloud: &C,
    outdated: impl Fn(&NodeSpec, &Outputs) -> bool,
) -> Result<Vec<Step>, (String, ResourceError)> {
    // Outputs known so far: recorded or found. Nodes to be created have none.
    let mut known: BTreeMap<String, Outputs> = BTreeMap::new();
    let mut steps = Vec::with_capacity(graph.len());
    for i in graph.topo_order() {
        let spec = graph.node(i);
        let record = state.resources.get(&spec.key);
        let decided = from_record(
            record.map(|r| r.status),
            record.is_some_and(|r| outdated(spec, &r.outputs)),
        );
        let (action, reason, outputs) = match (decided, record) {
            (FromRecord::Decided(action, reason), Some(r)) => (action, reason, Some(r.outputs.clone())),
            _ => look_up(spec, state, cloud, &known)
                .await
                .map_err(|e| (spec.key.clone(), e))?,
        };
        let id = outputs.as_ref().and_then(|o| o.get("id")).map(String::from);
        if let Some(o) = outputs {
            known.insert(spec.key.clone(), o);
        }
        steps.push(Step {
            key: spec.key.clone(),
            kind: spec.kind,
            action,
            id,
            reason,
        });
    }
    Ok(steps)
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

#[cfg(test)]
mod tests {
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
        let steps = plan(&g, &state(), &cloud, |_, _| false).await.unwrap();
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
        let steps = plan(&g, &s, &cloud, |_, _| false).await.unwrap();
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
        let steps = plan(&g, &s, &cloud, |n, _| n.key == "a").await.unwrap();
        assert_eq!(actions(&steps), vec![("a", Action::Update), ("b", Action::Create)]);
        assert_eq!(cloud.calls("find"), 1);
    }
}
