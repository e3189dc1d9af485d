//! Fault injection for the integration tests, compiled in only with the cargo feature
//! `fault-injection` and active only when `PI_DEPLOY_FAULTS` is set, e.g.
//! `PI_DEPLOY_FAULTS=throttle=0.1,5xx=0.05,seed=42`.
//!
//! A fraction of request attempts fail just before they are sent (nothing reaches the
//! service, so no side effect happened): `throttle` of them as a throttling error, `5xx` as
//! a server error. A retry classifier registered beside the interceptor tells the SDK's
//! standard retry strategy what each one is, so it backs off, spends retry quota and tries
//! again exactly as it would on a real `Throttling`/`RequestLimitExceeded` or 503.
//!
//! Why not a wrapped HTTP client returning synthetic responses (which would also exercise
//! the error parsers): the default HTTP client is chosen inside the service clients and is
//! not reachable from this crate without adding a dependency.

use std::sync::{Arc, Mutex, OnceLock};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{BeforeTransmitInterceptorContextRef, InterceptorContext};
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

/// What an injected failure pretends to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Throttling,
    ServerError,
}

/// The error an injected failure carries; the classifier recognises it by type.
#[derive(Debug)]
pub struct Injected(pub Fault);

impl std::fmt::Display for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Fault::Throttling => f.write_str("injected fault: Throttling (rate exceeded), before sending"),
            Fault::ServerError => f.write_str("injected fault: 503 Service Unavailable, before sending"),
        }
    }
}

impl std::error::Error for Injected {}

/// Rates parsed from `PI_DEPLOY_FAULTS`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    pub throttle: f64,
    pub server_error: f64,
    pub seed: u64,
}

/// Parse `throttle=0.1,5xx=0.05,seed=42` (every part optional; rates in 0..=1).
pub fn parse(spec: &str) -> Result<Rates, String> {
    let mut r = Rates {
        throttle: 0.0,
        server_error: 0.0,
        seed: 1,
    };
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("`{part}` is not key=value"))?;
        let rate = || {
            v.parse::<f64>()
                .ok()
                .filter(|x| (0.0..=1.0).contains(x))
                .ok_or_else(|| format!("`{v}` is not a rate in 0..1"))
        };
        match k {
            "throttle" => r.throttle = rate()?,
            "5xx" => r.server_error = rate()?,
            "seed" => r.seed = v.parse().map_err(|_| format!("`{v}` is not a seed"))?,
            _ => return Err(format!("unknown fault `{k}` (throttle, 5xx, seed)")),
        }
    }
    Ok(r)
}

/// The interceptor and retry classifier; one instance shared by every client.
#[derive(Clone, Debug)]
pub struct Faults {
    rates: Rates,
    rng: Arc<Mutex<u64>>,
}

impl Faults {
    /// From `PI_DEPLOY_FAULTS`, once per process; None when unset. A bad value panics: this
    /// is a test-only build and a silently ignored fault spec would make a test prove nothing.
    pub fn from_env() -> Option<Faults> {
        static FAULTS: OnceLock<Option<Faults>> = OnceLock::new();
        FAULTS
            .get_or_init(|| {
                let spec = std::env::var("PI_DEPLOY_FAULTS").ok()?;
                let rates = parse(&spec).unwrap_or_else(|e| panic!("PI_DEPLOY_FAULTS: {e}"));
                Some(Faults::new(rates))
            })
            .clone()
    }

    pub fn new(rates: Rates) -> Self {
        Self {
            rates,
            rng: Arc::new(Mutex::new(rates.seed.max(1))),
        }
    }

    /// A uniform number in [0, 1) from a shared xorshift64 (no rand crate needed).
    fn draw(&self) -> f64 {
        let mut s = self.rng.lock().unwrap();
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        (*s >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn decide(&self) -> Option<Fault> {
        let x = self.draw();
        if x < self.rates.throttle {
            Some(Fault::Throttling)
        } else if x < self.rates.throttle + self.rates.server_error {
            Some(Fault::ServerError)
        } else {
            None
        }
    }
}

impl Intercept for Faults {
    fn name(&self) -> &'static str {
        "pi-deploy fault injection"
    }

    // Runs once per attempt, after signing and just before the request would be sent.
    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        match self.decide() {
            Some(fault) => {
                // A warning, so the tests can count the faults on stderr.
                tracing::warn!("{}", Injected(fault));
                Err(Box::new(Injected(fault)))
            }
            None => Ok(()),
        }
    }
}

/// The injected fault anywhere in an error's source chain.
fn injected(e: &(dyn std::error::Error + 'static)) -> Option<Fault> {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if let Some(i) = e.downcast_ref::<Injected>() {
            return Some(i.0);
        }
        cur = e.source();
    }
    None
}

impl ClassifyRetry for Faults {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(e)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        match injected(e) {
            Some(Fault::Throttling) => RetryAction::throttling_error(),
            Some(Fault::ServerError) => RetryAction::server_error(),
            None => RetryAction::NoActionIndicated,
        }
    }

    fn name(&self) -> &'static str {
        "pi-deploy injected faults"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_is_parsed_and_bad_parts_are_refused() {
        assert_eq!(
            parse("throttle=0.1,5xx=0.05,seed=42").unwrap(),
            Rates {
                throttle: 0.1,
                server_error: 0.05,
                seed: 42
            }
        );
        assert_eq!(
            parse("").unwrap(),
            Rates {
                throttle: 0.0,
                server_error: 0.0,
                seed: 1
            }
        );
        assert!(parse("throttle=2").is_err());
        assert!(parse("reset=0.1").is_err());
        assert!(parse("throttle").is_err());
    }

    #[test]
    fn rates_are_roughly_honoured() {
        let f = Faults::new(Rates {
            throttle: 0.1,
            server_error: 0.05,
            seed: 7,
        });
        let draws: Vec<_> = (0..20_000).map(|_| f.decide()).collect();
        let share = |want| draws.iter().filter(|d| **d == want).count() as f64 / draws.len() as f64;
        assert!((share(Some(Fault::Throttling)) - 0.1).abs() < 0.01);
        assert!((share(Some(Fault::ServerError)) - 0.05).abs() < 0.01);
    }

    #[test]
    fn the_classifier_finds_the_fault_through_the_source_chain() {
        #[derive(Debug)]
        struct Wrapper(Injected);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("wrapper")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        assert_eq!(injected(&Wrapper(Injected(Fault::Throttling))), Some(Fault::Throttling));
        assert_eq!(injected(&std::fmt::Error), None);
    }
}
