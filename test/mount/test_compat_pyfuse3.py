"""A filesystem on pyfuse3 (Debian's python3-pyfuse3, over libfuse3's low-level API) running
over ringfuse: the case of a filesystem that owns its event loop.

compat_pyfuse3fs.py is a small in-memory filesystem written on pyfuse3's documented API and run
with its trio loop: pyfuse3 waits for /dev/fuse to become readable, reads each request with
fuse_session_receive_buf(), hands it to fuse_session_process_buf() and answers it later from a
coroutine. Directories, files written and read back in pieces, truncation, chmod, renames,
symlinks, xattrs, statfs and a listing long enough to need several readdir calls must behave;
reads that sleep in the filesystem must overlap (several requests answered out of order).

Such a loop is served by the classic transport whatever was asked for; with transport=uring
the library says so.
"""

import errno
import os
import random
import stat
import sys
import threading

import pytest

import rfutil
from compat_util import OWN_LOOP_NOTE, assert_served_by, run_mounter  # noqa: F401

pytestmark = pytest.mark.transports("uring", "dev")

FS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "compat_pyfuse3fs.py")


def exercise(mnt):
    p = lambda *names: os.path.join(mnt, *names)  # noqa: E731

    os.mkdir(p("dir"))
    os.mkdir(p("dir", "sub"))
    data = random.Random(7).randbytes(300000)
    with open(p("dir", "file"), "wb") as f:
        for off in range(0, len(data), 65536):
            f.write(data[off:off + 65536])
    with open(p("dir", "file"), "rb") as f:
        assert f.read() == data
        assert os.pread(f.fileno(), 1000, 123456) == data[123456:124456]
    assert os.stat(p("dir", "file")).st_size == len(data)

    os.truncate(p("dir", "file"), 1000)
    with open(p("dir", "file"), "rb") as f:
        assert f.read() == data[:1000]
    os.chmod(p("dir", "file"), 0o640)
    assert stat.S_IMODE(os.stat(p("dir", "file")).st_mode) == 0o640

    os.rename(p("dir", "file"), p("dir", "sub", "moved"))
    assert os.listdir(p("dir", "sub")) == ["moved"]
    with pytest.raises(FileNotFoundError):
        os.stat(p("dir", "file"))

    os.symlink("sub/moved", p("dir", "link"))
    assert os.readlink(p("dir", "link")) == "sub/moved"
    with open(p("dir", "link"), "rb") as f:
        assert f.read() == data[:1000]

    os.setxattr(p("dir", "sub", "moved"), "user.tag", b"value")
    assert os.getxattr(p("dir", "sub", "moved"), "user.tag") == b"value"
    assert "user.tag" in os.listxattr(p("dir", "sub", "moved"))
    os.removexattr(p("dir", "sub", "moved"), "user.tag")
    with pytest.raises(OSError) as e:
        os.getxattr(p("dir", "sub", "moved"), "user.tag")
    assert e.value.errno == errno.ENODATA

    names = ["entry-%04d-%s" % (i, "n" * (i % 50)) for i in range(400)]
    os.mkdir(p("many"))
    for n in names:
        open(p("many", n), "wb").close()
    assert sorted(os.listdir(p("many"))) == sorted(names)
    for n in names[::2]:
        os.unlink(p("many", n))
    assert sorted(os.listdir(p("many"))) == sorted(names[1::2])

    with pytest.raises(OSError) as e:
        os.rmdir(p("dir"))
    assert e.value.errno == errno.ENOTEMPTY
    os.unlink(p("dir", "link"))
    os.unlink(p("dir", "sub", "moved"))
    os.rmdir(p("dir", "sub"))
    os.rmdir(p("dir"))
    assert sorted(os.listdir(mnt)) == ["many"]
    assert os.statvfs(mnt).f_namemax == 255


def concurrent_reads(mnt, readers=24):
    """Reads that each sleep in the filesystem, from many threads at once: pyfuse3 answers them
    out of order, each request holding its reply slot until then."""
    path = os.path.join(mnt, "shared")
    blob = random.Random(3).randbytes(64 * 1024)
    with open(path, "wb") as f:
        f.write(blob)
    errors = []

    def reader(i):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
            try:
                for _ in range(3):
                    off = (i * 4096) % len(blob)
                    assert os.pread(fd, 4096, off) == blob[off:off + 4096]
            finally:
                os.close(fd)
        except Exception as e:  # noqa: B902 - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(readers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def test_pyfuse3_filesystem_owning_its_loop(run_mounter, transport):
    m = run_mounter(transport, lambda mnt: [sys.executable, FS, mnt], expect_transport="dev")
    if transport != "dev":
        assert OWN_LOOP_NOTE in m.log(), m.log_report()
    exercise(m.path)
    concurrent_reads(m.path)
    st = assert_served_by(m, "dev")
    overlap = [int(l.rsplit(" ", 1)[1]) for l in m.log().splitlines()
               if l.startswith("max reads in flight")]
    assert overlap and overlap[-1] > 1, "reads never overlapped\n" + m.log_report()
    assert st["total"] > 1000, st
    # pyfuse3 starts one coroutine per request and awaits it: a batch of forgets must come
    # as one forget_multi() call, or it complains (and forgets are lost).
    assert "was not awaited" not in m.log(), m.log_report()
