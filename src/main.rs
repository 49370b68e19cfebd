//! The `digest` binary: parse arguments, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

mod cli;

fn main() -> ExitCode {
    dailydigest::models::keep_freed_memory();
    let cli = cli::Cli::parse();
    cli::init_logging(&cli);
    match cli::run(cli) {
        Ok(code) => code,
        Err(err) => cli::report_error(&err),
    }
}
