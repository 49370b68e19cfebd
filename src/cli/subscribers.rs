//! `digest subscribers`: add, remove, list, import, export.

use std::io::{self, Write};
use std::process::ExitCode;

use super::{ListFormat, SubscribersCommand};
use crate::pipeline::Pipeline;
use crate::store::Subscriber;

pub(super) fn subscribers(
    mut pipeline: Pipeline,
    cmd: SubscribersCommand,
) -> anyhow::Result<ExitCode> {
    match cmd {
        SubscribersCommand::Add {
            email,
            name,
            topics,
            only_topics,
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
            write_list(&pipeline.store().subscribers()?, format)?;
            Ok(ExitCode::SUCCESS)
        }
        SubscribersCommand::Import { file } => {
            let report = pipeline.import_subscribers(&file)?;
            for line in &report.rejected {
                eprintln!("{line}");
            }
            eprintln!(
                "imported {} subscribers, {} rows rejected",
                report.added,
                report.rejected.len()
            );
            Ok(if report.rejected.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
    }
}

fn write_list(subs: &[Subscriber], format: ListFormat) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    match format {
        ListFormat::Json => {
            serde_json::to_writer_pretty(&mut out, subs)?;
            writeln!(out)?;
        }
        ListFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(["email", "name", "topics", "status", "created_at"])?;
            for s in subs {
                w.write_record([
                    s.email.as_str(),
                    s.name.as_deref().unwrap_or(""),
                    &s.topics,
                    s.status.as_str(),
                    &s.created_at,
                ])?;
            }
            w.flush()?;
        }
        ListFormat::Table => {
            let width = subs
                .iter()
                .map(|s| s.email.chars().count())
                .max()
                .unwrap_or(5)
                .max(5);
            let name_width = subs
                .iter()
                .map(|s| s.name.as_deref().unwrap_or("").chars().count())
                .max()
                .unwrap_or(4)
                .max(4);
            writeln!(
                out,
                "{:<width$}  {:<name_width$}  {:<12}  TOPICS",
                "EMAIL", "NAME", "STATUS"
            )?;
            for s in subs {
                writeln!(
                    out,
                    "{:<width$}  {:<name_width$}  {:<12}  {}",
                    s.email,
                    s.name.as_deref().unwrap_or(""),
                    s.status.as_str(),
                    s.topics
                )?;
            }
        }
    }
    out.flush()?;
    Ok(())
}
