//! `pi-deploy logs`: the side-loading Lambda's log events (from `--since`), or the console
//! output of the deployment's instances (where a failing user data shows first), once or,
//! with `--follow`, until Ctrl-C. Read-only; runs beside an `up`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::watch;

use super::{CmdError, load_config, open_read_only, validate};
use crate::cli::{GlobalArgs, LogsArgs};
use crate::core::config::Purpose;
use crate::core::connect::check_instance_id;
use crate::core::logs::{LogEvent, event_line, new_console_text, parse_since};
use crate::core::names;
use crate::resources::{Aws, operator};

/// How often `--follow` asks again.
const LAMBDA_POLL: Duration = Duration::from_secs(2);
const CONSOLE_POLL: Duration = Duration::from_secs(10);
const DEFAULT_SINCE: &str = "1h";

#[derive(Serialize)]
struct JsonEvent<'a> {
    source: &'static str,
    log_group: &'a str,
    timestamp: String,
    #[serde(flatten)]
    event: &'a LogEvent,
}

#[derive(Serialize)]
struct JsonConsole<'a> {
    source: &'static str,
    instance_id: &'a str,
    state: &'a str,
    /// When EC2 took the output.
    #[serde(skip_serializing_if = "Option::is_none")]
    taken_at: Option<String>,
    output: &'a str,
}

fn line_out(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

pub async fn run(global: &GlobalArgs, args: &LogsArgs) -> Result<(), CmdError> {
    let cfg = load_config(global)?;
    validate(&cfg, Purpose::Other)?;
    let since = args.since.as_deref().unwrap_or(DEFAULT_SINCE);
    let start_ms = parse_since(since, chrono::Utc::now()).map_err(|p| {
        CmdError::input(
            "--since",
            p,
            "give a duration back from now (30s, 15m, 1h, 2d, 1w) or a time like 2026-12-06T09:00:00Z",
        )
    })?;
    let instance = args.instance.as_deref().filter(|i| !i.is_empty());
    if let Some(id) = instance {
        check_instance_id(id).map_err(|p| {
            CmdError::input(
                "--instance",
                p,
                "pass an instance id of the deployment, or `--instance` alone for all of them",
            )
        })?;
    }
    let (aws, _state) = open_read_only(&cfg, global).await?;
    let result = match &args.instance {
        None => lambda(&aws, global, args.follow, start_ms).await,
        Some(_) => console(&aws, global, args.follow, instance).await,
    };
    aws.clients.dump_call_counts();
    result
}

async fn lambda(aws: &Aws, global: &GlobalArgs, follow: bool, start_ms: i64) -> Result<(), CmdError> {
    // Only --follow holds off the first Ctrl-C (to end with exit 0); a one-shot read exits.
    let mut stop = follow.then(super::signals::subscribe);
    let group = names::lambda_log_group(&aws.env.deployment);
    let mut from = start_ms;
    // Events already printed at the newest timestamp (the next read starts there again).
    let mut printed_at_from: BTreeSet<String> = BTreeSet::new();
    let mut shown = 0usize;
    loop {
        let events = operator::all_log_events(aws, &group, from).await?;
        for e in events {
            if e.timestamp == from && printed_at_from.contains(&e.id) {
                continue;
            }
            if e.timestamp > from {
                from = e.timestamp;
                printed_at_from.clear();
            }
            printed_at_from.insert(e.id.clone());
            shown += 1;
            if global.json {
                let at = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(e.timestamp)
                    .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                    .unwrap_or_default();
                if let Ok(text) = serde_json::to_string(&JsonEvent {
                    source: "lambda",
                    log_group: &group,
                    timestamp: at,
                    event: &e,
                }) {
                    line_out(&text);
                }
            } else {
                line_out(&event_line(&e, global.verbose > 0));
            }
        }
        if !follow {
            if shown == 0 && !global.json && !global.quiet {
                eprintln!("no events in {group} since then");
            }
            return Ok(());
        }
        if wait_or_interrupted(LAMBDA_POLL, stop.as_mut()).await {
            return Ok(());
        }
    }
}

/// Sleep `d`; true when Ctrl-C (or SIGTERM) came first: the end of `--follow`, exit 0.
/// Holding a receiver of `signals` is what keeps the first signal from exiting at once.
/// Without one (no --follow) there is nothing to wait for.
async fn wait_or_interrupted(d: Duration, stop: Option<&mut watch::Receiver<bool>>) -> bool {
    let Some(stop) = stop else {
        return true;
    };
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => false,
        _ = stop.changed() => true,
    }
}

async fn console(aws: &Aws, global: &GlobalArgs, follow: bool, id: Option<&str>) -> Result<(), CmdError> {
    // Only --follow holds off the first Ctrl-C (to end with exit 0); a one-shot read exits.
    let mut stop = follow.then(super::signals::subscribe);
    let instances = operator::instances(aws, id).await?;
    if instances.is_empty() {
        return Err(match id {
            Some(id) => CmdError::input(
                "--instance",
                format!("{id} is not an instance of deployment `{}`", aws.env.deployment),
                "pass an id `pi-deploy logs --instance` lists (without an id it shows every instance)",
            ),
            None => CmdError::Failed {
                message: format!("deployment `{}` has no instances", aws.env.deployment),
                hint: Some("`pi-deploy status` shows the Auto Scaling group".into()),
                reported: false,
            },
        });
    }
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    loop {
        for i in &instances {
            let (output, taken_at) = operator::console_output(aws, &i.id).await?;
            let output = output.unwrap_or_default();
            let previous = seen.get(&i.id).map(String::as_str).unwrap_or("");
            let new = new_console_text(previous, &output);
            let first = !seen.contains_key(&i.id);
            if global.json {
                if first || !new.is_empty() {
                    let doc = JsonConsole {
                        source: "console",
                        instance_id: &i.id,
                        state: &i.state,
                        taken_at: taken_at.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                        output: new,
                    };
                    if let Ok(text) = serde_json::to_string(&doc) {
                        line_out(&text);
                    }
                }
            } else {
                if first {
                    let when = taken_at
                        .map(|t| format!(", taken {}", t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
                        .unwrap_or_default();
                    line_out(&format!("==> console output of {} ({}{when}) <==", i.id, i.state));
                    if output.is_empty() {
                        line_out("(none yet: EC2 has no console output for it)");
                    }
                }
                if !new.is_empty() {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(new.as_bytes());
                    if !new.ends_with('\n') {
                        let _ = out.write_all(b"\n");
                    }
                    let _ = out.flush();
                }
            }
            seen.insert(i.id.clone(), output);
        }
        if !follow || wait_or_interrupted(CONSOLE_POLL, stop.as_mut()).await {
            return Ok(());
        }
    }
}
