//! The one wait helper (pure: no SDK, no I/O; `aws::wait` re-exports it beside the one
//! retry policy, and `core::upgrade` waits with it).
//!
//! SDK waiters poll at the service model's fixed delays (RDS: 30-120 s), which overshoots
//! completion on real AWS. This helper polls on a `Backoff`: for a transition the latency
//! model times (`Backoff::expecting`), early and then tighter towards its expected end; for
//! anything else at once, then with growing, jittered sleeps up to a cap. It gives up at a
//! deadline with a message that names what it waited for and the last state it saw. Polling
//! errors that are transient (throttling, 5xx, a NotFound right after our own create) count
//! as "not yet".
//!
//! Cadence of `expecting(t, started)` with the model's median M (`core::latency::Transition`)
//! when the transition started in this run (its create or delete answer said it is under
//! way): a read every half second for the first 3 s (an emulator that shows its states for a
//! couple of seconds: a 2 s one is seen by 2.05 s), then each sleep a third of
//! the time gone since the start, so a transition that ends early (a fast day on AWS) is seen
//! within a third of its duration; each read comes up to a tenth of its step after its
//! planned time (jitter later only, not carried into the plan); never sleeping
//! past halfway to M, so the reads tighten towards M; from M on, every M/20 clamped to
//! 1..15 s, growing by half up to 15 s. The reads on the ramp are planned from the
//! transition's start (each a step after the previous one's planned time, not after its
//! answer), so a slow answer does not push the later reads back. A transition found under
//! way (a resumed run) is read at once, then as from M on; a delete that this run started
//! is not read at once (it has just answered that the delete began), but on the ramp. Reading first at M, as this helper once did, made a run wait
//! the model's 960 s for a database an emulator had ready in two. RDS Multi-AZ (960 s) is
//! read about 30 times; the NAT (100 s) about 20: at most two reads per second per waiter,
//! against the EC2 and RDS API rate limits of tens of reads per second per account.
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

use super::latency::Transition;
use super::resource::{ErrorClass, ResourceError};

/// How often to poll: at once (if `at_once`), then after `first` (or on `expect`'s ramp
/// while it lasts), then after `then`, each later sleep `factor` times the one before, up to
/// `max`. Sleeps are jittered.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub then: Duration,
    pub max: Duration,
    pub factor: f64,
    pub at_once: bool,
    /// A transition started at `.0`, expected to last `.1` (model time): until then, sleeps
    /// follow `ramp`.
    pub expect: Option<(Instant, Duration)>,
}

impl Backoff {
    /// For things that take seconds (EC2 primitives, IAM).
    pub const QUICK: Backoff = Backoff {
        first: Duration::from_millis(500),
        then: Duration::from_millis(800),
        max: Duration::from_secs(5),
        factor: 1.6,
        at_once: true,
        expect: None,
    };
    /// For things that take minutes and that the latency model does not time: at once, then
    /// 1 s rising by half to 15 s (what ends early is seen early; later reads are sparse).
    pub const SLOW: Backoff = Backoff {
        first: Duration::from_secs(1),
        then: Duration::from_millis(1500),
        max: Duration::from_secs(15),
        factor: 1.5,
        at_once: true,
        expect: None,
    };

    /// For a transition the latency model times (see the module doc): when it `started` in
    /// this run, reads on `ramp` up to its expected end; otherwise (a resumed run, a resource
    /// found already changing) one read at once. Then every twentieth of the expected time
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
            expect: None,
        };
        match started {
            Some(at) => Backoff {
                then: tight,
                at_once: false,
                expect: Some((at, expected)),
                ..tail
            },
            None => tail,
        }
    }

    /// One poll at once all the same, then as before: for a wait that may have nothing to
    /// wait for (a deleted Lambda function that had no network interfaces), or an
    /// implementation that reports a state in the create answer that its first read no
    /// longer shows.
    pub fn look_first(self) -> Backoff {
        Backoff { at_once: true, ..self }
    }
}

/// A fraction in [0, 1) from the clock's nanoseconds: enough to keep waiters started
/// together from polling in lockstep.
fn jitter_fraction() -> f64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    (nanos % 1000) as f64 / 1000.0
}

/// Up to +/-20 % so that many waiters started together do not poll in lockstep.
pub(crate) fn jittered(d: Duration) -> Duration {
    d.mul_f64(0.8 + 0.4 * jitter_fraction())
}

/// The ramp's jitter, later only: 0 to a tenth of the `step` that led to a read, added to
/// its planned time (not to the plan). A symmetric jitter put the read planned at a state's
/// end before it about half the time, and the next read came a third of the time gone later
/// (a 2 s state seen at 2.6 s); this one still spreads waiters started together.
fn jitter_later(step: Duration) -> Duration {
    step.mul_f64(0.1 * jitter_fraction())
}

/// The least time between two reads of one waiter on its ramp (model time).
const MIN_GAP: Duration = Duration::from_millis(200);

/// Within this much of a transition's start, its reads are half a second apart: the states
/// an emulator shows for a couple of seconds end there, and seeing them a third of their
/// age late would be most of the delay of a chain of them. Two reads more per wait on AWS.
const EARLY: Duration = Duration::from_secs(3);

/// The sleep before the next read of a transition `elapsed` (model time) into its expected
/// `expected`: half a second for its first `EARLY` seconds, then a third of the time gone,
/// but never past halfway to the expected end nor below `tight` near it; None from the
/// expected end on.
fn ramp(elapsed: Duration, expected: Duration, tight: Duration) -> Option<Duration> {
    if elapsed >= expected {
        return None;
    }
    let early = if elapsed < EARLY {
        Duration::from_millis(500)
    } else {
        (elapsed / 3).max(Duration::from_millis(500))
    };
    let towards_end = ((expected - elapsed) / 2).max(tight);
    Some(early.min(towards_end))
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

/// Real time since `at`, in model time (the inverse of `scaled`).
fn model_since(at: Instant) -> Duration {
    let scale = time_scale();
    let real = at.elapsed();
    if scale == 1.0 { real } else { real.div_f64(scale) }
}

pub(crate) async fn sleep(d: Duration) {
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

pub(crate) fn retryable_while_polling(e: &ResourceError) -> bool {
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
    // While an expected transition lasts, its ramp decides; `None` after its end or without one.
    // The reads are planned from the transition's start: each one a ramp step (jittered) after
    // the previous one's planned time, not after its answer, so an answer that took a while (a
    // busy endpoint) does not push every later read back. The sleep after an answer is at
    // least half a step (a slow endpoint is not read faster than the ramp means), a whole step
    // when the answer took longer than one (no burst of reads to catch up), and never below
    // `MIN_GAP` (model time).
    let mut planned: Option<Duration> = None;
    let mut on_ramp = || {
        let (at, expected) = backoff.expect?;
        let now = model_since(at);
        let step_from = |t: Duration| {
            let step = ramp(t, expected, backoff.first)?;
            Some((t + step, step))
        };
        let (target, step) = match planned.and_then(step_from) {
            Some((t, step)) if t > now => (t, step),
            _ => step_from(now)?,
        };
        // The plan itself is not jittered, only each read's time on it: jitter carried from
        // read to read added up (the fourth read of a 2 s state came up to 0.2 s after it).
        planned = Some(target);
        let at = target + jitter_later(step);
        Some(at.saturating_sub(now).max(step / 2).max(MIN_GAP))
    };
    if !backoff.at_once {
        match (backoff.expect, on_ramp()) {
            (Some(_), Some(d)) => sleep(d.min(deadline)).await,
            // Started long enough ago to be over: read at once.
            (Some(_), None) => {}
            (None, _) => {
                sleep(interval.min(deadline)).await;
                interval = backoff.then;
                first = false;
            }
        }
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
        match on_ramp() {
            Some(d) => sleep(d.min(left)).await,
            None => {
                sleep(jittered(interval).min(left)).await;
                interval = next(&backoff, interval, &mut first);
            }
        }
    }
}

/// The sleep after `current`: `then` after the first, then `factor` times longer up to `max`.
pub(crate) fn next(backoff: &Backoff, current: Duration, first: &mut bool) -> Duration {
    if std::mem::take(first) {
        backoff.then.min(backoff.max)
    } else {
        current.mul_f64(backoff.factor).min(backoff.max)
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
        // Two sleeps: ~1 s and ~1.5 s (with jitter), far below the SDK waiter's fixed delays.
        assert!(start.elapsed() < Duration::from_secs(4), "{:?}", start.elapsed());
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

    /// When each poll happened, until `ready(polls so far, time since the start)`.
    async fn polls_while(backoff: Backoff, ready: impl Fn(usize, Duration) -> bool) -> Vec<Duration> {
        let start = Instant::now();
        let times = Mutex::new(Vec::new());
        wait_for("x", Duration::from_secs(3600), backoff, || {
            let mut t = times.lock().unwrap();
            t.push(start.elapsed());
            std::future::ready(Ok(if ready(t.len(), start.elapsed()) {
                Poll::Ready(())
            } else {
                Poll::Pending("pending".into())
            }))
        })
        .await
        .unwrap();
        times.into_inner().unwrap()
    }

    /// Ready at the `ready_at`-th poll (1-based).
    async fn polls_until(backoff: Backoff, ready_at: usize) -> Vec<Duration> {
        polls_while(backoff, |n, _| n >= ready_at).await
    }

    /// Ready at the first poll at or after `ready_after`.
    async fn polls_until_time(backoff: Backoff, ready_after: Duration) -> Vec<Duration> {
        polls_while(backoff, |_, t| t >= ready_after).await
    }

    fn gaps_at_least(polls: &[Duration], min: Duration) -> bool {
        polls.windows(2).all(|w| w[1] - w[0] >= min)
    }

    #[tokio::test(start_paused = true)]
    async fn a_transition_that_ends_long_before_its_model_time_is_seen_at_once() {
        // An emulator (or a fast day) has the database ready 2 s after its create, where the
        // model expects 960 s: it is seen within a third of its duration (and the jitter),
        // not at 960 s.
        let db = Transition::DbCreate { multi_az: true };
        let polls = polls_until_time(Backoff::expecting(db, Some(Instant::now())), Duration::from_secs(2)).await;
        let seen = *polls.last().unwrap();
        // Reads every half second early on, jittered later only: the one planned at 2 s
        // is not before it, and sees the end within a tenth of a step.
        assert!(
            seen >= Duration::from_secs(2) && seen <= Duration::from_millis(2050),
            "{polls:?}"
        );
        // The jitter is not carried from read to read: each early read is within a tenth
        // of a step after its place on the half-second grid.
        for (k, p) in polls.iter().enumerate() {
            let grid = Duration::from_millis(500) * (k as u32 + 1);
            assert!(
                *p >= grid && *p <= grid + Duration::from_millis(50),
                "read {k}: {polls:?}"
            );
        }
        assert!(
            polls[0] >= Duration::from_millis(400),
            "the create answered; no read at once: {polls:?}"
        );
        assert!(gaps_at_least(&polls, Duration::from_millis(400)), "{polls:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn reads_tighten_towards_the_expected_end_and_stay_few() {
        // RDS Multi-AZ ending at its median: seen within one tight interval (15 s, +20 %
        // jitter) after it, in a few dozen reads, never two within 0.8 s.
        let db = Transition::DbCreate { multi_az: true };
        let polls = polls_until_time(Backoff::expecting(db, Some(Instant::now())), Duration::from_secs(960)).await;
        let seen = *polls.last().unwrap();
        assert!(seen <= Duration::from_secs(978), "{polls:?}");
        assert!(polls.len() <= 32, "{} reads: {polls:?}", polls.len());
        assert!(gaps_at_least(&polls, Duration::from_millis(400)), "{polls:?}");
        // Closing in: each gap at most half the time left to the expected end, or the tight
        // interval (jittered +20 %).
        for w in polls.windows(2) {
            let left = Duration::from_secs(960).saturating_sub(w[0]);
            assert!(
                w[1] - w[0] <= (left / 2).max(Duration::from_secs(15)).mul_f64(1.2),
                "{polls:?}"
            );
        }
        // The NAT (100 s, then every 5 s).
        let polls = polls_until_time(
            Backoff::expecting(Transition::NatCreate, Some(Instant::now())),
            Duration::from_secs(100),
        )
        .await;
        assert!(*polls.last().unwrap() <= Duration::from_secs(106), "{polls:?}");
        assert!(polls.len() <= 22, "{} reads: {polls:?}", polls.len());
    }

    #[tokio::test(start_paused = true)]
    async fn time_gone_since_the_start_counts_and_an_unknown_start_is_read_at_once() {
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(900)).await;
        let db = Transition::DbCreate { multi_az: true };
        // 60 s before the expected end: halfway there (30 s, jittered), no earlier.
        let polls = polls_until(Backoff::expecting(db, Some(started)), 1).await;
        assert!(
            polls[0] >= Duration::from_secs(24) && polls[0] <= Duration::from_secs(36),
            "{polls:?}"
        );
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
        assert!(gaps_at_least(&polls, Duration::from_millis(800)), "{polls:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn slow_answers_do_not_push_the_planned_reads_back() {
        // Each read takes 0.3 s to answer (a busy endpoint). The reads of a transition started
        // now still go out on the ramp's plan from its start (0.5 s, 1 s, 1.5 s..., jittered
        // +0-10 % of a step), not a step after each answer (0.5, 1.3, 2.1...); a read never follows the
        // previous answer sooner than MIN_GAP, and an answer slower than a whole step is not
        // followed by a burst of reads.
        let start = Instant::now();
        let times = Mutex::new(Vec::new());
        let answer = Duration::from_millis(300);
        let fs = Transition::FileSystemCreate;
        wait_for(
            "x",
            Duration::from_secs(3600),
            Backoff::expecting(fs, Some(start)),
            || {
                times.lock().unwrap().push(start.elapsed());
                async move {
                    tokio::time::sleep(answer).await;
                    Ok(if start.elapsed() >= Duration::from_secs(4) {
                        Poll::Ready(())
                    } else {
                        Poll::Pending("creating".into())
                    })
                }
            },
        )
        .await
        .unwrap();
        let polls = times.into_inner().unwrap();
        // Planned 0.5 s apart (+0-10 % of a step) early on: the first two gaps are the step, or the
        // answer plus half a step, at most 0.6 s, where sleeping a step after each answer
        // would make them at least 0.3 + 0.4 s.
        assert!(polls.len() >= 5, "{polls:?}");
        assert!(
            polls[1] - polls[0] <= Duration::from_millis(600) && polls[2] - polls[1] <= Duration::from_millis(600),
            "{polls:?}"
        );
        assert!(gaps_at_least(&polls, answer + MIN_GAP), "{polls:?}");
        // Answers slower than a step (1 s): the next read follows the answer, no burst.
        let start = Instant::now();
        let times = Mutex::new(Vec::new());
        wait_for(
            "x",
            Duration::from_secs(3600),
            Backoff::expecting(fs, Some(start)),
            || {
                times.lock().unwrap().push(start.elapsed());
                async move {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    Ok(if start.elapsed() >= Duration::from_secs(8) {
                        Poll::Ready(())
                    } else {
                        Poll::Pending("creating".into())
                    })
                }
            },
        )
        .await
        .unwrap();
        let polls = times.into_inner().unwrap();
        assert!(gaps_at_least(&polls, Duration::from_secs(1) + MIN_GAP), "{polls:?}");
        assert!(polls.len() <= 7, "{polls:?}");
    }

    #[test]
    fn the_ramp_halves_the_time_gone_and_closes_in_on_the_expected_end() {
        let s = Duration::from_secs;
        let tight = s(15);
        assert_eq!(ramp(Duration::ZERO, s(960), tight), Some(Duration::from_millis(500)));
        assert_eq!(ramp(s(90), s(960), tight), Some(s(30)));
        // Halfway to the end at most: at 750 s, 210 s to go -> 105 s, not 250 s.
        assert_eq!(ramp(s(750), s(960), tight), Some(s(105)));
        assert_eq!(ramp(s(950), s(960), tight), Some(tight));
        assert_eq!(ramp(s(960), s(960), tight), None);
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
}
