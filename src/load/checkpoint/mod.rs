//! How a safetensors checkpoint is read: both key layouts, shape checks against
//! config.json, and only the tensors a command needs.

mod pickle;
mod shards;
mod torch_bin;
pub mod torch_save;

pub use torch_bin::values as torch_values;

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use candle_core::{DType, Device, Tensor};

use crate::load::mapped::{MappedMatrix, Mapping};
use crate::model::config::Config;
use crate::model::weights::Weight;

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
    /// f32 matrices on the CPU are computed from the mapped file (see [`crate::model::kernels::matmul`]):
    /// nothing is copied, pages come from the page cache that processes share. Everything
    /// else (vectors, other dtypes or devices, misaligned data) is copied.
    Mapped,
    /// Every tensor is read into memory of its own.
    Copied,
}

/// The file formats a checkpoint may come in, in the order transformers prefers them when a
/// model holds several.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Safetensors,
    SafetensorsIndex,
    TorchBin,
    TorchBinIndex,
}

impl FileFormat {
    /// transformers' order (`modeling_utils`): safetensors before torch's pickles, one file
    /// before an index of shards.
    pub const ORDER: [FileFormat; 4] = [
        FileFormat::Safetensors,
        FileFormat::SafetensorsIndex,
        FileFormat::TorchBin,
        FileFormat::TorchBinIndex,
    ];

    /// The file a model directory or repository holds it in.
    pub fn file_name(self) -> &'static str {
        match self {
            FileFormat::Safetensors => "model.safetensors",
            FileFormat::SafetensorsIndex => "model.safetensors.index.json",
            FileFormat::TorchBin => "pytorch_model.bin",
            FileFormat::TorchBinIndex => "pytorch_model.bin.index.json",
        }
    }

    pub fn is_index(self) -> bool {
        matches!(
            self,
            FileFormat::SafetensorsIndex | FileFormat::TorchBinIndex
        )
    }

    /// How `info` names it.
    pub fn describe(self) -> &'static str {
        match self {
            FileFormat::Safetensors => "safetensors",
            FileFormat::SafetensorsIndex => "sharded safetensors",
            FileFormat::TorchBin => "torch zip (torch.save)",
            FileFormat::TorchBinIndex => "sharded torch zip (torch.save)",
        }
    }
}

/// A checkpoint whose headers have been read and checked: one file, or the shards an index
/// names. Tensors are read from their file when asked for, in large sequential reads
/// straight into the tensors' own memory, or (see [`Weights::Mapped`]) computed from the
/// mapped file; a tensor a command does not need is never read.
pub struct Checkpoint {
    /// The file chosen: the checkpoint, or the index of its shards.
    path: PathBuf,
    format: FileFormat,
    parts: Vec<Part>,
    entries: HashMap<String, Entry>,
    layout: KeyLayout,
    infos: Vec<TensorInfo>,
}

/// One file of a checkpoint.
struct Part {
    path: PathBuf,
    mapping: Option<Arc<Mapping>>,
    len: u64,
}

/// A tensor as a file stores it: `dtype` (safetensors' spelling), `shape`, and where its
/// elements are: from byte `start` of the file, row-major, or along `strides` (elements)
/// within the `span` bytes from `start`.
#[derive(Debug, Clone)]
pub struct Stored {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub start: u64,
    pub strides: Option<Vec<usize>>,
    pub span: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    stored: Stored,
    part: usize,
}

/// Headers beyond this are not GPT-2 checkpoints (safetensors itself allows 100 MB).
const MAX_HEADER: u64 = 100_000_000;

impl Checkpoint {
    /// Opens a checkpoint whose weight matrices are computed from the mapped file.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_as(path, Weights::Mapped)
    }

    /// Opens `path`: a safetensors file, a torch zip, or an index (`*.index.json`) whose
    /// shards sit beside it.
    pub fn open_as(path: &Path, weights: Weights) -> Result<Self> {
        Self::open_with(path, weights, &|name| shard_beside(path, name))
    }

    /// [`open_as`](Self::open_as), with `shard` finding (or fetching) each shard an index
    /// names; the names have been checked to be plain file names.
    pub fn open_with(
        path: &Path,
        weights: Weights,
        shard: &dyn Fn(&str) -> Result<PathBuf>,
    ) -> Result<Self> {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let (format, parts, entries) = if name.as_deref().is_some_and(|n| n.ends_with(".json")) {
            let index = crate::load::checkpoint::shards::Index::read(path)?;
            let mut parts = Vec::new();
            let mut files = Vec::new();
            for shard_name in &index.shards {
                let p = shard(shard_name)?;
                let (part, stored) = open_file(&p, weights)?;
                parts.push(part);
                files.push((shard_name.as_str(), stored));
            }
            let torch = files.iter().any(|(n, _)| !n.ends_with(".safetensors"));
            let format = match torch {
                true => FileFormat::TorchBinIndex,
                false => FileFormat::SafetensorsIndex,
            };
            (format, parts, index.merge(path, files)?)
        } else {
            let (part, stored) = open_file(path, weights)?;
            let format = match part.torch {
                true => FileFormat::TorchBin,
                false => FileFormat::Safetensors,
            };
            let entries = (stored.into_iter())
                .map(|s| (s.name.clone(), (s, 0)))
                .collect();
            (format, vec![part], entries)
        };
        Ok(Self::new(path, format, parts, entries))
    }

    fn new(
        path: &Path,
        format: FileFormat,
        parts: Vec<OpenPart>,
        entries: HashMap<String, (Stored, usize)>,
    ) -> Self {
        let mut infos: Vec<TensorInfo> = (entries.values())
            .map(|(s, _)| TensorInfo {
                name: s.name.clone(),
                shape: s.shape.clone(),
                dtype: s.dtype.clone(),
            })
            .collect();
        infos.sort_by_key(|t| natural_key(&t.name));
        let layout = match infos.iter().any(|t| t.name.starts_with("transformer.")) {
            true => KeyLayout::Prefixed,
            false => KeyLayout::Bare,
        };
        Checkpoint {
            path: path.to_path_buf(),
            format,
            parts: parts.into_iter().map(|p| p.part).collect(),
            entries: (entries.into_iter())
                .map(|(k, (stored, part))| (k, Entry { stored, part }))
                .collect(),
            layout,
            infos,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// The files read: the checkpoint, or the shards of an index.
    pub fn files(&self) -> impl Iterator<Item = (&Path, u64)> {
        self.parts.iter().map(|p| (p.path.as_path(), p.len))
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

/// The shard `name` of the index at `index`, in the same directory.
pub fn shard_beside(index: &Path, name: &str) -> Result<PathBuf> {
    let p = index.with_file_name(name);
    match p.is_file() {
        true => Ok(p),
        false => bail!("shard {name}, named by {}, is missing", index.display()),
    }
}

/// A file opened, its tensors listed and checked against its length.
struct OpenPart {
    part: Part,
    torch: bool,
}

/// Opens one file: a torch zip when it is named or starts like one, else safetensors.
fn open_file(path: &Path, weights: Weights) -> Result<(OpenPart, Vec<Stored>)> {
    let mut file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let len = file
        .metadata()
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    let mut head = [0u8; 4];
    let n = file.read(&mut head).unwrap_or(0);
    file.seek(SeekFrom::Start(0))?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let torch = matches!(ext, "bin" | "pt" | "pth")
        || crate::load::checkpoint::torch_bin::is_zip(&head[..n])
        || head[..n.min(1)] == [0x80];
    let stored = match torch {
        true => crate::load::checkpoint::torch_bin::tensors(path, &file, len)?,
        false => safetensors_tensors(path, &mut file, len)?,
    };
    // A file system that cannot map files leaves the copies.
    let mapping = match weights {
        Weights::Mapped => Mapping::new(&file).ok(),
        Weights::Copied => None,
    };
    let part = Part {
        path: path.to_path_buf(),
        mapping,
        len,
    };
    Ok((OpenPart { part, torch }, stored))
}

/// The tensors of a safetensors file, from its header.
fn safetensors_tensors(path: &Path, file: &mut File, file_len: u64) -> Result<Vec<Stored>> {
    let invalid = |why: String| {
        anyhow!(
            "{} is not a valid safetensors file (truncated or corrupt?): {why}",
            path.display()
        )
    };
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
    entries(&header, 8 + n, file_len - 8 - n).map_err(|e| invalid(format!("{e:#}")))
}

#[derive(Debug, Clone, serde::Deserialize)]
struct HeaderEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
}

/// The tensors a safetensors header describes, each checked to lie within the
/// `data_len`-byte data section (from byte `data_start` of the file) with as many bytes as
/// its dtype and shape need, and together to cover it exactly.
fn entries(header: &[u8], data_start: u64, data_len: u64) -> Result<Vec<Stored>> {
    let mut raw: HashMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| anyhow!("invalid JSON in header: {e}"))?;
    raw.remove("__metadata__");
    let mut entries = Vec::with_capacity(raw.len());
    let mut end = 0;
    for (name, v) in raw {
        let e: HeaderEntry =
            serde_json::from_value(v).map_err(|e| anyhow!("tensor {name}: {e}"))?;
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
        entries.push(Stored {
            name,
            dtype: e.dtype,
            shape: e.shape,
            start: data_start + lo,
            strides: None,
            span: hi - lo,
        });
    }
    if end != data_len {
        bail!("the header describes {end} bytes of data, the file holds {data_len}");
    }
    Ok(entries)
}

/// Bytes per element of a safetensors dtype, for the dtypes a checkpoint may hold.
pub fn element_size(dtype: &str) -> Option<usize> {
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

impl Reader<'_> {
    /// The matrix `name` under this reader's prefix, mapped when the checkpoint is, the model
    /// computes in f32 on the CPU and the stored data is aligned f32; read otherwise.
    pub fn weight(&self, name: &str) -> Result<Weight> {
        self.weight_as(name, false)
    }

    /// [`weight`](Self::weight) for a tensor read a row at a time (a transcoder's decoder),
    /// its dimensions after the first flattened into one (a cross-layer decoder
    /// `(d_tc, L − i, C)` is read as `(d_tc, (L − i)·C)`): its pages are not mapped ahead
    /// ([`MappedMatrix::cold`]).
    pub fn weight_cold(&self, name: &str) -> Result<Weight> {
        self.weight_as(name, true)
    }

    fn weight_as(&self, name: &str, cold: bool) -> Result<Weight> {
        let ckpt = self.ckpt;
        let full = ckpt.layout.full_key(&self.pp(name).prefix);
        let mapped = match ckpt.entries.get(&full) {
            Some(Entry { stored: e, part })
                if self.device.is_cpu()
                    && self.dtype == DType::F32
                    && e.dtype == "F32"
                    && e.strides.is_none()
                    && (e.shape.len() == 2 || cold && e.shape.len() > 2) =>
            {
                let map = ckpt.parts[*part].mapping.as_ref();
                let (lo, hi) = (e.start as usize, (e.start + e.span) as usize);
                let cols = e.shape[1..].iter().product();
                map.and_then(|map| match cold {
                    true => MappedMatrix::cold(map, lo..hi, e.shape[0], cols),
                    false => MappedMatrix::new(map, lo..hi, e.shape[0], cols),
                })
            }
            _ => None,
        };
        match mapped {
            Some(m) => Ok(Weight::Mapped(m)),
            None if cold => Ok(Weight::Tensor(self.get(name)?.flatten_from(1)?)),
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
        let Entry { stored: e, part } = ckpt
            .entries
            .get(&full)
            .with_context(|| format!("no tensor {full} in {}", ckpt.path.display()))?;
        let path = &ckpt.parts[*part].path;
        let read_err = || format!("cannot read tensor {full} from {}", path.display());
        let mut file = File::open(path).with_context(read_err)?;
        file.seek(SeekFrom::Start(e.start)).with_context(read_err)?;
        let dtype = match e.dtype.as_str() {
            "F32" => DType::F32,
            "F16" => DType::F16,
            "BF16" => DType::BF16,
            "F64" => DType::F64,
            other => bail!(
                "tensor {full} has dtype {other}; gpt2-inspect reads F32, F16, BF16 and F64 weights"
            ),
        };
        let t = match &e.strides {
            // The common case: one read() straight into the tensor's own memory, so each
            // weight byte is copied once. Both formats are little-endian, like every target
            // this builds for (the compile_error! above Reader checks it). The zeroed Vec
            // comes from calloc: fresh pages, first touched by the read itself.
            None if dtype == DType::F32 => {
                let mut values = vec![0f32; e.span as usize / 4];
                file.read_exact(bytemuck::cast_slice_mut(&mut values))
                    .with_context(read_err)?;
                Tensor::from_vec(values, e.shape.as_slice(), &self.device)?
            }
            strides => {
                let mut bytes = vec![0u8; e.span as usize];
                file.read_exact(&mut bytes).with_context(read_err)?;
                if let Some(strides) = strides {
                    bytes = gather(&bytes, dtype.size_in_bytes(), &e.shape, strides);
                }
                Tensor::from_raw_buffer(&bytes, dtype, &e.shape, &self.device)?
            }
        };
        Ok(t.to_dtype(self.dtype)?)
    }
}

/// The elements of a strided view (`strides` in elements of `size` bytes, within `bytes`),
/// row-major.
fn gather(bytes: &[u8], size: usize, shape: &[usize], strides: &[usize]) -> Vec<u8> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(numel * size);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..numel {
        let at: usize = index.iter().zip(strides).map(|(i, s)| i * s).sum();
        out.extend_from_slice(&bytes[at * size..(at + 1) * size]);
        // The next index, row-major: the last axis fastest.
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
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
