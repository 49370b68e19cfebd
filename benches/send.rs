//! Benchmark: `digest send` of one edition to 10,000 subscribers through a
//! local SMTP sink on loopback (Postfix's `smtp-sink`), rate limit off.
//! Reports messages per second and the peak memory of the send process.
//!
//! Run: `cargo bench --bench send` (needs `smtp-sink`: Debian package postfix).
//! Options by environment: SUBSCRIBERS (10000), CONCURRENCY (4).

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks
    }
    let n: usize = std::env::var("SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let concurrency: usize = std::env::var("CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let bin = env!("CARGO_BIN_EXE_digest");
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("digest.toml"),
        format!("inputs = [\"{root}/examples\"]\nmax_edition_age_days = 100000\nconcurrency = {concurrency}\nrate_limit = 0.0\n"),
    )
    .unwrap();
    let mut csv = std::fs::File::create(dir.path().join("subs.csv")).unwrap();
    for i in 0..n {
        writeln!(csv, "reader{i:05}@example.com,Reader {i}").unwrap();
    }
    drop(csv);
    let digest = || {
        let mut c = Command::new(bin);
        c.current_dir(dir.path()).env_remove("RUST_LOG");
        c
    };
    assert!(digest()
        .args(["-q", "subscribers", "import", "subs.csv"])
        .status()
        .unwrap()
        .success());

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sink = Command::new("smtp-sink")
        .args(["-u", "nobody", &format!("127.0.0.1:{port}"), "1000"])
        .stdout(Stdio::null())
        .spawn()
        .expect("smtp-sink (Debian package postfix) is needed for this benchmark");
    std::thread::sleep(std::time::Duration::from_millis(300));

    // Build and store the edition first, so that the timing is the sending.
    assert!(digest()
        .args(["-q", "send", "--date", "2022-03-14", "--dry-run"])
        .status()
        .unwrap()
        .success());
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(bin)
        .current_dir(dir.path())
        .args([
            "-q",
            "send",
            "--date",
            "2022-03-14",
            "--json",
            "--smtp",
            &format!("smtp://127.0.0.1:{port}"),
        ])
        .output()
        .expect("/usr/bin/time");
    let elapsed = start.elapsed();
    let _ = sink.kill();
    let _ = sink.wait();
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).expect("run summary");
    let sent = summary["sent"].as_u64().unwrap_or(0);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peak_kb: u64 = stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    println!(
        "send: {sent} of {n} messages in {:.2} s = {:.0} messages/s (concurrency {concurrency}), peak RSS {:.1} MB",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        peak_kb as f64 / 1024.0
    );
    assert_eq!(sent as usize, n, "{stderr}");
}
