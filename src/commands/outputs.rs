//! `pi-deploy outputs`: the deployment's outputs (URL, ids, ARNs) as the state file records
//! them. No AWS call, no credentials: it only reads the file (atomically replaced by
//! writers, so no lock is needed to read a complete document).

use std::collections::BTreeMap;

use super::{CmdError, load_config};
use crate::cli::GlobalArgs;
use crate::core::state::State;
use crate::state_file::{StateFile, StateFileError};
use crate::ui::report;

pub fn run(global: &GlobalArgs) -> Result<(), CmdError> {
    let cfg = load_config(global)?;
    let path = StateFile::path_for(&global.state_dir, &cfg.deployment);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CmdError::Refused {
                message: format!(
                    "no state file at {}: deployment `{}` has not been deployed from here",
                    path.display(),
                    cfg.deployment
                ),
                hint: Some(
                    "run `pi-deploy up` first, or pass the --deployment and --state-dir it was deployed with".into(),
                ),
            });
        }
        Err(source) => return Err(StateFileError::Io { path, source }.into()),
    };
    let state = State::parse(&bytes).map_err(|refusal| CmdError::from(StateFileError::Refused { path, refusal }))?;
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
