//! A Jacobian lens as TransformerLens's `JacobianLens.save` writes it (and Anthropic's
//! reference implementation and the published `neuronpedia/jacobian-lens` artifacts): a
//! `torch.save`d dict `{"J": {layer: (d_model, d_model)}, "n_prompts", "source_layers",
//! "d_model", "metadata"?}`, J in float16 or float32. Read through the checkpoint reader
//! (tensors and plain values only, nothing a pickle names is run) and checked against the
//! model; written in the same format, J in float32, for `JacobianLens.load` to read.

use std::path::Path;

use anyhow::{bail, Result};
use candle_core::{DType, Device};

use crate::analysis::lens::Jacobians;
use crate::load::checkpoint::torch_save::{self, Item, Key};
use crate::load::checkpoint::Checkpoint;
use crate::model::Config;

/// The lens in `path`, checked against the model's `cfg`: d_model, source layers below the
/// last block, the last block as target, every matrix `(C, C)` and finite.
pub fn read(path: &Path, cfg: &Config) -> Result<Jacobians> {
    let whose = || format!("the Jacobian lens in {}", path.display());
    let values = crate::load::checkpoint::torch_values(path)?;
    check_values(path, &values, cfg)?;
    let ckpt = Checkpoint::open(path)?;
    let mut layers: Vec<usize> = Vec::new();
    for t in ckpt.tensors() {
        match t.name.strip_prefix("J.").map(str::parse::<usize>) {
            Some(Ok(l)) => layers.push(l),
            _ => bail!("{} holds a tensor {} outside J", whose(), t.name),
        }
    }
    layers.sort_unstable();
    if layers.is_empty() {
        bail!("{} has no matrices under J", whose());
    }
    if let Some(&l) = layers.iter().find(|&&l| l + 1 >= cfg.n_layer) {
        bail!(
            "{} has a matrix for block {l}; this model's source blocks are 0 to {}",
            whose(),
            cfg.n_layer.saturating_sub(2)
        );
    }
    let reader = ckpt.reader(&Device::Cpu, DType::F32)?;
    let d = cfg.n_embd;
    let mut j = Vec::with_capacity(layers.len());
    for &l in &layers {
        let m = reader.pp("J").get(&l.to_string())?.to_dtype(DType::F32)?;
        if m.dims() != [d, d] {
            bail!("{}: J[{l}] is {:?}, not [{d}, {d}]", whose(), m.dims());
        }
        if !crate::model::tap::all_finite(&m)? {
            bail!("{}: J[{l}] holds values that are not finite", whose());
        }
        j.push(m);
    }
    let n_prompts = values
        .get("n_prompts")
        .and_then(|v| v.as_u64())
        .unwrap_or(0);
    Ok(Jacobians {
        layers,
        j,
        n_prompts: n_prompts as usize,
    })
}

/// The artifact's plain values against the model: `d_model`, and `metadata.target_layer`
/// (when recorded) the last block, as TransformerLens's `validate_model` asks.
fn check_values(
    path: &Path,
    values: &serde_json::Map<String, serde_json::Value>,
    cfg: &Config,
) -> Result<()> {
    let whose = || format!("the Jacobian lens in {}", path.display());
    let Some(d_model) = values.get("d_model").and_then(|v| v.as_u64()) else {
        bail!(
            "{} has no d_model: it is not a Jacobian lens artifact",
            path.display()
        );
    };
    if d_model as usize != cfg.n_embd {
        bail!(
            "{} was fitted for d_model {d_model}; this model has {}",
            whose(),
            cfg.n_embd
        );
    }
    let target = (values.get("metadata"))
        .and_then(|m| m.get("target_layer"))
        .and_then(|t| t.as_u64());
    if let Some(t) = target.filter(|&t| t as usize + 1 != cfg.n_layer) {
        bail!(
            "{} targets block {t}; only lenses that target the last block ({}) are read",
            whose(),
            cfg.n_layer - 1
        );
    }
    Ok(())
}

/// The bytes of `lens` as `JacobianLens.save` would write it, J in float32, with `metadata`
/// (plain values) under its key.
pub fn to_bytes(lens: &Jacobians, metadata: &serde_json::Value) -> Result<Vec<u8>> {
    let d = lens.j.first().map_or(0, |m| m.dims()[0]);
    let mut matrices = Vec::with_capacity(lens.layers.len());
    for (&l, m) in lens.layers.iter().zip(&lens.j) {
        let data = m.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
        let tensor = Item::Tensor {
            shape: vec![d, d],
            data,
        };
        matrices.push((Key::Int(l as i64), tensor));
    }
    let source_layers = lens.layers.iter().map(|&l| Item::Int(l as i64)).collect();
    let root = Item::Dict(vec![
        (Key::Str("J".into()), Item::Dict(matrices)),
        (
            Key::Str("n_prompts".into()),
            Item::Int(lens.n_prompts as i64),
        ),
        (Key::Str("source_layers".into()), Item::List(source_layers)),
        (Key::Str("d_model".into()), Item::Int(d as i64)),
        (Key::Str("metadata".into()), Item::from_json(metadata)),
    ]);
    torch_save::to_bytes(&root)
}
