//! Usable early: the Multi-AZ standby of a database `up` created Single-AZ. The `db` node
//! creates the instance Single-AZ (`DbSettings::create_multi_az`), the endpoint is published
//! and the dashboard goes on as soon as it is `available`; this node, which nothing depends
//! on, then converts it in place: `ModifyDBInstance(MultiAZ=true, ApplyImmediately=true)`.
//! AWS snapshots the primary and builds the standby from it without downtime (writes are
//! slower meanwhile: update-behaviours.md, "Single-AZ -> Multi-AZ conversion").
//!
//! It owns no AWS object: its "create" is the modification, its id names the instance's
//! Multi-AZ setting, and its delete is nothing (the instance's own delete removes both).
//! It owns the instance's `multi_az` setting on this path (the `db` node claims nothing
//! about it), so a conversion in progress is neither drift nor a change of the instance.
//!
//! Resumable: `find` reads the instance first. Already Multi-AZ, or a conversion under way
//! (`PendingModifiedValues.MultiAZ` true, or `modifying` towards it), is adopted and only
//! waited for; only a Single-AZ instance with nothing pending is modified. The executor
//! records the intent before the modification and the result after, as for every kind.
//!
//! AWS can abandon the conversion when the second zone has no capacity: the instance
//! returns to `available`, Single-AZ, with no API error (terraform-provider-aws#43322). The
//! wait therefore ends only on `available`, Multi-AZ, nothing pending, and fails with the
//! way out when the instance is back to Single-AZ with nothing pending.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_rds::types as t;
use tokio::time::Instant;

use super::db_endpoint::{check_multi_az, is_failure_state};
use super::rds::describe_instance;
use super::{Aws, ResourceKind, props};
use crate::aws::err;
use crate::aws::wait::{self, Backoff, Poll};
use crate::core::diff::{AttrSpec, ChangeAction, Settings, settings};
use crate::core::inspect::{InspectCtx, Inspection, Live};
use crate::core::latency::{self, Transition};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props};

pub struct DbStandby;

pub const ATTRS: &[AttrSpec] = &[AttrSpec::with(
    "multi_az",
    ChangeAction::Update,
    "the standby is built from a snapshot, without downtime; I/O is slower meanwhile",
    &["database.multi_az", "database.usable_early"],
)];

/// Where the instance stands with its standby.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Standby {
    /// `available`, Multi-AZ, no Multi-AZ change pending.
    Ready,
    /// The conversion is under way (or Multi-AZ but not `available` yet): only wait.
    Converting(String),
    /// Single-AZ with nothing pending: the conversion is to be asked for.
    Absent,
    /// The instance is in a state it does not leave without an operator.
    Broken(String),
}

/// What one describe says about the standby (pure).
pub fn standby_of(status: &str, multi_az: Option<bool>, pending_multi_az: Option<bool>) -> Standby {
    if is_failure_state(status) {
        return Standby::Broken(status.to_string());
    }
    match (multi_az, pending_multi_az) {
        (Some(true), None) if status == "available" => Standby::Ready,
        (_, Some(true)) | (Some(true), _) => Standby::Converting(status.to_string()),
        // `modifying` with nothing pending: AWS can show the conversion so for a moment
        // right after the call; the modification is asked again (a no-op, or refused while
        // the instance is busy and retried) rather than trusted.
        _ => Standby::Absent,
    }
}

fn view(db: &t::DbInstance) -> Standby {
    standby_of(
        db.db_instance_status().unwrap_or("unknown"),
        db.multi_az(),
        db.pending_modified_values().and_then(|p| p.multi_az()),
    )
}

/// The live setting as `plan` and `up` compare it: a conversion asked for counts as made
/// (it is not asked for again).
pub fn live_multi_az(multi_az: Option<bool>, pending_multi_az: Option<bool>) -> Option<String> {
    pending_multi_az.or(multi_az).map(|v| v.to_string())
}

/// How long an instance may read Single-AZ with nothing pending after this run asked for
/// the conversion before that means AWS abandoned it (reads right after ModifyDBInstance
/// can still show the instance as it was).
pub const ABANDONED_AFTER: Duration = Duration::from_secs(120);

/// One poll of the wait for the standby. `since_modify`: how long ago this run asked for the
/// conversion (`None`: it did not, the conversion was found under way).
pub fn standby_poll(identifier: &str, now: Option<Standby>, since_modify: Option<Duration>) -> Poll<()> {
    match now {
        None => Poll::Failed(format!("gone: DB instance {identifier} was deleted outside pi-deploy?")),
        Some(Standby::Ready) => Poll::Ready(()),
        Some(Standby::Converting(status)) => Poll::Pending(format!("{status}, converting to Multi-AZ")),
        Some(Standby::Broken(status)) => Poll::Failed(status),
        Some(Standby::Absent) if since_modify.is_some_and(|d| d < ABANDONED_AFTER) => {
            Poll::Pending("the conversion to Multi-AZ is starting".into())
        }
        Some(Standby::Absent) => Poll::Failed("abandoned: the instance is Single-AZ with nothing pending".into()),
    }
}

fn identifier<'a>(cx: &'a NodeCtx<'_>) -> Result<&'a str, ResourceError> {
    let (db,) = props!(cx, DbStandby { db });
    cx.dep_id(db)
}

fn outputs_for(identifier: &str) -> Outputs {
    Outputs::new().with("id", format!("{identifier}/multi-az"))
}

/// The key under which this run notes when the conversion started (the answer showed it
/// under way): the wait reads on its ramp from then, not at once.
fn started_key(identifier: &str) -> String {
    format!("{identifier}/multi-az")
}

/// The key under which this run notes when it asked for the conversion (the grace before a
/// Single-AZ instance with nothing pending means AWS abandoned it).
fn asked_key(identifier: &str) -> String {
    format!("{identifier}/multi-az-asked")
}

#[async_trait]
impl ResourceKind for DbStandby {
    /// Already Multi-AZ, or converting: adopted (converge only waits). Single-AZ with
    /// nothing pending: `None`, so the executor records the intent and calls `create`.
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let id = identifier(cx)?;
        Ok(match describe_instance(aws, id).await?.as_ref().map(view) {
            Some(Standby::Ready | Standby::Converting(_)) => Some(outputs_for(id)),
            _ => None,
        })
    }

    /// The conversion: one ModifyDBInstance, retried while the instance is busy (a backup
    /// right after the create, another modification).
    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let id = identifier(cx)?.to_string();
        let answer = wait::retry(
            &format!("converting DB instance {id} to Multi-AZ"),
            latency::create_deadline(Kind::DbInstance),
            Backoff::SLOW,
            &[ErrorClass::InUse],
            || async {
                aws.clients
                    .rds
                    .modify_db_instance()
                    .db_instance_identifier(&id)
                    .multi_az(true)
                    .apply_immediately(true)
                    .send()
                    .await
                    .map_err(err("converting the DB instance to Multi-AZ"))
            },
        )
        .await?;
        aws.started.note(&asked_key(&id));
        // The wait skips the read at once only when the answer says the conversion is under
        // way (as for the create of the instance); an answer that shows it done already is
        // read back at once.
        if answer.db_instance().map(view).is_none_or(|v| v != Standby::Ready) {
            aws.started.note(&started_key(&id));
        }
        Ok(outputs_for(&id))
    }

    /// Wait until the instance is `available`, Multi-AZ, with nothing pending; then check
    /// Multi-AZ once more as the endpoint node does for a Multi-AZ create. A run that did
    /// not ask for the conversion itself (resumed after the modification was recorded, or a
    /// day-2 update) and finds the instance Single-AZ with nothing pending asks for it now:
    /// the earlier one was abandoned by AWS, or the instance was changed by hand.
    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, _outputs: Outputs) -> Result<Outputs, ResourceError> {
        let id = identifier(cx)?.to_string();
        if aws.started.get(&asked_key(&id)).is_none()
            && describe_instance(aws, &id).await?.as_ref().map(view) == Some(Standby::Absent)
        {
            self.create(aws, cx).await?;
        }
        let asked = aws.started.get(&asked_key(&id));
        let db = wait::wait_for(
            &format!("DB instance {id} to become Multi-AZ"),
            latency::create_deadline(Kind::DbStandby),
            Backoff::expecting(Transition::DbToMultiAz, aws.started.get(&started_key(&id))),
            || async {
                let db = describe_instance(aws, &id).await?;
                let since = asked.map(|a| Instant::now().saturating_duration_since(a));
                Ok(match standby_poll(&id, db.as_ref().map(view), since) {
                    Poll::Ready(()) => Poll::Ready(db),
                    Poll::Pending(s) => Poll::Pending(s),
                    Poll::Failed(s) => Poll::Failed(s),
                })
            },
        )
        .await
        .map_err(|e| match e.class {
            ErrorClass::Failed => e.with_hint(format!(
                "the database serves Single-AZ meanwhile; look at its events (`aws rds describe-events --source-type db-instance --source-identifier {id}`): without capacity in the second zone AWS abandons the conversion. Run `pi-deploy up` again to ask again, or set database.multi_az = false to accept a single zone"
            )),
            _ => e,
        })?;
        check_multi_az(&id, true, db.as_ref().and_then(|d| d.multi_az()))?;
        Ok(outputs_for(&id))
    }

    /// A setting of the instance: nothing of its own to delete.
    async fn delete(&self, _aws: &Aws, _cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        Ok(())
    }

    /// `status`: a conversion in progress is shown as such (not as drift); an instance back
    /// to Single-AZ with nothing pending is drift of `multi_az`.
    async fn inspect(&self, aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
        let Some(db_id) = cx.id_of("db") else {
            return Ok(Inspection::unknown());
        };
        let Some(db) = describe_instance(aws, db_id).await? else {
            return Ok(Inspection::missing());
        };
        Ok(inspection_of(&view(&db)))
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, _deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::DbStandby { .. } => settings([("multi_az", "true".to_string())]),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, cx: &NodeCtx<'_>, _outputs: &Outputs) -> Result<Observed, ResourceError> {
        let (db,) = props!(cx, DbStandby { db });
        // The instance's id unknown (its record lost, being found again in this run):
        // nothing is claimed; a setting of an instance is not "deleted outside pi-deploy".
        let Some(id) = cx.deps.get(db.as_str()).and_then(|o| o.get("id")) else {
            return Ok(Observed::Present(Settings::new()));
        };
        Ok(match describe_instance(aws, id).await? {
            Some(db) if db.db_instance_status() != Some("deleting") => {
                let pending = db.pending_modified_values().and_then(|p| p.multi_az());
                let mut s = Settings::new();
                if let Some(v) = live_multi_az(db.multi_az(), pending) {
                    s.insert("multi_az".into(), v);
                }
                Observed::Present(s)
            }
            // The instance is gone: `db` is created again first; the setting follows it.
            _ => Observed::Missing,
        })
    }
    // `update` (Single-AZ again: by hand, or a conversion AWS abandoned) is `converge`,
    // which asks for the conversion again and waits.
}

/// The `status` verdict of one reading (pure).
pub fn inspection_of(now: &Standby) -> Inspection {
    match now {
        Standby::Ready => Inspection::available(),
        Standby::Converting(status) => Inspection::of(Live::Creating).with_detail(format!(
            "converting to Multi-AZ ({status}): the standby is being built, the database serves meanwhile"
        )),
        Standby::Absent => {
            let mut i = Inspection::available().with_detail("Single-AZ, no conversion pending");
            i.drift("multi_az", "true", "false");
            i
        }
        Standby::Broken(status) => Inspection::of(Live::Deleting).with_detail(status.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::diff::diff;

    #[test]
    fn one_describe_tells_ready_converting_absent_or_broken() {
        assert_eq!(standby_of("available", Some(true), None), Standby::Ready);
        // Right after the modify: still Single-AZ, the change pending.
        assert_eq!(
            standby_of("available", Some(false), Some(true)),
            Standby::Converting("available".into())
        );
        assert_eq!(
            standby_of("modifying", Some(false), Some(true)),
            Standby::Converting("modifying".into())
        );
        // Multi-AZ already, not available yet (the end of the conversion, a backup).
        assert_eq!(
            standby_of("modifying", Some(true), None),
            Standby::Converting("modifying".into())
        );
        assert_eq!(standby_of("available", Some(false), None), Standby::Absent);
        assert_eq!(standby_of("backing-up", Some(false), None), Standby::Absent);
        assert_eq!(
            standby_of("storage-full", Some(false), Some(true)),
            Standby::Broken("storage-full".into())
        );
    }

    #[test]
    fn the_wait_ends_on_multi_az_and_names_an_abandoned_conversion() {
        let p = |now, since| standby_poll("pi-db", now, since);
        assert!(matches!(p(Some(Standby::Ready), None), Poll::Ready(())));
        assert!(matches!(
            p(
                Some(Standby::Converting("modifying".into())),
                Some(Duration::from_secs(3000))
            ),
            Poll::Pending(_)
        ));
        // Just asked: a read may not show it yet.
        assert!(matches!(
            p(Some(Standby::Absent), Some(Duration::from_secs(5))),
            Poll::Pending(_)
        ));
        // Long after asking, or found so by a resumed run: AWS abandoned it.
        for since in [Some(ABANDONED_AFTER), None] {
            assert!(
                matches!(p(Some(Standby::Absent), since), Poll::Failed(s) if s.contains("Single-AZ")),
                "{since:?}"
            );
        }
        assert!(matches!(p(None, None), Poll::Failed(s) if s.contains("pi-db")));
        assert!(matches!(
            p(Some(Standby::Broken("failed".into())), None),
            Poll::Failed(_)
        ));
    }

    #[test]
    fn a_conversion_under_way_is_no_change_and_no_drift() {
        let desired = settings([("multi_az", "true".to_string())]);
        let live = |m, p| settings([("multi_az", live_multi_az(m, p).unwrap())]);
        assert!(diff(ATTRS, &desired, &live(Some(false), Some(true)), None).is_empty());
        assert!(diff(ATTRS, &desired, &live(Some(true), None), None).is_empty());
        let c = diff(ATTRS, &desired, &live(Some(false), None), None);
        assert_eq!(
            (c[0].attribute.as_str(), c[0].old.as_str(), c[0].action),
            ("multi_az", "false", ChangeAction::Update)
        );
        let converting = inspection_of(&Standby::Converting("modifying".into()));
        assert!(converting.drift.is_empty());
        assert_eq!(converting.live, Live::Creating);
        assert!(converting.detail.unwrap().contains("converting to Multi-AZ"));
        assert!(inspection_of(&Standby::Ready).drift.is_empty());
        assert_eq!(inspection_of(&Standby::Absent).drift[0].attribute, "multi_az");
    }
}
