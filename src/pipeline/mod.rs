//! One day's flow over one open store: fetch the feeds, build the edition
//! (read, summarize, group, rank; summaries cached, the edition stored), and
//! send it, exactly once per subscriber.
//!
//! A `Pipeline` holds the configuration, the process's one `Store` and,
//! loaded on first use, the summarizer engine and the templates. Every
//! command goes through it: the cli parses arguments, calls a method, and
//! prints what comes back; `serve` answers HTTP requests with it.
//!
//! One file per step of the day, each adding its methods to `Pipeline`:
//! `fetch.rs` (feeds), `build.rs` (read, summarize, group, rank), `desk.rs`
//! (the editor's verbs and approval), `send.rs` (the delivery), `run.rs`
//! (the cron job: all of them under the run lock), and beside them the
//! list's own work: `subscribers.rs`, `signup.rs` (double opt-in),
//! `bounces.rs`, `init.rs`. A new step is a file here and a table in
//! `store`, not a change across layers.

mod bounces;
mod build;
mod database;
mod desk;
mod fetch;
mod init;
mod readers;
mod run;
mod send;
mod signup;
mod subscribers;

use std::cell::OnceCell;
use std::io;

use chrono::NaiveDate;

pub use bounces::{BounceReport, Unrecognised};
pub use build::{build_edition, load_encoder, Built, Summarized};
pub use database::copy_database;
pub use desk::{document, Change, Edited};
pub use init::{init, EXAMPLE_CONFIG};
pub use readers::{
    ArchiveEntry, ArchivePage, Feed, PreferencesView, Welcome, ARCHIVE_PAGE, FEED_ENTRIES,
    MAX_PAUSE_DAYS,
};
pub use run::{Ran, RunOutcome, RunReport, RunRequest};
pub use send::{DryRun, SendOutcome, SendRequest, Verdict};
pub use signup::{sign_up_line, Confirmation, SignedUp, CONFIRMATION_INTERVAL_MINUTES};
pub use subscribers::{
    check_subscriber, check_topics, csv_cell, BadField, ImportReport, CSV_COLUMNS,
    CSV_RECORD_COLUMNS, MAX_TOPICS_CHARS,
};

use crate::config::{Config, ConfigError, Database};
use crate::edition::{self, Edition};
use crate::embed::Encoder;
use crate::ingest::Input;
use crate::lock::LockError;
use crate::mail::send::DeliverError;
use crate::progress::{Silent, Watcher};
use crate::render::{Recipient, Renderer, TemplateError};
pub use crate::store::Access;
use crate::store::{Store, StoreError};
use crate::summarize::Engine;

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
    /// The database cannot be opened: a server that cannot be reached, a
    /// refused login, another schema version. Exit status 2.
    #[error(transparent)]
    Open(StoreError),
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
            Error::Config(_) | Error::Template(_) | Error::Usage(_) | Error::Open(_)
        )
    }

    fn io(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
        let context = context.into();
        move |source| Error::Io { context, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The day's flow over one open store.
pub struct Pipeline {
    config: Config,
    store: Store,
    /// Who makes changes (the edition log): the binary passes the login
    /// name.
    user: String,
    /// The SMTP password, when the binary found one (never in `config`).
    smtp_password: Option<String>,
    /// PostgreSQL's password as the binary found it (for another
    /// connection to the same database).
    db_password: Option<String>,
    /// Who watches long work (the binary's progress bars).
    watcher: Box<dyn Watcher>,
    engine: OnceCell<Engine>,
    encoder: OnceCell<Option<Encoder>>,
    renderer: OnceCell<Renderer>,
}

/// Opens `db` as `access` allows: a SQLite file (one that must exist
/// unless `access` creates it), or a PostgreSQL server with the password
/// given (DIGEST_DB_PASSWORD) or read from `db_password_file`. A server
/// that cannot be reached, refuses the login or holds another schema
/// version is a configuration error: nothing is done.
pub(crate) fn open_store(
    config: &Config,
    db: &Database,
    access: Access,
    db_password: Option<String>,
) -> Result<Store> {
    Ok(match db {
        Database::File(path) => {
            if access != Access::Create && !path.is_file() {
                let here = std::env::current_dir().unwrap_or_default();
                return Err(Error::Invalid(format!(
                    "no database file here: {} (in {}); `digest subscribers add`, `subscribers import` or `fetch` create one, or pass --db / set `db`",
                    path.display(),
                    here.display()
                )));
            }
            Store::open_with(path, access)?
        }
        Database::Postgres(url) => {
            if db.has_password_in_url() {
                tracing::warn!("the database password is in db; put it in DIGEST_DB_PASSWORD or db_password_file instead");
            }
            let password = match db_password {
                Some(p) => Some(p),
                None => send::secret_file("db_password_file", config.db_password_file.as_deref())?,
            };
            let ca_pem = match &config.db_ca_file {
                Some(path) => Some(
                    crate::config::files::read_regular(
                        path,
                        crate::config::files::MAX_SECRET_BYTES,
                        true,
                    )
                    .map_err(|e| ConfigError::Invalid {
                        key: "db_ca_file",
                        message: format!("{}: {e}", path.display()),
                    })?,
                ),
                None => None,
            };
            let connect = crate::store::Connect {
                url: url.clone(),
                password,
                ca_pem,
                lease: Some(std::time::Duration::from_secs(config.worker_lease_secs)),
            };
            Store::connect(&connect, access).map_err(Error::Open)?
        }
    })
}

impl Pipeline {
    /// The pipeline over the configured database (created if missing).
    pub fn open(config: Config) -> Result<Pipeline> {
        Pipeline::open_with(config, Access::Create, None)
    }

    /// The pipeline over the configured database, opened as `access`
    /// allows (commands that only read or update never create a SQLite
    /// file). `db_password` is PostgreSQL's (DIGEST_DB_PASSWORD, as the
    /// binary found it), else `db_password_file` is read. A server that
    /// cannot be reached, refuses the login or holds another schema
    /// version is a configuration error: nothing is done.
    pub fn open_with(
        config: Config,
        access: Access,
        db_password: Option<String>,
    ) -> Result<Pipeline> {
        let store = open_store(&config, &config.db, access, db_password.clone())?;
        let mut pipeline = Pipeline::with_store(config, store);
        pipeline.db_password = db_password;
        Ok(pipeline)
    }

    /// Another connection to the pipeline's database (the subscribe page
    /// counts sign-ups on its own, without waiting for the pipeline).
    pub fn connect_again(&self) -> Result<Store> {
        open_store(
            &self.config,
            &self.config.db,
            Access::Existing,
            self.db_password.clone(),
        )
    }

    /// The run lock of a SQLite file (one sending process at a time);
    /// none for PostgreSQL, whose workers share an edition by claiming its
    /// deliveries.
    pub(crate) fn run_lock(
        &self,
    ) -> Result<std::result::Result<crate::lock::RunLock, crate::lock::Locked>> {
        match self.config.db.file() {
            Some(path) => Ok(crate::lock::RunLock::acquire(path)?),
            None => Ok(Ok(crate::lock::RunLock::shared())),
        }
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
            db_password: None,
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
        let renderer = Renderer::load(Some(&self.config.templates), &self.config.title)?
            .with_base_url(&self.config.base_url);
        renderer.check()?;
        Ok(self.renderer.get_or_init(|| renderer))
    }

    /// Today in the configured time zone.
    pub fn today(&self) -> NaiveDate {
        chrono::Utc::now()
            .with_timezone(&self.config.timezone)
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
        Ok((copy, settings.recipient(&sub)))
    }
}
