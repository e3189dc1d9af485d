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

/// Services that send `aws:SourceAccount` when they assume a role on a resource's behalf,
/// so the trust policy can pin it (confused-deputy protection). EC2 assumes an instance
/// profile's role without it: a condition there would lock the instances out.
pub const SERVICES_WITH_SOURCE_ACCOUNT: &[&str] = &["lambda.amazonaws.com", "backup.amazonaws.com"];

/// Who may assume the role: one AWS service (`lambda.amazonaws.com`, `ec2.amazonaws.com`),
/// acting for this account only where the service says on whose behalf it acts.
pub fn trust_policy(service: &str, account: &str) -> Value {
    let mut statement = json!({
        "Effect": "Allow",
        "Principal": { "Service": service },
        "Action": "sts:AssumeRole",
    });
    if SERVICES_WITH_SOURCE_ACCOUNT.contains(&service) {
        statement["Condition"] = json!({ "StringEquals": { "aws:SourceAccount": account } });
    }
    json!({ "Version": VERSION, "Statement": [statement] })
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

/// `dashboard_ec2` while a `restore` keeps a second database (core::restore): the instances
/// of both generations read and watch their own secret until the restore is finished or
/// aborted, so `kept` joins the DB secret in the two statements that name it.
pub fn with_kept_db_secret(mut doc: Value, kept: &str) -> Value {
    if let Some(statements) = doc["Statement"].as_array_mut() {
        for st in statements {
            if matches!(
                st["Sid"].as_str(),
                Some("ReadTheDeploymentSecrets" | "WatchTheDbSecretVersion")
            ) && let Some(r) = st.get_mut("Resource").and_then(Value::as_array_mut)
                && !r.iter().any(|v| v == kept)
            {
                r.push(Value::String(kept.to_string()));
            }
        }
    }
    doc
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
            // AmazonSSMManagedInstanceCore (attached for Session Manager) also grants
            // ssm:GetParameter(s) on `*`: in a shared account that reads every other
            // deployment's parameters. An explicit Deny outside `/<deployment>/*` wins.
            {
                "Sid": "NoParametersOutsideTheDeployment",
                "Effect": "Deny",
                "Action": PARAMETER_READS,
                "NotResource": [ssm_parameters_arn(scope, deployment)],
            },
        ],
    })
}

/// Every SSM action that reads a parameter's value.
pub const PARAMETER_READS: [&str; 4] = [
    "ssm:GetParameter",
    "ssm:GetParameters",
    "ssm:GetParametersByPath",
    "ssm:GetParameterHistory",
];

/// The interface endpoints' policy: any action, only by this account's principals; for
/// services whose resources all belong to the caller's account (Secrets Manager), only on
/// this account's resources too. SSM's endpoints also serve AWS-owned documents (e.g.
/// `AWS-RunShellScript`), so they are not restricted by resource account.
pub fn interface_endpoint_policy(service: &str, account: &str) -> Value {
    let mut condition = json!({ "aws:PrincipalAccount": account });
    if service == "secretsmanager" {
        condition["aws:ResourceAccount"] = json!(account);
    }
    json!({
        "Version": VERSION,
        "Statement": [{
            "Sid": "OnlyThisAccount",
            "Effect": "Allow",
            "Principal": "*",
            "Action": "*",
            "Resource": "*",
            "Condition": { "StringEquals": condition },
        }],
    })
}

/// AWS-owned buckets the instances read through the S3 gateway endpoint, unsigned or
/// signed by their role: package repositories (Amazon Linux 2023, 2 and 1; `dnf`/`yum`
/// fetch from them anonymously) and what the SSM agent downloads (its updates, plugins,
/// Distributor packages, document attachments, patch baselines).
pub fn aws_owned_buckets(region: &str) -> Vec<String> {
    vec![
        format!("al2023-repos-{region}-*"),
        format!("amazonlinux-2-repos-{region}"),
        format!("amazonlinux.{region}.amazonaws.com"),
        format!("packages.{region}.amazonaws.com"),
        format!("repo.{region}.amazonaws.com"),
        format!("amazon-ssm-{region}"),
        format!("amazon-ssm-packages-{region}"),
        format!("{region}-birdwatcher-prod"),
        format!("aws-ssm-distributor-file-{region}"),
        format!("aws-ssm-document-attachments-{region}"),
        format!("patch-baseline-snapshot-{region}"),
    ]
}

/// The S3 gateway endpoint's policy: this account's principals on this account's buckets,
/// and object reads from the AWS-owned buckets of `aws_owned_buckets`.
pub fn s3_gateway_endpoint_policy(scope: &ArnScope<'_>) -> Value {
    let owned: Vec<String> = aws_owned_buckets(scope.region)
        .iter()
        .map(|b| format!("arn:{}:s3:::{b}/*", scope.partition))
        .collect();
    json!({
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "OnlyThisAccount",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "*",
                "Resource": "*",
                "Condition": { "StringEquals": {
                    "aws:PrincipalAccount": scope.account,
                    "aws:ResourceAccount": scope.account,
                } },
            },
            {
                "Sid": "PackagesAndTheSsmAgent",
                "Effect": "Allow",
                "Principal": "*",
                "Action": ["s3:GetObject"],
                "Resource": owned,
            },
        ],
    })
}

/// The EFS file-system policy: NFS clients (which mount without IAM) may mount, write and
/// act as root only through a mount target, and nothing is allowed without TLS.
pub fn efs_tls_only(file_system_arn: &str) -> Value {
    json!({
        "Version": VERSION,
        "Statement": [
            {
                "Sid": "MountThroughTheMountTargets",
                "Effect": "Allow",
                "Principal": { "AWS": "*" },
                "Action": [
                    "elasticfilesystem:ClientMount",
                    "elasticfilesystem:ClientWrite",
                    "elasticfilesystem:ClientRootAccess",
                ],
                "Resource": file_system_arn,
                "Condition": { "Bool": { "elasticfilesystem:AccessedViaMountTarget": "true" } },
            },
            {
                "Sid": "DenyWithoutTls",
                "Effect": "Deny",
                "Principal": { "AWS": "*" },
                "Action": "*",
                "Resource": file_system_arn,
                "Condition": { "Bool": { "aws:SecureTransport": "false" } },
            },
        ],
    })
}

/// The DB secret's resource policy: its value is read by the dashboard role only. Other
/// principals of this account (and every other account) are denied GetSecretValue; AWS
/// services (RDS manages and rotates the secret) are not, nor service-linked roles.
pub fn db_secret_policy(scope: &ArnScope<'_>, reader_role_arn: &str, deployment: &str) -> Value {
    json!({
        "Version": VERSION,
        "Statement": [{
            "Sid": "OnlyTheDashboardReadsIt",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["secretsmanager:GetSecretValue"],
            "Resource": "*",
            "Condition": {
                "ArnNotLike": { "aws:PrincipalArn": [
                    reader_role_arn,
                    format!("arn:{}:iam::{}:role/aws-service-role/*", scope.partition, scope.account),
                ] },
                "Bool": { "aws:PrincipalIsAWSService": "false" },
                // A missing tag matches StringNotEquals: only a principal an administrator
                // tagged for this deployment is spared (the operator of `connect --db`).
                "StringNotEquals": { format!("aws:PrincipalTag/{DB_READER_TAG}"): deployment },
            },
        }],
    })
}

/// The IAM principal tag that lets an operator read the database's master password (the
/// MariaDB client line `connect --db` prints), valued with the deployment's name: the
/// secret's policy denies it to every other principal but the dashboard role. Granting it
/// needs `iam:TagRole`/`iam:TagUser`, an administrator's decision, and the principal's own
/// policy must still allow `secretsmanager:GetSecretValue`.
pub const DB_READER_TAG: &str = "pi-deploy:db-reader";

/// The logs bucket's policy: ELB's log delivery writes under `alb_prefix/AWSLogs/<account>/`
/// only (the service principal, and the regional ELB account where the region predates it)
/// when access logs are on; the VPC flow log delivery (`delivery.logs.amazonaws.com`, for
/// this account's log deliveries only) writes under `AWSLogs/<account>/` and reads the
/// bucket's ACL when `flow_logs`; nothing is read or written without TLS. With these
/// statements in place, CreateFlowLogs leaves the policy alone (it adds its own otherwise,
/// which the next `up` would see as drift).
pub fn log_bucket_policy(scope: &ArnScope<'_>, bucket_arn: &str, alb_prefix: Option<&str>, flow_logs: bool) -> Value {
    let mut statements = Vec::new();
    if let Some(prefix) = alb_prefix {
        let logs = format!("{bucket_arn}/{prefix}/AWSLogs/{}/*", scope.account);
        statements.push(json!({
            "Sid": ELB_LOG_DELIVERY,
            "Effect": "Allow",
            "Principal": { "Service": "logdelivery.elasticloadbalancing.amazonaws.com" },
            "Action": "s3:PutObject",
            "Resource": logs,
        }));
        if let Some(elb) = elb_account(scope.region) {
            statements.push(json!({
                "Sid": "ElbRegionalAccount",
                "Effect": "Allow",
                "Principal": { "AWS": format!("arn:{}:iam::{elb}:root", scope.partition) },
                "Action": "s3:PutObject",
                "Resource": logs,
            }));
        }
    }
    if flow_logs {
        let from_this_account = |extra: Value| {
            let mut equals = json!({ "aws:SourceAccount": scope.account });
            if let (Some(e), Value::Object(more)) = (equals.as_object_mut(), extra) {
                e.extend(more);
            }
            json!({
                "StringEquals": equals,
                "ArnLike": { "aws:SourceArn": format!("arn:{}:logs:{}:{}:*", scope.partition, scope.region, scope.account) },
            })
        };
        statements.push(json!({
            "Sid": FLOW_LOG_DELIVERY,
            "Effect": "Allow",
            "Principal": { "Service": "delivery.logs.amazonaws.com" },
            "Action": "s3:PutObject",
            "Resource": format!("{bucket_arn}/AWSLogs/{}/*", scope.account),
            "Condition": from_this_account(json!({ "s3:x-amz-acl": "bucket-owner-full-control" })),
        }));
        statements.push(json!({
            "Sid": "FlowLogDeliveryAclCheck",
            "Effect": "Allow",
            "Principal": { "Service": "delivery.logs.amazonaws.com" },
            "Action": "s3:GetBucketAcl",
            "Resource": bucket_arn,
            "Condition": from_this_account(json!({})),
        }));
    }
    statements.push(json!({
        "Sid": "DenyWithoutTls",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, format!("{bucket_arn}/*")],
        "Condition": { "Bool": { "aws:SecureTransport": "false" } },
    }));
    json!({ "Version": VERSION, "Statement": statements })
}

/// The Sid of the statement that lets ELB deliver access logs.
pub const ELB_LOG_DELIVERY: &str = "ElbLogDelivery";
/// The Sid of the statement that lets the flow log delivery write.
pub const FLOW_LOG_DELIVERY: &str = "FlowLogDelivery";

/// Which writers a logs bucket's policy lets in, by the Sids `log_bucket_policy` gives
/// them: `alb`, `vpc-flow-logs`, both joined with `+`, or `none`.
pub fn log_writers(alb: bool, flow_logs: bool) -> String {
    match (alb, flow_logs) {
        (true, true) => "alb+vpc-flow-logs",
        (true, false) => "alb",
        (false, true) => "vpc-flow-logs",
        (false, false) => "none",
    }
    .to_string()
}

/// `log_writers` of a live policy document: a writer counts when its Sid is there with
/// Allow (not a check of every field: the TLS check reads the Deny the same way).
pub fn log_writers_of(policy: &str) -> String {
    let doc: Value = serde_json::from_str(policy).unwrap_or(Value::Null);
    let has = |sid: &str| {
        doc["Statement"]
            .as_array()
            .is_some_and(|s| s.iter().any(|st| st["Sid"] == sid && st["Effect"] == "Allow"))
    };
    log_writers(has(ELB_LOG_DELIVERY), has(FLOW_LOG_DELIVERY))
}

/// The Elastic Load Balancing account of regions that predate the log-delivery service
/// principal (August 2022); later regions take the service principal only.
pub fn elb_account(region: &str) -> Option<&'static str> {
    Some(match region {
        "us-east-1" => "127311923021",
        "us-east-2" => "033677994240",
        "us-west-1" => "027434742980",
        "us-west-2" => "797873946194",
        "af-south-1" => "098369216593",
        "ap-east-1" => "754344448648",
        "ap-south-1" => "718504428378",
        "ap-northeast-3" => "383597477331",
        "ap-northeast-2" => "600734575887",
        "ap-southeast-1" => "114774131450",
        "ap-southeast-2" => "783225319266",
        "ap-northeast-1" => "582318560864",
        "ca-central-1" => "985666609251",
        "eu-central-1" => "054676820928",
        "eu-west-1" => "156460612806",
        "eu-west-2" => "652711504416",
        "eu-south-1" => "635631232127",
        "eu-west-3" => "009996457667",
        "eu-north-1" => "897822967062",
        "me-south-1" => "076674570225",
        "sa-east-1" => "507241528517",
        "us-gov-west-1" => "048591011584",
        "us-gov-east-1" => "190560391635",
        "cn-north-1" => "638102146993",
        "cn-northwest-1" => "037604701340",
        _ => return None,
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
        for s in statements(doc).iter().filter(|s| s["Effect"] != "Deny") {
            assert_eq!(s["Effect"], "Allow");
            for r in resources(s) {
                assert_ne!(r, "*", "{s}");
                assert!(r.starts_with("arn:aws-cn:"), "{r} is not in the scope's partition");
            }
        }
    }

    #[test]
    fn trust_policy_names_only_the_service() {
        let doc = trust_policy("lambda.amazonaws.com", "123456789012");
        let s = &statements(&doc)[0];
        assert_eq!(s["Principal"], json!({ "Service": "lambda.amazonaws.com" }));
        assert_eq!(s["Action"], "sts:AssumeRole");
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(statements(&doc).len(), 1);
    }

    #[test]
    fn lambda_may_assume_the_role_only_for_this_account_and_ec2_without_the_key_it_never_sends() {
        let lambda = trust_policy("lambda.amazonaws.com", "123456789012");
        assert_eq!(
            statements(&lambda)[0]["Condition"],
            json!({ "StringEquals": { "aws:SourceAccount": "123456789012" } })
        );
        let ec2 = trust_policy("ec2.amazonaws.com", "123456789012");
        assert!(statements(&ec2)[0].get("Condition").is_none());
    }

    #[test]
    fn parameter_reads_outside_the_deployment_are_denied_whatever_a_managed_policy_allows() {
        let doc = dashboard_ec2(
            &SCOPE,
            "pi",
            "arn:aws-cn:secretsmanager:r:1:secret:db",
            None,
            "pi-dashboard",
        );
        let deny = statements(&doc)
            .iter()
            .find(|s| s["Effect"] == "Deny")
            .expect("a Deny statement");
        let denied: Vec<&str> = deny["Action"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        for read in ["ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"] {
            assert!(denied.contains(&read), "{read} is denied");
        }
        assert_eq!(
            deny["NotResource"],
            json!(["arn:aws-cn:ssm:cn-north-1:123456789012:parameter/pi/*"])
        );
        assert!(deny.get("Resource").is_none());
    }

    #[test]
    fn interface_endpoints_serve_this_account_only() {
        for svc in ["ssm", "ssmmessages", "ec2messages"] {
            let doc = interface_endpoint_policy(svc, "123456789012");
            let s = &statements(&doc)[0];
            assert_eq!(
                s["Condition"],
                json!({ "StringEquals": { "aws:PrincipalAccount": "123456789012" } }),
                "{svc}: AWS-owned SSM documents stay readable"
            );
        }
        let sm = interface_endpoint_policy("secretsmanager", "123456789012");
        assert_eq!(
            statements(&sm)[0]["Condition"]["StringEquals"],
            json!({ "aws:PrincipalAccount": "123456789012", "aws:ResourceAccount": "123456789012" })
        );
    }

    #[test]
    fn the_s3_gateway_reaches_this_accounts_buckets_and_reads_the_aws_owned_ones() {
        let doc = s3_gateway_endpoint_policy(&SCOPE);
        let st = statements(&doc);
        assert_eq!(st.len(), 2);
        assert_eq!(
            st[0]["Condition"]["StringEquals"],
            json!({ "aws:PrincipalAccount": "123456789012", "aws:ResourceAccount": "123456789012" })
        );
        assert_eq!(st[1]["Action"], json!(["s3:GetObject"]));
        let owned = resources(&st[1]);
        for b in [
            "arn:aws-cn:s3:::al2023-repos-cn-north-1-*/*",
            "arn:aws-cn:s3:::amazonlinux-2-repos-cn-north-1/*",
            "arn:aws-cn:s3:::amazon-ssm-cn-north-1/*",
            "arn:aws-cn:s3:::amazon-ssm-packages-cn-north-1/*",
        ] {
            assert!(owned.contains(&b), "{b} in {owned:?}");
        }
        assert!(owned.iter().all(|r| r.ends_with("/*") && *r != "*"));
    }

    #[test]
    fn efs_allows_mounts_through_mount_targets_and_denies_everything_without_tls() {
        let fs = "arn:aws:elasticfilesystem:eu-west-1:123456789012:file-system/fs-1";
        let doc = efs_tls_only(fs);
        let st = statements(&doc);
        assert_eq!(st[0]["Effect"], "Allow");
        assert_eq!(
            st[0]["Condition"],
            json!({ "Bool": { "elasticfilesystem:AccessedViaMountTarget": "true" } })
        );
        assert_eq!(st[1]["Effect"], "Deny");
        assert_eq!(st[1]["Action"], "*");
        assert_eq!(
            st[1]["Condition"],
            json!({ "Bool": { "aws:SecureTransport": "false" } })
        );
        assert!(st.iter().all(|s| s["Resource"] == fs));
    }

    #[test]
    fn the_db_secret_is_read_by_the_dashboard_role_and_tagged_operators_only() {
        let role = "arn:aws-cn:iam::123456789012:role/pi-dashboard-ec2";
        let doc = db_secret_policy(&SCOPE, role, "pi");
        let s = &statements(&doc)[0];
        assert_eq!(s["Effect"], "Deny");
        assert_eq!(s["Action"], json!(["secretsmanager:GetSecretValue"]));
        let spared = &s["Condition"]["ArnNotLike"]["aws:PrincipalArn"];
        assert_eq!(spared[0], role);
        assert_eq!(spared[1], "arn:aws-cn:iam::123456789012:role/aws-service-role/*");
        assert_eq!(s["Condition"]["Bool"]["aws:PrincipalIsAWSService"], "false");
        // And an operator's principal tagged for this deployment (`connect --db`).
        assert_eq!(
            s["Condition"]["StringNotEquals"],
            json!({ "aws:PrincipalTag/pi-deploy:db-reader": "pi" })
        );
    }

    #[test]
    fn elb_delivers_logs_under_the_prefix_only_and_nothing_goes_without_tls() {
        let scope = ArnScope {
            partition: "aws",
            region: "eu-west-1",
            account: "123456789012",
        };
        let doc = log_bucket_policy(&scope, "arn:aws:s3:::pi-logs", Some("alb"), false);
        let st = statements(&doc);
        let logs = "arn:aws:s3:::pi-logs/alb/AWSLogs/123456789012/*";
        assert_eq!(
            st[0]["Principal"],
            json!({ "Service": "logdelivery.elasticloadbalancing.amazonaws.com" })
        );
        assert_eq!(st[0]["Resource"], logs);
        assert_eq!(st[1]["Principal"]["AWS"], "arn:aws:iam::156460612806:root");
        assert_eq!(st[1]["Resource"], logs);
        assert_eq!(st[2]["Effect"], "Deny");
        assert_eq!(st.len(), 3);
        assert_eq!(log_writers_of(&doc.to_string()), "alb");
        // A region newer than August 2022 has no ELB account: the service principal only.
        let newer = ArnScope {
            region: "ap-southeast-5",
            ..scope
        };
        let doc = log_bucket_policy(&newer, "arn:aws:s3:::pi-logs", Some("alb"), false);
        assert_eq!(statements(&doc).len(), 2);
    }

    #[test]
    fn the_flow_log_delivery_writes_this_accounts_logs_only_and_reads_the_acl() {
        let scope = ArnScope {
            partition: "aws-cn",
            region: "cn-north-1",
            account: "123456789012",
        };
        let doc = log_bucket_policy(&scope, "arn:aws-cn:s3:::pi-logs", None, true);
        let st = statements(&doc);
        assert_eq!(st.len(), 3, "{doc}");
        let from_here = json!({ "aws:SourceArn": "arn:aws-cn:logs:cn-north-1:123456789012:*" });
        assert_eq!(st[0]["Principal"], json!({ "Service": "delivery.logs.amazonaws.com" }));
        assert_eq!(st[0]["Action"], "s3:PutObject");
        assert_eq!(st[0]["Resource"], "arn:aws-cn:s3:::pi-logs/AWSLogs/123456789012/*");
        assert_eq!(
            st[0]["Condition"]["StringEquals"],
            json!({ "aws:SourceAccount": "123456789012", "s3:x-amz-acl": "bucket-owner-full-control" })
        );
        assert_eq!(st[0]["Condition"]["ArnLike"], from_here);
        assert_eq!(st[1]["Action"], "s3:GetBucketAcl");
        assert_eq!(st[1]["Resource"], "arn:aws-cn:s3:::pi-logs");
        assert_eq!(
            st[1]["Condition"]["StringEquals"],
            json!({ "aws:SourceAccount": "123456789012" })
        );
        assert_eq!(st[1]["Condition"]["ArnLike"], from_here);
        assert_eq!(st[2]["Effect"], "Deny");
        assert_eq!(log_writers_of(&doc.to_string()), "vpc-flow-logs");
        let both = log_bucket_policy(&scope, "arn:aws-cn:s3:::pi-logs", Some("alb"), true);
        assert_eq!(log_writers_of(&both.to_string()), "alb+vpc-flow-logs");
        assert_eq!(log_writers_of("not json"), "none");
        let denied = both.to_string().replace("\"Allow\"", "\"Deny\"");
        assert_eq!(log_writers_of(&denied), "none");
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
        assert_eq!(st.len(), 5);

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

        // AmazonSSMManagedInstanceCore's parameter reads on `*` are cancelled outside the
        // deployment's path by an explicit Deny.
        assert_eq!(st[3]["Sid"], "NoParametersOutsideTheDeployment");
        assert_eq!(st[3]["Effect"], "Deny");
        assert_eq!(actions(&st[3]), PARAMETER_READS);
        assert_eq!(
            st[3]["NotResource"],
            json!(["arn:aws-cn:ssm:cn-north-1:123456789012:parameter/pi/*"])
        );
        assert!(st[3].get("Resource").is_none());
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

    #[test]
    fn a_kept_db_secret_is_readable_beside_the_current_one_and_nothing_else_changes() {
        let scope = ArnScope {
            partition: "aws",
            region: "eu-west-1",
            account: "123456789012",
        };
        let (db, kept) = (
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-new",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-old",
        );
        let plain = dashboard_ec2(&scope, "pi", db, None, "pi-dashboard");
        let both = with_kept_db_secret(plain.clone(), kept);
        let resources = |doc: &Value, sid: &str| -> Vec<String> {
            doc["Statement"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["Sid"] == sid)
                .map(|s| serde_json::from_value(s["Resource"].clone()).unwrap())
                .unwrap()
        };
        for sid in ["ReadTheDeploymentSecrets", "WatchTheDbSecretVersion"] {
            assert_eq!(resources(&both, sid), [db, kept], "{sid}");
        }
        assert_eq!(with_kept_db_secret(both.clone(), kept), both, "added once");
        let mut unchanged = both.clone();
        for st in unchanged["Statement"].as_array_mut().unwrap() {
            if let Some(r) = st.get_mut("Resource").and_then(Value::as_array_mut) {
                r.retain(|v| v != kept);
            }
        }
        assert_eq!(unchanged, plain, "no other statement changes");
    }
}
