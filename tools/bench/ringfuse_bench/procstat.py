"""Which processes serve a mount, and how much CPU they use, from /proc.

The daemon's CPU time is what its requests cost: user plus system time of the whole process
(every thread, including io_uring workers and threads that already exited). It is read from
the process's CPU-time clock (clock_gettime on the clock clock_getcpuclockid() names: the
same sum_exec_runtime that /proc/PID/stat reports as utime + stime, but in nanoseconds rather
than clock ticks, which matters for a short phase), and from /proc/PID/stat where that clock
cannot be read. Finding the daemon is the delicate part: a daemon may stay in the foreground,
fork into the background (its parent exits once the mount is up), or be started through a
wrapper (sh -c, sudo, a script) that stays alive without serving anything. So the benchmark
makes itself a child subreaper, which keeps every process the daemon command starts in its
process tree even after it forks away from its parent, and takes, among those, the processes
that hold /dev/fuse open: the ones that read requests.

Parsing is separate from reading so it can be tested on recorded text.
"""

import ctypes
import os
import time

PR_SET_CHILD_SUBREAPER = 36
CLK_TCK = os.sysconf("SC_CLK_TCK")
FUSE_DEV = "/dev/fuse"
IO_URING_FD = "anon_inode:[io_uring]"


class ProcError(Exception):
    """A process the benchmark measures has gone away."""


def set_child_subreaper():
    """Keep orphaned descendants as our children (so a daemon that forks stays findable).
    True on success."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def parse_stat(text):
    """The fields of a /proc/PID/stat line that matter here: pid, comm, state, ppid, and
    utime and stime in clock ticks. comm may contain spaces and parentheses, so the fields
    are counted from its last ')'."""
    lp, rp = text.index("("), text.rindex(")")
    rest = text[rp + 2:].split()
    return {
        "pid": int(text[:lp]),
        "comm": text[lp + 1:rp],
        "state": rest[0],
        "ppid": int(rest[1]),
        "utime": int(rest[11]),
        "stime": int(rest[12]),
    }


def read_stat(pid):
    with open("/proc/%d/stat" % pid) as f:
        return parse_stat(f.read())


def all_stats():
    """{pid: parsed stat} for every process that can be read right now."""
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                out[int(d)] = read_stat(int(d))
            except (OSError, ValueError, IndexError):
                pass
    return out


def descendants(roots, stats):
    """roots and every process below them in the ppid tree of stats."""
    children = {}
    for pid, st in stats.items():
        children.setdefault(st["ppid"], []).append(pid)
    seen, todo = set(), [r for r in roots if r in stats]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, ()))
    return seen


def fd_targets(pid):
    """What the open descriptors of pid point to ([] if it cannot be read)."""
    base = "/proc/%d/fd" % pid
    out = []
    try:
        names = os.listdir(base)
    except OSError:
        return out
    for n in names:
        try:
            out.append(os.readlink(os.path.join(base, n)))
        except OSError:
            pass
    return out


def pick_servers(tree, fds):
    """Of the processes in tree, those holding /dev/fuse ({pid: [fd targets]}); all of tree
    when none does (a daemon that passed its descriptor on and exited, say)."""
    holders = sorted(p for p in tree if FUSE_DEV in fds.get(p, ()))
    return holders or sorted(tree)


def find_daemon(root_pid, my_children_before=()):
    """The pids serving the mount of the daemon started as root_pid.

    With the benchmark a subreaper, a daemon that forked away is reparented to us: such
    processes are our children that did not exist before the daemon was started."""
    stats = all_stats()
    me = os.getpid()
    adopted = [p for p, st in stats.items() if st["ppid"] == me and p != root_pid
               and p not in my_children_before]
    tree = descendants([root_pid] + adopted, stats)
    tree = {p for p in tree if stats[p]["state"] not in ("Z", "X")}
    fds = {p: fd_targets(p) for p in tree}
    return pick_servers(tree, fds), fds


def my_children():
    me = os.getpid()
    return {p for p, st in all_stats().items() if st["ppid"] == me}


def process_clock_id(pid):
    """The clock id of pid's process CPU-time clock, as clock_getcpuclockid() makes it: the
    kernel's MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED)."""
    return ((~pid) << 3) | 2


def process_cpu_seconds(pid):
    """CPU seconds (user + system, all threads, living and exited) of process pid."""
    try:
        return time.clock_gettime_ns(process_clock_id(pid)) / 1e9
    except OSError:
        pass  # no such process, or a kernel without the clock: ask /proc
    try:
        st = read_stat(pid)
    except (OSError, ValueError, IndexError):
        raise ProcError("process %d is gone" % pid) from None
    if st["state"] in ("Z", "X"):
        raise ProcError("process %d has exited" % pid)
    return (st["utime"] + st["stime"]) / float(CLK_TCK)


def uring_fds(fd_lists):
    """How many io_uring instances the given {pid: [fd targets]} hold."""
    return sum(1 for fds in fd_lists.values() for t in fds if t == IO_URING_FD)


class CpuMeter:
    """User+system CPU seconds of a fixed set of processes (all their threads)."""

    def __init__(self, pids):
        self.pids = list(pids)

    def seconds(self):
        return sum(process_cpu_seconds(pid) for pid in self.pids)

    def memory(self):
        """Threads and resident memory of the processes, summed (parse_memory's keys)."""
        total = {"threads": 0, "rss_kib": 0, "anon_kib": 0}
        for pid in self.pids:
            try:
                with open("/proc/%d/status" % pid) as f:
                    m = parse_memory(f.read())
            except OSError:
                raise ProcError("process %d is gone" % pid) from None
            for k in total:
                total[k] += m[k]
        return total

    def context_switches(self):
        """Voluntary plus involuntary context switches of every live thread: how often the
        daemon went to sleep or was preempted (wake-ups, when idle)."""
        total = 0
        for pid in self.pids:
            try:
                tids = os.listdir("/proc/%d/task" % pid)
            except OSError:
                raise ProcError("process %d is gone" % pid) from None
            for tid in tids:
                try:
                    with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                        total += parse_ctxt_switches(f.read())
                except OSError:
                    pass  # a thread that just exited
        return total


def parse_memory(status_text):
    """Threads and resident memory (KiB: all of it, and the anonymous part) from a
    /proc/PID/status text."""
    out = {"threads": 0, "rss_kib": 0, "anon_kib": 0}
    keys = {"Threads:": "threads", "VmRSS:": "rss_kib", "RssAnon:": "anon_kib"}
    for line in status_text.splitlines():
        head = line.split(None, 1)
        if head and head[0] in keys and len(head) == 2:
            out[keys[head[0]]] = int(head[1].split()[0])
    return out


def parse_ctxt_switches(status_text):
    n = 0
    for line in status_text.splitlines():
        if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
            n += int(line.split(":", 1)[1])
    return n
