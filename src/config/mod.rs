//! `digest.toml` and its `DIGEST_*` environment overrides.
//!
//! Layers, last wins: built-in defaults, the TOML file, then environment
//! variables named `DIGEST_<KEY>` for every top-level key (`DIGEST_TIMEZONE`,
//! `DIGEST_SUMMARY_WORDS`, `DIGEST_EXTRACTIVE='{ redundancy = 0.6 }'`).
//! Unknown keys are errors that name the key and the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod database;
mod env;
pub mod files;
mod summarizer;
mod text;
mod validate;

pub use database::Database;
pub use summarizer::{Budget, Choice, Params, Preset};
pub use text::Embedder;
pub use validate::is_dns_name;

/// Most messages in flight at once.
pub const MAX_CONCURRENCY: usize = 64;
/// Longest `title` (it heads every subject line).
pub const MAX_TITLE_CHARS: usize = 80;

/// The file read when `--config` is not given, if it exists.
pub const DEFAULT_CONFIG_FILE: &str = "digest.toml";

/// All settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The digest's name, in the subject and the heading.
    pub title: String,
    /// IANA time zone of the edition dates (`Europe/London`).
    #[serde(with = "text::time_zone")]
    pub timezone: chrono_tz::Tz,
    /// Article files and folders read when a command is given none.
    pub inputs: Vec<PathBuf>,
    /// Summary budget: at most this many sentences...
    pub summary_sentences: usize,
    /// ...and about this many words (0: no word limit).
    pub summary_words: usize,
    /// Full stories in an edition; the rest are listed as headlines only.
    pub max_stories: usize,
    /// Headlines in the "top stories" overview.
    pub top_stories: usize,
    /// Without a sentence encoder: the mean word similarity (0-1, TF-IDF
    /// cosine) at which reports are one story.
    pub merge_threshold: f32,
    /// Importance weight of each source by name (default 1.0).
    pub source_weights: BTreeMap<String, f32>,
    /// Folder of template overrides (`*.tera`); missing files use the built-in ones.
    pub templates: PathBuf,
    /// Folder of transformer checkpoints.
    pub models: PathBuf,
    /// Which summarizer runs: `auto` (the transformer when a checkpoint
    /// loads, else extractive), `transformer` or `extractive`.
    pub summarizer: Choice,
    /// Settings of the transformer summarizer.
    pub transformer: TransformerSettings,
    /// Which sentence encoder groups stories by meaning: `auto` (the first
    /// encoder under `models`, if any), `none` (group by words only), or a
    /// folder under `models`.
    pub embedder: Embedder,
    /// The database (subscribers, editions, deliveries, caches): a SQLite
    /// file, or `postgres://user@host[:port]/dbname` to share one among
    /// hosts. The password comes from DIGEST_DB_PASSWORD or
    /// `db_password_file`, never from here.
    pub db: Database,
    /// File holding the PostgreSQL password (its first line).
    pub db_password_file: Option<PathBuf>,
    /// Extra trusted root certificate (PEM) for the PostgreSQL server's TLS.
    pub db_ca_file: Option<PathBuf>,
    /// PostgreSQL: seconds a send worker's claim on deliveries lasts
    /// without being renewed; a worker that died is taken over after it.
    pub worker_lease_secs: u64,
    /// Public base URL of `digest serve`, for unsubscribe links.
    pub base_url: String,
    /// Sender address of the digest, `Name <address>`.
    #[serde(with = "text::mailbox")]
    pub from: lettre::message::Mailbox,
    /// SMTP server as a URL: `smtp://127.0.0.1:2525` (plain, loopback only),
    /// `smtp://user@host:587?tls=required` (STARTTLS), `smtps://user@host:465`.
    /// Unset: messages go to the `outbox` folder. The password comes from
    /// DIGEST_SMTP_PASSWORD or `smtp_password_file`, never from here.
    pub smtp_url: Option<String>,
    /// File holding the SMTP password (its first line).
    pub smtp_password_file: Option<PathBuf>,
    /// Extra trusted root certificate (PEM) for the SMTP server.
    pub smtp_ca_file: Option<PathBuf>,
    /// Seconds before an SMTP command times out.
    pub smtp_timeout_secs: u64,
    /// Send through this local sendmail command instead of SMTP.
    pub sendmail: Option<String>,
    /// Folder of `.eml` files, used when no SMTP server or sendmail is set.
    pub outbox: PathBuf,
    /// Messages in flight at once (pooled SMTP connections).
    pub concurrency: usize,
    /// Messages per second at most; 0 for no limit.
    pub rate_limit: f64,
    /// Attempts per subscriber within one run for transient failures.
    pub max_attempts: u32,
    /// First retry delay in milliseconds, doubled at each attempt.
    pub retry_base_ms: u64,
    /// An edition older than this many days is not sent without --force.
    pub max_edition_age_days: i64,
    /// `List-Id` header; default `<title> <list.<sender domain>>`.
    pub list_id: Option<String>,
    /// Address for unsubscribing by email (`List-Unsubscribe: <mailto:...>`).
    pub unsubscribe_mailto: Option<String>,
    /// DKIM private key (PEM: RSA 2048+ or Ed25519); unset: messages are not signed.
    pub dkim_key_file: Option<PathBuf>,
    /// DKIM selector: the key is published at `<selector>._domainkey.<domain>`.
    pub dkim_selector: Option<String>,
    /// DKIM signing domain [default: the `from` address's domain].
    pub dkim_domain: Option<String>,
    /// Envelope sender for bounces, VERP style: each message's is this
    /// address with the subscriber's token after a `+`
    /// (`bounces+TOKEN@example.com`); unset: the `from` address.
    pub bounce_address: Option<String>,
    /// Maildir where bounces, complaints and mail to `unsubscribe_mailto`
    /// arrive; `digest run` imports it before sending.
    pub bounces_maildir: Option<PathBuf>,
    /// Temporary delivery failures (4.x.x) in a row that mark a subscriber
    /// bounced.
    pub soft_bounce_limit: u32,
    /// Days a sign-up waits for confirmation before it is deleted.
    pub confirm_days: u32,
    /// Sign-ups the subscribe page accepts from one client address per hour.
    pub subscribe_limit_per_hour: u32,
    /// `digest serve` is behind a reverse proxy on this machine: the client
    /// address is the last one of `X-Forwarded-For` (for the sign-up limit).
    pub trust_forwarded_for: bool,
    /// Feeds read by `digest fetch` and `digest run`.
    pub feeds: Vec<FeedSource>,
    /// Seconds before a feed (or article page) download is abandoned.
    pub fetch_timeout_secs: u64,
    /// With `full_text`, fetch article pages on private, loopback and
    /// link-local addresses too (a newsroom's intranet). Off: refused.
    pub allow_private_fetch: bool,
    /// Hosts whose article pages are fetched whatever address they have.
    pub fetch_allow_hosts: Vec<String>,
    /// Consecutive failures of one feed after which each run warns about it.
    pub feed_failure_threshold: u32,
    /// Address `digest serve` listens on.
    pub listen: String,
    /// Seconds `digest serve` waits for a request's headers before closing
    /// the connection.
    pub http_header_timeout_secs: u64,
    /// Seconds from a connection's start within which its whole request,
    /// headers and body, must have arrived (a body trickled in, or promised
    /// by `Content-Length` and never sent, cannot hold a connection).
    pub http_request_timeout_secs: u64,
    /// Where `digest run` writes its JSON report.
    pub run_report: PathBuf,
    /// Send nothing until an editor runs `digest edition approve`.
    pub require_approval: bool,
    /// Addresses told (with the edition itself) when an edition awaits approval.
    pub editors: Vec<String>,
    /// `HH:MM` in `timezone`: after it, an unapproved edition is handled as
    /// `on_deadline` says.
    #[serde(with = "text::time_of_day", skip_serializing_if = "Option::is_none")]
    pub approval_deadline: Option<chrono::NaiveTime>,
    /// What a run after `approval_deadline` does with an unapproved edition.
    pub on_deadline: OnDeadline,
    /// Weights of the extractive summarizer.
    pub extractive: Params,
}

/// What a run after the approval deadline does with an unapproved edition.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnDeadline {
    /// Send it as it is.
    Send,
    /// Keep waiting for approval.
    #[default]
    Hold,
}

/// Settings of the transformer summarizer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransformerSettings {
    /// The checkpoint to use: a folder under `models`. Unset: the first found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// In `auto`, a summary whose content words are less than this share
    /// of words from its article is replaced by the extractive one.
    pub min_overlap: f32,
    /// Articles summarized together in one pass through the model (faster
    /// than one by one: see BENCHMARKS.md).
    pub batch_size: usize,
}

impl Default for TransformerSettings {
    fn default() -> Self {
        TransformerSettings {
            model: None,
            min_overlap: 0.6,
            batch_size: 4,
        }
    }
}

/// One feed: RSS 2.0, Atom or JSON Feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedSource {
    /// The source name shown in the digest ("also reported by").
    pub name: String,
    pub url: String,
    /// Importance weight of the source's stories.
    #[serde(default = "one")]
    pub weight: f32,
    /// The feed only carries teasers: fetch each item's page and extract
    /// the article from it.
    #[serde(default)]
    pub full_text: bool,
}

fn one() -> f32 {
    1.0
}

impl Default for Config {
    fn default() -> Self {
        Config {
            title: "Daily Digest".into(),
            timezone: chrono_tz::UTC,
            inputs: vec![PathBuf::from("examples")],
            summary_sentences: Budget::default().sentences,
            summary_words: Budget::default().words,
            max_stories: 10,
            top_stories: 5,
            merge_threshold: 0.2,
            source_weights: BTreeMap::new(),
            templates: PathBuf::from("templates"),
            models: PathBuf::from("models"),
            summarizer: Choice::Auto,
            transformer: TransformerSettings::default(),
            embedder: Embedder::Auto,
            db: Database::File(PathBuf::from("dailydigest.db")),
            db_password_file: None,
            db_ca_file: None,
            worker_lease_secs: 120,
            base_url: "https://digest.example.com".into(),
            from: "Daily Digest <digest@example.com>"
                .parse()
                .expect("the default sender is an address"),
            smtp_url: None,
            smtp_password_file: None,
            smtp_ca_file: None,
            smtp_timeout_secs: 30,
            sendmail: None,
            outbox: PathBuf::from("outbox"),
            concurrency: 4,
            rate_limit: 0.0,
            max_attempts: 3,
            retry_base_ms: 1000,
            max_edition_age_days: 2,
            list_id: None,
            unsubscribe_mailto: None,
            dkim_key_file: None,
            dkim_selector: None,
            dkim_domain: None,
            bounce_address: None,
            bounces_maildir: None,
            soft_bounce_limit: 5,
            confirm_days: 7,
            subscribe_limit_per_hour: 5,
            trust_forwarded_for: false,
            feeds: Vec::new(),
            fetch_timeout_secs: 15,
            allow_private_fetch: false,
            fetch_allow_hosts: Vec::new(),
            feed_failure_threshold: 3,
            listen: "127.0.0.1:8080".into(),
            http_header_timeout_secs: 10,
            http_request_timeout_secs: 10,
            run_report: PathBuf::from("run-report.json"),
            require_approval: false,
            editors: Vec::new(),
            approval_deadline: None,
            on_deadline: OnDeadline::Hold,
            extractive: Params::default(),
        }
    }
}

/// A configuration that cannot be used. Exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid setting {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

impl Config {
    /// Parses a TOML document (no file, no environment).
    pub fn parse(toml_text: &str) -> Result<Config, String> {
        let table: toml::Table = toml::from_str(toml_text).map_err(|e| describe(&e))?;
        Self::from_table(table)
    }

    fn from_table(mut table: toml::Table) -> Result<Config, String> {
        // `[extractive]` keys apply on top of the preset it names.
        if let Some(toml::Value::Table(ext)) = table.get_mut("extractive") {
            if let Some(preset) = ext.get("preset").cloned() {
                let preset: Preset = preset
                    .try_into()
                    .map_err(|e: toml::de::Error| format!("extractive.preset: {}", e.message()))?;
                let mut merged =
                    toml::Table::try_from(Params::preset(preset)).expect("params serialize");
                merged.extend(std::mem::take(ext));
                *ext = merged;
            }
        }
        let config: Config = serde_path_to_error::deserialize(table).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let msg = inner.message().trim().to_owned();
            if path == "." {
                msg
            } else {
                format!("{path}: {msg}")
            }
        })?;
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }

    /// Loads the configuration: `path` if given (it must exist), else
    /// `./digest.toml` if present, else defaults; then the `DIGEST_*`
    /// variables from `env`.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let (file, text) = match path {
            Some(p) => (Some(p.to_path_buf()), Some(read(p)?)),
            None if Path::new(DEFAULT_CONFIG_FILE).is_file() => {
                let p = PathBuf::from(DEFAULT_CONFIG_FILE);
                let text = read(&p)?;
                (Some(p), Some(text))
            }
            None => (None, None),
        };
        let file_name = file.clone().unwrap_or_else(|| PathBuf::from("(defaults)"));
        let mut table: toml::Table = match &text {
            Some(t) => toml::from_str(t).map_err(|e| ConfigError::Parse {
                path: file_name.clone(),
                message: describe(&e),
            })?,
            None => toml::Table::new(),
        };
        env::overlay(&mut table, env)?;
        Self::from_table(table).map_err(|message| ConfigError::Parse {
            path: file_name,
            message,
        })
    }

    /// Source weights: `[source_weights]`, then each feed's `weight`.
    pub fn weights(&self) -> BTreeMap<String, f32> {
        let mut w = self.source_weights.clone();
        for f in &self.feeds {
            w.entry(f.name.clone()).or_insert(f.weight);
        }
        w
    }

    /// The summary budget these settings give.
    pub fn budget(&self) -> Budget {
        Budget {
            sentences: self.summary_sentences,
            words: self.summary_words,
        }
    }
}

fn read(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// A TOML error as one line with its position.
fn describe(e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_owned();
    match e.span() {
        Some(span) if span.start > 0 || span.end > 0 => format!("{msg} (at byte {})", span.start),
        _ => msg,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_parse_from_empty() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn list_health_settings_are_checked() {
        let with =
            |toml: &str| Config::parse(toml).and_then(|c| c.validate().map_err(|e| e.to_string()));
        assert!(with("bounce_address = \"bounces@example.com\"").is_ok());
        for (toml, key) in [
            (
                "bounce_address = \"bounces+x@example.com\"",
                "bounce_address",
            ),
            ("bounce_address = \"not an address\"", "bounce_address"),
            ("soft_bounce_limit = 0", "soft_bounce_limit"),
            ("confirm_days = 0", "confirm_days"),
            ("confirm_days = 1000000000", "confirm_days"),
            ("timezone = \"Mars/Olympus\"", "timezone"),
            ("from = \"not an address\"", "from"),
            ("approval_deadline = \"25:99\"", "approval_deadline"),
            ("embedder = \"../elsewhere\"", "embedder"),
            ("dkim_key_file = \"k.pem\"", "dkim_selector"),
            (
                "bounce_address = \"b@example.com\"\nunsubscribe_mailto = \"B@example.com\"",
                "unsubscribe_mailto",
            ),
        ] {
            let err = with(toml).unwrap_err();
            assert!(err.contains(key), "{toml}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_named() {
        let err = Config::parse("sumary_words = 10").unwrap_err();
        assert!(err.contains("sumary_words"), "{err}");
        let err = Config::parse("[extractive]\nredundnacy = 1.0").unwrap_err();
        assert!(err.contains("redundnacy"), "{err}");
    }

    #[test]
    fn environment_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("digest.toml");
        std::fs::write(
            &path,
            "summary_words = 50\ntimezone = \"Europe/Paris\"\n[extractive]\nredundancy = 0.9\n",
        )
        .unwrap();
        let c = Config::load(
            Some(&path),
            env(&[
                ("DIGEST_SUMMARY_WORDS", "60"),
                ("DIGEST_INPUTS", "a, b"),
                ("DIGEST_EXTRACTIVE", "{ min_words = 3 }"),
                ("DIGEST_SMTP_PASSWORD", "not a config key"),
                ("DIGEST_SMTP_URL", "smtp://127.0.0.1:2525"),
                ("HOME", "/root"),
            ]),
        )
        .unwrap();
        assert_eq!(c.summary_words, 60);
        assert_eq!(c.timezone, chrono_tz::Europe::Paris);
        assert_eq!(c.inputs, [PathBuf::from("a"), PathBuf::from("b")]);
        assert_eq!(c.extractive.min_words, 3);
        assert_eq!(
            c.smtp_url.as_deref(),
            Some("smtp://127.0.0.1:2525"),
            "optional keys from the environment"
        );
        assert_eq!(
            c.extractive.redundancy, 0.9,
            "a partial table keeps the file's other keys"
        );
    }

    #[test]
    fn presets_are_overridden_key_by_key() {
        let c = Config::parse("[extractive]\npreset = \"coverage\"\nredundancy = 0.2").unwrap();
        let coverage = Params::preset(Preset::Coverage);
        assert_eq!(c.extractive.idf_power, coverage.idf_power);
        assert_eq!(c.extractive.position_weight, coverage.position_weight);
        assert_eq!(c.extractive.redundancy, 0.2);
        assert!(Config::parse("[extractive]\npreset = \"fast\"")
            .unwrap_err()
            .contains("preset"));
    }

    #[test]
    fn bad_values_name_the_variable_or_file() {
        let err = Config::load(None, env(&[("DIGEST_SUMMARY_WORDS", "many")])).unwrap_err();
        assert!(err.to_string().contains("DIGEST_SUMMARY_WORDS"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.toml");
        std::fs::write(&path, "summary_words = \"ten\"").unwrap();
        let err = Config::load(Some(&path), vec![]).unwrap_err().to_string();
        assert!(
            err.contains("x.toml") && err.contains("summary_words"),
            "{err}"
        );
        let err = Config::load(Some(&dir.path().join("missing.toml")), vec![])
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.toml"), "{err}");
        assert!(Config::parse("summary_sentences = 0")
            .unwrap_err()
            .contains("summary_sentences"));
    }
}
