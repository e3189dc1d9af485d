//! `pi-deploy sideload`: upload files to the resources bucket under one of the folders the
//! side-loading Lambda copies onto EFS, wait for the Lambda's outcome of each object, and
//! print a receipt. With `--delete`, delete objects (the Lambda removes their files).
//!
//! Order: every path is read and every key checked against the Lambda's rules before any
//! AWS call (a missing path is bad input, exit 2; a name the Lambda would refuse is a
//! `rejected` line of the receipt and is never sent); then the state (exit 3 without one);
//! then the uploads. Re-running is safe and cheap: a file whose content the bucket already
//! holds, copied by the Lambda, is `unchanged` and not sent again; multipart uploads a
//! killed run left behind are aborted.
//!
//! Where the outcome comes from: for a created object, the tags the Lambda puts on it
//! (`core::sideload::outcome_from_tags`, which only counts tags about the uploaded ETag);
//! for a deleted object (it can carry no tag), the Lambda's log line about its key
//! (`core::sideload::parse_delete_line`). Neither needs access to EFS.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, stream};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{CmdError, load_config, open_read_only, recorded, validate};
use crate::aws::wait::{self, Backoff, Poll};
use crate::cli::{GlobalArgs, SideloadArgs};
use crate::core::config::Purpose;
use crate::core::names;
use crate::core::resource::{ErrorClass, ResourceError};
use crate::core::sideload::{
    Decider, Entry, EtagHasher, MAX_OBJECT_BYTES, Outcome, Receipt, bare_etag, key_for, key_problem, outcome_from_tags,
    parse_delete_line,
};
use crate::resources::{Aws, objects, operator};
use crate::ui::report;

/// Files sent at once.
const UPLOADS_AT_ONCE: usize = 4;
/// Objects whose tags are read at once while waiting.
const READS_AT_ONCE: usize = 8;
/// Log lines of a deletion are searched from this long before the deletes (clock skew
/// between this machine and AWS).
const CLOCK_SKEW_MS: i64 = 60_000;

/// One file to send.
#[derive(Clone, Debug)]
struct Local {
    path: PathBuf,
    key: String,
    size: u64,
}

pub async fn run(global: &GlobalArgs, args: &SideloadArgs) -> Result<(), CmdError> {
    let cfg = load_config(global)?;
    validate(&cfg, Purpose::Other)?;
    let folder = args.to.as_str();
    let receipt = if args.delete {
        let (names, refused) = delete_names(folder, &args.paths);
        let (aws, state) = open_read_only(&cfg, global).await?;
        let bucket = recorded(&state, "bucket", "id", "sideload")?.to_string();
        let objects = delete(&aws, global, args, &bucket, folder, names, refused).await?;
        aws.clients.dump_call_counts();
        Receipt::new(&aws.env.deployment, &aws.env.region, &bucket, folder, "delete", objects)
    } else {
        let (locals, refused) = local_files(folder, &args.paths)?;
        let (aws, state) = open_read_only(&cfg, global).await?;
        let bucket = recorded(&state, "bucket", "id", "sideload")?.to_string();
        let objects = upload(&aws, global, args, &bucket, folder, locals, refused).await;
        aws.clients.dump_call_counts();
        Receipt::new(
            &aws.env.deployment,
            &aws.env.region,
            &bucket,
            folder,
            "upload",
            objects?,
        )
    };
    if global.json {
        report::print_json(&receipt);
    } else {
        print!(
            "{}",
            report::sideload_text(&receipt, report::Style::from_global(global))
        );
    }
    if receipt.ok {
        Ok(())
    } else {
        Err(CmdError::Failed {
            message: "not every object ended as asked".into(),
            hint: Some(hint(&receipt)),
            reported: true,
        })
    }
}

/// What to do next, for the outcomes the receipt holds.
fn hint(r: &Receipt) -> String {
    let has = |o: Outcome| r.objects.iter().any(|e| e.outcome == o);
    let mut steps = Vec::new();
    if r.objects
        .iter()
        .any(|e| e.outcome == Outcome::Rejected && e.by == Some(Decider::PiDeploy))
    {
        steps.push("rename the files rejected by pi-deploy (plain names: no `..`, backslash or control character, UTF-8) and run the command again");
    }
    if r.objects
        .iter()
        .any(|e| e.outcome == Outcome::Rejected && e.by == Some(Decider::Lambda))
    {
        steps.push("a rejection by the Lambda concerns the file system (a link or a directory in the way): look at /var/panintelligence on an instance (`pi-deploy connect`)");
    }
    if has(Outcome::Failed) {
        steps.push("the Lambda retries a failed copy twice on its own; run the command again to send it anew, and see `pi-deploy logs` for the whole error");
    }
    if has(Outcome::Pending) {
        steps.push("the Lambda has not reported yet: run the same command again later (what is copied shows as unchanged), or look at `pi-deploy logs` (`action=tag-failed` there means its role may not tag objects yet: a deployment built before the Lambda reported outcomes gets s3:PutObjectTagging from `pi-deploy up`)");
    }
    steps.join("; ")
}

/// Every file under the given paths with its key; paths whose name the Lambda would refuse
/// are returned as receipt lines instead. A path that does not exist is bad input.
fn local_files(folder: &str, paths: &[PathBuf]) -> Result<(Vec<Local>, Vec<Entry>), CmdError> {
    let mut locals: Vec<Local> = Vec::new();
    let mut refused = Vec::new();
    for given in paths {
        let meta = std::fs::metadata(given).map_err(|e| {
            CmdError::input(
                "PATH",
                format!("{}: {e}", given.display()),
                "name files or directories that exist (nothing was sent)",
            )
        })?;
        if meta.is_dir() {
            let name = std::fs::canonicalize(given)
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_os_string()))
                .ok_or_else(|| {
                    CmdError::input(
                        "PATH",
                        format!("{} has no name to keep", given.display()),
                        "name the directory itself (e.g. `./brand`, not `/`)",
                    )
                })?;
            walk(given, &mut vec![name], folder, &mut locals, &mut refused).map_err(|e| {
                CmdError::input(
                    "PATH",
                    format!("reading {}: {e}", given.display()),
                    "make the directory readable (nothing was sent)",
                )
            })?;
        } else {
            let name = given.file_name().map(|n| n.to_os_string()).unwrap_or_default();
            add_file(given, &[name], meta.len(), folder, &mut locals, &mut refused);
        }
    }
    // The same key twice (a file named twice, or two paths that meet): the first one wins.
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut unique = Vec::new();
    for l in locals {
        match seen.get(&l.key) {
            Some(first) if *first != l.path => refused.push(Entry {
                path: Some(l.path.display().to_string()),
                key: Some(l.key.clone()),
                size: Some(l.size),
                outcome: Outcome::Rejected,
                by: Some(Decider::PiDeploy),
                detail: Some(format!("the same object as {}", first.display())),
            }),
            Some(_) => {}
            None => {
                seen.insert(l.key.clone(), l.path.clone());
                unique.push(l);
            }
        }
    }
    Ok((unique, refused))
}

fn rejected(path: &Path, key: Option<String>, size: Option<u64>, why: impl Into<String>) -> Entry {
    Entry {
        path: Some(path.display().to_string()),
        key,
        size,
        outcome: Outcome::Rejected,
        by: Some(Decider::PiDeploy),
        detail: Some(why.into()),
    }
}

fn add_file(
    path: &Path,
    names: &[std::ffi::OsString],
    size: u64,
    folder: &str,
    locals: &mut Vec<Local>,
    refused: &mut Vec<Entry>,
) {
    let parts: Vec<&std::ffi::OsStr> = names.iter().map(|n| n.as_os_str()).collect();
    match key_for(folder, &parts) {
        Err(why) => refused.push(rejected(path, None, Some(size), why)),
        Ok(key) => match key_problem(&key) {
            Some(why) => refused.push(rejected(path, Some(key), Some(size), why)),
            None if size > MAX_OBJECT_BYTES => {
                refused.push(rejected(path, Some(key), Some(size), "larger than S3's 5 TiB"))
            }
            None => locals.push(Local {
                path: path.to_path_buf(),
                key,
                size,
            }),
        },
    }
}

/// Files below `dir`, depth first in name order. Links to files are followed; links to
/// directories are not (they could loop), nor are sockets, pipes or devices sent.
fn walk(
    dir: &Path,
    names: &mut Vec<std::ffi::OsString>,
    folder: &str,
    locals: &mut Vec<Local>,
    refused: &mut Vec<Entry>,
) -> std::io::Result<()> {
    let mut entries: Vec<std::fs::DirEntry> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        names.push(e.file_name());
        let link = e.file_type()?.is_symlink();
        match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() && link => {
                refused.push(rejected(&path, None, None, "a link to a directory (not followed)"))
            }
            Ok(m) if m.is_dir() => walk(&path, names, folder, locals, refused)?,
            Ok(m) if m.is_file() => add_file(&path, names, m.len(), folder, locals, refused),
            Ok(_) => refused.push(rejected(&path, None, None, "not a regular file")),
            Err(err) => refused.push(rejected(&path, None, None, format!("cannot be read: {err}"))),
        }
        names.pop();
    }
    Ok(())
}

/// The local file's ETag as S3 would give it (reads the whole file).
fn local_etag(path: &Path, size: u64) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = EtagHasher::new(size);
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finish())
}

fn entry_of(l: &Local, outcome: Outcome, by: Option<Decider>, detail: Option<String>) -> Entry {
    Entry {
        path: Some(l.path.display().to_string()),
        key: Some(l.key.clone()),
        size: Some(l.size),
        outcome,
        by,
        detail,
    }
}

/// Whether stderr may show live progress.
fn live(global: &GlobalArgs) -> bool {
    !global.json && !global.quiet && std::io::stderr().is_terminal()
}

/// A line on stderr for people (not with --json or -q).
fn say(global: &GlobalArgs, text: &str) {
    if !global.json && !global.quiet {
        eprintln!("{text}");
    }
}

async fn upload(
    aws: &Aws,
    global: &GlobalArgs,
    args: &SideloadArgs,
    bucket: &str,
    folder: &str,
    locals: Vec<Local>,
    mut receipt: Vec<Entry>,
) -> Result<Vec<Entry>, CmdError> {
    let started = chrono::Utc::now();
    let prefix = format!("{folder}/");
    let remote: BTreeMap<String, objects::Remote> = objects::list(aws, bucket, &prefix)
        .await?
        .into_iter()
        .map(|r| (r.key.clone(), r))
        .collect();

    // Unchanged: same size and ETag in the bucket, and the Lambda reported it copied.
    let mut to_send = Vec::new();
    for l in locals {
        let same = match remote.get(&l.key) {
            Some(r) if !args.force && r.size as u64 == l.size => {
                let etag = local_etag(&l.path, l.size).map_err(|e| {
                    CmdError::input(
                        "PATH",
                        format!("reading {}: {e}", l.path.display()),
                        "make the file readable (nothing was sent)",
                    )
                })?;
                etag == bare_etag(&r.etag)
                    && objects::tags(aws, bucket, &l.key)
                        .await?
                        .and_then(|t| outcome_from_tags(&t, &etag))
                        .is_some_and(|(o, _)| o == Outcome::Copied)
            }
            _ => false,
        };
        if same {
            receipt.push(entry_of(&l, Outcome::Unchanged, None, None));
        } else {
            to_send.push(l);
        }
    }
    let keys: BTreeSet<String> = to_send.iter().map(|l| l.key.clone()).collect();
    if !keys.is_empty() {
        let aborted = objects::abort_stale(aws, bucket, &prefix, &keys, started).await?;
        if aborted > 0 {
            tracing::info!(aborted, "aborted multipart uploads an earlier run left");
        }
    }

    // Send.
    let total: u64 = to_send.iter().map(|l| l.size).sum();
    let bar = if live(global) && !to_send.is_empty() {
        let b = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(8));
        b.set_style(
            ProgressStyle::with_template("{spinner} uploading {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    } else {
        ProgressBar::hidden()
    };
    if !to_send.is_empty() && !live(global) {
        say(
            global,
            &format!(
                "uploading {} files ({}) to s3://{bucket}/{prefix}",
                to_send.len(),
                human_bytes(total)
            ),
        );
    }
    let bar = Arc::new(bar);
    let sent: Vec<(Local, Result<String, ResourceError>)> = stream::iter(to_send)
        .map(|l| {
            let bar = bar.clone();
            async move {
                bar.set_message(l.key.clone());
                let tick = move |n: u64| bar.inc(n);
                let r = objects::upload(aws, bucket, &l.key, &l.path, l.size, &tick).await;
                (l, r)
            }
        })
        .buffer_unordered(UPLOADS_AT_ONCE)
        .collect()
        .await;
    bar.finish_and_clear();
    let mut waiting: Vec<(Local, String)> = Vec::new();
    for (l, r) in sent {
        match r {
            Ok(etag) => waiting.push((l, etag)),
            Err(e) => receipt.push(entry_of(
                &l,
                Outcome::Failed,
                Some(Decider::PiDeploy),
                Some(format!("upload failed: {}", e.message)),
            )),
        }
    }

    // Wait for the Lambda's outcome of each sent object.
    let (outcomes, read_error) = wait_for_tags(aws, global, bucket, &waiting, args.wait).await?;
    for (l, etag) in &waiting {
        match outcomes.get(&l.key) {
            Some((o, detail)) => receipt.push(entry_of(l, *o, Some(Decider::Lambda), detail.clone())),
            None => receipt.push(entry_of(
                l,
                Outcome::Pending,
                None,
                Some(format!(
                    "no outcome from the Lambda within {}s (object ETag {}){}",
                    args.wait,
                    bare_etag(etag),
                    read_error
                        .as_ref()
                        .map(|e| format!("; reading its tags failed at times while waiting: {e}"))
                        .unwrap_or_default()
                )),
            )),
        }
    }
    Ok(receipt)
}

/// The Lambda's outcome of one object and its detail.
type Report = (Outcome, Option<String>);
type Reported = BTreeMap<String, Report>;

/// Read the tags of every sent object until each carries the Lambda's outcome about that
/// upload, or `wait_s` runs out (what is still missing is left out). A read that fails with
/// a throttle or a transient error leaves that object waiting (the others keep what was
/// read) and is returned with the outcomes when the wait runs out; any other error fails.
async fn wait_for_tags(
    aws: &Aws,
    global: &GlobalArgs,
    bucket: &str,
    sent: &[(Local, String)],
    wait_s: u64,
) -> Result<(Reported, Option<String>), CmdError> {
    let reported: Mutex<Reported> = Mutex::new(BTreeMap::new());
    let last_error: Mutex<Option<String>> = Mutex::new(None);
    if sent.is_empty() || wait_s == 0 {
        return Ok((reported.into_inner().unwrap(), None));
    }
    let spinner = waiting_spinner(global, sent.len());
    let result = wait::wait_for(
        "the side-loading Lambda's outcome of each object",
        Duration::from_secs(wait_s),
        Backoff::QUICK,
        || async {
            let missing: Vec<&(Local, String)> = {
                let done = reported.lock().unwrap();
                sent.iter().filter(|(l, _)| !done.contains_key(&l.key)).collect()
            };
            let read: Vec<Result<(String, Option<Report>), ResourceError>> = stream::iter(missing)
                .map(|(l, etag)| async move {
                    let tags = objects::tags(aws, bucket, &l.key).await?;
                    let outcome = match tags {
                        Some(t) => outcome_from_tags(&t, etag),
                        None => Some((
                            Outcome::Failed,
                            Some("the object is gone from the bucket (deleted by someone else?)".into()),
                        )),
                    };
                    Ok::<_, ResourceError>((l.key.clone(), outcome))
                })
                .buffer_unordered(READS_AT_ONCE)
                .collect()
                .await;
            let mut done = reported.lock().unwrap();
            for r in read {
                match r {
                    Ok((key, Some(o))) => {
                        done.insert(key, o);
                    }
                    Ok((_, None)) => {}
                    Err(e) if e.is(ErrorClass::Throttled) || e.is(ErrorClass::Transient) => {
                        *last_error.lock().unwrap() = Some(e.message.clone());
                    }
                    Err(e) => return Err(e),
                }
            }
            spinner.set_position(done.len() as u64);
            Ok(if done.len() == sent.len() {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{} of {} objects reported", done.len(), sent.len()))
            })
        },
    )
    .await;
    spinner.finish_and_clear();
    match result {
        Ok(()) => {}
        Err(e) if e.is(ErrorClass::Timeout) => {}
        Err(e) => return Err(e.into()),
    }
    Ok((reported.into_inner().unwrap(), last_error.into_inner().unwrap()))
}

fn waiting_spinner(global: &GlobalArgs, n: usize) -> ProgressBar {
    if !live(global) {
        say(
            global,
            &format!("waiting for the side-loading Lambda's outcome of {n} objects"),
        );
        return ProgressBar::hidden();
    }
    let b = ProgressBar::with_draw_target(Some(n as u64), ProgressDrawTarget::stderr_with_hz(8));
    b.set_style(
        ProgressStyle::with_template("{spinner} waiting for the side-loading Lambda: {pos} of {len} objects reported")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    b.enable_steady_tick(Duration::from_millis(120));
    b
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The keys `--delete` names (each checked like an upload's), and the names refused.
fn delete_names(folder: &str, paths: &[PathBuf]) -> (Vec<(String, String)>, Vec<Entry>) {
    let mut names = Vec::new();
    let mut refused = Vec::new();
    for p in paths {
        let shown = p.display().to_string();
        let Some(text) = p.to_str() else {
            refused.push(rejected(p, None, None, "the name is not UTF-8 text (S3 keys are)"));
            continue;
        };
        let name = text.trim_start_matches("./").trim_end_matches('/');
        let key = format!("{folder}/{name}");
        match key_problem(&key) {
            Some(why) => refused.push(rejected(p, Some(key), None, why)),
            None => names.push((shown, key)),
        }
    }
    (names, refused)
}

/// Ask before deleting, unless --yes; without a terminal, refuse.
fn confirm_delete(global: &GlobalArgs, bucket: &str, keys: &[String]) -> Result<(), CmdError> {
    if global.yes || keys.is_empty() {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(CmdError::Refused {
            message: format!(
                "sideload --delete needs confirmation: {} objects of {bucket} (and their files on the file system) would be deleted",
                keys.len()
            ),
            hint: Some("pass --yes to confirm without a terminal".into()),
        });
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "This deletes {} objects from {bucket}, and the Lambda removes their files:",
        keys.len()
    );
    for k in keys.iter().take(20) {
        let _ = writeln!(err, "  {k}");
    }
    if keys.len() > 20 {
        let _ = writeln!(err, "  ... and {} more", keys.len() - 20);
    }
    let _ = write!(err, "Type `delete` to go on: ");
    let _ = err.flush();
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    if answer.trim() == "delete" {
        Ok(())
    } else {
        Err(CmdError::Refused {
            message: "not confirmed: nothing was deleted".into(),
            hint: None,
        })
    }
}

async fn delete(
    aws: &Aws,
    global: &GlobalArgs,
    args: &SideloadArgs,
    bucket: &str,
    folder: &str,
    names: Vec<(String, String)>,
    mut receipt: Vec<Entry>,
) -> Result<Vec<Entry>, CmdError> {
    let remote: BTreeSet<String> = objects::list(aws, bucket, &format!("{folder}/"))
        .await?
        .into_iter()
        .map(|r| r.key)
        .collect();
    // Each name: the object itself, else every object under it as a directory.
    let mut keys: Vec<String> = Vec::new();
    for (shown, key) in &names {
        let under = format!("{key}/");
        let matched: Vec<&String> = if remote.contains(key) {
            vec![key]
        } else {
            remote.iter().filter(|k| k.starts_with(&under)).collect()
        };
        if matched.is_empty() {
            receipt.push(Entry {
                path: Some(shown.clone()),
                key: Some(key.clone()),
                size: None,
                outcome: Outcome::Absent,
                by: None,
                detail: Some("no such object in the bucket".into()),
            });
        }
        for k in matched {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    confirm_delete(global, bucket, &keys)?;
    let since = chrono::Utc::now().timestamp_millis() - CLOCK_SKEW_MS;
    let deleted = objects::delete(aws, bucket, &keys).await?;
    let mut waiting = Vec::new();
    for (key, error) in deleted {
        match error {
            Some(e) => receipt.push(Entry {
                path: None,
                key: Some(key),
                size: None,
                outcome: Outcome::Failed,
                by: Some(Decider::PiDeploy),
                detail: Some(format!("delete failed: {e}")),
            }),
            None => waiting.push(key),
        }
    }
    let reported = wait_for_delete_lines(aws, global, bucket, &waiting, since, args.wait).await?;
    for key in waiting {
        let (outcome, by, detail) = match reported.get(&key) {
            Some((o, d)) => (*o, Some(Decider::Lambda), d.clone()),
            None => (
                Outcome::Pending,
                None,
                Some(format!(
                    "deleted from the bucket; no line from the Lambda about it within {}s",
                    args.wait
                )),
            ),
        };
        receipt.push(Entry {
            path: None,
            key: Some(key),
            size: None,
            outcome,
            by,
            detail,
        });
    }
    Ok(receipt)
}

/// Read the Lambda's log from `since_ms` until it has a line about each deleted key.
async fn wait_for_delete_lines(
    aws: &Aws,
    global: &GlobalArgs,
    bucket: &str,
    keys: &[String],
    since_ms: i64,
    wait_s: u64,
) -> Result<Reported, CmdError> {
    let reported: Mutex<Reported> = Mutex::new(BTreeMap::new());
    if keys.is_empty() || wait_s == 0 {
        return Ok(reported.into_inner().unwrap());
    }
    let group = names::lambda_log_group(&aws.env.deployment);
    let wanted: BTreeSet<&String> = keys.iter().collect();
    let spinner = waiting_spinner(global, keys.len());
    let result = wait::wait_for(
        "the side-loading Lambda's log lines about the deleted objects",
        Duration::from_secs(wait_s),
        Backoff::QUICK,
        || async {
            let events = operator::all_log_events(aws, &group, since_ms).await?;
            let mut done = reported.lock().unwrap();
            for e in &events {
                if let Some(r) = parse_delete_line(&e.message)
                    && r.bucket == bucket
                    && wanted.contains(&r.key)
                {
                    // The last line about a key wins (a retry after a failure).
                    done.insert(r.key, (r.outcome, r.detail));
                }
            }
            spinner.set_position(done.len() as u64);
            Ok(if done.len() == keys.len() {
                Poll::Ready(())
            } else {
                Poll::Pending(format!("{} of {} deletions reported", done.len(), keys.len()))
            })
        },
    )
    .await;
    spinner.finish_and_clear();
    match result {
        Ok(()) => {}
        Err(e) if e.is(ErrorClass::Timeout) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(reported.into_inner().unwrap())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_keeps_its_name_and_hostile_names_are_refused_before_any_upload() {
        let dir = tempfile::tempdir().unwrap();
        let media = dir.path().join("media");
        std::fs::create_dir_all(media.join("sub")).unwrap();
        std::fs::write(media.join("logo.png"), b"png").unwrap();
        std::fs::write(media.join("sub").join("a b.svg"), b"<svg/>").unwrap();
        std::fs::write(media.join("back\\slash.png"), b"x").unwrap();
        std::fs::write(media.join("new\nline.png"), b"x").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            std::fs::write(media.join(std::ffi::OsStr::from_bytes(b"caf\xe9.png")), b"x").unwrap();
            std::os::unix::fs::symlink(dir.path(), media.join("loop")).unwrap();
        }
        let single = dir.path().join("single.css");
        std::fs::write(&single, b"body{}").unwrap();

        let (locals, refused) = local_files("images", &[media.clone(), single.clone(), single.clone()]).unwrap();
        let keys: Vec<&str> = locals.iter().map(|l| l.key.as_str()).collect();
        assert_eq!(
            keys,
            ["images/media/logo.png", "images/media/sub/a b.svg", "images/single.css"]
        );
        assert_eq!(locals[0].size, 3);
        let reasons: BTreeMap<String, String> = refused
            .iter()
            .map(|e| {
                assert_eq!((e.outcome, e.by), (Outcome::Rejected, Some(Decider::PiDeploy)));
                (
                    Path::new(e.path.as_deref().unwrap())
                        .file_name()
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                    e.detail.clone().unwrap(),
                )
            })
            .collect();
        assert_eq!(reasons["back\\slash.png"], "backslash in key");
        assert_eq!(reasons["new\nline.png"], "NUL or control character in key");
        #[cfg(unix)]
        {
            assert!(reasons["caf\u{FFFD}.png"].contains("not UTF-8"), "{reasons:?}");
            assert!(reasons["loop"].contains("link to a directory"), "{reasons:?}");
        }
        // The same file twice is sent once and not reported twice.
        assert_eq!(
            refused
                .iter()
                .filter(|e| e.key.as_deref() == Some("images/single.css"))
                .count(),
            0
        );

        let missing = local_files("images", &[dir.path().join("nope")]).unwrap_err();
        assert_eq!(missing.exit_code(), 2);
    }

    #[test]
    fn delete_names_are_keys_inside_the_folder_checked_like_uploads() {
        let (names, refused) = delete_names(
            "themes",
            &[
                PathBuf::from("./acme/site.css"),
                PathBuf::from("old/"),
                PathBuf::from("../keys/id_rsa"),
            ],
        );
        assert_eq!(
            names,
            [
                ("./acme/site.css".to_string(), "themes/acme/site.css".to_string()),
                ("old/".to_string(), "themes/old".to_string())
            ]
        );
        assert_eq!(refused.len(), 1);
        assert_eq!(refused[0].detail.as_deref(), Some("empty, '.' or '..' path segment"));
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(9 * 1024 * 1024), "9.0 MiB");
    }
}
