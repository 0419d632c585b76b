#!/usr/bin/env bash
# ctest's fuzz_NAME_smoke: one libFuzzer target for a bounded time, starting
# from the corpora kept in the tree, without ever writing into the tree.
#
# usage: run_fuzzer.sh FUZZER SECONDS ARTIFACT_DIR [CORPUS_DIR...]
#
# The CORPUS_DIRs (tests/fuzz/NAME_seeds, tests/fuzz/NAME_corpus) are only
# read: their files are copied into a fresh temporary directory, which the
# fuzzer grows and which is removed afterwards. A crash, sanitizer report,
# leak, timeout or out-of-memory fails the test (libFuzzer's exit code) and
# leaves the input in ARTIFACT_DIR as FUZZER-crash-<sha1> (or -leak-,
# -timeout-, -oom-); WSGATE_FUZZ_ARTIFACTS overrides ARTIFACT_DIR
# (scripts/test.sh points it into build/test-results/). Reproduce with
# `FUZZER FILE`.
set -uo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 FUZZER SECONDS ARTIFACT_DIR [CORPUS_DIR...]" >&2
    exit 2
fi
fuzzer=$1 seconds=$2 artifacts=${WSGATE_FUZZ_ARTIFACTS:-$3}
shift 3
name=$(basename "$fuzzer")
mkdir -p "$artifacts" || exit 2
work=$(mktemp -d "${TMPDIR:-/tmp}/wsgate-$name.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT

# Each directory is copied whole into its own subdirectory (libFuzzer reads a
# corpus directory recursively): one cp per directory, not per file, and a
# seed and a corpus entry with the same name cannot overwrite each other.
for dir in "$@"; do
    [ -d "$dir" ] || { echo "$name: corpus directory $dir does not exist" >&2; exit 2; }
    cp -R -- "$dir" "$work/$(basename "$dir")" || exit 2
done
n=$(find "$work" -type f | wc -l)
echo "$name: $n inputs from $*; fuzzing for $seconds s in $work" >&2

"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/$name-" "$work"
rc=$?
if [ $rc -ne 0 ]; then
    echo "$name: FAILED (exit $rc); the input that failed is in $artifacts:" >&2
    ls -l "$artifacts" | grep -F -- "$name-" >&2
    echo "reproduce: $fuzzer $artifacts/$name-<kind>-<sha1>" >&2
fi
exit $rc
