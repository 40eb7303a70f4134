"""Attributes: modes, owners, timestamps, extended attributes, statfs, and the permission rules
a local filesystem enforces for ordinary users (checked from forked children running as other
uids/gids)."""

import errno
import os
import stat
import time

import pytest

import rfutil

from rfutil import (UTIME_NOW, UTIME_OMIT, getxattr_raw, listxattr_raw, make_file,
                    raises_errno, read_file, run_as, utimensat)

USER, GROUP = 1000, 1000
OTHER = 1001
EXTRA_GROUP = 2000
OLD = 1_000_000_000 * 10**9  # 2001-09-09, in ns
SLACK = 500_000_000  # clocks of kernel and daemon may differ by a tick; 0.5 s is plenty


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def public_dir(mnt, name="pub"):
    """A root-owned 0777 directory anyone may create in."""
    d = mnt.p(name)
    os.mkdir(d)
    os.chmod(d, 0o777)
    return d


def attempt(fn, *args, **kw):
    """0 if fn(*args, **kw) worked, else its errno (for tables of expected outcomes)."""
    try:
        fn(*args, **kw)
        return 0
    except OSError as e:
        return e.errno


def names(table):
    return {k: errno.errorcode.get(v, v) for k, v in table.items()}


# ---------------------------------------------------------------------------------------------
# Modes and owners (as root)


def test_chmod(mnt):
    p = mnt.p("f")
    make_file(p, b"x")
    for m in (0o640, 0o600, 0o777, 0o4755, 0o2755, 0o1644, 0o000, 0o7777):
        os.chmod(p, m)
        st = os.stat(p)
        assert stat.S_IMODE(st.st_mode) == m, oct(m)
        assert stat.S_ISREG(st.st_mode)
    fd = os.open(p, os.O_RDONLY)
    try:
        os.fchmod(fd, 0o604)
        assert stat.S_IMODE(os.fstat(fd).st_mode) == 0o604
    finally:
        os.close(fd)
    os.mkdir(mnt.p("d"))
    os.chmod(mnt.p("d"), 0o1777)
    assert stat.S_ISDIR(os.stat(mnt.p("d")).st_mode)
    assert mode_of(mnt.p("d")) == 0o1777
    raises_errno(errno.ENOENT, os.chmod, mnt.p("missing"), 0o644)


def test_chmod_moves_ctime_not_mtime(mnt):
    p = mnt.p("f")
    make_file(p, b"x")
    os.utime(p, ns=(OLD, OLD))
    c0 = os.stat(p).st_ctime_ns
    time.sleep(0.05)
    os.chmod(p, 0o600)
    st = os.stat(p)
    assert st.st_mtime_ns == OLD
    assert st.st_ctime_ns > c0


def test_chown(mnt):
    p = mnt.p("f")
    make_file(p, b"x")
    os.chown(p, USER, GROUP)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid) == (USER, GROUP)
    os.chown(p, -1, EXTRA_GROUP)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid) == (USER, EXTRA_GROUP)
    os.chown(p, OTHER, -1)
    st = os.stat(p)
    assert (st.st_uid, st.st_gid) == (OTHER, EXTRA_GROUP)
    # lchown changes the link, not its target.
    os.symlink("f", mnt.p("l"))
    os.lchown(mnt.p("l"), USER, USER)
    assert (os.lstat(mnt.p("l")).st_uid, os.stat(p).st_uid) == (USER, OTHER)
    os.mkdir(mnt.p("d"))
    os.chown(mnt.p("d"), USER, GROUP)
    assert os.stat(mnt.p("d")).st_uid == USER


def test_chown_clears_setuid(mnt):
    p = mnt.p("f")
    make_file(p, b"x")
    os.chmod(p, 0o4755)
    os.chown(p, USER, -1)
    assert mode_of(p) == 0o755
    os.chmod(p, 0o2775)  # setgid with group execute: dropped on chown
    os.chown(p, -1, GROUP)
    assert mode_of(p) == 0o775
    # Directories keep theirs.
    os.mkdir(mnt.p("d"))
    os.chmod(mnt.p("d"), 0o2775)
    os.chown(mnt.p("d"), USER, GROUP)
    assert mode_of(mnt.p("d")) == 0o2775


# ---------------------------------------------------------------------------------------------
# Timestamps


def test_utime_exact(mnt):
    p = mnt.p("f")
    make_file(p, b"x")
    a, m = 1_234_567_891_123_456_789, 1_300_000_000_987_654_321
    os.utime(p, ns=(a, m))
    st = os.stat(p)
    assert (st.st_atime_ns, st.st_mtime_ns) == (a, m)
    os.utime(p, ns=(OLD, OLD + 1))
    st = os.stat(p)
    assert (st.st_atime_ns, st.st_mtime_ns) == (OLD, OLD + 1)
    # Directories and symlinks (without following) too.
    os.mkdir(mnt.p("d"))
    os.utime(mnt.p("d"), ns=(a, m))
    assert os.stat(mnt.p("d")).st_mtime_ns == m
    os.symlink("f", mnt.p("l"))
    os.utime(mnt.p("l"), ns=(a, OLD + 7), follow_symlinks=False)
    assert os.lstat(mnt.p("l")).st_mtime_ns == OLD + 7
    assert os.stat(p).st_mtime_ns == OLD + 1


def test_utime_now_and_omit(mnt):
    p = mnt.p("f")
    make_file(p, b"x")
    os.utime(p, ns=(OLD, OLD))
    c0 = os.stat(p).st_ctime_ns
    time.sleep(0.05)
    before = time.time_ns()
    utimensat(p, UTIME_OMIT, UTIME_NOW)
    after = time.time_ns()
    st = os.stat(p)
    assert st.st_atime_ns == OLD
    assert before - SLACK <= st.st_mtime_ns <= after + SLACK
    assert st.st_ctime_ns > c0
    m = st.st_mtime_ns
    utimensat(p, UTIME_NOW, UTIME_OMIT)
    st = os.stat(p)
    assert st.st_mtime_ns == m
    assert before - SLACK <= st.st_atime_ns <= time.time_ns() + SLACK
    utimensat(p, (5, 6), UTIME_OMIT)
    st = os.stat(p)
    assert (st.st_atime_ns, st.st_mtime_ns) == (5 * 10**9 + 6, m)


def test_timestamps_move_on_write(mnt):
    p = mnt.p("f")
    make_file(p, b"data")
    os.utime(p, ns=(OLD, OLD))
    c0 = os.stat(p).st_ctime_ns
    time.sleep(0.05)
    before = time.time_ns()
    with open(p, "r+b") as f:
        f.write(b"D")
    st = os.stat(p)
    assert before - SLACK <= st.st_mtime_ns <= time.time_ns() + SLACK
    assert st.st_ctime_ns > c0
    assert st.st_atime_ns == OLD, "a write is not an access"
    # Reading changes neither mtime nor ctime.
    m, c = st.st_mtime_ns, st.st_ctime_ns
    time.sleep(0.05)
    assert read_file(p) == b"Data"
    st = os.stat(p)
    assert (st.st_mtime_ns, st.st_ctime_ns) == (m, c)
    # Truncation is a modification.
    os.utime(p, ns=(OLD, OLD))
    os.truncate(p, 1)
    assert os.stat(p).st_mtime_ns > OLD


def test_dir_timestamps_move(mnt):
    d = mnt.p("d")
    os.mkdir(d)
    steps = [("create", lambda: make_file(os.path.join(d, "f"))),
             ("rename", lambda: os.rename(os.path.join(d, "f"), os.path.join(d, "g"))),
             ("unlink", lambda: os.unlink(os.path.join(d, "g"))),
             ("mkdir", lambda: os.mkdir(os.path.join(d, "s"))),
             ("rmdir", lambda: os.rmdir(os.path.join(d, "s"))),
             ("symlink", lambda: os.symlink("x", os.path.join(d, "l")))]
    for what, step in steps:
        os.utime(d, ns=(OLD, OLD))
        c0 = os.stat(d).st_ctime_ns
        time.sleep(0.02)
        step()
        st = os.stat(d)
        assert st.st_mtime_ns > OLD, "%s did not move the directory's mtime" % what
        assert st.st_ctime_ns > c0, "%s did not move the directory's ctime" % what


# ---------------------------------------------------------------------------------------------
# Extended attributes


def user_xattrs(mnt, path):
    got = os.listxattr(path)
    assert len(got) == len(set(got)), "duplicate names in %r" % got
    # The backing filesystem of passthrough may carry its own (security.*) attributes.
    return sorted(n for n in got if rfutil.base_fs(mnt.fs) == "memfs" or n.startswith("user."))


def test_xattr_set_get_list_remove(mnt):
    p = mnt.p("f")
    make_file(p)
    assert user_xattrs(mnt, p) == []
    os.setxattr(p, "user.a", b"1")
    os.setxattr(p, "user.bb", b"\0binary\xff\0")
    os.setxattr(p, "user.empty", b"")
    assert os.getxattr(p, "user.a") == b"1"
    assert os.getxattr(p, "user.bb") == b"\0binary\xff\0"
    assert os.getxattr(p, "user.empty") == b""
    assert user_xattrs(mnt, p) == ["user.a", "user.bb", "user.empty"]
    os.setxattr(p, "user.a", b"replaced, longer")
    assert os.getxattr(p, "user.a") == b"replaced, longer"
    os.removexattr(p, "user.a")
    raises_errno(errno.ENODATA, os.getxattr, p, "user.a")
    raises_errno(errno.ENODATA, os.removexattr, p, "user.a")
    assert user_xattrs(mnt, p) == ["user.bb", "user.empty"]
    # Directories carry them too; they are per inode (shared by hard links).
    os.mkdir(mnt.p("d"))
    os.setxattr(mnt.p("d"), "user.dir", b"yes")
    assert os.getxattr(mnt.p("d"), "user.dir") == b"yes"
    os.link(p, mnt.p("h"))
    assert os.getxattr(mnt.p("h"), "user.bb") == b"\0binary\xff\0"
    raises_errno(errno.ENODATA, os.getxattr, mnt.p("d"), "user.bb")


def test_xattr_create_replace_flags(mnt):
    p = mnt.p("f")
    make_file(p)
    os.setxattr(p, "user.x", b"first", os.XATTR_CREATE)
    raises_errno(errno.EEXIST, os.setxattr, p, "user.x", b"second", os.XATTR_CREATE)
    assert os.getxattr(p, "user.x") == b"first"
    raises_errno(errno.ENODATA, os.setxattr, p, "user.y", b"v", os.XATTR_REPLACE)
    raises_errno(errno.ENODATA, os.getxattr, p, "user.y")
    os.setxattr(p, "user.x", b"second", os.XATTR_REPLACE)
    assert os.getxattr(p, "user.x") == b"second"
    assert user_xattrs(mnt, p) == ["user.x"]


@pytest.mark.parametrize("size", [1, 255, 4000])
def test_xattr_value_sizes(mnt, size):
    p = mnt.p("f")
    make_file(p)
    value = bytes((i * 7 + size) % 256 for i in range(size))
    os.setxattr(p, "user.v", value)
    assert os.getxattr(p, "user.v") == value
    assert getxattr_raw(p, "user.v", 0) == size


@pytest.mark.filesystems("memfs")
def test_xattr_max_value(mnt):
    p = mnt.p("f")
    make_file(p)
    value = bytes(i % 251 for i in range(65536))
    os.setxattr(p, "user.big", value)
    assert os.getxattr(p, "user.big") == value
    raises_errno(errno.E2BIG, os.setxattr, p, "user.toobig", value + b"!")


def test_xattr_erange(mnt):
    p = mnt.p("f")
    make_file(p)
    os.setxattr(p, "user.foo", b"bar")
    assert getxattr_raw(p, "user.foo", 0) == 3
    raises_errno(errno.ERANGE, getxattr_raw, p, "user.foo", 2)
    assert getxattr_raw(p, "user.foo", 3) == b"bar"
    raises_errno(errno.ENODATA, getxattr_raw, p, "user.none", 0)
    want = listxattr_raw(p, 0)
    assert want >= len(b"user.foo\0")
    raises_errno(errno.ERANGE, listxattr_raw, p, 1)
    got = listxattr_raw(p, want)
    assert b"user.foo\0" in got and len(got) == want


# ---------------------------------------------------------------------------------------------
# statfs


def test_statvfs(mnt):
    st = os.statvfs(mnt.path)
    assert st.f_bsize > 0 and st.f_frsize > 0
    assert st.f_blocks > 0
    assert 0 <= st.f_bavail <= st.f_bfree <= st.f_blocks
    assert 0 <= st.f_ffree <= st.f_files
    assert st.f_namemax == 255
    make_file(mnt.p("f"), b"x")
    assert os.statvfs(mnt.p("f")).f_namemax == 255


# ---------------------------------------------------------------------------------------------
# Acting for the caller


def test_created_files_belong_to_caller(mnt):
    pub = public_dir(mnt)
    j = lambda *n: os.path.join(pub, *n)  # noqa: E731

    def create(suffix):
        make_file(j("f" + suffix), b"x", mode=0o666)
        os.mkdir(j("d" + suffix), 0o777)
        os.symlink("f" + suffix, j("l" + suffix))
        os.mkfifo(j("p" + suffix), 0o666)

    run_as(USER, GROUP, create, "022", umask=0o022)
    run_as(USER, GROUP, create, "027", umask=0o027)
    for suffix, fmode, dmode in (("022", 0o644, 0o755), ("027", 0o640, 0o750)):
        for n in "fdlp":
            st = os.lstat(j(n + suffix))
            assert (st.st_uid, st.st_gid) == (USER, GROUP), n + suffix
        assert mode_of(j("f" + suffix)) == fmode
        assert mode_of(j("d" + suffix)) == dmode
        assert mode_of(j("p" + suffix)) == fmode
        assert stat.S_ISLNK(os.lstat(j("l" + suffix)).st_mode)
    # A second user's files are theirs; root's with umask 0 keep the full mode.
    run_as(OTHER, EXTRA_GROUP, make_file, j("other"), b"o", 0o666, umask=0o002)
    st = os.stat(j("other"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (OTHER, EXTRA_GROUP, 0o664)
    os.umask(0)
    make_file(j("rootfile"), b"r", mode=0o777)
    os.mkdir(j("rootdir"), 0o777)
    assert (mode_of(j("rootfile")), mode_of(j("rootdir"))) == (0o777, 0o777)
    assert os.stat(j("rootfile")).st_uid == 0
    # Renaming and linking keep the owner.
    run_as(USER, GROUP, os.rename, j("f022"), j("renamed"))
    run_as(USER, GROUP, os.link, j("renamed"), j("linked"))
    assert os.stat(j("linked")).st_uid == USER


def test_permissions_for_other_users(mnt):
    pub = public_dir(mnt)
    j = lambda *n: os.path.join(pub, *n)  # noqa: E731
    make_file(j("rootfile"), b"secret")
    os.chmod(j("rootfile"), 0o644)
    make_file(j("private"), b"private")
    os.chmod(j("private"), 0o600)
    make_file(j("shared"), b"shared")
    os.chmod(j("shared"), 0o666)
    os.mkdir(j("rdir"), 0o755)
    os.mkdir(j("closed"), 0o700)
    make_file(j("closed", "f"), b"c")

    def probe():
        return {
            "write 0644": attempt(os.open, j("rootfile"), os.O_WRONLY),
            "read 0644": attempt(read_file, j("rootfile")),
            "read 0600": attempt(os.open, j("private"), os.O_RDONLY),
            "truncate 0644": attempt(os.truncate, j("rootfile"), 0),
            "create in 0755": attempt(make_file, j("rdir", "x")),
            "mkdir in 0755": attempt(os.mkdir, j("rdir", "y")),
            "list 0755": attempt(os.listdir, j("rdir")),
            "list 0700": attempt(os.listdir, j("closed")),
            "stat in 0700": attempt(os.stat, j("closed", "f")),
            "chmod not owner": attempt(os.chmod, j("rootfile"), 0o666),
            "chown not owner": attempt(os.chown, j("rootfile"), USER, GROUP),
            "utime times not owner": attempt(os.utime, j("shared"), None, ns=(1, 1)),
            "utime now writable": attempt(os.utime, j("shared")),
            "utime now 0644": attempt(os.utime, j("rootfile")),
            "write 0666": attempt(make_file, j("shared"), b"mine"),
            "setxattr not owner": attempt(os.setxattr, j("shared"), "user.x", b"1"),
        }

    got = run_as(USER, GROUP, probe)
    want = {
        "write 0644": errno.EACCES,
        "read 0644": 0,
        "read 0600": errno.EACCES,
        "truncate 0644": errno.EACCES,
        "create in 0755": errno.EACCES,
        "mkdir in 0755": errno.EACCES,
        "list 0755": 0,
        "list 0700": errno.EACCES,
        "stat in 0700": errno.EACCES,
        "chmod not owner": errno.EPERM,
        "chown not owner": errno.EPERM,
        "utime times not owner": errno.EPERM,
        "utime now writable": 0,
        "utime now 0644": errno.EACCES,
        "write 0666": 0,
        # user.* xattrs follow the file's permission bits: 0666 lets anyone set them.
        "setxattr not owner": 0,
    }
    assert names(got) == names(want)
    assert read_file(j("rootfile")) == b"secret"
    assert mode_of(j("rootfile")) == 0o644
    assert os.stat(j("rootfile")).st_uid == 0
    assert read_file(j("shared")) == b"mine"
    assert os.listdir(j("rdir")) == []


def test_owner_rights(mnt):
    pub = public_dir(mnt)
    j = lambda *n: os.path.join(pub, *n)  # noqa: E731
    run_as(USER, GROUP, make_file, j("mine"), b"m")

    def probe():
        return {
            "chmod own": attempt(os.chmod, j("mine"), 0o600),
            "utime own": attempt(os.utime, j("mine"), None, ns=(OLD, OLD)),
            "chgrp to member group": attempt(os.chown, j("mine"), -1, EXTRA_GROUP),
            "chgrp to other group": attempt(os.chown, j("mine"), -1, 3000),
            "chown to other user": attempt(os.chown, j("mine"), OTHER, -1),
            "setxattr own 0600": attempt(os.setxattr, j("mine"), "user.o", b"1"),
        }

    got = run_as(USER, GROUP, probe, groups=(EXTRA_GROUP,))
    want = {"chmod own": 0, "utime own": 0, "chgrp to member group": 0,
            "chgrp to other group": errno.EPERM, "chown to other user": errno.EPERM,
            "setxattr own 0600": 0}
    assert names(got) == names(want)
    st = os.stat(j("mine"))
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (USER, EXTRA_GROUP, 0o600)
    assert st.st_mtime_ns == OLD


def group_dir_ops(top, mode):
    """What a member of EXTRA_GROUP through a supplementary group may do in a setgid directory
    of that group with mode under top: each operation's errno and the modes it left."""
    top = os.path.join(top, "club-%o" % mode)
    os.mkdir(top)
    os.chown(top, 0, EXTRA_GROUP)
    os.chmod(top, mode)
    j = lambda *n: os.path.join(top, *n)  # noqa: E731

    def probe():
        def create(path, flags):
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | flags, 0o2775))

        got = {
            "create g+s": attempt(create, j("f"), os.O_EXCL),
            "create g+s, O_TRUNC": attempt(create, j("t"), os.O_TRUNC),
            "mkdir": attempt(os.mkdir, j("d"), 0o2775),
            "mkfifo": attempt(os.mkfifo, j("p"), 0o2775),
            "symlink": attempt(os.symlink, "f", j("l")),
            "link": attempt(os.link, j("f"), j("f2")),
            "rename": attempt(os.rename, j("f2"), j("f3")),
            "access W_OK": 0 if os.access(top, os.W_OK) else errno.EACCES,
            "unlink": attempt(os.unlink, j("f3")),
            "rmdir": attempt(os.rmdir, j("d")),
        }
        got.update({"mode " + n: "%o" % mode_of(j(n)) for n in ("f", "t", "p")
                    if os.path.lexists(j(n))})
        return got

    return run_as(USER, GROUP, probe, groups=(EXTRA_GROUP,), umask=0)


@pytest.mark.parametrize("mode", [0o2770, 0o2777], ids=["group-only", "anyone"])
def test_supplementary_group_rights_as_on_a_local_filesystem(mnt, mode):
    """Rights that come from a supplementary group: the daemon acts for the caller with fewer
    groups where it may (creds.c) and must end up where a local filesystem does. In a directory
    only the group may write, every operation needs the group; in one anyone may write, none
    does, but a new file keeps its set-group-ID bit only for a member of the directory's
    group."""
    ref = rfutil.make_dir("groups-ref-")
    want = group_dir_ops(ref, mode)
    got = group_dir_ops(mnt.p(""), mode)
    assert want["create g+s"] == 0 and want["mode f"] == "2775", want  # the reference itself
    assert got == want


def test_sticky_directory(mnt):
    st = mnt.p("sticky")
    os.mkdir(st)
    os.chmod(st, 0o1777)
    j = lambda *n: os.path.join(st, *n)  # noqa: E731

    def other_creates():
        make_file(j("theirs"), b"t")
        os.mkdir(j("theirdir"))

    run_as(OTHER, OTHER, other_creates)

    def user_tries():
        return {
            "unlink other's": attempt(os.unlink, j("theirs")),
            "rename other's away": attempt(os.rename, j("theirs"), j("stolen")),
            "rmdir other's": attempt(os.rmdir, j("theirdir")),
            "create own": attempt(make_file, j("mine"), b"m"),
            "replace other's by rename": attempt(os.rename, j("mine"), j("theirs")),
            "unlink own": attempt(os.unlink, j("mine")),
        }

    got = run_as(USER, GROUP, user_tries)
    want = {"unlink other's": errno.EPERM, "rename other's away": errno.EPERM,
            "rmdir other's": errno.EPERM, "create own": 0,
            "replace other's by rename": errno.EPERM, "unlink own": 0}
    assert names(got) == names(want)
    assert read_file(j("theirs")) == b"t"
    assert sorted(os.listdir(st)) == ["theirdir", "theirs"]
    # The owner of a file may delete it; so may root.
    run_as(OTHER, OTHER, os.unlink, j("theirs"))
    os.rmdir(j("theirdir"))
    assert os.listdir(st) == []


def test_setgid_directory(mnt):
    sg = mnt.p("sg")
    os.mkdir(sg)
    os.chown(sg, 0, EXTRA_GROUP)
    os.chmod(sg, 0o2777)
    j = lambda *n: os.path.join(sg, *n)  # noqa: E731
    make_file(j("by-root"))
    assert os.stat(j("by-root")).st_gid == EXTRA_GROUP

    def user_creates():
        make_file(j("f"), b"x")
        os.mkdir(j("d"))
        os.mkdir(j("d", "e"))
        os.symlink("f", j("l"))

    run_as(USER, GROUP, user_creates)
    for n in (("f",), ("d",), ("d", "e"), ("l",)):
        st = os.lstat(j(*n))
        assert (st.st_uid, st.st_gid) == (USER, EXTRA_GROUP), "/".join(n)
    assert mode_of(j("d")) & stat.S_ISGID, "subdirectories inherit setgid"
    assert mode_of(j("d", "e")) & stat.S_ISGID
    assert not mode_of(j("f")) & stat.S_ISGID, "files do not"
    # Outside a setgid directory the creator's group applies.
    pub = public_dir(mnt)
    run_as(USER, GROUP, make_file, os.path.join(pub, "g"))
    assert os.stat(os.path.join(pub, "g")).st_gid == GROUP


def test_write_by_owner_clears_setuid(mnt):
    pub = public_dir(mnt)
    j = lambda *n: os.path.join(pub, *n)  # noqa: E731
    for n in ("suid", "sgid", "trunc", "rootwrite"):
        make_file(j(n), b"x")
        os.chown(j(n), USER, GROUP)
    os.chmod(j("suid"), 0o4755)
    os.chmod(j("sgid"), 0o2775)
    os.chmod(j("trunc"), 0o4755)
    os.chmod(j("rootwrite"), 0o4755)

    def user_writes():
        with open(j("suid"), "r+b") as f:
            f.write(b"y")
        with open(j("sgid"), "r+b") as f:
            f.write(b"y")
        os.truncate(j("trunc"), 0)

    run_as(USER, GROUP, user_writes)
    assert mode_of(j("suid")) == 0o755
    assert mode_of(j("sgid")) == 0o775
    assert mode_of(j("trunc")) == 0o755
    assert read_file(j("suid")) == b"y"
    # Root (CAP_FSETID) writing keeps the bits.
    with open(j("rootwrite"), "r+b") as f:
        f.write(b"r")
    assert mode_of(j("rootwrite")) == 0o4755
