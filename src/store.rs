//! SQLite storage: subscribers, editions, deliveries and the summary cache.
//!
//! One file (WAL mode), migrations embedded and applied in order on open
//! (`PRAGMA user_version` records how far). Every delivery state change is
//! its own transaction: the delivery log is what makes a re-run after a
//! crash send each subscriber exactly one copy.

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::digest::Edition;

/// The migrations, in order. Never edit one that has shipped: add another.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        name TEXT,
        status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'unsubscribed', 'bounced')),
        topics TEXT NOT NULL DEFAULT '',
        token TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE editions (
        id INTEGER PRIMARY KEY,
        date TEXT NOT NULL UNIQUE,
        content_hash TEXT NOT NULL,
        edition_json TEXT NOT NULL,
        rendered_at TEXT NOT NULL
    );
    CREATE TABLE deliveries (
        edition_id INTEGER NOT NULL REFERENCES editions(id),
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
        state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'sent', 'failed', 'retry')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        message_id TEXT NOT NULL,
        next_attempt_at TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        sent_at TEXT,
        PRIMARY KEY (edition_id, subscriber_id)
    );
    CREATE INDEX deliveries_state ON deliveries (edition_id, state);
    CREATE TABLE summary_cache (
        article_hash TEXT NOT NULL,
        settings TEXT NOT NULL,
        summary_json TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (article_hash, settings)
    );",
    // 2: feeds, fetched articles, topic-only subscribers, token lookup by hash.
    "ALTER TABLE subscribers ADD COLUMN topics_only INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE subscribers ADD COLUMN token_hash TEXT;
    CREATE UNIQUE INDEX subscribers_token_hash ON subscribers (token_hash);
    CREATE TABLE feeds (
        name TEXT PRIMARY KEY,
        url TEXT NOT NULL,
        etag TEXT,
        last_modified TEXT,
        failures INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_fetched_at TEXT
    );
    CREATE TABLE articles (
        id TEXT PRIMARY KEY,
        feed TEXT NOT NULL,
        guid TEXT,
        link TEXT,
        content_hash TEXT NOT NULL,
        edition_date TEXT NOT NULL,
        first_seen_at TEXT NOT NULL,
        article_json TEXT NOT NULL
    );
    CREATE INDEX articles_guid ON articles (feed, guid);
    CREATE INDEX articles_link ON articles (link);
    CREATE INDEX articles_hash ON articles (content_hash);
    CREATE INDEX articles_date ON articles (edition_date);",
];

/// SHA-256 of a token, hex: what subscribers are looked up by, so that the
/// lookup's timing says nothing about the token itself.
pub fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A storage failure, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("database {path}: {context}: {source}")]
pub struct StoreError {
    pub path: String,
    pub context: String,
    #[source]
    pub source: rusqlite::Error,
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Subscriber status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Unsubscribed,
    Bounced,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Unsubscribed => "unsubscribed",
            Status::Bounced => "bounced",
        }
    }

    fn parse(s: &str) -> Status {
        match s {
            "unsubscribed" => Status::Unsubscribed,
            "bounced" => Status::Bounced,
            _ => Status::Active,
        }
    }
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
}

/// A feed's fetch state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedState {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub failures: u32,
}

/// The state of one (edition, subscriber) delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    Pending,
    Sending,
    Sent,
    Failed,
    Retry,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sending => "sending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Retry => "retry",
        }
    }

    fn parse(s: &str) -> DeliveryState {
        match s {
            "sending" => DeliveryState::Sending,
            "sent" => DeliveryState::Sent,
            "failed" => DeliveryState::Failed,
            "retry" => DeliveryState::Retry,
            _ => DeliveryState::Pending,
        }
    }
}

/// One delivery: an edition to a subscriber.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub edition_id: i64,
    pub subscriber: Subscriber,
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub message_id: String,
    pub next_attempt_at: Option<DateTime<Utc>>,
}

/// A stored edition.
#[derive(Debug, Clone)]
pub struct StoredEdition {
    pub id: i64,
    pub edition: Edition,
    pub content_hash: String,
    pub rendered_at: String,
}

/// The database.
pub struct Store {
    conn: Connection,
    path: String,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// 128 random bits as 32 hex digits, from the operating system's generator.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store> {
        let shown = path.display().to_string();
        let err = |context: &str| {
            let shown = shown.clone();
            let context = context.to_owned();
            move |source| StoreError {
                path: shown,
                context,
                source,
            }
        };
        let conn = Connection::open(path).map_err(err("opening"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err("setting the busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err("setting synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err("enabling foreign keys"))?;
        let mut store = Store { conn, path: shown };
        store.migrate()?;
        Ok(store)
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<Store> {
        let conn = Connection::open_in_memory().map_err(|source| StoreError {
            path: ":memory:".into(),
            context: "opening".into(),
            source,
        })?;
        let mut store = Store {
            conn,
            path: ":memory:".into(),
        };
        store.migrate()?;
        Ok(store)
    }

    fn err(&self, context: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        let context = context.into();
        move |source| StoreError {
            path: self.path.clone(),
            context,
            source,
        }
    }

    #[tracing::instrument(skip(self))]
    fn migrate(&mut self) -> Result<()> {
        let version = self.version()?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            // IMMEDIATE: two processes opening a new database at once take
            // turns, and the second sees the first one's work.
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|source| StoreError {
                    path: self.path.clone(),
                    context: "migrating".into(),
                    source,
                })?;
            let current: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(|source| StoreError {
                    path: self.path.clone(),
                    context: "migrating".into(),
                    source,
                })?;
            if current as usize > i {
                continue;
            }
            tx.execute_batch(sql).map_err(|source| StoreError {
                path: self.path.clone(),
                context: format!("migration {}", i + 1),
                source,
            })?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|source| StoreError {
                    path: self.path.clone(),
                    context: "migrating".into(),
                    source,
                })?;
            tx.commit().map_err(|source| StoreError {
                path: self.path.clone(),
                context: "migrating".into(),
                source,
            })?;
            tracing::debug!("database migrated to version {}", i + 1);
        }
        let missing: Vec<(i64, String)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id, token FROM subscribers WHERE token_hash IS NULL")
                .map_err(self.err("hashing tokens"))?;
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(self.err("hashing tokens"))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(self.err("hashing tokens"))?
        };
        for (id, token) in missing {
            self.conn
                .execute(
                    "UPDATE subscribers SET token_hash = ?2 WHERE id = ?1",
                    params![id, token_hash(&token)],
                )
                .map_err(self.err("hashing tokens"))?;
        }
        Ok(())
    }

    /// The schema version.
    pub fn version(&self) -> Result<usize> {
        let v: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.err("reading the schema version"))?;
        Ok(v as usize)
    }

    // ---------------------------------------------------------------- subscribers

    fn subscriber_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Subscriber> {
        Ok(Subscriber {
            id: r.get("id")?,
            email: r.get("email")?,
            name: r.get("name")?,
            status: Status::parse(&r.get::<_, String>("status")?),
            topics: r.get("topics")?,
            topics_only: r.get::<_, i64>("topics_only")? != 0,
            token: r.get("token")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
        })
    }

    /// Adds subscribers in one transaction. An address already present is
    /// reactivated when `reactivate` is set, else reported as a duplicate.
    /// Returns, for each input, `Ok(id)` or `Err(reason)`.
    #[tracing::instrument(skip(self, rows))]
    pub fn add_subscribers(
        &mut self,
        rows: &[NewSubscriber],
        now: DateTime<Utc>,
        reactivate: bool,
    ) -> Result<Vec<std::result::Result<i64, String>>> {
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
        let mut out = Vec::with_capacity(rows.len());
        {
            let mut find = tx
                .prepare("SELECT id, status FROM subscribers WHERE email = ?1")
                .map_err(e("adding subscribers"))?;
            let mut insert = tx
                .prepare("INSERT INTO subscribers (email, name, status, topics, topics_only, token, token_hash, created_at, updated_at) VALUES (?1, ?2, 'active', ?3, ?4, ?5, ?6, ?7, ?7)")
                .map_err(e("adding subscribers"))?;
            let mut update = tx
                .prepare("UPDATE subscribers SET status = 'active', name = COALESCE(?2, name), topics = ?3, topics_only = ?4, updated_at = ?5 WHERE id = ?1")
                .map_err(e("adding subscribers"))?;
            for NewSubscriber {
                email,
                name,
                topics,
                topics_only,
            } in rows
            {
                let existing: Option<(i64, String)> = find
                    .query_row([email], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
                    .map_err(e("adding subscribers"))?;
                match existing {
                    Some((id, _)) if reactivate => {
                        update
                            .execute(params![id, name, topics, topics_only, ts(now)])
                            .map_err(e("adding subscribers"))?;
                        out.push(Ok(id));
                    }
                    Some(_) => out.push(Err(format!("duplicate: {email} is already a subscriber"))),
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
                                ts(now)
                            ])
                            .map_err(e("adding subscribers"))?;
                        out.push(Ok(tx.last_insert_rowid()));
                    }
                }
            }
        }
        tx.commit().map_err(e("adding subscribers"))?;
        Ok(out)
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

    /// Every subscriber, by id.
    pub fn subscribers(&self) -> Result<Vec<Subscriber>> {
        let mut stmt = self
            .conn
            .prepare("SELECT * FROM subscribers ORDER BY id")
            .map_err(self.err("listing subscribers"))?;
        let rows = stmt
            .query_map([], Self::subscriber_from_row)
            .map_err(self.err("listing subscribers"))?;
        rows.collect::<rusqlite::Result<_>>()
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

    // ---------------------------------------------------------------- editions

    /// The stored edition of `date`, if one was stored.
    pub fn edition(&self, date: NaiveDate) -> Result<Option<StoredEdition>> {
        let row: Option<(i64, String, String, String)> = self
            .conn
            .query_row(
                "SELECT id, edition_json, content_hash, rendered_at FROM editions WHERE date = ?1",
                [date.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(self.err("reading an edition"))?;
        Ok(row.and_then(|(id, json, content_hash, rendered_at)| {
            serde_json::from_str(&json)
                .ok()
                .map(|edition| StoredEdition {
                    id,
                    edition,
                    content_hash,
                    rendered_at,
                })
        }))
    }

    /// Stores an edition (the first one stored for a date is kept: a re-run
    /// sends what the first run sent).
    pub fn store_edition(&self, edition: &Edition, now: DateTime<Utc>) -> Result<StoredEdition> {
        let json = serde_json::to_string(edition).expect("editions serialize");
        let hash = crate::article::short_hash(&[&json]);
        self.conn
            .execute(
                "INSERT OR IGNORE INTO editions (date, content_hash, edition_json, rendered_at) VALUES (?1, ?2, ?3, ?4)",
                params![edition.date.to_string(), hash, json, ts(now)],
            )
            .map_err(self.err("storing an edition"))?;
        self.edition(edition.date)?.ok_or_else(|| StoreError {
            path: self.path.clone(),
            context: "storing an edition".into(),
            source: rusqlite::Error::QueryReturnedNoRows,
        })
    }

    // ---------------------------------------------------------------- deliveries

    /// Creates a pending delivery for every active subscriber who has none
    /// for this edition yet. Returns how many were created.
    pub fn plan_deliveries(
        &self,
        edition_id: i64,
        message_id: impl Fn(&Subscriber) -> String,
        now: DateTime<Utc>,
    ) -> Result<usize> {
        let missing: Vec<Subscriber> = {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT s.* FROM subscribers s WHERE s.status = 'active' AND NOT EXISTS
                     (SELECT 1 FROM deliveries d WHERE d.edition_id = ?1 AND d.subscriber_id = s.id) ORDER BY s.id",
                )
                .map_err(self.err("planning deliveries"))?;
            let rows = stmt
                .query_map([edition_id], Self::subscriber_from_row)
                .map_err(self.err("planning deliveries"))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(self.err("planning deliveries"))?
        };
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.err("planning deliveries"))?;
        {
            let mut insert = tx
                .prepare(
                    "INSERT OR IGNORE INTO deliveries (edition_id, subscriber_id, state, message_id, created_at, updated_at)
                     VALUES (?1, ?2, 'pending', ?3, ?4, ?4)",
                )
                .map_err(self.err("planning deliveries"))?;
            for s in &missing {
                insert
                    .execute(params![edition_id, s.id, message_id(s), ts(now)])
                    .map_err(self.err("planning deliveries"))?;
            }
        }
        tx.commit().map_err(self.err("planning deliveries"))?;
        Ok(missing.len())
    }

    /// Deliveries of an edition in the given states, by subscriber id,
    /// leaving out subscribers who are no longer active.
    pub fn deliveries(&self, edition_id: i64, states: &[DeliveryState]) -> Result<Vec<Delivery>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT d.state, d.attempts, d.last_error, d.message_id, d.next_attempt_at, s.*
                 FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
                 WHERE d.edition_id = ?1 AND s.status = 'active' ORDER BY s.id",
            )
            .map_err(self.err("reading deliveries"))?;
        let rows = stmt
            .query_map([edition_id], |r| {
                Ok(Delivery {
                    edition_id,
                    state: DeliveryState::parse(&r.get::<_, String>(0)?),
                    attempts: r.get(1)?,
                    last_error: r.get(2)?,
                    message_id: r.get(3)?,
                    next_attempt_at: r
                        .get::<_, Option<String>>(4)?
                        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                        .map(|t| t.with_timezone(&Utc)),
                    subscriber: Self::subscriber_from_row(r)?,
                })
            })
            .map_err(self.err("reading deliveries"))?;
        let all: Vec<Delivery> = rows
            .collect::<rusqlite::Result<_>>()
            .map_err(self.err("reading deliveries"))?;
        Ok(all
            .into_iter()
            .filter(|d| states.contains(&d.state))
            .collect())
    }

    /// Counts of an edition's deliveries by state.
    pub fn delivery_counts(&self, edition_id: i64) -> Result<Vec<(DeliveryState, usize)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT state, COUNT(*) FROM deliveries WHERE edition_id = ?1 GROUP BY state ORDER BY state")
            .map_err(self.err("counting deliveries"))?;
        let rows = stmt
            .query_map([edition_id], |r| {
                Ok((
                    DeliveryState::parse(&r.get::<_, String>(0)?),
                    r.get::<_, i64>(1)? as usize,
                ))
            })
            .map_err(self.err("counting deliveries"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.err("counting deliveries"))
    }

    /// Marks a delivery as being sent, in its own transaction, before the
    /// message leaves: a crash after this point is recognised by the next run.
    pub fn mark_sending(
        &self,
        edition_id: i64,
        subscriber_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        // Only a delivery that is still open, to a subscriber who is still
        // active: someone who unsubscribed mid-run gets nothing more.
        let n = self
            .conn
            .execute(
                "UPDATE deliveries SET state = 'sending', attempts = attempts + 1, updated_at = ?3
                 WHERE edition_id = ?1 AND subscriber_id = ?2 AND state IN ('pending', 'retry', 'sending')
                 AND subscriber_id IN (SELECT id FROM subscribers WHERE status = 'active')",
                params![edition_id, subscriber_id, ts(now)],
            )
            .map_err(self.err("recording a delivery"))?;
        Ok(n > 0)
    }

    /// Records the outcome of a send attempt.
    pub fn mark_done(
        &self,
        edition_id: i64,
        subscriber_id: i64,
        state: DeliveryState,
        error: Option<&str>,
        next_attempt_at: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let sent_at = (state == DeliveryState::Sent).then(|| ts(now));
        self.conn
            .execute(
                "UPDATE deliveries SET state = ?3, last_error = ?4, next_attempt_at = ?5, updated_at = ?6, sent_at = COALESCE(?7, sent_at)
                 WHERE edition_id = ?1 AND subscriber_id = ?2",
                params![edition_id, subscriber_id, state.as_str(), error, next_attempt_at.map(ts), ts(now), sent_at],
            )
            .map_err(self.err("recording a delivery"))?;
        Ok(())
    }

    // ---------------------------------------------------------------- feeds

    pub fn feed_state(&self, name: &str) -> Result<FeedState> {
        Ok(self
            .conn
            .query_row(
                "SELECT etag, last_modified, failures FROM feeds WHERE name = ?1",
                [name],
                |r| {
                    Ok(FeedState {
                        etag: r.get(0)?,
                        last_modified: r.get(1)?,
                        failures: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(self.err("reading a feed"))?
            .unwrap_or_default())
    }

    /// Records a fetch: success resets the failure count, failure adds one.
    /// Returns the consecutive failures after this fetch.
    pub fn record_fetch(
        &self,
        name: &str,
        url: &str,
        result: std::result::Result<(Option<String>, Option<String>), &str>,
        now: DateTime<Utc>,
    ) -> Result<u32> {
        let previous = self.feed_state(name)?;
        let (etag, last_modified, failures, error) = match result {
            Ok((etag, lm)) => (
                etag.or(previous.etag),
                lm.or(previous.last_modified),
                0,
                None,
            ),
            Err(e) => (
                previous.etag,
                previous.last_modified,
                previous.failures + 1,
                Some(e.to_owned()),
            ),
        };
        self.conn
            .execute(
                "INSERT INTO feeds (name, url, etag, last_modified, failures, last_error, last_fetched_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (name) DO UPDATE SET url = ?2, etag = ?3, last_modified = ?4, failures = ?5, last_error = ?6, last_fetched_at = ?7",
                params![name, url, etag, last_modified, failures, error, ts(now)],
            )
            .map_err(self.err("recording a fetch"))?;
        Ok(failures)
    }

    /// Whether an item was stored before: same GUID in the same feed, same
    /// link, or same content.
    pub fn article_seen(
        &self,
        feed: &str,
        guid: Option<&str>,
        link: Option<&str>,
        content_hash: &str,
    ) -> Result<bool> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM articles WHERE (feed = ?1 AND guid IS NOT NULL AND guid = ?2) OR (link IS NOT NULL AND link = ?3) OR content_hash = ?4",
                params![feed, guid, link, content_hash],
                |r| r.get(0),
            )
            .map_err(self.err("looking up an article"))?;
        Ok(n > 0)
    }

    /// Stores a fetched article for its edition date.
    pub fn store_article(
        &self,
        feed: &str,
        guid: Option<&str>,
        content_hash: &str,
        article: &crate::article::Article,
        edition_date: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let json = serde_json::to_string(article).expect("articles serialize");
        let n = self
            .conn
            .execute(
                "INSERT OR IGNORE INTO articles (id, feed, guid, link, content_hash, edition_date, first_seen_at, article_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![article.id, feed, guid, article.url, content_hash, edition_date.to_string(), ts(now), json],
            )
            .map_err(self.err("storing an article"))?;
        Ok(n > 0)
    }

    /// The fetched articles of an edition date, in the order first seen.
    pub fn articles_for(&self, date: NaiveDate) -> Result<Vec<crate::article::Article>> {
        let mut stmt = self
            .conn
            .prepare("SELECT article_json FROM articles WHERE edition_date = ?1 ORDER BY first_seen_at, id")
            .map_err(self.err("reading articles"))?;
        let rows = stmt
            .query_map([date.to_string()], |r| r.get::<_, String>(0))
            .map_err(self.err("reading articles"))?;
        let jsons: Vec<String> = rows
            .collect::<rusqlite::Result<_>>()
            .map_err(self.err("reading articles"))?;
        Ok(jsons
            .iter()
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect())
    }

    // ---------------------------------------------------------------- summary cache

    pub fn cached_summary(&self, article_hash: &str, settings: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT summary_json FROM summary_cache WHERE article_hash = ?1 AND settings = ?2",
                [article_hash, settings],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("reading the summary cache"))
    }

    pub fn cache_summary(
        &self,
        article_hash: &str,
        settings: &str,
        summary_json: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.conn
            .execute(
                "INSERT OR REPLACE INTO summary_cache (article_hash, settings, summary_json, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![article_hash, settings, summary_json, ts(now)],
            )
            .map_err(self.err("writing the summary cache"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2022-03-14T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn row(email: &str) -> NewSubscriber {
        NewSubscriber {
            email: email.into(),
            name: Some("Name".into()),
            topics: String::new(),
            topics_only: false,
        }
    }

    #[test]
    fn migrations_run_once_on_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        let s = Store::open(&path).unwrap();
        assert_eq!(s.version().unwrap(), MIGRATIONS.len());
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.version().unwrap(), MIGRATIONS.len());
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn subscribers_are_unique_case_insensitively_with_unguessable_tokens() {
        let mut s = Store::in_memory().unwrap();
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

    #[test]
    fn delivery_state_machine() {
        let mut s = Store::in_memory().unwrap();
        s.add_subscribers(&[row("a@example.com"), row("b@example.com")], now(), false)
            .unwrap();
        let e = s
            .store_edition(&crate::render::sample_edition(), now())
            .unwrap();
        assert_eq!(
            s.plan_deliveries(e.id, |sub| format!("<{}@x>", sub.id), now())
                .unwrap(),
            2
        );
        assert_eq!(
            s.plan_deliveries(e.id, |sub| format!("<{}@x>", sub.id), now())
                .unwrap(),
            0,
            "planned once"
        );
        let pending = s.deliveries(e.id, &[DeliveryState::Pending]).unwrap();
        assert_eq!(pending.len(), 2);
        let a = pending[0].subscriber.id;
        assert!(s.mark_sending(e.id, a, now()).unwrap());
        s.mark_done(e.id, a, DeliveryState::Sent, None, None, now())
            .unwrap();
        let counts = s.delivery_counts(e.id).unwrap();
        assert_eq!(
            counts,
            [(DeliveryState::Pending, 1), (DeliveryState::Sent, 1)]
        );
        let sent = s.deliveries(e.id, &[DeliveryState::Sent]).unwrap();
        assert_eq!(sent[0].attempts, 1);
        assert_eq!(sent[0].message_id, format!("<{a}@x>"));
        assert!(
            !s.mark_sending(e.id, a, now()).unwrap(),
            "a sent delivery is not claimed again"
        );
        let b = pending[1].subscriber.id;
        s.set_status("b@example.com", Status::Unsubscribed, now())
            .unwrap();
        assert!(
            !s.mark_sending(e.id, b, now()).unwrap(),
            "nor one to a subscriber who left"
        );
        assert!(!format!("{:?}", pending[0].subscriber).contains(&pending[0].subscriber.token));
    }

    #[test]
    fn the_first_stored_edition_of_a_date_is_kept() {
        let s = Store::in_memory().unwrap();
        let first = s
            .store_edition(&crate::render::sample_edition(), now())
            .unwrap();
        let mut other = crate::render::sample_edition();
        other.stories.truncate(1);
        let again = s.store_edition(&other, now()).unwrap();
        assert_eq!(first.id, again.id);
        assert_eq!(again.edition.stories.len(), 4);
    }
}
