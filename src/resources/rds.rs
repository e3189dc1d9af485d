//! RDS helpers shared by the database kinds, and the two small ones: the DB subnet group
//! (the two db subnets) and the parameter group (family from the pinned engine version,
//! with the dashboard's three parameters). Both are found by their deterministic names.
//! Their deletes retry while the instance still uses them (the instance is deleted first,
//! but AWS releases the groups a little after the instance is gone).
//!
//! Day 2, parameter group: `read` returns its family and the user-set values of the
//! parameters pi-deploy manages (`MANAGED`); `update` sets the changed ones with
//! ModifyDBParameterGroup. A parameter the config stops asking for (`require_secure_transport`
//! with `database.require_tls` switched off) is set to its engine default (`ENGINE_DEFAULTS`)
//! rather than reset with ResetDBParameterGroup: the same effect for a dynamic parameter,
//! one call path, and one the emulator serves. A family change (a major engine upgrade) is
//! a create-before-destroy `replace` (the kind opts in): a new group named after its family
//! (`names::db_parameter_group_of`), the instance moved onto it by its own update
//! (db_instance.rs: `parameter_group`, with the engine version), then the old group deleted.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_rds::types::{self as t, ApplyMethod, Parameter};

use super::{Aws, ResourceKind, ec2, props};
use crate::aws::{err, tags};
use crate::core::diff::{AttrSpec, Change, ChangeAction, Settings};
use crate::core::names;
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props};

/// The three tags in RDS's shape.
pub(super) fn rds_tags(deployment: &str, key: &str) -> Vec<t::Tag> {
    tags::pairs(deployment, key)
        .into_iter()
        .map(|(k, v)| t::Tag::builder().key(k).value(v).build())
        .collect()
}

/// The instance, or `None` when RDS does not know it (DBInstanceNotFound).
pub(super) async fn describe_instance(aws: &Aws, identifier: &str) -> Result<Option<t::DbInstance>, ResourceError> {
    let out = aws
        .clients
        .rds
        .describe_db_instances()
        .db_instance_identifier(identifier)
        .send()
        .await
        .map_err(err("describing the DB instance"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.db_instances().first().cloned()))
}

pub struct DbSubnetGroup;

fn subnet_ids(cx: &NodeCtx<'_>) -> Result<Vec<String>, ResourceError> {
    let (subnets,) = props!(cx, DbSubnetGroup { subnets });
    subnets.iter().map(|s| cx.dep_id(s).map(String::from)).collect()
}

/// What `up` changes on a live DB subnet group: its subnets, put back by `converge`
/// (ModifyDBSubnetGroup) when changed by hand.
pub const SUBNET_GROUP_ATTRS: &[AttrSpec] = &[AttrSpec::with(
    "subnets",
    ChangeAction::Update,
    "ModifyDBSubnetGroup puts the deployment's db subnets back",
    &[],
)];

/// The desired settings (pure): the db subnets' ids from `deps`.
pub fn subnet_group_desired(subnets: &[String], deps: &BTreeMap<String, Outputs>) -> Settings {
    crate::core::diff::settings([(
        "subnets",
        crate::core::diff::list(subnets.iter().map(|k| super::dep_output(deps, k, "id"))),
    )])
}

fn subnet_group_live(g: &t::DbSubnetGroup) -> Settings {
    crate::core::diff::settings([(
        "subnets",
        crate::core::diff::list(g.subnets().iter().filter_map(|s| s.subnet_identifier())),
    )])
}

fn group_outputs(name: &str, arn: Option<&str>) -> Outputs {
    Outputs::new().with("id", name).with("arn", arn.unwrap_or_default())
}

async fn describe_subnet_group(aws: &Aws, name: &str) -> Result<Option<t::DbSubnetGroup>, ResourceError> {
    let out = aws
        .clients
        .rds
        .describe_db_subnet_groups()
        .db_subnet_group_name(name)
        .send()
        .await
        .map_err(err("describing the DB subnet group"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.db_subnet_groups().first().cloned()))
}

/// Whether two lists hold the same ids, in any order.
fn same_set(a: &[String], b: &[String]) -> bool {
    let (mut a, mut b) = (a.to_vec(), b.to_vec());
    a.sort();
    b.sort();
    a == b
}

#[async_trait]
impl ResourceKind for DbSubnetGroup {
    async fn find(&self, aws: &Aws, _cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let name = names::db_subnet_group(&aws.env.deployment);
        Ok(describe_subnet_group(aws, &name)
            .await?
            .map(|g| group_outputs(&name, g.db_subnet_group_arn())))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let name = names::db_subnet_group(&aws.env.deployment);
        let created = aws
            .clients
            .rds
            .create_db_subnet_group()
            .db_subnet_group_name(&name)
            .db_subnet_group_description(format!("pi-deploy {}: database subnets", aws.env.deployment))
            .set_subnet_ids(Some(subnet_ids(cx)?))
            .set_tags(Some(rds_tags(&aws.env.deployment, &cx.spec.key)))
            .send()
            .await
            .map_err(err("creating the DB subnet group"));
        match created {
            Ok(out) => {
                // Its subnets, as asked.
                if let Some(g) = out.db_subnet_group() {
                    aws.answers.keep(&name, g.clone());
                }
                Ok(group_outputs(
                    &name,
                    out.db_subnet_group().and_then(|g| g.db_subnet_group_arn()),
                ))
            }
            Err(e) if e.is(ErrorClass::AlreadyExists) => Ok(group_outputs(&name, None)),
            Err(e) => Err(e),
        }
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let name = outputs.id()?.to_string();
        let want = subnet_ids(cx)?;
        let group = match aws.answers.take::<t::DbSubnetGroup>(&name) {
            Some(created) => created,
            None => {
                ec2::retry_not_found("reading the DB subnet group", || async {
                    describe_subnet_group(aws, &name).await?.ok_or_else(|| {
                        ResourceError::new(
                            ErrorClass::NotFound,
                            format!("DB subnet group {name} is not visible yet"),
                        )
                    })
                })
                .await?
            }
        };
        let have: Vec<String> = group
            .subnets()
            .iter()
            .filter_map(|s| s.subnet_identifier().map(String::from))
            .collect();
        if !same_set(&have, &want) {
            aws.clients
                .rds
                .modify_db_subnet_group()
                .db_subnet_group_name(&name)
                .set_subnet_ids(Some(want))
                .send()
                .await
                .map_err(err("putting the db subnets back into the DB subnet group"))?;
        }
        Ok(group_outputs(&name, group.db_subnet_group_arn()))
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        SUBNET_GROUP_ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::DbSubnetGroup { subnets } => subnet_group_desired(subnets, deps),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(match describe_subnet_group(aws, outputs.id()?).await? {
            Some(g) => Observed::Present(subnet_group_live(&g)),
            None => Observed::Missing,
        })
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let name = cx.outputs.id()?;
        ec2::delete_retrying(
            Kind::DbSubnetGroup,
            &format!("deleting DB subnet group {name}"),
            || async {
                aws.clients
                    .rds
                    .delete_db_subnet_group()
                    .db_subnet_group_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(err("deleting the DB subnet group"))
            },
        )
        .await
    }
}

pub struct DbParameterGroup;

/// What `up` changes on a live parameter group. Every parameter but `family` is one that
/// pi-deploy sets (`MANAGED`); the others are left to RDS and whoever tunes them.
pub const PARAMETER_GROUP_ATTRS: &[AttrSpec] = &[
    AttrSpec::with(
        "family",
        ChangeAction::Replace,
        "a parameter group's family cannot change: a new group of the new family, the instance moved onto it, then the old group deleted",
        &["database.engine_version", "database.parameter_group_family"],
    ),
    AttrSpec::with(
        "require_secure_transport",
        ChangeAction::Update,
        "dynamic: new connections without TLS are refused at once, no reboot",
        &["database.require_tls"],
    ),
    AttrSpec::update("sql_mode", &[]),
    AttrSpec::update("log_bin_trust_function_creators", &[]),
    AttrSpec::with(
        "lower_case_table_names",
        ChangeAction::Update,
        "static: takes effect at the instance's next reboot",
        &[],
    ),
];

/// The parameters pi-deploy sets, compared on day 2.
pub const MANAGED: &[&str] = &[
    "require_secure_transport",
    "sql_mode",
    "log_bin_trust_function_creators",
    "lower_case_table_names",
];

/// Parameters the config may leave unset, with the engine's default (MariaDB: OFF) and how
/// it applies: what the group must hold when the config does not set them.
pub const ENGINE_DEFAULTS: &[(&str, &str, &str)] = &[("require_secure_transport", "0", "immediate")];

/// How a managed parameter nobody set reads (RDS lists only user-set ones with Source=user).
pub const NOT_SET: &str = "(engine default)";

/// The desired settings (pure): the family and every managed parameter, from the props or,
/// for one the config leaves unset, its engine default.
pub fn parameter_group_desired(family: &str, params: &[(String, String, String)]) -> Settings {
    let mut s = Settings::new();
    s.insert("family".into(), family.to_string());
    for name in MANAGED {
        let value = params
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, v, _)| v.clone())
            .or_else(|| {
                ENGINE_DEFAULTS
                    .iter()
                    .find(|(n, _, _)| n == name)
                    .map(|(_, v, _)| v.to_string())
            });
        if let Some(v) = value {
            s.insert(name.to_string(), v);
        }
    }
    s
}

/// The live settings (pure) from the group's family and its user-set (name, value) pairs.
/// A managed parameter nobody set holds the engine default, where one is known.
pub fn parameter_group_live(family: &str, user_set: &[(String, String)]) -> Settings {
    let mut s = Settings::new();
    s.insert("family".into(), family.to_string());
    for name in MANAGED {
        let value = user_set
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .or_else(|| {
                ENGINE_DEFAULTS
                    .iter()
                    .find(|(n, _, _)| n == name)
                    .map(|(_, v, _)| v.to_string())
            })
            .unwrap_or_else(|| NOT_SET.to_string());
        s.insert(name.to_string(), value);
    }
    s
}

/// The (name, value, apply method) triples that make the changed parameters what the
/// config says: the props' apply method, or the engine default's.
pub fn parameter_updates(params: &[(String, String, String)], changes: &[Change]) -> Vec<(String, String, String)> {
    changes
        .iter()
        .filter(|c| MANAGED.contains(&c.attribute.as_str()))
        .filter_map(|c| {
            params.iter().find(|(n, _, _)| *n == c.attribute).cloned().or_else(|| {
                ENGINE_DEFAULTS
                    .iter()
                    .find(|(n, _, _)| *n == c.attribute)
                    .map(|(n, v, m)| (n.to_string(), v.to_string(), m.to_string()))
            })
        })
        .collect()
}

/// The group's user-set parameters (Source=user), as (name, value).
async fn user_parameters(aws: &Aws, name: &str) -> Result<Vec<(String, String)>, ResourceError> {
    let params: Vec<Parameter> = aws
        .clients
        .rds
        .describe_db_parameters()
        .db_parameter_group_name(name)
        .source("user")
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(err("reading the DB parameter group's parameters"))?;
    Ok(params
        .iter()
        .filter_map(|p| Some((p.parameter_name()?.to_string(), p.parameter_value()?.to_string())))
        .collect())
}

/// ModifyDBParameterGroup's parameters from the spec's (name, value, apply method) triples.
pub fn parameters(triples: &[(String, String, String)]) -> Vec<Parameter> {
    triples
        .iter()
        .map(|(name, value, method)| {
            Parameter::builder()
                .parameter_name(name)
                .parameter_value(value)
                .apply_method(ApplyMethod::from(method.as_str()))
                .build()
        })
        .collect()
}

async fn describe_parameter_group(aws: &Aws, name: &str) -> Result<Option<t::DbParameterGroup>, ResourceError> {
    let out = aws
        .clients
        .rds
        .describe_db_parameter_groups()
        .db_parameter_group_name(name)
        .send()
        .await
        .map_err(err("describing the DB parameter group"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.db_parameter_groups().first().cloned()))
}

/// A group's family cannot change: one with another family must be replaced by hand.
pub fn check_family(name: &str, found: Option<&str>, want: &str) -> Result<(), ResourceError> {
    match found {
        Some(f) if f != want => Err(ResourceError::new(
            ErrorClass::Invalid,
            format!("DB parameter group {name} has family {f}, but the engine version needs {want}"),
        )
        .with_hint(format!(
            "a parameter group's family cannot change: delete {name} (after moving the instance off it), or pin an engine version of family {f}"
        ))),
        _ => Ok(()),
    }
}

#[async_trait]
impl ResourceKind for DbParameterGroup {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (family,) = props!(cx, DbParameterGroup { family });
        let name = names::db_parameter_group_of(&aws.env.deployment, family);
        let Some(g) = describe_parameter_group(aws, &name).await? else {
            return Ok(None);
        };
        check_family(&name, g.db_parameter_group_family(), family)?;
        Ok(Some(group_outputs(&name, g.db_parameter_group_arn())))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (family,) = props!(cx, DbParameterGroup { family });
        let name = names::db_parameter_group_of(&aws.env.deployment, family);
        let created = aws
            .clients
            .rds
            .create_db_parameter_group()
            .db_parameter_group_name(&name)
            .db_parameter_group_family(family)
            .description(format!("pi-deploy {}: dashboard database settings", aws.env.deployment))
            .set_tags(Some(rds_tags(&aws.env.deployment, &cx.spec.key)))
            .send()
            .await
            .map_err(err("creating the DB parameter group"));
        match created {
            Ok(out) => Ok(group_outputs(
                &name,
                out.db_parameter_group().and_then(|g| g.db_parameter_group_arn()),
            )),
            Err(e) if e.is(ErrorClass::AlreadyExists) => Ok(group_outputs(&name, None)),
            Err(e) => Err(e),
        }
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (parameters_spec,) = props!(cx, DbParameterGroup { parameters });
        let name = outputs.id()?.to_string();
        // Setting a parameter to the value it has is a no-op, so this is safe to repeat.
        ec2::retry_not_found("setting the DB parameters", || async {
            aws.clients
                .rds
                .modify_db_parameter_group()
                .db_parameter_group_name(&name)
                .set_parameters(Some(parameters(parameters_spec)))
                .send()
                .await
                .map(|_| ())
                .map_err(err("setting the DB parameters"))
        })
        .await?;
        Ok(outputs)
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        PARAMETER_GROUP_ATTRS
    }

    /// It holds no data, and its name follows its family (`names::db_parameter_group_of`):
    /// a family change is a create-before-destroy replace.
    fn replaceable(&self) -> bool {
        true
    }

    fn desired(&self, spec: &NodeSpec, _deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::DbParameterGroup { family, parameters } => parameter_group_desired(family, parameters),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let name = outputs.id()?;
        let Some(group) = describe_parameter_group(aws, name).await? else {
            return Ok(Observed::Missing);
        };
        let user_set = user_parameters(aws, name).await?;
        let family = group.db_parameter_group_family().unwrap_or_default();
        Ok(Observed::Present(parameter_group_live(family, &user_set)))
    }

    async fn update(
        &self,
        aws: &Aws,
        cx: &NodeCtx<'_>,
        outputs: Outputs,
        changes: &[Change],
    ) -> Result<Outputs, ResourceError> {
        let (parameters_spec,) = props!(cx, DbParameterGroup { parameters });
        let updates = parameter_updates(parameters_spec, changes);
        if updates.is_empty() {
            return Ok(outputs);
        }
        // Setting a parameter to the value it has is a no-op: safe to repeat after a crash.
        aws.clients
            .rds
            .modify_db_parameter_group()
            .db_parameter_group_name(outputs.id()?)
            .set_parameters(Some(parameters(&updates)))
            .send()
            .await
            .map_err(err("changing the DB parameters"))?;
        Ok(outputs)
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let name = cx.outputs.id()?;
        ec2::delete_retrying(
            Kind::DbParameterGroup,
            &format!("deleting DB parameter group {name}"),
            || async {
                aws.clients
                    .rds
                    .delete_db_parameter_group()
                    .db_parameter_group_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(err("deleting the DB parameter group"))
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_db_subnet_group_changed_by_hand_is_an_update_back_to_the_db_subnets() {
        let deps: BTreeMap<String, Outputs> = [("db-a", "subnet-1"), ("db-b", "subnet-2")]
            .into_iter()
            .map(|(k, id)| (k.to_string(), Outputs::new().with("id", id)))
            .collect();
        let want = subnet_group_desired(&["db-b".into(), "db-a".into()], &deps);
        let group = |ids: &[&str]| {
            t::DbSubnetGroup::builder()
                .set_subnets(Some(
                    ids.iter()
                        .map(|id| t::Subnet::builder().subnet_identifier(*id).build())
                        .collect(),
                ))
                .build()
        };
        let diff =
            |ids: &[&str]| crate::core::diff::diff(SUBNET_GROUP_ATTRS, &want, &subnet_group_live(&group(ids)), None);
        assert!(diff(&["subnet-2", "subnet-1"]).is_empty(), "order does not matter");
        let c = diff(&["subnet-1", "subnet-9"]);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].attribute.as_str(), c[0].old.as_str(), c[0].new.as_str()),
            ("subnets", "subnet-1, subnet-9", "subnet-1, subnet-2")
        );
        assert_eq!(c[0].action, ChangeAction::Update);
    }

    #[test]
    fn parameters_keep_their_apply_methods() {
        let p = parameters(&[
            ("sql_mode".into(), "NO_AUTO_VALUE_ON_ZERO".into(), "immediate".into()),
            ("lower_case_table_names".into(), "1".into(), "pending-reboot".into()),
        ]);
        assert_eq!(p[0].parameter_name(), Some("sql_mode"));
        assert_eq!(p[0].parameter_value(), Some("NO_AUTO_VALUE_ON_ZERO"));
        assert_eq!(p[0].apply_method(), Some(&ApplyMethod::Immediate));
        assert_eq!(p[1].apply_method(), Some(&ApplyMethod::PendingReboot));
    }

    #[test]
    fn a_parameter_group_of_another_family_is_refused_with_a_hint() {
        assert!(check_family("pi-db-params", Some("mariadb10.11"), "mariadb10.11").is_ok());
        assert!(check_family("pi-db-params", None, "mariadb10.11").is_ok());
        let e = check_family("pi-db-params", Some("mariadb10.6"), "mariadb10.11").unwrap_err();
        assert!(
            e.message.contains("mariadb10.6") && e.message.contains("mariadb10.11"),
            "{e}"
        );
        assert!(e.hint.is_some());
    }

    fn triples(tls: bool) -> Vec<(String, String, String)> {
        let mut p = vec![
            ("sql_mode".into(), "NO_AUTO_VALUE_ON_ZERO".into(), "immediate".into()),
            ("lower_case_table_names".into(), "1".into(), "pending-reboot".into()),
            ("log_bin_trust_function_creators".into(), "1".into(), "immediate".into()),
        ];
        if tls {
            p.push(("require_secure_transport".into(), "1".into(), "immediate".into()));
        }
        p
    }

    fn user_set(tls: Option<&str>) -> Vec<(String, String)> {
        let mut u: Vec<(String, String)> = triples(false).into_iter().map(|(n, v, _)| (n, v)).collect();
        if let Some(v) = tls {
            u.push(("require_secure_transport".into(), v.into()));
        }
        // A parameter someone tuned by hand is not pi-deploy's: never compared.
        u.push(("max_connections".into(), "500".into()));
        u
    }

    fn plan(tls: bool, live: &Settings) -> Vec<Change> {
        crate::core::diff::diff(
            PARAMETER_GROUP_ATTRS,
            &parameter_group_desired("mariadb10.11", &triples(tls)),
            live,
            None,
        )
    }

    #[test]
    fn require_tls_on_sets_the_parameter_and_off_sets_the_engine_default() {
        let created_before_tls = parameter_group_live("mariadb10.11", &user_set(None));
        assert!(
            plan(false, &created_before_tls).is_empty(),
            "unset is the engine default: OFF"
        );
        let on = plan(true, &created_before_tls);
        assert_eq!(on.len(), 1);
        assert_eq!(
            (
                on[0].attribute.as_str(),
                on[0].old.as_str(),
                on[0].new.as_str(),
                on[0].action
            ),
            ("require_secure_transport", "0", "1", ChangeAction::Update)
        );
        assert_eq!(on[0].fields, vec!["database.require_tls".to_string()]);
        assert_eq!(
            parameter_updates(&triples(true), &on),
            vec![("require_secure_transport".into(), "1".into(), "immediate".into())]
        );
        let with_tls = parameter_group_live("mariadb10.11", &user_set(Some("1")));
        assert!(plan(true, &with_tls).is_empty());
        let off = plan(false, &with_tls);
        assert_eq!((off[0].old.as_str(), off[0].new.as_str()), ("1", "0"));
        assert_eq!(
            parameter_updates(&triples(false), &off),
            vec![("require_secure_transport".into(), "0".into(), "immediate".into())]
        );
        // Set to 0 explicitly (after switching off): the same as unset.
        assert!(plan(false, &parameter_group_live("mariadb10.11", &user_set(Some("0")))).is_empty());
    }

    #[test]
    fn a_lost_parameter_is_set_again_with_its_apply_method_and_a_family_change_is_a_replace() {
        let mut u = user_set(None);
        u.retain(|(n, _)| n != "lower_case_table_names");
        let c = plan(false, &parameter_group_live("mariadb10.11", &u));
        assert_eq!(
            (c[0].attribute.as_str(), c[0].old.as_str(), c[0].new.as_str()),
            ("lower_case_table_names", NOT_SET, "1")
        );
        assert_eq!(
            parameter_updates(&triples(false), &c),
            vec![("lower_case_table_names".into(), "1".into(), "pending-reboot".into())]
        );
        let other = plan(false, &parameter_group_live("mariadb10.6", &user_set(None)));
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].action, ChangeAction::Replace);
        assert!(parameter_updates(&triples(false), &other).is_empty(), "never an update");
    }

    #[test]
    fn subnet_sets_compare_without_order() {
        assert!(same_set(&["a".into(), "b".into()], &["b".into(), "a".into()]));
        assert!(!same_set(&["a".into()], &["a".into(), "b".into()]));
    }
}
