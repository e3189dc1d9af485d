//! The resources bucket's objects, for `pi-deploy sideload`: list a folder, upload a file
//! (one PutObject below `MULTIPART_THRESHOLD`, else a multipart upload in `part_size`
//! parts with CRC32 part checksums), read an object's tags (where the side-loading Lambda
//! reports its outcome), delete objects, and abort multipart uploads a killed run left.
//!
//! Uploads rely on the bucket's default encryption (SSE-S3), which makes the ETag the MD5
//! `core::sideload::EtagHasher` computes locally.

use std::collections::BTreeSet;
use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use tokio::io::AsyncReadExt;

use super::Aws;
use crate::aws::err;
use crate::core::resource::{ErrorClass, ResourceError};
use crate::core::sideload::{MULTIPART_THRESHOLD, part_size};

/// One object of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote {
    pub key: String,
    /// As S3 reports it, quotes included.
    pub etag: String,
    pub size: i64,
}

/// DeleteObjects takes at most this many keys per call.
const DELETE_BATCH: usize = 1000;

fn io_error(what: &str, path: &Path, e: std::io::Error) -> ResourceError {
    ResourceError::new(ErrorClass::Invalid, format!("{what} {}: {e}", path.display()))
        .with_hint("check that the file is still there and readable, then run the command again")
}

/// Every object whose key starts with `prefix`.
pub async fn list(aws: &Aws, bucket: &str, prefix: &str) -> Result<Vec<Remote>, ResourceError> {
    let mut out = Vec::new();
    let mut pages = aws
        .clients
        .s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(err("listing the bucket's objects"))?;
        out.extend(page.contents().iter().filter_map(|o| {
            Some(Remote {
                key: o.key()?.to_string(),
                etag: o.e_tag().unwrap_or_default().to_string(),
                size: o.size().unwrap_or(0),
            })
        }));
    }
    Ok(out)
}

/// The object's tags; `None` when the object does not exist (any more).
pub async fn tags(aws: &Aws, bucket: &str, key: &str) -> Result<Option<Vec<(String, String)>>, ResourceError> {
    let got = aws
        .clients
        .s3
        .get_object_tagging()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .map_err(err("reading an object's tags"));
    match got {
        Ok(o) => Ok(Some(
            o.tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect(),
        )),
        Err(e) if e.is(ErrorClass::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Upload the file at `path` (`len` bytes) as `key`; `sent(n)` is called as bytes go out.
/// Returns the object's ETag. A multipart upload that fails is aborted.
pub async fn upload(
    aws: &Aws,
    bucket: &str,
    key: &str,
    path: &Path,
    len: u64,
    sent: &(dyn Fn(u64) + Send + Sync),
) -> Result<String, ResourceError> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| io_error("opening", path, e))?;
    if len < MULTIPART_THRESHOLD {
        let mut body = Vec::with_capacity(len as usize);
        file.read_to_end(&mut body)
            .await
            .map_err(|e| io_error("reading", path, e))?;
        check_length(path, len, body.len() as u64)?;
        let out = aws
            .clients
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(err("uploading an object"))?;
        sent(len);
        return Ok(out.e_tag().unwrap_or_default().to_string());
    }
    let created = aws
        .clients
        .s3
        .create_multipart_upload()
        .bucket(bucket)
        .key(key)
        .checksum_algorithm(ChecksumAlgorithm::Crc32)
        .send()
        .await
        .map_err(err("starting a multipart upload"))?;
    let upload_id = created.upload_id().unwrap_or_default().to_string();
    let result = upload_parts(aws, bucket, key, &upload_id, &mut file, path, len, sent).await;
    if result.is_err() {
        // Best effort: a part upload left behind costs storage until aborted; the next
        // `sideload` of this key aborts it too (`abort_stale`).
        let _ = aws
            .clients
            .s3
            .abort_multipart_upload()
            .bucket(bucket)
            .key(key)
            .upload_id(&upload_id)
            .send()
            .await;
    }
    result
}

fn check_length(path: &Path, expected: u64, read: u64) -> Result<(), ResourceError> {
    if expected == read {
        Ok(())
    } else {
        Err(ResourceError::new(
            ErrorClass::Invalid,
            format!(
                "{} changed while it was being sent ({expected} bytes, then {read})",
                path.display()
            ),
        )
        .with_hint("run the command again once nothing writes to the file"))
    }
}

#[allow(clippy::too_many_arguments)]
async fn upload_parts(
    aws: &Aws,
    bucket: &str,
    key: &str,
    upload_id: &str,
    file: &mut tokio::fs::File,
    path: &Path,
    len: u64,
    sent: &(dyn Fn(u64) + Send + Sync),
) -> Result<String, ResourceError> {
    let size = part_size(len);
    let mut parts = Vec::new();
    let mut done = 0u64;
    let mut number = 1i32;
    while done < len {
        let this = size.min(len - done) as usize;
        let mut body = vec![0u8; this];
        file.read_exact(&mut body)
            .await
            .map_err(|e| io_error("reading", path, e))?;
        let out = aws
            .clients
            .s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(err("uploading a part"))?;
        parts.push(
            CompletedPart::builder()
                .part_number(number)
                .e_tag(out.e_tag().unwrap_or_default())
                .set_checksum_crc32(out.checksum_crc32().map(String::from))
                .build(),
        );
        done += this as u64;
        number += 1;
        sent(this as u64);
    }
    let mut rest = [0u8; 1];
    if file.read(&mut rest).await.map_err(|e| io_error("reading", path, e))? != 0 {
        check_length(path, len, len + 1)?;
    }
    let out = aws
        .clients
        .s3
        .complete_multipart_upload()
        .bucket(bucket)
        .key(key)
        .upload_id(upload_id)
        .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
        .send()
        .await
        .map_err(err("completing a multipart upload"))?;
    Ok(out.e_tag().unwrap_or_default().to_string())
}

/// Abort the multipart uploads of `keys` started before this run (by a run that was
/// killed, or whose abort failed): they would only cost storage. Returns how many.
pub async fn abort_stale(
    aws: &Aws,
    bucket: &str,
    prefix: &str,
    keys: &BTreeSet<String>,
    started_before: chrono::DateTime<chrono::Utc>,
) -> Result<usize, ResourceError> {
    let mut aborted = 0;
    let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
    loop {
        let page = aws
            .clients
            .s3
            .list_multipart_uploads()
            .bucket(bucket)
            .prefix(prefix)
            .set_key_marker(key_marker.take())
            .set_upload_id_marker(id_marker.take())
            .send()
            .await
            .map_err(err("listing unfinished multipart uploads"))?;
        for u in page.uploads() {
            let (Some(key), Some(id)) = (u.key(), u.upload_id()) else {
                continue;
            };
            let old = u
                .initiated()
                .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                .is_some_and(|t| t < started_before);
            if keys.contains(key) && old {
                let gone = aws
                    .clients
                    .s3
                    .abort_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await
                    .map_err(err("aborting an unfinished multipart upload"));
                match gone {
                    Ok(_) => aborted += 1,
                    Err(e) if e.is(ErrorClass::NotFound) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        if page.is_truncated() != Some(true) {
            return Ok(aborted);
        }
        key_marker = page.next_key_marker().map(String::from);
        id_marker = page.next_upload_id_marker().map(String::from);
        if key_marker.is_none() {
            return Ok(aborted);
        }
    }
}

/// Delete `keys`; per key, `None` when deleted (or already gone) or the error S3 gave.
pub async fn delete(aws: &Aws, bucket: &str, keys: &[String]) -> Result<Vec<(String, Option<String>)>, ResourceError> {
    let mut out = Vec::new();
    for batch in keys.chunks(DELETE_BATCH) {
        let ids = batch
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ResourceError::new(ErrorClass::Invalid, format!("building an S3 request: {e}")))?;
        let delete = Delete::builder()
            .set_objects(Some(ids))
            .build()
            .map_err(|e| ResourceError::new(ErrorClass::Invalid, format!("building an S3 request: {e}")))?;
        let resp = aws
            .clients
            .s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(err("deleting objects"))?;
        let failed: Vec<(String, String)> = resp
            .errors()
            .iter()
            .filter_map(|e| {
                Some((
                    e.key()?.to_string(),
                    format!("{}: {}", e.code().unwrap_or("error"), e.message().unwrap_or_default()),
                ))
            })
            .collect();
        for k in batch {
            let error = failed.iter().find(|(key, _)| key == k).map(|(_, m)| m.clone());
            out.push((k.clone(), error));
        }
    }
    Ok(out)
}
