//! The gradients family's renderers: `saliency` as bars, a strip and a matrix.

pub mod saliency;
