//! SQLite storage, one file per table group: `subscribers`, `signups`,
//! `unsubscribes` (and their queue, `queue.rs`), `editions`,
//! `deliveries`, `articles` (feeds and what they brought), `cache` (the
//! summary cache) and `migrations`.
//!
//! One file (WAL mode), migrations embedded and applied in order on open
//! (`PRAGMA user_version` records how far). Every delivery state change is
//! its own transaction: the delivery log is what makes a re-run after a
//! crash send each subscriber exactly one copy. Editions, articles and
//! summaries are kept as JSON the store does not interpret: it sits below
//! every layer that gives them meaning.

mod articles;
mod cache;
mod deliveries;
mod editions;
mod mail_events;
mod migrations;
pub mod queue;
mod signups;
mod subscribers;
mod unsubscribes;

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

pub use articles::FeedState;
pub use deliveries::{Delivery, DeliveryState, OpenCounts};
pub use editions::{LogEntry, Refused, StoredEdition};
pub use mail_events::{Applied, MailEvent};
pub use queue::QueueFile;
pub use signups::{Asker, Confirmed, SignUp, Waiting};
pub use subscribers::{NewSubscriber, Status, Subscriber};
pub use unsubscribes::Unsubscribed;

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

/// A storage failure, with what was being done.
#[derive(Debug, thiserror::Error)]
#[error("database {path}: {context}: {source}")]
pub struct StoreError {
    pub path: String,
    pub context: String,
    #[source]
    pub source: rusqlite::Error,
}

impl StoreError {
    /// Another process holds the database (its write lock) longer than we
    /// waited: try again later.
    pub fn is_busy(&self) -> bool {
        is_busy(&self.source)
    }
}

/// Whether SQLite said the database is busy or locked.
pub(crate) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
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

/// The database.
pub struct Store {
    conn: Connection,
    path: String,
    read_only: bool,
}

fn sqlite_error(code: std::os::raw::c_int, message: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), Some(message.to_owned()))
}

/// An error that says the file or its folder cannot be written.
fn is_read_only(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
    )
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

impl Store {
    /// Runs `f` waiting at most `wait` (instead of ten seconds) for another
    /// process's write lock: what `serve` does for a visitor must not hold
    /// the server up behind a long write elsewhere.
    pub(crate) fn with_short_wait<T>(&self, wait: std::time::Duration, f: impl FnOnce() -> T) -> T {
        let _ = self.conn.busy_timeout(wait);
        let out = f();
        let _ = self.conn.busy_timeout(std::time::Duration::from_secs(10));
        out
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction: the write lock is
    /// taken at the start, so a writer in another process makes this wait
    /// (up to the busy timeout) instead of failing half-way with a stale
    /// snapshot. Rolled back on error.
    pub(crate) fn immediate<T>(
        &self,
        context: &str,
        f: impl FnOnce(&Store) -> rusqlite::Result<T>,
    ) -> Result<T> {
        let tx = rusqlite::Transaction::new_unchecked(
            &self.conn,
            rusqlite::TransactionBehavior::Immediate,
        )
        .map_err(self.err(context))?;
        let out = f(self).map_err(self.err(context))?;
        tx.commit().map_err(self.err(context))?;
        Ok(out)
    }

    /// Opens (creating if needed) the database at `path` and migrates it.
    pub fn open(path: &Path) -> Result<Store> {
        Store::open_with(path, Access::Create)
    }

    /// Opens the database at `path` as `access` allows: `Create` makes it
    /// when missing; `Existing` and `ReadOnly` refuse to (a command run in
    /// the wrong folder must not start an empty list), and `ReadOnly` falls
    /// back to reading a database it may not write.
    pub fn open_with(path: &Path, access: Access) -> Result<Store> {
        // Without `Create`, SQLite itself refuses a missing file.
        match Store::open_read_write(path, access == Access::Create) {
            Ok(store) => Ok(store),
            Err(e) if is_read_only(&e.source) && access == Access::ReadOnly => {
                tracing::debug!("{e}; reading it read-only");
                Store::open_read_only(path)
            }
            Err(e) if is_read_only(&e.source) => Err(StoreError {
                context: format!(
                    "{}: the database or its folder is read-only (digest writes the file and, beside it, its -wal and -shm files)",
                    e.context
                ),
                ..e
            }),
            Err(e) => Err(e),
        }
    }

    fn open_read_write(path: &Path, create: bool) -> Result<Store> {
        use rusqlite::OpenFlags;
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
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        }
        let conn = Connection::open_with_flags(path, flags).map_err(err("opening"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(err("setting the busy timeout"))?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err("enabling WAL"))?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err("setting synchronous"))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(err("enabling foreign keys"))?;
        let mut store = Store {
            conn,
            path: shown,
            read_only: false,
        };
        store.migrate()?;
        Ok(store)
    }

    /// A database this process may only read: no migration (it must be
    /// current), and the summary cache keeps nothing.
    fn open_read_only(path: &Path) -> Result<Store> {
        use rusqlite::OpenFlags;
        let shown = path.display().to_string();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StoreError {
            path: shown.clone(),
            context: "opening read-only".into(),
            source,
        })?;
        let store = Store {
            conn,
            path: shown,
            read_only: true,
        };
        let version = store.version()?;
        if version != migrations::MIGRATIONS.len() {
            return Err(StoreError {
                path: store.path.clone(),
                context: format!(
                    "the database is read-only and at schema version {version}; this digest needs {} (run a command that may write it once)",
                    migrations::MIGRATIONS.len()
                ),
                source: sqlite_error(rusqlite::ffi::SQLITE_READONLY, "read-only"),
            });
        }
        Ok(store)
    }

    /// Whether the database was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
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
            read_only: false,
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

    /// The schema version.
    pub fn version(&self) -> Result<usize> {
        let v: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.err("reading the schema version"))?;
        Ok(v as usize)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! What the store's tests share.
    use super::*;

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
        }
    }
}
