"""pytest wiring for the ringfuse mount tests.

Every test that asks for `transport` (directly or through `mnt`/`mounter`) runs once per
transport, every test that asks for `fs` once per shipped filesystem. Markers narrow that:
    @pytest.mark.transports("uring")          only these transports
    @pytest.mark.filesystems("memfs")         only these filesystems
    @pytest.mark.mount_opts("stats", ...)     extra -o options for the `mnt` fixture
    @pytest.mark.serial                       changes machine-global state (run the suite serially)
Variants (uring-t1, memfs-defer) run wherever their transport or filesystem may.
Environment: RINGFUSE_BUILD (build dir, default "build"), RINGFUSE_TRANSPORTS and RINGFUSE_FS
(comma separated restrictions), RINGFUSE_KEEP_LOGS (keep daemon logs and mountpoints).
"""

import os

import pytest

import rfutil
from rfutil import ALL_FS, ALL_TRANSPORTS, Mount, MountError


def pytest_configure(config):
    for line in ("transports(*names): run only on these transports",
                 "filesystems(*names): run only on these filesystems",
                 "mount_opts(*opts): extra -o options for the mnt fixture",
                 "serial: changes machine-global state; must not run concurrently",
                 "source(kind, size): passthrough's source filesystem (test_large_ranges)",
                 "memfs_size(bytes): memfs's capacity (test_large_ranges)",
                 "soak: long-running stress run, opt-in (RINGFUSE_SOAK_SECONDS)"):
        config.addinivalue_line("markers", line)


def _restricted(metafunc, marker, values):
    m = metafunc.definition.get_closest_marker(marker)
    if m is None:
        return values
    # A variant (memfs-defer, uring-t1) runs wherever its filesystem (memfs) or transport
    # (uring) may.
    base = rfutil.base_transport if marker == "transports" else rfutil.base_fs
    return [v for v in values if v in m.args or base(v) in m.args]


def pytest_generate_tests(metafunc):
    if "transport" in metafunc.fixturenames:
        tps = _restricted(metafunc, "transports", rfutil.selected("RINGFUSE_TRANSPORTS",
                                                                  ALL_TRANSPORTS))
        metafunc.parametrize("transport", tps or [pytest.param(
            None, marks=pytest.mark.skip(reason="no selected transport applies"))])
    if "fs" in metafunc.fixturenames:
        params = []
        for fs in _restricted(metafunc, "filesystems", rfutil.selected("RINGFUSE_FS", ALL_FS)):
            if rfutil.base_fs(fs) != "memfs" and not os.access(rfutil.fs_binary(fs), os.X_OK):
                params.append(pytest.param(fs, marks=pytest.mark.skip(
                    reason="%s not built yet" % rfutil.fs_binary(fs))))
            else:
                params.append(fs)
        metafunc.parametrize("fs", params or [pytest.param(
            None, marks=pytest.mark.skip(reason="no selected filesystem applies"))])


@pytest.fixture(scope="session", autouse=True)
def _session_base():
    base = rfutil.tmp_base()
    yield base
    rfutil.cleanup_all()


def pytest_sessionfinish(session, exitstatus):
    rfutil.cleanup_all()


@pytest.fixture(autouse=True)
def _umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def mounter():
    """Factory: mounter(transport, fs="memfs", opts=(), path=None, src=None, args=()) -> a
    started Mount (args: command-line arguments such as "-s").

    Everything it mounted is unmounted at teardown (even when the test failed); the daemon must
    then exit 0 and leave a clean log, unless the test cleared m.expect_clean / set
    m.allow_errors because it ended the daemon the hard way.
    """
    made = []

    def mount(transport, fs="memfs", opts=(), path=None, src=None, args=()):
        if rfutil.base_transport(transport) == "uring":
            why = rfutil.uring_unusable_reason()
            if why:
                pytest.skip("FUSE over io_uring unavailable: " + why)
        m = Mount(fs, transport, path=path, opts=opts, src=src, args=args)
        try:
            m.start()
        except MountError as e:
            m.expect_clean = False
            m.allow_errors = True
            m.close()
            pytest.fail(str(e), pytrace=False)
        made.append(m)
        return m

    problems = []
    try:
        yield mount
    finally:
        for m in reversed(made):
            try:
                problems += m.close()
            except Exception as e:  # noqa: B902 - keep tearing down the others
                problems.append("teardown of %s raised %r" % (m.path, e))
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def mnt(request, mounter, transport, fs):
    """A fresh mount of `fs` over `transport`, proven (by the daemon's INIT log line) to be
    carried by that transport."""
    m = request.node.get_closest_marker("mount_opts")
    return mounter(transport, fs, opts=m.args if m else ())
