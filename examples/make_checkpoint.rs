//! Writes a full-size GPT-2 (124M) with random weights in the layout of the original `gpt2`
//! repository (bare keys plus the `attn.bias` causal-mask buffers, 548 MB), so the benchmark
//! needs no download. The tokenizer is the real GPT-2 one, copied from the test fixture.
//! With `--sae SAE_DIR`, also a random standard (ReLU) SAE in SAELens's saved format of
//! gpt2-small-res-jb's shape: 24,576 features at blocks.8.hook_resid_pre.
//!
//! cargo run --release --example make_checkpoint -- DIR [--sae SAE_DIR]

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};

#[path = "../tests/suite/common/checkpoint.rs"]
mod checkpoint;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, sae) = match args.as_slice() {
        [dir] => (PathBuf::from(dir), None),
        [dir, flag, sae] if flag == "--sae" => (PathBuf::from(dir), Some(PathBuf::from(sae))),
        _ => bail!("usage: make_checkpoint DIR [--sae SAE_DIR]"),
    };
    if !dir.join("config.json").exists() {
        checkpoint::write_random_gpt2(&dir, 1024, 3072)
            .with_context(|| format!("cannot write {}", dir.display()))?;
        println!("wrote {}", dir.display());
    }
    if let Some(sae) = sae {
        write_random_sae(&sae, 768, 24_576, "blocks.8.hook_resid_pre")
            .with_context(|| format!("cannot write {}", sae.display()))?;
        println!("wrote {}", sae.display());
    }
    Ok(())
}

/// A standard SAE: W_enc `(d_in, d_sae)` and W_dec `(d_sae, d_in)` uniform with std 1/√d_in,
/// b_enc −0.1 (so that not every feature fires), b_dec 0; cfg.json as SAELens 6 writes it.
fn write_random_sae(dir: &Path, d_in: usize, d_sae: usize, hook: &str) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut rng = checkpoint::Rng(0x2545_f491_4f6c_dd1d);
    let a = 3f32.sqrt() / (d_in as f32).sqrt();
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|_| ((rng.uniform() * 2.0 - 1.0) * a).to_le_bytes())
            .collect()
    };
    let filled = |n: usize, x: f32| -> Vec<u8> { (0..n).flat_map(|_| x.to_le_bytes()).collect() };
    let tensors = [
        ("W_enc", vec![d_in, d_sae], random(d_in * d_sae)),
        ("W_dec", vec![d_sae, d_in], random(d_sae * d_in)),
        ("b_enc", vec![d_sae], filled(d_sae, -0.1)),
        ("b_dec", vec![d_in], filled(d_in, 0.0)),
    ];
    let views = (tensors.iter())
        .map(|(k, shape, b)| Ok((*k, TensorView::new(Dtype::F32, shape.clone(), b)?)))
        .collect::<Result<Vec<_>>>()?;
    safetensors::serialize_to_file(views, None, &dir.join("sae_weights.safetensors"))?;
    let cfg = serde_json::json!({
        "d_in": d_in, "d_sae": d_sae, "dtype": "float32", "device": "cpu",
        "apply_b_dec_to_input": true, "normalize_activations": "none",
        "reshape_activations": "none", "architecture": "standard",
        "metadata": {
            "sae_lens_version": "6.54.12", "sae_lens_training_version": "6.54.12",
            "hook_name": hook, "prepend_bos": false, "context_size": 128,
            "model_name": "gpt2-random", "model_from_pretrained_kwargs": {}
        }
    });
    std::fs::write(dir.join("cfg.json"), serde_json::to_string_pretty(&cfg)?)?;
    Ok(())
}
