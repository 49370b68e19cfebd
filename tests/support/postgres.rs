//! A private PostgreSQL server for the tests, started once per test
//! process: `initdb` in a temporary folder, listening on loopback only, as
//! `nobody` when the tests run as root (PostgreSQL refuses root), and
//! stopped when the process ends (the parent-death signal). Each test gets
//! a schema of its own (`fresh_url`). `DIGEST_TEST_POSTGRES` names a
//! server to use instead (a role that may create schemas).
//!
//! Shared by the library's store tests (`src/store/mod.rs` includes this
//! file) and the integration tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static SERVER: OnceLock<Result<String, String>> = OnceLock::new();
static SCHEMAS: AtomicUsize = AtomicUsize::new(0);

/// The test server's URL (a superuser, trusted on loopback).
pub(crate) fn server_url() -> String {
    if let Ok(url) = std::env::var("DIGEST_TEST_POSTGRES") {
        return url;
    }
    SERVER
        .get_or_init(|| {
            // Started from a thread that never ends: the parent-death
            // signal follows the thread that started the server.
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = tx.send(start());
                loop {
                    std::thread::park();
                }
            });
            rx.recv()
                .unwrap_or_else(|_| Err("the server thread died".into()))
        })
        .clone()
        .unwrap_or_else(|e| {
            panic!(
                "these tests need a PostgreSQL server: {e}\n\
                 `apt-get install postgresql` (scripts/test installs it), or set \
                 DIGEST_TEST_POSTGRES to a server where the tests may create schemas"
            )
        })
}

/// The certificate authority of the private test server's certificate
/// for 127.0.0.1 (for `db_ca_file`).
pub(crate) fn ca_file() -> PathBuf {
    assert!(
        std::env::var("DIGEST_TEST_POSTGRES").is_err(),
        "the TLS test needs the private test server (unset DIGEST_TEST_POSTGRES)"
    );
    server_url();
    std::env::temp_dir()
        .join(format!("digest-test-pg-{}", std::process::id()))
        .join("data")
        .join("ca.crt")
}

/// A new, empty schema of the test server, and the URL whose connections
/// use it (`options=-c search_path=...`).
pub(crate) fn fresh_url() -> String {
    let base = server_url();
    let schema = format!(
        "t{}_{}",
        std::process::id(),
        SCHEMAS.fetch_add(1, Ordering::SeqCst)
    );
    let mut client = postgres::Client::connect(&base, postgres::NoTls)
        .unwrap_or_else(|e| panic!("connecting to the test server {base}: {e}"));
    client
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .unwrap_or_else(|e| panic!("creating schema {schema}: {e}"));
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// The folder of PostgreSQL's server programs.
fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .find(|p| p.join("postgres").is_file() && p.join("initdb").is_file())
    })
}

/// An unprivileged user to run the server as, when we are root.
fn unprivileged() -> Option<(u32, u32)> {
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("nobody").unwrap();
    // SAFETY: a valid C string; the result is read before any other
    // passwd call on this thread.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root and there is no user nobody to run PostgreSQL as"
    );
    // SAFETY: checked non-null above.
    Some(unsafe { ((*pw).pw_uid, (*pw).pw_gid) })
}

fn command(program: &Path, user: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(program);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if let Some((uid, gid)) = user {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            }
            // After the change of user, which clears it.
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGQUIT);
            Ok(())
        });
    }
    cmd
}

/// Removes the folders of earlier test servers whose process is gone.
fn clean_up_old(parent: &Path) {
    for entry in std::fs::read_dir(parent).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("digest-test-pg-"))
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        if unsafe { libc::kill(pid, 0) } != 0 {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start() -> Result<String, String> {
    let bin = bin_dir().ok_or("no PostgreSQL server programs (initdb, postgres) found")?;
    let user = unprivileged();
    let parent = std::env::temp_dir();
    clean_up_old(&parent);
    let dir = parent.join(format!("digest-test-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", dir.display()))?;
    }
    let data = dir.join("data");
    let out = command(&bin.join("initdb"), user)
        .current_dir(&dir)
        .args(["-D"])
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    // TLS on offer, with a certificate of its own for 127.0.0.1
    // (`ca_file`): the URLs of the tests say sslmode=disable, but for the
    // test of TLS.
    std::fs::write(
        data.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .map_err(|e| format!("writing server.ext: {e}"))?;
    for args in [
        // A certificate authority of the test's own (`ca_file`)...
        "req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=digest-test-ca -keyout ca.key -out ca.crt",
        // ...and the server's certificate for 127.0.0.1, signed by it.
        "req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr",
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -extfile server.ext -out server.crt",
    ] {
        let out = command(Path::new("openssl"), user)
            .current_dir(&data)
            .args(args.split(' '))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running openssl for the server's certificate: {e}"))?;
        if !out.status.success() {
            return Err(format!("openssl {args}: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    // The superuser is trusted on loopback; every other role logs in with
    // its password (the tests of wrong credentials need a check).
    std::fs::write(
        data.join("pg_hba.conf"),
        "local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n",
    )
    .map_err(|e| format!("writing pg_hba.conf: {e}"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("finding a free port: {e}"))?
        .port();
    let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
    command(&bin.join("postgres"), user)
        .current_dir(&dir)
        .arg("-D")
        .arg(&data)
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-k"])
        .arg(&dir)
        .args([
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
            "-c",
            "ssl=on",
        ])
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting postgres: {e}"))?;
    let url = format!("postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match postgres::Client::connect(&url, postgres::NoTls) {
            Ok(_) => return Ok(url),
            Err(e) if Instant::now() > deadline => {
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                return Err(format!("the server did not start: {e}\n{log}"));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}
