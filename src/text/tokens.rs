//! Words, stop words and stems.
//!
//! Words are runs of letters and digits (an apostrophe or hyphen inside a
//! word is kept together: `it’s`, `well-known`), compared lowercase. Stems come
//! from the Snowball English stemmer (`rust-stemmers`), the same family as
//! the Porter stemmer that ROUGE uses.

use std::cell::RefCell;
use std::sync::LazyLock;

use rustc_hash::{FxHashMap, FxHashSet};

use rust_stemmers::{Algorithm, Stemmer};

/// English stop words: function words that carry no topic.
const STOP_WORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "after",
    "again",
    "against",
    "all",
    "also",
    "am",
    "an",
    "and",
    "any",
    "are",
    "aren't",
    "as",
    "at",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "between",
    "both",
    "but",
    "by",
    "can",
    "cannot",
    "could",
    "couldn't",
    "did",
    "didn't",
    "do",
    "does",
    "doesn't",
    "doing",
    "don't",
    "down",
    "during",
    "each",
    "even",
    "ever",
    "few",
    "for",
    "from",
    "further",
    "had",
    "hadn't",
    "has",
    "hasn't",
    "have",
    "haven't",
    "having",
    "he",
    "he'd",
    "he'll",
    "he's",
    "her",
    "here",
    "here's",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "how's",
    "however",
    "i",
    "i'd",
    "i'll",
    "i'm",
    "i've",
    "if",
    "in",
    "into",
    "is",
    "isn't",
    "it",
    "it's",
    "its",
    "itself",
    "just",
    "let's",
    "like",
    "made",
    "make",
    "many",
    "may",
    "me",
    "might",
    "more",
    "most",
    "mr",
    "mrs",
    "ms",
    "much",
    "must",
    "mustn't",
    "my",
    "myself",
    "no",
    "nor",
    "not",
    "now",
    "of",
    "off",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "ought",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "really",
    "s",
    "said",
    "same",
    "say",
    "says",
    "shan't",
    "she",
    "she'd",
    "she'll",
    "she's",
    "should",
    "shouldn't",
    "since",
    "so",
    "some",
    "still",
    "such",
    "t",
    "than",
    "that",
    "that's",
    "the",
    "their",
    "theirs",
    "them",
    "themselves",
    "then",
    "there",
    "there's",
    "these",
    "they",
    "they'd",
    "they'll",
    "they're",
    "they've",
    "this",
    "those",
    "though",
    "through",
    "to",
    "told",
    "too",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "very",
    "was",
    "wasn't",
    "we",
    "we'd",
    "we'll",
    "we're",
    "we've",
    "well",
    "were",
    "weren't",
    "what",
    "what's",
    "when",
    "when's",
    "where",
    "where's",
    "whether",
    "which",
    "while",
    "who",
    "who's",
    "whom",
    "why",
    "why's",
    "will",
    "with",
    "within",
    "without",
    "won't",
    "would",
    "wouldn't",
    "yet",
    "you",
    "you'd",
    "you'll",
    "you're",
    "you've",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

/// Whether `word` (lowercase) is an English stop word.
pub fn is_stop_word(word: &str) -> bool {
    static SET: LazyLock<FxHashSet<&'static str>> =
        LazyLock::new(|| STOP_WORDS.iter().copied().collect());
    SET.contains(word)
}

/// The words of `text`, in order, as they appear (not lowercased).
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    let bytes_len = text.len();
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        // Skip to the start of a word.
        let start = loop {
            let (i, c) = chars.next()?;
            if c.is_alphanumeric() {
                break i;
            }
        };
        let mut end = bytes_len;
        while let Some(&(i, c)) = chars.peek() {
            if c.is_alphanumeric() {
                chars.next();
                continue;
            }
            if matches!(c, '\'' | '’' | '-') {
                // Keep it only between two word characters.
                let mut ahead = chars.clone();
                ahead.next();
                if ahead.peek().is_some_and(|&(_, d)| d.is_alphanumeric()) {
                    chars.next();
                    continue;
                }
            }
            end = i;
            break;
        }
        Some(&text[start..end])
    })
}

/// Words as `split_whitespace` counts them: the unit of the word budget, the
/// same count the evaluation harness uses.
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

/// Turns text into content terms: lowercase, stop words removed, stemmed.
///
/// Stems are cached: news reuses its words, and stemming is the costliest
/// step of summarizing (a quarter of the time before the cache).
pub struct Terms {
    stemmer: Stemmer,
    cache: RefCell<FxHashMap<String, Box<str>>>,
}

/// The stem cache is cleared when it reaches this many words.
const STEM_CACHE_WORDS: usize = 200_000;

impl Default for Terms {
    fn default() -> Self {
        Self::new()
    }
}

impl Terms {
    pub fn new() -> Self {
        Self {
            stemmer: Stemmer::create(Algorithm::English),
            cache: RefCell::new(FxHashMap::default()),
        }
    }

    /// Stems one lowercase word.
    pub fn stem<'a>(&self, word: &'a str) -> std::borrow::Cow<'a, str> {
        self.stemmer.stem(word)
    }

    /// Calls `f` with each content term of `text`.
    pub fn for_each(&self, text: &str, mut f: impl FnMut(&str)) {
        let mut lower = String::new();
        for w in words(text) {
            lower.clear();
            for c in w.chars() {
                // Curly apostrophes are the same word as straight ones.
                lower.extend(if c == '’' { '\'' } else { c }.to_lowercase());
            }
            if is_stop_word(&lower)
                || lower.chars().count() < 2 && !lower.chars().all(|c| c.is_ascii_digit())
            {
                continue;
            }
            let term = lower.strip_suffix("'s").unwrap_or(&lower);
            let mut cache = self.cache.borrow_mut();
            if let Some(stem) = cache.get(term) {
                f(stem);
                continue;
            }
            if cache.len() >= STEM_CACHE_WORDS {
                cache.clear();
            }
            let stem: Box<str> = self.stemmer.stem(term).into();
            f(&stem);
            cache.insert(term.to_owned(), stem);
        }
    }

    /// The content terms of `text`.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each(text, |t| out.push(t.to_owned()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        let mut sorted = STOP_WORDS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, STOP_WORDS);
        assert!(is_stop_word("the") && is_stop_word("it's") && !is_stop_word("talks"));
    }

    #[test]
    fn words_keep_inner_apostrophes_and_hyphens() {
        let w: Vec<_> =
            words("It’s a well-known state-run TV -- 'quoted' $10.9bn, 3.5%.").collect();
        assert_eq!(
            w,
            [
                "It’s",
                "a",
                "well-known",
                "state-run",
                "TV",
                "quoted",
                "10",
                "9bn",
                "3",
                "5"
            ]
        );
    }

    #[test]
    fn terms_are_stemmed_content_words() {
        let t = Terms::new();
        assert_eq!(
            t.terms("The negotiators were negotiating Russia's talks"),
            ["negoti", "negoti", "russia", "talk"]
        );
    }

    #[test]
    fn word_count_matches_whitespace_split() {
        assert_eq!(word_count("  one two\nthree — four "), 5);
    }
}
