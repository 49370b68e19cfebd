//! Abstractive summaries with a transformer, run by candle, from checkpoints
//! in Hugging Face layout, exactly as `huggingface-cli download --local-dir`
//! writes them:
//!
//! - `config.json` (the architecture), optional `generation_config.json`;
//! - `tokenizer.json`, or `vocab.json` + `merges.txt` (byte-level BPE, BART);
//! - `model.safetensors`, sharded `model-0000N-of-0000M.safetensors` with
//!   their index, or `pytorch_model.bin`.
//!
//! Architectures: the BART family (`bart.rs`: BART, DistilBART, Pegasus) and
//! T5 / Flan-T5 (`t5.rs`). Generation (`generate.rs`) follows `transformers`
//! token for token, with the summarization task's settings.
//!
//! Long inputs are cut at the model's own limit (1,024 tokens for BART and
//! Pegasus, 512 for T5), not chunked: news puts what matters first, the
//! news checkpoints were trained on inputs cut the same way, and merged
//! chunk summaries would give the tail of an article the same weight as its
//! lead.

pub mod attention;
pub mod bart;
pub mod generate;
pub mod t5;
pub mod weights;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde_json::Value;
use tokenizers::Tokenizer;

use crate::article::Article;
use crate::summarize::{by_batch, Budget, SummarizeError, Summarizer, Summary, SummarySentence};
use generate::{GenerationConfig, Seq2Seq};
use weights::is_safetensors;

/// The architectures this module runs, by `config.json`'s `model_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    Bart,
    Pegasus,
    T5,
}

impl Arch {
    fn from_model_type(model_type: &str) -> Option<Arch> {
        match model_type {
            "bart" => Some(Arch::Bart),
            "pegasus" => Some(Arch::Pegasus),
            "t5" | "mt5" => Some(Arch::T5),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Bart => "bart",
            Arch::Pegasus => "pegasus",
            Arch::T5 => "t5",
        }
    }
}

/// The device models run on: the first CUDA GPU when built with the `cuda`
/// feature and one is there, else the CPU.
pub fn device() -> Device {
    #[cfg(feature = "cuda")]
    {
        match Device::cuda_if_available(0) {
            Ok(d) => return d,
            Err(e) => tracing::warn!("CUDA: {e}; running on the CPU"),
        }
    }
    Device::Cpu
}

/// A short description of a device for logs.
pub fn describe_device(device: &Device) -> String {
    match device {
        Device::Cpu => format!("CPU, {} threads", candle_core::utils::get_num_threads()),
        Device::Cuda(_) => "CUDA GPU 0".to_string(),
        Device::Metal(_) => "Metal GPU".to_string(),
    }
}

/// The summarization checkpoints under `models` (`crate::models::scan`:
/// sentence encoders beside them are not checkpoints), sorted by path.
pub fn checkpoints(models: &Path) -> Vec<PathBuf> {
    crate::models::with_role(models, crate::models::Role::Summarizer)
}

/// The checkpoint to use: the one named `wanted` (a folder under `models`),
/// or the first found. `Ok(None)` when there is none.
pub fn find(models: &Path, wanted: Option<&str>) -> Result<Option<PathBuf>, String> {
    if let Some(name) = wanted {
        let dir = models.join(name);
        return if crate::models::role(&dir) == Some(crate::models::Role::Encoder) {
            Err(format!(
                "{}: a sentence encoder, not a summarization checkpoint (transformer.model = {name:?})",
                dir.display()
            ))
        } else if dir.join("config.json").is_file() {
            Ok(Some(dir))
        } else {
            Err(format!(
                "{}: no checkpoint there (transformer.model = {name:?})",
                dir.display()
            ))
        };
    }
    let found = checkpoints(models);
    if found.len() > 1 {
        tracing::info!(
            "{} checkpoints in {}; using {} (set transformer.model to choose)",
            found.len(),
            models.display(),
            found[0].display()
        );
    }
    Ok(found.into_iter().next())
}

/// What a checkpoint directory holds, read without loading the weights:
/// enough for `digest model info` and for the cache key.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub dir: PathBuf,
    /// The folder name, for logs and the cache key.
    pub name: String,
    pub arch: Arch,
    /// `architectures[0]` from `config.json`, when there.
    pub class: Option<String>,
    config: Value,
    pub weights: Vec<PathBuf>,
    pub tokenizer: TokenizerFiles,
    pub generation: GenerationConfig,
    /// Prepended to every input (T5: `summarize: `).
    pub prefix: String,
    /// Inputs are cut to this many tokens.
    pub max_input_tokens: usize,
    /// Whether decoding tidies spaces before punctuation (`clean_up_tokenization_spaces`).
    clean_up_spaces: bool,
}

/// Where a checkpoint's tokenizer comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizerFiles {
    Json(PathBuf),
    /// Byte-level BPE (`vocab.json`, `merges.txt`), as BART ships it.
    VocabMerges(PathBuf, PathBuf),
}

impl std::fmt::Display for TokenizerFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenizerFiles::Json(_) => f.write_str("tokenizer.json"),
            TokenizerFiles::VocabMerges(..) => {
                f.write_str("vocab.json + merges.txt (byte-level BPE)")
            }
        }
    }
}

pub(crate) fn read_json(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl Checkpoint {
    /// Reads a checkpoint directory's configuration and finds its files.
    pub fn open(dir: &Path) -> Result<Checkpoint, String> {
        let config_path = dir.join("config.json");
        let config = read_json(&config_path)?;
        let model_type = config["model_type"].as_str().unwrap_or("");
        let arch = Arch::from_model_type(model_type).ok_or_else(|| {
            format!(
                "{}: unknown architecture {model_type:?} (supported: bart, pegasus, t5)",
                config_path.display()
            )
        })?;
        let weights = weight_files(dir)?;
        let tokenizer = if dir.join("tokenizer.json").is_file() {
            TokenizerFiles::Json(dir.join("tokenizer.json"))
        } else if dir.join("vocab.json").is_file() && dir.join("merges.txt").is_file() {
            TokenizerFiles::VocabMerges(dir.join("vocab.json"), dir.join("merges.txt"))
        } else if dir.join("spiece.model").is_file() {
            return Err(format!(
                "{}: has only spiece.model; SentencePiece tokenizers are read from tokenizer.json \
                 (write it once with transformers: AutoTokenizer.from_pretrained(dir).save_pretrained(dir))",
                dir.display()
            ));
        } else {
            return Err(format!(
                "{}: no tokenizer.json (or vocab.json and merges.txt)",
                dir.display()
            ));
        };
        let tokenizer_config = match dir.join("tokenizer_config.json") {
            p if p.is_file() => read_json(&p)?,
            _ => Value::Null,
        };
        let generation = GenerationConfig::for_summarization(dir, &config)?;
        // Token ids the search writes into score rows must be in the vocabulary.
        let vocab = config["vocab_size"].as_u64().unwrap_or(0);
        let g = &generation;
        let named = g
            .eos_token_id
            .iter()
            .chain(&g.forced_bos_token_id)
            .chain(&g.forced_eos_token_id)
            .chain(std::iter::once(&g.decoder_start_token_id));
        if let Some(bad) = named.into_iter().find(|&&id| u64::from(id) >= vocab) {
            return Err(format!(
                "{}: token id {bad} in the generation settings is outside the vocabulary ({vocab})",
                config_path.display()
            ));
        }
        let summarization = &config["task_specific_params"]["summarization"];
        let prefix = summarization["prefix"].as_str().unwrap_or("").to_string();
        // The model's limit: learned or sinusoidal positions, and the
        // tokenizer's declared maximum (T5's relative positions have none).
        let positions = config["max_position_embeddings"].as_u64();
        let declared = tokenizer_config["model_max_length"]
            .as_f64()
            .filter(|n| (1.0..1e7).contains(n))
            .map(|n| n as u64);
        let max_input_tokens = match (positions, declared) {
            (Some(p), Some(d)) => p.min(d),
            (Some(n), None) | (None, Some(n)) => n,
            (None, None) => 512,
        } as usize;
        Ok(Checkpoint {
            name: dir
                .file_name()
                .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into()),
            dir: dir.to_path_buf(),
            arch,
            class: config["architectures"][0].as_str().map(str::to_string),
            weights,
            tokenizer,
            generation,
            prefix,
            max_input_tokens,
            clean_up_spaces: tokenizer_config["clean_up_tokenization_spaces"] == Value::Bool(true),
            config,
        })
    }

    /// The number of values in the weight files (shared tensors once).
    pub fn parameters(&self) -> Result<usize, String> {
        let mut n = 0;
        for path in &self.weights {
            let err = |e: candle_core::Error| format!("{}: {}", path.display(), message(&e));
            if is_safetensors(path) {
                n += weights::Safetensors::open(std::slice::from_ref(path))?.parameters();
            } else {
                let info =
                    candle_core::pickle::read_pth_tensor_info(path, false, None).map_err(err)?;
                n += info
                    .iter()
                    .map(|t| t.layout.shape().elem_count())
                    .sum::<usize>();
            }
        }
        Ok(n)
    }

    /// A fingerprint of the checkpoint for the summary cache: its settings
    /// files, and the size and modification time of its weights.
    pub fn fingerprint(&self) -> String {
        let mut parts: Vec<String> = vec![self.config.to_string()];
        for name in ["generation_config.json", "tokenizer_config.json"] {
            parts.push(std::fs::read_to_string(self.dir.join(name)).unwrap_or_default());
        }
        let mut files = self.weights.clone();
        match &self.tokenizer {
            TokenizerFiles::Json(p) => files.push(p.clone()),
            TokenizerFiles::VocabMerges(v, m) => files.extend([v.clone(), m.clone()]),
        }
        for f in files {
            let meta = std::fs::metadata(&f).ok();
            let modified = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            parts.push(format!(
                "{}:{}:{modified}",
                f.display(),
                meta.map_or(0, |m| m.len())
            ));
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        crate::article::short_hash(&refs)
    }
}

/// A candle error as one line: without the backtrace candle attaches when
/// `RUST_BACKTRACE` is set.
pub(crate) fn message(mut e: &candle_core::Error) -> String {
    while let candle_core::Error::WithBacktrace { inner, .. } = e {
        e = inner;
    }
    e.to_string().lines().next().unwrap_or("").to_string()
}

/// The weight files: `model.safetensors`, the shards named by
/// `model.safetensors.index.json`, or `pytorch_model.bin`.
pub(crate) fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let map = read_json(&index)?;
        let mut shards: Vec<PathBuf> = map["weight_map"]
            .as_object()
            .ok_or_else(|| format!("{}: no weight_map", index.display()))?
            .values()
            .filter_map(Value::as_str)
            .map(|f| dir.join(f))
            .collect();
        shards.sort();
        shards.dedup();
        if shards.is_empty() {
            return Err(format!("{}: names no weight files", index.display()));
        }
        if let Some(missing) = shards.iter().find(|p| !p.is_file()) {
            return Err(format!(
                "{}: missing (named in {})",
                missing.display(),
                index.display()
            ));
        }
        return Ok(shards);
    }
    let pth = dir.join("pytorch_model.bin");
    if pth.is_file() {
        return Ok(vec![pth]);
    }
    Err(format!(
        "{}: no model.safetensors (or pytorch_model.bin)",
        dir.display()
    ))
}

/// The network, by architecture.
enum Net {
    Bart(bart::Model),
    T5(t5::Model),
}

impl Net {
    fn seq2seq(&self) -> &dyn Seq2Seq {
        match self {
            Net::Bart(m) => m,
            Net::T5(m) => m,
        }
    }
}

/// A loaded checkpoint: the transformer summarizer.
pub struct Transformer {
    checkpoint: Checkpoint,
    net: Net,
    tokenizer: Tokenizer,
    /// `transformer:<name>:<fingerprint>`, for the summary cache.
    settings: String,
}

impl Transformer {
    /// Loads a checkpoint directory on `device`. Every failure is an error
    /// that names the file and the reason; nothing panics.
    pub fn load(dir: &Path, device: &Device) -> Result<Transformer, String> {
        let checkpoint = Checkpoint::open(dir)?;
        let tokenizer = load_tokenizer(&checkpoint)?;
        let files = &checkpoint.weights;
        let where_ = files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let vb = if is_safetensors(&files[0]) {
            let st = weights::Safetensors::open(files)?;
            VarBuilder::from_backend(Box::new(st), DType::F32, device.clone())
        } else {
            VarBuilder::from_pth(&files[0], DType::F32, device)
                .map_err(|e| format!("{where_}: {}", message(&e)))?
        };
        let config_err =
            |e: serde_json::Error| format!("{}: {e}", dir.join("config.json").display());
        let net = match checkpoint.arch {
            Arch::Bart | Arch::Pegasus => Net::Bart(
                bart::Model::new(
                    serde_json::from_value(checkpoint.config.clone()).map_err(config_err)?,
                    vb,
                )
                .map_err(|e| format!("{where_}: {}", message(&e)))?,
            ),
            Arch::T5 => Net::T5(
                t5::Model::new(
                    serde_json::from_value(checkpoint.config.clone()).map_err(config_err)?,
                    vb,
                )
                .map_err(|e| format!("{where_}: {}", message(&e)))?,
            ),
        };
        // v2: summaries say they are abstractive.
        let settings = format!(
            "transformer:v2:{}:{}",
            checkpoint.name,
            checkpoint.fingerprint()
        );
        Ok(Transformer {
            checkpoint,
            net,
            tokenizer,
            settings,
        })
    }

    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    pub fn device(&self) -> &Device {
        self.net.seq2seq().device()
    }

    /// The network, one decoding step at a time (for `generate` and benchmarks).
    pub fn network(&self) -> &dyn Seq2Seq {
        self.net.seq2seq()
    }

    /// Token ids of an input: the task prefix, then the text, cut at the
    /// model's limit (special tokens included), exactly as the tokenizer's
    /// own truncation does. Also returns the length before the cut.
    pub fn encode(&self, text: &str) -> Result<(Vec<u32>, usize), String> {
        let input = format!("{}{text}", self.checkpoint.prefix);
        let err = |e: tokenizers::Error| format!("tokenizer: {e}");
        let mut enc = self.tokenizer.encode(input.as_str(), false).map_err(err)?;
        let added = self
            .tokenizer
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false));
        let full = enc.len() + added;
        let limit = self.checkpoint.max_input_tokens.saturating_sub(added);
        if enc.len() > limit {
            enc.truncate(limit, 0, tokenizers::TruncationDirection::Right);
        }
        let enc = self.tokenizer.post_process(enc, None, true).map_err(err)?;
        Ok((enc.get_ids().to_vec(), full))
    }

    /// Generates the token ids of a summary of `text`, as `transformers`'
    /// `generate` does with the checkpoint's summarization settings.
    pub fn generate_ids(&self, text: &str) -> Result<Vec<u32>, String> {
        Ok(self.generate_ids_batch(&[text])?.remove(0))
    }

    /// `generate_ids` for several texts in one pass: each gets what it
    /// gets alone.
    pub fn generate_ids_batch(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, String> {
        let mut inputs = Vec::with_capacity(texts.len());
        for text in texts {
            let (ids, full) = self.encode(text)?;
            if full > ids.len() {
                tracing::debug!(
                    "input of {full} tokens cut to the model's {}",
                    self.checkpoint.max_input_tokens
                );
            }
            inputs.push(ids);
        }
        let refs: Vec<&[u32]> = inputs.iter().map(Vec::as_slice).collect();
        generate::generate_batch(self.net.seq2seq(), &refs, &self.checkpoint.generation)
            .map_err(|e| format!("{}: {}", self.checkpoint.name, message(&e)))
    }

    /// The summary of `text` as the model writes it, decoded without
    /// special tokens.
    pub fn generate_text(&self, text: &str) -> Result<String, String> {
        let ids = self.generate_ids(text)?;
        self.decode(&ids)
    }

    /// `generate_text` for several texts in one pass.
    pub fn generate_texts(&self, texts: &[String]) -> Result<Vec<String>, String> {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.generate_ids_batch(&refs)?
            .iter()
            .map(|ids| self.decode(ids))
            .collect()
    }

    /// Decodes generated ids without special tokens.
    pub fn decode(&self, ids: &[u32]) -> Result<String, String> {
        let mut text = self
            .tokenizer
            .decode(ids, true)
            .map_err(|e| format!("tokenizer: {e}"))?;
        if self.checkpoint.clean_up_spaces {
            text = clean_up_tokenization(&text);
        }
        Ok(text)
    }
}

/// `transformers`' `clean_up_tokenization`: no space before punctuation
/// and English contractions.
fn clean_up_tokenization(text: &str) -> String {
    [
        (" .", "."),
        (" ?", "?"),
        (" !", "!"),
        (" ,", ","),
        (" ' ", "'"),
        (" n't", "n't"),
        (" 'm", "'m"),
        (" 's", "'s"),
        (" 've", "'ve"),
        (" 're", "'re"),
    ]
    .iter()
    .fold(text.to_string(), |t, (from, to)| t.replace(from, to))
}

/// The checkpoint's tokenizer.
pub fn load_tokenizer(c: &Checkpoint) -> Result<Tokenizer, String> {
    let mut tokenizer = match &c.tokenizer {
        TokenizerFiles::Json(path) => {
            Tokenizer::from_file(path).map_err(|e| format!("{}: {e}", path.display()))?
        }
        TokenizerFiles::VocabMerges(vocab, merges) => byte_level_bpe(vocab, merges)?,
    };
    // `encode` cuts inputs itself, to know their full length.
    tokenizer
        .with_truncation(None)
        .map_err(|e| format!("{}: {e}", c.dir.display()))?;
    tokenizer.with_padding(None);
    Ok(tokenizer)
}

/// BART's tokenizer from `vocab.json` and `merges.txt`, built as
/// `transformers` converts it: byte-level pre-tokenizer and decoder, and
/// `<s> … </s>` around each input.
fn byte_level_bpe(vocab: &Path, merges: &Path) -> Result<Tokenizer, String> {
    use tokenizers::models::bpe::BPE;
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::processors::roberta::RobertaProcessing;
    use tokenizers::AddedToken;

    let files = format!("{} + {}", vocab.display(), merges.display());
    let bpe = BPE::from_file(&vocab.to_string_lossy(), &merges.to_string_lossy())
        .build()
        .map_err(|e| format!("{files}: {e}"))?;
    let id = |token: &str| {
        tokenizers::Model::token_to_id(&bpe, token)
            .ok_or_else(|| format!("{}: no {token} token", vocab.display()))
    };
    let (bos, eos) = (id("<s>")?, id("</s>")?);
    let specials: Vec<AddedToken> = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        .iter()
        .filter(|t| id(t).is_ok())
        .map(|t| AddedToken::from(*t, true))
        .collect();
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::default().add_prefix_space(false)));
    tokenizer.with_decoder(Some(ByteLevel::default()));
    tokenizer.with_post_processor(Some(
        RobertaProcessing::new(("</s>".into(), eos), ("<s>".into(), bos))
            .trim_offsets(true)
            .add_prefix_space(false),
    ));
    tokenizer
        .add_special_tokens(specials)
        .map_err(|e| format!("{files}: {e}"))?;
    Ok(tokenizer)
}

impl Summarizer for Transformer {
    fn name(&self) -> &str {
        &self.checkpoint.name
    }

    fn settings(&self) -> String {
        self.settings.clone()
    }

    /// Summarizes the article's text (not its title: the news checkpoints
    /// were trained on bodies), then keeps the first sentences of the
    /// model's summary that fit the budget, at least one.
    fn summarize(&self, article: &Article, budget: Budget) -> Result<Summary, SummarizeError> {
        by_batch(self, article, budget)
    }

    /// `summarize` for several articles in one pass through the model.
    fn summarize_batch(
        &self,
        articles: &[&Article],
        budget: Budget,
    ) -> Vec<Result<Summary, SummarizeError>> {
        let started = Instant::now();
        // An article without words has nothing to summarize (the model
        // would write something anyway).
        let with_words: Vec<usize> = (0..articles.len())
            .filter(|&i| articles[i].word_count() > 0)
            .collect();
        let texts: Vec<String> = with_words
            .iter()
            .map(|&i| articles[i].paragraphs.join(" "))
            .collect();
        let generated: Vec<Result<String, String>> = match self.generate_texts(&texts) {
            Ok(raw) => raw.into_iter().map(Ok).collect(),
            // One failing input fails its batch: find which, one by one.
            Err(_) if texts.len() > 1 => texts.iter().map(|t| self.generate_text(t)).collect(),
            Err(e) => vec![Err(e)],
        };
        tracing::trace!(
            "{} articles summarized in {:?}",
            articles.len(),
            started.elapsed()
        );
        let mut results: Vec<Result<Summary, SummarizeError>> = articles
            .iter()
            .map(|_| Err(SummarizeError::NoSentences))
            .collect();
        for (i, raw) in with_words.into_iter().zip(generated) {
            results[i] = match raw {
                Ok(raw) if raw.trim().is_empty() => Err(SummarizeError::Model(
                    "the model wrote an empty summary".into(),
                )),
                Ok(raw) => Ok(to_summary(&raw, budget)),
                Err(e) => Err(SummarizeError::Model(e)),
            };
        }
        results
    }
}

/// The model's summary as sentences, cut to the budget. Pegasus writes
/// `<n>` between sentences.
fn to_summary(raw: &str, budget: Budget) -> Summary {
    let text = raw.replace("<n>", " ");
    let mut sentences = Vec::new();
    let mut words = 0;
    for (index, s) in crate::text::sentences::split(text.trim())
        .into_iter()
        .enumerate()
    {
        let n = crate::text::word_count(s);
        let over = budget.words > 0 && words + n > budget.words;
        if index > 0 && (index >= budget.sentences.max(1) || over) {
            break;
        }
        words += n;
        sentences.push(SummarySentence {
            text: s.trim().to_string(),
            index,
            score: 1.0,
        });
    }
    Summary {
        sentences,
        fallback: None,
        abstractive: true,
    }
}

/// Loads the bart-family checkpoint in `dir` on the CPU (for tests and
/// benchmarks of the network alone).
pub fn load_bart(dir: &Path) -> Result<bart::Model, String> {
    let t = Transformer::load(dir, &Device::Cpu)?;
    match t.net {
        Net::Bart(m) => Ok(m),
        Net::T5(_) => Err(format!("{}: not a BART-family checkpoint", dir.display())),
    }
}

/// Loads the T5 checkpoint in `dir` on the CPU.
pub fn load_t5(dir: &Path) -> Result<t5::Model, String> {
    let t = Transformer::load(dir, &Device::Cpu)?;
    match t.net {
        Net::T5(m) => Ok(m),
        Net::Bart(_) => Err(format!("{}: not a T5 checkpoint", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_cut_to_the_budget_in_whole_sentences() {
        let raw = "One two three. Four five six seven.<n>Eight nine. Ten.";
        let s = to_summary(
            raw,
            Budget {
                sentences: 3,
                words: 0,
            },
        );
        let texts: Vec<&str> = s.sentences.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            ["One two three.", "Four five six seven.", "Eight nine."]
        );
        let s = to_summary(
            raw,
            Budget {
                sentences: 3,
                words: 5,
            },
        );
        assert_eq!(s.sentences.len(), 1);
        // The first sentence is kept even when it alone is over the budget.
        let s = to_summary(
            raw,
            Budget {
                sentences: 3,
                words: 2,
            },
        );
        assert_eq!(s.sentences[0].text, "One two three.");
    }

    #[test]
    fn clean_up_matches_transformers() {
        assert_eq!(
            clean_up_tokenization("He said , \" it 's fine . \" Do n't ."),
            "He said, \" it's fine. \" Don't."
        );
    }
}
