//! `digest subscribers`: add, remove, list, import, export.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;

use super::{ListFormat, SubscribersCommand};
use crate::config::Config;
use crate::mail::{validate_address, validate_name};
use crate::store::{NewSubscriber, Status, Store, Subscriber};

/// A subscriber row as read from the command line or a CSV file.
type Row = NewSubscriber;

fn check_row(email: &str, name: Option<&str>, topics: &str) -> Result<Row, String> {
    let email = validate_address(email)?;
    let name = match name {
        Some(n) => validate_name(n)?,
        None => None,
    };
    let topics = topics
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    if topics.chars().any(|c| c.is_control()) {
        return Err("invalid topics: control characters".into());
    }
    Ok(NewSubscriber {
        email,
        name,
        topics,
        topics_only: false,
    })
}

pub(super) fn subscribers(config: &Config, cmd: SubscribersCommand) -> anyhow::Result<ExitCode> {
    let mut store = Store::open(&config.db)?;
    let now = Utc::now();
    match cmd {
        SubscribersCommand::Add {
            email,
            name,
            topics,
            only_topics,
        } => {
            let mut row =
                check_row(&email, name.as_deref(), &topics).map_err(|e| anyhow::anyhow!(e))?;
            row.topics_only = only_topics;
            let shown = row.email.clone();
            match store.add_subscribers(&[row], now, true)?.remove(0) {
                Ok(_) => eprintln!("subscribed {shown}"),
                Err(e) => anyhow::bail!(e),
            }
            Ok(ExitCode::SUCCESS)
        }
        SubscribersCommand::Remove { email, purge } => {
            let email = validate_address(&email).map_err(|e| anyhow::anyhow!(e))?;
            let found = if purge {
                store.delete_subscriber(&email)?
            } else {
                store.set_status(&email, Status::Unsubscribed, now)?
            };
            if !found {
                anyhow::bail!("no subscriber {email}");
            }
            eprintln!("{} {email}", if purge { "deleted" } else { "unsubscribed" });
            Ok(ExitCode::SUCCESS)
        }
        SubscribersCommand::List { format } | SubscribersCommand::Export { format } => {
            write_list(&store.subscribers()?, format)?;
            Ok(ExitCode::SUCCESS)
        }
        SubscribersCommand::Import { file } => import(&mut store, &file),
    }
}

fn import(store: &mut Store, file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_path(file)
        .with_context(|| format!("reading {}", file.display()))?;
    let mut good: Vec<(u64, Row)> = Vec::new();
    let mut bad = 0usize;
    let mut seen = std::collections::HashSet::new();
    let shown = file.display().to_string();
    for (i, record) in reader.records().enumerate() {
        let line = i as u64 + 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(line, |p| p.line());
                eprintln!("{shown}:{line}: unreadable row: {e}");
                bad += 1;
                continue;
            }
        };
        let line = record.position().map_or(line, |p| p.line());
        let email = record.get(0).unwrap_or("");
        if line == 1 && email.eq_ignore_ascii_case("email") {
            continue;
        }
        if record.iter().all(str::is_empty) {
            continue;
        }
        let only = record.get(3).unwrap_or("");
        let topics_only = match only.to_ascii_lowercase().as_str() {
            "" | "no" | "false" | "0" => Ok(false),
            "yes" | "only" | "true" | "1" => Ok(true),
            other => Err(format!("invalid topics_only {other:?} (yes or no)")),
        };
        let row = check_row(email, record.get(1), record.get(2).unwrap_or(""))
            .and_then(|row| topics_only.map(|topics_only| NewSubscriber { topics_only, ..row }));
        match row {
            Ok(row) if !seen.insert(row.email.to_lowercase()) => {
                eprintln!(
                    "{shown}:{line}: duplicate: {} appears earlier in the file",
                    row.email
                );
                bad += 1;
            }
            Ok(row) => good.push((line, row)),
            Err(e) => {
                eprintln!("{shown}:{line}: {e}");
                bad += 1;
            }
        }
    }
    let rows: Vec<Row> = good.iter().map(|(_, r)| r.clone()).collect();
    let results = store.add_subscribers(&rows, Utc::now(), false)?;
    let mut added = 0;
    for ((line, _), result) in good.iter().zip(results) {
        match result {
            Ok(_) => added += 1,
            Err(e) => {
                eprintln!("{shown}:{line}: {e}");
                bad += 1;
            }
        }
    }
    eprintln!("imported {added} subscribers, {bad} rows rejected");
    Ok(if bad > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
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
