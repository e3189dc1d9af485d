//! A VPC endpoint: interface endpoints (private DNS, in the app subnets, behind the
//! endpoints group) let instances and the Lambda reach AWS APIs without the NAT; the S3
//! gateway endpoint sits on the private route tables. Each has a policy instead of AWS's
//! default allow-everything one (`core::policy::interface_endpoint_policy`,
//! `s3_gateway_endpoint_policy`): only this account's principals (and, where that cannot
//! break AWS-owned resources, only its resources); the S3 gateway also lets the instances
//! read the AWS-owned package and SSM agent buckets it names.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use aws_sdk_ec2::types::{self as t, ResourceType, VpcEndpointType};

use super::{Aws, ResourceKind, ec2, props};
use crate::aws::consistency;
use crate::aws::wait::{self, Backoff, Poll};
use crate::aws::{err, error, tags};
use crate::core::diff::{self, AttrSpec, Change, ChangeAction, Settings, settings};
use crate::core::inspect::{InspectCtx, Inspection, Live};
use crate::core::latency::{self, Transition};
use crate::core::policy::{self, ArnScope};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{EndpointType, Kind, NodeSpec, Props, endpoint_service_name};

pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::with(
        "service",
        ChangeAction::Replace,
        "an endpoint's service cannot change",
        &[],
    ),
    AttrSpec::with(
        "route_tables",
        ChangeAction::Update,
        "the new tables get the S3 route before the old ones lose it",
        &["network.nat_per_az"],
    ),
    AttrSpec::update("subnets", &[]),
    AttrSpec::update("security_groups", &[]),
    AttrSpec::update("policy", &[]),
];

/// The `policy` setting of an endpoint whose policy is pi-deploy's (`endpoint_policy`): the
/// document depends on the account, which `desired` (pure) does not know, so `read`
/// compares the documents and answers this or `OTHER_POLICY`.
pub const OUR_POLICY: &str = "this account only";
/// The `policy` setting of an endpoint with any other policy (AWS's default full access).
pub const OTHER_POLICY: &str = "another policy";

/// The desired settings (pure), with the dependencies' ids.
pub fn desired_settings(service_name: &str, endpoint: &EndpointType, deps: &BTreeMap<String, Outputs>) -> Settings {
    let ids = |keys: &[String]| diff::list(keys.iter().map(|k| super::dep_output(deps, k, "id")));
    let mut s = settings([("service", service_name.to_string())]);
    match endpoint {
        EndpointType::Gateway { route_tables } => {
            s.insert("route_tables".into(), ids(route_tables));
        }
        EndpointType::Interface {
            subnets,
            security_groups,
        } => {
            s.insert("subnets".into(), ids(subnets));
            s.insert("security_groups".into(), ids(security_groups));
        }
    }
    s
}

fn live_settings(e: &t::VpcEndpoint) -> Settings {
    let mut s = settings([("service", e.service_name().unwrap_or_default().to_string())]);
    if e.vpc_endpoint_type() == Some(&VpcEndpointType::Gateway) {
        s.insert("route_tables".into(), diff::list(e.route_table_ids().iter().cloned()));
    } else {
        s.insert("subnets".into(), diff::list(e.subnet_ids().iter().cloned()));
        s.insert(
            "security_groups".into(),
            diff::list(e.groups().iter().filter_map(|g| g.group_id().map(String::from))),
        );
    }
    s
}

/// (to add, to remove) between the live members and the wanted ones.
fn delta(live: &str, want: &str) -> (Vec<String>, Vec<String>) {
    let (live, want) = (diff::members(live), diff::members(want));
    (
        want.iter().filter(|w| !live.contains(w)).cloned().collect(),
        live.iter().filter(|l| !want.contains(l)).cloned().collect(),
    )
}

pub struct VpcEndpoint;

/// The endpoint policy for `service` (`s3` is the gateway endpoint).
pub fn endpoint_policy(scope: &ArnScope<'_>, service: &str) -> serde_json::Value {
    if service == "s3" {
        policy::s3_gateway_endpoint_policy(scope)
    } else {
        policy::interface_endpoint_policy(service, scope.account)
    }
}

fn scope(aws: &Aws) -> ArnScope<'_> {
    ArnScope {
        partition: &aws.env.partition,
        region: &aws.env.region,
        account: &aws.env.account_id,
    }
}

/// Whether the endpoint's policy document says the same as ours.
fn same_policy(found: Option<&str>, desired: &serde_json::Value) -> bool {
    found
        .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .is_some_and(|v| &v == desired)
}

/// An endpoint's lifecycle state. The SDK's `State` enum spells its values `Available`,
/// `Deleted`, ..., but DescribeVpcEndpoints answers `available`, `deleted`, ...: the SDK then
/// parses every value as `Unknown`, so the state is read from its string, ignoring case.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EpState {
    Available,
    Pending,
    Deleting,
    Deleted,
    /// failed, rejected, expired: it will never serve.
    Dead,
    Other,
}

fn ep_state(raw: Option<&str>) -> EpState {
    match raw.unwrap_or_default().to_ascii_lowercase().as_str() {
        "available" => EpState::Available,
        "pending" | "pendingacceptance" => EpState::Pending,
        "deleting" => EpState::Deleting,
        "deleted" => EpState::Deleted,
        "failed" | "rejected" | "expired" => EpState::Dead,
        _ => EpState::Other,
    }
}

/// The live state `status` reports for an endpoint's state.
fn live_of(s: EpState) -> Live {
    match s {
        EpState::Available => Live::Available,
        EpState::Pending | EpState::Other => Live::Creating,
        EpState::Deleting | EpState::Dead => Live::Deleting,
        EpState::Deleted => Live::Missing,
    }
}

fn state_of(e: &t::VpcEndpoint) -> EpState {
    ep_state(e.state().map(|s| s.as_str()))
}

/// Endpoints in these states will never serve: not adopted, and fatal while waiting.
fn is_dead(e: &t::VpcEndpoint) -> bool {
    matches!(state_of(e), EpState::Deleting | EpState::Deleted | EpState::Dead)
}

fn state_name(e: &t::VpcEndpoint) -> String {
    e.state().map_or("unknown", |s| s.as_str()).to_string()
}

fn outputs_of(e: &t::VpcEndpoint) -> Option<Outputs> {
    Some(
        Outputs::new()
            .with("id", e.vpc_endpoint_id()?)
            .with("vpc_id", e.vpc_id().unwrap_or_default())
            .with("service", e.service_name().unwrap_or_default()),
    )
}

async fn describe(aws: &Aws, id: &str) -> Result<Option<t::VpcEndpoint>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_vpc_endpoints()
        .vpc_endpoint_ids(id)
        .send()
        .await
        .map_err(err("describing the VPC endpoint"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.vpc_endpoints().first().cloned()))
}

fn failure(e: &t::VpcEndpoint) -> String {
    let reason = e.failure_reason().or(e.last_error().and_then(|l| l.message()));
    match reason {
        Some(r) => format!("{}: {r}", state_name(e)),
        None => state_name(e),
    }
}

/// One poll while waiting for `available`. NotFound right after create is "not yet". The
/// first poll also screens the recorded endpoint: one that failed or was deleted is replaced
/// (NotFound makes the executor find, skipping dead ones, or create it again); one that dies
/// later fails the wait. So `converge` needs no describe of its own before the wait.
async fn poll_available(aws: &Aws, id: &str, first: bool) -> Result<Poll<t::VpcEndpoint>, ResourceError> {
    availability(id, describe(aws, id).await?, first)
}

fn availability(id: &str, seen: Option<t::VpcEndpoint>, first: bool) -> Result<Poll<t::VpcEndpoint>, ResourceError> {
    let Some(e) = seen else {
        return consistency::not_visible(format!("VPC endpoint {id}"));
    };
    Ok(match state_of(&e) {
        EpState::Available => Poll::Ready(e),
        _ if is_dead(&e) && first => {
            return Err(ResourceError::new(
                ErrorClass::NotFound,
                format!("VPC endpoint {id} is {}", failure(&e)),
            ));
        }
        _ if is_dead(&e) => Poll::Failed(failure(&e)),
        _ => Poll::Pending(state_name(&e)),
    })
}

async fn poll_deleted(aws: &Aws, id: &str) -> Result<Poll<()>, ResourceError> {
    let Some(e) = describe(aws, id).await? else {
        return Ok(Poll::Ready(()));
    };
    Ok(match state_of(&e) {
        EpState::Deleted => Poll::Ready(()),
        EpState::Dead => Poll::Failed(failure(&e)),
        _ => Poll::Pending(state_name(&e)),
    })
}

/// DeleteVpcEndpoints reports per-endpoint failures in the response, not as an error.
fn unsuccessful(
    out: &aws_sdk_ec2::operation::delete_vpc_endpoints::DeleteVpcEndpointsOutput,
) -> Result<(), ResourceError> {
    let Some(item) = out.unsuccessful().first() else {
        return Ok(());
    };
    let code = item.error().and_then(|e| e.code()).unwrap_or_default();
    let message = item.error().and_then(|e| e.message()).unwrap_or_default();
    let class = error::class_of(code, message);
    let e = ResourceError::new(
        class,
        format!("deleting VPC endpoint {}: {message}", item.resource_id().unwrap_or("?")),
    );
    Err(if code.is_empty() { e } else { e.with_code(code) })
}

#[async_trait]
impl ResourceKind for VpcEndpoint {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let out = aws
            .clients
            .ec2
            .describe_vpc_endpoints()
            .set_filters(Some(tags::ec2_filters(&aws.env.deployment, &cx.spec.key)))
            .send()
            .await
            .map_err(err("looking up the VPC endpoint by tag"))?;
        Ok(out
            .vpc_endpoints()
            .iter()
            .filter(|e| !is_dead(e))
            .find(|e| tags::ec2_is_ours(e.tags(), &aws.env.deployment, &cx.spec.key))
            .and_then(outputs_of))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (vpc, service, endpoint) = props!(cx, VpcEndpoint { vpc, service, endpoint });
        let vpc_id = cx.dep_id(vpc)?;
        let service_name = endpoint_service_name(&aws.env.region, service);
        let ids = |keys: &[String]| {
            keys.iter()
                .map(|k| cx.dep_id(k).map(String::from))
                .collect::<Result<Vec<_>, _>>()
        };
        let b = aws
            .clients
            .ec2
            .create_vpc_endpoint()
            .vpc_id(vpc_id)
            .service_name(&service_name)
            .policy_document(endpoint_policy(&scope(aws), service).to_string())
            .client_token(cx.token)
            .tag_specifications(tags::ec2_spec(
                ResourceType::VpcEndpoint,
                &aws.env.deployment,
                &cx.spec.key,
            ));
        let b = match endpoint {
            EndpointType::Interface {
                subnets,
                security_groups,
            } => b
                .vpc_endpoint_type(VpcEndpointType::Interface)
                .set_subnet_ids(Some(ids(subnets)?))
                .set_security_group_ids(Some(ids(security_groups)?))
                .private_dns_enabled(true),
            EndpointType::Gateway { route_tables } => b
                .vpc_endpoint_type(VpcEndpointType::Gateway)
                .set_route_table_ids(Some(ids(route_tables)?)),
        };
        let out = b.send().await.map_err(err("creating the VPC endpoint"))?;
        let id = out.vpc_endpoint().and_then(|e| e.vpc_endpoint_id()).unwrap_or_default();
        // A token that names an existing endpoint answers its state, maybe `available`.
        if out.vpc_endpoint().is_some_and(|e| state_of(e) == EpState::Pending) {
            aws.started.note(id);
        }
        Ok(Outputs::new()
            .with("id", id)
            .with("vpc_id", vpc_id)
            .with("service", service_name))
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (service, endpoint) = props!(cx, VpcEndpoint { service, endpoint });
        let gateway = matches!(endpoint, EndpointType::Gateway { .. });
        let id = outputs.id()?.to_string();
        let first = AtomicBool::new(true);
        let e = wait::wait_for(
            &format!("VPC endpoint {id} to become available"),
            latency::create_deadline(Kind::VpcEndpoint),
            Backoff::expecting(Transition::EndpointCreate { gateway }, aws.started.get(&id)),
            || poll_available(aws, &id, first.swap(false, Ordering::Relaxed)),
        )
        .await?;
        // An adopted endpoint, or one whose policy was changed by hand.
        let desired = endpoint_policy(&scope(aws), service);
        if !same_policy(e.policy_document(), &desired) {
            aws.clients
                .ec2
                .modify_vpc_endpoint()
                .vpc_endpoint_id(&id)
                .policy_document(desired.to_string())
                .send()
                .await
                .map_err(err("setting the VPC endpoint's policy"))?;
        }
        Ok(outputs_of(&e).unwrap_or(outputs))
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            // The region is not in the props: the recorded service name stands for it.
            Props::VpcEndpoint { endpoint, .. } => {
                let mut s = desired_settings("", endpoint, deps);
                s.remove("service");
                s.insert("policy".into(), OUR_POLICY.into());
                s
            }
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        Ok(match describe(aws, outputs.id()?).await? {
            Some(e) if !is_dead(&e) => {
                let mut live = live_settings(&e);
                if let Props::VpcEndpoint { service, .. } = &cx.spec.props {
                    let ours = same_policy(e.policy_document(), &endpoint_policy(&scope(aws), service));
                    live.insert("policy".into(), if ours { OUR_POLICY } else { OTHER_POLICY }.into());
                }
                Observed::Present(live)
            }
            _ => Observed::Missing,
        })
    }

    /// ModifyVpcEndpoint: what is missing is added, what is no longer wanted removed, in
    /// one call; then the same wait as after a create.
    async fn update(
        &self,
        aws: &Aws,
        cx: &NodeCtx<'_>,
        outputs: Outputs,
        changes: &[Change],
    ) -> Result<Outputs, ResourceError> {
        let mut req = aws.clients.ec2.modify_vpc_endpoint().vpc_endpoint_id(outputs.id()?);
        // A changed policy alone is converge's to put back.
        if changes.iter().all(|c| c.attribute == "policy") {
            return self.converge(aws, cx, outputs).await;
        }
        for c in changes {
            let (add, remove) = delta(&c.old, &c.new);
            req = match c.attribute.as_str() {
                "route_tables" => req
                    .set_add_route_table_ids(Some(add))
                    .set_remove_route_table_ids(Some(remove)),
                "subnets" => req.set_add_subnet_ids(Some(add)).set_remove_subnet_ids(Some(remove)),
                "security_groups" => req
                    .set_add_security_group_ids(Some(add))
                    .set_remove_security_group_ids(Some(remove)),
                _ => req,
            };
        }
        req.send().await.map_err(err("modifying the VPC endpoint"))?;
        self.converge(aws, cx, outputs).await
    }

    async fn inspect(&self, aws: &Aws, cx: &InspectCtx<'_>) -> Result<Inspection, ResourceError> {
        Ok(match describe(aws, cx.outputs.id()?).await? {
            None => Inspection::missing(),
            // The policy is compared by `status` through `read` and the diff.
            Some(e) => match live_of(state_of(&e)) {
                Live::Available => Inspection::available(),
                live => Inspection::of(live).with_detail(state_name(&e)),
            },
        })
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let id = cx.outputs.id()?;
        // The spec makes S3's endpoint the only gateway endpoint.
        let gateway = cx.outputs.get("service").is_some_and(|s| s.ends_with(".s3"));
        let started = ec2::delete_started(Kind::VpcEndpoint, &format!("deleting VPC endpoint {id}"), || async {
            let out = aws
                .clients
                .ec2
                .delete_vpc_endpoints()
                .vpc_endpoint_ids(id)
                .send()
                .await
                .map_err(err("deleting the VPC endpoint"))?;
            unsuccessful(&out)
        })
        .await?;
        wait::wait_for(
            &format!("VPC endpoint {id} to be deleted"),
            latency::delete_deadline(Kind::VpcEndpoint),
            Backoff::expecting(Transition::EndpointDelete { gateway }, started),
            || poll_deleted(aws, id),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::operation::delete_vpc_endpoints::DeleteVpcEndpointsOutput;
    use aws_sdk_ec2::types::{UnsuccessfulItem, UnsuccessfulItemError};

    fn failed_with(code: &str) -> DeleteVpcEndpointsOutput {
        DeleteVpcEndpointsOutput::builder()
            .unsuccessful(
                UnsuccessfulItem::builder()
                    .resource_id("vpce-1")
                    .error(UnsuccessfulItemError::builder().code(code).message("nope").build())
                    .build(),
            )
            .build()
    }

    #[test]
    fn route_tables_moved_are_an_update_with_adds_and_removes() {
        let deps: BTreeMap<String, Outputs> = [
            ("rt-private-a".to_string(), Outputs::new().with("id", "rtb-a")),
            ("rt-private-b".to_string(), Outputs::new().with("id", "rtb-b")),
        ]
        .into();
        let want = desired_settings(
            "com.amazonaws.eu-west-1.s3",
            &EndpointType::Gateway {
                route_tables: vec!["rt-private-a".into(), "rt-private-b".into()],
            },
            &deps,
        );
        let e = t::VpcEndpoint::builder()
            .vpc_endpoint_type(VpcEndpointType::Gateway)
            .service_name("com.amazonaws.eu-west-1.s3")
            .route_table_ids("rtb-old")
            .build();
        let c = diff::diff(ATTRS, &want, &live_settings(&e), None);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].attribute.as_str(), c[0].action),
            ("route_tables", ChangeAction::Update)
        );
        assert_eq!(
            delta(&c[0].old, &c[0].new),
            (
                vec!["rtb-a".to_string(), "rtb-b".to_string()],
                vec!["rtb-old".to_string()]
            )
        );
        let other = settings([("service", "com.amazonaws.eu-west-1.dynamodb".to_string())]);
        assert_eq!(diff::diff(ATTRS, &want, &other, None)[0].action, ChangeAction::Replace);
    }

    #[test]
    fn states_are_read_whatever_their_case() {
        assert_eq!(ep_state(Some("available")), EpState::Available);
        assert_eq!(ep_state(Some("Available")), EpState::Available);
        assert_eq!(ep_state(Some("pendingAcceptance")), EpState::Pending);
        assert_eq!(ep_state(Some("deleted")), EpState::Deleted);
        assert_eq!(ep_state(Some("rejected")), EpState::Dead);
        assert_eq!(ep_state(None), EpState::Other);
        let e = t::VpcEndpoint::builder().state(t::State::from("available")).build();
        assert_eq!(state_of(&e), EpState::Available);
    }

    #[test]
    fn a_dead_endpoint_is_replaced_on_the_first_poll_and_fails_a_later_one() {
        let with = |state: &str| Some(t::VpcEndpoint::builder().state(t::State::from(state)).build());
        let replaced = availability("vpce-1", with("failed"), true).unwrap_err();
        assert!(replaced.is(ErrorClass::NotFound), "{replaced:?}");
        assert!(matches!(
            availability("vpce-1", with("deleted"), false),
            Ok(Poll::Failed(_))
        ));
        assert!(matches!(
            availability("vpce-1", with("pending"), true),
            Ok(Poll::Pending(_))
        ));
        assert!(matches!(
            availability("vpce-1", with("available"), true),
            Ok(Poll::Ready(_))
        ));
        // Unknown: gone, outside the consistency window of this run's own create (inside
        // it, "not yet": src/aws/consistency.rs).
        assert!(availability("vpce-1", None, true).is_err_and(|e| e.is(ErrorClass::NotFound)));
    }

    #[test]
    fn per_endpoint_failures_in_the_response_are_classified_errors() {
        assert!(unsuccessful(&DeleteVpcEndpointsOutput::builder().build()).is_ok());
        let gone = unsuccessful(&failed_with("InvalidVpcEndpoint.NotFound")).unwrap_err();
        assert!(gone.is(ErrorClass::NotFound), "{gone:?}");
        assert_eq!(gone.code.as_deref(), Some("InvalidVpcEndpoint.NotFound"));
        assert!(
            unsuccessful(&failed_with("DependencyViolation"))
                .unwrap_err()
                .is(ErrorClass::InUse)
        );
    }
}
