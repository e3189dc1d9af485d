//! Read-only lookups for the checks `up` and `plan` run before anything is created
//! (`commands::preflight` decides what their answers mean). Each returns plain facts, never
//! an SDK type, so the decisions can be unit-tested on scripted data.

use aws_sdk_ec2::types::LocationType;

use super::{Aws, ec2};
use crate::aws::err;
use crate::core::resource::{ErrorClass, ResourceError};

/// What DescribeImages says about an AMI; `None` from [`image`] when it does not exist.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFacts {
    pub state: String,
    pub architecture: String,
    /// The size of its root snapshot, when it says (the root volume is raised to it).
    pub root_snapshot_gib: Option<i32>,
    /// Its RootDeviceName (`/dev/xvda`), where the launch template maps the root volume.
    pub root_device_name: Option<String>,
}

/// The AMI as this account sees it in the region.
pub async fn image(aws: &Aws, ami: &str) -> Result<Option<ImageFacts>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_images()
        .image_ids(ami)
        .send()
        .await
        .map_err(err("describing the AMI"));
    let out = match out {
        Err(e) if e.is(ErrorClass::NotFound) || crate::aws::error::is_malformed_id(&e) => return Ok(None),
        other => other?,
    };
    Ok(out.images().first().map(|i| ImageFacts {
        state: i.state().map_or("unknown", |s| s.as_str()).to_string(),
        architecture: i.architecture().map_or("unknown", |a| a.as_str()).to_string(),
        root_snapshot_gib: super::launch_template::root_snapshot_gib(i),
        root_device_name: i.root_device_name().map(String::from),
    }))
}

/// The launch the Auto Scaling group will make, as far as it is known before anything is
/// created: what a `RunInstances` dry run is asked about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchProbe {
    pub ami: String,
    pub instance_type: String,
    pub key_name: Option<String>,
    /// The root device's name and the size the launch template will give it.
    pub root: Option<(String, i32)>,
    /// One of the deployment's app subnets once it exists (day 2); before, the zone alone
    /// (EC2 then uses the default VPC, if the account has one).
    pub subnet: Option<String>,
    pub zone: String,
}

/// What EC2 says about a launch it was only asked to check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DryLaunch {
    WouldLaunch,
    /// EC2 refuses it: the config field to change, AWS's code and message.
    Refused {
        field: &'static str,
        code: String,
        message: String,
    },
    /// The answer says nothing about the launch (why, for the warning).
    CannotJudge(String),
}

/// A `RunInstances` dry run of one instance as the launch template describes it (IMDSv2,
/// the encrypted gp3 root volume): catches an unsubscribed Marketplace image
/// (OptInRequired), a bad block device mapping or an instance type the image or zone
/// refuses before anything is created, instead of as failed scaling activities later.
/// AccessDenied (`UnauthorizedOperation`) is an error here: the caller makes it a warning.
pub async fn launch_dry_run(aws: &Aws, probe: &LaunchProbe) -> Result<DryLaunch, ResourceError> {
    use crate::aws::error::{DryRunAnswer, dry_run_answer};
    use aws_sdk_ec2::types::{
        BlockDeviceMapping, EbsBlockDevice, HttpTokensState, InstanceMetadataOptionsRequest, Placement, VolumeType,
    };
    let mut req = aws
        .clients
        .ec2
        .run_instances()
        .dry_run(true)
        .image_id(&probe.ami)
        .instance_type(probe.instance_type.as_str().into())
        .min_count(1)
        .max_count(1)
        .set_key_name(probe.key_name.clone())
        .metadata_options(
            InstanceMetadataOptionsRequest::builder()
                .http_tokens(HttpTokensState::Required)
                .build(),
        );
    req = match &probe.subnet {
        Some(subnet) => req.subnet_id(subnet),
        None => req.placement(Placement::builder().availability_zone(&probe.zone).build()),
    };
    if let Some((device, gib)) = &probe.root {
        req = req.block_device_mappings(
            BlockDeviceMapping::builder()
                .device_name(device)
                .ebs(
                    EbsBlockDevice::builder()
                        .volume_type(VolumeType::Gp3)
                        .volume_size(*gib)
                        .encrypted(true)
                        .delete_on_termination(true)
                        .build(),
                )
                .build(),
        );
    }
    let e = match req
        .send()
        .await
        .map_err(err("asking EC2 (dry run) whether it would launch the instances"))
    {
        // A dry run never launches; an answer without an error still means "would launch".
        Ok(_) => return Ok(DryLaunch::WouldLaunch),
        Err(e) => e,
    };
    if crate::aws::error::is_denied(&e) {
        return Err(e);
    }
    Ok(match dry_run_answer(e.code.as_deref()) {
        DryRunAnswer::WouldSucceed => DryLaunch::WouldLaunch,
        DryRunAnswer::Refused(field) => DryLaunch::Refused {
            field,
            code: e.code.clone().unwrap_or_default(),
            message: e.message,
        },
        DryRunAnswer::CannotJudge if e.is(ErrorClass::Throttled) || e.is(ErrorClass::Transient) => return Err(e),
        DryRunAnswer::CannotJudge => DryLaunch::CannotJudge(e.message),
    })
}

/// The architectures an instance type runs (`x86_64`, `arm64`); empty when EC2 does not
/// know the type (the offerings check names that).
pub async fn instance_architectures(aws: &Aws, instance_type: &str) -> Result<Vec<String>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_instance_types()
        .instance_types(instance_type.into())
        .send()
        .await
        .map_err(err("describing the instance type"));
    let out = match out {
        Err(e) if crate::aws::error::is_invalid_parameter(&e) => return Ok(Vec::new()),
        other => other?,
    };
    Ok(out
        .instance_types()
        .iter()
        .flat_map(|t| {
            t.processor_info()
                .map(|p| p.supported_architectures())
                .unwrap_or_default()
        })
        .map(|a| a.as_str().to_string())
        .collect())
}

/// Which of `zones` offer `instance_type`.
pub async fn zones_offering(aws: &Aws, instance_type: &str, zones: &[String]) -> Result<Vec<String>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_instance_type_offerings()
        .location_type(LocationType::AvailabilityZone)
        .filters(ec2::filter("instance-type", [instance_type]))
        .filters(ec2::filter("location", zones.iter().map(String::as_str)))
        .send()
        .await
        .map_err(err("listing where the instance type is offered"))?;
    Ok(out
        .instance_type_offerings()
        .iter()
        .filter(|o| o.instance_type().map(|t| t.as_str()) == Some(instance_type))
        .filter_map(|o| o.location().map(String::from))
        .collect())
}

/// The zones of the region that are `available` (all of them: the answer to a filter by
/// name differs between AWS, which refuses an unknown name, and emulators).
pub async fn available_zones(aws: &Aws) -> Result<Vec<String>, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_availability_zones()
        .filters(ec2::filter("state", ["available"]))
        .send()
        .await
        .map_err(err("listing availability zones"))?;
    Ok(out
        .availability_zones()
        .iter()
        .filter_map(|z| z.zone_name().map(String::from))
        .collect())
}

/// Whether the key pair exists in the region.
pub async fn key_pair_exists(aws: &Aws, name: &str) -> Result<bool, ResourceError> {
    let out = aws
        .clients
        .ec2
        .describe_key_pairs()
        .key_names(name)
        .send()
        .await
        .map_err(err("describing the key pair"));
    match out {
        Ok(o) => Ok(o.key_pairs().iter().any(|k| k.key_name() == Some(name))),
        Err(e) if e.is(ErrorClass::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

/// The hosted zone's domain (`example.com`, without the final dot) and whether it is
/// private; `None` when no zone has that id.
pub async fn hosted_zone(aws: &Aws, id: &str) -> Result<Option<(String, bool)>, ResourceError> {
    let out = aws
        .clients
        .route53
        .get_hosted_zone()
        .id(id.trim_start_matches("/hostedzone/"))
        .send()
        .await
        .map_err(err("reading the hosted zone"));
    let out = match out {
        Err(e) if e.is(ErrorClass::NotFound) || crate::aws::error::is_invalid_parameter(&e) => return Ok(None),
        other => other?,
    };
    Ok(out.hosted_zone().map(|z| {
        let private = z.config().is_some_and(|c| c.private_zone());
        (z.name().trim_end_matches('.').to_ascii_lowercase(), private)
    }))
}

/// Whether ELB knows the TLS policy (AWS refuses an unknown name; emulators answer an empty
/// list).
pub async fn ssl_policy_exists(aws: &Aws, name: &str) -> Result<bool, ResourceError> {
    let out = aws
        .clients
        .elb
        .describe_ssl_policies()
        .names(name)
        .send()
        .await
        .map_err(err("describing the TLS policy"));
    match out {
        Ok(o) => Ok(o.ssl_policies().iter().any(|p| p.name() == Some(name))),
        Err(e) if e.is(ErrorClass::NotFound) => Ok(false),
        Err(e) => Err(e),
    }
}

/// One orderable combination of a DB class and engine version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbOption {
    pub multi_az: bool,
    pub storage_type: Option<String>,
}

/// What RDS offers for the configured engine version and class. The second and third
/// questions are asked only when the one before found nothing, to tell which value is not
/// offered, and whether the endpoint lists anything at all.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DbOfferings {
    /// The options for exactly this engine version and class (in a VPC).
    pub exact: Vec<DbOption>,
    /// Whether any class is offered with this engine version (asked when `exact` is empty).
    pub version_offered: Option<bool>,
    /// Whether the endpoint lists any option for the engine at all (asked when the version
    /// is not offered).
    pub engine_listed: Option<bool>,
}

pub const DB_ENGINE: &str = "mariadb";

/// The orderable options for MariaDB, every page. A version pinned to its major (`10.11`:
/// RDS picks the minor) matches the options of each of its minors: RDS lists only full
/// versions, so such a version is asked without it and filtered here.
async fn orderable(aws: &Aws, version: Option<&str>, class: Option<&str>) -> Result<Vec<DbOption>, ResourceError> {
    let major_only = version.filter(|v| v.split('.').count() == 2);
    let mut options = Vec::new();
    let mut marker: Option<String> = None;
    // Bounded: 20 pages of 100 is far more than RDS lists for one engine and class.
    for _ in 0..20 {
        let out = aws
            .clients
            .rds
            .describe_orderable_db_instance_options()
            .engine(DB_ENGINE)
            .set_engine_version(if major_only.is_some() {
                None
            } else {
                version.map(String::from)
            })
            .set_db_instance_class(class.map(String::from))
            .vpc(true)
            .max_records(100)
            .set_marker(marker.take())
            .send()
            .await
            .map_err(err("listing the orderable DB instance options"))?;
        options.extend(
            out.orderable_db_instance_options()
                .iter()
                .filter(|o| major_only.is_none_or(|m| o.engine_version().is_some_and(|v| in_major(v, m))))
                .map(|o| DbOption {
                    multi_az: o.multi_az_capable().unwrap_or(false),
                    storage_type: o.storage_type().map(String::from),
                }),
        );
        match out.marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    Ok(options)
}

/// Whether full version `version` (`10.11.10`) belongs to major `major` (`10.11`).
pub fn in_major(version: &str, major: &str) -> bool {
    version.strip_prefix(major).is_some_and(|rest| rest.starts_with('.'))
}

pub async fn db_offerings(aws: &Aws, version: &str, class: &str) -> Result<DbOfferings, ResourceError> {
    let mut o = DbOfferings {
        exact: orderable(aws, Some(version), Some(class)).await?,
        ..Default::default()
    };
    if o.exact.is_empty() {
        let version_offered = !orderable(aws, Some(version), None).await?.is_empty();
        o.version_offered = Some(version_offered);
        if !version_offered {
            o.engine_listed = Some(!orderable(aws, None, None).await?.is_empty());
        }
    }
    Ok(o)
}

/// One MariaDB version as DescribeDBEngineVersions lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineVersion {
    pub version: String,
    /// DBParameterGroupFamily: the family of the parameter groups this version takes.
    pub family: String,
    /// `available`, or `deprecated` (listed only with IncludeAll).
    pub status: String,
    /// ValidUpgradeTarget: the versions RDS upgrades this one to, and whether each is a
    /// major upgrade.
    pub upgrade_targets: Vec<(String, bool)>,
}

/// Every MariaDB version RDS lists in the region, deprecated ones included, every page.
/// Asked once, without retries: the check is advisory (a failed lookup is a warning, the
/// create call still decides), and an endpoint that does not serve the call (moto 5.2.5
/// answers HTTP 500) should cost one request, not the client's eight attempts.
pub async fn engine_versions(aws: &Aws) -> Result<Vec<EngineVersion>, ResourceError> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    // Bounded: RDS lists a few dozen MariaDB versions.
    for _ in 0..20 {
        let page = aws
            .clients
            .rds
            .describe_db_engine_versions()
            .engine(DB_ENGINE)
            .include_all(true)
            .max_records(100)
            .set_marker(marker.take())
            .customize()
            .config_override(
                aws_sdk_rds::config::Builder::default().retry_config(aws_config::retry::RetryConfig::disabled()),
            )
            .send()
            .await
            .map_err(err("listing the MariaDB versions RDS offers"))?;
        out.extend(page.db_engine_versions().iter().map(|v| {
            EngineVersion {
                version: v.engine_version().unwrap_or_default().to_string(),
                family: v.db_parameter_group_family().unwrap_or_default().to_string(),
                status: v.status().unwrap_or("available").to_string(),
                upgrade_targets: v
                    .valid_upgrade_target()
                    .iter()
                    .filter_map(|t| {
                        t.engine_version()
                            .map(|e| (e.to_string(), t.is_major_version_upgrade().unwrap_or(false)))
                    })
                    .collect(),
            }
        }));
        match page.marker() {
            Some(m) if !m.is_empty() => marker = Some(m.to_string()),
            _ => break,
        }
    }
    Ok(out)
}

/// The engine version the recorded DB instance runs (none when there is none).
pub async fn running_engine_version(aws: &Aws, id: &str) -> Result<Option<String>, ResourceError> {
    Ok(super::rds::describe_instance(aws, id)
        .await?
        .and_then(|db| db.engine_version().map(String::from)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_version_belongs_to_its_major_only() {
        assert!(in_major("10.11.10", "10.11"));
        assert!(!in_major("10.1.2", "10.11"));
        assert!(!in_major("10.110.1", "10.11"));
        assert!(!in_major("10.11", "10.11"));
    }
}
