//! The BART family in one module, driven by the checkpoint's `config.json`:
//! BART and DistilBART (learned positions offset by 2, post-layer-norm,
//! `layernorm_embedding`, exact GELU) and Pegasus (sinusoidal positions,
//! pre-layer-norm, final layer norms, scaled embeddings, ReLU). Both tie the
//! LM head to the shared embeddings and add `final_logits_bias`.
//!
//! The decoder keeps a self-attention key/value cache per layer, and the
//! cross-attention keys and values are computed once per input.

use candle_core::{DType, Device, Module, Result, Tensor, D};
use candle_nn::{embedding, layer_norm, Embedding, LayerNorm, VarBuilder};
use serde::Deserialize;

pub use super::attention::DecoderState;
use super::attention::{attend, split_heads};
use super::linear::{self, linear, Linear};
use super::self_cache::SelfCache;

/// The `config.json` fields this module reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub model_type: String,
    pub vocab_size: usize,
    pub d_model: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_attention_heads: usize,
    pub encoder_ffn_dim: usize,
    pub decoder_ffn_dim: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "gelu")]
    pub activation_function: String,
    #[serde(default)]
    pub scale_embedding: bool,
    #[serde(default)]
    pub normalize_before: Option<bool>,
    #[serde(default)]
    pub add_final_layer_norm: Option<bool>,
}

fn gelu() -> String {
    "gelu".into()
}

impl Config {
    fn is_pegasus(&self) -> bool {
        self.model_type == "pegasus"
    }

    fn pre_norm(&self) -> bool {
        self.normalize_before.unwrap_or(self.is_pegasus())
    }

    fn final_norm(&self) -> bool {
        self.add_final_layer_norm.unwrap_or(self.is_pegasus())
    }

    fn embed_scale(&self) -> f64 {
        if self.scale_embedding {
            (self.d_model as f64).sqrt()
        } else {
            1.0
        }
    }
}

fn activation(name: &str, x: &Tensor) -> Result<Tensor> {
    match name {
        "relu" => x.relu(),
        "gelu_new" | "gelu_fast" | "gelu_pytorch_tanh" => super::attention::gelu(x, false),
        "silu" | "swish" => candle_nn::ops::silu(x),
        _ => super::attention::gelu(x, true),
    }
}

/// Positions: learned (BART, offset 2) or sinusoidal (Pegasus: sin in the
/// first half of the dimensions, cos in the second).
enum Positions {
    Learned(Embedding),
    Sinusoidal(Tensor),
}

impl Positions {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Positions> {
        if cfg.is_pegasus() {
            let n = cfg.max_position_embeddings;
            let d = cfg.d_model;
            let half = d / 2;
            let mut data = vec![0f32; n * d];
            for pos in 0..n {
                for i in 0..half {
                    let angle = pos as f64 / 10000f64.powf(2.0 * i as f64 / d as f64);
                    data[pos * d + i] = angle.sin() as f32;
                    data[pos * d + half + i] = angle.cos() as f32;
                }
            }
            Ok(Positions::Sinusoidal(Tensor::from_vec(
                data,
                (n, d),
                vb.device(),
            )?))
        } else {
            Ok(Positions::Learned(embedding(
                cfg.max_position_embeddings + 2,
                cfg.d_model,
                vb.pp("embed_positions"),
            )?))
        }
    }

    /// Embeddings of positions `start..start+len`.
    fn forward(&self, start: usize, len: usize, device: &Device) -> Result<Tensor> {
        match self {
            Positions::Learned(e) => {
                let ids: Vec<u32> = (start + 2..start + 2 + len).map(|p| p as u32).collect();
                e.forward(&Tensor::new(ids.as_slice(), device)?)
            }
            Positions::Sinusoidal(t) => t.narrow(0, start, len),
        }
    }
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(d: usize, heads: usize, vb: VarBuilder) -> Result<Attention> {
        Ok(Attention {
            q: linear(d, d, vb.pp("q_proj"))?,
            k: linear(d, d, vb.pp("k_proj"))?,
            v: linear(d, d, vb.pp("v_proj"))?,
            out: linear(d, d, vb.pp("out_proj"))?,
            heads,
            head_dim: d / heads,
        })
    }

    /// Every product over whole inputs (`Linear::for_many_rows`): the
    /// encoder's attention.
    fn for_many_rows(self) -> Result<Attention> {
        Ok(Attention {
            q: self.q.for_many_rows()?,
            k: self.k.for_many_rows()?,
            v: self.v.for_many_rows()?,
            out: self.out.for_many_rows()?,
            ..self
        })
    }

    /// Keys and values over whole inputs: the decoder's cross-attention,
    /// whose queries come one position a row.
    fn keys_values_for_many_rows(self) -> Result<Attention> {
        Ok(Attention {
            k: self.k.for_many_rows()?,
            v: self.v.for_many_rows()?,
            ..self
        })
    }

    fn keys_values(&self, x: &Tensor) -> Result<(Tensor, Tensor)> {
        Ok((
            split_heads(&self.k.forward(x)?, self.heads)?,
            split_heads(&self.v.forward(x)?, self.heads)?,
        ))
    }

    /// Attention of `x` over the given keys and values.
    fn attend(&self, x: &Tensor, k: &Tensor, v: &Tensor) -> Result<Tensor> {
        self.attend_masked(x, k, v, None)
    }

    /// Self-attention of a decoding step's `x` (rows, 1, d): its keys and
    /// values go into layer `layer` of the cache, and its queries attend to
    /// every position so far.
    fn attend_cached(&self, x: &Tensor, cache: &mut SelfCache, layer: usize) -> Result<Tensor> {
        cache.append(layer, &self.k.forward(x)?, &self.v.forward(x)?)?;
        let q = (self.q.forward(x)? * (self.head_dim as f64).powf(-0.5))?;
        self.out
            .forward(&cache.attend(layer, &q, self.heads, None)?)
    }

    /// `attend` with an additive mask over the keys (padding).
    fn attend_masked(
        &self,
        x: &Tensor,
        k: &Tensor,
        v: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let q =
            (split_heads(&self.q.forward(x)?, self.heads)? * (self.head_dim as f64).powf(-0.5))?;
        self.out.forward(&attend(&q, k, v, mask)?)
    }
}

struct Ffn {
    fc1: Linear,
    fc2: Linear,
}

impl Ffn {
    fn new(d: usize, ffn: usize, vb: &VarBuilder) -> Result<Ffn> {
        Ok(Ffn {
            fc1: linear(d, ffn, vb.pp("fc1"))?,
            fc2: linear(ffn, d, vb.pp("fc2"))?,
        })
    }

    fn for_many_rows(self) -> Result<Ffn> {
        Ok(Ffn {
            fc1: self.fc1.for_many_rows()?,
            fc2: self.fc2.for_many_rows()?,
        })
    }

    fn forward(&self, x: &Tensor, act: &str) -> Result<Tensor> {
        self.fc2.forward(&activation(act, &self.fc1.forward(x)?)?)
    }
}

struct EncoderLayer {
    attn: Attention,
    attn_norm: LayerNorm,
    ffn: Ffn,
    ffn_norm: LayerNorm,
}

struct DecoderLayer {
    self_attn: Attention,
    self_norm: LayerNorm,
    cross_attn: Attention,
    cross_norm: LayerNorm,
    ffn: Ffn,
    ffn_norm: LayerNorm,
}

/// A BART-family sequence-to-sequence model.
pub struct Model {
    cfg: Config,
    shared: Embedding,
    final_logits_bias: Tensor,
    enc_pos: Positions,
    dec_pos: Positions,
    enc_ln_emb: Option<LayerNorm>,
    dec_ln_emb: Option<LayerNorm>,
    enc_final: Option<LayerNorm>,
    dec_final: Option<LayerNorm>,
    encoder: Vec<EncoderLayer>,
    decoder: Vec<DecoderLayer>,
    device: Device,
}

impl Model {
    pub fn new(cfg: Config, vb: VarBuilder) -> Result<Model> {
        let d = cfg.d_model;
        let m = vb.pp("model");
        let shared = embedding(cfg.vocab_size, d, m.pp("shared"))?;
        let final_logits_bias = if vb.contains_tensor("final_logits_bias") {
            vb.get((1, cfg.vocab_size), "final_logits_bias")?
        } else {
            Tensor::zeros((1, cfg.vocab_size), DType::F32, vb.device())?
        };
        let norm = |vb: VarBuilder| layer_norm(d, 1e-5, vb);
        let (enc, dec) = (m.pp("encoder"), m.pp("decoder"));
        let pegasus = cfg.is_pegasus();
        let mut encoder = Vec::new();
        for i in 0..cfg.encoder_layers {
            let l = enc.pp(format!("layers.{i}"));
            encoder.push(EncoderLayer {
                attn: Attention::new(d, cfg.encoder_attention_heads, l.pp("self_attn"))?
                    .for_many_rows()?,
                attn_norm: norm(l.pp("self_attn_layer_norm"))?,
                ffn: Ffn::new(d, cfg.encoder_ffn_dim, &l)?.for_many_rows()?,
                ffn_norm: norm(l.pp("final_layer_norm"))?,
            });
        }
        let mut decoder = Vec::new();
        for i in 0..cfg.decoder_layers {
            let l = dec.pp(format!("layers.{i}"));
            decoder.push(DecoderLayer {
                self_attn: Attention::new(d, cfg.decoder_attention_heads, l.pp("self_attn"))?,
                self_norm: norm(l.pp("self_attn_layer_norm"))?,
                cross_attn: Attention::new(d, cfg.decoder_attention_heads, l.pp("encoder_attn"))?
                    .keys_values_for_many_rows()?,
                cross_norm: norm(l.pp("encoder_attn_layer_norm"))?,
                ffn: Ffn::new(d, cfg.decoder_ffn_dim, &l)?,
                ffn_norm: norm(l.pp("final_layer_norm"))?,
            });
        }
        Ok(Model {
            enc_pos: Positions::new(&cfg, enc.clone())?,
            dec_pos: Positions::new(&cfg, dec.clone())?,
            enc_ln_emb: if pegasus {
                None
            } else {
                Some(norm(enc.pp("layernorm_embedding"))?)
            },
            dec_ln_emb: if pegasus {
                None
            } else {
                Some(norm(dec.pp("layernorm_embedding"))?)
            },
            enc_final: if cfg.final_norm() {
                Some(norm(enc.pp("layer_norm"))?)
            } else {
                None
            },
            dec_final: if cfg.final_norm() {
                Some(norm(dec.pp("layer_norm"))?)
            } else {
                None
            },
            device: vb.device().clone(),
            cfg,
            shared,
            final_logits_bias,
            encoder,
            decoder,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Encodes one input (token ids) into (1, len, d).
    pub fn encode(&self, ids: &[u32]) -> Result<Tensor> {
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let mut h = (self.shared.forward(&input)? * self.cfg.embed_scale())?;
        h = h.broadcast_add(&self.enc_pos.forward(0, ids.len(), &self.device)?)?;
        if let Some(ln) = &self.enc_ln_emb {
            h = ln.forward(&h)?;
        }
        let act = self.cfg.activation_function.clone();
        for l in &self.encoder {
            if self.cfg.pre_norm() {
                let x = l.attn_norm.forward(&h)?;
                let (k, v) = l.attn.keys_values(&x)?;
                h = (&h + l.attn.attend(&x, &k, &v)?)?;
                h = (&h + l.ffn.forward(&l.ffn_norm.forward(&h)?, &act)?)?;
            } else {
                let (k, v) = l.attn.keys_values(&h)?;
                h = l.attn_norm.forward(&(&h + l.attn.attend(&h, &k, &v)?)?)?;
                h = l.ffn_norm.forward(&(&h + l.ffn.forward(&h, &act)?)?)?;
            }
        }
        if let Some(ln) = &self.enc_final {
            h = ln.forward(&h)?;
        }
        Ok(h)
    }

    /// The decoder state for an encoded input (1, len, d): its
    /// cross-attention keys and values, computed once and shared by every
    /// row (beam) that decodes it.
    pub fn start(&self, encoded: &Tensor) -> Result<DecoderState> {
        let cross = self
            .decoder
            .iter()
            .map(|l| l.cross_attn.keys_values(encoded))
            .collect::<Result<_>>()?;
        Ok(DecoderState::new(cross, self.decoder.len()))
    }

    /// One decoding step: the last token of each row -> logits (rows, vocab).
    pub fn step(&self, state: &mut DecoderState, tokens: &[u32]) -> Result<Tensor> {
        let position = state.cache.begin(tokens.len())?;
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(1)?;
        let mut h = (self.shared.forward(&input)? * self.cfg.embed_scale())?;
        h = h.broadcast_add(&self.dec_pos.forward(position, 1, &self.device)?)?;
        if let Some(ln) = &self.dec_ln_emb {
            h = ln.forward(&h)?;
        }
        let act = self.cfg.activation_function.clone();
        let pre = self.cfg.pre_norm();
        for (i, l) in self.decoder.iter().enumerate() {
            // Self-attention over every position so far (the new one included).
            let x = if pre {
                l.self_norm.forward(&h)?
            } else {
                h.clone()
            };
            let a = l.self_attn.attend_cached(&x, &mut state.cache, i)?;
            h = if pre {
                (&h + a)?
            } else {
                l.self_norm.forward(&(&h + a)?)?
            };
            // Cross-attention over the input.
            let x = if pre {
                l.cross_norm.forward(&h)?
            } else {
                h.clone()
            };
            let (ck, cv) = &state.cross[i];
            let a = l
                .cross_attn
                .attend_masked(&x, ck, cv, state.mask.as_ref())?;
            h = if pre {
                (&h + a)?
            } else {
                l.cross_norm.forward(&(&h + a)?)?
            };
            // Feed-forward.
            h = if pre {
                (&h + l.ffn.forward(&l.ffn_norm.forward(&h)?, &act)?)?
            } else {
                l.ffn_norm.forward(&(&h + l.ffn.forward(&h, &act)?)?)?
            };
        }
        if let Some(ln) = &self.dec_final {
            h = ln.forward(&h)?;
        }
        let h = h.squeeze(1)?;
        linear::product(&h, self.shared.embeddings())?
            .broadcast_add(&self.final_logits_bias)?
            .to_dtype(DType::F32)
    }
}

/// Log-softmax over the vocabulary, rows of logits.
pub fn log_softmax(logits: &Tensor) -> Result<Tensor> {
    candle_nn::ops::log_softmax(logits, D::Minus1)
}
