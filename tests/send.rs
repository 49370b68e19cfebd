//! `digest send` against a real SMTP server on 127.0.0.1 (aiosmtpd, started
//! by each test), a real SQLite file, and the real binary: delivery, TLS and
//! login, faults, and a send killed with SIGKILL halfway.

use crate::support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::{python, root, text, Received, Server};

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

fn per_recipient(msgs: &[Received]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in msgs {
        for to in &r.rcpt_tos {
            *m.entry(to.clone()).or_default() += 1;
        }
    }
    m
}

#[test]
fn every_subscriber_gets_one_multipart_message_with_list_headers() {
    let server = Server::start(&[]);
    let site = Site::new("unsubscribe_mailto = \"leave@news.example.com\"");
    let emails = site.subscribe(3);
    let out = site.send(&["--smtp", &server.url(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(summary(&out)["sent"], 3);

    let got = server.received();
    assert_eq!(got.len(), 3);
    assert_eq!(
        per_recipient(&got).keys().cloned().collect::<Vec<_>>(),
        emails
    );
    for r in &got {
        assert!(r.defects.is_empty(), "MIME defects: {:?}", r.defects);
        let raw = r.raw.replace("\r\n ", " ").replace("\n ", " ");
        for header in [
            "From: \"Daily Digest\" <digest@news.example.com>",
            "List-Id: Daily Digest <list.news.example.com>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "Date: ",
            "Subject: ",
            "MIME-Version: 1.0",
        ] {
            assert!(raw.contains(header), "missing {header:?} in\n{raw}");
        }
        assert!(
            raw.contains("List-Unsubscribe: <https://digest.example.com/unsubscribe/"),
            "{raw}"
        );
        // The mailto's subject carries the subscriber's VERP token, which
        // `digest bounces import` reads back.
        let mailto = raw
            .split("<mailto:leave@news.example.com?subject=unsubscribe%20")
            .nth(1)
            .unwrap_or_else(|| panic!("no mailto in {raw}"));
        assert!(
            mailto[..20].chars().all(|c| c.is_ascii_hexdigit()) && mailto[20..].starts_with('>')
        );
        assert!(
            r.message_id.starts_with("<digest.2022-03-14.")
                && r.message_id.ends_with("@news.example.com>")
        );
        assert!(raw.contains("multipart/alternative"));
        let plain = raw
            .find("Content-Type: text/plain")
            .expect("a plain-text part");
        let html = raw.find("Content-Type: text/html").expect("an HTML part");
        assert!(plain < html, "plain text first, then HTML");
        assert!(
            raw.contains("Russia and Ukraine hold fresh talks"),
            "the edition is in the message"
        );
        assert!(!r.tls && !r.auth, "plain SMTP on loopback");
    }
    // The UTF-8 display name is encoded, and personalised per subscriber.
    assert!(
        got.iter().any(|r| r.raw.contains("To: =?utf-8?")),
        "{}",
        got[0].raw
    );

    // A second run sends nothing new.
    let out = site.send(&["--smtp", &server.url(), "--json"]);
    assert!(out.status.success());
    let s = summary(&out);
    assert_eq!(
        (s["sent"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(server.received().len(), 3);
}

/// A CA and a certificate for 127.0.0.1, made with openssl.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            text(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=dailydigest test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[test]
fn starttls_and_login_with_the_password_from_the_environment_never_shown() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(certs.path());
    let secret = "s3cret-Pa55word-xyzzy";
    let server = Server::start(&[
        "--tls",
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        "--auth",
        &format!("digest:{secret}"),
    ]);
    let site = Site::new(&format!("smtp_ca_file = {:?}", ca.display().to_string()));
    site.subscribe(2);
    let url = format!("smtp://digest@127.0.0.1:{}?tls=required", server.port);

    // A wrong password: a configuration error (exit 2), nothing sent, and
    // neither password appears anywhere, even at trace level.
    let out = site
        .digest()
        .env("DIGEST_SMTP_PASSWORD", "wrong-Pa55word-plugh")
        .args([
            "-vv",
            "send",
            "--date",
            "2022-03-14",
            "--json",
            "--smtp",
            &url,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let all = text(&out.stderr) + &text(&out.stdout);
    assert!(all.contains("refused the login"), "{all}");
    assert!(
        !all.contains("wrong-Pa55word-plugh") && !all.contains(secret),
        "a password leaked:\n{all}"
    );
    assert_eq!(server.received().len(), 0);

    // The right one, from a password file this time.
    std::fs::write(site.path().join("pw"), format!("{secret}\n")).unwrap();
    let out = site
        .digest()
        .args([
            "-vv",
            "send",
            "--date",
            "2022-03-14",
            "--json",
            "--smtp",
            &url,
        ])
        .env("DIGEST_SMTP_PASSWORD_FILE", site.path().join("pw"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = text(&out.stderr) + &text(&out.stdout);
    assert!(!all.contains(secret), "the password leaked:\n{all}");
    let got = server.received();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().all(|r| r.tls && r.auth),
        "sent over STARTTLS after logging in"
    );
}

#[test]
fn greylisting_451_is_retried_and_delivered() {
    let server = Server::start(&[
        "--fail451",
        "reader0002@example.com",
        "--fail451-times",
        "2",
    ]);
    let site = Site::new("");
    site.subscribe(3);
    let out = site.send(&["--smtp", &server.url(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let s = summary(&out);
    assert_eq!(
        (s["sent"].as_u64(), s["retrying"].as_u64()),
        (Some(3), Some(0))
    );
    let counts = per_recipient(&server.received());
    assert_eq!(counts.len(), 3);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    assert!(
        text(&out.stderr).contains("will retry"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_transient_failure_that_outlasts_the_run_is_picked_up_by_the_next_run() {
    let server = Server::start(&[
        "--fail451",
        "reader0001@example.com",
        "--fail451-times",
        "3",
    ]);
    let site = Site::new("max_attempts = 2");
    site.subscribe(2);
    let out = site.send(&["--smtp", &server.url(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "something remains: exit 1");
    assert_eq!(summary(&out)["retrying"], 1);
    let out = site.send(&["--smtp", &server.url(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(summary(&out)["sent"], 1);
    assert!(per_recipient(&server.received()).values().all(|&n| n == 1));
}

#[test]
fn a_550_is_recorded_as_failed_and_the_others_are_delivered() {
    let server = Server::start(&["--fail550", "reader0002@example.com"]);
    let site = Site::new("");
    site.subscribe(3);
    let out = site.send(&["--smtp", &server.url(), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let s = summary(&out);
    assert_eq!(
        (s["sent"].as_u64(), s["failed"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(s["failures"][0]["email"], "reader0002@example.com");
    assert!(
        s["failures"][0]["error"].as_str().unwrap().contains("550"),
        "the server's reply is recorded: {s}"
    );
    let counts = per_recipient(&server.received());
    assert_eq!(
        counts.keys().cloned().collect::<Vec<_>>(),
        ["reader0001@example.com", "reader0003@example.com"]
    );
    // A permanent failure is not retried by the next run, and a refused
    // mailbox (5.1.1) is a bounce: the address is marked, the others not.
    let out = site.send(&["--smtp", &server.url(), "--json"]);
    assert_eq!(summary(&out)["sent"], 0);
    assert_eq!(server.received().len(), 2);
    let out = site
        .digest()
        .args(["subscribers", "list", "--format", "json"])
        .output()
        .unwrap();
    let list: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<(&str, &str, u64)> = list
        .iter()
        .map(|s| {
            (
                s["email"].as_str().unwrap(),
                s["status"].as_str().unwrap(),
                s["bounces"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("reader0001@example.com", "active", 0),
            ("reader0002@example.com", "bounced", 1),
            ("reader0003@example.com", "active", 0)
        ]
    );
    assert!(
        list[1]["last_bounce"]
            .as_str()
            .unwrap()
            .starts_with("5.1.1: "),
        "{}",
        list[1]
    );
}

#[test]
fn a_server_that_rejects_every_recipient_stops_the_run_and_loses_nobody() {
    let denying = Server::start(&["--reject-all"]);
    let site = Site::new("concurrency = 1");
    let emails = site.subscribe(12);
    let out = site.send(&["--smtp", &denying.url(), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a configuration problem: {}",
        text(&out.stderr)
    );
    let s = summary(&out);
    assert_eq!(
        (s["failed"].as_u64(), s["remaining"].as_u64()),
        (Some(0), Some(12)),
        "{s}"
    );
    assert!(
        s["stopped"]
            .as_str()
            .unwrap()
            .contains("Relay access denied"),
        "{s}"
    );
    // Once the relay is fixed, everyone gets the edition.
    let good = Server::start(&[]);
    let out = site.send(&["--smtp", &good.url(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        per_recipient(&good.received())
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        emails
    );
}

#[test]
fn a_connection_dropped_mid_run_is_resumed() {
    let server = Server::start(&["--drop-after", "2"]);
    let site = Site::new("concurrency = 1");
    let emails = site.subscribe(6);
    let out = site.send(&["--smtp", &server.url(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(summary(&out)["sent"], 6);
    assert!(
        text(&out.stderr).contains("will retry"),
        "the drop was seen and retried: {}",
        text(&out.stderr)
    );
    let counts = per_recipient(&server.received());
    assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), emails);
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

#[test]
fn an_unreachable_server_sends_nothing_and_exits_1() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let site = Site::new("");
    site.subscribe(2);
    let out = site.send(&["--smtp", &format!("smtp://127.0.0.1:{port}")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot reach the mail server"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn killed_with_sigkill_halfway_then_rerun_every_subscriber_has_exactly_one_copy() {
    let server = Server::start(&["--delay-ms", "4"]);
    let site = Site::new("concurrency = 2");
    let emails = site.subscribe(500);
    let mut child = site
        .digest()
        .args([
            "-q",
            "send",
            "--date",
            "2022-03-14",
            "--smtp",
            &server.url(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while server.received().len() < 200 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the send did not get going"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the send finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let before = server.received().len();
    assert!(before < 500, "killed halfway ({before} sent)");

    let out = site.send(&["--smtp", &server.url(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = server.received();
    // Every subscriber got the edition: one Message-ID each.
    let mut ids: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for r in &got {
        for to in &r.rcpt_tos {
            ids.entry(to.clone())
                .or_default()
                .insert(r.message_id.clone());
        }
    }
    assert_eq!(
        ids.keys().cloned().collect::<Vec<_>>(),
        emails,
        "nobody skipped"
    );
    assert!(
        ids.values().all(|set| set.len() == 1),
        "one Message-ID per subscriber"
    );
    // At most the messages in flight at the kill (concurrency 2) can arrive
    // twice: accepted by the server, not yet recorded. Same Message-ID.
    let copies = per_recipient(&got);
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    assert!(
        duplicates <= 2,
        "{duplicates} duplicates: {:?}",
        copies.iter().filter(|(_, &n)| n > 1).collect::<Vec<_>>()
    );
    let s = summary(&out);
    assert_eq!(
        s["sent"].as_u64().unwrap() as usize + s["skipped"].as_u64().unwrap() as usize,
        500
    );
}

#[test]
fn the_default_transport_is_an_outbox_of_eml_files_that_parse_cleanly() {
    let site = Site::new("");
    site.subscribe(3);
    let out = site.send(&["--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut files: Vec<PathBuf> = std::fs::read_dir(site.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3);
    assert!(files[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("2022-03-14-"));
    // Python's email package (policy.default) finds no defects.
    let script = "import email, email.policy, sys\nbad = 0\nfor p in sys.argv[1:]:\n    m = email.message_from_bytes(open(p, 'rb').read(), policy=email.policy.default)\n    d = list(m.defects) + [x for part in m.walk() for x in part.defects]\n    assert m.get_body(('plain',)) is not None and m.get_body(('html',)) is not None, p\n    if d: print(p, d); bad += 1\nsys.exit(bad)\n";
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = site.send(&["--json"]);
    assert_eq!(summary(&out)["sent"], 0, "a re-run sends nothing");
    assert_eq!(
        std::fs::read_dir(site.path().join("outbox"))
            .unwrap()
            .count(),
        3
    );
}

#[test]
fn configuration_errors_fail_before_anything_is_sent() {
    let server = Server::start(&[]);
    let site = Site::new("");
    site.subscribe(2);
    // Plain SMTP to a non-loopback host is refused.
    let out = site.send(&["--smtp", "smtp://mail.example.com:25"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("plain SMTP without TLS"),
        "{}",
        text(&out.stderr)
    );
    // A broken template.
    std::fs::create_dir(site.path().join("templates")).unwrap();
    std::fs::write(
        site.path().join("templates/subject.tera"),
        "{{ edition.nope }}",
    )
    .unwrap();
    let out = site.send(&["--smtp", &server.url()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("subject.tera"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(site.path().join("templates/subject.tera")).unwrap();
    // An edition too old to send without --force.
    std::fs::write(
        site.path().join("digest.toml"),
        "max_edition_age_days = 2\n",
    )
    .unwrap();
    let out = site.send(&["--smtp", &server.url()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--force") && stderr.contains("days old"),
        "{stderr}"
    );
    // The setting is valid; the edition is old: the error does not blame it.
    assert!(!stderr.contains("invalid setting"), "{stderr}");
    assert_eq!(server.received().len(), 0, "nothing was sent");
}

#[test]
fn a_send_beside_a_running_one_does_not_send() {
    let server = Server::start(&[]);
    let site = Site::new("");
    site.subscribe(2);
    let lock = std::fs::File::create(site.path().join("dailydigest.db.lock")).unwrap();
    lock.try_lock().unwrap();
    let out = site.send(&["--smtp", &server.url()]);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    assert_eq!(server.received().len(), 0);
    drop(lock);
    let out = site.send(&["--smtp", &server.url()]);
    assert!(out.status.success());
    assert_eq!(server.received().len(), 2);
}

#[test]
fn the_rate_limit_spaces_messages() {
    let server = Server::start(&[]);
    let site = Site::new("rate_limit = 10.0\nconcurrency = 4");
    site.subscribe(6);
    let start = Instant::now();
    let out = site.send(&["--smtp", &server.url()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(server.received().len(), 6);
    // Six messages at ten per second take at least half a second, whatever
    // the concurrency.
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn the_sendmail_command_gets_the_message_and_its_recipient() {
    let site = Site::new("");
    site.subscribe(2);
    let script = site.path().join("fake-sendmail");
    // A stand-in for /usr/sbin/sendmail: one file per recipient (its last argument).
    std::fs::write(&script, "#!/bin/sh\nfor a in \"$@\"; do to=\"$a\"; done\nf=\"$(dirname \"$0\")/sent-$to\"\necho \"$@\" > \"$f.args\"\ncat > \"$f.eml\"\n").unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    std::fs::write(
        site.path().join("digest.toml"),
        format!(
            "{}\nsendmail = {:?}\n",
            std::fs::read_to_string(site.path().join("digest.toml")).unwrap(),
            script.display().to_string()
        ),
    )
    .unwrap();
    let out = site.send(&["--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(summary(&out)["transport"]
        .as_str()
        .unwrap()
        .starts_with("sendmail"));
    for who in ["reader0001@example.com", "reader0002@example.com"] {
        let args = std::fs::read_to_string(site.path().join(format!("sent-{who}.args"))).unwrap();
        assert!(
            args.contains("-f digest@news.example.com"),
            "the envelope sender: {args}"
        );
    }
    let eml = std::fs::read_to_string(site.path().join("sent-reader0001@example.com.eml")).unwrap();
    assert!(
        eml.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
            && eml.contains("multipart/alternative")
    );
}

#[test]
fn dry_run_and_limit() {
    let server = Server::start(&[]);
    let site = Site::new("");
    site.subscribe(5);
    let out = site.send(&["--smtp", &server.url(), "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("would go to 5 active subscribers"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(server.received().len(), 0);
    let out = site.send(&["--smtp", &server.url(), "--limit", "2", "--json"]);
    assert_eq!(out.status.code(), Some(1), "some remain");
    assert_eq!(
        (
            summary(&out)["sent"].as_u64(),
            summary(&out)["remaining"].as_u64()
        ),
        (Some(2), Some(3))
    );
    let out = site.send(&["--smtp", &server.url(), "--json"]);
    assert!(out.status.success());
    assert_eq!(summary(&out)["sent"], 3);
    assert_eq!(per_recipient(&server.received()).len(), 5);
}

#[test]
fn unsubscribed_and_bad_rows() {
    let site = Site::new("");
    std::fs::write(site.path().join("s.csv"), "email,name,topics,topics_only\nann@example.com,Ann,\"sport, tech\",yes\nnot-an-address,X\nann@EXAMPLE.com,Dup\nbob@example.com,\"Bob\r\nBcc: evil@example.com\"\ncat@example.com\n").unwrap();
    let out = site
        .digest()
        .args(["subscribers", "import", "s.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for expected in [
        "s.csv:3: invalid address",
        "s.csv:4: duplicate",
        "s.csv:5: invalid name",
        "imported 2 subscribers, 3 rows rejected",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in {stderr}"
        );
    }
    let out = site
        .digest()
        .args(["subscribers", "remove", "cat@example.com"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = site
        .digest()
        .args(["subscribers", "export", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["topics"], "sport,tech");
    assert_eq!(v[0]["topics_only"], true);
    assert_eq!(v[1]["status"], "unsubscribed");
    assert!(
        !text(&out.stdout).contains("token"),
        "tokens are not exported"
    );
    let out = site.send(&["--json"]);
    assert_eq!(
        summary(&out)["sent"],
        1,
        "the unsubscribed address gets nothing"
    );
}
