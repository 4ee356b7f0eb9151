//! Softmax of masked causal attention scores, fused with the mask and touching only what a
//! query can see.
//!
//! Query i of T (after `Tk - T` cached positions) sees keys `0..=Tk - T + i`; the causal
//! mask makes every later score -inf, whose probability is exactly 0. `softmax(scores +
//! mask)` as separate ops writes the masked scores to fresh memory and exponentiates the
//! masked triangle too: at T = 1024 that is 50 MB and 6 M needless exps per layer.

use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor, D};
use rayon::prelude::*;

/// `softmax(scores + mask, dim = -1)` for scores `(B, nh, T, Tk)` and an additive mask
/// `(B or 1, 1, T, Tk)` that is -inf at least at every future key. The same arithmetic as
/// candle's `softmax_last_dim` (subtract the row's max, exponentiate, divide by the sum) on
/// the visible keys; future keys get 0. Differentiable with respect to the scores.
pub fn masked_softmax(scores: &Tensor, mask: &Tensor) -> candle_core::Result<Tensor> {
    match (scores.device(), scores.dtype(), mask.dtype()) {
        (Device::Cpu, DType::F32, DType::F32) => scores
            .contiguous()?
            .apply_op2(&mask.contiguous()?, MaskedSoftmax),
        // Half precision widened, computed as in f32 and rounded once (as torch's CPU
        // softmax does with its f32 accumulator): candle's sums the row in bf16.
        (Device::Cpu, dtype @ (DType::BF16 | DType::F16), _) => {
            let (scores, mask) = (scores.to_dtype(DType::F32)?, mask.to_dtype(DType::F32)?);
            masked_softmax(&scores, &mask)?.to_dtype(dtype)
        }
        _ => candle_nn::ops::softmax_last_dim(&scores.broadcast_add(mask)?),
    }
}

struct MaskedSoftmax;

fn f32_slice<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    match (storage, layout.contiguous_offsets()) {
        (CpuStorage::F32(data), Some((start, end))) => Ok(&data[start..end]),
        _ => candle_core::bail!("masked softmax takes contiguous f32 tensors"),
    }
}

impl CustomOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "masked-causal-softmax"
    }

    fn cpu_fwd(
        &self,
        s_storage: &CpuStorage,
        s_layout: &Layout,
        m_storage: &CpuStorage,
        m_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (scores, mask) = (
            f32_slice(s_storage, s_layout)?,
            f32_slice(m_storage, m_layout)?,
        );
        let (b, nh, t, tk) = s_layout.shape().dims4()?;
        let (mb, _, mt, mtk) = m_layout.shape().dims4()?;
        if tk < t || (mb != 1 && mb != b) || (mt, mtk) != (t, tk) {
            candle_core::bail!(
                "masked softmax: scores {:?} and mask {:?} do not fit",
                s_layout.dims(),
                m_layout.dims()
            );
        }
        let mut probs = vec![0f32; scores.len()];
        probs
            .par_chunks_mut(tk)
            .zip(scores.par_chunks(tk))
            .enumerate()
            .for_each(|(row, (p, s))| {
                let (seq, i) = (row / (nh * t), row % t);
                let m = &mask[((seq % mb) * t + i) * tk..][..tk];
                let visible = tk - t + i + 1;
                let (p, s, m) = (&mut p[..visible], &s[..visible], &m[..visible]);
                for ((p, &s), &m) in p.iter_mut().zip(s).zip(m) {
                    *p = s + m;
                }
                let max = p.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mut sum = 0f32;
                for p in p.iter_mut() {
                    *p = (*p - max).exp();
                    sum += *p;
                }
                for p in p.iter_mut() {
                    *p /= sum;
                }
            });
        Ok((CpuStorage::F32(probs), s_layout.shape().clone()))
    }

    /// For p = softmax(s + m): ∂/∂s = p ⊙ (g − Σ_j g_j p_j) row by row (0 where p is);
    /// the mask is a constant.
    fn bwd(
        &self,
        _scores: &Tensor,
        _mask: &Tensor,
        p: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dot = (grad * p)?.sum_keepdim(D::Minus1)?; // (B, nh, T, 1)
        Ok((Some((grad.broadcast_sub(&dot)? * p)?), None))
    }
}

/// `softmax(q·scale·kᵀ + mask)` for q `(B, nh, T, hs)`, k `(B, nh, Tk, hs)` and the mask
/// of [`masked_softmax`], as one differentiable op whose backward needs only q, k and the
/// pattern: the T × Tk scores are made inside and dropped, so a backward pass does not hold
/// them (at 1,024 tokens, 48 MB per layer on gpt2). The forward is the same arithmetic as
/// `masked_softmax(&(q * scale)?.matmul(&k.t()?)?, mask)`, which it falls back to off the CPU
/// or in half precision.
pub fn attention_pattern(
    q: &Tensor,
    k: &Tensor,
    scale: f64,
    mask: &Tensor,
) -> candle_core::Result<Tensor> {
    match (q.device(), q.dtype(), k.dtype(), mask.dtype()) {
        (Device::Cpu, DType::F32, DType::F32, DType::F32) => q.contiguous()?.apply_op2(
            &k.contiguous()?,
            AttentionPattern {
                scale,
                mask: mask.contiguous()?,
            },
        ),
        _ => masked_softmax(&scaled_scores(q, k, scale)?, mask),
    }
}

/// The attention scores `q kᵀ · scale` `(B, nh, T, Tk)` for q `(B, nh, T, hs)` and k
/// `(B, nh, Tk, hs)`. In f32 q is scaled first: T·C products rather than T·Tk per head,
/// the same sum (for GPT-2's 1/√64 = 1/8, exactly). In half precision as torch computes
/// it: the product rounded, then scaled in f32 and rounded again (scaling q first would
/// round the other way where the scale is not a power of two).
pub fn scaled_scores(q: &Tensor, k: &Tensor, scale: f64) -> candle_core::Result<Tensor> {
    match q.dtype() {
        dtype @ (DType::BF16 | DType::F16) => {
            let scores = q.matmul(&k.t()?)?.to_dtype(DType::F32)?;
            (scores * scale)?.to_dtype(dtype)
        }
        _ => (q * scale)?.matmul(&k.t()?),
    }
}

struct AttentionPattern {
    scale: f64,
    mask: Tensor,
}

impl CustomOp2 for AttentionPattern {
    fn name(&self) -> &'static str {
        "attention-pattern"
    }

    fn cpu_fwd(
        &self,
        q_storage: &CpuStorage,
        q_layout: &Layout,
        k_storage: &CpuStorage,
        k_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let q = Tensor::from_slice(
            f32_slice(q_storage, q_layout)?,
            q_layout.shape(),
            &Device::Cpu,
        )?;
        let k = Tensor::from_slice(
            f32_slice(k_storage, k_layout)?,
            k_layout.shape(),
            &Device::Cpu,
        )?;
        let p = masked_softmax(&(q * self.scale)?.matmul(&k.t()?)?, &self.mask)?;
        let shape = p.shape().clone();
        Ok((CpuStorage::F32(p.flatten_all()?.to_vec1()?), shape))
    }

    /// With ds = p ⊙ (g − Σ_j g_j p_j) (the softmax's backward) times the scale:
    /// ∂/∂q = ds·k and ∂/∂k = dsᵀ·q.
    fn bwd(
        &self,
        q: &Tensor,
        k: &Tensor,
        p: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dot = (grad * p)?.sum_keepdim(D::Minus1)?; // (B, nh, T, 1)
        let ds = ((grad.broadcast_sub(&dot)? * p)? * self.scale)?; // (B, nh, T, Tk)
        let dq = ds.matmul(k)?; // (B, nh, T, hs)
        let dk = ds.t()?.matmul(q)?; // (B, nh, Tk, hs)
        Ok((Some(dq), Some(dk)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the unfused ops, with 2 cached positions and a padded second sequence.
    #[test]
    fn equals_softmax_of_masked_scores() -> candle_core::Result<()> {
        let (b, nh, t, past) = (2, 3, 4, 2);
        let tk = past + t;
        let scores = Tensor::randn(0f32, 3.0, (b, nh, t, tk), &Device::Cpu)?;
        let real = [tk, tk - 1];
        let mask: Vec<f32> = (0..b * t * tk)
            .map(|n| {
                let (seq, i, j) = (n / (t * tk), n / tk % t, n % tk);
                if j > past + i || j >= real[seq] {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (b, 1, t, tk), &Device::Cpu)?;
        let fused = masked_softmax(&scores, &mask)?;
        let plain = candle_nn::ops::softmax_last_dim(&scores.broadcast_add(&mask)?)?;
        let diff = (fused - plain)?
            .abs()?
            .flatten_all()?
            .max(0)?
            .to_scalar::<f32>()?;
        assert!(diff <= 1e-7, "max |fused - plain| = {diff}");
        Ok(())
    }

    /// The backward rule against candle's own differentiation of exp / sum.
    #[test]
    fn gradient_equals_the_unfused_softmaxs() -> candle_core::Result<()> {
        let (b, nh, t) = (2, 2, 5);
        let scores = candle_core::Var::randn(0f32, 2.0, (b, nh, t, t), &Device::Cpu)?;
        let mask: Vec<f32> = (0..t * t)
            .map(|n| {
                if n % t > n / t {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (1, 1, t, t), &Device::Cpu)?;
        let weights = Tensor::randn(0f32, 1.0, (b, nh, t, t), &Device::Cpu)?;
        let loss = |p: Tensor| (p * &weights)?.sum_all();
        let fused = loss(masked_softmax(scores.as_tensor(), &mask)?)?.backward()?;
        let plain = loss(candle_nn::ops::softmax(
            &scores.as_tensor().broadcast_add(&mask)?,
            D::Minus1,
        )?)?
        .backward()?;
        let (f, p) = (fused.get(&scores).unwrap(), plain.get(&scores).unwrap());
        let diff = (f - p)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
        assert!(diff <= 1e-6, "max |fused - plain| gradient = {diff}");
        Ok(())
    }

    /// The fused pattern equals the ops it replaces, forward and backward (q's and k's
    /// gradients through a weighted sum of the pattern), with cached keys and padding.
    #[test]
    fn attention_pattern_equals_the_ops_it_fuses() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let (b, nh, t, tk, hs) = (2, 3, 4, 6, 5);
        let q = candle_core::Var::randn(0f32, 1.0, (b, nh, t, hs), &dev)?;
        let k = candle_core::Var::randn(0f32, 1.0, (b, nh, tk, hs), &dev)?;
        let w = Tensor::randn(0f32, 1.0, (b, nh, t, tk), &dev)?;
        let mut m = vec![0f32; b * t * tk];
        for s in 0..b {
            for i in 0..t {
                for j in 0..tk {
                    // Causal after 2 cached keys; the second sequence's first key is padding.
                    if j > tk - t + i || (s == 1 && j == 0) {
                        m[(s * t + i) * tk + j] = f32::NEG_INFINITY;
                    }
                }
            }
        }
        let mask = Tensor::from_vec(m, (b, 1, t, tk), &dev)?;
        let scale = 1.0 / (hs as f64).sqrt();
        let fused = attention_pattern(q.as_tensor(), k.as_tensor(), scale, &mask)?;
        let scores = (q.as_tensor() * scale)?.matmul(&k.as_tensor().t()?)?;
        let plain = candle_nn::ops::softmax(&scores.broadcast_add(&mask)?, D::Minus1)?;
        let diff = |a: &Tensor, b: &Tensor| -> candle_core::Result<f32> {
            (a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()
        };
        assert!(diff(&fused, &plain)? < 1e-6);
        let g1 = (&fused * &w)?.sum_all()?.backward()?;
        let g2 = (&plain * &w)?.sum_all()?.backward()?;
        for v in [&q, &k] {
            let (a, b) = (g1.get(v).unwrap(), g2.get(v).unwrap());
            assert!(diff(a, b)? < 1e-5, "gradient differs by {}", diff(a, b)?);
        }
        Ok(())
    }
}
