//! The service end to end: feeds served over HTTP on 127.0.0.1 (good,
//! malformed, failing, hanging, not modified), `digest run` twice into a real
//! SMTP server, one-click unsubscribe with a real HTTP client, the editor's
//! preview page in headless Chromium, and the run lock.

use crate::support;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use support::{
    chromium, digest, http, reply, root, text, HttpServer, Serve, Server as Smtp, CHROMIUM_FLAGS,
};

/// The fixture feeds over HTTP on 127.0.0.1: good, malformed, failing,
/// hanging, not modified, and a teaser feed whose pages are here too.
fn feed_server() -> HttpServer {
    let fixtures = root().join("tests/fixtures/feeds");
    HttpServer::start(move |req| {
        let file = |name: &str| std::fs::read(fixtures.join(name)).unwrap();
        match req.path.as_str() {
            "/rss.xml" => {
                if req.headers.get("if-none-match").map(String::as_str) == Some("\"rss-v1\"") {
                    reply("304 Not Modified", &[("ETag", "\"rss-v1\"".into())], "")
                } else {
                    reply(
                        "200 OK",
                        &[
                            ("ETag", "\"rss-v1\"".into()),
                            ("Content-Type", "application/rss+xml".into()),
                        ],
                        file("rss.xml"),
                    )
                }
            }
            "/atom.xml" => {
                let lm = "Mon, 14 Mar 2022 10:00:00 GMT".to_owned();
                if req.headers.get("if-modified-since") == Some(&lm) {
                    reply("304 Not Modified", &[], "")
                } else {
                    reply("200 OK", &[("Last-Modified", lm)], file("atom.xml"))
                }
            }
            "/feed.json" => reply(
                "200 OK",
                &[("Content-Type", "application/feed+json".into())],
                file("feed.json"),
            ),
            "/teaser.xml" => {
                let body = text(&file("teaser.xml")).replace("{BASE}", &req.base);
                reply("200 OK", &[], body)
            }
            "/pages/football.html" => reply(
                "200 OK",
                &[("Content-Type", "text/html".into())],
                file("football.html"),
            ),
            "/broken.xml" => reply("200 OK", &[], file("broken.xml")),
            "/error" => reply("500 Internal Server Error", &[], "boom"),
            "/hang" => {
                // Longer than the fetch timeout: the answer comes too late.
                std::thread::sleep(Duration::from_secs(20));
                reply("200 OK", &[], "")
            }
            _ => reply("404 Not Found", &[], "no"),
        }
    })
}

fn site(feeds: &HttpServer, extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let b = &feeds.base;
    std::fs::write(
        dir.path().join("digest.toml"),
        format!(
            r#"inputs = []
max_edition_age_days = 100000
retry_base_ms = 50
fetch_timeout_secs = 2
feed_failure_threshold = 2
base_url = "http://127.0.0.1:9"
# The article pages of the full-text feed are on this machine too.
fetch_allow_hosts = ["127.0.0.1"]
{extra}
[[feeds]]
name = "World Wire"
url = "{b}/rss.xml"
weight = 1.5
[[feeds]]
name = "Science Desk"
url = "{b}/atom.xml"
[[feeds]]
name = "Markets Daily"
url = "{b}/feed.json"
[[feeds]]
name = "Teaser Times"
url = "{b}/teaser.xml"
full_text = true
[[feeds]]
name = "Broken Feed"
url = "{b}/broken.xml"
[[feeds]]
name = "Failing Feed"
url = "{b}/error"
[[feeds]]
name = "Slow Feed"
url = "{b}/hang"
"#
        ),
    )
    .unwrap();
    dir
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}\n{}", text(&out.stdout), text(&out.stderr)))
}

fn subscribe(dir: &Path, emails: &[&str]) {
    for e in emails {
        let out = digest(dir)
            .args(["subscribers", "add", e])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
}

#[test]
fn fetch_handles_every_kind_of_feed_and_dedupes_across_runs() {
    let feeds = feed_server();
    let dir = site(&feeds, "");
    let out = digest(dir.path())
        .args(["fetch", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "some feeds failed: {}",
        text(&out.stderr)
    );
    let reports = json(&out);
    let by_name: HashMap<String, serde_json::Value> = reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r.clone()))
        .collect();
    assert_eq!(by_name["World Wire"]["status"], "ok");
    assert_eq!(by_name["World Wire"]["new_articles"], 4);
    assert_eq!(by_name["Science Desk"]["new_articles"], 1);
    assert_eq!(by_name["Markets Daily"]["new_articles"], 1);
    assert_eq!(by_name["Teaser Times"]["new_articles"], 1);
    for (name, why) in [
        ("Broken Feed", "not a valid"),
        ("Failing Feed", "HTTP 500"),
        ("Slow Feed", ""),
    ] {
        assert_eq!(by_name[name]["status"], "failed", "{name}");
        assert!(
            by_name[name]["error"].as_str().unwrap().contains(why),
            "{name}: {}",
            by_name[name]
        );
    }

    // The 2022-03-14 edition has the dated items; the teaser was replaced by the full page.
    let out = digest(dir.path())
        .args(["preview", "--date", "2022-03-14", "--format", "json"])
        .output()
        .unwrap();
    let edition = json(&out);
    let headlines: Vec<&str> = edition["stories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["headline"].as_str().unwrap())
        .collect();
    assert!(
        headlines.contains(&"Russia and Ukraine hold fresh talks by video link"),
        "{headlines:?}"
    );
    assert!(headlines.contains(&"Central bank holds interest rates steady"));
    assert!(
        !headlines
            .iter()
            .any(|h| h.contains("museum") || h.contains("comet")),
        "undated and future items are first-seen today"
    );
    let football = edition["stories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["headline"] == "City beat Palace to go top")
        .unwrap();
    assert!(
        football["summary"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s.as_str().unwrap().contains("Kevin De Bruyne")),
        "full text fetched: {football}"
    );
    // Undated and future-dated items belong to the day they were first seen.
    let today = chrono::Utc::now().date_naive().to_string();
    let out = digest(dir.path())
        .args(["preview", "--date", &today, "--format", "json"])
        .output()
        .unwrap();
    let today_headlines: Vec<String> = json(&out)["stories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["headline"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        today_headlines.iter().any(|h| h.contains("museum"))
            && today_headlines.iter().any(|h| h.contains("comet")),
        "{today_headlines:?}"
    );

    // Second fetch: conditional GET answered 304, nothing new anywhere.
    let out = digest(dir.path())
        .args(["fetch", "--json"])
        .output()
        .unwrap();
    let reports = json(&out);
    let by_name: HashMap<String, serde_json::Value> = reports
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r.clone()))
        .collect();
    assert_eq!(by_name["World Wire"]["status"], "not-modified");
    assert_eq!(by_name["Science Desk"]["status"], "not-modified");
    assert_eq!(
        by_name["Markets Daily"]["new_articles"], 0,
        "deduplicated by GUID"
    );
    assert_eq!(by_name["Failing Feed"]["consecutive_failures"], 2);
    assert!(
        text(&out.stderr).contains("feed Failing Feed has failed 2 times in a row"),
        "{}",
        text(&out.stderr)
    );
    let rss = feeds.requests("/rss.xml");
    assert_eq!(
        rss[1].get("if-none-match").map(String::as_str),
        Some("\"rss-v1\""),
        "conditional GET"
    );
    assert!(feeds.requests("/atom.xml")[1].contains_key("if-modified-since"));
}

#[test]
fn run_twice_sends_once_writes_reports_and_topics_shape_each_copy() {
    let feeds = feed_server();
    let smtp = Smtp::start(&[]);
    let dir = site(&feeds, "");
    subscribe(dir.path(), &["ann@example.com", "bob@example.com"]);
    let out = digest(dir.path())
        .args([
            "subscribers",
            "add",
            "sam@example.com",
            "--topics",
            "premier league",
            "--only-topics",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());

    let run = || {
        digest(dir.path())
            .args([
                "run",
                "--date",
                "2022-03-14",
                "--json",
                "--smtp",
                &smtp.url(),
            ])
            .output()
            .unwrap()
    };
    let out = run();
    assert_eq!(
        out.status.code(),
        Some(0),
        "failing feeds below the threshold do not fail the run: {}",
        text(&out.stderr)
    );
    let report = json(&out);
    assert_eq!(report["send"]["sent"], 3);
    assert_eq!(report["exit_code"], 0);
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run-report.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk["send"]["sent"], 3);
    let got = smtp.received();
    assert_eq!(got.len(), 3);
    // Sam's copy carries only the Premier League story; the others carry all.
    let sam = &got
        .iter()
        .find(|r| r.rcpt_tos == ["sam@example.com"])
        .unwrap()
        .raw;
    assert!(
        sam.contains("City beat Palace") && !sam.contains("Central bank holds"),
        "topic-only copy"
    );
    let ann = &got
        .iter()
        .find(|r| r.rcpt_tos == ["ann@example.com"])
        .unwrap()
        .raw;
    assert!(ann.contains("City beat Palace") && ann.contains("Central bank holds"));

    // The editor sees Sam's copy with preview --subscriber.
    let out = digest(dir.path())
        .args([
            "preview",
            "--date",
            "2022-03-14",
            "--format",
            "json",
            "--subscriber",
            "sam@example.com",
        ])
        .output()
        .unwrap();
    let copy = json(&out);
    assert_eq!(copy["stories"].as_array().unwrap().len(), 1, "{copy}");
    assert_eq!(copy["stories"][0]["headline"], "City beat Palace to go top");

    let out = run();
    let report = json(&out);
    assert_eq!(
        report["send"]["sent"], 0,
        "the second run sends nothing new"
    );
    assert_eq!(report["send"]["skipped"], 3);
    assert_eq!(smtp.received().len(), 3);
    // The failing feed has now failed twice in a row: the threshold. The run says so.
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn overlapping_runs_cannot_both_send() {
    let feeds = feed_server();
    let dir = site(&feeds, "");
    subscribe(dir.path(), &["ann@example.com"]);
    let lock = std::fs::File::create(dir.path().join("dailydigest.db.lock")).unwrap();
    lock.try_lock().unwrap();
    let out = digest(dir.path())
        .args(["run", "--date", "2022-03-14"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("another run holds"));
    drop(lock);
}

#[test]
fn one_click_unsubscribe_is_honoured_by_the_next_send_and_bad_tokens_change_nothing() {
    let feeds = feed_server();
    let smtp = Smtp::start(&[]);
    let dir = site(&feeds, "");
    subscribe(dir.path(), &["ann@example.com", "bob@example.com"]);
    let out = digest(dir.path())
        .args([
            "send",
            "--date",
            "2022-03-14",
            "-i",
            &root().join("examples").display().to_string(),
            "--smtp",
            &smtp.url(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    // The link from Ann's own message.
    let ann = smtp
        .received()
        .into_iter()
        .find(|r| r.rcpt_tos == ["ann@example.com"])
        .unwrap()
        .raw;
    let token = unsubscribe_token(&ann);

    let server = Serve::start(dir.path());
    let agent = http();
    let page = agent
        .get(format!("{}/unsubscribe/{token}", server.base))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(
        page.contains("<form method=\"post\">") && page.contains("One-Click"),
        "{page}"
    );
    assert!(
        !page.contains("ann@example.com") && !page.contains("bob@example.com"),
        "reveals no address"
    );

    let mut bad = token.clone();
    bad.replace_range(0..1, if bad.starts_with('0') { "1" } else { "0" });
    let resp = agent
        .post(format!("{}/unsubscribe/{bad}", server.base))
        .send_form([("List-Unsubscribe", "One-Click")])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let body = resp.into_body().read_to_string().unwrap();
    assert!(!body.contains("@example.com"), "{body}");

    let resp = agent
        .post(format!("{}/unsubscribe/{token}", server.base))
        .send_form([("List-Unsubscribe", "One-Click")])
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp
        .into_body()
        .read_to_string()
        .unwrap()
        .contains("unsubscribed"));

    let out = digest(dir.path())
        .args(["subscribers", "list", "--format", "json"])
        .output()
        .unwrap();
    let subs = json(&out);
    assert_eq!(subs[0]["status"], "unsubscribed");
    assert_eq!(subs[1]["status"], "active", "the bad token changed nothing");

    // The next edition goes to Bob only.
    let stdin_article = "Officials opened a new bridge over the river on Tuesday. Traffic flowed freely within hours.";
    let mut child = digest(dir.path())
        .args([
            "send",
            "--date",
            "2022-03-15",
            "-i",
            "-",
            "--smtp",
            &smtp.url(),
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin_article.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got = smtp.received();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].rcpt_tos, ["bob@example.com"]);

    // RFC 8058's multipart/form-data POST works too.
    let bob_token = unsubscribe_token(&got[2].raw);
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--XyZ--\r\n";
    let resp = agent
        .post(format!("{}/unsubscribe/{bob_token}", server.base))
        .header("Content-Type", "multipart/form-data; boundary=XyZ")
        .send(body)
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let out = digest(dir.path())
        .args(["subscribers", "list", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(json(&out)[1]["status"], "unsubscribed");
}

#[test]
fn the_editors_preview_page_renders_in_headless_chromium() {
    let feeds = feed_server();
    let dir = site(&feeds, "");
    subscribe(dir.path(), &["ann@example.com"]);
    let out = digest(dir.path())
        .args([
            "send",
            "--date",
            "2022-03-14",
            "-i",
            &root().join("examples").display().to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let server = Serve::start(dir.path());
    let agent = http();
    let text_part = agent
        .get(format!("{}/editions/2022-03-14/text", server.base))
        .call()
        .unwrap();
    assert!(text_part
        .headers()
        .get("content-type")
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert!(text_part
        .into_body()
        .read_to_string()
        .unwrap()
        .contains("Russia and Ukraine hold fresh talks"));
    let mut missing = agent
        .get(format!("{}/editions/2021-01-01", server.base))
        .call()
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let page = missing.body_mut().read_to_string().unwrap();
    assert!(
        page.contains("No edition of that date is published"),
        "{page}"
    );
    assert!(!page.contains("copied incompletely"), "{page}");

    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(chromium())
        .args(CHROMIUM_FLAGS)
        .arg("--dump-dom")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("{}/editions/2022-03-14", server.base))
        .output()
        .unwrap();
    let dom = text(&out.stdout);
    assert!(
        dom.contains("Russia and Ukraine hold fresh talks by video link"),
        "the page loaded in the browser: {}",
        &dom[..dom.len().min(500)]
    );
    assert!(dom.contains("Top stories"), "rendered by the HTML template");
}

/// The token in a received message's (possibly folded) List-Unsubscribe header.
fn unsubscribe_token(raw: &str) -> String {
    let unfolded = raw.replace("\r\n ", " ");
    let header = unfolded
        .lines()
        .find(|l| l.starts_with("List-Unsubscribe: "))
        .unwrap();
    header
        .split("/unsubscribe/")
        .nth(1)
        .unwrap()
        .split('>')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn a_day_without_news_sends_nothing_and_a_later_run_with_news_sends_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let up = Arc::new(AtomicBool::new(false));
    let feed = {
        let up = up.clone();
        let rss = std::fs::read(root().join("tests/fixtures/feeds/rss.xml")).unwrap();
        HttpServer::start(move |_| {
            if up.load(Ordering::SeqCst) {
                reply("200 OK", &[], rss.clone())
            } else {
                reply("503 Service Unavailable", &[], "down")
            }
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("digest.toml"),
        format!(
            "inputs = []\nmax_edition_age_days = 100000\nfetch_timeout_secs = 2\n[[feeds]]\nname = \"Only Feed\"\nurl = \"{}/rss.xml\"\n",
            feed.base
        ),
    )
    .unwrap();
    subscribe(d, &["ann@example.com", "bob@example.com"]);
    let smtp = Smtp::start(&[]);
    let run = || {
        digest(d)
            .args([
                "run",
                "--date",
                "2022-03-14",
                "--smtp",
                &smtp.url(),
                "--json",
            ])
            .output()
            .unwrap()
    };
    // The only feed is down: no news, nothing sent, nothing spent.
    let out = run();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("no news: nothing sent"), "{stderr}");
    let report = json(&out);
    assert_eq!(report["no_news"], true, "{report}");
    assert!(report["send"].is_null(), "{report}");
    assert!(smtp.received().is_empty());
    // The feed is back the same day: the edition goes out, once each.
    up.store(true, Ordering::SeqCst);
    let out = run();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let report = json(&out);
    assert_eq!(report["no_news"], false, "{report}");
    assert_eq!(report["send"]["sent"], 2, "{report}");
    let mut to: Vec<String> = smtp
        .received()
        .iter()
        .map(|m| m.rcpt_tos[0].clone())
        .collect();
    to.sort();
    assert_eq!(to, ["ann@example.com", "bob@example.com"]);
}
