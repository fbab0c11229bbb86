//! The `onex-runtime-host` binary: parses the command line and hands over to `onex_infra::cli`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    onex_infra::cli::run(onex_infra::cli::Cli::parse())
}
