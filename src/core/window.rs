//! A major engine upgrade RDS holds for the maintenance window (`database.apply_immediately =
//! false`): ModifyDBInstance answered, the instance stays on its version and its parameter
//! group until the window, and describes the new version under PendingModifiedValues.
//!
//! While it waits, the change is made, not to make again: the instance's read counts the
//! pending version as its own (`resources::db_instance::live_settings`), `plan` and `status`
//! say it is pending, and the parameter group it replaces, which the instance still uses
//! (RDS refuses its delete, InvalidDBParameterGroupState), is kept as a retiring record
//! (`held`) until a run after the window deletes it. Pure: the read is the caller's.

use super::spec::Kind;
use super::state::State;

/// The instance's version and the major version RDS holds for the window.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldUpgrade {
    pub from: String,
    pub to: String,
}

impl HeldUpgrade {
    /// One line for `plan`, `status` and `up`.
    pub fn describe(&self) -> String {
        format!(
            "db: engine_version {} -> {} pending until the instance's next maintenance window (database.apply_immediately = false); RDS applies it then with the new parameter group, `up` does not ask again",
            self.from, self.to
        )
    }

    /// Why a held retiring record is kept, for `plan`'s step and `up`'s warning.
    pub fn keeps(&self, key: &str) -> String {
        format!(
            "{key}: kept until the maintenance window (the instance uses it until its upgrade to {} is applied); the first `up` after the window deletes it",
            self.to
        )
    }
}

/// Of the keys `up` would delete, the retiring parameter groups: the instance is on them
/// until a held upgrade is applied, so they wait for the window too.
pub fn held(state: &State, keys: &[String]) -> Vec<String> {
    keys.iter()
        .filter(|k| {
            state
                .resources
                .get(*k)
                .is_some_and(|r| r.retiring.is_some() && r.kind == Kind::DbParameterGroup)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::resource::Outputs;
    use crate::core::state::{Identity, ResourceRecord, Status};

    fn record(kind: Kind, id: &str) -> ResourceRecord {
        ResourceRecord {
            kind,
            status: Status::Ready,
            client_token: "t".into(),
            outputs: Outputs::new().with("id", id),
            deps: Vec::new(),
            settings: Default::default(),
            retiring: None,
            updated_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn only_retiring_parameter_groups_wait_for_the_window() {
        let mut state = State::new(&Identity {
            deployment: "pi".into(),
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            partition: "aws".into(),
        });
        state
            .resources
            .insert("db-params".into(), record(Kind::DbParameterGroup, "pi-db-params"));
        let rkey = state.retire("db-params", "family", "tok2").unwrap();
        state
            .resources
            .insert("sg-old".into(), record(Kind::SecurityGroup, "sg-1"));
        let keys = vec![rkey.clone(), "sg-old".to_string()];
        assert_eq!(held(&state, &keys), vec![rkey]);
        // Nothing retiring: nothing held.
        assert!(held(&state, &["sg-old".to_string()]).is_empty());
        let h = HeldUpgrade {
            from: "10.11.10".into(),
            to: "11.4".into(),
        };
        assert!(h.describe().contains("10.11.10 -> 11.4 pending"));
        assert!(
            h.keeps("db-params/retiring-pi-db-params")
                .contains("maintenance window")
        );
    }
}
