//! The `onex-runtime-host` command line: argument parsing and one module per subcommand.

mod fsm;
mod validate;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// ONEX runtime host.
#[derive(Debug, Parser)]
#[command(name = "onex-runtime-host", version, about = "Contract-driven runtime host for infrastructure integration")]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check contracts (files or directories); lists every error with file:line:column.
    Validate {
        /// Contract files or directories.
        #[arg(default_value = "contracts")]
        paths: Vec<PathBuf>,
        /// Treat warnings as errors.
        #[arg(long)]
        deny_warnings: bool,
    },
    /// Draw the state machine of a reducer contract (or a bare FSM file).
    Fsm {
        /// Output format.
        #[arg(long, value_enum, default_value_t = DiagramFormat::Mermaid)]
        format: DiagramFormat,
        /// The contract file.
        contract: PathBuf,
    },
}

/// Diagram formats of `fsm`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DiagramFormat {
    /// Mermaid `stateDiagram-v2`.
    Mermaid,
    /// Graphviz DOT.
    Dot,
}

/// Runs the parsed command line; the return value is the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Validate { paths, deny_warnings } => validate::run(&paths, deny_warnings),
        Command::Fsm { format, contract } => fsm::run(format, &contract),
    }
}
