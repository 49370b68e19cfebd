//! Feeds and their articles on PostgreSQL (the interface:
//! `../articles.rs`).
//!
//! What differs from SQLite, and why:
//! - `record_fetch` reads the feed's state and writes the new one in one
//!   statement (an upsert that computes the failures and keeps the
//!   validators from the row it updates) where SQLite reads, then writes:
//!   the same result, and two hosts fetching the same feed at once each
//!   add their failure instead of both writing "one more than before";
//! - articles are listed in bytewise order of their times and ids
//!   (`COLLATE "C"`), as SQLite sorts text, whatever the database's own
//!   collation.

use chrono::{DateTime, NaiveDate, Utc};

use super::{count, Postgres};
use crate::article::Article;
use crate::store::{ts, Articles, FeedState, Result};

impl Articles for Postgres {
    fn feed_state(&self, name: &str) -> Result<FeedState> {
        let row = self
            .client()
            .query_opt(
                "SELECT etag, last_modified, failures FROM feeds WHERE name = $1",
                &[&name],
            )
            .map_err(self.err("reading a feed"))?;
        Ok(row
            .map(|r| {
                Ok(FeedState {
                    etag: r.try_get("etag")?,
                    last_modified: r.try_get("last_modified")?,
                    failures: count(&r, "failures")?,
                })
            })
            .transpose()
            .map_err(self.err("reading a feed"))?
            .unwrap_or_default())
    }

    /// As SQLite's: a success keeps the validators it did not get anew and
    /// resets the failures; a failure keeps the validators and adds one.
    /// A new feed starts from no validators and no failures.
    fn record_fetch(
        &self,
        name: &str,
        url: &str,
        result: std::result::Result<(Option<String>, Option<String>), &str>,
        now: DateTime<Utc>,
    ) -> Result<u32> {
        // What a feed seen for the first time gets; an existing row keeps
        // its validators where these are none, and counts its failures on.
        let (etag, last_modified, failed, error) = match result {
            Ok((etag, lm)) => (etag, lm, false, None),
            Err(e) => (None, None, true, Some(e.to_owned())),
        };
        let row = self
            .client()
            .query_one(
                "INSERT INTO feeds (name, url, etag, last_modified, failures, last_error, last_fetched_at)
                 VALUES ($1, $2, $3, $4, CASE WHEN $5::BOOLEAN THEN 1 ELSE 0 END, $6, $7)
                 ON CONFLICT (name) DO UPDATE SET
                     url = EXCLUDED.url,
                     etag = COALESCE(EXCLUDED.etag, feeds.etag),
                     last_modified = COALESCE(EXCLUDED.last_modified, feeds.last_modified),
                     failures = CASE WHEN $5::BOOLEAN THEN feeds.failures + 1 ELSE 0 END,
                     last_error = EXCLUDED.last_error,
                     last_fetched_at = EXCLUDED.last_fetched_at
                 RETURNING failures",
                &[&name, &url, &etag, &last_modified, &failed, &error, &ts(now)],
            )
            .map_err(self.err("recording a fetch"))?;
        count(&row, "failures").map_err(self.err("recording a fetch"))
    }

    fn article_seen(
        &self,
        feed: &str,
        guid: Option<&str>,
        link: Option<&str>,
        content_hash: &str,
    ) -> Result<bool> {
        let n: i64 = self
            .client()
            .query_one(
                "SELECT COUNT(*) FROM articles
                  WHERE (feed = $1 AND guid IS NOT NULL AND guid = $2)
                     OR (link IS NOT NULL AND link = $3)
                     OR content_hash = $4",
                &[&feed, &guid, &link, &content_hash],
            )
            .map_err(self.err("looking up an article"))?
            .get(0);
        Ok(n > 0)
    }

    fn store_article(
        &self,
        feed: &str,
        guid: Option<&str>,
        content_hash: &str,
        article: &Article,
        edition_date: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let json = serde_json::to_string(article).expect("articles serialize");
        let n = self
            .client()
            .execute(
                "INSERT INTO articles (id, feed, guid, link, content_hash, edition_date, first_seen_at, article_json)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (id) DO NOTHING",
                &[
                    &article.id,
                    &feed,
                    &guid,
                    &article.url,
                    &content_hash,
                    &edition_date.to_string(),
                    &ts(now),
                    &json,
                ],
            )
            .map_err(self.err("storing an article"))?;
        Ok(n > 0)
    }

    fn articles_for(&self, date: NaiveDate) -> Result<Vec<Article>> {
        let rows = self
            .client()
            .query(
                "SELECT article_json FROM articles WHERE edition_date = $1
                  ORDER BY first_seen_at COLLATE \"C\", id COLLATE \"C\"",
                &[&date.to_string()],
            )
            .map_err(self.err("reading articles"))?;
        let jsons: Vec<String> = rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()
            .map_err(self.err("reading articles"))?;
        Ok(jsons
            .iter()
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect())
    }
}
