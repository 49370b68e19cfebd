//! `digest summarize`: summaries of articles, as text, JSON or JSON Lines.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use super::{OutputFormat, SummarizeArgs};
use dailydigest::article::Article;
use dailydigest::config::Budget;
use dailydigest::ingest::Input;
use dailydigest::pipeline::Pipeline;
use dailydigest::summarize::Summary;

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

pub(super) fn summarize(pipeline: Pipeline, args: SummarizeArgs) -> anyhow::Result<ExitCode> {
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
