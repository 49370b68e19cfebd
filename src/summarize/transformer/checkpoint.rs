//! A checkpoint folder read without loading the weights (what `digest
//! model info` shows and the summary cache keys on), and its tokenizer.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::Tokenizer;

use super::generate::GenerationConfig;
use super::Arch;
use crate::models::read_json;
use crate::models::weights::{self, is_safetensors, message, weight_files};

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
    pub(super) config: Value,
    pub weights: Vec<PathBuf>,
    pub tokenizer: TokenizerFiles,
    pub generation: GenerationConfig,
    /// Prepended to every input (T5: `summarize: `).
    pub prefix: String,
    /// Inputs are cut to this many tokens.
    pub max_input_tokens: usize,
    /// Whether decoding tidies spaces before punctuation (`clean_up_tokenization_spaces`).
    pub(super) clean_up_spaces: bool,
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
