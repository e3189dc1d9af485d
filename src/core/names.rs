//! Names AWS requires to be unique, derived from the deployment name so that two
//! deployments can live in one account and region, and so that `destroy` can find them
//! again from AWS alone.

pub const DEPLOYMENT_NAME_RULE: &str =
    "use 1-20 lowercase letters, digits and single hyphens, starting with a letter (e.g. `pi` or `pi-prod`)";

/// Longest deployment name whose derived names all fit AWS's limits (checked by a test).
pub const MAX_DEPLOYMENT_LEN: usize = 20;

/// Longest region name AWS has (`ap-southeast-4`, `ap-northeast-3` are 14): names that embed the
/// region are checked against this so a valid name stays valid in every region.
const LONGEST_REGION: &str = "ap-southeast-4x";
const ACCOUNT: &str = "123456789012";

pub fn check_deployment_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the deployment name is empty".into());
    }
    if name.len() > MAX_DEPLOYMENT_LEN {
        return Err(format!(
            "`{name}` is {} characters; derived AWS names (ALB, target group: 32) need at most {MAX_DEPLOYMENT_LEN}",
            name.len()
        ));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("`{name}` must start with a lowercase letter"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!("`{name}` may hold only lowercase letters, digits and hyphens"));
    }
    if name.ends_with('-') || name.contains("--") {
        return Err(format!("`{name}` may not end with a hyphen or hold two in a row"));
    }
    Ok(())
}

/// The DNS suffix of AWS's endpoints in `region`: China's regions (`cn-*`) are in their own
/// partition.
pub fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    }
}

pub fn alb(dep: &str) -> String {
    format!("{dep}-alb")
}
pub fn target_group(dep: &str) -> String {
    format!("{dep}-tg")
}
/// Whether `name` is one of the deployment's target groups (of any dashboard port).
pub fn is_target_group(dep: &str, name: &str) -> bool {
    name == target_group(dep)
        || name
            .strip_prefix(&format!("{}-", target_group(dep)))
            .is_some_and(|p| p.parse::<i32>().is_ok_and(|p| p > 0) && !p.starts_with('0'))
}
/// The target group for the dashboard on `port`: named after the port (what forces its
/// replace), so a port change's new group never has the name of the group it replaces; the
/// Panintelligence image's port keeps the name the group always had (`target_group`).
pub fn target_group_of(dep: &str, port: i32) -> String {
    match port {
        crate::core::spec::DASHBOARD_PORT => target_group(dep),
        _ => format!("{}-{port}", target_group(dep)),
    }
}
pub fn db_identifier(dep: &str) -> String {
    format!("{dep}-db")
}
pub fn db_subnet_group(dep: &str) -> String {
    format!("{dep}-db-subnets")
}
pub fn db_parameter_group(dep: &str) -> String {
    format!("{dep}-db-params")
}
/// The family of the default engine version: its group keeps the name it always had
/// (`db_parameter_group`), so deployments made before replace existed keep theirs.
pub const FIRST_DB_FAMILY: &str = "mariadb10.11";
/// Whether `name` is one of the deployment's parameter groups (of any family).
pub fn is_db_parameter_group(dep: &str, name: &str) -> bool {
    name == db_parameter_group(dep)
        || name
            .strip_prefix(&format!("{}-mariadb", db_parameter_group(dep)))
            .is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit() || c == '-'))
}
/// The parameter group of `family`: named after the family (what forces its replace), so a
/// major upgrade's new group never has the name of the group it replaces.
pub fn db_parameter_group_of(dep: &str, family: &str) -> String {
    match family {
        FIRST_DB_FAMILY => db_parameter_group(dep),
        other => format!("{dep}-db-params-{}", other.replace('.', "-")),
    }
}
/// Globally unique: the account id and region make it ours; the deployment makes it unique
/// inside the account.
pub fn bucket(dep: &str, account: &str, region: &str) -> String {
    format!("{dep}-resources-{account}-{region}")
}
pub fn lambda_role(dep: &str) -> String {
    format!("{dep}-sideload-lambda")
}
pub fn ec2_role(dep: &str) -> String {
    format!("{dep}-dashboard-ec2")
}
pub fn instance_profile(dep: &str) -> String {
    format!("{dep}-dashboard-ec2")
}
pub fn lambda_function(dep: &str) -> String {
    format!("{dep}-sideload")
}
pub fn lambda_log_group(dep: &str) -> String {
    format!("/aws/lambda/{}", lambda_function(dep))
}
/// The logs bucket (ALB access logs): globally unique like the resources bucket.
pub fn logs_bucket(dep: &str, account: &str, region: &str) -> String {
    format!("{dep}-logs-{account}-{region}")
}
/// The log group RDS exports one of the instance's logs (`error`) into.
pub fn db_log_group(dep: &str, log: &str) -> String {
    format!("/aws/rds/instance/{}/{log}", db_identifier(dep))
}
pub fn licence_secret(dep: &str) -> String {
    format!("pi-deploy/{dep}/licence")
}
pub fn db_endpoint_parameter(dep: &str) -> String {
    format!("/{dep}/db-endpoint")
}
pub fn launch_template(dep: &str) -> String {
    format!("{dep}-dashboard")
}
pub fn asg(dep: &str) -> String {
    format!("{dep}-dashboard")
}
pub fn lifecycle_hook(dep: &str) -> String {
    format!("{dep}-wait-for-dashboard")
}
pub fn efs_creation_token(dep: &str) -> String {
    format!("pi-deploy-{dep}-efs")
}
pub fn final_snapshot(dep: &str, utc: &chrono::DateTime<chrono::Utc>) -> String {
    format!("{dep}-final-{}", utc.format("%Y%m%d-%H%M%S"))
}

/// `<deployment>-<key>` for the security group of spec key `key` (`sg-alb`, ...).
pub fn security_group(dep: &str, key: &str) -> String {
    format!("{dep}-{key}")
}
/// The security groups' spec keys (a test checks that the spec builds no other).
pub const SECURITY_GROUP_KEYS: [&str; 6] = ["sg-alb", "sg-app", "sg-db", "sg-efs", "sg-lambda", "sg-endpoints"];
/// `<deployment>-<key>` for the CloudWatch alarm of spec key `key`.
pub fn alarm(dep: &str, key: &str) -> String {
    format!("{dep}-{key}")
}
/// The alarms' spec keys.
pub const ALARM_KEYS: [&str; 2] = ["cpu-high-alarm", "cpu-low-alarm"];
/// `<deployment>-scale-out` for a positive adjustment, `<deployment>-scale-in` otherwise.
pub fn scaling_policy(dep: &str, adjustment: i32) -> String {
    format!("{dep}-scale-{}", if adjustment > 0 { "out" } else { "in" })
}
/// The statement of the Lambda's resource policy that lets S3 invoke it.
pub fn lambda_statement_id(dep: &str) -> String {
    format!("s3-invoke-{dep}")
}

/// The naming rules of the services the derived names land in. Each is checked in full
/// (length, characters, shape, reserved prefixes and suffixes), not only the parts a name
/// derived from a valid deployment name could break, so that a change of a derivation is
/// checked too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// SSM PutParameter: up to 1011 characters of `a-zA-Z0-9_.-/`, at most 15 levels, and
    /// not prefixed with `aws` or `ssm` in any case (with or without the leading `/`).
    SsmParameter,
    /// S3 general purpose buckets: 3-63 of lowercase letters, digits, `.` and `-`, starting
    /// and ending with a letter or digit, no `..`, not an IP address, not starting with
    /// `xn--`, `sthree-` or `amzn-s3-demo-`, not ending with `-s3alias`, `--ol-s3`, `.mrap`,
    /// `--x-s3` or `--table-s3`.
    S3Bucket,
    /// ELBv2 load balancer: 1-32 letters, digits and hyphens, no hyphen at either end, not
    /// starting with `internal-`.
    LoadBalancer,
    /// ELBv2 target group: 1-32 letters, digits and hyphens, no hyphen at either end.
    TargetGroup,
    /// RDS DB instance, parameter group and snapshot identifiers: 1-63 (groups and
    /// snapshots: 255) letters, digits and hyphens, starting with a letter, no `--`, no
    /// hyphen at the end.
    RdsIdentifier { max: usize },
    /// RDS DB subnet group: 1-255 letters, digits, `.`, `_`, `-` and spaces, not `default`.
    RdsSubnetGroup,
    /// IAM role and instance profile: 1-64 of `\w+=,.@-`.
    Iam,
    /// Lambda function: 1-64 of letters, digits, `-` and `_`.
    LambdaFunction,
    /// Lambda permission statement id: 1-100 of letters, digits, `-` and `_`.
    LambdaStatementId,
    /// CloudWatch Logs group: 1-512 of `a-zA-Z0-9_-/.#`.
    LogGroup,
    /// Secrets Manager secret: 1-512 of `a-zA-Z0-9/_+=.@-`, not ending with a hyphen and six
    /// characters (AWS reads that as its own ARN suffix).
    Secret,
    /// EC2 launch template: 3-128 of `a-zA-Z0-9().-/_`.
    LaunchTemplate,
    /// Auto Scaling group, lifecycle hook and scaling policy: 1-255 of letters, digits and
    /// `-_/` (the hook's pattern, the strictest of the three).
    AutoScaling,
    /// EC2 security group: 1-255 ASCII characters, not starting with `sg-`.
    SecurityGroup,
    /// CloudWatch alarm: 1-255 printable ASCII characters.
    Alarm,
    /// EFS creation token: 1-64 characters.
    EfsCreationToken,
}

fn chars_ok(name: &str, allowed: impl Fn(char) -> bool) -> Result<(), String> {
    match name.chars().find(|c| !allowed(*c)) {
        Some(c) => Err(format!("may not hold `{c}`")),
        None => Ok(()),
    }
}

fn length_ok(name: &str, min: usize, max: usize) -> Result<(), String> {
    if name.len() < min || name.len() > max {
        Err(format!("is {} characters; AWS allows {min} to {max}", name.len()))
    } else {
        Ok(())
    }
}

fn hyphen_ends(name: &str) -> Result<(), String> {
    if name.starts_with('-') || name.ends_with('-') {
        Err("may not start or end with a hyphen".into())
    } else {
        Ok(())
    }
}

fn is_ipv4(name: &str) -> bool {
    name.parse::<std::net::Ipv4Addr>().is_ok()
}

impl Rule {
    /// Why `name` breaks the rule (a phrase that follows the name), or `Ok`.
    pub fn check(self, name: &str) -> Result<(), String> {
        let alnum_hyphen = |c: char| c.is_ascii_alphanumeric() || c == '-';
        match self {
            Rule::SsmParameter => {
                length_ok(name, 1, 1011)?;
                chars_ok(name, |c| c.is_ascii_alphanumeric() || "_.-/".contains(c))?;
                if name.split('/').filter(|s| !s.is_empty()).count() > 15 {
                    return Err("has more than 15 levels".into());
                }
                let bare = name.trim_start_matches('/').to_ascii_lowercase();
                for reserved in ["aws", "ssm"] {
                    if bare.starts_with(reserved) {
                        return Err(format!(
                            "starts with `{reserved}`, which Systems Manager reserves for itself (in any case)"
                        ));
                    }
                }
                Ok(())
            }
            Rule::S3Bucket => {
                length_ok(name, 3, 63)?;
                chars_ok(name, |c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'
                })?;
                if !name.starts_with(|c: char| c.is_ascii_alphanumeric())
                    || !name.ends_with(|c: char| c.is_ascii_alphanumeric())
                {
                    return Err("must start and end with a letter or digit".into());
                }
                if name.contains("..") {
                    return Err("may not hold two dots in a row".into());
                }
                if is_ipv4(name) {
                    return Err("may not be an IP address".into());
                }
                for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
                    if name.starts_with(prefix) {
                        return Err(format!("starts with `{prefix}`, which S3 reserves"));
                    }
                }
                for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
                    if name.ends_with(suffix) {
                        return Err(format!("ends with `{suffix}`, which S3 reserves"));
                    }
                }
                Ok(())
            }
            Rule::LoadBalancer => {
                length_ok(name, 1, 32)?;
                chars_ok(name, alnum_hyphen)?;
                hyphen_ends(name)?;
                if name.to_ascii_lowercase().starts_with("internal-") {
                    return Err("starts with `internal-`, which Elastic Load Balancing reserves".into());
                }
                Ok(())
            }
            Rule::TargetGroup => {
                length_ok(name, 1, 32)?;
                chars_ok(name, alnum_hyphen)?;
                hyphen_ends(name)
            }
            Rule::RdsIdentifier { max } => {
                length_ok(name, 1, max)?;
                chars_ok(name, alnum_hyphen)?;
                if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
                    return Err("must start with a letter".into());
                }
                if name.ends_with('-') || name.contains("--") {
                    return Err("may not end with a hyphen or hold two in a row".into());
                }
                Ok(())
            }
            Rule::RdsSubnetGroup => {
                length_ok(name, 1, 255)?;
                chars_ok(name, |c| c.is_ascii_alphanumeric() || "._- ".contains(c))?;
                if name.eq_ignore_ascii_case("default") {
                    return Err("is `default`, which RDS reserves".into());
                }
                Ok(())
            }
            Rule::Iam => {
                length_ok(name, 1, 64)?;
                chars_ok(name, |c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c))
            }
            Rule::LambdaFunction => {
                length_ok(name, 1, 64)?;
                chars_ok(name, |c| c.is_ascii_alphanumeric() || "-_".contains(c))
            }
            Rule::LambdaStatementId => {
                length_ok(name, 1, 100)?;
                chars_ok(name, |c| c.is_ascii_alphanumeric() || "-_".contains(c))
            }
            Rule::LogGroup => {
                length_ok(name, 1, 512)?;
                chars_ok(name, |c| c.is_ascii_alphanumeric() || "_-/.#".contains(c))
            }
            Rule::Secret => {
                length_ok(name, 1, 512)?;
                chars_ok(name, |c| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c))?;
                let tail = name.rsplit_once('-').map(|(_, t)| t);
                if tail.is_some_and(|t| t.len() == 6) {
                    return Err("ends with a hyphen and six characters, which AWS reads as its ARN suffix".into());
                }
                Ok(())
            }
            Rule::LaunchTemplate => {
                length_ok(name, 3, 128)?;
                chars_ok(name, |c| c.is_ascii_alphanumeric() || "().-/_".contains(c))
            }
            Rule::AutoScaling => {
                length_ok(name, 1, 255)?;
                chars_ok(name, |c| c.is_ascii_alphanumeric() || "-_/".contains(c))
            }
            Rule::SecurityGroup => {
                length_ok(name, 1, 255)?;
                chars_ok(name, |c| c.is_ascii_graphic() || c == ' ')?;
                if name.to_ascii_lowercase().starts_with("sg-") {
                    return Err("starts with `sg-`, which EC2 reserves for group ids".into());
                }
                Ok(())
            }
            Rule::Alarm => {
                length_ok(name, 1, 255)?;
                chars_ok(name, |c| c.is_ascii_graphic() || c == ' ')
            }
            Rule::EfsCreationToken => length_ok(name, 1, 64),
        }
    }
}

/// One name pi-deploy derives from the deployment, with the rule of the service it lands in.
pub struct Derived {
    pub what: &'static str,
    pub name: String,
    pub rule: Rule,
}

/// Every name derived from `dep`, the bucket's for the longest region name. Checked before
/// any AWS call, so a deployment name one service would refuse fails at once (exit 2),
/// not after the database and the NAT gateway were created.
pub fn derived(dep: &str) -> Vec<Derived> {
    let d = |what, name, rule| Derived { what, name, rule };
    let mut all = vec![
        d("SSM parameter", db_endpoint_parameter(dep), Rule::SsmParameter),
        d("S3 bucket name", bucket(dep, ACCOUNT, LONGEST_REGION), Rule::S3Bucket),
        d(
            "logs bucket name",
            logs_bucket(dep, ACCOUNT, LONGEST_REGION),
            Rule::S3Bucket,
        ),
        d("load balancer name", alb(dep), Rule::LoadBalancer),
        d("target group name", target_group(dep), Rule::TargetGroup),
        d(
            "target group name of another dashboard port",
            target_group_of(dep, 32767),
            Rule::TargetGroup,
        ),
        d("DB identifier", db_identifier(dep), Rule::RdsIdentifier { max: 63 }),
        d(
            "DB parameter group name",
            db_parameter_group(dep),
            Rule::RdsIdentifier { max: 255 },
        ),
        d(
            "DB parameter group name of another family",
            db_parameter_group_of(dep, "mariadb11.4"),
            Rule::RdsIdentifier { max: 255 },
        ),
        d("DB subnet group name", db_subnet_group(dep), Rule::RdsSubnetGroup),
        d(
            "final DB snapshot id",
            final_snapshot(dep, &chrono::Utc::now()),
            Rule::RdsIdentifier { max: 255 },
        ),
        d("Lambda IAM role name", lambda_role(dep), Rule::Iam),
        d("EC2 IAM role name", ec2_role(dep), Rule::Iam),
        d("instance profile name", instance_profile(dep), Rule::Iam),
        d("Lambda function name", lambda_function(dep), Rule::LambdaFunction),
        d(
            "Lambda permission statement id",
            lambda_statement_id(dep),
            Rule::LambdaStatementId,
        ),
        d("Lambda log group", lambda_log_group(dep), Rule::LogGroup),
        d("DB error log group", db_log_group(dep, "error"), Rule::LogGroup),
        d("licence secret name", licence_secret(dep), Rule::Secret),
        d("launch template name", launch_template(dep), Rule::LaunchTemplate),
        d("Auto Scaling group name", asg(dep), Rule::AutoScaling),
        d("lifecycle hook name", lifecycle_hook(dep), Rule::AutoScaling),
        d("scale-out policy name", scaling_policy(dep, 1), Rule::AutoScaling),
        d("scale-in policy name", scaling_policy(dep, -1), Rule::AutoScaling),
        d("EFS creation token", efs_creation_token(dep), Rule::EfsCreationToken),
    ];
    all.extend(
        SECURITY_GROUP_KEYS
            .iter()
            .map(|k| d("security group name", security_group(dep, k), Rule::SecurityGroup)),
    );
    all.extend(ALARM_KEYS.iter().map(|k| d("alarm name", alarm(dep, k), Rule::Alarm)));
    all
}

/// The fix for a deployment name whose derived `name` breaks `rule`.
pub fn fix_for(rule: Rule) -> String {
    match rule {
        Rule::SsmParameter => "choose a deployment name that does not start with `aws` or `ssm`".into(),
        Rule::S3Bucket => "choose a deployment name that does not start with `sthree` or `amzn-s3-demo`".into(),
        Rule::LoadBalancer => "choose a deployment name that does not start with `internal`".into(),
        Rule::SecurityGroup => "choose a deployment name that is not `sg` and does not start with `sg-`".into(),
        _ => format!("use a deployment name of at most {MAX_DEPLOYMENT_LEN} characters: {DEPLOYMENT_NAME_RULE}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_valid_name_fits_every_rule() {
        let longest = "a".repeat(MAX_DEPLOYMENT_LEN);
        assert!(check_deployment_name(&longest).is_ok());
        for n in derived(&longest) {
            assert_eq!(n.rule.check(&n.name), Ok(()), "{} `{}`", n.what, n.name);
        }
        assert!(check_deployment_name(&"a".repeat(MAX_DEPLOYMENT_LEN + 1)).is_err());
    }

    /// The image's port keeps the name the group always had; another port is in the name, so
    /// a port change's replacement never collides; the scan knows every port's name and
    /// nothing else (another deployment's `pi-tg-x`, a longer deployment name).
    #[test]
    fn the_target_group_is_named_after_its_port() {
        assert_eq!(target_group_of("pi", 8224), "pi-tg");
        assert_eq!(target_group_of("pi", 8443), "pi-tg-8443");
        for port in [8224, 8443, 32767] {
            assert!(is_target_group("pi", &target_group_of("pi", port)), "{port}");
        }
        for other in ["pi-tg-x", "pi-tg-", "pi-tg-08443", "pi-2-tg", "pie-tg", "pi-tg-8443-b"] {
            assert!(!is_target_group("pi", other), "{other}");
        }
    }

    /// Valid deployment names whose derived names one service refuses, each with the
    /// service's rule that refuses it.
    #[test]
    fn reserved_prefixes_of_each_service_are_caught() {
        let cases = [
            ("awsprod", Rule::SsmParameter),
            ("ssmx", Rule::SsmParameter),
            ("aws", Rule::SsmParameter),
            ("internal", Rule::LoadBalancer),
            ("internal-tools", Rule::LoadBalancer),
            ("sg", Rule::SecurityGroup),
            ("sg-prod", Rule::SecurityGroup),
            ("sthree", Rule::S3Bucket),
            ("sthree-configurator", Rule::S3Bucket),
            ("amzn-s3-demo", Rule::S3Bucket),
        ];
        for (dep, rule) in cases {
            assert!(check_deployment_name(dep).is_ok(), "{dep} is a well-formed name");
            let broken: Vec<_> = derived(dep)
                .into_iter()
                .filter(|n| n.rule.check(&n.name).is_err())
                .collect();
            assert!(
                broken.iter().any(|n| n.rule == rule),
                "{dep}: expected {rule:?} to refuse a derived name, got {:?}",
                broken.iter().map(|n| &n.name).collect::<Vec<_>>()
            );
        }
        for fine in [
            "pi", "pi-prod", "awning", "ssh", "sgx", "intern", "s3-three", "prod-aws",
        ] {
            for n in derived(fine) {
                assert_eq!(n.rule.check(&n.name), Ok(()), "{fine}: {} `{}`", n.what, n.name);
            }
        }
    }

    #[test]
    fn each_rule_refuses_what_its_service_refuses() {
        let refused = [
            (Rule::SsmParameter, "/AWS/x"),
            (Rule::SsmParameter, "SSM-param"),
            (Rule::SsmParameter, "/a b"),
            (Rule::S3Bucket, "ab"),
            (Rule::S3Bucket, "Upper-case"),
            (Rule::S3Bucket, "a..b"),
            (Rule::S3Bucket, "192.168.5.4"),
            (Rule::S3Bucket, "xn--abc"),
            (Rule::S3Bucket, "bucket-s3alias"),
            (Rule::S3Bucket, "bucket--ol-s3"),
            (Rule::S3Bucket, "-bucket"),
            (Rule::LoadBalancer, "Internal-x"),
            (Rule::LoadBalancer, "a-very-long-load-balancer-name-xyz"),
            (Rule::LoadBalancer, "alb-"),
            (Rule::TargetGroup, "tg_1"),
            (Rule::RdsIdentifier { max: 63 }, "1db"),
            (Rule::RdsIdentifier { max: 63 }, "db--1"),
            (Rule::RdsIdentifier { max: 63 }, "db-"),
            (Rule::RdsSubnetGroup, "Default"),
            (Rule::Iam, "role/x"),
            (Rule::LambdaFunction, "fn.x"),
            (Rule::LogGroup, "/aws/lambda/a b"),
            (Rule::Secret, "pi-deploy/x-abcdef"),
            (Rule::LaunchTemplate, "ab"),
            (Rule::AutoScaling, "a:b"),
            (Rule::SecurityGroup, "SG-alb"),
            (Rule::EfsCreationToken, ""),
        ];
        for (rule, name) in refused {
            assert!(rule.check(name).is_err(), "{rule:?} accepted `{name}`");
        }
    }

    #[test]
    fn every_security_group_and_alarm_of_the_spec_is_checked() {
        let cfg = crate::core::config::Config {
            certificate_arn: Some("arn:aws:acm:eu-west-1:123456789012:certificate/x".into()),
            hosted_zone_id: Some("Z1".into()),
            domain_name: Some("dash.example.com".into()),
            ..Default::default()
        };
        let nodes = crate::core::spec::build(&crate::core::spec::SpecInput {
            config: &cfg,
            region: "eu-west-1",
            azs: ["eu-west-1a".into(), "eu-west-1b".into()],
        });
        for n in &nodes {
            match n.kind {
                crate::core::spec::Kind::SecurityGroup => {
                    assert!(SECURITY_GROUP_KEYS.contains(&n.key.as_str()), "{}", n.key)
                }
                crate::core::spec::Kind::Alarm => assert!(ALARM_KEYS.contains(&n.key.as_str()), "{}", n.key),
                _ => {}
            }
        }
    }
}
