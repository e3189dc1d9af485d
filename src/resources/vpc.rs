//! The VPC, with DNS support and DNS hostnames on (interface endpoints' private DNS needs both).

use async_trait::async_trait;
use aws_sdk_ec2::types::{AttributeBooleanValue, ResourceType, VpcState};

use super::{Aws, ResourceKind, ec2, observe, props};
use crate::aws::wait::{self, Backoff, Poll};
use crate::aws::{err, tags};
use crate::core::inspect::{InspectCtx, Inspection, Live};
use crate::core::latency;
use crate::core::resource::{DeleteCtx, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::Kind;

pub struct Vpc;

#[async_trait]
impl ResourceKind for Vpc {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let out = aws
            .clients
            .ec2
            .describe_vpcs()
            .set_filters(Some(tags::ec2_filters(&aws.env.deployment, &cx.spec.key)))
            .send()
            .await
            .map_err(err("looking up the VPC by tag"))?;
        Ok(out
            .vpcs()
            .iter()
            .find(|v| tags::ec2_is_ours(v.tags(), &aws.env.deployment, &cx.spec.key))
            .and_then(|v| v.vpc_id())
            .map(|id| Outputs::new().with("id", id)))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (cidr,) = props!(cx, Vpc { cidr });
        let out = aws
            .clients
            .ec2
            .create_vpc()
            .cidr_block(cidr)
            .tag_specifications(tags::ec2_spec(ResourceType::Vpc, &aws.env.deployment, &cx.spec.key))
            .send()
            .await
            .map_err(err("creating the VPC"))?;
        let id = out.vpc().and_then(|v| v.vpc_id()).unwrap_or_default();
        if out.vpc().and_then(|v| v.state()) == Some(&VpcState::Available) {
            aws.answers.keep(id, VpcState::Available);
        }
        Ok(Outputs::new().with("id", id))
    }

    async fn converge(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let id = outputs.id()?.to_string();
        let ec2 = &aws.clients.ec2;
        // Created `available` by this process: no read needed.
        let available = aws.answers.take::<VpcState>(&id).is_some();
        if !available {
            wait::wait_for(
                "VPC to become available",
                latency::create_deadline(Kind::Vpc),
                Backoff::QUICK,
                || async {
                    let out = ec2
                        .describe_vpcs()
                        .vpc_ids(&id)
                        .send()
                        .await
                        .map_err(err("describing the VPC"));
                    // Right after create, EC2 may not know the id yet: not found means not yet.
                    let out = match out {
                        Err(e) if e.is(crate::core::resource::ErrorClass::NotFound) => {
                            return crate::aws::consistency::not_visible(format!("VPC {id}"));
                        }
                        other => other?,
                    };
                    Ok(match out.vpcs().first().and_then(|v| v.state()) {
                        Some(VpcState::Available) => Poll::Ready(()),
                        s => Poll::Pending(format!("{s:?}")),
                    })
                },
            )
            .await?;
        }
        // One attribute per call: the API refuses both in one request. A describe that saw
        // the VPC does not mean every EC2 host does: NotFound here is "not yet" too (the
        // calls are idempotent, so asking again is safe).
        let on = || AttributeBooleanValue::builder().value(true).build();
        ec2::retry_not_found("enabling DNS support", || async {
            ec2.modify_vpc_attribute()
                .vpc_id(&id)
                .enable_dns_support(on())
                .send()
                .await
                .map_err(err("enabling DNS support"))
        })
        .await?;
        ec2::retry_not_found("enabling DNS hostnames", || async {
            ec2.modify_vpc_attribute()
                .vpc_id(&id)
                .enable_dns_hostnames(on())
                .send()
                .await
                .map_err(err("enabling DNS hostnames"))
        })
        .await?;
        Ok(outputs)
    }

    async fn inspect(&self, aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
        let out = aws
            .clients
            .ec2
            .describe_vpcs()
            .vpc_ids(cx.outputs.id()?)
            .send()
            .await
            .map_err(err("describing the VPC"));
        let vpc = ec2::not_found_is_none(out)?.and_then(|o| o.vpcs().first().cloned());
        Ok(match vpc.as_ref().and_then(|v| v.state()) {
            None => Inspection::missing(),
            Some(VpcState::Available) => Inspection::available(),
            Some(s) => Inspection::of(Live::Creating).with_detail(s.as_str()),
        })
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let out = aws
            .clients
            .ec2
            .describe_vpcs()
            .vpc_ids(outputs.id()?)
            .send()
            .await
            .map_err(err("reading the VPC"));
        Ok(observe::exists(
            ec2::not_found_is_none(out)?.and_then(|o| o.vpcs().first().cloned()),
        ))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let id = cx.outputs.id()?;
        ec2::delete_retrying(Kind::Vpc, &format!("deleting VPC {id}"), || async {
            aws.clients
                .ec2
                .delete_vpc()
                .vpc_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(err("deleting the VPC"))
        })
        .await
    }
}
