//! An IAM role for one AWS service, with AWS-managed policies attached and one inline
//! policy built from its dependencies' ARNs (`core::policy`).
//!
//! The name is deterministic (`names::lambda_role` / `names::ec2_role`), so `find` is a
//! GetRole; a role of that name without this deployment's tags is never adopted. IAM is
//! eventually consistent: calls right after CreateRole may see NoSuchEntity, which is
//! retried briefly; services that use the role retry their own propagation errors.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_iam::types::{Role, Tag};
use serde_json::Value;

use super::{Aws, ResourceKind, ec2, props};
use crate::aws::wait::{self, Backoff, Poll};
use crate::aws::{err, tags};
use crate::core::diff::{AttrSpec, Settings, settings};
use crate::core::latency;
use crate::core::names;
use crate::core::policy::{self, ArnScope};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props, RolePolicy};

pub struct IamRole;

/// The one inline policy pi-deploy manages on each role.
pub const INLINE_POLICY: &str = "pi-deploy";

/// The trust policy and the inline policy are pi-deploy's documents, which depend on the
/// account (and the dependencies' ARNs) that `desired` (pure) does not know: `read`
/// compares the documents and answers `OURS` or `OTHER`; `up` puts them back (converge).
pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::update("trust_policy", &[]),
    AttrSpec::update("inline_policy", &[]),
];
/// A policy that is pi-deploy's document.
pub const OURS: &str = "pi-deploy's";
/// Any other document, or none.
pub const OTHER: &str = "another document";

fn label(ours: bool) -> String {
    if ours { OURS } else { OTHER }.to_string()
}

fn scope(aws: &Aws) -> ArnScope<'_> {
    ArnScope {
        partition: &aws.env.partition,
        region: &aws.env.region,
        account: &aws.env.account_id,
    }
}

/// The inline policy document for `which`, from the dependencies' recorded ARNs.
pub fn inline_policy(
    scope: &ArnScope<'_>,
    deployment: &str,
    which: RolePolicy,
    cx: &NodeCtx<'_>,
) -> Result<Value, ResourceError> {
    Ok(match which {
        RolePolicy::SideloadLambda => policy::sideload_lambda(
            scope,
            cx.dep("bucket")?.require("arn")?,
            cx.dep("efs")?.require("arn")?,
            // The access point narrows the mount to it when the spec orders the role after it.
            cx.deps.get("efs-ap").and_then(|o| o.get("arn")),
            &names::lambda_log_group(deployment),
        ),
        RolePolicy::DashboardEc2 => {
            let doc = policy::dashboard_ec2(
                scope,
                deployment,
                cx.dep("db")?.require("secret_arn")?,
                match cx.deps.get("licence-secret") {
                    Some(o) => Some(o.id()?),
                    None => None,
                },
                &names::asg(deployment),
            );
            // A restore in progress keeps the other database's secret readable too.
            match cx.dep("db")?.get(crate::core::restore::KEPT_SECRET) {
                Some(kept) => policy::with_kept_db_secret(doc, kept),
                None => doc,
            }
        }
    })
}

/// IAM returns policy documents URL-encoded (RFC 3986); decode `%XX`, leave the rest.
fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a document AWS returned says the same as ours (key order and spacing aside).
fn same_document(returned: Option<&str>, desired: &Value) -> bool {
    returned
        .and_then(|d| serde_json::from_str::<Value>(&url_decode(d)).ok())
        .is_some_and(|v| &v == desired)
}

/// (to attach, to detach) for the managed policies.
fn managed_diff(desired: &[String], attached: &[String]) -> (Vec<String>, Vec<String>) {
    let attach = desired.iter().filter(|d| !attached.contains(d)).cloned().collect();
    let detach = attached.iter().filter(|a| !desired.contains(a)).cloned().collect();
    (attach, detach)
}

fn iam_tags(deployment: &str, key: &str) -> Result<Vec<Tag>, ResourceError> {
    tags::pairs(deployment, key)
        .into_iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| ResourceError::new(ErrorClass::Invalid, format!("building a tag: {e}")))
        })
        .collect()
}

fn is_ours(role: &Role, deployment: &str, key: &str) -> bool {
    let has = |k: &str, v: &str| role.tags().iter().any(|t| t.key() == k && t.value() == v);
    has(tags::DEPLOYMENT_TAG, deployment) && has(tags::KEY_TAG, key)
}

fn outputs_of(role: &Role) -> Outputs {
    Outputs::new().with("id", role.role_name()).with("arn", role.arn())
}

async fn get_role(aws: &Aws, name: &str) -> Result<Option<Role>, ResourceError> {
    let out = aws
        .clients
        .iam
        .get_role()
        .role_name(name)
        .send()
        .await
        .map_err(err("reading the IAM role"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.role().cloned()))
}

/// The role of that name: `Ok(None)` when there is none, `Err(name)` when it is not ours.
async fn lookup(aws: &Aws, key: &str, name: &str) -> Result<Result<Option<Outputs>, ResourceError>, ResourceError> {
    Ok(match get_role(aws, name).await? {
        None => Ok(None),
        Some(r) if is_ours(&r, &aws.env.deployment, key) => Ok(Some(outputs_of(&r))),
        Some(_) => Err(ResourceError::new(
            ErrorClass::AlreadyExists,
            format!("an IAM role named `{name}` exists without this deployment's tags"),
        )
        .with_code("EntityAlreadyExists")
        .with_hint(
            "another tool or deployment owns that name: delete or rename that role, or choose another deployment name",
        )),
    })
}

async fn attached_policies(aws: &Aws, name: &str) -> Result<Vec<String>, ResourceError> {
    let found = aws
        .clients
        .iam
        .list_attached_role_policies()
        .role_name(name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(err("listing the role's managed policies"))?;
    Ok(found.iter().filter_map(|p| p.policy_arn().map(String::from)).collect())
}

async fn inline_policies(aws: &Aws, name: &str) -> Result<Vec<String>, ResourceError> {
    aws.clients
        .iam
        .list_role_policies()
        .role_name(name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(err("listing the role's inline policies"))
}

/// Already detached / removed counts as done.
fn gone_is_ok(r: Result<(), ResourceError>) -> Result<(), ResourceError> {
    match r {
        Err(e) if e.is(ErrorClass::NotFound) => Ok(()),
        other => other,
    }
}

async fn converge_trust(aws: &Aws, role: &Role, service: &str) -> Result<(), ResourceError> {
    let desired = policy::trust_policy(service, &aws.env.account_id);
    if same_document(role.assume_role_policy_document(), &desired) {
        return Ok(());
    }
    aws.clients
        .iam
        .update_assume_role_policy()
        .role_name(role.role_name())
        .policy_document(desired.to_string())
        .send()
        .await
        .map(|_| ())
        .map_err(err("updating the role's trust policy"))
}

/// `fresh`: the role was just created by this process, so nothing is attached yet.
async fn converge_managed(aws: &Aws, name: &str, wanted: &[String], fresh: bool) -> Result<(), ResourceError> {
    let desired: Vec<String> = wanted
        .iter()
        .map(|p| policy::managed_policy_arn(&aws.env.partition, p))
        .collect();
    let attached = if fresh {
        Vec::new()
    } else {
        attached_policies(aws, name).await?
    };
    let (attach, detach) = managed_diff(&desired, &attached);
    for arn in &attach {
        aws.clients
            .iam
            .attach_role_policy()
            .role_name(name)
            .policy_arn(arn)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let e = crate::aws::sdk(format!("attaching {arn}"), e);
                if e.is(ErrorClass::NotFound) {
                    e.with_hint("the AWS-managed policy does not exist in this partition (an emulator needs MOTO_IAM_LOAD_MANAGED_POLICIES=true)")
                } else {
                    e
                }
            })?;
    }
    for arn in &detach {
        gone_is_ok(
            aws.clients
                .iam
                .detach_role_policy()
                .role_name(name)
                .policy_arn(arn)
                .send()
                .await
                .map(|_| ())
                .map_err(err("detaching a managed policy that is not wanted")),
        )?;
    }
    Ok(())
}

/// Ours is put (PutRolePolicy replaces it whole); inline policies someone else added go.
/// `fresh`: the role was just created by this process, so it has no other inline policy.
async fn converge_inline(aws: &Aws, name: &str, document: &Value, fresh: bool) -> Result<(), ResourceError> {
    aws.clients
        .iam
        .put_role_policy()
        .role_name(name)
        .policy_name(INLINE_POLICY)
        .policy_document(document.to_string())
        .send()
        .await
        .map_err(err("putting the role's inline policy"))?;
    let others = if fresh {
        Vec::new()
    } else {
        inline_policies(aws, name).await?
    };
    for other in others.iter().filter(|p| p.as_str() != INLINE_POLICY) {
        gone_is_ok(
            aws.clients
                .iam
                .delete_role_policy()
                .role_name(name)
                .policy_name(other)
                .send()
                .await
                .map(|_| ())
                .map_err(err("deleting an inline policy that is not wanted")),
        )?;
    }
    Ok(())
}

/// Everything DeleteRole refuses to delete past: profiles, managed and inline policies.
async fn strip(aws: &Aws, name: &str) -> Result<(), ResourceError> {
    let iam = &aws.clients.iam;
    let profiles = iam
        .list_instance_profiles_for_role()
        .role_name(name)
        .into_paginator()
        .items()
        .send()
        .try_collect()
        .await
        .map_err(err("listing the role's instance profiles"))?;
    for p in &profiles {
        gone_is_ok(
            iam.remove_role_from_instance_profile()
                .role_name(name)
                .instance_profile_name(p.instance_profile_name())
                .send()
                .await
                .map(|_| ())
                .map_err(err("removing the role from its instance profile")),
        )?;
    }
    for arn in attached_policies(aws, name).await? {
        gone_is_ok(
            iam.detach_role_policy()
                .role_name(name)
                .policy_arn(&arn)
                .send()
                .await
                .map(|_| ())
                .map_err(err("detaching a managed policy")),
        )?;
    }
    for policy in inline_policies(aws, name).await? {
        gone_is_ok(
            iam.delete_role_policy()
                .role_name(name)
                .policy_name(&policy)
                .send()
                .await
                .map(|_| ())
                .map_err(err("deleting an inline policy")),
        )?;
    }
    Ok(())
}

#[async_trait]
impl ResourceKind for IamRole {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (name,) = props!(cx, IamRole { name });
        // A role of that name that is not ours is not found here (so `destroy` never
        // touches it); `create` then reports the clash.
        Ok(lookup(aws, &cx.spec.key, name).await?.unwrap_or(None))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (name, service) = props!(cx, IamRole { name, service });
        let r = aws
            .clients
            .iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(policy::trust_policy(service, &aws.env.account_id).to_string())
            .description(format!("pi-deploy {}: {}", aws.env.deployment, cx.spec.key))
            .set_tags(Some(iam_tags(&aws.env.deployment, &cx.spec.key)?))
            .send()
            .await
            .map_err(err("creating the IAM role"));
        match r {
            Ok(out) => {
                let role = out
                    .role()
                    .ok_or_else(|| ResourceError::new(ErrorClass::Other, "CreateRole returned no role"))?;
                // A new role: the trust policy asked for, no policy attached or inline yet.
                aws.answers.keep(role.role_name(), role.clone());
                Ok(outputs_of(role))
            }
            // Created by a run that died before recording it (and a find that raced it).
            Err(e) if e.is(ErrorClass::AlreadyExists) => lookup(aws, &cx.spec.key, name).await??.ok_or(e),
            Err(e) => Err(e),
        }
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (service, managed_policies, which) = props!(
            cx,
            IamRole {
                service,
                managed_policies,
                policy
            }
        );
        let name = outputs.id()?.to_string();
        let document = inline_policy(&scope(aws), &aws.env.deployment, *which, cx)?;
        let created = aws.answers.take::<Role>(&name);
        let fresh = created.is_some();
        let role = match created {
            Some(role) => role,
            None => {
                let role = ec2::retry_not_found("reading the new IAM role", || async {
                    get_role(aws, &name).await?.ok_or_else(|| {
                        ResourceError::new(ErrorClass::NotFound, format!("IAM role {name} is not visible yet"))
                    })
                })
                .await?;
                converge_trust(aws, &role, service).await?;
                role
            }
        };
        ec2::retry_not_found("attaching the role's managed policies", || {
            converge_managed(aws, &name, managed_policies, fresh)
        })
        .await?;
        ec2::retry_not_found("putting the role's inline policy", || {
            converge_inline(aws, &name, &document, fresh)
        })
        .await?;
        Ok(outputs_of(&role))
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, _deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::IamRole { .. } => settings([("trust_policy", label(true)), ("inline_policy", label(true))]),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let (service, which) = props!(cx, IamRole { service, policy });
        let name = outputs.id()?;
        let Some(role) = get_role(aws, name).await? else {
            return Ok(Observed::Missing);
        };
        let trust = same_document(
            role.assume_role_policy_document(),
            &policy::trust_policy(service, &aws.env.account_id),
        );
        let mut live = settings([("trust_policy", label(trust))]);
        // Without the dependencies' ARNs (not recorded yet) the document is unknown: not compared.
        if let Ok(document) = inline_policy(&scope(aws), &aws.env.deployment, *which, cx) {
            let got = aws
                .clients
                .iam
                .get_role_policy()
                .role_name(name)
                .policy_name(INLINE_POLICY)
                .send()
                .await
                .map_err(err("reading the role's inline policy"));
            let got = ec2::not_found_is_none(got)?;
            let ours = got.is_some_and(|g| same_document(Some(g.policy_document()), &document));
            live.insert("inline_policy".into(), label(ours));
        }
        Ok(Observed::Present(live))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let name = cx.outputs.id()?;
        // DeleteConflict while something is still attached (e.g. a profile being created by
        // a concurrent run): strip again and retry within the budget.
        ec2::delete_retrying(Kind::IamRole, &format!("deleting IAM role {name}"), || async {
            strip(aws, name).await?;
            aws.clients
                .iam
                .delete_role()
                .role_name(name)
                .send()
                .await
                .map(|_| ())
                .map_err(err("deleting the IAM role"))
        })
        .await?;
        wait::wait_for(
            &format!("IAM role {name} to be gone"),
            latency::delete_deadline(Kind::IamRole),
            Backoff::QUICK,
            || async {
                Ok(match get_role(aws, name).await? {
                    None => Poll::Ready(()),
                    Some(_) => Poll::Pending("still listed".into()),
                })
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::core::spec::{NodeSpec, Props};

    #[test]
    fn an_inline_policy_that_says_something_else_differs_and_an_unknown_one_claims_nothing() {
        let ours = serde_json::json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": ["arn:aws:s3:::b/*"]}]});
        let encoded = "%7B%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Action%22%3A%5B%22s3%3AGetObject%22%5D%2C%22Resource%22%3A%5B%22arn%3Aaws%3As3%3A%3A%3Ab%2F%2A%22%5D%7D%5D%2C%22Version%22%3A%222012-10-17%22%7D";
        let verdict =
            |returned: Option<&str>, desired: Option<&Value>| desired.map(|d| label(same_document(returned, d)));
        assert_eq!(verdict(Some(encoded), Some(&ours)).as_deref(), Some(OURS));
        // An older document (without the outcome-tag statement), none at all: put again.
        let mut newer = ours.clone();
        newer["Statement"].as_array_mut().unwrap().push(
            serde_json::json!({"Effect": "Allow", "Action": ["s3:PutObjectTagging"], "Resource": ["arn:aws:s3:::b/*"]}),
        );
        assert_eq!(verdict(Some(encoded), Some(&newer)).as_deref(), Some(OTHER));
        assert_eq!(verdict(None, Some(&ours)).as_deref(), Some(OTHER));
        // The desired document is not known (a dependency not recorded): nothing claimed.
        assert_eq!(verdict(Some(encoded), None), None);
    }

    const SCOPE: ArnScope<'static> = ArnScope {
        partition: "aws",
        region: "eu-west-1",
        account: "123456789012",
    };

    fn spec(which: RolePolicy) -> NodeSpec {
        NodeSpec {
            key: "role".into(),
            kind: Kind::IamRole,
            deps: vec![],
            props: Props::IamRole {
                name: "r".into(),
                service: "s".into(),
                managed_policies: vec![],
                policy: which,
            },
        }
    }

    fn deps(pairs: &[(&str, &[(&str, &str)])]) -> BTreeMap<String, Outputs> {
        pairs
            .iter()
            .map(|(k, outs)| {
                let mut o = Outputs::new();
                for (n, v) in *outs {
                    o.set(n, *v);
                }
                (k.to_string(), o)
            })
            .collect()
    }

    #[test]
    fn url_encoded_documents_compare_equal_to_ours() {
        let ours = policy::trust_policy("lambda.amazonaws.com", "123456789012");
        let encoded: String = ours
            .to_string()
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        assert!(same_document(Some(&encoded), &ours));
        assert!(same_document(Some(&ours.to_string()), &ours));
        assert!(!same_document(
            Some(&policy::trust_policy("ec2.amazonaws.com", "123456789012").to_string()),
            &ours
        ));
        assert!(!same_document(None, &ours));
        assert!(!same_document(Some("%7Bnot json"), &ours));
    }

    #[test]
    fn url_decode_keeps_a_trailing_percent() {
        assert_eq!(url_decode("a%2Fb%"), "a/b%");
        assert_eq!(url_decode("%2"), "%2");
        assert_eq!(url_decode("%C3%A9"), "é");
    }

    #[test]
    fn managed_policies_not_wanted_are_detached() {
        let desired = vec![
            "arn:aws:iam::aws:policy/A".to_string(),
            "arn:aws:iam::aws:policy/B".to_string(),
        ];
        let attached = vec![
            "arn:aws:iam::aws:policy/B".to_string(),
            "arn:aws:iam::aws:policy/Admin".to_string(),
        ];
        let (attach, detach) = managed_diff(&desired, &attached);
        assert_eq!(attach, ["arn:aws:iam::aws:policy/A"]);
        assert_eq!(detach, ["arn:aws:iam::aws:policy/Admin"]);
    }

    #[test]
    fn sideload_policy_comes_from_the_bucket_file_system_and_access_point() {
        let spec = spec(RolePolicy::SideloadLambda);
        let d = deps(&[
            ("bucket", &[("id", "b"), ("arn", "arn:aws:s3:::b")]),
            (
                "efs",
                &[
                    ("id", "fs-1"),
                    (
                        "arn",
                        "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-1",
                    ),
                ],
            ),
            (
                "efs-ap",
                &[
                    ("id", "fsap-1"),
                    (
                        "arn",
                        "arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-1",
                    ),
                ],
            ),
        ]);
        let cx = NodeCtx {
            spec: &spec,
            deps: &d,
            token: "t",
        };
        let doc = inline_policy(&SCOPE, "pi", RolePolicy::SideloadLambda, &cx).unwrap();
        let expected = policy::sideload_lambda(
            &SCOPE,
            "arn:aws:s3:::b",
            "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-1",
            Some("arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-1"),
            "/aws/lambda/pi-sideload",
        );
        assert_eq!(doc, expected);
    }

    #[test]
    fn dashboard_policy_reads_the_db_secret_arn_and_the_licence_when_present() {
        let spec = spec(RolePolicy::DashboardEc2);
        let db = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1";
        let lic = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pi-deploy/pi/licence-x";
        let with_licence = deps(&[
            ("db", &[("id", "pi-db"), ("secret_arn", db)]),
            ("licence-secret", &[("id", lic)]),
        ]);
        let cx = NodeCtx {
            spec: &spec,
            deps: &with_licence,
            token: "t",
        };
        let doc = inline_policy(&SCOPE, "pi", RolePolicy::DashboardEc2, &cx).unwrap();
        assert_eq!(doc, policy::dashboard_ec2(&SCOPE, "pi", db, Some(lic), "pi-dashboard"));

        let without = deps(&[("db", &[("id", "pi-db"), ("secret_arn", db)])]);
        let cx = NodeCtx {
            spec: &spec,
            deps: &without,
            token: "t",
        };
        let doc = inline_policy(&SCOPE, "pi", RolePolicy::DashboardEc2, &cx).unwrap();
        assert_eq!(doc, policy::dashboard_ec2(&SCOPE, "pi", db, None, "pi-dashboard"));
    }

    #[test]
    fn a_missing_arn_is_an_error_not_a_wildcard() {
        let spec = spec(RolePolicy::DashboardEc2);
        let d = deps(&[("db", &[("id", "pi-db")])]);
        let cx = NodeCtx {
            spec: &spec,
            deps: &d,
            token: "t",
        };
        let e = inline_policy(&SCOPE, "pi", RolePolicy::DashboardEc2, &cx).unwrap_err();
        assert!(e.message.contains("secret_arn"), "{e}");
    }
}
