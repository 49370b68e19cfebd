//! Templates: the built-in Tera templates (embedded in the binary) and the
//! editor's overrides from the templates folder, one file at a time.
//!
//! Every template is checked by rendering it against a complete sample
//! context before any real work, so that a syntax error or an unknown
//! variable stops `preview` and `send` with the template's name, line and
//! column instead of failing halfway through a send.

mod filters;
mod sample;

pub use filters::{markdown_text, markdown_url};
use filters::{register_filters, tidy_text};
pub use sample::sample_edition;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use tera::{Context, Tera};

use crate::edition::{Edition, Story};

pub const HTML: &str = "digest.html.tera";
pub const TEXT: &str = "digest.txt.tera";
pub const MARKDOWN: &str = "digest.md.tera";
pub const SUBJECT: &str = "subject.tera";

/// The built-in templates, by name.
pub const BUILT_IN: [(&str, &str); 4] = [
    (HTML, include_str!("../../templates/digest.html.tera")),
    (TEXT, include_str!("../../templates/digest.txt.tera")),
    (MARKDOWN, include_str!("../../templates/digest.md.tera")),
    (SUBJECT, include_str!("../../templates/subject.tera")),
];

/// Longest subject, in characters before encoding.
pub const MAX_SUBJECT_CHARS: usize = 100;

/// A template that does not parse or does not render.
#[derive(Debug, thiserror::Error)]
#[error("template {name}{}: {message}", location.map(|(l, c)| format!(" (line {l}, column {c})")).unwrap_or_default())]
pub struct TemplateError {
    /// The template's name, with the file it came from when overridden.
    pub name: String,
    pub location: Option<(usize, usize)>,
    pub message: String,
}

/// Who a rendering is for.
#[derive(Debug, Clone, Serialize)]
pub struct Recipient {
    pub name: Option<String>,
    pub email: String,
    pub unsubscribe_url: String,
    /// Their preferences page (topics, pause).
    pub preferences_url: String,
    /// The edition's web copy, for anyone: no address, no links of a
    /// subscriber's own (templates show the archive and subscribe links
    /// instead).
    pub web_copy: bool,
}

impl Recipient {
    /// The stand-in reader of `digest preview`.
    pub fn preview(base_url: &str) -> Recipient {
        let base = base_url.trim_end_matches('/');
        Recipient {
            name: None,
            email: "reader@example.com".into(),
            unsubscribe_url: format!("{base}/unsubscribe/preview"),
            preferences_url: format!("{base}/preferences/preview"),
            web_copy: false,
        }
    }

    /// The reader of the web copy (`/editions/DATE`): nobody in particular.
    pub fn web_copy() -> Recipient {
        Recipient {
            name: None,
            email: String::new(),
            unsubscribe_url: String::new(),
            preferences_url: String::new(),
            web_copy: true,
        }
    }
}

/// A rendered message: subject, plain text and HTML.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The loaded templates.
pub struct Renderer {
    tera: Tera,
    /// Where each template came from (`built-in` or a path), and its source.
    sources: HashMap<String, (String, String)>,
    title: String,
    /// Where `digest serve` answers (web copies, archive, subscribe page);
    /// empty: links are relative to the server.
    base_url: String,
}

impl Renderer {
    /// Loads the built-in templates, then every `*.tera` file in `dir`
    /// (when it exists) over them.
    pub fn load(dir: Option<&Path>, title: &str) -> Result<Renderer, TemplateError> {
        let mut sources: HashMap<String, (String, String)> = BUILT_IN
            .iter()
            .map(|(n, s)| (n.to_string(), ("built-in".to_string(), s.to_string())))
            .collect();
        if let Some(dir) = dir.filter(|d| d.is_dir()) {
            for path in template_files(dir) {
                let name = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .to_string_lossy()
                    .replace('\\', "/");
                let text = std::fs::read_to_string(&path).map_err(|e| TemplateError {
                    name: path.display().to_string(),
                    location: None,
                    message: format!("cannot read: {e}"),
                })?;
                sources.insert(name, (path.display().to_string(), text));
            }
        }
        let mut tera = Tera::default();
        tera.autoescape_on(vec![".html.tera", ".html", ".htm"]);
        register_filters(&mut tera);
        let mut names: Vec<&String> = sources.keys().collect();
        names.sort();
        tera.add_raw_templates(names.iter().map(|n| (n.as_str(), sources[*n].1.as_str())))
            .map_err(|e| describe(&e, &sources))?;
        Ok(Renderer {
            tera,
            sources,
            title: title.to_owned(),
            base_url: String::new(),
        })
    }

    /// Links to `digest serve` (web copies, the archive) start with `url`.
    pub fn with_base_url(mut self, url: &str) -> Renderer {
        self.base_url = url.trim_end_matches('/').to_owned();
        self
    }

    /// Renders every template against a complete sample edition: a
    /// template that uses an unknown variable fails here, not mid-send.
    pub fn check(&self) -> Result<(), TemplateError> {
        let edition = sample_edition();
        let recipient = Recipient {
            name: Some("Sample Reader".into()),
            email: "sample@example.com".into(),
            unsubscribe_url: "https://example.com/unsubscribe/sample".into(),
            preferences_url: "https://example.com/preferences/sample".into(),
            web_copy: false,
        };
        self.render(&edition, &recipient)?;
        self.render_one(MARKDOWN, &edition, &recipient)?;
        self.render(&edition, &Recipient::web_copy())?;
        Ok(())
    }

    /// The names of the loaded templates and where each came from.
    pub fn origins(&self) -> BTreeMap<String, String> {
        self.sources
            .iter()
            .map(|(n, (o, _))| (n.clone(), o.clone()))
            .collect()
    }

    /// Renders subject, plain text and HTML for one recipient.
    pub fn render(
        &self,
        edition: &Edition,
        recipient: &Recipient,
    ) -> Result<Rendered, TemplateError> {
        let mut ctx = self.context(edition, recipient);
        let subject = self.subject(&ctx)?;
        ctx.insert("subject", &subject);
        let text = self.render_template(TEXT, &ctx)?;
        let html = self.render_template(HTML, &ctx)?;
        Ok(Rendered {
            subject,
            text: tidy_text(&text),
            html,
        })
    }

    /// Renders one template (`digest.md.tera`, ...) for one recipient.
    pub fn render_one(
        &self,
        name: &str,
        edition: &Edition,
        recipient: &Recipient,
    ) -> Result<String, TemplateError> {
        let mut ctx = self.context(edition, recipient);
        let subject = self.subject(&ctx)?;
        ctx.insert("subject", &subject);
        self.render_template(name, &ctx)
    }

    /// The subject alone, for one recipient (the archive lists it).
    pub fn subject_for(
        &self,
        edition: &Edition,
        recipient: &Recipient,
    ) -> Result<String, TemplateError> {
        self.subject(&self.context(edition, recipient))
    }

    /// The subject on one line, at most `MAX_SUBJECT_CHARS` characters (cut
    /// at a word): a header a server cannot refuse as too long.
    fn subject(&self, ctx: &Context) -> Result<String, TemplateError> {
        let subject = self.render_template(SUBJECT, ctx)?;
        let subject = subject.split_whitespace().collect::<Vec<_>>().join(" ");
        Ok(crate::text::shorten(&subject, MAX_SUBJECT_CHARS))
    }

    fn render_template(&self, name: &str, ctx: &Context) -> Result<String, TemplateError> {
        self.tera
            .render(name, ctx)
            .map_err(|e| describe(&e, &self.sources))
    }

    /// The template context (documented in the README).
    pub fn context(&self, edition: &Edition, recipient: &Recipient) -> Context {
        let stories: Vec<StoryView> = edition.full_stories().map(StoryView::from).collect();
        let briefs: Vec<StoryView> = edition.briefs().map(StoryView::from).collect();
        let top: Vec<StoryView> = edition
            .stories
            .iter()
            .take(edition.top_stories)
            .map(StoryView::from)
            .collect();
        let mut ctx = Context::new();
        ctx.insert(
            "edition",
            &EditionView {
                title: &self.title,
                date: edition.date.to_string(),
                date_long: edition.date.format("%A %-d %B %Y").to_string(),
                date_short: edition.date.format("%-d %b %Y").to_string(),
                story_count: edition.stories.len(),
                article_count: edition.article_count,
                source_count: edition.source_count,
                web_url: format!("{}/editions/{}", self.base_url, edition.date),
            },
        );
        ctx.insert("top_stories", &top);
        ctx.insert("stories", &stories);
        ctx.insert("briefs", &briefs);
        ctx.insert(
            "subscriber",
            &serde_json::json!({ "name": recipient.name, "email": recipient.email }),
        );
        ctx.insert("unsubscribe_url", &recipient.unsubscribe_url);
        ctx.insert("preferences_url", &recipient.preferences_url);
        ctx.insert("web_copy", &recipient.web_copy);
        ctx.insert("archive_url", &format!("{}/editions", self.base_url));
        ctx.insert("subscribe_url", &format!("{}/subscribe", self.base_url));
        ctx.insert(
            "generator",
            &serde_json::json!({ "name": "dailydigest", "version": env!("CARGO_PKG_VERSION") }),
        );
        ctx
    }
}

#[derive(Serialize)]
struct EditionView<'a> {
    title: &'a str,
    date: String,
    date_long: String,
    date_short: String,
    story_count: usize,
    article_count: usize,
    source_count: usize,
    /// The edition's web copy.
    web_url: String,
}

/// "Also reported by" lists at most this many reports; the rest are
/// counted ("and 12 more").
pub const MAX_ALSO_SHOWN: usize = 5;

/// A story as templates see it: the `Story` fields (links checked, at most
/// `MAX_ALSO_SHOWN` other reports) plus `summary_text` and `also_more`,
/// the number of other reports not listed.
#[derive(Serialize)]
struct StoryView {
    #[serde(flatten)]
    story: Story,
    summary_text: String,
    also_more: usize,
}

impl From<&Story> for StoryView {
    fn from(story: &Story) -> Self {
        let mut shown = web_links(story);
        // Reports without a name are counted, not listed as blanks.
        let total = shown.also_reported_by.len();
        shown.also_reported_by.retain(|r| !r.source.is_empty());
        shown.also_reported_by.truncate(MAX_ALSO_SHOWN);
        let also_more = total - shown.also_reported_by.len();
        StoryView {
            story: shown,
            summary_text: story.summary.join(" "),
            also_more,
        }
    }
}

fn template_files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "tera"))
        .map(|e| e.into_path())
        .collect();
    out.sort();
    out
}

/// Turns a Tera error into one with the template's origin, line and column.
fn describe(err: &tera::Error, sources: &HashMap<String, (String, String)>) -> TemplateError {
    static NAME: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"'([^']+\.tera)'").expect("name regex"));
    static POS: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"--> (\d+):(\d+)").expect("pos regex"));
    static VAR: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"Variable `([^`]+)` not found").expect("var regex"));
    let mut chain = vec![err.to_string()];
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        chain.push(s.to_string());
        source = s.source();
    }
    let full = chain.join(": ");
    let name = NAME
        .captures(&full)
        .map(|c| c[1].to_owned())
        .unwrap_or_else(|| "(unknown)".into());
    let origin = sources
        .get(&name)
        .map(|(o, _)| o.clone())
        .unwrap_or_else(|| "built-in".into());
    let mut location = POS
        .captures(&full)
        .map(|c| (c[1].parse().unwrap_or(0), c[2].parse().unwrap_or(0)));
    if location.is_none() {
        if let (Some(var), Some((_, text))) = (VAR.captures(&full), sources.get(&name)) {
            location = locate_variable(text, &var[1]);
        }
    }
    // The last link of the chain is the most specific; keep pest's
    // multi-line pointer out of a one-line message.
    let message = chain
        .iter()
        .rev()
        .find(|m| !m.starts_with("Failed to parse") && !m.starts_with("Failed to render"))
        .unwrap_or(&full)
        .lines()
        .filter(|l| {
            !l.trim().is_empty()
                && !l.trim_start().starts_with("-->")
                && !l.trim_start().starts_with('|')
        })
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    let name = if origin == "built-in" {
        format!("{name} (built-in)")
    } else {
        origin
    };
    TemplateError {
        name,
        location,
        message,
    }
}

/// Line and column (1-based) of the first use of `var` inside a tag.
fn locate_variable(text: &str, var: &str) -> Option<(usize, usize)> {
    let re = Regex::new(&format!(
        r"(\{{\{{|\{{%)[^}}]*?\b({})\b",
        regex::escape(var)
    ))
    .ok()?;
    let m = re.captures(text)?.get(2)?;
    let before = &text[..m.start()];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    Some((line, col))
}

/// A story with only links that may be followed: http(s). Ingest already
/// drops other links; this also covers editions stored before it did, or
/// edited by hand.
fn web_links(story: &Story) -> Story {
    let safe = |u: &Option<String>| u.as_deref().and_then(crate::article::http_url);
    let mut s = story.clone();
    s.url = safe(&story.url);
    s.urls.retain(|u| crate::article::http_url(u).is_some());
    for r in &mut s.also_reported_by {
        r.url = safe(&r.url);
        // Kept in the stored edition for `split`; templates show no
        // report's summary, and the context stays as small as it was.
        r.summary = Vec::new();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_templates_pass_the_check() {
        Renderer::load(None, "Daily Digest")
            .unwrap()
            .check()
            .unwrap();
    }

    #[test]
    fn overrides_replace_one_file_and_keep_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SUBJECT), "Custom: {{ edition.date }}").unwrap();
        let r = Renderer::load(Some(dir.path()), "Daily Digest").unwrap();
        let out = r
            .render(&sample_edition(), &Recipient::preview("https://x.example"))
            .unwrap();
        assert_eq!(out.subject, "Custom: 2022-03-14");
        assert!(
            out.html.contains("Sample headline number 1"),
            "built-in HTML still there"
        );
        assert!(r.origins()[SUBJECT].ends_with("subject.tera") && r.origins()[HTML] == "built-in");
    }

    #[test]
    fn syntax_errors_name_template_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(TEXT), "line one\n{{ edition.date }\n").unwrap();
        let err = Renderer::load(Some(dir.path()), "T")
            .err()
            .expect("syntax error");
        assert!(err.name.ends_with("digest.txt.tera"), "{err}");
        assert_eq!(err.location.map(|l| l.0), Some(2), "{err}");
        let shown = err.to_string();
        assert!(shown.contains("line 2"), "{shown}");
    }

    #[test]
    fn unknown_variables_fail_the_check_with_their_position() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(SUBJECT),
            "{{ edition.date }}\n  {{ edition.weather }}",
        )
        .unwrap();
        let r = Renderer::load(Some(dir.path()), "T").unwrap();
        let err = r.check().unwrap_err();
        assert!(err.name.ends_with("subject.tera"), "{err}");
        assert_eq!(err.location, Some((2, 6)), "{err}");
        assert!(err.message.contains("edition.weather"), "{err}");
    }

    #[test]
    fn html_autoescapes_article_text_and_text_does_not() {
        let mut e = sample_edition();
        e.stories[0].headline = "Tom & Jerry <script>alert(1)</script>".into();
        let out = Renderer::load(None, "T")
            .unwrap()
            .render(&e, &Recipient::preview("https://x.example"))
            .unwrap();
        assert!(
            out.html.contains("Tom &amp; Jerry &lt;script&gt;"),
            "escaped in HTML"
        );
        assert!(!out.html.contains("<script>"));
        assert!(
            out.text.contains("Tom & Jerry <script>"),
            "plain text is plain"
        );
    }

    #[test]
    fn text_lines_fit_78_columns() {
        let mut e = sample_edition();
        e.stories[0].summary = vec!["word ".repeat(60)];
        let out = Renderer::load(None, "T")
            .unwrap()
            .render(&e, &Recipient::preview("https://x.example"))
            .unwrap();
        for line in out.text.lines() {
            assert!(line.chars().count() <= 78, "{line:?}");
        }
    }
}
