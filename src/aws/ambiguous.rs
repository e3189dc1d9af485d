//! Creates whose outcome is unknown are not retried blindly.
//!
//! The SDK's standard retry strategy retries a request whose connection was reset, that
//! timed out, or that answered 5xx. For a read that is harmless; for a create it can make a
//! duplicate: the first request may have been carried out before the failure, and most EC2
//! creates (CreateVpc, CreateSubnet, AllocateAddress, ...) take no client token, so AWS
//! cannot tell the retry from a new request. This interceptor, on every client, marks such a
//! failure of a create (`AmbiguousCreate` in the error's source chain) and forbids the SDK's
//! retry; `error::sdk` classifies it `ErrorClass::Ambiguous`, and the executor's
//! `create_or_adopt` looks the resource up by its tags/name/token before creating again.
//!
//! The mark is put in `modify_before_attempt_completion`, which runs before the retry
//! strategy decides (aws-smithy-runtime `orchestrator.rs`: `finally_attempt`, then
//! `should_attempt_retry`), and the classifier forbids the retry when it sees the mark.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{FinalizerInterceptorContextMut, InterceptorContext};
use aws_smithy_runtime_api::client::orchestrator::{Metadata, OrchestratorError};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction, RetryClassifierPriority};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// Create-like calls that a retry answers without duplicating: an `AlreadyExists`-like code
/// the caller handles (CreateRoute -> RouteAlreadyExists, CreateNetworkAclEntry ->
/// NetworkAclEntryAlreadyExists), an idempotent call (CreateTags), or a client token the
/// call always carries (CreateLaunchTemplateVersion, outside the executor's create step).
const RETRY_SAFE: &[&str] = &[
    "CreateTags",
    "CreateRoute",
    "CreateNetworkAclEntry",
    "CreateLaunchTemplateVersion",
];

/// Operations that create something, where a blind retry after an unknown outcome may
/// duplicate it or fail with a conflict instead of returning what the first call made.
pub fn is_non_idempotent_create(operation: &str) -> bool {
    is_create_like(operation) && !RETRY_SAFE.contains(&operation)
}

/// Operations that create something (retry-safe or not).
pub fn is_create_like(operation: &str) -> bool {
    operation.starts_with("Create") || matches!(operation, "RunInstances" | "AllocateAddress" | "RequestCertificate")
}

/// Marks a create whose outcome is unknown; found by `error::sdk` in the source chain.
#[derive(Debug)]
pub struct AmbiguousCreate {
    pub operation: String,
    pub source: BoxError,
}

impl std::fmt::Display for AmbiguousCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} may or may not have been carried out (the request was sent, then: {}); not retried blindly",
            self.operation, self.source
        )
    }
}

impl std::error::Error for AmbiguousCreate {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// The mark anywhere in an error's source chain.
pub fn is_marked(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<AmbiguousCreate>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// Whether an attempt's failure leaves the outcome unknown: the request may have reached
/// the service (connection reset or closed, timeout, unreadable answer, or a 5xx other than
/// throttling). Interceptor errors (raised before sending) and 4xx answers are not.
/// `body` is the error answer's body; the type-erased error gives no code here, so a
/// throttling code (some come with a 503: the request was refused, not carried out) is
/// looked for in it.
fn outcome_unknown<E>(e: &OrchestratorError<E>, status: Option<u16>, body: &[u8]) -> bool {
    if e.is_connector_error() || e.is_timeout_error() || e.is_response_error() {
        return true;
    }
    e.is_operation_error() && status.is_some_and(|s| s >= 500) && !names_throttling(body)
}

fn names_throttling(body: &[u8]) -> bool {
    let body = String::from_utf8_lossy(body);
    super::error::THROTTLING_CODES.iter().any(|code| body.contains(code))
}

/// The interceptor and retry classifier, registered on every client.
#[derive(Clone, Debug, Default)]
pub struct AmbiguousCreates;

impl Intercept for AmbiguousCreates {
    fn name(&self) -> &'static str {
        "pi-deploy ambiguous creates"
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(operation) = cfg.load::<Metadata>().map(|m| m.name().to_string()) else {
            return Ok(());
        };
        let status = context.response().map(|r| r.status().as_u16());
        // What a create made may be unknown to the next reads for a while
        // (src/aws/consistency.rs): the step's consistency window opens here.
        if is_create_like(&operation)
            && status.is_some_and(|s| (200..300).contains(&s))
            && matches!(context.output_or_error(), Some(Ok(_)))
        {
            super::consistency::note_create();
        }
        if !is_non_idempotent_create(&operation) {
            return Ok(());
        }
        let body = context
            .response()
            .and_then(|r| r.body().bytes())
            .unwrap_or_default()
            .to_vec();
        let Some(slot) = context.output_or_error_mut() else {
            return Ok(());
        };
        let unknown = matches!(&*slot, Err(e) if outcome_unknown(e, status, &body));
        if unknown {
            let Err(original) = std::mem::replace(slot, Err(OrchestratorError::other("placeholder"))) else {
                unreachable!("checked above")
            };
            let marked = AmbiguousCreate {
                operation,
                source: Box::new(original),
            };
            *slot = Err(OrchestratorError::connector(ConnectorError::other(
                Box::new(marked),
                None,
            )));
        }
        Ok(())
    }
}

impl ClassifyRetry for AmbiguousCreates {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.output_or_error() {
            Some(Err(e)) if is_marked(e) => RetryAction::RetryForbidden,
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "pi-deploy ambiguous creates"
    }

    // Last, so no later classifier can turn the decision back into a retry.
    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_without_a_safe_retry_are_recognised() {
        for op in [
            "CreateVpc",
            "CreateSubnet",
            "AllocateAddress",
            "RunInstances",
            "CreateDBInstance",
            "CreateFunction",
        ] {
            assert!(is_non_idempotent_create(op), "{op}");
        }
        for op in [
            "CreateTags",
            "CreateRoute",
            "DescribeVpcs",
            "DeleteVpc",
            "PutObject",
            "ModifyVpcAttribute",
        ] {
            assert!(!is_non_idempotent_create(op), "{op}");
        }
    }

    #[test]
    fn only_failures_after_sending_leave_the_outcome_unknown() {
        let op = || OrchestratorError::operation("boom");
        assert!(outcome_unknown(
            &OrchestratorError::<&str>::connector(ConnectorError::io("reset".into())),
            None,
            b""
        ));
        assert!(outcome_unknown(
            &OrchestratorError::<&str>::timeout("slow".into()),
            None,
            b""
        ));
        assert!(outcome_unknown(&op(), Some(500), b"<Code>InternalError</Code>"));
        assert!(!outcome_unknown(&op(), Some(503), b"<Code>RequestLimitExceeded</Code>"));
        assert!(!outcome_unknown(
            &op(),
            Some(400),
            b"<Code>InvalidParameterValue</Code>"
        ));
        assert!(!outcome_unknown(
            &OrchestratorError::<&str>::other("before sending"),
            None,
            b""
        ));
    }

    #[test]
    fn the_mark_is_found_through_the_source_chain() {
        let marked = AmbiguousCreate {
            operation: "CreateVpc".into(),
            source: "connection reset".into(),
        };
        let wrapped = ConnectorError::other(Box::new(marked), None);
        assert!(is_marked(&wrapped));
        assert!(!is_marked(&ConnectorError::io("connection reset".into())));
    }
}
