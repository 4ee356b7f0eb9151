//! Sparse autoencoders in SAELens's saved format (`cfg.json` + `sae_weights.safetensors`),
//! read as `SAE.load_from_disk` reads them, and their arithmetic as SAELens's classes do it:
//! `encode` (standard, topk, jumprelu, gated; the input normalizations) and `decode`.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, ensure, Context, Result};
use candle_core::{DType, Device, Tensor, D};
use serde_json::Value;

use crate::load::checkpoint::{Checkpoint, Weights};
use crate::model::config::Config;
use crate::model::hooks::Hook;
use crate::model::weights::{Bias, Weight};

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
const MAX_D_IN: usize = 1 << 16;
const MAX_D_SAE: usize = 1 << 24;

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

fn architecture(raw: &Value, v6: bool, d_sae: usize) -> Result<Architecture> {
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

fn normalize(v: Option<&Value>) -> Result<Normalize> {
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

/// The encoder of each [`Architecture`], with the tensors that architecture has (`(d_sae,)`
/// each): what `encode` applies after `W_enc`, and what `decode` undoes before `W_dec`.
enum Encoder {
    Standard {
        b_enc: Tensor,
    },
    TopK {
        b_enc: Tensor,
        k: usize,
        /// ‖W_dec[f]‖, when the SAE rescales by it (`rescale_acts_by_decoder_norm`).
        norms: Option<Tensor>,
    },
    JumpRelu {
        b_enc: Tensor,
        threshold: Tensor,
    },
    Gated {
        b_gate: Tensor,
        r_mag: Tensor,
        b_mag: Tensor,
    },
}

/// An SAE's weights, `(d_in, d_sae)` encoder and `(d_sae, d_in)` decoder, in f32.
pub struct Sae {
    pub cfg: SaeConfig,
    pub dir: PathBuf,
    /// `(d_in, d_sae)` and `(d_sae, d_in)`, computed from the mapped file (nothing copied).
    w_enc: Weight,
    w_dec: Weight,
    b_dec: Tensor,
    /// What the encoder's architecture adds to `W_enc`, each with its own tensors.
    encoder: Encoder,
    /// log10 of each feature's firing frequency in training (`sparsity.safetensors`, as
    /// SAELens's trainer saves it: log10(frequency + 1e-10)), when the SAE has the file.
    pub log_sparsity: Option<Vec<f32>>,
}

impl Sae {
    /// Reads `dir/cfg.json` and `dir/sae_weights.safetensors`.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_from(
            &dir.join("cfg.json"),
            &dir.join("sae_weights.safetensors"),
            dir,
        )
    }

    /// Reads the config and the weights, every tensor's shape checked against the config
    /// before it is read; `dir` names the SAE in messages.
    pub fn load_from(cfg: &Path, path: &Path, dir: &Path) -> Result<Self> {
        let cfg = SaeConfig::from_file(cfg)?;
        let ckpt = Checkpoint::open_as(path, Weights::Mapped)?;
        let want = expected_tensors(&cfg);
        check_shapes(&ckpt, &want, &cfg, path)?;
        let r = ckpt.reader(&Device::Cpu, DType::F32)?;
        let get = |n: &str| -> Result<Tensor> {
            let t = r.get(n)?;
            ensure!(
                crate::model::tap::all_finite(&t)?,
                "tensor {n} in {} holds NaN or infinity",
                path.display()
            );
            Ok(t)
        };
        let matrix = |n: &str| -> Result<Weight> {
            let w = r.weight(n)?;
            let finite = match &w {
                Weight::Mapped(m) => m.values().iter().all(|v| v.is_finite()),
                Weight::Tensor(t) => crate::model::tap::all_finite(t)?,
            };
            ensure!(
                finite,
                "tensor {n} in {} holds NaN or infinity",
                path.display()
            );
            Ok(w)
        };
        let w_dec = matrix("W_dec")?;
        let encoder = match cfg.architecture {
            Architecture::Standard => Encoder::Standard {
                b_enc: get("b_enc")?,
            },
            Architecture::TopK { k, rescale } => Encoder::TopK {
                b_enc: get("b_enc")?,
                k,
                norms: match rescale {
                    true => Some(w_dec.tensor()?.sqr()?.sum(D::Minus1)?.sqrt()?),
                    false => None,
                },
            },
            Architecture::JumpRelu => Encoder::JumpRelu {
                b_enc: get("b_enc")?,
                threshold: get("threshold")?,
            },
            Architecture::Gated => Encoder::Gated {
                b_gate: get("b_gate")?,
                r_mag: get("r_mag")?,
                b_mag: get("b_mag")?,
            },
        };
        Ok(Sae {
            w_enc: matrix("W_enc")?,
            w_dec,
            b_dec: get("b_dec")?,
            encoder,
            cfg,
            dir: dir.to_path_buf(),
            log_sparsity: None,
        })
    }

    /// Reads `sparsity.safetensors` (tensor `sparsity`, `(d_sae,)`) into
    /// [`Self::log_sparsity`].
    pub fn read_sparsity(&mut self, path: &Path) -> Result<()> {
        let ckpt = Checkpoint::open_as(path, Weights::Mapped)?;
        let t = ckpt.tensors().iter().find(|t| t.name == "sparsity");
        let t = t.ok_or_else(|| anyhow!("{} has no tensor sparsity", path.display()))?;
        ensure!(
            t.shape == [self.cfg.d_sae],
            "tensor sparsity in {} has shape {:?}; the SAE has {} features",
            path.display(),
            t.shape,
            self.cfg.d_sae
        );
        let v = (ckpt.reader(&Device::Cpu, DType::F32)?.get("sparsity")?).to_vec1::<f32>()?;
        ensure!(
            v.iter().all(|x| !x.is_nan() && *x <= 0.0),
            "tensor sparsity in {} holds NaN or a log10 frequency above 0",
            path.display()
        );
        self.log_sparsity = Some(v);
        Ok(())
    }

    /// Feature activations `(T, d_sae)` of `x` `(T, d_in)`, and what undoes the input's
    /// normalization in [`Self::decode`].
    pub fn encode(&self, x: &Tensor) -> Result<(Tensor, Norm)> {
        let (sae_in, norm) = Norm::apply(self.cfg.normalize, x)?;
        let sae_in = match self.cfg.apply_b_dec_to_input {
            true => sae_in.broadcast_sub(&self.b_dec)?,
            false => sae_in,
        };
        let pre = |b: &Tensor| -> Result<Tensor> {
            self.w_enc
                .matmul(&sae_in, &Bias::new(b.clone(), &self.w_enc)?)
        };
        let acts = match &self.encoder {
            Encoder::Standard { b_enc } => pre(b_enc)?.relu()?,
            Encoder::TopK { b_enc, k, norms } => {
                let mut h = pre(b_enc)?;
                if let Some(norms) = norms {
                    h = h.broadcast_mul(norms)?;
                }
                top_k_relu(&h, *k)?
            }
            Encoder::JumpRelu { b_enc, threshold } => {
                let h = pre(b_enc)?;
                let keep = h.broadcast_gt(threshold)?;
                (h.relu()? * keep.to_dtype(DType::F32)?)?
            }
            Encoder::Gated {
                b_gate,
                r_mag,
                b_mag,
            } => {
                let active = pre(b_gate)?.gt(0f32)?.to_dtype(DType::F32)?;
                let w_mag = self.w_enc.tensor()?.broadcast_mul(&r_mag.exp()?)?;
                let mags = sae_in.matmul(&w_mag)?.broadcast_add(b_mag)?.relu()?;
                (active * mags)?
            }
        };
        Ok((acts, norm))
    }

    /// The reconstruction `(T, d_in)` of feature activations `(T, d_sae)`.
    pub fn decode(&self, acts: &Tensor, norm: &Norm) -> Result<Tensor> {
        let acts = match &self.encoder {
            Encoder::TopK {
                norms: Some(norms), ..
            } => acts.broadcast_div(norms)?,
            Encoder::TopK { norms: None, .. }
            | Encoder::Standard { .. }
            | Encoder::JumpRelu { .. }
            | Encoder::Gated { .. } => acts.clone(),
        };
        let out = (self.w_dec).matmul(&acts, &Bias::new(self.b_dec.clone(), &self.w_dec)?)?;
        norm.undo(&out)
    }

    /// The model's hook this SAE reads, checked to exist and to be `d_in` wide.
    pub fn hook(&self, cfg: &Config) -> Result<Hook> {
        let name = &self.cfg.hook;
        let hook = Hook::all(cfg).into_iter().find(|h| h.to_string() == *name);
        let hook = hook.ok_or_else(|| {
            anyhow!("the SAE in {} reads {name}, which this model does not have (`gpt2-inspect hooks` lists its names)", self.dir.display())
        })?;
        let width = *hook.shape(cfg, 1, 1).last().expect("a hook has dims");
        ensure!(
            width == self.cfg.d_in && hook.shape(cfg, 1, 1).len() == 3,
            "the SAE in {} has d_in {}, but {name} of this model is {width} wide",
            self.dir.display(),
            self.cfg.d_in
        );
        Ok(hook)
    }

    /// Feature `f`'s decoder direction W_dec[f] `(d_in,)`.
    pub fn direction(&self, f: usize) -> Result<Tensor> {
        let id = Tensor::new(&[f as u32], &Device::Cpu)?;
        Ok(self.w_dec.embedding(&id)?.squeeze(0)?)
    }
}

/// ReLU of each row's `k` largest entries, the others zero: `(T, n)`.
fn top_k_relu(h: &Tensor, k: usize) -> Result<Tensor> {
    let (t, n) = h.dims2()?;
    let rows = h.to_vec2::<f32>()?;
    let mut out = vec![0f32; t * n];
    for (r, row) in rows.iter().enumerate() {
        let mut idx: Vec<usize> = (0..n).collect();
        // torch.topk's order: larger first; among equals, the lower index.
        idx.select_nth_unstable_by(k - 1, |&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
        for &i in &idx[..k] {
            out[r * n + i] = row[i].max(0.0);
        }
    }
    Ok(Tensor::from_vec(out, (t, n), h.device())?)
}

/// What an input normalization did, to be undone after decoding.
pub enum Norm {
    None,
    /// x was multiplied by `coeff` `(T, 1)`.
    Scaled(Tensor),
    /// x was centred by `mu` and divided by `std + 1e-5` (`(T, 1)` each).
    Standardized {
        mu: Tensor,
        std: Tensor,
    },
}

impl Norm {
    fn apply(how: Normalize, x: &Tensor) -> Result<(Tensor, Norm)> {
        Ok(match how {
            Normalize::None | Normalize::ExpectedAverageOnlyIn => (x.clone(), Norm::None),
            Normalize::ConstantNormRescale => {
                let d = x.dim(D::Minus1)? as f64;
                let coeff = x
                    .sqr()?
                    .sum_keepdim(D::Minus1)?
                    .sqrt()?
                    .recip()?
                    .affine(d.sqrt(), 0.0)?;
                (x.broadcast_mul(&coeff)?, Norm::Scaled(coeff))
            }
            Normalize::LayerNorm => {
                let n = x.dim(D::Minus1)? as f64;
                let mu = x.mean_keepdim(D::Minus1)?;
                let centred = x.broadcast_sub(&mu)?;
                let std = (centred.sqr()?.sum_keepdim(D::Minus1)? / (n - 1.0))?.sqrt()?;
                let y = centred.broadcast_div(&(&std + 1e-5)?)?;
                (y, Norm::Standardized { mu, std })
            }
        })
    }

    fn undo(&self, y: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Norm::None => y.clone(),
            Norm::Scaled(coeff) => y.broadcast_div(coeff)?,
            Norm::Standardized { mu, std } => y.broadcast_mul(std)?.broadcast_add(mu)?,
        })
    }
}

/// One text through the model and an SAE at its hook: the feature activations, how well
/// they reconstruct the activation (SAELens's evals: `mse` = mean over tokens of
/// ‖x − x̂‖², `fve` = 1 − mse / (E‖x‖² − ‖E x‖²)), and the next-token loss with the
/// reconstruction spliced in at every position (cross-entropy over the text's next tokens,
/// and KL(clean ‖ spliced) averaged over positions).
pub struct SaeRun {
    /// `(T, d_sae)`.
    pub acts: Tensor,
    pub mse: f64,
    pub fve: f64,
    /// `None` for a one-token text (nothing to predict).
    pub ce_clean: Option<f64>,
    pub ce_spliced: Option<f64>,
    pub kl_spliced: f64,
}

/// The tensors an SAE of `cfg`'s architecture has, with their shapes.
fn expected_tensors(cfg: &SaeConfig) -> Vec<(&'static str, Vec<usize>)> {
    let (i, s) = (cfg.d_in, cfg.d_sae);
    let mut want = vec![
        ("W_enc", vec![i, s]),
        ("W_dec", vec![s, i]),
        ("b_dec", vec![i]),
    ];
    match cfg.architecture {
        Architecture::Gated => {
            want.extend([("b_gate", vec![s]), ("r_mag", vec![s]), ("b_mag", vec![s])])
        }
        Architecture::JumpRelu => want.extend([("b_enc", vec![s]), ("threshold", vec![s])]),
        Architecture::Standard | Architecture::TopK { .. } => want.push(("b_enc", vec![s])),
    }
    want
}

/// Each of `want` is in `ckpt` with its shape, checked before anything is read.
fn check_shapes(
    ckpt: &Checkpoint,
    want: &[(&str, Vec<usize>)],
    cfg: &SaeConfig,
    path: &Path,
) -> Result<()> {
    let (i, s) = (cfg.d_in, cfg.d_sae);
    for (name, shape) in want {
        let t = ckpt.tensors().iter().find(|t| t.name == *name);
        let t = t.ok_or_else(|| anyhow!("{} has no tensor {name}", path.display()))?;
        ensure!(
            t.shape == *shape,
            "tensor {name} in {} has shape {:?}; cfg.json (d_in {i}, d_sae {s}) implies {shape:?}",
            path.display(),
            t.shape
        );
    }
    Ok(())
}

/// Runs `ids` `(1, T)`; `centered`: the SAE reads the residual stream with its mean over
/// d_model removed (what a TransformerLens model with `center_writing_weights` carries),
/// and the reconstruction gets the mean back before it is spliced in (no reader of the
/// residual stream sees the mean: each starts with a layer norm).
pub fn run(
    model: &crate::model::Gpt2,
    sae: &Sae,
    hook: Hook,
    ids: &Tensor,
    centered: bool,
) -> Result<SaeRun> {
    let (x, resume) = record_block_input(model, ids, hook)?; // (T, d), block l's input
    let (input, mean) = centre(&x, centered)?;
    let (acts, norm) = sae.encode(&input)?;
    let recon = sae.decode(&acts, &norm)?; // (T, d)
    let (mse, fve) = reconstruction(&input, &recon)?;
    let back = match mean {
        Some(mean) => recon.broadcast_add(&mean)?,
        None => recon,
    };
    let back = back.to_dtype(model.dtype())?;
    let (clean, spliced) = clean_and_spliced(model, ids, hook, &back, resume)?; // (T, V) each
    let ids = ids.squeeze(0)?.to_vec1::<u32>()?;
    let kl = clean
        .iter()
        .zip(&spliced)
        .map(|(c, s)| crate::dist::kl(c, s))
        .sum::<f64>();
    Ok(SaeRun {
        acts,
        mse,
        fve,
        ce_clean: cross_entropy(&clean, &ids),
        ce_spliced: cross_entropy(&spliced, &ids),
        kl_spliced: kl / clean.len() as f64,
    })
}

/// The activation `(T, d)` at `hook` of `ids` `(1, T)` in f32, and for a hook inside block
/// `l` that block's input `(1, T, d)`: where the clean and spliced runs part.
fn record_block_input(
    model: &crate::model::Gpt2,
    ids: &Tensor,
    hook: Hook,
) -> Result<(Tensor, Option<(usize, Tensor)>)> {
    let Hook::Block(l, _) = hook else {
        let (x, ()) = record_at(model, ids, hook, crate::model::NoLogits)?;
        return Ok((x.to_dtype(DType::F32)?, None));
    };
    let resid_pre = Hook::Block(l, crate::model::hooks::BlockHook::ResidPre);
    let spec = crate::model::CaptureSpec::new([resid_pre, hook]);
    let req = crate::model::Request {
        capture: spec.clone(),
        logits: crate::model::NoLogits,
    };
    let mut seen = crate::model::Activations::default();
    {
        let mut record = crate::model::tap::collect(&spec, &mut seen);
        model.run(crate::model::Inputs::new(ids), &req, &mut record)?;
    }
    let x = seen.get(hook)?.squeeze(0)?.to_dtype(DType::F32)?;
    Ok((x, Some((l, seen.get(resid_pre)?.clone()))))
}

/// Logits `[T][V]`.
type Rows = Vec<Vec<f32>>;

/// All positions' logits `(T, V)` of the clean run and of the run with `back` `(T, d)` in
/// place of the activation at `hook`: from block `l`'s input as one batch of two when
/// `resume` gives it, else two whole runs.
fn clean_and_spliced(
    model: &crate::model::Gpt2,
    ids: &Tensor,
    hook: Hook,
    back: &Tensor,
    resume: Option<(usize, Tensor)>,
) -> Result<(Rows, Rows)> {
    use crate::model::tap::Edit;
    use crate::model::{AllLogits, CaptureSpec, Inputs, Request};
    let req = Request {
        capture: CaptureSpec::default(),
        logits: AllLogits,
    };
    // The SAE computes in f32; an f16 or bf16 model gets the reconstruction in its dtype,
    // and its logits are read as f32.
    let back = &back.to_dtype(model.dtype())?;
    let rows = |t: Tensor| -> Result<Rows> { Ok(t.to_dtype(DType::F32)?.to_vec2()?) };
    let Some((l, resid_pre)) = resume else {
        let clean = model.run(Inputs::new(ids), &req, &mut crate::model::tap::Identity)?;
        let mut splice = Edit {
            hook,
            edit: |_: &Tensor| Ok(back.unsqueeze(0)?),
        };
        let spliced = model.run(Inputs::new(ids), &req, &mut splice)?;
        return Ok((rows(clean.squeeze(0)?)?, rows(spliced.squeeze(0)?)?));
    };
    // Row 0 runs clean, row 1 gets the reconstruction at the hook.
    let pair = Tensor::cat(&[ids, ids], 0)?; // (2, T)
    let start = Tensor::cat(&[&resid_pre, &resid_pre], 0)?; // (2, T, d)
    let mut splice = Edit {
        hook,
        edit: |x: &Tensor| Ok(Tensor::cat(&[&x.narrow(0, 0, 1)?, &back.unsqueeze(0)?], 0)?),
    };
    let inputs = Inputs {
        start: Some((l, &start)),
        ..Inputs::new(&pair)
    };
    let logits = model.run(inputs, &req, &mut splice)?; // (2, T, V)
    Ok((rows(logits.get(0)?)?, rows(logits.get(1)?)?))
}

/// The activation `(T, d)` at `hook` of `ids` `(1, T)`, and the logits `logits` asks for.
fn record_at<W: crate::model::WantLogits>(
    model: &crate::model::Gpt2,
    ids: &Tensor,
    hook: Hook,
    logits: W,
) -> Result<(Tensor, W::Out)> {
    // The spec names the hook so that a run without logits goes as far as it.
    let req = crate::model::Request {
        capture: crate::model::CaptureSpec::new([hook]),
        logits,
    };
    let mut seen = None;
    let mut record = crate::model::tap::Edit {
        hook,
        edit: |x: &Tensor| {
            seen = Some(x.squeeze(0)?);
            Ok(x.clone())
        },
    };
    let out = model.run(crate::model::Inputs::new(ids), &req, &mut record)?;
    let x = seen.ok_or_else(|| anyhow!("the forward pass never reached {hook}"))?;
    Ok((x, out))
}

/// The SAE's feature activations `(T, d_sae)` for `ids` `(1, T)` (no logits computed).
pub fn activations(
    model: &crate::model::Gpt2,
    sae: &Sae,
    hook: Hook,
    ids: &Tensor,
    centered: bool,
) -> Result<Tensor> {
    let (x, ()) = record_at(model, ids, hook, crate::model::NoLogits)?;
    encode_at(sae, &x, centered)
}

/// The SAE's feature activations `(N, d_sae)` of the hook's activation `x` `(N, d_in)` (in
/// the model's dtype), centred first when the SAE reads a centred stream.
pub fn encode_at(sae: &Sae, x: &Tensor, centered: bool) -> Result<Tensor> {
    let x = x.to_dtype(DType::F32)?;
    Ok(sae.encode(&centre(&x, centered)?.0)?.0)
}

/// `x` `(N, d)` less its mean `(N, 1)` over d_model when `centered` (what a TransformerLens
/// model with `center_writing_weights` carries in its residual stream), and that mean.
fn centre(x: &Tensor, centered: bool) -> Result<(Tensor, Option<Tensor>)> {
    Ok(match centered {
        true => {
            let mean = x.mean_keepdim(D::Minus1)?;
            (x.broadcast_sub(&mean)?, Some(mean))
        }
        false => (x.clone(), None),
    })
}

/// `(mse, fve)` of a reconstruction `(T, d)`, in f64.
fn reconstruction(x: &Tensor, recon: &Tensor) -> Result<(f64, f64)> {
    let (x, r) = (x.to_dtype(DType::F64)?, recon.to_dtype(DType::F64)?);
    let t = x.dim(0)? as f64;
    let mse = (&x - &r)?.sqr()?.sum_all()?.to_scalar::<f64>()? / t;
    let mean_sq = x.sqr()?.sum_all()?.to_scalar::<f64>()? / t;
    let mean = x.mean(0)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
    let total = mean_sq - mean;
    let fve = match total < 1e-10 {
        true => f64::from(u8::from(mse < 1e-10)),
        false => 1.0 - mse / total,
    };
    Ok((mse, fve))
}

/// Mean −log p(ids[t+1] | logits[t]) over the text, `None` with nothing to predict.
fn cross_entropy(logits: &[Vec<f32>], ids: &[u32]) -> Option<f64> {
    let n = ids.len().checked_sub(1).filter(|&n| n > 0)?;
    let sum: f64 = (0..n)
        .map(|t| -crate::dist::log_prob(&logits[t], ids[t + 1] as usize))
        .sum();
    Some(sum / n as f64)
}

/// What a steering flag does to one feature at every position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Change {
    /// `--steer F=α`: x + α · W_dec[f].
    Add(f64),
    /// `--clamp F=v` (`--ablate-feature F`: v = 0): x + (v − f(x)) · W_dec[f], the error
    /// term kept.
    Clamp(f64),
}

/// `x` `(B, T, d_in)` with every change applied, each feature's activation `f(x)` read from
/// the unchanged `x` (centred first when the SAE reads a centred stream).
pub fn steer(sae: &Sae, x: &Tensor, changes: &[(usize, Change)], centered: bool) -> Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    let mut acts = None;
    if changes.iter().any(|(_, c)| matches!(c, Change::Clamp(_))) {
        acts = Some(encode_at(sae, &x.reshape((b * t, d))?, centered)?); // (B·T, d_sae)
    }
    // The SAE computes in f32: an f16 or bf16 stream is changed in f32 and given back in
    // its own dtype.
    let mut out = x.to_dtype(DType::F32)?;
    for &(f, change) in changes {
        ensure!(
            f < sae.cfg.d_sae,
            "feature {f} is out of range: the SAE has {} features (0 to {})",
            sae.cfg.d_sae,
            sae.cfg.d_sae - 1
        );
        let direction = sae.direction(f)?; // (d_in,)
        let scale = match (change, &acts) {
            (Change::Add(alpha), _) => Tensor::full(alpha as f32, (b * t, 1), x.device())?,
            (Change::Clamp(v), Some(a)) => a.narrow(1, f, 1)?.affine(-1.0, v)?, // (B·T, 1)
            (Change::Clamp(_), None) => unreachable!("encoded above"),
        };
        let delta = scale
            .broadcast_mul(&direction.unsqueeze(0)?)?
            .reshape((b, t, d))?;
        out = (out + delta)?;
    }
    Ok(out.to_dtype(x.dtype())?)
}

/// Feature `f`'s decoder direction read through the unembedding, `W_dec[f] · W_Uᵀ` `(V,)`:
/// the logits it adds directly (Neuronpedia's logit tables).
pub fn direct_logits(model: &crate::model::Gpt2, sae: &Sae, f: usize) -> Result<Vec<f32>> {
    ensure!(
        f < sae.cfg.d_sae,
        "feature {f} is out of range: the SAE has {} features (0 to {})",
        sae.cfg.d_sae,
        sae.cfg.d_sae - 1
    );
    let row = sae.direction(f)?.unsqueeze(0)?.to_dtype(model.dtype())?; // (1, d_in)
    Ok(model
        .unembedding()
        .matmul_t(&row)?
        .flatten_all()?
        .to_dtype(DType::F32)?
        .to_vec1()?)
}

/// A feature's activations over a corpus, kept in bounded memory: how often it fires, a
/// histogram of its non-zero activations whose range doubles as larger ones arrive, and
/// the contexts where it peaked highest.
#[derive(Debug, Clone)]
pub struct FeatureStats {
    pub tokens: u64,
    pub active: u64,
    /// Bin i counts activations in [i·w, (i+1)·w), w = `top / BINS`.
    pub bins: Vec<u64>,
    pub top: f32,
    /// The texts where it peaked highest, highest first, at most `keep`.
    pub peaks: Vec<Peak>,
    keep: usize,
    window: usize,
}

/// Where a feature peaked in one text, with its activations `window` tokens either side.
#[derive(Debug, Clone)]
pub struct Peak {
    pub value: f32,
    pub text: usize,
    pub position: usize,
    /// The first position of `acts`.
    pub start: usize,
    pub acts: Vec<f32>,
}

const BINS: usize = 32;

impl FeatureStats {
    pub fn new(keep: usize, window: usize) -> Self {
        let bins = vec![0; BINS];
        FeatureStats {
            tokens: 0,
            active: 0,
            bins,
            top: 1.0,
            peaks: Vec::new(),
            keep,
            window,
        }
    }

    /// One text's activations of the feature, a value per token.
    pub fn add(&mut self, text: usize, acts: &[f32]) {
        self.tokens += acts.len() as u64;
        for &a in acts.iter().filter(|&&a| a != 0.0) {
            self.active += 1;
            while a.abs() >= self.top {
                // Twice the range: each pair of bins becomes one.
                let merged: Vec<u64> = self.bins.chunks(2).map(|p| p.iter().sum()).collect();
                self.bins = merged
                    .into_iter()
                    .chain(std::iter::repeat(0))
                    .take(BINS)
                    .collect();
                self.top *= 2.0;
            }
            self.bins[((a.abs() / self.top) * BINS as f32) as usize % BINS] += 1;
        }
        let peak = (acts.iter().enumerate()).max_by(|a, b| a.1.total_cmp(b.1).then(b.0.cmp(&a.0)));
        if let Some((position, &value)) = peak.filter(|(_, &v)| v > 0.0) {
            let start = position.saturating_sub(self.window);
            let end = (position + self.window + 1).min(acts.len());
            let acts = acts[start..end].to_vec();
            self.peaks.push(Peak {
                value,
                text,
                position,
                start,
                acts,
            });
            self.peaks
                .sort_by(|a, b| b.value.total_cmp(&a.value).then(a.text.cmp(&b.text)));
            self.peaks.truncate(self.keep);
        }
    }

    /// The fraction of tokens where the feature fires.
    pub fn density(&self) -> f64 {
        match self.tokens {
            0 => 0.0,
            n => self.active as f64 / n as f64,
        }
    }
}
