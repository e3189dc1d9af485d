//! Hostile input: every bad configuration or flag exits 2 with an error naming the field
//! and the fix, before any AWS call (the endpoint points at a closed port and the call
//! counter must stay empty).

use std::process::Command;

struct Case {
    name: &'static str,
    toml: &'static str,
    args: &'static [&'static str],
    /// Text the error must contain (the field).
    field: &'static str,
}

const fn case(name: &'static str, toml: &'static str, args: &'static [&'static str], field: &'static str) -> Case {
    Case {
        name,
        toml,
        args,
        field,
    }
}

const AMI: &str = "ami-0123456789abcdef0";

fn cases() -> Vec<Case> {
    vec![
        case("unknown top-level key", "deploymnet = 'x'", &[], "deploymnet"),
        case("unknown section key", "[network]\nvpc = '10.0.0.0/16'", &[], "vpc"),
        case("unknown section", "[netwrk]\nvpc_cidr = '10.0.0.0/16'", &[], "netwrk"),
        case("wrong type: number for string", "deployment = 5", &[], "deployment"),
        case(
            "wrong type: string for number",
            "root_volume_gib = 'big'",
            &[],
            "root_volume_gib",
        ),
        case(
            "wrong type: table for list",
            "[network]\npublic_subnet_cidrs = { a = 1 }",
            &[],
            "public_subnet_cidrs",
        ),
        case(
            "wrong type: bool as string",
            "[network]\nnat_per_az = 'yes'",
            &[],
            "nat_per_az",
        ),
        case(
            "interface endpoints switch not a bool",
            "[network]\ninterface_endpoints = 'off'",
            &[],
            "interface_endpoints",
        ),
        case("not TOML at all", "this is not toml", &[], "config"),
        case("uppercase deployment", "", &["--deployment", "Prod"], "deployment"),
        case(
            "deployment with underscore",
            "",
            &["--deployment", "pi_prod"],
            "deployment",
        ),
        case(
            "deployment too long for the ALB name",
            "",
            &["--deployment", "a-very-long-deployment-name"],
            "deployment",
        ),
        case(
            "deployment ending in a hyphen",
            "",
            &["--deployment", "pi-"],
            "deployment",
        ),
        case(
            "deployment starting with a digit",
            "",
            &["--deployment", "9pi"],
            "deployment",
        ),
        case(
            "deployment whose SSM parameter AWS reserves (aws prefix)",
            "",
            &["--deployment", "awsprod"],
            "deployment",
        ),
        case(
            "deployment whose SSM parameter AWS reserves (ssm prefix)",
            "",
            &["--deployment", "ssmx"],
            "deployment",
        ),
        case(
            "deployment whose load balancer name ELB reserves",
            "",
            &["--deployment", "internal"],
            "deployment",
        ),
        case(
            "deployment whose security group names EC2 reserves",
            "",
            &["--deployment", "sg-prod"],
            "deployment",
        ),
        case(
            "deployment whose bucket name S3 reserves",
            "",
            &["--deployment", "sthree"],
            "deployment",
        ),
        case(
            "deployment whose bucket name S3 reserves (demo prefix)",
            "",
            &["--deployment", "amzn-s3-demo"],
            "deployment",
        ),
        case("bad region", "", &["--region", "mars-1"], "region"),
        case("ami too short", "", &["--ami", "ami-123"], "ami"),
        case("ami not hex", "", &["--ami", "ami-zzzzzzzz"], "ami"),
        case("ami of another kind", "", &["--ami", "snap-0123456789abcdef0"], "ami"),
        case("no ami for up", "", &[], "ami"),
        case(
            "certificate not an ARN",
            "",
            &["--certificate-arn", "my-cert"],
            "certificate_arn",
        ),
        case(
            "certificate ARN of IAM",
            "",
            &["--certificate-arn", "arn:aws:iam::123456789012:server-certificate/x"],
            "certificate_arn",
        ),
        case(
            "one zone",
            "availability_zones = ['eu-west-1a']",
            &[],
            "availability_zones",
        ),
        case(
            "the same zone twice",
            "availability_zones = ['eu-west-1a', 'eu-west-1a']",
            &[],
            "availability_zones",
        ),
        case(
            "zone of another region",
            "region = 'us-east-1'\navailability_zones = ['eu-west-1a', 'eu-west-1b']",
            &[],
            "availability_zones",
        ),
        case(
            "vpc cidr not a cidr",
            "[network]\nvpc_cidr = '10.0.0.0'",
            &[],
            "network.vpc_cidr",
        ),
        case(
            "vpc cidr too large",
            "[network]\nvpc_cidr = '10.0.0.0/8'",
            &[],
            "network.vpc_cidr",
        ),
        case(
            "subnet outside the vpc",
            "[network]\npublic_subnet_cidrs = ['10.9.2.0/24', '10.0.3.0/24']",
            &[],
            "network.public_subnet_cidrs[0]",
        ),
        case(
            "overlapping subnets",
            "[network]\ndb_subnet_cidrs = ['10.0.4.0/24', '10.0.4.128/25']",
            &[],
            "network.db_subnet_cidrs[1]",
        ),
        case(
            "subnet with host bits",
            "[network]\napp_subnet_cidrs = ['10.0.0.1/24', '10.0.1.0/24']",
            &[],
            "network.app_subnet_cidrs[0]",
        ),
        case(
            "three app subnets",
            "[network]\napp_subnet_cidrs = ['10.0.0.0/24', '10.0.1.0/24', '10.0.6.0/24']",
            &[],
            "network.app_subnet_cidrs",
        ),
        case(
            "engine version without minor",
            "[database]\nengine_version = '10'",
            &[],
            "database.engine_version",
        ),
        case(
            "dashboard port inside the instances' ephemeral range",
            "dashboard_port = 40000",
            &[],
            "dashboard_port",
        ),
        case("dashboard port of NFS", "dashboard_port = 2049", &[], "dashboard_port"),
        case(
            "link-local VPC block",
            "[network]\nvpc_cidr = '169.254.0.0/16'",
            &[],
            "network.vpc_cidr",
        ),
        case(
            "health check path with a newline",
            "[health_check]\npath = \"/health\\nHost: evil\"",
            &[],
            "health_check.path",
        ),
        case(
            "reserved word as the master user",
            "[database]\nmaster_username = 'select'",
            &[],
            "database.master_username",
        ),
        case(
            "instance type with a space",
            "instance_type = 't3.medium '",
            &[],
            "instance_type",
        ),
        case(
            "unknown MariaDB major",
            "[database]\nengine_version = '12.9.1'",
            &[],
            "database.engine_version",
        ),
        case(
            "family does not match the version",
            "[database]\nparameter_group_family = 'mariadb10.6'",
            &[],
            "database.parameter_group_family",
        ),
        case(
            "storage too small",
            "[database]\nallocated_storage_gib = 5",
            &[],
            "database.allocated_storage_gib",
        ),
        case(
            "reserved master user",
            "[database]\nmaster_username = 'admin'",
            &[],
            "database.master_username",
        ),
        case(
            "backup retention zero",
            "[database]\nbackup_retention_days = 0",
            &[],
            "database.backup_retention_days",
        ),
        case("min above max", "[scaling]\nmin = 6\ndesired = 6", &[], "scaling"),
        case("desired above max", "[scaling]\ndesired = 9", &[], "scaling"),
        case(
            "max beyond what the app subnets can address",
            "[scaling]\nmax = 100000",
            &[],
            "scaling.max",
        ),
        case(
            "cpu above 100",
            "[scaling]\nscale_out_cpu_percent = 170.0",
            &[],
            "scaling.scale_out_cpu_percent",
        ),
        case(
            "scale in above scale out",
            "[scaling]\nscale_in_cpu_percent = 80.0",
            &[],
            "scaling.scale_in_cpu_percent",
        ),
        case(
            "negative number",
            "[health_check]\nderegistration_delay_seconds = -5",
            &[],
            "health_check.deregistration_delay_seconds",
        ),
        case(
            "health check path relative",
            "[health_check]\npath = 'health'",
            &[],
            "health_check.path",
        ),
        case(
            "matcher not codes",
            "[health_check]\nmatcher = 'ok'",
            &[],
            "health_check.matcher",
        ),
        case(
            "timeout above interval",
            "[health_check]\ntimeout_seconds = 30",
            &[],
            "health_check.timeout_seconds",
        ),
        case(
            "old lambda runtime",
            "[lambda]\nruntime = 'python3.8'",
            &[],
            "lambda.runtime",
        ),
        case(
            "bad log retention",
            "[lambda]\nlog_retention_days = 2",
            &[],
            "lambda.log_retention_days",
        ),
        case("efs uid root", "[storage]\nefs_uid = 0", &[], "storage.efs_uid"),
        case(
            "domain without zone",
            "domain_name = 'dash.example.com'",
            &[],
            "hosted_zone_id",
        ),
        case(
            "zone id malformed",
            "hosted_zone_id = 'zone'\ndomain_name = 'dash.example.com'",
            &[],
            "hosted_zone_id",
        ),
        case(
            "old TLS policy",
            "tls_policy = 'ELBSecurityPolicy-2016-08'",
            &[],
            "tls_policy",
        ),
        case(
            "licence from two sources",
            "[licence]\nenv = 'X'\nfile = '/tmp/x'",
            &[],
            "licence",
        ),
        case(
            "unreadable licence file",
            "[licence]\nfile = '/nonexistent/licence.txt'",
            &[],
            "licence.file",
        ),
        case(
            "licence env var unset",
            "[licence]\nenv = 'PI_DEPLOY_TEST_UNSET_LICENCE'",
            &[],
            "licence.env",
        ),
        case("instance type nonsense", "instance_type = 'big'", &[], "instance_type"),
        case(
            "nothing may run at once",
            "",
            &["--max-parallel", "0"],
            "--max-parallel",
        ),
        case(
            "state bucket name with capitals and underscores",
            "",
            &["--state", "s3://Team_State/pi"],
            "--state",
        ),
        case(
            "state location of another scheme",
            "",
            &["--state", "gs://team/pi"],
            "--state",
        ),
        case(
            "state prefix with ..",
            "",
            &["--state", "s3://team-state/a/../b"],
            "--state",
        ),
        case(
            "both --state and --state-dir",
            "",
            &["--state", "s3://team-state/pi", "--state-dir", "elsewhere"],
            "--state",
        ),
        case(
            "state url in the config",
            "[state]\nurl = 's3://a..b/pi'",
            &[],
            "state.url",
        ),
        case("state bucket region", "[state]\nregion = 'mars'", &[], "state.region"),
        case("unknown state key", "[state]\nbucket = 'x'", &[], "bucket"),
    ]
}

/// pi-deploy with `args` against a closed port (any AWS call would fail with a network
/// error, not exit 2), its calls counted in `counts`.
fn offline(args: &[&str], counts: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_pi-deploy"))
        .args(args)
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("PI_DEPLOY_CALL_COUNTS", counts)
        .env_remove("PI_DEPLOY_TEST_UNSET_LICENCE")
        .env("NO_COLOR", "1")
        .output()
        .unwrap()
}

/// `restore`'s flags are checked before the state is opened or AWS called.
#[test]
fn bad_restore_flags_exit_2_naming_the_flag_with_no_aws_call() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pi.toml");
    std::fs::write(&config, "").unwrap();
    let cfg = config.to_str().unwrap();
    let state = dir.path().to_str().unwrap();
    for (i, (flags, field)) in [
        (&["--db-snapshot", "../../x"][..], "--db-snapshot"),
        (&["--db-snapshot", "snap--1"], "--db-snapshot"),
        (&["--db-time", "yesterday"], "--db-time"),
        (&["--files", "fs-123"], "--files"),
        (&["--files", "fs-123", "--path", "/themes"], "--files"),
    ]
    .into_iter()
    .enumerate()
    {
        let counts = dir.path().join(format!("calls{i}.json"));
        let mut args = vec!["restore", "--yes", "--config", cfg, "--state-dir", state];
        args.extend(flags);
        let out = offline(&args, &counts);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(field) && stderr.contains("fix:"), "{flags:?}: {stderr}");
        assert!(!counts.exists(), "{flags:?} made AWS calls");
    }
}

#[test]
fn every_bad_input_exits_2_naming_the_field_with_no_aws_call() {
    let dir = tempfile::tempdir().unwrap();
    let all = cases();
    assert!(all.len() >= 40, "the table keeps at least 40 cases");
    for (i, c) in all.iter().enumerate() {
        let config = dir.path().join(format!("case{i}.toml"));
        std::fs::write(&config, c.toml).unwrap();
        let counts = dir.path().join(format!("calls{i}.json"));
        let mut args: Vec<&str> = vec!["up", "--yes", "--config", config.to_str().unwrap()];
        // A case about where the state lives gives its own location.
        if !c.args.contains(&"--state") {
            args.extend(["--state-dir", dir.path().to_str().unwrap()]);
        }
        if !c.args.contains(&"--ami") && c.name != "no ami for up" {
            args.extend(["--ami", AMI]);
        }
        args.extend(c.args);
        let out = offline(&args, &counts);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(2),
            "case `{}`: expected exit 2, got {:?}\n{stderr}",
            c.name,
            out.status
        );
        assert!(
            stderr.contains(c.field),
            "case `{}`: the error does not name `{}`:\n{stderr}",
            c.name,
            c.field
        );
        assert!(
            stderr.contains("fix:") || stderr.contains("hint:"),
            "case `{}`: no fix given:\n{stderr}",
            c.name
        );
        let calls: u64 = std::fs::read(&counts)
            .ok()
            .and_then(|b| serde_json::from_slice::<std::collections::BTreeMap<String, u64>>(&b).ok())
            .map(|m| m.values().sum())
            .unwrap_or(0);
        assert_eq!(calls, 0, "case `{}` made AWS calls", c.name);
        assert!(
            std::fs::read_dir(dir.path()).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".json.backup"))
        );
    }
}
