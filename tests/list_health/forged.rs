//! What cannot change anyone: forged reports, auto-replies and replies;
//! a delay counts once an edition; reading is bounded in size and memory,
//! and imports running at once lose nothing.

use super::*;

/// `digest ARGS` in `dir` with at most `bytes` of heap.
fn digest_with_memory_limit(dir: &Path, args: &[&str], bytes: u64) -> std::process::Output {
    support::with_memory_limit(&mut digest(dir), bytes)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn forged_reports_and_replies_change_no_one_and_delays_count_once_an_edition() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(d, "soft_bounce_limit = 2\n");
    let people = [
        "v1@victim.org",
        "v2@victim.org",
        "v3@victim.org",
        "v4@victim.org",
        "v5@victim.org",
        "v6@victim.org",
    ];
    for p in people {
        add(d, p);
    }
    let sent = send_and_read_envelopes(d, &people);
    let m = maildir(d);
    let put = |name: &str, msg: String| std::fs::write(m.join("new").join(name), msg).unwrap();
    let nobody = |message_id: &str| Sent {
        verp: "bounces@example.com".into(),
        token: String::new(),
        message_id: message_id.into(),
    };
    // A DSN to the plain bounce address naming v1: an address alone.
    put(
        "1.a",
        fill(
            "postfix-dsn-5.1.1.eml",
            "v1@victim.org",
            &nobody("<x@example.com>"),
            "a",
        ),
    );
    // An ARF report naming only v2's address.
    put(
        "2.b",
        fill(
            "arf-abuse.eml",
            "v2@victim.org",
            &nobody("<x@example.com>"),
            "b",
        ),
    );
    // v3's real Message-ID, with someone else as the failed recipient.
    put(
        "3.c",
        fill(
            "postfix-dsn-5.1.1.eml",
            "unrelated@elsewhere.example",
            &nobody(&sent["v3@victim.org"].message_id),
            "c",
        ),
    );
    // v4's replies and auto-replies to their VERP address.
    let v4 = &sent["v4@victim.org"].verp;
    put(
        "4.d",
        message(
            "v4@victim.org",
            v4,
            "Subject: Re: your digest\n",
            "Status 5.1.1 of my project is done.",
            "d",
        ),
    );
    put(
        "4.e",
        message(
            "v4@victim.org",
            v4,
            "Subject: Out of office\nAuto-Submitted: auto-replied\n",
            "I am away. Please read section 5.2.1 of the handbook.",
            "e",
        ),
    );
    put(
        "4.f",
        message(
            "v4@victim.org",
            v4,
            "Subject: Re: your digest\n",
            "We moved to version 4.2.0 today.",
            "f",
        ),
    );
    // Two copies of one delay warning for v5, by VERP only (no Message-ID
    // of ours), differing in their subjects: one edition, counted once.
    let v5 = Sent {
        message_id: "<not-ours@example.com>".into(),
        ..sent["v5@victim.org"].clone()
    };
    let delay = fill("postfix-dsn-delayed-4.4.1.eml", "v5@victim.org", &v5, "g1");
    put("5.g", delay.clone());
    put(
        "5.h",
        fill("postfix-dsn-delayed-4.4.1.eml", "v5@victim.org", &v5, "g2").replacen(
            "Subject: ",
            "Subject: [copy] ",
            1,
        ),
    );
    // The genuine article: v6's own bounce, by VERP.
    put(
        "6.i",
        fill(
            "postfix-dsn-5.1.1.eml",
            "v6@victim.org",
            &sent["v6@victim.org"],
            "i",
        ),
    );

    let out = digest(d)
        .args(["bounces", "import", "maildir", "--json"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let l = list(d);
    for v in ["v1", "v2", "v3", "v4", "v5"] {
        let e = format!("{v}@victim.org");
        assert_eq!(status(&l, &e), "active", "{e}: {}", l[&e]);
    }
    assert_eq!(l["v4@victim.org"]["bounces"], 0);
    assert_eq!(l["v4@victim.org"]["soft_bounces"], 0);
    assert_eq!(
        l["v5@victim.org"]["soft_bounces"], 1,
        "{}",
        l["v5@victim.org"]
    );
    assert_eq!(status(&l, "v6@victim.org"), "bounced");
    assert_eq!(report["hard_bounces"], 1, "{report}");
    assert_eq!(report["soft_bounces"], 2, "{report}");
    assert_eq!(report["complaints"], 0, "{report}");
    assert_eq!(
        report["not_reports"].as_array().unwrap().len(),
        3,
        "{report}"
    );
    let left: Vec<String> = report["unrecognised"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| format!("{} {}", u["location"], u["reason"]))
        .collect();
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(
        left.iter()
            .any(|u| u.contains("1.a") && u.contains("names an address but no message we sent")),
        "{left:?}"
    );
    assert!(
        left.iter()
            .any(|u| u.contains("2.b") && u.contains("names an address but no message we sent")),
        "{left:?}"
    );
    assert!(
        left.iter()
            .any(|u| u.contains("3.c") && u.contains("someone else")),
        "{left:?}"
    );
    assert!(stderr.contains("not a report"), "{stderr}");
    assert_eq!(names(&m.join(".Unprocessed/cur")).len(), 3);
    assert!(names(&m.join("new")).is_empty());
}

#[test]
fn bounce_reading_is_bounded_and_concurrent_imports_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(d, "");
    let m = maildir(d);
    // A million tiny MIME parts in 6 MB, two million in 16 MB, and a pipe.
    let parts = |n: usize, part: &[u8]| {
        let mut raw = b"From: MAILER-DAEMON@mx.example.org\nTo: bounces@example.com\nSubject: x\nContent-Type: multipart/mixed; boundary=b\n\n".to_vec();
        for _ in 0..n {
            raw.extend_from_slice(part);
        }
        raw.extend_from_slice(b"--b--\n");
        raw
    };
    std::fs::write(m.join("new/1.million"), parts(1_000_000, b"--b\n\n")).unwrap();
    let big = parts(2_000_000, b"--b\n\nab\n");
    assert!(big.len() > 16_000_000);
    std::fs::write(m.join("new/2.two-million"), big).unwrap();
    let fifo = std::ffi::CString::new(m.join("new/3.pipe").to_str().unwrap()).unwrap();
    // SAFETY: mkfifo reads the path only.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    add(d, "someone@example.org");
    let out = digest_with_memory_limit(d, &["bounces", "import", "maildir", "--json"], 256 << 20);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let reasons: Vec<String> = report["unrecognised"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons.len(), 3, "{report}");
    assert!(
        reasons.iter().any(|r| r.contains("MIME parts")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("over the limit")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("a pipe")), "{reasons:?}");
    // Moved aside, never parsed again.
    assert_eq!(names(&m.join(".Unprocessed/cur")).len(), 3);
    let out = digest(d)
        .args(["bounces", "import", "maildir", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let again: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(again["messages"], 0, "{again}");
    // A device is refused before a byte is read.
    let out = digest_with_memory_limit(d, &["bounces", "import", "/dev/zero"], 256 << 20);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("only regular files are read"),
        "{}",
        text(&out.stderr)
    );

    // Two imports at once, and a mail server moving messages from new/ to
    // cur/ under them: every message is processed exactly once.
    let readers: Vec<String> = (0..20).map(|i| format!("r{i}@example.org")).collect();
    let csv: String = readers.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(d.join("readers.csv"), csv).unwrap();
    let args = ["subscribers", "import", "readers.csv"];
    succeeded(digest(d).args(args).output().unwrap(), &args);
    for (i, r) in readers.iter().enumerate() {
        let bounce = fill(
            "postfix-dsn-5.1.1.eml",
            r,
            &verp_only(d, r),
            &format!("hard{i}"),
        );
        std::fs::write(m.join(format!("new/{:04}.hard", i * 21)), bounce).unwrap();
        for j in 1..21 {
            let reply = message(
                r,
                &format!("bounces+{}@example.com", verp_token(d, r)),
                "Subject: Automatic reply: away\nAuto-Submitted: auto-replied\n",
                "Back on Monday.",
                &format!("away{i}-{j}"),
            );
            std::fs::write(m.join(format!("new/{:04}.away", i * 21 + j)), reply).unwrap();
        }
    }
    let import = || {
        let dir = d.to_path_buf();
        std::thread::spawn(move || {
            digest(&dir)
                .args(["bounces", "import", "maildir", "--json"])
                .output()
                .unwrap()
        })
    };
    let (a, b) = (import(), import());
    // The "mail server": marks every third message read, moving it.
    let mover = {
        let m = m.clone();
        std::thread::spawn(move || {
            for (i, name) in names(&m.join("new")).into_iter().enumerate() {
                if i % 3 == 0 {
                    let _ = std::fs::rename(
                        m.join("new").join(&name),
                        m.join("cur").join(format!("{name}:2,S")),
                    );
                }
            }
        })
    };
    mover.join().unwrap();
    let mut totals = (0, 0);
    for out in [a.join().unwrap(), b.join().unwrap()] {
        let stderr = text(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("No such file"), "{stderr}");
        let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        totals.0 += r["hard_bounces"].as_u64().unwrap();
        totals.1 += r["not_reports"].as_array().unwrap().len() as u64;
    }
    // A third import takes what the mail server moved before it was read.
    let out = digest(d)
        .args(["bounces", "import", "maildir", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    totals.0 += r["hard_bounces"].as_u64().unwrap();
    totals.1 += r["not_reports"].as_array().unwrap().len() as u64;
    assert_eq!(totals, (20, 400), "each message exactly once");
    let l = list(d);
    assert!(readers.iter().all(|r| status(&l, r) == "bounced"));
    assert!(names(&m.join("new")).is_empty());
}
