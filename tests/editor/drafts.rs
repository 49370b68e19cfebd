//! What editors write is cleaned before it reaches a message; drafts are
//! private files never reused; empty editions are never sent and future
//! dates need `--force`.

use super::*;

/// The outbox's messages, by file name.
fn outbox(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir.join("outbox"))
        .map(|r| {
            r.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn editor_text_loses_control_characters_before_it_reaches_a_message() {
    let dir = site("");
    let d = dir.path();
    ok(d, &["edition", "build", "--date", DATE]);
    // Escapes that retitle a terminal and clear it, a bell, SOH, backspace.
    ok(
        d,
        &[
            "edition",
            "headline",
            "1",
            "Esc \u{1b}]0;pwned\u{7} \u{1b}[2J\u{1}\u{8} talks",
            "--date",
            DATE,
        ],
    );
    ok(
        d,
        &[
            "edition",
            "summary",
            "2",
            "Bell\u{7} here. C1\u{9b}31m there.",
            "--date",
            DATE,
        ],
    );
    // A NUL written through $EDITOR (TOML's \u0000 escape).
    let nul = editor_script(
        d,
        "nul.sh",
        "sed -i '0,/^    \"/s//    \"NUL\\\\u0000here \\\\u001b[31m /' \"$f\"",
    );
    let out = digest(d)
        .env("EDITOR", &nul)
        .args(["edition", "edit", "--date", DATE])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let json = edition_json(d);
    let stories = json["stories"].as_array().unwrap();
    assert_eq!(stories[0]["headline"], "Esc ]0;pwned [2J talks");
    assert!(
        stories[0]["summary"][0]
            .as_str()
            .unwrap()
            .starts_with("NULhere [31m"),
        "{}",
        stories[0]["summary"]
    );
    assert_eq!(stories[1]["summary"][1], "C131m there.");
    ok(d, &["send", "--date", DATE]);
    let sent = outbox(d);
    assert_eq!(sent.len(), 3);
    for m in &sent {
        assert!(
            !m.chars()
                .any(|c| c.is_control() && !matches!(c, '\r' | '\n' | '\t')),
            "a control character in {m}"
        );
        assert!(m.contains("Esc ]0;pwned [2J talks"), "{m}");
    }
}

#[test]
fn drafts_are_private_files_in_a_private_folder_and_never_reused() {
    let dir = site("");
    let d = dir.path();
    ok(d, &["edition", "build", "--date", DATE]);
    // The editor notes where its file is and who may read it, then breaks
    // the document so that the draft is kept aside.
    let probe = editor_script(
        d,
        "probe.sh",
        &format!(
            "echo \"$f\" >> {notes}\nstat -c '%a' \"$f\" \"$(dirname \"$f\")\" >> {notes}\nsed -i 's/^headline = /headlin = /' \"$f\"",
            notes = d.join("notes").display()
        ),
    );
    let mut kept = Vec::new();
    for _ in 0..2 {
        let out = digest(d)
            .env("EDITOR", &probe)
            .args(["edition", "edit", "--date", DATE])
            .output()
            .unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        kept.push(stderr.split("kept in ").nth(1).unwrap().trim().to_owned());
    }
    let notes = std::fs::read_to_string(d.join("notes")).unwrap();
    let lines: Vec<&str> = notes.lines().collect();
    assert_eq!(lines.len(), 6, "{notes}");
    let (first, second) = (lines[0], lines[3]);
    assert_ne!(first, second, "a new draft each time");
    assert_eq!(&[lines[1], lines[2]], &["600", "700"], "{notes}");
    assert_eq!(&[lines[4], lines[5]], &["600", "700"], "{notes}");
    let parent = Path::new(first).parent().unwrap();
    assert_ne!(
        parent,
        std::env::temp_dir(),
        "not straight in the shared /tmp"
    );
    // Kept aside where the editor saw it, still private.
    assert_eq!(kept, [first, second]);
    for k in &kept {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(k).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{k}");
        assert!(std::fs::read_to_string(k).unwrap().contains("headlin = "));
        let _ = std::fs::remove_dir_all(Path::new(k).parent().unwrap());
    }
}

#[test]
fn empty_editions_are_never_sent_and_future_dates_need_force() {
    let dir = site("");
    let d = dir.path();
    // A date with no articles: no news, nothing stored, nothing sent.
    let out = run(d, &["send", "--date", "2022-03-13"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("no news: nothing sent"), "{stderr}");
    assert!(outbox(d).is_empty());
    let out = run(d, &["edition", "show", "--date", "2022-03-13"]);
    assert!(!out.status.success(), "nothing stored");
    // Every story dropped by the editors: refused, with a message.
    ok(d, &["edition", "build", "--date", DATE]);
    for _ in 0..headlines(d).len() {
        ok(d, &["edition", "drop", "1", "--date", DATE]);
    }
    let out = run(d, &["send", "--date", DATE]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no stories left"), "{stderr}");
    assert!(outbox(d).is_empty());
    // A date in the future.
    let out = run(d, &["send", "--date", "9999-12-31"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("in the future") && stderr.contains("--force"),
        "{stderr}"
    );
    assert!(outbox(d).is_empty());
    // With --force it goes ahead (and finds no news for that day).
    let out = run(d, &["send", "--date", "9999-12-31", "--force"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("no news: nothing sent"), "{stderr}");
    // A dry run of the edition with every story dropped is refused too.
    let out = run(d, &["send", "--date", DATE, "--dry-run"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
}
