//! Removing a deleted VPC Lambda's network interfaces ourselves.
//!
//! Since Lambda's Hyperplane ENIs (2019), a function's ENIs outlive it: AWS detaches them a
//! few minutes after DeleteFunction (status `available`) and its reaper deletes them 20-45
//! minutes later. Until then the subnets and the security group cannot be deleted
//! (DependencyViolation). So `destroy` deletes the detached ones itself, polling while
//! some are still `in-use`, within the latency model's budget; past it, the error names
//! every ENI left and says what to do.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use super::{Aws, ec2};
use crate::aws::err;
use crate::aws::wait::{self, Backoff, Poll};
use crate::core::resource::{ErrorClass, ResourceError};

/// What AWS calls a Lambda ENI in its description.
pub const DESCRIPTION_PATTERN: &str = "AWS Lambda VPC ENI*";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Eni {
    pub id: String,
    /// `in-use`, `available`, `detaching`...
    pub status: String,
    pub description: String,
}

/// The two calls the cleanup needs, so it can be driven by a scripted fake in tests.
#[async_trait]
pub trait EniApi: Send + Sync {
    /// The Lambda ENIs still in our subnets.
    async fn list(&self) -> Result<Vec<Eni>, ResourceError>;
    async fn delete(&self, id: &str) -> Result<(), ResourceError>;
}

/// A refused DeleteNetworkInterface worth asking again: the ENI is still attached or
/// being released (AWS words this several ways), or the call was throttled.
fn refusal_is_temporary(e: &ResourceError) -> bool {
    let code = e.code.as_deref().unwrap_or_default();
    matches!(
        e.class,
        ErrorClass::InUse | ErrorClass::Throttled | ErrorClass::Transient
    ) || code == "OperationNotPermitted"
        || (code == "InvalidParameterValue" && e.message.to_ascii_lowercase().contains("in use"))
}

fn summary(enis: &[Eni], refusals: &BTreeMap<String, String>) -> String {
    enis.iter()
        .map(|e| {
            let refused = refusals
                .get(&e.id)
                .map(|r| format!(", delete refused: {r}"))
                .unwrap_or_default();
            format!("{} ({}, \"{}\"{refused})", e.id, e.status, e.description)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// One pass: delete every detached ENI; Ready once none is left.
async fn sweep(api: &dyn EniApi, last: &Mutex<String>) -> Result<Poll<()>, ResourceError> {
    let enis = api.list().await?;
    if enis.is_empty() {
        return Ok(Poll::Ready(()));
    }
    let mut refusals = BTreeMap::new();
    for e in enis.iter().filter(|e| e.status == "available") {
        match api.delete(&e.id).await {
            Ok(()) => tracing::debug!(eni = %e.id, "deleted a detached Lambda ENI"),
            Err(err) if err.is(ErrorClass::NotFound) => {}
            Err(err) if refusal_is_temporary(&err) => {
                refusals.insert(e.id.clone(), err.code.clone().unwrap_or_else(|| err.message.clone()));
            }
            Err(err) => return Err(err),
        }
    }
    let seen = summary(&enis, &refusals);
    *last.lock().unwrap() = seen.clone();
    // Deleted ones are confirmed gone by the next listing.
    Ok(Poll::Pending(seen))
}

/// Delete the Lambda ENIs as they detach, until none is left or `budget` runs out.
pub async fn remove_lambda_enis(api: &dyn EniApi, budget: Duration, backoff: Backoff) -> Result<(), ResourceError> {
    let last = Mutex::new(String::new());
    wait::wait_for("the deleted Lambda's network interfaces to go", budget, backoff, || sweep(api, &last))
        .await
        .map_err(|e| {
            if !e.is(ErrorClass::Timeout) {
                return e;
            }
            ResourceError::new(
                ErrorClass::Timeout,
                format!(
                    "the deleted Lambda's network interfaces were still there after {}s: {}",
                    budget.as_secs(),
                    last.lock().unwrap()
                ),
            )
            .with_hint(
                "AWS releases a deleted function's ENIs on its own, sometimes only after 45 minutes or more: run `pi-deploy destroy` again later \
                 (it deletes them as soon as they are `available`), or delete them in the EC2 console under Network Interfaces once detached",
            )
        })
}

/// The real thing: Lambda ENIs in the function's subnets (and security group).
pub struct Ec2Enis<'a> {
    pub aws: &'a Aws,
    pub subnet_ids: Vec<String>,
    pub security_group_id: Option<String>,
}

#[async_trait]
impl EniApi for Ec2Enis<'_> {
    async fn list(&self) -> Result<Vec<Eni>, ResourceError> {
        if self.subnet_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut req = self
            .aws
            .clients
            .ec2
            .describe_network_interfaces()
            .filters(ec2::filter("description", [DESCRIPTION_PATTERN]))
            .filters(ec2::filter("subnet-id", self.subnet_ids.clone()));
        if let Some(sg) = &self.security_group_id {
            req = req.filters(ec2::filter("group-id", [sg.clone()]));
        }
        let found = req
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(err("listing the Lambda's network interfaces"))?;
        Ok(found
            .iter()
            .filter_map(|n| {
                Some(Eni {
                    id: n.network_interface_id()?.to_string(),
                    status: n.status().map_or("unknown", |s| s.as_str()).to_string(),
                    description: n.description().unwrap_or_default().to_string(),
                })
            })
            .collect())
    }

    async fn delete(&self, id: &str) -> Result<(), ResourceError> {
        self.aws
            .clients
            .ec2
            .delete_network_interface()
            .network_interface_id(id)
            .send()
            .await
            .map(|_| ())
            .map_err(err("deleting a detached Lambda network interface"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use tokio::time::Instant;

    use super::*;

    /// ENIs whose status follows a script, one step per listing (the last step repeats);
    /// deletes are refused a given number of times first.
    struct Fake {
        statuses: Mutex<BTreeMap<String, VecDeque<&'static str>>>,
        refusals: Mutex<BTreeMap<String, (u32, ResourceError)>>,
        deleted: Mutex<Vec<String>>,
        listings: Mutex<u32>,
    }

    impl Fake {
        fn new(enis: &[(&str, &[&'static str])]) -> Self {
            Fake {
                statuses: Mutex::new(
                    enis.iter()
                        .map(|(id, s)| (id.to_string(), s.iter().copied().collect()))
                        .collect(),
                ),
                refusals: Mutex::new(BTreeMap::new()),
                deleted: Mutex::new(Vec::new()),
                listings: Mutex::new(0),
            }
        }
        fn refuse(self, id: &str, times: u32, e: ResourceError) -> Self {
            self.refusals.lock().unwrap().insert(id.into(), (times, e));
            self
        }
    }

    #[async_trait]
    impl EniApi for Fake {
        async fn list(&self) -> Result<Vec<Eni>, ResourceError> {
            *self.listings.lock().unwrap() += 1;
            let mut st = self.statuses.lock().unwrap();
            let deleted = self.deleted.lock().unwrap();
            Ok(st
                .iter_mut()
                .filter(|(id, _)| !deleted.contains(id))
                .map(|(id, steps)| {
                    let now = if steps.len() > 1 {
                        steps.pop_front().unwrap()
                    } else {
                        steps[0]
                    };
                    Eni {
                        id: id.clone(),
                        status: now.into(),
                        description: format!("AWS Lambda VPC ENI-pi-sideload-{id}"),
                    }
                })
                .collect())
        }

        async fn delete(&self, id: &str) -> Result<(), ResourceError> {
            if let Some((n, e)) = self.refusals.lock().unwrap().get_mut(id)
                && *n > 0
            {
                *n -= 1;
                return Err(e.clone());
            }
            self.deleted.lock().unwrap().push(id.to_string());
            Ok(())
        }
    }

    const BUDGET: Duration = Duration::from_secs(45 * 60);

    #[tokio::test(start_paused = true)]
    async fn no_enis_is_done_at_once() {
        let fake = Fake::new(&[]);
        let start = Instant::now();
        remove_lambda_enis(&fake, BUDGET, Backoff::SLOW).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn in_use_then_available_then_deleted() {
        let fake = Fake::new(&[("eni-1", &["in-use", "in-use", "available"]), ("eni-2", &["available"])]);
        remove_lambda_enis(&fake, BUDGET, Backoff::SLOW).await.unwrap();
        let deleted = fake.deleted.lock().unwrap().clone();
        assert_eq!(
            deleted,
            ["eni-2", "eni-1"],
            "each deleted once, as soon as it was detached"
        );
        assert_eq!(
            *fake.listings.lock().unwrap(),
            4,
            "a final listing confirms none is left"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_refused_delete_is_asked_again() {
        let in_use = ResourceError::new(ErrorClass::InUse, "in use").with_code("InvalidNetworkInterface.InUse");
        let fake = Fake::new(&[("eni-1", &["available"])]).refuse("eni-1", 3, in_use);
        remove_lambda_enis(&fake, BUDGET, Backoff::SLOW).await.unwrap();
        assert_eq!(fake.deleted.lock().unwrap().clone(), ["eni-1"]);
        assert_eq!(*fake.listings.lock().unwrap(), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn an_eni_deleted_by_aws_meanwhile_is_fine() {
        let gone = ResourceError::new(ErrorClass::NotFound, "gone").with_code("InvalidNetworkInterfaceID.NotFound");
        let fake = Fake::new(&[("eni-1", &["available"])]).refuse("eni-1", 1, gone);
        // The refusal is NotFound: not an error; the fake still lists it until deleted.
        remove_lambda_enis(&fake, BUDGET, Backoff::SLOW).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_refusal_stops_at_once() {
        let denied = ResourceError::new(ErrorClass::Other, "not authorized").with_code("UnauthorizedOperation");
        let fake = Fake::new(&[("eni-1", &["available"])]).refuse("eni-1", 1, denied);
        let start = Instant::now();
        let e = remove_lambda_enis(&fake, BUDGET, Backoff::SLOW).await.unwrap_err();
        assert_eq!(e.code.as_deref(), Some("UnauthorizedOperation"));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn never_detached_fails_at_the_budget_naming_each_eni() {
        let fake = Fake::new(&[("eni-1", &["in-use"]), ("eni-2", &["available"])]).refuse(
            "eni-2",
            u32::MAX,
            ResourceError::new(ErrorClass::Other, "x").with_code("OperationNotPermitted"),
        );
        let start = Instant::now();
        let e = remove_lambda_enis(&fake, BUDGET, Backoff::SLOW).await.unwrap_err();
        let took = start.elapsed();
        assert!(took >= BUDGET && took < BUDGET + Duration::from_secs(20), "{took:?}");
        assert_eq!(e.class, ErrorClass::Timeout);
        for part in [
            "eni-1 (in-use",
            "AWS Lambda VPC ENI-pi-sideload-eni-1",
            "eni-2 (available",
            "OperationNotPermitted",
        ] {
            assert!(e.message.contains(part), "{part} missing from: {}", e.message);
        }
        let hint = e.hint.unwrap();
        assert!(
            hint.contains("pi-deploy destroy") && hint.contains("Network Interfaces"),
            "{hint}"
        );
        assert!(fake.deleted.lock().unwrap().is_empty());
    }

    #[test]
    fn temporary_refusals() {
        let e = |class, code: &str, msg: &str| ResourceError::new(class, msg).with_code(code);
        assert!(refusal_is_temporary(&e(
            ErrorClass::InUse,
            "InvalidNetworkInterface.InUse",
            ""
        )));
        assert!(refusal_is_temporary(&e(ErrorClass::Other, "OperationNotPermitted", "")));
        assert!(refusal_is_temporary(&e(
            ErrorClass::Other,
            "InvalidParameterValue",
            "Network interface is currently in use"
        )));
        assert!(refusal_is_temporary(&e(
            ErrorClass::Throttled,
            "RequestLimitExceeded",
            ""
        )));
        assert!(!refusal_is_temporary(&e(
            ErrorClass::Other,
            "UnauthorizedOperation",
            ""
        )));
        assert!(!refusal_is_temporary(&e(
            ErrorClass::Other,
            "InvalidParameterValue",
            "bad id"
        )));
    }
}
