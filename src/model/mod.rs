//! GPT-2 itself: configuration, checkpoint loading, the forward pass, activation hooks.

pub mod config;
pub mod gpt2;
pub mod hooks;
pub mod load;
mod softmax;

pub use config::Config;
pub use gpt2::{Gpt2, KvCache, Logits, Output, Request};
pub use hooks::{Activations, BlockHook, CaptureSpec, Hook};
