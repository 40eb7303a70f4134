"""Unit tests of ringfuse-bench's parsing, statistics and reporting (no mount, no root).

Run: python3 -m pytest test/unit/test_bench.py
The fio and mdbench samples in data/ are real outputs recorded from the two programs.
"""

import copy
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "bench"))

from ringfuse_bench import (cells, cli, configs, fio, mdbench, mounts, peers,  # noqa: E402
                            procstat, report, stats)

DATA = os.path.join(HERE, "data")


def load(name):
    with open(os.path.join(DATA, name)) as f:
        return f.read()


# ---- fio ----

def test_fio_cmd_single_job():
    job = fio.FioJob("bench", "/mnt/x", "rf-data", "randread", bs="4k", size="64m",
                     iodepth=32, runtime=2.5, ioengine="libaio")
    cmd = fio.build_cmd(job, "fio")
    assert cmd[0] == "fio"
    assert "--directory=/mnt/x" in cmd
    assert "--filename_format=rf-data.$jobnum" in cmd
    assert "--rw=randread" in cmd and "--iodepth=32" in cmd and "--ioengine=libaio" in cmd
    assert "--direct=1" in cmd and "--output-format=json" in cmd
    assert "--time_based" in cmd and "--runtime=2500ms" in cmd
    assert "--lat_percentiles=1" in cmd
    assert not any(a.startswith("--numjobs") for a in cmd)
    assert not any(a.startswith("--ramp_time") for a in cmd)


def test_fio_cmd_numjobs_and_layout():
    job = fio.FioJob("layout", "/d", "rf-data", "read", bs="1m", numjobs=4, create_only=True)
    cmd = fio.build_cmd(job)
    assert "--numjobs=4" in cmd and "--group_reporting" in cmd
    assert "--create_only=1" in cmd
    # a layout job measures nothing
    assert "--time_based" not in cmd and not any("percentile" in a for a in cmd)
    job = fio.FioJob("b", "/d", "rf-data", "read", ramp=1)
    assert "--ramp_time=1000ms" in fio.build_cmd(job)


def test_fio_parse_sample():
    text = load("fio-sample.json")
    raw = json.loads(text)
    doc = fio.parse_output(text)
    s = fio.summarize(doc, "randread")
    rd = raw["jobs"][0]["read"]
    assert s["iops"] == pytest.approx(rd["iops"])
    assert s["ios"] == rd["total_ios"] > 0
    assert s["mbps"] == pytest.approx(rd["bw_bytes"] / 1e6)
    assert s["lat_p50_us"] == pytest.approx(rd["lat_ns"]["percentile"]["50.000000"] / 1000)
    assert s["lat_p99_us"] == pytest.approx(rd["lat_ns"]["percentile"]["99.000000"] / 1000)
    assert s["lat_p999_us"] == pytest.approx(rd["lat_ns"]["percentile"]["99.900000"] / 1000)
    assert s["lat_p50_us"] <= s["lat_p99_us"] <= s["lat_p999_us"]


def test_fio_parse_with_leading_notes():
    text = "fio: terminating on signal 2\nnote: something\n" + load("fio-sample.json")
    assert fio.summarize(fio.parse_output(text), "randread")["iops"] > 0


def test_fio_parse_errors():
    with pytest.raises(fio.FioError):
        fio.parse_output("fio: no such file\n")
    with pytest.raises(fio.FioError):
        fio.parse_output("{ not json")
    with pytest.raises(fio.FioError):
        fio.parse_output('{"no": "jobs"}')
    doc = fio.parse_output(load("fio-sample.json"))
    with pytest.raises(fio.FioError, match="no write"):
        fio.summarize(doc, "write")  # the sample only read
    bad = copy.deepcopy(doc)
    bad["jobs"][0]["error"] = 5
    with pytest.raises(fio.FioError, match="error 5"):
        fio.summarize(bad, "randread")


def test_fio_jobs_add_up():
    doc = fio.parse_output(load("fio-sample.json"))
    one = fio.summarize(doc, "read")
    two = copy.deepcopy(doc)
    two["jobs"].append(copy.deepcopy(two["jobs"][0]))
    s = fio.summarize(two, "read")
    assert s["iops"] == pytest.approx(2 * one["iops"])
    assert s["mbps"] == pytest.approx(2 * one["mbps"])
    assert s["lat_p99_us"] == one["lat_p99_us"]


def test_fio_clat_fallback():
    doc = fio.parse_output(load("fio-sample.json"))
    rd = doc["jobs"][0]["read"]
    rd["lat_ns"].pop("percentile")
    rd["clat_ns"]["percentile"] = {"50.000000": 7000, "99.000000": 9000}
    s = fio.summarize(doc, "randread")
    assert s["lat_p50_us"] == 7.0 and s["lat_p99_us"] == 9.0 and s["lat_p999_us"] is None


# ---- mdbench ----

def test_mdbench_parse_sample():
    doc = mdbench.parse_output(load("mdbench-sample.json"))
    s = mdbench.summarize(doc)
    raw = json.loads(load("mdbench-sample.json"))["ops"]
    for phase in ("create", "stat", "unlink"):
        assert s[phase + "_ops"] == pytest.approx(raw[phase]["ops_per_sec"])
        assert s[phase + "_ops"] > 0
    assert s["stat_p50_us"] == pytest.approx(raw["stat"]["lat_ns"]["p50"] / 1000)
    assert s["stat_p99_us"] == pytest.approx(raw["stat"]["lat_ns"]["p99"] / 1000)
    assert s["stat_p50_us"] <= s["stat_p99_us"]
    assert "load_alive" not in s


def test_mdbench_load_and_failures():
    doc = json.loads(load("mdbench-sample.json"))
    doc["load"] = {"pid": 42, "alive_at_start": True, "alive_at_end": False}
    assert mdbench.summarize(mdbench.parse_output(json.dumps(doc)))["load_alive"] is False
    doc["ok"] = False
    with pytest.raises(mdbench.MdbenchError):
        mdbench.parse_output(json.dumps(doc))
    with pytest.raises(mdbench.MdbenchError):
        mdbench.parse_output("mdbench: /x: No such file or directory\n")
    doc = json.loads(load("mdbench-sample.json"))
    doc["ops"]["stat"]["count"] = 0
    with pytest.raises(mdbench.MdbenchError):
        mdbench.summarize(doc)


def test_mdbench_cmd():
    cmd = mdbench.build_cmd("md", "/d", files=50, threads=2, ops=("stat",), stat_seconds=1.5,
                            load_pid=99)
    assert cmd == ["md", "-n", "50", "-t", "2", "-o", "stat", "-d", "1.5", "-L", "99", "/d"]
    with pytest.raises(ValueError):
        mdbench.build_cmd("md", "/d", ops=("rename",))


# ---- stats ----

def test_median_and_spread():
    assert stats.median([3, 1, 2]) == 2
    assert stats.median([4, 1, 3, 2]) == 2.5
    assert stats.median([7]) == 7
    with pytest.raises(ValueError):
        stats.median([])
    lo, hi, pct = stats.spread([90, 100, 110])
    assert (lo, hi) == (90, 110) and pct == pytest.approx(20.0)
    assert stats.spread([5])[2] == 0
    s = stats.summarize([10, None, 30, 20])
    assert s == {"n": 3, "median": 20, "min": 10, "max": 30, "spread_pct": 100.0}
    assert stats.summarize([])["median"] is None
    assert stats.summarize([None])["n"] == 0


def test_ratio():
    assert stats.ratio(200, 100) == 2.0
    assert stats.ratio(50, 100, "lower") == 2.0  # half the latency is twice as good
    assert stats.ratio(None, 100) is None and stats.ratio(1, 0) is None
    assert stats.ratio(0, 5, "lower") is None


# ---- report ----

def make_doc():
    cfgs = [{"name": "dev", "kind": "ringfuse"}, {"name": "uring", "kind": "ringfuse"},
            {"name": "x<&>", "kind": "compare"}, {"name": "native", "kind": "native"}]
    cl = [{"name": "rand4k-qd1", "title": "t",
           "metrics": [{"key": "iops", "label": "IOPS", "unit": "IOPS", "better": "higher"},
                       {"key": "lat_p99_us", "label": "lat p99", "unit": "us",
                        "better": "lower"}]},
          {"name": "seqread-1m", "title": "t",
           "metrics": [{"key": "mbps", "label": "read", "unit": "MB/s", "better": "higher"}]}]
    values = {"dev": (10000, 100.0, 1000), "uring": (20000, 50.0, 1500),
              "native": (100000, 10.0, 5000)}
    samples = []
    for r in range(3):
        for c, (iops, lat, mbps) in values.items():
            f = 1 + (r - 1) * 0.05  # 0.95, 1.0, 1.05
            samples.append({"round": r, "config": c, "cell": "rand4k-qd1",
                            "metrics": {"iops": iops * f, "lat_p99_us": lat * f},
                            "error": None})
            samples.append({"round": r, "config": c, "cell": "seqread-1m",
                            "metrics": {"mbps": mbps * f}, "error": None})
        samples.append({"round": r, "config": "x<&>", "cell": "rand4k-qd1", "metrics": None,
                        "error": "could not mount"})
        samples.append({"round": r, "config": "x<&>", "cell": "seqread-1m", "metrics": None,
                        "error": "could not mount"})
    doc = {"meta": {"fs": "memfs", "runtime": 5.0, "rounds": 3, "kernel": "6.18", "nproc": 2},
           "baseline": "dev", "configs": cfgs, "cells": cl, "samples": samples}
    report.summarize(doc)
    return doc


def test_report_summary():
    doc = make_doc()
    s = doc["summary"]["uring"]["rand4k-qd1"]["iops"]
    assert s["n"] == 3 and s["median"] == pytest.approx(20000)
    assert s["min"] == pytest.approx(19000) and s["max"] == pytest.approx(21000)
    assert s["spread_pct"] == pytest.approx(10.0)
    assert doc["summary"]["x<&>"]["seqread-1m"]["mbps"]["median"] is None


def test_report_table():
    doc = make_doc()
    t = report.format_table(doc)
    lines = t.splitlines()
    header = next(ln for ln in lines if ln.startswith("cell"))
    assert header.split()[3:] == ["dev", "uring", "x<&>", "native"]
    iops = next(ln for ln in lines if ln.startswith("rand4k-qd1"))
    assert "10.0k ±10%" in iops and "20.0k ±10%  2.00x" in iops and "ERR" in iops
    assert "10.00x" in iops
    lat = next(ln for ln in lines if "lat p99" in ln)
    assert "0.50x" in lat  # raw ratio in the table: half the latency
    assert "↓" in lat and "↑" in iops
    assert "ratios: configuration / dev" in t


def test_report_json_roundtrip(tmp_path):
    doc = make_doc()
    path = tmp_path / "sub" / "r.json"
    report.write_json(doc, str(path))
    back = json.loads(path.read_text())
    assert back["baseline"] == "dev"
    assert len(back["samples"]) == len(doc["samples"])
    assert back["summary"]["native"]["seqread-1m"]["mbps"]["median"] == pytest.approx(5000)
    assert not os.path.exists(str(path) + ".tmp")


def test_report_svg_well_formed(tmp_path):
    doc = make_doc()
    path = tmp_path / "chart.svg"
    report.write_svg(doc, str(path))
    root = ET.parse(str(path)).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    assert root.tag == ns + "svg"
    texts = "".join(t.text or "" for t in root.iter(ns + "text"))
    assert "x<&>" in texts  # escaped in the file, intact once parsed
    bars = [r for r in root.iter(ns + "rect") if r.find(ns + "title") is not None]
    # 3 metrics x 3 configs with numbers (the failed compare config has none)
    assert len(bars) == 9
    widths = {b.find(ns + "title").text.split()[0]: float(b.get("width")) for b in bars
              if "read" in b.find(ns + "title").text}
    assert widths["native"] > widths["uring"] > widths["dev"] > 0


def test_report_svg_empty():
    doc = make_doc()
    for s in doc["samples"]:
        s["metrics"], s["error"] = None, "x"
    report.summarize(doc)
    ET.fromstring(report.render_svg(doc).split("\n", 1)[1])
    assert "ERR" in report.format_table(doc)


def test_fmt_num():
    assert report.fmt_num(None) == "-"
    assert report.fmt_num(1.234) == "1.23"
    assert report.fmt_num(123.4) == "123"
    assert report.fmt_num(12345) == "12.3k"
    assert report.fmt_num(2.5e6) == "2.50M"


# ---- mounts ----

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /tmp/with\\040space rw,nosuid shared:20 - fuse.ringfuse-memfs memfs rw,user_id=0
41 22 0:36 / /tmp/m rw - tmpfs tmpfs rw
42 41 0:37 / /tmp/m rw - fuse bindfs rw
"""


def test_mountinfo():
    entries = mounts.parse_mountinfo(MOUNTINFO)
    assert [e["mountpoint"] for e in entries] == ["/", "/tmp/with space", "/tmp/m", "/tmp/m"]
    assert entries[1]["fstype"] == "fuse.ringfuse-memfs"
    assert mounts.find_mount("/tmp/with space", MOUNTINFO)["source"] == "memfs"
    assert mounts.find_mount("/tmp/m", MOUNTINFO)["fstype"] == "fuse"  # the topmost
    assert mounts.find_mount("/tmp/none", MOUNTINFO) is None


def test_uring_param_missing(tmp_path):
    ok, msg = mounts.ensure_uring_enabled(str(tmp_path / "nope"), try_enable=False)
    if os.path.exists("/sys/module/fuse"):
        assert not ok and "CONFIG_FUSE_IO_URING" in msg
    p = tmp_path / "enable_uring"
    p.write_text("N\n")
    ok, msg = mounts.ensure_uring_enabled(str(p), try_enable=False)
    assert not ok and "is N" in msg
    ok, msg = mounts.ensure_uring_enabled(str(p), try_enable=True)
    assert ok and "set to Y" in msg


# ---- command line ----

def test_config_specs():
    assert cli.parse_config_spec("uring-d4:transport=uring,uring_depth=4") == (
        "uring-d4", "transport=uring,uring_depth=4")
    for bad in ("nocolon", ":transport=uring", "a b:x", "name:"):
        with pytest.raises(cli.UsageError):
            cli.parse_config_spec(bad)
    assert cli.parse_compare_spec("ll:/usr/lib/ll -f -o source={src} {mnt}", 1) == (
        "ll", ["/usr/lib/ll", "-f", "-o", "source={src}", "{mnt}"])
    name, argv = cli.parse_compare_spec("/usr/bin/bindfs -f {src} {mnt}", 1)
    assert name == "bindfs" and argv[-1] == "{mnt}"
    with pytest.raises(cli.UsageError):
        cli.parse_compare_spec("ll:foo -f /somewhere", 1)


def test_build_configs():
    args = cli.build_parser().parse_args(
        ["--config", "uring-spin:transport=uring,uring_spin_us=50", "--compare",
         "ll:ll -f {mnt}", "--daemon-opts", "threads=2"])
    cli.resolve_defaults(args)
    cfgs = cli.build_configs(args, ["memfs", "-f", "-o", "{opts},cache=none", "{mnt}"])
    assert [c.name for c in cfgs] == ["uring", "dev", "uring-rw", "uring-spin", "ll", "native"]
    assert cfgs[0].argv("S", "M") == ["memfs", "-f", "-o", "transport=uring,threads=2,cache=none",
                                      "M"]
    assert [c.needs_uring() for c in cfgs] == [True, False, False, True, False, False]
    assert cfgs[4].argv("S", "M") == ["ll", "-f", "M"]
    assert args.runtime == 5 and args.repeat == 3
    args = cli.build_parser().parse_args(["--transports", "dev", "--config", "dev:x=1"])
    with pytest.raises(cli.UsageError):
        cli.build_configs(args, ["d", "{opts}", "{mnt}"])


def test_quick_defaults_and_cells():
    args = cli.resolve_defaults(cli.build_parser().parse_args(["--quick"]))
    assert (args.runtime, args.repeat, args.size) == (2, 1, "64m")
    quick = cells.select_cells(quick=True)
    full = cells.select_cells()
    assert 0 < len(quick) < len(full)
    assert [c.name for c in cells.select_cells("seqread-1m,meta")] == ["seqread-1m", "meta"]
    with pytest.raises(ValueError):
        cells.select_cells("nope")
    env = cells.Env(nproc=4)
    byname = {c.name: c for c in full}
    assert byname["seqread-1m-mj"].data_files(env) == 4
    assert byname["rand4k-qd1"].data_files(env) == 1
    assert byname["seqwrite-1m"].data_files(env) == 0
    assert byname["meta"].data_files(env) == 0


def test_round_order():
    c = ["a", "b", "c"]
    assert cli.round_order(c, 0) == ["a", "b", "c"]
    assert cli.round_order(c, 1) == ["b", "c", "a"]
    assert cli.round_order(c, 4) == ["b", "c", "a"]
    assert cli.round_order([], 2) == []


# ---- daemon processes and CPU (procstat) ----

def test_parse_stat_odd_comm():
    line = ("4242 (my (odd) daemon) S 1 4242 4242 0 -1 4194560 100 0 0 0 "
            "250 75 0 0 20 0 3 0 12345 1000 10 18446744073709551615\n")
    st = procstat.parse_stat(line)
    assert st == {"pid": 4242, "comm": "my (odd) daemon", "state": "S", "ppid": 1,
                  "utime": 250, "stime": 75}


def test_process_tree_and_servers():
    stats = {1: {"ppid": 0}, 10: {"ppid": 1}, 11: {"ppid": 10}, 12: {"ppid": 11},
             20: {"ppid": 1}, 13: {"ppid": 10}}
    assert procstat.descendants([10], stats) == {10, 11, 12, 13}
    assert procstat.descendants([12, 20], stats) == {12, 20}
    assert procstat.descendants([99], stats) == set()
    # The wrapper (10) holds nothing, the daemon (12) holds /dev/fuse and an io_uring each.
    fds = {10: ["/dev/null"], 11: [], 12: ["/dev/fuse", "anon_inode:[io_uring]",
                                           "anon_inode:[io_uring]"], 13: ["pipe:[1]"]}
    assert procstat.pick_servers({10, 11, 12, 13}, fds) == [12]
    assert procstat.pick_servers({10, 13}, fds) == [10, 13]  # nobody holds it: all of them
    assert procstat.uring_fds({12: fds[12]}) == 2
    assert procstat.uring_fds({10: fds[10]}) == 0


def test_memory_of_a_process():
    # As Linux 6.18 prints it (trimmed).
    text = ("Name:\tringfuse-memfs\nVmPeak:\t  300000 kB\nVmRSS:\t   40960 kB\n"
            "RssAnon:\t   36864 kB\nRssFile:\t    4096 kB\nThreads:\t3\n")
    assert procstat.parse_memory(text) == {"threads": 3, "rss_kib": 40960, "anon_kib": 36864}
    assert procstat.parse_memory("Name:\tx\n") == {"threads": 0, "rss_kib": 0, "anon_kib": 0}
    me = procstat.CpuMeter([os.getpid()]).memory()
    assert me["threads"] >= 1 and me["rss_kib"] > 0
    with pytest.raises(procstat.ProcError):
        procstat.CpuMeter([2 ** 22 + 7]).memory()


def test_memory_cell():
    byname = {c.name: c for c in cells.all_cells()}
    mem = byname["memory"]
    assert "memory" in [c.name for c in cells.select_cells("targets")]
    assert [m.key for m in mem.metrics] == ["threads", "rss_burst_mib", "rss_idle_mib"]
    assert mem.data_files(cells.Env()) == 0
    # Without a daemon (the native directory) there is nothing to measure.
    metrics, raw = mem.run(cells.Env(), "/nonexistent", cells.Probe())
    assert metrics == {"threads": None, "rss_burst_mib": None, "rss_idle_mib": None}
    assert cli.parse_bytes("1g") == 1 << 30 and cli.parse_bytes("512m") == 512 << 20
    assert cli.parse_bytes("4096") == 4096 and cli.parse_bytes("1x") is None
    assert cli.parse_bytes("m") is None
    job = fio.FioJob("burst", "/d", "rf-burst", "write", fallocate="truncate")
    assert "--fallocate=truncate" in fio.build_cmd(job)
    assert "--fallocate=none" in fio.build_cmd(fio.FioJob("x", "/d", "s", "read"))


def test_ctxt_switches():
    text = ("Name:\tx\nvoluntary_ctxt_switches:\t120\nnonvoluntary_ctxt_switches:\t7\n")
    assert procstat.parse_ctxt_switches(text) == 127
    assert procstat.parse_ctxt_switches("Name:\tx\n") == 0


def test_cpu_meter_on_self():
    meter = procstat.CpuMeter([os.getpid()])
    a = meter.seconds()
    t = time.process_time()
    while time.process_time() - t < 0.05:
        pass
    b = meter.seconds()
    assert b - a >= 0.04  # nanosecond clock: a busy 50 ms shows, not a tick or nothing
    assert meter.context_switches() >= 0
    assert procstat.process_clock_id(1) == ((~1) << 3) | 2


def test_cpu_meter_gone():
    p = subprocess.Popen(["true"])
    p.wait()
    with pytest.raises(procstat.ProcError):
        procstat.CpuMeter([p.pid]).seconds()


FIND_FORKED = r"""
import os, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
from ringfuse_bench import procstat
assert procstat.set_child_subreaper()
before = procstat.my_children()
# A "daemon" that forks away (like one that daemonises) and lets its parent exit 0.
p = subprocess.Popen(["sh", "-c", "sleep 30 >/dev/null & echo $!"], stdout=subprocess.PIPE)
child = int(p.stdout.readline())
p.wait()
pids, fds = procstat.find_daemon(p.pid, before)
print(pids == [child], child in procstat.my_children())
os.kill(child, 9)
os.waitpid(child, 0)
"""


def test_find_daemon_that_forked():
    # Run in a child Python: a subreaper flag must not stick to the test process.
    out = subprocess.run([sys.executable, "-c", FIND_FORKED,
                          os.path.join(HERE, "..", "..", "tools", "bench")],
                         stdout=subprocess.PIPE, timeout=60).stdout.decode()
    assert out.split() == ["True", "True"], out


class FakeMeter:
    def __init__(self):
        self.pids, self.n = [7], 0

    def seconds(self):
        self.n += 1
        return self.n * 0.25


def test_metered_run_and_per_op():
    probe = cells.Probe(meter=FakeMeter())
    rc, out, err, cpu = cells._run_metered(["sh", "-c", "echo hi"], 30, probe)
    assert (rc, out.strip(), cpu) == (0, "hi", 0.25)
    rc, out, err, cpu = cells._run_metered(["true"], 30, cells.Probe())
    assert cpu is None
    assert cells.per_op_us(0.5, 1000) == pytest.approx(500.0)
    assert cells.per_op_us(None, 10) is None and cells.per_op_us(1.0, 0) is None
    with pytest.raises(cells.CellError):
        cells._run_metered(["sleep", "5"], 0.2, probe)


# ---- fio engines: the same for native and every mount ----

def fio_cells():
    return [c for c in cells.all_cells() if c.kind == "fio"]


def test_engines_per_queue_depth():
    env = cells.Env(nproc=2)
    for c in fio_cells():
        job = cells.fio_job(env, "/x", c.params)
        want = "psync" if c.params.get("iodepth", 1) == 1 else "io_uring"
        assert job.ioengine == want, c.name
    byname = {c.name: c for c in fio_cells()}
    assert cells.fio_job(env, "/x", byname["rand4k-qd1"].params).ioengine == "psync"
    qd32 = cells.fio_job(env, "/x", byname["rand4k-qd32"].params)
    assert (qd32.ioengine, qd32.iodepth) == ("io_uring", 32)
    assert cells.Env(ioengine="libaio", qd1_engine="sync").engine(8) == "libaio"
    assert cells.Env(ioengine="libaio", qd1_engine="sync").engine(1) == "sync"


def test_native_and_mount_commands_match():
    # A cell's fio command differs between the native directory and a mount only in the
    # directory: same engine, depth, size, runtime.
    env = cells.Env(nproc=2)
    for c in fio_cells():
        a = fio.build_cmd(cells.fio_job(env, "/native", c.params))
        b = fio.build_cmd(cells.fio_job(env, "/mnt/x", c.params))
        assert [x for x in a if not x.startswith("--directory")] == \
            [x for x in b if not x.startswith("--directory")], c.name
        assert "--directory=/native" in a and "--directory=/mnt/x" in b


def test_cell_groups_and_user_cells():
    names = [c.name for c in cells.select_cells("targets")]
    for want in ("meta", "meta-mt", "meta-user", "rand4k-qd1", "rand4k-qd1-user",
                 "rand4k-qd32", "seqread-1m", "seqwrite-1m", "stat-load", "idle"):
        assert want in names
    assert len(names) == len(set(names))
    assert [c.name for c in cells.select_cells("meta,targets")][0] == "meta"
    byname = {c.name: c for c in cells.all_cells()}
    assert byname["meta-user"].as_user and byname["rand4k-qd1-user"].as_user
    assert not byname["meta"].as_user
    assert byname["idle"].data_files(cells.Env()) == 1
    with pytest.raises(cells.CellError, match="as-user"):
        byname["meta-user"].run(cells.Env(), "/nonexistent", cells.Probe())
    # Every fio and md cell reports the daemon's CPU per operation.
    for c in cells.all_cells():
        keys = [m.key for m in c.metrics]
        if c.kind == "fio":
            assert "cpu_us" in keys, c.name
        if c.kind == "md":
            assert "create_cpu_us" in keys and "stat_cpu_us" in keys, c.name


def test_mdbench_cpu():
    cmd = mdbench.build_cmd("md", "/d", files=10, cpu_pids=[5, 6])
    assert cmd[-3:] == ["-P", "5,6", "/d"]
    doc = json.loads(load("mdbench-sample.json"))
    for ph in ("create", "stat", "unlink"):
        doc["ops"][ph]["daemon_cpu_s"] = 0.1
    doc["ops"]["unlink"]["daemon_cpu_s"] = None
    s = mdbench.summarize(doc)
    assert s["create_cpu_us"] == pytest.approx(0.1e6 / doc["ops"]["create"]["count"])
    assert s["unlink_cpu_us"] is None
    assert "stat_cpu_us" not in mdbench.summarize(json.loads(load("mdbench-sample.json")))


# ---- libfuse peers and configurations ----

def fake_libfuse(tmp_path, uring=True, binaries=("passthrough_hp", "memfs_ll")):
    d = tmp_path / "libfuse-build"
    (d / "example").mkdir(parents=True)
    for b in binaries:
        p = d / "example" / b
        p.write_text("#!/bin/sh\n")
        p.chmod(0o755)
    (d / "fuse_config.h").write_text("#define HAVE_SPLICE\n%s\n" % (
        "#define HAVE_URING" if uring else "#undef HAVE_URING"))
    return str(d)


def parse(argv):
    args = cli.resolve_defaults(cli.build_parser().parse_args(argv))
    args.allow_other = getattr(args, "allow_other", False)
    return args


TEMPLATES = {"memfs": ["memfs", "-f", "-o", "{opts},cache=none", "{mnt}"],
             "passthrough": ["pt", "-f", "-o", "{opts},cache=none", "{src}", "{mnt}"]}


def test_libfuse_peers(tmp_path):
    lf = fake_libfuse(tmp_path)
    args = parse(["--fs", "memfs,passthrough", "--transports", "uring,dev", "--libfuse", lf,
                  "--kernel-passthrough"])
    cfgs = configs.build_configs(args, TEMPLATES)
    names = [c.name for c in cfgs]
    assert names == ["memfs-uring", "memfs-dev", "passthrough-uring", "passthrough-dev",
                     "passthrough-uring-kpt", "hp-uring", "hp-dev", "hp-uring-kpt",
                     "memfs_ll-uring", "native"]
    by = {c.name: c for c in cfgs}
    assert not any(c.skip for c in cfgs)
    hp = by["hp-uring"].argv("/S", "/M")
    assert hp[0] == os.path.join(lf, "example", "passthrough_hp")
    assert hp[1:] == ["--foreground", "--nocache", "--nopassthrough", "-o", "io_uring",
                      "/S", "/M"]
    assert "io_uring" not in by["hp-dev"].argv("/S", "/M")
    assert "--nopassthrough" not in by["hp-uring-kpt"].argv("/S", "/M")
    assert by["memfs_ll-uring"].argv("/S", "/M")[1:] == [
        "-f", "-o", "io_uring,default_permissions", "/M"]
    assert [c.needs_uring() for c in cfgs] == [True, False, True, False, True, True, False,
                                              True, True, False]
    assert by["passthrough-uring-kpt"].argv("/S", "/M") == [
        "pt", "-f", "-o", "transport=uring,passthrough,cache=none", "/S", "/M"]
    assert by["memfs-uring"].fs == "memfs" and by["hp-dev"].fs == "passthrough"
    assert cli.default_baseline(cfgs) == "hp-uring"
    pairs = configs.build_pairs(args, cfgs)
    assert [(p["config"], p["versus"]) for p in pairs] == [
        ("memfs-uring", "memfs_ll-uring"), ("memfs-uring", "hp-uring"),
        ("passthrough-uring", "hp-uring"), ("passthrough-dev", "hp-dev"),
        ("passthrough-uring-kpt", "hp-uring-kpt"), ("passthrough-uring-kpt", "native"),
        ("hp-uring-kpt", "native")]
    assert configs.headline_configs(cfgs) == ["memfs-uring", "passthrough-uring", "hp-uring",
                                              "memfs_ll-uring", "native"]


def test_libfuse_peers_single_fs_and_allow_other(tmp_path):
    lf = fake_libfuse(tmp_path)
    args = parse(["--fs", "memfs", "--transports", "uring", "--libfuse", lf])
    args.allow_other = True
    cfgs = configs.build_configs(args, TEMPLATES["memfs"])
    assert [c.name for c in cfgs] == ["uring", "memfs_ll-uring", "native"]
    assert cfgs[0].argv("S", "M")[3] == "transport=uring,allow_other,cache=none"
    assert cfgs[1].argv("S", "M")[-3:] == ["-o", "allow_other", "M"]
    assert [(p["config"], p["versus"]) for p in configs.build_pairs(args, cfgs)] == [
        ("uring", "memfs_ll-uring")]
    assert cli.default_baseline(cfgs) == "memfs_ll-uring"


def test_libfuse_peers_skipped_with_reasons(tmp_path):
    lf = fake_libfuse(tmp_path, uring=False, binaries=("passthrough_hp",))
    args = parse(["--fs", "memfs,passthrough", "--transports", "uring", "--libfuse", lf])
    by = {c.name: c for c in configs.build_configs(args, TEMPLATES)}
    assert "without io-uring" in by["hp-uring"].skip
    assert by["hp-dev"].skip == ""  # /dev/fuse needs no io-uring
    assert "memfs_ll is not there" in by["memfs_ll-uring"].skip
    assert peers.uring_support(str(tmp_path)) == (None, "")  # no fuse_config.h: unknown


def test_config_errors():
    with pytest.raises(configs.UsageError):
        configs.parse_fs_list("memfs,cmd")
    with pytest.raises(configs.UsageError):
        configs.parse_fs_list("zfs")
    with pytest.raises(configs.UsageError):
        configs.parse_fs_list("memfs,memfs")
    assert configs.parse_fs_list("passthrough, memfs") == ["passthrough", "memfs"]
    assert configs.parse_pair_spec("uring:hp-uring") == ("uring", "hp-uring")
    with pytest.raises(configs.UsageError):
        configs.parse_pair_spec("uring")
    args = parse(["--transports", "uring", "--pair", "uring:nothere"])
    with pytest.raises(configs.UsageError):
        configs.build_pairs(args, configs.build_configs(args, TEMPLATES["memfs"]))
    assert cli.resolve_user("nobody")[0] == "nobody"
    with pytest.raises(cli.UsageError):
        cli.resolve_user("root")
    with pytest.raises(cli.UsageError):
        cli.resolve_user("no-such-user-here")


# ---- pairs and the headline chart ----

def make_peer_doc():
    cfgs = [{"name": "uring", "kind": "ringfuse", "label": "ringfuse memfs, uring"},
            {"name": "hp-uring", "kind": "compare", "label": "libfuse passthrough_hp"},
            {"name": "native", "kind": "native", "label": "native tmpfs"}]
    cl = [{"name": "rand4k-qd1", "title": "t", "metrics": [
        {"key": "iops", "label": "IOPS", "unit": "IOPS", "better": "higher"},
        {"key": "cpu_us", "label": "CPU/op", "unit": "us", "better": "lower"}]},
        {"name": "meta", "title": "t", "metrics": [
            {"key": "create_ops", "label": "create", "unit": "ops/s", "better": "higher"}]}]
    vals = {"uring": (60000, 10.0, 20000), "hp-uring": (40000, 20.0, 10000),
            "native": (400000, None, 200000)}
    samples = []
    for r in range(3):
        for c, (iops, cpu, cr) in vals.items():
            samples.append({"round": r, "config": c, "cell": "rand4k-qd1",
                            "metrics": {"iops": iops, "cpu_us": cpu}, "error": None})
            samples.append({"round": r, "config": c, "cell": "meta",
                            "metrics": {"create_ops": cr}, "error": None})
    doc = {"meta": {"runtime": 2, "rounds": 3, "kernel": "6.18", "nproc": 2},
           "baseline": "hp-uring", "configs": cfgs, "cells": cl, "samples": samples,
           "pairs": [{"config": "uring", "versus": "hp-uring"},
                     {"config": "hp-uring", "versus": "native"}],
           "headline_configs": ["uring", "hp-uring", "native"]}
    report.summarize(doc)
    return doc


def test_format_pairs():
    t = report.format_pairs(make_peer_doc())
    lines = t.splitlines()
    assert "uring / hp-uring" in lines[2] and "hp-uring / native" in lines[2]
    qd1 = next(ln for ln in lines if ln.startswith("4K read QD1 ↑"))
    assert qd1.split()[-2:] == ["1.50x", "0.10x"]
    cpu = next(ln for ln in lines if ln.startswith("4K read QD1 CPU/op ↓"))
    assert cpu.split()[-2:] == ["0.50x", "-"]  # native has no daemon: no CPU ratio
    assert next(ln for ln in lines if ln.startswith("create ↑")).split()[-2] == "2.00x"
    assert report.format_pairs(dict(make_peer_doc(), pairs=[])) == ""


def test_table_shows_no_cpu_for_native():
    doc = make_peer_doc()
    cpu = next(ln for ln in report.format_table(doc).splitlines() if "CPU/op" in ln)
    assert cpu.rstrip().endswith("-") and "ERR" not in cpu


def test_headline_svg(tmp_path):
    doc = make_peer_doc()
    path = tmp_path / "h.svg"
    report.write_headline_svg(doc, str(path))
    root = ET.parse(str(path)).getroot()
    ns = "{http://www.w3.org/2000/svg}"
    bars = {r.find(ns + "title").text: float(r.get("width")) for r in root.iter(ns + "rect")
            if r.find(ns + "title") is not None}
    # 3 groups (QD1 IOPS, create, QD1 CPU/op) x 3 configurations, less native's CPU.
    assert len(bars) == 8
    qd1 = {k.split(",")[0]: w for k, w in bars.items() if k.endswith("IOPS")}
    assert qd1["ringfuse memfs"] == pytest.approx(1.5 * qd1["libfuse passthrough_hp"])
    texts = [t.text or "" for t in root.iter(ns + "text")]
    assert any("bar cut" in t for t in texts)  # native, 10x the FUSE bars, is cut short
    assert any("shorter is better" in t for t in texts)
    assert any(t == "no daemon" for t in texts)  # native has no CPU to show
    noted = report.render_headline_svg(doc, note="a <note>")
    assert "a &lt;note&gt;" in noted
    ET.fromstring(noted.split("\n", 1)[1])


def test_from_json_rerender(tmp_path, capsys):
    doc = make_peer_doc()
    path = tmp_path / "run.json"
    report.write_json(doc, str(path))
    svg = tmp_path / "h.svg"
    assert cli.main(["--from-json", str(path), "--headline-svg", str(svg),
                     "--pair", "native:uring"]) == 0
    out = capsys.readouterr().out
    assert "native / uring" in out and "uring / hp-uring" not in out
    ET.parse(str(svg))
    assert cli.main(["--from-json", str(tmp_path / "none.json")]) == 2


def test_not_applicable_cells(tmp_path):
    lf = fake_libfuse(tmp_path)
    args = parse(["--fs", "passthrough", "--transports", "uring", "--libfuse", lf])
    by = {c.name: c for c in configs.build_configs(args, TEMPLATES["passthrough"])}
    assert "to the caller" in by["hp-uring"].not_applicable["meta-user"]
    assert by["uring"].not_applicable == {}
    args = parse(["--fs", "memfs", "--transports", "uring", "--libfuse", lf])
    (ll,) = [c for c in configs.build_configs(args, TEMPLATES["memfs"]) if c.kind == "compare"]
    assert "memfs_ll" in ll.not_applicable["meta-user"]
    doc = make_peer_doc()
    doc["samples"] = [s for s in doc["samples"]
                      if not (s["config"] == "hp-uring" and s["cell"] == "meta")]
    doc["samples"].append({"round": 0, "config": "hp-uring", "cell": "meta", "metrics": None,
                           "error": None, "not_applicable": "no identity"})
    report.summarize(doc)
    create = next(ln for ln in report.format_table(doc).splitlines() if "create" in ln)
    assert "n/a" in create and "ERR" not in create
    assert report.format_not_applicable(doc) == "n/a: hp-uring / meta: no identity\n"


def test_perf_command():
    from ringfuse_bench import perfrec
    cmd = perfrec.record_cmd("perf", "/p/x.data")
    assert cmd[:2] == ["perf", "record"] and "-a" in cmd and "-g" in cmd
    assert cmd[cmd.index("-e") + 1] == "cpu-clock" and cmd[-2:] == ["-o", "/p/x.data"]
    assert perfrec.data_path("/p", 0, "hp-uring", "rand4k-qd1") == "/p/r1-hp-uring-rand4k-qd1.data"
