//! The dashboard instances' user data: `templates/user-data.sh` with its `{{placeholders}}`
//! filled in. Pure: the launch template kind base64-encodes the result.
//!
//! The renderer only ever receives ids, names and ARNs. Secret values (the DB password, the
//! licence) are read by the instance itself at every start of the dashboard, so they never
//! reach user data, which anyone with `ec2:DescribeLaunchTemplateVersions` can read.

use super::config::Config;
use super::names;
use super::spec::InstanceSettings;

const TEMPLATE: &str = include_str!("../../templates/user-data.sh");

/// AWS refuses user data above 16 KiB (before base64).
pub const MAX_USER_DATA_BYTES: usize = 16 * 1024;

/// Everything the script needs to know about its deployment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserDataParams {
    pub deployment: String,
    pub region: String,
    /// `amazonaws.com`, or `amazonaws.com.cn` in the China partition.
    pub dns_suffix: String,
    pub file_system_id: String,
    pub db_endpoint_parameter: String,
    pub db_secret_arn: String,
    pub licence_secret_arn: Option<String>,
    pub asg_name: String,
    pub lifecycle_hook: String,
    /// How long a new instance waits for the DB endpoint parameter (the hook's heartbeat).
    pub endpoint_wait_seconds: i32,
    pub efs_uid: i64,
    pub efs_gid: i64,
    /// The file system refuses NFS without TLS: install amazon-efs-utils if missing.
    pub efs_require_tls: bool,
}

impl UserDataParams {
    /// Names from the config; ids and ARNs from the resources already built.
    pub fn new(
        cfg: &Config,
        region: &str,
        dns_suffix: &str,
        file_system_id: &str,
        db_secret_arn: &str,
        licence_secret_arn: Option<&str>,
    ) -> Self {
        let settings = InstanceSettings {
            dns_suffix: dns_suffix.to_string(),
            ..InstanceSettings::from_config(cfg, region)
        };
        Self::for_instances(&settings, file_system_id, db_secret_arn, licence_secret_arn)
    }

    /// From the launch template's props (what `plan` and `up` compare) and the ids of the
    /// resources already built.
    pub fn for_instances(
        s: &InstanceSettings,
        file_system_id: &str,
        db_secret_arn: &str,
        licence_secret_arn: Option<&str>,
    ) -> Self {
        let dep = &s.deployment;
        Self {
            deployment: dep.clone(),
            region: s.region.clone(),
            dns_suffix: s.dns_suffix.clone(),
            file_system_id: file_system_id.to_string(),
            db_endpoint_parameter: names::db_endpoint_parameter(dep),
            db_secret_arn: db_secret_arn.to_string(),
            licence_secret_arn: licence_secret_arn.map(String::from),
            asg_name: names::asg(dep),
            lifecycle_hook: names::lifecycle_hook(dep),
            endpoint_wait_seconds: s.endpoint_wait_seconds,
            efs_uid: s.efs_uid,
            efs_gid: s.efs_gid,
            efs_require_tls: s.efs_require_tls,
        }
    }

    fn values(&self) -> Vec<(&'static str, String)> {
        vec![
            ("deployment", self.deployment.clone()),
            ("region", self.region.clone()),
            ("dns_suffix", self.dns_suffix.clone()),
            ("file_system_id", self.file_system_id.clone()),
            ("db_endpoint_parameter", self.db_endpoint_parameter.clone()),
            ("db_secret_arn", self.db_secret_arn.clone()),
            (
                "licence_secret_arn",
                self.licence_secret_arn.clone().unwrap_or_default(),
            ),
            ("asg_name", self.asg_name.clone()),
            ("lifecycle_hook", self.lifecycle_hook.clone()),
            ("endpoint_wait_seconds", self.endpoint_wait_seconds.to_string()),
            ("efs_uid", self.efs_uid.to_string()),
            ("efs_gid", self.efs_gid.to_string()),
            (
                "efs_require_tls",
                if self.efs_require_tls { "1" } else { "0" }.to_string(),
            ),
        ]
    }
}

/// Values go between single quotes in the script: only characters that ids, names and ARNs
/// use are accepted, so nothing can end the quoting or expand.
fn is_shell_safe(v: &str) -> bool {
    v.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:!@+=,".contains(c))
}

/// The script for these parameters.
pub fn render(p: &UserDataParams) -> Result<String, String> {
    let mut out = without_comments(TEMPLATE);
    for (name, value) in p.values() {
        if !is_shell_safe(&value) {
            return Err(format!(
                "user data value `{name}` holds characters that are not allowed: {value:?}"
            ));
        }
        let placeholder = format!("{{{{{name}}}}}");
        if !out.contains(&placeholder) {
            return Err(format!("the user data template has no placeholder {placeholder}"));
        }
        out = out.replace(&placeholder, &value);
    }
    if let Some(at) = out.find("{{") {
        let rest: String = out[at..].chars().take(40).collect();
        return Err(format!("the user data template has an unknown placeholder at `{rest}`"));
    }
    if out.len() > MAX_USER_DATA_BYTES {
        return Err(format!(
            "the user data is {} bytes; AWS accepts at most {MAX_USER_DATA_BYTES}",
            out.len()
        ));
    }
    Ok(out)
}

/// The template without its comment-only lines (the shebang stays, and so does every line of
/// a here-document, whose text is data): the comments document the template in the
/// repository, and the 16 KiB AWS allows is better spent on the script.
pub fn without_comments(script: &str) -> String {
    let mut out = String::with_capacity(script.len());
    let mut heredoc_end: Option<String> = None;
    for (n, line) in script.split_inclusive('\n').enumerate() {
        let text = line.trim_end_matches('\n');
        if let Some(end) = &heredoc_end {
            if text == end {
                heredoc_end = None;
            }
            out.push_str(line);
            continue;
        }
        if n > 0 && text.trim_start().starts_with('#') {
            continue;
        }
        heredoc_end = heredoc_terminator(text);
        out.push_str(line);
    }
    out
}

/// The word that ends a here-document opened on this line (`<<EOF`, `<<'EOF'`, `<<-EOF`).
fn heredoc_terminator(line: &str) -> Option<String> {
    let at = line.find("<<")?;
    let rest = line[at + 2..].trim_start_matches('-').trim_start();
    let word: String = rest
        .trim_start_matches(['\'', '"'])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!word.is_empty()).then_some(word)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use super::*;
    use crate::core::config::Config;

    const DB_SECRET: &str =
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-0b1c2d3e-4f5a-6b7c-8d9e-0f1a2b3c4d5e-AbCdEf";
    const LICENCE_SECRET: &str = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pi-deploy/pi/licence-XyZ123";

    fn params(cfg: &Config, licence: Option<&str>) -> UserDataParams {
        UserDataParams::new(
            cfg,
            "eu-west-1",
            "amazonaws.com",
            "fs-0123456789abcdef0",
            DB_SECRET,
            licence,
        )
    }

    fn golden_path(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/golden")
            .join(name)
    }

    /// Compare with the golden file; `UPDATE_GOLDEN=1 cargo test userdata` rewrites them.
    fn check_golden(name: &str, rendered: &str) {
        let path = golden_path(name);
        if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
            std::fs::write(&path, rendered).unwrap();
            return;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run `UPDATE_GOLDEN=1 cargo test userdata` to create it)",
                path.display()
            )
        });
        assert!(
            want == rendered,
            "{} differs from the rendered user data; review the change, then run `UPDATE_GOLDEN=1 cargo test userdata`",
            path.display()
        );
    }

    fn parses_as_bash(script: &str) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("user-data.sh");
        std::fs::write(&file, script).unwrap();
        let out = std::process::Command::new("bash")
            .arg("-n")
            .arg(&file)
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "bash -n: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn golden_without_licence() {
        let cfg = Config::default();
        let s = render(&params(&cfg, None)).unwrap();
        assert!(s.contains("readonly LICENCE_SECRET_ARN=''"));
        parses_as_bash(&s);
        check_golden("user-data-no-licence.sh", &s);
    }

    #[test]
    fn golden_with_licence() {
        let cfg = Config {
            deployment: "pi-prod".into(),
            ..Config::default()
        };
        let s = render(&params(&cfg, Some(LICENCE_SECRET))).unwrap();
        assert!(s.contains(&format!("readonly LICENCE_SECRET_ARN='{LICENCE_SECRET}'")));
        assert!(s.contains("readonly DB_ENDPOINT_PARAMETER='/pi-prod/db-endpoint'"));
        assert!(s.contains("readonly ASG_NAME='pi-prod-dashboard'"));
        parses_as_bash(&s);
        check_golden("user-data-licence.sh", &s);
    }

    #[test]
    fn golden_in_the_china_partition() {
        let mut cfg = Config {
            deployment: "pi-cn".into(),
            ..Config::default()
        };
        cfg.scaling.lifecycle_heartbeat_seconds = 3000;
        cfg.storage.efs_uid = 1001;
        cfg.storage.efs_gid = 1002;
        cfg.storage.efs_require_tls = false;
        let db = "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:rds!db-1234-AbCdEf";
        let p = UserDataParams::new(&cfg, "cn-north-1", "amazonaws.com.cn", "fs-0fedcba9876543210", db, None);
        let s = render(&p).unwrap();
        assert!(s.contains("readonly EFS_ID='fs-0fedcba9876543210'"));
        assert!(s.contains("readonly EFS_DNS=\"$EFS_ID.efs.cn-north-1.amazonaws.com.cn\""));
        assert!(s.contains("readonly EFS_REQUIRE_TLS='0'"));
        assert!(s.contains("readonly ENDPOINT_WAIT_SECONDS='3000'"));
        assert!(s.contains("readonly EFS_UID='1001'") && s.contains("readonly EFS_GID='1002'"));
        parses_as_bash(&s);
        check_golden("user-data-china.sh", &s);
    }

    #[test]
    fn the_script_keeps_its_promises() {
        let s = render(&params(&Config::default(), Some(LICENCE_SECRET))).unwrap();
        assert!(s.starts_with("#!/bin/bash\n"));
        assert!(s.contains("\nset -euo pipefail\n"));
        let code: Vec<&str> = s.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
        for bad in ["set -x", "bash -x", "tee ", "reboot", "/dev/xvda"] {
            assert!(!code.iter().any(|l| l.contains(bad)), "the script must not use `{bad}`");
        }
        for needed in [
            "nfsvers=4.1,rsize=1048576,wsize=1048576,hard,timeo=600,retrans=2,noresvport,_netdev,nofail",
            // TLS with amazon-efs-utils; the warning when it falls back to plain NFS.
            "readonly EFS_REQUIRE_TLS='1'",
            "efs $EFS_TLS_OPTIONS 0 0",
            "readonly EFS_TLS_OPTIONS=tls,_netdev,nofail",
            "install amazon-efs-utils",
            "WARNING: amazon-efs-utils is not available",
            "umask 077",
            "chmod 600",
            "X-aws-ec2-metadata-token",
            "--lifecycle-action-result",
            "complete_lifecycle CONTINUE",
            "complete_lifecycle ABANDON",
            "PI_DB_HOST=",
            "PI_DB_PORT=",
            "PI_DB_USERNAME=",
            "PI_DB_PASSWORD=",
            "PI_DB_SCHEMA_NAME=dashboard",
            "PI_EXTERNAL_DB=true",
            "PI_LICENCE=",
            "/var/panintelligence",
            "dashboard.env",
            "scheduler.env",
            "ExecStartPre=",
        ] {
            assert!(s.contains(needed), "the script lacks `{needed}`");
        }
        // The folders the side-loading Lambda fills (spec::SIDELOAD_PREFIXES) plus the logs.
        let line = s
            .lines()
            .find_map(|l| l.strip_prefix("readonly -a FOLDERS=("))
            .expect("the FOLDERS line");
        let folders: Vec<&str> = line.trim_end_matches(')').split(' ').collect();
        assert_eq!(folders, ["images", "themes", "excel-data", "svg", "keys", "logs"]);
        for prefix in crate::core::spec::SIDELOAD_PREFIXES {
            assert!(
                folders.contains(&prefix.trim_end_matches('/')),
                "folder {prefix} is not linked"
            );
        }
    }

    #[test]
    fn no_secret_value_reaches_the_user_data() {
        // The licence lives in a file the config points at; the renderer only ever gets the
        // secret's ARN, so the value cannot appear whatever the config says.
        let dir = tempfile::tempdir().unwrap();
        let licence_file = dir.path().join("licence.txt");
        let licence_value = "PI-LICENCE-7f3a9c1e-DO-NOT-LEAK";
        std::fs::write(&licence_file, licence_value).unwrap();
        let mut cfg = Config::default();
        cfg.licence.file = Some(licence_file);
        let s = render(&params(&cfg, Some(LICENCE_SECRET))).unwrap();
        assert!(!s.contains(licence_value));
        assert!(!s.contains("DO-NOT-LEAK"));
        assert!(s.contains(LICENCE_SECRET));
    }

    #[test]
    fn unsafe_values_are_refused() {
        let mut p = params(&Config::default(), None);
        p.file_system_id = "fs-1'; rm -rf /; '".into();
        assert!(render(&p).unwrap_err().contains("file_system_id"));
        let mut p = params(&Config::default(), None);
        p.db_secret_arn = "arn:$(id)".into();
        assert!(render(&p).is_err());
    }

    #[test]
    fn comments_are_left_out_but_not_the_shebang_nor_here_documents() {
        let script = "#!/bin/bash\n# a comment\nx=1 # kept\n  # indented\ncat >f <<EOF\n# unit comment\nA=$x\nEOF\n# after\ncat <<'END'\n# quoted\nEND\ny=2\n";
        assert_eq!(
            without_comments(script),
            "#!/bin/bash\nx=1 # kept\ncat >f <<EOF\n# unit comment\nA=$x\nEOF\ncat <<'END'\n# quoted\nEND\ny=2\n"
        );
        // A here-string is not a here-document.
        assert_eq!(heredoc_terminator("read -r x <<<\"$y\""), None);
        assert_eq!(heredoc_terminator("cat >\"$DROP_IN\" <<EOF"), Some("EOF".into()));
        assert_eq!(heredoc_terminator("cat <<-'X_1'"), Some("X_1".into()));
    }

    #[test]
    fn fits_in_user_data() {
        let s = render(&params(&Config::default(), Some(LICENCE_SECRET))).unwrap();
        assert!(s.len() < MAX_USER_DATA_BYTES, "{} bytes", s.len());
    }

    /// Run the rendered script in bash with `driver` (stubs, then calls) in place of its
    /// `main "$@"`; panics unless it exits 0. Returns its stdout and stderr.
    fn run_driven(script: &str, driver: &str, dir: &std::path::Path) -> (String, String) {
        let driven = script.replace("\nmain \"$@\"\n", driver);
        assert_ne!(driven, script, "the script ends with `main \"$@\"`");
        let file = dir.join("driver.sh");
        std::fs::write(&file, &driven).unwrap();
        let out = std::process::Command::new("bash").arg(&file).output().expect("bash");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        );
        assert!(out.status.success(), "{stdout}{stderr}");
        (stdout, stderr)
    }

    /// The rendered script's waits, run in bash with `aws`, `imds` and `sleep` stubbed (sleep
    /// advances bash's SECONDS): a 50-minute wait records a heartbeat every third of the
    /// hook's 2400 s timeout, so the hook never abandons a still-working instance; none
    /// once the lifecycle action is complete.
    #[test]
    fn long_waits_record_lifecycle_heartbeats() {
        let s = render(&params(&Config::default(), None)).unwrap();
        assert!(
            s.contains("readonly ENDPOINT_WAIT_SECONDS='2400'"),
            "the test assumes the default heartbeat"
        );
        let dir = tempfile::tempdir().unwrap();
        let calls = dir.path().join("aws-calls");
        let driver = format!(
            r#"
aws() {{ printf '%s\n' "$*" >>'{calls}'; }}
imds() {{ echo i-0123456789abcdef0; }}
sleep() {{ SECONDS=$((SECONDS + $1)); }}
log() {{ :; }}
retry 3000 "a database that never comes" false || true
LIFECYCLE_DONE=1
retry 3000 "after completion" false || true
"#,
            calls = calls.display()
        );
        run_driven(&s, &driver, dir.path());
        let recorded = std::fs::read_to_string(&calls).unwrap_or_default();
        let beats: Vec<&str> = recorded.lines().collect();
        // 3000 s of waiting, one heartbeat per 800 s at most: 3 (at ~800, ~1600, ~2400 s).
        assert_eq!(beats.len(), 3, "{recorded}");
        for b in beats {
            assert!(
                b.starts_with("autoscaling record-lifecycle-action-heartbeat --region eu-west-1 ")
                    && b.contains("--auto-scaling-group-name pi-dashboard")
                    && b.contains("--lifecycle-hook-name pi-wait-for-dashboard")
                    && b.ends_with("--instance-id i-0123456789abcdef0"),
                "{b}"
            );
        }
    }

    /// A scripted rotation, run through the rendered script in bash: `aws` answers the DB
    /// secret's metadata and value from files the test changes (v1, then RDS rotates to v2),
    /// `systemctl` is recorded. The dashboard starts on v1 (the drop-in's `write-env`); the
    /// timer's `refresh` leaves it alone while v1 is current, then rewrites the env files and
    /// restarts it exactly once after the rotation; the password never reaches the output.
    #[test]
    fn a_rotated_db_secret_restarts_the_dashboard_once() {
        let s = render(&params(&Config::default(), None)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let pi_dir = root.join("pi");
        let version_file = root.join("lib/db-secret-version");
        let s = s
            .replace(
                "readonly PI_DIR=/var/panintelligence\n",
                &format!("readonly PI_DIR='{}'\n", pi_dir.display()),
            )
            .replace(
                "readonly DB_SECRET_VERSION_FILE=/var/lib/pi-deploy/db-secret-version\n",
                &format!("readonly DB_SECRET_VERSION_FILE='{}'\n", version_file.display()),
            );
        assert_eq!(s.matches(&*root.display().to_string()).count(), 2, "both paths moved");
        let (version, value, calls) = (root.join("version"), root.join("value"), root.join("calls"));
        let rotate = |v: &str, password: &str| {
            std::fs::write(&version, v).unwrap();
            let json = format!(r#"{{"username":"postgres","password":"{password}"}}"#);
            std::fs::write(&value, json).unwrap();
        };
        let stubs = format!(
            r#"
aws() {{
  printf '%s\n' "$*" >>'{calls}'
  case "$1 $2" in
    'ssm get-parameter') echo pi-db.abc.eu-west-1.rds.amazonaws.com:5432 ;;
    'secretsmanager describe-secret')
      printf '{{"%s": ["AWSCURRENT"], "v0-old": ["AWSPREVIOUS"]}}\n' "$(<'{version}')" ;;
    'secretsmanager get-secret-value') cat '{value}' ;;
    *) return 1 ;;
  esac
}}
systemctl() {{ printf 'systemctl %s\n' "$*" >>'{calls}'; }}
sleep() {{ SECONDS=$((SECONDS + $1)); }}
main "$@"
"#,
            calls = calls.display(),
            version = version.display(),
            value = value.display(),
        );
        let run = |mode: &str| {
            let (out, err) = run_driven(&s, &stubs.replace("main \"$@\"", &format!("main {mode}")), root);
            std::fs::remove_file(root.join("driver.sh")).unwrap();
            assert!(!out.contains("OLD-pw-1") && !err.contains("OLD-pw-1"), "{out}{err}");
            assert!(!out.contains("NEW-pw-2") && !err.contains("NEW-pw-2"), "{out}{err}");
            let made = std::fs::read_to_string(&calls).unwrap_or_default();
            std::fs::remove_file(&calls).ok();
            (made, err)
        };
        let restarts = |made: &str| made.lines().filter(|l| l.starts_with("systemctl ")).count();
        let env = || std::fs::read_to_string(pi_dir.join("dashboard.env")).unwrap();
        let recorded = || std::fs::read_to_string(&version_file).unwrap();

        // Before the dashboard ever started, the timer has nothing to compare with.
        rotate("v1", "OLD-pw-1");
        let (made, _) = run("refresh");
        assert_eq!(made, "", "no AWS call and no restart without a version on record");

        // The dashboard starts: its drop-in writes the env files and records v1.
        let (made, _) = run("write-env");
        assert_eq!(restarts(&made), 0);
        assert!(env().contains("PI_DB_PASSWORD=OLD-pw-1\n"));
        assert_eq!(recorded(), "v1\n");
        assert_eq!(version_file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(std::fs::read_to_string(pi_dir.join("scheduler.env")).unwrap(), env());

        // No rotation: only the metadata is read, nothing restarts.
        let (made, _) = run("refresh");
        assert_eq!(
            made.lines().collect::<Vec<_>>(),
            [format!(
                "secretsmanager describe-secret --region eu-west-1 --secret-id {DB_SECRET} --query VersionIdsToStages --output json"
            )]
        );

        // RDS rotates: the env files get the new password, the record v2, one restart.
        rotate("v2", "NEW-pw-2");
        let (made, err) = run("refresh");
        assert_eq!(
            made.lines().filter(|l| l.starts_with("systemctl ")).collect::<Vec<_>>(),
            ["systemctl try-restart panintelligence.service"],
            "{made}"
        );
        assert!(made.contains("secretsmanager get-secret-value"), "{made}");
        assert!(env().contains("PI_DB_PASSWORD=NEW-pw-2\n") && !env().contains("OLD-pw-1"));
        assert_eq!(std::fs::read_to_string(pi_dir.join("scheduler.env")).unwrap(), env());
        assert_eq!(recorded(), "v2\n");
        let rotated: Vec<&str> = err.lines().filter(|l| l.contains("rotated")).collect();
        assert_eq!(rotated.len(), 1, "{err}");
        assert!(rotated[0].contains("version v1 -> v2"), "{err}");

        // And then it settles: v2 is current, no second restart.
        let (made, _) = run("refresh");
        assert_eq!(restarts(&made), 0, "{made}");
    }
}
