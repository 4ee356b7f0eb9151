//! Writes a full-size GPT-2 (124M) with random weights in the layout of the original `gpt2`
//! repository (bare keys plus the `attn.bias` causal-mask buffers, 548 MB), so the benchmark
//! needs no download. The tokenizer is the real GPT-2 one, copied from the test fixture.
//!
//! cargo run --release --example make_checkpoint -- DIR

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use safetensors::tensor::{Dtype, TensorView};

const VOCAB: usize = 50257;
const N_POS: usize = 1024;
const D: usize = 768;
const N_LAYER: usize = 12;

/// xorshift64*: fast, deterministic, good enough for random weights.
struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 40) as f32 / (1u64 << 24) as f32 // [0, 1)
    }
}

fn main() -> Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: make_checkpoint DIR")?,
    );
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)> = BTreeMap::new();
    // Uniform with the std GPT-2 is initialised with (0.02).
    let mut random = |shape: Vec<usize>| {
        let n = shape.iter().product();
        let a = 0.02 * 3f32.sqrt();
        let v = (0..n).map(|_| (rng.uniform() * 2.0 - 1.0) * a).collect();
        (shape, v)
    };
    let filled = |shape: Vec<usize>, x: f32| {
        let n = shape.iter().product();
        (shape, vec![x; n])
    };
    tensors.insert("wte.weight".into(), random(vec![VOCAB, D]));
    tensors.insert("wpe.weight".into(), random(vec![N_POS, D]));
    let causal: Vec<f32> = (0..N_POS * N_POS)
        .map(|i| if i % N_POS <= i / N_POS { 1.0 } else { 0.0 })
        .collect();
    for l in 0..N_LAYER {
        let p = format!("h.{l}");
        for ln in ["ln_1", "ln_2"] {
            tensors.insert(format!("{p}.{ln}.weight"), filled(vec![D], 1.0));
            tensors.insert(format!("{p}.{ln}.bias"), filled(vec![D], 0.0));
        }
        for (name, i, o) in [
            ("attn.c_attn", D, 3 * D),
            ("attn.c_proj", D, D),
            ("mlp.c_fc", D, 4 * D),
            ("mlp.c_proj", 4 * D, D),
        ] {
            tensors.insert(format!("{p}.{name}.weight"), random(vec![i, o]));
            tensors.insert(format!("{p}.{name}.bias"), filled(vec![o], 0.0));
        }
        tensors.insert(
            format!("{p}.attn.bias"),
            (vec![1, 1, N_POS, N_POS], causal.clone()),
        );
    }
    tensors.insert("ln_f.weight".into(), filled(vec![D], 1.0));
    tensors.insert("ln_f.bias".into(), filled(vec![D], 0.0));

    let bytes: BTreeMap<&String, (Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(k, (shape, v))| {
            let b = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            (k, (shape.clone(), b))
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(k, (shape, b))| Ok((k.as_str(), TensorView::new(Dtype::F32, shape.clone(), b)?)))
        .collect::<Result<Vec<_>>>()?;
    let mut meta = std::collections::HashMap::new();
    meta.insert("format".to_string(), "pt".to_string());
    safetensors::serialize_to_file(views, Some(meta), &dir.join("model.safetensors"))?;

    let config = serde_json::json!({
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "bos_token_id": 50256,
        "eos_token_id": 50256,
        "initializer_range": 0.02,
        "layer_norm_epsilon": 1e-5,
        "model_type": "gpt2",
        "n_ctx": N_POS,
        "n_embd": D,
        "n_head": 12,
        "n_layer": N_LAYER,
        "n_positions": N_POS,
        "vocab_size": VOCAB,
    });
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gpt2");
    for f in ["tokenizer.json", "vocab.json", "merges.txt"] {
        std::fs::copy(fixture.join(f), dir.join(f))?;
    }
    println!("wrote {}", dir.display());
    Ok(())
}
