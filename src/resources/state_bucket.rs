//! The S3 bucket that holds team state (`pi-deploy state init`): versioned (every earlier
//! state can be brought back), encrypted by default (SSE-S3, or the owner's KMS key when one
//! is set), TLS-only (a bucket policy denying every request without TLS) and with all four
//! Block Public Access flags on. `init` creates such a bucket, or checks an existing one and
//! says what it lacks, with the command that fixes each gap; it never changes an existing
//! bucket (its policy may hold statements of its owner).

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{BucketVersioningStatus, Tag, VersioningConfiguration};
use serde::Serialize;

use super::bucket::{create_request, public_access_block, sse_s3, taken, tls_only_policy};
use super::inspect::is_tls_only;
use crate::aws::err;
use crate::core::resource::{ErrorClass, ResourceError};

/// What a state bucket has.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BucketCheck {
    pub bucket: String,
    /// Created by this call.
    pub created: bool,
    pub versioning: bool,
    /// The default encryption algorithm (`AES256`, `aws:kms`, ...), if any.
    pub encryption: Option<String>,
    pub tls_only: bool,
    pub public_access_blocked: bool,
}

impl BucketCheck {
    /// What is missing, each with the AWS CLI command that adds it.
    pub fn missing(&self) -> Vec<(&'static str, String)> {
        let b = &self.bucket;
        let mut out = Vec::new();
        if !self.versioning {
            out.push((
                "versioning",
                format!("aws s3api put-bucket-versioning --bucket {b} --versioning-configuration Status=Enabled"),
            ));
        }
        if self.encryption.is_none() {
            out.push((
                "default encryption",
                format!(
                    "aws s3api put-bucket-encryption --bucket {b} --server-side-encryption-configuration '{{\"Rules\":[{{\"ApplyServerSideEncryptionByDefault\":{{\"SSEAlgorithm\":\"AES256\"}}}}]}}'"
                ),
            ));
        }
        if !self.tls_only {
            out.push((
                "TLS-only bucket policy",
                format!(
                    "add a statement denying s3:* on arn:aws:s3:::{b} and arn:aws:s3:::{b}/* when aws:SecureTransport is false (aws s3api put-bucket-policy)"
                ),
            ));
        }
        if !self.public_access_blocked {
            out.push((
                "Block Public Access (all four flags)",
                format!(
                    "aws s3api put-public-access-block --bucket {b} --public-access-block-configuration BlockPublicAcls=true,IgnorePublicAcls=true,BlockPublicPolicy=true,RestrictPublicBuckets=true"
                ),
            ));
        }
        out
    }
}

/// Whether the bucket exists (and is ours to use).
async fn exists(s3: &Client, bucket: &str) -> Result<bool, ResourceError> {
    match s3
        .head_bucket()
        .bucket(bucket)
        .send()
        .await
        .map_err(err("looking up the state bucket"))
    {
        Ok(_) => Ok(true),
        Err(e) if e.is(ErrorClass::NotFound) => Ok(false),
        Err(e) if e.code.as_deref().is_some_and(crate::aws::error::is_wrong_region) => {
            Err(e.with_hint("the bucket is in another region: pass that region in [state] region (or --region)"))
        }
        Err(e) => Err(e.with_hint(
            "the bucket may belong to another account, or your credentials may not allow s3:ListBucket on it",
        )),
    }
}

/// Create a state bucket with every setting, or check the existing one.
pub async fn init(s3: &Client, bucket: &str, region: &str, partition: &str) -> Result<BucketCheck, ResourceError> {
    if exists(s3, bucket).await? {
        return check(s3, bucket).await;
    }
    let tag = Tag::builder()
        .key("pi-deploy:purpose")
        .value("state")
        .build()
        .map_err(|e| ResourceError::new(ErrorClass::Invalid, e.to_string()))?;
    match create_request(s3, bucket, region, vec![tag])
        .send()
        .await
        .map_err(err("creating the state bucket"))
    {
        Ok(_) => {}
        Err(e) if e.code.as_deref() == Some("BucketAlreadyOwnedByYou") => {}
        Err(e) if e.code.as_deref() == Some("BucketAlreadyExists") => return Err(taken(bucket, e)),
        Err(e) => return Err(e),
    }
    // Right after CreateBucket, S3 may answer NoSuchBucket for a moment: not yet.
    super::ec2::retry_not_found("turning on versioning of the state bucket", || async {
        s3.put_bucket_versioning()
            .bucket(bucket)
            .versioning_configuration(
                VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(err("turning on versioning of the state bucket"))
    })
    .await?;
    s3.put_bucket_encryption()
        .bucket(bucket)
        .server_side_encryption_configuration(sse_s3()?)
        .send()
        .await
        .map_err(err("turning on default encryption of the state bucket"))?;
    s3.put_public_access_block()
        .bucket(bucket)
        .public_access_block_configuration(public_access_block())
        .send()
        .await
        .map_err(err("blocking public access to the state bucket"))?;
    s3.put_bucket_policy()
        .bucket(bucket)
        .policy(tls_only_policy(partition, bucket))
        .send()
        .await
        .map_err(err("setting the TLS-only policy of the state bucket"))?;
    let mut c = check(s3, bucket).await?;
    c.created = true;
    Ok(c)
}

/// A setting that is not there (NoSuchBucketPolicy, ...NotFoundError) is `None`.
fn absent<T>(r: Result<T, ResourceError>) -> Result<Option<T>, ResourceError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is(ErrorClass::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// What the bucket has, read back.
pub async fn check(s3: &Client, bucket: &str) -> Result<BucketCheck, ResourceError> {
    let versioning = s3
        .get_bucket_versioning()
        .bucket(bucket)
        .send()
        .await
        .map_err(err("reading the state bucket's versioning"))?
        .status()
        .is_some_and(|s| *s == BucketVersioningStatus::Enabled);
    let encryption = absent(
        s3.get_bucket_encryption()
            .bucket(bucket)
            .send()
            .await
            .map_err(err("reading the state bucket's encryption")),
    )?
    .and_then(|e| {
        e.server_side_encryption_configuration()
            .and_then(|c| c.rules().first())
            .and_then(|r| r.apply_server_side_encryption_by_default())
            .map(|d| d.sse_algorithm().as_str().to_string())
    });
    let tls_only = absent(
        s3.get_bucket_policy()
            .bucket(bucket)
            .send()
            .await
            .map_err(err("reading the state bucket's policy")),
    )?
    .and_then(|p| p.policy().map(is_tls_only))
    .unwrap_or(false);
    let public_access_blocked = absent(
        s3.get_public_access_block()
            .bucket(bucket)
            .send()
            .await
            .map_err(err("reading the state bucket's public access block")),
    )?
    .and_then(|p| {
        p.public_access_block_configuration().map(|c| {
            c.block_public_acls() == Some(true)
                && c.ignore_public_acls() == Some(true)
                && c.block_public_policy() == Some(true)
                && c.restrict_public_buckets() == Some(true)
        })
    })
    .unwrap_or(false);
    Ok(BucketCheck {
        bucket: bucket.to_string(),
        created: false,
        versioning,
        encryption,
        tls_only,
        public_access_blocked,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_gap_is_named_with_its_fix() {
        let all = BucketCheck {
            bucket: "team".into(),
            created: false,
            versioning: true,
            encryption: Some("aws:kms".into()),
            tls_only: true,
            public_access_blocked: true,
        };
        assert!(all.missing().is_empty());
        let none = BucketCheck {
            bucket: "team".into(),
            ..Default::default()
        };
        let missing = none.missing();
        let names: Vec<_> = missing.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "versioning",
                "default encryption",
                "TLS-only bucket policy",
                "Block Public Access (all four flags)"
            ]
        );
        assert!(missing.iter().all(|(_, fix)| fix.contains("team")));
    }
}
