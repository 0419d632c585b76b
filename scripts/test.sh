#!/usr/bin/env bash
# Installs what is missing, checks that the repository stands alone, builds
# wsgate twice (plain, and with AddressSanitizer + UndefinedBehaviorSanitizer)
# and runs every test in both, then every test that starts a server under
# ThreadSanitizer and the libFuzzer targets (clang) for a bounded time.
#
# Every stage runs even when an earlier one failed; the run ends with one
# summary of every stage (the names of failed tests included) and a last line
# "N passed, N failed". The exit code is 0 only when nothing failed.
# Per-stage logs, JUnit files, each stage's time (stage-times.txt) and the
# inputs a fuzzer failed on (fuzz-artifacts/): build/test-results/.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! scripts/deps.sh; then
  echo "scripts/deps.sh failed: the packages above could not be installed" >&2
  echo "0 passed, 1 failed"
  exit 1
fi
jobs=$(nproc)
results=$PWD/build/test-results
rm -rf "$results"
mkdir -p "$results"

# stage_time STAGE START: how long the stage took (build and tests), for the
# summary; the whole run must stay under 25 minutes on 2 cores.
stage_time() { echo "$1 $(( $(date +%s) - $2 ))" >> "$results/stage-times.txt"; }

# A step that is not a ctest (a build, a check) and failed: counted as one
# failure named STAGE:STEP in the summary.
step_failed() { echo "$1" >> "$results/failed-steps.txt"; }

# configure_and_build STAGE DIR [TARGETS...] -- [CMAKE ARGS...]
configure_and_build() {
  local stage=$1 dir=$2
  shift 2
  local targets=()
  while [ $# -gt 0 ] && [ "$1" != "--" ]; do targets+=(--target "$1"); shift; done
  [ "${1:-}" = "--" ] && shift
  echo "=== $stage build" >&2
  if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DWSGATE_WERROR=ON "$@" > "$results/$stage-configure.log" 2>&1; then
    cat "$results/$stage-configure.log" >&2
    step_failed "$stage:configure"
    return 1
  fi
  if ! cmake --build "$dir" -j"$jobs" "${targets[@]}" > "$results/$stage-build.log" 2>&1; then
    grep -E 'error|warning' "$results/$stage-build.log" | head -n 50 >&2
    step_failed "$stage:build"
    return 1
  fi
  grep -E 'warning' "$results/$stage-build.log" | head -n 20 >&2 || true
  return 0
}

# run_ctest STAGE DIR [CTEST ARGS...]: results go to STAGE.xml.
run_ctest() {
  local stage=$1 dir=$2
  shift 2
  echo "=== $stage tests" >&2
  ctest --test-dir "$dir" --output-on-failure -j2 --output-junit "$results/$stage.xml" "$@"
  # A ctest that wrote no results (it could not start) is a failure too.
  [ -s "$results/$stage.xml" ] || step_failed "$stage:ctest"
}

echo "=== self-contained: nothing reads outside the repository" >&2
scripts/check-self-contained.sh || step_failed "checks:self_contained"

for kind in plain asan; do
  start=$(date +%s)
  extra=()
  [ "$kind" = asan ] && extra=(-DWSGATE_SANITIZE=ON)
  if configure_and_build "$kind" "build/test-$kind" -- "${extra[@]}"; then
    # detect_leaks: the sanitizer build also fails on leaks.
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      run_ctest "$kind" "build/test-$kind"
  fi
  stage_time "$kind" "$start"
done

# Every test that starts a server (label `server`, tests/server_label.cmake;
# the target server-tests builds what they need) under ThreadSanitizer.
# tests/tsan.supp: reports proven false in third-party code, each explained.
start=$(date +%s)
if configure_and_build tsan build/test-tsan server-tests -- -DWSGATE_TSAN=ON; then
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp" \
    run_ctest tsan build/test-tsan -L server
fi
stage_time tsan "$start"

# Every tests/fuzz/fuzz_*.cpp (the 'fuzzers' target), 20 s each, from the
# corpora in tests/fuzz/ copied to a temporary directory; a failing input is
# kept in build/test-results/fuzz-artifacts/.
start=$(date +%s)
if CC=clang CXX=clang++ configure_and_build fuzz build/test-fuzz fuzzers -- -DWSGATE_FUZZ=ON; then
  WSGATE_FUZZ_ARTIFACTS=$results/fuzz-artifacts run_ctest fuzz build/test-fuzz -R '^fuzz_'
fi
stage_time fuzz "$start"

echo "=== summary" >&2
exec /usr/bin/python3 scripts/test_summary.py "$results"
