//! One classifier for every service's errors. EC2 reports codes as strings; other services
//! have typed `is_*` checks, but the code string carries the same information and lets one
//! table decide what is retried, so service modules only need the class.

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::core::resource::{ErrorClass, ResourceError};

/// Codes that mean "not there" across services.
fn is_not_found(code: &str) -> bool {
    code.contains("NotFound") || code.starts_with("NoSuch") || code == "ResourceNotFoundException"
}

/// S3: the bucket itself is gone (not one of its configurations).
pub fn is_no_such_bucket(e: &ResourceError) -> bool {
    e.code.as_deref() == Some("NoSuchBucket")
}

/// ELBv2: the target is not (any more) one that can be registered or deregistered (not
/// registered, or the instance is not running).
pub fn is_invalid_target(e: &ResourceError) -> bool {
    e.code.as_deref() == Some("InvalidTarget")
}

/// EC2: a client token reused with other parameters.
pub fn is_idempotent_mismatch(e: &ResourceError) -> bool {
    e.code.as_deref() == Some("IdempotentParameterMismatch")
}

fn is_already_exists(code: &str) -> bool {
    code.contains("AlreadyExists")
        || code.contains("Duplicate")
        || matches!(
            code,
            "BucketAlreadyOwnedByYou" | "ResourceExistsException" | "EntityAlreadyExists"
        )
}

/// S3 conditional requests: the condition (`If-Match`, `If-None-Match`) did not hold (412).
pub fn is_precondition_failed(code: &str) -> bool {
    code == "PreconditionFailed"
}

/// S3 conditional requests: another conditional write of the same key is in progress (409);
/// AWS asks to try again.
pub fn is_conditional_conflict(code: &str) -> bool {
    code == "ConditionalRequestConflict"
}

/// S3 answers these when a bucket is addressed in another region than its own.
pub fn is_wrong_region(code: &str) -> bool {
    matches!(
        code,
        "PermanentRedirect" | "AuthorizationHeaderMalformed" | "IllegalLocationConstraintException"
    )
}

/// The codes AWS answers when it refused a request for its rate (some with a 503).
pub const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestThrottled",
    "RequestThrottledException",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

fn is_throttled(code: &str) -> bool {
    THROTTLING_CODES.contains(&code)
}

fn is_in_use(code: &str) -> bool {
    matches!(
        code,
        "DependencyViolation"
            | "ResourceInUse"
            | "ResourceInUseException"
            | "ResourceInUseFault"
            | "InvalidGroup.InUse"
            | "FileSystemInUse"
            | "DeleteConflict"
            | "BucketNotEmpty"
            | "InvalidDBSubnetGroupStateFault"
            | "InvalidDBParameterGroupState"
            | "InvalidDBInstanceState"
            | "ResourceContention"
            | "ScalingActivityInProgress"
            | "ResourceConflictException"
            | "IncorrectState"
            | "InvalidIPAddress.InUse"
            | "AuthFailure.ServiceLinkedRoleCreationNotPermitted"
    ) || code == "InvalidNetworkInterface.InUse"
}

fn is_transient(code: &str) -> bool {
    matches!(
        code,
        "InternalError"
            | "InternalFailure"
            | "InternalServerError"
            | "InternalServiceError"
            | "InternalServiceErrorException"
            | "ServiceUnavailable"
            | "ServiceUnavailableException"
            | "Unavailable"
            | "RequestTimeout"
            | "RequestTimeoutException"
            | "ServiceException"
    )
}

/// IAM changes are eventually consistent: the first call that uses a new role or profile
/// can fail with one of these messages for up to a couple of minutes.
pub fn is_iam_propagation(code: &str, message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    (code.starts_with("InvalidParameterValue") || code == "ValidationError" || code == "InvalidParameterCombination")
        && (m.contains("iam instance profile")
            || m.contains("iaminstanceprofile")
            || m.contains("cannot be assumed")
            || m.contains("execution role does not have permissions")
            || m.contains("instance profile"))
}

pub fn class_of(code: &str, message: &str) -> ErrorClass {
    if is_iam_propagation(code, message) {
        ErrorClass::IamPropagation
    } else if is_not_found(code) {
        ErrorClass::NotFound
    } else if is_already_exists(code) {
        ErrorClass::AlreadyExists
    } else if is_throttled(code) {
        ErrorClass::Throttled
    } else if is_in_use(code) {
        ErrorClass::InUse
    } else if is_transient(code) {
        ErrorClass::Transient
    } else {
        ErrorClass::Other
    }
}

/// An id of the wrong shape for the call (`InvalidAMIID.Malformed`, ...): for a lookup,
/// nothing has that id.
pub fn is_malformed_id(e: &ResourceError) -> bool {
    e.code.as_deref().is_some_and(|c| c.ends_with(".Malformed"))
}

/// A value the service does not know at all (`InvalidInstanceType`, Route 53's
/// `InvalidInput` for an id of the wrong shape, `InvalidParameterValue`).
pub fn is_invalid_parameter(e: &ResourceError) -> bool {
    matches!(
        e.code.as_deref(),
        Some("InvalidInstanceType" | "InvalidInput" | "InvalidParameterValue" | "InvalidParameterValueException")
    )
}

/// What a `RunInstances` dry run's answer says about the launch it describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DryRunAnswer {
    /// `DryRunOperation`: EC2 would have launched it.
    WouldSucceed,
    /// EC2 refuses the launch itself; the config field to change.
    Refused(&'static str),
    /// The answer says nothing about the launch (no default VPC for a probe without a
    /// subnet, a code this check does not know).
    CannotJudge,
}

/// Classify a dry run's error code. Only codes that describe the launch itself refuse it:
/// an unknown code is not a reason to stop a deployment before it starts.
pub fn dry_run_answer(code: Option<&str>) -> DryRunAnswer {
    let Some(code) = code else {
        return DryRunAnswer::CannotJudge;
    };
    match code {
        "DryRunOperation" => DryRunAnswer::WouldSucceed,
        // An unsubscribed Marketplace image, an AMI that is not usable (yet).
        "OptInRequired" | "PendingVerification" | "AuthFailure.OptInRequired" => DryRunAnswer::Refused("ami"),
        c if c.starts_with("InvalidAMIID.") => DryRunAnswer::Refused("ami"),
        "InvalidBlockDeviceMapping" => DryRunAnswer::Refused("root_volume_gib"),
        c if c.starts_with("InvalidKeyPair.") => DryRunAnswer::Refused("key_pair"),
        "Unsupported"
        | "UnsupportedOperation"
        | "InvalidParameterCombination"
        | "InvalidParameterValue"
        | "InvalidInstanceType" => DryRunAnswer::Refused("instance_type"),
        _ => DryRunAnswer::CannotJudge,
    }
}

/// The caller may not make this call (a read a pre-flight check can do without).
pub fn is_denied(e: &ResourceError) -> bool {
    matches!(
        e.code.as_deref(),
        Some("AccessDenied" | "AccessDeniedException" | "UnauthorizedOperation" | "UnauthorizedAccess")
    )
}

/// Turn any SDK error into a classified `ResourceError` that names `what` was being done.
/// The message is the service's own (its code and request id are shown beside it by
/// `ResourceError`'s Display), or for an error without an answer the chain of causes; the
/// SDK's full rendering, which ends with the Debug form of the raw response (headers,
/// body), goes to the debug log only (`-vv`).
pub fn sdk<E, R>(what: impl std::fmt::Display, err: SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    tracing::debug!(error = %DisplayErrorContext(&err), "{what}");
    classify(what, &err)
}

/// `sdk` without the debug log: for calls whose raw response may carry a secret value.
pub fn sdk_without_dump<E, R>(what: impl std::fmt::Display, err: SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    classify(what, &err)
}

/// Each cause's message, joined by ": " (never a Debug form).
pub fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !text.is_empty() && !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

fn classify<E, R>(what: impl std::fmt::Display, err: &SdkError<E, R>) -> ResourceError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    if let Some(u) = super::reach::find(err)
        && !super::ambiguous::is_marked(err)
    {
        return ResourceError {
            class: ErrorClass::Unreachable,
            code: None,
            message: format!("{what}: {u}"),
            request_id: None,
            hint: None,
        };
    }
    let code = err.code().map(String::from);
    let message = err.message().unwrap_or_default().to_string();
    let request_id = err.meta().extra("aws_request_id").map(String::from);
    let class = match (&code, err) {
        // A create whose outcome is unknown (src/aws/ambiguous.rs): found before retrying.
        _ if super::ambiguous::is_marked(err) => ErrorClass::Ambiguous,
        // Refused by the fence (src/aws/fence.rs): the run is stopping, nothing to retry.
        _ if super::fence::is_fenced(err) => ErrorClass::Cancelled,
        (Some(c), _) => class_of(c, &message),
        // No service error: the request never got an answer (timeout, connection reset).
        (None, SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_)) => {
            ErrorClass::Transient
        }
        (None, _) => ErrorClass::Other,
    };
    let said = match (&code, message.is_empty()) {
        (Some(_), false) => message,
        (Some(c), true) => format!("{c} (the service gave no message)"),
        (None, _) => causes(err),
    };
    ResourceError {
        class,
        code,
        message: format!("{what}: {said}"),
        request_id,
        hint: None,
    }
}

/// `.map_err(aws::err("describing VPCs"))`
pub fn err<E, R>(what: &str) -> impl FnOnce(SdkError<E, R>) -> ResourceError + '_
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    move |e| sdk(what, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dry_run_refuses_only_for_what_describes_the_launch() {
        let cases = [
            (Some("DryRunOperation"), DryRunAnswer::WouldSucceed),
            (Some("OptInRequired"), DryRunAnswer::Refused("ami")),
            (Some("InvalidAMIID.NotFound"), DryRunAnswer::Refused("ami")),
            (
                Some("InvalidBlockDeviceMapping"),
                DryRunAnswer::Refused("root_volume_gib"),
            ),
            (Some("InvalidKeyPair.NotFound"), DryRunAnswer::Refused("key_pair")),
            (Some("Unsupported"), DryRunAnswer::Refused("instance_type")),
            (
                Some("InvalidParameterCombination"),
                DryRunAnswer::Refused("instance_type"),
            ),
            // No default VPC for a probe without a subnet: says nothing about the launch.
            (Some("VPCIdNotSpecified"), DryRunAnswer::CannotJudge),
            (Some("MissingInput"), DryRunAnswer::CannotJudge),
            (Some("SomethingNew"), DryRunAnswer::CannotJudge),
            (None, DryRunAnswer::CannotJudge),
        ];
        for (code, want) in cases {
            assert_eq!(dry_run_answer(code), want, "{code:?}");
        }
    }

    #[test]
    fn classification_table() {
        let cases = [
            ("InvalidVpcID.NotFound", "", ErrorClass::NotFound),
            ("InvalidGroup.NotFound", "", ErrorClass::NotFound),
            ("NoSuchEntity", "", ErrorClass::NotFound),
            ("NoSuchBucket", "", ErrorClass::NotFound),
            ("DBInstanceNotFound", "", ErrorClass::NotFound),
            ("ResourceNotFoundException", "", ErrorClass::NotFound),
            ("InvalidPermission.Duplicate", "", ErrorClass::AlreadyExists),
            ("EntityAlreadyExists", "", ErrorClass::AlreadyExists),
            ("BucketAlreadyOwnedByYou", "", ErrorClass::AlreadyExists),
            ("RequestLimitExceeded", "", ErrorClass::Throttled),
            ("Throttling", "", ErrorClass::Throttled),
            ("DependencyViolation", "", ErrorClass::InUse),
            ("DeleteConflict", "", ErrorClass::InUse),
            ("FileSystemInUse", "", ErrorClass::InUse),
            ("InternalError", "", ErrorClass::Transient),
            ("ServiceUnavailable", "", ErrorClass::Transient),
            (
                "InvalidParameterValue",
                "Value (x) for parameter iamInstanceProfile.name is invalid. Invalid IAM Instance Profile name",
                ErrorClass::IamPropagation,
            ),
            (
                "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda.",
                ErrorClass::IamPropagation,
            ),
            (
                "ValidationError",
                "Invalid IamInstanceProfile: x",
                ErrorClass::IamPropagation,
            ),
            ("InvalidParameterValue", "CIDR is invalid", ErrorClass::Other),
            ("UnauthorizedOperation", "", ErrorClass::Other),
        ];
        for (code, msg, class) in cases {
            assert_eq!(class_of(code, msg), class, "{code}");
        }
    }
}
