//! The command line: argument definitions (clap derive) and the commands.
//!
//! stdout carries the product (summaries, JSON); everything else — warnings,
//! progress, which summarizer ran — goes to stderr through `tracing`.
//! Exit codes: 0 everything done, 1 partial failure (some input skipped),
//! 2 usage or configuration error.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::article::Article;
use crate::config::{Budget, Config, ConfigError};
use crate::ingest::Input;
use crate::pipeline::{Access, Pipeline, SendOutcome};
use crate::render::{self, TemplateError};
use crate::summarize::Summary;

/// Turn each day's news articles into a short digest.
#[derive(Debug, Parser)]
#[command(name = "digest", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Settings file [default: ./digest.toml if present]. Every key can also
    /// be set as DIGEST_<KEY> in the environment.
    #[arg(long, global = true, value_name = "FILE", env = "DIGEST_CONFIG")]
    pub config: Option<PathBuf>,

    /// SQLite database file [default: `db` from the config, ./dailydigest.db].
    #[arg(long, global = true, value_name = "PATH", env = "DIGEST_DB")]
    pub db: Option<PathBuf>,

    /// More log output on stderr (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Which summarizer runs [default: `summarizer`, auto: the transformer
    /// when a checkpoint in the models folder loads, else extractive].
    #[arg(long, global = true, value_name = "WHICH")]
    pub summarizer: Option<crate::summarize::Choice>,

    /// Folder of models: summarization checkpoints and sentence encoders
    /// [default: `models`, ./models].
    #[arg(long, global = true, value_name = "DIR")]
    pub models: Option<PathBuf>,

    /// Which sentence encoder groups stories by meaning [default:
    /// `embedder`, auto: the one in the models folder, if any]: auto, none,
    /// or a folder under the models folder.
    #[arg(long, global = true, value_name = "WHICH")]
    pub embedder: Option<String>,

    /// Less log output on stderr (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
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

/// Which stored edition: `--date` (default today).
#[derive(Debug, Clone, Default, Args)]
pub struct DateArg {
    /// Edition date [default: today in the configured time zone].
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<chrono::NaiveDate>,
}

#[derive(Debug, Subcommand)]
pub enum EditionCommand {
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
pub enum ShowFormat {
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
pub enum BouncesCommand {
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
pub enum DkimCommand {
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
pub enum DkimAlgorithm {
    /// RSA 2048 (rsa-sha256): understood by every receiver.
    Rsa,
    /// Ed25519 (ed25519-sha256, RFC 8463): short; sign with both for old receivers.
    Ed25519,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
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
pub struct RunArgs {
    /// Edition date [default: today in the configured time zone].
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<chrono::NaiveDate>,
    /// SMTP server URL [default: `smtp_url`].
    #[arg(long, value_name = "URL")]
    pub smtp: Option<String>,
    /// Send an edition older than `max_edition_age_days`.
    #[arg(long)]
    pub force: bool,
    /// Print the run report on stdout too.
    #[arg(long)]
    pub json: bool,
}

/// Which edition, from which articles: shared by `preview` and `send`.
#[derive(Debug, Clone, Default, Args)]
pub struct EditionArgs {
    /// Edition date [default: today in the configured time zone].
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub date: Option<chrono::NaiveDate>,

    /// Article files or folders, `-` for stdin [default: `inputs` from the config].
    #[arg(long = "input", short = 'i', value_name = "PATH")]
    pub inputs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    #[command(flatten)]
    pub edition: EditionArgs,

    /// SMTP server URL [default: `smtp_url` from the config; unset: the outbox folder].
    #[arg(long, value_name = "URL")]
    pub smtp: Option<String>,

    /// Render and count, send nothing, record nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Send at most N messages this run.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,

    /// Send an edition older than `max_edition_age_days`.
    #[arg(long)]
    pub force: bool,

    /// Print the run summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum SubscribersCommand {
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
pub enum ListFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Load every template (built-in and overrides) and render each against
    /// a sample edition: syntax errors and unknown variables are reported
    /// with the template, line and column.
    Check,
}

#[derive(Debug, Args)]
pub struct PreviewArgs {
    #[command(flatten)]
    pub edition: EditionArgs,

    /// What to render.
    #[arg(long, value_enum, default_value_t = PreviewFormat::Text)]
    pub format: PreviewFormat,

    /// Write to FILE instead of stdout.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Open the HTML rendering in the browser (written to --output, or a
    /// temporary file).
    #[arg(long)]
    pub open: bool,

    /// Show this subscriber's copy (their topics first, their name and
    /// unsubscribe link).
    #[arg(long, value_name = "EMAIL")]
    pub subscriber: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreviewFormat {
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
pub struct InitArgs {
    /// Where to write digest.toml and templates/.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct SummarizeArgs {
    /// Article files or folders; `-` reads stdin [default: `inputs` from the config].
    #[arg(value_name = "PATH")]
    pub paths: Vec<String>,

    /// Batch mode: read JSON Lines {id, text, ...} on stdin, write
    /// {"id": ..., "summary": ...} lines, one summary sentence per line.
    #[arg(long, conflicts_with_all = ["paths", "format"])]
    pub jsonl: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// At most N sentences per summary [default: summary_sentences, 3].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub sentences: Option<u64>,

    /// At most about N words per summary, 0 for no limit [default: summary_words, 75].
    #[arg(long, value_name = "N")]
    pub words: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Headline, date and source, then the summary: for reading.
    Text,
    /// A JSON array of {id, headline, headline_derived, date, source, url, summary, sentences}.
    Json,
}

/// Sets up `tracing` on stderr from -v/-q (RUST_LOG, when set, wins).
pub fn init_logging(cli: &Cli) {
    let level = match (cli.verbose, cli.quiet) {
        (0, 0) => "info",
        (1, _) => "debug",
        (v, _) if v >= 2 => "trace",
        (_, 1) => "warn",
        _ => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("dailydigest={level},digest={level}"))
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_target(false)
        .with_ansi(io::stderr().is_terminal())
        .without_time()
        .init();
}

/// Prints a fatal error once, with its chain, and picks the exit code: 2
/// for configuration errors, 0 for a closed pipe (`digest ... | head`), 1
/// otherwise.
pub fn report_error(err: &anyhow::Error) -> ExitCode {
    if err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    }) {
        return ExitCode::SUCCESS;
    }
    eprintln!("digest: error: {err:#}");
    if err.chain().any(|e| {
        e.downcast_ref::<ConfigError>().is_some()
            || e.downcast_ref::<TemplateError>().is_some()
            || e.downcast_ref::<crate::pipeline::Error>()
                .is_some_and(crate::pipeline::Error::is_config)
    }) {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(db) = cli.db {
        config.db = db;
    }
    if let Some(choice) = cli.summarizer {
        config.summarizer = choice;
    }
    if let Some(models) = cli.models {
        config.models = models;
    }
    if let Some(embedder) = cli.embedder {
        config.embedder = embedder;
    }
    match cli.command {
        Command::Summarize(args) => summarize(Pipeline::in_memory(config)?, args),
        Command::Preview(args) => {
            // The database, when there is one, adds fetched articles and subscribers.
            let pipeline = if config.db.is_file() || args.subscriber.is_some() {
                Pipeline::open_with(config, Access::ReadOnly)?
            } else {
                Pipeline::in_memory(config)?
            };
            preview(&pipeline, args)
        }
        Command::Init(args) => init(&args.dir),
        Command::Templates(TemplatesCommand::Check) => templates_check(&config),
        // Only adding subscribers and fetching create a database; the rest
        // refuse to start an empty one (a command run in the wrong folder).
        Command::Send(args) => send::send(Pipeline::open_with(config, Access::Existing)?, args),
        Command::Subscribers(cmd) => {
            let access = match cmd {
                SubscribersCommand::Add { .. } | SubscribersCommand::Import { .. } => {
                    Access::Create
                }
                SubscribersCommand::Remove { .. } => Access::Existing,
                SubscribersCommand::List { .. } | SubscribersCommand::Export { .. } => {
                    Access::ReadOnly
                }
            };
            subscribers::subscribers(Pipeline::open_with(config, access)?, cmd)
        }
        Command::Fetch { json } => run::fetch(&Pipeline::open(config)?, json),
        Command::Run(args) => run::run(Pipeline::open_with(config, Access::Existing)?, args),
        Command::Serve { listen } => {
            crate::serve::serve(Pipeline::open_with(config, Access::Existing)?, listen)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Edition(cmd) => {
            let access = match cmd {
                EditionCommand::Show { .. } | EditionCommand::Log { .. } => Access::ReadOnly,
                _ => Access::Existing,
            };
            edition::edition(Pipeline::open_with(config, access)?, cmd)
        }
        Command::Bounces(BouncesCommand::Import { paths, json }) => run::import_bounces(
            &Pipeline::open_with(config, Access::Existing)?,
            &paths,
            json,
        ),
        Command::Dkim(DkimCommand::Keygen {
            selector,
            algorithm,
            out,
        }) => dkim_keygen(&config, &selector, algorithm, out),
        Command::Model(ModelCommand::Info) => model::info(&config),
        Command::Model(ModelCommand::Check) => model::check(&config),
        Command::Model(ModelCommand::Embed { input, max_tokens }) => {
            model::embed_texts(&config, input.as_deref(), max_tokens)
        }
    }
}

fn dkim_keygen(
    config: &Config,
    selector: &str,
    algorithm: DkimAlgorithm,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    use std::os::unix::fs::OpenOptionsExt;
    let kind = match algorithm {
        DkimAlgorithm::Rsa => crate::mail::dkim::KeyKind::Rsa,
        DkimAlgorithm::Ed25519 => crate::mail::dkim::KeyKind::Ed25519,
    };
    if !crate::config::is_dns_name(selector) {
        return Err(crate::config::ConfigError::Invalid {
            key: "dkim_selector",
            message: format!(
                "{selector:?} is not a DNS label (letters, digits and '-', at most 63 characters, dots between labels)"
            ),
        }
        .into());
    }
    let (pem, txt) = crate::mail::dkim::keygen(kind).map_err(|e| anyhow::anyhow!(e))?;
    let path = out.unwrap_or_else(|| PathBuf::from(format!("dkim-{selector}.pem")));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| {
            format!(
                "creating {} (an existing key is never overwritten)",
                path.display()
            )
        })?;
    file.write_all(pem.as_bytes())?;
    let domain = config.dkim_domain.clone().unwrap_or_else(|| {
        config
            .from
            .parse::<lettre::message::Mailbox>()
            .map(|m| m.email.domain().to_owned())
            .unwrap_or_default()
    });
    eprintln!("wrote the private key to {} (keep it secret); publish this DNS record, then set dkim_key_file = {:?} and dkim_selector = {selector:?}:", path.display(), path.display().to_string());
    println!("{selector}._domainkey.{domain}. IN TXT \"{txt}\"");
    Ok(ExitCode::SUCCESS)
}

/// Says on stderr how a send ended (for `send` and `run`).
fn print_send_outcome(outcome: &SendOutcome) {
    match outcome {
        SendOutcome::Locked(locked) => eprintln!("digest: {locked}"),
        SendOutcome::DryRun(d) => match d.open_deliveries {
            None => eprintln!(
                "dry run: the edition of {} ({} stories) would go to {} active subscribers via {}",
                d.date, d.stories, d.active_subscribers, d.transport
            ),
            Some(open) => eprintln!(
                "dry run: the stored edition of {}; {open} deliveries open, {} active subscribers, via {}",
                d.date, d.active_subscribers, d.transport
            ),
        },
        SendOutcome::NoNews { date } => {
            eprintln!("no news: nothing sent (the edition of {date} would have no stories; a later run that day with news sends it)")
        }
        SendOutcome::Unreachable { server, error } => eprintln!(
            "digest: cannot reach the mail server {server}: {error}; nothing was sent, run again later"
        ),
        SendOutcome::AwaitingApproval {
            date,
            notified,
            held_past_deadline,
        } => {
            eprintln!(
                "the edition of {date} awaits approval{}: nothing was sent; `digest edition approve --date {date}` approves it{}",
                if *held_past_deadline { " (past the deadline, held)" } else { "" },
                if *notified > 0 { format!("; {notified} editors notified") } else { String::new() }
            );
        }
        SendOutcome::Sent(summary) => {
            eprintln!(
                "edition of {}: {} sent, {} failed, {} retrying, {} skipped (already done), {} remaining{}",
                summary.date,
                summary.sent,
                summary.failed,
                summary.retrying,
                summary.skipped,
                summary.remaining,
                if summary.resumed > 0 {
                    format!(", {} resumed after an interrupted run", summary.resumed)
                } else {
                    String::new()
                }
            );
            if let Some(reason) = &summary.stopped {
                eprintln!("digest: the run stopped early: {reason}");
            }
        }
    }
}

fn templates_check(config: &Config) -> anyhow::Result<ExitCode> {
    let pipeline = Pipeline::in_memory(config.clone())?;
    let renderer = pipeline.renderer()?;
    let mut out = io::stdout().lock();
    for (name, origin) in renderer.origins() {
        writeln!(out, "ok  {name}  ({origin})")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn preview(pipeline: &Pipeline, args: PreviewArgs) -> anyhow::Result<ExitCode> {
    let renderer = pipeline.renderer()?;
    let date = args.edition.date.unwrap_or_else(|| pipeline.today());
    let built = pipeline.build(date, pipeline.inputs(&args.edition.inputs))?;
    let (edition, recipient) = match &args.subscriber {
        Some(email) => pipeline.copy_for(&built.edition, email)?,
        None => (built.edition, pipeline.preview_recipient()),
    };
    let skipped = built.skipped;
    let format = if args.open {
        PreviewFormat::Html
    } else {
        args.format
    };
    let body = match format {
        PreviewFormat::Text => {
            let r = renderer.render(&edition, &recipient)?;
            format!("Subject: {}\n\n{}", r.subject, r.text)
        }
        PreviewFormat::Html => renderer.render(&edition, &recipient)?.html,
        PreviewFormat::Markdown => renderer.render_one(render::MARKDOWN, &edition, &recipient)?,
        PreviewFormat::Json => serde_json::to_string_pretty(&edition)? + "\n",
    };
    let target = match (&args.output, args.open) {
        (Some(p), _) => Some(p.clone()),
        (None, true) => Some(std::env::temp_dir().join(format!("digest-{date}.html"))),
        (None, false) => None,
    };
    match &target {
        Some(path) => {
            std::fs::write(path, body.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
            tracing::info!("wrote {}", path.display());
        }
        None => {
            let mut out = io::stdout().lock();
            out.write_all(body.as_bytes())?;
            out.flush()?;
        }
    }
    if args.open {
        if let Some(path) = &target {
            open_in_browser(path);
        }
    }
    Ok(if skipped > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn open_in_browser(path: &std::path::Path) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    match std::process::Command::new(opener).arg(path).spawn() {
        Ok(_) => tracing::info!("opened {} with {opener}", path.display()),
        Err(e) => tracing::warn!(
            "could not open a browser ({opener}: {e}); the preview is at {}",
            path.display()
        ),
    }
}

fn init(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    for path in crate::pipeline::init(dir)? {
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// What `summarize --format json` writes for each article.
#[derive(Serialize)]
struct ArticleSummary<'a> {
    id: &'a str,
    headline: &'a str,
    /// The source gave no title: the headline was derived from the text.
    headline_derived: bool,
    date: Option<chrono::NaiveDate>,
    source: Option<&'a str>,
    url: Option<&'a str>,
    summary: String,
    sentences: &'a Summary,
}

fn summarize(pipeline: Pipeline, args: SummarizeArgs) -> anyhow::Result<ExitCode> {
    let config = pipeline.config();
    let budget = Budget {
        sentences: args
            .sentences
            .map_or(config.summary_sentences, |n| n as usize),
        words: args.words.unwrap_or(config.summary_words),
    };
    let inputs: Vec<Input> = if args.jsonl {
        vec![Input::Stdin]
    } else {
        pipeline.inputs(&args.paths)
    };
    let stdout = io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    let mut count = 0usize;
    // Batch mode writes no headlines: none are derived.
    let done = pipeline.summarize_each(inputs, budget, !args.jsonl, |article, summary| {
        if args.jsonl {
            serde_json::to_writer(
                &mut out,
                &serde_json::json!({ "id": article.id, "summary": summary.lines() }),
            )?;
            out.write_all(b"\n")?;
        } else {
            match args.format {
                OutputFormat::Text => write_text(&mut out, article, summary, count)?,
                OutputFormat::Json => {
                    out.write_all(if count == 0 { b"[\n" } else { b",\n" })?;
                    let record = ArticleSummary {
                        id: &article.id,
                        headline: &article.title,
                        headline_derived: article.title_derived,
                        date: article.date,
                        source: article.source.as_deref(),
                        url: article.url.as_deref(),
                        summary: summary.lines(),
                        sentences: summary,
                    };
                    serde_json::to_writer_pretty(&mut out, &record)?;
                }
            }
        }
        count += 1;
        Ok(())
    })?;
    if args.format == OutputFormat::Json && !args.jsonl {
        out.write_all(if done.count == 0 { b"[]\n" } else { b"\n]\n" })?;
    }
    out.flush().context("writing summaries")?;
    if done.skipped > 0 {
        tracing::warn!(
            "{} articles summarized, {} skipped",
            done.count,
            done.skipped
        );
        return Ok(ExitCode::from(1));
    }
    tracing::debug!("{} articles summarized", done.count);
    Ok(ExitCode::SUCCESS)
}

fn write_text(
    out: &mut impl Write,
    article: &Article,
    summary: &Summary,
    index: usize,
) -> io::Result<()> {
    if index > 0 {
        writeln!(out)?;
    }
    writeln!(out, "{}", article.title)?;
    let mut meta: Vec<String> = Vec::new();
    if let Some(d) = article.date {
        meta.push(d.to_string());
    }
    if let Some(s) = &article.source {
        meta.push(s.clone());
    }
    meta.push(article.origin.clone());
    writeln!(out, "{}", meta.join(" · "))?;
    writeln!(out)?;
    for s in &summary.sentences {
        writeln!(out, "  {}", s.text)?;
    }
    Ok(())
}

mod edition;
mod model;
mod run;
mod send;
mod subscribers;
