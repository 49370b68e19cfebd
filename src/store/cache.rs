//! The summary cache: summaries by article content hash and summarizer
//! settings, stored as JSON the store does not interpret.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{ts, Result, Store};

impl Store {
    pub fn cached_summary(&self, article_hash: &str, settings: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT summary_json FROM summary_cache WHERE article_hash = ?1 AND settings = ?2",
                [article_hash, settings],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("reading the summary cache"))
    }

    pub fn cache_summary(
        &self,
        article_hash: &str,
        settings: &str,
        summary_json: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if self.read_only {
            return Ok(()); // a database we may only read keeps no new summaries
        }
        self.conn
            .execute(
                "INSERT OR REPLACE INTO summary_cache (article_hash, settings, summary_json, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![article_hash, settings, summary_json, ts(now)],
            )
            .map_err(self.err("writing the summary cache"))?;
        Ok(())
    }
}
