//! List health through the real binary: VERP envelope senders seen by a
//! real SMTP server; bounces, complaints and unsubscribe requests imported
//! from a Maildir and an mbox written from the formats' documentation
//! (`tests/fixtures/bounces/README.md`); `digest run` importing before it
//! sends and skipping who bounced; double opt-in on the subscribe and
//! confirm pages, driven in headless Chromium; the confirmation limits
//! under a burst.

use crate::support;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{
    confirm_link, digest, get, http, post, root, succeeded, text, Browser, Serve, Server as Smtp,
};

mod bounces;
mod consent;
mod forged;
mod readers;
mod sign_up;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(root().join("tests/fixtures/bounces").join(name)).unwrap()
}

/// What the SMTP server saw for one subscriber.
#[derive(Clone)]
struct Sent {
    verp: String,
    token: String,
    message_id: String,
}

/// A fixture with its placeholders filled for `rcpt`.
fn fill(name: &str, rcpt: &str, sent: &Sent, unique: &str) -> String {
    fixture(name)
        .replace("@@VERP@@", &sent.verp)
        .replace("@@TOKEN@@", &sent.token)
        .replace("@@RCPT@@", rcpt)
        .replace("@@MESSAGE_ID@@", &sent.message_id)
        .replace("@@UNIQUE@@", unique)
}

/// A list with a loopback SMTP server and `subscribe_limit_per_hour`, and
/// one active subscriber (so the database exists for `serve`).
fn site_with_smtp(limit: u32) -> (tempfile::TempDir, Smtp) {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&[]);
    write_config(
        dir.path(),
        &format!(
            "smtp_url = \"{}\"\nsubscribe_limit_per_hour = {limit}\n",
            smtp.url()
        ),
    );
    add(dir.path(), "already@example.org");
    (dir, smtp)
}

fn write_config(dir: &Path, extra: &str) {
    std::fs::write(
        dir.join("digest.toml"),
        format!(
            "from = \"Daily Digest <digest@example.com>\"\nmax_edition_age_days = 100000\ninputs = [\"{}\"]\n\
             bounce_address = \"bounces@example.com\"\nunsubscribe_mailto = \"unsubscribe@example.com\"\n{extra}",
            root().join("examples").display()
        ),
    )
    .unwrap();
}

fn add(dir: &Path, email: &str) {
    let args = ["subscribers", "add", email];
    succeeded(digest(dir).args(args).output().unwrap(), &args);
}

/// Subscribers by address, from `subscribers list --format json`.
fn list(dir: &Path) -> HashMap<String, serde_json::Value> {
    let args = ["subscribers", "list", "--format", "json"];
    let out = succeeded(digest(dir).args(args).output().unwrap(), &args);
    let v: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    v.into_iter()
        .map(|s| (s["email"].as_str().unwrap().to_owned(), s))
        .collect()
}

fn status(list: &HashMap<String, serde_json::Value>, email: &str) -> String {
    list[email]["status"].as_str().unwrap().to_owned()
}

fn maildir(dir: &Path) -> PathBuf {
    let m = dir.join("maildir");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(m.join(sub)).unwrap();
    }
    m
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Sends the 2022-03-14 edition to `emails` through a loopback SMTP server
/// and returns what each message's envelope and Message-ID were.
fn send_and_read_envelopes(dir: &Path, emails: &[&str]) -> HashMap<String, Sent> {
    let smtp = Smtp::start(&[]);
    let args = ["send", "--date", "2022-03-14", "--smtp", &smtp.url()];
    succeeded(digest(dir).args(args).output().unwrap(), &args);
    let got = smtp.received();
    assert_eq!(got.len(), emails.len());
    let mut out = HashMap::new();
    for m in got {
        let rcpt = m.rcpt_tos[0].clone();
        let token = m
            .mail_from
            .strip_prefix("bounces+")
            .and_then(|t| t.strip_suffix("@example.com"))
            .unwrap_or_else(|| panic!("envelope sender {} is not VERP", m.mail_from))
            .to_owned();
        assert_eq!(token.len(), 20, "{}", m.mail_from);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        // The From header stays the list's address; the unsubscribe mailto
        // carries the same token.
        let from = m.raw.lines().find(|l| l.starts_with("From: ")).unwrap();
        assert!(
            from.contains("Daily Digest") && from.ends_with("<digest@example.com>"),
            "{from}"
        );
        assert!(
            m.raw.replace("\r\n ", " ").contains(&format!(
                "<mailto:unsubscribe@example.com?subject=unsubscribe%20{token}>"
            )),
            "{}",
            m.raw
        );
        out.insert(
            rcpt,
            Sent {
                verp: m.mail_from.clone(),
                token,
                message_id: m.message_id.clone(),
            },
        );
    }
    let tokens: std::collections::HashSet<&str> = out.values().map(|s| s.token.as_str()).collect();
    assert_eq!(
        tokens.len(),
        emails.len(),
        "every subscriber has their own token"
    );
    out
}

/// A subscriber's VERP token, as the store keeps it.
fn verp_token(dir: &Path, email: &str) -> String {
    support::db_text(
        dir,
        "SELECT bounce_token FROM subscribers WHERE email = $1",
        &[email],
    )
}

/// What a subscriber's bounce carries before any digest went out: their
/// VERP envelope sender, and no Message-ID of ours.
fn verp_only(dir: &Path, email: &str) -> Sent {
    let token = verp_token(dir, email);
    Sent {
        verp: format!("bounces+{token}@example.com"),
        token,
        message_id: "<old-message@example.com>".into(),
    }
}

/// `digest run` for 2022-03-14 through `smtp`; its report.
fn run_and_report(d: &Path, smtp: &str) -> serde_json::Value {
    let args = ["run", "--date", "2022-03-14", "--smtp", smtp, "--force"];
    succeeded(digest(d).args(args).output().unwrap(), &args);
    serde_json::from_str(&std::fs::read_to_string(d.join("run-report.json")).unwrap()).unwrap()
}

/// Waits for the SMTP server to have received `n` messages.
fn wait_for_mail(smtp: &Smtp, n: usize) -> Vec<support::Received> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = smtp.received();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a message is the welcome after confirming.
fn is_welcome(m: &support::Received) -> bool {
    m.raw.contains("\nSubject: Welcome to ")
}

/// A message to `to` from `from` with `headers` and `body`.
fn message(from: &str, to: &str, headers: &str, body: &str, unique: &str) -> String {
    format!(
        "From: {from}\nTo: {to}\nMessage-ID: <{unique}@mail.example.org>\nDate: Mon, 14 Mar 2022 09:00:00 +0000\n{headers}\n{body}\n"
    )
}
