//! `pi-deploy outputs`: the deployment's outputs (URL, ids, ARNs) as the state records them.
//! No lock: a local file is atomically replaced by writers and an S3 object is replaced
//! whole, so a read always sees a complete document. A local state needs no AWS call and no
//! credentials; an S3 state needs one GetObject.

use std::collections::BTreeMap;

use super::{CmdError, load_config, read_state};
use crate::cli::GlobalArgs;
use crate::core::state::State;
use crate::state_backend::Connect;
use crate::ui::report;

pub fn run(global: &GlobalArgs) -> Result<(), CmdError> {
    let cfg = load_config(global)?;
    super::validate(&cfg, crate::core::config::Purpose::Other)?;
    let how = Connect {
        config: None,
        region: cfg.state.region.clone().or_else(|| cfg.region.clone()),
    };
    let (state, _) = read_state(global, &cfg, &how)?;
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
    // A restore in progress (or switched, the old instance kept): where it stands.
    if let Some(r) = &state.files_restore {
        out.insert("files_restore".into(), r.describe());
    }
    if let Some(r) = &state.restore {
        out.insert("restore_step".into(), r.step.name().into());
        out.insert("restore_new_db_instance".into(), r.new_instance.clone());
        out.insert("restore_kept_db_instance".into(), r.old_instance().into());
    }
    out
}
