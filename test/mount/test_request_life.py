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


# ---------------------------------------------------------------------------------------------
# A clean stop delivers what exists

# Open a file (argv[1]), say "ready", then on a line from stdin read it (mode r) or write to it
# (mode w) once, with O_DIRECT semantics from the direct_io mount; prints "ok N" or "err ERRNO".
OP_CHILD = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
print("ready", flush=True)
sys.stdin.readline()
try:
    if sys.argv[2] == "r":
        data = os.pread(fd, 65536, 0)
        ok = data == bytes(range(256)) * 16
    else:
        ok = os.pwrite(fd, b"x" * 4096, 0) == 4096
    print("ok %d" % ok, flush=True)
except OSError as e:
    print("err %d" % e.errno, flush=True)
"""


def stop_under_held_operations(mounter, transport, n=32):
    """n callers (half reading one file, half writing a file each: writes to one file would
    queue in the kernel) whose operations memfs holds for 500 ms before answering them from
    its pool; SIGTERM once they all reached it (the drain time is 1 s)."""
    # Every operation must reach memfs at once: io-uring queues start with every entry (a
    # queue grows when all its entries are busy, but the kernel gives new entries only the
    # requests that come after; those that came while all were held wait for an answer).
    m = mounter(transport, "memfs", opts=("direct_io", "defer=2", "defer_delay_us=500000",
                                          "defer_delay_ops=read:write", "uring_depth_min=16"))
    make_file(m.p("r"), bytes(range(256)) * 16)
    for i in range(1, n, 2):
        make_file(m.p("w%d" % i), b"")
    kids = [child(OP_CHILD, m.p("r" if i % 2 == 0 else "w%d" % i), "rw"[i % 2])
            for i in range(n)]
    try:
        for k in kids:
            assert k.stdout.readline().strip() == "ready"
        for k in kids:
            k.stdin.write("go\n")
            k.stdin.flush()
        time.sleep(0.25)  # every operation is held by memfs now
        os.kill(m.pid, signal.SIGTERM)
        results = [k.stdout.readline().split() for k in kids]
    finally:
        for k in kids:
            if k.poll() is None:
                k.kill()
            k.wait()
    rc = m.wait_exit(10)
    bad = [(i, r) for i, r in enumerate(results) if r != ["ok", "1"]]
    assert not bad, "operations the filesystem completed failed at the stop: %s\n%s" % (
        bad, m.log_report())
    assert rc == 0, "exit status %s after SIGTERM\n%s" % (rc, m.log_report())
    assert not m.mounted()


def test_clean_stop_delivers_the_answers_that_exist(mounter, transport):
    """SIGTERM while memfs holds READs and WRITEs before answering them from its pool: each
    is answered before the drain deadline, so each caller gets its answer, not an error, and
    the daemon exits 0. Twice, since which reader of /dev/fuse gets a request
    (dev and uring-rw) is up to the kernel."""
    for _ in range(2):
        stop_under_held_operations(mounter, transport)


# ---------------------------------------------------------------------------------------------
# A queue that dies ends the session

# Read a direct_io file in a loop (pinned to argv[2] if given) until an error; each read's
# duration is checked: prints "slow SECONDS" if one took more than argv[3] seconds, then the
# errno that ended the loop ("end ERRNO").
LOOP_CHILD = r"""
import os, sys, time
if sys.argv[2] != "-":
    os.sched_setaffinity(0, {int(sys.argv[2])})
print("ready", flush=True)
limit = float(sys.argv[3])
try:
    fd = os.open(sys.argv[1], os.O_RDONLY)
except OSError as e:  # the session may already have ended
    print("end %d" % e.errno, flush=True)
    sys.exit(0)
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    t0 = time.monotonic()
    try:
        os.pread(fd, 4096, 0)
    except OSError as e:
        took = time.monotonic() - t0
        if took > limit:
            print("slow %.2f" % took, flush=True)
        print("end %d" % e.errno, flush=True)
        break
    took = time.monotonic() - t0
    if took > limit:
        print("slow %.2f" % took, flush=True)
        break
else:
    print("end 0", flush=True)
"""


@pytest.mark.transports("uring", "uring-rw")
def test_a_queue_that_dies_ends_the_session(mounter, transport, monkeypatch):
    """Queue (or worker) 1's io_uring fails for good when its first READ arrives
    (RINGFUSE_FAULT=uring_queue_fatal:1). The session must end with an error that names the
    queue, and the kernel must fail the callers it would have routed there at once: every
    read finishes (with its data or an error) within a second, none hangs."""
    cpus = rfutil.usable_cpus()
    if transport == "uring" and 1 not in cpus:
        pytest.skip("needs CPU 1 for queue 1")
    monkeypatch.setenv("RINGFUSE_FAULT", "uring_queue_fatal:1")
    extra = ("threads=2",) if transport == "uring-rw" else ()
    m = mounter(transport, "memfs", opts=("direct_io",) + extra)
    m.expect_clean = False
    m.allow_errors = True
    make_file(m.p("f"), rand(4096, 9))
    # On uring the CPU picks the queue; uring-rw workers take requests in any order, so
    # several readers keep reading until one READ reaches worker 1.
    kids = [child(LOOP_CHILD, m.p("f"), 1 if transport == "uring" else "-", 1.5)
            for _ in range(1 if transport == "uring" else 4)]
    try:
        for k in kids:
            assert k.stdout.readline().strip() == "ready"
        rc = m.wait_exit(10)
        outs = [k.stdout.read() for k in kids]
    finally:
        for k in kids:
            if k.poll() is None:
                k.kill()
            k.wait()
    assert rc is not None, "daemon still running 10 s after its queue died\n" + m.log_report()
    assert rc > 0, "exit status %s after a queue died\n%s" % (rc, m.log_report())
    assert re.search(r"(io-uring queue|uring-rw worker) 1 died", m.daemon.output()), \
        m.log_report()
    slow = [o for o in outs if "slow" in o]
    assert not slow, "callers waited: %s\n%s" % (slow, m.log_report())
    m.abort()
    if m.mounted():
        rfutil.umount(m.path, lazy=True)


def test_a_reply_after_the_drain_goes_nowhere(mounter, transport):
    """memfs answers a READ 3 s after it arrived, but the session stops (SIGTERM) with 300 ms
    to drain, and memfs goes on 3 s after rf_session_run() returns before it sends its late
    answer (test_linger_ms). The caller must get its error when the session ends: the
    connection is aborted at the end of rf_session_run() on every transport, whatever
    handlers still owe. The late answer must go nowhere: not to a closed descriptor, nor to
    whatever file reused its number."""
    m = mounter(transport, "memfs", opts=HELD_READS + ("drain_ms=300", "test_linger_ms=3000"))
    make_file(m.p("f"), rand(4096, 11))
    reader = child(READ_CHILD, m.p("f"))
    try:
        assert reader.stdout.readline().strip() == "ready"
        reader.stdin.write("go\n")
        reader.stdin.flush()
        time.sleep(0.3)  # the READ is held by memfs
        t0 = time.monotonic()
        os.kill(m.pid, signal.SIGTERM)
        out = call_with_timeout(reader.stdout.readline, (), 10.0)
        took = time.monotonic() - t0
    finally:
        if reader.poll() is None:
            reader.kill()
        reader.wait()
    assert out != "timeout", "the caller still waits 10 s after the stop\n" + m.log_report()
    n, err = (int(x) for x in out.split()[:2])
    assert n == -1 and err in (errno.ECONNABORTED, errno.ENOTCONN), out
    assert took < 2.0, "the caller waited %.2fs: the connection outlived rf_session_run()\n%s" % (
        took, m.log_report())
    rc = m.wait_exit(10)
    assert rc == 0, "exit status %s\n%s" % (rc, m.log_report())
    assert "Bad file descriptor" not in m.daemon.output(), m.log_report()
