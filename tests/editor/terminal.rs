//! vim in a real terminal under tmux: the editor sees its mistake and
//! fixes it.

use super::*;

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
    // The database the other commands of this folder use (PostgreSQL on
    // the second pass).
    let db = crate::support::database_of(d)
        .map(|url| format!("DIGEST_DB='{url}' "))
        .unwrap_or_default();
    let command = format!(
        "cd {} && {db}USER=eddie EDITOR='vim -u NONE -N -n' {} edition edit --date {DATE}; echo EXITED $?; sleep 30",
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
