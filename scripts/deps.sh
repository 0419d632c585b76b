#!/usr/bin/env bash
# Installs what building and testing wsgate needs, from Debian 12 packages,
# skipping the apt round trip when everything is already there; then (not with
# --build-only) playwright-core from npm into build/node for the browser test
# (tests/browser: the version is pinned by tests/browser/package-lock.json).
set -euo pipefail
pkgs=(build-essential cmake pkg-config libwebsockets-dev libwebsockets-evlib-ev libev-dev libssl-dev zlib1g-dev nlohmann-json3-dev libhttp-parser-dev
      libhiredis-dev redis-server  # the cluster (lib/cluster) and its tests (tests/cluster: a real Redis)
      libcmocka-dev python3 python3-pytest python3-websockets python3-mypy python3-cryptography binutils git iproute2 python3-venv python3-pip python3-setuptools python3-wheel pybind11-dev python3-dev
      clang libclang-rt-14-dev
      golang-go  # Go 1.19: bindings/go (cgo) and its tests
      chromium fonts-dejavu-core
      prometheus  # only its promtool: test_metrics_http checks the exposition with it
      abigail-tools)  # abidw/abidiff: the ABI check (tests/abi/README.md)
[ "${1:-}" = "--build-only" ] && pkgs=(build-essential cmake pkg-config libwebsockets-dev libwebsockets-evlib-ev libev-dev
      libssl-dev zlib1g-dev nlohmann-json3-dev libhttp-parser-dev libcmocka-dev libhiredis-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

[ "${1:-}" = "--build-only" ] && exit 0
# The Node.js binding (bindings/node) builds against the machine's Node.js
# headers: NodeSource's nodejs ships /usr/include/node, Debian's needs libnode-dev.
if command -v node > /dev/null && [ ! -f /usr/include/node/node_api.h ] && [ ! -f /usr/local/include/node/node_api.h ]; then
  echo "deps: node_api.h is missing: bindings/node will not be built or tested (install Node.js's headers)" >&2
fi
# The browser test's npm package, installed once per lock file: npm ci
# reinstalls only when tests/browser/package-lock.json changed.
cd "$(dirname "$0")/.."
lock=tests/browser/package-lock.json
if ! cmp -s "$lock" build/node/package-lock.json 2>/dev/null || [ ! -f build/node/node_modules/playwright-core/package.json ]; then
  # Node 20 with its npm comes with the machine (Debian 12's own nodejs is 18, too old).
  if ! command -v npm > /dev/null; then
    echo "deps: npm is missing: install Node.js 20 or later with its npm (the browser test needs it)" >&2
    exit 1
  fi
  echo "deps: installing playwright-core into build/node (npm ci)" >&2
  mkdir -p build/node
  cp tests/browser/package.json "$lock" build/node/
  (cd build/node && npm ci --no-audit --no-fund --loglevel=error) >&2
fi
