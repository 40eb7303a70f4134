"""Shared pieces of the reliability tests (integrity, load, faults, nothing lost).

Fsx: an fsx-style exerciser. One file takes a random sequence of operations (writes at any
offset and size, truncates, reads, mmap reads and writes, fallocate, hole punching,
copy_file_range inside the file, fsync, dropping the page cache, reopening), each checked
against an in-memory model of what the file must hold. The sequence is a pure function of the
seed (and of which operations the filesystem refuses), so a failure is replayed by running
with the seed it printed, RINGFUSE_FSX_SEED=<seed>, and at most the ops it reached,
RINGFUSE_FSX_OPS=<n>.

Also here: forked clients that hand back a result (fork_clients), a shared page of progress
counters the parent reads while they run (Board), a daemon's memory and descriptor use
(daemon_usage), and the result files the reliability document is built from (record,
summary). `python3 fsx.py summary [DIR]` prints the tables of docs/reliability.md from the
result files of a run (--runs: one row per test).
"""

import collections
import contextlib
import errno
import json
import mmap
import os
import pickle
import random
import select
import signal
import struct
import sys
import time

import rfutil

KiB = 1024
MiB = 1024 * KiB
PAGE = mmap.PAGESIZE
DIO = 4096  # alignment of offsets, sizes and buffers in O_DIRECT mode

FALLOC_KEEP_SIZE = 0x01
FALLOC_PUNCH_HOLE = 0x02


class FsxFailure(AssertionError):
    pass


# Relative weights of the operations. Writes dominate so the file keeps changing; every other
# operation either checks the file or reshapes it in a way writes cannot.
BUFFERED_OPS = {"write": 30, "read": 14, "mapread": 7, "mapwrite": 7, "truncate": 6,
                "falloc": 3, "falloc_keep": 3, "punch": 4, "copy": 5, "fsync": 3,
                "direct_read": 4, "dropcache": 2, "reopen": 2}
# O_DIRECT: no mmap (a direct_io file has no page cache to map), every offset and length a
# multiple of 4 KiB, every buffer page aligned.
DIRECT_OPS = {"write": 34, "read": 20, "truncate": 7, "falloc": 4, "falloc_keep": 3,
              "punch": 5, "copy": 6, "fsync": 4, "reopen": 2}
CHECK_EVERY = 50  # whole-file check (size and every byte) every this many ops


def env_seed(name="RINGFUSE_FSX_SEED"):
    """The seed the environment asks for (decimal or 0x hex), or a fresh random one."""
    raw = os.environ.get(name, "").strip()
    if raw:
        return int(raw, 0)
    return random.SystemRandom().randrange(1 << 32)


def _hex(b):
    return b.hex(" ") if b else "(nothing)"


class Fsx:
    """Run random operations on path, checking each against the model.

    direct: open with O_DIRECT and keep everything 4 KiB aligned (no mmap).
    max_len: the file never grows past this (5 MiB: several 64 KiB and 1 MiB boundaries).
    label: printed in failure messages, with the seed and how to replay.
    """

    def __init__(self, path, seed, direct=False, max_len=5 * MiB, label="", replay=""):
        self.path = path
        self.seed = seed
        self.direct = direct
        self.max_len = max_len
        self.label = label
        self.replay = replay
        self.rng = random.Random(seed)
        self.model = bytearray()
        self.ops = 0
        self.counts = collections.Counter()
        self.skipped = collections.Counter()
        self.bytes_written = 0
        self.bytes_checked = 0
        self.log = collections.deque(maxlen=60)
        self.unsupported = set()
        self.weights = DIRECT_OPS if direct else BUFFERED_OPS
        self._names = list(self.weights)
        self._cum = list(self.weights.values())
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | self._oflags(), 0o644)
        self._dfd = None  # a second, O_DIRECT descriptor for direct_read in buffered mode

    def _oflags(self):
        return os.O_DIRECT if self.direct else 0

    def close(self):
        for fd in (self.fd, self._dfd):
            if fd is not None:
                os.close(fd)
        self.fd = self._dfd = None

    # -- failure reports -----------------------------------------------------------------

    def fail(self, what, off=None):
        lines = ["fsx %s: op #%d: %s" % (self.label, self.ops, what),
                 "seed %d (replay: RINGFUSE_FSX_SEED=%d RINGFUSE_FSX_OPS=%d%s)" % (
                     self.seed, self.seed, self.ops + 1,
                     " " + self.replay if self.replay else ""),
                 "model size %d (0x%x), mode %s" % (len(self.model), len(self.model),
                                                    "O_DIRECT" if self.direct else "buffered")]
        if off is not None:
            touched = [e for e in self.log if e[2] is not None and e[2] <= off < e[2] + e[3]]
            lines.append("recent ops covering offset 0x%x: %s" % (
                off, ", ".join("#%d %s" % (e[0], e[1]) for e in touched) or "none"))
        lines.append("last %d ops:" % len(self.log))
        lines += ["  #%d %s%s%s" % (e[0], e[1],
                                    "" if e[2] is None else " off=0x%x len=0x%x" % (e[2], e[3]),
                                    " " + e[4] if e[4] else "") for e in self.log]
        raise FsxFailure("\n".join(lines))

    def _note(self, name, off=None, length=None, extra=""):
        self.log.append((self.ops, name, off, length, extra))

    def compare(self, what, off, got, want):
        self.bytes_checked += len(got)
        if got == want:
            return
        if len(got) != len(want):
            n = min(len(got), len(want))
            if got[:n] == want[:n]:
                self.fail("%s at 0x%x: got %d bytes, expected %d (the bytes read are right)" % (
                    what, off, len(got), len(want)), off + n)
        first = next(i for i in range(min(len(got), len(want)) + 1)
                     if i >= len(got) or i >= len(want) or got[i] != want[i])
        last = max((i for i in range(min(len(got), len(want))) if got[i] != want[i]),
                   default=first)
        ndiff = sum(1 for a, b in zip(got, want) if a != b)
        lo = max(0, first - 8)
        self.fail("%s of 0x%x bytes at 0x%x: %d bytes differ, first at 0x%x, last at 0x%x "
                  "(read %d bytes, expected %d)\n  at 0x%x expected: %s\n  at 0x%x got:      %s" % (
                      what, len(want), off, ndiff, off + first, off + last, len(got), len(want),
                      off + lo, _hex(bytes(want[lo:first + 24])), off + lo,
                      _hex(bytes(got[lo:first + 24]))), off + first)

    # -- random choices ------------------------------------------------------------------

    def _len(self, cap=None):
        r = self.rng.random()
        if r < 0.35:
            n = self.rng.randint(1, 512)
        elif r < 0.70:
            n = self.rng.randint(1, 68 * KiB)
        elif r < 0.95:
            n = self.rng.randint(64 * KiB, 320 * KiB)
        else:
            n = self.rng.randint(320 * KiB, 1536 * KiB)
        if self.direct:
            n = max(DIO, (n + DIO - 1) // DIO * DIO)
        if cap is not None:
            n = min(n, cap)
        return n

    def _off(self, n, limit=None):
        """An offset for n bytes ending before limit (default max_len): often straddling a
        64 KiB or 1 MiB boundary, or near the end of the file."""
        limit = self.max_len if limit is None else limit
        hi = max(0, limit - n)
        r = self.rng.random()
        if r < 0.30:
            unit = MiB if self.rng.random() < 0.4 else 64 * KiB
            nb = limit // unit
            if nb >= 1:
                b = unit * self.rng.randint(1, nb)
                off = b - self.rng.randint(1, max(1, min(n, b)))
            else:
                off = self.rng.randint(0, hi)
        elif r < 0.45:
            off = len(self.model) + self.rng.randint(-n, 2 * PAGE)
        else:
            off = self.rng.randint(0, hi)
        off = min(max(0, off), hi)
        if self.direct:
            off = off // DIO * DIO
        return off

    def _size(self):
        """A new file size for truncate."""
        r = self.rng.random()
        cur = len(self.model)
        if r < 0.05:
            s = 0
        elif r < 0.35:
            s = cur + self.rng.randint(-256 * KiB, 256 * KiB)
        elif r < 0.55:
            unit = MiB if self.rng.random() < 0.5 else 64 * KiB
            s = unit * self.rng.randint(0, self.max_len // unit) + self.rng.randint(-3, 3)
        else:
            s = self.rng.randint(0, self.max_len)
        return min(max(0, s), self.max_len)

    # -- I/O primitives ------------------------------------------------------------------

    def _pwrite(self, fd, data, off):
        if self.direct:
            buf = mmap.mmap(-1, len(data))
            try:
                buf[:] = data
                done = 0
                while done < len(data):
                    n = os.pwritev(fd, [memoryview(buf)[done:]], off + done)
                    if n <= 0:
                        self.fail("O_DIRECT pwritev returned %d at 0x%x" % (n, off + done))
                    done += n
            finally:
                buf.close()
        else:
            rfutil.write_all(fd, data, off)

    def _pread(self, fd, n, off, direct=None):
        direct = self.direct if direct is None else direct
        if not direct:
            return rfutil.pread_all(fd, n, off)
        size = max(DIO, (n + DIO - 1) // DIO * DIO)
        buf = mmap.mmap(-1, size)
        try:
            out = bytearray()
            while len(out) < n:
                got = os.preadv(fd, [memoryview(buf)[:size - len(out)]], off + len(out))
                if got <= 0:
                    break
                out += buf[:min(got, n - len(out))]
            return bytes(out)
        finally:
            buf.close()

    def _model_write(self, off, data):
        end = off + len(data)
        if end > len(self.model):
            self.model.extend(bytes(end - len(self.model)))
        self.model[off:end] = data

    def _model_resize(self, size):
        if size < len(self.model):
            del self.model[size:]
        else:
            self.model.extend(bytes(size - len(self.model)))

    # -- operations ----------------------------------------------------------------------

    def op_write(self):
        n = self._len()
        off = self._off(n)
        data = self.rng.randbytes(n)
        self._note("write", off, n, "size 0x%x->0x%x" % (len(self.model),
                                                         max(len(self.model), off + n)))
        self._pwrite(self.fd, data, off)
        self._model_write(off, data)
        self.bytes_written += n

    def op_read(self):
        n = self._len()
        off = self._off(n, max(len(self.model) + 8 * KiB, n))
        self._note("read", off, n)
        got = self._pread(self.fd, n, off)
        self.compare("read", off, got, bytes(self.model[off:off + n]))

    def op_mapread(self):
        size = len(self.model)
        if size == 0:
            return self.skip("mapread")
        off = self.rng.randrange(size)
        n = self._len(size - off)
        pg = off // mmap.ALLOCATIONGRANULARITY * mmap.ALLOCATIONGRANULARITY
        self._note("mapread", off, n)
        m = mmap.mmap(self.fd, off + n - pg, access=mmap.ACCESS_READ, offset=pg)
        try:
            got = m[off - pg:off - pg + n]
        finally:
            m.close()
        self.compare("mmap read", off, got, bytes(self.model[off:off + n]))

    def op_mapwrite(self):
        n = self._len()
        off = self._off(n)
        end = off + n
        data = self.rng.randbytes(n)
        self._note("mapwrite", off, n, "size 0x%x->0x%x" % (len(self.model),
                                                            max(len(self.model), end)))
        if end > len(self.model):
            # A mapping cannot reach past the end of the file: grow it first, as fsx does.
            os.ftruncate(self.fd, end)
            self._model_resize(end)
        pg = off // mmap.ALLOCATIONGRANULARITY * mmap.ALLOCATIONGRANULARITY
        m = mmap.mmap(self.fd, end - pg, access=mmap.ACCESS_WRITE, offset=pg)
        try:
            m[off - pg:end - pg] = data
            m.flush()  # msync(MS_SYNC)
        finally:
            m.close()
        self._model_write(off, data)
        self.bytes_written += n

    def op_truncate(self):
        s = self._size()
        self._note("truncate", None, None, "size 0x%x->0x%x" % (len(self.model), s))
        os.ftruncate(self.fd, s)
        self._model_resize(s)

    def _fallocate(self, name, mode, off, n):
        try:
            rfutil.fallocate(self.fd, mode, off, n)
        except OSError as e:
            if name == "punch" and e.errno == errno.EOPNOTSUPP:
                self.unsupported.add(name)
                return False
            self.fail("%s(mode 0x%x, off 0x%x, len 0x%x): %s" % (
                name, mode, off, n, rfutil.eno(e)), off)
        return True

    def op_falloc(self, keep=False):
        name = "falloc_keep" if keep else "falloc"
        n = self._len()
        off = self._off(n)
        self._note(name, off, n, "size 0x%x" % len(self.model))
        if self._fallocate(name, FALLOC_KEEP_SIZE if keep else 0, off, n):
            if not keep and off + n > len(self.model):
                self._model_resize(off + n)
            return True
        return False

    def op_falloc_keep(self):
        return self.op_falloc(keep=True)

    def op_punch(self):
        if "punch" in self.unsupported:
            return self.skip("punch")
        n = self._len()
        off = self._off(n, max(len(self.model) + 64 * KiB, n))
        self._note("punch", off, n, "size 0x%x" % len(self.model))
        if not self._fallocate("punch", FALLOC_PUNCH_HOLE | FALLOC_KEEP_SIZE, off, n):
            return self.skip("punch")
        end = min(off + n, len(self.model))
        if end > off:
            self.model[off:end] = bytes(end - off)
        return True

    def op_copy(self):
        size = len(self.model)
        if size < (2 * DIO if self.direct else 2):
            return self.skip("copy")
        n = self._len(size // 2)
        src = self.rng.randrange(size - n + 1)
        if self.direct:
            # Aligned source, destination and length: the copy may reach past the end of
            # the file and comes back short there.
            src = src // DIO * DIO
            n = max(DIO, n // DIO * DIO)
        # The kernel refuses overlapping ranges in one file (EINVAL): pick a destination
        # clear of the source.
        for _ in range(20):
            dst = self._off(n)
            if dst + n <= src or dst >= src + n:
                break
        else:
            return self.skip("copy")
        self._note("copy", dst, n, "from 0x%x, size 0x%x" % (src, size))
        n_req, n = n, min(n, size - src)  # bytes that exist to be copied
        done = 0
        while done < n:
            try:
                c = os.copy_file_range(self.fd, self.fd, n_req - done, src + done, dst + done)
            except OSError as e:
                self.fail("copy_file_range(0x%x bytes 0x%x -> 0x%x): %s" % (
                    n_req - done, src + done, dst + done, rfutil.eno(e)), dst)
            if c <= 0 or c > n - done:
                self.fail("copy_file_range(0x%x bytes 0x%x -> 0x%x) returned %d with 0x%x bytes "
                          "left before the end of the file (size 0x%x)" % (
                              n_req - done, src + done, dst + done, c, n - done, size), dst)
            self._model_write(dst + done, bytes(self.model[src + done:src + done + c]))
            done += c
        return True

    def op_fsync(self):
        data_only = self.rng.random() < 0.5
        self._note("fdatasync" if data_only else "fsync")
        (os.fdatasync if data_only else os.fsync)(self.fd)

    def op_direct_read(self):
        """Read through a second, O_DIRECT descriptor: what the daemon holds, not the page
        cache (writes are write-through and mmap writes were msync'ed)."""
        if self._dfd is None:
            self._dfd = os.open(self.path, os.O_RDONLY | os.O_DIRECT)
        # Aligned as O_DIRECT users must: passthrough hands the request to the backing
        # file's O_DIRECT descriptor, and local filesystems refuse unaligned direct I/O.
        n = (self._len() + DIO - 1) // DIO * DIO
        off = self._off(n, max(len(self.model) + 8 * KiB, n)) // DIO * DIO
        self._note("direct_read", off, n)
        got = self._pread(self._dfd, n, off, direct=True)
        self.compare("O_DIRECT read (second descriptor)", off, got,
                     bytes(self.model[off:off + n]))

    def op_dropcache(self):
        self._note("dropcache")
        os.posix_fadvise(self.fd, 0, 0, os.POSIX_FADV_DONTNEED)

    def op_reopen(self):
        self._note("reopen")
        os.close(self.fd)
        self.fd = None
        self.fd = os.open(self.path, os.O_RDWR | self._oflags())

    def skip(self, name):
        self.skipped[name] += 1
        return False

    def check_all(self, why):
        st = os.fstat(self.fd)
        self._note("check", 0, len(self.model), why)
        if st.st_size != len(self.model):
            self.fail("%s: st_size is %d (0x%x), the model says %d (0x%x)" % (
                why, st.st_size, st.st_size, len(self.model), len(self.model)),
                min(st.st_size, len(self.model)))
        got = self._pread(self.fd, len(self.model) + DIO, 0)
        self.compare("whole-file read (%s)" % why, 0, got, bytes(self.model))
        if not self.direct:
            if self._dfd is None:
                self._dfd = os.open(self.path, os.O_RDONLY | os.O_DIRECT)
            got = self._pread(self._dfd, len(self.model) + DIO, 0, direct=True)
            self.compare("whole-file O_DIRECT read (%s)" % why, 0, got, bytes(self.model))

    # -- the run -------------------------------------------------------------------------

    def run(self, max_ops, seconds):
        """Run until max_ops operations or seconds have passed, then check the whole file.
        Returns a summary dict. Raises FsxFailure on the first wrong result."""
        t0 = time.monotonic()
        deadline = t0 + seconds
        while self.ops < max_ops and time.monotonic() < deadline:
            name = self.rng.choices(self._names, self._cum)[0]
            try:
                if getattr(self, "op_" + name)() is not False:
                    self.counts[name] += 1
            except FsxFailure:
                raise
            except OSError as e:
                self.fail("%s failed: %s (%s)" % (name, rfutil.eno(e), e))
            self.ops += 1
            if self.ops % CHECK_EVERY == 0:
                try:
                    self.check_all("periodic")
                except OSError as e:
                    self.fail("periodic check failed: %s (%s)" % (rfutil.eno(e), e))
        try:
            self.check_all("final")
        except OSError as e:
            self.fail("final check failed: %s (%s)" % (rfutil.eno(e), e))
        return self.summary(time.monotonic() - t0)

    def summary(self, elapsed):
        return {"seed": self.seed, "mode": "O_DIRECT" if self.direct else "buffered",
                "ops": self.ops, "seconds": round(elapsed, 2),
                "ops_by_kind": dict(sorted(self.counts.items())),
                "skipped": dict(sorted(self.skipped.items())),
                "unsupported": sorted(self.unsupported),
                "bytes_written": self.bytes_written, "bytes_checked": self.bytes_checked,
                "final_size": len(self.model)}


def extend_watchdog(m, seconds):
    """Give a long (soak) run on mount m its own watchdog of `seconds` instead of the suite's.
    The watchdog aborts the connection so a hung run fails instead of wedging."""
    old = getattr(m, "_watchdog", None)
    if old is not None:
        old.cancel()

    def fire():
        m.watchdog_fired = True
        m.abort()

    import threading
    t = threading.Timer(seconds, fire)
    t.daemon = True
    t.start()
    m._watchdog = t


# ---------------------------------------------------------------------------------------------
# Forked clients


class Board:
    """A shared anonymous page of 64-bit slots, made before forking: slot 0 is the stop flag,
    slot 1 + i the progress counter of client i. Written by children, read by the parent."""

    def __init__(self, nclients):
        self.n = nclients
        self.m = mmap.mmap(-1, max(PAGE, 8 * (nclients + 1)))

    def stop(self):
        struct.pack_into("q", self.m, 0, 1)

    def stopped(self):
        return struct.unpack_from("q", self.m, 0)[0] != 0

    def bump(self, i, by=1):
        off = 8 * (i + 1)
        struct.pack_into("q", self.m, off, struct.unpack_from("q", self.m, off)[0] + by)

    def progress(self, i):
        return struct.unpack_from("q", self.m, 8 * (i + 1))[0]

    def total(self):
        return sum(self.progress(i) for i in range(self.n))

    def wait_all_progress(self, at_least, timeout):
        """True once every client counted at_least ops."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.progress(i) >= at_least for i in range(self.n)):
                return True
            time.sleep(0.01)
        return False


class Clients:
    """n forked children each running fn(i); each hands back what fn returned (or what it
    raised) through a pipe. Start with start(), collect with join()."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n
        self.procs = {}

    def start(self):
        for i in range(self.n):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: never return into the test runner
                try:
                    os.close(r)
                    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
                    try:
                        res = ("ok", self.fn(i))
                    except BaseException as e:  # noqa: B902 - shipped to the parent
                        res = ("exc", "%s: %s" % (type(e).__name__, e))
                    try:
                        data = pickle.dumps(res)
                    except Exception as e:  # noqa: B902
                        data = pickle.dumps(("exc", "unpicklable result: %r" % e))
                    with os.fdopen(w, "wb") as f:
                        f.write(data)
                finally:
                    os._exit(0)
            os.close(w)
            self.procs[i] = (pid, r, [])
        return self

    def wait_exited(self, timeout):
        """Wait up to timeout for every child to exit on its own; True if they all did.
        (Children reaped here are still joined normally.)"""
        deadline = time.monotonic() + timeout
        while True:
            running = 0
            for pid, _, _ in self.procs.values():
                try:
                    if os.waitpid(pid, os.WNOHANG) == (0, 0):
                        running += 1
                except ChildProcessError:
                    pass
            if not running:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    def join(self, timeout, on_hang=None):
        """Wait up to timeout for every child. Returns (results, problems): results[i] is the
        value client i returned or None; problems lists the clients that raised, died or hung.
        Clients still running at the deadline count as hung: on_hang() (e.g. aborting the
        connection) is called to unwedge them, then they are killed."""
        deadline = time.monotonic() + timeout
        open_fds = {r: i for i, (_, r, _) in self.procs.items()}
        hung = set()
        unwedged = False
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                if on_hang is None or unwedged:
                    break
                hung = set(open_fds.values())
                on_hang()
                unwedged = True
                deadline = time.monotonic() + 5.0
                continue
            ready, _, _ = select.select(list(open_fds), [], [], min(left, 0.5))
            for r in ready:
                b = os.read(r, 1 << 16)
                if b:
                    self.procs[open_fds[r]][2].append(b)
                else:
                    del open_fds[r]
        hung |= set(open_fds.values())
        results = [None] * self.n
        problems = []
        for i, (pid, r, chunks) in self.procs.items():
            if i in hung:
                problems.append("client %d: still running %.0fs into the wait for it (hung)" %
                                (i, timeout))
            if r in open_fds:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            _reap(pid, 10.0)
            os.close(r)
            if r in open_fds:
                continue
            if not chunks:
                problems.append("client %d: died without a result" % i)
                continue
            kind, value = pickle.loads(b"".join(chunks))
            if kind == "exc":
                problems.append("client %d: %s" % (i, value))
            else:
                results[i] = value
        self.procs = {}
        return results, problems


def _reap(pid, timeout):
    """waitpid with a timeout: a child stuck in an uninterruptible wait must not wedge us."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return True
        if got:
            return True
        time.sleep(0.01)
    return False


# ---------------------------------------------------------------------------------------------
# A daemon's resource use


def daemon_usage(pid):
    """(VmRSS in KiB, open descriptors, threads) of a live process."""
    rss = threads = None
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir("/proc/%d/fd" % pid))
    return rss, fds, threads


def sanitized(binary):
    """True if the daemon binary is built with a sanitizer (its memory use means little)."""
    try:
        with open(binary, "rb") as f:
            blob = f.read()
    except OSError:
        return False
    return b"__asan_init" in blob or b"__tsan_init" in blob or b"__msan_init" in blob


# ---------------------------------------------------------------------------------------------
# Result files: build-results/reliability-<kind>-<build>.json


def results_dir():
    return os.environ.get("RINGFUSE_RESULTS") or os.path.join(rfutil.REPO, "build-results")


_results = {}


def _results_path(kind):
    build = os.path.basename(rfutil.build_dir().rstrip("/")) or "build"
    return os.path.join(results_dir(), "reliability-%s-%s.json" % (kind, build))


def _write_results(kind):
    doc = _results[kind]
    doc["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    totals = collections.Counter()
    outcomes = collections.Counter()
    for run in doc["runs"]:
        outcomes[run.get("outcome", "?").split(":")[0]] += 1
        for k, v in run.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "seed":
                totals[k] += v
    doc["totals"] = {k: (round(v, 2) if isinstance(v, float) else v)
                     for k, v in sorted(totals.items())}
    doc["outcomes"] = dict(sorted(outcomes.items()))
    path = _results_path(kind)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only tree must not fail the tests


def record(kind, run):
    """Add one test's record to this session's result file of that kind (the file is started
    afresh by the first record of a session)."""
    if kind not in _results:
        argv = list(sys.argv)
        if argv and argv[0].endswith(os.path.join("pytest", "__main__.py")):
            argv[0] = "-m pytest"
        _results[kind] = {"kind": kind, "build": rfutil.build_dir(),
                          "command": " ".join([os.path.basename(sys.executable)] + argv),
                          "env": {k: v for k, v in os.environ.items()
                                  if k.startswith("RINGFUSE_")},
                          "kernel": os.uname().release, "cpus": os.cpu_count(),
                          "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": []}
    _results[kind]["runs"].append(run)
    _write_results(kind)


@contextlib.contextmanager
def recording(kind, **fields):
    """Collect a test's numbers in a dict and record it whatever the outcome:
    'pass', 'skip: why' or 'fail: first line of the error'."""
    run = dict(fields)
    t0 = time.monotonic()
    try:
        yield run
        run.setdefault("outcome", "pass")
    except BaseException as e:  # noqa: B902 - re-raised
        if type(e).__name__ == "Skipped":
            run["outcome"] = "skip: %s" % (str(e).splitlines() or [""])[0]
        else:
            run["outcome"] = "fail: %s" % (str(e).splitlines() or [type(e).__name__])[0][:300]
        raise
    finally:
        run["wall_seconds"] = round(time.monotonic() - t0, 2)
        record(kind, run)


def _family(run):
    return run.get("test", "?").split("[")[0]


def _condense(runs):
    """One table row's numbers for runs of one test family."""
    out = collections.OrderedDict()
    out["runs"] = len(runs)
    outcomes = collections.Counter(r.get("outcome", "?").split(":")[0] for r in runs)
    out["outcome"] = ", ".join("%s %d" % kv for kv in sorted(outcomes.items()))
    sums = collections.Counter()
    errors = collections.Counter()
    for r in runs:
        for k, v in r.items():
            if k in ("seed", "wall_seconds", "daemon_exit", "limit") or isinstance(v, bool):
                continue
            if isinstance(v, (int, float)):
                sums[k] += v
        errors.update(r.get("errors") or {})
    for k in ("clients", "ops", "warmup_ops", "faults", "bytes_written", "bytes_checked",
              "bytes_synced", "bytes_acknowledged", "opened", "seconds"):
        if k in sums:
            v = sums[k]
            if k == "clients":
                v = max(r.get("clients", 0) for r in runs)
            if k.startswith("bytes_"):
                out[k.replace("bytes_", "MiB ")] = round(v / MiB, 1)
            else:
                out[k] = round(v, 1) if isinstance(v, float) else v
    if errors:
        out["client errors"] = " ".join("%s %d" % kv for kv in sorted(errors.items()))
    rss = [r["rss_kib"][2] - r["rss_kib"][1] for r in runs if r.get("rss_kib")]
    if rss:
        out["max RSS growth KiB"] = max(rss)
        out["fds unchanged"] = "%d/%d" % (
            sum(1 for r in runs if r.get("fds") and r["fds"][1] == r["fds"][2]), len(rss))
    seeds = [r["seed"] for r in runs if "seed" in r]
    if seeds and len(seeds) <= 12:
        out["seeds"] = " ".join(str(x) for x in seeds)
    out["wall s"] = round(sum(r.get("wall_seconds", 0) for r in runs), 1)
    return out


def summary(dirpath, per_run=False):
    """Markdown tables of every result file in dirpath: one row per test family (what
    docs/reliability.md shows), or with per_run one row per test."""
    out = []
    names = sorted(n for n in os.listdir(dirpath)
                   if n.startswith("reliability-") and n.endswith(".json"))
    for name in names:
        with open(os.path.join(dirpath, name)) as f:
            doc = json.load(f)
        out.append("### %s (%s, Linux %s, %s CPUs, %s)\n" % (
            doc["kind"], os.path.basename(doc["build"]), doc.get("kernel"), doc.get("cpus"),
            doc.get("started", "")[:10]))
        env = " ".join("%s=%s" % kv for kv in sorted(doc.get("env", {}).items()))
        out.append("`%s%s`\n" % (env + " " if env else "", doc["command"]))
        out.append("| test | numbers |")
        out.append("| --- | --- |")
        if per_run:
            for run in doc["runs"]:
                nums = "; ".join("%s %s" % (k, v) for k, v in run.items() if k != "test")
                out.append("| %s | %s |" % (run.get("test", "?"), nums))
        else:
            fams = collections.OrderedDict()
            for run in doc["runs"]:
                fams.setdefault(_family(run), []).append(run)
            for fam, runs in fams.items():
                out.append("| %s | %s |" % (fam, "; ".join(
                    "%s %s" % kv for kv in _condense(runs).items())))
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    args = sys.argv[1:]
    per_run = "--runs" in args
    args = [a for a in args if a != "--runs"]
    if args and args[0] == "summary":
        print(summary(args[1] if len(args) > 1 else results_dir(), per_run))
    else:
        sys.exit("usage: fsx.py summary [--runs] [RESULTS_DIR]")
