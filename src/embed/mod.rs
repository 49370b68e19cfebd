//! Sentence embeddings: a sentence encoder (BERT family, as
//! sentence-transformers runs it) turns texts into unit vectors whose dot
//! product says how close their meanings are. Grouping the day's reports
//! into stories uses them when an encoder is installed under `models/`.
//!
//! A folder is an encoder by its files (`crate::models`). What is read:
//! `config.json` (the BERT configuration), `tokenizer.json` (WordPiece),
//! `model.safetensors` (or `pytorch_model.bin`), and the
//! sentence-transformers settings: `sentence_bert_config.json`
//! (`max_seq_length`), `1_Pooling/config.json` (the pooling mode) and
//! `modules.json` (whether a `Normalize` module follows). Without them the
//! defaults are all-MiniLM-L6-v2's: mean pooling, normalised, 256 tokens.

pub mod bert;
mod cpu;

pub use cpu::dot;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use rustc_hash::FxHashMap;
use serde_json::Value;
use tokenizers::Tokenizer;

use crate::models::read_json;
use crate::models::weights::{self, is_safetensors, message, weight_files};
use crate::models::{self, Role};

/// Texts an encoder embeds in one pass.
pub const BATCH: usize = 32;

/// Something that turns texts into vectors (unit length, so a dot product
/// is the cosine).
pub trait Embed {
    /// A short name for logs.
    fn name(&self) -> &str;
    /// Everything the vectors depend on besides the text: the cache key.
    fn settings(&self) -> String;
    /// One vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String>;
}

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
    Max,
    MeanSqrtLen,
}

impl Pooling {
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Max => "max",
            Pooling::MeanSqrtLen => "mean_sqrt_len",
        }
    }
}

/// What an encoder folder holds, read without loading the weights.
#[derive(Debug, Clone)]
pub struct EncoderInfo {
    pub dir: PathBuf,
    pub name: String,
    config: Value,
    pub weights: Vec<PathBuf>,
    pub tokenizer: PathBuf,
    pub pooling: Pooling,
    pub normalize: bool,
    /// Inputs are cut to this many tokens (special tokens included).
    pub max_seq_length: usize,
    pub dimensions: usize,
}

impl EncoderInfo {
    pub fn open(dir: &Path) -> Result<EncoderInfo, String> {
        let config_path = dir.join("config.json");
        let config = read_json(&config_path)?;
        let model_type = config["model_type"].as_str().unwrap_or("");
        if model_type != "bert" {
            return Err(format!(
                "{}: sentence encoder of type {model_type:?} is not supported (only bert)",
                config_path.display()
            ));
        }
        let weights = weight_files(dir)?;
        let tokenizer = dir.join("tokenizer.json");
        if !tokenizer.is_file() {
            return Err(format!("{}: missing", tokenizer.display()));
        }
        let pooling_path = dir.join("1_Pooling/config.json");
        let pooling = if pooling_path.is_file() {
            let p = read_json(&pooling_path)?;
            let on = |k: &str| p[k] == Value::Bool(true);
            let modes: Vec<Pooling> = [
                ("pooling_mode_mean_tokens", Pooling::Mean),
                ("pooling_mode_cls_token", Pooling::Cls),
                ("pooling_mode_max_tokens", Pooling::Max),
                ("pooling_mode_mean_sqrt_len_tokens", Pooling::MeanSqrtLen),
            ]
            .into_iter()
            .filter(|(k, _)| on(k))
            .map(|(_, m)| m)
            .collect();
            match modes.as_slice() {
                [m] => *m,
                [] => return Err(format!("{}: no pooling mode set", pooling_path.display())),
                _ => {
                    return Err(format!(
                        "{}: several pooling modes at once are not supported",
                        pooling_path.display()
                    ))
                }
            }
        } else {
            Pooling::Mean
        };
        let modules_path = dir.join("modules.json");
        let normalize = if modules_path.is_file() {
            let m = read_json(&modules_path)?;
            m.as_array().is_some_and(|a| {
                a.iter().any(|x| {
                    x["type"]
                        .as_str()
                        .is_some_and(|t| t.ends_with("models.Normalize"))
                })
            })
        } else {
            true
        };
        let sbert_path = dir.join("sentence_bert_config.json");
        let declared = if sbert_path.is_file() {
            read_json(&sbert_path)?["max_seq_length"].as_u64()
        } else {
            None
        };
        let positions = config["max_position_embeddings"].as_u64().unwrap_or(512);
        let max_seq_length = declared.unwrap_or(256).min(positions) as usize;
        let dimensions = config["hidden_size"].as_u64().unwrap_or(0) as usize;
        Ok(EncoderInfo {
            name: dir
                .file_name()
                .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into()),
            dir: dir.to_path_buf(),
            config,
            weights,
            tokenizer,
            pooling,
            normalize,
            max_seq_length,
            dimensions,
        })
    }

    /// A fingerprint for the embedding cache: the settings files and the
    /// size and modification time of the weights and tokenizer.
    pub fn fingerprint(&self) -> String {
        let mut parts = vec![
            self.config.to_string(),
            format!(
                "{}:{}:{}",
                self.pooling.as_str(),
                self.normalize,
                self.max_seq_length
            ),
        ];
        for f in self.weights.iter().chain(std::iter::once(&self.tokenizer)) {
            let meta = std::fs::metadata(f).ok();
            let modified = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            parts.push(format!("{}:{modified}", meta.map_or(0, |m| m.len())));
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        crate::article::short_hash(&refs)
    }
}

/// The encoder to use: `wanted` (a folder under `models`, which must be an
/// encoder), or the first encoder found. `Ok(None)`: there is none.
pub fn find(models: &Path, wanted: Option<&str>) -> Result<Option<PathBuf>, String> {
    models::find(models, Role::Encoder, wanted)
}

/// A loaded sentence encoder.
pub struct Encoder {
    info: EncoderInfo,
    net: cpu::CpuBert,
    tokenizer: Tokenizer,
    max_tokens: usize,
    settings: String,
}

impl Encoder {
    /// Loads an encoder folder (it runs on the CPU: a small model, batches
    /// side by side on all cores). Every failure names the file.
    pub fn load(dir: &Path) -> Result<Encoder, String> {
        let device = &Device::Cpu;
        let info = EncoderInfo::open(dir)?;
        let config_path = dir.join("config.json");
        let cfg: bert::Config = serde_json::from_value(info.config.clone())
            .map_err(|e| format!("{}: {e}", config_path.display()))?;
        cfg.check()
            .map_err(|e| format!("{}: {e}", config_path.display()))?;
        let where_ = info
            .weights
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        let vb = if is_safetensors(&info.weights[0]) {
            let st = weights::Safetensors::open(&info.weights)?;
            VarBuilder::from_backend(Box::new(st), DType::F32, device.clone())
        } else {
            VarBuilder::from_pth(&info.weights[0], DType::F32, device)
                .map_err(|e| format!("{where_}: {}", message(&e)))?
        };
        let vb = if vb.contains_tensor("bert.embeddings.word_embeddings.weight") {
            vb.pp("bert")
        } else {
            vb
        };
        let net = cpu::CpuBert::new(cfg, vb).map_err(|e| format!("{where_}: {}", message(&e)))?;
        let mut tokenizer = Tokenizer::from_file(&info.tokenizer)
            .map_err(|e| format!("{}: {e}", info.tokenizer.display()))?;
        // Cut and padded here, per batch (the file may fix both).
        tokenizer
            .with_truncation(None)
            .map_err(|e| format!("{}: {e}", info.tokenizer.display()))?;
        tokenizer.with_padding(None);
        let settings = format!("encoder:{}:{}", info.name, info.fingerprint());
        Ok(Encoder {
            max_tokens: info.max_seq_length,
            info,
            net,
            tokenizer,
            settings,
        })
    }

    pub fn info(&self) -> &EncoderInfo {
        &self.info
    }

    /// Cuts inputs at `n` tokens (special tokens included; at most the
    /// model's own `max_seq_length`): shorter inputs embed faster.
    pub fn with_max_tokens(mut self, n: usize) -> Encoder {
        self.max_tokens = n.clamp(2, self.info.max_seq_length);
        self
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Token ids of a text, cut as the tokenizer's own truncation does:
    /// `[CLS] … [SEP]` within `max_tokens`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, String> {
        let err = |e: tokenizers::Error| format!("tokenizer: {e}");
        let mut enc = self.tokenizer.encode(text, false).map_err(err)?;
        let added = self
            .tokenizer
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, false));
        let limit = self.max_tokens.saturating_sub(added);
        if enc.len() > limit {
            enc.truncate(limit, 0, tokenizers::TruncationDirection::Right);
        }
        let enc = self.tokenizer.post_process(enc, None, true).map_err(err)?;
        Ok(enc.get_ids().to_vec())
    }

    /// Embeds batches of token id rows, side by side on the cores: pooled
    /// and, when the model says so, normalised.
    pub fn embed_batches(&self, batches: &[Vec<Vec<u32>>]) -> Result<Vec<Vec<Vec<f32>>>, String> {
        let mut out = cpu::embed_batches(&self.net, batches, self.info.pooling);
        if self.info.normalize {
            for v in out.iter_mut().flatten() {
                // As torch.nn.functional.normalize: x / max(‖x‖, 1e-12).
                let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                v.iter_mut().for_each(|x| *x /= norm);
            }
        }
        Ok(out)
    }
}

impl Embed for Encoder {
    fn name(&self) -> &str {
        &self.info.name
    }

    fn settings(&self) -> String {
        format!("{}:{}", self.settings, self.max_tokens)
    }

    /// Embeds in batches of `BATCH`, shortest inputs together (as
    /// sentence-transformers does): less padding, same vectors.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let encoded: Vec<Vec<u32>> = texts
            .iter()
            .map(|t| self.encode(t))
            .collect::<Result<_, _>>()?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].len()));
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); texts.len()];
        let chunks: Vec<&[usize]> = order.chunks(BATCH).collect();
        let batches: Vec<Vec<Vec<u32>>> = chunks
            .iter()
            .map(|c| c.iter().map(|&i| encoded[i].clone()).collect())
            .collect();
        for (chunk, vectors) in chunks.iter().zip(self.embed_batches(&batches)?) {
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}

/// Where `Cached` keeps vectors: by text hash and encoder settings. The
/// database implements it (in `pipeline`). Errors are messages: a cache
/// that fails is warned about and bypassed.
pub trait EmbeddingCache {
    /// The vectors stored for these keys (`None` where there is none).
    fn get_many(&self, keys: &[String], settings: &str) -> Result<Vec<Option<Vec<f32>>>, String>;
    fn put_many(&self, items: &[(String, Vec<f32>)], settings: &str) -> Result<(), String>;
}

/// An encoder whose vectors are cached: rebuilding an edition embeds
/// nothing again.
pub struct Cached<'a> {
    inner: &'a dyn Embed,
    cache: &'a dyn EmbeddingCache,
    settings: String,
}

impl<'a> Cached<'a> {
    pub fn new(inner: &'a dyn Embed, cache: &'a dyn EmbeddingCache) -> Cached<'a> {
        Cached {
            settings: inner.settings(),
            inner,
            cache,
        }
    }
}

impl Embed for Cached<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn settings(&self) -> String {
        self.settings.clone()
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        let keys: Vec<String> = texts
            .iter()
            .map(|t| crate::article::short_hash(&[t]))
            .collect();
        let mut found = self
            .cache
            .get_many(&keys, &self.settings)
            .unwrap_or_else(|e| {
                tracing::warn!("embedding cache: {e}");
                vec![None; texts.len()]
            });
        // Each text not cached, once (wire copies repeat texts).
        let mut seen: FxHashMap<&str, usize> = FxHashMap::default();
        let missing: Vec<usize> = (0..texts.len())
            .filter(|&i| found[i].is_none() && *seen.entry(keys[i].as_str()).or_insert(i) == i)
            .collect();
        tracing::debug!(
            "embeddings: {} cached, {} computed",
            found.iter().filter(|v| v.is_some()).count(),
            missing.len()
        );
        if !missing.is_empty() {
            let todo: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            let made = self.inner.embed(&todo)?;
            let items: Vec<(String, Vec<f32>)> = missing
                .iter()
                .zip(&made)
                .map(|(&i, v)| (keys[i].clone(), v.clone()))
                .collect();
            if let Err(e) = self.cache.put_many(&items, &self.settings) {
                tracing::warn!("embedding cache: {e}");
            }
            for (i, v) in missing.iter().zip(made) {
                found[*i] = Some(v);
            }
            for i in 0..texts.len() {
                if found[i].is_none() {
                    found[i] = found[seen[keys[i].as_str()]].clone();
                }
            }
        }
        Ok(found.into_iter().map(Option::unwrap_or_default).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    struct Counting(RefCell<usize>);
    impl Embed for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn settings(&self) -> String {
            "counting:1".into()
        }
        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
            *self.0.borrow_mut() += texts.len();
            Ok(texts.iter().map(|t| vec![t.len() as f32, 1.0]).collect())
        }
    }

    #[derive(Default)]
    struct Memory(RefCell<HashMap<(String, String), Vec<f32>>>);
    impl EmbeddingCache for Memory {
        fn get_many(
            &self,
            keys: &[String],
            settings: &str,
        ) -> Result<Vec<Option<Vec<f32>>>, String> {
            let m = self.0.borrow();
            Ok(keys
                .iter()
                .map(|k| m.get(&(k.clone(), settings.to_string())).cloned())
                .collect())
        }
        fn put_many(&self, items: &[(String, Vec<f32>)], settings: &str) -> Result<(), String> {
            let mut m = self.0.borrow_mut();
            for (k, v) in items {
                m.insert((k.clone(), settings.to_string()), v.clone());
            }
            Ok(())
        }
    }

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/transformer/models/tiny-bert")
    }

    /// The tiny random BERT (tests/fixtures/transformer/make_models.py):
    /// token ids and vectors as transformers + mean pooling + normalisation
    /// gave them, in one padded batch as here.
    #[test]
    fn tiny_bert_embeds_as_transformers_does() {
        let dir = fixture();
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        let encoder = Encoder::load(&dir).unwrap();
        assert_eq!(encoder.info().pooling, Pooling::Mean);
        assert!(encoder.info().normalize);
        assert_eq!(
            encoder.max_tokens(),
            24,
            "sentence_bert_config.json's max_seq_length"
        );
        let texts: Vec<&str> = expected["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap())
            .collect();
        for (t, want) in texts.iter().zip(expected["ids"].as_array().unwrap()) {
            let want: Vec<u32> = serde_json::from_value(want.clone()).unwrap();
            assert_eq!(encoder.encode(t).unwrap(), want, "{t}");
        }
        let got = encoder.embed(&texts).unwrap();
        let want: Vec<Vec<f32>> = serde_json::from_value(expected["embeddings"].clone()).unwrap();
        for (g, w) in got.iter().zip(&want) {
            let diff = g
                .iter()
                .zip(w)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            let cos: f32 = g.iter().zip(w).map(|(a, b)| a * b).sum();
            assert!(diff <= 1e-5 && cos >= 0.99999, "diff {diff}, cosine {cos}");
        }
        // One text alone gets the vector it gets in a batch (padding is masked).
        let alone = encoder.embed(&texts[..1]).unwrap();
        let diff = alone[0]
            .iter()
            .zip(&got[0])
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff <= 1e-5, "{diff}");
    }

    #[test]
    fn a_broken_encoder_is_an_error_that_names_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("enc");
        std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
        for f in [
            "config.json",
            "tokenizer.json",
            "modules.json",
            "sentence_bert_config.json",
            "1_Pooling/config.json",
        ] {
            std::fs::copy(fixture().join(f), dir.join(f)).unwrap();
        }
        let weights = std::fs::read(fixture().join("model.safetensors")).unwrap();
        std::fs::write(dir.join("model.safetensors"), &weights[..weights.len() / 2]).unwrap();
        let err = Encoder::load(&dir).err().unwrap();
        assert!(
            err.contains("model.safetensors") && err.contains("truncated"),
            "{err}"
        );
        std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
        std::fs::write(dir.join("model.safetensors"), &weights).unwrap();
        let err = Encoder::load(&dir).err().unwrap();
        assert!(err.contains("tokenizer.json"), "{err}");
    }

    #[test]
    fn cached_vectors_are_not_computed_again() {
        let inner = Counting(RefCell::new(0));
        let cache = Memory::default();
        let cached = Cached::new(&inner, &cache);
        let first = cached.embed(&["a", "bb", "a"]).unwrap();
        assert_eq!(*inner.0.borrow(), 2, "a text given twice is embedded once");
        assert_eq!(first[0], first[2]);
        let second = cached.embed(&["bb", "ccc", "a"]).unwrap();
        assert_eq!(*inner.0.borrow(), 3, "only the new text is embedded");
        assert_eq!(first[1], second[0]);
        assert_eq!(second[1], vec![3.0, 1.0]);
    }
}
