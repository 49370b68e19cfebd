//! Integration tests: run the real `digest` binary on fixtures.

use crate::support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use support::{digest, root, text};

fn fixture(p: &str) -> PathBuf {
    root().join("tests/fixtures").join(p)
}

fn run_with_stdin(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn seed_article_gets_a_headline_and_a_short_summary() {
    let out = digest(&root())
        .args([
            "summarize",
            "examples/2022-03-14-ukraine-talks-aljazeera.txt",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "Podolyak: communication ongoing yet hard");
    assert!(lines[1].starts_with("2022-03-14"));
    let summary: Vec<&str> = lines[3..]
        .iter()
        .filter(|l| !l.trim().is_empty())
        .copied()
        .collect();
    assert!((2..=4).contains(&summary.len()), "{stdout}");
    assert!(
        summary[0].contains("As Russia and Ukraine resume talks"),
        "the lead is in the summary: {stdout}"
    );
    assert!(!stdout.contains("READ ALSO"));
    assert!(
        text(&out.stderr).contains("extractive"),
        "says which summarizer runs"
    );
}

#[test]
fn every_format_in_a_folder_in_stable_order() {
    let out = digest(&root())
        .args([
            "summarize",
            "--format",
            "json",
            "examples",
            "tests/fixtures/articles",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let items = v.as_array().unwrap();
    let headlines: Vec<&str> = items
        .iter()
        .map(|i| i["headline"].as_str().unwrap())
        .collect();
    assert_eq!(
        headlines,
        [
            "Manchester City moved back to top of Premier League table",
            "Heatwaves now 30 times more likely, scientists say",
            "Oil prices fall as traders watch peace talks",
            "Foxconn halted production at plants in Shenzhen",
            "China locks down Shenzhen as Covid cases climb",
            "Protester with \"No war\" poster appears live on Russia's main news show",
            "Russian TV editor interrupts evening news with anti-war sign",
            "Podolyak: communication ongoing yet hard",
            "Russia and Ukraine hold fresh talks by video link",
            "First",
            "Second article reports that storm moved inland",
            "Council approves new cycle lanes",
        ]
    );
    assert_eq!(
        items[0]["headline_derived"], true,
        "the football report had no title"
    );
    assert_eq!(items[1]["headline_derived"], false, "the HTML page had one");
    let wire = &items[8];
    assert_eq!(wire["source"], "World Wire");
    assert_eq!(wire["date"], "2022-03-14");
    assert_eq!(items[1]["source"], "Science Desk", "HTML site name");
    assert_eq!(items[11]["date"], "2024-05-02", "TOML front matter date");
    assert_eq!(items[9]["id"], "a1", "given ids are kept");
    for item in items {
        assert!(!item["id"].as_str().unwrap().is_empty());
        let summary = item["summary"].as_str().unwrap();
        assert!(!summary.is_empty());
        assert!(
            !summary.contains("Advertisement") && !summary.contains("READ MORE"),
            "{summary}"
        );
        assert!(
            !summary.contains("analytics") && !summary.contains("Share this"),
            "{summary}"
        );
    }
    // Same ids on a second run.
    let again = digest(&root())
        .args([
            "summarize",
            "--format",
            "json",
            "examples",
            "tests/fixtures/articles",
        ])
        .output()
        .unwrap();
    assert_eq!(out.stdout, again.stdout, "deterministic output, stable ids");
}

#[test]
fn jsonl_batch_mode_is_the_rouge_harness_interface() {
    let input = std::fs::read(fixture("articles/batch.jsonl")).unwrap();
    let out = run_with_stdin(digest(&root()).args(["summarize", "--jsonl"]), &input);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["id"], "a1");
    assert_eq!(lines[1]["id"], "a2");
    assert_eq!(lines[0]["summary"], "The first article is about a storm that hit the coast on Sunday night.\nThousands of homes lost power.");
}

#[test]
fn stdin_dash_reads_one_article() {
    let seed =
        std::fs::read(root().join("examples/2022-03-14-ukraine-talks-aljazeera.txt")).unwrap();
    let out = run_with_stdin(
        digest(&root()).args(["summarize", "-", "--sentences", "1"]),
        &seed,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("<stdin>") && stdout.contains("2022-03-14"),
        "{stdout}"
    );
    assert_eq!(stdout.lines().filter(|l| l.starts_with("  ")).count(), 1);
}

#[test]
fn word_and_sentence_budgets() {
    for (args, max_sentences, max_words) in [
        (vec!["--sentences", "1"], 1, 60),
        (vec!["--words", "30"], 3, 30),
    ] {
        let out = digest(&root())
            .args([
                "summarize",
                "--format",
                "json",
                "examples/2022-03-14-ukraine-talks-wire.md",
            ])
            .args(&args)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let summary = v[0]["summary"].as_str().unwrap();
        assert!(
            summary.lines().count() <= max_sentences,
            "{args:?}: {summary}"
        );
        assert!(
            summary.split_whitespace().count() <= max_words,
            "{args:?}: {summary}"
        );
    }
}

#[test]
fn broken_inputs_are_named_skipped_and_exit_1() {
    let out = digest(&root())
        .args([
            "summarize",
            "--format",
            "json",
            "tests/fixtures/broken",
            "no/such/file.txt",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    for expected in [
        "binary.txt: binary file",
        "empty.txt: empty file",
        "latin1.txt: not valid UTF-8",
        "bad-date.txt: bad date \"2024-13-45\"",
        "lines.jsonl:2: invalid JSON",
        "only-debris.txt: no article text",
        "no/such/file.txt: no such file or directory",
    ] {
        assert!(
            stderr.contains(expected),
            "missing {expected:?} in:\n{stderr}"
        );
    }
    // The good lines around the broken one are still summarized.
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["ok", "ok2"]);
}

#[test]
fn oversized_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.txt");
    let mut f = std::fs::File::create(&big).unwrap();
    let para = "A sentence about the news of the day that repeats. ".repeat(200);
    while f.metadata().unwrap().len() <= 8 * 1024 * 1024 {
        writeln!(f, "{para}\n").unwrap();
    }
    let out = digest(dir.path())
        .args(["summarize", "big.txt"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("big.txt: file too large"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn config_file_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("digest.toml"),
        "summary_sentences = 1\ninputs = [\"in\"]\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("in")).unwrap();
    std::fs::copy(
        root().join("examples/2022-03-14-markets.json"),
        dir.path().join("in/m.json"),
    )
    .unwrap();
    let out = digest(dir.path()).args(["summarize"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("  "))
            .count(),
        1,
        "digest.toml read by default"
    );
    let out = digest(dir.path())
        .env("DIGEST_SUMMARY_SENTENCES", "2")
        .env("DIGEST_SUMMARY_WORDS", "0")
        .args(["summarize"])
        .output()
        .unwrap();
    assert_eq!(
        text(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("  "))
            .count(),
        2,
        "environment beats the file"
    );
    std::fs::write(dir.path().join("typo.toml"), "sumary_words = 3\n").unwrap();
    let out = digest(dir.path())
        .args(["--config", "typo.toml", "summarize"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("typo.toml") && stderr.contains("sumary_words"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2_and_help_is_there() {
    let out = digest(&root())
        .args(["summarize", "--sentences", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = digest(&root())
        .args(["summarize", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = text(&out.stdout);
    assert!(
        help.contains("--jsonl") && help.contains("--words") && help.contains("--format"),
        "{help}"
    );
}

#[test]
fn quiet_silences_info_and_verbose_adds_debug() {
    let out = digest(&root())
        .args(["-q", "summarize", "examples/2022-03-14-football.txt"])
        .output()
        .unwrap();
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
    let out = digest(&root())
        .args(["-v", "summarize", "examples/2022-03-14-football.txt"])
        .output()
        .unwrap();
    assert!(text(&out.stderr).contains("DEBUG"), "{}", text(&out.stderr));
}

#[test]
fn closed_pipe_is_not_an_error() {
    let mut child = digest(&root())
        .args(["summarize", "examples", "examples", "examples", "examples"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{:?} {}",
        out.status,
        text(&out.stderr)
    );
    assert!(!text(&out.stderr).contains("panicked"));
}

#[test]
fn preview_renders_text_by_default_and_every_format() {
    let out = digest(&root())
        .args(["preview", "--date", "2022-03-14"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(
            "Subject: Daily Digest, 14 Mar 2022: China locks down Shenzhen as Covid cases climb"
        ),
        "{stdout}"
    );
    // A report with no publisher is counted, never credited to a file name.
    assert!(stdout.contains("Also in 1 other report"), "{stdout}");
    assert!(!stdout.contains("2022-03-14-"), "{stdout}");

    let out = digest(&root())
        .args(["preview", "--date", "2022-03-14", "--format", "json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["date"], "2022-03-14");
    let stories = v["stories"].as_array().unwrap();
    // Nine articles, three events reported twice each.
    assert_eq!(stories.len(), 6);
    for key in [
        "headline",
        "summary",
        "sources",
        "urls",
        "rank",
        "also_reported_by",
    ] {
        assert!(stories[0].get(key).is_some(), "story has {key}");
    }

    let out = digest(&root())
        .args(["preview", "--date", "2022-03-14", "--format", "markdown"])
        .output()
        .unwrap();
    let md = text(&out.stdout);
    assert!(
        md.starts_with("# Daily Digest — Monday 14 March 2022"),
        "{md}"
    );
    assert!(
        md.contains(
            "## 2. [Russia and Ukraine hold fresh talks by video link](https://news.example.com/"
        ),
        "{md}"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.html");
    let out = digest(&root())
        .args([
            "preview",
            "--date",
            "2022-03-14",
            "--format",
            "html",
            "--output",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "nothing on stdout with --output");
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("World Wire"));
}

#[test]
fn preview_of_another_day_leaves_other_dates_out() {
    let out = digest(&root())
        .args([
            "preview",
            "--date",
            "2022-03-15",
            "--format",
            "json",
            "-i",
            "examples",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["stories"].as_array().unwrap().len(),
        0,
        "every example is dated 2022-03-14"
    );
    let stdin = b"An undated article belongs to the edition it is read for. It has two sentences.";
    let out = run_with_stdin(
        digest(&root()).args([
            "preview",
            "--date",
            "2022-03-15",
            "--format",
            "json",
            "-i",
            "-",
        ]),
        stdin,
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stories"].as_array().unwrap().len(), 1);
}

#[test]
fn preview_piped_into_head_is_not_an_error() {
    let out = Command::new("sh")
        .current_dir(root())
        .arg("-c")
        .arg(format!(
            "'{}' preview --date 2022-03-14 | head -n 1; exit ${{PIPESTATUS:-0}}",
            env!("CARGO_BIN_EXE_digest")
        ))
        .output()
        .unwrap();
    assert!(text(&out.stdout).starts_with("Subject:"));
    assert!(
        !text(&out.stderr).contains("error"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn init_writes_config_and_templates_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = digest(dir.path()).args(["init"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for f in [
        "digest.toml",
        "templates/digest.html.tera",
        "templates/digest.txt.tera",
        "templates/subject.tera",
    ] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    // The written config is valid and the copied templates pass the check.
    let out = digest(dir.path())
        .args(["templates", "check"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("templates/subject.tera"),
        "overrides are loaded: {}",
        text(&out.stdout)
    );
    std::fs::write(dir.path().join("templates/subject.tera"), "mine").unwrap();
    let out = digest(dir.path()).args(["init"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("refusing to overwrite"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("templates/subject.tera")).unwrap(),
        "mine"
    );
}

#[test]
fn a_broken_template_fails_before_anything_is_rendered() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("templates")).unwrap();
    std::fs::write(
        dir.path().join("templates/digest.html.tera"),
        "<p>\n{{ stories | lenght }}</p>",
    )
    .unwrap();
    for args in [
        vec!["templates", "check"],
        vec!["preview", "--date", "2022-03-14", "-i", "nothing-here"],
    ] {
        let out = digest(dir.path()).args(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains("digest.html.tera") && stderr.contains("lenght"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    }
    std::fs::write(
        dir.path().join("templates/digest.html.tera"),
        "<p>\n  {{ edition.weather }}</p>",
    )
    .unwrap();
    let out = digest(dir.path())
        .args(["templates", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("line 2, column 6"),
        "{}",
        text(&out.stderr)
    );
}
