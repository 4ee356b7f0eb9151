//! A GPT-2 of the real shape (12 layers × 12 heads, d_model 768, the real vocabulary) with
//! random weights, in the layout of the original `gpt2` repository (bare keys plus the
//! `attn.bias` causal-mask buffers): what the benchmark runs, and what the browser test
//! opens a full-size report page of. The tokenizer is the real GPT-2 one, copied from the
//! test fixture. Shared by examples/make_checkpoint.rs and tests/suite/browser.rs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use safetensors::tensor::{Dtype, TensorView};

const VOCAB: usize = 50257;
const D: usize = 768;
const N_LAYER: usize = 12;

/// xorshift64*: fast, deterministic, good enough for random weights.
pub struct Rng(pub u64);

impl Rng {
    pub fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        (x >> 40) as f32 / (1u64 << 24) as f32 // [0, 1)
    }
}

/// Writes the model into `dir` with `n_pos` positions and an MLP of `n_inner` (gpt2: 1024
/// and 3072); config.json is written last, so a directory with one is complete.
pub fn write_random_gpt2(dir: &Path, n_pos: usize, n_inner: usize) -> Result<()> {
    std::fs::create_dir_all(dir)?;
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
    tensors.insert("wpe.weight".into(), random(vec![n_pos, D]));
    let causal: Vec<f32> = (0..n_pos * n_pos)
        .map(|i| if i % n_pos <= i / n_pos { 1.0 } else { 0.0 })
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
            ("mlp.c_fc", D, n_inner),
            ("mlp.c_proj", n_inner, D),
        ] {
            tensors.insert(format!("{p}.{name}.weight"), random(vec![i, o]));
            tensors.insert(format!("{p}.{name}.bias"), filled(vec![o], 0.0));
        }
        tensors.insert(
            format!("{p}.attn.bias"),
            (vec![1, 1, n_pos, n_pos], causal.clone()),
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
        "n_ctx": n_pos,
        "n_embd": D,
        "n_head": 12,
        "n_layer": N_LAYER,
        "n_positions": n_pos,
        "n_inner": n_inner,
        "vocab_size": VOCAB,
    });
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-gpt2");
    for f in ["tokenizer.json", "vocab.json", "merges.txt"] {
        std::fs::copy(fixture.join(f), dir.join(f))?;
    }
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    Ok(())
}
