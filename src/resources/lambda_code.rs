//! The side-loading Lambda's deployment package: `lambda/sideload/handler.py` zipped in
//! process (no manual zip, no S3 upload), deterministically, so that the same source
//! always gives the same bytes and the same `CodeSha256` as AWS computes it (base64 of
//! the SHA-256 of the zip). `up` compares that hash to decide whether to update the code.
//!
//! The handler is embedded at compile time so the binary works from any directory.
//! `PI_DEPLOY_SIDELOAD_HANDLER=<path>` replaces it with a file read at run time (tests
//! use it to change the code between two runs; operators can use it to ship a patch).

use std::io::{Cursor, Write};
use std::sync::OnceLock;

use base64::Engine;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, System, ZipWriter};

use crate::core::resource::{ErrorClass, ResourceError};

/// Overrides the embedded handler source with the file at this path.
pub const HANDLER_ENV: &str = "PI_DEPLOY_SIDELOAD_HANDLER";

/// The file inside the zip and the function's handler (`<module>.<function>`).
pub const HANDLER_FILE: &str = "handler.py";
pub const HANDLER: &str = "handler.handler";

const EMBEDDED: &str = include_str!("../../lambda/sideload/handler.py");

/// The zip and its hash in AWS's `CodeSha256` form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Code {
    pub zip: Vec<u8>,
    pub sha256: String,
}

/// Zip one source file with fixed timestamps and permissions: same input, same bytes.
pub fn package(source: &[u8]) -> Result<Vec<u8>, ResourceError> {
    let fail =
        |e: &dyn std::fmt::Display| ResourceError::new(ErrorClass::Other, format!("zipping the Lambda handler: {e}"));
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .system(System::Unix)
        .unix_permissions(0o644);
    let mut w = ZipWriter::new(Cursor::new(Vec::new()));
    w.start_file(HANDLER_FILE, options).map_err(|e| fail(&e))?;
    w.write_all(source).map_err(|e| fail(&e))?;
    Ok(w.finish().map_err(|e| fail(&e))?.into_inner())
}

/// `CodeSha256` as Lambda reports it: base64 of the SHA-256 digest of the zip.
pub fn sha256_b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(bytes))
}

fn source() -> Result<Vec<u8>, ResourceError> {
    match std::env::var_os(HANDLER_ENV) {
        None => Ok(EMBEDDED.as_bytes().to_vec()),
        Some(path) => std::fs::read(&path).map_err(|e| {
            ResourceError::new(
                ErrorClass::Invalid,
                format!(
                    "reading the Lambda handler from {} ({HANDLER_ENV}): {e}",
                    path.to_string_lossy()
                ),
            )
            .with_hint(format!(
                "unset {HANDLER_ENV} to deploy the handler built into pi-deploy"
            ))
        }),
    }
}

/// The package for this run (built once: the source does not change during a run).
pub fn code() -> Result<&'static Code, ResourceError> {
    static CODE: OnceLock<Result<Code, ResourceError>> = OnceLock::new();
    CODE.get_or_init(|| {
        let zip = package(&source()?)?;
        Ok(Code {
            sha256: sha256_b64(&zip),
            zip,
        })
    })
    .as_ref()
    .map_err(Clone::clone)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn unzip(bytes: &[u8]) -> (String, Option<u32>, Vec<String>) {
        let mut a = zip::ZipArchive::new(Cursor::new(bytes.to_vec())).unwrap();
        let names = a.file_names().map(|n| n.unwrap().to_string()).collect();
        let mut f = a.by_name(HANDLER_FILE).unwrap();
        let mut text = String::new();
        f.read_to_string(&mut text).unwrap();
        (text, f.unix_mode(), names)
    }

    #[test]
    fn the_package_holds_exactly_the_handler_readable_by_all() {
        let zip = package(EMBEDDED.as_bytes()).unwrap();
        let (text, mode, names) = unzip(&zip);
        assert_eq!(names, [HANDLER_FILE]);
        assert_eq!(text, EMBEDDED);
        assert!(
            text.contains("def handler("),
            "the entry point `handler.handler` must exist"
        );
        assert_eq!(mode.map(|m| m & 0o777), Some(0o644));
    }

    #[test]
    fn the_package_is_deterministic_and_its_hash_follows_the_source() {
        let a = package(b"print(1)\n").unwrap();
        let b = package(b"print(1)\n").unwrap();
        assert_eq!(a, b);
        // The clock never leaks in: the entry carries the zip epoch, 1980-01-01 00:00.
        let mut archive = zip::ZipArchive::new(Cursor::new(a.clone())).unwrap();
        let modified = archive.by_index(0).unwrap().last_modified();
        assert_eq!(modified, Some(DateTime::default()));
        let c = package(b"print(2)\n").unwrap();
        assert_ne!(sha256_b64(&a), sha256_b64(&c));
    }

    #[test]
    fn the_hash_is_in_lambdas_code_sha256_form() {
        // SHA-256 of "abc", base64 (not hex), as Lambda's CodeSha256 is.
        assert_eq!(sha256_b64(b"abc"), "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    }

    #[test]
    fn the_embedded_handler_is_the_one_in_the_repository() {
        let on_disk =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/lambda/sideload/handler.py")).unwrap();
        assert_eq!(on_disk, EMBEDDED);
    }
}
