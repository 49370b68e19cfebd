//! Article file formats: the seed format (`date YYYY-MM-DD` header), plain
//! text, Markdown with YAML or TOML front matter, JSON, JSON Lines and saved
//! HTML pages.

use std::path::Path;
use std::sync::LazyLock;

use regex::Regex;
use serde::Deserialize;

use crate::article::RawArticle;

/// The formats an article file can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Plain text, optionally with the seed format's `date YYYY-MM-DD` header.
    Text,
    Markdown,
    Json,
    JsonLines,
    Html,
}

impl Format {
    /// The format a file name says, if it names one.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" | "text" => Format::Text,
            "md" | "markdown" => Format::Markdown,
            "json" => Format::Json,
            "jsonl" | "ndjson" => Format::JsonLines,
            "html" | "htm" | "xhtml" => Format::Html,
            _ => return None,
        })
    }

    /// Guesses the format of unnamed input (stdin, unknown extensions) from
    /// its first bytes.
    pub fn sniff(head: &str) -> Format {
        let t = head.trim_start_matches('\u{feff}').trim_start();
        if t.starts_with('{') {
            // One object per line is JSON Lines; one object over many lines is JSON.
            let first_line = t.lines().next().unwrap_or("");
            if serde_json::from_str::<serde_json::Value>(first_line).is_ok() {
                Format::JsonLines
            } else {
                Format::Json
            }
        } else if t.starts_with('[') {
            Format::Json
        } else if t.starts_with('<') {
            Format::Html
        } else if t.starts_with("---") || t.starts_with("+++") {
            Format::Markdown
        } else {
            Format::Text
        }
    }
}

/// Why a file's content is not an article.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("invalid front matter: {0}")]
    FrontMatter(String),
    #[error("no article text found in the HTML page")]
    Html,
    #[error("the HTML page nests elements {0} deep (at most {MAX_HTML_DEPTH} are extracted)")]
    TooDeep(usize),
    #[error("the HTML page is {0} bytes (at most {MAX_HTML_BYTES} are extracted)")]
    TooLarge(usize),
}

/// Deepest nesting extracted: the extractor's cost grows with depth times
/// size (50,000 nested `div`s took minutes). Browsers' parsers cap depth at
/// 512 too; real articles stay far below.
pub const MAX_HTML_DEPTH: usize = 512;
/// Largest page extracted.
pub const MAX_HTML_BYTES: usize = 4 * 1024 * 1024;

/// How deeply a page nests its elements, from its tags alone (one linear
/// pass, before any parsing). Void elements, self-closing tags and the
/// elements whose end tag HTML lets authors leave out (`p`, `li`, `td`, ...)
/// do not count; comments, scripts and styles are skipped.
pub fn nesting_depth(html: &str) -> usize {
    const FLAT: &[&str] = &[
        "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr", "param", "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup",
        "thead", "tbody", "tfoot", "colgroup", "caption", "rb", "rt", "rtc", "rp", "html", "head",
        "body",
    ];
    let bytes = html.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while let Some(off) = memchr_lt(&bytes[i..]) {
        i += off + 1;
        if html[i..].starts_with("!--") {
            i = html[i..].find("-->").map_or(bytes.len(), |e| i + e + 3);
            continue;
        }
        let closing = bytes.get(i) == Some(&b'/');
        let start = if closing { i + 1 } else { i };
        let name_len = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric())
            .count();
        if name_len == 0 {
            continue;
        }
        let name = html[start..start + name_len].to_ascii_lowercase();
        let end = html[start..].find('>').map_or(bytes.len(), |e| start + e);
        let self_closing = end > 0 && bytes.get(end - 1) == Some(&b'/');
        i = end.min(bytes.len());
        if FLAT.contains(&name.as_str()) || self_closing {
            continue;
        }
        if closing {
            depth = depth.saturating_sub(1);
        } else if name == "script" || name == "style" {
            // Past the matching end tag: its contents are not markup.
            let close = format!("</{name}");
            i = html[i..]
                .to_ascii_lowercase()
                .find(&close)
                .and_then(|e| html[i + e..].find('>').map(|g| i + e + g))
                .unwrap_or(bytes.len());
        } else {
            depth += 1;
            deepest = deepest.max(depth);
        }
    }
    deepest
}

fn memchr_lt(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'<')
}

/// The JSON shape of an article (JSON and JSON Lines inputs). Unknown fields
/// are ignored: evaluation records carry `summary`, feeds carry more.
#[derive(Debug, Default, Deserialize)]
pub struct JsonArticle {
    #[serde(default, deserialize_with = "string_or_number")]
    pub id: Option<String>,
    pub title: Option<String>,
    #[serde(default, deserialize_with = "string_or_number")]
    pub date: Option<String>,
    pub source: Option<String>,
    pub url: Option<String>,
    #[serde(alias = "body", alias = "content", alias = "article")]
    pub text: String,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(v) => Some(v.to_string()),
    })
}

impl From<JsonArticle> for RawArticle {
    fn from(j: JsonArticle) -> Self {
        RawArticle {
            id: j.id,
            title: j.title,
            date: j.date,
            source: j.source,
            url: j.url,
            text: j.text,
        }
    }
}

/// The seed format's header: optional spaces, `date`, the date, then the
/// body goes on on the same line.
static DATE_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[ \t\u{feff}]*(?i:date)[ \t]*:?[ \t]+(\S+)[ \t]*").expect("date header")
});

/// Parses a plain text article; with a `date` header when it has one.
pub fn parse_text(content: &str) -> RawArticle {
    if let Some(m) = DATE_HEADER.captures(content) {
        let date = m.get(1).map(|d| d.as_str().to_owned());
        let body = &content[m.get(0).map_or(0, |m| m.end())..];
        return RawArticle {
            date,
            text: body.to_owned(),
            ..Default::default()
        };
    }
    RawArticle {
        text: content.to_owned(),
        ..Default::default()
    }
}

/// Parses one JSON document: an article object or an array of them.
pub fn parse_json(content: &str) -> Result<Vec<RawArticle>, ParseError> {
    let value: serde_json::Value =
        serde_json::from_str(content).map_err(|e| ParseError::Json(e.to_string()))?;
    let items = match value {
        serde_json::Value::Array(items) => items,
        other => vec![other],
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            serde_json::from_value::<JsonArticle>(v)
                .map(RawArticle::from)
                .map_err(|e| ParseError::Json(format!("item {}: {e}", i + 1)))
        })
        .collect()
}

/// Parses one line of JSON Lines.
pub fn parse_json_line(line: &str) -> Result<RawArticle, ParseError> {
    serde_json::from_str::<JsonArticle>(line)
        .map(RawArticle::from)
        .map_err(|e| ParseError::Json(e.to_string()))
}

#[derive(Debug, Default, Deserialize)]
struct FrontMatter {
    title: Option<String>,
    date: Option<String>,
    source: Option<String>,
    url: Option<String>,
    id: Option<String>,
}

/// Reads the front matter's fields from any value shape, so that a TOML
/// datetime or a YAML number still reads as a date string.
fn front_matter_from(value: serde_json::Value) -> Result<FrontMatter, ParseError> {
    let serde_json::Value::Object(map) = value else {
        return Err(ParseError::FrontMatter("expected a table of fields".into()));
    };
    let field = |k: &str| -> Option<String> {
        match map.get(k)? {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Object(o) if o.contains_key("$__toml_private_datetime") => {
                o["$__toml_private_datetime"].as_str().map(str::to_owned)
            }
            other => Some(other.to_string()),
        }
    };
    Ok(FrontMatter {
        title: field("title"),
        date: field("date"),
        source: field("source"),
        url: field("url"),
        id: field("id"),
    })
}

/// Parses Markdown with optional YAML (`---`) or TOML (`+++`) front matter.
/// A leading `# Heading` is the title when the front matter has none.
pub fn parse_markdown(content: &str) -> Result<RawArticle, ParseError> {
    let content = content.trim_start_matches('\u{feff}');
    let (front, body) = split_front_matter(content)?;
    let (heading, text) = markdown_to_text(body);
    Ok(RawArticle {
        id: front.id,
        title: front.title.or(heading),
        date: front.date,
        source: front.source,
        url: front.url,
        text,
    })
}

fn split_front_matter(content: &str) -> Result<(FrontMatter, &str), ParseError> {
    for (fence, is_toml) in [("---", false), ("+++", true)] {
        let Some(rest) = content.strip_prefix(fence) else {
            continue;
        };
        let Some(rest) = rest
            .strip_prefix('\n')
            .or_else(|| rest.strip_prefix("\r\n"))
        else {
            continue;
        };
        let close = rest
            .match_indices(fence)
            .find(|(i, _)| *i == 0 || rest.as_bytes()[i - 1] == b'\n')
            .map(|(i, _)| i)
            .ok_or_else(|| ParseError::FrontMatter(format!("no closing {fence}")))?;
        let meta = &rest[..close];
        let body = rest[close + fence.len()..].trim_start_matches(['\r', '\n']);
        let value = if is_toml {
            let table: toml::Table = toml::from_str(meta)
                .map_err(|e| ParseError::FrontMatter(e.message().to_owned()))?;
            serde_json::to_value(table).map_err(|e| ParseError::FrontMatter(e.to_string()))?
        } else if meta.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_yaml_ng::from_str::<serde_json::Value>(meta)
                .map_err(|e| ParseError::FrontMatter(e.to_string()))?
        };
        return Ok((front_matter_from(value)?, body));
    }
    Ok((FrontMatter::default(), content))
}

/// Markdown to paragraphs of plain text (links keep their text, images,
/// code blocks and HTML are dropped); returns the first level-1 heading
/// separately when the document starts with one.
fn markdown_to_text(md: &str) -> (Option<String>, String) {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut heading: Option<String> = None;
    let mut in_heading_1 = false;
    let mut skip = 0usize;
    for event in Parser::new(md) {
        match event {
            Event::Start(Tag::Heading { level, .. }) => {
                in_heading_1 = level == pulldown_cmark::HeadingLevel::H1
                    && heading.is_none()
                    && paragraphs.is_empty();
            }
            Event::Start(Tag::CodeBlock(_) | Tag::Image { .. } | Tag::HtmlBlock) => skip += 1,
            Event::End(TagEnd::CodeBlock | TagEnd::Image | TagEnd::HtmlBlock) => {
                skip = skip.saturating_sub(1)
            }
            Event::Text(t) | Event::Code(t) if skip == 0 => current.push_str(&t),
            Event::SoftBreak if skip == 0 => current.push(' '),
            Event::HardBreak if skip == 0 => current.push('\n'),
            Event::End(TagEnd::Heading(_)) if in_heading_1 => {
                in_heading_1 = false;
                heading = Some(std::mem::take(&mut current).trim().to_owned());
            }
            Event::End(
                TagEnd::Paragraph | TagEnd::Heading(_) | TagEnd::Item | TagEnd::BlockQuote(_),
            ) => {
                let p = std::mem::take(&mut current);
                if !p.trim().is_empty() {
                    paragraphs.push(p.trim().to_owned());
                }
            }
            _ => {}
        }
    }
    if !current.trim().is_empty() {
        paragraphs.push(current.trim().to_owned());
    }
    (heading.filter(|h| !h.is_empty()), paragraphs.join("\n\n"))
}

/// Extracts the article from a saved HTML page with a Readability port
/// (`dom_smoothie`): navigation, scripts and ads are dropped.
pub fn parse_html(content: &str) -> Result<RawArticle, ParseError> {
    if content.len() > MAX_HTML_BYTES {
        return Err(ParseError::TooLarge(content.len()));
    }
    let depth = nesting_depth(content);
    if depth > MAX_HTML_DEPTH {
        return Err(ParseError::TooDeep(depth));
    }
    let cfg = dom_smoothie::Config {
        text_mode: dom_smoothie::TextMode::Formatted,
        ..Default::default()
    };
    let mut readability =
        dom_smoothie::Readability::new(content, None, Some(cfg)).map_err(|_| ParseError::Html)?;
    let article = readability.parse().map_err(|_| ParseError::Html)?;
    let text = article.text_content.to_string();
    if text.trim().is_empty() {
        return Err(ParseError::Html);
    }
    let title = Some(article.title.trim().to_owned()).filter(|t| !t.is_empty());
    Ok(RawArticle {
        id: None,
        title,
        date: article.published_time.filter(|d| !d.trim().is_empty()),
        source: article.site_name,
        url: article.url,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_is_measured_in_one_pass_and_refused() {
        assert_eq!(
            nesting_depth("<html><body><div><p>a<p>b<br><img src=x /></div></body></html>"),
            1
        );
        assert_eq!(nesting_depth("<div><!-- <div><div> --><script>if (a<b) {}</script><section><div></div></section></div>"), 3);
        let deep = format!("{}x{}", "<div>".repeat(50_000), "</div>".repeat(50_000));
        assert_eq!(nesting_depth(&deep), 50_000);
        assert!(matches!(
            parse_html(&deep),
            Err(ParseError::TooDeep(50_000))
        ));
    }

    #[test]
    fn seed_header() {
        let raw =
            parse_text(" date 2022-03-14 As Russia and Ukraine resume talks.\n\nSecond paragraph.");
        assert_eq!(raw.date.as_deref(), Some("2022-03-14"));
        assert_eq!(
            raw.text,
            "As Russia and Ukraine resume talks.\n\nSecond paragraph."
        );
        let raw = parse_text("Dated material is not a header.");
        assert_eq!(raw.date, None);
        assert_eq!(raw.text, "Dated material is not a header.");
    }

    #[test]
    fn markdown_yaml_and_toml() {
        let raw = parse_markdown("---\ntitle: Talks resume\ndate: 2022-03-14\nsource: Al Jazeera\nurl: https://example.com/a\n---\n\nThe **talks** [resumed](https://x.y) on Monday.\n\n![photo](p.jpg)\n\nMore text.\n").unwrap();
        assert_eq!(raw.title.as_deref(), Some("Talks resume"));
        assert_eq!(raw.date.as_deref(), Some("2022-03-14"));
        assert_eq!(raw.source.as_deref(), Some("Al Jazeera"));
        assert_eq!(raw.text, "The talks resumed on Monday.\n\nMore text.");
        let raw = parse_markdown(
            "+++\ntitle = \"T\"\ndate = 2022-03-14\n+++\n# Ignored heading\n\nBody.",
        )
        .unwrap();
        assert_eq!(raw.title.as_deref(), Some("T"));
        assert_eq!(raw.date.as_deref(), Some("2022-03-14"));
        let raw = parse_markdown("# A heading title\n\nBody text.").unwrap();
        assert_eq!(raw.title.as_deref(), Some("A heading title"));
        assert_eq!(raw.text, "Body text.");
        assert!(matches!(
            parse_markdown("---\ntitle: [unclosed\n---\nx"),
            Err(ParseError::FrontMatter(_))
        ));
        assert!(matches!(
            parse_markdown("---\ntitle: x\nno end"),
            Err(ParseError::FrontMatter(_))
        ));
    }

    #[test]
    fn json_object_array_and_lines() {
        let v =
            parse_json(r#"{"title":"T","text":"Body.","date":"2022-03-14","extra":1}"#).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].title.as_deref(), Some("T"));
        let v = parse_json(r#"[{"text":"A."},{"body":"B.","id":7}]"#).unwrap();
        assert_eq!(v[1].text, "B.");
        assert_eq!(v[1].id.as_deref(), Some("7"));
        assert!(parse_json(r#"[{"title":"no text"}]"#).is_err());
        assert!(parse_json_line("{not json").is_err());
    }

    #[test]
    fn html_page() {
        let page = r#"<!doctype html><html><head><title>Talks resume - Example News</title>
            <script>var tracking = 1;</script></head><body>
            <nav><a href="/">Home</a> <a href="/world">World</a> <a href="/sport">Sport</a></nav>
            <div class="ad">Buy now! Advertisement</div>
            <article><h1>Talks resume</h1>
            <p>Russian and Ukrainian officials on Monday resumed a new round of talks as Moscow's invading forces showed no sign of withdrawal, edging closer to the capital.</p>
            <p>The two sides' representatives met via video conference on Monday, a Ukrainian presidential adviser and a Kremlin spokesman said, and the talks began at 08:20 GMT.</p>
            <p>Meanwhile, a senior member of Russia's negotiating team told state television on Sunday that the Russian side saw significant progress in the talks so far.</p>
            </article><footer>Copyright Example News. All rights reserved.</footer></body></html>"#;
        let raw = parse_html(page).unwrap();
        assert!(raw.title.as_deref().unwrap().contains("Talks resume"));
        assert!(raw.text.contains("resumed a new round of talks"));
        assert!(!raw.text.contains("tracking"), "{}", raw.text);
        assert!(!raw.text.contains("Home"), "{}", raw.text);
        assert!(raw.text.contains("\n\n"), "paragraphs kept: {:?}", raw.text);
    }

    #[test]
    fn sniffing() {
        assert_eq!(
            Format::sniff("{\"text\":\"a\"}\n{\"text\":\"b\"}"),
            Format::JsonLines
        );
        assert_eq!(Format::sniff("{\n \"text\": \"a\"\n}"), Format::Json);
        assert_eq!(Format::sniff("[{}]"), Format::Json);
        assert_eq!(Format::sniff("<!doctype html>"), Format::Html);
        assert_eq!(Format::sniff("---\ntitle: x\n---"), Format::Markdown);
        assert_eq!(Format::sniff(" date 2022-03-14 Text"), Format::Text);
    }
}
