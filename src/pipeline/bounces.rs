//! `digest bounces import`: bounces, complaints and unsubscribe requests
//! from message files, Maildir folders and mbox files, applied to the
//! subscribers they name.
//!
//! Each message is recorded by its key (Message-ID, else a hash of its
//! bytes) in the same transaction as its effect, so importing it again
//! changes nothing. A message processed from a Maildir's `new/` is moved to
//! `cur/` (flag `S`) after its record is committed; a crash between the two
//! leaves it in `new/`, and the next import finds its key and moves it. A
//! message that cannot be read, or names no subscriber, stays where it is
//! and is reported.

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::Serialize;

use super::{Error, Pipeline, Result};
use crate::mail::bounce::{self, Kind, Mailboxes};
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
    /// Understood and about nobody (not-spam reports, automatic replies).
    pub ignored: usize,
    /// Processed by an earlier import.
    pub duplicates: usize,
    /// Left in place: where, and why.
    pub unrecognised: Vec<Unrecognised>,
}

/// A message left for a person.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Unrecognised {
    pub location: String,
    pub reason: String,
}

/// One message found: where it is, its bytes, and for a Maildir message
/// its file (moved out of `new/` once processed).
struct Found {
    location: String,
    bytes: Vec<u8>,
    maildir_file: Option<PathBuf>,
}

/// What one import path holds.
enum Source<'a> {
    Maildir(&'a Path),
    Mbox(&'a Path),
    File(&'a Path),
}

/// A Maildir file's unique name: its name before the `:2,` flags, which
/// moving it to `cur/` keeps.
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

fn read_error(path: &Path, e: std::io::Error) -> Error {
    Error::Io {
        context: format!("reading {}", path.display()),
        source: e,
    }
}

fn is_mbox(path: &Path) -> Result<bool> {
    use std::io::Read;
    let mut head = [0u8; 5];
    let mut f = std::fs::File::open(path).map_err(|e| read_error(path, e))?;
    let n = f.read(&mut head).map_err(|e| read_error(path, e))?;
    Ok(&head[..n] == b"From ")
}

/// The files of a Maildir: `new/` first, then `cur/` (a mail client may
/// have moved unprocessed ones there), by name.
fn maildir_files(dir: &Path) -> Result<Vec<(PathBuf, bool)>> {
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
                p.is_file()
                    && !p
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        paths.sort();
        out.extend(paths.into_iter().map(|p| (p, sub == "new")));
    }
    Ok(out)
}

/// Calls `each` with every message of an mbox, one in memory at a time.
fn mbox_messages(path: &Path, mut each: impl FnMut(Found) -> Result<()>) -> Result<()> {
    let file = std::fs::File::open(path).map_err(|e| read_error(path, e))?;
    let iter = mail_parser::mailbox::mbox::MessageIterator::new(std::io::BufReader::new(file));
    for (i, message) in iter.enumerate() {
        let message = message.map_err(|e| Error::Io {
            context: format!("reading {} (message {})", path.display(), i + 1),
            source: e,
        })?;
        each(Found {
            location: format!("{} (message {})", path.display(), i + 1),
            bytes: message.unwrap_contents(),
            maildir_file: None,
        })?;
    }
    Ok(())
}

/// Moves a processed message from `new/` to `cur/`, marked seen.
fn move_to_cur(path: &Path) -> std::io::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("message")
        .to_owned();
    let name = if name.contains(":2,") {
        name
    } else {
        format!("{name}:2,S")
    };
    let cur = path
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("cur"))
        .ok_or_else(|| std::io::Error::other("not in a Maildir"))?;
    std::fs::create_dir_all(&cur)?;
    std::fs::rename(path, cur.join(name))
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
    /// checked before any message is processed; messages are then read one
    /// at a time, and a `cur/` file processed by an earlier import is
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
                    for (path, new) in maildir_files(dir)? {
                        if !new && self.store.mail_processed(&maildir_key(&path))? {
                            report.messages += 1;
                            report.duplicates += 1;
                            continue;
                        }
                        let bytes = std::fs::read(&path).map_err(|e| read_error(&path, e))?;
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
                        bytes: std::fs::read(path).map_err(|e| read_error(path, e))?,
                        maildir_file: None,
                    };
                    self.take(found, &mailboxes, &mut report)?
                }
            }
        }
        for u in &report.unrecognised {
            tracing::warn!("{}: left in place: {}", u.location, u.reason);
        }
        tracing::info!(
            "bounces: {} messages, {} permanent, {} temporary, {} complaints, {} unsubscribes, {} left in place",
            report.messages,
            report.hard_bounces,
            report.soft_bounces,
            report.complaints,
            report.unsubscribes,
            report.unrecognised.len()
        );
        Ok(report)
    }

    /// Imports one message; a processed Maildir file is recorded by its
    /// name and moved out of `new/`.
    fn take(&self, message: Found, mailboxes: &Mailboxes, report: &mut BounceReport) -> Result<()> {
        report.messages += 1;
        if !self.import_one(&message, mailboxes, report)? {
            return Ok(());
        }
        let Some(path) = &message.maildir_file else {
            return Ok(());
        };
        self.store
            .record_mail_processed(&maildir_key(path), "maildir file", Utc::now())?;
        if path.parent().and_then(Path::file_name) == Some("new".as_ref()) {
            if let Err(e) = move_to_cur(path) {
                tracing::warn!(
                    "{}: processed, but cannot be moved to cur/: {e} (it is recorded and will not count twice)",
                    path.display()
                );
            }
        }
        Ok(())
    }

    /// Finds the subscriber a report names: by VERP token, by the returned
    /// digest's Message-ID, by the failed recipient's address.
    fn named_subscriber(&self, r: &bounce::Report) -> Result<Option<Subscriber>> {
        for token in &r.tokens {
            if let Some(s) = self.store.subscriber_by_bounce_token(token)? {
                return Ok(Some(s));
            }
        }
        for id in &r.message_ids {
            if let Some((s, _)) = self.store.subscriber_by_message_id(id)? {
                return Ok(Some(s));
            }
        }
        if matches!(r.kind, Kind::Unsubscribe) {
            // Only the token counts: a From address is easily forged.
            return Ok(None);
        }
        for address in &r.recipients {
            if let Some(s) = self.store.subscriber_by_email(address)? {
                return Ok(Some(s));
            }
        }
        Ok(None)
    }

    /// Processes one message; true when it is done with (recorded now or
    /// before), false when it is left in place.
    fn import_one(
        &self,
        message: &Found,
        mailboxes: &Mailboxes,
        report: &mut BounceReport,
    ) -> Result<bool> {
        let key = bounce::key(&message.bytes);
        if self.store.mail_processed(&key)? {
            report.duplicates += 1;
            return Ok(true);
        }
        let leave = |report: &mut BounceReport, reason: String| {
            report.unrecognised.push(Unrecognised {
                location: message.location.clone(),
                reason,
            });
            Ok(false)
        };
        let read = match bounce::read(&message.bytes, mailboxes) {
            Ok(r) => r,
            Err(reason) => return leave(report, reason),
        };
        let now = Utc::now();
        if let Kind::Ignored { why } = &read.kind {
            self.store.record_mail_processed(&key, "ignored", now)?;
            tracing::info!("{}: ignored: {why}", message.location);
            report.ignored += 1;
            return Ok(true);
        }
        let Some(sub) = self.named_subscriber(&read)? else {
            return leave(
                report,
                format!(
                    "{} ({}) names no subscriber: no known VERP token, digest Message-ID or recipient address",
                    kind_name(&read.kind),
                    read.format
                ),
            );
        };
        let event = match &read.kind {
            Kind::Failed { permanent: true } => MailEvent::HardBounce {
                status: read.describe(),
            },
            Kind::Failed { permanent: false } | Kind::Delayed => MailEvent::SoftBounce {
                status: read.describe(),
                edition: read.edition(),
                limit: self.config.soft_bounce_limit,
            },
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
        Ok(true)
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
