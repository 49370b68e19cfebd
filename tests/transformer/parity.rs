//! The candle engine against `transformers`: token for token on tiny
//! BART, Pegasus and Flan-T5 checkpoints, end to end, and batched.

use super::*;

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
