//! The one wait helper and the one retry policy.
//!
//! SDK waiters poll at the service model's fixed delays (RDS: 30-120 s), which overshoots
//! completion on real AWS. This helper polls on a `Backoff`: for a transition the latency
//! model times (`Backoff::expecting`), first at its expected end, then tighter; for
//! anything else at once, then with growing, jittered sleeps up to a cap. It gives up at a
//! deadline with a message that names what it waited for and the last state it saw. Polling
//! errors that are transient (throttling, 5xx, a NotFound right after our own create) count
//! as "not yet".
//!
//! Real-AWS cadence of `expecting(t, ..)` with median M (`core::latency::Transition`): no
//! read before M when the transition started in this run (the create or delete answer
//! already said it is under way), else one read at once; then reads every M/20 clamped to
//! 1..15 s, each sleep half as long again up to 15 s. So at most one read per second per
//! waiter (the NAT: 100 s, then every 5 s; RDS Multi-AZ: 960 s, then every 15 s), against
//! the EC2 and RDS API rate limits of tens of reads per second per account.
//!
//! Time scale: the emulator's latency mode (test builds, src/aws/fault/latency.rs) shows
//! AWS's transitions for their model time multiplied by a factor (e.g. 1/100) and sets the
//! same factor here with `set_time_scale`, so every sleep of this module shrinks alike and an
//! emulator run is a real run in fast motion (a fault run without it: `fault::FAULT_TIME_SCALE`).
//! It is 1 otherwise; deadlines are never scaled.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use crate::core::latency::Transition;
use crate::core::resource::{ErrorClass, ResourceError};

/// How often to poll: at once (if `at_once`), then after `first` (or at `first_at`), then
/// after `then`, each later sleep `factor` times the one before, up to `max`. Sleeps are
/// jittered, except the one that ends at `first_at`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub then: Duration,
    pub max: Duration,
    pub factor: f64,
    pub at_once: bool,
    /// The first sleep ends at this moment, a transition's expected end (early would read it
    /// unfinished, late only adds to the wait).
    pub first_at: Option<Instant>,
}

impl Backoff {
    /// For things that take seconds (EC2 primitives, IAM).
    pub const QUICK: Backoff = Backoff {
        first: Duration::from_millis(500),
        then: Duration::from_millis(800),
        max: Duration::from_secs(5),
        factor: 1.6,
        at_once: true,
        first_at: None,
    };
    /// For things that take minutes and that the latency model does not time: 2 s rising
    /// to 15 s.
    pub const SLOW: Backoff = Backoff {
        first: Duration::from_secs(2),
        then: Duration::from_secs(3),
        max: Duration::from_secs(15),
        factor: 1.5,
        at_once: true,
        first_at: None,
    };

    /// For a transition the latency model times (see the module doc): when it `started` in
    /// this run, the first poll is at its expected end; otherwise (a resumed run, a resource
    /// found already changing) one poll at once. Then every twentieth of the expected time
    /// (1 s to 15 s), growing by half to 15 s.
    pub fn expecting(t: Transition, started: Option<Instant>) -> Backoff {
        let expected = t.expected();
        let tight = (expected / 20).clamp(Duration::from_secs(1), Duration::from_secs(15));
        let tail = Backoff {
            first: tight,
            then: tight.mul_f64(1.5),
            max: Duration::from_secs(15),
            factor: 1.5,
            at_once: true,
            first_at: None,
        };
        match started {
            Some(at) => Backoff {
                then: tight,
                at_once: false,
                first_at: Some(at + scaled(expected)),
                ..tail
            },
            None => tail,
        }
    }

    /// One poll at once all the same, then as before: for a wait that may have nothing to
    /// wait for (a delete answer does not say whether the resource is already gone), or an
    /// implementation that reports a state in the create answer that its first read no
    /// longer shows.
    pub fn look_first(self) -> Backoff {
        Backoff { at_once: true, ..self }
    }
}

/// Up to +/-20 % so that many waiters started together do not poll in lockstep.
fn jittered(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let f = 0.8 + (nanos % 1000) as f64 / 2500.0;
    d.mul_f64(f)
}

static TIME_SCALE: OnceLock<f64> = OnceLock::new();

/// Shrink every sleep of this module by `factor` for the rest of the process (the emulator's
/// latency mode; see the module doc). The first call wins.
pub fn set_time_scale(factor: f64) {
    let _ = TIME_SCALE.set(factor);
}

/// 1 unless the emulator's latency mode set it.
pub fn time_scale() -> f64 {
    TIME_SCALE.get().copied().unwrap_or(1.0)
}

fn scaled(d: Duration) -> Duration {
    let scale = time_scale();
    if scale == 1.0 { d } else { d.mul_f64(scale) }
}

async fn sleep(d: Duration) {
    tokio::time::sleep(scaled(d)).await;
}

/// When this process started a transition, by resource id: a kind's create or delete notes
/// it, so the wait that follows (maybe in another node, like the database endpoint's) polls
/// first at the transition's expected end instead of at once.
#[derive(Debug, Default)]
pub struct Started(Mutex<HashMap<String, Instant>>);

impl Started {
    pub fn note(&self, id: &str) {
        self.0.lock().unwrap().insert(id.to_string(), Instant::now());
    }
    pub fn get(&self, id: &str) -> Option<Instant> {
        self.0.lock().unwrap().get(id).copied()
    }
}

/// What one poll saw.
#[derive(Debug)]
pub enum Poll<T> {
    Ready(T),
    /// Not yet; the string is the state seen (for progress and the timeout message).
    Pending(String),
    /// A state it will never leave (`failed`, `deleted` while waiting for `available`).
    Failed(String),
}

fn retryable_while_polling(e: &ResourceError) -> bool {
    matches!(e.class, ErrorClass::Throttled | ErrorClass::Transient)
}

/// Poll until ready, failed or past the deadline.
pub async fn wait_for<T, F, Fut>(
    what: &str,
    deadline: Duration,
    backoff: Backoff,
    mut poll: F,
) -> Result<T, ResourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll<T>, ResourceError>>,
{
    let start = Instant::now();
    let mut interval = backoff.first;
    let mut first = true;
    let mut last: String;
    if !backoff.at_once {
        match backoff.first_at {
            Some(at) => tokio::time::sleep_until(at.min(start + deadline)).await,
            None => sleep(interval.min(deadline)).await,
        }
        interval = backoff.then;
        first = false;
    }
    loop {
        match poll().await {
            Ok(Poll::Ready(v)) => return Ok(v),
            Ok(Poll::Failed(state)) => {
                return Err(ResourceError::new(
                    ErrorClass::Failed,
                    format!("{what}: reached `{state}` and will not recover"),
                ));
            }
            Ok(Poll::Pending(state)) => last = state,
            Err(e) if retryable_while_polling(&e) => last = format!("error {}", e.code.as_deref().unwrap_or("?")),
            Err(e) => return Err(e),
        }
        if start.elapsed() >= deadline {
            return Err(ResourceError::new(
                ErrorClass::Timeout,
                format!("{what}: still `{last}` after {}s", deadline.as_secs()),
            )
            .with_hint("AWS may just be slow: run the command again to keep waiting; it resumes where it stopped"));
        }
        let left = deadline.saturating_sub(start.elapsed()) + Duration::from_millis(1);
        match backoff.first_at {
            Some(at) if first => tokio::time::sleep_until(at.min(start + left)).await,
            _ => sleep(jittered(interval).min(left)).await,
        }
        interval = next(&backoff, interval, &mut first);
    }
}

/// The sleep after `current`: `then` after the first, then `factor` times longer up to `max`.
fn next(backoff: &Backoff, current: Duration, first: &mut bool) -> Duration {
    if std::mem::take(first) {
        backoff.then.min(backoff.max)
    } else {
        current.mul_f64(backoff.factor).min(backoff.max)
    }
}

/// Retry `op` while it fails with one of `classes` (plus throttling and transient errors),
/// within `budget`. Used for eventual consistency (IAM propagation, NotFound right after a
/// create) and for deletes refused while something still uses the resource.
pub async fn retry<T, F, Fut>(
    what: &str,
    budget: Duration,
    backoff: Backoff,
    classes: &[ErrorClass],
    mut op: F,
) -> Result<T, ResourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ResourceError>>,
{
    let start = Instant::now();
    let mut interval = backoff.first;
    let mut first = true;
    let mut attempts = 0u32;
    loop {
        attempts += 1;
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if classes.contains(&e.class) || retryable_while_polling(&e) => {
                if start.elapsed() >= budget {
                    let mut e = e;
                    e.message = format!(
                        "{what}: gave up after {attempts} attempts in {}s: {}",
                        budget.as_secs(),
                        e.message
                    );
                    return Err(e);
                }
                tracing::debug!(what, attempts, code = e.code.as_deref().unwrap_or(""), "retrying");
            }
            Err(e) => return Err(e),
        }
        sleep(jittered(interval)).await;
        interval = next(&backoff, interval, &mut first);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn script<T: Clone>(
        steps: Vec<Result<Poll<T>, ResourceError>>,
    ) -> impl FnMut() -> std::future::Ready<Result<Poll<T>, ResourceError>>
    where
        Poll<T>: Clone,
    {
        // The last step repeats forever.
        let steps = Mutex::new(steps);
        move || {
            let mut s = steps.lock().unwrap();
            let next = if s.len() > 1 { s.remove(0) } else { clone_step(&s[0]) };
            std::future::ready(next)
        }
    }

    fn clone_step<T: Clone>(s: &Result<Poll<T>, ResourceError>) -> Result<Poll<T>, ResourceError> {
        match s {
            Ok(p) => Ok(p.clone()),
            Err(e) => Err(e.clone()),
        }
    }

    impl<T: Clone> Clone for Poll<T> {
        fn clone(&self) -> Self {
            match self {
                Poll::Ready(v) => Poll::Ready(v.clone()),
                Poll::Pending(s) => Poll::Pending(s.clone()),
                Poll::Failed(s) => Poll::Failed(s.clone()),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pending_pending_available() {
        let start = Instant::now();
        let v = wait_for(
            "nat",
            Duration::from_secs(300),
            Backoff::SLOW,
            script(vec![
                Ok(Poll::Pending("pending".into())),
                Ok(Poll::Pending("pending".into())),
                Ok(Poll::Ready(7)),
            ]),
        )
        .await
        .unwrap();
        assert_eq!(v, 7);
        // Two sleeps: ~2 s and ~3 s (with jitter), far below the SDK waiter's fixed delays.
        assert!(start.elapsed() < Duration::from_secs(7), "{:?}", start.elapsed());
    }

    #[tokio::test(start_paused = true)]
    async fn first_poll_is_immediate() {
        let start = Instant::now();
        wait_for(
            "x",
            Duration::from_secs(10),
            Backoff::SLOW,
            script(vec![Ok(Poll::Ready(()))]),
        )
        .await
        .unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    /// Records when each poll happened; ready at the `ready_at`-th poll (1-based).
    async fn polls_until(backoff: Backoff, ready_at: usize) -> Vec<Duration> {
        let start = Instant::now();
        let times = Mutex::new(Vec::new());
        wait_for("x", Duration::from_secs(3600), backoff, || {
            let mut t = times.lock().unwrap();
            t.push(start.elapsed());
            std::future::ready(Ok(if t.len() >= ready_at {
                Poll::Ready(())
            } else {
                Poll::Pending("pending".into())
            }))
        })
        .await
        .unwrap();
        times.into_inner().unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_transition_started_here_is_first_read_at_its_expected_end_then_tighter() {
        // The NAT gateway: 100 s expected, then every 5 s (jittered +/-20 %), growing.
        let polls = polls_until(Backoff::expecting(Transition::NatCreate, Some(Instant::now())), 3).await;
        assert_eq!(polls[0], Duration::from_secs(100), "{polls:?}");
        let gap = polls[1] - polls[0];
        assert!(
            gap >= Duration::from_secs(4) && gap <= Duration::from_secs(6),
            "{polls:?}"
        );
        let gap2 = polls[2] - polls[1];
        assert!(
            gap2 >= Duration::from_secs(6) && gap2 <= Duration::from_secs(9),
            "{polls:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn time_gone_since_the_start_counts_and_an_unknown_start_is_read_at_once() {
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(900)).await;
        let db = Transition::DbCreate { multi_az: true };
        let polls = polls_until(Backoff::expecting(db, Some(started)), 1).await;
        assert_eq!(polls, [Duration::from_secs(60)]);
        // Long past the expected end: read at once.
        let polls = polls_until(Backoff::expecting(Transition::NatCreate, Some(started)), 1).await;
        assert_eq!(polls, [Duration::ZERO]);
        // Unknown start (a resumed run): at once, then every 15 s at most for RDS.
        let polls = polls_until(Backoff::expecting(db, None), 4).await;
        assert_eq!(polls[0], Duration::ZERO);
        assert!(
            polls.windows(2).all(|w| w[1] - w[0] <= Duration::from_secs(18)),
            "{polls:?}"
        );
        // Short transitions are never read more than about once a second.
        let polls = polls_until(Backoff::expecting(Transition::FileSystemCreate, None), 4).await;
        assert!(
            polls.windows(2).all(|w| w[1] - w[0] >= Duration::from_millis(800)),
            "{polls:?}"
        );
    }

    #[test]
    fn started_transitions_are_remembered_by_id() {
        let s = Started::default();
        assert_eq!(s.get("nat-1"), None);
        s.note("nat-1");
        assert!(s.get("nat-1").is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn failed_state_is_an_error() {
        let e = wait_for::<(), _, _>(
            "nat",
            Duration::from_secs(300),
            Backoff::SLOW,
            script(vec![
                Ok(Poll::Pending("pending".into())),
                Ok(Poll::Failed("failed".into())),
            ]),
        )
        .await
        .unwrap_err();
        assert_eq!(e.class, ErrorClass::Failed);
        assert!(e.message.contains("failed"));
    }

    #[tokio::test(start_paused = true)]
    async fn never_ready_hits_the_deadline_with_the_last_state() {
        let start = Instant::now();
        let e = wait_for::<(), _, _>(
            "the database",
            Duration::from_secs(60),
            Backoff::SLOW,
            script(vec![Ok(Poll::Pending("creating".into()))]),
        )
        .await
        .unwrap_err();
        assert_eq!(e.class, ErrorClass::Timeout);
        assert!(
            e.message.contains("the database") && e.message.contains("creating"),
            "{}",
            e.message
        );
        let took = start.elapsed();
        assert!(
            took >= Duration::from_secs(60) && took < Duration::from_secs(62),
            "{took:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_while_polling_is_not_yet() {
        let v = wait_for(
            "x",
            Duration::from_secs(60),
            Backoff::QUICK,
            script(vec![
                Err(ResourceError::new(ErrorClass::Throttled, "slow down")),
                Ok(Poll::Ready(1)),
            ]),
        )
        .await
        .unwrap();
        assert_eq!(v, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_until_dependency_released() {
        let n = Mutex::new(0);
        let v = retry(
            "delete sg",
            Duration::from_secs(600),
            Backoff::QUICK,
            &[ErrorClass::InUse],
            || {
                let mut c = n.lock().unwrap();
                *c += 1;
                std::future::ready(if *c <= 3 {
                    Err(ResourceError::new(ErrorClass::InUse, "DependencyViolation"))
                } else {
                    Ok(*c)
                })
            },
        )
        .await
        .unwrap();
        assert_eq!(v, 4);
    }

    #[tokio::test(start_paused = true)]
    async fn retry_gives_up_at_the_budget_and_other_errors_pass_through() {
        let e = retry::<(), _, _>(
            "delete sg",
            Duration::from_secs(30),
            Backoff::QUICK,
            &[ErrorClass::InUse],
            || std::future::ready(Err(ResourceError::new(ErrorClass::InUse, "DependencyViolation"))),
        )
        .await
        .unwrap_err();
        assert!(e.message.contains("gave up"), "{}", e.message);
        let e = retry::<(), _, _>(
            "x",
            Duration::from_secs(30),
            Backoff::QUICK,
            &[ErrorClass::InUse],
            || std::future::ready(Err(ResourceError::new(ErrorClass::Other, "denied"))),
        )
        .await
        .unwrap_err();
        assert_eq!(e.message, "denied");
    }
}
