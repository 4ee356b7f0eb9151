//! GPT-2's GELU (`gelu_new`, the tanh approximation) on the CPU, vectorizable and on every
//! core.
//!
//! candle computes it with the C library's scalar `tanhf` on one thread: at T = 1024 that was
//! a fifth of a forward pass. Here `0.5·x·(1 + tanh(u))` is written as `x·sigmoid(2u)`
//! (the same function: `1 + tanh(u) = 2 / (1 + e^{-2u})`), and `e^y` as `2^n · p(r)`
//! with a polynomial, which the compiler turns into SIMD code.

use candle_core::{CpuStorage, CustomOp1, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

/// `gelu_new(x) = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))`, elementwise, with its
/// derivative for the backward pass.
pub fn gelu_tanh(x: &Tensor) -> candle_core::Result<Tensor> {
    match (x.device(), x.dtype()) {
        (Device::Cpu, DType::F32) => x.contiguous()?.apply_op1(GeluTanh),
        (Device::Cpu, DType::BF16) => gelu_half(x, Half::Bf16),
        (Device::Cpu, DType::F16) => gelu_half(x, Half::F16),
        _ => x.gelu(),
    }
}

/// A half-precision dtype, for arithmetic that rounds to it.
#[derive(Clone, Copy)]
enum Half {
    Bf16,
    F16,
}

impl Half {
    /// `v` rounded to the dtype (to nearest, ties to even), as an f32.
    fn round(self, v: f32) -> f32 {
        match self {
            Half::Bf16 => half::bf16::from_f32(v).to_f32(),
            Half::F16 => half::f16::from_f32(v).to_f32(),
        }
    }

    /// `torch.pow(x, 3.0)` on a tensor of the dtype: bf16 rounds the square first, f16
    /// takes the cube in f32.
    fn cube(self, x: f32) -> f32 {
        match self {
            Half::Bf16 => self.round(self.round(x * x) * x),
            Half::F16 => self.round(x * x * x),
        }
    }
}

/// `gelu_new` in half precision as transformers' `NewGELUActivation` computes it with
/// torch, `0.5 * x * (1 + tanh(√(2/π) * (x + 0.044715 * x³)))`: each of its operations in
/// f32 (torch's arithmetic type for half tensors) and its result rounded to the dtype.
/// Rounding once at the end would be more exact but another number than the peer's.
fn gelu_half(x: &Tensor, dtype: Half) -> candle_core::Result<Tensor> {
    const C: f32 = 0.797_884_6; // √(2/π), as torch takes the Python scalar
    const A: f32 = 0.044_715;
    let r = |v: f32| dtype.round(v);
    let step = |x: f32| {
        let inner = r(C * r(x + r(A * dtype.cube(x))));
        r(r(0.5 * x) * r(1.0 + r(inner.tanh())))
    };
    let values = x.flatten_all()?.to_dtype(DType::F32)?.to_vec1::<f32>()?;
    let mut y = vec![0f32; values.len()];
    y.par_chunks_mut(CHUNK)
        .zip(values.par_chunks(CHUNK))
        .for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(y, &x)| *y = step(x)));
    Tensor::from_vec(y, x.shape(), x.device())?.to_dtype(x.dtype())
}

struct GeluTanh;

/// Elements per parallel task: large enough to amortize the task, small enough to split a
/// (T, 4C) activation across cores.
const CHUNK: usize = 1 << 14;

impl CustomOp1 for GeluTanh {
    fn name(&self) -> &'static str {
        "gelu-tanh"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = match (storage, layout.contiguous_offsets()) {
            (CpuStorage::F32(data), Some((start, end))) => &data[start..end],
            _ => candle_core::bail!("gelu-tanh takes a contiguous f32 tensor"),
        };
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(y, x)| y.iter_mut().zip(x).for_each(|(y, &x)| *y = gelu(x)));
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    /// `grad · gelu'(x)`, elementwise.
    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let values = x.flatten_all()?.to_vec1::<f32>()?;
        let mut d = vec![0f32; values.len()];
        d.par_chunks_mut(CHUNK)
            .zip(values.par_chunks(CHUNK))
            .for_each(|(d, x)| d.iter_mut().zip(x).for_each(|(d, &x)| *d = gelu_grad(x)));
        let d = Tensor::from_vec(d, x.shape(), x.device())?;
        Ok(Some(grad.mul(&d)?))
    }
}

const SQRT_2_OVER_PI: f32 = 0.797_884_6;

#[inline(always)]
fn gelu(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x * x);
    x / (1.0 + exp(-2.0 * u))
}

/// gelu'(x) for gelu = x·s, s = sigmoid(2u): s + x·s·(1 − s)·2u', with u' = √(2/π)·(1 +
/// 3·0.044715·x²).
#[inline(always)]
fn gelu_grad(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * x * (1.0 + 0.044715 * x * x);
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * x * x);
    let s = 1.0 / (1.0 + exp(-2.0 * u));
    s + x * s * (1.0 - s) * 2.0 * du
}

/// `e^y` within about 2 ulp for |y| ≤ 87; beyond, the bounds' values (`e^{-87}` is far below
/// what `1 + e^y` can tell from 1, and `x / (1 + e^{87})` is 0 to f32).
#[inline(always)]
fn exp(y: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // ln 2 split in two so that n·LN2_HI is exact (Cody–Waite).
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5·2^23 rounds to the nearest integer without a branch.
    const ROUND: f32 = 12_582_912.0;
    let y = y.clamp(-87.0, 87.0);
    let n = (y * LOG2_E + ROUND) - ROUND;
    let r = y - n * LN2_HI - n * LN2_LO; // |r| ≤ ln2/2
                                         // e^r by its Taylor series to r^6/6! (error below 2^-24 for |r| ≤ 0.35), Horner form.
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let two_n = f32::from_bits(((n as i32 + 127) as u32) << 23); // 2^n, n in [-126, 126]
    p * two_n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition in f64, as torch's `gelu(approximate="tanh")` computes it.
    fn reference(x: f64) -> f64 {
        let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
        0.5 * x * (1.0 + u.tanh())
    }

    #[test]
    fn exp_is_within_a_few_ulp() {
        let mut y = -87.0f32;
        while y <= 87.0 {
            let want = (y as f64).exp();
            let got = exp(y) as f64;
            assert!(
                ((got - want) / want).abs() < 4e-7,
                "exp({y}) = {got}, want {want}"
            );
            y += 0.0137;
        }
    }

    #[test]
    fn gelu_matches_its_definition_everywhere() {
        let xs: Vec<f32> = (-200_000..=200_000)
            .map(|i| i as f32 * 1e-4)
            .chain([-1e30, -100.0, -20.0, 20.0, 100.0, 1e30, 0.0, -0.0, 1e-30])
            .collect();
        for &x in &xs {
            let want = reference(x as f64);
            let got = gelu(x) as f64;
            // Relative where the value is large, absolute (1e-7) near zero.
            let err = (got - want).abs() / want.abs().max(1.0);
            assert!(err < 1e-6, "gelu({x}) = {got}, want {want}");
        }
        let t = Tensor::new(xs.as_slice(), &Device::Cpu).unwrap();
        let got: Vec<f32> = gelu_tanh(&t).unwrap().to_vec1().unwrap();
        let want: Vec<f32> = t.gelu().unwrap().to_vec1().unwrap();
        for ((x, g), w) in xs.iter().zip(got).zip(want) {
            assert!(
                (g - w).abs() <= 1e-6 * w.abs().max(1.0),
                "{x}: {g} vs candle's {w}"
            );
        }
    }

    /// The derivative against the definition's, in f64.
    #[test]
    fn gelu_grad_matches_the_derivative() {
        let d = |x: f64| {
            let c = (2.0 / std::f64::consts::PI).sqrt();
            let u = c * (x + 0.044715 * x * x * x);
            let du = c * (1.0 + 3.0 * 0.044715 * x * x);
            0.5 * (1.0 + u.tanh()) + 0.5 * x * (1.0 - u.tanh().powi(2)) * du
        };
        for i in -100_000..=100_000 {
            let x = i as f32 * 2e-4;
            let (got, want) = (gelu_grad(x) as f64, d(x as f64));
            assert!((got - want).abs() < 2e-6, "gelu'({x}) = {got}, want {want}");
        }
        let x = Tensor::new(&[-3f32, -0.5, 0.0, 0.7, 4.0], &Device::Cpu).unwrap();
        let v = candle_core::Var::from_tensor(&x).unwrap();
        let g = gelu_tanh(v.as_tensor())
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let got: Vec<f32> = g.get(v.as_tensor()).unwrap().to_vec1().unwrap();
        for (&x, g) in [-3f32, -0.5, 0.0, 0.7, 4.0].iter().zip(got) {
            assert!(
                (g as f64 - d(x as f64)).abs() < 2e-6,
                "backward at {x}: {g}"
            );
        }
    }

    #[test]
    fn non_finite_inputs_stay_visible() {
        assert!(gelu(f32::NAN).is_nan());
        assert_eq!(gelu(f32::INFINITY), f32::INFINITY);
        // The definition gives -inf · 0 = NaN; either way not a number that could pass as one.
        assert!(!gelu(f32::NEG_INFINITY).is_finite());
    }
}
