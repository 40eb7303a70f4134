"""fio command lines and fio JSON parsing.

fio is the I/O load generator: the benchmark describes each job with a FioJob, turns it into
a command line with build_cmd(), runs it with --output-format=json and reduces the report to a
few numbers with summarize(). Nothing here runs a process, so all of it is unit-tested.

Files are always named through --directory and --filename_format=STEM.$jobnum, so a job with
numjobs=1 reads STEM.0: the layout job (create_only) prepares exactly the files that the
measuring jobs will open, and one-job and one-job-per-core read cells share STEM.0.
"""

import json
from dataclasses import dataclass

PERCENTILES = (50.0, 99.0, 99.9)


class FioError(Exception):
    """fio failed or its output could not be understood."""


@dataclass
class FioJob:
    name: str
    directory: str
    stem: str  # files are STEM.<jobnum> in directory
    rw: str  # read, write, randread, randwrite
    bs: str = "4k"
    size: str = "256m"
    iodepth: int = 1
    numjobs: int = 1
    runtime: float = 5.0  # seconds; 0 means "until size bytes are done"
    ramp: float = 0.0
    ioengine: str = "io_uring"
    direct: bool = True
    create_only: bool = False
    # How files are sized before writing: "none" (they grow as written; writes past the end
    # of a FUSE file are serialized) or "truncate" (set to size first, so writes run in
    # parallel).
    fallocate: str = "none"


def _ms(seconds):
    return "%dms" % max(1, int(round(seconds * 1000)))


def build_cmd(job, fio="fio"):
    """The fio argv for job."""
    cmd = [
        fio,
        "--name=%s" % job.name,
        "--directory=%s" % job.directory,
        "--filename_format=%s.$jobnum" % job.stem,
        "--rw=%s" % job.rw,
        "--bs=%s" % job.bs,
        "--size=%s" % job.size,
        "--ioengine=%s" % job.ioengine,
        "--iodepth=%d" % job.iodepth,
        "--direct=%d" % (1 if job.direct else 0),
        # A filesystem without fallocate must not skew the layout or fail it.
        "--fallocate=%s" % job.fallocate,
        "--output-format=json",
    ]
    if job.numjobs > 1:
        cmd += ["--numjobs=%d" % job.numjobs, "--group_reporting"]
    if job.rw.startswith("rand"):
        cmd.append("--norandommap")
    if job.create_only:
        cmd.append("--create_only=1")
        return cmd
    # Total latency (submission to completion), not clat: an engine that completes a read
    # inside the submit call would otherwise show almost no latency.
    cmd += ["--lat_percentiles=1",
            "--percentile_list=%s" % ":".join("%g" % p for p in PERCENTILES)]
    if job.runtime > 0:
        cmd += ["--time_based", "--runtime=%s" % _ms(job.runtime)]
    if job.ramp > 0:
        cmd.append("--ramp_time=%s" % _ms(job.ramp))
    return cmd


def parse_output(text):
    """The fio JSON report in text (fio may print notes before it) as a dict."""
    text = text.lstrip()
    start = 0 if text.startswith("{") else text.find("\n{") + 1
    if start <= 0 and not text.startswith("{"):
        raise FioError("no JSON in fio output: %r" % text[:200])
    try:
        doc = json.loads(text[start:])
    except ValueError as e:
        raise FioError("bad JSON from fio: %s" % e) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), list):
        raise FioError("fio JSON has no job list")
    return doc


def _direction(rw):
    return "write" if "write" in rw else "read"


def _percentile(pcts, p):
    if not pcts:
        return None
    for key, val in pcts.items():
        try:
            if abs(float(key) - p) < 1e-6:
                return val
        except ValueError:
            continue
    return None


def summarize(doc, rw):
    """Reduce a parsed fio report to the numbers of the direction that rw exercises.

    Throughput adds up over jobs; latency percentiles come from the job that did the most I/O
    (with --group_reporting there is exactly one). Latencies are total latencies (lat_ns,
    which carries percentiles with --lat_percentiles=1; clat_ns for reports without them), in
    microseconds; bandwidth is in MB/s (10^6 bytes).
    """
    d = _direction(rw)
    jobs = doc.get("jobs") or []
    if not jobs:
        raise FioError("fio reported no jobs")
    for j in jobs:
        if j.get("error"):
            raise FioError("fio job %s failed: error %s" % (j.get("jobname"), j.get("error")))
    sides = [j.get(d) or {} for j in jobs]
    ios = sum(s.get("total_ios", 0) for s in sides)
    if ios == 0:
        raise FioError("fio did no %s I/O" % d)
    iops = sum(s.get("iops", 0.0) for s in sides)
    bw_bytes = sum(s.get("bw_bytes", s.get("bw", 0) * 1024) for s in sides)
    main = max(sides, key=lambda s: s.get("total_ios", 0))
    lat = main.get("lat_ns") or {}
    if not lat.get("percentile"):
        lat = main.get("clat_ns") or lat
    pcts = lat.get("percentile") or {}

    def us(v):
        return None if v is None else v / 1000.0

    out = {
        "iops": iops,
        "mbps": bw_bytes / 1e6,
        "ios": ios,
        "runtime_ms": max(s.get("runtime", 0) for s in sides),
        "lat_mean_us": us(lat.get("mean")),
    }
    for p in PERCENTILES:
        out["lat_p%s_us" % ("%g" % p).replace(".", "")] = us(_percentile(pcts, p))
    return out
