"""Smoke test of ringfuse-bench: a --quick run of memfs on each transport must produce a
number in every cell, for the transport and for the native configuration, leave no mount
behind, and write a JSON file and a well-formed SVG chart.

Skipped when the memfs daemon or ringfuse-mdbench is not built (RINGFUSE_BUILD, default
"build") or fio is not installed (apt-get install fio).
"""

import json
import math
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

import rfutil

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def bench_script(build):
    built = os.path.join(build, "tools", "bench", "ringfuse-bench")
    return built if os.path.exists(built) else os.path.join(REPO, "tools", "bench",
                                                            "ringfuse-bench")


@pytest.mark.serial
def test_bench_quick(transport, tmp_path):
    build = rfutil.build_dir()
    for prog in (os.path.join(build, "fs", "ringfuse-memfs"),
                 os.path.join(build, "tools", "bench", "ringfuse-mdbench")):
        if not os.access(prog, os.X_OK):
            pytest.skip("%s is not built" % prog)
    if not shutil.which("fio"):
        pytest.skip("fio is not installed (apt-get install fio)")
    if transport == "uring":
        why = rfutil.uring_unusable_reason()
        if why:
            pytest.skip("FUSE over io_uring unavailable: " + why)

    out_json, out_svg = str(tmp_path / "bench.json"), str(tmp_path / "bench.svg")
    cmd = [sys.executable, bench_script(build), "--quick", "--fs", "memfs",
           "--transports", transport, "--baseline", transport, "--build-dir", build,
           "--json", out_json, "--svg", out_svg]
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=300)
    output = p.stdout.decode(errors="replace")
    assert p.returncode == 0, output

    with open(out_json) as f:
        doc = json.load(f)
    assert [c["name"] for c in doc["configs"]] == [transport, "native"]
    assert doc["cells"], output
    for cfg in (transport, "native"):
        for cell in doc["cells"]:
            for m in cell["metrics"]:
                v = doc["summary"][cfg][cell["name"]][m["key"]]["median"]
                assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0, (
                    "%s / %s / %s has no number\n%s" % (cfg, cell["name"], m["key"], output))
    assert not [s for s in doc["samples"] if s.get("error")], output
    # The daemon must have served on the transport the column is named after.
    seen = {m.get("transport_seen") for m in doc["mounts"] if m["config"] == transport}
    assert seen == {transport}, output
    ET.parse(out_svg)
    assert transport in output and "native" in output  # the table was printed
    leftover = [m for m in rfutil.mounts() if "ringfuse-bench." in m[0]]
    assert not leftover, leftover
