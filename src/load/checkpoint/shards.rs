//! The index of a sharded checkpoint (`model.safetensors.index.json`,
//! `pytorch_model.bin.index.json`, as `save_pretrained` writes with `max_shard_size`): its
//! `weight_map` names the shard of every tensor.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};

use crate::load::checkpoint::Stored;

/// An index beyond this is not a GPT-2's (gpt2-xl's would be about 30 kB).
const MAX_INDEX: u64 = 16 << 20;

pub struct Index {
    /// The shard files, in order, each a plain file name.
    pub shards: Vec<String>,
    weight_map: HashMap<String, String>,
}

#[derive(serde::Deserialize)]
struct Raw {
    weight_map: HashMap<String, String>,
}

impl Index {
    /// Reads and checks an index: every shard it names is a file beside it (no directory,
    /// no `..`, no absolute path).
    pub fn read(path: &Path) -> Result<Self> {
        let bad =
            |why: String| anyhow!("{} is not a valid checkpoint index: {why}", path.display());
        let len = std::fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .len();
        if len > MAX_INDEX {
            return Err(bad(format!("{len} bytes, more than an index holds")));
        }
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let raw: Raw = serde_json::from_slice(&text).map_err(|e| bad(format!("{e}")))?;
        let shards: BTreeSet<&String> = raw.weight_map.values().collect();
        if shards.is_empty() {
            return Err(bad("its weight_map is empty".into()));
        }
        if let Some(s) = shards.iter().find(|s| !plain_file_name(s)) {
            return Err(bad(format!(
                "it names shard {s:?}, which is not a file beside it"
            )));
        }
        Ok(Index {
            shards: shards.into_iter().cloned().collect(),
            weight_map: raw.weight_map,
        })
    }

    /// The tensors of all shards, each with the position of its shard in [`Self::shards`]:
    /// a tensor must be in the shard the index names for it, and in one shard only.
    pub fn merge(
        &self,
        path: &Path,
        files: Vec<(&str, Vec<Stored>)>,
    ) -> Result<HashMap<String, (Stored, usize)>> {
        let mut all: HashMap<String, (Stored, usize)> = HashMap::new();
        for (part, (shard, stored)) in files.into_iter().enumerate() {
            for s in stored {
                if let Some((_, other)) = all.get(&s.name) {
                    bail!(
                        "tensor {} is in two shards of {}: {} and {shard}",
                        s.name,
                        path.display(),
                        self.shards[*other]
                    );
                }
                all.insert(s.name.clone(), (s, part));
            }
        }
        for (name, shard) in &self.weight_map {
            match all.get(name) {
                Some((_, part)) if self.shards[*part] == *shard => {}
                _ => bail!(
                    "{} names {shard} as the shard of tensor {name}, which does not hold it",
                    path.display()
                ),
            }
        }
        Ok(all)
    }
}

/// Whether `name` names a file in the same directory and nothing else.
fn plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0', ':'])
        && Path::new(name).file_name().is_some_and(|n| n == name)
}

#[cfg(test)]
mod tests {
    use super::plain_file_name;

    #[test]
    fn shard_names_stay_beside_the_index() {
        assert!(plain_file_name("model-00001-of-00002.safetensors"));
        for bad in ["../x", "/etc/passwd", "a/b", "..", ".", "", "c:x", "a\\b"] {
            assert!(!plain_file_name(bad), "{bad}");
        }
    }
}
