//! What bounce, complaint and unsubscribe messages did to subscribers:
//! each processed message recorded by its key (its Message-ID, or a hash of
//! its bytes) in the same transaction as its effect, so a message imported
//! twice counts once.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{ts, Result, Sqlite, Status, Subscriber};

/// What a processed message says about one subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailEvent {
    /// A permanent failure (5.x.x): the subscriber is `bounced`.
    HardBounce { status: String },
    /// A temporary failure (4.x.x) of the edition `edition` (its date, when
    /// the bounce names our Message-ID). `limit` of them in a row make the
    /// subscriber `bounced`; a report of the same edition again (a delay
    /// warning, then its final failure) counts once.
    SoftBounce {
        status: String,
        edition: Option<String>,
        limit: u32,
    },
    /// A delivery status notification of success: the soft count resets.
    Delivered,
    /// An abuse report (ARF): the subscriber is `complained`.
    Complaint { feedback_type: String },
    /// A message to the unsubscribe address: the subscriber is
    /// `unsubscribed`.
    Unsubscribe,
}

impl MailEvent {
    /// The event's kind, as `mail_events` and `mail_processed` record it.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            MailEvent::HardBounce { .. } => "hard bounce",
            MailEvent::SoftBounce { .. } => "soft bounce",
            MailEvent::Delivered => "delivered",
            MailEvent::Complaint { .. } => "complaint",
            MailEvent::Unsubscribe => "unsubscribe",
        }
    }
}

/// What a mail event does to a subscriber: the rules, in one place for
/// every backend.
pub(super) struct Change {
    pub(super) after: Status,
    /// Temporary failures in a row.
    pub(super) soft: u32,
    /// The edition the last one counted was of.
    pub(super) soft_key: Option<String>,
    pub(super) bounces: u32,
    pub(super) last_bounce: Option<String>,
    /// What the event log says.
    pub(super) detail: String,
    /// Whether it was a bounce (its time is recorded).
    pub(super) bounced_now: bool,
}

impl MailEvent {
    /// What `self` does to `sub`, whose last counted soft bounce was of
    /// `last_soft_key`. `delivered_between(last, date)` says whether an
    /// edition between two soft-bounced ones was delivered (which breaks
    /// the run).
    pub(super) fn change<E>(
        &self,
        sub: &Subscriber,
        last_soft_key: Option<String>,
        delivered_between: impl FnOnce(&str, &str) -> std::result::Result<bool, E>,
    ) -> std::result::Result<Change, E> {
        let before = sub.status;
        let mut after = before;
        let mut soft = sub.soft_bounces;
        let mut soft_key = last_soft_key.clone();
        let mut bounces = sub.bounces;
        let mut last_bounce = sub.last_bounce.clone();
        let detail;
        match self {
            MailEvent::HardBounce { status } => {
                bounces += 1;
                last_bounce = Some(status.clone());
                if matches!(before, Status::Active | Status::Pending) {
                    after = Status::Bounced;
                }
                detail = status.clone();
            }
            MailEvent::SoftBounce {
                status,
                edition,
                limit,
            } => {
                bounces += 1;
                last_bounce = Some(status.clone());
                detail = match edition {
                    Some(date) => format!("{status} (edition {date})"),
                    None => status.clone(),
                };
                let counts = match (edition, &last_soft_key) {
                    // Another report of an edition counted already, or of
                    // an older one.
                    (Some(date), Some(last)) if date.as_str() <= last.as_str() => false,
                    (Some(date), Some(last)) => {
                        if delivered_between(last, date)? {
                            soft = 0;
                        }
                        true
                    }
                    _ => true,
                };
                if counts {
                    soft += 1;
                    if edition.is_some() {
                        soft_key = edition.clone();
                    }
                }
                if soft >= (*limit).max(1) && matches!(before, Status::Active | Status::Pending) {
                    after = Status::Bounced;
                }
            }
            MailEvent::Delivered => {
                soft = 0;
                soft_key = None;
                detail = "delivery reported".into();
            }
            MailEvent::Complaint { feedback_type } => {
                if before != Status::Complained {
                    after = Status::Complained;
                }
                detail = format!("feedback type {feedback_type}");
            }
            MailEvent::Unsubscribe => {
                if matches!(before, Status::Active | Status::Pending) {
                    after = Status::Unsubscribed;
                }
                detail = "by email".into();
            }
        }
        Ok(Change {
            after,
            soft,
            soft_key,
            bounces,
            last_bounce,
            detail,
            bounced_now: !matches!(
                self,
                MailEvent::Delivered | MailEvent::Complaint { .. } | MailEvent::Unsubscribe
            ),
        })
    }
}

/// What applying a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// A message with this key was processed before: nothing changed.
    Duplicate,
    /// Recorded. The subscriber's status before and after, and their
    /// temporary failures in a row.
    Done {
        before: Status,
        after: Status,
        soft_bounces: u32,
    },
}

/// What came back: bounces, complaints and unsubscribe mail, each message
/// applied once.
pub trait MailEvents {
    /// Whether a message with this key was processed already.
    fn mail_processed(&self, key: &str) -> Result<bool>;

    /// The subscriber whose VERP bounce token this is.
    fn subscriber_by_bounce_token(&self, bounce_token: &str) -> Result<Option<Subscriber>>;

    /// The subscriber a digest with this Message-ID went to, and the
    /// edition's date.
    fn subscriber_by_message_id(&self, message_id: &str) -> Result<Option<(Subscriber, String)>>;

    /// The date of the latest edition sent to subscriber `id` (what a
    /// temporary failure that names no edition is counted against).
    fn last_sent_edition(&self, id: i64) -> Result<Option<String>>;

    /// Applies what the message `key` says about subscriber `id`, and
    /// records the key, in one transaction.
    fn apply_mail_event(
        &self,
        key: &str,
        id: i64,
        event: &MailEvent,
        now: DateTime<Utc>,
    ) -> Result<Applied>;

    /// Records a message as processed with no subscriber to change (a
    /// `not-spam` feedback report, say). False when it was recorded already
    /// (by an earlier or a concurrent import).
    fn record_mail_processed(&self, key: &str, outcome: &str, now: DateTime<Utc>) -> Result<bool>;
}

impl MailEvents for Sqlite {
    fn mail_processed(&self, key: &str) -> Result<bool> {
        self.conn
            .query_row("SELECT 1 FROM mail_processed WHERE key = ?1", [key], |_| {
                Ok(())
            })
            .optional()
            .map(|found| found.is_some())
            .map_err(self.err("reading the processed mail"))
    }

    fn subscriber_by_bounce_token(&self, bounce_token: &str) -> Result<Option<Subscriber>> {
        self.conn
            .query_row(
                "SELECT * FROM subscribers WHERE bounce_token = ?1",
                [bounce_token.to_ascii_lowercase()],
                Sqlite::subscriber_from_row,
            )
            .optional()
            .map_err(self.err("finding a subscriber"))
    }

    fn subscriber_by_message_id(&self, message_id: &str) -> Result<Option<(Subscriber, String)>> {
        let found: Option<(i64, String)> = self
            .conn
            .query_row(
                "SELECT d.subscriber_id, e.date FROM deliveries d JOIN editions e ON e.id = d.edition_id WHERE d.message_id = ?1",
                [message_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err("finding a delivery by Message-ID"))?;
        let Some((id, date)) = found else {
            return Ok(None);
        };
        let sub = self
            .conn
            .query_row(
                "SELECT * FROM subscribers WHERE id = ?1",
                [id],
                Sqlite::subscriber_from_row,
            )
            .optional()
            .map_err(self.err("finding a subscriber"))?;
        Ok(sub.map(|s| (s, date)))
    }

    fn last_sent_edition(&self, id: i64) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT MAX(e.date) FROM deliveries d JOIN editions e ON e.id = d.edition_id
                 WHERE d.subscriber_id = ?1 AND d.state = 'sent'",
                [id],
                |r| r.get(0),
            )
            .map_err(self.err("reading the delivery log"))
    }

    fn apply_mail_event(
        &self,
        key: &str,
        id: i64,
        event: &MailEvent,
        now: DateTime<Utc>,
    ) -> Result<Applied> {
        // IMMEDIATE: two imports at once take turns, and the second sees
        // the first one's record of the message.
        self.immediate("recording a bounce or complaint", |store| {
            store.apply_mail_event_now(key, id, event, now)
        })
    }

    fn record_mail_processed(&self, key: &str, outcome: &str, now: DateTime<Utc>) -> Result<bool> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO mail_processed (key, at, outcome) VALUES (?1, ?2, ?3)",
                params![key, ts(now), outcome],
            )
            .map(|n| n == 1)
            .map_err(self.err("recording processed mail"))
    }
}

impl Sqlite {
    fn apply_mail_event_now(
        &self,
        key: &str,
        id: i64,
        event: &MailEvent,
        now: DateTime<Utc>,
    ) -> rusqlite::Result<Applied> {
        let tx = &self.conn;
        let seen = tx
            .query_row("SELECT 1 FROM mail_processed WHERE key = ?1", [key], |_| {
                Ok(())
            })
            .optional()?
            .is_some();
        if seen {
            return Ok(Applied::Duplicate);
        }
        let (sub, last_soft_key): (Subscriber, Option<String>) =
            tx.query_row("SELECT * FROM subscribers WHERE id = ?1", [id], |r| {
                Ok((Sqlite::subscriber_from_row(r)?, r.get("last_soft_key")?))
            })?;
        let change = event.change(&sub, last_soft_key, |last, date| {
            // An edition sent between the two that drew no bounce was
            // delivered: the run is broken.
            let n: i64 = tx.query_row(
                "SELECT COUNT(*) FROM deliveries d JOIN editions e ON e.id = d.edition_id
                 WHERE d.subscriber_id = ?1 AND d.state = 'sent' AND e.date > ?2 AND e.date < ?3",
                params![id, last, date],
                |r| r.get(0),
            )?;
            Ok::<_, rusqlite::Error>(n > 0)
        })?;
        let Change {
            after,
            soft,
            soft_key,
            bounces,
            last_bounce,
            detail,
            bounced_now,
        } = change;
        let before = sub.status;
        tx.execute(
            "UPDATE subscribers SET status = ?2, soft_bounces = ?3, last_soft_key = ?4, bounces = ?5, last_bounce = ?6,
                 last_bounce_at = CASE WHEN ?7 THEN ?8 ELSE last_bounce_at END,
                 updated_at = CASE WHEN ?9 THEN ?8 ELSE updated_at END
             WHERE id = ?1",
            params![
                id,
                after.as_str(),
                soft,
                soft_key,
                bounces,
                last_bounce,
                bounced_now,
                ts(now),
                after != before
            ],
        )?;
        tx.execute(
            "INSERT INTO mail_events (at, subscriber_id, kind, detail) VALUES (?1, ?2, ?3, ?4)",
            params![ts(now), id, event.kind(), detail],
        )?;
        tx.execute(
            "INSERT INTO mail_processed (key, at, outcome) VALUES (?1, ?2, ?3)",
            params![key, ts(now), event.kind()],
        )?;
        Ok(Applied::Done {
            before,
            after,
            soft_bounces: soft,
        })
    }
}

#[cfg(test)]
mod tests;
