//! Transcoder sets kept a folder a layer: SAELens's (each folder a `cfg.json` and
//! `sae_weights.safetensors` of its `Transcoder`, `SkipTranscoder`, `JumpReLUTranscoder` or
//! `JumpReLUSkipTranscoder`, reading `blocks.{i}.ln2.hook_normalized` and writing
//! `blocks.{i}.hook_mlp_out`) and EleutherAI sparsify's (`h.{i}.mlp/` with `cfg.json` and
//! `sae.safetensors` of a `SparseCoder` trained with `transcode`, reading the MLP's input and
//! writing its output). Every config is checked before a tensor is read.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::Value;

use super::{ActivationOf, Files, Input};
use crate::model::config::Config;

/// Each layer's files of the SAELens or sparsify set in `dir`, in layer order.
pub(super) fn layer_files(dir: &Path, model: &Config) -> Result<Vec<Files>> {
    let mut folders: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("cfg.json").is_file())
            .collect(),
        Err(e) => bail!("cannot read {}: {e}", dir.display()),
    };
    folders.sort();
    let saelens = folders
        .iter()
        .any(|f| f.join("sae_weights.safetensors").is_file());
    let sparsify = folders.iter().any(|f| f.join("sae.safetensors").is_file());
    let read: fn(&Path, &Config) -> Result<(usize, Files)> = match (saelens, sparsify) {
        (true, false) => saelens_layer,
        (false, true) => sparsify_layer,
        (true, true) => bail!(
            "{} holds both SAELens and sparsify folders; give one set at a time",
            dir.display()
        ),
        (false, false) => bail!(
            "cannot read {}: give circuit-tracer's config.yaml, SAELens's folders (cfg.json + \
             sae_weights.safetensors) or sparsify's (h.{{i}}.mlp/ with cfg.json + sae.safetensors)",
            dir.join("config.yaml").display()
        ),
    };
    let mut layers = (folders.iter())
        .map(|f| read(f, model))
        .collect::<Result<Vec<_>>>()?;
    layers.sort_by_key(|(l, _)| *l);
    let found: Vec<usize> = layers.iter().map(|(l, _)| *l).collect();
    ensure!(
        found == (0..model.n_layer).collect::<Vec<_>>(),
        "{} holds transcoders for layers {found:?}; a graph needs one for each of the model's \
         {} layers",
        dir.display(),
        model.n_layer
    );
    Ok(layers.into_iter().map(|(_, f)| f).collect())
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// The layer `i` of a TransformerLens hook `blocks.{i}.{name}`.
fn layer_of(hook: &str, name: &str) -> Option<usize> {
    let rest = hook.strip_prefix("blocks.")?;
    let (i, tail) = rest.split_once('.')?;
    (tail == name).then(|| i.parse().ok()).flatten()
}

/// One SAELens transcoder folder: its layer and files.
fn saelens_layer(folder: &Path, model: &Config) -> Result<(usize, Files)> {
    let path = folder.join("cfg.json");
    let cfg = read_json(&path)?;
    let at = |key: &str| {
        (cfg.get("metadata").and_then(|m| m.get(key)))
            .or_else(|| cfg.get(key))
            .and_then(Value::as_str)
    };
    let bad = |what: String| anyhow!("{}: {what}", path.display());
    let arch = cfg["architecture"].as_str().unwrap_or("standard");
    let (activation, skip) = match arch {
        "transcoder" => (ActivationOf::Relu, false),
        "skip_transcoder" => (ActivationOf::Relu, true),
        "jumprelu_transcoder" => (ActivationOf::JumpRelu, false),
        "jumprelu_skip_transcoder" => (ActivationOf::JumpRelu, true),
        other => {
            return Err(bad(format!(
                "architecture {other} is not a SAELens transcoder"
            )))
        }
    };
    let hook = at("hook_name").ok_or_else(|| bad("no hook_name".into()))?;
    let out = at("hook_name_out").ok_or_else(|| bad("no hook_name_out".into()))?;
    let layer = layer_of(hook, "ln2.hook_normalized")
        .filter(|&l| l < model.n_layer && layer_of(out, "hook_mlp_out") == Some(l))
        .ok_or_else(|| {
            bad(format!(
                "it reads {hook} and writes {out}; gpt2-inspect takes transcoders from \
                 blocks.{{i}}.ln2.hook_normalized to blocks.{{i}}.hook_mlp_out of this model"
            ))
        })?;
    saelens_plain(&cfg, &path, model.n_embd)?;
    let file = folder.join("sae_weights.safetensors");
    let files = Files {
        enc: file.clone(),
        dec: file,
        w_enc: "W_enc".into(),
        threshold: "threshold".into(),
        enc_transposed: true,
        activation,
        skip: Some(skip),
        ..Files::per_layer(PathBuf::new())
    };
    Ok((layer, files))
}

/// A SAELens config `cfg` (at `path`) reads and writes `c` wide, without input
/// normalization or reshaping.
fn saelens_plain(cfg: &Value, path: &Path, c: usize) -> Result<()> {
    for (key, none) in [
        ("normalize_activations", "none"),
        ("reshape_activations", "none"),
    ] {
        let v = cfg[key].as_str().unwrap_or(none);
        ensure!(
            v == none,
            "{}: {key} {v} is not read; give {none}",
            path.display()
        );
    }
    ensure!(
        !cfg["apply_b_dec_to_input"].as_bool().unwrap_or(false),
        "{}: apply_b_dec_to_input is not supported for transcoders (SAELens refuses it too)",
        path.display()
    );
    let width = |key: &str| cfg[key].as_u64().map(|v| v as usize);
    ensure!(
        width("d_in") == Some(c) && width("d_out") == Some(c),
        "{}: d_in {:?} and d_out {:?}; this model is {c} wide",
        path.display(),
        width("d_in"),
        width("d_out"),
    );
    Ok(())
}

/// One sparsify folder `h.{i}.mlp`: its layer and files.
fn sparsify_layer(folder: &Path, model: &Config) -> Result<(usize, Files)> {
    let name = folder.file_name().map(|n| n.to_string_lossy().into_owned());
    let layer = (name.as_deref())
        .and_then(|n| n.strip_prefix("h.")?.strip_suffix(".mlp")?.parse().ok())
        .filter(|&l: &usize| l < model.n_layer)
        .ok_or_else(|| {
            anyhow!(
                "{}: a sparsify transcoder of this model lies in h.{{i}}.mlp, i below {}",
                folder.display(),
                model.n_layer
            )
        })?;
    let path = folder.join("cfg.json");
    let cfg = read_json(&path)?;
    ensure!(
        cfg["transcode"].as_bool() == Some(true),
        "{}: a sparse autoencoder (transcode is not true), not a transcoder",
        path.display()
    );
    ensure!(
        cfg["d_in"].as_u64() == Some(model.n_embd as u64),
        "{}: d_in {}; this model is {} wide",
        path.display(),
        cfg["d_in"],
        model.n_embd
    );
    let k = (cfg["k"].as_u64()).ok_or_else(|| anyhow!("{}: no k", path.display()))? as usize;
    let activation = match cfg["activation"].as_str().unwrap_or("topk") {
        "topk" => ActivationOf::TopK(k),
        "groupmax" => ActivationOf::GroupMax(k),
        other => bail!(
            "{}: activation {other}; sparsify knows topk and groupmax",
            path.display()
        ),
    };
    let file = folder.join("sae.safetensors");
    let files = Files {
        enc: file.clone(),
        dec: file,
        w_enc: "encoder.weight".into(),
        b_enc: "encoder.bias".into(),
        activation,
        skip: Some(cfg["skip_connection"].as_bool().unwrap_or(false)),
        input: Input::LnOut,
        ..Files::per_layer(PathBuf::new())
    };
    Ok((layer, files))
}
