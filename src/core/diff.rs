//! Day 2: what a live resource must change to match its config.
//!
//! Each kind declares the attributes it manages (`AttrSpec`): how AWS lets each one change on
//! a live resource (in place, a new resource, new instances, or not at all; see
//! `../shared/design/update-behaviours.md`) and which config fields it follows. A kind computes
//! its desired `Settings` from its props (pure) and reads the live `Settings` from AWS; `diff`
//! compares the two and names, per attribute, the old and the new value and the action.
//!
//! Settings are canonical strings (sorted lists joined by `, `, numbers in decimal) so that
//! the same value always compares equal and reads well in `plan`. An attribute a kind cannot
//! read is left out of the live settings: nothing is claimed about it, and no change is
//! planned for it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Attribute name -> canonical value.
pub type Settings = BTreeMap<String, String>;

/// The value shown for a desired setting that depends on a resource this run creates or
/// replaces first.
pub const KNOWN_AFTER_UP: &str = "(known after up)";

/// How a sensitive setting's value begins: `(sensitive)` and a keyed digest, never the value.
/// Such settings are compared but never recorded in the state.
pub const SENSITIVE: &str = "(sensitive)";

/// What `up` does about one changed attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeAction {
    /// An API call changes it on the live resource.
    Update,
    /// New instances are needed: a new launch template version and a blue/green roll.
    Roll,
    /// AWS cannot change it in place: a new resource, created before the old one is deleted.
    Replace,
    /// AWS cannot do it and pi-deploy will not (it would lose data or rebuild everything):
    /// refused before any AWS call, naming what to do instead.
    Forbidden,
}

impl ChangeAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeAction::Update => "update",
            ChangeAction::Roll => "roll",
            ChangeAction::Replace => "replace",
            ChangeAction::Forbidden => "forbidden",
        }
    }
}

/// One attribute a kind manages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttrSpec {
    pub name: &'static str,
    pub action: ChangeAction,
    /// For `update`: what the change interrupts ("" when nothing); for `forbidden`: what to
    /// do instead; for `replace`/`roll`: why.
    pub note: &'static str,
    /// The config fields this attribute follows (the README's "what `up` does when you
    /// change X" table is checked against these).
    pub fields: &'static [&'static str],
}

impl AttrSpec {
    pub const fn update(name: &'static str, fields: &'static [&'static str]) -> Self {
        Self {
            name,
            action: ChangeAction::Update,
            note: "",
            fields,
        }
    }
    pub const fn with(
        name: &'static str,
        action: ChangeAction,
        note: &'static str,
        fields: &'static [&'static str],
    ) -> Self {
        Self {
            name,
            action,
            note,
            fields,
        }
    }
}

/// One attribute that differs, and what `up` does about it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub attribute: String,
    pub old: String,
    pub new: String,
    pub action: ChangeAction,
    /// What it interrupts, why it replaces, or what to do instead.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// The config fields behind it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
}

impl Change {
    pub fn is(&self, action: ChangeAction) -> bool {
        self.action == action
    }
}

/// A kind's answer for a change whose action depends on the values (a storage grow is an
/// update, a shrink is forbidden): `Some((action, note))` overrides the declared one.
pub type Classify = fn(attr: &AttrSpec, old: &str, new: &str) -> Option<(ChangeAction, String)>;

/// Compare desired with live settings over the declared attributes. An attribute missing
/// from `live` is not compared (the kind does not read it); one missing from `desired` is
/// not managed for this resource.
pub fn diff(attrs: &[AttrSpec], desired: &Settings, live: &Settings, classify: Option<Classify>) -> Vec<Change> {
    let mut changes = Vec::new();
    for a in attrs {
        let (Some(want), Some(have)) = (desired.get(a.name), live.get(a.name)) else {
            continue;
        };
        if want == have {
            continue;
        }
        let (action, note) = classify
            .and_then(|c| c(a, have, want))
            .unwrap_or_else(|| (a.action, a.note.to_string()));
        changes.push(Change {
            attribute: a.name.to_string(),
            old: have.clone(),
            new: want.clone(),
            action,
            note,
            fields: a.fields.iter().map(|f| f.to_string()).collect(),
        });
    }
    changes
}

/// The strongest action among `changes` (forbidden > replace > roll > update).
pub fn strongest(changes: &[Change]) -> Option<ChangeAction> {
    changes.iter().map(|c| c.action).max()
}

/// A canonical list value: sorted, deduplicated, joined by `, ` (`-` when empty).
pub fn list<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut v: Vec<String> = items.into_iter().map(Into::into).collect();
    v.sort();
    v.dedup();
    if v.is_empty() { "-".to_string() } else { v.join(", ") }
}

/// A canonical optional value (`-` when absent).
pub fn opt(v: Option<impl ToString>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Build settings from (name, value) pairs.
pub fn settings<const N: usize>(pairs: [(&str, String); N]) -> Settings {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// The members of a list value (inverse of `list`).
pub fn members(value: &str) -> Vec<String> {
    if value == "-" || value.is_empty() {
        Vec::new()
    } else {
        value.split(", ").map(String::from).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATTRS: &[AttrSpec] = &[
        AttrSpec::update("max", &["scaling.max"]),
        AttrSpec::with(
            "cidr",
            ChangeAction::Forbidden,
            "destroy and rebuild",
            &["network.vpc_cidr"],
        ),
        AttrSpec::update("storage", &["database.allocated_storage_gib"]),
    ];

    fn grow_only(a: &AttrSpec, old: &str, new: &str) -> Option<(ChangeAction, String)> {
        let (o, n) = (old.parse::<i64>().ok()?, new.parse::<i64>().ok()?);
        (a.name == "storage" && n < o).then(|| (ChangeAction::Forbidden, "storage only grows".to_string()))
    }

    #[test]
    fn only_declared_and_read_attributes_that_differ_are_changes() {
        let desired = settings([
            ("max", "5".into()),
            ("cidr", "10.0.0.0/16".into()),
            ("storage", "20".into()),
            ("undeclared", "x".into()),
        ]);
        // `storage` is not read: nothing is claimed about it.
        let live = settings([
            ("max", "3".into()),
            ("cidr", "10.0.0.0/16".into()),
            ("undeclared", "y".into()),
        ]);
        let c = diff(ATTRS, &desired, &live, None);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].attribute.as_str(), c[0].old.as_str(), c[0].new.as_str()),
            ("max", "3", "5")
        );
        assert_eq!(c[0].action, ChangeAction::Update);
        assert_eq!(c[0].fields, vec!["scaling.max".to_string()]);
    }

    #[test]
    fn the_kind_can_classify_by_value() {
        let desired = settings([("storage", "20".into())]);
        let grow = diff(ATTRS, &desired, &settings([("storage", "10".into())]), Some(grow_only));
        assert_eq!(grow[0].action, ChangeAction::Update);
        let shrink = diff(ATTRS, &desired, &settings([("storage", "30".into())]), Some(grow_only));
        assert_eq!(shrink[0].action, ChangeAction::Forbidden);
        assert_eq!(shrink[0].note, "storage only grows");
        assert_eq!(strongest(&shrink), Some(ChangeAction::Forbidden));
    }

    #[test]
    fn forbidden_is_the_strongest() {
        let desired = settings([("max", "5".into()), ("cidr", "10.1.0.0/16".into())]);
        let live = settings([("max", "3".into()), ("cidr", "10.0.0.0/16".into())]);
        assert_eq!(
            strongest(&diff(ATTRS, &desired, &live, None)),
            Some(ChangeAction::Forbidden)
        );
        assert_eq!(strongest(&[]), None);
    }

    #[test]
    fn lists_are_canonical() {
        assert_eq!(list(["b", "a", "b"]), "a, b");
        assert_eq!(list(Vec::<String>::new()), "-");
        assert_eq!(members(&list(["x", "y"])), vec!["x", "y"]);
        assert!(members("-").is_empty());
        assert_eq!(opt(None::<i32>), "-");
        assert_eq!(opt(Some(3)), "3");
    }
}
