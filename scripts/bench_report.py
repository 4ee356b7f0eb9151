"""Turns scripts/bench.sh's measurements into bench/results.md."""

import datetime
import json
import os
import platform
import subprocess
import sys

out = sys.argv[1]


def seconds(name):
    p = os.path.join(out, name + ".json")
    if not os.path.exists(p):
        return None, None
    r = json.load(open(p))["results"][0]
    return r["median"], r["stddev"]


def rss_mib(name):
    p = os.path.join(out, name + ".rss")
    if not os.path.exists(p):
        return None
    return int(open(p).read().split()[-1]) / 1024


def tsv(name):
    p = os.path.join(out, name + ".tsv")
    if not os.path.exists(p):
        return {}
    return {k: float(v) for k, v in (line.split("\t") for line in open(p).read().split("\n") if line)}


def flops(t, logits=1, d=768, layers=12, vocab=50257):
    # 2 per block weight per token, QK^T and attention.V over the full square, output layer.
    return 2 * layers * 12 * d * d * t + 4 * layers * t * t * d + 2 * d * vocab * logits


def fmt_s(s):
    return "–" if s is None else (f"{s * 1e3:.0f} ms" if s < 10 else f"{s:.1f} s")


def ratio(ours, theirs):
    if ours is None or theirs is None:
        return "–"
    return f"{theirs / ours:.1f}× faster" if theirs >= ours else f"{ours / theirs:.1f}× slower"


def verdict(ours, target):
    if ours is None:
        return "–"
    return "met" if ours <= target else f"missed by {ours / target:.1f}×"


cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30

print("# Benchmark results\n")
print(f"- date: {datetime.date.today()}, commit {commit}")
print(f"- machine: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} {platform.release()}")
print("- model: full-size GPT-2 124M with random weights, original layout (bare keys + attn.bias "
      "buffers, 548 MB), written by `examples/make_checkpoint.rs`; real GPT-2 tokenizer")
print("- one-shot rows: hyperfine median of 10 runs after 2 warm-ups (HF: 3 runs after 1), "
      "warm page cache; peak RSS from `/usr/bin/time -f %M`")
print("- Made by `scripts/bench.sh --with-hf`. HF = transformers 5.23 + torch 2.15, eager attention.\n")

print("| work | gpt2-inspect | ± | peak RSS | HF transformers | HF peak RSS | gpt2-inspect vs HF | target | |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
targets = {"next": (0.25, 600), "tokenize": (0.15, None), "attention_1024": (0.5, None),
           "patch_resid_pre_16": (5.0, None)}
labels = {
    "next": '`next "The quick brown fox" --top-k 5` (new process)',
    "tokenize": '`tokenize "Hello, how are you?"` (new process)',
    "attention_1024": "`attention --layer 0 --head 0`, 1024 tokens (new process; HF runs every layer)",
    "patch_resid_pre_16": "`patch --site resid_pre`, 16-token pair: 12 × 16 patched runs (new process; "
                          "HF: a loop of forward passes with a TransformerLens-style hook)",
}
for name, label in labels.items():
    o, sd = seconds("ours_" + name)
    h, _ = seconds("hf_" + name)
    orss, hrss = rss_mib("ours_" + name), rss_mib("hf_" + name)
    t, tm = targets[name]
    target = f"≤ {fmt_s(t)}" + (f", ≤ {tm} MiB" if tm else "")
    v = verdict(o, t)
    if tm and orss is not None and orss > tm:
        v += f"; RSS over by {orss / tm:.1f}×"
    print(f"| {label} | {fmt_s(o)} | {fmt_s(sd)} | {orss and f'{orss:.0f} MiB'} | {fmt_s(h)} | "
          f"{hrss and f'{hrss:.0f} MiB'} | {ratio(o, h)} | {target} | {v} |")

ours, hf, one = tsv("ours_inproc"), tsv("hf_inproc"), tsv("ours_inproc_1thread")
print("\nIn process (model already loaded; median):\n")
print("| work | gpt2-inspect | GFLOP/s | 1 thread | HF transformers | gpt2-inspect vs HF | target | |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
ftargets = {8: 0.06, 128: 0.30, 1024: 2.7}
o, h = ours.get("load"), hf.get("load")
print(f"| load the weights | {fmt_s(o)} | | {fmt_s(one.get('load'))} | {fmt_s(h)} | {ratio(o, h)} | | |")
for t in [1, 8, 32, 128, 512, 1024]:
    k = f"forward_{t}"
    o, h = ours.get(k), hf.get(k)
    gf = "–" if o is None else f"{flops(t) / o / 1e9:.0f}"
    label = f"forward T = {t}, last-position logits" + (", attentions captured" if t == 8 else "")
    tg = ftargets.get(t)
    print(f"| {label} | {fmt_s(o)} | {gf} | {fmt_s(one.get(k))} | {fmt_s(h)} | {ratio(o, h)} | "
          f"{'≤ ' + fmt_s(tg) if tg else ''} | {verdict(o, tg) if tg else ''} |")
for k, label in [("generate_cache", "generate 64 tokens after 8, key/value cache"),
                 ("generate_nocache", "generate 64 tokens after 8, no cache")]:
    o, h = ours.get(k), hf.get(k)
    tps = lambda s: "–" if s is None else f"{64 / s:.1f} tok/s"
    print(f"| {label} | {tps(o)} | | {tps(one.get(k))} | {tps(h)} | {ratio(o, h)} | | |")
