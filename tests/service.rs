//! The service end to end: feeds served over HTTP on 127.0.0.1 (good,
//! malformed, failing, hanging, not modified), `digest run` twice into a real
//! SMTP server, one-click unsubscribe with a real HTTP client, the editor's
//! preview page in headless Chromium, and the run lock.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{chromium, digest, root, text, Server as Smtp, CHROMIUM_FLAGS};

/// The requests a fixture server saw: path and headers (lowercased names).
type RequestLog = Arc<Mutex<Vec<(String, HashMap<String, String>)>>>;

/// A small HTTP/1.1 server for the fixture feeds.
struct FeedServer {
    base: String,
    /// Requests per path, and the conditional headers they carried.
    log: RequestLog,
}

fn respond(mut stream: TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
}

impl FeedServer {
    fn start() -> FeedServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log: RequestLog = Arc::default();
        let fixtures = root().join("tests/fixtures/feeds");
        let (b, l) = (base.clone(), log.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (fixtures, base, log) = (fixtures.clone(), b.clone(), l.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let mut headers = HashMap::new();
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
                        }
                    }
                    log.lock().unwrap().push((path.clone(), headers.clone()));
                    let file = |name: &str| std::fs::read(fixtures.join(name)).unwrap();
                    match path.as_str() {
                        "/rss.xml" => {
                            if headers.get("if-none-match").map(String::as_str)
                                == Some("\"rss-v1\"")
                            {
                                respond(
                                    stream,
                                    "304 Not Modified",
                                    &[("ETag", "\"rss-v1\"".into())],
                                    b"",
                                );
                            } else {
                                respond(
                                    stream,
                                    "200 OK",
                                    &[
                                        ("ETag", "\"rss-v1\"".into()),
                                        ("Content-Type", "application/rss+xml".into()),
                                    ],
                                    &file("rss.xml"),
                                );
                            }
                        }
                        "/atom.xml" => {
                            let lm = "Mon, 14 Mar 2022 10:00:00 GMT".to_owned();
                            if headers.get("if-modified-since") == Some(&lm) {
                                respond(stream, "304 Not Modified", &[], b"");
                            } else {
                                respond(
                                    stream,
                                    "200 OK",
                                    &[("Last-Modified", lm)],
                                    &file("atom.xml"),
                                );
                            }
                        }
                        "/feed.json" => respond(
                            stream,
                            "200 OK",
                            &[("Content-Type", "application/feed+json".into())],
                            &file("feed.json"),
                        ),
                        "/teaser.xml" => {
                            let body = text(&file("teaser.xml")).replace("{BASE}", &base);
                            respond(stream, "200 OK", &[], body.as_bytes())
                        }
                        "/pages/football.html" => respond(
                            stream,
                            "200 OK",
                            &[("Content-Type", "text/html".into())],
                            &file("football.html"),
                        ),
                        "/broken.xml" => respond(stream, "200 OK", &[], &file("broken.xml")),
                        "/error" => respond(stream, "500 Internal Server Error", &[], b"boom"),
                        "/hang" => {
                            std::thread::sleep(Duration::from_secs(20));
                            drop(stream);
                        }
                        _ => respond(stream, "404 Not Found", &[], b"no"),
                    }
                });
            }
        });
        FeedServer { base, log }
    }

    fn requests(&self, path: &str) -> Vec<HashMap<String, String>> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, h)| h.clone())
            .collect()
    }
}

fn site(feeds: &FeedServer, extra: &str) -> tempfile::TempDir {
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
    let feeds = FeedServer::start();
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
    let feeds = FeedServer::start();
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
    let feeds = FeedServer::start();
    let dir = site(&feeds, "");
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

struct Serve {
    child: Child,
    base: String,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Serve {
    let mut child = digest(dir)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stderr.take().unwrap());
    let base = loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "serve exited");
        if let Some(rest) = line.trim().strip_prefix("listening on ") {
            break rest.to_owned();
        }
    };
    std::thread::spawn(move || {
        let mut sink = String::new();
        let _ = reader.read_to_string(&mut sink);
    });
    Serve { child, base }
}

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

#[test]
fn one_click_unsubscribe_is_honoured_by_the_next_send_and_bad_tokens_change_nothing() {
    let feeds = FeedServer::start();
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

    let server = serve(dir.path());
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
    let feeds = FeedServer::start();
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
    let server = serve(dir.path());
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
    assert_eq!(
        agent
            .get(format!("{}/editions/2021-01-01", server.base))
            .call()
            .unwrap()
            .status()
            .as_u16(),
        404
    );

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
