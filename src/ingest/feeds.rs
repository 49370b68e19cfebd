//! Feeds: RSS 2.0, Atom and JSON Feed, downloaded with conditional GET
//! (`ETag`, `Last-Modified`) and parsed with `feed-rs`; new items become
//! articles stored in the database for their edition date.
//!
//! Each feed is fetched on its own thread with a timeout, so a broken or
//! slow feed never holds up the others. An item is new unless its GUID (in
//! that feed), its link, or its content was seen before. An item without a
//! date, or dated in the future, belongs to the day it was first seen.

use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::network::{FetchPolicy, PublicOnly};
use crate::article::{short_hash, Article, RawArticle};
use crate::config::FeedSource;
use crate::store::{FeedState, Store, StoreError};

/// The most a feed or article page may weigh.
const MAX_BODY: u64 = 10 * 1024 * 1024;

/// How one feed's fetch went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeedStatus {
    /// Fetched and read.
    Ok,
    /// Unchanged since the last fetch (HTTP 304).
    NotModified,
    /// Not fetched or not readable (`error` says why).
    Failed,
}

impl std::fmt::Display for FeedStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FeedStatus::Ok => "ok",
            FeedStatus::NotModified => "not modified",
            FeedStatus::Failed => "failed",
        })
    }
}

/// What happened to one feed.
#[derive(Debug, Clone, Serialize)]
pub struct FeedReport {
    pub name: String,
    /// In JSON: `ok`, `not-modified` or `failed`.
    pub status: FeedStatus,
    pub new_articles: usize,
    pub error: Option<String>,
    pub consecutive_failures: u32,
}

/// An item as read from a feed, before it becomes an article.
struct Item {
    guid: Option<String>,
    raw: RawArticle,
    date: Option<DateTime<Utc>>,
}

enum Fetched {
    NotModified,
    Items {
        items: Vec<Item>,
        etag: Option<String>,
        last_modified: Option<String>,
    },
}

fn config(timeout: Duration) -> ureq::config::Config {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("dailydigest/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The agent for feeds: their URLs are the operator's own.
fn agent(timeout: Duration) -> ureq::Agent {
    config(timeout).into()
}

/// The agent for article pages (links a feed wrote): every connection,
/// redirects included, goes through the public-address check.
fn page_agent(timeout: Duration, policy: &FetchPolicy) -> ureq::Agent {
    // No proxy from the environment: a proxy would connect to the target
    // itself, past the resolver's check.
    let config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("dailydigest/", env!("CARGO_PKG_VERSION")))
        .proxy(None)
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        PublicOnly::new(policy.clone()),
    )
}

/// One HTTP response: status, body, and the validators for the next
/// conditional GET.
struct Response {
    status: u16,
    body: Vec<u8>,
    etag: Option<String>,
    last_modified: Option<String>,
}

fn get(agent: &ureq::Agent, url: &str, state: Option<&FeedState>) -> Result<Response, String> {
    let mut req = agent.get(url);
    if let Some(s) = state {
        if let Some(etag) = &s.etag {
            req = req.header("If-None-Match", etag);
        }
        if let Some(lm) = &s.last_modified {
            req = req.header("If-Modified-Since", lm);
        }
    }
    let mut resp = req.call().map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let (etag, last_modified) = (header("etag"), header("last-modified"));
    let body = if status == 304 {
        Vec::new()
    } else {
        resp.body_mut()
            .with_config()
            .limit(MAX_BODY)
            .read_to_vec()
            .map_err(|e| e.to_string())?
    };
    Ok(Response {
        status,
        body,
        etag,
        last_modified,
    })
}

/// HTML from a feed's content or summary to plain paragraphs.
pub fn html_fragment_to_text(html: &str) -> String {
    if !html.contains('<') {
        return html.to_owned();
    }
    let doc = scraper_free_text(html);
    doc.trim().to_owned()
}

/// A small tag stripper for feed fragments: block ends become paragraph
/// breaks, script and style contents are dropped, entities are left for the
/// cleaner.
fn scraper_free_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut skip_until: Option<&str> = None;
    while let Some(lt) = rest.find('<') {
        if skip_until.is_none() {
            out.push_str(&rest[..lt]);
        }
        let Some(gt) = rest[lt..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[lt + 1..lt + gt].trim().to_ascii_lowercase();
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        match skip_until {
            Some(end) if tag.starts_with('/') && name == end => skip_until = None,
            Some(_) => {}
            None if !tag.starts_with('/') && matches!(name.as_str(), "script" | "style") => {
                skip_until = Some(if name == "script" { "script" } else { "style" });
            }
            None if matches!(
                name.as_str(),
                "p" | "div" | "br" | "li" | "h1" | "h2" | "h3" | "h4" | "blockquote" | "tr"
            ) =>
            {
                out.push_str("\n\n");
            }
            None => {}
        }
        rest = &rest[lt + gt + 1..];
    }
    if skip_until.is_none() {
        out.push_str(rest);
    }
    out
}

fn parse_feed(bytes: &[u8], source: &FeedSource) -> Result<Vec<Item>, String> {
    let feed = feed_rs::parser::parse(bytes)
        .map_err(|e| format!("not a valid RSS, Atom or JSON feed: {e}"))?;
    Ok(feed
        .entries
        .into_iter()
        .map(|e| {
            // The article's own page: rel="alternate" (or no rel), not the
            // "replies", "edit" or "self" links some feeds list first.
            let link = e
                .links
                .iter()
                .find(|l| l.rel.as_deref().is_none_or(|r| r == "alternate"))
                .or(e.links.first())
                .map(|l| l.href.clone());
            let body = e
                .content
                .as_ref()
                .and_then(|c| c.body.clone())
                .or_else(|| e.summary.as_ref().map(|s| s.content.clone()))
                .unwrap_or_default();
            let guid = Some(e.id.clone()).filter(|g| !g.trim().is_empty());
            Item {
                guid,
                date: e.published.or(e.updated),
                raw: RawArticle {
                    id: None,
                    title: e.title.map(|t| html_fragment_to_text(&t.content)),
                    date: None,
                    source: Some(source.name.clone()),
                    url: link,
                    text: html_fragment_to_text(&body),
                },
            }
        })
        .collect())
}

fn fetch_one(
    source: &FeedSource,
    state: &FeedState,
    timeout: Duration,
    policy: &FetchPolicy,
) -> Result<Fetched, String> {
    let agent = agent(timeout);
    let Response {
        status,
        body,
        etag,
        last_modified,
    } = get(&agent, &source.url, Some(state))?;
    match status {
        304 => return Ok(Fetched::NotModified),
        200..=299 => {}
        other => return Err(format!("HTTP {other}")),
    }
    let mut items = parse_feed(&body, source)?;
    if source.full_text {
        // All the pages of one feed share a deadline, so that a feed of
        // slow pages cannot hold the run for pages × timeout.
        // The deadline covers extraction too: a page that takes longer is
        // left to finish on its own while the teaser is kept.
        let deadline = std::time::Instant::now() + timeout * 2;
        let pages = page_agent(timeout, policy);
        for item in &mut items {
            if std::time::Instant::now() >= deadline {
                tracing::warn!(
                    "{}: out of time for article pages; keeping the remaining teasers",
                    source.name
                );
                break;
            }
            let Some(url) = item.raw.url.clone() else {
                continue;
            };
            match get(&pages, &url, None) {
                Ok(Response {
                    status: 200..=299,
                    body: page,
                    ..
                }) => match extract_within(page, deadline) {
                    Ok(full) if full.text.len() > item.raw.text.len() => item.raw.text = full.text,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("{}: {url}: {e}; keeping the feed's teaser", source.name)
                    }
                },
                Ok(Response { status, .. }) => tracing::warn!(
                    "{}: {url}: HTTP {status}; keeping the feed's teaser",
                    source.name
                ),
                Err(e) => tracing::warn!("{}: {url}: {e}; keeping the feed's teaser", source.name),
            }
        }
    }
    Ok(Fetched::Items {
        items,
        etag,
        last_modified,
    })
}

/// Extracts the article from a page on a thread of its own, waiting until
/// `deadline` at most: the fetch's time limit covers extraction as well.
fn extract_within(page: Vec<u8>, deadline: std::time::Instant) -> Result<RawArticle, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(
            crate::ingest::files::parse_html(&String::from_utf8_lossy(&page))
                .map_err(|e| e.to_string()),
        );
    });
    let left = deadline.saturating_duration_since(std::time::Instant::now());
    rx.recv_timeout(left)
        .map_err(|_| "out of time extracting the article".to_string())?
}

/// Fetches every feed (in parallel), stores the new articles, and reports.
pub fn fetch_all(
    store: &Store,
    sources: &[FeedSource],
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
    timeout: Duration,
    failure_threshold: u32,
    policy: &FetchPolicy,
) -> Result<Vec<FeedReport>, StoreError> {
    let states: Vec<FeedState> = sources
        .iter()
        .map(|s| store.feed_state(&s.name))
        .collect::<Result<_, _>>()?;
    let results: Vec<Result<Fetched, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sources
            .iter()
            .zip(&states)
            .map(|(source, state)| scope.spawn(move || fetch_one(source, state, timeout, policy)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("the fetch panicked".into()))
            })
            .collect()
    });
    let today = now.with_timezone(&tz).date_naive();
    let mut reports = Vec::new();
    for (source, result) in sources.iter().zip(results) {
        let mut report = FeedReport {
            name: source.name.clone(),
            status: FeedStatus::Ok,
            new_articles: 0,
            error: None,
            consecutive_failures: 0,
        };
        match result {
            Ok(Fetched::NotModified) => {
                report.status = FeedStatus::NotModified;
                store.record_fetch(&source.name, &source.url, Ok((None, None)), now)?;
            }
            Ok(Fetched::Items {
                items,
                etag,
                last_modified,
            }) => {
                for item in items {
                    let date = open_edition(store, edition_date(item.date, now, tz, today), today)?;
                    let content_hash =
                        short_hash(&[item.raw.title.as_deref().unwrap_or(""), &item.raw.text]);
                    if store.article_seen(
                        &source.name,
                        item.guid.as_deref(),
                        item.raw.url.as_deref(),
                        &content_hash,
                    )? {
                        continue;
                    }
                    let mut raw = item.raw;
                    raw.date = Some(date.to_string());
                    let origin = format!(
                        "{} <{}>",
                        source.name,
                        raw.url.as_deref().unwrap_or(&source.url)
                    );
                    match Article::from_raw(raw, origin) {
                        Ok(article) => {
                            if store.store_article(
                                &source.name,
                                item.guid.as_deref(),
                                &content_hash,
                                &article,
                                date,
                                now,
                            )? {
                                report.new_articles += 1;
                            }
                        }
                        Err(e) => tracing::warn!("{}: an item was skipped: {e}", source.name),
                    }
                }
                store.record_fetch(&source.name, &source.url, Ok((etag, last_modified)), now)?;
            }
            Err(e) => {
                report.status = FeedStatus::Failed;
                report.consecutive_failures =
                    store.record_fetch(&source.name, &source.url, Err(&e), now)?;
                if report.consecutive_failures >= failure_threshold {
                    tracing::warn!(
                        "feed {} has failed {} times in a row: {e}",
                        source.name,
                        report.consecutive_failures
                    );
                } else {
                    tracing::info!("feed {} failed: {e}", source.name);
                }
                report.error = Some(e);
            }
        }
        reports.push(report);
    }
    Ok(reports)
}

/// An item of a day whose edition has already been stored (sent) goes into
/// today's edition instead of being lost.
fn open_edition(store: &Store, date: NaiveDate, today: NaiveDate) -> Result<NaiveDate, StoreError> {
    Ok(if date < today && store.has_edition(date)? {
        today
    } else {
        date
    })
}

/// The edition an item belongs to: its date in the edition time zone, or
/// the day it was first seen when it has none or claims to be from the future.
fn edition_date(
    date: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    tz: chrono_tz::Tz,
    today: NaiveDate,
) -> NaiveDate {
    match date {
        Some(d) if d > now => {
            tracing::debug!(
                "an item dated {d} (in the future) belongs to {today}, when it was first seen"
            );
            today
        }
        Some(d) if d < oldest_plausible() => {
            tracing::debug!(
                "an item dated {d} (implausibly old) belongs to {today}, when it was first seen"
            );
            today
        }
        Some(d) => d.with_timezone(&tz).date_naive(),
        None => today,
    }
}

/// Dates before web feeds existed (RSS is from 1999) are placeholders or
/// mistakes (`1900-01-01`, `1970-01-01`), not when the item was published.
fn oldest_plausible() -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(
        NaiveDate::from_ymd_opt(1995, 1, 1)
            .expect("a valid date")
            .and_hms_opt(0, 0, 0)
            .expect("a valid time"),
        Utc,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn article_pages_never_go_through_a_proxy_from_the_environment() {
        // A proxy connects to the target itself, past the address check.
        std::env::set_var("HTTP_PROXY", "http://127.0.0.1:3128");
        let feeds = agent(Duration::from_secs(1));
        let pages = page_agent(Duration::from_secs(1), &FetchPolicy::default());
        std::env::remove_var("HTTP_PROXY");
        assert!(
            feeds.config().proxy().is_some(),
            "the environment's proxy is seen"
        );
        assert!(pages.config().proxy().is_none());
    }

    #[test]
    fn fragments_to_text() {
        assert_eq!(
            html_fragment_to_text(
                "<p>One &amp; two.</p><p>Three<br>four</p><script>x()</script><style>p{}</style>"
            ),
            "One &amp; two.\n\n\n\nThree\n\nfour"
        );
        assert_eq!(html_fragment_to_text("plain text"), "plain text");
        assert_eq!(html_fragment_to_text("broken <b"), "broken");
    }

    #[test]
    fn items_for_a_day_already_sent_go_to_today() {
        let store = Store::in_memory().unwrap();
        let today = NaiveDate::from_ymd_opt(2022, 3, 16).unwrap();
        let sent_day = NaiveDate::from_ymd_opt(2022, 3, 14).unwrap();
        let open_day = NaiveDate::from_ymd_opt(2022, 3, 15).unwrap();
        let edition = crate::render::sample_edition(); // 2022-03-14
        store
            .store_edition(edition.date, &edition, Utc::now())
            .unwrap();
        assert_eq!(open_edition(&store, sent_day, today).unwrap(), today);
        assert_eq!(open_edition(&store, open_day, today).unwrap(), open_day);
        assert_eq!(open_edition(&store, today, today).unwrap(), today);
    }

    #[test]
    fn dates_in_the_future_or_missing_are_first_seen() {
        let now = DateTime::parse_from_rfc3339("2022-03-14T23:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let tz: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
        let today = now.with_timezone(&tz).date_naive();
        assert_eq!(today.to_string(), "2022-03-15");
        let earlier = DateTime::parse_from_rfc3339("2022-03-14T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            edition_date(Some(earlier), now, tz, today).to_string(),
            "2022-03-14",
            "in the edition time zone"
        );
        let future = DateTime::parse_from_rfc3339("2030-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(edition_date(Some(future), now, tz, today), today);
        for placeholder in ["1900-01-01T00:00:00Z", "1970-01-01T00:00:00Z"] {
            let old = DateTime::parse_from_rfc3339(placeholder)
                .unwrap()
                .with_timezone(&Utc);
            assert_eq!(
                edition_date(Some(old), now, tz, today),
                today,
                "{placeholder}"
            );
        }
        assert_eq!(edition_date(None, now, tz, today), today);
    }
}
