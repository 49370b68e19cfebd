//! Dense layers that cost what their weights cost.
//!
//! candle's `Linear` multiplies a `(rows, seq, in)` input by the weight
//! broadcast over `rows`: one matrix product per row, each reading every
//! weight. A decoder step has one position per row, so four beams read the
//! weights four times, and the step cost grew with the rows (88.7 ms for 4
//! rows against 20.5 ms for 1, one thread) where it should be bound by one
//! read of the weights.
//!
//! Here every input row of every batch is one row of a single product.
//! Up to [`SKINNY`] rows (decoding: beams × inputs) take a kernel that
//! reads each weight from memory once, a few weight rows at a time (with
//! the rows after them prefetched), and multiplies them into four input
//! rows at once while they are in cache, on all cores; more rows
//! (encoding: hundreds of positions) take one `matmul` (gemm, packed and
//! blocked, compute-bound). Layers that only ever see whole inputs (the
//! encoder; the cross-attention keys and values) store their weight
//! `(in, out)` (`Linear::for_many_rows`), which gemm packs faster. The
//! results differ from gemm's only in the order of the sums (the parity
//! fixtures are unchanged).

use candle_core::{DType, Device, Module, Result, Storage, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

/// Products of at most this many input rows take the streaming kernel:
/// four articles of four beams. Measured (BENCHMARKS.md, "Faster days"):
/// at 16 rows it is still faster than one gemm product, which packs the
/// weights first.
pub const SKINNY: usize = 16;

/// Output columns one task computes (weights of 64 outputs: 256 KB at
/// 1,024 inputs, an L2's worth).
const BLOCK: usize = 64;

/// `y = x Wᵀ + b`, the weight as checkpoints store it: `(out, in)`, or
/// transposed, `(in, out)`, for layers that only see many rows.
#[derive(Clone, Debug)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
    /// `weight` is `(in, out)`.
    transposed: bool,
}

pub fn linear(inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Linear> {
    Ok(Linear {
        weight: vb.get((outputs, inputs), "weight")?,
        bias: Some(vb.get(outputs, "bias")?),
        transposed: false,
    })
}

pub fn linear_no_bias(inputs: usize, outputs: usize, vb: VarBuilder) -> Result<Linear> {
    Ok(Linear {
        weight: vb.get((outputs, inputs), "weight")?,
        bias: None,
        transposed: false,
    })
}

impl Linear {
    /// A layer over an existing weight `(out, in)`: the tied LM head.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Linear {
        Linear {
            weight,
            bias,
            transposed: false,
        }
    }

    /// The layer with its weight stored `(in, out)`, for layers that see
    /// whole inputs (the encoder, the cross-attention keys and values):
    /// gemm then reads the weight along its rows and packs it faster.
    /// Memory is the same (the weight is moved, not copied).
    pub fn for_many_rows(self) -> Result<Linear> {
        if self.transposed || !matches!(self.weight.device(), Device::Cpu) {
            return Ok(self);
        }
        Ok(Linear {
            weight: self.weight.t()?.contiguous()?,
            bias: self.bias,
            transposed: true,
        })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let inputs = *dims.last().unwrap_or(&0);
        let rows = x.elem_count() / inputs.max(1);
        let flat = x.reshape((rows, inputs))?;
        let y = if self.transposed {
            flat.matmul(&self.weight)?
        } else {
            product(&flat, &self.weight)?
        };
        let y = match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out = dims;
        *out.last_mut().expect("an input has dimensions") = y.dim(1)?;
        y.reshape(out)
    }
}

/// `x Wᵀ` for `x` (rows, in) and `w` (out, in): one product whatever the
/// rows, the streaming kernel for few rows of f32 on the CPU.
pub fn product(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    let (rows, inputs) = x.dims2()?;
    let (outputs, w_inputs) = w.dims2()?;
    if rows > SKINNY
        || inputs != w_inputs
        || !matches!(w.device(), Device::Cpu)
        || w.dtype() != DType::F32
        || x.dtype() != DType::F32
        || !w.is_contiguous()
    {
        return x.matmul(&w.t()?);
    }
    let xs: Vec<f32> = x.flatten_all()?.to_vec1()?;
    let (storage, layout) = w.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return x.matmul(&w.t()?);
    };
    let weights = &cpu.as_slice::<f32>()?[layout.start_offset()..][..outputs * inputs];
    let out = skinny(&xs, weights, rows, inputs, outputs);
    drop(storage);
    Tensor::from_vec(out, (rows, outputs), x.device())
}

/// `x Wᵀ` for few rows: each task takes [`BLOCK`] weight rows and
/// multiplies them into every input row; results are written column-major
/// per block and transposed at the end (a few KB).
fn skinny(x: &[f32], w: &[f32], rows: usize, inputs: usize, outputs: usize) -> Vec<f32> {
    let mut by_column = vec![0f32; outputs * rows];
    by_column
        .par_chunks_mut(BLOCK * rows)
        .enumerate()
        .for_each(|(block, out)| {
            let w = &w[block * BLOCK * inputs..];
            block_dispatch(out, w, x, rows, inputs);
        });
    let mut out = vec![0f32; rows * outputs];
    for (j, col) in by_column.chunks(rows).enumerate() {
        for (r, v) in col.iter().enumerate() {
            out[r * outputs + j] = *v;
        }
    }
    out
}

/// [`block`] with AVX2 and fused multiply-add where the CPU has them (a
/// memory-bound product gains nothing from AVX-512), else portable code.
fn block_dispatch(out: &mut [f32], w: &[f32], x: &[f32], rows: usize, inputs: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features `avx2::block` is compiled for.
        return unsafe { avx2::block(out, w, x, rows, inputs) };
    }
    block(out, w, x, rows, inputs)
}

/// One task's outputs: `out` holds, per weight row of `w`, the dot
/// products with every input row (row length `inputs`).
fn block(out: &mut [f32], w: &[f32], x: &[f32], rows: usize, inputs: usize) {
    for (j, col) in out.chunks_mut(rows).enumerate() {
        let wj = &w[j * inputs..][..inputs];
        for (r, o) in col.iter_mut().enumerate() {
            let xr = &x[r * inputs..][..inputs];
            *o = wj.iter().zip(xr).map(|(a, b)| a * b).sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// As `super::block`, in tiles of `J` weight rows × `R` input rows:
    /// per 8 inputs, `J + R` loads feed `J × R` fused multiply-adds, and
    /// `J` weight rows stream at once.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block(out: &mut [f32], w: &[f32], x: &[f32], rows: usize, n: usize) {
        let cols = out.len() / rows;
        assert!(x.len() >= rows * n && w.len() >= cols * n);
        let mut r = 0;
        while r < rows {
            let xr = x.as_ptr().add(r * n);
            r += match rows - r {
                1 => rows_of::<4, 1>(out, w, xr, rows, r, n),
                2 => rows_of::<4, 2>(out, w, xr, rows, r, n),
                3 => rows_of::<2, 3>(out, w, xr, rows, r, n),
                _ => rows_of::<2, 4>(out, w, xr, rows, r, n),
            };
        }
    }

    /// Input rows `first..first + R` (at `x`) against every weight row of
    /// the block, `J` at a time; returns `R`.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn rows_of<const J: usize, const R: usize>(
        out: &mut [f32],
        w: &[f32],
        x: *const f32,
        rows: usize,
        first: usize,
        n: usize,
    ) -> usize {
        let cols = out.len() / rows;
        let mut j = 0;
        while j + J <= cols {
            let t = tile::<J, R>(w.as_ptr().add(j * n), x, n);
            for (jj, tr) in t.iter().enumerate() {
                out[(j + jj) * rows + first..][..R].copy_from_slice(tr);
            }
            j += J;
        }
        while j < cols {
            let t = tile::<1, R>(w.as_ptr().add(j * n), x, n);
            out[j * rows + first..][..R].copy_from_slice(&t[0]);
            j += 1;
        }
        R
    }

    /// Dot products of `J` weight rows at `w` with `R` input rows at `x`
    /// (rows `n` floats apart). Safety: both hold their rows.
    // Indexes: `acc[j][r]` is clearer than zipped iterators over a tile.
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn tile<const J: usize, const R: usize>(
        w: *const f32,
        x: *const f32,
        n: usize,
    ) -> [[f32; R]; J] {
        let mut acc = [[_mm256_setzero_ps(); R]; J];
        let whole = n / 8 * 8;
        let mut k = 0;
        while k < whole {
            if k % 16 == 0 {
                // The weight rows two tiles ahead: more reads in
                // flight than the prefetcher's streams make on their own.
                for j in 0..J {
                    _mm_prefetch::<_MM_HINT_T0>(w.wrapping_add((2 * J + j) * n + k) as *const i8);
                }
            }
            let wv: [__m256; J] = std::array::from_fn(|j| _mm256_loadu_ps(w.add(j * n + k)));
            for r in 0..R {
                let xv = _mm256_loadu_ps(x.add(r * n + k));
                for j in 0..J {
                    acc[j][r] = _mm256_fmadd_ps(wv[j], xv, acc[j][r]);
                }
            }
            k += 8;
        }
        std::array::from_fn(|j| {
            std::array::from_fn(|r| {
                let v = acc[j][r];
                let v = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
                let v = _mm_add_ps(v, _mm_movehl_ps(v, v));
                let v = _mm_add_ss(v, _mm_shuffle_ps(v, v, 1));
                let mut sum = _mm_cvtss_f32(v);
                for k in whole..n {
                    sum = (*w.add(j * n + k)).mul_add(*x.add(r * n + k), sum);
                }
                sum
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::attention::tests::max_diff;
    use super::*;

    #[test]
    fn every_row_count_gives_the_matrix_product() {
        let dev = Device::Cpu;
        for (inputs, outputs) in [(1024, 200), (37, 130), (16, 64)] {
            let w = Tensor::randn(0f32, 1.0, (outputs, inputs), &dev).unwrap();
            let b = Tensor::randn(0f32, 1.0, outputs, &dev).unwrap();
            let layer = Linear::new(w.clone(), Some(b.clone()));
            for rows in [1, 3, 4, 7, 16, 17, 40] {
                let x = Tensor::randn(0f32, 1.0, (rows, 1, inputs), &dev).unwrap();
                let want = x
                    .squeeze(1)
                    .unwrap()
                    .matmul(&w.t().unwrap())
                    .unwrap()
                    .broadcast_add(&b)
                    .unwrap();
                let got = layer.forward(&x).unwrap();
                // Stored (in, out), the same products.
                let many = layer.clone().for_many_rows().unwrap().forward(&x).unwrap();
                let diff = max_diff(&many, &got);
                assert!(diff < 1e-3, "transposed, {rows} rows: {diff}");
                // The portable kernel (other CPUs) gives the same.
                let xs: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
                let ws: Vec<f32> = w.flatten_all().unwrap().to_vec1().unwrap();
                let mut portable = vec![0f32; rows * outputs];
                block(&mut portable, &ws, &xs, rows, inputs);
                let fast: Vec<f32> = x
                    .squeeze(1)
                    .unwrap()
                    .matmul(&w.t().unwrap())
                    .unwrap()
                    .t()
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                let worst = portable
                    .iter()
                    .zip(&fast)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(worst < 1e-3, "portable, {rows} rows: {worst}");
                assert_eq!(got.dims(), [rows, 1, outputs]);
                let diff = max_diff(&got.squeeze(1).unwrap(), &want);
                assert!(diff < 1e-3, "{rows} rows, {inputs} in: {diff}");
            }
        }
    }
}
