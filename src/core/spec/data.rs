//! The data tier: the resources bucket, the file system with its mount targets and access
//! point, the database chain (subnet group, parameter group, error log group, instance,
//! endpoint, standby) and the licence secret.

use super::{
    BucketPurpose, Builder, DbSettings, Kind, Props, SpecInput, ZONES, keys, licence_source, subnet_key, usable_early,
};
use crate::core::names;

/// Storage and data. The RDS chain is the critical path: vpc -> db subnets -> subnet group
/// -> instance -> endpoint (the long wait); nothing outside it waits for `db-endpoint`
/// except the final dashboard check.
pub(super) fn data(b: &mut Builder, input: &SpecInput<'_>) {
    let cfg = input.config;
    let dep = &cfg.deployment;
    b.add(
        "bucket",
        Kind::Bucket,
        vec![],
        Props::Bucket {
            versioning: cfg.storage.bucket_versioning,
            purpose: BucketPurpose::Resources,
        },
    );
    b.add(
        "efs",
        Kind::FileSystem,
        vec![],
        Props::FileSystem {
            require_tls: cfg.storage.efs_require_tls,
        },
    );
    for zone in ZONES {
        let subnet = subnet_key("app", zone);
        b.add(
            format!("efs-mt-{zone}"),
            Kind::MountTarget,
            vec!["efs".into(), subnet.clone(), "sg-efs".into()],
            Props::MountTarget {
                file_system: "efs".into(),
                subnet,
                security_group: "sg-efs".into(),
            },
        );
    }
    b.add(
        "efs-ap",
        Kind::AccessPoint,
        vec!["efs".into()],
        Props::AccessPoint {
            file_system: "efs".into(),
            uid: cfg.storage.efs_uid,
            gid: cfg.storage.efs_gid,
            path: "/var/panintelligence".into(),
        },
    );
    let db_subnets = keys("subnet-db");
    b.add(
        "db-subnet-group",
        Kind::DbSubnetGroup,
        db_subnets.clone(),
        Props::DbSubnetGroup { subnets: db_subnets },
    );
    let param = |n: &str, v: &str, m: &str| (n.to_string(), v.to_string(), m.to_string());
    let mut parameters = vec![
        param("sql_mode", "NO_AUTO_VALUE_ON_ZERO", "immediate"),
        param("lower_case_table_names", "1", "pending-reboot"),
        param("log_bin_trust_function_creators", "1", "immediate"),
    ];
    if cfg.database.require_tls {
        // Dynamic: applies to new connections at once, no reboot.
        parameters.push(param("require_secure_transport", "1", "immediate"));
    }
    b.add(
        "db-params",
        Kind::DbParameterGroup,
        vec![],
        Props::DbParameterGroup {
            family: cfg.db_family(),
            parameters,
        },
    );
    let d = &cfg.database;
    let mut db_deps = vec!["db-subnet-group".to_string(), "db-params".into(), "sg-db".into()];
    let log_exports: Vec<String> = if d.export_error_log {
        vec!["error".into()]
    } else {
        vec![]
    };
    for log in &log_exports {
        // Created before the instance, so RDS writes into a group with our retention
        // instead of creating one that keeps everything forever.
        let key = format!("db-{log}-log-group");
        b.add(
            &key,
            Kind::LogGroup,
            vec![],
            Props::LogGroup {
                name: names::db_log_group(dep, log),
                retention_days: cfg.lambda.log_retention_days,
            },
        );
        db_deps.push(key);
    }
    b.add(
        "db",
        Kind::DbInstance,
        db_deps,
        Props::DbInstance {
            subnet_group: "db-subnet-group".into(),
            parameter_group: "db-params".into(),
            security_group: "sg-db".into(),
            db: DbSettings {
                identifier: names::db_identifier(dep),
                instance_class: d.instance_class.clone(),
                allocated_storage_gib: d.allocated_storage_gib,
                engine_version: d.engine_version.clone(),
                multi_az: d.multi_az,
                master_username: d.master_username.clone(),
                backup_retention_days: d.backup_retention_days,
                deletion_protection: d.deletion_protection,
                apply_immediately: d.apply_immediately,
                log_exports,
                standby_later: usable_early(cfg),
            },
        },
    );
    b.add(
        "db-endpoint",
        Kind::DbEndpoint,
        vec!["db".into()],
        Props::DbEndpoint {
            db: "db".into(),
            // Usable early: the endpoint is published once the Single-AZ instance is
            // available; the standby node verifies Multi-AZ.
            expect_multi_az: d.multi_az && !usable_early(cfg),
            rotation_days: d.rotation_days,
        },
    );
    if usable_early(cfg) {
        // After the endpoint: the conversion starts once the instance is `available` (a
        // modification while `creating` is refused), and the endpoint's wait for
        // `available` never sees the conversion's `modifying`.
        b.add(
            "db-standby",
            Kind::DbStandby,
            vec!["db".into(), "db-endpoint".into()],
            Props::DbStandby { db: "db".into() },
        );
    }
    if let Some(source) = licence_source(cfg) {
        b.add(
            "licence-secret",
            Kind::Secret,
            vec![],
            Props::Secret {
                name: names::licence_secret(dep),
                source,
            },
        );
    }
}
