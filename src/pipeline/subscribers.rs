//! Managing the list: add, remove and import subscribers, every address and
//! name checked before it is stored.

use std::path::Path;

use chrono::{NaiveDate, Utc};

use super::{Error, Pipeline, Result};
use crate::mail::{validate_address, validate_name};
use crate::store::{NewSubscriber, Status};

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportReport {
    pub added: usize,
    pub rejected: usize,
}

/// Longest topics list, in characters.
pub const MAX_TOPICS_CHARS: usize = 200;

/// A field of a subscriber that is not acceptable, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadField {
    Email(String),
    Name(String),
    Topics(String),
}

impl std::fmt::Display for BadField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadField::Email(why) | BadField::Name(why) | BadField::Topics(why) => f.write_str(why),
        }
    }
}

/// Checks topics: comma-separated, one line, at most `MAX_TOPICS_CHARS`;
/// returns them trimmed and joined with commas.
pub fn check_topics(topics: &str) -> Result<String, BadField> {
    if topics.chars().count() > MAX_TOPICS_CHARS || topics.chars().any(char::is_control) {
        return Err(BadField::Topics(format!(
            "invalid topics: one line of at most {MAX_TOPICS_CHARS} characters"
        )));
    }
    Ok(topics
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(","))
}

/// Checks a subscriber's address, name and topics (the one set of rules
/// for the command line, imports and the subscribe and confirm pages).
pub fn check_subscriber(
    email: &str,
    name: Option<&str>,
    topics: &str,
) -> Result<NewSubscriber, BadField> {
    let email = validate_address(email).map_err(BadField::Email)?;
    let name = match name {
        Some(n) => validate_name(n).map_err(BadField::Name)?,
        None => None,
    };
    let topics = check_topics(topics)?;
    Ok(NewSubscriber {
        email,
        name,
        topics,
        topics_only: false,
        status: Status::Active,
        bounces: 0,
        last_bounce: None,
        paused_until: None,
    })
}

pub(super) fn check_row(
    email: &str,
    name: Option<&str>,
    topics: &str,
) -> Result<NewSubscriber, String> {
    check_subscriber(email, name, topics).map_err(|e| e.to_string())
}

/// The columns of the subscriber CSV, in export order: what `export`
/// writes and `import` reads back (with a header row; without one, the
/// first columns in this order).
pub const CSV_COLUMNS: [&str; 5] = ["email", "name", "topics", "topics_only", "status"];

/// Columns `export` adds after `CSV_COLUMNS` for the record (bounce reports
/// received, the last one's status, and a pause the subscriber set);
/// `import` restores them.
pub const CSV_RECORD_COLUMNS: [&str; 3] = ["bounces", "last_bounce", "paused_until"];

/// A cell as written to CSV: one that a spreadsheet would run as a formula
/// (`=`, `+`, `-`, `@`, also after a tab or carriage return) gets a leading
/// `'`, which import takes off again.
pub fn csv_cell(value: &str) -> std::borrow::Cow<'_, str> {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}").into()
    } else {
        value.into()
    }
}

/// The value a CSV cell stands for (`csv_cell` undone).
fn from_csv_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(['=', '+', '-', '@', '\t', '\r']) => rest,
        _ => cell,
    }
}

/// The line number of a byte offset in a file, counted forward as offsets
/// grow (one pass over the file, whatever its size).
struct LineCounter {
    reader: std::io::BufReader<std::fs::File>,
    at: u64,
    line: u64,
}

impl LineCounter {
    fn open(path: &Path) -> std::io::Result<LineCounter> {
        Ok(LineCounter {
            reader: std::io::BufReader::new(std::fs::File::open(path)?),
            at: 0,
            line: 1,
        })
    }

    /// The 1-based line of the record the csv reader places at byte
    /// `offset` (offsets must not go back). The reader puts a record's start
    /// on the line end before it (the `\n` of a CRLF, a skipped blank line),
    /// so line ends at the offset are passed over first.
    fn line_at(&mut self, offset: u64) -> u64 {
        use std::io::BufRead;
        while let Ok(buf) = self.reader.fill_buf() {
            let Some(&next) = buf.first() else { break };
            if self.at < offset {
                let take = buf.len().min((offset - self.at) as usize);
                self.line += buf[..take].iter().filter(|&&b| b == b'\n').count() as u64;
                self.at += take as u64;
                self.reader.consume(take);
            } else if next == b'\n' || next == b'\r' {
                self.line += u64::from(next == b'\n');
                self.at += 1;
                self.reader.consume(1);
            } else {
                break;
            }
        }
        self.line
    }
}

fn yes_no(cell: &str) -> Result<bool, String> {
    match cell.to_ascii_lowercase().as_str() {
        "" | "no" | "false" | "0" => Ok(false),
        "yes" | "only" | "true" | "1" => Ok(true),
        other => Err(format!("invalid topics_only {other:?} (yes or no)")),
    }
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
        // A header row names the columns (any order, any subset with
        // `email`); without one they are `CSV_COLUMNS` in order.
        let mut columns: Vec<Option<usize>> = (0..CSV_COLUMNS.len() + CSV_RECORD_COLUMNS.len())
            .map(Some)
            .collect();
        let mut header_error: Option<String> = None;
        // Line numbers from the records' byte offsets: the csv reader's own
        // count is off after CRLF line ends.
        let mut lines =
            LineCounter::open(file).map_err(|e| Error::Invalid(format!("reading {shown}: {e}")))?;
        let mut rows = reader.records().enumerate().filter_map(|(i, record)| {
            let line = i as u64 + 1;
            let record = match record {
                Ok(r) => r,
                Err(e) => {
                    let line = e.position().map_or(line, |p| lines.line_at(p.byte()));
                    return Some((line, Err(format!("unreadable row: {e}"))));
                }
            };
            let line = record.position().map_or(line, |p| lines.line_at(p.byte()));
            if i == 0
                && record
                    .get(0)
                    .is_some_and(|c| c.eq_ignore_ascii_case("email"))
            {
                let find = |name: &str| record.iter().position(|c| c.eq_ignore_ascii_case(name));
                columns = CSV_COLUMNS
                    .iter()
                    .chain(&CSV_RECORD_COLUMNS)
                    .map(|c| find(c))
                    .collect();
                let unknown: Vec<&str> = record
                    .iter()
                    .filter(|c| {
                        !CSV_COLUMNS.iter().any(|k| k.eq_ignore_ascii_case(c))
                            && !c.eq_ignore_ascii_case("created_at")
                            && !CSV_RECORD_COLUMNS.iter().any(|k| k.eq_ignore_ascii_case(c))
                    })
                    .collect();
                if !unknown.is_empty() {
                    header_error = Some(format!(
                        "unknown columns {unknown:?} (known: {})",
                        CSV_COLUMNS.join(", ")
                    ));
                }
                return None;
            }
            if record.iter().all(str::is_empty) {
                return None;
            }
            if let Some(e) = &header_error {
                return Some((line, Err(e.clone())));
            }
            let cell = |k: usize| {
                columns
                    .get(k)
                    .copied()
                    .flatten()
                    .and_then(|i| record.get(i))
                    .map(from_csv_cell)
                    .unwrap_or("")
            };
            let status = match cell(4) {
                "" => Ok(Status::Active),
                s => Status::from_name(s)
                    .ok_or_else(|| format!("invalid status {s:?} ({})", Status::NAMES)),
            };
            let name = Some(cell(1)).filter(|n| !n.is_empty());
            let bounces = match cell(5) {
                "" => Ok(0),
                n => n
                    .parse::<u32>()
                    .map_err(|_| format!("invalid bounces {n:?} (a count)")),
            };
            let last_bounce = match cell(6) {
                "" => Ok(None),
                b if b.chars().count() > 500 || b.chars().any(char::is_control) => {
                    Err("invalid last_bounce: one line of at most 500 characters".to_owned())
                }
                b => Ok(Some(b.to_owned())),
            };
            let paused_until = match cell(7) {
                "" => Ok(None),
                d => NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map(Some)
                    .map_err(|_| format!("invalid paused_until {d:?} (a date, YYYY-MM-DD)")),
            };
            let row = check_row(cell(0), name, cell(2)).and_then(|row| {
                Ok(NewSubscriber {
                    topics_only: yes_no(cell(3))?,
                    status: status?,
                    bounces: bounces?,
                    last_bounce: last_bounce?,
                    paused_until: paused_until?,
                    ..row
                })
            });
            Some((line, row))
        });
        let mut report = ImportReport::default();
        self.store
            .add_subscribers_each(
                &mut rows,
                Utc::now(),
                false,
                &mut |line, result| match result {
                    Ok(_) => report.added += 1,
                    Err(e) => {
                        report.rejected += 1;
                        rejected(&format!("{shown}:{line}: {e}"));
                    }
                },
            )?;
        Ok(report)
    }
}
