use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory, Parser};
use pi_deploy::cli::{Cli, Command};
use pi_deploy::commands::{self, CmdError};
use pi_deploy::core::event::EventSink;
use pi_deploy::ui::{HumanSink, JsonSink, Verbosity};

fn init_logging(verbose: u8) {
    // Only pi-deploy's own spans get louder with -v: the SDK's debug logs can echo request
    // bodies, and a request body may carry the licence.
    let ours = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::new(format!("warn,pi_deploy={ours}"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn report(e: &CmdError, color: bool) {
    let red = |s: &str| {
        if color {
            format!("\x1b[31;1m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    };
    match e {
        CmdError::Status(_) => {}
        CmdError::Input(errors) => {
            for err in errors {
                eprintln!("{} {}: {}\n  fix: {}", red("error:"), err.field, err.problem, err.fix);
            }
            eprintln!("nothing was created or changed");
        }
        CmdError::Refused { message, hint }
        | CmdError::Failed {
            message,
            hint,
            reported: false,
        } => {
            eprintln!("{} {message}", red("error:"));
            if let Some(h) = hint {
                eprintln!("  hint: {h}");
            }
        }
        CmdError::Failed {
            hint, reported: true, ..
        } => {
            if let Some(h) = hint {
                eprintln!("  hint: {h}");
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let g = &cli.global;
    init_logging(g.verbose);
    let color =
        !g.no_color && std::env::var_os("NO_COLOR").is_none() && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let verbosity = if g.quiet {
        Verbosity::Quiet
    } else if g.verbose > 0 {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    };
    let events: Arc<dyn EventSink> = if g.json {
        Arc::new(JsonSink)
    } else {
        Arc::new(HumanSink::new(verbosity, color))
    };
    // Commands that need neither AWS nor a runtime.
    let local = match &cli.command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut Cli::command(), "pi-deploy", &mut std::io::stdout());
            Some(Ok(()))
        }
        Command::Outputs => Some(commands::outputs::run(g)),
        Command::ForceUnlock(args) => Some(commands::force_unlock::run(g, args)),
        _ => None,
    };
    if let Some(result) = local {
        return finish(result, color);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        // Ctrl-C and SIGTERM alike, from the start of the run (commands::signals).
        commands::signals::install();
        match &cli.command {
            Command::Up(args) => commands::up::run(g, args, events).await,
            Command::Destroy(args) => commands::destroy::run(g, args, events).await,
            Command::Upgrade(args) => commands::upgrade::run(g, args, events).await,
            Command::Plan(args) => commands::plan::run(g, args, events).await,
            Command::Status => commands::status::run(g, events).await,
            Command::State(cmd) => commands::state::run(g, cmd).await,
            Command::Sideload(args) => commands::sideload::run(g, args).await,
            Command::Connect(args) => commands::connect::run(g, args).await,
            Command::Logs(args) => commands::logs::run(g, args).await,
            Command::Snapshot(args) => commands::snapshot::run(g, args, events).await,
            Command::Restore(args) => commands::restore::run(g, args, events).await,
            Command::Outputs | Command::Completions { .. } | Command::ForceUnlock(_) => {
                unreachable!("handled above")
            }
        }
    });
    finish(result, color)
}

fn finish(result: Result<(), CmdError>, color: bool) -> ExitCode {
    match commands::stopped_by_fence(result) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            report(&e, color);
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
