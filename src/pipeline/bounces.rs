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

use std::path::{Path, PathBuf};

use chrono::Utc;
use serde::Serialize;

use super::{Error, Pipeline, Result};
use crate::mail::bounce::{self, Kind, Mailboxes, Unread};
use crate::mail::mailbox::{
    self, in_cur, maildir_files, maildir_name, move_aside, move_to_cur, Found, Mbox, NotRead,
    Source, SourceError,
};
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

/// The key a processed Maildir file is recorded under besides its
/// Message-ID, so later imports pass it in `cur/` without reading it.
fn maildir_key(path: &Path) -> String {
    format!("maildir:{}", maildir_name(path))
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
        let invalid = |e: SourceError| Error::Invalid(e.to_string());
        let sources: Vec<Source<'_>> = paths
            .iter()
            .map(|p| Source::of(p))
            .collect::<std::result::Result<_, _>>()
            .map_err(invalid)?;
        let mailboxes = self.mailboxes();
        let mut report = BounceReport::default();
        for source in sources {
            match source {
                Source::Maildir(dir) => {
                    for path in maildir_files(dir).map_err(invalid)? {
                        if in_cur(&path) && self.store.mail_processed(&maildir_key(&path))? {
                            report.messages += 1;
                            report.duplicates += 1;
                            continue;
                        }
                        let shown = path.display().to_string();
                        let Some(found) = mailbox::maildir_message(path) else {
                            tracing::debug!(
                                "{shown}: gone before it was read (moved by another program): passed over"
                            );
                            continue;
                        };
                        self.take(found, &mailboxes, &mut report)?;
                    }
                }
                Source::Mbox(path) => {
                    for found in Mbox::open(path).map_err(invalid)? {
                        let found = found.map_err(|e| Error::Io {
                            context: format!("reading {}", path.display()),
                            source: e,
                        })?;
                        self.take(found, &mailboxes, &mut report)?;
                    }
                }
                Source::File(path) => {
                    self.take(mailbox::file_message(path), &mailboxes, &mut report)?
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
                if let Some((owner, date)) = self.store.subscriber_by_message_id(id.as_str())? {
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
            let Some((s, date)) = self.store.subscriber_by_message_id(id.as_str())? else {
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
