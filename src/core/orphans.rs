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
        .filter(|(k, _)| has_id(state, k))
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

/// The state holds `key` with an id, so the search above does not look for it.
fn has_id(state: &State, key: &str) -> bool {
    state
        .resources
        .get(key)
        .is_some_and(|r| r.status != Status::Creating && r.outputs.get("id").is_some())
}

/// For a destroy walk that starts before the search has answered
/// (`executor::Executor::destroy_gated`), by node of `walked`: the nodes held back because
/// something the search may find would have to be deleted before them. Those are what a
/// key of `search` without an id in the state depends on (the search looks that key up),
/// that key itself where the state holds it without an id (the search may record it
/// again), and every node of the `containers` kinds, which a tagged resource the spec does
/// not know can sit in (the tag scan's `within`: VPC, subnets, security groups...).
pub fn held_for_search(walked: &Graph, search: &Graph, state: &State, containers: &[Kind]) -> Vec<bool> {
    let mut needed: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    for spec in search.nodes() {
        if !has_id(state, &spec.key) {
            needed.insert(&spec.key);
            needed.extend(spec.deps.iter().map(String::as_str));
        }
    }
    (0..walked.len())
        .map(|i| {
            let n = walked.node(i);
            containers.contains(&n.kind) || needed.contains(n.key.as_str())
        })
        .collect()
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

    fn record(kind: Kind, status: Status, id: Option<&str>) -> ResourceRecord {
        ResourceRecord {
            kind,
            status,
            client_token: "t".into(),
            outputs: id.map_or_else(Outputs::new, |id| Outputs::new().with("id", id)),
            deps: vec![],
            settings: Default::default(),
            retiring: None,
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn held_are_the_containers_and_what_an_unrecorded_key_needs() {
        // vpc <- subnet <- {app, lb}; lb <- listener-https (not in the state);
        // creating (recorded without an id) <- vpc; app <- leaf.
        let of = |key: &str, kind: Kind, deps: &[&str]| {
            let mut n = node(key, deps);
            n.kind = kind;
            n
        };
        let search = Graph::new(vec![
            of("vpc", Kind::Vpc, &[]),
            of("subnet", Kind::Subnet, &["vpc"]),
            of("app", Kind::AutoScalingGroup, &["subnet"]),
            of("lb", Kind::LoadBalancer, &["subnet"]),
            of("listener-https", Kind::Listener, &["lb"]),
            of("creating", Kind::NatGateway, &["vpc"]),
            of("leaf", Kind::Alarm, &["app"]),
        ])
        .unwrap();
        let mut st = State::new(&identity());
        for k in ["vpc", "subnet", "app", "lb", "leaf"] {
            let kind = search.get(k).unwrap().kind;
            st.resources
                .insert(k.into(), record(kind, Status::Ready, Some(&format!("id-{k}"))));
        }
        st.resources
            .insert("creating".into(), record(Kind::Vpc, Status::Creating, None));
        let keys: std::collections::BTreeSet<String> = st.resources.keys().cloned().collect();
        let walked = search.restrict(&keys);
        let held = held_for_search(&walked, &search, &st, &[Kind::Vpc, Kind::Subnet]);
        let mut held: Vec<&str> = (0..walked.len())
            .filter(|&i| held[i])
            .map(|i| walked.node(i).key.as_str())
            .collect();
        // lb: listener-https may be found and must go first; creating: may be found (and
        // its dep vpc is a container anyway); vpc, subnet: containers. Not app, not leaf.
        held.sort();
        assert_eq!(held, ["creating", "lb", "subnet", "vpc"]);
    }
}
