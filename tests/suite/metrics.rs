//! `patch` and `ablate` measured by log-probability, probability, KL divergence and answers
//! of several tokens (teacher-forced), against Hugging Face's modules with torch hooks and
//! torch autograd (scripts/make_metric_fixtures.py, metrics.safetensors): within 1e-4,
//! relative for values above 1.

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use gpt2_inspect::analysis::ablation::{ablate, ablate_each_head, Ablation};
use gpt2_inspect::analysis::edges::{path_patch, Qkv};
use gpt2_inspect::analysis::metric::Quantity;
use gpt2_inspect::analysis::metric::{Kind, Measure};
use gpt2_inspect::analysis::patching::{attribution_patch, patch, Site};
use gpt2_inspect::analysis::progress::Silent;
use gpt2_inspect::model::Gpt2;
use gpt2_inspect::tokenizer::Tokenizer;

use crate::common::{cmd, fails, flat, json, near, token_ids};

/// (name, --metric, --answer, --wrong) as the fixture lists them.
type MetricCase = (String, String, Option<String>, Option<String>);

struct Fixture {
    model: Gpt2,
    tok: Tokenizer,
    tensors: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

fn load() -> Fixture {
    let (model, _, tok) = crate::common::tiny_model();
    let (tensors, meta) = crate::common::fixture_file("metrics.safetensors");
    Fixture {
        model,
        tok,
        tensors,
        meta,
    }
}

impl Fixture {
    fn get(&self, name: &str) -> Vec<f32> {
        flat((self.tensors.get(name)).unwrap_or_else(|| panic!("no {name} in metrics.safetensors")))
    }

    fn cases(&self) -> Vec<MetricCase> {
        serde_json::from_str(&self.meta["metrics"]).unwrap()
    }

    /// A case's metric, as the model takes it.
    fn measure(&self, (_, metric, answer, wrong): &MetricCase) -> Measure {
        let kind = match metric.as_str() {
            "logit" => Kind::Of(Quantity::Logit),
            "logprob" => Kind::Of(Quantity::LogProb),
            "prob" => Kind::Of(Quantity::Prob),
            _ => Kind::Kl,
        };
        let answer = answer
            .as_deref()
            .map_or(vec![], |a| token_ids(&self.tok, a));
        let wrong = wrong
            .as_deref()
            .map(|w| crate::common::one_token(&self.tok, w));
        Measure::new(kind, answer, wrong).unwrap()
    }

    /// `text` followed by the metric's teacher-forced tokens, `(1, T)`.
    fn input(&self, text: &str, m: &Measure) -> Tensor {
        let ids = [token_ids(&self.tok, text), m.forced().to_vec()].concat();
        Tensor::new(ids, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap()
    }
}

#[test]
fn patching_by_every_metric_matches_hf() {
    let f = load();
    let (clean, corrupt) = (&f.meta["clean"], &f.meta["corrupt"]);
    let sender: (usize, usize) = serde_json::from_str(&f.meta["path_sender"]).unwrap();
    let mut worst = 0f32;
    for case in f.cases() {
        let m = f.measure(&case);
        let p = format!("{}.", case.0);
        let (c, x) = (f.input(clean, &m), f.input(corrupt, &m));
        let sites = [(Site::ResidPre, "resid_pre"), (Site::Head, "head")];
        for (site, name) in sites {
            let got = patch(&f.model, &c, &x, &m, site, false, &mut Silent).unwrap();
            worst = worst.max(near(
                &(p.clone() + name),
                &got.values,
                &f.get(&(p.clone() + name)),
            ));
            near(
                &(p.clone() + "clean"),
                &[got.clean],
                &f.get(&(p.clone() + "clean")),
            );
            near(
                &(p.clone() + "corrupt"),
                &[got.corrupt],
                &f.get(&(p.clone() + "corrupt")),
            );
        }
        let est = attribution_patch(&f.model, &c, &x, &m, &sites.map(|s| s.0), false).unwrap();
        for (got, (_, name)) in est.iter().zip(sites) {
            let key = format!("{p}estimate.{name}");
            worst = worst.max(near(&key, &got.values, &f.get(&key)));
        }
        let direct = path_patch(&f.model, &c, &x, &m, sender, None, &mut Silent).unwrap();
        worst = worst.max(near(
            &(p.clone() + "path.logits"),
            &direct.values,
            &f.get(&(p.clone() + "path.logits")),
        ));
        let to_v = path_patch(&f.model, &c, &x, &m, sender, Some(Qkv::V), &mut Silent).unwrap();
        worst = worst.max(near(
            &(p.clone() + "path.v"),
            &to_v.values,
            &f.get(&(p.clone() + "path.v")),
        ));
    }
    eprintln!("patching by every metric: max |ours - HF| = {worst}");
}

#[test]
fn ablation_by_every_metric_matches_hf() {
    let f = load();
    let text = &f.meta["ablate_text"];
    type Case = (Vec<(usize, usize)>, Vec<usize>, String);
    let ablations: Vec<Case> = serde_json::from_str(&f.meta["ablations"]).unwrap();
    let mut worst = 0f32;
    for case in f.cases().iter().filter(|c| c.2.is_some()) {
        let m = f.measure(case);
        let p = format!("{}.ablate", case.0);
        let ids = f.input(text, &m);
        for (k, case) in ablations.iter().enumerate() {
            let (components, mode) = crate::common::ablation(case);
            let (before, after) = ablate(&f.model, &ids, &components, mode, m.positions()).unwrap();
            let metric = m.against(&before).unwrap();
            worst = worst.max(near(
                &format!("{p}.before"),
                &metric.of(&before).unwrap(),
                &f.get(&format!("{p}.before")),
            ));
            worst = worst.max(near(
                &format!("{p}{k}.after"),
                &metric.of(&after).unwrap(),
                &f.get(&format!("{p}{k}.after")),
            ));
        }
        let (before, _) = ablate(&f.model, &ids, &[], Ablation::Zero, m.positions()).unwrap();
        let metric = m.against(&before).unwrap();
        let base = metric.of(&before).unwrap()[0];
        let each =
            ablate_each_head(&f.model, &ids, (Ablation::Zero, m.positions()), &mut Silent).unwrap();
        let sweep: Vec<f32> = metric.of(&each).unwrap().iter().map(|v| v - base).collect();
        worst = worst.max(near(
            &format!("{p}.sweep"),
            &sweep,
            &f.get(&format!("{p}.sweep")),
        ));
    }
    eprintln!("ablation by every metric: max |ours - HF| = {worst}");
}

/// The fixture's case `name` as flags.
fn flags(f: &Fixture, name: &str) -> Vec<String> {
    let (_, metric, answer, wrong) = f.cases().into_iter().find(|c| c.0 == name).unwrap();
    let mut out = vec!["--metric".to_string(), metric];
    for (flag, v) in [("--answer", answer), ("--wrong", wrong)] {
        if let Some(v) = v {
            out.extend([flag.to_string(), v]);
        }
    }
    out
}

/// A JSON grid's numbers, `null` as NaN.
fn numbers(v: &serde_json::Value) -> Vec<f32> {
    match v {
        serde_json::Value::Array(a) => a.iter().flat_map(numbers).collect(),
        serde_json::Value::Null => vec![f32::NAN],
        n => vec![n.as_f64().unwrap() as f32],
    }
}

#[test]
fn the_commands_print_the_metrics_hf_gives() {
    let f = load();
    let (clean, corrupt) = (f.meta["clean"].as_str(), f.meta["corrupt"].as_str());
    for name in ["kl", "logprob2", "prob_diff"] {
        let mut args = vec![
            "patch",
            "--clean",
            clean,
            "--corrupt",
            corrupt,
            "--site",
            "head",
        ];
        let extra = flags(&f, name);
        args.extend(extra.iter().map(String::as_str));
        let v = json(&args);
        near(
            name,
            &numbers(&v["values"]),
            &f.get(&format!("{name}.head")),
        );
        near(
            name,
            &[v["clean_metric"].as_f64().unwrap() as f32],
            &f.get(&format!("{name}.clean")),
        );
        assert_eq!(v["metric"]["name"], extra[1].as_str(), "{name}");
        // The older names only where the metric is the logit difference.
        assert!(v.get("clean_logit_diff").is_none(), "{name}");
    }
    for name in ["kl2", "prob_diff"] {
        let text = f.meta["ablate_text"].as_str();
        let mut args = vec!["ablate", text, "--head", "1.2"];
        let extra = flags(&f, name);
        args.extend(extra.iter().map(String::as_str));
        let v = json(&args);
        near(
            name,
            &[v["metric_after"].as_f64().unwrap() as f32],
            &f.get(&format!("{name}.ablate0.after")),
        );
        args.retain(|a| !["--head", "1.2"].contains(a));
        args.push("--sweep");
        let v = json(&args);
        near(
            name,
            &numbers(&v["values"]),
            &f.get(&format!("{name}.ablate.sweep")),
        );
    }
}

#[test]
fn a_metric_the_flags_cannot_mean_is_refused() {
    let pair = ["--clean", "The cat sat", "--corrupt", "The dog sat"];
    let run = |extra: &[&str], needles: &[&str]| {
        let mut c = cmd();
        c.arg("patch").args(pair).args(extra);
        fails(&mut c, 2, needles);
    };
    run(
        &["--answer", " on the", "--wrong", " in"],
        &["--wrong", "one token"],
    );
    run(
        &["--metric", "kl", "--wrong", " in"],
        &["--metric kl", "--wrong"],
    );
    run(
        &["--metric", "logprob"],
        &["--metric logprob needs --answer"],
    );
    run(
        &["--answer", " on", "--wrong", " in the"],
        &["--wrong", "give one token"],
    );
    // circuit takes patch's metrics: --wrong optional, --metric kl refuses --wrong.
    let mut c = cmd();
    c.args(["circuit"])
        .args(pair)
        .args(["--metric", "kl", "--wrong", " on"]);
    fails(&mut c, 2, &["--metric kl", "drop --wrong"]);
    let mut c = cmd();
    c.args([
        "ablate",
        "The cat sat",
        "--head",
        "0.0",
        "--answer",
        " on the",
        "--wrong",
        " in",
    ]);
    fails(&mut c, 2, &["--wrong", "one token"]);
}
