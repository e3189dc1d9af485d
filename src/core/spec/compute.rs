//! The compute and edge tier: the instances' role, profile and launch template, the target
//! group, the load balancer and the logs bucket (its access logs, the VPC's flow log) and listeners, the Auto Scaling group
//! with its hook, policies and alarms, the DNS record, and the dashboard check.

use super::network::{interface_endpoint_services, private_route_tables};
use super::{
    ALB_LOG_PREFIX, AccessLogs, BucketPurpose, Builder, FLOW_LOG_INTERVAL, FLOW_LOG_TRAFFIC, InstanceSettings, Kind,
    ListenerAction, Props, RolePolicy, SpecInput, keys, licence_source, with,
};
use crate::core::names;

/// Compute and edge. Instances may launch while RDS is still being created: a lifecycle
/// hook holds them until their user data has read the endpoint parameter.
pub(super) fn compute(b: &mut Builder, input: &SpecInput<'_>) {
    let cfg = input.config;
    let dep = &cfg.deployment;
    let licence = licence_source(cfg).map(|_| "licence-secret".to_string());
    let mut role_deps = vec!["db".to_string()];
    role_deps.extend(licence.clone());
    b.add(
        "ec2-role",
        Kind::IamRole,
        role_deps,
        Props::IamRole {
            name: names::ec2_role(dep),
            service: "ec2.amazonaws.com".into(),
            managed_policies: vec!["AmazonSSMManagedInstanceCore".into()],
            policy: RolePolicy::DashboardEc2,
        },
    );
    b.add(
        "instance-profile",
        Kind::InstanceProfile,
        vec!["ec2-role".into()],
        Props::InstanceProfile {
            name: names::instance_profile(dep),
            role: "ec2-role".into(),
        },
    );
    let mut lt_deps = vec![
        "instance-profile".to_string(),
        "sg-app".into(),
        "efs".into(),
        "db".into(),
    ];
    lt_deps.extend(licence.clone());
    b.add(
        "launch-template",
        Kind::LaunchTemplate,
        lt_deps,
        Props::LaunchTemplate {
            name: names::launch_template(dep),
            profile: "instance-profile".into(),
            security_groups: vec!["sg-app".into()],
            file_system: "efs".into(),
            db: "db".into(),
            licence,
            instance: InstanceSettings::from_config(cfg, input.region),
        },
    );
    b.add(
        "tg",
        Kind::TargetGroup,
        vec!["vpc".into()],
        Props::TargetGroup {
            name: names::target_group_of(dep, cfg.dashboard_port),
            vpc: "vpc".into(),
            port: cfg.dashboard_port,
            health_check: cfg.health_check.clone(),
        },
    );
    let public = keys("subnet-public");
    let mut alb_deps = with(public.clone(), &["sg-alb", "igw", "route-public-default"]);
    let access_logs = cfg.logging.alb_access_logs.then(|| AccessLogs {
        bucket: "logs-bucket".into(),
        prefix: ALB_LOG_PREFIX.into(),
    });
    if access_logs.is_some() || cfg.logging.vpc_flow_logs {
        // ELB and the flow log delivery check that they may write there when logging is
        // switched on: the bucket's policy first.
        b.add(
            "logs-bucket",
            Kind::Bucket,
            vec![],
            Props::Bucket {
                versioning: false,
                purpose: BucketPurpose::Logs {
                    alb_prefix: access_logs.as_ref().map(|l| l.prefix.clone()),
                    flow_logs: cfg.logging.vpc_flow_logs,
                    expire_days: cfg.logging.alb_access_log_days,
                },
            },
        );
    }
    if access_logs.is_some() {
        alb_deps.push("logs-bucket".into());
    }
    if cfg.logging.vpc_flow_logs {
        b.add(
            "flow-log",
            Kind::FlowLog,
            vec!["vpc".into(), "logs-bucket".into()],
            Props::FlowLog {
                vpc: "vpc".into(),
                bucket: "logs-bucket".into(),
                traffic_type: FLOW_LOG_TRAFFIC.into(),
                max_aggregation_interval: FLOW_LOG_INTERVAL,
            },
        );
    }
    // An internet-facing ALB stays `provisioning` until the VPC has a working IGW route.
    b.add(
        "alb",
        Kind::LoadBalancer,
        alb_deps,
        Props::LoadBalancer {
            name: names::alb(dep),
            subnets: public,
            security_group: "sg-alb".into(),
            access_logs,
        },
    );
    let forward = |cert: Option<String>| ListenerAction::Forward {
        target_group: "tg".into(),
        tls_policy: cert.as_ref().map(|_| cfg.tls_policy.clone()),
        certificate_arn: cert,
    };
    let mut listeners = vec!["listener-http".to_string()];
    match &cfg.certificate_arn {
        Some(cert) => {
            // HTTPS exists before port 80 redirects to it (a certificate added on day 2
            // never leaves port 80 redirecting to nothing).
            b.add(
                "listener-http",
                Kind::Listener,
                vec!["alb".into(), "listener-https".into()],
                Props::Listener {
                    load_balancer: "alb".into(),
                    port: 80,
                    action: ListenerAction::RedirectToHttps,
                },
            );
            b.add(
                "listener-https",
                Kind::Listener,
                vec!["alb".into(), "tg".into()],
                Props::Listener {
                    load_balancer: "alb".into(),
                    port: 443,
                    action: forward(Some(cert.clone())),
                },
            );
            listeners.push("listener-https".into());
        }
        None => b.add(
            "listener-http",
            Kind::Listener,
            vec!["alb".into(), "tg".into()],
            Props::Listener {
                load_balancer: "alb".into(),
                port: 80,
                action: forward(None),
            },
        ),
    }
    let app = keys("subnet-app");
    let mut asg_deps = with(app.clone(), &["launch-template", "tg", "efs-mt-a", "efs-mt-b"]);
    asg_deps.extend(
        interface_endpoint_services(cfg.network.interface_endpoints)
            .iter()
            .map(|s| format!("vpce-{s}")),
    );
    asg_deps.extend(
        private_route_tables(cfg.network.nat_per_az)
            .iter()
            .map(|(t, _)| format!("route-{}-default", t.trim_start_matches("rt-"))),
    );
    b.add(
        "asg",
        Kind::AutoScalingGroup,
        asg_deps,
        Props::AutoScalingGroup {
            name: names::asg(dep),
            launch_template: "launch-template".into(),
            subnets: app,
            target_group: "tg".into(),
            min: cfg.scaling.min,
            max: cfg.scaling.max,
            desired: cfg.scaling.desired,
            health_check_grace_seconds: cfg.scaling.health_check_grace_seconds,
            hook_name: names::lifecycle_hook(dep),
            heartbeat_seconds: cfg.scaling.lifecycle_heartbeat_seconds,
        },
    );
    b.add(
        "lifecycle-hook",
        Kind::LifecycleHook,
        vec!["asg".into()],
        Props::LifecycleHook {
            asg: "asg".into(),
            name: names::lifecycle_hook(dep),
            heartbeat_seconds: cfg.scaling.lifecycle_heartbeat_seconds,
        },
    );
    for (policy, alarm, adjustment, high) in [
        ("scale-out-policy", "cpu-high-alarm", 1, true),
        ("scale-in-policy", "cpu-low-alarm", -1, false),
    ] {
        b.add(
            policy,
            Kind::ScalingPolicy,
            vec!["asg".into()],
            Props::ScalingPolicy {
                asg: "asg".into(),
                adjustment,
                cooldown_seconds: SCALING_COOLDOWN_SECONDS,
            },
        );
        // High: above the scale-out percent for 1 x 5 min; low: below the scale-in percent
        // for 2 x 5 min (ALARM_PERIOD_SECONDS says why 5 minutes).
        let (threshold, evaluation_periods) = match high {
            true => (cfg.scaling.scale_out_cpu_percent, 1),
            false => (cfg.scaling.scale_in_cpu_percent, 2),
        };
        b.add(
            alarm,
            Kind::Alarm,
            vec!["asg".into(), policy.into()],
            Props::Alarm {
                name: names::alarm(dep, alarm),
                asg: "asg".into(),
                policy: policy.into(),
                high,
                threshold,
                period_seconds: ALARM_PERIOD_SECONDS,
                evaluation_periods,
            },
        );
    }
    let mut check_deps = with(listeners, &["asg", "tg", "alb", "db-endpoint", "lifecycle-hook"]);
    if let (Some(zone), Some(domain)) = (&cfg.hosted_zone_id, &cfg.domain_name) {
        b.add(
            "dns-record",
            Kind::DnsRecord,
            vec!["alb".into()],
            Props::DnsRecord {
                zone_id: zone.clone(),
                domain: domain.clone(),
                load_balancer: "alb".into(),
            },
        );
        check_deps.push("dns-record".into());
    }
    b.add(
        "dashboard",
        Kind::DashboardCheck,
        check_deps,
        Props::DashboardCheck {
            target_group: "tg".into(),
            load_balancer: "alb".into(),
            https: cfg.certificate_arn.is_some(),
            domain: cfg.domain_name.clone().filter(|_| cfg.hosted_zone_id.is_some()),
        },
    );
}

/// The dashboard's port on the instances of the Panintelligence image (the default of
/// `dashboard_port`).
pub const DASHBOARD_PORT: i32 = 8224;

/// Cooldown of the simple scaling policies.
pub const SCALING_COOLDOWN_SECONDS: i32 = 300;

/// The scaling alarms' period. The instances have EC2's basic monitoring, which publishes
/// CPUUtilization every 5 minutes: a shorter period has no data point in most periods, so
/// the alarm sits in INSUFFICIENT_DATA and scale-in (2 periods) almost never fires. Detailed
/// monitoring (1-minute data) would cost about $2.10 a month per instance (7 metrics at
/// $0.30) and a new launch template version (replacing the instances), for alarms that react
/// a few minutes sooner than the policies' 300 s cooldown lets the group act again anyway.
pub const ALARM_PERIOD_SECONDS: i32 = 300;
