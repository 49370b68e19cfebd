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

use support::{digest, http, root, succeeded, text, Browser, Serve, Server as Smtp};

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

#[test]
fn bounces_complaints_and_unsubscribes_are_imported_once_and_the_rest_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(d, "soft_bounce_limit = 2\n");
    let people = [
        "postfix@example.org",
        "exim@example.org",
        "sendmail@example.org",
        "exchange@example.org",
        "gmail@example.org",
        "complains@example.org",
        "redacted@example.org",
        "leaves@example.org",
        "soft@example.org",
        "recovers@example.org",
        "stays@example.org",
    ];
    for p in people {
        add(d, p);
    }
    let sent = send_and_read_envelopes(d, &people);
    let m = maildir(d);
    let n = std::cell::Cell::new(0);
    let put = |file: &str, msg: String| {
        n.set(n.get() + 1);
        let name = format!("16472376{:02}.M1P1.mx.{file}", n.get());
        std::fs::write(m.join("new").join(name), msg).unwrap();
    };
    for (i, (fixture_name, rcpt)) in [
        ("postfix-dsn-5.1.1.eml", "postfix@example.org"),
        ("exim-text-550.eml", "exim@example.org"),
        ("sendmail-text-550.eml", "sendmail@example.org"),
        ("arf-abuse.eml", "complains@example.org"),
        ("arf-redacted.eml", "redacted@example.org"),
        ("unsubscribe-request.eml", "leaves@example.org"),
        // A delay warning, then the final temporary failure of the same
        // edition: one temporary failure in a row, still active.
        ("postfix-dsn-delayed-4.4.1.eml", "soft@example.org"),
        ("postfix-text-4.2.2.eml", "soft@example.org"),
        ("postfix-dsn-delayed-4.4.1.eml", "recovers@example.org"),
        ("postfix-dsn-delivered.eml", "recovers@example.org"),
    ]
    .into_iter()
    .enumerate()
    {
        put(
            fixture_name,
            fill(fixture_name, rcpt, &sent[rcpt], &format!("u{i}")),
        );
    }
    let stranger = Sent {
        verp: "bounces@example.com".into(),
        token: String::new(),
        message_id: "<nothing@example.com>".into(),
    };
    put(
        "not-a-bounce.eml",
        fill("not-a-bounce.eml", "x", &stranger, "n1"),
    );
    put(
        "bounce-without-code.eml",
        fill("bounce-without-code.eml", "x", &stranger, "n2"),
    );

    // Two more in an mbox (RFC 4155, mboxrd quoting).
    let mut mbox = String::new();
    for (fixture_name, rcpt) in [
        ("gmail-text-5.1.1.eml", "gmail@example.org"),
        ("exchange-text-5.1.10.eml", "exchange@example.org"),
    ] {
        mbox.push_str("From MAILER-DAEMON Mon Mar 14 06:01:11 2022\n");
        for line in fill(fixture_name, rcpt, &sent[rcpt], "mbox").lines() {
            if line.trim_start_matches('>').starts_with("From ") {
                mbox.push('>');
            }
            mbox.push_str(line);
            mbox.push('\n');
        }
        mbox.push('\n');
    }
    std::fs::write(d.join("bounces.mbox"), &mbox).unwrap();

    let out = digest(d)
        .args(["bounces", "import", "maildir", "bounces.mbox", "--json"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one is left for a person: {stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["messages"], 14, "{report}");
    assert_eq!(report["hard_bounces"], 5, "{report}");
    assert_eq!(report["soft_bounces"], 3, "{report}");
    assert_eq!(report["bounced"], 5, "{report}");
    assert_eq!(report["complaints"], 2, "{report}");
    assert_eq!(report["unsubscribes"], 1, "{report}");
    assert_eq!(report["delivered"], 1, "{report}");
    assert_eq!(report["duplicates"], 0, "{report}");
    let left = report["unrecognised"].as_array().unwrap();
    assert_eq!(left.len(), 1, "{report}");
    assert_eq!(
        report["not_reports"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    // A reader's reply that mentions "550" is not a report: left alone.
    assert!(
        stderr.contains("not-a-bounce.eml: not a report: a message from reader@example.org"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bounce-without-code.eml: a bounce without a status code"),
        "{stderr}"
    );

    let l = list(d);
    for p in ["postfix", "exim", "sendmail", "exchange", "gmail"] {
        let e = format!("{p}@example.org");
        assert_eq!(status(&l, &e), "bounced", "{e}: {}", l[&e]);
        assert_eq!(l[&e]["bounces"], 1);
        assert!(
            l[&e]["last_bounce"].as_str().unwrap().starts_with("5.1."),
            "{}",
            l[&e]
        );
    }
    assert!(l["exchange@example.org"]["last_bounce"]
        .as_str()
        .unwrap()
        .contains("5.1.10"));
    assert_eq!(status(&l, "complains@example.org"), "complained");
    assert_eq!(status(&l, "redacted@example.org"), "complained");
    assert_eq!(status(&l, "leaves@example.org"), "unsubscribed");
    assert_eq!(status(&l, "soft@example.org"), "active");
    assert_eq!(
        l["soft@example.org"]["soft_bounces"], 1,
        "the same edition counts once"
    );
    assert_eq!(l["soft@example.org"]["bounces"], 2);
    assert_eq!(status(&l, "recovers@example.org"), "active");
    assert_eq!(
        l["recovers@example.org"]["soft_bounces"], 0,
        "a delivery resets the count"
    );
    assert_eq!(status(&l, "stays@example.org"), "active");
    assert_eq!(l["stays@example.org"]["bounces"], 0);

    // The processed ones moved to cur/ (seen), the reply too but unseen
    // (for a person to read); the bounce that can never be processed is
    // moved aside to .Unprocessed/, so no later import reads it again.
    assert!(names(&m.join("new")).is_empty());
    let cur = names(&m.join("cur"));
    assert_eq!(cur.len(), 11, "{cur:?}");
    let (seen, unseen): (Vec<&String>, Vec<&String>) =
        cur.iter().partition(|n| n.ends_with(":2,S"));
    assert_eq!(seen.len(), 10, "{cur:?}");
    assert!(
        unseen[0].contains("not-a-bounce.eml") && unseen[0].ends_with(":2,"),
        "{cur:?}"
    );
    let aside = names(&m.join(".Unprocessed/cur"));
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].contains("bounce-without-code.eml"), "{aside:?}");
    let cur: Vec<String> = seen.into_iter().cloned().collect();

    // Again, with a processed copy put back into new/ under another name:
    // nothing counts twice (by Message-ID), the mbox neither.
    std::fs::copy(
        m.join("cur").join(&cur[0]),
        m.join("new/copy-of-a-processed-one"),
    )
    .unwrap();
    // A file processed before is recognised in cur/ by its Maildir name,
    // without being read again: garbling it changes nothing.
    std::fs::write(m.join("cur").join(&cur[1]), "garbled").unwrap();
    let out = digest(d)
        .args(["bounces", "import", "maildir", "bounces.mbox", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["messages"], 14, "{again}");
    assert_eq!(again["duplicates"], 14, "{again}");
    assert_eq!(again["hard_bounces"], 0, "{again}");
    assert_eq!(again["soft_bounces"], 0, "{again}");
    assert!(again["unrecognised"].as_array().unwrap().is_empty());
    assert!(again["not_reports"].as_array().unwrap().is_empty());
    assert_eq!(list(d)["soft@example.org"]["soft_bounces"], 1);
    assert!(!m.join("new/copy-of-a-processed-one").exists());

    // The edition of 2022-03-16 goes out, and soft@'s copy draws a second
    // temporary failure, with none delivered in between: the limit (2) is
    // reached and soft@ is bounced. (A date written into a report proves
    // nothing: only the Message-ID of a digest we sent counts.)
    std::fs::create_dir(d.join("later")).unwrap();
    std::fs::write(
        d.join("later/2022-03-16-harbour.txt"),
        " date 2022-03-16 The harbour authority opened a second ferry terminal on Wednesday. \
         The terminal doubles the number of crossings each day. Officials said it cost less than planned.",
    )
    .unwrap();
    let smtp = Smtp::start(&[]);
    let args = [
        "send",
        "--date",
        "2022-03-16",
        "-i",
        "later",
        "--smtp",
        &smtp.url(),
    ];
    succeeded(digest(d).args(args).output().unwrap(), &args);
    let second = smtp
        .received()
        .into_iter()
        .find(|m| m.rcpt_tos == ["soft@example.org".to_owned()])
        .expect("soft@ is still active and gets the next edition");
    assert!(second.message_id.starts_with("<digest.2022-03-16."));
    let later = Sent {
        message_id: second.message_id.clone(),
        ..sent["soft@example.org"].clone()
    };
    let f = d.join("later.eml");
    std::fs::write(
        &f,
        fill(
            "postfix-text-4.2.2.eml",
            "soft@example.org",
            &later,
            "later",
        ),
    )
    .unwrap();
    let out = digest(d)
        .args(["bounces", "import", "later.eml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let l = list(d);
    assert_eq!(
        status(&l, "soft@example.org"),
        "bounced",
        "{}",
        l["soft@example.org"]
    );
    assert_eq!(l["soft@example.org"]["soft_bounces"], 2);

    // Export shows status and bounce counts; import reads it back.
    let args = ["subscribers", "export", "--format", "csv"];
    let csv = text(&succeeded(digest(d).args(args).output().unwrap(), &args).stdout);
    assert!(
        csv.starts_with("email,name,topics,topics_only,status,bounces,last_bounce\n"),
        "{csv}"
    );
    let postfix = csv.lines().find(|l| l.starts_with("postfix@")).unwrap();
    assert!(
        postfix.starts_with("postfix@example.org,,,no,bounced,1,"),
        "{csv}"
    );
    assert!(postfix.contains("5.1.1"), "{csv}");
    assert!(
        csv.contains("complains@example.org,,,no,complained,0,"),
        "{csv}"
    );
    let table = text(
        &succeeded(
            digest(d).args(["subscribers", "list"]).output().unwrap(),
            &["subscribers", "list"],
        )
        .stdout,
    );
    assert!(table.lines().next().unwrap().contains("BOUNCES"), "{table}");
    let copy = tempfile::tempdir().unwrap();
    std::fs::write(copy.path().join("list.csv"), &csv).unwrap();
    let args = ["subscribers", "import", "list.csv"];
    succeeded(digest(copy.path()).args(args).output().unwrap(), &args);
    let restored = list(copy.path());
    assert_eq!(status(&restored, "complains@example.org"), "complained");
    // The round trip keeps the bounce record too.
    assert_eq!(restored["postfix@example.org"]["bounces"], 1);
    assert_eq!(
        restored["postfix@example.org"]["last_bounce"],
        l["postfix@example.org"]["last_bounce"]
    );
    assert_eq!(restored["soft@example.org"]["bounces"], 3);
    let args = ["subscribers", "export", "--format", "csv"];
    let again = text(&succeeded(digest(copy.path()).args(args).output().unwrap(), &args).stdout);
    assert_eq!(again, csv, "export, import, export changes nothing");
}

/// A subscriber's VERP token, as the store keeps it.
fn verp_token(dir: &Path, email: &str) -> String {
    rusqlite::Connection::open(dir.join("dailydigest.db"))
        .unwrap()
        .query_row(
            "SELECT bounce_token FROM subscribers WHERE email = ?1",
            [email],
            |r| r.get(0),
        )
        .unwrap()
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

#[test]
fn digest_run_imports_the_bounce_maildir_first_and_skips_who_bounced() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(d, "bounces_maildir = \"maildir\"\n");
    add(d, "gone@example.org");
    add(d, "here@example.org");
    let m = maildir(d);
    // gone@'s bounce carries its VERP token; the one for here@ only its
    // address (anyone could have written it): it changes nothing.
    std::fs::write(
        m.join("new/1647237600.M1P1.mx"),
        fill(
            "postfix-dsn-5.1.1.eml",
            "gone@example.org",
            &verp_only(d, "gone@example.org"),
            "run",
        ),
    )
    .unwrap();
    let address_only = Sent {
        verp: "bounces@example.com".into(),
        token: String::new(),
        message_id: "<old-message@example.com>".into(),
    };
    std::fs::write(
        m.join("new/1647237601.M1P1.mx"),
        fill(
            "postfix-dsn-5.1.1.eml",
            "here@example.org",
            &address_only,
            "forged",
        ),
    )
    .unwrap();
    let smtp = Smtp::start(&[]);
    let report = run_and_report(d, &smtp.url());
    let got = smtp.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_tos, vec!["here@example.org".to_owned()]);
    assert_eq!(report["bounces"]["hard_bounces"], 1, "{report}");
    assert_eq!(report["bounces"]["bounced"], 1, "{report}");
    let left = report["bounces"]["unrecognised"].as_array().unwrap();
    assert_eq!(left.len(), 1, "{report}");
    assert!(
        left[0]["reason"]
            .as_str()
            .unwrap()
            .contains("names an address but no message we sent"),
        "{report}"
    );
    assert_eq!(report["send"]["sent"], 1, "{report}");
    assert_eq!(status(&list(d), "gone@example.org"), "bounced");
    assert_eq!(status(&list(d), "here@example.org"), "active");
    assert!(names(&m.join("new")).is_empty());
    assert_eq!(names(&m.join(".Unprocessed/cur")).len(), 1);
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

fn confirm_link(raw: &str) -> String {
    let start = raw.find("/confirm/").expect("a confirmation link");
    let begin = raw[..start].rfind("http").unwrap();
    let end = start
        + 9
        + raw[start + 9..]
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap();
    raw[begin..end].to_owned()
}

#[test]
fn double_opt_in_in_chromium_confirms_once_and_never_tells_who_is_subscribed() {
    let (dir, smtp) = site_with_smtp(100);
    let d = dir.path();
    let serve = Serve::start(d);
    // Links point at base_url (https://digest.example.com); here the same
    // paths go to the server under test.
    let local = |link: &str| link.replace("https://digest.example.com", &serve.base);
    let browser = Browser::start();

    // The form: labelled fields, nothing reveals the hidden field.
    browser.goto(&format!("{}/subscribe", serve.base));
    let labels = browser.eval(
        "return Array.from(document.querySelectorAll('input')).map(i => [i.name, i.labels.length > 0 ? i.labels[0].textContent : '', i.type])",
    );
    assert_eq!(labels[0][0], "email");
    assert_eq!(labels[0][1], "Email address");
    assert_eq!(labels[0][2], "email");
    assert_eq!(labels[1][0], "name");
    assert_eq!(labels[2][0], "topics");
    let page = browser.text();
    assert!(page.contains("Subscribe to Daily Digest"), "{page}");
    // The bot field is off screen, hidden from screen readers and out of
    // the tab order.
    let hidden = browser.eval(
        "const f = document.getElementById('website'); return [f.getBoundingClientRect().right < 0, f.closest('[aria-hidden=true]') !== null, f.tabIndex];",
    );
    assert_eq!(hidden, serde_json::json!([true, true, -1]));

    browser.type_into("#email", "new.reader@example.org");
    browser.type_into("#name", "New Reader");
    browser.type_into("#topics", "climate, football");
    browser.click("button[type=submit]");
    let thanks = browser.text_with("Check your inbox");
    assert!(thanks.contains("Check your inbox"), "{thanks}");
    assert!(thanks.contains("new.reader@example.org"), "{thanks}");

    let got = wait_for_mail(&smtp, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_tos, vec!["new.reader@example.org".to_owned()]);
    assert!(
        got[0].mail_from.starts_with("bounces+"),
        "{}",
        got[0].mail_from
    );
    assert!(got[0]
        .raw
        .contains("Subject: Confirm your subscription to Daily Digest"));
    let link = confirm_link(&got[0].raw);
    assert!(
        link.starts_with("https://digest.example.com/confirm/"),
        "{link}"
    );
    let link = local(&link);
    let l = list(d);
    assert_eq!(status(&l, "new.reader@example.org"), "pending");

    // A pending subscriber gets no digest.
    let other = Smtp::start(&[]);
    let args = ["send", "--date", "2022-03-14", "--smtp", &other.url()];
    succeeded(digest(d).args(args).output().unwrap(), &args);
    let digests = other.received();
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0].rcpt_tos, vec!["already@example.org".to_owned()]);

    // The link shows a button; only pressing it confirms.
    browser.goto(&link);
    assert!(
        browser.text_with("Press Confirm").contains("Press Confirm"),
        "{}",
        browser.text()
    );
    assert_eq!(status(&list(d), "new.reader@example.org"), "pending");
    browser.click("button[type=submit]");
    assert!(
        browser
            .text_with("You are subscribed")
            .contains("You are subscribed"),
        "{}",
        browser.text()
    );
    let l = list(d);
    assert_eq!(status(&l, "new.reader@example.org"), "active");
    assert_eq!(l["new.reader@example.org"]["name"], "New Reader");
    assert_eq!(l["new.reader@example.org"]["topics"], "climate,football");

    // An address already on the list, and one that asked a minute ago: the
    // same page, and no mail.
    let same = |page: &str, email: &str| page.replace(email, "ADDRESS");
    for email in [
        "already@example.org",
        "new.reader@example.org",
        "NEW.reader@example.org",
    ] {
        browser.goto(&format!("{}/subscribe", serve.base));
        browser.type_into("#email", email);
        browser.click("button[type=submit]");
        let page = browser.text_with("Check your inbox");
        assert_eq!(
            same(&page, email),
            same(&thanks, "new.reader@example.org"),
            "{email}"
        );
    }
    // A new address twice in a row: one confirmation.
    for _ in 0..2 {
        browser.goto(&format!("{}/subscribe", serve.base));
        browser.type_into("#email", "twice@example.org");
        browser.click("button[type=submit]");
        assert!(browser
            .text_with("Check your inbox")
            .contains("Check your inbox"));
    }
    std::thread::sleep(Duration::from_secs(2));
    let got = wait_for_mail(&smtp, 2);
    assert_eq!(got.len(), 2, "one more confirmation, to twice@ only");
    assert_eq!(got[1].rcpt_tos, vec!["twice@example.org".to_owned()]);

    // A bad address is said so, with the form again.
    browser.goto(&format!("{}/subscribe", serve.base));
    browser.type_into("#email", "not-an-address@");
    browser.eval("document.querySelector('form').noValidate = true; return 0;");
    browser.click("button[type=submit]");
    assert!(
        browser
            .text_with("Please enter an email address")
            .contains("Please enter an email address"),
        "{}",
        browser.text()
    );

    // A bot filling the hidden field gets the same page and nothing is done.
    let resp = http()
        .post(&format!("{}/subscribe", serve.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send("email=bot-target%40example.org&name=&topics=&website=http%3A%2F%2Fspam.example")
        .unwrap();
    assert_eq!(resp.status(), 200);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(smtp.received().len(), 2);
    assert!(!list(d).contains_key("bot-target@example.org"));

    // Unconfirmed past confirm_days: the link is dead and the run purges it.
    let db = rusqlite::Connection::open(d.join("dailydigest.db")).unwrap();
    db.execute_batch(
        "UPDATE signups SET created_at = '2000-01-01T00:00:00.000Z', expires_at = '2000-01-08T00:00:00.000Z' WHERE email = 'twice@example.org';
         UPDATE subscribers SET created_at = '2000-01-01T00:00:00.000Z' WHERE email = 'twice@example.org';",
    )
    .unwrap();
    drop(db);
    let twice = local(&confirm_link(&smtp.received()[1].raw));
    let resp = http().get(&twice).call().unwrap();
    assert_eq!(resp.status(), 404);
    drop(serve);
    let report = run_and_report(d, &other.url());
    assert_eq!(report["purged_signups"], 1, "{report}");
    assert!(!list(d).contains_key("twice@example.org"));
}

#[test]
fn a_burst_of_sign_ups_from_one_client_is_held_to_the_limit() {
    let (dir, smtp) = site_with_smtp(5);
    let d = dir.path();
    let serve = Serve::start(d);
    let base = serve.base.clone();
    // 40 sign-ups for 40 different third parties at once, and 10 more for
    // one address.
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || {
                let email = if i < 40 {
                    format!("victim{i}%40example.org")
                } else {
                    "one.victim%40example.org".to_owned()
                };
                http()
                    .post(&format!("{base}/subscribe"))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .send(format!("email={email}&name=&topics="))
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let codes: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(codes.iter().filter(|&&c| c == 200).count(), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 429).count(), 45, "{codes:?}");
    std::thread::sleep(Duration::from_secs(2));
    let got = wait_for_mail(&smtp, 5);
    assert!(
        got.len() <= 5,
        "at most the allowance is mailed: {}",
        got.len()
    );
    let mut to: Vec<String> = got.iter().map(|m| m.rcpt_tos[0].clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), got.len(), "no address mailed twice: {to:?}");
}

#[test]
fn subscribers_add_confirm_mails_the_link_instead_of_subscribing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let smtp = Smtp::start(&[]);
    write_config(
        d,
        &format!(
            "smtp_url = \"{}\"\nbase_url = \"https://digest.example.com\"\n",
            smtp.url()
        ),
    );
    let args = [
        "subscribers",
        "add",
        "asked@example.org",
        "--name",
        "Asked",
        "--confirm",
    ];
    let out = succeeded(digest(d).args(args).output().unwrap(), &args);
    assert!(
        text(&out.stderr).contains("pending"),
        "{}",
        text(&out.stderr)
    );
    let got = smtp.received();
    assert_eq!(got.len(), 1);
    assert!(confirm_link(&got[0].raw).starts_with("https://digest.example.com/confirm/"));
    assert_eq!(status(&list(d), "asked@example.org"), "pending");
    // Again within the hour: nothing sent.
    let out = succeeded(digest(d).args(args).output().unwrap(), &args);
    assert!(
        text(&out.stderr).contains("nothing sent"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(smtp.received().len(), 1);
}

/// POSTs a form to `path` on `serve`; the status and the page.
fn post(serve: &Serve, path: &str, form: &str) -> (u16, String) {
    let mut r = http()
        .post(&format!("{}{path}", serve.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send(form)
        .unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

fn get(serve: &Serve, path: &str) -> (u16, String) {
    let mut r = http().get(&format!("{}{path}", serve.base)).call().unwrap();
    (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
}

/// A subscriber's unsubscribe token (what every digest carries).
fn unsubscribe_token(dir: &Path, email: &str) -> String {
    rusqlite::Connection::open(dir.join("dailydigest.db"))
        .unwrap()
        .query_row(
            "SELECT token FROM subscribers WHERE email = ?1",
            [email],
            |r| r.get(0),
        )
        .unwrap()
}

fn set_status(dir: &Path, email: &str, status: &str) {
    rusqlite::Connection::open(dir.join("dailydigest.db"))
        .unwrap()
        .execute(
            "UPDATE subscribers SET status = ?2 WHERE email = ?1",
            [email, status],
        )
        .unwrap();
}

/// The confirmation mails `smtp` has received for `email`.
fn confirmations_to(smtp: &Smtp, email: &str) -> Vec<support::Received> {
    smtp.received()
        .into_iter()
        .filter(|m| m.rcpt_tos == [email.to_owned()])
        .collect()
}

#[test]
fn consent_comes_only_from_a_fresh_single_use_link_in_the_owners_inbox() {
    let (dir, smtp) = site_with_smtp(100);
    let d = dir.path();
    add(d, "fw@example.org");
    add(d, "complains@example.org");
    add(d, "bounced@example.org");
    set_status(d, "complains@example.org", "complained");
    set_status(d, "bounced@example.org", "bounced");
    let serve = Serve::start(d);

    // fw@ leaves with the one-click link every digest carries...
    let t = unsubscribe_token(d, "fw@example.org");
    let (code, _) = post(
        &serve,
        &format!("/unsubscribe/{t}"),
        "List-Unsubscribe=One-Click",
    );
    assert_eq!(code, 200);
    // ...and someone who saw that link signs them up again and confirms
    // with it: the unsubscribe token confirms nothing.
    let (code, _) = post(
        &serve,
        "/subscribe",
        "email=fw%40example.org&name=Attacker+Chosen&topics=spam",
    );
    assert_eq!(code, 200);
    let (code, _) = post(&serve, &format!("/confirm/{t}"), "");
    assert_eq!(code, 404);
    let (code, _) = get(&serve, &format!("/confirm/{t}"));
    assert_eq!(code, 404);
    let l = list(d);
    assert_eq!(status(&l, "fw@example.org"), "unsubscribed");
    assert!(
        l["fw@example.org"]["name"].is_null(),
        "{}",
        l["fw@example.org"]
    );

    // fw@ gets a link of its own; the mail carries nothing the visitor
    // typed but the address.
    let mails = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = confirmations_to(&smtp, "fw@example.org");
            if !m.is_empty() || Instant::now() > deadline {
                break m;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(mails.len(), 1);
    assert!(!mails[0].raw.contains("Attacker"), "{}", mails[0].raw);
    let link = confirm_link(&mails[0].raw);
    let fresh = link.rsplit('/').next().unwrap().to_owned();
    assert_eq!(fresh.len(), 32);
    assert_ne!(fresh, t);
    // Its page shows what was typed, for the owner to keep or change; GET
    // changes nothing.
    let (code, page) = get(&serve, &format!("/confirm/{fresh}"));
    assert_eq!(code, 200);
    assert!(
        page.contains("value=\"Attacker Chosen\"") && page.contains("fw@example.org"),
        "{page}"
    );
    assert_eq!(status(&list(d), "fw@example.org"), "unsubscribed");
    let (code, _) = post(
        &serve,
        &format!("/confirm/{fresh}"),
        "name=Fw+Owner&topics=",
    );
    assert_eq!(code, 200);
    let l = list(d);
    assert_eq!(status(&l, "fw@example.org"), "active");
    assert_eq!(l["fw@example.org"]["name"], "Fw Owner");
    assert_eq!(l["fw@example.org"]["topics"], "");
    // Once only.
    let (code, _) = post(&serve, &format!("/confirm/{fresh}"), "name=Again&topics=");
    assert_eq!(code, 404);
    // An active subscriber's name never changes through the public form.
    let (code, _) = post(
        &serve,
        "/subscribe",
        "email=fw%40example.org&name=Renamed&topics=x",
    );
    assert_eq!(code, 200);

    // A third party signs carol@ up with a name of their choosing; Carol's
    // own sign-up comes within the hour. Her one mail's page shows the
    // stranger's name, escaped, and she sets her own.
    let (code, _) = post(
        &serve,
        "/subscribe",
        "email=carol%40example.org&name=Hacked+%3Cb%3Ex%3C%2Fb%3E&topics=spam",
    );
    assert_eq!(code, 200);
    let (code, _) = post(
        &serve,
        "/subscribe",
        "email=carol%40example.org&name=Carol&topics=climate",
    );
    assert_eq!(code, 200);
    // Complained and bounced addresses get no mail from the public form.
    for email in ["complains%40example.org", "bounced%40example.org"] {
        let (code, _) = post(
            &serve,
            "/subscribe",
            &format!("email={email}&name=&topics="),
        );
        assert_eq!(code, 200, "the same page for everyone");
    }
    let carol = wait_for_mail(&smtp, 2);
    std::thread::sleep(Duration::from_secs(2));
    let all = smtp.received();
    assert_eq!(all.len(), 2, "fw@ and carol@ once each");
    assert!(confirmations_to(&smtp, "complains@example.org").is_empty());
    assert!(confirmations_to(&smtp, "bounced@example.org").is_empty());
    let carol = carol
        .into_iter()
        .find(|m| m.rcpt_tos == ["carol@example.org".to_owned()])
        .unwrap();
    assert!(!carol.raw.contains("Hacked"));
    let carol_token = confirm_link(&carol.raw)
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (_, page) = get(&serve, &format!("/confirm/{carol_token}"));
    assert!(
        page.contains("value=\"Hacked &lt;b&gt;x&lt;/b&gt;\""),
        "{page}"
    );
    // A name the form would refuse is refused here too, the form again.
    let (code, page) = post(
        &serve,
        &format!("/confirm/{carol_token}"),
        "name=a%0Ab&topics=",
    );
    assert_eq!(code, 422, "{page}");
    assert!(
        page.contains("Please") || page.contains("control"),
        "{page}"
    );
    let (code, _) = post(
        &serve,
        &format!("/confirm/{carol_token}"),
        "name=Carol&topics=climate",
    );
    assert_eq!(code, 200);
    drop(serve);
    let l = list(d);
    assert_eq!(l["carol@example.org"]["name"], "Carol");
    assert_eq!(l["carol@example.org"]["topics"], "climate");
    assert_eq!(l["fw@example.org"]["name"], "Fw Owner");
    assert_eq!(l["fw@example.org"]["topics"], "");
    assert_eq!(status(&l, "complains@example.org"), "complained");
    assert_eq!(status(&l, "bounced@example.org"), "bounced");
    // Her digest greets her by the name she chose.
    let out_smtp = Smtp::start(&[]);
    let args = ["send", "--date", "2022-03-14", "--smtp", &out_smtp.url()];
    succeeded(digest(d).args(args).output().unwrap(), &args);
    let digests = out_smtp.received();
    let to_carol = digests
        .iter()
        .find(|m| m.rcpt_tos == ["carol@example.org".to_owned()])
        .unwrap();
    assert!(to_carol.raw.contains("Hello Carol,"), "{}", to_carol.raw);
    assert!(!digests.iter().any(|m| m.raw.contains("Hacked")));
}

#[test]
fn the_subscribe_form_takes_only_internet_addresses() {
    let (dir, smtp) = site_with_smtp(100);
    let serve = Serve::start(dir.path());
    for (email, why) in [
        ("%FF%FD%40example.com", "bytes that are not UTF-8"),
        (
            &format!("{}%40example.com", "a".repeat(246)),
            "258 characters",
        ),
        ("x%40localhost", "no internet domain"),
        ("x%40%5B127.0.0.1%5D", "an address literal"),
    ] {
        let (code, page) = post(
            &serve,
            "/subscribe",
            &format!("email={email}&name=&topics="),
        );
        assert_eq!(code, 422, "{why}: {page}");
        assert!(
            page.contains("Please enter an email address"),
            "{why}: {page}"
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(smtp.received().is_empty());
    assert_eq!(list(dir.path()).len(), 1, "only already@");
}

/// A message to `to` from `from` with `headers` and `body`.
fn message(from: &str, to: &str, headers: &str, body: &str, unique: &str) -> String {
    format!(
        "From: {from}\nTo: {to}\nMessage-ID: <{unique}@mail.example.org>\nDate: Mon, 14 Mar 2022 09:00:00 +0000\n{headers}\n{body}\n"
    )
}

#[test]
fn forged_reports_and_replies_change_no_one_and_delays_count_once_an_edition() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(d, "soft_bounce_limit = 2\n");
    let people = [
        "v1@victim.org",
        "v2@victim.org",
        "v3@victim.org",
        "v4@victim.org",
        "v5@victim.org",
        "v6@victim.org",
    ];
    for p in people {
        add(d, p);
    }
    let sent = send_and_read_envelopes(d, &people);
    let m = maildir(d);
    let put = |name: &str, msg: String| std::fs::write(m.join("new").join(name), msg).unwrap();
    let nobody = |message_id: &str| Sent {
        verp: "bounces@example.com".into(),
        token: String::new(),
        message_id: message_id.into(),
    };
    // A DSN to the plain bounce address naming v1: an address alone.
    put(
        "1.a",
        fill(
            "postfix-dsn-5.1.1.eml",
            "v1@victim.org",
            &nobody("<x@example.com>"),
            "a",
        ),
    );
    // An ARF report naming only v2's address.
    put(
        "2.b",
        fill(
            "arf-abuse.eml",
            "v2@victim.org",
            &nobody("<x@example.com>"),
            "b",
        ),
    );
    // v3's real Message-ID, with someone else as the failed recipient.
    put(
        "3.c",
        fill(
            "postfix-dsn-5.1.1.eml",
            "unrelated@elsewhere.example",
            &nobody(&sent["v3@victim.org"].message_id),
            "c",
        ),
    );
    // v4's replies and auto-replies to their VERP address.
    let v4 = &sent["v4@victim.org"].verp;
    put(
        "4.d",
        message(
            "v4@victim.org",
            v4,
            "Subject: Re: your digest\n",
            "Status 5.1.1 of my project is done.",
            "d",
        ),
    );
    put(
        "4.e",
        message(
            "v4@victim.org",
            v4,
            "Subject: Out of office\nAuto-Submitted: auto-replied\n",
            "I am away. Please read section 5.2.1 of the handbook.",
            "e",
        ),
    );
    put(
        "4.f",
        message(
            "v4@victim.org",
            v4,
            "Subject: Re: your digest\n",
            "We moved to version 4.2.0 today.",
            "f",
        ),
    );
    // Two copies of one delay warning for v5, by VERP only (no Message-ID
    // of ours), differing in their subjects: one edition, counted once.
    let v5 = Sent {
        message_id: "<not-ours@example.com>".into(),
        ..sent["v5@victim.org"].clone()
    };
    let delay = fill("postfix-dsn-delayed-4.4.1.eml", "v5@victim.org", &v5, "g1");
    put("5.g", delay.clone());
    put(
        "5.h",
        fill("postfix-dsn-delayed-4.4.1.eml", "v5@victim.org", &v5, "g2").replacen(
            "Subject: ",
            "Subject: [copy] ",
            1,
        ),
    );
    // The genuine article: v6's own bounce, by VERP.
    put(
        "6.i",
        fill(
            "postfix-dsn-5.1.1.eml",
            "v6@victim.org",
            &sent["v6@victim.org"],
            "i",
        ),
    );

    let out = digest(d)
        .args(["bounces", "import", "maildir", "--json"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let l = list(d);
    for v in ["v1", "v2", "v3", "v4", "v5"] {
        let e = format!("{v}@victim.org");
        assert_eq!(status(&l, &e), "active", "{e}: {}", l[&e]);
    }
    assert_eq!(l["v4@victim.org"]["bounces"], 0);
    assert_eq!(l["v4@victim.org"]["soft_bounces"], 0);
    assert_eq!(
        l["v5@victim.org"]["soft_bounces"], 1,
        "{}",
        l["v5@victim.org"]
    );
    assert_eq!(status(&l, "v6@victim.org"), "bounced");
    assert_eq!(report["hard_bounces"], 1, "{report}");
    assert_eq!(report["soft_bounces"], 2, "{report}");
    assert_eq!(report["complaints"], 0, "{report}");
    assert_eq!(
        report["not_reports"].as_array().unwrap().len(),
        3,
        "{report}"
    );
    let left: Vec<String> = report["unrecognised"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| format!("{} {}", u["location"], u["reason"]))
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(
        left.iter()
            .any(|u| u.contains("1.a") && u.contains("names an address but no message we sent")),
        "{left:?}"
    );
    assert!(
        left.iter()
            .any(|u| u.contains("2.b") && u.contains("names an address but no message we sent")),
        "{left:?}"
    );
    assert!(
        left.iter()
            .any(|u| u.contains("3.c") && u.contains("someone else")),
        "{left:?}"
    );
    assert!(stderr.contains("not a report"), "{stderr}");
    assert_eq!(names(&m.join(".Unprocessed/cur")).len(), 3);
    assert!(names(&m.join("new")).is_empty());
}

/// `digest ARGS` in `dir` with at most `bytes` of heap.
fn digest_with_memory_limit(dir: &Path, args: &[&str], bytes: u64) -> std::process::Output {
    support::with_memory_limit(&mut digest(dir), bytes)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn bounce_reading_is_bounded_and_concurrent_imports_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(d, "");
    let m = maildir(d);
    // A million tiny MIME parts in 6 MB, two million in 16 MB, and a pipe.
    let parts = |n: usize, part: &[u8]| {
        let mut raw = b"From: MAILER-DAEMON@mx.example.org\nTo: bounces@example.com\nSubject: x\nContent-Type: multipart/mixed; boundary=b\n\n".to_vec();
        for _ in 0..n {
            raw.extend_from_slice(part);
        }
        raw.extend_from_slice(b"--b--\n");
        raw
    };
    std::fs::write(m.join("new/1.million"), parts(1_000_000, b"--b\n\n")).unwrap();
    let big = parts(2_000_000, b"--b\n\nab\n");
    assert!(big.len() > 16_000_000);
    std::fs::write(m.join("new/2.two-million"), big).unwrap();
    let fifo = std::ffi::CString::new(m.join("new/3.pipe").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the path only.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    add(d, "someone@example.org");
    let out = digest_with_memory_limit(d, &["bounces", "import", "maildir", "--json"], 256 << 20);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reasons: Vec<String> = report["unrecognised"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons.len(), 3, "{report}");
    assert!(
        reasons.iter().any(|r| r.contains("MIME parts")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("over the limit")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("a pipe")), "{reasons:?}");
    // Moved aside, never parsed again.
    assert_eq!(names(&m.join(".Unprocessed/cur")).len(), 3);
    let out = digest(d)
        .args(["bounces", "import", "maildir", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["messages"], 0, "{again}");
    // A device is refused before a byte is read.
    let out = digest_with_memory_limit(d, &["bounces", "import", "/dev/zero"], 256 << 20);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("only regular files are read"),
        "{}",
        text(&out.stderr)
    );

    // Two imports at once, and a mail server moving messages from new/ to
    // cur/ under them: every message is processed exactly once.
    let readers: Vec<String> = (0..20).map(|i| format!("r{i}@example.org")).collect();
    let csv: String = readers.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(d.join("readers.csv"), csv).unwrap();
    let args = ["subscribers", "import", "readers.csv"];
    succeeded(digest(d).args(args).output().unwrap(), &args);
    for (i, r) in readers.iter().enumerate() {
        let bounce = fill(
            "postfix-dsn-5.1.1.eml",
            r,
            &verp_only(d, r),
            &format!("hard{i}"),
        );
        std::fs::write(m.join(format!("new/{:04}.hard", i * 21)), bounce).unwrap();
        for j in 1..21 {
            let reply = message(
                r,
                &format!("bounces+{}@example.com", verp_token(d, r)),
                "Subject: Automatic reply: away\nAuto-Submitted: auto-replied\n",
                "Back on Monday.",
                &format!("away{i}-{j}"),
            );
            std::fs::write(m.join(format!("new/{:04}.away", i * 21 + j)), reply).unwrap();
        }
    }
    let import = || {
        let dir = d.to_path_buf();
        std::thread::spawn(move || {
            digest(&dir)
                .args(["bounces", "import", "maildir", "--json"])
                .output()
                .unwrap()
        })
    };
    let (a, b) = (import(), import());
    // The "mail server": marks every third message read, moving it.
    let mover = {
        let m = m.clone();
        std::thread::spawn(move || {
            for (i, name) in names(&m.join("new")).into_iter().enumerate() {
                if i % 3 == 0 {
                    let _ = std::fs::rename(
                        m.join("new").join(&name),
                        m.join("cur").join(format!("{name}:2,S")),
                    );
                }
            }
        })
    };
    mover.join().unwrap();
    let mut totals = (0, 0);
    for out in [a.join().unwrap(), b.join().unwrap()] {
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("No such file"), "{stderr}");
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        totals.0 += r["hard_bounces"].as_u64().unwrap();
        totals.1 += r["not_reports"].as_array().unwrap().len() as u64;
    }
    // A third import takes what the mail server moved before it was read.
    let out = digest(d)
        .args(["bounces", "import", "maildir", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    totals.0 += r["hard_bounces"].as_u64().unwrap();
    totals.1 += r["not_reports"].as_array().unwrap().len() as u64;
    assert_eq!(totals, (20, 400), "each message exactly once");
    let l = list(d);
    assert!(readers.iter().all(|r| status(&l, r) == "bounced"));
    assert!(names(&m.join("new")).is_empty());
}

#[test]
fn a_confirmation_the_mail_server_refuses_for_now_is_mailed_again_with_a_new_link() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The server answers 451 (try again later) to the first try.
    let smtp = Smtp::start(&["--fail451", "later@example.org", "--fail451-times", "1"]);
    write_config(d, &format!("smtp_url = \"{}\"\n", smtp.url()));
    add(d, "already@example.org");
    let serve = Serve::start(d);
    let (code, _) = post(
        &serve,
        "/subscribe",
        "email=later%40example.org&name=Later&topics=",
    );
    assert_eq!(code, 200);
    // Recorded, not lost: the next try (5 s on) gets through.
    let got = wait_for_mail(&smtp, 1);
    assert_eq!(got.len(), 1, "mailed again after the refusal");
    assert_eq!(got[0].rcpt_tos, ["later@example.org".to_owned()]);
    let token = confirm_link(&got[0].raw)
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (code, page) = get(&serve, &format!("/confirm/{token}"));
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("value=\"Later\""), "{page}");
    let (code, _) = post(&serve, &format!("/confirm/{token}"), "name=Later&topics=");
    assert_eq!(code, 200);
    assert_eq!(status(&list(d), "later@example.org"), "active");
}
