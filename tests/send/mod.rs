//! `digest send` against a real SMTP server on 127.0.0.1 (aiosmtpd, started
//! by each test), a real SQLite file, and the real binary: delivery, TLS and
//! login, faults, and a send killed with SIGKILL halfway.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{python, root, text, Server};

mod delivery;
mod failures;
mod transports;

/// A working directory with a digest.toml, a database and subscribers.
struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new(extra_config: &str) -> Site {
        let dir = tempfile::tempdir().unwrap();
        let mut config: toml::Table = toml::from_str(&format!(
            "inputs = [{:?}]\nretry_base_ms = 50\nconcurrency = 2\nmax_edition_age_days = 100000\nfrom = \"Daily Digest <digest@news.example.com>\"\n",
            root().join("examples").display().to_string()
        ))
        .unwrap();
        config.extend(toml::from_str::<toml::Table>(extra_config).unwrap());
        std::fs::write(
            dir.path().join("digest.toml"),
            toml::to_string(&config).unwrap(),
        )
        .unwrap();
        Site { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn digest(&self) -> Command {
        support::digest(self.path())
    }

    fn subscribe(&self, n: usize) -> Vec<String> {
        let emails: Vec<String> = (1..=n)
            .map(|i| format!("reader{i:04}@example.com"))
            .collect();
        let csv: String = emails
            .iter()
            .enumerate()
            .map(|(i, e)| format!("{e},Reader Nº{}\n", i + 1))
            .collect();
        std::fs::write(self.path().join("subs.csv"), csv).unwrap();
        let out = self
            .digest()
            .args(["subscribers", "import", "subs.csv"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        emails
    }

    fn send(&self, args: &[&str]) -> Output {
        self.digest()
            .args(["send", "--date", "2022-03-14"])
            .args(args)
            .output()
            .unwrap()
    }
}

fn summary(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)))
}

use support::per_recipient;
