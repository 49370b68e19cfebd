//! Feeds and their fetched articles: conditional-GET state, failure
//! counts, and the articles stored for each edition date.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::{params, OptionalExtension};

use super::{ts, Result, Sqlite};
use crate::article::Article;

/// A feed's fetch state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeedState {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub failures: u32,
}

/// Feeds and the articles they brought.
pub trait Articles {
    /// What the last fetches of a feed left: its validators (ETag,
    /// Last-Modified) and consecutive failures.
    fn feed_state(&self, name: &str) -> Result<FeedState>;

    /// Records a fetch: success resets the failure count, failure adds one.
    /// Returns the consecutive failures after this fetch.
    fn record_fetch(
        &self,
        name: &str,
        url: &str,
        result: std::result::Result<(Option<String>, Option<String>), &str>,
        now: DateTime<Utc>,
    ) -> Result<u32>;

    /// Whether an item was stored before: same GUID in the same feed, same
    /// link, or same content.
    fn article_seen(
        &self,
        feed: &str,
        guid: Option<&str>,
        link: Option<&str>,
        content_hash: &str,
    ) -> Result<bool>;

    /// Stores a fetched article for its edition date.
    fn store_article(
        &self,
        feed: &str,
        guid: Option<&str>,
        content_hash: &str,
        article: &Article,
        edition_date: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<bool>;

    /// The fetched articles of an edition date, in the order first seen.
    fn articles_for(&self, date: NaiveDate) -> Result<Vec<Article>>;
}

impl Articles for Sqlite {
    fn feed_state(&self, name: &str) -> Result<FeedState> {
        Ok(self
            .conn
            .query_row(
                "SELECT etag, last_modified, failures FROM feeds WHERE name = ?1",
                [name],
                |r| {
                    Ok(FeedState {
                        etag: r.get(0)?,
                        last_modified: r.get(1)?,
                        failures: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(self.err("reading a feed"))?
            .unwrap_or_default())
    }

    fn record_fetch(
        &self,
        name: &str,
        url: &str,
        result: std::result::Result<(Option<String>, Option<String>), &str>,
        now: DateTime<Utc>,
    ) -> Result<u32> {
        let previous = self.feed_state(name)?;
        let (etag, last_modified, failures, error) = match result {
            Ok((etag, lm)) => (
                etag.or(previous.etag),
                lm.or(previous.last_modified),
                0,
                None,
            ),
            Err(e) => (
                previous.etag,
                previous.last_modified,
                previous.failures + 1,
                Some(e.to_owned()),
            ),
        };
        self.conn
            .execute(
                "INSERT INTO feeds (name, url, etag, last_modified, failures, last_error, last_fetched_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (name) DO UPDATE SET url = ?2, etag = ?3, last_modified = ?4, failures = ?5, last_error = ?6, last_fetched_at = ?7",
                params![name, url, etag, last_modified, failures, error, ts(now)],
            )
            .map_err(self.err("recording a fetch"))?;
        Ok(failures)
    }

    fn article_seen(
        &self,
        feed: &str,
        guid: Option<&str>,
        link: Option<&str>,
        content_hash: &str,
    ) -> Result<bool> {
        let n: i64 = self
            .conn
            .query_row(
                "SELECT COUNT(*) FROM articles WHERE (feed = ?1 AND guid IS NOT NULL AND guid = ?2) OR (link IS NOT NULL AND link = ?3) OR content_hash = ?4",
                params![feed, guid, link, content_hash],
                |r| r.get(0),
            )
            .map_err(self.err("looking up an article"))?;
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
            .conn
            .execute(
                "INSERT OR IGNORE INTO articles (id, feed, guid, link, content_hash, edition_date, first_seen_at, article_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![article.id, feed, guid, article.url, content_hash, edition_date.to_string(), ts(now), json],
            )
            .map_err(self.err("storing an article"))?;
        Ok(n > 0)
    }

    fn articles_for(&self, date: NaiveDate) -> Result<Vec<Article>> {
        let mut stmt = self
            .conn
            .prepare("SELECT article_json FROM articles WHERE edition_date = ?1 ORDER BY first_seen_at, id")
            .map_err(self.err("reading articles"))?;
        let rows = stmt
            .query_map([date.to_string()], |r| r.get::<_, String>(0))
            .map_err(self.err("reading articles"))?;
        let jsons: Vec<String> = rows
            .collect::<rusqlite::Result<_>>()
            .map_err(self.err("reading articles"))?;
        Ok(jsons
            .iter()
            .filter_map(|j| serde_json::from_str(j).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{now, stores};

    fn article(id: &str, url: Option<&str>) -> Article {
        Article {
            id: id.into(),
            date: None,
            title: format!("Title {id}"),
            title_derived: false,
            source: Some("feed".into()),
            url: url.map(Into::into),
            paragraphs: vec![format!("The text of {id}.")],
            origin: "feed".into(),
        }
    }

    #[test]
    fn feeds_and_articles_round_trip() {
        for s in stores() {
            let at = s.location().to_owned();
            let url = "https://example.com/rss";
            let state = |etag: Option<&str>, lm: Option<&str>, failures| FeedState {
                etag: etag.map(Into::into),
                last_modified: lm.map(Into::into),
                failures,
            };
            let ok = |etag: Option<&str>, lm: Option<&str>| {
                Ok((etag.map(Into::into), lm.map(Into::into)))
            };
            assert_eq!(s.feed_state("f").unwrap(), FeedState::default(), "{at}");
            assert_eq!(
                s.record_fetch("f", url, ok(Some("e1"), Some("Mon")), now())
                    .unwrap(),
                0,
                "{at}"
            );
            assert_eq!(
                s.record_fetch("f", url, Err("timeout"), now()).unwrap(),
                1,
                "{at}"
            );
            assert_eq!(
                s.record_fetch("f", url, Err("timeout"), now()).unwrap(),
                2,
                "{at}"
            );
            assert_eq!(
                s.feed_state("f").unwrap(),
                state(Some("e1"), Some("Mon"), 2),
                "{at}: a failure keeps the validators"
            );
            assert_eq!(
                s.record_fetch("f", url, ok(None, Some("Tue")), now())
                    .unwrap(),
                0,
                "{at}"
            );
            assert_eq!(
                s.feed_state("f").unwrap(),
                state(Some("e1"), Some("Tue"), 0),
                "{at}: a success keeps the validators it did not get anew"
            );
            assert_eq!(
                s.record_fetch("g", url, Err("404"), now()).unwrap(),
                1,
                "{at}"
            );
            assert_eq!(s.feed_state("g").unwrap(), state(None, None, 1), "{at}");

            let date = NaiveDate::from_ymd_opt(2022, 3, 14).unwrap();
            let next = date.succ_opt().unwrap();
            let earlier = now() - chrono::Duration::minutes(1);
            let (a, b, c, d) = (
                article("a", None),
                article("b", Some("https://example.com/b")),
                article("c", Some("https://example.com/c")),
                article("d", None),
            );
            assert!(
                s.store_article("f", Some("guid-b"), "hash-b", &b, date, now())
                    .unwrap(),
                "{at}"
            );
            assert!(
                !s.store_article("f", Some("guid-b"), "hash-b", &b, date, now())
                    .unwrap(),
                "{at}: stored once"
            );
            assert!(
                s.store_article("f", None, "hash-a", &a, date, now())
                    .unwrap(),
                "{at}"
            );
            assert!(
                s.store_article("g", None, "hash-c", &c, date, earlier)
                    .unwrap(),
                "{at}"
            );
            assert!(
                s.store_article("g", None, "hash-d", &d, next, now())
                    .unwrap(),
                "{at}"
            );

            let seen = |feed, guid, link, hash| s.article_seen(feed, guid, link, hash).unwrap();
            assert!(
                seen("f", Some("guid-b"), None, "x"),
                "{at}: same GUID, same feed"
            );
            assert!(
                !seen("g", Some("guid-b"), None, "x"),
                "{at}: a GUID is the feed's own"
            );
            assert!(
                seen("g", None, Some("https://example.com/b"), "x"),
                "{at}: same link"
            );
            assert!(seen("g", None, None, "hash-a"), "{at}: same content");
            assert!(!seen("f", None, None, "x"), "{at}: no GUID matches none");
            assert!(
                !seen("f", Some("guid-a"), Some("https://example.com/a"), "x"),
                "{at}"
            );

            assert_eq!(
                s.articles_for(date).unwrap(),
                [c, a, b],
                "{at}: first seen, then by id"
            );
            assert_eq!(s.articles_for(next).unwrap(), [d], "{at}");
            assert!(
                s.articles_for(next.succ_opt().unwrap()).unwrap().is_empty(),
                "{at}"
            );
        }
    }
}
