//! GPT-2 itself: where its files come from, configuration, checkpoint reading, the forward
//! pass, activation hooks.

mod activation;
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
pub mod measure;
pub mod patching;
mod pickle;
pub mod sae;
pub mod saliency;
mod shards;
mod softmax;
pub mod source;
pub mod tap;
mod torch_bin;

pub use config::Config;
pub use gpt2::{
    AllLogits, Gpt2, Inputs, KvCache, LastLogits, Logits, NoLogits, Output, Request, TailLogits,
    WantLogits,
};
pub use hooks::{Activations, BlockHook, CaptureSpec, Hook};
pub use tap::Tap;
