//! One day's flow over one open store: fetch the feeds, build the edition
//! (read, summarize, group, rank; summaries cached, the edition stored), and
//! send it, exactly once per subscriber.
//!
//! A `Pipeline` holds the configuration, the process's one `Store` and,
//! loaded on first use, the summarizer engine and the templates. Every
//! command goes through it: the cli parses arguments, calls a method, and
//! prints what comes back; `serve` answers HTTP requests with it. A new step
//! of the day (grouping by meaning, approval, list hygiene) is a method here
//! and a table in `store`, not a change across layers.

mod bounces;
mod desk;
mod run;
mod send;
mod signup;
mod subscribers;

use std::cell::OnceCell;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use chrono::NaiveDate;

pub use bounces::{BounceReport, Unrecognised};
pub use desk::{document, Change, Edited};
pub use run::{Ran, RunOutcome, RunReport, RunRequest};
pub use send::{DryRun, SendOutcome, SendRequest, Verdict};
pub use signup::{sign_up_line, Confirmation, SignedUp, CONFIRMATION_INTERVAL_MINUTES};
pub use subscribers::{
    check_subscriber, check_topics, csv_cell, BadField, ImportReport, CSV_COLUMNS,
    CSV_RECORD_COLUMNS, MAX_TOPICS_CHARS,
};

use crate::article::Article;
use crate::config::{Budget, Config, ConfigError};
use crate::edition::{self, Edition, EditionOptions};
use crate::embed::{self, Embed, Encoder};
use crate::ingest::feeds::FeedReport;
use crate::ingest::{Ingest, Input};
use crate::lock::LockError;
use crate::mail::send::DeliverError;
use crate::progress::{Silent, Watcher};
use crate::render::{self, Recipient, Renderer, TemplateError};
pub use crate::store::Access;
use crate::store::{Store, StoreError};
use crate::summarize::{Cached, Engine, Fallback, Summary, SummaryCache};

/// A stored edition as the pipeline reads it.
pub type StoredEdition = crate::store::StoredEdition<Edition>;

/// Why a step could not go on. `is_config` tells configuration problems
/// (exit 2) from the rest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Deliver(#[from] DeliverError),
    /// A request that cannot be met: an unknown subscriber, a bad address.
    #[error("{0}")]
    Invalid(String),
    /// A request that is not done without saying so (`--force`): a date
    /// in the future. Exit status 2, as a usage error.
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// A configuration, template or usage problem: nothing was sent, fix
    /// and rerun (exit status 2).
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Error::Config(_) | Error::Template(_) | Error::Usage(_)
        )
    }

    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

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

/// The day's flow over one open store.
pub struct Pipeline {
    config: Config,
    store: Store,
    /// Who makes changes (the edition log): the binary passes the login
    /// name.
    user: String,
    /// The SMTP password, when the binary found one (never in `config`).
    smtp_password: Option<String>,
    /// Who watches long work (the binary's progress bars).
    watcher: Box<dyn Watcher>,
    engine: OnceCell<Engine>,
    encoder: OnceCell<Option<Encoder>>,
    renderer: OnceCell<Renderer>,
}

impl Pipeline {
    /// The pipeline over the configured database (created if missing).
    pub fn open(config: Config) -> Result<Pipeline> {
        Pipeline::open_with(config, Access::Create)
    }

    /// The pipeline over the configured database, opened as `access`
    /// allows (commands that only read or update never create one).
    pub fn open_with(config: Config, access: Access) -> Result<Pipeline> {
        if access != Access::Create && !config.db.is_file() {
            let here = std::env::current_dir().unwrap_or_default();
            return Err(Error::Invalid(format!(
                "no database file here: {} (in {}); `digest subscribers add`, `subscribers import` or `fetch` create one, or pass --db / set `db`",
                config.db.display(),
                here.display()
            )));
        }
        let store = Store::open_with(&config.db, access)?;
        Ok(Pipeline::with_store(config, store))
    }

    /// The pipeline over a throwaway in-memory database: for looking at a
    /// day (preview, summarize) where there is no database to read.
    pub fn in_memory(config: Config) -> Result<Pipeline> {
        Ok(Pipeline::with_store(config, Store::in_memory()?))
    }

    pub fn with_store(config: Config, store: Store) -> Pipeline {
        Pipeline {
            config,
            store,
            user: "unknown".into(),
            smtp_password: None,
            watcher: Box::new(Silent),
            engine: OnceCell::new(),
            encoder: OnceCell::new(),
            renderer: OnceCell::new(),
        }
    }

    /// Who is making changes, for the edition log.
    pub fn with_user(mut self, user: impl Into<String>) -> Pipeline {
        self.user = user.into();
        self
    }

    /// The SMTP password (from the environment or `smtp_password_file`,
    /// as the binary found it).
    pub fn with_smtp_password(mut self, password: Option<String>) -> Pipeline {
        self.smtp_password = password;
        self
    }

    /// Who watches long work.
    pub fn with_watcher(mut self, watcher: Box<dyn Watcher>) -> Pipeline {
        self.watcher = watcher;
        self
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The configured summarizer, loaded once; a `summarizer = transformer`
    /// that cannot load is a configuration error (exit 2).
    pub fn engine(&self) -> Result<&Engine> {
        if let Some(engine) = self.engine.get() {
            return Ok(engine);
        }
        let engine = Engine::new(&self.config).map_err(|message| ConfigError::Invalid {
            key: "summarizer",
            message,
        })?;
        Ok(self.engine.get_or_init(|| engine))
    }

    /// The sentence encoder that groups stories by meaning, loaded once:
    /// `None` (after one warning) when `embedder = "none"`, when there is
    /// none under `models`, or when it fails to load; grouping then goes
    /// by words.
    pub fn encoder(&self) -> Option<&Encoder> {
        self.encoder
            .get_or_init(|| load_encoder(&self.config))
            .as_ref()
    }

    /// The templates, loaded and checked once: the first thing `preview`,
    /// `send` and `serve` do, so a broken template fails before any work.
    pub fn renderer(&self) -> Result<&Renderer> {
        if let Some(renderer) = self.renderer.get() {
            return Ok(renderer);
        }
        let renderer = Renderer::load(Some(&self.config.templates), &self.config.title)?;
        renderer.check()?;
        Ok(self.renderer.get_or_init(|| renderer))
    }

    /// Today in the configured time zone.
    pub fn today(&self) -> NaiveDate {
        chrono::Utc::now()
            .with_timezone(&self.config.tz())
            .date_naive()
    }

    /// The inputs named on the command line, or the configured ones.
    pub fn inputs(&self, args: &[String]) -> Vec<Input> {
        if args.is_empty() {
            self.config
                .inputs
                .iter()
                .map(|p| Input::Path(p.clone()))
                .collect()
        } else {
            args.iter().map(|p| Input::parse(p)).collect()
        }
    }

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

    /// The edition stored for `date`, if any.
    pub fn stored_edition(&self, date: NaiveDate) -> Result<Option<StoredEdition>> {
        Ok(self.store.edition(date)?)
    }

    /// The stand-in reader of a preview.
    pub fn preview_recipient(&self) -> Recipient {
        Recipient::preview(&self.config.base_url)
    }

    /// One subscriber's copy of an edition (their topics first, or only)
    /// and who it is addressed to.
    pub fn copy_for(&self, edition: &Edition, email: &str) -> Result<(Edition, Recipient)> {
        let email = crate::mail::validate_address(email).map_err(Error::Invalid)?;
        let sub = self
            .store
            .subscriber_by_email(&email)?
            .ok_or_else(|| Error::Invalid(format!("no subscriber {email}")))?;
        let copy = edition::personalize(edition, &sub.topics, sub.topics_only);
        let settings = send::message_settings(&self.config)?;
        let recipient = Recipient {
            name: sub.name.clone(),
            email: sub.email.clone(),
            unsubscribe_url: settings.unsubscribe_url(&sub),
        };
        Ok((copy, recipient))
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

    /// Downloads every configured feed and stores the new articles.
    pub fn fetch(&self) -> Result<Vec<FeedReport>> {
        run::fetch_feeds(&self.config, &self.store)
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
    let wanted = match config.embedder.as_str() {
        "none" => return None,
        "auto" => None,
        name => Some(name),
    };
    let dir = match embed::find(&config.models, wanted) {
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

/// The commented configuration `digest init` writes.
pub const EXAMPLE_CONFIG: &str = include_str!("../digest.example.toml");

/// Writes a commented `digest.toml` and the built-in templates under `dir`,
/// never overwriting a file. Returns the files written.
pub fn init(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<(PathBuf, &str)> =
        vec![(dir.join(crate::config::DEFAULT_CONFIG_FILE), EXAMPLE_CONFIG)];
    for (name, text) in render::BUILT_IN {
        files.push((dir.join("templates").join(name), text));
    }
    let existing: Vec<String> = files
        .iter()
        .filter(|(p, _)| p.exists())
        .map(|(p, _)| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(Error::Invalid(format!(
            "refusing to overwrite existing files: {}",
            existing.join(", ")
        )));
    }
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates)
        .map_err(Error::io(format!("creating {}", templates.display())))?;
    let mut written = Vec::new();
    for (path, text) in files {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(Error::io(format!("creating {}", path.display())))?;
        f.write_all(text.as_bytes())
            .map_err(Error::io(format!("writing {}", path.display())))?;
        written.push(path);
    }
    Ok(written)
}
