//! Patching, ablation, attribution and head detection against Hugging Face's modules with
//! torch hooks (scripts/make_fixtures.py, `circuits.*` in the reference), within 1e-4.

use crate::common::{assert_close, flat, max_abs_diff, model_dir, patch_args, Reference, TOL};
use candle_core::{DType, Device, Tensor};
use gpt2_inspect::analysis::ablation::{ablate, ablate_each_head, Ablation, Component};
use gpt2_inspect::analysis::attribution::attribute;
use gpt2_inspect::analysis::heads::head_scores;
use gpt2_inspect::analysis::metric::Measure;
use gpt2_inspect::analysis::patching::{patch, Site};
use gpt2_inspect::analysis::progress::Silent;
use gpt2_inspect::dist::kl;
use gpt2_inspect::load::checkpoint::Checkpoint;
use gpt2_inspect::model::{Config, Gpt2};
use gpt2_inspect::tokenizer::Tokenizer;

struct Setup {
    model: Gpt2,
    tok: Tokenizer,
    reference: Reference,
    meta: std::collections::HashMap<String, String>,
}

fn setup() -> Setup {
    let (cfg, _) = Config::from_file(&model_dir().join("config.json")).unwrap();
    let ckpt = Checkpoint::open(&model_dir().join("model.safetensors")).unwrap();
    let model = Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32).unwrap();
    let tok = Tokenizer::from_file(&model_dir().join("tokenizer.json")).unwrap();
    let bytes = std::fs::read(crate::common::fixtures().join("reference.safetensors")).unwrap();
    let (_, m) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    Setup {
        model,
        tok,
        reference: Reference::load(),
        meta: m.metadata().clone().unwrap(),
    }
}

impl Setup {
    fn ids(&self, text: &str) -> Vec<u32> {
        self.tok
            .encode(text)
            .unwrap()
            .iter()
            .map(|t| t.id)
            .collect()
    }

    fn input(&self, text: &str) -> Tensor {
        Tensor::new(self.ids(text), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap()
    }

    fn one(&self, text: &str) -> u32 {
        let ids = self.ids(text);
        assert_eq!(ids.len(), 1, "{text:?}");
        ids[0]
    }

    fn scalar(&self, name: &str) -> f32 {
        flat(self.reference.get(name))[0]
    }
}

/// Heads as (layer, head), MLP layers, mode.
type AblateCase = (Vec<(usize, usize)>, Vec<usize>, String);

fn grid(rows: &[Vec<f32>]) -> Tensor {
    let (r, c) = (rows.len(), rows[0].len());
    Tensor::from_vec(rows.concat(), (r, c), &Device::Cpu).unwrap()
}

#[test]
fn patching_matches_hf_at_every_site() {
    let s = setup();
    let pairs: Vec<(String, String, String, String)> =
        serde_json::from_str(&s.meta["patch_pairs"]).unwrap();
    let mut worst = 0f32;
    for (k, (clean, corrupt, answer, wrong)) in pairs.iter().enumerate() {
        let metric = Measure::logit_diff(s.one(answer), s.one(wrong));
        for site in [Site::ResidPre, Site::AttnOut, Site::MlpOut, Site::Head] {
            let p = patch(
                &s.model,
                &s.input(clean),
                &s.input(corrupt),
                &metric,
                site,
                false,
                &mut Silent,
            )
            .unwrap();
            let pre = format!("circuits.patch{k}.");
            let d = (p.clean - s.scalar(&(pre.clone() + "clean_logit_diff"))).abs();
            assert!(d <= TOL, "pair {k}: clean logit diff off by {d}");
            let d = (p.corrupt - s.scalar(&(pre.clone() + "corrupt_logit_diff"))).abs();
            assert!(d <= TOL, "pair {k}: corrupt logit diff off by {d}");
            let what = format!("pair {k} {}", site.as_str());
            worst = worst.max(assert_close(
                &what,
                &grid(&p.rows()),
                s.reference.get(&(pre + site.as_str())),
            ));
        }
    }
    eprintln!("patching: max |ours - HF| = {worst}");
}

#[test]
fn ablation_matches_hf_in_both_modes() {
    let s = setup();
    let text = &s.meta["ablate_text"];
    let cases: Vec<AblateCase> = serde_json::from_str(&s.meta["ablate_cases"]).unwrap();
    let ids = s.input(text);
    for (k, case) in cases.iter().enumerate() {
        let (components, mode) = crate::common::ablation(case);
        let (before, after) = ablate(&s.model, &ids, &components, mode, 1).unwrap();
        let (before, after) = (before.flatten_all().unwrap(), after.flatten_all().unwrap());
        assert_close("before", &before, s.reference.get("circuits.ablate.before"));
        assert_close(
            &format!("ablation {k}"),
            &after,
            s.reference.get(&format!("circuits.ablate{k}.after")),
        );
        // KL from HF's logits, as a number the command prints.
        let want = kl(
            &flat(s.reference.get("circuits.ablate.before")),
            &flat(s.reference.get(&format!("circuits.ablate{k}.after"))),
        );
        let got = kl(&flat(&before), &flat(&after));
        assert!((got - want).abs() <= 1e-4, "KL {got} vs {want}");
    }
    // The sweep: every head alone, the change in log-prob of the unablated top token.
    let before = flat(s.reference.get("circuits.ablate.before"));
    let top = gpt2_inspect::dist::top_k(&before, 1)[0];
    let rows: Vec<Vec<f32>> = (ablate_each_head(&s.model, &ids, (Ablation::Zero, 1), &mut Silent)
        .unwrap())
    .squeeze(1)
    .unwrap()
    .to_vec2()
    .unwrap();
    let cfg = s.model.config();
    let sweep: Vec<f32> = rows
        .iter()
        .map(|r| {
            (gpt2_inspect::dist::log_prob(r, top) - gpt2_inspect::dist::log_prob(&before, top))
                as f32
        })
        .collect();
    let want = flat(s.reference.get("circuits.ablate.sweep"));
    assert_eq!(sweep.len(), cfg.n_layer * cfg.n_head);
    let d = max_abs_diff(&sweep, &want);
    assert!(d <= TOL, "sweep off by {d}");
    // The mean-ablation sweep: each row is `ablate` of that head alone by its mean (checked
    // against HF above), computed as one batch.
    let rows = ablate_each_head(&s.model, &ids, (Ablation::Mean, 1), &mut Silent).unwrap();
    for l in 0..cfg.n_layer {
        for h in 0..cfg.n_head {
            let (_, alone) =
                ablate(&s.model, &ids, &[Component::Head(l, h)], Ablation::Mean, 1).unwrap();
            let row = rows.get(l * cfg.n_head + h).unwrap().flatten_all().unwrap();
            let alone = alone.flatten_all().unwrap();
            assert_close(&format!("mean sweep L{l}H{h}"), &row, &alone);
        }
    }
}

#[test]
fn attribution_matches_hf_and_sums_to_the_logit() {
    let s = setup();
    let cases: Vec<(String, String, Option<String>, i64)> =
        serde_json::from_str(&s.meta["attribute_cases"]).unwrap();
    for (k, (text, answer, wrong, pos)) in cases.iter().enumerate() {
        let ids = s.input(text);
        let t = ids.dim(1).unwrap();
        let position = if *pos < 0 { t - 1 } else { *pos as usize };
        let a = attribute(
            &s.model,
            &ids,
            position,
            s.one(answer),
            wrong.as_deref().map(|w| s.one(w)),
        )
        .unwrap();
        let got: Vec<f32> = a.components.iter().map(|c| c.3 as f32).collect();
        let pre = format!("circuits.attribute{k}.");
        let d = max_abs_diff(&got, &flat(s.reference.get(&(pre.clone() + "components"))));
        assert!(d <= TOL, "case {k}: components off by {d}");
        let d = (a.constant as f32 - s.scalar(&(pre.clone() + "constant"))).abs();
        assert!(d <= TOL, "case {k}: constant off by {d}");
        let d = (a.logit as f32 - s.scalar(&(pre + "logit"))).abs();
        assert!(d <= TOL, "case {k}: logit off by {d}");
        let total: f64 = a.components.iter().map(|c| c.3).sum::<f64>() + a.constant;
        assert!(
            (total - a.logit).abs() <= 1e-4,
            "case {k}: {total} vs {}",
            a.logit
        );
    }
}

#[test]
fn head_scores_match_hf() {
    let s = setup();
    let ids = s.ids(&s.meta["heads_text"]);
    let n = ids.len();
    let x = Tensor::new([ids.clone(), ids].concat(), &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let scores = head_scores(&s.model, &x, n).unwrap();
    for (name, got) in [
        ("previous_token", &scores.previous_token),
        ("first_token", &scores.first_token),
        ("induction", &scores.induction),
        ("duplicate_token", &scores.duplicate_token),
    ] {
        assert_close(
            name,
            &grid(got),
            s.reference.get(&format!("circuits.heads.{name}")),
        );
    }
}

/// The commands print what the library computes: their JSON against the same references.
#[test]
fn commands_print_the_references() {
    let s = setup();
    let pairs: Vec<(String, String, String, String)> =
        serde_json::from_str(&s.meta["patch_pairs"]).unwrap();
    let answer = &pairs[1].2;
    for site in ["resid_pre", "head"] {
        let v =
            crate::common::json(&[patch_args(&pairs[1]).as_slice(), &["--site", site]].concat());
        assert_eq!(v["site"], site);
        assert_eq!(v["answer"]["id"], s.one(answer));
        let got = crate::common::floats(&v["values"]);
        let d = max_abs_diff(
            &got,
            &flat(s.reference.get(&format!("circuits.patch1.{site}"))),
        );
        assert!(d <= TOL, "patch {site}: {d}");
        let d = (v["clean_logit_diff"].as_f64().unwrap() as f32
            - s.scalar("circuits.patch1.clean_logit_diff"))
        .abs();
        assert!(d <= TOL);
    }

    let text = &s.meta["ablate_text"];
    let v = crate::common::json(&["ablate", text, "--head", "1.2", "--mode", "mean"]);
    let before = flat(s.reference.get("circuits.ablate.before"));
    let after = flat(s.reference.get("circuits.ablate1.after"));
    let top = gpt2_inspect::dist::top_k(&before, 1)[0];
    assert_eq!(v["answer"]["id"], top);
    let want = gpt2_inspect::dist::log_prob(&after, top);
    assert!((v["logprob_after"].as_f64().unwrap() - want).abs() <= 1e-4);
    assert!((v["kl"].as_f64().unwrap() - kl(&before, &after)).abs() <= 1e-4);
    let v = crate::common::json(&["ablate", text, "--sweep"]);
    let d = max_abs_diff(
        &crate::common::floats(&v["values"]),
        &flat(s.reference.get("circuits.ablate.sweep")),
    );
    assert!(d <= TOL, "sweep: {d}");

    let v = crate::common::json(&["attribute", text, "--answer", " and"]);
    let got: Vec<f32> = v["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["value"].as_f64().unwrap() as f32)
        .collect();
    let d = max_abs_diff(
        &got,
        &flat(s.reference.get("circuits.attribute0.components")),
    );
    assert!(d <= TOL, "attribute: {d}");
    assert_eq!(v["components"][2]["name"], "L0H0");
    let (total, logit) = (v["total"].as_f64().unwrap(), v["logit"].as_f64().unwrap());
    assert!((total - logit).abs() <= 1e-4);

    let v = crate::common::json(&["heads", &s.meta["heads_text"]]);
    let d = max_abs_diff(
        &crate::common::floats(&v["scores"]["induction"]),
        &flat(s.reference.get("circuits.heads.induction")),
    );
    assert!(d <= TOL, "heads: {d}");
    // Random sequences: the same ids for the same seed.
    let a = crate::common::json(&["heads", "--seq-len", "20", "--seed", "3"]);
    let b = crate::common::json(&["heads", "--seq-len", "20", "--seed", "3"]);
    assert_eq!(a["input_ids"], b["input_ids"]);
    assert_eq!(a["input_ids"].as_array().unwrap().len(), 40);
}

#[test]
fn circuit_misuse_is_named() {
    crate::common::fails(
        crate::common::cmd().args([
            "patch",
            "--clean",
            "The cat",
            "--corrupt",
            "A dog sat",
            "--answer",
            " and",
            "--wrong",
            " with",
        ]),
        2,
        &["--clean is 2 tokens", "--corrupt 3"],
    );
    crate::common::fails(
        crate::common::cmd().args([
            "patch",
            "--clean",
            "The cat",
            "--corrupt",
            "A dog",
            "--answer",
            " andy",
            "--wrong",
            " with",
        ]),
        2,
        &["--answer", "2 tokens", "give one token"],
    );
    crate::common::fails(
        crate::common::cmd().args(["ablate", "The cat", "--head", "3.0"]),
        2,
        &["--head 3.0: layer 3 is out of range", "layers 0 to 2"],
    );
    crate::common::fails(
        crate::common::cmd().args(["ablate", "The cat", "--head", "x"]),
        2,
        &["LAYER.HEAD"],
    );
    crate::common::fails(
        crate::common::cmd().args(["ablate", "The cat"]),
        2,
        &["--sweep"],
    );
}

/// `--prepend-bos` puts <|endoftext|> first (TransformerLens's default), never cut.
#[test]
fn prepend_bos_puts_endoftext_first() {
    let v = crate::common::json(&["--prepend-bos", "tokenize", "The cat"]);
    assert_eq!(crate::common::ids_of(&v["input_ids"]), [50256, 464, 3797]);
    let with_flag = crate::common::json(&["--prepend-bos", "next", "The cat"]);
    let in_text = crate::common::json(&["next", "<|endoftext|>The cat"]);
    assert_eq!(with_flag["predictions"], in_text["predictions"]);
    let long = "the cat ".repeat(700);
    let v = crate::common::json(&["--prepend-bos", "next", &long, "--truncate", "left"]);
    let ids = crate::common::ids_of(&v["input_ids"]);
    assert_eq!((ids.len(), ids[0]), (1024, 50256));
    assert_ne!(ids[1], 50256);
}

/// Every `<rect>` tooltip value of an SVG figure, in document order.
fn svg_values(path: &std::path::Path) -> Vec<f32> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).expect("the SVG parses");
    doc.descendants()
        .filter(|n| n.has_tag_name("title") && n.parent().is_some_and(|p| p.has_tag_name("rect")))
        .map(|n| {
            let t = n.text().unwrap();
            t.rsplit(": ").next().unwrap().parse::<f32>().unwrap()
        })
        .collect()
}

/// The pictures hold the references' numbers (to the 4 decimals they show).
#[test]
fn svg_figures_hold_the_references() {
    let s = setup();
    let dir = crate::common::Scratch::new("circuit-svg");
    let pairs: Vec<(String, String, String, String)> =
        serde_json::from_str(&s.meta["patch_pairs"]).unwrap();
    let path = dir.0.join("patch.svg");
    crate::common::cmd()
        .args(patch_args(&pairs[1]))
        .arg("--svg")
        .arg(&path)
        .assert()
        .success();
    let c = s.scalar("circuits.patch1.clean_logit_diff");
    let x = s.scalar("circuits.patch1.corrupt_logit_diff");
    let want: Vec<f32> = flat(s.reference.get("circuits.patch1.resid_pre"))
        .iter()
        .map(|v| (v - x) / (c - x))
        .collect();
    let got = svg_values(&path);
    // (v − x)/(c − x) with v, c and x each within TOL of HF's: off by at most
    // TOL·(2 + |normalized|)/|c − x|, plus the 4-decimal rounding.
    for (g, w) in got.iter().zip(&want) {
        let bound = 5e-5 + TOL * (2.0 + w.abs()) / (c - x).abs();
        assert!(
            (g - w).abs() <= bound,
            "patch SVG vs HF: {g} vs {w} (bound {bound})"
        );
    }
    assert_eq!(got.len(), want.len());

    let path = dir.0.join("heads.svg");
    crate::common::cmd()
        .args(["heads", &s.meta["heads_text"], "--svg"])
        .arg(&path)
        .assert()
        .success();
    let want: Vec<f32> = [
        "previous_token",
        "first_token",
        "induction",
        "duplicate_token",
    ]
    .iter()
    .flat_map(|k| flat(s.reference.get(&format!("circuits.heads.{k}"))))
    .collect();
    let d = max_abs_diff(&svg_values(&path), &want);
    assert!(d <= 5e-5 + 1e-6, "heads SVG vs HF: {d}");

    let path = dir.0.join("sweep.svg");
    crate::common::cmd()
        .args(["ablate", &s.meta["ablate_text"], "--sweep", "--svg"])
        .arg(&path)
        .assert()
        .success();
    let d = max_abs_diff(
        &svg_values(&path),
        &flat(s.reference.get("circuits.ablate.sweep")),
    );
    assert!(d <= 5e-5 + 1e-6, "sweep SVG vs HF: {d}");

    let path = dir.0.join("attribute.svg");
    crate::common::cmd()
        .args([
            "attribute",
            &s.meta["ablate_text"],
            "--answer",
            " and",
            "--svg",
        ])
        .arg(&path)
        .assert()
        .success();
    // Layer rows of (heads, bias, mlp): the components after embed and pos_embed; then the
    // embeddings' panel, embed and pos_embed.
    let all = flat(s.reference.get("circuits.attribute0.components"));
    let want = [&all[2..], &all[..2]].concat();
    let d = max_abs_diff(&svg_values(&path), &want);
    assert!(d <= 5e-5 + 1e-6, "attribute SVG vs HF: {d}");
}

/// `patch`'s `restored` grid is each cell's share of the clean run restored, computed from
/// Hugging Face's runs; the CSV's `restored` column holds the same numbers; with the clean
/// and corrupt runs equal the share is undefined everywhere (null), not 0/0.
#[test]
fn patch_reports_the_share_restored() {
    let s = setup();
    let pairs: Vec<(String, String, String, String)> =
        serde_json::from_str(&s.meta["patch_pairs"]).unwrap();
    let args = [patch_args(&pairs[1]).as_slice(), &["--site", "resid_pre"]].concat();
    let v = crate::common::json(&args);
    let clean = s.scalar("circuits.patch1.clean_logit_diff");
    let corrupt = s.scalar("circuits.patch1.corrupt_logit_diff");
    let span = clean - corrupt;
    let want: Vec<f32> = flat(s.reference.get("circuits.patch1.resid_pre"))
        .iter()
        .map(|&x| (x - corrupt) / span)
        .collect();
    let got = crate::common::floats(&v["restored"]);
    // Each share divides two differences of values within TOL of HF's.
    let d = max_abs_diff(&got, &want) * span.abs();
    assert!(d <= 2.0 * TOL, "restored: {d}");

    let out = crate::common::cmd()
        .args([&args[..], &["--csv"]].concat())
        .output()
        .unwrap();
    let csv = String::from_utf8(out.stdout).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = header.iter().position(|c| *c == "restored").unwrap();
    let column: Vec<f32> = lines
        .map(|l| l.split(',').nth(col).unwrap().parse().unwrap())
        .collect();
    assert_eq!(column, got);

    let (clean_text, answer, wrong) = (&pairs[1].0, &pairs[1].2, &pairs[1].3);
    let same = crate::common::json(&[
        "patch",
        "--clean",
        clean_text,
        "--corrupt",
        clean_text,
        "--answer",
        answer,
        "--wrong",
        wrong,
    ]);
    let restored = same["restored"].as_array().unwrap();
    assert!(restored
        .iter()
        .flat_map(|r| r.as_array().unwrap())
        .all(|x| x.is_null()));
}

/// `ablate --sweep` on a text long enough that its 12 ablated runs take two batched passes
/// (about 4,096 tokens a pass): each head's change equals `ablate --head L.H` run alone,
/// zeroed and mean-ablated.
#[test]
fn a_sweep_in_several_passes_equals_each_head_alone() {
    let text = ["the cat sat on the mat"; 70].join(" "); // 420 tokens: passes of 9 and 3
    for mode in ["zero", "mean"] {
        let sweep = crate::common::json(&["ablate", &text, "--sweep", "--mode", mode]);
        let (layers, heads) = (3, 4);
        for l in 0..layers {
            for h in 0..heads {
                let head = format!("{l}.{h}");
                let one = crate::common::json(&["ablate", &text, "--head", &head, "--mode", mode]);
                let want =
                    one["metric_after"].as_f64().unwrap() - one["metric_before"].as_f64().unwrap();
                let got = sweep["values"][l][h].as_f64().unwrap();
                assert!(
                    (got - want).abs() < 1e-4,
                    "{mode} {head}: sweep {got}, alone {want}"
                );
            }
        }
    }
}
