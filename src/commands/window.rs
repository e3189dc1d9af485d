//! A major engine upgrade RDS holds for the maintenance window (`core::window`), as `up`,
//! `plan` and `status` read it: only while the state has a retiring parameter group (the one
//! the upgrade replaces), so a deployment without one makes no extra call.

use crate::core::spec::Kind;
use crate::core::state::State;
use crate::core::window::HeldUpgrade;
use crate::resources::{Aws, db_instance};

/// The held upgrade of the recorded DB instance, if the state has a retiring parameter
/// group and RDS holds a major version for the window. A failed read is a warning in the
/// log and counts as nothing held (the retiring group's delete then says what AWS says).
pub async fn held_upgrade(aws: &Aws, state: &State) -> Option<HeldUpgrade> {
    if !state.retiring().any(|(_, r)| r.kind == Kind::DbParameterGroup) {
        return None;
    }
    let id = state.resources.get("db")?.outputs.get("id")?;
    match db_instance::read_held_upgrade(aws, id).await {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(db = id, error = %e, "could not read the DB instance's pending modifications");
            None
        }
    }
}
