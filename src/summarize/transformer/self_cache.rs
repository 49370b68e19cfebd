//! The decoder's self-attention cache: each position's keys and values are
//! written once, when it is decoded, and never copied again.
//!
//! Each layer's keys (and values) are one buffer that grows by a block per
//! position: position `j` holds one vector (heads × head_dim) for each row
//! that was decoding at `j`. Beam search reorders and duplicates rows every
//! step; instead of moving the cache, each row keeps a path of
//! back-pointers, `paths[r][j]`, the row at position `j` whose keys and
//! values row `r` reads (the "cache indirection" of FasterTransformer).
//! A reorder copies these paths (a few hundred integers), not the keys.
//!
//! A decoding step reads each past key once per row and head, so the
//! attention itself is a dot product and a multiply-add per key: written
//! here over the paths (AVX2 where the CPU has it) rather than as candle
//! matrix products, which would need the keys gathered into place first
//! (the copy this layout avoids). On a GPU the query and the step's keys
//! and values come to the host and the context goes back: a few kilobytes
//! per layer and step.

use candle_core::{DType, Result, Tensor};
use rayon::prelude::*;

/// The cache of every decoder layer, and the rows' paths through it.
pub(super) struct SelfCache {
    layers: Vec<Layer>,
    /// Where each position's block starts, in vectors.
    starts: Vec<usize>,
    /// Vectors written per layer so far.
    vectors: usize,
    /// Per row, per position: the row at that position it reads.
    paths: Vec<Vec<u32>>,
    /// Positions to reserve room for when the first block is written.
    planned: usize,
}

#[derive(Clone, Default)]
struct Layer {
    keys: Vec<f32>,
    values: Vec<f32>,
}

impl SelfCache {
    pub(super) fn new(layers: usize) -> SelfCache {
        SelfCache {
            layers: vec![Layer::default(); layers],
            starts: Vec::new(),
            vectors: 0,
            paths: Vec::new(),
            planned: 0,
        }
    }

    /// Reserves room for this many positions when the first one is
    /// written, so the buffers never grow (and move) while decoding.
    pub(super) fn plan(&mut self, positions: usize) {
        self.planned = positions;
    }

    /// Starts a position decoded by `rows` rows; each row's path gets its
    /// own block at that position. Returns the position.
    pub(super) fn begin(&mut self, rows: usize) -> Result<usize> {
        if self.starts.is_empty() {
            self.paths = vec![Vec::with_capacity(self.planned); rows];
        } else if self.paths.len() != rows {
            candle_core::bail!(
                "decoder step with {rows} rows on a state of {} rows",
                self.paths.len()
            );
        }
        let position = self.starts.len();
        self.starts.push(self.vectors);
        self.vectors += rows;
        for (r, path) in self.paths.iter_mut().enumerate() {
            path.push(r as u32);
        }
        Ok(position)
    }

    /// Writes one layer's keys and values for the position begun, each
    /// (rows, 1, heads × head_dim).
    pub(super) fn append(&mut self, layer: usize, keys: &Tensor, values: &Tensor) -> Result<()> {
        let rows = self.paths.len();
        let planned = self.planned.max(1);
        let cache = &mut self.layers[layer];
        for (buffer, new) in [(&mut cache.keys, keys), (&mut cache.values, values)] {
            let (r, one, width) = new.dims3()?;
            if r != rows || one != 1 {
                candle_core::bail!("cache block of {r}x{one} for {rows} rows, one position");
            }
            if buffer.is_empty() {
                buffer.reserve(planned * rows * width);
            }
            buffer.extend(new.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?);
        }
        if cache.keys.len() != self.vectors * keys.dim(2)? {
            candle_core::bail!("layer {layer} written twice, or not begun, at this position");
        }
        Ok(())
    }

    /// Reorders (and duplicates) the rows for beam search: row `i` goes on
    /// from row `parents[i]`. Only the paths move.
    pub(super) fn select(&mut self, parents: &[u32]) -> Result<()> {
        if self.starts.is_empty() {
            return Ok(());
        }
        let paths = parents
            .iter()
            .map(|&p| {
                self.paths
                    .get(p as usize)
                    .cloned()
                    .ok_or_else(|| candle_core::Error::Msg(format!("no row {p} to continue from")))
            })
            .collect::<Result<Vec<_>>>()?;
        self.paths = paths;
        Ok(())
    }

    /// Attention of the queries `q` (rows, 1, heads × head_dim), already
    /// scaled, over every position of each row's path, with an optional
    /// additive `bias` (1, heads, 1, positions). Returns the context,
    /// (rows, 1, heads × head_dim).
    pub(super) fn attend(
        &self,
        layer: usize,
        q: &Tensor,
        heads: usize,
        bias: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (rows, one, width) = q.dims3()?;
        let positions = self.starts.len();
        if rows != self.paths.len() || one != 1 || width % heads != 0 {
            candle_core::bail!(
                "queries {rows}x{one}x{width} over a cache of {} rows, {heads} heads",
                self.paths.len()
            );
        }
        let Layer { keys, values } = &self.layers[layer];
        if keys.len() != self.vectors * width {
            candle_core::bail!("layer {layer}'s keys are not written for this position");
        }
        let head_dim = width / heads;
        let queries: Vec<f32> = q.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
        let bias: Option<Vec<f32>> = bias
            .map(|b| b.to_dtype(DType::F32)?.flatten_all()?.to_vec1())
            .transpose()?;
        if bias.as_ref().is_some_and(|b| b.len() != heads * positions) {
            candle_core::bail!("a bias that is not one row per head over every position");
        }
        let simd = simd_for(head_dim);
        // One job per row and head: its scores, their softmax, and the
        // weighted sum of values, each key read where it was written.
        let job = |(i, context): (usize, &mut [f32])| {
            let (row, head) = (i / heads, i % heads);
            let offsets: Vec<usize> = (0..positions)
                .map(|j| ((self.starts[j] + self.paths[row][j] as usize) * heads + head) * head_dim)
                .collect();
            let bias = bias.as_ref().map(|b| &b[head * positions..][..positions]);
            let query = &queries[i * head_dim..][..head_dim];
            attend_one(simd, query, keys, values, &offsets, bias, context);
        };
        let mut context = vec![0f32; rows * width];
        // Below this many multiply-adds the threads cost more than they save.
        if rows * width * positions >= 1 << 16 {
            context.par_chunks_mut(head_dim).enumerate().for_each(job);
        } else {
            context.chunks_mut(head_dim).enumerate().for_each(job);
        }
        Tensor::from_vec(context, (rows, 1, width), q.device())
    }
}

/// Whether heads of this size take the AVX2 path: the CPU has AVX2 and
/// fused multiply-add, and the size is a multiple of 8.
fn simd_for(head_dim: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    return head_dim.is_multiple_of(8)
        && std::arch::is_x86_feature_detected!("avx2")
        && std::arch::is_x86_feature_detected!("fma");
    #[cfg(not(target_arch = "x86_64"))]
    return false;
}

/// One row and head: `context` = Σⱼ softmax(query · kⱼ + biasⱼ) vⱼ, where
/// kⱼ and vⱼ are the `query.len()` floats at `offsets[j]` of `keys` and
/// `values`; with AVX2 if `simd` (as [`simd_for`] says), else portable.
fn attend_one(
    simd: bool,
    query: &[f32],
    keys: &[f32],
    values: &[f32],
    offsets: &[usize],
    bias: Option<&[f32]>,
    context: &mut [f32],
) {
    let n = query.len();
    assert!(context.len() == n && keys.len() == values.len());
    assert!(offsets.iter().all(|&at| at + n <= keys.len()));
    let mut scores = vec![0f32; offsets.len()];
    if simd {
        assert!(simd_for(n));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the CPU has the features, `n` is a multiple of 8, and
        // every offset holds `n` floats (all asserted above).
        unsafe {
            avx2::scores(query, keys, offsets, &mut scores)
        };
    } else {
        for (s, &at) in scores.iter_mut().zip(offsets) {
            *s = dot(query, &keys[at..at + n]);
        }
    }
    if let Some(bias) = bias {
        for (s, b) in scores.iter_mut().zip(bias) {
            *s += b;
        }
    }
    // Softmax, as candle computes it.
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for s in &mut scores {
        *s = (*s - max).exp();
        sum += *s;
    }
    for s in &mut scores {
        *s /= sum;
    }
    if simd {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        unsafe {
            avx2::accumulate(&scores, values, offsets, context)
        };
    } else {
        for (&weight, &at) in scores.iter().zip(offsets) {
            for (c, v) in context.iter_mut().zip(&values[at..at + n]) {
                *c += weight * v;
            }
        }
    }
}

/// A dot product in eight lanes.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8
        .remainder()
        .iter()
        .zip(b8.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a8.zip(b8) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// `scores[j]` = query · the key at `offsets[j]`, four keys at a time
    /// (their sums reduced together). Safety: AVX2 and FMA; the query's
    /// length is a multiple of 8 and every offset holds that many floats.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn scores(
        query: &[f32],
        keys: &[f32],
        offsets: &[usize],
        scores: &mut [f32],
    ) {
        let n = query.len();
        let (q, k) = (query.as_ptr(), keys.as_ptr());
        let mut quads = offsets.chunks_exact(4);
        let mut out = scores.chunks_exact_mut(4);
        for (at, s) in quads.by_ref().zip(out.by_ref()) {
            let mut acc = [_mm256_setzero_ps(); 4];
            for d in (0..n).step_by(8) {
                let qv = _mm256_loadu_ps(q.add(d));
                for (a, &o) in acc.iter_mut().zip(at) {
                    *a = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k.add(o + d)), *a);
                }
            }
            // [a b c d | a b c d] halves of each key's sum, then added.
            let halves = _mm256_hadd_ps(
                _mm256_hadd_ps(acc[0], acc[1]),
                _mm256_hadd_ps(acc[2], acc[3]),
            );
            let sums = _mm_add_ps(
                _mm256_castps256_ps128(halves),
                _mm256_extractf128_ps(halves, 1),
            );
            _mm_storeu_ps(s.as_mut_ptr(), sums);
        }
        for (&at, s) in quads.remainder().iter().zip(out.into_remainder()) {
            let mut acc = _mm256_setzero_ps();
            for d in (0..n).step_by(8) {
                acc = _mm256_fmadd_ps(
                    _mm256_loadu_ps(q.add(d)),
                    _mm256_loadu_ps(k.add(at + d)),
                    acc,
                );
            }
            let half = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
            let pair = _mm_add_ps(half, _mm_movehl_ps(half, half));
            *s = _mm_cvtss_f32(_mm_add_ss(pair, _mm_shuffle_ps(pair, pair, 1)));
        }
    }

    /// `context` += Σⱼ `weights[j]` × the value at `offsets[j]`. Safety:
    /// as `scores`, with `context` the query's length.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn accumulate(
        weights: &[f32],
        values: &[f32],
        offsets: &[usize],
        context: &mut [f32],
    ) {
        let n = context.len();
        let mut d = 0;
        while d + 64 <= n {
            accumulate_block::<8>(weights, values, offsets, context, d);
            d += 64;
        }
        while d < n {
            accumulate_block::<1>(weights, values, offsets, context, d);
            d += 8;
        }
    }

    /// `accumulate` for the `8 × C` floats from `d`: `C` sums held in
    /// registers while every value goes by, one broadcast weight each.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn accumulate_block<const C: usize>(
        weights: &[f32],
        values: &[f32],
        offsets: &[usize],
        context: &mut [f32],
        d: usize,
    ) {
        let v = values.as_ptr().add(d);
        let mut acc = [_mm256_setzero_ps(); C];
        for (&w, &at) in weights.iter().zip(offsets) {
            let w = _mm256_set1_ps(w);
            for (i, a) in acc.iter_mut().enumerate() {
                *a = _mm256_fmadd_ps(w, _mm256_loadu_ps(v.add(at + 8 * i)), *a);
            }
        }
        let c = context.as_mut_ptr().add(d);
        for (i, a) in acc.iter().enumerate() {
            _mm256_storeu_ps(
                c.add(8 * i),
                _mm256_add_ps(_mm256_loadu_ps(c.add(8 * i)), *a),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::attention::{attend, split_heads, tests::max_diff};
    use super::*;
    use candle_core::Device;

    /// Keys, values and queries for `positions` steps of `rows` rows,
    /// 2 heads of 8 (so the AVX2 path serves them, where there is one).
    fn steps(rows: usize, positions: usize) -> Vec<(Tensor, Tensor, Tensor)> {
        (0..positions)
            .map(|_| {
                let t = || Tensor::randn(0f32, 1.0, (rows, 1, 16), &Device::Cpu).unwrap();
                (t(), t(), t())
            })
            .collect()
    }

    #[test]
    fn attention_over_the_cache_is_attention_over_concatenated_keys() {
        let (rows, heads) = (3, 2);
        let mut cache = SelfCache::new(1);
        let (mut ks, mut vs) = (Vec::new(), Vec::new());
        for (n, (k, v, q)) in steps(rows, 5).into_iter().enumerate() {
            assert_eq!(cache.begin(rows).unwrap(), n);
            cache.append(0, &k, &v).unwrap();
            ks.push(split_heads(&k, heads).unwrap());
            vs.push(split_heads(&v, heads).unwrap());
            let (kc, vc) = (Tensor::cat(&ks, 2).unwrap(), Tensor::cat(&vs, 2).unwrap());
            // A T5-style position bias on the last step.
            let bias =
                (n == 4).then(|| Tensor::randn(0f32, 1.0, (1, heads, 1, n + 1), &Device::Cpu));
            let bias = bias.transpose().unwrap();
            let want = attend(&split_heads(&q, heads).unwrap(), &kc, &vc, bias.as_ref()).unwrap();
            let got = cache.attend(0, &q, heads, bias.as_ref()).unwrap();
            assert_eq!(got.dims(), [rows, 1, 16]);
            let diff = max_diff(&got, &want);
            assert!(diff < 1e-5, "position {n}: {diff}");
        }
    }

    #[test]
    fn reordered_rows_read_their_parents_keys_without_moving_them() {
        // Rows reordered and duplicated between steps, as beams are: the
        // cache's answer equals attention over keys gathered by
        // index_select (what the cache used to do every step).
        let (rows, heads) = (3, 2);
        let mut cache = SelfCache::new(1);
        let (mut kc, mut vc): (Option<Tensor>, Option<Tensor>) = (None, None);
        let orders: [&[u32]; 4] = [&[0, 0, 1], &[2, 1, 0], &[1, 1, 1], &[0, 2, 1]];
        for (n, (k, v, q)) in steps(rows, 5).into_iter().enumerate() {
            cache.begin(rows).unwrap();
            cache.append(0, &k, &v).unwrap();
            let (k, v) = (
                split_heads(&k, heads).unwrap(),
                split_heads(&v, heads).unwrap(),
            );
            let (k, v) = match (kc, vc) {
                (Some(pk), Some(pv)) => (
                    Tensor::cat(&[pk, k], 2).unwrap(),
                    Tensor::cat(&[pv, v], 2).unwrap(),
                ),
                _ => (k, v),
            };
            let want = attend(&split_heads(&q, heads).unwrap(), &k, &v, None).unwrap();
            let got = cache.attend(0, &q, heads, None).unwrap();
            let diff = max_diff(&got, &want);
            assert!(diff < 1e-5, "position {n}: {diff}");
            let before = cache.layers[0].keys.as_ptr();
            if let Some(order) = orders.get(n) {
                cache.select(order).unwrap();
                let rows = Tensor::new(*order, &Device::Cpu).unwrap();
                kc = Some(k.index_select(&rows, 0).unwrap());
                vc = Some(v.index_select(&rows, 0).unwrap());
            } else {
                (kc, vc) = (Some(k), Some(v));
            }
            assert_eq!(cache.layers[0].keys.as_ptr(), before, "keys stay put");
        }
    }

    #[test]
    fn the_avx2_path_gives_what_the_portable_path_gives() {
        // 64-float heads (BART's), 37 positions (not a multiple of 4 or 2),
        // keys scattered as paths leave them.
        let n = 64;
        let keys: Vec<f32> = (0..n * 50)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 40.0)
            .collect();
        let values: Vec<f32> = (0..n * 50)
            .map(|i| ((i * 53 % 89) as f32 - 44.0) / 30.0)
            .collect();
        let query: Vec<f32> = (0..n).map(|i| ((i * 7 % 13) as f32 - 6.0) / 5.0).collect();
        let offsets: Vec<usize> = (0..37).map(|j| (j * 17 % 50) * n).collect();
        let bias: Vec<f32> = (0..37).map(|j| j as f32 / 10.0).collect();
        let mut portable = vec![0f32; n];
        attend_one(
            false,
            &query,
            &keys,
            &values,
            &offsets,
            Some(&bias),
            &mut portable,
        );
        if !simd_for(n) {
            eprintln!("no AVX2 and FMA here: only the portable path ran");
            return;
        }
        let mut simd = vec![0f32; n];
        attend_one(
            true,
            &query,
            &keys,
            &values,
            &offsets,
            Some(&bias),
            &mut simd,
        );
        let diff = portable
            .iter()
            .zip(&simd)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-5, "{diff}");
        assert!(portable.iter().any(|&c| c.abs() > 0.1), "a real context");
    }

    #[test]
    fn a_planned_cache_never_moves_while_decoding() {
        let mut cache = SelfCache::new(2);
        cache.plan(6);
        let mut at = None;
        for (k, v, _) in steps(4, 6) {
            cache.begin(4).unwrap();
            for layer in 0..2 {
                cache.append(layer, &k, &v).unwrap();
            }
            let now = (
                cache.layers[0].keys.as_ptr(),
                cache.layers[1].values.as_ptr(),
            );
            assert_eq!(*at.get_or_insert(now), now);
        }
    }

    #[test]
    fn mismatched_rows_and_missing_layers_are_errors() {
        let mut cache = SelfCache::new(2);
        let (k, v, q) = steps(2, 1).remove(0);
        cache.begin(2).unwrap();
        cache.append(0, &k, &v).unwrap();
        assert!(cache.append(0, &k, &v).is_err(), "a layer written twice");
        assert!(cache.attend(1, &q, 2, None).is_err(), "a layer not written");
        assert!(cache.begin(3).is_err(), "three rows on a state of two");
        assert!(cache.select(&[0, 2]).is_err(), "no row 2");
    }
}
