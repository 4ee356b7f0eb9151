//! What interpretability asks of the model, computed on `model`'s taps: the metric a causal
//! run is measured by, interventions and ablations, activation and path patching, edge
//! attribution, gradients and input saliency, and sparse autoencoders (`sae/`).

pub mod ablation;
pub mod attribution;
pub mod edges;
pub mod grad;
pub mod graph;
pub mod heads;
pub mod interventions;
pub mod lens;
pub mod lens_fit;
pub mod metric;
pub mod patching;
pub mod progress;
pub mod sae;
pub mod saliency;
pub mod transcoder;
