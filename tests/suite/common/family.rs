//! Checkpoints of the GPT-2 family's exact configs (tests/fixtures/family/*.json) with
//! weights that a formula gives, so that scripts/make_family_fixture.py builds the same
//! tensors bit for bit in numpy and Hugging Face computes the references from them, and no
//! gigabyte is committed. Element `i` of the `t`-th tensor (names sorted) is
//! `u = fmix32(i · 0x9E3779B1 + seed(t)) >> 8` as `u · 2⁻²⁴ − ½`, scaled by a power of two
//! (or `1 + u/4` for a LayerNorm weight): every step is exact or one IEEE rounding.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::Result;

fn fmix32(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Element `i` of tensor number `t`, for a tensor named `name`.
pub fn value(name: &str, t: u32, i: u32) -> f32 {
    let seed = fmix32(t.wrapping_add(1));
    let u = (fmix32(i.wrapping_mul(0x9e37_79b1).wrapping_add(seed)) >> 8) as f32;
    let u = u * (1.0 / (1u32 << 24) as f32) - 0.5; // [-0.5, 0.5)
    let ln = name.contains(".ln_") || name.contains("ln_f.");
    match (ln, name.ends_with(".weight")) {
        (true, true) => 1.0 + u * 0.25,
        (true, false) => u * 0.25,
        (false, true) => u * 0.125,
        (false, false) => u * 0.03125,
    }
}

/// Every tensor of a GPT-2 with `cfg` (transformer.-prefixed, as save_pretrained names
/// them; the head tied), sorted by name, with its shape.
pub fn tensors(cfg: &serde_json::Value) -> Vec<(String, Vec<usize>)> {
    let n = |k: &str| cfg[k].as_u64().unwrap() as usize;
    let (d, v, p, layers) = (n("n_embd"), n("vocab_size"), n("n_positions"), n("n_layer"));
    let inner = cfg["n_inner"].as_u64().map_or(4 * d, |x| x as usize);
    let mut out = vec![
        ("wte.weight".to_string(), vec![v, d]),
        ("wpe.weight".to_string(), vec![p, d]),
        ("ln_f.weight".to_string(), vec![d]),
        ("ln_f.bias".to_string(), vec![d]),
    ];
    for l in 0..layers {
        for (k, s) in [
            ("ln_1.weight", vec![d]),
            ("ln_1.bias", vec![d]),
            ("attn.c_attn.weight", vec![d, 3 * d]),
            ("attn.c_attn.bias", vec![3 * d]),
            ("attn.c_proj.weight", vec![d, d]),
            ("attn.c_proj.bias", vec![d]),
            ("ln_2.weight", vec![d]),
            ("ln_2.bias", vec![d]),
            ("mlp.c_fc.weight", vec![d, inner]),
            ("mlp.c_fc.bias", vec![inner]),
            ("mlp.c_proj.weight", vec![inner, d]),
            ("mlp.c_proj.bias", vec![d]),
        ] {
            out.push((format!("h.{l}.{k}"), s));
        }
    }
    let mut out: Vec<_> = (out.into_iter())
        .map(|(k, s)| (format!("transformer.{k}"), s))
        .collect();
    out.sort();
    out
}

/// Writes `dir/model.safetensors` (streamed: a tensor at a time) for `cfg`, with its
/// values, or (`values` false) only its header and a file of the full length left sparse,
/// for commands that read headers alone.
pub fn write(dir: &Path, cfg: &serde_json::Value, values: bool) -> Result<()> {
    let tensors = tensors(cfg);
    let mut header = serde_json::Map::new();
    let mut offset = 0usize;
    for (name, shape) in &tensors {
        let bytes = shape.iter().product::<usize>() * 4;
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}),
        );
        offset += bytes;
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    // Data 8-byte aligned, as safetensors writes it.
    while !(8 + h.len()).is_multiple_of(8) {
        h.push(b' ');
    }
    let file = std::fs::File::create(dir.join("model.safetensors"))?;
    let mut w = BufWriter::with_capacity(1 << 22, &file);
    w.write_all(&(h.len() as u64).to_le_bytes())?;
    w.write_all(&h)?;
    if values {
        let mut buf = Vec::with_capacity(1 << 20);
        for (t, (name, shape)) in tensors.iter().enumerate() {
            let n = shape.iter().product::<usize>() as u32;
            for i in 0..n {
                buf.extend_from_slice(&value(name, t as u32, i).to_le_bytes());
                if buf.len() >= 1 << 20 {
                    w.write_all(&buf)?;
                    buf.clear();
                }
            }
        }
        w.write_all(&buf)?;
    }
    w.flush()?;
    drop(w);
    file.set_len((8 + h.len() + offset) as u64)?;
    std::fs::write(dir.join("config.json"), cfg.to_string())?;
    Ok(())
}
