//! Read-only inspections for `status` of the data and compute kinds (the bucket, the database
//! and its managed secret, the target group, the Auto Scaling group), kept apart from those
//! kinds' create/converge/delete code; each kind's `inspect` delegates here. Also the two
//! deployment-wide health reads: target health behind the load balancer, and ERROR lines in
//! the side-loading Lambda's log group.
//!
//! Drift is judged with the same values `converge` writes (the config, and the kinds' own
//! request builders where they are pure), so "no drift" means "`up` would change nothing".

use super::Aws;
use crate::aws::err;
use crate::core::inspect::{InspectCtx, Inspection, Live};
pub use crate::core::report::TargetHealth;
use crate::core::resource::{ErrorClass, ResourceError};
use crate::core::spec::Props;

fn absent<T>(r: Result<T, ResourceError>) -> Result<Option<T>, ResourceError> {
    super::ec2::not_found_is_none(r)
}

// ---- S3 bucket ----------------------------------------------------------------------------

/// Whether a bucket policy denies every request made without TLS, for the bucket and its
/// objects (what `bucket::tls_only_policy` writes; other statements may sit beside it).
pub fn is_tls_only(policy: &str) -> bool {
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(policy) else {
        return false;
    };
    let statements = match &doc["Statement"] {
        serde_json::Value::Array(a) => a.clone(),
        one @ serde_json::Value::Object(_) => vec![one.clone()],
        _ => return false,
    };
    let is = |v: &serde_json::Value, want: &str| match v {
        serde_json::Value::String(s) => s == want,
        serde_json::Value::Array(a) => a.iter().any(|x| x.as_str() == Some(want)),
        _ => false,
    };
    statements.iter().any(|s| {
        let principal = &s["Principal"];
        let everyone = principal.as_str() == Some("*") || is(&principal["AWS"], "*");
        let insecure = &s["Condition"]["Bool"]["aws:SecureTransport"];
        let on_insecure = is(insecure, "false") || insecure.as_bool() == Some(false);
        let resources = &s["Resource"];
        let objects_too = match resources {
            serde_json::Value::Array(a) => a.iter().any(|r| r.as_str().is_some_and(|r| r.ends_with("/*"))),
            serde_json::Value::String(r) => r.ends_with("/*") || r == "*",
            _ => false,
        };
        s["Effect"].as_str() == Some("Deny") && everyone && is(&s["Action"], "s3:*") && on_insecure && objects_too
    })
}

pub async fn bucket(aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
    let name = cx.outputs.id()?;
    let s3 = &aws.clients.s3;
    if absent(
        s3.head_bucket()
            .bucket(name)
            .send()
            .await
            .map_err(err("looking up the bucket")),
    )?
    .is_none()
    {
        return Ok(Inspection::missing());
    }
    // The settings are compared by `status` through the kind's read and diff.
    Ok(Inspection::available())
}

// ---- RDS instance and its managed secret --------------------------------------------------

/// RDS statuses folded into the four live states (RDS has dozens; most mean "usable").
pub fn db_live(status: &str) -> Live {
    match status {
        "creating"
        | "starting"
        | "rebooting"
        | "renaming"
        | "resetting-master-credentials"
        | "stopped"
        | "stopping" => Live::Creating,
        "deleting" | "failed" | "restore-error" | "storage-full" => Live::Deleting,
        s if s.starts_with("incompatible-") || s.starts_with("inaccessible-") => Live::Deleting,
        _ => Live::Available,
    }
}

pub async fn db_instance(aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
    let Some(db) = super::rds::describe_instance(aws, cx.outputs.id()?).await? else {
        return Ok(Inspection::missing());
    };
    let status = db.db_instance_status().unwrap_or("unknown");
    let mut i = Inspection::of(db_live(status));
    if status != "available" {
        i.detail = Some(status.to_string());
    }
    if let Some(Props::DbInstance { db: want, .. }) = cx.spec.map(|s| &s.props) {
        // Usable early: the standby node reports Multi-AZ (a conversion in progress is not drift).
        if !want.standby_later {
            i.check_opt("multi_az", want.multi_az, db.multi_az());
        }
        i.check_opt("publicly_accessible", false, db.publicly_accessible());
        i.check_opt("storage_encrypted", true, db.storage_encrypted());
        i.check_opt(
            "backup_retention_days",
            want.backup_retention_days,
            db.backup_retention_period(),
        );
        i.check_opt(
            "deletion_protection",
            want.deletion_protection,
            db.deletion_protection(),
        );
    }
    let secret = cx
        .outputs
        .get("secret_arn")
        .or(db.master_user_secret().and_then(|s| s.secret_arn()));
    if let Some(arn) = secret {
        rotation(aws, arn, aws.env.config.database.rotation_days, &mut i).await?;
    }
    Ok(i)
}

/// The managed master secret rotates every `days` (what `db-endpoint` sets).
async fn rotation(aws: &Aws, arn: &str, days: i64, i: &mut Inspection) -> Result<(), ResourceError> {
    let d = absent(
        aws.clients
            .secrets
            .describe_secret()
            .secret_id(arn)
            .send()
            .await
            .map_err(err("reading the DB secret's rotation")),
    )?;
    let Some(d) = d else {
        i.drift("secret", "present", "absent");
        return Ok(());
    };
    i.check_opt("secret_rotation_enabled", true, d.rotation_enabled());
    i.check_opt(
        "secret_rotation_days",
        days,
        d.rotation_rules().and_then(|r| r.automatically_after_days()),
    );
    Ok(())
}

// ---- target group and Auto Scaling group --------------------------------------------------

pub async fn target_group(aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
    let arn = cx.outputs.id()?;
    let elb = &aws.clients.elb;
    let out = absent(
        elb.describe_target_groups()
            .target_group_arns(arn)
            .send()
            .await
            .map_err(err("describing the target group")),
    )?;
    let Some(g) = out.as_ref().and_then(|o| o.target_groups().first()) else {
        return Ok(Inspection::missing());
    };
    // Its settings are compared by `status` with the kind's own read and diff.
    let _ = g;
    Ok(Inspection::available())
}

pub async fn auto_scaling_group(aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
    let name = cx.outputs.id()?;
    let Some(g) = super::auto_scaling_group::describe_group(aws, name).await? else {
        return Ok(Inspection::missing());
    };
    if g.status().is_some_and(|s| s.to_ascii_lowercase().contains("delete")) {
        return Ok(Inspection::of(Live::Deleting).with_detail(g.status().unwrap_or_default()));
    }
    // Sizes and the other settings are compared by `status` with the kind's read and diff.
    let mut i = Inspection::available();
    // The template version `up` recorded (the one it pointed the group at).
    if let Some(lt) = cx.recorded.get("launch-template") {
        let have = g.launch_template();
        i.check_opt(
            "launch_template",
            lt.get("id").unwrap_or_default(),
            have.and_then(|l| l.launch_template_id()),
        );
        i.check_opt(
            "launch_template_version",
            lt.get("version").unwrap_or_default(),
            have.and_then(|l| l.version()),
        );
    }
    Ok(i)
}

// ---- deployment-wide health ---------------------------------------------------------------

pub async fn target_health(aws: &Aws, target_group_arn: &str) -> Result<Vec<TargetHealth>, ResourceError> {
    let out = aws
        .clients
        .elb
        .describe_target_health()
        .target_group_arn(target_group_arn)
        .send()
        .await
        .map_err(err("reading the targets' health"))?;
    Ok(out
        .target_health_descriptions()
        .iter()
        .map(|d| TargetHealth {
            id: d.target().and_then(|t| t.id()).unwrap_or_default().to_string(),
            state: d
                .target_health()
                .and_then(|h| h.state())
                .map_or("unknown", |s| s.as_str())
                .to_string(),
            reason: d
                .target_health()
                .and_then(|h| h.description().or(h.reason().map(|r| r.as_str())))
                .map(String::from),
        })
        .collect())
}

/// At most this many ERROR lines are shown.
pub const MAX_ERROR_LINES: usize = 20;

/// ERROR lines the Lambda logged since `since_ms` (epoch milliseconds), oldest first; `None`
/// when the log group does not exist.
pub async fn lambda_errors(aws: &Aws, log_group: &str, since_ms: i64) -> Result<Option<Vec<String>>, ResourceError> {
    let mut lines = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let page = aws
            .clients
            .logs
            .filter_log_events()
            .log_group_name(log_group)
            .filter_pattern("ERROR")
            .start_time(since_ms)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(err("reading the Lambda's ERROR lines"));
        let page = match page {
            Err(e) if e.is(ErrorClass::NotFound) => return Ok(None),
            other => other?,
        };
        lines.extend(
            page.events()
                .iter()
                .filter_map(|e| e.message())
                .map(|m| m.trim_end().to_string()),
        );
        next = page.next_token().map(String::from);
        if next.is_none() || lines.len() >= MAX_ERROR_LINES {
            break;
        }
    }
    lines.truncate(MAX_ERROR_LINES);
    Ok(Some(lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_pi_deploy_writes_is_tls_only() {
        assert!(is_tls_only(&super::super::bucket::tls_only_policy("aws", "b")));
        assert!(!is_tls_only("{}"));
        assert!(!is_tls_only("not json"));
        let allow =
            r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::b/*"}]}"#;
        assert!(!is_tls_only(allow));
        // Bucket-level only: objects could still be fetched over plain HTTP.
        let bucket_only = r#"{"Statement":{"Effect":"Deny","Principal":{"AWS":"*"},"Action":["s3:*"],"Resource":"arn:aws:s3:::b","Condition":{"Bool":{"aws:SecureTransport":false}}}}"#;
        assert!(!is_tls_only(bucket_only));
        let single = bucket_only.replace(r#""arn:aws:s3:::b""#, r#"["arn:aws:s3:::b","arn:aws:s3:::b/*"]"#);
        assert!(is_tls_only(&single));
    }

    #[test]
    fn rds_statuses_fold_into_live_states() {
        assert_eq!(db_live("available"), Live::Available);
        assert_eq!(db_live("backing-up"), Live::Available);
        assert_eq!(db_live("modifying"), Live::Available);
        assert_eq!(db_live("creating"), Live::Creating);
        assert_eq!(db_live("deleting"), Live::Deleting);
        assert_eq!(db_live("incompatible-parameters"), Live::Deleting);
    }
}
