//! Arbitrary bytes through everything a user's text goes through: UTF-8 decoding as for
//! `--file` and standard input, tokenization, and a forward pass of the fixture model with
//! every activation recorded. Nothing may panic, and the invariants below must hold.
//!
//! Run from the repository root (see README): `RUSTC_BOOTSTRAP=1 cargo fuzz run text_to_logits
//! --sanitizer none --release -- -max_total_time=600`.
#![no_main]

use std::sync::OnceLock;

use candle_core::{DType, Device, Tensor};
use gpt2_inspect::input::text_from_bytes;
use gpt2_inspect::load::checkpoint::Checkpoint;
use gpt2_inspect::model::{CaptureSpec, Config, Gpt2, Hook, Logits, Request};
use gpt2_inspect::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;

/// Keeps each run fast; longer inputs only repeat what shorter ones exercise.
const MAX_TOKENS: usize = 48;

struct Fixture {
    tokenizer: Tokenizer,
    model: Gpt2,
    cfg: Config,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny-gpt2");
        let (cfg, _) = Config::from_file(&dir.join("config.json")).unwrap();
        let ckpt = Checkpoint::open(&dir.join("model.safetensors")).unwrap();
        Fixture {
            tokenizer: Tokenizer::from_file(&dir.join("tokenizer.json")).unwrap(),
            model: Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32).unwrap(),
            cfg,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    // Invalid UTF-8 must be an error, never a panic.
    let Ok(text) = text_from_bytes(data.to_vec(), "fuzz input") else {
        return;
    };
    let tokens = f.tokenizer.encode(&text).expect("any UTF-8 text tokenizes");
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    assert_eq!(
        f.tokenizer.decode(&ids).unwrap(),
        text,
        "decode(encode(s)) == s"
    );
    let mut at = 0;
    for t in &tokens {
        assert_eq!(t.start, at, "byte spans tile the text");
        at = t.end;
    }
    assert_eq!(at, text.len());
    if ids.is_empty() {
        return;
    }
    let ids = &ids[..ids.len().min(MAX_TOKENS)];
    let input = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let req = Request {
        capture: CaptureSpec::new(Hook::all(&f.cfg).into_iter().filter(|h| *h != Hook::Logits)),
        logits: Logits::Last,
    };
    let out = f.model.forward(&input, &req).unwrap();
    let logits: Vec<f32> = out
        .logits
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert!(logits.iter().all(|l| l.is_finite()), "finite logits");
    for (hook, t) in out.activations.iter() {
        assert_eq!(
            t.dims(),
            hook.shape(&f.cfg, 1, ids.len()).as_slice(),
            "{hook}"
        );
    }
});
