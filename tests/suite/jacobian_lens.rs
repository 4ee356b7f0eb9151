//! The Jacobian lens against TransformerLens 4.3.0's own `JacobianLens`
//! (scripts/make_jlens_fixtures.py): the readout of the artifact TransformerLens saved
//! (float16, its default) at every layer and position, top 10 and statistics within 1e-4;
//! `lens fit` equal to its fit on the same corpus and settings; steering with lens vectors
//! equal to its run with the vector added at `blocks.L.hook_out`.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::common::{cmd, fails, fixtures, json};

pub struct JlensReference {
    pub tensors: HashMap<String, Tensor>,
    pub meta: HashMap<String, String>,
}

impl JlensReference {
    pub fn load() -> Self {
        let path = fixtures().join("lenses/jlens/reference.safetensors");
        let bytes = std::fs::read(path).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        JlensReference {
            tensors: candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap(),
            meta: meta.metadata().clone().unwrap(),
        }
    }

    pub fn prompts(&self) -> Vec<String> {
        self.meta["prompts"].lines().map(str::to_string).collect()
    }

    pub fn f64s(&self, name: &str) -> Vec<f64> {
        let t = self.tensors[name].to_dtype(DType::F64).unwrap();
        t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
    }

    pub fn rows(&self, name: &str) -> Vec<Vec<f64>> {
        let t = self.tensors[name].to_dtype(DType::F64).unwrap();
        t.to_vec2::<f64>().unwrap()
    }
}

pub fn tl_artifact() -> String {
    fixtures()
        .join("lenses/jlens/tl-default.pt")
        .display()
        .to_string()
}

fn close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-4,
        "{what}: {got} vs TransformerLens's {want}"
    );
}

/// Every layer (TransformerLens's block l: our depth l + 1, and the model's own at the
/// last) and position: the top token, its probability and the statistics.
#[test]
fn every_layer_and_position_equals_transformer_lens_readout() {
    let r = JlensReference::load();
    let flag = format!("jlens:{}", tl_artifact());
    for (i, text) in r.prompts().iter().enumerate() {
        let args = [
            "lens",
            text,
            "--prepend-bos",
            "--all-positions",
            "--lens",
            &flag,
        ];
        let got = json(&args);
        assert_eq!(got["lens"], "jacobian");
        assert_eq!(got["depths"], serde_json::json!([1, 2, 3]));
        for layer in 0..3 {
            let p = format!("p{i}.layer{layer}");
            let (ids, probs) = (
                r.rows(&format!("{p}.top_ids")),
                r.rows(&format!("{p}.top_probs")),
            );
            let stats = [
                ("kl_to_final", r.f64s(&format!("{p}.kl"))),
                ("entropy", r.f64s(&format!("{p}.entropy"))),
                ("final_token_rank", r.f64s(&format!("{p}.final_rank"))),
            ];
            for t in 0..ids.len() {
                let cell = &got["top"][layer][t];
                assert_eq!(cell["id"], ids[t][0] as u64, "{p} top at position {t}");
                close(
                    &format!("{p} prob at {t}"),
                    cell["prob"].as_f64().unwrap(),
                    probs[t][0],
                );
                for (name, want) in &stats {
                    let v = got["stats"][name][layer][t].as_f64().unwrap();
                    close(&format!("{p} {name} at {t}"), v, want[t]);
                }
            }
        }
    }
}

/// The top 10 at every position of the first prompt, in TransformerLens's order.
#[test]
fn top_10_at_each_position_equals_transformer_lens() {
    let r = JlensReference::load();
    let flag = format!("jlens:{}", tl_artifact());
    let text = &r.prompts()[0];
    let n = r.rows("p0.layer0.top_ids").len();
    for t in 0..n {
        let pos = t.to_string();
        let args = [
            "lens",
            text,
            "--prepend-bos",
            "--lens",
            &flag,
            "-k",
            "10",
            "--position",
            &pos,
        ];
        let got = json(&args);
        for layer in 0..3 {
            let p = format!("p0.layer{layer}");
            let (ids, probs) = (
                r.rows(&format!("{p}.top_ids")),
                r.rows(&format!("{p}.top_probs")),
            );
            let row = &got["depths"][layer];
            assert_eq!(row["depth"], layer + 1);
            for (k, pred) in row["predictions"].as_array().unwrap().iter().enumerate() {
                assert_eq!(pred["id"], ids[t][k] as u64, "{p} position {t} top {k}");
                close(
                    &format!("{p} [{t}] prob {k}"),
                    pred["prob"].as_f64().unwrap(),
                    probs[t][k],
                );
            }
        }
    }
}

/// The logit lens through the same depths is what `--lens logit` prints: the Jacobian
/// lens moves the stream; the identity would not.
#[test]
fn the_jacobian_lens_differs_from_the_logit_lens_where_j_is_not_the_identity() {
    let r = JlensReference::load();
    let text = &r.prompts()[1];
    let flag = format!("jlens:{}", tl_artifact());
    let j = json(&["lens", text, "--lens", &flag]);
    let logit = json(&["lens", text]);
    let (jd, ld) = (&j["depths"], &logit["depths"]);
    assert_eq!(jd[0]["depth"], 1);
    assert_ne!(jd[0]["stats"]["kl_to_final"], ld[1]["stats"]["kl_to_final"]);
    // The last depth is the model's own in both.
    assert_eq!(jd[2]["predictions"], ld[3]["predictions"]);
}

#[test]
fn a_jacobian_lens_for_another_model_or_not_a_lens_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    // The tuned lens's params.pt: a torch zip, but no J.
    let params = fixtures()
        .join("lenses/tuned/params.pt")
        .display()
        .to_string();
    let flag = format!("jlens:{params}");
    fails(
        cmd().args(["lens", "The cat", "--lens", &flag]),
        1,
        &["--lens jlens:", "not a Jacobian lens"],
    );
    let garbage = dir.path().join("lens.pt");
    std::fs::write(&garbage, b"not a zip at all").unwrap();
    let flag = format!("jlens:{}", garbage.display());
    fails(
        cmd().args(["lens", "The cat", "--lens", &flag]),
        1,
        &["--lens jlens:"],
    );
    fails(
        cmd().args(["lens", "The cat", "--lens", "jlens:/no/such/lens.pt"]),
        1,
        &["no such file"],
    );
}

fn fixture_config() -> gpt2_inspect::model::Config {
    let path = crate::common::model_dir().join("config.json");
    gpt2_inspect::model::Config::from_file(&path).unwrap().0
}

/// `lens fit` on the fixture corpus, read back: every entry of J within 1e-4 of
/// TransformerLens's fit (relative to J's largest entry), with its defaults and with
/// others; the prompt count and the skipped line as it counts them.
#[test]
fn lens_fit_equals_transformer_lens_fit() {
    let r = JlensReference::load();
    let dir = tempfile::tempdir().unwrap();
    let corpus = fixtures().join("lenses/corpus.txt").display().to_string();
    let settings: [(&str, &[&str]); 2] = [
        ("default", &[]),
        ("other", &["--skip-first", "3", "--max-seq-len", "20"]),
    ];
    for (name, extra) in settings {
        let out = dir.path().join(format!("{name}.pt")).display().to_string();
        let mut args = vec![
            "--prepend-bos",
            "lens",
            "fit",
            "--file",
            &corpus,
            "--lines",
            "-o",
        ];
        args.push(&out);
        args.extend_from_slice(extra);
        let report = json(&args);
        let n = r.f64s(&format!("fit.{name}.n_prompts"))[0];
        assert_eq!(report["n_prompts"].as_f64().unwrap(), n, "{name}");
        let skipped = report["skipped"].as_array().unwrap().len();
        assert_eq!(skipped, if name == "default" { 1 } else { 0 }, "{name}");
        let lens =
            gpt2_inspect::load::jacobian_lens::read(out.as_ref(), &fixture_config()).unwrap();
        assert_eq!(lens.layers, [0, 1]);
        assert_eq!(lens.n_prompts as f64, n);
        for (i, &layer) in lens.layers.iter().enumerate() {
            let want = r.f64s(&format!("fit.{name}.J.{layer}"));
            let got = lens.j[i].flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let scale = want.iter().fold(0f64, |m, v| m.max(v.abs()));
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (*g as f64 - w).abs() <= 1e-4 * scale,
                    "{name} J[{layer}] entry {k}: {g} vs TransformerLens's {w}"
                );
            }
        }
    }
}

/// What `lens fit` writes holds TransformerLens's artifact keys (`J`, `n_prompts`,
/// `source_layers`, `d_model`, `metadata` with `target_layer`), and reads back as a lens.
#[test]
fn the_fitted_artifact_has_transformer_lens_keys_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = fixtures().join("lenses/corpus.txt").display().to_string();
    let out = dir.path().join("lens.pt");
    let o = out.display().to_string();
    json(&[
        "lens",
        "fit",
        "--file",
        &corpus,
        "--lines",
        "-o",
        &o,
        "--skip-first",
        "2",
    ]);
    let values = gpt2_inspect::load::checkpoint::torch_values(&out).unwrap();
    assert_eq!(values["d_model"], 32);
    assert_eq!(values["source_layers"], serde_json::json!([0, 1]));
    assert_eq!(values["metadata"]["target_layer"], 2);
    assert_eq!(values["metadata"]["estimator"], "jacobian_lens");
    assert_eq!(values["n_prompts"], values["metadata"]["n_prompts"]);
    let flag = format!("jlens:{o}");
    let read = json(&["lens", "The cat sat on the mat", "--lens", &flag]);
    assert_eq!(read["depths"].as_array().unwrap().len(), 3);
}

#[test]
fn lens_fit_refuses_bad_layers_and_an_all_short_corpus_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let short = dir.path().join("short.txt");
    std::fs::write(&short, "Too short.\nAlso short.\n").unwrap();
    let o = dir.path().join("lens.pt");
    let mut c = cmd();
    c.args(["lens", "fit", "--lines", "-o"])
        .arg(&o)
        .arg("--file")
        .arg(&short);
    fails(&mut c, 2, &["too short to fit on"]);
    assert!(!o.exists(), "nothing is written");
    let corpus = fixtures().join("lenses/corpus.txt");
    let mut c = cmd();
    c.args(["lens", "fit", "--lines", "--layers", "2", "-o"])
        .arg(&o)
        .arg("--file")
        .arg(&corpus);
    fails(&mut c, 2, &["--layers 2", "below the last"]);
    // A text that is the word `fit` is still a text after `--`, and other texts are texts.
    let j = json(&["lens", "fit the model"]);
    assert_eq!(j["tokens"].as_array().unwrap().len(), 3);
    let out = cmd()
        .args(["lens", "--json", "--", "fit"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["tokens"], serde_json::json!(["fit"]));
}

/// `--jlens F --steer-token " Paris=3" --at 1` on next, score and generate equals
/// TransformerLens's run with 3 · lens_vectors(" Paris", 1) added at blocks.1.hook_out.
#[test]
fn steering_with_a_lens_vector_equals_transformer_lens() {
    let r = JlensReference::load();
    let j = tl_artifact();
    let (token, alpha, layer) = (
        &r.meta["steer_token"],
        &r.meta["steer_alpha"],
        &r.meta["steer_layer"],
    );
    let spec = format!("{token}={alpha}");
    let steer = [
        "--jlens",
        j.as_str(),
        "--steer-token",
        spec.as_str(),
        "--at",
        layer.as_str(),
    ];
    for (i, text) in r.prompts().iter().enumerate() {
        let got = json(&[&["next", text, "-k", "10"][..], &steer].concat());
        let s = &got["steered"];
        assert_eq!(s["jlens"], j.as_str());
        assert_eq!(s["hook"], format!("blocks.{layer}.hook_resid_post"));
        let (ids, probs) = (
            r.f64s(&format!("steer.p{i}.top_ids")),
            r.f64s(&format!("steer.p{i}.top_probs")),
        );
        for (k, p) in s["predictions"].as_array().unwrap().iter().enumerate() {
            assert_eq!(p["id"], ids[k] as u64, "prompt {i} steered top {k}");
            close(
                &format!("prompt {i} steered prob {k}"),
                p["prob"].as_f64().unwrap(),
                probs[k],
            );
        }
        // Unsteered, the predictions are the model's own.
        assert_ne!(got["predictions"], s["predictions"]);
    }
    let score = json(&[&["score", &r.meta["score"]][..], &steer].concat());
    for (k, want) in r.f64s("steer.score.logprobs").iter().enumerate() {
        let got = score["tokens"][k]["logprob"].as_f64().unwrap();
        close(&format!("steered score logprob {k}"), got, *want);
    }
    let n = r.meta["generate"].clone();
    let text = &r.prompts()[0];
    let generated = json(&[&["generate", text, "-n", &n][..], &steer].concat());
    let want = r.f64s("steer.generated");
    let prompt_len = generated["input_ids"].as_array().unwrap().len();
    for (k, id) in generated["generated_ids"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        assert_eq!(
            id.as_u64().unwrap(),
            want[prompt_len + k] as u64,
            "generated token {k}"
        );
    }
}

#[test]
fn lens_steering_is_refused_in_one_line_where_it_cannot_be_done() {
    let j = tl_artifact();
    let mut c = cmd();
    c.args([
        "next",
        "The cat",
        "--jlens",
        &j,
        "--steer-token",
        " Paris=3",
        "--at",
        "2",
    ]);
    fails(&mut c, 2, &["--at 2", "blocks 0, 1"]);
    let mut c = cmd();
    c.args([
        "next",
        "The cat",
        "--jlens",
        &j,
        "--steer-token",
        " Parisian cat=3",
        "--at",
        "1",
    ]);
    fails(&mut c, 2, &["--steer-token", "give one token"]);
    let mut c = cmd();
    c.args(["next", "The cat", "--steer-token", " Paris=3", "--at", "1"]);
    fails(&mut c, 2, &["--jlens"]);
}

/// `--lens logit,jlens:F` reads both at one position: the second is what `--lens jlens:F`
/// alone prints, under `compared`.
#[test]
fn several_lenses_read_side_by_side() {
    let text = "When Mary and John went to the store";
    let j = format!("jlens:{}", tl_artifact());
    let both = json(&["lens", text, "--lens", &format!("logit,{j}"), "-k", "3"]);
    let logit = json(&["lens", text, "-k", "3"]);
    let alone = json(&["lens", text, "--lens", &j, "-k", "3"]);
    assert_eq!(both["depths"], logit["depths"]);
    assert_eq!(both["compared"][0]["lens"], "jacobian");
    assert_eq!(both["compared"][0]["depths"], alone["depths"]);
    assert!(logit.get("compared").is_none());
    let mut c = cmd();
    c.args([
        "lens",
        text,
        "--all-positions",
        "--lens",
        &format!("logit,{j}"),
    ]);
    fails(&mut c, 2, &["--all-positions reads one lens"]);
}

/// `--all-positions --svg` draws the statistics under the grid: one cell per depth and
/// position, each with the JSON's KL, entropy and rank.
#[test]
fn the_lens_figure_draws_the_statistics() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("lens.svg");
    let text = "The cat sat on the mat";
    let j = format!("jlens:{}", tl_artifact());
    let s = svg.display().to_string();
    let got = json(&["lens", text, "--all-positions", "--lens", &j, "--svg", &s]);
    let figure = std::fs::read_to_string(&svg).unwrap();
    assert!(figure.contains("jacobian lens · the top next token"));
    let cells: Vec<&str> = figure.split(r#"<g class="stat">"#).skip(1).collect();
    let depths = got["depths"].as_array().unwrap().len();
    let positions = got["tokens"].as_array().unwrap().len();
    assert_eq!(cells.len(), depths * positions);
    for d in 0..depths {
        for p in 0..positions {
            let st = &got["stats"];
            let want = format!(
                "KL {:.4}, entropy {:.4}, final token's rank {}",
                st["kl_to_final"][d][p].as_f64().unwrap(),
                st["entropy"][d][p].as_f64().unwrap(),
                st["final_token_rank"][d][p]
            );
            assert!(
                cells[d * positions + p].contains(&want),
                "cell [{d}][{p}] lacks {want}"
            );
        }
    }
}
