//! RDS helpers shared by the database kinds, and the two small ones: the DB subnet group
//! (the two db subnets) and the parameter group (family from the pinned engine version,
//! with the dashboard's three parameters). Both are found by their deterministic names.
//! Their deletes retry while the instance still uses them (the instance is deleted first,
//! but AWS releases the groups a little after the instance is gone).

use async_trait::async_trait;
use aws_sdk_rds::types::{self as t, ApplyMethod, Parameter};

use super::{Aws, ResourceKind, ec2, observe, props};
use crate::aws::{err, tags};
use crate::core::names;
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::Kind;

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

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(observe::exists(describe_subnet_group(aws, outputs.id()?).await?))
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
        let name = names::db_parameter_group(&aws.env.deployment);
        let Some(g) = describe_parameter_group(aws, &name).await? else {
            return Ok(None);
        };
        check_family(&name, g.db_parameter_group_family(), family)?;
        Ok(Some(group_outputs(&name, g.db_parameter_group_arn())))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (family,) = props!(cx, DbParameterGroup { family });
        let name = names::db_parameter_group(&aws.env.deployment);
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

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(observe::exists(describe_parameter_group(aws, outputs.id()?).await?))
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

    #[test]
    fn subnet_sets_compare_without_order() {
        assert!(same_set(&["a".into(), "b".into()], &["b".into(), "a".into()]));
        assert!(!same_set(&["a".into()], &["a".into(), "b".into()]));
    }
}
