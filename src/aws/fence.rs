//! Stops every AWS change once the run has learnt that it must not act any more.
//!
//! The state store trips the fence when a state write finds that the state changed behind
//! the run's back (another writer, a restored version) or that the run lost its lock
//! (`force-unlock`). From then on, this interceptor, registered on every client, refuses
//! each call that is not a read (`Describe*`, `Get*`, `List*`, `Head*`, ...) before it is
//! sent, so resources still in flight in the executor (their converge steps) cannot change
//! anything either; the run drains and exits 3 naming the reason. Reads keep working so the
//! in-flight steps fail quickly instead of waiting.
//!
//! One fence per process (one run per process): `process()`. The state store's own S3
//! client is not fenced; it never writes after the conflict.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock, Mutex, OnceLock};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

#[derive(Debug, Default)]
pub struct Fence {
    reason: OnceLock<String>,
    /// `Service.Operation` -> calls refused.
    stopped: Mutex<BTreeMap<String, u64>>,
}

static PROCESS: LazyLock<Arc<Fence>> = LazyLock::new(Arc::default);

/// This process's fence, registered on every client `Clients` builds.
pub fn process() -> Arc<Fence> {
    PROCESS.clone()
}

impl Fence {
    /// Refuse every AWS change from now on; the first reason is kept.
    pub fn trip(&self, reason: impl Into<String>) {
        let reason = reason.into();
        if self.reason.set(reason.clone()).is_ok() {
            tracing::warn!("no further AWS change will be made: {reason}");
        }
    }

    pub fn reason(&self) -> Option<&str> {
        self.reason.get().map(String::as_str)
    }

    /// The calls refused so far, by `Service.Operation`.
    pub fn stopped(&self) -> BTreeMap<String, u64> {
        self.stopped.lock().unwrap().clone()
    }

    /// Whether `service.operation` may be sent.
    fn admit(&self, service: &str, operation: &str) -> Result<(), Fenced> {
        match self.reason.get() {
            Some(reason) if !is_read_only(operation) => {
                *self
                    .stopped
                    .lock()
                    .unwrap()
                    .entry(format!("{service}.{operation}"))
                    .or_default() += 1;
                Err(Fenced {
                    operation: operation.to_string(),
                    reason: reason.clone(),
                })
            }
            _ => Ok(()),
        }
    }
}

/// Operations that change nothing, by name. Everything else counts as a change.
pub fn is_read_only(operation: &str) -> bool {
    const READS: &[&str] = &["Describe", "Get", "List", "Head", "Lookup", "Search", "Filter"];
    READS.iter().any(|p| operation.starts_with(p))
}

/// The error a refused call fails with; `error::sdk` classifies it `Cancelled`.
#[derive(Debug)]
pub struct Fenced {
    pub operation: String,
    pub reason: String,
}

impl std::fmt::Display for Fenced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} was not sent: {}", self.operation, self.reason)
    }
}

impl std::error::Error for Fenced {}

/// The refusal anywhere in an error's source chain.
pub fn is_fenced(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<Fenced>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// The interceptor on every client.
#[derive(Clone, Debug)]
pub struct FenceInterceptor(pub Arc<Fence>);

impl Intercept for FenceInterceptor {
    fn name(&self) -> &'static str {
        "pi-deploy fence"
    }

    // As the call counter: the operation's name is in the config bag from this hook on.
    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        match cfg.load::<Metadata>() {
            Some(m) => self.0.admit(m.service(), m.name()).map_err(Into::into),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_tripped_only_reads_pass_and_refusals_are_counted() {
        let f = Fence::default();
        assert!(
            f.admit("ec2", "CreateVpc").is_ok(),
            "an untripped fence admits everything"
        );
        f.trip("the state changed behind the run's back");
        f.trip("a later reason is not kept");
        for read in [
            "DescribeVpcs",
            "GetObject",
            "ListTagsForResource",
            "HeadBucket",
            "FilterLogEvents",
        ] {
            assert!(f.admit("x", read).is_ok(), "{read}");
        }
        for change in [
            "CreateVpc",
            "RunInstances",
            "ModifyVpcAttribute",
            "AuthorizeSecurityGroupIngress",
            "PutObject",
            "DeleteSubnet",
            "TagResource",
            "UpdateAutoScalingGroup",
            "AttachInternetGateway",
        ] {
            let e = f.admit("ec2", change).unwrap_err();
            assert!(e.to_string().contains("behind the run's back"), "{e}");
            assert!(is_fenced(&e));
        }
        assert_eq!(f.stopped().get("ec2.CreateVpc"), Some(&1));
        assert_eq!(f.stopped().values().sum::<u64>(), 9);
        assert_eq!(f.reason(), Some("the state changed behind the run's back"));
    }
}
