#!/usr/bin/env bash
# Installs what building and testing wsgate needs, from Debian 12 packages,
# skipping the apt round trip when everything is already there.
set -euo pipefail
pkgs=(build-essential cmake pkg-config libwebsockets-dev libwebsockets-evlib-ev libev-dev libssl-dev zlib1g-dev nlohmann-json3-dev libhttp-parser-dev
      libcmocka-dev python3 python3-pytest python3-websockets python3-cryptography binutils git iproute2 python3-venv python3-pip python3-setuptools python3-wheel pybind11-dev python3-dev
      clang libclang-rt-14-dev)
[ "${1:-}" = "--build-only" ] && pkgs=(build-essential cmake pkg-config libwebsockets-dev libwebsockets-evlib-ev libev-dev
      libssl-dev zlib1g-dev nlohmann-json3-dev libhttp-parser-dev libcmocka-dev)
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
