#!/usr/bin/python3
"""bench_smoke: runs bench/run_matrix.py --smoke into a temporary directory and
checks what it wrote.   smoke.py RUN_MATRIX BUILD_DIR"""
import json
import os
import subprocess
import sys
import tempfile


def main():
    script, build = sys.argv[1], sys.argv[2]
    with tempfile.TemporaryDirectory(prefix="wsgate-smoke-") as out:
        r = subprocess.run([sys.executable, script, "--build-dir", build, "--smoke", "--out", out])
        problems = []
        if r.returncode != 0:
            problems.append(f"run_matrix.py exited {r.returncode}")
        path = os.path.join(out, "RESULTS.md")
        text = open(path).read() if os.path.exists(path) else ""
        for section in ("## Machine and method", "## Targets", "## echo W=16 S=64", "## idle memory",
                        "## handshakes plain", "## broadcast", "## topics ", "## slow consumers ",
                        "**Topics.**", "**Slow consumers.**", "## Reproducing"):
            if section not in text:
                problems.append(f"RESULTS.md lacks '{section}'")
        data = json.load(open(os.path.join(out, "results.json"))) if os.path.exists(
            os.path.join(out, "results.json")) else {"runs": []}
        if not data["runs"]:
            problems.append("results.json has no runs")
        # The targets the smoke configuration measures (no 4 KiB echo, one
        # memory size), each with a verdict in the report's words.
        targets = data.get("targets", [])
        for prefix in ("idle memory at N=", "echo W=16 S=64: server CPU per message",
                       "broadcast 1,000 msg/s to 1,000 subscribers", "handshakes plain: handshakes/s",
                       "publish to 10 topics: server CPU per delivery",
                       "slow consumers (2 of 40 stop reading), policy=close"):
            if not any(t["target"].startswith(prefix) for t in targets):
                problems.append(f"no target '{prefix}...' in results.json")
        for t in targets:
            if not (t["verdict"] == "met" or t["verdict"].startswith("missed")):
                problems.append(f"target '{t['target']}': verdict {t['verdict']!r}")
            if f"| {t['target']} |" not in text:
                problems.append(f"target '{t['target']}' not in RESULTS.md")
        for e in data["runs"]:
            res = e.get("result") or {}
            if not res.get("connected"):
                problems.append(f"{e['case']} / {e['label']}: no result")
            if e["case"].startswith("echo") and res and (res.get("lost") or res.get("mismatched")):
                problems.append(f"{e['case']} / {e['label']}: lost {res.get('lost')} mismatched {res.get('mismatched')}")
            # Topic messages reach their topic's subscribers only; the slow
            # consumers' runs count the slow ones apart.
            if e["case"].startswith(("topics ", "slow consumers ")) and res and res.get("mismatched"):
                problems.append(f"{e['case']} / {e['label']}: {res.get('mismatched')} misrouted messages")
            if e["case"].startswith("slow consumers ") and e["label"].startswith("policy=") and res \
                    and (res.get("slow") or {}).get("subscribers") != 2:
                problems.append(f"{e['case']} / {e['label']}: slow subscribers {res.get('slow')}")
        print(text[:3000])
        for p in problems:
            print("FAIL " + p)
        return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
