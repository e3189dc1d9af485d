//! Helpers shared by the Elastic Load Balancing kinds (target group, load balancer, listener,
//! dashboard check): tags in ELBv2's shape, ownership checks, and ARN suffixes for CloudWatch.

use aws_sdk_elasticloadbalancingv2::types::Tag;

use super::Aws;
use crate::aws::{err, tags};
use crate::core::resource::{ErrorClass, ResourceError};

/// The three tags, for the create call's `Tags`.
pub fn elb_tags(deployment: &str, key: &str) -> Vec<Tag> {
    tags::pairs(deployment, key)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn tags_say_ours(t: &[Tag], deployment: &str, key: &str) -> bool {
    let has = |k: &str, v: &str| t.iter().any(|t| t.key() == Some(k) && t.value() == Some(v));
    has(tags::DEPLOYMENT_TAG, deployment) && has(tags::KEY_TAG, key)
}

/// Whether the resource at `arn` carries this deployment's tags for `key`.
pub async fn is_ours(aws: &Aws, arn: &str, key: &str) -> Result<bool, ResourceError> {
    let out = aws
        .clients
        .elb
        .describe_tags()
        .resource_arns(arn)
        .send()
        .await
        .map_err(err("reading load balancing tags"))?;
    Ok(out
        .tag_descriptions()
        .iter()
        .any(|d| d.resource_arn() == Some(arn) && tags_say_ours(d.tags(), &aws.env.deployment, key)))
}

/// The error for a deterministic name that another deployment (or a person) already uses.
pub fn foreign(what: &str, name: &str) -> ResourceError {
    ResourceError::new(
        ErrorClass::AlreadyExists,
        format!("a {what} named {name} exists but does not belong to this deployment"),
    )
    .with_hint(format!(
        "choose another deployment name, or delete that {what} if it is a leftover"
    ))
}

/// The part of an ELB ARN that CloudWatch dimensions use: everything after `:<marker>` minus
/// the marker's resource-type prefix for load balancers (`app/<name>/<id>`), and
/// `targetgroup/<name>/<id>` for target groups.
pub fn arn_suffix(arn: &str) -> Option<String> {
    let resource = arn.splitn(6, ':').nth(5)?;
    if let Some(rest) = resource.strip_prefix("loadbalancer/") {
        return Some(rest.to_string());
    }
    resource.starts_with("targetgroup/").then(|| resource.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_suffixes_are_what_cloudwatch_expects() {
        assert_eq!(
            arn_suffix("arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/pi-alb/50dc6c495c0c9188")
                .as_deref(),
            Some("app/pi-alb/50dc6c495c0c9188")
        );
        assert_eq!(
            arn_suffix("arn:aws-cn:elasticloadbalancing:cn-north-1:123456789012:targetgroup/pi-tg/73e2d6bc24d8a067")
                .as_deref(),
            Some("targetgroup/pi-tg/73e2d6bc24d8a067")
        );
        assert_eq!(arn_suffix("not-an-arn"), None);
    }

    #[test]
    fn ownership_needs_both_tags() {
        let t = elb_tags("pi", "tg");
        assert!(tags_say_ours(&t, "pi", "tg"));
        assert!(!tags_say_ours(&t, "pi", "alb"));
        assert!(!tags_say_ours(&t[..1], "pi", "tg"));
    }
}
