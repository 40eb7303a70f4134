"""The life of a request through a real mount, on every transport: a filesystem's stale or
wrong reply never reaches another request, an interrupt that overtakes its request is not
lost, a clean stop delivers the answers that already exist, and a queue that dies ends the
session instead of leaving its callers waiting.

memfs misbehaves on purpose here through its test hooks (-o test_*, fs/memfs/testhooks.c).
"""

import errno
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

import rfutil
from rfutil import call_with_timeout, make_file, rand, read_file

pytestmark = pytest.mark.filesystems("memfs")

DUP_RE = re.compile(r"ringfuse-stats: total: .*\bdup (\d+)")


def total_dups(m):
    found = DUP_RE.findall(m.daemon.output())
    assert found, "no statistics printed\n" + m.log_report()
    return int(found[-1])


def unmount_clean(m):
    rc = m.unmount()
    assert rc == 0, "exit status %s at unmount\n%s" % (rc, m.log_report())


def wait_log(m, text, timeout=10.0):
    deadline = time.monotonic() + timeout
    while text not in m.daemon.output():
        assert time.monotonic() < deadline and m.alive(), \
            "no %r in the daemon log\n%s" % (text, m.log_report())
        time.sleep(0.01)


def ctl(path, command):
    """One command on memfs's control socket; returns its reply line."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(command.encode() + b"\n")
        return s.recv(100).decode().strip()


def child(code, *args):
    return subprocess.Popen([sys.executable, "-c", code] + [str(a) for a in args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            universal_newlines=True)


# ---------------------------------------------------------------------------------------------
# Replies that must not land


def test_stale_reply_never_lands_on_the_next_request(mounter, transport):
    """memfs answers a lookup, keeps its rf_req * and answers it again at the start of each of
    the next requests: by then the slot holds a new request, which must get its own answer."""
    m = mounter(transport, "memfs", opts=("test_stale_reply=stale", "cache=none", "stats"))
    data = rand(20000, 1)
    make_file(m.p("f"), data)
    with pytest.raises(FileNotFoundError):
        os.stat(m.p("stale"))
    for i in range(60):
        try:
            assert os.stat(m.p("f")).st_size == len(data)
            assert rfutil.read_direct(m.p("f")) == data
        except OSError as e:
            pytest.fail("request %d after the stale reply failed: %s\n%s" % (
                i, rfutil.eno(e), m.log_report()))
    unmount_clean(m)
    assert total_dups(m) >= 1, m.log_report()
    assert "stale rf_req" in m.daemon.output(), m.log_report()


def test_reply_none_where_a_reply_is_due(mounter, transport):
    """rf_reply_none() on a lookup: refused, and the caller gets EIO rather than waiting."""
    m = mounter(transport, "memfs", opts=("test_reply_none=none",))
    got = call_with_timeout(os.stat, (m.p("none"),), 5.0)
    if got == "timeout":
        m.abort()
        m.expect_clean = False
        m.allow_errors = True
        pytest.fail("stat of a name answered with rf_reply_none() hangs")
    assert isinstance(got, OSError) and got.errno == errno.EIO, got
    make_file(m.p("after"), b"still serving")
    assert read_file(m.p("after")) == b"still serving"
    unmount_clean(m)


# ---------------------------------------------------------------------------------------------
# Interrupts that overtake their request

# Pinned to a CPU (argv[2], if given), stat a path; prints the errno or 0.
STAT_CHILD = r"""
import os, sys
if len(sys.argv) > 2:
    os.sched_setaffinity(0, {int(sys.argv[2])})
try:
    os.stat(sys.argv[1])
    print(0, flush=True)
except OSError as e:
    print(e.errno, flush=True)
"""

# Pinned to a CPU (argv[2], if given), open a direct_io file, say "ready", and read(2) it once
# a line arrives on stdin, with a SIGINT handler that does nothing: the read itself reports
# what the kernel answered ("bytes errno seconds").
READ_CHILD = r"""
import ctypes, os, signal, sys, time
libc = ctypes.CDLL(None, use_errno=True)
signal.signal(signal.SIGINT, lambda s, f: None)
if len(sys.argv) > 2:
    os.sched_setaffinity(0, {int(sys.argv[2])})
fd = os.open(sys.argv[1], os.O_RDONLY)
buf = ctypes.create_string_buffer(4096)
print("ready", flush=True)
sys.stdin.readline()
t0 = time.monotonic()
n = libc.read(fd, buf, 4096)
print("%d %d %.3f" % (n, ctypes.get_errno(), time.monotonic() - t0), flush=True)
"""

# memfs answers READs from its deferred pool after 3 s, unless the request is interrupted:
# then at once, with EINTR.
HELD_READS = ("direct_io", "defer=1", "defer_delay_us=3000000", "defer_delay_ops=read")


def interrupted_read(m, path, cpu=None, before_read=None, after_signal=None):
    """A reader of path (pinned to cpu), SIGINT once its READ is in the daemon's hands; returns
    (bytes, errno, seconds from the signal to the answer)."""
    reader = child(READ_CHILD, path, *([] if cpu is None else [cpu]))
    try:
        assert reader.stdout.readline().strip() == "ready"
        if before_read:
            before_read()
        reader.stdin.write("go\n")
        reader.stdin.flush()
        time.sleep(0.3)
        reader.send_signal(signal.SIGINT)
        t_sig = time.monotonic()
        if after_signal:
            after_signal()
        out = reader.stdout.readline().split()
        took = time.monotonic() - t_sig
        assert reader.wait(10) == 0
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.wait()
    assert len(out) == 3, "reader said %r\n%s" % (out, m.log_report())
    return int(out[0]), int(out[1]), took


def interrupt_lines(m):
    return re.findall(r"memfs-test: interrupt #(\d+)", m.daemon.output())


@pytest.mark.transports("uring")
def test_interrupt_overtakes_a_request_queued_behind_a_blocked_handler(mounter, transport):
    """A lookup blocks its queue's thread; a READ from the same CPU waits in the next ring
    entry; its caller gets SIGINT. The kernel sends the interrupt over /dev/fuse before the
    queue ever looked at the READ: the library must keep it and mark the READ when it begins
    (memfs then answers it EINTR at once instead of data after 3 s)."""
    sock = rfutil.make_dir("ctl-") + "/ctl"
    m = mounter(transport, "memfs", opts=HELD_READS + ("test_block=blockme", "ctl=" + sock))
    make_file(m.p("f"), rand(4096, 5))
    cpu = rfutil.usable_cpus()[0]
    blocker = []

    def block_the_queue():
        blocker.append(child(STAT_CHILD, m.p("blockme"), cpu))
        wait_log(m, "memfs-test: blocked in lookup of blockme")

    try:
        n, err, took = interrupted_read(
            m, m.p("f"), cpu, before_read=block_the_queue,
            after_signal=lambda: (time.sleep(0.5), ctl(sock, "release")))
        assert blocker[0].stdout.readline().strip() == str(errno.ENOENT)
    finally:
        if blocker and blocker[0].poll() is None:
            ctl(sock, "release")
            blocker[0].wait(10)
    assert n == -1 and err == errno.EINTR, \
        "the overtaken interrupt was lost: read gave %d bytes, errno %d, %.2fs after the " \
        "signal\n%s" % (n, err, took, m.log_report())
    assert took < 2.0, took
    assert len(interrupt_lines(m)) == 1, "ops.interrupt calls: %s\n%s" % (
        interrupt_lines(m), m.log_report())
    unmount_clean(m)


def test_interrupt_overtakes_a_request_before_dispatch(mounter, transport, monkeypatch):
    """Every READ waits 1 s between arriving and its dispatch (RINGFUSE_FAULT=read_delay_ms),
    with other readers free: the interrupt reaches another thread first. On dev and uring-rw
    the READ sits on another clone fd, where the kernel would not take an EAGAIN for it."""
    monkeypatch.setenv("RINGFUSE_FAULT", "read_delay_ms:1000")
    extra = ("threads=2",) if transport != "uring" else ()
    m = mounter(transport, "memfs", opts=HELD_READS + extra + ("test_log_interrupts",))
    make_file(m.p("f"), rand(4096, 6))
    n, err, took = interrupted_read(m, m.p("f"))
    assert n == -1 and err == errno.EINTR, \
        "the overtaken interrupt was lost: read gave %d bytes, errno %d, %.2fs after the " \
        "signal\n%s" % (n, err, took, m.log_report())
    assert took < 2.0, took
    assert len(interrupt_lines(m)) == 1, "ops.interrupt calls: %s\n%s" % (
        interrupt_lines(m), m.log_report())
    unmount_clean(m)
