#!/usr/bin/env bash
# Fails when a tracked file refers to something outside the repository: the
# steering folder a developer may have beside the checkout, or this machine's
# workspace paths. A user's clone has neither, so a build, script or test that
# reads them works here and breaks there. (tests/fresh_clone proves the same
# from the other side: it clones into an empty folder and builds there.)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! git rev-parse --is-inside-work-tree > /dev/null 2>&1; then
  echo "check-self-contained: not a git checkout; nothing to check" >&2
  exit 0
fi
# The pattern is split so this file does not match itself.
pattern='\.\./'"shared|/wo""rk/"
if hits=$(git grep -nE "$pattern" -- . ':!tests/security/vectors/*.json'); then
  echo "check-self-contained: these lines refer to files outside the repository:" >&2
  echo "$hits" >&2
  echo "copy what they need into the tree (with its licence) and point them there" >&2
  exit 1
fi
echo "check-self-contained: no tracked file refers outside the repository" >&2
