"""In-process timings of gpt2-inspect (examples/bench_forward) and llama.cpp (llama-bench)
alternating round by round, so that both see the same machine state, on every core and on one.
Writes `item<TAB>threads<TAB>ours<TAB>llama` medians in seconds (generation: 64 tokens).

    python3 bench_inproc_pair.py ROUNDS OUT.tsv BENCH_FORWARD MODEL_DIR LLAMA_BENCH GGUF

gpt2-inspect's generation runs after an 8-token prompt, llama-bench's `tg` from an empty
context: the 64 tokens' work is the same but for attention over 8 more positions.
"""

import json
import os
import statistics
import subprocess
import sys

rounds, out = int(sys.argv[1]), sys.argv[2]
bench_forward, model, llama_bench, gguf = sys.argv[3:7]
# item | llama-bench's -p and -n
ITEMS = [("forward_8", "8", "0"), ("forward_32", "32", "0"), ("generate_cache", "0", "64")]


def ours(item, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    text = subprocess.run([bench_forward, model, item], env=env, capture_output=True, text=True,
                          check=True).stdout
    return dict(line.split("\t") for line in text.split("\n") if line)[item]


def llama(p, n, threads):
    text = subprocess.run([llama_bench, "-m", gguf, "-p", p, "-n", n, "-t", str(threads), "-r", "3",
                           "-o", "json"], capture_output=True, text=True, check=True).stdout
    samples = sorted(json.loads(text)[0]["samples_ns"])
    return samples[len(samples) // 2] / 1e9


times = {}
for _ in range(rounds):
    for threads in (os.cpu_count(), 1):
        for item, p, n in ITEMS:
            pair = times.setdefault((item, threads), ([], []))
            pair[0].append(float(ours(item, threads)))
            pair[1].append(llama(p, n, threads))
with open(out, "w") as f:
    for (item, threads), (a, b) in times.items():
        f.write(f"{item}\t{threads}\t{statistics.median(a):.6f}\t{statistics.median(b):.6f}\n")
