//! `pi-deploy state init | push | pull | history`: the S3 state bucket, moving a deployment's
//! state between a local directory and S3 (byte for byte, holding both locks), and its
//! earlier versions.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{CmdError, DEFAULT_STATE_DIR, load_config, validate};
use crate::aws::Clients;
use crate::cli::{GlobalArgs, HistoryArgs, PullArgs, PushArgs, StateCommand};
use crate::core::config::{Config, Purpose};
use crate::core::state::{State, StateRefusal};
use crate::core::state_url::{STATE_URL_RULE, StateLocation};
use crate::state_backend::{Connect, connect_s3, machine, this_process};
use crate::state_file::{Location, StateFile, StateFileError};
use crate::state_s3::{S3Location, S3State, Timing};
use crate::ui::report;

pub async fn run(global: &GlobalArgs, cmd: &StateCommand) -> Result<(), CmdError> {
    let cfg = load_config(global)?;
    validate(&cfg, Purpose::Other)?;
    let (bucket, prefix) = s3_location(global, &cfg)?;
    match cmd {
        StateCommand::Init => init(global, &cfg, &bucket).await,
        StateCommand::Push(args) => push(global, &cfg, &bucket, &prefix, args).await,
        StateCommand::Pull(args) => pull(global, &cfg, &bucket, &prefix, args).await,
        StateCommand::History(args) => history(global, &cfg, &bucket, &prefix, args).await,
    }
}

/// These commands work on an S3 location: `--state`, else `[state] url`.
fn s3_location(global: &GlobalArgs, cfg: &Config) -> Result<(String, String), CmdError> {
    let (field, url) = match (&global.state, &cfg.state.url) {
        (Some(u), _) => ("--state", u.clone()),
        (None, Some(u)) => ("state.url", u.clone()),
        (None, None) => {
            return Err(CmdError::input(
                "--state",
                "these commands need the S3 location of the state",
                "pass --state s3://BUCKET/PREFIX, or set [state] url in the config",
            ));
        }
    };
    match StateLocation::parse(&url).map_err(|p| CmdError::input(field, p, STATE_URL_RULE))? {
        StateLocation::S3 { bucket, prefix } => Ok((bucket, prefix)),
        StateLocation::Local { .. } => Err(CmdError::input(
            field,
            format!("`{url}` is a local directory; these commands work on an S3 location"),
            "pass --state s3://BUCKET/PREFIX (the local side of push and pull is --state-dir)",
        )),
    }
}

fn local_dir(global: &GlobalArgs) -> PathBuf {
    global
        .state_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR))
}

/// Credentials and the caller's account (to refuse a foreign state), in the bucket's region.
async fn clients(cfg: &Config) -> Result<(Clients, String), CmdError> {
    let region = cfg.state.region.clone().or_else(|| cfg.region.clone());
    let clients = Clients::load(region.as_deref()).await?;
    let region = clients.region();
    Ok((clients, region))
}

fn connect(clients: &Clients, region: &str, bucket: &str, prefix: &str) -> Result<S3Location, CmdError> {
    Ok(connect_s3(
        bucket,
        prefix,
        &Connect {
            config: Some(&clients.config),
            region: Some(region.to_string()),
        },
    )?)
}

fn lock_s3(s3: &S3Location, cfg: &Config, command: &str) -> Result<S3State, CmdError> {
    Ok(s3.lock(
        &cfg.deployment,
        this_process(command),
        machine(),
        crate::aws::fence::process(),
        Timing::default(),
    )?)
}

/// A document to move: valid, of this deployment and this account.
fn check_document(bytes: &[u8], at: Location, cfg: &Config, account: &str) -> Result<State, CmdError> {
    let refused = |refusal| {
        CmdError::from(StateFileError::Refused {
            at: at.clone(),
            refusal,
        })
    };
    let state = State::parse(bytes).map_err(refused)?;
    for (field, found, expected) in [
        ("deployment", &state.deployment, &cfg.deployment),
        ("account", &state.account_id, &account.to_string()),
    ] {
        if found != expected {
            return Err(refused(StateRefusal::Foreign {
                field,
                found: found.clone(),
                expected: expected.clone(),
            }));
        }
    }
    Ok(state)
}

async fn init(global: &GlobalArgs, cfg: &Config, bucket: &str) -> Result<(), CmdError> {
    let (clients, region) = clients(cfg).await?;
    let identity = clients.identity(&cfg.deployment).await?;
    let check = crate::resources::state_bucket::init(&clients.s3, bucket, &region, &identity.partition).await?;
    let missing = check.missing();
    if global.json {
        #[derive(Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            check: &'a crate::resources::state_bucket::BucketCheck,
            region: &'a str,
            missing: Vec<&'static str>,
        }
        report::print_json(&Out {
            check: &check,
            region: &region,
            missing: missing.iter().map(|(n, _)| *n).collect(),
        });
    } else {
        let verb = if check.created { "created" } else { "checked" };
        println!("{verb} s3://{bucket} in {region}:");
        let yes = |b: bool| if b { "yes" } else { "MISSING" };
        println!("  versioning             {}", yes(check.versioning));
        println!(
            "  default encryption     {}",
            check.encryption.as_deref().unwrap_or("MISSING")
        );
        println!("  TLS-only policy        {}", yes(check.tls_only));
        println!("  Block Public Access    {}", yes(check.public_access_blocked));
    }
    if missing.is_empty() {
        return Ok(());
    }
    Err(CmdError::Failed {
        message: format!(
            "the state bucket s3://{bucket} lacks: {}",
            missing.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        ),
        hint: Some(format!(
            "pi-deploy does not change an existing bucket; add what is missing:\n    {}",
            missing
                .iter()
                .map(|(_, fix)| fix.clone())
                .collect::<Vec<_>>()
                .join("\n    ")
        )),
        reported: false,
    })
}

#[derive(Serialize)]
struct Moved {
    deployment: String,
    from: String,
    to: String,
    serial: u64,
    lineage: String,
    bytes: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
}

fn print_moved(global: &GlobalArgs, m: &Moved) {
    if global.json {
        report::print_json(m);
    } else {
        eprintln!(
            "copied the state of `{}` (serial {}, {} bytes) from {} to {}",
            m.deployment, m.serial, m.bytes, m.from, m.to
        );
    }
}

async fn push(global: &GlobalArgs, cfg: &Config, bucket: &str, prefix: &str, args: &PushArgs) -> Result<(), CmdError> {
    let (clients, region) = clients(cfg).await?;
    let identity = clients.identity(&cfg.deployment).await?;
    let s3 = connect(&clients, &region, bucket, prefix)?;
    let dir = local_dir(global);
    let local = StateFile::lock(&dir, &cfg.deployment, this_process("state push"))?;
    let path = local.path();
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CmdError::Refused {
                message: format!("no local state at {}", path.display()),
                hint: Some("pass the directory that holds it with --state-dir".into()),
            });
        }
        Err(source) => return Err(StateFileError::Io { path, source }.into()),
    };
    let state = check_document(&bytes, Location::File(path.clone()), cfg, &identity.account_id)?;
    let remote = lock_s3(&s3, cfg, "state push")?;
    if let Some(current) = remote.load()? {
        if current.lineage != state.lineage {
            return Err(CmdError::Refused {
                message: format!(
                    "{} holds another lineage ({}) than {} ({}): it is another history of the deployment",
                    remote.location(),
                    current.lineage,
                    path.display(),
                    state.lineage
                ),
                hint: Some("pull it first (`pi-deploy state pull --out FILE`) and compare; pi-deploy never replaces a state of another lineage".into()),
            });
        }
        if current.serial >= state.serial && !args.force {
            return Err(CmdError::Refused {
                message: format!(
                    "{} has serial {}, as new as or newer than the local serial {}",
                    remote.location(),
                    current.serial,
                    state.serial
                ),
                hint: Some(
                    "pull it instead (`pi-deploy state pull`), or pass --force to put this earlier state back".into(),
                ),
            });
        }
    }
    remote.write_bytes(bytes.clone(), state.lineage, state.serial, args.force)?;
    print_moved(
        global,
        &Moved {
            deployment: cfg.deployment.clone(),
            from: path.display().to_string(),
            to: remote.location().to_string(),
            serial: state.serial,
            lineage: state.lineage.to_string(),
            bytes: bytes.len(),
            version: None,
        },
    );
    Ok(())
}

/// Write `bytes` to `path` atomically (a temp file renamed over it).
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CmdError> {
    let io = |source| {
        CmdError::from(StateFileError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

async fn pull(global: &GlobalArgs, cfg: &Config, bucket: &str, prefix: &str, args: &PullArgs) -> Result<(), CmdError> {
    let (clients, region) = clients(cfg).await?;
    let identity = clients.identity(&cfg.deployment).await?;
    let s3 = connect(&clients, &region, bucket, prefix)?;
    let key = s3.state_key(&cfg.deployment);
    let _remote_lock = lock_s3(&s3, cfg, "state pull")?;
    let Some(obj) = s3.get(&key, args.version.as_deref())? else {
        return Err(CmdError::Refused {
            message: format!("no state at {}", s3.at(&key)),
            hint: Some("check --deployment and --state (`pi-deploy state history` lists what was there)".into()),
        });
    };
    let state = check_document(&obj.bytes, s3.at(&key), cfg, &identity.account_id)?;
    let to = match &args.out {
        Some(out) if out.as_os_str() == "-" => {
            std::io::stdout()
                .write_all(&obj.bytes)
                .map_err(|source| StateFileError::Io {
                    path: "stdout".into(),
                    source,
                })?;
            return Ok(());
        }
        Some(out) => {
            write_file(out, &obj.bytes)?;
            out.display().to_string()
        }
        None => {
            let local = StateFile::lock(&local_dir(global), &cfg.deployment, this_process("state pull"))?;
            if let Some(existing) = local.load()?
                && existing.lineage == state.lineage
                && existing.serial >= state.serial
                && !args.force
            {
                return Err(CmdError::Refused {
                    message: format!(
                        "{} has serial {}, as new as or newer than the pulled serial {}",
                        local.path().display(),
                        existing.serial,
                        state.serial
                    ),
                    hint: Some("pass --force to replace it (its previous version is kept as .backup), or --out FILE to write elsewhere".into()),
                });
            }
            local.write_bytes(obj.bytes.clone(), state.lineage, state.serial, true)?;
            local.path().display().to_string()
        }
    };
    print_moved(
        global,
        &Moved {
            deployment: cfg.deployment.clone(),
            from: s3.at(&key).to_string(),
            to,
            serial: state.serial,
            lineage: state.lineage.to_string(),
            bytes: obj.bytes.len(),
            version: obj.version_id,
        },
    );
    Ok(())
}

#[derive(Serialize)]
struct Entry {
    version_id: String,
    last_modified: Option<String>,
    size: i64,
    latest: bool,
    deleted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    serial: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<usize>,
}

async fn history(
    global: &GlobalArgs,
    cfg: &Config,
    bucket: &str,
    prefix: &str,
    args: &HistoryArgs,
) -> Result<(), CmdError> {
    let (clients, region) = clients(cfg).await?;
    let s3 = connect(&clients, &region, bucket, prefix)?;
    let key = s3.state_key(&cfg.deployment);
    let mut versions = s3.versions(&key)?;
    let total = versions.len();
    if args.limit > 0 {
        versions.truncate(args.limit);
    }
    let mut entries = Vec::new();
    for v in versions {
        let doc = if v.deleted {
            None
        } else {
            s3.get(&key, Some(&v.version_id))?
                .and_then(|o| State::parse(&o.bytes).ok())
        };
        entries.push(Entry {
            last_modified: v.last_modified.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
            size: v.size,
            latest: v.is_latest,
            deleted: v.deleted,
            serial: doc.as_ref().map(|d| d.serial),
            resources: doc.as_ref().map(|d| d.resources.len()),
            version_id: v.version_id,
        });
    }
    if global.json {
        report::print_json(&entries);
        return Ok(());
    }
    println!(
        "{} ({} versions{})",
        s3.at(&key),
        total,
        if entries.len() < total {
            format!(", the newest {} shown", entries.len())
        } else {
            String::new()
        }
    );
    println!(
        "  {:<34} {:<24} {:>8} {:>7} {:>9}",
        "VERSION", "WRITTEN", "BYTES", "SERIAL", "RESOURCES"
    );
    for e in &entries {
        let serial = e.serial.map_or("-".into(), |s| s.to_string());
        let resources = e.resources.map_or("-".into(), |n| n.to_string());
        let note = match (e.latest, e.deleted) {
            (_, true) => "  (deleted)",
            (true, _) => "  (current)",
            _ => "",
        };
        println!(
            "  {:<34} {:<24} {:>8} {:>7} {:>9}{note}",
            e.version_id,
            e.last_modified.as_deref().unwrap_or("-"),
            e.size,
            serial,
            resources
        );
    }
    Ok(())
}
