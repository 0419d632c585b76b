#!/usr/bin/env bash
# The Python binding's test command (ctest `python_binding`):
#   1. copy the source tree (without .git and build directories) to a
#      temporary directory, so the build is fresh and the checkout untouched;
#   2. create a fresh venv there with Debian's /usr/bin/python3
#      --system-site-packages (pytest and websockets come from apt);
#   3. pip install --no-build-isolation --no-index ./python (setuptools drives
#      CMake for libwsgate, or links the one in WSGATE_LIB_DIR as ctest asks,
#      and builds the pybind11 extension);
#   4. run python -m pytest -q -p no:cacheprovider python/tests from that venv.
# The temporary directory is removed afterwards. Extra arguments go to pytest.
# WSGATE_KEEP_TMP=1 keeps it for inspection. WSGATE_TEST_PRELOAD: a library
# preloaded into Python for step 4 only (the ThreadSanitizer runtime, see
# tests.cmake); pip and the compilers run without it.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
py=${WSGATE_TEST_PYTHON:-/usr/bin/python3}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wsgate-py.XXXXXX")
cleanup() {
  if [ "${WSGATE_KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

mkdir "$tmp/src"
tar -C "$root" -cf - --exclude=.git --exclude='./build*' --exclude='./python/build' \
    --exclude='./python/dist' --exclude='*.egg-info' --exclude='__pycache__' \
    --exclude='./python/wsgate/_core*.so' --exclude='./python/wsgate/libwsgate.so*' . \
  | tar -C "$tmp/src" -xf -

"$py" -m venv --system-site-packages "$tmp/venv"
cd "$tmp/src"
echo "python_binding: building and installing ./python into a fresh venv" >&2
if ! "$tmp/venv/bin/pip" install -q --no-build-isolation --no-index ./python > "$tmp/pip.log" 2>&1; then
  cat "$tmp/pip.log" >&2
  echo "python_binding: pip install failed" >&2
  exit 1
fi
# Test the installed package, not the sources: run from the source copy's
# root, where no 'wsgate' directory shadows it.
cd "$tmp/src"
preload=()
[ -n "${WSGATE_TEST_PRELOAD:-}" ] && preload=(env "LD_PRELOAD=$WSGATE_TEST_PRELOAD")
${preload[@]+"${preload[@]}"} "$tmp/venv/bin/python" -c 'import wsgate, sys; print("python_binding: wsgate", wsgate.library_version(), "from", wsgate.__file__, file=sys.stderr)'
${preload[@]+"${preload[@]}"} "$tmp/venv/bin/python" -m pytest -q -p no:cacheprovider python/tests "$@"
