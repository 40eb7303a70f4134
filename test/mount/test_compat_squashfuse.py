"""squashfuse_ll (Debian's, built on libfuse3's low-level API) running over ringfuse.

An image made with mksquashfs from a source tree with every kind of entry (files of many sizes
and contents, holes, a deep tree, a directory of hundreds of names, symlinks, hard links,
special files, odd names, modes, times, extended attributes) is mounted through ringfuse-run,
and everything in it is compared with its source: listings, types, modes, owners, sizes, link
counts, times, link targets, xattrs and every file's content, read whole and at random offsets.

squashfuse_ll runs fuse_session_loop(): one thread, which on io-uring serves every queue.
"""

import hashlib
import os
import random
import shutil
import stat
import subprocess

import pytest

import rfutil
from compat_util import assert_served_by, run_mounter  # noqa: F401

pytestmark = pytest.mark.transports("uring", "dev")

MTIME = 1500000000


def _write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def populate(src):
    rnd = random.Random(1234)
    _write(os.path.join(src, "empty"), b"")
    _write(os.path.join(src, "small.txt"), b"hello from squashfs\n", 0o600)
    _write(os.path.join(src, "random-1m"), rnd.randbytes(1 << 20))
    _write(os.path.join(src, "zeros-3m"), bytes(3 << 20))
    mixed = b"".join(rnd.randbytes(rnd.randrange(1, 70000)) + bytes(rnd.randrange(0, 200000))
                     for _ in range(40))
    _write(os.path.join(src, "mixed"), mixed + b"tail", 0o755)
    with open(os.path.join(src, "sparse"), "wb") as f:
        f.seek(5 << 20)
        f.write(b"end")
    deep = os.path.join(src, "dir", "sub", "deeper", "deepest")
    os.makedirs(deep)
    _write(os.path.join(deep, "leaf"), b"leaf\n")
    os.chmod(os.path.join(src, "dir", "sub"), 0o700)
    many = os.path.join(src, "many")
    os.mkdir(many)
    for i in range(300):
        _write(os.path.join(many, "file-%03d-%s" % (i, "x" * (i % 40))), b"%d\n" % i)
    links = os.path.join(src, "links")
    os.mkdir(links)
    os.symlink("../small.txt", os.path.join(links, "relative"))
    os.symlink("/nonexistent/target", os.path.join(links, "dangling"))
    os.symlink("y" * 1000, os.path.join(links, "long"))
    os.link(os.path.join(src, "small.txt"), os.path.join(src, "hardlink"))
    names = os.path.join(src, "names")
    os.mkdir(names)
    for name in ("with space", "ünïcödé", "back\\slash", "'quote'", "a" * 255, ".hidden"):
        _write(os.path.join(names, name), name.encode())
    os.mkfifo(os.path.join(src, "fifo"), 0o640)
    os.mknod(os.path.join(src, "chardev"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    try:
        os.setxattr(os.path.join(src, "small.txt"), "user.color", b"blue")
        os.setxattr(os.path.join(src, "dir"), "user.kind", b"a directory")
    except OSError:
        pass  # no user xattrs where the tests run: the comparison covers what exists
    os.chown(os.path.join(src, "mixed"), 1234, 5678, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(src, topdown=False):
        for n in filenames + dirnames:
            os.utime(os.path.join(dirpath, n), (MTIME, MTIME), follow_symlinks=False)
    os.utime(src, (MTIME, MTIME))


@pytest.fixture(scope="module")
def image():
    if not shutil.which("mksquashfs") or not shutil.which("squashfuse_ll"):
        pytest.fail("mksquashfs or squashfuse_ll missing (scripts/deps.sh installs them)",
                    pytrace=False)
    src = rfutil.make_dir("sqsrc-")
    populate(src)
    img = src.rstrip("/") + ".squashfs"
    subprocess.run(["mksquashfs", src, img, "-noappend", "-quiet", "-no-progress",
                    "-comp", "gzip"], check=True, stdout=subprocess.DEVNULL)
    return src, img


def _digest(path, chunk):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _xattrs(path):
    try:
        return {n: os.getxattr(path, n, follow_symlinks=False)
                for n in os.listxattr(path, follow_symlinks=False)}
    except OSError:
        return {}


def compare_trees(src, mnt):
    rnd = random.Random(99)
    compared = 0
    src_ino_to_mnt = {}
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        mdir = os.path.normpath(os.path.join(mnt, rel))
        assert sorted(os.listdir(mdir)) == sorted(dirnames + filenames), rel
        for name in [""] + dirnames + filenames:
            s = os.path.join(dirpath, name) if name else dirpath
            m = os.path.join(mdir, name) if name else mdir
            ss, ms = os.lstat(s), os.lstat(m)
            what = os.path.relpath(s, src)
            assert stat.S_IFMT(ms.st_mode) == stat.S_IFMT(ss.st_mode), what
            assert stat.S_IMODE(ms.st_mode) == stat.S_IMODE(ss.st_mode), what
            assert (ms.st_uid, ms.st_gid) == (ss.st_uid, ss.st_gid), what
            assert int(ms.st_mtime) == int(ss.st_mtime), what
            assert _xattrs(m) == _xattrs(s), what
            if stat.S_ISLNK(ss.st_mode):
                assert os.readlink(m) == os.readlink(s), what
            elif stat.S_ISCHR(ss.st_mode):
                assert ms.st_rdev == ss.st_rdev, what
            elif stat.S_ISREG(ss.st_mode):
                assert ms.st_size == ss.st_size, what
                assert ms.st_nlink == ss.st_nlink, what
                if ss.st_nlink > 1:
                    # Hard links share their inode on the mount as in the source.
                    assert src_ino_to_mnt.setdefault(ss.st_ino, ms.st_ino) == ms.st_ino, what
                assert _digest(m, rnd.choice((4096, 70001, 1 << 20))) == _digest(s, 1 << 20), \
                    what
                if ss.st_size:
                    with open(s, "rb") as fs, open(m, "rb") as fm:
                        for _ in range(20):
                            off = rnd.randrange(ss.st_size)
                            n = rnd.randrange(1, 200000)
                            assert os.pread(fm.fileno(), n, off) == \
                                os.pread(fs.fileno(), n, off), (what, off, n)
            compared += 1
    return compared


def test_squashfuse_ll_serves_the_image(run_mounter, transport, image):
    src, img = image
    m = run_mounter(transport, lambda mnt: ["squashfuse_ll", "-f", img, mnt])
    served_by = "dev" if transport == "dev" else "uring"
    assert m.logged_transport() == served_by, m.log_report()
    assert compare_trees(src, m.path) > 330
    assert os.statvfs(m.path).f_namemax > 0
    assert_served_by(m, served_by)
