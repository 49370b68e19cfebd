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

use super::attention::DecoderState;
use super::bart::log_softmax;

/// An encoder-decoder model, one decoding step at a time.
pub trait Seq2Seq {
    fn encode(&self, ids: &[u32]) -> Result<Tensor>;
    /// The decoder state for an encoded input; any number of rows (beams)
    /// can decode from it.
    fn start(&self, encoded: &Tensor) -> Result<DecoderState>;
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
            fn start(&self, encoded: &Tensor) -> Result<DecoderState> {
                <$t>::start(self, encoded)
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
    #[serde(default)]
    pub early_stopping: EarlyStopping,
    #[serde(default, deserialize_with = "first_id")]
    pub forced_bos_token_id: Option<u32>,
    #[serde(default, deserialize_with = "first_id")]
    pub forced_eos_token_id: Option<u32>,
    pub decoder_start_token_id: u32,
    /// Any of them ends a sequence (one id or a list in the files).
    #[serde(deserialize_with = "ids")]
    pub eos_token_id: Vec<u32>,
}

/// When beam search stops (`early_stopping`: `true`, `false` or `"never"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EarlyStopping {
    /// As soon as `num_beams` hypotheses are finished.
    Yes,
    /// When no running beam can beat the worst finished hypothesis at its
    /// current length.
    #[default]
    No,
    /// When none could even at `max_length` (with a positive length penalty).
    Never,
}

impl<'de> Deserialize<'de> for EarlyStopping {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(true) => EarlyStopping::Yes,
            serde_json::Value::String(s) if s == "never" => EarlyStopping::Never,
            _ => EarlyStopping::No,
        })
    }
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

/// One token id or a list of them, at least one.
fn ids<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Vec<u32>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    let ids: Vec<u32> = match &v {
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_u64())
            .map(|n| n as u32)
            .collect(),
        other => other.as_u64().map(|n| n as u32).into_iter().collect(),
    };
    if ids.is_empty() {
        return Err(serde::de::Error::custom("expected a token id"));
    }
    Ok(ids)
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
    /// `config.json`, as in `transformers`; `max_new_tokens` and
    /// `min_new_tokens` become lengths.
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
        // Counted in new tokens, they win over the lengths (which count the
        // decoder start token too).
        for (new, total) in [
            ("max_new_tokens", "max_length"),
            ("min_new_tokens", "min_length"),
        ] {
            if let Some(n) = obj.get(new).and_then(|n| n.as_u64()) {
                obj.insert(total.into(), (n + 1).into());
            }
        }
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
        for &eos in &cfg.eos_token_id {
            scores[eos as usize] = f32::NEG_INFINITY;
        }
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

/// The `n` best scores of a row with their indices, best first; equal
/// scores in index order (the order `top 2k` below ranks them in).
fn top_n(row: &[f32], n: usize) -> Vec<(f32, u32)> {
    let mut best: Vec<(f32, u32)> = Vec::with_capacity(n + 1);
    for (i, &s) in row.iter().enumerate() {
        if best.len() == n && s <= best[n - 1].0 {
            continue;
        }
        let at = best.partition_point(|&(b, _)| b >= s);
        best.insert(at, (s, i as u32));
        best.truncate(n);
    }
    best
}

/// Greedy search. Returns the sequence, starting with the decoder start token.
pub fn greedy(
    model: &(impl Seq2Seq + ?Sized),
    input_ids: &[u32],
    cfg: &GenerationConfig,
) -> Result<Vec<u32>> {
    Ok(greedy_batch(model, &[input_ids], cfg)?.remove(0))
}

/// Beam search with `cfg.num_beams` beams. Returns the best sequence,
/// starting with the decoder start token and ending with EOS when it ended.
pub fn beam_search(
    model: &(impl Seq2Seq + ?Sized),
    input_ids: &[u32],
    cfg: &GenerationConfig,
) -> Result<Vec<u32>> {
    Ok(beam_search_batch(model, &[input_ids], cfg)?.remove(0))
}

/// Greedy search or beam search, as `cfg.num_beams` says, for several
/// inputs at once: each decoder step runs every unfinished input's rows in
/// one forward pass. Each input's result is the one it gets alone.
pub fn generate_batch(
    model: &(impl Seq2Seq + ?Sized),
    inputs: &[&[u32]],
    cfg: &GenerationConfig,
) -> Result<Vec<Vec<u32>>> {
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    if cfg.num_beams > 1 {
        beam_search_batch(model, inputs, cfg)
    } else {
        greedy_batch(model, inputs, cfg)
    }
}

/// Encodes each input on its own (no padding in the encoder) and stacks
/// their decoder states, with room for `cfg.max_length` positions.
fn start_batch(
    model: &(impl Seq2Seq + ?Sized),
    inputs: &[&[u32]],
    cfg: &GenerationConfig,
) -> Result<DecoderState> {
    let states = inputs
        .iter()
        .map(|ids| model.start(&model.encode(ids)?))
        .collect::<Result<Vec<_>>>()?;
    let mut state = DecoderState::stack(states)?;
    state.plan(cfg.max_length);
    Ok(state)
}

/// Drops the inputs that are done from the state: `keep` lists, for each
/// input still going, its index among the current ones; `rows` the state
/// rows that continue (in their new order).
fn narrow(
    model: &(impl Seq2Seq + ?Sized),
    state: &mut DecoderState,
    keep: &[u32],
    current: usize,
    rows: &[u32],
) -> Result<()> {
    if keep.len() < current {
        state.keep_inputs(&Tensor::new(keep, model.device())?)?;
    }
    state.select(rows)
}

fn greedy_batch(
    model: &(impl Seq2Seq + ?Sized),
    inputs: &[&[u32]],
    cfg: &GenerationConfig,
) -> Result<Vec<Vec<u32>>> {
    let mut state = start_batch(model, inputs, cfg)?;
    let mut seqs = vec![vec![cfg.decoder_start_token_id]; inputs.len()];
    let mut active: Vec<usize> = (0..inputs.len()).collect();
    while !active.is_empty() && seqs[active[0]].len() < cfg.max_length {
        let last: Vec<u32> = active
            .iter()
            .map(|&a| *seqs[a].last().expect("non-empty"))
            .collect();
        let logits: Vec<Vec<f32>> = model.step(&mut state, &last)?.to_vec2()?;
        let mut keep = Vec::with_capacity(active.len());
        for (g, (&a, mut scores)) in active.iter().zip(logits).enumerate() {
            process(&mut scores, &seqs[a], cfg);
            let next = argmax(&scores);
            seqs[a].push(next);
            if !cfg.eos_token_id.contains(&next) {
                keep.push(g as u32);
            }
        }
        if keep.len() < active.len() && !keep.is_empty() {
            narrow(model, &mut state, &keep, active.len(), &keep)?;
        }
        active = keep.iter().map(|&g| active[g as usize]).collect();
    }
    Ok(seqs)
}

/// One input's beams in a beam search.
///
/// Scores are float32 sums, as `transformers` keeps them, so that near ties
/// rank the same way.
struct Beams {
    beams: Vec<Vec<u32>>,
    scores: Vec<f32>,
    finished: Vec<(f32, Vec<u32>)>,
}

impl Beams {
    fn new(k: usize, start: u32) -> Beams {
        Beams {
            beams: vec![vec![start]; k],
            // Only the first beam is live at the start (the others are copies).
            scores: (0..k).map(|i| if i == 0 { 0.0 } else { -1e9 }).collect(),
            finished: Vec::new(),
        }
    }

    /// Adds a finished hypothesis, keeping the best `k`.
    fn finish(&mut self, k: usize, score: f32, seq: Vec<u32>) {
        let worst = self.worst();
        if self.finished.len() < k || score > worst {
            self.finished.push((score, seq));
            if self.finished.len() > k {
                let (i, _) = self
                    .finished
                    .iter()
                    .enumerate()
                    .min_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
                    .expect("non-empty");
                self.finished.remove(i);
            }
        }
    }

    /// The lowest score among the finished hypotheses (+inf with none).
    fn worst(&self) -> f32 {
        self.finished
            .iter()
            .map(|f| f.0)
            .fold(f32::INFINITY, f32::min)
    }

    /// One step from this input's `k` rows of log-probabilities. Returns the
    /// beam each continuing hypothesis extends, or `None` when the search
    /// for this input is over.
    fn advance(&mut self, rows: Vec<Vec<f32>>, cfg: &GenerationConfig) -> Option<Vec<usize>> {
        let k = self.beams.len();
        let cur_len = self.beams[0].len();
        let vocab = rows[0].len();
        // The global top 2k is among each row's top 2k.
        let mut candidates: Vec<(f32, usize, u32)> = Vec::with_capacity(2 * k * k);
        for (b, mut row) in rows.into_iter().enumerate() {
            process(&mut row, &self.beams[b], cfg);
            for (s, t) in top_n(&row, 2 * k) {
                candidates.push((s + self.scores[b], b, t));
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
        let penalised = |generated: usize| (generated as f64).powf(cfg.length_penalty) as f32;
        let mut next: Vec<(f32, usize, u32)> = Vec::with_capacity(k);
        for (rank, &(score, b, t)) in candidates.iter().enumerate() {
            if cfg.eos_token_id.contains(&t) || last_step {
                if rank < k {
                    let mut seq = self.beams[b].clone();
                    seq.push(t);
                    self.finish(k, score / penalised(cur_len), seq);
                }
            } else if next.len() < k {
                next.push((score, b, t));
            }
        }
        if last_step || next.is_empty() {
            return None;
        }
        if self.finished.len() >= k {
            // Whether the best running beam could still beat the worst
            // finished hypothesis: never with `Yes`; at its current length
            // with `No`; at max_length with `Never` (positive penalty).
            let length = match cfg.early_stopping {
                EarlyStopping::Never if cfg.length_penalty > 0.0 => cfg.max_length - 1,
                _ => cur_len,
            };
            let improvable = next[0].0 / penalised(length) > self.worst();
            if cfg.early_stopping == EarlyStopping::Yes || !improvable {
                return None;
            }
        }
        self.beams = next
            .iter()
            .map(|&(_, b, t)| {
                let mut s = self.beams[b].clone();
                s.push(t);
                s
            })
            .collect();
        self.scores = next.iter().map(|&(s, _, _)| s).collect();
        Some(next.iter().map(|&(_, b, _)| b).collect())
    }

    /// The best finished hypothesis (or the best beam, if none finished).
    fn best(self) -> Vec<u32> {
        let Beams {
            beams, finished, ..
        } = self;
        finished
            .into_iter()
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|f| f.1)
            .unwrap_or_else(|| beams[0].clone())
    }
}

fn beam_search_batch(
    model: &(impl Seq2Seq + ?Sized),
    inputs: &[&[u32]],
    cfg: &GenerationConfig,
) -> Result<Vec<Vec<u32>>> {
    let k = cfg.num_beams.max(1);
    let mut state = start_batch(model, inputs, cfg)?;
    let mut searches: Vec<Beams> = (0..inputs.len())
        .map(|_| Beams::new(k, cfg.decoder_start_token_id))
        .collect();
    // The inputs still searching, in the order of their rows in the state.
    let mut active: Vec<usize> = (0..inputs.len()).collect();
    while !active.is_empty() {
        let last: Vec<u32> = active
            .iter()
            .flat_map(|&a| {
                searches[a]
                    .beams
                    .iter()
                    .map(|b| *b.last().expect("non-empty"))
            })
            .collect();
        let logp: Vec<Vec<f32>> = log_softmax(&model.step(&mut state, &last)?)?.to_vec2()?;
        let mut rows = logp.into_iter();
        let mut keep: Vec<u32> = Vec::with_capacity(active.len());
        let mut parents: Vec<u32> = Vec::with_capacity(active.len() * k);
        for (g, &a) in active.iter().enumerate() {
            let mine: Vec<Vec<f32>> = rows.by_ref().take(k).collect();
            if let Some(from) = searches[a].advance(mine, cfg) {
                parents.extend(from.iter().map(|&b| (g * k + b) as u32));
                keep.push(g as u32);
            }
        }
        if !keep.is_empty() {
            narrow(model, &mut state, &keep, active.len(), &parents)?;
        }
        active = keep.iter().map(|&g| active[g as usize]).collect();
    }
    Ok(searches.into_iter().map(Beams::best).collect())
}

#[cfg(test)]
mod tests {
    use super::{top_n, GenerationConfig};

    #[test]
    fn summarization_settings_layer_as_transformers_does() {
        let tmp = tempfile::tempdir().unwrap();
        let config = serde_json::json!({
            "model_type": "t5", "decoder_start_token_id": 0, "eos_token_id": [1],
            "task_specific_params": {"summarization": {
                "prefix": "summarize: ", "num_beams": 4, "max_length": 200, "min_length": 30,
                "early_stopping": true}}
        });
        std::fs::write(tmp.path().join("config.json"), config.to_string()).unwrap();
        std::fs::write(
            tmp.path().join("generation_config.json"),
            r#"{"eos_token_id": 1, "pad_token_id": 0, "max_length": 20, "max_new_tokens": null}"#,
        )
        .unwrap();
        let g = GenerationConfig::for_summarization(tmp.path(), &config).unwrap();
        assert_eq!((g.num_beams, g.min_length, g.max_length), (4, 30, 200));
        assert_eq!((g.decoder_start_token_id, g.eos_token_id), (0, vec![1]));
        assert_eq!(g.early_stopping, super::EarlyStopping::Yes);
        std::fs::write(
            tmp.path().join("generation_config.json"),
            r#"{"decoder_start_token_id": 2, "eos_token_id": [2, 3], "max_new_tokens": 60, "min_new_tokens": 10, "num_beams": 2}"#,
        )
        .unwrap();
        let g = GenerationConfig::for_summarization(tmp.path(), &serde_json::json!({})).unwrap();
        assert_eq!((g.num_beams, g.min_length, g.max_length), (2, 11, 61));
        assert_eq!((g.decoder_start_token_id, g.eos_token_id), (2, vec![2, 3]));
        assert_eq!(g.early_stopping, super::EarlyStopping::No);
    }

    #[test]
    fn top_n_ranks_as_a_full_sort_does_ties_by_index() {
        let row = [0.5, f32::NEG_INFINITY, 2.0, 0.5, 2.0, -1.0, 0.5, 3.0];
        let mut sorted: Vec<(f32, u32)> = row
            .iter()
            .enumerate()
            .map(|(i, &s)| (s, i as u32))
            .collect();
        sorted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for n in 1..=row.len() {
            assert_eq!(top_n(&row, n), sorted[..n], "n = {n}");
        }
        assert_eq!(top_n(&[1.0, 1.0, 1.0], 2), [(1.0, 0), (1.0, 1)]);
    }
}
