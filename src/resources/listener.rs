//! The load balancer's listeners. With a certificate: HTTP 80 redirects to HTTPS 443
//! (HTTP_301) and 443 forwards to the target group with the certificate and a TLS 1.2+ policy.
//! Without one: HTTP 80 forwards. A listener is found again by its load balancer and port.
//!
//! `check_certificate` runs before `up` creates anything: a certificate that does not exist in
//! the region, is not ISSUED, or does not cover the configured domain would otherwise fail
//! only when the 443 listener is created, minutes into the run.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_elasticloadbalancingv2::types::{
    self as t, Action, ActionTypeEnum, Certificate, ProtocolEnum, RedirectActionConfig, RedirectActionStatusCodeEnum,
};

use super::{Aws, ResourceKind, ec2, elb, props};
use crate::aws::err;
use crate::core::diff::{AttrSpec, Change, ChangeAction, Settings, settings};
use crate::core::resource::{DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use crate::core::spec::{Kind, ListenerAction, NodeSpec, Props};

pub struct Listener;

pub const ATTRS: &[AttrSpec] = &[
    AttrSpec::update("protocol", &["certificate_arn"]),
    AttrSpec::with(
        "action",
        ChangeAction::Update,
        "switched atomically (port 80 redirects once HTTPS exists)",
        &["certificate_arn"],
    ),
    AttrSpec::with(
        "certificate",
        ChangeAction::Update,
        "new TLS handshakes use the new certificate",
        &["certificate_arn"],
    ),
    AttrSpec::with(
        "tls_policy",
        ChangeAction::Update,
        "established connections keep theirs",
        &["tls_policy"],
    ),
];

fn action_text(a: &Action) -> String {
    match a.r#type() {
        Some(ActionTypeEnum::Redirect) => {
            let r = a.redirect_config();
            format!(
                "redirect to {}:{}",
                r.and_then(|r| r.protocol()).unwrap_or("?"),
                r.and_then(|r| r.port()).unwrap_or("?")
            )
        }
        Some(ActionTypeEnum::Forward) => format!("forward to {}", a.target_group_arn().unwrap_or("?")),
        other => other.map_or("?", |t| t.as_str()).to_string(),
    }
}

/// The settings of a listener shape (desired or live), pure.
pub fn shape_settings(s: &ListenerShape) -> Settings {
    settings([
        ("protocol", s.protocol.as_str().to_string()),
        ("action", action_text(&s.action)),
        ("certificate", crate::core::diff::opt(s.certificate_arn.as_deref())),
        ("tls_policy", crate::core::diff::opt(s.ssl_policy.as_deref())),
    ])
}

fn desired_shape(spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Option<ListenerShape> {
    let Props::Listener { action, .. } = &spec.props else {
        return None;
    };
    let tg = match action {
        ListenerAction::Forward { target_group, .. } => Some(super::dep_output(deps, target_group, "id")),
        ListenerAction::RedirectToHttps => None,
    };
    Some(shape(action, tg.as_deref()))
}

/// A described listener as a shape. The certificate and the TLS policy mean something only
/// for HTTPS (some implementations report a default policy on plain HTTP listeners too).
fn live_shape(l: &t::Listener) -> ListenerShape {
    let protocol = l.protocol().cloned().unwrap_or(ProtocolEnum::Http);
    let tls = protocol == ProtocolEnum::Https;
    ListenerShape {
        certificate_arn: l
            .certificates()
            .iter()
            .find(|c| c.is_default() != Some(false))
            .and_then(|c| c.certificate_arn())
            .filter(|_| tls)
            .map(String::from),
        ssl_policy: l.ssl_policy().filter(|_| tls).map(String::from),
        protocol,
        action: l
            .default_actions()
            .first()
            .cloned()
            .unwrap_or_else(|| Action::builder().r#type(ActionTypeEnum::Forward).build()),
    }
}

/// One listener's request, with keys resolved to ARNs.
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerShape {
    pub protocol: ProtocolEnum,
    pub certificate_arn: Option<String>,
    pub ssl_policy: Option<String>,
    pub action: Action,
}

/// The request for `action` on `port`; `target_group_arn` is the forward target's ARN.
pub fn shape(action: &ListenerAction, target_group_arn: Option<&str>) -> ListenerShape {
    match action {
        ListenerAction::RedirectToHttps => ListenerShape {
            protocol: ProtocolEnum::Http,
            certificate_arn: None,
            ssl_policy: None,
            action: Action::builder()
                .r#type(ActionTypeEnum::Redirect)
                .redirect_config(
                    RedirectActionConfig::builder()
                        .protocol("HTTPS")
                        .port("443")
                        .host("#{host}")
                        .path("/#{path}")
                        .query("#{query}")
                        .status_code(RedirectActionStatusCodeEnum::Http301)
                        .build(),
                )
                .build(),
        },
        ListenerAction::Forward {
            certificate_arn,
            tls_policy,
            ..
        } => ListenerShape {
            protocol: if certificate_arn.is_some() {
                ProtocolEnum::Https
            } else {
                ProtocolEnum::Http
            },
            certificate_arn: certificate_arn.clone(),
            ssl_policy: certificate_arn.as_ref().and(tls_policy.clone()),
            action: Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .set_target_group_arn(target_group_arn.map(String::from))
                .build(),
        },
    }
}

fn outputs_of(l: &t::Listener) -> Option<Outputs> {
    Some(
        Outputs::new()
            .with("id", l.listener_arn()?)
            .with("port", l.port().unwrap_or_default().to_string())
            .with("load_balancer_arn", l.load_balancer_arn().unwrap_or_default()),
    )
}

#[async_trait]
impl ResourceKind for Listener {
    async fn find(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let (load_balancer, port) = props!(cx, Listener { load_balancer, port });
        let out = aws
            .clients
            .elb
            .describe_listeners()
            .load_balancer_arn(cx.dep_id(load_balancer)?)
            .send()
            .await
            .map_err(err("listing the load balancer's listeners"))?;
        Ok(out
            .listeners()
            .iter()
            .find(|l| l.port() == Some(*port))
            .and_then(outputs_of))
    }

    async fn create(&self, aws: &Aws, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let (load_balancer, port, action) = props!(
            cx,
            Listener {
                load_balancer,
                port,
                action
            }
        );
        let tg_arn = match action {
            ListenerAction::Forward { target_group, .. } => Some(cx.dep_id(target_group)?),
            ListenerAction::RedirectToHttps => None,
        };
        let s = shape(action, tg_arn);
        let out = aws
            .clients
            .elb
            .create_listener()
            .load_balancer_arn(cx.dep_id(load_balancer)?)
            .port(*port)
            .protocol(s.protocol)
            .set_certificates(
                s.certificate_arn
                    .map(|arn| vec![Certificate::builder().certificate_arn(arn).build()]),
            )
            .set_ssl_policy(s.ssl_policy)
            .default_actions(s.action)
            .set_tags(Some(elb::elb_tags(&aws.env.deployment, &cx.spec.key)))
            .send()
            .await
            .map_err(err("creating the listener"))?;
        out.listeners()
            .first()
            .and_then(outputs_of)
            .ok_or_else(|| ResourceError::new(ErrorClass::Other, "CreateListener returned no listener"))
    }

    fn attrs(&self) -> &'static [AttrSpec] {
        ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        desired_shape(spec, deps).map_or_else(Settings::new, |s| shape_settings(&s))
    }

    async fn read(&self, aws: &Aws, _cx: &NodeCtx<'_>, outputs: &Outputs) -> Result<Observed, ResourceError> {
        let out = aws
            .clients
            .elb
            .describe_listeners()
            .listener_arns(outputs.id()?)
            .send()
            .await
            .map_err(err("reading the listener"));
        Ok(
            match ec2::not_found_is_none(out)?.and_then(|o| o.listeners().first().cloned()) {
                Some(l) => Observed::Present(shape_settings(&live_shape(&l))),
                None => Observed::Missing,
            },
        )
    }

    /// ModifyListener with the whole desired shape (protocol, certificate, policy, action).
    async fn update(
        &self,
        aws: &Aws,
        cx: &NodeCtx<'_>,
        outputs: Outputs,
        _changes: &[Change],
    ) -> Result<Outputs, ResourceError> {
        let (action,) = props!(cx, Listener { action });
        let tg_arn = match action {
            ListenerAction::Forward { target_group, .. } => Some(cx.dep_id(target_group)?),
            ListenerAction::RedirectToHttps => None,
        };
        let s = shape(action, tg_arn);
        aws.clients
            .elb
            .modify_listener()
            .listener_arn(outputs.id()?)
            .protocol(s.protocol)
            .set_certificates(
                s.certificate_arn
                    .map(|arn| vec![Certificate::builder().certificate_arn(arn).build()]),
            )
            .set_ssl_policy(s.ssl_policy)
            .default_actions(s.action)
            .send()
            .await
            .map_err(err("changing the listener"))?;
        Ok(outputs)
    }

    async fn delete(&self, aws: &Aws, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let arn = cx.outputs.id()?;
        ec2::delete_retrying(Kind::Listener, &format!("deleting listener {arn}"), || async {
            aws.clients
                .elb
                .delete_listener()
                .listener_arn(arn)
                .send()
                .await
                .map(|_| ())
                .map_err(err("deleting the listener"))
        })
        .await
    }
}

/// Whether certificate name `name` (possibly `*.example.com`) covers `domain`. A wildcard
/// covers exactly one label.
pub fn covers(name: &str, domain: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    match name.strip_prefix("*.") {
        Some(parent) => domain
            .split_once('.')
            .is_some_and(|(label, rest)| !label.is_empty() && rest == parent),
        None => name == domain,
    }
}

/// What is wrong with a certificate for this deployment, if anything.
pub fn certificate_problem(
    region: &str,
    arn: &str,
    status: Option<&str>,
    names: &[String],
    domain: Option<&str>,
) -> Option<String> {
    let cert_region = arn.split(':').nth(3).unwrap_or_default();
    if cert_region != region {
        return Some(format!(
            "the certificate is in {cert_region}, but the load balancer is in {region}"
        ));
    }
    match status {
        Some("ISSUED") => {}
        Some(s) => return Some(format!("the certificate is {s}, not ISSUED")),
        None => return Some("the certificate has no status".into()),
    }
    if let Some(d) = domain
        && !names.iter().any(|n| covers(n, d))
    {
        return Some(format!("the certificate covers {} but not {d}", names.join(", ")));
    }
    None
}

/// Check a configured certificate before anything is created. `Ok(Some(problem))` is bad
/// input (the caller exits 2 naming `certificate_arn`); `Err` is a failed call.
pub async fn check_certificate(aws: &Aws, arn: &str, domain: Option<&str>) -> Result<Option<String>, ResourceError> {
    let region = &aws.env.region;
    if let Some(p) = certificate_problem(region, arn, Some("ISSUED"), &[], None) {
        return Ok(Some(p));
    }
    let out = aws
        .clients
        .acm
        .describe_certificate()
        .certificate_arn(arn)
        .send()
        .await
        .map_err(err("describing the certificate"));
    let out = match out {
        Err(e) if e.is(ErrorClass::NotFound) || e.code.as_deref() == Some("InvalidArnException") => {
            return Ok(Some(format!("no certificate {arn} exists in {region}")));
        }
        other => other?,
    };
    let Some(c) = out.certificate() else {
        return Ok(Some(format!("no certificate {arn} exists in {region}")));
    };
    let mut names: Vec<String> = c.domain_name().map(String::from).into_iter().collect();
    names.extend(c.subject_alternative_names().iter().cloned());
    names.dedup();
    Ok(certificate_problem(
        region,
        arn,
        c.status().map(|s| s.as_str()),
        &names,
        domain,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CERT: &str = "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b";

    #[test]
    fn port_80_redirects_to_https_with_a_301() {
        let s = shape(&ListenerAction::RedirectToHttps, None);
        assert_eq!(s.protocol, ProtocolEnum::Http);
        assert_eq!(s.certificate_arn, None);
        assert_eq!(s.action.r#type(), Some(&ActionTypeEnum::Redirect));
        let r = s.action.redirect_config().unwrap();
        assert_eq!((r.protocol(), r.port()), (Some("HTTPS"), Some("443")));
        assert_eq!(r.status_code(), Some(&RedirectActionStatusCodeEnum::Http301));
    }

    #[test]
    fn forward_is_https_only_with_a_certificate() {
        let http = shape(
            &ListenerAction::Forward {
                target_group: "tg".into(),
                certificate_arn: None,
                tls_policy: None,
            },
            Some("arn:tg"),
        );
        assert_eq!(http.protocol, ProtocolEnum::Http);
        assert_eq!(http.ssl_policy, None);
        assert_eq!(http.action.target_group_arn(), Some("arn:tg"));
        let https = shape(
            &ListenerAction::Forward {
                target_group: "tg".into(),
                certificate_arn: Some(CERT.into()),
                tls_policy: Some("ELBSecurityPolicy-TLS13-1-2-2021-06".into()),
            },
            Some("arn:tg"),
        );
        assert_eq!(https.protocol, ProtocolEnum::Https);
        assert_eq!(https.certificate_arn.as_deref(), Some(CERT));
        assert_eq!(https.ssl_policy.as_deref(), Some("ELBSecurityPolicy-TLS13-1-2-2021-06"));
        assert_eq!(https.action.r#type(), Some(&ActionTypeEnum::Forward));
    }

    #[test]
    fn a_certificate_added_later_turns_port_80_into_the_redirect() {
        let forward = ListenerAction::Forward {
            target_group: "tg".into(),
            certificate_arn: None,
            tls_policy: None,
        };
        let live = shape_settings(&shape(&forward, Some("arn:tg")));
        let want = shape_settings(&shape(&ListenerAction::RedirectToHttps, None));
        let c = crate::core::diff::diff(ATTRS, &want, &live, None);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].attribute, "action");
        assert_eq!(
            (c[0].old.as_str(), c[0].new.as_str()),
            ("forward to arn:tg", "redirect to HTTPS:443")
        );
        assert_eq!(c[0].action, ChangeAction::Update);
    }

    #[test]
    fn a_new_tls_policy_is_an_update_and_a_live_listener_reads_back_as_desired() {
        let https = |policy: &str| ListenerAction::Forward {
            target_group: "tg".into(),
            certificate_arn: Some("arn:cert".into()),
            tls_policy: Some(policy.into()),
        };
        let desired = shape(&https("ELBSecurityPolicy-TLS13-1-2-2021-06"), Some("arn:tg"));
        let l = t::Listener::builder()
            .protocol(ProtocolEnum::Https)
            .certificates(Certificate::builder().certificate_arn("arn:cert").build())
            .ssl_policy("ELBSecurityPolicy-TLS13-1-2-2021-06")
            .default_actions(desired.action.clone())
            .build();
        assert_eq!(shape_settings(&live_shape(&l)), shape_settings(&desired));
        let newer = shape_settings(&shape(&https("ELBSecurityPolicy-TLS13-1-3-2021-06"), Some("arn:tg")));
        let c = crate::core::diff::diff(ATTRS, &newer, &shape_settings(&desired), None);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].attribute, "tls_policy");
    }

    #[test]
    fn wildcards_cover_one_label() {
        assert!(covers("dash.example.com", "dash.example.com"));
        assert!(covers("DASH.example.com.", "dash.example.com"));
        assert!(covers("*.example.com", "dash.example.com"));
        assert!(!covers("*.example.com", "example.com"));
        assert!(!covers("*.example.com", "a.b.example.com"));
        assert!(!covers("other.example.com", "dash.example.com"));
    }

    #[test]
    fn certificate_problems_are_named() {
        let names = vec!["dash.example.com".to_string(), "*.example.org".to_string()];
        assert_eq!(
            certificate_problem("eu-west-1", CERT, Some("ISSUED"), &names, Some("dash.example.com")),
            None
        );
        assert_eq!(
            certificate_problem("eu-west-1", CERT, Some("ISSUED"), &names, Some("x.example.org")),
            None
        );
        assert_eq!(
            certificate_problem("eu-west-1", CERT, Some("ISSUED"), &names, None),
            None
        );
        let p = certificate_problem("eu-west-1", CERT, Some("PENDING_VALIDATION"), &names, None).unwrap();
        assert!(p.contains("PENDING_VALIDATION"), "{p}");
        let p = certificate_problem("us-east-1", CERT, Some("ISSUED"), &names, None).unwrap();
        assert!(p.contains("eu-west-1") && p.contains("us-east-1"), "{p}");
        let p = certificate_problem("eu-west-1", CERT, Some("ISSUED"), &names, Some("other.example.net")).unwrap();
        assert!(p.contains("other.example.net"), "{p}");
    }
}
