//! gpt2-inspect: GPT-2 opened up. [`load`] reads a model's files, [`model`] computes the
//! forward pass, [`analysis`] asks it interpretability's questions, [`commands`] turn
//! requests into reports ([`reports`]) with what [`session`] holds, and [`render`] writes
//! them.

// Every unsafe block (in load/mapped.rs and model/kernels/matmul.rs) says why it is sound,
// just above it.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod allocator;
pub mod analysis;
pub mod atomic;
pub mod cli;
pub mod commands;
pub mod dist;
pub mod error;
pub mod input;
pub mod load;
pub mod model;
pub mod render;
pub mod reports;
pub mod serve;
pub mod session;
pub mod signals;
pub mod threads;
pub mod tokenizer;
pub mod units;
