//! `digest send`: the cron job's real work.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;

use super::{build_edition_cached, inputs_or_config, load_templates, today, SendArgs};
use crate::config::{Config, ConfigError};
use crate::mail::transport::{redact_url, TransportConfigError};
use crate::mail::{
    deliver, MessageSettings, RunSummary, SendError, SendOptions, Transport, TransportSettings,
};
use crate::store::{DeliveryState, Store};

/// The SMTP password: DIGEST_SMTP_PASSWORD, else the first line of
/// `smtp_password_file`.
fn smtp_password(config: &Config) -> Result<Option<String>, ConfigError> {
    if let Ok(p) = std::env::var("DIGEST_SMTP_PASSWORD") {
        return Ok(Some(p));
    }
    match &config.smtp_password_file {
        None => Ok(None),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            Ok(Some(text.lines().next().unwrap_or("").to_owned()))
        }
    }
}

pub(super) fn message_settings(config: &Config) -> Result<MessageSettings, ConfigError> {
    let from: lettre::message::Mailbox = config.from.parse().map_err(|e| ConfigError::Invalid {
        key: "from",
        message: format!("{:?}: {e}", config.from),
    })?;
    let list_id = config
        .list_id
        .clone()
        .unwrap_or_else(|| format!("{} <list.{}>", config.title, from.email.domain()));
    Ok(MessageSettings {
        from,
        list_id,
        base_url: config.base_url.clone(),
        unsubscribe_mailto: config.unsubscribe_mailto.clone(),
    })
}

pub(super) fn send(config: &Config, args: SendArgs) -> anyhow::Result<ExitCode> {
    // Like `digest run`, a send holds the lock: a manual send beside the
    // cron job cannot send the same edition twice.
    let _lock = if args.dry_run {
        None
    } else {
        match super::run::acquire_lock(config)? {
            Some(lock) => Some(lock),
            None => return Ok(ExitCode::from(super::run::EXIT_LOCKED)),
        }
    };
    let (code, summary) = send_edition(config, &args)?;
    if let (true, Some(summary)) = (args.json, &summary) {
        let mut out = io::stdout().lock();
        serde_json::to_writer_pretty(&mut out, summary).context("writing the run summary")?;
        writeln!(out)?;
    }
    Ok(code)
}

/// The work of `digest send` (and of `digest run` after fetching): the exit
/// code, and the run summary when sending started.
pub(super) fn send_edition(
    config: &Config,
    args: &SendArgs,
) -> anyhow::Result<(ExitCode, Option<RunSummary>)> {
    // Everything that can be wrong with the configuration fails here,
    // before any message is sent.
    let renderer = load_templates(config)?;
    let settings = message_settings(config)?;
    let smtp_url = args.smtp.clone().or_else(|| config.smtp_url.clone());
    let transport_settings = TransportSettings {
        smtp_url: smtp_url.clone(),
        sendmail: config.sendmail.clone(),
        outbox: config.outbox.clone(),
        ca_file: config.smtp_ca_file.clone(),
        timeout: std::time::Duration::from_secs(config.smtp_timeout_secs),
        pool_size: config.concurrency as u32,
    };
    let transport = Transport::new(&transport_settings, smtp_password(config)?).map_err(
        |TransportConfigError(m)| ConfigError::Invalid {
            key: "smtp_url",
            message: m,
        },
    )?;
    let date = args.edition.date.unwrap_or_else(|| today(config));
    let age = (today(config) - date).num_days();
    if age > config.max_edition_age_days && !args.force {
        return Err(ConfigError::Invalid {
            key: "max_edition_age_days",
            message: format!(
                "the edition of {date} is {age} days old (limit {}); use --force to send it late",
                config.max_edition_age_days
            ),
        }
        .into());
    }

    let store = Store::open(&config.db)?;
    let stored = match store.edition(date)? {
        Some(stored) => {
            tracing::info!(
                "sending the stored edition of {date} (rendered {})",
                stored.rendered_at
            );
            stored
        }
        None => {
            let (edition, skipped) = build_edition_cached(
                config,
                date,
                inputs_or_config(config, &args.edition.inputs),
                Some(&store),
            )?;
            if skipped > 0 {
                tracing::warn!("{skipped} inputs skipped while building the edition");
            }
            if args.dry_run {
                let active = store
                    .subscribers()?
                    .iter()
                    .filter(|s| s.status == crate::store::Status::Active)
                    .count();
                eprintln!("dry run: the edition of {date} ({} stories) would go to {active} active subscribers via {}", edition.stories.len(), transport.describe());
                return Ok((ExitCode::SUCCESS, None));
            }
            store.store_edition(&edition, Utc::now())?
        }
    };
    if args.dry_run {
        let pending = store
            .deliveries(
                stored.id,
                &[
                    DeliveryState::Pending,
                    DeliveryState::Retry,
                    DeliveryState::Sending,
                ],
            )?
            .len();
        let active = store
            .subscribers()?
            .iter()
            .filter(|s| s.status == crate::store::Status::Active)
            .count();
        eprintln!("dry run: the stored edition of {date}; {pending} deliveries open, {active} active subscribers, via {}", transport.describe());
        return Ok((ExitCode::SUCCESS, None));
    }
    if stored.edition.stories.is_empty() {
        tracing::warn!("the edition of {date} has no stories");
    }

    tracing::info!("sending via {}", transport.describe());
    match transport.check() {
        Ok(()) => {}
        Err(SendError::Fatal(m)) => {
            return Err(ConfigError::Invalid {
                key: "smtp_url",
                message: m,
            }
            .into())
        }
        Err(e) => {
            let shown = smtp_url.as_deref().map(redact_url).unwrap_or_default();
            eprintln!("digest: cannot reach the mail server {shown}: {e}; nothing was sent, run again later");
            return Ok((ExitCode::from(1), None));
        }
    }

    let opts = SendOptions {
        concurrency: config.concurrency,
        rate_limit: config.rate_limit,
        limit: args.limit,
        max_attempts: config.max_attempts.max(1),
        retry_base: std::time::Duration::from_millis(config.retry_base_ms),
    };
    let bar = if io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} sent ({per_sec}, {eta} left)",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let summary = deliver(
        &config.db, &transport, &renderer, &stored, &settings, &opts, &bar,
    )?;
    bar.finish_and_clear();
    eprintln!(
        "edition of {}: {} sent, {} failed, {} retrying, {} skipped (already done), {} remaining{}",
        summary.date,
        summary.sent,
        summary.failed,
        summary.retrying,
        summary.skipped,
        summary.remaining,
        if summary.resumed > 0 {
            format!(", {} resumed after an interrupted run", summary.resumed)
        } else {
            String::new()
        }
    );
    if let Some(reason) = &summary.stopped {
        eprintln!("digest: the run stopped early: {reason}");
    }
    let code = if summary.stopped.as_deref().is_some_and(|r| {
        r.contains("refused the login")
            || r.contains("TLS")
            || r.contains(crate::mail::send::BREAKER_REASON)
    }) {
        ExitCode::from(2)
    } else if summary.complete() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    Ok((code, Some(summary)))
}
