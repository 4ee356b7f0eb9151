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
const CASES: [(&str, &str); 4] = [
    ("relu-a", "relu"),
    ("relu-b-budget", "relu"),
    ("skip-a", "jumprelu-skip"),
    ("skip-b-budget", "jumprelu-skip"),
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

/// The graph of case `name` with the settings circuit-tracer ran it with.
fn graph_of(r: &HashMap<String, Tensor>, name: &str, set: &str) -> Graph {
    let (cfg, m) = model();
    let tset = TranscoderSet::load(&fixtures().join("graphs").join(set), &cfg).unwrap();
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
        let g = graph_of(&r, name, set);
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
        let (replacement, completeness) = prune::scores(&g).unwrap();
        assert!(
            (replacement as f32 - want[0]).abs() < 1e-4,
            "{name}: {replacement} {want:?}"
        );
        assert!(
            (completeness as f32 - want[1]).abs() < 1e-4,
            "{name}: {completeness}"
        );
        for (t, (node, edge)) in [("default", (0.8, 0.98)), ("tight", (0.6, 0.9))] {
            let p = prune::prune(&g, node, edge).unwrap();
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
