#!/usr/bin/env bash
# Fails when any Rust file the project tracks is not as rustfmt writes it.
#
# `cargo fmt --check` only reaches files through `mod` items it can see, and rustfmt does
# not look inside macro calls (rustfmt issues 3253, 6587): a module declared in a macro
# would go unchecked. So every tracked .rs file is given to rustfmt by name.
#
#   scripts/check-fmt.sh              check the repository
#   scripts/check-fmt.sh --self-test  prove that the check fails on such a file
set -euo pipefail
cd "$(dirname "$0")/.."

check() { # DIR: every .rs file git tracks (or finds, outside git) below DIR
    local dir="$1" files
    if git -C "$dir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        files=$(git -C "$dir" ls-files --cached --others --exclude-standard '*.rs')
    else
        files=$(cd "$dir" && find . -name '*.rs' -not -path './target/*')
    fi
    # shellcheck disable=SC2086
    (cd "$dir" && rustfmt --check --edition 2021 $files)
}

if [ "${1:-}" = "--self-test" ]; then
    dir=$(mktemp -d)
    trap 'rm -rf "$dir"' EXIT
    mkdir -p "$dir/src"
    printf 'macro_rules! m { () => { mod hidden; }; }\nm!();\n\nfn main() {}\n' >"$dir/src/main.rs"
    printf 'use std::{io};\npub fn  f( )->u8{1}\n' >"$dir/src/hidden.rs"
    if check "$dir" >/dev/null 2>&1; then
        echo "check-fmt self-test: an unformatted module declared in a macro passed" >&2
        exit 1
    fi
    echo "check-fmt self-test: an unformatted module declared in a macro fails the check"
    exit 0
fi

check .
echo "check-fmt: every tracked .rs file is formatted"
