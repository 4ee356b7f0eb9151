//! Transcoders: a sparse dictionary per layer that reads the MLP's input (`ln2.hook_normalized`)
//! and writes its output (`hook_mlp_out`), read from circuit-tracer's per-layer format
//! (`config.yaml` + `layer_{i}.safetensors`) and computed as its `SingleLayerTranscoder`
//! computes them: `encode` (ReLU, or JumpReLU `x · (x > θ)`), `reconstruction` (`Σ a W_dec +
//! b_dec`, plus the skip `x W_skipᵀ` when the set has one).

mod config;
pub use config::*;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, ensure, Result};
use candle_core::{DType, Device, Tensor};

use crate::load::checkpoint::{Checkpoint, Weights};
use crate::model::config::Config;
use crate::model::weights::{Bias, Weight};

/// Features a transcoder of GPT-2 may have at most; checked before anything is read.
const MAX_D_TC: usize = 1 << 24;

/// The encoder's activation: circuit-tracer's ReLU, or JumpReLU when the file holds
/// `activation_function.threshold`.
#[derive(Clone)]
enum Activation {
    Relu,
    /// `x · (x > θ)`, `θ` `(d_tc,)`.
    JumpRelu(Tensor),
}

/// One layer's transcoder: `W_enc` and `W_dec` `(d_tc, C)` computed from the mapped file.
#[derive(Clone)]
pub struct Transcoder {
    w_enc: Weight,
    w_dec: Weight,
    b_enc: Tensor,
    b_dec: Bias,
    activation: Activation,
    /// `W_skip` `(C, C)`: the skip connection adds `x W_skipᵀ` to the reconstruction.
    w_skip: Option<Weight>,
}

/// A transcoder for every layer of the model, with one width and the same skip connection.
#[derive(Clone)]
pub struct TranscoderSet {
    pub layers: Vec<Transcoder>,
    pub d_tc: usize,
    pub scan: String,
    pub dir: PathBuf,
}

impl TranscoderSet {
    /// Reads `dir/config.yaml` and every layer's file, each checked against `model`.
    pub fn load(dir: &Path, model: &Config) -> Result<Self> {
        let scan = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Self::load_from(
            &dir.join("config.yaml"),
            &scan,
            &|f| Ok(dir.join(f)),
            dir,
            model,
        )
    }

    /// Reads the config at `config` and every layer's file, which `file` finds by the
    /// name the config gives it (relative to its folder: a local path, or a hub file fetched
    /// into the cache); `scan` names the set when the config does not, `dir` in messages.
    pub fn load_from(
        config: &Path,
        scan: &str,
        file: &dyn Fn(&str) -> Result<PathBuf>,
        dir: &Path,
        model: &Config,
    ) -> Result<Self> {
        let cfg = TranscoderConfig::read(config, scan, model.n_layer)?;
        let layers = (cfg.files.iter())
            .map(|f| Transcoder::load(&file(f)?, model.n_embd))
            .collect::<Result<Vec<_>>>()?;
        let d_tc = layers[0].d_tc()?;
        let skip = layers[0].w_skip.is_some();
        for (l, t) in layers.iter().enumerate() {
            ensure!(
                t.d_tc()? == d_tc,
                "the transcoder of layer {l} in {} has {} features; layer 0's has {d_tc}",
                dir.display(),
                t.d_tc()?
            );
            ensure!(
                t.w_skip.is_some() == skip,
                "layer {l}'s transcoder in {} {} a skip connection and layer 0's {}",
                dir.display(),
                if skip { "lacks" } else { "has" },
                if skip { "has one" } else { "does not" }
            );
        }
        Ok(TranscoderSet {
            layers,
            d_tc,
            scan: cfg.scan,
            dir: dir.to_path_buf(),
        })
    }

    pub fn has_skip(&self) -> bool {
        self.layers[0].w_skip.is_some()
    }
}

fn all_finite(w: &Weight) -> Result<bool> {
    Ok(match w {
        Weight::Mapped(m) => m.values().iter().all(|v| v.is_finite()),
        Weight::Tensor(t) => crate::model::tap::all_finite(t)?,
    })
}

/// Every tensor of a transcoder of `d_tc` features on a model `c` wide is there with its
/// shape (`shape` reads the file's header).
fn check_shapes(
    path: &Path,
    shape: &dyn Fn(&str) -> Option<Vec<usize>>,
    d_tc: usize,
    c: usize,
    threshold: bool,
    skip: bool,
) -> Result<()> {
    let mut want = vec![
        ("W_enc", vec![d_tc, c]),
        ("W_dec", vec![d_tc, c]),
        ("b_dec", vec![c]),
    ];
    want.extend(threshold.then(|| ("activation_function.threshold", vec![d_tc])));
    want.extend(skip.then(|| ("W_skip", vec![c, c])));
    for (name, s) in &want {
        let got = shape(name).ok_or_else(|| anyhow!("{} has no tensor {name}", path.display()))?;
        ensure!(
            got == *s,
            "tensor {name} in {} has shape {got:?}; a transcoder of {d_tc} features on this \
             model ({c} wide) has {s:?}",
            path.display()
        );
    }
    Ok(())
}

impl Transcoder {
    fn load(path: &Path, c: usize) -> Result<Self> {
        let ckpt = Checkpoint::open_as(path, Weights::Mapped)?;
        let shape = |name: &str| {
            (ckpt.tensors().iter())
                .find(|t| t.name == name)
                .map(|t| t.shape.clone())
        };
        let b_enc =
            shape("b_enc").ok_or_else(|| anyhow!("{} has no tensor b_enc", path.display()))?;
        let d_tc = match b_enc[..] {
            [n] if n > 0 && n <= MAX_D_TC => n,
            _ => anyhow::bail!(
                "tensor b_enc in {} has shape {b_enc:?}; a transcoder has 1 to {MAX_D_TC} features",
                path.display()
            ),
        };
        let threshold = shape("activation_function.threshold").is_some();
        let skip = shape("W_skip").is_some();
        check_shapes(path, &shape, d_tc, c, threshold, skip)?;
        let r = ckpt.reader(&Device::Cpu, DType::F32)?;
        let finite = |name: &str, ok: bool| {
            ensure!(
                ok,
                "tensor {name} in {} holds NaN or infinity",
                path.display()
            );
            Ok(())
        };
        let vector = |name: &str| -> Result<Tensor> {
            let t = r.get(name)?;
            finite(name, crate::model::tap::all_finite(&t)?)?;
            Ok(t)
        };
        let matrix = |name: &str| -> Result<Weight> {
            let w = r.weight(name)?;
            finite(name, all_finite(&w)?)?;
            Ok(w)
        };
        // A graph reads the active features' rows of W_dec only: checked a slice at a time
        // and left out of memory.
        let w_dec = r.weight_cold("W_dec")?;
        let ok = match &w_dec {
            Weight::Mapped(m) => m.all_finite_released(),
            Weight::Tensor(t) => crate::model::tap::all_finite(t)?,
        };
        finite("W_dec", ok)?;
        Ok(Transcoder {
            w_enc: matrix("W_enc")?,
            b_dec: Bias::new(vector("b_dec")?, &w_dec)?,
            w_dec,
            b_enc: vector("b_enc")?,
            activation: match threshold {
                true => Activation::JumpRelu(vector("activation_function.threshold")?),
                false => Activation::Relu,
            },
            w_skip: skip.then(|| matrix("W_skip")).transpose()?,
        })
    }

    pub fn d_tc(&self) -> Result<usize> {
        Ok(self.w_enc.dims()?.0)
    }

    /// Feature activations `(T, d_tc)` of inputs `x` `(T, C)`: the pre-activations
    /// `x W_encᵀ + b_enc` through the activation.
    pub fn encode(&self, x: &Tensor) -> Result<Tensor> {
        let pre = self.w_enc.matmul_t(x)?.broadcast_add(&self.b_enc)?;
        Ok(match &self.activation {
            Activation::Relu => pre.relu()?,
            Activation::JumpRelu(threshold) => {
                let keep = pre.broadcast_gt(threshold)?.to_dtype(DType::F32)?;
                (pre * keep)?
            }
        })
    }

    /// The reconstruction `Σ a W_dec + b_dec (+ x W_skipᵀ)` `(T, C)` from the decoded sum
    /// `Σ a W_dec` `(T, C)` of inputs `x` `(T, C)` (circuit-tracer's `decode_sparse`).
    pub fn reconstruction(&self, decoded: &Tensor, x: &Tensor) -> Result<Tensor> {
        let out = decoded.broadcast_add(&self.b_dec.tensor)?;
        match &self.w_skip {
            Some(w) => Ok((out + w.matmul_t(x)?)?),
            None => Ok(out),
        }
    }

    /// The skip connection's input gradient `g W_skip` `(M, C)` of an output gradient `g`
    /// `(M, C)`, when there is one.
    pub fn skip_gradient(&self, g: &Tensor) -> Result<Option<Tensor>> {
        match &self.w_skip {
            Some(Weight::Mapped(m)) => {
                let w = Weight::Mapped(m.clone());
                let zero = Bias::new(Tensor::zeros(m.dims().1, DType::F32, &Device::Cpu)?, &w)?;
                Ok(Some(w.matmul(g, &zero)?))
            }
            Some(Weight::Tensor(w)) => Ok(Some(g.matmul(w)?)),
            None => Ok(None),
        }
    }

    /// Encoder rows `W_enc[f]` `(n, C)` of features `ids`.
    pub fn encoder_rows(&self, ids: &[u32]) -> Result<Tensor> {
        self.w_enc.embedding(&Tensor::new(ids, &Device::Cpu)?)
    }

    /// Decoder rows `W_dec[f]` `(n, C)` of features `ids`.
    pub fn decoder_rows(&self, ids: &[u32]) -> Result<Tensor> {
        self.w_dec.embedding(&Tensor::new(ids, &Device::Cpu)?)
    }
}
