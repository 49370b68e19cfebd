//! Benchmark: how a send grows with the list. For each size it imports the
//! subscribers into a fresh SQLite file, stores the edition of the examples,
//! and times, under `/usr/bin/time` for the peak RSS of each process:
//! the import, a dry run, `digest send` through a local SMTP sink on loopback
//! (Postfix's `smtp-sink`, rate limit off), a re-run with everything sent
//! (resuming), and an export. Then the growth exponent of the send time
//! between sizes (1.0 is linear).
//!
//! Run: `cargo bench --bench send` (needs `smtp-sink`: Debian package
//! postfix, only that program is started). Options by environment:
//! SIZES (10000,100000,1000000), CONCURRENCY (4).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// One timed run of the binary: seconds, peak RSS in MB, stdout.
fn timed(dir: &Path, args: &[&str]) -> (f64, f64, Vec<u8>) {
    let start = Instant::now();
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_digest"))
        .current_dir(dir)
        .env_remove("RUST_LOG")
        .arg("-q")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("/usr/bin/time");
    let secs = start.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "digest {args:?}: {stderr}");
    let peak_kb: f64 = stderr
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0.0);
    (secs, peak_kb / 1024.0, out.stdout)
}

struct Row {
    n: usize,
    import: (f64, f64),
    dry_run: (f64, f64),
    send: (f64, f64),
    rerun: (f64, f64),
    export: (f64, f64),
}

fn bench(n: usize, concurrency: usize) -> Row {
    let root = env!("CARGO_MANIFEST_DIR");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("digest.toml"),
        format!("inputs = [\"{root}/examples\"]\nmax_edition_age_days = 100000\nconcurrency = {concurrency}\nrate_limit = 0.0\n"),
    )
    .unwrap();
    let mut csv =
        std::io::BufWriter::new(std::fs::File::create(dir.path().join("subs.csv")).unwrap());
    writeln!(csv, "email,name").unwrap();
    for i in 0..n {
        writeln!(csv, "reader{i:07}@example.com,Reader {i}").unwrap();
    }
    drop(csv);
    let (t, m, _) = timed(dir.path(), &["subscribers", "import", "subs.csv"]);
    let import = (t, m);
    // Build and store the edition first, so that the send timing is sending.
    timed(dir.path(), &["send", "--date", "2022-03-14", "--dry-run"]);
    let (t, m, _) = timed(dir.path(), &["send", "--date", "2022-03-14", "--dry-run"]);
    let dry_run = (t, m);

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
    let smtp = format!("smtp://127.0.0.1:{port}");
    let args = ["send", "--date", "2022-03-14", "--json", "--smtp", &smtp];
    let (t, m, out) = timed(dir.path(), &args);
    let summary: serde_json::Value = serde_json::from_slice(&out).expect("run summary");
    assert_eq!(summary["sent"].as_u64(), Some(n as u64), "{summary}");
    let send = (t, m);
    let (t, m, out) = timed(dir.path(), &args);
    let summary: serde_json::Value = serde_json::from_slice(&out).expect("run summary");
    assert_eq!(summary["sent"].as_u64(), Some(0), "{summary}");
    assert_eq!(summary["skipped"].as_u64(), Some(n as u64), "{summary}");
    let rerun = (t, m);
    let _ = sink.kill();
    let _ = sink.wait();
    let (t, m, out) = timed(dir.path(), &["subscribers", "export"]);
    assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), n + 1);
    let export = (t, m);
    Row {
        n,
        import,
        dry_run,
        send,
        rerun,
        export,
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for the list of benchmarks
    }
    let sizes: Vec<usize> = std::env::var("SIZES")
        .unwrap_or_else(|_| "10000,100000,1000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let concurrency: usize = std::env::var("CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    println!("| subscribers | import | dry run | send | messages/s | send peak RSS | re-run (all sent) | export (peak RSS) |");
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut rows: Vec<Row> = Vec::new();
    for n in sizes {
        let r = bench(n, concurrency);
        println!(
            "| {} | {:.2} s ({:.0} MB) | {:.2} s | {:.2} s | {:.0} | {:.0} MB | {:.2} s | {:.2} s ({:.0} MB) |",
            r.n,
            r.import.0,
            r.import.1,
            r.dry_run.0,
            r.send.0,
            r.n as f64 / r.send.0,
            r.send.1,
            r.rerun.0,
            r.export.0,
            r.export.1
        );
        std::io::stdout().flush().unwrap();
        rows.push(r);
    }
    for w in rows.windows(2) {
        let k = |a: f64, b: f64| (b / a).ln() / (w[1].n as f64 / w[0].n as f64).ln();
        println!(
            "growth {} -> {}: send time ~ n^{:.2}, import ~ n^{:.2} (1.00 is linear)",
            w[0].n,
            w[1].n,
            k(w[0].send.0, w[1].send.0),
            k(w[0].import.0, w[1].import.0)
        );
    }
}
