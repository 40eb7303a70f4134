"""Ranges past 2 GiB and 4 GiB, the way a local filesystem takes them.

Every 64-bit length and offset a request carries must arrive whole: a length cut to 32 bits (or
to INT32_MAX) makes fallocate allocate, punch or zero less than asked while it reports success.
Each operation that takes a range is driven past 2 GiB and 4 GiB on every transport and both
filesystems. The files are sparse, so nothing here needs memory or disk for the ranges:
passthrough's source is a dedicated tmpfs (room for 64 GiB, costing only what is stored), or,
where blocks must really be allocated or copied, an xfs image on a loop device (allocating and
reflinking write only metadata to the sparse image).
"""

import errno
import os

import pytest

from rfutil import (FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, GiB, KiB,
                    MiB, ScratchFs, fallocate, pread_all, raises_errno, read_direct,
                    readdir_positions)

BLOCK = 64 * KiB  # one memfs chunk, a whole number of pages anywhere


@pytest.fixture
def scratch(request, fs):
    """passthrough's source for `large`: @pytest.mark.source(kind, size), kind "tmpfs" (the
    default, 64 GiB) or "xfs"; torn down after the mount, which depends on it."""
    m = request.node.get_closest_marker("source")
    kind, size = m.args if m else ("tmpfs", 64 * GiB)
    if fs != "passthrough":
        yield None
        return
    s = ScratchFs(kind, size)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def large(request, scratch, mounter, transport, fs):
    """A mount whose files may span tens of GiB; @pytest.mark.memfs_size(bytes) sets memfs's
    capacity."""
    if scratch:
        return mounter(transport, fs, src=scratch.path)
    cap = request.node.get_closest_marker("memfs_size")
    return mounter(transport, fs, opts=("size=%d" % cap.args[0],) if cap else ())


def _blocks_at(fd, offsets, fill=b"D"):
    """Write one BLOCK of distinct data at each offset; returns {offset: data}."""
    out = {}
    for i, off in enumerate(offsets):
        data = (fill + bytes([0x41 + i])) * (BLOCK // 2)
        assert os.pwrite(fd, data, off) == BLOCK
        out[off] = data
    os.fsync(fd)
    return out


def _open(m, name):
    return os.open(m.p(name), os.O_CREAT | os.O_RDWR, 0o644)


def test_punch_hole_past_4_gib(large):
    """PUNCH_HOLE over 6 GiB clears data at 1, 3 and 5 GiB; the block at 7 GiB stays."""
    fd = _open(large, "punch")
    try:
        data = _blocks_at(fd, [1 * GiB, 3 * GiB, 5 * GiB, 7 * GiB])
        size = os.fstat(fd).st_size
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 6 * GiB)
        assert os.fstat(fd).st_size == size
        for off in (1 * GiB, 3 * GiB, 5 * GiB):
            assert pread_all(fd, BLOCK, off) == b"\0" * BLOCK, "data left at %d" % off
        assert pread_all(fd, BLOCK, 7 * GiB) == data[7 * GiB]
        # Only the last block is still stored, and the daemon says so too.
        assert os.lseek(fd, 0, os.SEEK_DATA) == 7 * GiB
        assert os.fstat(fd).st_blocks * 512 < 4 * BLOCK
        # A punch of more than 4 GiB that starts past 4 GiB.
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * GiB + BLOCK, 5 * GiB)
        raises_errno(errno.ENXIO, os.lseek, fd, 0, os.SEEK_DATA)
    finally:
        os.close(fd)
    assert read_direct(large.p("punch"), 7 * GiB, BLOCK) == b"\0" * BLOCK


@pytest.mark.source("xfs", 64 * GiB)
@pytest.mark.filesystems("passthrough")
def test_fallocate_allocates_the_whole_range(large):
    """fallocate of 40 GiB allocates 40 GiB (an xfs source: allocating costs only metadata;
    memfs would need the memory, its long ranges are checked by the ENOSPC test)."""
    fd = _open(large, "big")
    try:
        fallocate(fd, 0, 0, 40 * GiB)
        st = os.fstat(fd)
        assert st.st_size == 40 * GiB
        assert st.st_blocks * 512 >= 40 * GiB
    finally:
        os.close(fd)
    os.unlink(large.p("big"))

    fd = _open(large, "keep")
    try:
        os.pwrite(fd, b"x", 0)
        # KEEP_SIZE past EOF, crossing 4 GiB: blocks, no size.
        fallocate(fd, FALLOC_FL_KEEP_SIZE, 3 * GiB, 3 * GiB)
        st = os.fstat(fd)
        assert st.st_size == 1
        assert st.st_blocks * 512 >= 3 * GiB
        # Mode 0 from 2 GiB - 1 for more than 2 GiB: the size follows the whole range.
        fallocate(fd, 0, 2 * GiB - 1, 2 * GiB + 2)
        assert os.fstat(fd).st_size == 4 * GiB + 1
    finally:
        os.close(fd)


@pytest.mark.source("xfs", 64 * GiB)
@pytest.mark.filesystems("passthrough")
def test_zero_range_past_4_gib(large):
    """ZERO_RANGE over 5 GiB zeroes every block in it, keeps the one after it."""
    fd = _open(large, "zero")
    try:
        data = _blocks_at(fd, [GiB, 3 * GiB, 5 * GiB, 7 * GiB])
        fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, GiB, 5 * GiB + BLOCK)
        for off in (GiB, 3 * GiB, 5 * GiB):
            assert pread_all(fd, BLOCK, off) == b"\0" * BLOCK, "data left at %d" % off
        assert pread_all(fd, BLOCK, 7 * GiB) == data[7 * GiB]
        assert os.fstat(fd).st_size == 7 * GiB + BLOCK
    finally:
        os.close(fd)


@pytest.mark.filesystems("memfs")
def test_zero_range_straddling_4_gib(large):
    """memfs zeroes (and allocates) a range across the 32-bit boundary."""
    fd = _open(large, "zero")
    try:
        data = _blocks_at(fd, [4 * GiB - BLOCK, 4 * GiB, 4 * GiB + BLOCK])
        fallocate(fd, FALLOC_FL_ZERO_RANGE, 4 * GiB - BLOCK // 2, BLOCK * 2)
        got = pread_all(fd, 3 * BLOCK, 4 * GiB - BLOCK)
        assert got == (data[4 * GiB - BLOCK][:BLOCK // 2] + b"\0" * (2 * BLOCK) +
                       data[4 * GiB + BLOCK][BLOCK // 2:])
    finally:
        os.close(fd)


@pytest.mark.source("tmpfs", 3 * GiB)
@pytest.mark.memfs_size(GiB)
def test_fallocate_enospc_changes_nothing(large):
    """A range larger than the free space fails with ENOSPC and changes nothing: no size, no
    blocks, no space used (as tmpfs does), rather than allocating what fits."""
    fd = _open(large, "full")
    try:
        os.pwrite(fd, b"head", 0)
        os.fsync(fd)
        before = os.fstat(fd)
        free = os.statvfs(large.path).f_bfree
        for mode in (0, FALLOC_FL_KEEP_SIZE):
            for length in (40 * GiB, 5 * GiB):
                with pytest.raises(OSError) as ei:
                    fallocate(fd, mode, 0, length)
                assert ei.value.errno == errno.ENOSPC, "mode %#x length %d: %r" % (
                    mode, length, ei.value)
                st = os.fstat(fd)
                assert (st.st_size, st.st_blocks) == (before.st_size, before.st_blocks), \
                    "mode %#x length %d changed the file" % (mode, length)
                assert os.statvfs(large.path).f_bfree == free
        assert pread_all(fd, 10, 0) == b"head"
    finally:
        os.close(fd)


def test_seek_data_hole_past_4_gib(large):
    fd = _open(large, "seek")
    try:
        _blocks_at(fd, [4 * GiB - BLOCK, 4 * GiB, 9 * GiB])
        os.ftruncate(fd, 10 * GiB)
        assert os.lseek(fd, 0, os.SEEK_DATA) == 4 * GiB - BLOCK
        assert os.lseek(fd, 0, os.SEEK_HOLE) == 0
        assert os.lseek(fd, 4 * GiB - BLOCK, os.SEEK_HOLE) == 4 * GiB + BLOCK
        assert os.lseek(fd, 4 * GiB + 1, os.SEEK_DATA) == 4 * GiB + 1
        assert os.lseek(fd, 4 * GiB + BLOCK, os.SEEK_DATA) == 9 * GiB
        assert os.lseek(fd, 5 * GiB, os.SEEK_HOLE) == 5 * GiB
        assert os.lseek(fd, 9 * GiB, os.SEEK_HOLE) == 9 * GiB + BLOCK
        raises_errno(errno.ENXIO, os.lseek, fd, 9 * GiB + BLOCK, os.SEEK_DATA)
        assert os.lseek(fd, 10 * GiB - 1, os.SEEK_HOLE) == 10 * GiB - 1
        for whence in (os.SEEK_DATA, os.SEEK_HOLE):
            raises_errno(errno.ENXIO, os.lseek, fd, 10 * GiB, whence)
            raises_errno(errno.ENXIO, os.lseek, fd, 1 << 62, whence)
        assert os.lseek(fd, 0, os.SEEK_END) == 10 * GiB
    finally:
        os.close(fd)


def test_truncate_past_4_gib(large):
    path = large.p("trunc")
    fd = _open(large, "trunc")
    try:
        os.ftruncate(fd, 40 * GiB)
        st = os.fstat(fd)
        assert st.st_size == 40 * GiB
        assert st.st_blocks * 512 < 16 * MiB, "a 40 GiB hole holds %d blocks" % st.st_blocks
        data = _blocks_at(fd, [3 * GiB, 5 * GiB])
        # Shrink to just past 4 GiB: the block at 5 GiB is gone, the one at 3 GiB stays.
        os.ftruncate(fd, 4 * GiB + 1)
        assert os.fstat(fd).st_size == 4 * GiB + 1
        os.ftruncate(fd, 6 * GiB)
        assert pread_all(fd, BLOCK, 5 * GiB) == b"\0" * BLOCK
        assert pread_all(fd, BLOCK, 3 * GiB) == data[3 * GiB]
    finally:
        os.close(fd)
    # Through the path (setattr without a file handle), across 2 GiB.
    os.truncate(path, 2 * GiB + 3)
    assert os.stat(path).st_size == 2 * GiB + 3
    assert read_direct(path, 2 * GiB - 2, 10) == b"\0" * 5
    os.truncate(path, 9 * GiB)
    assert os.stat(path).st_size == 9 * GiB
    assert read_direct(path, 3 * GiB, BLOCK) == b"\0" * BLOCK


def test_copy_file_range_past_4_gib(large):
    """Offsets past 4 GiB and a length past 4 GiB (the copy stops at the source's end)."""
    src, dst = large.p("csrc"), large.p("cdst")
    s = _open(large, "csrc")
    d = _open(large, "cdst")
    try:
        data = _blocks_at(s, [5 * GiB])
        n = os.copy_file_range(s, d, 6 * GiB, 5 * GiB, 4 * GiB + 7)
        assert n == BLOCK
        assert os.copy_file_range(s, d, 6 * GiB, 5 * GiB + BLOCK, 0) == 0
        assert os.fstat(d).st_size == 4 * GiB + 7 + BLOCK
        assert pread_all(d, BLOCK, 4 * GiB + 7) == data[5 * GiB]
    finally:
        os.close(s)
        os.close(d)
    assert read_direct(dst, 4 * GiB + 7, BLOCK) == data[5 * GiB]
    assert read_direct(src, 5 * GiB, BLOCK) == data[5 * GiB]


@pytest.mark.source("xfs", 64 * GiB)
def test_copy_file_range_sparse_6_gib(large):
    """6 GiB of a sparse file copied, holes kept: memfs copies its chunks, an xfs source shares
    its extents."""
    s = _open(large, "ssrc")
    d = _open(large, "sdst")
    try:
        data = _blocks_at(s, [GiB, 3 * GiB, 5 * GiB])
        os.ftruncate(s, 6 * GiB)
        done = 0
        while done < 6 * GiB:
            n = os.copy_file_range(s, d, 6 * GiB - done, done, done)
            assert n > 0, "copy_file_range returned 0 at %d" % done
            done += n
        st = os.fstat(d)
        assert st.st_size == 6 * GiB
        assert st.st_blocks * 512 < 16 * MiB, "the copy holds %d blocks" % st.st_blocks
        for off, want in data.items():
            assert pread_all(d, BLOCK, off) == want
        assert pread_all(d, BLOCK, 2 * GiB) == b"\0" * BLOCK
    finally:
        os.close(s)
        os.close(d)


def test_readdir_offsets(large):
    """telldir/seekdir round-trips through the daemon's offsets. An offset no entry has (past
    4 GiB) reaches the daemon whole: memfs lists nothing after it, passthrough lists what its
    source lists for the same offset (tmpfs, for one, starts over)."""
    top = large.p("dir")
    os.mkdir(top)
    names = {"f%03d" % i for i in range(300)}
    for n in names:
        os.close(os.open(os.path.join(top, n), os.O_CREAT | os.O_WRONLY, 0o644))
    listing = readdir_positions(top)
    assert {n for n, _ in listing} - {".", ".."} == names
    mid = len(listing) // 2
    rest = readdir_positions(top, seek=listing[mid][1])
    assert [n for n, _ in rest] == [n for n, _ in listing[mid + 1:]]
    for far in (1 << 32, 1 << 40, (1 << 62) + 5):
        got = [n for n, _ in readdir_positions(top, seek=far)]
        if large.src:
            assert got == [n for n, _ in readdir_positions(os.path.join(large.src, "dir"),
                                                           seek=far)]
        else:
            assert got == []
