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

mod pages;
mod runs;

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
