//! The dependency graph: resource keys as nodes, "B needs A" as an edge A -> B.
//!
//! Validated once at construction (missing dependencies, duplicate keys, cycles naming
//! every node in them), so the executor can walk it without deadlocking. Destroy order is
//! the same graph walked backwards: a node is deleted once every node that needs it is gone.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::algo::tarjan_scc;
use petgraph::graph::DiGraph;

use super::spec::NodeSpec;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("resource `{0}` is declared twice")]
    Duplicate(String),
    #[error("resource `{node}` depends on `{dep}`, which is not declared")]
    MissingDependency { node: String, dep: String },
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Graph {
    nodes: Vec<NodeSpec>,
    index: HashMap<String, usize>,
    deps: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    /// Destroy: what each node's delete waits for, its dependents less the children AWS
    /// deletes with it (`Kind::deleted_with_container`).
    destroy_after: Vec<Vec<usize>>,
    /// Destroy: what each node's delete lets go, its dependencies less the container that
    /// deletes it.
    destroy_frees: Vec<Vec<usize>>,
}

impl Graph {
    pub fn new(nodes: Vec<NodeSpec>) -> Result<Self, GraphError> {
        let mut index = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            if index.insert(n.key.clone(), i).is_some() {
                return Err(GraphError::Duplicate(n.key.clone()));
            }
        }
        let mut deps = vec![Vec::new(); nodes.len()];
        let mut dependents = vec![Vec::new(); nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            for d in &n.deps {
                let &j = index.get(d).ok_or_else(|| GraphError::MissingDependency {
                    node: n.key.clone(),
                    dep: d.clone(),
                })?;
                deps[i].push(j);
                dependents[j].push(i);
            }
        }
        // A child its container's delete takes with it need not be deleted first.
        let with = |child: usize, parent: usize| {
            let k = nodes[child].kind;
            k.deleted_with_container() && k.container() == Some(nodes[parent].kind)
        };
        let destroy_after = (0..nodes.len())
            .map(|i| dependents[i].iter().copied().filter(|&c| !with(c, i)).collect())
            .collect();
        let destroy_frees = (0..nodes.len())
            .map(|i| deps[i].iter().copied().filter(|&p| !with(i, p)).collect())
            .collect();
        let g = Self {
            nodes,
            index,
            deps,
            dependents,
            destroy_after,
            destroy_frees,
        };
        g.check_cycles()?;
        Ok(g)
    }

    fn check_cycles(&self) -> Result<(), GraphError> {
        let mut pg = DiGraph::<usize, ()>::new();
        let ids: Vec<_> = (0..self.nodes.len()).map(|i| pg.add_node(i)).collect();
        for (i, ds) in self.deps.iter().enumerate() {
            for &d in ds {
                pg.add_edge(ids[d], ids[i], ());
            }
        }
        for scc in tarjan_scc(&pg) {
            let self_loop = scc.len() == 1 && self.deps[pg[scc[0]]].contains(&pg[scc[0]]);
            if scc.len() > 1 || self_loop {
                let mut keys: Vec<String> = scc.iter().map(|&n| self.nodes[pg[n]].key.clone()).collect();
                keys.sort();
                keys.push(keys[0].clone());
                return Err(GraphError::Cycle(keys));
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }
    pub fn nodes(&self) -> &[NodeSpec] {
        &self.nodes
    }
    pub fn node(&self, i: usize) -> &NodeSpec {
        &self.nodes[i]
    }
    pub fn index_of(&self, key: &str) -> Option<usize> {
        self.index.get(key).copied()
    }
    pub fn get(&self, key: &str) -> Option<&NodeSpec> {
        self.index_of(key).map(|i| &self.nodes[i])
    }
    pub fn deps_of(&self, i: usize) -> &[usize] {
        &self.deps[i]
    }
    pub fn dependents_of(&self, i: usize) -> &[usize] {
        &self.dependents[i]
    }
    /// Destroy: the nodes whose deletes must end before node `i`'s starts.
    pub fn destroy_after(&self, i: usize) -> &[usize] {
        &self.destroy_after[i]
    }
    /// Destroy: the nodes node `i`'s delete is one of the blockers of.
    pub fn destroy_frees(&self, i: usize) -> &[usize] {
        &self.destroy_frees[i]
    }

    /// A topological order (dependencies first), ties broken by key for determinism.
    pub fn topo_order(&self) -> Vec<usize> {
        let mut remaining: Vec<usize> = self.deps.iter().map(Vec::len).collect();
        let mut ready: BTreeSet<(&str, usize)> = (0..self.len())
            .filter(|&i| remaining[i] == 0)
            .map(|i| (self.nodes[i].key.as_str(), i))
            .collect();
        let mut order = Vec::with_capacity(self.len());
        while let Some(first) = ready.pop_first() {
            let i = first.1;
            order.push(i);
            for &d in &self.dependents[i] {
                remaining[d] -= 1;
                if remaining[d] == 0 {
                    ready.insert((self.nodes[d].key.as_str(), d));
                }
            }
        }
        order
    }

    /// Destroy order: every node after all the nodes that depend on it.
    pub fn reverse_topo_order(&self) -> Vec<usize> {
        let mut o = self.topo_order();
        o.reverse();
        o
    }

    /// For each node, its weight plus the heaviest chain of dependents after it: the time
    /// from starting this node to the end of the run if nothing else limited it.
    pub fn longest_remaining(&self, weight: impl Fn(&NodeSpec) -> f64) -> Vec<f64> {
        let mut rem = vec![0.0; self.len()];
        for &i in self.reverse_topo_order().iter() {
            let tail = self.dependents[i].iter().map(|&d| rem[d]).fold(0.0, f64::max);
            rem[i] = weight(&self.nodes[i]) + tail;
        }
        rem
    }

    /// The same for destroy, where a node's successors are its dependencies (less a
    /// container that deletes it: `destroy_frees`).
    pub fn longest_remaining_reverse(&self, weight: impl Fn(&NodeSpec) -> f64) -> Vec<f64> {
        let mut rem = vec![0.0; self.len()];
        for &i in self.topo_order().iter() {
            let tail = self.destroy_frees[i].iter().map(|&d| rem[d]).fold(0.0, f64::max);
            rem[i] = weight(&self.nodes[i]) + tail;
        }
        rem
    }

    /// The heaviest path of a destroy, in deletion order: its total weight and its keys.
    pub fn destroy_critical_path(&self, weight: impl Fn(&NodeSpec) -> f64) -> (f64, Vec<String>) {
        let rem = self.longest_remaining_reverse(&weight);
        let Some(mut i) = (0..self.len())
            .filter(|&i| self.destroy_after[i].is_empty())
            .max_by(|&a, &b| rem[a].total_cmp(&rem[b]))
        else {
            return (0.0, vec![]);
        };
        let total = rem[i];
        let mut path = vec![self.nodes[i].key.clone()];
        while let Some(&next) = self.destroy_frees[i]
            .iter()
            .max_by(|&&a, &&b| rem[a].total_cmp(&rem[b]))
        {
            i = next;
            path.push(self.nodes[i].key.clone());
        }
        (total, path)
    }

    /// The heaviest path through the graph: its total weight and its keys in order.
    pub fn critical_path(&self, weight: impl Fn(&NodeSpec) -> f64) -> (f64, Vec<String>) {
        let rem = self.longest_remaining(&weight);
        let Some(mut i) = (0..self.len())
            .filter(|&i| self.deps[i].is_empty())
            .max_by(|&a, &b| rem[a].total_cmp(&rem[b]))
        else {
            return (0.0, vec![]);
        };
        let total = rem[i];
        let mut path = vec![self.nodes[i].key.clone()];
        while let Some(&next) = self.dependents[i].iter().max_by(|&&a, &&b| rem[a].total_cmp(&rem[b])) {
            i = next;
            path.push(self.nodes[i].key.clone());
        }
        (total, path)
    }

    /// The subgraph of the given keys, keeping the edges between them and bridging through
    /// absent nodes so that transitive order is preserved (A -> x -> B stays A -> B).
    pub fn restrict(&self, keep: &BTreeSet<String>) -> Graph {
        let mut nodes = Vec::new();
        for n in &self.nodes {
            if !keep.contains(&n.key) {
                continue;
            }
            let mut deps = BTreeSet::new();
            let mut stack: Vec<usize> = self.deps[self.index[&n.key]].clone();
            let mut seen = BTreeSet::new();
            while let Some(d) = stack.pop() {
                if !seen.insert(d) {
                    continue;
                }
                if keep.contains(&self.nodes[d].key) {
                    deps.insert(self.nodes[d].key.clone());
                } else {
                    stack.extend(self.deps[d].iter().copied());
                }
            }
            let mut n = n.clone();
            n.deps = deps.into_iter().collect();
            nodes.push(n);
        }
        Graph::new(nodes).expect("a subgraph of a valid graph is valid")
    }

    pub fn keys(&self) -> BTreeMap<String, usize> {
        self.index.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::core::spec::{Kind, Props};

    pub fn node(key: &str, deps: &[&str]) -> NodeSpec {
        NodeSpec {
            key: key.into(),
            kind: Kind::Vpc,
            deps: deps.iter().map(|d| d.to_string()).collect(),
            props: Props::Vpc {
                cidr: "10.0.0.0/16".into(),
            },
        }
    }

    fn keys(g: &Graph, order: Vec<usize>) -> Vec<String> {
        order.into_iter().map(|i| g.node(i).key.clone()).collect()
    }

    #[test]
    fn topo_order_puts_dependencies_first() {
        let g = Graph::new(vec![
            node("c", &["b"]),
            node("b", &["a"]),
            node("a", &[]),
            node("d", &["a"]),
        ])
        .unwrap();
        assert_eq!(keys(&g, g.topo_order()), ["a", "b", "c", "d"]);
        assert_eq!(keys(&g, g.reverse_topo_order()), ["d", "c", "b", "a"]);
    }

    #[test]
    fn cycles_are_named() {
        let e = Graph::new(vec![
            node("a", &["c"]),
            node("b", &["a"]),
            node("c", &["b"]),
            node("d", &[]),
        ])
        .unwrap_err();
        assert_eq!(
            e,
            GraphError::Cycle(vec!["a".into(), "b".into(), "c".into(), "a".into()])
        );
        assert!(e.to_string().contains("a -> b -> c -> a"));
        let e = Graph::new(vec![node("a", &["a"])]).unwrap_err();
        assert!(matches!(e, GraphError::Cycle(_)));
    }

    #[test]
    fn missing_and_duplicate_nodes_are_refused() {
        assert_eq!(
            Graph::new(vec![node("a", &["zz"])]).unwrap_err(),
            GraphError::MissingDependency {
                node: "a".into(),
                dep: "zz".into()
            }
        );
        assert_eq!(
            Graph::new(vec![node("a", &[]), node("a", &[])]).unwrap_err(),
            GraphError::Duplicate("a".into())
        );
    }

    #[test]
    fn longest_chain_weights() {
        // a(1) -> b(10) -> c(1); a -> d(2)
        let g = Graph::new(vec![
            node("a", &[]),
            node("b", &["a"]),
            node("c", &["b"]),
            node("d", &["a"]),
        ])
        .unwrap();
        let w = |n: &NodeSpec| match n.key.as_str() {
            "b" => 10.0,
            "d" => 2.0,
            _ => 1.0,
        };
        let rem = g.longest_remaining(w);
        assert_eq!(rem[g.index_of("a").unwrap()], 12.0);
        assert_eq!(rem[g.index_of("d").unwrap()], 2.0);
        let (total, path) = g.critical_path(w);
        assert_eq!(total, 12.0);
        assert_eq!(path, ["a", "b", "c"]);
        let rrem = g.longest_remaining_reverse(w);
        assert_eq!(rrem[g.index_of("c").unwrap()], 12.0);
    }

    #[test]
    fn a_destroy_does_not_wait_for_what_aws_deletes_with_its_container() {
        let of = |key: &str, kind: Kind, deps: &[&str]| NodeSpec {
            kind,
            ..node(key, deps)
        };
        let g = Graph::new(vec![
            of("asg", Kind::AutoScalingGroup, &[]),
            of("policy", Kind::ScalingPolicy, &["asg"]),
            of("hook", Kind::LifecycleHook, &["asg"]),
            of("alarm", Kind::Alarm, &["policy"]),
            of("lt", Kind::LaunchTemplate, &[]),
            // Not a child of the template: the group waits for nothing here, the template for
            // the group.
            of("asg2", Kind::AutoScalingGroup, &["lt"]),
        ])
        .unwrap();
        let i = |k: &str| g.index_of(k).unwrap();
        let names = |v: &[usize]| v.iter().map(|&j| g.node(j).key.clone()).collect::<Vec<_>>();
        // Up keeps every edge; destroy drops policy -> asg and hook -> asg only.
        assert_eq!(names(g.dependents_of(i("asg"))), ["policy", "hook"]);
        assert!(g.destroy_after(i("asg")).is_empty());
        assert!(g.destroy_frees(i("policy")).is_empty());
        assert_eq!(names(g.destroy_after(i("policy"))), ["alarm"]);
        assert_eq!(names(g.destroy_frees(i("alarm"))), ["policy"]);
        assert_eq!(names(g.destroy_after(i("lt"))), ["asg2"]);
        let w = |n: &NodeSpec| if n.kind == Kind::AutoScalingGroup { 10.0 } else { 1.0 };
        // The group's delete starts at once: the heaviest chain is asg2 -> lt, 11.
        let (total, path) = g.destroy_critical_path(w);
        assert_eq!((total, path), (11.0, vec!["asg2".to_string(), "lt".to_string()]));
        assert_eq!(g.longest_remaining_reverse(w)[i("alarm")], 2.0);
    }

    #[test]
    fn restrict_bridges_absent_nodes() {
        let g = Graph::new(vec![node("a", &[]), node("b", &["a"]), node("c", &["b"])]).unwrap();
        let keep: BTreeSet<String> = ["a", "c"].iter().map(|s| s.to_string()).collect();
        let r = g.restrict(&keep);
        assert_eq!(r.get("c").unwrap().deps, ["a"]);
    }
}
