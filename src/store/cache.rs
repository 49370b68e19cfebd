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
            out.push(blob.and_then(|b| vector_from_blob(&b)));
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
                stmt.execute(params![h, settings, blob_from_vector(v), at])
                    .map_err(self.err("writing the embedding cache"))?;
            }
        }
        tx.commit()
            .map_err(self.err("writing the embedding cache"))?;
        Ok(())
    }
}

/// A cached vector as stored: little-endian float32 values.
pub(super) fn blob_from_vector(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored vector; none when the bytes are not whole float32 values.
pub(super) fn vector_from_blob(b: &[u8]) -> Option<Vec<f32>> {
    b.len().is_multiple_of(4).then(|| {
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use crate::store::testing::{now, stores};

    #[test]
    fn caches_round_trip() {
        for s in stores() {
            let at = s.location().to_owned();
            assert_eq!(s.cached_summary("h", "v1").unwrap(), None, "{at}");
            s.cache_summary("h", "v1", r#"{"a":1}"#, now()).unwrap();
            s.cache_summary("h", "v1", r#"{"a":2}"#, now()).unwrap();
            assert_eq!(
                s.cached_summary("h", "v1").unwrap().as_deref(),
                Some(r#"{"a":2}"#),
                "{at}: the last one cached"
            );
            assert_eq!(
                s.cached_summary("h", "v2").unwrap(),
                None,
                "{at}: by settings"
            );

            s.cache_embeddings(&[], "enc", now()).unwrap();
            let items = vec![
                ("t2".to_string(), vec![1.0f32, -2.5]),
                ("t1".to_string(), vec![0.25f32, 3.0]),
                ("t2".to_string(), vec![4.0f32, 5.0]),
            ];
            s.cache_embeddings(&items, "enc", now()).unwrap();
            s.cache_embeddings(&[("t3".into(), vec![7.0])], "other", now())
                .unwrap();
            let hashes: Vec<String> = ["t1", "t3", "t2", "t1"].map(String::from).into();
            assert_eq!(
                s.cached_embeddings(&hashes, "enc").unwrap(),
                [
                    Some(vec![0.25, 3.0]),
                    None,
                    Some(vec![4.0, 5.0]),
                    Some(vec![0.25, 3.0])
                ],
                "{at}: in the caller's order, the last vector given for a hash"
            );
            assert_eq!(
                s.cached_embeddings(&["t3".into()], "other").unwrap(),
                [Some(vec![7.0])],
                "{at}"
            );
            assert!(s.cached_embeddings(&[], "enc").unwrap().is_empty(), "{at}");
        }
    }
}
