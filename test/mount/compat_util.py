"""Running filesystems built on libfuse3 (programs from elsewhere) over ringfuse, for the
test_compat_*.py files: they are started through ringfuse-run, which puts ringfuse's
libfuse3.so.3 in place of the system's and passes ringfuse options in RINGFUSE_OPTIONS.

The mounts are rfutil.Mount objects (same start checks, watchdog and teardown as the ringfuse
daemons' mounts): the daemon must log the transport it was given, exit 0 after unmount and
leave no ERROR line. At the end of the session the library reports on ringfuse-run's stderr
(the log here) which transport served the mount, and the statistics with -o stats.
"""

import os
import re

import pytest

import rfutil

# What the library prints when it serves a mount with another transport than asked for.
OWN_LOOP_NOTE = "reads /dev/fuse in its own loop"
# The report at the end of a session: "ringfuse-run: MOUNTPOINT: transport NAME".
REPORT_RE = re.compile(r"(?m)^ringfuse-run: (.*): transport (\S+)$")


def ringfuse_run():
    return os.path.join(rfutil.build_dir(), "compat", "ringfuse-run")


def program_env(check_leaks=False):
    """The environment a program runs in: no ringfuse options but ours and, under
    AddressSanitizer, no leak report at exit for programs from elsewhere (their leaks are not
    this suite's business); check_leaks keeps it for our own test programs."""
    env = dict(os.environ)
    env.pop("RINGFUSE_OPTIONS", None)
    env.pop("LD_LIBRARY_PATH", None)
    asan = [o for o in env.get("ASAN_OPTIONS", "").split(":") if o and
            not o.startswith("detect_leaks=")]
    env["ASAN_OPTIONS"] = ":".join(asan + ["detect_leaks=%d" % check_leaks])
    return env


def report(mount):
    """(mountpoint, transport) of the report the exited daemon printed, or None."""
    found = REPORT_RE.findall(mount.daemon.output())
    return found[-1] if found else None


@pytest.fixture
def run_mounter():
    """Factory: run_mounter(transport, argv_fn, opts=("stats",), expect_transport="",
    check_leaks=False) -> a started rfutil.Mount of
    `ringfuse-run -o transport=T,OPTS -- argv_fn(mountpoint)`.
    Everything it started is unmounted at teardown, which must go cleanly."""
    made = []

    def mount(transport, argv_fn, opts=("stats",), expect_transport="", check_leaks=False):
        if rfutil.base_transport(transport) == "uring":
            why = rfutil.uring_unusable_reason()
            if why:
                pytest.skip("FUSE over io_uring unavailable: " + why)
        if not os.access(ringfuse_run(), os.X_OK):
            pytest.fail("%s not built (build first, or set RINGFUSE_BUILD)" % ringfuse_run(),
                        pytrace=False)
        path = rfutil.make_dir("mnt-")
        ropts = ",".join(rfutil.transport_opts(transport) + list(opts))
        argv = [ringfuse_run(), "-o", ropts, "--"] + list(argv_fn(path))
        m = rfutil.Mount("compat", transport, path=path, argv=argv,
                         env=program_env(check_leaks), expect_transport=expect_transport)
        try:
            m.start()
        except rfutil.MountError as e:
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


def unmount_and_report(mount):
    """Unmount, wait for a clean exit, and return (statistics, reported transport)."""
    rc = mount.unmount()
    assert rc == 0, "daemon exited with %s after unmount\n%s" % (rc, mount.log_report())
    rep = report(mount)
    assert rep is not None, "no 'ringfuse-run: ...: transport' report\n" + mount.log_report()
    assert rep[0] == mount.path, "report names %s, not %s" % (rep[0], mount.path)
    return mount.stats(), rep[1]


def assert_served_by(mount, transport):
    """After unmount: the report and the statistics name transport, and its queues (io-uring)
    or the /dev/fuse reader (dev) carried the requests."""
    st, reported = unmount_and_report(mount)
    assert reported == transport, mount.log_report()
    assert st["transport"] == transport, st
    if transport == "uring":
        ring = sum(st["queues"].values())
        # INIT, forgets and interrupts come over /dev/fuse; everything else over the ring.
        assert ring > 0 and ring > st["dev"], \
            "io-uring queues carried %d requests, /dev/fuse %s\n%s" % (
                ring, st["dev"], mount.log_report())
    else:
        assert st["total"] and st["total"] > 1, st
    return st
