//! The `onex-runtime-host` command line: argument parsing and one module per subcommand.

mod fsm;
mod http_client;
mod logging;
mod progress;
mod run;
mod send;
mod stamp;
mod validate;
mod verify;

pub use logging::{LOG_ENV, LogFormat, LoggingError, init_logging};
pub use run::RunArgs;
pub use send::SendArgs;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// ONEX runtime host.
#[derive(Debug, Parser)]
#[command(name = "onex-runtime-host", version, about = "Contract-driven runtime host for infrastructure integration")]
pub struct Cli {
    /// Log line format on stderr (level filter: the ONEX_LOG variable, default `info`).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve: load the contracts, start handlers, consume the bus and answer the admin API until
    /// SIGTERM/SIGINT; then drain in-flight work and exit 0. SIGHUP reloads the contracts.
    Run(RunArgs),
    /// Check contracts (files or directories); lists every error with file:line:column.
    Validate {
        /// Contract files or directories.
        #[arg(default_value = "contracts")]
        paths: Vec<PathBuf>,
        /// Strict: every warning is an error (unknown keys, unbound handlers, constructs that
        /// fail only when used). For contracts written for this runtime; CI checks the bundled
        /// ones this way.
        #[arg(long, alias = "deny-warnings")]
        strict: bool,
    },
    /// Stamp files in place (BLAKE3 metadata stamp); binary files get a hash-only stamp and are
    /// left unchanged.
    Stamp {
        /// Files to stamp.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Write the stamped content of the one file to stdout instead of replacing it.
        #[arg(long)]
        stdout: bool,
        /// Stamp form.
        #[arg(long, value_enum, default_value_t = CliStampFormat::Lightweight)]
        format: CliStampFormat,
        /// Author recorded in the stamp.
        #[arg(long)]
        author: Option<String>,
        /// Version label recorded in the stamp.
        #[arg(long = "label")]
        label: Option<String>,
    },
    /// Verify stamps: exit 0 when every file is valid, 1 when any is modified, missing,
    /// malformed or unreadable.
    Verify {
        /// Files to verify.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print a JSON array of verdicts.
        #[arg(long)]
        json: bool,
    },
    /// Draw the state machine of a reducer contract (or a bare FSM file).
    Fsm {
        /// Output format.
        #[arg(long, value_enum, default_value_t = DiagramFormat::Mermaid)]
        format: DiagramFormat,
        /// The contract file.
        contract: PathBuf,
    },
    /// Post one envelope to a running host's admin API and print the reply: exit 0 on success,
    /// 1 on a failed reply, 2 on usage or connection errors.
    Send(SendArgs),
}

/// Diagram formats of `fsm`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DiagramFormat {
    /// Mermaid `stateDiagram-v2`.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// Stamp forms of `stamp`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CliStampFormat {
    /// One line at the top (after a shebang).
    Lightweight,
    /// A metadata block at the end.
    Rich,
    /// Hash only; the file is not changed.
    HashOnly,
}

impl From<CliStampFormat> for onex_core::stamp::StampFormat {
    fn from(f: CliStampFormat) -> Self {
        match f {
            CliStampFormat::Lightweight => Self::Lightweight,
            CliStampFormat::Rich => Self::Rich,
            CliStampFormat::HashOnly => Self::HashOnly,
        }
    }
}

/// Runs the parsed command line; the return value is the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    if let Err(e) = init_logging(cli.log_format) {
        let _ = writeln!(std::io::stderr(), "error: {e}");
        return ExitCode::from(2);
    }
    match cli.command {
        Command::Validate { paths, strict } => validate::run(&paths, strict),
        Command::Fsm { format, contract } => fsm::run(format, &contract),
        Command::Stamp { files, stdout, format, author, label } => {
            stamp::run(stamp::StampArgs { files, stdout, format: format.into(), author, label })
        }
        Command::Verify { files, json } => verify::run(&files, json),
        Command::Send(args) => send::run(args),
        Command::Run(args) => run::run(args),
    }
}
