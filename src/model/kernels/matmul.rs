//! Weights computed from the mapped checkpoint file, with no copy: with `load/mapped.rs`
//! (the mapping), the one module with `unsafe` (the raw `gemm` call).
//!
//! Copying 500 MB of weights into fresh anonymous memory costs a page fault per page, and on
//! virtual machines the kernel's first touch of memory is slow and erratic. A read-only
//! mapping computes straight from the page cache, which concurrent processes share. candle's
//! CPU storage owns its memory, so the matmuls that read a mapped weight run here, as a
//! custom op calling the same `gemm` crate candle calls.

use std::ops::Range;
use std::sync::Arc;

use anyhow::Result;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::load::mapped::MappedMatrix;

/// `x W + b` for `x` `(M, K)` contiguous f32 and a mapped `W`: stored `(K, N)` (HF's Conv1D),
/// or stored `(N, K)` and read transposed (the tied LM head, `x wteᵀ`). `b` `(N,)`, if any,
/// is added by the kernel itself (it starts from a destination filled with `b`).
/// Differentiable with respect to `x` only: the weight is a constant.
#[derive(Clone)]
pub struct MatMul {
    pub weight: MappedMatrix,
    pub transposed: bool,
    pub bias: Option<Arc<[f32]>>,
}

impl MatMul {
    /// `(K, N)` of the product's right-hand side.
    fn kn(&self) -> (usize, usize) {
        let (r, c) = self.weight.dims();
        match self.transposed {
            false => (r, c),
            true => (c, r),
        }
    }

    /// Applies the op to `x` `(M, K)`, which is made contiguous first if it is not.
    pub fn apply(self, x: &Tensor) -> Result<Tensor> {
        Ok(x.contiguous()?.apply_op1(self)?)
    }
}

impl CustomOp1 for MatMul {
    fn name(&self) -> &'static str {
        "mapped-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        use candle_core::bail;
        let CpuStorage::F32(x) = storage else {
            bail!("mapped-matmul: the input must be f32")
        };
        let Some((lo, hi)) = layout.contiguous_offsets() else {
            bail!("mapped-matmul: the input must be contiguous")
        };
        let (m, k) = layout.shape().dims2()?;
        let (wk, n) = self.kn();
        if k != wk || hi - lo != m * k {
            bail!("mapped-matmul: ({m}, {k}) times a ({wk}, {n}) weight")
        }
        if let Some(b) = self.bias.as_ref().filter(|b| b.len() != n) {
            bail!("mapped-matmul: a bias of {} for {n} outputs", b.len())
        }
        let x = &x[lo..hi];
        let w = self.weight.values();
        let mut dst = match &self.bias {
            Some(b) => b.repeat(m),
            None => vec![0f32; m * n],
        }; // (M, N)
           // The weight (K, N) row-major has strides (N, 1); stored (N, K) and read as its
           // transpose, (1, K).
        let (w_rs, w_cs) = match self.transposed {
            false => (n as isize, 1),
            true => (1, k as isize),
        };
        let threads = candle_core::utils::get_num_threads();
        if (1..=FEW_ROWS).contains(&m) && !self.transposed && k > 0 && n > 0 {
            // A few rows (a generated token, a short prompt) times a (K, N) weight: reading
            // the weight is the cost. gemm's kernels pad a few rows to their tile and read
            // the mapped blocks at about 15 GB/s. Each thread streams a contiguous band of
            // weight rows once (the prefetcher follows it) for all the input rows; the
            // bands' sums are added to the bias.
            let band = k.div_ceil(threads.max(1));
            let partial: Vec<Vec<f32>> = (0..k)
                .step_by(band)
                .collect::<Vec<_>>()
                .into_par_iter()
                .map(|k0| few_rows_times(x, m, k, k0..(k0 + band).min(k), &w[k0 * n..], n))
                .collect();
            for p in partial {
                dst.iter_mut().zip(p).for_each(|(d, p)| *d += p);
            }
        } else if m > 0 && n > 0 {
            let parallelism = match threads {
                0 | 1 => gemm::Parallelism::None,
                t => gemm::Parallelism::Rayon(t),
            };
            gemm_into(m, n, k, &mut dst, x, w, (w_rs, w_cs), parallelism);
        }
        Ok((CpuStorage::F32(dst), Shape::from((m, n))))
    }

    /// For y = x W + b: ∂/∂x = g Wᵀ, the same weight read the other way.
    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let back = MatMul {
            weight: self.weight.clone(),
            transposed: !self.transposed,
            bias: None,
        };
        let dx = back.apply(grad).map_err(candle_core::Error::wrap)?;
        Ok(Some(dx))
    }
}

/// Up to this many input rows take [`few_rows_times`] rather than gemm (measured in process:
/// 1 row 24.5 → 23.5 ms, 8 rows 44 → 40 ms; at 16 rows gemm was faster).
const FEW_ROWS: usize = 8;

/// `Σ_{k in band} x[r, k]·w[k, :]` for every row r of `x` `(m, k_all)`, with `w` the band's
/// rows of `n` values from `w[0]`: `(m, n)` row-major. With AVX-512 where the CPU has it.
fn few_rows_times(
    x: &[f32],
    m: usize,
    k_all: usize,
    band: Range<usize>,
    w: &[f32],
    n: usize,
) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("fma")
    {
        // The CPU has AVX-512F and FMA (checked just above), the features the function is
        // compiled for and the only requirement of calling it; its body is safe code.
        // SAFETY: the target features `few_rows_times_avx512` needs are present.
        return unsafe { few_rows_times_avx512(x, m, k_all, band, w, n) };
    }
    few_rows_times_body(x, m, k_all, band, w, n)
}

/// [`few_rows_times_body`] compiled for AVX-512 (16 floats a vector, fused multiply-add).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
fn few_rows_times_avx512(
    x: &[f32],
    m: usize,
    k_all: usize,
    band: Range<usize>,
    w: &[f32],
    n: usize,
) -> Vec<f32> {
    few_rows_times_body(x, m, k_all, band, w, n)
}

#[inline(always)]
fn few_rows_times_body(
    x: &[f32],
    m: usize,
    k_all: usize,
    band: Range<usize>,
    w: &[f32],
    n: usize,
) -> Vec<f32> {
    let mut y = vec![0f32; m * n];
    let row = |k: usize| &w[k * n..(k + 1) * n];
    let rows = band.len();
    // Eight weight rows at a time, used by every input row while they are in cache: each
    // y row is read and written once per eight weight rows.
    let mut k = 0;
    while k + 8 <= rows {
        let [r0, r1, r2, r3, r4, r5, r6, r7]: [&[f32]; 8] = std::array::from_fn(|i| row(k + i));
        // Every row is n long, as each y row: the indexing below needs no checks.
        let (r0, r1, r2, r3) = (&r0[..n], &r1[..n], &r2[..n], &r3[..n]);
        let (r4, r5, r6, r7) = (&r4[..n], &r5[..n], &r6[..n], &r7[..n]);
        for (r, y) in y.chunks_exact_mut(n).enumerate() {
            let xr = &x[r * k_all + band.start + k..];
            let a: [f32; 8] = std::array::from_fn(|i| xr[i]);
            let y = &mut y[..n];
            for i in 0..n {
                let s0 = a[0] * r0[i] + a[1] * r1[i] + a[2] * r2[i] + a[3] * r3[i];
                let s1 = a[4] * r4[i] + a[5] * r5[i] + a[6] * r6[i] + a[7] * r7[i];
                y[i] += s0 + s1;
            }
        }
        k += 8;
    }
    for k in k..rows {
        for (r, y) in y.chunks_exact_mut(n).enumerate() {
            let xk = x[r * k_all + band.start + k];
            y.iter_mut().zip(row(k)).for_each(|(y, &w)| *y += xk * w);
        }
    }
    y
}

/// `dst := dst + x·w` for `dst` `(m, n)` row-major, `x` `(m, k)` row-major and `w` a
/// `(k, n)` matrix with strides `(rs, cs)` starting at `w[0]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn gemm_into(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    x: &[f32],
    w: &[f32],
    (rs, cs): (isize, isize),
    parallelism: gemm::Parallelism,
) {
    if m == 0 || n == 0 || k == 0 {
        return; // x·w is empty or zero: dst stays
    }
    // The extents the kernel touches, from the strides: checked, so the pointers below
    // cannot reach past the slices.
    let w_last = (k - 1) * rs as usize + (n - 1) * cs as usize;
    assert!(dst.len() == m * n && x.len() >= m * k && w.len() > w_last);
    // Every pointer covers the extent gemm reads or writes with the strides given
    // (asserted above: dst is m·n values, x at least m·k, w reaches w[(k-1)·rs + (n-1)·cs]).
    // The slices are borrowed for the call, dst mutably (no aliasing); the weight's
    // mapping outlives it (the caller's `MappedMatrix` holds its Arc) and nothing writes
    // to it. dst := 1·dst + 1·x·w, with dst holding the bias or zeros.
    // SAFETY: in-bounds, non-aliasing pointers to live memory (see above).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            true,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            cs,
            rs,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::mapped::Mapping;
    use candle_core::Device;
    use std::io::Write;

    /// A mapping of `values` (as f32 bytes) after `pad` bytes of zeros.
    fn mapping(values: &[f32], pad: usize) -> (Arc<Mapping>, tempfile::NamedTempFile) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&vec![0u8; pad]).unwrap();
        f.write_all(bytemuck::cast_slice(values)).unwrap();
        f.flush().unwrap();
        (Mapping::new(f.as_file()).unwrap(), f)
    }

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect()
    }

    #[test]
    fn conv1d_and_transposed_products_equal_candles_matmul() {
        // A few rows (our own kernel, its bands split across threads) and more (gemm); 33
        // weight rows leave a remainder after the blocks of eight.
        for (m, n) in [
            (1, 19),
            (7, 19),
            (8, 19),
            (9, 19),
            (40, 19),
            (1, 1000),
            (8, 1000),
        ] {
            products_equal_candles_matmul(m, n);
        }
    }

    fn diff(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        d.to_scalar().unwrap()
    }

    /// The op's gradient with respect to `x` against candle's of `plain`, relative to the
    /// largest value (sums of up to 1000 products round in f32).
    fn gradient_matches(op: MatMul, x: &Tensor, plain: impl Fn(&Tensor) -> Tensor, seed: f32) {
        let (m, n) = plain(x).dims2().unwrap();
        let g = Tensor::from_vec(values(m * n, seed), (m, n), &Device::Cpu).unwrap();
        let xv = candle_core::Var::from_tensor(x).unwrap();
        let grad_of = |y: Tensor| (y * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let ours = grad_of(op.apply(xv.as_tensor()).unwrap());
        let theirs = grad_of(plain(xv.as_tensor()));
        let (ours, theirs) = (ours.get(&xv).unwrap(), theirs.get(&xv).unwrap());
        let scale: f32 = theirs
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        let d = diff(ours, theirs) / scale.max(1.0);
        assert!(d < 1e-5, "({m}, {n}): gradients differ by {d}");
    }

    fn products_equal_candles_matmul(m: usize, n: usize) {
        let k = 33;
        let w = values(k * n, 1.0);
        let b = values(n, 2.0);
        let (map, _f) = mapping(&w, 8);
        let mw = MappedMatrix::new(&map, 8..8 + k * n * 4, k, n).unwrap();
        let x = Tensor::from_vec(values(m * k, 3.0), (m, k), &Device::Cpu).unwrap();
        let wt = Tensor::from_vec(w.clone(), (k, n), &Device::Cpu).unwrap();
        let bt = Tensor::from_vec(b.clone(), n, &Device::Cpu).unwrap();
        let want = x.matmul(&wt).unwrap().broadcast_add(&bt).unwrap();
        let op = MatMul {
            weight: mw,
            transposed: false,
            bias: Some(b.clone().into()),
        };
        let got = op.clone().apply(&x).unwrap();
        assert!(diff(&got, &want) < 1e-5);
        // Its gradient with respect to x: g Wᵀ, as candle differentiates its own matmul.
        gradient_matches(op, &x, |x| x.matmul(&wt).unwrap(), 5.0);

        // The same bytes as an (N, K) matrix read transposed: x · Wᵀ.
        let mt = MappedMatrix::new(&map, 8..8 + k * n * 4, n, k).unwrap();
        let x2 = Tensor::from_vec(values(m * k, 4.0), (m, k), &Device::Cpu).unwrap();
        let wt2 = Tensor::from_vec(w, (n, k), &Device::Cpu).unwrap();
        let want = x2.matmul(&wt2.t().unwrap()).unwrap();
        // A non-contiguous input is made contiguous first.
        let x2t = x2.t().unwrap().contiguous().unwrap().t().unwrap();
        let op = MatMul {
            weight: mt,
            transposed: true,
            bias: None,
        };
        let got = op.clone().apply(&x2t).unwrap();
        assert!(diff(&got, &want) < 1e-5);
        gradient_matches(op, &x2, |x| x.matmul(&wt2.t().unwrap()).unwrap(), 6.0);
    }

    #[test]
    fn misaligned_or_short_bytes_are_refused_and_gather_checks_ids() {
        let w = values(12, 0.0);
        let (map, _f) = mapping(&w, 2);
        assert!(
            MappedMatrix::new(&map, 2..2 + 48, 3, 4).is_none(),
            "misaligned"
        );
        let (map, _f) = mapping(&w, 4);
        assert!(MappedMatrix::new(&map, 4..4 + 44, 3, 4).is_none(), "short");
        assert!(
            MappedMatrix::new(&map, 4..4 + 52, 3, 4).is_none(),
            "past the end"
        );
        let mm = MappedMatrix::new(&map, 4..4 + 48, 3, 4).unwrap();
        assert_eq!(mm.gather(&[2, 0]).unwrap(), [&w[8..12], &w[0..4]].concat());
        let err = mm.gather(&[3]).unwrap_err().to_string();
        assert!(err.contains("id 3 is out of range"), "{err}");
    }

    #[test]
    fn wrong_inputs_are_errors_not_reads_out_of_bounds() {
        let w = values(12, 0.0);
        let (map, _f) = mapping(&w, 0);
        let mm = MappedMatrix::new(&map, 0..48, 3, 4).unwrap();
        let op = |bias: Option<&[f32]>| MatMul {
            weight: mm.clone(),
            transposed: false,
            bias: bias.map(Into::into),
        };
        let x = Tensor::zeros((2, 5), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(op(None).apply(&x).is_err(), "K mismatch");
        let x = Tensor::zeros((2, 3), candle_core::DType::F64, &Device::Cpu).unwrap();
        assert!(op(None).apply(&x).is_err(), "f64");
        let x = Tensor::zeros((2, 3), candle_core::DType::F32, &Device::Cpu).unwrap();
        assert!(op(Some(&[1.0; 3])).apply(&x).is_err(), "bias length");
        assert_eq!(
            op(Some(&[1.0; 4]))
                .apply(&x)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap(),
            vec![vec![1.0; 4]; 2]
        );
    }
}
