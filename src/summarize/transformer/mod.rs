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
mod checkpoint;
pub mod generate;
pub mod linear;
mod self_cache;
pub mod t5;

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use tokenizers::Tokenizer;

use crate::article::Article;
use crate::models::weights::{self, is_safetensors, message};
use crate::summarize::{by_batch, Budget, SummarizeError, Summarizer, Summary, SummarySentence};
pub use checkpoint::{load_tokenizer, Checkpoint, TokenizerFiles};
use generate::Seq2Seq;

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
    crate::models::find(models, crate::models::Role::Summarizer, wanted)
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
