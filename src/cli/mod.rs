//! The command line: parses arguments, validates them into a [`JobSpec`], calls the library
//! and prints. The only module that writes to the terminal.
//!
//! Exit codes: 0 success, 1 the command failed for a reason other than its input (the job
//! store, the local store or a file could not be used), 2 bad usage or bad input.

mod args;
mod demo;
mod job;
mod keys;
mod output;
mod run;
mod serve;
mod store;

use std::process::ExitCode;

use clap::Parser;

pub use args::Cli;
use args::{Command, LogFormat};

/// An error that ends the command, with the exit code it ends with.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    /// Bad usage or bad input: exit code 2.
    pub fn input(message: impl ToString) -> Self {
        CliError {
            code: 2,
            message: message.to_string(),
        }
    }

    /// Anything else that stopped the command: exit code 1.
    pub fn failed(message: impl ToString) -> Self {
        CliError {
            code: 1,
            message: message.to_string(),
        }
    }
}

impl From<crate::job::StoreError> for CliError {
    fn from(e: crate::job::StoreError) -> Self {
        if e.is_user_error() {
            CliError::input(e)
        } else {
            CliError::failed(e)
        }
    }
}

pub type CliResult = Result<(), CliError>;

/// Runs reseal with the process's arguments and returns its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("reseal: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("reseal: {}", e.message);
            }
            ExitCode::from(e.code)
        }
    }
}

async fn run(cli: Cli) -> CliResult {
    match cli.command {
        Command::Job(command) => job::run(&cli.db, command).await,
        Command::Store(command) => store::run(command),
        Command::Keys(args) => keys::run(&args.store, args.command).await,
        Command::Run(args) => run::run_all(&cli.db, *args).await,
        Command::Verify {
            id,
            target,
            concurrency,
            output,
        } => run::verify(&cli.db, &id, &target, concurrency, output).await,
        Command::Demo { dir, objects } => demo::run(&dir, objects).await,
        Command::Serve(args) => serve::run(*args).await,
    }
}

/// Whether log lines are JSON: then progress goes only to the log, not as plain lines.
static JSON_LOGS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

pub(crate) fn json_logs() -> bool {
    JSON_LOGS.get().copied().unwrap_or(false)
}

/// Crates whose trace or debug events carry request headers (SSE-C keys among them), and
/// the most they may log: the SDK's signer (trace) and the s3s service (debug).
const NO_TRACE: [&str; 2] = ["aws_sigv4=debug", "s3s=info"];

fn init_logging(format: LogFormat) {
    let _ = JSON_LOGS.set(matches!(format, LogFormat::Json));
    // JSON logs are for cron and Kubernetes, where progress lines belong in the log.
    let default = match format {
        LogFormat::Text => "warn",
        LogFormat::Json => "warn,reseal=info",
    };
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("RESEAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Secrets never reach a log, whatever RESEAL_LOG asks for.
    for cap in NO_TRACE {
        filter = filter.add_directive(cap.parse().expect("a valid directive"));
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
