//! The moment the dashboard is usable: when `up`'s dashboard check passes (a healthy target
//! behind the load balancer). On the usable-early path (`spec::usable_early`) that is long
//! before the run ends, which waits for the database's Multi-AZ standby; the operator is
//! told at that moment (`Event::Usable`: URL and time since the run started) and again in
//! the final summary ("usable after 5m40s, complete after 12m10s").

use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::event::{Event, EventSink, ResourceStatus};
use super::spec::Kind;

/// Forwards every event and adds `Event::Usable` right after the dashboard check's
/// `ready` (or `updated`) event, whose id is the dashboard's URL.
pub struct UsableTracker {
    inner: Arc<dyn EventSink>,
    started: Instant,
    usable_ms: Mutex<Option<u64>>,
}

impl UsableTracker {
    pub fn new(inner: Arc<dyn EventSink>, started: Instant) -> Self {
        Self {
            inner,
            started,
            usable_ms: Mutex::new(None),
        }
    }

    /// When the dashboard became usable in this run, in ms since it started.
    pub fn usable_ms(&self) -> Option<u64> {
        *self.usable_ms.lock().unwrap()
    }
}

impl EventSink for UsableTracker {
    fn emit(&self, event: Event) {
        let url = match &event {
            Event::Resource {
                kind: Kind::DashboardCheck,
                status: ResourceStatus::Ready | ResourceStatus::Updated,
                id: Some(url),
                ..
            } => Some(url.clone()),
            _ => None,
        };
        self.inner.emit(event);
        if let Some(url) = url {
            let elapsed_ms = self.started.elapsed().as_millis() as u64;
            self.usable_ms.lock().unwrap().get_or_insert(elapsed_ms);
            self.inner.emit(Event::Usable { url, elapsed_ms });
        }
    }
}

/// `5m40s`, `42s`, `1h02m03s`: how the summary writes a duration.
pub fn duration_text(ms: u64) -> String {
    let s = (ms + 500) / 1000;
    match (s / 3600, (s / 60) % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, min, sec) => format!("{min}m{sec:02}s"),
        (h, min, sec) => format!("{h}h{min:02}m{sec:02}s"),
    }
}

/// The summary's timing line: "usable after X, complete after Y" when the dashboard became
/// usable in this run.
pub fn summary(usable_ms: Option<u64>, complete_ms: u64) -> Option<String> {
    usable_ms.map(|u| {
        format!(
            "usable after {}, complete after {}",
            duration_text(u),
            duration_text(complete_ms)
        )
    })
}

/// Which way `up` builds the database, as `plan` tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbPath {
    /// `multi_az = false`: one zone, nothing to convert.
    SingleAz,
    /// `usable_early = false`: created Multi-AZ; the dashboard waits for the standby.
    MultiAzAtCreate,
    /// Created Single-AZ; the dashboard goes on once it is available; then converted.
    UsableEarly,
    /// The database exists: kept as it is; the standby node only confirms Multi-AZ (or
    /// converts it, if it is Single-AZ).
    Existing,
}

impl DbPath {
    /// `creates`: this run creates the database (it is neither recorded nor found).
    pub fn of(multi_az: bool, usable_early: bool, creates: bool) -> Self {
        match (multi_az, usable_early, creates) {
            (false, _, _) => DbPath::SingleAz,
            (true, false, _) => DbPath::MultiAzAtCreate,
            (true, true, true) => DbPath::UsableEarly,
            (true, true, false) => DbPath::Existing,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            DbPath::SingleAz => "Single-AZ database (database.multi_az = false)",
            DbPath::MultiAzAtCreate => {
                "Multi-AZ from the create (database.usable_early = false): the dashboard waits for the standby"
            }
            DbPath::UsableEarly => {
                "usable early: the database is created Single-AZ, the dashboard serves as soon as it is available, then `up` converts it to Multi-AZ in place (db-standby) and waits for the standby"
            }
            DbPath::Existing => {
                "existing database: kept as it is; db-standby only confirms Multi-AZ (usable early applies to a database this run creates)"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::Recorder;

    fn resource(key: &str, kind: Kind, status: ResourceStatus, id: Option<&str>) -> Event {
        Event::Resource {
            key: key.into(),
            kind,
            status,
            elapsed_ms: 1,
            id: id.map(String::from),
            message: None,
        }
    }

    #[test]
    fn the_dashboard_check_passing_is_the_usable_moment() {
        let rec = Arc::new(Recorder::default());
        let t = UsableTracker::new(rec.clone(), Instant::now());
        t.emit(resource("db", Kind::DbInstance, ResourceStatus::Ready, Some("pi-db")));
        t.emit(resource(
            "dashboard",
            Kind::DashboardCheck,
            ResourceStatus::Waiting,
            Some("http://x"),
        ));
        assert_eq!(t.usable_ms(), None);
        t.emit(resource(
            "dashboard",
            Kind::DashboardCheck,
            ResourceStatus::Ready,
            Some("http://pi-alb.example"),
        ));
        let usable = t.usable_ms().expect("usable");
        t.emit(resource(
            "db-standby",
            Kind::DbStandby,
            ResourceStatus::Ready,
            Some("pi-db/multi-az"),
        ));
        let events = rec.events();
        assert_eq!(events.len(), 5);
        // Right after the check's own event, before what follows.
        assert!(
            matches!(&events[3], Event::Usable { url, elapsed_ms } if url == "http://pi-alb.example" && *elapsed_ms == usable)
        );
        let json = serde_json::to_value(&events[3]).unwrap();
        assert_eq!(json["event"], "usable");
        assert_eq!(json["url"], "http://pi-alb.example");
    }

    #[test]
    fn the_database_path_follows_the_switches_and_whether_this_run_creates_it() {
        assert_eq!(DbPath::of(true, true, true), DbPath::UsableEarly);
        assert_eq!(DbPath::of(true, true, false), DbPath::Existing);
        assert_eq!(DbPath::of(true, false, true), DbPath::MultiAzAtCreate);
        assert_eq!(DbPath::of(false, true, true), DbPath::SingleAz);
        assert!(DbPath::UsableEarly.describe().contains("Single-AZ"));
        assert_eq!(serde_json::to_value(DbPath::UsableEarly).unwrap(), "usable_early");
    }

    #[test]
    fn durations_read_as_minutes_and_seconds() {
        assert_eq!(duration_text(42_000), "42s");
        assert_eq!(duration_text(340_400), "5m40s");
        assert_eq!(duration_text(3_723_000), "1h02m03s");
        assert_eq!(
            summary(Some(340_000), 1_150_000).as_deref(),
            Some("usable after 5m40s, complete after 19m10s")
        );
        assert_eq!(summary(None, 1_150_000), None);
    }
}
