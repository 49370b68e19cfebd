//! What articles and feeds say cannot inject: scripts never become links,
//! full-text fetches never reach internal addresses, an oversized title
//! makes bounded headers, deep HTML is refused by name, and an item dated
//! 1900 belongs to the day it was first seen.

use super::*;

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
    let json = support::db_text(d, "SELECT edition_json FROM editions", &[]);
    let mut edition: serde_json::Value = serde_json::from_str(&json).unwrap();
    edition["stories"][0]["url"] = "javascript:alert(document.domain)".into();
    edition["stories"][0]["also_reported_by"] = serde_json::json!([
        {"source": "Evil", "url": " javascript:alert(1)", "headline": "x", "article_id": "e"}
    ]);
    support::db_execute(
        d,
        "UPDATE editions SET edition_json = $1",
        &[&edition.to_string()],
    );
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
