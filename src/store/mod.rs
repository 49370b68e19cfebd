//! Storage, behind one interface a second backend can implement.
//!
//! `Store` is an open database of any backend: a box of `dyn Backend`,
//! and `Backend` is every table's operations, one trait per table group,
//! each declared beside its SQLite implementation: `subscribers`,
//! `signups`, `unsubscribes` (and their queue file, `queue.rs`),
//! `mail_events`, `editions`, `deliveries`, `articles` (feeds and what
//! they brought) and `cache`. `sqlite.rs` opens the SQLite file and
//! `migrations.rs` brings its schema up to date.
//!
//! The traits are object safe: callers hold a `Store`, never a backend.
//! What must be generic (editions of the caller's type, a walk over the
//! subscribers that the caller's error may stop) is written once, on
//! `dyn Backend`, over the traits' primitives. Every delivery state change
//! is its own transaction: the delivery log is what makes a re-run after a
//! crash send each subscriber exactly one copy. Editions, articles and
//! summaries are kept as JSON the store does not interpret: it sits below
//! every layer that gives them meaning.

mod articles;
mod cache;
pub mod copy;
mod deliveries;
mod editions;
mod mail_events;
mod migrations;
mod pg;
pub mod queue;
mod readers;
mod signups;
mod sqlite;
mod subscribers;
mod unsubscribes;

use std::path::Path;

use chrono::{DateTime, NaiveDate, Utc};

pub use articles::{Articles, FeedState};
pub use cache::Caches;
pub use copy::{Tables, Value};
pub use deliveries::{Deliveries, Delivery, DeliveryState, MessageIds, OpenCounts};
pub use editions::{Editions, LogEntry, Refused, StoredEdition};
pub use mail_events::{Applied, MailEvent, MailEvents};
pub use pg::{Connect, Postgres};
pub use queue::QueueFile;
pub use readers::{Preferences, Published, Readers};
pub use signups::{Asker, Confirmed, SignUp, SignUps, Waiting};
pub use sqlite::Sqlite;
pub use subscribers::{NewSubscriber, Status, Subscriber, Subscribers};
pub use unsubscribes::{Unsubscribed, Unsubscribes};

/// SHA-256 of a token, hex: what subscribers are looked up by, so that the
/// lookup's timing says nothing about the token itself.
pub fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The subscriber's VERP token: 80 bits derived from the unsubscribe
/// token (so the bounce address never carries the token itself), hex. It
/// is the `+TOKEN` of the envelope sender (`bounces+TOKEN@example.com`) and
/// of the unsubscribe mailto, and is looked up by its index.
pub fn bounce_token(token: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"dailydigest bounce token\0");
    h.update(token.as_bytes());
    h.finalize()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What kind of storage failure: what a caller may decide by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Another process holds the database (its write lock) longer than we
    /// waited: try again later.
    Busy,
    /// The database, or where it lives, may not be written.
    ReadOnly,
    Other,
}

/// A storage failure, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("database {path}: {context}: {source}")]
pub struct StoreError {
    pub path: String,
    pub context: String,
    pub kind: ErrorKind,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

impl StoreError {
    /// Another process holds the database longer than we waited.
    pub fn is_busy(&self) -> bool {
        self.kind == ErrorKind::Busy
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How a command may open the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read and write; create the file when it is missing.
    Create,
    /// Read and write a database that must exist.
    Existing,
    /// Read a database that must exist; read-only when it cannot be written.
    ReadOnly,
}

/// Every table's operations: what a storage backend implements.
pub trait Backend:
    Subscribers
    + SignUps
    + Unsubscribes
    + MailEvents
    + Editions
    + Deliveries
    + Articles
    + Caches
    + Readers
    + copy::Tables
    + Send
{
    /// The schema version.
    fn version(&self) -> Result<usize>;

    /// Whether the database was opened read-only (the caches keep nothing
    /// new then).
    fn is_read_only(&self) -> bool;

    /// Where the database is, as error messages name it.
    fn location(&self) -> &str;
}

/// An open database.
pub struct Store(Box<dyn Backend>);

impl Store {
    /// Opens (creating if needed) the SQLite database at `path` and
    /// migrates it.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, Access::Create)
    }

    /// Opens the SQLite database at `path` as `access` allows: `Create`
    /// makes it when missing; `Existing` and `ReadOnly` refuse to (a
    /// command run in the wrong folder must not start an empty list), and
    /// `ReadOnly` falls back to reading a database it may not write.
    pub fn open_with(path: &Path, access: Access) -> Result<Store> {
        Ok(Store::new(Sqlite::open_with(path, access)?))
    }

    /// Connects to the PostgreSQL database `connect` names and migrates it.
    pub fn connect(connect: &Connect, access: Access) -> Result<Store> {
        Postgres::connect(connect, access).map(Store::new)
    }

    /// An in-memory SQLite database (tests, dry runs).
    pub fn in_memory() -> Result<Store> {
        Ok(Store::new(Sqlite::in_memory()?))
    }

    /// A store over any backend.
    pub fn new(backend: impl Backend + 'static) -> Store {
        Store(Box::new(backend))
    }
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &(dyn Backend + 'static) {
        &*self.0
    }
}

impl std::ops::DerefMut for Store {
    fn deref_mut(&mut self) -> &mut (dyn Backend + 'static) {
        &mut *self.0
    }
}

/// What is generic over the caller's types, written once over every
/// backend's primitives.
impl dyn Backend {
    /// The stored edition of `date`, if one was stored. One that no longer
    /// parses as `E` (a schema change) reads as none.
    pub fn edition<E: serde::de::DeserializeOwned>(
        &self,
        date: NaiveDate,
    ) -> Result<Option<StoredEdition<E>>> {
        Ok(self.edition_json(date)?.and_then(StoredEdition::parse))
    }

    /// Stores an edition (the first one stored for a date is kept: a re-run
    /// sends what the first run sent) and returns what is stored.
    pub fn store_edition<E: serde::Serialize + serde::de::DeserializeOwned>(
        &self,
        date: NaiveDate,
        edition: &E,
        now: DateTime<Utc>,
    ) -> Result<StoredEdition<E>> {
        let json = serde_json::to_string(edition).expect("editions serialize");
        let stored = self.store_edition_json(date, &json, now)?;
        stored.parse().ok_or_else(|| StoreError {
            path: self.location().to_owned(),
            context: format!("storing the edition of {date}"),
            kind: ErrorKind::Other,
            source: "the edition stored for that date is of another kind".into(),
        })
    }

    /// Replaces an edition's content, only if it is still at `version` and
    /// sending has not started; records the change in its log
    /// (`Editions::change_edition_json`).
    pub fn change_edition<E: serde::Serialize>(
        &self,
        id: i64,
        version: i64,
        edition: &E,
        user: &str,
        change: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<i64, Refused>> {
        let json = serde_json::to_string(edition).expect("editions serialize");
        self.change_edition_json(id, version, &json, user, change, now)
    }

    /// Calls `each` with every subscriber, by id, one in memory at a time.
    /// An error from `each` stops the walk and is returned.
    pub fn for_each_subscriber<E: From<StoreError>>(
        &self,
        mut each: impl FnMut(Subscriber) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut failed = None;
        self.visit_subscribers(&mut |s| match each(s) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        })?;
        failed.map_or(Ok(()), Err)
    }
}

pub(crate) fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// 128 random bits as 32 hex digits, from the operating system's generator.
pub fn random_token() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random number generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[path = "../../tests/support/postgres.rs"]
pub(crate) mod test_server;

#[cfg(test)]
pub(crate) mod testing {
    //! What the store's tests share.
    use super::*;

    /// An empty store of each backend: SQLite in memory, and a schema of
    /// its own on the test PostgreSQL server. The store's tests run on both.
    pub(crate) fn stores() -> Vec<Store> {
        vec![Store::in_memory().unwrap(), postgres()]
    }

    /// An empty store on the test PostgreSQL server.
    pub(crate) fn postgres() -> Store {
        let connect = Connect {
            url: super::test_server::fresh_url(),
            ..Connect::default()
        };
        Store::connect(&connect, Access::Create).unwrap()
    }

    pub(crate) fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2022-03-14T06:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    pub(crate) fn row(email: &str) -> NewSubscriber {
        NewSubscriber {
            email: email.into(),
            name: Some("Name".into()),
            topics: String::new(),
            topics_only: false,
            status: Status::Active,
            bounces: 0,
            last_bounce: None,
            paused_until: None,
        }
    }
}
