//! The editor's desk through the real binary: build, show, every edit verb,
//! `$EDITOR` (a script, and vim in a real terminal under tmux), edits
//! refused mid-send or from an old version, approval with the editors'
//! notice and the deadline, and what reaches a real SMTP server.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{digest, root, text, Server as Smtp};

const DATE: &str = "2022-03-14";

/// The examples these tests were written against: the seed, a second
/// source on the same talks, markets, science and sport (four stories).
const EXAMPLES: [&str; 5] = [
    "2022-03-14-football.txt",
    "2022-03-14-heatwave-study.html",
    "2022-03-14-markets.json",
    "2022-03-14-ukraine-talks-aljazeera.txt",
    "2022-03-14-ukraine-talks-wire.md",
];

fn site(extra: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let inputs: Vec<String> = EXAMPLES
        .iter()
        .map(|f| {
            format!(
                "{:?}",
                root().join("examples").join(f).display().to_string()
            )
        })
        .collect();
    std::fs::write(
        dir.path().join("digest.toml"),
        format!(
            "inputs = [{}]\nmax_edition_age_days = 100000\nretry_base_ms = 20\n{extra}\n",
            inputs.join(", ")
        ),
    )
    .unwrap();
    for who in ["ann@example.com", "bob@example.com", "cat@example.com"] {
        ok(dir.path(), &["subscribers", "add", who]);
    }
    dir
}

fn run(dir: &Path, args: &[&str]) -> Output {
    digest(dir)
        .env("USER", "eddie")
        .args(args)
        .output()
        .unwrap()
}

fn ok(dir: &Path, args: &[&str]) -> Output {
    support::succeeded(run(dir, args), args)
}

fn list(dir: &Path) -> String {
    text(
        &ok(
            dir,
            &["edition", "show", "--date", DATE, "--format", "list"],
        )
        .stdout,
    )
}

fn edition_json(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(
        &ok(
            dir,
            &["edition", "show", "--date", DATE, "--format", "json"],
        )
        .stdout,
    )
    .unwrap()
}

fn headlines(dir: &Path) -> Vec<String> {
    edition_json(dir)["stories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["headline"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_verb_changes_what_is_sent_and_is_logged() {
    let dir = site("");
    let d = dir.path();
    ok(d, &["edition", "build", "--date", DATE]);
    let before = headlines(d);
    assert_eq!(before.len(), 4, "{before:?}");
    assert_eq!(
        edition_json(d)["stories"][0]["article_ids"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "the talks are one story of two reports: {}",
        list(d)
    );

    ok(d, &["edition", "split", "1", "--date", DATE]);
    assert_eq!(headlines(d).len(), 5, "the merged story is two again");
    ok(d, &["edition", "merge", "1", "2", "--date", DATE]);
    assert_eq!(headlines(d).len(), 4);
    ok(
        d,
        &[
            "edition",
            "headline",
            "1",
            "Kyiv and Moscow talk again, by video",
            "--date",
            DATE,
        ],
    );
    ok(
        d,
        &[
            "edition",
            "summary",
            "1",
            "Negotiators met by video link. Both sides stated their positions.",
            "--date",
            DATE,
        ],
    );
    let dropped = headlines(d)[3].clone();
    ok(d, &["edition", "drop", "4", "--date", DATE]);
    let moved = headlines(d)[2].clone();
    ok(d, &["edition", "move", "3", "--to", "1", "--date", DATE]);
    let now = headlines(d);
    assert_eq!(now.len(), 3);
    assert_eq!(now[0], moved);
    assert_eq!(now[1], "Kyiv and Moscow talk again, by video");
    let bad = run(d, &["edition", "drop", "9", "--date", DATE]);
    assert!(!bad.status.success() && text(&bad.stderr).contains("there is no story 9"));

    let log = text(&ok(d, &["edition", "log", "--date", DATE]).stdout);
    for change in [
        "built",
        "split story 1",
        "merged story 2 into story 1",
        "headline of story 1",
        "summary of story 1",
        "dropped story 4",
        "moved story 3 to 1",
    ] {
        assert!(log.contains(change), "{change}: {log}");
    }
    assert!(log.lines().all(|l| l.contains("eddie")), "{log}");

    // What is sent is what was edited.
    let smtp = Smtp::start(&[]);
    ok(d, &["send", "--date", DATE, "--smtp", &smtp.url()]);
    let got = smtp.received();
    assert_eq!(got.len(), 3);
    for m in &got {
        let raw = m.raw.replace("=\r\n", "").replace("\r\n", "\n");
        assert!(raw.contains("Kyiv and Moscow talk again"), "{raw}");
        assert!(raw.contains("Both sides stated their positions."), "{raw}");
        assert!(
            !raw.contains(&dropped[..20]),
            "the dropped story is not sent"
        );
    }
}

#[test]
fn no_change_lands_while_a_send_holds_the_run_lock() {
    let dir = site("");
    let d = dir.path();
    ok(d, &["edition", "build", "--date", DATE]);
    let lock = std::fs::File::create(d.join("dailydigest.db.lock")).unwrap();
    lock.try_lock().unwrap();
    let before = edition_json(d);
    for args in [
        vec!["edition", "drop", "1"],
        vec!["edition", "approve"],
        vec!["edition", "build", "--rebuild"],
    ] {
        let mut args = args.clone();
        args.extend(["--date", DATE]);
        let out = run(d, &args);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains("a send or run is in progress"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(edition_json(d), before);
    drop(lock);
    ok(d, &["edition", "drop", "1", "--date", DATE]);
}

#[test]
fn nothing_changes_once_sending_has_started() {
    let dir = site("");
    let d = dir.path();
    ok(d, &["edition", "build", "--date", DATE]);
    let smtp = Smtp::start(&[]);
    let partial = run(
        d,
        &[
            "send",
            "--date",
            DATE,
            "--smtp",
            &smtp.url(),
            "--limit",
            "1",
        ],
    );
    assert_eq!(partial.status.code(), Some(1), "two remain");
    assert_eq!(smtp.received().len(), 1);
    let before = edition_json(d);
    for args in [
        vec!["edition", "drop", "1"],
        vec!["edition", "headline", "1", "Too late"],
        vec!["edition", "edit"],
        vec!["edition", "build", "--rebuild"],
        vec!["edition", "unapprove"],
    ] {
        let mut args = args.clone();
        args.extend(["--date", DATE]);
        let out = digest(d)
            .env("EDITOR", "true")
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        assert!(
            text(&out.stderr).contains("sending of the edition of 2022-03-14 has started"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert_eq!(edition_json(d), before);
}

/// An `$EDITOR` that runs a shell script on the file.
fn editor_script(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\nset -e\nf=\"$1\"\n{body}\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}

#[test]
fn the_editor_edits_and_a_broken_document_changes_nothing() {
    let dir = site("");
    let d = dir.path();
    ok(d, &["edition", "build", "--date", DATE]);
    let first = headlines(d)[1].clone();
    // A good edit: a headline, and a story dropped.
    let good = editor_script(d, "good.sh", &format!(
        "sed -i 's/^headline = \"{first}\"/headline = \"Crude slides as talks resume\"/' \"$f\"\n\
         awk 'BEGIN{{n=0}} /^drop = false/{{n++; if (n==3) {{print \"drop = true\"; next}}}} {{print}}' \"$f\" > \"$f.new\" && mv \"$f.new\" \"$f\""
    ));
    let out = digest(d)
        .env("EDITOR", &good)
        .args(["edition", "edit", "--date", DATE])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let now = headlines(d);
    assert_eq!(now.len(), 3, "{now:?}");
    assert_eq!(now[1], "Crude slides as talks resume");

    // A broken edit: nothing changes, the text is kept aside, the error said.
    let before = edition_json(d);
    let broken = editor_script(d, "broken.sh", "sed -i 's/^headline = /headlin = /' \"$f\"");
    let out = digest(d)
        .env("EDITOR", &broken)
        .args(["edition", "edit", "--date", DATE])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not valid") && stderr.contains("headlin"),
        "{stderr}"
    );
    let kept = stderr.split("kept in ").nth(1).unwrap().trim();
    assert!(std::fs::read_to_string(kept)
        .unwrap()
        .contains("headlin = "));
    assert_eq!(edition_json(d), before);
}

#[test]
fn an_edit_made_from_an_older_version_is_refused() {
    let dir = site("");
    let d = dir.path();
    ok(d, &["edition", "build", "--date", DATE]);
    // While the editor is open, someone else (or a rebuild) changes the edition.
    let bin = env!("CARGO_BIN_EXE_digest");
    let racing = editor_script(
        d,
        "race.sh",
        &format!(
            "\"{bin}\" -q edition headline 1 \"Changed meanwhile\" --date {DATE}\n\
         sed -i '0,/^headline = .*/s//headline = \"Mine\"/' \"$f\""
        ),
    );
    let out = digest(d)
        .env("EDITOR", &racing)
        .args(["edition", "edit", "--date", DATE])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("changed while you worked on it"),
        "{stderr}"
    );
    let now = headlines(d);
    assert_eq!(now[0], "Changed meanwhile");
    assert!(!now.contains(&"Mine".to_string()));
}

fn tmux(args: &[&str]) -> Output {
    Command::new("tmux")
        .args(args)
        .output()
        .expect("tmux (Debian package tmux) runs the terminal tests")
}

fn screen(session: &str) -> String {
    text(&tmux(&["capture-pane", "-p", "-t", session]).stdout)
}

fn wait_for(session: &str, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = screen(session);
        if s.contains(what) || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
}

#[test]
fn an_editor_in_a_real_terminal_sees_its_mistake_and_fixes_it() {
    for (program, version, package) in [("tmux", "-V", "tmux"), ("vim", "--version", "vim")] {
        let found = Command::new(program)
            .arg(version)
            .stdin(std::process::Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
        assert!(
            found,
            "this test runs vim in a real terminal under tmux: `apt-get install {package}` (scripts/test installs it)"
        );
    }
    let dir = site("");
    let d = dir.path();
    ok(d, &["edition", "build", "--date", DATE]);
    let target = headlines(d)[1].clone();
    let session = format!("digest-edit-{}", std::process::id());
    let command = format!(
        "cd {} && USER=eddie EDITOR='vim -u NONE -N -n' {} edition edit --date {DATE}; echo EXITED $?; sleep 30",
        d.display(),
        env!("CARGO_BIN_EXE_digest")
    );
    let started = tmux(&[
        "new-session",
        "-d",
        "-s",
        &session,
        "-x",
        "160",
        "-y",
        "50",
        &command,
    ]);
    assert!(started.status.success(), "{}", text(&started.stderr));
    let keys = |k: &[&str]| {
        let mut args = vec!["send-keys", "-t", session.as_str()];
        args.extend_from_slice(k);
        assert!(tmux(&args).status.success());
    };
    wait_for(&session, "[[story]]");
    // A mistake: a misspelt key, saved.
    keys(&[":%s/^headline = /headlin = /", "Enter"]);
    keys(&[":wq", "Enter"]);
    let shown = wait_for(&session, "# ERROR:");
    assert!(
        shown.contains("# ERROR:") && shown.contains("headlin"),
        "{shown}"
    );
    // Fixed, and a headline changed.
    keys(&[":%s/^headlin = /headline = /", "Enter"]);
    keys(&[
        &format!(":%s/headline = \"{target}\"/headline = \"Edited in vim\"/"),
        "Enter",
    ]);
    keys(&[":wq", "Enter"]);
    let end = wait_for(&session, "EXITED");
    let _ = tmux(&["kill-session", "-t", &session]);
    assert!(
        end.contains("EXITED 0") && end.contains("now version 2"),
        "{end}"
    );
    assert_eq!(headlines(d)[1], "Edited in vim");
}

fn report(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("run-report.json")).unwrap()).unwrap()
}

#[test]
fn with_approval_required_a_run_waits_tells_the_editors_and_sends_once_approved() {
    let smtp = Smtp::start(&[]);
    let dir = site(&format!(
        "require_approval = true\neditors = [\"ed@example.com\"]\nsmtp_url = \"{}\"",
        smtp.url()
    ));
    let d = dir.path();
    for _ in 0..2 {
        let out = ok(d, &["run", "--date", DATE]);
        assert!(
            text(&out.stderr).contains("awaits approval"),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(report(d)["awaiting_approval"], true);
        assert_eq!(report(d)["exit_code"], 0);
    }
    let got = smtp.received();
    assert_eq!(got.len(), 1, "one notice per edition, to the editor only");
    assert_eq!(got[0].rcpt_tos, ["ed@example.com"]);
    let raw = got[0].raw.replace("=\r\n", "").replace("\r\n", "\n");
    assert!(
        raw.contains("This edition awaits approval")
            && raw.contains("digest edition approve --date 2022-03-14"),
        "{raw}"
    );

    // Approved content is what goes out: an edit withdraws the approval.
    ok(d, &["edition", "approve", "--date", DATE]);
    ok(
        d,
        &[
            "edition",
            "headline",
            "1",
            "Changed after approval",
            "--date",
            DATE,
        ],
    );
    let out = ok(d, &["run", "--date", DATE]);
    assert!(
        text(&out.stderr).contains("awaits approval"),
        "{}",
        text(&out.stderr)
    );
    // Drafts are not public; an approved edition is.
    let server = support::Serve::start(d);
    let page = format!("{}/editions/{DATE}", server.base);
    assert_eq!(support::http().get(&page).call().unwrap().status(), 404);
    ok(d, &["edition", "approve", "--date", DATE]);
    assert_eq!(support::http().get(&page).call().unwrap().status(), 200);
    drop(server);
    ok(d, &["run", "--date", DATE]);
    ok(d, &["run", "--date", DATE]);
    assert_eq!(report(d)["awaiting_approval"], false);
    let mut to: Vec<String> = smtp
        .received()
        .iter()
        .skip(1)
        .flat_map(|m| m.rcpt_tos.clone())
        .collect();
    to.sort();
    assert_eq!(
        to,
        ["ann@example.com", "bob@example.com", "cat@example.com"],
        "each subscriber once"
    );
    let log = text(&ok(d, &["edition", "log", "--date", DATE]).stdout);
    assert!(
        log.contains("eddie  approved") && log.contains("approval withdrawn"),
        "{log}"
    );
}

#[test]
fn building_an_edition_tells_the_editors_once() {
    let smtp = Smtp::start(&[]);
    let dir = site(&format!(
        "require_approval = true\neditors = [\"ed@example.com\", \"chief@example.com\"]\nsmtp_url = \"{}\"",
        smtp.url()
    ));
    let d = dir.path();
    let out = ok(d, &["edition", "build", "--date", DATE]);
    assert!(
        text(&out.stderr).contains("2 editors told"),
        "{}",
        text(&out.stderr)
    );
    ok(d, &["run", "--date", DATE]);
    let mut to: Vec<String> = smtp
        .received()
        .iter()
        .flat_map(|m| m.rcpt_tos.clone())
        .collect();
    to.sort();
    assert_eq!(
        to,
        ["chief@example.com", "ed@example.com"],
        "one notice each, nothing to subscribers"
    );
}

#[test]
fn past_the_deadline_an_unapproved_edition_is_held_or_sent_as_configured() {
    for (on_deadline, sent) in [("hold", 0), ("send", 3)] {
        let smtp = Smtp::start(&[]);
        let dir = site(&format!(
            "require_approval = true\napproval_deadline = \"00:00\"\non_deadline = \"{on_deadline}\"\nsmtp_url = \"{}\"",
            smtp.url()
        ));
        let out = ok(dir.path(), &["run", "--date", DATE]);
        assert_eq!(
            smtp.received().len(),
            sent,
            "{on_deadline}: {}",
            text(&out.stderr)
        );
        assert_eq!(
            report(dir.path())["awaiting_approval"],
            sent == 0,
            "{on_deadline}"
        );
    }
}

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
