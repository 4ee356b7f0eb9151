//! An SAE's `cfg.json` as SAELens writes it (6.x, and the flat config before 6.0): its
//! widths, hook, architecture and input normalization, checked before any tensor is read.

use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde_json::Value;

/// The activation of the encoder (SAELens's `architecture`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Architecture {
    /// ReLU.
    Standard,
    /// ReLU of the `k` largest pre-activations, the rest zero; `rescale`:
    /// `rescale_acts_by_decoder_norm` (pre-activations times ‖W_dec[f]‖, and divided by it
    /// again before decoding).
    TopK { k: usize, rescale: bool },
    /// ReLU where the pre-activation exceeds `threshold`, else zero.
    JumpRelu,
    /// A gate (`W_enc`, `b_gate`) times a magnitude (`W_enc · exp(r_mag)`, `b_mag`).
    Gated,
}

impl Architecture {
    /// `k` of a top-k SAE.
    pub fn k(self) -> Option<usize> {
        match self {
            Architecture::TopK { k, .. } => Some(k),
            Architecture::Standard | Architecture::JumpRelu | Architecture::Gated => None,
        }
    }

    /// SAELens's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Standard => "standard",
            Architecture::TopK { .. } => "topk",
            Architecture::JumpRelu => "jumprelu",
            Architecture::Gated => "gated",
        }
    }
}

/// `normalize_activations`: what SAELens does to the input before encoding and undoes after
/// decoding (`expected_average_only_in` does nothing at inference in `load_from_disk`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Normalize {
    None,
    ExpectedAverageOnlyIn,
    /// x · √d_in / ‖x‖, undone after decoding.
    ConstantNormRescale,
    /// (x − mean) / (std + 1e-5), torch's unbiased std, undone after decoding.
    LayerNorm,
}

#[derive(Debug, Clone)]
pub struct SaeConfig {
    pub d_in: usize,
    pub d_sae: usize,
    pub architecture: Architecture,
    pub apply_b_dec_to_input: bool,
    pub normalize: Normalize,
    /// The hook it reads, in TransformerLens's names (`blocks.8.hook_resid_pre`).
    pub hook: String,
    /// Whether it was trained with a BOS before every text (pre-6.0 configs: true).
    pub prepend_bos: bool,
    /// `model_from_pretrained_kwargs.center_writing_weights`, where the config says.
    pub centered: Option<bool>,
}

/// Sizes no SAE of a GPT-2 reaches; checked before anything is read.
pub(super) const MAX_D_IN: usize = 1 << 16;

pub(super) const MAX_D_SAE: usize = 1 << 24;

impl SaeConfig {
    /// Reads `cfg.json`: the 6.x config (`metadata.hook_name`, `architecture`) or the flat
    /// one SAELens wrote before 6.0 (`hook_point`, `activation_fn_str`, booleans).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let raw: Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        Self::from_json(&raw)
            .with_context(|| format!("unsupported SAE config in {}", path.display()))
    }

    pub fn from_json(raw: &Value) -> Result<Self> {
        let version = raw
            .get("sae_lens_version")
            .or_else(|| raw["metadata"].get("sae_lens_version"));
        let v6 = version
            .and_then(Value::as_str)
            .and_then(|v| v.split('.').next()?.parse::<u32>().ok());
        let v6 = v6.is_some_and(|major| major >= 6);
        let field = |k: &str| match v6 {
            true => raw.get(k).or_else(|| raw["metadata"].get(k)),
            false => raw.get(k),
        };
        let size = |k: &str, max: usize| -> Result<usize> {
            let n = field(k)
                .and_then(Value::as_u64)
                .ok_or_else(|| anyhow!("{k} is missing or not a count"))?;
            ensure!(
                n > 0 && n as usize <= max,
                "{k} is {n}; an SAE of GPT-2 has 1 to {max}"
            );
            Ok(n as usize)
        };
        let (d_in, d_sae) = (size("d_in", MAX_D_IN)?, size("d_sae", MAX_D_SAE)?);
        let hook = match v6 {
            true => field("hook_name"),
            false => raw.get("hook_point").or_else(|| raw.get("hook_name")),
        };
        let hook = hook
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("no hook_name (hook_point)"))?;
        if let Some(r) = field("reshape_activations")
            .and_then(Value::as_str)
            .filter(|r| *r != "none")
        {
            bail!("reshape_activations {r:?} is not supported (only SAEs of whole activations)");
        }
        let centered = (field("model_from_pretrained_kwargs"))
            .and_then(|k| k.get("center_writing_weights"))
            .and_then(Value::as_bool);
        Ok(SaeConfig {
            d_in,
            d_sae,
            architecture: architecture(raw, v6, d_sae)?,
            apply_b_dec_to_input: field("apply_b_dec_to_input")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            normalize: normalize(field("normalize_activations"))?,
            hook: hook.to_string(),
            prepend_bos: field("prepend_bos")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            centered,
        })
    }
}

pub(super) fn architecture(raw: &Value, v6: bool, d_sae: usize) -> Result<Architecture> {
    let activation = raw
        .get("activation_fn_str")
        .or_else(|| raw.get("activation_fn"));
    let activation = activation.and_then(Value::as_str);
    let old_k = raw["activation_fn_kwargs"].get("k").and_then(Value::as_u64);
    let name = match (raw.get("architecture").and_then(Value::as_str), activation) {
        (Some(a), _) if v6 || a != "standard" => a.to_string(),
        (_, Some("topk")) if !v6 && old_k.is_some() => "topk".to_string(),
        (_, Some(a)) if !v6 && a != "relu" => bail!("activation_fn {a:?} is not supported"),
        (a, _) => a.unwrap_or("standard").to_string(),
    };
    Ok(match name.as_str() {
        "standard" => Architecture::Standard,
        "topk" => {
            let k = raw
                .get("k")
                .and_then(Value::as_u64)
                .or(old_k)
                .ok_or_else(|| anyhow!("a topk SAE without k"))?;
            ensure!(
                k >= 1 && k as usize <= d_sae,
                "k is {k}; a topk SAE keeps 1 to d_sae ({d_sae}) features"
            );
            let rescale = raw
                .get("rescale_acts_by_decoder_norm")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Architecture::TopK {
                k: k as usize,
                rescale,
            }
        }
        "jumprelu" => Architecture::JumpRelu,
        "gated" => Architecture::Gated,
        other => bail!("architecture {other:?} is not supported (standard, topk, jumprelu, gated)"),
    })
}

pub(super) fn normalize(v: Option<&Value>) -> Result<Normalize> {
    Ok(match v {
        None | Some(Value::Null) | Some(Value::Bool(false)) => Normalize::None,
        Some(Value::Bool(true)) => Normalize::ExpectedAverageOnlyIn,
        Some(Value::String(s)) => match s.as_str() {
            "none" => Normalize::None,
            "expected_average_only_in" => Normalize::ExpectedAverageOnlyIn,
            "constant_norm_rescale" => Normalize::ConstantNormRescale,
            "layer_norm" => Normalize::LayerNorm,
            other => bail!("normalize_activations {other:?} is not supported"),
        },
        Some(other) => bail!("normalize_activations {other} is not supported"),
    })
}
