//! `digest subscribers`: add, remove, list, import, export.

use std::io::{self, Write};
use std::process::ExitCode;

use super::{ListFormat, SubscribersCommand};
use dailydigest::pipeline::{csv_cell, Pipeline, CSV_COLUMNS, CSV_RECORD_COLUMNS};
use dailydigest::store::Store;

pub(super) fn subscribers(
    mut pipeline: Pipeline,
    cmd: SubscribersCommand,
) -> anyhow::Result<ExitCode> {
    match cmd {
        SubscribersCommand::Add {
            email,
            name,
            topics,
            only_topics: _,
            confirm: true,
        } => {
            use dailydigest::pipeline::SignedUp;
            match pipeline.sign_up(
                &email,
                name.as_deref(),
                &topics,
                dailydigest::store::Asker::Operator,
            )? {
                SignedUp::Mailed => eprintln!(
                    "{} is pending: a confirmation link was mailed",
                    email.trim()
                ),
                SignedUp::AlreadyActive => {
                    eprintln!("{} is subscribed already: nothing sent", email.trim())
                }
                SignedUp::Refused(status) => {
                    eprintln!("{}: {} (not mailed)", email.trim(), status.as_str())
                }
                SignedUp::TooSoon => eprintln!(
                    "{}: a confirmation was mailed less than {} minutes ago: nothing sent",
                    email.trim(),
                    dailydigest::pipeline::CONFIRMATION_INTERVAL_MINUTES
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        SubscribersCommand::Add {
            email,
            name,
            topics,
            only_topics,
            confirm: false,
        } => {
            let email = pipeline.add_subscriber(&email, name.as_deref(), &topics, only_topics)?;
            eprintln!("subscribed {email}");
            Ok(ExitCode::SUCCESS)
        }
        SubscribersCommand::Remove { email, purge } => {
            let email = pipeline.remove_subscriber(&email, purge)?;
            eprintln!("{} {email}", if purge { "deleted" } else { "unsubscribed" });
            Ok(ExitCode::SUCCESS)
        }
        SubscribersCommand::List { format } | SubscribersCommand::Export { format } => {
            write_list(pipeline.store(), format)?;
            Ok(ExitCode::SUCCESS)
        }
        SubscribersCommand::Import { file } => {
            let report = pipeline.import_subscribers(&file, |line| eprintln!("{line}"))?;
            eprintln!(
                "imported {} subscribers, {} rows rejected",
                report.added, report.rejected
            );
            Ok(if report.rejected == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

/// Writes the list as it is read, one subscriber in memory at a time.
fn write_list(store: &Store, format: ListFormat) -> anyhow::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    match format {
        ListFormat::Json => {
            // serde_json's pretty array, one element at a time.
            let mut first = true;
            store.for_each_subscriber(|s| -> anyhow::Result<()> {
                out.write_all(if first { b"[\n" } else { b",\n" })?;
                first = false;
                let item = serde_json::to_string_pretty(&s)?;
                for (i, line) in item.lines().enumerate() {
                    if i > 0 {
                        out.write_all(b"\n")?;
                    }
                    write!(out, "  {line}")?;
                }
                Ok(())
            })?;
            out.write_all(if first { b"[]\n" } else { b"\n]\n" })?;
        }
        ListFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(CSV_COLUMNS.iter().chain(&CSV_RECORD_COLUMNS))?;
            store.for_each_subscriber(|s| -> anyhow::Result<()> {
                w.write_record([
                    csv_cell(&s.email).as_ref(),
                    csv_cell(s.name.as_deref().unwrap_or("")).as_ref(),
                    csv_cell(&s.topics).as_ref(),
                    if s.topics_only { "yes" } else { "no" },
                    s.status.as_str(),
                    &s.bounces.to_string(),
                    csv_cell(s.last_bounce.as_deref().unwrap_or("")).as_ref(),
                    &s.paused_until.map(|d| d.to_string()).unwrap_or_default(),
                ])?;
                Ok(())
            })?;
            w.flush()?;
        }
        ListFormat::Table => {
            let (width, name_width) = store.subscriber_widths()?;
            let (width, name_width) = (width.max(5), name_width.max(4));
            writeln!(
                out,
                "{:<width$}  {:<name_width$}  {:<12}  {:>7}  {:<12}  TOPICS",
                "EMAIL", "NAME", "STATUS", "BOUNCES", "PAUSED UNTIL"
            )?;
            store.for_each_subscriber(|s| -> anyhow::Result<()> {
                writeln!(
                    out,
                    "{:<width$}  {:<name_width$}  {:<12}  {:>7}  {:<12}  {}",
                    s.email,
                    s.name.as_deref().unwrap_or(""),
                    s.status.as_str(),
                    s.bounces,
                    s.paused_until.map(|d| d.to_string()).unwrap_or_default(),
                    s.topics
                )?;
                Ok(())
            })?;
        }
    }
    out.flush()?;
    Ok(())
}
