//! With approval required: the run waits, the editors are told once, and
//! past the deadline the edition is held or sent as configured.

use super::*;

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
