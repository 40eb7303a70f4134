"""ringfuse-bench command line: rounds, and the run loop.

The configurations (configs.py) are the columns: ringfuse filesystems per transport, libfuse
peers, other daemons, native. Every round runs each configuration once, in an order rotated by
one per round so that slow drifts of the machine (frequency, background work) do not always
hit the same configuration. Within a configuration's turn the filesystem is mounted once and
every cell runs on that mount, with the daemon's processes known so that the cells can
measure its CPU time.
"""

import argparse
import json
import os
import platform
import pwd
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import __version__
from . import cells as cellmod
from . import mounts
from . import procstat
from . import perfrec
from . import report

from .configs import (Config, UsageError, build_configs, build_pairs,  # noqa: F401
                      headline_configs, parse_compare_spec, parse_config_spec, parse_fs_list)

DEFAULT_TRANSPORTS = "uring,dev,uring-rw"


def build_parser():
    p = argparse.ArgumentParser(
        prog="ringfuse-bench",
        description="Compare FUSE transports side by side: the same workloads (fio and "
        "ringfuse-mdbench) on a ringfuse filesystem over each transport, on other FUSE "
        "daemons, and natively on a plain directory.",
        epilog="Example: ringfuse-bench --quick --fs memfs;  ringfuse-bench --config "
        "uring-spin:transport=uring,uring_spin_us=50 --compare 'lowlevel:passthrough_ll -f "
        "-o source={src} {mnt}'")
    g = p.add_argument_group("what is compared")
    g.add_argument("--fs", default="memfs", metavar="LIST",
                   help="the ringfuse filesystem(s) to run: memfs, passthrough, both "
                   "(memfs,passthrough: every configuration once per filesystem, named "
                   "FS-CONFIG) or cmd (default memfs)")
    g.add_argument("--fs-cmd", metavar="CMD",
                   help="with --fs cmd: a ringfuse daemon command line with {mnt}, {src} and "
                   "{opts} (the configuration's -o options); it must stay in the foreground "
                   "or daemonise")
    g.add_argument("--transports", default=DEFAULT_TRANSPORTS, metavar="LIST",
                   help="transports to compare, each a configuration (default %(default)s; "
                   "'' for none)")
    g.add_argument("--config", action="append", default=[], metavar="NAME:OPTS",
                   help="an extra configuration with these -o options, e.g. "
                   "uring-spin:transport=uring,uring_spin_us=50 (repeatable)")
    g.add_argument("--compare", action="append", default=[], metavar="[NAME:]CMD",
                   help="another FUSE daemon, e.g. 'll:passthrough_ll -f -o source={src} "
                   "{mnt}' (repeatable)")
    g.add_argument("--libfuse", metavar="DIR",
                   help="a libfuse build directory (meson, with examples and io-uring): adds "
                   "its passthrough_hp over io-uring and /dev/fuse next to ringfuse-passthrough "
                   "and memfs_ll over io-uring next to ringfuse-memfs, all with caching off")
    g.add_argument("--kernel-passthrough", action="store_true",
                   help="with --fs passthrough: also ringfuse-passthrough with kernel "
                   "passthrough (uring-kpt) and, with --libfuse, passthrough_hp with it "
                   "(hp-uring-kpt)")
    g.add_argument("--baseline",
                   help="configuration the ratios are taken against (default dev, or with "
                   "--libfuse its io-uring passthrough_hp or memfs_ll)")
    g.add_argument("--pair", action="append", default=[], metavar="CONFIG:VERSUS",
                   help="a comparison to report as ratios on the headline cells (repeatable; "
                   "default with --libfuse: each ringfuse filesystem against its libfuse peer)")
    g.add_argument("--cache", default="none", choices=("none", "auto", "always"),
                   help="cache= option of memfs/passthrough (default none)")
    g.add_argument("--daemon-opts", default="", metavar="OPTS",
                   help="more -o options for every ringfuse configuration")

    g = p.add_argument_group("workloads")
    g.add_argument("--quick", action="store_true",
                   help="short cells (2 s), one round, reduced matrix: a smoke run")
    g.add_argument("--cells", metavar="LIST",
                   help="cells to run (default: all, or the quick set); see --list-cells")
    g.add_argument("--list-cells", action="store_true", help="list the cells and exit")
    g.add_argument("--runtime", type=float, help="seconds per cell (default 5, quick 2)")
    g.add_argument("--ramp", type=float, help="fio ramp time in seconds (default 1, quick 0)")
    g.add_argument("--repeat", type=int, help="rounds (default 3, quick 1)")
    g.add_argument("--size", help="size of each fio file (default 256m, quick 64m)")
    g.add_argument("--ioengine", default="io_uring",
                   help="fio ioengine of the deep-queue cells (default io_uring; libaio works)")
    g.add_argument("--qd1-engine", default="psync",
                   help="fio ioengine of the queue-depth-1 cells (default psync: plain "
                   "pread/pwrite, what a program sees)")
    g.add_argument("--as-user", default="nobody", metavar="USER",
                   help="the unprivileged caller of the *-user cells (default nobody); the "
                   "mounts then get allow_other")
    g.add_argument("--idle-seconds", type=float,
                   help="how long the idle and memory cells watch the daemon (default 10, "
                   "quick 2)")
    g.add_argument("--burst-size", default="1g", metavar="SIZE",
                   help="bytes the memory cell writes before it reads the daemon's memory "
                   "(default 1g; k, m, g suffixes)")
    g.add_argument("--md-files", type=int, help="files for the metadata cells "
                   "(default 10000, quick 1000)")

    g = p.add_argument_group("where")
    g.add_argument("--build-dir", default=os.environ.get("RINGFUSE_BUILD"),
                   help="meson build directory with the daemons and ringfuse-mdbench "
                   "(default: $RINGFUSE_BUILD, or found next to this script)")
    g.add_argument("--mdbench", help="path of ringfuse-mdbench")
    g.add_argument("--workdir", help="scratch directory for mount points, sources and the "
                   "native run (default: a new directory in /dev/shm)")

    g = p.add_argument_group("output")
    g.add_argument("--json", metavar="PATH", help="results file (default "
                   "bench-results/bench-<timestamp>.json)")
    g.add_argument("--svg", metavar="PATH", help="bar chart (default: the JSON path with .svg)")
    g.add_argument("--no-svg", action="store_true", help="do not write the chart")
    g.add_argument("--headline-svg", metavar="PATH",
                   help="also write the compact headline chart (ringfuse, libfuse and native "
                   "on the headline cells, absolute numbers) for the README")
    g.add_argument("--headline-configs", metavar="LIST",
                   help="columns of the headline chart (default: ringfuse and libfuse over "
                   "io-uring, native)")
    g.add_argument("--headline-note", metavar="TEXT",
                   help="a line of text under the headline chart's title (e.g. where the "
                   "numbers come from)")
    g.add_argument("--from-json", metavar="PATH",
                   help="run nothing: print the table and write the charts of an earlier "
                   "run's results file")
    g.add_argument("--perf", metavar="DIR",
                   help="record a perf profile (cpu-clock, call graphs, whole machine) of "
                   "every cell into DIR/rROUND-CONFIG-CELL.data; profiled numbers are not for "
                   "comparison")
    g.add_argument("--dry-run", action="store_true", help="show the plan and exit")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    g.add_argument("--version", action="version", version="%(prog)s " + __version__)
    return p


def resolve_defaults(args):
    q = args.quick
    if args.runtime is None:
        args.runtime = 2.0 if q else 5.0
    if args.ramp is None:
        args.ramp = 0.0 if q else 1.0
    if args.repeat is None:
        args.repeat = 1 if q else 3
    if args.size is None:
        args.size = "64m" if q else "256m"
    if args.md_files is None:
        args.md_files = 1000 if q else 10000
    if args.idle_seconds is None:
        args.idle_seconds = 2.0 if q else 10.0
    if args.runtime <= 0 or args.repeat < 1 or args.md_files < 1 or args.idle_seconds <= 0:
        raise UsageError("--runtime, --repeat, --md-files and --idle-seconds must be positive")
    args.burst_bytes = parse_bytes(args.burst_size)
    if args.burst_bytes is None or args.burst_bytes < (1 << 20):
        raise UsageError("--burst-size wants a size of at least 1m (e.g. 1g), got %r"
                         % args.burst_size)
    return args


def parse_bytes(text):
    """"1g", "512m", "4096" -> bytes (powers of 1024), None if malformed."""
    text = str(text).strip().lower()
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(text[-1:], 1)
    digits = text[:-1] if mult > 1 else text
    return int(digits) * mult if digits.isdigit() else None


def resolve_user(name):
    """(name, uid, gid) of --as-user; the caller must not be root."""
    try:
        pw = pwd.getpwnam(name) if not name.isdigit() else pwd.getpwuid(int(name))
    except KeyError:
        raise UsageError("--as-user %s: no such user" % name) from None
    if pw.pw_uid == 0:
        raise UsageError("--as-user must name an unprivileged user, not root")
    return (pw.pw_name, pw.pw_uid, pw.pw_gid)


def default_baseline(configs):
    names = [c.name for c in configs]
    for n in ("hp-uring", "memfs_ll-uring", "dev"):
        if n in names:
            return n
    return names[0]


def script_dir():
    return os.path.dirname(os.path.realpath(sys.argv[0]))


def build_dirs(args):
    """Candidate meson build directories, best first."""
    out = []
    if args.build_dir:
        out.append(os.path.abspath(args.build_dir))
    here = script_dir()
    up2 = os.path.dirname(os.path.dirname(here))
    if os.path.exists(os.path.join(up2, "build.ninja")):
        out.append(up2)  # running from <build>/tools/bench
    if os.path.exists(os.path.join(up2, "meson.build")):
        out.append(os.path.join(up2, "build"))  # running from the source tree
    return out


def find_program(args, name, subdir):
    for d in build_dirs(args):
        p = os.path.join(d, subdir, name)
        if os.access(p, os.X_OK):
            return p
    p = os.path.join(script_dir(), name)
    if os.access(p, os.X_OK):
        return p
    return shutil.which(name)


def daemon_template(args, fs=None):
    """argv template of the ringfuse daemon for filesystem fs (default --fs), or raise
    UsageError."""
    fs = fs or args.fs
    if fs == "cmd":
        if not args.fs_cmd:
            raise UsageError("--fs cmd needs --fs-cmd 'DAEMON ... -o {opts} {mnt}'")
        argv = shlex.split(args.fs_cmd)
        if not any("{mnt}" in a for a in argv) or not any("{opts}" in a for a in argv):
            raise UsageError("--fs-cmd must contain {mnt} and {opts}")
        return argv
    name = "ringfuse-" + fs
    prog = find_program(args, name, "fs")
    if not prog:
        raise UsageError("%s not found (looked in %s and PATH): build it with `ninja -C "
                         "<builddir>` or pass --build-dir" % (name, ", ".join(
                             os.path.join(d, "fs") for d in build_dirs(args)) or "-"))
    opts = "{opts},cache=" + args.cache
    if fs == "memfs":
        return [prog, "-f", "-o", opts, "{mnt}"]
    return [prog, "-f", "-o", opts, "{src}", "{mnt}"]


def tool_version(argv):
    try:
        return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=10).stdout.decode(errors="replace").strip()
    except (OSError, subprocess.TimeoutExpired):
        return None


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def round_order(configs, rnd):
    """The configurations of round rnd: the list rotated left by rnd, so that each one runs
    first, second, ... in turn and machine drift spreads evenly."""
    if not configs:
        return []
    k = rnd % len(configs)
    return configs[k:] + configs[:k]


class Progress:
    def __init__(self, total, quiet):
        self.total, self.done, self.quiet = total, 0, quiet
        self.t0 = time.monotonic()

    def say(self, msg):
        if not self.quiet:
            el = int(time.monotonic() - self.t0)
            print("[%3d/%d %d:%02d] %s" % (self.done, self.total, el // 60, el % 60, msg),
                  file=sys.stderr, flush=True)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


class _signals_blocked:
    """Hold SIGINT/SIGTERM while unmounting so that a second Ctrl-C cannot leave a mount."""

    SIGS = {signal.SIGINT, signal.SIGTERM}

    def __enter__(self):
        self.old = signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGS)

    def __exit__(self, *exc):
        signal.pthread_sigmask(signal.SIG_SETMASK, self.old)
        return False


class Runner:
    """Runs the matrix and fills the results document."""

    def __init__(self, args, configs, cells, env, workdir):
        self.args, self.configs, self.cells, self.env = args, configs, cells, env
        self.workdir = workdir
        self.doc = None
        self.failed_configs = {}
        self.perf = None

    def new_doc(self, meta):
        self.doc = {
            "meta": meta,
            "baseline": self.args.baseline,
            "configs": [c.describe() for c in self.configs],
            "cells": [dict({"name": c.name, "title": c.title,
                            "metrics": [m.__dict__ for m in c.metrics]},
                           **({"as_user": True} if c.as_user else {})) for c in self.cells],
            "pairs": build_pairs(self.args, self.configs),
            "headline_configs": self.headline_configs(),
            "samples": [],
            "mounts": [],
            "warnings": [],
        }
        return self.doc

    def headline_configs(self):
        names = [c.name for c in self.configs]
        if self.args.headline_configs:
            want = [n.strip() for n in self.args.headline_configs.split(",") if n.strip()]
            bad = [n for n in want if n not in names]
            if bad:
                raise UsageError("--headline-configs: no configuration %s" % ", ".join(bad))
            return want
        return headline_configs(self.configs)

    def warn(self, msg):
        self.doc["warnings"].append(msg)
        print("ringfuse-bench: warning: " + msg, file=sys.stderr, flush=True)

    def record(self, rnd, cfg, cell, metrics=None, error=None, raw=None, seconds=None):
        s = {"round": rnd, "config": cfg.name, "cell": cell.name, "metrics": metrics,
             "error": error}
        if seconds is not None:
            s["seconds"] = round(seconds, 3)
        if raw is not None:
            s["raw"] = raw
        self.doc["samples"].append(s)

    def run(self, progress):
        for rnd in range(self.args.repeat):
            for cfg in round_order(self.configs, rnd):
                self.run_config(rnd, cfg, progress)

    def run_config(self, rnd, cfg, progress):
        tag = "round %d/%d %s" % (rnd + 1, self.args.repeat, cfg.name)
        why = cfg.skip or self.failed_configs.get(cfg.name)
        if why:
            for cell in self.cells:
                self.record(rnd, cfg, cell, error="skipped: " + why)
                progress.done += 1
            progress.say("%s: skipped (%s)" % (tag, why.splitlines()[0]))
            return
        progress.say("%s: %s" % (tag, "preparing" if cfg.kind == "native" else "mounting"))
        target = os.path.join(self.workdir, "native" if cfg.kind == "native"
                              else "mnt-" + cfg.name)
        src = os.path.join(self.workdir, "src-" + cfg.name)
        daemon = None
        mrec = {"round": rnd, "config": cfg.name}
        try:
            os.makedirs(target, exist_ok=True)
            if cfg.kind != "native":
                os.makedirs(src, exist_ok=True)
                daemon = mounts.Daemon(cfg.argv(src, target),
                                       target, os.path.join(self.workdir, "log-%s-r%d.txt"
                                                            % (cfg.name, rnd)))
                mrec["argv"] = daemon.argv
                try:
                    daemon.start()
                except mounts.MountError as e:
                    msg = "could not mount %s: %s" % (cfg.name, e)
                    print("ringfuse-bench: " + msg, file=sys.stderr, flush=True)
                    self.failed_configs[cfg.name] = "mount failed in round %d" % (rnd + 1)
                    mrec["error"] = str(e)
                    for cell in self.cells:
                        self.record(rnd, cfg, cell, error=msg)
                        progress.done += 1
                    return
                mrec["mount_seconds"] = round(daemon.mount_seconds, 3)
            if daemon is not None:
                mrec["pids"] = daemon.pids
                mrec["io_uring_instances"] = daemon.uring_instances()
                self.check_peer_uring(cfg, mrec)
            probe = cellmod.Probe(meter=daemon.cpu_meter() if daemon is not None else None)
            if daemon is not None and probe.meter is None:
                self.warn("%s: the daemon's processes were not found; no CPU numbers" %
                          cfg.name)
            if any(c.as_user for c in self.cells):
                probe.user_dir = self.make_user_dir(cfg, target)
            nfiles = max([c.data_files(self.env) for c in self.cells] + [0])
            if nfiles:
                progress.say("%s: laying out %d x %s fio file(s)" % (tag, nfiles, self.env.size))
                try:
                    mrec["layout_seconds"] = round(cellmod.layout(self.env, target, nfiles), 3)
                except cellmod.CellError as e:
                    mrec["error"] = str(e)
                    self.warn("%s: %s" % (cfg.name, e))
            for cell in self.cells:
                self.run_cell(rnd, cfg, cell, target, progress, tag, daemon, probe)
        finally:
            if daemon is not None:
                progress.say("%s: unmounting" % tag)
                with _signals_blocked():
                    daemon.stop()
                if cfg.kind == "ringfuse":
                    mrec["transport_seen"] = daemon.transport_seen()
                mrec["exit_status"] = daemon.returncode()
                mrec["log_tail"] = daemon.log_text(limit=2000)
                if daemon.stop_messages:
                    mrec["stop_messages"] = daemon.stop_messages
                    self.warn("%s: %s" % (cfg.name, "; ".join(daemon.stop_messages)))
                self.check_transport(cfg, mrec)
            if cfg.kind != "native" or daemon is not None:
                self.doc["mounts"].append(mrec)
            for d in ([target] if cfg.kind == "native" else []) + (
                    [src] if cfg.kind != "native" else []):
                shutil.rmtree(d, ignore_errors=True)

    def start_perf(self, rnd, cfg, cell):
        path = perfrec.data_path(self.args.perf, rnd, cfg.name, cell.name)
        try:
            return perfrec.Recorder(self.perf, path, os.path.join(self.args.perf, "perf.log"))
        except perfrec.ProfileError as e:
            self.warn("%s / %s: no profile: %s" % (cfg.name, cell.name, e))
            return None

    def make_user_dir(self, cfg, target):
        """A directory of the mount owned by the --as-user caller, for its metadata cells."""
        name, uid, gid = self.env.user
        path = os.path.join(target, "rf-user")
        try:
            os.mkdir(path, 0o755)
            os.chown(path, uid, gid)
            return path
        except OSError as e:
            self.warn("%s: cannot make a directory for %s in the mount (%s); the -user cells "
                      "fail" % (cfg.name, name, e.strerror))
            return None

    def check_peer_uring(self, cfg, mrec):
        if cfg.expect_uring and not mrec["io_uring_instances"] and mrec["pids"]:
            self.warn("%s should serve over io-uring but its processes hold no io_uring "
                      "instance; its numbers are not what they claim" % cfg.name)
        if cfg.kind == "compare" and mrec["pids"]:
            mrec["transport_seen"] = "uring" if mrec["io_uring_instances"] else "dev"

    def check_transport(self, cfg, mrec):
        want, seen = cfg.requested_transport(), mrec.get("transport_seen")
        if cfg.kind == "ringfuse" and want and want != "auto" and seen and seen != want:
            self.warn("%s asked for transport %s but the daemon says it used %s; its numbers "
                      "are not what they claim" % (cfg.name, want, seen))

    def run_cell(self, rnd, cfg, cell, target, progress, tag, daemon, probe=None):
        why = cfg.not_applicable.get(cell.name)
        if why:
            progress.done += 1
            progress.say("%s: %s: not applicable (%s)" % (tag, cell.name, why))
            s = {"round": rnd, "config": cfg.name, "cell": cell.name, "metrics": None,
                 "error": None, "not_applicable": why}
            self.doc["samples"].append(s)
            return
        progress.say("%s: %s" % (tag, cell.name))
        t0 = time.monotonic()
        recorder = None
        try:
            if daemon is not None and not daemon.alive():
                raise cellmod.CellError("the daemon is gone (exit status %s):\n%s" % (
                    daemon.proc.returncode, daemon.log_text(limit=1500)))
            if self.args.perf:
                recorder = self.start_perf(rnd, cfg, cell)
            try:
                metrics, raw = cell.run(self.env, target, probe)
            finally:
                if recorder is not None:
                    recorder.stop()
        except (cellmod.CellError, OSError, ValueError, KeyError, TypeError) as e:
            # One broken cell must not cost the rest of the matrix (or leave a mount behind).
            progress.done += 1
            msg = str(e) if isinstance(e, cellmod.CellError) else "internal error: %r" % (e,)
            print("ringfuse-bench: %s / %s: %s" % (cfg.name, cell.name, msg), file=sys.stderr,
                  flush=True)
            self.record(rnd, cfg, cell, error=msg, seconds=time.monotonic() - t0)
            return
        progress.done += 1
        keys = [m.key for m in cell.metrics]
        shown = ", ".join("%s %s %s" % (m.label, report.fmt_num(metrics.get(m.key)), m.unit)
                          for m in cell.metrics)
        progress.say("%s: %s -> %s" % (tag, cell.name, shown))
        self.record(rnd, cfg, cell, metrics={k: metrics.get(k) for k in keys},
                    raw=raw, seconds=time.monotonic() - t0)


def check_uring(configs):
    """Make sure enable_uring is on for configurations that need it, else skip them."""
    need = [c for c in configs if c.needs_uring()]
    if not need:
        return None
    ok, msg = mounts.ensure_uring_enabled()
    if not ok:
        why = "FUSE-over-io-uring is not available: " + msg
        for c in need:
            c.skip = why
        print("ringfuse-bench: %s; skipping %s" % (why, ", ".join(c.name for c in need)),
              file=sys.stderr, flush=True)
    elif "was N" in msg:
        print("ringfuse-bench: " + msg, file=sys.stderr, flush=True)
    return msg


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _main(args)
    except UsageError as e:
        print("ringfuse-bench: %s" % e, file=sys.stderr)
        return 2


def _main(args):
    if args.list_cells:
        for c in cellmod.all_cells():
            print("%-14s %s%s: %s" % (c.name, c.title, " [quick]" if c.quick else "",
                                      ", ".join("%s (%s)" % (m.label, m.unit)
                                                for m in c.metrics)))
        return 0
    if args.from_json:
        return rerender(args)
    resolve_defaults(args)
    try:
        cells = cellmod.select_cells(args.cells, args.quick)
    except ValueError as e:
        raise UsageError(str(e)) from None
    user = resolve_user(args.as_user) if any(c.as_user for c in cells) else None
    args.allow_other = user is not None

    fio = shutil.which("fio")
    if not fio and not args.dry_run:
        raise UsageError("fio not found in PATH: install it with `apt-get install fio`")
    needs_md = any(c.kind in ("md", "statload") for c in cells)
    mdbench = args.mdbench or find_program(args, "ringfuse-mdbench", "tools/bench")
    if needs_md and not mdbench and not args.dry_run:
        raise UsageError("ringfuse-mdbench not found: build it with `ninja -C <builddir>` and "
                         "pass --build-dir (or --mdbench PATH)")

    fss = parse_fs_list(args.fs)
    need_daemon = args.transports.strip(",") or args.config or args.kernel_passthrough
    if args.kernel_passthrough and "passthrough" not in fss:
        raise UsageError("--kernel-passthrough needs --fs passthrough")
    templates = {fs: daemon_template(args, fs) for fs in fss} if need_daemon else {}
    configs = build_configs(args, templates)
    names = [c.name for c in configs]
    if args.baseline is None:
        args.baseline = default_baseline(configs)
    if args.baseline not in names:
        fallback = names[0]
        print("ringfuse-bench: baseline %r is not among the configurations (%s); using %s"
              % (args.baseline, ", ".join(names), fallback), file=sys.stderr)
        args.baseline = fallback

    nproc = len(os.sched_getaffinity(0))
    env = cellmod.Env(fio=fio or "fio", mdbench=mdbench or "ringfuse-mdbench",
                      runtime=args.runtime, ramp=args.ramp, size=args.size,
                      ioengine=args.ioengine, qd1_engine=args.qd1_engine, nproc=nproc,
                      md_files=args.md_files, idle_seconds=args.idle_seconds,
                      burst_size=args.burst_bytes, user=user)

    if args.dry_run:
        print("configurations (%d round(s), rotated):" % args.repeat)
        for c in configs:
            cmd = " ".join(shlex.quote(a) for a in c.argv("SRC", "MNT")) if c.template else \
                "(plain directory)"
            print("  %-14s %s%s" % (c.name, cmd, ("\n  %14s skipped: %s" % ("", c.skip))
                                     if c.skip else ""))
        print("cells (%.3g s each):" % args.runtime)
        for c in cells:
            print("  %-14s %s" % (c.name, c.title))
        pairs = build_pairs(args, configs)
        if pairs:
            print("pairs: %s" % ", ".join("%s/%s" % (p["config"], p["versus"]) for p in pairs))
        if user:
            print("unprivileged caller: %s (uid %d); mounts get allow_other" % user[:2])
        print("fio: %s\nmdbench: %s" % (fio or "NOT FOUND (apt-get install fio)",
                                         mdbench or "NOT FOUND"))
        return 0

    if os.geteuid() != 0 and any(c.kind != "native" for c in configs):
        print("ringfuse-bench: not running as root: mounting may fail", file=sys.stderr)
    uring_status = check_uring(configs)

    if not procstat.set_child_subreaper():
        print("ringfuse-bench: cannot become a child subreaper: a daemon that forks may not "
              "be found for its CPU time", file=sys.stderr)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = args.json or os.path.join("bench-results", "bench-%s.json" % stamp)
    svg_path = None if args.no_svg else (args.svg or os.path.splitext(json_path)[0] + ".svg")

    own_workdir = args.workdir is None
    if own_workdir:
        base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
        workdir = tempfile.mkdtemp(prefix="ringfuse-bench.", dir=base)
    else:
        workdir = os.path.abspath(args.workdir)
        os.makedirs(workdir, exist_ok=True)
    if user:
        os.chmod(workdir, 0o755)  # the unprivileged caller walks through it to the mounts

    meta = {
        "tool": "ringfuse-bench", "version": __version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv[1:],
        "fs": args.fs if need_daemon else None, "cache": args.cache,
        "runtime": args.runtime, "ramp": args.ramp,
        "rounds": args.repeat, "size": args.size, "ioengine": args.ioengine,
        "qd1_engine": args.qd1_engine, "idle_seconds": args.idle_seconds,
        "burst_size": args.burst_bytes,
        "as_user": user[0] if user else None, "libfuse": args.libfuse,
        "libfuse_version": libfuse_version(args.libfuse),
        "md_files": args.md_files, "quick": args.quick,
        "kernel": platform.release(), "nproc": nproc, "cpu": cpu_model(),
        "fio_version": tool_version([fio, "--version"]),
        "enable_uring": uring_status, "workdir_fs": _fstype(workdir),
    }
    runner = Runner(args, configs, cells, env, workdir)
    if args.perf:
        runner.perf = perfrec.find_perf()
        if not runner.perf:
            raise UsageError("--perf needs perf (Debian: apt-get install linux-perf)")
        os.makedirs(args.perf, exist_ok=True)
    doc = runner.new_doc(meta)
    progress = Progress(args.repeat * len(configs) * len(cells), args.quiet)
    old_term = signal.signal(signal.SIGTERM, _interrupt)
    interrupted = False
    t0 = time.monotonic()
    try:
        runner.run(progress)
    except KeyboardInterrupt:
        interrupted = True
        print("\nringfuse-bench: interrupted; everything is unmounted", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, old_term)
        if own_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    doc["meta"]["seconds"] = round(time.monotonic() - t0, 1)
    doc["meta"]["interrupted"] = interrupted

    report.summarize(doc)
    print(report.format_table(doc))
    if doc.get("pairs"):
        print(report.format_pairs(doc))
    missing = [(s["config"], s["cell"], s["error"]) for s in doc["samples"] if s.get("error")]
    for w in doc["warnings"]:
        print("warning: " + w)
    print(report.format_not_applicable(doc), end="")
    if missing:
        print("%d cell run(s) failed or were skipped:" % len(missing))
        for cfg, cell, err in missing[:20]:
            print("  %s / %s: %s" % (cfg, cell, err.splitlines()[0] if err else "?"))
    report.write_json(doc, json_path)
    print("results: %s" % json_path)
    if svg_path:
        report.write_svg(doc, svg_path)
        print("chart:   %s" % svg_path)
    if args.headline_svg:
        report.write_headline_svg(doc, args.headline_svg, args.headline_note)
        print("headline chart: %s" % args.headline_svg)
    if interrupted:
        return 130
    return 1 if missing else 0


def rerender(args):
    """--from-json: the table, pairs and charts of an earlier run, without running anything."""
    try:
        with open(args.from_json) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise UsageError("--from-json %s: %s" % (args.from_json, e)) from None
    names = [c["name"] for c in doc.get("configs", [])]
    if args.baseline:
        if args.baseline not in names:
            raise UsageError("--baseline %s is not a configuration of that run" % args.baseline)
        doc["baseline"] = args.baseline
    if args.pair:
        doc["pairs"] = build_pairs(args, [Config(n, "x") for n in names])
    if args.headline_configs:
        want = [n.strip() for n in args.headline_configs.split(",") if n.strip()]
        if any(n not in names for n in want):
            raise UsageError("--headline-configs names a configuration that run did not have")
        doc["headline_configs"] = want
    report.summarize(doc)
    print(report.format_table(doc))
    if doc.get("pairs"):
        print(report.format_pairs(doc))
    print(report.format_not_applicable(doc), end="")
    if args.svg:
        report.write_svg(doc, args.svg)
        print("chart:   %s" % args.svg)
    if args.headline_svg:
        report.write_headline_svg(doc, args.headline_svg, args.headline_note)
        print("headline chart: %s" % args.headline_svg)
    return 0


def libfuse_version(build_dir):
    """The libfuse version and commit a --libfuse build directory was made from, if known."""
    if not build_dir:
        return None
    try:
        with open(os.path.join(build_dir, "meson-info", "meson-info.json")) as f:
            src = json.load(f)["directories"]["source"]
        with open(os.path.join(build_dir, "meson-info", "intro-projectinfo.json")) as f:
            version = json.load(f).get("version")
    except (OSError, ValueError, KeyError):
        return None
    commit = tool_version(["git", "-C", src, "rev-parse", "--short", "HEAD"])
    return "%s (%s)" % (version, commit) if commit and " " not in commit else version


def _fstype(path):
    try:
        m = None
        real = os.path.realpath(path)
        for e in mounts.parse_mountinfo(mounts.read_mountinfo()):
            mp = e["mountpoint"]
            if real == mp or real.startswith(mp.rstrip("/") + "/"):
                if m is None or len(mp) >= len(m["mountpoint"]):
                    m = e
        return m["fstype"] if m else None
    except OSError:
        return None
