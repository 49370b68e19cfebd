//! Building the day's edition: read, summarize (through the cache),
//! group, rank; and summarizing articles on their own (`digest
//! summarize`). The summary and embedding caches live in the database.

use std::io;

use chrono::NaiveDate;

use super::{Error, Pipeline, Result};
use crate::article::Article;
use crate::config::{Budget, Config, Embedder};
use crate::edition::{self, Edition, EditionOptions};
use crate::embed::{self, Embed, Encoder};
use crate::ingest::{Ingest, Input};
use crate::store::Store;
use crate::summarize::{Cached, Fallback, Summary, SummaryCache};

/// The summary cache lives in the database; `summarize` only knows the trait.
impl SummaryCache for Store {
    fn get(&self, article_hash: &str, settings: &str) -> Result<Option<String>, String> {
        self.cached_summary(article_hash, settings)
            .map_err(|e| e.to_string())
    }

    fn put(&self, article_hash: &str, settings: &str, summary_json: &str) -> Result<(), String> {
        self.cache_summary(article_hash, settings, summary_json, chrono::Utc::now())
            .map_err(|e| e.to_string())
    }
}

/// The embedding cache lives in the database too.
impl crate::embed::EmbeddingCache for Store {
    fn get_many(&self, keys: &[String], settings: &str) -> Result<Vec<Option<Vec<f32>>>, String> {
        self.cached_embeddings(keys, settings)
            .map_err(|e| e.to_string())
    }

    fn put_many(&self, items: &[(String, Vec<f32>)], settings: &str) -> Result<(), String> {
        self.cache_embeddings(items, settings, chrono::Utc::now())
            .map_err(|e| e.to_string())
    }
}

/// An edition as `build` assembled it, with the inputs it had to skip.
#[derive(Debug)]
pub struct Built {
    pub edition: Edition,
    /// Inputs that could not be read or summarized (each warned about).
    pub skipped: usize,
}

/// What `summarize_each` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summarized {
    pub count: usize,
    pub skipped: usize,
}

impl Pipeline {
    /// Reads, summarizes (through the cache) and assembles the edition of
    /// `date` from `inputs` and the articles fetched for that date. Stores
    /// nothing but summaries.
    pub fn build(&self, date: NaiveDate, inputs: Vec<Input>) -> Result<Built> {
        let engine = self.engine()?;
        let summarizer = Cached::new(engine, &self.store);
        let bar = self.watcher.articles();
        // Files and folders, then the articles fetched from feeds for this date.
        let fetched = self.store.articles_for(date).unwrap_or_else(|e| {
            tracing::warn!("{e}");
            Vec::new()
        });
        let items = Ingest::new(inputs).chain(fetched.into_iter().map(Ok));
        let gathered = edition::gather(items, date, &summarizer, self.config.budget(), |a| {
            bar.advance(&a.origin)
        });
        bar.finish();
        if gathered.other_dates > 0 {
            tracing::info!(
                "{} articles dated another day left out of the edition of {date}",
                gathered.other_dates
            );
        }
        if engine.transformer().is_some() {
            report_fallbacks(
                gathered.entries.len(),
                gathered
                    .entries
                    .iter()
                    .filter_map(|e| e.summary.fallback.as_ref()),
            );
        }
        let encoder = self.encoder();
        let cached = encoder.map(|e| embed::Cached::new(e, &self.store));
        let edition = edition::assemble(
            gathered.entries,
            &self.edition_options(date),
            cached.as_ref().map(|c| c as &dyn Embed),
        );
        tracing::info!(
            "edition of {date}: {} stories from {} articles",
            edition.stories.len(),
            edition.article_count
        );
        Ok(Built {
            edition,
            skipped: gathered.skipped,
        })
    }

    fn edition_options(&self, date: NaiveDate) -> EditionOptions {
        EditionOptions {
            date,
            max_stories: self.config.max_stories,
            top_stories: self.config.top_stories,
            source_weights: self.config.weights(),
            merge_threshold: self.config.merge_threshold,
            budget: self.config.budget(),
        }
    }

    /// Summarizes every article of `inputs` (no cache, no edition), in input
    /// order, `batch_size` at a time; `each` gets each article and its
    /// summary (untitled articles get a derived headline when `headlines`). Unreadable inputs and failed summaries are warned about and
    /// counted; an error from `each` (a closed pipe) stops the run.
    pub fn summarize_each(
        &self,
        inputs: Vec<Input>,
        budget: Budget,
        headlines: bool,
        mut each: impl FnMut(&Article, &Summary) -> io::Result<()>,
    ) -> Result<Summarized> {
        let engine = self.engine()?;
        let mut done = Summarized::default();
        let mut fallbacks: Vec<Fallback> = Vec::new();
        let ingest = if headlines {
            Ingest::new(inputs)
        } else {
            Ingest::new(inputs).without_headlines()
        };
        let skipped = std::cell::Cell::new(0);
        let articles = ingest.filter_map(|item| match item {
            Ok(article) => Some(article),
            Err(e) => {
                tracing::warn!("skipped {e}");
                skipped.set(skipped.get() + 1);
                None
            }
        });
        crate::summarize::in_batches(engine, budget, articles, |article, result| -> Result<()> {
            let summary = match result {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("skipped {}: {e}", article.origin);
                    skipped.set(skipped.get() + 1);
                    return Ok(());
                }
            };
            if let Some(why) = &summary.fallback {
                fallbacks.push(why.clone());
            }
            each(&article, &summary).map_err(Error::io("writing summaries"))?;
            done.count += 1;
            Ok(())
        })?;
        done.skipped = skipped.get();
        if engine.transformer().is_some() {
            report_fallbacks(done.count, fallbacks.iter());
        }
        Ok(done)
    }
}

/// Reads, summarizes and assembles the edition of `date` with no database
/// (an in-memory one): the edition and the number of inputs skipped.
pub fn build_edition(
    config: &Config,
    date: NaiveDate,
    inputs: Vec<Input>,
) -> Result<(Edition, usize)> {
    let built = Pipeline::in_memory(config.clone())?.build(date, inputs)?;
    Ok((built.edition, built.skipped))
}

/// Loads the configured sentence encoder (see `Pipeline::encoder`).
pub fn load_encoder(config: &Config) -> Option<Encoder> {
    if config.embedder == Embedder::None {
        return None;
    }
    let dir = match embed::find(&config.models, config.embedder.folder()) {
        Ok(Some(dir)) => dir,
        Ok(None) => {
            tracing::warn!(
                "no sentence encoder in {} (scripts/get-models installs all-MiniLM-L6-v2): \
                 stories are grouped by shared words only",
                config.models.display()
            );
            return None;
        }
        Err(e) => {
            tracing::warn!("{e}: stories are grouped by shared words only");
            return None;
        }
    };
    match Encoder::load(&dir) {
        Ok(e) => {
            let e = e.with_max_tokens(edition::GROUPING_TOKENS);
            tracing::info!("grouping stories by meaning with {}", dir.display());
            Some(e)
        }
        Err(e) => {
            tracing::warn!(
                "sentence encoder not loaded: {e}; stories are grouped by shared words only"
            );
            None
        }
    }
}

/// Says how many of `total` model summaries the guard replaced, and why
/// (`Summary::fallback`).
fn report_fallbacks<'a>(total: usize, reasons: impl Iterator<Item = &'a Fallback>) {
    let mut kinds: std::collections::BTreeMap<&str, usize> = Default::default();
    for why in reasons {
        *kinds.entry(why.kind()).or_default() += 1;
    }
    let replaced: usize = kinds.values().sum();
    if replaced > 0 {
        let detail: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        tracing::warn!(
            "{replaced} of {total} model summaries were degenerate ({}) and replaced by extractive ones",
            detail.join(", ")
        );
    }
}
