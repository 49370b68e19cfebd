//! SQLite storage, one file per table group: `subscribers`, `editions`,
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

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::Connection;

pub use articles::FeedState;
pub use deliveries::{Delivery, DeliveryState, OpenCounts};
pub use editions::{LogEntry, Refused, StoredEdition};
pub use mail_events::{Applied, MailEvent};
pub use queue::QueueFile;
pub use signups::{Asker, Confirmed, SignUp, Waiting};
pub use subscribers::{NewSubscriber, Status, Subscriber, Unsubscribed};

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
mod tests {
    use super::migrations::MIGRATIONS;
    use super::*;
    use crate::edition::Edition;

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
            status: Status::Active,
            bounces: 0,
            last_bounce: None,
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
        let s = Store::open(&path).unwrap();
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

    #[test]
    fn bounces_count_once_and_soft_ones_in_a_row() {
        let mut s = Store::in_memory().unwrap();
        s.add_subscribers(&[row("a@example.com"), row("b@example.com")], now(), false)
            .unwrap();
        let soft = |edition: &str| MailEvent::SoftBounce {
            status: "4.2.2: mailbox full".into(),
            edition: Some(edition.into()),
            limit: 3,
        };
        let apply =
            |key: &str, id: i64, e: &MailEvent| s.apply_mail_event(key, id, e, now()).unwrap();
        assert!(matches!(
            apply("k1", 1, &soft("2022-03-14")),
            Applied::Done {
                soft_bounces: 1,
                ..
            }
        ));
        assert_eq!(apply("k1", 1, &soft("2022-03-14")), Applied::Duplicate);
        // The same edition again (a delay, then the failure): still one.
        assert!(matches!(
            apply("k2", 1, &soft("2022-03-14")),
            Applied::Done {
                soft_bounces: 1,
                ..
            }
        ));
        assert!(matches!(
            apply("k3", 1, &soft("2022-03-15")),
            Applied::Done {
                soft_bounces: 2,
                ..
            }
        ));
        assert!(matches!(
            apply("k4", 1, &MailEvent::Delivered),
            Applied::Done {
                soft_bounces: 0,
                ..
            }
        ));
        for (i, d) in ["2022-03-16", "2022-03-17"].iter().enumerate() {
            apply(&format!("r{i}"), 1, &soft(d));
        }
        let done = apply("r3", 1, &soft("2022-03-18"));
        assert_eq!(
            done,
            Applied::Done {
                before: Status::Active,
                after: Status::Bounced,
                soft_bounces: 3
            }
        );
        let a = s.subscriber_by_email("a@example.com").unwrap().unwrap();
        assert_eq!(
            (a.status, a.bounces, a.soft_bounces),
            (Status::Bounced, 6, 3)
        );
        // A complaint outranks everything; an unsubscribe does not undo it.
        apply(
            "c",
            2,
            &MailEvent::Complaint {
                feedback_type: "abuse".into(),
            },
        );
        apply("u", 2, &MailEvent::Unsubscribe);
        let b = s.subscriber_by_email("b@example.com").unwrap().unwrap();
        assert_eq!(b.status, Status::Complained);
    }

    #[test]
    fn sign_ups_have_tokens_of_their_own_used_once_and_expiring() {
        let mut s = Store::in_memory().unwrap();
        s.add_subscribers(&[row("a@example.com"), row("b@example.com")], now(), false)
            .unwrap();
        s.set_status("a@example.com", Status::Unsubscribed, now())
            .unwrap();
        s.set_status("b@example.com", Status::Bounced, now())
            .unwrap();
        let hour = chrono::Duration::hours(1);
        let week = chrono::Duration::days(7);
        let ask = |email: &str, name: Option<&str>, topics: &str, asker: Asker, at| {
            s.request_subscription(email, name, topics, asker, at, hour, week)
                .unwrap()
        };
        let SignUp::Confirm { token, subscriber } =
            ask("n@example.com", Some("N"), "climate", Asker::Public, now())
        else {
            panic!("a new address is mailed")
        };
        assert_eq!(subscriber.status, Status::Pending);
        assert_eq!(
            subscriber.name, None,
            "nothing is applied before confirming"
        );
        assert_ne!(token, subscriber.token, "never the unsubscribe token");
        assert_eq!(
            ask("n@example.com", None, "", Asker::Public, now()),
            SignUp::TooSoon
        );
        // Bounced and complained addresses get nothing from the public
        // form; the operator may ask.
        assert_eq!(
            ask("b@example.com", None, "", Asker::Public, now()),
            SignUp::Refused(Status::Bounced)
        );
        assert!(matches!(
            ask("b@example.com", None, "", Asker::Operator, now()),
            SignUp::Confirm { .. }
        ));
        // The unsubscribe token of someone who left confirms nothing.
        let a = s.subscriber_by_email("a@example.com").unwrap().unwrap();
        let SignUp::Confirm { token: fresh, .. } = ask(
            "a@example.com",
            Some("Attacker"),
            "spam",
            Asker::Public,
            now(),
        ) else {
            panic!("a returning address is mailed")
        };
        assert_eq!(
            s.confirm_subscription(&a.token, None, None, now()).unwrap(),
            Confirmed::Unknown
        );
        assert_eq!(
            s.subscriber_by_email("a@example.com")
                .unwrap()
                .unwrap()
                .status,
            Status::Unsubscribed,
            "keeps its status until the fresh token is confirmed"
        );
        // Tokens are stored hashed.
        let stored: i64 = s
            .conn
            .query_row(
                "SELECT COUNT(*) FROM signups WHERE token_hash = ?1",
                [token_hash(&fresh)],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(stored, 1);
        let plain: i64 = s
            .conn
            .query_row(
                "SELECT COUNT(*) FROM signups WHERE token_hash = ?1",
                [&fresh],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(plain, 0);
        // The owner confirms with the name and topics they choose; once.
        assert_eq!(
            s.sign_up_waiting(&fresh, now())
                .unwrap()
                .unwrap()
                .name
                .as_deref(),
            Some("Attacker")
        );
        assert_eq!(
            s.confirm_subscription(&fresh, Some(Some("Ann")), Some("football"), now())
                .unwrap(),
            Confirmed::Activated
        );
        let a = s.subscriber_by_email("a@example.com").unwrap().unwrap();
        assert_eq!(
            (a.status, a.name.as_deref(), a.topics.as_str()),
            (Status::Active, Some("Ann"), "football")
        );
        assert_eq!(
            s.confirm_subscription(&fresh, None, None, now()).unwrap(),
            Confirmed::Unknown,
            "single use"
        );
        assert_eq!(
            ask("a@example.com", Some("X"), "", Asker::Public, now()),
            SignUp::AlreadyActive
        );
        // Eight days on, the pending one is gone and its link dead.
        let later = now() + chrono::Duration::days(8);
        assert_eq!(
            s.confirm_subscription(&token, None, None, later).unwrap(),
            Confirmed::Unknown
        );
        assert_eq!(s.purge_pending(later, week).unwrap(), 1);
        assert!(s.subscriber_by_email("n@example.com").unwrap().is_none());
        assert!(s.subscriber_by_email("a@example.com").unwrap().is_some());
        assert_eq!(
            s.subscriber_by_email("b@example.com")
                .unwrap()
                .unwrap()
                .status,
            Status::Bounced
        );
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
        let edition = crate::render::sample_edition();
        let e = s.store_edition(edition.date, &edition, now()).unwrap();
        assert_eq!(
            s.plan_deliveries(e.id, |id, _| format!("<{id}@x>"), now())
                .unwrap(),
            2
        );
        assert_eq!(
            s.plan_deliveries(e.id, |id, _| format!("<{id}@x>"), now())
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

    /// Every statement of the send loop (planning, counting, paging,
    /// claiming, recording) reads through an index: a full-table `SCAN` or
    /// a temporary sort would make a send quadratic in the list (as the
    /// claim's `IN (SELECT id FROM subscribers ...)` once did).
    #[test]
    fn no_statement_of_the_send_loop_scans_a_table() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("plan.db")).unwrap();
        let rows: Vec<NewSubscriber> = (0..200)
            .map(|i| row(&format!("reader{i}@example.com")))
            .collect();
        s.add_subscribers(&rows, now(), false).unwrap();
        let edition = crate::render::sample_edition();
        let e = s.store_edition(edition.date, &edition, now()).unwrap();
        s.plan_deliveries(e.id, |id, _| format!("<{id}@x>"), now())
            .unwrap();
        // No ANALYZE: digest never runs it, so the planner sees what it
        // sees in production.
        s.conn
            .create_scalar_function(
                "digest_message_id",
                2,
                rusqlite::functions::FunctionFlags::SQLITE_UTF8,
                |_| Ok(String::new()),
            )
            .unwrap();
        let statements = [
            ("plan", deliveries::PLAN),
            ("page", deliveries::OPEN_PAGE),
            ("open counts", deliveries::OPEN_COUNTS),
            ("claim", deliveries::MARK_SENDING),
            ("record", deliveries::MARK_DONE),
            ("counts", deliveries::DELIVERY_COUNTS),
            ("active", subscribers::ACTIVE_COUNT),
            (
                "edition",
                "SELECT id, edition_json, content_hash, rendered_at FROM editions WHERE date = ?1",
            ),
        ];
        for (name, sql) in statements {
            let plan = query_plan(&s, sql);
            eprintln!("{name}: {plan:?}");
            assert!(!plan.is_empty(), "{name}: no plan");
            assert!(
                !plan
                    .iter()
                    .any(|d| d.starts_with("SCAN ") || d.contains("TEMP B-TREE")),
                "{name} scans or sorts: {plan:#?}"
            );
        }
        // The claim as it was (a subquery over every subscriber) is caught.
        let old = "UPDATE deliveries SET state = 'sending' WHERE edition_id = ?1
            AND subscriber_id = ?2 AND subscriber_id IN (SELECT id FROM subscribers WHERE status = 'unknown' OR 1)";
        let plan = query_plan(&s, old);
        assert!(plan.iter().any(|d| d.starts_with("SCAN ")), "{plan:?}");
    }

    /// The detail lines of `EXPLAIN QUERY PLAN`, every parameter NULL.
    fn query_plan(s: &Store, sql: &str) -> Vec<String> {
        let mut stmt = s
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap();
        let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
        stmt.query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    #[test]
    fn pages_of_open_deliveries_cover_each_once_in_order() {
        let mut s = Store::in_memory().unwrap();
        let rows: Vec<NewSubscriber> = (0..25).map(|i| row(&format!("r{i}@example.com"))).collect();
        s.add_subscribers(&rows, now(), false).unwrap();
        let edition = crate::render::sample_edition();
        let e = s.store_edition(edition.date, &edition, now()).unwrap();
        assert_eq!(
            s.plan_deliveries(e.id, |id, _| format!("<{id}@x>"), now())
                .unwrap(),
            25
        );
        // Mixed states: some sent, some retrying, one left sending, one
        // subscriber gone.
        for id in [2, 3, 4] {
            s.mark_done(e.id, id, DeliveryState::Sent, None, None, now())
                .unwrap();
        }
        for id in [7, 20] {
            s.mark_done(e.id, id, DeliveryState::Retry, Some("451"), None, now())
                .unwrap();
        }
        assert!(s.mark_sending(e.id, 11, now()).unwrap());
        s.set_status("r14@example.com", Status::Unsubscribed, now())
            .unwrap();
        let counts = s.open_counts(e.id).unwrap();
        assert_eq!((counts.pending, counts.retry, counts.sending), (18, 2, 1));
        assert_eq!(s.active_subscribers().unwrap(), 24);
        let mut seen = Vec::new();
        let mut after = 0;
        loop {
            let page = s.open_deliveries(e.id, after, 4).unwrap();
            seen.extend(page.iter().map(|d| (d.subscriber.id, d.state)));
            match page.last() {
                Some(last) if page.len() == 4 => after = last.subscriber.id,
                _ => break,
            }
        }
        let ids: Vec<i64> = seen.iter().map(|(id, _)| *id).collect();
        let expected: Vec<i64> = (1..=25).filter(|id| ![2, 3, 4, 15].contains(id)).collect();
        assert_eq!(ids, expected, "every open delivery once, by id");
        assert!(seen.contains(&(11, DeliveryState::Sending)));
        assert!(seen.contains(&(20, DeliveryState::Retry)));
        assert_eq!(
            s.deliveries(e.id, &[DeliveryState::Pending]).unwrap()[0].message_id,
            "<1@x>"
        );
    }

    #[test]
    fn an_import_streams_and_names_duplicates_within_it() {
        let mut s = Store::in_memory().unwrap();
        s.add_subscribers(&[row("old@example.com")], now(), false)
            .unwrap();
        let input = vec![
            (1, Ok(row("new@example.com"))),
            (2, Err("invalid address".to_string())),
            (3, Ok(row("OLD@example.com"))),
            (4, Ok(row("New@example.com"))),
        ];
        let mut results = Vec::new();
        s.add_subscribers_each(input, now(), false, |line, r| results.push((line, r)))
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

    #[test]
    fn the_first_stored_edition_of_a_date_is_kept() {
        let s = Store::in_memory().unwrap();
        let edition = crate::render::sample_edition();
        let first = s.store_edition(edition.date, &edition, now()).unwrap();
        let mut other = crate::render::sample_edition();
        other.stories.truncate(1);
        let again: StoredEdition<Edition> = s.store_edition(other.date, &other, now()).unwrap();
        assert_eq!(first.id, again.id);
        assert_eq!(again.edition.stories.len(), 4);
    }
}
