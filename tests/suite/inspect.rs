//! The data-flow commands (trace, embed, hidden, attention --scores/--qkv/--format bertviz,
//! lens, hooks, dump) against Hugging Face's outputs for the fixture.

use crate::common::{
    assert_close, cmd, flat, floats, json as run_json, max_abs_diff, model_dir, Reference, TOL,
};
use candle_core::{DType, Device, Tensor};
use serde_json::{json, Value};

fn assert_json_close(what: &str, got: &Value, want: &Tensor) {
    let d = max_abs_diff(&floats(got), &flat(want));
    assert!(d <= TOL, "{what}: max |ours - HF| = {d}");
}

fn softmax_f64(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let z: f64 = logits.iter().map(|&l| (l as f64 - max).exp()).sum();
    logits.iter().map(|&l| (l as f64 - max).exp() / z).collect()
}

#[test]
fn trace_lists_every_stage_with_its_shape() {
    let v = run_json(&["trace", "The quick brown fox"]);
    let stages = v["stages"].as_array().unwrap();
    let shape_of = |name: &str| {
        stages
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))["shape"]
            .clone()
    };
    assert_eq!(shape_of("input_ids"), json!([1, 4]));
    assert_eq!(shape_of("wte"), json!([50257, 32]));
    assert_eq!(shape_of("wpe"), json!([1024, 32]));
    assert_eq!(shape_of("embeddings"), json!([1, 4, 32]));
    for l in 0..3 {
        assert_eq!(
            shape_of(&format!("blocks.{l}.attn.hook_pattern")),
            json!([1, 4, 4, 4])
        );
    }
    assert_eq!(shape_of("logits"), json!([1, 4, 50257]));
    assert!(stages.iter().all(|s| s["dtype"].is_string()));
    let next = run_json(&["next", "The quick brown fox"]);
    assert_eq!(v["predictions"], next["predictions"]);
}

#[test]
fn embed_matches_hf_and_nearest_is_cosine_over_wte() {
    let reference = Reference::load();
    let prompt = &reference.prompts[2];
    let v = run_json(&["embed", prompt, "--nearest", "3"]);
    assert_eq!(v["wte_shape"], json!([50257, 32]));
    assert_eq!(v["wpe_shape"], json!([1024, 32]));
    assert_json_close(
        "token_embeddings",
        &v["token_embeddings"],
        reference.get("p2.hook_embed"),
    );
    assert_json_close(
        "position_embeddings",
        &v["position_embeddings"],
        reference.get("p2.hook_pos_embed"),
    );
    let h0 = reference.get("p2.hidden_states").get(0).unwrap();
    assert_json_close("embeddings", &v["embeddings"], &h0);

    // Cosine similarity against every wte row, computed here in f64 from the checkpoint.
    let weights =
        candle_core::safetensors::load(model_dir().join("model.safetensors"), &Device::Cpu)
            .unwrap();
    let wte: Vec<Vec<f32>> = weights["transformer.wte.weight"].to_vec2().unwrap();
    let norm = |r: &[f32]| r.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    for (i, tok) in v["tokens"].as_array().unwrap().iter().enumerate() {
        let id = reference.ids(2)[i] as usize;
        let mut cos: Vec<(usize, f64)> = wte
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != id)
            .map(|(j, r)| {
                (
                    j,
                    r.iter()
                        .zip(&wte[id])
                        .map(|(&a, &b)| a as f64 * b as f64)
                        .sum::<f64>()
                        / (norm(r) * norm(&wte[id])),
                )
            })
            .collect();
        cos.sort_by(|a, b| b.1.total_cmp(&a.1));
        let got = tok["nearest"].as_array().unwrap();
        assert_eq!(got.len(), 3);
        for (n, (j, c)) in got.iter().zip(&cos) {
            assert_eq!(n["id"], *j);
            assert!((n["cosine"].as_f64().unwrap() - c).abs() < 1e-4);
        }
    }
}

#[test]
fn hidden_is_hf_hidden_states() {
    let reference = Reference::load();
    let prompt = &reference.prompts[3];
    let hs = reference.get("p3.hidden_states"); // (L+1, T, d)
                                                // Depth D is the residual stream after D blocks: HF's hidden_states[D] below n_layer,
                                                // the last block's output (HF's blocks.2 resid_post hook) at n_layer; `ln_f` is HF's
                                                // hidden_states[n_layer], after ln_f.
    let last = reference
        .get("p3.blocks.2.hook_resid_post")
        .squeeze(0)
        .unwrap(); // (T, d)
    let want = |i: usize| match i {
        3 => last.clone(),
        i => hs.get(i).unwrap(),
    };
    for i in 0..=3 {
        let v = run_json(&["hidden", prompt, "--depth", &i.to_string()]);
        assert_eq!(v["depth"], i);
        assert_json_close(&format!("depth {i}"), &v["values"], &want(i));
    }
    let v = run_json(&["hidden", prompt, "--depth", "ln_f"]);
    assert_eq!(v["depth"], "ln_f");
    assert_json_close("ln_f", &v["values"], &hs.get(3).unwrap());
    let v = run_json(&["hidden", prompt]);
    assert!(v["depth"].is_null() && v.get("values").is_none());
    let norms = |t: &Tensor| {
        (t.to_dtype(DType::F64).unwrap().sqr().unwrap())
            .sum_keepdim(t.rank() - 1)
            .unwrap()
            .sqrt()
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap()
    };
    let depths = Tensor::stack(&(0..=3).map(want).collect::<Vec<_>>(), 0).unwrap();
    assert_json_close("norms", &v["norms"], &norms(&depths).squeeze(2).unwrap());
    let ln_f = norms(&hs.get(3).unwrap()).squeeze(1).unwrap();
    assert_json_close("ln_f norms", &v["ln_f_norms"], &ln_f);
    // lens numbers its rows the same way: its depth 3 reads what hidden --depth 3 holds.
    let lens = run_json(&["lens", prompt]);
    let rows = lens["depths"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[3]["depth"], 3);
}

#[test]
fn attention_scores_and_qkv_match_hf() {
    let reference = Reference::load();
    let prompt = &reference.prompts[1];
    let v = run_json(&[
        "attention",
        prompt,
        "--layer",
        "1",
        "--head",
        "3",
        "--scores",
        "--qkv",
    ]);
    let head = |name: &str, per_head_dim: usize| {
        reference
            .get(&format!("p1.blocks.1.{name}"))
            .squeeze(0)
            .unwrap()
            .narrow(per_head_dim, 3, 1)
            .unwrap()
    };
    assert_json_close("scores", &v["scores"], &head("attn.hook_attn_scores", 0));
    assert!(v["scores"][0][1].is_null(), "masked scores are null");
    assert_json_close("weights", &v["weights"], &head("attn.hook_pattern", 0));
    for k in ["q", "k", "v"] {
        assert_json_close(k, &v[k], &head(&format!("attn.hook_{k}"), 1));
    }
    let table = cmd()
        .args([
            "attention",
            prompt,
            "--layer",
            "1",
            "--head",
            "3",
            "--scores",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8(table.stdout)
        .unwrap()
        .contains("scores QKᵀ/√d_head"));
}

#[test]
fn bertviz_layout_holds_every_layer_and_head() {
    let reference = Reference::load();
    let v = run_json(&["attention", &reference.prompts[0], "--format", "bertviz"]);
    // BertViz's two keys after the header every JSON object carries.
    let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["all", "model", "revision", "schema", "text", "tokens", "version"]
    );
    assert_eq!(v["tokens"].as_array().unwrap().len(), 4);
    assert_json_close("all", &v["all"], reference.get("p0.attentions"));
}

#[test]
fn lens_matches_hf_and_its_last_row_is_next() {
    let reference = Reference::load();
    for (prompt, pos, name) in [(0, None, "last"), (2, Some(1), "pos1"), (2, None, "last")] {
        let text = &reference.prompts[prompt];
        let mut args = vec!["lens", text.as_str(), "--top-k", "4"];
        let pos_s = pos.map(|p: usize| p.to_string());
        if let Some(p) = &pos_s {
            args.extend(["--position", p.as_str()]);
        }
        let v = run_json(&args);
        let hf = reference.get(&format!("p{prompt}.lens_logits_{name}")); // (L+1, V)
        let rows = v["depths"].as_array().unwrap();
        assert_eq!(rows.len(), 4);
        let final_logits = flat(&hf.get(3).unwrap());
        let final_id = (0..final_logits.len())
            .max_by(|&a, &b| final_logits[a].total_cmp(&final_logits[b]))
            .unwrap();
        assert_eq!(v["final_id"], final_id);
        for (l, row) in rows.iter().enumerate() {
            let logits = flat(&hf.get(l).unwrap());
            let probs = softmax_f64(&logits);
            let mut order: Vec<usize> = (0..logits.len()).collect();
            order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
            for (r, p) in row["predictions"].as_array().unwrap().iter().enumerate() {
                assert_eq!(p["id"], order[r], "{name} layer {l} rank {r}");
                assert!(
                    (p["logit"].as_f64().unwrap() - logits[order[r]] as f64).abs() < TOL as f64
                );
            }
            assert!(
                (row["final_token_prob"].as_f64().unwrap() - probs[final_id]).abs() < TOL as f64
            );
        }
        if pos.is_none() {
            let next = run_json(&["next", text, "--top-k", "4"]);
            assert_eq!(
                rows[3]["predictions"], next["predictions"],
                "last lens row equals next"
            );
        }
    }
}

#[test]
fn hooks_lists_transformer_lens_names() {
    let v = run_json(&["hooks"]);
    let hooks = v["hooks"].as_array().unwrap();
    assert_eq!(
        hooks.len(),
        2 + 3 * gpt2_inspect::model::BlockHook::ALL.len() + 4
    );
    let find = |n: &str| {
        hooks
            .iter()
            .find(|h| h["name"] == n)
            .unwrap_or_else(|| panic!("{n}"))["shape"]
            .clone()
    };
    assert_eq!(find("blocks.0.attn.hook_q"), json!([1, null, 4, 8]));
    assert_eq!(find("blocks.2.mlp.hook_post"), json!([1, null, 128]));
    assert_eq!(
        find("blocks.1.attn.hook_attn_scores"),
        json!([1, 4, null, null])
    );
    assert_eq!(find("ln_final.hook_normalized"), json!([1, null, 32]));
    let v = run_json(&["hooks", "--seq-len", "7"]);
    assert_eq!(v["hooks"][0]["shape"], json!([1, 7, 32]));
}

#[test]
fn dump_writes_every_activation_as_hf_computes_it() {
    let reference = Reference::load();
    let dir = std::env::temp_dir().join(format!("gpt2-inspect-dump-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for prompt in [0, 3] {
        let path = dir.join(format!("p{prompt}.safetensors"));
        std::fs::write(&path, b"an older file to be replaced").unwrap();
        let v = run_json(&[
            "dump",
            &reference.prompts[prompt],
            "-o",
            path.to_str().unwrap(),
        ]);
        assert_eq!(v["hooks"].as_array().unwrap().len(), 66);
        let bytes = std::fs::read(&path).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta["text"], reference.prompts[prompt]);
        let ids: Vec<u32> = serde_json::from_str(&meta["input_ids"]).unwrap();
        assert_eq!(ids, reference.ids(prompt));
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).unwrap();
        assert_eq!(tensors.len(), 66);
        let mut compared = 0;
        for (name, t) in &tensors {
            if let Some(want) = reference.tensors.get(&format!("p{prompt}.{name}")) {
                assert_close(name, t, want);
                compared += 1;
            }
        }
        // Prompt 0's reference has full logits; the other prompts' do not.
        assert_eq!(compared, if prompt == 0 { 66 } else { 65 });
    }
    let path = dir.join("patterns.safetensors");
    let v = run_json(&[
        "dump",
        "The cat",
        "-o",
        path.to_str().unwrap(),
        "--hook",
        "blocks.*.attn.hook_pattern",
    ]);
    assert_eq!(v["hooks"].as_array().unwrap().len(), 3);
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    assert_eq!(tensors["blocks.2.attn.hook_pattern"].dims(), [1, 4, 2, 2]);
    // Nothing but the outputs is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dump_refuses_a_missing_directory_and_unknown_hooks() {
    let out = cmd()
        .args(["dump", "hi", "-o", "/nonexistent-dir/x.safetensors"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    let out = cmd()
        .args([
            "dump",
            "hi",
            "-o",
            "/tmp/x.safetensors",
            "--hook",
            "blocks.*.nothing",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("matches no activation"));
}

/// HF's activation `name` of block `layer` for prompt `p`, without the batch axis.
fn block_activation(reference: &Reference, p: usize, layer: usize, name: &str) -> Tensor {
    reference
        .get(&format!("p{p}.blocks.{layer}.{name}"))
        .squeeze(0)
        .unwrap()
}

/// The neuron view's numbers from HF's own q, k, scores and pattern (captured with torch
/// hooks): q × k and q · k are products of HF's q and k; keys after the query are masked.
#[test]
fn neuron_view_matches_hf() {
    let reference = Reference::load();
    let prompt = &reference.prompts[1];
    let (layer, head) = (1, 3);
    let get = |name: &str| block_activation(&reference, 1, layer, &format!("attn.{name}"));
    let q_all = get("hook_q")
        .narrow(1, head, 1)
        .unwrap()
        .squeeze(1)
        .unwrap(); // (T, hs)
    let k = get("hook_k")
        .narrow(1, head, 1)
        .unwrap()
        .squeeze(1)
        .unwrap(); // (T, hs)
    let t = k.dims()[0];
    for query in [0, t / 2, t - 1] {
        let v = run_json(&[
            "attention",
            prompt,
            "--layer",
            &layer.to_string(),
            "--head",
            &head.to_string(),
            "--neuron",
            &query.to_string(),
        ]);
        let n = &v["neuron"];
        assert_eq!(n["query"], query);
        let q = q_all.get(query).unwrap(); // (hs,)
        assert_json_close("q", &n["q"], &q);
        assert_json_close("k", &n["k"], &k);
        let qk = k.broadcast_mul(&q.unsqueeze(0).unwrap()).unwrap();
        assert_json_close("qk", &n["qk"], &qk);
        let dot = flat(&qk.sum(1).unwrap());
        let scores = flat(
            &get("hook_attn_scores")
                .get(head)
                .unwrap()
                .get(query)
                .unwrap(),
        );
        let weights = get("hook_pattern").get(head).unwrap().get(query).unwrap();
        assert_json_close("weights", &n["weights"], &weights);
        for j in 0..t {
            if j > query {
                assert!(
                    n["dot"][j].is_null() && n["scores"][j].is_null(),
                    "key {j} masked"
                );
                assert_eq!(n["weights"][j], 0.0);
                continue;
            }
            let (d, s) = (
                n["dot"][j].as_f64().unwrap(),
                n["scores"][j].as_f64().unwrap(),
            );
            assert!(
                (d - dot[j] as f64).abs() <= TOL as f64,
                "dot {j}: {d} vs {}",
                dot[j]
            );
            assert!(
                (s - scores[j] as f64).abs() <= TOL as f64,
                "score {j}: {s} vs {}",
                scores[j]
            );
        }
    }
    // The terminal rows: every key, masked ones said to be.
    let out = cmd()
        .args([
            "attention",
            prompt,
            "--layer",
            "1",
            "--head",
            "3",
            "--neuron",
            "0",
            "--annot",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("neuron view of query 0") && text.contains("masked: after the query"),
        "{text}"
    );
    assert!(text.contains("    q×k  "), "{text}");
    // --neuron needs the head it looks into, and a position in the text.
    let out = cmd()
        .args(["attention", prompt, "--neuron", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = cmd()
        .args([
            "attention",
            prompt,
            "--layer",
            "1",
            "--head",
            "3",
            "--neuron",
            "99",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    // --neuron is --query's older name: the message names the flag as it is now.
    assert!(String::from_utf8_lossy(&out.stderr).contains("--query 99 is out of range"));
}

/// `--stages`: x, q, k, v, the scores, the weights, z and z·W_O of one head, against HF's
/// ln_1 output, q, k, v, scores, pattern, z and per-head result (torch hooks on HF's
/// modules).
#[test]
fn stages_match_hf() {
    let reference = Reference::load();
    let prompt = &reference.prompts[1];
    let (layer, head) = (1, 3);
    let get = |name: &str| block_activation(&reference, 1, layer, name);
    let v = run_json(&[
        "attention",
        prompt,
        "--layer",
        "1",
        "--head",
        "3",
        "--stages",
    ]);
    let s = &v["stages"];
    assert_json_close("x", &s["x"], &get("ln1.hook_out"));
    let scores = get("attn.hook_attn_scores").get(head).unwrap(); // (T, T), -inf masked
    let want = flat(&scores);
    let t = scores.dims()[0];
    for i in 0..t {
        for j in 0..t {
            let got = &s["scores"][i][j];
            if j > i {
                assert!(got.is_null(), "scores[{i}][{j}] masked");
            } else {
                let d = (got.as_f64().unwrap() - want[i * t + j] as f64).abs();
                assert!(d <= TOL as f64, "scores[{i}][{j}]: {d}");
            }
        }
    }
    assert_json_close(
        "weights",
        &s["weights"],
        &get("attn.hook_pattern").get(head).unwrap(),
    );
    let z = get("attn.hook_z")
        .narrow(1, head, 1)
        .unwrap()
        .squeeze(1)
        .unwrap(); // (T, hs)
    assert_json_close("z", &s["z"], &z);
    // q, k, v and z·W_O of the head (HF's c_attn split into heads, and z times W_O's rows
    // of the head, as TransformerLens's hook_result).
    for (name, hook) in [
        ("q", "attn.hook_q"),
        ("k", "attn.hook_k"),
        ("v", "attn.hook_v"),
        ("result", "attn.hook_result"),
    ] {
        let want = get(hook).narrow(1, head, 1).unwrap().squeeze(1).unwrap(); // (T, ·)
        assert_json_close(name, &s[name], &want);
    }
    // The table names the panels in data-flow order.
    let out = cmd()
        .args([
            "attention",
            prompt,
            "--layer",
            "1",
            "--head",
            "3",
            "--stages",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let at: Vec<usize> = crate::common::STAGE_PANELS
        .iter()
        .map(|p| text.find(p).unwrap_or_else(|| panic!("no {p} in {text}")))
        .collect();
    assert!(at.windows(2).all(|w| w[0] < w[1]), "{text}");
}

/// `lens --all-positions`: at every depth and position the top token and its probability,
/// against HF's own ln_f + lm_head on its hidden states at the positions the fixture holds.
#[test]
fn lens_at_all_positions_matches_hf() {
    let reference = Reference::load();
    for prompt in [0, 2] {
        let text = &reference.prompts[prompt];
        let v = run_json(&["lens", text.as_str(), "--all-positions"]);
        let top = v["top"].as_array().unwrap();
        assert_eq!(top.len(), 4, "depths 0..=3");
        let t = v["tokens"].as_array().unwrap().len();
        let mut checks = vec![("last", t - 1)];
        if prompt == 2 {
            checks.push(("pos1", 1));
        }
        for (name, pos) in checks {
            let hf = reference.get(&format!("p{prompt}.lens_logits_{name}")); // (L+1, V)
            for (depth, row) in top.iter().enumerate() {
                assert_eq!(row.as_array().unwrap().len(), t);
                let logits = flat(&hf.get(depth).unwrap());
                let probs = softmax_f64(&logits);
                let best = (0..logits.len())
                    .max_by(|&a, &b| logits[a].total_cmp(&logits[b]).then(b.cmp(&a)))
                    .unwrap();
                let cell = &row[pos];
                assert_eq!(
                    cell["id"], best,
                    "prompt {prompt} depth {depth} position {pos}"
                );
                let p = cell["prob"].as_f64().unwrap();
                assert!(
                    (p - probs[best]).abs() <= TOL as f64,
                    "{p} vs {}",
                    probs[best]
                );
            }
        }
        // The last depth at the last position is `next`'s top token.
        let next = run_json(&["next", text.as_str(), "-k", "1"]);
        assert_eq!(top[3][t - 1]["id"], next["predictions"][0]["id"]);
    }
    let out = cmd()
        .args(["lens", &reference.prompts[0], "--all-positions"])
        .output()
        .unwrap();
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.contains("3 (after block 2)") && table.contains("logit lens at every position"),
        "{table}"
    );
}

/// Flags asked for are shown: `--scores` and `--qkv` add their tables to the stages and to
/// the neuron view in the terminal, as they do to the pattern (the JSON has them too).
#[test]
fn stages_and_neuron_view_print_the_scores_and_qkv_asked_for() {
    let head = [
        "attention",
        "The cat sat on the mat",
        "--layer",
        "1",
        "--head",
        "3",
    ];
    for (view, extra, needles) in [
        (
            "--stages",
            "--qkv",
            ["q vectors", "k vectors", "v vectors"].as_slice(),
        ),
        (
            "--stages",
            "--scores",
            ["scores QKᵀ/√d_head before softmax"].as_slice(),
        ),
        ("--query", "--qkv", ["q vectors", "v vectors"].as_slice()),
    ] {
        let mut args = head.to_vec();
        args.push(view);
        if view == "--query" {
            args.push("2");
        }
        args.push(extra);
        let out = cmd().args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        for n in needles {
            assert!(text.contains(n), "{args:?}: no {n:?} in\n{text}");
        }
    }
}
