//! `digest fetch` and `digest run`: the one command a cron job calls.

use std::io::{self, Write};
use std::process::ExitCode;

use super::{exit_code, print_send_outcome, RunArgs, EXIT_LOCKED};
use dailydigest::pipeline::{Pipeline, RunOutcome, RunRequest};

pub(super) fn fetch(pipeline: &Pipeline, json: bool) -> anyhow::Result<ExitCode> {
    let reports = pipeline.fetch()?;
    if json {
        let mut out = io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &reports)?;
        writeln!(out)?;
    }
    let failed = reports
        .iter()
        .filter(|r| r.status == dailydigest::ingest::feeds::FeedStatus::Failed)
        .count();
    let new: usize = reports.iter().map(|r| r.new_articles).sum();
    eprintln!(
        "fetched {} feeds: {new} new articles, {failed} failed",
        reports.len()
    );
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

pub(super) fn import_bounces(
    pipeline: &Pipeline,
    paths: &[std::path::PathBuf],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let report = pipeline.import_bounces(paths)?;
    if json {
        let mut out = io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
    }
    for u in &report.not_reports {
        eprintln!("left alone: {}: {}", u.location, u.reason);
    }
    for u in &report.unrecognised {
        match &u.moved_to {
            Some(to) => eprintln!(
                "left for a person: {}: {} (moved to {to})",
                u.location, u.reason
            ),
            None => eprintln!("left for a person: {}: {}", u.location, u.reason),
        }
    }
    eprintln!(
        "{} messages: {} permanent failures, {} temporary, {} subscribers marked bounced, {} complaints, {} unsubscribes, {} delivery reports, {} ignored, {} seen before, {} not reports, {} left for a person",
        report.messages,
        report.hard_bounces,
        report.soft_bounces,
        report.bounced,
        report.complaints,
        report.unsubscribes,
        report.delivered,
        report.ignored,
        report.duplicates,
        report.not_reports.len(),
        report.unrecognised.len()
    );
    Ok(if report.unrecognised.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

pub(super) fn run(mut pipeline: Pipeline, args: RunArgs) -> anyhow::Result<ExitCode> {
    let request = RunRequest {
        date: args.date.date,
        smtp: args.smtp,
        force: args.force,
    };
    match pipeline.run(&request)? {
        RunOutcome::Locked(locked) => {
            eprintln!("digest: {locked}");
            Ok(ExitCode::from(EXIT_LOCKED))
        }
        RunOutcome::Ran(ran) => {
            if let Some(outcome) = &ran.send {
                print_send_outcome(outcome);
            }
            let code = exit_code(ran.verdict);
            let (report, json) = pipeline.write_run_report(*ran, code)?;
            if args.json {
                io::stdout().lock().write_all(json.as_bytes())?;
            }
            if let Some(e) = &report.error {
                eprintln!("digest: error: {e}");
            }
            Ok(ExitCode::from(code))
        }
    }
}

/// `digest db copy`: every table into an empty database.
pub(super) fn copy_database(
    config: &dailydigest::config::Config,
    from: Option<dailydigest::config::Database>,
    to: Option<dailydigest::config::Database>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let (from, to, copied) = dailydigest::pipeline::copy_database(
        config,
        from.as_ref(),
        to.as_ref(),
        std::env::var("DIGEST_DB_PASSWORD").ok(),
    )?;
    if json {
        let tables: serde_json::Map<String, serde_json::Value> = copied
            .iter()
            .map(|(t, n)| (t.to_string(), (*n).into()))
            .collect();
        let mut out = io::stdout().lock();
        serde_json::to_writer_pretty(
            &mut out,
            &serde_json::json!({ "from": from.to_string(), "to": to.to_string(), "rows": tables }),
        )?;
        writeln!(out)?;
    }
    let rows: u64 = copied.iter().map(|(_, n)| n).sum();
    eprintln!(
        "copied {rows} rows in {} tables from {from} into {to}",
        copied.len()
    );
    Ok(ExitCode::SUCCESS)
}
