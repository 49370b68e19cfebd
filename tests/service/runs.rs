//! `digest run` as cron runs it: feeds of every kind fetched and deduped,
//! a second run sending nothing, overlapping runs, a day without news.

use super::*;

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
    // The run lock is SQLite's file lock: SQLite on either pass.
    let dir = site(&feeds, "db = \"dailydigest.db\"");
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
