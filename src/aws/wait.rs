//! The one retry policy, beside the one wait helper it shares its cadence with.
//!
//! The wait helper itself (`Backoff`, `Poll`, `wait_for`, the emulator's time scale, the
//! record of transitions this run started) is pure and lives in `core::wait`, where the core
//! (`core::upgrade`) uses it too; it is re-exported here, so the kinds and the rest of the
//! edge keep reaching both through `aws::wait`.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::core::resource::{ErrorClass, ResourceError};
pub use crate::core::wait::{Backoff, Poll, Started, set_time_scale, time_scale, wait_for};
use crate::core::wait::{jittered, next, retryable_while_polling, sleep};

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
