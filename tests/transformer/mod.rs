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

mod commands;
mod fallback;
mod parity;

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

const SEED: &str = "../shared/seeds/000_10bc2089c6310ba1.txt";

fn seed() -> PathBuf {
    let p = support::root().join(SEED);
    if p.is_file() {
        p
    } else {
        support::root().join("examples/2022-03-14-ukraine-talks-aljazeera.txt")
    }
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
