//! The AWS edge: one SdkConfig (region, profile, endpoint, standard retries, timeouts),
//! the service clients built from it, the error classifier, the wait helper, and an
//! interceptor that counts API calls by operation.

pub mod ambiguous;
pub mod consistency;
pub mod error;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod fence;
pub mod objects;
pub mod reach;
pub mod tags;
pub mod wait;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeSerializationInterceptorContextRef;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_types::config_bag::ConfigBag;

pub use error::{err, sdk};

use crate::core::resource::{ErrorClass, ResourceError};
use crate::core::state::Identity;

/// Counts every API call (one per operation execution, retries not counted twice) by
/// `Service.Operation`. The benchmark and the "no AWS call on bad input" tests read it.
#[derive(Debug, Default, Clone)]
pub struct CallCounter(Arc<Mutex<BTreeMap<String, u64>>>);

impl CallCounter {
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().unwrap().clone()
    }
    pub fn total(&self) -> u64 {
        self.0.lock().unwrap().values().sum()
    }
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "pi-deploy call counter"
    }

    // Not `read_before_execution`: client interceptors run that hook before the operation's
    // configuration (which holds its name) is applied. This one runs once per execution too.
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(m) = cfg.load::<Metadata>() {
            // A dry run changes nothing: counted apart, so a count of mutating calls (the
            // tests' "no change made") does not see one.
            let dry = context
                .input()
                .downcast_ref::<aws_sdk_ec2::operation::run_instances::RunInstancesInput>()
                .is_some_and(|i| i.dry_run() == Some(true));
            let name = format!("{}.{}{}", m.service(), m.name(), if dry { ".DryRun" } else { "" });
            // With -vv, a timestamped line per call: the timeline of a run's calls.
            tracing::debug!(call = %name, "api call");
            *self.0.lock().unwrap().entry(name).or_default() += 1;
        }
        Ok(())
    }
}

/// Every client pi-deploy uses, built once from one SdkConfig.
#[derive(Clone, Debug)]
pub struct Clients {
    pub config: SdkConfig,
    pub calls: CallCounter,
    pub ec2: aws_sdk_ec2::Client,
    pub rds: aws_sdk_rds::Client,
    pub efs: aws_sdk_efs::Client,
    pub s3: aws_sdk_s3::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub elb: aws_sdk_elasticloadbalancingv2::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
    pub iam: aws_sdk_iam::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub sts: aws_sdk_sts::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub route53: aws_sdk_route53::Client,
    pub acm: aws_sdk_acm::Client,
    /// `snapshot`: the file system's on-demand backups.
    pub backup: aws_sdk_backup::Client,
}

macro_rules! client {
    ($krate:ident, $cfg:expr, $calls:expr) => {
        $krate::Client::from_conf(
            ambiguous!(reach!(faults!($krate::config::Builder::from($cfg)
                .interceptor(fence::FenceInterceptor(fence::process()))
                .interceptor($calls.clone()))))
            .build(),
        )
    };
}

/// Every client: an endpoint that answers nothing fails fast, named (src/aws/reach.rs).
/// After the fault injection, before the ambiguous creates.
macro_rules! reach {
    ($builder:expr) => {
        $builder
            .interceptor(reach::Reachability)
            .retry_classifier(reach::Reachability)
    };
}

/// Every client: creates whose outcome is unknown are not retried blindly
/// (src/aws/ambiguous.rs). Registered after the fault injection, so it sees the injected
/// connection resets as it would see real ones (interceptors run in registration order).
macro_rules! ambiguous {
    ($builder:expr) => {
        $builder
            .interceptor(ambiguous::AmbiguousCreates)
            .retry_classifier(ambiguous::AmbiguousCreates)
    };
}

/// Test builds only (`--features fault-injection`): the injected faults of
/// `PI_DEPLOY_FAULTS` on every client (src/aws/fault.rs).
#[cfg(feature = "fault-injection")]
macro_rules! faults {
    ($builder:expr) => {
        match fault::Faults::from_env() {
            Some(f) => $builder.interceptor(f.clone()).retry_classifier(f),
            None => $builder,
        }
    };
}

#[cfg(not(feature = "fault-injection"))]
macro_rules! faults {
    ($builder:expr) => {
        $builder
    };
}

/// One HTTP client for the credential providers and every service client, built as the SDK
/// builds its default one (hyper, rustls with aws-lc, proxies from the environment). Without
/// it each of the 16 service clients builds its own: its own TLS configuration (root
/// certificates parsed again) and its own connection pool, so no connection is reused
/// across services (against an emulator, one endpoint serves them all). The client caches
/// one connector per timeout setting, and every client here has the same timeouts.
fn shared_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::{Builder, ConnectorBuilder, tls};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut b =
            ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
        b.set_connector_settings(settings.cloned());
        if let Some(c) = components {
            b.set_sleep_impl(c.sleep_impl());
        }
        b.set_proxy_config(Some(ProxyConfig::from_env()));
        b.build()
    })
}

impl Clients {
    /// Load credentials and settings the standard way (env, profile, SSO, IMDS), with the
    /// region given on the command line or config winning over the environment.
    pub async fn load(region: Option<&str>) -> Result<Self, ResourceError> {
        Ok(Self::from_config(sdk_config(region).await?))
    }

    pub fn from_config(config: SdkConfig) -> Self {
        let calls = CallCounter::default();
        let c = &config;
        // A custom endpoint (an emulator, a VPC endpoint URL) cannot serve virtual-hosted
        // bucket names, so S3 uses path-style addressing whenever one is set.
        let s3 = aws_sdk_s3::Client::from_conf(
            ambiguous!(reach!(faults!(
                aws_sdk_s3::config::Builder::from(c)
                    .force_path_style(c.endpoint_url().is_some())
                    .interceptor(fence::FenceInterceptor(fence::process()))
                    .interceptor(calls.clone())
            )))
            .build(),
        );
        Self {
            ec2: client!(aws_sdk_ec2, c, calls),
            rds: client!(aws_sdk_rds, c, calls),
            efs: client!(aws_sdk_efs, c, calls),
            s3,
            lambda: client!(aws_sdk_lambda, c, calls),
            autoscaling: client!(aws_sdk_autoscaling, c, calls),
            elb: client!(aws_sdk_elasticloadbalancingv2, c, calls),
            secrets: client!(aws_sdk_secretsmanager, c, calls),
            iam: client!(aws_sdk_iam, c, calls),
            cloudwatch: client!(aws_sdk_cloudwatch, c, calls),
            logs: client!(aws_sdk_cloudwatchlogs, c, calls),
            sts: client!(aws_sdk_sts, c, calls),
            ssm: client!(aws_sdk_ssm, c, calls),
            route53: client!(aws_sdk_route53, c, calls),
            acm: client!(aws_sdk_acm, c, calls),
            backup: client!(aws_sdk_backup, c, calls),
            calls,
            config,
        }
    }

    pub fn region(&self) -> String {
        self.config.region().map(|r| r.to_string()).unwrap_or_default()
    }

    /// Account id and partition from STS (never hard-coded: GovCloud and China differ).
    pub async fn identity(&self, deployment: &str) -> Result<Identity, ResourceError> {
        let out = self.sts.get_caller_identity().send().await.map_err(|e| {
            let e = sdk("asking STS who the caller is", e);
            let hint = match e.class {
                ErrorClass::Unreachable => self.unreachable_hint(),
                _ => "check your AWS credentials (aws sso login, AWS_PROFILE)".to_string(),
            };
            e.with_hint(hint)
        })?;
        let account_id = out.account().unwrap_or_default().to_string();
        let partition = out.arn().and_then(|a| a.split(':').nth(1)).unwrap_or("aws").to_string();
        Ok(Identity {
            deployment: deployment.into(),
            region: self.region(),
            account_id,
            partition,
        })
    }

    /// What to check when an endpoint answered nothing: the endpoint override when one is
    /// set, else the region's name and the network.
    pub fn unreachable_hint(&self) -> String {
        match self.config.endpoint_url() {
            Some(url) => format!(
                "AWS_ENDPOINT_URL (or the profile's endpoint_url) is {url}: check that the endpoint is running and the URL is right, or unset it to use AWS"
            ),
            None => format!(
                "check the region `{}` (is it an AWS region your account uses?) and the network: DNS, proxy (HTTPS_PROXY), firewall",
                self.region()
            ),
        }
    }

    /// The first two availability zones the region reports available.
    pub async fn first_two_zones(&self) -> Result<[String; 2], ResourceError> {
        let out = self
            .ec2
            .describe_availability_zones()
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("state")
                    .values("available")
                    .build(),
            )
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("zone-type")
                    .values("availability-zone")
                    .build(),
            )
            .send()
            .await
            .map_err(err("listing availability zones"))?;
        let mut names: Vec<String> = out
            .availability_zones()
            .iter()
            .filter_map(|z| z.zone_name().map(String::from))
            .collect();
        names.sort();
        match names.as_slice() {
            [a, b, ..] => Ok([a.clone(), b.clone()]),
            _ => Err(
                ResourceError::new(ErrorClass::Invalid, "the region has fewer than two available zones")
                    .with_hint("choose another region, or list two zones in `availability_zones`"),
            ),
        }
    }

    /// Writes the call counts as JSON where `PI_DEPLOY_CALL_COUNTS` points (benchmarks, tests).
    pub fn dump_call_counts(&self) {
        if let Ok(path) = std::env::var("PI_DEPLOY_CALL_COUNTS")
            && let Ok(json) = serde_json::to_vec_pretty(&self.calls.snapshot())
        {
            let _ = std::fs::write(path, json);
        }
    }
}

/// Load credentials and settings the standard way (env, profile, SSO, IMDS), with the
/// region given on the command line or config winning over the environment; standard
/// retries (8 attempts, backoff up to 20 s) and timeouts. Every client is built from it.
pub async fn sdk_config(region: Option<&str>) -> Result<SdkConfig, ResourceError> {
    // The SDK panics on an endpoint variable that is set but empty (`export
    // AWS_ENDPOINT_URL=` in a profile script): refuse it with a fix instead.
    for var in ["AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_EC2", "AWS_ENDPOINT_URL_S3"] {
        if std::env::var_os(var).is_some_and(|v| v.is_empty()) {
            return Err(
                ResourceError::new(ErrorClass::Invalid, format!("{var} is set but empty"))
                    .with_hint(format!("unset {var}, or set it to the endpoint's URL")),
            );
        }
    }
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(shared_http_client())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(8)
                .with_max_backoff(Duration::from_secs(20)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(reach::CONNECT_TIMEOUT)
                .operation_attempt_timeout(Duration::from_secs(60))
                .build(),
        );
    if let Some(r) = region {
        loader = loader.region(Region::new(r.to_string()));
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(ResourceError::new(ErrorClass::Invalid, "no AWS region is configured")
            .with_hint("pass --region, set `region` in the config file, or set AWS_REGION"));
    }
    Ok(config)
}

/// Environment of one run, shared by every resource kind.
#[derive(Clone, Debug)]
pub struct Env {
    pub deployment: String,
    pub region: String,
    pub account_id: String,
    pub partition: String,
    pub config: Arc<crate::core::config::Config>,
    /// How `destroy` treats the database (from its flags; defaults for every other command).
    pub destroy: DestroyOptions,
    /// Final DB snapshots taken by this run's deletes, for the run's summary.
    pub final_snapshots: Arc<Mutex<Vec<String>>>,
}

/// The database-related flags of `destroy`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DestroyOptions {
    pub skip_final_snapshot: bool,
    pub disable_deletion_protection: bool,
}

impl Env {
    pub fn arn(&self, service: &str, region: &str, resource: &str) -> String {
        let account = if service == "s3" { "" } else { &self.account_id };
        format!("arn:{}:{service}:{region}:{account}:{resource}", self.partition)
    }
    pub fn dns_suffix(&self) -> &'static str {
        if self.partition == "aws-cn" {
            "amazonaws.com.cn"
        } else {
            "amazonaws.com"
        }
    }
}
