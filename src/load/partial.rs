//! A corpus pass's shard state (`--partial FILE`), as `merge` reads it: a safetensors file
//! whose tensors are the pass's f64 sums and whose metadata (`gpt2-inspect.partial`, JSON)
//! says what was summed and how: the kind of pass, everything that must agree for a merge
//! (model, revision, settings, the corpus's name and SHA-256, the tool's version), N and the
//! shards it holds, and its counts. A merge of partials is a partial (a tree of merges).

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use serde::{Deserialize, Serialize};

/// The metadata key of a partial.
const KEY: &str = "gpt2-inspect.partial";

/// The corpus passes that run in shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PassKind {
    #[serde(rename = "lens fit")]
    LensFit,
    #[serde(rename = "score")]
    Score,
    #[serde(rename = "feature")]
    Feature,
}

impl std::fmt::Display for PassKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PassKind::LensFit => "lens fit",
            PassKind::Score => "score",
            PassKind::Feature => "feature",
        })
    }
}

/// What a partial says of itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartialInfo {
    /// The pass.
    pub kind: PassKind,
    /// Everything that must be equal for two partials to merge.
    pub agree: serde_json::Value,
    /// N, and the shards (0 to N − 1) this partial holds.
    pub n: usize,
    pub shards: BTreeSet<usize>,
    /// The pass's counts and lists (summed or joined by the merge).
    pub counts: serde_json::Value,
}

/// One named f64 sum of a partial: `(name, shape, values)`.
pub type Sum = (String, Vec<usize>, Vec<f64>);

/// A partial: its info, its named f64 sums, and bytes a pass keeps as they are (a
/// `score` shard's reports, one JSON line each).
#[derive(Debug, Clone)]
pub struct Partial {
    pub info: PartialInfo,
    pub sums: Vec<Sum>,
    pub payload: Option<Vec<u8>>,
}

/// The name of the payload's U8 tensor.
const PAYLOAD: &str = "payload";

impl Partial {
    /// The bytes of the partial's safetensors file.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let views = (self.sums.iter())
            .map(|(name, shape, v)| {
                let bytes: &[u8] = bytemuck::cast_slice(v);
                let view = safetensors::tensor::TensorView::new(
                    safetensors::Dtype::F64,
                    shape.clone(),
                    bytes,
                )?;
                Ok((name.clone(), view))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut views = views;
        if let Some(bytes) = &self.payload {
            let view = safetensors::tensor::TensorView::new(
                safetensors::Dtype::U8,
                vec![bytes.len()],
                bytes,
            )?;
            views.push((PAYLOAD.to_string(), view));
        }
        let meta = [(KEY.to_string(), serde_json::to_string(&self.info)?)].into();
        Ok(safetensors::serialize(views, Some(meta))?)
    }

    /// Reads and checks the partial in `path`: a safetensors file with its metadata, every
    /// tensor f64 and finite, its shards within N.
    pub fn read(path: &Path) -> Result<Partial> {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let not = |why: String| anyhow::anyhow!("{} is not a partial: {why}", path.display());
        let (_, header) =
            safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| not(format!("{e}")))?;
        let info = (header.metadata().as_ref())
            .and_then(|m| m.get(KEY))
            .ok_or_else(|| {
                not("it has no gpt2-inspect metadata (write one with --partial)".into())
            })?;
        let info: PartialInfo = serde_json::from_str(info).map_err(|e| not(format!("{e}")))?;
        ensure!(
            info.n >= 1 && !info.shards.is_empty() && info.shards.iter().all(|&k| k < info.n),
            "{}: its shards {:?} are not within 0 to N − 1 = {}",
            path.display(),
            info.shards,
            info.n.saturating_sub(1)
        );
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| not(format!("{e}")))?;
        let (mut sums, mut payload) = (Vec::new(), None);
        for (name, view) in st.iter() {
            if name == PAYLOAD && view.dtype() == safetensors::Dtype::U8 {
                payload = Some(view.data().to_vec());
                continue;
            }
            if view.dtype() != safetensors::Dtype::F64 {
                bail!("{}: tensor {name} is not f64", path.display());
            }
            let values: Vec<f64> = (view.data().chunks_exact(8))
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect();
            if values.iter().any(|v| !v.is_finite()) {
                bail!(
                    "{}: tensor {name} holds values that are not finite",
                    path.display()
                );
            }
            sums.push((name.to_string(), view.shape().to_vec(), values));
        }
        sums.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(Partial {
            info,
            sums,
            payload,
        })
    }
}

/// The partial at `path` when it holds exactly shard `k` of `n` of a `kind` pass run with
/// the settings `agree`: a shard done before, which a rerun keeps (resume).
pub fn holding(
    path: &Path,
    kind: PassKind,
    (k, n): (usize, usize),
    agree: &serde_json::Value,
) -> Option<Partial> {
    let p = Partial::read(path).ok()?;
    let i = &p.info;
    let same = i.kind == kind && i.n == n && i.shards == BTreeSet::from([k]) && i.agree == *agree;
    same.then_some(p)
}

/// The SHA-256 of the file at `path`, in hex, read in blocks (what a partial records of its
/// corpus).
pub fn sha256_hex(path: &Path) -> Result<String> {
    use sha2::Digest;
    use std::io::Read;
    let what = || format!("cannot read {}", path.display());
    let mut file = std::fs::File::open(path).with_context(what)?;
    let (mut hasher, mut buf) = (sha2::Sha256::new(), vec![0u8; 1 << 16]);
    loop {
        let n = file.read(&mut buf).with_context(what)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Checks that `partials` (read from `paths`) can be merged: one kind, the same settings and
/// N, written by this version, no shard twice, and with `complete` every shard of N;
/// returns N and their shards.
pub fn check_merge(
    paths: &[&Path],
    partials: &[Partial],
    complete: bool,
) -> Result<(usize, BTreeSet<usize>)> {
    let first = &partials[0].info;
    let mut seen: Vec<(usize, &Path)> = Vec::new();
    for (p, path) in partials.iter().zip(paths) {
        let i = &p.info;
        if i.kind != first.kind {
            bail!(
                "{} is a partial of {}, {} of {}",
                path.display(),
                i.kind,
                paths[0].display(),
                first.kind
            );
        }
        if i.n != first.n {
            bail!(
                "{} holds shards of {}, {} of {}: give partials of one split",
                path.display(),
                i.n,
                paths[0].display(),
                first.n
            );
        }
        if i.agree != first.agree {
            bail!(
                "{} was run with other settings than {}: {}",
                path.display(),
                paths[0].display(),
                differences(&first.agree, &i.agree)
            );
        }
        for &k in &i.shards {
            if let Some((_, other)) = seen.iter().find(|(s, _)| *s == k) {
                bail!(
                    "shard {k}/{} is in both {} and {}",
                    i.n,
                    other.display(),
                    path.display()
                );
            }
            seen.push((k, path));
        }
    }
    // Every pass records the tool's version among its settings; what this binary prints or
    // writes of the merge is what this version computes.
    let version = first.agree.get("version").and_then(|v| v.as_str());
    if let Some(v) = version.filter(|v| *v != env!("CARGO_PKG_VERSION")) {
        bail!(
            "the partials were written by gpt2-inspect {v}; merge them with that version (this is {})",
            env!("CARGO_PKG_VERSION")
        );
    }
    let shards: BTreeSet<usize> = seen.iter().map(|(k, _)| *k).collect();
    if complete {
        if let Some(k) = (0..first.n).find(|k| !shards.contains(k)) {
            bail!("shard {k}/{} is missing: merge every shard's partial (or write --partial for a merge of some)", first.n);
        }
    }
    Ok((first.n, shards))
}

/// The settings two partials disagree on, named.
fn differences(a: &serde_json::Value, b: &serde_json::Value) -> String {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return "their settings differ".into();
    };
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let names: Vec<String> = (keys.into_iter())
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| format!("{k} {} against {}", show(a.get(k)), show(b.get(k))))
        .collect();
    names.join(", ")
}

fn show(v: Option<&serde_json::Value>) -> String {
    v.map_or("(none)".into(), |v| v.to_string())
}

/// Every shard the partials hold.
pub fn shards_held(partials: &[Partial]) -> BTreeSet<usize> {
    (partials.iter())
        .flat_map(|p| p.info.shards.iter().copied())
        .collect()
}

/// The element-wise sum of the partials' tensors, in the order of their first shard (so any
/// order of the files gives the same bits).
pub fn summed(partials: &[Partial]) -> Result<Vec<Sum>> {
    let mut order: Vec<&Partial> = partials.iter().collect();
    order.sort_by_key(|p| p.info.shards.iter().next().copied());
    let mut out = order[0].sums.clone();
    for p in &order[1..] {
        ensure!(
            p.sums.len() == out.len()
                && p.sums
                    .iter()
                    .zip(&out)
                    .all(|(a, b)| a.0 == b.0 && a.1 == b.1),
            "the partials hold different tensors"
        );
        for (o, s) in out.iter_mut().zip(&p.sums) {
            o.2.iter_mut().zip(&s.2).for_each(|(x, y)| *x += y);
        }
    }
    Ok(out)
}

/// The error one run over every line of `file` (as messages name it, `--file F`) ends
/// with when some of its `texts` could not be run (`not_run`: line and why, in line order;
/// each is named on stderr), as `Texts::not_run` says it.
pub fn not_run(file: &str, texts: usize, not_run: &[(usize, String)]) -> Result<()> {
    let Some((line, _)) = not_run.first() else {
        return Ok(());
    };
    for (_, why) in not_run {
        eprintln!("not run: {why}");
    }
    let name = format!("line {line} of {file}");
    let which = match not_run.len() {
        1 => name,
        _ => format!("{name}, …"),
    };
    bail!(
        "{} of {texts} texts were not run ({which}); every other text's output is written",
        not_run.len()
    )
}
