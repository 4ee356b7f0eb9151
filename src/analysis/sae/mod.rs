//! Sparse autoencoders in SAELens's saved format (`cfg.json` + `sae_weights.safetensors`),
//! read as `SAE.load_from_disk` reads them, and their arithmetic as SAELens's classes do it:
//! `encode` (standard, topk, jumprelu, gated; the input normalizations) and `decode`.

mod config;
mod spliced;
mod stats;
pub use config::*;
pub use spliced::*;
pub use stats::*;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, ensure, Result};
use candle_core::{DType, Device, Tensor, D};

use crate::load::checkpoint::{Checkpoint, Weights};
use crate::model::config::Config;
use crate::model::hooks::Hook;
use crate::model::weights::{Bias, Weight};

/// The encoder of each [`Architecture`], with the tensors that architecture has (`(d_sae,)`
/// each): what `encode` applies after `W_enc`, and what `decode` undoes before `W_dec`.
#[derive(Clone)]
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
#[derive(Clone)]
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

/// Logits `[T][V]`.
type Rows = Vec<Vec<f32>>;
