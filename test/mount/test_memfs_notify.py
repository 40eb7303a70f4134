"""memfs's control socket (-o ctl=PATH) and the kernel notifications behind it.

memfs is mounted with cache=always (entries and attributes cached for a day, page cache kept
across opens) and changed behind the kernel's back through its control socket. Each change is
made twice: once with `nonotify`, to show the kernel really serves the old state from its
caches, and once with the notification (inval_inode, store, delete, inval_entry), to show the
notification is what makes the change visible.

Reads here use os.open + os.pread and never fstat: a GETATTR would let the kernel notice the
new mtime itself (auto_inval_data) and drop the pages without any notification.
"""

import errno
import os
import socket
import threading
import time

import pytest

import rfutil
from rfutil import make_dir, make_file, raises_errno

pytestmark = pytest.mark.filesystems("memfs")


class Ctl:
    """A client of memfs's control socket: ctl("write", "f", 0, b"data") -> "ok" / "err N"."""

    def __init__(self, path, timeout=10.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.f = self.sock.makefile("rwb")

    def line(self, text):
        self.f.write(text.encode() + b"\n")
        self.f.flush()
        reply = self.f.readline()
        assert reply.endswith(b"\n"), "control socket closed after %r" % text
        return reply.decode().strip()

    def __call__(self, *words):
        out = []
        for w in words:
            out.append(w.hex() if isinstance(w, bytes) else str(w))
        return self.line(" ".join(out))

    def ok(self, *words):
        reply = self(*words)
        assert reply == "ok", "%s -> %s" % (" ".join(map(str, words)), reply)

    def close(self):
        self.f.close()
        self.sock.close()


@pytest.fixture
def cached(mounter, transport):
    """memfs on `transport` with cache=always and a control socket: (mount, Ctl)."""
    sock = os.path.join(make_dir("ctl-"), "sock")
    m = mounter(transport, "memfs", opts=("cache=always", "ctl=" + sock))
    st = os.stat(sock)
    assert st.st_mode & 0o777 == 0o600, oct(st.st_mode)
    ctl = Ctl(sock)
    yield m, ctl
    ctl.close()


def pread_file(path, size=4096):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


def test_write_inval_inode(cached):
    m, ctl = cached
    f = m.p("data")
    make_file(f, b"A" * 100)
    assert pread_file(f) == b"A" * 100  # now in the page cache
    ctl.ok("write", "data", 0, b"B" * 100, "nonotify")
    assert pread_file(f) == b"A" * 100, "no page cache: the stale check proves nothing"
    ctl.ok("write", "data", 10, b"C" * 20)  # inval_inode(ino, 10, 20)
    assert pread_file(f) == b"B" * 10 + b"C" * 20 + b"B" * 70


def test_write_grows_the_file(cached):
    m, ctl = cached
    f = m.p("grow")
    make_file(f, b"x" * 10)
    assert pread_file(f) == b"x" * 10
    ctl.ok("write", "grow", 10, b"y" * 5000)  # also invalidates the cached size
    assert pread_file(f, 8192) == b"x" * 10 + b"y" * 5000
    assert os.stat(f).st_size == 5010


def test_write_store(cached):
    m, ctl = cached
    f = m.p("store")
    make_file(f, b"1" * 64)
    assert pread_file(f) == b"1" * 64
    ctl.ok("write", "store", 0, b"2" * 64, "store")  # the new bytes pushed into the cache
    # memfs now holds something else: if the kernel asked it, this is what it would get.
    ctl.ok("write", "store", 0, b"3" * 64, "nonotify")
    assert pread_file(f) == b"2" * 64, "the stored bytes should have been served from the cache"
    ctl.ok("write", "store", 0, b"4" * 64)
    assert pread_file(f) == b"4" * 64


def test_unlink_delete_and_inval_entry(cached):
    m, ctl = cached
    for name in ("stale", "deleted", "invalidated"):
        make_file(m.p(name), b"z")
        os.stat(m.p(name))  # the entry is cached now
    ctl.ok("unlink", "stale", "nonotify")
    os.stat(m.p("stale"))  # still there: served from the cached entry
    ctl.ok("unlink", "deleted")  # notify_delete
    raises_errno(errno.ENOENT, os.stat, m.p("deleted"))
    ctl.ok("unlink", "invalidated", "inval")  # notify_inval_entry
    raises_errno(errno.ENOENT, os.stat, m.p("invalidated"))
    names = os.listdir(m.path)
    assert "deleted" not in names and "invalidated" not in names, names


def test_rmdir_delete(cached):
    m, ctl = cached
    os.mkdir(m.p("d"))
    os.stat(m.p("d"))
    assert ctl("unlink", "d") == "err %d" % errno.EISDIR
    ctl.ok("rmdir", "d")
    raises_errno(errno.ENOENT, os.stat, m.p("d"))


def test_touch_inval_attrs(cached):
    m, ctl = cached
    f = m.p("attrs")
    make_file(f, b"t")
    old = os.stat(f).st_mtime_ns  # cached for a day from here on
    ctl.ok("touch", "attrs", 1000000000, "nonotify")
    assert os.stat(f).st_mtime_ns == old, "attributes not cached: the stale check proves nothing"
    ctl.ok("touch", "attrs", 1200000000)  # inval_inode(ino, -1, 0): attributes only
    assert os.stat(f).st_mtime == 1200000000


def test_nested_path_and_escapes(cached):
    m, ctl = cached
    os.makedirs(m.p("a", "b c"))
    f = m.p("a", "b c", "f%")
    make_file(f, b"old")
    assert pread_file(f) == b"old"
    ctl.ok("write", "/a/b%20c/f%25", 0, b"new")
    assert pread_file(f) == b"new"


def test_bad_commands(cached):
    m, ctl = cached
    make_file(m.p("f"), b"")
    einval = "err %d" % errno.EINVAL
    for line in ("", "bogus", "write f", "write f x 00", "write f 0 0", "write f 0 zz",
                 "write f 0 00 sideways", "write ../f 0 00", "write ./f 0 00",
                 "unlink", "unlink f store", "touch f -1", "touch f 1 2", "ping x",
                 "write f%00 0 00", "write f%zz 0 00", "a b c d e f g"):
        reply = ctl.line(line)
        assert reply in (einval, "err %d" % errno.E2BIG), "%r -> %r" % (line, reply)
    assert ctl("write", "missing", 0, b"x") == "err %d" % errno.ENOENT
    assert ctl("write", "/", 0, b"x") == "err %d" % errno.EISDIR  # the root
    assert ctl("unlink", "/") == einval
    assert ctl("write", "f/g", 0, b"x") == "err %d" % errno.ENOTDIR
    ctl.ok("ping")  # still serving after all that
    # A line longer than any command is refused and the connection closed; others work on.
    ctl.sock.sendall(b"write f 0 " + b"00" * (1 << 20) + b"00" * 2100)
    assert ctl.f.readline().strip() == b"err %d" % errno.E2BIG
    again = Ctl(ctl.sock.getpeername())
    again.ok("ping")
    again.close()
    assert m.alive()


def test_other_users_are_refused(cached):
    m, ctl = cached
    path = ctl.sock.getpeername()

    def connect():
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)

    with pytest.raises(PermissionError):
        rfutil.run_as(65534, 65534, connect)


@pytest.mark.transports("dev")
def test_socket_removed_at_exit_and_replaced_when_stale(mounter, transport):
    sock = os.path.join(make_dir("ctl-"), "sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock)  # left behind by a daemon that died
    stale.close()
    m = mounter(transport, "memfs", opts=("ctl=" + sock,))
    Ctl(sock).ok("ping")
    assert m.unmount() == 0
    assert not os.path.exists(sock)


@pytest.mark.transports("dev")
def test_refuses_a_path_that_is_not_a_socket(transport):
    d = make_dir("ctl-")
    taken = os.path.join(d, "file")
    make_file(taken, b"keep me")
    mp = make_dir("mnt-")
    argv = rfutil.daemon_argv("memfs", mp, transport, ("ctl=" + taken,))
    out = rfutil.expect_start_failure(argv, mp + ".log", mp)
    assert "ctl=" in out, out
    assert rfutil.read_file(taken) == b"keep me"


def test_notify_under_load(cached):
    """Notifications from the control thread while other threads read through the mount: no
    deadlock, and reads only ever see bytes that were written (a page may mix two states)."""
    m, ctl = cached
    f = m.p("busy")
    letters = b"ABCDEFGH"
    make_file(f, b"A" * 8192)
    deadline = time.monotonic() + 3
    errors, edits = [], []

    def reader():
        try:
            while time.monotonic() < deadline:
                got = pread_file(f, 8192)
                assert len(got) == 8192 and not got.translate(None, letters), got[:32]
        except BaseException as e:  # noqa: B902 - reported by the test thread
            errors.append(e)

    def editor():
        k = 0
        try:
            while time.monotonic() < deadline:
                k += 1
                ctl.ok("write", "busy", 0, letters[k % 8:k % 8 + 1] * 8192,
                       "store" if k % 3 == 0 else "inval")
        except BaseException as e:  # noqa: B902
            errors.append(e)
        edits.append(k)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    threads.append(threading.Thread(target=editor))
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "hung\n" + m.log_report()
    assert not errors, errors
    assert edits and edits[0] > 10, edits
