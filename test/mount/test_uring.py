"""FUSE over io_uring specifics: the per-CPU queues really carry the requests (proved by the
statistics the daemon prints at exit with -o stats), a task's requests land on the queue of the
CPU it runs on, many clients on all CPUs at once get correct data, and the depth option is
validated."""

import os
import re
import shutil
import subprocess
import time

import pytest

import rfutil
from rfutil import (ALL_TRANSPORTS, MiB, daemon_argv, expect_start_failure, make_dir, make_file,
                    rand, read_direct, read_direct_fd, read_file, run_parallel, usable_cpus,
                    possible_cpus)

pytestmark = pytest.mark.transports("uring")


def ring_stats(m):
    """Unmount, then read the per-queue request counts the daemon printed.

    The one place that states what the stats must look like for a uring mount: returns
    ({queue index: requests}, requests served on /dev/fuse or None when not printed).
    """
    rc = m.unmount()
    assert rc == 0, "exit status %s at unmount\n%s" % (rc, m.log_report())
    s = m.stats()
    assert s["queues"], "no per-queue request counts in the -o stats output\n" + m.log_report()
    if s["transport"] is not None:
        assert s["transport"] == "uring", s
    ncpu = possible_cpus()
    assert all(0 <= q < ncpu for q in s["queues"]), \
        "queue indices %s outside 0..%d" % (sorted(s["queues"]), ncpu - 1)
    return s["queues"], s["dev"]


def statfs_loop(path, n):
    for _ in range(n):
        os.statvfs(path)  # exactly one FUSE_STATFS each, never cached


@pytest.mark.mount_opts("stats")
def test_queues_carry_the_traffic(mnt):
    k = 300
    make_file(mnt.p("f"), rand(64 * 1024, 1))
    fd = os.open(mnt.p("f"), os.O_RDONLY | os.O_DIRECT)
    try:
        for _ in range(k):
            assert len(read_direct_fd(fd, 0, 4096)) == 4096
    finally:
        os.close(fd)
    statfs_loop(mnt.path, k)
    queues, dev = ring_stats(mnt)
    on_ring = sum(queues.values())
    assert on_ring >= 2 * k, "only %d requests on the ring queues for %d reads + %d statfs" % (
        on_ring, k, k)
    if dev is not None:
        assert dev < k // 4, "%d requests went over /dev/fuse instead of the ring" % dev


def pinned_statfs(mnt, cpu, n):
    failures = run_parallel(lambda i: statfs_loop(mnt.path, n), 1, cpus=[cpu])
    assert not failures, failures


@pytest.mark.mount_opts("stats")
def test_requests_follow_the_cpu(mnt):
    """A task pinned to CPU k is served by queue k: counted with live statistics (SIGUSR1)
    taken around each pinned batch of statfs calls."""
    cpus = usable_cpus()[:4]
    # Until every queue has registered, requests still travel over /dev/fuse: wait for that.
    deadline = time.monotonic() + 5
    while True:
        for cpu in cpus:
            pinned_statfs(mnt, cpu, 20)
        queues = mnt.live_stats()["queues"]
        if all(queues.get(cpu, 0) > 0 for cpu in cpus):
            break
        assert time.monotonic() < deadline, "queues %s never carried a request" % queues
    n = 500
    noise = 10  # the test process itself is idle during a batch; allow a stray request or two
    for cpu in cpus:
        before = mnt.live_stats()["queues"]
        pinned_statfs(mnt, cpu, n)
        after = mnt.live_stats()["queues"]
        delta = {q: after.get(q, 0) - before.get(q, 0) for q in after}
        assert n <= delta.get(cpu, 0) <= n + noise, \
            "client pinned to CPU %d made %d requests; per-queue increase %s" % (cpu, n, delta)
        others = {q: d for q, d in delta.items() if q != cpu and d > noise}
        assert not others, "requests from CPU %d served by other queues: %s" % (cpu, delta)
    ring_stats(mnt)


def one_thread_per_queue(mnt):
    """Spreading is of a thread pinned to its queue's CPU; the session's own thread serving
    every queue (uring_threads=1) runs wherever the process may."""
    if mnt.transport != "uring":
        pytest.skip("%s: one thread serves every queue, pinned nowhere" % mnt.transport)


def queue_cpus(pid):
    """{queue index: set of CPUs its thread may run on}, from /proc (threads "rf-uring-N")."""
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                comm = f.read().strip()
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                status = f.read()
        except OSError:
            continue
        if not comm.startswith("rf-uring-"):
            continue
        allowed = re.search(r"^Cpus_allowed_list:\s*(\S+)", status, re.M).group(1)
        cpus = set()
        for part in allowed.split(","):
            lo, _, hi = part.partition("-")
            cpus.update(range(int(lo), int(hi or lo) + 1))
        out[int(comm[len("rf-uring-"):])] = cpus
    return out


def deep_reads(path, cpu):
    """One second of 4K O_DIRECT random reads of path, 32 in flight, from CPU cpu."""
    subprocess.run(["fio", "--name=deep", "--filename=" + path, "--rw=randread", "--bs=4k",
                    "--direct=1", "--ioengine=io_uring", "--iodepth=32", "--runtime=1",
                    "--time_based", "--cpus_allowed=%d" % cpu, "--output=/dev/null"],
                   check=True, timeout=60)


@pytest.mark.filesystems("memfs")
@pytest.mark.mount_opts("stats")
def test_deep_client_spreads_its_queue_then_it_goes_home(mnt):
    """A client with 32 reads in flight makes its queue leave its pinned CPU (so that client
    and queue can run side by side); single requests afterwards bring it back."""
    one_thread_per_queue(mnt)
    cpus = usable_cpus()
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    if not shutil.which("fio"):
        pytest.skip("fio is not installed (apt-get install fio)")
    cpu = cpus[-1]
    make_file(mnt.p("f"), rand(16 * MiB, 7))
    assert queue_cpus(mnt.pid)[cpu] == {cpu}
    deep_reads(mnt.p("f"), cpu)
    spread = queue_cpus(mnt.pid)[cpu]
    assert spread > {cpu}, "queue %d still limited to %s after a QD32 load" % (cpu, spread)
    assert re.search(r"queue %d: .*\bspreads [1-9]" % cpu, mnt.live_stats_text()), \
        "no spread counted for queue %d\n%s" % (cpu, mnt.log_report())
    pinned_statfs(mnt, cpu, 600)
    assert queue_cpus(mnt.pid)[cpu] == {cpu}, "queue %d did not go back to its CPU" % cpu


def queue_line(text, q):
    m = re.search(r"^ringfuse-stats: queue %d: (.*)$" % q, text, re.M)
    assert m, "no statistics line for queue %d\n%s" % (q, text)
    return m.group(1)


def stat_value(line, name):
    return float(re.search(r"\b%s ([0-9.]+)" % name, line).group(1))


@pytest.mark.filesystems("memfs")
@pytest.mark.mount_opts("stats")
def test_polling_is_counted(mnt):
    """After each round a queue thread polls its ring for the next requests (uring_spin_us):
    back-to-back requests from a caller on its CPU are caught by those polls, and the time
    spent polling is counted."""
    one_thread_per_queue(mnt)
    cpu = usable_cpus()[-1]
    pinned_statfs(mnt, cpu, 3000)
    line = queue_line(mnt.live_stats_text(), cpu)
    assert stat_value(line, "spins") > 0 and stat_value(line, "spin_hits") > 0, line
    assert stat_value(line, "spin_hits") <= stat_value(line, "spins"), line
    assert stat_value(line, "spin_us") > 0, line


@pytest.mark.filesystems("memfs")
@pytest.mark.mount_opts("stats", "uring_spin_us=0")
def test_no_polling_when_turned_off(mnt):
    one_thread_per_queue(mnt)
    cpu = usable_cpus()[-1]
    pinned_statfs(mnt, cpu, 300)
    line = queue_line(mnt.live_stats_text(), cpu)
    assert stat_value(line, "requests") >= 300 and stat_value(line, "spins") == 0, line


@pytest.mark.filesystems("memfs")
@pytest.mark.mount_opts("uring_spread=0")
def test_spreading_can_be_turned_off(mnt):
    one_thread_per_queue(mnt)
    cpus = usable_cpus()
    if len(cpus) < 2 or not shutil.which("fio"):
        pytest.skip("needs two CPUs and fio")
    cpu = cpus[-1]
    make_file(mnt.p("f"), rand(4 * MiB, 8))
    deep_reads(mnt.p("f"), cpu)
    assert queue_cpus(mnt.pid)[cpu] == {cpu}


@pytest.mark.filesystems("memfs")
@pytest.mark.mount_opts("stats", "cache=none")
def test_forgets_are_gathered(mnt):
    """Forgets still come over /dev/fuse; the reader lets the kernel batch them rather than
    waking for each evicted inode."""
    n = 2000
    d = mnt.p("many")
    os.mkdir(d)
    for i in range(n):
        with open(os.path.join(d, "f%d" % i), "w"):
            pass
    t0 = time.monotonic()
    for i in range(n):
        os.unlink(os.path.join(d, "f%d" % i))
    queues, dev = ring_stats(mnt)
    ms = (time.monotonic() - t0) * 1000
    log = mnt.daemon.output()
    forgets = re.findall(r"\b(?:BATCH_FORGET|FORGET)=(\d+)", log)
    assert forgets and sum(map(int, forgets)) > 0, "no forget reached the daemon\n" + log
    # The reader pauses 1 ms after each forget: it cannot have read more often than that,
    # however fast or slow (sanitizers) the unlinks went.
    assert dev is not None and dev < ms * 1.2 + 20, \
        "%s requests over /dev/fuse in %.0f ms for %d evicted inodes: forgets were not " \
        "batched" % (dev, ms, n)


def hammer(mnt, clients, rounds):
    """clients forked processes, spread over the CPUs, each creating, writing, reading back,
    renaming and unlinking its own files in one shared directory."""
    shared = mnt.p("shared")
    os.mkdir(shared)
    os.chmod(shared, 0o777)
    sizes = [0, 1, 4095, 4096, 65537, 300_000, MiB + 3]

    def client(i):
        for j in range(rounds):
            name = os.path.join(shared, "c%02d-%03d" % (i, j))
            data = rand(sizes[(i + j) % len(sizes)], i * 1000 + j)
            make_file(name, data)
            st = os.stat(name)
            if st.st_size != len(data):
                raise AssertionError("%s: size %d, wrote %d" % (name, st.st_size, len(data)))
            if read_file(name) != data:
                raise AssertionError("%s: data read back differs" % name)
            if j % 3 == 0 and read_direct(name) != data:
                raise AssertionError("%s: data read with O_DIRECT differs" % name)
            moved = name + ".moved"
            os.rename(name, moved)
            if read_file(moved) != data:
                raise AssertionError("%s: data differs after rename" % moved)
            os.unlink(moved)
            if os.path.lexists(moved):
                raise AssertionError("%s still there after unlink" % moved)

    failures = run_parallel(client, clients, timeout=120.0, cpus=usable_cpus())
    assert not failures, "\n".join(failures)
    assert os.listdir(shared) == []


@pytest.mark.transports(*ALL_TRANSPORTS)
@pytest.mark.mount_opts("stats")
def test_parallel_clients(mnt):
    hammer(mnt, clients=16, rounds=25)
    if rfutil.base_transport(mnt.transport) == "uring":
        queues, _ = ring_stats(mnt)
        for cpu in usable_cpus():
            # 16 clients x 25 rounds over the CPUs: each CPU's queue saw hundreds.
            assert queues.get(cpu, 0) >= 100, "queue %d idle under load: %s" % (cpu, queues)


@pytest.mark.mount_opts("uring_depth=4")
def test_shallow_queues_under_load(mnt):
    """Fewer ring entries than concurrent requests: the kernel must queue, nothing may hang."""
    hammer(mnt, clients=16, rounds=8)


@pytest.mark.parametrize("depth", ["0", "100000"])
def test_depth_validation(depth):
    why = rfutil.uring_unusable_reason()
    if why:
        pytest.skip(why)
    mnt = make_dir("mnt-")
    out = expect_start_failure(daemon_argv("memfs", mnt, "uring", opts=("uring_depth=" + depth,)),
                               mnt + ".log", mnt)
    assert "uring_depth" in out, "the message does not name uring_depth:\n" + out
