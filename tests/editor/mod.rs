//! The editor's desk through the real binary: build, show, every edit verb,
//! `$EDITOR` (a script, and vim in a real terminal under tmux), edits
//! refused mid-send or from an old version, approval with the editors'
//! notice and the deadline, and what reaches a real SMTP server.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{digest, root, text, Server as Smtp};

mod approval;
mod drafts;
mod terminal;
mod verbs;

const DATE: &str = "2022-03-14";

/// The examples these tests were written against: the seed, a second
/// source on the same talks, markets, science and sport (four stories).
const EXAMPLES: [&str; 5] = [
    "2022-03-14-football.txt",
    "2022-03-14-heatwave-study.html",
    "2022-03-14-markets.json",
    "2022-03-14-ukraine-talks-aljazeera.txt",
    "2022-03-14-ukraine-talks-wire.md",
];

fn site(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let inputs: Vec<String> = EXAMPLES
        .iter()
        .map(|f| {
            format!(
                "{:?}",
                root().join("examples").join(f).display().to_string()
            )
        })
        .collect();
    std::fs::write(
        dir.path().join("digest.toml"),
        format!(
            "inputs = [{}]\nmax_edition_age_days = 100000\nretry_base_ms = 20\n{extra}\n",
            inputs.join(", ")
        ),
    )
    .unwrap();
    for who in ["ann@example.com", "bob@example.com", "cat@example.com"] {
        ok(dir.path(), &["subscribers", "add", who]);
    }
    dir
}

fn run(dir: &Path, args: &[&str]) -> Output {
    digest(dir)
        .env("USER", "eddie")
        .args(args)
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> Output {
    support::succeeded(run(dir, args), args)
}

fn edition_json(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &ok(
            dir,
            &["edition", "show", "--date", DATE, "--format", "json"],
        )
        .stdout,
    )
    .unwrap()
}

fn headlines(dir: &Path) -> Vec<String> {
    edition_json(dir)["stories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["headline"].as_str().unwrap().to_owned())
        .collect()
}

/// An `$EDITOR` that runs a shell script on the file.
fn editor_script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nset -e\nf=\"$1\"\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}
