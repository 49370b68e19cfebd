//! Bounces, complaints and unsubscribe mail read from a Maildir and an
//! mbox, each applied once; `digest run` imports them before it sends.

use super::*;

#[test]
fn bounces_complaints_and_unsubscribes_are_imported_once_and_the_rest_left_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(d, "soft_bounce_limit = 2\n");
    let people = [
        "postfix@example.org",
        "exim@example.org",
        "sendmail@example.org",
        "exchange@example.org",
        "gmail@example.org",
        "complains@example.org",
        "redacted@example.org",
        "leaves@example.org",
        "soft@example.org",
        "recovers@example.org",
        "stays@example.org",
    ];
    for p in people {
        add(d, p);
    }
    let sent = send_and_read_envelopes(d, &people);
    let m = maildir(d);
    let n = std::cell::Cell::new(0);
    let put = |file: &str, msg: String| {
        n.set(n.get() + 1);
        let name = format!("16472376{:02}.M1P1.mx.{file}", n.get());
        std::fs::write(m.join("new").join(name), msg).unwrap();
    };
    for (i, (fixture_name, rcpt)) in [
        ("postfix-dsn-5.1.1.eml", "postfix@example.org"),
        ("exim-text-550.eml", "exim@example.org"),
        ("sendmail-text-550.eml", "sendmail@example.org"),
        ("arf-abuse.eml", "complains@example.org"),
        ("arf-redacted.eml", "redacted@example.org"),
        ("unsubscribe-request.eml", "leaves@example.org"),
        // A delay warning, then the final temporary failure of the same
        // edition: one temporary failure in a row, still active.
        ("postfix-dsn-delayed-4.4.1.eml", "soft@example.org"),
        ("postfix-text-4.2.2.eml", "soft@example.org"),
        ("postfix-dsn-delayed-4.4.1.eml", "recovers@example.org"),
        ("postfix-dsn-delivered.eml", "recovers@example.org"),
    ]
    .into_iter()
    .enumerate()
    {
        put(
            fixture_name,
            fill(fixture_name, rcpt, &sent[rcpt], &format!("u{i}")),
        );
    }
    let stranger = Sent {
        verp: "bounces@example.com".into(),
        token: String::new(),
        message_id: "<nothing@example.com>".into(),
    };
    put(
        "not-a-bounce.eml",
        fill("not-a-bounce.eml", "x", &stranger, "n1"),
    );
    put(
        "bounce-without-code.eml",
        fill("bounce-without-code.eml", "x", &stranger, "n2"),
    );

    // Two more in an mbox (RFC 4155, mboxrd quoting).
    let mut mbox = String::new();
    for (fixture_name, rcpt) in [
        ("gmail-text-5.1.1.eml", "gmail@example.org"),
        ("exchange-text-5.1.10.eml", "exchange@example.org"),
    ] {
        mbox.push_str("From MAILER-DAEMON Mon Mar 14 06:01:11 2022\n");
        for line in fill(fixture_name, rcpt, &sent[rcpt], "mbox").lines() {
            if line.trim_start_matches('>').starts_with("From ") {
                mbox.push('>');
            }
            mbox.push_str(line);
            mbox.push('\n');
        }
        mbox.push('\n');
    }
    std::fs::write(d.join("bounces.mbox"), &mbox).unwrap();

    let out = digest(d)
        .args(["bounces", "import", "maildir", "bounces.mbox", "--json"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one is left for a person: {stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["messages"], 14, "{report}");
    assert_eq!(report["hard_bounces"], 5, "{report}");
    assert_eq!(report["soft_bounces"], 3, "{report}");
    assert_eq!(report["bounced"], 5, "{report}");
    assert_eq!(report["complaints"], 2, "{report}");
    assert_eq!(report["unsubscribes"], 1, "{report}");
    assert_eq!(report["delivered"], 1, "{report}");
    assert_eq!(report["duplicates"], 0, "{report}");
    let left = report["unrecognised"].as_array().unwrap();
    assert_eq!(left.len(), 1, "{report}");
    assert_eq!(
        report["not_reports"].as_array().unwrap().len(),
        1,
        "{report}"
    );
    // A reader's reply that mentions "550" is not a report: left alone.
    assert!(
        stderr.contains("not-a-bounce.eml: not a report: a message from reader@example.org"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bounce-without-code.eml: a bounce without a status code"),
        "{stderr}"
    );

    let l = list(d);
    for p in ["postfix", "exim", "sendmail", "exchange", "gmail"] {
        let e = format!("{p}@example.org");
        assert_eq!(status(&l, &e), "bounced", "{e}: {}", l[&e]);
        assert_eq!(l[&e]["bounces"], 1);
        assert!(
            l[&e]["last_bounce"].as_str().unwrap().starts_with("5.1."),
            "{}",
            l[&e]
        );
    }
    assert!(l["exchange@example.org"]["last_bounce"]
        .as_str()
        .unwrap()
        .contains("5.1.10"));
    assert_eq!(status(&l, "complains@example.org"), "complained");
    assert_eq!(status(&l, "redacted@example.org"), "complained");
    assert_eq!(status(&l, "leaves@example.org"), "unsubscribed");
    assert_eq!(status(&l, "soft@example.org"), "active");
    assert_eq!(
        l["soft@example.org"]["soft_bounces"], 1,
        "the same edition counts once"
    );
    assert_eq!(l["soft@example.org"]["bounces"], 2);
    assert_eq!(status(&l, "recovers@example.org"), "active");
    assert_eq!(
        l["recovers@example.org"]["soft_bounces"], 0,
        "a delivery resets the count"
    );
    assert_eq!(status(&l, "stays@example.org"), "active");
    assert_eq!(l["stays@example.org"]["bounces"], 0);

    // The processed ones moved to cur/ (seen), the reply too but unseen
    // (for a person to read); the bounce that can never be processed is
    // moved aside to .Unprocessed/, so no later import reads it again.
    assert!(names(&m.join("new")).is_empty());
    let cur = names(&m.join("cur"));
    assert_eq!(cur.len(), 11, "{cur:?}");
    let (seen, unseen): (Vec<&String>, Vec<&String>) =
        cur.iter().partition(|n| n.ends_with(":2,S"));
    assert_eq!(seen.len(), 10, "{cur:?}");
    assert!(
        unseen[0].contains("not-a-bounce.eml") && unseen[0].ends_with(":2,"),
        "{cur:?}"
    );
    let aside = names(&m.join(".Unprocessed/cur"));
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(aside[0].contains("bounce-without-code.eml"), "{aside:?}");
    let cur: Vec<String> = seen.into_iter().cloned().collect();

    // Again, with a processed copy put back into new/ under another name:
    // nothing counts twice (by Message-ID), the mbox neither.
    std::fs::copy(
        m.join("cur").join(&cur[0]),
        m.join("new/copy-of-a-processed-one"),
    )
    .unwrap();
    // A file processed before is recognised in cur/ by its Maildir name,
    // without being read again: garbling it changes nothing.
    std::fs::write(m.join("cur").join(&cur[1]), "garbled").unwrap();
    let out = digest(d)
        .args(["bounces", "import", "maildir", "bounces.mbox", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["messages"], 14, "{again}");
    assert_eq!(again["duplicates"], 14, "{again}");
    assert_eq!(again["hard_bounces"], 0, "{again}");
    assert_eq!(again["soft_bounces"], 0, "{again}");
    assert!(again["unrecognised"].as_array().unwrap().is_empty());
    assert!(again["not_reports"].as_array().unwrap().is_empty());
    assert_eq!(list(d)["soft@example.org"]["soft_bounces"], 1);
    assert!(!m.join("new/copy-of-a-processed-one").exists());

    // The edition of 2022-03-16 goes out, and soft@'s copy draws a second
    // temporary failure, with none delivered in between: the limit (2) is
    // reached and soft@ is bounced. (A date written into a report proves
    // nothing: only the Message-ID of a digest we sent counts.)
    std::fs::create_dir(d.join("later")).unwrap();
    std::fs::write(
        d.join("later/2022-03-16-harbour.txt"),
        " date 2022-03-16 The harbour authority opened a second ferry terminal on Wednesday. \
         The terminal doubles the number of crossings each day. Officials said it cost less than planned.",
    )
    .unwrap();
    let smtp = Smtp::start(&[]);
    let args = [
        "send",
        "--date",
        "2022-03-16",
        "-i",
        "later",
        "--smtp",
        &smtp.url(),
    ];
    succeeded(digest(d).args(args).output().unwrap(), &args);
    let second = smtp
        .received()
        .into_iter()
        .find(|m| m.rcpt_tos == ["soft@example.org".to_owned()])
        .expect("soft@ is still active and gets the next edition");
    assert!(second.message_id.starts_with("<digest.2022-03-16."));
    let later = Sent {
        message_id: second.message_id.clone(),
        ..sent["soft@example.org"].clone()
    };
    let f = d.join("later.eml");
    std::fs::write(
        &f,
        fill(
            "postfix-text-4.2.2.eml",
            "soft@example.org",
            &later,
            "later",
        ),
    )
    .unwrap();
    let out = digest(d)
        .args(["bounces", "import", "later.eml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let l = list(d);
    assert_eq!(
        status(&l, "soft@example.org"),
        "bounced",
        "{}",
        l["soft@example.org"]
    );
    assert_eq!(l["soft@example.org"]["soft_bounces"], 2);

    // Export shows status and bounce counts; import reads it back.
    let args = ["subscribers", "export", "--format", "csv"];
    let csv = text(&succeeded(digest(d).args(args).output().unwrap(), &args).stdout);
    assert!(
        csv.starts_with("email,name,topics,topics_only,status,bounces,last_bounce,paused_until\n"),
        "{csv}"
    );
    let postfix = csv.lines().find(|l| l.starts_with("postfix@")).unwrap();
    assert!(
        postfix.starts_with("postfix@example.org,,,no,bounced,1,"),
        "{csv}"
    );
    assert!(postfix.contains("5.1.1"), "{csv}");
    assert!(
        csv.contains("complains@example.org,,,no,complained,0,"),
        "{csv}"
    );
    let table = text(
        &succeeded(
            digest(d).args(["subscribers", "list"]).output().unwrap(),
            &["subscribers", "list"],
        )
        .stdout,
    );
    assert!(table.lines().next().unwrap().contains("BOUNCES"), "{table}");
    let copy = tempfile::tempdir().unwrap();
    std::fs::write(copy.path().join("list.csv"), &csv).unwrap();
    let args = ["subscribers", "import", "list.csv"];
    succeeded(digest(copy.path()).args(args).output().unwrap(), &args);
    let restored = list(copy.path());
    assert_eq!(status(&restored, "complains@example.org"), "complained");
    // The round trip keeps the bounce record too.
    assert_eq!(restored["postfix@example.org"]["bounces"], 1);
    assert_eq!(
        restored["postfix@example.org"]["last_bounce"],
        l["postfix@example.org"]["last_bounce"]
    );
    assert_eq!(restored["soft@example.org"]["bounces"], 3);
    let args = ["subscribers", "export", "--format", "csv"];
    let again = text(&succeeded(digest(copy.path()).args(args).output().unwrap(), &args).stdout);
    assert_eq!(again, csv, "export, import, export changes nothing");
}

#[test]
fn digest_run_imports_the_bounce_maildir_first_and_skips_who_bounced() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(d, "bounces_maildir = \"maildir\"\n");
    add(d, "gone@example.org");
    add(d, "here@example.org");
    let m = maildir(d);
    // gone@'s bounce carries its VERP token; the one for here@ only its
    // address (anyone could have written it): it changes nothing.
    std::fs::write(
        m.join("new/1647237600.M1P1.mx"),
        fill(
            "postfix-dsn-5.1.1.eml",
            "gone@example.org",
            &verp_only(d, "gone@example.org"),
            "run",
        ),
    )
    .unwrap();
    let address_only = Sent {
        verp: "bounces@example.com".into(),
        token: String::new(),
        message_id: "<old-message@example.com>".into(),
    };
    std::fs::write(
        m.join("new/1647237601.M1P1.mx"),
        fill(
            "postfix-dsn-5.1.1.eml",
            "here@example.org",
            &address_only,
            "forged",
        ),
    )
    .unwrap();
    let smtp = Smtp::start(&[]);
    let report = run_and_report(d, &smtp.url());
    let got = smtp.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].rcpt_tos, vec!["here@example.org".to_owned()]);
    assert_eq!(report["bounces"]["hard_bounces"], 1, "{report}");
    assert_eq!(report["bounces"]["bounced"], 1, "{report}");
    let left = report["bounces"]["unrecognised"].as_array().unwrap();
    assert_eq!(left.len(), 1, "{report}");
    assert!(
        left[0]["reason"]
            .as_str()
            .unwrap()
            .contains("names an address but no message we sent"),
        "{report}"
    );
    assert_eq!(report["send"]["sent"], 1, "{report}");
    assert_eq!(status(&list(d), "gone@example.org"), "bounced");
    assert_eq!(status(&list(d), "here@example.org"), "active");
    assert!(names(&m.join("new")).is_empty());
    assert_eq!(names(&m.join(".Unprocessed/cur")).len(), 1);
}
