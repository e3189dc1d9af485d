//! The compute and edge tier end to end on the emulator: the instance profile, launch template,
//! target group, load balancer, listeners (with and without a certificate), Auto Scaling group
//! with its hook, policies and alarms, the DNS alias and the dashboard check are built as the
//! blueprint says and read back from AWS's side; a second `up` creates nothing; `destroy`
//! leaves nothing; no secret value reaches the user data or the state.
//!
//! Emulator notes (moto): instances launched by the group do not carry the template's metadata
//! options or profile, so IMDSv2 and the profile are asserted on the launch template version;
//! targets are healthy at once, so the dashboard check passes on its first poll.

use base64::Engine;

use crate::census;
use crate::common::{
    self, Deployment, clients, config, count_status, events, id, import_certificate, kill_after_resources, ok_with,
    out, run_with, target_group_attributes, zone_and_certificate,
};

fn expected_compute_census(d: &Deployment, certificate: bool) -> census::Census {
    let mut c = census::Census::new();
    c.insert("launch-template", vec!["launch-template".into()]);
    c.insert("target-group", vec!["tg".into()]);
    c.insert("load-balancer", vec!["alb".into()]);
    let mut listeners = vec!["listener-http".to_string()];
    if certificate {
        listeners.push("listener-https".into());
    }
    c.insert("listener", listeners);
    c.insert("auto-scaling-group", vec!["asg".into()]);
    c.insert("lifecycle-hook", vec![format!("{}-wait-for-dashboard", d.name)]);
    c.insert(
        "scaling-policy",
        vec![format!("{}-scale-in", d.name), format!("{}-scale-out", d.name)],
    );
    c.insert(
        "alarm",
        vec![
            format!("{}-cpu-high-alarm", d.name),
            format!("{}-cpu-low-alarm", d.name),
        ],
    );
    c.insert("instance-profile", vec!["instance-profile".into()]);
    // The ALB's access logs and the VPC's flow log (logging.alb_access_logs and
    // logging.vpc_flow_logs, on by default).
    c.insert("s3-bucket", vec!["logs-bucket".into()]);
    c.insert("vpc-flow-log", vec!["flow-log".into()]);
    c
}

/// The census without the instances (their number is the group's business).
fn without_instances(mut c: census::Census) -> census::Census {
    c.remove("ec2-instance");
    c
}

fn phases(ev: &[serde_json::Value]) -> Vec<String> {
    ev.iter()
        .filter(|e| e["event"] == "phase")
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn compute_tier_without_a_certificate_reads_back_converges_and_destroys() {
    let d = Deployment::new("cmp");
    let licence_value = "PI-TEST-LICENCE-5b1e0c7a-never-in-user-data";
    let cfg = config(
        &d,
        // Below the image's root snapshot (moto's images have a 15 GiB one): raised to it.
        "root_volume_gib = 8\n\n[database]\ndeletion_protection = false\n\n[licence]\nenv = \"PI_TEST_LICENCE\"\n",
    );
    let cfg = cfg.to_str().unwrap();
    let env = [("PI_TEST_LICENCE", licence_value)];
    let ami = common::ami('A');
    let first = ok_with(&d, &["up", "--ami", &ami, "--yes", "--config", cfg, "--json"], &env);
    let ev = events(&first);
    assert!(
        ev.iter().any(|e| e["event"] == "warning"
            && e["message"]
                .as_str()
                .is_some_and(|m| m.contains("root_volume_gib = 8") && m.contains("15 GiB"))),
        "no warning that the root volume was raised: {}",
        common::show(&first)
    );
    let last = ev.last().unwrap();
    assert!(last["ok"].as_bool().unwrap(), "{}", common::show(&first));
    for phase in ["network", "data", "compute", "dashboard healthy"] {
        assert!(
            phases(&ev).iter().any(|p| p == phase),
            "no `{phase}` phase in {:?}",
            phases(&ev)
        );
    }
    let c = clients().await;
    let st = d.state();

    // Every compute resource exists exactly once, is tagged, and is recorded as ready.
    let census = census::compute(&c, &d.name).await;
    assert_eq!(
        without_instances(census.clone()),
        expected_compute_census(&d, false),
        "{census:?}"
    );
    for key in [
        "ec2-role",
        "instance-profile",
        "launch-template",
        "tg",
        "alb",
        "listener-http",
        "asg",
        "lifecycle-hook",
        "scale-out-policy",
        "scale-in-policy",
        "cpu-high-alarm",
        "cpu-low-alarm",
        "dashboard",
    ] {
        assert_eq!(st["resources"][key]["status"], "ready", "{key}");
    }
    assert!(st["resources"].get("listener-https").is_none());
    common::assert_flow_log_into_the_logs_bucket(&c, &st).await;

    // The outputs: the dashboard over plain HTTP on the ALB's name, and the group's name.
    let alb_dns = out(&st, "alb", "dns_name");
    assert_eq!(last["outputs"]["dashboard_url"], format!("http://{alb_dns}"));
    assert_eq!(last["outputs"]["asg_name"], format!("{}-dashboard", d.name));

    // Instance profile: holds the EC2 role.
    let profile = c
        .iam
        .get_instance_profile()
        .instance_profile_name(id(&st, "instance-profile"))
        .send()
        .await
        .unwrap();
    let profile = profile.instance_profile().unwrap();
    assert_eq!(
        profile.roles().iter().map(|r| r.role_name()).collect::<Vec<_>>(),
        [id(&st, "ec2-role").as_str()]
    );
    assert_eq!(profile.arn(), out(&st, "instance-profile", "arn"));

    // Launch template: the explicit version holds the complete, secure data.
    let lt_id = id(&st, "launch-template");
    let version = out(&st, "launch-template", "version");
    let versions = c
        .ec2
        .describe_launch_template_versions()
        .launch_template_id(&lt_id)
        .versions(&version)
        .send()
        .await
        .unwrap();
    let data = versions.launch_template_versions()[0].launch_template_data().unwrap();
    assert_eq!(data.image_id(), Some(ami.as_str()));
    assert_eq!(data.instance_type().map(|t| t.as_str()), Some("t3.medium"));
    assert_eq!(data.iam_instance_profile().and_then(|p| p.arn()), Some(profile.arn()));
    assert_eq!(data.security_group_ids(), [id(&st, "sg-app")]);
    let md = data.metadata_options().unwrap();
    assert_eq!(md.http_tokens().map(|t| t.as_str()), Some("required"));
    assert_eq!(md.http_endpoint().map(|t| t.as_str()), Some("enabled"));
    assert_eq!(md.http_put_response_hop_limit(), Some(2));
    let image = c.ec2.describe_images().image_ids(&ami).send().await.unwrap();
    let root = image.images()[0].root_device_name().unwrap().to_string();
    // The image's root snapshot, as DescribeImages reports it.
    let snapshot_gib = image.images()[0]
        .block_device_mappings()
        .iter()
        .find(|m| m.device_name() == Some(root.as_str()))
        .and_then(|m| m.ebs())
        .and_then(|e| e.volume_size());
    assert_eq!(snapshot_gib, Some(15), "moto's root snapshot size changed");
    let [bdm] = data.block_device_mappings() else {
        panic!("one block device mapping: {:?}", data.block_device_mappings())
    };
    assert_eq!(bdm.device_name(), Some(root.as_str()));
    let ebs = bdm.ebs().unwrap();
    assert_eq!(ebs.volume_type().map(|t| t.as_str()), Some("gp3"));
    assert_eq!(ebs.encrypted(), Some(true));
    // root_volume_gib = 8 raised to the snapshot's 15 GiB: AWS refuses a smaller mapping.
    assert_eq!(ebs.volume_size(), snapshot_gib);
    assert_eq!(ebs.delete_on_termination(), Some(true));
    let lt_user_data = base64::engine::general_purpose::STANDARD
        .decode(data.user_data().expect("user data"))
        .unwrap();
    let lt_user_data = String::from_utf8(lt_user_data).unwrap();
    assert!(lt_user_data.starts_with("#!/bin/bash"));
    assert!(lt_user_data.contains(&format!("readonly EFS_ID='{}'", id(&st, "efs"))));
    assert!(lt_user_data.contains(&format!(
        "readonly EFS_DNS=\"$EFS_ID.efs.{}.amazonaws.com\"",
        common::REGION
    )));
    // The default config's file system refuses NFS without TLS: the user data mounts with TLS.
    assert!(lt_user_data.contains("readonly EFS_REQUIRE_TLS='1'"));
    assert!(lt_user_data.contains(&format!("readonly DB_SECRET_ARN='{}'", out(&st, "db", "secret_arn"))));
    assert!(lt_user_data.contains(&format!("readonly LICENCE_SECRET_ARN='{}'", id(&st, "licence-secret"))));

    // No secret value in the launch template's user data, the rendered user data or the state.
    let db_secret = c
        .secrets
        .get_secret_value()
        .secret_id(out(&st, "db", "secret_arn"))
        .send()
        .await
        .unwrap();
    let db_secret: serde_json::Value = serde_json::from_str(db_secret.secret_string().unwrap()).unwrap();
    let password = db_secret["password"].as_str().unwrap().to_string();
    assert!(password.len() >= 8);
    let lt_tags = c
        .ec2
        .describe_launch_templates()
        .launch_template_ids(&lt_id)
        .send()
        .await
        .unwrap();
    let lt = &lt_tags.launch_templates()[0];
    assert!(
        lt.tags()
            .iter()
            .any(|t| t.key() == Some("pi-deploy:key") && t.value() == Some("launch-template"))
    );
    let params = pi_deploy::core::userdata::UserDataParams::new(
        &pi_deploy::core::config::Config {
            deployment: d.name.clone(),
            ..Default::default()
        },
        common::REGION,
        "amazonaws.com",
        &id(&st, "efs"),
        &out(&st, "db", "secret_arn"),
        Some(&id(&st, "licence-secret")),
    );
    let rendered = pi_deploy::core::userdata::render(&params).unwrap();
    assert_eq!(
        rendered, lt_user_data,
        "the template holds exactly the rendered user data"
    );
    let state_text = String::from_utf8(d.state_bytes().unwrap()).unwrap();
    for (what, text) in [
        ("user data", &lt_user_data),
        ("state file", &state_text),
        ("output", &common::show(&first)),
    ] {
        assert!(!text.contains(licence_value), "the licence is in the {what}");
        assert!(!text.contains(&password), "the DB password is in the {what}");
    }

    // Target group: HTTP 8224 to instances in our VPC, the configured health check, attributes.
    let tg_arn = id(&st, "tg");
    let tgs = c
        .elb
        .describe_target_groups()
        .target_group_arns(&tg_arn)
        .send()
        .await
        .unwrap();
    let tg = &tgs.target_groups()[0];
    assert_eq!(tg.target_group_name(), Some(format!("{}-tg", d.name).as_str()));
    assert_eq!(
        (tg.protocol().map(|p| p.as_str()), tg.port()),
        (Some("HTTP"), Some(8224))
    );
    assert_eq!(tg.vpc_id(), Some(id(&st, "vpc").as_str()));
    assert_eq!(tg.target_type().map(|t| t.as_str()), Some("instance"));
    assert_eq!(tg.health_check_path(), Some("/"));
    assert_eq!(tg.matcher().and_then(|m| m.http_code()), Some("200,302"));
    assert_eq!(tg.health_check_interval_seconds(), Some(15));
    assert_eq!(tg.health_check_timeout_seconds(), Some(5));
    assert_eq!(tg.healthy_threshold_count(), Some(2));
    assert_eq!(tg.unhealthy_threshold_count(), Some(5));
    let attrs = target_group_attributes(&c, &tg_arn).await;
    let attr = |k: &str| attrs.get(k).cloned();
    assert_eq!(attr("deregistration_delay.timeout_seconds").as_deref(), Some("300"));
    assert_eq!(attr("stickiness.enabled").as_deref(), Some("true"));
    assert_eq!(attr("stickiness.type").as_deref(), Some("lb_cookie"));
    assert_eq!(attr("stickiness.lb_cookie.duration_seconds").as_deref(), Some("86400"));
    assert!(out(&st, "tg", "arn_suffix").starts_with("targetgroup/"));

    // Load balancer: internet-facing, application, public subnets, alb SG, header dropping.
    let alb_arn = id(&st, "alb");
    let lbs = c
        .elb
        .describe_load_balancers()
        .load_balancer_arns(&alb_arn)
        .send()
        .await
        .unwrap();
    let lb = &lbs.load_balancers()[0];
    assert_eq!(lb.scheme().map(|s| s.as_str()), Some("internet-facing"));
    assert_eq!(lb.r#type().map(|t| t.as_str()), Some("application"));
    assert_eq!(lb.state().and_then(|s| s.code()).map(|c| c.as_str()), Some("active"));
    assert_eq!(lb.security_groups(), [id(&st, "sg-alb")]);
    let mut subnets: Vec<String> = lb
        .availability_zones()
        .iter()
        .filter_map(|z| z.subnet_id().map(String::from))
        .collect();
    subnets.sort();
    let mut public = vec![id(&st, "subnet-public-a"), id(&st, "subnet-public-b")];
    public.sort();
    assert_eq!(subnets, public);
    let lb_attrs = c
        .elb
        .describe_load_balancer_attributes()
        .load_balancer_arn(&alb_arn)
        .send()
        .await
        .unwrap();
    let drop = lb_attrs
        .attributes()
        .iter()
        .find(|a| a.key() == Some("routing.http.drop_invalid_header_fields.enabled"));
    assert_eq!(drop.and_then(|a| a.value()), Some("true"));
    let protection = lb_attrs
        .attributes()
        .iter()
        .find(|a| a.key() == Some("deletion_protection.enabled"));
    assert_eq!(
        protection.and_then(|a| a.value()),
        Some("true"),
        "the load balancer is protected from deletion (destroy turns it off first)"
    );
    assert!(out(&st, "alb", "arn_suffix").starts_with("app/"));

    // Listener: HTTP 80 forwarding to the target group, nothing on 443.
    let listeners = c
        .elb
        .describe_listeners()
        .load_balancer_arn(&alb_arn)
        .send()
        .await
        .unwrap();
    let [http] = listeners.listeners() else {
        panic!("one listener: {:?}", listeners.listeners())
    };
    assert_eq!(
        (http.port(), http.protocol().map(|p| p.as_str())),
        (Some(80), Some("HTTP"))
    );
    let action = &http.default_actions()[0];
    assert_eq!(action.r#type().map(|t| t.as_str()), Some("forward"));
    assert_eq!(action.target_group_arn(), Some(tg_arn.as_str()));

    // Auto Scaling group: both app subnets, the template at an explicit version, ELB health,
    // termination policies, the target group, the configured sizes, propagated tags.
    let asg_name = id(&st, "asg");
    let groups = c
        .autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(&asg_name)
        .send()
        .await
        .unwrap();
    let g = &groups.auto_scaling_groups()[0];
    let mut zones: Vec<&str> = g.vpc_zone_identifier().unwrap().split(',').collect();
    zones.sort();
    let mut app = vec![id(&st, "subnet-app-a"), id(&st, "subnet-app-b")];
    app.sort();
    assert_eq!(zones, app);
    let lts = g.launch_template().unwrap();
    assert_eq!(lts.launch_template_id(), Some(lt_id.as_str()));
    assert_eq!(lts.version(), Some(version.as_str()));
    assert!(
        version.chars().all(|c| c.is_ascii_digit()),
        "explicit version, not {version}"
    );
    assert_eq!(g.health_check_type(), Some("ELB"));
    assert_eq!(g.health_check_grace_period(), Some(300));
    assert_eq!(g.termination_policies(), ["OldestLaunchTemplate", "OldestInstance"]);
    assert_eq!(g.target_group_arns(), std::slice::from_ref(&tg_arn));
    assert_eq!(
        (g.min_size(), g.max_size(), g.desired_capacity()),
        (Some(1), Some(5), Some(1))
    );
    assert!(
        g.tags()
            .iter()
            .any(|t| t.key() == Some("pi-deploy:deployment") && t.propagate_at_launch() == Some(true))
    );

    // The launch hook holds new instances (heartbeat above the RDS slow figure) and abandons
    // them without an answer.
    let hooks = c
        .autoscaling
        .describe_lifecycle_hooks()
        .auto_scaling_group_name(&asg_name)
        .send()
        .await
        .unwrap();
    let [hook] = hooks.lifecycle_hooks() else {
        panic!("one hook: {:?}", hooks.lifecycle_hooks())
    };
    assert_eq!(
        hook.lifecycle_hook_name(),
        Some(format!("{}-wait-for-dashboard", d.name).as_str())
    );
    assert_eq!(hook.lifecycle_transition(), Some("autoscaling:EC2_INSTANCE_LAUNCHING"));
    assert_eq!(hook.heartbeat_timeout(), Some(2400));
    assert_eq!(hook.default_result(), Some("ABANDON"));

    // Scaling policies and the alarms that invoke them.
    let policies = c
        .autoscaling
        .describe_policies()
        .auto_scaling_group_name(&asg_name)
        .send()
        .await
        .unwrap();
    for (key, adjustment) in [("scale-out-policy", 1), ("scale-in-policy", -1)] {
        let p = policies
            .scaling_policies()
            .iter()
            .find(|p| p.policy_name() == Some(id(&st, key).as_str()))
            .unwrap();
        assert_eq!(p.adjustment_type(), Some("ChangeInCapacity"));
        assert_eq!(p.scaling_adjustment(), Some(adjustment));
        assert_eq!(p.cooldown(), Some(300));
        assert_eq!(p.policy_arn(), Some(out(&st, key, "arn").as_str()));
    }
    let alarms = c
        .cloudwatch
        .describe_alarms()
        .alarm_names(id(&st, "cpu-high-alarm"))
        .alarm_names(id(&st, "cpu-low-alarm"))
        .send()
        .await
        .unwrap();
    for (key, policy, threshold, op, periods) in [
        ("cpu-high-alarm", "scale-out-policy", 70.0, "GreaterThanThreshold", 1),
        ("cpu-low-alarm", "scale-in-policy", 20.0, "LessThanThreshold", 2),
    ] {
        let a = alarms
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(id(&st, key).as_str()))
            .unwrap();
        assert_eq!(
            (a.namespace(), a.metric_name()),
            (Some("AWS/EC2"), Some("CPUUtilization"))
        );
        assert_eq!(a.statistic().map(|s| s.as_str()), Some("Average"));
        assert_eq!(a.threshold(), Some(threshold));
        assert_eq!(a.comparison_operator().map(|o| o.as_str()), Some(op));
        // 5-minute periods: the instances have basic monitoring (one data point per 5 min).
        assert_eq!((a.period(), a.evaluation_periods()), (Some(300), Some(periods)));
        assert_eq!(a.alarm_actions(), [out(&st, policy, "arn")]);
        let dim = &a.dimensions()[0];
        assert_eq!(
            (dim.name(), dim.value()),
            (Some("AutoScalingGroupName"), Some(asg_name.as_str()))
        );
    }

    // The dashboard check saw a healthy target.
    let health = c
        .elb
        .describe_target_health()
        .target_group_arn(&tg_arn)
        .send()
        .await
        .unwrap();
    assert!(
        health.target_health_descriptions().iter().any(|h| h
            .target_health()
            .and_then(|t| t.state())
            .map(|s| s.as_str())
            == Some("healthy"))
    );

    // A second `up` creates nothing and adopts nothing.
    let again = ok_with(&d, &["up", "--ami", &ami, "--yes", "--config", cfg, "--json"], &env);
    let ev = events(&again);
    assert_eq!(
        count_status(&ev, "created") + count_status(&ev, "adopted") + count_status(&ev, "creating"),
        0,
        "{}",
        common::show(&again)
    );
    assert_eq!(
        without_instances(census::compute(&c, &d.name).await),
        expected_compute_census(&d, false)
    );

    // Destroy leaves nothing tagged or named after the deployment, and no running instance.
    ok_with(
        &d,
        &["destroy", "--yes", "--skip-final-snapshot", "--config", cfg],
        &env,
    );
    let left = census::compute(&c, &d.name).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!d.state_exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn compute_tier_with_a_certificate_redirects_to_https_and_aliases_the_domain() {
    let d = Deployment::new("cmps");
    let c = clients().await;
    let (zone_id, domain, cert) = zone_and_certificate(&c, &d).await;
    let cfg = config(
        &d,
        &format!(
            "hosted_zone_id = \"{zone_id}\"\ndomain_name = \"{domain}\"\n\n[database]\ndeletion_protection = false\n"
        ),
    );
    let cfg = cfg.to_str().unwrap();
    let ami = common::ami('A');
    let up = [
        "up",
        "--ami",
        &ami,
        "--yes",
        "--config",
        cfg,
        "--certificate-arn",
        &cert,
        "--json",
    ];
    let first = ok_with(&d, &up, &[]);
    let ev = events(&first);
    let last = ev.last().unwrap();
    assert!(last["ok"].as_bool().unwrap(), "{}", common::show(&first));
    let st = d.state();
    assert_eq!(last["outputs"]["dashboard_url"], format!("https://{domain}"));
    assert_eq!(
        without_instances(census::compute(&c, &d.name).await),
        expected_compute_census(&d, true)
    );

    // 80 redirects to HTTPS with a 301; 443 terminates TLS with our certificate and policy.
    let tg_arn = id(&st, "tg");
    let listeners = c
        .elb
        .describe_listeners()
        .load_balancer_arn(id(&st, "alb"))
        .send()
        .await
        .unwrap();
    let port = |p: i32| {
        listeners
            .listeners()
            .iter()
            .find(|l| l.port() == Some(p))
            .unwrap_or_else(|| panic!("no listener on {p}"))
    };
    let http = port(80);
    assert_eq!(http.protocol().map(|p| p.as_str()), Some("HTTP"));
    let redirect = &http.default_actions()[0];
    assert_eq!(redirect.r#type().map(|t| t.as_str()), Some("redirect"));
    let r = redirect.redirect_config().unwrap();
    assert_eq!((r.protocol(), r.port()), (Some("HTTPS"), Some("443")));
    assert_eq!(r.status_code().map(|s| s.as_str()), Some("HTTP_301"));
    let https = port(443);
    assert_eq!(https.protocol().map(|p| p.as_str()), Some("HTTPS"));
    assert_eq!(https.certificates()[0].certificate_arn(), Some(cert.as_str()));
    assert_eq!(https.ssl_policy(), Some("ELBSecurityPolicy-TLS13-1-2-2021-06"));
    assert_eq!(https.default_actions()[0].target_group_arn(), Some(tg_arn.as_str()));

    // The alias A record points at the load balancer.
    let records = c
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .send()
        .await
        .unwrap();
    let alias = records
        .resource_record_sets()
        .iter()
        .find(|r| r.name().trim_end_matches('.') == domain && r.r#type().as_str() == "A")
        .expect("the alias record");
    let target = alias.alias_target().unwrap();
    assert_eq!(
        target.dns_name().trim_end_matches('.').to_ascii_lowercase(),
        out(&st, "alb", "dns_name").to_ascii_lowercase()
    );
    assert_eq!(target.hosted_zone_id(), out(&st, "alb", "canonical_hosted_zone_id"));

    // A second `up` creates nothing.
    let again = ok_with(&d, &up, &[]);
    let ev = events(&again);
    assert_eq!(
        count_status(&ev, "created") + count_status(&ev, "adopted"),
        0,
        "{}",
        common::show(&again)
    );

    ok_with(&d, &["destroy", "--yes", "--skip-final-snapshot", "--config", cfg], &[]);
    let left = census::compute(&c, &d.name).await;
    assert!(left.is_empty(), "left behind: {left:?}");
    let records = c
        .route53
        .list_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .send()
        .await
        .unwrap();
    assert!(
        !records
            .resource_record_sets()
            .iter()
            .any(|r| r.name().trim_end_matches('.') == domain),
        "the alias is left"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_certificate_is_refused_before_anything_is_created() {
    let c = clients().await;
    let ami = common::ami('A');
    let other = import_certificate(&c, "other.example.net").await;
    let missing = format!(
        "arn:aws:acm:{}:123456789012:certificate/00000000-0000-0000-0000-000000000000",
        common::REGION
    );
    let elsewhere = "arn:aws:acm:us-east-1:123456789012:certificate/00000000-0000-0000-0000-000000000000".to_string();
    for (cert, why) in [
        (missing, "no certificate"),
        (elsewhere, "us-east-1"),
        (other, "dash.example.com"),
    ] {
        let d = Deployment::new("cert");
        let cfg = config(
            &d,
            "hosted_zone_id = \"Z0000000000000000000\"\ndomain_name = \"dash.example.com\"\n",
        );
        let o = run_with(
            &d,
            &[
                "up",
                "--ami",
                &ami,
                "--yes",
                "--config",
                cfg.to_str().unwrap(),
                "--certificate-arn",
                &cert,
            ],
            &[],
        );
        assert_eq!(o.status.code(), Some(2), "{}", common::show(&o));
        let text = common::show(&o);
        assert!(text.contains("certificate_arn") && text.contains(why), "{text}");
        assert!(
            census::network(&c, &d.name).await.is_empty(),
            "something was created for {cert}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_up_in_the_compute_tier_converges_without_duplicates() {
    let c = clients().await;
    let ami = common::ami('A');
    // The compute tier is built last: these kills land among its creates.
    let mut kills = 0;
    for n in [45, 49, 53] {
        let d = Deployment::new(&format!("ck{n}"));
        let cfg = config(&d, "[database]\ndeletion_protection = false\n");
        let cfg = cfg.to_str().unwrap();
        let args = ["up", "--ami", ami.as_str(), "--yes", "--config", cfg, "--json"];
        let killed = kill_after_resources(&d, &args, n);
        kills += usize::from(killed);
        ok_with(&d, &args, &[]);
        let census = census::compute(&c, &d.name).await;
        assert_eq!(
            without_instances(census.clone()),
            expected_compute_census(&d, false),
            "after a kill at {n} (killed: {killed})"
        );
        assert_eq!(
            census.get("ec2-instance").map_or(0, |v| v.len()),
            1,
            "one group, one instance: {census:?}"
        );
        let st = d.state();
        for key in ["launch-template", "tg", "alb", "asg", "instance-profile", "dashboard"] {
            assert_eq!(st["resources"][key]["status"], "ready", "{key} after a kill at {n}");
        }
        ok_with(&d, &["destroy", "--yes", "--skip-final-snapshot", "--config", cfg], &[]);
        assert!(census::compute(&c, &d.name).await.is_empty());
    }
    assert!(kills > 0, "no run was killed: the test proved nothing");
}
