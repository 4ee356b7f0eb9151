//! `generate` against Hugging Face's `model.generate(do_sample=False)`, and the key/value
//! cache against the full forward pass.

use crate::common::{cmd, flat, floats, ids_of, json, max_abs_diff, model_dir, Reference, TOL};
use candle_core::{DType, Device, Tensor};
use gpt2_inspect::load::checkpoint::Checkpoint;
use gpt2_inspect::model::tap::Identity;
use gpt2_inspect::model::{BlockHook, CaptureSpec, Config, Gpt2, Hook, KvCache, Logits, Request};
use gpt2_inspect::tokenizer::Tokenizer;

const GENERATE_PROMPTS: [usize; 2] = [0, 2];

fn hf_generated(reference: &Reference, prompt: usize) -> Vec<u32> {
    reference.u32s(&format!("p{prompt}.generated_ids"))
}

#[test]
fn greedy_equals_hf_generate_with_and_without_cache() {
    let reference = Reference::load();
    let n = reference.generate_new_tokens.to_string();
    for p in GENERATE_PROMPTS {
        let want = hf_generated(&reference, p);
        assert_eq!(want.len(), reference.generate_new_tokens);
        let prompt = reference.prompts[p].as_str();
        for extra in [None, Some("--no-cache")] {
            let mut args = vec!["generate", prompt, "--max-new-tokens", &n];
            args.extend(extra);
            let v = json(&args);
            assert_eq!(ids_of(&v["generated_ids"]), want, "{args:?}");
            assert_eq!(v["stop_reason"], "max_new_tokens");
            assert_eq!(v["sampling"]["method"], "greedy");
            assert_eq!(v["sampling"]["seed"], serde_json::Value::Null);
            assert_eq!(v["input_ids"], serde_json::json!(reference.ids(p)));
            let steps = v["steps"].as_array().unwrap();
            assert_eq!(steps.len(), want.len());
            for s in steps {
                // Greedy: the chosen token is the most likely one.
                assert_eq!(s["id"], s["top"][0]["id"]);
                assert_eq!(s["prob"], s["top"][0]["prob"]);
            }
        }
    }
}

#[test]
fn streamed_text_is_prompt_plus_generated_text() {
    let reference = Reference::load();
    let tokenizer = Tokenizer::from_file(&model_dir().join("tokenizer.json")).unwrap();
    let prompt = &reference.prompts[0];
    let want = tokenizer.decode(&hf_generated(&reference, 0)).unwrap();
    let out = cmd()
        .args(["generate", prompt, "-n", "20"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!("{prompt}{want}\n")
    );

    let out = cmd()
        .args(["generate", prompt, "-n", "3", "--show-probs"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.starts_with("step"), "{table}");
    assert!(table.contains("stopped at max_new_tokens"), "{table}");
    assert_eq!(table.lines().filter(|l| l.starts_with("   ")).count(), 3);
}

fn model() -> (Gpt2, Config) {
    let (cfg, _) = Config::from_file(&model_dir().join("config.json")).unwrap();
    let ckpt = Checkpoint::open(&model_dir().join("model.safetensors")).unwrap();
    let model = Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32).unwrap();
    (model, cfg)
}

/// Feeding the HF continuation one token at a time through the cache gives, at every step,
/// the logits and attention rows of a full forward pass over the whole sequence so far.
#[test]
fn cached_forward_equals_uncached_at_every_step() {
    let reference = Reference::load();
    let (model, cfg) = model();
    let pattern = Hook::Block(cfg.n_layer - 1, BlockHook::Pattern);
    let req = Request {
        capture: CaptureSpec::new([pattern]),
        logits: Logits::Last,
    };
    let input = |ids: &[u32]| {
        Tensor::new(ids, &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap()
    };
    let mut worst = 0f32;
    for p in GENERATE_PROMPTS {
        let mut seq = reference.ids(p);
        let continuation = hf_generated(&reference, p);
        let mut cache = KvCache::new();
        let mut fresh = seq.clone();
        for &next in &continuation {
            let cached = model
                .forward_cached(&input(&fresh), &mut cache, &req)
                .unwrap();
            assert_eq!(cache.len(), seq.len());
            let full = model.forward(&input(&seq), &req).unwrap();
            let d = max_abs_diff(
                &flat(cached.logits.as_ref().unwrap()),
                &flat(full.logits.as_ref().unwrap()),
            );
            assert!(
                d <= TOL,
                "prompt {p}, length {}: logits differ by {d}",
                seq.len()
            );
            worst = worst.max(d);
            // The last query's attention row: (1, nh, Tq, Tk) with Tq = 1 once cached.
            let last_row = |t: &Tensor| {
                let tq = t.dim(2).unwrap();
                flat(&t.narrow(2, tq - 1, 1).unwrap())
            };
            let d = max_abs_diff(
                &last_row(cached.activations.get(pattern).unwrap()),
                &last_row(full.activations.get(pattern).unwrap()),
            );
            assert!(
                d <= TOL,
                "prompt {p}, length {}: attention differs by {d}",
                seq.len()
            );
            // The cached logits of the prompt are HF's.
            if fresh.len() > 1 {
                let want = flat(reference.get(&format!("p{p}.logits_last")));
                let d = max_abs_diff(&flat(cached.logits.as_ref().unwrap()), &want);
                assert!(d <= TOL, "prompt {p}: first step vs HF differs by {d}");
            }
            seq.push(next);
            fresh = vec![next];
        }
    }
    eprintln!("cached vs uncached: max |diff| = {worst}");
}

/// The watched head's attention for the first generated token is HF's last attention row.
#[test]
fn attention_during_generation() {
    let reference = Reference::load();
    let (layer, head) = (1usize, 2usize);
    let v = json(&[
        "generate",
        &reference.prompts[0],
        "-n",
        "4",
        "--attention-layer",
        &layer.to_string(),
        "--attention-head",
        &head.to_string(),
    ]);
    assert_eq!(v["attention_head"], serde_json::json!([layer, head]));
    let t = reference.ids(0).len();
    let steps = v["steps"].as_array().unwrap();
    for (i, s) in steps.iter().enumerate() {
        let w = floats(&s["attention"]);
        assert_eq!(
            w.len(),
            t + i,
            "step {i} attends over every position so far"
        );
        assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-4);
    }
    // attentions (L, nh, T, T): the last query of layer 1, head 2.
    let hf = reference
        .get("p0.attentions")
        .narrow(0, layer, 1)
        .unwrap()
        .narrow(1, head, 1)
        .unwrap()
        .narrow(2, t - 1, 1)
        .unwrap();
    let d = max_abs_diff(&floats(&steps[0]["attention"]), &flat(&hf));
    assert!(d <= TOL, "attention of step 0 vs HF: {d}");
}

#[test]
fn sampling_is_reproducible_and_respects_top_k() {
    let args = [
        "generate",
        "The cat sat on the mat",
        "-n",
        "8",
        "--temperature",
        "0.8",
        "--sample-top-k",
        "10",
        "-k",
        "10",
        "--seed",
        "7",
    ];
    let a = json(&args);
    let b = json(&args);
    assert_eq!(a["generated_ids"], b["generated_ids"]);
    assert_eq!(
        a["sampling"],
        serde_json::json!({"method": "sample", "temperature": 0.8, "top_k": 10, "top_p": null, "seed": 7})
    );
    for s in a["steps"].as_array().unwrap() {
        let top: Vec<u32> = s["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["id"].as_u64().unwrap() as u32)
            .collect();
        assert!(top.contains(&(s["id"].as_u64().unwrap() as u32)));
    }
    let other = json(&[&args[..10], &["--seed", "8"]].concat());
    assert_eq!(other["steps"].as_array().unwrap().len(), 8);
}

#[test]
fn stops_at_n_positions() {
    // "Hello" then " Hello" 1021 times: 1022 tokens; 2 more reach n_positions = 1024.
    let text = format!("Hello{}", " Hello".repeat(1021));
    let v = json(&["generate", &text, "-n", "5"]);
    assert_eq!(v["input_ids"].as_array().unwrap().len(), 1022);
    assert_eq!(v["generated_ids"].as_array().unwrap().len(), 2);
    assert_eq!(v["stop_reason"], "n_positions");
}

#[test]
fn bad_generation_options_are_usage_errors() {
    for (args, needle) in [
        (vec!["--temperature", "-1"], "--temperature"),
        (vec!["--temperature", "inf"], "must be finite"),
        (vec!["--temperature", "NaN"], "must be finite"),
        (vec!["--top-p", "1.5"], "--top-p"),
        (vec!["--top-p", "0"], "--top-p"),
        (
            vec!["--attention-layer", "3", "--attention-head", "0"],
            "layer",
        ),
        (
            vec!["--attention-layer", "0", "--attention-head", "4"],
            "head",
        ),
        (vec!["--attention-layer", "0"], "--attention-head"),
        (vec!["-n", "0"], "max-new-tokens"),
    ] {
        let out = cmd().args(["generate", "Hi"]).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

/// The library's generation loop itself, as a program using the crate calls it.
#[test]
fn library_generation_equals_hf_greedy() {
    use candle_transformers::generation::{LogitsProcessor, Sampling};
    use gpt2_inspect::model::generate::{generate, Settings, Stop};
    let reference = Reference::load();
    let (model, _) = model();
    for p in GENERATE_PROMPTS {
        for cache in [true, false] {
            let settings = Settings {
                max_new_tokens: reference.generate_new_tokens,
                eos: None,
                alternatives: 3,
                watch: Some([1, 2]),
                cache,
            };
            let mut processor = LogitsProcessor::from_sampling(0, Sampling::ArgMax);
            let mut seen = 0;
            let g = generate(
                &model,
                &reference.ids(p),
                &settings,
                &mut processor,
                &mut Identity,
                |_| {
                    seen += 1;
                    Ok(())
                },
            )
            .unwrap();
            assert_eq!(
                g.ids(),
                hf_generated(&reference, p),
                "prompt {p}, cache {cache}"
            );
            assert_eq!(g.stop, Stop::MaxNewTokens);
            assert_eq!(seen, g.steps.len());
            for (i, s) in g.steps.iter().enumerate() {
                assert_eq!(s.top[0].0, s.id, "greedy picks the top token");
                assert_eq!(
                    s.attention.as_ref().unwrap().len(),
                    reference.ids(p).len() + i
                );
            }
        }
    }
}
