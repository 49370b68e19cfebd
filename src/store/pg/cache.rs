//! The summary and embedding caches on PostgreSQL (the interface:
//! `../cache.rs`). A read-only store keeps nothing new, as with SQLite.
//!
//! What differs from SQLite, and why:
//! - the embedding cache is read and written a batch of keys per
//!   statement (`= ANY($1)`, `UNNEST`) rather than one statement per key:
//!   each statement is a round trip to a server that may be far away.
//!   Reads come back in the caller's order, none where there is none;
//! - a batch written holds each key once (the last vector given for it,
//!   as SQLite's one-by-one `INSERT OR REPLACE` leaves it: an upsert may
//!   not touch a row twice), and in key order, so two hosts caching
//!   overlapping batches lock the rows in the same order and never
//!   deadlock.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::Postgres;
use crate::store::cache::{blob_from_vector, vector_from_blob};
use crate::store::{ts, Caches, Result};

/// Keys read, or vectors written, per statement.
const BATCH: usize = 1000;

impl Caches for Postgres {
    fn cached_summary(&self, article_hash: &str, settings: &str) -> Result<Option<String>> {
        Ok(self
            .client()
            .query_opt(
                "SELECT summary_json FROM summary_cache WHERE article_hash = $1 AND settings = $2",
                &[&article_hash, &settings],
            )
            .map_err(self.err("reading the summary cache"))?
            .map(|r| r.get(0)))
    }

    fn cache_summary(
        &self,
        article_hash: &str,
        settings: &str,
        summary_json: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if self.read_only {
            return Ok(()); // a database we may only read keeps no new summaries
        }
        self.client()
            .execute(
                "INSERT INTO summary_cache (article_hash, settings, summary_json, created_at) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (article_hash, settings) DO UPDATE SET summary_json = EXCLUDED.summary_json, created_at = EXCLUDED.created_at",
                &[&article_hash, &settings, &summary_json, &ts(now)],
            )
            .map_err(self.err("writing the summary cache"))?;
        Ok(())
    }

    fn cached_embeddings(
        &self,
        text_hashes: &[String],
        settings: &str,
    ) -> Result<Vec<Option<Vec<f32>>>> {
        let mut found: HashMap<String, Vec<u8>> = HashMap::new();
        for chunk in text_hashes.chunks(BATCH) {
            let rows = self
                .client()
                .query(
                    "SELECT text_hash, vector FROM embedding_cache WHERE settings = $2 AND text_hash = ANY($1)",
                    &[&chunk, &settings],
                )
                .map_err(self.err("reading the embedding cache"))?;
            for r in rows {
                found.insert(r.get(0), r.get(1));
            }
        }
        Ok(text_hashes
            .iter()
            .map(|h| found.get(h).cloned().and_then(|b| vector_from_blob(&b)))
            .collect())
    }

    fn cache_embeddings(
        &self,
        items: &[(String, Vec<f32>)],
        settings: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if self.read_only || items.is_empty() {
            return Ok(());
        }
        // Each key once, with its last vector; in key order.
        let mut last: HashMap<&str, &[f32]> = HashMap::new();
        for (h, v) in items {
            last.insert(h.as_str(), v.as_slice());
        }
        let mut keyed: Vec<(&str, &[f32])> = last.into_iter().collect();
        keyed.sort_unstable_by_key(|(h, _)| *h);
        let at = ts(now);
        self.transaction("writing the embedding cache", |tx| {
            let upsert = tx.prepare(
                "INSERT INTO embedding_cache (text_hash, settings, vector, created_at)
                 SELECT t.text_hash, $3, t.vector, $4 FROM UNNEST($1::TEXT[], $2::BYTEA[]) AS t (text_hash, vector)
                 ON CONFLICT (text_hash, settings) DO UPDATE SET vector = EXCLUDED.vector, created_at = EXCLUDED.created_at",
            )?;
            for chunk in keyed.chunks(BATCH) {
                let hashes: Vec<&str> = chunk.iter().map(|(h, _)| *h).collect();
                let blobs: Vec<Vec<u8>> = chunk
                    .iter()
                    .map(|(_, v)| blob_from_vector(v))
                    .collect();
                tx.execute(&upsert, &[&hashes, &blobs, &settings, &at])?;
            }
            Ok(())
        })
    }
}
