//! The command line's arguments (clap derive): what each command takes.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Turn each day's news articles into a short digest.
#[derive(Debug, Parser)]
#[command(name = "digest", version, about, long_about = None, propagate_version = true)]
pub(crate) struct Cli {
    /// Settings file [default: ./digest.toml if present]. Every key can also
    /// be set as DIGEST_<KEY> in the environment.
    #[arg(long, global = true, value_name = "FILE", env = "DIGEST_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    /// The database: a SQLite file, or postgres://user@host[:port]/dbname
    /// [default: `db` from the config, ./dailydigest.db].
    #[arg(
        long,
        global = true,
        value_name = "FILE|URL",
        env = "DIGEST_DB",
        hide_env_values = true
    )]
    #[arg(value_parser = database)]
    pub(crate) db: Option<dailydigest::config::Database>,

    /// More log output on stderr (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// Which summarizer runs [default: `summarizer`, auto: the transformer
    /// when a checkpoint in the models folder loads, else extractive].
    #[arg(long, global = true, value_name = "WHICH")]
    pub(crate) summarizer: Option<SummarizerArg>,

    /// Folder of models: summarization checkpoints and sentence encoders
    /// [default: `models`, ./models].
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) models: Option<PathBuf>,

    /// Which sentence encoder groups stories by meaning [default:
    /// `embedder`, auto: the one in the models folder, if any]: auto, none,
    /// or a folder under the models folder.
    #[arg(long, global = true, value_name = "WHICH")]
    pub(crate) embedder: Option<String>,

    /// Less log output on stderr (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub(crate) quiet: u8,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print each article's headline and summary.
    ///
    /// Reads article files (seed format with a `date` line, plain text,
    /// Markdown with front matter, JSON, JSON Lines, saved HTML pages),
    /// folders of them (recursively), or `-` for stdin.
    Summarize(SummarizeArgs),

    /// Show the day's digest exactly as a subscriber receives it.
    ///
    /// Reads the edition's articles, summarizes them, merges the same story
    /// from several sources, ranks the stories and renders the templates.
    /// Text goes to the terminal; HTML to a file (--open shows it in the
    /// browser); JSON is the edition as data for scripts.
    Preview(PreviewArgs),

    /// Write a commented digest.toml and copy the built-in templates into
    /// templates/ for editing. Never overwrites a file.
    Init(InitArgs),

    /// Work with the email templates.
    #[command(subcommand)]
    Templates(TemplatesCommand),

    /// Send the day's digest to every active subscriber, exactly once.
    ///
    /// Renders the edition once (stored in the database: a re-run sends the
    /// same edition) and delivers it to each subscriber who has not had it.
    /// Re-running sends only what is not yet sent. Exit status: 0 all sent,
    /// 1 something failed or remains, 2 usage or configuration error.
    Send(SendArgs),

    /// Manage subscribers.
    #[command(subcommand)]
    Subscribers(SubscribersCommand),

    /// Download the configured feeds and store their new articles.
    Fetch {
        /// Print each feed's result as JSON on stdout.
        #[arg(long)]
        json: bool,
    },

    /// The cron job: fetch the feeds, assemble today's edition, send it.
    ///
    /// Holds a lock beside the database so that overlapping runs cannot both
    /// send, and writes a JSON report (`run_report`). Exit status: 0 all
    /// done, 1 something failed or remains, 2 configuration error, 75
    /// another run is in progress.
    Run(RunArgs),

    /// The editor's desk: build, read, fix and approve the stored edition
    /// before it goes out.
    #[command(subcommand)]
    Edition(EditionCommand),

    /// DKIM signing keys.
    #[command(subcommand)]
    Dkim(DkimCommand),

    /// Bounces, complaints and unsubscribe requests that came back by mail.
    #[command(subcommand)]
    Bounces(BouncesCommand),

    /// The database itself.
    #[command(subcommand)]
    Db(DbCommand),

    /// Show or try the models: the transformer that summarizes, the
    /// sentence encoder that groups stories.
    #[command(subcommand)]
    Model(ModelCommand),

    /// Serve one-click unsubscribe links and edition previews over HTTP.
    Serve {
        /// Address to listen on [default: `listen`, 127.0.0.1:8080].
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DbCommand {
    /// Copy every table into an empty database: a SQLite file into
    /// PostgreSQL (`--to postgres://...`) or back (`--from postgres://...
    /// --to list.db`). The side not given is `db` from the config. A target
    /// that holds anything is refused; the copy is one transaction.
    Copy {
        /// The database to copy [default: `db`].
        #[arg(long, value_name = "FILE|URL", value_parser = database)]
        from: Option<dailydigest::config::Database>,
        /// The empty database to copy into [default: `db`].
        #[arg(long, value_name = "FILE|URL", value_parser = database)]
        to: Option<dailydigest::config::Database>,
        /// Print what was copied as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn database(s: &str) -> Result<dailydigest::config::Database, String> {
    dailydigest::config::Database::parse_checked(s)
}

/// Which stored edition: `--date` (default today).
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct DateArg {
    /// Edition date [default: today in the configured time zone].
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub(crate) date: Option<chrono::NaiveDate>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EditionCommand {
    /// Assemble and store the day's edition without sending it.
    Build {
        #[command(flatten)]
        edition: EditionArgs,
        /// Build it again from its articles (refused once sending started).
        #[arg(long)]
        rebuild: bool,
    },
    /// Show the stored edition exactly as it will be sent (`list`: ranks,
    /// briefs included, and sources, for the other commands' N).
    Show {
        #[command(flatten)]
        date: DateArg,
        #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
        format: ShowFormat,
    },
    /// Edit the stored edition in $VISUAL / $EDITOR (a commented TOML document).
    Edit {
        #[command(flatten)]
        date: DateArg,
    },
    /// Drop story N.
    Drop {
        n: usize,
        #[command(flatten)]
        date: DateArg,
    },
    /// Move story N to position M.
    Move {
        n: usize,
        #[arg(long, value_name = "M")]
        to: usize,
        #[command(flatten)]
        date: DateArg,
    },
    /// Replace story N's headline.
    Headline {
        n: usize,
        text: String,
        #[command(flatten)]
        date: DateArg,
    },
    /// Replace story N's summary (sentences are split as usual).
    Summary {
        n: usize,
        text: String,
        #[command(flatten)]
        date: DateArg,
    },
    /// Merge story M into story N (one event the grouping split).
    Merge {
        n: usize,
        m: usize,
        #[command(flatten)]
        date: DateArg,
    },
    /// Split story N back into its reports (a wrong merge).
    Split {
        n: usize,
        #[command(flatten)]
        date: DateArg,
    },
    /// Approve the edition for sending (`require_approval`).
    Approve {
        #[command(flatten)]
        date: DateArg,
    },
    /// Take approval back (before sending starts).
    Unapprove {
        #[command(flatten)]
        date: DateArg,
    },
    /// List the changes made to the edition, with time and user.
    Log {
        #[command(flatten)]
        date: DateArg,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ShowFormat {
    /// The subject and the plain-text part.
    Text,
    /// The HTML part.
    Html,
    /// Markdown.
    Markdown,
    /// The edition as data.
    Json,
    /// One line a story: rank, full or brief, headline, sources.
    List,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BouncesCommand {
    /// Read bounce messages (RFC 3464 reports and the plain-text bounces of
    /// Postfix, Exim, Sendmail, Exchange, Gmail), complaints (ARF) and mail
    /// to `unsubscribe_mailto`, and apply them: permanent failures mark the
    /// subscriber bounced, `soft_bounce_limit` temporary ones in a row too,
    /// complaints and unsubscribe requests take them off the list. Each
    /// message counts once; Maildir messages move from new/ to cur/; what
    /// cannot be read stays where it is and is listed. Exit 1 when any was
    /// left.
    Import {
        /// Message files, mbox files and Maildir folders.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
        /// Print the report as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum DkimCommand {
    /// Write a new private key (PEM, mode 0600) and print the DNS TXT
    /// record to publish for it.
    Keygen {
        /// The selector the public key is published under.
        #[arg(long)]
        selector: String,
        /// The key type.
        #[arg(long, value_enum, default_value_t = DkimAlgorithm::Rsa)]
        algorithm: DkimAlgorithm,
        /// Where to write the private key [default: dkim-<selector>.pem].
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum DkimAlgorithm {
    /// RSA 2048 (rsa-sha256): understood by every receiver.
    Rsa,
    /// Ed25519 (ed25519-sha256, RFC 8463): short; sign with both for old receivers.
    Ed25519,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ModelCommand {
    /// What would summarize: the checkpoint, its architecture, parameters,
    /// tokenizer, generation settings and device, without loading it.
    Info,
    /// Load the checkpoint and summarize a built-in sample article.
    Check,
    /// Print the sentence encoder's vector of each text, one JSON array a
    /// line: texts one a line (a line that is a JSON string is that string).
    Embed {
        /// File of texts [default: standard input].
        #[arg(value_name = "FILE")]
        input: Option<PathBuf>,
        /// Cut inputs at this many tokens [default: the model's max_seq_length].
        #[arg(long, value_name = "N")]
        max_tokens: Option<usize>,
    },
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) date: DateArg,
    /// SMTP server URL [default: `smtp_url`].
    #[arg(long, value_name = "URL")]
    pub(crate) smtp: Option<String>,
    /// Send an edition older than `max_edition_age_days`.
    #[arg(long)]
    pub(crate) force: bool,
    /// Print the run report on stdout too.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Which edition, from which articles: shared by `preview` and `send`.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct EditionArgs {
    #[command(flatten)]
    pub(crate) date: DateArg,

    /// Article files or folders, `-` for stdin [default: `inputs` from the config].
    #[arg(long = "input", short = 'i', value_name = "PATH")]
    pub(crate) inputs: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct SendArgs {
    #[command(flatten)]
    pub(crate) edition: EditionArgs,

    /// SMTP server URL [default: `smtp_url` from the config; unset: the outbox folder].
    #[arg(long, value_name = "URL")]
    pub(crate) smtp: Option<String>,

    /// Render and count, send nothing, record nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,

    /// Send at most N messages this run.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<usize>,

    /// Send an edition older than `max_edition_age_days`.
    #[arg(long)]
    pub(crate) force: bool,

    /// Print the run summary as JSON on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum SubscribersCommand {
    /// Add a subscriber (or reactivate one who unsubscribed).
    Add {
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// Comma-separated topics: matching stories come first in their copy.
        #[arg(long, default_value = "")]
        topics: String,
        /// Their copy carries only stories matching the topics (the general
        /// edition when none match).
        #[arg(long, requires = "topics")]
        only_topics: bool,
        /// Double opt-in: store the address as pending and mail it a
        /// confirmation link (`base_url`/confirm/...) instead of subscribing
        /// it; it becomes active when the link is followed.
        #[arg(long, conflicts_with = "only_topics")]
        confirm: bool,
    },
    /// Unsubscribe an address (keeps its history); --purge deletes it.
    Remove {
        email: String,
        #[arg(long)]
        purge: bool,
    },
    /// List subscribers.
    List {
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Import subscribers from CSV: `email,name,topics,topics_only,status`,
    /// as `export` writes it (with a header row the columns may come in any
    /// order; without one, in this order and the last ones optional;
    /// topics_only is yes or no). The good rows in one transaction, each bad
    /// row reported by line.
    Import { file: PathBuf },
    /// Export every subscriber (CSV by default, the columns `import` reads
    /// back) to stdout.
    Export {
        #[arg(long, value_enum, default_value_t = ListFormat::Csv)]
        format: ListFormat,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ListFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TemplatesCommand {
    /// Load every template (built-in and overrides) and render each against
    /// a sample edition: syntax errors and unknown variables are reported
    /// with the template, line and column.
    Check,
}

#[derive(Debug, Args)]
pub(crate) struct PreviewArgs {
    #[command(flatten)]
    pub(crate) edition: EditionArgs,

    /// What to render.
    #[arg(long, value_enum, default_value_t = PreviewFormat::Text)]
    pub(crate) format: PreviewFormat,

    /// Write to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,

    /// Open the HTML rendering in the browser (written to --output, or a
    /// temporary file).
    #[arg(long)]
    pub(crate) open: bool,

    /// Show this subscriber's copy (their topics first, their name and
    /// unsubscribe link).
    #[arg(long, value_name = "EMAIL")]
    pub(crate) subscriber: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PreviewFormat {
    /// The plain-text part, after a Subject line.
    Text,
    /// The HTML part.
    Html,
    /// Markdown, for pasting elsewhere.
    Markdown,
    /// The edition as data: {date, stories: [{headline, summary, sources, urls, ...}], ...}.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Where to write digest.toml and templates/.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub(crate) dir: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct SummarizeArgs {
    /// Article files or folders; `-` reads stdin [default: `inputs` from the config].
    #[arg(value_name = "PATH")]
    pub(crate) paths: Vec<String>,

    /// Batch mode: read JSON Lines {id, text, ...} on stdin, write
    /// {"id": ..., "summary": ...} lines, one summary sentence per line.
    #[arg(long, conflicts_with_all = ["paths", "format"])]
    pub(crate) jsonl: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub(crate) format: OutputFormat,

    /// At most N sentences per summary [default: summary_sentences, 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) sentences: Option<u64>,

    /// At most about N words per summary, 0 for no limit [default: summary_words, 75].
    #[arg(long, value_name = "N")]
    pub(crate) words: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Headline, date and source, then the summary: for reading.
    Text,
    /// A JSON array of {id, headline, headline_derived, date, source, url, summary, sentences}.
    Json,
}

/// `--summarizer`: which summarizer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SummarizerArg {
    /// The transformer when a checkpoint loads, else extractive; degenerate
    /// model summaries are replaced by extractive ones.
    Auto,
    /// The transformer's summaries as they are; an error when none loads.
    Transformer,
    /// The extractive summarizer.
    Extractive,
}

impl From<SummarizerArg> for dailydigest::config::Choice {
    fn from(arg: SummarizerArg) -> Self {
        use dailydigest::config::Choice;
        match arg {
            SummarizerArg::Auto => Choice::Auto,
            SummarizerArg::Transformer => Choice::Transformer,
            SummarizerArg::Extractive => Choice::Extractive,
        }
    }
}
