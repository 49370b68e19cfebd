//! What the commands say about the model: `summarize` and `preview` name
//! the checkpoint, `model info` and `model check` describe what would run,
//! and summaries are cached per article, model and settings.

use super::*;

#[test]
fn summarize_and_preview_use_the_checkpoint_in_models_and_say_so() {
    let tmp = tempfile::tempdir().unwrap();
    copy_checkpoint("tiny-bart", &tmp.path().join("models"));
    // As it is: the model's own summary, cut to the budget.
    let out = digest(tmp.path())
        .args([
            "--summarizer",
            "transformer",
            "summarize",
            "--format",
            "json",
        ])
        .arg(seed())
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("summarizing with the transformer tiny-bart (BartForConditionalGeneration"),
        "{err}"
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let article = dailydigest::ingest::Ingest::new([dailydigest::ingest::Input::Path(seed())])
        .next()
        .unwrap()
        .unwrap();
    let t = Transformer::load(&tmp.path().join("models/tiny-bart"), &Device::Cpu).unwrap();
    let raw = t.generate_text(&article.paragraphs.join(" ")).unwrap();
    let summary = json[0]["summary"].as_str().unwrap();
    assert!(!summary.is_empty());
    assert!(
        raw.starts_with(summary.lines().next().unwrap()),
        "{raw:?} / {summary:?}"
    );

    // auto: the random model's summaries are degenerate, so the extractive
    // ones replace them, and the run says how many.
    let out = digest(tmp.path())
        .args(["preview", "--date", "2022-03-14", "--input"])
        .arg(support::root().join("examples"))
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("summarizing with the transformer tiny-bart"),
        "{err}"
    );
    assert!(
        err.contains("model summaries were degenerate")
            && err.contains("replaced by extractive ones"),
        "{err}"
    );
    let plain = digest(tmp.path())
        .args([
            "--summarizer",
            "extractive",
            "preview",
            "--date",
            "2022-03-14",
            "--input",
        ])
        .arg(support::root().join("examples"))
        .output()
        .unwrap();
    assert_eq!(
        out.stdout, plain.stdout,
        "replaced summaries are the extractive ones"
    );
}

#[test]
fn model_info_and_check_describe_what_would_run() {
    let tmp = tempfile::tempdir().unwrap();
    copy_checkpoint("tiny-t5", &tmp.path().join("models"));
    // A checkpoint linked in from elsewhere counts too.
    let elsewhere = tempfile::tempdir().unwrap();
    let bart = copy_checkpoint("tiny-bart", elsewhere.path());
    #[cfg(unix)]
    std::os::unix::fs::symlink(&bart, tmp.path().join("models/tiny-bart")).unwrap();
    #[cfg(not(unix))]
    copy_checkpoint("tiny-bart", &tmp.path().join("models"));
    let out = digest(tmp.path()).args(["model", "info"]).output().unwrap();
    let info = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    for want in [
        "2 folders: tiny-bart (summarizer), tiny-t5 (summarizer)",
        "BartForConditionalGeneration (bart)",
        "beam search, 4 beams, 5-20 tokens, no_repeat_ngram_size 3",
        "forced BOS 0, forced EOS 2",
        "at most 128 tokens",
        "tokenizer.json, 500 tokens",
        "CPU",
    ] {
        assert!(info.contains(want), "{want:?} in\n{info}");
    }
    // The one named in the config, with its task prefix.
    let out = digest(tmp.path())
        .args(["model", "info"])
        .env("DIGEST_TRANSFORMER", "{ model = \"tiny-t5\" }")
        .output()
        .unwrap();
    let info = text(&out.stdout);
    assert!(info.contains("T5ForConditionalGeneration (t5)"), "{info}");
    assert!(info.contains("prefix \"summarize: \""), "{info}");
    assert!(info.contains("at most 512 tokens"), "{info}");

    let out = digest(tmp.path())
        .args(["model", "check"])
        .output()
        .unwrap();
    let check = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(check.contains("loaded       in"), "{check}");
    assert!(check.contains("input tokens ->"), "{check}");
    assert!(
        check.contains("passes: used as written")
            || check.contains(": in auto the extractive summary would replace it"),
        "{check}"
    );

    let empty = tempfile::tempdir().unwrap();
    let out = digest(empty.path())
        .args(["model", "info"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("the extractive summarizer"));
    let out = digest(empty.path())
        .args(["model", "check"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("no transformer checkpoint"));
}

#[test]
fn summaries_are_cached_per_article_model_and_settings() {
    use dailydigest::summarize::{Budget, Cached, Engine, Summarizer};
    let tmp = tempfile::tempdir().unwrap();
    let models_dir = tmp.path().join("models");
    copy_checkpoint("tiny-bart", &models_dir);
    copy_checkpoint("tiny-pegasus", &models_dir);
    let store = dailydigest::store::Store::open(&tmp.path().join("digest.db")).unwrap();
    let article = dailydigest::ingest::Ingest::new([dailydigest::ingest::Input::Path(seed())])
        .next()
        .unwrap()
        .unwrap();
    let engine = |model: &str, choice| {
        let mut config = dailydigest::config::Config {
            models: models_dir.clone(),
            summarizer: choice,
            ..Default::default()
        };
        config.transformer.model = Some(model.into());
        Engine::new(&config).unwrap()
    };
    let calls = |e: &Engine| {
        let counting = Counting {
            inner: e,
            calls: Default::default(),
        };
        let cached = Cached::new(&counting, &store);
        let summary = cached.summarize(&article, Budget::default()).unwrap();
        (counting.calls.get(), summary)
    };
    use dailydigest::summarize::Choice::{Auto, Transformer as AsIs};
    let bart = engine("tiny-bart", AsIs);
    let (n, first) = calls(&bart);
    assert_eq!(n, 1);
    let (n, again) = calls(&bart);
    assert_eq!((n, &again), (0, &first), "a re-run costs nothing");
    // Another model, or the same one with the guard, is another summary.
    assert_eq!(calls(&engine("tiny-pegasus", AsIs)).0, 1);
    let (n, guarded) = calls(&engine("tiny-bart", Auto));
    assert_eq!(n, 1);
    assert!(
        guarded.fallback.is_some(),
        "the random model's summary is degenerate"
    );
    assert_eq!(
        calls(&engine("tiny-bart", Auto)).1,
        guarded,
        "fallbacks are cached too"
    );
    // New weights (a newer file) are a new model.
    let weights = models_dir.join("tiny-bart/model.safetensors");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .write(true)
        .open(&weights)
        .unwrap()
        .set_modified(later)
        .unwrap();
    assert_eq!(calls(&engine("tiny-bart", AsIs)).0, 1);
    assert_ne!(bart.settings(), engine("tiny-bart", AsIs).settings());
}
