//! `lens --lens tuned:DIR` and the lens statistics against tuned-lens 0.2.0's own
//! prediction trajectories (scripts/make_lens_fixtures.py): for a random tuned lens saved by
//! `TunedLens.save` and for tuned-lens's `LogitLens`, every depth's top 5 and their
//! log-probabilities, `entropy`, `forward_kl` and `rank` of the model's final top token and
//! of an answer, at every position, within 1e-4.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use crate::common::{fails, fixtures, json};

struct LensReference {
    tensors: HashMap<String, Tensor>,
    prompts: Vec<String>,
    answer: String,
}

impl LensReference {
    fn load() -> Self {
        let bytes = std::fs::read(fixtures().join("lenses/reference.safetensors")).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        LensReference {
            tensors: candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap(),
            prompts: meta["prompts"].lines().map(str::to_string).collect(),
            answer: meta["answer"].clone(),
        }
    }

    /// `[depth][position]` of a 2-D reference tensor, as f64.
    fn grid(&self, name: &str) -> Vec<Vec<f64>> {
        let t = self.tensors[name].to_dtype(DType::F64).unwrap();
        t.to_vec2::<f64>().unwrap()
    }

    /// `[depth][position][k]` of a 3-D reference tensor, as f64.
    fn cube(&self, name: &str) -> Vec<Vec<Vec<f64>>> {
        let t = self.tensors[name].to_dtype(DType::F64).unwrap();
        t.to_vec3::<f64>().unwrap()
    }
}

fn lens_flag(name: &str) -> String {
    match name {
        "tuned" => format!("tuned:{}", fixtures().join("lenses/tuned").display()),
        _ => "logit".into(),
    }
}

fn close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= 1e-4,
        "{what}: {got} vs tuned-lens's {want}"
    );
}

#[test]
fn every_depth_and_position_equals_tuned_lens() {
    let r = LensReference::load();
    for (i, text) in r.prompts.iter().enumerate() {
        for name in ["tuned", "logit"] {
            let flag = lens_flag(name);
            let args = [
                "lens",
                text,
                "--all-positions",
                "--lens",
                &flag,
                "--answer",
                &r.answer,
            ];
            let got = json(&args);
            assert_eq!(got["lens"], name);
            let p = format!("p{i}.{name}");
            let top = r.cube(&format!("{p}.top_ids"));
            let top_lp = r.cube(&format!("{p}.top_logprobs"));
            let stats = [("kl_to_final", "forward_kl"), ("entropy", "entropy")];
            for (ours, theirs) in stats {
                for (d, row) in r.grid(&format!("{p}.{theirs}")).iter().enumerate() {
                    for (t, want) in row.iter().enumerate() {
                        let what = format!("{p} {ours} at depth {d}, position {t}");
                        close(&what, got["stats"][ours][d][t].as_f64().unwrap(), *want);
                    }
                }
            }
            let ranks = [
                ("final_token_rank", "final_rank"),
                ("answer_rank", "answer_rank"),
            ];
            for (ours, theirs) in ranks {
                let ties = r.grid(&format!("{p}.{theirs}_ties"));
                for (d, row) in r.grid(&format!("{p}.{theirs}")).iter().enumerate() {
                    for (t, want) in row.iter().enumerate() {
                        // tuned-lens ranks by f32 log-probabilities, where a token 2e-7 above
                        // the target can round to a tie it orders either way: its rank is
                        // defined up to those ties (recorded by the script).
                        let got = got["stats"][ours][d][t].as_f64().unwrap();
                        assert!(
                            (got - want).abs() <= ties[d][t],
                            "{p} {ours} [{d}][{t}]: {got} vs tuned-lens's {want} ({} ties)",
                            ties[d][t]
                        );
                    }
                }
            }
            for (d, row) in top.iter().enumerate() {
                for (t, k) in row.iter().enumerate() {
                    let cell = &got["top"][d][t];
                    assert_eq!(cell["id"], k[0] as u64, "{p} top at [{d}][{t}]");
                    let prob = cell["prob"].as_f64().unwrap();
                    close(
                        &format!("{p} top prob [{d}][{t}]"),
                        prob,
                        top_lp[d][t][0].exp(),
                    );
                }
            }
        }
    }
}

#[test]
fn one_position_lists_tuned_lens_top_5_and_statistics() {
    let r = LensReference::load();
    let text = &r.prompts[1];
    let position = 7;
    for name in ["tuned", "logit"] {
        let (flag, pos) = (lens_flag(name), position.to_string());
        let args = [
            "lens",
            text,
            "--lens",
            &flag,
            "-k",
            "5",
            "--position",
            &pos,
            "--answer",
            &r.answer,
        ];
        let got = json(&args);
        let p = format!("p1.{name}");
        let (top, top_lp) = (
            r.cube(&format!("{p}.top_ids")),
            r.cube(&format!("{p}.top_logprobs")),
        );
        let (kl, entropy) = (
            r.grid(&format!("{p}.forward_kl")),
            r.grid(&format!("{p}.entropy")),
        );
        let (rank, answer) = (
            r.grid(&format!("{p}.final_rank")),
            r.grid(&format!("{p}.answer_rank")),
        );
        for (d, row) in got["depths"].as_array().unwrap().iter().enumerate() {
            let preds = row["predictions"].as_array().unwrap();
            for (k, pred) in preds.iter().enumerate() {
                assert_eq!(
                    pred["id"], top[d][position][k] as u64,
                    "{p} depth {d} top {k}"
                );
                let lp = pred["logprob"].as_f64().unwrap();
                close(
                    &format!("{p} depth {d} logprob {k}"),
                    lp,
                    top_lp[d][position][k],
                );
            }
            close(
                &format!("{p} depth {d} KL"),
                row["stats"]["kl_to_final"].as_f64().unwrap(),
                kl[d][position],
            );
            close(
                &format!("{p} depth {d} entropy"),
                row["stats"]["entropy"].as_f64().unwrap(),
                entropy[d][position],
            );
            let ties = |n: &str| r.grid(&format!("{p}.{n}_ties"))[d][position];
            let within = |got: &serde_json::Value, want: f64, ties: f64| {
                (got.as_f64().unwrap() - want).abs() <= ties
            };
            assert!(within(
                &row["stats"]["final_token_rank"],
                rank[d][position],
                ties("final_rank")
            ));
            assert!(within(
                &row["stats"]["answer_rank"],
                answer[d][position],
                ties("answer_rank")
            ));
        }
    }
}

#[test]
fn a_tuned_lens_for_another_model_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixtures().join("lenses/tuned");
    std::fs::copy(src.join("params.pt"), dir.path().join("params.pt")).unwrap();
    let config = std::fs::read_to_string(src.join("config.json")).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        config.replace("\"num_hidden_layers\": 3", "\"num_hidden_layers\": 12"),
    )
    .unwrap();
    let flag = format!("tuned:{}", dir.path().display());
    fails(
        crate::common::cmd().args(["lens", "The cat", "--lens", &flag]),
        1,
        &["is for a model of 12 layers and d_model 32; this model has 3 and 32"],
    );
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    fails(
        crate::common::cmd().args(["lens", "The cat", "--lens", &flag]),
        1,
        &["cannot read", "config.json"],
    );
    fails(
        crate::common::cmd().args(["lens", "The cat", "--lens", "lens:x"]),
        2,
        &["give logit, tuned:DIR", "jlens:FILE"],
    );
}
