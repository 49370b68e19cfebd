//! Transformer summarization with candle, from checkpoints in Hugging Face
//! layout (`config.json`, `generation_config.json`, `tokenizer.json`,
//! `model.safetensors`). Work in progress for the transformer issue: the
//! BART family, T5 and generation are here and checked token for token
//! against `transformers`; the `Summarizer` wiring and the fallback are not yet.

pub mod bart;
pub mod generate;
pub mod t5;

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

/// Reads a checkpoint directory: its `config.json` as `C`, and its
/// `model.safetensors` memory-mapped on the CPU, then builds the model.
fn load<C: serde::de::DeserializeOwned, M>(
    dir: &Path,
    build: impl FnOnce(C, VarBuilder) -> candle_core::Result<M>,
) -> Result<M, String> {
    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path)
        .map_err(|e| format!("{}: {e}", config_path.display()))?;
    let cfg: C =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let weights = dir.join("model.safetensors");
    // SAFETY: the file is memory-mapped read-only; it must not change while loaded.
    let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &Device::Cpu) }
        .map_err(|e| format!("{}: {e}", weights.display()))?;
    build(cfg, vb).map_err(|e| format!("{}: {e}", weights.display()))
}

/// Loads a BART-family checkpoint from a directory, on the CPU.
pub fn load_bart(dir: &Path) -> Result<bart::Model, String> {
    load(dir, bart::Model::new)
}

/// Loads a T5 / Flan-T5 checkpoint from a directory, on the CPU.
pub fn load_t5(dir: &Path) -> Result<t5::Model, String> {
    load(dir, t5::Model::new)
}
