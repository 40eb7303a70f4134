"""Mount options ringfuse passes to the kernel.

- -o max_read=N reaches the kernel's mount options, and reads arrive no larger than N.
"""

import os
import random
import re

import pytest

import rfutil

pytestmark = pytest.mark.filesystems("memfs")


def super_options(path):
    """The filesystem-specific options of the mount at path (mountinfo's last field)."""
    found = ""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if rfutil._unescape(left.split()[4]) == path:
                found = right.split()[2]
    return found.split(",")


@pytest.mark.mount_opts("max_read=8192", "stats")
def test_max_read(mnt):
    assert "max_read=8192" in super_options(mnt.path)
    data = random.Random(1).randbytes(1 << 20)
    with open(mnt.p("f"), "wb") as f:
        f.write(data)
    fd = os.open(mnt.p("f"), os.O_RDONLY | os.O_DIRECT)
    try:
        assert os.pread(fd, 1 << 20, 0) == data
    finally:
        os.close(fd)
    assert mnt.unmount() == 0
    reads = [int(n) for n in re.findall(r"ringfuse-stats: opcodes:.* READ=(\d+)",
                                        mnt.daemon.output())]
    # 1 MiB in reads of at most 8 KiB: at least 128 requests (one, unlimited).
    assert reads and reads[-1] >= 128, mnt.log_report()
