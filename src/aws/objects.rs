//! Conditional reads and writes of S3 objects: the only S3 calls the S3 state store makes
//! (src/state_s3.rs). Behind a small trait, so the store's logic (lock, compare-and-swap,
//! refresh, release) also runs against a scripted fake where moto is lenient or where AWS
//! answers what moto never does (409 ConditionalRequestConflict, a lost answer).
//!
//! moto 5.2.5 serves both conditions on PutObject (412 PreconditionFailed; `If-Match` on a
//! key that does not exist answers 404 NoSuchKey, as AWS does) and `If-Match` on
//! DeleteObject. Its check is not atomic (a read, then the write, without a lock); in
//! `tests/emu/probe_conditional_writes.py`'s 60 rounds of 8 concurrent writers each, exactly
//! one writer won every round, with either condition.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use chrono::{DateTime, Utc};

use super::error::{is_conditional_conflict, is_precondition_failed, sdk};
use crate::core::resource::{ErrorClass, ResourceError};

/// An object as read: its bytes and what identifies this version of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub bytes: Vec<u8>,
    pub etag: String,
    pub version_id: Option<String>,
    pub last_modified: Option<DateTime<Utc>>,
}

/// The condition a write is made under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Condition {
    /// `If-None-Match: *`: only if no object has the key.
    IfAbsent,
    /// `If-Match: <etag>`: only if the object is still this version.
    IfMatch(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    pub etag: String,
    pub version_id: Option<String>,
}

/// One version of an object (or a delete marker) in a versioned bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    pub version_id: String,
    pub last_modified: Option<DateTime<Utc>>,
    pub size: i64,
    pub is_latest: bool,
    /// A delete marker: the object was deleted at this point (e.g. by `destroy`).
    pub deleted: bool,
}

#[derive(Debug)]
pub enum ObjectError {
    /// The condition did not hold: another writer changed the object, or (for `If-Match`)
    /// the object no longer exists.
    ConditionFailed,
    /// Another conditional write of the key is in progress (409): try again.
    Busy,
    Failed(ResourceError),
}

impl std::fmt::Display for ObjectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ObjectError::ConditionFailed => write!(f, "the object changed (precondition failed)"),
            ObjectError::Busy => write!(f, "another conditional write of the object is in progress"),
            ObjectError::Failed(e) => write!(f, "{e}"),
        }
    }
}

/// Conditional object operations on one bucket.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    /// The object (a given version of it), `None` when there is none.
    async fn get(&self, key: &str, version: Option<&str>) -> Result<Option<Object>, ObjectError>;
    async fn put(&self, key: &str, bytes: Vec<u8>, condition: Condition) -> Result<Written, ObjectError>;
    /// Delete, only if the object is still `if_match` when given. A missing object is not an error.
    async fn delete(&self, key: &str, if_match: Option<&str>) -> Result<(), ObjectError>;
    /// Every version of exactly this key, newest first.
    async fn versions(&self, key: &str) -> Result<Vec<Version>, ObjectError>;
}

/// The S3 implementation.
pub struct S3Objects {
    pub client: Client,
    pub bucket: String,
}

impl S3Objects {
    /// A client of the state bucket: the caller's credentials, the bucket's region, path-style
    /// addressing when an endpoint is set (as `Clients`), no fence and no call counter (the
    /// state's calls are not the deployment's).
    pub fn new(config: &aws_config::SdkConfig, region: &str, bucket: &str) -> Self {
        let conf = aws_sdk_s3::config::Builder::from(config)
            .region(aws_config::Region::new(region.to_string()))
            .force_path_style(config.endpoint_url().is_some())
            .build();
        Self {
            client: Client::from_conf(conf),
            bucket: bucket.to_string(),
        }
    }
}

fn chrono_time(t: &aws_smithy_types::DateTime) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.secs(), t.subsec_nanos())
}

/// The classification of a conditional request's failure.
fn classify<E, R>(what: &str, e: aws_smithy_runtime_api::client::result::SdkError<E, R>, if_match: bool) -> ObjectError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match e.code() {
        Some(c) if is_precondition_failed(c) => ObjectError::ConditionFailed,
        Some(c) if is_conditional_conflict(c) => ObjectError::Busy,
        _ => {
            let e = sdk(what, e);
            // `If-Match` naming an object that is gone: the condition does not hold.
            if if_match && e.class == ErrorClass::NotFound {
                ObjectError::ConditionFailed
            } else {
                ObjectError::Failed(e)
            }
        }
    }
}

#[async_trait]
impl ObjectStore for S3Objects {
    async fn get(&self, key: &str, version: Option<&str>) -> Result<Option<Object>, ObjectError> {
        let what = format!("reading s3://{}/{key}", self.bucket);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .set_version_id(version.map(String::from))
            .send()
            .await;
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                let e = sdk(&what, e);
                return match e.class {
                    ErrorClass::NotFound if version.is_none() => Ok(None),
                    _ => Err(ObjectError::Failed(e)),
                };
            }
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let version_id = out.version_id().map(String::from);
        let last_modified = out.last_modified().and_then(chrono_time);
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| {
                ObjectError::Failed(ResourceError::new(
                    ErrorClass::Transient,
                    format!("{what}: the body could not be read: {e}"),
                ))
            })?
            .into_bytes()
            .to_vec();
        Ok(Some(Object {
            bytes,
            etag,
            version_id,
            last_modified,
        }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, condition: Condition) -> Result<Written, ObjectError> {
        let what = format!("writing s3://{}/{key}", self.bucket);
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(bytes));
        let if_match = matches!(condition, Condition::IfMatch(_));
        req = match condition {
            Condition::IfAbsent => req.if_none_match("*"),
            Condition::IfMatch(etag) => req.if_match(etag),
        };
        let out = req.send().await.map_err(|e| classify(&what, e, if_match))?;
        Ok(Written {
            etag: out.e_tag().unwrap_or_default().to_string(),
            version_id: out.version_id().map(String::from),
        })
    }

    async fn delete(&self, key: &str, if_match: Option<&str>) -> Result<(), ObjectError> {
        let what = format!("deleting s3://{}/{key}", self.bucket);
        let out = self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .set_if_match(if_match.map(String::from))
            .send()
            .await;
        match out.map_err(|e| classify(&what, e, false)) {
            Ok(_) => Ok(()),
            Err(ObjectError::Failed(e)) if e.class == ErrorClass::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn versions(&self, key: &str) -> Result<Vec<Version>, ObjectError> {
        let what = format!("listing the versions of s3://{}/{key}", self.bucket);
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(key)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| ObjectError::Failed(sdk(&what, e)))?;
            for v in page.versions() {
                if v.key() == Some(key) {
                    out.push(Version {
                        version_id: v.version_id().unwrap_or("null").to_string(),
                        last_modified: v.last_modified().and_then(chrono_time),
                        size: v.size().unwrap_or_default(),
                        is_latest: v.is_latest().unwrap_or(false),
                        deleted: false,
                    });
                }
            }
            for m in page.delete_markers() {
                if m.key() == Some(key) {
                    out.push(Version {
                        version_id: m.version_id().unwrap_or("null").to_string(),
                        last_modified: m.last_modified().and_then(chrono_time),
                        size: 0,
                        is_latest: m.is_latest().unwrap_or(false),
                        deleted: true,
                    });
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(String::from);
            version_marker = page.next_version_id_marker().map(String::from);
            if key_marker.is_none() && version_marker.is_none() {
                break;
            }
        }
        out.sort_by(|a, b| {
            b.last_modified
                .cmp(&a.last_modified)
                .then(b.is_latest.cmp(&a.is_latest))
        });
        Ok(out)
    }
}

/// An in-memory bucket with versioning and AWS's conditional semantics, plus scripted
/// failures: for the state store's unit tests.
#[cfg(test)]
pub mod fake {
    use std::collections::{BTreeMap, VecDeque};
    use std::sync::Mutex;

    use super::*;

    /// A scripted answer to the next `put` of a key, instead of the real one.
    #[derive(Clone, Debug)]
    pub enum Script {
        /// 409 ConditionalRequestConflict, nothing written.
        Busy,
        /// The write is carried out but its answer is lost (a connection reset); the SDK's
        /// retry of the same request then meets its own write.
        LostAnswer,
        /// A transient failure, nothing written.
        Fail,
        /// The write is carried out, but its answer names an ETag the object does not have
        /// (moto 5.2.5 computes an ETag lazily from a buffer a concurrent GetObject moves,
        /// and then answered the MD5 of nothing: `tests/emu/probe_etag_race.py`).
        WrongEtag,
    }

    /// The ETag of a misreported answer: the MD5 of no bytes, as moto answered.
    pub const WRONG_ETAG: &str = "\"d41d8cd98f00b204e9800998ecf8427e\"";

    /// One stored version: bytes (`None` = a delete marker), ETag, version id, when.
    type FakeVersion = (Option<Vec<u8>>, String, String, DateTime<Utc>);

    #[derive(Default)]
    pub struct FakeBucket {
        /// key -> versions, oldest first.
        objects: Mutex<BTreeMap<String, Vec<FakeVersion>>>,
        scripts: Mutex<BTreeMap<String, VecDeque<Script>>>,
        /// Keys whose next `get` answers [`WRONG_ETAG`] instead of the object's ETag.
        misreported_reads: Mutex<Vec<String>>,
        pub calls: Mutex<Vec<String>>,
        counter: Mutex<u64>,
    }

    impl FakeBucket {
        pub fn script(&self, key: &str, s: Script) {
            self.scripts.lock().unwrap().entry(key.into()).or_default().push_back(s);
        }

        /// The next `get` of `key` answers the object with [`WRONG_ETAG`].
        pub fn misreport_next_read(&self, key: &str) {
            self.misreported_reads.lock().unwrap().push(key.into());
        }

        /// The ETag of the current version (as the store holds it, whatever it answered).
        pub fn etag(&self, key: &str) -> Option<String> {
            self.current(key).map(|c| c.1)
        }

        fn next_tag(&self) -> String {
            let mut c = self.counter.lock().unwrap();
            *c += 1;
            format!("\"etag-{c}\"")
        }

        fn current(&self, key: &str) -> Option<(Vec<u8>, String, String, DateTime<Utc>)> {
            let objects = self.objects.lock().unwrap();
            let (bytes, etag, v, t) = objects.get(key)?.last()?.clone();
            Some((bytes?, etag, v, t))
        }

        /// Write as another client would (no condition).
        pub fn overwrite(&self, key: &str, bytes: &[u8]) {
            let etag = self.next_tag();
            self.objects.lock().unwrap().entry(key.into()).or_default().push((
                Some(bytes.to_vec()),
                etag.clone(),
                etag,
                Utc::now(),
            ));
        }

        /// Set the last-modified time of the current version (to age a lock).
        pub fn age(&self, key: &str, by: chrono::Duration) {
            if let Some(last) = self.objects.lock().unwrap().get_mut(key).and_then(|v| v.last_mut()) {
                last.3 -= by;
            }
        }

        pub fn bytes(&self, key: &str) -> Option<Vec<u8>> {
            self.current(key).map(|c| c.0)
        }

        fn write(&self, key: &str, bytes: Vec<u8>) -> Written {
            let etag = self.next_tag();
            self.objects.lock().unwrap().entry(key.into()).or_default().push((
                Some(bytes),
                etag.clone(),
                etag.clone(),
                Utc::now(),
            ));
            Written {
                version_id: Some(etag.clone()),
                etag,
            }
        }

        fn holds(&self, key: &str, condition: &Condition) -> bool {
            match (condition, self.current(key)) {
                (Condition::IfAbsent, None) => true,
                (Condition::IfMatch(e), Some((_, etag, _, _))) => *e == etag,
                _ => false,
            }
        }
    }

    #[async_trait]
    impl ObjectStore for FakeBucket {
        async fn get(&self, key: &str, version: Option<&str>) -> Result<Option<Object>, ObjectError> {
            self.calls.lock().unwrap().push(format!("get {key}"));
            let misreport = {
                let mut keys = self.misreported_reads.lock().unwrap();
                let at = keys.iter().position(|k| k == key);
                at.map(|i| keys.remove(i)).is_some()
            };
            let objects = self.objects.lock().unwrap();
            let found = match version {
                None => objects.get(key).and_then(|v| v.last()).cloned(),
                Some(id) => objects.get(key).and_then(|v| v.iter().find(|x| x.2 == id)).cloned(),
            };
            Ok(found.and_then(|(bytes, etag, v, t)| {
                Some(Object {
                    bytes: bytes?,
                    etag: if misreport { WRONG_ETAG.into() } else { etag },
                    version_id: Some(v),
                    last_modified: Some(t),
                })
            }))
        }

        async fn put(&self, key: &str, bytes: Vec<u8>, condition: Condition) -> Result<Written, ObjectError> {
            self.calls.lock().unwrap().push(format!("put {key}"));
            let script = self.scripts.lock().unwrap().get_mut(key).and_then(|q| q.pop_front());
            match script {
                Some(Script::Busy) => return Err(ObjectError::Busy),
                Some(Script::Fail) => {
                    return Err(ObjectError::Failed(ResourceError::new(
                        ErrorClass::Transient,
                        "scripted 503",
                    )));
                }
                Some(Script::LostAnswer) => {
                    if self.holds(key, &condition) {
                        self.write(key, bytes);
                    }
                    // The retry of the same request: its condition no longer holds.
                    return Err(ObjectError::ConditionFailed);
                }
                Some(Script::WrongEtag) => {
                    if !self.holds(key, &condition) {
                        return Err(ObjectError::ConditionFailed);
                    }
                    let written = self.write(key, bytes);
                    return Ok(Written {
                        etag: WRONG_ETAG.into(),
                        ..written
                    });
                }
                None => {}
            }
            if !self.holds(key, &condition) {
                return Err(ObjectError::ConditionFailed);
            }
            Ok(self.write(key, bytes))
        }

        async fn delete(&self, key: &str, if_match: Option<&str>) -> Result<(), ObjectError> {
            self.calls.lock().unwrap().push(format!("delete {key}"));
            match (self.current(key), if_match) {
                (None, _) => Ok(()),
                (Some((_, etag, _, _)), Some(m)) if etag != m => Err(ObjectError::ConditionFailed),
                _ => {
                    let marker = self.next_tag();
                    self.objects.lock().unwrap().entry(key.into()).or_default().push((
                        None,
                        String::new(),
                        marker,
                        Utc::now(),
                    ));
                    Ok(())
                }
            }
        }

        async fn versions(&self, key: &str) -> Result<Vec<Version>, ObjectError> {
            let objects = self.objects.lock().unwrap();
            let all = objects.get(key).cloned().unwrap_or_default();
            let n = all.len();
            Ok(all
                .into_iter()
                .enumerate()
                .rev()
                .map(|(i, (bytes, _, v, t))| Version {
                    version_id: v,
                    last_modified: Some(t),
                    size: bytes.as_ref().map_or(0, |b| b.len() as i64),
                    is_latest: i + 1 == n,
                    deleted: bytes.is_none(),
                })
                .collect())
        }
    }
}
