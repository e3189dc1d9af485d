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

pub fn alb(dep: &str) -> String {
    format!("{dep}-alb")
}
pub fn target_group(dep: &str) -> String {
    format!("{dep}-tg")
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

pub struct NameLimit {
    pub what: &'static str,
    pub name: String,
    pub limit: usize,
}

/// Every derived name with its AWS length limit, for the longest region.
pub fn derived_name_limits(dep: &str) -> Vec<NameLimit> {
    let l = |what, name, limit| NameLimit { what, name, limit };
    vec![
        l("ALB name", alb(dep), 32),
        l("target group name", target_group(dep), 32),
        l("DB identifier", db_identifier(dep), 63),
        l("DB subnet group name", db_subnet_group(dep), 255),
        l("S3 bucket name", bucket(dep, ACCOUNT, LONGEST_REGION), 63),
        l("Lambda IAM role name", lambda_role(dep), 64),
        l("EC2 IAM role name", ec2_role(dep), 64),
        l("Lambda function name", lambda_function(dep), 64),
        l("launch template name", launch_template(dep), 128),
        l("lifecycle hook name", lifecycle_hook(dep), 255),
        l("EFS creation token", efs_creation_token(dep), 64),
        l("final snapshot id", final_snapshot(dep, &chrono::Utc::now()), 255),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_valid_name_fits_every_limit() {
        let longest = "a".repeat(MAX_DEPLOYMENT_LEN);
        assert!(check_deployment_name(&longest).is_ok());
        for n in derived_name_limits(&longest) {
            assert!(n.name.len() <= n.limit, "{} `{}` exceeds {}", n.what, n.name, n.limit);
        }
        assert!(check_deployment_name(&"a".repeat(MAX_DEPLOYMENT_LEN + 1)).is_err());
    }
}
