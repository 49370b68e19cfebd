//! The subscribers table: who gets the digest, their topics and unsubscribe
//! tokens.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{bounce_token, random_token, token_hash, ts, Result, Sqlite};

/// Subscriber status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    /// Signed up on the subscribe page (or `subscribers add --confirm`),
    /// not yet confirmed: never sent the digest, purged after
    /// `confirm_days`.
    Pending,
    Unsubscribed,
    /// A permanent delivery failure, or `soft_bounce_limit` temporary ones
    /// in a row: no longer sent to, kept for the record.
    Bounced,
    /// Marked the digest as spam (an ARF feedback report): never sent to
    /// again unless they subscribe again and confirm.
    Complained,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Pending => "pending",
            Status::Unsubscribed => "unsubscribed",
            Status::Bounced => "bounced",
            Status::Complained => "complained",
        }
    }

    fn parse(s: &str) -> Status {
        Status::from_name(s).unwrap_or(Status::Active)
    }

    /// `active`, `pending`, `unsubscribed`, `bounced` or `complained`
    /// (any case).
    pub fn from_name(s: &str) -> Option<Status> {
        match s.to_ascii_lowercase().as_str() {
            "active" => Some(Status::Active),
            "pending" => Some(Status::Pending),
            "unsubscribed" => Some(Status::Unsubscribed),
            "bounced" => Some(Status::Bounced),
            "complained" => Some(Status::Complained),
            _ => None,
        }
    }

    /// Every status, for messages that list them.
    pub const NAMES: &'static str = "active, pending, unsubscribed, bounced or complained";
}

/// One subscriber. Its `Debug` leaves the token out.
#[derive(Clone, PartialEq, Serialize)]
pub struct Subscriber {
    pub id: i64,
    pub email: String,
    pub name: Option<String>,
    pub status: Status,
    /// Topics, comma-separated keywords.
    pub topics: String,
    /// Only stories matching the topics (else: matching stories first).
    pub topics_only: bool,
    /// The unsubscribe token: 128 random bits, hex. Never logged.
    #[serde(skip)]
    pub token: String,
    /// Bounce reports received (permanent and temporary).
    pub bounces: u32,
    /// Temporary failures in a row (`soft_bounce_limit` of them bounce).
    pub soft_bounces: u32,
    /// The last bounce: its status code and diagnostic.
    pub last_bounce: Option<String>,
    /// Paused by the subscriber (the preferences page): no edition dated
    /// before this day is sent to them.
    pub paused_until: Option<NaiveDate>,
    pub created_at: String,
    pub updated_at: String,
}

impl std::fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscriber")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("name", &self.name)
            .field("status", &self.status)
            .field("topics", &self.topics)
            .field("topics_only", &self.topics_only)
            .field("paused_until", &self.paused_until)
            .field("token", &"(hidden)")
            .finish()
    }
}

/// A subscriber to add.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubscriber {
    pub email: String,
    pub name: Option<String>,
    /// Comma-separated topics.
    pub topics: String,
    pub topics_only: bool,
    /// `Active` for a new subscriber; an import restores what an export
    /// recorded.
    pub status: Status,
    /// Bounce reports received, and the last one's status (an import
    /// restores what an export recorded).
    pub bounces: u32,
    pub last_bounce: Option<String>,
    /// A pause the subscriber set (an import restores what an export
    /// recorded).
    pub paused_until: Option<NaiveDate>,
}

/// What an import does with a row: its address is `existing` (that
/// subscriber's id), `before` the largest id before the import began.
pub(super) enum Adding {
    Insert,
    Reactivate(i64),
    Duplicate(String),
}

pub(super) fn adding(email: &str, existing: Option<i64>, before: i64, reactivate: bool) -> Adding {
    match existing {
        Some(id) if id > before => {
            Adding::Duplicate(format!("duplicate: {email} appears earlier in the file"))
        }
        Some(id) if reactivate => Adding::Reactivate(id),
        Some(_) => Adding::Duplicate(format!("duplicate: {email} is already a subscriber")),
        None => Adding::Insert,
    }
}

/// Active subscribers, counted from the status index.
pub(super) const ACTIVE_COUNT: &str = "SELECT COUNT(*) FROM subscribers WHERE status = 'active'";

/// The list.
pub trait Subscribers {
    /// Adds subscribers in one transaction. An address already present is
    /// reactivated when `reactivate` is set, else reported as a duplicate.
    /// Returns, for each input, `Ok(id)` or `Err(reason)`.
    fn add_subscribers(
        &mut self,
        rows: &[NewSubscriber],
        now: DateTime<Utc>,
        reactivate: bool,
    ) -> Result<Vec<std::result::Result<i64, String>>> {
        let mut out = Vec::with_capacity(rows.len());
        self.add_subscribers_each(
            &mut rows.iter().map(|r| (0, Ok(r.clone()))),
            now,
            reactivate,
            &mut |_, result| out.push(result),
        )?;
        Ok(out)
    }

    /// Adds subscribers as they come, in one transaction, holding one row
    /// at a time (an import of a million rows streams through). Each item
    /// carries a tag (a line number) and the row or why it was rejected;
    /// `each` gets the tag back with the new (or reactivated) id or the
    /// reason. An address added earlier by the same call is reported as
    /// appearing earlier in the input.
    fn add_subscribers_each(
        &mut self,
        rows: &mut dyn Iterator<Item = (u64, std::result::Result<NewSubscriber, String>)>,
        now: DateTime<Utc>,
        reactivate: bool,
        each: &mut dyn FnMut(u64, std::result::Result<i64, String>),
    ) -> Result<()>;

    /// Sets a subscriber's status; returns false when there is no such address.
    fn set_status(&self, email: &str, status: Status, now: DateTime<Utc>) -> Result<bool>;

    /// Deletes a subscriber and their delivery history.
    fn delete_subscriber(&self, email: &str) -> Result<bool>;

    /// Every subscriber, by id. The whole list: for small lists and tests;
    /// `for_each_subscriber` streams.
    fn subscribers(&self) -> Result<Vec<Subscriber>> {
        let mut out = Vec::new();
        self.visit_subscribers(&mut |s| {
            out.push(s);
            true
        })?;
        Ok(out)
    }

    /// Calls `each` with every subscriber, by id, one row in memory at a
    /// time, until it returns false.
    fn visit_subscribers(&self, each: &mut dyn FnMut(Subscriber) -> bool) -> Result<()>;

    /// How many subscribers are active (by the status index).
    fn active_subscribers(&self) -> Result<usize>;

    /// The longest address and name, in characters (for aligned listings
    /// without holding the list).
    fn subscriber_widths(&self) -> Result<(usize, usize)>;

    /// The subscriber with this unsubscribe token. Looked up by the token's
    /// hash, then compared in constant time.
    fn subscriber_by_token(&self, token: &str) -> Result<Option<Subscriber>>;

    /// The subscriber with this address.
    fn subscriber_by_email(&self, email: &str) -> Result<Option<Subscriber>>;
}

impl Subscribers for Sqlite {
    #[tracing::instrument(skip_all)]
    fn add_subscribers_each(
        &mut self,
        rows: &mut dyn Iterator<Item = (u64, std::result::Result<NewSubscriber, String>)>,
        now: DateTime<Utc>,
        reactivate: bool,
        each: &mut dyn FnMut(u64, std::result::Result<i64, String>),
    ) -> Result<()> {
        let path = self.path.clone();
        let e = |context: &str| super::sqlite::error_at(&path, context);
        let tx = self.conn.transaction().map_err(e("adding subscribers"))?;
        {
            let before: i64 = tx
                .query_row("SELECT COALESCE(MAX(id), 0) FROM subscribers", [], |r| {
                    r.get(0)
                })
                .map_err(e("adding subscribers"))?;
            let mut find = tx
                .prepare("SELECT id FROM subscribers WHERE email = ?1")
                .map_err(e("adding subscribers"))?;
            let mut insert = tx
                .prepare("INSERT INTO subscribers (email, name, status, topics, topics_only, token, token_hash, bounce_token, created_at, updated_at, bounces, last_bounce, paused_until) VALUES (?1, ?2, ?8, ?3, ?4, ?5, ?6, ?9, ?7, ?7, ?10, ?11, ?12)")
                .map_err(e("adding subscribers"))?;
            let mut update = tx
                .prepare("UPDATE subscribers SET status = 'active', name = COALESCE(?2, name), topics = ?3, topics_only = ?4, updated_at = ?5 WHERE id = ?1")
                .map_err(e("adding subscribers"))?;
            for (tag, row) in rows {
                let NewSubscriber {
                    email,
                    name,
                    topics,
                    topics_only,
                    status,
                    bounces,
                    last_bounce,
                    paused_until,
                } = match row {
                    Ok(row) => row,
                    Err(reason) => {
                        each(tag, Err(reason));
                        continue;
                    }
                };
                let existing: Option<i64> = find
                    .query_row([&email], |r| r.get(0))
                    .optional()
                    .map_err(e("adding subscribers"))?;
                let result = match adding(&email, existing, before, reactivate) {
                    Adding::Duplicate(why) => Err(why),
                    Adding::Reactivate(id) => {
                        update
                            .execute(params![id, name, topics, topics_only, ts(now)])
                            .map_err(e("adding subscribers"))?;
                        Ok(id)
                    }
                    Adding::Insert => {
                        let token = random_token();
                        insert
                            .execute(params![
                                email,
                                name,
                                topics,
                                topics_only,
                                token,
                                token_hash(&token),
                                ts(now),
                                status.as_str(),
                                bounce_token(&token),
                                bounces,
                                last_bounce,
                                paused_until.map(|d| d.to_string())
                            ])
                            .map_err(e("adding subscribers"))?;
                        Ok(tx.last_insert_rowid())
                    }
                };
                each(tag, result);
            }
        }
        tx.commit().map_err(e("adding subscribers"))?;
        Ok(())
    }

    fn set_status(&self, email: &str, status: Status, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE subscribers SET status = ?2, updated_at = ?3 WHERE email = ?1",
                params![email, status.as_str(), ts(now)],
            )
            .map_err(self.err("updating a subscriber"))?;
        Ok(n > 0)
    }

    fn delete_subscriber(&self, email: &str) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM subscribers WHERE email = ?1", [email])
            .map_err(self.err("deleting a subscriber"))?;
        Ok(n > 0)
    }

    fn visit_subscribers(&self, each: &mut dyn FnMut(Subscriber) -> bool) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM subscribers ORDER BY id")
            .map_err(self.err("listing subscribers"))?;
        let mut rows = stmt.query([]).map_err(self.err("listing subscribers"))?;
        while let Some(row) = rows.next().map_err(self.err("listing subscribers"))? {
            let sub = Sqlite::subscriber_from_row(row).map_err(self.err("listing subscribers"))?;
            if !each(sub) {
                break;
            }
        }
        Ok(())
    }

    fn active_subscribers(&self) -> Result<usize> {
        self.conn
            .query_row(ACTIVE_COUNT, [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(self.err("counting subscribers"))
    }

    fn subscriber_widths(&self) -> Result<(usize, usize)> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(LENGTH(email)), 0), COALESCE(MAX(LENGTH(name)), 0) FROM subscribers",
                [],
                |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize)),
            )
            .map_err(self.err("listing subscribers"))
    }

    fn subscriber_by_token(&self, token: &str) -> Result<Option<Subscriber>> {
        use subtle::ConstantTimeEq;
        let found = self
            .conn
            .query_row(
                "SELECT * FROM subscribers WHERE token_hash = ?1",
                [token_hash(token)],
                Sqlite::subscriber_from_row,
            )
            .optional()
            .map_err(self.err("finding a subscriber"))?;
        Ok(found.filter(|s| bool::from(s.token.as_bytes().ct_eq(token.as_bytes()))))
    }

    fn subscriber_by_email(&self, email: &str) -> Result<Option<Subscriber>> {
        self.conn
            .query_row(
                "SELECT * FROM subscribers WHERE email = ?1",
                [email],
                Sqlite::subscriber_from_row,
            )
            .optional()
            .map_err(self.err("finding a subscriber"))
    }
}

impl Sqlite {
    pub(super) fn subscriber_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Subscriber> {
        Ok(Subscriber {
            id: r.get("id")?,
            email: r.get("email")?,
            name: r.get("name")?,
            status: Status::parse(&r.get::<_, String>("status")?),
            topics: r.get("topics")?,
            topics_only: r.get::<_, i64>("topics_only")? != 0,
            token: r.get("token")?,
            bounces: r.get("bounces")?,
            soft_bounces: r.get("soft_bounces")?,
            last_bounce: r.get("last_bounce")?,
            paused_until: r
                .get::<_, Option<String>>("paused_until")?
                .and_then(|d| d.parse().ok()),
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
        })
    }
}

/// How long a visitor's sign-up, confirmation or unsubscribe waits for
/// another process's write lock before it is queued or fails.
pub(super) const VISITOR_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{now, row};

    #[test]
    fn subscribers_are_unique_case_insensitively_with_unguessable_tokens() {
        for mut s in crate::store::testing::stores() {
            let out = s
                .add_subscribers(
                    &[
                        row("a@example.com"),
                        row("A@example.com"),
                        row("b@example.com"),
                    ],
                    now(),
                    false,
                )
                .unwrap();
            assert!(
                out[0].is_ok() && out[1].is_err() && out[2].is_ok(),
                "{out:?}"
            );
            let subs = s.subscribers().unwrap();
            assert_eq!(subs.len(), 2);
            assert_eq!(subs[0].token.len(), 32);
            assert_ne!(subs[0].token, subs[1].token);
            assert_eq!(
                s.subscriber_by_token(&subs[1].token)
                    .unwrap()
                    .unwrap()
                    .email,
                "b@example.com"
            );
            assert!(s
                .set_status("a@example.com", Status::Unsubscribed, now())
                .unwrap());
            assert!(!s
                .set_status("nobody@example.com", Status::Unsubscribed, now())
                .unwrap());
        }
    }

    #[test]
    fn an_import_streams_and_names_duplicates_within_it() {
        for mut s in crate::store::testing::stores() {
            s.add_subscribers(&[row("old@example.com")], now(), false)
                .unwrap();
            let input = vec![
                (1, Ok(row("new@example.com"))),
                (2, Err("invalid address".to_string())),
                (3, Ok(row("OLD@example.com"))),
                (4, Ok(row("New@example.com"))),
            ];
            let mut results = Vec::new();
            s.add_subscribers_each(&mut input.into_iter(), now(), false, &mut |line, r| {
                results.push((line, r))
            })
            .unwrap();
            assert!(results[0].1.is_ok());
            assert_eq!(results[1].1.as_ref().unwrap_err(), "invalid address");
            assert!(results[2]
                .1
                .as_ref()
                .unwrap_err()
                .contains("already a subscriber"));
            assert!(results[3]
                .1
                .as_ref()
                .unwrap_err()
                .contains("appears earlier in the file"));
            assert_eq!(s.subscribers().unwrap().len(), 2);
        }
    }
}
