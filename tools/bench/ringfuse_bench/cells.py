"""The workload matrix: what one cell runs and which numbers it yields.

A cell is one workload run against one directory (a FUSE mount or the native directory). It
yields several metrics, each with a unit and a direction (is higher or lower better). Files
the read cells need are laid out once per mount by layout(), before anything is measured.

Every configuration runs a cell with the same fio engine: psync (plain pread/pwrite, what a
program sees) at queue depth 1, the --ioengine (io_uring by default) for deeper queues. When
the daemon's processes are known (a Probe), cells also report the daemon's CPU time per
operation, the idle cell its CPU use while nothing happens, and the memory cell its threads and
resident memory after a write burst and after an idle spell. Cells marked as_user run their
workload as an unprivileged user (--as-user), in a directory of the mount that user owns.
"""

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

from . import fio as fiomod
from . import mdbench as mdmod
from . import procstat


class CellError(Exception):
    """A cell could not produce its numbers."""


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    better: str  # "higher" or "lower"


OPS = lambda key, label: Metric(key, label, "ops/s", "higher")  # noqa: E731
US = lambda key, label: Metric(key, label, "us", "lower")  # noqa: E731
MBPS = lambda key, label: Metric(key, label, "MB/s", "higher")  # noqa: E731
IOPS = lambda key, label: Metric(key, label, "IOPS", "higher")  # noqa: E731
CPU = lambda key, label: Metric(key, label, "us", "lower")  # noqa: E731


@dataclass
class Env:
    """What the cells need to know about the run (tools, sizes, times)."""
    fio: str = "fio"
    mdbench: str = "ringfuse-mdbench"
    runtime: float = 5.0
    ramp: float = 0.0
    size: str = "256m"
    ioengine: str = "io_uring"  # queue depths above 1
    qd1_engine: str = "psync"  # queue depth 1
    nproc: int = 1
    md_files: int = 10000
    md_threads: int = 1
    load_files: int = 100
    idle_seconds: float = 10.0
    burst_size: int = 1 << 30  # bytes the memory cell writes
    user: tuple = None  # (name, uid, gid) of --as-user
    timeout_slack: float = 120.0

    def engine(self, iodepth):
        return self.qd1_engine if int(iodepth) <= 1 else self.ioengine


@dataclass
class Probe:
    """What a cell may know of the daemon behind the directory: a CpuMeter of its processes
    (None for the native directory), and the directory the as_user cells work in."""
    meter: object = None
    user_dir: str = None

    def cpu(self):
        if self.meter is None:
            return None
        try:
            return self.meter.seconds()
        except procstat.ProcError as e:
            raise CellError("the daemon: %s" % e) from None


@dataclass
class Cell:
    name: str
    title: str
    kind: str  # "md", "fio", "statload", "idle" or "memory"
    metrics: list
    params: dict = field(default_factory=dict)
    quick: bool = False  # part of the --quick matrix
    as_user: bool = False  # the workload runs as --as-user, not as root

    def data_files(self, env):
        """How many rf-data.N files this cell reads (to be laid out beforehand)."""
        if self.kind == "idle":
            return 1
        if self.kind != "fio" or "read" not in self.params["rw"]:
            return 0
        return env.nproc if self.params.get("numjobs") == "nproc" else 1

    def run(self, env, directory, probe=None):
        """Run the cell in directory: (metrics {key: value}, raw details for the JSON file)."""
        probe = probe or Probe()
        user = None
        if self.as_user:
            if env.user is None or probe.user_dir is None:
                raise CellError("no unprivileged user to run as (--as-user)")
            user = env.user
        if self.kind == "md":
            return run_md(env, probe.user_dir if user else directory, self.params, probe, user)
        if self.kind == "fio":
            return run_fio(env, directory, self.params, probe, user)
        if self.kind == "statload":
            return run_statload(env, directory)
        if self.kind == "idle":
            return run_idle(env, directory, probe)
        if self.kind == "memory":
            return run_memory(env, directory, probe)
        raise CellError("unknown cell kind %s" % self.kind)


MD_METRICS = [OPS("create_ops", "create"), OPS("stat_ops", "stat"),
              US("stat_p50_us", "stat p50"), US("stat_p99_us", "stat p99"),
              OPS("unlink_ops", "unlink"), CPU("create_cpu_us", "create CPU/op"),
              CPU("stat_cpu_us", "stat CPU/op"), CPU("unlink_cpu_us", "unlink CPU/op")]
MD_MT_METRICS = [OPS("create_ops", "create"), OPS("stat_ops", "stat"),
                 OPS("unlink_ops", "unlink"), CPU("create_cpu_us", "create CPU/op"),
                 CPU("stat_cpu_us", "stat CPU/op"), CPU("unlink_cpu_us", "unlink CPU/op")]
RAND_METRICS = [IOPS("iops", "IOPS"), US("lat_p50_us", "lat p50"), US("lat_p99_us", "lat p99"),
                CPU("cpu_us", "CPU/op")]


def all_cells():
    """The full matrix, in the order it runs and is reported."""
    return [
        Cell("meta", "create/stat/unlink, 1 thread", "md", list(MD_METRICS),
             {"threads": 1}, quick=True),
        Cell("meta-mt", "create/stat/unlink, one thread per core", "md", list(MD_MT_METRICS),
             {"threads": "nproc"}),
        Cell("meta-user", "create/stat/unlink, 1 thread, unprivileged caller", "md",
             list(MD_METRICS), {"threads": 1}, as_user=True),
        Cell("rand4k-qd1", "4 KiB O_DIRECT random read, QD1 (psync)", "fio",
             list(RAND_METRICS), {"rw": "randread", "bs": "4k", "iodepth": 1}, quick=True),
        Cell("rand4k-qd1-user", "4 KiB O_DIRECT random read, QD1 (psync), unprivileged caller",
             "fio", list(RAND_METRICS), {"rw": "randread", "bs": "4k", "iodepth": 1},
             as_user=True),
        Cell("rand4k-qd32", "4 KiB O_DIRECT random read, QD32 (io_uring)", "fio",
             list(RAND_METRICS), {"rw": "randread", "bs": "4k", "iodepth": 32}),
        Cell("seqread-1m", "1 MiB O_DIRECT sequential read", "fio",
             [MBPS("mbps", "read"), CPU("cpu_us", "CPU/op")],
             {"rw": "read", "bs": "1m", "iodepth": 1}, quick=True),
        Cell("seqwrite-1m", "1 MiB O_DIRECT sequential write", "fio",
             [MBPS("mbps", "write"), CPU("cpu_us", "CPU/op")],
             {"rw": "write", "bs": "1m", "iodepth": 1}),
        Cell("seqread-1m-mj", "1 MiB O_DIRECT sequential read, one job per core", "fio",
             [MBPS("mbps", "read"), CPU("cpu_us", "CPU/op")],
             {"rw": "read", "bs": "1m", "iodepth": 1, "numjobs": "nproc"}),
        Cell("stat-load", "stat latency under a 1 MiB sequential writer", "statload",
             [US("stat_p50_us", "stat p50"), US("stat_p99_us", "stat p99"),
              MBPS("writer_mbps", "writer")], quick=True),
        Cell("idle", "daemon CPU while the mount sits idle after a QD32 read burst", "idle",
             [Metric("idle_cpu_pct", "idle CPU", "% core", "lower"),
              Metric("idle_wakeups", "idle switches", "/s", "lower")]),
        Cell("memory", "daemon threads and resident memory after a 1 GiB write burst (1 MiB "
             "O_DIRECT writes, QD16 from every CPU, files removed) and after the idle time",
             "memory",
             [Metric("threads", "threads", "threads", "lower"),
              Metric("rss_burst_mib", "RSS after burst", "MiB", "lower"),
              Metric("rss_idle_mib", "RSS after idle", "MiB", "lower")]),
    ]


# Named sets of cells for --cells. "targets" is every cell the comparison with libfuse
# judges (the multi-job sequential read is left out: it measures memory bandwidth).
GROUPS = {
    "targets": ["meta", "meta-mt", "meta-user", "rand4k-qd1", "rand4k-qd1-user",
                "rand4k-qd32", "seqread-1m", "seqwrite-1m", "stat-load", "idle", "memory"],
}


def select_cells(names=None, quick=False):
    """Cells by name (comma list or list), or the quick or full matrix."""
    cells = all_cells()
    if names:
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        expanded = []
        for n in names:
            for m in GROUPS.get(n, [n]):
                if m not in expanded:
                    expanded.append(m)
        known = {c.name: c for c in cells}
        bad = [n for n in expanded if n not in known]
        if bad:
            raise ValueError("unknown cell(s) %s; known: %s, or a group: %s" % (
                ", ".join(bad), ", ".join(known), ", ".join(GROUPS)))
        return [known[n] for n in expanded]
    return [c for c in cells if c.quick] if quick else cells


def _as(user):
    """subprocess arguments that run a command as user ((name, uid, gid)), or none."""
    if user is None:
        return {}
    return {"user": user[1], "group": user[2], "extra_groups": []}


def _run(cmd, timeout, user=None):
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, **_as(user))
    except subprocess.TimeoutExpired:
        raise CellError("%s timed out after %.0f s" % (os.path.basename(cmd[0]), timeout))
    except OSError as e:
        raise CellError("cannot run %s: %s" % (cmd[0], e.strerror)) from None
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def _run_metered(cmd, timeout, probe, skip=0.0, user=None):
    """Run cmd and measure the daemon's CPU from skip seconds after the start (fio's ramp,
    whose operations it does not count) to the end: (rc, stdout, stderr, cpu seconds or
    None)."""
    try:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, **_as(user))
    except OSError as e:
        raise CellError("cannot run %s: %s" % (cmd[0], e.strerror)) from None
    try:
        cpu0 = None
        if probe.meter is not None:
            if skip > 0:
                try:
                    proc.wait(timeout=skip)
                except subprocess.TimeoutExpired:
                    pass
            cpu0 = probe.cpu()
        out, err = proc.communicate(timeout=timeout)
        cpu = None if cpu0 is None else probe.cpu() - cpu0
    except subprocess.TimeoutExpired:
        raise CellError("%s timed out after %.0f s" % (os.path.basename(cmd[0]), timeout))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"), cpu


def per_op_us(cpu_seconds, ops):
    """Daemon CPU microseconds per operation, None when unknown."""
    if cpu_seconds is None or not ops:
        return None
    return cpu_seconds * 1e6 / ops


def _tail(text, lines=15):
    t = text.strip().splitlines()
    return "\n".join(t[-lines:])


def _threads(env, value):
    return env.nproc if value == "nproc" else int(value)


def layout(env, directory, nfiles):
    """Create rf-data.0 .. rf-data.<nfiles-1> at full size, untimed. Returns seconds taken."""
    if nfiles <= 0:
        return 0.0
    job = fiomod.FioJob("layout", directory, "rf-data", "read", bs="1m", size=env.size,
                        numjobs=nfiles, ioengine=env.qd1_engine, direct=False,
                        create_only=True)
    t0 = time.monotonic()
    rc, out, err = _run(fiomod.build_cmd(job, env.fio), env.timeout_slack * 5)
    if rc != 0:
        raise CellError("fio layout failed (status %d):\n%s" % (rc, _tail(err or out)))
    return time.monotonic() - t0


def run_md(env, directory, params, probe=None, user=None):
    probe = probe or Probe()
    threads = _threads(env, params.get("threads", 1))
    files = max(env.md_files, threads)
    pids = probe.meter.pids if probe.meter is not None else None
    cmd = mdmod.build_cmd(env.mdbench, directory, files=files, threads=threads,
                          stat_seconds=max(0.5, env.runtime / 2), cpu_pids=pids)
    rc, out, err = _run(cmd, env.runtime + env.timeout_slack * 3, user)
    if rc != 0:
        raise CellError("mdbench failed (status %d):\n%s" % (rc, _tail(err or out)))
    try:
        doc = mdmod.parse_output(out)
        return mdmod.summarize(doc), {"cmd": cmd, "user": user and user[0], "mdbench": doc}
    except mdmod.MdbenchError as e:
        raise CellError(str(e)) from None


def fio_job(env, directory, params, name="bench"):
    numjobs = _threads(env, params.get("numjobs", 1))
    stem = "rf-data" if "read" in params["rw"] else "rf-write"
    iodepth = params.get("iodepth", 1)
    return fiomod.FioJob(name, directory, stem, params["rw"], bs=params["bs"], size=env.size,
                         iodepth=iodepth, numjobs=numjobs, runtime=env.runtime, ramp=env.ramp,
                         ioengine=env.engine(iodepth))


def run_fio(env, directory, params, probe=None, user=None):
    probe = probe or Probe()
    job = fio_job(env, directory, params)
    if user is not None and job.stem != "rf-data":
        job.directory = probe.user_dir  # a writer needs a directory of its own
    cmd = fiomod.build_cmd(job, env.fio)
    rc, out, err, cpu = _run_metered(cmd, env.runtime + env.ramp + env.timeout_slack, probe,
                                     skip=env.ramp, user=user)
    if rc != 0:
        raise CellError("fio failed (status %d):\n%s" % (rc, _tail(err or out)))
    try:
        summary = fiomod.summarize(fiomod.parse_output(out), job.rw)
    except fiomod.FioError as e:
        raise CellError("%s\n%s" % (e, _tail(err))) from None
    summary["cpu_s"] = cpu
    summary["cpu_us"] = per_op_us(cpu, summary["ios"])
    return summary, {"cmd": cmd, "ioengine": job.ioengine, "iodepth": job.iodepth,
                     "user": user and user[0], "fio": summary}


def run_idle(env, directory, probe):
    """A short QD32 read burst, then nothing for env.idle_seconds: the daemon's CPU use (in %
    of one core) and context switches per second while idle. The burst wakes every queue
    and worker, so what is measured includes how long they keep polling afterwards."""
    if probe.meter is None:
        return {"idle_cpu_pct": None, "idle_wakeups": None}, {"note": "no daemon"}
    burst = min(env.runtime, 2.0)
    job = fiomod.FioJob("burst", directory, "rf-data", "randread", bs="4k", size=env.size,
                        iodepth=32, runtime=burst, ioengine=env.engine(32))
    cmd = fiomod.build_cmd(job, env.fio)
    rc, out, err = _run(cmd, burst + env.timeout_slack)
    if rc != 0:
        raise CellError("fio burst failed (status %d):\n%s" % (rc, _tail(err or out)))
    try:
        sw0, cpu0, t0 = probe.meter.context_switches(), probe.cpu(), time.monotonic()
        time.sleep(env.idle_seconds)
        sw1, cpu1, t1 = probe.meter.context_switches(), probe.cpu(), time.monotonic()
    except procstat.ProcError as e:
        raise CellError("the daemon: %s" % e) from None
    secs = t1 - t0
    metrics = {"idle_cpu_pct": (cpu1 - cpu0) / secs * 100.0,
               "idle_wakeups": max(0, sw1 - sw0) / secs}
    return metrics, {"burst_cmd": cmd, "idle_seconds": round(secs, 3),
                     "idle_cpu_s": cpu1 - cpu0, "context_switches": sw1 - sw0}


def run_memory(env, directory, probe):
    """Write env.burst_size bytes in 1 MiB O_DIRECT writes at queue depth 16 from one job per
    CPU into files sized beforehand (writes that extend a FUSE file are serialized; these run
    in parallel, so every CPU's queue gets deep), remove the files, then read the daemon's
    threads and resident memory; again after env.idle_seconds of nothing. What a daemon keeps
    after the files are gone is its own: buffers it sized for the burst (and, for a filesystem
    keeping data in memory, what its allocator did not give back)."""
    if probe.meter is None:
        return {"threads": None, "rss_burst_mib": None, "rss_idle_mib": None}, \
            {"note": "no daemon"}
    jobs = max(1, env.nproc)
    per_job = max(1 << 20, env.burst_size // jobs) >> 20 << 20
    job = fiomod.FioJob("burst", directory, "rf-burst", "write", bs="1m",
                        size="%dm" % (per_job >> 20), iodepth=16, numjobs=jobs, runtime=0,
                        ioengine=env.engine(16), fallocate="truncate")
    cmd = fiomod.build_cmd(job, env.fio)
    rc, out, err = _run(cmd, env.timeout_slack * 3)
    for j in range(jobs):
        try:
            os.unlink(os.path.join(directory, "rf-burst.%d" % j))
        except OSError:
            pass
    if rc != 0:
        raise CellError("fio burst failed (status %d):\n%s" % (rc, _tail(err or out)))
    try:
        burst = probe.meter.memory()
        time.sleep(env.idle_seconds)
        idle = probe.meter.memory()
    except procstat.ProcError as e:
        raise CellError("the daemon: %s" % e) from None
    metrics = {"threads": burst["threads"], "rss_burst_mib": burst["rss_kib"] / 1024.0,
               "rss_idle_mib": idle["rss_kib"] / 1024.0}
    return metrics, {"burst_cmd": cmd, "after_burst": burst, "after_idle": idle,
                     "idle_seconds": env.idle_seconds}


def run_statload(env, directory):
    """stat latency (mdbench, one thread) while fio writes 1 MiB blocks sequentially.

    fio runs longer than the stat loop (it is stopped with SIGINT afterwards, which makes it
    report what it did); mdbench is told fio's pid and stops early should fio end first, so
    every sample is taken under load.
    """
    job = fiomod.FioJob("load", directory, "rf-load", "write", bs="1m", size=env.size,
                        runtime=env.runtime + 30, ioengine=env.engine(1))
    fcmd = fiomod.build_cmd(job, env.fio)
    try:
        writer = subprocess.Popen(fcmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
    except OSError as e:
        raise CellError("cannot run fio: %s" % e.strerror) from None
    started = False
    try:
        started = _wait_writing(writer, os.path.join(directory, "rf-load.0"))
        if started:
            mcmd = mdmod.build_cmd(env.mdbench, directory, files=env.load_files, threads=1,
                                   ops=("stat",), stat_seconds=env.runtime,
                                   load_pid=writer.pid)
            rc, out, err = _run(mcmd, env.runtime + env.timeout_slack)
            if rc != 0:
                raise CellError("mdbench failed (status %d):\n%s" % (rc, _tail(err or out)))
            try:
                doc = mdmod.parse_output(out)
                md = mdmod.summarize(doc)
            except mdmod.MdbenchError as e:
                raise CellError(str(e)) from None
    finally:
        if writer.poll() is None:
            writer.send_signal(signal.SIGINT)
        try:
            fout, ferr = writer.communicate(timeout=env.timeout_slack)
        except subprocess.TimeoutExpired:
            writer.kill()
            fout, ferr = writer.communicate()
    fout, ferr = fout.decode(errors="replace"), ferr.decode(errors="replace")
    if not started:
        raise CellError("the fio writer exited before writing (status %s):\n%s"
                        % (writer.returncode, _tail(ferr or fout)))
    if not md.get("load_alive"):
        raise CellError("the fio writer was not running for the whole stat loop:\n%s"
                        % _tail(ferr or fout))
    try:
        wsum = fiomod.summarize(fiomod.parse_output(fout), "write")
    except fiomod.FioError as e:
        raise CellError("fio writer: %s\n%s" % (e, _tail(ferr))) from None
    metrics = {"stat_p50_us": md["stat_p50_us"], "stat_p99_us": md["stat_p99_us"],
               "writer_mbps": wsum["mbps"]}
    return metrics, {"cmd": mcmd, "writer_cmd": fcmd, "ioengine": job.ioengine,
                     "iodepth": job.iodepth, "mdbench": doc, "writer": wsum}


def _wait_writing(proc, path, timeout=20.0):
    """Wait until the writer has put data in its file (fio takes a moment to start).

    False if the writer exited first; CellError if it wrote nothing in time.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            return False
        try:
            if os.stat(path).st_size > 0:
                return True
        except OSError:
            pass
        time.sleep(0.02)
    raise CellError("the fio writer wrote nothing to %s in %.0f s" % (path, timeout))
