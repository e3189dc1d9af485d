//! Command-line types. Shared flags are global so they can go before or after the command.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::core::executor::Limits;

#[derive(Debug, Parser)]
#[command(
    name = "pi-deploy",
    version,
    about = "Deploy the Panintelligence dashboard on AWS by calling the AWS APIs directly",
    long_about = "Deploy the Panintelligence dashboard on AWS by calling the AWS APIs directly: \
                  `up` builds the whole architecture (resuming where a previous run stopped), \
                  `plan` shows what `up` would do, `status` compares the deployment with AWS, \
                  `outputs` prints its URL and ids, `upgrade` swaps the instances to a new AMI without \
                  downtime, `destroy` removes it in reverse order. The state lives in a local directory \
                  or, for a team, in S3 (--state s3://BUCKET/PREFIX; `state init`, `state push`, \
                  `state pull`, `state history`, `force-unlock`). Day to day: `sideload` puts files on the \
                  dashboard's file system and says what became of each, `connect` opens a shell on an \
                  instance or a tunnel to the database, `logs` shows the side-loading Lambda's log and the \
                  instances' console output, `snapshot` takes (and lists) a DB snapshot and a backup of \
                  the file system.\n\n\
                  Credentials and region come from the standard AWS environment (AWS_PROFILE, \
                  `aws sso login`, AWS_REGION, AWS_ENDPOINT_URL), overridable with --region.",
    after_help = "Examples:\n  \
                  pi-deploy plan --deployment pi-prod --ami ami-0123456789abcdef0\n  \
                  pi-deploy up --deployment pi-prod --ami ami-0123456789abcdef0 --certificate-arn arn:aws:acm:...\n  \
                  pi-deploy status --deployment pi-prod\n  \
                  pi-deploy outputs --deployment pi-prod --json\n  \
                  pi-deploy upgrade --deployment pi-prod --ami ami-0fedcba9876543210\n  \
                  pi-deploy sideload ./logo.png ./brand --to images --deployment pi-prod\n  \
                  pi-deploy connect --db --deployment pi-prod\n  \
                  pi-deploy logs --since 30m --follow --deployment pi-prod\n  \
                  pi-deploy snapshot --label before-upgrade --deployment pi-prod\n  \
                  pi-deploy destroy --deployment pi-prod --yes\n  \
                  pi-deploy up --deployment pi-prod --state s3://my-team-pi-state/pi --ami ami-0123456789abcdef0\n\n\
                  Exit codes: 0 done, 1 failed (or `status` found problems), 2 bad input, 3 refused."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Config file (TOML). Default: ./pi-deploy.toml when it exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Deployment name; every AWS name and tag derives from it [default: pi].
    #[arg(long, short = 'd', global = true)]
    pub deployment: Option<String>,
    /// AWS region [default: from the config file, then AWS_REGION / the profile].
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Where the state lives: s3://BUCKET/PREFIX (shared by a team: a lock object and
    /// compare-and-swap writes) or a local directory [default: `[state] url` of the config, else
    /// the directory `state`].
    #[arg(long, global = true, value_name = "URL|DIR")]
    pub state: Option<String>,
    /// Local directory holding the state files [default: state]; for `state push` / `state pull`,
    /// the local side.
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Machine-readable stdout: one JSON object per event (NDJSON) for up, upgrade, destroy,
    /// snapshot and logs, one JSON document for plan, status, outputs, sideload, connect and
    /// snapshot --list.
    #[arg(long, global = true)]
    pub json: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y', global = true)]
    pub yes: bool,
    /// More detail (-v, -vv).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors and the final result.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// No colours (also honoured: NO_COLOR).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// How many resources `up` and `destroy` work on at once, at most; lower it for accounts with
    /// tight API rate limits (1 = one at a time, in dependency order).
    #[arg(long, global = true, value_name = "N", default_value_t = Limits::default().concurrency, value_parser = parse_max_parallel)]
    pub max_parallel: usize,
}

/// The executor's limits of `up` and `destroy`: `--max-parallel` resources at once, the
/// default per-service caps.
impl From<&GlobalArgs> for Limits {
    fn from(global: &GlobalArgs) -> Self {
        Limits {
            concurrency: global.max_parallel,
            ..Limits::default()
        }
    }
}

/// `--max-parallel`: a whole number of at least 1 (0 would never start anything).
fn parse_max_parallel(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "it must be a whole number of at least 1\n  \
             fix: pass 1 or more (1 works on one resource at a time), or leave --max-parallel out for the default of {}",
            Limits::default().concurrency
        )),
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Build every resource of the architecture; creates only what is missing.
    #[command(
        after_help = "Run again, it brings the live deployment to the config: settings changed in place, \
                            what the config no longer wants deleted. A change to what the instances boot with \
                            (--ami, instance_type, root_volume_gib, key_pair, the licence) rolls them blue/green \
                            as `upgrade` does; `plan` shows it first. A change that needs a new resource (a major \
                            engine_version: a DB parameter group of the new family) is made create-before-destroy: \
                            the new one first, everything moved onto it, then the old one deleted; the database, \
                            the file system and the bucket are never replaced. A roll an interrupted run left is finished \
                            by the next `up` (rolled back first when the config now asks for other launch \
                            settings); an interrupted `upgrade` is finished by `up` only when it asks for the same \
                            image, else refused: finish it with `upgrade --ami`, or `upgrade --abort`.\n\n\
                            Examples:\n  \
                            pi-deploy up --deployment pi --ami ami-0123456789abcdef0\n  \
                            pi-deploy up --deployment pi --ami ami-0fedcba9876543210   # a new image: a roll"
    )]
    Up(UpArgs),
    /// Show what `up` would do, resource by resource and attribute by attribute; changes nothing.
    #[command(
        after_help = "Actions: create, adopt (exists in AWS, not recorded), update (in place), roll (new \
                            instances), replace (-/+: a new resource, created before the old one is deleted), delete (no \
                            longer in the config). Unchanged \
                            resources are listed with -v. Only read-only AWS calls are made. A change AWS cannot \
                            make exits 2 naming the config field.\n\n\
                            Exit status: 0 (also with changes pending) unless --detailed-exitcode: then 0 means \
                            no changes and 4 changes pending; 1 failed, 2 bad input, 3 refused as always.\n\n\
                            Examples:\n  \
                            pi-deploy plan --deployment pi --ami ami-0123456789abcdef0\n  \
                            pi-deploy plan --deployment pi --ami ami-0123456789abcdef0 --json\n  \
                            pi-deploy plan --deployment pi --detailed-exitcode || echo \"changes pending (exit $?)\""
    )]
    Plan(PlanArgs),
    /// Compare the deployment with AWS: live state, drift, leaked resources, target health, Lambda errors.
    #[command(
        after_help = "Exit status: 0 when everything is healthy and in sync, 1 otherwise.\n\n\
                            Examples:\n  \
                            pi-deploy status --deployment pi\n  \
                            pi-deploy status --deployment pi --json"
    )]
    Status,
    /// Print the deployment's outputs (dashboard URL, ids, ARNs) from the state; no AWS call (one S3 read for an S3 state).
    #[command(after_help = "Examples:\n  \
                            pi-deploy outputs --deployment pi\n  \
                            pi-deploy outputs --deployment pi --json | jq -r .vpc_id")]
    Outputs,
    /// Replace every dashboard instance with one on a new AMI, blue/green, without downtime.
    #[command(
        after_help = "Each old instance stops taking traffic only after its replacement is InService and \
                            healthy behind the load balancer. If a new instance is not healthy within \
                            scaling.upgrade_health_timeout_seconds, the upgrade rolls back and exits 1. An interrupted \
                            upgrade resumes when run again with the same --ami, or is rolled back with --abort. \
                            Stopped after an old instance left the load balancer, --abort registers it again and \
                            waits until it is healthy before terminating its replacement (or keeps the replacement \
                            if the old instance was already terminated): a healthy target at every moment.\n\n\
                            `up --ami` makes the same swap (and rolls any other change to what the instances \
                            boot with); `upgrade` is the explicit name: it asks first, changes nothing else, and \
                            has --abort (which also rolls back a roll an interrupted `up` left). An interrupted \
                            upgrade is also finished by an `up` that asks for the same image. An image an upgrade replaced is not brought back by a later `up` whose \
                            config still names it: go back with `upgrade --ami <old image>`.\n\n\
                            Examples:\n  \
                            pi-deploy upgrade --deployment pi --ami ami-0fedcba9876543210\n  \
                            pi-deploy upgrade --deployment pi --ami ami-0fedcba9876543210 --yes --json\n  \
                            pi-deploy upgrade --deployment pi --abort"
    )]
    Upgrade(UpgradeArgs),
    /// Delete everything the deployment created, in reverse order.
    #[command(after_help = "Example:\n  pi-deploy destroy --deployment pi --skip-final-snapshot --yes")]
    Destroy(DestroyArgs),
    /// Manage where the state lives: create the S3 state bucket, move a state between a local
    /// directory and S3, list and fetch earlier versions.
    #[command(
        subcommand,
        after_help = "Examples:\n  \
                      pi-deploy state init --state s3://my-team-pi-state/pi\n  \
                      pi-deploy state push --deployment pi --state s3://my-team-pi-state/pi\n  \
                      pi-deploy state history --deployment pi --state s3://my-team-pi-state/pi"
    )]
    State(StateCommand),
    /// Remove a deployment's lock that a killed run left behind (never done automatically).
    #[command(
        after_help = "LOCK_ID is the lock id that the refused run printed. An S3 lock that does not look stale \
                            (refreshed in the last 2 minutes, or its process alive on this machine) is removed only \
                            with --yes. A local lock of a live process on this machine is never removed: the kernel \
                            releases it when that process ends.\n\n\
                            Examples:\n  \
                            pi-deploy force-unlock 3f2b6c1e-4c1d-4f0e-9a43-0d5c7f1b2a9e --deployment pi --state s3://my-team-pi-state/pi\n  \
                            pi-deploy force-unlock 3f2b6c1e-4c1d-4f0e-9a43-0d5c7f1b2a9e --deployment pi --json"
    )]
    ForceUnlock(ForceUnlockArgs),
    /// Upload files for the dashboard (themes, images, Excel data, SVGs, keys) and say what the
    /// side-loading Lambda did with each.
    #[command(
        after_help = "Each file goes to the resources bucket under the folder, and the side-loading \
                            Lambda copies it onto the dashboard's file system (/var/panintelligence/<folder>/...). \
                            A file keeps its name; a directory keeps its name and its tree (like `cp -r DIR \
                            images/`). Names the Lambda would refuse (`..`, backslashes, control characters, \
                            not UTF-8) are listed as rejected and never sent. Files already copied with the same \
                            content are not sent again (--force sends them anyway). Files of 8 MiB or more go \
                            as multipart uploads. Then it waits for the Lambda's outcome of each object and prints a \
                            receipt: copied, unchanged, rejected (and why), failed (with the Lambda's error \
                            line), or pending when --wait ran out.\n\n\
                            With --delete, the PATHs are names inside the folder: each object (or every object \
                            under a name that is a directory) is deleted, and so is its file on the file system.\n\n\
                            Exit status: 0 when every object ended as asked, 1 otherwise, 2 bad input (nothing \
                            sent), 3 refused (no state file, or --delete without --yes and no terminal).\n\n\
                            Examples:\n  \
                            pi-deploy sideload ./logo.png ./brand --to images --deployment pi\n  \
                            pi-deploy sideload ./acme-theme --to themes --json\n  \
                            pi-deploy sideload brand/old-logo.png brand/2025 --to images --delete --yes"
    )]
    Sideload(SideloadArgs),
    /// Take a manual DB snapshot and an AWS Backup recovery point of the file system, or list them.
    #[command(
        after_help = "Takes a manual snapshot of the deployment's database (CreateDBSnapshot) and an on-demand \
                            AWS Backup job of its file system (into the account's `Default` vault, with a role \
                            `<deployment>-backup-role` that AWS Backup assumes, created on first use), tags both \
                            with the deployment, a name and the label, and waits until both are complete. The \
                            name is `<deployment>-snap[-<label>]-<YYYYMMDD-HHMMSS>` (UTC). A label names one \
                            snapshot: asking again for a label that exists reports it and takes nothing. A run \
                            that was interrupted is finished by running the same command again (same label), \
                            never duplicated. Snapshots cost storage (RDS snapshot and AWS Backup EFS storage \
                            per GiB-month) until you delete them: `destroy` keeps them.\n\n\
                            --list prints the deployment's DB snapshots and the file system's recovery points, \
                            newest first.\n\n\
                            Exit status: 0 done, 1 failed (run it again to resume), 2 bad input (nothing \
                            created), 3 refused (no state, the database or file system not available, another \
                            snapshot in progress).\n\n\
                            Examples:\n  \
                            pi-deploy snapshot --deployment pi --label before-upgrade\n  \
                            pi-deploy snapshot --no-files --json\n  \
                            pi-deploy snapshot --list\n  \
                            pi-deploy snapshot --list --json | jq -r '.[] | select(.label == \"before-upgrade\") | .id'"
    )]
    Snapshot(SnapshotArgs),
    /// Restore the database into a new instance (a snapshot or a point in time) and switch the
    /// deployment to it; --finish deletes the old instance, --abort switches back. --files
    /// restores the file system (or items of it) from an AWS Backup recovery point.
    #[command(
        after_help = "Restores into a NEW DB instance `<deployment>-db-r<YYYYMMDD-HHMMSS>` with the blueprint's \
                            subnet group, security group, parameter group, class, Multi-AZ, deletion protection and \
                            an RDS-managed master secret, waits until it is available, then switches the deployment \
                            to it: the endpoint parameter `/<deployment>/db-endpoint`, the secret the instances read \
                            (a new launch template version) and a blue/green roll of the instances, one at a time \
                            behind the load balancer, as `upgrade` does. The old instance is kept, no longer read by \
                            any instance, until `restore --finish` deletes it (a final snapshot unless \
                            --skip-final-snapshot) or `restore --abort` switches back to it and deletes the restored \
                            one. A run that was interrupted is finished by running the same command again; \
                            `destroy` deletes both instances.\n\n\
                            --files RECOVERY_POINT_ARN --path /var/panintelligence/themes (up to 5 paths, from the \
                            file system's root) restores those items with AWS Backup into the SAME file system, \
                            under a new directory `aws-backup-restore_<time>` at its root (/mnt/efs on the \
                            instances; the live files are never overwritten: copy back what you need from there). It reads the vault's access policy first and refuses a \
                            statement that denies backup:StartRestoreJob, naming it; the role \
                            `<deployment>-backup-role` gets the permission to restore into this file system only. \
                            An interrupted run waits for the same job when run again.\n\n\
                            --files RECOVERY_POINT_ARN without --path restores the whole file system into a NEW \
                            file system (encrypted as the old one), tagged as the deployment's, with a mount target \
                            in each subnet and the access point, then switches the deployment to it as a database \
                            restore does: the records, the Lambda's mount and a blue/green roll of the instances. \
                            The old file system is kept until `restore --finish` deletes it (its recovery points \
                            stay in their vault) or `restore --abort` switches back and deletes the new one. \
                            --finish and --abort act on every restore in progress, the database's first.\n\n\
                            Exit status: 0 done, 1 failed (run it again to resume, or --abort), 2 bad input (nothing \
                            created: a time not RFC 3339 or in the future, an unknown snapshot or recovery point, \
                            more than 5 paths or a relative one), 3 refused (no state, another restore or an upgrade \
                            in progress, a vault policy that denies the restore).\n\n\
                            Examples:\n  \
                            pi-deploy restore --db-snapshot pi-snap-before-upgrade-20261206-210509 --yes\n  \
                            pi-deploy restore --db-time 2026-12-01T10:00:00Z\n  \
                            pi-deploy restore --latest --json\n  \
                            pi-deploy restore --files arn:aws:backup:eu-west-1:123456789012:recovery-point:1EB3B5E7 --path /var/panintelligence/themes\n  \
                            pi-deploy restore --files arn:aws:backup:eu-west-1:123456789012:recovery-point:1EB3B5E7 --yes\n  \
                            pi-deploy restore --finish\n  \
                            pi-deploy restore --abort"
    )]
    Restore(RestoreArgs),
    /// Open a shell on a dashboard instance through Session Manager, or forward a local port
    /// to the database.
    #[command(
        after_help = "No SSH, no key pair, no open port: the AWS CLI's `aws ssm start-session` with its \
                            Session Manager plugin. Without --instance, a healthy InService instance of the \
                            Auto Scaling group is chosen. When the AWS CLI or the plugin is missing, the exact \
                            command is printed with how to install what is missing (exit 1).\n\n\
                            --db forwards localhost:--local-port through the instance to the database \
                            (AWS-StartPortForwardingSessionToRemoteHost) and prints a MariaDB client command \
                            line that reads the password from Secrets Manager itself: the password is never \
                            printed. --json prints the commands and runs nothing.\n\n\
                            Exit status: 0 when the session ended well (or with --json), 1 when it failed or \
                            the AWS CLI or its plugin is missing, 2 bad input (an --instance that is not one of \
                            the group's), 3 refused (no state).\n\n\
                            Examples:\n  \
                            pi-deploy connect --deployment pi\n  \
                            pi-deploy connect --instance i-0123456789abcdef0\n  \
                            pi-deploy connect --db --local-port 13306\n  \
                            pi-deploy connect --db --json"
    )]
    Connect(ConnectArgs),
    /// Show the side-loading Lambda's log events, or the instances' console output.
    #[command(
        after_help = "Without --instance: the Lambda's log group (one line per object it copied, \
                            skipped, rejected or failed), since --since (default 1h). With --instance ID: \
                            that instance's console output, where a failing user data shows first (an \
                            instance the group already replaced still counts while EC2 lists it); --instance \
                            without an ID shows every instance of the deployment. --follow keeps printing \
                            what is new until Ctrl-C (exit 0). --json prints one JSON object per event or output.\n\n\
                            Exit status: 0 ok, 1 failed (e.g. no log group yet), 2 bad input (--since, an \
                            --instance that is not the deployment's), 3 refused (no state).\n\n\
                            Examples:\n  \
                            pi-deploy logs --deployment pi\n  \
                            pi-deploy logs --since 2d --json | jq -r .message\n  \
                            pi-deploy logs --follow\n  \
                            pi-deploy logs --instance i-0123456789abcdef0\n  \
                            pi-deploy logs --instance"
    )]
    Logs(LogsArgs),
    /// Print a shell completion script to stdout.
    #[command(after_help = "Examples:\n  \
                            pi-deploy completions bash > ~/.local/share/bash-completion/completions/pi-deploy\n  \
                            pi-deploy completions zsh > \"${fpath[1]}/_pi-deploy\"\n  \
                            pi-deploy completions fish > ~/.config/fish/completions/pi-deploy.fish")]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
    /// Create the S3 state bucket (versioned, encrypted, TLS-only, Block Public Access), or
    /// check an existing one and say what it lacks.
    #[command(after_help = "Examples:\n  \
                            pi-deploy state init --state s3://my-team-pi-state/pi --region eu-west-1\n  \
                            pi-deploy state init --state s3://my-team-pi-state --json")]
    Init,
    /// Copy the local state (--state-dir, default `state`) to S3 byte for byte, holding both locks.
    #[command(
        after_help = "Refused when S3 holds another lineage, or a serial as new as the local one \
                            (unless --force).\n\n\
                            Examples:\n  \
                            pi-deploy state push --deployment pi --state s3://my-team-pi-state/pi\n  \
                            pi-deploy state push --deployment pi --state s3://my-team-pi-state/pi --state-dir old-state --force"
    )]
    Push(PushArgs),
    /// Copy the S3 state (or one earlier version of it) to the local directory or a file, byte for byte.
    #[command(after_help = "Examples:\n  \
                            pi-deploy state pull --deployment pi --state s3://my-team-pi-state/pi\n  \
                            pi-deploy state pull --deployment pi --state s3://my-team-pi-state/pi --version 3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY --out pi-old.json\n  \
                            pi-deploy state pull --deployment pi --state s3://my-team-pi-state/pi --out -")]
    Pull(PullArgs),
    /// List the earlier versions of the S3 state, newest first.
    #[command(after_help = "Examples:\n  \
                            pi-deploy state history --deployment pi --state s3://my-team-pi-state/pi\n  \
                            pi-deploy state history --deployment pi --state s3://my-team-pi-state/pi --limit 0 --json")]
    History(HistoryArgs),
}

#[derive(Debug, Clone, Args)]
pub struct PushArgs {
    /// Allow a serial that is not newer than the one in S3 (putting back an earlier version);
    /// the lineage must still match.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PullArgs {
    /// The S3 version id to fetch (see `state history`) instead of the current one.
    #[arg(long, value_name = "ID")]
    pub version: Option<String>,
    /// Write to this file (`-`: stdout) instead of the local state directory.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Allow replacing a local state whose serial is as new or newer (bringing an earlier version back).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Clone, Args)]
pub struct HistoryArgs {
    /// Show at most this many versions, newest first (0: all).
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

#[derive(Debug, Clone, Args)]
pub struct ForceUnlockArgs {
    /// The lock id the refused run named.
    pub lock_id: String,
}

#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    /// AMI id of the Panintelligence Marketplace image.
    #[arg(long)]
    pub ami: Option<String>,
    /// ACM certificate ARN for HTTPS on the load balancer.
    #[arg(long)]
    pub certificate_arn: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub up: UpArgs,
    /// Exit 4 when changes are pending and 0 when there are none (for scripts).
    #[arg(long)]
    pub detailed_exitcode: bool,
}

#[derive(Debug, Clone, Args)]
pub struct UpgradeArgs {
    /// AMI id of the new Panintelligence image.
    #[arg(long, required_unless_present = "abort", conflicts_with = "abort")]
    pub ami: Option<String>,
    /// Roll back an upgrade that an interrupted or failed run left in progress.
    #[arg(long)]
    pub abort: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SnapshotArgs {
    /// A name for this snapshot (lowercase letters, digits, hyphens; e.g. before-upgrade).
    #[arg(long, value_name = "LABEL", conflicts_with = "list")]
    pub label: Option<String>,
    /// Only the database: no AWS Backup job of the file system.
    #[arg(long, conflicts_with = "list")]
    pub no_files: bool,
    /// List the deployment's DB snapshots and file system recovery points, newest first.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["db_snapshot", "db_time", "latest", "finish", "abort", "files"])))]
pub struct RestoreArgs {
    /// Restore from this DB snapshot (its identifier; `snapshot --list` shows them).
    #[arg(long, value_name = "ID")]
    pub db_snapshot: Option<String>,
    /// Restore the current instance to this point in time (RFC 3339, e.g. 2026-12-01T10:00:00Z).
    #[arg(long, value_name = "TIME")]
    pub db_time: Option<String>,
    /// Restore the current instance to its latest restorable time.
    #[arg(long)]
    pub latest: bool,
    /// Delete the old instance the restore kept (a final snapshot first).
    #[arg(long)]
    pub finish: bool,
    /// Switch back to the old instance and delete the restored one.
    #[arg(long)]
    pub abort: bool,
    /// With --finish or --abort: delete without a final snapshot.
    #[arg(long)]
    pub skip_final_snapshot: bool,
    /// Restore the file system from this AWS Backup recovery point (its ARN; `snapshot --list`
    /// shows them): with --path, those items into the same file system; without, the whole
    /// file system into a new one, the deployment switched to it.
    #[arg(long, value_name = "RECOVERY_POINT_ARN")]
    pub files: Option<String>,
    /// With --files: an absolute path inside the file system to restore (up to 5; repeat the flag).
    #[arg(long = "path", value_name = "PATH", requires = "files")]
    pub paths: Vec<String>,
}

#[derive(Debug, Clone, Args)]
pub struct DestroyArgs {
    /// Do not take a final snapshot of the database.
    #[arg(long)]
    pub skip_final_snapshot: bool,
    /// Turn the database's deletion protection off first (required when it is on).
    #[arg(long)]
    pub disable_deletion_protection: bool,
}

/// The folders of the resources bucket the side-loading Lambda copies from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Folder {
    Themes,
    Images,
    ExcelData,
    Svg,
    Keys,
}

impl Folder {
    pub fn as_str(self) -> &'static str {
        match self {
            Folder::Themes => "themes",
            Folder::Images => "images",
            Folder::ExcelData => "excel-data",
            Folder::Svg => "svg",
            Folder::Keys => "keys",
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SideloadArgs {
    /// Files and directories to upload; with --delete, names of objects inside the folder.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The folder they go to (on the file system: /var/panintelligence/<folder>/).
    #[arg(long, value_enum, value_name = "FOLDER")]
    pub to: Folder,
    /// Delete the named objects, and so their files on the file system, instead of uploading.
    #[arg(long)]
    pub delete: bool,
    /// Upload files even when the bucket already holds the same content, copied.
    #[arg(long, conflicts_with = "delete")]
    pub force: bool,
    /// How long to wait for the Lambda's outcome of each object (0: do not wait).
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    pub wait: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// The instance (default: a healthy InService instance of the Auto Scaling group).
    #[arg(long, value_name = "ID")]
    pub instance: Option<String>,
    /// Forward a local port through the instance to the database instead of opening a shell.
    #[arg(long)]
    pub db: bool,
    /// With --db: the local port to forward [default: 3306].
    #[arg(long, value_name = "PORT", requires = "db", value_parser = clap::value_parser!(u16).range(1..))]
    pub local_port: Option<u16>,
}

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// How far back the Lambda's events go: 30s, 15m, 1h, 2d, 1w or an RFC 3339 time [default: 1h].
    #[arg(long, value_name = "WHEN", conflicts_with = "instance")]
    pub since: Option<String>,
    /// Keep printing what is new until Ctrl-C.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// The side-loading Lambda's log events (the default).
    #[arg(long, conflicts_with = "instance")]
    pub lambda: bool,
    /// An instance's console output; without an ID, every instance of the deployment.
    #[arg(long, value_name = "ID", num_args = 0..=1, default_missing_value = "")]
    pub instance: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_parallel_defaults_to_the_executor_default_and_refuses_zero() {
        let cli = Cli::try_parse_from(["pi-deploy", "destroy"]).unwrap();
        assert_eq!(cli.global.max_parallel, Limits::default().concurrency);
        let cli = Cli::try_parse_from(["pi-deploy", "up", "--max-parallel", "1"]).unwrap();
        assert_eq!(Limits::from(&cli.global).concurrency, 1);
        for bad in ["0", "-1", "many", ""] {
            let e = Cli::try_parse_from(["pi-deploy", "up", &format!("--max-parallel={bad}")]).unwrap_err();
            assert!(e.to_string().contains("--max-parallel"), "{e}");
            assert!(e.to_string().contains("fix:"), "{e}");
        }
    }

    #[test]
    fn the_day_to_day_commands_parse_their_flags() {
        let cli = Cli::try_parse_from(["pi-deploy", "sideload", "a.png", "dir", "--to", "excel-data"]).unwrap();
        let Command::Sideload(a) = cli.command else { panic!() };
        assert_eq!(
            (a.to.as_str(), a.paths.len(), a.wait, a.delete),
            ("excel-data", 2, 300, false)
        );
        for bad in [
            vec!["pi-deploy", "sideload", "--to", "images"],
            vec!["pi-deploy", "sideload", "a.png"],
            vec!["pi-deploy", "sideload", "a.png", "--to", "excel"],
            vec![
                "pi-deploy",
                "sideload",
                "a.png",
                "--to",
                "images",
                "--delete",
                "--force",
            ],
            vec!["pi-deploy", "connect", "--local-port", "3306"],
            vec!["pi-deploy", "connect", "--db", "--local-port", "0"],
            vec!["pi-deploy", "logs", "--instance", "i-12345678", "--since", "1h"],
            vec!["pi-deploy", "logs", "--instance", "--lambda"],
        ] {
            let e = Cli::try_parse_from(&bad).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{bad:?}");
        }
        let cli = Cli::try_parse_from(["pi-deploy", "logs", "--instance"]).unwrap();
        let Command::Logs(a) = cli.command else { panic!() };
        assert_eq!(a.instance.as_deref(), Some(""));
        let cli = Cli::try_parse_from(["pi-deploy", "connect", "--db", "--local-port", "13306"]).unwrap();
        let Command::Connect(a) = cli.command else { panic!() };
        assert_eq!((a.db, a.local_port), (true, Some(13306)));
    }
}
