//! Every patching site, path patching, edge attribution and faithfulness against Hugging
//! Face's modules with torch hooks and torch autograd (scripts/make_edge_fixtures.py,
//! edges.safetensors): within 1e-4, relative for values above 1.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use gpt2_inspect::analysis::edges::{
    edge_attribution, edge_attribution_in_passes, edge_patch, faithfulness, path_patch, Qkv,
    Reader, Writer,
};
use gpt2_inspect::analysis::metric::Measure;
use gpt2_inspect::analysis::patching::{attribution_patch, patch, Site};
use gpt2_inspect::analysis::progress::Silent;
use gpt2_inspect::model::{Config, Gpt2};
use gpt2_inspect::tokenizer::Tokenizer;

use crate::common::{cmd, fails, flat, json, near, patch_args, TOL};

struct Edges {
    model: Gpt2,
    cfg: Config,
    tok: Tokenizer,
    tensors: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

type Pair = (String, String, String, String);

fn load() -> Edges {
    let (model, cfg, tok) = crate::common::tiny_model();
    let (tensors, meta) = crate::common::fixture_file("edges.safetensors");
    Edges {
        model,
        cfg,
        tok,
        tensors,
        meta,
    }
}

impl Edges {
    fn get(&self, name: &str) -> Vec<f32> {
        flat((self.tensors.get(name)).unwrap_or_else(|| panic!("no {name} in edges.safetensors")))
    }

    fn pairs(&self) -> Vec<Pair> {
        serde_json::from_str(&self.meta["patch_pairs"]).unwrap()
    }

    fn ids(&self, text: &str) -> Tensor {
        let ids = crate::common::token_ids(&self.tok, text);
        Tensor::new(ids, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap()
    }

    fn one(&self, text: &str) -> u32 {
        crate::common::one_token(&self.tok, text)
    }

    /// Each pair's clean and corrupt ids and metric.
    fn runs(&self) -> Vec<(Tensor, Tensor, Measure)> {
        (self.pairs().iter())
            .map(|(clean, corrupt, answer, wrong)| {
                let metric = Measure::logit_diff(self.one(answer), self.one(wrong));
                (self.ids(clean), self.ids(corrupt), metric)
            })
            .collect()
    }

    fn names(&self, key: &str) -> Vec<String> {
        serde_json::from_str(&self.meta[key]).unwrap()
    }
}

/// (site, by position, the fixture's name).
const SITES: [(Site, bool, &str); 11] = [
    (Site::ResidMid, false, "resid_mid"),
    (Site::Head, true, "head_by_pos"),
    (Site::Q, false, "q"),
    (Site::K, false, "k"),
    (Site::V, false, "v"),
    (Site::Q, true, "q_by_pos"),
    (Site::K, true, "k_by_pos"),
    (Site::V, true, "v_by_pos"),
    (Site::Pattern, false, "pattern"),
    (Site::Pattern, true, "pattern_by_pos"),
    (Site::PatternDestSrc, false, "pattern_dest_src"),
];

#[test]
fn every_site_matches_hf_hooks() {
    let e = load();
    let mut worst = 0f32;
    for (k, (clean, corrupt, metric)) in e.runs().iter().enumerate() {
        for (site, by_pos, name) in SITES {
            let p = patch(&e.model, clean, corrupt, metric, site, by_pos, &mut Silent).unwrap();
            let want = e.get(&format!("pair{k}.site.{name}"));
            let dims = e.tensors[&format!("pair{k}.site.{name}")].dims().to_vec();
            assert_eq!(p.shape, dims, "pair {k} {name}: shape");
            worst = worst.max(near(&format!("pair {k} {name}"), &p.values, &want));
        }
    }
    eprintln!("sites: max |ours - HF| = {worst}");
}

#[test]
fn every_sites_estimate_matches_torch_from_one_backward_pass() {
    let e = load();
    for (k, (clean, corrupt, metric)) in e.runs().iter().enumerate() {
        for by_pos in [false, true] {
            let sites: Vec<_> = SITES.iter().filter(|s| s.1 == by_pos).collect();
            let kinds: Vec<Site> = sites.iter().map(|s| s.0).collect();
            let all = attribution_patch(&e.model, clean, corrupt, metric, &kinds, by_pos).unwrap();
            for (p, (_, _, name)) in all.iter().zip(&sites) {
                let want = e.get(&format!("pair{k}.estimate.{name}"));
                near(&format!("pair {k} estimate {name}"), &p.values, &want);
            }
        }
    }
}

/// Writer and reader indices of the fixture's [W][R] matrices, from the tool's names.
fn index(e: &Edges) -> (Vec<Writer>, Vec<Reader>) {
    let (w, r) = (
        Writer::all(e.cfg.n_layer, e.cfg.n_head),
        Reader::all(e.cfg.n_layer, e.cfg.n_head),
    );
    let names = |v: Vec<String>| v;
    assert_eq!(
        w.iter().map(|w| w.name()).collect::<Vec<_>>(),
        names(e.names("writers"))
    );
    assert_eq!(
        r.iter().map(|r| r.name()).collect::<Vec<_>>(),
        names(e.names("readers"))
    );
    (w, r)
}

#[test]
fn every_edge_patched_alone_matches_hf_hooks() {
    let e = load();
    let (writers, readers) = index(&e);
    let n = e.cfg.n_layer;
    let mut edges = Vec::new();
    for &w in &writers {
        for &r in &readers {
            if r.reads(w, n) {
                edges.push((w, r));
            }
        }
    }
    let mut worst = 0f32;
    for (k, (clean, corrupt, metric)) in e.runs().iter().enumerate() {
        let got = edge_patch(&e.model, clean, corrupt, metric, &edges, &mut Silent).unwrap();
        let want = e.get(&format!("pair{k}.edges.exact"));
        let mut full = vec![f32::NAN; writers.len() * readers.len()];
        for (&(w, r), v) in edges.iter().zip(&got.values) {
            let wi = writers.iter().position(|&x| x == w).unwrap();
            let ri = readers.iter().position(|&x| x == r).unwrap();
            full[wi * readers.len() + ri] = *v;
        }
        worst = worst.max(near(&format!("pair {k} edges"), &full, &want));
    }
    eprintln!(
        "edge patches: {} edges, max |ours - HF| = {worst}",
        edges.len()
    );
}

#[test]
fn path_patching_is_the_senders_edges_to_every_later_head() {
    let e = load();
    let (writers, readers) = index(&e);
    let (n, nh) = (e.cfg.n_layer, e.cfg.n_head);
    let want_of = |k: usize, w: Writer, r: Reader| -> f32 {
        let wi = writers.iter().position(|&x| x == w).unwrap();
        let ri = readers.iter().position(|&x| x == r).unwrap();
        e.get(&format!("pair{k}.edges.exact"))[wi * readers.len() + ri]
    };
    for (k, (clean, corrupt, metric)) in e.runs().iter().enumerate() {
        for (l, h) in [(0, 1), (1, 3)] {
            for qkv in [Qkv::Q, Qkv::K, Qkv::V] {
                let p = path_patch(
                    &e.model,
                    clean,
                    corrupt,
                    metric,
                    (l, h),
                    Some(qkv),
                    &mut Silent,
                )
                .unwrap();
                assert_eq!(p.shape, [n, nh]);
                let want: Vec<f32> = (0..n)
                    .flat_map(|rl| (0..nh).map(move |rh| (rl, rh)))
                    .map(|(rl, rh)| match rl > l {
                        true => want_of(k, Writer::Head(l, h), Reader::Head(rl, rh, qkv)),
                        false => f32::NAN,
                    })
                    .collect();
                near(&format!("pair {k} path {l}.{h} {qkv:?}"), &p.values, &want);
            }
            let p =
                path_patch(&e.model, clean, corrupt, metric, (l, h), None, &mut Silent).unwrap();
            let want = want_of(k, Writer::Head(l, h), Reader::Logits);
            near(&format!("pair {k} path {l}.{h} logits"), &p.values, &[want]);
        }
    }
}

#[test]
fn edge_scores_match_torch_autograd_at_the_readers_inputs() {
    let e = load();
    let (writers, readers) = index(&e);
    let steps: usize = e.meta["ig_steps"].parse().unwrap();
    for (k, (clean, corrupt, metric)) in e.runs().iter().enumerate() {
        for n in [1, steps] {
            let s = edge_attribution(&e.model, clean, corrupt, metric, n, &mut Silent).unwrap();
            let mut full = vec![f32::NAN; writers.len() * readers.len()];
            for &(w, r, score) in &s.edges {
                full[w * readers.len() + r] = score;
            }
            near(
                &format!("pair {k} eap{n}"),
                &full,
                &e.get(&format!("pair{k}.eap{n}")),
            );
            let corrupt_metric = e.get(&format!("pair{k}.eap{n}.corrupt"));
            near("corrupt metric", &[s.corrupt], &corrupt_metric);
            // The same N rows in passes of 1, 2 and 3 rows (memory bounded whatever N):
            // the sum over passes equals torch's one batch.
            for per_pass in [1, 2, 3] {
                let runs = (clean, corrupt);
                let p =
                    edge_attribution_in_passes(&e.model, runs, metric, (n, per_pass), &mut Silent);
                let p = p.unwrap();
                let mut got = vec![f32::NAN; writers.len() * readers.len()];
                for &(w, r, score) in &p.edges {
                    got[w * readers.len() + r] = score;
                }
                let want = e.get(&format!("pair{k}.eap{n}"));
                near(
                    &format!("pair {k} eap{n} in passes of {per_pass}"),
                    &got,
                    &want,
                );
                near("corrupt metric", &[p.corrupt], &corrupt_metric);
            }
            let sorted = s.edges.windows(2).all(|w| w[0].2.abs() >= w[1].2.abs());
            assert!(sorted, "edges by |score|");
        }
    }
}

#[test]
fn node_scores_are_the_attribution_patching_estimates() {
    // A writer's outgoing edges sum to its node's first-order estimate: the residual
    // stream is the sum of the writers, read by every later reader.
    let e = load();
    let (n, nh) = (e.cfg.n_layer, e.cfg.n_head);
    for (clean, corrupt, metric) in e.runs() {
        let s = edge_attribution(&e.model, &clean, &corrupt, &metric, 1, &mut Silent).unwrap();
        let mut sums = vec![0f32; s.writers.len()];
        for &(w, _, score) in &s.edges {
            sums[w] += score;
        }
        let est = attribution_patch(
            &e.model,
            &clean,
            &corrupt,
            &metric,
            &[Site::Head, Site::MlpOut],
            false,
        )
        .unwrap();
        for l in 0..n {
            for h in 0..nh {
                let want = est[0].values[l * nh + h] - est[0].corrupt;
                let got = sums[1 + l * (nh + 1) + h];
                assert!(
                    (got - want).abs() <= TOL,
                    "L{l}H{h}: edges {got}, node {want}"
                );
            }
            let t = clean.dim(1).unwrap();
            let want: f32 = est[1].values[l * t..(l + 1) * t]
                .iter()
                .map(|v| v - est[1].corrupt)
                .sum();
            let got = sums[1 + l * (nh + 1) + nh];
            assert!(
                (got - want).abs() <= TOL,
                "mlp{l}: edges {got}, node {want}"
            );
        }
    }
}

#[test]
fn faithfulness_matches_hf_hooks_and_spans_corrupt_to_clean() {
    let e = load();
    let ks: Vec<usize> = serde_json::from_str(&e.meta["faithfulness"]).unwrap();
    for (k, (clean, corrupt, metric)) in e.runs().iter().enumerate() {
        let s = edge_attribution(&e.model, clean, corrupt, metric, 1, &mut Silent).unwrap();
        let got = faithfulness(&e.model, (clean, corrupt), metric, (&s, &ks), &mut Silent).unwrap();
        near(
            &format!("pair {k} faithfulness"),
            &got,
            &e.get(&format!("pair{k}.faithfulness")),
        );
        // No edge kept: the corrupt run; every edge kept: the clean run.
        let ends = faithfulness(
            &e.model,
            (clean, corrupt),
            metric,
            (&s, &[0, s.edges.len()]),
            &mut Silent,
        )
        .unwrap();
        near("no edge", &ends[..1], &[s.corrupt]);
        near("every edge", &ends[1..], &[s.clean]);
    }
}

#[test]
fn circuit_json_holds_every_edge_and_node() {
    let e = load();
    let pair = &e.pairs()[0];
    let mut args = patch_args(pair);
    args[0] = "circuit";
    args.extend(["--top", "5", "--faithfulness", "0,10"]);
    let v = json(&args);
    let edges = v["edges"].as_array().unwrap();
    let count: usize = e.names("readers").len(); // at least one edge per reader
    assert!(edges.len() > count);
    assert_eq!(
        v["nodes"].as_array().unwrap().len(),
        e.names("writers").len()
    );
    assert!(v["faithfulness"][0]["recovered"].as_f64().unwrap().abs() < 1e-4);
    assert_eq!(v["method"], "eap");
    let first = &edges[0];
    assert!(first["writer"].is_string() && first["reader"].is_string());
}

#[test]
fn circuit_writes_dot_and_svg() {
    let e = load();
    let dir = crate::common::Scratch::new("circuit-files");
    let (dot, svg) = (dir.0.join("c.dot"), dir.0.join("c.svg"));
    let mut args: Vec<String> = patch_args(&e.pairs()[1])
        .iter()
        .map(|s| s.to_string())
        .collect();
    args[0] = "circuit".into();
    args.extend(["--top", "6", "--faithfulness", "5,50"].map(String::from));
    args.extend(["--dot".into(), dot.display().to_string()]);
    args.extend(["--svg".into(), svg.display().to_string()]);
    cmd().args(&args).assert().success();
    let dot = std::fs::read_to_string(&dot).unwrap();
    assert!(dot.starts_with("// gpt2-inspect circuit") && dot.contains("digraph circuit {"));
    let edge_lines = dot
        .lines()
        .filter(|l| l.contains(" -> ") && !l.contains("row 0"));
    assert_eq!(edge_lines.count(), 6, "{dot}");
    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.contains("<svg") && svg.contains("faithfulness"));
    assert_eq!(svg.matches("<path ").count(), 6);
    // The curve reads on its own: 0 and 1 ticked, both axes titled, edges kept on a log
    // scale (5 and 50 a decade apart); the graph has a legend for colour and width.
    for needed in [
        ">0</text>",
        ">1</text>",
        "edges kept (log scale)",
        "recovered share",
        "edge raises the metric",
        "width and depth of colour: |score|",
        "box: the writer's node score",
    ] {
        assert!(svg.contains(needed), "no {needed:?} in the SVG:\n{svg}");
    }
}

#[test]
fn bad_circuit_and_path_arguments_are_usage_errors() {
    let e = load();
    let pair = &e.pairs()[0];
    let with = |extra: &[&str], first: &str| {
        let mut a = patch_args(pair);
        a[0] = first;
        let mut c = cmd();
        c.args(&a).args(extra);
        c
    };
    fails(&mut with(&["--top", "0"], "circuit"), 2, &["--top 0"]);
    fails(
        &mut with(&["--ig-steps", "0"], "circuit"),
        2,
        &["--ig-steps 0"],
    );
    fails(
        &mut with(&["--ig-steps", "100000"], "circuit"),
        2,
        &["--ig-steps 100000", "at most 1000"],
    );
    fails(
        &mut with(&["--faithfulness", "100000"], "circuit"),
        2,
        &["--faithfulness 100000", "edges"],
    );
    let last = format!("{}.0", e.cfg.n_layer - 1);
    fails(
        &mut with(&["--path", &last], "patch"),
        2,
        &["last layer", "--to logits"],
    );
    fails(&mut with(&["--path", "1.x"], "patch"), 2, &["--path 1.x"]);
    fails(&mut with(&["--path", "9.0"], "patch"), 2, &["--path 9"]);
    fails(
        &mut with(&["--path", "0.0", "--to", "z"], "patch"),
        2,
        &["--to"],
    );
    let mut c = cmd();
    c.args([
        "circuit",
        "--clean",
        "The cat sat",
        "--corrupt",
        "A dog",
        "--answer",
        " and",
        "--wrong",
        " with",
    ]);
    fails(&mut c, 2, &["--clean is 3 tokens", "--corrupt 2"]);
}

#[test]
fn patch_json_and_svg_nest_every_grid_along_its_axes() {
    let e = load();
    let pair = &e.pairs()[0];
    let (nl, nh) = (e.cfg.n_layer, e.cfg.n_head);
    let t = e.ids(&pair.0).dim(1).unwrap();
    let mut args = patch_args(pair);
    args.extend(["--site", "pattern-dest-src"]);
    let v = json(&args);
    assert_eq!(
        v["axes"],
        serde_json::json!(["layer", "head", "dest", "src"])
    );
    assert_eq!(v["shape"], serde_json::json!([nl, nh, t, t]));
    // [L][H][T][T], the entries above the diagonal null.
    assert!(v["values"][0][0][0][1].is_null());
    assert!(v["values"][nl - 1][nh - 1][t - 1][0].is_number());
    let want = e.get("pair0.site.pattern_dest_src");
    let got: Vec<f32> = crate::common::floats(&v["values"]);
    let got: Vec<f32> = got
        .iter()
        .map(|&x| if x == f32::NEG_INFINITY { f32::NAN } else { x })
        .collect();
    near("pattern-dest-src JSON", &got, &want);
    let dir = crate::common::Scratch::new("patch-nd-svg");
    let svg = dir.0.join("p.svg");
    let mut args = patch_args(pair);
    args.extend([
        "--site",
        "k",
        "--by-position",
        "--svg",
        svg.to_str().unwrap(),
    ]);
    cmd().args(&args).assert().success();
    let svg = std::fs::read_to_string(&svg).unwrap();
    // One panel per layer, each T × H cells (a cell has its value as a tooltip; the colour
    // bars' steps have none).
    assert_eq!(svg.matches("\"><title>").count(), nl * t * nh, "cells");
    assert!(svg.contains("k · layer 0") && svg.contains(&format!("k · layer {}", nl - 1)));
}

/// A node's row in residual-stream order: embed, then each layer's heads above its MLP,
/// the logits last.
fn residual_order(node: &str, n_layer: usize) -> usize {
    let num = |s: &str| s.parse::<usize>().unwrap();
    match node {
        "embed" => 0,
        "logits" => 2 * n_layer + 1,
        n if n.starts_with("mlp") => 2 * num(&n[3..]) + 2,
        n => 2 * num(&n[1..n.find('H').unwrap()]) + 1,
    }
}

/// Graphviz itself lays `--dot` out with the layers in residual-stream order (every row
/// strictly below the one before), and colours each writer as `--svg` does. Needs `dot`
/// (Debian's graphviz); skips without it unless GPT2_INSPECT_REQUIRE_GRAPHVIZ=1.
#[test]
fn circuit_dot_keeps_the_layers_in_order_under_graphviz() {
    let have = std::process::Command::new("dot").arg("-V").output().is_ok();
    if !have {
        let required = std::env::var("GPT2_INSPECT_REQUIRE_GRAPHVIZ").as_deref() == Ok("1");
        assert!(
            !required,
            "GPT2_INSPECT_REQUIRE_GRAPHVIZ=1 but no `dot` on PATH"
        );
        eprintln!("skipped: no Graphviz `dot` on PATH");
        return;
    }
    let e = load();
    let dir = crate::common::Scratch::new("circuit-dot-order");
    for top in ["4", "8", "12", "60"] {
        dot_layout_in_order(&e, &dir.0.join(format!("c{top}.dot")), top);
    }
}

/// `circuit --top top --dot file` laid out by Graphviz: every row below the one before,
/// each writer coloured, a legend.
fn dot_layout_in_order(e: &Edges, file: &std::path::Path, top: &str) {
    let mut args: Vec<String> = (patch_args(&e.pairs()[1]).iter())
        .map(|s| s.to_string())
        .collect();
    args[0] = "circuit".into();
    args.extend(["--top", top, "--dot"].map(String::from));
    args.push(file.display().to_string());
    cmd().args(&args).assert().success();
    let text = std::fs::read_to_string(file).unwrap();
    let plain = std::process::Command::new("dot")
        .args(["-Tplain", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        plain.status.success(),
        "{}",
        String::from_utf8_lossy(&plain.stderr)
    );
    let mut rows: std::collections::BTreeMap<usize, Vec<(String, f64)>> = Default::default();
    for line in String::from_utf8(plain.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f[0] == "node" && !f[1].starts_with('"') {
            let y: f64 = f[3].parse().unwrap();
            let row = residual_order(f[1], e.cfg.n_layer);
            rows.entry(row).or_default().push((f[1].into(), y));
        }
    }
    assert!(rows.len() >= 3, "--top {top}: {rows:?}");
    let rows: Vec<_> = rows.into_values().collect();
    for pair in rows.windows(2) {
        let lowest = pair[0].iter().map(|n| n.1).fold(f64::INFINITY, f64::min);
        let highest = pair[1]
            .iter()
            .map(|n| n.1)
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(
            highest < lowest,
            "--top {top}: {:?} is not below {:?}",
            pair[1],
            pair[0]
        );
    }
    for writer in rows.iter().flatten().filter(|n| n.0 != "logits") {
        let coloured = format!("\"{}\" [fillcolor=\"#", writer.0);
        assert!(
            text.contains(&coloured),
            "{} has no colour:\n{text}",
            writer.0
        );
    }
    assert!(
        text.contains("label=\"edge colour and width"),
        "no legend:\n{text}"
    );
}

/// clean and corrupt the same text: circuit's shares and recovered fractions are 0/0, and
/// it says so (`null`, `undefined`) as patch does, rather than printing float noise over
/// float noise.
#[test]
fn circuit_and_patch_call_a_share_of_nothing_undefined() {
    let e = load();
    let pairs = e.pairs();
    let mut args = patch_args(&pairs[0]);
    let clean = args[2];
    args[4] = clean;
    args[0] = "circuit";
    args.extend(["--faithfulness", "1,5"]);
    let v = json(&args);
    assert_eq!(v["shares_defined"], false, "{v}");
    assert!(v["edges"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["share"].is_null()));
    assert!(v["faithfulness"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["recovered"].is_null()));
    let out = cmd().args(&args).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("every share is 0/0, undefined"), "{text}");
    let first = text
        .lines()
        .find(|l| l.trim_start().starts_with("1 "))
        .unwrap();
    assert!(first.ends_with("undefined"), "{text}");
    args[0] = "patch";
    args.truncate(args.len() - 2);
    let v = json(&args);
    assert_eq!(v["shares_defined"], false, "{v}");
}

/// `circuit --metric` takes patch's metrics, `--wrong` optional: each edge's exact change
/// equals path patching's for the same metric (the sender's edge to the logits), and KL's
/// clean run measures 0.
#[test]
fn circuit_takes_patch_metrics() {
    let e = load();
    let pairs = e.pairs();
    let base = &patch_args(&pairs[1])[..7]; // patch --clean … --corrupt … --answer …
    let edges = edge_count_of(&e).to_string();
    for metric in ["logprob", "prob", "logit"] {
        let mut args = base.to_vec();
        args[0] = "circuit";
        args.extend(["--metric", metric, "--exact", &edges]);
        let v = json(&args);
        assert_eq!(v["metric"]["name"], metric, "{v}");
        assert!(v["wrong"].is_null() && v["clean_logit_diff"].is_null());
        let edge = (v["edges"].as_array().unwrap().iter())
            .find(|x| x["writer"] == "L1H2" && x["reader"] == "logits")
            .unwrap();
        let mut path = base.to_vec();
        path.extend(["--metric", metric, "--path", "1.2", "--to", "logits"]);
        let p = json(&path);
        let want = p["values"].as_f64().unwrap() - p["corrupt_metric"].as_f64().unwrap();
        let got = edge["exact"].as_f64().unwrap();
        assert!((got - want).abs() < 1e-4, "{metric}: {got} vs {want}");
        assert!(
            (v["clean_metric"].as_f64().unwrap() - p["clean_metric"].as_f64().unwrap()).abs()
                < 1e-4
        );
    }
    let mut kl = base[..5].to_vec();
    kl[0] = "circuit";
    kl.extend(["--metric", "kl"]);
    let v = json(&kl);
    assert!(v["clean_metric"].as_f64().unwrap().abs() < 1e-6, "{v}");
    assert!(v["corrupt_metric"].as_f64().unwrap() > 0.0, "{v}");
}

/// How many edges the fixture's model has.
fn edge_count_of(e: &Edges) -> usize {
    let (n, nh) = (e.cfg.n_layer, e.cfg.n_head);
    let writers = Writer::all(n, nh);
    (Reader::all(n, nh).iter())
        .map(|r| writers.iter().filter(|&&w| r.reads(w, n)).count())
        .sum()
}
