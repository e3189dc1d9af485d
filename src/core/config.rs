//! The deployment configuration: every input of the blueprint with its default, and the
//! validation that runs before the first AWS call.
//!
//! Sources, lowest precedence first: built-in defaults, the TOML file (`--config`, or
//! `pi-deploy.toml` when present), then command-line flags. The region may also come from
//! the standard AWS environment; that is resolved by the caller.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use super::names;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Deployment name: every AWS name and tag derives from it.
    pub deployment: String,
    /// AWS region; empty means the standard AWS environment (AWS_REGION, profile).
    pub region: Option<String>,
    /// Two availability zones; empty means the first two that the region reports available.
    pub availability_zones: Vec<String>,
    /// AMI id of the Panintelligence Marketplace image (required for `up`).
    pub ami: Option<String>,
    pub instance_type: String,
    pub root_volume_gib: i32,
    /// The port the image's dashboard listens on (8224 for the Panintelligence image): the
    /// target group's port, the instances' security group and network ACL rules. A change
    /// replaces the target group (create before destroy) and moves the listeners and the Auto
    /// Scaling group to it; the dashboard answers again once the instances serve that port.
    pub dashboard_port: i32,
    /// ACM certificate ARN; without it the ALB serves HTTP on 80 only.
    pub certificate_arn: Option<String>,
    pub tls_policy: String,
    /// Route 53 hosted zone id and domain for an alias record to the ALB.
    pub hosted_zone_id: Option<String>,
    pub domain_name: Option<String>,
    /// EC2 key pair (optional: Session Manager is the default way in).
    pub key_pair: Option<String>,
    pub licence: LicenceConfig,
    pub network: NetworkConfig,
    pub database: DatabaseConfig,
    pub storage: StorageConfig,
    pub scaling: ScalingConfig,
    pub health_check: HealthCheckConfig,
    pub lambda: LambdaConfig,
    pub state: StateConfig,
    pub logging: LoggingConfig,
}

/// Where the state lives (`--state` and `--state-dir` override it).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// `s3://BUCKET/PREFIX` or a local directory; empty means the local directory `state`.
    pub url: Option<String>,
    /// Region of the state bucket; empty means the deployment's region.
    pub region: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LicenceConfig {
    /// Name of an environment variable holding the licence key.
    pub env: Option<String>,
    /// Path of a file holding the licence key.
    pub file: Option<PathBuf>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    pub vpc_cidr: String,
    pub public_subnet_cidrs: Vec<String>,
    pub app_subnet_cidrs: Vec<String>,
    pub db_subnet_cidrs: Vec<String>,
    /// One NAT gateway per AZ (HA) instead of one in public-a.
    pub nat_per_az: bool,
    /// Interface endpoints for Secrets Manager, SSM, SSM messages and EC2 messages in both app
    /// subnets (the blueprint's default). Off, the instances reach those APIs through the NAT
    /// instead: about $58 a month less (8 endpoint-AZs), and the traffic leaves the VPC.
    pub interface_endpoints: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    pub instance_class: String,
    pub allocated_storage_gib: i32,
    pub multi_az: bool,
    /// Explicit MariaDB engine version; its major picks the parameter group family.
    pub engine_version: String,
    /// Optional explicit family; must match the engine version when given.
    pub parameter_group_family: Option<String>,
    pub master_username: String,
    pub backup_retention_days: i32,
    pub deletion_protection: bool,
    pub rotation_days: i64,
    /// Day 2: apply a changed class, storage, version or Multi-AZ at once (true), or in the
    /// instance's next maintenance window (false).
    pub apply_immediately: bool,
    /// Refuse connections without TLS (`require_secure_transport`). Off by default until
    /// the dashboard's database connection is known to use TLS (README).
    pub require_tls: bool,
    /// Export the MariaDB error log to CloudWatch Logs (retention: `lambda.log_retention_days`).
    pub export_error_log: bool,
    /// A Multi-AZ database that `up` creates is created Single-AZ, the dashboard goes on as
    /// soon as it is available, and it is converted to Multi-AZ in place afterwards (the
    /// `db-standby` node). Off: created Multi-AZ, the dashboard waits for the standby.
    pub usable_early: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    pub bucket_versioning: bool,
    /// POSIX owner of files the side-loading Lambda writes (the dashboard user).
    pub efs_uid: i64,
    pub efs_gid: i64,
    /// A file-system policy that refuses NFS without TLS; the instances mount with
    /// amazon-efs-utils (`-o tls`).
    pub efs_require_tls: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScalingConfig {
    pub min: i32,
    pub max: i32,
    pub desired: i32,
    pub scale_out_cpu_percent: f64,
    pub scale_in_cpu_percent: f64,
    pub health_check_grace_seconds: i32,
    /// How long a new instance may stay in Pending:Wait (must outlast RDS creation).
    pub lifecycle_heartbeat_seconds: i32,
    /// How long `upgrade` waits for a new instance to become healthy before rolling back.
    pub upgrade_health_timeout_seconds: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    pub path: String,
    pub matcher: String,
    pub interval_seconds: i32,
    pub timeout_seconds: i32,
    pub healthy_threshold: i32,
    pub unhealthy_threshold: i32,
    pub deregistration_delay_seconds: i32,
    pub stickiness_seconds: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LambdaConfig {
    pub runtime: String,
    pub log_retention_days: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingConfig {
    /// The load balancer's access logs, into `alb/` of a logs bucket of the deployment.
    pub alb_access_logs: bool,
    /// Days the logs bucket keeps what it holds (the access logs and the flow logs).
    pub alb_access_log_days: i32,
    /// The VPC's flow log (all traffic, accepted and rejected), into `AWSLogs/` of the logs
    /// bucket: who talked to what, after an incident. Off: no flow log.
    pub vpc_flow_logs: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            deployment: "pi".into(),
            region: None,
            availability_zones: Vec::new(),
            ami: None,
            instance_type: "t3.medium".into(),
            root_volume_gib: 15,
            dashboard_port: super::spec::DASHBOARD_PORT,
            certificate_arn: None,
            tls_policy: "ELBSecurityPolicy-TLS13-1-2-2021-06".into(),
            hosted_zone_id: None,
            domain_name: None,
            key_pair: None,
            licence: LicenceConfig::default(),
            network: NetworkConfig::default(),
            database: DatabaseConfig::default(),
            storage: StorageConfig::default(),
            scaling: ScalingConfig::default(),
            health_check: HealthCheckConfig::default(),
            lambda: LambdaConfig::default(),
            state: StateConfig::default(),
            logging: LoggingConfig::default(),
        }
    }
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            alb_access_logs: true,
            alb_access_log_days: 90,
            vpc_flow_logs: true,
        }
    }
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            vpc_cidr: "10.0.0.0/16".into(),
            public_subnet_cidrs: vec!["10.0.2.0/24".into(), "10.0.3.0/24".into()],
            app_subnet_cidrs: vec!["10.0.0.0/24".into(), "10.0.1.0/24".into()],
            db_subnet_cidrs: vec!["10.0.4.0/24".into(), "10.0.5.0/24".into()],
            nat_per_az: false,
            interface_endpoints: true,
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            instance_class: "db.t3.micro".into(),
            allocated_storage_gib: 20,
            multi_az: true,
            engine_version: "10.11.10".into(),
            parameter_group_family: None,
            master_username: "pi_admin".into(),
            backup_retention_days: 7,
            deletion_protection: true,
            rotation_days: 30,
            apply_immediately: true,
            require_tls: false,
            export_error_log: true,
            usable_early: true,
        }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            bucket_versioning: false,
            efs_uid: 1000,
            efs_gid: 1000,
            efs_require_tls: true,
        }
    }
}

impl Default for ScalingConfig {
    fn default() -> Self {
        Self {
            min: 1,
            max: 5,
            desired: 1,
            scale_out_cpu_percent: 70.0,
            scale_in_cpu_percent: 20.0,
            health_check_grace_seconds: 300,
            // Above the RDS Multi-AZ slow figure (1800 s) with margin.
            lifecycle_heartbeat_seconds: 2400,
            // Launch + boot + health checks at their slow figures, with margin.
            upgrade_health_timeout_seconds: 900,
        }
    }
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            path: "/".into(),
            matcher: "200,302".into(),
            interval_seconds: 15,
            timeout_seconds: 5,
            healthy_threshold: 2,
            unhealthy_threshold: 5,
            deregistration_delay_seconds: 300,
            stickiness_seconds: 86400,
        }
    }
}

impl Default for LambdaConfig {
    fn default() -> Self {
        Self {
            runtime: "python3.12".into(),
            log_retention_days: 365,
        }
    }
}

/// AWS keeps the first four addresses and the last of every subnet.
const AWS_RESERVED_PER_SUBNET: i64 = 5;
/// Per app subnet: the four interface endpoints, the EFS mount target, and two for the
/// side-loading Lambda's network interfaces.
const OTHER_ENIS_PER_APP_SUBNET: i64 = 7;
/// An upgrade launches one instance beside the group's before it retires an old one.
const UPGRADE_SURGE: i64 = 1;

/// One validation failure: which field, what is wrong, and how to fix it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub field: String,
    pub problem: String,
    pub fix: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (fix: {})", self.field, self.problem, self.fix)
    }
}

/// What a command needs from the config; `up` needs an AMI, `destroy` does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    Up,
    Other,
}

/// Regions with a valid shape (`eu-west-1`, `us-gov-west-1`, `cn-north-1`).
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty())
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].chars().all(|c| c.is_ascii_digit())
}

/// Ranges no VPC can use: the first is `(range, what it is)` that `net` overlaps. AWS's
/// instance metadata service and DNS server answer at link-local addresses, and a
/// loopback, multicast or reserved block is not unicast address space.
pub fn unusable_vpc_range(net: &Ipv4Net) -> Option<(&'static str, &'static str)> {
    const RANGES: &[(&str, &str)] = &[
        ("0.0.0.0/8", "\"this network\""),
        ("127.0.0.0/8", "loopback"),
        (
            "169.254.0.0/16",
            "link-local: the instance metadata service and the Amazon DNS server",
        ),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
    ];
    RANGES.iter().copied().find(|(range, _)| {
        let range: Ipv4Net = range.parse().expect("a CIDR");
        range.contains(&net.network()) || net.contains(&range.network())
    })
}

/// A character an HTTP request target carries as it is (RFC 3986: unreserved, sub-delims,
/// `:` `@` `/` `?`, and `%` of an escape).
fn is_url_path_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/?%".contains(c)
}

/// MariaDB's reserved words (its documentation's list) of up to 16 characters, the longest
/// master user name: RDS refuses a reserved word as the master user.
const MARIADB_RESERVED: &[&str] = &[
    "ACCESSIBLE",
    "ADD",
    "ALL",
    "ALTER",
    "ANALYZE",
    "AND",
    "AS",
    "ASC",
    "ASENSITIVE",
    "BEFORE",
    "BETWEEN",
    "BIGINT",
    "BINARY",
    "BLOB",
    "BOTH",
    "BY",
    "CALL",
    "CASCADE",
    "CASE",
    "CHANGE",
    "CHAR",
    "CHARACTER",
    "CHECK",
    "COLLATE",
    "COLUMN",
    "CONDITION",
    "CONSTRAINT",
    "CONTINUE",
    "CONVERT",
    "CREATE",
    "CROSS",
    "CURRENT_DATE",
    "CURRENT_ROLE",
    "CURRENT_TIME",
    "CURRENT_USER",
    "CURSOR",
    "DATABASE",
    "DATABASES",
    "DAY_HOUR",
    "DAY_MICROSECOND",
    "DAY_MINUTE",
    "DAY_SECOND",
    "DEC",
    "DECIMAL",
    "DECLARE",
    "DEFAULT",
    "DELAYED",
    "DELETE",
    "DELETE_DOMAIN_ID",
    "DESC",
    "DESCRIBE",
    "DETERMINISTIC",
    "DISTINCT",
    "DISTINCTROW",
    "DIV",
    "DO_DOMAIN_IDS",
    "DOUBLE",
    "DROP",
    "DUAL",
    "EACH",
    "ELSE",
    "ELSEIF",
    "ENCLOSED",
    "ESCAPED",
    "EXCEPT",
    "EXISTS",
    "EXIT",
    "EXPLAIN",
    "FALSE",
    "FETCH",
    "FLOAT",
    "FLOAT4",
    "FLOAT8",
    "FOR",
    "FORCE",
    "FOREIGN",
    "FROM",
    "FULLTEXT",
    "GENERAL",
    "GRANT",
    "GROUP",
    "HAVING",
    "HIGH_PRIORITY",
    "HOUR_MICROSECOND",
    "HOUR_MINUTE",
    "HOUR_SECOND",
    "IF",
    "IGNORE",
    "IGNORE_DOMAIN_IDS",
    "IN",
    "INDEX",
    "INFILE",
    "INNER",
    "INOUT",
    "INSENSITIVE",
    "INSERT",
    "INT",
    "INT1",
    "INT2",
    "INT3",
    "INT4",
    "INT8",
    "INTEGER",
    "INTERSECT",
    "INTERVAL",
    "INTO",
    "IS",
    "ITERATE",
    "JOIN",
    "KEY",
    "KEYS",
    "KILL",
    "LEADING",
    "LEAVE",
    "LEFT",
    "LIKE",
    "LIMIT",
    "LINEAR",
    "LINES",
    "LOAD",
    "LOCALTIME",
    "LOCALTIMESTAMP",
    "LOCK",
    "LONG",
    "LONGBLOB",
    "LONGTEXT",
    "LOOP",
    "LOW_PRIORITY",
    "MATCH",
    "MAXVALUE",
    "MEDIUMBLOB",
    "MEDIUMINT",
    "MEDIUMTEXT",
    "MIDDLEINT",
    "MINUTE_SECOND",
    "MOD",
    "MODIFIES",
    "NATURAL",
    "NOT",
    "NO_WRITE_TO_BINLOG",
    "NULL",
    "NUMERIC",
    "OFFSET",
    "ON",
    "OPTIMIZE",
    "OPTION",
    "OPTIONALLY",
    "OR",
    "ORDER",
    "OUT",
    "OUTER",
    "OUTFILE",
    "OVER",
    "PAGE_CHECKSUM",
    "PARSE_VCOL_EXPR",
    "PARTITION",
    "POSITION",
    "PRECISION",
    "PRIMARY",
    "PROCEDURE",
    "PURGE",
    "RANGE",
    "READ",
    "READS",
    "READ_WRITE",
    "REAL",
    "RECURSIVE",
    "REF_SYSTEM_ID",
    "REFERENCES",
    "REGEXP",
    "RELEASE",
    "RENAME",
    "REPEAT",
    "REPLACE",
    "REQUIRE",
    "RESIGNAL",
    "RESTRICT",
    "RETURN",
    "RETURNING",
    "REVOKE",
    "RIGHT",
    "RLIKE",
    "ROW_NUMBER",
    "ROWS",
    "SCHEMA",
    "SCHEMAS",
    "SELECT",
    "SENSITIVE",
    "SEPARATOR",
    "SET",
    "SHOW",
    "SIGNAL",
    "SLOW",
    "SMALLINT",
    "SPATIAL",
    "SPECIFIC",
    "SQL",
    "SQLEXCEPTION",
    "SQLSTATE",
    "SQLWARNING",
    "SQL_BIG_RESULT",
    "SQL_SMALL_RESULT",
    "SSL",
    "STARTING",
    "STATS_PERSISTENT",
    "STRAIGHT_JOIN",
    "TABLE",
    "TERMINATED",
    "THEN",
    "TINYBLOB",
    "TINYINT",
    "TINYTEXT",
    "TO",
    "TRAILING",
    "TRIGGER",
    "TRUE",
    "UNDO",
    "UNION",
    "UNIQUE",
    "UNLOCK",
    "UNSIGNED",
    "UPDATE",
    "USAGE",
    "USE",
    "USING",
    "UTC_DATE",
    "UTC_TIME",
    "UTC_TIMESTAMP",
    "VALUES",
    "VARBINARY",
    "VARCHAR",
    "VARCHARACTER",
    "VARYING",
    "WHEN",
    "WHERE",
    "WHILE",
    "WINDOW",
    "WITH",
    "WRITE",
    "XOR",
    "YEAR_MONTH",
    "ZEROFILL",
];

pub fn is_ami_id(s: &str) -> bool {
    let Some(hex) = s.strip_prefix("ami-") else {
        return false;
    };
    (hex.len() == 8 || hex.len() == 17) && hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
}

/// `arn:<partition>:<service>:<region>:<account>:<resource>` with the given service.
pub fn is_arn_of(s: &str, service: &str) -> bool {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && matches!(parts[1], "aws" | "aws-cn" | "aws-us-gov")
        && parts[2] == service
        && is_region(parts[3])
        && parts[4].len() == 12
        && parts[4].chars().all(|c| c.is_ascii_digit())
        && !parts[5].is_empty()
}

/// The MariaDB parameter group family for an engine version (`10.11.10` -> `mariadb10.11`).
///
/// Only the shape is checked here, and that the major is not one RDS retired before this
/// tool existed (below 10.4). Whether the major is one pi-deploy knows is
/// `validate_database`'s question (`KNOWN_FAMILIES`), and which versions RDS offers now is
/// read from DescribeDBEngineVersions before anything is created
/// (`commands::preflight::decide_engine`).
pub fn mariadb_family(version: &str) -> Result<String, String> {
    let parts: Vec<&str> = version.split('.').collect();
    let numbers: Option<Vec<u32>> = parts
        .iter()
        .map(|p| p.parse::<u32>().ok().filter(|_| p.chars().all(|c| c.is_ascii_digit())))
        .collect();
    let Some(numbers) = numbers.filter(|n| (2..=3).contains(&n.len())) else {
        return Err(format!(
            "`{version}` is not a MariaDB version; use major.minor.patch such as 10.11.10, or a major such as 10.11"
        ));
    };
    const OLDEST_MAJOR: (u32, u32) = (10, 4);
    if (numbers[0], numbers[1]) < OLDEST_MAJOR {
        return Err(format!(
            "RDS no longer offers MariaDB {}.{} (nothing older than {}.{})",
            numbers[0], numbers[1], OLDEST_MAJOR.0, OLDEST_MAJOR.1
        ));
    }
    Ok(format!("mariadb{}.{}", numbers[0], numbers[1]))
}

/// The MariaDB parameter group families this pi-deploy knows RDS to have. A version of
/// another major is refused offline (a typo is caught with no AWS call), unless the config
/// names its family too (`database.parameter_group_family`): then a major RDS added after
/// this release is usable, checked against what RDS offers before anything is created.
pub const KNOWN_FAMILIES: &[&str] = &[
    "mariadb10.4",
    "mariadb10.5",
    "mariadb10.6",
    "mariadb10.11",
    "mariadb11.4",
    "mariadb11.8",
];

/// What is wrong with `port` as the dashboard's port, if anything. Unprivileged (the image
/// runs the dashboard as its own user), below Linux's ephemeral range (the app subnets' ACL
/// denies the dashboard port to everything but the public subnets, which would drop replies
/// to the instances' own connections from that port), and not NFS (2049), which the same
/// ACL keeps for the VPC.
pub fn dashboard_port_problem(port: i32) -> Option<String> {
    if !(1024..=32767).contains(&port) {
        return Some(format!(
            "{port} is outside 1024..32767 (unprivileged, below the instances' ephemeral ports)"
        ));
    }
    (port == 2049).then(|| "2049 is NFS, which the instances use for the file system".to_string())
}

fn err(errors: &mut Vec<ConfigError>, field: &str, problem: impl Into<String>, fix: impl Into<String>) {
    errors.push(ConfigError {
        field: field.into(),
        problem: problem.into(),
        fix: fix.into(),
    });
}

impl Config {
    /// Every rule, checked without any AWS call. Returns all failures, not just the first.
    pub fn validate(&self, purpose: Purpose) -> Vec<ConfigError> {
        let mut e = Vec::new();
        self.validate_identity(purpose, &mut e);
        self.validate_network(&mut e);
        self.validate_edge(&mut e);
        self.validate_database(&mut e);
        self.validate_scaling(&mut e);
        self.validate_health_check(&mut e);
        self.validate_misc(&mut e);
        self.validate_state(&mut e);
        e
    }

    fn validate_state(&self, e: &mut Vec<ConfigError>) {
        if let Some(url) = &self.state.url
            && let Err(problem) = super::state_url::StateLocation::parse(url)
        {
            err(e, "state.url", problem, super::state_url::STATE_URL_RULE);
        }
        if let Some(r) = &self.state.region
            && !is_region(r)
        {
            err(
                e,
                "state.region",
                format!("`{r}` is not an AWS region"),
                "give the state bucket's region, such as eu-west-1, or leave it out to use the deployment's",
            );
        }
    }

    fn validate_identity(&self, purpose: Purpose, e: &mut Vec<ConfigError>) {
        if let Err(problem) = names::check_deployment_name(&self.deployment) {
            err(e, "deployment", problem, names::DEPLOYMENT_NAME_RULE);
        } else {
            // One error per rule: `sg` breaks the rule of all six security group names.
            let mut reported = Vec::new();
            for names::Derived { what, name, rule } in names::derived(&self.deployment) {
                if reported.contains(&rule) {
                    continue;
                }
                if let Err(problem) = rule.check(&name) {
                    reported.push(rule);
                    err(
                        e,
                        "deployment",
                        format!("the derived {what} `{name}` {problem}"),
                        names::fix_for(rule),
                    );
                }
            }
        }
        if let Some(region) = &self.region
            && !is_region(region)
        {
            err(
                e,
                "region",
                format!("`{region}` is not an AWS region name"),
                "use a region such as eu-west-1",
            );
        }
        match (&self.ami, purpose) {
            (Some(ami), _) if !is_ami_id(ami) => err(
                e,
                "ami",
                format!("`{ami}` is not an AMI id"),
                "use `ami-` followed by 8 or 17 lowercase hex digits (the Panintelligence Marketplace image)",
            ),
            (None, Purpose::Up) => err(
                e,
                "ami",
                "no AMI id given; `up` needs the Panintelligence image",
                "pass --ami ami-... or set `ami` in the config file",
            ),
            _ => {}
        }
        let azs = &self.availability_zones;
        if !azs.is_empty() {
            if azs.len() != 2 {
                err(
                    e,
                    "availability_zones",
                    format!("{} zones given; the architecture spans exactly two", azs.len()),
                    "list two zones, or leave it empty to use the first two available",
                );
            } else if azs[0] == azs[1] {
                err(
                    e,
                    "availability_zones",
                    format!("`{}` is listed twice", azs[0]),
                    "list two different zones",
                );
            }
            for az in azs {
                let valid = az.len() > 1
                    && is_region(&az[..az.len() - 1])
                    && az.chars().last().is_some_and(|c| c.is_ascii_lowercase());
                if !valid {
                    err(
                        e,
                        "availability_zones",
                        format!("`{az}` is not a zone name"),
                        "use names such as eu-west-1a",
                    );
                } else if let Some(region) = &self.region
                    && !az.starts_with(region.as_str())
                {
                    err(
                        e,
                        "availability_zones",
                        format!("`{az}` is not in region {region}"),
                        "use zones of the deployment's region",
                    );
                }
            }
        }
    }

    fn validate_network(&self, e: &mut Vec<ConfigError>) {
        let n = &self.network;
        let vpc = match n.vpc_cidr.parse::<Ipv4Net>() {
            Ok(net) if net.network() != net.addr() => {
                err(
                    e,
                    "network.vpc_cidr",
                    format!("`{}` has host bits set", n.vpc_cidr),
                    format!("use the network address, {}", net.trunc()),
                );
                None
            }
            Ok(net) if !(16..=28).contains(&net.prefix_len()) => {
                err(
                    e,
                    "network.vpc_cidr",
                    format!("/{} is outside /16../28", net.prefix_len()),
                    "use a prefix between /16 and /28",
                );
                None
            }
            Ok(net) if let Some((range, what)) = unusable_vpc_range(&net) => {
                err(
                    e,
                    "network.vpc_cidr",
                    format!("`{net}` overlaps {range} ({what}), which no VPC can use"),
                    "use a private block (RFC 1918) such as 10.0.0.0/16, 172.16.0.0/16 or 192.168.0.0/16",
                );
                None
            }
            Ok(net) => Some(net),
            Err(_) => {
                err(
                    e,
                    "network.vpc_cidr",
                    format!("`{}` is not an IPv4 CIDR", n.vpc_cidr),
                    "use a block such as 10.0.0.0/16",
                );
                None
            }
        };
        let mut subnets: Vec<(String, Ipv4Net)> = Vec::new();
        for (field, cidrs) in [
            ("network.public_subnet_cidrs", &n.public_subnet_cidrs),
            ("network.app_subnet_cidrs", &n.app_subnet_cidrs),
            ("network.db_subnet_cidrs", &n.db_subnet_cidrs),
        ] {
            if cidrs.len() != 2 {
                err(
                    e,
                    field,
                    format!("{} blocks given; one per zone is needed", cidrs.len()),
                    "list exactly two CIDR blocks",
                );
            }
            for (i, c) in cidrs.iter().enumerate() {
                let name = format!("{field}[{i}]");
                match c.parse::<Ipv4Net>() {
                    Ok(net) if net.network() != net.addr() => err(
                        e,
                        &name,
                        format!("`{c}` has host bits set"),
                        format!("use the network address, {}", net.trunc()),
                    ),
                    Ok(net) if !(16..=28).contains(&net.prefix_len()) => err(
                        e,
                        &name,
                        format!("/{} is outside /16../28", net.prefix_len()),
                        "use a prefix between /16 and /28",
                    ),
                    Ok(net) => {
                        if let Some(vpc) = vpc
                            && !vpc.contains(&net)
                        {
                            err(
                                e,
                                &name,
                                format!("`{c}` is not inside the VPC {vpc}"),
                                "choose a block inside network.vpc_cidr",
                            );
                        }
                        if let Some((other, _)) = subnets
                            .iter()
                            .find(|(_, o)| o.contains(&net.network()) || net.contains(&o.network()))
                        {
                            err(
                                e,
                                &name,
                                format!("`{c}` overlaps {other}"),
                                "give every subnet its own block",
                            );
                        }
                        subnets.push((name, net));
                    }
                    Err(_) => err(
                        e,
                        &name,
                        format!("`{c}` is not an IPv4 CIDR"),
                        "use a block such as 10.0.2.0/24",
                    ),
                }
            }
        }
    }

    fn validate_edge(&self, e: &mut Vec<ConfigError>) {
        if let Some(arn) = &self.certificate_arn
            && !is_arn_of(arn, "acm")
        {
            err(
                e,
                "certificate_arn",
                format!("`{arn}` is not an ACM certificate ARN"),
                "use arn:aws:acm:<region>:<account>:certificate/<id>, or omit it to serve HTTP only",
            );
        }
        if !self.tls_policy.starts_with("ELBSecurityPolicy-TLS13-")
            && !self.tls_policy.starts_with("ELBSecurityPolicy-TLS-1-2")
            && !self.tls_policy.starts_with("ELBSecurityPolicy-FS-1-2")
        {
            err(
                e,
                "tls_policy",
                format!("`{}` allows TLS older than 1.2 or is unknown", self.tls_policy),
                "use a TLS 1.2+ policy such as ELBSecurityPolicy-TLS13-1-2-2021-06",
            );
        }
        match (&self.hosted_zone_id, &self.domain_name) {
            (Some(_), None) => err(
                e,
                "domain_name",
                "a hosted zone is given without a domain",
                "set domain_name, or drop hosted_zone_id",
            ),
            (None, Some(_)) => err(
                e,
                "hosted_zone_id",
                "a domain is given without a hosted zone",
                "set hosted_zone_id (Z...), or drop domain_name",
            ),
            _ => {}
        }
        if let Some(zone) = &self.hosted_zone_id {
            let id = zone.trim_start_matches("/hostedzone/");
            // Route 53 ids are up to 32 upper-case letters and digits; the `Z` that today's ids
            // start with is not part of the documented format (emulators generate others).
            if !(!id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())) {
                err(
                    e,
                    "hosted_zone_id",
                    format!("`{zone}` is not a hosted zone id"),
                    "use the id Route 53 shows, such as Z0123456789ABCDEFGHIJ",
                );
            }
        }
        if let Some(domain) = &self.domain_name {
            let ok = domain.len() <= 253
                && domain.contains('.')
                && domain.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && !l.starts_with('-')
                        && !l.ends_with('-')
                        && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !ok {
                err(
                    e,
                    "domain_name",
                    format!("`{domain}` is not a DNS name"),
                    "use a name such as dashboard.example.com",
                );
            }
        }
        if let Some(key) = &self.key_pair
            && (key.is_empty() || key.len() > 255)
        {
            err(
                e,
                "key_pair",
                "the key pair name is empty or too long",
                "use an existing EC2 key pair name, or omit it",
            );
        }
        if !(self.licence.env.is_none() || self.licence.file.is_none()) {
            err(
                e,
                "licence",
                "both `env` and `file` are set",
                "read the licence from one source only",
            );
        }
    }

    fn validate_database(&self, e: &mut Vec<ConfigError>) {
        let d = &self.database;
        match mariadb_family(&d.engine_version) {
            Err(problem) => err(
                e,
                "database.engine_version",
                problem,
                "pin an explicit MariaDB version supported by RDS",
            ),
            Ok(family) => match &d.parameter_group_family {
                Some(given) if *given != family => err(
                    e,
                    "database.parameter_group_family",
                    format!(
                        "`{given}` does not match engine version {} (family {family})",
                        d.engine_version
                    ),
                    format!("set it to {family} or remove it"),
                ),
                // Named explicitly: a major newer than this release, checked against RDS.
                Some(_) => {}
                None if !KNOWN_FAMILIES.contains(&family.as_str()) => err(
                    e,
                    "database.engine_version",
                    format!(
                        "MariaDB {} is not a major this pi-deploy knows ({})",
                        family.trim_start_matches("mariadb"),
                        KNOWN_FAMILIES
                            .iter()
                            .map(|f| f.trim_start_matches("mariadb"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    format!(
                        "pin one of those; or, if RDS offers it in your region, also set database.parameter_group_family = \"{family}\" (the version is then checked against what RDS offers before anything is created)"
                    ),
                ),
                None => {}
            },
        }
        let class_ok = d.instance_class.strip_prefix("db.").is_some_and(|rest| {
            rest.split('.').count() >= 2
                && rest.split('.').all(|part| {
                    !part.is_empty()
                        && part
                            .chars()
                            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                })
        });
        if !class_ok {
            err(
                e,
                "database.instance_class",
                format!("`{}` is not an RDS instance class", d.instance_class),
                "use db.t3.micro or db.t3.small",
            );
        }
        if !(20..=16384).contains(&d.allocated_storage_gib) {
            err(
                e,
                "database.allocated_storage_gib",
                format!("{} GiB is outside 20..16384", d.allocated_storage_gib),
                "use at least 20 GiB (gp3)",
            );
        }
        let user = &d.master_username;
        let user_ok = (1..=16).contains(&user.len())
            && user.starts_with(|c: char| c.is_ascii_alphabetic())
            && user.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !["admin", "root", "rdsadmin", "mysql"].contains(&user.to_ascii_lowercase().as_str());
        if user_ok && MARIADB_RESERVED.contains(&user.to_ascii_uppercase().as_str()) {
            err(
                e,
                "database.master_username",
                format!("`{user}` is a word MariaDB reserves, which RDS refuses as the master user"),
                "use a name such as pi_admin",
            );
        } else if !user_ok {
            err(
                e,
                "database.master_username",
                format!("`{user}` is not a valid MariaDB master user"),
                "use 1-16 letters, digits or _, starting with a letter, not a reserved name",
            );
        }
        if !(1..=35).contains(&d.backup_retention_days) {
            err(
                e,
                "database.backup_retention_days",
                format!("{} is outside 1..35", d.backup_retention_days),
                "keep automated backups for 1 to 35 days (7 by default)",
            );
        }
        if !(1..=1000).contains(&d.rotation_days) {
            err(
                e,
                "database.rotation_days",
                format!("{} is outside 1..1000", d.rotation_days),
                "rotate every 1 to 1000 days (30 by default)",
            );
        }
    }

    fn validate_scaling(&self, e: &mut Vec<ConfigError>) {
        let s = &self.scaling;
        if s.min < 0 || s.max < 1 || s.min > s.max || s.desired < s.min || s.desired > s.max {
            err(
                e,
                "scaling",
                format!("min {} / desired {} / max {} is not ordered", s.min, s.desired, s.max),
                "use 0 <= min <= desired <= max and max >= 1",
            );
        }
        if let Some(room) = self.instance_addresses()
            && i64::from(s.max) + UPGRADE_SURGE > room
        {
            err(
                e,
                "scaling.max",
                format!(
                    "{} instances (and {UPGRADE_SURGE} more while an upgrade swaps one) do not fit in the app subnets {}: they leave {room} addresses for instances",
                    s.max,
                    self.network.app_subnet_cidrs.join(" and ")
                ),
                format!(
                    "lower scaling.max to at most {}, or give network.app_subnet_cidrs larger blocks",
                    (room - UPGRADE_SURGE).max(0)
                ),
            );
        }
        for (field, v) in [
            ("scaling.scale_out_cpu_percent", s.scale_out_cpu_percent),
            ("scaling.scale_in_cpu_percent", s.scale_in_cpu_percent),
        ] {
            if !(0.0..=100.0).contains(&v) {
                err(
                    e,
                    field,
                    format!("{v} is outside 0..100"),
                    "give a CPU percentage between 0 and 100",
                );
            }
        }
        if s.scale_in_cpu_percent >= s.scale_out_cpu_percent {
            err(
                e,
                "scaling.scale_in_cpu_percent",
                format!(
                    "scale-in threshold {} is not below scale-out threshold {}",
                    s.scale_in_cpu_percent, s.scale_out_cpu_percent
                ),
                "keep scale_in_cpu_percent < scale_out_cpu_percent (20 and 70 by default)",
            );
        }
        if !(0..=7200).contains(&s.health_check_grace_seconds) {
            err(
                e,
                "scaling.health_check_grace_seconds",
                format!("{} is outside 0..7200", s.health_check_grace_seconds),
                "use 300 unless the image boots slowly",
            );
        }
        if !(30..=7200).contains(&s.lifecycle_heartbeat_seconds) {
            err(
                e,
                "scaling.lifecycle_heartbeat_seconds",
                format!("{} is outside 30..7200", s.lifecycle_heartbeat_seconds),
                "use a value above the database creation time (2400 by default)",
            );
        }
        if !(60..=7200).contains(&s.upgrade_health_timeout_seconds) {
            err(
                e,
                "scaling.upgrade_health_timeout_seconds",
                format!("{} is outside 60..7200", s.upgrade_health_timeout_seconds),
                "use 900 unless the image boots slowly",
            );
        }
    }

    fn validate_health_check(&self, e: &mut Vec<ConfigError>) {
        let h = &self.health_check;
        if !h.path.starts_with('/') || h.path.len() > 1024 {
            err(
                e,
                "health_check.path",
                format!("`{}` is not an absolute path", h.path.escape_debug()),
                "use a path such as /",
            );
        } else if let Some(c) = h.path.chars().find(|c| !is_url_path_char(*c)) {
            err(
                e,
                "health_check.path",
                format!(
                    "`{}` holds {:?}, which an HTTP request line cannot carry as it is",
                    h.path.escape_debug(),
                    c
                ),
                "percent-encode it (a space is %20), or use a path such as /",
            );
        }
        let matcher_ok = !h.matcher.is_empty()
            && h.matcher.split(',').all(|part| {
                let mut bounds = part.split('-');
                bounds.all(|b| b.parse::<u16>().is_ok_and(|c| (200..=499).contains(&c)))
            });
        if !matcher_ok {
            err(
                e,
                "health_check.matcher",
                format!("`{}` is not a list of HTTP codes", h.matcher),
                "use codes 200-499, e.g. 200,302",
            );
        }
        if !(5..=300).contains(&h.interval_seconds) {
            err(
                e,
                "health_check.interval_seconds",
                format!("{} is outside 5..300", h.interval_seconds),
                "use 15",
            );
        }
        if !(2..=120).contains(&h.timeout_seconds) || h.timeout_seconds >= h.interval_seconds {
            err(
                e,
                "health_check.timeout_seconds",
                format!("{} must be 2..120 and below the interval", h.timeout_seconds),
                "use 5",
            );
        }
        for (field, v) in [
            ("health_check.healthy_threshold", h.healthy_threshold),
            ("health_check.unhealthy_threshold", h.unhealthy_threshold),
        ] {
            if !(2..=10).contains(&v) {
                err(
                    e,
                    field,
                    format!("{v} is outside 2..10"),
                    "use 2 (healthy) and 5 (unhealthy)",
                );
            }
        }
        if !(0..=3600).contains(&h.deregistration_delay_seconds) {
            err(
                e,
                "health_check.deregistration_delay_seconds",
                format!("{} is outside 0..3600", h.deregistration_delay_seconds),
                "use 300",
            );
        }
        if !(1..=604800).contains(&h.stickiness_seconds) {
            err(
                e,
                "health_check.stickiness_seconds",
                format!("{} is outside 1..604800", h.stickiness_seconds),
                "use 86400",
            );
        }
    }

    fn validate_misc(&self, e: &mut Vec<ConfigError>) {
        let family_ok = self.instance_type.split_once('.').is_some_and(|(f, s)| {
            [f, s].iter().all(|part| {
                !part.is_empty()
                    && part
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            })
        });
        if !family_ok {
            err(
                e,
                "instance_type",
                format!("`{}` is not an EC2 instance type", self.instance_type),
                "use t3.medium or t3a.medium",
            );
        }
        if let Some(problem) = dashboard_port_problem(self.dashboard_port) {
            err(
                e,
                "dashboard_port",
                problem,
                "use the port your image's dashboard listens on: 8224 for the Panintelligence image",
            );
        }
        if !(8..=16384).contains(&self.root_volume_gib) {
            err(
                e,
                "root_volume_gib",
                format!("{} GiB is outside 8..16384", self.root_volume_gib),
                "use 15 GiB or more",
            );
        }
        if !["python3.12", "python3.13"].contains(&self.lambda.runtime.as_str()) {
            err(
                e,
                "lambda.runtime",
                format!("`{}` is not a maintained runtime", self.lambda.runtime),
                "use python3.12 or python3.13",
            );
        }
        const RETENTION: &[i32] = &[
            1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
        ];
        if !(1..=3650).contains(&self.logging.alb_access_log_days) {
            err(
                e,
                "logging.alb_access_log_days",
                format!("{} is outside 1..3650", self.logging.alb_access_log_days),
                "use a number of days such as 90",
            );
        }
        if !RETENTION.contains(&self.lambda.log_retention_days) {
            err(
                e,
                "lambda.log_retention_days",
                format!("{} is not a CloudWatch Logs retention", self.lambda.log_retention_days),
                "use 1, 3, 5, 7, 14, 30, 60, 90, 180, 365 ...",
            );
        }
        for (field, v) in [
            ("storage.efs_uid", self.storage.efs_uid),
            ("storage.efs_gid", self.storage.efs_gid),
        ] {
            if !(0..=4294967295).contains(&v) {
                err(
                    e,
                    field,
                    format!("{v} is not a POSIX id"),
                    "use the dashboard user's id (1000 by default)",
                );
            } else if v == 0 {
                err(
                    e,
                    field,
                    "files side-loaded as root are not readable by the dashboard user",
                    "use the dashboard user's id (1000 by default)",
                );
            }
        }
    }

    /// Addresses the two app subnets leave for instances: each block minus the 5 addresses
    /// AWS reserves in every subnet and the network interfaces pi-deploy puts there (one per
    /// interface endpoint, the EFS mount target, and room for the Lambda's). `None` when a
    /// block does not parse (reported by `validate_network`).
    pub fn instance_addresses(&self) -> Option<i64> {
        let mut room = 0i64;
        for c in &self.network.app_subnet_cidrs {
            let net = c.parse::<Ipv4Net>().ok()?;
            let size = 1i64 << (32 - u32::from(net.prefix_len()));
            room += (size - AWS_RESERVED_PER_SUBNET - OTHER_ENIS_PER_APP_SUBNET).max(0);
        }
        Some(room)
    }

    /// The parameter group family for the configured engine version (validated first).
    pub fn db_family(&self) -> String {
        mariadb_family(&self.database.engine_version).unwrap_or_default()
    }
}

/// An address inside `net`: the `n`th host (used for the DNS resolver, base + 2).
pub fn nth_address(net: &Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut Config)) -> Config {
        let mut c = Config {
            ami: Some("ami-0123456789abcdef0".into()),
            ..Config::default()
        };
        f(&mut c);
        c
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(with(|_| {}).validate(Purpose::Up), vec![]);
        assert_eq!(Config::default().validate(Purpose::Other), vec![]);
    }

    /// Each row: a change to a valid config and the field that must be named.
    #[test]
    fn every_rule_names_its_field() {
        type Case = (&'static str, fn(&mut Config));
        let cases: Vec<Case> = vec![
            ("deployment", |c| c.deployment = "Bad_Name".into()),
            ("deployment", |c| c.deployment = "".into()),
            ("deployment", |c| c.deployment = "-pi".into()),
            ("deployment", |c| c.deployment = "pi-".into()),
            ("deployment", |c| c.deployment = "a--b".into()),
            ("deployment", |c| c.deployment = "1pi".into()),
            ("deployment", |c| c.deployment = "a-very-long-deployment-name-x".into()),
            ("deployment", |c| c.deployment = "awsprod".into()),
            ("deployment", |c| c.deployment = "ssmx".into()),
            ("deployment", |c| c.deployment = "internal".into()),
            ("deployment", |c| c.deployment = "sg-prod".into()),
            ("deployment", |c| c.deployment = "sthree".into()),
            ("region", |c| c.region = Some("europe".into())),
            ("ami", |c| c.ami = Some("ami-123".into())),
            ("ami", |c| c.ami = Some("ami-0123456789ABCDEF0".into())),
            ("ami", |c| c.ami = None),
            ("availability_zones", |c| {
                c.availability_zones = vec!["eu-west-1a".into()]
            }),
            ("availability_zones", |c| {
                c.availability_zones = vec!["eu-west-1a".into(), "eu-west-1a".into()]
            }),
            ("availability_zones", |c| {
                c.availability_zones = vec!["eu-west-1a".into(), "x".into()]
            }),
            ("availability_zones", |c| {
                c.region = Some("us-east-1".into());
                c.availability_zones = vec!["eu-west-1a".into(), "eu-west-1b".into()]
            }),
            ("network.vpc_cidr", |c| c.network.vpc_cidr = "10.0.0.0".into()),
            ("network.vpc_cidr", |c| c.network.vpc_cidr = "10.0.0.1/16".into()),
            ("network.vpc_cidr", |c| c.network.vpc_cidr = "10.0.0.0/8".into()),
            ("network.public_subnet_cidrs", |c| {
                c.network.public_subnet_cidrs = vec!["10.0.2.0/24".into()]
            }),
            ("network.public_subnet_cidrs[0]", |c| {
                c.network.public_subnet_cidrs[0] = "10.1.2.0/24".into()
            }),
            ("network.app_subnet_cidrs[1]", |c| {
                c.network.app_subnet_cidrs[1] = "10.0.2.0/25".into()
            }),
            ("network.db_subnet_cidrs[0]", |c| {
                c.network.db_subnet_cidrs[0] = "nonsense".into()
            }),
            ("network.db_subnet_cidrs[1]", |c| {
                c.network.db_subnet_cidrs[1] = "10.0.5.1/24".into()
            }),
            ("certificate_arn", |c| {
                c.certificate_arn = Some("arn:aws:iam::123456789012:server-certificate/x".into())
            }),
            ("certificate_arn", |c| c.certificate_arn = Some("not-an-arn".into())),
            ("tls_policy", |c| c.tls_policy = "ELBSecurityPolicy-2016-08".into()),
            ("domain_name", |c| c.hosted_zone_id = Some("Z123ABC".into())),
            ("hosted_zone_id", |c| c.domain_name = Some("dash.example.com".into())),
            ("hosted_zone_id", |c| {
                c.hosted_zone_id = Some("zone1".into());
                c.domain_name = Some("dash.example.com".into())
            }),
            ("domain_name", |c| {
                c.hosted_zone_id = Some("Z123ABC".into());
                c.domain_name = Some("no_dots".into())
            }),
            ("licence", |c| {
                c.licence.env = Some("X".into());
                c.licence.file = Some("x".into())
            }),
            ("database.engine_version", |c| c.database.engine_version = "10".into()),
            ("database.engine_version", |c| {
                c.database.engine_version = "9.1.0".into()
            }),
            ("database.parameter_group_family", |c| {
                c.database.parameter_group_family = Some("mariadb10.6".into())
            }),
            ("database.instance_class", |c| {
                c.database.instance_class = "t3.micro".into()
            }),
            ("database.allocated_storage_gib", |c| {
                c.database.allocated_storage_gib = 5
            }),
            ("database.master_username", |c| {
                c.database.master_username = "admin".into()
            }),
            ("database.master_username", |c| {
                c.database.master_username = "1user".into()
            }),
            ("database.backup_retention_days", |c| {
                c.database.backup_retention_days = 0
            }),
            ("database.rotation_days", |c| c.database.rotation_days = 0),
            ("scaling", |c| c.scaling.min = 3),
            ("scaling", |c| c.scaling.desired = 9),
            ("scaling", |c| c.scaling.max = 0),
            ("scaling.max", |c| c.scaling.max = 100000),
            ("scaling.scale_out_cpu_percent", |c| {
                c.scaling.scale_out_cpu_percent = 120.0
            }),
            ("scaling.scale_in_cpu_percent", |c| {
                c.scaling.scale_in_cpu_percent = -1.0
            }),
            ("scaling.scale_in_cpu_percent", |c| {
                c.scaling.scale_in_cpu_percent = 80.0
            }),
            ("scaling.lifecycle_heartbeat_seconds", |c| {
                c.scaling.lifecycle_heartbeat_seconds = 5
            }),
            ("health_check.path", |c| c.health_check.path = "health".into()),
            ("health_check.path", |c| c.health_check.path = "/a b".into()),
            ("health_check.path", |c| c.health_check.path = "/health\n".into()),
            ("health_check.path", |c| c.health_check.path = "/h\u{e9}alth".into()),
            ("health_check.path", |c| c.health_check.path = "/<script>".into()),
            ("network.vpc_cidr", |c| c.network.vpc_cidr = "169.254.0.0/16".into()),
            ("network.vpc_cidr", |c| c.network.vpc_cidr = "127.0.0.0/16".into()),
            ("network.vpc_cidr", |c| c.network.vpc_cidr = "224.0.0.0/16".into()),
            ("network.vpc_cidr", |c| c.network.vpc_cidr = "0.0.0.0/16".into()),
            ("network.vpc_cidr", |c| c.network.vpc_cidr = "250.1.0.0/16".into()),
            ("instance_type", |c| c.instance_type = "t3.medium ".into()),
            ("instance_type", |c| c.instance_type = "t3.".into()),
            ("instance_type", |c| c.instance_type = "t3.Medium".into()),
            ("database.instance_class", |c| {
                c.database.instance_class = "db.t3.micro ".into()
            }),
            ("database.instance_class", |c| {
                c.database.instance_class = "db.t3".into()
            }),
            ("database.instance_class", |c| {
                c.database.instance_class = "db.t3..micro".into()
            }),
            ("database.master_username", |c| {
                c.database.master_username = "select".into()
            }),
            ("database.master_username", |c| {
                c.database.master_username = "Table".into()
            }),
            ("health_check.matcher", |c| c.health_check.matcher = "ok".into()),
            ("health_check.interval_seconds", |c| c.health_check.interval_seconds = 1),
            ("health_check.timeout_seconds", |c| c.health_check.timeout_seconds = 20),
            ("health_check.healthy_threshold", |c| {
                c.health_check.healthy_threshold = 1
            }),
            ("health_check.deregistration_delay_seconds", |c| {
                c.health_check.deregistration_delay_seconds = -1
            }),
            ("instance_type", |c| c.instance_type = "medium".into()),
            ("root_volume_gib", |c| c.root_volume_gib = 2),
            ("dashboard_port", |c| c.dashboard_port = 80),
            ("dashboard_port", |c| c.dashboard_port = 2049),
            ("dashboard_port", |c| c.dashboard_port = 40000),
            ("lambda.runtime", |c| c.lambda.runtime = "python3.8".into()),
            ("lambda.log_retention_days", |c| c.lambda.log_retention_days = 2),
            ("logging.alb_access_log_days", |c| c.logging.alb_access_log_days = 0),
            ("storage.efs_uid", |c| c.storage.efs_uid = 0),
            ("storage.efs_gid", |c| c.storage.efs_gid = -5),
        ];
        for (field, change) in cases {
            let errors = with(change).validate(Purpose::Up);
            assert!(
                errors.iter().any(|e| e.field == field && !e.fix.is_empty()),
                "expected an error naming `{field}`, got {errors:?}"
            );
        }
    }

    #[test]
    fn names_and_paths_aws_accepts_are_not_refused() {
        let fine = [
            with(|c| c.instance_type = "m7i-flex.2xlarge".into()),
            with(|c| c.instance_type = "u-6tb1.metal".into()),
            with(|c| c.database.instance_class = "db.r6gd.16xlarge".into()),
            with(|c| c.database.instance_class = "db.r5.2xlarge.tpc2.mem4x".into()),
            with(|c| c.database.master_username = "Admin_1".into()),
            with(|c| c.database.master_username = "selector".into()),
            with(|c| c.health_check.path = "/api/health?full=1&x=%20~".into()),
            with(|c| {
                c.network.vpc_cidr = "100.64.0.0/16".into();
                c.network.public_subnet_cidrs = vec!["100.64.2.0/24".into(), "100.64.3.0/24".into()];
                c.network.app_subnet_cidrs = vec!["100.64.0.0/24".into(), "100.64.1.0/24".into()];
                c.network.db_subnet_cidrs = vec!["100.64.4.0/24".into(), "100.64.5.0/24".into()];
            }),
        ];
        for c in fine {
            assert_eq!(c.validate(Purpose::Up), vec![], "{c:?}");
        }
    }

    #[test]
    fn scaling_max_is_bounded_by_the_app_subnets_addresses() {
        // Two /24: 2 x (256 - 5 - 7) = 488 addresses; one is kept for an upgrade's surge.
        let c = with(|_| {});
        assert_eq!(c.instance_addresses(), Some(488));
        let at = |max| {
            with(|c| c.scaling.max = max)
                .validate(Purpose::Up)
                .into_iter()
                .any(|e| e.field == "scaling.max")
        };
        assert!(!at(487));
        assert!(at(488));
        assert!(at(100000));
        let big = with(|c| {
            c.network.app_subnet_cidrs = vec!["10.0.64.0/18".into(), "10.0.128.0/18".into()];
            c.network.public_subnet_cidrs = vec!["10.0.0.0/24".into(), "10.0.1.0/24".into()];
            c.network.db_subnet_cidrs = vec!["10.0.4.0/24".into(), "10.0.5.0/24".into()];
            c.scaling.max = 10000;
        });
        assert_eq!(big.validate(Purpose::Up), vec![]);
    }

    #[test]
    fn family_follows_the_engine_version() {
        assert_eq!(mariadb_family("10.11.10").unwrap(), "mariadb10.11");
        assert_eq!(mariadb_family("10.6.19").unwrap(), "mariadb10.6");
        assert_eq!(mariadb_family("11.4").unwrap(), "mariadb11.4");
        assert!(mariadb_family("10.11.x").is_err());
        assert!(mariadb_family("10.11.+1").is_err());
        assert!(mariadb_family("10").is_err());
        assert!(mariadb_family("9.1.0").is_err());
        assert!(mariadb_family("10.3.39").is_err());
        // The shape alone: whether the major is known is `validate`'s question.
        assert_eq!(mariadb_family("12.0.1").unwrap(), "mariadb12.0");
    }

    #[test]
    fn an_unknown_major_needs_its_family_named_to_be_accepted() {
        let mut c = with(|c| c.database.engine_version = "12.9.1".into());
        let e = c.validate(Purpose::Up);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].field, "database.engine_version");
        assert!(
            e[0].problem.contains("12.9 is not a major this pi-deploy knows"),
            "{e:?}"
        );
        assert!(e[0].fix.contains("parameter_group_family = \"mariadb12.9\""), "{e:?}");
        c.database.parameter_group_family = Some("mariadb12.9".into());
        assert_eq!(c.validate(Purpose::Up), vec![]);
    }

    #[test]
    fn unknown_keys_are_rejected_by_the_parser() {
        let e = toml::from_str::<Config>("deploymnet = 'x'").unwrap_err();
        assert!(e.to_string().contains("deploymnet"), "{e}");
    }

    #[test]
    fn usable_early_is_on_by_default_and_parsed_strictly() {
        assert!(Config::default().database.usable_early);
        let off: Config = toml::from_str("[database]\nusable_early = false").unwrap();
        assert!(!off.database.usable_early);
        let e = toml::from_str::<Config>("[database]\nusable_early = \"no\"").unwrap_err();
        assert!(e.to_string().contains("usable_early"), "{e}");
        let e = toml::from_str::<Config>("[database]\nusable_erly = false").unwrap_err();
        assert!(e.to_string().contains("usable_erly"), "{e}");
    }
}
