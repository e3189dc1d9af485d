//! What `status` learns about one recorded resource from AWS: its live state and the drift of
//! the attributes pi-deploy sets. Each kind decides how to read them (`ResourceKind::inspect`);
//! this module holds the shapes and the pure rules that turn them into a verdict.

use std::collections::BTreeMap;
use std::fmt::Display;

use serde::Serialize;

use super::resource::Outputs;
use super::spec::{Kind, NodeSpec};

/// The resource's life as AWS reports it, folded into the four states an operator acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Live {
    /// AWS does not know the recorded id (deleted by hand, or never finished).
    Missing,
    /// Exists but is not usable yet (pending, provisioning, creating, modifying...).
    Creating,
    Available,
    /// Being deleted (or in a failed state it will not leave).
    Deleting,
    /// This kind is not inspected: nothing is claimed either way.
    Unknown,
}

impl Live {
    pub fn as_str(self) -> &'static str {
        match self {
            Live::Missing => "missing",
            Live::Creating => "creating",
            Live::Available => "available",
            Live::Deleting => "deleting",
            Live::Unknown => "-",
        }
    }

    /// Whether the state means the deployment is not healthy and in sync.
    pub fn is_problem(self) -> bool {
        !matches!(self, Live::Available | Live::Unknown)
    }
}

/// One attribute pi-deploy sets whose live value differs from the desired one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub attribute: String,
    pub expected: String,
    pub actual: String,
}

/// The result of inspecting one resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Inspection {
    pub live: Live,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<Drift>,
    /// A short note for the operator (e.g. the raw state AWS reported).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Inspection {
    pub fn of(live: Live) -> Self {
        Self {
            live,
            drift: Vec::new(),
            detail: None,
        }
    }
    pub fn unknown() -> Self {
        Self::of(Live::Unknown)
    }
    pub fn missing() -> Self {
        Self::of(Live::Missing)
    }
    pub fn available() -> Self {
        Self::of(Live::Available)
    }
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Record drift unconditionally (the caller already compared).
    pub fn drift(&mut self, attribute: impl Into<String>, expected: impl Into<String>, actual: impl Into<String>) {
        self.drift.push(Drift {
            attribute: attribute.into(),
            expected: expected.into(),
            actual: actual.into(),
        });
    }

    /// Record drift when the live value differs from the desired one.
    pub fn check<E: Display + PartialEq<A>, A: Display>(&mut self, attribute: &str, expected: E, actual: A) {
        if expected != actual {
            self.drift(attribute, expected.to_string(), actual.to_string());
        }
    }

    /// Same, for an attribute AWS may not report at all (`None` reads as "absent").
    pub fn check_opt<T: Display + PartialEq>(&mut self, attribute: &str, expected: T, actual: Option<T>) {
        match actual {
            Some(a) if a == expected => {}
            Some(a) => self.drift(attribute, expected.to_string(), a.to_string()),
            None => self.drift(attribute, expected.to_string(), "absent"),
        }
    }

    pub fn is_problem(&self) -> bool {
        self.live.is_problem() || !self.drift.is_empty()
    }
}

/// What a kind's `inspect` knows: the recorded resource, its desired spec when the current
/// config still describes it, and every recorded resource's outputs (rules name other
/// resources by key, e.g. a security group admitting another group).
pub struct InspectCtx<'a> {
    pub key: &'a str,
    pub kind: Kind,
    pub spec: Option<&'a NodeSpec>,
    pub outputs: &'a Outputs,
    pub recorded: &'a BTreeMap<String, Outputs>,
}

impl InspectCtx<'_> {
    /// The recorded id of another resource.
    pub fn id_of(&self, key: &str) -> Option<&str> {
        self.recorded.get(key).and_then(|o| o.get("id"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_records_only_differences() {
        let mut i = Inspection::available();
        i.check("multi_az", true, true);
        i.check("backup_retention_days", 7, 1);
        i.check_opt("deletion_protection", true, None);
        i.check_opt("storage_encrypted", true, Some(true));
        assert_eq!(
            i.drift,
            vec![
                Drift {
                    attribute: "backup_retention_days".into(),
                    expected: "7".into(),
                    actual: "1".into()
                },
                Drift {
                    attribute: "deletion_protection".into(),
                    expected: "true".into(),
                    actual: "absent".into()
                },
            ]
        );
        assert!(i.is_problem());
    }

    #[test]
    fn only_available_and_unknown_are_healthy() {
        assert!(!Inspection::available().is_problem());
        assert!(!Inspection::unknown().is_problem());
        for live in [Live::Missing, Live::Creating, Live::Deleting] {
            assert!(Inspection::of(live).is_problem(), "{live:?}");
        }
    }
}
