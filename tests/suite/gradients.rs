//! The backward pass and input attribution against torch autograd on Hugging Face's
//! modules and against Captum (scripts/make_gradient_fixtures.py, gradients.safetensors):
//! within 1e-4, relative for values above 1.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use gpt2_inspect::analysis::grad::gradients;
use gpt2_inspect::analysis::metric::{top_answer, Bound, Kind, Measure, Quantity};
use gpt2_inspect::analysis::progress::Silent;
use gpt2_inspect::analysis::saliency::{saliency, Baseline, Method};
use gpt2_inspect::load::checkpoint::{Checkpoint, Weights};
use gpt2_inspect::model::{Config, Gpt2, Hook};
use gpt2_inspect::tokenizer::Tokenizer;

use crate::common::{cmd, fails, flat, json, model_dir, TOL};

struct Grads {
    model: Gpt2,
    cfg: Config,
    tok: Tokenizer,
    tensors: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

/// (text, answer, wrong, position, quantity) as the script wrote them.
type Case = (String, Option<String>, Option<String>, i64, String);

fn load() -> Grads {
    load_as(Weights::Mapped)
}

/// The fixture model with its weights computed from the mapped file, or copied (then the
/// products take another kernel, frozen::FrozenMatMul).
fn load_as(weights: Weights) -> Grads {
    let (cfg, _) = Config::from_file(&model_dir().join("config.json")).unwrap();
    let ckpt = Checkpoint::open_as(&model_dir().join("model.safetensors"), weights).unwrap();
    let model = Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32).unwrap();
    let tok = Tokenizer::from_file(&model_dir().join("tokenizer.json")).unwrap();
    let (tensors, meta) = crate::common::fixture_file("gradients.safetensors");
    Grads {
        model,
        cfg,
        tok,
        tensors,
        meta,
    }
}

impl Grads {
    fn get(&self, name: &str) -> &Tensor {
        (self.tensors.get(name)).unwrap_or_else(|| panic!("no {name} in gradients.safetensors"))
    }

    fn ids(&self, name: &str) -> Vec<u32> {
        let t = self.get(name).to_dtype(DType::I64).unwrap();
        t.flatten_all()
            .unwrap()
            .to_vec1::<i64>()
            .unwrap()
            .into_iter()
            .map(|i| i as u32)
            .collect()
    }

    fn cases(&self) -> Vec<Case> {
        serde_json::from_str(&self.meta["cases"]).unwrap()
    }

    fn one(&self, text: &str) -> u32 {
        crate::common::one_token(&self.tok, text)
    }

    /// Case k's answer: as the case gives it, or the model's top prediction after `ids`.
    fn answer(&self, case: &Case, ids: &[u32]) -> u32 {
        match case.1.as_deref() {
            Some(a) => self.one(a),
            None => top_answer(&self.model, ids).unwrap(),
        }
    }

    /// Case k's metric after `ids`.
    fn metric(&self, case: &Case, ids: &[u32]) -> Bound {
        let quantity = match case.4.as_str() {
            "logit" => Quantity::Logit,
            "logprob" => Quantity::LogProb,
            _ => Quantity::Prob,
        };
        let wrong = case.2.as_deref().map(|w| self.one(w));
        let answer = vec![self.answer(case, ids)];
        (Measure::new(Kind::Of(quantity), answer, wrong).unwrap())
            .bound()
            .unwrap()
    }
}

/// Asserts |got − want| ≤ 1e-4 · max(1, |want|) everywhere; returns the largest error so
/// measured.
fn assert_near(what: &str, got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = 0f32;
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs() / w.abs().max(1.0);
        assert!(err <= TOL, "{what}[{i}]: ours {g}, reference {w}");
        worst = worst.max(err);
    }
    worst
}

fn row(ids: &[u32]) -> Tensor {
    Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

#[test]
fn gradients_at_the_embeddings_and_every_hook_match_torch_autograd() {
    for weights in [Weights::Mapped, Weights::Copied] {
        hook_gradients_match(&load_as(weights));
    }
}

fn hook_gradients_match(g: &Grads) {
    let mut checked = 0;
    for (k, case) in g.cases().iter().enumerate() {
        let p = format!("case{k}.");
        let ids = g.ids(&format!("{p}input_ids"));
        let hooks: Vec<Hook> = Hook::all(&g.cfg)
            .into_iter()
            .filter(|h| g.tensors.contains_key(&format!("{p}grad.{h}")) && *h != Hook::Embed)
            .collect();
        assert!(
            hooks.len() >= 13 * g.cfg.n_layer,
            "case {k}: {} hooks",
            hooks.len()
        );
        let embeds = g
            .model
            .wte()
            .embedding(&Tensor::new(ids.as_slice(), &Device::Cpu).unwrap())
            .unwrap();
        let embeds = embeds.unsqueeze(0).unwrap();
        assert_eq!(
            g.answer(case, &ids),
            g.ids(&format!("{p}answer"))[0],
            "case {k}: answer"
        );
        let metric = g.metric(case, &ids);
        let out = gradients(&g.model, &row(&ids), Some(&embeds), &metric, &hooks).unwrap();
        assert_near(
            &format!("{p}metric"),
            &out.values_of_metric,
            &flat(g.get(&format!("{p}metric"))),
        );
        let ours = out.embeds.unwrap();
        assert_near(
            &format!("{p}hook_embed"),
            &flat(&ours),
            &flat(g.get(&format!("{p}grad.hook_embed"))),
        );
        for h in &hooks {
            let want = g.get(&format!("{p}grad.{h}"));
            let got = out.grads.get(*h).unwrap().squeeze(0).unwrap();
            assert_eq!(got.dims(), want.dims(), "{h}");
            assert_near(&format!("{p}grad.{h}"), &flat(&got), &flat(want));
            checked += 1;
        }
    }
    assert!(checked >= 4 * 13 * 3, "{checked} gradients checked");
}

#[test]
fn gradient_input_x_gradient_and_rollout_match_captum_and_numpy() {
    let g = load();
    for (k, case) in g.cases().iter().enumerate() {
        let p = format!("case{k}.");
        let ids = g.ids(&format!("{p}input_ids"));
        for (method, name) in [
            (Method::Gradient, "gradient"),
            (Method::InputXGradient, "input_x_gradient"),
            (Method::Rollout, "rollout"),
        ] {
            let s = saliency(&g.model, &ids, &g.metric(case, &ids), method, &mut Silent).unwrap();
            assert_near(
                &format!("{p}{name}"),
                &s.scores,
                &flat(g.get(&format!("{p}{name}"))),
            );
            assert_near(
                &format!("{p}{name} metric"),
                &[s.value],
                &flat(g.get(&format!("{p}metric"))),
            );
        }
    }
}

#[test]
fn integrated_gradients_match_captums_with_their_delta() {
    let g = load();
    let cases = g.cases();
    let ig: Vec<(usize, usize, String)> = serde_json::from_str(&g.meta["ig_cases"]).unwrap();
    for (k, (case, steps, baseline)) in ig.iter().enumerate() {
        let p = format!("ig{k}.");
        let ids = g.ids(&format!("case{case}.input_ids"));
        let baseline = match baseline.as_str() {
            "zero" => Baseline::Zero,
            _ => Baseline::Token(g.tok.endoftext().unwrap()),
        };
        let method = Method::IntegratedGradients {
            steps: *steps,
            baseline,
        };
        let s = saliency(
            &g.model,
            &ids,
            &g.metric(&cases[*case], &ids),
            method,
            &mut Silent,
        )
        .unwrap();
        assert_near(
            &format!("{p}scores"),
            &s.scores,
            &flat(g.get(&format!("{p}scores"))),
        );
        let c = s.completeness.unwrap();
        assert_near(
            &format!("{p}delta"),
            &[c.delta],
            &flat(g.get(&format!("{p}delta"))),
        );
        let base = flat(g.get(&format!("{p}baseline_metric")));
        assert_near(&format!("{p}baseline_metric"), &[c.baseline_metric], &base);
    }
}

/// The matrix's rows against the reference's, NaN where the reference has none.
fn assert_matrix(what: &str, v: &serde_json::Value, want: &Tensor) {
    let want: Vec<Vec<f32>> = want.to_vec2().unwrap();
    let got = v["matrix"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "{what}: rows");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        let g = g.as_array().unwrap();
        let known: Vec<f32> = w.iter().copied().filter(|v| !v.is_nan()).collect();
        let ours: Vec<f32> = g
            .iter()
            .filter_map(|v| v.as_f64())
            .map(|v| v as f32)
            .collect();
        assert_near(&format!("{what} row {i}"), &ours, &known);
        assert!(
            g[known.len()..].iter().all(|v| v.is_null()),
            "{what} row {i}: {g:?}"
        );
    }
}

#[test]
fn generate_and_continuation_matrices_match_torch() {
    let g = load();
    let (prompt, n): (String, usize) = serde_json::from_str(&g.meta["generate"]).unwrap();
    let v = json(&["saliency", &prompt, "--generate", &n.to_string()]);
    assert_eq!(
        v["input_ids"].as_array().unwrap().len(),
        g.ids("generate.input_ids").len()
    );
    let ids: Vec<u32> = (v["input_ids"].as_array().unwrap().iter())
        .map(|i| i.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(ids, g.ids("generate.input_ids"), "HF's greedy continuation");
    assert_matrix("generate", &v, g.get("generate.matrix"));
    let (prompt, cont): (String, String) = serde_json::from_str(&g.meta["continuation"]).unwrap();
    let v = json(&["saliency", &prompt, "--continuation", &cont]);
    assert_matrix("continuation", &v, g.get("continuation.matrix"));
    assert_eq!(v["prompt_tokens"], 2);
}

#[test]
fn the_command_prints_captums_numbers() {
    let g = load();
    let cases = g.cases();
    let (text, answer, wrong, position, _) = &cases[1];
    let mut args = vec![
        "saliency",
        text.as_str(),
        "--method",
        "integrated-gradients",
    ];
    args.extend([
        "--answer",
        answer.as_deref().unwrap(),
        "--wrong",
        wrong.as_deref().unwrap(),
    ]);
    let pos = position
        .rem_euclid(g.ids("case1.input_ids").len() as i64)
        .to_string();
    args.extend(["--position", &pos]);
    let v = json(&args);
    let scores: Vec<f32> = (v["scores"].as_array().unwrap().iter())
        .map(|s| s.as_f64().unwrap() as f32)
        .collect();
    assert_near("ig1 by the command", &scores, &flat(g.get("ig1.scores")));
    assert_eq!(v["method"], "integrated-gradients");
    assert_eq!(v["steps"], 50);
    assert_eq!(v["answer"]["token"], " Mary");
    assert!(v["delta"].is_number());
    // The default answer is the top prediction, as `next` ranks it.
    let v = json(&["saliency", &cases[0].0]);
    let next = json(&["next", &cases[0].0, "-k", "1"]);
    assert_eq!(v["answer"]["id"], next["predictions"][0]["id"]);
    let scores: Vec<f32> = (v["scores"].as_array().unwrap().iter())
        .map(|s| s.as_f64().unwrap() as f32)
        .collect();
    assert_near(
        "case0 gradient by the command",
        &scores,
        &flat(g.get("case0.gradient")),
    );
}

#[test]
fn bad_saliency_requests_are_usage_errors() {
    let t = "The cat sat";
    let run = |args: &[&str], needles: &[&str]| {
        fails(cmd().arg("saliency").arg(t).args(args), 2, needles);
    };
    run(
        &["--steps", "0", "--method", "integrated-gradients"],
        &["--steps"],
    );
    run(&["--steps", "20"], &["--steps", "integrated-gradients"]);
    run(&["--position", "9"], &["--position 9", "out of range"]);
    run(
        &["--answer", " hello world"],
        &["--answer", "give one token"],
    );
    run(&["--baseline", "mean"], &["--baseline"]);
    run(&["--generate", "2000"], &["--generate", "positions"]);
    run(&["--generate", "2", "--answer", " x"], &["--answer"]);
    run(&["--dtype", "f16"], &["f32 on the CPU"]);
}

#[test]
fn attribution_patching_matches_torchs_first_order_estimate() {
    use gpt2_inspect::analysis::metric::Measure;
    use gpt2_inspect::analysis::patching::{attribution_patch, Site};
    let g = load();
    let pairs: Vec<(String, String, String, String)> =
        serde_json::from_str(&g.meta["patch_pairs"]).unwrap();
    let ids = |t: &str| -> Vec<u32> { g.tok.encode(t).unwrap().iter().map(|t| t.id).collect() };
    for (k, (clean, corrupt, answer, wrong)) in pairs.iter().enumerate() {
        let metric = Measure::logit_diff(g.one(answer), g.one(wrong));
        // All four sites from one pass, in an order other than the enum's.
        let sites = [
            (Site::Head, "head"),
            (Site::ResidPre, "resid_pre"),
            (Site::MlpOut, "mlp_out"),
            (Site::AttnOut, "attn_out"),
        ];
        let all = attribution_patch(
            &g.model,
            &row(&ids(clean)),
            &row(&ids(corrupt)),
            &metric,
            &sites.map(|(s, _)| s),
            false,
        )
        .unwrap();
        assert_eq!(all.len(), sites.len());
        for (p, (_, name)) in all.iter().zip(sites) {
            let want = g.get(&format!("attribution{k}.{name}"));
            assert_eq!(p.shape, [want.dims()[0], want.dims()[1]]);
            assert_near(&format!("attribution{k}.{name}"), &p.values, &flat(want));
            let corrupt_metric = flat(g.get(&format!("attribution{k}.corrupt")));
            assert_near("corrupt metric", &[p.corrupt], &corrupt_metric);
        }
    }
}

#[test]
fn patch_method_both_prints_exact_values_estimates_and_their_correlation() {
    let g = load();
    let hf = crate::common::Reference::load();
    let pairs: Vec<(String, String, String, String)> =
        serde_json::from_str(&g.meta["patch_pairs"]).unwrap();
    let args = crate::common::patch_args(&pairs[1]);
    let v = json(&[&args[..], &["--site", "head", "--method", "both"]].concat());
    let (exact, estimates) = (
        crate::common::floats(&v["values"]),
        crate::common::floats(&v["estimates"]),
    );
    assert_near("exact", &exact, &flat(hf.get("circuits.patch1.head")));
    let want = flat(g.get("attribution1.head"));
    assert_near("estimates", &estimates, &want);
    // Pearson's r of the two references, in f64.
    let r = gpt2_inspect::dist::pearson(&flat(hf.get("circuits.patch1.head")), &want).unwrap();
    assert!(
        (v["correlation"].as_f64().unwrap() - r).abs() < 1e-4,
        "{} vs {r}",
        v["correlation"]
    );
    assert_eq!(v["method"], "both");
    let v = json(&[&args[..], &["--method", "attribution"]].concat());
    assert!(v["values"].is_null() && v.get("correlation").is_none());
    assert_near(
        "resid_pre estimates",
        &crate::common::floats(&v["estimates"]),
        &flat(g.get("attribution1.resid_pre")),
    );
}

#[test]
fn patch_at_several_sites_prints_each_sites_grid() {
    let g = load();
    let hf = crate::common::Reference::load();
    let pairs: Vec<(String, String, String, String)> =
        serde_json::from_str(&g.meta["patch_pairs"]).unwrap();
    let args = crate::common::patch_args(&pairs[1]);
    // Repeated and comma-separated, a site given twice counted once.
    let sites = [
        "--site",
        "mlp_out,head",
        "--site",
        "mlp_out",
        "--method",
        "both",
    ];
    let v = json(&[&args[..], &sites[..]].concat());
    let got: Vec<&str> = (v["sites"].as_array().unwrap().iter())
        .map(|r| r["site"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["mlp_out", "head"]);
    for (r, name) in v["sites"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["mlp_out", "head"])
    {
        let exact = flat(hf.get(&format!("circuits.patch1.{name}")));
        assert_near(name, &crate::common::floats(&r["values"]), &exact);
        let want = flat(g.get(&format!("attribution1.{name}")));
        assert_near(name, &crate::common::floats(&r["estimates"]), &want);
        assert_eq!(r["schema"], 1);
    }
    let out = cmd()
        .args([&args[..], &["--site", "mlp_out,head", "--jsonl"]].concat())
        .output()
        .unwrap();
    assert_eq!(String::from_utf8(out.stdout).unwrap().lines().count(), 2);
    let out = cmd()
        .args([&args[..], &["--site", "mlp_out,head", "--svg", "x.svg"]].concat())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--svg"));
}

#[test]
fn the_report_page_colours_tokens_by_captums_input_x_gradient() {
    let g = load();
    let text = &g.cases()[0].0;
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("r.html");
    let ok = cmd()
        .args(["report", text, "-o"])
        .arg(&page)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let html = std::fs::read_to_string(&page).unwrap();
    let strip = html.split("<section id=\"saliency\">").nth(1).unwrap();
    let strip = strip.split("</section>").next().unwrap();
    // Each cell's title: "position i · score v" (4 decimals).
    let scores: Vec<f32> = (strip.split("· score ").skip(1))
        .map(|s| s.split('"').next().unwrap().parse().unwrap())
        .collect();
    let want = flat(g.get("case0.input_x_gradient"));
    assert_eq!(scores.len(), want.len());
    for (got, want) in scores.iter().zip(&want) {
        assert!(
            (got - want).abs() <= 5e-5 + TOL * want.abs().max(1.0),
            "{got} vs {want}"
        );
    }
}

/// Attention rollout follows the attention alone: it refuses the flags that choose an
/// answer to explain, and its output says it explains none.
#[test]
fn rollout_takes_no_answer_and_claims_none() {
    for extra in [
        &["--answer", " mat"][..],
        &["--wrong", " dog"],
        &["--metric", "prob"],
    ] {
        let mut c = crate::common::cmd();
        c.args(["saliency", "The cat sat on the", "--method", "rollout"])
            .args(extra);
        crate::common::fails(&mut c, 2, &["--method rollout", "explains no answer"]);
    }
    let out = crate::common::cmd()
        .args([
            "saliency",
            "The cat sat on the",
            "--method",
            "rollout",
            "--color",
            "never",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("attention rollout into position 4"),
        "{text}"
    );
    assert!(!first.contains("logit["), "{text}");
}
