//! `digest fetch` and `digest run`: the one command a cron job calls.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use serde::Serialize;

use super::send::send_edition;
use super::{today, EditionArgs, RunArgs, SendArgs};
use crate::config::Config;
use crate::ingest::feeds::{fetch_all, FeedReport};
use crate::mail::RunSummary;
use crate::store::Store;

/// Exit status when another run holds the lock (sysexits' EX_TEMPFAIL: try later).
pub const EXIT_LOCKED: u8 = 75;

fn fetch_feeds(config: &Config, store: &Store) -> anyhow::Result<Vec<FeedReport>> {
    if config.feeds.is_empty() {
        tracing::info!("no feeds configured");
        return Ok(Vec::new());
    }
    let reports = fetch_all(
        store,
        &config.feeds,
        config.tz(),
        Utc::now(),
        std::time::Duration::from_secs(config.fetch_timeout_secs),
        config.feed_failure_threshold,
    )?;
    for r in &reports {
        match &r.error {
            None => tracing::info!(
                "feed {}: {} ({} new articles)",
                r.name,
                r.status,
                r.new_articles
            ),
            Some(e) => tracing::info!("feed {}: failed: {e}", r.name),
        }
    }
    Ok(reports)
}

/// A feed failure that has lasted `feed_failure_threshold` runs.
fn persistent_failures(config: &Config, reports: &[FeedReport]) -> usize {
    reports
        .iter()
        .filter(|r| r.consecutive_failures >= config.feed_failure_threshold)
        .count()
}

pub(super) fn fetch(config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let store = Store::open(&config.db)?;
    let reports = fetch_feeds(config, &store)?;
    if json {
        let mut out = io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, &reports)?;
        writeln!(out)?;
    }
    let failed = reports.iter().filter(|r| r.status == "failed").count();
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

/// What `digest run` did, written to `run_report` (and stdout with --json).
#[derive(Serialize)]
struct RunReport {
    started_at: String,
    finished_at: String,
    date: String,
    exit_code: u8,
    feeds: Vec<FeedReport>,
    send: Option<RunSummary>,
    error: Option<String>,
}

/// One sending run at a time: an advisory lock on `<db>.lock`, released by
/// the kernel when the process ends, however it ends. `None` (after saying
/// so) when another run holds it.
pub(super) fn acquire_lock(config: &Config) -> anyhow::Result<Option<std::fs::File>> {
    let lock_path = {
        let mut p = config.db.clone().into_os_string();
        p.push(".lock");
        std::path::PathBuf::from(p)
    };
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening the lock file {}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => Ok(Some(lock)),
        Err(std::fs::TryLockError::WouldBlock) => {
            eprintln!(
                "digest: another run holds {}; not running",
                lock_path.display()
            );
            Ok(None)
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", lock_path.display()))
        }
    }
}

pub(super) fn run(config: &Config, args: RunArgs) -> anyhow::Result<ExitCode> {
    let started_at = Utc::now();
    let date = args.date.unwrap_or_else(|| today(config));
    let Some(lock) = acquire_lock(config)? else {
        return Ok(ExitCode::from(EXIT_LOCKED));
    };
    let mut report = RunReport {
        started_at: started_at.to_rfc3339(),
        finished_at: String::new(),
        date: date.to_string(),
        exit_code: 0,
        feeds: Vec::new(),
        send: None,
        error: None,
    };
    let outcome = (|| -> anyhow::Result<u8> {
        let store = Store::open(&config.db)?;
        report.feeds = fetch_feeds(config, &store)?;
        drop(store);
        let send_args = SendArgs {
            edition: EditionArgs {
                date: Some(date),
                inputs: Vec::new(),
            },
            smtp: args.smtp.clone(),
            dry_run: false,
            limit: None,
            force: args.force,
            json: false,
        };
        let (code, summary) = send_edition(config, &send_args)?;
        report.send = summary;
        let send_code: u8 = if code == ExitCode::SUCCESS {
            0
        } else if code == ExitCode::from(2) {
            2
        } else {
            1
        };
        Ok(
            if send_code == 0 && persistent_failures(config, &report.feeds) > 0 {
                1
            } else {
                send_code
            },
        )
    })();
    let code = match outcome {
        Ok(code) => code,
        Err(e) => {
            report.error = Some(format!("{e:#}"));
            if e.chain().any(|c| {
                c.downcast_ref::<crate::config::ConfigError>().is_some()
                    || c.downcast_ref::<crate::render::TemplateError>().is_some()
            }) {
                2
            } else {
                1
            }
        }
    };
    report.exit_code = code;
    report.finished_at = Utc::now().to_rfc3339();
    let json = serde_json::to_string_pretty(&report)? + "\n";
    let tmp = config.run_report.with_extension("json.tmp");
    std::fs::write(&tmp, &json)
        .and_then(|_| std::fs::rename(&tmp, &config.run_report))
        .with_context(|| format!("writing the run report {}", config.run_report.display()))?;
    if args.json {
        io::stdout().lock().write_all(json.as_bytes())?;
    }
    if let Some(e) = &report.error {
        eprintln!("digest: error: {e}");
    }
    drop(lock);
    Ok(ExitCode::from(code))
}
