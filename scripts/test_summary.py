"""Summarises a scripts/test.sh run: one line per stage, the failed tests by
name, and a last line "N passed, N failed".

usage: test_summary.py RESULTS_DIR

RESULTS_DIR holds one ctest JUnit file per stage (STAGE.xml) and, when a step
that is not a test failed (configure, build, a check), failed-steps.txt with
one STAGE:STEP per line; each such step counts as one failure;
stage-times.txt, when present, "STAGE SECONDS" per line (shown per stage).
Exits 1 when anything failed or no test ran at all.
"""

import sys
import xml.etree.ElementTree as ET
from pathlib import Path

STAGE_ORDER = ["checks", "plain", "asan", "tsan", "fuzz"]


def stage_key(name: str):
    return (STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER), name)


def main() -> int:
    results = Path(sys.argv[1])
    stages = {}  # stage -> [passed, failed names, skipped names]
    for xml in sorted(results.glob("*.xml")):
        passed, failed, skipped = 0, [], []
        for case in ET.parse(xml).getroot().iter("testcase"):
            status = case.get("status", "")
            if status == "run":
                passed += 1
            elif status == "notrun" or status == "disabled":
                skipped.append(case.get("name", "?"))
            else:
                failed.append(case.get("name", "?"))
        stages[xml.stem] = [passed, failed, skipped]
    steps = results / "failed-steps.txt"
    if steps.exists():
        for line in steps.read_text().split():
            stage, _, step = line.partition(":")
            stages.setdefault(stage, [0, [], []])[1].append(step)

    times = {}
    time_file = results / "stage-times.txt"
    if time_file.exists():
        for line in time_file.read_text().splitlines():
            stage, _, seconds = line.partition(" ")
            if seconds.isdigit():
                times[stage] = int(seconds)

    total_passed = total_failed = total_skipped = 0
    failed_names = []
    for stage in sorted(stages, key=stage_key):
        passed, failed, skipped = stages[stage]
        total_passed += passed
        total_failed += len(failed)
        total_skipped += len(skipped)
        failed_names += [f"{stage}/{name}" for name in failed]
        extra = f", {len(skipped)} skipped" if skipped else ""
        took = f" ({times[stage] // 60} min {times[stage] % 60:02d} s)" if stage in times else ""
        print(f"  {stage:<8} {passed:4d} passed, {len(failed)} failed{extra}{took}")
    if failed_names:
        print("failed: " + " ".join(failed_names))
    if total_passed + total_failed == 0:
        print("no test ran")
        total_failed = 1
    extra = f", {total_skipped} skipped" if total_skipped else ""
    print(f"{total_passed} passed, {total_failed} failed{extra}")
    return 1 if total_failed else 0


if __name__ == "__main__":
    sys.exit(main())
