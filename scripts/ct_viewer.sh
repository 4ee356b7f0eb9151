#!/usr/bin/env bash
# Opens a graph file gpt2-inspect writes in circuit-tracer's own local viewer (its frontend,
# served by its local_server, from the installed package) and screenshots it into
# docs/graph-ct-viewer.png, a logit node clicked.
#
# The viewer's page loads d3, d3-jetpack, dagre and pako from transformer-circuits.pub and
# unpkg, which this machine cannot reach: scripts/ct_viewer/shot.mjs answers those requests
# from the npm packages in scripts/ct_viewer/package.json (d3 7 with d3-collection's nest,
# d3-jetpack 2.1.0 with the drawAxis method its 2024 build adds to conventions()); anything
# else fetched from elsewhere is refused and reported.
#
# Needs: CT_PYTHON, a python with circuit-tracer==0.5.0 (scripts/make_fixtures.sh makes one);
# Debian's chromium; npm.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${CT_PYTHON:?set CT_PYTHON to a python with circuit-tracer 0.5.0}"
export CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
cargo build --release --quiet
work=$(mktemp -d)
trap 'kill "${server:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
cp scripts/ct_viewer/package.json scripts/ct_viewer/shot.mjs "$work/"
npm install --prefix "$work" --no-audit --no-fund --silent

mkdir "$work/data"
target/release/gpt2-inspect --model tests/fixtures/tiny-gpt2 graph \
    "The cat sat on the mat because it was" --transcoders tests/fixtures/graphs/relu \
    -o "$work/data/cat.json" --slug cat >/dev/null
# The index circuit-tracer's create_graph_files keeps beside its graphs.
python3 - "$work/data" <<'PY'
import json, sys
d = sys.argv[1]
meta = json.load(open(f"{d}/cat.json"))["metadata"]
json.dump({"graphs": [meta]}, open(f"{d}/graph-metadata.json", "w"), indent=2)
logit = next(n for n in json.load(open(f"{d}/cat.json"))["nodes"] if n["is_target_logit"])
open(f"{d}/clicked", "w").write(logit["node_id"])
PY
port=8041
HF_HUB_OFFLINE=1 "$CT_PYTHON" -c "
import time
from circuit_tracer.frontend.local_server import serve
serve('$work/data', port=$port)
time.sleep(600)
" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.2; done
node "$work/shot.mjs" "http://127.0.0.1:$port/index.html?slug=cat&clickedId=$(cat "$work/data/clicked")" \
    docs/graph-ct-viewer.png "$work/node_modules"
