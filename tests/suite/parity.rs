//! The model against Hugging Face's own outputs for the fixture (tests/fixtures, made by
//! scripts/make_fixtures.py): every activation, every layer and head, within 1e-4.

use crate::common::{assert_close, model_dir, Reference};
use candle_core::{DType, Device, Tensor};
use gpt2_inspect::load::checkpoint::{Checkpoint, KeyLayout, Weights};
use gpt2_inspect::model::weights::Weight;
use gpt2_inspect::model::{
    BlockHook, CaptureSpec, Config, Gpt2, Hook, Inputs, Logits, Request, Tap,
};
use gpt2_inspect::tokenizer::Tokenizer;

fn config() -> Config {
    Config::from_file(&model_dir().join("config.json"))
        .unwrap()
        .0
}

fn load(n_blocks: usize) -> Gpt2 {
    load_as(n_blocks, Weights::Mapped)
}

fn load_as(n_blocks: usize, weights: Weights) -> Gpt2 {
    let path = model_dir().join("model.safetensors");
    let ckpt = Checkpoint::open_as(&path, weights).unwrap();
    let model = Gpt2::load(&ckpt, &config(), n_blocks, &Device::Cpu, DType::F32).unwrap();
    // The fixture is aligned f32: the mapped path is the one under test.
    let mapped = matches!(model.wte(), Weight::Mapped(_));
    assert_eq!(mapped, weights == Weights::Mapped, "{weights:?}");
    model
}

fn input(ids: &[u32]) -> Tensor {
    Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

#[test]
fn tokenizer_gives_hf_ids_for_every_prompt() {
    let reference = Reference::load();
    let tok = Tokenizer::from_file(&model_dir().join("tokenizer.json")).unwrap();
    for (i, prompt) in reference.prompts.iter().enumerate() {
        let ids: Vec<u32> = tok.encode(prompt).unwrap().iter().map(|t| t.id).collect();
        assert_eq!(ids, reference.ids(i), "prompt {i} {prompt:?}");
    }
}

/// Both ways the weights reach the kernels: mapped (the default) and copied.
#[test]
fn every_activation_matches_hf() {
    for weights in [Weights::Mapped, Weights::Copied] {
        every_activation_matches_hf_with(weights);
    }
}

fn every_activation_matches_hf_with(weights: Weights) {
    let reference = Reference::load();
    let cfg = config();
    let model = load_as(cfg.n_layer, weights);
    let mut worst = 0f32;
    let mut compared = 0;
    for i in 0..reference.prompts.len() {
        let ids = reference.ids(i);
        let req = Request {
            capture: CaptureSpec::new(Hook::all(&cfg)),
            logits: Logits::All,
        };
        let out = model.forward(&input(&ids), &req).unwrap();
        for (hook, got) in out.activations.iter() {
            assert_eq!(got.dims(), hook.shape(&cfg, 1, ids.len()), "{hook}: shape");
            let key = format!("p{i}.{hook}");
            if let Some(want) = reference.tensors.get(&key) {
                worst = worst.max(assert_close(&key, got, want));
                compared += 1;
            }
        }
        let logits = out.logits.unwrap(); // (1, T, V)
        let t = ids.len();
        let last = logits.narrow(1, t - 1, 1).unwrap().flatten_all().unwrap();
        worst = worst.max(assert_close(
            &format!("p{i}.logits_last"),
            &last,
            reference.get(&format!("p{i}.logits_last")),
        ));
        if let Some(want) = reference.tensors.get(&format!("p{i}.logits")) {
            worst = worst.max(assert_close(&format!("p{i}.logits"), &logits, want));
        }

        // HF's hidden_states: the input of each block, then ln_f of the last block's output.
        let mut hidden: Vec<Tensor> = (0..cfg.n_layer)
            .map(|l| {
                out.activations
                    .get(Hook::Block(l, BlockHook::ResidPre))
                    .unwrap()
                    .squeeze(0)
                    .unwrap()
            })
            .collect();
        hidden.push(
            out.activations
                .get(Hook::LnFinalOut)
                .unwrap()
                .squeeze(0)
                .unwrap(),
        );
        let hidden = Tensor::stack(&hidden, 0).unwrap();
        worst = worst.max(assert_close(
            &format!("p{i}.hidden_states"),
            &hidden,
            reference.get(&format!("p{i}.hidden_states")),
        ));

        // HF's output_attentions, every layer and head.
        let patterns: Vec<Tensor> = (0..cfg.n_layer)
            .map(|l| {
                out.activations
                    .get(Hook::Block(l, BlockHook::Pattern))
                    .unwrap()
                    .squeeze(0)
                    .unwrap()
            })
            .collect();
        let patterns = Tensor::stack(&patterns, 0).unwrap();
        worst = worst.max(assert_close(
            &format!("p{i}.attentions"),
            &patterns,
            reference.get(&format!("p{i}.attentions")),
        ));
    }
    // Every hook of every prompt; the reference holds full logits for prompt 0 only.
    assert_eq!(
        compared,
        reference.prompts.len() * (Hook::all(&cfg).len() - 1) + 1
    );
    eprintln!("largest difference from HF over all activations ({weights:?}): {worst:e}");
}

#[test]
fn future_positions_get_exactly_zero_attention() {
    let reference = Reference::load();
    let cfg = config();
    let model = load(cfg.n_layer);
    let ids = reference.ids(3);
    let req = Request {
        capture: CaptureSpec::new((0..cfg.n_layer).map(|l| Hook::Block(l, BlockHook::Pattern))),
        logits: Logits::None,
    };
    let out = model.forward(&input(&ids), &req).unwrap();
    for l in 0..cfg.n_layer {
        let p = out
            .activations
            .get(Hook::Block(l, BlockHook::Pattern))
            .unwrap();
        let maps = p.squeeze(0).unwrap().to_vec3::<f32>().unwrap();
        for (h, map) in maps.iter().enumerate() {
            for (q, row) in map.iter().enumerate() {
                assert!(
                    row[q + 1..].iter().all(|&w| w == 0.0),
                    "layer {l} head {h} row {q}"
                );
                let sum: f32 = row.iter().sum();
                assert!(
                    (sum - 1.0).abs() < 1e-5,
                    "layer {l} head {h} row {q} sums to {sum}"
                );
            }
        }
    }
}

#[test]
fn early_layer_question_loads_and_runs_only_that_far() {
    let reference = Reference::load();
    let model = load(1);
    let ids = reference.ids(2);
    let req = Request {
        capture: CaptureSpec::new([Hook::Block(0, BlockHook::Pattern)]).with_heads(Some(vec![2])),
        logits: Logits::None,
    };
    let out = model.forward(&input(&ids), &req).unwrap();
    assert!(out.logits.is_none());
    let got = out
        .activations
        .get(Hook::Block(0, BlockHook::Pattern))
        .unwrap(); // (1, 1, T, T)
    let want = reference
        .get("p2.attentions")
        .get(0)
        .unwrap()
        .narrow(0, 2, 1)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    assert_close("layer 0 head 2", got, &want);

    // Asking a one-block model for logits is refused rather than silently wrong.
    let req = Request {
        capture: CaptureSpec::default(),
        logits: Logits::Last,
    };
    assert!(model.forward(&input(&ids), &req).is_err());
}

/// The original GPT-2 repositories store bare keys (`h.0.attn.c_attn.weight`) and the
/// causal-mask buffers `h.N.attn.bias` / `h.N.attn.masked_bias`.
#[test]
fn bare_key_layout_with_buffers_loads_and_matches() {
    let reference = Reference::load();
    let cfg = config();
    let src = std::fs::read(model_dir().join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&src).unwrap();
    let mut tensors: Vec<(String, Tensor)> = st
        .iter()
        .map(|(name, view)| {
            let t = candle_core::safetensors::Load::load(&view, &Device::Cpu).unwrap();
            (name.trim_start_matches("transformer.").to_string(), t)
        })
        .collect();
    let n = cfg.n_positions;
    let causal: Vec<f32> = (0..n * n)
        .map(|k| if k % n <= k / n { 1.0 } else { 0.0 })
        .collect();
    let causal = Tensor::from_vec(causal, (1, 1, n, n), &Device::Cpu).unwrap();
    for l in 0..cfg.n_layer {
        tensors.push((format!("h.{l}.attn.bias"), causal.clone()));
        tensors.push((
            format!("h.{l}.attn.masked_bias"),
            Tensor::new(-1e4f32, &Device::Cpu).unwrap(),
        ));
    }
    let dir = tempdir();
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors.into_iter().collect(), &path).unwrap();

    let ckpt = Checkpoint::open(&path).unwrap();
    assert_eq!(ckpt.layout(), KeyLayout::Bare);
    let model = Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32).unwrap();
    assert_last_logits_match("bare layout", &model, &reference);
    std::fs::remove_dir_all(dir).unwrap();
}

/// Prompt 1's last-position logits against HF's.
fn assert_last_logits_match(what: &str, model: &Gpt2, reference: &Reference) {
    let req = Request {
        capture: CaptureSpec::default(),
        logits: Logits::Last,
    };
    let logits = model
        .forward(&input(&reference.ids(1)), &req)
        .unwrap()
        .logits
        .unwrap();
    assert_close(
        &format!("{what}: logits"),
        &logits.flatten_all().unwrap(),
        reference.get("p1.logits_last"),
    );
}

/// safetensors does not promise aligned data: a header whose length leaves the data at an
/// odd address is read by copying, and computes the same numbers.
#[test]
fn misaligned_data_is_copied_and_matches() {
    let reference = Reference::load();
    let cfg = config();
    let src = std::fs::read(model_dir().join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(src[..8].try_into().unwrap()) as usize;
    let mut header = src[8..8 + n].to_vec();
    while (8 + header.len()) % 4 != 2 {
        header.push(b' '); // JSON allows trailing spaces; safetensors pads with them
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(&header);
    bytes.extend_from_slice(&src[8 + n..]);
    let dir = tempdir();
    let path = dir.join("model.safetensors");
    std::fs::write(&path, bytes).unwrap();

    let ckpt = Checkpoint::open_as(&path, Weights::Mapped).unwrap();
    let model = Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32).unwrap();
    assert!(
        matches!(model.wte(), Weight::Tensor(_)),
        "misaligned data is copied"
    );
    assert_last_logits_match("misaligned checkpoint", &model, &reference);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_weight_whose_shape_disagrees_with_the_config_is_named() {
    let mut cfg = config();
    cfg.n_embd = 64;
    let ckpt = Checkpoint::open(&model_dir().join("model.safetensors")).unwrap();
    let err = Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32)
        .err()
        .unwrap();
    let msg = format!("{err:#}");
    assert!(msg.contains("transformer.wte.weight"), "{msg}");
    assert!(
        msg.contains("[50257, 32]") && msg.contains("[50257, 64]"),
        "{msg}"
    );
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "gpt2-inspect-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The residual stream is a sum: resid_mid = resid_pre + attn_out and
/// resid_post = resid_mid + mlp_out, and each block's output is the next one's input.
#[test]
fn residual_stream_algebra() {
    let reference = Reference::load();
    let cfg = config();
    let model = load(cfg.n_layer);
    let ids = reference.ids(3);
    let req = Request {
        capture: CaptureSpec::new(Hook::all(&cfg)),
        logits: Logits::None,
    };
    let acts = model.forward(&input(&ids), &req).unwrap().activations;
    let get = |l, h| acts.get(Hook::Block(l, h)).unwrap().clone();
    for l in 0..cfg.n_layer {
        let mid = (get(l, BlockHook::ResidPre) + get(l, BlockHook::AttnOut)).unwrap();
        assert_close(
            &format!("blocks.{l} resid_mid"),
            &get(l, BlockHook::ResidMid),
            &mid,
        );
        let post = (get(l, BlockHook::ResidMid) + get(l, BlockHook::MlpOut)).unwrap();
        assert_close(
            &format!("blocks.{l} resid_post"),
            &get(l, BlockHook::ResidPost),
            &post,
        );
        if l + 1 < cfg.n_layer {
            assert_close(
                &format!("blocks.{l} → {}", l + 1),
                &get(l + 1, BlockHook::ResidPre),
                &get(l, BlockHook::ResidPost),
            );
        }
    }
    let emb = (acts
        .get(Hook::Embed)
        .unwrap()
        .broadcast_add(acts.get(Hook::PosEmbed).unwrap()))
    .unwrap();
    assert_close("embed + pos_embed", &get(0, BlockHook::ResidPre), &emb);
}

/// Replaces the activation at one hook with a tensor given in advance.
struct Replace(Hook, Tensor);

impl Tap for Replace {
    fn wants(&self, hook: Hook) -> bool {
        hook == self.0
    }

    fn tap(&mut self, hook: Hook, x: Tensor) -> anyhow::Result<Tensor> {
        Ok(if hook == self.0 { self.1.clone() } else { x })
    }
}

/// Every hook replaced by a copy of itself (a new tensor, same values).
struct CopyAll;

impl Tap for CopyAll {
    fn wants(&self, _: Hook) -> bool {
        true
    }

    fn tap(&mut self, _: Hook, x: Tensor) -> anyhow::Result<Tensor> {
        Ok(x.copy()?)
    }
}

#[test]
fn taps_replace_activations_on_the_recording_path() {
    // Prompts 1 and 2 have 6 tokens each. Running prompt 2 with an activation replaced by
    // HF's value for prompt 1 from that point on must give HF's logits for prompt 1: the
    // rest of the pass depends on nothing else (resid_pre at every position carries it all).
    let reference = Reference::load();
    let cfg = config();
    let model = load(cfg.n_layer);
    let (a, b) = (1, 2);
    assert_eq!(reference.ids(a).len(), reference.ids(b).len());
    let req = Request {
        capture: CaptureSpec::default(),
        logits: Logits::Last,
    };
    let ids = input(&reference.ids(b));
    let last = |p: usize| {
        let want = reference.get(&format!("p{p}.logits_last"));
        move |what: &str, got: &Tensor| {
            let got = got.flatten_all().unwrap();
            assert_close(what, &got, &want.flatten_all().unwrap())
        }
    };
    for hook in [
        Hook::Embed,
        Hook::Block(1, BlockHook::ResidPre),
        Hook::Block(2, BlockHook::ResidMid),
    ] {
        let theirs = reference.get(&format!("p{a}.{hook}")).clone();
        let mut tap = Replace(hook, theirs);
        let logits = model
            .run(Inputs::new(&ids), &req, &mut tap)
            .unwrap()
            .unwrap();
        last(a)(&format!("p{b} with p{a}'s {hook}"), &logits);
    }
    // Unpatched, prompt 2 is prompt 2 (the test can tell them apart).
    let plain = model
        .run(Inputs::new(&ids), &req, &mut CopyAll)
        .unwrap()
        .unwrap();
    last(b)("p2 with every hook copied", &plain);
}
