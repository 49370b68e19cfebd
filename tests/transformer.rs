//! The transformer summarizer. Parity with Hugging Face `transformers`:
//! tiny random-weight checkpoints and what `transformers` generated for
//! them (`tests/fixtures/transformer/make_models.py`), greedy and beam
//! search, token ids and decoded summaries. Then the summarizer as a user
//! meets it: `--summarizer`, discovery in `models/`, the fallback when a
//! checkpoint is broken, the guard, the cache, `digest model info|check`.

use crate::support;

use std::path::{Path, PathBuf};

use candle_core::Device;
use dailydigest::summarize::transformer::generate::{self, Seq2Seq};
use dailydigest::summarize::transformer::{load_bart, load_t5, Transformer};
use support::{digest, text};

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transformer/models")
}

fn expected() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(models().join("expected.json")).unwrap()).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn check(name: &str) {
    let dir = models().join(name);
    if name.contains("t5") {
        check_model(name, &load_t5(&dir).unwrap());
    } else {
        check_model(name, &load_bart(&dir).unwrap());
    }
}

fn check_model(name: &str, model: &impl Seq2Seq) {
    let dir = models().join(name);
    let cfg = generate::GenerationConfig::load(&dir).unwrap();
    let exp = &expected()[name];
    let mut tokenizer = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let max = exp["max_input_tokens"].as_u64().unwrap() as usize;
    tokenizer
        .with_truncation(Some(tokenizers::TruncationParams {
            max_length: max,
            ..Default::default()
        }))
        .unwrap();
    for (i, text) in exp["inputs"].as_array().unwrap().iter().enumerate() {
        let want_ids = ids(&exp["input_ids"][i]);
        // T5 inputs carry the task prefix ("summarize: ", task_specific_params).
        let text = text.as_str().unwrap();
        assert!(text.starts_with(exp["prefix"].as_str().unwrap_or("")));
        let enc = tokenizer.encode(text, true).unwrap();
        let got_ids: Vec<u32> = enc.get_ids().to_vec();
        assert_eq!(got_ids, want_ids, "{name} input {i}: tokenizer ids");
        let greedy_cfg = generate::GenerationConfig {
            num_beams: 1,
            ..cfg.clone()
        };
        assert_eq!(
            generate::greedy(model, &want_ids, &greedy_cfg).unwrap(),
            ids(&exp["greedy"][i]),
            "{name} input {i}: greedy"
        );
        assert_eq!(
            generate::beam_search(model, &want_ids, &cfg).unwrap(),
            ids(&exp["beam"][i]),
            "{name} input {i}: beam search"
        );
        // The two other stopping rules.
        for (setting, key) in [
            (generate::EarlyStopping::No, "beam_early_stopping_false"),
            (generate::EarlyStopping::Never, "beam_early_stopping_never"),
        ] {
            let cfg = generate::GenerationConfig {
                early_stopping: setting,
                ..cfg.clone()
            };
            assert_eq!(
                generate::beam_search(model, &want_ids, &cfg).unwrap(),
                ids(&exp[key][i]),
                "{name} input {i}: beam search, {key}"
            );
        }
    }
}

#[test]
fn tiny_bart_matches_transformers_token_for_token() {
    check("tiny-bart");
}

#[test]
fn tiny_pegasus_matches_transformers_token_for_token() {
    check("tiny-pegasus");
}

#[test]
fn tiny_flan_t5_matches_transformers_token_for_token() {
    check("tiny-t5");
}

#[test]
fn summaries_match_transformers_end_to_end() {
    // Tokenize with the task prefix, cut at the model's own limit, generate
    // with the summarization settings, decode without special tokens.
    for name in ["tiny-bart", "tiny-pegasus", "tiny-t5", "tiny-bart-legacy"] {
        let exp = &expected()[name];
        let t = Transformer::load(&models().join(name), &Device::Cpu).unwrap();
        let reference = &expected()["tiny-bart"];
        let limit = exp["summary_limit"]
            .as_u64()
            .or(reference["summary_limit"].as_u64())
            .unwrap() as usize;
        assert_eq!(t.checkpoint().max_input_tokens, limit, "{name}");
        let inputs = exp["summary_inputs"].as_array().unwrap();
        assert_eq!(inputs.len(), 4);
        for (i, input) in inputs.iter().enumerate() {
            let input = input.as_str().unwrap();
            let (ids, full) = t.encode(input).unwrap();
            if let Some(n) = exp["summary_input_tokens"][i].as_u64() {
                assert_eq!(full, n as usize, "{name} input {i}: tokens before the cut");
            }
            if let Some(want) = exp["summary_input_ids"].get(i) {
                assert_eq!(
                    ids,
                    self::ids(want),
                    "{name} input {i}: legacy tokenizer ids"
                );
            }
            // The last input is longer than every model's limit.
            if i == 3 {
                assert_eq!(ids.len(), limit, "{name}: long input cut at the limit");
            }
            assert_eq!(
                t.generate_text(input).unwrap(),
                exp["summaries"][i].as_str().unwrap(),
                "{name} input {i}: summary"
            );
        }
    }
}

/// A copy of a fixture checkpoint, to break or to place in a models folder.
fn copy_checkpoint(name: &str, to: &Path) -> PathBuf {
    let dir = to.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in std::fs::read_dir(models().join(name)).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
    }
    dir
}

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

const SEED: &str = "../shared/seeds/000_10bc2089c6310ba1.txt";

fn seed() -> PathBuf {
    let p = support::root().join(SEED);
    if p.is_file() {
        p
    } else {
        support::root().join("examples/2022-03-14-ukraine-talks-aljazeera.txt")
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

/// Counts the summaries its inner summarizer really makes.
struct Counting<'a> {
    inner: &'a dyn dailydigest::summarize::Summarizer,
    calls: std::cell::Cell<usize>,
}

impl dailydigest::summarize::Summarizer for Counting<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn settings(&self) -> String {
        self.inner.settings()
    }
    fn summarize(
        &self,
        article: &dailydigest::article::Article,
        budget: dailydigest::summarize::Budget,
    ) -> Result<dailydigest::summarize::Summary, dailydigest::summarize::SummarizeError> {
        self.calls.set(self.calls.get() + 1);
        self.inner.summarize(article, budget)
    }
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

#[test]
fn batched_generation_gives_each_input_what_it_gets_alone() {
    // Three inputs of different lengths in one pass: padding, the mask and
    // inputs finishing at different steps.
    for name in ["tiny-bart", "tiny-pegasus", "tiny-t5"] {
        let exp = &expected()[name];
        let dir = models().join(name);
        let inputs: Vec<Vec<u32>> = exp["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(ids)
            .collect();
        let refs: Vec<&[u32]> = inputs.iter().map(Vec::as_slice).collect();
        assert!(refs.iter().any(|r| r.len() != refs[0].len()));
        let want =
            |key: &str| -> Vec<Vec<u32>> { exp[key].as_array().unwrap().iter().map(ids).collect() };
        let cfg = generate::GenerationConfig::load(&dir).unwrap();
        let greedy_cfg = generate::GenerationConfig {
            num_beams: 1,
            ..cfg.clone()
        };
        let run = |model: &dyn Seq2Seq| {
            assert_eq!(
                generate::generate_batch(model, &refs, &cfg).unwrap(),
                want("beam"),
                "{name}: beam search, batched"
            );
            assert_eq!(
                generate::generate_batch(model, &refs, &greedy_cfg).unwrap(),
                want("greedy"),
                "{name}: greedy, batched"
            );
        };
        if name == "tiny-t5" {
            run(&load_t5(&dir).unwrap());
        } else {
            run(&load_bart(&dir).unwrap());
        }
        // The summarizer's own batches (the long input among them).
        let t = Transformer::load(&dir, &Device::Cpu).unwrap();
        let texts: Vec<String> = exp["summary_inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .rev()
            .collect();
        let mut want: Vec<&str> = exp["summaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        want.reverse();
        assert_eq!(
            t.generate_texts(&texts).unwrap(),
            want,
            "{name}: summaries, batched"
        );
    }
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
