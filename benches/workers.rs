//! Benchmark: several send workers on one edition, PostgreSQL against
//! SQLite's one worker. The list (SUBSCRIBERS, 100,000) is imported into a
//! SQLite file once and copied (`digest db copy`) into a fresh PostgreSQL
//! schema for each run; then 1, 2 and 4 `digest send` processes start at
//! once on the same edition (they build it once, under the date's advisory
//! lock, and claim deliveries in pages) and the time until the last one
//! ends is taken, with each worker's peak RSS (`/usr/bin/time`). The SQLite
//! row is one `digest send` on the SQLite file.
//!
//! The mail goes to Postfix's `smtp-sink` through a relay-latency proxy on
//! loopback that holds each of the sink's replies for DELAY_MS (2)
//! milliseconds, as a relay on the network would (`smtp-sink -w` waits
//! whole seconds only, and this kernel has no `netem`): without it a send
//! on loopback measures only this machine's CPU, which the workers share.
//!
//! Run: `cargo bench --bench workers` (needs `smtp-sink`, Debian package
//! postfix, and PostgreSQL's server programs, package postgresql: the
//! bench starts a private server as the tests do). Options: SUBSCRIBERS,
//! WORKERS (1,2,4), DELAY_MS (2), CONCURRENCY (4, per worker).

#[path = "../tests/support/postgres.rs"]
mod test_server;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn digest(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_digest"));
    cmd.current_dir(dir).env_remove("RUST_LOG").arg("-q");
    cmd
}

/// A `digest send` under `/usr/bin/time`, started now.
fn start_send(dir: &Path, db: &str, smtp: &str) -> Child {
    Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_digest"))
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .args([
            "-q",
            "--db",
            db,
            "send",
            "--date",
            "2022-03-14",
            "--json",
            "--smtp",
            smtp,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/time")
}

/// Its messages sent and peak RSS in MB.
fn finish(child: Child) -> (u64, f64) {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "digest send: {stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("run summary");
    let peak_kb: f64 = stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0.0);
    (summary["sent"].as_u64().unwrap_or(0), peak_kb / 1024.0)
}

/// Copies one direction of a proxied connection, holding each chunk for
/// `delay` first (the sink's replies), or not at all (the client's).
fn pump(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// A proxy on a free loopback port to `upstream`, delaying its replies.
fn latency_proxy(upstream: u16, delay: Duration) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            std::thread::spawn(move || pump(client, server, Duration::ZERO));
            std::thread::spawn(move || pump(s2, c2, delay));
        }
    });
    port
}

/// Runs `digest args` in `dir`, which must succeed.
fn succeeds(dir: &Path, args: &[&str]) {
    let out = digest(dir).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks
    }
    let n: usize = env_or("SUBSCRIBERS", 100_000);
    let delay = Duration::from_millis(env_or("DELAY_MS", 2));
    let concurrency: usize = env_or("CONCURRENCY", 4);
    let workers: Vec<usize> = std::env::var("WORKERS")
        .unwrap_or_else(|_| "1,2,4".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("digest.toml"),
        format!("inputs = [\"{root}/examples\"]\nmax_edition_age_days = 100000\nconcurrency = {concurrency}\nrate_limit = 0.0\nembedder = \"none\"\nsummarizer = \"extractive\"\n"),
    )
    .unwrap();
    let mut csv =
        std::io::BufWriter::new(std::fs::File::create(dir.path().join("subs.csv")).unwrap());
    writeln!(csv, "email,name").unwrap();
    for i in 0..n {
        writeln!(csv, "reader{i:07}@example.com,Reader {i}").unwrap();
    }
    drop(csv);
    succeeds(
        dir.path(),
        &["--db", "list.db", "subscribers", "import", "subs.csv"],
    );

    let sink_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sink = Command::new("smtp-sink")
        .args(["-u", "nobody", &format!("127.0.0.1:{sink_port}"), "1000"])
        .stdout(Stdio::null())
        .spawn()
        .expect("smtp-sink (Debian package postfix) is needed for this benchmark");
    std::thread::sleep(Duration::from_millis(300));
    let smtp = format!("smtp://127.0.0.1:{}", latency_proxy(sink_port, delay));

    println!(
        "{n} subscribers, {} ms added to each SMTP reply, concurrency {concurrency} per worker",
        delay.as_millis()
    );
    println!("| store | workers | send | messages/s | ratio to SQLite | each worker's peak RSS |");
    println!("| --- | ---: | ---: | ---: | ---: | --- |");

    // SQLite's one worker, on a copy of the list.
    std::fs::copy(dir.path().join("list.db"), dir.path().join("sqlite.db")).unwrap();
    let started = Instant::now();
    let (sent, rss) = finish(start_send(dir.path(), "sqlite.db", &smtp));
    let sqlite = started.elapsed().as_secs_f64();
    assert_eq!(sent as usize, n);
    println!(
        "| SQLite | 1 | {sqlite:.1} s | {:.0} | 1.00 | {rss:.0} MB |",
        n as f64 / sqlite
    );

    for w in workers {
        let url = test_server::fresh_url();
        succeeds(
            dir.path(),
            &["db", "copy", "--from", "list.db", "--to", &url],
        );
        let started = Instant::now();
        let children: Vec<Child> = (0..w)
            .map(|_| start_send(dir.path(), &url, &smtp))
            .collect();
        let results: Vec<(u64, f64)> = children.into_iter().map(finish).collect();
        let secs = started.elapsed().as_secs_f64();
        let total: u64 = results.iter().map(|(s, _)| s).sum();
        assert_eq!(total as usize, n, "every subscriber sent once: {results:?}");
        println!(
            "| PostgreSQL | {w} | {secs:.1} s | {:.0} | {:.2} | {} |",
            n as f64 / secs,
            sqlite / secs,
            results
                .iter()
                .map(|(s, m)| format!("{m:.0} MB ({s} sent)"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let _ = sink.kill();
    let _ = sink.wait();
}
