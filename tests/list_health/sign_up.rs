//! Double opt-in: the subscribe and confirm pages in headless Chromium,
//! the per-client limit under a burst, `subscribers add --confirm`, and a
//! confirmation the mail server defers mailed again with a new link.

use super::*;

#[test]
fn double_opt_in_in_chromium_confirms_once_and_never_tells_who_is_subscribed() {
    let (dir, smtp) = site_with_smtp(100);
    let d = dir.path();
    let serve = Serve::start(d);
    // Links point at base_url (https://digest.example.com); here the same
    // paths go to the server under test.
    let local = |link: &str| link.replace("https://digest.example.com", &serve.base);
    let browser = Browser::start();

    // The form: labelled fields, nothing reveals the hidden field.
    browser.goto(&format!("{}/subscribe", serve.base));
    let labels = browser.eval(
        "return Array.from(document.querySelectorAll('input')).map(i => [i.name, i.labels.length > 0 ? i.labels[0].textContent : '', i.type])",
    );
    assert_eq!(labels[0][0], "email");
    assert_eq!(labels[0][1], "Email address");
    assert_eq!(labels[0][2], "email");
    assert_eq!(labels[1][0], "name");
    assert_eq!(labels[2][0], "topics");
    let page = browser.text();
    assert!(page.contains("Subscribe to Daily Digest"), "{page}");
    // The bot field is off screen, hidden from screen readers and out of
    // the tab order.
    let hidden = browser.eval(
        "const f = document.getElementById('website'); return [f.getBoundingClientRect().right < 0, f.closest('[aria-hidden=true]') !== null, f.tabIndex];",
    );
    assert_eq!(hidden, serde_json::json!([true, true, -1]));

    browser.type_into("#email", "new.reader@example.org");
    browser.type_into("#name", "New Reader");
    browser.type_into("#topics", "climate, football");
    browser.click("button[type=submit]");
    let thanks = browser.text_with("Check your inbox");
    assert!(thanks.contains("Check your inbox"), "{thanks}");
    assert!(thanks.contains("new.reader@example.org"), "{thanks}");

    let got = wait_for_mail(&smtp, 1);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_tos, vec!["new.reader@example.org".to_owned()]);
    assert!(
        got[0].mail_from.starts_with("bounces+"),
        "{}",
        got[0].mail_from
    );
    assert!(got[0]
        .raw
        .contains("Subject: Confirm your subscription to Daily Digest"));
    let link = confirm_link(&got[0].raw);
    assert!(
        link.starts_with("https://digest.example.com/confirm/"),
        "{link}"
    );
    let link = local(&link);
    let l = list(d);
    assert_eq!(status(&l, "new.reader@example.org"), "pending");

    // A pending subscriber gets no digest.
    let other = Smtp::start(&[]);
    let args = ["send", "--date", "2022-03-14", "--smtp", &other.url()];
    succeeded(digest(d).args(args).output().unwrap(), &args);
    let digests = other.received();
    assert_eq!(digests.len(), 1);
    assert_eq!(digests[0].rcpt_tos, vec!["already@example.org".to_owned()]);

    // The link shows a button; only pressing it confirms.
    browser.goto(&link);
    assert!(
        browser.text_with("Press Confirm").contains("Press Confirm"),
        "{}",
        browser.text()
    );
    assert_eq!(status(&list(d), "new.reader@example.org"), "pending");
    browser.click("button[type=submit]");
    assert!(
        browser
            .text_with("You are subscribed")
            .contains("You are subscribed"),
        "{}",
        browser.text()
    );
    let l = list(d);
    assert_eq!(status(&l, "new.reader@example.org"), "active");
    assert_eq!(l["new.reader@example.org"]["name"], "New Reader");
    assert_eq!(l["new.reader@example.org"]["topics"], "climate,football");

    // An address already on the list, and one that asked a minute ago: the
    // same page, and no mail.
    let same = |page: &str, email: &str| page.replace(email, "ADDRESS");
    for email in [
        "already@example.org",
        "new.reader@example.org",
        "NEW.reader@example.org",
    ] {
        browser.goto(&format!("{}/subscribe", serve.base));
        browser.type_into("#email", email);
        browser.click("button[type=submit]");
        let page = browser.text_with("Check your inbox");
        assert_eq!(
            same(&page, email),
            same(&thanks, "new.reader@example.org"),
            "{email}"
        );
    }
    // A new address twice in a row: one confirmation.
    for _ in 0..2 {
        browser.goto(&format!("{}/subscribe", serve.base));
        browser.type_into("#email", "twice@example.org");
        browser.click("button[type=submit]");
        assert!(browser
            .text_with("Check your inbox")
            .contains("Check your inbox"));
    }
    std::thread::sleep(Duration::from_secs(2));
    let (welcomes, got): (Vec<_>, Vec<_>) =
        wait_for_mail(&smtp, 3).into_iter().partition(is_welcome);
    assert_eq!(welcomes.len(), 1, "new.reader@ confirmed: one welcome");
    assert_eq!(welcomes[0].rcpt_tos, ["new.reader@example.org"]);
    assert_eq!(got.len(), 2, "one more confirmation, to twice@ only");
    assert_eq!(got[1].rcpt_tos, vec!["twice@example.org".to_owned()]);

    // A bad address is said so, with the form again.
    browser.goto(&format!("{}/subscribe", serve.base));
    browser.type_into("#email", "not-an-address@");
    browser.eval("document.querySelector('form').noValidate = true; return 0;");
    browser.click("button[type=submit]");
    assert!(
        browser
            .text_with("Please enter an email address")
            .contains("Please enter an email address"),
        "{}",
        browser.text()
    );

    // A bot filling the hidden field gets the same page and nothing is done.
    let resp = http()
        .post(&format!("{}/subscribe", serve.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send("email=bot-target%40example.org&name=&topics=&website=http%3A%2F%2Fspam.example")
        .unwrap();
    assert_eq!(resp.status(), 200);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(smtp.received().len(), 3, "two confirmations and a welcome");
    assert!(!list(d).contains_key("bot-target@example.org"));

    // Unconfirmed past confirm_days: the link is dead and the run purges it.
    support::db_execute(
        d,
        "UPDATE signups SET created_at = '2000-01-01T00:00:00.000Z', expires_at = '2000-01-08T00:00:00.000Z' WHERE email = 'twice@example.org'",
        &[],
    );
    support::db_execute(
        d,
        "UPDATE subscribers SET created_at = '2000-01-01T00:00:00.000Z' WHERE email = 'twice@example.org'",
        &[],
    );
    let twice = local(&confirm_link(&got[1].raw));
    let resp = http().get(&twice).call().unwrap();
    assert_eq!(resp.status(), 404);
    drop(serve);
    let report = run_and_report(d, &other.url());
    assert_eq!(report["purged_signups"], 1, "{report}");
    assert!(!list(d).contains_key("twice@example.org"));
}

#[test]
fn a_burst_of_sign_ups_from_one_client_is_held_to_the_limit() {
    let (dir, smtp) = site_with_smtp(5);
    let d = dir.path();
    let serve = Serve::start(d);
    let base = serve.base.clone();
    // 40 sign-ups for 40 different third parties at once, and 10 more for
    // one address.
    let threads: Vec<_> = (0..50)
        .map(|i| {
            let base = base.clone();
            std::thread::spawn(move || {
                let email = if i < 40 {
                    format!("victim{i}%40example.org")
                } else {
                    "one.victim%40example.org".to_owned()
                };
                http()
                    .post(&format!("{base}/subscribe"))
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .send(format!("email={email}&name=&topics="))
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let codes: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(codes.iter().filter(|&&c| c == 200).count(), 5, "{codes:?}");
    assert_eq!(codes.iter().filter(|&&c| c == 429).count(), 45, "{codes:?}");
    std::thread::sleep(Duration::from_secs(2));
    let got = wait_for_mail(&smtp, 5);
    assert!(
        got.len() <= 5,
        "at most the allowance is mailed: {}",
        got.len()
    );
    let mut to: Vec<String> = got.iter().map(|m| m.rcpt_tos[0].clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), got.len(), "no address mailed twice: {to:?}");
}

#[test]
fn subscribers_add_confirm_mails_the_link_instead_of_subscribing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let smtp = Smtp::start(&[]);
    write_config(
        d,
        &format!(
            "smtp_url = \"{}\"\nbase_url = \"https://digest.example.com\"\n",
            smtp.url()
        ),
    );
    let args = [
        "subscribers",
        "add",
        "asked@example.org",
        "--name",
        "Asked",
        "--confirm",
    ];
    let out = succeeded(digest(d).args(args).output().unwrap(), &args);
    assert!(
        text(&out.stderr).contains("pending"),
        "{}",
        text(&out.stderr)
    );
    let got = smtp.received();
    assert_eq!(got.len(), 1);
    assert!(confirm_link(&got[0].raw).starts_with("https://digest.example.com/confirm/"));
    assert_eq!(status(&list(d), "asked@example.org"), "pending");
    // Again within the hour: nothing sent.
    let out = succeeded(digest(d).args(args).output().unwrap(), &args);
    assert!(
        text(&out.stderr).contains("nothing sent"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(smtp.received().len(), 1);
}

#[test]
fn a_confirmation_the_mail_server_refuses_for_now_is_mailed_again_with_a_new_link() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The server answers 451 (try again later) to the first try.
    let smtp = Smtp::start(&["--fail451", "later@example.org", "--fail451-times", "1"]);
    write_config(d, &format!("smtp_url = \"{}\"\n", smtp.url()));
    add(d, "already@example.org");
    let serve = Serve::start(d);
    let (code, _) = post(
        &serve,
        "/subscribe",
        "email=later%40example.org&name=Later&topics=",
    );
    assert_eq!(code, 200);
    // Recorded, not lost: the next try (5 s on) gets through.
    let got = wait_for_mail(&smtp, 1);
    assert_eq!(got.len(), 1, "mailed again after the refusal");
    assert_eq!(got[0].rcpt_tos, ["later@example.org".to_owned()]);
    let token = confirm_link(&got[0].raw)
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (code, page) = get(&serve, &format!("/confirm/{token}"));
    assert_eq!(code, 200, "{page}");
    assert!(page.contains("value=\"Later\""), "{page}");
    let (code, _) = post(&serve, &format!("/confirm/{token}"), "name=Later&topics=");
    assert_eq!(code, 200);
    assert_eq!(status(&list(d), "later@example.org"), "active");
}
