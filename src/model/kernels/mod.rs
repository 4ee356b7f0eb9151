//! The CPU kernels the forward pass runs on, each a candle custom op with candle's own
//! arithmetic as the fallback: products on mapped and frozen weights and on weights kept in
//! half precision, the fused masked softmax, GELU and layer norm.

pub mod frozen;
pub mod gelu;
pub mod half;
pub mod layer_norm;
pub mod matmul;
pub mod softmax;
