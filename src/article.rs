//! `Article`: the one type every stage passes along, from ingest to template.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::text::{self, clean};

/// The longest title kept as a headline, in characters (cut at a word).
pub const MAX_TITLE_CHARS: usize = 150;

/// One news article, cleaned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Article {
    /// Stable across runs: the given id, else a hash of source and URL, else
    /// of the text.
    pub id: String,
    pub date: Option<NaiveDate>,
    pub title: String,
    /// True when the source had no title and `title` was derived from the lead.
    pub title_derived: bool,
    pub source: Option<String>,
    pub url: Option<String>,
    /// Clean text, one string per paragraph.
    pub paragraphs: Vec<String>,
    /// Where it came from: a path, `path:line`, or `<stdin>`.
    pub origin: String,
}

/// What a parser found before cleaning: every field optional but the text.
#[derive(Debug, Default, Clone)]
pub struct RawArticle {
    pub id: Option<String>,
    pub title: Option<String>,
    pub date: Option<String>,
    pub source: Option<String>,
    pub url: Option<String>,
    pub text: String,
}

/// Why a raw article could not become an `Article`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArticleError {
    #[error("no article text (empty after cleaning)")]
    Empty,
    #[error("bad date {0:?} (expected YYYY-MM-DD or an RFC 3339 / RFC 2822 date)")]
    BadDate(String),
}

impl Article {
    /// Cleans a raw article and fills in what the source left out.
    pub fn from_raw(raw: RawArticle, origin: impl Into<String>) -> Result<Article, ArticleError> {
        Article::from_raw_with(raw, origin, true)
    }

    /// `from_raw`; without `derive_headline` an untitled article keeps an
    /// empty title (`title_derived` set), for readers that never show it.
    pub fn from_raw_with(
        raw: RawArticle,
        origin: impl Into<String>,
        derive_headline: bool,
    ) -> Result<Article, ArticleError> {
        let date = match raw.date.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(d) => Some(parse_date(d).ok_or_else(|| ArticleError::BadDate(d.to_owned()))?),
        };
        let paragraphs = clean::paragraphs(&raw.text);
        if paragraphs.is_empty() {
            return Err(ArticleError::Empty);
        }
        let clean_opt = |s: Option<String>| s.map(|s| clean::inline(&s)).filter(|s| !s.is_empty());
        let origin = origin.into();
        let url = clean_opt(raw.url).and_then(|u| {
            let safe = http_url(&u);
            if safe.is_none() {
                tracing::warn!(
                    "{origin}: link {:?} dropped: only http and https links are kept",
                    u.chars().take(80).collect::<String>()
                );
            }
            safe
        });
        let source = clean_opt(raw.source).or_else(|| url.as_deref().and_then(host_of));
        let (title, title_derived) = match clean_opt(raw.title) {
            Some(t) => (text::shorten(&t, MAX_TITLE_CHARS), false),
            None if derive_headline => (self::derive_headline(&paragraphs), true),
            None => (String::new(), true),
        };
        let id = match clean_opt(raw.id) {
            Some(id) => id,
            None => match &url {
                Some(url) => short_hash(&[source.as_deref().unwrap_or(""), url]),
                None => short_hash(&[&paragraphs.join("\n\n")]),
            },
        };
        Ok(Article {
            id,
            date,
            title,
            title_derived,
            source,
            url,
            paragraphs,
            origin,
        })
    }

    /// The clean text, paragraphs separated by a blank line.
    pub fn text(&self) -> String {
        self.paragraphs.join("\n\n")
    }

    /// Words in the clean text.
    pub fn word_count(&self) -> usize {
        self.paragraphs.iter().map(|p| text::word_count(p)).sum()
    }
}

/// 16 hex digits of SHA-256 over the parts (separated so that ("ab","c") and
/// ("a","bc") differ).
pub fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Parses the dates news sources use: `2022-03-14`, RFC 3339 and RFC 2822
/// timestamps (the calendar date as written, without time-zone shifting).
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Some(d);
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(dt.date_naive());
    }
    if let Ok(dt) = chrono::DateTime::parse_from_rfc2822(s) {
        return Some(dt.date_naive());
    }
    if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S") {
        return Some(dt.date());
    }
    if let Ok(dt) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S") {
        return Some(dt.date());
    }
    None
}

/// The link as it may be shown and followed: an absolute `http` or `https`
/// URL with a host, normalised (`url`'s WHATWG parser: spaces, tabs and
/// control characters stripped or percent-encoded, as browsers do), after
/// HTML entities are decoded as an attribute value would be (so that
/// `?a=1&section=2` keeps its `&section`). Anything else (`javascript:`,
/// `data:`, `vbscript:`, `file:`, relative links, in any case or disguise)
/// is `None`.
pub fn http_url(raw: &str) -> Option<String> {
    let decoded = htmlize::unescape_attribute(raw);
    let url = url::Url::parse(decoded.trim()).ok()?;
    let web =
        matches!(url.scheme(), "http" | "https") && url.host_str().is_some_and(|h| !h.is_empty());
    web.then(|| url.as_str().to_owned())
}

fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let host = rest.split(['/', '?', '#', ':']).next()?;
    let host = host.strip_prefix("www.").unwrap_or(host);
    (!host.is_empty()).then(|| host.to_owned())
}

/// A headline for an article that came without one: its lead compressed
/// into a complete phrase of 5 to 12 words (`text::headline`).
pub fn derive_headline(paragraphs: &[String]) -> String {
    text::headline::headline(paragraphs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_links_survive_in_any_disguise() {
        for bad in [
            "javascript:alert(1)",
            "JavaScript:alert(1)",
            "  javascript:alert(1)",
            "java\tscript:alert(1)",
            "java\nscript:alert(1)",
            "\u{1}javascript:alert(1)",
            "javascript&#58;alert(1)",
            "&#106;avascript:alert(1)",
            "jav&#x09;ascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox(1)",
            "VBScript:msgbox(1)",
            "file:///etc/passwd",
            "//evil.example.com/x",
            "/relative/path",
            "http://",
        ] {
            assert_eq!(http_url(bad), None, "{bad:?}");
        }
        assert_eq!(
            http_url(" https://news.example.com/a?b=1&amp;c=2 ").as_deref(),
            Some("https://news.example.com/a?b=1&c=2")
        );
        for plain in [
            "https://n.example/a?id=5&section=world",
            "https://n.example/a?x=1&timestamp=2&param=3&region=eu&not=4",
        ] {
            assert_eq!(
                http_url(plain).as_deref(),
                Some(plain),
                "query parameters kept"
            );
        }
        assert_eq!(
            http_url("HTTP://News.Example.com/a\"onmouseover=\"x").as_deref(),
            Some("http://news.example.com/a%22onmouseover=%22x")
        );
        let article = Article::from_raw(
            RawArticle {
                url: Some("javascript:alert(document.domain)".into()),
                text: "Some article text that is long enough to keep.".into(),
                ..Default::default()
            },
            "x.json",
        )
        .unwrap();
        assert_eq!(article.url, None);
    }

    fn raw(text: &str) -> RawArticle {
        RawArticle {
            text: text.into(),
            ..Default::default()
        }
    }

    #[test]
    fn ids_are_stable_and_depend_on_content_or_url() {
        let a = Article::from_raw(raw("Talks resumed on Monday."), "a.txt").unwrap();
        let b = Article::from_raw(raw("Talks resumed on Monday."), "b.txt").unwrap();
        assert_eq!(a.id, b.id, "same content, same id");
        assert_eq!(a.id.len(), 16);
        let c = Article::from_raw(raw("Talks resumed on Tuesday."), "a.txt").unwrap();
        assert_ne!(a.id, c.id);
        let with_url = |text: &str| {
            let mut r = raw(text);
            r.url = Some("https://www.example.com/news/1".into());
            Article::from_raw(r, "x").unwrap()
        };
        assert_eq!(
            with_url("one text").id,
            with_url("an edited text").id,
            "URL wins over text"
        );
        assert_eq!(with_url("x").source.as_deref(), Some("example.com"));
    }

    #[test]
    fn dates() {
        assert_eq!(
            parse_date("2022-03-14"),
            NaiveDate::from_ymd_opt(2022, 3, 14)
        );
        assert_eq!(
            parse_date("2022-03-14T23:30:00-05:00"),
            NaiveDate::from_ymd_opt(2022, 3, 14)
        );
        assert_eq!(
            parse_date("Mon, 14 Mar 2022 08:20:00 GMT"),
            NaiveDate::from_ymd_opt(2022, 3, 14)
        );
        assert_eq!(parse_date("2022-02-30"), None);
        let mut r = raw("Body text here.");
        r.date = Some("14/03/2022".into());
        assert_eq!(
            Article::from_raw(r, "x"),
            Err(ArticleError::BadDate("14/03/2022".into()))
        );
    }

    #[test]
    fn a_short_lead_is_the_headline_with_five_words() {
        // Without its time phrase it would be four words: the phrase stays.
        let h = derive_headline(&["Talks resume in Minsk today. More follows.".into()]);
        assert_eq!(h, "Talks resume in Minsk today");
        let h = derive_headline(&[
            "Talks will resume in Minsk in the coming days, officials said. More follows.".into(),
        ]);
        assert_eq!(h, "Talks to resume in Minsk");
    }

    #[test]
    fn a_long_lead_is_compressed_not_cut() {
        let h = derive_headline(&["As Russia and Ukraine resume talks, Ukrainian presidential adviser and negotiator, Mykhailo Podolyak, said on Twitter communication is ongoing yet hard, Al Jazeera is reporting.".into()]);
        assert_eq!(h, "Podolyak: communication ongoing yet hard");
        let h = derive_headline(&["The quick brown fox jumped over the lazy dog again and again while the farmer watched from a distance with growing alarm and then went home.".into()]);
        let words = h.split_whitespace().count();
        assert!((5..=12).contains(&words) && !h.contains('…'), "{h}");
        let last = h.split_whitespace().last().unwrap().to_lowercase();
        assert!(
            !["the", "and", "a", "of", "to", "with", "from"].contains(&last.as_str()),
            "{h}"
        );
    }
}
