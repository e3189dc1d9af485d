//! The licence secret (only when a licence is configured). The value is read from the
//! configured env var or file at the moment it is sent, straight into CreateSecret or
//! PutSecretValue: it is never part of the spec, the outputs, the state, an event or a log.
//!
//! Found by its deterministic name, and adopted only when its tags say it is this
//! deployment's (the name could have been taken by hand). Never rotated: it has no rotation
//! function (see `db_endpoint` for the one secret that is).
//!
//! Whether the configured licence differs from the stored one is told without reading the
//! secret and without the value in the state: the record keeps a fingerprint, HMAC-SHA256
//! of the value under a random 256-bit key that lives outside the state and outside AWS
//! (`fingerprint_key_path`: `~/.config/pi-deploy/fingerprint.key`, mode 0600, made on first
//! use), as `licence_mac.<key id>`. A state file read elsewhere gives no way to test a
//! guessed licence against it. Where that key is missing (another machine, a CI runner),
//! `plan` shows an update and `up` compares the live value in memory as before, then adds
//! that machine's fingerprint beside the others; a changed licence drops them all.

use async_trait::async_trait;
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use aws_sdk_secretsmanager::types::Tag;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::{Aws, ResourceKind, ec2, observe, props};
use crate::aws::wait::{self, Backoff};
use crate::aws::{err, tags};
use crate::core::diff::Settings;
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{NodeSpec, SecretSource};

pub struct Secret;

/// A secret value in memory. It has no `Display`, and its `Debug` hides the value, so it
/// cannot end up in a log line or an error message by accident.
pub struct SecretValue(String);

impl SecretValue {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// Why the licence cannot be read: names the config field, never the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicenceError {
    pub field: &'static str,
    pub problem: String,
    pub fix: String,
}

/// Read the licence from its source. Surrounding whitespace (a file's final newline) is
/// not part of the key.
pub fn read_licence(source: &SecretSource) -> Result<SecretValue, LicenceError> {
    let (field, raw) = match source {
        SecretSource::Env(var) => (
            "licence.env",
            std::env::var(var).map_err(|e| LicenceError {
                field: "licence.env",
                problem: match e {
                    std::env::VarError::NotPresent => format!("the environment variable `{var}` is not set"),
                    std::env::VarError::NotUnicode(_) => format!("the environment variable `{var}` is not valid UTF-8"),
                },
                fix: format!("export {var}=<your licence key>, or point licence.file at a file holding it"),
            })?,
        ),
        SecretSource::File(path) => (
            "licence.file",
            std::fs::read_to_string(path).map_err(|e| LicenceError {
                field: "licence.file",
                problem: format!("cannot read {}: {}", path.display(), e.kind()),
                fix: "give the path of a readable file holding the licence key".into(),
            })?,
        ),
    };
    let value = raw.trim();
    if value.is_empty() {
        return Err(LicenceError {
            field,
            problem: "the licence is empty".into(),
            fix: "put the licence key there".into(),
        });
    }
    Ok(SecretValue(value.to_string()))
}

/// Output keys of the fingerprints: `licence_mac.<key id>`.
const MAC_PREFIX: &str = "licence_mac.";

/// Where the fingerprint key lives: `$PI_DEPLOY_KEY_FILE`, else
/// `$XDG_CONFIG_HOME/pi-deploy/fingerprint.key` (`~/.config/...` without XDG_CONFIG_HOME).
pub fn fingerprint_key_path() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
    if let Some(p) = std::env::var_os("PI_DEPLOY_KEY_FILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("pi-deploy").join("fingerprint.key"))
}

const KEY_LEN: usize = 32;

fn read_key(path: &std::path::Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok().filter(|k| k.len() == KEY_LEN)
}

/// The key, made (random, mode 0600) when there is none yet.
fn key_or_create(path: &std::path::Path) -> Option<Vec<u8>> {
    use std::io::{Read, Write};
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(k) = read_key(path) {
        return Some(k);
    }
    let mut key = vec![0u8; KEY_LEN];
    std::fs::File::open("/dev/urandom").ok()?.read_exact(&mut key).ok()?;
    std::fs::create_dir_all(path.parent()?).ok()?;
    let made = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(&key).and_then(|_| f.sync_all()));
    match made {
        Ok(()) => Some(key),
        // Another run made it first: use theirs.
        Err(_) => read_key(path),
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use sha2::{Digest, Sha256};
    const BLOCK: usize = 64;
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| k.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = Sha256::new().chain_update(pad(0x36)).chain_update(message).finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The output key and value of the licence's fingerprint under `key`.
pub fn fingerprint(key: &[u8], licence: &str) -> (String, String) {
    let id = hex(&hmac_sha256(key, b"pi-deploy fingerprint key id")[..4]);
    (format!("{MAC_PREFIX}{id}"), hex(&hmac_sha256(key, licence.as_bytes())))
}

/// Whether the recorded fingerprints say the configured licence may differ from the stored
/// one (no key, or no fingerprint under it, counts as "may").
fn fingerprint_differs(key: Option<&[u8]>, licence: &str, outputs: &Outputs) -> bool {
    let Some(key) = key else { return true };
    let (name, mac) = fingerprint(key, licence);
    outputs.get(&name) != Some(mac.as_str())
}

/// The outputs after storing (or confirming) `licence`: a changed value drops every
/// fingerprint (they were of the old value); this machine's is added.
fn with_fingerprint(mut outputs: Outputs, changed: bool, key: Option<&[u8]>, licence: &str) -> Outputs {
    if changed {
        outputs.0.retain(|k, _| !k.starts_with(MAC_PREFIX));
    }
    if let Some(key) = key {
        let (name, mac) = fingerprint(key, licence);
        outputs.set(&name, mac);
    }
    outputs
}

fn read(source: &SecretSource) -> Result<SecretValue, ResourceError> {
    read_licence(source)
        .map_err(|e| ResourceError::new(ErrorClass::Invalid, format!("{}: {}", e.field, e.problem)).with_hint(e.fix))
}

/// Errors of calls whose response carries a secret value. The usual rendering of an SDK
/// error ends with the Debug form of the raw response, body included: a 200 answer that
/// fails to parse would put the secret in the message. Keep the class and code, and only
/// the service's own error message.
pub fn redacted<E, R>(what: &'static str) -> impl FnOnce(SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    move |e| {
        let said = e
            .message()
            .or(e.code())
            .unwrap_or("the response could not be read")
            .to_string();
        let mut r = crate::aws::error::sdk_without_dump(what, e);
        r.message = format!("{what}: {said}");
        r
    }
}

fn sm_tags(deployment: &str, key: &str) -> Vec<Tag> {
    tags::pairs(deployment, key)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn sm_is_ours(tags: &[Tag], deployment: &str, key: &str) -> bool {
    let has = |k: &str, v: &str| tags.iter().any(|t| t.key() == Some(k) && t.value() == Some(v));
    has(tags::DEPLOYMENT_TAG, deployment) && has(tags::KEY_TAG, key)
}

fn outputs_of(d: &DescribeSecretOutput) -> Option<Outputs> {
    Some(
        Outputs::new()
            .with("id", d.arn()?)
            .with("name", d.name().unwrap_or_default()),
    )
}

/// `read`: a secret scheduled for deletion (DeletedDate set) is gone for its readers, so it
/// is missing; `up` then finds it by name and restores it (`adopt`) instead of creating one.
fn observed_of(d: Option<DescribeSecretOutput>) -> Observed {
    observe::observed_unless(d, |d| d.deleted_date().is_some(), |_| Settings::new())
}

async fn describe(aws: &Aws, id: &str) -> Result<Option<DescribeSecretOutput>, ResourceError> {
    let out = aws
        .clients
        .secrets
        .describe_secret()
        .secret_id(id)
        .send()
        .await
        .map_err(err("describing the licence secret"));
    ec2::not_found_is_none(out)
}

/// After a forced delete, AWS may keep the name reserved for a short while and refuse both
/// CreateSecret and RestoreSecret with this error; it frees the name by itself.
pub fn is_name_still_reserved(e: &ResourceError) -> bool {
    e.code.as_deref() == Some("InvalidRequestException")
        && e.message.to_ascii_lowercase().contains("scheduled for deletion")
}

/// How long a freshly force-deleted name may stay reserved before we give up.
const NAME_RELEASE_BUDGET: std::time::Duration = std::time::Duration::from_secs(120);

/// Take over an existing secret of this name if it is ours; restore it if it was
/// scheduled for deletion (CreateSecret is refused while it is). `None` when it was
/// force-deleted and only its name is still reserved: the create waits for the name.
async fn adopt(aws: &Aws, key: &str, d: &DescribeSecretOutput) -> Result<Option<Outputs>, ResourceError> {
    let name = d.name().unwrap_or_default();
    if !sm_is_ours(d.tags(), &aws.env.deployment, key) {
        return Err(ResourceError::new(
            ErrorClass::AlreadyExists,
            format!(
                "a secret named {name} exists but is not tagged as deployment `{}`'s",
                aws.env.deployment
            ),
        )
        .with_hint("delete or rename that secret, or use another deployment name"));
    }
    if d.deleted_date().is_some() {
        let restored = aws
            .clients
            .secrets
            .restore_secret()
            .secret_id(name)
            .send()
            .await
            .map_err(err("restoring the licence secret scheduled for deletion"));
        match restored {
            Err(e) if e.is(ErrorClass::NotFound) || is_name_still_reserved(&e) => return Ok(None),
            other => other.map(drop)?,
        }
    }
    outputs_of(d)
        .map(Some)
        .ok_or_else(|| ResourceError::new(ErrorClass::Other, "DescribeSecret returned no ARN"))
}

#[async_trait]
impl ResourceKind for Secret {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (name,) = props!(cx, Secret { name });
        match describe(aws, name).await? {
            Some(d) => adopt(aws, &cx.spec.key, &d).await,
            None => Ok(None),
        }
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (name, source) = props!(cx, Secret { name, source });
        let value = read(source)?;
        let create = || async {
            aws.clients
                .secrets
                .create_secret()
                .name(name)
                .client_request_token(cx.token)
                .description(format!("pi-deploy {}: Panintelligence licence key", aws.env.deployment))
                .secret_string(value.expose())
                .set_tags(Some(sm_tags(&aws.env.deployment, &cx.spec.key)))
                .send()
                .await
                .map_err(redacted("creating the licence secret"))
                .map_err(|e| {
                    if is_name_still_reserved(&e) {
                        ResourceError {
                            class: ErrorClass::InUse,
                            ..e
                        }
                    } else {
                        e
                    }
                })
        };
        let created = wait::retry(
            "creating the licence secret",
            NAME_RELEASE_BUDGET,
            Backoff::QUICK,
            &[ErrorClass::InUse],
            create,
        )
        .await;
        match created {
            Ok(out) => Ok(Outputs::new()
                .with("id", out.arn().unwrap_or_default())
                .with("name", out.name().unwrap_or(name))),
            // A retried create: some implementations answer with the same ARN, others
            // with ResourceExistsException; adopt it if it is ours.
            Err(e) if e.is(ErrorClass::AlreadyExists) => {
                let d = ec2::retry_not_found("looking up the existing licence secret", || async {
                    describe(aws, name).await?.ok_or_else(|| ResourceError {
                        class: ErrorClass::NotFound,
                        ..e.clone()
                    })
                })
                .await?;
                adopt(aws, &cx.spec.key, &d).await?.ok_or_else(|| {
                    ResourceError::new(
                        ErrorClass::InUse,
                        format!("the secret name {name} is still reserved by a deleted secret"),
                    )
                    .with_hint("AWS frees it within minutes: run `pi-deploy up` again")
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Store the configured value when the stored one differs (a changed licence).
    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (source,) = props!(cx, Secret { source });
        let arn = outputs.id()?.to_string();
        let value = read(source)?;
        let sm = &aws.clients.secrets;
        let stored = ec2::retry_not_found("reading the licence secret", || async {
            sm.get_secret_value()
                .secret_id(&arn)
                .send()
                .await
                .map_err(redacted("reading the licence secret"))
        })
        .await;
        let same = match &stored {
            Ok(out) => out.secret_string() == Some(value.expose()),
            // No current version at all (an interrupted create): write one.
            Err(e) if e.is(ErrorClass::NotFound) => false,
            Err(e) => return Err(e.clone()),
        };
        drop(stored);
        if !same {
            tracing::info!(secret = %arn, "storing the configured licence (it differs from the stored one)");
            sm.put_secret_value()
                .secret_id(&arn)
                .secret_string(value.expose())
                .send()
                .await
                .map_err(redacted("storing the licence"))?;
        }
        let key = fingerprint_key_path().and_then(|p| key_or_create(&p));
        Ok(with_fingerprint(outputs, !same, key.as_deref(), value.expose()))
    }

    /// Out of date when the configured licence's fingerprint is not the recorded one (see
    /// the module doc); `up` then compares the live value and stores the new one.
    fn outdated(&self, spec: &NodeSpec, outputs: &Outputs) -> bool {
        let crate::core::spec::Props::Secret { source, .. } = &spec.props else {
            return true;
        };
        let Ok(value) = read_licence(source) else { return true };
        let key = fingerprint_key_path().and_then(|p| read_key(&p));
        fingerprint_differs(key.as_deref(), value.expose(), outputs)
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(observed_of(describe(aws, outputs.id()?).await?))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let arn = cx.outputs.id()?;
        let deleted = aws
            .clients
            .secrets
            .delete_secret()
            .secret_id(arn)
            .force_delete_without_recovery(true)
            .send()
            .await
            .map_err(err("deleting the licence secret"));
        match deleted {
            Err(e) if e.is(ErrorClass::NotFound) => Ok(()),
            other => other.map(|_| ()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_scheduled_for_deletion_reads_as_missing() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pi-licence-AbCdEf";
        let live = DescribeSecretOutput::builder().arn(arn).name("pi-licence").build();
        assert!(matches!(observed_of(Some(live)), Observed::Present(_)));
        let scheduled = DescribeSecretOutput::builder()
            .arn(arn)
            .name("pi-licence")
            .deleted_date(aws_smithy_types::DateTime::from_secs(1_800_000_000))
            .build();
        assert_eq!(observed_of(Some(scheduled)), Observed::Missing);
        assert_eq!(observed_of(None), Observed::Missing);
    }

    #[test]
    fn the_value_is_read_trimmed_and_never_shown_by_debug() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("licence.txt");
        std::fs::write(&path, "  FILE-KEY-123\n").unwrap();
        let v = read_licence(&SecretSource::File(path)).unwrap();
        assert_eq!(v.expose(), "FILE-KEY-123");
        assert!(!format!("{v:?}").contains("FILE-KEY-123"));

        // An env var every test process has (setting one would race other tests).
        let path_var = std::env::var("PATH").unwrap();
        assert_eq!(
            read_licence(&SecretSource::Env("PATH".into())).unwrap().expose(),
            path_var.trim()
        );
    }

    #[test]
    fn a_missing_or_empty_licence_names_its_field() {
        let e = read_licence(&SecretSource::Env("PI_DEPLOY_TEST_LICENCE_UNSET_X".into())).unwrap_err();
        assert_eq!(e.field, "licence.env");
        assert!(e.problem.contains("PI_DEPLOY_TEST_LICENCE_UNSET_X"));
        let e = read_licence(&SecretSource::File("/nonexistent/licence".into())).unwrap_err();
        assert_eq!(e.field, "licence.file");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, "\n").unwrap();
        let e = read_licence(&SecretSource::File(path)).unwrap_err();
        assert!(e.problem.contains("empty"));
    }

    #[test]
    fn errors_of_secret_reads_never_carry_the_response_body() {
        use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;
        use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::display::DisplayErrorContext;

        let raw = || {
            HttpResponse::new(
                200.try_into().unwrap(),
                SdkBody::from(r#"{"SecretString":"TOP-SECRET-VALUE""#),
            )
        };
        let e: SdkError<GetSecretValueError, HttpResponse> = SdkError::response_error("truncated JSON", raw());
        // The hazard: the standard rendering includes the body.
        assert!(format!("{}", DisplayErrorContext(&e)).contains("TOP-SECRET-VALUE"));
        let r = redacted("reading the licence secret")(e);
        assert!(!r.message.contains("TOP-SECRET-VALUE"), "{}", r.message);
        assert!(!format!("{r:?}").contains("TOP-SECRET-VALUE"));
        assert_eq!(r.class, ErrorClass::Transient);
    }

    #[test]
    fn a_name_reserved_after_a_forced_delete_is_waited_for() {
        let reserved = ResourceError::new(
            ErrorClass::Other,
            "You can't create this secret because a secret with this name is already scheduled for deletion.",
        )
        .with_code("InvalidRequestException");
        assert!(is_name_still_reserved(&reserved));
        let other = ResourceError::new(
            ErrorClass::Other,
            "You can't perform this operation on the secret because it was marked for deletion.",
        )
        .with_code("InvalidRequestException");
        assert!(!is_name_still_reserved(&other));
    }

    #[tokio::test(start_paused = true)]
    async fn re_creation_after_a_forced_delete_retries_until_the_name_is_free() {
        let attempts = std::sync::Mutex::new(0);
        let created = wait::retry(
            "creating",
            NAME_RELEASE_BUDGET,
            Backoff::QUICK,
            &[ErrorClass::InUse],
            || {
                let mut n = attempts.lock().unwrap();
                *n += 1;
                std::future::ready(if *n <= 3 {
                    let e = ResourceError::new(
                        ErrorClass::Other,
                        "a secret with this name is already scheduled for deletion",
                    )
                    .with_code("InvalidRequestException");
                    Err(ResourceError {
                        class: ErrorClass::InUse,
                        ..e
                    })
                } else {
                    Ok("arn")
                })
            },
        )
        .await;
        assert_eq!(created.unwrap(), "arn");
        assert_eq!(*attempts.lock().unwrap(), 4);
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231, test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn the_fingerprint_tells_a_changed_licence_and_never_holds_the_value() {
        let key = [7u8; KEY_LEN];
        let other_key = [9u8; KEY_LEN];
        let recorded = with_fingerprint(Outputs::new().with("id", "arn"), true, Some(&key), "LICENCE-A");
        assert!(!fingerprint_differs(Some(&key), "LICENCE-A", &recorded));
        assert!(fingerprint_differs(Some(&key), "LICENCE-B", &recorded));
        // No key here, or another machine's key: "may differ" (up compares the live value).
        assert!(fingerprint_differs(None, "LICENCE-A", &recorded));
        assert!(fingerprint_differs(Some(&other_key), "LICENCE-A", &recorded));
        // The other machine adds its own beside ours while the value stays the same...
        let both = with_fingerprint(recorded.clone(), false, Some(&other_key), "LICENCE-A");
        assert!(!fingerprint_differs(Some(&key), "LICENCE-A", &both));
        assert!(!fingerprint_differs(Some(&other_key), "LICENCE-A", &both));
        // ...and a new value drops every old fingerprint.
        let renewed = with_fingerprint(both, true, Some(&key), "LICENCE-B");
        assert_eq!(renewed.0.keys().filter(|k| k.starts_with(MAC_PREFIX)).count(), 1);
        assert!(fingerprint_differs(Some(&other_key), "LICENCE-B", &renewed));
        let text = serde_json::to_string(&renewed).unwrap();
        assert!(!text.contains("LICENCE"), "{text}");
        // Not a plain hash of the value either.
        use sha2::{Digest, Sha256};
        assert!(!text.contains(&hex(&Sha256::digest(b"LICENCE-B"))));
    }

    #[test]
    fn the_key_is_made_once_private_and_then_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("fingerprint.key");
        let k1 = key_or_create(&path).unwrap();
        assert_eq!(k1.len(), KEY_LEN);
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(key_or_create(&path).unwrap(), k1);
        assert_eq!(read_key(&path).unwrap(), k1);
    }

    #[test]
    fn only_secrets_tagged_for_this_deployment_and_key_are_adopted() {
        let t = sm_tags("pi", "licence-secret");
        assert!(sm_is_ours(&t, "pi", "licence-secret"));
        assert!(!sm_is_ours(&t, "other", "licence-secret"));
        assert!(!sm_is_ours(&[], "pi", "licence-secret"));
    }
}
