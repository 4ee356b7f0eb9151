#!/usr/bin/env bash
# Runs two builds of gpt2-inspect on the same commands over the bundled fixture and says
# which commands differ in standard output, standard error, exit code or the file they
# write: for a refactor that must change no printed number.
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
    'saliency "The cat sat on the"'
    'saliency "The cat sat on the" --json'
    'saliency "The cat sat on the" --method input-x-gradient --answer " mat" --wrong " rug"'
    'saliency "The cat sat on the" --method integrated-gradients --steps 8 --json'
    'saliency "The cat sat on the" --method rollout --color always'
    'saliency "The cat sat" --generate 3 --json'
    'saliency "The cat sat on the" --csv'
    'patch --clean "The cat sat on the" --corrupt "The dog sat on the" --answer " mat" --wrong " rug" --site resid_pre --metric logit'
    'patch --clean "The cat sat on the" --corrupt "The dog sat on the" --answer " mat" --wrong " rug" --site resid_pre --metric logprob'
    'patch --clean "The cat sat on the" --corrupt "The dog sat on the" --answer " mat" --wrong " rug" --site resid_pre --metric prob'
    'patch --clean "The cat sat on the" --corrupt "The dog sat on the" --site resid_pre --metric kl'
    'patch --clean "The cat sat on the" --corrupt "The dog sat on the" --answer " mat" --wrong " rug" --site resid_pre --metric kl'
    'patch --clean "The cat sat on the" --corrupt "The dog sat on the" --site head --metric kl --json'
    'patch --clean "The cat sat on the" --corrupt "The dog sat on the" --answer " mat" --wrong " rug" --site head --csv'
    'patch --clean "The cat sat on the" --corrupt "The dog sat on the" --answer " mat" --wrong " rug" --site resid_pre --method both'
    'circuit --clean "The cat sat on the mat" --corrupt "The dog sat on the mat" --answer " and" --wrong " with" --top 5'
    'circuit --clean "The cat sat on the mat" --corrupt "The dog sat on the mat" --answer " and" --wrong " with" --top 5 --json'
    'circuit --clean "The cat sat on the mat" --corrupt "The dog sat on the mat" --answer " and" --wrong " with" --top 5 --faithfulness 10,50 --csv'
    'circuit --clean "The cat sat on the mat" --corrupt "The dog sat on the mat" --answer " and" --wrong " with" --top 5 --ig-steps 3 --exact 3'
    'features "The cat sat on the mat" --sae tests/fixtures/saes/topk --per-token 3'
    'features "The cat sat on the mat" --sae tests/fixtures/saes/topk --per-token 3 --json'
    'features "The cat sat on the mat" --sae tests/fixtures/saes/topk --per-token 3 --csv'
    'feature 40 --sae tests/fixtures/saes/topk -k 3 "The cat sat on the mat" "When Mary and John went to the store" --window 2 --contexts 2'
    'feature 40,3 --sae tests/fixtures/saes/topk "The cat sat on the mat" --json'
    'next "The cat" --sae tests/fixtures/saes/topk --steer 40=5'
    'next "The cat" --sae tests/fixtures/saes/topk --steer 40=5 --json'
    'next "The cat sat on the" "A dog" --csv'
    'next "The cat sat on the" "A dog" --tsv'
    'score "The cat sat on the mat" "A dog barked" --csv'
    'attention "The cat sat" --layer 1 --csv'
    'lens "The cat sat on" --all-positions --csv'
    'ablate "The cat sat on the" --sweep --csv'
    'attribute "The cat sat on the" --answer " mat" --csv'
    'heads --csv'
    'hidden "The cat sat" --depth 2 --csv'
    'embed "The cat" --csv'
    'tokenize "The cat sat" --csv'
    'trace "The cat sat" --csv'
    'info --csv'
    'hooks --csv'
    'attention "The cat sat" --format bertviz'
    'attention "The cat sat" "A dog" --format bertviz --jsonl'
    'attention "The cat sat" "A dog" --format bertviz --json'
    'patch --clean "The cat sat on the" --corrupt "The dog sat on the" --answer " mat" --wrong " rug" --site resid_pre,head'
    'patch --clean "The cat sat on the" --corrupt "The dog sat on the" --answer " mat" --wrong " rug" --site resid_pre,head --json'
    'patch --clean "The cat sat on the" --corrupt "The dog sat on the" --answer " mat" --wrong " rug" --site resid_pre,head --jsonl'
    'patch --clean "The cat sat on the" --corrupt "The dog sat on the" --answer " mat" --wrong " rug" --site resid_pre,head --csv'
    'generate "The cat" "A dog" -n 3 --csv'
    'generate "The cat" "A dog" -n 3 --jsonl'
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
    'saliency "The cat sat on the" --method integrated-gradients --steps 8 --svg OUT'
    'saliency "The cat sat" --generate 3 --svg OUT'
    'patch --clean "The cat sat on the" --corrupt "The dog sat on the" --answer " mat" --wrong " rug" --site resid_pre --method both --svg OUT'
    'circuit --clean "The cat sat on the mat" --corrupt "The dog sat on the mat" --answer " and" --wrong " with" --top 5 --dot OUT'
    'circuit --clean "The cat sat on the mat" --corrupt "The dog sat on the mat" --answer " and" --wrong " with" --top 5 --svg OUT'
    'circuit --clean "The cat sat on the mat" --corrupt "The dog sat on the mat" --answer " and" --wrong " with" --top 5 --faithfulness 10,50 --svg OUT'
    'feature 40 --sae tests/fixtures/saes/topk "The cat sat on the mat" "When Mary and John went to the store" --html OUT'
    'dump "The cat sat" --sae tests/fixtures/saes/topk -o OUT'
)

differ=0
# Runs "$1" (a binary) on command $2 with OUT as $work/out: stdout, stderr and exit code
# into $work/$3, $work/$3e and $work/$3rc, the written file moved to $work/$3.out.
run() {
    rm -f "$work/out"
    eval "\"$1\" ${model[*]} ${2//OUT/$work/out}" >"$work/$3" 2>"$work/$3e"
    echo $? >"$work/$3rc"
    if [ -e "$work/out" ]; then mv "$work/out" "$work/$3.out"; else rm -f "$work/$3.out"; fi
}
same() {
    cmp -s "$work/o" "$work/n" && cmp -s "$work/oe" "$work/ne" && cmp -s "$work/orc" "$work/nrc"
}
for c in "${files[@]}"; do
    run "$old" "$c" o
    run "$new" "$c" n
    if ! same || ! cmp -s "$work/o.out" "$work/n.out" || [ ! -e "$work/o.out" ]; then
        echo "differs (file): $c"
        differ=$((differ + 1))
    fi
done
for c in "${cases[@]}"; do
    run "$old" "$c" o
    run "$new" "$c" n
    if ! same; then
        echo "differs (exit $(cat "$work/orc") vs $(cat "$work/nrc")): $c"
        differ=$((differ + 1))
    fi
done
echo "$((${#cases[@]} + ${#files[@]})) commands, $differ differ"
[ "$differ" -eq 0 ]
