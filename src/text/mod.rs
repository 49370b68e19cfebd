//! Text handling shared by every stage: page debris and paragraphs
//! (`clean.rs`), sentences, words, stop words, stems, and sparse TF-IDF
//! vectors (`sparse.rs`).

pub mod clean;
pub mod headline;
pub mod sentences;
pub mod sparse;
pub mod tokens;

pub use sentences::{
    is_bare_quotation, quotes_balanced, split as split_sentences, split_spans as sentence_spans,
};
pub use tokens::{is_stop_word, word_count, words, Terms};

/// `text` cut to at most `max` characters at a word boundary, with an
/// ellipsis when anything was cut (a word longer than the whole limit is
/// cut inside). Text that fits is returned as it is.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let limit = max.saturating_sub(1);
    let cut: String = text.chars().take(limit + 1).collect();
    let kept = match cut.rfind(char::is_whitespace) {
        Some(space) if space > 0 => &cut[..space],
        _ => {
            let end = cut.char_indices().nth(limit).map_or(cut.len(), |(i, _)| i);
            &cut[..end]
        }
    };
    let kept = kept.trim_end_matches(|c: char| {
        c.is_whitespace() || matches!(c, ',' | ';' | ':' | '-' | '–' | '—' | '(' | '[')
    });
    format!("{kept}…")
}

#[cfg(test)]
mod tests {
    #[test]
    fn shorten_cuts_at_a_word_and_marks_the_cut() {
        assert_eq!(super::shorten("short", 10), "short");
        assert_eq!(super::shorten("one two three four", 12), "one two…");
        assert_eq!(super::shorten("abcdefghijkl", 5), "abcd…");
        let long = "word ".repeat(1000);
        let cut = super::shorten(&long, 100);
        assert!(
            cut.chars().count() <= 100 && cut.ends_with("word…"),
            "{cut}"
        );
    }
}
