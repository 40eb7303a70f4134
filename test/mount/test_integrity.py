"""Data integrity under random operations (fsx-style), on every filesystem and transport.

Each run drives one file through a random mix of writes (any offset and size, across 64 KiB
and 1 MiB boundaries), truncates up and down, reads, mmap reads and writes (msync'ed),
fallocate (mode 0 and KEEP_SIZE), hole punching, copy_file_range inside the file, fsync and
cache drops, and checks every read and, periodically, the whole file (through the page cache
and with O_DIRECT) against an in-memory model. The O_DIRECT variant does the same with aligned
4 KiB I/O and no mmap. Afterwards the file is read back once more through a fresh descriptor
and, for passthrough, straight from the source directory.

Seeds: RINGFUSE_FSX_SEED=<n> replays one (a failure prints its seed and op count);
RINGFUSE_FSX_SECONDS (default 5; the O_DIRECT variant gets half) and RINGFUSE_FSX_OPS bound
the run. Soak: RINGFUSE_SOAK_SECONDS=600 python3 -m pytest test/mount/test_integrity.py -k soak
runs each filesystem/transport pair that long (narrow it with RINGFUSE_FS/RINGFUSE_TRANSPORTS).
"""

import os

import pytest

import rfutil
from fsx import Fsx, env_seed, extend_watchdog, recording

SECONDS = float(os.environ.get("RINGFUSE_FSX_SECONDS", "5"))
MAX_OPS = int(os.environ.get("RINGFUSE_FSX_OPS", "10000000"))


def replay_hint(transport, fs, test):
    return "RINGFUSE_TRANSPORTS=%s RINGFUSE_FS=%s pytest test/mount/test_integrity.py -k '%s'" % (
        transport, fs, test)


def fsx_run(m, transport, fs, direct, seconds, seed, name="fsx.dat", test="test_fsx"):
    """One fsx run on mount m; returns its summary. Fails the test on the first wrong byte."""
    label = "%s/%s %s" % (fs, transport, "O_DIRECT" if direct else "buffered")
    x = Fsx(m.p(name), seed, direct=direct, label=label,
            replay=replay_hint(transport, fs, test))
    try:
        res = x.run(MAX_OPS, seconds)
    finally:
        x.close()
    # The closed file once more, from a fresh open: nothing was lost between the last check
    # and the release.
    got = rfutil.read_direct(m.p(name))
    x.compare("O_DIRECT read after close", 0, got, bytes(x.model))
    if fs == "passthrough":
        # The source directory holds the same bytes: the server wrote what it acknowledged.
        x.compare("source file read", 0, rfutil.read_file(os.path.join(m.src, name)),
                  bytes(x.model))
    res["label"] = label
    return res, x


@pytest.mark.parametrize("mode", ["buffered", "direct"])
def test_fsx(mnt, transport, fs, mode):
    seed = env_seed()
    seconds = SECONDS if mode == "buffered" else SECONDS / 2
    with recording("integrity", test="fsx[%s-%s-%s]" % (transport, fs, mode), seed=seed) as rec:
        print("fsx %s/%s %s: seed %d" % (fs, transport, mode, seed))
        res, x = fsx_run(mnt, transport, fs, mode == "direct", seconds, seed,
                         test="test_fsx and %s" % mode)
        rec.update(ops=res["ops"], bytes_written=res["bytes_written"],
                   bytes_checked=res["bytes_checked"], ops_by_kind=res["ops_by_kind"],
                   unsupported=res["unsupported"])
        # A run that did nothing proves nothing.
        assert res["ops"] >= 200, "only %d ops in %.1fs (seed %d)" % (res["ops"], seconds, seed)
        want = {"write", "read", "truncate", "falloc", "copy"}
        if mode == "buffered":
            want |= {"mapread", "mapwrite", "direct_read"}
        missing = want - set(res["ops_by_kind"])
        assert not missing, "never ran %s in %d ops (seed %d)" % (missing, res["ops"], seed)


@pytest.mark.soak
def test_fsx_soak(mnt, transport, fs):
    raw = os.environ.get("RINGFUSE_SOAK_SECONDS")
    if not raw:
        pytest.skip("soak runs only with RINGFUSE_SOAK_SECONDS set")
    total = float(raw)
    extend_watchdog(mnt, total + 120)
    seed = env_seed()
    with recording("integrity-soak", test="fsx-soak[%s-%s]" % (transport, fs), seed=seed) as rec:
        print("fsx soak %s/%s: seed %d for %.0fs" % (fs, transport, seed, total))
        # Two thirds buffered, one third O_DIRECT, each with a seed derived from the one
        # printed (the O_DIRECT part replays with RINGFUSE_FSX_SEED=<seed + 1>).
        b, _ = fsx_run(mnt, transport, fs, False, total * 2 / 3, seed, "soak-b.dat", "soak")
        d, _ = fsx_run(mnt, transport, fs, True, total / 3, seed + 1, "soak-d.dat", "soak")
        rec.update(ops=b["ops"] + d["ops"], bytes_written=b["bytes_written"] +
                   d["bytes_written"], bytes_checked=b["bytes_checked"] + d["bytes_checked"])


@pytest.mark.parametrize("damage", ["flip", "lost-tail"])
def test_fsx_catches_damage(damage):
    """The checker itself: a byte changed, or the file cut short, behind its back (on a local
    file, no mount) must fail the run and name the seed."""
    path = os.path.join(rfutil.make_dir("fsx-self-"), "f")
    x = Fsx(path, 12345, label="self-test")
    try:
        x.run(300, 30)  # a good run first: no false alarm
        assert len(x.model) > 0
        fd = os.open(path, os.O_RDWR)
        try:
            if damage == "flip":
                off = len(x.model) // 2
                os.pwrite(fd, bytes([x.model[off] ^ 0x40]), off)
            else:
                os.ftruncate(fd, len(x.model) - 1)
        finally:
            os.close(fd)
        with pytest.raises(AssertionError) as ei:
            x.check_all("after damage")
        assert "seed 12345" in str(ei.value) and "RINGFUSE_FSX_SEED=12345" in str(ei.value)
    finally:
        x.close()
