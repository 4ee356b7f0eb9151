//! The CPU kernels the forward pass runs on, each a candle custom op with candle's own
//! arithmetic as the fallback: products on mapped and frozen weights, the fused masked
//! softmax, GELU and layer norm.

pub mod frozen;
pub mod gelu;
pub mod layer_norm;
pub mod matmul;
pub mod softmax;
