//! The one wait helper and the one retry policy.
//!
//! SDK waiters poll at the service model's fixed delays (RDS: 30-120 s), which overshoots
//! completion on real AWS; this helper polls at once, then backs off with jitter up to a cap,
//! and gives up at a deadline with a message that names what it waited for and the last
//! state it saw. Polling errors that are transient (throttling, 5xx, a NotFound right after
//! our own create) count as "not yet".

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::core::resource::{ErrorClass, ResourceError};

/// How often to poll: first at once, then `first`, growing by `factor` up to `max`.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    pub factor: f64,
}

impl Backoff {
    /// For things that take seconds (EC2 primitives, IAM).
    pub const QUICK: Backoff = Backoff {
        first: Duration::from_millis(500),
        max: Duration::from_secs(5),
        factor: 1.6,
    };
    /// For things that take minutes (NAT, ALB, RDS, endpoints): 5 s rising to 15 s.
    pub const SLOW: Backoff = Backoff {
        first: Duration::from_secs(2),
        max: Duration::from_secs(15),
        factor: 1.5,
    };

    fn next(&self, current: Duration) -> Duration {
        current.mul_f64(self.factor).min(self.max)
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
    let mut last: String;
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
        let sleep = jittered(interval).min(deadline.saturating_sub(start.elapsed()) + Duration::from_millis(1));
        tokio::time::sleep(sleep).await;
        interval = backoff.next(interval);
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
        tokio::time::sleep(jittered(interval)).await;
        interval = backoff.next(interval);
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
