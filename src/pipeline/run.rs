//! The cron job: fetch the feeds, build today's edition, send it, under the
//! run lock, over the one open store; and the JSON report it leaves.

use chrono::{NaiveDate, Utc};
use serde::Serialize;

use super::{BounceReport, Error, Pipeline, Result, SendOutcome, SendRequest, Verdict};
use crate::ingest::feeds::FeedReport;
use crate::lock::{Locked, RunLock};
use crate::mail::RunSummary;

/// What `digest run` does.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// The edition date [default: today in the configured time zone].
    pub date: Option<NaiveDate>,
    /// SMTP server URL, over `smtp_url`.
    pub smtp: Option<String>,
    /// Send an edition older than `max_edition_age_days`.
    pub force: bool,
}

/// What `digest run` did, written to `run_report` (and stdout with --json).
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub started_at: String,
    pub finished_at: String,
    pub date: String,
    /// The exit status the binary gave the run.
    pub exit_code: u8,
    pub feeds: Vec<FeedReport>,
    /// Bounces, complaints and unsubscribe requests imported from
    /// `bounces_maildir` before sending.
    pub bounces: Option<BounceReport>,
    /// Why `bounces_maildir` could not be imported (the run went on).
    pub bounces_error: Option<String>,
    /// Sign-ups deleted unconfirmed after `confirm_days`.
    pub purged_signups: usize,
    pub send: Option<RunSummary>,
    /// The edition is stored and waits for an editor's approval.
    pub awaiting_approval: bool,
    /// There was no news for the day: nothing was stored or sent (a later
    /// run the same day with news sends normally).
    pub no_news: bool,
    pub error: Option<String>,
}

/// How a run ended.
#[derive(Debug)]
pub enum RunOutcome {
    /// Another run holds the lock: nothing was done, no report written.
    Locked(Locked),
    /// The run went through (its report says how well); `send` is how the
    /// sending step ended, when it got that far.
    Ran(Box<Ran>),
}

/// A run that went through, its report not yet written (the run lock
/// is held until it is: `Pipeline::write_run_report`).
#[derive(Debug)]
pub struct Ran {
    pub report: RunReport,
    /// How well it went.
    pub verdict: Verdict,
    pub send: Option<SendOutcome>,
    lock: RunLock,
}

impl Pipeline {
    /// `digest run`: the lock, the feeds, the edition, the send. A failing
    /// step ends the run with its error in the report (a configuration
    /// problem, or a partial run); the report is written by
    /// `write_run_report`, with the exit status the caller gives it.
    pub fn run(&mut self, request: &RunRequest) -> Result<RunOutcome> {
        let started_at = Utc::now();
        let date = request.date.unwrap_or_else(|| self.today());
        let lock = match self.run_lock()? {
            Ok(lock) => lock,
            Err(locked) => return Ok(RunOutcome::Locked(locked)),
        };
        let mut report = RunReport {
            started_at: started_at.to_rfc3339(),
            finished_at: String::new(),
            date: date.to_string(),
            exit_code: 0,
            feeds: Vec::new(),
            bounces: None,
            bounces_error: None,
            purged_signups: 0,
            send: None,
            awaiting_approval: false,
            no_news: false,
            error: None,
        };
        let mut send = None;
        let outcome = (|| -> Result<Verdict> {
            // Before sending: whoever bounced or complained is not mailed.
            match self.import_configured_bounces() {
                Ok(bounces) => report.bounces = bounces,
                Err(e) => {
                    let e = format!("{:#}", anyhow::Error::new(e));
                    tracing::warn!("bounces_maildir not imported: {e}");
                    report.bounces_error = Some(e);
                }
            }
            report.purged_signups = self.purge_signups()?;
            report.feeds = self.fetch()?;
            let outcome = self.send_locked(&SendRequest {
                date: Some(date),
                // The configured inputs, with the articles fetched above.
                inputs: self.inputs(&[]),
                smtp: request.smtp.clone(),
                dry_run: false,
                limit: None,
                force: request.force,
            })?;
            report.send = outcome.summary().cloned();
            report.awaiting_approval = matches!(outcome, SendOutcome::AwaitingApproval { .. });
            report.no_news = matches!(outcome, SendOutcome::NoNews { .. });
            let verdict = match outcome.verdict() {
                Verdict::Done if self.persistent_failures(&report.feeds) > 0 => Verdict::Partial,
                Verdict::Locked => Verdict::Partial,
                v => v,
            };
            send = Some(outcome);
            Ok(verdict)
        })();
        let verdict = match outcome {
            Ok(verdict) => verdict,
            Err(e) => {
                let verdict = if e.is_config() {
                    Verdict::Misconfigured
                } else {
                    Verdict::Partial
                };
                // With its causes, `a: b: c`, as the cli prints errors.
                report.error = Some(format!("{:#}", anyhow::Error::new(e)));
                verdict
            }
        };
        report.finished_at = Utc::now().to_rfc3339();
        Ok(RunOutcome::Ran(Box::new(Ran {
            report,
            verdict,
            send,
            lock,
        })))
    }

    /// Writes the run's report (`run_report`) with the exit status it was
    /// given, then lets the run lock go. Returns the report as written.
    pub fn write_run_report(&self, ran: Ran, exit_code: u8) -> Result<(RunReport, String)> {
        let Ran {
            mut report, lock, ..
        } = ran;
        report.exit_code = exit_code;
        let json = serde_json::to_string_pretty(&report).expect("reports serialize") + "\n";
        let path = &self.config.run_report;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, &json)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(Error::io(format!(
                "writing the run report {}",
                path.display()
            )))?;
        drop(lock);
        Ok((report, json))
    }
}
