//! When a checkpoint is broken, missing or fails: an error naming the
//! file, one warning and the extractive summarizer, and the model tried
//! again next time.

use super::*;

/// Edits a checkpoint's config.json.
fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(&path, serde_json::to_string(&v).unwrap()).unwrap();
}

/// Each way a checkpoint can be broken, and the words its error must have.
fn broken_checkpoints(tmp: &Path) -> Vec<(PathBuf, &'static str)> {
    let mut out = Vec::new();
    let d = copy_checkpoint("tiny-bart", &tmp.join("missing"));
    std::fs::remove_file(d.join("model.safetensors")).unwrap();
    out.push((d, "no model.safetensors"));
    let d = copy_checkpoint("tiny-bart", &tmp.join("corrupt"));
    std::fs::write(
        d.join("model.safetensors"),
        b"\x10\x00\x00\x00\x00\x00\x00\x00not json",
    )
    .unwrap();
    out.push((d, "model.safetensors"));
    let d = copy_checkpoint("tiny-bart", &tmp.join("truncated"));
    let bytes = std::fs::read(d.join("model.safetensors")).unwrap();
    std::fs::write(d.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    out.push((d, "model.safetensors"));
    let d = copy_checkpoint("tiny-bart", &tmp.join("shapes"));
    edit_config(&d, |c| c["encoder_ffn_dim"] = 128.into());
    out.push((d, "shape"));
    let d = copy_checkpoint("tiny-bart", &tmp.join("arch"));
    edit_config(&d, |c| c["model_type"] = "gpt2".into());
    out.push((d, "unknown architecture \"gpt2\""));
    let d = copy_checkpoint("tiny-t5", &tmp.join("tokenizer"));
    std::fs::remove_file(d.join("tokenizer.json")).unwrap();
    out.push((d, "no tokenizer.json"));
    out
}

#[test]
fn a_broken_checkpoint_is_an_error_naming_the_file_never_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    for (dir, words) in broken_checkpoints(tmp.path()) {
        let err = match Transformer::load(&dir, &Device::Cpu) {
            Ok(_) => panic!("{} loaded", dir.display()),
            Err(e) => e,
        };
        assert!(err.contains(words), "{}: {err}", dir.display());
        assert!(err.contains(&dir.display().to_string()), "{err}");
    }
}

#[test]
fn auto_falls_back_to_extractive_with_one_warning_per_broken_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let extractive = digest(tmp.path())
        .args(["--summarizer", "extractive", "summarize"])
        .arg(seed())
        .output()
        .unwrap();
    assert!(extractive.status.success());
    for (dir, words) in broken_checkpoints(tmp.path()) {
        let out = digest(tmp.path())
            .arg("--models")
            .arg(dir.parent().unwrap())
            .arg("summarize")
            .arg(seed())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert_eq!(out.stdout, extractive.stdout, "{}", dir.display());
        let warnings: Vec<&str> = err.lines().filter(|l| l.contains("WARN")).collect();
        assert_eq!(warnings.len(), 1, "{err}");
        assert!(warnings[0].contains(words), "{err}");
        assert!(warnings[0].contains("extractive"), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        // Asked for the transformer by name, the same checkpoint is an error (exit 2).
        let out = digest(tmp.path())
            .arg("--models")
            .arg(dir.parent().unwrap())
            .args(["--summarizer", "transformer", "summarize"])
            .arg(seed())
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(words) && !err.contains("panicked"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn an_empty_models_folder_means_extractive_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("models")).unwrap();
    for args in [
        &["summarize"][..],
        &["preview", "--date", "2022-03-14", "--input"],
    ] {
        let out = digest(tmp.path()).args(args).arg(seed()).output().unwrap();
        let err = text(&out.stderr);
        assert!(out.status.success(), "{err}");
        assert!(
            err.contains(
                "no transformer checkpoint in models: summarizing with the extractive summarizer"
            ),
            "{err}"
        );
    }
    let out = digest(tmp.path())
        .args(["--summarizer", "transformer", "summarize"])
        .arg(seed())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("holds no checkpoint"));
}

#[test]
fn a_model_that_fails_falls_back_and_is_tried_again_next_time() {
    use dailydigest::summarize::{Budget, Cached, Choice, Engine, Summarizer};
    let tmp = tempfile::tempdir().unwrap();
    let models_dir = tmp.path().join("models");
    // tiny-t5 (357 token embeddings) with tiny-bart's 500-token tokenizer:
    // the ids overflow the embedding table, and generation fails.
    let dir = copy_checkpoint("tiny-t5", &models_dir);
    std::fs::copy(
        models().join("tiny-bart/tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .unwrap();
    let config = dailydigest::config::Config {
        models: models_dir.clone(),
        ..Default::default()
    };
    let engine = Engine::new(&config).unwrap();
    let store = dailydigest::store::Store::open(&tmp.path().join("digest.db")).unwrap();
    let article = dailydigest::ingest::Ingest::new([dailydigest::ingest::Input::Path(seed())])
        .next()
        .unwrap()
        .unwrap();
    for _ in 0..2 {
        let counting = Counting {
            inner: &engine,
            calls: Default::default(),
        };
        let cached = Cached::new(&counting, &store);
        let summary = cached.summarize(&article, Budget::default()).unwrap();
        assert!(
            matches!(
                summary.fallback,
                Some(dailydigest::summarize::Fallback::ModelError(_))
            ),
            "{summary:?}"
        );
        assert!(!summary.sentences.is_empty());
        assert_eq!(
            counting.calls.get(),
            1,
            "a failed model summary is not cached"
        );
    }
    // Asked for as is, the failure is the article's error, not a summary.
    let config = dailydigest::config::Config {
        models: models_dir,
        summarizer: Choice::Transformer,
        ..Default::default()
    };
    let engine = Engine::new(&config).unwrap();
    assert!(engine.summarize(&article, Budget::default()).is_err());
}

#[test]
fn an_edition_with_no_articles_or_a_full_last_batch_does_not_trip_the_model() {
    let tmp = tempfile::tempdir().unwrap();
    copy_checkpoint("tiny-bart", &tmp.path().join("models"));
    let articles = tmp.path().join("articles");
    std::fs::create_dir(&articles).unwrap();
    for name in [
        "2022-03-14-football.txt",
        "2022-03-14-markets.json",
        "2022-03-14-ukraine-talks-aljazeera.txt",
        "2022-03-14-ukraine-talks-wire.md",
    ] {
        std::fs::copy(
            support::root().join("examples").join(name),
            articles.join(name),
        )
        .unwrap();
    }
    // Four articles: exactly one batch of the default four; then a day
    // with none.
    for date in ["2022-03-14", "2022-03-15"] {
        let out = digest(tmp.path())
            .args(["preview", "--date", date, "--input"])
            .arg(&articles)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert!(out.status.success(), "{date}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
}
