"""Faults under load, on every transport: the daemon killed (SIGKILL), the connection aborted
through fusectl, a lazy unmount with files open and I/O in flight, SIGTERM, a ring that cannot
be set up (no locked memory), an impossible queue depth, and passthrough running out of file
descriptors.

What must hold each time: no client hangs (every one finishes within a bound, with its
results or with one of the errors the fault explains), the daemon ends the way the fault
implies (exit 0 for SIGTERM and a lazy unmount, no crash after an abort), the mount can be
removed and the mountpoint takes a fresh mount, and nothing lands in the bare mountpoint.
"""

import errno
import os
import random
import re
import resource
import signal
import shutil
import time

import pytest

import rfutil
from fsx import Board, Clients, KiB, daemon_usage, recording
from rfutil import Daemon, daemon_argv, make_dir, make_file, read_file, umount

NCLIENTS = 12
CLIENT_TIMEOUT = 20.0  # a client still running this long after the fault is hung

# What a request may fail with once the daemon is gone: ENOTCONN (connection gone),
# ECONNABORTED (the request was inside the daemon, or the connection was aborted), EIO (the
# kernel could not copy a reply out of the dying daemon's memory, or a write's pages were
# already copied when the connection went).
DEAD = {errno.ENOTCONN, errno.ECONNABORTED, errno.EIO}
# With io_uring, a request the kernel had already handed to a ring entry (queued as task work
# for the daemon's queue thread) is ended with ECANCELED when that thread exits first: after
# SIGKILL, and also after an abort or SIGTERM, since the daemon's threads exit on their own
# then. The library never sends ECANCELED itself.
URING_DEAD = {errno.ECANCELED}
# After SIGTERM, and after an abort, the daemon detaches the mount on its way out: open files
# fail as above, and paths then resolve in the bare mountpoint, where the clients'
# directories are not (remount_works checks that nothing was created there).
DETACHED = {errno.ENOENT}


def allowed(transport, *extra):
    out = set(DEAD)
    if rfutil.base_transport(transport) == "uring":
        out |= URING_DEAD
    for e in extra:
        out |= e
    return out


class Mismatch(AssertionError):
    pass


def errname(code):
    return errno.errorcode.get(code, str(code))


# ---------------------------------------------------------------------------------------------
# The workload


def heavy_client(i, root, board, seed):
    """Mixed data and metadata I/O in root/h<i> until an error or the stop flag. Every loop
    does something the page cache cannot answer (a create or an O_DIRECT transfer), so a dead
    connection is noticed at once. Returns {"ops", "error": (op, errno) or None}."""
    rng = random.Random(seed * 100 + i)
    d = os.path.join(root, "h%02d" % i)
    files = {}
    ops = 0
    op = None
    serial = 0
    try:
        while not board.stopped():
            serial += 1
            op = "create"
            path = os.path.join(d, "f%d" % (serial % 6))
            data = rng.randbytes(rng.choice((4 * KiB, 64 * KiB, 256 * KiB)))
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
            try:
                op = "write"
                rfutil.write_all(fd, data)
                if rng.random() < 0.2:
                    op = "fsync"
                    os.fsync(fd)
            finally:
                os.close(fd)
            files[path] = data
            op = "O_DIRECT read"
            got = rfutil.read_direct(path)
            if got != data:
                raise Mismatch("client %d: %s: read back %d bytes, wrote %d%s" % (
                    i, path, len(got), len(data), "" if len(got) != len(data) else
                    ", contents differ"))
            r = rng.random()
            if r < 0.3:
                op = "stat"
                st = os.stat(path)
                if st.st_size != len(data):
                    raise Mismatch("client %d: %s: size %d, wrote %d" % (
                        i, path, st.st_size, len(data)))
            elif r < 0.5:
                op = "readdir"
                names = set(os.listdir(d))
                if not {os.path.basename(p) for p in files} <= names:
                    raise Mismatch("client %d: readdir of %s lacks %s" % (
                        i, d, {os.path.basename(p) for p in files} - names))
            elif r < 0.7:
                op = "rename"
                new = path + ".r"
                os.rename(path, new)
                os.rename(new, path)
            elif r < 0.85:
                op = "unlink"
                os.unlink(path)
                del files[path]
            ops += 1
            board.bump(i)
    except OSError as e:
        return {"ops": ops, "error": (op, e.errno)}
    return {"ops": ops, "error": None}


class Load:
    """NCLIENTS heavy clients on mount m, each in its own directory."""

    def __init__(self, m, seed, fn=heavy_client, n=NCLIENTS):
        self.m = m
        self.n = n
        self.board = Board(n)
        for i in range(n):
            os.mkdir(m.p("h%02d" % i))
        root, board = m.path, self.board
        self.clients = Clients(lambda i: fn(i, root, board, seed), n).start()
        self.joined = False

    def wait_busy(self, ops=5, timeout=15.0):
        """Wait until every client is under way, then a little longer (0.2 to 0.8 s, so the
        fault lands at varying points of the clients' work)."""
        if not self.board.wait_all_progress(ops, timeout):
            self.board.stop()
            res, problems = self.finish()
            pytest.fail("clients made no progress before the fault: %s %s\n%s" % (
                [self.board.progress(i) for i in range(self.n)], problems[:5],
                self.m.log_report()))
        time.sleep(random.uniform(0.2, 0.8))

    def finish(self, timeout=CLIENT_TIMEOUT):
        self.joined = True
        return self.clients.join(timeout, on_hang=self.m.abort)

    def stop_and_finish(self, grace):
        """Give the clients `grace` seconds to stop on their own, then raise the stop flag,
        and join them."""
        self.clients.wait_exited(grace)
        self.board.stop()
        return self.finish(CLIENT_TIMEOUT)

    def cleanup(self):
        if not self.joined:
            self.board.stop()
            self.clients.join(CLIENT_TIMEOUT, on_hang=self.m.abort)


def judge(results, problems, allowed, need_error=True):
    """Every client finished; each stopped on an allowed errno (or, if need_error is False,
    without an error). Returns (ops done, errors seen by name)."""
    assert not problems, "clients failed or hung:\n" + "\n".join(problems[:12])
    seen = {}
    bad = []
    for i, r in enumerate(results):
        err = r["error"]
        if err is None:
            if need_error:
                bad.append("client %d finished without an error" % i)
            continue
        seen[errname(err[1])] = seen.get(errname(err[1]), 0) + 1
        if err[1] not in allowed:
            bad.append("client %d: %s failed with %s" % (i, err[0], errname(err[1])))
    assert not bad, "unexpected outcomes (allowed: %s):\n%s" % (
        ", ".join(sorted(errname(e) for e in allowed)), "\n".join(bad[:12]))
    return sum(r["ops"] for r in results), seen


def remount_works(mounter, m):
    """umount (not lazy) succeeds, the mountpoint is bare and takes a fresh mount."""
    if m.mounted():
        r = umount(m.path)
        assert r.returncode == 0, "umount after the fault: " + r.stdout
    assert not m.mounted(), "%s still mounted" % m.path
    assert os.listdir(m.path) == [], "files landed in the bare mountpoint: %s" % (
        os.listdir(m.path)[:10])
    m2 = mounter(m.transport, m.fs, path=m.path, src=m.src)
    make_file(m2.p("fresh"), b"fresh mount")
    assert read_file(m2.p("fresh")) == b"fresh mount"
    assert rfutil.read_direct(m2.p("fresh")) == b"fresh mount"
    return m2


# ---------------------------------------------------------------------------------------------
# The daemon killed, the connection aborted


def test_sigkill_under_load(mounter, transport, fs):
    m = mounter(transport, fs)
    seed = random.randrange(1 << 30)
    with recording("faults", test="sigkill[%s-%s]" % (transport, fs), fault="SIGKILL",
                   clients=NCLIENTS, seed=seed) as rec:
        load = Load(m, seed)
        try:
            load.wait_busy()
            m.expect_clean = False
            m.allow_errors = True
            os.kill(m.pid, signal.SIGKILL)
            assert m.wait_exit() == -signal.SIGKILL
            results, problems = load.stop_and_finish(grace=10.0)
        finally:
            load.cleanup()
        ops, seen = judge(results, problems, allowed(transport))
        rec.update(ops=ops, faults=1, errors=seen)
        with pytest.raises(OSError) as ei:
            os.listdir(m.path)
        assert ei.value.errno in (errno.ENOTCONN, errno.ECONNABORTED), rfutil.eno(ei.value)
        remount_works(mounter, m)


def test_abort_under_load(mounter, transport, fs):
    if not rfutil.ensure_fusectl():
        pytest.skip("the fuse control filesystem (%s) is not available" % rfutil.FUSECTL)
    m = mounter(transport, fs)
    seed = random.randrange(1 << 30)
    with recording("faults", test="abort[%s-%s]" % (transport, fs), fault="fusectl abort",
                   clients=NCLIENTS, seed=seed) as rec:
        load = Load(m, seed)
        try:
            load.wait_busy()
            m.expect_clean = False  # an abort is not a clean end
            m.allow_errors = True
            assert m.abort(), "cannot write %s/%s/abort" % (rfutil.FUSECTL, m.conn_id())
            results, problems = load.stop_and_finish(grace=10.0)
        finally:
            load.cleanup()
        rc = m.wait_exit()
        assert rc is not None, "daemon still running %.0fs after the abort\n%s" % (
            rfutil.EXIT_TIMEOUT, m.log_report())
        assert rc >= 0, "daemon died of signal %d after the abort\n%s" % (-rc, m.log_report())
        ops, seen = judge(results, problems, allowed(transport, DETACHED))
        rec.update(ops=ops, faults=1, errors=seen, daemon_exit=rc)
        remount_works(mounter, m)


# ---------------------------------------------------------------------------------------------
# Lazy unmount with files open


def fd_client(i, root, board, seed):
    """Opens two files in root/h<i> (one buffered, one O_DIRECT) and then only does I/O on
    the descriptors, verifying every read, until the stop flag or an error."""
    rng = random.Random(seed * 100 + i)
    d = os.path.join(root, "h%02d" % i)
    size = 128 * KiB
    model = bytearray(rng.randbytes(size))
    path = os.path.join(d, "open")
    make_file(path, bytes(model))
    fd = os.open(path, os.O_RDWR)
    dfd = os.open(path, os.O_RDWR | os.O_DIRECT)
    ops = 0
    op = None
    try:
        while not board.stopped():
            op = "pwrite"
            off = rng.randrange(size - 8 * KiB)
            data = rng.randbytes(rng.randint(1, 8 * KiB))
            rfutil.write_all(fd, data, off)
            model[off:off + len(data)] = data
            op = "pread"
            off = rng.randrange(size)
            got = rfutil.pread_all(fd, 16 * KiB, off)
            if got != bytes(model[off:off + 16 * KiB]):
                raise Mismatch("client %d: buffered read at %d differs" % (i, off))
            op = "O_DIRECT read"
            got = rfutil.read_direct_fd(dfd, 0, size)
            if got != bytes(model):
                raise Mismatch("client %d: O_DIRECT read differs from what was written" % i)
            op = "fsync"
            if rng.random() < 0.1:
                os.fsync(fd)
            ops += 1
            board.bump(i)
    except OSError as e:
        return {"ops": ops, "error": (op, e.errno)}
    finally:
        for f in (fd, dfd):
            try:
                os.close(f)
            except OSError:
                pass  # after an abort, close's flush fails too
    return {"ops": ops, "error": None}


@pytest.mark.parametrize("end", ["last-close", "abort"])
def test_lazy_umount_under_load(mounter, transport, fs, end):
    m = mounter(transport, fs)
    cid = m.conn_id()
    seed = random.randrange(1 << 30)
    with recording("faults", test="lazy-umount-%s[%s-%s]" % (end, transport, fs),
                   fault="umount -l" + (" + abort" if end == "abort" else ""),
                   clients=NCLIENTS, seed=seed) as rec:
        load = Load(m, seed, fn=fd_client)
        try:
            load.wait_busy()
            r = umount(m.path, lazy=True)
            assert r.returncode == 0, r.stdout
            assert not m.mounted()
            # Detached, not gone: the open files are still served, and correctly.
            before = [load.board.progress(i) for i in range(load.n)]
            assert load.board.wait_all_progress(max(before) + 20, 15.0), (
                "I/O on open files stalled after the lazy unmount: progress %s -> %s\n%s" % (
                    before, [load.board.progress(i) for i in range(load.n)], m.log_report()))
            assert m.alive(), "daemon quit with files open on its detached mount\n" + \
                m.log_report()
            if end == "abort":
                m.expect_clean = False
                m.allow_errors = True
                assert rfutil.abort_connection(cid), "cannot abort connection %s" % cid
                results, problems = load.stop_and_finish(grace=10.0)
            else:
                load.board.stop()
                results, problems = load.finish()
        finally:
            load.cleanup()
        if end == "abort":
            ops, seen = judge(results, problems, allowed(transport))
        else:
            ops, seen = judge(results, problems, set(), need_error=False)
        rc = m.wait_exit()
        assert rc is not None, "daemon still running %.0fs after the last file closed%s\n%s" % (
            rfutil.EXIT_TIMEOUT, " and the abort" if end == "abort" else "", m.log_report())
        if end == "abort":
            assert rc >= 0, "daemon died of signal %d\n%s" % (-rc, m.log_report())
        else:
            assert rc == 0, "exit status %d after the last close\n%s" % (rc, m.log_report())
        rec.update(ops=ops, faults=1, errors=seen, daemon_exit=rc)
        remount_works(mounter, m)


# ---------------------------------------------------------------------------------------------
# SIGTERM


def test_sigterm_under_load(mounter, transport, fs):
    m = mounter(transport, fs)
    seed = random.randrange(1 << 30)
    with recording("faults", test="sigterm[%s-%s]" % (transport, fs), fault="SIGTERM",
                   clients=NCLIENTS, seed=seed) as rec:
        load = Load(m, seed)
        try:
            load.wait_busy()
            os.kill(m.pid, signal.SIGTERM)
            rc = m.wait_exit(10.0)
            results, problems = load.stop_and_finish(grace=10.0)
        finally:
            load.cleanup()
        assert rc is not None, "daemon still running 10s after SIGTERM under load\n" + \
            m.log_report()
        assert rc == 0, "exit status %d after SIGTERM\n%s" % (rc, m.log_report())
        assert not m.mounted(), "SIGTERM left the mount behind"
        ops, seen = judge(results, problems, allowed(transport, DETACHED), need_error=False)
        rec.update(ops=ops, faults=1, errors=seen, daemon_exit=rc)
        remount_works(mounter, m)


# ---------------------------------------------------------------------------------------------
# Setups that cannot work


def _start_expecting_failure(argv, mnt, what):
    """Run a daemon that should give up at once. Returns (rc, output, seconds) or skips if it
    mounted after all."""
    t0 = time.monotonic()
    d = Daemon(argv, mnt + ".log")
    rc = d.wait(rfutil.START_FAIL_TIMEOUT)
    elapsed = time.monotonic() - t0
    mounted = rfutil.is_mounted(mnt)
    if mounted or rc is None:
        if mounted:
            umount(mnt)
        if d.wait(rfutil.EXIT_TIMEOUT) is None:
            rfutil.abort_connection(rfutil.conn_id(mnt))
            umount(mnt, lazy=True)
            d.reap()
        return None, d.output(), elapsed
    return rc, d.output(), elapsed


@pytest.mark.transports("uring", "uring-rw")
def test_ring_setup_without_locked_memory(transport):
    why = rfutil.uring_unusable_reason()
    if why:
        pytest.skip("io_uring unavailable: " + why)
    if not shutil.which("prlimit"):
        pytest.skip("prlimit (util-linux) is not installed")
    mnt = make_dir("mnt-")
    # Root has CAP_IPC_LOCK, which lifts RLIMIT_MEMLOCK: drop it (the daemon keeps
    # CAP_SYS_ADMIN to mount).
    prefix = ["prlimit", "--memlock=0:0", "--"]
    if shutil.which("setpriv"):
        prefix = ["setpriv", "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock"] + prefix
    with recording("faults", test="memlock0[%s]" % transport, fault="RLIMIT_MEMLOCK=0") as rec:
        rc, out, elapsed = _start_expecting_failure(
            prefix + daemon_argv("memfs", mnt, transport), mnt, "memlock")
        if rc is None:
            pytest.skip("the daemon mounted with RLIMIT_MEMLOCK=0%s: this kernel does not "
                        "charge io_uring memory to the limit here" % (
                            " and without CAP_IPC_LOCK" if "setpriv" in prefix else ""))
        rec.update(daemon_exit=rc, seconds=round(elapsed, 2), faults=1)
        assert rc > 0, "exit status %d\n%s" % (rc, out)
        assert not rfutil.is_mounted(mnt), "a failed start left the mount behind"
        assert elapsed < 5.0, "giving up took %.1fs" % elapsed
        assert re.search(r"RLIMIT_MEMLOCK|memlock|locked memory", out, re.I), (
            "the message does not say that locked memory ran out:\n" + out)
        assert not re.search(r"AddressSanitizer|runtime error", out), out


@pytest.mark.transports("uring")
def test_impossible_uring_depth(transport):
    mnt = make_dir("mnt-")
    with recording("faults", test="depth100000[%s]" % transport, fault="uring_depth=100000",
                   faults=1):
        t0 = time.monotonic()
        out = rfutil.expect_start_failure(
            daemon_argv("memfs", mnt, transport, opts=("uring_depth=100000",)), mnt + ".log",
            mnt)
        assert time.monotonic() - t0 < 5.0
        assert "uring_depth" in out and re.search(r"\d+ to \d+|range|at most", out), (
            "the message does not say what depth is allowed:\n" + out)


# ---------------------------------------------------------------------------------------------
# Passthrough out of file descriptors


@pytest.mark.filesystems("passthrough")
def test_passthrough_out_of_fds(mounter, transport, fs):
    m = mounter(transport, fs)
    _, fds, _ = daemon_usage(m.pid)
    limit = max(64, fds + 24)
    resource.prlimit(m.pid, resource.RLIMIT_NOFILE, (limit, limit))
    with recording("faults", test="nofile%d[%s]" % (limit, transport),
                   fault="RLIMIT_NOFILE=%d" % limit) as rec:
        held = []

        def open_until_failure():
            for k in range(4 * limit):
                try:
                    held.append(os.open(m.p("f%d" % k), os.O_CREAT | os.O_RDWR, 0o644))
                except OSError as e:
                    return e
            return None

        try:
            err = rfutil.call_with_timeout(open_until_failure, timeout=20.0)
            if err == "timeout":
                m.abort()
                pytest.fail("opening files hung with the daemon out of descriptors")
            assert isinstance(err, OSError), (
                "%d opens through a daemon limited to %d descriptors all succeeded (%r)" % (
                    len(held), limit, err))
            assert err.errno in (errno.EMFILE, errno.ENFILE), (
                "open %d failed with %s, expected EMFILE or ENFILE" % (len(held), rfutil.eno(err)))
            rec.update(opened=len(held), limit=limit, error=rfutil.eno(err), faults=1)
            # The server survives and keeps answering.
            assert m.alive(), "daemon died out of descriptors\n" + m.log_report()
            assert rfutil.call_with_timeout(os.statvfs, (m.path,), 10.0).f_bsize > 0
            os.pwrite(held[0], b"still", 0)
            assert os.pread(held[0], 5, 0) == b"still"
        finally:
            for fd in held:
                os.close(fd)
        # Releases reach the daemon asynchronously: opens work again soon after.
        deadline = time.monotonic() + 10.0
        while True:
            try:
                fd = os.open(m.p("f0"), os.O_RDWR)
                break
            except OSError as e:
                if e.errno not in (errno.EMFILE, errno.ENFILE) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        try:
            assert os.pread(fd, 5, 0) == b"still"
        finally:
            os.close(fd)
        make_file(m.p("after"), b"recovered")
        assert read_file(m.p("after")) == b"recovered"
        assert "after" in os.listdir(m.path)
