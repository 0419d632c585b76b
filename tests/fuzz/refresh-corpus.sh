#!/usr/bin/env bash
# Refreshes the minimised corpora kept in the tree (tests/fuzz/NAME_corpus/):
# each target fuzzes for SECONDS from its seeds and current corpus in a
# temporary directory, then libFuzzer's -merge=1 keeps, on top of the seeds,
# only the inputs that add coverage; those replace NAME_corpus/ (file names:
# the SHA-1 of the content). Review the diff (sizes, count) and commit it.
#
# usage: tests/fuzz/refresh-corpus.sh BUILD_DIR [SECONDS] [NAME...]
#   BUILD_DIR  a build with the fuzzers:
#              CC=clang CXX=clang++ cmake -S . -B BUILD_DIR -DWSGATE_FUZZ=ON
#              cmake --build BUILD_DIR --target fuzzers
#   SECONDS    per target (default 300)
#   NAME       jwt, origin, deflate, http, frames, cluster (default: every fuzz_*.cpp)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -lt 1 ]; then
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
build=$1
seconds=${2:-300}
shift $(( $# >= 2 ? 2 : 1 ))
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for src in "$here"/fuzz_*.cpp; do
        n=$(basename "$src" .cpp)
        names+=("${n#fuzz_}")
    done
fi

for name in "${names[@]}"; do
    fuzzer=$build/tests/fuzz_$name
    seeds=$here/${name}_seeds
    corpus=$here/${name}_corpus
    [ -x "$fuzzer" ] || { echo "no fuzzer $fuzzer: build the 'fuzzers' target" >&2; exit 1; }
    [ -d "$seeds" ] || { echo "no seeds in $seeds" >&2; exit 1; }
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsgate-refresh-$name.XXXXXX")
    mkdir "$tmp/grow" "$tmp/merged"
    cp -- "$seeds"/* "$tmp/grow/"
    [ -d "$corpus" ] && cp -- "$corpus"/* "$tmp/grow/" 2>/dev/null || true
    echo "== fuzz_$name: $seconds s" >&2
    "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=4096 \
        -print_final_stats=1 -artifact_prefix="$tmp/" "$tmp/grow" 2> "$tmp/fuzz.log" || {
        tail -n 40 "$tmp/fuzz.log" >&2
        echo "fuzz_$name failed; its input is kept in $tmp" >&2
        exit 1
    }
    # The seeds go in first, so only what adds coverage beyond them is kept.
    cp -- "$seeds"/* "$tmp/merged/"
    "$fuzzer" -merge=1 -timeout=10 -rss_limit_mb=2048 "$tmp/merged" "$tmp/grow" 2> "$tmp/merge.log" || {
        tail -n 20 "$tmp/merge.log" >&2
        exit 1
    }
    for f in "$seeds"/*; do rm -f -- "$tmp/merged/$(basename "$f")"; done
    rm -rf "$corpus"
    mkdir "$corpus"
    cp -- "$tmp/merged"/* "$corpus/" 2>/dev/null || true
    echo "fuzz_$name: $(ls "$corpus" | wc -l) corpus files, $(du -sb "$corpus" | cut -f1) bytes" >&2
    rm -rf "$tmp"
done
