"""Smoke test of ringfuse-bench: a --quick run of memfs on each transport must produce a
number in every cell, for the transport and for the native configuration, leave no mount
behind, and write a JSON file and a well-formed SVG chart. A short run of the CPU, idle and
unprivileged-caller cells must give the daemon's CPU numbers; and, when a libfuse build
directory is given in RINGFUSE_LIBFUSE_BUILD (with example/passthrough_hp and
example/memfs_ll), a tiny --libfuse comparison must run every peer.

Skipped when the daemons or ringfuse-mdbench are not built (RINGFUSE_BUILD, default
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


def need_built(build, *progs):
    for prog in progs + (os.path.join("tools", "bench", "ringfuse-mdbench"),):
        if not os.access(os.path.join(build, prog), os.X_OK):
            pytest.skip("%s is not built" % os.path.join(build, prog))
    if not shutil.which("fio"):
        pytest.skip("fio is not installed (apt-get install fio)")


def run_bench(build, args, timeout=600):
    cmd = [sys.executable, bench_script(build), "--build-dir", build] + args
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace")


def median(doc, cfg, cell, key):
    return doc["summary"][cfg][cell][key]["median"]


def positive(v):
    return isinstance(v, (int, float)) and math.isfinite(v) and v > 0


def no_leftovers(doc):
    # This run's mount points only: another run of the benchmark may be mounting beside it.
    ours = {os.path.realpath(m["argv"][-1]) for m in doc["mounts"] if m.get("argv")}
    leftover = [m for m in rfutil.mounts() if m[0] in ours]
    assert not leftover, leftover
    # Every daemon process the run found was waited for (none still runs beside the next).
    alive = [p for m in doc["mounts"] for p in m.get("pids", [])
             if os.path.exists("/proc/%d" % p) and "Z" not in open("/proc/%d/stat" % p).read()
             .rsplit(")", 1)[1].split()[:1]]
    assert not alive, alive


@pytest.mark.serial
def test_bench_quick(transport, tmp_path):
    build = rfutil.build_dir()
    need_built(build, os.path.join("fs", "ringfuse-memfs"))
    if rfutil.base_transport(transport) == "uring":
        why = rfutil.uring_unusable_reason()
        if why:
            pytest.skip("FUSE over io_uring unavailable: " + why)

    out_json, out_svg = str(tmp_path / "bench.json"), str(tmp_path / "bench.svg")
    which = ["--transports", transport]
    if transport in rfutil.TRANSPORT_VARIANTS:  # a variant is a configuration of the bench
        which = ["--transports", "", "--config",
                 "%s:%s" % (transport, ",".join(rfutil.transport_opts(transport)))]
    cmd = [sys.executable, bench_script(build), "--quick", "--fs", "memfs"] + which + [
           "--baseline", transport, "--build-dir", build, "--json", out_json, "--svg", out_svg]
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
                if cfg == "native" and "cpu" in m["key"]:
                    assert v is None  # no daemon to measure
                    continue
                assert positive(v), (
                    "%s / %s / %s has no number\n%s" % (cfg, cell["name"], m["key"], output))
    assert not [s for s in doc["samples"] if s.get("error")], output
    # The daemon must have served on the transport the column is named after.
    seen = {m.get("transport_seen") for m in doc["mounts"] if m["config"] == transport}
    assert seen == {rfutil.base_transport(transport)}, output
    ET.parse(out_svg)
    assert transport in output and "native" in output  # the table was printed
    no_leftovers(doc)


@pytest.mark.serial
def test_bench_cpu_idle_and_unprivileged(tmp_path):
    """The daemon's CPU per operation in every kind of cell, its idle CPU, and the cells run
    as an unprivileged caller (the mount gets allow_other), over passthrough."""
    build = rfutil.build_dir()
    need_built(build, os.path.join("fs", "ringfuse-passthrough"))
    transport = "dev" if rfutil.uring_unusable_reason() else "uring"
    out_json = str(tmp_path / "bench.json")
    rc, output = run_bench(build, [
        "--fs", "passthrough", "--transports", transport, "--baseline", transport,
        "--cells", "meta-user,rand4k-qd1,rand4k-qd1-user,idle", "--runtime", "1",
        "--repeat", "1", "--ramp", "0", "--idle-seconds", "1", "--md-files", "200",
        "--size", "16m", "--json", out_json, "--no-svg"])
    assert rc == 0, output
    with open(out_json) as f:
        doc = json.load(f)
    assert doc["meta"]["as_user"] == "nobody"
    for key in ("create_cpu_us", "stat_cpu_us", "unlink_cpu_us", "create_ops"):
        assert positive(median(doc, transport, "meta-user", key)), (key, output)
        assert positive(median(doc, "native", "meta-user", key.replace("_cpu_us", "_ops")))
    for cell in ("rand4k-qd1", "rand4k-qd1-user"):
        assert positive(median(doc, transport, cell, "cpu_us")), output
        assert median(doc, "native", cell, "cpu_us") is None  # no daemon, no CPU
    idle = median(doc, transport, "idle", "idle_cpu_pct")
    assert isinstance(idle, (int, float)) and 0 <= idle < 100, output
    users = {s["raw"].get("user") for s in doc["samples"] if s["cell"].endswith("-user")}
    assert users == {"nobody"}
    engines = {(s["cell"], s["raw"]["ioengine"]) for s in doc["samples"]
               if s["cell"].startswith("rand4k")}
    assert engines == {("rand4k-qd1", "psync"), ("rand4k-qd1-user", "psync")}
    (m,) = [m for m in doc["mounts"] if m["config"] == transport]
    assert len(m["pids"]) == 1 and "allow_other" in " ".join(m["argv"])
    no_leftovers(doc)


@pytest.mark.serial
def test_bench_libfuse(tmp_path):
    """A tiny run beside libfuse's passthrough_hp and memfs_ll (RINGFUSE_LIBFUSE_BUILD)."""
    libfuse = os.environ.get("RINGFUSE_LIBFUSE_BUILD")
    if not libfuse:
        pytest.skip("RINGFUSE_LIBFUSE_BUILD (a libfuse build directory) is not set")
    build = rfutil.build_dir()
    need_built(build, os.path.join("fs", "ringfuse-memfs"),
               os.path.join("fs", "ringfuse-passthrough"))
    why = rfutil.uring_unusable_reason()
    if why:
        pytest.skip("FUSE over io_uring unavailable: " + why)
    out_json, out_svg = str(tmp_path / "bench.json"), str(tmp_path / "headline.svg")
    rc, output = run_bench(build, [
        "--fs", "memfs,passthrough", "--libfuse", libfuse, "--transports", "uring",
        "--cells", "meta,rand4k-qd1,idle", "--runtime", "1", "--repeat", "1", "--ramp", "0",
        "--idle-seconds", "1", "--md-files", "200", "--size", "16m", "--json", out_json,
        "--no-svg", "--headline-svg", out_svg])
    assert rc == 0, output
    with open(out_json) as f:
        doc = json.load(f)
    names = [c["name"] for c in doc["configs"]]
    assert names == ["memfs-uring", "passthrough-uring", "hp-uring", "hp-dev",
                     "memfs_ll-uring", "native"], output
    for cfg in names[:-1]:
        for cell, key in (("meta", "create_ops"), ("meta", "stat_cpu_us"),
                          ("rand4k-qd1", "iops"), ("rand4k-qd1", "cpu_us")):
            assert positive(median(doc, cfg, cell, key)), (cfg, cell, key, output)
    seen = {m["config"]: (m.get("transport_seen"), m.get("io_uring_instances"))
            for m in doc["mounts"]}
    for cfg in ("hp-uring", "memfs_ll-uring"):
        assert seen[cfg][0] == "uring" and seen[cfg][1] > 0, seen
    assert seen["hp-dev"] == ("dev", 0), seen
    assert {(p["config"], p["versus"]) for p in doc["pairs"]} >= {
        ("memfs-uring", "memfs_ll-uring"), ("passthrough-uring", "hp-uring")}
    assert "memfs-uring / memfs_ll-uring" in output
    ET.parse(out_svg)
    assert not doc["warnings"], doc["warnings"]
    no_leftovers(doc)
