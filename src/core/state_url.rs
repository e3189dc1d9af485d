//! Where a deployment's state lives: a local directory (the default, `state/`) or an S3
//! location `s3://BUCKET/PREFIX`, whose objects are `PREFIX/<deployment>.json` (the state)
//! and `PREFIX/<deployment>.lock` (the lock). Parsing and the object keys; pure.

use std::fmt;
use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateLocation {
    Local { dir: PathBuf },
    S3 { bucket: String, prefix: String },
}

/// What a state location must look like, for the `fix:` of an input error.
pub const STATE_URL_RULE: &str = "use s3://BUCKET/PREFIX (a bucket name of 3 to 63 lowercase letters, digits, dots and hyphens; an optional prefix of path segments) or a local directory";

impl StateLocation {
    /// `s3://bucket`, `s3://bucket/team/pi` or a directory path.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("the state location is empty".into());
        }
        let Some(rest) = text.strip_prefix("s3://") else {
            if let Some((scheme, _)) = text.split_once("://") {
                return Err(format!(
                    "`{scheme}://` is not a supported state location; only s3:// is"
                ));
            }
            if text.chars().any(char::is_control) {
                return Err("the directory holds control characters".into());
            }
            return Ok(StateLocation::Local { dir: text.into() });
        };
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        check_bucket(bucket)?;
        let prefix = prefix.trim_end_matches('/');
        if !prefix.is_empty() {
            for seg in prefix.split('/') {
                if seg.is_empty() || seg == "." || seg == ".." {
                    return Err(format!("the prefix `{prefix}` has an empty, `.` or `..` segment"));
                }
            }
            if prefix.chars().any(|c| c.is_control() || c == '\\') {
                return Err(format!("the prefix `{prefix}` holds control characters or backslashes"));
            }
            // S3 keys are at most 1024 bytes; keep room for `/<deployment>.json`.
            if prefix.len() > 900 {
                return Err(format!("the prefix is {} bytes long, over 900", prefix.len()));
            }
        }
        Ok(StateLocation::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    pub fn is_s3(&self) -> bool {
        matches!(self, StateLocation::S3 { .. })
    }
}

/// An S3 location's object keys for one deployment.
pub fn object_key(prefix: &str, deployment: &str, suffix: &str) -> String {
    if prefix.is_empty() {
        format!("{deployment}.{suffix}")
    } else {
        format!("{prefix}/{deployment}.{suffix}")
    }
}

impl fmt::Display for StateLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateLocation::Local { dir } => write!(f, "{}", dir.display()),
            StateLocation::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StateLocation::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

/// S3's rules for a general purpose bucket name.
fn check_bucket(b: &str) -> Result<(), String> {
    let bad = |why: &str| Err(format!("`{b}` is not an S3 bucket name: {why}"));
    if b.is_empty() {
        return Err("no bucket name after s3://".into());
    }
    if !(3..=63).contains(&b.len()) {
        return bad("it must be 3 to 63 characters long");
    }
    if !b
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
    {
        return bad("only lowercase letters, digits, dots and hyphens are allowed");
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !edge_ok(b.chars().next()) || !edge_ok(b.chars().last()) {
        return bad("it must begin and end with a letter or digit");
    }
    if b.contains("..") || b.contains(".-") || b.contains("-.") {
        return bad("dots may not be next to each other or to a hyphen");
    }
    if b.split('.').count() == 4 && b.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return bad("it may not look like an IP address");
    }
    if b.starts_with("xn--") || b.starts_with("sthree-") || b.ends_with("-s3alias") || b.ends_with("--ol-s3") {
        return bad("that prefix or suffix is reserved by S3");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_and_directories() {
        assert_eq!(
            StateLocation::parse("s3://team-state/pi/prod/").unwrap(),
            StateLocation::S3 {
                bucket: "team-state".into(),
                prefix: "pi/prod".into()
            }
        );
        let bare = StateLocation::parse("s3://team-state").unwrap();
        assert_eq!(bare.to_string(), "s3://team-state");
        let StateLocation::S3 { prefix, .. } = &bare else {
            panic!()
        };
        assert_eq!(object_key(prefix, "pi", "json"), "pi.json");
        assert_eq!(object_key("a/b", "pi", "lock"), "a/b/pi.lock");
        assert_eq!(
            StateLocation::parse("state").unwrap(),
            StateLocation::Local { dir: "state".into() }
        );
        assert_eq!(
            StateLocation::parse("s3://b.example.com/x").unwrap().to_string(),
            "s3://b.example.com/x"
        );
    }

    #[test]
    fn bad_locations_say_what_is_wrong() {
        for (bad, why) in [
            ("", "empty"),
            ("s3://", "no bucket"),
            ("s3://ab", "3 to 63"),
            ("s3://Team", "lowercase"),
            ("s3://team_state", "lowercase"),
            ("s3://-team", "begin and end"),
            ("s3://a..b", "dots"),
            ("s3://192.168.1.1", "IP address"),
            ("s3://xn--abc", "reserved"),
            ("s3://team/a//b", "empty"),
            ("s3://team/a/../b", "`..`"),
            ("gs://team/x", "gs://"),
            ("s3://team/a\nb", "control"),
        ] {
            let e = StateLocation::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
        let long = format!("s3://team/{}", "a".repeat(901));
        assert!(StateLocation::parse(&long).unwrap_err().contains("900"));
    }
}
