//! Helpers shared by the EC2 kinds: deletes that tolerate "already gone" and retry while
//! something still holds the resource, within the latency model's budget.

use std::future::Future;

use tokio::time::Instant;

use crate::aws::wait::{self, Backoff};
use crate::core::latency;
use crate::core::resource::{ErrorClass, ResourceError};
use crate::core::spec::Kind;

/// Run a delete call: NotFound is success; DependencyViolation and other in-use errors are
/// retried with backoff until the kind's delete budget runs out.
pub async fn delete_retrying<F, Fut>(kind: Kind, what: &str, op: F) -> Result<(), ResourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), ResourceError>>,
{
    delete_started(kind, what, op).await.map(|_| ())
}

/// `delete_retrying`, telling when AWS accepted the delete (the start of the transition the
/// wait that follows expects), or `None` when the resource was already gone.
pub async fn delete_started<F, Fut>(kind: Kind, what: &str, op: F) -> Result<Option<Instant>, ResourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), ResourceError>>,
{
    match wait::retry(
        what,
        latency::delete_deadline(kind),
        Backoff::QUICK,
        &[ErrorClass::InUse],
        op,
    )
    .await
    {
        Ok(()) => Ok(Some(Instant::now())),
        Err(e) if e.is(ErrorClass::NotFound) => Ok(None),
        Err(mut e) if e.is(ErrorClass::InUse) => {
            e.hint = Some(format!(
                "something outside this deployment may still use it; find it in the console, remove it, then run `pi-deploy destroy` again ({what})"
            ));
            Err(e)
        }
        Err(e) => Err(e),
    }
}

/// Treat NotFound as `None` (for finds by id that may race a delete).
pub fn not_found_is_none<T>(r: Result<T, ResourceError>) -> Result<Option<T>, ResourceError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is(ErrorClass::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// How long a call may see one of our own resources as NotFound (src/aws/consistency.rs).
pub const CONSISTENCY_BUDGET: std::time::Duration = crate::aws::consistency::CONSISTENCY_BUDGET;

/// Run `op`, retrying while it reports NotFound, but only inside the step's consistency
/// window (right after this run's own create); elsewhere a NotFound is returned at once:
/// the recorded resource is gone.
pub async fn retry_not_found<T, F, Fut>(what: &str, op: F) -> Result<T, ResourceError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ResourceError>>,
{
    let classes: &[ErrorClass] = if crate::aws::consistency::may_lag() {
        &[ErrorClass::NotFound]
    } else {
        &[]
    };
    wait::retry(what, CONSISTENCY_BUDGET, Backoff::QUICK, classes, op).await
}

/// A Describe* filter on one attribute.
pub fn filter<S: Into<String>>(name: &str, values: impl IntoIterator<Item = S>) -> aws_sdk_ec2::types::Filter {
    let mut b = aws_sdk_ec2::types::Filter::builder().name(name);
    for v in values {
        b = b.values(v);
    }
    b.build()
}

/// Whether an error carries exactly this EC2 error code.
pub fn has_code(e: &ResourceError, code: &str) -> bool {
    e.code.as_deref() == Some(code)
}

/// When a subnet or security group still cannot be deleted at the end of its budget, name
/// what holds it: the network interfaces in it (`filter_name` = `subnet-id` or `group-id`)
/// with their descriptions, which tell an operator whose they are.
pub async fn explain_holders(aws: &super::Aws, filter_name: &str, id: &str, mut e: ResourceError) -> ResourceError {
    if !e.is(ErrorClass::InUse) {
        return e;
    }
    let Ok(out) = aws
        .clients
        .ec2
        .describe_network_interfaces()
        .filters(filter(filter_name, [id]))
        .send()
        .await
    else {
        return e;
    };
    let holders = describe_holders(out.network_interfaces().iter().map(|n| {
        (
            n.network_interface_id().unwrap_or("?"),
            n.status().map(|s| s.as_str()).unwrap_or("?"),
            n.description().unwrap_or(""),
        )
    }));
    if !holders.is_empty() {
        e.message = format!("{}; still held by: {holders}", e.message);
        e.hint = Some(format!(
            "delete or detach those network interfaces (Lambda ENIs go a few minutes after their function), then run `pi-deploy destroy` again to delete {id}"
        ));
    }
    e
}

/// `eni-1 (in-use, "AWS Lambda VPC ENI-x")`, comma-separated.
pub fn describe_holders<'a>(enis: impl Iterator<Item = (&'a str, &'a str, &'a str)>) -> String {
    enis.map(|(id, status, desc)| format!("{id} ({status}, \"{desc}\")"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod holder_tests {
    #[test]
    fn holders_are_named_with_their_descriptions() {
        let s = super::describe_holders(
            [
                ("eni-1", "in-use", "AWS Lambda VPC ENI-abc"),
                ("eni-2", "available", ""),
            ]
            .into_iter(),
        );
        assert_eq!(s, "eni-1 (in-use, \"AWS Lambda VPC ENI-abc\"), eni-2 (available, \"\")");
    }
}
