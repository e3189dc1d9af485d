//! `pi-deploy force-unlock LOCK_ID`: remove a deployment's lock that a killed run left
//! behind. Locks are never removed automatically; this needs the holder's lock id (printed
//! by the refused run), so it cannot remove a newer run's lock by mistake.

use serde::Serialize;

use super::{CmdError, load_config, state_location};
use crate::cli::{ForceUnlockArgs, GlobalArgs};
use crate::core::lock::LockInfo;
use crate::core::state_url::StateLocation;
use crate::state_backend::{Connect, connect_s3, machine};
use crate::state_file::{LocalUnlock, StateFile};
use crate::state_s3::Unlocked;
use crate::ui::report;

#[derive(Serialize)]
struct Report {
    deployment: String,
    state: String,
    removed: bool,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    lock: Option<LockInfo>,
}

pub fn run(global: &GlobalArgs, args: &ForceUnlockArgs) -> Result<(), CmdError> {
    let cfg = load_config(global)?;
    super::validate(&cfg, crate::core::config::Purpose::Other)?;
    let location = state_location(global, &cfg)?;
    let d = &cfg.deployment;
    let here = machine();
    let (removed, lock, message) = match &location {
        StateLocation::Local { dir } => match StateFile::force_unlock(dir, d, &args.lock_id, here.as_ref())? {
            LocalUnlock::Removed(info) => (
                true,
                Some(info.clone()),
                format!("removed the lock of deployment `{d}` held by {}", info.describe()),
            ),
            LocalUnlock::WasFree => (
                true,
                None,
                format!("no run held the lock of deployment `{d}`; removed the file it left behind"),
            ),
            LocalUnlock::NotLocked => (false, None, format!("deployment `{d}` is not locked")),
        },
        StateLocation::S3 { bucket, prefix } => {
            let s3 = connect_s3(
                bucket,
                prefix,
                &Connect {
                    config: None,
                    region: cfg.state.region.clone().or_else(|| cfg.region.clone()),
                },
            )?;
            match s3.force_unlock(d, &args.lock_id, here.as_ref(), global.yes)? {
                Unlocked::Removed(info) => (
                    true,
                    Some(info.clone()),
                    format!("removed the lock of deployment `{d}` held by {}", info.describe()),
                ),
                Unlocked::NotLocked => (false, None, format!("deployment `{d}` is not locked")),
            }
        }
    };
    if global.json {
        report::print_json(&Report {
            deployment: d.clone(),
            state: location.to_string(),
            removed,
            message,
            lock,
        });
    } else {
        println!("{message}");
    }
    Ok(())
}
