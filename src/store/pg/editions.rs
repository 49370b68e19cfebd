//! Stored editions on PostgreSQL (the interface: `../editions.rs`). A
//! change checks that sending has not started while holding the edition's
//! row `FOR UPDATE`: planning a delivery takes a key-share lock on that row
//! (its foreign key), so the check and the change cannot interleave with a
//! send that is starting on another host.

use chrono::{DateTime, NaiveDate, Utc};

use super::Postgres;
use crate::store::{ts, Editions, ErrorKind, LogEntry, Refused, Result, StoreError, StoredEdition};

/// Whether sending of the edition has started, with its row locked.
fn lock_and_check_started(
    tx: &mut postgres::Transaction<'_>,
    id: i64,
) -> std::result::Result<bool, postgres::Error> {
    tx.query_opt("SELECT 1 FROM editions WHERE id = $1 FOR UPDATE", &[&id])?;
    Ok(tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM deliveries WHERE edition_id = $1)",
            &[&id],
        )?
        .get(0))
}

/// The class of the advisory locks that hold an edition's date (the
/// other key is the date's day number).
const DATE_LOCK: i32 = 0x6469_6765;

fn day(date: NaiveDate) -> i32 {
    use chrono::Datelike;
    date.num_days_from_ce()
}

impl Editions for Postgres {
    fn hold_date(&self, date: NaiveDate) -> Result<()> {
        self.client()
            .execute("SELECT pg_advisory_lock($1, $2)", &[&DATE_LOCK, &day(date)])
            .map_err(self.err(format!("waiting for the edition of {date}")))?;
        Ok(())
    }

    fn release_date(&self, date: NaiveDate) -> Result<()> {
        self.client()
            .execute(
                "SELECT pg_advisory_unlock($1, $2)",
                &[&DATE_LOCK, &day(date)],
            )
            .map_err(self.err(format!("releasing the edition of {date}")))?;
        Ok(())
    }

    fn edition_json(&self, date: NaiveDate) -> Result<Option<StoredEdition<String>>> {
        let row = self
            .client()
            .query_opt(
                "SELECT id, edition_json, content_hash, rendered_at, version, approved_by, approved_at, notified_at
                   FROM editions WHERE date = $1",
                &[&date.to_string()],
            )
            .map_err(self.err("reading an edition"))?;
        Ok(row.map(|r| {
            let by: Option<String> = r.get(5);
            let at: Option<String> = r.get(6);
            StoredEdition {
                id: r.get(0),
                date,
                edition: r.get(1),
                content_hash: r.get(2),
                rendered_at: r.get(3),
                version: r.get(4),
                approved: by.zip(at),
                notified_at: r.get(7),
            }
        }))
    }

    fn sending_started(&self, edition_id: i64) -> Result<bool> {
        Ok(self
            .client()
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM deliveries WHERE edition_id = $1)",
                &[&edition_id],
            )
            .map_err(self.err("reading deliveries"))?
            .get(0))
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
        self.transaction("changing an edition", |tx| {
            if lock_and_check_started(tx, id)? {
                return Ok(Err(Refused::SendingStarted));
            }
            let n = tx.execute(
                "UPDATE editions SET edition_json = $3, content_hash = $4, rendered_at = $5, version = version + 1,
                        approved_by = NULL, approved_at = NULL
                  WHERE id = $1 AND version = $2",
                &[&id, &version, &json, &hash, &ts(now)],
            )?;
            if n == 0 {
                return Ok(Err(Refused::Changed));
            }
            tx.execute(
                "INSERT INTO edition_log (edition_id, at, \"user\", change) VALUES ($1, $2, $3, $4)",
                &[&id, &ts(now), &user, &change],
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
        self.transaction("approving an edition", |tx| {
            if lock_and_check_started(tx, id)? {
                return Ok(Err(Refused::SendingStarted));
            }
            let by = approve.then_some(user);
            let at = approve.then(|| ts(now));
            tx.execute(
                "UPDATE editions SET approved_by = $2, approved_at = $3, version = version + 1 WHERE id = $1",
                &[&id, &by, &at],
            )?;
            tx.execute(
                "INSERT INTO edition_log (edition_id, at, \"user\", change) VALUES ($1, $2, $3, $4)",
                &[
                    &id,
                    &ts(now),
                    &user,
                    &if approve { "approved" } else { "approval withdrawn" },
                ],
            )?;
            Ok(Ok(()))
        })
    }

    fn mark_notified(&self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .client()
            .execute(
                "UPDATE editions SET notified_at = $2 WHERE id = $1 AND notified_at IS NULL",
                &[&id, &ts(now)],
            )
            .map_err(self.err("recording the editors' notice"))?;
        Ok(n > 0)
    }

    fn log_edition(&self, id: i64, user: &str, change: &str, now: DateTime<Utc>) -> Result<()> {
        self.client()
            .execute(
                "INSERT INTO edition_log (edition_id, at, \"user\", change) VALUES ($1, $2, $3, $4)",
                &[&id, &ts(now), &user, &change],
            )
            .map_err(self.err("logging a change"))?;
        Ok(())
    }

    fn edition_log(&self, id: i64) -> Result<Vec<LogEntry>> {
        let rows = self
            .client()
            .query(
                "SELECT at, \"user\", change FROM edition_log WHERE edition_id = $1 ORDER BY id",
                &[&id],
            )
            .map_err(self.err("reading the edition log"))?;
        Ok(rows
            .iter()
            .map(|r| LogEntry {
                at: r.get(0),
                user: r.get(1),
                change: r.get(2),
            })
            .collect())
    }

    fn has_edition(&self, date: NaiveDate) -> Result<bool> {
        Ok(self
            .client()
            .query_opt(
                "SELECT 1 FROM editions WHERE date = $1",
                &[&date.to_string()],
            )
            .map_err(self.err("reading an edition"))?
            .is_some())
    }

    fn store_edition_json(
        &self,
        date: NaiveDate,
        json: &str,
        now: DateTime<Utc>,
    ) -> Result<StoredEdition<String>> {
        let hash = crate::article::short_hash(&[json]);
        self.client()
            .execute(
                "INSERT INTO editions (date, content_hash, edition_json, rendered_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (date) DO NOTHING",
                &[&date.to_string(), &hash, &json, &ts(now)],
            )
            .map_err(self.err("storing an edition"))?;
        self.edition_json(date)?.ok_or_else(|| StoreError {
            path: self.location.clone(),
            context: "storing an edition".into(),
            kind: ErrorKind::Other,
            source: "the edition stored is not there".into(),
        })
    }
}
