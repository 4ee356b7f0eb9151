//! Attribution graphs against circuit-tracer 0.5.0 itself (scripts/make_graph_fixtures.py,
//! tests/fixtures/graphs): random per-layer transcoder sets in circuit-tracer's format on the
//! tiny fixture, each case's unpruned graph (active features, activations, logit targets,
//! selected features, every adjacency entry), its pruning at two threshold pairs and its
//! scores; and our position-embedding edges against the gradient circuit-tracer's own
//! attribution context gives at `hook_pos_embed`.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use gpt2_inspect::analysis::graph::{self, prune, Graph, Settings};
use gpt2_inspect::analysis::progress::Silent;
use gpt2_inspect::analysis::transcoder::TranscoderSet;
use gpt2_inspect::load::checkpoint::Checkpoint;
use gpt2_inspect::model::{Config, Gpt2};

use crate::common::{fixtures, flat, model_dir};

/// name: transcoder set.
const CASES: [(&str, &str); 6] = [
    ("relu-a", "relu"),
    ("relu-b-budget", "relu"),
    ("skip-a", "jumprelu-skip"),
    ("skip-b-budget", "jumprelu-skip"),
    ("clt-a", "clt"),
    ("clt-b-budget", "clt"),
];

fn model() -> (Config, Gpt2) {
    let (cfg, _) = Config::from_file(&model_dir().join("config.json")).unwrap();
    let ckpt = Checkpoint::open(&model_dir().join("model.safetensors")).unwrap();
    let m = Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32).unwrap();
    (cfg, m)
}

fn reference() -> HashMap<String, Tensor> {
    crate::common::fixture_file("graphs/reference.safetensors").0
}

fn ints(t: &Tensor) -> Vec<i64> {
    t.flatten_all().unwrap().to_vec1::<i64>().unwrap()
}

/// A transcoder set of the fixtures: circuit-tracer's `graphs/{set}`, or another path
/// under the fixtures.
fn set_dir(set: &str) -> std::path::PathBuf {
    match set.contains('/') {
        true => fixtures().join(set),
        false => fixtures().join("graphs").join(set),
    }
}

/// The graph of case `name` with the settings circuit-tracer ran it with.
fn graph_of(r: &HashMap<String, Tensor>, name: &str, set: &str) -> Graph {
    let (cfg, m) = model();
    let tset = TranscoderSet::load(&set_dir(set), &cfg).unwrap();
    let ids: Vec<u32> = ints(&r[&format!("{name}.input_ids")])
        .iter()
        .map(|&i| i as u32)
        .collect();
    let s = ints(&r[&format!("{name}.settings")]);
    let settings = Settings {
        max_feature_nodes: (s[0] > 0).then_some(s[0] as usize),
        batch_size: s[1] as usize,
        update_interval: s[2] as usize,
        max_logits: 10,
        desired_logit_prob: 0.95,
    };
    graph::attribute(&m, &tset, &ids, &settings, &mut Silent).unwrap()
}

/// Largest |got − want| relative to want's largest entry.
fn relative(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (g, w)| m.max((g - w).abs()));
    d / scale
}

#[test]
fn graphs_equal_circuit_tracers() {
    let r = reference();
    for (name, set) in CASES {
        same_graph(&r, name, set);
    }
}

/// SAELens's and sparsify's transcoder files holding the same functions as circuit-tracer's
/// sets (written by those libraries; sparsify's encoder folded through ln_2, whose output it
/// reads) give circuit-tracer's graphs.
#[test]
fn graphs_from_saelens_and_sparsify_files_equal_circuit_tracers() {
    let r = reference();
    for (name, set) in [
        ("relu-a", "transcoders/saelens-relu"),
        ("skip-b-budget", "transcoders/saelens-skip"),
        ("relu-a", "transcoders/sparsify-relu"),
        ("relu-b-budget", "transcoders/sparsify-relu"),
    ] {
        same_graph(&r, name, set);
    }
}

/// Every number of case `name`'s graph through the set `set` against circuit-tracer's.
fn same_graph(r: &HashMap<String, Tensor>, name: &str, set: &str) {
    {
        let g = graph_of(r, name, set);
        let key = |k: &str| format!("{name}.{k}");
        let active: Vec<i64> = g
            .active_features
            .iter()
            .flatten()
            .map(|&v| v as i64)
            .collect();
        assert_eq!(
            active,
            ints(&r[&key("active_features")]),
            "{name}: active features"
        );
        let acts = flat(&r[&key("activation_values")]);
        assert!(
            relative(&g.activation_values, &acts) < 1e-4,
            "{name}: activations"
        );
        let sel: Vec<i64> = g.selected_features.iter().map(|&v| v as i64).collect();
        assert_eq!(sel, ints(&r[&key("selected_features")]), "{name}: selected");
        let tokens: Vec<i64> = g.logits.iter().map(|l| l.token as i64).collect();
        assert_eq!(
            tokens,
            ints(&r[&key("logit_tokens")]),
            "{name}: logit tokens"
        );
        let probs: Vec<f32> = g.logits.iter().map(|l| l.prob).collect();
        assert!(
            relative(&probs, &flat(&r[&key("logit_probabilities")])) < 1e-4,
            "{name}"
        );
        let d = relative(&g.adjacency, &flat(&r[&key("adjacency_matrix")]));
        assert!(
            d < 1e-4,
            "{name}: adjacency off by {d} of its largest entry"
        );
        // circuit-tracer's context gives the rows it computes: features, then logits.
        let (t, n) = (g.n_pos(), g.n_nodes());
        let rows = g.selected_features.len();
        let ours: Vec<f32> = (g.position_edges[..rows * t].iter())
            .chain(&g.position_edges[(n - g.logits.len()) * t..])
            .copied()
            .collect();
        let d = relative(&ours, &flat(&r[&key("position_edges")]));
        assert!(
            d < 1e-4,
            "{name}: position edges off by {d} of their largest entry"
        );
        let want = flat(&r[&key("scores")].to_dtype(DType::F32).unwrap());
        for (t, (node, edge)) in [("default", (0.8, 0.98)), ("tight", (0.6, 0.9))] {
            let p = prune::prune(&g, node, edge).unwrap();
            // The scores are of the unpruned graph: the same at every threshold.
            let (replacement, completeness) = prune::scores(&g, &p);
            assert!(
                (replacement as f32 - want[0]).abs() < 1e-4,
                "{name} {t}: {replacement} {want:?}"
            );
            assert!(
                (completeness as f32 - want[1]).abs() < 1e-4,
                "{name} {t}: {completeness}"
            );
            let mask = |k: &str| -> Vec<bool> {
                ints(&r[&key(&format!("{t}.{k}"))].to_dtype(DType::I64).unwrap())
                    .iter()
                    .map(|&v| v != 0)
                    .collect()
            };
            let differ = |a: &[bool], b: &[bool]| a.iter().zip(b).filter(|(x, y)| x != y).count();
            let (nodes, edges) = (mask("node_mask"), mask("edge_mask"));
            assert_eq!(p.node_mask.len(), nodes.len(), "{name} {t}");
            assert_eq!(
                differ(&p.node_mask, &nodes),
                0,
                "{name} {t}: nodes kept differ"
            );
            assert_eq!(
                differ(&p.edge_mask, &edges),
                0,
                "{name} {t}: edges kept differ"
            );
            assert!(
                nodes.iter().any(|&k| k) && edges.iter().any(|&k| k),
                "{name} {t}"
            );
            let c = flat(&r[&key(&format!("{t}.cumulative"))]);
            assert!(relative(&p.cumulative, &c) < 1e-4, "{name} {t}: influence");
        }
    }
}

/// The flags that make `graph` run case `name` as circuit-tracer ran it.
fn case_args(r: &HashMap<String, Tensor>, name: &str, set: &str) -> Vec<String> {
    let (_, meta) = crate::common::fixture_file("graphs/reference.safetensors");
    let prompts: HashMap<String, String> = serde_json::from_str(&meta["prompts"]).unwrap();
    let prompt = &prompts[if name.contains("-a") { "a" } else { "b" }];
    let s = ints(&r[&format!("{name}.settings")]);
    let mut args: Vec<String> = ["graph", prompt, "--transcoders"]
        .iter()
        .map(|a| a.to_string())
        .collect();
    args.push(fixtures().join("graphs").join(set).display().to_string());
    if s[0] > 0 {
        for (flag, v) in [
            ("--max-feature-nodes", s[0]),
            ("--backward-batch", s[1]),
            ("--update-interval", s[2]),
        ] {
            args.extend([flag.to_string(), v.to_string()]);
        }
    }
    args
}

/// Equal JSON, numbers within 1e-4 relative (at least absolute).
fn same_json(got: &serde_json::Value, want: &serde_json::Value, at: &str) {
    use serde_json::Value::*;
    match (got, want) {
        (Object(a), Object(b)) => {
            let (ka, kb): (Vec<_>, Vec<_>) = (a.keys().collect(), b.keys().collect());
            assert_eq!(ka, kb, "{at}: keys");
            for k in b.keys() {
                same_json(&a[k], &b[k], &format!("{at}.{k}"));
            }
        }
        (Array(a), Array(b)) => {
            assert_eq!(a.len(), b.len(), "{at}: length");
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                same_json(x, y, &format!("{at}[{i}]"));
            }
        }
        (Number(x), Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-4 * y.abs().max(1.0), "{at}: {x} vs {y}");
        }
        (a, b) => assert_eq!(a, b, "{at}"),
    }
}

/// `graph -o` writes circuit-tracer's `create_graph_files` JSON: with --no-position-nodes
/// the same file (nodes, ids, links in order, numbers within 1e-4) but for the two scores
/// gpt2-inspect adds to the metadata; with position nodes, the same once they and their
/// links are taken out. `--raw` holds the unpruned graph under circuit-tracer's names.
#[test]
fn graph_files_equal_circuit_tracers() {
    let r = reference();
    let scratch = crate::common::Scratch::new("graph-files");
    for (name, set) in CASES {
        let want: serde_json::Value = serde_json::from_slice(
            &std::fs::read(fixtures().join("graphs").join(format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        for positions in [false, true] {
            let out = scratch.0.join(format!("{name}-{positions}.json"));
            let raw = scratch.0.join(format!("{name}-{positions}.safetensors"));
            let mut c = crate::common::cmd();
            c.args(case_args(&r, name, set))
                .args(["--slug", name, "-o"])
                .arg(&out)
                .arg("--raw")
                .arg(&raw);
            if !positions {
                c.arg("--no-position-nodes");
            }
            let o = c.output().unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let mut got: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
            let meta = got["metadata"].as_object_mut().unwrap();
            let scores = flat(&r[&format!("{name}.scores")].to_dtype(DType::F32).unwrap());
            for (k, w) in ["replacement_score", "completeness_score"]
                .iter()
                .zip(scores)
            {
                let v = meta.remove(*k).unwrap().as_f64().unwrap();
                assert!((v as f32 - w).abs() < 1e-4, "{name}: {k}");
            }
            if positions {
                let nodes = got["nodes"].as_array_mut().unwrap();
                let before = nodes.len();
                nodes.retain(|n| n["feature_type"] != "position embedding");
                assert_eq!(
                    before - nodes.len(),
                    ints(&r[&format!("{name}.input_ids")]).len()
                );
                let links = got["links"].as_array_mut().unwrap();
                let before = links.len();
                links.retain(|l| !l["source"].as_str().unwrap().starts_with("P_"));
                assert!(
                    before > links.len(),
                    "{name}: position nodes have kept edges"
                );
            }
            same_json(&got, &want, name);
            let (t, _) = crate::common::fixture_file_at(&raw);
            let want = flat(&r[&format!("{name}.adjacency_matrix")]);
            let n = (want.len() as f64).sqrt() as usize;
            let mut adjacency = flat(&t["adjacency_matrix"]);
            if positions {
                let tn = ints(&r[&format!("{name}.input_ids")]).len();
                let (side, split) = (n + tn, n - ints(&r[&format!("{name}.logit_tokens")]).len());
                let keep = |i: usize| i < split || i >= split + tn;
                adjacency = (0..side * side)
                    .filter(|k| keep(k / side) && keep(k % side))
                    .map(|k| adjacency[k])
                    .collect();
            }
            assert!(relative(&adjacency, &want) < 1e-4, "{name}: raw adjacency");
            for k in ["active_features", "selected_features", "logit_tokens"] {
                assert_eq!(
                    ints(&t[k]),
                    ints(&r[&format!("{name}.{k}")]),
                    "{name}: raw {k}"
                );
            }
        }
    }
}

/// A copy of the relu transcoder set with layer 1's file rewritten by `edit` (name → tensor).
fn hostile_set(
    scratch: &crate::common::Scratch,
    name: &str,
    edit: impl FnOnce(&mut HashMap<String, Tensor>),
) -> std::path::PathBuf {
    hostile_copy(scratch, "relu", "layer_1.safetensors", name, edit)
}

/// A copy of the fixture's transcoder set `set` with its file `file` rewritten by `edit`.
fn hostile_copy(
    scratch: &crate::common::Scratch,
    set: &str,
    file: &str,
    name: &str,
    edit: impl FnOnce(&mut HashMap<String, Tensor>),
) -> std::path::PathBuf {
    let src = fixtures().join("graphs").join(set);
    let dir = scratch.0.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in std::fs::read_dir(&src).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, dir.join(f.file_name().unwrap())).unwrap();
    }
    let (mut t, _) = crate::common::fixture_file_at(&dir.join(file));
    edit(&mut t);
    candle_core::safetensors::save(&t, dir.join(file)).unwrap();
    dir
}

/// A cross-layer transcoder whose decoder does not write to every later layer, which holds
/// skip weights circuit-tracer would leave out, or lacks a layer's file is refused with one
/// line.
#[test]
fn hostile_cross_layer_transcoders_are_refused() {
    let scratch = crate::common::Scratch::new("graph-hostile-clt");
    let run = |dir: &std::path::Path, needles: &[&str]| {
        let mut c = crate::common::cmd();
        c.args(["graph", "The cat sat", "--transcoders"]).arg(dir);
        crate::common::fails(&mut c, 1, needles);
    };
    let zeros = |shape: &[usize]| Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap();
    let slots = hostile_copy(&scratch, "clt", "W_dec_1.safetensors", "slots", |t| {
        t.insert("W_dec_1".into(), zeros(&[48, 3, 32]));
    });
    run(&slots, &["W_dec_1", "shape [48, 3, 32]", "[48, 2, 32]"]);
    let skip = hostile_copy(&scratch, "clt", "W_enc_1.safetensors", "skip", |t| {
        t.insert("W_skip_1".into(), zeros(&[32, 32]));
    });
    run(&skip, &["skip weights", "cross-layer"]);
    let missing = hostile_copy(&scratch, "clt", "W_enc_0.safetensors", "missing", |_| {});
    std::fs::remove_file(missing.join("W_dec_2.safetensors")).unwrap();
    run(&missing, &["W_dec_2.safetensors"]);
}

/// Transcoder files that do not fit the model, or are damaged, are refused with one line
/// each before anything is computed.
#[test]
fn hostile_transcoders_are_refused() {
    let scratch = crate::common::Scratch::new("graph-hostile");
    let run = |dir: &std::path::Path, needles: &[&str]| {
        let mut c = crate::common::cmd();
        c.args(["graph", "The cat sat", "--transcoders"]).arg(dir);
        crate::common::fails(&mut c, 1, needles);
    };
    let wrong = hostile_set(&scratch, "shape", |t| {
        t.insert(
            "W_enc".into(),
            Tensor::zeros((48, 31), DType::F32, &Device::Cpu).unwrap(),
        );
    });
    run(&wrong, &["W_enc", "shape [48, 31]", "[48, 32]"]);
    let nan = hostile_set(&scratch, "nan", |t| {
        let w = t["W_dec"].to_vec2::<f32>().unwrap();
        let mut flat: Vec<f32> = w.concat();
        flat[5] = f32::NAN;
        t.insert(
            "W_dec".into(),
            Tensor::from_vec(flat, (48, 32), &Device::Cpu).unwrap(),
        );
    });
    run(&nan, &["W_dec", "NaN"]);
    let width = hostile_set(&scratch, "width", |t| {
        for k in ["W_enc", "W_dec"] {
            t.insert(
                k.into(),
                Tensor::zeros((40, 32), DType::F32, &Device::Cpu).unwrap(),
            );
        }
        t.insert(
            "b_enc".into(),
            Tensor::zeros(40, DType::F32, &Device::Cpu).unwrap(),
        );
    });
    run(&width, &["layer 1", "40 features", "48"]);
    let skip = hostile_set(&scratch, "skip", |t| {
        t.insert(
            "W_skip".into(),
            Tensor::zeros((32, 32), DType::F32, &Device::Cpu).unwrap(),
        );
    });
    run(&skip, &["skip connection"]);
    let truncated = hostile_set(&scratch, "truncated", |_| {});
    let f = truncated.join("layer_2.safetensors");
    let bytes = std::fs::read(&f).unwrap();
    std::fs::write(&f, &bytes[..bytes.len() / 2]).unwrap();
    run(&truncated, &["layer_2.safetensors"]);
    let outside = hostile_set(&scratch, "outside", |_| {});
    let cfg = std::fs::read_to_string(outside.join("config.yaml")).unwrap();
    let listed =
        "transcoders: [layer_0.safetensors, ../relu/layer_1.safetensors, layer_2.safetensors]\n";
    std::fs::write(outside.join("config.yaml"), cfg + listed).unwrap();
    run(&outside, &["not a file inside its folder"]);
    let empty = scratch.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    run(&empty, &["cannot read", "config.yaml"]);
    let mut c = crate::common::cmd();
    c.args(["graph", "The cat sat", "--transcoders"])
        .arg(scratch.0.join("missing"));
    crate::common::fails(&mut c, 2, &["no such directory", "ORG/NAME[/FOLDER]"]);
}

/// circuit-tracer's `feature_intervention` (attention frozen): the last position's logits
/// after a feature is set to 0 and another to three times its activation, within 1e-4.
#[test]
fn interventions_equal_circuit_tracers() {
    use gpt2_inspect::analysis::graph::intervene::{intervene, Intervention};
    let r = reference();
    let (cfg, m) = model();
    for (name, set) in [
        ("relu-a", "relu"),
        ("skip-a", "jumprelu-skip"),
        ("clt-a", "clt"),
    ] {
        let tset = TranscoderSet::load(&fixtures().join("graphs").join(set), &cfg).unwrap();
        let ids: Vec<u32> = ints(&r[&format!("{name}.input_ids")])
            .iter()
            .map(|&i| i as u32)
            .collect();
        let feats = ints(&r[&format!("{name}.intervention.features")]);
        let values = flat(&r[&format!("{name}.intervention.values")]);
        let changes: Vec<Intervention> = (feats.chunks(3).zip(values))
            .map(|(f, value)| Intervention {
                layer: f[0] as usize,
                pos: f[1] as usize,
                feature: f[2] as usize,
                value,
            })
            .collect();
        let (before, after) = intervene(&m, &tset, &ids, &changes).unwrap();
        let close = |got: &[f32], want: &[f32]| crate::common::max_abs_diff(got, want);
        let d = close(&before, &flat(&r[&format!("{name}.clean_logits")]));
        assert!(d < 1e-4, "{name}: clean logits off by {d}");
        let want = flat(&r[&format!("{name}.intervention.logits")]);
        let d = close(&after, &want);
        assert!(d < 1e-4, "{name}: logits after the intervention off by {d}");
        assert!(
            close(&before, &want) > 0.1,
            "{name}: the intervention changes the logits"
        );
    }
}

/// `graph --svg` draws every kept node (features as circles) and at most the 500 strongest
/// kept edges, as well-formed SVG; `--clamp`/`--ablate` report the next tokens after the
/// change, circuit-tracer's top tokens in its order.
#[test]
fn the_figure_and_the_intervention_flags() {
    let r = reference();
    let scratch = crate::common::Scratch::new("graph-svg");
    let svg = scratch.0.join("g.svg");
    let feats = ints(&r["relu-a.intervention.features"]);
    let values = flat(&r["relu-a.intervention.values"]);
    let clamp = format!("{}_{}_{}={}", feats[3], feats[5], feats[4], values[1]);
    let ablate = format!("{}_{}_{}", feats[0], feats[2], feats[1]);
    let mut args = case_args(&r, "relu-a", "relu");
    args.extend([
        "--svg".into(),
        svg.display().to_string(),
        "--clamp".into(),
        clamp,
    ]);
    args.extend(["--ablate".into(), ablate]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let v = crate::common::json(&refs);
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("well-formed SVG");
    let count = |tag: &str| doc.descendants().filter(|n| n.has_tag_name(tag)).count();
    assert_eq!(
        count("circle") as u64,
        v["kept"]["features"].as_u64().unwrap()
    );
    assert_eq!(
        count("line"),
        (v["kept"]["edges"].as_u64().unwrap() as usize).min(500)
    );
    let want = flat(&r["relu-a.intervention.logits"]);
    let top: Vec<u32> = gpt2_inspect::dist::top_k(&want, 10)
        .iter()
        .map(|&i| i as u32)
        .collect();
    let after: Vec<u32> = (v["intervention"]["after"].as_array().unwrap().iter())
        .map(|p| p["id"].as_u64().unwrap() as u32)
        .collect();
    assert_eq!(after, top);
}

/// An intervention naming a feature the transcoders or the text do not have is a usage
/// error, one line, before any graph is computed (nothing is written).
#[test]
fn interventions_outside_the_transcoders_are_refused_first() {
    let scratch = crate::common::Scratch::new("graph-bad-clamp");
    let out = scratch.0.join("g.json");
    let t = fixtures().join("graphs/relu");
    for (flag, node, says) in [
        ("--clamp", "9_1_1=2", "layer 9"),
        ("--ablate", "0_48_1", "feature 48"),
        ("--ablate", "0_1_7", "position 7"),
    ] {
        let mut c = crate::common::cmd();
        c.args(["graph", "The cat sat", "--transcoders"])
            .arg(&t)
            .args([flag, node, "-o"])
            .arg(&out);
        crate::common::fails(&mut c, 2, &[says, "48 features in 3 layers"]);
        assert!(!out.exists(), "{flag} {node}: nothing written");
    }
}

/// The replacement model's fidelity (`transcode`) against circuit-tracer's transcoder objects
/// on TransformerLens hooks: every layer's activations and reconstruction errors on the clean
/// run, and the next-token losses clean, with every MLP replaced and with every MLP zeroed.
#[test]
fn replacement_fits_equal_circuit_tracers_transcoders() {
    use gpt2_inspect::analysis::transcoder::spliced::fit;
    let r = reference();
    let (cfg, m) = model();
    for set in ["relu", "jumprelu-skip", "clt"] {
        let tset = TranscoderSet::load(&set_dir(set), &cfg).unwrap();
        let key = |k: &str| format!("{set}.fit.{k}");
        let ids: Vec<u32> = ints(&r[&key("input_ids")])
            .iter()
            .map(|&i| i as u32)
            .collect();
        let f = fit(&m, &tset, &ids).unwrap();
        let stack = |get: &dyn Fn(usize) -> Tensor| -> Vec<f32> {
            (0..cfg.n_layer).flat_map(|l| flat(&get(l))).collect()
        };
        let acts = stack(&|l| f.layers[l].acts.clone());
        let d = relative(&acts, &flat(&r[&key("acts")]));
        assert!(d < 1e-4, "{set}: activations off by {d}");
        let errors = stack(&|l| f.layers[l].errors.clone());
        let d = relative(&errors, &flat(&r[&key("errors")]));
        assert!(d < 1e-4, "{set}: reconstruction errors off by {d}");
        let want = flat(&r[&key("losses")]);
        let t = ids.len() - 1;
        for (i, (name, got)) in [
            ("clean", &f.clean),
            ("replaced", &f.replaced),
            ("zeroed", &f.zeroed),
        ]
        .into_iter()
        .enumerate()
        {
            let d = crate::common::max_abs_diff(got, &want[i * t..(i + 1) * t]);
            assert!(d < 1e-4, "{set}: {name} losses off by {d}");
        }
        assert!(
            crate::common::max_abs_diff(&f.clean, &f.replaced) > 1e-3,
            "{set}: replacing the MLPs changes the loss"
        );
    }
}

/// `transcode --json` reports circuit-tracer's fit: the same tokens, the mean losses and each
/// token's active count at every layer; a one-token text is refused as misuse.
#[test]
fn transcode_reports_circuit_tracers_fit() {
    let r = reference();
    let (_, meta) = crate::common::fixture_file("graphs/reference.safetensors");
    let prompts: serde_json::Value = serde_json::from_str(&meta["prompts"]).unwrap();
    let dir = set_dir("clt");
    let got = crate::common::json(&[
        "transcode",
        prompts["a"].as_str().unwrap(),
        "--transcoders",
        dir.to_str().unwrap(),
    ]);
    let ids: Vec<i64> = (got["input_ids"].as_array().unwrap().iter())
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids, ints(&r["clt.fit.input_ids"]));
    let losses = flat(&r["clt.fit.losses"]);
    let t = ids.len() - 1;
    for (i, name) in ["clean", "replaced", "zeroed"].into_iter().enumerate() {
        let want = losses[i * t..(i + 1) * t]
            .iter()
            .map(|&v| v as f64)
            .sum::<f64>()
            / t as f64;
        let v = got["loss"][name].as_f64().unwrap();
        assert!((v - want).abs() < 1e-4, "{name}: {v} {want}");
    }
    let acts = flat(&r["clt.fit.acts"]);
    let d_tc = acts.len() / (3 * ids.len());
    for (l, layer) in got["layers"].as_array().unwrap().iter().enumerate() {
        for (p, at) in layer["positions"].as_array().unwrap().iter().enumerate() {
            let row = &acts[(l * ids.len() + p) * d_tc..(l * ids.len() + p + 1) * d_tc];
            let active = row.iter().filter(|&&a| a != 0.0).count() as u64;
            assert_eq!(
                at["active"].as_u64(),
                Some(active),
                "layer {l} position {p}"
            );
        }
    }
    let mut c = crate::common::cmd();
    c.args(["transcode", "The", "--transcoders"]).arg(&dir);
    crate::common::fails(&mut c, 2, &["two tokens or more"]);
}

/// The drawing `graph --json` carries: each kept feature's top logits are its decoder rows
/// summed over the layers it writes to, times W_Uᵀ (computed here from the files), and its
/// activation is the graph's at its position; for a per-layer set (more kept features than
/// one chunk of logits) and a cross-layer set.
#[test]
fn the_drawing_carries_each_features_logits_and_activations() {
    let (model, _) = crate::common::fixture_file_at(&model_dir().join("model.safetensors"));
    let w_u = model["transformer.wte.weight"].clone(); // (V, C)
    for set in ["relu", "clt"] {
        let dir = set_dir(set);
        let text = "When Mary and John went to the store, John gave a drink to";
        let got = crate::common::json(&["graph", text, "--transcoders", dir.to_str().unwrap()]);
        let nodes = got["graph"]["nodes"].as_array().unwrap();
        let feats: Vec<&serde_json::Value> =
            nodes.iter().filter(|n| n["kind"] == "feature").collect();
        // The per-layer set keeps more features than one chunk of logits.
        let least = if set == "relu" { 33 } else { 1 };
        assert!(feats.len() >= least, "{set}: {} kept features", feats.len());
        for n in feats {
            let l = n["row"].as_u64().unwrap() as usize - 1;
            let f = n["feature"].as_u64().unwrap() as usize;
            let (file, name) = match set {
                "clt" => (format!("W_dec_{l}.safetensors"), format!("W_dec_{l}")),
                _ => (format!("layer_{l}.safetensors"), "W_dec".to_string()),
            };
            let (t, _) = crate::common::fixture_file_at(&dir.join(file));
            let row = t[&name].get(f).unwrap(); // (C,) or (L − l, C)
            let dir_vec = match row.rank() {
                1 => row,
                _ => row.sum(0).unwrap(),
            };
            let logits = flat(&w_u.matmul(&dir_vec.unsqueeze(1).unwrap()).unwrap());
            let mut order: Vec<usize> = (0..logits.len()).collect();
            order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
            for (k, top) in n["top_logits"].as_array().unwrap().iter().enumerate() {
                let id = top["id"].as_u64().unwrap() as usize;
                assert_eq!(id, order[k], "{set} {}: top logit {k}", n["node_id"]);
                let v = top["value"].as_f64().unwrap() as f32;
                assert!((v - logits[id]).abs() < 1e-4, "{set}: {v} {}", logits[id]);
            }
            let p = n["position"].as_u64().unwrap() as usize;
            let acts = n["activations"].as_array().unwrap();
            assert_eq!(acts[p].as_f64(), n["activation"].as_f64(), "{set}");
        }
    }
}
