"""ringfuse-mdbench command lines and JSON parsing.

ringfuse-mdbench (tools/bench/mdbench.c) creates, stats and unlinks files in a directory and
prints ops/s and latency percentiles per phase as JSON; see its -h for the options.
"""

import json


class MdbenchError(Exception):
    """ringfuse-mdbench failed or printed something we cannot read."""


PHASES = ("create", "stat", "unlink")


def build_cmd(binary, directory, files=1000, threads=1, ops=PHASES, stat_seconds=0.0,
              load_pid=None, cpu_pids=None):
    """The ringfuse-mdbench argv. ops is a subset of PHASES, run in that order; cpu_pids are
    the daemon's processes, whose CPU time mdbench then reports per phase."""
    bad = [o for o in ops if o not in PHASES]
    if bad or not ops:
        raise ValueError("mdbench operations must be among %s, got %r" % (PHASES, list(ops)))
    cmd = [binary, "-n", str(int(files)), "-t", str(int(threads)), "-o", ",".join(ops)]
    if stat_seconds and stat_seconds > 0:
        cmd += ["-d", "%g" % stat_seconds]
    if load_pid:
        cmd += ["-L", str(int(load_pid))]
    if cpu_pids:
        cmd += ["-P", ",".join(str(int(p)) for p in cpu_pids)]
    cmd.append(directory)
    return cmd


def parse_output(text):
    """The mdbench report as a dict; raises MdbenchError if it is not there or says it failed."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise MdbenchError("bad JSON from mdbench: %s: %r" % (e, text[:200])) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("ops"), dict):
        raise MdbenchError("mdbench JSON has no 'ops'")
    if doc.get("ok") is False:
        raise MdbenchError("mdbench reported a failed operation")
    return doc


def summarize(doc):
    """Flat metrics: <phase>_ops (ops/s) and <phase>_p50_us / _p99_us for every phase run,
    and <phase>_cpu_us, the daemon's CPU microseconds per operation, when mdbench measured it
    (None when a daemon process went away)."""
    out = {}
    for phase, res in doc["ops"].items():
        if not res.get("count"):
            raise MdbenchError("mdbench phase %s did no operations" % phase)
        out["%s_ops" % phase] = float(res["ops_per_sec"])
        if "daemon_cpu_s" in res:
            cpu = res["daemon_cpu_s"]
            out["%s_cpu_us" % phase] = None if cpu is None else cpu * 1e6 / res["count"]
        lat = res.get("lat_ns") or {}
        for p in ("p50", "p99", "p999"):
            if p in lat:
                out["%s_%s_us" % (phase, p)] = lat[p] / 1000.0
    load = doc.get("load")
    if load is not None:
        out["load_alive"] = bool(load.get("alive_at_start") and load.get("alive_at_end"))
    return out
