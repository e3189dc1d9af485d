//! The statement in the Lambda's resource policy that lets S3 invoke it: principal
//! `s3.amazonaws.com`, only for our bucket (SourceArn) in our account (SourceAccount, so
//! a bucket of the same name in another account after ours is deleted cannot invoke it).
//!
//! No AWS object of its own: found by its statement id in GetPolicy. Some emulators accept
//! a duplicate statement id, so find-before-create is what keeps it single.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::Value;

use super::{Aws, ResourceKind, ec2, observe, props};
use crate::aws::err;
use crate::aws::wait::{self, Backoff};
use crate::core::diff::{AttrSpec, Settings, settings};
use crate::core::latency;
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec};

pub struct LambdaPermission;

pub const PRINCIPAL: &str = "s3.amazonaws.com";
pub const ACTION: &str = "lambda:InvokeFunction";

pub fn statement_id(deployment: &str) -> String {
    crate::core::names::lambda_statement_id(deployment)
}

/// What the function's policy says about our statement.
#[derive(Debug, PartialEq, Eq)]
enum Statement {
    Missing,
    Matches,
    /// Present with another source, principal or action: replace it.
    Differs,
}

fn as_str_or_first(v: &Value) -> Option<&str> {
    v.as_str()
        .or_else(|| v.as_array().and_then(|a| a.first()).and_then(Value::as_str))
}

fn examine(policy: Option<&str>, sid: &str, bucket_arn: &str, account: &str) -> Statement {
    let Some(doc) = policy.and_then(|p| serde_json::from_str::<Value>(p).ok()) else {
        return Statement::Missing;
    };
    let statements = match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        single @ Value::Object(_) => vec![single.clone()],
        _ => Vec::new(),
    };
    let Some(s) = statements.iter().find(|s| s["Sid"] == sid) else {
        return Statement::Missing;
    };
    let cond = &s["Condition"];
    let ok = s["Effect"] == "Allow"
        && as_str_or_first(&s["Principal"]["Service"]) == Some(PRINCIPAL)
        && as_str_or_first(&s["Action"]) == Some(ACTION)
        && as_str_or_first(&cond["ArnLike"]["AWS:SourceArn"]) == Some(bucket_arn)
        && as_str_or_first(&cond["StringEquals"]["AWS:SourceAccount"]) == Some(account);
    if ok { Statement::Matches } else { Statement::Differs }
}

/// Day 2: whether our statement still says what `converge` writes (principal, action, the
/// bucket and account conditions); one edited by hand is replaced.
const ATTRS: &[AttrSpec] = &[AttrSpec::update("statement", &[])];

/// `read`: missing without a statement of our id (no policy, or the function is gone);
/// else whether it matches, when the recorded bucket's ARN is known to compare with.
fn observed_of(policy: Option<&str>, sid: &str, bucket_arn: Option<&str>, account: &str) -> Observed {
    let found = (examine(policy, sid, "", "") != Statement::Missing).then_some(());
    observe::observed(found, |_| match bucket_arn {
        Some(arn) => settings([(
            "statement",
            match examine(policy, sid, arn, account) {
                Statement::Matches => "matches",
                _ => "differs",
            }
            .to_string(),
        )]),
        None => Settings::new(),
    })
}

async fn policy(aws: &Aws, function: &str) -> Result<Option<String>, ResourceError> {
    // NotFound: the function has no policy yet (or is gone, which the executor handles).
    let out = aws
        .clients
        .lambda
        .get_policy()
        .function_name(function)
        .send()
        .await
        .map_err(err("reading the Lambda's resource policy"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.policy().map(String::from)))
}

async fn add(aws: &Aws, function: &str, sid: &str, bucket_arn: &str) -> Result<(), ResourceError> {
    // ResourceConflictException means either "statement id exists" or "an update is in
    // progress": check which by reading the policy, and retry the latter.
    wait::retry(
        "allowing S3 to invoke the Lambda",
        latency::create_deadline(Kind::LambdaPermission),
        Backoff::QUICK,
        &[ErrorClass::InUse],
        || async {
            let r = aws
                .clients
                .lambda
                .add_permission()
                .function_name(function)
                .statement_id(sid)
                .action(ACTION)
                .principal(PRINCIPAL)
                .source_arn(bucket_arn)
                .source_account(&aws.env.account_id)
                .send()
                .await
                .map(|_| ())
                .map_err(err("allowing S3 to invoke the Lambda"));
            match r {
                Err(e) if e.is(ErrorClass::InUse) || e.is(ErrorClass::AlreadyExists) => {
                    match examine(
                        policy(aws, function).await?.as_deref(),
                        sid,
                        bucket_arn,
                        &aws.env.account_id,
                    ) {
                        Statement::Matches => Ok(()),
                        Statement::Differs => Err(ResourceError::new(
                            ErrorClass::Invalid,
                            format!("statement `{sid}` on the Lambda changed after it was checked"),
                        )
                        .with_hint("run `pi-deploy up` again")),
                        Statement::Missing => Err(e),
                    }
                }
                other => other,
            }
        },
    )
    .await
}

async fn remove(aws: &Aws, function: &str, sid: &str) -> Result<(), ResourceError> {
    ec2::delete_retrying(
        Kind::LambdaPermission,
        &format!("removing statement {sid} from {function}"),
        || async {
            aws.clients
                .lambda
                .remove_permission()
                .function_name(function)
                .statement_id(sid)
                .send()
                .await
                .map(|_| ())
                .map_err(err("removing the S3 invoke permission"))
        },
    )
    .await
}

fn outputs(sid: &str, function: &str) -> Outputs {
    Outputs::new().with("id", sid).with("function", function)
}

#[async_trait]
impl ResourceKind for LambdaPermission {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (function,) = props!(cx, LambdaPermission { function });
        let name = cx.dep_id(function)?;
        let sid = statement_id(&aws.env.deployment);
        let present = policy(aws, name)
            .await?
            .is_some_and(|p| examine(Some(&p), &sid, "", "") != Statement::Missing);
        Ok(present.then(|| outputs(&sid, name)))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (function, bucket) = props!(cx, LambdaPermission { function, bucket });
        let name = cx.dep_id(function)?;
        let sid = statement_id(&aws.env.deployment);
        add(aws, name, &sid, cx.dep(bucket)?.require("arn")?).await?;
        Ok(outputs(&sid, name))
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (function, bucket) = props!(cx, LambdaPermission { function, bucket });
        let name = cx.dep_id(function)?;
        let bucket_arn = cx.dep(bucket)?.require("arn")?;
        let sid = outputs.id()?.to_string();
        // A statement that lost its conditions (edited by hand) is replaced.
        match examine(
            policy(aws, name).await?.as_deref(),
            &sid,
            bucket_arn,
            &aws.env.account_id,
        ) {
            Statement::Matches => {}
            Statement::Differs => {
                remove(aws, name, &sid).await?;
                add(aws, name, &sid, bucket_arn).await?;
            }
            Statement::Missing => add(aws, name, &sid, bucket_arn).await?,
        }
        Ok(self::outputs(&sid, name))
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, _spec: &NodeSpec, _deps: &BTreeMap<String, Outputs>) -> Settings {
        settings([("statement", "matches".to_string())])
    }

    async fn read(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        // The statement of ours on the recorded function (none when the function is gone).
        let (bucket,) = props!(cx, LambdaPermission { bucket });
        let bucket_arn = cx.deps.get(bucket).and_then(|o| o.get("arn"));
        let policy = policy(aws, outputs.require("function")?).await?;
        Ok(observed_of(
            policy.as_deref(),
            outputs.id()?,
            bucket_arn,
            &aws.env.account_id,
        ))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let sid = cx.outputs.id()?;
        let function = cx.outputs.require("function")?;
        remove(aws, function, sid).await
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const BUCKET: &str = "arn:aws:s3:::pi-resources-123456789012-eu-west-1";
    const ACCOUNT: &str = "123456789012";

    fn policy_with(statement: Value) -> String {
        json!({ "Version": "2012-10-17", "Id": "default", "Statement": [statement] }).to_string()
    }

    fn ours() -> Value {
        json!({
            "Sid": "s3-invoke-pi",
            "Effect": "Allow",
            "Principal": { "Service": "s3.amazonaws.com" },
            "Action": "lambda:InvokeFunction",
            "Resource": "arn:aws:lambda:eu-west-1:123456789012:function:pi-sideload",
            "Condition": {
                "StringEquals": { "AWS:SourceAccount": ACCOUNT },
                "ArnLike": { "AWS:SourceArn": BUCKET },
            },
        })
    }

    #[test]
    fn our_statement_is_recognised_with_its_conditions() {
        assert_eq!(
            examine(Some(&policy_with(ours())), "s3-invoke-pi", BUCKET, ACCOUNT),
            Statement::Matches
        );
    }

    #[test]
    fn read_is_missing_without_our_statement_and_tells_an_edited_one() {
        let sid = "s3-invoke-pi";
        let live = |p: Option<&str>, bucket: Option<&str>| observed_of(p, sid, bucket, ACCOUNT);
        assert_eq!(live(None, Some(BUCKET)), Observed::Missing);
        let other = policy_with(ours());
        assert_eq!(
            observed_of(Some(&other), "s3-invoke-x", Some(BUCKET), ACCOUNT),
            Observed::Missing
        );
        let ok = policy_with(ours());
        assert_eq!(
            live(Some(&ok), Some(BUCKET)),
            Observed::Present(settings([("statement", "matches".to_string())]))
        );
        let mut edited = ours();
        edited["Condition"].as_object_mut().unwrap().remove("ArnLike");
        assert_eq!(
            live(Some(&policy_with(edited)), Some(BUCKET)),
            Observed::Present(settings([("statement", "differs".to_string())]))
        );
        // Without the bucket's ARN nothing is claimed about the statement.
        assert_eq!(live(Some(&ok), None), Observed::Present(Settings::new()));
    }

    #[test]
    fn another_sid_or_no_policy_is_missing() {
        assert_eq!(
            examine(Some(&policy_with(ours())), "s3-invoke-other", BUCKET, ACCOUNT),
            Statement::Missing
        );
        assert_eq!(examine(None, "s3-invoke-pi", BUCKET, ACCOUNT), Statement::Missing);
        assert_eq!(
            examine(Some("not json"), "s3-invoke-pi", BUCKET, ACCOUNT),
            Statement::Missing
        );
    }

    #[test]
    fn a_statement_without_source_account_or_for_another_bucket_differs() {
        let mut no_account = ours();
        no_account["Condition"].as_object_mut().unwrap().remove("StringEquals");
        assert_eq!(
            examine(Some(&policy_with(no_account)), "s3-invoke-pi", BUCKET, ACCOUNT),
            Statement::Differs
        );
        assert_eq!(
            examine(
                Some(&policy_with(ours())),
                "s3-invoke-pi",
                "arn:aws:s3:::someone-else",
                ACCOUNT
            ),
            Statement::Differs
        );
        let mut anyone = ours();
        anyone["Principal"] = json!({ "AWS": "*" });
        assert_eq!(
            examine(Some(&policy_with(anyone)), "s3-invoke-pi", BUCKET, ACCOUNT),
            Statement::Differs
        );
    }

    #[test]
    fn the_statement_id_names_the_deployment() {
        assert_eq!(statement_id("pi-prod"), "s3-invoke-pi-prod");
    }
}
