//! Sparse autoencoders against SAELens itself (scripts/make_sae_fixtures.py,
//! tests/fixtures/saes): random SAEs of every architecture and input normalization, saved by
//! SAELens's own classes, read back by `SAE.load_from_disk`; `encode`, `decode`, the
//! reconstruction spliced in at the hook, and a feature's decoder direction added there,
//! each within 1e-4, on the activations of our forward pass.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};
use gpt2_inspect::analysis::sae::{Sae, SaeConfig};
use gpt2_inspect::load::checkpoint::Checkpoint;
use gpt2_inspect::model::tap::Edit;
use gpt2_inspect::model::{AllLogits, CaptureSpec, Config, Gpt2, Hook, Inputs, Request};

use crate::common::{fixtures, flat, max_abs_diff, model_dir, TOL};

struct Saes {
    tensors: HashMap<String, Tensor>,
    meta: HashMap<String, String>,
}

fn reference() -> Saes {
    let (tensors, meta) = crate::common::fixture_file("saes/reference.safetensors");
    Saes { tensors, meta }
}

fn model() -> (Config, Gpt2) {
    let (cfg, _) = Config::from_file(&model_dir().join("config.json")).unwrap();
    let ckpt = Checkpoint::open(&model_dir().join("model.safetensors")).unwrap();
    let m = Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32).unwrap();
    (cfg, m)
}

/// All positions' logits of `ids` with the activation at `hook` replaced by `edit(x)`.
fn logits_with(
    m: &Gpt2,
    ids: &Tensor,
    hook: Hook,
    edit: impl FnMut(&Tensor) -> anyhow::Result<Tensor>,
) -> Vec<f32> {
    let req = Request {
        capture: CaptureSpec::default(),
        logits: AllLogits,
    };
    let mut tap = Edit { hook, edit };
    flat(&m.run(Inputs::new(ids), &req, &mut tap).unwrap())
}

fn close(what: &str, got: &Tensor, want: &Tensor) {
    assert_eq!(got.dims(), want.dims(), "{what}");
    let d = max_abs_diff(&flat(got), &flat(want));
    assert!(d < TOL, "{what}: {d}");
}

#[test]
fn every_architecture_matches_saelens() {
    let r = reference();
    let (cfg, m) = model();
    let mut names: Vec<String> = serde_json::from_str(&r.meta["saes"]).unwrap();
    names.push("standard-flat-config".into());
    let (feature, alpha): (usize, f64) = serde_json::from_str(&r.meta["steer"]).unwrap();
    for name in &names {
        let sae = Sae::load(&fixtures().join("saes").join(name)).unwrap();
        let hook = sae.hook(&cfg).unwrap();
        assert_eq!(hook.to_string(), r.meta["hook"]);
        // The flat config is the standard SAE's weights: SAELens's own outputs for it.
        let key = name.strip_suffix("-flat-config").unwrap_or(name);
        for k in 0..2 {
            let ids = r.tensors[&format!("prompt{k}.input_ids")]
                .to_dtype(DType::U32)
                .unwrap();
            let ids = ids.unsqueeze(0).unwrap();
            let mut x = None;
            logits_with(&m, &ids, hook, |a| {
                x = Some(a.squeeze(0)?);
                Ok(a.clone())
            });
            let x = x.unwrap(); // (T, d_in)
            close("the hook", &x, &r.tensors[&format!("prompt{k}.{hook}")]);
            let (acts, norm) = sae.encode(&x).unwrap();
            close(
                &format!("{name} acts"),
                &acts,
                &r.tensors[&format!("{key}.prompt{k}.acts")],
            );
            let recon = sae.decode(&acts, &norm).unwrap();
            close(
                &format!("{name} recon"),
                &recon,
                &r.tensors[&format!("{key}.prompt{k}.recon")],
            );
            let spliced = logits_with(&m, &ids, hook, |_| Ok(recon.unsqueeze(0)?));
            let want = flat(&r.tensors[&format!("{key}.prompt{k}.spliced_logits")]);
            let d = max_abs_diff(&spliced, &want);
            assert!(d < TOL, "{name} spliced: {d}");
            let direction = (sae.direction(feature).unwrap() * alpha).unwrap();
            let steered = logits_with(&m, &ids, hook, |a| Ok(a.broadcast_add(&direction)?));
            let want = flat(&r.tensors[&format!("{key}.prompt{k}.steered_logits")]);
            let d = max_abs_diff(&steered, &want);
            assert!(d < TOL, "{name} steered: {d}");
        }
    }
}

/// Configs that cannot be served are refused, naming the field and value.
#[test]
fn unsupported_and_impossible_configs_are_refused() {
    let base = || -> serde_json::Value {
        let p = fixtures().join("saes/topk/cfg.json");
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "architecture",
            serde_json::json!("matching_pursuit"),
            "\"matching_pursuit\"",
        ),
        ("k", serde_json::json!(65), "k is 65"),
        ("d_sae", serde_json::json!(1u64 << 40), "d_sae is"),
        (
            "normalize_activations",
            serde_json::json!("covariance_whitening"),
            "covariance_whitening",
        ),
        ("reshape_activations", serde_json::json!("hook_z"), "hook_z"),
    ];
    for (field, value, needle) in cases {
        let mut cfg = base();
        cfg[field] = value;
        let e = SaeConfig::from_json(&cfg).unwrap_err().to_string();
        assert!(e.contains(needle), "{field}: {e}");
    }
    let (cfg, _) = model();
    let mut other = base();
    other["metadata"]["hook_name"] = "blocks.9.hook_resid_pre".into();
    let dir = crate::common::Scratch::new("sae-bad-hook");
    std::fs::copy(
        fixtures().join("saes/topk/sae_weights.safetensors"),
        dir.0.join("sae_weights.safetensors"),
    )
    .unwrap();
    std::fs::write(dir.0.join("cfg.json"), other.to_string()).unwrap();
    let e = Sae::load(&dir.0)
        .unwrap()
        .hook(&cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("blocks.9.hook_resid_pre") && e.contains("does not have"),
        "{e}"
    );
}

/// `features --json` against SAELens's activations and HF's logits: each token's top
/// features and L0, the reconstruction's mse and variance explained (SAELens's evals), and
/// the next-token loss and KL with SAELens's reconstruction spliced in.
#[test]
fn features_reports_what_saelens_computes() {
    let r = reference();
    let prompts: Vec<String> = serde_json::from_str(&r.meta["prompts"]).unwrap();
    let names: Vec<String> = serde_json::from_str(&r.meta["saes"]).unwrap();
    for name in &names {
        let dir = fixtures().join("saes").join(name);
        for (k, text) in prompts.iter().enumerate() {
            let got = crate::common::json(&[
                "features",
                text,
                "--sae",
                dir.to_str().unwrap(),
                "--per-token",
                "4",
            ]);
            let acts = r.tensors[&format!("{name}.prompt{k}.acts")]
                .to_vec2::<f32>()
                .unwrap();
            for (t, row) in acts.iter().enumerate() {
                let listed = got["features"][t].as_array().unwrap();
                let active: Vec<usize> = (0..row.len()).filter(|&f| row[f] != 0.0).collect();
                assert_eq!(got["l0"][t], active.len(), "{name} token {t}");
                let mut order = active.clone();
                order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
                assert_eq!(listed.len(), order.len().min(4));
                for (f, want) in listed.iter().zip(&order) {
                    assert_eq!(f["id"], *want, "{name} token {t}");
                    let d = (f["activation"].as_f64().unwrap() as f32 - row[*want]).abs();
                    assert!(d < TOL, "{name} token {t}: {d}");
                }
            }
            // The heatmap's columns: the 12 highest peaks (active features only), each
            // with SAELens's activations at every token.
            let peaks: Vec<f32> = (0..acts[0].len())
                .map(|f| acts.iter().map(|row| row[f]).fold(0f32, f32::max))
                .collect();
            let mut ids: Vec<usize> = (0..peaks.len()).filter(|&f| peaks[f] > 0.0).collect();
            ids.sort_by(|&a, &b| peaks[b].total_cmp(&peaks[a]));
            ids.truncate(12);
            let most = &got["most_active"];
            assert_eq!(most["ids"], serde_json::json!(ids), "{name} prompt {k}");
            for (t, row) in acts.iter().enumerate() {
                let want: Vec<f32> = ids.iter().map(|&f| row[f]).collect();
                let got = crate::common::floats(&most["activations"][t]);
                assert!(
                    max_abs_diff(&got, &want) < TOL,
                    "{name} prompt {k} token {t}"
                );
            }
            let want = expected(&r, name, k);
            for (field, w, tol) in [
                ("mse", want.0, want.0 * 1e-6),
                ("fve", want.1, 1e-4),
                ("ce_clean", want.2, 1e-4),
                ("ce_spliced", want.3, 1e-4),
                ("kl_spliced", want.4, 1e-4),
            ] {
                let g = got[field].as_f64().unwrap();
                assert!(
                    (g - w).abs() < tol.max(1e-4),
                    "{name} prompt {k} {field}: {g} against {w}"
                );
            }
        }
    }
}

/// (mse, fve, ce_clean, ce_spliced, kl) from SAELens's reconstruction and HF's logits, in
/// f64, as SAELens's evals define them.
fn expected(r: &Saes, name: &str, k: usize) -> (f64, f64, f64, f64, f64) {
    let rows = |key: String| -> Vec<Vec<f64>> {
        let t = r.tensors[&key].to_dtype(DType::F64).unwrap();
        t.to_vec2::<f64>().unwrap()
    };
    let x = rows(format!("prompt{k}.{}", r.meta["hook"]));
    let recon = rows(format!("{name}.prompt{k}.recon"));
    let n = x.len() as f64;
    let sq = |v: &[f64]| v.iter().map(|a| a * a).sum::<f64>();
    let mse = x
        .iter()
        .zip(&recon)
        .map(|(a, b)| sq(&a.iter().zip(b).map(|(p, q)| p - q).collect::<Vec<_>>()))
        .sum::<f64>()
        / n;
    let mean: Vec<f64> = (0..x[0].len())
        .map(|d| x.iter().map(|row| row[d]).sum::<f64>() / n)
        .collect();
    let total = x.iter().map(|row| sq(row)).sum::<f64>() / n - sq(&mean);
    let ids: Vec<u32> = r.tensors[&format!("prompt{k}.input_ids")]
        .to_dtype(DType::U32)
        .unwrap()
        .to_vec1()
        .unwrap();
    let clean = rows(format!("prompt{k}.logits"));
    let spliced = rows(format!("{name}.prompt{k}.spliced_logits"));
    let log_softmax = |rows: Vec<Vec<f64>>| -> Vec<Vec<f64>> {
        (rows.into_iter())
            .map(|row| {
                let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let z = m + row.iter().map(|v| (v - m).exp()).sum::<f64>().ln();
                row.iter().map(|v| v - z).collect()
            })
            .collect()
    };
    let (clean, spliced) = (log_softmax(clean), log_softmax(spliced));
    let ce = |l: &[Vec<f64>]| {
        -(0..ids.len() - 1)
            .map(|t| l[t][ids[t + 1] as usize])
            .sum::<f64>()
            / (ids.len() - 1) as f64
    };
    let kl = (clean.iter().zip(&spliced))
        .map(|(c, s)| {
            c.iter()
                .zip(s)
                .map(|(lc, ls)| lc.exp() * (lc - ls))
                .sum::<f64>()
        })
        .sum::<f64>()
        / n;
    (mse, 1.0 - mse / total, ce(&clean), ce(&spliced), kl)
}

/// `next --sae … --steer F=α` / `--clamp F=v` / `--ablate-feature F`: the predictions before
/// are the clean run's, after are HF's logits with SAELens's direction added (or the feature
/// set to v from SAELens's own activation) at every position.
#[test]
fn next_steers_clamps_and_ablates_features() {
    let r = reference();
    let prompts: Vec<String> = serde_json::from_str(&r.meta["prompts"]).unwrap();
    let (sf, alpha): (usize, f64) = serde_json::from_str(&r.meta["steer"]).unwrap();
    let (cf, v): (usize, f64) = serde_json::from_str(&r.meta["clamp"]).unwrap();
    let names: Vec<String> = serde_json::from_str(&r.meta["saes"]).unwrap();
    for name in &names {
        let dir = fixtures().join("saes").join(name);
        for (k, text) in prompts.iter().enumerate() {
            for (flag, value, key) in [
                ("--steer", format!("{sf}={alpha}"), "steered_logits"),
                ("--clamp", format!("{cf}={v}"), "clamped_logits"),
            ] {
                let args = [
                    "next",
                    text,
                    "-k",
                    "5",
                    "--sae",
                    dir.to_str().unwrap(),
                    flag,
                    &value,
                ];
                let got = crate::common::json(&args);
                let all = &r.tensors[&format!("{name}.prompt{k}.{key}")];
                let want = flat(&all.get(all.dim(0).unwrap() - 1).unwrap());
                let clean = &r.tensors[&format!("prompt{k}.logits")];
                let clean = flat(&clean.get(clean.dim(0).unwrap() - 1).unwrap());
                for (field, want) in [
                    (&got["steered"]["predictions"], &want),
                    (&got["predictions"], &clean),
                ] {
                    let preds = field.as_array().unwrap();
                    assert_eq!(preds.len(), 5);
                    let top = gpt2_inspect::dist::top_k(want, 5);
                    for (p, id) in preds.iter().zip(top) {
                        assert_eq!(p["id"], id, "{name} {flag}");
                        let d = (p["logit"].as_f64().unwrap() as f32 - want[id]).abs();
                        assert!(d < TOL, "{name} {flag}: {d}");
                    }
                }
            }
        }
    }
    // --ablate-feature F is --clamp F=0.
    let dir = fixtures().join("saes/topk");
    let dir = dir.to_str().unwrap();
    let a = crate::common::json(&["next", &prompts[0], "--sae", dir, "--ablate-feature", "40"]);
    let b = crate::common::json(&["next", &prompts[0], "--sae", dir, "--clamp", "40=0"]);
    assert_eq!(a["steered"]["predictions"], b["steered"]["predictions"]);
    assert_eq!(
        a["steered"]["changes"],
        serde_json::json!(["feature 40 ablated"])
    );
}

#[test]
fn steering_flags_are_checked() {
    let dir = fixtures().join("saes/topk");
    let dir = dir.to_str().unwrap();
    let next = |extra: &[&str]| {
        let mut c = crate::common::cmd();
        c.args(["next", "The cat"]).args(extra);
        c
    };
    crate::common::fails(
        &mut next(&["--sae", dir, "--steer", "64=1"]),
        2,
        &["feature 64 is out of range", "64 features"],
    );
    crate::common::fails(&mut next(&["--steer", "1=1"]), 2, &["--sae"]);
    crate::common::fails(
        &mut next(&["--sae", dir, "--steer", "1=nan"]),
        2,
        &["must be finite"],
    );
    crate::common::fails(&mut next(&["--sae", dir, "--steer", "x"]), 2, &["F=value"]);
    crate::common::fails(&mut next(&["--sae", dir]), 2, &["--steer F=α"]);
}

/// `feature IDS --sae … TEXT…`: the logit tables are SAELens's W_dec[f] times HF's
/// unembedding, and the corpus statistics are what a brute-force pass over SAELens's
/// activations gives (density, each text's peak, the contexts ordered by it).
#[test]
fn feature_tables_and_corpus_statistics_match_saelens() {
    let r = reference();
    let prompts: Vec<String> = serde_json::from_str(&r.meta["prompts"]).unwrap();
    let features: Vec<usize> = serde_json::from_str(&r.meta["features"]).unwrap();
    let ids = features
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join(",");
    for name in ["standard", "topk", "gated", "jumprelu"] {
        let dir = fixtures().join("saes").join(name);
        let mut args = vec!["feature", &ids, "--sae", dir.to_str().unwrap(), "-k", "5"];
        args.extend(prompts.iter().map(String::as_str));
        let got = crate::common::json(&args);
        for (row, &f) in got["features"].as_array().unwrap().iter().zip(&features) {
            assert_eq!(row["id"], f);
            let want = flat(&r.tensors[&format!("{name}.feature{f}.logits")]);
            let negated: Vec<f32> = want.iter().map(|v| -v).collect();
            for (field, order) in [
                ("top_logits", gpt2_inspect::dist::top_k(&want, 5)),
                ("bottom_logits", gpt2_inspect::dist::top_k(&negated, 5)),
            ] {
                for (t, id) in row[field].as_array().unwrap().iter().zip(order) {
                    assert_eq!(t["id"], id, "{name} {f} {field}");
                    let d = (t["value"].as_f64().unwrap() as f32 - want[id]).abs();
                    assert!(d < TOL, "{name} {f} {field}: {d}");
                }
            }
            // Brute force over SAELens's activations of the two texts.
            let columns: Vec<Vec<f32>> = (0..prompts.len())
                .map(|k| {
                    let acts = r.tensors[&format!("{name}.prompt{k}.acts")]
                        .to_vec2::<f32>()
                        .unwrap();
                    acts.iter().map(|row| row[f]).collect()
                })
                .collect();
            let tokens: usize = columns.iter().map(Vec::len).sum();
            let active = columns.iter().flatten().filter(|&&a| a != 0.0).count();
            let corpus = &row["corpus"];
            assert_eq!(corpus["tokens"], tokens);
            let density = corpus["density"].as_f64().unwrap();
            assert!(
                (density - active as f64 / tokens as f64).abs() < 1e-12,
                "{name} {f}"
            );
            let (bins, width) = histogram(columns.iter().flatten().copied());
            assert_eq!(corpus["histogram"], serde_json::json!(bins), "{name} {f}");
            assert_eq!(corpus["bin_width"].as_f64().unwrap() as f32, width);
            let mut peaks: Vec<(f32, usize)> = (columns.iter().enumerate())
                .map(|(k, c)| (c.iter().cloned().fold(f32::NEG_INFINITY, f32::max), k))
                .filter(|(p, _)| *p > 0.0)
                .collect();
            peaks.sort_by(|a, b| b.0.total_cmp(&a.0));
            let contexts = corpus["contexts"].as_array().unwrap();
            assert_eq!(contexts.len(), peaks.len(), "{name} {f}");
            for (c, (peak, k)) in contexts.iter().zip(peaks) {
                assert_eq!(c["text"], k);
                assert!((c["peak"].as_f64().unwrap() as f32 - peak).abs() < TOL);
                let at = c["peak_position"].as_u64().unwrap() as usize;
                assert!(
                    (columns[k][at] - peak).abs() < TOL,
                    "{name} {f}: the peak's position"
                );
            }
        }
    }
}

/// Broken SAEs: one line each, exit 1, nothing computed.
#[test]
fn broken_saes_are_one_clear_error() {
    let s = crate::common::Scratch::new("sae-broken");
    let good = fixtures().join("saes/standard");
    let make = |name: &str, cfg: &[u8], weights: Vec<u8>| {
        let d = s.0.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("cfg.json"), cfg).unwrap();
        std::fs::write(d.join("sae_weights.safetensors"), weights).unwrap();
        d
    };
    let cfg = std::fs::read(good.join("cfg.json")).unwrap();
    let weights = std::fs::read(good.join("sae_weights.safetensors")).unwrap();
    // NaN in b_dec: a safetensors file of the same tensors with one value replaced.
    let mut tensors =
        candle_core::safetensors::load(good.join("sae_weights.safetensors"), &Device::Cpu).unwrap();
    let b = tensors["b_dec"].to_vec1::<f32>().unwrap();
    let nan: Vec<f32> = b
        .iter()
        .enumerate()
        .map(|(i, v)| if i == 3 { f32::NAN } else { *v })
        .collect();
    tensors.insert("b_dec".into(), Tensor::new(nan, &Device::Cpu).unwrap());
    let nan_path = s.0.join("nan.safetensors");
    candle_core::safetensors::save(&tensors, &nan_path).unwrap();
    let mut wide: serde_json::Value = serde_json::from_slice(&cfg).unwrap();
    wide["d_in"] = 64.into();
    let cases = [
        (
            make("not-json", b"{not json", weights.clone()),
            vec!["cfg.json", "not valid JSON"],
        ),
        (
            make("nan", &cfg, std::fs::read(&nan_path).unwrap()),
            vec!["b_dec", "NaN"],
        ),
        (
            make("d-in", wide.to_string().as_bytes(), weights.clone()),
            vec!["W_enc", "d_in 64"],
        ),
        (
            make("truncated", &cfg, weights[..weights.len() / 2].to_vec()),
            vec!["sae_weights.safetensors", "not a valid safetensors file"],
        ),
    ];
    for (dir, needles) in cases {
        let mut c = crate::common::cmd();
        c.args(["features", "The cat", "--sae", dir.to_str().unwrap()]);
        let mut all = vec!["--sae"];
        all.extend(needles);
        crate::common::fails(&mut c, 1, &all);
    }
}

/// `score --sae … --steer F=α`: each token's log-probability under HF's logits with
/// SAELens's direction added at every position.
#[test]
fn score_is_steered() {
    let r = reference();
    let prompts: Vec<String> = serde_json::from_str(&r.meta["prompts"]).unwrap();
    let (f, alpha): (usize, f64) = serde_json::from_str(&r.meta["steer"]).unwrap();
    for name in ["standard", "gated"] {
        let dir = fixtures().join("saes").join(name);
        let steer = format!("{f}={alpha}");
        let got = crate::common::json(&[
            "score",
            &prompts[1],
            "--sae",
            dir.to_str().unwrap(),
            "--steer",
            &steer,
        ]);
        assert_eq!(
            got["steered"],
            serde_json::json!([format!("+{alpha} · W_dec[{f}]")])
        );
        let logits = r.tensors[&format!("{name}.prompt1.steered_logits")]
            .to_vec2::<f32>()
            .unwrap();
        let ids: Vec<u32> = r.tensors["prompt1.input_ids"]
            .to_dtype(DType::U32)
            .unwrap()
            .to_vec1()
            .unwrap();
        for (i, tok) in got["tokens"].as_array().unwrap().iter().enumerate() {
            let want = gpt2_inspect::dist::log_prob(&logits[i], ids[i + 1] as usize);
            let d = (tok["logprob"].as_f64().unwrap() - want).abs();
            assert!(d < TOL as f64, "{name} token {}: {d}", i + 1);
        }
    }
}

/// `generate --sae … --steer F=α`: HF's greedy generation with SAELens's direction added at
/// every position (a torch hook, the key/value cache on), with the cache and without.
#[test]
fn generate_is_steered() {
    let r = reference();
    let prompts: Vec<String> = serde_json::from_str(&r.meta["prompts"]).unwrap();
    let (f, alpha): (usize, f64) = serde_json::from_str(&r.meta["steer"]).unwrap();
    for name in ["standard", "topk"] {
        let want: Vec<u32> = r.tensors[&format!("{name}.steered_generation")]
            .to_dtype(DType::U32)
            .unwrap()
            .to_vec1()
            .unwrap();
        let dir = fixtures().join("saes").join(name);
        let steer = format!("{f}={alpha}");
        for extra in [&[][..], &["--no-cache"]] {
            let mut args = vec![
                "generate",
                &prompts[0],
                "-n",
                "5",
                "--sae",
                dir.to_str().unwrap(),
                "--steer",
                &steer,
            ];
            args.extend(extra);
            let got = crate::common::json(&args);
            assert_eq!(
                got["generated_ids"],
                serde_json::json!(want),
                "{name} {extra:?}"
            );
            assert_eq!(
                got["steered"],
                serde_json::json!([format!("+{alpha} · W_dec[{f}]")])
            );
        }
    }
}

/// `dump --sae`: the file holds SAELens's feature activations under its name
/// (`HOOK.hook_sae_acts_post`), each text's first positions of the padded batch, whether or
/// not the hook itself is written.
#[test]
fn dump_writes_saelens_feature_activations() {
    let r = reference();
    let prompts: Vec<String> = serde_json::from_str(&r.meta["prompts"]).unwrap();
    let hook = &r.meta["hook"];
    let dir = tempfile::tempdir().unwrap();
    for (name, written) in [
        ("standard", "hook_embed"),
        ("topk", hook.as_str()),
        ("gated", "hook_embed"),
        ("jumprelu", hook.as_str()),
    ] {
        let sae = fixtures().join("saes").join(name);
        let path = dir.path().join(format!("{name}.safetensors"));
        let mut args = vec![
            "dump",
            "-o",
            path.to_str().unwrap(),
            "--hook",
            written,
            "--sae",
            sae.to_str().unwrap(),
        ];
        args.extend(prompts.iter().map(String::as_str));
        let v = crate::common::json(&args);
        let acts_name = format!("{hook}.hook_sae_acts_post");
        let names: Vec<&str> = (v["batch"][0]["hooks"].as_array().unwrap().iter())
            .map(|h| h["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, [written, acts_name.as_str()], "{name}");
        let bytes = std::fs::read(&path).unwrap();
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
        assert_eq!(tensors.len(), 2);
        let acts = &tensors[&acts_name]; // (B, T, d_sae)
        assert_eq!(acts.dims()[0], prompts.len());
        for k in 0..prompts.len() {
            let want = &r.tensors[&format!("{name}.prompt{k}.acts")];
            let got = acts
                .get(k)
                .unwrap()
                .narrow(0, 0, want.dim(0).unwrap())
                .unwrap();
            close(&format!("{name} text {k}"), &got, want);
        }
    }
}

/// `feature` says how often each feature fired in training, from the SAE's
/// sparsity.safetensors (written with SAELens's own log10 function), read back here with
/// the safetensors crate; an SAE without the file says nothing (`null`).
#[test]
fn training_density_comes_from_sparsity_safetensors() {
    let dir = fixtures().join("saes").join("standard");
    let bytes = std::fs::read(dir.join("sparsity.safetensors")).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let t = file.tensor("sparsity").unwrap();
    let want: Vec<f32> = (t.data().chunks(4))
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    assert_eq!(want.len(), 64);
    let got = crate::common::json(&["feature", "3,5,40", "--sae", dir.to_str().unwrap()]);
    for (row, f) in got["features"].as_array().unwrap().iter().zip([3, 5, 40]) {
        let d = row["log10_training_density"].as_f64().unwrap() as f32;
        assert_eq!(d, want[f], "feature {f}");
    }
    let out = (crate::common::cmd().args(["feature", "3", "--sae", dir.to_str().unwrap()]))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("fired on 0.0000% of training tokens (sparsity.safetensors: log10 -10.000)"),
        "{text}"
    );
    let topk = fixtures().join("saes").join("topk");
    let got = crate::common::json(&["feature", "3", "--sae", topk.to_str().unwrap()]);
    assert!(got["features"][0]["log10_training_density"].is_null());
}

/// The histogram `feature` promises, by brute force: 32 bins over [0, top) where top is the
/// first power of two (from 1) above every |activation|, non-zero activations only.
fn histogram(acts: impl Iterator<Item = f32> + Clone) -> (Vec<u64>, f32) {
    let largest = acts.clone().fold(0f32, |m, a| m.max(a.abs()));
    let mut top = 1f32;
    while largest >= top {
        top *= 2.0;
    }
    let mut bins = vec![0u64; 32];
    for a in acts.filter(|&a| a != 0.0) {
        bins[(a.abs() / top * 32.0) as usize] += 1;
    }
    (bins, top / 32.0)
}

/// A corpus file run in several padded batches (`--batch-size 3`, texts of two lengths
/// interleaved) gives the statistics of a brute-force pass over SAELens's activations of
/// each text.
#[test]
fn a_corpus_in_batches_gives_the_brute_force_statistics() {
    let r = reference();
    let prompts: Vec<String> = serde_json::from_str(&r.meta["prompts"]).unwrap();
    let dir = crate::common::Scratch::new("sae-corpus");
    let lines: Vec<usize> = (0..11).map(|i| (i * 7 % 3 == 0) as usize).collect();
    let file = dir.0.join("corpus.txt");
    let text: String = lines
        .iter()
        .map(|&k| format!("{}\n\n", prompts[k]))
        .collect();
    std::fs::write(&file, text).unwrap();
    let name = "jumprelu";
    let sae = fixtures().join("saes").join(name);
    let got = crate::common::json(&[
        "feature",
        "5",
        "--sae",
        sae.to_str().unwrap(),
        "--file",
        file.to_str().unwrap(),
        "--lines",
        "--batch-size",
        "3",
        "--contexts",
        "4",
        "--window",
        "2",
    ]);
    let columns: Vec<Vec<f32>> = (0..prompts.len())
        .map(|k| {
            let acts = r.tensors[&format!("{name}.prompt{k}.acts")]
                .to_vec2::<f32>()
                .unwrap();
            acts.iter().map(|row| row[5]).collect()
        })
        .collect();
    let all = lines.iter().flat_map(|&k| columns[k].iter().copied());
    let corpus = &got["features"][0]["corpus"];
    assert_eq!(corpus["texts"], lines.len());
    assert_eq!(corpus["tokens"], all.clone().count());
    let active = all.clone().filter(|&a| a != 0.0).count();
    let density = corpus["density"].as_f64().unwrap();
    assert!((density - active as f64 / all.clone().count() as f64).abs() < 1e-12);
    let (bins, _) = histogram(all);
    assert_eq!(corpus["histogram"], serde_json::json!(bins));
    // The four highest peaks: each text's own, the higher prompt's texts first.
    let peak = |k: usize| columns[k].iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let best = (0..2).max_by(|&a, &b| peak(a).total_cmp(&peak(b))).unwrap();
    let contexts = corpus["contexts"].as_array().unwrap();
    assert_eq!(
        contexts.len(),
        4.min(lines.iter().filter(|&&k| k == best).count())
    );
    for c in contexts {
        let text = c["text"].as_u64().unwrap() as usize;
        assert_eq!(lines[text], best, "text {text}");
        assert!((c["peak"].as_f64().unwrap() as f32 - peak(best)).abs() < TOL);
        let at = c["peak_position"].as_u64().unwrap() as usize;
        let start = c["start"].as_u64().unwrap() as usize;
        assert_eq!(start, at.saturating_sub(2));
        let shown = crate::common::floats(&c["activations"]);
        let end = (at + 3).min(columns[best].len());
        assert!(crate::common::max_abs_diff(&shown, &columns[best][start..end]) < TOL);
    }
}

/// The terminal's heatmap shows the JSON's most active features: the columns' ids, and each
/// token's row of activations (`·` where a feature is silent).
#[test]
fn the_features_heatmap_shows_the_most_active_features() {
    let dir = fixtures().join("saes").join("jumprelu");
    let args = [
        "features",
        "The cat sat on the mat",
        "--sae",
        dir.to_str().unwrap(),
    ];
    let want = crate::common::json(&args);
    let out = crate::common::cmd().args(args).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let at = (lines
        .iter()
        .position(|l| l.contains("features that fire most")))
    .unwrap_or_else(|| panic!("no heatmap: {text}"));
    let ids: Vec<u64> = (lines[at + 1].split_whitespace())
        .map(|c| c.trim_start_matches('#').parse().unwrap())
        .collect();
    assert_eq!(serde_json::json!(ids), want["most_active"]["ids"]);
    let tokens = want["tokens"].as_array().unwrap();
    for (t, line) in lines[at + 2..at + 2 + tokens.len()].iter().enumerate() {
        let cells: Vec<f32> = (line.split_whitespace().rev().take(ids.len()))
            .map(|c| if c == "·" { 0.0 } else { c.parse().unwrap() })
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let json = crate::common::floats(&want["most_active"]["activations"][t]);
        assert!(max_abs_diff(&cells, &json) < 0.006, "token {t}: {line}");
    }
}

/// `--dtype f16` and `bf16`: the SAE computes in f32 and every SAE command runs, within
/// half precision of the f32 run (no reference: half-precision GPT-2 is not held to 1e-4).
#[test]
fn sae_commands_run_in_half_precision() {
    let sae = fixtures().join("saes/topk");
    let sae = sae.to_str().unwrap();
    let run = |dtype: &str, args: &[&str]| {
        let out = crate::common::cmd()
            .args(["--dtype", dtype])
            .args(args)
            .arg("--json")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "--dtype {dtype} {args:?}: {err}");
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let text = "When Mary and John went to the store";
    let near = |what: &str, a: &serde_json::Value, b: &serde_json::Value, tol: f64| {
        let (a, b) = (a.as_f64().unwrap(), b.as_f64().unwrap());
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}: {a} vs {b}");
    };
    let commands: [&[&str]; 5] = [
        &["features", text, "--sae", sae],
        &["feature", "1", "--sae", sae, text],
        &["next", text, "--sae", sae, "--steer", "1=2"],
        &["score", text, "--sae", sae, "--clamp", "1=3"],
        &[
            "generate",
            text,
            "-n",
            "2",
            "--sae",
            sae,
            "--ablate-feature",
            "1",
        ],
    ];
    for args in commands {
        let f32 = run("f32", args);
        for dtype in ["f16", "bf16"] {
            let half = run(dtype, args);
            let what = format!("{dtype} {}", args[0]);
            match args[0] {
                "features" => {
                    for k in ["ce_clean", "ce_spliced", "kl_spliced", "fve"] {
                        near(&format!("{what} {k}"), &half[k], &f32[k], 0.02);
                    }
                }
                "feature" => {
                    let (h, f) = (&half["features"][0], &f32["features"][0]);
                    near(
                        &what,
                        &h["top_logits"][0]["value"],
                        &f["top_logits"][0]["value"],
                        0.02,
                    );
                }
                "next" => {
                    let (h, f) = (
                        &half["steered"]["predictions"],
                        &f32["steered"]["predictions"],
                    );
                    near(&what, &h[0]["logprob"], &f[0]["logprob"], 0.02);
                }
                "score" => near(&what, &half["total_logprob"], &f32["total_logprob"], 0.02),
                _ => assert_eq!(half["steered"], f32["steered"], "{what}"),
            }
        }
    }
}

/// Text piped into `feature` is its corpus, as `features` reads it (and with `--lines`, its
/// lines): the same statistics as the text given as an argument, never silently dropped.
#[test]
fn feature_reads_piped_text_as_its_corpus() {
    let dir = fixtures().join("saes/topk");
    let sae = dir.to_str().unwrap();
    let text = "The cat sat on the mat";
    let given = crate::common::json(&["feature", "40", "--sae", sae, text]);
    let piped = crate::common::cmd()
        .args(["feature", "40", "--sae", sae, "--json"])
        .write_stdin(text)
        .output()
        .unwrap();
    assert!(piped.status.success());
    let piped: serde_json::Value = serde_json::from_slice(&piped.stdout).unwrap();
    assert!(!given["features"][0]["corpus"].is_null());
    assert_eq!(piped["features"], given["features"]);
    let lines = crate::common::cmd()
        .args(["feature", "40", "--sae", sae, "--json", "--lines"])
        .write_stdin(format!("{text}\nA dog barked\n"))
        .output()
        .unwrap();
    assert!(lines.status.success());
    let lines: serde_json::Value = serde_json::from_slice(&lines.stdout).unwrap();
    let two = crate::common::json(&["feature", "40", "--sae", sae, text, "A dog barked"]);
    assert_eq!(
        lines["features"][0]["corpus"]["tokens"],
        two["features"][0]["corpus"]["tokens"]
    );
}

/// Steering that makes the values NaN or infinite is an error naming the steering and its
/// hook (exit 1), in `next` and in `score`, not tables of NaN and exit 0.
#[test]
fn steering_into_non_finite_values_is_an_error() {
    let dir = fixtures().join("saes/topk");
    let sae = dir.to_str().unwrap();
    for args in [
        vec!["next", "The cat", "--sae", sae, "--steer", "40=1e30"],
        vec!["score", "The cat sat", "--sae", sae, "--steer", "40=1e30"],
        vec!["next", "The cat", "--sae", sae, "--clamp", "40=1e30"],
    ] {
        crate::common::fails(
            crate::common::cmd().args(&args),
            1,
            &[
                "made the values non-finite",
                "blocks.1.hook_resid_pre",
                "40",
            ],
        );
    }
}

/// Steered runs say what was steered and where, away from the data: `generate`'s piped
/// stdout is the text alone (the `steered:` line is on stderr), `score` names the hook and
/// its CSV marks every row, and a generation steered into non-numbers blames the steering,
/// not the checkpoint.
#[test]
fn steered_runs_say_so_where_it_belongs() {
    let dir = fixtures().join("saes/topk");
    let sae = dir.to_str().unwrap();
    let run = |args: &[&str]| crate::common::cmd().args(args).output().unwrap();
    let out = run(&[
        "generate", "The cat", "-n", "3", "--sae", sae, "--steer", "40=5",
    ]);
    assert!(out.status.success());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.starts_with("The cat") && !stdout.contains("steered"),
        "{stdout}"
    );
    assert!(
        stderr.contains("steered: +5 · W_dec[40] at blocks.1.hook_resid_pre"),
        "{stderr}"
    );
    let out = run(&["score", "The cat sat", "--sae", sae, "--steer", "40=5"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("steered: +5 · W_dec[40] at blocks.1.hook_resid_pre\n"),
        "{text}"
    );
    let out = run(&[
        "score",
        "The cat sat",
        "--sae",
        sae,
        "--steer",
        "40=5",
        "--csv",
    ]);
    let csv = String::from_utf8_lossy(&out.stdout);
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().ends_with(",steered"), "{csv}");
    let mark = ",\"+5 · W_dec[40] at blocks.1.hook_resid_pre\"";
    assert!(lines.all(|l| l.ends_with(mark)), "{csv}");
    let out = run(&[
        "generate", "The cat", "-n", "3", "--sae", sae, "--steer", "40=1e30",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    let last = err.trim_end().lines().last().unwrap();
    assert!(
        last.contains("steering (") && last.contains("made the values non-finite"),
        "{err}"
    );
    assert!(!err.contains("checkpoint's weights"), "{err}");
}

/// `-k` counts candidate tokens in every command: `features` lists features per token with
/// `--per-token`, says so when given `-k`, and names the SAE's own k in words.
#[test]
fn features_per_token_is_not_k() {
    let dir = fixtures().join("saes/topk");
    let sae = dir.to_str().unwrap();
    crate::common::fails(
        crate::common::cmd().args(["features", "The cat", "--sae", sae, "-k", "3"]),
        2,
        &["-k 3", "--per-token 3"],
    );
    let out = crate::common::cmd()
        .args(["features", "The cat", "--sae", sae, "--per-token", "3"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("keeping its 8 most active per token"),
        "{text}"
    );
    assert!(!text.contains("k 8"), "{text}");
}

/// `feature --lines` names each context as every message names a line ("line 4 of
/// --file F", blank lines counted), and its dashboard says it once, with one heading per
/// feature and a histogram whose axes are titled.
#[test]
fn feature_contexts_are_named_by_their_line() {
    let scratch = crate::common::Scratch::new("feature-lines");
    let corpus = scratch.0.join("corpus.txt");
    std::fs::write(
        &corpus,
        "The cat sat on the mat\n\nA bird sang in the tree\n",
    )
    .unwrap();
    let html = scratch.0.join("f.html");
    let dir = fixtures().join("saes/topk");
    let out = crate::common::cmd()
        .args([
            "feature",
            "40",
            "--sae",
            dir.to_str().unwrap(),
            "--lines",
            "--file",
        ])
        .arg(&corpus)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let file = corpus.display().to_string();
    assert!(
        text.contains(&format!("line 3 of --file {file}: ")),
        "{text}"
    );
    assert!(
        text.contains(&format!("line 1 of --file {file}: ")),
        "{text}"
    );
    assert!(!text.contains("text 1"), "{text}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains(&format!("line 3 of --file {file}")),
        "dashboard"
    );
    assert_eq!(
        page.matches("Feature 40<").count(),
        1,
        "one heading for feature 40"
    );
    assert!(page.contains(">activation</text>") && page.contains(">tokens</text>"));
}
