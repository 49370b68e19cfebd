//! What every subscriber gets: one multipart message with the list
//! headers, through STARTTLS and a login whose password is never shown.

use super::*;

/// A CA and a certificate for 127.0.0.1, made with openssl.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            text(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=dailydigest test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

#[test]
fn every_subscriber_gets_one_multipart_message_with_list_headers() {
    let server = Server::start(&[]);
    let site = Site::new("unsubscribe_mailto = \"leave@news.example.com\"");
    let emails = site.subscribe(3);
    let out = site.send(&["--smtp", &server.url(), "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(summary(&out)["sent"], 3);

    let got = server.received();
    assert_eq!(got.len(), 3);
    assert_eq!(
        per_recipient(&got).keys().cloned().collect::<Vec<_>>(),
        emails
    );
    for r in &got {
        assert!(r.defects.is_empty(), "MIME defects: {:?}", r.defects);
        let raw = r.raw.replace("\r\n ", " ").replace("\n ", " ");
        for header in [
            "From: \"Daily Digest\" <digest@news.example.com>",
            "List-Id: Daily Digest <list.news.example.com>",
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
            "Date: ",
            "Subject: ",
            "MIME-Version: 1.0",
        ] {
            assert!(raw.contains(header), "missing {header:?} in\n{raw}");
        }
        assert!(
            raw.contains("List-Unsubscribe: <https://digest.example.com/unsubscribe/"),
            "{raw}"
        );
        // The mailto's subject carries the subscriber's VERP token, which
        // `digest bounces import` reads back.
        let mailto = raw
            .split("<mailto:leave@news.example.com?subject=unsubscribe%20")
            .nth(1)
            .unwrap_or_else(|| panic!("no mailto in {raw}"));
        assert!(
            mailto[..20].chars().all(|c| c.is_ascii_hexdigit()) && mailto[20..].starts_with('>')
        );
        assert!(
            r.message_id.starts_with("<digest.2022-03-14.")
                && r.message_id.ends_with("@news.example.com>")
        );
        assert!(raw.contains("multipart/alternative"));
        let plain = raw
            .find("Content-Type: text/plain")
            .expect("a plain-text part");
        let html = raw.find("Content-Type: text/html").expect("an HTML part");
        assert!(plain < html, "plain text first, then HTML");
        assert!(
            raw.contains("Russia and Ukraine hold fresh talks"),
            "the edition is in the message"
        );
        assert!(!r.tls && !r.auth, "plain SMTP on loopback");
    }
    // The UTF-8 display name is encoded, and personalised per subscriber.
    assert!(
        got.iter().any(|r| r.raw.contains("To: =?utf-8?")),
        "{}",
        got[0].raw
    );

    // A second run sends nothing new.
    let out = site.send(&["--smtp", &server.url(), "--json"]);
    assert!(out.status.success());
    let s = summary(&out);
    assert_eq!(
        (s["sent"].as_u64(), s["skipped"].as_u64()),
        (Some(0), Some(3))
    );
    assert_eq!(server.received().len(), 3);
}

#[test]
fn starttls_and_login_with_the_password_from_the_environment_never_shown() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(certs.path());
    let secret = "s3cret-Pa55word-xyzzy";
    let server = Server::start(&[
        "--tls",
        cert.to_str().unwrap(),
        key.to_str().unwrap(),
        "--auth",
        &format!("digest:{secret}"),
    ]);
    let site = Site::new(&format!("smtp_ca_file = {:?}", ca.display().to_string()));
    site.subscribe(2);
    let url = format!("smtp://digest@127.0.0.1:{}?tls=required", server.port);

    // A wrong password: a configuration error (exit 2), nothing sent, and
    // neither password appears anywhere, even at trace level.
    let out = site
        .digest()
        .env("DIGEST_SMTP_PASSWORD", "wrong-Pa55word-plugh")
        .args([
            "-vv",
            "send",
            "--date",
            "2022-03-14",
            "--json",
            "--smtp",
            &url,
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let all = text(&out.stderr) + &text(&out.stdout);
    assert!(all.contains("refused the login"), "{all}");
    assert!(
        !all.contains("wrong-Pa55word-plugh") && !all.contains(secret),
        "a password leaked:\n{all}"
    );
    assert_eq!(server.received().len(), 0);

    // The right one, from a password file this time.
    std::fs::write(site.path().join("pw"), format!("{secret}\n")).unwrap();
    let out = site
        .digest()
        .args([
            "-vv",
            "send",
            "--date",
            "2022-03-14",
            "--json",
            "--smtp",
            &url,
        ])
        .env("DIGEST_SMTP_PASSWORD_FILE", site.path().join("pw"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let all = text(&out.stderr) + &text(&out.stdout);
    assert!(!all.contains(secret), "the password leaked:\n{all}");
    let got = server.received();
    assert_eq!(got.len(), 2);
    assert!(
        got.iter().all(|r| r.tls && r.auth),
        "sent over STARTTLS after logging in"
    );
}
