//! Where a model's files come from: a local directory, or a hub repository through the
//! shared Hugging Face cache ([`crate::load::hub`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use crate::load::checkpoint::FileFormat;
use crate::load::hub::Hub;

/// Short names for the GPT-2 repositories, mapped to where they live now.
pub const ALIASES: [(&str, &str); 5] = [
    ("gpt2", "openai-community/gpt2"),
    ("gpt2-medium", "openai-community/gpt2-medium"),
    ("gpt2-large", "openai-community/gpt2-large"),
    ("gpt2-xl", "openai-community/gpt2-xl"),
    ("distilgpt2", "distilbert/distilgpt2"),
];

/// A model: a local directory or a hub repository.
#[derive(Debug, Clone)]
pub enum ModelSource {
    Local(PathBuf),
    Hub {
        repo_id: String,
        revision: String,
        hub: Hub,
    },
}

impl ModelSource {
    /// An existing directory is local; anything that looks like a path must exist;
    /// everything else is a hub id (after alias lookup).
    pub fn resolve(spec: &str, revision: Option<&str>, hub: Hub) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Ok(ModelSource::Local(path.to_path_buf()));
        }
        if path.exists() {
            bail!("{spec} is a file; give the directory that holds config.json and the checkpoint");
        }
        let looks_like_path = spec.starts_with(['.', '/', '~'])
            || spec.matches('/').count() > 1
            || spec.contains('\\');
        if looks_like_path {
            bail!("{spec}: no such directory");
        }
        let repo_id = ALIASES
            .iter()
            .find(|(alias, _)| *alias == spec)
            .map_or(spec, |(_, repo)| repo)
            .to_string();
        Ok(ModelSource::Hub {
            repo_id,
            revision: revision.unwrap_or("main").to_string(),
            hub,
        })
    }

    /// Path of `name` in the model, fetching it into the hub cache when needed.
    pub fn file(&self, name: &str) -> Result<PathBuf> {
        match self {
            ModelSource::Local(dir) => {
                let p = dir.join(name);
                if p.is_file() {
                    Ok(p)
                } else {
                    bail!(
                        "{} has no {name}; a model directory holds config.json, a checkpoint \
                         (model.safetensors or pytorch_model.bin, or the index of their shards) \
                         and tokenizer.json (or vocab.json + merges.txt)",
                        dir.display()
                    )
                }
            }
            ModelSource::Hub {
                repo_id,
                revision,
                hub,
            } => hub.file(repo_id, revision, name),
        }
    }

    /// The checkpoint file, the first of [`FileFormat::ORDER`] the model holds (as
    /// transformers chooses), fetched when it is on the hub.
    pub fn checkpoint_file(&self) -> Result<(FileFormat, PathBuf)> {
        let names = FileFormat::ORDER.map(FileFormat::file_name);
        match self {
            ModelSource::Local(dir) => {
                for format in FileFormat::ORDER {
                    let p = dir.join(format.file_name());
                    if p.is_file() {
                        return Ok((format, p));
                    }
                }
                bail!(
                    "{} holds no checkpoint: none of {}",
                    dir.display(),
                    names.join(", ")
                )
            }
            ModelSource::Hub {
                repo_id,
                revision,
                hub,
            } => {
                let (i, p) = hub.first_of(repo_id, revision, &names)?;
                Ok((FileFormat::ORDER[i], p))
            }
        }
    }

    /// A shard that the index at `index` names (a plain file name, checked): beside it, or
    /// fetched from the hub.
    pub fn shard(&self, index: &Path, name: &str) -> Result<PathBuf> {
        match self {
            ModelSource::Local(_) => crate::load::checkpoint::shard_beside(index, name),
            ModelSource::Hub { .. } => self.file(name),
        }
    }

    /// The commit a hub model's revision resolved to: the name of the cache snapshot its
    /// config.json is in (fetched if need be). `None` for a local directory.
    pub fn commit(&self) -> Result<Option<String>> {
        match self {
            ModelSource::Local(_) => Ok(None),
            ModelSource::Hub { .. } => {
                let config = self.file("config.json")?;
                Ok(config
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|c| c.to_string_lossy().into_owned()))
            }
        }
    }

    /// Whether `name` is present without fetching anything (local directories only).
    pub fn has_local(&self, name: &str) -> bool {
        matches!(self, ModelSource::Local(dir) if dir.join(name).is_file())
    }
}

/// A sparse autoencoder: a local directory, or a folder of a hub repository
/// (`jbloom/GPT2-Small-SAEs-Reformatted/blocks.8.hook_resid_pre`) fetched through the same
/// verified cache as models.
#[derive(Debug, Clone)]
pub enum SaeSource {
    Local(PathBuf),
    Hub {
        repo_id: String,
        folder: String,
        revision: String,
        hub: Hub,
    },
}

impl SaeSource {
    /// An existing directory is local; `org/name/folder…` is a hub repository's folder.
    pub fn resolve(spec: &str, revision: Option<&str>, hub: Hub) -> Result<Self> {
        let path = Path::new(spec);
        if path.is_dir() {
            return Ok(SaeSource::Local(path.to_path_buf()));
        }
        let parts = match hub_parts(spec) {
            Some(parts) if parts.len() >= 3 => parts,
            Some(_) | None => bail!(
                "{spec}: no such directory (give a local directory, or a hub repository's \
                 folder: ORG/NAME/FOLDER)"
            ),
        };
        Ok(SaeSource::Hub {
            repo_id: parts[..2].join("/"),
            folder: parts[2..].join("/"),
            revision: revision.unwrap_or("main").to_string(),
            hub,
        })
    }

    /// Path of the SAE's file `name` (`cfg.json`, `sae_weights.safetensors`), fetched into
    /// the hub cache when needed.
    pub fn file(&self, name: &str) -> Result<PathBuf> {
        match self {
            SaeSource::Local(dir) => Ok(dir.join(name)),
            SaeSource::Hub {
                repo_id,
                folder,
                revision,
                hub,
            } => hub.file(repo_id, revision, &format!("{folder}/{name}")),
        }
    }

    /// Path of the SAE's optional file `name` (`sparsity.safetensors`), `None` when the SAE
    /// has none.
    pub fn optional_file(&self, name: &str) -> Result<Option<PathBuf>> {
        match self {
            SaeSource::Local(dir) => Ok(Some(dir.join(name)).filter(|p| p.exists())),
            SaeSource::Hub {
                repo_id,
                folder,
                revision,
                hub,
            } => hub.optional(repo_id, revision, &format!("{folder}/{name}")),
        }
    }
}

/// `spec`'s parts as a hub repository's path `ORG/NAME[/…]`: at least two, each a plain
/// name (no `.`, `..`, backslash or NUL), not starting like a local path; `None` otherwise.
fn hub_parts(spec: &str) -> Option<Vec<&str>> {
    let parts: Vec<&str> = spec.split('/').collect();
    let plain = |p: &&str| !p.is_empty() && *p != "." && *p != ".." && !p.contains(['\\', '\0']);
    let ok = !spec.starts_with(['.', '/', '~']) && parts.len() >= 2 && parts.iter().all(plain);
    ok.then_some(parts)
}

/// A hub repository named with an optional folder, `ORG/NAME[/FOLDER…]` (circuit-tracer's
/// transcoder sets keep their config.yaml at a repository's root or in a folder).
pub struct HubFolder {
    pub repo_id: String,
    pub folder: Option<String>,
}

impl HubFolder {
    pub fn parse(spec: &str) -> Result<Self> {
        let Some(parts) = hub_parts(spec) else {
            bail!(
                "{spec}: no such directory (give a local directory, or a hub repository or its \
                 folder: ORG/NAME[/FOLDER])"
            );
        };
        Ok(HubFolder {
            repo_id: parts[..2].join("/"),
            folder: (parts.len() > 2).then(|| parts[2..].join("/")),
        })
    }

    /// The path in the repository of the folder's file `name`.
    pub fn path(&self, name: &str) -> String {
        match &self.folder {
            Some(f) => format!("{f}/{name}"),
            None => name.to_string(),
        }
    }
}

/// A file named by `spec`: an existing local file, else a hub repository's file
/// `ORG/NAME/PATH` (main), fetched into the hub cache when needed.
pub fn file(spec: &str, hub: Hub) -> Result<PathBuf> {
    let path = Path::new(spec);
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    match spec.rsplit_once('/') {
        Some((folder, name)) if !name.is_empty() && !path.exists() => {
            match SaeSource::resolve(folder, None, hub) {
                Ok(source @ SaeSource::Hub { .. }) => source.file(name),
                _ => bail!("{spec}: no such file (give a local file, or a hub repository's file: ORG/NAME/PATH)"),
            }
        }
        _ => bail!(
            "{spec}: no such file (give a local file, or a hub repository's file: ORG/NAME/PATH)"
        ),
    }
}
