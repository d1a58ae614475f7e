//! The command line: parses arguments, validates them into a [`JobSpec`], calls the library
//! and prints. The only module that writes to the terminal.
//!
//! Exit codes: 0 success, 1 the command failed for a reason other than its input (the job
//! store, the local store or a file could not be used), 2 bad usage or bad input. Runs
//! add theirs (`run.rs`: 3 job failed or cancelled, 75 time box reached, 130 interrupted)
//! and sweeps theirs (`sweep.rs`: 4 inventory too old, 5 sweep busy).

mod args;
mod demo;
mod job;
mod keys;
mod logging;
mod output;
mod run;
mod serve;
mod store;
mod sweep;

use std::process::ExitCode;

use clap::Parser;

pub use args::Cli;
use args::Command;

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

    /// The end of a command whose output already said why: exit with `code` (0 is
    /// success), printing nothing more.
    pub fn exit(code: u8) -> CliResult {
        match code {
            0 => Ok(()),
            code => Err(CliError {
                code,
                message: String::new(),
            }),
        }
    }

    /// A manifest, listing or report on S3 that failed, after `what` (the option): bad
    /// input when the location does not work, a failure when the network or server did.
    pub fn s3_files(what: &str, e: crate::targets::s3::files::FilesError) -> Self {
        use crate::targets::s3::files::FilesError;
        match e {
            FilesError::Input(m) => CliError::input(format!("{what} {m}")),
            FilesError::Failed(m) => CliError::failed(format!("{what} {m}")),
        }
    }
}

impl From<crate::job::JobStoreError> for CliError {
    fn from(e: crate::job::JobStoreError) -> Self {
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
    logging::init(cli.log_format);
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
        Command::Store(args) => store::run(&args.store, args.command),
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
        Command::Sweep(args) => sweep::run(&cli.db, *args).await,
    }
}
