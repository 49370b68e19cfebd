//! Parity with Hugging Face `transformers`: tiny random-weight checkpoints
//! and the token ids `transformers` generated for them
//! (`tests/fixtures/transformer/make_models.py`), greedy and beam search.

use std::path::PathBuf;

use dailydigest::summarize::transformer::generate::{self, Seq2Seq};
use dailydigest::summarize::transformer::{load_bart, load_t5};

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
