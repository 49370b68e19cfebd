//! The summary cache (summaries by article content hash and summarizer
//! settings, stored as JSON the store does not interpret) and the
//! embedding cache (sentence vectors by text hash and encoder settings,
//! little-endian float32).

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::{ts, Result, Sqlite};

/// The summary cache (summaries by article content hash and summarizer
/// settings, JSON the store does not interpret) and the embedding cache
/// (sentence vectors by text hash and encoder settings).
pub trait Caches {
    /// The summary JSON cached for an article's content hash under these
    /// summarizer settings.
    fn cached_summary(&self, article_hash: &str, settings: &str) -> Result<Option<String>>;

    /// Caches a summary (nothing, on a database opened read-only).
    fn cache_summary(
        &self,
        article_hash: &str,
        settings: &str,
        summary_json: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// The vector cached for each text hash under these encoder settings,
    /// in order; none where there is none.
    fn cached_embeddings(
        &self,
        text_hashes: &[String],
        settings: &str,
    ) -> Result<Vec<Option<Vec<f32>>>>;

    /// Caches vectors by text hash, in one transaction (nothing, on a
    /// database opened read-only).
    fn cache_embeddings(
        &self,
        items: &[(String, Vec<f32>)],
        settings: &str,
        now: DateTime<Utc>,
    ) -> Result<()>;
}

impl Caches for Sqlite {
    fn cached_summary(&self, article_hash: &str, settings: &str) -> Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT summary_json FROM summary_cache WHERE article_hash = ?1 AND settings = ?2",
                [article_hash, settings],
                |r| r.get(0),
            )
            .optional()
            .map_err(self.err("reading the summary cache"))
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
        self.conn
            .execute(
                "INSERT OR REPLACE INTO summary_cache (article_hash, settings, summary_json, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![article_hash, settings, summary_json, ts(now)],
            )
            .map_err(self.err("writing the summary cache"))?;
        Ok(())
    }

    fn cached_embeddings(
        &self,
        text_hashes: &[String],
        settings: &str,
    ) -> Result<Vec<Option<Vec<f32>>>> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT vector FROM embedding_cache WHERE text_hash = ?1 AND settings = ?2",
            )
            .map_err(self.err("reading the embedding cache"))?;
        let mut out = Vec::with_capacity(text_hashes.len());
        for h in text_hashes {
            let blob: Option<Vec<u8>> = stmt
                .query_row([h.as_str(), settings], |r| r.get(0))
                .optional()
                .map_err(self.err("reading the embedding cache"))?;
            out.push(blob.filter(|b| b.len() % 4 == 0).map(|b| {
                b.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            }));
        }
        Ok(out)
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
        let tx = self
            .conn
            .unchecked_transaction()
            .map_err(self.err("writing the embedding cache"))?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO embedding_cache (text_hash, settings, vector, created_at) VALUES (?1, ?2, ?3, ?4)",
                )
                .map_err(self.err("writing the embedding cache"))?;
            let at = ts(now);
            for (h, v) in items {
                let blob: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                stmt.execute(params![h, settings, blob, at])
                    .map_err(self.err("writing the embedding cache"))?;
            }
        }
        tx.commit()
            .map_err(self.err("writing the embedding cache"))?;
        Ok(())
    }
}
