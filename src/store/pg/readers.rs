//! The reader's side in PostgreSQL (the SQLite implementation and the
//! trait: `../readers.rs`).

use chrono::{DateTime, NaiveDate, Utc};

use super::subscribers::COLUMNS;
use super::Postgres;
use crate::store::readers::{published_where, Preferences, Published, Readers};
use crate::store::{token_hash, ts, Result, StoredEdition, Subscriber};

impl Readers for Postgres {
    fn published_editions(
        &self,
        which: Published,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<StoredEdition<String>>, usize)> {
        let filter = published_where(which);
        let mut client = self.client();
        let total: i64 = client
            .query_one(
                &format!("SELECT COUNT(*) FROM editions e WHERE {filter}"),
                &[],
            )
            .map_err(self.err("listing editions"))?
            .get(0);
        let rows = client
            .query(
                &format!(
                    "SELECT e.id, e.date, e.edition_json, e.content_hash, e.rendered_at, e.version, e.approved_by, e.approved_at, e.notified_at
                       FROM editions e WHERE {filter} ORDER BY e.date DESC LIMIT $1 OFFSET $2"
                ),
                &[&(limit as i64), &(offset as i64)],
            )
            .map_err(self.err("listing editions"))?;
        let out = rows
            .iter()
            .filter_map(|r| {
                // A date that does not parse is not an edition readers can open.
                let date: NaiveDate = r.get::<_, String>(1).parse().ok()?;
                let by: Option<String> = r.get(6);
                let at: Option<String> = r.get(7);
                Some(StoredEdition {
                    id: r.get(0),
                    date,
                    edition: r.get(2),
                    content_hash: r.get(3),
                    rendered_at: r.get(4),
                    version: r.get(5),
                    approved: by.zip(at),
                    notified_at: r.get(8),
                })
            })
            .collect();
        Ok((out, total as usize))
    }

    fn is_published(&self, edition_id: i64, which: Published) -> Result<bool> {
        Ok(self
            .client()
            .query_one(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM editions e WHERE e.id = $1 AND {})",
                    published_where(which)
                ),
                &[&edition_id],
            )
            .map_err(self.err("reading an edition"))?
            .get(0))
    }

    fn set_preferences(
        &self,
        token: &str,
        prefs: &Preferences,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = self
            .client()
            .execute(
                "UPDATE subscribers SET topics = $2, topics_only = $3, paused_until = $4, updated_at = $5
                  WHERE token_hash = $1 AND status = 'active'",
                &[
                    &token_hash(token),
                    &prefs.topics,
                    &i64::from(prefs.topics_only),
                    &prefs.paused_until.map(|d| d.to_string()),
                    &ts(now),
                ],
            )
            .map_err(self.err("changing preferences"))?;
        Ok(n > 0)
    }

    fn welcomes_due(&self, now: DateTime<Utc>, limit: usize) -> Result<Vec<Subscriber>> {
        let rows = self
            .client()
            .query(
                &format!(
                    "SELECT {COLUMNS} FROM subscribers s WHERE s.welcome_due_at IS NOT NULL AND s.welcome_due_at <= $1
                        AND s.status = 'active' ORDER BY s.welcome_due_at LIMIT $2"
                ),
                &[&ts(now), &(limit as i64)],
            )
            .map_err(self.err("reading welcomes"))?;
        rows.iter()
            .map(Postgres::subscriber_from_row)
            .collect::<std::result::Result<_, _>>()
            .map_err(self.err("reading welcomes"))
    }

    fn take_welcome(&self, id: i64) -> Result<bool> {
        let n = self
            .client()
            .execute(
                "UPDATE subscribers SET welcome_due_at = NULL WHERE id = $1 AND welcome_due_at IS NOT NULL",
                &[&id],
            )
            .map_err(self.err("taking a welcome"))?;
        Ok(n > 0)
    }

    fn welcome_again(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        self.client()
            .execute(
                "UPDATE subscribers SET welcome_due_at = $2 WHERE id = $1",
                &[&id, &ts(at)],
            )
            .map_err(self.err("keeping a welcome"))?;
        Ok(())
    }
}
