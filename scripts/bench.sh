#!/usr/bin/env bash
# Speed and memory of gpt2-inspect on a full-size GPT-2 (124M, random weights written here,
# no download), optionally against Hugging Face transformers and llama.cpp on the same
# checkpoint.
#
#   scripts/bench.sh [--with-hf] [--with-llama]
#   scripts/bench.sh --only-circuits | --only-features | --only-corpus | --only-dtypes | --only-serve
#   scripts/bench.sh --only-lenses | --only-graphs
#   scripts/bench.sh --only-profiles [--with-llama]
#
# --only-circuits (--only-features) runs the circuit (SAE feature) rows alone, gpt2-inspect
# against itself, and replaces their section of bench/results.md, which says its own commit
# and date. --only-corpus scores a file of prose with `score` and `next --file --lines`,
# against Hugging Face batched when bench/work/venv exists (made by --with-hf).
#
# Writes bench/results.md. Needs hyperfine and GNU time (installed with apt-get when
# missing and run as root); --with-hf creates bench/work/venv with torch + transformers;
# --with-llama builds llama.cpp (cmake, a C++ compiler) from the llama-cpp-python sdist and
# converts the checkpoint to GGUF (f32) with its converter, in the same venv.
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_HF=0
WITH_LLAMA=0
ONLY=""
for arg in "$@"; do
  case "$arg" in
    --with-hf) WITH_HF=1 ;;
    --with-llama) WITH_LLAMA=1 ;;
    --only-circuits) ONLY=circuits ;;
    --only-features) ONLY=features ;;
    --only-corpus) ONLY=corpus ;;
    --only-dtypes) ONLY=dtypes ;;
    --only-profiles) ONLY=profiles ;;
    --only-serve) ONLY=serve ;;
    --only-lenses) ONLY=lenses ;;
    --only-graphs) ONLY=graphs ;;
    *) echo "usage: scripts/bench.sh [--with-hf] [--with-llama] | --only-circuits | --only-features | --only-corpus | --only-dtypes | --only-profiles | --only-serve | --only-lenses | --only-graphs" >&2; exit 2 ;;
  esac
done

WORK=bench/work
MODEL=$WORK/gpt2-random
OUT=$WORK/results
mkdir -p "$OUT"
cat /proc/loadavg > "$OUT/load"

if ! command -v hyperfine >/dev/null || [ ! -x /usr/bin/time ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get install -y -q hyperfine time >/dev/null
  else
    echo "bench.sh needs hyperfine and GNU time: sudo apt-get install hyperfine time" >&2
    exit 1
  fi
fi

echo "== build"
cargo build --release --locked --bin gpt2-inspect --example make_checkpoint --example bench_forward
BIN=target/release/gpt2-inspect
SAE=$WORK/sae-24576
[ -f "$MODEL/model.safetensors" ] || target/release/examples/make_checkpoint "$MODEL"
# A random 24,576-feature standard SAE at blocks.8.hook_resid_pre (issue 28's rows).
[ -f "$SAE/sae_weights.safetensors" ] || target/release/examples/make_checkpoint "$MODEL" --sae "$SAE"
# "Hello" then " Hello" 1022 times and a space: 1024 tokens.
printf 'Hello %.0s' $(seq 1023) > "$WORK/long.txt"

# Prompts of 128 and 1000 tokens ("Hello" and " Hello" repeated).
P128=$(printf 'Hello %.0s' $(seq 127) | sed 's/ $//')
P1000=$(printf 'Hello %.0s' $(seq 999) | sed 's/ $//')
# --lines files: 100, 1,000 and 10,000 texts of 3 to 40 words, one of them 1,024 tokens.
for n in 100 1000 10000; do
  [ -f "$WORK/lines_$n.txt" ] || python3 - "$n" "$WORK/lines_$n.txt" <<'PYEOF'
import random, sys
n, path = int(sys.argv[1]), sys.argv[2]
random.seed(n)
words = ("the quick brown fox jumps over lazy dog a model of language reads text and predicts "
         "what comes next in every sentence it sees").split()
lines = [" ".join(random.choice(words) for _ in range(random.randint(3, 40))) for _ in range(n)]
lines[n // 2] = " ".join(["Hello"] * 1024)
open(path, "w").write("\n".join(lines) + "\n")
PYEOF
done

# A corpus of prose: 519 lines of 16 to 22 words (about 20 to 30 tokens) cut from the
# license texts every Debian system has, the same lines on every machine.
[ -f "$WORK/prose.txt" ] || python3 - "$WORK/prose.txt" <<'PYEOF'
import random, sys
names = ["GPL-3", "LGPL-2.1", "Apache-2.0", "MPL-2.0", "GFDL-1.3", "Artistic"]
words = " ".join(open(f"/usr/share/common-licenses/{n}").read() for n in names).split()
random.seed(519)
lines, i = [], 0
while len(lines) < 519:
    n = random.randint(16, 22)
    lines.append(" ".join(words[i:i + n]))
    i += n
open(sys.argv[1], "w").write("\n".join(lines) + "\n")
PYEOF
# Its first 100 lines, for the rows that run it several ways (--dtype, profiles).
head -100 "$WORK/prose.txt" > "$WORK/prose_100.txt"
SCORE_PROSE="$BIN --model $MODEL score --file $WORK/prose.txt --lines --jsonl"

PY=""
if [ "$WITH_HF" = 1 ] || [ "$WITH_LLAMA" = 1 ]; then
  if [ ! -x "$WORK/venv/bin/python" ]; then
    echo "== creating $WORK/venv (torch + transformers: several GB)"
    python3 -m venv "$WORK/venv"
  fi
  "$WORK/venv/bin/pip" install -q torch==2.15.0 transformers==5.23.0 captum==0.9.0 "numpy<2.5"
fi
[ "$WITH_HF" = 1 ] && PY="$WORK/venv/bin/python scripts/bench_hf.py"

LLAMA=""
if [ "$WITH_LLAMA" = 1 ]; then
  # llama.cpp as vendored by llama-cpp-python 0.3.36 (llama.cpp commit 0c1e57098), its own
  # kernels (no BLAS), tuned for this CPU.
  SDIST=llama_cpp_python-0.3.36
  SHA=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
  LDIR=$WORK/llama/$SDIST/vendor/llama.cpp
  if [ ! -x "$LDIR/build/bin/llama-simple" ]; then
    command -v cmake >/dev/null || { echo "--with-llama builds llama.cpp with cmake: install it (apt-get install cmake)" >&2; exit 2; }
    echo "== building llama.cpp ($SDIST)"
    mkdir -p "$WORK/llama"
    url=$(curl -fsSL "https://pypi.org/simple/llama-cpp-python/" | grep -o "https://[^\"#]*/$SDIST.tar.gz" | head -1)
    curl -fsSL -o "$WORK/llama/$SDIST.tar.gz" "$url"
    echo "$SHA  $WORK/llama/$SDIST.tar.gz" | sha256sum -c --quiet
    tar xzf "$WORK/llama/$SDIST.tar.gz" -C "$WORK/llama"
    # Upstream llama-simple has no thread flag and starts GGML_DEFAULT_N_THREADS (4)
    # threads, which fight for this machine's 2 cores: give it -t N (the threads of both
    # the prompt and the generated tokens), as llama-cli has.
    python3 - "$LDIR/examples/simple/simple.cpp" <<'PYEOF'
import sys
p = sys.argv[1]
s = open(p).read()
flag = """            } else if (strcmp(argv[i], "-ngl") == 0) {"""
assert flag in s and "n_threads" not in s
s = s.replace(flag, """            } else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
                n_threads = std::stoi(argv[++i]);
""" + flag, 1)
s = s.replace("    int n_predict = 32;\n", "    int n_predict = 32;\n    // threads (-t); 0: llama.cpp's default\n    int n_threads = 0;\n", 1)
s = s.replace("    ctx_params.no_perf = false;\n", "    ctx_params.no_perf = false;\n    if (n_threads > 0) {\n        ctx_params.n_threads = n_threads;\n        ctx_params.n_threads_batch = n_threads;\n    }\n", 1)
open(p, "w").write(s)
PYEOF
    cmake -S "$LDIR" -B "$LDIR/build" -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
      -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$LDIR/build" -j "$(nproc)" --target llama-simple llama-bench >/dev/null
  fi
  GGUF=$WORK/gpt2-random-f32.gguf
  if [ ! -f "$GGUF" ]; then
    # The GPT-2 converter of this version hands the attn.bias buffers to the name mapper,
    # which fails on them: skip them. (It also needs n_ctx in config.json, which
    # make_checkpoint writes.)
    python3 - "$LDIR/conversion/gpt2.py" <<'PYEOF'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("""        if name.endswith((".attn.bias", ".attn.masked_bias")):
            yield from super().modify_tensors(data_torch, name, bid)
            return""", """        if name.endswith((".attn.bias", ".attn.masked_bias")):
            return""")
open(p, "w").write(s)
PYEOF
    PYTHONPATH="$LDIR/gguf-py" "$WORK/venv/bin/python" "$LDIR/convert_hf_to_gguf.py" "$MODEL" \
      --outtype f32 --outfile "$GGUF" >/dev/null 2>&1
  fi
  # As many threads as cores, as llama-bench below is given.
  LLAMA="$LDIR/build/bin/llama-simple -t $(nproc) -m $GGUF"
fi

# A 16-token pair for activation patching (12 layers × 16 positions = 192 patched runs).
CLEAN="When Mary and John went to the store, John gave a cold drink to the"
CORRUPT="When Mary and John went to the store, Mary gave a cold drink to the"

# An 8-token pair for one patched run per (head, destination, source) entry.
CLEAN8="The cat sat on the mat and the"
CORRUPT8="The dog sat on the mat and the"
PAIR="--clean '$CLEAN' --corrupt '$CORRUPT' --answer ' Mary' --wrong ' John'"

# Circuits as edges, against patch --site head on the same pair: name | command | runs.
CIRCUITS=(
  "patch_head_16|$BIN --model $MODEL patch $PAIR --site head|10"
  "circuit_16|$BIN --model $MODEL circuit $PAIR|10"
  "path_16|$BIN --model $MODEL patch $PAIR --path 0.0 --to q|10"
  "path_logits_16|$BIN --model $MODEL patch $PAIR --path 0.0 --to logits|10"
  "circuit_ig5_16|$BIN --model $MODEL circuit $PAIR --ig-steps 5 --faithfulness 10,100,1000|5"
  "circuit_ig40_16|$BIN --model $MODEL circuit $PAIR --ig-steps 40|3"
  "pattern_dest_src_8|$BIN --model $MODEL patch --clean '$CLEAN8' --corrupt '$CORRUPT8' --answer ' Mary' --wrong ' John' --site pattern-dest-src|3"
)
bench_circuits() {
  echo "== circuits (hyperfine, warm page cache)"
  for row in "${CIRCUITS[@]}"; do
    IFS='|' read -r name cmd runs <<<"$row"
    hyperfine --warmup 1 --runs "$runs" --export-json "$OUT/ours_$name.json" "$cmd" >/dev/null
    /usr/bin/time -f '%M' -o "$OUT/ours_$name.rss" bash -c "$cmd" >/dev/null
  done
}
# SAE features: `features` against `next` on one 128-token text (alternating runs), and a
# corpus pass of `feature` against `score` on the same --lines files (one run each: the
# 10,000-line `score` takes minutes), with peak RSS at 1,000 and 10,000 lines.
bench_features() {
  echo "== SAE features"
  python3 scripts/bench_pair.py 10 2 "$OUT/ours_features_128.json" "$OUT/ours_features_next_128.json" \
    "$BIN --model $MODEL features '$P128' --sae $SAE" "$BIN --model $MODEL next '$P128'"
  /usr/bin/time -f '%M' -o "$OUT/ours_features_128.rss" $BIN --model "$MODEL" features "$P128" --sae "$SAE" >/dev/null
  for n in 1000 10000; do
    /usr/bin/time -f '%e %M' -o "$OUT/feature_corpus_$n.time" \
      $BIN --model "$MODEL" feature 0,1,2 --sae "$SAE" --file "$WORK/lines_$n.txt" --lines >/dev/null 2>&1
    /usr/bin/time -f '%e %M' -o "$OUT/score_corpus_$n.time" \
      $BIN --model "$MODEL" score --file "$WORK/lines_$n.txt" --lines --jsonl >/dev/null
  done
}
# A corpus of prose scored: `score` (every position's logits) against Hugging Face batched
# (16 texts a batch by length, the same log-probabilities, load included), alternating, 3
# runs after 1; `next --file --lines` (the last position's); peak RSS of one run each.
bench_corpus() {
  echo "== corpus of prose"
  $BIN --model "$MODEL" tokenize --file "$WORK/prose.txt" --lines --csv | tail -n +2 | wc -l > "$OUT/prose.tokens"
  local score="$SCORE_PROSE"
  local next="$BIN --model $MODEL next --file $WORK/prose.txt --lines --jsonl"
  local hf="$WORK/venv/bin/python scripts/bench_hf.py score $MODEL $WORK/prose.txt"
  if [ -x "$WORK/venv/bin/python" ]; then
    python3 scripts/bench_pair.py 3 1 "$OUT/ours_corpus_score.json" "$OUT/hf_corpus_score.json" "$score" "$hf"
    /usr/bin/time -f '%M' -o "$OUT/hf_corpus_score.rss" $hf >/dev/null
  else
    hyperfine --warmup 1 --runs 3 --export-json "$OUT/ours_corpus_score.json" "$score" >/dev/null
  fi
  hyperfine --warmup 1 --runs 3 --export-json "$OUT/ours_corpus_next.json" "$next" >/dev/null
  /usr/bin/time -f '%M' -o "$OUT/ours_corpus_score.rss" $score >/dev/null
  /usr/bin/time -f '%M' -o "$OUT/ours_corpus_next.rss" $next >/dev/null
}
# f32, f16 and bf16 on the CPU, alternating run by run: next (4 and 128 tokens), generate
# -n 64 and the first 100 lines of the prose corpus scored.
bench_dtypes() {
  echo "== --dtype f32 / f16 / bf16"
  local rows=(
    "next|next 'The quick brown fox'|5"
    "next_128|next '$P128'|5"
    "generate_64|generate 'The quick brown fox' -n 64 --ignore-eos|5"
    "score_100|score --file $WORK/prose_100.txt --lines --jsonl|3"
  )
  for row in "${rows[@]}"; do
    IFS='|' read -r name args runs <<<"$row"
    python3 scripts/bench_pair.py "$runs" 1 \
      "$OUT/dtype_f32_$name.json" "$OUT/dtype_f16_$name.json" "$OUT/dtype_bf16_$name.json" \
      "$BIN --model $MODEL --dtype f32 $args" "$BIN --model $MODEL --dtype f16 $args" \
      "$BIN --model $MODEL --dtype bf16 $args"
  done
}
# Where the time goes, when perf is installed: CPUs busy and context switches of one-shot
# generation (ours and llama.cpp's), and the hottest functions of the rows that miss.
bench_profiles() {
  command -v perf >/dev/null || { echo "== no perf: no profiles"; return 0; }
  echo "== profiles (perf)"
  local gen="generate 'The quick brown fox' -n 64"
  stat() { perf stat -e task-clock,context-switches -o "$OUT/$1.perfstat" bash -c "$2" >/dev/null 2>&1; }
  stat perfstat_ours_generate_64 "$BIN --model $MODEL $gen"
  [ -n "$LLAMA" ] && stat perfstat_llama_generate_64 "$LLAMA -n 64 'The quick brown fox'"
  stat perfstat_ours_score_prose "$SCORE_PROSE"
  # The machine's read bandwidth over the mapped checkpoint (numpy's sum, 1 and 2 threads):
  # what a generated token's products can reach at best.
  if [ -x "$WORK/venv/bin/python" ]; then
    "$WORK/venv/bin/python" - "$MODEL/model.safetensors" > "$OUT/bandwidth.txt" <<'PYEOF'
import sys, threading, time
import numpy as np
x = np.memmap(sys.argv[1], dtype=np.float32, mode="r", offset=1 << 16)
x = x[: x.size // 2 * 2]
def rate(parts):
    for _ in range(2):
        for p in parts:
            p.sum()
    runs = []
    for _ in range(5):
        ts = [threading.Thread(target=p.sum) for p in parts]
        start = time.perf_counter()
        [t.start() for t in ts]
        [t.join() for t in ts]
        runs.append(x.nbytes / (time.perf_counter() - start) / 1e9)
    return sorted(runs)[2]
h = x.size // 2
print(f"{rate([x]):.1f} {rate([x[:h], x[h:]]):.1f}")
PYEOF
  fi
  local rows=(
    "generate_cache|target/release/examples/bench_forward $MODEL generate_cache"
    "forward_8|target/release/examples/bench_forward $MODEL forward_8"
    "forward_32|target/release/examples/bench_forward $MODEL forward_32"
    "score_prose|$SCORE_PROSE"
    "f16_next_128|$BIN --model $MODEL --dtype f16 next '$P128'"
    "bf16_next_128|$BIN --model $MODEL --dtype bf16 next '$P128'"
  )
  for row in "${rows[@]}"; do
    IFS='|' read -r name cmd <<<"$row"
    perf record -o "$OUT/perf.data" -- bash -c "$cmd" >/dev/null 2>&1
    perf report -i "$OUT/perf.data" --no-children --sort dso,symbol --percent-limit 1.5 --stdio 2>/dev/null |
      grep -E '^ +[0-9.]+%' > "$OUT/profile_$name.txt" || true
  done
  rm -f "$OUT/perf.data" "$OUT/perf.data.old"
}
# Lenses: `lens fit` (a Jacobian lens, every block, 128-token prompts with BOS) against
# TransformerLens 4.3.0's JacobianLens.fit on the same prompts (in $WORK/venv-tl, made here
# when missing, or $TL_PYTHON), time per prompt and peak RSS; then reading that lens on a
# 32-token prompt against the logit lens, alternating.
bench_lenses() {
  echo "== lenses"
  local corpus="$WORK/lens_corpus.txt"
  python3 - "$WORK/prose.txt" "$corpus" <<'PYEOF'
import sys
words = open(sys.argv[1]).read().split()
# Two lines of 160 words: more than 128 tokens each, cut to 128 (with the BOS).
open(sys.argv[2], "w").write("\n".join(" ".join(words[i * 160:(i + 1) * 160]) for i in range(2)) + "\n")
PYEOF
  /usr/bin/time -f '%e %M' -o "$OUT/lens_fit_ours.time" \
    $BIN --model "$MODEL" --prepend-bos lens fit --file "$corpus" --lines -o "$OUT/jlens.pt" >/dev/null 2>&1
  local tl="${TL_PYTHON:-$WORK/venv-tl/bin/python}"
  if [ ! -x "$tl" ]; then
    python3 -m venv "$WORK/venv-tl" && "$WORK/venv-tl/bin/pip" install -q transformer-lens==4.3.0
    tl="$WORK/venv-tl/bin/python"
  fi
  head -n 1 "$corpus" > "$WORK/lens_corpus_1.txt"
  /usr/bin/time -f '%e %M' -o "$OUT/lens_fit_tl.time" \
    "$tl" scripts/bench_jlens_tl.py "$MODEL" "$WORK/lens_corpus_1.txt" > "$OUT/lens_fit_tl.json"
  local p32
  p32=$(printf 'Hello %.0s' $(seq 32) | sed 's/ $//')
  python3 scripts/bench_pair.py 10 2 "$OUT/lens_read_jlens.json" "$OUT/lens_read_logit.json" \
    "$BIN --model $MODEL lens '$p32' --lens jlens:$OUT/jlens.pt" "$BIN --model $MODEL lens '$p32'"
}
# Attribution graphs: gpt2-size weights, 12 random per-layer transcoders of 24,576 features
# (about 100 active a position), a 16-token prompt with circuit-tracer's defaults (budget
# 7500, 256 rows a pass); gpt2-inspect three times (load included), circuit-tracer 0.5.0 once
# (scripts/bench_graph_ct.py, its attribute() timed apart from loading), at most 30 minutes.
bench_graphs() {
  echo "== graphs"
  local ct="${CT_PYTHON:-$WORK/ct-venv/bin/python}"
  if [ ! -x "$ct" ]; then
    python3 -m venv "$WORK/ct-venv" \
      && "$WORK/ct-venv/bin/pip" install -q circuit-tracer==0.5.0 transformers==4.57.3
    ct="$WORK/ct-venv/bin/python"
  fi
  [ -f "$WORK/graph-tc/config.yaml" ] \
    || "$ct" scripts/bench_graph_ct.py make "$MODEL" "$WORK/graph-tc" 24576
  du -sb "$WORK/graph-tc" | cut -f1 > "$OUT/graph_tc.bytes"
  local p16="When Mary and John went to the store, John gave a drink to her"
  for i in 1 2 3; do
    /usr/bin/time -f '%e %M' -o "$OUT/graph_ours_$i.time" $BIN --model "$MODEL" graph "$p16" \
      --transcoders "$WORK/graph-tc" -o "$OUT/graph.json" --json > "$OUT/graph_ours.json" 2>/dev/null
  done
  HF_HUB_OFFLINE=1 timeout 1800 /usr/bin/time -f '%e %M' -o "$OUT/graph_ct.time" \
    "$ct" scripts/bench_graph_ct.py run "$MODEL" "$WORK/graph-tc" "$p16" > "$OUT/graph_ct.json" \
    || echo '{"timeout": 1800}' > "$OUT/graph_ct.json"
}
# The explorer's server (scripts/bench_serve.py): start, a prompt's first view against the
# same commands one-shot, latency from 1 and 4 clients, memory at rest and after load.
bench_serve() {
  echo "== serve"
  python3 scripts/bench_serve.py "$BIN" "$MODEL" "$WORK/long.txt" "$OUT/serve.json" >/dev/null
}
# Replaces the section <!-- $1 --> … <!-- /$1 --> of bench/results.md with this run's.
replace_section() {
  python3 scripts/bench_report.py "$OUT" "$1" > "$OUT/$1.md"
  python3 - bench/results.md "$OUT/$1.md" "$1" <<'PYEOF'
import sys
path, section, name = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
s = open(path).read()
a, b = f"<!-- {name} -->", f"<!-- /{name} -->"
block = f"{a}\n{section.strip()}\n{b}"
s = s[: s.index(a)] + block + s[s.index(b) + len(b):] if a in s else s.rstrip() + "\n\n" + block + "\n"
open(path, "w").write(s)
PYEOF
  echo "== wrote the $1 section of bench/results.md"
}
if [ -n "$ONLY" ]; then
  "bench_$ONLY"
  replace_section "$ONLY"
  exit 0
fi

# name | gpt2-inspect command | Hugging Face command | llama.cpp arguments
ONESHOT=(
  "next|$BIN --model $MODEL next 'The quick brown fox' --top-k 5|next $MODEL 'The quick brown fox'|-n 1 'The quick brown fox'"
  "next_128|$BIN --model $MODEL next '$P128'|next $MODEL '$P128'|-n 1 '$P128'"
  "next_1000|$BIN --model $MODEL next '$P1000'|next $MODEL '$P1000'|-n 1 '$P1000'"
  "generate_64|$BIN --model $MODEL generate 'The quick brown fox' -n 64|generate $MODEL 'The quick brown fox' 64|-n 64 'The quick brown fox'"
  "tokenize|$BIN --model $MODEL tokenize 'Hello, how are you?'|tokenize $MODEL 'Hello, how are you?'|"
  "attention_1024|$BIN --model $MODEL attention --file $WORK/long.txt --layer 0 --head 0|attention $MODEL $WORK/long.txt|"
  "patch_resid_pre_16|$BIN --model $MODEL patch --clean '$CLEAN' --corrupt '$CORRUPT' --answer ' Mary' --wrong ' John'|patch $MODEL '$CLEAN' '$CORRUPT' ' Mary' ' John'|"
  "next_16|$BIN --model $MODEL next '$CLEAN'|next $MODEL '$CLEAN'|"
  "saliency_16|$BIN --model $MODEL saliency '$CLEAN'|saliency $MODEL '$CLEAN'|"
  "ig_50_16|$BIN --model $MODEL saliency '$CLEAN' --method integrated-gradients --steps 50|ig $MODEL '$CLEAN' 50|"
  "saliency_1024|$BIN --model $MODEL saliency --file $WORK/long.txt||"
  "patch4_exact_16|$BIN --model $MODEL patch --clean '$CLEAN' --corrupt '$CORRUPT' --answer ' Mary' --wrong ' John' --site resid_pre,attn_out,mlp_out,head||"
  "patch4_attribution_16|$BIN --model $MODEL patch --clean '$CLEAN' --corrupt '$CORRUPT' --answer ' Mary' --wrong ' John' --site resid_pre,attn_out,mlp_out,head --method attribution||"
)

echo "== one-shot commands (hyperfine, warm page cache; gpt2-inspect and llama.cpp alternate)"
for row in "${ONESHOT[@]}"; do
  IFS='|' read -r name ours theirs llama <<<"$row"
  if [ -n "$LLAMA" ] && [ -n "$llama" ]; then
    # The two commands' runs alternate (A B A B), so both see the same machine.
    python3 scripts/bench_pair.py 10 2 "$OUT/ours_$name.json" "$OUT/llama_$name.json" "$ours" "$LLAMA $llama"
    /usr/bin/time -f '%M' -o "$OUT/llama_$name.rss" bash -c "$LLAMA $llama" >/dev/null 2>&1
  else
    hyperfine -N --warmup 2 --runs 10 --export-json "$OUT/ours_$name.json" "$ours" >/dev/null 2>&1 ||
      hyperfine --warmup 2 --runs 10 --export-json "$OUT/ours_$name.json" "$ours" >/dev/null
  fi
  /usr/bin/time -f '%M' -o "$OUT/ours_$name.rss" bash -c "$ours" >/dev/null
  if [ -n "$PY" ] && [ -n "$theirs" ]; then
    hyperfine --warmup 1 --runs 3 --export-json "$OUT/hf_$name.json" "$PY $theirs" >/dev/null
    /usr/bin/time -f '%M' -o "$OUT/hf_$name.rss" bash -c "$PY $theirs" >/dev/null
  fi
done

echo "== --file --lines jobs (next, default --batch-size)"
for n in 100 1000 10000; do
  /usr/bin/time -f '%e %M' -o "$OUT/lines_$n.time" \
    $BIN --model "$MODEL" next --file "$WORK/lines_$n.txt" --lines >/dev/null
done

echo "== in-process forward passes and generation"
target/release/examples/bench_forward "$MODEL" | tee "$OUT/ours_inproc.tsv"
RAYON_NUM_THREADS=1 target/release/examples/bench_forward "$MODEL" > "$OUT/ours_inproc_1thread.tsv"
if [ -n "$PY" ]; then
  $PY inproc "$MODEL" | tee "$OUT/hf_inproc.tsv"
fi
if [ -n "$LLAMA" ]; then
  # Prompt processing of T tokens and 64 generated tokens, 2 threads, median of 5.
  "$LDIR/build/bin/llama-bench" -m "$GGUF" -p 8,32,128,512,1024 -n 64 -t "$(nproc)" -r 5 -o json \
    > "$OUT/llama_inproc.json" 2>/dev/null
  "$LDIR/build/bin/llama-bench" -m "$GGUF" -p 8,32 -n 64 -t 1 -r 3 -o json \
    > "$OUT/llama_inproc_1thread.json" 2>/dev/null
  # The rows with targets against llama.cpp again, the two alternating round by round.
  python3 scripts/bench_inproc_pair.py 5 "$OUT/inproc_pairs.tsv" target/release/examples/bench_forward \
    "$MODEL" "$LDIR/build/bin/llama-bench" "$GGUF"
fi

bench_circuits
bench_features
bench_corpus
bench_dtypes
bench_profiles
bench_serve
bench_lenses
bench_graphs

rm -f "$OUT"/*.flags; [ "$WITH_HF" = 1 ] && touch "$OUT/hf.flags"; [ "$WITH_LLAMA" = 1 ] && touch "$OUT/llama.flags"
python3 scripts/bench_report.py "$OUT" > bench/results.md
echo "== wrote bench/results.md"
cat bench/results.md
