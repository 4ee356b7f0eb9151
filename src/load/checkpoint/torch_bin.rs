//! `pytorch_model.bin` as `torch.save` writes it since torch 1.6: a zip archive holding
//! `{archive}/data.pkl` (the state dict, read by [`crate::load::checkpoint::pickle`]) and one uncompressed
//! entry `{archive}/data/{key}` per storage. Tensors are located by their byte range in the
//! file, so the checkpoint maps them in place like safetensors.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Context, Result};

use crate::load::checkpoint::pickle::{self, TensorRef, Value};
use crate::load::checkpoint::{element_size, Stored};

/// A `data.pkl` beyond this is not a state dict's (GPT-2 xl's is about 40 kB).
const MAX_PICKLE: u64 = 64 << 20;

/// What torch wrote before 1.6: a pickle starting with `\x80\x02`, LONG1 of 10 bytes, the
/// magic number 0x1950a86a20f9469cfc6c.
const LEGACY_MAGIC: [u8; 14] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];

/// Whether a file's first bytes are a zip's.
pub fn is_zip(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04")
}

/// One zip entry as stored: where its bytes start and how many there are.
struct Member {
    start: u64,
    size: u64,
    stored: bool,
}

/// The tensors of a torch zip checkpoint, each a byte range (or strided view) of `file`.
pub fn tensors(path: &Path, file: &File, file_len: u64) -> Result<Vec<Stored>> {
    let mut head = [0u8; 14];
    let n = (&*file).read(&mut head).unwrap_or(0);
    if head[..n] == LEGACY_MAGIC[..] {
        bail!(
            "{} was written by torch before 1.6 (its legacy, non-zip format), which \
             gpt2-inspect does not read; re-save it with torch 1.6 or later \
             (torch.save(torch.load(f), f)) or convert it to model.safetensors",
            path.display()
        );
    }
    let invalid =
        |why: String| anyhow!("{} is not a valid torch checkpoint: {why}", path.display());
    if !is_zip(&head[..n]) {
        return Err(invalid("not a zip archive (torch.save writes one)".into()));
    }
    let (members, pkl) = members(file).map_err(|e| invalid(format!("{e:#}")))?;
    let prefix = pkl
        .strip_suffix("data.pkl")
        .expect("members() finds data.pkl");
    let mut out = Vec::new();
    for (name, t) in state_dict(path, file, &members, &pkl)? {
        let m = members.get(&format!("{prefix}data/{}", t.storage.key));
        let m = m.ok_or_else(|| {
            invalid(format!(
                "tensor {name}'s storage {} is missing",
                t.storage.key
            ))
        })?;
        let v =
            view(&name, &t, m, file_len).map_err(|e| invalid(format!("tensor {name}: {e:#}")))?;
        out.push(v);
    }
    Ok(out)
}

/// The named tensors of the archive's `data.pkl`, once its byte order is checked: a state
/// dict's entries, or, in a nested dict (a lens's `{"J": {0: tensor}}`), their dotted paths
/// (`J.0`). Plain values beside them are [`values`]' business.
fn state_dict(
    path: &Path,
    file: &File,
    members: &HashMap<String, Member>,
    pkl: &str,
) -> Result<Vec<(String, TensorRef)>> {
    let mut tensors = Vec::new();
    flatten(
        path,
        String::new(),
        pickled(path, file, members, pkl)?,
        &mut tensors,
    )?;
    Ok(tensors)
}

/// Runs the archive's `data.pkl` through the restricted unpickler.
fn pickled(
    path: &Path,
    file: &File,
    members: &HashMap<String, Member>,
    pkl: &str,
) -> Result<Value> {
    let prefix = pkl
        .strip_suffix("data.pkl")
        .expect("members() finds data.pkl");
    let data = &members[pkl];
    ensure!(
        data.size <= MAX_PICKLE,
        "{}: its data.pkl has {} bytes, more than a state dict's",
        path.display(),
        data.size
    );
    let mut bytes = vec![0u8; data.size as usize];
    let mut f = file;
    f.seek(SeekFrom::Start(data.start))?;
    f.read_exact(&mut bytes)
        .with_context(|| format!("cannot read {}", path.display()))?;
    if let Some(order) = members.get(&format!("{prefix}byteorder")) {
        let mut b = vec![0u8; order.size.min(16) as usize];
        f.seek(SeekFrom::Start(order.start))?;
        f.read_exact(&mut b)?;
        ensure!(
            b == b"little",
            "{} holds big-endian tensors",
            path.display()
        );
    }
    let state = pickle::load(&bytes).map_err(|e| not_tensors(path, format!("{e:#}")))?;
    match state {
        Value::Dict(_) => Ok(state),
        _ => Err(not_tensors(path, "it holds no state dict".into())),
    }
}

fn not_tensors(path: &Path, why: String) -> anyhow::Error {
    anyhow!(
        "{} is not a tensor checkpoint: {why}; gpt2-inspect reads only tensors and runs \
         nothing a pickle names",
        path.display()
    )
}

/// Collects the tensors of `value` under `name`: a dict's entries (string or integer keys)
/// under `name.key`; plain values are passed over.
fn flatten(
    path: &Path,
    name: String,
    value: Value,
    out: &mut Vec<(String, TensorRef)>,
) -> Result<()> {
    match value {
        Value::Tensor(t) => out.push((name, t)),
        Value::Dict(items) => {
            for (k, v) in items {
                let key = match k {
                    Value::Str(s) => s,
                    Value::Int(i) => i.to_string(),
                    _ => return Err(not_tensors(path, "a dict key is not a name".into())),
                };
                let full = match name.is_empty() {
                    true => key,
                    false => format!("{name}.{key}"),
                };
                flatten(path, full, v, out)?;
            }
        }
        _ if plain(&value).is_some() => {}
        _ => {
            return Err(not_tensors(
                path,
                "it holds something other than tensors and plain values".into(),
            ))
        }
    }
    Ok(())
}

/// A plain value (number, string, bool, none, or a list or tuple or string-keyed dict of
/// them) as JSON; `None` for anything holding a tensor or a storage.
fn plain(value: &Value) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match value {
        Value::None => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => J::from(*f),
        Value::Str(s) => J::String(s.clone()),
        Value::List(v) | Value::Tuple(v) => J::Array(v.iter().map(plain).collect::<Option<_>>()?),
        Value::Dict(items) => J::Object(
            (items.iter())
                .map(|(k, v)| match k {
                    Value::Str(s) => Some((s.clone(), plain(v)?)),
                    Value::Int(i) => Some((i.to_string(), plain(v)?)),
                    _ => None,
                })
                .collect::<Option<_>>()?,
        ),
        Value::Bytes(_) | Value::Global(_) | Value::Storage(_) | Value::Tensor(_) => return None,
    })
}

/// The plain values at the top of a torch zip's dict (tensors, and dicts holding them, left
/// out): a lens artifact's `n_prompts`, `d_model`, `source_layers`, `metadata`.
pub fn values(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let invalid =
        |why: String| anyhow!("{} is not a valid torch checkpoint: {why}", path.display());
    let (members, pkl) = members(&file).map_err(|e| invalid(format!("{e:#}")))?;
    let Value::Dict(items) = pickled(path, &file, &members, &pkl)? else {
        unreachable!("pickled() returns a dict");
    };
    let mut out = serde_json::Map::new();
    for (k, v) in items {
        if let (Value::Str(key), Some(v)) = (k, plain(&v)) {
            out.insert(key, v);
        }
    }
    Ok(out)
}

/// The archive's stored members by name, and the name of its one `data.pkl`.
fn members(file: &File) -> Result<(HashMap<String, Member>, String)> {
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| anyhow!("{e}"))?;
    ensure!(!zip.has_duplicate_names(), "two entries have the same name");
    let mut members = HashMap::with_capacity(zip.len());
    let mut pkl = Vec::new();
    for i in 0..zip.len() {
        let e = zip.by_index_raw(i).map_err(|e| anyhow!("{e}"))?;
        ensure!(!e.encrypted(), "entry {} is encrypted", e.name()?);
        let name = e.name()?.into_owned();
        let start = e
            .data_start()
            .ok_or_else(|| anyhow!("entry {name} has no data"))?;
        let member = Member {
            start,
            size: e.compressed_size(),
            stored: e.compression() == zip::CompressionMethod::Stored,
        };
        if name == "data.pkl" || name.ends_with("/data.pkl") {
            pkl.push(name.clone());
        }
        members.insert(name, member);
    }
    let [pkl] = <[String; 1]>::try_from(pkl).map_err(|p| match p.len() {
        0 => anyhow!("it holds no data.pkl"),
        n => anyhow!("it holds {n} data.pkl"),
    })?;
    if let Some((name, _)) = members.iter().find(|(_, m)| !m.stored) {
        bail!("entry {name} is compressed; torch.save stores entries uncompressed, so they can be mapped");
    }
    Ok((members, pkl))
}

/// Where the elements of `t` lie in the file, checked against its storage's member and the
/// member against the file.
fn view(name: &str, t: &TensorRef, m: &Member, file_len: u64) -> Result<Stored> {
    let dtype = t.storage.dtype;
    let size = element_size(dtype).expect("storage dtypes have sizes") as u64;
    let storage_bytes =
        (t.storage.numel.checked_mul(size)).ok_or_else(|| anyhow!("absurd storage size"))?;
    ensure!(
        storage_bytes <= m.size && m.start.checked_add(m.size).is_some_and(|e| e <= file_len),
        "its storage needs {storage_bytes} bytes; the archive holds {} at {} of a {file_len}-byte file",
        m.size,
        m.start
    );
    let numel = (t.shape.iter()).try_fold(1u64, |a, &d| a.checked_mul(d as u64));
    let numel = numel.ok_or_else(|| anyhow!("absurd shape {:?}", t.shape))?;
    // The last element's index + 1, in elements from the storage's start.
    let end = match numel {
        0 => Some(t.offset),
        _ => (t.shape.iter().zip(&t.strides)).try_fold(t.offset + 1, |a, (&d, &s)| {
            a.checked_add((d as u64 - 1).checked_mul(s as u64)?)
        }),
    };
    let end = end.ok_or_else(|| anyhow!("absurd strides {:?}", t.strides))?;
    ensure!(
        end <= t.storage.numel,
        "a view of shape {:?}, offset {}, strides {:?} reaches past its storage of {} elements",
        t.shape,
        t.offset,
        t.strides,
        t.storage.numel
    );
    let contiguous = is_row_major(&t.shape, &t.strides);
    Ok(Stored {
        name: name.to_string(),
        dtype: dtype.to_string(),
        shape: t.shape.clone(),
        start: m.start + t.offset * size,
        strides: (!contiguous).then(|| t.strides.clone()),
        span: (end - t.offset) * size,
    })
}

/// Whether `strides` are those of a row-major tensor of `shape` (dimensions of size 1 may
/// have any stride).
fn is_row_major(shape: &[usize], strides: &[usize]) -> bool {
    let mut want = 1usize;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != want {
            return false;
        }
        want = want.saturating_mul(d);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::is_row_major;

    #[test]
    fn row_major_strides() {
        assert!(is_row_major(&[2, 3], &[3, 1]));
        assert!(is_row_major(&[1, 3], &[99, 1]));
        assert!(!is_row_major(&[2, 3], &[1, 2]));
        assert!(is_row_major(&[], &[]));
    }
}
