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
use crate::config::{Config, ConfigError};
use crate::ingest::{Ingest, Input};
use crate::summarize::{Budget, Extractive, Summarizer, Summary};

/// Turn each day's news articles into a short digest.
#[derive(Debug, Parser)]
#[command(name = "digest", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Settings file [default: ./digest.toml if present]. Every key can also
    /// be set as DIGEST_<KEY> in the environment.
    #[arg(long, global = true, value_name = "FILE", env = "DIGEST_CONFIG")]
    pub config: Option<PathBuf>,

    /// More log output on stderr (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

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
    /// A JSON array of {id, headline, date, source, url, summary, sentences}.
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
    if err
        .chain()
        .any(|e| e.downcast_ref::<ConfigError>().is_some())
    {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.config.as_deref(), std::env::vars())?;
    match cli.command {
        Command::Summarize(args) => summarize(&config, args),
    }
}

/// What `summarize --format json` writes for each article.
#[derive(Serialize)]
struct ArticleSummary<'a> {
    id: &'a str,
    headline: &'a str,
    date: Option<chrono::NaiveDate>,
    source: Option<&'a str>,
    url: Option<&'a str>,
    summary: String,
    sentences: &'a Summary,
}

fn summarize(config: &Config, args: SummarizeArgs) -> anyhow::Result<ExitCode> {
    let budget = Budget {
        sentences: args
            .sentences
            .map_or(config.summary_sentences, |n| n as usize),
        words: args.words.unwrap_or(config.summary_words),
    };
    let inputs: Vec<Input> = if args.jsonl {
        vec![Input::Stdin]
    } else if args.paths.is_empty() {
        config
            .inputs
            .iter()
            .map(|p| Input::Path(p.clone()))
            .collect()
    } else {
        args.paths.iter().map(|p| Input::parse(p)).collect()
    };
    let summarizer = Extractive::new(config.extractive.clone());
    tracing::info!("summarizing with the {} summarizer", summarizer.name());
    let stdout = io::stdout().lock();
    let mut out = BufWriter::new(stdout);
    let mut skipped = 0usize;
    let mut count = 0usize;
    for item in Ingest::new(inputs) {
        let article = match item {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!("skipped {e}");
                skipped += 1;
                continue;
            }
        };
        let summary = match summarizer.summarize(&article, budget) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("skipped {}: {e}", article.origin);
                skipped += 1;
                continue;
            }
        };
        if args.jsonl {
            serde_json::to_writer(
                &mut out,
                &serde_json::json!({ "id": article.id, "summary": summary.lines() }),
            )?;
            out.write_all(b"\n")?;
        } else {
            match args.format {
                OutputFormat::Text => write_text(&mut out, &article, &summary, count)?,
                OutputFormat::Json => {
                    out.write_all(if count == 0 { b"[\n" } else { b",\n" })?;
                    let record = ArticleSummary {
                        id: &article.id,
                        headline: &article.title,
                        date: article.date,
                        source: article.source.as_deref(),
                        url: article.url.as_deref(),
                        summary: summary.lines(),
                        sentences: &summary,
                    };
                    serde_json::to_writer_pretty(&mut out, &record)?;
                }
            }
        }
        count += 1;
    }
    if args.format == OutputFormat::Json && !args.jsonl {
        out.write_all(if count == 0 { b"[]\n" } else { b"\n]\n" })?;
    }
    out.flush().context("writing summaries")?;
    if skipped > 0 {
        tracing::warn!("{count} articles summarized, {skipped} skipped");
        return Ok(ExitCode::from(1));
    }
    tracing::debug!("{count} articles summarized");
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
