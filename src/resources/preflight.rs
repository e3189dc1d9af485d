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
    }))
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
