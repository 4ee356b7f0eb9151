//! gpt2-inspect: GPT-2 opened up. The model computes ([`model`]), commands turn requests
//! into reports ([`commands`], [`report`]), renderers write reports ([`render`]).

// Every unsafe block (all in model/mapped.rs) says why it is sound, just above it.
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod allocator;
pub mod atomic;
pub mod cli;
pub mod commands;
pub mod dist;
pub mod error;
pub mod input;
pub mod model;
pub mod render;
pub mod reports;
pub mod signals;
pub mod threads;
pub mod tokenizer;
pub mod units;
