//! Ctrl-C (SIGINT) and SIGTERM, handled alike for the whole run.
//!
//! CI runners, `timeout`, `docker stop` and systemd stop a process with SIGTERM; an operator
//! with Ctrl-C. Either one, the first time, asks a run that can drain (an `up` or `destroy`
//! executor, which subscribed with [`subscribe`]) to stop starting work, let the calls in
//! flight finish and be recorded, and release the lock. When nothing can drain (before the
//! executor starts, after it ended, or a read-only command) there is nothing to wait for:
//! the process exits at once. A second signal always exits at once: every transition is
//! already on disk, and the next run resumes from it.
//!
//! Exiting at once skips destructors, so the lock files this process holds are removed here
//! (`state_file::remove_held_locks`; the kernel releases the locks themselves anyway), and
//! its S3 locks are released as a normal end would (`state_s3::release_held_locks`: only a
//! lock still ours, within a few seconds), rather than left for a `force-unlock`.

use std::sync::{Arc, OnceLock};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;

static INTERRUPTED: OnceLock<Arc<watch::Sender<bool>>> = OnceLock::new();

fn sender() -> &'static Arc<watch::Sender<bool>> {
    INTERRUPTED.get_or_init(|| Arc::new(watch::channel(false).0))
}

/// Start listening (once per process, inside the runtime): from here on, SIGINT and
/// SIGTERM no longer kill the process outright.
pub fn install() {
    static STARTED: OnceLock<()> = OnceLock::new();
    if STARTED.set(()).is_err() {
        return;
    }
    let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) else {
        // No handler could be installed: the default action (exit) stays, as before.
        return;
    };
    let tx = sender().clone();
    tokio::spawn(async move {
        let name = |s: i32| if s == libc::SIGTERM { "SIGTERM" } else { "Ctrl-C" };
        let first = next(&mut int, &mut term).await;
        if tx.receiver_count() == 0 {
            exit_now(first, &format!("{}: exiting; nothing was in progress", name(first)));
        }
        let _ = tx.send(true);
        let second = next(&mut int, &mut term).await;
        exit_now(
            second,
            &format!(
                "{} again: exiting now; the state is saved, run the command again to resume",
                name(second)
            ),
        );
    });
}

async fn next(int: &mut Signal, term: &mut Signal) -> i32 {
    tokio::select! {
        _ = int.recv() => libc::SIGINT,
        _ = term.recv() => libc::SIGTERM,
    }
}

fn exit_now(signo: i32, message: &str) -> ! {
    eprintln!("{message}");
    crate::state_file::remove_held_locks();
    crate::state_s3::release_held_locks();
    std::process::exit(128 + signo);
}

/// A receiver that turns true at the first signal; while one is held, the first signal
/// drains instead of exiting.
pub fn subscribe() -> watch::Receiver<bool> {
    sender().subscribe()
}
