//! The instance profile that hands the dashboard role to EC2. The name is deterministic
//! (`names::instance_profile`), so `find` is a GetInstanceProfile; a profile of that name
//! without this deployment's tags is never adopted. The role goes in with a separate call
//! (AddRoleToInstanceProfile), converged: added only when missing, a foreign role removed.
//!
//! IAM is eventually consistent: the profile can be unknown to EC2 and Auto Scaling for up to
//! a couple of minutes after this returns. Its users (the Auto Scaling group) retry
//! `ErrorClass::IamPropagation` themselves.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_iam::types::{InstanceProfile as Profile, Tag};

use super::{Aws, ResourceKind, dep_output, ec2, observe, props};
use crate::aws::{err, tags};
use crate::core::diff::{self, AttrSpec, Settings, settings};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props};

pub struct InstanceProfile;

fn iam_tags(deployment: &str, key: &str) -> Result<Vec<Tag>, ResourceError> {
    tags::pairs(deployment, key)
        .into_iter()
        .map(|(k, v)| {
            Tag::builder()
                .key(k)
                .value(v)
                .build()
                .map_err(|e| ResourceError::new(ErrorClass::Invalid, format!("building an IAM tag: {e}")))
        })
        .collect()
}

fn is_ours(tags: &[Tag], deployment: &str, key: &str) -> bool {
    let has = |k: &str, v: &str| tags.iter().any(|t| t.key() == k && t.value() == v);
    has(tags::DEPLOYMENT_TAG, deployment) && has(tags::KEY_TAG, key)
}

fn outputs_of(p: &Profile) -> Outputs {
    Outputs::new()
        .with("id", p.instance_profile_name())
        .with("arn", p.arn())
}

/// Day 2: the roles it holds. A role deleted by hand leaves the profile empty; once the role
/// is created again, `converge` puts it back.
const ATTRS: &[AttrSpec] = &[AttrSpec::update("role", &[])];

fn live_settings(p: &Profile) -> Settings {
    settings([("role", diff::list(p.roles().iter().map(|r| r.role_name())))])
}

/// What to change so that the profile holds exactly `role`: (add it?, roles to remove).
fn role_changes(current: &[String], role: &str) -> (bool, Vec<String>) {
    let add = !current.iter().any(|r| r == role);
    let remove = current.iter().filter(|r| *r != role).cloned().collect();
    (add, remove)
}

async fn get(aws: &Aws, name: &str) -> Result<Option<Profile>, ResourceError> {
    let out = aws
        .clients
        .iam
        .get_instance_profile()
        .instance_profile_name(name)
        .send()
        .await
        .map_err(err("reading the instance profile"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.instance_profile().cloned()))
}

fn foreign(name: &str) -> ResourceError {
    ResourceError::new(
        ErrorClass::AlreadyExists,
        format!("an instance profile named {name} exists but does not belong to this deployment"),
    )
    .with_hint("choose another deployment name, or delete that instance profile if it is a leftover")
}

#[async_trait]
impl ResourceKind for InstanceProfile {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (name,) = props!(cx, InstanceProfile { name });
        let Some(profile) = get(aws, name).await? else {
            return Ok(None);
        };
        // GetInstanceProfile returns the tags (ListInstanceProfileTags is not needed).
        if !is_ours(profile.tags(), &aws.env.deployment, &cx.spec.key) {
            return Err(foreign(name));
        }
        Ok(Some(outputs_of(&profile)))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (name,) = props!(cx, InstanceProfile { name });
        let out = aws
            .clients
            .iam
            .create_instance_profile()
            .instance_profile_name(name)
            .set_tags(Some(iam_tags(&aws.env.deployment, &cx.spec.key)?))
            .send()
            .await;
        match out {
            Ok(o) => match o.instance_profile() {
                Some(p) => {
                    // A new profile: no role yet.
                    aws.answers.keep(p.instance_profile_name(), p.clone());
                    Ok(outputs_of(p))
                }
                None => Err(ResourceError::new(
                    ErrorClass::Other,
                    "CreateInstanceProfile returned no profile",
                )),
            },
            // A create that succeeded but whose answer was lost: adopt it if it is ours.
            Err(e) => {
                let e = crate::aws::sdk("creating the instance profile", e);
                if !e.is(ErrorClass::AlreadyExists) {
                    return Err(e);
                }
                self.find(aws, cx).await?.ok_or(e)
            }
        }
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (name, role_key) = props!(cx, InstanceProfile { name, role });
        let role = cx.dep_id(role_key)?;
        // Right after CreateInstanceProfile, IAM may not know the name yet.
        let profile = match aws.answers.take::<Profile>(name) {
            Some(created) => created,
            None => {
                ec2::retry_not_found("reading the new instance profile", || async {
                    get(aws, name).await?.ok_or_else(|| {
                        ResourceError::new(
                            ErrorClass::NotFound,
                            format!("instance profile {name} is not visible yet"),
                        )
                    })
                })
                .await?
            }
        };
        let current: Vec<String> = profile.roles().iter().map(|r| r.role_name().to_string()).collect();
        let (add, remove) = role_changes(&current, role);
        let iam = &aws.clients.iam;
        for other in &remove {
            iam.remove_role_from_instance_profile()
                .instance_profile_name(name)
                .role_name(other)
                .send()
                .await
                .map_err(err("removing a foreign role from the instance profile"))?;
        }
        if add {
            // The role was just created: IAM may not see it yet.
            ec2::retry_not_found("adding the role to the instance profile", || async {
                iam.add_role_to_instance_profile()
                    .instance_profile_name(name)
                    .role_name(role)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(err("adding the role to the instance profile"))
            })
            .await?;
        }
        Ok(outputs.with("arn", profile.arn()).with("role", role))
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::InstanceProfile { role, .. } => settings([("role", dep_output(deps, role, "id"))]),
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(observe::observed(get(aws, outputs.id()?).await?, |p| live_settings(&p)))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let name = cx.outputs.id()?;
        let Some(profile) = get(aws, name).await? else {
            return Ok(());
        };
        let iam = &aws.clients.iam;
        for role in profile.roles() {
            let r = iam
                .remove_role_from_instance_profile()
                .instance_profile_name(name)
                .role_name(role.role_name())
                .send()
                .await
                .map_err(err("removing the role from the instance profile"));
            ec2::not_found_is_none(r)?;
        }
        ec2::delete_retrying(
            Kind::InstanceProfile,
            &format!("deleting instance profile {name}"),
            || async {
                iam.delete_instance_profile()
                    .instance_profile_name(name)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(err("deleting the instance profile"))
            },
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_profile_emptied_by_a_role_deletion_is_an_update() {
        let want = settings([("role", "pi-ec2".to_string())]);
        let empty = settings([("role", diff::list(Vec::<String>::new()))]);
        let changes = diff::diff(ATTRS, &want, &empty, None);
        assert_eq!((changes[0].old.as_str(), changes[0].new.as_str()), ("-", "pi-ec2"));
        assert_eq!(changes[0].action, diff::ChangeAction::Update);
        assert!(diff::diff(ATTRS, &want, &settings([("role", diff::list(["pi-ec2"]))]), None).is_empty());
    }

    #[test]
    fn the_profile_ends_up_holding_exactly_our_role() {
        assert_eq!(role_changes(&[], "r"), (true, vec![]));
        assert_eq!(role_changes(&["r".into()], "r"), (false, vec![]));
        assert_eq!(role_changes(&["other".into()], "r"), (true, vec!["other".to_string()]));
    }

    #[test]
    fn tags_decide_ownership() {
        let t = iam_tags("pi", "instance-profile").unwrap();
        assert!(is_ours(&t, "pi", "instance-profile"));
        assert!(!is_ours(&t, "pi2", "instance-profile"));
        assert!(!is_ours(&[], "pi", "instance-profile"));
    }
}
