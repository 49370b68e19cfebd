//! Stored editions: what was (or will be) sent for a date, kept as data
//! the store does not interpret (JSON of whatever the caller stores).

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, OptionalExtension};

use super::{ts, Result, Sqlite, StoreError};

/// A stored edition: the caller's data `E` (for the pipeline, a
/// `edition::Edition`) with its row id and fingerprint.
#[derive(Debug, Clone)]
pub struct StoredEdition<E> {
    pub id: i64,
    pub date: NaiveDate,
    pub edition: E,
    pub content_hash: String,
    pub rendered_at: String,
    /// Counts changes: an edit made from version N is refused once it is N+1.
    pub version: i64,
    /// Who approved it and when (`require_approval`).
    pub approved: Option<(String, String)>,
    /// When the editors were told it awaits approval.
    pub notified_at: Option<String>,
}

impl StoredEdition<String> {
    /// The edition read as `E`; none when it no longer parses as one (a
    /// schema change).
    pub fn parse<E: serde::de::DeserializeOwned>(self) -> Option<StoredEdition<E>> {
        let edition = serde_json::from_str(&self.edition).ok()?;
        Some(StoredEdition {
            id: self.id,
            date: self.date,
            edition,
            content_hash: self.content_hash,
            rendered_at: self.rendered_at,
            version: self.version,
            approved: self.approved,
            notified_at: self.notified_at,
        })
    }
}

/// One recorded change of an edition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogEntry {
    pub at: String,
    pub user: String,
    pub change: String,
}

/// Why a change to a stored edition was not made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Sending it has started: it is what subscribers get.
    SendingStarted,
    /// It changed since it was read (another edit, a rebuild).
    Changed,
}

/// Stored editions, their approval and their change log.
pub trait Editions {
    /// The stored edition of `date`, if one was stored, as its JSON.
    fn edition_json(&self, date: NaiveDate) -> Result<Option<StoredEdition<String>>>;

    /// Whether sending of an edition has started (any delivery exists).
    fn sending_started(&self, edition_id: i64) -> Result<bool>;

    /// Replaces an edition's content, in one transaction, only if it is
    /// still at `version` and sending has not started; records the change
    /// in its log. An approval is withdrawn: it was given to other
    /// content. Returns the new version, or why it was refused.
    fn change_edition_json(
        &self,
        id: i64,
        version: i64,
        json: &str,
        user: &str,
        change: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<i64, Refused>>;

    /// Records `user`'s approval (`approve`) or takes it back, unless
    /// sending has started. The version counts it as a change: a worker on
    /// another host that read the edition before is refused its planning
    /// and reads it again (approved or not).
    fn set_approval(
        &self,
        id: i64,
        approve: bool,
        user: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<(), Refused>>;

    /// Notes that the editors were told the edition awaits approval;
    /// false when they already were.
    fn mark_notified(&self, id: i64, now: DateTime<Utc>) -> Result<bool>;

    /// Adds a line to an edition's log.
    fn log_edition(&self, id: i64, user: &str, change: &str, now: DateTime<Utc>) -> Result<()>;

    /// An edition's changes, oldest first.
    fn edition_log(&self, id: i64) -> Result<Vec<LogEntry>>;

    /// Whether an edition of `date` was stored.
    fn has_edition(&self, date: NaiveDate) -> Result<bool>;

    /// Holds the building of `date`'s edition for this process until
    /// `release_date`: another worker that asks meanwhile waits, then finds
    /// it stored and uses it. Nothing on SQLite, whose run lock lets one
    /// process send at a time.
    fn hold_date(&self, date: NaiveDate) -> Result<()>;

    /// Lets go of `hold_date`.
    fn release_date(&self, date: NaiveDate) -> Result<()>;

    /// Stores an edition's JSON (the first one stored for a date is kept:
    /// a re-run sends what the first run sent) and returns what is stored.
    fn store_edition_json(
        &self,
        date: NaiveDate,
        json: &str,
        now: DateTime<Utc>,
    ) -> Result<StoredEdition<String>>;
}

impl Editions for Sqlite {
    fn hold_date(&self, _date: NaiveDate) -> Result<()> {
        Ok(())
    }

    fn release_date(&self, _date: NaiveDate) -> Result<()> {
        Ok(())
    }

    fn edition_json(&self, date: NaiveDate) -> Result<Option<StoredEdition<String>>> {
        let row = self
            .conn
            .query_row(
                "SELECT id, edition_json, content_hash, rendered_at, version, approved_by, approved_at, notified_at
                 FROM editions WHERE date = ?1",
                [date.to_string()],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, i64>(4)?,
                        r.get::<_, Option<String>>(5)?,
                        r.get::<_, Option<String>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                    ))
                },
            )
            .optional()
            .map_err(self.err("reading an edition"))?;
        Ok(row.map(
            |(id, edition, content_hash, rendered_at, version, by, at, notified_at)| {
                StoredEdition {
                    id,
                    date,
                    edition,
                    content_hash,
                    rendered_at,
                    version,
                    approved: by.zip(at),
                    notified_at,
                }
            },
        ))
    }

    fn sending_started(&self, edition_id: i64) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM deliveries WHERE edition_id = ?1)",
                [edition_id],
                |r| r.get(0),
            )
            .map_err(self.err("reading deliveries"))
    }

    fn change_edition_json(
        &self,
        id: i64,
        version: i64,
        json: &str,
        user: &str,
        change: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<i64, Refused>> {
        let hash = crate::article::short_hash(&[json]);
        self.in_immediate("changing an edition", |conn| {
            if self.started_in(conn, id)? {
                return Ok(Err(Refused::SendingStarted));
            }
            let n = conn.execute(
                "UPDATE editions SET edition_json = ?3, content_hash = ?4, rendered_at = ?5, version = version + 1,
                        approved_by = NULL, approved_at = NULL
                 WHERE id = ?1 AND version = ?2",
                params![id, version, json, hash, ts(now)],
            )?;
            if n == 0 {
                return Ok(Err(Refused::Changed));
            }
            conn.execute(
                "INSERT INTO edition_log (edition_id, at, user, change) VALUES (?1, ?2, ?3, ?4)",
                params![id, ts(now), user, change],
            )?;
            Ok(Ok(version + 1))
        })
    }

    fn set_approval(
        &self,
        id: i64,
        approve: bool,
        user: &str,
        now: DateTime<Utc>,
    ) -> Result<std::result::Result<(), Refused>> {
        self.in_immediate("approving an edition", |conn| {
            if self.started_in(conn, id)? {
                return Ok(Err(Refused::SendingStarted));
            }
            conn.execute(
                "UPDATE editions SET approved_by = ?2, approved_at = CASE WHEN ?2 IS NULL THEN NULL ELSE ?3 END, version = version + 1 WHERE id = ?1",
                params![id, approve.then_some(user), ts(now)],
            )?;
            conn.execute(
                "INSERT INTO edition_log (edition_id, at, user, change) VALUES (?1, ?2, ?3, ?4)",
                params![
                    id,
                    ts(now),
                    user,
                    if approve { "approved" } else { "approval withdrawn" }
                ],
            )?;
            Ok(Ok(()))
        })
    }

    fn mark_notified(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .conn
            .execute(
                "UPDATE editions SET notified_at = ?2 WHERE id = ?1 AND notified_at IS NULL",
                params![id, ts(now)],
            )
            .map_err(self.err("recording the editors' notice"))?;
        Ok(n > 0)
    }

    fn log_edition(&self, id: i64, user: &str, change: &str, now: DateTime<Utc>) -> Result<()> {
        self.conn
            .execute(
                "INSERT INTO edition_log (edition_id, at, user, change) VALUES (?1, ?2, ?3, ?4)",
                params![id, ts(now), user, change],
            )
            .map_err(self.err("logging a change"))?;
        Ok(())
    }

    fn edition_log(&self, id: i64) -> Result<Vec<LogEntry>> {
        let mut stmt = self
            .conn
            .prepare("SELECT at, user, change FROM edition_log WHERE edition_id = ?1 ORDER BY id")
            .map_err(self.err("reading the edition log"))?;
        let rows = stmt
            .query_map([id], |r| {
                Ok(LogEntry {
                    at: r.get(0)?,
                    user: r.get(1)?,
                    change: r.get(2)?,
                })
            })
            .map_err(self.err("reading the edition log"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(self.err("reading the edition log"))
    }

    fn has_edition(&self, date: NaiveDate) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT 1 FROM editions WHERE date = ?1",
                [date.to_string()],
                |_| Ok(()),
            )
            .optional()
            .map(|found| found.is_some())
            .map_err(self.err("reading an edition"))
    }

    fn store_edition_json(
        &self,
        date: NaiveDate,
        json: &str,
        now: DateTime<Utc>,
    ) -> Result<StoredEdition<String>> {
        let hash = crate::article::short_hash(&[json]);
        self.conn
            .execute(
                "INSERT OR IGNORE INTO editions (date, content_hash, edition_json, rendered_at) VALUES (?1, ?2, ?3, ?4)",
                params![date.to_string(), hash, json, ts(now)],
            )
            .map_err(self.err("storing an edition"))?;
        self.edition_json(date)?.ok_or_else(|| StoreError {
            path: self.path.clone(),
            context: "storing an edition".into(),
            kind: super::ErrorKind::Other,
            source: "the edition stored is not there".into(),
        })
    }
}

impl Sqlite {
    fn started_in(&self, conn: &rusqlite::Connection, id: i64) -> rusqlite::Result<bool> {
        conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM deliveries WHERE edition_id = ?1)",
            [id],
            |r| r.get(0),
        )
    }

    /// Runs `work` in an IMMEDIATE transaction (the write lock taken first,
    /// so a check and the change it guards cannot interleave with another
    /// process's).
    fn in_immediate<T>(
        &self,
        context: &str,
        work: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>,
    ) -> Result<T> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(self.err(context))?;
        match work(&self.conn) {
            Ok(value) => {
                self.conn
                    .execute_batch("COMMIT")
                    .map_err(self.err(context))?;
                Ok(value)
            }
            Err(e) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(self.err(context)(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::edition::Edition;
    use crate::store::testing::now;

    #[test]
    fn the_first_stored_edition_of_a_date_is_kept() {
        for s in crate::store::testing::stores() {
            let edition = crate::render::sample_edition();
            let first = s.store_edition(edition.date, &edition, now()).unwrap();
            let mut other = crate::render::sample_edition();
            other.stories.truncate(1);
            let again: StoredEdition<Edition> = s.store_edition(other.date, &other, now()).unwrap();
            assert_eq!(first.id, again.id);
            assert_eq!(again.edition.stories.len(), 4);
        }
    }
}
