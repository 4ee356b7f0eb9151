//! Transcoders: a sparse dictionary per layer that reads the MLP's input and writes its
//! output (`hook_mlp_out`), read from circuit-tracer's per-layer and cross-layer formats
//! (`config.yaml` beside `layer_{i}.safetensors`, or `W_enc_{i}`/`W_dec_{i}` files), SAELens's
//! (a folder a layer, `cfg.json` + `sae_weights.safetensors`) and sparsify's (`h.{i}.mlp/`
//! with `cfg.json` + `sae.safetensors`), and computed as each defines them: `encode` (ReLU,
//! JumpReLU, top-k or group-max of the pre-activations), `reconstruction` (`Σ a W_dec +
//! b_dec`, plus the skip `x W_skipᵀ` when the set has one).

mod config;
mod formats;
pub mod spliced;
pub use config::*;

use std::path::{Path, PathBuf};

use anyhow::{anyhow, ensure, Result};
use candle_core::{DType, Device, Tensor};

use crate::load::checkpoint::{Checkpoint, Weights};
use crate::model::config::Config;
use crate::model::weights::{Bias, Weight};

/// Features a transcoder of GPT-2 may have at most; checked before anything is read.
const MAX_D_TC: usize = 1 << 24;

/// The encoder's activation.
#[derive(Clone)]
enum Activation {
    Relu,
    /// `x · (x > θ)`, `θ` `(d_tc,)` (circuit-tracer's; SAELens's `relu(x) · (x > θ)` is the
    /// same wherever θ ≥ 0, which its loader checks).
    JumpRelu(Tensor),
    /// sparsify's `topk`: the `k` largest of `relu(x)`, the rest zero.
    TopK(usize),
    /// sparsify's `groupmax`: the largest of `relu(x)` in each of `k` equal groups of
    /// consecutive features.
    GroupMax(usize),
}

/// The activation a transcoder reads at its layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Input {
    /// `ln2.hook_normalized`: ln_2's input centred and divided by its scale, before the gain
    /// and bias (circuit-tracer's and SAELens's GPT-2 transcoders).
    Normalized,
    /// `ln2.hook_out`: ln_2's output, the MLP's input (sparsify's `h.{i}.mlp`).
    LnOut,
}

impl Input {
    pub fn hook(self) -> crate::model::BlockHook {
        match self {
            Input::Normalized => crate::model::BlockHook::Ln2Normalized,
            Input::LnOut => crate::model::BlockHook::Ln2Out,
        }
    }
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
    pub input: Input,
    b_enc: Tensor,
    b_dec: Tensor,
    activation: Activation,
    /// `W_skip` `(C, C)`: the skip connection adds `x W_skipᵀ` to the reconstruction.
    w_skip: Option<Weight>,
}

/// A transcoder for every layer of the model, with one width, one input and the same skip
/// connection.
#[derive(Clone)]
pub struct TranscoderSet {
    pub layers: Vec<Transcoder>,
    pub d_tc: usize,
    pub scan: String,
    pub dir: PathBuf,
    pub input: Input,
    cross: bool,
}

impl TranscoderSet {
    /// Reads the set in `dir`, each file checked against `model`: circuit-tracer's when
    /// `dir/config.yaml` is there, else SAELens's or sparsify's folders of layers.
    pub fn load(dir: &Path, model: &Config) -> Result<Self> {
        let scan = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let config = dir.join("config.yaml");
        if !config.exists() {
            let layers = (formats::layer_files(dir, model)?.iter())
                .map(|f| Transcoder::load(f, model.n_embd))
                .collect::<Result<Vec<_>>>()?;
            return Self::checked(layers, scan, false, dir);
        }
        Self::load_from(&config, &scan, &|f| Ok(dir.join(f)), dir, model)
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
                .map(|f| Transcoder::load(&Files::per_layer(file(f)?), c))
                .collect::<Result<Vec<_>>>()?,
            Layout::CrossLayer => (0..model.n_layer)
                .map(|i| {
                    let enc = file(&format!("W_enc_{i}.safetensors"))?;
                    let dec = file(&format!("W_dec_{i}.safetensors"))?;
                    Transcoder::load(&Files::cross_layer(enc, dec, i, model.n_layer), c)
                })
                .collect::<Result<Vec<_>>>()?,
        };
        let cross = cfg.layout == Layout::CrossLayer;
        Self::checked(layers, cfg.scan, cross, dir)
    }

    /// The set of `layers`, once they agree on their width, input and skip connection.
    fn checked(layers: Vec<Transcoder>, scan: String, cross: bool, dir: &Path) -> Result<Self> {
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
            ensure!(
                t.input == layers[0].input,
                "layer {l}'s transcoder in {} reads another hook than layer 0's",
                dir.display()
            );
        }
        Ok(TranscoderSet {
            input: layers[0].input,
            layers,
            d_tc,
            cross,
            scan,
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

/// How a layer's file decides its activation.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ActivationOf {
    /// JumpReLU when the file holds the threshold, else ReLU (circuit-tracer).
    Threshold,
    Relu,
    /// The threshold must be there (SAELens's `jumprelu_*`).
    JumpRelu,
    TopK(usize),
    GroupMax(usize),
}

/// Where one layer's tensors are and what they are called.
struct Files {
    /// The file of the encoder, its biases, threshold and skip.
    enc: PathBuf,
    /// The file of the decoder (the same file but in a cross-layer transcoder).
    dec: PathBuf,
    w_enc: String,
    b_enc: String,
    b_dec: String,
    threshold: String,
    w_dec: String,
    w_skip: String,
    /// Layers written; `None` but in a cross-layer transcoder, whose decoder is
    /// `(d_tc, writes, C)` rather than `(d_tc, C)`.
    writes: Option<usize>,
    /// `W_enc` stored `(C, d_tc)` (SAELens) rather than `(d_tc, C)`.
    enc_transposed: bool,
    activation: ActivationOf,
    /// Whether there is a skip connection; `None`: when the file holds `W_skip`.
    skip: Option<bool>,
    input: Input,
}

impl Files {
    /// circuit-tracer's `layer_{i}.safetensors`.
    fn per_layer(path: PathBuf) -> Self {
        Files {
            enc: path.clone(),
            dec: path,
            w_enc: "W_enc".into(),
            b_enc: "b_enc".into(),
            b_dec: "b_dec".into(),
            threshold: "activation_function.threshold".into(),
            w_dec: "W_dec".into(),
            w_skip: "W_skip".into(),
            writes: None,
            enc_transposed: false,
            activation: ActivationOf::Threshold,
            skip: None,
            input: Input::Normalized,
        }
    }

    /// Layer `i` of `n_layer` of circuit-tracer's cross-layer files.
    fn cross_layer(enc: PathBuf, dec: PathBuf, i: usize, n_layer: usize) -> Self {
        Files {
            enc,
            dec,
            w_enc: format!("W_enc_{i}"),
            b_enc: format!("b_enc_{i}"),
            b_dec: format!("b_dec_{i}"),
            threshold: format!("threshold_{i}"),
            w_dec: format!("W_dec_{i}"),
            writes: Some(n_layer - i),
            ..Files::per_layer(PathBuf::new())
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
    let w_enc = match files.enc_transposed {
        true => vec![c, d_tc],
        false => vec![d_tc, c],
    };
    let (e, d) = (files.enc.as_path(), files.dec.as_path());
    let mut want = vec![
        (&files.w_enc, w_enc, e, enc),
        (&files.w_dec, w_dec, d, dec),
        (&files.b_dec, vec![c], e, enc),
    ];
    want.extend(threshold.then(|| (&files.threshold, vec![d_tc], e, enc)));
    want.extend(skip.then(|| (&files.w_skip, vec![c, c], e, enc)));
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

impl Files {
    /// The headers of `enc` and `dec` against a model `c` wide: the width `d_tc`, whether
    /// there is a threshold and a skip connection.
    fn check(&self, enc: &Checkpoint, dec: &Checkpoint, c: usize) -> Result<(usize, bool, bool)> {
        let (enc_shape, dec_shape) = (shapes(enc), shapes(dec));
        let path = self.enc.display();
        let b_enc =
            enc_shape(&self.b_enc).ok_or_else(|| anyhow!("{path} has no tensor {}", self.b_enc))?;
        let d_tc = match b_enc[..] {
            [n] if n > 0 && n <= MAX_D_TC => n,
            _ => anyhow::bail!(
                "tensor {} in {path} has shape {b_enc:?}; a transcoder has 1 to {MAX_D_TC} \
                 features",
                self.b_enc
            ),
        };
        let threshold = match self.activation {
            ActivationOf::Threshold => enc_shape(&self.threshold).is_some(),
            ActivationOf::JumpRelu => true,
            ActivationOf::Relu | ActivationOf::TopK(_) | ActivationOf::GroupMax(_) => false,
        };
        let skip = (self.skip).unwrap_or_else(|| enc_shape(&self.w_skip).is_some());
        let skips = enc.tensors().iter().any(|t| t.name.starts_with("W_skip"));
        ensure!(
            self.writes.is_none() || !skips,
            "{path} holds skip weights, which circuit-tracer 0.5.0 does not read in a \
             cross-layer transcoder; gpt2-inspect refuses them rather than leave them out"
        );
        let k = match self.activation {
            ActivationOf::TopK(k) | ActivationOf::GroupMax(k) => k,
            ActivationOf::Threshold | ActivationOf::Relu | ActivationOf::JumpRelu => 1,
        };
        ensure!(
            k >= 1
                && k <= d_tc
                && (!matches!(self.activation, ActivationOf::GroupMax(_)) || d_tc % k == 0),
            "{path}: k = {k} does not fit a transcoder of {d_tc} features"
        );
        check_shapes(self, (&enc_shape, &dec_shape), d_tc, c, (threshold, skip))?;
        Ok((d_tc, threshold, skip))
    }
}

impl Transcoder {
    fn load(files: &Files, c: usize) -> Result<Self> {
        let enc = Checkpoint::open_as(&files.enc, Weights::Mapped)?;
        let dec = match files.dec == files.enc {
            true => None,
            false => Some(Checkpoint::open_as(&files.dec, Weights::Mapped)?),
        };
        let dec = dec.as_ref().unwrap_or(&enc);
        let (_, threshold, skip) = files.check(&enc, dec, c)?;
        let r = enc.reader(&Device::Cpu, DType::F32)?;
        let w_dec = cold_decoder(dec, &files.w_dec)?;
        let vector = |name: &str| -> Result<Tensor> {
            let t = r.get(name)?;
            finite(&files.enc, name, crate::model::tap::all_finite(&t)?)?;
            Ok(t)
        };
        let matrix = |name: &str| -> Result<Weight> {
            let w = r.weight(name)?;
            finite(&files.enc, name, all_finite(&w)?)?;
            Ok(w)
        };
        let w_enc = match files.enc_transposed {
            true => Weight::Tensor(vector(&files.w_enc)?.t()?.contiguous()?),
            false => matrix(&files.w_enc)?,
        };
        let activation = match files.activation {
            ActivationOf::TopK(k) => Activation::TopK(k),
            ActivationOf::GroupMax(k) => Activation::GroupMax(k),
            ActivationOf::Threshold | ActivationOf::Relu | ActivationOf::JumpRelu => {
                match threshold {
                    true => Activation::JumpRelu(vector(&files.threshold)?),
                    false => Activation::Relu,
                }
            }
        };
        if let (ActivationOf::JumpRelu, Activation::JumpRelu(t)) = (files.activation, &activation) {
            ensure!(
                t.min(0)?.to_scalar::<f32>()? >= 0.0,
                "tensor {} in {} holds negative thresholds, where SAELens's JumpReLU and \
                 circuit-tracer's differ; gpt2-inspect reads thresholds of 0 or more",
                files.threshold,
                files.enc.display()
            );
        }
        Ok(Transcoder {
            w_enc,
            b_dec: vector(&files.b_dec)?,
            w_dec,
            writes: files.writes.unwrap_or(1),
            input: files.input,
            b_enc: vector(&files.b_enc)?,
            activation,
            w_skip: skip.then(|| matrix(&files.w_skip)).transpose()?,
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
            Activation::TopK(k) => kept(&pre.relu()?, |row| top_k(row, *k))?,
            Activation::GroupMax(k) => kept(&pre.relu()?, |row| group_max(row, *k))?,
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

    /// What dense activations `acts` `(T, d_tc)` write to each layer this one writes to,
    /// `Σ a W_dec[f, k]` `(T, C)` for slot `k` (layer `i + k`), read from the active
    /// features' decoder rows only.
    pub fn decode_slots(&self, acts: &Tensor, c: usize) -> Result<Vec<Tensor>> {
        let rows = acts.to_vec2::<f32>()?;
        let mut sums = Vec::with_capacity(rows.len());
        for row in &rows {
            let feats: Vec<u32> = (0..row.len() as u32)
                .filter(|&f| row[f as usize] != 0.0)
                .collect();
            let a: Vec<f32> = feats.iter().map(|&f| row[f as usize]).collect();
            sums.push(match feats.is_empty() {
                true => Tensor::zeros(self.writes * c, DType::F32, &Device::Cpu)?,
                false => Tensor::new(a.as_slice(), &Device::Cpu)?
                    .unsqueeze(0)?
                    .matmul(&self.decoder_rows(&feats)?)?
                    .squeeze(0)?,
            });
        }
        let all = Tensor::stack(&sums, 0)?; // (T, writes · C)
        (0..self.writes)
            .map(|k| Ok(all.narrow(1, k * c, c)?.contiguous()?))
            .collect()
    }

    /// This layer's own reconstruction `(T, C)` from dense activations `acts` `(T, d_tc)` of
    /// inputs `x` `(T, C)`: each library's `decode` (with the skip connection). In a
    /// cross-layer transcoder, the part this layer's features write to their own layer,
    /// plus its bias.
    pub fn decode(&self, acts: &Tensor, x: &Tensor) -> Result<Tensor> {
        let own = self.decode_slots(acts, x.dim(1)?)?.swap_remove(0);
        self.reconstruction(&own, x)
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

/// `acts` `(T, d)` with each row's entries outside `keep(row)` set to zero.
fn kept(acts: &Tensor, keep: impl Fn(&[f32]) -> Vec<usize>) -> Result<Tensor> {
    let (t, d) = acts.dims2()?;
    let rows = acts.to_vec2::<f32>()?;
    let mut out = vec![0f32; t * d];
    for (i, row) in rows.iter().enumerate() {
        for j in keep(row) {
            out[i * d + j] = row[j];
        }
    }
    Ok(Tensor::from_vec(out, (t, d), &Device::Cpu)?)
}

/// The indices of the `k` largest values of `row` (among equals the earlier index: it
/// decides between zeros after the ReLU, which are zero either way, and exact ties).
fn top_k(row: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.select_nth_unstable_by(k - 1, |&a, &b| row[b].total_cmp(&row[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// The index of the largest value in each of `k` equal groups of `row` (the first among
/// equals, as torch's `max`).
fn group_max(row: &[f32], k: usize) -> Vec<usize> {
    let size = row.len() / k;
    (0..k)
        .map(|g| {
            let group = &row[g * size..(g + 1) * size];
            let best = (0..size).fold(0, |b, j| if group[j] > group[b] { j } else { b });
            g * size + best
        })
        .collect()
}
