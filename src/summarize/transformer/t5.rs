//! T5 and Flan-T5: RMS layer norms before each block, attention without
//! 1/√d scaling plus a relative-position bias (computed by the first layer
//! and shared by the others), ReLU or gated-GELU feed-forward, and an LM
//! head that is tied (with the d_model^-0.5 rescale) or separate (Flan).
//!
//! Unlike candle-transformers' t5, the decoder computes the
//! cross-attention keys and values once per input, not at every step.

use candle_core::{DType, Device, Module, Result, Tensor};
use candle_nn::{embedding, rms_norm, Embedding, RmsNorm, VarBuilder};
use serde::Deserialize;

use super::attention::DecoderState;
use super::attention::{attend, gelu, split_heads};
use super::linear::{self, linear_no_bias, Linear};
use super::self_cache::SelfCache;

/// The `config.json` fields this module reads.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    pub num_decoder_layers: Option<usize>,
    pub num_heads: usize,
    pub relative_attention_num_buckets: usize,
    #[serde(default = "max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "relu")]
    pub feed_forward_proj: String,
    #[serde(default = "yes")]
    pub tie_word_embeddings: bool,
}

fn max_distance() -> usize {
    128
}
fn eps() -> f64 {
    1e-6
}
fn relu() -> String {
    "relu".into()
}
fn yes() -> bool {
    true
}

impl Config {
    fn gated(&self) -> bool {
        self.feed_forward_proj.starts_with("gated-")
    }

    fn act(&self, x: &Tensor) -> Result<Tensor> {
        match self.feed_forward_proj.trim_start_matches("gated-") {
            "gelu" | "gelu_new" => gelu(x, false),
            "silu" => candle_nn::ops::silu(x),
            _ => x.relu(),
        }
    }
}

/// T5's bucket of a relative position (memory position − query position).
fn bucket(relative: i64, bidirectional: bool, num_buckets: usize, max_distance: usize) -> u32 {
    let mut buckets = num_buckets as i64;
    let mut out = 0i64;
    let mut rel = relative;
    if bidirectional {
        buckets /= 2;
        if rel > 0 {
            out += buckets;
        }
        rel = rel.abs();
    } else {
        rel = -rel.min(0);
    }
    let max_exact = buckets / 2;
    if rel < max_exact {
        out += rel;
    } else {
        let large = max_exact
            + ((rel as f32 / max_exact as f32).ln() / (max_distance as f32 / max_exact as f32).ln()
                * (buckets - max_exact) as f32) as i64;
        out += large.min(buckets - 1);
    }
    out as u32
}

struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    bias: Option<Embedding>,
    heads: usize,
}

impl Attention {
    fn new(cfg: &Config, with_bias: bool, vb: VarBuilder) -> Result<Attention> {
        let inner = cfg.num_heads * cfg.d_kv;
        Ok(Attention {
            q: linear_no_bias(cfg.d_model, inner, vb.pp("q"))?,
            k: linear_no_bias(cfg.d_model, inner, vb.pp("k"))?,
            v: linear_no_bias(cfg.d_model, inner, vb.pp("v"))?,
            o: linear_no_bias(inner, cfg.d_model, vb.pp("o"))?,
            bias: if with_bias {
                Some(embedding(
                    cfg.relative_attention_num_buckets,
                    cfg.num_heads,
                    vb.pp("relative_attention_bias"),
                )?)
            } else {
                None
            },
            heads: cfg.num_heads,
        })
    }

    /// Every product over whole inputs (`Linear::for_many_rows`): the
    /// encoder's attention.
    fn for_many_rows(self) -> Result<Attention> {
        let a = self.keys_values_for_many_rows()?;
        Ok(Attention {
            q: a.q.for_many_rows()?,
            o: a.o.for_many_rows()?,
            ..a
        })
    }

    /// Keys and values over whole inputs: the decoder's cross-attention.
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

    /// The position bias (1, heads, queries, keys) for query positions
    /// `q0..q0+nq` over keys `0..nk`.
    fn position_bias(
        &self,
        cfg: &Config,
        q0: usize,
        nq: usize,
        nk: usize,
        bidirectional: bool,
        dev: &Device,
    ) -> Result<Tensor> {
        let emb = self.bias.as_ref().expect("the first layer has the bias");
        let ids: Vec<u32> = (q0..q0 + nq)
            .flat_map(|q| {
                (0..nk).map(move |k| {
                    bucket(
                        k as i64 - q as i64,
                        bidirectional,
                        cfg.relative_attention_num_buckets,
                        cfg.relative_attention_max_distance,
                    )
                })
            })
            .collect();
        let ids = Tensor::from_vec(ids, (nq, nk), dev)?;
        emb.forward(&ids)?.permute((2, 0, 1))?.unsqueeze(0)
    }

    /// Attention of `x` over keys and values, with T5's unscaled scores.
    /// Self-attention of a decoding step's `x` (rows, 1, d) with the
    /// position `bias`: its keys and values go into layer `layer` of the
    /// cache, and its queries attend to every position so far.
    fn attend_cached(
        &self,
        x: &Tensor,
        cache: &mut SelfCache,
        layer: usize,
        bias: &Tensor,
    ) -> Result<Tensor> {
        cache.append(layer, &self.k.forward(x)?, &self.v.forward(x)?)?;
        let q = self.q.forward(x)?;
        self.o
            .forward(&cache.attend(layer, &q, self.heads, Some(bias))?)
    }

    fn attend(&self, x: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let q = split_heads(&self.q.forward(x)?, self.heads)?;
        self.o.forward(&attend(&q, k, v, bias)?)
    }
}

struct Ffn {
    wi: Option<Linear>,
    wi_0: Option<Linear>,
    wi_1: Option<Linear>,
    wo: Linear,
}

impl Ffn {
    fn new(cfg: &Config, vb: VarBuilder) -> Result<Ffn> {
        let (d, f) = (cfg.d_model, cfg.d_ff);
        Ok(if cfg.gated() {
            Ffn {
                wi: None,
                wi_0: Some(linear_no_bias(d, f, vb.pp("wi_0"))?),
                wi_1: Some(linear_no_bias(d, f, vb.pp("wi_1"))?),
                wo: linear_no_bias(f, d, vb.pp("wo"))?,
            }
        } else {
            Ffn {
                wi: Some(linear_no_bias(d, f, vb.pp("wi"))?),
                wi_0: None,
                wi_1: None,
                wo: linear_no_bias(f, d, vb.pp("wo"))?,
            }
        })
    }

    fn for_many_rows(self) -> Result<Ffn> {
        let many = |l: Option<Linear>| l.map(Linear::for_many_rows).transpose();
        Ok(Ffn {
            wi: many(self.wi)?,
            wi_0: many(self.wi_0)?,
            wi_1: many(self.wi_1)?,
            wo: self.wo.for_many_rows()?,
        })
    }

    fn forward(&self, cfg: &Config, x: &Tensor) -> Result<Tensor> {
        let h = match (&self.wi, &self.wi_0, &self.wi_1) {
            (Some(wi), _, _) => cfg.act(&wi.forward(x)?)?,
            (None, Some(w0), Some(w1)) => (cfg.act(&w0.forward(x)?)? * w1.forward(x)?)?,
            _ => unreachable!("built with wi or wi_0 and wi_1"),
        };
        self.wo.forward(&h)
    }
}

struct EncoderBlock {
    attn: Attention,
    attn_norm: RmsNorm,
    ffn: Ffn,
    ffn_norm: RmsNorm,
}

struct DecoderBlock {
    self_attn: Attention,
    self_norm: RmsNorm,
    cross: Attention,
    cross_norm: RmsNorm,
    ffn: Ffn,
    ffn_norm: RmsNorm,
}

/// A T5 sequence-to-sequence model.
pub struct Model {
    cfg: Config,
    shared: Embedding,
    lm_head: Option<Linear>,
    encoder: Vec<EncoderBlock>,
    encoder_norm: RmsNorm,
    decoder: Vec<DecoderBlock>,
    decoder_norm: RmsNorm,
    device: Device,
}

impl Model {
    pub fn new(cfg: Config, vb: VarBuilder) -> Result<Model> {
        let shared = embedding(cfg.vocab_size, cfg.d_model, vb.pp("shared"))?;
        let norm = |vb: VarBuilder| rms_norm(cfg.d_model, cfg.layer_norm_epsilon, vb);
        let mut encoder = Vec::new();
        for i in 0..cfg.num_layers {
            let b = vb.pp(format!("encoder.block.{i}.layer"));
            encoder.push(EncoderBlock {
                attn: Attention::new(&cfg, i == 0, b.pp("0.SelfAttention"))?.for_many_rows()?,
                attn_norm: norm(b.pp("0.layer_norm"))?,
                ffn: Ffn::new(&cfg, b.pp("1.DenseReluDense"))?.for_many_rows()?,
                ffn_norm: norm(b.pp("1.layer_norm"))?,
            });
        }
        let mut decoder = Vec::new();
        for i in 0..cfg.num_decoder_layers.unwrap_or(cfg.num_layers) {
            let b = vb.pp(format!("decoder.block.{i}.layer"));
            decoder.push(DecoderBlock {
                self_attn: Attention::new(&cfg, i == 0, b.pp("0.SelfAttention"))?,
                self_norm: norm(b.pp("0.layer_norm"))?,
                cross: Attention::new(&cfg, false, b.pp("1.EncDecAttention"))?
                    .keys_values_for_many_rows()?,
                cross_norm: norm(b.pp("1.layer_norm"))?,
                ffn: Ffn::new(&cfg, b.pp("2.DenseReluDense"))?,
                ffn_norm: norm(b.pp("2.layer_norm"))?,
            });
        }
        let lm_head = if cfg.tie_word_embeddings {
            None
        } else {
            Some(linear_no_bias(
                cfg.d_model,
                cfg.vocab_size,
                vb.pp("lm_head"),
            )?)
        };
        Ok(Model {
            encoder_norm: norm(vb.pp("encoder.final_layer_norm"))?,
            decoder_norm: norm(vb.pp("decoder.final_layer_norm"))?,
            device: vb.device().clone(),
            cfg,
            shared,
            lm_head,
            encoder,
            decoder,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn encode(&self, ids: &[u32]) -> Result<Tensor> {
        let input = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let mut h = self.shared.forward(&input)?;
        let bias = self.encoder[0].attn.position_bias(
            &self.cfg,
            0,
            ids.len(),
            ids.len(),
            true,
            &self.device,
        )?;
        for b in &self.encoder {
            let x = b.attn_norm.forward(&h)?;
            let (k, v) = b.attn.keys_values(&x)?;
            h = (&h + b.attn.attend(&x, &k, &v, Some(&bias))?)?;
            h = (&h + b.ffn.forward(&self.cfg, &b.ffn_norm.forward(&h)?)?)?;
        }
        self.encoder_norm.forward(&h)
    }

    /// The decoder state for an encoded input: its cross-attention keys
    /// and values, shared by every row.
    pub fn start(&self, encoded: &Tensor) -> Result<DecoderState> {
        let cross = self
            .decoder
            .iter()
            .map(|b| b.cross.keys_values(encoded))
            .collect::<Result<_>>()?;
        Ok(DecoderState::new(cross, self.decoder.len()))
    }

    pub fn step(&self, state: &mut DecoderState, tokens: &[u32]) -> Result<Tensor> {
        let pos = state.cache.begin(tokens.len())?;
        let input = Tensor::new(tokens, &self.device)?.unsqueeze(1)?;
        let mut h = self.shared.forward(&input)?;
        let bias = self.decoder[0].self_attn.position_bias(
            &self.cfg,
            pos,
            1,
            pos + 1,
            false,
            &self.device,
        )?;
        for (i, b) in self.decoder.iter().enumerate() {
            let x = b.self_norm.forward(&h)?;
            h = (&h + b.self_attn.attend_cached(&x, &mut state.cache, i, &bias)?)?;
            let x = b.cross_norm.forward(&h)?;
            let (ck, cv) = &state.cross[i];
            h = (&h + b.cross.attend(&x, ck, cv, state.mask.as_ref())?)?;
            h = (&h + b.ffn.forward(&self.cfg, &b.ffn_norm.forward(&h)?)?)?;
        }
        let h = self.decoder_norm.forward(&h)?.squeeze(1)?;
        let logits = match &self.lm_head {
            Some(head) => head.forward(&h)?,
            None => linear::product(
                &(h * (self.cfg.d_model as f64).powf(-0.5))?,
                self.shared.embeddings(),
            )?,
        };
        logits.to_dtype(DType::F32)
    }
}

#[cfg(test)]
mod tests {
    use super::bucket;

    #[test]
    fn relative_position_buckets_match_t5() {
        // Values from transformers' T5Attention._relative_position_bucket
        // with 32 buckets and max distance 128.
        assert_eq!(bucket(0, true, 32, 128), 0);
        assert_eq!(bucket(1, true, 32, 128), 17);
        assert_eq!(bucket(-1, true, 32, 128), 1);
        assert_eq!(bucket(-7, true, 32, 128), 7);
        assert_eq!(bucket(-8, true, 32, 128), 8);
        assert_eq!(bucket(-1000, true, 32, 128), 15);
        assert_eq!(bucket(-3, false, 32, 128), 3);
        assert_eq!(bucket(5, false, 32, 128), 0);
    }
}
