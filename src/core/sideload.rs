//! `pi-deploy sideload`, the pure part: which object key a local file becomes, the key
//! rules the side-loading Lambda applies (checked before any upload, so nothing it would
//! refuse is sent), the ETag S3 gives an upload (to skip files already copied), how the
//! Lambda's per-object outcome is read back (its tags for copies, its log lines for
//! deletions), and the receipt.
//!
//! The key rules are the Lambda's `_validate_key` (lambda/sideload/handler.py) with the
//! same reasons; both are tested against one list, `lambda/tests/key_rules.json`.

use std::collections::BTreeMap;

use md5::{Digest, Md5};
use serde::Serialize;

use super::spec::SIDELOAD_PREFIXES;

/// The tags the Lambda sets on each created object once it handled it.
pub const OUTCOME_TAG: &str = "pi-deploy:sideload";
pub const ETAG_TAG: &str = "pi-deploy:etag";
pub const DETAIL_TAG: &str = "pi-deploy:detail";

/// S3's longest key, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Files at least this big are sent as a multipart upload, in parts of `part_size`.
pub const MULTIPART_THRESHOLD: u64 = 8 * MIB;
const MIB: u64 = 1024 * 1024;
/// S3 allows at most this many parts; the part size grows for files above 80 GiB.
const MAX_PARTS: u64 = 10_000;
/// S3's largest object.
pub const MAX_OBJECT_BYTES: u64 = 5 * 1024 * 1024 * MIB;

/// The folders the Lambda accepts, in its own order (`ALLOWED_FOLDERS`).
pub fn folders() -> Vec<&'static str> {
    SIDELOAD_PREFIXES.iter().map(|p| p.trim_end_matches('/')).collect()
}

/// Why the Lambda would refuse `key`, in its own words; `None` when it accepts it.
/// Also refused here: keys longer than S3 allows.
pub fn key_problem(key: &str) -> Option<String> {
    if key.is_empty() {
        return Some("empty key".into());
    }
    if key.contains('\\') {
        return Some("backslash in key".into());
    }
    if key.chars().any(|c| (c as u32) < 0x20 || c as u32 == 0x7F) {
        return Some("NUL or control character in key".into());
    }
    if key.starts_with('/') {
        return Some("absolute key".into());
    }
    let parts: Vec<&str> = key.split('/').collect();
    let allowed = folders();
    if !allowed.contains(&parts[0]) {
        return Some(format!("not in an allowed folder ({})", allowed.join(", ")));
    }
    if parts.len() < 2 {
        return Some("folder name without an object name".into());
    }
    if parts.iter().any(|p| matches!(*p, "" | "." | "..")) {
        return Some("empty, '.' or '..' path segment".into());
    }
    if key.len() > MAX_KEY_BYTES {
        return Some(format!("{} bytes long; S3 keys are at most {MAX_KEY_BYTES}", key.len()));
    }
    None
}

/// The key of a file: the folder, then the path's components (each must be UTF-8 text).
/// `components` are relative to what the operator named: a file `logo.png` given as
/// `./img/logo.png` is `["logo.png"]`; a file inside a named directory `img` is
/// `["img", "sub", "a.png"]` (the directory's own name is kept, like `cp -r img images/`).
pub fn key_for(folder: &str, components: &[&std::ffi::OsStr]) -> Result<String, String> {
    let mut key = folder.to_string();
    for c in components {
        let text = c
            .to_str()
            .ok_or_else(|| "the name is not UTF-8 text (S3 keys are)".to_string())?;
        key.push('/');
        key.push_str(text);
    }
    Ok(key)
}

/// The part size for a file of `len` bytes: 8 MiB, or more (whole MiB) to stay within
/// S3's 10,000 parts.
pub fn part_size(len: u64) -> u64 {
    let needed = len.div_ceil(MAX_PARTS);
    needed.div_ceil(MIB).max(8) * MIB
}

/// The ETag S3 gives an object uploaded the way `sideload` uploads it (SSE-S3): the MD5
/// of the bytes for a single PUT; for a multipart upload the MD5 of the parts' MD5s,
/// then `-<parts>`. Fed the file's bytes in order, in any chunking.
pub struct EtagHasher {
    multipart: bool,
    part_size: u64,
    in_part: u64,
    part: Md5,
    parts: Vec<[u8; 16]>,
}

impl EtagHasher {
    pub fn new(len: u64) -> Self {
        Self {
            multipart: len >= MULTIPART_THRESHOLD,
            part_size: part_size(len),
            in_part: 0,
            part: Md5::new(),
            parts: Vec::new(),
        }
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        if !self.multipart {
            self.part.update(bytes);
            return;
        }
        while !bytes.is_empty() {
            let room = (self.part_size - self.in_part) as usize;
            let (now, rest) = bytes.split_at(room.min(bytes.len()));
            self.part.update(now);
            self.in_part += now.len() as u64;
            bytes = rest;
            if self.in_part == self.part_size {
                self.close_part();
            }
        }
    }

    fn close_part(&mut self) {
        let done = std::mem::replace(&mut self.part, Md5::new());
        self.parts.push(done.finalize().into());
        self.in_part = 0;
    }

    pub fn finish(mut self) -> String {
        if !self.multipart {
            return hex(&self.part.finalize());
        }
        if self.in_part > 0 {
            self.close_part();
        }
        let mut all = Md5::new();
        for p in &self.parts {
            all.update(p);
        }
        format!("{}-{}", hex(&all.finalize()), self.parts.len())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An ETag as S3 quotes it (`"abc"`) or the Lambda's tag holds it (`abc`), compared bare.
pub fn bare_etag(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// What happened to one object (or, for a path refused before any upload, to its file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// The Lambda copied it onto EFS.
    Copied,
    /// Already in the bucket with the same content and copied by the Lambda: not sent again.
    Unchanged,
    /// Refused (by pi-deploy before uploading, or by the Lambda); see `detail`.
    Rejected,
    /// The Lambda failed to copy or delete it; `detail` holds its error line.
    Failed,
    /// No outcome from the Lambda before the time ran out.
    Pending,
    /// Deleted from the bucket, and the Lambda removed the file from EFS.
    Deleted,
    /// Deleted from the bucket; the Lambda found no file on EFS. Or: no such object.
    Absent,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Copied => "copied",
            Outcome::Unchanged => "unchanged",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
            Outcome::Pending => "pending",
            Outcome::Deleted => "deleted",
            Outcome::Absent => "absent",
        }
    }

    /// Whether the object ended as the operator asked.
    pub fn is_success(self) -> bool {
        matches!(
            self,
            Outcome::Copied | Outcome::Unchanged | Outcome::Deleted | Outcome::Absent
        )
    }
}

/// Who decided a rejection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Decider {
    /// Refused before the upload: nothing was sent.
    #[serde(rename = "pi-deploy")]
    PiDeploy,
    #[serde(rename = "lambda")]
    Lambda,
}

/// One line of the receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Entry {
    /// The local file (uploads) as given, lossily shown when not UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The object key (`None` when the path has no valid key at all, e.g. not UTF-8).
    pub key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    pub outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<Decider>,
    /// Why it was rejected, or the Lambda's error line.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The `--json` document of `sideload`; the human receipt shows the same.
#[derive(Clone, Debug, Serialize)]
pub struct Receipt {
    pub deployment: String,
    pub region: String,
    pub bucket: String,
    pub folder: String,
    /// `upload` or `delete`.
    pub action: &'static str,
    pub objects: Vec<Entry>,
    pub counts: BTreeMap<&'static str, usize>,
    /// Every object ended as asked (copied, unchanged, deleted or absent).
    pub ok: bool,
}

impl Receipt {
    pub fn new(
        deployment: &str,
        region: &str,
        bucket: &str,
        folder: &str,
        action: &'static str,
        mut objects: Vec<Entry>,
    ) -> Self {
        objects.sort_by(|a, b| (&a.key, &a.path).cmp(&(&b.key, &b.path)));
        let mut counts = BTreeMap::new();
        for o in &objects {
            *counts.entry(o.outcome.as_str()).or_insert(0) += 1;
        }
        Self {
            deployment: deployment.into(),
            region: region.into(),
            bucket: bucket.into(),
            folder: folder.into(),
            action,
            ok: objects.iter().all(|o| o.outcome.is_success()),
            objects,
            counts,
        }
    }
}

/// The Lambda's outcome for one uploaded object, from the object's tags: `None` while it
/// has not reported on *this* upload (no tags yet, or tags about an earlier version).
pub fn outcome_from_tags(tags: &[(String, String)], uploaded_etag: &str) -> Option<(Outcome, Option<String>)> {
    let get = |k: &str| tags.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
    if get(ETAG_TAG).map(bare_etag) != Some(bare_etag(uploaded_etag)) {
        return None;
    }
    let detail = get(DETAIL_TAG).filter(|d| !d.is_empty()).map(String::from);
    match get(OUTCOME_TAG)? {
        "copied" => Some((Outcome::Copied, None)),
        "rejected" => Some((Outcome::Rejected, detail)),
        "failed" => Some((Outcome::Failed, detail)),
        _ => None,
    }
}

/// What one log line of the Lambda says about a deleted object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteReport {
    pub bucket: String,
    pub key: String,
    pub outcome: Outcome,
    pub detail: Option<String>,
}

/// Reads a line the Lambda logs for a removed object (the Lambda runtime prefixes level,
/// time and request id): `action=delete bucket='b' key='k' result=deleted|already absent`,
/// `action=reject bucket='b' key='k' reason='...'`, or
/// `action=delete-failed bucket='b' key='k' error=Type: message`. Keys are Python
/// `repr`s. Other lines (copies, skips) give `None`; a rejection line is about a removal
/// only when the caller knows it deleted that key.
pub fn parse_delete_line(line: &str) -> Option<DeleteReport> {
    let at = line.find("action=")?;
    let rest = &line[at + "action=".len()..];
    let (action, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("bucket=")?;
    let (bucket, rest) = python_str(rest)?;
    let rest = rest.strip_prefix(" key=")?;
    let (key, rest) = python_str(rest)?;
    let rest = rest.trim_start();
    let (outcome, detail) = match action {
        "delete" => match rest.strip_prefix("result=")?.trim_end() {
            "deleted" => (Outcome::Deleted, None),
            "already absent" => (Outcome::Absent, None),
            _ => return None,
        },
        "reject" => {
            let (reason, _) = python_str(rest.strip_prefix("reason=")?)?;
            (Outcome::Rejected, Some(reason))
        }
        "delete-failed" => (
            Outcome::Failed,
            Some(rest.strip_prefix("error=")?.trim_end().to_string()),
        ),
        _ => return None,
    };
    Some(DeleteReport {
        bucket,
        key,
        outcome,
        detail,
    })
}

/// One Python `repr` of a str at the start of `s` (`'...'` or `"..."`, with `\\`, `\'`,
/// `\"`, `\n`, `\r`, `\t`, `\xHH`, `\uHHHH`, `\UHHHHHHHH` escapes) and the rest of `s`.
fn python_str(s: &str) -> Option<(String, &str)> {
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let mut out = String::new();
    let mut chars = s[1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Some((out, &s[1 + i + 1..])),
            '\\' => {
                let (_, e) = chars.next()?;
                let mut hex = |n: usize| -> Option<char> {
                    let digits: String = (0..n).filter_map(|_| chars.next().map(|(_, d)| d)).collect();
                    (digits.len() == n)
                        .then(|| u32::from_str_radix(&digits, 16).ok())
                        .flatten()
                        .and_then(char::from_u32)
                };
                out.push(match e {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'x' => hex(2)?,
                    'u' => hex(4)?,
                    'U' => hex(8)?,
                    other => other,
                });
            }
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use std::ffi::OsStr;

    use super::*;

    /// The list the Lambda's pytest suite checks `_validate_key` against.
    const KEY_RULES: &str = include_str!("../../lambda/tests/key_rules.json");

    #[test]
    fn keys_are_refused_exactly_as_the_lambda_refuses_them() {
        let doc: serde_json::Value = serde_json::from_str(KEY_RULES).unwrap();
        let cases = doc["cases"].as_array().unwrap();
        assert!(cases.len() >= 20);
        for case in cases {
            let key = case["key"].as_str().unwrap();
            let expected = case["reason"].as_str();
            assert_eq!(key_problem(key).as_deref(), expected, "key {key:?}");
        }
    }

    #[test]
    fn folders_are_the_lambdas_in_its_order() {
        assert_eq!(folders(), ["images", "themes", "excel-data", "svg", "keys"]);
    }

    #[test]
    fn keys_longer_than_s3_allows_are_refused() {
        let long = format!("images/{}", "a".repeat(MAX_KEY_BYTES));
        assert!(key_problem(&long).unwrap().contains("at most 1024"));
        let fits = format!("images/{}", "a".repeat(MAX_KEY_BYTES - "images/".len()));
        assert_eq!(key_problem(&fits), None);
    }

    #[test]
    fn a_key_is_the_folder_and_the_names_joined_by_slashes() {
        let names = [OsStr::new("media"), OsStr::new("sub dir"), OsStr::new("a+b.png")];
        assert_eq!(key_for("images", &names).unwrap(), "images/media/sub dir/a+b.png");
        assert_eq!(
            key_for("keys", &[OsStr::new("licence.key")]).unwrap(),
            "keys/licence.key"
        );
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt;
            let bad = OsStr::from_bytes(b"caf\xe9.png");
            assert!(key_for("images", &[bad]).unwrap_err().contains("not UTF-8"));
        }
    }

    #[test]
    fn single_part_etag_is_the_md5_of_the_bytes() {
        let mut h = EtagHasher::new(3);
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish(), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(EtagHasher::new(0).finish(), "d41d8cd98f00b204e9800998ecf8427e");
    }

    #[test]
    fn multipart_etag_is_the_md5_of_the_part_md5s_and_the_count() {
        let len = MULTIPART_THRESHOLD + 5;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut h = EtagHasher::new(len);
        for chunk in data.chunks(1_000_003) {
            h.update(chunk);
        }
        let (a, b) = data.split_at(part_size(len) as usize);
        let mut all = Md5::new();
        all.update(Md5::digest(a));
        all.update(Md5::digest(b));
        assert_eq!(h.finish(), format!("{}-2", hex(&all.finalize())));
        // Exactly one part's worth is still multipart (one part).
        let mut one = EtagHasher::new(MULTIPART_THRESHOLD);
        one.update(&vec![0u8; MULTIPART_THRESHOLD as usize]);
        assert!(one.finish().ends_with("-1"));
    }

    #[test]
    fn part_size_stays_within_ten_thousand_parts() {
        assert_eq!(part_size(1), 8 * MIB);
        assert_eq!(part_size(80 * 1024 * MIB), 9 * MIB);
        for len in [MULTIPART_THRESHOLD, 100 * 1024 * MIB, MAX_OBJECT_BYTES] {
            let p = part_size(len);
            assert_eq!(p % MIB, 0);
            assert!(len.div_ceil(p) <= MAX_PARTS, "{len}");
            assert!(p <= 5 * 1024 * MIB, "S3 parts are at most 5 GiB");
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_outcome_counts_only_for_the_uploaded_version() {
        let copied = tags(&[(OUTCOME_TAG, "copied"), (ETAG_TAG, "abc")]);
        assert_eq!(outcome_from_tags(&copied, "\"abc\""), Some((Outcome::Copied, None)));
        assert_eq!(
            outcome_from_tags(&copied, "\"def\""),
            None,
            "an earlier upload's outcome"
        );
        assert_eq!(outcome_from_tags(&[], "\"abc\""), None);
        let rejected = tags(&[
            (ETAG_TAG, "abc"),
            (OUTCOME_TAG, "rejected"),
            (DETAIL_TAG, "resolves outside /mnt/efs"),
        ]);
        assert_eq!(
            outcome_from_tags(&rejected, "abc"),
            Some((Outcome::Rejected, Some("resolves outside /mnt/efs".into())))
        );
        let failed = tags(&[(OUTCOME_TAG, "failed"), (ETAG_TAG, "abc"), (DETAIL_TAG, "OSError: x")]);
        assert_eq!(
            outcome_from_tags(&failed, "abc"),
            Some((Outcome::Failed, Some("OSError: x".into())))
        );
        let odd = tags(&[(OUTCOME_TAG, "maybe"), (ETAG_TAG, "abc")]);
        assert_eq!(outcome_from_tags(&odd, "abc"), None);
    }

    #[test]
    fn delete_lines_are_read_as_the_lambda_writes_them() {
        let runtime = "[INFO]\t2026-12-06T10:00:00.000Z\t0f1e2d3c-aaaa\taction=delete bucket='pi-resources' key='images/a b.png' result=deleted";
        assert_eq!(
            parse_delete_line(runtime),
            Some(DeleteReport {
                bucket: "pi-resources".into(),
                key: "images/a b.png".into(),
                outcome: Outcome::Deleted,
                detail: None,
            })
        );
        let absent = r#"action=delete bucket='b' key="images/it's.png" result=already absent"#;
        let r = parse_delete_line(absent).unwrap();
        assert_eq!((r.key.as_str(), r.outcome), ("images/it's.png", Outcome::Absent));
        let both = r#"action=delete bucket='b' key='images/it\'s "x" caf\xe9\u2603.png' result=deleted"#;
        assert_eq!(parse_delete_line(both).unwrap().key, "images/it's \"x\" café☃.png");
        let reject = "[WARNING]\tt\tr\taction=reject bucket='b' key='images/dir' reason='target is a directory'";
        let r = parse_delete_line(reject).unwrap();
        assert_eq!(r.outcome, Outcome::Rejected);
        assert_eq!(r.detail.as_deref(), Some("target is a directory"));
        let failed = "[ERROR]\tt\tr\taction=delete-failed bucket='b' key='images/x' error=PermissionError: [Errno 13] Permission denied: '/mnt/efs/images/x'";
        let r = parse_delete_line(failed).unwrap();
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(
            r.detail.as_deref(),
            Some("PermissionError: [Errno 13] Permission denied: '/mnt/efs/images/x'")
        );
        for other in [
            "action=copy bucket='b' key='images/x' size=3",
            "action=skip bucket='b' key='images/' reason='folder marker'",
            "START RequestId: 1 Version: $LATEST",
            "action=delete bucket='b' key='unterminated",
            "",
        ] {
            assert_eq!(parse_delete_line(other), None, "{other}");
        }
    }

    #[test]
    fn the_receipt_counts_each_outcome_and_is_ok_only_when_all_succeeded() {
        let entry = |key: &str, outcome| Entry {
            path: None,
            key: Some(key.into()),
            size: None,
            outcome,
            by: None,
            detail: None,
        };
        let r = Receipt::new(
            "pi",
            "eu-west-1",
            "b",
            "images",
            "upload",
            vec![
                entry("images/b", Outcome::Copied),
                entry("images/a", Outcome::Unchanged),
            ],
        );
        assert!(r.ok);
        assert_eq!(r.objects[0].key.as_deref(), Some("images/a"));
        assert_eq!(r.counts.get("copied"), Some(&1));
        let r = Receipt::new(
            "pi",
            "eu-west-1",
            "b",
            "images",
            "upload",
            vec![entry("images/a", Outcome::Copied), entry("images/c", Outcome::Pending)],
        );
        assert!(!r.ok);
        for o in [Outcome::Rejected, Outcome::Failed, Outcome::Pending] {
            assert!(!o.is_success(), "{o:?}");
        }
    }
}
