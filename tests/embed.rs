//! Stories by meaning, through the real binary with the real
//! all-MiniLM-L6-v2 (`scripts/get-models` puts it in `models/`; the
//! README's test command runs it first).

use crate::support;

use std::path::{Path, PathBuf};

use support::{digest, root, succeeded, text};

fn minilm() -> PathBuf {
    let dir = root().join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "the sentence encoder is missing: run scripts/get-models (the README's test command does)"
    );
    dir
}

/// A models folder holding the MiniLM (linked) and, if asked, the tiny
/// BART summarization fixture.
fn models(dir: &Path, with_bart: bool) -> PathBuf {
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    std::os::unix::fs::symlink(minilm(), models.join("all-MiniLM-L6-v2")).unwrap();
    if with_bart {
        std::os::unix::fs::symlink(
            root().join("tests/fixtures/transformer/models/tiny-bart"),
            models.join("tiny-bart"),
        )
        .unwrap();
    }
    models
}

fn preview(dir: &Path, args: &[&str]) -> (serde_json::Value, String) {
    let mut all = vec!["preview", "--date", "2022-03-14", "--format", "json"];
    all.extend_from_slice(args);
    let out = succeeded(digest(dir).args(&all).output().unwrap(), &all);
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        text(&out.stderr),
    )
}

/// Each story's reports as the example files they came from, sorted: the
/// grouping, whatever the reports are credited to.
fn story_files(v: &serde_json::Value) -> Vec<Vec<String>> {
    let files = example_ids();
    v["stories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let mut of: Vec<String> = s["article_ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|id| files[id.as_str().unwrap()].clone())
                .collect();
            of.sort();
            of
        })
        .collect()
}

/// The article id of each example file (what a story's `article_ids`
/// hold), from `digest summarize --format json`.
fn example_ids() -> std::collections::HashMap<String, String> {
    let dir = tempfile::tempdir().unwrap();
    let mut out = std::collections::HashMap::new();
    for entry in std::fs::read_dir(root().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let args = [
            "--summarizer",
            "extractive",
            "summarize",
            "--format",
            "json",
            path.to_str().unwrap(),
        ];
        let got = succeeded(digest(dir.path()).args(args).output().unwrap(), &args);
        let v: serde_json::Value = serde_json::from_slice(&got.stdout).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        out.insert(v[0]["id"].as_str().unwrap().to_owned(), name);
    }
    out
}

/// The story with the report from the example file `file`.
fn story_with<'a>(v: &'a serde_json::Value, file: &str) -> &'a serde_json::Value {
    let ids = example_ids();
    let id = ids
        .iter()
        .find(|(_, f)| f.as_str() == file)
        .map(|(id, _)| id.clone())
        .unwrap_or_else(|| panic!("no example {file}"));
    v["stories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["article_ids"].to_string().contains(&id))
        .unwrap_or_else(|| panic!("a story from {file}: {v}"))
}

/// Vectors equal sentence-transformers' own (tests/fixtures/embed/
/// make_reference.py), texts of every kind, one cut at 256 tokens.
#[test]
fn embeddings_equal_sentence_transformers() {
    minilm();
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/embed/minilm_reference.json"))
            .unwrap(),
    )
    .unwrap();
    let texts: Vec<String> = serde_json::from_value(reference["texts"].clone()).unwrap();
    let want: Vec<Vec<f32>> = serde_json::from_value(reference["embeddings"].clone()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("texts.jsonl");
    let lines: Vec<String> = texts
        .iter()
        .map(|t| serde_json::to_string(t).unwrap())
        .collect();
    std::fs::write(&input, lines.join("\n")).unwrap();
    let args = ["model", "embed", input.to_str().unwrap()];
    let out = succeeded(digest(&root()).args(args).output().unwrap(), &args);
    let got: Vec<Vec<f32>> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(got.len(), want.len());
    for ((g, w), t) in got.iter().zip(&want).zip(&texts) {
        assert_eq!(g.len(), 384);
        let diff = g
            .iter()
            .zip(w)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let cos: f32 = g.iter().zip(w).map(|(a, b)| a * b).sum();
        assert!(
            diff <= 1e-4 && cos >= 0.99999,
            "{t:.40}: max difference {diff}, cosine {cos}"
        );
    }
}

/// Summarizer and encoder side by side: each found by its files, each
/// used for its own job, and `model info` shows both.
#[test]
fn models_folder_holds_both_roles() {
    let tmp = tempfile::tempdir().unwrap();
    let models = models(tmp.path(), true);
    let m = models.to_str().unwrap();
    let args = ["--models", m, "model", "info"];
    let out = succeeded(digest(tmp.path()).args(args).output().unwrap(), &args);
    let info = text(&out.stdout);
    assert!(
        info.contains("all-MiniLM-L6-v2 (sentence encoder)")
            && info.contains("tiny-bart (summarizer)"),
        "{info}"
    );
    assert!(info.contains("by meaning (all-MiniLM-L6-v2)"), "{info}");
    assert!(
        info.contains("384 dimensions, mean pooling, normalised"),
        "{info}"
    );

    // Only the encoder there: the summarizer does not try to load it.
    let only = tmp.path().join("only");
    let only_models = self::models(&only, false);
    let football = root().join("examples/2022-03-14-football.txt");
    let args = [
        "--models",
        only_models.to_str().unwrap(),
        "summarize",
        football.to_str().unwrap(),
    ];
    let out = succeeded(digest(&only).args(args).output().unwrap(), &args);
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("no transformer checkpoint") && !stderr.contains("unknown architecture"),
        "{stderr}"
    );

    // Naming the encoder as the summarizer, or the reverse, is refused.
    let args = ["--models", m, "--embedder", "tiny-bart", "model", "info"];
    let out = succeeded(digest(tmp.path()).args(args).output().unwrap(), &args);
    assert!(
        text(&out.stdout).contains("not a sentence encoder"),
        "{}",
        text(&out.stdout)
    );
}

/// The examples hold two differently worded reports of each of three
/// events: with the encoder, each event is one story with both sources.
#[test]
fn differently_worded_reports_of_one_event_make_one_story() {
    let tmp = tempfile::tempdir().unwrap();
    let models = models(tmp.path(), false);
    let examples = root().join("examples");
    let (v, stderr) = preview(
        tmp.path(),
        &[
            "--models",
            models.to_str().unwrap(),
            "--input",
            examples.to_str().unwrap(),
        ],
    );
    assert!(!stderr.contains("WARN"), "{stderr}");
    let stories = story_files(&v);
    let story_of = |file: &str| -> Vec<&Vec<String>> {
        stories
            .iter()
            .filter(|s| s.iter().any(|x| x == file))
            .collect()
    };
    for (event, a, b) in [
        (
            "Shenzhen",
            "2022-03-14-shenzhen-lockdown-wire.md",
            "2022-03-14-shenzhen-lockdown-business.txt",
        ),
        (
            "TV protest",
            "2022-03-14-tv-protest-wire.md",
            "2022-03-14-tv-protest-evening.html",
        ),
        (
            "talks",
            "2022-03-14-ukraine-talks-wire.md",
            "2022-03-14-ukraine-talks-aljazeera.txt",
        ),
    ] {
        let with_b = story_of(b);
        assert_eq!(with_b.len(), 1, "{event}: {stories:?}");
        assert_eq!(
            with_b[0],
            &vec![a.to_owned(), b.to_owned()]
                .into_iter()
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>(),
            "{event}: {stories:?}"
        );
    }
    // Nothing else was merged: the heatwave, football and markets stories
    // stand alone.
    for alone in [
        "2022-03-14-heatwave-study.html",
        "2022-03-14-football.txt",
        "2022-03-14-markets.json",
    ] {
        let s = story_of(alone);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].len(), 1, "{alone}: {stories:?}");
    }
    // A story of several reports has one summary drawn from them.
    let shenzhen = story_with(&v, "2022-03-14-shenzhen-lockdown-business.txt");
    let summary = shenzhen["summary"].to_string();
    assert!(summary.contains("Shenzhen"), "{summary}");
    let words: usize = shenzhen["summary"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().split_whitespace().count())
        .sum();
    assert!(words <= 75, "{words} words: {summary}");
}

/// No encoder, `embedder = "none"`, or a broken one: grouping by words, with
/// one warning (naming the broken file), and the preview still works.
#[test]
fn without_a_working_encoder_grouping_falls_back_to_words() {
    let tmp = tempfile::tempdir().unwrap();
    let examples = root().join("examples");
    let input = ["--input", examples.to_str().unwrap()];
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let mut args = vec!["--models", empty.to_str().unwrap()];
    args.extend(input);
    let (v, stderr) = preview(tmp.path(), &args);
    assert_eq!(stderr.matches("WARN").count(), 1, "{stderr}");
    assert!(stderr.contains("no sentence encoder"), "{stderr}");
    let by_words = story_files(&v);

    let mut args = vec!["--embedder", "none"];
    args.extend(input);
    let (v, stderr) = preview(tmp.path(), &args);
    assert!(!stderr.contains("WARN"), "{stderr}");
    assert_eq!(story_files(&v), by_words);

    // A broken encoder: its weights cut in half.
    let broken = tmp.path().join("broken/enc");
    std::fs::create_dir_all(broken.join("1_Pooling")).unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "modules.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ] {
        std::fs::copy(minilm().join(f), broken.join(f)).unwrap();
    }
    let weights = std::fs::read(minilm().join("model.safetensors")).unwrap();
    std::fs::write(
        broken.join("model.safetensors"),
        &weights[..weights.len() / 2],
    )
    .unwrap();
    let mut args = vec!["--models", broken.parent().unwrap().to_str().unwrap()];
    args.extend(input);
    let (v, stderr) = preview(tmp.path(), &args);
    assert_eq!(stderr.matches("WARN").count(), 1, "{stderr}");
    assert!(
        stderr.contains("model.safetensors") && stderr.contains("grouped by shared words"),
        "{stderr}"
    );
    assert_eq!(story_files(&v), by_words);
}

/// Embeddings are kept in the database: rebuilding an edition computes
/// none again.
#[test]
fn embeddings_are_cached_in_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let models = models(tmp.path(), false);
    let examples = root().join("examples");
    let m = models.to_str().unwrap();
    let e = examples.to_str().unwrap();
    let add = ["subscribers", "add", "reader@example.com"];
    succeeded(digest(tmp.path()).args(add).output().unwrap(), &add);
    let build = |extra: &[&str]| {
        let mut args = vec![
            "-v",
            "--models",
            m,
            "edition",
            "build",
            "--date",
            "2022-03-14",
            "-i",
            e,
        ];
        args.extend_from_slice(extra);
        let out = succeeded(digest(tmp.path()).args(&args).output().unwrap(), &args);
        text(&out.stderr)
    };
    let first = build(&[]);
    assert!(
        first.contains("embeddings: 0 cached, 9 computed"),
        "{first}"
    );
    let second = build(&["--rebuild"]);
    assert!(
        second.contains("embeddings: 9 cached, 0 computed"),
        "{second}"
    );
}

/// With a transformer summarizer, a story of several reports shows the
/// model's summary of its best report (the guard and fallback as for any
/// model summary).
#[test]
fn with_a_transformer_a_story_shows_the_model_summary_of_its_best_report() {
    let tmp = tempfile::tempdir().unwrap();
    let models = models(tmp.path(), true);
    let m = models.to_str().unwrap();
    let examples = root().join("examples");
    let (v, _) = preview(
        tmp.path(),
        &[
            "--models",
            m,
            "--summarizer",
            "transformer",
            "--input",
            examples.to_str().unwrap(),
        ],
    );
    let shenzhen = story_with(&v, "2022-03-14-shenzhen-lockdown-business.txt");
    let main = root().join(format!(
        "examples/{}",
        match shenzhen["source"].as_str().unwrap() {
            "World Wire" => "2022-03-14-shenzhen-lockdown-wire.md",
            _ => "2022-03-14-shenzhen-lockdown-business.txt",
        }
    ));
    let args = [
        "--models",
        m,
        "--summarizer",
        "transformer",
        "summarize",
        "--format",
        "json",
        main.to_str().unwrap(),
    ];
    let out = succeeded(digest(tmp.path()).args(args).output().unwrap(), &args);
    let alone: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(alone[0]["sentences"]["abstractive"], true, "{alone}");
    let alone: Vec<String> = alone[0]["sentences"]["sentences"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect();
    let story: Vec<String> = serde_json::from_value(shenzhen["summary"].clone()).unwrap();
    assert_eq!(story, alone);
}
