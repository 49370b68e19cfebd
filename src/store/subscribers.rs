//! The subscribers table: who gets the digest, their topics and unsubscribe
//! tokens.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;

use super::{bounce_token, random_token, token_hash, ts, Result, Store, StoreError};

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
}

/// Active subscribers, counted from the status index.
pub(super) const ACTIVE_COUNT: &str = "SELECT COUNT(*) FROM subscribers WHERE status = 'active'";

impl Store {
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
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
        })
    }

    /// Adds subscribers in one transaction. An address already present is
    /// reactivated when `reactivate` is set, else reported as a duplicate.
    /// Returns, for each input, `Ok(id)` or `Err(reason)`.
    pub fn add_subscribers(
        &mut self,
        rows: &[NewSubscriber],
        now: DateTime<Utc>,
        reactivate: bool,
    ) -> Result<Vec<std::result::Result<i64, String>>> {
        let mut out = Vec::with_capacity(rows.len());
        self.add_subscribers_each(
            rows.iter().map(|r| ((), Ok(r.clone()))),
            now,
            reactivate,
            |(), result| out.push(result),
        )?;
        Ok(out)
    }

    /// Adds subscribers as they come, in one transaction, holding one row
    /// at a time (an import of a million rows streams through). Each item
    /// carries a tag (a line number) and the row or why it was rejected;
    /// `each` gets the tag back with the new (or reactivated) id or the
    /// reason. An address added earlier by the same call is reported as
    /// appearing earlier in the input.
    #[tracing::instrument(skip_all)]
    pub fn add_subscribers_each<T>(
        &mut self,
        rows: impl IntoIterator<Item = (T, std::result::Result<NewSubscriber, String>)>,
        now: DateTime<Utc>,
        reactivate: bool,
        mut each: impl FnMut(T, std::result::Result<i64, String>),
    ) -> Result<()> {
        let path = self.path.clone();
        let e = |context: &str| {
            let path = path.clone();
            let context = context.to_owned();
            move |source| StoreError {
                path,
                context,
                source,
            }
        };
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
                .prepare("INSERT INTO subscribers (email, name, status, topics, topics_only, token, token_hash, bounce_token, created_at, updated_at) VALUES (?1, ?2, ?8, ?3, ?4, ?5, ?6, ?9, ?7, ?7)")
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
                let result = match existing {
                    Some(id) if id > before => {
                        Err(format!("duplicate: {email} appears earlier in the file"))
                    }
                    Some(id) if reactivate => {
                        update
                            .execute(params![id, name, topics, topics_only, ts(now)])
                            .map_err(e("adding subscribers"))?;
                        Ok(id)
                    }
                    Some(_) => Err(format!("duplicate: {email} is already a subscriber")),
                    None => {
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
                                bounce_token(&token)
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

    /// Sets a subscriber's status; returns false when there is no such address.
    pub fn set_status(&self, email: &str, status: Status, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE subscribers SET status = ?2, updated_at = ?3 WHERE email = ?1",
                params![email, status.as_str(), ts(now)],
            )
            .map_err(self.err("updating a subscriber"))?;
        Ok(n > 0)
    }

    /// Deletes a subscriber and their delivery history.
    pub fn delete_subscriber(&self, email: &str) -> Result<bool> {
        let n = self
            .conn
            .execute("DELETE FROM subscribers WHERE email = ?1", [email])
            .map_err(self.err("deleting a subscriber"))?;
        Ok(n > 0)
    }

    /// Every subscriber, by id. The whole list: for small lists and tests;
    /// `for_each_subscriber` streams.
    pub fn subscribers(&self) -> Result<Vec<Subscriber>> {
        let mut out = Vec::new();
        self.for_each_subscriber(|s| {
            out.push(s);
            Ok(())
        })?;
        Ok(out)
    }

    /// Calls `each` with every subscriber, by id, one row in memory at a
    /// time. An error from `each` stops the walk and is returned.
    pub fn for_each_subscriber<E: From<StoreError>>(
        &self,
        mut each: impl FnMut(Subscriber) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM subscribers ORDER BY id")
            .map_err(self.err("listing subscribers"))?;
        let mut rows = stmt.query([]).map_err(self.err("listing subscribers"))?;
        while let Some(row) = rows.next().map_err(self.err("listing subscribers"))? {
            let sub = Self::subscriber_from_row(row).map_err(self.err("listing subscribers"))?;
            each(sub)?;
        }
        Ok(())
    }

    /// How many subscribers are active (by the status index).
    pub fn active_subscribers(&self) -> Result<usize> {
        self.conn
            .query_row(ACTIVE_COUNT, [], |r| r.get::<_, i64>(0))
            .map(|n| n as usize)
            .map_err(self.err("counting subscribers"))
    }

    /// The longest address and name, in characters (for aligned listings
    /// without holding the list).
    pub fn subscriber_widths(&self) -> Result<(usize, usize)> {
        self.conn
            .query_row(
                "SELECT COALESCE(MAX(LENGTH(email)), 0), COALESCE(MAX(LENGTH(name)), 0) FROM subscribers",
                [],
                |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize)),
            )
            .map_err(self.err("listing subscribers"))
    }

    /// The subscriber with this unsubscribe token. Looked up by the token's
    /// hash, then compared in constant time.
    pub fn subscriber_by_token(&self, token: &str) -> Result<Option<Subscriber>> {
        use subtle::ConstantTimeEq;
        let found = self
            .conn
            .query_row(
                "SELECT * FROM subscribers WHERE token_hash = ?1",
                [token_hash(token)],
                Self::subscriber_from_row,
            )
            .optional()
            .map_err(self.err("finding a subscriber"))?;
        Ok(found.filter(|s| bool::from(s.token.as_bytes().ct_eq(token.as_bytes()))))
    }

    /// The subscriber with this address.
    pub fn subscriber_by_email(&self, email: &str) -> Result<Option<Subscriber>> {
        self.conn
            .query_row(
                "SELECT * FROM subscribers WHERE email = ?1",
                [email],
                Self::subscriber_from_row,
            )
            .optional()
            .map_err(self.err("finding a subscriber"))
    }

    // ------------------------------------------------ unsubscribes that wait

    /// The file beside the database where unsubscribes that met a busy
    /// database wait: one token hash a line.
    pub fn unsubscribe_queue(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("{}.unsubscribes", self.path))
    }

    /// Unsubscribes the holder of `token` (RFC 8058 one-click). When another
    /// process holds the write lock for more than a moment, the request is
    /// appended to `unsubscribe_queue` and synced to disk instead: it is
    /// recorded either way before this returns, and applied by
    /// `apply_queued_unsubscribes` (which `serve` runs every few seconds and
    /// every send runs before it starts).
    pub fn unsubscribe_by_token(&self, token: &str, now: DateTime<Utc>) -> Result<Unsubscribed> {
        let Some(sub) = self.subscriber_by_token(token)? else {
            return Ok(Unsubscribed::Unknown);
        };
        if sub.status != Status::Active {
            return Ok(Unsubscribed::Already);
        }
        let _ = self
            .conn
            .busy_timeout(std::time::Duration::from_millis(1500));
        let updated = self.conn.execute(
            "UPDATE subscribers SET status = 'unsubscribed', updated_at = ?2 WHERE id = ?1",
            params![sub.id, ts(now)],
        );
        let _ = self.conn.busy_timeout(std::time::Duration::from_secs(10));
        match updated {
            Ok(_) => Ok(Unsubscribed::Done),
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) =>
            {
                self.queue_unsubscribe(&token_hash(token))
                    .map_err(|io| StoreError {
                        path: self.path.clone(),
                        context: format!(
                            "the database is busy and the unsubscribe queue {} cannot be written: {io}",
                            self.unsubscribe_queue().display()
                        ),
                        source: e,
                    })?;
                Ok(Unsubscribed::Queued)
            }
            Err(e) => Err(self.err("unsubscribing")(e)),
        }
    }

    fn apply_hashes(&self, hashes: &[&str], now: DateTime<Utc>) -> Result<()> {
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.err("applying queued unsubscribes"))?;
        for hash in hashes {
            tx.execute(
                "UPDATE subscribers SET status = 'unsubscribed', updated_at = ?2 WHERE token_hash = ?1 AND status = 'active'",
                params![hash, ts(now)],
            )
            .map_err(self.err("applying queued unsubscribes"))?;
        }
        tx.commit()
            .map_err(self.err("applying queued unsubscribes"))
    }

    fn queue_unsubscribe(&self, hash: &str) -> std::io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.unsubscribe_queue())?;
        file.lock()?;
        file.write_all(format!("{hash}\n").as_bytes())?;
        file.sync_all()
    }

    /// Applies the unsubscribes waiting in `unsubscribe_queue`, then empties
    /// it. The queue stays locked from reading to emptying (appends wait a
    /// moment), and the database commit is synced to disk before the queue
    /// is emptied: a crash at any point leaves every unsubscribe in one or
    /// the other. Returns how many were applied; a busy database leaves the
    /// queue for the next call.
    pub fn apply_queued_unsubscribes(&self, now: DateTime<Utc>) -> Result<usize> {
        use std::io::Read;
        let path = self.unsubscribe_queue();
        let queue_error = |e: std::io::Error| {
            tracing::warn!(
                "{}: {e}; its unsubscribes wait for the next try",
                path.display()
            );
            Ok(0)
        };
        let mut file = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return queue_error(e),
        };
        if let Err(e) = file.lock() {
            return queue_error(e);
        }
        let mut text = String::new();
        if let Err(e) = file.read_to_string(&mut text) {
            return queue_error(e);
        }
        let hashes: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        if hashes.is_empty() {
            return Ok(0);
        }
        // A short wait: a busy database leaves the queue for the next call.
        let _ = self
            .conn
            .busy_timeout(std::time::Duration::from_millis(200));
        let _ = self.conn.pragma_update(None, "synchronous", "FULL");
        let applied = self.apply_hashes(&hashes, now);
        let _ = self.conn.pragma_update(None, "synchronous", "NORMAL");
        let _ = self.conn.busy_timeout(std::time::Duration::from_secs(10));
        applied?;
        // Recorded durably in the database: the queue can go.
        if let Err(e) = file.set_len(0).and_then(|_| file.sync_all()) {
            tracing::warn!(
                "{}: {e} (its unsubscribes are applied; applying them again is harmless)",
                path.display()
            );
        }
        tracing::info!("{} queued unsubscribes applied", hashes.len());
        Ok(hashes.len())
    }
}

/// How long a visitor's sign-up or confirmation waits for another
/// process's write lock before it fails (and can be tried again).
const VISITOR_WAIT: std::time::Duration = std::time::Duration::from_millis(1500);

/// What a sign-up on the subscribe page (or `subscribers add --confirm`)
/// calls for. The page says the same thing in every case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignUp {
    /// Mail the confirmation link with this token.
    Confirm { token: String, new: bool },
    /// Already active: nothing to send.
    AlreadyActive,
    /// A confirmation went to this address less than `min_interval` ago.
    TooSoon,
}

/// What following a confirmation link did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// The subscriber is active now.
    Activated,
    /// Active already.
    Already,
    /// No confirmation is waiting for this token (or it expired).
    Unknown,
}

/// A sign-up's name and topics, kept until it is confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
struct Requested {
    name: Option<String>,
    topics: String,
}

impl Store {
    /// Records a sign-up that waits for confirmation. A new address is
    /// added as `pending`; an address that is not active keeps its status
    /// (and its history) until the link is followed, with the sign-up's
    /// name and topics kept beside it. No address is mailed more than once
    /// per `min_interval`.
    pub fn request_subscription(
        &self,
        email: &str,
        name: Option<&str>,
        topics: &str,
        now: DateTime<Utc>,
        min_interval: chrono::Duration,
    ) -> Result<SignUp> {
        self.with_short_wait(VISITOR_WAIT, || {
            self.request_subscription_now(email, name, topics, now, min_interval)
        })
    }

    fn request_subscription_now(
        &self,
        email: &str,
        name: Option<&str>,
        topics: &str,
        now: DateTime<Utc>,
        min_interval: chrono::Duration,
    ) -> Result<SignUp> {
        let e = "recording a sign-up";
        let tx = self.conn.unchecked_transaction().map_err(self.err(e))?;
        let existing: Option<(Subscriber, Option<String>)> = tx
            .query_row("SELECT * FROM subscribers WHERE email = ?1", [email], |r| {
                Ok((Self::subscriber_from_row(r)?, r.get("confirm_sent_at")?))
            })
            .optional()
            .map_err(self.err(e))?;
        let requested = serde_json::to_string(&Requested {
            name: name.map(str::to_owned),
            topics: topics.to_owned(),
        })
        .expect("serializes");
        let out = match existing {
            None => {
                let token = random_token();
                tx.execute(
                    "INSERT INTO subscribers (email, name, status, topics, topics_only, token, token_hash, bounce_token, created_at, updated_at, confirm_sent_at, pending_json)
                     VALUES (?1, ?2, 'pending', ?3, 0, ?4, ?5, ?6, ?7, ?7, ?7, ?8)",
                    params![email, name, topics, token, token_hash(&token), bounce_token(&token), ts(now), requested],
                )
                .map_err(self.err(e))?;
                SignUp::Confirm { token, new: true }
            }
            Some((sub, _)) if sub.status == Status::Active => SignUp::AlreadyActive,
            Some((_, Some(sent)))
                if DateTime::parse_from_rfc3339(&sent)
                    .is_ok_and(|t| now.signed_duration_since(t) < min_interval) =>
            {
                SignUp::TooSoon
            }
            Some((sub, _)) => {
                tx.execute(
                    "UPDATE subscribers SET confirm_sent_at = ?2, pending_json = ?3 WHERE id = ?1",
                    params![sub.id, ts(now), requested],
                )
                .map_err(self.err(e))?;
                SignUp::Confirm {
                    token: sub.token,
                    new: false,
                }
            }
        };
        tx.commit().map_err(self.err(e))?;
        Ok(out)
    }

    /// Forgets that a confirmation was mailed (it could not be sent).
    pub fn forget_confirmation_sent(&self, id: i64) -> Result<()> {
        self.conn
            .execute(
                "UPDATE subscribers SET confirm_sent_at = NULL WHERE id = ?1",
                [id],
            )
            .map(drop)
            .map_err(self.err("recording a sign-up"))
    }

    /// Whether `token` has a confirmation waiting (for the Confirm page).
    pub fn confirmation_waiting(
        &self,
        token: &str,
        now: DateTime<Utc>,
        expires: chrono::Duration,
    ) -> Result<Option<Subscriber>> {
        let Some(sub) = self.subscriber_by_token(token)? else {
            return Ok(None);
        };
        let waiting: Option<(Option<String>, Option<String>)> = self
            .conn
            .query_row(
                "SELECT pending_json, confirm_sent_at FROM subscribers WHERE id = ?1",
                [sub.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(self.err("reading a sign-up"))?;
        let fresh = |sent: &Option<String>| {
            sent.as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_some_and(|t| now.signed_duration_since(t) < expires)
        };
        Ok(match waiting {
            Some((Some(_), sent)) if fresh(&sent) => Some(sub),
            _ if sub.status == Status::Active => Some(sub),
            _ => None,
        })
    }

    /// Follows a confirmation link: the subscriber becomes active, with the
    /// name and topics of their sign-up.
    pub fn confirm_subscription(
        &self,
        token: &str,
        now: DateTime<Utc>,
        expires: chrono::Duration,
    ) -> Result<Confirmed> {
        self.with_short_wait(VISITOR_WAIT, || {
            self.confirm_subscription_now(token, now, expires)
        })
    }

    fn confirm_subscription_now(
        &self,
        token: &str,
        now: DateTime<Utc>,
        expires: chrono::Duration,
    ) -> Result<Confirmed> {
        let e = "confirming a subscription";
        let Some(sub) = self.confirmation_waiting(token, now, expires)? else {
            return Ok(Confirmed::Unknown);
        };
        let pending: Option<String> = self
            .conn
            .query_row(
                "SELECT pending_json FROM subscribers WHERE id = ?1",
                [sub.id],
                |r| r.get(0),
            )
            .map_err(self.err(e))?;
        let Some(pending) = pending else {
            return Ok(Confirmed::Already);
        };
        let requested: Requested = serde_json::from_str(&pending).unwrap_or(Requested {
            name: sub.name.clone(),
            topics: sub.topics.clone(),
        });
        self.conn
            .execute(
                "UPDATE subscribers SET status = 'active', name = COALESCE(?2, name), topics = ?3, soft_bounces = 0,
                     pending_json = NULL, updated_at = ?4 WHERE id = ?1",
                params![sub.id, requested.name, requested.topics, ts(now)],
            )
            .map_err(self.err(e))?;
        Ok(if sub.status == Status::Active {
            Confirmed::Already
        } else {
            Confirmed::Activated
        })
    }

    /// Deletes sign-ups never confirmed within `expires` of their last
    /// confirmation mail, and forgets expired re-subscriptions of known
    /// addresses (which keep their status). Returns how many were deleted.
    /// Waits only a moment for the database: when another process holds
    /// it, nothing is purged now (serve must not stall on it; the next call
    /// purges).
    pub fn purge_pending(&self, now: DateTime<Utc>, expires: chrono::Duration) -> Result<usize> {
        let cutoff = ts(now - expires);
        let purged: rusqlite::Result<usize> = self.with_short_wait(std::time::Duration::from_millis(200), || {
            self.conn.execute_batch("BEGIN IMMEDIATE")?;
            let deleted = self.conn.execute(
                "DELETE FROM subscribers WHERE status = 'pending' AND COALESCE(confirm_sent_at, created_at) < ?1",
                [&cutoff],
            )?;
            self.conn.execute(
                "UPDATE subscribers SET pending_json = NULL WHERE pending_json IS NOT NULL AND COALESCE(confirm_sent_at, created_at) < ?1",
                [&cutoff],
            )?;
            self.conn.execute_batch("COMMIT")?;
            Ok(deleted)
        });
        let deleted = match purged {
            Ok(n) => n,
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) {
                    tracing::debug!(
                        "the database is busy: unconfirmed sign-ups are purged next time"
                    );
                    return Ok(0);
                }
                return Err(self.err("purging unconfirmed sign-ups")(e));
            }
        };
        if deleted > 0 {
            tracing::info!("{deleted} unconfirmed sign-ups purged");
        }
        Ok(deleted)
    }
}

/// What a one-click unsubscribe did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsubscribed {
    /// No subscriber has this token.
    Unknown,
    /// Not active already.
    Already,
    /// Recorded in the database.
    Done,
    /// The database was busy: recorded durably in the queue beside it.
    Queued,
}
