#!/usr/bin/env bash
# Speed and memory of gpt2-inspect on a full-size GPT-2 (124M, random weights written here,
# no download), optionally against Hugging Face transformers on the same checkpoint.
#
#   scripts/bench.sh [--with-hf]
#
# Writes bench/results.md. Needs hyperfine and GNU time (installed with apt-get when
# missing and run as root); --with-hf creates bench/work/venv with torch + transformers.
set -euo pipefail
cd "$(dirname "$0")/.."

WITH_HF=0
case "${1:-}" in
  --with-hf) WITH_HF=1 ;;
  "") ;;
  *) echo "usage: scripts/bench.sh [--with-hf]" >&2; exit 2 ;;
esac

WORK=bench/work
MODEL=$WORK/gpt2-random
OUT=$WORK/results
mkdir -p "$OUT"

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
[ -f "$MODEL/model.safetensors" ] || target/release/examples/make_checkpoint "$MODEL"
# "Hello" then " Hello" 1022 times and a space: 1024 tokens.
printf 'Hello %.0s' $(seq 1023) > "$WORK/long.txt"

PY=""
if [ "$WITH_HF" = 1 ]; then
  if [ ! -x "$WORK/venv/bin/python" ]; then
    echo "== creating $WORK/venv (torch + transformers: several GB)"
    python3 -m venv "$WORK/venv"
  fi
  "$WORK/venv/bin/pip" install -q torch==2.15.0 transformers==5.23.0
  PY="$WORK/venv/bin/python scripts/bench_hf.py"
fi

# A 16-token pair for activation patching (12 layers × 16 positions = 192 patched runs).
CLEAN="When Mary and John went to the store, John gave a cold drink to the"
CORRUPT="When Mary and John went to the store, Mary gave a cold drink to the"

# name | gpt2-inspect command | Hugging Face command
ONESHOT=(
  "next|$BIN --model $MODEL next 'The quick brown fox' --top-k 5|next $MODEL 'The quick brown fox'"
  "tokenize|$BIN --model $MODEL tokenize 'Hello, how are you?'|tokenize $MODEL 'Hello, how are you?'"
  "attention_1024|$BIN --model $MODEL attention --file $WORK/long.txt --layer 0 --head 0|attention $MODEL $WORK/long.txt"
  "patch_resid_pre_16|$BIN --model $MODEL patch --clean '$CLEAN' --corrupt '$CORRUPT' --answer ' Mary' --wrong ' John'|patch $MODEL '$CLEAN' '$CORRUPT' ' Mary' ' John'"
)

echo "== one-shot commands (hyperfine, warm page cache)"
for row in "${ONESHOT[@]}"; do
  IFS='|' read -r name ours theirs <<<"$row"
  hyperfine -N --warmup 2 --runs 10 --export-json "$OUT/ours_$name.json" "$ours" >/dev/null 2>&1 ||
    hyperfine --warmup 2 --runs 10 --export-json "$OUT/ours_$name.json" "$ours" >/dev/null
  /usr/bin/time -f '%M' -o "$OUT/ours_$name.rss" bash -c "$ours" >/dev/null
  if [ -n "$PY" ]; then
    hyperfine --warmup 1 --runs 3 --export-json "$OUT/hf_$name.json" "$PY $theirs" >/dev/null
    /usr/bin/time -f '%M' -o "$OUT/hf_$name.rss" bash -c "$PY $theirs" >/dev/null
  fi
done

echo "== in-process forward passes and generation"
target/release/examples/bench_forward "$MODEL" | tee "$OUT/ours_inproc.tsv"
RAYON_NUM_THREADS=1 target/release/examples/bench_forward "$MODEL" > "$OUT/ours_inproc_1thread.tsv"
if [ -n "$PY" ]; then
  $PY inproc "$MODEL" | tee "$OUT/hf_inproc.tsv"
fi

python3 scripts/bench_report.py "$OUT" > bench/results.md
echo "== wrote bench/results.md"
cat bench/results.md
