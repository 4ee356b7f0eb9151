//! A tuned lens as tuned-lens saves it (`TunedLens.save`): a directory with `config.json`
//! (`d_model`, `num_hidden_layers`, `bias`) and `params.pt`, the state dict of its layer
//! translators (`{i}.weight` `(d_model, d_model)` as `nn.Linear` stores it, out × in, and
//! `{i}.bias`), one per layer. Read through the checkpoint reader (torch's zip, never
//! unpickled beyond tensors); a lens for another model is refused with one line.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use serde::Deserialize;

use crate::analysis::lens::Translators;
use crate::load::checkpoint::Checkpoint;
use crate::model::Config;

/// What tuned-lens's config.json says of the model the lens was trained for.
#[derive(Debug, Deserialize)]
struct TunedLensConfig {
    d_model: usize,
    num_hidden_layers: usize,
    #[serde(default = "yes")]
    bias: bool,
}

fn yes() -> bool {
    true
}

/// The translators of the tuned lens whose `config.json` and `params.pt` these are, checked
/// against the model's `cfg`.
pub fn read(config_path: &Path, params: &Path, cfg: &Config) -> Result<Translators> {
    let dir = config_path.parent().unwrap_or(Path::new("."));
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let lens: TunedLensConfig = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a tuned lens's config.json",
            config_path.display()
        )
    })?;
    if (lens.num_hidden_layers, lens.d_model) != (cfg.n_layer, cfg.n_embd) {
        bail!(
            "the tuned lens in {} is for a model of {} layers and d_model {}; this model has {} \
             and {}",
            dir.display(),
            lens.num_hidden_layers,
            lens.d_model,
            cfg.n_layer,
            cfg.n_embd
        );
    }
    let ckpt = Checkpoint::open(params)?;
    let reader = ckpt.reader(&Device::Cpu, DType::F32)?;
    let d = cfg.n_embd;
    let mut translators = Translators::default();
    for layer in 0..cfg.n_layer {
        let weight = reader.pp(layer).get("weight")?;
        if weight.dims() != [d, d] {
            bail!(
                "{}: translator {layer}'s weight is {:?}, not [{d}, {d}]",
                params.display(),
                weight.dims()
            );
        }
        let bias = match lens.bias {
            true => Some(reader.pp(layer).get("bias")?),
            false => None,
        };
        if bias.as_ref().is_some_and(|b| b.dims() != [d]) {
            bail!(
                "{}: translator {layer}'s bias is not [{d}]",
                params.display()
            );
        }
        translators.weight.push(weight.to_dtype(DType::F32)?);
        translators
            .bias
            .push(bias.map(|b| b.to_dtype(DType::F32)).transpose()?);
    }
    Ok(translators)
}
