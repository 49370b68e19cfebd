//! The pages `serve` answers: one-click unsubscribe honoured by the next
//! send, and the editors' preview rendered in headless Chromium.

use super::*;

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
