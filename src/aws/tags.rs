//! The three tags every resource carries, in each service's shape. Tags go on the create
//! call itself (TagSpecifications / Tags), never in a second call, so a resource is never
//! untagged and always findable from AWS alone.

use aws_sdk_ec2::types::{Filter, ResourceType, Tag, TagSpecification};

pub const DEPLOYMENT_TAG: &str = "pi-deploy:deployment";
pub const KEY_TAG: &str = "pi-deploy:key";

/// (name, value) pairs: `Name=<deployment>-<key>`, deployment, key.
pub fn pairs(deployment: &str, key: &str) -> [(String, String); 3] {
    [
        ("Name".to_string(), format!("{deployment}-{key}")),
        (DEPLOYMENT_TAG.to_string(), deployment.to_string()),
        (KEY_TAG.to_string(), key.to_string()),
    ]
}

pub fn ec2_spec(resource_type: ResourceType, deployment: &str, key: &str) -> TagSpecification {
    let mut b = TagSpecification::builder().resource_type(resource_type);
    for (k, v) in pairs(deployment, key) {
        b = b.tags(Tag::builder().key(k).value(v).build());
    }
    b.build()
}

/// Filters that select exactly one of our resources (AWS applies them server-side).
pub fn ec2_filters(deployment: &str, key: &str) -> Vec<Filter> {
    vec![
        Filter::builder()
            .name(format!("tag:{DEPLOYMENT_TAG}"))
            .values(deployment)
            .build(),
        Filter::builder().name(format!("tag:{KEY_TAG}")).values(key).build(),
    ]
}

pub fn ec2_deployment_filter(deployment: &str) -> Filter {
    Filter::builder()
        .name(format!("tag:{DEPLOYMENT_TAG}"))
        .values(deployment)
        .build()
}

/// Some APIs ignore tag filters (moto's DescribeNatGateways returns every NAT): check the
/// returned tags ourselves so another deployment's resource is never adopted.
pub fn ec2_is_ours(tags: &[Tag], deployment: &str, key: &str) -> bool {
    let has = |k: &str, v: &str| tags.iter().any(|t| t.key() == Some(k) && t.value() == Some(v));
    has(DEPLOYMENT_TAG, deployment) && has(KEY_TAG, key)
}

pub fn ec2_tag<'a>(tags: &'a [Tag], key: &str) -> Option<&'a str> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value())
}
