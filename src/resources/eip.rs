//! An Elastic IP for a NAT gateway. Released only after the NAT gateway is deleted; while
//! something still holds it, AWS refuses the release and the delete retries.

use async_trait::async_trait;
use aws_sdk_ec2::types::{self as t, DomainType, ResourceType};

use super::{Aws, ResourceKind, ec2, observe};
use crate::aws::{err, tags};
use crate::core::inspect::{InspectCtx, Inspection};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::Kind;

pub struct ElasticIp;

fn outputs_of(a: &t::Address) -> Option<Outputs> {
    Some(
        Outputs::new()
            .with("id", a.allocation_id()?)
            .with("public_ip", a.public_ip().unwrap_or_default()),
    )
}

async fn describe(aws: &Aws, allocation_id: &str) -> Result<Option<t::Address>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_addresses()
        .allocation_ids(allocation_id)
        .send()
        .await
        .map_err(err("describing the Elastic IP"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.addresses().first().cloned()))
}

fn is_associated(a: &t::Address) -> bool {
    a.association_id().is_some() || a.network_interface_id().is_some()
}

/// One release attempt. AWS refuses to release an address a NAT gateway still holds, with
/// `InvalidIPAddress.InUse` or, for NAT-held addresses, `AuthFailure`: the latter is turned
/// into an in-use error when the address is indeed still associated, so it is retried.
async fn release(aws: &Aws, allocation_id: &str) -> Result<(), ResourceError> {
    let r = aws
        .clients
        .ec2
        .release_address()
        .allocation_id(allocation_id)
        .send()
        .await
        .map(|_| ())
        .map_err(err("releasing the Elastic IP"));
    match r {
        Err(e) if ec2::has_code(&e, "AuthFailure") => match describe(aws, allocation_id).await? {
            Some(a) if is_associated(&a) => Err(ResourceError {
                class: ErrorClass::InUse,
                ..e
            }),
            None => Ok(()),
            Some(_) => Err(e),
        },
        other => other,
    }
}

#[async_trait]
impl ResourceKind for ElasticIp {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let out = aws
            .clients
            .ec2
            .describe_addresses()
            .set_filters(Some(tags::ec2_filters(&aws.env.deployment, &cx.spec.key)))
            .send()
            .await
            .map_err(err("looking up the Elastic IP by tag"))?;
        Ok(out
            .addresses()
            .iter()
            .find(|a| tags::ec2_is_ours(a.tags(), &aws.env.deployment, &cx.spec.key))
            .and_then(outputs_of))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let out = aws
            .clients
            .ec2
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(tags::ec2_spec(
                ResourceType::ElasticIp,
                &aws.env.deployment,
                &cx.spec.key,
            ))
            .send()
            .await
            .map_err(err("allocating the Elastic IP"))?;
        Ok(Outputs::new()
            .with("id", out.allocation_id().unwrap_or_default())
            .with("public_ip", out.public_ip().unwrap_or_default()))
    }

    async fn inspect(&self, aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
        Ok(match describe(aws, cx.outputs.id()?).await? {
            Some(_) => Inspection::available(),
            None => Inspection::missing(),
        })
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        // A released address is no longer listed (InvalidAllocationID.NotFound).
        Ok(observe::exists(describe(aws, outputs.id()?).await?))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let id = cx.outputs.id()?;
        ec2::delete_retrying(Kind::ElasticIp, &format!("releasing Elastic IP {id}"), || {
            release(aws, id)
        })
        .await
    }
}
