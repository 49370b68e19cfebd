//! Generation with Hugging Face `transformers` semantics: greedy search and
//! beam search, with the checkpoint's own settings from
//! `generation_config.json` (or `config.json`).
//!
//! What must match `transformers` exactly, token for token:
//! - the sequence starts with `decoder_start_token_id`, and every length
//!   (`min_length`, `max_length`, the processors' `cur_len`) counts it;
//! - logits processors in this order: no-repeat n-gram, min length (EOS
//!   banned while `cur_len < min_length`), forced BOS (at `cur_len == 1`),
//!   forced EOS (at `cur_len == max_length - 1`). Greedy applies them to
//!   the raw logits; beam search to the log-softmax;
//! - beam search keeps the top `2 × num_beams` candidates a step; an EOS
//!   candidate ranked below `num_beams` is dropped; a finished hypothesis
//!   scores `sum_logprobs / generated_len^length_penalty`; with
//!   `early_stopping` the search ends when `num_beams` have finished.

use std::path::Path;

use candle_core::Result;
use serde::Deserialize;

use candle_core::{Device, Tensor};

use super::bart::{log_softmax, DecoderState};

/// An encoder-decoder model, one decoding step at a time.
pub trait Seq2Seq {
    fn encode(&self, ids: &[u32]) -> Result<Tensor>;
    /// The decoder state for an encoded input, repeated `rows` times.
    fn start(&self, encoded: &Tensor, rows: usize) -> Result<DecoderState>;
    /// The last token of each row -> logits (rows, vocab).
    fn step(&self, state: &mut DecoderState, tokens: &[u32]) -> Result<Tensor>;
    fn device(&self) -> &Device;
}

macro_rules! seq2seq {
    ($t:ty) => {
        impl Seq2Seq for $t {
            fn encode(&self, ids: &[u32]) -> Result<Tensor> {
                <$t>::encode(self, ids)
            }
            fn start(&self, encoded: &Tensor, rows: usize) -> Result<DecoderState> {
                <$t>::start(self, encoded, rows)
            }
            fn step(&self, state: &mut DecoderState, tokens: &[u32]) -> Result<Tensor> {
                <$t>::step(self, state, tokens)
            }
            fn device(&self) -> &Device {
                <$t>::device(self)
            }
        }
    };
}
seq2seq!(super::bart::Model);
seq2seq!(super::t5::Model);

/// Generation settings, with the checkpoint's defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct GenerationConfig {
    #[serde(default = "one")]
    pub num_beams: usize,
    #[serde(default)]
    pub min_length: usize,
    #[serde(default = "twenty")]
    pub max_length: usize,
    #[serde(default)]
    pub no_repeat_ngram_size: usize,
    #[serde(default = "unit")]
    pub length_penalty: f64,
    #[serde(default, deserialize_with = "early_stopping")]
    pub early_stopping: bool,
    #[serde(default, deserialize_with = "first_id")]
    pub forced_bos_token_id: Option<u32>,
    #[serde(default, deserialize_with = "first_id")]
    pub forced_eos_token_id: Option<u32>,
    pub decoder_start_token_id: u32,
    #[serde(deserialize_with = "id")]
    pub eos_token_id: u32,
}

/// A token id, or the first of a list of them (`"eos_token_id": [1]`).
fn first_id<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Option<u32>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    let n = match &v {
        serde_json::Value::Array(a) => a.first().and_then(|x| x.as_u64()),
        other => other.as_u64(),
    };
    Ok(n.map(|n| n as u32))
}

fn id<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<u32, D::Error> {
    first_id(d)?.ok_or_else(|| serde::de::Error::custom("expected a token id"))
}

fn one() -> usize {
    1
}
fn twenty() -> usize {
    20
}
fn unit() -> f64 {
    1.0
}

/// `early_stopping` is `true`, `false` or `"never"` in Hugging Face configs.
fn early_stopping<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<bool, D::Error> {
    Ok(matches!(
        serde_json::Value::deserialize(d)?,
        serde_json::Value::Bool(true)
    ))
}

impl GenerationConfig {
    /// Reads `generation_config.json` when the checkpoint has one (as
    /// `transformers` does, it then ignores the generation keys of
    /// `config.json`), else `config.json`.
    pub fn load(dir: &Path) -> std::result::Result<GenerationConfig, String> {
        let (path, v) = Self::read(dir)?;
        serde_json::from_value(v).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The file `load` reads, as JSON.
    fn read(dir: &Path) -> std::result::Result<(std::path::PathBuf, serde_json::Value), String> {
        let path = [dir.join("generation_config.json"), dir.join("config.json")]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| format!("{}: no config.json", dir.display()))?;
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok((path, v))
    }

    /// The settings `transformers`' summarization pipeline uses: those of
    /// `load`, with the keys of `config.json`'s
    /// `task_specific_params.summarization` over them (T5 keeps its beam
    /// settings there). A missing `decoder_start_token_id` comes from
    /// `config.json`, as in `transformers`.
    pub fn for_summarization(
        dir: &Path,
        config: &serde_json::Value,
    ) -> std::result::Result<GenerationConfig, String> {
        let (path, mut v) = Self::read(dir)?;
        let obj = v
            .as_object_mut()
            .ok_or_else(|| format!("{}: not a JSON object", path.display()))?;
        for key in ["decoder_start_token_id", "eos_token_id", "bos_token_id"] {
            if obj.get(key).is_none_or(|x| x.is_null()) && !config[key].is_null() {
                obj.insert(key.into(), config[key].clone());
            }
        }
        if obj
            .get("decoder_start_token_id")
            .is_none_or(|x| x.is_null())
        {
            if let Some(bos) = obj.get("bos_token_id").cloned() {
                obj.insert("decoder_start_token_id".into(), bos);
            }
        }
        if let Some(task) = config["task_specific_params"]["summarization"].as_object() {
            for (k, val) in task {
                if k != "prefix" {
                    obj.insert(k.clone(), val.clone());
                }
            }
        }
        // Null means "unset" in transformers' files.
        obj.retain(|_, x| !x.is_null());
        serde_json::from_value(v).map_err(|e| format!("{}: {e}", path.display()))
    }
}

/// The processors, applied in `transformers`' order to one row of scores.
fn process(scores: &mut [f32], seq: &[u32], cfg: &GenerationConfig) {
    let cur_len = seq.len();
    let n = cfg.no_repeat_ngram_size;
    if n > 0 && cur_len + 1 >= n {
        // The last n-1 tokens, and every earlier n-gram that starts with them.
        let prefix = &seq[cur_len + 1 - n..];
        for i in 0..cur_len + 1 - n {
            if &seq[i..i + n - 1] == prefix {
                scores[seq[i + n - 1] as usize] = f32::NEG_INFINITY;
            }
        }
    }
    if cur_len < cfg.min_length {
        scores[cfg.eos_token_id as usize] = f32::NEG_INFINITY;
    }
    let force = |scores: &mut [f32], token: u32| {
        scores.iter_mut().for_each(|s| *s = f32::NEG_INFINITY);
        scores[token as usize] = 0.0;
    };
    if let (1, Some(bos)) = (cur_len, cfg.forced_bos_token_id) {
        force(scores, bos);
    }
    if let Some(eos) = cfg.forced_eos_token_id {
        if cur_len == cfg.max_length.saturating_sub(1) {
            force(scores, eos);
        }
    }
}

/// The first index of the largest value (as `torch.argmax`).
fn argmax(v: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best as u32
}

/// Greedy search. Returns the sequence, starting with the decoder start token.
pub fn greedy(
    model: &(impl Seq2Seq + ?Sized),
    input_ids: &[u32],
    cfg: &GenerationConfig,
) -> Result<Vec<u32>> {
    let encoded = model.encode(input_ids)?;
    let mut state = model.start(&encoded, 1)?;
    let mut seq = vec![cfg.decoder_start_token_id];
    while seq.len() < cfg.max_length {
        let logits = model.step(&mut state, &[*seq.last().expect("non-empty")])?;
        let mut scores: Vec<f32> = logits.squeeze(0)?.to_vec1()?;
        process(&mut scores, &seq, cfg);
        let next = argmax(&scores);
        seq.push(next);
        if next == cfg.eos_token_id {
            break;
        }
    }
    Ok(seq)
}

/// Beam search with `cfg.num_beams` beams. Returns the best sequence,
/// starting with the decoder start token and ending with EOS when it ended.
pub fn beam_search(
    model: &(impl Seq2Seq + ?Sized),
    input_ids: &[u32],
    cfg: &GenerationConfig,
) -> Result<Vec<u32>> {
    let k = cfg.num_beams.max(1);
    let encoded = model.encode(input_ids)?;
    let mut state = model.start(&encoded, k)?;
    let mut beams: Vec<Vec<u32>> = vec![vec![cfg.decoder_start_token_id]; k];
    let mut scores: Vec<f64> = (0..k).map(|i| if i == 0 { 0.0 } else { -1e9 }).collect();
    let mut finished: Vec<(f64, Vec<u32>)> = Vec::new();
    let normalise = |sum: f64, generated: usize| sum / (generated as f64).powf(cfg.length_penalty);
    let add = |finished: &mut Vec<(f64, Vec<u32>)>, score: f64, seq: Vec<u32>| {
        let worst = finished.iter().map(|f| f.0).fold(f64::INFINITY, f64::min);
        if finished.len() < k || score > worst {
            finished.push((score, seq));
            if finished.len() > k {
                let (i, _) = finished
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
                    .expect("non-empty");
                finished.remove(i);
            }
        }
    };
    loop {
        let cur_len = beams[0].len();
        let last: Vec<u32> = beams
            .iter()
            .map(|b| *b.last().expect("non-empty"))
            .collect();
        let logp = log_softmax(&model.step(&mut state, &last)?)?;
        let rows: Vec<Vec<f32>> = logp.to_vec2()?;
        let vocab = rows[0].len();
        let mut candidates: Vec<(f64, usize, u32)> = Vec::with_capacity(k * vocab);
        for (b, row) in rows.into_iter().enumerate() {
            let mut row = row;
            process(&mut row, &beams[b], cfg);
            for (t, &s) in row.iter().enumerate() {
                candidates.push((s as f64 + scores[b], b, t as u32));
            }
        }
        // The top 2k, best first; ties by the lower flat index, as torch.topk.
        candidates.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then((a.1 * vocab + a.2 as usize).cmp(&(b.1 * vocab + b.2 as usize)))
        });
        candidates.truncate(2 * k);
        // A candidate finishes on EOS or on reaching max_length; only those
        // ranked among the first k may enter the finished set.
        let last_step = cur_len + 1 >= cfg.max_length;
        let mut next: Vec<(f64, usize, u32)> = Vec::with_capacity(k);
        for (rank, &(score, b, t)) in candidates.iter().enumerate() {
            if t == cfg.eos_token_id || last_step {
                if rank < k {
                    let mut seq = beams[b].clone();
                    seq.push(t);
                    add(&mut finished, normalise(score, cur_len), seq);
                }
            } else if next.len() < k {
                next.push((score, b, t));
            }
        }
        let done_early = cfg.early_stopping && finished.len() >= k;
        if last_step || done_early || next.is_empty() {
            break;
        }
        let rows_idx: Vec<u32> = next.iter().map(|&(_, b, _)| b as u32).collect();
        state.select(&Tensor::new(rows_idx.as_slice(), model.device())?)?;
        beams = next
            .iter()
            .map(|&(_, b, t)| {
                let mut s = beams[b].clone();
                s.push(t);
                s
            })
            .collect();
        scores = next.iter().map(|&(s, _, _)| s).collect();
    }
    let best = finished
        .into_iter()
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|f| f.1)
        .unwrap_or_else(|| beams[0].clone());
    Ok(best)
}
