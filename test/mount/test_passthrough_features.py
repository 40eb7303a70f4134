"""ringfuse-passthrough only: kernel passthrough (-o passthrough), O_DIRECT through the daemon,
and containment of the server in SOURCE.

Kernel passthrough is proven from the daemon's side: with -o debug every request it receives is
traced ("<- READ #..."), and -o stats prints the payload bytes it received and sent at exit. A
file read 64 MiB worth through a passthrough mount must leave no READ (and no WRITE) in the
trace, while the same load without passthrough must show them.

Containment tests use two sibling layouts,
    A/mnt (the mountpoint)   A/outside
    B/src (SOURCE)           B/outside
so a relative symlink "../outside" in SOURCE names A/outside when the kernel follows it through
the mount (as it must: symlinks are the client's business) and B/outside if the server followed
it. Nothing may ever appear in B/outside.
"""

import errno
import hashlib
import mmap
import os
import re
import stat
import subprocess
import time

import pytest

import rfutil
from rfutil import KiB, MiB, PAGE, make_file, raises_errno, rand, read_file, run_as

pytestmark = pytest.mark.filesystems("passthrough")

USER, GROUP = 1000, 1000

REFUSAL_RE = re.compile(r"ringfuse-passthrough: (kernel passthrough refused .*|the kernel offers "
                        r"no passthrough.*)")
TOTAL_RE = re.compile(r"ringfuse-stats: total: requests (\d+).*?\bbytes_in (\d+) bytes_out (\d+)")


# ---------------------------------------------------------------------------------------------
# helpers


def traced(m, opcode):
    """How many requests of this opcode the daemon's -o debug trace shows."""
    return len(re.findall(r"<- %s #" % opcode, m.daemon.output()))


def total_bytes(m):
    """(bytes_in, bytes_out) of the last 'total' statistics line (-o stats, daemon exited)."""
    found = TOTAL_RE.findall(m.daemon.output())
    assert found, "no statistics in the daemon log\n" + m.log_report()
    _, bytes_in, bytes_out = found[-1]
    return int(bytes_in), int(bytes_out)


def skip_if_refused(m):
    """Skip (with the daemon's own words) when the kernel would not do passthrough here."""
    got = REFUSAL_RE.search(m.daemon.output())
    if got:
        pytest.skip("kernel passthrough unavailable: " + got.group(1))


def open_fds(pid, settle=0.3, timeout=5.0):
    """The daemon's open descriptors, once the count held still for settle seconds (RELEASE
    travels in the background after close)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while True:
        n = len(os.listdir("/proc/%d/fd" % pid))
        now = time.monotonic()
        if n != last:
            last, since = n, now
        elif now - since >= settle or now > deadline:
            return n
        time.sleep(0.02)


def read_all(path):
    with open(path, "rb") as f:
        return f.read()


def stop(m):
    rc = m.unmount()
    assert rc == 0, "daemon exit status %r\n%s" % (rc, m.log_report())


def aligned_buf(size):
    return mmap.mmap(-1, max(PAGE, (size + PAGE - 1) // PAGE * PAGE))


# ---------------------------------------------------------------------------------------------
# (a) kernel passthrough: the data never reaches the daemon

FILE_SIZE = 4 * MiB
ROUNDS = 16  # x FILE_SIZE = 64 MiB read


def _read_load(m):
    """Write a 4 MiB file through the mount, then read it back 16 times, one open each (an open
    without keep_cache drops the page cache, so without passthrough every round is READs)."""
    data = rand(FILE_SIZE, 11)
    want = hashlib.sha256(data).hexdigest()
    make_file(m.p("big"), data)
    for _ in range(ROUNDS):
        assert hashlib.sha256(read_all(m.p("big"))).hexdigest() == want
    assert read_file(os.path.join(m.src, "big")) == data


def test_kernel_passthrough_skips_daemon(mounter, transport, fs):
    m = mounter(transport, fs, opts=("passthrough", "debug", "stats"))
    _read_load(m)
    stop(m)
    skip_if_refused(m)
    reads, writes = traced(m, "READ"), traced(m, "WRITE")
    bytes_in, bytes_out = total_bytes(m)
    assert reads == 0 and writes == 0, (
        "%d READ and %d WRITE requests reached the daemon with -o passthrough\n%s" %
        (reads, writes, m.log_report()))
    assert traced(m, "OPEN") >= ROUNDS  # the opens themselves still go through the daemon
    assert bytes_in == 0
    assert bytes_out < 1 * MiB, "%d bytes of replies for %d MiB read" % (
        bytes_out, ROUNDS * FILE_SIZE // MiB)


def test_without_passthrough_reads_reach_daemon(mounter, transport, fs):
    """The control for the test above: the same load, served by the daemon."""
    m = mounter(transport, fs, opts=("debug", "stats"))
    _read_load(m)
    stop(m)
    assert traced(m, "READ") > 0 and traced(m, "WRITE") > 0
    bytes_in, bytes_out = total_bytes(m)
    assert bytes_in >= FILE_SIZE
    assert bytes_out >= ROUNDS * FILE_SIZE


def test_passthrough_and_writeback_exclude_each_other(mounter, transport, fs):
    m = mounter(transport, fs, opts=("passthrough", "writeback", "debug"))
    make_file(m.p("f"), b"x" * 100000)
    assert read_all(m.p("f")) == b"x" * 100000
    stop(m)
    skip_if_refused(m)
    assert "exclude each other; using passthrough" in m.daemon.output()
    assert traced(m, "READ") == 0 and traced(m, "WRITE") == 0


@pytest.mark.parametrize("opts", [(), ("writeback",)], ids=["write-through", "writeback"])
def test_buffered_writes_do_not_ask_for_capabilities(mounter, transport, fs, opts):
    """Without kernel passthrough the daemon takes on clearing privileges on write
    (FUSE_HANDLE_KILLPRIV_V2): the kernel then stops asking for security.capability before
    every write(2), which cost a round trip each. The clearing itself is proven in
    test_attacks.py (test_suid_sgid_cleared_as_on_a_local_filesystem)."""
    m = mounter(transport, fs, opts=("debug",) + opts)
    fd = os.open(m.p("f"), os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        for i in range(50):
            os.pwrite(fd, b"w" * 100, i * 100)
    finally:
        os.close(fd)
    assert read_file(m.p("f")) == b"w" * 5000
    stop(m)
    asked = len(re.findall(r"<- GETXATTR #\d+ .*name 'security.capability'",
                           m.daemon.output()))
    assert asked <= 1, "%d GETXATTR security.capability for 50 writes" % asked


def test_passthrough_shared_opens(mounter, transport, fs):
    """Every open of one inode shares one backing file (the kernel refuses two): different
    modes, O_APPEND, O_DIRECT, a second name, all at once; then open/close cycles leak nothing."""
    m = mounter(transport, fs, opts=("passthrough", "stats"))
    path = m.p("f")
    make_file(path, b"0123456789")
    os.link(path, m.p("g"))
    ro = os.open(path, os.O_RDONLY)
    rw = os.open(path, os.O_RDWR)
    ap = os.open(m.p("g"), os.O_WRONLY | os.O_APPEND)
    dio = os.open(path, os.O_RDWR | os.O_DIRECT)
    try:
        os.pwrite(rw, b"AB", 0)
        assert os.pread(ro, 10, 0) == b"AB23456789"
        os.write(ap, b"tail")
        assert os.fstat(ro).st_size == 14
        assert os.pread(ro, 20, 0) == b"AB23456789tail"
        buf = aligned_buf(PAGE)
        buf[:4] = b"DDDD"
        assert os.pwritev(dio, [buf], PAGE) == PAGE
        assert os.fstat(ro).st_size == 2 * PAGE
        assert os.pread(ro, 4, PAGE) == b"DDDD"
        assert os.preadv(dio, [buf], 0) == PAGE
        assert buf[:14] == b"AB23456789tail"
        os.ftruncate(rw, 5)
        assert os.fstat(ro).st_size == 5
        assert os.pread(ro, 100, 0) == b"AB234"
    finally:
        for fd in (ro, rw, ap, dio):
            os.close(fd)
    assert read_file(os.path.join(m.src, "f")) == b"AB234"

    base = open_fds(m.pid)
    for i in range(200):
        fd = os.open(path if i % 2 else m.p("g"), os.O_RDWR)
        os.pwrite(fd, b"%03d" % (i % 1000), 0)
        os.close(fd)
    assert read_file(path)[:3] == b"199"
    assert open_fds(m.pid) <= base, "the daemon holds more descriptors after 200 open/close"
    stop(m)
    skip_if_refused(m)
    assert total_bytes(m)[0] == 0, "write data reached the daemon"


def test_passthrough_mmap_unlink_rename(mounter, transport, fs):
    m = mounter(transport, fs, opts=("passthrough",))
    path = m.p("f")
    make_file(path, b"\0" * (2 * PAGE))
    fd = os.open(path, os.O_RDWR)
    try:
        mp = mmap.mmap(fd, 2 * PAGE)
        mp[PAGE:PAGE + 5] = b"hello"
        mp.flush()
        mp.close()
        assert read_file(os.path.join(m.src, "f"))[PAGE:PAGE + 5] == b"hello"
        os.rename(path, m.p("moved"))
        os.unlink(m.p("moved"))
        os.pwrite(fd, b"still", 0)
        assert os.pread(fd, 5, 0) == b"still"
        assert os.fstat(fd).st_nlink == 0
    finally:
        os.close(fd)
    assert os.listdir(m.src) == []
    stop(m)
    skip_if_refused(m)


def test_passthrough_write_by_other_user_clears_suid(mounter, transport, fs):
    """The kernel does the write, but still drops suid/sgid for a writer without CAP_FSETID,
    as a local filesystem would."""
    m = mounter(transport, fs, opts=("passthrough",))
    path = m.p("prog")
    make_file(path, b"#!/bin/sh\n")
    os.chmod(path, 0o6777)

    def append():
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, b"echo\n")
        finally:
            os.close(fd)

    run_as(USER, GROUP, append)
    mode = os.stat(os.path.join(m.src, "prog")).st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID), oct(mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(mode)
    assert read_file(path) == b"#!/bin/sh\necho\n"
    stop(m)
    skip_if_refused(m)


@pytest.mark.transports("dev")
def test_passthrough_refused_for_some_files(mounter, transport, fs):
    """A backing file the kernel will not take (one already stacked: overlayfs inside SOURCE)
    is served by the daemon, with one message per reason; other files still pass through."""
    base = rfutil.make_dir("ovl-")
    lower, upper, work = (os.path.join(base, d) for d in ("lower", "upper", "work"))
    for d in (lower, upper, work):
        os.mkdir(d)
    m = mounter(transport, fs, opts=("passthrough", "debug", "stats"))
    merged = os.path.join(m.src, "ovl")
    os.mkdir(merged)
    r = subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                        "lowerdir=%s,upperdir=%s,workdir=%s" % (lower, upper, work), merged],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if r.returncode != 0:
        pytest.skip("cannot mount overlayfs: " + r.stdout.strip())
    try:
        stacked = os.path.join(m.path, "ovl", "x")
        make_file(stacked, b"s" * MiB)
        assert read_all(stacked) == b"s" * MiB
        assert read_all(stacked) == b"s" * MiB  # a second open: still served, no second message
        plain = rand(2 * MiB, 5)
        make_file(m.p("y"), plain)
        for _ in range(4):
            assert read_all(m.p("y")) == plain
        stop(m)
    finally:
        if m.mounted():
            m.unmount()
        if subprocess.run(["umount", merged]).returncode != 0:
            rfutil.umount(merged, lazy=True)
    out = m.daemon.output()
    for why in REFUSAL_RE.findall(out):
        if os.strerror(errno.ELOOP) not in why:
            pytest.skip("kernel passthrough unavailable: " + why)
    assert out.count("kernel passthrough refused") == 1, out
    assert traced(m, "READ") > 0  # the stacked file went through the daemon...
    _, bytes_out = total_bytes(m)
    assert MiB <= bytes_out < 3 * MiB, bytes_out  # ...and y (8 MiB read) did not


# ---------------------------------------------------------------------------------------------
# O_DIRECT through the daemon: transport buffers that are not aligned get bounced


@pytest.mark.parametrize("size", [PAGE, 64 * KiB, MiB])
def test_direct_io_through_daemon(mnt, size):
    path = mnt.p("d")
    data = rand(3 * size, size)
    make_file(path, b"")
    fd = os.open(path, os.O_RDWR | os.O_DIRECT)
    buf = aligned_buf(size)
    try:
        for i in range(3):
            buf[:size] = data[i * size:(i + 1) * size]
            assert os.pwritev(fd, [memoryview(buf)[:size]], i * size) == size
        os.fsync(fd)
        os.fdatasync(fd)
        assert read_file(os.path.join(mnt.src, "d")) == data
        for i in (2, 0, 1):
            buf[:size] = b"\0" * size
            assert os.preadv(fd, [memoryview(buf)[:size]], i * size) == size
            assert buf[:size] == data[i * size:(i + 1) * size]
        # A file end that is not block aligned: the read stops there.
        os.ftruncate(fd, 3 * size - 100)
        assert os.preadv(fd, [memoryview(buf)[:size]], 2 * size) == size - 100
        assert buf[:size - 100] == data[2 * size:3 * size - 100]
        assert os.preadv(fd, [memoryview(buf)[:size]], 3 * size) == 0
    finally:
        os.close(fd)
        buf.close()


@pytest.mark.transports("dev")
def test_refuses_no_default_permissions(transport, fs):
    """Lookups and reads run with the daemon's rights on the strength of the kernel's checks:
    without them every caller could read all of SOURCE as root."""
    if os.geteuid() != 0:
        pytest.skip("the refusal concerns a daemon running as root")
    mnt, src = rfutil.make_dir("mnt-"), rfutil.make_dir("src-")
    argv = rfutil.daemon_argv(fs, mnt, transport, opts=("no_default_permissions",), src=src)
    out = rfutil.expect_start_failure(argv, mnt + ".log", mnt)
    assert "no_default_permissions" in out and "refused" in out, out


@pytest.fixture
def tmpfs_src():
    """A source directory on a memory-backed filesystem (tmpfs), made and removed here."""
    d = rfutil.make_dir("tmpfs-")
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "ringfuse-test", d],
                       check=True, stderr=subprocess.PIPE)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip("cannot mount a tmpfs here: %s" % getattr(e, "stderr", e))
    yield d
    subprocess.run(["umount", "-l", d], check=False)


def io_workers(pid):
    """Names of the daemon's io_uring worker threads (io-wq: "iou-wrk-*")."""
    names = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                names.append(f.read().strip())
        except OSError:
            pass
    return [n for n in names if n.startswith("iou-wrk")]


def test_memory_backed_source_io(mounter, transport, fs, tmpfs_src):
    """A tmpfs source: tmpfs cannot do I/O without blocking the way io_uring asks, so the ring
    would hand every read and write to a worker thread; the daemon does them on its own
    thread instead. Buffered and O_DIRECT data must still arrive intact both ways."""
    m = mounter(transport, fs, opts=("cache=none",), src=tmpfs_src)
    data = rand(2 * MiB + 123, 21)
    make_file(m.p("buffered"), data)
    assert read_file(m.p("buffered")) == data
    assert read_file(os.path.join(tmpfs_src, "buffered")) == data

    size = 64 * KiB
    fd = os.open(m.p("direct"), os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    buf = aligned_buf(size)
    try:
        for i in range(8):
            buf[:size] = data[i * size:(i + 1) * size]
            assert os.pwritev(fd, [memoryview(buf)[:size]], i * size) == size
        os.fsync(fd)
        os.posix_fallocate(fd, 8 * size, size)
        assert os.fstat(fd).st_size == 9 * size
        for i in (5, 0, 7):
            buf[:size] = b"\0" * size
            assert os.preadv(fd, [memoryview(buf)[:size]], i * size) == size
            assert buf[:size] == data[i * size:(i + 1) * size]
    finally:
        os.close(fd)
        buf.close()
    assert read_file(os.path.join(tmpfs_src, "direct"))[:8 * size] == data[:8 * size]
    # uring-rw has workers of its own (its /dev/fuse reads block), and so has one thread
    # serving everything (uring-t1): one worker, blocked in its /dev/fuse read all along, so
    # file I/O sent to io-wq would have needed another.
    if transport == "uring":
        assert io_workers(m.pid) == [], "file I/O on a tmpfs source went to io-wq workers"
    elif transport == "uring-t1":
        assert len(io_workers(m.pid)) <= 1, "file I/O on a tmpfs source went to io-wq workers"
    stop(m)


def flushes_of_written_files(m, n=3):
    """Create, write and close n files on m; the FLUSH requests the daemon then received."""
    for i in range(n):
        fd = os.open(m.p("w%d" % i), os.O_CREAT | os.O_WRONLY, 0o644)
        try:
            os.write(fd, b"x" * 1000)
        finally:
            os.close(fd)
        assert read_file(m.p("w%d" % i)) == b"x" * 1000
    stop(m)
    return len(re.findall(r"<- FLUSH #", m.daemon.output()))


def test_close_sends_flush_only_where_it_can_matter(mounter, transport, fs, tmpfs_src):
    """close(2) of a file opened to write costs a FLUSH round trip only where the backing
    filesystem may have something to flush: never on tmpfs (nothing is written back there),
    always on a disk filesystem's source (NFS-like close-to-open and write-back errors)."""
    m = mounter(transport, fs, opts=("debug", "cache=none"), src=tmpfs_src)
    assert flushes_of_written_files(m) == 0
    m = mounter(transport, fs, opts=("debug", "cache=none"))
    kind = subprocess.run(["stat", "-f", "-c", "%T", m.src], stdout=subprocess.PIPE,
                          text=True, check=True).stdout.strip()
    if kind in ("tmpfs", "ramfs"):
        pytest.skip("the default source is memory-backed here (%s)" % kind)
    assert flushes_of_written_files(m) == 3


# ---------------------------------------------------------------------------------------------
# (b) containment


@pytest.fixture
def layout(mounter, transport, fs):
    """Factory: (mount, A/outside, B/outside) for the sibling layout of the module docstring."""

    def make(opts=()):
        a, b = rfutil.make_dir("ptA-"), rfutil.make_dir("ptB-")
        for d in (os.path.join(a, "mnt"), os.path.join(a, "outside"), os.path.join(b, "src"),
                  os.path.join(b, "outside")):
            os.mkdir(d)
            os.chmod(d, 0o755)
        m = mounter(transport, fs, opts=opts, path=os.path.join(a, "mnt"),
                    src=os.path.join(b, "src"))
        return m, os.path.join(a, "outside"), os.path.join(b, "outside")

    return make


def test_symlinks_are_followed_by_the_client(layout):
    m, client_out, server_out = layout()
    make_file(os.path.join(server_out, "secret"), b"server side")
    os.symlink("../outside", os.path.join(m.src, "rel"))
    os.symlink(os.path.join(server_out, "secret"), os.path.join(m.src, "abs"))

    assert stat.S_ISLNK(os.lstat(m.p("rel")).st_mode)
    assert os.readlink(m.p("rel")) == "../outside"
    # An absolute target is the same path for everybody: like on a local filesystem.
    assert read_file(m.p("abs")) == b"server side"
    raises_errno(errno.ELOOP, os.open, m.p("abs"), os.O_RDONLY | os.O_NOFOLLOW)

    # Through a relative link the kernel lands next to the mountpoint, not next to SOURCE.
    os.mkdir(m.p("rel", "dir"))
    make_file(m.p("rel", "file"), b"client")
    assert sorted(os.listdir(client_out)) == ["dir", "file"]
    assert os.listdir(server_out) == ["secret"]
    assert sorted(os.listdir(m.src)) == ["abs", "rel"]


@pytest.mark.parametrize("cache", ["always", "none"])
def test_planted_symlink_is_not_followed(layout, cache):
    """Names the kernel believes absent (a cached negative entry) or a regular file (a cached
    positive one) are replaced by symlinks behind its back: every operation that reaches the
    server with that name must act on the name itself, never on the link's target."""
    m, client_out, server_out = layout(opts=("cache=" + cache,))
    src = m.src
    names = ("create", "mkdir", "mknod", "symlink", "link", "rename")
    for n in names:
        raises_errno(errno.ENOENT, os.stat, m.p(n))  # negative entries, with cache=always
    make_file(m.p("regular"), b"old")
    os.stat(m.p("regular"))
    make_file(m.p("other"), b"other")
    for n in names:
        os.symlink("../outside/" + n, os.path.join(src, n))
    os.rename(os.path.join(src, "regular"), os.path.join(src, "regular.moved"))
    os.symlink("../outside/regular", os.path.join(src, "regular"))

    def attempt(fn, *args):
        try:
            fn(*args)
        except OSError:
            pass  # refusing is fine; going through the link on the server side is not

    attempt(lambda: make_file(m.p("create"), b"pwned"))
    attempt(lambda: make_file(m.p("regular"), b"pwned"))
    attempt(os.mkdir, m.p("mkdir"))
    attempt(os.mkfifo, m.p("mknod"))
    attempt(os.symlink, "x", m.p("symlink"))
    attempt(os.link, m.p("other"), m.p("link"))
    attempt(os.rename, m.p("other"), m.p("rename"))

    assert os.listdir(server_out) == [], "the server wrote outside SOURCE"
    if cache == "always":
        # The kernel acted on the old object it knows, which is where the data must be.
        assert read_file(os.path.join(src, "regular.moved")) in (b"old", b"pwned")
    for n in names[:-1]:
        assert os.readlink(os.path.join(src, n)) == "../outside/" + n, n
    # rename replaces the link itself; the target is untouched.
    st = os.lstat(os.path.join(src, "rename"))
    assert stat.S_ISLNK(st.st_mode) or read_file(os.path.join(src, "rename")) == b"other"


@pytest.mark.parametrize("cache", ["always", "none"])
def test_replaced_directory_does_not_redirect(layout, cache):
    """A directory the kernel knows is renamed away inside SOURCE and a symlink to outside takes
    its name: operations on the kernel's inode keep acting on the moved directory."""
    m, client_out, server_out = layout(opts=("cache=" + cache,))
    os.mkdir(m.p("d"))
    make_file(m.p("d", "old"), b"1")
    dfd = os.open(m.p("d"), os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.stat(m.p("d", "old"))
        os.rename(os.path.join(m.src, "d"), os.path.join(m.src, "d.moved"))
        os.symlink("../outside", os.path.join(m.src, "d"))

        # Through the directory descriptor: always the kernel's (the moved) inode.
        fd = os.open("new", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=dfd)
        os.write(fd, b"via dirfd")
        os.close(fd)
        os.mkdir("sub", dir_fd=dfd)
        os.rename("old", "renamed", src_dir_fd=dfd, dst_dir_fd=dfd)
        os.unlink("renamed", dir_fd=dfd)
        assert sorted(os.listdir(os.path.join(m.src, "d.moved"))) == ["new", "sub"]
        # Through the path: cached, the old inode; revalidated, the new symlink, followed by
        # the kernel to A/outside. Never B/outside.
        try:
            make_file(m.p("d", "bypath"), b"x")
        except OSError:
            pass
        assert os.listdir(server_out) == []
        moved = os.listdir(os.path.join(m.src, "d.moved"))
        assert ("bypath" in moved) or ("bypath" in os.listdir(client_out))
    finally:
        os.close(dfd)


def test_rename_and_link_across_the_mount_boundary(layout):
    m, client_out, server_out = layout()
    make_file(m.p("in"), b"i")
    make_file(os.path.join(client_out, "out"), b"o")
    raises_errno(errno.EXDEV, os.rename, m.p("in"), os.path.join(client_out, "x"))
    raises_errno(errno.EXDEV, os.rename, os.path.join(client_out, "out"), m.p("x"))
    raises_errno(errno.EXDEV, os.link, m.p("in"), os.path.join(client_out, "x"))
    raises_errno(errno.EXDEV, os.link, os.path.join(client_out, "out"), m.p("x"))
    raises_errno(errno.EXDEV, rfutil.renameat2, m.p("in"), os.path.join(client_out, "out"),
                 rfutil.RENAME_EXCHANGE)
    assert read_file(m.p("in")) == b"i"
    assert os.listdir(m.src) == ["in"]
    assert os.listdir(client_out) == ["out"]
    assert os.listdir(server_out) == []
