//! IAM policy documents, as pure functions of the ARNs they grant on.
//!
//! Least privilege, unlike the vendor's templates (`s3:*`, `elasticfilesystem:*`,
//! `secretsmanager:ListSecrets` on `*`): every statement names the deployment's own
//! resources, and every ARN is built from the partition, region and account STS reported,
//! so GovCloud (`aws-us-gov`) and China (`aws-cn`) work unchanged.

use serde_json::{Value, json};

/// Where ARNs live: from STS and the session's region, never hard-coded.
#[derive(Clone, Copy, Debug)]
pub struct ArnScope<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
}

impl ArnScope<'_> {
    fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:{}:{service}:{}:{}:{resource}",
            self.partition, self.region, self.account
        )
    }
}

const VERSION: &str = "2012-10-17";

/// Who may assume the role: one AWS service (`lambda.amazonaws.com`, `ec2.amazonaws.com`).
pub fn trust_policy(service: &str) -> Value {
    json!({
        "Version": VERSION,
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Service": service },
            "Action": "sts:AssumeRole",
        }],
    })
}

/// An AWS-managed policy, e.g. `service-role/AWSLambdaVPCAccessExecutionRole`.
pub fn managed_policy_arn(partition: &str, name: &str) -> String {
    format!("arn:{partition}:iam::aws:policy/{name}")
}

/// A log group's ARN without the trailing `:*` (the form tagging APIs take).
pub fn log_group_arn(scope: &ArnScope<'_>, name: &str) -> String {
    scope.arn("logs", &format!("log-group:{name}"))
}

/// The deployment's SSM parameters, `/<deployment>/...`.
pub fn ssm_parameters_arn(scope: &ArnScope<'_>, deployment: &str) -> String {
    scope.arn("ssm", &format!("parameter/{deployment}/*"))
}

/// One Auto Scaling group by name (its id part is unknown before it exists, hence `*`).
pub fn asg_arn(scope: &ArnScope<'_>, asg_name: &str) -> String {
    scope.arn(
        "autoscaling",
        &format!("autoScalingGroup:*:autoScalingGroupName/{asg_name}"),
    )
}

fn allow(sid: &str, actions: &[&str], resources: Vec<String>) -> Value {
    json!({ "Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resources })
}

/// The side-loading Lambda: read the bucket's objects (the handler passes the record's
/// `versionId`, which needs GetObjectVersion), mount and write the file system (only
/// through the access point when one is given), write its own log group, and tag each
/// object of the bucket with the outcome of its copy (`pi-deploy sideload` reads the tags
/// for its receipt; PutObjectTagging on the bucket's objects is the role's only S3 write).
/// ENI management comes from the AWS-managed VPC access policy.
pub fn sideload_lambda(
    scope: &ArnScope<'_>,
    bucket_arn: &str,
    file_system_arn: &str,
    access_point_arn: Option<&str>,
    log_group: &str,
) -> Value {
    let mut efs = allow(
        "MountTheFileSystem",
        &["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"],
        vec![file_system_arn.to_string()],
    );
    if let Some(ap) = access_point_arn {
        efs["Condition"] = json!({ "StringEquals": { "elasticfilesystem:AccessPointArn": ap } });
    }
    json!({
        "Version": VERSION,
        "Statement": [
            allow("ReadTheBucketObjects", &["s3:GetObject", "s3:GetObjectVersion"], vec![format!("{bucket_arn}/*")]),
            efs,
            allow(
                "WriteItsOwnLogs",
                &["logs:CreateLogStream", "logs:PutLogEvents"],
                vec![format!("{}:*", log_group_arn(scope, log_group))],
            ),
            allow(
                "TagTheOutcomeOfEachObject",
                &["s3:PutObjectTagging"],
                vec![format!("{bucket_arn}/*")],
            ),
        ],
    })
}

/// The dashboard instances: read the DB secret (and the licence), watch the DB secret's
/// version (RDS rotates it in place; the instances restart the dashboard on a new version),
/// read the deployment's parameters (the DB endpoint), and release their own launch
/// lifecycle hook.
pub fn dashboard_ec2(
    scope: &ArnScope<'_>,
    deployment: &str,
    db_secret_arn: &str,
    licence_secret_arn: Option<&str>,
    asg_name: &str,
) -> Value {
    let mut secrets = vec![db_secret_arn.to_string()];
    secrets.extend(licence_secret_arn.map(String::from));
    json!({
        "Version": VERSION,
        "Statement": [
            allow("ReadTheDeploymentSecrets", &["secretsmanager:GetSecretValue"], secrets),
            allow(
                "WatchTheDbSecretVersion",
                &["secretsmanager:DescribeSecret"],
                vec![db_secret_arn.to_string()],
            ),
            allow(
                "ReadTheDeploymentParameters",
                &["ssm:GetParameter", "ssm:GetParameters"],
                vec![ssm_parameters_arn(scope, deployment)],
            ),
            allow(
                "CompleteItsLifecycleHook",
                // The heartbeat keeps the hook from abandoning the instance during long waits.
                &[
                    "autoscaling:CompleteLifecycleAction",
                    "autoscaling:RecordLifecycleActionHeartbeat",
                ],
                vec![asg_arn(scope, asg_name)],
            ),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: ArnScope<'static> = ArnScope {
        partition: "aws-cn",
        region: "cn-north-1",
        account: "123456789012",
    };

    fn statements(doc: &Value) -> &Vec<Value> {
        assert_eq!(doc["Version"], VERSION);
        doc["Statement"].as_array().unwrap()
    }

    fn resources(s: &Value) -> Vec<&str> {
        s["Resource"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect()
    }

    fn actions(s: &Value) -> Vec<&str> {
        s["Action"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect()
    }

    /// No statement may grant on `*` alone, and every ARN is in the scope's partition.
    fn assert_scoped(doc: &Value) {
        for s in statements(doc) {
            assert_eq!(s["Effect"], "Allow");
            for r in resources(s) {
                assert_ne!(r, "*", "{s}");
                assert!(r.starts_with("arn:aws-cn:"), "{r} is not in the scope's partition");
            }
        }
    }

    #[test]
    fn trust_policy_names_only_the_service() {
        let doc = trust_policy("lambda.amazonaws.com");
        let s = &statements(&doc)[0];
        assert_eq!(s["Principal"], json!({ "Service": "lambda.amazonaws.com" }));
        assert_eq!(s["Action"], "sts:AssumeRole");
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(statements(&doc).len(), 1);
    }

    #[test]
    fn managed_policies_use_the_partition() {
        assert_eq!(
            managed_policy_arn("aws-us-gov", "AmazonSSMManagedInstanceCore"),
            "arn:aws-us-gov:iam::aws:policy/AmazonSSMManagedInstanceCore"
        );
        assert_eq!(
            managed_policy_arn("aws", "service-role/AWSLambdaVPCAccessExecutionRole"),
            "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
        );
    }

    #[test]
    fn sideload_lambda_reads_objects_mounts_the_file_system_and_writes_its_logs() {
        let fs = "arn:aws-cn:elasticfilesystem:cn-north-1:123456789012:file-system/fs-1";
        let ap = "arn:aws-cn:elasticfilesystem:cn-north-1:123456789012:access-point/fsap-1";
        let doc = sideload_lambda(
            &SCOPE,
            "arn:aws-cn:s3:::pi-resources",
            fs,
            Some(ap),
            "/aws/lambda/pi-sideload",
        );
        assert_scoped(&doc);
        let st = statements(&doc);
        assert_eq!(st.len(), 4);

        assert_eq!(actions(&st[0]), ["s3:GetObject", "s3:GetObjectVersion"]);
        assert_eq!(resources(&st[0]), ["arn:aws-cn:s3:::pi-resources/*"]);

        assert_eq!(
            actions(&st[1]),
            ["elasticfilesystem:ClientMount", "elasticfilesystem:ClientWrite"]
        );
        assert_eq!(resources(&st[1]), [fs]);
        assert_eq!(
            st[1]["Condition"]["StringEquals"]["elasticfilesystem:AccessPointArn"],
            ap
        );

        assert_eq!(actions(&st[2]), ["logs:CreateLogStream", "logs:PutLogEvents"]);
        assert_eq!(
            resources(&st[2]),
            ["arn:aws-cn:logs:cn-north-1:123456789012:log-group:/aws/lambda/pi-sideload:*"]
        );

        // The outcome tags: that one action, on that bucket's objects only (not the bucket,
        // not `s3:PutObject`, not another bucket).
        assert_eq!(actions(&st[3]), ["s3:PutObjectTagging"]);
        assert_eq!(resources(&st[3]), ["arn:aws-cn:s3:::pi-resources/*"]);
        let s3_actions: Vec<&str> = st.iter().flat_map(actions).filter(|a| a.starts_with("s3:")).collect();
        assert_eq!(
            s3_actions,
            ["s3:GetObject", "s3:GetObjectVersion", "s3:PutObjectTagging"]
        );
    }

    #[test]
    fn sideload_lambda_without_an_access_point_has_no_condition() {
        let doc = sideload_lambda(
            &SCOPE,
            "arn:aws-cn:s3:::b",
            "arn:aws-cn:elasticfilesystem:x:1:file-system/fs-1",
            None,
            "/g",
        );
        assert!(statements(&doc)[1].get("Condition").is_none());
    }

    #[test]
    fn dashboard_reads_only_its_secrets_parameters_and_hook() {
        let db = "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:rds!db-1";
        let lic = "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:pi-deploy/pi/licence-AbC";
        let doc = dashboard_ec2(&SCOPE, "pi", db, Some(lic), "pi-dashboard");
        assert_scoped(&doc);
        let mut st = statements(&doc).clone();
        assert_eq!(st.len(), 4);

        assert_eq!(actions(&st[0]), ["secretsmanager:GetSecretValue"]);
        assert_eq!(resources(&st[0]), [db, lic]);

        // The rotation watch reads the DB secret's metadata, and only that secret's.
        let watch = st.remove(1);
        assert_eq!(watch["Sid"], "WatchTheDbSecretVersion");
        assert_eq!(actions(&watch), ["secretsmanager:DescribeSecret"]);
        assert_eq!(resources(&watch), [db]);

        assert_eq!(actions(&st[1]), ["ssm:GetParameter", "ssm:GetParameters"]);
        assert_eq!(
            resources(&st[1]),
            ["arn:aws-cn:ssm:cn-north-1:123456789012:parameter/pi/*"]
        );

        assert_eq!(
            actions(&st[2]),
            [
                "autoscaling:CompleteLifecycleAction",
                "autoscaling:RecordLifecycleActionHeartbeat"
            ]
        );
        assert_eq!(
            resources(&st[2]),
            ["arn:aws-cn:autoscaling:cn-north-1:123456789012:autoScalingGroup:*:autoScalingGroupName/pi-dashboard"]
        );
    }

    #[test]
    fn dashboard_without_a_licence_reads_only_the_db_secret() {
        let doc = dashboard_ec2(
            &SCOPE,
            "pi",
            "arn:aws-cn:secretsmanager:r:1:secret:db",
            None,
            "pi-dashboard",
        );
        assert_eq!(
            resources(&statements(&doc)[0]),
            ["arn:aws-cn:secretsmanager:r:1:secret:db"]
        );
    }

    #[test]
    fn the_parameter_arn_covers_the_endpoint_parameter() {
        // `/<deployment>/db-endpoint` is `parameter/<deployment>/db-endpoint` in its ARN.
        let arn = ssm_parameters_arn(&SCOPE, "pi-prod");
        let endpoint = crate::core::names::db_endpoint_parameter("pi-prod");
        assert_eq!(
            arn.trim_end_matches('*'),
            format!(
                "arn:aws-cn:ssm:cn-north-1:123456789012:parameter{}",
                endpoint.trim_end_matches("db-endpoint")
            )
        );
    }
}
