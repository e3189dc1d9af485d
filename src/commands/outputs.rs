//! `pi-deploy outputs`: the deployment's outputs (URL, ids, ARNs) as the state records them.
//! No lock: a local file is atomically replaced by writers and an S3 object is replaced
//! whole, so a read always sees a complete document. A local state needs no AWS call and no
//! credentials; an S3 state needs one GetObject.

use std::collections::BTreeMap;

use super::{CmdError, load_config, state_location};
use crate::cli::GlobalArgs;
use crate::core::state::State;
use crate::core::state_url::StateLocation;
use crate::state_backend::{Connect, connect_s3};
use crate::state_file::{Location, StateFile, StateFileError};
use crate::ui::report;

pub fn run(global: &GlobalArgs) -> Result<(), CmdError> {
    let cfg = load_config(global)?;
    super::validate(&cfg, crate::core::config::Purpose::Other)?;
    let location = state_location(global, &cfg)?;
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
            let s3 = connect_s3(
                bucket,
                prefix,
                &Connect {
                    config: None,
                    region: cfg.state.region.clone().or_else(|| cfg.region.clone()),
                },
            )?;
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
    let state = State::parse(&bytes).map_err(|refusal| CmdError::from(StateFileError::Refused { at, refusal }))?;
    let outputs = outputs_of(&state);
    if global.json {
        report::print_json(&outputs);
    } else {
        print!("{}", report::outputs_text(&outputs));
    }
    Ok(())
}

/// What `up` recorded at its end, completed from the resources when a run stopped early.
fn outputs_of(state: &State) -> BTreeMap<String, String> {
    let mut out = super::up::outputs(state);
    out.extend(state.outputs.clone());
    out
}
