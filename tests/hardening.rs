//! Hostile input and careless operators, through the real binary: script
//! links, feeds that point at internal addresses, oversized titles, deeply
//! nested pages, a locked database under `digest serve`, commands in the
//! wrong folder, CSV round trips, absurd settings, passwords with special
//! characters, read-only databases and feed items from 1900.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use support::{
    chromium, digest, http, reply, text, HttpServer, Reply, Serve, Server as Smtp, CHROMIUM_FLAGS,
};

fn ok(body: impl Into<Vec<u8>>) -> Reply {
    reply("200 OK", &[], body)
}

fn run(dir: &Path, args: &[&str]) -> Output {
    digest(dir).args(args).output().unwrap()
}

fn succeeds(dir: &Path, args: &[&str]) -> Output {
    support::succeeded(run(dir, args), args)
}

fn write(dir: &Path, name: &str, body: &str) {
    std::fs::write(dir.join(name), body).unwrap();
}

const BODY: &str = "Engineers in the port city of Halden launched a battery-powered ferry on Tuesday that carries two hundred passengers. The ferry charges for ten minutes at each end of its crossing. The city council said the ferry would cut emissions by about 4,000 tonnes a year.";

/// The `href`s of every link in an HTML document.
fn hrefs(html: &str) -> Vec<String> {
    let doc = scraper::Html::parse_document(html);
    let a = scraper::Selector::parse("a[href]").unwrap();
    doc.select(&a)
        .map(|e| e.value().attr("href").unwrap().to_owned())
        .collect()
}

fn web_only(links: &[String]) -> bool {
    links
        .iter()
        .all(|h| h.starts_with("http://") || h.starts_with("https://") || h.starts_with('#'))
}

#[test]
fn script_links_never_become_links_in_html_markdown_or_the_served_page() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "digest.toml",
        "inputs = [\"in\"]\nmax_edition_age_days = 100000\n",
    );
    std::fs::create_dir(d.join("in")).unwrap();
    let bad = [
        ("a.json", "javascript:alert(document.domain)"),
        ("b.json", "  JaVaScRiPt:alert(1)"),
        ("c.json", "java\tscript:alert(1)"),
        ("d.json", "javascript&#58;alert(1)"),
        ("e.json", "data:text/html,<script>alert(1)</script>"),
        ("f.json", "VBScript:msgbox(1)"),
    ];
    for (i, (name, url)) in bad.iter().enumerate() {
        let article = serde_json::json!({
            "title": format!("Ferry number {i} sets sail [x](javascript:alert(2)) <script>alert(3)</script>"),
            "date": "2022-03-14",
            "source": format!("Source {i}"),
            "url": url,
            "text": format!("{BODY} Story {i} differs in its own way number {i}."),
        });
        write(&d.join("in"), name, &article.to_string());
    }
    let out = succeeds(d, &["preview", "--date", "2022-03-14", "--format", "html"]);
    let html = text(&out.stdout);
    let links = hrefs(&html);
    assert!(web_only(&links), "{links:?}");
    let stderr = text(&out.stderr);
    for (name, _) in bad {
        assert!(
            stderr.contains(name) && stderr.contains("dropped"),
            "{name}: {stderr}"
        );
    }
    let md = text(
        &succeeds(
            d,
            &["preview", "--date", "2022-03-14", "--format", "markdown"],
        )
        .stdout,
    );
    assert!(
        !md.contains("<script>") && md.contains("&lt;script&gt;"),
        "{md}"
    );
    assert!(!md.to_lowercase().contains("](javascript"), "{md}");
    assert!(!md.to_lowercase().contains("](data:"), "{md}");

    // An edition stored with a script link (before ingest checked, or
    // edited by hand) is rendered without it, and the page forbids scripts.
    succeeds(d, &["subscribers", "add", "ann@example.com"]);
    succeeds(d, &["send", "--date", "2022-03-14"]);
    let conn = rusqlite::Connection::open(d.join("dailydigest.db")).unwrap();
    let json: String = conn
        .query_row("SELECT edition_json FROM editions", [], |r| r.get(0))
        .unwrap();
    let mut edition: serde_json::Value = serde_json::from_str(&json).unwrap();
    edition["stories"][0]["url"] = "javascript:alert(document.domain)".into();
    edition["stories"][0]["also_reported_by"] = serde_json::json!([
        {"source": "Evil", "url": " javascript:alert(1)", "headline": "x", "article_id": "e"}
    ]);
    conn.execute(
        "UPDATE editions SET edition_json = ?1",
        [edition.to_string()],
    )
    .unwrap();
    drop(conn);
    let server = Serve::start(d);
    let page = format!("{}/editions/2022-03-14", server.base);
    let response = ureq::get(&page).call().unwrap();
    let csp = response
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("script-src"),
        "{csp}"
    );
    let profile = tempfile::tempdir().unwrap();
    let dom = std::process::Command::new(chromium())
        .args(CHROMIUM_FLAGS)
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", &page])
        .output()
        .unwrap();
    let dom = text(&dom.stdout);
    assert!(dom.contains("<a "), "Chromium rendered the page: {dom}");
    let links = hrefs(&dom);
    assert!(web_only(&links), "{links:?}");
}

/// An RSS feed of one teaser item linking to `link`.
fn teaser_feed(items: &[(&str, &str)]) -> String {
    let mut rss = String::from("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>T</title><link>http://t.test/</link><description>d</description>");
    for (i, (title, link)) in items.iter().enumerate() {
        rss.push_str(&format!(
            "<item><title>{title}</title><link>{link}</link><guid>g{i}</guid><pubDate>Mon, 14 Mar 2022 09:00:00 GMT</pubDate><description>Only a teaser of the story number {i}, read more.</description></item>"
        ));
    }
    rss + "</channel></rss>"
}

#[test]
fn full_text_fetches_refuse_internal_addresses_directly_and_through_redirects() {
    let deep = format!(
        "<html><body>{}x{}</body></html>",
        "<div>".repeat(5000),
        "</div>".repeat(5000)
    );
    let server = HttpServer::start(move |req| {
        let base = &req.base;
        let port = base.rsplit(':').next().unwrap();
        match req.path.as_str() {
            "/feed.xml" => ok(teaser_feed(&[
                ("Direct", &format!("{base}/secret")),
                ("Redirected", &format!("http://localhost:{port}/redirect")),
                ("Deep", &format!("http://localhost:{port}/deep")),
            ])),
            "/secret" => ok(format!("<html><body><article><h1>Internal</h1><p>{BODY}</p><p>TOP SECRET INTERNAL MEMO about the metadata service.</p></article></body></html>")),
            "/redirect" => reply("302 Found", &[("Location", format!("{base}/secret"))], ""),
            "/deep" => ok(deep.clone()),
            _ => reply("404 Not Found", &[], "no"),
        }
    });
    let config = |extra: &str| {
        format!(
            "inputs = []\nmax_edition_age_days = 100000\nfetch_timeout_secs = 5\n{extra}\n[[feeds]]\nname = \"Teasers\"\nurl = \"{}/feed.xml\"\nfull_text = true\n",
            server.base
        )
    };
    // By default: the feed (the operator's own URL) is read, the pages it
    // points to on this machine are not, nor is the redirect's target.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "digest.toml",
        &config("fetch_allow_hosts = [\"localhost\"]"),
    );
    let out = run(dir.path(), &["fetch"]);
    let stderr = text(&out.stderr);
    assert_eq!(server.hits("/feed.xml"), 1);
    assert_eq!(server.hits("/secret"), 0, "{stderr}");
    assert_eq!(server.hits("/redirect"), 1, "the allowed host is fetched");
    assert_eq!(stderr.matches("refused").count(), 2, "{stderr}");
    assert!(stderr.contains("nests elements 5000 deep"), "{stderr}");
    let preview = text(
        &succeeds(
            dir.path(),
            &["preview", "--date", "2022-03-14", "--format", "json"],
        )
        .stdout,
    );
    assert!(!preview.contains("TOP SECRET"), "{preview}");
    assert!(preview.contains("Only a teaser"), "teasers kept: {preview}");

    // An intranet feed: allowed explicitly.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "digest.toml",
        &config("allow_private_fetch = true"),
    );
    succeeds(dir.path(), &["fetch"]);
    assert!(server.hits("/secret") >= 1);
    let preview = text(
        &succeeds(
            dir.path(),
            &["preview", "--date", "2022-03-14", "--format", "json"],
        )
        .stdout,
    );
    assert!(preview.contains("TOP SECRET"), "{preview}");
}

#[test]
fn an_oversized_title_makes_bounded_headers_and_the_breaker_quotes_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "digest.toml",
        "inputs = [\"in\"]\nmax_edition_age_days = 100000\nretry_base_ms = 10\n",
    );
    std::fs::create_dir(d.join("in")).unwrap();
    let title = "Breaking ".repeat(400);
    let article = serde_json::json!({"title": title, "date": "2022-03-14", "text": BODY});
    write(&d.join("in"), "long.json", &article.to_string());
    succeeds(
        d,
        &[
            "subscribers",
            "add",
            "ann@example.com",
            "--name",
            &"Ann ".repeat(20),
        ],
    );
    let long_name = run(
        d,
        &[
            "subscribers",
            "add",
            "bob@example.com",
            "--name",
            &"Bob ".repeat(60),
        ],
    );
    assert!(!long_name.status.success() && text(&long_name.stderr).contains("longer than"));
    let smtp = Smtp::start(&[]);
    succeeds(d, &["send", "--date", "2022-03-14", "--smtp", &smtp.url()]);
    let got = smtp.received();
    assert_eq!(got.len(), 1);
    let raw = &got[0].raw;
    let longest = raw
        .split("\r\n")
        .flat_map(|l| l.split('\n'))
        .map(str::len)
        .max()
        .unwrap();
    assert!(longest <= 998, "a line of {longest} octets");
    // The Subject header, unfolded: a bounded subject, however it is encoded.
    let mut subject = String::new();
    let mut lines = raw.lines().skip_while(|l| !l.starts_with("Subject: "));
    subject.push_str(lines.next().unwrap());
    for l in lines.take_while(|l| l.starts_with([' ', '\t'])) {
        subject.push_str(l);
    }
    assert!(subject.len() < 400, "{subject}");
    let preview = text(&succeeds(d, &["preview", "--date", "2022-03-14"]).stdout);
    let shown = preview
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("Subject: ");
    assert!(
        shown.chars().count() <= 100 && shown.ends_with('…'),
        "{shown}"
    );

    // A relay that refuses the sender: the breaker says what the server said.
    let refusing = Smtp::start(&["--reject-all"]);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "digest.toml", "max_edition_age_days = 100000\n");
    for i in 0..12 {
        succeeds(d, &["subscribers", "add", &format!("r{i}@example.com")]);
    }
    let out = run(
        d,
        &[
            "send",
            "--date",
            "2022-03-14",
            "--smtp",
            &refusing.url(),
            "-i",
            &support::root().join("examples").display().to_string(),
        ],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("the server's last reply: permanent error (554)"),
        "{stderr}"
    );
    assert!(stderr.contains("Relay access denied"), "{stderr}");
    assert!(!stderr.contains("Check `from`"), "{stderr}");
}

#[test]
fn deeply_nested_html_is_refused_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let page = format!(
        "<html><body>{}<p>{BODY}</p>{}</body></html>",
        "<div>".repeat(50_000),
        "</div>".repeat(50_000)
    );
    write(dir.path(), "deep.html", &page);
    let out = run(dir.path(), &["summarize", "deep.html"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("deep.html") && stderr.contains("nests elements 50000 deep"),
        "{stderr}"
    );
}

#[test]
fn serve_answers_while_the_database_is_locked_and_never_loses_an_unsubscribe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "digest.toml",
        "max_edition_age_days = 100000\nhttp_header_timeout_secs = 1\nsubscribe_limit_per_hour = 10\n",
    );
    succeeds(d, &["subscribers", "add", "ann@example.com"]);
    succeeds(d, &["subscribers", "add", "bob@example.com"]);
    let db = d.join("dailydigest.db");
    let token: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT token FROM subscribers WHERE email = 'ann@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let server = Serve::start(d);
    // Another process holds the write lock.
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker
        .execute_batch(
            "BEGIN IMMEDIATE; UPDATE subscribers SET name = 'x' WHERE email = 'bob@example.com';",
        )
        .unwrap();
    let agent = http();
    let started = Instant::now();
    let missing = agent.get(&format!("{}/nope", server.base)).call().unwrap();
    assert_eq!(missing.status(), 404);
    let page = agent
        .get(&format!("{}/unsubscribe/{token}", server.base))
        .call()
        .unwrap();
    assert_eq!(page.status(), 200, "reads go on under the lock");
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(page.headers().get(name).unwrap(), value, "{name}");
    }
    let csp = page
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline'; script"),
        "{csp}"
    );
    let post = agent
        .post(&format!("{}/unsubscribe/{token}", server.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send("List-Unsubscribe=One-Click")
        .unwrap();
    assert_eq!(post.status(), 200);
    // The subscribe page and sign-ups are answered too: each sign-up is
    // queued durably beside the database before the page says so, and
    // recorded and mailed once the lock is gone (never 200 and lost).
    let form = agent
        .get(&format!("{}/subscribe", server.base))
        .call()
        .unwrap();
    assert_eq!(form.status(), 200);
    for i in 0..6 {
        let signup = agent
            .post(&format!("{}/subscribe", server.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(format!("email=new{i}%40example.com&name=&topics="))
            .unwrap();
        assert_eq!(signup.status(), 200);
    }
    // A damaged line (not UTF-8) in the unsubscribe queue holds up nothing.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.join("dailydigest.db.unsubscribes"))
        .unwrap()
        .write_all(b"\xff\xfe garbage\n")
        .unwrap();
    // Well under the 10 s the database's busy timeout would have taken.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let queued = std::fs::read(d.join("dailydigest.db.unsubscribes")).unwrap();
    assert!(
        queued.split(|&b| b == b'\n').next().unwrap().len() == 64,
        "queued durably while the database was locked"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("dailydigest.db.signups"))
            .unwrap()
            .lines()
            .count(),
        6,
        "every sign-up queued durably while the database was locked"
    );
    assert!(!d.join("outbox").exists(), "nothing mailed yet");
    locker.execute_batch("ROLLBACK").unwrap();
    let status = || -> String {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row(
                "SELECT status FROM subscribers WHERE email = 'ann@example.com'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while status() != "unsubscribed" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        status(),
        "unsubscribed",
        "the queued unsubscribe was applied"
    );
    // The six sign-ups are recorded and their confirmations mailed (to
    // outbox/, which did not exist).
    let mailed = || {
        std::fs::read_dir(d.join("outbox"))
            .map(|r| r.count())
            .unwrap_or(0)
    };
    while mailed() < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(mailed(), 6, "a confirmation for each queued sign-up");
    let pending: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM subscribers WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pending, 6);
    assert_eq!(
        std::fs::read(d.join("dailydigest.db.unsubscribes")).unwrap(),
        b"",
        "the damaged line is dropped, the queue emptied"
    );

    // Half-sent requests are closed after the header timeout and do not
    // keep others out.
    let mut slow: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
            s.write_all(b"GET /editions/2022-03-14 HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    // Another client is served meanwhile (this one holds its own cap).
    let (fine, _) = support::request_from("127.0.0.2", &server.base, "GET", "/nope", "");
    assert_eq!(fine, 404);
    std::thread::sleep(Duration::from_secs(3));
    let mut closed = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut all = Vec::new();
        // Closed by the server: end of stream (or a reset), not a timeout.
        match s.read_to_end(&mut all) {
            Ok(_) => closed += 1,
            Err(e)
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                closed += 1
            }
            Err(_) => {}
        }
    }
    assert_eq!(closed, 300, "every half-sent request was closed");
}

#[test]
fn commands_that_only_read_or_update_refuse_to_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for args in [
        vec!["serve", "--listen", "127.0.0.1:0"],
        vec!["send", "--date", "2022-03-14", "--force"],
        vec!["run"],
        vec!["subscribers", "list"],
        vec!["subscribers", "export"],
        vec!["subscribers", "remove", "ann@example.com"],
        vec!["preview", "--subscriber", "ann@example.com"],
    ] {
        let out = run(d, &args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr.contains("dailydigest.db") && stderr.contains("no database file here"),
            "{args:?}: {stderr}"
        );
        assert!(
            !d.join("dailydigest.db").exists(),
            "{args:?} created a database"
        );
    }
    succeeds(d, &["subscribers", "add", "ann@example.com"]);
    assert!(d.join("dailydigest.db").exists());
}

#[test]
fn export_then_import_round_trips_every_field_and_neutralises_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    succeeds(
        d,
        &[
            "subscribers",
            "add",
            "ann@example.com",
            "--name",
            "Ann Smith",
            "--topics",
            "sport,tech",
            "--only-topics",
        ],
    );
    succeeds(
        d,
        &[
            "subscribers",
            "add",
            "bob@example.com",
            "--name",
            "=HYPERLINK(\"http://evil.example\",\"x\")",
            "--topics=-2+3",
        ],
    );
    succeeds(
        d,
        &["subscribers", "add", "cat@example.com", "--name", "@cat"],
    );
    succeeds(d, &["subscribers", "remove", "cat@example.com"]);
    let exported = text(&succeeds(d, &["subscribers", "export"]).stdout);
    let mut lines = exported.lines();
    assert_eq!(
        lines.next(),
        Some("email,name,topics,topics_only,status,bounces,last_bounce")
    );
    assert!(
        exported.contains("'=HYPERLINK")
            && exported.contains(",'-2+3,")
            && exported.contains("'@cat"),
        "{exported}"
    );
    assert!(
        exported.contains("ann@example.com,Ann Smith,\"sport,tech\",yes,active"),
        "{exported}"
    );
    assert!(
        exported.contains("cat@example.com,'@cat,,no,unsubscribed"),
        "{exported}"
    );

    let other = tempfile::tempdir().unwrap();
    write(other.path(), "backup.csv", &exported);
    let out = succeeds(other.path(), &["subscribers", "import", "backup.csv"]);
    assert!(text(&out.stderr).contains("imported 3 subscribers, 0 rows rejected"));
    let again = text(&succeeds(other.path(), &["subscribers", "export"]).stdout);
    assert_eq!(again, exported, "a round trip changes nothing");
    let list = text(&succeeds(other.path(), &["subscribers", "list", "--format", "json"]).stdout);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[1]["name"], "=HYPERLINK(\"http://evil.example\",\"x\")");
    assert_eq!(list[0]["topics_only"], true);

    // Line numbers of a CRLF file.
    write(
        other.path(),
        "crlf.csv",
        "email,name\r\ngood@example.com,Good\r\nnot-an-address,Bad\r\n\r\nalso bad,x\r\n",
    );
    let out = run(other.path(), &["subscribers", "import", "crlf.csv"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("crlf.csv:3:") && stderr.contains("crlf.csv:5:"),
        "{stderr}"
    );
}

/// The status code of what the server sent before it closed `s`; `None`
/// when it is still open (a read timed out) or was reset.
fn answer(s: &mut TcpStream) -> Option<u16> {
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).ok()?;
    text(&all).split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn a_client_that_never_sends_its_bodies_starves_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "digest.toml", "http_request_timeout_secs = 2\n");
    succeeds(d, &["subscribers", "add", "ann@example.com"]);
    let db = d.join("dailydigest.db");
    let token: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT token FROM subscribers", [], |r| r.get(0))
        .unwrap();
    let server = Serve::start(d);
    let addr = server.base.trim_start_matches("http://").to_owned();
    // 515 connections from one client, each promising a 1,000-byte body
    // that never comes.
    let mut hostile: Vec<TcpStream> = (0..515)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(
                b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n",
            )
            .unwrap();
            s
        })
        .collect();
    // Meanwhile another client's one-click unsubscribe goes through.
    let (code, body) = support::request_from(
        "127.0.0.2",
        &server.base,
        "POST",
        &format!("/unsubscribe/{token}"),
        "List-Unsubscribe=One-Click",
    );
    assert_eq!(code, 200, "{body}");
    let status: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT status FROM subscribers", [], |r| r.get(0))
        .unwrap();
    assert_eq!(status, "unsubscribed");
    // None of the hostile connections is held past its deadline (2 s) and
    // the wait for a slot (2 s): each was answered, 408 (the body never
    // came) or 503 (no slot for it), and closed, none reset.
    std::thread::sleep(Duration::from_secs(6));
    let mut codes = std::collections::BTreeMap::new();
    for s in &mut hostile {
        *codes.entry(answer(s)).or_insert(0) += 1;
    }
    assert_eq!(
        codes.keys().copied().collect::<Vec<_>>(),
        [Some(408), Some(503)],
        "{codes:?}"
    );
    assert!(codes[&Some(408)] >= 32, "{codes:?}");
}

#[test]
fn absurd_settings_are_refused_at_load_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    succeeds(d, &["subscribers", "add", "ann@example.com"]);
    for (setting, key) in [
        ("rate_limit = 1e-20", "rate_limit"),
        ("rate_limit = -1.0", "rate_limit"),
        ("retry_base_ms = 100000000000000000", "retry_base_ms"),
        ("retry_base_ms = 0", "retry_base_ms"),
        (
            "fetch_timeout_secs = 9223372036854775807",
            "fetch_timeout_secs",
        ),
        ("fetch_timeout_secs = 0", "fetch_timeout_secs"),
        ("max_attempts = 0", "max_attempts"),
        ("max_attempts = 1000000", "max_attempts"),
        ("concurrency = 0", "concurrency"),
        ("concurrency = 100000", "concurrency"),
        ("base_url = \"javascript:alert(1)\"", "base_url"),
        (
            "base_url = \"https://digest.example.com/\\r\\nBcc: x@evil.example\"",
            "base_url",
        ),
        (
            "unsubscribe_mailto = \"leave@example.com\\r\\nBcc: x@evil.example\"",
            "unsubscribe_mailto",
        ),
        ("title = \"Daily\\nDigest\"", "title"),
        ("sendmail = \"/nonexistent/sendmail\"", "sendmail"),
        // A billion days overflowed the date arithmetic of run and serve.
        ("confirm_days = 1000000000", "confirm_days"),
        ("soft_bounce_limit = 0", "soft_bounce_limit"),
        ("soft_bounce_limit = 4294967295", "soft_bounce_limit"),
        ("subscribe_limit_per_hour = 0", "subscribe_limit_per_hour"),
        ("max_edition_age_days = -1", "max_edition_age_days"),
        ("http_request_timeout_secs = 0", "http_request_timeout_secs"),
        ("summary_words = 1000000000", "summary_words"),
        ("max_stories = 0", "max_stories"),
        ("feed_failure_threshold = 0", "feed_failure_threshold"),
        (
            "[transformer]\nbatch_size = 100000",
            "transformer.batch_size",
        ),
    ] {
        let age = if setting.starts_with("max_edition_age_days") {
            ""
        } else {
            "max_edition_age_days = 100000\n"
        };
        write(d, "digest.toml", &format!("{age}{setting}\n"));
        let out = run(d, &["send", "--date", "2022-03-14", "--force"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{setting}: {stderr}");
        assert!(stderr.contains(key), "{setting}: {stderr}");
        assert!(!stderr.contains("panicked"), "{setting}: {stderr}");
    }
    assert!(!d.join("outbox").exists(), "nothing was sent");
}

#[test]
fn key_and_password_files_are_small_regular_files_and_keys_stay_private() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = "from = \"Daily Digest <digest@example.com>\"\nmax_edition_age_days = 100000\n";
    write(d, "digest.toml", base);
    succeeds(d, &["subscribers", "add", "ann@example.com"]);
    // Devices: refused before a byte is read (they once took gigabytes).
    for (var, key, extra) in [
        ("DIGEST_SMTP_PASSWORD_FILE", "smtp_password_file", ""),
        (
            "DIGEST_DKIM_KEY_FILE",
            "dkim_key_file",
            "dkim_selector = \"news\"\n",
        ),
    ] {
        write(d, "digest.toml", &format!("{base}{extra}"));
        let out = support::with_memory_limit(&mut digest(d), 512 << 20)
            .args(["send", "--date", "2022-03-14"])
            .env(var, "/dev/zero")
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {stderr}");
        assert!(
            stderr.contains(key) && stderr.contains("/dev/zero") && stderr.contains("device"),
            "{var}: {stderr}"
        );
    }
    assert!(!d.join("outbox").exists(), "nothing was sent");
    // A folder as the key file says so (not "cannot read config file").
    write(
        d,
        "digest.toml",
        &format!("{base}dkim_key_file = \"keys\"\ndkim_selector = \"news\"\n"),
    );
    std::fs::create_dir(d.join("keys")).unwrap();
    let out = run(d, &["send", "--date", "2022-03-14"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("dkim_key_file") && stderr.contains("directory"),
        "{stderr}"
    );
    assert!(!stderr.contains("config file"), "{stderr}");
    // A selector that is not a DNS label writes no key.
    let out = run(d, &["dkim", "keygen", "--selector", "a\nb"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("DNS label"),
        "{}",
        text(&out.stderr)
    );
    assert!(std::fs::read_dir(d).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("dkim-")));
    // A key every user may read works, with a warning.
    succeeds(d, &["dkim", "keygen", "--selector", "news"]);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            d.join("dkim-news.pem"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    write(
        d,
        "digest.toml",
        &format!("{base}dkim_key_file = \"dkim-news.pem\"\ndkim_selector = \"news\"\n"),
    );
    let out = succeeds(d, &["send", "--date", "2022-03-14"]);
    assert!(
        text(&out.stderr).contains("can be read by every user of this machine"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_password_with_special_characters_never_shows_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    succeeds(d, &["subscribers", "add", "ann@example.com"]);
    write(d, "digest.toml", "max_edition_age_days = 100000\nsmtp_url = \"smtps://digest:s3cr@t/pa#ss?w0rd@mail.example.com:465\"\n");
    let out = run(d, &["send", "--date", "2022-03-14"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("percent-encode"), "{stderr}");
    for piece in ["s3cr", "t/pa", "ss?w0rd", "w0rd"] {
        assert!(!stderr.contains(piece), "{piece}: {stderr}");
    }
    assert!(stderr.contains("smtps://mail.example.com:465"), "{stderr}");
}

/// Runs the binary as the unprivileged user `nobody` (root reads and
/// writes any file, whatever its mode).
fn as_nobody(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = if nix_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_digest"),
        ]);
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_digest"))
    };
    cmd.current_dir(dir).args(args).env_remove("RUST_LOG");
    cmd.output().unwrap()
}

fn nix_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| text(&o.stdout).trim() == "0")
}

#[test]
fn a_read_only_database_is_read_and_a_write_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    succeeds(
        d,
        &["subscribers", "add", "ann@example.com", "--name", "Ann"],
    );
    // Checkpointed and closed: a database file alone, in a folder nobody may write.
    rusqlite::Connection::open(d.join("dailydigest.db"))
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        d.join("dailydigest.db"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    if !nix_root() {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let list = as_nobody(d, &["subscribers", "list"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert!(text(&list.stdout).contains("ann@example.com"));
    let add = as_nobody(d, &["subscribers", "add", "bob@example.com"]);
    let stderr = text(&add.stderr);
    assert!(!add.status.success());
    assert!(
        stderr.contains("read-only") && stderr.contains("dailydigest.db"),
        "{stderr}"
    );
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn feed_items_dated_1900_belong_to_the_day_they_were_first_seen() {
    let rss = "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Old</title><link>http://o.test/</link><description>d</description>\
        <item><title>Harbour ferry sets sail on battery power</title><link>http://o.test/ferry</link><guid>ferry</guid><pubDate>Mon, 01 Jan 1900 00:00:00 GMT</pubDate>\
        <description>Engineers launched a battery-powered ferry that carries two hundred passengers across the fjord every day.</description></item></channel></rss>";
    let server = HttpServer::start(move |_| ok(rss));
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "digest.toml",
        &format!(
            "inputs = []\n[[feeds]]\nname = \"Old\"\nurl = \"{}/feed.xml\"\n",
            server.base
        ),
    );
    succeeds(dir.path(), &["fetch"]);
    let today = text(&succeeds(dir.path(), &["preview", "--format", "json"]).stdout);
    assert!(today.contains("Harbour ferry sets sail"), "{today}");
}
