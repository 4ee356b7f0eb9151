//! GPT-2 itself: its configuration, the weights it multiplies by, the forward pass in
//! data-flow order with TransformerLens's hooks, taps that record or replace activations,
//! generation with the KV cache, and the kernels (`kernels/`) the pass runs on.

mod activation;
pub mod config;
pub mod generate;
pub mod gpt2;
pub mod hooks;
pub mod kernels;
pub mod tap;
pub mod weights;

pub use config::Config;
pub use gpt2::{
    AllLogits, FrozenBlock, Gpt2, Inputs, KvCache, LastLogits, Logits, NoLogits, Output, Request,
    TailLogits, WantLogits,
};
pub use hooks::{Activations, BlockHook, CaptureSpec, Hook};
pub use tap::Tap;
