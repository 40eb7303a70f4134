"""How sessions begin and end: every way out (unmount, signals, the daemon killed, the kernel
aborting the connection, a lazy unmount with files open) ends with the daemon gone, the mount
gone or removable, and the mountpoint reusable; bad setups fail fast with a message that says
what is wrong."""

import errno
import mmap
import os
import re
import select
import signal
import time

import pytest

import rfutil
from rfutil import (START_FAIL_TIMEOUT, Daemon, daemon_argv, expect_start_failure, is_mounted,
                    make_dir, make_file, rand, read_direct_fd, read_file, umount)

# ---------------------------------------------------------------------------------------------
# Clean ends


def test_umount_exits_zero(mounter, transport, fs):
    m = mounter(transport, fs)
    make_file(m.p("f"), b"data")
    r = umount(m.path)
    assert r.returncode == 0, r.stdout
    rc = m.wait_exit()
    assert rc == 0, "exit status %s after umount\n%s" % (rc, m.log_report())
    assert not m.mounted()
    assert os.listdir(m.path) == [], "the bare mountpoint shows through"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_unmounts(mounter, transport, fs, sig):
    m = mounter(transport, fs)
    make_file(m.p("f"), b"data")
    os.kill(m.pid, sig)
    rc = m.wait_exit()
    assert rc is not None, "daemon still running %.0fs after %s\n%s" % (
        rfutil.EXIT_TIMEOUT, sig.name, m.log_report())
    assert rc == 0, "exit status %d after %s\n%s" % (rc, sig.name, m.log_report())
    assert not m.mounted(), "%s left the mount behind" % sig.name
    # The same mountpoint takes a new mount.
    m2 = mounter(transport, fs, path=m.path, src=m.src)
    make_file(m2.p("g"), b"again")
    assert read_file(m2.p("g")) == b"again"


def test_lazy_umount_with_open_file(mounter, transport, fs):
    m = mounter(transport, fs)
    make_file(m.p("f"), rand(10000, 1))
    fd = os.open(m.p("f"), os.O_RDWR)
    dfd = os.open(m.p("f"), os.O_RDONLY | os.O_DIRECT)
    try:
        r = umount(m.path, lazy=True)
        assert r.returncode == 0, r.stdout
        assert not m.mounted()
        # Detached but alive: the open files are still served by the daemon.
        assert m.alive(), "daemon quit while files on its detached mount are open\n" + \
            m.log_report()
        os.pwrite(fd, b"after", 0)
        assert read_direct_fd(dfd, 0, 5) == b"after"
        assert m.alive()
    finally:
        os.close(fd)
        os.close(dfd)
    rc = m.wait_exit()
    assert rc is not None, "daemon still running %.0fs after the last file closed\n%s" % (
        rfutil.EXIT_TIMEOUT, m.log_report())
    assert rc == 0, m.log_report()


# ---------------------------------------------------------------------------------------------
# Hard ends


class Reader:
    """A forked client reading a file with O_DIRECT in a loop, so it is almost always inside a
    FUSE request. It reports progress, then the errno that stopped it."""

    def __init__(self, path):
        self.r, w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(self.r)
                fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
                buf = mmap.mmap(-1, 64 * 1024)
                n = 0
                while True:
                    try:
                        os.preadv(fd, [buf], 0)
                    except OSError as e:
                        os.write(w, b"E%d\n" % e.errno)
                        break
                    n += 1
                    if n % 50 == 0:
                        os.write(w, b"P")
            finally:
                os._exit(0)
        os.close(w)
        self.buf = b""

    def _read(self, timeout):
        """False once the client is gone (end of file), else True."""
        if select.select([self.r], [], [], timeout)[0]:
            b = os.read(self.r, 65536)
            self.buf += b
            return bool(b)
        return True

    def wait_progress(self, reads, timeout=10.0):
        deadline = time.monotonic() + timeout
        while self.buf.count(b"P") * 50 < reads:
            left = deadline - time.monotonic()
            if left <= 0 or b"E" in self.buf or not self._read(left):
                return False
        return True

    def wait_error(self, timeout=10.0):
        """The errno the client stopped with, or None if it is still stuck."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(rb"E(\d+)\n", self.buf)
            if m:
                return int(m.group(1))
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(left):
                return None

    def finish(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.r)


def dead_daemon_errnos(transport):
    """What a request in flight may fail with when the daemon is killed: ENOTCONN (connection
    gone) or ECONNABORTED (the request was inside the daemon); EIO when the kernel was copying
    the reply out of the dying daemon's memory (page pinning gives up on a fatally signalled
    task, and a reply that cannot be copied fails its request with EIO). With io_uring the
    kernel also fails a request it was handing to a ring entry of the dead task with
    ECANCELED. None of these is the library's doing: the daemon is already gone."""
    codes = (errno.ENOTCONN, errno.ECONNABORTED, errno.EIO)
    if rfutil.base_transport(transport) == "uring":
        codes += (errno.ECANCELED,)
    return codes


def test_sigkill_with_busy_client(mounter, transport, fs):
    m = mounter(transport, fs)
    make_file(m.p("f"), rand(64 * 1024, 2))
    client = Reader(m.p("f"))
    try:
        assert client.wait_progress(200), "client made no progress before the kill"
        m.expect_clean = False
        m.allow_errors = True
        os.kill(m.pid, signal.SIGKILL)
        assert m.wait_exit() == -signal.SIGKILL
        err = client.wait_error(10.0)
        if err is None:
            m.abort()  # unwedge it so the run can go on
            pytest.fail("client still blocked 10s after the daemon was killed")
        assert err in dead_daemon_errnos(transport), errno.errorcode.get(err, err)
    finally:
        client.finish()
    # New requests fail at once too.
    with pytest.raises(OSError) as ei:
        os.listdir(m.path)
    assert ei.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    r = umount(m.path)
    assert r.returncode == 0, "umount after the daemon died: " + r.stdout
    assert not m.mounted()
    m2 = mounter(transport, fs, path=m.path, src=m.src)
    make_file(m2.p("g"), b"fresh")
    assert read_file(m2.p("g")) == b"fresh"


def test_abort_connection(mounter, transport, fs):
    if not rfutil.ensure_fusectl():
        pytest.skip("the fuse control filesystem (%s) is not available" % rfutil.FUSECTL)
    m = mounter(transport, fs)
    make_file(m.p("f"), b"x" * 4096)
    dfd = os.open(m.p("f"), os.O_RDONLY | os.O_DIRECT)
    m.allow_errors = True  # the daemon may report the lost connection
    try:
        assert os.path.isdir(os.path.join(rfutil.FUSECTL, m.conn_id())), \
            "no connection directory %s for the mount" % m.conn_id()
        assert m.abort()
        with pytest.raises(OSError) as ei:
            read_direct_fd(dfd, 0, 4096)
        assert ei.value.errno in (errno.ENOTCONN, errno.ECONNABORTED)
    finally:
        try:
            os.close(dfd)  # the descriptor goes away even when the FLUSH cannot be sent
        except OSError as e:
            assert e.errno in (errno.ENOTCONN, errno.ECONNABORTED), e
    rc = m.wait_exit()
    assert rc is not None, "daemon still running %.0fs after the abort\n%s" % (
        rfutil.EXIT_TIMEOUT, m.log_report())
    # The kernel ended the session; for the daemon that is an orderly end like an unmount.
    assert rc == 0, "exit status %d after the abort\n%s" % (rc, m.log_report())
    if m.mounted():
        r = umount(m.path)
        assert r.returncode == 0, "umount after abort: " + r.stdout
    assert not m.mounted()
    m2 = mounter(transport, fs, path=m.path, src=m.src)
    make_file(m2.p("g"), b"fresh")
    assert read_file(m2.p("g")) == b"fresh"


# ---------------------------------------------------------------------------------------------
# Refusing to start


def test_missing_mountpoint(fs):
    parent = make_dir("gone-")
    path = os.path.join(parent, "does-not-exist")
    src = make_dir("src-") if fs == "passthrough" else None
    out = expect_start_failure(daemon_argv(fs, path, "dev", src=src), parent + ".log", path)
    assert path in out or re.search(r"mount ?point", out, re.I), \
        "the message does not say what is wrong:\n" + out


@pytest.mark.filesystems("passthrough")
def test_missing_source(fs):
    mnt = make_dir("mnt-")
    src = os.path.join(make_dir("gone-"), "no-source")
    out = expect_start_failure(daemon_argv(fs, mnt, "dev", src=src), mnt + ".log", mnt)
    assert src in out or re.search(r"source", out, re.I), out


@pytest.mark.parametrize("opt,name", [
    ("transport=bogus", "transport"),
    ("uring_depth=0", "uring_depth"),
    ("uring_depth=abc", "uring_depth"),
])
def test_bad_option(opt, name):
    mnt = make_dir("mnt-")
    argv = daemon_argv("memfs", mnt, opts=(opt,))
    out = expect_start_failure(argv, mnt + ".log", mnt)
    assert name in out, "the message does not name the option %s:\n%s" % (name, out)


@pytest.mark.serial
def test_uring_refused_when_kernel_disables_it():
    """enable_uring=N: asking for transport=uring must fail quickly and say why, not fall back
    or hang. The module parameter is global: this test must not overlap with others."""
    if rfutil.read_uring_param() is None:
        pytest.skip("this kernel's fuse module has no enable_uring parameter")
    why = rfutil.write_uring_param("N")
    if why:
        pytest.skip(why)
    try:
        mnt = make_dir("mnt-")
        d = Daemon(daemon_argv("memfs", mnt, "uring"), mnt + ".log")
        rc = d.wait(START_FAIL_TIMEOUT)
        mounted = is_mounted(mnt)
        param = rfutil.read_uring_param()
        if mounted:
            umount(mnt)
        if rc is None and d.wait(rfutil.EXIT_TIMEOUT) is None:
            rfutil.abort_connection(rfutil.conn_id(mnt))
            umount(mnt, lazy=True)
            d.reap()
        if rc is None:
            pytest.fail("with enable_uring=N, -o transport=uring is still running after %.0fs "
                        "(mounted: %s, enable_uring now %s)\n%s" %
                        (START_FAIL_TIMEOUT, mounted, param, d.log_tail()), pytrace=False)
        out = d.output()
        assert rc > 0, "exit status %d\n%s" % (rc, out)
        assert re.search(r"enable_uring|io[_-]?uring", out), \
            "the message does not say io_uring is off:\n" + out
        assert not mounted, "a failed start left the mount behind"
        assert not d.bad_log_lines(rfutil.SANITIZER_PATTERNS), out
    finally:
        rfutil.write_uring_param("Y")
