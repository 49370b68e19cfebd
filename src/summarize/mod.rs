//! Summaries: the `Summarizer` trait every summarizer implements, the
//! budget it works under, and what it returns.
//!
//! The extractive summarizer (`extractive.rs`) is always there; a
//! transformer summarizer implements the same trait when a model is
//! installed.

pub mod extractive;
pub mod transformer;

use serde::{Deserialize, Serialize};

use crate::article::Article;

pub use extractive::Extractive;

/// How long a summary may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Budget {
    /// At most this many sentences (at least 1).
    pub sentences: usize,
    /// At most about this many words; 0 means no word limit. A single
    /// sentence longer than the limit is still taken when nothing shorter is
    /// worth taking, so that no article goes without a summary.
    pub words: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget {
            sentences: 3,
            words: 75,
        }
    }
}

/// One sentence of a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummarySentence {
    pub text: String,
    /// Index of the sentence in the article (0-based, over all paragraphs).
    pub index: usize,
    /// The summarizer's score for it (higher is more important).
    pub score: f32,
}

/// A summary: sentences in article order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub sentences: Vec<SummarySentence>,
}

impl Summary {
    /// The summary as text, one sentence per line.
    pub fn lines(&self) -> String {
        self.sentences
            .iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn word_count(&self) -> usize {
        self.sentences
            .iter()
            .map(|s| crate::text::word_count(&s.text))
            .sum()
    }
}

/// Why a summarizer could not summarize an article.
#[derive(Debug, thiserror::Error)]
pub enum SummarizeError {
    #[error("the article has no sentences")]
    NoSentences,
    #[error("{0}")]
    Model(String),
}

/// Something that turns an article into a summary.
pub trait Summarizer {
    /// A short name for logs and caches (`extractive`, a model name).
    fn name(&self) -> &str;

    /// Summarizes one article within the budget.
    fn summarize(&self, article: &Article, budget: Budget) -> Result<Summary, SummarizeError>;
}

/// A summarizer whose summaries are cached in the database, keyed by the
/// article's content and the summarizer's settings: re-running a day costs
/// nothing, and a send summarizes each article once.
pub struct Cached<'a, S: Summarizer> {
    inner: &'a S,
    store: &'a crate::store::Store,
    settings: String,
}

impl<'a> Cached<'a, Extractive> {
    pub fn new(inner: &'a Extractive, store: &'a crate::store::Store, budget: Budget) -> Self {
        let settings = format!(
            "{}:{}:{}",
            inner.name(),
            serde_json::to_string(inner.params()).expect("params serialize"),
            serde_json::to_string(&budget).expect("budget serializes")
        );
        Cached {
            inner,
            store,
            settings,
        }
    }
}

impl<S: Summarizer> Summarizer for Cached<'_, S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn summarize(&self, article: &Article, budget: Budget) -> Result<Summary, SummarizeError> {
        let key = crate::article::short_hash(&[&article.id, &article.title, &article.text()]);
        let settings = format!(
            "{}:{}",
            self.settings,
            serde_json::to_string(&budget).expect("budget serializes")
        );
        match self.store.cached_summary(&key, &settings) {
            Ok(Some(json)) => {
                if let Ok(summary) = serde_json::from_str(&json) {
                    return Ok(summary);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("summary cache: {e}"),
        }
        let summary = self.inner.summarize(article, budget)?;
        let json = serde_json::to_string(&summary).expect("summaries serialize");
        if let Err(e) = self
            .store
            .cache_summary(&key, &settings, &json, chrono::Utc::now())
        {
            tracing::warn!("summary cache: {e}");
        }
        Ok(summary)
    }
}
