//! Page debris: what a saved page or a pasted article carries that is not
//! the article. `READ ALSO:` lines, `Advertisement`, share and subscribe
//! prompts, photo credits, wire datelines, HTML entities, stray whitespace.

use std::sync::LazyLock;

use regex::Regex;

/// Whole lines that are page furniture, not prose.
static DEBRIS_LINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)^(?:
            (?:read|see)\s+(?:also|more)\b.{0,120}
          | related(?:\s+(?:articles?|stories|content|coverage|links?))?\s*:.{0,120}
          | more\s+on\s+this\s+story.{0,80}
          | advertisement | advert | sponsored(?:\s+content)? | ad
          | (?:story\s+)?continues?\s+below(?:\s+advertisement)?
          | (?:share|tweet|email|print|comment)(?:\s+(?:this|on)\b.{0,60})?
          | share\s+(?:this|on|via)\b.{0,60}
          | (?:please\s+)?(?:subscribe|sign\s+up|register)\b.{0,120}
          | (?:follow|like)\s+(?:us|\S+)\s+on\s+(?:twitter|facebook|instagram|x)\b.{0,60}
          | click\s+here\b.{0,120}
          | (?:image|photo|picture|media|video)\s+(?:copyright|caption|credit)\b.{0,200}
          | (?:photo(?:graph)?|picture|image|credit|source)\s*:.{0,120}
          | \(?(?:photo|picture|image)\s+by\b.{0,120}
          | copyright\b.{0,120} | ©.{0,120}
          | all\s+rights\s+reserved\.?
          | updated\s+\d.{0,40}
          | (?:by\s+)?[\p{Lu}][\p{L}.'-]+(?:\s+[\p{Lu}][\p{L}.'-]+){0,3}\s*(?:,\s*(?:cnn|reuters|ap|afp|bbc)\b.*)?\s*/\s*(?:getty\s+images|afp|reuters|ap|epa|shutterstock).{0,40}
        )\s*$",
    )
    .expect("debris regex")
});

/// A byline alone on a line: `By Jane Smith` or `By Jane Smith, CNN`.
static BYLINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?i:by)\s+[\p{Lu}][\p{L}.'-]+(?:\s+(?:[\p{Lu}][\p{L}.'-]+|and|&)){0,6}(?:\s*,\s*[\p{L} ]{2,40})?$")
        .expect("byline regex")
});

/// A wire dateline at the start of the text: `(CNN)`, `WASHINGTON (CNN) --`,
/// `LONDON, England (Reuters) --`, `NEW YORK (AP) —`.
static DATELINE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        // ASCII classes on purpose: Unicode letter classes make this regex
        // cost more to compile than summarizing a hundred articles.
        r"^(?:[A-Z][A-Z .'/-]{0,40}(?:,\s*[A-Z][A-Za-z .'-]{0,30})?\s*)?\((?:CNN|CNN\s+\w+|AP|Reuters|AFP|UPI|Bloomberg|EW\.com|Mashable|CNNMoney)\)\s*(?:--|—|–|-|:)?\s*",
    )
    .expect("dateline regex")
});

/// Inline credits such as `(Photo by Jane Doe/Getty Images)`.
static INLINE_CREDIT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\s*\((?:photo|picture|image)s?\s+(?:by|credit|courtesy)[^)]{0,120}\)")
        .expect("credit regex")
});

/// Cleans article text into paragraphs: entities decoded, debris lines
/// dropped, whitespace collapsed (single line breaks inside a paragraph are
/// kept: they may end a headline-like line).
pub fn paragraphs(text: &str) -> Vec<String> {
    let decoded = decode_entities(text);
    let mut out: Vec<String> = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let flush = |current: &mut Vec<String>, out: &mut Vec<String>| {
        if !current.is_empty() {
            out.push(current.join("\n"));
            current.clear();
        }
    };
    for line in decoded.lines() {
        let line = collapse_spaces(line);
        if line.is_empty() {
            flush(&mut current, &mut out);
            continue;
        }
        if is_debris(&line) {
            // Debris separates paragraphs: what followed it is not a continuation.
            flush(&mut current, &mut out);
            continue;
        }
        let line = if line.contains('(') {
            INLINE_CREDIT.replace_all(&line, "").into_owned()
        } else {
            line
        };
        let line = line.trim();
        if !line.is_empty() {
            current.push(line.to_owned());
        }
    }
    flush(&mut current, &mut out);
    if let Some(first) = out
        .first_mut()
        .filter(|p| p.chars().take(80).any(|c| c == '('))
    {
        let stripped = DATELINE.replace(first, "");
        if stripped.len() != first.len() {
            *first = stripped.trim().to_owned();
        }
    }
    out.retain(|p| p.chars().any(char::is_alphanumeric));
    out
}

/// Cleans a one-line field (title, source, url): entities, whitespace.
pub fn inline(s: &str) -> String {
    collapse_spaces(&decode_entities(s).replace(['\n', '\r'], " "))
}

/// Whether a whole (collapsed) line is page debris.
pub fn is_debris(line: &str) -> bool {
    line.len() < 300 && (DEBRIS_LINE.is_match(line) || BYLINE.is_match(line))
}

fn decode_entities(s: &str) -> String {
    if s.contains('&') {
        htmlize::unescape(s).into_owned()
    } else {
        s.to_owned()
    }
}

/// One line of text as a person typed it (an editor's headline or
/// summary sentence): whitespace runs collapsed to one space, and control
/// characters (C0, DEL, C1: escapes, bells, NUL) removed, as ingest
/// removes them.
pub fn one_line(s: &str) -> String {
    collapse_spaces(s)
}

/// Collapses runs of spaces, tabs, no-break and zero-width spaces, and trims;
/// drops control characters.
fn collapse_spaces(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut space = false;
    for c in line.chars() {
        if c.is_whitespace() || matches!(c, '\u{200b}' | '\u{feff}' | '\u{00ad}') {
            space = !out.is_empty();
        } else if !c.is_control() {
            if space {
                out.push(' ');
                space = false;
            }
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_debris_lines() {
        for line in [
            "READ ALSO:",
            "READ MORE: Why the talks stalled",
            "Advertisement",
            "Story continues below advertisement",
            "Share this article",
            "Subscribe to our newsletter",
            "Sign up for the morning briefing",
            "Follow us on Twitter",
            "Photo: Reuters",
            "Image copyright Getty Images",
            "Image caption The president spoke on Monday",
            "(Photo by Jane Doe/Getty Images)",
            "Jane Doe/AFP",
            "By Jane Smith, CNN",
            "Click here for the full story",
            "© 2022 Example News",
        ] {
            assert!(is_debris(line), "should be debris: {line:?}");
        }
        for line in [
            "Russian air raids on Sunday hit a Ukrainian military training ground.",
            "Share prices fell 3% on Monday.",
            "Photographs of the scene showed damage to several buildings.",
            "By Monday, the talks had resumed.",
            "Advertising revenue rose by a tenth.",
        ] {
            assert!(!is_debris(line), "should be prose: {line:?}");
        }
    }

    #[test]
    fn paragraphs_entities_and_whitespace() {
        let p = paragraphs("  First   line &amp; more&nbsp;text.\n\n\nREAD ALSO:\n\nSecond &#8220;quoted&#8221;.\t\n");
        assert_eq!(p, ["First line & more text.", "Second “quoted”."]);
    }

    #[test]
    fn strips_wire_datelines() {
        assert_eq!(
            paragraphs("(CNN)Singer David Crosby hit a jogger.")[0],
            "Singer David Crosby hit a jogger."
        );
        assert_eq!(
            paragraphs("WASHINGTON (CNN) -- The Senate voted.")[0],
            "The Senate voted."
        );
        assert_eq!(
            paragraphs("LONDON, England (Reuters) -- Shares fell.")[0],
            "Shares fell."
        );
        // Only at the start, and only wire names.
        assert_eq!(
            paragraphs("The Senate (CNN) voted.")[0],
            "The Senate (CNN) voted."
        );
    }

    #[test]
    fn inline_credits_removed() {
        assert_eq!(
            paragraphs("Crowds gathered (Photo by J. Doe/Getty Images) in Kyiv.")[0],
            "Crowds gathered in Kyiv."
        );
    }

    #[test]
    fn typed_lines_lose_control_characters() {
        assert_eq!(
            one_line("Esc \u{1b}]0;pwned\u{7} \u{1b}[2J\u{1}\u{8} end\u{0}\u{7f}\u{9b}x\n next"),
            "Esc ]0;pwned [2J endx next"
        );
    }

    #[test]
    fn nothing_left_is_empty() {
        assert!(paragraphs("Advertisement\n\nREAD ALSO:\n\n ... \n").is_empty());
    }
}
