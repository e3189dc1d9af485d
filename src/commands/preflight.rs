//! Everything about the input that a read call can check, checked before `up` creates
//! anything (and by `plan`, which reports the same problems): the AMI exists in the region
//! and is available, its architecture is one the instance type runs, the instance type is
//! offered in both zones, configured zones exist, the key pair exists, the certificate is
//! ISSUED and covers the domain, the hosted zone exists and holds the domain, the TLS
//! policy exists, and RDS offers the DB class with the MariaDB engine version (Multi-AZ and
//! gp3 when configured), and, while the fleet does not exist yet, EC2 would launch one
//! instance as the launch template describes it (a `RunInstances` dry run: an unsubscribed
//! Marketplace image, a bad root mapping). Each problem is bad input: exit 2, naming the
//! field and the fix.
//!
//! The lookups (`resources::preflight`) return plain facts; [`decide`] turns them into
//! problems and warnings and is unit-tested on scripted facts, including what an emulator
//! cannot show. A lookup the caller may not make (AccessDenied) is a warning, not a
//! refusal: the create call decides later, as it did before these checks.
//!
//! One answer is tolerated as "cannot judge": an endpoint that lists no orderable option
//! for MariaDB at all. AWS lists hundreds in every region with RDS; moto 5.2.5 answers
//! every DescribeOrderableDBInstanceOptions with an empty list (and DescribeDBEngineVersions
//! with an HTTP 500, which is why the version is checked through the orderable options
//! too). A refusal of the configured class or version is never tolerated.

use super::{CmdError, Session};
use crate::core::config::{Config, ConfigError};
use crate::core::resource::ResourceError;
use crate::resources::preflight::{self as lookup, DbOfferings, DryLaunch, EngineVersion, ImageFacts, LaunchProbe};

/// One looked-up fact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fact<T> {
    Known(T),
    /// The lookup was refused (AccessDenied): why, for the warning.
    Unchecked(String),
    /// Nothing to check (the setting is not used).
    NotAsked,
}

impl<T> Fact<T> {
    fn known(&self) -> Option<&T> {
        match self {
            Fact::Known(v) => Some(v),
            _ => None,
        }
    }
}

/// The facts `decide` needs, all from read-only calls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub region: String,
    pub zones: [String; 2],
    /// `Known(None)`: no such AMI.
    pub image: Fact<Option<ImageFacts>>,
    pub architectures: Fact<Vec<String>>,
    /// The zones (of the two) that offer the instance type.
    pub offered_in: Fact<Vec<String>>,
    /// The region's available zones (asked when the config names zones).
    pub available_zones: Fact<Vec<String>>,
    pub key_pair_exists: Fact<bool>,
    /// `Known(None)`: no such zone; else its domain and whether it is private.
    pub hosted_zone: Fact<Option<(String, bool)>>,
    pub ssl_policy_exists: Fact<bool>,
    /// `Known(Some(problem))`: the certificate is missing, not issued or does not cover
    /// the domain.
    pub certificate: Fact<Option<String>>,
    pub db: Fact<DbOfferings>,
    /// EC2's answer to a dry run of one launch (asked once the AMI is known to be available).
    pub launch: Fact<DryLaunch>,
    /// Every MariaDB version RDS lists (DescribeDBEngineVersions, deprecated ones included).
    /// Any failure of that lookup is `Unchecked` (the create call still decides).
    pub engines: Fact<Vec<EngineVersion>>,
    /// The version the recorded DB instance runs: asked when the config names another major
    /// version than the one recorded (an upgrade RDS must offer).
    pub running_version: Fact<Option<String>>,
}

/// What the facts mean: bad input (exit 2) and warnings.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub problems: Vec<ConfigError>,
    pub warnings: Vec<String>,
}

impl Decision {
    fn problem(&mut self, field: &str, problem: impl Into<String>, fix: impl Into<String>) {
        self.problems.push(ConfigError {
            field: field.into(),
            problem: problem.into(),
            fix: fix.into(),
        });
    }
    fn unchecked<T>(&mut self, what: &str, fact: &Fact<T>) {
        if let Fact::Unchecked(why) = fact {
            self.warnings
                .push(format!("{what} was not checked before creating anything: {why}"));
        }
    }
}

/// The problems and warnings the facts show for `cfg`.
pub fn decide(cfg: &Config, f: &Facts) -> Decision {
    let mut d = Decision::default();
    let region = &f.region;
    let ami = cfg.ami.as_deref().unwrap_or_default();
    match f.image.known() {
        Some(None) => d.problem(
            "ami",
            format!("no AMI {ami} exists in {region} (or it is not shared with this account)"),
            "AMI ids differ between regions: give the id of the Panintelligence image in this region (subscribe to it in the Marketplace first)",
        ),
        Some(Some(image)) if image.state != "available" => d.problem(
            "ami",
            format!("AMI {ami} is `{}`, not `available`", image.state),
            "wait until the image is available, or give another AMI",
        ),
        Some(Some(image)) => {
            // Not a problem: the launch template raises the root volume to the snapshot.
            if let Some(note) =
                crate::resources::launch_template::root_volume_note(ami, cfg.root_volume_gib, image.root_snapshot_gib)
            {
                d.warnings.push(note);
            }
            if let Some(archs) = f.architectures.known()
                && !archs.is_empty()
                && !archs.contains(&image.architecture)
            {
                d.problem(
                    "instance_type",
                    format!(
                        "{} runs {}, but AMI {ami} is built for {}",
                        cfg.instance_type,
                        archs.join("/"),
                        image.architecture
                    ),
                    format!("choose an instance type for {} (such as t3.medium for x86_64)", image.architecture),
                );
            }
        }
        None => {}
    }
    d.unchecked("the AMI", &f.image);

    if let Some(offered) = f.offered_in.known() {
        let missing: Vec<&String> = f.zones.iter().filter(|z| !offered.contains(z)).collect();
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|z| z.as_str()).collect();
            d.problem(
                "instance_type",
                format!("{} is not offered in {}", cfg.instance_type, names.join(" and ")),
                format!(
                    "choose an instance type offered in both zones ({}), or other availability_zones (`aws ec2 describe-instance-type-offerings --location-type availability-zone --region {region}` lists them)",
                    f.zones.join(", ")
                ),
            );
        }
    }
    d.unchecked("where the instance type is offered", &f.offered_in);

    if let Some(available) = f.available_zones.known() {
        for z in &cfg.availability_zones {
            if !available.contains(z) {
                d.problem(
                    "availability_zones",
                    format!("{z} is not an available zone of {region}"),
                    format!(
                        "list two of {}, or leave availability_zones empty",
                        if available.is_empty() {
                            "the region's zones".to_string()
                        } else {
                            available.join(", ")
                        }
                    ),
                );
            }
        }
    }
    d.unchecked("the availability zones", &f.available_zones);

    if f.key_pair_exists.known() == Some(&false) {
        d.problem(
            "key_pair",
            format!(
                "no key pair `{}` exists in {region}",
                cfg.key_pair.as_deref().unwrap_or_default()
            ),
            "create or import it in this region, or omit key_pair (Session Manager needs none)",
        );
    }
    d.unchecked("the key pair", &f.key_pair_exists);

    if let (Some(zone), Some(domain)) = (f.hosted_zone.known(), &cfg.domain_name) {
        let id = cfg.hosted_zone_id.as_deref().unwrap_or_default();
        match zone {
            None => d.problem(
                "hosted_zone_id",
                format!("no hosted zone {id} exists in this account"),
                "give the id Route 53 shows for the domain's zone",
            ),
            Some((name, _)) => {
                let domain = domain.trim_end_matches('.').to_ascii_lowercase();
                if domain != *name && !domain.ends_with(&format!(".{name}")) {
                    d.problem(
                        "domain_name",
                        format!("{domain} is not in hosted zone {id} ({name})"),
                        format!("use a name under {name}, or the hosted zone of {domain}"),
                    );
                }
            }
        }
    }
    d.unchecked("the hosted zone", &f.hosted_zone);

    if f.ssl_policy_exists.known() == Some(&false) {
        d.problem(
            "tls_policy",
            format!(
                "Elastic Load Balancing has no TLS policy `{}` in {region}",
                cfg.tls_policy
            ),
            "use a policy `aws elbv2 describe-ssl-policies` lists, such as ELBSecurityPolicy-TLS13-1-2-2021-06",
        );
    }
    d.unchecked("the TLS policy", &f.ssl_policy_exists);

    if let Some(Some(problem)) = f.certificate.known() {
        d.problem(
            "certificate_arn",
            problem.clone(),
            "give the ARN of an ISSUED ACM certificate in the deployment's region that covers domain_name",
        );
    }
    d.unchecked("the certificate", &f.certificate);

    if let Some(db) = f.db.known() {
        decide_db(cfg, region, db, &mut d);
    }
    d.unchecked("the DB instance class and engine version", &f.db);
    decide_engine(cfg, f, &mut d);

    // The dry run is the catch-all after the specific checks: what they already named
    // (a missing key pair, an instance type of the wrong architecture) is not said twice.
    match &f.launch {
        Fact::Known(DryLaunch::Refused { field, code, message }) if d.problems.is_empty() => {
            let fix = match *field {
                "ami" => format!(
                    "subscribe this account to the Panintelligence image in the AWS Marketplace (or give an AMI it may launch in {region}), then run again"
                ),
                "root_volume_gib" => "raise root_volume_gib to at least the image's root snapshot size".to_string(),
                "key_pair" => "create or import the key pair in this region, or omit key_pair".to_string(),
                _ => format!(
                    "choose an instance type this image and zone accept ({}), or another AMI",
                    f.zones.join(", ")
                ),
            };
            d.problem(
                field,
                format!("EC2 would refuse to launch the instances ({code}): {message}"),
                fix,
            );
        }
        Fact::Known(DryLaunch::CannotJudge(why)) => d.warnings.push(format!(
            "EC2's launch dry run could not judge the launch ({why}): a launch EC2 refuses will show as a failed scaling activity instead"
        )),
        _ => {}
    }
    d.unchecked("the launch (RunInstances dry run)", &f.launch);
    d
}

fn decide_db(cfg: &Config, region: &str, db: &DbOfferings, d: &mut Decision) {
    let (class, version) = (&cfg.database.instance_class, &cfg.database.engine_version);
    let fix_class = format!(
        "choose a class `aws rds describe-orderable-db-instance-options --engine mariadb --engine-version {version} --region {region}` lists"
    );
    if !db.exact.is_empty() {
        if cfg.database.multi_az && !db.exact.iter().any(|o| o.multi_az) {
            d.problem(
                "database.instance_class",
                format!("{class} cannot run MariaDB {version} Multi-AZ in {region}"),
                format!("{fix_class} with MultiAZCapable, or set database.multi_az = false"),
            );
        }
        if !db
            .exact
            .iter()
            .any(|o| o.storage_type.as_deref().is_none_or(|s| s == "gp3"))
        {
            d.problem(
                "database.instance_class",
                format!("{class} with MariaDB {version} offers no gp3 storage in {region}"),
                fix_class,
            );
        }
        return;
    }
    match (db.version_offered, db.engine_listed) {
        (Some(true), _) => d.problem(
            "database.instance_class",
            format!("RDS does not offer {class} for MariaDB {version} in {region}"),
            fix_class,
        ),
        (Some(false), Some(true)) => d.problem(
            "database.engine_version",
            format!("RDS does not offer MariaDB {version} in {region}"),
            format!(
                "pin a version `aws rds describe-db-engine-versions --engine mariadb --region {region}` lists (the parameter group family follows it)"
            ),
        ),
        _ => d.warnings.push(format!(
            "the endpoint lists no orderable MariaDB options at all (an emulator?): the DB class {class} and engine version {version} were not checked before creating anything"
        )),
    }
}

/// A version's numbers, for ordering (`10.11.10` after `10.11.9`).
fn version_key(v: &str) -> Vec<u64> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

/// The major of a version (`10.11.10` -> `10.11`).
fn major_of(v: &str) -> String {
    v.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// `database.engine_version` against what RDS lists (DescribeDBEngineVersions): a full version
/// must be listed and not deprecated; a major (`10.11`) stands for its newest available minor;
/// the parameter group family RDS names for it (DBParameterGroupFamily) must be the one the
/// deployment creates; and a major upgrade of the running instance must be one RDS offers
/// from its version (ValidUpgradeTarget). Each refusal names the field and lists the versions
/// RDS offers.
fn decide_engine(cfg: &Config, f: &Facts, d: &mut Decision) {
    let wanted = &cfg.database.engine_version;
    let region = &f.region;
    let offered = match &f.engines {
        Fact::Known(v) if !v.is_empty() => v,
        Fact::Known(_) => {
            d.warnings.push(format!(
                "RDS lists no MariaDB version in {region} (an emulator?): database.engine_version {wanted} was not checked against DescribeDBEngineVersions"
            ));
            return;
        }
        Fact::Unchecked(why) => {
            d.warnings.push(format!(
                "database.engine_version {wanted} was not checked against the versions RDS offers: the endpoint did not answer DescribeDBEngineVersions (an emulator?); RDS checks the version when it creates the instance ({why})"
            ));
            return;
        }
        Fact::NotAsked => return,
    };
    let mut available: Vec<&EngineVersion> = offered.iter().filter(|v| v.status == "available").collect();
    available.sort_by_key(|v| version_key(&v.version));
    let listed: Vec<&str> = available.iter().map(|v| v.version.as_str()).collect();
    let fix = format!(
        "pin a version RDS offers in {region}: {} (a major such as {} stands for its newest minor)",
        listed.join(", "),
        listed.last().map(|v| major_of(v)).unwrap_or_else(|| "10.11".into())
    );
    let is_major_pin = wanted.split('.').count() == 2;
    let matching = |v: &&EngineVersion| {
        if is_major_pin {
            lookup::in_major(&v.version, wanted)
        } else {
            v.version == *wanted
        }
    };
    if !offered.iter().any(|v| matching(&v)) {
        d.problem(
            "database.engine_version",
            format!("RDS does not offer MariaDB {wanted} in {region}"),
            fix,
        );
        return;
    }
    let Some(newest) = available.iter().rev().find(|v| matching(v)) else {
        d.problem(
            "database.engine_version",
            format!("MariaDB {wanted} is deprecated in RDS ({region}): no new instance or upgrade can use it"),
            fix,
        );
        return;
    };
    let family = cfg.db_family();
    if !newest.family.is_empty() && newest.family != family {
        d.problem(
            "database.engine_version",
            format!(
                "RDS takes parameter groups of family {} for MariaDB {}, not {family}",
                newest.family, newest.version
            ),
            format!(
                "pin a version whose family is {family}, or report this: pi-deploy derives the family from the version"
            ),
        );
    }
    let Fact::Known(Some(running)) = &f.running_version else {
        return;
    };
    if version_key(&major_of(running)) >= version_key(&major_of(&newest.version)) {
        // The same major (a minor upgrade) or a downgrade, which the change itself refuses.
        return;
    }
    let targets: Vec<&str> = offered
        .iter()
        .find(|v| v.version == *running)
        .map(|v| {
            v.upgrade_targets
                .iter()
                .filter(|(_, major)| *major)
                .map(|(t, _)| t.as_str())
                .collect()
        })
        .unwrap_or_default();
    if !targets.iter().any(|t| {
        matching(&&EngineVersion {
            version: t.to_string(),
            family: String::new(),
            status: String::new(),
            upgrade_targets: Vec::new(),
        })
    }) {
        d.problem(
            "database.engine_version",
            format!("RDS offers no major upgrade from MariaDB {running} (the running instance) to {wanted}"),
            if targets.is_empty() {
                format!(
                    "RDS lists no major upgrade from {running}: upgrade its minor version first, or keep {}",
                    major_of(running)
                )
            } else {
                format!(
                    "pin one of the versions RDS upgrades {running} to: {}",
                    targets.join(", ")
                )
            },
        );
    }
}

/// A lookup's answer as a fact: AccessDenied is "unchecked", other errors end the run.
fn fact<T>(r: Result<T, ResourceError>) -> Result<Fact<T>, ResourceError> {
    match r {
        Ok(v) => Ok(Fact::Known(v)),
        Err(e) if crate::aws::error::is_denied(&e) => Ok(Fact::Unchecked(e.message)),
        Err(e) => Err(e),
    }
}

async fn when<T, Fut>(asked: bool, lookup: impl FnOnce() -> Fut) -> Result<Fact<T>, ResourceError>
where
    Fut: std::future::Future<Output = Result<T, ResourceError>>,
{
    if asked {
        fact(lookup().await)
    } else {
        Ok(Fact::NotAsked)
    }
}

/// Look everything up (concurrently; read calls only).
pub async fn gather(session: &Session, cfg: &Config, zones: &[String; 2]) -> Result<Facts, ResourceError> {
    let aws = session.aws.as_ref();
    let ami = cfg.ami.as_deref().unwrap_or_default();
    let https = cfg.certificate_arn.is_some();
    // The dry run needs the image's root device; it runs right after that lookup, beside
    // the others.
    let image_then_launch = async {
        let image = when(!ami.is_empty(), || lookup::image(aws, ami)).await?;
        let launch = match image.known() {
            // Asked while the fleet does not exist yet: a ready group has launched with these
            // settings already (and `upgrade` asks for its new image itself).
            Some(Some(facts)) if facts.state == "available" && !fleet_exists(&session.state) => {
                let probe = LaunchProbe {
                    ami: ami.to_string(),
                    instance_type: cfg.instance_type.clone(),
                    key_name: cfg.key_pair.clone(),
                    root: facts.root_device_name.clone().map(|name| {
                        (
                            name,
                            crate::resources::launch_template::root_volume_gib(
                                cfg.root_volume_gib,
                                facts.root_snapshot_gib,
                            ),
                        )
                    }),
                    subnet: app_subnet(&session.state),
                    zone: zones[0].clone(),
                };
                fact(lookup::launch_dry_run(aws, &probe).await)?
            }
            _ => Fact::NotAsked,
        };
        Ok::<_, ResourceError>((image, launch))
    };
    let (
        (image, launch),
        architectures,
        offered_in,
        available_zones,
        key_pair_exists,
        hosted_zone,
        ssl_policy_exists,
        certificate,
        db,
        engines,
        running_version,
    ) = futures::try_join!(
        image_then_launch,
        when(true, || lookup::instance_architectures(aws, &cfg.instance_type)),
        when(true, || lookup::zones_offering(aws, &cfg.instance_type, zones)),
        when(!cfg.availability_zones.is_empty(), || lookup::available_zones(aws)),
        when(cfg.key_pair.is_some(), || lookup::key_pair_exists(
            aws,
            cfg.key_pair.as_deref().unwrap_or_default()
        )),
        when(cfg.hosted_zone_id.is_some() && cfg.domain_name.is_some(), || {
            lookup::hosted_zone(aws, cfg.hosted_zone_id.as_deref().unwrap_or_default())
        }),
        when(https, || lookup::ssl_policy_exists(aws, &cfg.tls_policy)),
        when(https, || crate::resources::listener::check_certificate(
            aws,
            cfg.certificate_arn.as_deref().unwrap_or_default(),
            cfg.domain_name.as_deref()
        )),
        when(true, || lookup::db_offerings(
            aws,
            &cfg.database.engine_version,
            &cfg.database.instance_class
        )),
        async {
            Ok::<_, ResourceError>(match lookup::engine_versions(aws).await {
                Ok(v) => Fact::Known(v),
                Err(e) => Fact::Unchecked(e.message),
            })
        },
        when(
            major_change(&session.state, &cfg.database.engine_version).is_some(),
            || { lookup::running_engine_version(aws, major_change(&session.state, "").unwrap_or_default()) }
        ),
    )?;
    Ok(Facts {
        region: aws.env.region.clone(),
        zones: zones.clone(),
        image,
        architectures,
        offered_in,
        available_zones,
        key_pair_exists,
        hosted_zone,
        ssl_policy_exists,
        certificate,
        db,
        launch,
        engines,
        running_version,
    })
}

/// The recorded DB instance's id when the config names another major version than the one
/// recorded (`wanted` empty: only whether a DB instance is recorded with a version).
fn major_change<'a>(state: &'a crate::core::state::State, wanted: &str) -> Option<&'a str> {
    let db = state.resources.get("db")?;
    let recorded = db.settings.get("engine_version")?;
    (wanted.is_empty() || major_of(recorded) != major_of(wanted))
        .then(|| db.outputs.get("id"))
        .flatten()
}

/// Whether the Auto Scaling group is recorded ready.
fn fleet_exists(state: &crate::core::state::State) -> bool {
    state
        .resources
        .get("asg")
        .is_some_and(|r| r.status == crate::core::state::Status::Ready)
}

/// A recorded app subnet (the instances' own), for the dry run once it exists.
pub fn app_subnet(state: &crate::core::state::State) -> Option<String> {
    state
        .resources
        .iter()
        .filter(|(key, _)| key.starts_with("subnet-app"))
        .find_map(|(_, r)| r.outputs.get("id").map(String::from))
}

/// Gather and decide: bad input is `CmdError::Input` (exit 2); each warning goes to `warn`.
pub async fn check(
    session: &Session,
    cfg: &Config,
    zones: &[String; 2],
    warn: impl Fn(String),
) -> Result<(), CmdError> {
    let facts = match gather(session, cfg, zones).await {
        Ok(f) => f,
        Err(e) => {
            session.aws.clients.dump_call_counts();
            return Err(e.into());
        }
    };
    let decision = decide(cfg, &facts);
    for message in decision.warnings {
        warn(message);
    }
    if decision.problems.is_empty() {
        Ok(())
    } else {
        // The run ends here: its calls (reads only) are counted as at the end of any run.
        session.aws.clients.dump_call_counts();
        Err(CmdError::Input(decision.problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::preflight::DbOption;

    fn cfg() -> Config {
        Config {
            ami: Some("ami-0123456789abcdef0".into()),
            ..Config::default()
        }
    }

    fn gp3(multi_az: bool) -> DbOption {
        DbOption {
            multi_az,
            storage_type: Some("gp3".into()),
        }
    }

    /// What AWS answers for the default config in eu-west-1.
    fn good() -> Facts {
        Facts {
            region: "eu-west-1".into(),
            zones: ["eu-west-1a".into(), "eu-west-1b".into()],
            image: Fact::Known(Some(ImageFacts {
                state: "available".into(),
                architecture: "x86_64".into(),
                root_snapshot_gib: Some(8),
                root_device_name: Some("/dev/xvda".into()),
            })),
            architectures: Fact::Known(vec!["x86_64".into()]),
            offered_in: Fact::Known(vec!["eu-west-1a".into(), "eu-west-1b".into()]),
            available_zones: Fact::NotAsked,
            key_pair_exists: Fact::NotAsked,
            hosted_zone: Fact::NotAsked,
            ssl_policy_exists: Fact::NotAsked,
            certificate: Fact::NotAsked,
            db: Fact::Known(DbOfferings {
                exact: vec![
                    gp3(true),
                    DbOption {
                        multi_az: true,
                        storage_type: Some("io1".into()),
                    },
                ],
                ..Default::default()
            }),
            launch: Fact::Known(DryLaunch::WouldLaunch),
            engines: Fact::NotAsked,
            running_version: Fact::NotAsked,
        }
    }

    fn refused(field: &'static str, code: &str) -> Fact<DryLaunch> {
        Fact::Known(DryLaunch::Refused {
            field,
            code: code.into(),
            message: "as AWS words it".into(),
        })
    }

    fn fields(d: &Decision) -> Vec<&str> {
        d.problems.iter().map(|p| p.field.as_str()).collect()
    }

    #[test]
    fn what_aws_offers_passes() {
        assert_eq!(decide(&cfg(), &good()), Decision::default());
    }

    /// Each row: a change to the facts (and config) and the field the problem must name.
    #[test]
    fn each_refusal_names_its_field_and_a_fix() {
        type Case = (&'static str, fn(&mut Config, &mut Facts));
        let cases: Vec<Case> = vec![
            ("ami", |_, f| f.image = Fact::Known(None)),
            ("ami", |_, f| {
                f.image = Fact::Known(Some(ImageFacts {
                    state: "deregistered".into(),
                    architecture: "x86_64".into(),
                    root_snapshot_gib: Some(8),
                    root_device_name: Some("/dev/xvda".into()),
                }))
            }),
            ("instance_type", |c, f| {
                c.instance_type = "t4g.medium".into();
                f.architectures = Fact::Known(vec!["arm64".into()]);
            }),
            ("instance_type", |_, f| {
                f.offered_in = Fact::Known(vec!["eu-west-1a".into()])
            }),
            ("instance_type", |_, f| f.offered_in = Fact::Known(vec![])),
            ("availability_zones", |c, f| {
                c.availability_zones = vec!["eu-west-1a".into(), "eu-west-1z".into()];
                f.available_zones = Fact::Known(vec!["eu-west-1a".into(), "eu-west-1b".into()]);
            }),
            ("key_pair", |c, f| {
                c.key_pair = Some("mine".into());
                f.key_pair_exists = Fact::Known(false);
            }),
            ("hosted_zone_id", |c, f| {
                c.hosted_zone_id = Some("Z1".into());
                c.domain_name = Some("dash.example.com".into());
                f.hosted_zone = Fact::Known(None);
            }),
            ("domain_name", |c, f| {
                c.hosted_zone_id = Some("Z1".into());
                c.domain_name = Some("dash.example.org".into());
                f.hosted_zone = Fact::Known(Some(("example.com".into(), false)));
            }),
            ("domain_name", |c, f| {
                // A suffix that is not a label boundary is not inside the zone.
                c.hosted_zone_id = Some("Z1".into());
                c.domain_name = Some("dashexample.com".into());
                f.hosted_zone = Fact::Known(Some(("example.com".into(), false)));
            }),
            ("tls_policy", |_, f| f.ssl_policy_exists = Fact::Known(false)),
            ("certificate_arn", |_, f| {
                f.certificate = Fact::Known(Some("the certificate is PENDING_VALIDATION".into()))
            }),
            ("database.instance_class", |_, f| {
                f.db = Fact::Known(DbOfferings {
                    exact: vec![],
                    version_offered: Some(true),
                    engine_listed: None,
                })
            }),
            ("database.engine_version", |_, f| {
                f.db = Fact::Known(DbOfferings {
                    exact: vec![],
                    version_offered: Some(false),
                    engine_listed: Some(true),
                })
            }),
            ("database.instance_class", |_, f| {
                f.db = Fact::Known(DbOfferings {
                    exact: vec![gp3(false)],
                    ..Default::default()
                })
            }),
            ("database.instance_class", |_, f| {
                f.db = Fact::Known(DbOfferings {
                    exact: vec![DbOption {
                        multi_az: true,
                        storage_type: Some("standard".into()),
                    }],
                    ..Default::default()
                })
            }),
            // What only a launch shows: EC2's dry run.
            ("ami", |_, f| f.launch = refused("ami", "OptInRequired")),
            ("root_volume_gib", |_, f| {
                f.launch = refused("root_volume_gib", "InvalidBlockDeviceMapping")
            }),
            ("instance_type", |_, f| {
                f.launch = refused("instance_type", "Unsupported")
            }),
        ];
        for (field, change) in cases {
            let (mut c, mut f) = (cfg(), good());
            change(&mut c, &mut f);
            let d = decide(&c, &f);
            assert_eq!(fields(&d), vec![field], "{d:?}");
            assert!(d.problems.iter().all(|p| !p.fix.is_empty()), "{d:?}");
        }
    }

    #[test]
    fn a_single_az_class_is_fine_without_multi_az_and_a_domain_may_be_the_zone_apex() {
        let mut c = cfg();
        c.database.multi_az = false;
        c.hosted_zone_id = Some("Z1".into());
        c.domain_name = Some("Example.com.".into());
        let mut f = good();
        f.db = Fact::Known(DbOfferings {
            exact: vec![gp3(false)],
            ..Default::default()
        });
        f.hosted_zone = Fact::Known(Some(("example.com".into(), false)));
        assert_eq!(decide(&c, &f), Decision::default());
    }

    /// moto 5.2.5 lists no orderable option for any engine: that cannot judge the values,
    /// so it warns; an endpoint that lists options but not ours refuses (above).
    #[test]
    fn an_endpoint_that_lists_nothing_for_mariadb_only_warns() {
        let mut f = good();
        f.db = Fact::Known(DbOfferings {
            exact: vec![],
            version_offered: Some(false),
            engine_listed: Some(false),
        });
        let d = decide(&cfg(), &f);
        assert!(d.problems.is_empty(), "{d:?}");
        assert_eq!(d.warnings.len(), 1);
        assert!(d.warnings[0].contains("were not checked"), "{d:?}");
    }

    /// The dry run is the catch-all: a refusal an earlier check already named (here the
    /// architecture) is not said twice, and an answer that says nothing only warns.
    #[test]
    fn the_launch_dry_run_adds_only_what_the_other_checks_did_not_say() {
        let mut c = cfg();
        c.instance_type = "t4g.medium".into();
        let mut f = good();
        f.architectures = Fact::Known(vec!["arm64".into()]);
        f.launch = refused("instance_type", "InvalidParameterValue");
        assert_eq!(fields(&decide(&c, &f)), vec!["instance_type"]);

        let mut f = good();
        f.launch = refused("ami", "OptInRequired");
        let d = decide(&cfg(), &f);
        assert!(d.problems[0].problem.contains("OptInRequired"), "{d:?}");
        assert!(d.problems[0].fix.contains("Marketplace"), "{d:?}");

        let mut f = good();
        f.launch = Fact::Known(DryLaunch::CannotJudge("no default VPC".into()));
        let d = decide(&cfg(), &f);
        assert!(d.problems.is_empty(), "{d:?}");
        assert!(d.warnings[0].contains("no default VPC"), "{d:?}");

        let mut f = good();
        f.launch = Fact::Unchecked("UnauthorizedOperation".into());
        let d = decide(&cfg(), &f);
        assert!(d.problems.is_empty() && d.warnings[0].contains("dry run"), "{d:?}");
    }

    /// AWS refuses a launch whose root volume is smaller than the image's root snapshot: the
    /// launch template raises it, and the checks say so (a warning, not a refusal).
    #[test]
    fn a_root_snapshot_larger_than_root_volume_gib_is_said() {
        let mut f = good();
        if let Fact::Known(Some(image)) = &mut f.image {
            image.root_snapshot_gib = Some(30);
        }
        let d = decide(&cfg(), &f);
        assert!(d.problems.is_empty(), "{d:?}");
        let [w] = d.warnings.as_slice() else { panic!("{d:?}") };
        assert!(w.contains("root_volume_gib = 15") && w.contains("30 GiB"), "{w}");
        let mut c = cfg();
        c.root_volume_gib = 30;
        assert_eq!(decide(&c, &f), Decision::default());
    }

    #[test]
    fn a_refused_lookup_warns_and_decides_nothing() {
        let mut f = good();
        f.image = Fact::Unchecked("AccessDenied".into());
        f.db = Fact::Unchecked("AccessDenied".into());
        let d = decide(&cfg(), &f);
        assert!(d.problems.is_empty(), "{d:?}");
        assert_eq!(d.warnings.len(), 2, "{d:?}");
    }

    /// What DescribeDBEngineVersions answers in a region (scripted: moto 5.2.5 answers the call
    /// with HTTP 500, it lists no version): 10.6 deprecated, 10.11 and 11.4 available, each
    /// 10.11 minor upgradable to 11.4.5 only from 10.11.10.
    fn engines() -> Vec<EngineVersion> {
        let v = |version: &str, family: &str, status: &str, targets: &[(&str, bool)]| EngineVersion {
            version: version.into(),
            family: family.into(),
            status: status.into(),
            upgrade_targets: targets.iter().map(|(t, m)| (t.to_string(), *m)).collect(),
        };
        vec![
            v("10.6.19", "mariadb10.6", "deprecated", &[("10.11.10", true)]),
            v("10.11.9", "mariadb10.11", "available", &[("10.11.10", false)]),
            v("10.11.10", "mariadb10.11", "available", &[("11.4.5", true)]),
            v("11.4.5", "mariadb11.4", "available", &[]),
        ]
    }

    fn engine_decision(version: &str, running: Option<&str>) -> Decision {
        let mut c = cfg();
        c.database.engine_version = version.into();
        let mut f = good();
        f.engines = Fact::Known(engines());
        f.running_version = match running {
            Some(r) => Fact::Known(Some(r.into())),
            None => Fact::NotAsked,
        };
        decide(&c, &f)
    }

    #[test]
    fn the_engine_version_must_be_one_rds_offers() {
        // Offered: a full version, and a major standing for its newest minor.
        for ok in ["10.11.10", "10.11.9", "10.11", "11.4"] {
            let d = engine_decision(ok, None);
            assert!(d.problems.is_empty(), "{ok}: {d:?}");
        }
        // Unknown and deprecated: exit 2 naming the field, listing what RDS offers.
        for (bad, says) in [
            ("10.11.99", "does not offer MariaDB 10.11.99"),
            ("10.5", "does not offer MariaDB 10.5"),
            ("10.6", "deprecated"),
            ("10.6.19", "deprecated"),
        ] {
            let d = engine_decision(bad, None);
            assert_eq!(d.problems.len(), 1, "{bad}: {d:?}");
            let p = &d.problems[0];
            assert_eq!(p.field, "database.engine_version");
            assert!(p.problem.contains(says), "{bad}: {}", p.problem);
            assert!(p.fix.contains("10.11.9, 10.11.10, 11.4.5"), "{bad}: {}", p.fix);
            assert!(
                !p.fix.contains("10.6.19"),
                "a deprecated version is not offered: {}",
                p.fix
            );
        }
    }

    #[test]
    fn a_major_rds_adds_later_is_accepted_without_a_new_pi_deploy() {
        // Offline, a major newer than this release is accepted with its family named; then
        // RDS's answer decides.
        let mut c = cfg();
        c.database.engine_version = "12.1".into();
        c.database.parameter_group_family = Some("mariadb12.1".into());
        assert!(c.validate(crate::core::config::Purpose::Up).is_empty());
        let mut f = good();
        let mut list = engines();
        list[2].upgrade_targets.push(("12.1.2".into(), true));
        list.push(EngineVersion {
            version: "12.1.2".into(),
            family: "mariadb12.1".into(),
            status: "available".into(),
            upgrade_targets: Vec::new(),
        });
        f.engines = Fact::Known(list);
        assert!(decide(&c, &f).problems.is_empty());
        f.running_version = Fact::Known(Some("10.11.10".into()));
        assert!(decide(&c, &f).problems.is_empty(), "a major upgrade RDS lists");
        // Not offered (yet) in this region: refused, naming the field.
        f.engines = Fact::Known(engines());
        f.running_version = Fact::NotAsked;
        let d = decide(&c, &f);
        assert_eq!(d.problems.len(), 1, "{d:?}");
        assert_eq!(d.problems[0].field, "database.engine_version");
    }

    #[test]
    fn a_major_upgrade_must_be_one_rds_offers_from_the_running_version() {
        // 10.11.10 -> 11.4 is a ValidUpgradeTarget; from 10.11.9 RDS offers no major upgrade.
        assert!(engine_decision("11.4", Some("10.11.10")).problems.is_empty());
        assert!(engine_decision("11.4.5", Some("10.11.10")).problems.is_empty());
        let d = engine_decision("11.4", Some("10.11.9"));
        assert_eq!(d.problems.len(), 1, "{d:?}");
        assert_eq!(d.problems[0].field, "database.engine_version");
        assert!(
            d.problems[0].problem.contains("no major upgrade from MariaDB 10.11.9"),
            "{d:?}"
        );
        assert!(d.problems[0].fix.contains("minor version first"), "{d:?}");
        // A minor upgrade is not judged here (the instance's own diff is).
        assert!(engine_decision("10.11.10", Some("10.11.9")).problems.is_empty());
    }

    #[test]
    fn a_family_rds_names_otherwise_is_refused_and_an_unlisted_answer_only_warns() {
        let mut c = cfg();
        c.database.engine_version = "11.4".into();
        let mut f = good();
        let mut list = engines();
        list[3].family = "mariadb11".into();
        f.engines = Fact::Known(list);
        let d = decide(&c, &f);
        assert_eq!(d.problems.len(), 1, "{d:?}");
        assert!(d.problems[0].problem.contains("family mariadb11"), "{d:?}");
        // An endpoint that cannot list versions (moto: HTTP 500; or AccessDenied): a warning.
        f.engines = Fact::Unchecked("HTTP 500".into());
        let d = decide(&c, &f);
        assert!(d.problems.is_empty(), "{d:?}");
        assert!(
            d.warnings
                .iter()
                .any(|w| w.contains("database.engine_version 11.4 was not checked")),
            "{d:?}"
        );
        f.engines = Fact::Known(Vec::new());
        assert!(decide(&c, &f).problems.is_empty());
    }
}
