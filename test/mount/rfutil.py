"""Helpers for the ringfuse mount tests.

Everything that knows how to start a daemon, recognise its mount, read its log and take it down
lives here, so the test files only speak POSIX. Also here: the few syscalls the os module does
not wrap (fallocate, renameat2, utimensat, raw getxattr/listxattr), running a function as another
user in a forked child, and the parser for the statistics the daemons print with -o stats.
"""

import atexit
import ctypes
import errno
import mmap
import os
import pickle
import random
import re
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ALL_TRANSPORTS = ("uring", "uring-t1", "dev", "uring-rw")
# Variants of a transport: (the transport, extra -o options). uring-t1 serves every CPU queue
# from one io-uring thread (uring_threads=1), so the whole suite also runs with several queues
# per thread and with every callback on one thread.
TRANSPORT_VARIANTS = {"uring-t1": ("uring", ("uring_threads=1",))}
ALL_FS = ("memfs", "memfs-defer", "passthrough")
# Variants of a shipped filesystem: (the filesystem, extra -o options). memfs-defer answers
# every request from a pool of threads after the handler returned (-o defer=4), so the whole
# suite also goes through the library's deferred-reply path.
FS_VARIANTS = {"memfs-defer": ("memfs", ("defer=4",))}


def base_fs(fs):
    """The filesystem a variant runs ("memfs" for "memfs-defer")."""
    return FS_VARIANTS.get(fs, (fs, ()))[0]


def base_transport(transport):
    """The transport a variant runs ("uring" for "uring-t1")."""
    return TRANSPORT_VARIANTS.get(transport, (transport, ()))[0]

MOUNT_TIMEOUT = 10.0  # daemon start -> mount visible and INIT answered
EXIT_TIMEOUT = 5.0  # unmount or signal -> daemon gone
# A test that takes longer than this is hung: the connection is aborted so the blocked syscall
# returns and the test fails instead of wedging the whole run.
WATCHDOG_TIMEOUT = float(os.environ.get("RINGFUSE_TEST_WATCHDOG", "120"))

# The library logs the transport chosen at INIT ("ringfuse: transport uring").
TRANSPORT_RE = re.compile(r"transport[: ]+(uring-rw|uring|dev)\b")
# Any of these in a daemon's log fails the test that ran it.
BAD_LOG_PATTERNS = ("ERROR", "AddressSanitizer", "LeakSanitizer", "ThreadSanitizer",
                    "MemorySanitizer", "runtime error")
SANITIZER_PATTERNS = BAD_LOG_PATTERNS[1:]

URING_PARAM = "/sys/module/fuse/parameters/enable_uring"
IO_URING_DISABLED = "/proc/sys/kernel/io_uring_disabled"
FUSECTL = "/sys/fs/fuse/connections"


# ---------------------------------------------------------------------------------------------
# Where things are


def build_dir():
    b = os.environ.get("RINGFUSE_BUILD", "build")
    if os.path.isabs(b):
        return b
    if os.path.isdir(b):
        return os.path.abspath(b)
    return os.path.join(REPO, b)


def fs_binary(fs):
    return os.path.join(build_dir(), "fs", "ringfuse-" + base_fs(fs))


def selected(env, all_values):
    """The values of a comma separated environment restriction, in canonical order."""
    raw = os.environ.get(env, "").strip()
    if not raw:
        return list(all_values)
    want = [v.strip() for v in raw.split(",") if v.strip()]
    unknown = [v for v in want if v not in all_values]
    if unknown:
        raise ValueError("%s: unknown value(s) %s (known: %s)" %
                         (env, ", ".join(unknown), ", ".join(all_values)))
    return [v for v in all_values if v in want]


# ---------------------------------------------------------------------------------------------
# Mount table


def _unescape(field):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts():
    """(mountpoint, fstype, 'major:minor') for every mount this process can see."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            out.append((_unescape(parts[4]), parts[sep + 1], parts[2]))
    return out


def fuse_mount_at(path):
    """The mountinfo entry of the topmost FUSE mount at path, or None."""
    found = None
    for mp, fstype, dev in mounts():
        if mp == path and fstype.split(".")[0] in ("fuse", "fuseblk"):
            found = (mp, fstype, dev)
    return found


def is_mounted(path):
    return fuse_mount_at(path) is not None


def conn_id(path):
    """Name of the connection's directory under /sys/fs/fuse/connections (the minor of s_dev)."""
    m = fuse_mount_at(path)
    if m is None:
        return None
    major, minor = m[2].split(":")
    return str((int(major) << 20) | int(minor))


def ensure_fusectl():
    """Mount the fuse control filesystem if it is not; returns True when it is usable."""
    if any(mp == FUSECTL for mp, _, _ in mounts()):
        return True
    if not os.path.isdir(FUSECTL):
        return False
    r = subprocess.run(["mount", "-t", "fusectl", "fusectl", FUSECTL],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return r.returncode == 0


def abort_connection(cid):
    """Abort a FUSE connection through fusectl. Returns True if the write went through."""
    if cid is None or not ensure_fusectl():
        return False
    try:
        with open(os.path.join(FUSECTL, cid, "abort"), "w") as f:
            f.write("1")
        return True
    except OSError:
        return False


def umount(path, lazy=False):
    argv = ["umount", "-l", path] if lazy else ["umount", path]
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=30)


# ---------------------------------------------------------------------------------------------
# The enable_uring module parameter (global to the machine)


def read_uring_param():
    try:
        with open(URING_PARAM) as f:
            return f.read().strip()
    except OSError:
        return None


def write_uring_param(value):
    """Set enable_uring to 'Y' or 'N'; returns None on success or a reason string."""
    try:
        with open(URING_PARAM, "w") as f:
            f.write(value)
    except OSError as e:
        return "cannot write %s: %s" % (URING_PARAM, e.strerror)
    got = read_uring_param()
    if got != value:
        return "%s reads %r after writing %r" % (URING_PARAM, got, value)
    return None


def uring_unusable_reason():
    """None if FUSE over io_uring can be used here (turning the parameter on if needed)."""
    try:
        with open(IO_URING_DISABLED) as f:
            if f.read().strip() not in ("0", ""):
                return "io_uring is disabled (kernel.io_uring_disabled != 0)"
    except OSError:
        pass
    cur = read_uring_param()
    if cur is None:
        return "this kernel's fuse module has no enable_uring parameter"
    if cur == "Y":
        return None
    return write_uring_param("Y")


# ---------------------------------------------------------------------------------------------
# Daemons

_live = {}  # pid -> Daemon: everything started and not yet reaped, for the last-resort cleanup
_base = None  # the directory all mountpoints live under


def tmp_base():
    global _base
    if _base is None:
        parent = os.environ.get("RINGFUSE_TMPDIR") or tempfile.gettempdir()
        _base = tempfile.mkdtemp(prefix="ringfuse-test-", dir=parent)
        # Tests switch to other users: they must be able to reach the mountpoints.
        os.chmod(_base, 0o755)
        atexit.register(cleanup_all)
    return _base


def make_dir(prefix):
    d = tempfile.mkdtemp(prefix=prefix, dir=tmp_base())
    os.chmod(d, 0o755)
    return d


def _child_setup():
    # Ignored or blocked signals survive exec: a daemon must see SIGINT/SIGTERM as a terminal
    # would deliver them, whatever the test runner was started under.
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(s, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


class Daemon:
    """A daemon process with its log file. Knows nothing about mounts."""

    def __init__(self, argv, log_path, env=None, pass_fds=()):
        self.argv = list(argv)
        self.log_path = log_path
        with open(log_path, "ab") as logf:
            logf.write(("$ %s\n" % " ".join(self.argv)).encode())
            logf.flush()
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=logf,
                                         stderr=logf, start_new_session=True,
                                         preexec_fn=_child_setup, env=env,
                                         pass_fds=pass_fds)
        self.pid = self.proc.pid
        _live[self.pid] = self

    def alive(self):
        return self.proc.poll() is None

    def wait(self, timeout):
        """Exit status (negative: killed by that signal), or None if still running."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        _live.pop(self.pid, None)
        return rc

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def reap(self):
        self.kill()
        self.wait(10)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError as e:
            return "<cannot read log: %s>" % e

    def log_tail(self, lines=60):
        text = self.log().splitlines()
        return "\n".join(text[-lines:])

    def output(self):
        """What the daemon printed (the log without our command line header)."""
        text = self.log()
        return text.split("\n", 1)[1] if "\n" in text else ""

    def bad_log_lines(self, patterns=BAD_LOG_PATTERNS):
        return [l for l in self.log().splitlines()[1:] if any(p in l for p in patterns)]


def transport_opts(transport):
    """The -o options that select a transport or a variant of one."""
    return ["transport=" + base_transport(transport)] + list(
        TRANSPORT_VARIANTS.get(transport, (transport, ()))[1])


def daemon_argv(fs, mountpoint, transport=None, opts=(), src=None, extra_args=()):
    o = transport_opts(transport) if transport else []
    o.extend(opts)
    argv = [fs_binary(fs), "-f"]
    if o:
        argv += ["-o", ",".join(o)]
    argv += list(extra_args)
    if fs == "passthrough":
        argv.append(src)
    argv.append(mountpoint)
    return argv


START_FAIL_TIMEOUT = 10.0  # a daemon that cannot start must say so within this


def expect_start_failure(argv, log_path, mountpoint):
    """Run a daemon that must refuse to start. Returns its output; fails the test (after
    cleaning up) if it keeps running, crashes, or leaves a mount behind."""
    d = Daemon(argv, log_path)
    rc = d.wait(START_FAIL_TIMEOUT)
    mounted = is_mounted(mountpoint)
    if rc is None or mounted:
        if mounted:
            abort_connection(conn_id(mountpoint))
            umount(mountpoint, lazy=True)
        d.reap()
        pytest.fail("daemon %s (exit status %s, mounted: %s)\n%s" % (
            "still running %.0fs after start" % START_FAIL_TIMEOUT if rc is None else "exited",
            rc, mounted, d.log_tail()), pytrace=False)
    out = d.output()
    assert rc > 0, "expected a failure exit status, got %d\n%s" % (rc, out)
    assert not d.bad_log_lines(SANITIZER_PATTERNS), out
    return out


class MountError(Exception):
    pass


class Mount:
    """A ringfuse filesystem mounted for one test.

    path, pid, transport, fs, log_path, src (passthrough's source dir) are plain attributes.
    expect_clean: the teardown insists on exit status 0 (a test that kills or aborts the
    daemon clears it). allow_errors: ERROR lines in the log are expected (sanitizer reports
    still fail the test). argv (with env) runs another program instead of a ringfuse daemon
    (it must mount path); expect_transport is the transport its log must name (default:
    transport; None: any).
    """

    # Default mount options: allow_other because tests act as other users.
    DEFAULT_OPTS = ("allow_other",)

    def __init__(self, fs, transport, path=None, opts=(), src=None, argv=None, env=None,
                 expect_transport="", args=()):
        self.fs = fs
        self.transport = transport
        self.argv = argv
        self.env = env
        self.args = tuple(args)  # command-line arguments before the mountpoint (e.g. "-s")
        self.expect_transport = base_transport(transport) if expect_transport == "" \
            else expect_transport
        self.path = path or make_dir("mnt-")
        self.src = src
        if fs == "passthrough" and self.src is None:
            self.src = make_dir("src-")
        self.log_path = self.path.rstrip("/") + ".%d.log" % int(time.monotonic() * 1e6)
        self.opts = tuple(self.DEFAULT_OPTS) + FS_VARIANTS.get(fs, (fs, ()))[1] + tuple(opts)
        self.expect_clean = True
        self.allow_errors = False
        self.watchdog_fired = False
        self.exit_status = None
        self._watchdog = None
        self._cid = None
        self.daemon = None

    # -- start ---------------------------------------------------------------------------

    def start(self):
        argv = self.argv
        if argv is None:
            binary = fs_binary(self.fs)
            if not os.access(binary, os.X_OK):
                raise MountError("daemon binary %s not found (build first, or set "
                                 "RINGFUSE_BUILD)" % binary)
            argv = daemon_argv(self.fs, self.path, self.transport, self.opts, self.src,
                               extra_args=self.args)
        self.daemon = Daemon(argv, self.log_path, env=self.env)
        self.pid = self.daemon.pid
        deadline = time.monotonic() + MOUNT_TIMEOUT
        while not is_mounted(self.path):
            if not self.daemon.alive():
                raise MountError("daemon exited with status %s before mounting %s\n%s" %
                                 (self.daemon.proc.returncode, self.path, self.log_report()))
            if time.monotonic() > deadline:
                raise MountError("%s not mounted after %.0fs\n%s" %
                                 (self.path, MOUNT_TIMEOUT, self.log_report()))
            time.sleep(0.01)
        self._cid = conn_id(self.path)
        self.set_watchdog(WATCHDOG_TIMEOUT)
        # The kernel sends INIT at mount time: the transport line follows without any access.
        got = None
        while got is None:
            got = self.logged_transport()
            if got is None:
                if not self.daemon.alive():
                    raise MountError("daemon exited with status %s during INIT\n%s" %
                                     (self.daemon.proc.returncode, self.log_report()))
                if time.monotonic() > deadline:
                    raise MountError("no 'transport <name>' line in the log %.0fs after start\n%s"
                                     % (MOUNT_TIMEOUT, self.log_report()))
                time.sleep(0.01)
        if self.expect_transport is not None and got != self.expect_transport:
            raise MountError("asked for transport %s but the daemon logged %s\n%s" %
                             (self.expect_transport, got, self.log_report()))
        # The mount must answer: a stat that hangs means INIT or the first request is stuck.
        err = call_with_timeout(os.stat, (self.path,), max(1.0, deadline - time.monotonic()))
        if err == "timeout":
            self.abort()
            raise MountError("stat(%s) hung after mount\n%s" % (self.path, self.log_report()))
        if isinstance(err, BaseException):
            raise MountError("stat(%s) failed after mount: %r\n%s" %
                             (self.path, err, self.log_report()))
        return self

    def logged_transport(self):
        """The transport the daemon says carries the mount; None if not logged (yet).

        Every mention must agree: a daemon that logs one transport and then falls back to
        another is not carrying the requested one.
        """
        found = TRANSPORT_RE.findall(self.daemon.output())
        if not found:
            return None
        if len(set(found)) > 1:
            return "/".join(sorted(set(found)))
        return found[0]

    # -- state ---------------------------------------------------------------------------

    def mounted(self):
        return is_mounted(self.path)

    def alive(self):
        return self.daemon.alive()

    def conn_id(self):
        return self._cid or conn_id(self.path)

    def abort(self):
        return abort_connection(self.conn_id())

    def set_watchdog(self, seconds):
        """Replace the watchdog: abort the connection if the test still runs after seconds."""
        if self._watchdog:
            self._watchdog.cancel()
        self._watchdog = threading.Timer(seconds, self._watchdog_fire)
        self._watchdog.daemon = True
        self._watchdog.start()

    def _watchdog_fire(self):
        self.watchdog_fired = True
        self.abort()

    def log(self):
        return self.daemon.log()

    def log_report(self, lines=60):
        return "---- daemon log %s (last %d lines) ----\n%s\n----" % (
            self.log_path, lines, self.daemon.log_tail(lines))

    def p(self, *names):
        """Path of names inside the mount."""
        return os.path.join(self.path, *names)

    # -- stop ----------------------------------------------------------------------------

    def wait_exit(self, timeout=EXIT_TIMEOUT):
        rc = self.daemon.wait(timeout)
        if rc is not None:
            self.exit_status = rc
        return rc

    def unmount(self, timeout=EXIT_TIMEOUT):
        """umount (lazily if busy) and wait for the daemon. Returns its exit status, or None
        if it did not exit in time (it is then still running)."""
        if self.mounted():
            r = umount(self.path)
            if r.returncode != 0 and self.mounted():
                umount(self.path, lazy=True)
        return self.wait_exit(timeout)

    def stats(self):
        """The statistics the daemon printed at exit (needs -o stats and an exited daemon)."""
        if self.alive():
            raise RuntimeError("stats() needs the daemon to have exited: unmount first")
        return parse_stats(self.daemon.output())

    def live_stats(self, timeout=EXIT_TIMEOUT):
        """Ask the running daemon for its statistics (SIGUSR1, needs -o stats) and parse them."""
        before = stats_blocks(self.daemon.output())
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while stats_blocks(self.daemon.output()) <= before:
            if time.monotonic() > deadline or not self.alive():
                raise AssertionError("no statistics printed within %.0fs of SIGUSR1\n%s" %
                                     (timeout, self.log_report()))
            time.sleep(0.01)
        return parse_stats(self.daemon.output())

    def live_stats_text(self, timeout=EXIT_TIMEOUT):
        """live_stats(), but the raw text of the newest statistics block."""
        self.live_stats(timeout)
        out = self.daemon.output()
        return out[out.rfind("ringfuse-stats: transport"):]

    def close(self):
        """Teardown: take everything down, return a list of problems (empty if all is well)."""
        problems = []
        if self._watchdog:
            self._watchdog.cancel()
        if self.watchdog_fired:
            problems.append("watchdog: test still running after %.0fs, connection aborted" %
                            WATCHDOG_TIMEOUT)
            self.expect_clean = False
        if self.daemon is None:
            return problems
        if self.daemon.alive():
            rc = self.unmount()
            if rc is None:
                self.abort()
                self.daemon.reap()
                problems.append("daemon did not exit within %.0fs of unmount; killed" %
                                EXIT_TIMEOUT)
            elif self.expect_clean and rc != 0:
                problems.append("daemon exited with status %d after a clean unmount" % rc)
        else:
            rc = self.daemon.proc.returncode
            self.exit_status = rc
            _live.pop(self.daemon.pid, None)
            if self.expect_clean and rc != 0:
                problems.append("daemon exited early with status %d" % rc)
        if rc is not None and rc < 0 and -rc != signal.SIGKILL:
            problems.append("daemon died of signal %d" % -rc)
        if self.mounted():
            self.abort()
            umount(self.path, lazy=True)
            if self.expect_clean:
                problems.append("%s still mounted after the daemon exited" % self.path)
        bad = self.daemon.bad_log_lines(SANITIZER_PATTERNS if self.allow_errors
                                        else BAD_LOG_PATTERNS)
        if bad:
            problems.append("daemon log has errors:\n  " + "\n  ".join(bad[:20]))
        if problems:
            problems.append(self.log_report())
        return problems


def cleanup_all():
    """Last resort: kill what we started and lazily unmount whatever is left under our base."""
    for d in list(_live.values()):
        if d.alive():
            d.kill()
        d.wait(5)
        _live.pop(d.pid, None)
    if _base is None:
        return
    leftovers = [mp for mp, _, _ in mounts() if mp.startswith(_base + "/")]
    for mp in reversed(leftovers):
        abort_connection(conn_id(mp))
        umount(mp, lazy=True)
    if not any(mp.startswith(_base + "/") for mp, _, _ in mounts()) and \
            not os.environ.get("RINGFUSE_KEEP_LOGS"):
        shutil.rmtree(_base, ignore_errors=True)


def call_with_timeout(fn, args=(), timeout=10.0):
    """Run fn(*args) in a thread. Returns its result, the exception it raised, or 'timeout'."""
    box = []

    def run():
        try:
            box.append(fn(*args))
        except BaseException as e:  # noqa: B902 - handed back to the caller
            box.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        return "timeout"
    return box[0]


# ---------------------------------------------------------------------------------------------
# Statistics printed by rf_stats_print (-o stats). All knowledge of the format is here.


_STATS_END = re.compile(r"(?m)^\W*(?:ringfuse[-\w]*:\s*)?total\b")


def stats_blocks(text):
    """How many complete statistics blocks text holds (each ends with its 'total' line)."""
    return len(_STATS_END.findall(text))


def parse_stats(text):
    """Parse the statistics block of a daemon log.

    Returns {"transport": str|None, "queues": {index: requests}, "dev": int|None,
    "total": int|None}. Understands both a key/value style, e.g.
        queue 0: requests 123 bytes_in 0 ...
        dev: requests 4 ...
        total: requests 127 ...
    and a table with a header row naming a 'requests' column (a block ends with its total):
        queue  requests  bytes_in ...
        0      123       0
        dev    4         0
    Text holding several blocks (SIGUSR1, then exit) yields the values of the last one.
    """
    res = {"transport": None, "queues": {}, "dev": None, "total": None}
    kv_req = re.compile(r"\brequests?\b\s*[:=]?\s*(\d+)", re.I)
    q_line = re.compile(r"^\W*(?:ringfuse[-\w]*:\s*)?(?:queue|q|worker)\s*[#\[]?\s*(\d+)\]?\s*[:=]?\s*(.*)$",
                        re.I)
    named = re.compile(r"^\W*(?:ringfuse[-\w]*:\s*)?(dev|total)\b\s*[:=]?\s*(.*)$", re.I)
    header_cols = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        m = re.search(r"\btransport\b\s*[:= ]\s*(uring-rw|uring|dev)\b", line)
        if m and res["transport"] is None:
            res["transport"] = m.group(1)
        words = line.split()
        low = [w.lower().strip(":") for w in words]
        if "requests" in low and not kv_req.search(line):
            # A header row: remember which column holds the request count.
            header_cols = low
            continue
        if header_cols is not None and words:
            key = low[0]
            idx = header_cols.index("requests")
            if len(words) == len(header_cols) and re.fullmatch(r"\d+", words[idx]):
                n = int(words[idx])
                if re.fullmatch(r"\d+", key):
                    res["queues"][int(key)] = n
                    continue
                if key in ("dev", "total"):
                    res[key] = n
                    continue
        m = q_line.match(line)
        if m:
            r = kv_req.search(m.group(2))
            if r:
                res["queues"][int(m.group(1))] = int(r.group(1))
            continue
        m = named.match(line)
        if m:
            r = kv_req.search(m.group(2))
            if r:
                res[m.group(1).lower()] = int(r.group(1))
    return res


# ---------------------------------------------------------------------------------------------
# Scratch filesystems for passthrough sources


class ScratchFs:
    """A filesystem mounted on a fresh directory under the test base, for a passthrough source
    with known limits: "tmpfs" (RAM: only what is stored costs memory) or "xfs" (a sparse image
    on a loop device: allocating and reflinking blocks write only metadata to the image)."""

    def __init__(self, kind, size):
        self.kind = kind
        self.path = make_dir(kind + "-")
        self.image = None
        if kind == "tmpfs":
            argv = ["mount", "-t", "tmpfs", "-o", "size=%d,mode=0755" % size, "tmpfs",
                    self.path]
        else:
            self.image = self.path.rstrip("/") + ".img"
            with open(self.image, "wb") as f:
                f.truncate(size)
            r = subprocess.run(["mkfs." + kind, "-q", "-f", self.image],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
            if r.returncode != 0:
                os.unlink(self.image)
                raise MountError("mkfs.%s failed: %s" % (kind, r.stdout))
            argv = ["mount", "-o", "loop", self.image, self.path]
        r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        if r.returncode != 0:
            self.close()
            raise MountError("%s failed: %s" % (" ".join(argv), r.stdout))

    def close(self):
        if any(mp == self.path for mp, _, _ in mounts()):
            if umount(self.path).returncode != 0:
                umount(self.path, lazy=True)
        if self.image and os.path.exists(self.image):
            os.unlink(self.image)


# ---------------------------------------------------------------------------------------------
# Syscalls the os module lacks

libc = ctypes.CDLL(None, use_errno=True)

AT_FDCWD = -100
RENAME_NOREPLACE = 1 << 0
RENAME_EXCHANGE = 1 << 1
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
FALLOC_FL_ZERO_RANGE = 0x10
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2
XATTR_CREATE = 1
XATTR_REPLACE = 2

libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
libc.fallocate.restype = ctypes.c_int
libc.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
libc.renameat2.restype = ctypes.c_int


class _timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.POINTER(_timespec),
                           ctypes.c_int]
libc.utimensat.restype = ctypes.c_int
libc.getxattr.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.getxattr.restype = ctypes.c_ssize_t
libc.listxattr.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t]
libc.listxattr.restype = ctypes.c_ssize_t


def _check(ret, *paths):
    if ret < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), *paths[:1])
    return ret


def fallocate(fd, mode, offset, length):
    _check(libc.fallocate(fd, mode, offset, length))


def renameat2(old, new, flags):
    _check(libc.renameat2(AT_FDCWD, os.fsencode(old), AT_FDCWD, os.fsencode(new), flags), old)


def utimensat(path, atime, mtime, flags=0):
    """atime/mtime: (sec, nsec) tuples, or UTIME_NOW / UTIME_OMIT."""
    ts = (_timespec * 2)()
    for i, t in enumerate((atime, mtime)):
        if t in (UTIME_NOW, UTIME_OMIT):
            ts[i].tv_sec, ts[i].tv_nsec = 0, t
        else:
            ts[i].tv_sec, ts[i].tv_nsec = t
    _check(libc.utimensat(AT_FDCWD, os.fsencode(path), ts, flags), path)


def getxattr_raw(path, name, size):
    """getxattr(2) with a caller-chosen buffer size; returns the value (size 0: its length)."""
    buf = ctypes.create_string_buffer(max(size, 1))
    n = _check(libc.getxattr(os.fsencode(path), os.fsencode(name), buf if size else None, size),
               path)
    return n if size == 0 else buf.raw[:n]


def listxattr_raw(path, size):
    buf = ctypes.create_string_buffer(max(size, 1))
    n = _check(libc.listxattr(os.fsencode(path), buf if size else None, size), path)
    return n if size == 0 else buf.raw[:n]


class _dirent(ctypes.Structure):
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                ("d_name", ctypes.c_char * 256)]


libc.opendir.argtypes = [ctypes.c_char_p]
libc.opendir.restype = ctypes.c_void_p
libc.readdir.argtypes = [ctypes.c_void_p]
libc.readdir.restype = ctypes.POINTER(_dirent)
libc.closedir.argtypes = [ctypes.c_void_p]
libc.telldir.argtypes = [ctypes.c_void_p]
libc.telldir.restype = ctypes.c_long
libc.seekdir.argtypes = [ctypes.c_void_p, ctypes.c_long]
libc.seekdir.restype = None


def readdir_all(path):
    """Every name readdir(3) returns, '.' and '..' included, in order."""
    d = libc.opendir(os.fsencode(path))
    if not d:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    names = []
    try:
        while True:
            ctypes.set_errno(0)
            ent = libc.readdir(d)
            if not ent:
                e = ctypes.get_errno()
                if e:
                    raise OSError(e, os.strerror(e), path)
                break
            names.append(os.fsdecode(ent.contents.d_name))
    finally:
        libc.closedir(d)
    return names


def readdir_positions(path, seek=None):
    """[(name, telldir after it)] as readdir(3) returns them; with seek, seekdir(seek) first."""
    d = libc.opendir(os.fsencode(path))
    if not d:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), path)
    out = []
    try:
        if seek is not None:
            libc.seekdir(d, seek)
        while True:
            ctypes.set_errno(0)
            ent = libc.readdir(d)
            if not ent:
                e = ctypes.get_errno()
                if e:
                    raise OSError(e, os.strerror(e), path)
                break
            out.append((os.fsdecode(ent.contents.d_name), libc.telldir(d)))
    finally:
        libc.closedir(d)
    return out


# ---------------------------------------------------------------------------------------------
# File helpers shared by the tests

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
PAGE = mmap.PAGESIZE


def rand(n, seed):
    return random.Random(seed).randbytes(n)


def write_all(fd, data, off=None):
    view = memoryview(data)
    done = 0
    while done < len(view):
        if off is None:
            n = os.write(fd, view[done:])
        else:
            n = os.pwrite(fd, view[done:], off + done)
        assert n > 0, "write returned %d" % n
        done += n


def pread_all(fd, size, off):
    out = bytearray()
    while len(out) < size:
        b = os.pread(fd, size - len(out), off + len(out))
        if not b:
            break
        out += b
    return bytes(out)


def read_direct(path, off=0, size=None):
    """Read with O_DIRECT into a page-aligned buffer: the data comes from the daemon."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        if size is None:
            size = os.fstat(fd).st_size - off
        return read_direct_fd(fd, off, size)
    finally:
        os.close(fd)


def read_direct_fd(fd, off, size):
    """pread size bytes at off from an O_DIRECT descriptor. FUSE itself takes any offset, but a
    passthrough to a local filesystem has its alignment rules: read whole aligned blocks into
    an aligned buffer and cut the window out."""
    start = off // PAGE * PAGE
    end = (off + size + PAGE - 1) // PAGE * PAGE
    buf = mmap.mmap(-1, max(PAGE, end - start))
    try:
        out = bytearray()
        while start + len(out) < end:
            n = os.preadv(fd, [buf], start + len(out))
            if n == 0:
                break
            out += buf[:n]
            if n % PAGE:
                break  # short read: end of file
        return bytes(out[off - start:off - start + size])
    finally:
        buf.close()


def drop_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def make_file(path, data=b"", mode=0o644):
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, mode)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def raises_errno(code, fn, *args):
    with pytest.raises(OSError) as ei:
        fn(*args)
    assert ei.value.errno == code, "%s: expected %s, got %s" % (
        getattr(fn, "__name__", fn), errno.errorcode[code], eno(ei.value))


# ---------------------------------------------------------------------------------------------
# Acting as another user, and parallel clients


def run_as(uid, gid, fn, *args, groups=(), umask=0o022, timeout=30.0):
    """Run fn(*args) in a forked child with the given credentials and umask.

    Returns what fn returned; re-raises what it raised (OSError keeps its errno), so tests can
    write `with pytest.raises(PermissionError)`. The result must pickle.
    """
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into the test runner
        try:
            os.close(r)
            try:
                os.setgroups(list(groups))
                os.setresgid(gid, gid, gid)
                os.setresuid(uid, uid, uid)
                os.umask(umask)
                result = ("ok", fn(*args))
            except BaseException as e:  # noqa: B902 - shipped to the parent
                result = ("exc", e)
            try:
                data = pickle.dumps(result)
            except Exception:  # noqa: B902
                data = pickle.dumps(("exc", RuntimeError("unpicklable result %r" % (result,))))
            with os.fdopen(w, "wb") as f:
                f.write(data)
        finally:
            os._exit(0)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([r], [], [], left)[0]:
                os.kill(pid, signal.SIGKILL)
                raise TimeoutError("child as uid %d did not finish within %.0fs" % (uid, timeout))
            b = os.read(r, 65536)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    if not chunks:
        raise RuntimeError("child as uid %d died without a result" % uid)
    kind, value = pickle.loads(b"".join(chunks))
    if kind == "exc":
        raise value
    return value


def run_parallel(fn, n, timeout=60.0, cpus=None):
    """Run fn(i) in n forked children (child i pinned to cpus[i % len(cpus)] if given).

    fn returns None on success or raises. Returns a list of failure strings (empty: all good).
    """
    procs = {}
    for i in range(n):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            status = 1
            try:
                os.close(r)
                if cpus:
                    os.sched_setaffinity(0, {cpus[i % len(cpus)]})
                fn(i)
                status = 0
            except BaseException as e:  # noqa: B902
                try:
                    os.write(w, ("client %d: %r" % (i, e)).encode()[:4000])
                except BaseException:  # noqa: B902
                    pass
            finally:
                os._exit(status)
        os.close(w)
        procs[pid] = (i, r)
    failures = []
    deadline = time.monotonic() + timeout
    for pid, (i, r) in procs.items():
        while True:
            got, status = os.waitpid(pid, os.WNOHANG)
            if got:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                failures.append("client %d: still running after %.0fs (hung)" % (i, timeout))
                status = None
                break
            time.sleep(0.01)
        msg = os.read(r, 4096).decode("utf-8", "replace")
        os.close(r)
        if status is not None and (not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0):
            failures.append(msg or "client %d: exit status %r" % (i, status))
    return failures


def usable_cpus():
    return sorted(os.sched_getaffinity(0))


def possible_cpus():
    """How many CPUs the kernel counts as possible: the number of io-uring queues."""
    with open("/sys/devices/system/cpu/possible") as f:
        n = 0
        for part in f.read().strip().split(","):
            lo, _, hi = part.partition("-")
            n += int(hi or lo) - int(lo) + 1
        return n


def eno(e):
    """errno name of an OSError, for readable assertion messages."""
    return errno.errorcode.get(e.errno, str(e.errno))
