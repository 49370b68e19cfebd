//! `digest bounces import`: bounces, complaints and unsubscribe requests
//! from message files, Maildir folders and mbox files, applied to the
//! subscribers they name.
//!
//! A report changes a subscriber only when it is bound to something we
//! sent: the VERP token of the subscriber's envelope sender, or the
//! Message-ID of a digest we sent to that very subscriber (and then any
//! recipient the report names must be theirs). An address alone never
//! does: anyone can write one into a forged report.
//!
//! Each message is recorded by its key (Message-ID, else a hash of its
//! bytes) in the same transaction as its effect, so importing it again
//! changes nothing. In a Maildir, a processed message moves from `new/` to
//! `cur/` (flag `S`) after its record is committed; one that is not a
//! report (an automatic or ordinary reply) moves to `cur/` unflagged, for a
//! person to read; one that can never be processed (too large, malformed,
//! about no one we sent to) is moved aside to the Maildir++ folder
//! `.Unprocessed/`, recorded, never deleted. No message is read twice by
//! later imports. A file that vanishes or moves mid-import (an IMAP server,
//! a second import) is passed over.

use std::io::{BufRead, Read};
use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::Serialize;

use super::{Error, Pipeline, Result};
use crate::config::files::{open_regular, read_regular, FileError};
use crate::mail::bounce::{self, Kind, Mailboxes, Unread, MAX_MESSAGE_BYTES};
use crate::store::{Applied, MailEvent, Status, Subscriber};

/// What an import did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct BounceReport {
    /// Messages read.
    pub messages: usize,
    /// Permanent failures, and the subscribers they marked bounced.
    pub hard_bounces: usize,
    /// Temporary failures and delay warnings.
    pub soft_bounces: usize,
    /// Subscribers newly marked `bounced` (hard, or the soft limit reached).
    pub bounced: usize,
    pub complaints: usize,
    pub unsubscribes: usize,
    /// Success notifications (the soft count resets).
    pub delivered: usize,
    /// Reports about nobody (`not-spam` feedback).
    pub ignored: usize,
    /// Processed by an earlier import.
    pub duplicates: usize,
    /// Not reports (automatic replies, people's mail): left alone.
    pub not_reports: Vec<Unrecognised>,
    /// Left for a person: where, and why (in a Maildir, moved aside).
    pub unrecognised: Vec<Unrecognised>,
}

/// A message not acted on.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Unrecognised {
    pub location: String,
    pub reason: String,
    /// Where it was moved (a Maildir's `.Unprocessed/`), if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub moved_to: Option<String>,
}

/// One message found: where it is, its bytes (or why they cannot be
/// read), and for a Maildir message its file.
struct Found {
    location: String,
    bytes: std::result::Result<Vec<u8>, NotRead>,
    maildir_file: Option<PathBuf>,
}

/// Why a message's bytes were not read.
enum NotRead {
    /// Never will be: too large, or not a message file at all.
    Never(String),
    /// Not now (permissions, an I/O error): perhaps later.
    NotNow(String),
}

impl From<FileError> for NotRead {
    fn from(e: FileError) -> NotRead {
        match e {
            FileError::Io(_) | FileError::Missing => NotRead::NotNow(e.to_string()),
            FileError::TooBig { .. } | FileError::NotRegular(_) => NotRead::Never(e.to_string()),
        }
    }
}

/// What one import path holds.
enum Source<'a> {
    Maildir(&'a Path),
    Mbox(&'a Path),
    File(&'a Path),
}

/// The Maildir++ folder unprocessable messages are moved to.
const ASIDE: &str = ".Unprocessed";

/// A Maildir file's unique name: its name before the `:2,` flags, which
/// moving it keeps.
fn maildir_name(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.split(':').next().unwrap_or_default().to_owned()
}

/// The key a processed Maildir file is recorded under besides its
/// Message-ID, so later imports pass it in `cur/` without reading it.
fn maildir_key(path: &Path) -> String {
    format!("maildir:{}", maildir_name(path))
}

fn read_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: {e}", path.display()))
}

/// Whether a file starts like an mbox (`From ` at its first byte).
fn is_mbox(path: &Path) -> Result<bool> {
    let (mut f, _) = open_regular(path, true).map_err(|e| read_error(path, e))?;
    let mut head = [0u8; 5];
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(read_error(path, e)),
        }
    }
    Ok(&head[..n] == b"From ")
}

/// The files of a Maildir: `new/` first, then `cur/` (a mail client may
/// have moved unprocessed ones there), by name. Whether each is a message
/// file is checked when it is opened.
fn maildir_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for sub in ["new", "cur"] {
        let folder = dir.join(sub);
        let entries = match std::fs::read_dir(&folder) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(read_error(&folder, e)),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                !p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        paths.sort();
        out.extend(paths);
    }
    Ok(out)
}

/// Reads one line of at most `limit` bytes into `line` (the rest of a
/// longer line is passed over, and the line marked cut); returns the bytes
/// consumed, 0 at the end.
fn read_line_bounded(
    reader: &mut impl BufRead,
    line: &mut Vec<u8>,
    limit: usize,
    cut: &mut bool,
) -> std::io::Result<usize> {
    let mut consumed = 0;
    *cut = false;
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(consumed);
        }
        let (chunk, done) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..=i], true),
            None => (buf, false),
        };
        let room = limit.saturating_sub(line.len());
        if chunk.len() > room {
            *cut = true;
        }
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let n = chunk.len();
        reader.consume(n);
        consumed += n;
        if done {
            return Ok(consumed);
        }
    }
}

/// Calls `each` with every message of an mbox (RFC 4155; mboxrd's `>From `
/// quoting undone), one in memory at a time. A message over
/// `MAX_MESSAGE_BYTES` is given as an error, not read into memory: the
/// reader passes over it to the next `From ` line. (mail-parser's mbox
/// reader holds a whole message, however large, so it is not used here.)
fn mbox_messages(path: &Path, mut each: impl FnMut(Found) -> Result<()>) -> Result<()> {
    let (file, _) = open_regular(path, true).map_err(|e| read_error(path, e))?;
    let mut reader = std::io::BufReader::new(file);
    let mut current: Option<(Vec<u8>, bool)> = None;
    let mut count = 0;
    let mut line = Vec::new();
    let mut cut = false;
    let mut flush = |current: Option<(Vec<u8>, bool)>, count: usize| -> Result<()> {
        let Some((bytes, too_big)) = current else {
            return Ok(());
        };
        each(Found {
            location: format!("{} (message {count})", path.display()),
            bytes: if too_big {
                Err(NotRead::Never(format!(
                    "larger than {MAX_MESSAGE_BYTES} bytes"
                )))
            } else {
                Ok(bytes)
            },
            maildir_file: None,
        })
    };
    loop {
        line.clear();
        let n = read_line_bounded(&mut reader, &mut line, MAX_MESSAGE_BYTES + 1, &mut cut)
            .map_err(|e| read_error(path, e))?;
        if n == 0 {
            break;
        }
        if line.starts_with(b"From ") {
            flush(current.take(), count)?;
            count += 1;
            current = Some((Vec::new(), false));
            continue;
        }
        let Some((bytes, too_big)) = current.as_mut() else {
            continue;
        };
        if *too_big {
            continue;
        }
        let unquoted = match line.iter().position(|&b| b != b'>') {
            Some(i) if i > 0 && line[i..].starts_with(b"From ") => &line[1..],
            _ => &line[..],
        };
        if cut || bytes.len() + unquoted.len() > MAX_MESSAGE_BYTES {
            *too_big = true;
            *bytes = Vec::new();
        } else {
            bytes.extend_from_slice(unquoted);
        }
    }
    flush(current, count)
}

/// Moves a processed message into `cur/`, marked seen (`S`) or not (a
/// message for a person to read). A message in `cur/` already stays.
fn move_to_cur(path: &Path, seen: bool) -> std::io::Result<()> {
    if path.parent().and_then(Path::file_name) != Some("new".as_ref()) {
        return Ok(());
    }
    let cur = path
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("cur"))
        .ok_or_else(|| std::io::Error::other("not in a Maildir"))?;
    std::fs::create_dir_all(&cur)?;
    let flags = if seen { ":2,S" } else { ":2," };
    std::fs::rename(path, cur.join(format!("{}{flags}", maildir_name(path))))
}

/// Moves a message that can never be processed to the Maildir++ folder
/// `.Unprocessed/` (its `cur/`, unseen): out of the way of every later
/// import, kept for a person. Returns where it went.
fn move_aside(path: &Path) -> std::io::Result<PathBuf> {
    let maildir = path
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| std::io::Error::other("not in a Maildir"))?;
    let aside = maildir.join(ASIDE);
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(aside.join(sub))?;
    }
    let to = aside.join("cur").join(format!("{}:2,", maildir_name(path)));
    std::fs::rename(path, &to)?;
    Ok(to)
}

/// What became of one message.
enum Outcome {
    /// Acted on, ignored as a report about nobody, or seen before.
    Processed,
    /// A message that is not a report, recorded by another import (one
    /// running at the same time): filed as that one files it, unread.
    NotAReportSeenBefore,
    /// Not a report: left alone, for a person to read.
    NotAReport,
    /// Can never be processed: left for a person.
    Unusable,
    /// Could not be read now (it may be later): left where it is.
    Unreadable,
}

impl Pipeline {
    fn mailboxes(&self) -> Mailboxes {
        Mailboxes::new(
            self.config.bounce_address.as_deref(),
            self.config.unsubscribe_mailto.as_deref(),
        )
    }

    /// Imports every message under `paths`: files (one message each, or an
    /// mbox when it starts with `From `) and Maildir folders. Every path is
    /// checked before any message is processed (a device, a pipe or a
    /// missing path is an error); messages are then read one at a time,
    /// each bounded, and a `cur/` file processed by an earlier import is
    /// counted without being read again.
    pub fn import_bounces(&self, paths: &[PathBuf]) -> Result<BounceReport> {
        let mut sources = Vec::with_capacity(paths.len());
        for path in paths {
            let meta = std::fs::metadata(path).map_err(|e| read_error(path, e))?;
            sources.push(if meta.is_dir() {
                if !path.join("new").is_dir() && !path.join("cur").is_dir() {
                    return Err(Error::Invalid(format!(
                        "{}: not a Maildir (it has no new/ or cur/ folder)",
                        path.display()
                    )));
                }
                Source::Maildir(path)
            } else if !meta.is_file() {
                return Err(Error::Invalid(format!(
                    "{}: not a message file, an mbox or a Maildir folder (only regular files are read)",
                    path.display()
                )));
            } else if is_mbox(path)? {
                Source::Mbox(path)
            } else {
                Source::File(path)
            });
        }
        let mailboxes = self.mailboxes();
        let mut report = BounceReport::default();
        for source in sources {
            match source {
                Source::Maildir(dir) => {
                    for path in maildir_files(dir)? {
                        let in_cur =
                            path.parent().and_then(Path::file_name) == Some("cur".as_ref());
                        if in_cur && self.store.mail_processed(&maildir_key(&path))? {
                            report.messages += 1;
                            report.duplicates += 1;
                            continue;
                        }
                        let bytes = match read_regular(&path, MAX_MESSAGE_BYTES as u64, false) {
                            Ok(b) => Ok(b),
                            Err(FileError::Missing) => {
                                tracing::debug!(
                                    "{}: gone before it was read (moved by another program): passed over",
                                    path.display()
                                );
                                continue;
                            }
                            Err(e) => Err(NotRead::from(e)),
                        };
                        let found = Found {
                            location: path.display().to_string(),
                            bytes,
                            maildir_file: Some(path),
                        };
                        self.take(found, &mailboxes, &mut report)?;
                    }
                }
                Source::Mbox(path) => {
                    mbox_messages(path, |m| self.take(m, &mailboxes, &mut report))?
                }
                Source::File(path) => {
                    let found = Found {
                        location: path.display().to_string(),
                        bytes: read_regular(path, MAX_MESSAGE_BYTES as u64, true)
                            .map_err(NotRead::from),
                        maildir_file: None,
                    };
                    self.take(found, &mailboxes, &mut report)?
                }
            }
        }
        for u in &report.unrecognised {
            tracing::warn!("{}: left for a person: {}", u.location, u.reason);
        }
        tracing::info!(
            "bounces: {} messages, {} permanent, {} temporary, {} complaints, {} unsubscribes, {} not reports, {} left for a person",
            report.messages,
            report.hard_bounces,
            report.soft_bounces,
            report.complaints,
            report.unsubscribes,
            report.not_reports.len(),
            report.unrecognised.len()
        );
        Ok(report)
    }

    /// Imports one message, then files it in its Maildir by what became of
    /// it.
    fn take(&self, message: Found, mailboxes: &Mailboxes, report: &mut BounceReport) -> Result<()> {
        report.messages += 1;
        let (outcome, reason) = self.import_one(&message, mailboxes, report)?;
        let listed = |moved_to: Option<String>| Unrecognised {
            location: message.location.clone(),
            reason: reason.clone().unwrap_or_default(),
            moved_to,
        };
        let Some(path) = &message.maildir_file else {
            match outcome {
                Outcome::NotAReport => report.not_reports.push(listed(None)),
                Outcome::Unusable | Outcome::Unreadable => report.unrecognised.push(listed(None)),
                Outcome::Processed | Outcome::NotAReportSeenBefore => {}
            }
            return Ok(());
        };
        let now = Utc::now();
        let moved = match outcome {
            Outcome::NotAReportSeenBefore => move_to_cur(path, false),
            Outcome::Processed | Outcome::NotAReport => {
                self.store.record_mail_processed(
                    &maildir_key(path),
                    if matches!(outcome, Outcome::Processed) {
                        "maildir file"
                    } else {
                        "maildir file: not a report"
                    },
                    now,
                )?;
                let seen = matches!(outcome, Outcome::Processed);
                if !seen {
                    report.not_reports.push(listed(None));
                }
                move_to_cur(path, seen)
            }
            Outcome::Unusable => match move_aside(path) {
                Ok(to) => {
                    self.store.record_mail_processed(
                        &format!("aside:{}", maildir_name(path)),
                        &format!("moved aside: {}", reason.clone().unwrap_or_default()),
                        now,
                    )?;
                    report
                        .unrecognised
                        .push(listed(Some(to.display().to_string())));
                    Ok(())
                }
                // Another import moved it first, and lists it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    report.duplicates += 1;
                    Ok(())
                }
                Err(e) => {
                    report.unrecognised.push(listed(None));
                    Err(e)
                }
            },
            Outcome::Unreadable => {
                report.unrecognised.push(listed(None));
                Ok(())
            }
        };
        match moved {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => tracing::debug!(
                "{}: moved by another program before this import could file it",
                path.display()
            ),
            Err(e) => tracing::warn!(
                "{}: cannot be filed: {e} (it is recorded and will not count twice)",
                path.display()
            ),
        }
        Ok(())
    }

    /// The subscriber a report is bound to, with the edition it concerns
    /// when it says; `Err` says why it is bound to no one.
    fn bound_subscriber(
        &self,
        r: &bounce::Report,
    ) -> Result<std::result::Result<(Subscriber, Option<String>), String>> {
        let mut by_token: Option<Subscriber> = None;
        for token in &r.tokens {
            if let Some(s) = self.store.subscriber_by_bounce_token(token)? {
                match &by_token {
                    Some(first) if first.id != s.id => {
                        return Ok(Err("names two subscribers by their VERP tokens".into()))
                    }
                    _ => by_token = Some(s),
                }
            }
        }
        if let Some(s) = by_token {
            // The edition, from a Message-ID of a digest sent to them (a
            // date written anywhere else in the report proves nothing).
            let mut edition = None;
            for id in &r.message_ids {
                if let Some((owner, date)) = self.store.subscriber_by_message_id(id)? {
                    if owner.id == s.id {
                        edition = Some(date);
                        break;
                    }
                }
            }
            return Ok(Ok((s, edition)));
        }
        if matches!(r.kind, Kind::Unsubscribe) {
            return Ok(Err(
                "an unsubscribe request whose token is no subscriber's".into()
            ));
        }
        for id in &r.message_ids {
            let Some((s, date)) = self.store.subscriber_by_message_id(id)? else {
                continue;
            };
            if !r.recipients.is_empty()
                && !r
                    .recipients
                    .iter()
                    .any(|a| a.eq_ignore_ascii_case(&s.email))
            {
                return Ok(Err(format!(
                    "returns a digest we sent to someone else than the recipient it names ({})",
                    r.recipients.join(", ")
                )));
            }
            return Ok(Ok((s, Some(date))));
        }
        Ok(Err(if r.recipients.is_empty() {
            "names no subscriber: no VERP token and no Message-ID of a digest we sent".into()
        } else {
            format!(
                "names an address but no message we sent ({}): an address alone is not trusted",
                r.recipients.join(", ")
            )
        }))
    }

    /// Processes one message: what became of it, and why when it was not
    /// processed.
    fn import_one(
        &self,
        message: &Found,
        mailboxes: &Mailboxes,
        report: &mut BounceReport,
    ) -> Result<(Outcome, Option<String>)> {
        let bytes = match &message.bytes {
            Ok(b) => b,
            Err(NotRead::Never(why)) => return Ok((Outcome::Unusable, Some(why.clone()))),
            Err(NotRead::NotNow(why)) => {
                return Ok((
                    Outcome::Unreadable,
                    Some(format!("cannot be read now: {why}")),
                ))
            }
        };
        if let Err(why) = bounce::check_bounds(bytes) {
            return Ok((Outcome::Unusable, Some(why)));
        }
        let key = bounce::key(bytes);
        if self.store.mail_processed(&key)? {
            report.duplicates += 1;
            return Ok((Outcome::Processed, None));
        }
        let now = Utc::now();
        let read = match bounce::read(bytes, mailboxes) {
            Ok(r) => r,
            Err(Unread::NotAReport(why)) => {
                let first =
                    self.store
                        .record_mail_processed(&key, &format!("not a report: {why}"), now)?;
                if !first {
                    report.duplicates += 1;
                    return Ok((Outcome::NotAReportSeenBefore, None));
                }
                tracing::info!("{}: not a report: {why}", message.location);
                return Ok((Outcome::NotAReport, Some(format!("not a report: {why}"))));
            }
            Err(Unread::Unusable(why)) => return Ok((Outcome::Unusable, Some(why))),
        };
        if let Kind::Ignored { why } = &read.kind {
            if self.store.record_mail_processed(&key, "ignored", now)? {
                tracing::info!("{}: ignored: {why}", message.location);
                report.ignored += 1;
            } else {
                report.duplicates += 1;
            }
            return Ok((Outcome::Processed, None));
        }
        let (sub, edition) = match self.bound_subscriber(&read)? {
            Ok(found) => found,
            Err(why) => {
                return Ok((
                    Outcome::Unusable,
                    Some(format!("{} ({}) {why}", kind_name(&read.kind), read.format)),
                ))
            }
        };
        let event = match &read.kind {
            Kind::Failed { permanent: true } => MailEvent::HardBounce {
                status: read.describe(),
            },
            Kind::Failed { permanent: false } | Kind::Delayed => {
                // Counted once per subscriber and edition: the edition the
                // report names, else the last one sent to them (else today).
                let edition = match edition {
                    Some(date) => date,
                    None => match self.store.last_sent_edition(sub.id)? {
                        Some(date) => date,
                        None => self.today().to_string(),
                    },
                };
                MailEvent::SoftBounce {
                    status: read.describe(),
                    edition: Some(edition),
                    limit: self.config.soft_bounce_limit,
                }
            }
            Kind::Delivered => MailEvent::Delivered,
            Kind::Complaint { feedback_type } => MailEvent::Complaint {
                feedback_type: feedback_type.clone(),
            },
            Kind::Unsubscribe => MailEvent::Unsubscribe,
            Kind::Ignored { .. } => unreachable!("handled above"),
        };
        match self.store.apply_mail_event(&key, sub.id, &event, now)? {
            Applied::Duplicate => report.duplicates += 1,
            Applied::Done {
                before,
                after,
                soft_bounces,
            } => {
                match event {
                    MailEvent::HardBounce { .. } => report.hard_bounces += 1,
                    MailEvent::SoftBounce { .. } => report.soft_bounces += 1,
                    MailEvent::Delivered => report.delivered += 1,
                    MailEvent::Complaint { .. } => report.complaints += 1,
                    MailEvent::Unsubscribe => report.unsubscribes += 1,
                }
                if after == Status::Bounced && before != Status::Bounced {
                    report.bounced += 1;
                }
                tracing::info!(
                    "{}: {} ({}) for subscriber {}: {} -> {}{}",
                    message.location,
                    kind_name(&read.kind),
                    read.format,
                    sub.id,
                    before.as_str(),
                    after.as_str(),
                    if soft_bounces > 0 {
                        format!(", {soft_bounces} temporary failures in a row")
                    } else {
                        String::new()
                    }
                );
            }
        }
        Ok((Outcome::Processed, None))
    }

    /// With `bounces_maildir` set, imports it (the start of `digest run`).
    pub fn import_configured_bounces(&self) -> Result<Option<BounceReport>> {
        match &self.config.bounces_maildir {
            None => Ok(None),
            Some(dir) => self.import_bounces(std::slice::from_ref(dir)).map(Some),
        }
    }
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Failed { permanent: true } => "a permanent failure",
        Kind::Failed { permanent: false } => "a temporary failure",
        Kind::Delayed => "a delay warning",
        Kind::Delivered => "a delivery report",
        Kind::Complaint { .. } => "a complaint",
        Kind::Unsubscribe => "an unsubscribe request",
        Kind::Ignored { .. } => "nothing to act on",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mbox_is_read_one_bounded_message_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box");
        let mut text =
            String::from("From a Mon Mar 14 06:01:11 2022\nSubject: one\n\n>From the start\n");
        text.push_str("From b Mon Mar 14 06:01:12 2022\nSubject: two\n\n");
        text.push_str(&"x".repeat(MAX_MESSAGE_BYTES + 10));
        text.push_str("\nFrom c Mon Mar 14 06:01:13 2022\nSubject: three\n\nend\n");
        std::fs::write(&path, text).unwrap();
        let mut got = Vec::new();
        mbox_messages(&path, |m| {
            got.push((m.location, m.bytes));
            Ok(())
        })
        .unwrap();
        assert_eq!(got.len(), 3);
        let bytes = |i: usize| match &got[i].1 {
            Ok(b) => b.clone(),
            Err(_) => panic!("message {i} not read"),
        };
        assert_eq!(
            bytes(0),
            b"Subject: one\n\nFrom the start\n",
            "mboxrd quoting undone"
        );
        assert!(matches!(&got[1].1, Err(NotRead::Never(why)) if why.contains("larger than")));
        assert!(got[1].0.ends_with("(message 2)"));
        assert_eq!(bytes(2), b"Subject: three\n\nend\n");
    }
}
