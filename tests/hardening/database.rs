//! The database under pressure: `serve` answers while another process
//! holds the write lock, commands that only read never create a database,
//! a read-only database is read, and a client that never sends its body
//! starves no one.

use super::*;

/// The status code of what the server sent before it closed `s`; `None`
/// when it is still open (a read timed out) or was reset.
fn answer(s: &mut TcpStream) -> Option<u16> {
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).ok()?;
    text(&all).split_whitespace().nth(1)?.parse().ok()
}

/// Runs the binary as the unprivileged user `nobody` (root reads and
/// writes any file, whatever its mode).
fn as_nobody(dir: &Path, args: &[&str]) -> Output {
    let mut cmd = if nix_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            env!("CARGO_BIN_EXE_digest"),
        ]);
        c
    } else {
        std::process::Command::new(env!("CARGO_BIN_EXE_digest"))
    };
    cmd.current_dir(dir).args(args).env_remove("RUST_LOG");
    cmd.output().unwrap()
}

fn nix_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| text(&o.stdout).trim() == "0")
}

#[test]
fn serve_answers_while_the_database_is_locked_and_never_loses_an_unsubscribe() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(
        d,
        "digest.toml",
        // The SQLite file, on either pass: what is locked here is the file.
        "db = \"dailydigest.db\"\nmax_edition_age_days = 100000\nhttp_header_timeout_secs = 1\nsubscribe_limit_per_hour = 10\n",
    );
    succeeds(d, &["subscribers", "add", "ann@example.com"]);
    succeeds(d, &["subscribers", "add", "bob@example.com"]);
    let db = d.join("dailydigest.db");
    let token: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT token FROM subscribers WHERE email = 'ann@example.com'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let server = Serve::start(d);
    // Another process holds the write lock.
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker
        .execute_batch(
            "BEGIN IMMEDIATE; UPDATE subscribers SET name = 'x' WHERE email = 'bob@example.com';",
        )
        .unwrap();
    let agent = http();
    let started = Instant::now();
    let missing = agent.get(&format!("{}/nope", server.base)).call().unwrap();
    assert_eq!(missing.status(), 404);
    let page = agent
        .get(&format!("{}/unsubscribe/{token}", server.base))
        .call()
        .unwrap();
    assert_eq!(page.status(), 200, "reads go on under the lock");
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(page.headers().get(name).unwrap(), value, "{name}");
    }
    let csp = page
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline'; script"),
        "{csp}"
    );
    let post = agent
        .post(&format!("{}/unsubscribe/{token}", server.base))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .send("List-Unsubscribe=One-Click")
        .unwrap();
    assert_eq!(post.status(), 200);
    // The subscribe page and sign-ups are answered too: each sign-up is
    // queued durably beside the database before the page says so, and
    // recorded and mailed once the lock is gone (never 200 and lost).
    let form = agent
        .get(&format!("{}/subscribe", server.base))
        .call()
        .unwrap();
    assert_eq!(form.status(), 200);
    for i in 0..6 {
        let signup = agent
            .post(&format!("{}/subscribe", server.base))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .send(format!("email=new{i}%40example.com&name=&topics="))
            .unwrap();
        assert_eq!(signup.status(), 200);
    }
    // A damaged line (not UTF-8) in the unsubscribe queue holds up nothing.
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(d.join("dailydigest.db.unsubscribes"))
        .unwrap()
        .write_all(b"\xff\xfe garbage\n")
        .unwrap();
    // Well under the 10 s the database's busy timeout would have taken.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
    let queued = std::fs::read(d.join("dailydigest.db.unsubscribes")).unwrap();
    assert!(
        queued.split(|&b| b == b'\n').next().unwrap().len() == 64,
        "queued durably while the database was locked"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("dailydigest.db.signups"))
            .unwrap()
            .lines()
            .count(),
        6,
        "every sign-up queued durably while the database was locked"
    );
    assert!(!d.join("outbox").exists(), "nothing mailed yet");
    locker.execute_batch("ROLLBACK").unwrap();
    let status = || -> String {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row(
                "SELECT status FROM subscribers WHERE email = 'ann@example.com'",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while status() != "unsubscribed" && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        status(),
        "unsubscribed",
        "the queued unsubscribe was applied"
    );
    // The six sign-ups are recorded and their confirmations mailed (to
    // outbox/, which did not exist).
    let mailed = || {
        std::fs::read_dir(d.join("outbox"))
            .map(|r| r.count())
            .unwrap_or(0)
    };
    while mailed() < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(mailed(), 6, "a confirmation for each queued sign-up");
    let pending: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM subscribers WHERE status = 'pending'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(pending, 6);
    assert_eq!(
        std::fs::read(d.join("dailydigest.db.unsubscribes")).unwrap(),
        b"",
        "the damaged line is dropped, the queue emptied"
    );

    // Half-sent requests are closed after the header timeout and do not
    // keep others out.
    let mut slow: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = TcpStream::connect(server.base.trim_start_matches("http://")).unwrap();
            s.write_all(b"GET /editions/2022-03-14 HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    // Another client is served meanwhile (this one holds its own cap).
    let (fine, _) = support::request_from("127.0.0.2", &server.base, "GET", "/nope", "");
    assert_eq!(fine, 404);
    std::thread::sleep(Duration::from_secs(3));
    let mut closed = 0;
    for s in &mut slow {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut all = Vec::new();
        // Closed by the server: end of stream (or a reset), not a timeout.
        match s.read_to_end(&mut all) {
            Ok(_) => closed += 1,
            Err(e)
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                closed += 1
            }
            Err(_) => {}
        }
    }
    assert_eq!(closed, 300, "every half-sent request was closed");
}

#[test]
fn commands_that_only_read_or_update_refuse_to_create_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A SQLite file on either pass: a server's database is never created
    // by a command (its schema is, on any command).
    write(d, "digest.toml", "db = \"dailydigest.db\"\n");
    for args in [
        vec!["serve", "--listen", "127.0.0.1:0"],
        vec!["send", "--date", "2022-03-14", "--force"],
        vec!["run"],
        vec!["subscribers", "list"],
        vec!["subscribers", "export"],
        vec!["subscribers", "remove", "ann@example.com"],
        vec!["preview", "--subscriber", "ann@example.com"],
    ] {
        let out = run(d, &args);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr.contains("dailydigest.db") && stderr.contains("no database file here"),
            "{args:?}: {stderr}"
        );
        assert!(
            !d.join("dailydigest.db").exists(),
            "{args:?} created a database"
        );
    }
    succeeds(d, &["subscribers", "add", "ann@example.com"]);
    assert!(d.join("dailydigest.db").exists());
}

#[test]
fn a_read_only_database_is_read_and_a_write_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The file's permissions are the point: SQLite on either pass.
    write(d, "digest.toml", "db = \"dailydigest.db\"\n");
    succeeds(
        d,
        &["subscribers", "add", "ann@example.com", "--name", "Ann"],
    );
    // Checkpointed and closed: a database file alone, in a folder nobody may write.
    rusqlite::Connection::open(d.join("dailydigest.db"))
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode = DELETE;")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(
        d.join("dailydigest.db"),
        std::fs::Permissions::from_mode(0o444),
    )
    .unwrap();
    if !nix_root() {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    let list = as_nobody(d, &["subscribers", "list"]);
    assert!(list.status.success(), "{}", text(&list.stderr));
    assert!(text(&list.stdout).contains("ann@example.com"));
    let add = as_nobody(d, &["subscribers", "add", "bob@example.com"]);
    let stderr = text(&add.stderr);
    assert!(!add.status.success());
    assert!(
        stderr.contains("read-only") && stderr.contains("dailydigest.db"),
        "{stderr}"
    );
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn a_client_that_never_sends_its_bodies_starves_no_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "digest.toml", "http_request_timeout_secs = 2\n");
    succeeds(d, &["subscribers", "add", "ann@example.com"]);
    let token = support::db_text(d, "SELECT token FROM subscribers", &[]);
    let server = Serve::start(d);
    let addr = server.base.trim_start_matches("http://").to_owned();
    // 515 connections from one client, each promising a 1,000-byte body
    // that never comes.
    let mut hostile: Vec<TcpStream> = (0..515)
        .map(|_| {
            let mut s = TcpStream::connect(&addr).unwrap();
            s.write_all(
                b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n",
            )
            .unwrap();
            s
        })
        .collect();
    // Meanwhile another client's one-click unsubscribe goes through.
    let (code, body) = support::request_from(
        "127.0.0.2",
        &server.base,
        "POST",
        &format!("/unsubscribe/{token}"),
        "List-Unsubscribe=One-Click",
    );
    assert_eq!(code, 200, "{body}");
    let status = support::db_text(d, "SELECT status FROM subscribers", &[]);
    assert_eq!(status, "unsubscribed");
    // None of the hostile connections is held past its deadline (2 s) and
    // the wait for a slot (2 s): each was answered, 408 (the body never
    // came) or 503 (no slot for it), and closed, none reset.
    std::thread::sleep(Duration::from_secs(6));
    let mut codes = std::collections::BTreeMap::new();
    for s in &mut hostile {
        *codes.entry(answer(s)).or_insert(0) += 1;
    }
    assert_eq!(
        codes.keys().copied().collect::<Vec<_>>(),
        [Some(408), Some(503)],
        "{codes:?}"
    );
    assert!(codes[&Some(408)] >= 32, "{codes:?}");
}
