//! GPT-2 itself: where its files come from, configuration, checkpoint reading, the forward
//! pass, activation hooks.

pub mod checkpoint;
pub mod circuits;
pub mod config;
pub mod edges;
mod frozen;
pub mod gelu;
pub mod generate;
pub mod gpt2;
pub mod grad;
pub mod hooks;
pub mod hub;
mod layer_norm;
pub mod mapped;
pub mod patching;
pub mod saliency;
mod softmax;
pub mod source;
pub mod tap;

pub use config::Config;
pub use gpt2::{
    AllLogits, Gpt2, Inputs, KvCache, LastLogits, Logits, NoLogits, Output, Request, WantLogits,
};
pub use hooks::{Activations, BlockHook, CaptureSpec, Hook};
pub use tap::Tap;
