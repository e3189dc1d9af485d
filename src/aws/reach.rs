//! An endpoint that cannot be reached fails fast, with its name.
//!
//! Without this, a closed port or a region that does not exist (no DNS name) meant the
//! SDK's standard retry: 8 attempts with backoff, about 35 s of silence per call, then an
//! error that named neither the endpoint nor the cause. Here an attempt that got no answer
//! at all (a connector I/O error or timeout: refused, unresolvable, unroutable, reset) is
//! wrapped in [`Unreachable`], which names the endpoint (scheme and authority of the
//! request), and the host is remembered as failing since that moment. Retries go on every
//! [`UNREACHABLE_PAUSE`] until the host has had no answer for [`UNREACHABLE_BUDGET`]; then
//! the classifier forbids further retries, and `error::sdk`
//! classifies the error `ErrorClass::Unreachable`. Any answer from the host (even an error
//! status) clears it, so a reset now and then on a healthy endpoint is retried as before.
//!
//! Registered on every client after the fault injection (whose injected resets come with
//! an answer, so they are never taken for an unreachable host) and before the ambiguous
//! creates (which wrap this error in turn: a create that could not connect is looked up
//! before it is sent again, and that lookup then fails fast here).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextMut, InterceptorContext,
};
use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction, RetryClassifierPriority};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_smithy_types::retry::ErrorKind;

/// How long a host may give no answer before its calls stop being retried.
pub const UNREACHABLE_BUDGET: Duration = Duration::from_secs(5);
/// How long one connection attempt may take (TCP, and the name lookup before it).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Hosts that gave no answer since the instant recorded.
static FAILING: Mutex<Option<HashMap<String, Instant>>> = Mutex::new(None);

fn failing_since(host: &str, now: Instant) -> Instant {
    let mut m = FAILING.lock().unwrap_or_else(|e| e.into_inner());
    *m.get_or_insert_with(HashMap::new)
        .entry(host.to_string())
        .or_insert(now)
}

fn answered(host: &str) {
    if let Some(m) = FAILING.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        m.remove(host);
    }
}

/// An attempt that got no answer from `endpoint`, which has answered nothing since `since`.
#[derive(Debug)]
pub struct Unreachable {
    pub endpoint: String,
    pub since: Instant,
    pub source: BoxError,
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot connect to {} ({})",
            self.endpoint,
            super::error::causes(self.source.as_ref())
        )
    }
}

impl std::error::Error for Unreachable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

/// The `Unreachable` anywhere in an error's source chain.
pub fn find<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a Unreachable> {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(u) = e.downcast_ref::<Unreachable>() {
            return Some(u);
        }
        cur = e.source();
    }
    None
}

/// `https://ec2.eu-west-1.amazonaws.com` from a request URI.
fn endpoint_of(uri: &str) -> String {
    let rest = uri.split_once("://");
    match rest {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?']).next().unwrap_or(rest);
            format!("{scheme}://{authority}")
        }
        None => uri.to_string(),
    }
}

/// Whether the budget is spent for a host failing since `since`.
pub fn budget_spent(since: Instant, now: Instant) -> bool {
    now.saturating_duration_since(since) >= UNREACHABLE_BUDGET
}

/// The pause between two attempts at a host that answers nothing. Fixed, not the standard
/// exponential backoff: its jittered pauses of up to 8 s or 16 s would make the time to
/// give up anything from 5 s to 20 s and more.
pub const UNREACHABLE_PAUSE: Duration = Duration::from_secs(1);

/// Retry a host failing since `since` after a short pause, until the budget is spent.
pub fn retry_action(since: Instant, now: Instant) -> RetryAction {
    if budget_spent(since, now) {
        return RetryAction::RetryForbidden;
    }
    let left = UNREACHABLE_BUDGET.saturating_sub(now.saturating_duration_since(since));
    RetryAction::retryable_error_with_explicit_delay(ErrorKind::TransientError, UNREACHABLE_PAUSE.min(left))
}

/// The endpoint of the attempt in flight (see `read_before_transmit`).
#[derive(Clone, Debug)]
struct AttemptEndpoint(String);

impl Storable for AttemptEndpoint {
    type Storer = StoreReplace<Self>;
}

#[derive(Clone, Debug, Default)]
pub struct Reachability;

impl Intercept for Reachability {
    fn name(&self) -> &'static str {
        "pi-deploy reachability"
    }

    // The request is handed to the connector before the attempt completes: its endpoint is
    // kept in the attempt's config bag here.
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        cfg.interceptor_state()
            .store_put(AttemptEndpoint(endpoint_of(context.request().uri())));
        Ok(())
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(endpoint) = cfg.load::<AttemptEndpoint>().map(|e| e.0.clone()) else {
            return Ok(());
        };
        if context.response().is_some() {
            answered(&endpoint);
            return Ok(());
        }
        let Some(slot) = context.output_or_error_mut() else {
            return Ok(());
        };
        let timeout = match &*slot {
            Err(e) => match e.as_connector_error() {
                Some(c) if c.is_io() => false,
                Some(c) if c.is_timeout() => true,
                _ => return Ok(()),
            },
            Ok(_) => {
                answered(&endpoint);
                return Ok(());
            }
        };
        let since = failing_since(&endpoint, Instant::now());
        let Err(original) = std::mem::replace(slot, Err(OrchestratorError::other("placeholder"))) else {
            unreachable!("checked above")
        };
        let wrapped: BoxError = Box::new(Unreachable {
            endpoint,
            since,
            source: Box::new(original),
        });
        let connector = if timeout {
            ConnectorError::timeout(wrapped)
        } else {
            ConnectorError::io(wrapped)
        };
        *slot = Err(OrchestratorError::connector(connector));
        Ok(())
    }
}

impl ClassifyRetry for Reachability {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        match ctx.output_or_error() {
            Some(Err(e)) => match find(e) {
                Some(u) => retry_action(u.since, Instant::now()),
                None => RetryAction::NoActionIndicated,
            },
            _ => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "pi-deploy reachability"
    }

    // After the standard classifiers, so their "transient: retry" is overruled.
    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_is_scheme_and_authority() {
        assert_eq!(
            endpoint_of("https://ec2.eu-west-1.amazonaws.com/?Action=DescribeVpcs"),
            "https://ec2.eu-west-1.amazonaws.com"
        );
        assert_eq!(endpoint_of("http://127.0.0.1:9/"), "http://127.0.0.1:9");
        assert_eq!(endpoint_of("http://127.0.0.1:9"), "http://127.0.0.1:9");
    }

    #[test]
    fn a_host_is_unreachable_once_it_answered_nothing_for_the_budget() {
        let t0 = Instant::now();
        let host = "http://unreachable.test:1";
        assert_eq!(failing_since(host, t0), t0);
        // A later failure keeps the first instant; the budget counts from it.
        assert_eq!(failing_since(host, t0 + Duration::from_secs(2)), t0);
        assert!(!budget_spent(t0, t0 + Duration::from_secs(4)));
        assert!(budget_spent(t0, t0 + UNREACHABLE_BUDGET));
        // Any answer clears it.
        answered(host);
        let t1 = t0 + Duration::from_secs(9);
        assert_eq!(failing_since(host, t1), t1);
        answered(host);
    }

    #[test]
    fn an_unreachable_host_is_retried_every_second_until_the_budget_is_spent() {
        let t0 = Instant::now();
        let delay = |at: u64| match retry_action(t0, t0 + Duration::from_millis(at)) {
            RetryAction::RetryIndicated(
                aws_smithy_runtime_api::client::retries::classifiers::RetryReason::RetryableError {
                    retry_after, ..
                },
            ) => retry_after,
            other => panic!("at {at} ms: {other:?}"),
        };
        assert_eq!(delay(0), Some(UNREACHABLE_PAUSE));
        assert_eq!(delay(4_600), Some(Duration::from_millis(400)));
        assert_eq!(retry_action(t0, t0 + UNREACHABLE_BUDGET), RetryAction::RetryForbidden);
    }

    #[test]
    fn the_wrapper_is_found_through_the_chain_and_names_the_endpoint() {
        let u = Unreachable {
            endpoint: "http://127.0.0.1:9".into(),
            since: Instant::now(),
            source: Box::new(ConnectorError::io("Connection refused (os error 111)".into())),
        };
        let text = u.to_string();
        assert!(
            text.contains("http://127.0.0.1:9") && text.contains("Connection refused"),
            "{text}"
        );
        let wrapped = ConnectorError::io(Box::new(u));
        assert!(find(&wrapped).is_some());
        assert!(find(&ConnectorError::io("reset".into())).is_none());
    }
}
