#!/usr/bin/env bash
# Regenerates README.md's generated tables (options, log events, close causes,
# statuses, queue policies, metrics) from the lists they come from.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build/readme -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build build/readme --target wsgate-options-md wsgate-lists-md >/dev/null
replace() {
  python3 - "$1" "$2" <<'PY'
import re, sys
name, table = sys.argv[1], sys.argv[2]
text = open("README.md").read()
new = re.sub(r"(<!-- %s-table:begin -->\n).*?(<!-- %s-table:end -->)" % (name, name),
             lambda m: m.group(1) + table + "\n" + m.group(2), text, flags=re.S)
open("README.md", "w").write(new)
PY
}
replace options "$(build/readme/tests/wsgate-options-md)"
for t in events causes statuses policies codes advice metrics; do replace "$t" "$(build/readme/tests/wsgate-lists-md "$t")"; done
# The chat demo page's copy of the close-code contract.
/usr/bin/python3 - "$(build/readme/tests/wsgate-lists-md advice-js)" <<'PY'
import re, sys
path = "examples/chat/index.html"
text = open(path).read()
new = re.sub(r"(// close-advice:begin\n).*?(  // close-advice:end)",
             lambda m: m.group(1) + sys.argv[1] + "\n" + m.group(2), text, flags=re.S)
open(path, "w").write(new)
PY
