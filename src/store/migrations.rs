//! The schema: embedded migrations, applied in order on open
//! (`PRAGMA user_version` records how far).

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
    // 6: list health. The subscribers table is rebuilt (SQLite cannot
    // change a CHECK constraint in place) with two more statuses, `pending`
    // (double opt-in) and `complained`, the VERP bounce token, bounce
    // counts and the confirmation mail's time; the bounce and complaint
    // messages processed, by key, so none counts twice; and what they did.
    // Runs with foreign keys off (see `migrate`): dropping the old table
    // must not cascade to the delivery log.
    "CREATE TABLE subscribers_new (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE COLLATE NOCASE,
        name TEXT,
        status TEXT NOT NULL DEFAULT 'active'
            CHECK (status IN ('active', 'pending', 'unsubscribed', 'bounced', 'complained')),
        topics TEXT NOT NULL DEFAULT '',
        token TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        topics_only INTEGER NOT NULL DEFAULT 0,
        token_hash TEXT,
        bounce_token TEXT,
        bounces INTEGER NOT NULL DEFAULT 0,
        soft_bounces INTEGER NOT NULL DEFAULT 0,
        last_bounce TEXT,
        last_bounce_at TEXT,
        last_soft_key TEXT,
        confirm_sent_at TEXT,
        pending_json TEXT
    );
    INSERT INTO subscribers_new (id, email, name, status, topics, token, created_at, updated_at, topics_only, token_hash)
        SELECT id, email, name, status, topics, token, created_at, updated_at, topics_only, token_hash FROM subscribers;
    DROP TABLE subscribers;
    ALTER TABLE subscribers_new RENAME TO subscribers;
    CREATE UNIQUE INDEX subscribers_token_hash ON subscribers (token_hash);
    CREATE UNIQUE INDEX subscribers_bounce_token ON subscribers (bounce_token);
    CREATE INDEX subscribers_status ON subscribers (status);
    CREATE INDEX deliveries_message_id ON deliveries (message_id);
    CREATE TABLE mail_processed (
        key TEXT PRIMARY KEY,
        at TEXT NOT NULL,
        outcome TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE mail_events (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL
    );
    CREATE INDEX mail_events_subscriber ON mail_events (subscriber_id, id);",
    // 7: consent that cannot be forged. Each sign-up gets a confirmation
    // token of its own (stored as its SHA-256, single-use, expiring), with
    // the name and topics it asked for held beside it until confirmed, who
    // asked (the public form or the operator), and whether its mail went
    // out (else it is tried again). The sign-up columns of the subscribers
    // table go: their link was the subscriber's unsubscribe token, which
    // every digest carries, so the links they stood for no longer confirm
    // anything.
    "CREATE TABLE signups (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL COLLATE NOCASE,
        token_hash TEXT NOT NULL UNIQUE,
        name TEXT,
        topics TEXT NOT NULL DEFAULT '',
        asker TEXT NOT NULL CHECK (asker IN ('public', 'operator')),
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        mailed_at TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL
    );
    CREATE INDEX signups_unmailed ON signups (next_attempt_at) WHERE mailed_at IS NULL;
    CREATE INDEX signups_email ON signups (email, created_at);
    CREATE INDEX signups_expires ON signups (expires_at);
    ALTER TABLE subscribers DROP COLUMN pending_json;
    ALTER TABLE subscribers DROP COLUMN confirm_sent_at;",
    // 8: several send workers on one edition (PostgreSQL; SQLite's file
    // lock keeps one at a time, and leaves these empty). A delivery read by
    // a worker is claimed by it; a worker is alive while its lease lasts.
    "ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
    CREATE TABLE send_workers (
        name TEXT PRIMARY KEY,
        alive_until TEXT NOT NULL,
        started_at TEXT NOT NULL,
        pid INTEGER,
        backend_start INTEGER
    ) WITHOUT ROWID;",
    // 9: the subscribe page's sign-ups per client network, in the
    // database (they hold across serve processes, hosts and restarts).
    "CREATE TABLE signup_hits (
        network TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX signup_hits_network ON signup_hits (network, at);
    CREATE INDEX signup_hits_at ON signup_hits (at);",
    // 10: the reader's side. A subscriber may pause the digest until a
    // date (`YYYY-MM-DD`: no edition dated before it is planned for them);
    // a confirmed subscriber is owed a welcome message from
    // `welcome_due_at` until it is taken for sending (then NULL again).
    "ALTER TABLE subscribers ADD COLUMN paused_until TEXT;
    ALTER TABLE subscribers ADD COLUMN welcome_due_at TEXT;
    CREATE INDEX subscribers_welcome ON subscribers (welcome_due_at) WHERE welcome_due_at IS NOT NULL;",
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{bounce_token, Backend, MailEvents, Sqlite, Status, Subscribers};
    use rusqlite::Connection;

    #[test]
    fn migrations_run_once_on_a_real_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.db");
        let s = Sqlite::open_with(&path, crate::store::Access::Create).unwrap();
        assert_eq!(s.version().unwrap(), MIGRATIONS.len());
        drop(s);
        let s = Sqlite::open_with(&path, crate::store::Access::Create).unwrap();
        assert_eq!(s.version().unwrap(), MIGRATIONS.len());
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn the_list_health_migration_keeps_every_subscriber_and_delivery() {
        // A database as version 5 left it, with deliveries that reference
        // subscribers: rebuilding the table must not cascade to them.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let conn = Connection::open(&path).unwrap();
            conn.pragma_update(None, "foreign_keys", "ON").unwrap();
            for sql in &MIGRATIONS[..5] {
                conn.execute_batch(sql).unwrap();
            }
            conn.pragma_update(None, "user_version", 5).unwrap();
            conn.execute_batch(
                "INSERT INTO subscribers (id, email, status, token, created_at, updated_at) VALUES
                     (1, 'a@example.com', 'active', 'tok-a', 't', 't'), (2, 'b@example.com', 'bounced', 'tok-b', 't', 't');
                 INSERT INTO editions (id, date, content_hash, edition_json, rendered_at) VALUES (1, '2022-03-14', 'h', '{}', 't');
                 INSERT INTO deliveries (edition_id, subscriber_id, state, message_id, created_at, updated_at) VALUES
                     (1, 1, 'sent', '<m1@x>', 't', 't'), (1, 2, 'failed', '<m2@x>', 't', 't');",
            )
            .unwrap();
        }
        let s = Sqlite::open_with(&path, crate::store::Access::Create).unwrap();
        assert_eq!(s.version().unwrap(), MIGRATIONS.len());
        let subs = s.subscribers().unwrap();
        assert_eq!(subs.len(), 2);
        assert_eq!(subs[1].status, Status::Bounced);
        let deliveries: i64 = s
            .conn
            .query_row("SELECT COUNT(*) FROM deliveries", [], |r| r.get(0))
            .unwrap();
        assert_eq!(deliveries, 2);
        // Tokens got their hashes and VERP tokens; foreign keys are back on.
        assert_eq!(
            s.subscriber_by_bounce_token(&bounce_token("tok-a"))
                .unwrap()
                .unwrap()
                .email,
            "a@example.com"
        );
        let fk: i64 = s
            .conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        assert_eq!(
            s.subscriber_by_message_id("<m2@x>").unwrap().unwrap().1,
            "2022-03-14"
        );
    }
}
