//! `pi-deploy logs`, the pure part: `--since`, how one event is shown, and what is new in
//! an instance's console output since the last read (`--follow`).

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// `--since`: a duration back from `now` (`90s`, `15m`, `1h`, `2d`, `1w`) or an RFC 3339
/// time (`2026-12-06T09:00:00Z`); epoch milliseconds.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> Result<i64, String> {
    let t = text.trim();
    if let Ok(at) = DateTime::parse_from_rfc3339(t) {
        let at = at.with_timezone(&Utc);
        if at > now {
            return Err(format!("{t} is in the future"));
        }
        return Ok(at.timestamp_millis());
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("`{t}` is neither a duration (30s, 15m, 1h, 2d, 1w) nor an RFC 3339 time"))?;
    let back = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        _ => None,
    }
    .filter(|d| *d > Duration::zero())
    .ok_or_else(|| format!("`{t}` is neither a duration (30s, 15m, 1h, 2d, 1w) nor an RFC 3339 time"))?;
    now.checked_sub_signed(back)
        .map(|at| at.timestamp_millis())
        .ok_or_else(|| format!("`{t}` reaches back too far"))
}

/// One log event of the Lambda.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LogEvent {
    #[serde(skip)]
    pub id: String,
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub stream: String,
    pub message: String,
}

/// `2026-12-06T10:00:00.123Z  message` (the stream too with `verbose`); a multi-line
/// message keeps its lines.
pub fn event_line(e: &LogEvent, verbose: bool) -> String {
    let at = DateTime::<Utc>::from_timestamp_millis(e.timestamp)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| e.timestamp.to_string());
    let message = e.message.trim_end_matches(['\n', '\r']);
    if verbose {
        format!("{at}  {}  {message}", e.stream)
    } else {
        format!("{at}  {message}")
    }
}

/// What `current` holds that `previous` did not: console output is a rolling window of
/// the instance's last output, so the new text starts after the longest end of `previous`
/// that `current` begins with... or, when the window moved, after the last place
/// `previous`'s tail shows up. When nothing matches, all of `current` is new.
pub fn new_console_text<'a>(previous: &str, current: &'a str) -> &'a str {
    if previous.is_empty() {
        return current;
    }
    if let Some(rest) = current.strip_prefix(previous) {
        return rest;
    }
    let tail_start = previous.char_indices().rev().nth(255).map_or(0, |(i, _)| i);
    let tail = &previous[tail_start..];
    match current.rfind(tail) {
        Some(at) => &current[at + tail.len()..],
        None => current,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn since_takes_durations_and_times() {
        let ms = now().timestamp_millis();
        assert_eq!(parse_since("1h", now()), Ok(ms - 3_600_000));
        assert_eq!(parse_since("90s", now()), Ok(ms - 90_000));
        assert_eq!(parse_since("15m", now()), Ok(ms - 900_000));
        assert_eq!(parse_since("2d", now()), Ok(ms - 2 * 86_400_000));
        assert_eq!(parse_since("1w", now()), Ok(ms - 7 * 86_400_000));
        assert_eq!(parse_since("2026-12-06T09:30:00Z", now()), Ok(ms - 1_800_000));
        assert_eq!(parse_since("2026-12-06T10:30:00+01:00", now()), Ok(ms - 1_800_000));
        for bad in ["", "h", "1", "1y", "-1h", "0m", "soon", "1.5h", "99999999999999999999d"] {
            assert!(parse_since(bad, now()).is_err(), "{bad}");
        }
        assert!(
            parse_since("2026-12-06T11:00:00Z", now())
                .unwrap_err()
                .contains("future")
        );
    }

    #[test]
    fn an_event_shows_its_time_and_message() {
        let e = LogEvent {
            id: "1".into(),
            timestamp: now().timestamp_millis() + 123,
            stream: "2026/12/06/[$LATEST]abc".into(),
            message: "action=copy bucket='b' key='images/a.png' size=3\n".into(),
        };
        assert_eq!(
            event_line(&e, false),
            "2026-12-06T10:00:00.123Z  action=copy bucket='b' key='images/a.png' size=3"
        );
        assert!(event_line(&e, true).contains("  2026/12/06/[$LATEST]abc  action=copy"));
    }

    #[test]
    fn only_new_console_text_is_shown_again() {
        assert_eq!(new_console_text("", "boot\n"), "boot\n");
        assert_eq!(new_console_text("boot\n", "boot\nlogin:\n"), "login:\n");
        assert_eq!(new_console_text("boot\n", "boot\n"), "");
        // The window moved: the start of the old text is gone.
        let old: String = (0..100).map(|i| format!("line {i}\n")).collect();
        let new: String = (50..120).map(|i| format!("line {i}\n")).collect();
        let expected: String = (100..120).map(|i| format!("line {i}\n")).collect();
        assert_eq!(new_console_text(&old, &new), expected);
        // Nothing in common: all of it.
        assert_eq!(new_console_text("abc", "xyz"), "xyz");
    }
}
