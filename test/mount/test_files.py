"""Regular files through a real mount: data paths, sizes, holes, mappings, and their errnos.

Data written is checked twice where it matters: through the page cache, and with O_DIRECT
(or after dropping the cache) so the bytes provably went through the filesystem daemon.
"""

import errno
import hashlib
import mmap
import os
import stat

from rfutil import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, GiB, KiB, MiB, PAGE, drop_cache,
                    fallocate, make_file, pread_all, raises_errno, rand, read_direct,
                    read_direct_fd, read_file, write_all)

# ---------------------------------------------------------------------------------------------


def test_create_write_read(mnt):
    path = mnt.p("f")
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o644)
    try:
        assert os.write(fd, b"hello world") == 11
        assert os.lseek(fd, 0, os.SEEK_CUR) == 11
        assert os.lseek(fd, 0, os.SEEK_SET) == 0
        assert os.read(fd, 100) == b"hello world"
        assert os.read(fd, 100) == b""
        assert os.fstat(fd).st_size == 11
    finally:
        os.close(fd)
    st = os.stat(path)
    assert stat.S_ISREG(st.st_mode)
    assert st.st_size == 11
    assert st.st_nlink == 1
    assert "f" in os.listdir(mnt.path)

    # A second descriptor sees the first one's writes at once.
    a = os.open(path, os.O_WRONLY)
    b = os.open(path, os.O_RDONLY)
    try:
        os.pwrite(a, b"HELLO", 0)
        assert os.pread(b, 11, 0) == b"HELLO world"
        raises_errno(errno.EBADF, os.read, a, 1)
        raises_errno(errno.EBADF, os.write, b, b"x")
    finally:
        os.close(a)
        os.close(b)
    assert read_direct(path) == b"HELLO world"
    raises_errno(errno.ENOENT, os.open, mnt.p("missing"), os.O_RDONLY)


def test_pread_pwrite(mnt):
    path = mnt.p("f")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        assert os.pwrite(fd, b"abc", 10) == 3
        assert os.fstat(fd).st_size == 13
        assert os.pread(fd, 100, 0) == b"\0" * 10 + b"abc"
        assert os.pwrite(fd, b"XY", 1) == 2
        assert os.pread(fd, 5, 8) == b"\0\0abc"
        assert os.pread(fd, 3, 0) == b"\0XY"
        assert os.pread(fd, 10, 13) == b""
        assert os.pread(fd, 10, 1000) == b""
        # pread/pwrite leave the file position alone.
        assert os.lseek(fd, 0, os.SEEK_CUR) == 0
    finally:
        os.close(fd)
    drop_cache(path)
    assert read_file(path) == b"\0XY" + b"\0" * 7 + b"abc"
    assert read_direct(path) == b"\0XY" + b"\0" * 7 + b"abc"


def test_o_append(mnt):
    path = mnt.p("log")
    make_file(path, b"abc")
    a = os.open(path, os.O_WRONLY | os.O_APPEND)
    b = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(a, b"1")
        os.write(b, b"22")
        os.write(a, b"333")
        # Seeking does not matter: every write goes to the end.
        os.lseek(a, 0, os.SEEK_SET)
        os.write(a, b"4")
        assert os.lseek(a, 0, os.SEEK_CUR) == 10
    finally:
        os.close(a)
        os.close(b)
    assert read_file(path) == b"abc1223334"
    assert read_direct(path) == b"abc1223334"


def test_o_trunc(mnt):
    path = mnt.p("t")
    make_file(path, rand(5000, 1))
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    try:
        assert os.fstat(fd).st_size == 0
        os.write(fd, b"x")
    finally:
        os.close(fd)
    assert os.stat(path).st_size == 1
    assert read_file(path) == b"x"
    assert read_direct(path) == b"x"


def test_o_excl(mnt):
    path = mnt.p("x")
    os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    raises_errno(errno.EEXIST, os.open, path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.mkdir(mnt.p("d"))
    raises_errno(errno.EEXIST, os.open, mnt.p("d"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    # O_EXCL does not follow a (dangling) symlink: it fails and creates nothing.
    os.symlink("target", mnt.p("link"))
    raises_errno(errno.EEXIST, os.open, mnt.p("link"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    assert not os.path.lexists(mnt.p("target"))
    # Without O_EXCL, O_CREAT on an existing file opens it and keeps its data.
    make_file(path, b"keep")
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    assert read_file(path) == b"keep"


def test_ftruncate_grow_shrink(mnt):
    path = mnt.p("t")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"hello")
        os.ftruncate(fd, 10000)
        assert os.fstat(fd).st_size == 10000
        assert pread_all(fd, 20000, 0) == b"hello" + b"\0" * 9995
        os.ftruncate(fd, 3)
        assert os.fstat(fd).st_size == 3
        assert pread_all(fd, 100, 0) == b"hel"
        # Growing again must not resurrect the bytes cut off before.
        os.ftruncate(fd, 8)
        assert pread_all(fd, 100, 0) == b"hel" + b"\0" * 5
        os.pwrite(fd, b"Z", 2 * MiB)
        assert os.fstat(fd).st_size == 2 * MiB + 1
    finally:
        os.close(fd)
    assert read_direct(path, 0, 16) == b"hel" + b"\0" * 13
    assert read_direct(path, 2 * MiB - 2, 10) == b"\0\0Z"
    os.truncate(path, 0)
    assert os.stat(path).st_size == 0
    assert read_direct(path, 0, 100) == b""
    os.truncate(path, 5)
    assert read_direct(path, 0, 100) == b"\0" * 5


def test_big_offsets(mnt):
    path = mnt.p("big")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.pwrite(fd, b"low", 123)
        far = 5 * GiB + 123
        os.pwrite(fd, b"tail", far)
        os.pwrite(fd, b"AB", 4 * GiB - 1)  # straddles the 32-bit boundary
        assert os.fstat(fd).st_size == far + 4
        assert os.pread(fd, 4, far) == b"tail"
        assert os.pread(fd, 4, far + 2) == b"il"
    finally:
        os.close(fd)
    assert os.stat(path).st_size == far + 4
    # From the daemon: a 32-bit truncation of offsets would alias these onto "low".
    assert read_direct(path, far, 4) == b"tail"
    assert read_direct(path, 4 * GiB - 1, 2) == b"AB"
    assert read_direct(path, 4 * GiB + 123, 3) == b"\0\0\0"
    assert read_direct(path, GiB + 123, 3) == b"\0\0\0"
    assert read_direct(path, 120, 6) == b"\0\0\0low"


def test_sparse_file_allocates_little(mnt):
    path = mnt.p("sparse")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.pwrite(fd, b"x", 5 * GiB)
        os.ftruncate(fd, 6 * GiB)
        os.fsync(fd)
    finally:
        os.close(fd)
    st = os.stat(path)
    assert st.st_size == 6 * GiB
    # A local filesystem accounts only what is stored: one block, not 6 GiB.
    assert st.st_blocks * 512 < 16 * MiB, "st_blocks=%d for a 6 GiB file holding 1 byte" % (
        st.st_blocks)


def _holey(path):
    """A 16 MiB file with data in [0, 4 KiB) and [8 MiB, 8 MiB + 4 KiB), holes elsewhere."""
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    os.pwrite(fd, b"a" * 4096, 0)
    os.pwrite(fd, b"b" * 4096, 8 * MiB)
    os.ftruncate(fd, 16 * MiB)
    os.fsync(fd)
    return fd


def test_seek_data_hole_basics(mnt):
    fd = _holey(mnt.p("h"))
    try:
        assert os.lseek(fd, 0, os.SEEK_DATA) == 0
        h = os.lseek(fd, 0, os.SEEK_HOLE)
        assert 4096 <= h <= 16 * MiB
        assert 8 * MiB <= os.lseek(fd, 8 * MiB, os.SEEK_HOLE) <= 16 * MiB
        assert os.lseek(fd, 8 * MiB, os.SEEK_DATA) == 8 * MiB
        for whence in (os.SEEK_DATA, os.SEEK_HOLE):
            for off in (16 * MiB, 16 * MiB + 1, 1 << 40):
                raises_errno(errno.ENXIO, os.lseek, fd, off, whence)
        raises_errno(errno.EINVAL, os.lseek, fd, -1, os.SEEK_SET)
    finally:
        os.close(fd)


def test_seek_hole_finds_holes(mnt):
    """memfs and passthrough store sparse files: SEEK_HOLE/SEEK_DATA must report the holes."""
    fd = _holey(mnt.p("h"))
    try:
        h = os.lseek(fd, 0, os.SEEK_HOLE)
        assert 4096 <= h < 8 * MiB, "first hole reported at %d" % h
        d = os.lseek(fd, h, os.SEEK_DATA)
        assert h < d <= 8 * MiB, "data after the first hole reported at %d" % d
        assert os.lseek(fd, 12 * MiB, os.SEEK_HOLE) == 12 * MiB
        # Only a hole follows 12 MiB: there is no more data.
        raises_errno(errno.ENXIO, os.lseek, fd, 12 * MiB, os.SEEK_DATA)
        # Punching out the second extent leaves no data after the first hole.
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 8 * MiB, 8 * MiB)
        raises_errno(errno.ENXIO, os.lseek, fd, h, os.SEEK_DATA)
        assert os.fstat(fd).st_size == 16 * MiB
    finally:
        os.close(fd)


def test_fallocate(mnt):
    path = mnt.p("fa")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.posix_fallocate(fd, 0, MiB)
        assert os.fstat(fd).st_size == MiB
        # KEEP_SIZE preallocates past EOF without changing the size.
        fallocate(fd, FALLOC_FL_KEEP_SIZE, MiB, MiB)
        assert os.fstat(fd).st_size == MiB
        # Plain mode 0 grows the file.
        fallocate(fd, 0, MiB, 4096)
        assert os.fstat(fd).st_size == MiB + 4096
    finally:
        os.close(fd)
    assert read_direct(path, 0, MiB + 4096) == b"\0" * (MiB + 4096)


def test_punch_hole(mnt):
    path = mnt.p("ph")
    make_file(path, b"A" * (64 * KiB))
    fd = os.open(path, os.O_RDWR)
    try:
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4096, 8192)
        assert os.fstat(fd).st_size == 64 * KiB
        want = b"A" * 4096 + b"\0" * 8192 + b"A" * (64 * KiB - 12288)
        assert pread_all(fd, 64 * KiB, 0) == want
        # An unaligned punch zeroes exactly the range.
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 20000, 100)
        want = want[:20000] + b"\0" * 100 + want[20100:]
        assert pread_all(fd, 64 * KiB, 0) == want
        # Punching past EOF does not grow the file.
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 60 * KiB, 64 * KiB)
        assert os.fstat(fd).st_size == 64 * KiB
        want = want[:60 * KiB] + b"\0" * (4 * KiB)
    finally:
        os.close(fd)
    assert read_direct(path) == want


def test_large_sequential_checksum(mnt):
    path = mnt.p("big")
    data = os.urandom(8 * MiB)
    digest = hashlib.sha256(data).hexdigest()
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
    try:
        for off in range(0, len(data), MiB):
            write_all(fd, data[off:off + MiB])
        os.fsync(fd)
    finally:
        os.close(fd)
    assert os.stat(path).st_size == len(data)

    def sha_read(chunk):
        h = hashlib.sha256()
        with open(path, "rb", buffering=0) as f:
            while True:
                b = f.read(chunk)
                if not b:
                    break
                h.update(b)
        return h.hexdigest()

    assert sha_read(100000) == digest  # odd size: requests not aligned to pages
    drop_cache(path)
    assert sha_read(MiB) == digest
    assert hashlib.sha256(read_direct(path)).hexdigest() == digest


def test_o_direct(mnt):
    path = mnt.p("d")
    size = MiB
    data = rand(size, 2)
    wbuf = mmap.mmap(-1, size)
    rbuf = mmap.mmap(-1, size)
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_DIRECT, 0o644)
    try:
        wbuf.write(data)
        assert os.pwrite(fd, wbuf, 0) == size
        assert os.fstat(fd).st_size == size
        assert os.preadv(fd, [rbuf], 0) == size
        assert rbuf[:] == data
        # A short read at EOF.
        assert os.preadv(fd, [rbuf], size - PAGE) == PAGE
        assert rbuf[:PAGE] == data[-PAGE:]
        assert os.preadv(fd, [rbuf], size) == 0
    finally:
        os.close(fd)
    # Direct writes are visible to buffered readers, and buffered writes to direct readers.
    assert read_file(path) == data
    b = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(b, b"buffered", 3 * PAGE + 5)
    finally:
        os.close(b)
    assert read_direct(path, 3 * PAGE, 13) == data[3 * PAGE:3 * PAGE + 5] + b"buffered"
    wbuf.close()
    rbuf.close()


def test_mmap_write_then_read(mnt):
    path = mnt.p("m")
    size = 64 * KiB
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        mm[100:105] = b"hello"
        mm[size - 6:] = b"world!"
        mm[PAGE * 5:PAGE * 6] = b"p" * PAGE
        mm.flush()
        mm.close()
    finally:
        os.close(fd)
    want = bytearray(size)
    want[100:105] = b"hello"
    want[size - 6:] = b"world!"
    want[PAGE * 5:PAGE * 6] = b"p" * PAGE
    assert read_direct(path) == bytes(want)
    assert read_file(path) == bytes(want)
    assert os.stat(path).st_size == size


def test_mmap_read(mnt):
    path = mnt.p("m")
    data = rand(100 * KiB + 17, 3)
    make_file(path, data)
    drop_cache(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        mm = mmap.mmap(fd, 0, mmap.MAP_SHARED, mmap.PROT_READ)
        assert len(mm) == len(data)
        assert mm[:] == data
        # Writes through write(2) show up in an existing shared mapping.
        w = os.open(path, os.O_WRONLY)
        os.pwrite(w, b"NEW", 50)
        os.close(w)
        assert mm[50:53] == b"NEW"
        mm.close()
    finally:
        os.close(fd)


def test_unlink_while_open(mnt):
    path = mnt.p("u")
    data = rand(10000, 4)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    dfd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        write_all(fd, data)
        os.unlink(path)
        raises_errno(errno.ENOENT, os.stat, path)
        assert "u" not in os.listdir(mnt.path)
        assert os.fstat(fd).st_nlink == 0
        assert pread_all(fd, 20000, 0) == data
        assert read_direct_fd(dfd, 0, 20000) == data
        os.pwrite(fd, b"more", 10000)
        os.fsync(fd)
        assert read_direct_fd(dfd, 9998, 100) == data[-2:] + b"more"
        # The name is free for an unrelated file.
        make_file(path, b"new")
        assert read_file(path) == b"new"
        assert read_direct_fd(dfd, 0, 4) == data[:4]
        assert os.fstat(fd).st_ino != os.stat(path).st_ino
    finally:
        os.close(fd)
        os.close(dfd)
    assert read_file(path) == b"new"


def test_fsync_fdatasync(mnt):
    path = mnt.p("s")
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        os.write(fd, b"synced")
        os.fsync(fd)
        os.write(fd, b" again")
        os.fdatasync(fd)
    finally:
        os.close(fd)
    assert read_direct(path) == b"synced again"
    dfd = os.open(mnt.path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    os.sync()


def test_copy_file_range(mnt):
    src, dst = mnt.p("src"), mnt.p("dst")
    data = rand(MiB + 123, 5)
    make_file(src, data)
    make_file(dst)
    s = os.open(src, os.O_RDONLY)
    d = os.open(dst, os.O_RDWR)
    try:
        done = 0
        while done < len(data):
            n = os.copy_file_range(s, d, len(data) - done, done, done)
            assert n > 0, "copy_file_range returned 0 at %d" % done
            done += n
        # Into the middle of nowhere: a hole opens before it.
        assert os.copy_file_range(s, d, 1000, 5000, 2 * MiB) == 1000
        # Asking for more than the source has copies what is there...
        assert os.copy_file_range(s, d, 10 * MiB, len(data) - 10, 3 * MiB) == 10
        # ...and nothing at its end.
        assert os.copy_file_range(s, d, 100, len(data), 4 * MiB) == 0
    finally:
        os.close(s)
        os.close(d)
    assert os.stat(dst).st_size == 3 * MiB + 10
    got = read_direct(dst)
    assert got[:len(data)] == data
    assert got[len(data):2 * MiB] == b"\0" * (2 * MiB - len(data))
    assert got[2 * MiB:2 * MiB + 1000] == data[5000:6000]
    assert got[3 * MiB:] == data[-10:]
    assert read_file(src) == data


def test_many_small_files(mnt):
    os.mkdir(mnt.p("many"))
    n = 500
    contents = {"f%04d" % i: ("file %d\n" % i).encode() * (i % 7) for i in range(n)}
    for name, body in contents.items():
        make_file(mnt.p("many", name), body)
    assert sorted(os.listdir(mnt.p("many"))) == sorted(contents)
    for name, body in contents.items():
        assert os.stat(mnt.p("many", name)).st_size == len(body)
        assert read_file(mnt.p("many", name)) == body
    for name in contents:
        os.unlink(mnt.p("many", name))
    assert os.listdir(mnt.p("many")) == []
    os.rmdir(mnt.p("many"))


def test_write_errors(mnt):
    os.mkdir(mnt.p("d"))
    raises_errno(errno.EISDIR, os.open, mnt.p("d"), os.O_WRONLY)
    make_file(mnt.p("f"), b"x")
    raises_errno(errno.ENOTDIR, os.open, mnt.p("f", "x"), os.O_CREAT | os.O_WRONLY, 0o644)
    raises_errno(errno.ENOENT, os.open, mnt.p("nodir", "x"), os.O_CREAT | os.O_WRONLY, 0o644)
    fd = os.open(mnt.p("f"), os.O_RDWR)
    try:
        raises_errno(errno.EINVAL, os.ftruncate, fd, -1)
        raises_errno(errno.EINVAL, os.pwrite, fd, b"x", -1)
    finally:
        os.close(fd)
