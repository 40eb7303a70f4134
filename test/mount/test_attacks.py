"""Attacks on the shipped filesystems by unprivileged users.

Every test here mounts a filesystem with a root daemon and allow_other (the mount options a
shared machine would use), then acts as an unprivileged user and tries to get more than the
local filesystem underneath (or, for memfs, than tmpfs) would give: read what an ACL denies,
keep set-user-ID bits on a file it overwrote, use blocks reserved for root, hang a queue thread,
confuse tools with duplicate inode numbers, fill the daemon's memory. Where it helps, the same
operation is done on a local directory and the outcomes are compared, so the reference is the
kernel's own behaviour rather than a table written here.

The users are numeric ids that own nothing (no passwd entries needed): ATTACKER, and MEMBER,
whose supplementary group CLUB is named in ACLs. Each section names the guarantee of
docs/security.md it proves.
"""

import ctypes
import errno
import os
import shutil
import stat
import subprocess
import threading
import time

import pytest

import rfutil
from rfutil import make_file, raises_errno, read_file, run_as

ATTACKER, ATTACKER_GID = 60100, 60100
MEMBER, MEMBER_GID = 60101, 60101
CLUB = 60200


def as_attacker(fn, *args, **kw):
    return run_as(ATTACKER, ATTACKER_GID, fn, *args, **kw)


def as_member(fn, *args, **kw):
    return run_as(MEMBER, MEMBER_GID, fn, *args, groups=(CLUB,), **kw)


def errno_of(fn, *args):
    """0 if fn(*args) worked, else its errno."""
    try:
        fn(*args)
        return 0
    except OSError as e:
        return e.errno


def mode_of(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def local_dir(name):
    """A root-owned 0755 directory outside any mount, on the same filesystem as the sources."""
    return rfutil.make_dir(name + "-")


# ---------------------------------------------------------------------------------------------
# POSIX ACLs on the source mean through the mount what they mean on the source
# (ringfuse-passthrough negotiates the kernel's ACL support)


def acl_tool(*argv):
    tool = shutil.which(argv[0])
    assert tool, "%s is missing: install the Debian package acl (scripts/deps.sh)" % argv[0]
    return subprocess.run([tool] + list(argv[1:]), check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True).stdout


def setfacl(*args):
    acl_tool("setfacl", *args)


def getfacl(path):
    """The ACL entries of path (no comment lines, no effective-rights remarks)."""
    out = acl_tool("getfacl", "--omit-header", "--no-effective", "--numeric", path)
    return sorted(line for line in out.splitlines() if line and not line.startswith("#"))


def try_read(path):
    with open(path, "rb") as f:
        return f.read()


def try_write(path):
    fd = os.open(path, os.O_WRONLY)
    os.close(fd)


def try_list(path):
    return sorted(os.listdir(path))


@pytest.mark.filesystems("passthrough")
def test_acl_denies_named_user(mnt):
    src = os.path.join(mnt.src, "f")
    make_file(src, b"secret", 0o644)
    setfacl("-m", "u:%d:---" % ATTACKER, src)
    assert errno_of(as_attacker, try_read, src) == errno.EACCES, "the source itself denies"
    assert errno_of(as_attacker, try_read, mnt.p("f")) == errno.EACCES
    # Everyone else keeps what the mode bits give them.
    assert as_member(try_read, mnt.p("f")) == b"secret"


@pytest.mark.filesystems("passthrough")
def test_acl_allows_named_group(mnt):
    src = os.path.join(mnt.src, "f")
    make_file(src, b"for the club", 0o600)
    setfacl("-m", "g:%d:r" % CLUB, src)
    assert as_member(try_read, src) == b"for the club"
    assert as_member(try_read, mnt.p("f")) == b"for the club"
    assert errno_of(as_attacker, try_read, mnt.p("f")) == errno.EACCES
    assert errno_of(as_member, try_write, mnt.p("f")) == errno.EACCES


@pytest.mark.filesystems("passthrough")
def test_acl_mask_limits_named_entries(mnt):
    src = os.path.join(mnt.src, "f")
    make_file(src, b"masked", 0o600)
    setfacl("-m", "u:%d:rw,m::r" % ATTACKER, src)
    for path in (src, mnt.p("f")):
        assert as_attacker(try_read, path) == b"masked", path
        assert errno_of(as_attacker, try_write, path) == errno.EACCES, path


@pytest.mark.filesystems("passthrough")
def test_acl_on_directory_denies_search_and_listing(mnt):
    d = os.path.join(mnt.src, "d")
    os.mkdir(d, 0o755)
    make_file(os.path.join(d, "f"), b"x", 0o644)
    setfacl("-m", "u:%d:---" % ATTACKER, d)
    assert errno_of(as_attacker, try_list, mnt.p("d")) == errno.EACCES
    assert errno_of(as_attacker, try_read, mnt.p("d", "f")) == errno.EACCES
    assert as_member(try_list, mnt.p("d")) == ["f"]


def create_file(path, mode=0o666):
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, mode))


@pytest.mark.filesystems("passthrough")
def test_default_acl_inherited_by_files_created_through_the_mount(mnt):
    """A file or directory created through the mount gets what the same creation on the source
    gives: the directory's default ACL, with the umask ignored as it is when one exists."""
    ref = local_dir("acl-ref")
    for top in (mnt.src, ref):
        d = os.path.join(top, "shared")
        os.mkdir(d)
        os.chmod(d, 0o777)
        setfacl("-m", "d:u:%d:rw,d:g:%d:rwx,d:m::rwx,d:o::-" % (ATTACKER, CLUB), d)

    def create_all(top):
        create_file(os.path.join(top, "shared", "file"), 0o666)
        os.mkdir(os.path.join(top, "shared", "dir"), 0o777)

    as_member(create_all, ref, umask=0o077)
    as_member(create_all, mnt.path, umask=0o077)
    for name in ("file", "dir"):
        want = getfacl(os.path.join(ref, "shared", name))
        got = getfacl(os.path.join(mnt.src, "shared", name))
        assert got == want, name
        assert "user:%d:rw-" % ATTACKER in want
        assert mode_of(os.path.join(mnt.src, "shared", name)) == \
            mode_of(os.path.join(ref, "shared", name)), name
    # And the inherited entry is honoured through the mount.
    assert as_attacker(try_read, mnt.p("shared", "file")) == b""


@pytest.mark.filesystems("passthrough")
def test_umask_still_applies_without_default_acl(mnt):
    """With ACL support negotiated the kernel leaves the umask to the daemon."""
    pub = os.path.join(mnt.src, "pub")
    os.mkdir(pub, 0o777)
    os.chmod(pub, 0o777)
    as_member(create_file, mnt.p("pub", "f"), 0o666, umask=0o027)
    as_member(os.mkdir, mnt.p("pub", "d"), 0o777, umask=0o027)
    assert mode_of(os.path.join(pub, "f")) == 0o640
    assert mode_of(os.path.join(pub, "d")) == 0o750


@pytest.mark.filesystems("passthrough")
def test_acl_set_through_the_mount(mnt):
    make_file(mnt.p("f"), b"mine", 0o600)
    os.chown(mnt.p("f"), MEMBER, MEMBER_GID)
    as_member(subprocess.check_call, ["setfacl", "-m", "u:%d:r" % ATTACKER, mnt.p("f")])
    assert "user:%d:r--" % ATTACKER in getfacl(os.path.join(mnt.src, "f"))
    assert as_attacker(try_read, mnt.p("f")) == b"mine"
    # Only the owner may change the ACL, as on the source.
    assert errno_of(as_attacker, setfacl_as_caller, mnt.p("f")) == errno.EPERM


def setfacl_as_caller(path):
    """setxattr of an access ACL granting the caller everything, the way setfacl does it."""
    import struct
    entries = [(0x01, 0o7, 0xffffffff), (0x02, 0o7, os.getuid()), (0x04, 0o7, 0xffffffff),
               (0x10, 0o7, 0xffffffff), (0x20, 0o7, 0xffffffff)]
    value = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, p, i) for t, p, i in entries)
    os.setxattr(path, "system.posix_acl_access", value)


# ---------------------------------------------------------------------------------------------
# Set-user-ID and set-group-ID bits are cleared whenever the local filesystem clears them:
# writes (buffered and O_DIRECT, where the kernel leaves it to the daemon with
# FUSE_WRITE_KILL_SUIDGID), truncate, fallocate, copy_file_range and chown. Each operation is
# done by the same user on the same kind of file through the mount and in a local directory;
# the modes afterwards must agree.


def public_dir(top, name="pub"):
    d = os.path.join(top, name)
    os.mkdir(d)
    os.chmod(d, 0o777)
    return d


def direct_write(path):
    import mmap
    buf = mmap.mmap(-1, rfutil.PAGE)
    buf.write(b"d" * rfutil.PAGE)
    fd = os.open(path, os.O_WRONLY | os.O_DIRECT)
    try:
        assert os.pwritev(fd, [buf], 0) == rfutil.PAGE
    finally:
        os.close(fd)
        buf.close()


def buffered_write(path):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, b"b")
    finally:
        os.close(fd)


def ftruncate(path):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(fd, 1)
    finally:
        os.close(fd)


def fallocate(path):
    fd = os.open(path, os.O_WRONLY)
    try:
        rfutil.fallocate(fd, 0, 0, 2 * rfutil.PAGE)
    finally:
        os.close(fd)


def copy_range(path):
    src = os.path.join(os.path.dirname(path), "data")
    fi, fo = os.open(src, os.O_RDONLY), os.open(path, os.O_WRONLY)
    try:
        assert os.copy_file_range(fi, fo, 4, 0, 0) == 4
    finally:
        os.close(fi)
        os.close(fo)


def chgrp(path):
    os.chown(path, -1, CLUB)


OPS = {"write": buffered_write, "direct_write": direct_write,
       "truncate": lambda p: os.truncate(p, 1), "ftruncate": ftruncate,
       "fallocate": fallocate, "copy_file_range": copy_range, "chgrp": chgrp}
PRIVS = stat.S_ISUID | stat.S_ISGID


def privs_after(top, op, mode, who):
    """Mode of a file after `who` ("attacker", "owner" or "root") did op to it."""
    d = os.path.join(top, "%s-%s-%o" % (op, who, mode))
    os.mkdir(d)
    os.chmod(d, 0o777)
    make_file(os.path.join(d, "data"), b"data" * 1024, 0o644)
    path = os.path.join(d, "f")
    make_file(path, b"x" * 8192, 0o644)
    if who == "owner":
        os.chown(path, ATTACKER, ATTACKER_GID)
    os.chmod(path, mode)
    if who == "root":
        OPS[op](path)
    else:
        run_as(ATTACKER, ATTACKER_GID, OPS[op], path, groups=(CLUB,))
    return stat.S_IMODE(os.stat(path).st_mode)


CASES = [(op, 0o6777, "attacker") for op in OPS if op != "chgrp"] + \
    [(op, 0o6767, "attacker") for op in ("write", "direct_write", "truncate")] + \
    [("chgrp", 0o6775, "owner"), ("chgrp", 0o6765, "owner")] + \
    [(op, 0o6777, "root") for op in ("write", "direct_write", "fallocate", "copy_file_range")]


def test_suid_sgid_cleared_as_on_a_local_filesystem(mnt):
    ref = local_dir("privs-ref")
    got, want = {}, {}
    for op, mode, who in CASES:
        key = "%s by %s on %o" % (op, who, mode)
        want[key] = oct(privs_after(ref, op, mode, who))
        got[key] = oct(privs_after(mnt.path, op, mode, who))
    assert got == want
    # The attacker's writes really lose the bits (not only "agree with a local filesystem").
    assert not int(want["direct_write by attacker on 6777"], 8) & PRIVS


# ---------------------------------------------------------------------------------------------
# No capability and no root identity behind an unprivileged user's data (ringfuse-passthrough):
# blocks a filesystem reserves for root stay reserved, whichever way the data travels.


@pytest.fixture
def small_ext4():
    """A 32 MiB ext4 filesystem with 10% of its blocks reserved for root, loop-mounted on a
    fresh directory anyone may write in."""
    for tool in ("mkfs.ext4", "losetup"):
        assert shutil.which(tool), "%s is missing (Debian packages e2fsprogs, mount)" % tool
    d = rfutil.make_dir("ext4-")
    img = d + ".img"
    subprocess.check_call(["truncate", "-s", "32M", img])
    subprocess.check_call(["mkfs.ext4", "-q", "-F", "-m", "10", "-O", "^has_journal", img])
    subprocess.check_call(["mount", "-o", "loop", img, d])
    try:
        os.chmod(d, 0o1777)
        yield d
    finally:
        if rfutil.umount(d).returncode != 0:
            rfutil.umount(d, lazy=True)
        os.unlink(img)


def reserved_left(path):
    """Bytes free for root but not for others."""
    st = os.statvfs(path)
    return (st.f_bfree - st.f_bavail) * st.f_frsize


def fill(path, how):
    """Write (or allocate) until the filesystem refuses; returns the bytes that got in."""
    import mmap
    chunk = 256 * 1024
    flags = os.O_CREAT | os.O_WRONLY | (os.O_DIRECT if how == "direct" else 0)
    fd = os.open(path, flags, 0o644)
    buf = mmap.mmap(-1, chunk)
    buf.write(b"z" * chunk)
    done = 0
    try:
        while done < 64 * 1024 * 1024:
            if how == "fallocate":
                rfutil.fallocate(fd, 0, done, chunk)
                n = chunk
            else:
                n = os.pwritev(fd, [buf], done)
            if n <= 0:
                break
            done += n
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
    finally:
        os.close(fd)
        buf.close()
    return done


@pytest.mark.filesystems("passthrough")
@pytest.mark.parametrize("how,opts", [("write", ()), ("direct", ()), ("fallocate", ()),
                                      ("write", ("writeback",)), ("write", ("passthrough",))],
                         ids=["write", "direct", "fallocate", "writeback", "kernel-passthrough"])
def test_reserved_blocks_stay_reserved(mounter, transport, fs, small_ext4, how, opts):
    reserved = reserved_left(small_ext4)
    assert reserved > 2 * 1024 * 1024
    m = mounter(transport, fs, opts=opts, src=small_ext4)
    got = as_attacker(fill, m.p("hog"), how, timeout=120)
    left = reserved_left(small_ext4)
    assert left > reserved // 2, "an unprivileged user got %d of the %d bytes reserved for " \
        "root (wrote %d)" % (reserved - left, reserved, got)
    # The attacker got as far as a local user would: the rest of the filesystem.
    assert got > 16 * 1024 * 1024
    # Root still can use what is reserved.
    os.unlink(m.p("hog"))


def capabilities(pid):
    """{tid: effective capability mask} of every thread of a process."""
    caps = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                if line.startswith("CapEff:"):
                    caps[int(tid)] = int(line.split()[1], 16)
    return caps


CAP_NAMES = {0: "CHOWN", 1: "DAC_OVERRIDE", 2: "DAC_READ_SEARCH", 3: "FOWNER", 4: "FSETID",
             6: "SETGID", 7: "SETUID", 27: "MKNOD"}


@pytest.mark.filesystems("passthrough")
def test_threads_keep_no_capability_they_do_not_need(mnt):
    """Serving threads act for callers: only the filesystem capabilities (which follow the
    filesystem uid) and the two that switch identities stay effective. CAP_SYS_ADMIN is raised
    only around the backing-file ioctl, and nothing else survives (CAP_SYS_RESOURCE would hand
    out reserved blocks and exceed quotas, CAP_SYS_ADMIN the file-max limit)."""
    pub = public_dir(mnt.path)
    for i in range(20):
        as_attacker(make_file, os.path.join(pub, "f%d" % i), b"x" * 100)
    allowed = sum(1 << b for b in CAP_NAMES)
    caps = capabilities(mnt.pid)
    assert len(caps) > 1
    extra = {tid: [b for b in range(64) if c & ~allowed & (1 << b)] for tid, c in caps.items()}
    assert not any(extra.values()), "threads with capabilities they do not need: %r" % extra


# ---------------------------------------------------------------------------------------------
# create(2) on a name that became something other than a regular file on the source after the
# kernel cached its absence: refused, never opened by the daemon (a FIFO would hang a queue
# thread, a device would be opened although the mount is nodev).


def open_created(path, flags=os.O_CREAT | os.O_WRONLY):
    os.close(os.open(path, flags, 0o644))


@pytest.mark.filesystems("passthrough")
@pytest.mark.parametrize("kind", ["fifo", "device", "socket"])
def test_create_on_a_planted_special_file_is_refused(mnt, kind):
    src = os.path.join(mnt.src, "pub")
    os.mkdir(src)
    os.chmod(src, 0o777)
    # The kernel looks the name up and caches that it does not exist (cache=auto: 1 s).
    assert errno_of(os.stat, mnt.p("pub", "x")) == errno.ENOENT
    planted = os.path.join(src, "x")
    if kind == "fifo":
        os.mkfifo(planted, 0o666)
    elif kind == "device":
        os.mknod(planted, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null
    else:
        import socket
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(planted)
        sock.close()
    os.chmod(planted, 0o666)
    got = rfutil.call_with_timeout(as_attacker, (open_created, mnt.p("pub", "x")), timeout=5)
    if got == "timeout" and kind == "fifo":
        # Let the daemon's open return, so the mount can be taken down.
        os.close(os.open(planted, os.O_RDONLY | os.O_NONBLOCK))
        time.sleep(0.5)
    assert isinstance(got, OSError) and got.errno == errno.EEXIST, \
        "create on a planted %s: %r" % (kind, got)
    # The planted object is untouched and the mount still serves.
    assert not stat.S_ISREG(os.lstat(planted).st_mode)
    make_file(mnt.p("pub", "ok"), b"fine")
    assert read_file(mnt.p("pub", "ok")) == b"fine"


@pytest.mark.filesystems("passthrough")
def test_create_on_a_planted_regular_file_opens_it(mnt):
    src = os.path.join(mnt.src, "pub")
    os.mkdir(src)
    os.chmod(src, 0o777)
    assert errno_of(os.stat, mnt.p("pub", "x")) == errno.ENOENT
    assert errno_of(os.stat, mnt.p("pub", "y")) == errno.ENOENT
    for name in ("x", "y"):
        make_file(os.path.join(src, name), b"kept")
        os.chmod(os.path.join(src, name), 0o666)
    as_attacker(open_created, mnt.p("pub", "x"), os.O_CREAT | os.O_WRONLY)
    assert read_file(os.path.join(src, "x")) == b"kept"
    assert errno_of(as_attacker, open_created, mnt.p("pub", "y"),
                    os.O_CREAT | os.O_EXCL | os.O_WRONLY) == errno.EEXIST


# ---------------------------------------------------------------------------------------------
# Inode numbers are unique through the mount, also across filesystems mounted inside the source
# (ringfuse-passthrough shows everything under one device): tar, rsync -H and cp -a take two
# names with one inode number for hard links.


@pytest.fixture
def nested_tmpfs():
    """A fresh tmpfs with another fresh tmpfs mounted at sub/: both number their files alike."""
    top = rfutil.make_dir("nested-")
    subprocess.check_call(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", top])
    sub = os.path.join(top, "sub")
    os.mkdir(sub)
    subprocess.check_call(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", sub])
    try:
        yield top
    finally:
        for d in (sub, top):
            if rfutil.umount(d).returncode != 0:
                rfutil.umount(d, lazy=True)


def dir_inos(path):
    """{name: d_ino} as readdir reports them."""
    return {e.name: e.inode() for e in os.scandir(path)}


@pytest.mark.filesystems("passthrough")
def test_inode_numbers_unique_across_submounts(mounter, transport, fs, nested_tmpfs):
    top = nested_tmpfs
    for d in (top, os.path.join(top, "sub")):
        for i in range(8):
            make_file(os.path.join(d, "f%d" % i), b"%d" % i)
        os.mkdir(os.path.join(d, "d"))
    # On the source, the two filesystems do hand out the same numbers.
    assert set(dir_inos(top).values()) & set(dir_inos(os.path.join(top, "sub")).values())
    m = mounter(transport, fs, src=top)
    seen = {}
    for d in ("", "sub"):
        for name in ["f%d" % i for i in range(8)] + ["d"]:
            st = os.lstat(m.p(d, name))
            key = (st.st_dev, st.st_ino)
            assert key not in seen, "%s/%s and %s share inode number %d" % (
                d, name, seen.get(key), st.st_ino)
            seen[key] = "%s/%s" % (d, name)
        # readdir gives each name the number stat gives it.
        listed = dir_inos(m.p(d))
        for name, ino in listed.items():
            if name != "sub":  # a mountpoint's d_ino is the covered directory's, locally too
                assert ino == os.lstat(m.p(d, name)).st_ino, (d, name)
    # Two links to one file are still one inode.
    os.link(m.p("sub", "f1"), m.p("sub", "f1-link"))
    assert os.stat(m.p("sub", "f1-link")).st_ino == os.stat(m.p("sub", "f1")).st_ino
    # Unmount the daemon before the tmpfs under it.
    m.unmount()


# ---------------------------------------------------------------------------------------------
# Smaller holes (ringfuse-passthrough)


def set_nofile(pid, soft):
    """Lower (or restore) a process's soft descriptor limit; returns the previous one."""
    import resource
    old, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    return old


@pytest.mark.filesystems("passthrough")
def test_listing_survives_failing_lookups(mnt):
    """readdirplus looks each name up; when that fails (here: the daemon is out of descriptors)
    the name is still listed, without attributes, instead of the rest of the directory
    vanishing."""
    d = os.path.join(mnt.src, "many")
    os.mkdir(d)
    names = sorted("entry-%03d" % i for i in range(200))
    for n in names:
        make_file(os.path.join(d, n))
    # One descriptor left: the opendir takes it, every lookup then fails with EMFILE.
    os.stat(mnt.p("many"))
    used = len(os.listdir("/proc/%d/fd" % mnt.pid))
    old = set_nofile(mnt.pid, used + 1)
    try:
        got = rfutil.call_with_timeout(lambda: sorted(os.listdir(mnt.p("many"))), timeout=20)
    finally:
        set_nofile(mnt.pid, old)
    assert got == names
    mnt.allow_errors = True  # the daemon says it ran out of descriptors


@pytest.mark.filesystems("passthrough")
def test_unprivileged_daemon_refuses_no_default_permissions_for_others(transport, fs):
    """Without the kernel's checks every user of an allow_other mount would act with the
    daemon user's rights on SOURCE."""
    mnt, src = rfutil.make_dir("mnt-"), rfutil.make_dir("src-")
    os.chown(mnt, ATTACKER, ATTACKER_GID)
    argv = ["setpriv", "--reuid=%d" % ATTACKER, "--regid=%d" % ATTACKER_GID,
            "--clear-groups"] + rfutil.daemon_argv(
        fs, mnt, transport, opts=("allow_other", "no_default_permissions"), src=src)
    out = rfutil.expect_start_failure(argv, mnt + ".log", mnt)
    assert "no_default_permissions" in out and "refused" in out, out


@pytest.mark.filesystems("passthrough")
def test_mountpoint_after_double_dash_is_checked(transport, fs):
    """The mountpoint is the one the library mounts, "--" and all: a mountpoint inside SOURCE
    named like an option is refused like any other."""
    src = rfutil.make_dir("src-")
    os.mkdir(os.path.join(src, "-mnt"))
    argv = ["sh", "-c", 'cd "$0" && exec "$@"', src, rfutil.fs_binary(fs), "-f", "-o",
            ",".join(rfutil.transport_opts(transport) + ["allow_other"]), "--", ".", "-mnt"]
    out = rfutil.expect_start_failure(argv, src + ".log", os.path.join(src, "-mnt"))
    assert "inside the source" in out, out


@pytest.fixture
def tmpfs_src():
    d = rfutil.make_dir("tmpfs-")
    subprocess.check_call(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", d])
    try:
        yield d
    finally:
        if rfutil.umount(d).returncode != 0:
            rfutil.umount(d, lazy=True)


@pytest.mark.filesystems("passthrough")
def test_xattr_size_probes_never_fail_with_erange(mounter, transport, fs, tmpfs_src):
    """A list of names or a value larger than the reply area: the size probe gives the size,
    never ERANGE (getfattr would probe again forever), and the read says E2BIG."""
    m = mounter(transport, fs, opts=("max_write=4096",), src=tmpfs_src)
    path = os.path.join(tmpfs_src, "f")
    make_file(path, b"x", 0o644)
    names = ["user.%s%03d" % ("n" * 200, i) for i in range(60)]
    for n in names:
        os.setxattr(path, n, b"v")
    os.setxattr(path, "user.big", b"b" * 20000)
    want = sum(len(n) + 1 for n in names) + len("user.big") + 1
    for who in (os.getuid(), ATTACKER):
        got = run_as(who, who, rfutil.listxattr_raw, m.p("f"), 0)
        assert got == want, who
        # Whether the list fits the reply area depends on the transport: it comes whole, or
        # not at all (E2BIG), never "too small, ask again" (ERANGE).
        assert errno_of(run_as, who, who, rfutil.listxattr_raw, m.p("f"), want) in (
            0, errno.E2BIG), who
    assert rfutil.getxattr_raw(m.p("f"), "user.big", 0) == 20000
    assert errno_of(rfutil.getxattr_raw, m.p("f"), "user.big", 20000) in (0, errno.E2BIG)


# ---------------------------------------------------------------------------------------------
# memfs: everything a user can make it store counts against size= (ENOSPC, not the daemon's
# memory); utimensat's rules hold when memfs checks permissions itself with the writeback
# cache; removing and renaming fail with the errors Linux gives, in the order it checks them.

SMALL = 1024 * 1024  # size= of the memfs mounts below


def store_until_full(fn, limit):
    """Call fn(i) until it fails with ENOSPC; returns how many calls succeeded (or limit)."""
    for i in range(limit):
        try:
            fn(i)
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
            return i
    return limit


def fill_with_xattrs(path):
    value = b"v" * 60000
    return store_until_full(lambda i: os.setxattr(path, "user.x%05d" % i, value), 200)


def fill_with_links(path):
    d = os.path.dirname(path)
    return store_until_full(
        lambda i: os.link(path, os.path.join(d, "%05d" % i + "l" * 250)), 20000)


def fill_with_symlinks(d):
    target = "t" * 4000
    return store_until_full(lambda i: os.symlink(target, os.path.join(d, "s%05d" % i)), 2000)


@pytest.mark.filesystems("memfs")
@pytest.mark.mount_opts("size=1m")
@pytest.mark.parametrize("what", ["xattrs", "links", "symlinks"])
def test_metadata_counts_against_size(mnt, what):
    pub = public_dir(mnt.path)
    f = os.path.join(pub, "f")
    as_attacker(make_file, f, b"")
    if what == "xattrs":
        n = as_attacker(fill_with_xattrs, f, timeout=120)
        stored = n * 60000
    elif what == "links":
        n = as_attacker(fill_with_links, f, timeout=120)
        stored = n * 255
    else:
        n = as_attacker(fill_with_symlinks, pub, timeout=120)
        stored = n * 4000
    assert stored <= SMALL, "%s: %d bytes stored in a %d-byte memfs without ENOSPC" % (
        what, stored, SMALL)
    st = os.statvfs(mnt.path)
    assert st.f_bfree < st.f_blocks // 10, "statfs does not show the space as used"
    # What is freed comes back.
    for name in os.listdir(pub):
        if name != "f":
            os.unlink(os.path.join(pub, name))
    for name in os.listxattr(f):
        os.removexattr(f, name)
    # A symlink's target is freed with its inode, when the kernel's FORGET for it (sent after
    # the unlink, not waited for) has been served.
    deadline = time.monotonic() + 5
    while os.statvfs(mnt.path).f_bfree <= os.statvfs(mnt.path).f_blocks * 9 // 10 and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.statvfs(mnt.path).f_bfree > os.statvfs(mnt.path).f_blocks * 9 // 10


def set_times(path, atime, mtime):
    os.utime(path, ns=(atime, mtime))


def touch(path):
    os.utime(path, None)


@pytest.mark.filesystems("memfs")
@pytest.mark.mount_opts("no_default_permissions", "writeback")
def test_utimensat_rules_with_writeback_and_own_checks(mnt):
    pub = public_dir(mnt.path)
    for name, mode in (("ro", 0o644), ("rw", 0o666)):
        make_file(os.path.join(pub, name), b"x")
        os.chmod(os.path.join(pub, name), mode)
    old = 1_000_000_000 * 10**9
    # Not the owner, not a writer: no times at all.
    assert errno_of(as_attacker, set_times, os.path.join(pub, "ro"), old, old) == errno.EPERM
    assert errno_of(as_attacker, touch, os.path.join(pub, "ro")) == errno.EACCES
    # A writer may touch, not set arbitrary times.
    assert errno_of(as_attacker, set_times, os.path.join(pub, "rw"), old, old) == errno.EPERM
    assert errno_of(as_attacker, touch, os.path.join(pub, "rw")) == 0
    assert os.stat(os.path.join(pub, "ro")).st_mtime_ns != old
    assert os.stat(os.path.join(pub, "rw")).st_mtime_ns != old


def remove_and_rename_errors(top):
    """Errors of rmdir and rename by an unprivileged user on a prepared tree. (Removing or
    renaming over an object of the wrong type fails in the kernel, which knows the types,
    before the filesystem is asked.)"""
    j = lambda *n: os.path.join(top, *n)  # noqa: E731
    ops = {
        "rmdir nonempty in closed dir": (os.rmdir, j("closed", "full")),
        "rmdir nonempty in sticky dir": (os.rmdir, j("sticky", "full")),
        "rename over nonempty in closed dir": (os.rename, j("open", "empty"), j("closed", "full")),
        "rename out of closed dir": (os.rename, j("closed", "file"), j("open", "x")),
        "rename over nonempty in sticky dir": (os.rename, j("open", "empty"), j("sticky", "full")),
        "rename nonempty over nonempty": (os.rename, j("open", "full2"), j("open", "full3")),
    }
    out = {}
    for name, (fn, *args) in ops.items():
        try:
            fn(*args)
            out[name] = "ok"
        except OSError as e:
            out[name] = errno.errorcode[e.errno]
    return out


def build_tree(top):
    j = lambda *n: os.path.join(top, *n)  # noqa: E731
    for d, mode in (("closed", 0o755), ("sticky", 0o1777), ("open", 0o777)):
        os.mkdir(j(d))
        os.chmod(j(d), mode)
    for d in ("closed", "sticky"):
        os.mkdir(j(d, "full"))
        make_file(j(d, "full", "x"))
        make_file(j(d, "file"))
    for d in ("full2", "full3"):
        os.mkdir(j("open", d))
        make_file(j("open", d, "x"))
        os.chown(j("open", d), ATTACKER, ATTACKER_GID)
    os.mkdir(j("open", "empty"))
    make_file(j("open", "afile"))
    for p in (j("open", "empty"), j("open", "afile")):
        os.chown(p, ATTACKER, ATTACKER_GID)


@pytest.mark.filesystems("memfs")
@pytest.mark.mount_opts("no_default_permissions")
def test_remove_and_rename_fail_as_on_linux(mnt):
    ref = local_dir("errors-ref")
    build_tree(ref)
    build_tree(mnt.path)
    want = as_attacker(remove_and_rename_errors, ref)
    got = as_attacker(remove_and_rename_errors, mnt.path)
    assert got == want
