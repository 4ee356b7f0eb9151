//! Writes a full-size GPT-2 (124M) with random weights in the layout of the original `gpt2`
//! repository (bare keys plus the `attn.bias` causal-mask buffers, 548 MB), so the benchmark
//! needs no download. The tokenizer is the real GPT-2 one, copied from the test fixture.
//!
//! cargo run --release --example make_checkpoint -- DIR

use std::path::PathBuf;

use anyhow::{Context, Result};

#[path = "../tests/suite/common/checkpoint.rs"]
mod checkpoint;

fn main() -> Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: make_checkpoint DIR")?,
    );
    checkpoint::write_random_gpt2(&dir, 1024, 3072)
        .with_context(|| format!("cannot write {}", dir.display()))?;
    println!("wrote {}", dir.display());
    Ok(())
}
