//! One-click unsubscribes, and the queue file beside the database where
//! those that met a busy database wait (`<db>.unsubscribes`).

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::queue::QueueFile;
use super::subscribers::VISITOR_WAIT;
use super::{token_hash, ts, Result, Sqlite, Status, Subscribers};

/// Unsubscribing by token, and the queue that keeps a request when the
/// database is busy.
pub trait Unsubscribes {
    /// Unsubscribes the holder of `token` (RFC 8058 one-click). When another
    /// process holds the write lock for more than a moment, the request is
    /// appended to `unsubscribe_queue` and synced to disk instead: it is
    /// recorded either way before this returns, and applied by
    /// `apply_queued_unsubscribes` (which `serve` runs every few seconds and
    /// every send runs before it starts).
    fn unsubscribe_by_token(&self, token: &str, now: DateTime<Utc>) -> Result<Unsubscribed>;

    /// Applies the unsubscribes waiting in `unsubscribe_queue`, then empties
    /// it. The queue stays locked from reading to emptying (appends wait a
    /// moment), and the database commit is synced to disk before the queue
    /// is emptied: a crash at any point leaves every unsubscribe in one or
    /// the other. Returns how many were applied; a busy database leaves the
    /// queue for the next call. A line that is not a token hash is dropped
    /// with a warning.
    fn apply_queued_unsubscribes(&self, now: DateTime<Utc>) -> Result<usize>;
}

impl Sqlite {
    /// The file beside the database where unsubscribes that met a busy
    /// database wait: one token hash a line.
    pub(crate) fn unsubscribe_queue(&self) -> QueueFile {
        QueueFile::new(std::path::PathBuf::from(format!(
            "{}.unsubscribes",
            self.path
        )))
    }
}

impl Unsubscribes for Sqlite {
    fn unsubscribe_by_token(&self, token: &str, now: DateTime<Utc>) -> Result<Unsubscribed> {
        let Some(sub) = self.subscriber_by_token(token)? else {
            return Ok(Unsubscribed::Unknown);
        };
        if sub.status != Status::Active {
            return Ok(Unsubscribed::Already);
        }
        let updated = self.with_short_wait(VISITOR_WAIT, || {
            self.conn.execute(
                "UPDATE subscribers SET status = 'unsubscribed', updated_at = ?2 WHERE id = ?1",
                params![sub.id, ts(now)],
            )
        });
        match updated {
            Ok(_) => Ok(Unsubscribed::Done),
            Err(e) if super::sqlite::is_busy(&e) => {
                let queue = self.unsubscribe_queue();
                queue.append(&token_hash(token)).map_err(|io| {
                    super::sqlite::error(
                        &self.path,
                        format!(
                            "the database is busy and the unsubscribe queue {} cannot be written: {io}",
                            queue.path().display()
                        ),
                        e,
                    )
                })?;
                Ok(Unsubscribed::Queued)
            }
            Err(e) => Err(self.err("unsubscribing")(e)),
        }
    }

    fn apply_queued_unsubscribes(&self, now: DateTime<Utc>) -> Result<usize> {
        let mut failed = None;
        let applied = self.unsubscribe_queue().drain(|lines| {
            let (hashes, junk): (Vec<String>, Vec<String>) = lines
                .iter()
                .cloned()
                .partition(|l| l.len() == 64 && l.bytes().all(|b| b.is_ascii_hexdigit()));
            if !junk.is_empty() {
                tracing::warn!(
                    "{} lines of the unsubscribe queue are not token hashes: dropped",
                    junk.len()
                );
            }
            // A short wait: a busy database leaves the queue for the next call.
            let _ = self.conn.pragma_update(None, "synchronous", "FULL");
            let done = self.with_short_wait(std::time::Duration::from_millis(200), || {
                self.apply_hashes(&hashes, now)
            });
            let _ = self.conn.pragma_update(None, "synchronous", "NORMAL");
            match done {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if applied > 0 {
            tracing::info!("{applied} queued unsubscribes applied");
        }
        Ok(applied)
    }
}

impl Sqlite {
    fn apply_hashes(&self, hashes: &[String], now: DateTime<Utc>) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{now, row};

    #[test]
    fn one_click_unsubscribes_the_token_holder_once() {
        for mut s in crate::store::testing::stores() {
            let db = s.location().to_owned();
            s.add_subscribers(&[row("a@example.com"), row("b@example.com")], now(), false)
                .unwrap();
            let a = s.subscriber_by_email("a@example.com").unwrap().unwrap();
            let b = s.subscriber_by_email("b@example.com").unwrap().unwrap();
            let later = now() + chrono::Duration::hours(1);
            assert_eq!(
                s.unsubscribe_by_token(&a.token, later).unwrap(),
                Unsubscribed::Done,
                "{db}"
            );
            let after = s.subscriber_by_email("a@example.com").unwrap().unwrap();
            assert_eq!(after.status, Status::Unsubscribed, "{db}");
            assert_eq!(after.updated_at, ts(later), "{db}");
            assert_eq!(
                s.unsubscribe_by_token(&a.token, later).unwrap(),
                Unsubscribed::Already,
                "{db}"
            );
            assert_eq!(
                s.subscriber_by_email("b@example.com")
                    .unwrap()
                    .unwrap()
                    .status,
                Status::Active,
                "{db}: only the token's holder"
            );
            // Unknown tokens, the token's hash, a prefix: nobody.
            for wrong in [
                "0".repeat(32),
                token_hash(&b.token),
                b.token[..31].to_owned(),
                String::new(),
            ] {
                assert_eq!(
                    s.unsubscribe_by_token(&wrong, later).unwrap(),
                    Unsubscribed::Unknown,
                    "{db}: {wrong:?}"
                );
            }
            // Bounced is not active: left as it is.
            s.set_status("b@example.com", Status::Bounced, now())
                .unwrap();
            assert_eq!(
                s.unsubscribe_by_token(&b.token, later).unwrap(),
                Unsubscribed::Already,
                "{db}"
            );
            assert_eq!(
                s.subscriber_by_email("b@example.com")
                    .unwrap()
                    .unwrap()
                    .status,
                Status::Bounced,
                "{db}"
            );
            // Nothing was queued.
            assert_eq!(s.apply_queued_unsubscribes(later).unwrap(), 0, "{db}");
        }
    }

    /// PostgreSQL never queues: a row held longer than a visitor's moment
    /// is an error (busy), and the unsubscribe goes through once it is
    /// free.
    #[test]
    fn postgres_writes_at_once_and_a_held_row_is_busy() {
        let url = crate::store::test_server::fresh_url();
        let connect = crate::store::Connect {
            url: url.clone(),
            ..crate::store::Connect::default()
        };
        let mut s = crate::store::Store::connect(&connect, crate::store::Access::Create).unwrap();
        s.add_subscribers(&[row("a@example.com")], now(), false)
            .unwrap();
        let a = s.subscriber_by_email("a@example.com").unwrap().unwrap();
        let mut other = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        let mut tx = other.transaction().unwrap();
        tx.query(
            "SELECT 1 FROM subscribers WHERE id = $1 FOR UPDATE",
            &[&a.id],
        )
        .unwrap();
        let started = std::time::Instant::now();
        let e = s.unsubscribe_by_token(&a.token, now()).unwrap_err();
        assert!(e.is_busy(), "{e}");
        assert!(started.elapsed() >= std::time::Duration::from_millis(1000));
        tx.rollback().unwrap();
        assert_eq!(
            s.subscriber_by_email("a@example.com")
                .unwrap()
                .unwrap()
                .status,
            Status::Active
        );
        assert_eq!(
            s.unsubscribe_by_token(&a.token, now()).unwrap(),
            Unsubscribed::Done
        );
        assert_eq!(s.apply_queued_unsubscribes(now()).unwrap(), 0);
    }
}
