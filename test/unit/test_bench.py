"""Unit tests of ringfuse-bench's parsing, statistics and reporting (no mount, no root).

Run: python3 -m pytest test/unit/test_bench.py
The fio and mdbench samples in data/ are real outputs recorded from the two programs.
"""

import copy
import json
import os
import sys
import xml.etree.ElementTree as ET

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools", "bench"))

from ringfuse_bench import cells, cli, fio, mdbench, mounts, report, stats  # noqa: E402

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
