//! The internet-facing Application Load Balancer in the public subnets, guarded by the alb
//! security group, dropping invalid header fields, writing access logs into the logs
//! bucket when the config asks for them (`logging.alb_access_logs`). Creation takes minutes on AWS
//! (`provisioning` -> `active`, median ~150 s), so `create` returns the ARN at once and
//! `converge` waits. Its delete waits until it is gone, and then until its network interfaces
//! are gone too: they linger for minutes after the load balancer (AWS releases them on its
//! own), hold public addresses, and until they go the internet gateway cannot be detached
//! (DependencyViolation, "mapped public address(es)") nor the public subnets deleted. Those
//! deletes retry only for a few minutes; waiting here, on what actually blocks them, with the
//! load balancer's own budget, keeps them from giving up.

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    self as t, IpAddressType, LoadBalancerAttribute, LoadBalancerSchemeEnum, LoadBalancerStateEnum,
    LoadBalancerTypeEnum,
};

use super::{Aws, ResourceKind, ec2, elb, observe, props};
use crate::aws::consistency;
use crate::aws::err;
use crate::aws::wait::{self, Backoff, Poll};
use std::collections::BTreeMap;

use crate::core::diff::{AttrSpec, Settings, settings};
use crate::core::latency::{self, Transition};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, NodeSpec, Props};

pub struct LoadBalancer;

/// Access logging: `s3://<bucket>/<prefix>` or `off`; deletion protection (always `on`: a
/// load balancer deleted by hand or by another tool takes the dashboard offline; `destroy`
/// turns it off just before its delete). Both set in place.
pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::update("access_logs", &["logging.alb_access_logs"]),
    AttrSpec::update("deletion_protection", &[]),
];

const DELETION_PROTECTION: &str = "deletion_protection.enabled";

/// The `access_logs` setting.
pub fn access_logs_setting(on: Option<(&str, &str)>) -> String {
    match on {
        Some((bucket, prefix)) => format!("s3://{bucket}/{prefix}"),
        None => "off".to_string(),
    }
}

/// The `access_logs` setting from the load balancer's attributes.
pub fn live_access_logs(attrs: &[LoadBalancerAttribute]) -> String {
    let get = |k: &str| attrs.iter().find(|a| a.key() == Some(k)).and_then(|a| a.value());
    if get("access_logs.s3.enabled") == Some("true") {
        access_logs_setting(Some((
            get("access_logs.s3.bucket").unwrap_or_default(),
            get("access_logs.s3.prefix").unwrap_or_default(),
        )))
    } else {
        access_logs_setting(None)
    }
}

/// Attributes set after create, as (key, value).
pub const ATTRIBUTES: [(&str, &str); 2] = [
    ("routing.http.drop_invalid_header_fields.enabled", "true"),
    (DELETION_PROTECTION, "true"),
];

/// The `deletion_protection` setting from the load balancer's attributes.
pub fn live_deletion_protection(attrs: &[LoadBalancerAttribute]) -> String {
    let on = attrs
        .iter()
        .any(|a| a.key() == Some(DELETION_PROTECTION) && a.value() == Some("true"));
    if on { "on" } else { "off" }.to_string()
}

/// Every attribute `converge` sets: `ATTRIBUTES`, and access logging on into `bucket` under
/// `prefix`, or off.
pub fn attributes(access_logs: Option<(&str, &str)>) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = ATTRIBUTES.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    match access_logs {
        Some((bucket, prefix)) => {
            all.push(("access_logs.s3.enabled".into(), "true".into()));
            all.push(("access_logs.s3.bucket".into(), bucket.into()));
            all.push(("access_logs.s3.prefix".into(), prefix.into()));
        }
        None => all.push(("access_logs.s3.enabled".into(), "false".into())),
    }
    all
}

fn outputs_of(lb: &t::LoadBalancer) -> Option<Outputs> {
    let arn = lb.load_balancer_arn()?;
    Some(
        Outputs::new()
            .with("id", arn)
            .with("name", lb.load_balancer_name().unwrap_or_default())
            .with("dns_name", lb.dns_name().unwrap_or_default())
            .with(
                "canonical_hosted_zone_id",
                lb.canonical_hosted_zone_id().unwrap_or_default(),
            )
            .with("arn_suffix", elb::arn_suffix(arn).unwrap_or_default()),
    )
}

/// What one look at the load balancer means while waiting for `active`.
pub fn active_poll(state: Option<&t::LoadBalancerState>) -> Poll<()> {
    let code = state.and_then(|s| s.code());
    match code {
        Some(LoadBalancerStateEnum::Active) => Poll::Ready(()),
        Some(LoadBalancerStateEnum::Failed) => {
            let reason = state.and_then(|s| s.reason()).unwrap_or("no reason given");
            Poll::Failed(format!("failed: {reason}"))
        }
        Some(c) => Poll::Pending(c.as_str().to_string()),
        None => Poll::Pending("unknown".into()),
    }
}

pub(super) async fn describe(aws: &Aws, arn: &str) -> Result<Option<t::LoadBalancer>, ResourceError> {
    let out = aws
        .clients
        .elb
        .describe_load_balancers()
        .load_balancer_arns(arn)
        .send()
        .await
        .map_err(err("describing the load balancer"));
    Ok(ec2::not_found_is_none(out)?.and_then(|o| o.load_balancers().first().cloned()))
}

#[async_trait]
impl ResourceKind for LoadBalancer {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (name,) = props!(cx, LoadBalancer { name });
        let out = aws
            .clients
            .elb
            .describe_load_balancers()
            .names(name)
            .send()
            .await
            .map_err(err("looking up the load balancer by name"));
        let Some(lb) = ec2::not_found_is_none(out)?.and_then(|o| o.load_balancers().first().cloned()) else {
            return Ok(None);
        };
        if !elb::is_ours(aws, lb.load_balancer_arn().unwrap_or_default(), &cx.spec.key).await? {
            return Err(elb::foreign("load balancer", name));
        }
        Ok(outputs_of(&lb))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (name, subnets, security_group) = props!(
            cx,
            LoadBalancer {
                name,
                subnets,
                security_group
            }
        );
        let subnet_ids = subnets
            .iter()
            .map(|k| cx.dep_id(k).map(String::from))
            .collect::<Result<Vec<_>, _>>()?;
        // CreateLoadBalancer with the same name and settings returns the existing one.
        let out = aws
            .clients
            .elb
            .create_load_balancer()
            .name(name)
            .r#type(LoadBalancerTypeEnum::Application)
            .scheme(LoadBalancerSchemeEnum::InternetFacing)
            .ip_address_type(IpAddressType::Ipv4)
            .set_subnets(Some(subnet_ids))
            .security_groups(cx.dep_id(security_group)?)
            .set_tags(Some(elb::elb_tags(&aws.env.deployment, &cx.spec.key)))
            .send()
            .await
            .map_err(err("creating the load balancer"))?;
        let lb = out.load_balancers().first();
        // The same name and settings answer the existing one, maybe `active`.
        if let Some(lb) = lb
            && lb.state().and_then(|s| s.code()) == Some(&LoadBalancerStateEnum::Provisioning)
            && let Some(arn) = lb.load_balancer_arn()
        {
            aws.started.note(arn);
        }
        lb.and_then(outputs_of)
            .ok_or_else(|| ResourceError::new(ErrorClass::Other, "CreateLoadBalancer returned no load balancer"))
    }

    async fn converge(&self, aws: &Aws, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let (access_logs,) = props!(cx, LoadBalancer { access_logs });
        let logs = match access_logs {
            Some(l) => Some((cx.dep_id(&l.bucket)?, l.prefix.as_str())),
            None => None,
        };
        let arn = outputs.id()?.to_string();
        let lb = wait::wait_for(
            &format!("load balancer {arn} to become active"),
            latency::create_deadline(Kind::LoadBalancer),
            // A read at once all the same: some implementations answer `provisioning` to the
            // create and `active` to the first read.
            Backoff::expecting(Transition::LoadBalancerCreate, aws.started.get(&arn)).look_first(),
            || async {
                // Right after create, ELB may not know the ARN yet: not found means not yet.
                let Some(lb) = describe(aws, &arn).await? else {
                    return consistency::not_visible(format!("load balancer {arn}"));
                };
                Ok(match active_poll(lb.state()) {
                    Poll::Ready(()) => Poll::Ready(lb),
                    Poll::Pending(s) => Poll::Pending(s),
                    Poll::Failed(s) => Poll::Failed(s),
                })
            },
        )
        .await?;
        // With logging on, ELB checks here that the bucket policy lets it write.
        let attrs: Vec<LoadBalancerAttribute> = attributes(logs)
            .into_iter()
            .map(|(k, v)| LoadBalancerAttribute::builder().key(k).value(v).build())
            .collect();
        aws.clients
            .elb
            .modify_load_balancer_attributes()
            .load_balancer_arn(&arn)
            .set_attributes(Some(attrs))
            .send()
            .await
            .map_err(err("setting the load balancer's attributes"))?;
        Ok(outputs_of(&lb).unwrap_or(outputs))
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        match &spec.props {
            Props::LoadBalancer { access_logs, .. } => {
                let bucket = access_logs.as_ref().map(|l| super::dep_output(deps, &l.bucket, "id"));
                let on = access_logs
                    .as_ref()
                    .zip(bucket.as_deref())
                    .map(|(l, b)| (b, l.prefix.as_str()));
                settings([
                    ("access_logs", access_logs_setting(on)),
                    ("deletion_protection", "on".to_string()),
                ])
            }
            _ => Settings::new(),
        }
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let arn = outputs.id()?;
        if describe(aws, arn).await?.is_none() {
            return Ok(Observed::Missing);
        }
        let out = aws
            .clients
            .elb
            .describe_load_balancer_attributes()
            .load_balancer_arn(arn)
            .send()
            .await
            .map_err(err("reading the load balancer's attributes"));
        Ok(observe::observed(ec2::not_found_is_none(out)?, |o| {
            settings([
                ("access_logs", live_access_logs(o.attributes())),
                ("deletion_protection", live_deletion_protection(o.attributes())),
            ])
        }))
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let arn = cx.outputs.id()?;
        // Our own protection off first (AWS refuses the delete with OperationNotPermitted
        // while it is on); a load balancer already gone is what the delete wants.
        let off = aws
            .clients
            .elb
            .modify_load_balancer_attributes()
            .load_balancer_arn(arn)
            .attributes(
                LoadBalancerAttribute::builder()
                    .key(DELETION_PROTECTION)
                    .value("false")
                    .build(),
            )
            .send()
            .await
            .map_err(err("turning the load balancer's deletion protection off"));
        if ec2::not_found_is_none(off)?.is_some() {
            ec2::delete_retrying(Kind::LoadBalancer, &format!("deleting load balancer {arn}"), || async {
                aws.clients
                    .elb
                    .delete_load_balancer()
                    .load_balancer_arn(arn)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(err("deleting the load balancer"))
            })
            .await?;
        }
        let description = eni_description(arn);
        wait::wait_for(
            &format!("load balancer {arn} to be deleted"),
            latency::delete_deadline(Kind::LoadBalancer),
            Backoff::SLOW,
            || async {
                Ok(match describe(aws, arn).await? {
                    None => Poll::Ready(()),
                    Some(lb) => Poll::Pending(
                        lb.state()
                            .and_then(|s| s.code())
                            .map_or("deleting", |c| c.as_str())
                            .to_string(),
                    ),
                })
            },
        )
        .await?;
        let Some(description) = description else {
            return Ok(());
        };
        wait_enis_released(&description, eni_release_deadline(), Backoff::SLOW, || {
            lingering_enis(aws, &description)
        })
        .await
    }
}

/// What AWS writes in the description of an Application Load Balancer's network interfaces:
/// `ELB app/<name>/<id>` (the ARN's resource part after `loadbalancer/`).
pub fn eni_description(arn: &str) -> Option<String> {
    elb::arn_suffix(arn)
        .filter(|s| s.starts_with("app/"))
        .map(|s| format!("ELB {s}"))
}

/// How long the interfaces of a deleted load balancer may linger: the kind's delete budget
/// (three times the model's slow figure for them, at least 5 minutes).
pub fn eni_release_deadline() -> std::time::Duration {
    latency::delete_deadline(Kind::LoadBalancer)
}

/// Ready once none of the load balancer's interfaces is left; else their ids and states.
pub fn enis_poll(enis: &[(String, String)]) -> Poll<()> {
    if enis.is_empty() {
        return Poll::Ready(());
    }
    Poll::Pending(
        enis.iter()
            .map(|(id, status)| format!("{id} {status}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// Wait until `list` returns no interface (`(id, status)` pairs).
async fn wait_enis_released<F, Fut>(
    description: &str,
    deadline: std::time::Duration,
    backoff: Backoff,
    mut list: F,
) -> Result<(), ResourceError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<(String, String)>, ResourceError>>,
{
    wait::wait_for(
        &format!("the network interfaces \"{description}\" to be released"),
        deadline,
        backoff,
        || {
            let listed = list();
            async move { Ok(enis_poll(&listed.await?)) }
        },
    )
    .await
    .map_err(|e| {
        e.with_hint(
            "AWS releases a deleted load balancer's network interfaces on its own, usually within minutes; \
             run `pi-deploy destroy` again to keep waiting",
        )
    })
}

async fn lingering_enis(aws: &Aws, description: &str) -> Result<Vec<(String, String)>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_network_interfaces()
        .filters(ec2::filter("description", [description]))
        .send()
        .await
        .map_err(err("listing the load balancer's network interfaces"))?;
    Ok(out
        .network_interfaces()
        .iter()
        .filter(|n| n.description() == Some(description))
        .map(|n| {
            (
                n.network_interface_id().unwrap_or("?").to_string(),
                n.status().map_or("unknown", |s| s.as_str()).to_string(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interfaces_are_found_by_the_description_aws_gives_them() {
        assert_eq!(
            eni_description(
                "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/pi-alb/50dc6c495c0c9188"
            )
            .as_deref(),
            Some("ELB app/pi-alb/50dc6c495c0c9188")
        );
        assert_eq!(
            eni_description("arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/pi-tg/1"),
            None
        );
    }

    /// The interfaces linger after the load balancer is gone (1-3 min, the model's slow
    /// figure): the wait covers that with room, and the IGW detach and subnet deletes start
    /// only after it. No emulator keeps them: scripted here.
    #[tokio::test(start_paused = true)]
    async fn destroy_waits_for_lingering_interfaces_within_the_budget() {
        let slow = latency::delete_timing(Kind::LoadBalancer).slow_s;
        assert!(
            eni_release_deadline().as_secs_f64() >= 2.0 * slow,
            "{:?}",
            eni_release_deadline()
        );
        // Two interfaces for ~3 minutes (the slow figure), then one, then none.
        let start = tokio::time::Instant::now();
        let calls = std::sync::atomic::AtomicUsize::new(0);
        wait_enis_released("ELB app/pi-alb/1", eni_release_deadline(), Backoff::SLOW, || {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let t = start.elapsed().as_secs();
            let enis: Vec<(String, String)> = match t {
                0..180 => vec![("eni-1".into(), "in-use".into()), ("eni-2".into(), "in-use".into())],
                180..200 => vec![("eni-2".into(), "available".into())],
                _ => vec![],
            };
            std::future::ready(Ok(enis))
        })
        .await
        .unwrap();
        assert!(start.elapsed() >= std::time::Duration::from_secs(200));
        assert!(calls.load(std::sync::atomic::Ordering::SeqCst) > 2);
    }

    #[tokio::test(start_paused = true)]
    async fn interfaces_that_never_go_fail_at_the_budget_naming_them() {
        let e = wait_enis_released("ELB app/pi-alb/1", eni_release_deadline(), Backoff::SLOW, || {
            std::future::ready(Ok(vec![("eni-9".to_string(), "in-use".to_string())]))
        })
        .await
        .unwrap_err();
        assert!(e.is(ErrorClass::Timeout), "{e:?}");
        assert!(e.message.contains("eni-9 in-use"), "{}", e.message);
        assert!(e.hint.as_deref().is_some_and(|h| h.contains("destroy")), "{e:?}");
    }

    fn state(code: LoadBalancerStateEnum, reason: Option<&str>) -> t::LoadBalancerState {
        t::LoadBalancerState::builder()
            .code(code)
            .set_reason(reason.map(String::from))
            .build()
    }

    #[test]
    fn access_logs_are_switched_on_into_the_bucket_prefix_or_off() {
        let on = attributes(Some(("pi-logs-1-eu-west-1", "alb")));
        let get = |all: &[(String, String)], k: &str| all.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(get(&on, "access_logs.s3.enabled").as_deref(), Some("true"));
        assert_eq!(
            get(&on, "access_logs.s3.bucket").as_deref(),
            Some("pi-logs-1-eu-west-1")
        );
        assert_eq!(get(&on, "access_logs.s3.prefix").as_deref(), Some("alb"));
        assert_eq!(
            get(&on, "routing.http.drop_invalid_header_fields.enabled").as_deref(),
            Some("true")
        );
        assert_eq!(get(&on, "deletion_protection.enabled").as_deref(), Some("true"));
        let off = attributes(None);
        assert_eq!(get(&off, "deletion_protection.enabled").as_deref(), Some("true"));
        assert_eq!(get(&off, "access_logs.s3.enabled").as_deref(), Some("false"));
        assert_eq!(get(&off, "access_logs.s3.bucket"), None);
    }

    #[test]
    fn provisioning_then_active_then_failed() {
        assert!(
            matches!(active_poll(Some(&state(LoadBalancerStateEnum::Provisioning, None))), Poll::Pending(s) if s == "provisioning")
        );
        assert!(matches!(
            active_poll(Some(&state(LoadBalancerStateEnum::Active, None))),
            Poll::Ready(())
        ));
        assert!(matches!(active_poll(None), Poll::Pending(_)));
        match active_poll(Some(&state(LoadBalancerStateEnum::Failed, Some("no IGW")))) {
            Poll::Failed(s) => assert!(s.contains("no IGW")),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_wait_follows_a_scripted_sequence() {
        let seq = std::sync::Mutex::new(vec![
            state(LoadBalancerStateEnum::Provisioning, None),
            state(LoadBalancerStateEnum::Provisioning, None),
            state(LoadBalancerStateEnum::Active, None),
        ]);
        let polls = std::sync::atomic::AtomicUsize::new(0);
        wait::wait_for("alb", std::time::Duration::from_secs(600), Backoff::SLOW, || {
            polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let s = seq.lock().unwrap().remove(0);
            std::future::ready(Ok(active_poll(Some(&s))))
        })
        .await
        .unwrap();
        assert_eq!(polls.load(std::sync::atomic::Ordering::SeqCst), 3);
        let e = wait::wait_for("alb", std::time::Duration::from_secs(600), Backoff::SLOW, || {
            std::future::ready(Ok(active_poll(Some(&state(
                LoadBalancerStateEnum::Failed,
                Some("capacity"),
            )))))
        })
        .await
        .unwrap_err();
        assert_eq!(e.class, ErrorClass::Failed);
    }
}
