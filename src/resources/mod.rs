//! One module per resource kind, each behind the small `ResourceKind` trait. Only these
//! modules (and `aws`) see SDK types; the core sees the `Cloud` trait that `AwsCloud`
//! implements by dispatching on the kind.

mod ec2;
mod eip;
mod internet_gateway;
mod nat_gateway;
mod network_acl;
mod route;
mod route_table;
mod security_group;
mod subnet;
mod vpc;
mod vpc_endpoint;

use std::sync::Arc;

use async_trait::async_trait;

use crate::aws::{Clients, Env};
use crate::core::resource::{Cloud, DeleteCtx, NodeCtx, Outputs, ResourceError};
use crate::core::spec::Kind;

/// What every kind module gets: the clients and the run's environment.
pub struct Aws {
    pub clients: Clients,
    pub env: Env,
}

/// The contract of one kind; see `core::resource` for what each step must guarantee.
#[async_trait]
pub trait ResourceKind: Send + Sync {
    /// Look the resource up by tag or deterministic name; `None` when it does not exist.
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError>;
    /// One create call, tagged on create; returns the ids as soon as AWS accepted it.
    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError>;
    /// Idempotently apply the separate settings and wait until usable.
    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let _ = (aws, cx);
        Ok(outputs)
    }
    /// Delete and wait until gone; already gone is success.
    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError>;
}

fn kind_impl(kind: Kind) -> &'static dyn ResourceKind {
    match kind {
        Kind::Vpc => &vpc::Vpc,
        Kind::InternetGateway => &internet_gateway::InternetGateway,
        Kind::Subnet => &subnet::Subnet,
        Kind::ElasticIp => &eip::ElasticIp,
        Kind::NatGateway => &nat_gateway::NatGateway,
        Kind::RouteTable => &route_table::RouteTable,
        Kind::Route => &route::Route,
        Kind::NetworkAcl => &network_acl::NetworkAcl,
        Kind::SecurityGroup => &security_group::SecurityGroup,
        Kind::VpcEndpoint => &vpc_endpoint::VpcEndpoint,
        // Kinds whose modules are still being written; `spec::build` does not emit them yet.
        _ => &Unbuilt,
    }
}

struct Unbuilt;

#[async_trait]
impl ResourceKind for Unbuilt {
    async fn find(&self, _: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        Err(unbuilt(cx.spec.kind))
    }
    async fn create(&self, _: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        Err(unbuilt(cx.spec.kind))
    }
    async fn delete(&self, _: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        Err(unbuilt(cx.kind))
    }
}

fn unbuilt(kind: Kind) -> ResourceError {
    ResourceError::new(crate::core::resource::ErrorClass::Invalid, format!("resource kind `{kind}` is not implemented"))
}

/// The `Cloud` the executor drives against real AWS (or an emulator at AWS_ENDPOINT_URL).
pub struct AwsCloud {
    pub aws: Arc<Aws>,
}

#[async_trait]
impl Cloud for AwsCloud {
    async fn find(&self, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        kind_impl(cx.spec.kind).find(&self.aws, cx).await
    }
    async fn create(&self, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        kind_impl(cx.spec.kind).create(&self.aws, cx).await
    }
    async fn converge(&self, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        kind_impl(cx.spec.kind).converge(&self.aws, cx, outputs).await
    }
    async fn delete(&self, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        kind_impl(cx.kind).delete(&self.aws, cx).await
    }
}

/// Props of the expected variant, or a bug in the spec.
macro_rules! props {
    ($cx:expr, $variant:ident { $($field:ident),* $(,)? }) => {
        match &$cx.spec.props {
            crate::core::spec::Props::$variant { $($field,)* .. } => ($($field,)*),
            other => {
                return Err(crate::core::resource::ResourceError::new(
                    crate::core::resource::ErrorClass::Invalid,
                    format!("`{}` has props {:?}, expected {}", $cx.spec.key, other, stringify!($variant)),
                ))
            }
        }
    };
}
pub(crate) use props;
