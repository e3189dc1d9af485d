//! Finding what a deployment owns in the cloud but the state does not record: resources
//! created by a run that died before recording them, or a state file that was lost.
//!
//! It reuses each kind's `find` (by tag or deterministic name, read-only by contract) over
//! the graph of everything the deployment could have built, walking dependencies first so
//! that a kind found through its parent (a route through its table, a mount target through
//! its file system) gets the parent's outputs.

use std::collections::BTreeMap;

use super::graph::Graph;
use super::resource::{Cloud, NodeCtx, Outputs, ResourceError};
use super::spec::Kind;
use super::state::{State, Status};

#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    pub key: String,
    pub kind: Kind,
    pub outputs: Outputs,
    pub deps: Vec<String>,
}

/// Resources of `graph` that exist in the cloud while the state has no id for them.
/// A lookup that fails is reported back with its key instead of aborting the search.
pub async fn find_unrecorded<C: Cloud>(
    cloud: &C,
    graph: &Graph,
    state: &State,
) -> (Vec<Found>, Vec<(String, ResourceError)>) {
    let mut known: BTreeMap<String, Outputs> = state
        .resources
        .iter()
        .filter(|(_, r)| r.status != Status::Creating && r.outputs.get("id").is_some())
        .map(|(k, r)| (k.clone(), r.outputs.clone()))
        .collect();
    let mut found = Vec::new();
    let mut failed = Vec::new();
    for i in graph.topo_order() {
        let spec = graph.node(i);
        if known.contains_key(&spec.key) {
            continue;
        }
        // Without its parents, a child cannot be looked up (and cannot exist on its own).
        if spec.deps.iter().any(|d| !known.contains_key(d)) {
            continue;
        }
        let deps: BTreeMap<String, Outputs> = spec
            .deps
            .iter()
            .filter_map(|d| known.get(d).map(|o| (d.clone(), o.clone())))
            .collect();
        let token = state.client_token(&spec.key);
        let cx = NodeCtx {
            spec,
            deps: &deps,
            token: &token,
        };
        match cloud.find(&cx).await {
            Ok(Some(outputs)) => {
                known.insert(spec.key.clone(), outputs.clone());
                found.push(Found {
                    key: spec.key.clone(),
                    kind: spec.kind,
                    outputs,
                    deps: spec.deps.clone(),
                });
            }
            Ok(None) => {}
            Err(e) => failed.push((spec.key.clone(), e)),
        }
    }
    (found, failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::fake::FakeCloud;
    use crate::core::graph::tests::node;
    use crate::core::state::{Identity, ResourceRecord};

    fn identity() -> Identity {
        Identity {
            deployment: "t".into(),
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            partition: "aws".into(),
        }
    }

    #[tokio::test]
    async fn finds_what_exists_but_is_not_recorded() {
        let g = Graph::new(vec![node("a", &[]), node("b", &["a"]), node("c", &["b"])]).unwrap();
        let cloud = FakeCloud::new();
        cloud.preexisting("a", Outputs::new().with("id", "id-a"));
        cloud.preexisting("b", Outputs::new().with("id", "id-b"));
        let mut st = State::new(&identity());
        st.resources.insert(
            "a".into(),
            ResourceRecord {
                kind: Kind::Vpc,
                status: Status::Ready,
                client_token: "t".into(),
                outputs: Outputs::new().with("id", "id-a"),
                deps: vec![],
                settings: Default::default(),
                retiring: None,
                updated_at: chrono::Utc::now(),
            },
        );
        let (found, failed) = find_unrecorded(&cloud, &g, &st).await;
        assert!(failed.is_empty());
        assert_eq!(found.iter().map(|f| f.key.as_str()).collect::<Vec<_>>(), ["b"]);
        assert_eq!(found[0].deps, ["a"]);
    }
}
