//! The matrices the forward pass multiplies by: a weight as stored (a tensor, or a view of
//! the mapped checkpoint) with its products, and the bias the kernels add.

use std::sync::Arc;

use anyhow::{bail, Result};
use candle_core::{DType, Device, Tensor};

use crate::load::mapped::MappedMatrix;
use crate::model::kernels::frozen::FrozenMatMul;
use crate::model::kernels::half::HalfMatMul;
use crate::model::kernels::matmul::MatMul;

/// A bias `(N,)` for [`Weight::matmul`]: the tensor, and for a mapped weight, or an f32 or
/// half-precision one on the CPU, its values (in f32) as the kernel takes them, read once at
/// load instead of at every product.
#[derive(Clone)]
pub struct Bias {
    pub tensor: Tensor,
    values: Option<Arc<[f32]>>,
}

impl Bias {
    pub fn new(tensor: Tensor, weight: &Weight) -> Result<Self> {
        let values = match weight {
            Weight::Mapped(_) => Some(tensor.to_vec1::<f32>()?.into()),
            Weight::Tensor(w) if frozen_kernel(w) => Some(tensor.to_vec1::<f32>()?.into()),
            Weight::Tensor(w) if half_kernel(w) => {
                Some(tensor.to_dtype(DType::F32)?.to_vec1::<f32>()?.into())
            }
            Weight::Tensor(_) => None,
        };
        Ok(Bias { tensor, values })
    }
}

/// Whether products with `w` take [`FrozenMatMul`]: the CPU in f32, the only place
/// gradients are taken (candle's matmul elsewhere).
fn frozen_kernel(w: &Tensor) -> bool {
    w.device().is_cpu() && w.dtype() == DType::F32
}

/// Whether products with `w` take [`HalfMatMul`]: the CPU in bf16 or f16.
fn half_kernel(w: &Tensor) -> bool {
    w.device().is_cpu() && matches!(w.dtype(), DType::BF16 | DType::F16)
}

/// A weight matrix `(rows, cols)` as stored: a tensor, or a view of the mapped file.
#[derive(Clone)]
pub enum Weight {
    Tensor(Tensor),
    Mapped(MappedMatrix),
}

impl Weight {
    pub fn dims(&self) -> Result<(usize, usize)> {
        match self {
            Weight::Tensor(t) => Ok(t.dims2()?),
            Weight::Mapped(m) => Ok(m.dims()),
        }
    }

    /// The weight as a tensor of its own (a copy when mapped).
    pub fn tensor(&self) -> Result<Tensor> {
        match self {
            Weight::Tensor(t) => Ok(t.clone()),
            Weight::Mapped(m) => Ok(Tensor::from_slice(m.values(), m.dims(), &Device::Cpu)?),
        }
    }

    /// `x W + b` for `x` `(M, K)` and this weight `(K, N)`: `(M, N)`.
    pub fn matmul(&self, x: &Tensor, bias: &Bias) -> Result<Tensor> {
        match (self, &bias.values) {
            (Weight::Mapped(w), Some(values)) => MatMul {
                weight: w.clone(),
                transposed: false,
                bias: Some(values.clone()),
            }
            .apply(x),
            (Weight::Mapped(_), None) => bail!("a mapped weight's bias was read as a tensor only"),
            (Weight::Tensor(w), Some(values)) if half_kernel(w) => HalfMatMul {
                transposed: false,
                bias: Some(values.clone()),
            }
            .apply(x, w),
            (Weight::Tensor(w), Some(values)) => FrozenMatMul {
                weight: w.clone(),
                transposed: false,
                bias: Some(values.clone()),
            }
            .apply(x),
            (Weight::Tensor(w), None) => Ok(x.matmul(w)?.broadcast_add(&bias.tensor)?),
        }
    }

    /// `x Wᵀ` for `x` `(M, K)` and this weight `(N, K)`: `(M, N)`.
    pub fn matmul_t(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Weight::Tensor(w) if frozen_kernel(w) => FrozenMatMul {
                weight: w.clone(),
                transposed: true,
                bias: None,
            }
            .apply(x),
            Weight::Tensor(w) if half_kernel(w) => HalfMatMul {
                transposed: true,
                bias: None,
            }
            .apply(x, w),
            Weight::Tensor(w) => Ok(x.matmul(&w.t()?)?),
            Weight::Mapped(w) => MatMul {
                weight: w.clone(),
                transposed: true,
                bias: None,
            }
            .apply(x),
        }
    }

    /// Rows `ids` `(N,)` u32: `(N, cols)`.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Weight::Tensor(w) => Ok(w.embedding(ids)?),
            Weight::Mapped(m) => {
                let ids = ids.to_vec1::<u32>()?;
                let rows = m.gather(&ids)?;
                Ok(Tensor::from_vec(
                    rows,
                    (ids.len(), m.dims().1),
                    &Device::Cpu,
                )?)
            }
        }
    }
}
