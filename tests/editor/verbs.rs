//! Every verb changes what is sent and is logged; nothing lands while a
//! send holds the run lock or once sending has started; a broken document
//! or an edit from an older version changes nothing.

use super::*;

fn list(dir: &Path) -> String {
    text(
        &ok(
            dir,
            &["edition", "show", "--date", DATE, "--format", "list"],
        )
        .stdout,
    )
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
    // The run lock is SQLite's file lock (PostgreSQL's workers claim
    // deliveries instead): SQLite on either pass.
    let dir = site("db = \"dailydigest.db\"");
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
