//! What both architectures share: the attention arithmetic, softmax(q kᵀ +
//! bias) v, the decoder's state, and GELU on all cores.

use candle_core::{DType, Device, Result, Tensor};
use rayon::prelude::*;

use super::self_cache::SelfCache;

/// GELU, exact (erf) or tanh-approximated, with candle's own per-value
/// formulas (so results are bit for bit candle's) but spread over the rayon
/// threads: candle computes unary ops on one thread, which made GELU a fifth
/// of a two-thread encoder pass.
pub fn gelu(x: &Tensor, exact: bool) -> Result<Tensor> {
    let parallel =
        matches!(x.device(), Device::Cpu) && x.dtype() == DType::F32 && x.elem_count() >= 1 << 16;
    if !parallel {
        return if exact { x.gelu_erf() } else { x.gelu() };
    }
    let sqrt_two_over_pi = (2.0f64 / std::f64::consts::PI).sqrt() as f32;
    let mut values: Vec<f32> = x.flatten_all()?.to_vec1()?;
    values.par_chunks_mut(1 << 14).for_each(|chunk| {
        for v in chunk {
            *v = if exact {
                (candle_core::cpu::erf::erf_f32(*v * std::f32::consts::FRAC_1_SQRT_2) + 1.)
                    * 0.5
                    * *v
            } else {
                0.5 * *v * (1.0 + f32::tanh(sqrt_two_over_pi * *v * (1.0 + 0.044715 * *v * *v)))
            };
        }
    });
    Tensor::from_vec(values, x.shape(), x.device())
}

/// The decoder's state for a batch of inputs: each input's cross-attention
/// keys and values (computed once, padded to the longest input, with a
/// mask over the padding) and the self-attention cache, one row per beam.
pub struct DecoderState {
    /// Per layer: (inputs, heads, keys, head_dim).
    pub(super) cross: Vec<(Tensor, Tensor)>,
    /// (inputs, 1, 1, keys): 0 for a key, -inf for padding; `None` when no
    /// input is padded.
    pub(super) mask: Option<Tensor>,
    /// Every layer's self-attention keys and values, and each row's path
    /// through them.
    pub(super) cache: SelfCache,
}

impl DecoderState {
    pub fn new(cross: Vec<(Tensor, Tensor)>, layers: usize) -> DecoderState {
        DecoderState {
            cross,
            mask: None,
            cache: SelfCache::new(layers),
        }
    }

    /// Reserves the self-attention cache for this many positions, so it
    /// never grows while decoding.
    pub fn plan(&mut self, positions: usize) {
        self.cache.plan(positions);
    }

    /// The states of several inputs (not yet decoding) as one batch.
    pub fn stack(states: Vec<DecoderState>) -> Result<DecoderState> {
        if states.len() == 1 {
            return Ok(states.into_iter().next().expect("one state"));
        }
        let lens: Vec<usize> = states
            .iter()
            .map(|s| s.cross.first().map_or(Ok(0), |(k, _)| k.dim(2)))
            .collect::<Result<_>>()?;
        let longest = lens.iter().copied().max().unwrap_or(0);
        let layers = states[0].cross.len();
        let mut cross = Vec::with_capacity(layers);
        for layer in 0..layers {
            let pad = |t: &Tensor, len: usize| t.pad_with_zeros(2, 0, longest - len);
            let ks = states
                .iter()
                .zip(&lens)
                .map(|(s, &n)| pad(&s.cross[layer].0, n))
                .collect::<Result<Vec<_>>>()?;
            let vs = states
                .iter()
                .zip(&lens)
                .map(|(s, &n)| pad(&s.cross[layer].1, n))
                .collect::<Result<Vec<_>>>()?;
            cross.push((Tensor::cat(&ks, 0)?, Tensor::cat(&vs, 0)?));
        }
        let mask = if lens.iter().all(|&n| n == longest) {
            None
        } else {
            let values: Vec<f32> = lens
                .iter()
                .flat_map(|&n| {
                    (0..longest).map(move |i| if i < n { 0.0 } else { f32::NEG_INFINITY })
                })
                .collect();
            let device = cross[0].0.device().clone();
            Some(
                Tensor::from_vec(values, (lens.len(), 1, 1, longest), &device)?
                    .to_dtype(DType::F32)?,
            )
        };
        Ok(DecoderState {
            cross,
            mask,
            cache: SelfCache::new(layers),
        })
    }

    /// Reorders (and duplicates) the rows, for beam search: row `i` goes on
    /// from row `parents[i]`. Only the rows' paths through the
    /// self-attention cache move; the cross-attention keys and values are
    /// shared by all rows of an input and stay as they are.
    pub fn select(&mut self, parents: &[u32]) -> Result<()> {
        self.cache.select(parents)
    }

    /// Keeps only the given inputs' keys and values (the others are done);
    /// the caller selects their rows with `select`.
    pub fn keep_inputs(&mut self, inputs: &Tensor) -> Result<()> {
        for (k, v) in &mut self.cross {
            *k = k.index_select(inputs, 0)?;
            *v = v.index_select(inputs, 0)?;
        }
        if let Some(m) = &mut self.mask {
            *m = m.index_select(inputs, 0)?;
        }
        Ok(())
    }
}

/// `(rows, seq, heads × head_dim)` -> `(rows, heads, seq, head_dim)`.
pub fn split_heads(x: &Tensor, heads: usize) -> Result<Tensor> {
    let (b, s, d) = x.dims3()?;
    x.reshape((b, s, heads, d / heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// Attention of queries `q` (rows, heads, seq, head_dim), already scaled,
/// over keys and values (rows or 1, heads, keys, head_dim), with an
/// optional additive `bias` (position bias or mask). Returns the context as
/// (rows, seq, heads × head_dim).
///
/// Keys and values with fewer rows than the queries are per input: each
/// of their rows serves `rows / inputs` consecutive query rows, the beams of
/// that input. Those rows fold into the query length, so one matrix product
/// serves them all and the keys and values are neither repeated nor
/// reordered as beams move. A bias then has one row per input (a mask).
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    let (rows, heads, s, hd) = q.dims4()?;
    let inputs = k.dim(0)?;
    let shared = inputs != rows;
    let per = rows / inputs;
    let q = if shared {
        // (inputs, per, heads, s, hd) -> (inputs, heads, per × s, hd)
        q.reshape((inputs, per, heads, s, hd))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((inputs, heads, per * s, hd))?
    } else {
        q.clone()
    };
    let mut scores = q.matmul(&k.t()?)?;
    if let Some(bias) = bias {
        scores = scores.broadcast_add(bias)?;
    }
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    let ctx = probs.matmul(v)?;
    if shared {
        // (inputs, heads, per × s, hd) -> (inputs, per, s, heads, hd)
        ctx.reshape((inputs, heads, per, s, hd))?
            .permute((0, 2, 3, 1, 4))?
            .reshape((rows, s, heads * hd))
    } else {
        ctx.transpose(1, 2)?.reshape((rows, s, heads * hd))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn gelu_on_all_cores_is_candles_gelu_bit_for_bit() {
        let x = Tensor::randn(0f32, 2.0, (3, 100, 300), &Device::Cpu).unwrap();
        for (exact, want) in [(true, x.gelu_erf().unwrap()), (false, x.gelu().unwrap())] {
            let got = gelu(&x, exact).unwrap();
            assert_eq!(got.dims(), x.dims());
            let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
            let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
            assert!(got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
    }

    /// The largest absolute difference between two tensors.
    pub(in crate::summarize::transformer) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn each_input_s_beams_attend_to_that_input_only_padding_masked() {
        // Two inputs (5 and 3 keys), two beams each: the stacked, padded
        // and masked attention equals each input's attention on its own.
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (4, 2, 1, 4), &dev).unwrap();
        let k: Vec<Tensor> = [5, 3]
            .iter()
            .map(|&n| Tensor::randn(0f32, 1.0, (1, 2, n, 4), &dev).unwrap())
            .collect();
        let v: Vec<Tensor> = [5, 3]
            .iter()
            .map(|&n| Tensor::randn(0f32, 1.0, (1, 2, n, 4), &dev).unwrap())
            .collect();
        let state = DecoderState::stack(vec![
            DecoderState::new(vec![(k[0].clone(), v[0].clone())], 1),
            DecoderState::new(vec![(k[1].clone(), v[1].clone())], 1),
        ])
        .unwrap();
        let (sk, sv) = &state.cross[0];
        assert_eq!(sk.dims(), [2, 2, 5, 4]);
        let together = attend(&q, sk, sv, state.mask.as_ref()).unwrap();
        for i in 0..2 {
            let alone = attend(&q.narrow(0, 2 * i, 2).unwrap(), &k[i], &v[i], None).unwrap();
            let diff = max_diff(&together.narrow(0, 2 * i, 2).unwrap(), &alone);
            assert!(diff < 1e-6, "input {i}: {diff}");
        }
    }

    #[test]
    fn shared_keys_give_what_repeated_keys_give() {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (3, 2, 1, 4), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (1, 2, 5, 4), &dev).unwrap();
        let v = Tensor::randn(0f32, 1.0, (1, 2, 5, 4), &dev).unwrap();
        let shared = attend(&q, &k, &v, None).unwrap();
        let repeated = attend(
            &q,
            &k.repeat((3, 1, 1, 1)).unwrap(),
            &v.repeat((3, 1, 1, 1)).unwrap(),
            None,
        )
        .unwrap();
        assert_eq!(shared.dims(), [3, 1, 8]);
        let diff = max_diff(&shared, &repeated);
        assert!(diff < 1e-6, "{diff}");
    }
}
