//! The S3 buckets: the resources bucket and, with `logging.alb_access_logs` or
//! `logging.vpc_flow_logs`, the logs bucket. Deterministic, globally unique names (deployment + account + region), SSE-S3
//! (the only encryption ALB access logs accept), all four Block Public Access flags, Object
//! Ownership `BucketOwnerEnforced` (ACLs disabled: the bucket owner owns every object, ELB's
//! log delivery included, and only the policy grants access), a TLS-only bucket policy (the logs bucket's also lets ELB's log delivery write under its
//! prefix and the flow log delivery under `AWSLogs/`, `core::policy::log_bucket_policy`), versioning when the config asks for it,
//! and on the logs bucket a lifecycle rule that expires the logs.
//!
//! Found by its name (HeadBucket), not by tags: S3 has no tag-filtered listing, and some
//! implementations drop the tags sent with CreateBucket, which is why `converge` also
//! writes them with PutBucketTagging.
//!
//! Delete removes the bucket policy first: the policy's Deny may be enforced on the object
//! calls that empty the bucket (moto enforces it without evaluating its condition), and on
//! AWS removing it first is harmless because the bucket is about to go anyway.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::operation::create_bucket::builders::CreateBucketFluentBuilder;
use aws_sdk_s3::types::{
    BucketLifecycleConfiguration, BucketLocationConstraint, BucketVersioningStatus, CreateBucketConfiguration, Delete,
    ExpirationStatus, LifecycleExpiration, LifecycleRule, LifecycleRuleFilter, ObjectIdentifier, ObjectOwnership,
    OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging,
    VersioningConfiguration,
};

use super::{Aws, ResourceKind, ec2, props};
use crate::aws::wait::{self, Backoff};
use crate::aws::{Env, err, tags};
use crate::core::diff::{AttrSpec, ChangeAction, Settings, settings};
use crate::core::latency;
use crate::core::names;
use crate::core::policy::{self, ArnScope};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{BucketPurpose, Kind, NodeSpec, Props};

pub struct Bucket;

pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::with(
        "versioning",
        ChangeAction::Update,
        "turned off, S3 suspends it: the versions already kept stay",
        &["storage.bucket_versioning"],
    ),
    AttrSpec::update("encryption", &[]),
    AttrSpec::update("public_access_block", &[]),
    AttrSpec::update("object_ownership", &[]),
    AttrSpec::update("tls_only_policy", &[]),
    AttrSpec::with(
        "log_writers",
        ChangeAction::Update,
        "PutBucketPolicy: the log deliveries the bucket policy lets write",
        &["logging.alb_access_logs", "logging.vpc_flow_logs"],
    ),
    AttrSpec::with(
        "log_expiry_days",
        ChangeAction::Update,
        "PutBucketLifecycleConfiguration: S3 applies the new expiry to the logs already kept",
        &["logging.alb_access_log_days"],
    ),
];

/// The id of the access-log bucket's one lifecycle rule.
const EXPIRE_RULE: &str = "pi-deploy-expire-logs";

/// ACLs disabled: the bucket owner owns every object and only the policy grants access.
const OWNER_ENFORCED: &str = "BucketOwnerEnforced";

const ALL_BLOCKED: &str = "all four flags on";

/// The desired settings (pure). Encryption, Block Public Access and the TLS-only policy
/// follow the blueprint: a difference is drift, repaired.
pub fn desired_settings(versioning: bool, purpose: &BucketPurpose) -> Settings {
    let mut s = base_settings(versioning);
    if let BucketPurpose::Logs {
        alb_prefix,
        flow_logs,
        expire_days,
    } = purpose
    {
        s.insert("log_expiry_days".into(), expire_days.to_string());
        s.insert(
            "log_writers".into(),
            policy::log_writers(alb_prefix.is_some(), *flow_logs),
        );
    }
    s
}

fn base_settings(versioning: bool) -> Settings {
    settings([
        ("versioning", if versioning { "enabled" } else { "off" }.to_string()),
        ("encryption", "AES256".to_string()),
        ("public_access_block", ALL_BLOCKED.to_string()),
        ("object_ownership", OWNER_ENFORCED.to_string()),
        ("tls_only_policy", "yes".to_string()),
    ])
}

/// The bucket's Object Ownership (`none` without ownership controls: ACLs in force).
fn ownership_of(c: Option<&OwnershipControls>) -> String {
    c.and_then(|c| c.rules().first())
        .map_or_else(|| "none".to_string(), |r| r.object_ownership().as_str().to_string())
}

pub(crate) fn owner_enforced() -> Result<OwnershipControls, ResourceError> {
    let rule = OwnershipControlsRule::builder()
        .object_ownership(ObjectOwnership::BucketOwnerEnforced)
        .build()
        .map_err(invalid)?;
    OwnershipControls::builder().rules(rule).build().map_err(invalid)
}

/// A never-versioned and a suspended bucket both keep no new versions: both are `off`.
fn versioning_of(status: Option<&BucketVersioningStatus>) -> String {
    match status {
        Some(BucketVersioningStatus::Enabled) => "enabled".into(),
        _ => "off".into(),
    }
}

fn public_access_of(c: Option<&PublicAccessBlockConfiguration>) -> String {
    let Some(c) = c else {
        return "none".into();
    };
    let on: Vec<&str> = [
        ("block_public_acls", c.block_public_acls()),
        ("ignore_public_acls", c.ignore_public_acls()),
        ("block_public_policy", c.block_public_policy()),
        ("restrict_public_buckets", c.restrict_public_buckets()),
    ]
    .into_iter()
    .filter(|(_, v)| *v != Some(true))
    .map(|(k, _)| k)
    .collect();
    if on.is_empty() {
        ALL_BLOCKED.into()
    } else {
        format!("off: {}", on.join(", "))
    }
}

/// A configuration S3 has none of reads as `None`; a vanished bucket stays an error.
fn absent<T>(r: Result<T, ResourceError>) -> Result<Option<T>, ResourceError> {
    match r {
        Err(e) if crate::aws::error::is_no_such_bucket(&e) => Err(e),
        other => ec2::not_found_is_none(other),
    }
}

/// Read-only: the bucket's settings, `None` when the bucket is gone. A configuration S3
/// answers NoSuch... for (no policy, no public access block) reads as absent.
async fn live_settings(s3: &Client, name: &str, purpose: &BucketPurpose) -> Result<Option<Settings>, ResourceError> {
    let v = s3
        .get_bucket_versioning()
        .bucket(name)
        .send()
        .await
        .map_err(err("reading the bucket versioning"));
    let v = match v {
        Err(e) if e.is(ErrorClass::NotFound) => return Ok(None),
        other => other?,
    };
    let enc = absent(
        s3.get_bucket_encryption()
            .bucket(name)
            .send()
            .await
            .map_err(err("reading the bucket encryption")),
    )?;
    let algorithm = enc
        .as_ref()
        .and_then(|e| e.server_side_encryption_configuration())
        .and_then(|c| c.rules().first())
        .and_then(|r| r.apply_server_side_encryption_by_default())
        .map_or_else(|| "none".to_string(), |d| d.sse_algorithm().as_str().to_string());
    let pab = absent(
        s3.get_public_access_block()
            .bucket(name)
            .send()
            .await
            .map_err(err("reading the public access block")),
    )?;
    let ownership = absent(
        s3.get_bucket_ownership_controls()
            .bucket(name)
            .send()
            .await
            .map_err(err("reading the bucket's object ownership")),
    )?;
    let policy = absent(
        s3.get_bucket_policy()
            .bucket(name)
            .send()
            .await
            .map_err(err("reading the bucket policy")),
    )?;
    let tls = match policy.as_ref().and_then(|p| p.policy()) {
        None => "no policy",
        Some(p) if super::inspect::is_tls_only(p) => "yes",
        Some(_) => "no: the policy does not deny requests without TLS",
    };
    let expiry = match purpose {
        BucketPurpose::Logs { .. } => Some(log_expiry_of(
            absent(
                s3.get_bucket_lifecycle_configuration()
                    .bucket(name)
                    .send()
                    .await
                    .map_err(err("reading the bucket's lifecycle rules")),
            )?
            .as_ref()
            .map(|l| l.rules()),
        )),
        BucketPurpose::Resources => None,
    };
    let mut live = settings([
        ("versioning", versioning_of(v.status())),
        ("encryption", algorithm),
        (
            "public_access_block",
            public_access_of(pab.as_ref().and_then(|p| p.public_access_block_configuration())),
        ),
        (
            "object_ownership",
            ownership_of(ownership.as_ref().and_then(|o| o.ownership_controls())),
        ),
        ("tls_only_policy", tls.to_string()),
    ]);
    if let Some(days) = expiry {
        live.insert("log_expiry_days".into(), days);
        let writers = policy.as_ref().and_then(|p| p.policy()).map(policy::log_writers_of);
        live.insert("log_writers".into(), writers.unwrap_or_else(|| "none".into()));
    }
    Ok(Some(live))
}

/// The expiry of pi-deploy's rule among a bucket's lifecycle rules: its days when enabled,
/// else `none` (no rule, disabled, or an expiry by date).
fn log_expiry_of(rules: Option<&[LifecycleRule]>) -> String {
    rules
        .unwrap_or_default()
        .iter()
        .find(|r| r.id() == Some(EXPIRE_RULE) && r.status() == &ExpirationStatus::Enabled)
        .and_then(|r| r.expiration()?.days())
        .map_or_else(|| "none".to_string(), |d| d.to_string())
}

/// DeleteObjects takes at most this many keys per call.
const DELETE_BATCH: usize = 1000;

fn invalid(e: impl std::fmt::Display) -> ResourceError {
    ResourceError::new(ErrorClass::Invalid, format!("building an S3 request: {e}"))
}

fn bucket_name(env: &Env, purpose: &BucketPurpose) -> String {
    match purpose {
        BucketPurpose::Resources => names::bucket(&env.deployment, &env.account_id, &env.region),
        BucketPurpose::Logs { .. } => names::logs_bucket(&env.deployment, &env.account_id, &env.region),
    }
}

fn purpose_of(cx: &NodeCtx<'_>) -> BucketPurpose {
    match &cx.spec.props {
        Props::Bucket { purpose, .. } => purpose.clone(),
        _ => BucketPurpose::Resources,
    }
}

/// The bucket policy for its purpose.
fn bucket_policy(env: &Env, name: &str, purpose: &BucketPurpose) -> String {
    match purpose {
        BucketPurpose::Resources => tls_only_policy(&env.partition, name),
        BucketPurpose::Logs {
            alb_prefix, flow_logs, ..
        } => {
            let scope = ArnScope {
                partition: &env.partition,
                region: &env.region,
                account: &env.account_id,
            };
            policy::log_bucket_policy(&scope, &bucket_arn(env, name), alb_prefix.as_deref(), *flow_logs).to_string()
        }
    }
}

/// Logs older than `days` are deleted (whole bucket: it holds nothing else).
pub fn expire_logs(days: i32) -> Result<BucketLifecycleConfiguration, ResourceError> {
    let rule = LifecycleRule::builder()
        .id(EXPIRE_RULE)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .expiration(LifecycleExpiration::builder().days(days).build())
        .build()
        .map_err(invalid)?;
    BucketLifecycleConfiguration::builder()
        .rules(rule)
        .build()
        .map_err(invalid)
}

fn bucket_arn(env: &Env, name: &str) -> String {
    format!("arn:{}:s3:::{name}", env.partition)
}

fn outputs(env: &Env, name: &str) -> Outputs {
    Outputs::new().with("id", name).with("arn", bucket_arn(env, name))
}

/// The policy that refuses every request made without TLS, for the bucket and its objects.
pub fn tls_only_policy(partition: &str, bucket: &str) -> String {
    let arn = format!("arn:{partition}:s3:::{bucket}");
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [arn.clone(), format!("{arn}/*")],
            "Condition": { "Bool": { "aws:SecureTransport": "false" } }
        }]
    })
    .to_string()
}

fn s3_tags(deployment: &str, key: &str) -> Result<Vec<Tag>, ResourceError> {
    tags::pairs(deployment, key)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build().map_err(invalid))
        .collect()
}

/// CreateBucket with the region's location constraint (us-east-1 takes none) and the tags,
/// so that on AWS the bucket is never untagged.
pub fn create_request(client: &Client, name: &str, region: &str, tags: Vec<Tag>) -> CreateBucketFluentBuilder {
    let mut config = CreateBucketConfiguration::builder().set_tags(Some(tags));
    if region != "us-east-1" {
        config = config.location_constraint(BucketLocationConstraint::from(region));
    }
    client
        .create_bucket()
        .bucket(name)
        .create_bucket_configuration(config.build())
}

pub(crate) fn public_access_block() -> PublicAccessBlockConfiguration {
    PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build()
}

pub(crate) fn sse_s3() -> Result<ServerSideEncryptionConfiguration, ResourceError> {
    let default = ServerSideEncryptionByDefault::builder()
        .sse_algorithm(ServerSideEncryption::Aes256)
        .build()
        .map_err(invalid)?;
    ServerSideEncryptionConfiguration::builder()
        .rules(
            ServerSideEncryptionRule::builder()
                .apply_server_side_encryption_by_default(default)
                .build(),
        )
        .build()
        .map_err(invalid)
}

#[async_trait]
impl ResourceKind for Bucket {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let name = bucket_name(&aws.env, &purpose_of(cx));
        let head = aws
            .clients
            .s3
            .head_bucket()
            .bucket(&name)
            .send()
            .await
            .map_err(err("looking up the bucket"));
        match head {
            Ok(_) => Ok(Some(outputs(&aws.env, &name))),
            Err(e) if e.is(ErrorClass::NotFound) => Ok(None),
            // 403 on HeadBucket: the name exists in another account.
            Err(e) if e.message.contains("403") || e.code.as_deref() == Some("Forbidden") => Err(taken(&name, e)),
            Err(e) => Err(e),
        }
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let name = bucket_name(&aws.env, &purpose_of(cx));
        let tags = s3_tags(&aws.env.deployment, &cx.spec.key)?;
        let created = create_request(&aws.clients.s3, &name, &aws.env.region, tags)
            .send()
            .await
            .map_err(err("creating the bucket"));
        match created {
            Ok(_) => Ok(outputs(&aws.env, &name)),
            // Ours already (a retried create): adopt it.
            Err(e) if e.code.as_deref() == Some("BucketAlreadyOwnedByYou") => Ok(outputs(&aws.env, &name)),
            Err(e) if e.code.as_deref() == Some("BucketAlreadyExists") => Err(taken(&name, e)),
            Err(e) => Err(e),
        }
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (versioning, purpose) = props!(cx, Bucket { versioning, purpose });
        let name = outputs.id()?.to_string();
        let s3 = &aws.clients.s3;
        let tagging = Tagging::builder()
            .set_tag_set(Some(s3_tags(&aws.env.deployment, &cx.spec.key)?))
            .build()
            .map_err(invalid)?;
        // Right after CreateBucket, S3 may answer NoSuchBucket for a moment: not yet.
        ec2::retry_not_found("tagging the bucket", || async {
            s3.put_bucket_tagging()
                .bucket(&name)
                .tagging(tagging.clone())
                .send()
                .await
                .map(|_| ())
                .map_err(err("tagging the bucket"))
        })
        .await?;
        s3.put_bucket_encryption()
            .bucket(&name)
            .server_side_encryption_configuration(sse_s3()?)
            .send()
            .await
            .map_err(err("turning on default encryption (SSE-S3)"))?;
        s3.put_public_access_block()
            .bucket(&name)
            .public_access_block_configuration(public_access_block())
            .send()
            .await
            .map_err(err("blocking public access"))?;
        s3.put_bucket_ownership_controls()
            .bucket(&name)
            .ownership_controls(owner_enforced()?)
            .send()
            .await
            .map_err(err("disabling ACLs (Object Ownership BucketOwnerEnforced)"))?;
        s3.put_bucket_policy()
            .bucket(&name)
            .policy(bucket_policy(&aws.env, &name, purpose))
            .send()
            .await
            .map_err(err("setting the TLS-only bucket policy"))?;
        if let BucketPurpose::Logs { expire_days, .. } = purpose {
            s3.put_bucket_lifecycle_configuration()
                .bucket(&name)
                .lifecycle_configuration(expire_logs(*expire_days)?)
                .send()
                .await
                .map_err(err("setting the logs' expiry"))?;
        }
        // Off in the config: a bucket never versioned is left alone; an enabled one is
        // suspended (S3 cannot turn versioning off once on; the kept versions stay).
        let current = s3
            .get_bucket_versioning()
            .bucket(&name)
            .send()
            .await
            .map_err(err("reading the bucket versioning"))?;
        let status = match (*versioning, current.status()) {
            (true, Some(BucketVersioningStatus::Enabled)) => None,
            (true, _) => Some(BucketVersioningStatus::Enabled),
            (false, Some(BucketVersioningStatus::Enabled)) => Some(BucketVersioningStatus::Suspended),
            (false, _) => None,
        };
        if let Some(status) = status {
            s3.put_bucket_versioning()
                .bucket(&name)
                .versioning_configuration(VersioningConfiguration::builder().status(status).build())
                .send()
                .await
                .map_err(err("setting the bucket versioning"))?;
        }
        Ok(outputs)
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, _deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::Bucket { versioning, purpose } => desired_settings(*versioning, purpose),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(
            match live_settings(&aws.clients.s3, outputs.id()?, &purpose_of(cx)).await? {
                Some(s) => Observed::Present(s),
                None => Observed::Missing,
            },
        )
    }

    async fn inspect(
        &self,
        aws: &Aws,
        cx: &crate::core::inspect::InspectCtx<'_>,
    ) -> Result<crate::core::inspect::Inspection, ResourceError> {
        super::inspect::bucket(aws, cx).await
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let name = cx.outputs.id()?;
        let s3 = &aws.clients.s3;
        let removed = s3
            .delete_bucket_policy()
            .bucket(name)
            .send()
            .await
            .map_err(err("removing the bucket policy"));
        match removed {
            Err(e) if e.is(ErrorClass::NotFound) => return Ok(()),
            other => other.map(|_| ())?,
        };
        // Objects written while we empty it (a late upload) make DeleteBucket refuse with
        // BucketNotEmpty: empty again and retry within the delete budget.
        let deleted = wait::retry(
            &format!("deleting bucket {name}"),
            latency::delete_deadline(Kind::Bucket),
            Backoff::QUICK,
            &[ErrorClass::InUse],
            || async {
                empty(s3, name).await?;
                s3.delete_bucket()
                    .bucket(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(err("deleting the bucket"))
            },
        )
        .await;
        match deleted {
            Err(e) if e.is(ErrorClass::NotFound) => Ok(()),
            other => other,
        }
    }
}

pub(crate) fn taken(name: &str, e: ResourceError) -> ResourceError {
    ResourceError {
        class: ErrorClass::Invalid,
        ..e
    }
    .with_hint(format!(
        "the bucket name `{name}` belongs to another AWS account; choose another deployment name"
    ))
}

/// Delete every object version and delete marker, then any object a versionless listing
/// still shows (stores that do not report unversioned objects as versions).
async fn empty(s3: &Client, bucket: &str) -> Result<(), ResourceError> {
    // ListObjectVersions has no SDK paginator: follow the two markers by hand.
    let (mut key_marker, mut version_marker) = (None::<String>, None::<String>);
    loop {
        let page = s3
            .list_object_versions()
            .bucket(bucket)
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(err("listing object versions"))?;
        let ids = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(page.delete_markers().iter().map(|m| (m.key(), m.version_id())))
            .filter_map(|(k, v)| {
                Some(
                    ObjectIdentifier::builder()
                        .key(k?)
                        .set_version_id(v.map(String::from))
                        .build(),
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        delete_objects(s3, bucket, ids).await?;
        if page.is_truncated() != Some(true) || page.next_key_marker().is_none() {
            break;
        }
        key_marker = page.next_key_marker().map(String::from);
        version_marker = page.next_version_id_marker().map(String::from);
    }
    let mut objects = s3.list_objects_v2().bucket(bucket).into_paginator().send();
    while let Some(page) = objects.next().await {
        let page = page.map_err(err("listing objects"))?;
        let ids = page
            .contents()
            .iter()
            .filter_map(|o| o.key())
            .map(|k| ObjectIdentifier::builder().key(k).build())
            .collect::<Result<Vec<_>, _>>()
            .map_err(invalid)?;
        delete_objects(s3, bucket, ids).await?;
    }
    Ok(())
}

async fn delete_objects(s3: &Client, bucket: &str, ids: Vec<ObjectIdentifier>) -> Result<(), ResourceError> {
    for batch in ids.chunks(DELETE_BATCH) {
        let delete = Delete::builder()
            .set_objects(Some(batch.to_vec()))
            .quiet(true)
            .build()
            .map_err(invalid)?;
        let out = s3
            .delete_objects()
            .bucket(bucket)
            .delete(delete)
            .send()
            .await
            .map_err(err("deleting objects"))?;
        if let Some(first) = out.errors().first() {
            return Err(ResourceError::new(
                ErrorClass::Other,
                format!(
                    "deleting objects of bucket {bucket}: {} of {} failed, e.g. `{}`: {} {}",
                    out.errors().len(),
                    batch.len(),
                    first.key().unwrap_or("?"),
                    first.code().unwrap_or("?"),
                    first.message().unwrap_or("")
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_denies_everything_without_tls_on_bucket_and_objects() {
        let p: serde_json::Value = serde_json::from_str(&tls_only_policy("aws-us-gov", "b")).unwrap();
        assert_eq!(p["Version"], "2012-10-17");
        let statements = p["Statement"].as_array().unwrap();
        assert_eq!(statements.len(), 1);
        let s = &statements[0];
        assert_eq!(s["Effect"], "Deny");
        assert_eq!(s["Principal"], "*");
        assert_eq!(s["Action"], "s3:*");
        assert_eq!(
            s["Resource"],
            serde_json::json!(["arn:aws-us-gov:s3:::b", "arn:aws-us-gov:s3:::b/*"])
        );
        assert_eq!(
            s["Condition"],
            serde_json::json!({"Bool": {"aws:SecureTransport": "false"}})
        );
    }

    fn client() -> Client {
        Client::from_conf(
            aws_sdk_s3::Config::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_sdk_s3::config::Region::new("eu-west-1"))
                .build(),
        )
    }

    #[test]
    fn create_request_carries_the_tags_and_the_location_constraint() {
        let tags = s3_tags("pi", "bucket").unwrap();
        let req = create_request(&client(), "pi-resources-1-eu-west-1", "eu-west-1", tags);
        let cfg = req.as_input().get_create_bucket_configuration().clone().unwrap();
        assert_eq!(cfg.location_constraint(), Some(&BucketLocationConstraint::EuWest1));
        let got: Vec<(&str, &str)> = cfg.tags().iter().map(|t| (t.key(), t.value())).collect();
        assert_eq!(
            got,
            vec![
                ("Name", "pi-bucket"),
                ("pi-deploy:deployment", "pi"),
                ("pi-deploy:key", "bucket")
            ]
        );

        // us-east-1 refuses an explicit constraint; the tags still go on the create call.
        let req = create_request(&client(), "b", "us-east-1", s3_tags("pi", "bucket").unwrap());
        let cfg = req.as_input().get_create_bucket_configuration().clone().unwrap();
        assert_eq!(cfg.location_constraint(), None);
        assert_eq!(cfg.tags().len(), 3);
    }

    #[test]
    fn bucket_settings_diff_as_updates() {
        use crate::core::diff::diff;
        let live = settings([
            ("versioning", versioning_of(Some(&BucketVersioningStatus::Suspended))),
            ("encryption", "AES256".into()),
            ("public_access_block", public_access_of(Some(&public_access_block()))),
            ("object_ownership", ownership_of(Some(&owner_enforced().unwrap()))),
            ("tls_only_policy", "yes".into()),
        ]);
        assert!(diff(ATTRS, &desired_settings(false, &BucketPurpose::Resources), &live, None).is_empty());
        let c = diff(ATTRS, &desired_settings(true, &BucketPurpose::Resources), &live, None);
        assert_eq!(
            (c[0].attribute.as_str(), c[0].old.as_str(), c[0].new.as_str()),
            ("versioning", "off", "enabled")
        );
        let opened = PublicAccessBlockConfiguration::builder()
            .block_public_acls(true)
            .ignore_public_acls(true)
            .block_public_policy(false)
            .restrict_public_buckets(true)
            .build();
        assert_eq!(public_access_of(Some(&opened)), "off: block_public_policy");
        assert_eq!(public_access_of(None), "none");
    }

    /// `logging.alb_access_log_days` changed: the access-log bucket's expiry is an update;
    /// the resources bucket has no expiry to compare.
    #[test]
    fn the_access_logs_expiry_follows_the_config() {
        use crate::core::diff::diff;
        let logs = |days: i32| BucketPurpose::Logs {
            alb_prefix: Some("alb".into()),
            flow_logs: true,
            expire_days: days,
        };
        let rule = |days: i32, status: ExpirationStatus| {
            LifecycleRule::builder()
                .id(EXPIRE_RULE)
                .status(status)
                .expiration(LifecycleExpiration::builder().days(days).build())
                .build()
                .unwrap()
        };
        let mut live = desired_settings(false, &logs(90));
        live.insert(
            "log_expiry_days".into(),
            log_expiry_of(Some(&[rule(90, ExpirationStatus::Enabled)])),
        );
        assert!(diff(ATTRS, &desired_settings(false, &logs(90)), &live, None).is_empty());
        let c = diff(ATTRS, &desired_settings(false, &logs(30)), &live, None);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (
                c[0].attribute.as_str(),
                c[0].old.as_str(),
                c[0].new.as_str(),
                c[0].action
            ),
            ("log_expiry_days", "90", "30", ChangeAction::Update)
        );
        assert_eq!(c[0].fields, ["logging.alb_access_log_days"]);
        assert_eq!(log_expiry_of(Some(&[rule(90, ExpirationStatus::Disabled)])), "none");
        assert_eq!(log_expiry_of(None), "none");
        assert!(!desired_settings(false, &BucketPurpose::Resources).contains_key("log_expiry_days"));
    }

    /// A logs bucket whose policy predates the flow log (ALB only), or lost a writer, has its
    /// policy put again by `up`, in place; the resources bucket has no writers to compare.
    #[test]
    fn the_log_writers_follow_the_config() {
        use crate::core::diff::diff;
        let logs = |alb: bool, flow_logs: bool| BucketPurpose::Logs {
            alb_prefix: alb.then(|| "alb".to_string()),
            flow_logs,
            expire_days: 90,
        };
        let live = desired_settings(false, &logs(true, false));
        assert_eq!(live["log_writers"], "alb");
        assert!(diff(ATTRS, &desired_settings(false, &logs(true, false)), &live, None).is_empty());
        let c = diff(ATTRS, &desired_settings(false, &logs(true, true)), &live, None);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (
                c[0].attribute.as_str(),
                c[0].old.as_str(),
                c[0].new.as_str(),
                c[0].action
            ),
            ("log_writers", "alb", "alb+vpc-flow-logs", ChangeAction::Update)
        );
        assert_eq!(
            desired_settings(false, &logs(false, true))["log_writers"],
            "vpc-flow-logs"
        );
        assert!(!desired_settings(false, &BucketPurpose::Resources).contains_key("log_writers"));
    }

    /// A bucket made before ACLs were disabled (no ownership controls, or ObjectWriter) gets
    /// BucketOwnerEnforced from `up`, in place.
    #[test]
    fn a_bucket_with_acls_in_force_is_updated_to_owner_enforced() {
        use crate::core::diff::diff;
        let mut live = desired_settings(false, &BucketPurpose::Resources);
        live.insert("object_ownership".into(), ownership_of(None));
        let c = diff(ATTRS, &desired_settings(false, &BucketPurpose::Resources), &live, None);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].attribute.as_str(), c[0].old.as_str(), c[0].new.as_str()),
            ("object_ownership", "none", "BucketOwnerEnforced")
        );
        assert_eq!(c[0].action, ChangeAction::Update);
        let writer = OwnershipControls::builder()
            .rules(
                OwnershipControlsRule::builder()
                    .object_ownership(ObjectOwnership::ObjectWriter)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        assert_eq!(ownership_of(Some(&writer)), "ObjectWriter");
    }

    #[test]
    fn all_four_public_access_flags_are_on() {
        let b = public_access_block();
        assert_eq!(
            [
                b.block_public_acls(),
                b.ignore_public_acls(),
                b.block_public_policy(),
                b.restrict_public_buckets()
            ],
            [Some(true); 4]
        );
    }
}
