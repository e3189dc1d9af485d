//! One file per command; this module holds what they share: loading and validating the
//! config, opening a session (credentials, identity, locked state), and the error type
//! that maps to exit codes (0 ok, 1 failed run, 2 bad input, 3 refused).

pub mod connect;
pub mod destroy;
pub mod force_unlock;
pub mod logs;
pub mod outputs;
pub mod plan;
pub mod preflight;
pub mod restore;
pub mod restore_files;
pub mod restore_fs;
pub mod sideload;
pub mod signals;
pub mod snapshot;
pub mod state;
pub mod status;
pub mod up;
pub mod upgrade;
pub mod window;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

use crate::aws::{Clients, Env};
use crate::cli::GlobalArgs;
use crate::core::config::{Config, ConfigError, Purpose};
use crate::core::event::EventSink;
use crate::core::graph::Graph;
use crate::core::resource::{ErrorClass, ResourceError};
use crate::core::spec::{self, NodeSpec, Props, SpecInput};
use crate::core::state::{Identity, State};
use crate::core::state_url::{STATE_URL_RULE, StateLocation};
use crate::resources::Aws;
use crate::state_backend::{Connect, StateBackend, connect_s3};
use crate::state_file::{Location, StateFile, StateFileError};

#[derive(Debug)]
pub enum CmdError {
    /// Bad input: nothing was created (exit 2).
    Input(Vec<ConfigError>),
    /// Refused to act (lock held, foreign or corrupt state, declined confirmation; exit 3).
    Refused { message: String, hint: Option<String> },
    /// The run failed (exit 1); already reported through events when `reported`.
    Failed {
        message: String,
        hint: Option<String>,
        reported: bool,
    },
    /// Nothing went wrong, but the command reports a state by its exit code (`plan
    /// --detailed-exitcode`: 4 when changes are pending); nothing more is printed.
    Status(u8),
}

impl CmdError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CmdError::Input(_) => 2,
            CmdError::Refused { .. } => 3,
            CmdError::Failed { .. } => 1,
            CmdError::Status(code) => i32::from(*code),
        }
    }
    pub fn input(field: &str, problem: impl Into<String>, fix: impl Into<String>) -> Self {
        CmdError::Input(vec![ConfigError {
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        }])
    }
}

impl From<StateFileError> for CmdError {
    fn from(e: StateFileError) -> Self {
        let hint = e.hint();
        match e {
            StateFileError::Io { .. } => CmdError::Failed {
                message: e.to_string(),
                hint: hint.or_else(|| {
                    Some(
                        "check that the --state-dir directory is writable and has space, then run the command again"
                            .into(),
                    )
                }),
                reported: false,
            },
            StateFileError::Remote(e) => e.into(),
            _ => CmdError::Refused {
                message: e.to_string(),
                hint,
            },
        }
    }
}

impl From<ResourceError> for CmdError {
    fn from(e: ResourceError) -> Self {
        let hint = e.hint.clone().unwrap_or_else(|| default_hint(e.class).to_string());
        let mut e = e;
        e.hint = None;
        CmdError::Failed {
            message: e.to_string(),
            hint: Some(hint),
            reported: false,
        }
    }
}

/// A run that failed after the state store refused a write (the state changed behind its
/// back, or its lock was taken away) is a refusal (exit 3), not a failure: the fence
/// (src/aws/fence.rs) stopped every AWS change from that moment on.
pub fn stopped_by_fence(result: Result<(), CmdError>) -> Result<(), CmdError> {
    let fence = crate::aws::fence::process();
    let (Err(CmdError::Failed { .. }), Some(reason)) = (&result, fence.reason()) else {
        return result;
    };
    let stopped = fence.stopped();
    let n: u64 = stopped.values().sum();
    let calls = if n == 0 {
        "no AWS change was attempted after that".to_string()
    } else {
        format!(
            "{n} AWS changes of resources in flight were not sent ({})",
            stopped.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    };
    Err(CmdError::Refused {
        message: format!("{reason}; the run stopped: {calls}"),
        hint: Some(
            "make sure no other run of this deployment is going on (for an S3 state, `pi-deploy state history` shows who wrote what), then run the command again: it starts from the state as it is now".into(),
        ),
    })
}

/// What to do next after an AWS failure whose kind gave no specific hint: every error ends
/// with a next step.
pub fn default_hint(class: ErrorClass) -> &'static str {
    match class {
        ErrorClass::Throttled | ErrorClass::Transient | ErrorClass::Timeout | ErrorClass::IamPropagation => {
            "AWS was busy, slow or not yet consistent: run the command again (it resumes where it stopped)"
        }
        ErrorClass::InUse => {
            "something still uses the resource: wait a few minutes, or remove what holds it, then run the command again"
        }
        ErrorClass::Ambiguous => {
            "the create may have happened; run `pi-deploy up` again: it looks for the resource before creating it"
        }
        ErrorClass::Invalid => "fix the value named above (config file or flags), then run the command again",
        ErrorClass::Cancelled => "run the command again to resume",
        ErrorClass::Unreachable => {
            "the AWS endpoint answered nothing: check AWS_ENDPOINT_URL if it is set, the region, and the network (DNS, proxy, firewall), then run the command again"
        }
        ErrorClass::NotFound => {
            "something pi-deploy recorded no longer exists in AWS (deleted outside pi-deploy?): `pi-deploy status` lists what is missing"
        }
        _ => {
            "check the AWS error above (credentials, permissions, quotas; `pi-deploy status` shows the deployment), then run the command again"
        }
    }
}

/// The run's error when a state write failed: what and where (the path is in `why`).
pub fn state_write_failed(why: &str) -> String {
    format!(
        "the state file could not be written ({why}); nothing was created or deleted after that, and the work in flight was abandoned"
    )
}

pub const STATE_WRITE_HINT: &str = "free space or fix the permissions where the state file lives, then run the same command again: it finds what this run made by its tags and names";

/// Defaults, then the config file, then flags. Unknown keys and wrong types are refused
/// with the field named.
pub fn load_config(global: &GlobalArgs) -> Result<Config, CmdError> {
    let default_path = Path::new("pi-deploy.toml");
    let path = match &global.config {
        Some(p) => Some(p.clone()),
        None if default_path.exists() => Some(default_path.to_path_buf()),
        None => None,
    };
    let mut cfg = match &path {
        None => Config::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                CmdError::input(
                    "--config",
                    format!("cannot read {}: {e}", p.display()),
                    "give the path of a readable TOML file",
                )
            })?;
            toml::from_str::<Config>(&text).map_err(|e| {
                let field = e
                    .span()
                    .map(|s| describe_span(&text, s))
                    .unwrap_or_else(|| p.display().to_string());
                CmdError::input(
                    &field,
                    e.message().trim().to_string(),
                    format!("fix {} (every option is listed in pi-deploy.example.toml)", p.display()),
                )
            })?
        }
    };
    if let Some(d) = &global.deployment {
        cfg.deployment = d.clone();
    }
    if let Some(r) = &global.region {
        cfg.region = Some(r.clone());
    }
    Ok(cfg)
}

/// The TOML text at an error, e.g. `network.vpc_cidr = 5`, to name the field.
fn describe_span(text: &str, span: std::ops::Range<usize>) -> String {
    let line_start = text[..span.start.min(text.len())]
        .rfind('\n')
        .map(|i| i + 1)
        .unwrap_or(0);
    let line_end = text[line_start..]
        .find('\n')
        .map(|i| line_start + i)
        .unwrap_or(text.len());
    format!("config line `{}`", text[line_start..line_end].trim())
}

pub fn validate(cfg: &Config, purpose: Purpose) -> Result<(), CmdError> {
    let errors = cfg.validate(purpose);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(CmdError::Input(errors))
    }
}

/// First Ctrl-C or SIGTERM: stop starting work, let in-flight resources finish and be
/// recorded. A second one: exit at once (the state is saved after every transition).
/// See `signals` (installed by `main` for the whole run).
pub fn ctrl_c_channel() -> watch::Receiver<bool> {
    signals::install();
    signals::subscribe()
}

/// The local state directory when nothing else is given.
pub const DEFAULT_STATE_DIR: &str = "state";

/// Where the state lives: `--state`, else `--state-dir`, else `[state] url` of the config,
/// else the local directory `state`. A bad location is bad input (exit 2), named.
pub fn state_location(global: &GlobalArgs, cfg: &Config) -> Result<StateLocation, CmdError> {
    match (&global.state, &global.state_dir) {
        (Some(_), Some(_)) => Err(CmdError::input(
            "--state",
            "--state and --state-dir are both given",
            "give one of them: --state takes s3://BUCKET/PREFIX or a directory",
        )),
        (Some(url), None) => StateLocation::parse(url).map_err(|p| CmdError::input("--state", p, STATE_URL_RULE)),
        (None, Some(dir)) => Ok(StateLocation::Local { dir: dir.clone() }),
        (None, None) => match &cfg.state.url {
            Some(url) => StateLocation::parse(url).map_err(|p| CmdError::input("state.url", p, STATE_URL_RULE)),
            None => Ok(StateLocation::Local {
                dir: PathBuf::from(DEFAULT_STATE_DIR),
            }),
        },
    }
}

/// The state bucket's region: `[state] region`, else the deployment's.
pub fn state_region(cfg: &Config, deployment_region: &str) -> String {
    cfg.state
        .region
        .clone()
        .unwrap_or_else(|| deployment_region.to_string())
}

/// Credentials, identity and the locked state of one deployment.
pub struct Session {
    pub aws: Arc<Aws>,
    pub state_file: StateBackend,
    pub state: State,
    /// True when no state file existed.
    pub fresh: bool,
    pub events: Arc<dyn EventSink>,
}

pub async fn open_session(
    cfg: &Config,
    global: &GlobalArgs,
    command: &str,
    events: Arc<dyn EventSink>,
) -> Result<Session, CmdError> {
    let location = state_location(global, cfg)?;
    let clients = Clients::load(cfg.region.as_deref()).await?;
    let identity: Identity = clients.identity(&cfg.deployment).await?;
    let region = state_region(cfg, &identity.region);
    let s3 = location.is_s3().then(|| Connect {
        config: Some(&clients.config),
        region: Some(region.clone()),
    });
    let state_file = StateBackend::open(&location, &cfg.deployment, command, s3, crate::aws::fence::process())?;
    let loaded = state_file.load()?;
    let fresh = loaded.is_none();
    let state = match loaded {
        Some(s) => {
            s.check_owner(&identity).map_err(|refusal| StateFileError::Refused {
                at: state_file.location(),
                refusal,
            })?;
            s
        }
        None => State::new(&identity),
    };
    // Records written moments before this run (a run killed right after a create) may
    // still be settling in AWS: their NotFound is "not yet" for a while.
    let now = chrono::Utc::now();
    crate::aws::consistency::seed(
        state
            .resources
            .iter()
            .filter_map(|(k, r)| (now - r.updated_at).to_std().ok().map(|age| (k.as_str(), age))),
    );
    let env = Env {
        deployment: identity.deployment.clone(),
        region: identity.region.clone(),
        account_id: identity.account_id.clone(),
        partition: identity.partition.clone(),
        config: Arc::new(cfg.clone()),
        destroy: Default::default(),
        final_snapshots: Default::default(),
    };
    Ok(Session {
        aws: Arc::new(Aws {
            clients,
            env,
            started: Default::default(),
            answers: Default::default(),
        }),
        state_file,
        state,
        fresh,
        events,
    })
}

/// The deployment's state as the last run left it, read without the lock (a local file is
/// replaced atomically and an S3 object whole, so a read sees a whole document): for commands
/// that never write it (`outputs`, `sideload`, `connect`, `logs`) and may run beside an `up`.
/// No state is a refusal (exit 3) that says where it looked.
pub fn read_state(global: &GlobalArgs, cfg: &Config, how: &Connect<'_>) -> Result<(State, Location), CmdError> {
    let location = state_location(global, cfg)?;
    let (bytes, at) = match &location {
        StateLocation::Local { dir } => {
            let path = StateFile::path_for(dir, &cfg.deployment);
            match std::fs::read(&path) {
                Ok(b) => (Some(b), Location::File(path)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => (None, Location::File(path)),
                Err(source) => return Err(StateFileError::Io { path, source }.into()),
            }
        }
        StateLocation::S3 { bucket, prefix } => {
            let s3 = connect_s3(bucket, prefix, how)?;
            let key = s3.state_key(&cfg.deployment);
            (s3.get(&key, None)?.map(|o| o.bytes), s3.at(&key))
        }
    };
    let Some(bytes) = bytes else {
        return Err(CmdError::Refused {
            message: format!(
                "no state at {at}: deployment `{}` has not been deployed there",
                cfg.deployment
            ),
            hint: Some(
                "run `pi-deploy up` first, or pass the --deployment and --state (or --state-dir) it was deployed with"
                    .into(),
            ),
        });
    };
    let state = State::parse(&bytes).map_err(|refusal| {
        CmdError::from(StateFileError::Refused {
            at: at.clone(),
            refusal,
        })
    })?;
    Ok((state, at))
}

/// Credentials and identity, and the state read without the lock (`read_state`), refused
/// when it belongs to another deployment, region or account.
pub async fn open_read_only(cfg: &Config, global: &GlobalArgs) -> Result<(Arc<Aws>, State), CmdError> {
    // The state first: without one, nothing else is worth a call (a local state needs none).
    let how = Connect {
        config: None,
        region: cfg.state.region.clone().or_else(|| cfg.region.clone()),
    };
    let (state, at) = read_state(global, cfg, &how)?;
    let clients = Clients::load(cfg.region.as_deref()).await?;
    let identity: Identity = clients.identity(&cfg.deployment).await?;
    state
        .check_owner(&identity)
        .map_err(|refusal| StateFileError::Refused { at, refusal })?;
    let env = Env {
        deployment: identity.deployment.clone(),
        region: identity.region.clone(),
        account_id: identity.account_id.clone(),
        partition: identity.partition.clone(),
        config: Arc::new(cfg.clone()),
        destroy: Default::default(),
        final_snapshots: Default::default(),
    };
    let aws = Aws {
        clients,
        env,
        started: Default::default(),
        answers: Default::default(),
    };
    Ok((Arc::new(aws), state))
}

/// A recorded output the command needs (`bucket`'s `id`...), or a refusal that says the
/// deployment is not built that far.
pub fn recorded<'a>(state: &'a State, key: &str, output: &str, for_what: &str) -> Result<&'a str, CmdError> {
    state
        .resources
        .get(key)
        .and_then(|r| r.outputs.get(output))
        .ok_or_else(|| CmdError::Refused {
            message: format!("the state records no `{key}` yet, which {for_what} needs"),
            hint: Some("run `pi-deploy up` to finish the deployment, then run the command again".into()),
        })
}

const AZ_SETTINGS: [&str; 2] = ["az_a", "az_b"];

/// The two zones: as recorded on the first run (they must never move), else from the
/// config, else the first two the region reports available.
pub async fn resolve_zones(session: &mut Session, cfg: &Config) -> Result<[String; 2], CmdError> {
    let recorded: Vec<String> = AZ_SETTINGS
        .iter()
        .filter_map(|k| session.state.settings.get(*k).cloned())
        .collect();
    let zones: [String; 2] = if let [a, b] = recorded.as_slice() {
        if !cfg.availability_zones.is_empty() && cfg.availability_zones != recorded {
            return Err(CmdError::input(
                "availability_zones",
                format!("the deployment was built in {a} and {b}; zones cannot change in place"),
                "remove availability_zones from the config, or destroy and rebuild",
            ));
        }
        [a.clone(), b.clone()]
    } else if let [a, b] = cfg.availability_zones.as_slice() {
        [a.clone(), b.clone()]
    } else {
        session.aws.clients.first_two_zones().await?
    };
    for (k, z) in AZ_SETTINGS.iter().zip(&zones) {
        session.state.settings.insert(k.to_string(), z.clone());
    }
    Ok(zones)
}

/// A change the config asks for that `up` will not make (AWS cannot, or it would replace
/// data, or it needs a roll or replacement this version does not do), as bad input: exit 2,
/// naming the config field and what to do instead.
pub fn refuse_changes(changes: &[(String, crate::core::diff::Change)]) -> Result<(), CmdError> {
    use crate::core::diff::ChangeAction;
    if changes.is_empty() {
        return Ok(());
    }
    Err(CmdError::Input(
        changes
            .iter()
            .map(|(key, c)| {
                let field = c
                    .fields
                    .first()
                    .cloned()
                    .unwrap_or_else(|| format!("{key}.{}", c.attribute));
                let (problem, fix) = match c.action {
                    ChangeAction::Forbidden => (
                        format!(
                            "changing `{}` of {key} from {} to {} cannot be done in place",
                            c.attribute, c.old, c.new
                        ),
                        if c.note.is_empty() {
                            format!("set {field} back to {}", c.old)
                        } else {
                            format!("{} (or set {field} back to {})", c.note, c.old)
                        },
                    ),
                    other => (
                        format!(
                            "changing `{}` of {key} from {} to {} needs a {} ({}), which `up` does not do yet",
                            c.attribute,
                            c.old,
                            c.new,
                            other.as_str(),
                            c.note
                        ),
                        match c.action {
                            ChangeAction::Roll => format!(
                                "for a new AMI use `pi-deploy upgrade --ami ...`; otherwise set {field} back to {}",
                                c.old
                            ),
                            _ => format!("set {field} back to {}", c.old),
                        },
                    ),
                };
                ConfigError { field, problem, fix }
            })
            .collect(),
    ))
}

/// An image change made by `upgrade --ami` (or `up --ami`) is not undone by `up` with a
/// config (or an `--ami`) that still names the image it replaced, as scripts and config
/// files tend to: the running image stays the desired one, and going back is explicit
/// (`upgrade --ami` the old image). Returns the warning to show. Any other image is
/// followed (a roll).
pub fn keep_upgraded_ami(cfg: &mut Config, state: &State) -> Option<String> {
    let outputs = &state.resources.get("launch-template")?.outputs;
    let (running, replaced) = (outputs.get("ami")?, outputs.get("replaced_ami")?);
    let configured = cfg.ami.clone()?;
    if configured != replaced || running == replaced {
        return None;
    }
    cfg.ami = Some(running.to_string());
    Some(format!(
        "ami {configured} was replaced by {running} (an upgrade): keeping {running}; set ami = \"{running}\" in the config to say so, or run `pi-deploy upgrade --ami {configured}` to go back"
    ))
}

/// The desired architecture as a validated graph.
pub fn desired_graph(cfg: &Config, region: &str, zones: [String; 2]) -> Result<Graph, CmdError> {
    let nodes = spec::build(&SpecInput {
        config: cfg,
        region,
        azs: zones,
    });
    Graph::new(nodes).map_err(|e| CmdError::Failed {
        message: format!("internal error: the architecture graph is invalid: {e}"),
        hint: Some("please report this as a bug".into()),
        reported: false,
    })
}

/// Everything this deployment could have built under any setting that adds or renames
/// resources (one or two NATs, with or without HTTPS, a licence and the interface endpoints):
/// where `destroy`
/// looks for resources the state does not record, e.g. after the config changed.
pub fn search_graph(cfg: &Config, region: &str, zones: [String; 2]) -> Result<Graph, CmdError> {
    let mut variants = vec![cfg.clone()];
    let mut flipped = cfg.clone();
    flipped.network.nat_per_az = !cfg.network.nat_per_az;
    variants.push(flipped);
    let mut extras = cfg.clone();
    if extras.certificate_arn.is_none() {
        extras.certificate_arn = Some(format!("arn:aws:acm:{region}:000000000000:certificate/any"));
    }
    if extras.licence.env.is_none() && extras.licence.file.is_none() {
        extras.licence.env = Some("PI_DEPLOY_LICENCE".into());
    }
    extras.logging.alb_access_logs = true;
    extras.database.export_error_log = true;
    extras.network.interface_endpoints = true;
    variants.push(extras);
    let mut nodes: Vec<NodeSpec> = Vec::new();
    for v in &variants {
        for n in spec::build(&SpecInput {
            config: v,
            region,
            azs: zones.clone(),
        }) {
            if !nodes.iter().any(|m| m.key == n.key) {
                nodes.push(n);
            }
        }
    }
    Graph::new(nodes).or_else(|_| desired_graph(cfg, region, zones))
}

/// The graph of what exists: the desired graph restricted to recorded keys, plus recorded
/// resources the desired graph does not know (e.g. after a config change), ordered by the
/// dependencies recorded when they were created.
pub fn existing_graph(desired: &Graph, state: &State) -> Graph {
    let keys: BTreeSet<String> = state.resources.keys().cloned().collect();
    let known: BTreeSet<String> = keys.iter().filter(|k| desired.get(k).is_some()).cloned().collect();
    let mut nodes: Vec<NodeSpec> = desired.restrict(&known).nodes().to_vec();
    // A node recorded as depending on a resource being replaced (State::retire) may still
    // use it: deleted before it, as AWS requires (a DB instance before its parameter group).
    for n in &mut nodes {
        let retiring = state
            .resources
            .get(&n.key)
            .into_iter()
            .flat_map(|r| &r.deps)
            .filter(|d| state.resources.get(*d).is_some_and(|r| r.retiring.is_some()));
        let add: Vec<String> = retiring.filter(|d| !n.deps.contains(d)).cloned().collect();
        n.deps.extend(add);
    }
    for (key, rec) in &state.resources {
        if desired.get(key).is_none() {
            nodes.push(NodeSpec {
                key: key.clone(),
                kind: rec.kind,
                deps: rec.deps.iter().filter(|d| keys.contains(*d)).cloned().collect(),
                props: Props::Recorded,
            });
        }
    }
    // Recorded dependencies can only form a cycle if the file was edited by hand; fall back
    // to dropping the recorded edges of unknown resources rather than refusing to destroy.
    Graph::new(nodes.clone()).unwrap_or_else(|_| {
        let nodes = nodes
            .into_iter()
            .map(|mut n| {
                if matches!(n.props, Props::Recorded) {
                    n.deps.clear();
                }
                n
            })
            .collect();
        Graph::new(nodes).expect("a graph without recorded edges is acyclic")
    })
}

#[cfg(test)]
mod keep_ami_tests {
    use super::*;
    use crate::core::resource::Outputs;
    use crate::core::spec::Kind;
    use crate::core::state::{Identity, ResourceRecord, Status};

    fn state(outputs: Outputs) -> State {
        let mut st = State::new(&Identity {
            deployment: "pi".into(),
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            partition: "aws".into(),
        });
        st.resources.insert(
            "launch-template".into(),
            ResourceRecord {
                kind: Kind::LaunchTemplate,
                status: Status::Ready,
                client_token: "t".into(),
                outputs,
                deps: vec![],
                settings: Default::default(),
                retiring: None,
                updated_at: chrono::Utc::now(),
            },
        );
        st
    }

    fn cfg(ami: &str) -> Config {
        Config {
            ami: Some(ami.into()),
            ..Config::default()
        }
    }

    #[test]
    fn an_upgrade_is_not_undone_by_a_config_naming_the_image_it_replaced() {
        let upgraded = state(Outputs::new().with("ami", "ami-b").with("replaced_ami", "ami-a"));
        let mut c = cfg("ami-a");
        let warning = keep_upgraded_ami(&mut c, &upgraded).expect("a warning");
        assert_eq!(c.ami.as_deref(), Some("ami-b"));
        assert!(warning.contains("upgrade --ami ami-a"), "{warning}");
        // Another image is followed (a roll); the running one needs nothing.
        for other in ["ami-c", "ami-b"] {
            let mut c = cfg(other);
            assert_eq!(keep_upgraded_ami(&mut c, &upgraded), None);
            assert_eq!(c.ami.as_deref(), Some(other));
        }
        // Never upgraded: the config rules.
        let mut c = cfg("ami-a");
        assert_eq!(
            keep_upgraded_ami(&mut c, &state(Outputs::new().with("ami", "ami-b"))),
            None
        );
        assert_eq!(c.ami.as_deref(), Some("ami-a"));
    }
}

#[cfg(test)]
mod retiring_tests {
    use super::*;
    use crate::core::graph::tests::node;
    use crate::core::resource::Outputs;
    use crate::core::spec::Kind;
    use crate::core::state::{Identity, ResourceRecord, Status, retiring_key};

    /// `destroy` after a kill mid-replace: the instance still recorded on the retiring
    /// group is deleted before it (AWS refuses to delete a group an instance is on).
    #[test]
    fn a_retiring_resource_is_destroyed_after_what_still_depends_on_it() {
        let desired = Graph::new(vec![node("params", &[]), node("db", &["params"])]).unwrap();
        let mut st = State::new(&Identity {
            deployment: "pi".into(),
            region: "eu-west-1".into(),
            account_id: "1".into(),
            partition: "aws".into(),
        });
        for (key, deps) in [("params", vec![]), ("db", vec!["params".to_string()])] {
            st.resources.insert(
                key.into(),
                ResourceRecord {
                    kind: Kind::Vpc,
                    status: Status::Ready,
                    client_token: st.client_token(key),
                    outputs: Outputs::new().with("id", format!("vpc-{key}")),
                    deps,
                    settings: Default::default(),
                    retiring: None,
                    updated_at: chrono::Utc::now(),
                },
            );
        }
        let token = st.replace_token("params", "vpc-params");
        st.retire("params", "family: a -> b", &token).unwrap();
        let g = existing_graph(&desired, &st);
        let rkey = retiring_key("params", "vpc-params");
        let (r, db) = (g.index_of(&rkey).unwrap(), g.index_of("db").unwrap());
        assert!(g.destroy_after(r).contains(&db), "the db first");
        // Once the db is recorded again (moved), the edge is gone.
        st.resources.get_mut("db").unwrap().deps = vec!["params".into()];
        let g = existing_graph(&desired, &st);
        let (r, db) = (g.index_of(&rkey).unwrap(), g.index_of("db").unwrap());
        assert!(!g.destroy_after(r).contains(&db));
    }
}
