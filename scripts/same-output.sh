#!/usr/bin/env bash
# Runs two builds of gpt2-inspect on the same commands over the bundled fixture and says
# which commands differ in standard output, standard error or exit code: for a refactor
# that must change no printed number.
#
#   scripts/same-output.sh OLD_BINARY NEW_BINARY
#
# Build the old one from another worktree, e.g.
#   git worktree add /tmp/old HEAD~1 && (cd /tmp/old && cargo build --release)
set -uo pipefail
cd "$(dirname "$0")/.."
old="$1" new="$2"
model=(--model tests/fixtures/tiny-gpt2)
# The terminal heatmaps' layout follows the width.
export COLUMNS=100
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cases=(
    'tokenize "The cat sat" "A dog"'
    'tokenize "The cat sat" "A dog" --json'
    'next "The cat sat on the" -k 3'
    'next "The cat sat on the" "A dog" --json'
    'next "The cat sat on the" "A dog" "x y z" --jsonl'
    'next "The cat sat on the" "A dog" -k 2'
    'trace "The cat sat"'
    'trace "The cat sat" --json'
    'embed "The cat" --json'
    'hidden "The cat sat" --depth 2 --json'
    'lens "The cat sat on" --json'
    'lens "The cat sat on" --all-positions'
    'attention "The cat sat" --layer 1 --head 2'
    'attention "The cat sat" --layer 1 --json'
    'attention "The cat sat" "A dog" --format bertviz'
    'attention "The cat sat" --layer 1 --head 2 --neuron 2'
    'attention "The cat sat" --layer 1 --head 2 --stages'
    'attention "The cat sat on" --json --scores --qkv'
    'score "The cat sat on the mat" --json'
    'score "The cat sat on the mat" "A dog barked"'
    'generate "The cat" -n 8 --json'
    'generate "The cat" "A dog" -n 5'
    'generate "The cat" "A dog" -n 5 --json'
    'generate "The cat" -n 5 --temperature 0.8 --seed 3 --show-probs'
    'hooks --json'
    'info'
    'info --json'
    'patch --clean "The cat sat on the" --corrupt "The dog sat on the" --answer " mat" --wrong " rug" --site resid_pre --json'
    'ablate "The cat sat on the" --head 1.2 --json'
    'attribute "The cat sat on the" --answer " mat" --json'
    'heads --json'
    'attention "The cat sat on the mat" --layer 1 --color always'
    'attention "The cat sat on the mat" --all-heads --color always'
    'attention "The cat sat" --layer 1 --head 2 --neuron 2 --annot --color always'
    'attention "The cat sat" --layer 1 --head 2 --stages --color always'
    'lens "The cat sat on" --all-positions --color always'
)

# Commands that write a file (OUT): the files are compared too.
files=(
    'attention "The cat sat on the mat" --layer 1 --head 2 --svg OUT'
    'attention "The cat sat on the mat" --layer 1 --svg OUT'
    'attention "The cat sat on the mat" --all-heads --svg OUT'
    'attention "The cat sat on the mat" --layer 1 --head 2 --window 1:4 --svg OUT --annot'
    'attention "The cat sat on the mat" --layer 1 --head 2 --svg OUT --cmap viridis --scale log --title T'
    'attention "The cat sat on the mat" --layer 1 --head 2 --stages --svg OUT'
    'lens "The cat sat on the mat" --all-positions --svg OUT'
    'patch --clean "The cat sat on the" --corrupt "The dog sat on the" --answer " mat" --wrong " rug" --site head --svg OUT'
    'ablate "The cat sat on the" --sweep --svg OUT'
    'attribute "The cat sat on the" --answer " mat" --svg OUT'
    'heads --svg OUT'
    'report "The cat sat on the mat" -o OUT'
    'dump "The cat sat" -o OUT'
    'dump "The cat sat" "A dog" -o OUT'
)

differ=0
for c in "${files[@]}"; do
    eval "\"$old\" ${model[*]} ${c//OUT/$work/old.out}" >/dev/null 2>&1
    eval "\"$new\" ${model[*]} ${c//OUT/$work/new.out}" >/dev/null 2>&1
    if ! cmp -s "$work/old.out" "$work/new.out"; then
        echo "differs (file): $c"
        differ=$((differ + 1))
    fi
    rm -f "$work/old.out" "$work/new.out"
done
for c in "${cases[@]}"; do
    eval "\"$old\" ${model[*]} $c" >"$work/o" 2>"$work/oe"
    ro=$?
    eval "\"$new\" ${model[*]} $c" >"$work/n" 2>"$work/ne"
    rn=$?
    if [ "$ro" != "$rn" ] || ! cmp -s "$work/o" "$work/n" || ! cmp -s "$work/oe" "$work/ne"; then
        echo "differs (exit $ro vs $rn): $c"
        differ=$((differ + 1))
    fi
done
echo "$((${#cases[@]} + ${#files[@]})) commands, $differ differ"
[ "$differ" -eq 0 ]
