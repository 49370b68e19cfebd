//! The reader's side through the binary, a real SMTP server and headless
//! Chromium: the web copy and preferences links of a sent message, the
//! archive and its Atom feed (parsed with feed-rs, conditional GET), a
//! pause that send honours, the welcome after confirming, and what a
//! phone's screen shows.

use super::*;

/// A seed-format article of `date` from the example `name`.
fn article_of(dir: &Path, name: &str, date: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("examples").join(name)).unwrap();
    let folder = dir.join(format!("news-{date}"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join(name),
        text.replacen(" date 2022-03-14", &format!(" date {date}"), 1),
    )
    .unwrap();
    folder
}

/// The text and HTML parts of a raw message.
fn parts(raw: &str) -> (String, String) {
    let m = mail_parser::MessageParser::default()
        .parse(raw.as_bytes())
        .unwrap();
    (
        m.body_text(0).unwrap().into_owned(),
        m.body_html(0).unwrap().into_owned(),
    )
}

/// The URL after `label` on a line of the text part.
fn link_after(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in {text}"))
        .trim()
        .to_owned()
}

fn feed(serve: &Serve) -> feed_rs::model::Feed {
    let (status, xml) = get(serve, "/editions.atom");
    assert_eq!(status, 200);
    feed_rs::parser::parse(xml.as_bytes()).unwrap()
}

#[test]
fn a_sent_message_opens_its_web_copy_and_preferences_and_the_archive_shows_only_published_editions()
{
    let (dir, smtp) = site_with_smtp(100);
    let d = dir.path();
    let args = [
        "subscribers",
        "add",
        "ann@example.org",
        "--topics",
        "ukraine",
    ];
    succeeded(digest(d).args(args).output().unwrap(), &args);
    let args = ["send", "--date", "2022-03-14"];
    succeeded(digest(d).args(args).output().unwrap(), &args);
    let got = smtp.received();
    let ann = got
        .iter()
        .find(|m| m.rcpt_tos == ["ann@example.org"])
        .expect("ann's digest");
    let (text_part, html_part) = parts(&ann.raw);
    let web = link_after(&text_part, "View in your browser:");
    let prefs = link_after(&text_part, "Preferences:");
    assert_eq!(web, "https://digest.example.com/editions/2022-03-14");
    assert!(
        prefs.starts_with("https://digest.example.com/preferences/"),
        "{prefs}"
    );
    let token = prefs.rsplit('/').next().unwrap().to_owned();
    assert_eq!(token.len(), 32, "{prefs}");
    // The HTML part links both too (Tera escapes the slashes).
    let html_links = html_part.replace("&#x2F;", "/");
    assert!(
        html_links.contains(&format!("href=\"{web}\"")),
        "web link in HTML"
    );
    assert!(
        html_links.contains(&format!("href=\"{prefs}\"")),
        "preferences link in HTML"
    );
    assert!(html_part.contains(">View in your browser<"));

    // A draft (built, not approved) and an approved edition not yet sent.
    for (name, date) in [
        ("2022-03-14-football.txt", "2022-03-15"),
        ("2022-03-14-shenzhen-lockdown-business.txt", "2022-03-16"),
    ] {
        let folder = article_of(d, name, date);
        let args = [
            "edition",
            "build",
            "--date",
            date,
            "-i",
            folder.to_str().unwrap(),
        ];
        succeeded(digest(d).args(args).output().unwrap(), &args);
    }
    let args = ["edition", "approve", "--date", "2022-03-16"];
    succeeded(digest(d).args(args).output().unwrap(), &args);

    let serve = Serve::start(d);
    let local = |link: &str| link.replace("https://digest.example.com", &serve.base);
    let browser = Browser::start();

    // The web copy: the edition as sent, for nobody in particular.
    browser.goto(&local(&web));
    let page = browser.text_with("Russia and Ukraine");
    assert!(
        page.contains("Russia and Ukraine hold fresh talks"),
        "{page}"
    );
    assert!(
        page.contains("This is the web copy of Daily Digest"),
        "{page}"
    );
    assert!(!page.contains("View in your browser"), "{page}");
    let html = browser
        .eval("return document.documentElement.outerHTML")
        .as_str()
        .unwrap()
        .to_owned();
    for private in [
        "ann@example.org",
        "already@example.org",
        &token,
        "/unsubscribe/",
        "/preferences/",
    ] {
        assert!(!html.contains(private), "the web copy shows {private}");
    }

    // Drafts are reachable by no URL; malformed dates are 404s.
    for path in [
        "/editions/2022-03-15",
        "/editions/2022-03-15/text",
        "/editions/2022-13-45",
        "/editions/2022-3-14",
        "/editions/2022-03-14x",
        "/editions/%00",
        "/editions?page=0",
        "/editions?page=x",
        "/editions?page=2",
    ] {
        let (status, body) = get(&serve, path);
        assert_eq!(status, 404, "{path}: {body}");
    }
    assert_eq!(
        get(&serve, "/editions/2022-03-16").0,
        200,
        "approved is published"
    );

    // The archive: sent and approved, newest first, never the draft.
    browser.goto(&format!("{}/", serve.base));
    let archive = browser.text_with("archive");
    assert!(browser
        .eval("return location.pathname")
        .as_str()
        .unwrap()
        .ends_with("/editions"));
    let at_16 = archive.find("Wednesday 16 March 2022").expect(&archive);
    let at_14 = archive.find("Monday 14 March 2022").expect(&archive);
    assert!(at_16 < at_14, "newest first: {archive}");
    assert!(!archive.contains("15 March"), "the draft: {archive}");
    assert!(archive.contains("China locks down Shenzhen"), "{archive}");
    let alternate = browser.eval(
        "const l = document.querySelector('link[rel=alternate]'); return [l.type, l.getAttribute('href')]",
    );
    assert_eq!(
        alternate,
        serde_json::json!(["application/atom+xml", "/editions.atom"])
    );

    // The feed: only what was sent.
    let f = feed(&serve);
    assert_eq!(f.entries.len(), 1, "only the sent edition");
    let entry = &f.entries[0];
    assert!(entry.id.starts_with("urn:uuid:"), "{}", entry.id);
    assert_eq!(entry.links[0].href, web);
    let content = entry.content.as_ref().unwrap();
    assert_eq!(content.content_type.essence().to_string(), "text/html");
    assert!(content
        .body
        .as_deref()
        .unwrap()
        .contains("Russia and Ukraine hold fresh talks"));
    assert!(f.links.iter().any(|l| l.rel.as_deref() == Some("self")
        && l.href == "https://digest.example.com/editions.atom"));
    assert!(f.updated.is_some());
    let first_id = entry.id.clone();

    // Conditional GET: the same feed is a 304.
    let mut r = http()
        .get(&format!("{}/editions.atom", serve.base))
        .call()
        .unwrap();
    let etag = r
        .headers()
        .get("etag")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let modified = r
        .headers()
        .get("last-modified")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let _ = r.body_mut().read_to_string();
    let feed_status = |header: &str, value: &str| {
        http()
            .get(&format!("{}/editions.atom", serve.base))
            .header(header, value)
            .call()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(feed_status("If-None-Match", &etag), 304);
    assert_eq!(feed_status("If-Modified-Since", &modified), 304);
    assert_eq!(feed_status("If-None-Match", "\"other\""), 200);

    // The preferences page: the topics, what they matched, a pause.
    browser.goto(&local(&prefs));
    let page = browser.text_with("ann@example.org");
    assert!(page.contains("Your preferences for Daily Digest"), "{page}");
    assert!(page.contains("ukraine: 2 stories"), "the hints: {page}");
    browser.eval("document.getElementById('topics').value = ''");
    browser.type_into("#topics", "climate");
    browser.click("#topics_only");
    let pause = (chrono::Utc::now().date_naive() + chrono::Duration::days(30)).to_string();
    browser.eval(&format!(
        "document.getElementById('pause_until').value = '{pause}'"
    ));
    browser.click("button[type=submit]");
    let saved = browser.text_with("Saved");
    assert!(saved.contains("Saved"), "{saved}");
    assert!(saved.contains("Paused: no digest until"), "{saved}");
    let l = list(d);
    assert_eq!(l["ann@example.org"]["topics"], "climate");
    assert_eq!(l["ann@example.org"]["topics_only"], true);
    assert_eq!(l["ann@example.org"]["paused_until"], pause.as_str());
    let args = ["subscribers", "list"];
    let table = text(&succeeded(digest(d).args(args).output().unwrap(), &args).stdout);
    let row = table
        .lines()
        .find(|l| l.starts_with("ann@example.org"))
        .unwrap();
    assert!(row.contains(&pause), "{table}");
    // An export carries the pause, and an import restores it.
    let args = ["subscribers", "export", "--format", "csv"];
    let csv = text(&succeeded(digest(d).args(args).output().unwrap(), &args).stdout);
    let copy = tempfile::tempdir().unwrap();
    std::fs::write(copy.path().join("list.csv"), &csv).unwrap();
    let args = ["subscribers", "import", "list.csv"];
    succeeded(digest(copy.path()).args(args).output().unwrap(), &args);
    assert_eq!(
        list(copy.path())["ann@example.org"]["paused_until"],
        pause.as_str()
    );

    // The change shows in her preview: only the climate story.
    let args = [
        "preview",
        "--date",
        "2022-03-14",
        "--subscriber",
        "ann@example.org",
    ];
    let preview = text(&succeeded(digest(d).args(args).output().unwrap(), &args).stdout);
    assert!(preview.contains("heat"), "the climate story: {preview}");
    assert!(
        !preview.contains("Russia and Ukraine"),
        "only her topics: {preview}"
    );

    // Bad input: a date past, a year away, topics too long.
    let path = format!("/preferences/{token}");
    let (status, page) = post(&serve, &path, "topics=x&pause_until=2020-01-01");
    assert_eq!(status, 422);
    assert!(page.contains("has passed"), "{page}");
    let far = (chrono::Utc::now().date_naive() + chrono::Duration::days(400)).to_string();
    let (status, page) = post(&serve, &path, &format!("topics=x&pause_until={far}"));
    assert_eq!(status, 422);
    assert!(page.contains("up to a year"), "{page}");
    let (status, page) = post(&serve, &path, &format!("topics={}", "a".repeat(501)));
    assert_eq!(status, 422);
    assert!(page.contains("at most 200 characters"), "{page}");
    let (status, _) = post(&serve, &path, "pause_until=not-a-date");
    assert_eq!(status, 422);
    assert_eq!(
        l["ann@example.org"]["topics"],
        list(d)["ann@example.org"]["topics"]
    );
    // GET changes nothing; unknown tokens get the usual 404.
    assert_eq!(get(&serve, &path).0, 200);
    let (status, page) = get(&serve, "/preferences/0123456789abcdef0123456789abcdef");
    assert_eq!(status, 404);
    assert!(page.contains("This link is not valid"), "{page}");
    let (status, _) = post(
        &serve,
        "/preferences/0123456789abcdef0123456789abcdef",
        "topics=x",
    );
    assert_eq!(status, 404);

    // A paused subscriber gets nothing; the others get the edition, and
    // the feed gains it (a new validator).
    let args = ["send", "--date", "2022-03-16"];
    succeeded(digest(d).args(args).output().unwrap(), &args);
    let after = smtp.received();
    let to: Vec<&str> = after[got.len()..]
        .iter()
        .map(|m| m.rcpt_tos[0].as_str())
        .collect();
    assert_eq!(to, ["already@example.org"], "ann is paused");
    assert_eq!(feed_status("If-None-Match", &etag), 200);
    let f = feed(&serve);
    assert_eq!(f.entries.len(), 2);
    assert!(
        f.entries.iter().any(|e| e.id == first_id),
        "entry ids are stable"
    );

    // On a phone and a laptop: nothing wider than the screen.
    let shots = std::env::var_os("DIGEST_SCREENSHOTS").map(PathBuf::from);
    for (name, url) in [
        ("archive", format!("{}/editions", serve.base)),
        ("web-copy", local(&web)),
        ("preferences", local(&prefs)),
    ] {
        for width in [375, 1280] {
            browser.viewport(width, 800);
            browser.goto(&url);
            browser.text_with("Daily Digest");
            let fits =
                browser.eval("return document.documentElement.scrollWidth <= window.innerWidth");
            assert_eq!(fits, true, "{name} at {width} px scrolls sideways");
            let png = browser.screenshot();
            assert!(png.starts_with(b"\x89PNG"), "{name} at {width} px");
            if let Some(dir) = &shots {
                std::fs::create_dir_all(dir).unwrap();
                std::fs::write(dir.join(format!("{name}-{width}.png")), png).unwrap();
            }
        }
    }
}

#[test]
fn a_confirmed_subscriber_is_welcomed_once_with_the_latest_edition_and_their_links() {
    let (dir, smtp) = site_with_smtp(100);
    let d = dir.path();
    let args = ["send", "--date", "2022-03-14"];
    succeeded(digest(d).args(args).output().unwrap(), &args);
    let sent = smtp.received().len();
    let serve = Serve::start(d);
    let (status, _) = post(&serve, "/subscribe", "email=new.reader%40example.org");
    assert_eq!(status, 200);
    let got = wait_for_mail(&smtp, sent + 1);
    let link = confirm_link(&got[sent].raw);
    let path = link.replace("https://digest.example.com", "");
    let (status, page) = post(&serve, &path, "name=&topics=");
    assert_eq!(status, 200, "{page}");
    let got = wait_for_mail(&smtp, sent + 2);
    assert_eq!(got.len(), sent + 2, "a welcome");
    let welcome = &got[sent + 1];
    assert_eq!(welcome.rcpt_tos, ["new.reader@example.org"]);
    let m = mail_parser::MessageParser::default()
        .parse(welcome.raw.as_bytes())
        .unwrap();
    assert_eq!(m.subject(), Some("Welcome to Daily Digest"));
    assert!(m.header("List-Unsubscribe").is_some(), "list headers");
    assert!(m.header("List-Unsubscribe-Post").is_some());
    assert!(m.header("List-Id").is_some());
    let (text_part, _) = parts(&welcome.raw);
    assert!(
        text_part.contains("https://digest.example.com/editions/2022-03-14"),
        "{text_part}"
    );
    let prefs = text_part
        .lines()
        .find(|l| l.contains("/preferences/"))
        .expect("a preferences link")
        .trim()
        .to_owned();
    assert!(
        text_part.contains("/unsubscribe/"),
        "how to leave: {text_part}"
    );
    assert_eq!(
        get(&serve, &prefs.replace("https://digest.example.com", "")).0,
        200
    );
    // Once: the background task runs every two seconds.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(smtp.received().len(), sent + 2, "one welcome only");
}
