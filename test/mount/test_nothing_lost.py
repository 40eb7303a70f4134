"""Nothing acknowledged is lost.

Killed daemon (passthrough, every transport, with and without the kernel writeback cache): a
client appends random data to several files, out of order, and fsyncs them now and then; the
daemon is killed with SIGKILL in the middle of it. Afterwards every byte an fsync covered is in
the source directory, byte for byte. Without the writeback cache every write that returned is
there too (writes are synchronous to the server then: a reply before the data reached the
source file would be a bug).

Clean unmount (every filesystem and transport): data written without fsync, through write()
and through a shared mapping never msync'ed, is all there: for passthrough in the source
directory after the unmount, for memfs when read back through the mount (page cache dropped,
and with O_DIRECT) before it.
"""

import mmap
import os
import random
import signal
import time

import pytest

import rfutil
from fsx import Board, Clients, KiB, MiB, env_seed, recording
from rfutil import read_file, umount

NFILES = 6
MAX_FILE = 6 * MiB
KILL_AT = (0.15, 0.75)  # share of all the data written when the daemon is killed

CACHES = {"default": (), "writeback": ("writeback",)}


def content(seed, k, n=MAX_FILE):
    """The first n bytes of what file k holds when complete (written in this order, never
    changed). randbytes(n) is not a prefix of randbytes(N): always draw MAX_FILE."""
    return random.Random(seed * 31 + k).randbytes(MAX_FILE)[:n]


def writer(seed, root, board):
    """Append content(seed, k) to files w0..w<NFILES-1> in random pieces (each piece's halves
    written out of order), fsync now and then. Board slot k: bytes of file k covered by an
    fsync that returned; slot NFILES + k: bytes of file k whose writes returned. Runs until
    the stop flag or the first error."""
    rng = random.Random(seed)
    data = [content(seed, k) for k in range(NFILES)]
    fds = [os.open(os.path.join(root, "w%d" % k), os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
           for k in range(NFILES)]
    pos = [0] * NFILES
    try:
        while not board.stopped():
            k = rng.randrange(NFILES)
            n = min(rng.choice((rng.randint(1, 4 * KiB), rng.randint(1, 200 * KiB),
                                rng.randint(64 * KiB, 1200 * KiB))), MAX_FILE - pos[k])
            if n > 0:
                half = rng.randint(0, n)
                p = pos[k]
                rfutil.write_all(fds[k], data[k][p + half:p + n], p + half)
                rfutil.write_all(fds[k], data[k][p:p + half], p)
                pos[k] = p + n
                board.bump(NFILES + k, pos[k] - board.progress(NFILES + k))
            if rng.random() < 0.15:
                j = rng.randrange(NFILES)
                (os.fsync if rng.random() < 0.5 else os.fdatasync)(fds[j])
                board.bump(j, pos[j] - board.progress(j))
            if all(p >= MAX_FILE for p in pos):
                break
    except OSError as e:
        return {"error": rfutil.eno(e), "written": sum(pos)}
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass
    return {"error": None, "written": sum(pos)}


def first_difference(a, b):
    n = min(len(a), len(b))
    for i in range(0, n, 4096):
        if a[i:i + 4096] != b[i:i + 4096]:
            return next(j for j in range(i, min(i + 4096, n)) if a[j] != b[j])
    return n if len(a) != len(b) else None


@pytest.mark.filesystems("passthrough")
@pytest.mark.parametrize("cache", list(CACHES))
def test_fsynced_data_survives_sigkill(mounter, transport, fs, cache):
    m = mounter(transport, fs, opts=CACHES[cache])
    seed = env_seed("RINGFUSE_LOST_SEED")
    board = Board(2 * NFILES)
    with recording("nothing-lost", test="sigkill[%s-%s]" % (transport, cache), seed=seed,
                   faults=1) as rec:
        cl = Clients(lambda i: writer(seed, m.path, board), 1).start()
        try:
            # Kill once a random share of the data is written: the writer is mid-stream.
            target = int(NFILES * MAX_FILE * random.Random(seed).uniform(*KILL_AT))
            deadline = time.monotonic() + 30.0
            while (sum(board.progress(k) for k in range(NFILES)) == 0 or
                   sum(board.progress(NFILES + k) for k in range(NFILES)) < target):
                assert time.monotonic() < deadline, (
                    "the writer did not get %d bytes and an fsync done in 30s\n%s" % (
                        target, m.log_report()))
                time.sleep(0.001)
            m.expect_clean = False
            m.allow_errors = True
            acked_at_kill = sum(board.progress(NFILES + k) for k in range(NFILES))
            os.kill(m.pid, signal.SIGKILL)
            assert m.wait_exit() == -signal.SIGKILL
            # Let the writer run into the dead connection on its own before it is told to
            # stop (it may not have been scheduled while the daemon was dying).
            cl.wait_exited(10.0)
        finally:
            board.stop()
            results, problems = cl.join(20.0, on_hang=m.abort)
        assert not problems, "the writer failed or hung: %s" % problems
        synced = [board.progress(k) for k in range(NFILES)]
        acked = [board.progress(NFILES + k) for k in range(NFILES)]
        r = umount(m.path)
        assert r.returncode == 0, "umount after SIGKILL: " + r.stdout
        bad = []
        for k in range(NFILES):
            got = read_file(os.path.join(m.src, "w%d" % k))
            # fsync'ed bytes always; without the writeback cache, every acknowledged byte.
            must = synced[k] if cache == "writeback" else acked[k]
            want = content(seed, k, must)
            d = first_difference(got[:must], want)
            if d is not None:
                bad.append("w%d: source holds %d bytes; of the %d that must be there (%d "
                           "fsync'ed, %d acknowledged) the first wrong or missing one is at "
                           "%d" % (k, len(got), must, synced[k], acked[k], d))
        rec.update(bytes_synced=sum(synced), bytes_acknowledged=sum(acked),
                   writer_error=results[0]["error"] if results[0] else None)
        assert acked_at_kill < NFILES * MAX_FILE, "the writer was done before the kill"
        # Without the writeback cache every write reaches the daemon, so the writer must have
        # noticed its death (with it, writes into the page cache go on succeeding).
        assert cache == "writeback" or results[0]["error"], (
            "the writer saw no error after the daemon was killed: %s" % results[0])
        assert not bad, "seed %d (RINGFUSE_LOST_SEED=%d), %s cache:\n%s" % (
            seed, seed, cache, "\n".join(bad))
        # The data reads back the same through a new mount of the same source.
        m2 = mounter(transport, fs, path=m.path, src=m.src, opts=CACHES[cache])
        for k in range(NFILES):
            got = rfutil.read_direct(m2.p("w%d" % k))
            assert got[:synced[k]] == content(seed, k, synced[k]), "w%d through a new mount" % k


def write_set(root, seed):
    """Write a few files without fsync: plain writes (sparse ones too), and a shared mapping
    written but never msync'ed. Returns {name: expected bytes}."""
    rng = random.Random(seed)
    want = {}
    for k in range(4):
        name = "plain%d" % k
        model = bytearray()
        fd = os.open(os.path.join(root, name), os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
        try:
            for _ in range(rng.randint(1, 12)):
                off = rng.randint(0, len(model) + 300 * KiB)
                data = rng.randbytes(rng.randint(1, 700 * KiB))
                rfutil.write_all(fd, data, off)
                if off + len(data) > len(model):
                    model.extend(bytes(off + len(data) - len(model)))
                model[off:off + len(data)] = data
        finally:
            os.close(fd)
        want[name] = bytes(model)
    for k in range(2):
        name = "mapped%d" % k
        size = rng.randint(1, 3 * MiB)
        data = rng.randbytes(size)
        fd = os.open(os.path.join(root, name), os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
        try:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size)
            mm[:] = data
            mm.close()  # munmap without msync: the pages are dirty in the page cache
        finally:
            os.close(fd)
        want[name] = data
    return want


def test_clean_unmount_keeps_everything(mounter, transport, fs):
    clean_unmount(mounter, transport, fs, "default")


@pytest.mark.filesystems("passthrough")
def test_clean_unmount_keeps_everything_writeback(mounter, transport, fs):
    clean_unmount(mounter, transport, fs, "writeback")


def clean_unmount(mounter, transport, fs, cache):
    m = mounter(transport, fs, opts=CACHES[cache])
    seed = env_seed("RINGFUSE_LOST_SEED")
    with recording("nothing-lost", test="clean-unmount[%s-%s-%s]" % (transport, fs, cache),
                   seed=seed) as rec:
        want = write_set(m.path, seed)
        rec["bytes_written"] = sum(len(v) for v in want.values())
        if rfutil.base_fs(fs) == "memfs":
            # memfs keeps nothing after the unmount: read it back through the mount, from
            # the daemon (page cache dropped, and O_DIRECT).
            for name, data in want.items():
                rfutil.drop_cache(m.p(name))
                assert read_file(m.p(name)) == data, "%s (buffered, seed %d)" % (name, seed)
                assert rfutil.read_direct(m.p(name)) == data, "%s (O_DIRECT, seed %d)" % (
                    name, seed)
        r = umount(m.path)
        assert r.returncode == 0, r.stdout
        rc = m.wait_exit()
        assert rc == 0, "exit status %s after umount\n%s" % (rc, m.log_report())
        if fs == "passthrough":
            for name, data in want.items():
                got = read_file(os.path.join(m.src, name))
                d = first_difference(got, data)
                assert d is None, ("%s in the source after a clean unmount: %d bytes, expected "
                                   "%d, first difference at %d (seed %d, %s cache)" % (
                                       name, len(got), len(data), d, seed, cache))
