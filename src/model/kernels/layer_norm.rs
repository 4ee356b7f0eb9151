//! Layer norm over the last axis with a backward rule: candle's fused CPU kernel's own
//! arithmetic (so the forward numbers are the ones `candle_nn::ops::layer_norm` gives,
//! bit for bit), differentiable with respect to its input. The weight and bias are
//! constants: no gradient is computed for them.

use candle_core::{CpuStorage, CustomOp3, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;

/// `(x - mean) / sqrt(var + eps) * w + b` over the last axis of `x` `(…, C)`, `w` and `b`
/// `(C,)`.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f32) -> candle_core::Result<Tensor> {
    match (x.device(), x.dtype(), w.dtype(), b.dtype()) {
        (Device::Cpu, DType::F32, DType::F32, DType::F32) => {
            x.contiguous()?
                .apply_op3(&w.contiguous()?, &b.contiguous()?, LayerNorm { eps })
        }
        _ => candle_nn::ops::layer_norm(x, w, b, eps),
    }
}

struct LayerNorm {
    eps: f32,
}

fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Ok(&data[start..end]),
        _ => candle_core::bail!("layer norm takes contiguous f32 tensors"),
    }
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "layer-norm-with-backward"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, w, b) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let c = l1.shape().dims().last().copied().unwrap_or(0);
        if c == 0 || w.len() != c || b.len() != c {
            candle_core::bail!(
                "layer norm: input {:?}, weight {:?}, bias {:?}",
                l1.dims(),
                l2.dims(),
                l3.dims()
            );
        }
        let eps = self.eps;
        let mut dst = vec![0f32; x.len()];
        // candle-nn's kernel, line for line: one pass for the sums, var = E[x²] − mean².
        x.par_chunks(c)
            .zip(dst.par_chunks_mut(c))
            .for_each(|(src, dst)| {
                let (mut sum, mut sum2) = (0f32, 0f32);
                for &v in src {
                    sum += v;
                    sum2 += v * v;
                }
                let mean = sum / c as f32;
                let var = sum2 / c as f32 - mean * mean;
                let inv_std = (var + eps).sqrt().recip();
                for ((d, &s), (&w, &b)) in dst.iter_mut().zip(src).zip(w.iter().zip(b)) {
                    *d = (s - mean) * inv_std * w + b;
                }
            });
        Ok((CpuStorage::F32(dst), l1.shape().clone()))
    }

    /// With x̂ = (x − mean)·r, r = 1/sqrt(var + eps), and ĝ = g·w:
    /// ∂/∂x = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), row by row, in f64.
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let xs = x.flatten_all()?.to_vec1::<f32>()?;
        let gs = grad.flatten_all()?.to_vec1::<f32>()?;
        let w = w.to_vec1::<f32>()?;
        let c = w.len();
        let eps = self.eps as f64;
        let mut dx = vec![0f32; xs.len()];
        dx.par_chunks_mut(c)
            .zip(xs.par_chunks(c).zip(gs.par_chunks(c)))
            .for_each(|(dx, (x, g))| {
                let n = c as f64;
                let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
                let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
                let r = 1.0 / (var + eps).sqrt();
                let xhat = |i: usize| (x[i] as f64 - mean) * r;
                let ghat = |i: usize| g[i] as f64 * w[i] as f64;
                let mean_g = (0..c).map(ghat).sum::<f64>() / n;
                let mean_gx = (0..c).map(|i| ghat(i) * xhat(i)).sum::<f64>() / n;
                for (i, dx) in dx.iter_mut().enumerate() {
                    *dx = (r * (ghat(i) - mean_g - xhat(i) * mean_gx)) as f32;
                }
            });
        let dx = Tensor::from_vec(dx, x.shape(), x.device())?;
        Ok((Some(dx), None, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Var, D};

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn forward_is_candles_fused_kernel_and_backward_its_derivative() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Var::randn(0.5f32, 2.0, (2, 3, 16), &dev)?;
        let w = Tensor::randn(1f32, 0.3, 16, &dev)?;
        let b = Tensor::randn(0f32, 0.3, 16, &dev)?;
        let eps = 1e-5;
        let ours = layer_norm(x.as_tensor(), &w, &b, eps)?;
        let fused = candle_nn::ops::layer_norm(x.as_tensor(), &w, &b, eps)?;
        assert_eq!(max_diff(&ours, &fused), 0.0, "not candle's arithmetic");

        // The gradient of Σ y·k against candle's differentiation of the unfused ops.
        let k = Tensor::randn(0f32, 1.0, (2, 3, 16), &dev)?;
        let centred = x
            .as_tensor()
            .broadcast_sub(&x.as_tensor().mean_keepdim(D::Minus1)?)?;
        let scale = (centred.sqr()?.mean_keepdim(D::Minus1)? + eps as f64)?.sqrt()?;
        let plain = centred
            .broadcast_div(&scale)?
            .broadcast_mul(&w)?
            .broadcast_add(&b)?;
        let g_ours = (ours * &k)?.sum_all()?.backward()?;
        let g_plain = (plain * &k)?.sum_all()?.backward()?;
        let diff = max_diff(g_ours.get(&x).unwrap(), g_plain.get(&x).unwrap());
        assert!(diff < 1e-5, "gradient differs by {diff}");
        Ok(())
    }
}
