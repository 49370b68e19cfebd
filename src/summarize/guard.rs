//! The guard on abstractive summaries: a summary that is empty, loops, or
//! says things its article does not is degenerate, and in `auto` the
//! extractive summary replaces it.
//!
//! The faithfulness test is lexical: the share of the summary's content
//! terms (stemmed, stop words out) that occur in the article. News
//! summarizers copy most of their words (CNN/DailyMail-tuned BART copies
//! well over 90 %), so a summary below the threshold is mostly words the
//! article never used: a hallucination, or a model in the wrong language.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::text::{words, Terms};

/// Why an abstractive summary is not used.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Degenerate {
    /// Fewer than three words.
    Empty,
    /// A phrase or a piece of a word repeated in a loop.
    Repetition(String),
    /// Too few of its content words come from the article.
    Unfaithful { overlap: f32 },
}

impl std::fmt::Display for Degenerate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Degenerate::Empty => f.write_str("empty"),
            Degenerate::Repetition(what) => write!(f, "repetition ({what})"),
            Degenerate::Unfaithful { overlap } => write!(
                f,
                "unfaithful ({:.0}% of its words are from the article)",
                overlap * 100.0
            ),
        }
    }
}

impl Degenerate {
    /// The kind alone, for counts.
    pub fn kind(&self) -> &'static str {
        match self {
            Degenerate::Empty => "empty",
            Degenerate::Repetition(_) => "repetition",
            Degenerate::Unfaithful { .. } => "unfaithful",
        }
    }
}

/// Checks a model's summary of `article_text`. `None`: it can be used.
pub fn check(
    summary: &str,
    article_text: &str,
    min_overlap: f32,
    terms: &Terms,
) -> Option<Degenerate> {
    let lower: Vec<String> = words(summary).map(str::to_lowercase).collect();
    if lower.len() < 3 {
        return Some(Degenerate::Empty);
    }
    if let Some(what) = repetition(&lower) {
        return Some(Degenerate::Repetition(what));
    }
    let summary_terms = terms.terms(summary);
    if summary_terms.is_empty() {
        return Some(Degenerate::Empty);
    }
    let article: FxHashSet<String> = terms.terms(article_text).into_iter().collect();
    let found = summary_terms
        .iter()
        .filter(|t| article.contains(*t))
        .count();
    let overlap = found as f32 / summary_terms.len() as f32;
    (overlap < min_overlap).then_some(Degenerate::Unfaithful { overlap })
}

/// A three-word phrase said three times, or a word that is one piece
/// three times over (`ightightight`).
fn repetition(words: &[String]) -> Option<String> {
    let mut seen: FxHashMap<&[String], usize> = FxHashMap::default();
    for gram in words.windows(3) {
        let n = seen.entry(gram).or_default();
        *n += 1;
        if *n == 3 {
            return Some(format!("\"{}\" 3 times", gram.join(" ")));
        }
    }
    for w in words {
        let chars: Vec<char> = w.chars().collect();
        if chars.len() < 6 || !chars.iter().all(|c| c.is_alphabetic()) {
            continue;
        }
        for period in 1..=chars.len() / 3 {
            if chars.len().is_multiple_of(period)
                && chars.chunks(period).all(|c| c == &chars[..period])
            {
                return Some(format!("\"{w}\""));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARTICLE: &str = "The city council approved a new budget on Monday after a long \
        debate about buses and trams. The mayor said fares would not rise this year.";

    fn verdict(summary: &str) -> Option<Degenerate> {
        check(summary, ARTICLE, 0.6, &Terms::new())
    }

    #[test]
    fn a_faithful_summary_passes() {
        assert_eq!(
            verdict(
                "City council approves new budget after long debate on trams. Fares will not rise."
            ),
            None
        );
    }

    #[test]
    fn empty_and_looping_summaries_are_caught() {
        assert_eq!(verdict(""), Some(Degenerate::Empty));
        assert_eq!(verdict("Council."), Some(Degenerate::Empty));
        assert_eq!(verdict("the of and"), Some(Degenerate::Empty));
        assert!(matches!(
            verdict("The council said the budget. The council said the budget. The council said the budget."),
            Some(Degenerate::Repetition(_))
        ));
        assert!(matches!(
            verdict("budget ightightight council trams"),
            Some(Degenerate::Repetition(_))
        ));
        // Three different phrases repeated twice each are not a loop.
        assert_eq!(
            verdict("Council approves budget. Council approves budget after trams debate."),
            None
        );
    }

    #[test]
    fn words_the_article_never_used_are_caught() {
        let v = verdict("Astronauts discovered frozen water beneath the lunar surface yesterday.");
        assert!(
            matches!(v, Some(Degenerate::Unfaithful { overlap }) if overlap < 0.2),
            "{v:?}"
        );
        // The threshold is the setting: the same summary passes at 0.
        assert_eq!(
            check(
                "Astronauts discovered frozen water.",
                ARTICLE,
                0.0,
                &Terms::new()
            ),
            None
        );
    }
}
