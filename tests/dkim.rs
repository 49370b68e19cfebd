//! DKIM through the real binary: `digest dkim keygen` makes a key pair and
//! its DNS record; `digest send` signs every message with it; dkimpy, the
//! reference verifier, checks the messages a real SMTP server received
//! against that record (and fails a tampered one). A bad key stops the send
//! before anything goes out.

use crate::support;

use std::path::Path;
use std::process::Command;

use support::{digest, root, text, Server as Smtp};

/// A Python that has dkimpy and PyNaCl (Debian's python3-dkim and
/// python3-nacl, or pip's dkimpy and pynacl).
fn python_with_dkim() -> &'static str {
    for candidate in ["/usr/bin/python3", "python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import dkim, nacl"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return candidate;
        }
    }
    panic!("these tests need Python with dkimpy and PyNaCl: `apt-get install python3-dkim python3-nacl` (scripts/test installs them)");
}

fn verify(raw: &[u8], record: &str) -> (bool, String) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), raw).unwrap();
    let out = Command::new(python_with_dkim())
        .arg(root().join("tests/dkim_verify.py"))
        .arg(file.path())
        .arg(record)
        .output()
        .expect("python3 with dkimpy (Debian python3-dkim, python3-nacl) verifies DKIM");
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

/// A key made by `digest dkim keygen`, the config that signs with it, two
/// subscribers; returns the TXT record keygen printed.
fn setup(dir: &Path, algorithm: &str) -> String {
    // The DNS line names `from`'s domain: set it before keygen runs.
    std::fs::write(
        dir.join("digest.toml"),
        "from = \"Daily Digest <digest@news.example.com>\"\n",
    )
    .unwrap();
    let out = digest(dir)
        .args([
            "dkim",
            "keygen",
            "--selector",
            "news",
            "--algorithm",
            algorithm,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(
        line.starts_with("news._domainkey.news.example.com. IN TXT \""),
        "{line}"
    );
    let record = line.trim().split('"').nth(1).unwrap().to_owned();
    std::fs::write(
        dir.join("digest.toml"),
        format!(
            "from = \"Daily Digest <digest@news.example.com>\"\nmax_edition_age_days = 100000\ninputs = [\"{}\"]\ndkim_key_file = \"dkim-news.pem\"\ndkim_selector = \"news\"\nbounce_address = \"bounces@news.example.com\"\n",
            root().join("examples").display()
        ),
    )
    .unwrap();
    for (email, name) in [
        ("ann@example.com", "Ann Smith"),
        ("zoe@example.com", "Zoë Ünal"),
    ] {
        let out = digest(dir)
            .args(["subscribers", "add", email, "--name", name])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    record
}

#[test]
fn every_message_is_signed_and_verifies_with_rsa_and_ed25519() {
    for algorithm in ["rsa", "ed25519"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let record = setup(d, algorithm);
        assert!(record.contains(&format!("k={algorithm}")), "{record}");
        let smtp = Smtp::start(&[]);
        let out = digest(d)
            .args(["send", "--date", "2022-03-14", "--smtp", &smtp.url()])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let got = smtp.received();
        assert_eq!(got.len(), 2);
        for m in &got {
            // The envelope sender is the VERP bounce address; the signed
            // From stays the list's.
            assert!(
                m.mail_from.starts_with("bounces+") && m.mail_from.ends_with("@news.example.com"),
                "{}",
                m.mail_from
            );
            let raw = m.raw.as_bytes();
            let mut lines = m
                .raw
                .lines()
                .skip_while(|l| !l.starts_with("DKIM-Signature:"));
            let mut header = lines.next().unwrap().to_owned();
            for l in lines.take_while(|l| l.starts_with([' ', '\t'])) {
                header.push_str(l.trim());
            }
            assert!(
                header.contains("d=news.example.com") && header.contains("s=news"),
                "{header}"
            );
            assert!(header.contains("c=relaxed/relaxed"), "{header}");
            let (ok, why) = verify(raw, &record);
            assert!(ok, "{algorithm}: {why}");
            for h in [
                "list-id",
                "list-unsubscribe",
                "list-unsubscribe-post",
                "message-id",
            ] {
                assert!(
                    m.raw
                        .to_ascii_lowercase()
                        .split("dkim-signature")
                        .nth(1)
                        .unwrap()
                        .contains(h),
                    "{h} is signed"
                );
            }
            // A changed subject no longer verifies.
            let tampered = m.raw.replacen("Subject: ", "Subject: Re: ", 1);
            let (ok, _) = verify(tampered.as_bytes(), &record);
            assert!(!ok, "{algorithm}: a tampered message must fail");
        }
    }
}

#[test]
fn a_bad_key_stops_the_send_before_anything_goes_out() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    setup(d, "ed25519");
    std::fs::write(
        d.join("dkim-news.pem"),
        "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let smtp = Smtp::start(&[]);
    let out = digest(d)
        .args(["send", "--date", "2022-03-14", "--smtp", &smtp.url()])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("dkim_key_file") && stderr.contains("dkim-news.pem"),
        "{stderr}"
    );
    assert!(smtp.received().is_empty());
    // And an existing key is never overwritten by keygen.
    let again = digest(d)
        .args(["dkim", "keygen", "--selector", "news"])
        .output()
        .unwrap();
    assert!(!again.status.success() && text(&again.stderr).contains("never overwritten"));
}
