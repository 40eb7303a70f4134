"""Access times by the mount's atime mode, as a local filesystem keeps them.

The kernel never updates atime on a FUSE filesystem: the server does, and must follow the mount
options. relatime (the default) records an access when atime is not newer than mtime or ctime;
noatime never; strictatime always; nodiratime never for directory listings; a read-only mount
never. passthrough must also leave its source alone when the mount says so (the source's atime
is what passthrough reports), and never move the source's ctime by keeping atime. Every read
opens the file afresh, so it reaches the filesystem rather than the kernel's page cache.
"""

import os
import subprocess
import time

import pytest

from rfutil import make_file

S = 1_000_000_000
MODES = ("relatime", "noatime", "strictatime")


def _read(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.read(fd, 4096)
    finally:
        os.close(fd)


def _times(m, name, follow=True):
    """(atime, ctime) in ns through the mount, and from passthrough's source as well."""
    st = os.stat(m.p(name), follow_symlinks=follow)
    got = (st.st_atime_ns, st.st_ctime_ns)
    if m.src:
        src = os.stat(os.path.join(m.src, name), follow_symlinks=follow)
        assert (src.st_atime_ns, src.st_ctime_ns) == got, \
            "the source's atime/ctime differ from the mount's"
    return got


def _set_atime(m, name, atime_ns, mtime_ns, follow=True):
    os.utime(m.p(name), ns=(atime_ns, mtime_ns), follow_symlinks=follow)
    return _times(m, name, follow)


def _stale(m, name, follow=True):
    """atime older than mtime: relatime records the next access."""
    now = time.time_ns()
    return _set_atime(m, name, now - 2000 * S, now - 1000 * S, follow)


def _fresh(m, name, follow=True):
    """atime newer than mtime and ctime, and not a day old: relatime leaves it."""
    now = time.time_ns()
    return _set_atime(m, name, now + 3600 * S, now - 1000 * S, follow)


def _check(m, name, before, updated, what, follow=True):
    atime, ctime = _times(m, name, follow)
    assert ctime == before[1], "%s changed ctime" % what
    if updated:
        assert atime != before[0], "%s left atime alone (%s mount)" % (what, m.mode)
    else:
        assert atime == before[0], "%s changed atime (%s mount)" % (what, m.mode)


def _mount(mounter, transport, fs, *opts):
    m = mounter(transport, fs, opts=opts)
    m.mode = ",".join(opts)
    return m


def remount(m, opts):
    """mount -o remount,OPTS without helpers, then wait until the daemon saw the new flags."""
    seen = m.log().count(" remounted ")
    r = subprocess.run(["mount", "-i", "-o", "remount," + opts, m.path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, universal_newlines=True)
    assert r.returncode == 0, "mount -o remount,%s: %s" % (opts, r.stdout)
    deadline = time.monotonic() + 5
    while m.log().count(" remounted ") <= seen:
        assert time.monotonic() < deadline, "the daemon did not notice the remount\n" + \
            m.log_report()
        time.sleep(0.01)
    m.mode = opts


@pytest.mark.parametrize("mode", MODES)
def test_file_read_atime(mounter, transport, fs, mode):
    m = _mount(mounter, transport, fs, mode)
    make_file(m.p("f"), b"data")
    before = _stale(m, "f")
    _read(m.p("f"))
    _check(m, "f", before, mode != "noatime", "a read after a write")
    before = _fresh(m, "f")
    _read(m.p("f"))
    _check(m, "f", before, mode == "strictatime", "a read of a file read since")


@pytest.mark.parametrize("mode", MODES)
def test_listing_and_readlink_atime(mounter, transport, fs, mode):
    m = _mount(mounter, transport, fs, mode)
    os.mkdir(m.p("d"))
    make_file(m.p("d", "f"))
    os.symlink("d/f", m.p("l"))
    before = _fresh(m, "d")
    os.listdir(m.p("d"))
    _check(m, "d", before, mode == "strictatime", "a listing")
    before = _stale(m, "d")
    os.listdir(m.p("d"))
    _check(m, "d", before, mode != "noatime", "a listing after a change")
    before = _stale(m, "l", follow=False)
    assert os.readlink(m.p("l")) == "d/f"
    _check(m, "l", before, mode != "noatime", "a readlink", follow=False)


def test_nodiratime(mounter, transport, fs):
    m = _mount(mounter, transport, fs, "strictatime", "nodiratime")
    os.mkdir(m.p("d"))
    make_file(m.p("d", "f"), b"x")
    before = _stale(m, "d")
    os.listdir(m.p("d"))
    _check(m, "d", before, False, "a listing")
    before = _fresh(m, "d/f")
    _read(m.p("d", "f"))
    _check(m, "d/f", before, True, "a read")


def test_remount_changes_atime_mode(mounter, transport, fs):
    """The daemon follows remounts: noatime, then strictatime, then read-only, then rw."""
    m = _mount(mounter, transport, fs, "noatime")
    make_file(m.p("f"), b"data")
    before = _stale(m, "f")
    _read(m.p("f"))
    _check(m, "f", before, False, "a read")
    remount(m, "strictatime")
    before = _fresh(m, "f")
    _read(m.p("f"))
    _check(m, "f", before, True, "a read")
    remount(m, "ro")
    before = _times(m, "f")
    _read(m.p("f"))
    _check(m, "f", before, False, "a read on a read-only mount")
    remount(m, "rw")
    before = _fresh(m, "f")
    _read(m.p("f"))
    _check(m, "f", before, True, "a read once read-write again")
