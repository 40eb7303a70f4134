"""ringfuse-memfs under Valgrind's memcheck, mounted for real.

The daemon runs as `valgrind --leak-check=full --error-exitcode=99
--errors-for-leak-kinds=definite ringfuse-memfs -f -o transport=X`, serves a short workload
that touches every kind of request (create, write, read, rename, xattrs, links, readdir,
unlink, rmdir), is unmounted, and must then exit 0 with a Valgrind log that shows no invalid
access, no use of uninitialised memory and no definite leak.

Skipped without valgrind (scripts/deps.sh installs it) and for sanitizer builds (Valgrind
cannot run ASan/TSan binaries). The io_uring transports (uring, uring-rw) are skipped unless
RINGFUSE_VALGRIND_URING=1: Valgrind (3.19 at least) holds its global lock across a blocking
io_uring_enter(), so the first queue thread that waits for completions stops every other
thread of the daemon, including the one that would register the remaining queues, and the
mount deadlocks (the same hang as a two-thread liburing program under Valgrind). A newer
Valgrind may cope: the variable lets it be tried. RINGFUSE_BUILD selects the build directory,
as for every mount test.
"""

import errno
import os
import re
import shutil
import time

import pytest

import rfutil

VALGRIND_ARGS = ("--leak-check=full", "--error-exitcode=99", "--errors-for-leak-kinds=definite",
                 "--track-fds=no", "--num-callers=30")
# Valgrind slows the daemon down some 20-50 times: generous limits for start and exit.
START_TIMEOUT = 60.0
EXIT_TIMEOUT = 60.0
WORKLOAD_TIMEOUT = 180.0

BAD_VALGRIND = re.compile(r"Invalid (read|write|free)|uninitialised|Mismatched free|"
                          r"overlap in memcpy|Syscall param .* points to unaddressable|"
                          r"definitely lost: [1-9]|Process terminating")


def _sanitized(binary):
    with open(binary, "rb") as f:
        data = f.read()
    return any(s in data for s in (b"__asan_init", b"__tsan_init", b"__msan_init"))


def _workload(root):
    """Every request kind a little; returns None (raises on a wrong answer)."""
    d = os.path.join(root, "dir")
    os.mkdir(d, 0o755)
    data = bytes(range(256)) * 600  # 150 KiB: several WRITEs and READs
    f = os.path.join(d, "file")
    fd = os.open(f, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
    try:
        rfutil.write_all(fd, data)
        rfutil.write_all(fd, b"tail", off=1 << 20)  # a hole in between
        os.fsync(fd)
        assert rfutil.pread_all(fd, len(data), 0) == data
        assert rfutil.pread_all(fd, 4, 1 << 20) == b"tail"
        os.ftruncate(fd, 4096)
    finally:
        os.close(fd)
    assert rfutil.read_direct(f) == data[:4096]
    os.rename(f, os.path.join(d, "renamed"))
    f = os.path.join(d, "renamed")
    os.setxattr(f, "user.colour", b"blue")
    os.setxattr(f, "user.size", b"x" * 300)
    assert os.getxattr(f, "user.colour") == b"blue"
    assert sorted(os.listxattr(f)) == ["user.colour", "user.size"]
    os.removexattr(f, "user.size")
    with pytest.raises(OSError) as ei:
        os.getxattr(f, "user.size")
    assert ei.value.errno == errno.ENODATA
    os.link(f, os.path.join(d, "hard"))
    os.symlink("renamed", os.path.join(d, "soft"))
    assert os.readlink(os.path.join(d, "soft")) == "renamed"
    os.chmod(f, 0o600)
    os.utime(f, (1000000000, 1000000000))
    for i in range(40):
        rfutil.make_file(os.path.join(d, "n%02d" % i), b"%d" % i)
    names = rfutil.readdir_all(d)
    assert set(names) == {".", "..", "renamed", "hard", "soft"} | {"n%02d" % i for i in range(40)}
    assert os.stat(f).st_nlink == 2
    os.statvfs(root)
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)
    assert os.listdir(root) == []


@pytest.mark.transports("dev", "uring", "uring-rw")
def test_memfs_under_valgrind(transport):
    valgrind = shutil.which("valgrind")
    if not valgrind:
        pytest.skip("valgrind is not installed (scripts/deps.sh installs it)")
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.skip("needs root and /dev/fuse")
    binary = rfutil.fs_binary("memfs")
    if not os.access(binary, os.X_OK):
        pytest.skip("%s not built" % binary)
    if _sanitized(binary):
        pytest.skip("%s is built with a sanitizer: Valgrind cannot run it" % binary)
    if transport != "dev" and os.environ.get("RINGFUSE_VALGRIND_URING") != "1":
        pytest.skip("valgrind holds its lock across a blocking io_uring_enter(): the %s "
                    "transport's threads starve each other and the mount deadlocks "
                    "(RINGFUSE_VALGRIND_URING=1 tries anyway)" % transport)
    if rfutil.base_transport(transport) == "uring":
        why = rfutil.uring_unusable_reason()
        if why:
            pytest.skip("FUSE over io_uring unavailable: " + why)

    mnt = rfutil.make_dir("vg-mnt-")
    vg_log = mnt + ".valgrind.log"
    argv = [valgrind, "--log-file=" + vg_log] + list(VALGRIND_ARGS) + [
        binary, "-f", "-o", ",".join(rfutil.transport_opts(transport)), mnt]
    daemon = rfutil.Daemon(argv, mnt + ".log")
    ok = False
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not rfutil.is_mounted(mnt) or "transport " + transport not in daemon.output():
            assert daemon.alive(), "daemon exited with %s before mounting\n%s" % (
                daemon.proc.returncode, daemon.log_tail())
            assert time.monotonic() < deadline, "not mounted with transport %s after %.0fs\n%s" % (
                transport, START_TIMEOUT, daemon.log_tail())
            time.sleep(0.05)
        logged = set(rfutil.TRANSPORT_RE.findall(daemon.output()))
        assert logged == {transport}, "asked for %s, daemon logged %s" % (transport, logged)

        res = rfutil.call_with_timeout(_workload, (mnt,), WORKLOAD_TIMEOUT)
        if res == "timeout":
            rfutil.abort_connection(rfutil.conn_id(mnt))
            pytest.fail("workload hung under valgrind for %.0fs\n%s" % (WORKLOAD_TIMEOUT,
                                                                      daemon.log_tail()))
        if isinstance(res, BaseException):
            raise res

        r = rfutil.umount(mnt)
        assert r.returncode == 0, "umount failed: %s" % r.stdout
        rc = daemon.wait(EXIT_TIMEOUT)
        assert rc is not None, "daemon still running %.0fs after unmount" % EXIT_TIMEOUT
        with open(vg_log, errors="replace") as f:
            report = f.read()
        bad = [l for l in report.splitlines() if BAD_VALGRIND.search(l)]
        assert rc != 99, "valgrind found errors:\n%s" % report[-6000:]
        assert rc == 0, "daemon exited with %d\n%s\n%s" % (rc, daemon.log_tail(), report[-3000:])
        assert not bad, "valgrind report:\n%s" % report[-6000:]
        assert "ERROR SUMMARY: 0 errors" in report, report[-3000:]
        assert ("All heap blocks were freed" in report or
                re.search(r"definitely lost: 0 bytes", report)), report[-3000:]
        assert not daemon.bad_log_lines(), "daemon log:\n%s" % daemon.log_tail()
        ok = True
    finally:
        if rfutil.is_mounted(mnt):
            rfutil.abort_connection(rfutil.conn_id(mnt))
            rfutil.umount(mnt, lazy=True)
        daemon.reap()
        if ok and not os.environ.get("RINGFUSE_KEEP_LOGS"):
            for p in (vg_log, mnt + ".log"):
                try:
                    os.unlink(p)
                except OSError:
                    pass
