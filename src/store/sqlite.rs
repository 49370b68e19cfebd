//! The SQLite backend: one file (WAL mode), migrations embedded and
//! applied in order on open (`PRAGMA user_version` records how far). Each
//! table's operations are implemented beside their interface (the table
//! files); this file opens the database and turns SQLite's errors into
//! `StoreError`s.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};

use super::{bounce_token, migrations, token_hash, Access, Backend, ErrorKind, Result, StoreError};

/// A `StoreError` from SQLite's, with its kind (busy, read-only) kept.
pub(super) fn error(path: &str, context: impl Into<String>, e: rusqlite::Error) -> StoreError {
    let kind = if is_busy(&e) {
        ErrorKind::Busy
    } else if is_read_only(&e) {
        ErrorKind::ReadOnly
    } else {
        ErrorKind::Other
    };
    StoreError {
        path: path.to_owned(),
        context: context.into(),
        kind,
        source: Box::new(e),
    }
}

/// `error` as a `map_err` argument.
pub(super) fn error_at(
    path: &str,
    context: &str,
) -> impl FnOnce(rusqlite::Error) -> StoreError + use<> {
    let path = path.to_owned();
    let context = context.to_owned();
    move |e| error(&path, context, e)
}

/// Whether SQLite said the database is busy or locked.
pub(super) fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// An error that says the file or its folder cannot be written.
fn is_read_only(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
    )
}

/// The SQLite database: one file in WAL mode.
pub struct Sqlite {
    pub(super) conn: Connection,
    pub(super) path: String,
    pub(super) read_only: bool,
}

impl Sqlite {
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
        f: impl FnOnce(&Sqlite) -> rusqlite::Result<T>,
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
    pub fn open(path: &Path) -> Result<Sqlite> {
        Sqlite::open_with(path, Access::Create)
    }

    /// Opens the database at `path` as `access` allows: `Create` makes it
    /// when missing; `Existing` and `ReadOnly` refuse to (a command run in
    /// the wrong folder must not start an empty list), and `ReadOnly` falls
    /// back to reading a database it may not write.
    pub fn open_with(path: &Path, access: Access) -> Result<Sqlite> {
        // Without `Create`, SQLite itself refuses a missing file.
        match Sqlite::open_read_write(path, access == Access::Create) {
            Ok(store) => Ok(store),
            Err(e) if e.kind == ErrorKind::ReadOnly && access == Access::ReadOnly => {
                tracing::debug!("{e}; reading it read-only");
                Sqlite::open_read_only(path)
            }
            Err(e) if e.kind == ErrorKind::ReadOnly => Err(StoreError {
                context: format!(
                    "{}: the database or its folder is read-only (digest writes the file and, beside it, its -wal and -shm files)",
                    e.context
                ),
                ..e
            }),
            Err(e) => Err(e),
        }
    }

    fn open_read_write(path: &Path, create: bool) -> Result<Sqlite> {
        use rusqlite::OpenFlags;
        let shown = path.display().to_string();
        let err = |context: &str| {
            let shown = shown.clone();
            let context = context.to_owned();
            move |source| error(&shown, context, source)
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
        let mut store = Sqlite {
            conn,
            path: shown,
            read_only: false,
        };
        store.migrate()?;
        Ok(store)
    }

    /// A database this process may only read: no migration (it must be
    /// current), and the summary cache keeps nothing.
    fn open_read_only(path: &Path) -> Result<Sqlite> {
        use rusqlite::OpenFlags;
        let shown = path.display().to_string();
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| error(&shown, "opening read-only", source))?;
        let store = Sqlite {
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
                kind: ErrorKind::ReadOnly,
                source: "read-only".into(),
            });
        }
        Ok(store)
    }

    /// An in-memory database (tests).
    pub fn in_memory() -> Result<Sqlite> {
        let conn =
            Connection::open_in_memory().map_err(|source| error(":memory:", "opening", source))?;
        let mut store = Sqlite {
            conn,
            path: ":memory:".into(),
            read_only: false,
        };
        store.migrate()?;
        Ok(store)
    }

    pub(super) fn err(
        &self,
        context: impl Into<String>,
    ) -> impl FnOnce(rusqlite::Error) -> StoreError + '_ {
        let context = context.into();
        move |source| error(&self.path, context, source)
    }
}

/// Bringing the schema up to date (`migrations.rs` holds the steps).
impl Sqlite {
    #[tracing::instrument(skip(self))]
    pub(super) fn migrate(&mut self) -> Result<()> {
        let version = self.version()?;
        // A migration that rebuilds a table drops the old one, which with
        // foreign keys on would delete what references it. They are off
        // while migrating (the pragma is a no-op inside a transaction) and
        // checked before each commit.
        if version < migrations::MIGRATIONS.len() {
            self.conn
                .pragma_update(None, "foreign_keys", "OFF")
                .map_err(self.err("migrating"))?;
        }
        let migrated = self.migrate_from(version);
        self.conn
            .pragma_update(None, "foreign_keys", "ON")
            .map_err(self.err("migrating"))?;
        migrated?;
        self.fill_derived_tokens()
    }

    fn migrate_from(&mut self, version: usize) -> Result<()> {
        for (i, sql) in migrations::MIGRATIONS.iter().enumerate().skip(version) {
            // IMMEDIATE: two processes opening a new database at once take
            // turns, and the second sees the first one's work.
            let tx = self
                .conn
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(|source| error(&self.path, "migrating", source))?;
            let current: i64 = tx
                .query_row("PRAGMA user_version", [], |r| r.get(0))
                .map_err(|source| error(&self.path, "migrating", source))?;
            if current as usize > i {
                continue;
            }
            tx.execute_batch(sql)
                .map_err(|source| error(&self.path, format!("migration {}", i + 1), source))?;
            let broken: Option<String> = tx
                .query_row("PRAGMA foreign_key_check", [], |r| r.get(0))
                .optional()
                .map_err(|source| {
                    error(
                        &self.path,
                        format!("migration {}: checking foreign keys", i + 1),
                        source,
                    )
                })?;
            if let Some(table) = broken {
                return Err(StoreError {
                    path: self.path.clone(),
                    context: format!(
                        "migration {}: a row of {table} lost what it refers to",
                        i + 1
                    ),
                    kind: ErrorKind::Other,
                    source: "foreign key check failed".into(),
                });
            }
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .map_err(|source| error(&self.path, "migrating", source))?;
            tx.commit()
                .map_err(|source| error(&self.path, "migrating", source))?;
            tracing::debug!("database migrated to version {}", i + 1);
        }
        Ok(())
    }

    /// Fills the token hashes and VERP bounce tokens that older rows lack
    /// (both derive from the token, which SQL cannot hash).
    fn fill_derived_tokens(&mut self) -> Result<()> {
        let missing: Vec<(i64, String)> = {
            let mut stmt = self
                .conn
                .prepare("SELECT id, token FROM subscribers WHERE token_hash IS NULL OR bounce_token IS NULL")
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
                    "UPDATE subscribers SET token_hash = ?2, bounce_token = ?3 WHERE id = ?1",
                    params![id, token_hash(&token), bounce_token(&token)],
                )
                .map_err(self.err("hashing tokens"))?;
        }
        Ok(())
    }
}

impl Backend for Sqlite {
    /// The schema version.
    fn version(&self) -> Result<usize> {
        let v: i64 = self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(self.err("reading the schema version"))?;
        Ok(v as usize)
    }

    fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn location(&self) -> &str {
        &self.path
    }
}
