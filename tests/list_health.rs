//! List health through the real binary: VERP envelope senders seen by a
//! real SMTP server; bounces, complaints and unsubscribe requests imported
//! from a Maildir and an mbox written from the formats' documentation
//! (`tests/fixtures/bounces/README.md`); `digest run` importing before it
//! sends and skipping who bounced; double opt-in on the subscribe and
//! confirm pages, driven in headless Chromium; the confirmation limits
//! under a burst.

mod support;

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
        "two are left in place: {stderr}"
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
    assert_eq!(left.len(), 2, "{report}");
    assert!(
        stderr.contains("not-a-bounce.eml: not a bounce, complaint or unsubscribe request"),
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

    // The processed ones moved to cur/ (seen); the two unread stay in new/.
    let new = names(&m.join("new"));
    assert_eq!(new.len(), 2, "{new:?}");
    assert!(new
        .iter()
        .all(|n| n.ends_with("not-a-bounce.eml") || n.ends_with("bounce-without-code.eml")));
    let cur = names(&m.join("cur"));
    assert_eq!(cur.len(), 10, "{cur:?}");
    assert!(cur.iter().all(|n| n.ends_with(":2,S")), "{cur:?}");

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
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["duplicates"], 13, "{again}");
    assert_eq!(again["hard_bounces"], 0, "{again}");
    assert_eq!(again["soft_bounces"], 0, "{again}");
    assert_eq!(again["unrecognised"].as_array().unwrap().len(), 2);
    assert_eq!(list(d)["soft@example.org"]["soft_bounces"], 1);
    assert!(!m.join("new/copy-of-a-processed-one").exists());

    // A second temporary failure, of a later edition with none delivered in
    // between: the limit (2) is reached and soft@ is bounced.
    let later = Sent {
        message_id: sent["soft@example.org"]
            .message_id
            .replace("2022-03-14", "2022-03-16"),
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
    assert_eq!(
        status(&list(copy.path()), "complains@example.org"),
        "complained"
    );
}

#[test]
fn digest_run_imports_the_bounce_maildir_first_and_skips_who_bounced() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(d, "bounces_maildir = \"maildir\"\n");
    add(d, "gone@example.org");
    add(d, "here@example.org");
    let m = maildir(d);
    // A bounce with only the recipient's address to go by (an earlier
    // digest, sent before VERP was set up).
    let unknown = Sent {
        verp: "digest@example.com".into(),
        token: String::new(),
        message_id: "<old-message@example.com>".into(),
    };
    std::fs::write(
        m.join("new/1647237600.M1P1.mx"),
        fill("postfix-dsn-5.1.1.eml", "gone@example.org", &unknown, "run"),
    )
    .unwrap();
    let smtp = Smtp::start(&[]);
    let report = run_and_report(d, &smtp.url());
    let got = smtp.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_tos, vec!["here@example.org".to_owned()]);
    assert_eq!(report["bounces"]["hard_bounces"], 1, "{report}");
    assert_eq!(report["bounces"]["bounced"], 1, "{report}");
    assert_eq!(report["send"]["sent"], 1, "{report}");
    assert_eq!(status(&list(d), "gone@example.org"), "bounced");
    assert!(names(&m.join("new")).is_empty());
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
    db.execute(
        "UPDATE subscribers SET confirm_sent_at = '2000-01-01T00:00:00.000Z', created_at = '2000-01-01T00:00:00.000Z' WHERE email = 'twice@example.org'",
        [],
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
