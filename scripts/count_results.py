#!/usr/bin/env python3
"""Sum test results from pytest JUnit XML files and meson test logs; print the closing line."""
import json
import pathlib
import sys
import xml.etree.ElementTree as ET


def count(results_dir: pathlib.Path):
    passed = failed = skipped = 0
    for xml in sorted(results_dir.glob("pytest-*.xml")):
        for suite in ET.parse(xml).getroot().iter("testsuite"):
            total = int(suite.get("tests", 0))
            bad = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            skip = int(suite.get("skipped", 0))
            passed += total - bad - skip
            failed += bad
            skipped += skip
    for log in sorted(results_dir.glob("unit-*.json")):
        for line in log.read_text().splitlines():
            if not line.strip():
                continue
            result = json.loads(line).get("result")
            if result in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif result == "SKIP":
                skipped += 1
            else:
                failed += 1
    return passed, failed, skipped


def main():
    results = pathlib.Path(sys.argv[1])
    failed_steps = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    passed, failed, skipped = count(results)
    failed += failed_steps
    if passed + failed == 0:
        failed = 1  # running nothing is a failure, not a pass
    print(f"{passed} passed, {failed} failed, {skipped} skipped")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
