//! The MLP's activation, as `transformers.activations.ACT2FN` computes each: built from
//! candle's differentiable ops, so the backward pass follows every one.

use candle_core::{Result, Tensor};

use super::config::Activation;
use crate::model::kernels::gelu::gelu_tanh;

/// `act(x)`, elementwise.
pub fn apply(act: Activation, x: &Tensor) -> Result<Tensor> {
    match act {
        Activation::GeluTanh => gelu_tanh(x),
        Activation::GeluErf => x.gelu_erf(),
        Activation::Gelu10 => x.gelu_erf()?.clamp(-10f32, 10f32),
        Activation::QuickGelu => x.mul(&candle_nn::ops::sigmoid(&(x * 1.702)?)?),
        Activation::Relu => x.relu(),
        Activation::Relu2 => x.relu()?.sqr(),
        Activation::Relu6 => x.clamp(0f32, 6f32),
        Activation::LeakyRelu => x.maximum(&(x * 0.01)?),
        Activation::Silu => x.silu(),
        Activation::Sigmoid => candle_nn::ops::sigmoid(x),
        Activation::Tanh => x.tanh(),
        Activation::Mish => x.mul(&softplus(x)?.tanh()?),
        Activation::Hardswish => x.mul(&((x + 3.0)?.clamp(0f32, 6f32)? / 6.0)?),
        // HF's constants as written (mu = 0.707107, not 1/√2).
        #[allow(clippy::approx_constant)]
        Activation::Laplace => {
            let z = ((x - 0.707107)? / (0.282095 * std::f64::consts::SQRT_2))?;
            (z.erf()? + 1.0)? * 0.5
        }
        Activation::Sqrtsoftplus => softplus(x)?.sqrt(),
        Activation::Linear => Ok(x.clone()),
    }
}

/// `log(1 + eᵡ)` without overflow: `relu(x) + log(1 + e^{−|x|})` (torch's `softplus`
/// returns x itself beyond 20, which this equals in f32).
fn softplus(x: &Tensor) -> Result<Tensor> {
    x.relu()? + ((x.abs()?.neg()?.exp()? + 1.0)?.log()?)
}
