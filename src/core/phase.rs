//! Phases of `up`, for the "how long did each part take" lines: a tier is done when the last
//! of its resources is ready. Tiers overlap in time (the executor runs them in parallel), so a
//! phase reports the time from the start of the run to its last resource.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::event::{Event, EventSink, ResourceStatus};
use super::spec::{Kind, NodeSpec};

/// The phase a kind belongs to. IAM roles count with side-loading (the Lambda's and the
/// instances' roles are built together, early).
pub fn phase_of(kind: Kind) -> &'static str {
    kind.info().phase
}

/// Which resources each phase still waits for.
#[derive(Debug, Default)]
pub struct Progress {
    phase_of_key: HashMap<String, &'static str>,
    left: BTreeMap<&'static str, usize>,
}

impl Progress {
    /// Phases with nothing to do in this run are not reported.
    pub fn new<'a>(nodes: impl IntoIterator<Item = &'a NodeSpec>, already_ready: impl Fn(&str) -> bool) -> Self {
        let mut p = Progress::default();
        for n in nodes {
            if already_ready(&n.key) {
                continue;
            }
            let phase = phase_of(n.kind);
            p.phase_of_key.insert(n.key.clone(), phase);
            *p.left.entry(phase).or_default() += 1;
        }
        p
    }

    /// `key` became ready: the phase it completes, if any.
    pub fn ready(&mut self, key: &str) -> Option<&'static str> {
        let phase = self.phase_of_key.remove(key)?;
        let left = self.left.get_mut(phase)?;
        *left -= 1;
        (*left == 0).then_some(phase)
    }
}

/// Forwards every event and adds `Event::Phase` when a phase's last resource is ready.
pub struct PhaseTracker {
    inner: Arc<dyn EventSink>,
    started: Instant,
    progress: Mutex<Progress>,
}

impl PhaseTracker {
    pub fn new(inner: Arc<dyn EventSink>, started: Instant, progress: Progress) -> Self {
        Self {
            inner,
            started,
            progress: Mutex::new(progress),
        }
    }
}

impl EventSink for PhaseTracker {
    fn emit(&self, event: Event) {
        let done = match &event {
            Event::Resource {
                key,
                status: ResourceStatus::Ready,
                ..
            } => self.progress.lock().unwrap().ready(key),
            _ => None,
        };
        self.inner.emit(event);
        if let Some(name) = done {
            self.inner.emit(Event::Phase {
                name: name.to_string(),
                elapsed_ms: self.started.elapsed().as_millis() as u64,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::Recorder;
    use crate::core::spec::Props;

    fn node(key: &str, kind: Kind) -> NodeSpec {
        NodeSpec {
            key: key.into(),
            kind,
            deps: vec![],
            props: Props::Recorded,
        }
    }

    #[test]
    fn every_kind_has_a_phase() {
        for &k in Kind::ALL {
            assert!(!phase_of(k).is_empty());
        }
        assert_eq!(phase_of(Kind::DashboardCheck), "dashboard healthy");
        assert_eq!(phase_of(Kind::NatGateway), "network");
        assert_eq!(phase_of(Kind::DbEndpoint), "data");
        assert_eq!(phase_of(Kind::AutoScalingGroup), "compute");
    }

    #[test]
    fn a_phase_is_done_with_its_last_resource_and_only_once() {
        let nodes = [
            node("vpc", Kind::Vpc),
            node("igw", Kind::InternetGateway),
            node("db", Kind::DbInstance),
        ];
        let mut p = Progress::new(&nodes, |_| false);
        assert_eq!(p.ready("vpc"), None);
        assert_eq!(p.ready("db"), Some("data"));
        assert_eq!(p.ready("igw"), Some("network"));
        assert_eq!(p.ready("igw"), None);
        assert_eq!(p.ready("unknown"), None);
    }

    #[test]
    fn phases_finished_before_the_run_are_not_reported() {
        let nodes = [node("vpc", Kind::Vpc), node("dashboard", Kind::DashboardCheck)];
        let mut p = Progress::new(&nodes, |k| k == "vpc");
        assert_eq!(p.ready("vpc"), None);
        assert_eq!(p.ready("dashboard"), Some("dashboard healthy"));
    }

    #[test]
    fn the_tracker_forwards_events_and_adds_phases() {
        let rec = Arc::new(Recorder::default());
        let nodes = [node("vpc", Kind::Vpc)];
        let t = PhaseTracker::new(rec.clone(), Instant::now(), Progress::new(&nodes, |_| false));
        let ev = |status| Event::Resource {
            key: "vpc".into(),
            kind: Kind::Vpc,
            status,
            elapsed_ms: 1,
            id: None,
            message: None,
        };
        t.emit(ev(ResourceStatus::Created));
        t.emit(ev(ResourceStatus::Ready));
        let got = rec.events();
        assert_eq!(got.len(), 3);
        assert!(matches!(&got[2], Event::Phase { name, .. } if name == "network"));
    }
}
