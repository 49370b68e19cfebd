//! The outbox and sendmail transports, configuration errors before any
//! send, one send at a time, the rate limit, dry runs and limits, and
//! subscribers who left or whose rows are bad.

use super::*;

#[test]
fn the_default_transport_is_an_outbox_of_eml_files_that_parse_cleanly() {
    let site = Site::new("");
    site.subscribe(3);
    let out = site.send(&["--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut files: Vec<PathBuf> = std::fs::read_dir(site.path().join("outbox"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3);
    assert!(files[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("2022-03-14-"));
    // Python's email package (policy.default) finds no defects.
    let script = "import email, email.policy, sys\nbad = 0\nfor p in sys.argv[1:]:\n    m = email.message_from_bytes(open(p, 'rb').read(), policy=email.policy.default)\n    d = list(m.defects) + [x for part in m.walk() for x in part.defects]\n    assert m.get_body(('plain',)) is not None and m.get_body(('html',)) is not None, p\n    if d: print(p, d); bad += 1\nsys.exit(bad)\n";
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let out = site.send(&["--json"]);
    assert_eq!(summary(&out)["sent"], 0, "a re-run sends nothing");
    assert_eq!(
        std::fs::read_dir(site.path().join("outbox"))
            .unwrap()
            .count(),
        3
    );
}

#[test]
fn configuration_errors_fail_before_anything_is_sent() {
    let server = Server::start(&[]);
    let site = Site::new("");
    site.subscribe(2);
    // Plain SMTP to a non-loopback host is refused.
    let out = site.send(&["--smtp", "smtp://mail.example.com:25"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("plain SMTP without TLS"),
        "{}",
        text(&out.stderr)
    );
    // A broken template.
    std::fs::create_dir(site.path().join("templates")).unwrap();
    std::fs::write(
        site.path().join("templates/subject.tera"),
        "{{ edition.nope }}",
    )
    .unwrap();
    let out = site.send(&["--smtp", &server.url()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("subject.tera"),
        "{}",
        text(&out.stderr)
    );
    std::fs::remove_file(site.path().join("templates/subject.tera")).unwrap();
    // An edition too old to send without --force.
    std::fs::write(
        site.path().join("digest.toml"),
        "max_edition_age_days = 2\n",
    )
    .unwrap();
    let out = site.send(&["--smtp", &server.url()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("--force") && stderr.contains("days old"),
        "{stderr}"
    );
    // The setting is valid; the edition is old: the error does not blame it.
    assert!(!stderr.contains("invalid setting"), "{stderr}");
    assert_eq!(server.received().len(), 0, "nothing was sent");
}

#[test]
fn a_send_beside_a_running_one_does_not_send() {
    let server = Server::start(&[]);
    // The run lock is SQLite's file lock: SQLite on either pass.
    let site = Site::new("db = \"dailydigest.db\"");
    site.subscribe(2);
    let lock = std::fs::File::create(site.path().join("dailydigest.db.lock")).unwrap();
    lock.try_lock().unwrap();
    let out = site.send(&["--smtp", &server.url()]);
    assert_eq!(out.status.code(), Some(75), "{}", text(&out.stderr));
    assert_eq!(server.received().len(), 0);
    drop(lock);
    let out = site.send(&["--smtp", &server.url()]);
    assert!(out.status.success());
    assert_eq!(server.received().len(), 2);
}

#[test]
fn the_rate_limit_spaces_messages() {
    let server = Server::start(&[]);
    let site = Site::new("rate_limit = 10.0\nconcurrency = 4");
    site.subscribe(6);
    let start = Instant::now();
    let out = site.send(&["--smtp", &server.url()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(server.received().len(), 6);
    // Six messages at ten per second take at least half a second, whatever
    // the concurrency.
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn the_sendmail_command_gets_the_message_and_its_recipient() {
    let site = Site::new("");
    site.subscribe(2);
    let script = site.path().join("fake-sendmail");
    // A stand-in for /usr/sbin/sendmail: one file per recipient (its last argument).
    std::fs::write(&script, "#!/bin/sh\nfor a in \"$@\"; do to=\"$a\"; done\nf=\"$(dirname \"$0\")/sent-$to\"\necho \"$@\" > \"$f.args\"\ncat > \"$f.eml\"\n").unwrap();
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .unwrap();
    std::fs::write(
        site.path().join("digest.toml"),
        format!(
            "{}\nsendmail = {:?}\n",
            std::fs::read_to_string(site.path().join("digest.toml")).unwrap(),
            script.display().to_string()
        ),
    )
    .unwrap();
    let out = site.send(&["--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(summary(&out)["transport"]
        .as_str()
        .unwrap()
        .starts_with("sendmail"));
    for who in ["reader0001@example.com", "reader0002@example.com"] {
        let args = std::fs::read_to_string(site.path().join(format!("sent-{who}.args"))).unwrap();
        assert!(
            args.contains("-f digest@news.example.com"),
            "the envelope sender: {args}"
        );
    }
    let eml = std::fs::read_to_string(site.path().join("sent-reader0001@example.com.eml")).unwrap();
    assert!(
        eml.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
            && eml.contains("multipart/alternative")
    );
}

#[test]
fn dry_run_and_limit() {
    let server = Server::start(&[]);
    let site = Site::new("");
    site.subscribe(5);
    let out = site.send(&["--smtp", &server.url(), "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("would go to 5 active subscribers"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(server.received().len(), 0);
    let out = site.send(&["--smtp", &server.url(), "--limit", "2", "--json"]);
    assert_eq!(out.status.code(), Some(1), "some remain");
    assert_eq!(
        (
            summary(&out)["sent"].as_u64(),
            summary(&out)["remaining"].as_u64()
        ),
        (Some(2), Some(3))
    );
    let out = site.send(&["--smtp", &server.url(), "--json"]);
    assert!(out.status.success());
    assert_eq!(summary(&out)["sent"], 3);
    assert_eq!(per_recipient(&server.received()).len(), 5);
}

#[test]
fn unsubscribed_and_bad_rows() {
    let site = Site::new("");
    std::fs::write(site.path().join("s.csv"), "email,name,topics,topics_only\nann@example.com,Ann,\"sport, tech\",yes\nnot-an-address,X\nann@EXAMPLE.com,Dup\nbob@example.com,\"Bob\r\nBcc: evil@example.com\"\ncat@example.com\n").unwrap();
    let out = site
        .digest()
        .args(["subscribers", "import", "s.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for expected in [
        "s.csv:3: invalid address",
        "s.csv:4: duplicate",
        "s.csv:5: invalid name",
        "imported 2 subscribers, 3 rows rejected",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in {stderr}"
        );
    }
    let out = site
        .digest()
        .args(["subscribers", "remove", "cat@example.com"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = site
        .digest()
        .args(["subscribers", "export", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["topics"], "sport,tech");
    assert_eq!(v[0]["topics_only"], true);
    assert_eq!(v[1]["status"], "unsubscribed");
    assert!(
        !text(&out.stdout).contains("token"),
        "tokens are not exported"
    );
    let out = site.send(&["--json"]);
    assert_eq!(
        summary(&out)["sent"],
        1,
        "the unsubscribed address gets nothing"
    );
}
