//! Products with a weight kept in half precision (bf16 or f16) on the CPU, as torch's
//! `addmm` computes them: the sums in f32, the bias added in f32, the result rounded once.
//!
//! candle widens a bf16 weight to f32 whole at every product (500 MB written per forward
//! pass of gpt2); here the weight stays in half precision (half the bytes to read) and is
//! widened a panel of columns at a time into a buffer the cache holds, which gemm's f32
//! kernels multiply; the panels run in parallel. The arithmetic is gemm's f32 product of
//! the widened values, so the numbers are the ones widening the whole weight gives.

use std::sync::Arc;

use anyhow::Result;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};
use half::slice::HalfFloatSliceExt;
use half::vec::HalfFloatVecExt;
use half::{bf16, f16};
use rayon::prelude::*;

use super::matmul::gemm_into;

/// `x W + b` for `x` `(M, K)` and `W` in bf16 or f16 (`x` in the same dtype): stored
/// `(K, N)` (HF's Conv1D), or stored `(N, K)` and read transposed (the tied LM head).
/// `b` `(N,)`, if any, in f32. The result `(M, N)` in the dtype. Not differentiable (the
/// gradient commands run in f32).
pub struct HalfMatMul {
    pub transposed: bool,
    pub bias: Option<Arc<[f32]>>,
}

impl HalfMatMul {
    pub fn apply(&self, x: &Tensor, w: &Tensor) -> Result<Tensor> {
        Ok(x.contiguous()?.apply_op2_no_bwd(&w.contiguous()?, self)?)
    }
}

/// The widened panel's size in bytes at most: a cache's share of one core.
const PANEL_BYTES: usize = 512 << 10;

impl CustomOp2 for HalfMatMul {
    fn name(&self) -> &'static str {
        "half-matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        use candle_core::bail;
        let (m, k) = l1.shape().dims2()?;
        let (r, c) = l2.shape().dims2()?;
        let (wk, n) = if self.transposed { (c, r) } else { (r, c) };
        if k != wk {
            bail!("half-matmul: ({m}, {k}) times a ({wk}, {n}) weight")
        }
        if let Some(b) = self.bias.as_ref().filter(|b| b.len() != n) {
            bail!("half-matmul: a bias of {} for {n} outputs", b.len())
        }
        let dims = (m, k, n);
        let y = match (s1, s2) {
            (CpuStorage::BF16(x), CpuStorage::BF16(w)) => {
                let x = widened(contiguous(x, l1)?);
                let y = self.product(&x, dims, contiguous(w, l2)?);
                CpuStorage::BF16(Vec::from_f32_slice(&y))
            }
            (CpuStorage::F16(x), CpuStorage::F16(w)) => {
                // Not gemm's f16 kernels: their results are not one rounding of an f32
                // sum (a product of 8 terms was 3 f16 units off it), as torch's are.
                let x = widened(contiguous(x, l1)?);
                let y = self.product(&x, dims, contiguous(w, l2)?);
                CpuStorage::F16(Vec::from_f32_slice(&y))
            }
            _ => bail!("half-matmul: x and the weight in bf16, or both in f16"),
        };
        Ok((y, Shape::from((m, n))))
    }
}

/// A half-precision element type widened to f32 a slice at a time (F16C for f16 where the
/// CPU has it).
trait Widen: Copy + Send + Sync {
    fn widen(src: &[Self], dst: &mut [f32]);
}

impl Widen for bf16 {
    /// A bf16 is the top half of an f32: widening is a shift, exact for every value
    /// (`half`'s conversion also quiets NaNs, which keeps the compiler from vectorizing it).
    fn widen(src: &[Self], dst: &mut [f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512f") {
            // The CPU has AVX-512F (checked just above), the only feature the function is
            // compiled for and the only requirement of calling it; its body is safe code.
            // SAFETY: the target feature `widen_bf16_avx512` needs is present.
            return unsafe { widen_bf16_avx512(src, dst) };
        }
        widen_bf16_body(src, dst)
    }
}

/// [`widen_bf16_body`] compiled for AVX-512 (16 values a vector).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn widen_bf16_avx512(src: &[bf16], dst: &mut [f32]) {
    widen_bf16_body(src, dst)
}

#[inline(always)]
fn widen_bf16_body(src: &[bf16], dst: &mut [f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f32::from_bits(u32::from(s.to_bits()) << 16);
    }
}

impl Widen for f16 {
    fn widen(src: &[Self], dst: &mut [f32]) {
        src.convert_to_f32_slice(dst)
    }
}

fn contiguous<'a, T>(v: &'a [T], l: &Layout) -> candle_core::Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((lo, hi)) => Ok(&v[lo..hi]),
        None => candle_core::bail!("half-matmul: the operands must be contiguous"),
    }
}

fn widened<T: Widen>(v: &[T]) -> Vec<f32> {
    let mut out = vec![0f32; v.len()];
    T::widen(v, &mut out);
    out
}

impl HalfMatMul {
    /// `x W + b` in f32, `(M, N)` row-major, a panel of columns of `W` at a time.
    fn product<T: Widen>(&self, x: &[f32], (m, k, n): (usize, usize, usize), w: &[T]) -> Vec<f32> {
        let width = (PANEL_BYTES / (4 * k.max(1))).clamp(16, n.max(16)) / 16 * 16;
        let starts: Vec<usize> = (0..n).step_by(width).collect();
        // One widening buffer per task, reused from panel to panel (a fresh one each time
        // would be zeroed page by page).
        let panels: Vec<Vec<f32>> = (starts.par_iter())
            .map_init(
                || vec![0f32; k * width],
                |buf, &j0| self.panel(x, (m, k, n), w, (j0..(j0 + width).min(n), buf)),
            )
            .collect();
        let mut y = vec![0f32; m * n];
        for (&j0, p) in starts.iter().zip(&panels) {
            let pw = p.len() / m.max(1);
            for (row, part) in y.chunks_exact_mut(n).zip(p.chunks_exact(pw.max(1))) {
                row[j0..j0 + pw].copy_from_slice(part);
            }
        }
        y
    }

    /// Columns `cols` of `x W + b`: `(M, cols)` row-major.
    fn panel<T: Widen>(
        &self,
        x: &[f32],
        (m, k, n): (usize, usize, usize),
        w: &[T],
        (cols, buf): (std::ops::Range<usize>, &mut [f32]),
    ) -> Vec<f32> {
        let pw = cols.len();
        let buf = &mut buf[..k * pw];
        // The panel as a (K, pw) matrix: rows of W's columns when stored (K, N), W's rows
        // (contiguous) read transposed when stored (N, K).
        let strides = match self.transposed {
            false => {
                for (kk, b) in buf.chunks_exact_mut(pw).enumerate() {
                    T::widen(&w[kk * n + cols.start..kk * n + cols.end], b);
                }
                (pw as isize, 1)
            }
            true => {
                T::widen(&w[cols.start * k..cols.end * k], buf);
                (1, k as isize)
            }
        };
        let mut dst = match &self.bias {
            Some(b) => b[cols].repeat(m),
            None => vec![0f32; m * pw],
        };
        gemm_into(m, pw, k, &mut dst, x, buf, strides, gemm::Parallelism::None);
        dst
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn tensor(rows: usize, cols: usize, seed: f32, dtype: DType) -> Tensor {
        let v: Vec<f32> = (0..rows * cols)
            .map(|i| (i as f32 * 0.37 + seed).sin())
            .collect();
        let t = Tensor::from_vec(v, (rows, cols), &Device::Cpu).unwrap();
        t.to_dtype(dtype).unwrap()
    }

    /// The product widened whole, plus the bias, in f32, rounded once to `dtype`.
    fn widened_whole(x: &Tensor, w: &Tensor, b: Option<&Tensor>, dtype: DType) -> Vec<f32> {
        let f = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
        let mut y = f(x).matmul(&f(w)).unwrap();
        if let Some(b) = b {
            y = y.broadcast_add(b).unwrap();
        }
        let y = y.to_dtype(dtype).unwrap().to_dtype(DType::F32).unwrap();
        y.flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn bf16_widens_exactly_every_value() {
        let all: Vec<bf16> = (0..=u16::MAX).map(bf16::from_bits).collect();
        let mut got = vec![0f32; all.len()];
        bf16::widen(&all, &mut got);
        for (b, g) in all.iter().zip(&got) {
            let want = b.to_f32();
            assert!(
                g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()),
                "{b:?}"
            );
        }
    }

    #[test]
    fn panels_give_the_whole_widened_product_bit_for_bit() {
        for dtype in [DType::BF16, DType::F16] {
            // Panels of several widths: one column short of a panel, several panels and a
            // remainder, a transposed weight.
            for (m, k, n) in [(1, 8, 5), (3, 40, 300), (17, 200, 1000), (0, 4, 4)] {
                let x = tensor(m, k, 0.1, dtype);
                let w = tensor(k, n, 0.7, dtype);
                let b = Tensor::from_vec((0..n).map(|i| i as f32 / 7.0).collect(), n, &Device::Cpu);
                let b = b.unwrap();
                let bias: Arc<[f32]> = b.to_vec1::<f32>().unwrap().into();
                let op = HalfMatMul {
                    transposed: false,
                    bias: Some(bias),
                };
                let got = op.apply(&x, &w).unwrap();
                assert_eq!(got.dtype(), dtype);
                let got: Vec<f32> = got
                    .to_dtype(DType::F32)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1()
                    .unwrap();
                assert_eq!(
                    got,
                    widened_whole(&x, &w, Some(&b), dtype),
                    "{dtype:?} {m}×{k}×{n}"
                );
                let wt = w.t().unwrap().contiguous().unwrap(); // (N, K)
                let op = HalfMatMul {
                    transposed: true,
                    bias: None,
                };
                let got = op.apply(&x, &wt).unwrap().to_dtype(DType::F32).unwrap();
                let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
                assert_eq!(
                    got,
                    widened_whole(&x, &w, None, dtype),
                    "{dtype:?} transposed"
                );
            }
        }
    }
}
