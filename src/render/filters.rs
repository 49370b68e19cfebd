//! The filters templates get besides Tera's own (`wrap`, `repeat`, `pad`),
//! the plain text's tidying, and Markdown escaping for the Markdown preview.

use std::collections::HashMap;

use tera::{Tera, Value};

/// Collapses runs of blank lines left by template tags and trims line ends.
pub(super) fn tidy_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank = 0;
    for line in s.lines() {
        // "-- " is the signature separator: its trailing space is meaningful.
        let line = if line == "-- " { line } else { line.trim_end() };
        if line.is_empty() {
            blank += 1;
            if blank > 1 {
                continue;
            }
        } else {
            blank = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_start_matches('\n').to_owned()
}

pub(super) fn register_filters(tera: &mut Tera) {
    // wrap(width=76, indent="", first=true): word-wrap, indenting every line
    // (or all but the first, when it follows text on the same line).
    tera.register_filter("wrap", |value: &Value, args: &HashMap<String, Value>| {
        let text = tera::try_get_value!("wrap", "value", String, value);
        let width = args.get("width").and_then(Value::as_u64).unwrap_or(76) as usize;
        let indent = args.get("indent").and_then(Value::as_str).unwrap_or("");
        let first = args.get("first").and_then(Value::as_bool).unwrap_or(true);
        let opts = textwrap::Options::new(width.max(20))
            .initial_indent(if first { indent } else { "" })
            .subsequent_indent(indent)
            .break_words(false)
            .word_splitter(textwrap::WordSplitter::NoHyphenation);
        let wrapped = textwrap::fill(&text, opts);
        Ok(Value::String(wrapped))
    });
    tera.register_filter("repeat", |value: &Value, args: &HashMap<String, Value>| {
        let text = tera::try_get_value!("repeat", "value", String, value);
        let n = args.get("n").and_then(Value::as_u64).unwrap_or(1).min(1000) as usize;
        Ok(Value::String(text.repeat(n)))
    });
    // md: text for Markdown, its HTML and Markdown syntax escaped.
    tera.register_filter("md", |value: &Value, _: &HashMap<String, Value>| {
        let text = tera::try_get_value!("md", "value", String, value);
        Ok(Value::String(markdown_text(&text)))
    });
    // md_url: a link target for Markdown: only http(s), parentheses and
    // spaces percent-encoded; anything else becomes empty.
    tera.register_filter("md_url", |value: &Value, _: &HashMap<String, Value>| {
        let text = tera::try_get_value!("md_url", "value", String, value);
        Ok(Value::String(markdown_url(&text)))
    });
    tera.register_filter("pad", |value: &Value, args: &HashMap<String, Value>| {
        let text = match value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let width = args.get("width").and_then(Value::as_u64).unwrap_or(0) as usize;
        Ok(Value::String(format!("{text:>width$}")))
    });
}

/// Escapes text for Markdown: HTML as entities, Markdown's inline syntax
/// with backslashes, and a list or heading marker at the start.
pub fn markdown_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '(' | ')' | '#' | '!' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    // "- x", "+ x", "1. x" at the start of a line would make a list.
    let starts_list = out.starts_with("- ")
        || out.starts_with("+ ")
        || out
            .split_once(". ")
            .is_some_and(|(n, _)| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    if starts_list {
        let first = out.chars().next().map_or(0, char::len_utf8);
        if out.starts_with(['-', '+']) {
            out.insert(0, '\\');
        } else {
            let dot = out.find(". ").unwrap_or(first);
            out.insert(dot, '\\');
        }
    }
    out
}

/// A Markdown link target: an http(s) URL (anything else is empty), with
/// what would end or break the target percent-encoded.
pub fn markdown_url(url: &str) -> String {
    match crate::article::http_url(url) {
        Some(u) => u
            .replace('(', "%28")
            .replace(')', "%29")
            .replace(' ', "%20")
            .replace('<', "%3C")
            .replace('>', "%3E"),
        None => String::new(),
    }
}
