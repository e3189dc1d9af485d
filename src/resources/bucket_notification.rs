//! The bucket's notification to the side-loading Lambda: one configuration per allowed
//! folder (prefix filter), for `s3:ObjectCreated:*` and `s3:ObjectRemoved:*`.
//!
//! S3 holds one notification document per bucket, replaced whole by each put: configurations
//! that are not ours (ids without our prefix: someone's SNS topic, an EventBridge switch)
//! are kept. S3 validates the destination when the document is put, so the graph puts it
//! after the Lambda permission; a permission added seconds ago may not be visible yet, and
//! that one refusal is retried briefly. S3 refuses overlapping prefixes for the same
//! events; the folders do not overlap.
//!
//! Day 2: `read` returns our configurations as S3 holds them (one line each: folder, events,
//! function), so one edited by hand (an event dropped, a filter changed, another function)
//! is drift that `update` puts back; configurations that are not ours are never compared.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::get_bucket_notification_configuration::GetBucketNotificationConfigurationOutput;
use aws_sdk_s3::types::{
    Event, FilterRule, FilterRuleName, LambdaFunctionConfiguration, NotificationConfiguration,
    NotificationConfigurationFilter, S3KeyFilter,
};

use super::{Aws, ResourceKind, ec2, props};
use crate::aws::err;
use crate::aws::wait::{self, Backoff};
use crate::core::diff::{self, AttrSpec, ChangeAction, Settings, settings};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{NodeSpec, Props};

pub struct BucketNotification;

/// The folders are the blueprint's (no config field): a difference is drift, put back in
/// place with the configurations that are not ours kept.
pub const ATTRS: &[AttrSpec] = &[AttrSpec::with(
    "configurations",
    ChangeAction::Update,
    "one PutBucketNotificationConfiguration; the other configurations on the bucket are kept",
    &[],
)];

pub const EVENTS: [&str; 2] = ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"];

/// How long S3 may take to see a permission the Lambda just got.
const PERMISSION_VISIBILITY: std::time::Duration = std::time::Duration::from_secs(60);

/// Ids of our configurations start with this; anything else on the bucket is left alone.
pub fn id_prefix(deployment: &str) -> String {
    format!("{deployment}-sideload-")
}

fn config_id(deployment: &str, prefix: &str) -> String {
    format!("{}{}", id_prefix(deployment), prefix.trim_end_matches('/'))
}

/// One configuration per folder, both event types.
pub fn desired_configs(
    deployment: &str,
    function_arn: &str,
    prefixes: &[String],
) -> Result<Vec<LambdaFunctionConfiguration>, ResourceError> {
    prefixes
        .iter()
        .map(|p| {
            let filter = NotificationConfigurationFilter::builder()
                .key(
                    S3KeyFilter::builder()
                        .filter_rules(FilterRule::builder().name(FilterRuleName::Prefix).value(p).build())
                        .build(),
                )
                .build();
            LambdaFunctionConfiguration::builder()
                .id(config_id(deployment, p))
                .lambda_function_arn(function_arn)
                .set_events(Some(EVENTS.iter().map(|e| Event::from(*e)).collect()))
                .filter(filter)
                .build()
                .map_err(|e| ResourceError::new(ErrorClass::Invalid, format!("building the notification: {e}")))
        })
        .collect()
}

/// A configuration reduced to what S3 acts on (id, destination, events, filter rules),
/// order-insensitive; S3 may spell `prefix` as `Prefix` when it reads it back.
fn normalize(c: &LambdaFunctionConfiguration) -> (String, String, Vec<String>, Vec<(String, String)>) {
    let mut events: Vec<String> = c.events().iter().map(|e| e.as_str().to_string()).collect();
    events.sort();
    let mut rules: Vec<(String, String)> = c
        .filter()
        .and_then(|f| f.key())
        .map(|k| k.filter_rules())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            (
                r.name().map(|n| n.as_str().to_ascii_lowercase()).unwrap_or_default(),
                r.value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    rules.sort();
    (
        c.id().unwrap_or_default().to_string(),
        c.lambda_function_arn().to_string(),
        events,
        rules,
    )
}

/// One configuration as a line of `plan`: `<events> on <filter rules> -> <function>` (the
/// id is ours by its prefix, and derives from the folder).
fn describe(c: &LambdaFunctionConfiguration) -> String {
    let (_, arn, events, rules) = normalize(c);
    let rules: Vec<String> = rules.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let keys = if rules.is_empty() {
        "every key".to_string()
    } else {
        rules.join("&")
    };
    format!("{} on {keys} -> {arn}", events.join("+"))
}

/// The desired settings (pure): our configurations for the function in `deps`.
pub fn desired_settings(function_arn: &str, prefixes: &[String]) -> Settings {
    let lines = desired_configs("", function_arn, prefixes)
        .map(|cs| cs.iter().map(describe).collect::<Vec<_>>())
        .unwrap_or_default();
    settings([("configurations", diff::list(lines))])
}

/// The live settings (pure): the bucket's configurations of ours.
fn live_settings(existing: &[LambdaFunctionConfiguration], prefix: &str) -> Settings {
    settings([(
        "configurations",
        diff::list(existing.iter().filter(|c| is_ours(c, prefix)).map(describe)),
    )])
}

fn is_ours(c: &LambdaFunctionConfiguration, prefix: &str) -> bool {
    c.id().is_some_and(|id| id.starts_with(prefix))
}

/// Whether the bucket's configurations of ours are exactly the desired ones.
fn ours_match(existing: &[LambdaFunctionConfiguration], desired: &[LambdaFunctionConfiguration], prefix: &str) -> bool {
    let mut have: Vec<_> = existing.iter().filter(|c| is_ours(c, prefix)).map(normalize).collect();
    let mut want: Vec<_> = desired.iter().map(normalize).collect();
    have.sort();
    want.sort();
    have == want
}

/// The document to put: everything that is not ours, plus `ours`.
fn merged(
    existing: &GetBucketNotificationConfigurationOutput,
    prefix: &str,
    ours: Vec<LambdaFunctionConfiguration>,
) -> NotificationConfiguration {
    let mut lambdas: Vec<LambdaFunctionConfiguration> = existing
        .lambda_function_configurations()
        .iter()
        .filter(|c| !is_ours(c, prefix))
        .cloned()
        .collect();
    lambdas.extend(ours);
    NotificationConfiguration::builder()
        .set_lambda_function_configurations(Some(lambdas))
        .set_topic_configurations(Some(existing.topic_configurations().to_vec()))
        .set_queue_configurations(Some(existing.queue_configurations().to_vec()))
        .set_event_bridge_configuration(existing.event_bridge_configuration().cloned())
        .build()
}

/// Whether a body is an XML document with an empty root element (`<X/>` or `<X></X>`),
/// whatever the root's name.
fn is_empty_xml_document(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let mut rest = text.trim();
    if let Some(i) = rest.strip_prefix("<?").and_then(|r| r.find("?>")) {
        rest = rest[i + 4..].trim();
    }
    let Some(inner) = rest.strip_prefix('<') else {
        return false;
    };
    let name: String = inner
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '/' && *c != '>')
        .collect();
    let tail = &inner[name.len()..];
    if name.is_empty() || tail.matches('<').count() > 1 {
        return false;
    }
    (tail.ends_with("/>") && !tail.contains('<')) || tail.trim_end().ends_with(&format!("></{name}>"))
}

async fn current(aws: &Aws, bucket: &str) -> Result<GetBucketNotificationConfigurationOutput, ResourceError> {
    let r = aws
        .clients
        .s3
        .get_bucket_notification_configuration()
        .bucket(bucket)
        .expected_bucket_owner(&aws.env.account_id)
        .send()
        .await;
    match r {
        Ok(out) => Ok(out),
        // No notifications is an empty document; the SDK rejects one whose root element
        // is not named NotificationConfiguration (moto names it differently), but empty
        // means empty whatever it is called.
        Err(SdkError::ServiceError(e))
            if e.raw().status().as_u16() == 200 && e.raw().body().bytes().is_some_and(is_empty_xml_document) =>
        {
            Ok(GetBucketNotificationConfigurationOutput::builder().build())
        }
        Err(e) => Err(crate::aws::sdk("reading the bucket's notifications", e)),
    }
}

/// S3's refusal while it cannot yet see the Lambda permission.
fn destination_not_yet_valid(e: &ResourceError) -> bool {
    e.code.as_deref() == Some("InvalidArgument") && e.message.contains("Unable to validate the following destination")
}

async fn put(aws: &Aws, bucket: &str, doc: NotificationConfiguration) -> Result<(), ResourceError> {
    wait::retry(
        "setting the bucket's notifications",
        PERMISSION_VISIBILITY,
        Backoff::QUICK,
        &[ErrorClass::IamPropagation],
        || async {
            aws.clients
                .s3
                .put_bucket_notification_configuration()
                .bucket(bucket)
                .expected_bucket_owner(&aws.env.account_id)
                .notification_configuration(doc.clone())
                .send()
                .await
                .map(|_| ())
                .map_err(err("setting the bucket's notifications"))
                .map_err(|mut e| {
                    if destination_not_yet_valid(&e) {
                        e.class = ErrorClass::IamPropagation;
                    }
                    e
                })
        },
    )
    .await
}

fn outputs(bucket: &str, function_arn: &str, prefix: &str) -> Outputs {
    Outputs::new()
        .with("id", bucket)
        .with("function_arn", function_arn)
        .with("id_prefix", prefix)
}

/// Put the desired configurations unless the bucket already has exactly them.
async fn ensure(aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
    let (bucket, function, prefixes) = props!(
        cx,
        BucketNotification {
            bucket,
            function,
            prefixes
        }
    );
    let bucket = cx.dep_id(bucket)?;
    let function_arn = cx.dep(function)?.require("arn")?;
    let prefix = id_prefix(&aws.env.deployment);
    let desired = desired_configs(&aws.env.deployment, function_arn, prefixes)?;
    let existing = ec2::retry_not_found("reading the new bucket's notifications", || current(aws, bucket)).await?;
    if !ours_match(existing.lambda_function_configurations(), &desired, &prefix) {
        put(aws, bucket, merged(&existing, &prefix, desired)).await?;
    }
    Ok(outputs(bucket, function_arn, &prefix))
}

#[async_trait]
impl ResourceKind for BucketNotification {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (bucket, function) = props!(cx, BucketNotification { bucket, function });
        let bucket = cx.dep_id(bucket)?;
        let prefix = id_prefix(&aws.env.deployment);
        let Some(existing) = ec2::not_found_is_none(current(aws, bucket).await)? else {
            return Ok(None);
        };
        let present = existing
            .lambda_function_configurations()
            .iter()
            .any(|c| is_ours(c, &prefix));
        Ok(present.then(|| {
            outputs(
                bucket,
                cx.dep(function).and_then(|o| o.require("arn")).unwrap_or_default(),
                &prefix,
            )
        }))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        ensure(aws, cx).await
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, _outputs: Outputs) -> Result<Outputs, ResourceError> {
        ensure(aws, cx).await
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::BucketNotification { function, prefixes, .. } => {
                desired_settings(&super::dep_output(deps, function, "arn"), prefixes)
            }
            _ => Settings::new(),
        }
    }

    /// Missing when the bucket is gone (NoSuchBucket) or holds no configuration of ours;
    /// else our configurations, however they were edited.
    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let prefix = outputs.require("id_prefix")?;
        let existing = ec2::not_found_is_none(current(aws, outputs.id()?).await)?;
        Ok(match existing {
            Some(e) if e.lambda_function_configurations().iter().any(|c| is_ours(c, prefix)) => {
                Observed::Present(live_settings(e.lambda_function_configurations(), prefix))
            }
            _ => Observed::Missing,
        })
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let bucket = cx.outputs.id()?;
        let prefix = cx.outputs.require("id_prefix")?;
        let Some(existing) = ec2::not_found_is_none(current(aws, bucket).await)? else {
            return Ok(());
        };
        if !existing
            .lambda_function_configurations()
            .iter()
            .any(|c| is_ours(c, prefix))
        {
            return Ok(());
        }
        match put(aws, bucket, merged(&existing, prefix, Vec::new())).await {
            Err(e) if e.is(ErrorClass::NotFound) => Ok(()),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::spec::{self, Kind, SIDELOAD_PREFIXES, SpecInput};

    const ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:pi-sideload";

    fn prefixes() -> Vec<String> {
        SIDELOAD_PREFIXES.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn one_configuration_per_folder_with_both_events() {
        let configs = desired_configs("pi", ARN, &prefixes()).unwrap();
        assert_eq!(configs.len(), 5);
        for (c, p) in configs.iter().zip(SIDELOAD_PREFIXES) {
            let (id, arn, events, rules) = normalize(c);
            assert_eq!(id, format!("pi-sideload-{}", p.trim_end_matches('/')));
            assert_eq!(arn, ARN);
            assert_eq!(events, ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]);
            assert_eq!(rules, [("prefix".to_string(), p.to_string())]);
        }
    }

    #[test]
    fn an_edited_configuration_of_ours_is_an_update_and_others_are_not_compared() {
        let prefix = id_prefix("pi");
        let want = desired_settings(ARN, &prefixes());
        let mut live = desired_configs("pi", ARN, &prefixes()).unwrap();
        // Someone else's configuration on the bucket is never ours to compare.
        live.push(
            LambdaFunctionConfiguration::builder()
                .id("audit")
                .lambda_function_arn("arn:aws:lambda:eu-west-1:123456789012:function:audit")
                .events(Event::from("s3:ObjectCreated:*"))
                .build()
                .unwrap(),
        );
        assert!(diff::diff(ATTRS, &want, &live_settings(&live, &prefix), None).is_empty());
        // Another deployment's configurations are not ours either.
        assert_eq!(live_settings(&live, &id_prefix("other"))["configurations"], "-");

        // One of ours edited by hand: the delete events dropped.
        live[0] = LambdaFunctionConfiguration::builder()
            .set_id(live[0].id().map(String::from))
            .lambda_function_arn(ARN)
            .events(Event::from("s3:ObjectCreated:*"))
            .set_filter(live[0].filter().cloned())
            .build()
            .unwrap();
        let c = diff::diff(ATTRS, &want, &live_settings(&live, &prefix), None);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(
            (c[0].attribute.as_str(), c[0].action),
            ("configurations", ChangeAction::Update)
        );
        let folder = SIDELOAD_PREFIXES[0];
        let edited = format!("s3:ObjectCreated:* on prefix={folder} -> {ARN}");
        assert!(c[0].old.contains(&edited) && !c[0].new.contains(&edited), "{c:?}");
        assert!(c[0].new.contains(&format!(
            "s3:ObjectCreated:*+s3:ObjectRemoved:* on prefix={folder} -> {ARN}"
        )));
    }

    #[test]
    fn read_back_spelling_and_order_do_not_count_as_drift() {
        let desired = desired_configs("pi", ARN, &prefixes()).unwrap();
        let mut read_back: Vec<LambdaFunctionConfiguration> = desired
            .iter()
            .rev()
            .map(|c| {
                let p = normalize(c).3[0].1.clone();
                LambdaFunctionConfiguration::builder()
                    .id(c.id().unwrap())
                    .lambda_function_arn(ARN)
                    .events(Event::from("s3:ObjectRemoved:*"))
                    .events(Event::from("s3:ObjectCreated:*"))
                    .filter(
                        NotificationConfigurationFilter::builder()
                            .key(
                                S3KeyFilter::builder()
                                    .filter_rules(
                                        FilterRule::builder()
                                            .name(FilterRuleName::from("Prefix"))
                                            .value(p)
                                            .build(),
                                    )
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
                    .unwrap()
            })
            .collect();
        assert!(ours_match(&read_back, &desired, "pi-sideload-"));
        read_back.pop();
        assert!(!ours_match(&read_back, &desired, "pi-sideload-"));
        let other_function = desired_configs("pi", "arn:aws:lambda:eu-west-1:1:function:x", &prefixes()).unwrap();
        assert!(!ours_match(&other_function, &desired, "pi-sideload-"));
    }

    #[test]
    fn other_configurations_on_the_bucket_are_kept() {
        let foreign = LambdaFunctionConfiguration::builder()
            .id("audit")
            .lambda_function_arn("arn:aws:lambda:eu-west-1:1:function:audit")
            .events(Event::from("s3:ObjectCreated:*"))
            .build()
            .unwrap();
        let stale_ours = desired_configs("pi", "arn:old", &prefixes()[..1]).unwrap();
        let existing = GetBucketNotificationConfigurationOutput::builder()
            .lambda_function_configurations(foreign.clone())
            .lambda_function_configurations(stale_ours[0].clone())
            .build();
        let desired = desired_configs("pi", ARN, &prefixes()).unwrap();
        let doc = merged(&existing, "pi-sideload-", desired.clone());
        let lambdas = doc.lambda_function_configurations();
        assert_eq!(lambdas.len(), 6);
        assert_eq!(lambdas[0], foreign);
        assert!(lambdas.iter().all(|c| c.lambda_function_arn() != "arn:old"));
        // Deleting ours leaves only the foreign one.
        let doc = merged(&existing, "pi-sideload-", Vec::new());
        assert_eq!(doc.lambda_function_configurations(), [foreign]);
    }

    #[test]
    fn the_notification_waits_for_the_permission_in_the_spec() {
        let cfg = crate::core::config::Config::default();
        let nodes = spec::build(&SpecInput {
            config: &cfg,
            region: "eu-west-1",
            azs: ["eu-west-1a".into(), "eu-west-1b".into()],
        });
        let n = nodes
            .iter()
            .find(|n| n.kind == Kind::BucketNotification)
            .expect("the notification is in the spec");
        assert!(n.deps.contains(&"lambda-permission".to_string()), "{:?}", n.deps);
        let p = nodes.iter().find(|n| n.key == "lambda-permission").unwrap();
        assert!(p.deps.contains(&"lambda".to_string()) && p.deps.contains(&"bucket".to_string()));
    }

    #[test]
    fn an_empty_document_is_recognised_whatever_its_root() {
        for empty in [
            "<NotificationConfiguration/>",
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<GetBucketNotificationResponse xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>",
            "<NotificationConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"></NotificationConfiguration>",
        ] {
            assert!(is_empty_xml_document(empty.as_bytes()), "{empty}");
        }
        for not_empty in [
            "<NotificationConfiguration><CloudFunctionConfiguration/></NotificationConfiguration>",
            "<Error><Code>AccessDenied</Code></Error>",
            "",
            "not xml",
        ] {
            assert!(!is_empty_xml_document(not_empty.as_bytes()), "{not_empty}");
        }
    }

    #[test]
    fn only_the_destination_refusal_is_retried() {
        let e = ResourceError::new(
            ErrorClass::Other,
            "Unable to validate the following destination configurations",
        )
        .with_code("InvalidArgument");
        assert!(destination_not_yet_valid(&e));
        let other = ResourceError::new(ErrorClass::Other, "Configurations overlap").with_code("InvalidArgument");
        assert!(!destination_not_yet_valid(&other));
    }
}
