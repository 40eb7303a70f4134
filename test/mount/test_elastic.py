"""Elastic io-uring queues: fewer threads than queues (uring_threads), queues that start
shallow and grow under load (uring_depth_min), payload memory given back when entries idle
(uring_trim_ms) and bounded (uring_payload_max), and single-threaded serving (uring_threads=1,
-s on every transport), proved through real mounts, the daemon's statistics (-o stats) and
memfs's threads log (-o test_threads_log)."""

import os
import re
import shutil
import subprocess
import threading
import time

import pytest

import rfutil
from fsx import Fsx, daemon_usage, env_seed, sanitized
from rfutil import (ALL_TRANSPORTS, MiB, daemon_argv, expect_start_failure, make_dir, make_file,
                    rand, read_file, run_parallel, usable_cpus, possible_cpus)

pytestmark = pytest.mark.filesystems("memfs")


def need_uring():
    why = rfutil.uring_unusable_reason()
    if why:
        pytest.skip("FUSE over io_uring unavailable: " + why)


def need_fio():
    if not shutil.which("fio"):
        pytest.skip("fio is not installed (apt-get install fio)")


# ---- the statistics' per-queue fields ----

_FIELD = re.compile(r"\b([a-z_]+) (\d+(?:\.\d+)?)\b")


def queue_fields(text):
    """{queue index: {field: number}} of the last statistics block in text."""
    start = text.rfind("ringfuse-stats: transport")
    out = {}
    for line in text[start:].splitlines():
        m = re.match(r"ringfuse-stats: queue (\d+): (.*)$", line)
        if m:
            out[int(m.group(1))] = {k: float(v) for k, v in _FIELD.findall(m.group(2))}
    return out


def header_fields(text):
    start = text.rfind("ringfuse-stats: transport")
    line = text[start:].splitlines()[0]
    return {k: float(v) for k, v in _FIELD.findall(line)}


def live_fields(m):
    text = m.live_stats_text()
    return queue_fields(text), header_fields(text)


def ring_threads(pid):
    """Names of the daemon's threads that serve io-uring queues."""
    names = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                comm = f.read().strip()
        except OSError:
            continue
        if comm.startswith("rf-uring"):
            names.append(comm)
    return sorted(names)


def statfs_on(m, cpu, n):
    failures = run_parallel(lambda i: [os.statvfs(m.path) for _ in range(n)], 1, cpus=[cpu])
    assert not failures, failures


def direct_writes(path, size, depth, cpu, seconds=None):
    """1 MiB O_DIRECT writes into path (sized first, so they run in parallel) from cpu."""
    cmd = ["fio", "--name=w", "--filename=" + path, "--rw=write", "--bs=1m", "--direct=1",
           "--size=%d" % size, "--ioengine=io_uring", "--iodepth=%d" % depth,
           "--fallocate=truncate", "--cpus_allowed=%d" % cpu, "--output=/dev/null"]
    if seconds:
        cmd += ["--time_based", "--runtime=%d" % seconds]
    subprocess.run(cmd, check=True, timeout=120)


def deep_reads(path, cpu, depth=32, seconds=1):
    subprocess.run(["fio", "--name=r", "--filename=" + path, "--rw=randread", "--bs=4k",
                    "--direct=1", "--ioengine=io_uring", "--iodepth=%d" % depth,
                    "--runtime=%d" % seconds, "--time_based", "--cpus_allowed=%d" % cpu,
                    "--output=/dev/null"], check=True, timeout=120)


# ---- threads ----

@pytest.mark.transports("uring")
@pytest.mark.mount_opts("stats")
def test_every_queue_served_whatever_the_thread_count(mnt):
    """Requests from every CPU are answered by that CPU's queue, and the queues are served by
    as many threads as asked for: one per queue by default, the session's own thread alone
    with uring_threads=1."""
    cpus = usable_cpus()
    for cpu in cpus:
        statfs_on(mnt, cpu, 50)
    q, head = live_fields(mnt)
    for cpu in cpus:
        assert q[cpu]["requests"] >= 50, q
    nq = possible_cpus()
    if mnt.transport == "uring-t1":
        assert ring_threads(mnt.pid) == [], "uring_threads=1 runs the ring on the session's " \
            "thread, found %s" % ring_threads(mnt.pid)
        assert head["threads"] == 1 and {f["thread"] for f in q.values()} == {0}, (head, q)
    else:
        assert len(ring_threads(mnt.pid)) == nq
        assert head["threads"] == nq and sorted(f["thread"] for f in q.values()) == \
            list(range(nq)), (head, q)


def test_thread_count_validation():
    """More threads than queues cannot be served: refused at start, saying why."""
    need_uring()
    nq = possible_cpus()
    path = make_dir("mnt-")
    out = expect_start_failure(daemon_argv("memfs", path, "uring",
                                           opts=("uring_threads=%d" % (nq + 1),)),
                               path + ".log", path)
    assert "uring_threads=%d" % (nq + 1) in out and "%d io-uring queues" % nq in out, out


@pytest.mark.parametrize("opt", ["uring_threads=0", "uring_depth_min=0",
                                 "uring_payload_max=12x", "uring_trim_ms=-1"])
def test_option_values_are_checked(opt):
    need_uring()
    path = make_dir("mnt-")
    out = expect_start_failure(daemon_argv("memfs", path, "uring", opts=(opt,)),
                               path + ".log", path)
    key = opt.split("=")[0]
    assert "'%s" % opt in out and "expected" in out, out
    assert key in out


# ---- single-threaded serving ----

SINGLE = [("uring", ("uring_threads=1",), ()), ("uring", (), ("-s",)),
          ("dev", (), ("-s",)), ("uring-rw", (), ("-s",))]


@pytest.mark.parametrize("tp,opts,args", SINGLE,
                         ids=["uring-threads1", "uring-s", "dev-s", "uring-rw-s"])
def test_single_threaded_callbacks(mounter, tp, opts, args):
    """A filesystem written for one thread: every callback (init, requests from every CPU's
    queue, forgets and other messages that still come over /dev/fuse, destroy) runs on one
    thread, never two at once."""
    m = mounter(tp, "memfs", opts=("test_threads_log", "stats") + opts, args=args)
    cpus = usable_cpus()
    d = m.p("d")
    os.mkdir(d)

    def client(i):
        for j in range(40):
            name = os.path.join(d, "c%d-%d" % (i, j))
            make_file(name, rand(5000 + j, i * 100 + j))
            os.stat(name)
            read_file(name)
            os.setxattr(name, "user.k", b"v")

    assert not run_parallel(client, max(2, len(cpus)), cpus=cpus)
    # Evicted inodes make the kernel send forgets, over /dev/fuse even with the ring on.
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2")
    for name in os.listdir(d):
        os.unlink(os.path.join(d, name))
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("2")
    assert m.unmount() == 0, m.log_report()
    out = m.daemon.output()
    line = re.search(r"memfs: callbacks ran on (\d+) thread\(s\): (\S*); at most (\d+) at once; "
                     r"(\d+) callbacks", out)
    assert line, "no threads log\n" + m.log_report()
    assert re.search(r"\b(?:BATCH_FORGET|FORGET)=\d+", out), "no forget reached the daemon\n" + \
        m.log_report()
    assert (line.group(1), line.group(3)) == ("1", "1"), \
        "callbacks ran on %s threads (%s), %s at once\n%s" % (
            line.group(1), line.group(2), line.group(3), m.log_report())


# ---- depth ----

@pytest.mark.transports("uring")
@pytest.mark.mount_opts("stats")
def test_depth_grows_under_load(mnt):
    """Queues start with uring_depth_min (2) entries; a client keeping 32 reads in flight on
    one CPU makes that CPU's queue register more, up to uring_depth (16), and the statistics
    count it; the other queue, which only saw single requests, stays as it started."""
    need_fio()
    cpus = usable_cpus()
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    quiet, busy = cpus[0], cpus[-1]
    q, _ = live_fields(mnt)
    assert all(f["entries"] == 2 and f["grows"] == 0 for f in q.values()), q
    failures = run_parallel(lambda i: make_file(mnt.p("f"), rand(8 * MiB, 3)), 1, cpus=[quiet])
    assert not failures, failures
    q, _ = live_fields(mnt)
    assert q[busy]["entries"] == 2, q
    deep_reads(mnt.p("f"), busy)
    q, _ = live_fields(mnt)
    assert q[busy]["entries"] > 2 and q[busy]["grows"] >= 1, q
    assert q[busy]["entries"] <= 16 and q[busy]["grows"] <= 3, q


@pytest.mark.transports("uring")
@pytest.mark.mount_opts("stats", "uring_depth=64", "uring_depth_min=2")
def test_depth_stops_at_what_the_load_needs(mnt):
    """Single requests never make a queue grow."""
    cpu = usable_cpus()[0]
    statfs_on(mnt, cpu, 2000)
    q, _ = live_fields(mnt)
    assert q[cpu]["entries"] == 2 and q[cpu]["grows"] == 0, q


# ---- memory ----

@pytest.mark.transports("uring")
@pytest.mark.mount_opts("stats", "uring_trim_ms=300", "cache=none")
def test_payload_given_back_after_idle(mnt):
    """1 MiB writes fill the payload of many entries; 300 ms after the burst the idle entries'
    payload is given back (the statistics' resident payload drops), and the next writes and
    reads still carry the right bytes through entries whose pages fault back in."""
    need_fio()
    cpu = usable_cpus()[-1]
    direct_writes(mnt.p("burst"), 64 * MiB, 16, cpu)
    q, _ = live_fields(mnt)
    busy = q[cpu]["payload_kib"]
    assert busy >= 4 * 1024, "only %d KiB resident after 1 MiB writes at QD16: %s" % (busy, q)
    time.sleep(1.0)
    q, _ = live_fields(mnt)
    assert q[cpu]["payload_kib"] <= 64, "still %d KiB resident after idling: %s" % (
        q[cpu]["payload_kib"], q)
    assert q[cpu]["trims"] >= 1, q
    data = rand(8 * MiB, 11)
    make_file(mnt.p("after"), data)
    assert read_file(mnt.p("after")) == data
    failures = run_parallel(lambda i: direct_writes(mnt.p("w%d" % i), 16 * MiB, 8, cpu), 2)
    assert not failures, failures


@pytest.mark.transports("uring")
@pytest.mark.mount_opts("stats", "uring_trim_ms=0", "cache=none")
def test_trimming_can_be_turned_off(mnt):
    need_fio()
    cpu = usable_cpus()[-1]
    direct_writes(mnt.p("burst"), 32 * MiB, 16, cpu)
    before = live_fields(mnt)[0][cpu]["payload_kib"]
    time.sleep(1.2)
    q, _ = live_fields(mnt)
    assert q[cpu]["payload_kib"] == before and q[cpu]["trims"] == 0, (before, q)


@pytest.mark.transports("uring")
def test_payload_bound(mounter, transport):
    """uring_payload_max bounds the payload of all queues together: queues stop growing there;
    a bound below what the queues need to start is refused with what they need."""
    need_fio()
    nq = possible_cpus()
    bound = nq + 3  # MiB: each queue's first entry, and three more
    m = mounter(transport, "memfs", opts=("stats", "uring_depth_min=1",
                                          "uring_payload_max=%dM" % bound))
    make_file(m.p("f"), rand(4 * MiB, 5))
    for cpu in usable_cpus():
        deep_reads(m.p("f"), cpu)
    q, _ = live_fields(m)
    assert sum(f["entries"] for f in q.values()) == bound, q
    path = make_dir("mnt-")
    out = expect_start_failure(daemon_argv("memfs", path, transport,
                                           opts=("uring_payload_max=%dk" % (nq * 1024 - 4),
                                                 "uring_depth_min=1")),
                               path + ".log", path)
    assert "uring_payload_max" in out and "need" in out, out


@pytest.mark.transports("uring")
@pytest.mark.filesystems("memfs", "passthrough")
@pytest.mark.mount_opts("stats", "uring_trim_ms=1", "uring_depth_min=1")
def test_data_survives_constant_trimming(mnt, transport, fs):
    """Entries give their payload back a millisecond after each use, while fsx writes, reads,
    truncates and punches (through the page cache and with O_DIRECT) and two writers keep
    both queues busy: the kernel copies requests into entries whose pages were just moved
    away, and into some while they move. Not a byte may go wrong, and trimming must really
    have happened all along."""
    seed = env_seed()
    stop = time.monotonic() + 6
    failures = []

    def writer(i):
        data = rand(256 * 1024, 100 + i)
        name = mnt.p("w%d" % i)
        while time.monotonic() < stop:
            make_file(name, data)
            if rfutil.read_direct(name) != data:
                raise AssertionError("%s read back wrong" % name)

    cpus = usable_cpus()
    writers = threading.Thread(
        target=lambda: failures.extend(run_parallel(writer, 2, timeout=60, cpus=cpus)))
    writers.start()
    try:
        for direct in (False, True):
            x = Fsx(mnt.p("fsx-%d.dat" % direct), seed + direct, direct=direct,
                    label="%s/%s trimming" % (fs, transport))
            try:
                res = x.run(10000000, 3.0)
            finally:
                x.close()
            assert res["ops"] >= 30, "only %d fsx ops in 3 s (seed %d)" % (res["ops"], seed)
            x.compare("read after close", 0, rfutil.read_direct(x.path), bytes(x.model))
    finally:
        writers.join(90)
    assert not failures, failures
    q, _ = live_fields(mnt)
    trims = sum(f["trims"] for f in q.values())
    assert trims >= 100, "only %d trims in 6 s with uring_trim_ms=1: %s" % (trims, q)


@pytest.mark.transports("uring")
def test_locked_memory_need_is_said_before_rings_fail(transport):
    """Without CAP_IPC_LOCK the rings' kernel memory counts against RLIMIT_MEMLOCK. With a
    limit that lets the probe's small ring through but not the queues' rings (uring_depth=64:
    24 KiB per thread), the daemon refuses to start and says how much it needs and what the
    limit allows, before any ring fails."""
    need_uring()
    if not shutil.which("prlimit") or not shutil.which("setpriv"):
        pytest.skip("prlimit and setpriv (util-linux) are needed")
    mnt = make_dir("mnt-")
    threads = 1 if transport in rfutil.TRANSPORT_VARIANTS else possible_cpus()
    argv = ["setpriv", "--inh-caps=-ipc_lock", "--bounding-set=-ipc_lock", "prlimit",
            "--memlock=12288:12288", "--"] + daemon_argv("memfs", mnt, transport,
                                                         opts=("uring_depth=64",))
    # The limit is the user's, shared with rings of other processes: those of a daemon that
    # just exited are released by the kernel a moment later.
    for _ in range(10):
        out = expect_start_failure(argv, mnt + ".log", mnt)
        if "cannot create an io_uring" not in out:
            break
        time.sleep(0.5)
    need = re.search(r"the io_uring rings need (\d+) KiB of locked memory, and RLIMIT_MEMLOCK "
                     r"allows 12 KiB", out)
    assert need, out
    # At least one ring of 64 entries (24 KiB), one per thread.
    assert int(need.group(1)) >= 24 * threads, out


# ---- memfs gives freed file data back ----


def rss_kib(pid):
    return daemon_usage(pid)[0]


def rss_falls_to(pid, limit_kib, seconds=5.0):
    deadline = time.monotonic() + seconds
    while rss_kib(pid) > limit_kib and time.monotonic() < deadline:
        time.sleep(0.05)
    return rss_kib(pid)


@pytest.mark.mount_opts("cache=none")
def test_freed_file_data_leaves_the_daemon(mnt):
    """memfs keeps file data in its heap, written by several queue threads at once (so in
    several allocator arenas): deleting or truncating the files must give that memory back to
    the kernel, the daemon's RSS falling to where it was, not only to the allocator."""
    if sanitized(rfutil.fs_binary("memfs")):
        pytest.skip("a sanitizer's allocator keeps freed memory in quarantine")
    cpus = usable_cpus()
    # The transport's buffers fill up with the first large writes: they are not file data.
    failures = run_parallel(lambda i: make_file(mnt.p("warm%d" % i), b"w" * 4 * MiB), 2,
                            cpus=cpus)
    assert not failures, failures
    for i in range(2):
        os.unlink(mnt.p("warm%d" % i))
    base = rss_kib(mnt.pid)
    failures = run_parallel(lambda i: make_file(mnt.p("big%d" % i), bytes([0xa5 + i]) * 96 * MiB),
                            2, cpus=cpus)
    assert not failures, failures
    peak = rss_kib(mnt.pid)
    assert peak - base >= 150 * 1024, "192 MiB written, RSS %d -> %d KiB" % (base, peak)
    os.unlink(mnt.p("big0"))
    with open(mnt.p("big1"), "r+b") as f:
        f.truncate(MiB)
    after = rss_falls_to(mnt.pid, base + 32 * 1024)
    assert after <= base + 32 * 1024, \
        "RSS %d KiB before, %d with 192 MiB of files, %d after deleting and truncating them" % (
            base, peak, after)
    with open(mnt.p("big1"), "rb") as f:
        assert f.read() == bytes([0xa6]) * MiB
