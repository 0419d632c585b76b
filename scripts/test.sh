#!/usr/bin/env bash
# Installs what is missing, builds wsgate twice (plain, and with
# AddressSanitizer + UndefinedBehaviorSanitizer) and runs every test in both,
# then the cross-thread suites under ThreadSanitizer and the libFuzzer targets
# (clang) for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)
status=0
for kind in plain asan; do
  dir=build/test-$kind
  extra=()
  [ "$kind" = asan ] && extra=(-DWSGATE_SANITIZE=ON)
  echo "=== $kind build" >&2
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DWSGATE_WERROR=ON "${extra[@]}" >/dev/null
  cmake --build "$dir" -j"$jobs" 2>&1 | { grep -E 'warning|error' || true; }
  echo "=== $kind tests" >&2
  # detect_leaks: the sanitizer build also fails on leaks.
  if ! ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
       ctest --test-dir "$dir" --output-on-failure -j2; then
    status=1
  fi
done
echo "=== thread sanitizer (cross-thread sends, closes, stops)" >&2
dir=build/test-tsan
cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DWSGATE_WERROR=ON \
  -DCMAKE_C_FLAGS=-fsanitize=thread -DCMAKE_CXX_FLAGS=-fsanitize=thread \
  -DCMAKE_EXE_LINKER_FLAGS=-fsanitize=thread -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread >/dev/null
cmake --build "$dir" -j"$jobs" --target test_conn test_lifecycle test_load 2>&1 | { grep -E 'warning|error' || true; }
if ! TSAN_OPTIONS=halt_on_error=1 ctest --test-dir "$dir" --output-on-failure -j2 \
     -R '^(test_conn|test_lifecycle|test_load)$'; then
  status=1
fi
echo "=== fuzz targets (clang, libFuzzer, 20 s each)" >&2
dir=build/test-fuzz
CC=clang CXX=clang++ cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DWSGATE_FUZZ=ON \
  -DWSGATE_WERROR=ON >/dev/null
cmake --build "$dir" -j"$jobs" --target fuzz_jwt fuzz_origin fuzz_deflate fuzz_frames 2>&1 | { grep -E 'warning|error' || true; }
if ! ctest --test-dir "$dir" --output-on-failure -j2 -R '^fuzz_'; then
  status=1
fi
exit $status
