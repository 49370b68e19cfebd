//! PostgreSQL as the shared store (`db = "postgres://..."`), through the
//! real binary against a private PostgreSQL server (`support::postgres`)
//! and a real SMTP server: several send workers on one edition, one killed
//! with SIGKILL; bad database settings refused before anything is sent.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{self, postgres::fresh_url, root, text, Server};

/// A working folder whose digest.toml names `db` and the sample articles.
fn site(db: &str, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("digest.toml"),
        format!(
            "db = {db:?}\ninputs = [{:?}]\nretry_base_ms = 50\nmax_edition_age_days = 100000\nfrom = \"Daily Digest <digest@news.example.com>\"\n{extra}\n",
            root().join("examples").display().to_string()
        ),
    )
    .unwrap();
    dir
}

fn digest(dir: &Path) -> Command {
    support::digest(dir)
}

fn subscribe(dir: &Path, n: usize) -> Vec<String> {
    let emails: Vec<String> = (1..=n)
        .map(|i| format!("reader{i:05}@example.com"))
        .collect();
    let csv: String = emails.iter().map(|e| format!("{e},A Reader\n")).collect();
    std::fs::write(dir.join("subs.csv"), csv).unwrap();
    let out = digest(dir)
        .args(["subscribers", "import", "subs.csv"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    emails
}

fn summary(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)))
}

/// Three `digest send` processes started at once on one edition each send
/// part of it; one killed with SIGKILL midway loses nothing: its session
/// ends with it, the survivors sweep up what it held once their own pages
/// run out (a last run finds nothing left), and every subscriber has
/// exactly one distinct Message-ID.
#[test]
fn three_workers_share_an_edition_and_a_killed_one_loses_nothing() {
    let server = Server::start(&["--delay-ms", "2"]);
    let url = fresh_url();
    let dir = site(&url, "concurrency = 2\nworker_lease_secs = 3");
    let emails = subscribe(dir.path(), 3000);
    let start_worker = || {
        digest(dir.path())
            .args([
                "send",
                "--date",
                "2022-03-14",
                "--json",
                "--smtp",
                &server.url(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut workers: Vec<_> = (0..3).map(|_| start_worker()).collect();
    let started = Instant::now();
    while server.received().len() < 900 {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the workers did not get going"
        );
        assert!(
            workers.iter_mut().all(|w| w.try_wait().unwrap().is_none()),
            "a worker finished before one could be killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut killed = workers.remove(0);
    killed.kill().unwrap(); // SIGKILL
    killed.wait().unwrap();
    let survivors: Vec<Output> = workers
        .into_iter()
        .map(|w| w.wait_with_output().unwrap())
        .collect();
    for out in &survivors {
        assert!(out.status.success(), "{}", text(&out.stderr));
        let sent = summary(out)["sent"].as_u64().unwrap();
        eprintln!("a surviving worker sent {sent}");
        assert!(
            sent > 0 && sent < 3000,
            "each worker sends part of the edition: {sent}"
        );
    }
    // A last run, after the killed worker's lease would be over anyway.
    std::thread::sleep(Duration::from_secs(4));
    let last = digest(dir.path())
        .args([
            "send",
            "--date",
            "2022-03-14",
            "--json",
            "--smtp",
            &server.url(),
        ])
        .output()
        .unwrap();
    assert!(last.status.success(), "{}", text(&last.stderr));
    let s = summary(&last);
    eprintln!("the last run: {s}");
    assert_eq!(s["remaining"], 0, "{s}");
    // The survivors, once their own pages ran out, swept up what the
    // killed one held (its session ended with it): nothing was left.
    assert_eq!(s["sent"], 0, "{s}");

    let got = server.received();
    let ids = support::message_ids(&got);
    let copies = support::per_recipient(&got);
    assert_eq!(
        ids.keys().cloned().collect::<Vec<_>>(),
        emails,
        "nobody skipped"
    );
    assert!(
        ids.values().all(|set| set.len() == 1),
        "one Message-ID per subscriber"
    );
    let distinct: BTreeSet<&String> = ids.values().flatten().collect();
    assert_eq!(distinct.len(), 3000, "a Message-ID of its own for each");
    // Only what the killed worker had in flight (its concurrency, 2) can
    // arrive twice, with the same Message-ID.
    let duplicates: usize = copies.values().map(|n| n - 1).sum();
    eprintln!("{} messages received, {duplicates} duplicates", got.len());
    assert!(duplicates <= 2, "{duplicates} duplicates");
}

fn fails_before_sending(dir: &Path, server: &Server, password: Option<&str>) -> String {
    let mut cmd = digest(dir);
    cmd.args([
        "-v",
        "send",
        "--date",
        "2022-03-14",
        "--smtp",
        &server.url(),
    ]);
    if let Some(p) = password {
        cmd.env("DIGEST_DB_PASSWORD", p);
    }
    let out = cmd.output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(server.received().is_empty(), "nothing sent");
    stderr
}

/// An unreachable server, a wrong password and a database of another
/// schema version: each a clear error naming the host (never the
/// password), exit 2, nothing sent.
#[test]
fn bad_database_settings_fail_before_anything_is_sent() {
    let server = Server::start(&[]);
    let base = support::postgres::server_url();
    let port = base
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();

    // Nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = site(
        &format!("postgres://digest@127.0.0.1:{closed}/list?sslmode=disable"),
        "",
    );
    let err = fails_before_sending(dir.path(), &server, Some("hunter2-secret"));
    assert!(err.contains(&format!("127.0.0.1:{closed}")), "{err}");
    assert!(err.contains("connecting"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    // A role that logs in with a password; the wrong one is refused.
    let mut admin = postgres::Client::connect(&base, postgres::NoTls).unwrap();
    let role = format!("digest_{}", std::process::id());
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'right-password'; CREATE SCHEMA {role} AUTHORIZATION {role};"
        ))
        .unwrap();
    let url = format!(
        "postgres://{role}@127.0.0.1:{port}/postgres?sslmode=disable&options=-c%20search_path%3D{role}"
    );
    let dir = site(&url, "");
    let err = fails_before_sending(dir.path(), &server, Some("wrong-password"));
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(err.contains(&format!("{role}@127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("wrong-password"), "{err}");
    // The same password in the URL itself is never shown either.
    let with_password = url.replace(&format!("{role}@"), &format!("{role}:wrong-password@"));
    let dir = site(&with_password, "");
    let err = fails_before_sending(dir.path(), &server, None);
    assert!(!err.contains("wrong-password"), "{err}");

    // The right password, from db_password_file: it works.
    let dir = site(&url, "db_password_file = \"pw\"");
    std::fs::write(dir.path().join("pw"), "right-password\n").unwrap();
    subscribe(dir.path(), 2);

    // A newer digest's schema.
    admin
        .batch_execute(&format!("UPDATE {role}.digest_schema SET version = 99"))
        .unwrap();
    let err = fails_before_sending(dir.path(), &server, None);
    assert!(err.contains("schema version 99"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
}

/// A SQLite list moves into PostgreSQL with one command and back: the
/// same subscribers, and the delivery log with them (a send after the
/// move sends nothing again); a target that holds anything is refused.
#[test]
fn a_sqlite_list_moves_to_postgres_and_back() {
    let url = fresh_url();
    let dir = site("list.db", "");
    let emails = subscribe(dir.path(), 5);
    let sent = digest(dir.path())
        .args(["send", "--date", "2022-03-14", "--json"])
        .output()
        .unwrap();
    assert!(sent.status.success(), "{}", text(&sent.stderr));
    assert_eq!(summary(&sent)["sent"], 5);

    let out = digest(dir.path())
        .args(["db", "copy", "--to", &url, "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let copied = summary(&out);
    assert_eq!(copied["rows"]["subscribers"], 5);
    assert_eq!(copied["rows"]["deliveries"], 5);
    assert_eq!(copied["rows"]["editions"], 1);

    let list = |db: &str| {
        let out = digest(dir.path())
            .args(["--db", db, "subscribers", "list", "--format", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        summary(&out)
    };
    let before = list("list.db");
    assert_eq!(list(&url), before);
    assert_eq!(before.as_array().unwrap().len(), emails.len());
    let again = digest(dir.path())
        .args(["--db", &url, "send", "--date", "2022-03-14", "--json"])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert_eq!(summary(&again)["sent"], 0, "the delivery log moved too");

    let refused = digest(dir.path())
        .args(["db", "copy", "--to", &url])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("not empty"),
        "{}",
        text(&refused.stderr)
    );

    let back = digest(dir.path())
        .args(["db", "copy", "--from", &url, "--to", "back.db"])
        .output()
        .unwrap();
    assert!(back.status.success(), "{}", text(&back.stderr));
    assert_eq!(list("back.db"), before);
}

/// Two `digest serve` processes on one PostgreSQL, as two hosts behind a
/// load balancer: a sign-up made on one is confirmed on the other, a
/// one-click unsubscribe works on either, and the subscribe page's hourly
/// limit counts the sign-ups of both, and still after a restart.
#[test]
fn two_serve_hosts_share_sign_ups_unsubscribes_and_their_limit() {
    use support::{confirm_link, post, Serve};
    let url = fresh_url();
    let config = "subscribe_limit_per_hour = 3\nbase_url = \"http://digest.example.com\"";
    let (a_dir, b_dir) = (site(&url, config), site(&url, config));
    subscribe(a_dir.path(), 1);
    let a = Serve::start(a_dir.path());
    let b = Serve::start(b_dir.path());

    let (code, _) = post(&a, "/subscribe", "email=new%40example.com&name=New&topics=");
    assert_eq!(code, 200);
    // The confirmation is mailed by host A (to its outbox folder).
    let outbox = a_dir.path().join("outbox");
    let started = Instant::now();
    let mail = loop {
        let found = std::fs::read_dir(&outbox)
            .into_iter()
            .flatten()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().starts_with("confirm-"));
        if let Some(e) = found {
            break std::fs::read_to_string(e.path()).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no confirmation mailed"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let link = confirm_link(&mail.replace("=\r\n", "").replace("=\n", ""));
    let path = &link[link.find("/confirm/").unwrap()..];
    let (code, page) = post(&b, path, "name=New&topics=");
    assert_eq!(code, 200, "confirmed on the other host: {page}");
    let list = |dir: &Path| -> serde_json::Value {
        let out = digest(dir)
            .args(["subscribers", "list", "--format", "json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        summary(&out)
    };
    let status = |email: &str| -> String {
        list(a_dir.path())
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["email"] == email)
            .map(|s| s["status"].as_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    assert_eq!(status("new@example.com"), "active");

    // One-click unsubscribe of the first reader, on host B.
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let token: String = client
        .query_one(
            "SELECT token FROM subscribers WHERE email = 'reader00001@example.com'",
            &[],
        )
        .unwrap()
        .get(0);
    let (code, _) = post(
        &b,
        &format!("/unsubscribe/{token}"),
        "List-Unsubscribe=One-Click",
    );
    assert_eq!(code, 200);
    assert_eq!(status("reader00001@example.com"), "unsubscribed");

    // Three sign-ups an hour from one client network, whichever host
    // takes them: one on A above, two more here, then no more.
    assert_eq!(
        post(&b, "/subscribe", "email=x1%40example.com&name=&topics=").0,
        200
    );
    assert_eq!(
        post(&a, "/subscribe", "email=x2%40example.com&name=&topics=").0,
        200
    );
    assert_eq!(
        post(&b, "/subscribe", "email=x3%40example.com&name=&topics=").0,
        429
    );
    drop(a);
    let again = Serve::start(a_dir.path());
    assert_eq!(
        post(&again, "/subscribe", "email=x4%40example.com&name=&topics=").0,
        429,
        "the count holds across a restart"
    );
}

/// `sslmode=require` speaks TLS and checks the server's certificate: with
/// the server's authority as `db_ca_file` the session is encrypted; without
/// it the certificate is refused, before anything is done.
#[test]
fn tls_follows_sslmode_and_checks_the_certificate() {
    let url = fresh_url().replace("sslmode=disable", "sslmode=require")
        + "&application_name=digest-tls-test";
    let ca = support::postgres::ca_file();
    let dir = site(
        &url,
        &format!("db_ca_file = {:?}", ca.display().to_string()),
    );
    subscribe(dir.path(), 1);
    let serve = support::Serve::start(dir.path());
    let mut admin =
        postgres::Client::connect(&support::postgres::server_url(), postgres::NoTls).unwrap();
    let sessions: Vec<bool> = admin
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
              WHERE a.application_name = 'digest-tls-test'",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(
        !sessions.is_empty() && sessions.iter().all(|&ssl| ssl),
        "{sessions:?}"
    );
    drop(serve);

    let untrusted = site(&url, "");
    let out = digest(untrusted.path())
        .args(["subscribers", "list"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
}
