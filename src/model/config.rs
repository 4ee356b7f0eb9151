//! `config.json` of a GPT-2 checkpoint, as Hugging Face's `GPT2Config` reads it.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

/// The fields of `config.json` the forward pass depends on. Names and defaults follow
/// `transformers.GPT2Config`, so a config written by `save_pretrained` reads as is.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub vocab_size: usize,
    pub n_positions: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_head: usize,
    #[serde(default)]
    pub n_inner: Option<usize>,
    #[serde(default = "default_activation")]
    pub activation_function: Activation,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    #[serde(default = "default_true")]
    pub scale_attn_weights: bool,
    #[serde(default)]
    pub scale_attn_by_inverse_layer_idx: bool,
    #[serde(default)]
    pub reorder_and_upcast_attn: bool,
    #[serde(default)]
    pub add_cross_attention: bool,
    #[serde(default)]
    pub model_type: Option<String>,
    /// The classes `save_pretrained` wrote it from; each must be one of GPT-2's
    /// (`GPT2LMHeadModel`, `GPT2Model`, …), whose bodies are the same transformer.
    #[serde(default)]
    pub architectures: Option<Vec<String>>,
    #[serde(default)]
    pub bos_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    /// Whether the LM head is `wte` (HF's default); when false, the checkpoint's own
    /// `lm_head.weight` unembeds, as `GPT2LMHeadModel` does then.
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
}

/// `activation_function`: the parameter-free entries of `transformers.activations.ACT2FN`,
/// each computed as HF computes it (see [`super::activation`]). Several names are one
/// function: HF's `gelu_new`, `gelu_fast`, `gelu_accurate` and the tanh forms of
/// `nn.functional.gelu` differ only in rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// The tanh approximation: HF's `NewGELUActivation` (GPT-2's own).
    #[serde(
        rename = "gelu_new",
        alias = "gelu_pytorch_tanh",
        alias = "gelu_python_tanh",
        alias = "gelu_fast",
        alias = "gelu_accurate"
    )]
    GeluTanh,
    /// The exact erf form, `nn.functional.gelu`.
    #[serde(rename = "gelu", alias = "gelu_python")]
    GeluErf,
    /// `gelu` clipped to [-10, 10] (`ClippedGELUActivation`).
    #[serde(rename = "gelu_10")]
    Gelu10,
    /// `x · sigmoid(1.702 x)`.
    QuickGelu,
    Relu,
    /// `relu(x)²`.
    Relu2,
    Relu6,
    /// `nn.LeakyReLU()`: slope 0.01 below zero.
    LeakyRelu,
    #[serde(alias = "swish")]
    Silu,
    Sigmoid,
    Tanh,
    /// `x · tanh(softplus(x))`.
    Mish,
    /// `x · relu6(x + 3) / 6`.
    Hardswish,
    /// `0.5 · (1 + erf((x − 0.707107) / (0.282095 · √2)))`.
    Laplace,
    /// `√softplus(x)`.
    Sqrtsoftplus,
    /// The identity.
    Linear,
}

/// transformers' GPT-2 classes: one `GPT2Model` under different heads. The LM head is
/// `wte` (or `lm_head.weight`) for all of them, as `GPT2LMHeadModel.from_pretrained` reads
/// their checkpoints.
const GPT2_CLASSES: &[&str] = &[
    "GPT2LMHeadModel",
    "GPT2Model",
    "GPT2DoubleHeadsModel",
    "GPT2ForSequenceClassification",
    "GPT2ForTokenClassification",
    "GPT2ForQuestionAnswering",
];

const MAX_LAYERS: usize = 1024;
const MAX_HEADS: usize = 1024;
const MAX_EMBD: usize = 1 << 16;
const MAX_VOCAB: usize = 1 << 24;
const MAX_POSITIONS: usize = 1 << 20;

fn default_activation() -> Activation {
    Activation::GeluTanh
}
fn default_eps() -> f64 {
    1e-5
}
fn default_true() -> bool {
    true
}

impl Config {
    /// Reads `config.json`; returns the typed config and the raw JSON (shown by `info`).
    pub fn from_file(path: &Path) -> Result<(Self, serde_json::Value)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let raw: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not valid JSON", path.display()))?;
        check_activation(&raw)
            .with_context(|| format!("unsupported config in {}", path.display()))?;
        let cfg: Config = serde_json::from_value(raw.clone())
            .with_context(|| format!("{} is not a GPT-2 config", path.display()))?;
        cfg.validate()
            .with_context(|| format!("unsupported config in {}", path.display()))?;
        Ok((cfg, raw))
    }

    fn validate(&self) -> Result<()> {
        if let Some(t) = &self.model_type {
            if t != "gpt2" {
                bail!("model_type is {t:?}; gpt2-inspect runs GPT-2 models (model_type \"gpt2\") only");
            }
        }
        if let Some(other) =
            (self.architectures.iter().flatten()).find(|a| !GPT2_CLASSES.contains(&a.as_str()))
        {
            bail!(
                "architectures names {other:?}; gpt2-inspect runs GPT-2 models ({}) only",
                GPT2_CLASSES.join(", ")
            );
        }
        if self.n_head == 0 || !self.n_embd.is_multiple_of(self.n_head) {
            bail!(
                "n_embd {} is not divisible by n_head {}",
                self.n_embd,
                self.n_head
            );
        }
        if self.n_layer == 0 || self.vocab_size == 0 || self.n_positions == 0 {
            bail!("n_layer, vocab_size and n_positions must be positive");
        }
        // Far beyond any GPT-2 (gpt2-xl: 48 layers, 25 heads, n_embd 1600, 50257 tokens,
        // 1024 positions), small enough that no size computed from them can overflow or
        // ask for absurd memory before the checkpoint's own shapes are compared.
        for (name, value, max) in [
            ("n_layer", self.n_layer, MAX_LAYERS),
            ("n_head", self.n_head, MAX_HEADS),
            ("n_embd", self.n_embd, MAX_EMBD),
            ("n_inner", self.n_inner(), 4 * MAX_EMBD),
            ("vocab_size", self.vocab_size, MAX_VOCAB),
            ("n_positions", self.n_positions, MAX_POSITIONS),
        ] {
            if value > max {
                bail!("{name} is {value}; gpt2-inspect runs models with {name} up to {max}");
            }
        }
        if self.add_cross_attention {
            bail!("add_cross_attention is set: encoder-decoder GPT-2 variants are not supported");
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.n_embd / self.n_head
    }

    pub fn n_inner(&self) -> usize {
        self.n_inner.unwrap_or(self.n_embd.saturating_mul(4))
    }
}

/// An `activation_function` that is not one of [`Activation`]'s names, refused naming the
/// field (serde's own message would not).
fn check_activation(raw: &serde_json::Value) -> Result<()> {
    let Some(name) = raw.get("activation_function").and_then(|v| v.as_str()) else {
        return Ok(());
    };
    if serde_json::from_value::<Activation>(serde_json::Value::from(name)).is_err() {
        let why = match name {
            "prelu" | "xielu" => "it has weights of its own, which GPT-2 checkpoints do not hold",
            _ => "it is not one of transformers' ACT2FN activations that GPT-2 can use",
        };
        bail!("activation_function is {name:?}, which gpt2-inspect does not compute: {why}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Config;

    fn config(extra: &str) -> anyhow::Result<()> {
        let json = format!(
            r#"{{"vocab_size":50257,"n_positions":1024,"n_embd":64,"n_layer":2,"n_head":4{extra}}}"#
        );
        let cfg: Config = serde_json::from_str(&json)?;
        cfg.validate()
    }

    #[test]
    fn unknown_activations_are_refused_naming_the_field() {
        for (name, why) in [("prelu", "weights of its own"), ("gelu_9", "ACT2FN")] {
            let raw = serde_json::json!({ "activation_function": name });
            let e = super::check_activation(&raw).unwrap_err().to_string();
            assert!(
                e.contains("activation_function") && e.contains(name) && e.contains(why),
                "{e}"
            );
        }
        super::check_activation(&serde_json::json!({"activation_function": "quick_gelu"})).unwrap();
    }

    #[test]
    fn only_gpt2_model_types_and_classes_are_run() {
        config("").unwrap();
        config(r#","model_type":"gpt2","architectures":["GPT2LMHeadModel"]"#).unwrap();
        config(r#","architectures":["GPT2ForSequenceClassification"]"#).unwrap();
        let e = config(r#","architectures":["LlamaForCausalLM"]"#).unwrap_err();
        assert!(e.to_string().contains("\"LlamaForCausalLM\""), "{e}");
        let e = config(r#","model_type":"gpt_neo""#).unwrap_err();
        assert!(e.to_string().contains("\"gpt_neo\""), "{e}");
    }
}
