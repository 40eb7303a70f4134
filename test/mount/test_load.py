"""Many clients at once: 64 forked processes mix metadata and data operations (create, write,
read back, overwrite, truncate, rename, stat, readdir, xattrs, mkdir/rmdir, unlink) in private
directories and one shared directory, checking every result against what they did. Around the
measured round the daemon's memory (VmRSS) and descriptor count are taken after a warm-up round
and again at the end, both times with every file deleted: descriptors must come back to the
same count and memory may not keep growing.

RINGFUSE_LOAD_SECONDS (default 5) is the length of the measured round, RINGFUSE_LOAD_CLIENTS
(default 64) the number of clients.
"""

import errno
import os
import random
import stat
import time

import rfutil
from fsx import Board, Clients, KiB, MiB, daemon_usage, env_seed, recording, sanitized

SECONDS = float(os.environ.get("RINGFUSE_LOAD_SECONDS", "5"))
WARMUP_SECONDS = 1.5
NCLIENTS = int(os.environ.get("RINGFUSE_LOAD_CLIENTS", "64"))
MAX_FILES = 8  # live files per client
MAX_FILE = 24 * KiB
RSS_GROWTH_LIMIT = 32 * MiB
SETTLE_TIMEOUT = 10.0  # forgets of deleted files reach the daemon asynchronously

OPS = {"create": 14, "read": 16, "overwrite": 10, "truncate": 4, "rename": 10, "stat": 12,
       "readdir": 6, "xattr": 6, "dir": 4, "unlink": 8, "fsync": 2}


class Mismatch(AssertionError):
    pass


class LoadClient:
    """One client's state: the files it owns (path -> content) and what it did."""

    def __init__(self, i, root, seed, board):
        self.i = i
        self.rng = random.Random(seed * 1000 + i)
        self.mine = os.path.join(root, "c%03d" % i)
        self.shared = os.path.join(root, "shared")
        self.files = {}
        self.serial = 0
        self.board = board
        self.counts = dict.fromkeys(OPS, 0)
        self.names = list(OPS)
        self.weights = list(OPS.values())

    def check(self, cond, what):
        if not cond:
            raise Mismatch("client %d: %s" % (self.i, what))

    def new_path(self):
        self.serial += 1
        d = self.shared if self.rng.random() < 0.3 else self.mine
        return os.path.join(d, "c%03d-f%d" % (self.i, self.serial))

    def pick(self):
        return self.rng.choice(sorted(self.files))

    def expect_gone(self, path):
        try:
            os.lstat(path)
        except FileNotFoundError:
            return
        raise Mismatch("client %d: %s still exists" % (self.i, path))

    # -- operations ----------------------------------------------------------------------

    def op_create(self):
        if len(self.files) >= MAX_FILES:
            return self.op_unlink()
        path = self.new_path()
        data = self.rng.randbytes(self.rng.randint(0, MAX_FILE))
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        try:
            rfutil.write_all(fd, data)
        finally:
            os.close(fd)
        self.files[path] = data
        st = os.stat(path)
        self.check(stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644 and
                   st.st_size == len(data), "%s after create: mode %o size %d, expected 644 "
                   "and %d" % (path, st.st_mode, st.st_size, len(data)))

    def op_read(self):
        if not self.files:
            return self.op_create()
        path = self.pick()
        direct = self.rng.random() < 0.3
        if direct:
            got = rfutil.read_direct(path)
        else:
            with open(path, "rb") as f:
                got = f.read()
        want = self.files[path]
        self.check(got == want, "%s: read %d bytes%s, expected %d%s" % (
            path, len(got), " (O_DIRECT)" if direct else "", len(want),
            "" if len(got) != len(want) else ", contents differ"))

    def op_overwrite(self):
        if not self.files:
            return self.op_create()
        path = self.pick()
        old = bytearray(self.files[path])
        off = self.rng.randint(0, len(old) + 100)
        data = self.rng.randbytes(self.rng.randint(1, 8 * KiB))
        fd = os.open(path, os.O_RDWR)
        try:
            rfutil.write_all(fd, data, off)
            if off > len(old):
                old.extend(bytes(off - len(old)))
            old[off:off + len(data)] = data
            got = rfutil.pread_all(fd, len(old) + 1, 0)
        finally:
            os.close(fd)
        self.files[path] = bytes(old)
        self.check(got == bytes(old), "%s: read after writing %d bytes at %d differs" % (
            path, len(data), off))

    def op_truncate(self):
        if not self.files:
            return self.op_create()
        path = self.pick()
        n = self.rng.randint(0, MAX_FILE)
        os.truncate(path, n)
        old = self.files[path]
        self.files[path] = old[:n] + bytes(max(0, n - len(old)))
        self.check(os.stat(path).st_size == n, "%s: size after truncate to %d" % (path, n))

    def op_rename(self):
        if not self.files:
            return self.op_create()
        path = self.pick()
        new = self.new_path()
        os.rename(path, new)
        self.files[new] = self.files.pop(path)
        self.expect_gone(path)
        self.check(os.stat(new).st_size == len(self.files[new]), "%s: size after rename" % new)

    def op_stat(self):
        if not self.files:
            return self.op_create()
        path = self.pick()
        st = os.stat(path)
        self.check(st.st_size == len(self.files[path]) and st.st_nlink == 1,
                   "%s: stat size %d nlink %d, expected %d and 1" % (
                       path, st.st_size, st.st_nlink, len(self.files[path])))

    def op_readdir(self):
        mine = {os.path.basename(p) for p in self.files if os.path.dirname(p) == self.mine}
        got = set(os.listdir(self.mine))
        self.check(got == mine, "readdir %s: extra %s, missing %s" % (
            self.mine, sorted(got - mine)[:5], sorted(mine - got)[:5]))
        theirs = {os.path.basename(p) for p in self.files if os.path.dirname(p) == self.shared}
        # Other clients add and remove their own names meanwhile; ours must all be there.
        got = set(rfutil.readdir_all(self.shared))
        self.check(theirs <= got and {".", ".."} <= got, "readdir %s: missing %s" % (
            self.shared, sorted(theirs - got)[:5]))

    def op_xattr(self):
        if not self.files:
            return self.op_create()
        path = self.pick()
        name = "user.load%d" % self.rng.randint(0, 3)
        val = self.rng.randbytes(self.rng.randint(1, 200))
        os.setxattr(path, name, val)
        self.check(os.getxattr(path, name) == val, "%s: getxattr %s" % (path, name))
        self.check(name in os.listxattr(path), "%s: listxattr lacks %s" % (path, name))
        os.removexattr(path, name)
        try:
            os.getxattr(path, name)
        except OSError as e:
            self.check(e.errno == errno.ENODATA, "%s: getxattr after remove: %s" % (
                path, rfutil.eno(e)))
        else:
            raise Mismatch("client %d: %s: %s still there after removexattr" % (
                self.i, path, name))

    def op_dir(self):
        self.serial += 1
        d = os.path.join(self.mine, "d%d" % self.serial)
        os.mkdir(d, 0o755)
        self.check(stat.S_ISDIR(os.stat(d).st_mode), "%s: not a directory" % d)
        self.check(os.listdir(d) == [], "%s: new directory not empty" % d)
        os.rmdir(d)
        self.expect_gone(d)

    def op_unlink(self):
        if not self.files:
            return self.op_create()
        path = self.pick()
        os.unlink(path)
        del self.files[path]
        self.expect_gone(path)

    def op_fsync(self):
        if not self.files:
            return self.op_create()
        fd = os.open(self.pick(), os.O_RDWR)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- a round -------------------------------------------------------------------------

    def run(self, deadline):
        while time.monotonic() < deadline:
            name = self.rng.choices(self.names, self.weights)[0]
            try:
                getattr(self, "op_" + name)()
            except OSError as e:
                raise Mismatch("client %d: %s: %s (%s)" % (self.i, name, rfutil.eno(e), e))
            self.counts[name] += 1
            self.board.bump(self.i)
        # Leave nothing behind, and check that nothing is left behind.
        for path in list(self.files):
            os.unlink(path)
            del self.files[path]
        self.check(os.listdir(self.mine) == [], "%s not empty after deleting everything: %s" % (
            self.mine, os.listdir(self.mine)[:5]))
        return self.counts


def load_round(root, seed, seconds, board):
    deadline = time.monotonic() + seconds + 0.3  # forking 64 clients takes a moment

    def client(i):
        return LoadClient(i, root, seed, board).run(deadline)

    cl = Clients(client, NCLIENTS).start()
    results, problems = cl.join(seconds + 60)
    assert not problems, "%d of %d clients failed:\n%s" % (
        len(problems), NCLIENTS, "\n".join(problems[:10]))
    total = {}
    for r in results:
        for k, v in r.items():
            total[k] = total.get(k, 0) + v
    leftovers = os.listdir(os.path.join(root, "shared"))
    assert leftovers == [], "shared directory not empty after the round: %s" % leftovers[:10]
    return total


def fs_usage(m):
    """(inodes, blocks) in use as the filesystem reports them: memfs counts its live nodes
    and data, so after deleting everything both must be back where they were. None for
    passthrough (the numbers are the source filesystem's, which others change too)."""
    if rfutil.base_fs(m.fs) != "memfs":
        return None
    st = os.statvfs(m.path)
    return (st.f_files - st.f_ffree, st.f_blocks - st.f_bfree)


def settled_usage(m, want_fds, want_fs):
    """The daemon's (rss KiB, fds, threads) and fs_usage() once the descriptor count and the
    filesystem's usage are back at want_fds/want_fs, or after SETTLE_TIMEOUT (forgets for
    deleted files reach the daemon asynchronously)."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        usage, fsu = daemon_usage(m.pid), fs_usage(m)
        if usage[1] <= want_fds and (want_fs is None or fsu == want_fs):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return usage + (fsu,)


def test_many_clients(mnt, transport, fs):
    m = mnt
    seed = env_seed("RINGFUSE_LOAD_SEED")
    board = Board(NCLIENTS)
    with recording("load", test="load[%s-%s]" % (transport, fs), seed=seed,
                   clients=NCLIENTS) as rec:
        for i in range(NCLIENTS):
            os.mkdir(m.p("c%03d" % i))
        os.mkdir(m.p("shared"))
        rss0, fds0, thr0 = daemon_usage(m.pid)
        fsu0 = fs_usage(m)

        warm = load_round(m.path, seed, WARMUP_SECONDS, board)
        # The daemon may keep more descriptors than at start (e.g. an inode per directory
        # the kernel still caches), but after the warm-up that set is complete.
        rss1, fds1, thr1, fsu1 = settled_usage(m, fds0, fsu0)

        t0 = time.monotonic()
        ops = load_round(m.path, seed + 1, SECONDS, board)
        elapsed = time.monotonic() - t0
        rss2, fds2, thr2, fsu2 = settled_usage(m, fds1, fsu0)

        nops = sum(ops.values())
        rec.update(ops=nops, warmup_ops=sum(warm.values()), seconds=round(elapsed, 2),
                   ops_by_kind=ops, rss_kib=[rss0, rss1, rss2], fds=[fds0, fds1, fds2],
                   threads=[thr0, thr1, thr2], fs_inodes_blocks=[fsu0, fsu1, fsu2])
        print("load %s/%s: %d clients, %d ops in %.1fs; rss %d -> %d -> %d KiB, fds %d -> %d "
              "-> %d" % (fs, transport, NCLIENTS, nops, elapsed, rss0, rss1, rss2, fds0, fds1,
                         fds2))
        assert m.alive(), "daemon died under load\n" + m.log_report()
        assert all(ops[k] > 0 for k in ops), "some operations never ran: %s" % ops
        assert fsu1 == fsu0 and fsu2 == fsu0, (
            "memfs (inodes, blocks) in use: %s at start, %s after the warm-up, %s after the "
            "measured round, every file deleted and %.0fs given for forgets: nodes or data "
            "leaked" % (fsu0, fsu1, fsu2, SETTLE_TIMEOUT))
        assert fds2 == fds1, ("daemon descriptors went from %d after the warm-up to %d after "
                              "the measured round, with every file deleted (leak?)\n%s" % (
                                  fds1, fds2, m.log_report()))
        if sanitized(rfutil.fs_binary(fs)):
            rec["rss_note"] = "sanitizer build: memory not judged (allocator quarantine)"
        else:
            assert (rss2 - rss1) * KiB < RSS_GROWTH_LIMIT, (
                "daemon RSS grew by %d KiB (%d -> %d KiB) during the measured round, with "
                "every file deleted" % (rss2 - rss1, rss1, rss2))
        # The tree is still whole and usable.
        for i in range(NCLIENTS):
            os.rmdir(m.p("c%03d" % i))
        os.rmdir(m.p("shared"))
        assert os.listdir(m.path) == []
