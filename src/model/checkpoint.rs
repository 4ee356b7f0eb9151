//! How a safetensors checkpoint is read: both key layouts, shape checks against
//! config.json, and only the tensors a command needs.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};

use super::config::Config;
use super::frozen::FrozenMatMul;
use super::mapped::{MappedMatrix, Mapping, MatMul};

/// How a checkpoint names its tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLayout {
    /// `transformer.h.0.attn.c_attn.weight`, as `save_pretrained` writes.
    Prefixed,
    /// `h.0.attn.c_attn.weight`, as the original GPT-2 repositories ship.
    Bare,
}

impl KeyLayout {
    fn full_key(self, key: &str) -> String {
        // The LM head sits beside the transformer in both layouts.
        if key.starts_with("lm_head.") {
            return key.to_string();
        }
        match self {
            KeyLayout::Prefixed => format!("transformer.{key}"),
            KeyLayout::Bare => key.to_string(),
        }
    }
}

/// One tensor as listed in a checkpoint's header.
#[derive(Debug, Clone)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: String,
}

/// How the weight matrices reach the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// f32 matrices on the CPU are computed from the mapped file (see [`super::mapped`]):
    /// nothing is copied, pages come from the page cache that processes share. Everything
    /// else (vectors, other dtypes or devices, misaligned data) is copied.
    Mapped,
    /// Every tensor is read into memory of its own.
    Copied,
}

/// A safetensors checkpoint whose header has been read and checked. Tensors are read from
/// the file when asked for, in large sequential reads straight into the tensors' own memory,
/// or (see [`Weights::Mapped`]) computed from the mapped file; a tensor a command does not
/// need is never read.
pub struct Checkpoint {
    path: PathBuf,
    mapping: Option<Arc<Mapping>>,
    /// Where the data section starts: 8 + header length.
    data_start: u64,
    /// Name → (dtype, shape, byte range in the data section).
    entries: HashMap<String, Entry>,
    layout: KeyLayout,
    infos: Vec<TensorInfo>,
}

#[derive(Debug, Clone, serde::Deserialize)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

/// Headers beyond this are not GPT-2 checkpoints (safetensors itself allows 100 MB).
const MAX_HEADER: u64 = 100_000_000;

impl Checkpoint {
    /// Opens a checkpoint whose weight matrices are computed from the mapped file.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_as(path, Weights::Mapped)
    }

    pub fn open_as(path: &Path, weights: Weights) -> Result<Self> {
        let invalid = |why: String| {
            anyhow!(
                "{} is not a valid safetensors file (truncated or corrupt?): {why}",
                path.display()
            )
        };
        let mut file =
            File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let file_len = file
            .metadata()
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        let mut n = [0u8; 8];
        file.read_exact(&mut n)
            .map_err(|_| invalid("shorter than its 8-byte header length".into()))?;
        let n = u64::from_le_bytes(n);
        if n > MAX_HEADER || 8 + n > file_len {
            return Err(invalid(format!(
                "header length {n} does not fit a file of {file_len} bytes"
            )));
        }
        let mut header = vec![0u8; n as usize];
        file.read_exact(&mut header)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let entries = entries(&header, file_len - 8 - n).map_err(|e| invalid(format!("{e:#}")))?;
        let mut infos: Vec<TensorInfo> = (entries.iter())
            .map(|(name, e)| TensorInfo {
                name: name.clone(),
                shape: e.shape.clone(),
                dtype: e.dtype.clone(),
            })
            .collect();
        infos.sort_by_key(|t| natural_key(&t.name));
        let layout = match infos.iter().any(|t| t.name.starts_with("transformer.")) {
            true => KeyLayout::Prefixed,
            false => KeyLayout::Bare,
        };
        // A file system that cannot map files leaves the copies.
        let mapping = match weights {
            Weights::Mapped => Mapping::new(&file).ok(),
            Weights::Copied => None,
        };
        Ok(Checkpoint {
            path: path.to_path_buf(),
            mapping,
            data_start: 8 + n,
            entries,
            layout,
            infos,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn layout(&self) -> KeyLayout {
        self.layout
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.infos
    }

    /// Whether a tensor is a stored buffer rather than a weight: the causal-mask
    /// `attn.bias` / `attn.masked_bias` of the original checkpoints.
    pub fn is_buffer(name: &str) -> bool {
        name.ends_with(".attn.bias") || name.ends_with(".attn.masked_bias")
    }

    /// Checks every weight the model needs against the shapes config.json implies, naming
    /// the tensor and both shapes on a mismatch.
    pub fn check_shapes(&self, cfg: &Config) -> Result<()> {
        let have: HashMap<&str, &TensorInfo> =
            self.infos.iter().map(|t| (t.name.as_str(), t)).collect();
        for (key, want) in expected_shapes(cfg) {
            let full = self.layout.full_key(&key);
            let Some(info) = have.get(full.as_str()) else {
                bail!("{} has no tensor {full}", self.path.display());
            };
            if info.shape != want {
                bail!(
                    "tensor {full} in {} has shape {:?}, but config.json (n_embd {}, n_head {}, \
                     n_layer {}, vocab_size {}, n_positions {}) implies {:?}",
                    self.path.display(),
                    info.shape,
                    cfg.n_embd,
                    cfg.n_head,
                    cfg.n_layer,
                    cfg.vocab_size,
                    cfg.n_positions,
                    want
                );
            }
        }
        Ok(())
    }

    /// A reader of the checkpoint's tensors; `key` is the bare name (`h.0.ln_1.weight`).
    pub fn reader(&self, device: &Device, dtype: DType) -> Result<Reader<'_>> {
        Ok(Reader {
            ckpt: self,
            device: device.clone(),
            dtype,
            prefix: String::new(),
        })
    }
}

/// The tensors a safetensors header describes, each checked to lie within the
/// `data_len`-byte data section with as many bytes as its dtype and shape need, and
/// together to cover it exactly.
fn entries(header: &[u8], data_len: u64) -> Result<HashMap<String, Entry>> {
    let mut raw: HashMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| anyhow!("invalid JSON in header: {e}"))?;
    raw.remove("__metadata__");
    let mut entries = HashMap::with_capacity(raw.len());
    let mut end = 0;
    for (name, v) in raw {
        let e: Entry = serde_json::from_value(v).map_err(|e| anyhow!("tensor {name}: {e}"))?;
        // Checked: a shape like [2^62, 24] must not wrap around to the bytes it claims.
        let bytes = element_size(&e.dtype)
            .map(|s| (e.shape.iter()).try_fold(s as u64, |acc, &d| acc.checked_mul(d as u64)));
        let (lo, hi) = e.data_offsets;
        if lo > hi || hi > data_len || bytes.is_some_and(|b| b != Some(hi - lo)) {
            bail!(
                "tensor {name} ({} {:?}) claims bytes {lo}..{hi} of a {data_len}-byte data section",
                e.dtype,
                e.shape
            );
        }
        end = end.max(hi);
        entries.insert(name, e);
    }
    if end != data_len {
        bail!("the header describes {end} bytes of data, the file holds {data_len}");
    }
    Ok(entries)
}

/// Bytes per element of a safetensors dtype, for the dtypes a checkpoint may hold.
fn element_size(dtype: &str) -> Option<usize> {
    match dtype {
        "F64" | "I64" | "U64" => Some(8),
        "F32" | "I32" | "U32" => Some(4),
        "F16" | "BF16" | "I16" | "U16" => Some(2),
        "U8" | "I8" | "BOOL" | "F8_E4M3" | "F8_E5M2" => Some(1),
        _ => None,
    }
}

/// Reads tensors under a prefix, as candle's `VarBuilder`: `r.pp("h.0").pp("ln_1").get("weight")`
/// reads `h.0.ln_1.weight` (with `transformer.` before it in the prefixed layout).
#[derive(Clone)]
pub struct Reader<'a> {
    ckpt: &'a Checkpoint,
    device: Device,
    dtype: DType,
    prefix: String,
}

#[cfg(not(target_endian = "little"))]
compile_error!("checkpoints are read as little-endian f32 in place");

/// A bias `(N,)` for [`Weight::matmul`]: the tensor, and for a mapped weight or an f32 one
/// on the CPU its values as the kernel takes them, read once at load instead of at every
/// product.
pub struct Bias {
    pub tensor: Tensor,
    values: Option<Arc<[f32]>>,
}

impl Bias {
    pub fn new(tensor: Tensor, weight: &Weight) -> Result<Self> {
        let values = match weight {
            Weight::Mapped(_) => Some(tensor.to_vec1::<f32>()?.into()),
            Weight::Tensor(w) if frozen_kernel(w) => Some(tensor.to_vec1::<f32>()?.into()),
            Weight::Tensor(_) => None,
        };
        Ok(Bias { tensor, values })
    }
}

/// Whether products with `w` take [`FrozenMatMul`]: the CPU in f32, the only place
/// gradients are taken (candle's matmul elsewhere).
fn frozen_kernel(w: &Tensor) -> bool {
    w.device().is_cpu() && w.dtype() == DType::F32
}

/// A weight matrix `(rows, cols)` as stored: a tensor, or a view of the mapped file.
pub enum Weight {
    Tensor(Tensor),
    Mapped(MappedMatrix),
}

impl Weight {
    pub fn dims(&self) -> Result<(usize, usize)> {
        match self {
            Weight::Tensor(t) => Ok(t.dims2()?),
            Weight::Mapped(m) => Ok(m.dims()),
        }
    }

    /// The weight as a tensor of its own (a copy when mapped).
    pub fn tensor(&self) -> Result<Tensor> {
        match self {
            Weight::Tensor(t) => Ok(t.clone()),
            Weight::Mapped(m) => Ok(Tensor::from_slice(m.values(), m.dims(), &Device::Cpu)?),
        }
    }

    /// `x W + b` for `x` `(M, K)` and this weight `(K, N)`: `(M, N)`.
    pub fn matmul(&self, x: &Tensor, bias: &Bias) -> Result<Tensor> {
        match (self, &bias.values) {
            (Weight::Mapped(w), Some(values)) => MatMul {
                weight: w.clone(),
                transposed: false,
                bias: Some(values.clone()),
            }
            .apply(x),
            (Weight::Mapped(_), None) => bail!("a mapped weight's bias was read as a tensor only"),
            (Weight::Tensor(w), Some(values)) => FrozenMatMul {
                weight: w.clone(),
                transposed: false,
                bias: Some(values.clone()),
            }
            .apply(x),
            (Weight::Tensor(w), None) => Ok(x.matmul(w)?.broadcast_add(&bias.tensor)?),
        }
    }

    /// `x Wᵀ` for `x` `(M, K)` and this weight `(N, K)`: `(M, N)`.
    pub fn matmul_t(&self, x: &Tensor) -> Result<Tensor> {
        match self {
            Weight::Tensor(w) if frozen_kernel(w) => FrozenMatMul {
                weight: w.clone(),
                transposed: true,
                bias: None,
            }
            .apply(x),
            Weight::Tensor(w) => Ok(x.matmul(&w.t()?)?),
            Weight::Mapped(w) => MatMul {
                weight: w.clone(),
                transposed: true,
                bias: None,
            }
            .apply(x),
        }
    }

    /// Rows `ids` `(N,)` u32: `(N, cols)`.
    pub fn embedding(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Weight::Tensor(w) => Ok(w.embedding(ids)?),
            Weight::Mapped(m) => {
                let ids = ids.to_vec1::<u32>()?;
                let rows = m.gather(&ids)?;
                Ok(Tensor::from_vec(
                    rows,
                    (ids.len(), m.dims().1),
                    &Device::Cpu,
                )?)
            }
        }
    }
}

impl Reader<'_> {
    /// The matrix `name` under this reader's prefix, mapped when the checkpoint is, the model
    /// computes in f32 on the CPU and the stored data is aligned f32; read otherwise.
    pub fn weight(&self, name: &str) -> Result<Weight> {
        let ckpt = self.ckpt;
        let full = ckpt.layout.full_key(&self.pp(name).prefix);
        let mapped = match (&ckpt.mapping, ckpt.entries.get(&full)) {
            (Some(map), Some(e))
                if self.device.is_cpu()
                    && self.dtype == DType::F32
                    && e.dtype == "F32"
                    && e.shape.len() == 2 =>
            {
                let lo = (ckpt.data_start + e.data_offsets.0) as usize;
                let hi = (ckpt.data_start + e.data_offsets.1) as usize;
                MappedMatrix::new(map, lo..hi, e.shape[0], e.shape[1])
            }
            _ => None,
        };
        match mapped {
            Some(m) => Ok(Weight::Mapped(m)),
            None => Ok(Weight::Tensor(self.get(name)?)),
        }
    }

    /// This reader one level down: `name` joins the prefix.
    pub fn pp(&self, name: impl std::fmt::Display) -> Self {
        let prefix = match self.prefix.as_str() {
            "" => name.to_string(),
            p => format!("{p}.{name}"),
        };
        Reader {
            prefix,
            ..self.clone()
        }
    }

    /// The tensor `name` under this reader's prefix.
    pub fn get(&self, name: &str) -> Result<Tensor> {
        let ckpt = self.ckpt;
        let full = ckpt.layout.full_key(&self.pp(name).prefix);
        let e = ckpt
            .entries
            .get(&full)
            .with_context(|| format!("no tensor {full} in {}", ckpt.path.display()))?;
        let read_err = || format!("cannot read tensor {full} from {}", ckpt.path.display());
        let mut file = File::open(&ckpt.path).with_context(read_err)?;
        file.seek(SeekFrom::Start(ckpt.data_start + e.data_offsets.0))
            .with_context(read_err)?;
        let len = (e.data_offsets.1 - e.data_offsets.0) as usize;
        let t = match e.dtype.as_str() {
            // The common case: one read() straight into the tensor's own memory, so each
            // weight byte is copied once. safetensors is little-endian, like every target
            // this builds for (the compile_error! above Reader checks it). The zeroed Vec comes from
            // calloc: fresh pages, first touched by the read itself.
            "F32" => {
                let mut values = vec![0f32; len / 4];
                file.read_exact(bytemuck::cast_slice_mut(&mut values))
                    .with_context(read_err)?;
                Tensor::from_vec(values, e.shape.as_slice(), &self.device)?
            }
            other => {
                let dtype = match other {
                    "F16" => DType::F16,
                    "BF16" => DType::BF16,
                    "F64" => DType::F64,
                    _ => bail!("tensor {full} has dtype {other}; gpt2-inspect reads F32, F16, BF16 and F64 weights"),
                };
                let mut bytes = vec![0u8; len];
                file.read_exact(&mut bytes).with_context(read_err)?;
                Tensor::from_raw_buffer(&bytes, dtype, &e.shape, &self.device)?
            }
        };
        Ok(t.to_dtype(self.dtype)?)
    }
}

/// Bare key → shape for every weight of a GPT-2 with this config.
fn expected_shapes(cfg: &Config) -> Vec<(String, Vec<usize>)> {
    let (d, inner) = (cfg.n_embd, cfg.n_inner());
    let mut v = vec![
        ("wte.weight".to_string(), vec![cfg.vocab_size, d]),
        ("wpe.weight".to_string(), vec![cfg.n_positions, d]),
    ];
    for l in 0..cfg.n_layer {
        // Conv1D weights are stored (in, out).
        for (k, s) in [
            ("ln_1.weight", vec![d]),
            ("ln_1.bias", vec![d]),
            ("attn.c_attn.weight", vec![d, 3 * d]),
            ("attn.c_attn.bias", vec![3 * d]),
            ("attn.c_proj.weight", vec![d, d]),
            ("attn.c_proj.bias", vec![d]),
            ("ln_2.weight", vec![d]),
            ("ln_2.bias", vec![d]),
            ("mlp.c_fc.weight", vec![d, inner]),
            ("mlp.c_fc.bias", vec![inner]),
            ("mlp.c_proj.weight", vec![inner, d]),
            ("mlp.c_proj.bias", vec![d]),
        ] {
            v.push((format!("h.{l}.{k}"), s));
        }
    }
    v.push(("ln_f.weight".to_string(), vec![d]));
    if !cfg.tie_word_embeddings {
        v.push(("lm_head.weight".to_string(), vec![cfg.vocab_size, d]));
    }
    v.push(("ln_f.bias".to_string(), vec![d]));
    v
}

/// Sorts `h.10` after `h.9`.
fn natural_key(name: &str) -> Vec<(String, usize)> {
    name.split('.')
        .map(|part| match part.parse::<usize>() {
            Ok(n) => (String::new(), n),
            Err(_) => (part.to_string(), 0),
        })
        .collect()
}
