//! Consent comes only from a fresh, single-use link in the owner's inbox;
//! the form takes only internet addresses.

use super::*;

/// A subscriber's unsubscribe token (what every digest carries).
fn unsubscribe_token(dir: &Path, email: &str) -> String {
    support::db_text(
        dir,
        "SELECT token FROM subscribers WHERE email = $1",
        &[email],
    )
}

fn set_status(dir: &Path, email: &str, status: &str) {
    support::db_execute(
        dir,
        "UPDATE subscribers SET status = $1 WHERE email = $2",
        &[status, email],
    );
}

/// The confirmation mails `smtp` has received for `email`.
fn confirmations_to(smtp: &Smtp, email: &str) -> Vec<support::Received> {
    smtp.received()
        .into_iter()
        .filter(|m| m.rcpt_tos == [email.to_owned()] && !is_welcome(m))
        .collect()
}

#[test]
fn consent_comes_only_from_a_fresh_single_use_link_in_the_owners_inbox() {
    let (dir, smtp) = site_with_smtp(100);
    let d = dir.path();
    add(d, "fw@example.org");
    add(d, "complains@example.org");
    add(d, "bounced@example.org");
    set_status(d, "complains@example.org", "complained");
    set_status(d, "bounced@example.org", "bounced");
    let serve = Serve::start(d);

    // fw@ leaves with the one-click link every digest carries...
    let t = unsubscribe_token(d, "fw@example.org");
    let (code, _) = post(
        &serve,
        &format!("/unsubscribe/{t}"),
        "List-Unsubscribe=One-Click",
    );
    assert_eq!(code, 200);
    // ...and someone who saw that link signs them up again and confirms
    // with it: the unsubscribe token confirms nothing.
    let (code, _) = post(
        &serve,
        "/subscribe",
        "email=fw%40example.org&name=Attacker+Chosen&topics=spam",
    );
    assert_eq!(code, 200);
    let (code, _) = post(&serve, &format!("/confirm/{t}"), "");
    assert_eq!(code, 404);
    let (code, _) = get(&serve, &format!("/confirm/{t}"));
    assert_eq!(code, 404);
    let l = list(d);
    assert_eq!(status(&l, "fw@example.org"), "unsubscribed");
    assert!(
        l["fw@example.org"]["name"].is_null(),
        "{}",
        l["fw@example.org"]
    );

    // fw@ gets a link of its own; the mail carries nothing the visitor
    // typed but the address.
    let mails = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let m = confirmations_to(&smtp, "fw@example.org");
            if !m.is_empty() || Instant::now() > deadline {
                break m;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    assert_eq!(mails.len(), 1);
    assert!(!mails[0].raw.contains("Attacker"), "{}", mails[0].raw);
    let link = confirm_link(&mails[0].raw);
    let fresh = link.rsplit('/').next().unwrap().to_owned();
    assert_eq!(fresh.len(), 32);
    assert_ne!(fresh, t);
    // Its page shows what was typed, for the owner to keep or change; GET
    // changes nothing.
    let (code, page) = get(&serve, &format!("/confirm/{fresh}"));
    assert_eq!(code, 200);
    assert!(
        page.contains("value=\"Attacker Chosen\"") && page.contains("fw@example.org"),
        "{page}"
    );
    assert_eq!(status(&list(d), "fw@example.org"), "unsubscribed");
    let (code, _) = post(
        &serve,
        &format!("/confirm/{fresh}"),
        "name=Fw+Owner&topics=",
    );
    assert_eq!(code, 200);
    let l = list(d);
    assert_eq!(status(&l, "fw@example.org"), "active");
    assert_eq!(l["fw@example.org"]["name"], "Fw Owner");
    assert_eq!(l["fw@example.org"]["topics"], "");
    // Once only.
    let (code, _) = post(&serve, &format!("/confirm/{fresh}"), "name=Again&topics=");
    assert_eq!(code, 404);
    // An active subscriber's name never changes through the public form.
    let (code, _) = post(
        &serve,
        "/subscribe",
        "email=fw%40example.org&name=Renamed&topics=x",
    );
    assert_eq!(code, 200);

    // A third party signs carol@ up with a name of their choosing; Carol's
    // own sign-up comes within the hour. Her one mail's page shows the
    // stranger's name, escaped, and she sets her own.
    let (code, _) = post(
        &serve,
        "/subscribe",
        "email=carol%40example.org&name=Hacked+%3Cb%3Ex%3C%2Fb%3E&topics=spam",
    );
    assert_eq!(code, 200);
    let (code, _) = post(
        &serve,
        "/subscribe",
        "email=carol%40example.org&name=Carol&topics=climate",
    );
    assert_eq!(code, 200);
    // Complained and bounced addresses get no mail from the public form.
    for email in ["complains%40example.org", "bounced%40example.org"] {
        let (code, _) = post(
            &serve,
            "/subscribe",
            &format!("email={email}&name=&topics="),
        );
        assert_eq!(code, 200, "the same page for everyone");
    }
    let carol = wait_for_mail(&smtp, 3);
    std::thread::sleep(Duration::from_secs(2));
    let (welcomes, all): (Vec<_>, Vec<_>) = smtp.received().into_iter().partition(is_welcome);
    assert_eq!(all.len(), 2, "fw@ and carol@ once each");
    assert_eq!(welcomes.len(), 1, "fw@ confirmed: one welcome");
    assert_eq!(welcomes[0].rcpt_tos, ["fw@example.org"]);
    assert!(confirmations_to(&smtp, "complains@example.org").is_empty());
    assert!(confirmations_to(&smtp, "bounced@example.org").is_empty());
    let carol = carol
        .into_iter()
        .find(|m| m.rcpt_tos == ["carol@example.org".to_owned()])
        .unwrap();
    assert!(!carol.raw.contains("Hacked"));
    let carol_token = confirm_link(&carol.raw)
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let (_, page) = get(&serve, &format!("/confirm/{carol_token}"));
    assert!(
        page.contains("value=\"Hacked &lt;b&gt;x&lt;/b&gt;\""),
        "{page}"
    );
    // A name the form would refuse is refused here too, the form again.
    let (code, page) = post(
        &serve,
        &format!("/confirm/{carol_token}"),
        "name=a%0Ab&topics=",
    );
    assert_eq!(code, 422, "{page}");
    assert!(
        page.contains("Please") || page.contains("control"),
        "{page}"
    );
    let (code, _) = post(
        &serve,
        &format!("/confirm/{carol_token}"),
        "name=Carol&topics=climate",
    );
    assert_eq!(code, 200);
    drop(serve);
    let l = list(d);
    assert_eq!(l["carol@example.org"]["name"], "Carol");
    assert_eq!(l["carol@example.org"]["topics"], "climate");
    assert_eq!(l["fw@example.org"]["name"], "Fw Owner");
    assert_eq!(l["fw@example.org"]["topics"], "");
    assert_eq!(status(&l, "complains@example.org"), "complained");
    assert_eq!(status(&l, "bounced@example.org"), "bounced");
    // Her digest greets her by the name she chose.
    let out_smtp = Smtp::start(&[]);
    let args = ["send", "--date", "2022-03-14", "--smtp", &out_smtp.url()];
    succeeded(digest(d).args(args).output().unwrap(), &args);
    let digests = out_smtp.received();
    let to_carol = digests
        .iter()
        .find(|m| m.rcpt_tos == ["carol@example.org".to_owned()])
        .unwrap();
    assert!(to_carol.raw.contains("Hello Carol,"), "{}", to_carol.raw);
    assert!(!digests.iter().any(|m| m.raw.contains("Hacked")));
}

#[test]
fn the_subscribe_form_takes_only_internet_addresses() {
    let (dir, smtp) = site_with_smtp(100);
    let serve = Serve::start(dir.path());
    for (email, why) in [
        ("%FF%FD%40example.com", "bytes that are not UTF-8"),
        (
            &format!("{}%40example.com", "a".repeat(246)),
            "258 characters",
        ),
        ("x%40localhost", "no internet domain"),
        ("x%40%5B127.0.0.1%5D", "an address literal"),
    ] {
        let (code, page) = post(
            &serve,
            "/subscribe",
            &format!("email={email}&name=&topics="),
        );
        assert_eq!(code, 422, "{why}: {page}");
        assert!(
            page.contains("Please enter an email address"),
            "{why}: {page}"
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(smtp.received().is_empty());
    assert_eq!(list(dir.path()).len(), 1, "only already@");
}
