//! The NAT gateway in a public subnet, with its Elastic IP. Creation takes minutes on AWS
//! (median ~100 s), so `create` returns the id at once and `converge` waits for `available`.
//! Its delete waits for `deleted`: the EIP release and the IGW detach are refused until then.

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use aws_sdk_ec2::types::{self as t, NatGatewayState, ResourceType};

use super::{Aws, ResourceKind, ec2, observe, props};
use crate::aws::consistency;
use crate::aws::wait::{self, Backoff, Poll};
use crate::aws::{err, tags};
use crate::core::diff::Settings;
use crate::core::inspect::{InspectCtx, Inspection, Live};
use crate::core::latency::{self, Transition};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::Kind;

pub struct NatGateway;

/// Gateways in these states are history: never adopted, never waited on.
fn is_gone(state: Option<&NatGatewayState>) -> bool {
    matches!(
        state,
        Some(NatGatewayState::Deleting | NatGatewayState::Deleted | NatGatewayState::Failed)
    )
}

/// The live state `status` reports for a gateway's state.
fn live_of(state: Option<&NatGatewayState>) -> Live {
    match state {
        None | Some(NatGatewayState::Deleted) => Live::Missing,
        Some(NatGatewayState::Available) => Live::Available,
        Some(NatGatewayState::Deleting | NatGatewayState::Failed) => Live::Deleting,
        Some(_) => Live::Creating,
    }
}

/// `read`: a deleted, deleting or failed gateway stays listed for a while; it is history,
/// so the recorded gateway is missing.
fn observed_of(n: Option<t::NatGateway>) -> Observed {
    observe::observed_unless(n, |n| is_gone(n.state()), |_| Settings::new())
}

fn outputs_of(n: &t::NatGateway) -> Option<Outputs> {
    let allocation = n
        .nat_gateway_addresses()
        .iter()
        .find_map(|a| a.allocation_id())
        .unwrap_or_default();
    Some(
        Outputs::new()
            .with("id", n.nat_gateway_id()?)
            .with("subnet_id", n.subnet_id().unwrap_or_default())
            .with("allocation_id", allocation),
    )
}

async fn describe(aws: &Aws, id: &str) -> Result<Option<t::NatGateway>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_nat_gateways()
        .nat_gateway_ids(id)
        .send()
        .await
        .map_err(err("describing the NAT gateway"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.nat_gateways().first().cloned()))
}

fn failure(n: &t::NatGateway) -> String {
    let state = n.state().map_or("unknown", |s| s.as_str());
    match (n.failure_code(), n.failure_message()) {
        (Some(code), Some(msg)) => format!("{state}: {code}: {msg}"),
        (_, Some(msg)) => format!("{state}: {msg}"),
        _ => state.to_string(),
    }
}

/// One poll while waiting for `available`. NotFound right after create is "not yet". The
/// first poll also screens the recorded gateway: one that failed or was deleted is replaced
/// (NotFound makes the executor find, skipping gone gateways, or create it again); one that
/// fails later fails the wait. So `converge` needs no describe of its own before the wait.
async fn poll_available(aws: &Aws, id: &str, first: bool) -> Result<Poll<t::NatGateway>, ResourceError> {
    availability(id, describe(aws, id).await?, first)
}

fn availability(id: &str, seen: Option<t::NatGateway>, first: bool) -> Result<Poll<t::NatGateway>, ResourceError> {
    let Some(n) = seen else {
        return consistency::not_visible(format!("NAT gateway {id}"));
    };
    Ok(match n.state() {
        Some(NatGatewayState::Available) => Poll::Ready(n),
        s if is_gone(s) && first => {
            return Err(ResourceError::new(
                ErrorClass::NotFound,
                format!("NAT gateway {id} is {}", failure(&n)),
            ));
        }
        s if is_gone(s) => Poll::Failed(failure(&n)),
        s => Poll::Pending(s.map_or("unknown", |s| s.as_str()).into()),
    })
}

/// One poll while waiting for the delete. A failed gateway holds no address either.
async fn poll_deleted(aws: &Aws, id: &str) -> Result<Poll<()>, ResourceError> {
    let n = describe(aws, id).await?;
    Ok(deletion_poll(n.as_ref().map(|n| n.state())))
}

/// `None`: the gateway is no longer listed. Only `deleted` (or `failed`) releases the EIP
/// and the IGW's mapped addresses, so `deleting` is still pending.
fn deletion_poll(listed: Option<Option<&NatGatewayState>>) -> Poll<()> {
    match listed {
        None | Some(Some(NatGatewayState::Deleted | NatGatewayState::Failed)) => Poll::Ready(()),
        Some(s) => Poll::Pending(s.map_or("unknown", |s| s.as_str()).into()),
    }
}

async fn create_call(
    aws: &Aws,
    cx: &NodeCtx<'_>,
    subnet_id: &str,
    allocation_id: &str,
    token: &str,
) -> Result<t::NatGateway, ResourceError> {
    let out = aws
        .clients
        .ec2
        .create_nat_gateway()
        .subnet_id(subnet_id)
        .allocation_id(allocation_id)
        .client_token(token)
        .tag_specifications(tags::ec2_spec(
            ResourceType::Natgateway,
            &aws.env.deployment,
            &cx.spec.key,
        ))
        .send()
        .await
        .map_err(err("creating the NAT gateway"))?;
    out.nat_gateway()
        .cloned()
        .ok_or_else(|| ResourceError::new(ErrorClass::Other, "CreateNatGateway returned no gateway"))
}

#[async_trait]
impl ResourceKind for NatGateway {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let found = aws
            .clients
            .ec2
            .describe_nat_gateways()
            .set_filter(Some(tags::ec2_filters(&aws.env.deployment, &cx.spec.key)))
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(err("looking up the NAT gateway by tag"))?;
        // The tags are checked here too: some implementations ignore tag filters and return
        // every NAT gateway in the region, including other deployments'.
        Ok(found
            .iter()
            .filter(|n| !is_gone(n.state()))
            .find(|n| tags::ec2_is_ours(n.tags(), &aws.env.deployment, &cx.spec.key))
            .and_then(outputs_of))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (subnet, eip) = props!(cx, NatGateway { subnet, eip });
        let subnet_id = cx.dep_id(subnet)?;
        let allocation_id = cx.dep_id(eip)?;
        let nat = create_call(aws, cx, subnet_id, allocation_id, cx.token).await?;
        // AWS honours the client token for a while: after a failed gateway, the same token
        // returns that failed gateway again. A token derived from the failed id asks for a
        // new one, and stays the same if this step is retried.
        let nat = match nat.state() {
            s if is_gone(s) => {
                let token = format!("{}-{}", cx.token, nat.nat_gateway_id().unwrap_or_default());
                create_call(aws, cx, subnet_id, allocation_id, &token).await?
            }
            _ => nat,
        };
        let id = nat.nat_gateway_id().unwrap_or_default();
        // A token that names an existing gateway answers its state, maybe `available`.
        if nat.state() == Some(&NatGatewayState::Pending) {
            aws.started.note(id);
        }
        Ok(Outputs::new()
            .with("id", id)
            .with("subnet_id", subnet_id)
            .with("allocation_id", allocation_id))
    }

    async fn converge(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let id = outputs.id()?.to_string();
        let first = AtomicBool::new(true);
        let nat = wait::wait_for(
            &format!("NAT gateway {id} to become available"),
            latency::create_deadline(Kind::NatGateway),
            Backoff::expecting(Transition::NatCreate, aws.started.get(&id)),
            || poll_available(aws, &id, first.swap(false, Ordering::Relaxed)),
        )
        .await
        .map_err(|e| match e.class {
            ErrorClass::Failed => e.with_hint("run `pi-deploy up` again: it replaces a failed NAT gateway"),
            _ => e,
        })?;
        Ok(outputs_of(&nat).unwrap_or(outputs))
    }

    async fn inspect(&self, aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
        let nat = describe(aws, cx.outputs.id()?).await?;
        let state = nat.as_ref().and_then(|n| n.state());
        let i = Inspection::of(live_of(state));
        Ok(match (i.live, &nat) {
            (Live::Available, _) | (_, None) => i,
            (_, Some(n)) => i.with_detail(failure(n)),
        })
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(observed_of(describe(aws, outputs.id()?).await?))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let id = cx.outputs.id()?;
        let started = ec2::delete_started(Kind::NatGateway, &format!("deleting NAT gateway {id}"), || async {
            aws.clients
                .ec2
                .delete_nat_gateway()
                .nat_gateway_id(id)
                .send()
                .await
                .map(|_| ())
                .map_err(err("deleting the NAT gateway"))
        })
        .await?;
        wait::wait_for(
            &format!("NAT gateway {id} to be deleted"),
            latency::delete_deadline(Kind::NatGateway),
            Backoff::expecting(Transition::NatDelete, started),
            || poll_deleted(aws, id),
        )
        .await
    }
}

#[cfg(test)]
mod deletion_tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use super::*;

    /// Scripted: the NAT stays `deleting` for a while, then `deleted`; or never finishes.
    async fn wait_with(script: Vec<Option<NatGatewayState>>, deadline: Duration) -> Result<(), ResourceError> {
        let steps = Mutex::new(script);
        wait::wait_for("NAT gateway to be deleted", deadline, Backoff::SLOW, || {
            let mut s = steps.lock().unwrap();
            let state = if s.len() > 1 { s.remove(0) } else { s[0].clone() };
            std::future::ready(Ok(deletion_poll(Some(state.as_ref()))))
        })
        .await
    }

    #[tokio::test(start_paused = true)]
    async fn deleting_for_a_while_then_deleted() {
        let d = NatGatewayState::Deleting;
        let script = vec![
            Some(d.clone()),
            Some(d.clone()),
            Some(d),
            Some(NatGatewayState::Deleted),
        ];
        assert!(wait_with(script, Duration::from_secs(300)).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn stuck_deleting_hits_the_deadline_naming_the_state() {
        let e = wait_with(vec![Some(NatGatewayState::Deleting)], Duration::from_secs(120))
            .await
            .unwrap_err();
        assert_eq!(e.class, crate::core::resource::ErrorClass::Timeout);
        assert!(e.message.contains("deleting"), "{}", e.message);
    }

    #[test]
    fn a_deleted_or_failed_gateway_reads_as_missing() {
        let nat = |s: NatGatewayState| Some(t::NatGateway::builder().nat_gateway_id("nat-1").state(s).build());
        for s in [
            NatGatewayState::Deleted,
            NatGatewayState::Deleting,
            NatGatewayState::Failed,
        ] {
            assert_eq!(observed_of(nat(s.clone())), Observed::Missing, "{s:?}");
        }
        for s in [NatGatewayState::Available, NatGatewayState::Pending] {
            assert!(matches!(observed_of(nat(s.clone())), Observed::Present(_)), "{s:?}");
        }
        assert_eq!(observed_of(None), Observed::Missing);
    }

    #[test]
    fn no_longer_listed_is_gone() {
        assert!(matches!(deletion_poll(None), Poll::Ready(())));
    }

    #[test]
    fn a_failed_gateway_is_replaced_on_the_first_poll_and_fails_a_later_one() {
        let with = |state: NatGatewayState| Some(t::NatGateway::builder().state(state).build());
        let replaced = availability("nat-1", with(NatGatewayState::Failed), true).unwrap_err();
        assert!(replaced.is(ErrorClass::NotFound), "{replaced:?}");
        assert!(matches!(
            availability("nat-1", with(NatGatewayState::Deleted), false),
            Ok(Poll::Failed(_))
        ));
        assert!(matches!(
            availability("nat-1", with(NatGatewayState::Pending), true),
            Ok(Poll::Pending(_))
        ));
        assert!(matches!(
            availability("nat-1", with(NatGatewayState::Available), true),
            Ok(Poll::Ready(_))
        ));
        // Unknown: gone, outside the consistency window of this run's own create (inside
        // it, "not yet": src/aws/consistency.rs).
        assert!(availability("nat-1", None, true).is_err_and(|e| e.is(ErrorClass::NotFound)));
    }
}
