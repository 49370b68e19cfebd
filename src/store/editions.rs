//! Stored editions: what was (or will be) sent for a date, kept as data
//! the store does not interpret (JSON of whatever the caller stores).

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, OptionalExtension};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{ts, Result, Store, StoreError};

/// A stored edition: the caller's data `E` (for the pipeline, a
/// `digest::Edition`) with its row id and fingerprint.
#[derive(Debug, Clone)]
pub struct StoredEdition<E> {
    pub id: i64,
    pub date: NaiveDate,
    pub edition: E,
    pub content_hash: String,
    pub rendered_at: String,
}

impl Store {
    /// The stored edition of `date`, if one was stored.
    /// One that no longer parses as `E` (a schema change) reads as none.
    pub fn edition<E: DeserializeOwned>(
        &self,
        date: NaiveDate,
    ) -> Result<Option<StoredEdition<E>>> {
        let row: Option<(i64, String, String, String)> = self
            .conn
            .query_row(
                "SELECT id, edition_json, content_hash, rendered_at FROM editions WHERE date = ?1",
                [date.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(self.err("reading an edition"))?;
        Ok(row.and_then(|(id, json, content_hash, rendered_at)| {
            serde_json::from_str(&json)
                .ok()
                .map(|edition| StoredEdition {
                    id,
                    date,
                    edition,
                    content_hash,
                    rendered_at,
                })
        }))
    }

    /// Whether an edition of `date` was stored.
    pub fn has_edition(&self, date: NaiveDate) -> Result<bool> {
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

    /// Stores an edition (the first one stored for a date is kept: a re-run
    /// sends what the first run sent).
    pub fn store_edition<E: Serialize + DeserializeOwned>(
        &self,
        date: NaiveDate,
        edition: &E,
        now: DateTime<Utc>,
    ) -> Result<StoredEdition<E>> {
        let json = serde_json::to_string(edition).expect("editions serialize");
        let hash = crate::article::short_hash(&[&json]);
        self.conn
            .execute(
                "INSERT OR IGNORE INTO editions (date, content_hash, edition_json, rendered_at) VALUES (?1, ?2, ?3, ?4)",
                params![date.to_string(), hash, json, ts(now)],
            )
            .map_err(self.err("storing an edition"))?;
        self.edition(date)?.ok_or_else(|| StoreError {
            path: self.path.clone(),
            context: "storing an edition".into(),
            source: rusqlite::Error::QueryReturnedNoRows,
        })
    }
}
