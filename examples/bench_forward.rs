//! In-process timings on a GPT-2-sized checkpoint: loading, forward passes at several
//! lengths, and generation with and without the key/value cache. Prints `key<TAB>seconds`
//! lines, the same keys scripts/bench_hf.py prints; scripts/bench.sh runs both.
//!
//! cargo run --release --example bench_forward -- DIR [ITEM]
//!
//! With ITEM (`forward_8`, `generate_cache`, ...) it times that item alone, as scripts/bench.sh
//! does under `perf record` to say where the time goes.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device, Tensor};
use gpt2_inspect::load::checkpoint::Checkpoint;
use gpt2_inspect::model::{BlockHook, CaptureSpec, Config, Gpt2, Hook, KvCache, Logits, Request};

gpt2_inspect::allocator!();

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time<F: FnMut() -> Result<()>>(runs: usize, mut f: F) -> Result<f64> {
    f()?; // warm-up
    let mut v = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        v.push(start.elapsed().as_secs_f64());
    }
    Ok(median(v))
}

fn main() -> Result<()> {
    // As the tool runs its commands: the thread count counted once, on a worker of rayon's
    // pool.
    gpt2_inspect::threads::count_once();
    gpt2_inspect::threads::on_the_pool(bench)
}

fn bench() -> Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .context("usage: bench_forward DIR")?,
    );
    let only = std::env::args().nth(2);
    let wanted = |item: &str| only.as_deref().is_none_or(|o| o == item);
    let (cfg, _) = Config::from_file(&dir.join("config.json"))?;
    let start = Instant::now();
    let ckpt = Checkpoint::open(&dir.join("model.safetensors"))?;
    let model = Gpt2::load(&ckpt, &cfg, cfg.n_layer, &Device::Cpu, DType::F32)?;
    drop(ckpt);
    println!("load\t{:.6}", start.elapsed().as_secs_f64());

    let ids = |t: usize| -> Result<Tensor> {
        let v: Vec<u32> = (0..t as u32).map(|i| (i * 7919) % 50000).collect();
        Ok(Tensor::new(v, &Device::Cpu)?.unsqueeze(0)?)
    };
    let attentions = CaptureSpec::new((0..cfg.n_layer).map(|l| Hook::Block(l, BlockHook::Pattern)));
    for (t, capture) in [
        (1, CaptureSpec::default()),
        (8, attentions.clone()),
        (32, CaptureSpec::default()),
        (128, CaptureSpec::default()),
        (512, CaptureSpec::default()),
        (1024, CaptureSpec::default()),
    ] {
        if !wanted(&format!("forward_{t}")) {
            continue;
        }
        let input = ids(t)?;
        let req = Request {
            capture,
            logits: Logits::Last,
        };
        let runs = match (&only, t) {
            (Some(_), _) => 100, // under perf record: the forward passes outweigh the load
            (None, 512..) => 3,
            _ => 10,
        };
        let s = time(runs, || {
            model.forward(&input, &req)?;
            Ok(())
        })?;
        println!("forward_{t}\t{s:.6}");
    }

    // Generation: 64 tokens after an 8-token prompt, greedy.
    let new_tokens = 64;
    let req = Request {
        capture: CaptureSpec::default(),
        logits: Logits::Last,
    };
    let prompt: Vec<u32> = (0..8u32).map(|i| (i * 7919) % 50000).collect();
    let next = |logits: Tensor| -> Result<u32> {
        Ok(logits.flatten_all()?.argmax(0)?.to_scalar::<u32>()?)
    };
    if !wanted("generate_cache") {
        return Ok(());
    }
    let cached = time(2, || {
        let mut cache = KvCache::new();
        let mut fresh = prompt.clone();
        for _ in 0..new_tokens {
            let input = Tensor::new(fresh.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
            let out = model.forward_cached(&input, &mut cache, &req)?;
            fresh = vec![next(out.logits.unwrap())?];
        }
        Ok(())
    })?;
    println!("generate_cache\t{cached:.6}");
    if only.is_some() {
        return Ok(());
    }
    let uncached = time(1, || {
        let mut seq = prompt.clone();
        for _ in 0..new_tokens {
            let input = Tensor::new(seq.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
            let out = model.forward(&input, &req)?;
            seq.push(next(out.logits.unwrap())?);
        }
        Ok(())
    })?;
    println!("generate_nocache\t{uncached:.6}");
    Ok(())
}
