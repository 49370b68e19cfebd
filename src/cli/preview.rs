//! `digest preview`, `digest templates check` and `digest init`: the day's
//! edition as it would be sent, and the files to edit.

use std::io::{self, Write};
use std::process::ExitCode;

use anyhow::Context;

use super::{PreviewArgs, PreviewFormat};
use dailydigest::config::Config;
use dailydigest::pipeline::Pipeline;
use dailydigest::render;

pub(super) fn templates_check(config: &Config) -> anyhow::Result<ExitCode> {
    let pipeline = Pipeline::in_memory(config.clone())?;
    let renderer = pipeline.renderer()?;
    let mut out = io::stdout().lock();
    for (name, origin) in renderer.origins() {
        writeln!(out, "ok  {name}  ({origin})")?;
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn preview(pipeline: &Pipeline, args: PreviewArgs) -> anyhow::Result<ExitCode> {
    let renderer = pipeline.renderer()?;
    let date = args.edition.date.date.unwrap_or_else(|| pipeline.today());
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

pub(super) fn init(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    for path in dailydigest::pipeline::init(dir)? {
        eprintln!("wrote {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
