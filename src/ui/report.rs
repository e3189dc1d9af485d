//! The results of the read-only commands (`plan`, `status`, `outputs`) and the receipt of
//! `sideload` as text for people
//! or one JSON document for machines, on stdout. Pure functions of the report, so the
//! exact text is covered by snapshot tests.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};

use serde::Serialize;

use super::Verbosity;
use crate::cli::GlobalArgs;
use crate::core::inspect::Live;
use crate::core::plan::Action;
use crate::core::report::{PlanReport, StatusReport, status_name};
use crate::core::sideload::{Decider, Outcome, Receipt};
use crate::core::state::Status;

/// How to draw: colours (never with --no-color, NO_COLOR, or when stdout is not a terminal)
/// and how much to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
    pub verbosity: Verbosity,
}

impl Style {
    pub fn plain(verbosity: Verbosity) -> Self {
        Self {
            color: false,
            verbosity,
        }
    }

    pub fn from_global(g: &GlobalArgs) -> Self {
        let color = !g.no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
        let verbosity = if g.quiet {
            Verbosity::Quiet
        } else if g.verbose > 0 {
            Verbosity::Verbose
        } else {
            Verbosity::Normal
        };
        Self { color, verbosity }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    /// Pad first, then paint, so colour codes do not break the columns.
    fn cell(&self, code: &str, text: &str, width: usize) -> String {
        self.paint(code, &format!("{text:<width$}"))
    }
}

/// One JSON document on stdout.
pub fn print_json<T: Serialize>(value: &T) {
    let mut out = std::io::stdout().lock();
    if let Ok(text) = serde_json::to_string_pretty(value) {
        let _ = writeln!(out, "{text}");
    }
}

fn action_color(a: Action) -> &'static str {
    match a {
        Action::Create => "32",
        Action::Adopt => "36",
        Action::Update | Action::Roll => "33",
        Action::Replace | Action::Delete => "31",
        Action::Nothing => "2",
    }
}

pub fn plan_text(r: &PlanReport, style: Style) -> String {
    let mut s = String::new();
    let quiet = style.verbosity == Verbosity::Quiet;
    if !quiet {
        s.push_str(&format!(
            "pi-deploy plan: deployment `{}` in {}\n",
            r.deployment, r.region
        ));
        s.push_str(&format!("  database: {}\n", r.database_path_note));
        for step in &r.steps {
            if step.action == Action::Nothing && style.verbosity != Verbosity::Verbose {
                continue;
            }
            let mut line = format!(
                "  {} {:<26} {:<19} {}",
                style.cell(action_color(step.action), step.action.as_str(), 7),
                step.key,
                step.kind.as_str(),
                step.id.as_deref().unwrap_or("")
            );
            if style.verbosity == Verbosity::Verbose || !step.changes.is_empty() {
                line.push_str(&format!("  ({})", step.reason));
            }
            s.push_str(line.trim_end());
            s.push('\n');
            for c in &step.changes {
                let mut l = format!(
                    "      ~ {}: {} -> {}  [{}]",
                    c.attribute,
                    c.old,
                    c.new,
                    style.paint(action_color(Action::of_change(c.action)), c.action.as_str())
                );
                if !c.note.is_empty() {
                    l.push_str(&format!(" {}", c.note));
                }
                s.push_str(&l);
                s.push('\n');
            }
        }
    }
    for p in &r.pending {
        s.push_str(&format!("  pending: {p}\n"));
    }
    let n = |a: Action| r.counts.get(a.as_str()).copied().unwrap_or(0);
    if n(Action::Nothing) == r.steps.len() {
        s.push_str(&format!(
            "No changes: all {} resources are up to date.\n",
            r.steps.len()
        ));
    } else {
        s.push_str(&format!(
            "Plan: {} to create, {} to adopt, {} to update, {} to replace, {} to roll, {} to delete, {} unchanged.\n",
            n(Action::Create),
            n(Action::Adopt),
            n(Action::Update),
            n(Action::Replace),
            n(Action::Roll),
            n(Action::Delete),
            n(Action::Nothing)
        ));
    }
    s
}

fn live_color(l: Live) -> &'static str {
    match l {
        Live::Available => "32",
        Live::Creating => "33",
        Live::Missing | Live::Deleting => "31;1",
        Live::Unknown => "2",
    }
}

pub fn status_text(r: &StatusReport, style: Style) -> String {
    let mut s = String::new();
    if style.verbosity != Verbosity::Quiet {
        s.push_str(&format!(
            "pi-deploy status: deployment `{}` in {}\n",
            r.deployment, r.region
        ));
        if !r.state_found {
            s.push_str("  no state file: nothing is recorded for this deployment (only looked for leaks)\n");
        }
        if let Some(restore) = &r.restore {
            s.push_str(&format!("  {restore}\n"));
        }
        for res in &r.resources {
            let mut line = format!(
                "  {:<26} {:<19} {} {}",
                res.key,
                res.kind.as_str(),
                style.cell(live_color(res.inspection.live), res.inspection.live.as_str(), 10),
                res.id.as_deref().unwrap_or("")
            );
            if res.recorded != Status::Ready {
                line.push_str(&format!("  (recorded as {})", status_name(res.recorded)));
            }
            if let Some(d) = &res.inspection.detail {
                line.push_str(&format!("  ({d})"));
            }
            s.push_str(line.trim_end());
            s.push('\n');
            for d in &res.inspection.drift {
                s.push_str(&format!(
                    "      {} {}: expected {}, found {}\n",
                    style.paint("33", "drift"),
                    d.attribute,
                    d.expected,
                    d.actual
                ));
            }
        }
        if !r.leaks.is_empty() {
            s.push_str("Leaks (tagged with the deployment, not in the state):\n");
            for l in &r.leaks {
                let mut line = format!("  {:<26} {:<19} {}", l.key, l.kind.as_str(), l.id);
                if let Some(rec) = &l.recorded_id {
                    line.push_str(&format!("  (the state records {rec})"));
                }
                s.push_str(&line);
                s.push('\n');
            }
        }
        if let Some(targets) = &r.targets {
            s.push_str("Targets behind the load balancer:\n");
            if targets.is_empty() {
                s.push_str("  none registered\n");
            }
            for t in targets {
                let code = if t.state == "healthy" { "32" } else { "31;1" };
                let mut line = format!("  {:<22} {}", t.id, style.paint(code, &t.state));
                if let Some(reason) = &t.reason {
                    line.push_str(&format!("  ({reason})"));
                }
                s.push_str(&line);
                s.push('\n');
            }
        }
        if let Some(errors) = r.lambda_errors.as_ref().filter(|e| !e.is_empty()) {
            s.push_str("Side-loading Lambda ERROR lines in the last hour:\n");
            for e in errors {
                s.push_str(&format!("  {e}\n"));
            }
        }
        if !r.pending.is_empty() {
            s.push_str("Pending in AWS (made, waiting for the maintenance window):\n");
            for p in &r.pending {
                s.push_str(&format!("  {p}\n"));
            }
        }
    }
    if r.healthy {
        s.push_str(&format!(
            "Status: {} ({} resources).\n",
            style.paint("32;1", "healthy and in sync"),
            r.resources.len()
        ));
    } else {
        s.push_str(&format!(
            "Status: {}:\n",
            style.paint("31;1", &format!("{} problems", r.problems.len()))
        ));
        for p in &r.problems {
            s.push_str(&format!("  - {p}\n"));
        }
    }
    s
}

pub fn outputs_text(outputs: &BTreeMap<String, String>) -> String {
    outputs.iter().map(|(k, v)| format!("{k:<16} {v}\n")).collect()
}

fn outcome_color(o: Outcome) -> &'static str {
    match o {
        Outcome::Copied | Outcome::Deleted => "32",
        Outcome::Unchanged | Outcome::Absent => "2",
        Outcome::Rejected | Outcome::Pending => "33",
        Outcome::Failed => "31;1",
    }
}

/// The receipt of `sideload`: one line per object (outcome, key, and why when it did not
/// end as asked), then the counts. Quiet: only the lines that did not succeed and the counts.
pub fn sideload_text(r: &Receipt, style: Style) -> String {
    let mut s = String::new();
    let quiet = style.verbosity == Verbosity::Quiet;
    if !quiet {
        s.push_str(&format!(
            "pi-deploy sideload: {} s3://{}/{}/ (deployment `{}` in {})\n",
            if r.action == "delete" {
                "deleting from"
            } else {
                "uploading to"
            },
            r.bucket,
            r.folder,
            r.deployment,
            r.region
        ));
    }
    for e in &r.objects {
        if quiet && e.outcome.is_success() {
            continue;
        }
        let shown = match (&e.key, &e.path) {
            (Some(k), _) => k.clone(),
            (None, Some(p)) => p.clone(),
            (None, None) => String::new(),
        };
        let shown: String = shown.escape_debug().collect();
        let mut line = format!(
            "  {} {}",
            style.cell(outcome_color(e.outcome), e.outcome.as_str(), 9),
            shown
        );
        if let Some(d) = &e.detail {
            let by = match e.by {
                Some(Decider::PiDeploy) if e.outcome == Outcome::Rejected => " (not sent)",
                Some(Decider::Lambda) => " (by the Lambda)",
                _ => "",
            };
            line.push_str(&format!("  {}{by}", d.escape_debug()));
        }
        if style.verbosity == Verbosity::Verbose
            && let Some(p) = &e.path
        {
            line.push_str(&format!("  [{}]", p.escape_debug()));
        }
        s.push_str(&line);
        s.push('\n');
    }
    let counts: Vec<String> = r.counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let verdict = if r.objects.is_empty() {
        "nothing to do".to_string()
    } else {
        counts.join(", ")
    };
    s.push_str(&format!(
        "Sideload: {}.\n",
        if r.ok {
            style.paint("32;1", &verdict)
        } else {
            style.paint("31;1", &verdict)
        }
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::sideload::Entry;

    #[test]
    fn the_receipt_names_each_object_its_outcome_and_why() {
        let e = |key: &str, outcome, by, detail: Option<&str>| Entry {
            path: Some(format!("./media/{key}")),
            key: Some(format!("images/media/{key}")),
            size: Some(3),
            outcome,
            by,
            detail: detail.map(String::from),
        };
        let r = Receipt::new(
            "pi",
            "eu-west-1",
            "pi-resources-1-eu-west-1",
            "images",
            "upload",
            vec![
                e("logo.png", Outcome::Copied, Some(Decider::Lambda), None),
                e(
                    "a\nb.png",
                    Outcome::Rejected,
                    Some(Decider::PiDeploy),
                    Some("NUL or control character in key"),
                ),
                e(
                    "evil/x.png",
                    Outcome::Rejected,
                    Some(Decider::Lambda),
                    Some("resolves outside /mnt/efs"),
                ),
                e("old.png", Outcome::Unchanged, None, None),
            ],
        );
        assert_eq!(
            sideload_text(&r, Style::plain(Verbosity::Normal)),
            "pi-deploy sideload: uploading to s3://pi-resources-1-eu-west-1/images/ (deployment `pi` in eu-west-1)\n  \
             rejected  images/media/a\\nb.png  NUL or control character in key (not sent)\n  \
             rejected  images/media/evil/x.png  resolves outside /mnt/efs (by the Lambda)\n  \
             copied    images/media/logo.png\n  \
             unchanged images/media/old.png\n\
             Sideload: 1 copied, 2 rejected, 1 unchanged.\n"
        );
        let quiet = sideload_text(&r, Style::plain(Verbosity::Quiet));
        assert_eq!(quiet.lines().count(), 3, "{quiet}");
    }
}
