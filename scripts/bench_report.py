"""Turns scripts/bench.sh's measurements into bench/results.md."""

import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys

out = sys.argv[1]
# "circuits", "features", "corpus", "serve", "lenses" or "graphs": print only that section (scripts/bench.sh --only-…).
only = sys.argv[2] if len(sys.argv) > 2 else None


def seconds(name):
    p = os.path.join(out, name + ".json")
    if not os.path.exists(p):
        return None, None
    r = json.load(open(p))["results"][0]
    return r["median"], r["stddev"]


def spread(name):
    p = os.path.join(out, name + ".json")
    if not os.path.exists(p):
        return None
    t = json.load(open(p))["results"][0]["times"]
    return max(t) / min(t)


def llama_inproc(name="llama_inproc"):
    """llama-bench's medians: {"forward_T": s, "generate_cache": s for 64 tokens}."""
    p = os.path.join(out, name + ".json")
    if not os.path.exists(p):
        return {}
    got = {}
    for r in json.load(open(p)):
        med = sorted(r["samples_ns"])[len(r["samples_ns"]) // 2] / 1e9
        if r["n_gen"] == 0:
            got[f"forward_{r['n_prompt']}"] = med
        else:
            got["generate_cache"] = med
    return got


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


def mib(x):
    return "–" if x is None else f"{x:.0f} MiB"


def flops(t, logits=1, d=768, layers=12, vocab=50257):
    # 2 per block weight per token, QK^T and attention.V over the full square, output layer.
    return 2 * layers * 12 * d * d * t + 4 * layers * t * t * d + 2 * d * vocab * logits


def fmt_s(s):
    return "–" if s is None else (f"{s * 1e3:.0f} ms" if s < 10 else f"{s:.1f} s")


def ratio(ours, theirs):
    if ours is None or theirs is None:
        return "–"
    return f"{theirs / ours:.1f}× faster" if theirs >= ours else f"{ours / theirs:.1f}× slower"


def vs(ours, theirs):
    """ours / theirs as "0.85×" (time ratio; below 1 is faster)."""
    return "–" if ours is None or theirs is None else f"{ours / theirs:.2f}×"


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
load = open(os.path.join(out, "load")).read().split()[:3] if os.path.exists(os.path.join(out, "load")) else ["?"] * 3
with_hf = os.path.exists(os.path.join(out, "hf.flags"))
with_llama = os.path.exists(os.path.join(out, "llama.flags"))
made = "scripts/bench.sh" + (" --with-hf" if with_hf else "") + (" --with-llama" if with_llama else "")

def circuits_section():
    base, _ = seconds("ours_patch_head_16")
    print(f"Circuits as edges (new processes, hyperfine after 1 warm-up; median; commit {commit}, "
          f"{datetime.date.today()}, {os.cpu_count()} cores ({cpu}); made by `scripts/bench.sh --only-circuits` "
          "or with the full run). The 16-token pair is the patch rows'; gpt2 has 32,491 edges.\n")
    print("| work | gpt2-inspect | runs | peak RSS | vs `patch --site head` | target | |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    # A target is a time ratio to `patch --site head`, or (a string) a peak RSS in MiB.
    rows = [
        ("patch_head_16", "`patch --site head` (12 × 12 patched runs)", None),
        ("circuit_16", "`circuit`: every edge scored (EAP)", 4.0),
        ("path_16", "`patch --path 0.0 --to q`: the sender's edges to all 132 later heads", 2.0),
        ("path_logits_16", "`patch --path 0.0 --to logits`: the direct effect", None),
        ("circuit_ig5_16", "`circuit --ig-steps 5 --faithfulness 10,100,1000`", None),
        ("circuit_ig40_16", "`circuit --ig-steps 40` (EAP-IG, the steps in passes of about 512 MB)", "1907"),
        ("pattern_dest_src_8", "`patch --site pattern-dest-src`, 8-token pair: 12 × 12 × 36 patched runs", None),
    ]
    for name, label, target in rows:
        o, _ = seconds("ours_" + name)
        p = os.path.join(out, "ours_" + name + ".json")
        n = len(json.load(open(p))["results"][0]["times"]) if os.path.exists(p) else 0
        rss = rss_mib("ours_" + name)
        r = "–" if o is None or base is None or name == "patch_head_16" else f"{o / base:.2f}×"
        if isinstance(target, str):
            t = "peak RSS ≤ 2 GB (1907 MiB)"
            v = "" if rss is None else ("met" if rss <= float(target) else "missed")
        else:
            t = "" if target is None else f"≤ {target:g}× `patch --site head`"
            v = "" if target is None or o is None or base is None else ("met" if o / base <= target else "missed")
        print(f"| {label} | {fmt_s(o)} | {n} | {mib(rss)} | {r} | {t} | {v} |")


def features_flops(t, d=768, layers=12, hook_block=8, vocab=50257, d_sae=24576):
    """What `features` must compute on t tokens: the blocks before the SAE's hook once, the
    blocks after it twice (clean and spliced), every position's logits twice (the losses and
    the KL), and the SAE's encoder and decoder."""
    blocks = hook_block + 2 * (layers - hook_block)
    return (2 * 12 * d * d * t + 4 * t * t * d) * blocks + 2 * 2 * d * vocab * t + 2 * 2 * d * d_sae * t


def corpus_time(name):
    p = os.path.join(out, name + ".time")
    if not os.path.exists(p):
        return None, None
    t, rss = open(p).read().split()[-2:]
    return float(t), int(rss) / 1024


def features_section():
    f, _ = seconds("ours_features_128")
    n, _ = seconds("ours_features_next_128")
    floor = features_flops(128) / flops(128)
    print(f"SAE features (new processes; commit {commit}, {datetime.date.today()}, {os.cpu_count()} cores ({cpu}); "
          "made by `scripts/bench.sh --only-features` or with the full run). A random standard SAE of 24,576 "
          "features at `blocks.8.hook_resid_pre` (`make_checkpoint --sae`). `features` and `next` alternate run by "
          "run, median of 10 after 2 warm-ups; the corpus rows are one run each of `feature 0,1,2 --file F --lines` "
          "and `score --file F --lines --jsonl` on the same file (the `--lines` files above).\n")
    print(f"`features` computes {features_flops(128) / 1e9:.1f} GFLOP on 128 tokens where `next` computes "
          f"{flops(128) / 1e9:.1f} ({floor:.2f}×): the four blocks after the hook twice, every position's logits "
          "for the clean and the spliced run (the losses and the KL need all 50,257 at every position), and the "
          "SAE's 768 × 24,576 encoder and decoder.\n")
    print("| work | gpt2-inspect | peak RSS | compared with | its time | ratio | target | |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    if f is not None and n is not None:
        verdict = "met" if f / n <= 1.5 else f"missed: {f / n:.2f}× (FLOP floor {floor:.2f}×)"
        print(f"| `features` on a 128-token text | {fmt_s(f)} | {mib(rss_mib('ours_features_128'))} | `next` on it | "
              f"{fmt_s(n)} | {f / n:.2f}× its time | ≤ 1.5× `next` | {verdict} |")
    for k in (1000, 10000):
        ft, frss = corpus_time(f"feature_corpus_{k}")
        st, srss = corpus_time(f"score_corpus_{k}")
        if ft is None or st is None:
            continue
        target, v = ("≥ 0.8× `score`'s throughput", "met" if st / ft >= 0.8 else f"missed: {st / ft:.2f}×") if k == 10000 else ("", "")
        print(f"| `feature 0,1,2` over {k:,} lines | {fmt_s(ft)} | {mib(frss)} | `score` on them ({mib(srss)}) | "
              f"{fmt_s(st)} | {st / ft:.2f}× its throughput | {target} | {v} |")
    if f is not None and n is not None and f / n > 1.5:
        print(f"\nWhy the 1.5× target is missed: the issue's own outputs need {floor:.2f}× `next`'s arithmetic. "
              "The cross-entropy (clean and spliced) and the KL at every position need all 50,257 logits at every "
              "position, twice, where `next` computes the last position's; no order of work avoids that, and "
              "lower precision would break the 1e-4 parity. Measured against that floor, `features` runs at "
              f"{floor / (f / n):.2f} of `next`'s speed per FLOP.")
    a, b = corpus_time("feature_corpus_1000"), corpus_time("feature_corpus_10000")
    if a[1] is not None and b[1] is not None:
        print(f"\nThe corpus pass's peak RSS: {a[1]:.0f} MiB over 1,000 lines, {b[1]:.0f} MiB over 10,000 "
              f"({b[1] / a[1]:.2f}×).")


PROSE_LINES = 519


def prose_flops():
    """(tokens, FLOPs of `score`, FLOPs of `next`) over the prose corpus, or None: every
    position's logits (score) or the last one's (next), per text of the mean length."""
    p = os.path.join(out, "prose.tokens")
    if not os.path.exists(p):
        return None
    tokens = int(open(p).read())
    mean = tokens / PROSE_LINES
    return tokens, PROSE_LINES * flops(mean, logits=mean), PROSE_LINES * flops(mean)


def corpus_section():
    got = prose_flops()
    if got is None:
        return
    tokens, f_score, f_next = got
    lines = PROSE_LINES
    print(f"A corpus of prose (new processes; commit {commit}, {datetime.date.today()}, {os.cpu_count()} cores "
          f"({cpu}); made by `scripts/bench.sh --only-corpus` or with the full run): {lines} lines of 16 to 22 words "
          f"cut from the license texts in /usr/share/common-licenses, {tokens:,} tokens. `score` and Hugging Face "
          "(batches of 16 sorted by length, right-padded, every token's log-probability and the top guess, load "
          "included) alternate run by run, median of 3 after 1; `next` is hyperfine's median of 3. GFLOP/s "
          f"effective counts {f_score / 1e9:,.0f} GFLOP for `score` (the blocks and every position's logits, "
          f"{f_score / tokens / 1e6:.0f} MFLOP a token) and {f_next / 1e9:,.0f} for `next`.\n")
    print("| work | gpt2-inspect | GFLOP/s | peak RSS | HF transformers | HF peak RSS | HF / gpt2-inspect | targets | |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    limit = round((498e6 + 300e6) / 2**20)
    for name, label, f in [("score", "`score --file F --lines --jsonl`", f_score),
                           ("next", "`next --file F --lines --jsonl`", f_next)]:
        o, _ = seconds(f"ours_corpus_{name}")
        h, _ = seconds(f"hf_corpus_{name}")
        if o is None:
            continue
        rss, hrss = rss_mib(f"ours_corpus_{name}"), rss_mib(f"hf_corpus_{name}")
        gf = f / o / 1e9
        speedup = None if h is None else h / o
        targets, verdicts = "", ""
        if name == "score":
            targets = f"≥ 2.5× faster than HF; ≥ 200 GFLOP/s; peak ≤ weights + 300 MB ({limit} MiB)"
            verdicts = "; ".join([
                "–" if speedup is None else ("met" if speedup >= 2.5 else f"missed: {speedup:.2f}×"),
                "met" if gf >= 200 else f"missed: {gf:.0f}",
                "–" if rss is None else ("met" if rss <= limit else f"missed: {rss:.0f} MiB"),
            ])
        print(f"| {label} | {fmt_s(o)} | {gf:.0f} | {mib(rss)} | {fmt_s(h)} | {mib(hrss)} | "
              f"{'–' if speedup is None else f'{speedup:.2f}×'} | {targets} | {verdicts} |")
    print("\nWhere `score`'s time goes, and why the two targets it misses are out of reach of this "
          "round's work: the profile and the explanation after the `--dtype` section. Hugging Face's own "
          "time varies by up to a quarter from one run of this section to the next.")


def dtypes_section():
    rows = [("next", '`next "The quick brown fox"` (4 tokens)'), ("next_128", "`next` on a 128-token prompt"),
            ("generate_64", '`generate "The quick brown fox" -n 64 --ignore-eos`'),
            ("score_100", "`score --file F --lines --jsonl`, the first 100 lines of the prose corpus")]
    if seconds("dtype_f32_next")[0] is None:
        return
    print(f"`--dtype` on the CPU (new processes; commit {commit}, {datetime.date.today()}, {os.cpu_count()} cores "
          f"({cpu}); made by `scripts/bench.sh --only-dtypes` or with the full run). The three alternate run "
          "by run; median of 5 after 1 (the corpus: of 3). The checkpoint holds f32: f16 and bf16 convert the "
          "weights at load.\n")
    print("| work | f32 | f16 | bf16 | f16 / f32 | bf16 / f32 |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, label in rows:
        a, b, c = (seconds(f"dtype_{d}_{name}")[0] for d in ("f32", "f16", "bf16"))
        print(f"| {label} | {fmt_s(a)} | {fmt_s(b)} | {fmt_s(c)} | {vs(b, a)} | {vs(c, a)} |")
    slower = [d for d in ("f16", "bf16") if all(
        (seconds(f"dtype_{d}_{n}")[0] or 0) > (seconds(f"dtype_f32_{n}")[0] or 1e9) for n, _ in rows)]
    said = {2: "Both half-precision types are slower than f32 here, in every row",
            1: f"{' and '.join(slower)} is slower than f32 here in every row",
            0: "Neither half-precision type is slower than f32 in every row here"}[len(slower)]
    gen = [seconds(f"dtype_{d}_generate_64")[0] for d in ("f32", "f16")]
    exception = ""
    if None not in gen and gen[1] < gen[0]:
        exception = (" The exception is f16 generation: a generated token is bound by reading the weights "
                     "(below), and f16 reads half as many bytes.")
    print(f"\n{said}.{exception} f32 multiplies straight from the mapped file. f16 and bf16 first convert "
          "all 124M weights into fresh memory at load (the kernel zeroing those pages, `clear_page_erms`, is "
          "13 % of a bf16 generation's samples); their products then compute as torch's `addmm` does "
          "(`src/model/kernels/half.rs`: the weight kept in half precision, widened a panel of columns at a "
          "time, summed by gemm's f32 kernels, the bias added in f32, rounded once), and GELU rounds after "
          "each of `NewGELUActivation`'s operations as torch does, in scalar code. In a bf16 generation about "
          "half of the samples are that widening (a shift, in AVX-512), stalled on loads: a panel reads each "
          "weight row's few hundred bytes and jumps to the next row, which the prefetcher does not follow, so "
          "the weights stream at about 8 GB/s where f32's products read them at about 23; a panel-major copy "
          "of the weights made at load, when they are converted anyway, would read them in order. What would make them faster: a checkpoint "
          "stored in f16 or bf16, mapped without conversion; products that widen in registers while streaming "
          "the weight (few rows) or on this CPU's AVX-512 BF16 dot product (`vdpbf16ps`, which gemm 0.19 "
          "does not use; llama.cpp's bf16 runs 1.7 to 2.1× its f32 here); vectorized element-wise ops. "
          "Rounding the weights to either type moves the logits by far more than the 1e-4 parity with HF's "
          "f32, so f32 stays the default; in half precision the logits are HF's own run's in that dtype "
          "(tests/suite/dtypes.rs).")


def inproc_pairs():
    """{(item, threads): (ours, llama)} from bench_inproc_pair.py's medians."""
    p = os.path.join(out, "inproc_pairs.tsv")
    if not os.path.exists(p):
        return {}
    rows = (line.split("\t") for line in open(p).read().split("\n") if line)
    return {(item, int(t)): (float(a), float(b)) for item, t, a, b in rows}


def pairs_table():
    pairs = inproc_pairs()
    if not pairs:
        return
    print("\nThe rows with targets against llama.cpp, again side by side: `bench_forward ITEM` and "
          "`llama-bench` alternating round by round, 5 rounds, medians (llama-bench generates from an "
          "empty context, gpt2-inspect after an 8-token prompt):\n")
    print("| work | threads | gpt2-inspect | llama.cpp | gpt2-inspect / llama.cpp | target | |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    labels = {"forward_8": "forward T = 8 (attentions captured)", "forward_32": "forward T = 32",
              "generate_cache": "generate 64 tokens, key/value cache"}
    for (item, threads), (o, l) in sorted(pairs.items(), key=lambda kv: (-kv[0][1], kv[0][0])):
        gen = item == "generate_cache"
        shown = (lambda s: f"{64 / s:.1f} tok/s") if gen else fmt_s
        target, v = "", ""
        if threads > 1:
            target = "≥ llama.cpp's tokens/s" if gen else "≤ 1.0× llama.cpp"
            v = "met" if o <= l else f"missed: {o / l:.2f}× its time (profile below)"
        print(f"| {labels[item]} | {threads} | {shown(o)} | {shown(l)} | {o / l:.2f}× | {target} | {v} |")


def perf_stat(name):
    """(CPUs utilized, context switches) from perf stat's text output."""
    p = os.path.join(out, name + ".perfstat")
    if not os.path.exists(p):
        return None
    text = open(p).read()
    cpus = re.search(r"([0-9.]+) CPUs utilized", text)
    switches = re.search(r"([0-9,]+)\s+context-switches", text)
    clock = re.search(r"([0-9.,]+) msec task-clock", text)
    return (float(cpus.group(1)) if cpus else None,
            int(switches.group(1).replace(",", "")) if switches else None,
            float(clock.group(1).replace(",", "")) / 1e3 if clock else None)


PROFILES = [
    ("generate_cache", "generation in process (`bench_forward generate_cache`: 64 tokens after 8, twice)"),
    ("forward_8", "in-process forward at T = 8 (`bench_forward forward_8`: 100 passes)"),
    ("forward_32", "in-process forward at T = 32 (`bench_forward forward_32`: 100 passes)"),
    ("score_prose", "`score` on the prose corpus (519 lines)"),
    ("f16_next_128", "`--dtype f16 next` on 128 tokens"),
    ("bf16_next_128", "`--dtype bf16 next` on 128 tokens"),
]


def profile(name):
    """[(percent, dso, symbol)] from perf report's --sort dso,symbol lines."""
    p = os.path.join(out, f"profile_{name}.txt")
    if not os.path.exists(p):
        return []
    rows = []
    for line in open(p):
        m = re.match(r"\s*([0-9.]+)%\s+(\S+)\s+\[[.k]\]\s+(\S.*?)(\s{2,}.*)?$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2), m.group(3)))
    return rows


def profiles_section():
    ours, llama = perf_stat("perfstat_ours_generate_64"), perf_stat("perfstat_llama_generate_64")
    if ours is None and not any(profile(n) for n, _ in PROFILES):
        return
    print("Where the time goes (`perf`, made by the full run when perf is installed).\n")
    if ours is not None:
        print("`generate \"The quick brown fox\" -n 64`, one-shot, `perf stat`:\n")
        print("| | CPUs busy | context switches |")
        print("| --- | --- | --- |")
        for label, st in [("gpt2-inspect", ours), ("llama.cpp (`llama-simple`)", llama)]:
            if st is not None:
                print(f"| {label} | {st[0]:.2f} | {st[1]:,} |")
        print()
    print("The hottest functions (`perf record`, share of samples, those above 1.5 %):\n")
    for name, label in PROFILES:
        rows = profile(name)
        if rows:
            top = "; ".join(f"{pct:.1f} % `{sym[:70]}`" for pct, _, sym in rows[:8])
            print(f"- {label}: {top}.")
    print()
    bw = bandwidth()
    if bw:
        print(f"The machine's read bandwidth over the mapped checkpoint (numpy's sum in the venv, median of 5): "
              f"{bw[0]:.1f} GB/s on one thread, {bw[1]:.1f} GB/s on two.\n")
    print(misses())


def bandwidth():
    p = os.path.join(out, "bandwidth.txt")
    return [float(v) for v in open(p).read().split()] if os.path.exists(p) else None


def misses():
    """The explanation of the misses, with this run's numbers where it has them."""
    pairs = inproc_pairs()
    many = max((t for _, t in pairs), default=2)
    both, single = pairs.get(("generate_cache", many), (None, None)), pairs.get(("generate_cache", 1), (None, None))
    g = [both[0], single[0], both[1], single[1]]
    scaling = "The side-by-side rows were not measured in this run."
    if None not in g:
        near = abs(g[1] / g[3] - 1) <= 0.1
        scaling = (f"Side by side, on one thread gpt2-inspect generates {64 / g[1]:.1f} tokens/s and llama.cpp "
                   f"{64 / g[3]:.1f}{' (within a tenth: the kernels stream the mapped weights about as fast)' if near else ''}; "
                   f"the second thread gains gpt2-inspect {g[1] / g[0]:.2f}× and llama.cpp {g[3] / g[2]:.2f}×, "
                   f"a token's 494 MB read at {0.494 * 64 / g[0]:.1f} and {0.494 * 64 / g[2]:.1f} GB/s, where "
                   "the machine reads at most the two-thread bandwidth above.")
    st, prof = perf_stat("perfstat_ours_score_prose"), profile("score_prose")
    kernel = ""
    if st and st[2] and prof and prose_flops():
        share = sum(p for p, _, sym in prof if "microkernel" in sym) / 100
        f = prose_flops()[1]
        rate = f / (st[2] * share) / 1e9
        cores = os.cpu_count()
        kernel = (f"{share * 100:.0f} % of `score`'s {st[2]:.1f} CPU-seconds ({st[0]:.2f} CPUs busy) are gemm's "
                  f"f32 microkernels, which therefore run at about {rate:.0f} GFLOP/s a core, {cores * rate:.0f} on "
                  f"{'two' if cores == 2 else cores}: at the 195–235 GFLOP/s gemm's kernels reach on this machine at best.")
        hf, _ = seconds("hf_corpus_score")
        if hf:
            kernel += (f" 2.5× Hugging Face's time ({hf:.1f} s) is {hf / 2.5:.1f} s, or {f / (hf / 2.5) / 1e9:.0f} "
                       "GFLOP/s effective: more than those kernels reach even with nothing else to do.")
    return MISSES.replace("{scaling}", scaling).replace("{kernel}", kernel)


MISSES = """Why the rows that miss their targets miss them, from these profiles:

- **Generation in process and short prompts (T = 8, 32) against llama-bench.** A generated token
  reads every weight once: 340 MB of block weights through `few_rows_times` (the AVX-512
  band-per-thread product in `src/model/kernels/matmul.rs`, also T = 8's) and the 154 MB tied output
  layer through gemm's gemv; these products are nearly all of the samples. {scaling} Each of a token's 49 products forks
  onto the second thread and joins, and the steps between them (layer norms, attention over
  the cache, the bands' partial sums) run on one. It is not the hand-off latency: keeping
  rayon's second worker spinning through the command (tried, side by side: 1.96 CPUs busy and
  1,500 context switches instead of 1.45 and 6,500) did not change the time, nor did a
  one-row-at-a-time streaming order or more bands than threads. llama.cpp runs every node of
  the graph on both threads; doing that here means a graph executor under candle's ops, not
  done in this round. At T = 32 gemm's tiles (6 × 64) are larger than the rows there are, so
  its kernels run below their peak.
- **Corpus scoring: 2.5× Hugging Face and 200 GFLOP/s.** {kernel} Half the arithmetic is
  the 768 × 50,257 output layer at every position, which the log-probabilities need in full
  (the normalizer sums all 50,257) and which HF computes with the same kind of sgemm. The rest:
  packing gemm's operands, zeroing the fresh pages of each batch's logits, and scoring each
  position (now vectorized: an f32 exponential summed in f64, and the rank and top guess
  counted in lanes). 200 GFLOP/s effective would need nearly every cycle in the microkernels;
  2.5× HF needs products faster than this machine's sgemm (a BF16 product would be, and would
  break the 1e-4 parity) or less arithmetic than the log-probabilities need."""


def serve_section():
    p = os.path.join(out, "serve.json")
    if not os.path.exists(p):
        return
    r = json.load(open(p))
    print(f"The explorer's server (`serve`, 2 workers; commit {commit}, {datetime.date.today()}, "
          f"{os.cpu_count()} cores ({cpu}); made by `scripts/bench.sh --only-serve` or with the full run; "
          "`scripts/bench_serve.py`). A page's first view is what it asks for a new prompt: tokenize, then "
          "`next`, one head's attention and the logit lens at once, each drawn when it comes; against it, "
          "`next`, `attention` and `lens` run one-shot with the same options, each a new process loading "
          "the model.\n")
    print("| what | server | one-shot commands | ratio |")
    print("| --- | --- | --- | --- |")
    print(f"| start: the URL printed | {fmt_s(r['listening'])} | | |")
    print(f"| start: the first answer | {fmt_s(r['first_answer'])} | | |")
    print(f"| {r['tokens32']}-token prompt: the next-token table (median of 10) | {fmt_s(r['next32'])} | | |")
    print(f"| {r['tokens32']}-token prompt: every view of the first screen (median of 10; one-shot: of 5) | "
          f"{fmt_s(r['view32'])} | {fmt_s(r['oneshot32'])} | {r['oneshot32'] / r['view32']:.1f}× faster |")
    print(f"| 1,024-token prompt: the next-token table (median of 3) | {fmt_s(r['next1024'])} | | |")
    print(f"| 1,024-token prompt: every view (median of 3) | {fmt_s(r['view1024'])} | {fmt_s(r['oneshot1024'])} | "
          f"{r['oneshot1024'] / r['view1024']:.1f}× faster |")
    a, f = r["alone"], r["four"]
    print(f"| a mix of next, attention, lens, tokenize and saliency: 1 client, {a['requests']} requests | "
          f"p50 {fmt_s(a['p50'])}, p95 {fmt_s(a['p95'])} | | |")
    print(f"| the same mix from 4 clients at once, {f['requests']} requests | p50 {fmt_s(f['p50'])}, "
          f"p95 {fmt_s(f['p95'])}; {f['requests'] / f['wall']:.1f} requests/s (1 client: "
          f"{a['requests'] / a['wall']:.1f}) | | |")
    print(f"| resident memory at rest, after the load, and its peak | {r['rss_rest']:.0f} MiB, "
          f"{r['rss_after']:.0f} MiB, {r['rss_peak']:.0f} MiB | | |")


def timed(name):
    """(seconds, peak MiB) of a `/usr/bin/time -f '%e %M'` file."""
    p = os.path.join(out, name + ".time")
    if not os.path.exists(p):
        return None, None
    e, m = open(p).read().split()[-2:]
    return float(e), int(m) / 1024


def lenses_section():
    ours_s, ours_m = timed("lens_fit_ours")
    if ours_s is None:
        return
    tl_s, tl_m = timed("lens_fit_tl")
    tl = json.load(open(os.path.join(out, "lens_fit_tl.json"))) if tl_s is not None else None
    weights = os.path.getsize(os.path.join("bench/work/gpt2-random/model.safetensors")) / 2**20
    print(f"Lenses (commit {commit}, {datetime.date.today()}, {os.cpu_count()} cores ({cpu}); "
          "`scripts/bench.sh --only-lenses` or the full run). `lens fit` fits a Jacobian lens on "
          "every block of gpt2-size weights, 128-token prompts with the BOS (2 prompts, load "
          "included), against TransformerLens 4.3.0's `JacobianLens.fit` (1 prompt, its "
          "default dim_batch 8, model boot excluded) on this CPU; then reading the fitted lens "
          "on a 32-token prompt against the logit lens (alternating, median of 10).\n")
    print("| what | gpt2-inspect | TransformerLens | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    ours_per = ours_s / 2
    tl_per = tl["seconds"] / tl["prompts"] if tl else None
    ratio_s = "–"
    if tl_per:
        ratio_s = (f"{tl_per / ours_per:.2f}× faster" if tl_per >= ours_per
                   else f"{ours_per / tl_per:.2f}× slower")
    print(f"| `lens fit`: seconds per 128-token prompt | {ours_per:.1f} s | "
          f"{f'{tl_per:.1f} s' if tl_per else '–'} | {ratio_s} | ≥ 3× faster: "
          f"{'met' if tl_per and tl_per / ours_per >= 3 else 'missed'} |")
    print(f"| `lens fit`: peak memory | {ours_m:.0f} MiB ({weights:.0f} MiB of weights) | "
          f"{f'{tl_m:.0f} MiB' if tl_m else '–'} | | ≤ weights + 1.5 GB: "
          f"{'met' if ours_m <= weights + 1536 else 'missed'} |")
    print()
    print("Why `lens fit` misses 3×: the estimator is the same arithmetic in both tools, and "
          "that arithmetic is bound by this CPU's f32 peak. A 128-token prompt needs d_model = 768 "
          "backward passes (one per output dimension), each through the 11 blocks between the "
          "last block and block 0's output: about 1.9 GFLOP a block a row (the input gradients of "
          "the four weight matrices and of attention; no weight gradients in either tool), 16 TFLOP "
          "a prompt. At the 215 GFLOP/s gemm's AVX-512 kernels reach on two cores that is 75 s; "
          "3× TransformerLens's time would need several hundred GFLOP/s, above this machine's f32 "
          "peak (OpenBLAS reaches 260). TransformerLens runs its fit at about 135 GFLOP/s (torch's "
          "matmuls, dim_batch 8; 148 s and 118 s a prompt in two runs here), gpt2-inspect at about "
          "100: perf of a fit at 5 rows a pass puts 58 % of the samples in gemm's microkernel, 11 % "
          "in threads waiting between small operations, 8 % packing operands, 6 % candle's "
          "element-wise maps and 3 % zeroing fresh memory (at 2 rows a pass the microkernel had "
          "44 % and packing 15 %; 5 rows cut 202 s to 147 s a prompt, 7 rows measured slower). "
          "Reaching TransformerLens means the ~40 % outside the microkernel (fused backward kernels "
          "for attention and layer norm, fewer allocations), not fewer FLOPs; beating it 3× is "
          "not possible in f32 on this CPU, and BF16 products would break the 1e-4 parity.\n")
    j, _ = seconds("lens_read_jlens")
    l, _ = seconds("lens_read_logit")
    if j and l:
        print("| what | Jacobian lens | logit lens | ratio | target |")
        print("| --- | --- | --- | --- | --- |")
        print(f"| `lens` on 32 tokens, the fitted lens | {fmt_s(j)} | {fmt_s(l)} "
              f"| {j / l:.2f}× its time | ≤ 1.5×: {'met' if j / l <= 1.5 else 'missed'} |")


def graphs_section():
    runs = [timed(f"graph_ours_{i}") for i in (1, 2, 3)]
    runs = [r for r in runs if r[0] is not None]
    if not runs:
        return
    ours_s = statistics.median(r[0] for r in runs)
    ours_m = max(r[1] for r in runs)
    tc = int(open(os.path.join(out, "graph_tc.bytes")).read()) / 2**20
    ct = json.load(open(os.path.join(out, "graph_ct.json")))
    ct_s, ct_m = timed("graph_ct")
    print(f"Attribution graphs (commit {commit}, {datetime.date.today()}, {os.cpu_count()} cores "
          f"({cpu}); `scripts/bench.sh --only-graphs` or the full run). `graph` on a 16-token prompt "
          "(with the `<|endoftext|>` both put first) over gpt2-size weights with 12 random per-layer "
          f"transcoders of 24,576 features ({tc:.0f} MiB, about 100 features active a position), "
          "circuit-tracer's defaults (7500 features with rows, 256 rows a pass, logits to 0.95); "
          "gpt2-inspect's whole command (load and files included, median of 3) against "
          "circuit-tracer 0.5.0's `attribute` once (scripts/bench_graph_ct.py: its model built from "
          "the same weights, lazy decoders as its command line, `torch.set_num_threads(2)`).\n")
    print("| what | gpt2-inspect | circuit-tracer | ratio | target |")
    print("| --- | --- | --- | --- | --- |")
    if "seconds" in ct:
        r = ct["seconds"] / ours_s
        print(f"| graph, seconds | {ours_s:.1f} s (whole command) | {ct['seconds']:.1f} s (`attribute`; "
              f"{ct_s:.0f} s with its load) | {r:.1f}× faster | ≥ 5× faster: {'met' if r >= 5 else 'missed'} |")
        o = json.load(open(os.path.join(out, "graph_ours.json")))
        n = o["selected_features"] + 13 * len(o["input_ids"]) + len(o["logits"])
        print(f"| active features, nodes | {o['active_features']} active, {n} nodes (and "
              f"{len(o['input_ids'])} position nodes) | {ct['active']} active, {ct['nodes']} nodes | | |")
    else:
        print(f"| graph, seconds | {ours_s:.1f} s | did not finish in 30 minutes | | ≥ 5× faster |")
    ct_mem = f"{ct_m:.0f} MiB" if ct_m else "–"
    print(f"| peak memory (RSS) | {ours_m:.0f} MiB | {ct_mem} | | ≤ transcoders + 1 GiB = "
          f"{tc + 1024:.0f} MiB: {'met' if ours_m <= tc + 1024 else 'missed'} |")


SECTIONS = {"graphs": graphs_section, "lenses": lenses_section, "corpus": corpus_section, "dtypes": dtypes_section, "profiles": profiles_section,
            "circuits": circuits_section, "features": features_section, "serve": serve_section}
if only:
    SECTIONS[only]()
    sys.exit(0)

print("# Benchmark results\n")
print(f"- date: {datetime.date.today()}, commit {commit}")
print(f"- machine: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} {platform.release()}; "
      f"load average at the start {' '.join(load)}")
print("- model: full-size GPT-2 124M with random weights, original layout (bare keys + attn.bias "
      "buffers, 548 MB; 498 MB of weights), written by `examples/make_checkpoint.rs`; real GPT-2 tokenizer")
print("- one-shot rows: median of 10 runs after 2 warm-ups, warm page cache; gpt2-inspect and "
      "llama.cpp alternate run by run (`scripts/bench_pair.py`), otherwise hyperfine; HF: 3 runs after 1. "
      "Peak RSS from `/usr/bin/time -f %M` (mapped file pages count). Ratios are time ratios "
      "gpt2-inspect / peer: below 1 is faster.")
print("- llama.cpp: llama-cpp-python 0.3.36's vendored llama.cpp (commit 0c1e57098), `-DGGML_NATIVE=ON`, "
      "no BLAS, `llama-simple` (one-shot) and `llama-bench -t <cores>` (in process), the checkpoint "
      "converted by its `convert_hf_to_gguf.py --outtype f32`. HF: transformers 5.23 + torch 2.15, eager attention.")
print(f"- Made by `{made}`.\n")

WEIGHTS_MIB = 498e6 / 2**20
print("| work (new process) | gpt2-inspect | max/min of 10 | peak RSS | llama.cpp | its peak RSS | vs llama.cpp | HF transformers | HF peak RSS | HF / gpt2-inspect | targets | |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
labels = {
    "next": '`next "The quick brown fox" --top-k 5` (4 tokens)',
    "next_128": "`next` on a 128-token prompt",
    "next_1000": "`next` on a 1000-token prompt",
    "generate_64": '`generate "The quick brown fox" -n 64`',
    "tokenize": '`tokenize "Hello, how are you?"`',
    "attention_1024": "`attention --layer 0 --head 0`, 1024 tokens (HF runs every layer)",
    "patch_resid_pre_16": "`patch --site resid_pre`, 16-token pair: 12 × 16 patched runs "
                          "(HF: a loop of forward passes with a TransformerLens-style hook)",
}
for name, label in labels.items():
    o, _ = seconds("ours_" + name)
    l, _ = seconds("llama_" + name)
    h, _ = seconds("hf_" + name)
    sp = spread("ours_" + name)
    orss, lrss, hrss = rss_mib("ours_" + name), rss_mib("llama_" + name), rss_mib("hf_" + name)
    targets, verdicts = [], []
    if l is not None:
        targets.append("≤ 1.0× llama.cpp")
        verdicts.append("met" if o <= l else f"missed by {o / l:.2f}×")
    # The 30× claim was made of the short one-shot commands, where Python's start-up is
    # most of HF's time; on long prompts both sides compute, and the ratio is shown only.
    if h is not None and name in ("next", "tokenize"):
        targets.append("≥ 30× faster than HF")
        verdicts.append("met" if h / o >= 30 else f"missed: {h / o:.0f}×")
    if name == "next":
        targets.append("max/min ≤ 1.5")
        verdicts.append("met" if sp is not None and sp <= 1.5 else f"missed: {sp:.2f}")
        targets.append(f"RSS ≤ weights + 100 MB ({WEIGHTS_MIB + 95:.0f} MiB)")
        verdicts.append("met" if orss is not None and orss <= WEIGHTS_MIB + 95 else f"missed: {orss:.0f} MiB")
    if name == "patch_resid_pre_16":
        targets.append("≤ 5 s")
        verdicts.append(verdict(o, 5.0))
    print(f"| {label} | {fmt_s(o)} | {'–' if sp is None else f'{sp:.2f}'} | {mib(orss)} | {fmt_s(l)} | {mib(lrss)} | "
          f"{vs(o, l)} | {fmt_s(h)} | {mib(hrss)} | {'–' if h is None else f'{h / o:.1f}×'} | "
          f"{'; '.join(targets)} | {'; '.join(verdicts)} |")

print("\nGradients (new processes, as above; the 16-token text is the patch pair's clean text):\n")
print("| work | gpt2-inspect | peak RSS | compared with | its time | its peak RSS | ratio | target | |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
grad_rows = [
    ("saliency_16", "`saliency` (gradient), 16 tokens", "ours_next_16", "`next` on the same text",
     lambda o, t: ("≤ 3× `next`", "met" if o / t <= 3 else f"missed: {o / t:.1f}×"), lambda o, t: f"{o / t:.2f}× its time"),
    ("saliency_16", "`saliency` (gradient), 16 tokens", "hf_saliency_16", "Captum `Saliency` on HF",
     None, lambda o, t: f"{t / o:.1f}× faster"),
    ("ig_50_16", "`saliency --method integrated-gradients --steps 50`, 16 tokens", "hf_ig_50_16",
     "Captum `IntegratedGradients` (50 steps, Gauss–Legendre) on HF",
     lambda o, t: ("≥ 3× faster; peak ≤ 2 GB", ("met" if t / o >= 3 else f"missed: {t / o:.1f}×") + "; " +
                   ("met" if (rss_mib("ours_ig_50_16") or 1e9) <= 2000 / 1.048576 else "missed")),
     lambda o, t: f"{t / o:.1f}× faster"),
    ("patch4_attribution_16", "`patch --site resid_pre,attn_out,mlp_out,head --method attribution`, 16-token pair", "ours_patch4_exact_16",
     "the same four grids exact (one patched run per cell)",
     lambda o, t: ("≥ 10× faster", "met" if t / o >= 10 else f"missed: {t / o:.1f}×"), lambda o, t: f"{t / o:.1f}× faster"),
    ("saliency_1024", "`saliency` (gradient), 1024 tokens: the backward's peak memory", None, "", None, None),
]
for name, label, other, other_label, target, show in grad_rows:
    o, _ = seconds("ours_" + name)
    t, _ = seconds(other) if other else (None, None)
    tgt, ver = target(o, t) if target and o is not None and t is not None else ("", "")
    shown = show(o, t) if show and o is not None and t is not None else "–"
    print(f"| {label} | {fmt_s(o)} | {mib(rss_mib('ours_' + name))} | {other_label} | {fmt_s(t)} | "
          f"{mib(rss_mib(other)) if other else '–'} | {shown} | {tgt} | {ver} |")

print("\n`next --file F --lines` (default `--batch-size`), one run each:\n")
print("| texts (one of them 1024 tokens) | time | texts/s | peak RSS |")
print("| --- | --- | --- | --- |")
for n in (100, 1000, 10000):
    p = os.path.join(out, f"lines_{n}.time")
    if os.path.exists(p):
        t, rss = open(p).read().split()[-2:]
        print(f"| {n:,} | {float(t):.1f} s | {n / float(t):.1f} | {int(rss) / 1024:.0f} MiB |")

ours, hf, one, llama = tsv("ours_inproc"), tsv("hf_inproc"), tsv("ours_inproc_1thread"), llama_inproc()
llama_one = llama_inproc("llama_inproc_1thread")
print("\nIn process (model already loaded; median):\n")
print("| work | gpt2-inspect | GFLOP/s | 1 thread | llama.cpp (llama-bench) | its 1 thread | vs llama.cpp | HF transformers | HF / gpt2-inspect | target | |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
o, h = ours.get("load"), hf.get("load")
print(f"| load the weights | {fmt_s(o)} | | {fmt_s(one.get('load'))} | | | | {fmt_s(h)} | | | |")
for t in [1, 8, 32, 128, 512, 1024]:
    k = f"forward_{t}"
    o, h, l = ours.get(k), hf.get(k), llama.get(k)
    gf = "–" if o is None else f"{flops(t) / o / 1e9:.0f}"
    label = f"forward T = {t}, last-position logits" + (", attentions captured" if t == 8 else "")
    target = "≥ 2× faster than HF" if t >= 8 and h is not None and o is not None else ""
    v = ("met" if h / o >= 2 else f"missed: {h / o:.1f}×") if target else ""
    print(f"| {label} | {fmt_s(o)} | {gf} | {fmt_s(one.get(k))} | {fmt_s(l)} | {fmt_s(llama_one.get(k))} | "
          f"{vs(o, l)} | {fmt_s(h)} | {'–' if h is None or o is None else f'{h / o:.1f}×'} | {target} | {v} |")
for k, label in [("generate_cache", "generate 64 tokens after 8, key/value cache"),
                 ("generate_nocache", "generate 64 tokens after 8, no cache")]:
    o, h, l = ours.get(k), hf.get(k), llama.get(k)
    tps = lambda s: "–" if s is None else f"{64 / s:.1f} tok/s"
    print(f"| {label} | {tps(o)} | | {tps(one.get(k))} | {tps(l)} | {tps(llama_one.get(k))} | {vs(o, l)} | {tps(h)} | "
          f"{'–' if h is None or o is None else f'{h / o:.1f}×'} | | |")

pairs_table()
# The sections --only may replace alone, each between its markers.
for name in ("dtypes", "profiles", "circuits", "features", "corpus", "serve", "lenses", "graphs"):
    print()
    print(f"<!-- {name} -->")
    SECTIONS[name]()
    print(f"<!-- /{name} -->")
