//! Shared by the integration tests: fixture paths, HF reference outputs, comparisons, a
//! local hub.

pub mod checkpoint;
pub mod family;
pub mod hub_server;

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

/// HF's outputs may differ from ours by float rounding only.
pub const TOL: f32 = 1e-4;

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn model_dir() -> PathBuf {
    fixtures().join("tiny-gpt2")
}

pub struct Reference {
    pub tensors: HashMap<String, Tensor>,
    pub prompts: Vec<String>,
    pub batch: Vec<String>,
    pub generate_new_tokens: usize,
    /// HF's `model.num_parameters()`.
    pub num_parameters: usize,
}

impl Reference {
    pub fn load() -> Self {
        let path = fixtures().join("reference.safetensors");
        let bytes = std::fs::read(&path).expect("reference.safetensors");
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().expect("reference metadata");
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
        Reference {
            tensors,
            prompts: serde_json::from_str(&meta["prompts"]).unwrap(),
            batch: serde_json::from_str(&meta["batch"]).unwrap(),
            generate_new_tokens: meta["generate_new_tokens"].parse().unwrap(),
            num_parameters: meta["num_parameters"].parse().unwrap(),
        }
    }

    pub fn get(&self, name: &str) -> &Tensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("reference has no {name}"))
    }

    pub fn ids(&self, prompt: usize) -> Vec<u32> {
        self.u32s(&format!("p{prompt}.input_ids"))
    }

    /// A 1-D integer reference tensor (token ids), as u32.
    pub fn u32s(&self, name: &str) -> Vec<u32> {
        self.get(name)
            .to_dtype(DType::I64)
            .unwrap()
            .to_vec1::<i64>()
            .unwrap()
            .into_iter()
            .map(|i| i as u32)
            .collect()
    }
}

/// Largest |got - want|; matching infinities (masked scores) count as equal.
pub fn max_abs_diff(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "length differs");
    got.iter()
        .zip(want)
        .map(|(&g, &w)| {
            if g.is_infinite() || w.is_infinite() {
                if g == w {
                    0.0
                } else {
                    f32::INFINITY
                }
            } else {
                (g - w).abs()
            }
        })
        .fold(0.0, f32::max)
}

pub fn flat(t: &Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Asserts equal shape and values within TOL; returns the largest difference.
pub fn assert_close(what: &str, got: &Tensor, want: &Tensor) -> f32 {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let d = max_abs_diff(&flat(got), &flat(want));
    assert!(d <= TOL, "{what}: max |ours - HF| = {d} > {TOL}");
    d
}

/// The binary on the fixture model.
pub fn cmd() -> assert_cmd::Command {
    let mut c = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    c.arg("--model").arg(model_dir());
    c
}

/// Runs `args` with `--json`, asserting success; the parsed stdout.
pub fn json(args: &[&str]) -> serde_json::Value {
    json_on(&model_dir(), args)
}

/// [`json`] on the model in `dir`.
pub fn json_on(dir: &std::path::Path, args: &[&str]) -> serde_json::Value {
    let mut c = assert_cmd::Command::cargo_bin("gpt2-inspect").unwrap();
    let out = c
        .arg("--model")
        .arg(dir)
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is one JSON object")
}

/// A JSON array of numbers (nested or not), flattened; `null` (a masked score) reads as -inf.
pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    match v {
        serde_json::Value::Array(a) => a.iter().flat_map(floats).collect(),
        serde_json::Value::Number(n) => vec![n.as_f64().unwrap() as f32],
        serde_json::Value::Null => vec![f32::NEG_INFINITY],
        other => panic!("not a number: {other}"),
    }
}

pub fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("an array of ids")
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Runs the binary with `args` and asserts the exit code, that stderr names the problem
/// (every needle) and that nothing panicked.
pub fn fails(c: &mut assert_cmd::Command, code: i32, needles: &[&str]) -> String {
    let out = c.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{c:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "{c:?}: stderr lacks {n:?}: {err}");
    }
    assert!(!err.contains("panicked"), "{c:?}: {err}");
    // clap's own parse errors add a usage hint; every other error is one line.
    if !err.contains("try '--help'") {
        assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    }
    err
}

/// A scratch directory removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("gpt2-inspect-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// A model directory holding copies of the named fixture files.
    pub fn model(&self, name: &str, files: &[&str]) -> PathBuf {
        let dir = self.0.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            std::fs::copy(model_dir().join(f), dir.join(f)).unwrap();
        }
        dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The JSON data block of a page written by `report`.
pub fn page_data(html: &str) -> serde_json::Value {
    let open = r#"<script type="application/json" id="page-data">"#;
    let start = html.find(open).expect("page data") + open.len();
    let len = html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..start + len]).expect("page data is JSON")
}

/// A base64 field of the page data as little-endian `u16`s (`attn`).
pub fn page_u16s(data: &serde_json::Value, field: &str) -> Vec<u16> {
    page_bytes(data, field)
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// A base64 field of the page data as little-endian `f32`s (`q`, `k`).
pub fn page_f32s(data: &serde_json::Value, field: &str) -> Vec<f32> {
    page_bytes(data, field)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn page_bytes(data: &serde_json::Value, field: &str) -> Vec<u8> {
    use base64::Engine as _;
    let text = data[field]
        .as_str()
        .unwrap_or_else(|| panic!("page data has no {field}"));
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

/// `patch --clean … --corrupt … --answer … --wrong …` for a reference pair.
pub fn patch_args(pair: &(String, String, String, String)) -> Vec<&str> {
    let (clean, corrupt, answer, wrong) = pair;
    vec![
        "patch",
        "--clean",
        clean,
        "--corrupt",
        corrupt,
        "--answer",
        answer,
        "--wrong",
        wrong,
    ]
}

/// The ids of `text` under the fixture's tokenizer.
pub fn token_ids(tok: &gpt2_inspect::tokenizer::Tokenizer, text: &str) -> Vec<u32> {
    tok.encode(text).unwrap().iter().map(|t| t.id).collect()
}

/// The id of `text`, which must be one token.
pub fn one_token(tok: &gpt2_inspect::tokenizer::Tokenizer, text: &str) -> u32 {
    let ids = token_ids(tok, text);
    assert_eq!(ids.len(), 1, "{text:?}");
    ids[0]
}

/// A reference file of tests/fixtures: its tensors and its metadata.
pub fn fixture_file(
    name: &str,
) -> (
    std::collections::HashMap<String, Tensor>,
    std::collections::HashMap<String, String>,
) {
    fixture_file_at(&fixtures().join(name))
}

/// A safetensors file's tensors and metadata.
pub fn fixture_file_at(
    path: &std::path::Path,
) -> (
    std::collections::HashMap<String, Tensor>,
    std::collections::HashMap<String, String>,
) {
    let bytes = std::fs::read(path).unwrap();
    let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let tensors = candle_core::safetensors::load_buffer(&bytes, &candle_core::Device::Cpu).unwrap();
    (tensors, m.metadata().clone().unwrap_or_default())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|x| format!("{x:02x}")).collect()
}

/// The fixture model (f32, CPU, its weights mapped) and its tokenizer.
pub fn tiny_model() -> (
    gpt2_inspect::model::Gpt2,
    gpt2_inspect::model::Config,
    gpt2_inspect::tokenizer::Tokenizer,
) {
    use gpt2_inspect::load::checkpoint::Checkpoint;
    use gpt2_inspect::model::{Config, Gpt2};
    let (cfg, _) = Config::from_file(&model_dir().join("config.json")).unwrap();
    let ckpt = Checkpoint::open(&model_dir().join("model.safetensors")).unwrap();
    let model = Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32).unwrap();
    let tok =
        gpt2_inspect::tokenizer::Tokenizer::from_file(&model_dir().join("tokenizer.json")).unwrap();
    (model, cfg, tok)
}

/// Asserts `got` within TOL of `want` (relative above 1), NaN exactly where `want` is NaN;
/// returns the largest difference.
pub fn near(what: &str, got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        if w.is_nan() || g.is_nan() {
            assert!(w.is_nan() && g.is_nan(), "{what}[{i}]: ours {g}, HF {w}");
            continue;
        }
        let d = (g - w).abs();
        assert!(d <= TOL * w.abs().max(1.0), "{what}[{i}]: ours {g}, HF {w}");
        worst = worst.max(d);
    }
    worst
}

/// An ablation as the fixtures list it (heads as (layer, head), MLP layers, `zero` or
/// `mean`), as the model takes it.
pub fn ablation(
    (heads, mlps, mode): &(Vec<(usize, usize)>, Vec<usize>, String),
) -> (
    Vec<gpt2_inspect::analysis::ablation::Component>,
    gpt2_inspect::analysis::ablation::Ablation,
) {
    use gpt2_inspect::analysis::ablation::{Ablation, Component};
    let components = (heads.iter())
        .map(|&(l, h)| Component::Head(l, h))
        .chain(mlps.iter().map(|&l| Component::Mlp(l)))
        .collect();
    let mode = match mode.as_str() {
        "zero" => Ablation::Zero,
        _ => Ablation::Mean,
    };
    (components, mode)
}

/// The panels of `attention --stages`, in data-flow order, as the table and the figure
/// title them.
pub const STAGE_PANELS: [&str; 8] = [
    "x (ln_1 output)",
    "q (queries)",
    "k (keys)",
    "v (values)",
    "QKᵀ/√d",
    "softmax",
    "z = softmax · v",
    "z·W_O (to the residual stream)",
];
