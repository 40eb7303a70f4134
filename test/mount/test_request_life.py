"""The life of a request through a real mount, on every transport: a filesystem's stale or
wrong reply never reaches another request, an interrupt that overtakes its request is not
lost, a clean stop delivers the answers that already exist, and a queue that dies ends the
session instead of leaving its callers waiting.

memfs misbehaves on purpose here through its test hooks (-o test_*, fs/memfs/testhooks.c).
"""

import errno
import os
import re

import pytest

import rfutil
from rfutil import call_with_timeout, make_file, rand, read_file

pytestmark = pytest.mark.filesystems("memfs")

DUP_RE = re.compile(r"ringfuse-stats: total: .*\bdup (\d+)")


def total_dups(m):
    found = DUP_RE.findall(m.daemon.output())
    assert found, "no statistics printed\n" + m.log_report()
    return int(found[-1])


def unmount_clean(m):
    rc = m.unmount()
    assert rc == 0, "exit status %s at unmount\n%s" % (rc, m.log_report())


# ---------------------------------------------------------------------------------------------
# Replies that must not land


def test_stale_reply_never_lands_on_the_next_request(mounter, transport):
    """memfs answers a lookup, keeps its rf_req * and answers it again at the start of each of
    the next requests: by then the slot holds a new request, which must get its own answer."""
    m = mounter(transport, "memfs", opts=("test_stale_reply=stale", "cache=none", "stats"))
    data = rand(20000, 1)
    make_file(m.p("f"), data)
    with pytest.raises(FileNotFoundError):
        os.stat(m.p("stale"))
    for i in range(60):
        try:
            assert os.stat(m.p("f")).st_size == len(data)
            assert rfutil.read_direct(m.p("f")) == data
        except OSError as e:
            pytest.fail("request %d after the stale reply failed: %s\n%s" % (
                i, rfutil.eno(e), m.log_report()))
    unmount_clean(m)
    assert total_dups(m) >= 1, m.log_report()
    assert "stale rf_req" in m.daemon.output(), m.log_report()


def test_reply_none_where_a_reply_is_due(mounter, transport):
    """rf_reply_none() on a lookup: refused, and the caller gets EIO rather than waiting."""
    m = mounter(transport, "memfs", opts=("test_reply_none=none",))
    got = call_with_timeout(os.stat, (m.p("none"),), 5.0)
    if got == "timeout":
        m.abort()
        m.expect_clean = False
        m.allow_errors = True
        pytest.fail("stat of a name answered with rf_reply_none() hangs")
    assert isinstance(got, OSError) and got.errno == errno.EIO, got
    make_file(m.p("after"), b"still serving")
    assert read_file(m.p("after")) == b"still serving"
    unmount_clean(m)
