//! The command line: parse (`args.rs`), open the pipeline with who runs it
//! and how its progress is shown, call one pipeline method, print what
//! comes back, and map the outcome to an exit code.
//!
//! stdout carries the product (summaries, JSON); everything else — warnings,
//! progress, which summarizer ran — goes to stderr through `tracing`.
//! Exit codes: 0 everything done, 1 partial failure (some input skipped),
//! 2 usage or configuration error, 75 another send or run holds the lock.

mod args;
mod dkim;
mod edition;
mod model;
mod preview;
mod progress;
mod run;
mod send;
mod subscribers;
mod summarize;

use std::io::{self, IsTerminal};
use std::process::ExitCode;

use dailydigest::config::{Config, ConfigError};
use dailydigest::pipeline::{Access, Pipeline, SendOutcome, Verdict};
use dailydigest::render::TemplateError;

pub(crate) use args::*;

/// The exit status of a command another send or run holds the lock for
/// (`EX_TEMPFAIL`: try again later).
pub(crate) const EXIT_LOCKED: u8 = 75;

/// The exit status of a send or run that went as `verdict` says.
fn exit_code(verdict: Verdict) -> u8 {
    match verdict {
        Verdict::Done => 0,
        Verdict::Partial => 1,
        Verdict::Misconfigured => 2,
        Verdict::Locked => EXIT_LOCKED,
    }
}

/// Who runs the command, for the edition log: `$USER`, else `$LOGNAME`,
/// else the login name of the process's user.
fn user() -> String {
    ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.trim().is_empty()))
        .or_else(login_name)
        .unwrap_or_else(|| "unknown".into())
}

/// The name of the process's user in the password database.
fn login_name() -> Option<String> {
    // SAFETY: getpwuid returns a pointer into static storage (or null),
    // read at once; nothing else in this process calls it concurrently.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_str()
            .ok()
            .map(str::to_owned)
    }
}

/// The pipeline for a command: the configured database opened as
/// `access` allows (or none: in memory), with the user's name, the SMTP
/// password from the environment, and progress bars on a terminal.
fn open(config: Config, access: Option<Access>) -> anyhow::Result<Pipeline> {
    let pipeline = match access {
        Some(access) => {
            Pipeline::open_with(config, access, std::env::var("DIGEST_DB_PASSWORD").ok())?
        }
        None => Pipeline::in_memory(config)?,
    };
    Ok(pipeline
        .with_user(user())
        .with_smtp_password(std::env::var("DIGEST_SMTP_PASSWORD").ok())
        .with_watcher(progress::watcher()))
}

/// Sets up `tracing` on stderr from -v/-q (RUST_LOG, when set, wins).
pub(crate) fn init_logging(cli: &Cli) {
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
pub(crate) fn report_error(err: &anyhow::Error) -> ExitCode {
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
            || e.downcast_ref::<dailydigest::pipeline::Error>()
                .is_some_and(dailydigest::pipeline::Error::is_config)
    }) {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

/// Runs a parsed command line.
pub(crate) fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let mut config = Config::load(cli.config.as_deref(), std::env::vars())?;
    if let Some(db) = cli.db {
        config.db = db;
    }
    if let Some(choice) = cli.summarizer {
        config.summarizer = choice.into();
    }
    if let Some(models) = cli.models {
        config.models = models;
    }
    if let Some(embedder) = cli.embedder {
        config.embedder = embedder.parse().map_err(|message| ConfigError::Invalid {
            key: "embedder",
            message,
        })?;
    }
    match cli.command {
        Command::Summarize(args) => summarize::summarize(open(config, None)?, args),
        Command::Preview(args) => {
            // The database, when there is one, adds fetched articles and subscribers.
            let access = (config.db.file().is_none_or(|f| f.is_file())
                || args.subscriber.is_some())
            .then_some(Access::ReadOnly);
            preview::preview(&open(config, access)?, args)
        }
        Command::Init(args) => preview::init(&args.dir),
        Command::Templates(TemplatesCommand::Check) => preview::templates_check(&config),
        // Only adding subscribers and fetching create a database; the rest
        // refuse to start an empty one (a command run in the wrong folder).
        Command::Send(args) => send::send(open(config, Some(Access::Existing))?, args),
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
            subscribers::subscribers(open(config, Some(access))?, cmd)
        }
        Command::Fetch { json } => run::fetch(&open(config, Some(Access::Create))?, json),
        Command::Run(args) => run::run(open(config, Some(Access::Existing))?, args),
        Command::Serve { listen } => {
            dailydigest::serve::serve(open(config, Some(Access::Existing))?, listen)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Edition(cmd) => {
            let access = match cmd {
                EditionCommand::Show { .. } | EditionCommand::Log { .. } => Access::ReadOnly,
                _ => Access::Existing,
            };
            edition::edition(open(config, Some(access))?, cmd)
        }
        Command::Bounces(BouncesCommand::Import { paths, json }) => {
            run::import_bounces(&open(config, Some(Access::Existing))?, &paths, json)
        }
        Command::Db(DbCommand::Copy { from, to, json }) => {
            run::copy_database(&config, from, to, json)
        }
        Command::Dkim(DkimCommand::Keygen {
            selector,
            algorithm,
            out,
        }) => dkim::keygen(&config, &selector, algorithm, out),
        Command::Model(ModelCommand::Info) => model::info(&config),
        Command::Model(ModelCommand::Check) => model::check(&config),
        Command::Model(ModelCommand::Embed { input, max_tokens }) => {
            model::embed_texts(&config, input.as_deref(), max_tokens)
        }
    }
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
