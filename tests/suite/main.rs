//! The integration tests, one binary (as ripgrep's): each module is a file beside this
//! one, all sharing `common` and linking the crate once. Run one module with
//! `cargo test --release --test suite -- parity::`.

mod common;

mod batch;
mod bounds;
mod browser;
mod checkpoints;
mod circuits;
mod cli;
mod delimited;
mod docs;
mod dtypes;
mod edges;
mod errors;
mod family;
mod formats;
mod generate;
mod gradients;
mod graphs;
mod hardening;
mod hostile;
mod hub;
mod inspect;
mod jacobian_lens;
mod lenses;
mod metrics;
mod parity;
mod readme;
mod render;
mod saes;
mod scale;
mod score;
mod serve;
mod session;
mod tokenizer;
mod transcoders;
