#!/usr/bin/env bash
# Remakes the README's pictures in docs/ from the tool's real output on the fixture model
# (random weights: the patterns are noise, the pictures are what users get).
# Needs: Debian's chromium and aha (apt-get install chromium aha), and
# npm ci --prefix tests/browser.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release --quiet
bin=target/release/gpt2-inspect
model=(--model tests/fixtures/tiny-gpt2)
text="The cat sat on the mat"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The HTML report, as a browser shows it.
"$bin" "${model[@]}" report "$text" -o "$work/report.html" >/dev/null

# The SVG figure: one head with values, and every head of a layer.
"$bin" "${model[@]}" attention "$text" --layer 0 --head 1 --annot --svg "$work/attention.svg" >/dev/null 2>&1
"$bin" "${model[@]}" attention "$text" --all-heads --svg "$work/attention-grid.svg" >/dev/null 2>&1
# The figure controls: another colour map, a log scale, a title of one's own.
"$bin" "${model[@]}" attention "$text" --layer 0 --head 1 --cmap viridis --scale log \
    --title "Layer 0, head 1 (log scale)" --svg "$work/figure-controls.svg" >/dev/null 2>&1
# The logit lens at every position.
"$bin" "${model[@]}" lens "$text" --all-positions --svg "$work/lens.svg" >/dev/null 2>&1
# One head's four stages, input to output.
"$bin" "${model[@]}" attention "$text" --layer 1 --head 3 --stages --svg "$work/stages.svg" >/dev/null 2>&1
# Input attribution: the matrix for generated text, and a patching grid beside its estimate.
"$bin" "${model[@]}" saliency "The cat sat" --generate 4 --svg "$work/saliency.svg" >/dev/null 2>&1
"$bin" "${model[@]}" patch --clean "$text" --corrupt "The dog sat on the mat" --answer " and" --wrong " with" \
    --method both --svg "$work/patch-both.svg" >/dev/null 2>&1
# Circuits as edges: the top edges with the faithfulness curve.
"$bin" "${model[@]}" circuit --clean "$text" --corrupt "The dog sat on the mat" --answer " and" --wrong " with" \
    --top 12 --faithfulness 5,10,20,50,100,262 --svg "$work/circuit.svg" >/dev/null 2>&1
"$bin" "${model[@]}" graph "The cat sat on the mat because it was" \
    --transcoders tests/fixtures/graphs/relu --svg "$work/graph.svg" >/dev/null 2>&1

# The terminal heatmap, as a truecolor terminal 100 columns wide shows it.
{
    printf '$ gpt2-inspect attention "%s" --layer 0 --head 1 --annot\n' "$text"
    COLORTERM=truecolor COLUMNS=100 "$bin" "${model[@]}" --color always attention "$text" --layer 0 --head 1 --annot
    printf '\n$ gpt2-inspect attention "%s" --layer 1 --all-heads\n' "$text"
    COLORTERM=truecolor COLUMNS=100 "$bin" "${model[@]}" --color always attention "$text" --layer 1 --all-heads
} | aha --black --title "gpt2-inspect attention" |
    sed "s/<pre>/<pre style=\"display:inline-block;margin:0;padding:12px 16px\">/" > "$work/terminal.html"

# The neuron view and the four stages in a colour terminal.
{
    printf '$ gpt2-inspect attention "The cat sat on" --layer 1 --head 3 --neuron 2\n'
    COLORTERM=truecolor COLUMNS=100 "$bin" "${model[@]}" --color always attention "The cat sat on" --layer 1 --head 3 --neuron 2
    printf '\n$ gpt2-inspect attention "The cat sat on" --layer 1 --head 3 --stages\n'
    COLORTERM=truecolor COLUMNS=100 "$bin" "${model[@]}" --color always attention "The cat sat on" --layer 1 --head 3 --stages
} | aha --black --title "gpt2-inspect neuron view and stages" |
    sed "s/<pre>/<pre style=\"display:inline-block;margin:0;padding:12px 16px\">/" > "$work/neuron.html"

# Saliency bars in a colour terminal.
{
    printf '$ gpt2-inspect saliency "%s" --method input-x-gradient\n' "$text"
    COLORTERM=truecolor COLUMNS=100 "$bin" "${model[@]}" --color always saliency "$text" --method input-x-gradient
} | aha --black --title "gpt2-inspect saliency" |
    sed "s/<pre>/<pre style=\"display:inline-block;margin:0;padding:12px 16px\">/" > "$work/saliency-terminal.html"

# SAE features: the tokens × features heatmap in a colour terminal, and a feature's dashboard.
sae=tests/fixtures/saes/topk
{
    printf '$ gpt2-inspect features "%s" --sae %s\n' "$text" "$sae"
    COLORTERM=truecolor COLUMNS=100 "$bin" "${model[@]}" --color always features "$text" --sae "$sae"
} | aha --black --title "gpt2-inspect features" |
    sed "s/<pre>/<pre style=\"display:inline-block;margin:0;padding:12px 16px\">/" > "$work/features.html"
"$bin" "${model[@]}" feature 40 --sae "$sae" "$text" "When Mary and John went to the store" \
    "The quick brown fox jumps over the lazy dog" --html "$work/dashboard.html" >/dev/null 2>&1

node scripts/screenshot.mjs \
    "$work/report.html=docs/report.png" \
    "$work/report.html=docs/report-neuron.png@#neuron-section" \
    "$work/report.html#L1H0,1,3=docs/report-overlay.png@#head-section" \
    "$work/figure-controls.svg=docs/figure-controls.png@svg" \
    "$work/attention.svg=docs/attention.png@svg" \
    "$work/attention-grid.svg=docs/attention-grid.png@svg" \
    "$work/terminal.html=docs/terminal.png@pre" \
    "$work/stages.svg=docs/stages.png@svg" \
    "$work/lens.svg=docs/lens.png@svg" \
    "$work/neuron.html=docs/neuron.png@pre" \
    "$work/saliency.svg=docs/saliency.png@svg" \
    "$work/patch-both.svg=docs/patch-both.png@svg" \
    "$work/circuit.svg=docs/circuit.png@svg" \
    "$work/graph.svg=docs/graph.png@svg" \
    "$work/saliency-terminal.html=docs/saliency-terminal.png@pre" \
    "$work/features.html=docs/features.png@pre" \
    "$work/dashboard.html=docs/dashboard.png"
