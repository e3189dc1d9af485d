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
//! `reset` of the create-like calls (Create*, RunInstances, AllocateAddress) that succeeded
//! have their answer replaced by a connection reset (`modify_before_attempt_completion`,
//! which runs before the retry decision and before the product's `ambiguous` interceptor,
//! registered after this one): the resource exists, the client saw an I/O error.
//!
//! `pending=N`: the first N reads of a resource just created show AWS's intermediate state
//! instead of moto's final one (moto jumps straight to it): NAT gateway `pending` (and
//! `deleting` after DeleteNatGateway), DB instance `creating` with no endpoint, load
//! balancer `provisioning`, EFS file system and mount targets `creating`, Lambda function
//! `Pending`, VPC endpoint `pending`. The interceptor learns the ids from the create (and
//! delete) answers it sees and rewrites the describe answers (`downcast_mut` of the typed
//! output; the SDK's output fields are public).
//!
//! `notfound=N`, `inuse=1`, `iam=N` refuse calls the way AWS does, judged from the
//! interceptor's model of what this process saw created, used and deleted (fault/world.rs):
//! the first N describes by id (and ModifyVpcAttribute, AttachInternetGateway) of an EC2
//! resource a create just returned answer its NotFound code (eventual consistency); the
//! deletes AWS refuses while a NAT gateway or DB instance that held the resource went
//! less than ~1.5 s ago, or while another group's ingress admits a security group, answer
//! `DependencyViolation` / `InvalidIPAddress.InUse` / `InvalidDBSubnetGroupStateFault`; the
//! first N CreateLaunchTemplate / CreateAutoScalingGroup / CreateFunction naming a role or
//! instance profile made less than 10 s ago answer the IAM propagation error. A refused
//! call must have no side effect: its request is turned, after signing, into a harmless
//! read of the same service (`neutralize`), and the answer to that read is replaced by the
//! operation's own typed error carrying AWS's code and message, with status 400.
//!
//! Every injected fault is counted by kind; with `PI_DEPLOY_FAULT_COUNTS=<file>` the counts
//! are written there (JSON, rewritten at each injection) for the tests to read.
//!
//! Why not a wrapped HTTP client returning synthetic responses (which would also exercise
//! the error parsers): the default HTTP client is chosen inside the service clients and is
//! not reachable from this crate without adding a dependency.

pub mod latency;
mod world;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, BeforeTransmitInterceptorContextMut, BeforeTransmitInterceptorContextRef,
    Error as OperationError, FinalizerInterceptorContextMut, InterceptorContext, Output,
};
use aws_smithy_runtime_api::client::orchestrator::{Metadata, OrchestratorError};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::{Request as HttpRequest, StatusCode};
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::{ConfigBag, Storable, StoreReplace};
use aws_smithy_types::error::ErrorMetadata;
use latency::{Latency, Named};
use world::{Call, Refusal, World};

impl Storable for Call {
    type Storer = StoreReplace<Self>;
}

/// The refusal decided for this attempt, applied once the answer to its neutralized
/// request is read.
#[derive(Clone, Debug)]
struct Refused(Option<Refusal>);

impl Storable for Refused {
    type Storer = StoreReplace<Self>;
}

/// What an injected failure pretends to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Throttling,
    ServerError,
    /// The create happened; the answer was lost to a connection reset.
    Reset,
    /// A read showed an intermediate state (`pending`, `creating`, `deleting`, ...).
    Pending,
    /// A call on a resource just created answered its NotFound code.
    NotFound,
    /// A delete was refused while something still held the resource.
    InUse,
    /// A create naming a new role or instance profile answered the IAM propagation error.
    Iam,
}

impl Fault {
    /// The key of `PI_DEPLOY_FAULTS` and of the counts file.
    pub fn key(self) -> &'static str {
        match self {
            Fault::Throttling => "throttle",
            Fault::ServerError => "5xx",
            Fault::Reset => "reset",
            Fault::Pending => "pending",
            Fault::NotFound => "notfound",
            Fault::InUse => "inuse",
            Fault::Iam => "iam",
        }
    }
}

/// The error an injected failure carries; the classifier recognises it by type.
#[derive(Debug)]
pub struct Injected(pub Fault);

impl std::fmt::Display for Injected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Fault::Throttling => f.write_str("injected fault: Throttling (rate exceeded), before sending"),
            Fault::ServerError => f.write_str("injected fault: 503 Service Unavailable, before sending"),
            Fault::Reset => {
                f.write_str("injected fault: connection reset by peer, after the service carried out the call")
            }
            Fault::Pending => f.write_str("injected fault: an intermediate state shown instead of the final one"),
            Fault::NotFound => {
                f.write_str("injected fault: NotFound for a resource just created (eventual consistency)")
            }
            Fault::InUse => f.write_str("injected fault: a delete refused while something still holds the resource"),
            Fault::Iam => f.write_str("injected fault: a new IAM role or instance profile not usable yet"),
        }
    }
}

impl std::error::Error for Injected {}

/// Rates parsed from `PI_DEPLOY_FAULTS`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rates {
    pub throttle: f64,
    pub server_error: f64,
    /// Share of successful create-like calls whose answer is lost to a connection reset.
    pub reset: f64,
    /// Reads of each new (or deleted) resource that show its intermediate state.
    pub pending: u32,
    /// Calls of each operation on a new resource that answer NotFound.
    pub not_found: u32,
    /// Whether deletes are refused while the model says something still holds them.
    pub in_use: bool,
    /// Uses by each create of a new role or profile that answer the propagation error.
    pub iam: u32,
    pub seed: u64,
}

impl Default for Rates {
    fn default() -> Self {
        Self {
            throttle: 0.0,
            server_error: 0.0,
            reset: 0.0,
            pending: 0,
            not_found: 0,
            in_use: false,
            iam: 0,
            seed: 1,
        }
    }
}

/// Parse `throttle=0.1,5xx=0.05,reset=0.2,pending=2,notfound=1,inuse=1,iam=1,seed=42` (every
/// part optional; rates in 0..=1, counts whole numbers, `inuse` 0 or 1).
pub fn parse(spec: &str) -> Result<Rates, String> {
    let mut r = Rates::default();
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
        let count = || v.parse::<u32>().map_err(|_| format!("`{v}` is not a number of calls"));
        match k {
            "throttle" => r.throttle = rate()?,
            "5xx" => r.server_error = rate()?,
            "reset" => r.reset = rate()?,
            "pending" => r.pending = v.parse().map_err(|_| format!("`{v}` is not a number of reads"))?,
            "notfound" => r.not_found = count()?,
            "iam" => r.iam = count()?,
            "inuse" => {
                r.in_use = match v {
                    "0" => false,
                    "1" => true,
                    _ => return Err(format!("`{v}` is not 0 or 1")),
                }
            }
            "seed" => r.seed = v.parse().map_err(|_| format!("`{v}` is not a seed"))?,
            _ => {
                return Err(format!(
                    "unknown fault `{k}` (throttle, 5xx, reset, pending, notfound, inuse, iam, seed)"
                ));
            }
        }
    }
    Ok(r)
}

/// The waits' time scale in a fault run without the latency mode (see `Faults::from_env`).
pub const FAULT_TIME_SCALE: f64 = 0.001;

/// The interceptor and retry classifier; one instance shared by every client.
#[derive(Clone, Debug)]
pub struct Faults {
    rates: Rates,
    rng: Arc<Mutex<u64>>,
    counts: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    /// Resource id -> reads left that show its intermediate state.
    transitions: Arc<Mutex<HashMap<String, u32>>>,
    /// What this process saw created, used and deleted (fault/world.rs).
    world: Arc<Mutex<World>>,
    /// `PI_DEPLOY_LATENCY`: AWS's intermediate states for their scaled model time
    /// (fault/latency.rs).
    latency: Option<Arc<Latency>>,
}

impl Faults {
    /// From `PI_DEPLOY_FAULTS` and `PI_DEPLOY_LATENCY`, once per process; None when both
    /// are unset. A bad value panics: this is a test-only build and a silently ignored spec
    /// would make a test prove nothing. The latency factor also scales the waits' sleeps;
    /// without it, they sleep at `FAULT_TIME_SCALE`.
    pub fn from_env() -> Option<Faults> {
        static FAULTS: OnceLock<Option<Faults>> = OnceLock::new();
        FAULTS
            .get_or_init(|| {
                let faults = std::env::var("PI_DEPLOY_FAULTS").ok();
                let latency = std::env::var("PI_DEPLOY_LATENCY").ok().filter(|v| !v.is_empty());
                if faults.is_none() && latency.is_none() {
                    return None;
                }
                let rates =
                    parse(faults.as_deref().unwrap_or_default()).unwrap_or_else(|e| panic!("PI_DEPLOY_FAULTS: {e}"));
                let mut f = Faults::new(rates);
                match latency {
                    Some(spec) => {
                        let pace = latency::parse_pace(&spec).unwrap_or_else(|e| panic!("PI_DEPLOY_LATENCY: {e}"));
                        // A fixed pace leaves the waits at real time, as an outside emulator would.
                        if let latency::Pace::Scaled(scale) = pace {
                            crate::aws::wait::set_time_scale(scale);
                        }
                        f.latency = Some(Arc::new(Latency::with_pace(pace)));
                    }
                    // Without the latency mode an intermediate state lasts `pending` reads, not a
                    // time: the waits would spend real seconds on each (RDS: about 23 reads over
                    // 960 s of model time). Run them in fast motion instead.
                    None => crate::aws::wait::set_time_scale(FAULT_TIME_SCALE),
                }
                Some(f)
            })
            .clone()
    }

    pub fn new(rates: Rates) -> Self {
        Self {
            rates,
            rng: Arc::new(Mutex::new(rates.seed.max(1))),
            counts: Arc::default(),
            transitions: Arc::default(),
            world: Arc::default(),
            latency: None,
        }
    }

    /// With the latency mode at `scale` (tests; `from_env` reads `PI_DEPLOY_LATENCY`).
    pub fn with_latency(mut self, scale: f64) -> Self {
        self.latency = Some(Arc::new(Latency::new(scale)));
        self
    }

    /// How many faults of each kind were injected so far.
    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts.lock().unwrap().clone()
    }

    /// Count (and log, and write to `PI_DEPLOY_FAULT_COUNTS`) one injected fault.
    fn injected(&self, fault: Fault, operation: &str) {
        let counts = {
            let mut c = self.counts.lock().unwrap();
            *c.entry(fault.key()).or_default() += 1;
            c.clone()
        };
        // A warning, so the tests can count the faults on stderr too.
        tracing::warn!("{} ({operation})", Injected(fault));
        if let Ok(path) = std::env::var("PI_DEPLOY_FAULT_COUNTS") {
            let json = serde_json::to_string(&counts).unwrap_or_default();
            let _ = std::fs::write(path, json);
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

    /// Whether the refusals are on, so calls and answers must be modelled.
    fn models_the_world(&self) -> bool {
        self.rates.not_found > 0 || self.rates.in_use || self.rates.iam > 0
    }

    /// The refusal AWS would give this call now, if any (each kind asked in turn).
    fn refusal(&self, call: Option<&Call>, named: Option<&Named>) -> Option<Refusal> {
        let now = Instant::now();
        if let (Some(l), Some(n)) = (&self.latency, named)
            && latency::refusable(&n.operation)
            && let Some(r) = l.refusal(n, now)
        {
            return Some(r);
        }
        let call = call?;
        if !world::refusable(&call.operation) {
            return None;
        }
        let r = self.rates;
        let mut w = self.world.lock().unwrap();
        if r.not_found > 0
            && let Some(refusal) = w.not_found(call, r.not_found)
        {
            return Some(refusal);
        }
        if r.in_use
            && let Some(refusal) = w.in_use(call, now)
        {
            return Some(refusal);
        }
        (r.iam > 0).then(|| w.iam(call, now, r.iam)).flatten()
    }

    /// Replace the answer to a neutralized request by the refusal (the operation's typed
    /// error, status 400). False when there is no answer to replace (another fault
    /// stopped the attempt before it was sent).
    fn refuse(&self, context: &mut FinalizerInterceptorContextMut<'_>, op: &str, refusal: &Refusal) -> bool {
        let name = op.rsplit('.').next().unwrap_or_default();
        let meta = ErrorMetadata::builder()
            .code(refusal.code)
            .message(&refusal.message)
            .build();
        let (Some(response), Some(error)) = (context.response_mut(), typed_error(name, meta)) else {
            return false;
        };
        *response.status_mut() = StatusCode::try_from(400u16).expect("400 is a status");
        if let Some(slot) = context.output_or_error_mut() {
            *slot = Err(OrchestratorError::operation(error));
        }
        self.injected(refusal.fault, &format!("{op}: {}: {}", refusal.code, refusal.message));
        true
    }

    /// Learn from a call that succeeded: its input and its answer.
    fn learn(&self, call: &Call, output: &Output) {
        let now = Instant::now();
        let mut w = self.world.lock().unwrap();
        w.learn_call(call, now);
        w.learn_answer(call, output, now);
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

    // Once per operation, while the typed input is still there: what the call names.
    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(cfg);
        let operation = op.rsplit('.').next().unwrap_or_default().to_string();
        if self.latency.is_some() {
            cfg.interceptor_state()
                .store_put(latency::named(&operation, context.input()));
        }
        if self.models_the_world() {
            let ids = world::named_in(&operation, context.input());
            cfg.interceptor_state().store_put(Call { operation, ids });
        }
        Ok(())
    }

    // Once per attempt, after signing: a call AWS would refuse is turned into a harmless
    // read, so the emulator carries out nothing; its answer is replaced by the refusal.
    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let service = cfg
            .load::<Metadata>()
            .map(|m| m.service().to_string())
            .unwrap_or_default();
        let refusal = match neutral_read(&service) {
            Some(_) => self.refusal(cfg.load::<Call>(), cfg.load::<Named>()),
            None => None,
        };
        if refusal.is_some() {
            neutralize(context.request_mut(), &service)?;
        }
        cfg.interceptor_state().store_put(Refused(refusal));
        Ok(())
    }

    // Runs once per attempt, after signing and just before the request would be sent.
    fn read_before_transmit(
        &self,
        _context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        match self.decide() {
            Some(fault) => {
                self.injected(fault, &operation(cfg));
                Err(Box::new(Injected(fault)))
            }
            None => Ok(()),
        }
    }

    // Runs once per attempt after the answer was read, before the retry decision.
    fn modify_before_attempt_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = operation(cfg);
        let name = op.rsplit('.').next().unwrap_or_default();
        if let Some(Refused(Some(refusal))) = cfg.load::<Refused>().cloned() {
            cfg.interceptor_state().store_put(Refused(None));
            if self.refuse(context, &op, &refusal) {
                return Ok(());
            }
        }
        if let (Some(l), Some(named)) = (&self.latency, cfg.load::<Named>()) {
            let now = Instant::now();
            let instead = match context.output_or_error_mut() {
                Some(Ok(output)) => {
                    for _ in 0..l.answered(named, output, now) {
                        self.injected(Fault::Pending, &op);
                    }
                    None
                }
                Some(Err(e)) => e.as_operation_error().and_then(|e| l.instead_of(named, e, now)),
                None => None,
            };
            if let Some(output) = instead {
                if let Some(response) = context.response_mut() {
                    *response.status_mut() = StatusCode::try_from(200u16).expect("200 is a status");
                }
                if let Some(slot) = context.output_or_error_mut() {
                    *slot = Ok(output);
                }
                self.injected(Fault::Pending, &op);
            }
        }
        if self.rates.pending > 0
            && let Some(Ok(output)) = context.output_or_error_mut()
        {
            self.learn_transitions(output);
            let shown = self.show_intermediate_states(output);
            for _ in 0..shown {
                self.injected(Fault::Pending, &op);
            }
        }
        // Before a reset hides the answer: the call was carried out all the same.
        if let (Some(call), Some(Ok(output))) = (cfg.load::<Call>(), context.output_or_error()) {
            self.learn(call, output);
        }
        let succeeded = matches!(context.output_or_error(), Some(Ok(_)));
        if succeeded && super::ambiguous::is_create_like(name) && self.draw() < self.rates.reset {
            self.injected(Fault::Reset, &op);
            if let Some(slot) = context.output_or_error_mut() {
                *slot = Err(OrchestratorError::connector(ConnectorError::io(Box::new(Injected(
                    Fault::Reset,
                )))));
            }
        }
        Ok(())
    }
}

/// Intermediate states: which answers name a resource just created or deleted, and which
/// reads are rewritten to show it in transition.
impl Faults {
    fn start_transition(&self, id: &str) {
        self.transitions
            .lock()
            .unwrap()
            .insert(id.to_string(), self.rates.pending);
    }

    /// Whether this read of `id` is one that shows the intermediate state.
    fn in_transition(&self, id: &str) -> bool {
        let mut t = self.transitions.lock().unwrap();
        match t.get_mut(id) {
            Some(left) if *left > 0 => {
                *left -= 1;
                true
            }
            _ => false,
        }
    }

    /// Record the ids of create answers (and of DeleteNatGateway, whose NAT lingers
    /// `deleting`), and make the create answer itself show the intermediate state.
    fn learn_transitions(&self, output: &mut Output) {
        use aws_sdk_ec2::types::{NatGatewayState, State as EndpointState};
        if let Some(o) = output.downcast_mut::<aws_sdk_ec2::operation::create_nat_gateway::CreateNatGatewayOutput>() {
            if let Some(n) = o.nat_gateway.as_mut() {
                n.state = Some(NatGatewayState::Pending);
                n.nat_gateway_id.as_deref().inspect(|id| self.start_transition(id));
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_ec2::operation::delete_nat_gateway::DeleteNatGatewayOutput>() {
            o.nat_gateway_id.as_deref().inspect(|id| self.start_transition(id));
        } else if let Some(o) = output.downcast_mut::<aws_sdk_ec2::operation::create_vpc_endpoint::CreateVpcEndpointOutput>() {
            if let Some(e) = o.vpc_endpoint.as_mut() {
                e.state = Some(EndpointState::Pending);
                e.vpc_endpoint_id.as_deref().inspect(|id| self.start_transition(id));
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_rds::operation::create_db_instance::CreateDbInstanceOutput>() {
            if let Some(db) = o.db_instance.as_mut() {
                db.db_instance_status = Some("creating".into());
                db.endpoint = None;
                db.db_instance_identifier.as_deref().inspect(|id| self.start_transition(id));
            }
        } else if let Some(o) = output
            .downcast_mut::<aws_sdk_elasticloadbalancingv2::operation::create_load_balancer::CreateLoadBalancerOutput>()
        {
            for lb in o.load_balancers.iter_mut().flatten() {
                lb.state = Some(provisioning());
                lb.load_balancer_arn.as_deref().inspect(|id| self.start_transition(id));
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_efs::operation::create_file_system::CreateFileSystemOutput>() {
            o.life_cycle_state = aws_sdk_efs::types::LifeCycleState::Creating;
            self.start_transition(&o.file_system_id);
        } else if let Some(o) = output.downcast_mut::<aws_sdk_efs::operation::create_mount_target::CreateMountTargetOutput>() {
            o.life_cycle_state = aws_sdk_efs::types::LifeCycleState::Creating;
            self.start_transition(&o.mount_target_id);
        } else if let Some(o) = output.downcast_mut::<aws_sdk_lambda::operation::create_function::CreateFunctionOutput>() {
            o.state = Some(aws_sdk_lambda::types::State::Pending);
            o.function_name.as_deref().inspect(|id| self.start_transition(id));
        }
    }

    /// Rewrite a read of resources in transition; returns how many were rewritten.
    fn show_intermediate_states(&self, output: &mut Output) -> usize {
        use aws_sdk_ec2::types::{NatGatewayState, State as EndpointState};
        let mut shown = 0;
        let mut show = |id: Option<&str>| {
            let yes = id.is_some_and(|id| self.in_transition(id));
            shown += usize::from(yes);
            yes
        };
        if let Some(o) = output.downcast_mut::<aws_sdk_ec2::operation::describe_nat_gateways::DescribeNatGatewaysOutput>() {
            for n in o.nat_gateways.iter_mut().flatten() {
                if show(n.nat_gateway_id.as_deref()) {
                    n.state = Some(match n.state {
                        Some(NatGatewayState::Deleted | NatGatewayState::Deleting) => NatGatewayState::Deleting,
                        _ => NatGatewayState::Pending,
                    });
                }
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_ec2::operation::describe_vpc_endpoints::DescribeVpcEndpointsOutput>() {
            for e in o.vpc_endpoints.iter_mut().flatten() {
                if show(e.vpc_endpoint_id.as_deref()) {
                    e.state = Some(EndpointState::Pending);
                }
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_rds::operation::describe_db_instances::DescribeDbInstancesOutput>() {
            for db in o.db_instances.iter_mut().flatten() {
                if show(db.db_instance_identifier.as_deref()) {
                    db.db_instance_status = Some("creating".into());
                    db.endpoint = None;
                }
            }
        } else if let Some(o) = output
            .downcast_mut::<aws_sdk_elasticloadbalancingv2::operation::describe_load_balancers::DescribeLoadBalancersOutput>()
        {
            for lb in o.load_balancers.iter_mut().flatten() {
                if show(lb.load_balancer_arn.as_deref()) {
                    lb.state = Some(provisioning());
                }
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_efs::operation::describe_file_systems::DescribeFileSystemsOutput>() {
            for fs in o.file_systems.iter_mut().flatten() {
                if show(Some(&fs.file_system_id)) {
                    fs.life_cycle_state = aws_sdk_efs::types::LifeCycleState::Creating;
                }
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_efs::operation::describe_mount_targets::DescribeMountTargetsOutput>() {
            for mt in o.mount_targets.iter_mut().flatten() {
                if show(Some(&mt.mount_target_id)) {
                    mt.life_cycle_state = aws_sdk_efs::types::LifeCycleState::Creating;
                }
            }
        } else if let Some(o) = output.downcast_mut::<aws_sdk_lambda::operation::get_function::GetFunctionOutput>() {
            if let Some(c) = o.configuration.as_mut()
                && show(c.function_name.as_deref())
            {
                c.state = Some(aws_sdk_lambda::types::State::Pending);
            }
        } else if let Some(o) =
            output.downcast_mut::<aws_sdk_lambda::operation::get_function_configuration::GetFunctionConfigurationOutput>()
            && show(o.function_name.as_deref())
        {
            o.state = Some(aws_sdk_lambda::types::State::Pending);
        }
        shown
    }
}

fn provisioning() -> aws_sdk_elasticloadbalancingv2::types::LoadBalancerState {
    aws_sdk_elasticloadbalancingv2::types::LoadBalancerState::builder()
        .code(aws_sdk_elasticloadbalancingv2::types::LoadBalancerStateEnum::Provisioning)
        .build()
}

/// A read of the same service that takes no parameters and changes nothing (`Metadata`'s
/// service names); None for services whose calls are never refused.
fn neutral_read(service: &str) -> Option<&'static str> {
    match service {
        "EC2" => Some("DescribeRegions"),
        "RDS" => Some("DescribeDBSubnetGroups"),
        "Auto Scaling" => Some("DescribeAutoScalingGroups"),
        "Lambda" => Some("ListFunctions"),
        "EFS" => Some("DescribeFileSystems"),
        _ => None,
    }
}

/// Turn a signed request into `neutral_read`: for the Query protocol (EC2, RDS, Auto
/// Scaling) the form body keeps only its `Version`; Lambda's CreateFunction
/// (`POST /2015-03-31/functions`) becomes `GET /2015-03-31/functions/` (ListFunctions).
fn neutralize(request: &mut HttpRequest, service: &str) -> Result<(), BoxError> {
    let read = neutral_read(service).ok_or_else(|| format!("no harmless read known for {service}"))?;
    if read == "DescribeFileSystems" {
        // DeleteFileSystem (`DELETE /2015-02-01/file-systems/{id}`) becomes
        // `GET /2015-02-01/file-systems`.
        let path = request.uri().split('?').next().unwrap_or_default().to_string();
        let (list, _) = path
            .trim_end_matches('/')
            .rsplit_once('/')
            .ok_or("an EFS request without a path")?;
        request.set_method("GET")?;
        request.set_uri(list.to_string())?;
        request.headers_mut().remove("content-type");
        request.headers_mut().insert("content-length", "0");
        *request.body_mut() = SdkBody::empty();
        return Ok(());
    }
    if read == "ListFunctions" {
        let uri = request
            .uri()
            .split('?')
            .next()
            .unwrap_or_default()
            .trim_end_matches('/')
            .to_string();
        request.set_method("GET")?;
        request.set_uri(format!("{uri}/"))?;
        request.headers_mut().remove("content-type");
        request.headers_mut().insert("content-length", "0");
        *request.body_mut() = SdkBody::empty();
        return Ok(());
    }
    let body = request.body().bytes().map(String::from_utf8_lossy).unwrap_or_default();
    let version = body
        .split('&')
        .find(|p| p.starts_with("Version="))
        .ok_or("a Query request without a Version")?
        .to_string();
    let neutral = format!("Action={read}&{version}");
    request
        .headers_mut()
        .insert("content-length", neutral.len().to_string());
    *request.body_mut() = SdkBody::from(neutral);
    Ok(())
}

/// The operation's own error type carrying AWS's code and message (the SDK downcasts the
/// type-erased error to it: any other type would panic there).
fn typed_error(operation: &str, meta: ErrorMetadata) -> Option<OperationError> {
    use aws_sdk_ec2::operation as ec2;
    macro_rules! typed {
        ($t:ty) => {
            Some(OperationError::erase(<$t>::generic(meta)))
        };
    }
    match operation {
        "DescribeVpcs" => typed!(ec2::describe_vpcs::DescribeVpcsError),
        "ModifyVpcAttribute" => typed!(ec2::modify_vpc_attribute::ModifyVpcAttributeError),
        "DescribeSubnets" => typed!(ec2::describe_subnets::DescribeSubnetsError),
        "DescribeSecurityGroups" => typed!(ec2::describe_security_groups::DescribeSecurityGroupsError),
        "DescribeRouteTables" => typed!(ec2::describe_route_tables::DescribeRouteTablesError),
        "DescribeInternetGateways" => typed!(ec2::describe_internet_gateways::DescribeInternetGatewaysError),
        "AttachInternetGateway" => typed!(ec2::attach_internet_gateway::AttachInternetGatewayError),
        "DescribeNatGateways" => typed!(ec2::describe_nat_gateways::DescribeNatGatewaysError),
        "DescribeNetworkAcls" => typed!(ec2::describe_network_acls::DescribeNetworkAclsError),
        "DescribeVpcEndpoints" => typed!(ec2::describe_vpc_endpoints::DescribeVpcEndpointsError),
        "DescribeAddresses" => typed!(ec2::describe_addresses::DescribeAddressesError),
        "DescribeLaunchTemplates" => typed!(ec2::describe_launch_templates::DescribeLaunchTemplatesError),
        "DeleteSubnet" => typed!(ec2::delete_subnet::DeleteSubnetError),
        "DetachInternetGateway" => typed!(ec2::detach_internet_gateway::DetachInternetGatewayError),
        "ReleaseAddress" => typed!(ec2::release_address::ReleaseAddressError),
        "DeleteSecurityGroup" => typed!(ec2::delete_security_group::DeleteSecurityGroupError),
        "CreateLaunchTemplate" => typed!(ec2::create_launch_template::CreateLaunchTemplateError),
        "DeleteDBSubnetGroup" => {
            typed!(aws_sdk_rds::operation::delete_db_subnet_group::DeleteDBSubnetGroupError)
        }
        "CreateAutoScalingGroup" => {
            typed!(aws_sdk_autoscaling::operation::create_auto_scaling_group::CreateAutoScalingGroupError)
        }
        "CreateFunction" => typed!(aws_sdk_lambda::operation::create_function::CreateFunctionError),
        "DeleteFileSystem" => typed!(aws_sdk_efs::operation::delete_file_system::DeleteFileSystemError),
        _ => None,
    }
}

fn operation(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>()
        .map(|m| format!("{}.{}", m.service(), m.name()))
        .unwrap_or_default()
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
            // What a real reset gets: the SDK's own classifiers and the product decide.
            // Refusals carry AWS's codes in the operation's own error: classified as real ones.
            Some(Fault::Reset | Fault::Pending | Fault::NotFound | Fault::InUse | Fault::Iam) | None => {
                RetryAction::NoActionIndicated
            }
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
            parse("throttle=0.1,5xx=0.05,reset=0.2,pending=2,seed=42").unwrap(),
            Rates {
                throttle: 0.1,
                server_error: 0.05,
                reset: 0.2,
                pending: 2,
                seed: 42,
                ..Rates::default()
            }
        );
        assert_eq!(
            parse("notfound=1,inuse=1,iam=2").unwrap(),
            Rates {
                not_found: 1,
                in_use: true,
                iam: 2,
                ..Rates::default()
            }
        );
        assert!(parse("notfound=0.5").is_err());
        assert!(parse("inuse=2").is_err());
        assert!(parse("iam=-1").is_err());
        assert!(parse("pending=-1").is_err());
        assert!(parse("pending=0.5").is_err());
        assert_eq!(parse("").unwrap(), Rates::default());
        assert!(parse("throttle=2").is_err());
        assert!(parse("reset=-0.1").is_err());
        assert!(parse("crash=0.1").is_err());
        assert!(parse("throttle").is_err());
    }

    #[test]
    fn rates_are_roughly_honoured() {
        let f = Faults::new(Rates {
            throttle: 0.1,
            server_error: 0.05,
            seed: 7,
            ..Rates::default()
        });
        let draws: Vec<_> = (0..20_000).map(|_| f.decide()).collect();
        let share = |want| draws.iter().filter(|d| **d == want).count() as f64 / draws.len() as f64;
        assert!((share(Some(Fault::Throttling)) - 0.1).abs() < 0.01);
        assert!((share(Some(Fault::ServerError)) - 0.05).abs() < 0.01);
    }

    #[test]
    fn new_resources_show_their_intermediate_state_for_the_first_reads() {
        use aws_sdk_ec2::operation::create_nat_gateway::CreateNatGatewayOutput;
        use aws_sdk_ec2::operation::describe_nat_gateways::DescribeNatGatewaysOutput;
        use aws_sdk_ec2::types::{NatGateway, NatGatewayState};
        let f = Faults::new(Rates {
            pending: 2,
            ..Rates::default()
        });
        let nat = |state| NatGateway::builder().nat_gateway_id("nat-1").state(state).build();
        let mut created = Output::erase(
            CreateNatGatewayOutput::builder()
                .nat_gateway(nat(NatGatewayState::Available))
                .build(),
        );
        f.learn_transitions(&mut created);
        let created = created.downcast::<CreateNatGatewayOutput>().unwrap();
        assert_eq!(created.nat_gateway.unwrap().state, Some(NatGatewayState::Pending));
        let read = || {
            let mut o = Output::erase(
                DescribeNatGatewaysOutput::builder()
                    .nat_gateways(nat(NatGatewayState::Available))
                    .build(),
            );
            let shown = f.show_intermediate_states(&mut o);
            let state = o.downcast::<DescribeNatGatewaysOutput>().unwrap().nat_gateways.unwrap()[0]
                .state
                .clone();
            (shown, state)
        };
        assert_eq!(read(), (1, Some(NatGatewayState::Pending)));
        assert_eq!(read(), (1, Some(NatGatewayState::Pending)));
        assert_eq!(read(), (0, Some(NatGatewayState::Available)));
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
