//! Summaries: the `Summarizer` trait every summarizer implements, the
//! budget it works under, and what it returns.
//!
//! The extractive summarizer (`extractive.rs`) is always there; a
//! transformer summarizer implements the same trait when a model is
//! installed.

pub mod extractive;
pub mod guard;
pub mod transformer;

use serde::{Deserialize, Serialize};

use crate::article::Article;

pub use crate::config::{Budget, Choice};
pub use extractive::Extractive;

/// One sentence of a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummarySentence {
    pub text: String,
    /// Index of the sentence in the article (0-based, over all paragraphs).
    pub index: usize,
    /// The summarizer's score for it (higher is more important).
    pub score: f32,
}

/// A summary: sentences in article order (extractive) or in the model's
/// order (abstractive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub sentences: Vec<SummarySentence>,
    /// Set when this extractive summary stands in for the transformer's:
    /// why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// Written by a model (not sentences of the article).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub abstractive: bool,
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

    /// Everything its summaries depend on besides the article and the
    /// budget, as a string: the summary cache's key.
    fn settings(&self) -> String;

    /// Summarizes one article within the budget.
    fn summarize(&self, article: &Article, budget: Budget) -> Result<Summary, SummarizeError>;

    /// Summarizes several articles, in order. A transformer runs them
    /// through the model together, which is faster than one by one.
    fn summarize_batch(
        &self,
        articles: &[&Article],
        budget: Budget,
    ) -> Vec<Result<Summary, SummarizeError>> {
        articles.iter().map(|a| self.summarize(a, budget)).collect()
    }

    /// How many articles `summarize_batch` is best given at once.
    fn batch_size(&self) -> usize {
        1
    }
}

/// Why the extractive summary stands in for the model's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// The model failed on the article: such a summary is not cached, so
    /// the next run tries the model again.
    ModelError(String),
    /// The model wrote something degenerate (the guard's verdict).
    Degenerate(guard::Degenerate),
}

impl Fallback {
    /// One word or two for counting the kinds together.
    pub fn kind(&self) -> &'static str {
        match self {
            Fallback::ModelError(_) => "model error",
            Fallback::Degenerate(d) => d.kind(),
        }
    }
}

impl std::fmt::Display for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fallback::ModelError(e) => write!(f, "model error: {e}"),
            Fallback::Degenerate(d) => d.fmt(f),
        }
    }
}

/// Summarizes `articles` in order, `batch_size` at a time (a transformer
/// summarizes a batch in one pass): `each` gets every article with its
/// summary or the error. An error from `each` stops the work.
pub fn in_batches<S: Summarizer + ?Sized, E>(
    summarizer: &S,
    budget: Budget,
    articles: impl IntoIterator<Item = Article>,
    mut each: impl FnMut(Article, Result<Summary, SummarizeError>) -> Result<(), E>,
) -> Result<(), E> {
    let size = summarizer.batch_size().max(1);
    let mut batch: Vec<Article> = Vec::with_capacity(size);
    let mut flush = |batch: &mut Vec<Article>| -> Result<(), E> {
        if batch.is_empty() {
            return Ok(());
        }
        let refs: Vec<&Article> = batch.iter().collect();
        let results = summarizer.summarize_batch(&refs, budget);
        for (article, result) in batch.drain(..).zip(results) {
            each(article, result)?;
        }
        Ok(())
    };
    for article in articles {
        batch.push(article);
        if batch.len() >= size {
            flush(&mut batch)?;
        }
    }
    flush(&mut batch)
}

/// `summarize` for a summarizer whose work is done in `summarize_batch`.
pub fn by_batch<S: Summarizer + ?Sized>(
    s: &S,
    article: &Article,
    budget: Budget,
) -> Result<Summary, SummarizeError> {
    s.summarize_batch(&[article], budget)
        .pop()
        .expect("one result per article")
}

/// Where `Cached` keeps summaries: JSON by article hash and summarizer
/// settings. The database implements it (in `pipeline`), so summarizing
/// never depends on storage. Errors are messages: a cache that fails is
/// warned about and bypassed, never fatal.
pub trait SummaryCache {
    fn get(&self, article_hash: &str, settings: &str) -> Result<Option<String>, String>;
    fn put(&self, article_hash: &str, settings: &str, summary_json: &str) -> Result<(), String>;
}

/// A summarizer whose summaries are cached (in the database), keyed by the
/// article's content, the summarizer's settings (for a transformer: the
/// checkpoint's name and fingerprint) and the budget: re-running a day costs
/// nothing, and a send summarizes each article once.
pub struct Cached<'a, S: Summarizer + ?Sized> {
    inner: &'a S,
    cache: &'a dyn SummaryCache,
    settings: String,
}

impl<'a, S: Summarizer + ?Sized> Cached<'a, S> {
    pub fn new(inner: &'a S, cache: &'a dyn SummaryCache) -> Self {
        Cached {
            settings: inner.settings(),
            inner,
            cache,
        }
    }
}

impl<S: Summarizer + ?Sized> Cached<'_, S> {
    fn key(&self, article: &Article, budget: Budget) -> (String, String) {
        let key = crate::article::short_hash(&[&article.id, &article.title, &article.text()]);
        let settings = format!(
            "{}:{}",
            self.settings,
            serde_json::to_string(&budget).expect("budget serializes")
        );
        (key, settings)
    }

    fn lookup(&self, key: &str, settings: &str) -> Option<Summary> {
        match self.cache.get(key, settings) {
            Ok(Some(json)) => serde_json::from_str(&json).ok(),
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("summary cache: {e}");
                None
            }
        }
    }

    fn keep(&self, key: &str, settings: &str, summary: &Summary) {
        let json = serde_json::to_string(summary).expect("summaries serialize");
        if let Err(e) = self.cache.put(key, settings, &json) {
            tracing::warn!("summary cache: {e}");
        }
    }
}

impl<S: Summarizer + ?Sized> Summarizer for Cached<'_, S> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn settings(&self) -> String {
        self.settings.clone()
    }

    fn batch_size(&self) -> usize {
        self.inner.batch_size()
    }

    fn summarize(&self, article: &Article, budget: Budget) -> Result<Summary, SummarizeError> {
        by_batch(self, article, budget)
    }

    /// Looks every article up, and summarizes the ones not cached together.
    fn summarize_batch(
        &self,
        articles: &[&Article],
        budget: Budget,
    ) -> Vec<Result<Summary, SummarizeError>> {
        let keys: Vec<(String, String)> = articles.iter().map(|a| self.key(a, budget)).collect();
        let mut results: Vec<Option<Result<Summary, SummarizeError>>> = keys
            .iter()
            .map(|(k, s)| self.lookup(k, s).map(Ok))
            .collect();
        let missing: Vec<usize> = (0..articles.len())
            .filter(|&i| results[i].is_none())
            .collect();
        if !missing.is_empty() {
            let todo: Vec<&Article> = missing.iter().map(|&i| articles[i]).collect();
            for (i, result) in missing
                .into_iter()
                .zip(self.inner.summarize_batch(&todo, budget))
            {
                // A model that failed is tried again next time.
                let failed = |s: &Summary| matches!(s.fallback, Some(Fallback::ModelError(_)));
                if let Some(summary) = result.as_ref().ok().filter(|s| !failed(s)) {
                    self.keep(&keys[i].0, &keys[i].1, summary);
                }
                results[i] = Some(result);
            }
        }
        results
            .into_iter()
            .map(|r| r.expect("every article has a result"))
            .collect()
    }
}

/// The summarizer a run uses, chosen from the configuration: the
/// transformer with its guard and extractive fallback, or the extractive
/// summarizer alone.
pub struct Engine {
    extractive: Extractive,
    transformer: Option<transformer::Transformer>,
    /// `Some(min_overlap)`: replace degenerate model summaries (`auto`).
    guard: Option<f32>,
    /// Articles per pass through the model.
    batch_size: usize,
    terms: crate::text::Terms,
}

impl Engine {
    /// Chooses and loads the summarizer, and says on stderr which one runs
    /// and why. Errors only with `--summarizer transformer` when no
    /// checkpoint loads; in `auto` a checkpoint that fails to load is one
    /// warning naming the file, and the extractive summarizer runs.
    pub fn new(config: &crate::config::Config) -> Result<Engine, String> {
        let extractive = Extractive::new(config.extractive.clone());
        let mut engine = Engine {
            extractive,
            transformer: None,
            guard: None,
            batch_size: config.transformer.batch_size.max(1),
            terms: crate::text::Terms::new(),
        };
        let models = &config.models;
        let wanted = config.transformer.model.as_deref();
        match config.summarizer {
            Choice::Extractive => {
                tracing::info!("summarizing with the extractive summarizer (summarizer = extractive)");
            }
            Choice::Transformer => {
                let dir = transformer::find(models, wanted)?.ok_or_else(|| {
                    format!(
                        "summarizer = transformer, but {} holds no checkpoint (a folder with config.json)",
                        models.display()
                    )
                })?;
                let t = load(&dir)?;
                engine.transformer = Some(t);
            }
            Choice::Auto => match transformer::find(models, wanted) {
                Ok(None) => tracing::info!(
                    "no transformer checkpoint in {}: summarizing with the extractive summarizer",
                    models.display()
                ),
                Ok(Some(dir)) => match load(&dir) {
                    Ok(t) => {
                        engine.transformer = Some(t);
                        engine.guard = Some(config.transformer.min_overlap);
                    }
                    Err(e) => tracing::warn!(
                        "cannot load the transformer checkpoint: {e}; summarizing with the extractive summarizer"
                    ),
                },
                Err(e) => tracing::warn!("{e}; summarizing with the extractive summarizer"),
            },
        }
        Ok(engine)
    }

    /// The extractive summarizer alone.
    pub fn extractive(params: extractive::Params) -> Engine {
        Engine {
            extractive: Extractive::new(params),
            transformer: None,
            guard: None,
            batch_size: 1,
            terms: crate::text::Terms::new(),
        }
    }

    /// The transformer, when one runs.
    pub fn transformer(&self) -> Option<&transformer::Transformer> {
        self.transformer.as_ref()
    }
}

/// Loads a checkpoint and says so on stderr.
fn load(dir: &std::path::Path) -> Result<transformer::Transformer, String> {
    let started = std::time::Instant::now();
    let device = transformer::device();
    let t = transformer::Transformer::load(dir, &device)?;
    let c = t.checkpoint();
    tracing::info!(
        "summarizing with the transformer {} ({}, {}, beam {}, {}; loaded in {:.1} s)",
        c.name,
        c.class.as_deref().unwrap_or(c.arch.as_str()),
        c.parameters()
            .map(format_parameters)
            .unwrap_or_else(|_| "? parameters".into()),
        c.generation.num_beams,
        transformer::describe_device(&device),
        started.elapsed().as_secs_f64()
    );
    Ok(t)
}

/// `1.2M parameters`, `306M parameters`.
pub fn format_parameters(n: usize) -> String {
    match n {
        n if n >= 1_000_000_000 => format!("{:.1}B parameters", n as f64 / 1e9),
        n if n >= 10_000_000 => format!("{:.0}M parameters", n as f64 / 1e6),
        n if n >= 1_000_000 => format!("{:.1}M parameters", n as f64 / 1e6),
        n => format!("{:.0}K parameters", n as f64 / 1e3),
    }
}

impl Summarizer for Engine {
    fn name(&self) -> &str {
        match &self.transformer {
            Some(t) => t.name(),
            None => self.extractive.name(),
        }
    }

    fn settings(&self) -> String {
        match (&self.transformer, self.guard) {
            (Some(t), Some(min)) => format!(
                "{}:guard {min}:{}",
                t.settings(),
                self.extractive.settings()
            ),
            (Some(t), None) => t.settings(),
            (None, _) => self.extractive.settings(),
        }
    }

    fn batch_size(&self) -> usize {
        match &self.transformer {
            Some(_) => self.batch_size,
            None => 1,
        }
    }

    fn summarize(&self, article: &Article, budget: Budget) -> Result<Summary, SummarizeError> {
        by_batch(self, article, budget)
    }

    fn summarize_batch(
        &self,
        articles: &[&Article],
        budget: Budget,
    ) -> Vec<Result<Summary, SummarizeError>> {
        let Some(t) = &self.transformer else {
            return articles
                .iter()
                .map(|a| self.extractive.summarize(a, budget))
                .collect();
        };
        let results = t.summarize_batch(articles, budget);
        let Some(min_overlap) = self.guard else {
            return results;
        };
        articles
            .iter()
            .zip(results)
            .map(|(article, result)| self.guarded(article, budget, result, min_overlap))
            .collect()
    }
}

impl Engine {
    /// A model summary that passes the guard, or the extractive summary
    /// with the reason in `fallback`.
    fn guarded(
        &self,
        article: &Article,
        budget: Budget,
        result: Result<Summary, SummarizeError>,
        min_overlap: f32,
    ) -> Result<Summary, SummarizeError> {
        let why = match result {
            Ok(summary) => {
                let text = summary.lines();
                match guard::check(&text, &article.text(), min_overlap, &self.terms) {
                    None => return Ok(summary),
                    Some(why) => Fallback::Degenerate(why),
                }
            }
            Err(e) => Fallback::ModelError(e.to_string()),
        };
        tracing::debug!(
            "{}: model summary {why}; extractive summary instead",
            article.origin
        );
        let mut summary = self.extractive.summarize(article, budget)?;
        summary.fallback = Some(why);
        Ok(summary)
    }
}
