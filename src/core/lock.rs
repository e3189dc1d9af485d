//! Who holds a deployment's lock and whether that holder is still alive: the document the
//! local lock file and the S3 lock object hold, and the judgement made from it. Pure: the
//! facts about this machine (host, boot, pid namespace, which pids exist) are given.
//!
//! A lock is never removed because it looks stale: a second run is refused (exit 3) and told
//! who holds it, since when, when it last showed it was alive, and, when it looks stale,
//! how to remove it (`pi-deploy force-unlock LOCK_ID`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A run holding an S3 lock rewrites it this often, so that its age shows it is alive.
pub const REFRESH_EVERY: Duration = Duration::from_secs(20);

/// An S3 lock not rewritten for this long is reported as stale (six missed refreshes).
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// Which kernel and pid namespace a process runs in: two processes can only tell whether
/// the other's pid exists when these are equal (another host, another boot or another
/// container has its own pids).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub boot_id: String,
    pub pid_namespace: String,
}

/// The lock document: who took the lock, where, for which command, and when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Names this hold; `force-unlock` must be given it, so it cannot remove a newer lock.
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub user: String,
    pub host: String,
    pub pid: u32,
    pub command: String,
    /// Older local lock files called it `started_at`.
    #[serde(alias = "started_at")]
    pub created_at: DateTime<Utc>,
    /// The holder's clock at its last refresh (S3 locks; the age itself is taken from the
    /// object's Last-Modified, S3's clock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refreshed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
    #[serde(default)]
    pub version: String,
}

impl LockInfo {
    pub fn describe(&self) -> String {
        let user = if self.user.is_empty() {
            String::new()
        } else {
            format!("{} ", self.user)
        };
        let id = if self.id.is_empty() {
            "no lock id".to_string()
        } else {
            format!("lock id {}", self.id)
        };
        format!(
            "`{}` run by {user}on host {} (pid {}), {id}",
            self.command, self.host, self.pid
        )
    }

    pub fn parse(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = serde_json::to_vec_pretty(self).expect("the lock document serialises");
        v.push(b'\n');
        v
    }
}

/// What is known of a lock's holder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// It refreshed the lock recently, or its process exists on this machine.
    Alive,
    /// Its process is on this machine (same boot and pid namespace) and no longer exists.
    ProcessGone,
    /// It has not refreshed the lock for longer than `STALE_AFTER`.
    Silent(Duration),
    /// The lock document cannot be read (not ours, or damaged).
    Unknown,
}

impl Liveness {
    pub fn is_stale(&self) -> bool {
        matches!(self, Liveness::ProcessGone | Liveness::Silent(_))
    }
}

/// Judges a held lock. `since_write` is how long ago the lock was last written (its
/// creation or its last refresh); `here` is this process's machine; `pid_exists` answers
/// for pids of this machine only.
pub fn judge(
    info: Option<&LockInfo>,
    since_write: Option<Duration>,
    here: Option<&Machine>,
    pid_exists: impl Fn(u32) -> bool,
) -> Liveness {
    let Some(info) = info else {
        return Liveness::Unknown;
    };
    let same_machine = matches!((&info.machine, here), (Some(a), Some(b)) if a == b);
    if same_machine && !pid_exists(info.pid) {
        return Liveness::ProcessGone;
    }
    match since_write {
        Some(age) if age > STALE_AFTER => Liveness::Silent(age),
        _ => Liveness::Alive,
    }
}

/// `3 min 12 s`, `45 s`, `2 h 5 min`, `3 d 4 h`.
pub fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        3600..86400 => format!("{} h {} min", s / 3600, (s % 3600) / 60),
        _ => format!("{} d {} h", s / 86400, (s % 86400) / 3600),
    }
}

/// The refusal text for a held lock: who, since when, how fresh, and whether it looks stale.
pub fn held_message(
    deployment: &str,
    info: Option<&LockInfo>,
    since_write: Option<Duration>,
    now: DateTime<Utc>,
    liveness: &Liveness,
) -> String {
    let who = match info {
        Some(i) => {
            let age = (now - i.created_at).to_std().unwrap_or_default();
            format!(
                "{}, taken {} ago ({})",
                i.describe(),
                human(age),
                i.created_at.format("%Y-%m-%d %H:%M:%S UTC")
            )
        }
        None => "a holder whose lock document cannot be read".to_string(),
    };
    let fresh = match (since_write, liveness) {
        (_, Liveness::ProcessGone) => {
            "; its process no longer exists on this machine: the lock looks stale".to_string()
        }
        (_, Liveness::Silent(age)) => format!(
            "; not refreshed for {} (a live run refreshes it every {}): the lock looks stale",
            human(*age),
            human(REFRESH_EVERY)
        ),
        (Some(age), _) => format!("; last written {} ago", human(age)),
        (None, _) => String::new(),
    };
    format!("deployment `{deployment}` is locked by {who}{fresh}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(machine: Option<Machine>) -> LockInfo {
        LockInfo {
            id: "0b5e".into(),
            user: "alice".into(),
            host: "ci-7".into(),
            pid: 42,
            command: "up".into(),
            created_at: "2026-01-01T10:00:00Z".parse().unwrap(),
            refreshed_at: None,
            machine,
            version: "0.1.0".into(),
        }
    }

    fn here() -> Machine {
        Machine {
            boot_id: "b1".into(),
            pid_namespace: "pid:[4026531836]".into(),
        }
    }

    #[test]
    fn a_recent_lock_is_alive_and_an_old_one_silent() {
        let i = info(None);
        let fresh = judge(Some(&i), Some(Duration::from_secs(5)), Some(&here()), |_| false);
        assert_eq!(fresh, Liveness::Alive, "another machine's pid is not checked");
        let edge = judge(Some(&i), Some(STALE_AFTER), Some(&here()), |_| false);
        assert_eq!(edge, Liveness::Alive);
        let old = judge(Some(&i), Some(STALE_AFTER + Duration::from_secs(1)), None, |_| true);
        assert!(matches!(old, Liveness::Silent(_)) && old.is_stale());
    }

    #[test]
    fn a_dead_process_of_this_machine_is_stale_at_once() {
        let i = info(Some(here()));
        assert_eq!(
            judge(Some(&i), Some(Duration::from_secs(1)), Some(&here()), |pid| pid != 42),
            Liveness::ProcessGone
        );
        assert_eq!(
            judge(Some(&i), Some(Duration::from_secs(1)), Some(&here()), |_| true),
            Liveness::Alive
        );
        // Another boot or another container: its pids are not ours to check.
        let mut other = here();
        other.pid_namespace = "pid:[1]".into();
        assert_eq!(
            judge(Some(&i), Some(Duration::from_secs(1)), Some(&other), |_| false),
            Liveness::Alive
        );
        assert_eq!(judge(None, None, Some(&here()), |_| false), Liveness::Unknown);
    }

    #[test]
    fn the_message_names_the_holder_its_age_and_staleness() {
        let i = info(None);
        let now: DateTime<Utc> = "2026-01-01T10:03:12Z".parse().unwrap();
        let m = held_message("pi", Some(&i), Some(Duration::from_secs(7)), now, &Liveness::Alive);
        for part in [
            "`pi`",
            "`up`",
            "alice",
            "ci-7",
            "pid 42",
            "lock id 0b5e",
            "3 min 12 s ago",
            "7 s ago",
        ] {
            assert!(m.contains(part), "{part}: {m}");
        }
        assert!(!m.contains("stale"), "{m}");
        let silent = Liveness::Silent(Duration::from_secs(300));
        let m = held_message("pi", Some(&i), Some(Duration::from_secs(300)), now, &silent);
        assert!(m.contains("not refreshed for 5 min 0 s") && m.contains("stale"), "{m}");
    }

    #[test]
    fn old_local_lock_files_still_parse() {
        let old = br#"{"pid":999999,"host":"gone","command":"up","started_at":"2026-01-01T00:00:00Z"}"#;
        let i = LockInfo::parse(old).unwrap();
        assert_eq!((i.pid, i.id.as_str()), (999999, ""));
        assert!(i.describe().contains("no lock id"));
        assert_eq!(
            LockInfo::parse(&info(Some(here())).to_bytes()),
            Some(info(Some(here())))
        );
        assert_eq!(LockInfo::parse(b"garbage"), None);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human(Duration::from_secs(45)), "45 s");
        assert_eq!(human(Duration::from_secs(192)), "3 min 12 s");
        assert_eq!(human(Duration::from_secs(7500)), "2 h 5 min");
        assert_eq!(human(Duration::from_secs(273600)), "3 d 4 h");
    }
}
