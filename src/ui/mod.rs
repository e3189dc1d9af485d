//! Draws core events: NDJSON for machines, live lines for people (indicatif on a terminal,
//! one plain line per change otherwise). Progress goes to stderr; results to stdout.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub mod report;

use crate::core::event::{Event, EventSink, ResourceStatus};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    Quiet,
    Normal,
    Verbose,
}

/// Prints each event as one JSON object per line on stdout.
pub struct JsonSink;

impl EventSink for JsonSink {
    fn emit(&self, event: Event) {
        let mut out = std::io::stdout().lock();
        if let Ok(line) = serde_json::to_string(&event) {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// The human display.
pub struct HumanSink {
    verbosity: Verbosity,
    color: bool,
    started: Instant,
    live: Option<MultiProgress>,
    bars: Mutex<BTreeMap<String, ProgressBar>>,
}

impl HumanSink {
    pub fn new(verbosity: Verbosity, color: bool) -> Self {
        let live = (std::io::stderr().is_terminal() && verbosity != Verbosity::Quiet)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(8)));
        Self {
            verbosity,
            color,
            started: Instant::now(),
            live,
            bars: Mutex::new(BTreeMap::new()),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn status_text(&self, status: ResourceStatus) -> String {
        let s = status.as_str();
        match status {
            ResourceStatus::Ready | ResourceStatus::Updated | ResourceStatus::Deleted => self.paint("32", s),
            ResourceStatus::Updating => self.paint("33", s),
            ResourceStatus::Failed => self.paint("31;1", s),
            ResourceStatus::Skipped => self.paint("33", s),
            ResourceStatus::Adopted => self.paint("36", s),
            _ => s.to_string(),
        }
    }

    fn line(&self, text: String) {
        match &self.live {
            Some(mp) => {
                let _ = mp.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    fn clock(&self) -> String {
        format!("[{:>6.1}s]", self.started.elapsed().as_secs_f64())
    }

    fn resource(
        &self,
        key: &str,
        kind: &str,
        status: ResourceStatus,
        elapsed_ms: u64,
        id: Option<&str>,
        message: Option<&str>,
    ) {
        let took = format!("{:.1}s", elapsed_ms as f64 / 1000.0);
        let id = id.unwrap_or("");
        let text = format!(
            "{:<26} {:<17} {:<9} {:>7}  {id}",
            key,
            kind,
            self.status_text(status),
            took
        );
        let Some(mp) = &self.live else {
            // Plain output: one line per change, fewer in quiet mode.
            let show = match self.verbosity {
                Verbosity::Quiet => status == ResourceStatus::Failed,
                Verbosity::Normal => status != ResourceStatus::Waiting || message.is_some(),
                Verbosity::Verbose => true,
            };
            if show {
                self.line(format!("{} {text}", self.clock()));
            }
            if let Some(m) = message {
                self.line(format!("           {}", m.replace('\n', "\n           ")));
            }
            return;
        };
        let mut bars = self.bars.lock().unwrap();
        if status.is_final() {
            if let Some(bar) = bars.remove(key) {
                bar.finish_and_clear();
                mp.remove(&bar);
            }
            self.line(format!("{} {text}", self.clock()));
            if let Some(m) = message {
                self.line(format!("           {}", m.replace('\n', "\n           ")));
            }
        } else {
            let bar = bars.entry(key.to_string()).or_insert_with(|| {
                let bar = mp.add(ProgressBar::new_spinner());
                bar.set_style(ProgressStyle::with_template("{spinner} {msg} {elapsed:>4}").unwrap());
                bar.enable_steady_tick(Duration::from_millis(125));
                bar
            });
            bar.set_message(format!("{:<26} {:<17} {:<9} {id}", key, kind, status.as_str()));
        }
    }
}

impl EventSink for HumanSink {
    fn emit(&self, event: Event) {
        match event {
            Event::RunStarted {
                command,
                deployment,
                region,
                planned,
                unchanged,
            } => {
                if self.verbosity != Verbosity::Quiet {
                    self.line(format!(
                        "pi-deploy {command}: deployment `{deployment}` in {region}: {planned} to do, {unchanged} already done"
                    ));
                }
            }
            Event::Resource {
                key,
                kind,
                status,
                elapsed_ms,
                id,
                message,
            } => self.resource(
                &key,
                kind.as_str(),
                status,
                elapsed_ms,
                id.as_deref(),
                message.as_deref(),
            ),
            // Quiet shows only errors and the final result.
            Event::Warning { message } => {
                if self.verbosity != Verbosity::Quiet {
                    self.line(format!("{} {message}", self.paint("33;1", "warning:")))
                }
            }
            Event::Upgrade { message, .. } | Event::Snapshot { message, .. } | Event::Restore { message, .. } => {
                if self.verbosity != Verbosity::Quiet {
                    self.line(format!("{} {message}", self.clock()));
                }
            }
            Event::Phase { name, elapsed_ms } => {
                if self.verbosity != Verbosity::Quiet {
                    self.line(format!(
                        "{} phase `{name}` done after {:.1}s",
                        self.clock(),
                        elapsed_ms as f64 / 1000.0
                    ));
                }
            }
            Event::Usable { url, elapsed_ms } => {
                if self.verbosity != Verbosity::Quiet {
                    self.line(format!(
                        "{} {} after {}: {url}",
                        self.clock(),
                        self.paint("32;1", "dashboard usable"),
                        crate::core::usable::duration_text(elapsed_ms)
                    ));
                }
            }
            Event::RunFinished {
                command,
                ok,
                elapsed_ms,
                usable_ms,
                counts,
                outputs,
                error,
            } => {
                let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
                let verdict = if ok {
                    self.paint("32;1", "done")
                } else {
                    self.paint("31;1", "failed")
                };
                self.line(format!(
                    "pi-deploy {command} {verdict} in {:.1}s ({})",
                    elapsed_ms as f64 / 1000.0,
                    summary.join(", ")
                ));
                if let Some(timing) = crate::core::usable::summary(usable_ms, elapsed_ms) {
                    self.line(timing);
                }
                if let Some(e) = error {
                    self.line(format!("{} {}", self.paint("31;1", "error:"), e));
                }
                if !outputs.is_empty() {
                    let mut out = std::io::stdout().lock();
                    for (k, v) in outputs {
                        let _ = writeln!(out, "{k:<16} {v}");
                    }
                }
            }
        }
    }
}
