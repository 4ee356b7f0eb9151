//! `x W + b` with a weight held as a tensor (copied weights), differentiable with respect to
//! `x` only. candle's own matmul rule also computes the gradient of its right-hand side and
//! its broadcast add that of the bias: for a frozen model that is wasted work and memory
//! (for the LM head, a (V, d) product and matrix per backward). The forward is candle's own
//! CPU matmul kernel on the same layouts, so the numbers are the ones `x.matmul(w)` gives.

use std::sync::Arc;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Storage, Tensor};

/// The product of `x` `(M, K)` f32 on the CPU and `weight`: stored `(K, N)`, or stored
/// `(N, K)` and read transposed (`x Wᵀ`); `bias` `(N,)` added after.
#[derive(Clone)]
pub struct FrozenMatMul {
    pub weight: Tensor,
    pub transposed: bool,
    pub bias: Option<Arc<[f32]>>,
}

impl FrozenMatMul {
    pub fn apply(self, x: &Tensor) -> anyhow::Result<Tensor> {
        Ok(x.apply_op1(self)?)
    }
}

impl CustomOp1 for FrozenMatMul {
    fn name(&self) -> &'static str {
        "frozen-matmul"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        use candle_core::bail;
        let (w, w_layout) = self.weight.storage_and_layout();
        let Storage::Cpu(w) = &*w else {
            bail!("frozen-matmul: the weight must be on the CPU")
        };
        let w_layout = match self.transposed {
            false => w_layout.clone(),
            true => w_layout.transpose(0, 1)?,
        };
        let (m, k) = layout.shape().dims2()?;
        let (wk, n) = w_layout.shape().dims2()?;
        if k != wk {
            bail!("frozen-matmul: ({m}, {k}) times a ({wk}, {n}) weight")
        }
        let out = storage.matmul(w, (1, m, n, k), layout, &w_layout)?; // (M, N)
        let out = match (&self.bias, out) {
            (None, out) => out,
            (Some(b), CpuStorage::F32(mut y)) if b.len() == n => {
                for row in y.chunks_exact_mut(n.max(1)) {
                    row.iter_mut().zip(b.iter()).for_each(|(y, b)| *y += b);
                }
                CpuStorage::F32(y)
            }
            (Some(b), _) => bail!("frozen-matmul: an f32 bias of {} for {n} outputs", b.len()),
        };
        Ok((out, Shape::from((m, n))))
    }

    /// For y = x W + b: ∂/∂x = g Wᵀ, the same weight read the other way.
    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let back = FrozenMatMul {
            weight: self.weight.clone(),
            transposed: !self.transposed,
            bias: None,
        };
        Ok(Some(grad.apply_op1(back)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn values(n: usize, seed: f32) -> Vec<f32> {
        (0..n).map(|i| (i as f32 * 0.37 + seed).sin()).collect()
    }

    fn tensor(shape: (usize, usize), seed: f32) -> Tensor {
        Tensor::from_vec(values(shape.0 * shape.1, seed), shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
        d.to_scalar().unwrap()
    }

    #[test]
    fn products_are_candles_and_only_the_input_gets_a_gradient() {
        let (m, k, n) = (7, 33, 19);
        let w = tensor((k, n), 1.0);
        let bias = Tensor::from_vec(values(n, 2.0), n, &Device::Cpu).unwrap();
        let g = tensor((m, n), 3.0);
        let x = Var::from_tensor(&tensor((m, k), 4.0)).unwrap();
        for transposed in [false, true] {
            // Stored (N, K) and read transposed: what `x.matmul(&w.t())` did.
            let (weight, plain_w) = match transposed {
                false => (w.clone(), w.clone()),
                true => {
                    let stored = w.t().unwrap().contiguous().unwrap();
                    (stored.clone(), stored.t().unwrap())
                }
            };
            let op = FrozenMatMul {
                weight: weight.clone(),
                transposed,
                bias: Some(bias.to_vec1::<f32>().unwrap().into()),
            };
            let ours = op.apply(x.as_tensor()).unwrap();
            let theirs = x.matmul(&plain_w).unwrap().broadcast_add(&bias).unwrap();
            assert_eq!(max_diff(&ours, &theirs), 0.0, "transposed: {transposed}");
            let grads = (ours * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let want = g.matmul(&plain_w.t().unwrap()).unwrap();
            assert!(max_diff(grads.get(&x).unwrap(), &want) < 1e-5);
            assert!(grads.get(&weight).is_none(), "a weight gradient was stored");
        }
    }
}
