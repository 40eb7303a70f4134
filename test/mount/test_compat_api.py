"""The libfuse low-level API of ringfuse's libfuse3.so.3, through llfs (test/compat/llfs.c: a
filesystem on that API, linked with the system's libfuse3 and run under ringfuse-run).

- every loop and ABI version of it (fuse_session_loop, fuse_session_loop_mt @FUSE_3.12,
  @FUSE_3.2 and @FUSE_3.0, the filesystem's own receive_buf/process_buf loop) on every
  transport, with the transport each must get;
- reply paths: fuse_reply_iov, fuse_reply_data from a descriptor, a bad error value, the
  request's arguments still valid after the reply (libfuse's promise: with io-uring the reply
  is written over them), fuse_req_ctx umask, fuse_req_getgroups;
- notifications (inval_inode, inval_entry, expire_entry, delete, store) against the kernel's
  caches, and retrieve failing loudly;
- fuse_req_interrupt_func: a request blocked in the filesystem is interrupted by a signal;
- fuse_set_signal_handlers: SIGTERM ends the loop, which returns its number;
- a /dev/fuse descriptor passed as /dev/fd/N, -o allow_root, -o max_read, fuse_daemonize;
- ringfuse-run's own command line.
"""

import ctypes
import errno
import os
import random
import signal
import subprocess
import sys
import time

import pytest

import rfutil
from compat_util import (OWN_LOOP_NOTE, assert_served_by, program_env, report, ringfuse_run,
                         run_mounter)  # noqa: F401

pytestmark = pytest.mark.transports("uring", "dev")

LOOPS = ["single", "mt", "mt32", "mt30", "own"]


def llfs():
    return os.path.join(rfutil.build_dir(), "test", "compat", "llfs")


def served_by(transport, loop):
    """The single-threaded loop is served on its thread by every transport; a loop of the
    filesystem's own reads /dev/fuse itself."""
    if transport == "dev" or loop == "own":
        return "dev"
    return "uring"


def uring(transport):
    return rfutil.base_transport(transport) == "uring"


def tp_opts(transport):
    return ",".join(rfutil.transport_opts(transport))


def start(run_mounter, transport, loop="mt", extra=()):
    m = run_mounter(transport, lambda mnt: [llfs(), "-f", "--loop=" + loop, "-o",
                                             "allow_other"] + list(extra) + [mnt],
                    expect_transport=served_by(transport, loop), check_leaks=True)
    if uring(transport) and loop == "own":
        assert OWN_LOOP_NOTE in m.log(), m.log_report()
    return m


def ctl(m, command):
    fd = os.open(m.p("ctl"), os.O_WRONLY)
    try:
        os.write(fd, command.encode())
    finally:
        os.close(fd)


def xattr(path, name):
    return os.getxattr(path, name).decode()


def read(path, direct=False):
    with open(path, "rb") as f:
        return f.read()


@pytest.mark.parametrize("loop", LOOPS)
def test_loops_and_replies(run_mounter, transport, loop):
    m = start(run_mounter, transport, loop)
    assert sorted(os.listdir(m.path)) == ["cached", "ctl", "fd-file", "iov-file", "negerr"]
    assert read(m.p("iov-file")) == b"one-two-three"
    assert read(m.p("fd-file")) == b"data that comes from a file descriptor\n"
    with pytest.raises(OSError) as e:
        open(m.p("negerr"), "rb")
    assert e.value.errno == errno.ERANGE

    # The reply to a write is written over the request's data with io-uring; llfs answers
    # before copying the data, which libfuse allows.
    data = random.Random(11).randbytes(200000)
    with open(m.p("written"), "wb") as f:
        f.write(data)
    ctl(m, "inval_inode written")  # drop the kernel's pages: read what llfs stored
    assert read(m.p("written")) == data

    # Likewise a lookup's name, used by llfs after answering it.
    long_name = "name-" + "x" * 200
    open(m.p(long_name), "wb").close()
    ctl(m, "inval_entry " + long_name)
    os.stat(m.p(long_name))
    assert xattr(m.path, "user.lastlookup") == long_name

    old = os.umask(0o027)
    try:
        open(m.p("masked"), "wb").close()
    finally:
        os.umask(old)
    assert xattr(m.p("masked"), "user.umask") == "027"
    assert xattr(m.path, "user.ctx").split()[:2] == ["0", "0"]
    capable, want = xattr(m.path, "user.conn").split()
    # What libfuse 3.14 shows a filesystem with readdir and readdirplus.
    assert int(want, 16) & 0x14f809 == 0x14f809, want
    assert_served_by(m, served_by(transport, loop))


def _busy(path, i):
    for j in range(20):
        os.stat(os.path.join(path, "cached"))
        with pytest.raises(FileNotFoundError):
            os.stat(os.path.join(path, "none-%d-%d" % (i, j)))
        os.listdir(path)


@pytest.mark.parametrize("loop", ["single", "own", "mt"])
def test_single_threaded_loops_use_one_thread(run_mounter, transport, loop):
    """fuse_session_loop() and a loop of the filesystem's own run every callback on one
    thread, however many callers keep it busy; the multi-threaded loop need not."""
    m = start(run_mounter, transport, loop)
    assert rfutil.run_parallel(lambda i: _busy(m.path, i), 8, cpus=sorted(os.sched_getaffinity(0))) == []
    threads = int(xattr(m.path, "user.threads"))
    if loop == "mt":
        assert threads >= 1
    else:
        assert threads == 1, "%s loop ran callbacks on %d threads" % (loop, threads)


def test_getgroups(run_mounter, transport):
    m = start(run_mounter, transport)
    groups = rfutil.run_as(65534, 65534, xattr, m.path, "user.groups", groups=(100, 2001))
    assert sorted(groups.split()) == ["100", "2001"]
    ctx = rfutil.run_as(65534, 65534, xattr, m.path, "user.ctx")
    assert ctx.split()[:2] == ["65534", "65534"]


def test_notifications(run_mounter, transport):
    m = start(run_mounter, transport)
    assert read(m.p("cached")) == b"old content\n"
    # Same size and times: nothing tells the kernel its pages are stale.
    ctl(m, "set cached NEW CONTENT!")
    assert read(m.p("cached")) == b"old content\n", "the kernel should serve its cache"
    ctl(m, "inval_inode cached")
    assert read(m.p("cached")) == b"NEW CONTENT!"

    # store: the data goes into the kernel's cache, not into llfs.
    ctl(m, "set cached 0123456789AB")
    ctl(m, "inval_inode cached")
    os.stat(m.p("cached"))
    ctl(m, "store cached stored-12345")
    assert read(m.p("cached")) == b"stored-12345"

    # inval_entry: a name llfs dropped behind the kernel's back disappears.
    open(m.p("gone"), "wb").close()
    os.stat(m.p("gone"))
    ctl(m, "inval_entry gone")
    ctl(m, "expire cached")
    os.stat(m.p("gone"))  # llfs still has it: looked up again

    # delete: llfs removes the file and tells the kernel, which forgets the entry at once.
    ctl(m, "delete gone")
    with pytest.raises(FileNotFoundError):
        os.stat(m.p("gone"))
    assert "gone" not in os.listdir(m.path)

    with pytest.raises(OSError) as e:
        ctl(m, "retrieve cached")
    assert e.value.errno == errno.ENOSYS
    assert "fuse_lowlevel_notify_retrieve() is not supported yet" in m.log()


READER = r"""
import os, signal, sys
class Stop(Exception):
    pass
def stop(*a):
    raise Stop()
signal.signal(signal.SIGUSR1, stop)
print("reading", flush=True)
try:
    os.getxattr(sys.argv[1], "user.slow")
    print("read returned", flush=True)
except Stop:
    print("interrupted", flush=True)
except OSError as e:
    print("error", e.errno, flush=True)
"""


def test_interrupt_callback(run_mounter, transport):
    if transport in rfutil.TRANSPORT_VARIANTS:
        pytest.skip("%s serves every callback on one thread: a handler that waits for its "
                    "interrupt holds the thread that would read it" % transport)
    m = start(run_mounter, transport)
    p = subprocess.Popen([sys.executable, "-c", READER, m.p("cached")],
                         stdout=subprocess.PIPE, universal_newlines=True)
    try:
        assert p.stdout.readline().strip() == "reading"
        time.sleep(0.5)  # let the request reach llfs and block there
        p.send_signal(signal.SIGUSR1)
        out, _ = p.communicate(timeout=15)
    finally:
        p.kill()
        p.wait()
    assert out.strip() == "interrupted", out
    assert xattr(m.path, "user.interrupts") == "1"


@pytest.mark.parametrize("loop", ["single", "mt", "own"])
def test_sigterm_ends_the_loop(run_mounter, transport, loop):
    m = start(run_mounter, transport, loop)
    os.stat(m.p("ctl"))
    os.kill(m.pid, signal.SIGTERM)
    assert m.wait_exit(10) == 0, m.log_report()
    assert not m.mounted()
    # libfuse's loops return the signal's number; the filesystem's own loop just ends.
    assert "llfs: loop returned %d" % (0 if loop == "own" else signal.SIGTERM) in m.log()
    assert report(m)[1] == served_by(transport, loop)


def test_session_exit_from_a_handler(run_mounter, transport):
    m = start(run_mounter, transport)
    # What the kernel answers for a request nobody serves any more: aborted or not connected,
    # or cancelled when it was handed to an io-uring queue whose thread had already exited.
    gone = (errno.ECONNABORTED, errno.ENOTCONN, errno.ECANCELED)
    fd = os.open(m.p("ctl"), os.O_WRONLY)
    try:
        os.write(fd, b"exit")
    except OSError as e:
        # The reply to the very request that ended the session races the end of the io-uring
        # queues, which stop without submitting what their handlers answered last.
        if not uring(transport) or e.errno not in gone:
            raise
    try:
        os.close(fd)  # its FLUSH comes after the loop ended: nobody answers it
    except OSError as e:
        if e.errno not in gone:
            raise
    assert m.wait_exit(10) == 0, m.log_report()
    assert "llfs: loop returned 0" in m.log()
    assert not m.mounted()


def test_dev_fd_mountpoint(transport, tmp_path):
    """A parent opens /dev/fuse and mounts it; the filesystem gets /dev/fd/N as mountpoint."""
    if uring(transport):
        why = rfutil.uring_unusable_reason()
        if why:
            pytest.skip(why)
    mnt = rfutil.make_dir("mnt-")
    fd = os.open("/dev/fuse", os.O_RDWR)
    libc = ctypes.CDLL(None, use_errno=True)
    opts = "fd=%d,rootmode=40000,user_id=0,group_id=0,allow_other" % fd
    if libc.mount(b"llfs", mnt.encode(), b"fuse.llfs", 0, opts.encode()) != 0:
        os.close(fd)
        pytest.fail("mount: %s" % os.strerror(ctypes.get_errno()))
    log = mnt + ".log"
    d = rfutil.Daemon([ringfuse_run(), "-o", "%s,stats" % tp_opts(transport), "--", llfs(),
                       "-f", "/dev/fd/%d" % fd], log, env=program_env(True), pass_fds=(fd,))
    os.close(fd)
    try:
        deadline = time.monotonic() + 10
        while "transport" not in d.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert read(os.path.join(mnt, "iov-file")) == b"one-two-three", d.log()
    finally:
        rfutil.umount(mnt)
        rc = d.wait(10)
        if rc is None:
            d.reap()
    assert rc == 0, d.log()
    assert "transport %s" % rfutil.base_transport(transport) in d.output(), d.log()


def test_allow_root(run_mounter, transport):
    m = start(run_mounter, transport, extra=["-o", "allow_root"])
    assert os.stat(m.p("cached"))  # root
    with pytest.raises(FileNotFoundError):
        os.stat(m.p("nothing-here"))
    # Requests of others are refused (what the kernel has cached it answers itself).
    with pytest.raises(PermissionError):
        rfutil.run_as(65534, 65534, os.stat, m.p("nothing-there"))
    with pytest.raises(PermissionError):
        rfutil.run_as(65534, 65534, os.listdir, m.path)


def test_max_read(run_mounter, transport):
    m = start(run_mounter, transport, extra=["-o", "max_read=8192", "--max-read=8192"])
    data = random.Random(3).randbytes(100000)
    with open(m.p("big"), "wb") as f:
        f.write(data)
    ctl(m, "inval_inode big")
    fd = os.open(m.p("big"), os.O_RDONLY | os.O_DIRECT)
    try:
        assert os.pread(fd, 65536, 0) == data[:65536]
    finally:
        os.close(fd)
    assert 0 < int(xattr(m.path, "user.maxread")) <= 8192


def test_max_read_disagreement_ends_the_session(transport, tmp_path):
    """-o max_read without init() saying the same is refused, as libfuse 3.14 does."""
    mnt = rfutil.make_dir("mnt-")
    out = rfutil.expect_start_failure(
        [ringfuse_run(), "-o", tp_opts(transport), "--", llfs(), "-f", "-o",
         "max_read=8192", mnt], mnt + ".log", mnt)
    assert "max_read" in out and "llfs: loop returned -71" in out, out


def test_bad_ringfuse_option_refused(transport):
    """A typo in the ringfuse options fails the session, loudly, as a bad -o would."""
    mnt = rfutil.make_dir("mnt-")
    out = rfutil.expect_start_failure(
        [ringfuse_run(), "-o", "%s,uring_dpth=4" % tp_opts(transport), "--", llfs(), "-f",
         mnt], mnt + ".log", mnt)
    assert "RINGFUSE_OPTIONS: unknown option(s) 'uring_dpth=4'" in out, out


def test_daemonize(transport):
    """Without -f the program forks once mounted; ringfuse-run's stderr still gets the report."""
    if uring(transport):
        why = rfutil.uring_unusable_reason()
        if why:
            pytest.skip(why)
    mnt = rfutil.make_dir("mnt-")
    log = mnt + ".log"
    with open(log, "wb") as f:
        rc = subprocess.run([ringfuse_run(), "-o", tp_opts(transport), llfs(), mnt],
                            stdout=f, stderr=f, env=program_env(), timeout=30).returncode
    try:
        assert rc == 0
        assert rfutil.is_mounted(mnt)
        assert read(os.path.join(mnt, "iov-file")) == b"one-two-three"
    finally:
        rfutil.umount(mnt)
    deadline = time.monotonic() + 10
    text = ""
    while time.monotonic() < deadline:
        with open(log) as f:
            text = f.read()
        if "ringfuse-run: " in text:
            break
        time.sleep(0.05)
    assert "ringfuse-run: %s: transport %s" % (mnt, rfutil.base_transport(transport)) in text, text
    assert not rfutil.is_mounted(mnt)


def test_ringfuse_run_command_line():
    run = ringfuse_run()
    r = subprocess.run([run], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert r.returncode == 2 and "usage: ringfuse-run" in r.stderr
    r = subprocess.run([run, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert r.returncode == 0 and "usage: ringfuse-run" in r.stderr
    r = subprocess.run([run, "-x", "true"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    assert r.returncode == 2 and "unknown option" in r.stderr
    # The environment the program gets: ringfuse's library first, options merged.
    env = dict(program_env(), RINGFUSE_OPTIONS="stats")
    r = subprocess.run([run, "-o", "transport=dev", "-ouring_depth=4", "--", "sh", "-c",
                        'echo "$RINGFUSE_OPTIONS|$LD_LIBRARY_PATH"'], stdout=subprocess.PIPE,
                       universal_newlines=True, env=env)
    opts, path = r.stdout.strip().split("|")
    assert opts == "stats,transport=dev,uring_depth=4"
    assert path.split(":")[0] == os.path.dirname(run)
    # The report descriptor is set up unless -q.
    show = 'echo "${RINGFUSE_REPORT_FD:-none}"; ls /proc/self/fd'
    r = subprocess.run([run, "sh", "-c", show], stdout=subprocess.PIPE,
                       universal_newlines=True, env=program_env())
    assert r.stdout.split()[0] == "9" and "9" in r.stdout.split()[1:]
    r = subprocess.run([run, "-q", "sh", "-c", show], stdout=subprocess.PIPE,
                       universal_newlines=True, env=program_env())
    assert r.stdout.split()[0] == "none" and "9" not in r.stdout.split()[1:]
