//! Managing the list: add, remove and import subscribers, every address and
//! name checked before it is stored.

use std::path::Path;

use chrono::Utc;

use super::{Error, Pipeline, Result};
use crate::mail::{validate_address, validate_name};
use crate::store::{NewSubscriber, Status};

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    pub added: usize,
    pub rejected: usize,
}

fn check_row(email: &str, name: Option<&str>, topics: &str) -> Result<NewSubscriber, String> {
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

impl Pipeline {
    /// Adds a subscriber, or reactivates one who left. Returns the address
    /// as stored.
    pub fn add_subscriber(
        &mut self,
        email: &str,
        name: Option<&str>,
        topics: &str,
        topics_only: bool,
    ) -> Result<String> {
        let mut row = check_row(email, name, topics).map_err(Error::Invalid)?;
        row.topics_only = topics_only;
        let email = row.email.clone();
        match self
            .store
            .add_subscribers(&[row], Utc::now(), true)?
            .remove(0)
        {
            Ok(_) => Ok(email),
            Err(e) => Err(Error::Invalid(e)),
        }
    }

    /// Unsubscribes an address (its history kept), or with `purge` deletes
    /// it. Returns the address.
    pub fn remove_subscriber(&self, email: &str, purge: bool) -> Result<String> {
        let email = validate_address(email).map_err(Error::Invalid)?;
        let found = if purge {
            self.store.delete_subscriber(&email)?
        } else {
            self.store
                .set_status(&email, Status::Unsubscribed, Utc::now())?
        };
        if !found {
            return Err(Error::Invalid(format!("no subscriber {email}")));
        }
        Ok(email)
    }

    /// Imports `email,name[,topics[,topics_only]]` rows, streamed: the good
    /// rows in one transaction, each bad row given to `rejected` as
    /// `file:line: reason` as it is found. Memory stays flat whatever the
    /// file's size.
    pub fn import_subscribers(
        &mut self,
        file: &Path,
        mut rejected: impl FnMut(&str),
    ) -> Result<ImportReport> {
        let shown = file.display().to_string();
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_path(file)
            .map_err(|e| Error::Invalid(format!("reading {shown}: {e}")))?;
        let rows = reader.records().enumerate().filter_map(|(i, record)| {
            let line = i as u64 + 1;
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map_or(line, |p| p.line());
                    return Some((line, Err(format!("unreadable row: {e}"))));
                }
            };
            let line = record.position().map_or(line, |p| p.line());
            let email = record.get(0).unwrap_or("");
            if (line == 1 && email.eq_ignore_ascii_case("email"))
                || record.iter().all(str::is_empty)
            {
                return None;
            }
            let topics_only = match record.get(3).unwrap_or("").to_ascii_lowercase().as_str() {
                "" | "no" | "false" | "0" => Ok(false),
                "yes" | "only" | "true" | "1" => Ok(true),
                other => Err(format!("invalid topics_only {other:?} (yes or no)")),
            };
            let row =
                check_row(email, record.get(1), record.get(2).unwrap_or("")).and_then(|row| {
                    topics_only.map(|topics_only| NewSubscriber { topics_only, ..row })
                });
            Some((line, row))
        });
        let mut report = ImportReport::default();
        self.store
            .add_subscribers_each(rows, Utc::now(), false, |line, result| match result {
                Ok(_) => report.added += 1,
                Err(e) => {
                    report.rejected += 1;
                    rejected(&format!("{shown}:{line}: {e}"));
                }
            })?;
        Ok(report)
    }
}
