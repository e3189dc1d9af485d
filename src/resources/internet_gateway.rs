//! The internet gateway, attached to the VPC. Create and attach are two calls, so the
//! attachment lives in `converge`, which checks it first: a rerun after a crash between the
//! two calls attaches, a rerun after both does nothing.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_ec2::types::{self as t, AttachmentStatus, ResourceType};

use super::{Aws, ResourceKind, dep_output, ec2, observe, props};
use crate::aws::{err, tags};
use crate::core::diff::{self, AttrSpec, Settings, settings};
use crate::core::inspect::{InspectCtx, Inspection};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props};

pub struct InternetGateway;

/// The VPC the gateway is attached (or attaching) to. AWS reports an attached internet
/// gateway's attachment state as `available`, which is not in the SDK's enum, so anything
/// but detached/detaching counts as attached.
fn attached_vpc(igw: &t::InternetGateway) -> Option<&str> {
    igw.attachments()
        .iter()
        .find(|a| {
            !matches!(
                a.state(),
                Some(AttachmentStatus::Detached | AttachmentStatus::Detaching)
            )
        })
        .and_then(|a| a.vpc_id())
}

/// Day 2: the VPC it is attached to. A gateway left detached (its VPC deleted and created
/// again) is attached to the deployment's VPC by `converge`.
const ATTRS: &[AttrSpec] = &[AttrSpec::update("attached_vpc", &[])];

/// `-` when detached.
fn live_settings(igw: &t::InternetGateway) -> Settings {
    settings([("attached_vpc", diff::opt(attached_vpc(igw)))])
}

fn outputs_of(igw: &t::InternetGateway) -> Option<Outputs> {
    let mut out = Outputs::new().with("id", igw.internet_gateway_id()?);
    if let Some(vpc) = attached_vpc(igw) {
        out.set("vpc_id", vpc);
    }
    Some(out)
}

async fn describe(aws: &Aws, id: &str) -> Result<Option<t::InternetGateway>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_internet_gateways()
        .internet_gateway_ids(id)
        .send()
        .await
        .map_err(err("describing the internet gateway"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.internet_gateways().first().cloned()))
}

/// Describe a gateway we just created: NotFound is "not visible yet", so it is retried.
async fn describe_fresh(aws: &Aws, id: &str) -> Result<t::InternetGateway, ResourceError> {
    ec2::retry_not_found("reading the new internet gateway", || async {
        describe(aws, id).await?.ok_or_else(|| {
            ResourceError::new(
                ErrorClass::NotFound,
                format!("internet gateway {id} is not visible yet"),
            )
        })
    })
    .await
}

async fn attach(aws: &Aws, id: &str, vpc_id: &str) -> Result<(), ResourceError> {
    ec2::retry_not_found("attaching the internet gateway", || async {
        aws.clients
            .ec2
            .attach_internet_gateway()
            .internet_gateway_id(id)
            .vpc_id(vpc_id)
            .send()
            .await
            .map(|_| ())
            .map_err(err("attaching the internet gateway to the VPC"))
    })
    .await
}

async fn detach(aws: &Aws, id: &str, vpc_id: &str) -> Result<(), ResourceError> {
    // Refused with DependencyViolation ("has some mapped public address(es)") while a NAT
    // gateway, load balancer or instance still holds a public address in the VPC.
    ec2::delete_retrying(
        Kind::InternetGateway,
        &format!("detaching internet gateway {id} from {vpc_id}"),
        || async {
            let r = aws
                .clients
                .ec2
                .detach_internet_gateway()
                .internet_gateway_id(id)
                .vpc_id(vpc_id)
                .send()
                .await
                .map(|_| ())
                .map_err(err("detaching the internet gateway"));
            match r {
                Err(e) if ec2::has_code(&e, "Gateway.NotAttached") => Ok(()),
                other => other,
            }
        },
    )
    .await
}

#[async_trait]
impl ResourceKind for InternetGateway {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let out = aws
            .clients
            .ec2
            .describe_internet_gateways()
            .set_filters(Some(tags::ec2_filters(&aws.env.deployment, &cx.spec.key)))
            .send()
            .await
            .map_err(err("looking up the internet gateway by tag"))?;
        Ok(out
            .internet_gateways()
            .iter()
            .find(|g| tags::ec2_is_ours(g.tags(), &aws.env.deployment, &cx.spec.key))
            .and_then(outputs_of))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let out = aws
            .clients
            .ec2
            .create_internet_gateway()
            .tag_specifications(tags::ec2_spec(
                ResourceType::InternetGateway,
                &aws.env.deployment,
                &cx.spec.key,
            ))
            .send()
            .await
            .map_err(err("creating the internet gateway"))?;
        let id = out
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .unwrap_or_default();
        // A new gateway is attached to nothing.
        if let Some(g) = out.internet_gateway() {
            aws.answers.keep(id, g.clone());
        }
        Ok(Outputs::new().with("id", id))
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, mut outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (vpc,) = props!(cx, InternetGateway { vpc });
        let vpc_id = cx.dep_id(vpc)?;
        let id = outputs.id()?.to_string();
        let igw = match aws.answers.take::<t::InternetGateway>(&id) {
            Some(created) => created,
            None => describe_fresh(aws, &id).await?,
        };
        match attached_vpc(&igw) {
            Some(v) if v == vpc_id => {}
            Some(other) => {
                return Err(ResourceError::new(
                    ErrorClass::Invalid,
                    format!("internet gateway {id} is attached to {other}, not to this deployment's VPC {vpc_id}"),
                )
                .with_hint("detach it by hand (or delete it), then run `pi-deploy up` again"));
            }
            None => attach(aws, &id, vpc_id).await?,
        }
        outputs.set("vpc_id", vpc_id);
        Ok(outputs)
    }

    async fn inspect(&self, aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
        let Some(igw) = describe(aws, cx.outputs.id()?).await? else {
            return Ok(Inspection::missing());
        };
        let mut i = Inspection::available();
        if let Some(crate::core::spec::Props::InternetGateway { vpc }) = cx.spec.map(|s| &s.props) {
            i.check_opt("attached_vpc", cx.id_of(vpc).unwrap_or(vpc), attached_vpc(&igw));
        }
        Ok(i)
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::InternetGateway { vpc } => settings([("attached_vpc", dep_output(deps, vpc, "id"))]),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(observe::observed(describe(aws, outputs.id()?).await?, |g| {
            live_settings(&g)
        }))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let id = cx.outputs.id()?;
        let Some(igw) = describe(aws, id).await? else {
            return Ok(());
        };
        // Detach from whatever AWS says it is attached to; the recorded VPC is a fallback
        // for an attachment that is still being set up.
        let vpcs: Vec<String> = match attached_vpc(&igw).or(cx.outputs.get("vpc_id")) {
            Some(v) => vec![v.to_string()],
            None => vec![],
        };
        for vpc_id in &vpcs {
            detach(aws, id, vpc_id).await?;
        }
        ec2::delete_retrying(
            Kind::InternetGateway,
            &format!("deleting internet gateway {id}"),
            || async {
                aws.clients
                    .ec2
                    .delete_internet_gateway()
                    .internet_gateway_id(id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(err("deleting the internet gateway"))
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn igw(attachments: &[(&str, AttachmentStatus)]) -> t::InternetGateway {
        let mut b = t::InternetGateway::builder().internet_gateway_id("igw-1");
        for (vpc, state) in attachments {
            b = b.attachments(
                t::InternetGatewayAttachment::builder()
                    .vpc_id(*vpc)
                    .state(state.clone())
                    .build(),
            );
        }
        b.build()
    }

    #[test]
    fn a_gateway_left_detached_by_its_vpc_is_attached_again() {
        let want = settings([("attached_vpc", "vpc-2".to_string())]);
        let attached = live_settings(&igw(&[("vpc-2", AttachmentStatus::Attached)]));
        assert!(diff::diff(ATTRS, &want, &attached, None).is_empty());
        for gone in [
            igw(&[]),
            igw(&[("vpc-1", AttachmentStatus::Detached)]),
            igw(&[("vpc-1", AttachmentStatus::Detaching)]),
        ] {
            let live = live_settings(&gone);
            assert_eq!(live["attached_vpc"], "-");
            let changes = diff::diff(ATTRS, &want, &live, None);
            assert_eq!(changes.len(), 1);
            assert_eq!(changes[0].action, diff::ChangeAction::Update);
        }
    }
}
