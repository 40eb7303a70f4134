"""ringfuse-bench command line: configurations, rounds, and the run loop.

A configuration is one way of serving the workload: a ringfuse filesystem on one transport
(or with some tuning options), another FUSE daemon given as a command (--compare), or the
native directory the same workload runs on without FUSE, as the ceiling. Every round runs
each configuration once, in an order rotated by one per round so that slow drifts of the
machine (frequency, background work) do not always hit the same configuration. Within a
configuration's turn the filesystem is mounted once and every cell runs on that mount.
"""

import argparse
import os
import platform
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

from . import __version__
from . import cells as cellmod
from . import mounts
from . import report

DEFAULT_TRANSPORTS = "uring,dev,uring-rw"
NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")


class UsageError(Exception):
    pass


@dataclass
class Config:
    name: str
    kind: str  # "ringfuse", "compare" or "native"
    opts: str = ""  # ringfuse -o options of this configuration
    template: list = field(default_factory=list)  # argv with {src} {mnt} {opts}
    skip: str = ""  # why this configuration cannot run

    def requested_transport(self):
        m = re.search(r"(?:^|,)transport=([^,]+)", self.opts)
        return m.group(1) if m else None

    def needs_uring(self):
        return self.kind == "ringfuse" and self.requested_transport() == "uring"

    def argv(self, src, mnt):
        return [t.format(src=src, mnt=mnt, opts=self.opts) for t in self.template]

    def describe(self):
        d = {"name": self.name, "kind": self.kind}
        if self.opts:
            d["opts"] = self.opts
        if self.template:
            d["command"] = " ".join(self.template)
        if self.skip:
            d["skipped"] = self.skip
        return d


def parse_config_spec(spec):
    """--config NAME:OPTS -> (name, opts)."""
    name, sep, opts = spec.partition(":")
    if not sep or not NAME_RE.match(name) or not opts:
        raise UsageError("--config wants NAME:OPTS (e.g. uring-d4:transport=uring,"
                         "uring_depth=4), got %r" % spec)
    return name, opts


def parse_compare_spec(spec, index):
    """--compare [NAME:]CMD -> (name, argv template). CMD uses {src} and {mnt}."""
    m = re.match(r"^([A-Za-z0-9_.+-]+):(.*)$", spec)
    name, cmd = (m.group(1), m.group(2)) if m else (None, spec)
    try:
        argv = shlex.split(cmd)
    except ValueError as e:
        raise UsageError("--compare %r: %s" % (spec, e)) from None
    if not argv:
        raise UsageError("--compare needs a command")
    if not any("{mnt}" in a for a in argv):
        raise UsageError("--compare %r: the command must contain {mnt} (and {src} if the "
                         "daemon takes a source directory)" % spec)
    if name is None:
        name = os.path.basename(argv[0]) or "compare%d" % index
    return name, argv


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
    g.add_argument("--fs", choices=("memfs", "passthrough", "cmd"), default="memfs",
                   help="the ringfuse filesystem to run (default memfs)")
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
    g.add_argument("--baseline", default="dev",
                   help="configuration the ratios are taken against (default dev)")
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
    g.add_argument("--ioengine", default="io_uring", help="fio ioengine (io_uring or libaio)")
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
    if args.runtime <= 0 or args.repeat < 1 or args.md_files < 1:
        raise UsageError("--runtime, --repeat and --md-files must be positive")
    return args


def build_configs(args, daemon_argv):
    """The configurations in column order: transports, --config, --compare, native."""
    configs = []
    extra = ",".join(o for o in (args.daemon_opts,) if o)
    for t in [t.strip() for t in args.transports.split(",") if t.strip()]:
        if t not in ("uring", "dev", "uring-rw", "auto"):
            raise UsageError("unknown transport %r (uring, dev, uring-rw, auto)" % t)
        configs.append(Config(t, "ringfuse", ",".join(x for x in ("transport=" + t, extra) if x),
                              daemon_argv))
    for spec in args.config:
        name, opts = parse_config_spec(spec)
        configs.append(Config(name, "ringfuse", ",".join(x for x in (opts, extra) if x),
                              daemon_argv))
    for i, spec in enumerate(args.compare, 1):
        name, argv = parse_compare_spec(spec, i)
        configs.append(Config(name, "compare", "", argv))
    configs.append(Config("native", "native"))
    seen = set()
    for c in configs:
        if c.name in seen:
            raise UsageError("two configurations are named %r" % c.name)
        seen.add(c.name)
    return configs


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


def daemon_template(args):
    """argv template of the ringfuse daemon for --fs, or raise UsageError."""
    if args.fs == "cmd":
        if not args.fs_cmd:
            raise UsageError("--fs cmd needs --fs-cmd 'DAEMON ... -o {opts} {mnt}'")
        argv = shlex.split(args.fs_cmd)
        if not any("{mnt}" in a for a in argv) or not any("{opts}" in a for a in argv):
            raise UsageError("--fs-cmd must contain {mnt} and {opts}")
        return argv
    name = "ringfuse-" + args.fs
    prog = find_program(args, name, "fs")
    if not prog:
        raise UsageError("%s not found (looked in %s and PATH): build it with `ninja -C "
                         "<builddir>` or pass --build-dir" % (name, ", ".join(
                             os.path.join(d, "fs") for d in build_dirs(args)) or "-"))
    opts = "{opts},cache=" + args.cache
    if args.fs == "memfs":
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

    def new_doc(self, meta):
        self.doc = {
            "meta": meta,
            "baseline": self.args.baseline,
            "configs": [c.describe() for c in self.configs],
            "cells": [{"name": c.name, "title": c.title,
                       "metrics": [m.__dict__ for m in c.metrics]} for c in self.cells],
            "samples": [],
            "mounts": [],
            "warnings": [],
        }
        return self.doc

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
            nfiles = max([c.data_files(self.env) for c in self.cells] + [0])
            if nfiles:
                progress.say("%s: laying out %d x %s fio file(s)" % (tag, nfiles, self.env.size))
                try:
                    mrec["layout_seconds"] = round(cellmod.layout(self.env, target, nfiles), 3)
                except cellmod.CellError as e:
                    mrec["error"] = str(e)
                    self.warn("%s: %s" % (cfg.name, e))
            for cell in self.cells:
                self.run_cell(rnd, cfg, cell, target, progress, tag, daemon)
        finally:
            if daemon is not None:
                progress.say("%s: unmounting" % tag)
                with _signals_blocked():
                    daemon.stop()
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

    def check_transport(self, cfg, mrec):
        want, seen = cfg.requested_transport(), mrec.get("transport_seen")
        if cfg.kind == "ringfuse" and want and want != "auto" and seen and seen != want:
            self.warn("%s asked for transport %s but the daemon says it used %s; its numbers "
                      "are not what they claim" % (cfg.name, want, seen))

    def run_cell(self, rnd, cfg, cell, target, progress, tag, daemon):
        progress.say("%s: %s" % (tag, cell.name))
        t0 = time.monotonic()
        try:
            if daemon is not None and not daemon.alive():
                raise cellmod.CellError("the daemon is gone (exit status %s):\n%s" % (
                    daemon.proc.returncode, daemon.log_text(limit=1500)))
            metrics, raw = cell.run(self.env, target)
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
    resolve_defaults(args)
    try:
        cells = cellmod.select_cells(args.cells, args.quick)
    except ValueError as e:
        raise UsageError(str(e)) from None

    fio = shutil.which("fio")
    if not fio and not args.dry_run:
        raise UsageError("fio not found in PATH: install it with `apt-get install fio`")
    needs_md = any(c.kind in ("md", "statload") for c in cells)
    mdbench = args.mdbench or find_program(args, "ringfuse-mdbench", "tools/bench")
    if needs_md and not mdbench and not args.dry_run:
        raise UsageError("ringfuse-mdbench not found: build it with `ninja -C <builddir>` and "
                         "pass --build-dir (or --mdbench PATH)")

    need_daemon = args.transports.strip(",") or args.config
    template = daemon_template(args) if need_daemon else []
    configs = build_configs(args, template)
    names = [c.name for c in configs]
    if args.baseline not in names:
        fallback = names[0]
        print("ringfuse-bench: baseline %r is not among the configurations (%s); using %s"
              % (args.baseline, ", ".join(names), fallback), file=sys.stderr)
        args.baseline = fallback

    nproc = len(os.sched_getaffinity(0))
    env = cellmod.Env(fio=fio or "fio", mdbench=mdbench or "ringfuse-mdbench",
                      runtime=args.runtime, ramp=args.ramp, size=args.size,
                      ioengine=args.ioengine, nproc=nproc, md_files=args.md_files)

    if args.dry_run:
        print("configurations (%d round(s), rotated):" % args.repeat)
        for c in configs:
            cmd = " ".join(shlex.quote(a) for a in c.argv("SRC", "MNT")) if c.template else \
                "(plain directory)"
            print("  %-14s %s" % (c.name, cmd))
        print("cells (%.3g s each):" % args.runtime)
        for c in cells:
            print("  %-14s %s" % (c.name, c.title))
        print("fio: %s\nmdbench: %s" % (fio or "NOT FOUND (apt-get install fio)",
                                         mdbench or "NOT FOUND"))
        return 0

    if os.geteuid() != 0 and any(c.kind != "native" for c in configs):
        print("ringfuse-bench: not running as root: mounting may fail", file=sys.stderr)
    uring_status = check_uring(configs)

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

    meta = {
        "tool": "ringfuse-bench", "version": __version__,
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv[1:],
        "fs": args.fs if need_daemon else None, "cache": args.cache,
        "runtime": args.runtime, "ramp": args.ramp,
        "rounds": args.repeat, "size": args.size, "ioengine": args.ioengine,
        "md_files": args.md_files, "quick": args.quick,
        "kernel": platform.release(), "nproc": nproc, "cpu": cpu_model(),
        "fio_version": tool_version([fio, "--version"]),
        "enable_uring": uring_status, "workdir_fs": _fstype(workdir),
    }
    runner = Runner(args, configs, cells, env, workdir)
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
    missing = [(s["config"], s["cell"], s["error"]) for s in doc["samples"] if s.get("error")]
    for w in doc["warnings"]:
        print("warning: " + w)
    if missing:
        print("%d cell run(s) failed or were skipped:" % len(missing))
        for cfg, cell, err in missing[:20]:
            print("  %s / %s: %s" % (cfg, cell, err.splitlines()[0] if err else "?"))
    report.write_json(doc, json_path)
    print("results: %s" % json_path)
    if svg_path:
        report.write_svg(doc, svg_path)
        print("chart:   %s" % svg_path)
    if interrupted:
        return 130
    return 1 if missing else 0


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
