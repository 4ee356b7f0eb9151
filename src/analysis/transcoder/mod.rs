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

/// One layer's transcoder: `W_enc` `(d_tc, C)` and `W_dec` `(d_tc, writes · C)` computed
/// from the mapped files; a feature's decoder row holds one vector for each layer it writes
/// to, from its own on (`writes` = 1 in a per-layer set).
#[derive(Clone)]
pub struct Transcoder {
    w_enc: Weight,
    w_dec: Weight,
    /// Layers written: 1, or `L − i` for layer `i` of a cross-layer transcoder.
    pub writes: usize,
    b_enc: Tensor,
    b_dec: Tensor,
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
    cross: bool,
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
        let c = model.n_embd;
        let layers = match &cfg.layout {
            Layout::PerLayer { files } => (files.iter())
                .map(|f| Transcoder::load(&Files::per_layer(&file(f)?), c))
                .collect::<Result<Vec<_>>>()?,
            Layout::CrossLayer => (0..model.n_layer)
                .map(|i| {
                    let enc = file(&format!("W_enc_{i}.safetensors"))?;
                    let dec = file(&format!("W_dec_{i}.safetensors"))?;
                    Transcoder::load(&Files::cross_layer(&enc, &dec, i, model.n_layer), c)
                })
                .collect::<Result<Vec<_>>>()?,
        };
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
            cross: cfg.layout == Layout::CrossLayer,
            scan: cfg.scan,
            dir: dir.to_path_buf(),
        })
    }

    /// Whether layer `i`'s features write to layer `i` only (a per-layer set) or to every
    /// layer from `i` on (a cross-layer transcoder).
    pub fn cross_layer(&self) -> bool {
        self.cross
    }

    pub fn has_skip(&self) -> bool {
        self.layers[0].w_skip.is_some()
    }
}

/// `Ok` when `ok`, else that tensor `name` in `path` is not finite.
fn finite(path: &Path, name: &str, ok: bool) -> Result<()> {
    ensure!(
        ok,
        "tensor {name} in {} holds NaN or infinity",
        path.display()
    );
    Ok(())
}

/// The decoder `name` of `ckpt`, mapped and checked a slice at a time and left out of
/// memory: a graph reads the active features' rows only.
fn cold_decoder(ckpt: &Checkpoint, name: &str) -> Result<Weight> {
    let w = ckpt.reader(&Device::Cpu, DType::F32)?.weight_cold(name)?;
    let ok = match &w {
        Weight::Mapped(m) => m.all_finite_released(),
        Weight::Tensor(t) => crate::model::tap::all_finite(t)?,
    };
    finite(ckpt.path(), name, ok)?;
    Ok(w)
}

fn all_finite(w: &Weight) -> Result<bool> {
    Ok(match w {
        Weight::Mapped(m) => m.values().iter().all(|v| v.is_finite()),
        Weight::Tensor(t) => crate::model::tap::all_finite(t)?,
    })
}

/// Where one layer's tensors are and what they are called.
struct Files<'a> {
    /// The file of the encoder, its biases, threshold and skip.
    enc: &'a Path,
    /// The file of the decoder (the same file in a per-layer set).
    dec: &'a Path,
    w_enc: String,
    b_enc: String,
    b_dec: String,
    threshold: String,
    w_dec: String,
    /// Layers written; `None` in a per-layer set, whose decoder is `(d_tc, C)` rather than
    /// `(d_tc, writes, C)`.
    writes: Option<usize>,
}

impl<'a> Files<'a> {
    /// circuit-tracer's `layer_{i}.safetensors`.
    fn per_layer(path: &'a Path) -> Self {
        Files {
            enc: path,
            dec: path,
            w_enc: "W_enc".into(),
            b_enc: "b_enc".into(),
            b_dec: "b_dec".into(),
            threshold: "activation_function.threshold".into(),
            w_dec: "W_dec".into(),
            writes: None,
        }
    }

    /// Layer `i` of `n_layer` of circuit-tracer's cross-layer files.
    fn cross_layer(enc: &'a Path, dec: &'a Path, i: usize, n_layer: usize) -> Self {
        Files {
            enc,
            dec,
            w_enc: format!("W_enc_{i}"),
            b_enc: format!("b_enc_{i}"),
            b_dec: format!("b_dec_{i}"),
            threshold: format!("threshold_{i}"),
            w_dec: format!("W_dec_{i}"),
            writes: Some(n_layer - i),
        }
    }
}

type ShapeOf<'a> = dyn Fn(&str) -> Option<Vec<usize>> + 'a;

/// Every tensor of a transcoder of `d_tc` features on a model `c` wide is there with its
/// shape (`enc` and `dec` read the files' headers).
fn check_shapes(
    files: &Files,
    (enc, dec): (&ShapeOf, &ShapeOf),
    d_tc: usize,
    c: usize,
    (threshold, skip): (bool, bool),
) -> Result<()> {
    let mut w_dec = vec![d_tc, c];
    if let Some(k) = files.writes {
        w_dec.insert(1, k);
    }
    let mut want = vec![
        (&files.w_enc, vec![d_tc, c], files.enc, enc),
        (&files.w_dec, w_dec, files.dec, dec),
        (&files.b_dec, vec![c], files.enc, enc),
    ];
    want.extend(threshold.then(|| (&files.threshold, vec![d_tc], files.enc, enc)));
    let w_skip = "W_skip".to_string();
    want.extend(skip.then(|| (&w_skip, vec![c, c], files.enc, enc)));
    for (name, s, path, shape) in want {
        let got = shape(name).ok_or_else(|| anyhow!("{} has no tensor {name}", path.display()))?;
        ensure!(
            got == s,
            "tensor {name} in {} has shape {got:?}; a transcoder of {d_tc} features on this \
             model ({c} wide) has {s:?}",
            path.display()
        );
    }
    Ok(())
}

/// A tensor's shape from a checkpoint's header.
fn shapes(ckpt: &Checkpoint) -> impl Fn(&str) -> Option<Vec<usize>> + '_ {
    |name: &str| {
        (ckpt.tensors().iter())
            .find(|t| t.name == name)
            .map(|t| t.shape.clone())
    }
}

impl Transcoder {
    fn load(files: &Files, c: usize) -> Result<Self> {
        let enc = Checkpoint::open_as(files.enc, Weights::Mapped)?;
        let dec = match files.dec == files.enc {
            true => None,
            false => Some(Checkpoint::open_as(files.dec, Weights::Mapped)?),
        };
        let dec = dec.as_ref().unwrap_or(&enc);
        let (enc_shape, dec_shape) = (shapes(&enc), shapes(dec));
        let path = files.enc.display();
        let b_enc = enc_shape(&files.b_enc)
            .ok_or_else(|| anyhow!("{path} has no tensor {}", files.b_enc))?;
        let d_tc = match b_enc[..] {
            [n] if n > 0 && n <= MAX_D_TC => n,
            _ => anyhow::bail!(
                "tensor {} in {path} has shape {b_enc:?}; a transcoder has 1 to {MAX_D_TC} \
                 features",
                files.b_enc
            ),
        };
        let threshold = enc_shape(&files.threshold).is_some();
        let skip = enc_shape("W_skip").is_some();
        let skips = enc.tensors().iter().any(|t| t.name.starts_with("W_skip"));
        ensure!(
            files.writes.is_none() || !skips,
            "{path} holds skip weights, which circuit-tracer 0.5.0 does not read in a \
             cross-layer transcoder; gpt2-inspect refuses them rather than leave them out"
        );
        check_shapes(files, (&enc_shape, &dec_shape), d_tc, c, (threshold, skip))?;
        let r = enc.reader(&Device::Cpu, DType::F32)?;
        let w_dec = cold_decoder(dec, &files.w_dec)?;
        let vector = |name: &str| -> Result<Tensor> {
            let t = r.get(name)?;
            finite(files.enc, name, crate::model::tap::all_finite(&t)?)?;
            Ok(t)
        };
        let matrix = |name: &str| -> Result<Weight> {
            let w = r.weight(name)?;
            finite(files.enc, name, all_finite(&w)?)?;
            Ok(w)
        };
        Ok(Transcoder {
            w_enc: matrix(&files.w_enc)?,
            b_dec: vector(&files.b_dec)?,
            w_dec,
            writes: files.writes.unwrap_or(1),
            b_enc: vector(&files.b_enc)?,
            activation: match threshold {
                true => Activation::JumpRelu(vector(&files.threshold)?),
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

    /// The reconstruction `Σ a W_dec + b_dec (+ x W_skipᵀ)` `(T, C)` of this layer's output
    /// from the decoded sum `Σ a W_dec` `(T, C)` written to it (by this layer's features, and
    /// in a cross-layer transcoder by every earlier layer's) and this layer's inputs `x`
    /// `(T, C)` (circuit-tracer's `decode_sparse`, `compute_reconstruction`).
    pub fn reconstruction(&self, decoded: &Tensor, x: &Tensor) -> Result<Tensor> {
        let out = decoded.broadcast_add(&self.b_dec)?;
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

    /// Decoder rows `W_dec[f]` `(n, writes · C)` of features `ids`: slot `k` (columns
    /// `k·C..(k+1)·C`) is written to layer `i + k`.
    pub fn decoder_rows(&self, ids: &[u32]) -> Result<Tensor> {
        self.w_dec.embedding(&Tensor::new(ids, &Device::Cpu)?)
    }
}
