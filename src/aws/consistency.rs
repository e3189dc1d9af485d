//! Eventual consistency, bounded to what this run created.
//!
//! AWS reads lag creates: an id a create returned can be unknown to the next describe for
//! seconds (EC2, ELB, IAM, RDS...). A NotFound then means "not yet". A NotFound for any
//! other recorded id is a fact: the resource was deleted behind pi-deploy's back (or the
//! emulator restarted), and waiting for it, 60 s in a retry or 300 s in a wait, only delays
//! the failure and hides its cause. So a NotFound is treated as lag only inside the
//! *consistency window* of the work at hand, and everywhere else at once as NotFound (the
//! executor then finds or creates the resource again; `status` reports it missing).
//!
//! The window of one step of one node (`AwsCloud::{find, create, converge}` run the kind's
//! code through [`run`]) is open until [`CONSISTENCY_BUDGET`] after the latest of:
//! - a create call of that step that AWS answered with success: the calls after it read
//!   what it made (noted by the ambiguous-creates interceptor through [`note_create`]);
//! - for a create (and a find), an earlier create attempt of the same node in this process:
//!   a create retried after an unknown outcome may meet the first one's lag;
//! - for a create and a find, a create call of one of its dependencies in this run: a
//!   subnet made a second ago may be unknown to the call that puts something in it;
//! - for a converge, only when this run created or found the node: its own create call
//!   and its dependencies' (the DB endpoint waits for the database created just before);
//! - the node's state record, when it was written less than the budget before this run
//!   started ([`seed`]: a run killed right after a create and started again at once).
//!
//! So the converge of a resource recorded by an earlier run has a closed window, even when
//! this run created one of its dependencies again: that dependency is new, so the recorded
//! resource (which sat in the old one) is gone, and a NotFound means exactly that.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::aws::wait::Poll;
use crate::core::resource::{ErrorClass, ResourceError};

/// How long a read may not see what a create made. Short: a NotFound that lasts longer is
/// a resource deleted by hand, which the executor handles by finding or creating it again.
pub const CONSISTENCY_BUDGET: Duration = Duration::from_secs(60);

/// The window of the step the current task is running.
struct Window {
    until: std::cell::Cell<Option<Instant>>,
    /// When a create call of this step last succeeded.
    created: std::cell::Cell<Option<Instant>>,
}

tokio::task_local! {
    static WINDOW: Window;
}

#[derive(Default)]
struct Recent {
    /// Node key -> the last create call of its create step that succeeded (or its record,
    /// when written just before this run started).
    created: HashMap<String, Instant>,
    /// Node key -> when this run last created or found the node (or its recent record).
    seen: HashMap<String, Instant>,
    /// Node key -> the last create attempt (the create step's start).
    attempted: HashMap<String, Instant>,
}

static RECENT: Mutex<Option<Recent>> = Mutex::new(None);

fn with_recent<T>(f: impl FnOnce(&mut Recent) -> T) -> T {
    let mut guard = RECENT.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Recent::default))
}

fn later(map: &mut HashMap<String, Instant>, key: &str, at: Instant) {
    let entry = map.entry(key.to_string()).or_insert(at);
    if *entry < at {
        *entry = at;
    }
}

/// Records written less than the budget before now (by a run that was killed, say): their
/// resources may still be settling. `age` is how long ago each record was written.
pub fn seed<'a>(records: impl IntoIterator<Item = (&'a str, Duration)>) {
    let now = Instant::now();
    with_recent(|r| {
        for (key, age) in records {
            if age < CONSISTENCY_BUDGET
                && let Some(at) = now.checked_sub(age)
            {
                later(&mut r.created, key, at);
                later(&mut r.seen, key, at);
            }
        }
    });
}

/// This run found the node (it exists, so its converge may meet its dependencies' lag).
pub fn found(key: &str) {
    with_recent(|r| later(&mut r.seen, key, Instant::now()));
}

/// Which step of a node runs, and what its NotFound may lag behind.
pub enum Step<'a> {
    /// A lookup: the node's own last create (attempted or made) and its dependencies'.
    Find { key: &'a str, deps: &'a [String] },
    /// A create: an earlier attempt of the node, its dependencies' creates, and from the
    /// moment its own create call succeeds, that.
    Create { key: &'a str, deps: &'a [String] },
    /// A converge: nothing, unless this run created or found the node; then its own and
    /// its dependencies' creates.
    Converge { key: &'a str, deps: &'a [String] },
}

fn window_of(step: &Step<'_>) -> Option<Instant> {
    with_recent(|r| {
        let created = |k: &str| r.created.get(k).copied();
        let deps_created = |deps: &[String]| deps.iter().filter_map(|d| created(d)).max();
        let latest = match *step {
            Step::Find { key, deps } => [created(key), r.attempted.get(key).copied(), deps_created(deps)]
                .into_iter()
                .flatten()
                .max(),
            Step::Create { key, deps } => [r.attempted.get(key).copied(), deps_created(deps)]
                .into_iter()
                .flatten()
                .max(),
            Step::Converge { key, deps } => r.seen.get(key).copied().map(|seen| {
                [Some(seen), created(key), deps_created(deps)]
                    .into_iter()
                    .flatten()
                    .max()
                    .unwrap_or(seen)
            }),
        };
        latest.map(|t| t + CONSISTENCY_BUDGET)
    })
}

/// Run a node's step inside its consistency window.
pub async fn run<F: Future>(step: Step<'_>, f: F) -> F::Output {
    let window = Window {
        until: std::cell::Cell::new(window_of(&step)),
        created: std::cell::Cell::new(None),
    };
    if let Step::Create { key, .. } = &step {
        with_recent(|r| later(&mut r.attempted, key, Instant::now()));
    }
    WINDOW
        .scope(window, async {
            let out = f.await;
            if let Step::Create { key, .. } = &step {
                let made = WINDOW.with(|w| w.created.get());
                with_recent(|r| {
                    if let Some(at) = made {
                        later(&mut r.created, key, at);
                    }
                    later(&mut r.seen, key, Instant::now());
                });
            }
            out
        })
        .await
}

/// A create call of the current step succeeded: what it made may lag for the budget.
pub fn note_create() {
    let now = Instant::now();
    let _ = WINDOW.try_with(|w| {
        w.until.set(Some(now + CONSISTENCY_BUDGET));
        w.created.set(Some(now));
    });
}

/// Whether a NotFound now may be AWS catching up with this run's own create.
pub fn may_lag() -> bool {
    WINDOW
        .try_with(|w| w.until.get().is_some_and(|until| Instant::now() < until))
        .unwrap_or(false)
}

/// A describe of `what` found nothing: not yet, inside the window; else it is gone.
pub fn not_visible<T>(what: impl std::fmt::Display) -> Result<Poll<T>, ResourceError> {
    if may_lag() {
        Ok(Poll::Pending("not visible yet".into()))
    } else {
        Err(gone(what))
    }
}

/// The error for a recorded resource AWS does not know.
pub fn gone(what: impl std::fmt::Display) -> ResourceError {
    ResourceError::new(
        ErrorClass::NotFound,
        format!("{what} does not exist (deleted outside pi-deploy?)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn outside_any_window_not_found_is_a_fact() {
        assert!(!may_lag());
        assert!(not_visible::<()>("subnet subnet-1").is_err_and(|e| e.is(ErrorClass::NotFound)));
        let converge = Step::Converge {
            key: "consistency-test-never",
            deps: &[],
        };
        assert!(!run(converge, async { may_lag() }).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_call_of_the_step_opens_the_window_for_the_budget() {
        let key = "consistency-test-a";
        run(Step::Create { key, deps: &[] }, async {
            assert!(!may_lag(), "before its create call, a NotFound is about something else");
            note_create();
            assert!(may_lag());
            assert!(matches!(not_visible::<()>("x"), Ok(Poll::Pending(_))));
        })
        .await;
        // The converge after it inherits the window; a minute later it has closed.
        assert!(run(Step::Converge { key, deps: &[] }, async { may_lag() }).await);
        tokio::time::sleep(CONSISTENCY_BUDGET).await;
        assert!(!run(Step::Converge { key, deps: &[] }, async { may_lag() }).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_node_created_here_waits_for_its_dependencies_lag_a_recorded_one_does_not() {
        let db = "consistency-test-db";
        run(Step::Create { key: db, deps: &[] }, async { note_create() }).await;
        let deps = [db.to_string()];
        // A step that makes no create call of its own (the DB endpoint) still waits for
        // the database this run just created...
        let endpoint = "consistency-test-endpoint";
        run(
            Step::Create {
                key: endpoint,
                deps: &deps,
            },
            async {},
        )
        .await;
        assert!(
            run(
                Step::Converge {
                    key: endpoint,
                    deps: &deps
                },
                async { may_lag() }
            )
            .await
        );
        // ...but a node recorded by an earlier run does not: its resource is in the old one.
        let recorded = "consistency-test-recorded-endpoint";
        assert!(
            !run(
                Step::Converge {
                    key: recorded,
                    deps: &deps
                },
                async { may_lag() }
            )
            .await
        );
        // A second create attempt (after an unknown outcome) may meet the first one's lag.
        let virt = "consistency-test-virtual";
        run(Step::Create { key: virt, deps: &[] }, async {}).await;
        assert!(run(Step::Create { key: virt, deps: &[] }, async { may_lag() }).await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dependency_created_here_opens_the_window_of_a_create_not_of_a_recorded_converge() {
        let vpc = "consistency-test-vpc";
        run(Step::Create { key: vpc, deps: &[] }, async { note_create() }).await;
        let deps = [vpc.to_string()];
        let subnet = "consistency-test-subnet";
        assert!(
            run(
                Step::Create {
                    key: subnet,
                    deps: &deps
                },
                async { may_lag() }
            )
            .await
        );
        assert!(
            run(
                Step::Find {
                    key: subnet,
                    deps: &deps
                },
                async { may_lag() }
            )
            .await
        );
        let recorded = "consistency-test-recorded-subnet";
        assert!(
            !run(
                Step::Converge {
                    key: recorded,
                    deps: &deps
                },
                async { may_lag() }
            )
            .await
        );
        // Once this run found it, its converge may meet the new VPC's lag.
        found(recorded);
        assert!(
            run(
                Step::Converge {
                    key: recorded,
                    deps: &deps
                },
                async { may_lag() }
            )
            .await
        );
    }

    #[tokio::test(start_paused = true)]
    async fn records_written_just_before_the_run_are_still_settling() {
        seed([
            ("consistency-test-fresh", Duration::from_secs(5)),
            ("consistency-test-old", Duration::from_secs(3600)),
        ]);
        let fresh = Step::Converge {
            key: "consistency-test-fresh",
            deps: &[],
        };
        assert!(run(fresh, async { may_lag() }).await);
        let old = Step::Converge {
            key: "consistency-test-old",
            deps: &[],
        };
        assert!(!run(old, async { may_lag() }).await);
    }
}
