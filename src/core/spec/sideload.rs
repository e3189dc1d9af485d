//! The side-loading tier: the Lambda's role and log group, the Lambda, its permission and
//! the bucket's notification.

use super::{Builder, Kind, Props, RolePolicy, SpecInput, keys, with};
use crate::core::names;

/// The folders users drop files into; the Lambda accepts exactly these.
pub const SIDELOAD_PREFIXES: [&str; 5] = ["images/", "themes/", "excel-data/", "svg/", "keys/"];

/// Side-loading: S3 -> Lambda (in the VPC, EFS access point at /mnt/efs) -> EFS.
pub(super) fn sideload(b: &mut Builder, input: &SpecInput<'_>) {
    let cfg = input.config;
    let dep = &cfg.deployment;
    b.add(
        "lambda-role",
        Kind::IamRole,
        // The access point's ARN narrows the role's EFS mount permission to it.
        vec!["bucket".into(), "efs".into(), "efs-ap".into()],
        Props::IamRole {
            name: names::lambda_role(dep),
            service: "lambda.amazonaws.com".into(),
            managed_policies: vec!["service-role/AWSLambdaVPCAccessExecutionRole".into()],
            policy: RolePolicy::SideloadLambda,
        },
    );
    b.add(
        "lambda-log-group",
        Kind::LogGroup,
        vec![],
        Props::LogGroup {
            name: names::lambda_log_group(dep),
            retention_days: cfg.lambda.log_retention_days,
        },
    );
    let subnets = keys("subnet-app");
    b.add(
        "lambda",
        Kind::LambdaFunction,
        with(
            subnets.clone(),
            &[
                "lambda-role",
                "sg-lambda",
                "efs-ap",
                "efs-mt-a",
                "efs-mt-b",
                "lambda-log-group",
            ],
        ),
        Props::LambdaFunction {
            name: names::lambda_function(dep),
            runtime: cfg.lambda.runtime.clone(),
            role: "lambda-role".into(),
            subnets,
            security_group: "sg-lambda".into(),
            access_point: "efs-ap".into(),
            log_group: "lambda-log-group".into(),
        },
    );
    b.add(
        "lambda-permission",
        Kind::LambdaPermission,
        vec!["lambda".into(), "bucket".into()],
        Props::LambdaPermission {
            function: "lambda".into(),
            bucket: "bucket".into(),
        },
    );
    // S3 validates the destination when the notification is set: the permission first.
    b.add(
        "bucket-notification",
        Kind::BucketNotification,
        vec!["bucket".into(), "lambda".into(), "lambda-permission".into()],
        Props::BucketNotification {
            bucket: "bucket".into(),
            function: "lambda".into(),
            prefixes: SIDELOAD_PREFIXES.iter().map(|p| p.to_string()).collect(),
        },
    );
}
