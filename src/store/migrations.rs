//! The schema: embedded migrations, applied in order on open
//! (`PRAGMA user_version` records how far).

use rusqlite::params;

use super::{token_hash, Result, Store, StoreError};

/// The migrations, in order. Never edit one that has shipped: add another.
pub(super) const MIGRATIONS: &[&str] = &[
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
    // 3: every statement of the send loop by index. The state index gains
    // the subscriber id, so the open deliveries are read in pages (keyset
    // pagination) straight from it; subscribers by status for planning and
    // counting.
    "DROP INDEX deliveries_state;
    CREATE INDEX deliveries_state ON deliveries (edition_id, state, subscriber_id);
    CREATE INDEX subscribers_status ON subscribers (status);",
    // 4: the editor's desk: an edition's version (every edit checks it),
    // its approval, the editors' notice, and the log of changes.
    "ALTER TABLE editions ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE editions ADD COLUMN approved_at TEXT;
    ALTER TABLE editions ADD COLUMN approved_by TEXT;
    ALTER TABLE editions ADD COLUMN notified_at TEXT;
    CREATE TABLE edition_log (
        id INTEGER PRIMARY KEY,
        edition_id INTEGER NOT NULL REFERENCES editions(id) ON DELETE CASCADE,
        at TEXT NOT NULL,
        user TEXT NOT NULL,
        change TEXT NOT NULL
    );
    CREATE INDEX edition_log_edition ON edition_log (edition_id, id);",
    // 5: sentence embeddings by text hash and encoder settings
    // (little-endian float32 values).
    "CREATE TABLE embedding_cache (
        text_hash TEXT NOT NULL,
        settings TEXT NOT NULL,
        vector BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (text_hash, settings)
    ) WITHOUT ROWID;",
];

impl Store {
    #[tracing::instrument(skip(self))]
    pub(super) fn migrate(&mut self) -> Result<()> {
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
}
