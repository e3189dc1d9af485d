//! `pi-deploy connect`: a shell on a dashboard instance, or a port forward to the database,
//! through Session Manager (no SSH, no key pair, no open port). pi-deploy chooses the
//! instance and builds the AWS CLI command (`core::connect`); the AWS CLI and its Session
//! Manager plugin carry the session, so pi-deploy runs `aws` when both are on the PATH and
//! prints the command otherwise. It never reads the database password.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{CmdError, load_config, open_read_only, recorded, validate};
use crate::cli::{ConnectArgs, GlobalArgs};
use crate::core::config::Purpose;
use crate::core::connect::{
    self, CLI_INSTALL, Choice, NoChoice, PLUGIN, PLUGIN_INSTALL, check_instance_id, choose_instance, shell_line,
};
use crate::core::names;
use crate::core::upgrade::Fleet;
use crate::resources::fleet::AwsFleet;
use crate::ui::report;

/// The database's default port when the state does not record one.
const DB_PORT: u16 = 3306;
/// The schema `up` creates (`DBName`).
const DB_NAME: &str = "dashboard";

/// The `--json` document (nothing is run with --json).
#[derive(Debug, Serialize)]
struct Plan {
    deployment: String,
    region: String,
    instance: Choice,
    /// The AWS CLI's arguments, after `aws`.
    command: Vec<String>,
    /// The same as one shell line.
    command_line: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<Database>,
    /// Whether `aws` and `session-manager-plugin` are on the PATH.
    aws_cli: bool,
    session_manager_plugin: bool,
}

#[derive(Debug, Serialize)]
struct Database {
    host: String,
    port: u16,
    local_port: u16,
    secret_arn: String,
    user: String,
    /// A bash line for the MariaDB client; it reads the password itself.
    client_command_line: String,
    /// Who may read the password: the secret's policy denies it to every principal but the
    /// dashboard role and those with this tag (`key=value`).
    password_readers_tag: String,
}

/// An executable of that name on the PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

pub async fn run(global: &GlobalArgs, args: &ConnectArgs) -> Result<(), CmdError> {
    let cfg = load_config(global)?;
    validate(&cfg, Purpose::Other)?;
    if let Some(id) = &args.instance {
        check_instance_id(id).map_err(|p| CmdError::input("--instance", p, "pass the id of one of the deployment's instances (`pi-deploy status` lists them), or leave --instance out"))?;
    }
    let (aws, state) = open_read_only(&cfg, global).await?;
    let asg = names::asg(&aws.env.deployment);
    let fleet = AwsFleet {
        aws: aws.as_ref(),
        group: asg.clone(),
        launch_template_id: String::new(),
        target_group_arn: recorded(&state, "tg", "id", "connect")?.to_string(),
    };
    let group = fleet.group().await?;
    let healthy: BTreeSet<String> = fleet.healthy_targets().await?.into_iter().collect();
    let instance = choose_instance(&group, &healthy, args.instance.as_deref()).map_err(|e| match e {
        NoChoice::Empty => CmdError::Failed {
            message: format!("the Auto Scaling group {asg} has no instance to connect to"),
            hint: Some(
                "`pi-deploy status` shows the group; `pi-deploy logs --instance` shows why instances did not start"
                    .into(),
            ),
            reported: false,
        },
        NoChoice::NotInGroup { asked, instances } => CmdError::input(
            "--instance",
            format!(
                "{asked} is not an instance of the Auto Scaling group {asg} (it has: {})",
                if instances.is_empty() {
                    "none".to_string()
                } else {
                    instances.join(", ")
                }
            ),
            "pass one of those ids, or leave --instance out to let pi-deploy choose",
        ),
    })?;
    aws.clients.dump_call_counts();
    let region = aws.env.region.clone();
    let (command, database) = if args.db {
        let host = recorded(&state, "db-endpoint", "address", "connect --db")?.to_string();
        let port = state
            .resources
            .get("db-endpoint")
            .and_then(|r| r.outputs.get("port"))
            .and_then(|p| p.parse().ok())
            .unwrap_or(DB_PORT);
        let secret_arn = recorded(&state, "db", "secret_arn", "connect --db")?.to_string();
        let local_port = args.local_port.unwrap_or(DB_PORT);
        let user = cfg.database.master_username.clone();
        let client = connect::mariadb_client(&region, &secret_arn, local_port, &user, DB_NAME);
        (
            connect::port_forward(&instance.instance_id, &region, &host, port, local_port),
            Some(Database {
                host,
                port,
                local_port,
                secret_arn,
                user,
                client_command_line: client,
                password_readers_tag: format!("{}={}", crate::core::policy::DB_READER_TAG, aws.env.deployment),
            }),
        )
    } else {
        (connect::shell_session(&instance.instance_id, &region), None)
    };
    let aws_cli = on_path("aws");
    let plugin = on_path(PLUGIN);
    let plan = Plan {
        deployment: aws.env.deployment.clone(),
        region,
        command_line: format!("aws {}", shell_line(&command)),
        command,
        database,
        aws_cli: aws_cli.is_some(),
        session_manager_plugin: plugin.is_some(),
        instance,
    };
    if global.json {
        report::print_json(&plan);
        return Ok(());
    }
    describe(&plan);
    match (aws_cli, plugin) {
        (Some(aws_cli), Some(_)) => run_session(&aws_cli, &plan.command).await,
        (aws_cli, _) => {
            println!("{}", plan.command_line);
            let missing = if aws_cli.is_none() {
                format!("the AWS CLI (`aws`) and its {PLUGIN} are")
            } else {
                format!("the AWS CLI's {PLUGIN} is")
            };
            let mut steps = Vec::new();
            if aws_cli.is_none() {
                steps.push(CLI_INSTALL);
            }
            steps.push(PLUGIN_INSTALL);
            Err(CmdError::Failed {
                message: format!("{missing} not on the PATH: the command above opens the session once installed"),
                hint: Some(steps.join("; then ")),
                reported: false,
            })
        }
    }
}

/// What is about to happen, on stderr (stdout keeps only the command when it is printed).
fn describe(plan: &Plan) {
    let i = &plan.instance;
    let state = if i.healthy {
        format!("{}, healthy", i.lifecycle)
    } else {
        format!("{}, not healthy behind the load balancer", i.lifecycle)
    };
    match &plan.database {
        None => eprintln!(
            "Session Manager shell on {} ({state}) in {}.",
            i.instance_id, plan.region
        ),
        Some(db) => {
            eprintln!(
                "Forwarding localhost:{} through {} ({state}) to {}:{} (Ctrl-C ends it).",
                db.local_port, i.instance_id, db.host, db.port
            );
            eprintln!("In another terminal, the MariaDB client (it reads the password from Secrets Manager itself):");
            eprintln!("  {}", db.client_command_line);
            let (key, value) = db.password_readers_tag.split_once('=').unwrap_or_default();
            eprintln!(
                "The secret's policy gives the password only to the dashboard role and to IAM principals tagged {key}={value} (whose own policy allows secretsmanager:GetSecretValue); an administrator tags yours once, e.g. `aws iam tag-role --role-name YOUR_ROLE --tags Key={key},Value={value}`."
            );
        }
    }
}

/// Run `aws ...` in this terminal and wait for it. Ctrl-C belongs to the session (the AWS
/// CLI ends a port forward on it): pi-deploy only waits.
async fn run_session(aws_cli: &Path, argv: &[String]) -> Result<(), CmdError> {
    let mut child = tokio::process::Command::new(aws_cli)
        .args(argv)
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| CmdError::Failed {
            message: format!("could not start {}: {e}", aws_cli.display()),
            hint: Some(CLI_INSTALL.into()),
            reported: false,
        })?;
    // Holding a receiver keeps the first Ctrl-C from ending pi-deploy (signals.rs): it goes
    // to the AWS CLI too, which ends a port forward on it; a second one exits at once.
    let _ctrl_c = super::signals::subscribe();
    let status = child.wait().await;
    match status {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(CmdError::Failed {
            message: format!("the session ended with {s}"),
            hint: Some(
                "the AWS CLI printed why above; the instance needs the SSM agent and a route to Systems Manager (the VPC endpoints or the NAT)"
                    .into(),
            ),
            reported: false,
        }),
        Err(e) => Err(CmdError::Failed {
            message: format!("waiting for the session: {e}"),
            hint: None,
            reported: false,
        }),
    }
}
