"""Directories and names: mkdir/rmdir, listings, link counts, rename in all its forms, hard and
symbolic links, special files, and the errnos a local filesystem gives for each misuse."""

import errno
import mmap
import os
import stat

import pytest

from rfutil import (RENAME_EXCHANGE, RENAME_NOREPLACE, make_file, raises_errno, read_direct,
                    read_file, readdir_all, renameat2)


def nlink(path):
    return os.lstat(path).st_nlink


# ---------------------------------------------------------------------------------------------
# mkdir / rmdir and their errors


def test_mkdir_rmdir(mnt):
    d = mnt.p("d")
    os.mkdir(d, 0o755)
    st = os.stat(d)
    assert stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o755
    assert st.st_nlink == 2
    assert os.listdir(d) == []
    assert "d" in os.listdir(mnt.path)
    os.mkdir(mnt.p("d", "sub"))
    os.rmdir(mnt.p("d", "sub"))
    os.rmdir(d)
    raises_errno(errno.ENOENT, os.stat, d)
    assert "d" not in os.listdir(mnt.path)
    # The name can be reused, for anything.
    make_file(d, b"now a file")
    assert read_file(d) == b"now a file"


def test_dir_errors(mnt):
    os.mkdir(mnt.p("d"))
    make_file(mnt.p("d", "f"), b"x")
    make_file(mnt.p("file"), b"y")
    raises_errno(errno.EEXIST, os.mkdir, mnt.p("d"))
    raises_errno(errno.EEXIST, os.mkdir, mnt.p("file"))
    raises_errno(errno.ENOTEMPTY, os.rmdir, mnt.p("d"))
    raises_errno(errno.ENOTDIR, os.rmdir, mnt.p("file"))
    raises_errno(errno.ENOTDIR, os.mkdir, mnt.p("file", "sub"))
    raises_errno(errno.ENOTDIR, os.listdir, mnt.p("file"))
    raises_errno(errno.ENOTDIR, os.stat, mnt.p("file", "x"))
    raises_errno(errno.EISDIR, os.unlink, mnt.p("d"))
    raises_errno(errno.EISDIR, os.open, mnt.p("d"), os.O_RDWR)
    raises_errno(errno.ENOENT, os.rmdir, mnt.p("missing"))
    raises_errno(errno.ENOENT, os.unlink, mnt.p("missing"))
    raises_errno(errno.ENOENT, os.mkdir, mnt.p("missing", "sub"))
    raises_errno(errno.ENOENT, os.stat, mnt.p("missing"))
    raises_errno(errno.ENOENT, os.listdir, mnt.p("missing"))
    raises_errno(errno.EINVAL, os.rmdir, mnt.p("d", "."))
    # Nothing above changed the tree.
    assert sorted(os.listdir(mnt.path)) == ["d", "file"]
    assert os.listdir(mnt.p("d")) == ["f"]


def test_enametoolong(mnt):
    long = "a" * 256
    ok = "b" * 255
    raises_errno(errno.ENAMETOOLONG, os.open, mnt.p(long), os.O_CREAT | os.O_WRONLY, 0o644)
    raises_errno(errno.ENAMETOOLONG, os.mkdir, mnt.p(long))
    raises_errno(errno.ENAMETOOLONG, os.stat, mnt.p(long))
    raises_errno(errno.ENAMETOOLONG, os.symlink, "x", mnt.p(long))
    raises_errno(errno.ENAMETOOLONG, os.mkfifo, mnt.p(long))
    make_file(mnt.p(ok), b"max")
    raises_errno(errno.ENAMETOOLONG, os.rename, mnt.p(ok), mnt.p(long))
    raises_errno(errno.ENAMETOOLONG, os.link, mnt.p(ok), mnt.p(long))
    assert os.listdir(mnt.path) == [ok]
    assert read_file(mnt.p(ok)) == b"max"
    os.mkdir(mnt.p("c" * 255))
    assert sorted(os.listdir(mnt.path)) == sorted([ok, "c" * 255])


# ---------------------------------------------------------------------------------------------
# Listings


def test_readdir_many(mnt):
    d = mnt.p("big")
    os.mkdir(d)
    n = 2000
    kinds = {}
    for i in range(n):
        name = "entry-%05d-%s" % (i, "x" * (i % 40))  # varied lengths: varied record sizes
        if i % 10 == 0:
            os.mkdir(os.path.join(d, name))
            kinds[name] = "dir"
        elif i % 10 == 1:
            os.symlink("target-%d" % i, os.path.join(d, name))
            kinds[name] = "link"
        else:
            make_file(os.path.join(d, name))
            kinds[name] = "file"
    seen = {}
    with os.scandir(d) as it:
        for e in it:
            assert e.name not in seen, "%s listed twice" % e.name
            seen[e.name] = e
    assert set(seen) == set(kinds)
    for name, e in seen.items():
        # The types come from the listing itself (d_type), and must match lstat.
        got = "dir" if e.is_dir(follow_symlinks=False) else \
            "link" if e.is_symlink() else "file" if e.is_file(follow_symlinks=False) else "?"
        assert got == kinds[name], name
        assert e.inode() == os.lstat(e.path).st_ino, name
    assert nlink(d) == 2 + n // 10


def test_readdir_dot_entries(mnt):
    os.mkdir(mnt.p("d"))
    make_file(mnt.p("d", "f"))
    names = readdir_all(mnt.p("d"))
    assert sorted(names) == [".", "..", "f"]
    assert sorted(readdir_all(mnt.path)) == [".", "..", "d"]


def test_readdir_while_unlinking(mnt):
    """rm -r's pattern: every entry that exists throughout a listing is returned exactly once,
    even while the entries already returned are being removed."""
    d = mnt.p("d")
    os.mkdir(d)
    names = {"file-%04d-%s" % (i, "y" * (i % 30)) for i in range(1000)}
    for name in names:
        make_file(os.path.join(d, name))
    seen = []
    with os.scandir(d) as it:
        for e in it:
            seen.append(e.name)
            os.unlink(e.path)
    assert len(seen) == len(set(seen)), "entries returned twice"
    assert set(seen) == names, "%d entries never listed" % len(names - set(seen))
    assert os.listdir(d) == []
    os.rmdir(d)


def test_readdir_rewind_sees_changes(mnt):
    d = mnt.p("d")
    os.mkdir(d)
    for i in range(50):
        make_file(os.path.join(d, "a%d" % i))
    assert len(os.listdir(d)) == 50
    for i in range(0, 50, 2):
        os.unlink(os.path.join(d, "a%d" % i))
    make_file(os.path.join(d, "new"))
    assert sorted(os.listdir(d)) == sorted(["a%d" % i for i in range(1, 50, 2)] + ["new"])


def test_dir_nlink(mnt):
    d, e = mnt.p("d"), mnt.p("e")
    os.mkdir(d)
    os.mkdir(e)
    assert nlink(d) == 2
    for s in "abc":
        os.mkdir(os.path.join(d, s))
    assert nlink(d) == 5
    make_file(os.path.join(d, "f"))
    os.symlink("x", os.path.join(d, "l"))
    assert nlink(d) == 5, "files and symlinks do not count"
    os.rmdir(os.path.join(d, "a"))
    assert nlink(d) == 4
    os.rename(os.path.join(d, "b"), os.path.join(e, "b"))
    assert (nlink(d), nlink(e)) == (3, 3)
    os.mkdir(os.path.join(e, "x"))
    assert nlink(e) == 4
    # Replacing the empty directory e/x drops it: e keeps b and c.
    os.rename(os.path.join(d, "c"), os.path.join(e, "x"))
    assert (nlink(d), nlink(e)) == (2, 4)
    assert nlink(os.path.join(e, "x")) == 2
    root_before = nlink(mnt.path)
    os.mkdir(mnt.p("z"))
    assert nlink(mnt.path) == root_before + 1


# ---------------------------------------------------------------------------------------------
# rename


def test_rename_plain(mnt):
    make_file(mnt.p("a"), b"A")
    ino = os.stat(mnt.p("a")).st_ino
    os.rename(mnt.p("a"), mnt.p("b"))
    raises_errno(errno.ENOENT, os.stat, mnt.p("a"))
    assert os.stat(mnt.p("b")).st_ino == ino
    assert read_file(mnt.p("b")) == b"A"
    assert os.listdir(mnt.path) == ["b"]
    # Across directories, and to itself (a no-op).
    os.mkdir(mnt.p("d"))
    os.rename(mnt.p("b"), mnt.p("d", "c"))
    assert os.listdir(mnt.path) == ["d"]
    assert read_file(mnt.p("d", "c")) == b"A"
    os.rename(mnt.p("d", "c"), mnt.p("d", "c"))
    assert read_file(mnt.p("d", "c")) == b"A"
    raises_errno(errno.ENOENT, os.rename, mnt.p("missing"), mnt.p("x"))
    raises_errno(errno.ENOENT, os.rename, mnt.p("d", "c"), mnt.p("nodir", "x"))


def test_rename_over_existing_file(mnt):
    make_file(mnt.p("a"), b"new")
    make_file(mnt.p("b"), b"old")
    a_ino = os.stat(mnt.p("a")).st_ino
    # Someone still has the old target open: it lives on, unnamed.
    old = os.open(mnt.p("b"), os.O_RDONLY | os.O_DIRECT)
    try:
        os.rename(mnt.p("a"), mnt.p("b"))
        assert os.listdir(mnt.path) == ["b"]
        assert os.stat(mnt.p("b")).st_ino == a_ino
        assert read_file(mnt.p("b")) == b"new"
        assert read_direct(mnt.p("b")) == b"new"
        assert os.fstat(old).st_nlink == 0
        buf = mmap.mmap(-1, mmap.PAGESIZE)
        assert os.preadv(old, [buf], 0) == 3
        assert buf[:3] == b"old"
        buf.close()
    finally:
        os.close(old)


def test_rename_hardlinks_to_same_inode(mnt):
    make_file(mnt.p("a"), b"x")
    os.link(mnt.p("a"), mnt.p("b"))
    # POSIX: same file on both sides -> success, nothing happens.
    os.rename(mnt.p("a"), mnt.p("b"))
    assert sorted(os.listdir(mnt.path)) == ["a", "b"]
    assert nlink(mnt.p("a")) == 2


def test_rename_dirs(mnt):
    os.makedirs(mnt.p("src", "inner"))
    make_file(mnt.p("src", "inner", "f"), b"payload")
    os.mkdir(mnt.p("empty"))
    os.makedirs(mnt.p("full", "x"))
    make_file(mnt.p("file"), b"f")
    # Directory over an empty directory: replaced.
    os.rename(mnt.p("src"), mnt.p("empty"))
    assert read_file(mnt.p("empty", "inner", "f")) == b"payload"
    raises_errno(errno.ENOENT, os.stat, mnt.p("src"))
    # Directory over a non-empty directory: refused, both untouched.
    with pytest.raises(OSError) as ei:
        os.rename(mnt.p("empty"), mnt.p("full"))
    assert ei.value.errno in (errno.ENOTEMPTY, errno.EEXIST)
    assert os.listdir(mnt.p("full")) == ["x"]
    assert os.listdir(mnt.p("empty")) == ["inner"]
    # Kind mismatches.
    raises_errno(errno.ENOTDIR, os.rename, mnt.p("empty"), mnt.p("file"))
    raises_errno(errno.EISDIR, os.rename, mnt.p("file"), mnt.p("full"))
    # Into its own subtree.
    raises_errno(errno.EINVAL, os.rename, mnt.p("empty"), mnt.p("empty", "inner", "deeper"))
    raises_errno(errno.EINVAL, os.rename, mnt.p("empty"), mnt.p("empty", "inner2"))
    assert sorted(os.listdir(mnt.path)) == ["empty", "file", "full"]
    # A moved directory's contents move with it, and '..' follows.
    os.rename(mnt.p("empty", "inner"), mnt.p("full", "x", "moved"))
    assert read_file(mnt.p("full", "x", "moved", "f")) == b"payload"
    assert os.stat(mnt.p("full", "x", "moved", "..")).st_ino == os.stat(mnt.p("full", "x")).st_ino


def test_rename_noreplace(mnt):
    make_file(mnt.p("a"), b"A")
    make_file(mnt.p("b"), b"B")
    raises_errno(errno.EEXIST, renameat2, mnt.p("a"), mnt.p("b"), RENAME_NOREPLACE)
    assert read_file(mnt.p("a")) == b"A"
    assert read_file(mnt.p("b")) == b"B"
    renameat2(mnt.p("a"), mnt.p("c"), RENAME_NOREPLACE)
    assert sorted(os.listdir(mnt.path)) == ["b", "c"]
    assert read_file(mnt.p("c")) == b"A"


def test_rename_exchange(mnt):
    make_file(mnt.p("a"), b"A")
    make_file(mnt.p("b"), b"BB")
    ia, ib = os.stat(mnt.p("a")).st_ino, os.stat(mnt.p("b")).st_ino
    renameat2(mnt.p("a"), mnt.p("b"), RENAME_EXCHANGE)
    assert read_file(mnt.p("a")) == b"BB"
    assert read_file(mnt.p("b")) == b"A"
    assert (os.stat(mnt.p("a")).st_ino, os.stat(mnt.p("b")).st_ino) == (ib, ia)
    raises_errno(errno.ENOENT, renameat2, mnt.p("a"), mnt.p("missing"), RENAME_EXCHANGE)
    assert sorted(os.listdir(mnt.path)) == ["a", "b"]
    # A directory and a file swap places across parents; link counts follow the directory.
    os.makedirs(mnt.p("p1", "X"))
    make_file(mnt.p("p1", "X", "inside"), b"i")
    os.mkdir(mnt.p("p2"))
    make_file(mnt.p("p2", "Y"), b"y")
    assert (nlink(mnt.p("p1")), nlink(mnt.p("p2"))) == (3, 2)
    renameat2(mnt.p("p1", "X"), mnt.p("p2", "Y"), RENAME_EXCHANGE)
    assert stat.S_ISREG(os.lstat(mnt.p("p1", "X")).st_mode)
    assert read_file(mnt.p("p1", "X")) == b"y"
    assert read_file(mnt.p("p2", "Y", "inside")) == b"i"
    assert (nlink(mnt.p("p1")), nlink(mnt.p("p2"))) == (2, 3)


# ---------------------------------------------------------------------------------------------
# Links


def test_hard_links(mnt):
    make_file(mnt.p("a"), b"shared")
    os.mkdir(mnt.p("d"))
    os.link(mnt.p("a"), mnt.p("b"))
    os.link(mnt.p("a"), mnt.p("d", "c"))
    sa, sb, sc = (os.stat(mnt.p(*n)) for n in (("a",), ("b",), ("d", "c")))
    assert sa.st_ino == sb.st_ino == sc.st_ino
    assert sa.st_nlink == sb.st_nlink == sc.st_nlink == 3
    with open(mnt.p("b"), "r+b") as f:
        f.write(b"SH")
    assert read_file(mnt.p("d", "c")) == b"SHared"
    os.unlink(mnt.p("a"))
    assert nlink(mnt.p("b")) == 2
    assert read_file(mnt.p("b")) == b"SHared"
    raises_errno(errno.EEXIST, os.link, mnt.p("b"), mnt.p("d", "c"))
    raises_errno(errno.ENOENT, os.link, mnt.p("a"), mnt.p("e"))
    raises_errno(errno.EPERM, os.link, mnt.p("d"), mnt.p("dlink"))
    os.unlink(mnt.p("d", "c"))
    assert nlink(mnt.p("b")) == 1
    assert read_direct(mnt.p("b")) == b"SHared"


def test_symlinks(mnt):
    make_file(mnt.p("target"), b"T")
    os.symlink("target", mnt.p("l"))
    assert os.readlink(mnt.p("l")) == "target"
    st = os.lstat(mnt.p("l"))
    assert stat.S_ISLNK(st.st_mode)
    assert st.st_size == len("target")
    assert stat.S_ISREG(os.stat(mnt.p("l")).st_mode)
    assert read_file(mnt.p("l")) == b"T"
    raises_errno(errno.EEXIST, os.symlink, "other", mnt.p("l"))
    raises_errno(errno.EINVAL, os.readlink, mnt.p("target"))
    raises_errno(errno.ELOOP, os.open, mnt.p("l"), os.O_RDONLY | os.O_NOFOLLOW)
    # Long targets survive the round trip (PATH_MAX - 1 bytes).
    long_target = ("segment/" * 512)[:4095]
    os.symlink(long_target, mnt.p("long"))
    assert os.readlink(mnt.p("long")) == long_target
    assert os.lstat(mnt.p("long")).st_size == 4095
    # Absolute targets, and links to directories.
    os.mkdir(mnt.p("dir"))
    os.symlink(mnt.p("dir"), mnt.p("abs"))
    make_file(mnt.p("abs", "through"), b"t")
    assert read_file(mnt.p("dir", "through")) == b"t"


def test_dangling_and_looping_symlinks(mnt):
    os.symlink("nowhere", mnt.p("dangling"))
    raises_errno(errno.ENOENT, os.stat, mnt.p("dangling"))
    assert stat.S_ISLNK(os.lstat(mnt.p("dangling")).st_mode)
    assert "dangling" in os.listdir(mnt.path)
    # O_CREAT through a dangling link creates its target.
    os.close(os.open(mnt.p("dangling"), os.O_CREAT | os.O_WRONLY, 0o644))
    assert stat.S_ISREG(os.lstat(mnt.p("nowhere")).st_mode)
    assert os.stat(mnt.p("dangling")).st_ino == os.stat(mnt.p("nowhere")).st_ino
    os.symlink("loop2", mnt.p("loop1"))
    os.symlink("loop1", mnt.p("loop2"))
    raises_errno(errno.ELOOP, os.stat, mnt.p("loop1"))
    os.unlink(mnt.p("dangling"))
    assert os.path.exists(mnt.p("nowhere")), "unlinking a symlink removed its target"


# ---------------------------------------------------------------------------------------------
# Special files


def test_mknod_fifo(mnt):
    os.mkfifo(mnt.p("fifo"), 0o640)
    st = os.lstat(mnt.p("fifo"))
    assert stat.S_ISFIFO(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o640
    with os.scandir(mnt.path) as it:
        e = next(it)
        assert e.name == "fifo" and not e.is_file() and not e.is_dir()
    # It behaves as a pipe: the kernel, not the daemon, carries the data.
    r = os.open(mnt.p("fifo"), os.O_RDONLY | os.O_NONBLOCK)
    w = os.open(mnt.p("fifo"), os.O_WRONLY | os.O_NONBLOCK)
    try:
        os.write(w, b"through the pipe")
        assert os.read(r, 100) == b"through the pipe"
    finally:
        os.close(r)
        os.close(w)
    assert os.lstat(mnt.p("fifo")).st_size == 0
    raises_errno(errno.EEXIST, os.mkfifo, mnt.p("fifo"))


def test_mknod_other_kinds(mnt):
    os.mknod(mnt.p("chr"), stat.S_IFCHR | 0o600, os.makedev(1, 3))
    st = os.lstat(mnt.p("chr"))
    assert stat.S_ISCHR(st.st_mode)
    assert st.st_rdev == os.makedev(1, 3)
    os.mknod(mnt.p("reg"), stat.S_IFREG | 0o600)
    st = os.lstat(mnt.p("reg"))
    assert stat.S_ISREG(st.st_mode) and st.st_size == 0
    os.mknod(mnt.p("sock"), stat.S_IFSOCK | 0o600)
    assert stat.S_ISSOCK(os.lstat(mnt.p("sock")).st_mode)
