//! Settings and secrets: a CSV export imports back with every field,
//! absurd settings are refused naming the key, key and password files are
//! small regular files, and a password never shows in an error.

use super::*;

#[test]
fn export_then_import_round_trips_every_field_and_neutralises_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    succeeds(
        d,
        &[
            "subscribers",
            "add",
            "ann@example.com",
            "--name",
            "Ann Smith",
            "--topics",
            "sport,tech",
            "--only-topics",
        ],
    );
    succeeds(
        d,
        &[
            "subscribers",
            "add",
            "bob@example.com",
            "--name",
            "=HYPERLINK(\"http://evil.example\",\"x\")",
            "--topics=-2+3",
        ],
    );
    succeeds(
        d,
        &["subscribers", "add", "cat@example.com", "--name", "@cat"],
    );
    succeeds(d, &["subscribers", "remove", "cat@example.com"]);
    let exported = text(&succeeds(d, &["subscribers", "export"]).stdout);
    let mut lines = exported.lines();
    assert_eq!(
        lines.next(),
        Some("email,name,topics,topics_only,status,bounces,last_bounce,paused_until")
    );
    assert!(
        exported.contains("'=HYPERLINK")
            && exported.contains(",'-2+3,")
            && exported.contains("'@cat"),
        "{exported}"
    );
    assert!(
        exported.contains("ann@example.com,Ann Smith,\"sport,tech\",yes,active"),
        "{exported}"
    );
    assert!(
        exported.contains("cat@example.com,'@cat,,no,unsubscribed"),
        "{exported}"
    );

    let other = tempfile::tempdir().unwrap();
    write(other.path(), "backup.csv", &exported);
    let out = succeeds(other.path(), &["subscribers", "import", "backup.csv"]);
    assert!(text(&out.stderr).contains("imported 3 subscribers, 0 rows rejected"));
    let again = text(&succeeds(other.path(), &["subscribers", "export"]).stdout);
    assert_eq!(again, exported, "a round trip changes nothing");
    let list = text(&succeeds(other.path(), &["subscribers", "list", "--format", "json"]).stdout);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[1]["name"], "=HYPERLINK(\"http://evil.example\",\"x\")");
    assert_eq!(list[0]["topics_only"], true);

    // Line numbers of a CRLF file.
    write(
        other.path(),
        "crlf.csv",
        "email,name\r\ngood@example.com,Good\r\nnot-an-address,Bad\r\n\r\nalso bad,x\r\n",
    );
    let out = run(other.path(), &["subscribers", "import", "crlf.csv"]);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("crlf.csv:3:") && stderr.contains("crlf.csv:5:"),
        "{stderr}"
    );
}

#[test]
fn absurd_settings_are_refused_at_load_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    succeeds(d, &["subscribers", "add", "ann@example.com"]);
    for (setting, key) in [
        ("rate_limit = 1e-20", "rate_limit"),
        ("rate_limit = -1.0", "rate_limit"),
        ("retry_base_ms = 100000000000000000", "retry_base_ms"),
        ("retry_base_ms = 0", "retry_base_ms"),
        (
            "fetch_timeout_secs = 9223372036854775807",
            "fetch_timeout_secs",
        ),
        ("fetch_timeout_secs = 0", "fetch_timeout_secs"),
        ("max_attempts = 0", "max_attempts"),
        ("max_attempts = 1000000", "max_attempts"),
        ("concurrency = 0", "concurrency"),
        ("concurrency = 100000", "concurrency"),
        ("base_url = \"javascript:alert(1)\"", "base_url"),
        (
            "base_url = \"https://digest.example.com/\\r\\nBcc: x@evil.example\"",
            "base_url",
        ),
        (
            "unsubscribe_mailto = \"leave@example.com\\r\\nBcc: x@evil.example\"",
            "unsubscribe_mailto",
        ),
        ("title = \"Daily\\nDigest\"", "title"),
        ("sendmail = \"/nonexistent/sendmail\"", "sendmail"),
        // A billion days overflowed the date arithmetic of run and serve.
        ("confirm_days = 1000000000", "confirm_days"),
        ("soft_bounce_limit = 0", "soft_bounce_limit"),
        ("soft_bounce_limit = 4294967295", "soft_bounce_limit"),
        ("subscribe_limit_per_hour = 0", "subscribe_limit_per_hour"),
        ("max_edition_age_days = -1", "max_edition_age_days"),
        ("http_request_timeout_secs = 0", "http_request_timeout_secs"),
        ("summary_words = 1000000000", "summary_words"),
        ("max_stories = 0", "max_stories"),
        ("feed_failure_threshold = 0", "feed_failure_threshold"),
        (
            "[transformer]\nbatch_size = 100000",
            "transformer.batch_size",
        ),
    ] {
        let age = if setting.starts_with("max_edition_age_days") {
            ""
        } else {
            "max_edition_age_days = 100000\n"
        };
        write(d, "digest.toml", &format!("{age}{setting}\n"));
        let out = run(d, &["send", "--date", "2022-03-14", "--force"]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{setting}: {stderr}");
        assert!(stderr.contains(key), "{setting}: {stderr}");
        assert!(!stderr.contains("panicked"), "{setting}: {stderr}");
    }
    assert!(!d.join("outbox").exists(), "nothing was sent");
}

#[test]
fn key_and_password_files_are_small_regular_files_and_keys_stay_private() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let base = "from = \"Daily Digest <digest@example.com>\"\nmax_edition_age_days = 100000\n";
    write(d, "digest.toml", base);
    succeeds(d, &["subscribers", "add", "ann@example.com"]);
    // Devices: refused before a byte is read (they once took gigabytes).
    for (var, key, extra) in [
        ("DIGEST_SMTP_PASSWORD_FILE", "smtp_password_file", ""),
        (
            "DIGEST_DKIM_KEY_FILE",
            "dkim_key_file",
            "dkim_selector = \"news\"\n",
        ),
    ] {
        write(d, "digest.toml", &format!("{base}{extra}"));
        let out = support::with_memory_limit(&mut digest(d), 512 << 20)
            .args(["send", "--date", "2022-03-14"])
            .env(var, "/dev/zero")
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {stderr}");
        assert!(
            stderr.contains(key) && stderr.contains("/dev/zero") && stderr.contains("device"),
            "{var}: {stderr}"
        );
    }
    assert!(!d.join("outbox").exists(), "nothing was sent");
    // A folder as the key file says so (not "cannot read config file").
    write(
        d,
        "digest.toml",
        &format!("{base}dkim_key_file = \"keys\"\ndkim_selector = \"news\"\n"),
    );
    std::fs::create_dir(d.join("keys")).unwrap();
    let out = run(d, &["send", "--date", "2022-03-14"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("dkim_key_file") && stderr.contains("directory"),
        "{stderr}"
    );
    assert!(!stderr.contains("config file"), "{stderr}");
    // A selector that is not a DNS label writes no key.
    let out = run(d, &["dkim", "keygen", "--selector", "a\nb"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("DNS label"),
        "{}",
        text(&out.stderr)
    );
    assert!(std::fs::read_dir(d).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .starts_with("dkim-")));
    // A key every user may read works, with a warning.
    succeeds(d, &["dkim", "keygen", "--selector", "news"]);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            d.join("dkim-news.pem"),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
    }
    write(
        d,
        "digest.toml",
        &format!("{base}dkim_key_file = \"dkim-news.pem\"\ndkim_selector = \"news\"\n"),
    );
    let out = succeeds(d, &["send", "--date", "2022-03-14"]);
    assert!(
        text(&out.stderr).contains("can be read by every user of this machine"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_password_with_special_characters_never_shows_in_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    succeeds(d, &["subscribers", "add", "ann@example.com"]);
    write(d, "digest.toml", "max_edition_age_days = 100000\nsmtp_url = \"smtps://digest:s3cr@t/pa#ss?w0rd@mail.example.com:465\"\n");
    let out = run(d, &["send", "--date", "2022-03-14"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("percent-encode"), "{stderr}");
    for piece in ["s3cr", "t/pa", "ss?w0rd", "w0rd"] {
        assert!(!stderr.contains(piece), "{piece}: {stderr}");
    }
    assert!(stderr.contains("smtps://mail.example.com:465"), "{stderr}");
}
