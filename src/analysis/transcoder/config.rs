//! A transcoder set's `config.yaml` as circuit-tracer 0.5.0 reads it (`load_transcoders`):
//! its kind, the hooks its features read and write, its scan name, and the files of its
//! layers; checked before any tensor is read.

use std::path::{Component, Path};

use anyhow::{anyhow, bail, ensure, Context, Result};
use yaml_rust2::{Yaml, YamlLoader};

/// The hook every transcoder of a set reads, TransformerLens's name within a block: ln_2's
/// input centred and divided by its scale, before ln_2's gain and bias.
pub const INPUT_HOOK: &str = "ln2.hook_normalized";

/// The hook every transcoder of a set writes: the MLP's output.
pub const OUTPUT_HOOK: &str = "hook_mlp_out";

/// How a set's features are laid out over the layers (circuit-tracer's `model_kind`).
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// `transcoder_set`: one transcoder a layer, each layer's file in layer order, relative
    /// to the config's folder (and inside it).
    PerLayer { files: Vec<String> },
    /// `cross_layer_transcoder`: layer `i`'s features read at layer `i` and write to it and
    /// every later one, from `W_enc_{i}.safetensors` and `W_dec_{i}.safetensors` beside the
    /// config (circuit-tracer's `load_clt`).
    CrossLayer,
}

/// A transcoder set's `config.yaml`.
#[derive(Debug, Clone)]
pub struct TranscoderConfig {
    /// circuit-tracer's `scan`: the name a graph gives its transcoders (Neuronpedia finds
    /// the features' dashboards by it); `default_scan` when the config has none.
    pub scan: String,
    pub layout: Layout,
}

impl TranscoderConfig {
    /// Reads `path` (a `config.yaml`); the set must have `n_layer` layers (a per-layer set one
    /// file each: those its `transcoders` list names, or `layer_{i}.safetensors`).
    pub fn read(path: &Path, default_scan: &str, n_layer: usize) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Self::parse(&text, default_scan, n_layer)
            .with_context(|| format!("unsupported transcoder config {}", path.display()))
    }

    fn parse(text: &str, default_scan: &str, n_layer: usize) -> Result<Self> {
        let docs = YamlLoader::load_from_str(text).map_err(|e| anyhow!("not YAML: {e}"))?;
        let doc = docs.first().ok_or_else(|| anyhow!("it is empty"))?;
        let text_of = |k: &str| doc[k].as_str();
        let cross_layer = match text_of("model_kind") {
            Some("transcoder_set") => false,
            Some("cross_layer_transcoder") => true,
            Some(other) => bail!(
                "model_kind {other}: circuit-tracer knows transcoder_set and \
                 cross_layer_transcoder"
            ),
            None => bail!("no model_kind"),
        };
        for (key, want) in [
            ("feature_input_hook", INPUT_HOOK),
            ("feature_output_hook", OUTPUT_HOOK),
        ] {
            let got = text_of(key).ok_or_else(|| anyhow!("no {key}"))?;
            ensure!(
                got == want,
                "{key} is {got}; gpt2-inspect's graphs take transcoders from {INPUT_HOOK} to \
                 {OUTPUT_HOOK}"
            );
        }
        if let Some(a) = text_of("activation").filter(|a| *a != "relu") {
            bail!(
                "activation {a}: circuit-tracer 0.5.0 reads a per-layer set as ReLU, or JumpReLU \
                 when its files hold activation_function.threshold"
            );
        }
        let scan = text_of("scan").unwrap_or(default_scan).to_string();
        if cross_layer {
            ensure!(
                matches!(doc["transcoders"], Yaml::BadValue),
                "a cross-layer transcoder lists no files: W_enc_{{i}}.safetensors and \
                 W_dec_{{i}}.safetensors lie beside its config"
            );
            let layout = Layout::CrossLayer;
            return Ok(TranscoderConfig { scan, layout });
        }
        let files = match &doc["transcoders"] {
            Yaml::BadValue => (0..n_layer)
                .map(|i| format!("layer_{i}.safetensors"))
                .collect(),
            Yaml::Array(list) => listed(list)?,
            _ => bail!("transcoders is not a list of files"),
        };
        ensure!(
            files.len() == n_layer,
            "it names {} transcoders; the model has {n_layer} layers",
            files.len()
        );
        let layout = Layout::PerLayer { files };
        Ok(TranscoderConfig { scan, layout })
    }
}

/// The files a `transcoders` list names, each a relative path inside the config's folder.
fn listed(list: &[Yaml]) -> Result<Vec<String>> {
    let mut files = Vec::with_capacity(list.len());
    for item in list {
        let name = item
            .as_str()
            .ok_or_else(|| anyhow!("transcoders holds something other than a file name"))?;
        ensure!(
            !name.starts_with("hf://"),
            "it names {name}: download the hub's files into the folder and list them by name"
        );
        let rel = Path::new(name);
        let inside = rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        ensure!(
            inside && !name.is_empty(),
            "it names {name}, which is not a file inside its folder"
        );
        files.push(name.to_string());
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str =
        "model_kind: transcoder_set\nfeature_input_hook: ln2.hook_normalized\nfeature_output_hook: hook_mlp_out\n";

    #[test]
    fn reads_the_layers_files_and_the_scan() {
        let files = |c: TranscoderConfig| match c.layout {
            Layout::PerLayer { files } => files,
            Layout::CrossLayer => panic!("a per-layer set"),
        };
        let c = TranscoderConfig::parse(BASE, "set", 2).unwrap();
        assert_eq!(c.scan, "set");
        assert_eq!(files(c)[1], "layer_1.safetensors");
        let text = format!(
            "{BASE}scan: org/name\ntranscoders:\n  - a.safetensors\n  - sub/b.safetensors\n"
        );
        let c = TranscoderConfig::parse(&text, "set", 2).unwrap();
        assert_eq!(c.scan, "org/name");
        assert_eq!(files(c)[1], "sub/b.safetensors");
        let clt = BASE.replace("transcoder_set", "cross_layer_transcoder");
        let c = TranscoderConfig::parse(&clt, "set", 2).unwrap();
        assert_eq!(c.layout, Layout::CrossLayer);
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let err = |text: &str| format!("{:#}", TranscoderConfig::parse(text, "t", 2).unwrap_err());
        for (text, says) in [
            (
                format!("{BASE}transcoders: [../x.safetensors, b]\n"),
                "not a file inside",
            ),
            (
                format!("{BASE}transcoders: [/etc/passwd, b]\n"),
                "not a file inside",
            ),
            (format!("{BASE}transcoders: [hf://o/n/f, b]\n"), "download"),
            (format!("{BASE}transcoders: [a]\n"), "names 1 transcoders"),
            (format!("{BASE}activation: topk\n"), "activation topk"),
            (
                BASE.replace("ln2.hook_normalized", "hook_resid_mid"),
                "feature_input_hook",
            ),
            (
                BASE.replace("transcoder_set", "cross_layer_transcoder") + "transcoders: [a]\n",
                "lists no files",
            ),
            (BASE.replace("transcoder_set", "sae"), "model_kind sae"),
            ("a: [".to_string(), "not YAML"),
        ] {
            assert!(err(&text).contains(says), "{text}: {}", err(&text));
        }
    }
}
