#!/usr/bin/env bash
# Regenerates README.md's option table from the core's option table.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/readme -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/readme --target wsgate-options-md >/dev/null
table=$(build/readme/tests/wsgate-options-md)
python3 - "$table" <<'PY'
import re, sys
table = sys.argv[1]
text = open("README.md").read()
new = re.sub(r"(<!-- options-table:begin -->\n).*?(<!-- options-table:end -->)",
             lambda m: m.group(1) + table + "\n" + m.group(2), text, flags=re.S)
open("README.md", "w").write(new)
PY
