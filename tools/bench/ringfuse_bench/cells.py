"""The workload matrix: what one cell runs and which numbers it yields.

A cell is one workload run against one directory (a FUSE mount or the native directory). It
yields several metrics, each with a unit and a direction (is higher or lower better). Files
the read cells need are laid out once per mount by layout(), before anything is measured.
"""

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

from . import fio as fiomod
from . import mdbench as mdmod


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


@dataclass
class Env:
    """What the cells need to know about the run (tools, sizes, times)."""
    fio: str = "fio"
    mdbench: str = "ringfuse-mdbench"
    runtime: float = 5.0
    ramp: float = 0.0
    size: str = "256m"
    ioengine: str = "io_uring"
    nproc: int = 1
    md_files: int = 10000
    md_threads: int = 1
    load_files: int = 100
    timeout_slack: float = 120.0


@dataclass
class Cell:
    name: str
    title: str
    kind: str  # "md", "fio" or "statload"
    metrics: list
    params: dict = field(default_factory=dict)
    quick: bool = False  # part of the --quick matrix

    def data_files(self, env):
        """How many rf-data.N files this cell reads (to be laid out beforehand)."""
        if self.kind != "fio" or "read" not in self.params["rw"]:
            return 0
        return env.nproc if self.params.get("numjobs") == "nproc" else 1

    def run(self, env, directory):
        """Run the cell in directory: (metrics {key: value}, raw details for the JSON file)."""
        if self.kind == "md":
            return run_md(env, directory, self.params)
        if self.kind == "fio":
            return run_fio(env, directory, self.params)
        if self.kind == "statload":
            return run_statload(env, directory)
        raise CellError("unknown cell kind %s" % self.kind)


def all_cells():
    """The full matrix, in the order it runs and is reported."""
    return [
        Cell("meta", "create/stat/unlink, 1 thread", "md",
             [OPS("create_ops", "create"), OPS("stat_ops", "stat"),
              US("stat_p50_us", "stat p50"), US("stat_p99_us", "stat p99"),
              OPS("unlink_ops", "unlink")],
             {"threads": 1}, quick=True),
        Cell("meta-mt", "create/stat/unlink, one thread per core", "md",
             [OPS("create_ops", "create"), OPS("stat_ops", "stat"), OPS("unlink_ops", "unlink")],
             {"threads": "nproc"}),
        Cell("rand4k-qd1", "4 KiB O_DIRECT random read, QD1", "fio",
             [IOPS("iops", "IOPS"), US("lat_p50_us", "lat p50"), US("lat_p99_us", "lat p99")],
             {"rw": "randread", "bs": "4k", "iodepth": 1}, quick=True),
        Cell("rand4k-qd32", "4 KiB O_DIRECT random read, QD32", "fio",
             [IOPS("iops", "IOPS"), US("lat_p50_us", "lat p50"), US("lat_p99_us", "lat p99")],
             {"rw": "randread", "bs": "4k", "iodepth": 32}),
        Cell("seqread-1m", "1 MiB O_DIRECT sequential read", "fio",
             [MBPS("mbps", "read")], {"rw": "read", "bs": "1m", "iodepth": 1}, quick=True),
        Cell("seqwrite-1m", "1 MiB O_DIRECT sequential write", "fio",
             [MBPS("mbps", "write")], {"rw": "write", "bs": "1m", "iodepth": 1}),
        Cell("seqread-1m-mj", "1 MiB O_DIRECT sequential read, one job per core", "fio",
             [MBPS("mbps", "read")], {"rw": "read", "bs": "1m", "iodepth": 1,
                                      "numjobs": "nproc"}),
        Cell("stat-load", "stat latency under a 1 MiB sequential writer", "statload",
             [US("stat_p50_us", "stat p50"), US("stat_p99_us", "stat p99"),
              MBPS("writer_mbps", "writer")], quick=True),
    ]


def select_cells(names=None, quick=False):
    """Cells by name (comma list or list), or the quick or full matrix."""
    cells = all_cells()
    if names:
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        known = {c.name: c for c in cells}
        bad = [n for n in names if n not in known]
        if bad:
            raise ValueError("unknown cell(s) %s; known: %s" % (", ".join(bad), ", ".join(known)))
        return [known[n] for n in names]
    return [c for c in cells if c.quick] if quick else cells


def _run(cmd, timeout):
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise CellError("%s timed out after %.0f s" % (os.path.basename(cmd[0]), timeout))
    except OSError as e:
        raise CellError("cannot run %s: %s" % (cmd[0], e.strerror)) from None
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


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
                        numjobs=nfiles, ioengine=env.ioengine, direct=False, create_only=True)
    t0 = time.monotonic()
    rc, out, err = _run(fiomod.build_cmd(job, env.fio), env.timeout_slack * 5)
    if rc != 0:
        raise CellError("fio layout failed (status %d):\n%s" % (rc, _tail(err or out)))
    return time.monotonic() - t0


def run_md(env, directory, params):
    threads = _threads(env, params.get("threads", 1))
    files = max(env.md_files, threads)
    cmd = mdmod.build_cmd(env.mdbench, directory, files=files, threads=threads,
                          stat_seconds=max(0.5, env.runtime / 2))
    rc, out, err = _run(cmd, env.runtime + env.timeout_slack * 3)
    if rc != 0:
        raise CellError("mdbench failed (status %d):\n%s" % (rc, _tail(err or out)))
    try:
        doc = mdmod.parse_output(out)
        return mdmod.summarize(doc), {"cmd": cmd, "mdbench": doc}
    except mdmod.MdbenchError as e:
        raise CellError(str(e)) from None


def fio_job(env, directory, params, name="bench"):
    numjobs = _threads(env, params.get("numjobs", 1))
    stem = "rf-data" if "read" in params["rw"] else "rf-write"
    return fiomod.FioJob(name, directory, stem, params["rw"], bs=params["bs"], size=env.size,
                         iodepth=params.get("iodepth", 1), numjobs=numjobs,
                         runtime=env.runtime, ramp=env.ramp, ioengine=env.ioengine)


def run_fio(env, directory, params):
    job = fio_job(env, directory, params)
    cmd = fiomod.build_cmd(job, env.fio)
    rc, out, err = _run(cmd, env.runtime + env.ramp + env.timeout_slack)
    if rc != 0:
        raise CellError("fio failed (status %d):\n%s" % (rc, _tail(err or out)))
    try:
        summary = fiomod.summarize(fiomod.parse_output(out), job.rw)
    except fiomod.FioError as e:
        raise CellError("%s\n%s" % (e, _tail(err))) from None
    return summary, {"cmd": cmd, "fio": summary}


def run_statload(env, directory):
    """stat latency (mdbench, one thread) while fio writes 1 MiB blocks sequentially.

    fio runs longer than the stat loop (it is stopped with SIGINT afterwards, which makes it
    report what it did); mdbench is told fio's pid and stops early should fio end first, so
    every sample is taken under load.
    """
    job = fiomod.FioJob("load", directory, "rf-load", "write", bs="1m", size=env.size,
                        runtime=env.runtime + 30, ioengine=env.ioengine)
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
    return metrics, {"cmd": mcmd, "writer_cmd": fcmd, "mdbench": doc, "writer": wsum}


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
