//! The side-loading Lambda: Python, in the app subnets with the lambda security group, the
//! EFS access point mounted at `/mnt/efs`, code zipped by pi-deploy (`lambda_code`).
//!
//! - Create right after the role exists fails on AWS with "The role defined for the function
//!   cannot be assumed by Lambda" until IAM has propagated: that error class is retried
//!   for a few minutes, never slept over.
//! - Converge waits for State=Active and LastUpdateStatus=Successful (VPC functions stay
//!   Pending while Lambda builds their ENIs), then updates the configuration if it drifted
//!   and the code if its CodeSha256 differs from the package's. `outdated` makes `up`
//!   converge a ready function again when the handler changed.
//! - Delete removes the function, then its Hyperplane ENIs (`lambda_enis`), which would
//!   otherwise block the subnets and the security group for up to 45 minutes.
//!
//! - Day 2: `read` returns the settings `drift` compares (runtime, memory, timeout, handler,
//!   role, environment, VPC subnets and security group) as `Settings`, so `plan` shows a
//!   setting changed by hand or by the config, and `update` (converge: the full
//!   configuration, then the code) repairs it. Environment values are shown only for the
//!   variables pi-deploy sets (none secret); any other variable by its name alone.
//!
//! No X-Ray: tracing Active needs the X-Ray permission, which the role does not have.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_lambda::operation::create_function::builders::CreateFunctionInputBuilder;
use aws_sdk_lambda::operation::update_function_configuration::builders::UpdateFunctionConfigurationInputBuilder;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    Environment, FileSystemConfig, FunctionCode, FunctionConfiguration, LastUpdateStatus, PackageType, Runtime, State,
    TracingConfig, TracingMode, VpcConfig,
};

use super::lambda_code::{self, Code};
use super::lambda_enis::{self, Ec2Enis};
use super::{Aws, ResourceKind, ec2, observe, props};
use crate::aws::wait::{self, Backoff, Poll};
use crate::aws::{err, tags};
use crate::core::diff::{self, AttrSpec, ChangeAction, Settings, settings};
use crate::core::latency::{self, Transition};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props};

pub struct LambdaFunction;

/// What `up` changes on the live function (UpdateFunctionConfiguration, all at once).
pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::with(
        "runtime",
        ChangeAction::Update,
        "invocations in flight finish on the old runtime",
        &["lambda.runtime"],
    ),
    AttrSpec::update("memory_mb", &[]),
    AttrSpec::update("timeout_seconds", &[]),
    AttrSpec::update("handler", &[]),
    AttrSpec::update("role", &[]),
    AttrSpec::update("environment", &[]),
    AttrSpec::with(
        "subnets",
        ChangeAction::Update,
        "Lambda builds new network interfaces: a minute or more",
        &[],
    ),
    AttrSpec::update("security_group", &[]),
    AttrSpec::with(
        "access_point",
        ChangeAction::Update,
        "invocations in flight finish on the old mount",
        &[],
    ),
];

/// An environment variable as a setting: `NAME=value` for the ones pi-deploy sets (none
/// is secret), the name alone for any other (its value may be).
fn env_entry(name: &str, value: &str) -> String {
    if environment().contains_key(name) {
        format!("{name}={value}")
    } else {
        format!("{name} (value not shown)")
    }
}

/// Desired settings (pure), the ids from `deps`.
pub fn desired_settings(
    runtime: &str,
    role: &str,
    subnets: &[String],
    security_group: &str,
    access_point: &str,
    deps: &BTreeMap<String, Outputs>,
) -> Settings {
    settings([
        ("runtime", runtime.to_string()),
        ("memory_mb", MEMORY_MB.to_string()),
        ("timeout_seconds", TIMEOUT_S.to_string()),
        ("handler", lambda_code::HANDLER.to_string()),
        ("role", super::dep_output(deps, role, "arn")),
        (
            "environment",
            diff::list(environment().iter().map(|(k, v)| env_entry(k, v))),
        ),
        (
            "subnets",
            diff::list(subnets.iter().map(|k| super::dep_output(deps, k, "id"))),
        ),
        ("security_group", super::dep_output(deps, security_group, "id")),
        ("access_point", super::dep_output(deps, access_point, "arn")),
    ])
}

/// Live settings (pure).
fn live_settings(cfg: &FunctionConfiguration) -> Settings {
    let vpc = cfg.vpc_config();
    let env = cfg.environment().and_then(|e| e.variables());
    settings([
        ("runtime", diff::opt(cfg.runtime().map(|r| r.as_str()))),
        ("memory_mb", diff::opt(cfg.memory_size())),
        ("timeout_seconds", diff::opt(cfg.timeout())),
        ("handler", diff::opt(cfg.handler())),
        ("role", diff::opt(cfg.role())),
        (
            "environment",
            diff::list(env.into_iter().flatten().map(|(k, v)| env_entry(k, v))),
        ),
        (
            "subnets",
            diff::list(vpc.map(|v| v.subnet_ids().to_vec()).unwrap_or_default()),
        ),
        (
            "security_group",
            diff::list(vpc.map(|v| v.security_group_ids().to_vec()).unwrap_or_default()),
        ),
        (
            "access_point",
            diff::list(cfg.file_system_configs().iter().map(|f| f.arn().to_string())),
        ),
    ])
}

/// Where the access point is mounted, and where the handler writes (`EFS_ROOT`). The
/// access point's root is `/var/panintelligence` on the file system, which the instances
/// see at `/mnt/efs/var/panintelligence`.
pub const MOUNT_PATH: &str = "/mnt/efs";
pub const TIMEOUT_S: i32 = 60;
pub const MEMORY_MB: i32 = 256;
/// IAM propagation takes up to ~2 minutes (Terraform's timeout is 2 min).
const IAM_PROPAGATION_BUDGET: Duration = Duration::from_secs(180);
/// DeleteFunction is synchronous; reads may list the function for a few more seconds.
const GONE_BUDGET: Duration = Duration::from_secs(300);

/// Everything the function should be, resolved from the props and the dependencies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub name: String,
    pub runtime: String,
    pub role_arn: String,
    pub subnet_ids: Vec<String>,
    pub security_group_id: String,
    pub access_point_arn: String,
    pub description: String,
}

fn desired(aws: &Aws, cx: &NodeCtx<'_>) -> Result<Desired, ResourceError> {
    let (name, runtime, role, subnets, security_group, access_point) = props!(
        cx,
        LambdaFunction {
            name,
            runtime,
            role,
            subnets,
            security_group,
            access_point
        }
    );
    Ok(Desired {
        name: name.clone(),
        runtime: runtime.clone(),
        role_arn: cx.dep(role)?.require("arn")?.to_string(),
        subnet_ids: subnets
            .iter()
            .map(|s| cx.dep_id(s).map(String::from))
            .collect::<Result<_, _>>()?,
        security_group_id: cx.dep_id(security_group)?.to_string(),
        access_point_arn: cx.dep(access_point)?.require("arn")?.to_string(),
        description: format!(
            "pi-deploy {}: copies S3 uploads onto the dashboard's EFS",
            aws.env.deployment
        ),
    })
}

fn environment() -> HashMap<String, String> {
    HashMap::from([("EFS_ROOT".to_string(), MOUNT_PATH.to_string())])
}

fn vpc_config(d: &Desired) -> VpcConfig {
    VpcConfig::builder()
        .set_subnet_ids(Some(d.subnet_ids.clone()))
        .security_group_ids(&d.security_group_id)
        .build()
}

fn file_system(d: &Desired) -> Result<FileSystemConfig, ResourceError> {
    FileSystemConfig::builder()
        .arn(&d.access_point_arn)
        .local_mount_path(MOUNT_PATH)
        .build()
        .map_err(|e| ResourceError::new(ErrorClass::Invalid, format!("building the file system config: {e}")))
}

/// The CreateFunction request (pure, so its contents are unit-tested: emulators drop some).
pub fn create_request(
    d: &Desired,
    code: &Code,
    tags: HashMap<String, String>,
) -> Result<CreateFunctionInputBuilder, ResourceError> {
    Ok(
        aws_sdk_lambda::operation::create_function::CreateFunctionInput::builder()
            .function_name(&d.name)
            .description(&d.description)
            .runtime(Runtime::from(d.runtime.as_str()))
            .role(&d.role_arn)
            .handler(lambda_code::HANDLER)
            .package_type(PackageType::Zip)
            .code(FunctionCode::builder().zip_file(Blob::new(code.zip.clone())).build())
            .timeout(TIMEOUT_S)
            .memory_size(MEMORY_MB)
            .vpc_config(vpc_config(d))
            .file_system_configs(file_system(d)?)
            .environment(Environment::builder().set_variables(Some(environment())).build())
            .tracing_config(TracingConfig::builder().mode(TracingMode::PassThrough).build())
            .publish(false)
            .set_tags(Some(tags)),
    )
}

/// The full configuration, for repairing drift (every field, so nothing is left behind).
pub fn update_configuration_request(d: &Desired) -> Result<UpdateFunctionConfigurationInputBuilder, ResourceError> {
    Ok(
        aws_sdk_lambda::operation::update_function_configuration::UpdateFunctionConfigurationInput::builder()
            .function_name(&d.name)
            .description(&d.description)
            .runtime(Runtime::from(d.runtime.as_str()))
            .role(&d.role_arn)
            .handler(lambda_code::HANDLER)
            .timeout(TIMEOUT_S)
            .memory_size(MEMORY_MB)
            .vpc_config(vpc_config(d))
            .file_system_configs(file_system(d)?)
            .environment(Environment::builder().set_variables(Some(environment())).build())
            .tracing_config(TracingConfig::builder().mode(TracingMode::PassThrough).build()),
    )
}

/// The settings that differ from the desired ones. FileSystemConfigs are not compared:
/// some emulators do not return them; the repair request sends them anyway.
fn drift(cfg: &FunctionConfiguration, d: &Desired) -> Vec<&'static str> {
    let mut out = Vec::new();
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    if cfg.runtime().map(|r| r.as_str()) != Some(d.runtime.as_str()) {
        out.push("runtime");
    }
    if cfg.handler() != Some(lambda_code::HANDLER) {
        out.push("handler");
    }
    if cfg.role() != Some(d.role_arn.as_str()) {
        out.push("role");
    }
    if cfg.timeout() != Some(TIMEOUT_S) {
        out.push("timeout");
    }
    if cfg.memory_size() != Some(MEMORY_MB) {
        out.push("memory");
    }
    if cfg.environment().and_then(|e| e.variables()) != Some(&environment()) {
        out.push("environment");
    }
    let vpc = cfg.vpc_config();
    if vpc.map(|v| sorted(v.subnet_ids())) != Some(sorted(&d.subnet_ids))
        || vpc.map(|v| v.security_group_ids().to_vec()) != Some(vec![d.security_group_id.clone()])
    {
        out.push("vpc");
    }
    if cfg.tracing_config().and_then(|t| t.mode()) == Some(&TracingMode::Active) {
        out.push("tracing");
    }
    // The access point it mounts (another after a restore of the file system).
    if cfg.file_system_configs().iter().map(|f| f.arn()).collect::<Vec<_>>() != [d.access_point_arn.as_str()] {
        out.push("file_system");
    }
    out
}

/// Whether the function can be used (or updated) now.
fn readiness(cfg: &FunctionConfiguration) -> Poll<()> {
    let reason = |code: Option<&str>, text: Option<&str>| match (code, text) {
        (Some(c), Some(t)) => format!("{c}: {t}"),
        (None, Some(t)) => t.to_string(),
        (Some(c), None) => c.to_string(),
        (None, None) => "no reason given".into(),
    };
    match cfg.state() {
        Some(State::Failed) => {
            return Poll::Failed(format!(
                "Failed ({})",
                reason(cfg.state_reason_code().map(|c| c.as_str()), cfg.state_reason())
            ));
        }
        Some(State::Pending) => {
            return Poll::Pending(format!("Pending ({})", cfg.state_reason().unwrap_or("creating")));
        }
        // Active, or Inactive (idle; set up, re-activated by the next invocation).
        _ => {}
    }
    match cfg.last_update_status() {
        Some(LastUpdateStatus::Failed) => Poll::Failed(format!(
            "update Failed ({})",
            reason(
                cfg.last_update_status_reason_code().map(|c| c.as_str()),
                cfg.last_update_status_reason()
            )
        )),
        Some(LastUpdateStatus::InProgress) => Poll::Pending("update InProgress".into()),
        _ => Poll::Ready(()),
    }
}

fn outputs_of(cfg: &FunctionConfiguration) -> Outputs {
    let vpc = cfg.vpc_config();
    Outputs::new()
        .with("id", cfg.function_name().unwrap_or_default())
        .with("arn", cfg.function_arn().unwrap_or_default())
        .with("code_sha256", cfg.code_sha256().unwrap_or_default())
        .with("runtime", cfg.runtime().map(|r| r.as_str()).unwrap_or_default())
        .with("subnet_ids", vpc.map(|v| v.subnet_ids().join(",")).unwrap_or_default())
        .with(
            "security_group_id",
            vpc.and_then(|v| v.security_group_ids().first().cloned())
                .unwrap_or_default(),
        )
}

async fn configuration(aws: &Aws, name: &str) -> Result<FunctionConfiguration, ResourceError> {
    let out = aws
        .clients
        .lambda
        .get_function_configuration()
        .function_name(name)
        .send()
        .await
        .map_err(err("reading the Lambda function"))?;
    Ok(FunctionConfiguration::from_get(out))
}

/// Poll until usable. NotFound is passed up: a function that vanished is created again.
async fn wait_ready(aws: &Aws, name: &str, backoff: Backoff) -> Result<FunctionConfiguration, ResourceError> {
    wait::wait_for(
        &format!("Lambda function {name} to become Active"),
        latency::create_deadline(Kind::LambdaFunction),
        backoff,
        || async {
            let cfg = match configuration(aws, name).await {
                // A read a second after this run's create may not see it yet.
                Err(e) if e.is(ErrorClass::NotFound) => {
                    return crate::aws::consistency::not_visible(format!("Lambda function {name}"));
                }
                other => other?,
            };
            Ok(match readiness(&cfg) {
                Poll::Ready(()) => Poll::Ready(cfg),
                Poll::Pending(s) => Poll::Pending(s),
                Poll::Failed(s) => Poll::Failed(s),
            })
        },
    )
    .await
    .map_err(|e| match e.class {
        ErrorClass::Failed => e.with_hint(
            "the reason above is Lambda's; a subnet without free addresses, a missing EFS mount target or a role without ENI permissions are the usual causes; fix it and run `pi-deploy up` again",
        ),
        _ => e,
    })
}

/// The function of that name: `Ok(None)` when there is none, `Err` when it is not ours.
async fn lookup(aws: &Aws, key: &str, name: &str) -> Result<Result<Option<Outputs>, ResourceError>, ResourceError> {
    let out = aws
        .clients
        .lambda
        .get_function()
        .function_name(name)
        .send()
        .await
        .map_err(err("looking up the Lambda function"));
    let Some(out) = ec2::not_found_is_none(out)? else {
        return Ok(Ok(None));
    };
    let has = |k: &str, v: &str| out.tags().and_then(|t| t.get(k)).map(String::as_str) == Some(v);
    if !(has(tags::DEPLOYMENT_TAG, &aws.env.deployment) && has(tags::KEY_TAG, key)) {
        return Ok(Err(ResourceError::new(
            ErrorClass::AlreadyExists,
            format!("a Lambda function named `{name}` exists without this deployment's tags"),
        )
        .with_code("ResourceConflictException")
        .with_hint("another tool or deployment owns that name: delete or rename that function, or choose another deployment name")));
    }
    Ok(Ok(out.configuration().map(outputs_of)))
}

/// Retry a change while Lambda is busy with the previous one (ResourceConflictException).
async fn while_busy<F, Fut>(what: &str, op: F) -> Result<FunctionConfiguration, ResourceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<FunctionConfiguration, ResourceError>>,
{
    wait::retry(
        what,
        latency::create_deadline(Kind::LambdaFunction),
        Backoff::SLOW,
        &[ErrorClass::InUse, ErrorClass::IamPropagation],
        op,
    )
    .await
}

#[async_trait]
impl ResourceKind for LambdaFunction {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (name,) = props!(cx, LambdaFunction { name });
        // A function of that name that is not ours is not found here (so `destroy` never
        // touches it); `create` then reports the clash.
        Ok(lookup(aws, &cx.spec.key, name).await?.unwrap_or(None))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let d = desired(aws, cx)?;
        let code = lambda_code::code()?;
        let tags: HashMap<String, String> = tags::pairs(&aws.env.deployment, &cx.spec.key).into_iter().collect();
        let request = create_request(&d, code, tags)?;
        let r = wait::retry(
            "creating the Lambda function (waiting for its new IAM role to propagate)",
            IAM_PROPAGATION_BUDGET,
            Backoff::QUICK,
            &[ErrorClass::IamPropagation],
            || async {
                request
                    .clone()
                    .send_with(&aws.clients.lambda)
                    .await
                    .map_err(err("creating the Lambda function"))
            },
        )
        .await;
        match r {
            Ok(out) => {
                if out.state() == Some(&aws_sdk_lambda::types::State::Pending)
                    && let Some(name) = out.function_name()
                {
                    aws.started.note(name);
                }
                Ok(outputs_of(&FunctionConfiguration::from_create(out)))
            }
            // "Function already exist": created by a run that died before recording it.
            Err(e) if e.is(ErrorClass::InUse) || e.is(ErrorClass::AlreadyExists) => {
                lookup(aws, &cx.spec.key, &d.name).await??.ok_or(e)
            }
            Err(e) if e.is(ErrorClass::IamPropagation) => Err(e.with_hint(
                "the role still cannot be assumed by Lambda: check its trust policy (lambda.amazonaws.com) and run `pi-deploy up` again",
            )),
            Err(e) => Err(e),
        }
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let d = desired(aws, cx)?;
        let code = lambda_code::code()?;
        let name = outputs.id()?.to_string();
        let mut cfg = match aws.started.get(&name) {
            // Created `Pending` by this run: no read at once (the answer said so), then the
            // ramp; a read that does not see the new function yet is "not yet".
            Some(at) => wait_ready(aws, &name, Backoff::expecting(Transition::LambdaCreate, Some(at))).await?,
            None => {
                ec2::retry_not_found("reading the new Lambda function", || configuration(aws, &name)).await?;
                wait_ready(aws, &name, Backoff::expecting(Transition::LambdaCreate, None)).await?
            }
        };

        let drifted = drift(&cfg, &d);
        if !drifted.is_empty() {
            tracing::debug!(function = %name, ?drifted, "updating the Lambda configuration");
            let request = update_configuration_request(&d)?;
            while_busy("updating the Lambda configuration", || async {
                request
                    .clone()
                    .send_with(&aws.clients.lambda)
                    .await
                    .map(FunctionConfiguration::from_update_configuration)
                    .map_err(err("updating the Lambda configuration"))
            })
            .await?;
            cfg = wait_ready(aws, &name, Backoff::SLOW).await?;
        }

        if cfg.code_sha256() != Some(code.sha256.as_str()) {
            tracing::debug!(function = %name, "updating the Lambda code");
            while_busy("updating the Lambda code", || async {
                aws.clients
                    .lambda
                    .update_function_code()
                    .function_name(&name)
                    .zip_file(Blob::new(code.zip.clone()))
                    .send()
                    .await
                    .map(FunctionConfiguration::from_update_code)
                    .map_err(err("updating the Lambda code"))
            })
            .await?;
            cfg = wait_ready(aws, &name, Backoff::SLOW).await?;
        }
        Ok(outputs_of(&cfg))
    }

    fn outdated(&self, spec: &NodeSpec, outputs: &Outputs) -> bool {
        let Props::LambdaFunction { runtime, .. } = &spec.props else {
            return false;
        };
        let code_changed = match lambda_code::code() {
            Ok(code) => outputs.get("code_sha256") != Some(code.sha256.as_str()),
            // Converge reports the error.
            Err(_) => true,
        };
        code_changed || outputs.get("runtime") != Some(runtime.as_str())
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::LambdaFunction {
                runtime,
                role,
                subnets,
                security_group,
                access_point,
                ..
            } => desired_settings(runtime, role, subnets, security_group, access_point, deps),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(observe::observed(
            ec2::not_found_is_none(configuration(aws, outputs.id()?).await)?,
            |cfg| live_settings(&cfg),
        ))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let name = cx.outputs.id()?;
        let started = ec2::delete_started(
            Kind::LambdaFunction,
            &format!("deleting Lambda function {name}"),
            || async {
                aws.clients
                    .lambda
                    .delete_function()
                    .function_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(err("deleting the Lambda function"))
            },
        )
        .await?;
        wait::wait_for(
            &format!("Lambda function {name} to be gone"),
            GONE_BUDGET,
            Backoff::QUICK,
            || async {
                match configuration(aws, name).await {
                    Err(e) if e.is(ErrorClass::NotFound) => Ok(Poll::Ready(())),
                    Err(e) => Err(e),
                    Ok(_) => Ok(Poll::Pending("still listed".into())),
                }
            },
        )
        .await?;
        let enis = Ec2Enis {
            aws,
            subnet_ids: cx
                .outputs
                .get("subnet_ids")
                .map(|s| s.split(',').filter(|x| !x.is_empty()).map(String::from).collect())
                .unwrap_or_default(),
            security_group_id: cx
                .outputs
                .get("security_group_id")
                .filter(|s| !s.is_empty())
                .map(String::from),
        };
        // AWS detaches the function's network interfaces minutes after the delete: the
        // listing after the first is then (unless the function was already gone).
        // A function that had none: the one listing at once says so.
        let backoff = Backoff::expecting(Transition::LambdaDelete, started).look_first();
        lambda_enis::remove_lambda_enis(&enis, latency::delete_deadline(Kind::LambdaFunction), backoff).await
    }
}

/// The SDK has one configuration type for reads and separate output types for writes.
trait FromOutputs {
    fn from_get(o: aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput) -> Self;
    fn from_create(o: aws_sdk_lambda::operation::create_function::CreateFunctionOutput) -> Self;
    fn from_update_configuration(
        o: aws_sdk_lambda::operation::update_function_configuration::UpdateFunctionConfigurationOutput,
    ) -> Self;
    fn from_update_code(o: aws_sdk_lambda::operation::update_function_code::UpdateFunctionCodeOutput) -> Self;
}

macro_rules! to_configuration {
    ($o:expr) => {{
        let o = $o;
        FunctionConfiguration::builder()
            .set_function_name(o.function_name)
            .set_function_arn(o.function_arn)
            .set_runtime(o.runtime)
            .set_role(o.role)
            .set_handler(o.handler)
            .set_timeout(o.timeout)
            .set_memory_size(o.memory_size)
            .set_code_sha256(o.code_sha256)
            .set_vpc_config(o.vpc_config)
            .set_file_system_configs(o.file_system_configs)
            .set_environment(o.environment)
            .set_tracing_config(o.tracing_config)
            .set_state(o.state)
            .set_state_reason(o.state_reason)
            .set_state_reason_code(o.state_reason_code)
            .set_last_update_status(o.last_update_status)
            .set_last_update_status_reason(o.last_update_status_reason)
            .set_last_update_status_reason_code(o.last_update_status_reason_code)
            .build()
    }};
}

impl FromOutputs for FunctionConfiguration {
    fn from_get(o: aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput) -> Self {
        to_configuration!(o)
    }
    fn from_create(o: aws_sdk_lambda::operation::create_function::CreateFunctionOutput) -> Self {
        to_configuration!(o)
    }
    fn from_update_configuration(
        o: aws_sdk_lambda::operation::update_function_configuration::UpdateFunctionConfigurationOutput,
    ) -> Self {
        to_configuration!(o)
    }
    fn from_update_code(o: aws_sdk_lambda::operation::update_function_code::UpdateFunctionCodeOutput) -> Self {
        to_configuration!(o)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read};

    use super::*;

    fn d() -> Desired {
        Desired {
            name: "pi-sideload".into(),
            runtime: "python3.12".into(),
            role_arn: "arn:aws:iam::123456789012:role/pi-sideload-lambda".into(),
            subnet_ids: vec!["subnet-a".into(), "subnet-b".into()],
            security_group_id: "sg-lambda".into(),
            access_point_arn: "arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-1".into(),
            description: "x".into(),
        }
    }

    fn matching_config() -> FunctionConfiguration {
        FunctionConfiguration::builder()
            .runtime(Runtime::Python312)
            .handler("handler.handler")
            .role(d().role_arn)
            .timeout(TIMEOUT_S)
            .memory_size(MEMORY_MB)
            .environment(
                aws_sdk_lambda::types::EnvironmentResponse::builder()
                    .variables("EFS_ROOT", "/mnt/efs")
                    .build(),
            )
            .vpc_config(
                aws_sdk_lambda::types::VpcConfigResponse::builder()
                    .subnet_ids("subnet-b")
                    .subnet_ids("subnet-a")
                    .security_group_ids("sg-lambda")
                    .vpc_id("vpc-123abc")
                    .build(),
            )
            .file_system_configs(file_system(&d()).unwrap())
            .build()
    }

    fn deps() -> BTreeMap<String, Outputs> {
        BTreeMap::from([
            (
                "lambda-role".to_string(),
                Outputs::new().with("id", "r").with("arn", d().role_arn),
            ),
            ("subnet-app-a".to_string(), Outputs::new().with("id", "subnet-a")),
            ("subnet-app-b".to_string(), Outputs::new().with("id", "subnet-b")),
            ("sg-lambda".to_string(), Outputs::new().with("id", "sg-lambda")),
            (
                "efs-ap".to_string(),
                Outputs::new().with("id", "fsap-1").with("arn", d().access_point_arn),
            ),
        ])
    }

    fn want(runtime: &str) -> Settings {
        desired_settings(
            runtime,
            "lambda-role",
            &["subnet-app-a".into(), "subnet-app-b".into()],
            "sg-lambda",
            "efs-ap",
            &deps(),
        )
    }

    #[test]
    fn day2_settings_match_a_converged_function_and_name_what_changed() {
        assert!(diff::diff(ATTRS, &want("python3.12"), &live_settings(&matching_config()), None).is_empty());
        let c = diff::diff(ATTRS, &want("python3.13"), &live_settings(&matching_config()), None);
        assert_eq!(
            (
                c[0].attribute.as_str(),
                c[0].old.as_str(),
                c[0].new.as_str(),
                c[0].action
            ),
            ("runtime", "python3.12", "python3.13", ChangeAction::Update)
        );
        assert_eq!(c[0].fields, vec!["lambda.runtime".to_string()]);

        // Changed by hand: memory, timeout, and a variable whose value is never shown.
        let mut env = environment();
        env.insert("DB_PASSWORD".into(), "hunter2".into());
        let m = matching_config();
        let hand = FunctionConfiguration::builder()
            .set_runtime(m.runtime().cloned())
            .set_handler(m.handler().map(String::from))
            .set_role(m.role().map(String::from))
            .set_vpc_config(m.vpc_config().cloned())
            .set_file_system_configs(Some(m.file_system_configs().to_vec()))
            .memory_size(1024)
            .timeout(5)
            .environment(
                aws_sdk_lambda::types::EnvironmentResponse::builder()
                    .set_variables(Some(env))
                    .build(),
            )
            .build();
        let c = diff::diff(ATTRS, &want("python3.12"), &live_settings(&hand), None);
        let got: Vec<(&str, &str, &str)> = c
            .iter()
            .map(|c| (c.attribute.as_str(), c.old.as_str(), c.new.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("memory_mb", "1024", "256"),
                ("timeout_seconds", "5", "60"),
                (
                    "environment",
                    "DB_PASSWORD (value not shown), EFS_ROOT=/mnt/efs",
                    "EFS_ROOT=/mnt/efs"
                ),
            ]
        );
        assert!(c.iter().all(|c| !c.old.contains("hunter2")));
    }

    #[test]
    fn the_create_request_has_vpc_efs_runtime_code_and_no_tracing() {
        let code = Code {
            zip: lambda_code::package(b"def handler(e, c):\n    pass\n").unwrap(),
            sha256: "h".into(),
        };
        let tags = HashMap::from([("pi-deploy:key".to_string(), "lambda".to_string())]);
        let input = create_request(&d(), &code, tags).unwrap().build().unwrap();

        assert_eq!(input.function_name(), Some("pi-sideload"));
        assert_eq!(input.runtime(), Some(&Runtime::Python312));
        assert_eq!(input.role(), Some(d().role_arn.as_str()));
        assert_eq!(input.handler(), Some("handler.handler"));
        assert_eq!(input.timeout(), Some(60));
        assert_eq!(input.memory_size(), Some(256));

        let vpc = input.vpc_config().unwrap();
        assert_eq!(vpc.subnet_ids(), ["subnet-a", "subnet-b"]);
        assert_eq!(vpc.security_group_ids(), ["sg-lambda"]);

        let fs = input.file_system_configs();
        assert_eq!(fs.len(), 1);
        assert_eq!(fs[0].arn(), d().access_point_arn);
        assert_eq!(fs[0].local_mount_path(), "/mnt/efs");

        let env = input.environment().unwrap().variables().unwrap();
        assert_eq!(env, &HashMap::from([("EFS_ROOT".to_string(), "/mnt/efs".to_string())]));

        assert_ne!(
            input.tracing_config().and_then(|t| t.mode()),
            Some(&TracingMode::Active)
        );
        assert_eq!(
            input.tags().unwrap().get("pi-deploy:key").map(String::as_str),
            Some("lambda")
        );

        let zip = input.code().unwrap().zip_file().unwrap().as_ref().to_vec();
        assert!(!zip.is_empty());
        let mut archive = zip::ZipArchive::new(Cursor::new(zip)).unwrap();
        let mut text = String::new();
        archive
            .by_name("handler.py")
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert!(text.contains("def handler("));
    }

    #[test]
    fn the_repair_request_sends_the_whole_configuration() {
        let input = update_configuration_request(&d()).unwrap().build().unwrap();
        assert_eq!(input.function_name(), Some("pi-sideload"));
        assert_eq!(input.file_system_configs()[0].local_mount_path(), "/mnt/efs");
        assert_eq!(input.vpc_config().unwrap().security_group_ids(), ["sg-lambda"]);
        assert_eq!(input.runtime(), Some(&Runtime::Python312));
        assert_eq!(input.handler(), Some("handler.handler"));
        assert!(input.environment().is_some());
    }

    #[test]
    fn no_drift_when_everything_matches_whatever_the_order() {
        assert!(drift(&matching_config(), &d()).is_empty());
    }

    #[test]
    fn drift_names_what_changed() {
        let mut want = d();
        want.runtime = "python3.13".into();
        want.security_group_id = "sg-other".into();
        assert_eq!(drift(&matching_config(), &want), ["runtime", "vpc"]);
        let traced = matching_config().to_builder_with_tracing();
        assert_eq!(drift(&traced, &d()), ["tracing"]);
        // Switched to another access point (a restore of the file system), or none at all.
        let mut moved = d();
        moved.access_point_arn = "arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-2".into();
        assert_eq!(drift(&matching_config(), &moved), ["file_system"]);
    }

    trait WithTracing {
        fn to_builder_with_tracing(self) -> FunctionConfiguration;
    }
    impl WithTracing for FunctionConfiguration {
        fn to_builder_with_tracing(self) -> FunctionConfiguration {
            FunctionConfiguration::builder()
                .set_runtime(self.runtime().cloned())
                .set_handler(self.handler().map(String::from))
                .set_role(self.role().map(String::from))
                .set_timeout(self.timeout())
                .set_memory_size(self.memory_size())
                .set_environment(self.environment().cloned())
                .set_vpc_config(self.vpc_config().cloned())
                .set_file_system_configs(Some(self.file_system_configs().to_vec()))
                .tracing_config(
                    aws_sdk_lambda::types::TracingConfigResponse::builder()
                        .mode(TracingMode::Active)
                        .build(),
                )
                .build()
        }
    }

    #[test]
    fn readiness_follows_state_and_last_update() {
        let cfg = |state: State, update: Option<LastUpdateStatus>| {
            FunctionConfiguration::builder()
                .state(state)
                .set_last_update_status(update)
                .build()
        };
        assert!(matches!(readiness(&cfg(State::Pending, None)), Poll::Pending(_)));
        assert!(matches!(
            readiness(&cfg(State::Active, Some(LastUpdateStatus::InProgress))),
            Poll::Pending(_)
        ));
        assert!(matches!(
            readiness(&cfg(State::Active, Some(LastUpdateStatus::Successful))),
            Poll::Ready(())
        ));
        assert!(matches!(readiness(&cfg(State::Active, None)), Poll::Ready(())));
        let failed = FunctionConfiguration::builder()
            .state(State::Failed)
            .state_reason("Lambda was unable to configure access to your EFS file system")
            .state_reason_code(aws_sdk_lambda::types::StateReasonCode::EfsMountFailure)
            .build();
        match readiness(&failed) {
            Poll::Failed(s) => assert!(
                s.contains("EFSMountFailure") && s.contains("unable to configure"),
                "{s}"
            ),
            other => panic!("{other:?}"),
        }
        let update_failed = FunctionConfiguration::builder()
            .state(State::Active)
            .last_update_status(LastUpdateStatus::Failed)
            .last_update_status_reason("subnet has no free addresses")
            .build();
        assert!(matches!(readiness(&update_failed), Poll::Failed(s) if s.contains("no free addresses")));
    }

    #[test]
    fn a_ready_function_is_outdated_when_the_code_or_runtime_changed() {
        let spec = NodeSpec {
            key: "lambda".into(),
            kind: Kind::LambdaFunction,
            deps: vec![],
            props: Props::LambdaFunction {
                name: "pi-sideload".into(),
                runtime: "python3.12".into(),
                role: "lambda-role".into(),
                subnets: vec![],
                security_group: "sg-lambda".into(),
                access_point: "efs-ap".into(),
                log_group: "lambda-log-group".into(),
            },
        };
        let current = lambda_code::code().unwrap();
        let recorded = Outputs::new()
            .with("code_sha256", current.sha256.as_str())
            .with("runtime", "python3.12");
        assert!(!LambdaFunction.outdated(&spec, &recorded));
        assert!(LambdaFunction.outdated(&spec, &recorded.clone().with("code_sha256", "old")));
        assert!(LambdaFunction.outdated(&spec, &recorded.with("runtime", "python3.13")));
    }
}
