//! `pi-deploy connect`, the pure part: which instance to open a session on, the AWS CLI
//! command lines of a Session Manager shell and of a port forward to the database, and
//! the MariaDB client line that reads the password from Secrets Manager itself (so the
//! password is never printed, never in a command line, never in pi-deploy's memory).

use std::collections::BTreeSet;

use serde::Serialize;

use super::upgrade::{Group, Instance};

/// The Session Manager document that forwards a local port to a host the instance reaches.
pub const PORT_FORWARD_DOCUMENT: &str = "AWS-StartPortForwardingSessionToRemoteHost";

/// What the AWS CLI needs besides itself to open a session.
pub const PLUGIN: &str = "session-manager-plugin";

/// Where the plugin comes from (the AWS CLI prints the same page when it is missing).
pub const PLUGIN_INSTALL: &str = "install the Session Manager plugin for the AWS CLI: \
     https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html \
     (Debian/Ubuntu: the session-manager-plugin.deb from that page, then `sudo dpkg -i session-manager-plugin.deb`; \
     macOS: `brew install --cask session-manager-plugin`)";

/// Where the AWS CLI comes from.
pub const CLI_INSTALL: &str =
    "install the AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html";

/// `i-` and 8 or 17 hex digits.
pub fn check_instance_id(id: &str) -> Result<(), String> {
    let hex = id.strip_prefix("i-").unwrap_or("");
    if matches!(hex.len(), 8 | 17) && hex.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!(
            "`{id}` is not an instance id (`i-` and 8 or 17 lowercase hex digits)"
        ))
    }
}

/// The instance a session opens on, and why that one.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Choice {
    pub instance_id: String,
    /// The group's lifecycle state (`InService`, `Pending:Wait`...).
    pub lifecycle: String,
    /// Healthy behind the load balancer.
    pub healthy: bool,
}

/// Why no instance could be chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NoChoice {
    /// The group has no instance that is not leaving.
    Empty,
    /// The asked id is not one of the group's instances; the ones it has.
    NotInGroup { asked: String, instances: Vec<String> },
}

fn rank(i: &Instance, healthy: &BTreeSet<String>) -> u8 {
    match (i.in_service(), healthy.contains(&i.id)) {
        (true, true) => 0,
        (true, false) => 1,
        _ => 2,
    }
}

/// The asked instance if it is in the group, else the best one: healthy and InService,
/// then InService, then any instance not leaving (one held in `Pending:Wait` is where a
/// failing user data is found). Ties go to the lowest id, so repeated runs agree.
pub fn choose_instance(group: &Group, healthy: &BTreeSet<String>, asked: Option<&str>) -> Result<Choice, NoChoice> {
    let choice = |i: &Instance| Choice {
        instance_id: i.id.clone(),
        lifecycle: i.lifecycle.clone(),
        healthy: healthy.contains(&i.id),
    };
    if let Some(id) = asked {
        return group.instance(id).map(choice).ok_or_else(|| NoChoice::NotInGroup {
            asked: id.to_string(),
            instances: group.instances.iter().map(|i| i.id.clone()).collect(),
        });
    }
    group
        .instances
        .iter()
        .filter(|i| !i.is_leaving())
        .min_by(|a, b| (rank(a, healthy), &a.id).cmp(&(rank(b, healthy), &b.id)))
        .map(choice)
        .ok_or(NoChoice::Empty)
}

/// `aws ssm start-session` on one instance.
pub fn shell_session(instance: &str, region: &str) -> Vec<String> {
    ["ssm", "start-session", "--target", instance, "--region", region]
        .map(String::from)
        .to_vec()
}

/// `aws ssm start-session` forwarding `localhost:local_port` through `instance` to
/// `host:port`.
pub fn port_forward(instance: &str, region: &str, host: &str, port: u16, local_port: u16) -> Vec<String> {
    let parameters = serde_json::json!({
        "host": [host],
        "portNumber": [port.to_string()],
        "localPortNumber": [local_port.to_string()],
    });
    let mut argv = shell_session(instance, region);
    argv.extend([
        "--document-name".to_string(),
        PORT_FORWARD_DOCUMENT.to_string(),
        "--parameters".to_string(),
        parameters.to_string(),
    ]);
    argv
}

/// A bash line that starts the MariaDB client on the forwarded port. The password is read
/// from the secret by the AWS CLI and handed to the client in `MYSQL_PWD` (the environment
/// of that one process, readable only by its user), so it never shows on the terminal, in
/// the shell history or in `ps`.
pub fn mariadb_client(region: &str, secret_arn: &str, local_port: u16, user: &str, database: &str) -> String {
    let read = shell_line(&[
        "aws",
        "secretsmanager",
        "get-secret-value",
        "--region",
        region,
        "--secret-id",
        secret_arn,
        "--query",
        "SecretString",
        "--output",
        "text",
    ]);
    let client = shell_line(&[
        "mariadb",
        "--host",
        "127.0.0.1",
        "--port",
        &local_port.to_string(),
        "--user",
        user,
        database,
    ]);
    format!("MYSQL_PWD=\"$({read} | jq -r .password)\" {client}")
}

/// One word for a POSIX shell: as is when it is plain, else in single quotes.
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// A command line for a POSIX shell.
pub fn shell_line<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|w| shell_quote(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::upgrade::Capacity;

    fn instance(id: &str, lifecycle: &str) -> Instance {
        Instance {
            id: id.into(),
            image: None,
            version: None,
            lifecycle: lifecycle.into(),
            launched_at: None,
        }
    }

    fn group(instances: Vec<Instance>) -> Group {
        Group {
            capacity: Capacity {
                min: 1,
                max: 5,
                desired: 1,
            },
            version: None,
            instances,
            suspended: vec![],
        }
    }

    #[test]
    fn instance_ids_are_checked_before_any_call() {
        assert!(check_instance_id("i-0123456789abcdef0").is_ok());
        assert!(check_instance_id("i-12345678").is_ok());
        for bad in [
            "",
            "i-",
            "i-123",
            "0123456789abcdef0",
            "i-0123456789ABCDEF0",
            "i-0123456789abcdefg",
            "sg-12345678",
        ] {
            assert!(check_instance_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_healthy_in_service_instance_is_chosen_first() {
        let g = group(vec![
            instance("i-0000000a", "Pending:Wait"),
            instance("i-0000000b", "InService"),
            instance("i-0000000c", "InService"),
            instance("i-00000001", "Terminating"),
        ]);
        let healthy: BTreeSet<String> = ["i-0000000c".to_string()].into();
        let c = choose_instance(&g, &healthy, None).unwrap();
        assert_eq!((c.instance_id.as_str(), c.healthy), ("i-0000000c", true));
        // None healthy: the first InService one.
        let c = choose_instance(&g, &BTreeSet::new(), None).unwrap();
        assert_eq!((c.instance_id.as_str(), c.healthy), ("i-0000000b", false));
        // Only one held at launch: that one (its user data is what needs looking at).
        let g = group(vec![
            instance("i-0000000a", "Pending:Wait"),
            instance("i-00000001", "Terminated"),
        ]);
        let c = choose_instance(&g, &BTreeSet::new(), None).unwrap();
        assert_eq!(c.lifecycle, "Pending:Wait");
        assert_eq!(
            choose_instance(&group(vec![]), &BTreeSet::new(), None),
            Err(NoChoice::Empty)
        );
    }

    #[test]
    fn an_asked_instance_must_be_in_the_group() {
        let g = group(vec![instance("i-0000000a", "InService")]);
        assert_eq!(
            choose_instance(&g, &BTreeSet::new(), Some("i-0000000a"))
                .unwrap()
                .instance_id,
            "i-0000000a"
        );
        assert_eq!(
            choose_instance(&g, &BTreeSet::new(), Some("i-0000000f")),
            Err(NoChoice::NotInGroup {
                asked: "i-0000000f".into(),
                instances: vec!["i-0000000a".into()]
            })
        );
    }

    #[test]
    fn the_session_commands_name_the_target_region_and_document() {
        assert_eq!(
            shell_line(&shell_session("i-0123456789abcdef0", "eu-west-1")),
            "ssm start-session --target i-0123456789abcdef0 --region eu-west-1"
        );
        let argv = port_forward(
            "i-0123456789abcdef0",
            "eu-west-1",
            "pi-db.abc.eu-west-1.rds.amazonaws.com",
            3306,
            13306,
        );
        assert_eq!(argv[6..8], ["--document-name", PORT_FORWARD_DOCUMENT]);
        assert_eq!(argv[8], "--parameters");
        let p: serde_json::Value = serde_json::from_str(&argv[9]).unwrap();
        assert_eq!(
            p,
            serde_json::json!({
                "host": ["pi-db.abc.eu-west-1.rds.amazonaws.com"],
                "portNumber": ["3306"],
                "localPortNumber": ["13306"],
            })
        );
        assert!(
            shell_line(&argv).contains(r#"--parameters '{"host":"#),
            "{}",
            shell_line(&argv)
        );
    }

    #[test]
    fn the_client_line_reads_the_password_itself() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1a2b-AbCdEf";
        let line = mariadb_client("eu-west-1", arn, 3306, "pi_admin", "dashboard");
        assert_eq!(
            line,
            "MYSQL_PWD=\"$(aws secretsmanager get-secret-value --region eu-west-1 --secret-id \
             'arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1a2b-AbCdEf' --query SecretString \
             --output text | jq -r .password)\" mariadb --host 127.0.0.1 --port 3306 --user pi_admin dashboard"
        );
    }

    #[test]
    fn shell_quoting_keeps_every_word_whole() {
        assert_eq!(
            shell_quote("plain-word_1.2/x:y=z@a%b+c,d"),
            "plain-word_1.2/x:y=z@a%b+c,d"
        );
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote("rds!db"), "'rds!db'");
    }
}
