//! Helpers shared by the integration tests: the binary, a real SMTP server
//! (aiosmtpd, `tests/smtp_server.py`) and headless Chromium.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The binary, run in `dir` with no user config or DIGEST_* variables.
pub fn digest(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_digest"));
    cmd.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("DIGEST_") || k == "RUST_LOG" {
            cmd.env_remove(k);
        }
    }
    cmd
}

/// Headless Chromium (Debian's `chromium`); the tests that need it fail
/// with an install hint when it is missing.
pub fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output() {
            if out.status.success() {
                return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            }
        }
    }
    panic!("headless Chromium is needed for this test: `apt-get install chromium` (scripts/test installs it)");
}

/// Flags for Chromium on a machine with no network and no display; the
/// caller adds `--user-data-dir` and what to do.
pub const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// A Python that has aiosmtpd (Debian's python3-aiosmtpd, or pip's).
pub fn python() -> String {
    for candidate in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return candidate.to_owned();
        }
    }
    panic!("these tests need Python with aiosmtpd: `apt-get install python3-aiosmtpd` or `pip install aiosmtpd` (scripts/test installs it)");
}

pub struct Server {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message the server accepted.
pub struct Received {
    pub rcpt_tos: Vec<String>,
    pub message_id: String,
    pub defects: Vec<String>,
    pub tls: bool,
    pub auth: bool,
    pub raw: String,
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(python())
            .arg(root().join("tests/smtp_server.py"))
            .arg("--dir")
            .arg(dir.path().join("mail"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .unwrap_or_else(|| panic!("server said {line:?}"))
            .parse()
            .unwrap();
        Server { child, port, dir }
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub fn received(&self) -> Vec<Received> {
        let mut out = Vec::new();
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("mail")) else {
            return out;
        };
        let mut paths: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        for p in paths {
            let meta: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            out.push(Received {
                rcpt_tos: meta["rcpt_tos"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect(),
                message_id: meta["message_id"].as_str().unwrap_or("").to_owned(),
                defects: meta["defects"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_string())
                    .collect(),
                tls: meta["tls"].as_bool().unwrap(),
                auth: meta["auth"].as_bool().unwrap(),
                raw: std::fs::read_to_string(p.with_extension("eml")).unwrap(),
            });
        }
        out
    }
}
