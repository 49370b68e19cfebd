//! The `digest` binary: parse arguments, run, map the outcome to an exit code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = dailydigest::cli::Cli::parse();
    dailydigest::cli::init_logging(&cli);
    match dailydigest::cli::run(cli) {
        Ok(code) => code,
        Err(err) => dailydigest::cli::report_error(&err),
    }
}
