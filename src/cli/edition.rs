//! `digest edition`: the editor's desk on the command line. The changes
//! themselves are the pipeline's; here are the arguments, `$EDITOR` and
//! what is printed.

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;

use super::{EditionCommand, ShowFormat};
use dailydigest::pipeline::{document, Change, Edited, Pipeline};
use dailydigest::render;

pub(super) fn edition(pipeline: Pipeline, cmd: EditionCommand) -> anyhow::Result<ExitCode> {
    let day = |d: Option<chrono::NaiveDate>| d.unwrap_or_else(|| pipeline.today());
    let change = |date: Option<chrono::NaiveDate>, change: Change| -> anyhow::Result<ExitCode> {
        let date = day(date);
        let stored = pipeline.change(date, &change)?;
        eprintln!(
            "the edition of {date} is now version {} ({} stories)",
            stored.version,
            stored.edition.stories.len()
        );
        Ok(ExitCode::SUCCESS)
    };
    match cmd {
        EditionCommand::Build { edition, rebuild } => {
            pipeline.renderer()?;
            let date = day(edition.date.date);
            let (stored, skipped) =
                pipeline.build_stored(date, pipeline.inputs(&edition.inputs), rebuild)?;
            eprintln!(
                "the edition of {date}, version {}: {} stories; `digest edition show --date {date}` shows it",
                stored.version,
                stored.edition.stories.len()
            );
            let told = pipeline.notify_editors_of(date)?;
            if told > 0 {
                eprintln!("{told} editors told it awaits approval");
            }
            Ok(if skipped > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        EditionCommand::Show { date, format } => {
            let stored = pipeline.stored(day(date.date))?;
            let renderer = pipeline.renderer()?;
            let recipient = pipeline.preview_recipient();
            let body = match format {
                ShowFormat::Text => {
                    let r = renderer.render(&stored.edition, &recipient)?;
                    format!("Subject: {}\n\n{}", r.subject, r.text)
                }
                ShowFormat::Html => renderer.render(&stored.edition, &recipient)?.html,
                ShowFormat::Markdown => {
                    renderer.render_one(render::MARKDOWN, &stored.edition, &recipient)?
                }
                ShowFormat::Json => serde_json::to_string_pretty(&stored.edition)? + "\n",
                ShowFormat::List => {
                    let mut out = format!(
                        "edition of {}, version {}{}\n",
                        stored.date,
                        stored.version,
                        match &stored.approved {
                            Some((by, at)) => format!(", approved by {by} at {at}"),
                            None => String::new(),
                        }
                    );
                    for s in &stored.edition.stories {
                        // Its reports: the named sources, and how many more
                        // name none.
                        let named = std::iter::once(&s.source)
                            .chain(s.also_reported_by.iter().map(|r| &r.source))
                            .filter(|n| !n.is_empty())
                            .count();
                        let unnamed = 1 + s.also_reported_by.len() - named;
                        let mut reports = s.sources.join(", ");
                        if unnamed > 0 {
                            if !reports.is_empty() {
                                reports.push_str(" + ");
                            }
                            reports.push_str(&format!(
                                "{unnamed} unnamed report{}",
                                if unnamed > 1 { "s" } else { "" }
                            ));
                        }
                        out.push_str(&format!(
                            "{:>3}. {:<5} {}  [{reports}]\n",
                            s.rank,
                            if s.full { "full" } else { "brief" },
                            s.headline,
                        ));
                    }
                    out
                }
            };
            let mut out = io::stdout().lock();
            out.write_all(body.as_bytes())?;
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        EditionCommand::Edit { date } => edit(&pipeline, day(date.date)),
        EditionCommand::Drop { n, date } => change(date.date, Change::Drop(n)),
        EditionCommand::Move { n, to, date } => change(date.date, Change::Move { rank: n, to }),
        EditionCommand::Headline { n, text, date } => change(date.date, Change::Headline(n, text)),
        EditionCommand::Summary { n, text, date } => change(date.date, Change::Summary(n, text)),
        EditionCommand::Merge { n, m, date } => change(date.date, Change::Merge(n, m)),
        EditionCommand::Split { n, date } => change(date.date, Change::Split(n)),
        EditionCommand::Approve { date } => {
            let date = day(date.date);
            let stored = pipeline.approve(date, true)?;
            eprintln!(
                "the edition of {date} (version {}) is approved; the next send or run sends it",
                stored.version
            );
            Ok(ExitCode::SUCCESS)
        }
        EditionCommand::Unapprove { date } => {
            let date = day(date.date);
            pipeline.approve(date, false)?;
            eprintln!("the edition of {date} is no longer approved");
            Ok(ExitCode::SUCCESS)
        }
        EditionCommand::Log { date } => {
            let mut out = io::stdout().lock();
            for e in pipeline.edition_log(day(date.date))? {
                writeln!(out, "{}  {}  {}", e.at, e.user, e.change)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Opens `$VISUAL` / `$EDITOR` on the edition as a document and saves what
/// comes back. On a terminal an invalid document is reopened with the error
/// at the top; elsewhere it is kept aside and the error printed. Nothing
/// changes unless a valid document is saved.
fn edit(pipeline: &Pipeline, date: chrono::NaiveDate) -> anyhow::Result<ExitCode> {
    let stored = pipeline.editable(date)?;
    let editor = std::env::var("VISUAL")
        .ok()
        .or_else(|| std::env::var("EDITOR").ok())
        .filter(|e| !e.trim().is_empty())
        .unwrap_or_else(|| "vi".into());
    // A folder of our own (mode 0700, a random name) and a file created in
    // it exclusively (0600): no other user of the machine can plant, read
    // or swap the draft.
    let folder = tempfile::Builder::new()
        .prefix("digest-edition-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .tempdir()
        .context("creating a private folder for the draft")?;
    let path = folder.path().join(format!("edition-{date}.toml"));
    {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
    }
    // A draft kept for the editor after a failure: the folder stays, the
    // file readable by its owner only.
    let keep = |folder: tempfile::TempDir| -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        let _ = folder.keep();
        path.clone()
    };
    let mut text = document(&stored);
    let interactive = io::stdin().is_terminal();
    loop {
        std::fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("sh")
            .arg(&path)
            .status()
            .with_context(|| format!("running the editor {editor:?}"))?;
        if !status.success() {
            let kept = keep(folder);
            eprintln!("digest: the editor {editor:?} exited with {status}; nothing was changed (your text is in {})", kept.display());
            return Ok(ExitCode::from(1));
        }
        let edited = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        if edited == text {
            eprintln!("nothing was changed");
            return Ok(ExitCode::SUCCESS);
        }
        let content: String = edited
            .lines()
            .filter(|l| !l.starts_with("# ERROR:"))
            .map(|l| format!("{l}\n"))
            .collect();
        let saved = match pipeline.save_document(&stored, &content) {
            Ok(saved) => saved,
            Err(e) => {
                let kept = keep(folder);
                return Err(anyhow::Error::new(e).context(format!(
                    "nothing was changed; your version is kept in {}",
                    kept.display()
                )));
            }
        };
        match saved {
            Edited::Saved(saved, change) => {
                eprintln!(
                    "the edition of {date} is now version {}: {change}",
                    saved.version
                );
                return Ok(ExitCode::SUCCESS);
            }
            Edited::Unchanged => {
                eprintln!("nothing was changed");
                return Ok(ExitCode::SUCCESS);
            }
            Edited::Invalid(error) if interactive => {
                text = format!(
                    "# ERROR: {}\n# ERROR: fix it and save again, or quit without saving to change nothing.\n{content}",
                    error.replace('\n', " ")
                );
            }
            Edited::Invalid(error) => {
                let kept = keep(folder);
                eprintln!(
                    "digest: the edited edition is not valid: {error}\nnothing was changed; your version is kept in {}",
                    kept.display()
                );
                return Ok(ExitCode::from(1));
            }
        }
    }
}
