//! `digest send`: the arguments into a `SendRequest`, the outcome onto the
//! terminal.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;

use super::{exit_code, print_send_outcome, SendArgs};
use dailydigest::pipeline::{Pipeline, SendRequest};

pub(super) fn send(mut pipeline: Pipeline, args: SendArgs) -> anyhow::Result<ExitCode> {
    let request = SendRequest {
        date: args.edition.date.date,
        inputs: pipeline.inputs(&args.edition.inputs),
        smtp: args.smtp,
        dry_run: args.dry_run,
        limit: args.limit,
        force: args.force,
    };
    let outcome = pipeline.send(&request)?;
    print_send_outcome(&outcome);
    if let (true, Some(summary)) = (args.json, outcome.summary()) {
        let mut out = io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, summary).context("writing the run summary")?;
        writeln!(out)?;
    }
    Ok(ExitCode::from(exit_code(outcome.verdict())))
}
