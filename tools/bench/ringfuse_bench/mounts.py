"""Starting, detecting and stopping filesystem daemons.

A daemon is started in its own session (so a Ctrl-C reaches the benchmark, which then unmounts
in order, rather than the daemon), with stdout and stderr going to a log file that is shown
when it fails. The mount is detected in /proc/self/mountinfo, which works both for daemons
that stay in the foreground and for daemons that fork and let their parent exit 0. Once it is
up, the processes that serve it are looked up (procstat.find_daemon) so that their CPU time
can be measured and, for a daemon that forked away, so that its exit can be waited for.
"""

import os
import re
import shutil
import signal
import subprocess
import time

from . import procstat

ENABLE_URING = "/sys/module/fuse/parameters/enable_uring"
IO_URING_DISABLED = "/proc/sys/kernel/io_uring_disabled"


class MountError(Exception):
    """A daemon could not be mounted (the message carries its output)."""


def unescape_mountinfo(field):
    """Undo the octal escapes (\\040 for space, ...) of a mountinfo field."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text):
    """Entries of a mountinfo file: dicts with mountpoint, fstype, source, options."""
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 6 or len(rf) < 2:
            continue
        out.append({
            "id": int(lf[0]),
            "mountpoint": unescape_mountinfo(lf[4]),
            "options": lf[5],
            "fstype": rf[0],
            "source": unescape_mountinfo(rf[1]),
        })
    return out


def read_mountinfo():
    with open("/proc/self/mountinfo") as f:
        return f.read()


def find_mount(path, text=None):
    """The topmost mount at path (an entry of parse_mountinfo), or None."""
    path = os.path.realpath(path)
    found = None
    for e in parse_mountinfo(text if text is not None else read_mountinfo()):
        if e["mountpoint"] == path:
            found = e
    return found


def ensure_uring_enabled(param=ENABLE_URING, try_enable=True):
    """(ok, message): is FUSE-over-io-uring enabled in the kernel, enabling it if we can."""
    try:
        with open(IO_URING_DISABLED) as f:
            val = f.read().strip()
        if val not in ("", "0"):
            return False, "io_uring is disabled by sysctl kernel.io_uring_disabled=%s" % val
    except OSError:
        pass
    if not os.path.exists(param):
        if not os.path.exists("/sys/module/fuse"):
            # The module loads on the first open of /dev/fuse.
            try:
                os.close(os.open("/dev/fuse", os.O_RDWR))
            except OSError:
                pass
        if not os.path.exists(param):
            return False, ("%s does not exist: this kernel has no FUSE-over-io-uring "
                           "(CONFIG_FUSE_IO_URING, Linux 6.14+)" % param)
    try:
        with open(param) as f:
            val = f.read().strip()
    except OSError as e:
        return False, "cannot read %s: %s" % (param, e.strerror)
    if val == "Y":
        return True, "%s is Y" % param
    if not try_enable:
        return False, "%s is %s" % (param, val)
    try:
        with open(param, "w") as f:
            f.write("Y\n")
        with open(param) as f:
            val = f.read().strip()
    except OSError as e:
        return False, ("%s is N and cannot be set (%s): run `echo Y > %s` as root"
                       % (param, e.strerror, param))
    if val != "Y":
        return False, "%s stays %s after writing Y" % (param, val)
    return True, "%s was N, set to Y" % param


def unmount(path, lazy=False, timeout=10.0):
    """Unmount path; returns (ok, message)."""
    if os.geteuid() == 0 or not shutil.which("fusermount3"):
        cmd = ["umount"] + (["-l"] if lazy else []) + [path]
    else:
        cmd = ["fusermount3", "-u"] + (["-z"] if lazy else []) + [path]
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, str(e)
    return p.returncode == 0, p.stdout.decode(errors="replace").strip()


def force_unmount(path):
    """Get whatever is mounted at path out of the way (a leftover of an earlier run)."""
    for lazy in (False, True):
        if find_mount(path) is None:
            return True
        unmount(path, lazy=lazy)
    return find_mount(path) is None


class Daemon:
    """One filesystem daemon mounted at mountpoint; use as a context manager.

    argv is the full command line. The mount counts as up when mountpoint shows in mountinfo
    with a fuse file system type; a daemon that exits non-zero before that has failed and its
    log is in the exception.
    """

    def __init__(self, argv, mountpoint, log_path, timeout=15.0, env=None):
        self.argv = list(argv)
        self.mountpoint = os.path.realpath(mountpoint)
        self.log_path = log_path
        self.timeout = timeout
        self.env = env
        self.proc = None
        self.daemonized = False
        self.mount_seconds = None
        self.stop_messages = []
        self.pids = []  # the processes serving the mount (holding /dev/fuse)
        self.fds = {}  # {pid: [fd targets]} of the daemon's process tree at mount time

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def log_text(self, limit=4000):
        try:
            with open(self.log_path, errors="replace") as f:
                text = f.read()
        except OSError:
            return ""
        return text if len(text) <= limit else "...\n" + text[-limit:]

    def _fail(self, why):
        log = self.log_text().rstrip()
        msg = "%s\n  command: %s" % (why, " ".join(self.argv))
        msg += "\n  daemon output:\n    " + ("\n    ".join(log.splitlines()) if log else "(none)")
        raise MountError(msg)

    def start(self):
        if find_mount(self.mountpoint) is not None and not force_unmount(self.mountpoint):
            raise MountError("%s is already mounted and could not be unmounted" %
                             self.mountpoint)
        t0 = time.monotonic()
        before = procstat.my_children()
        with open(self.log_path, "wb") as log:
            try:
                self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True,
                                             env=self.env)
            except OSError as e:
                raise MountError("cannot start %s: %s" % (self.argv[0], e.strerror)) from None
        try:
            self._wait_mounted(t0)
        except BaseException:
            self.stop()
            raise
        self.mount_seconds = time.monotonic() - t0
        self._find_servers(before)

    def _find_servers(self, before, timeout=3.0):
        """Look up the serving processes. A daemon that mounts through fusermount3 gets its
        /dev/fuse descriptor just after the mount shows, and a forking one may still be
        handing over to its child: look again for a moment until one holds /dev/fuse."""
        t0 = time.monotonic()
        while True:
            pids, fds = procstat.find_daemon(self.proc.pid, before)
            if any(procstat.FUSE_DEV in fds.get(p, ()) for p in pids) or \
                    time.monotonic() - t0 > timeout:
                break
            time.sleep(0.02)
        self.pids, self.fds = pids, fds

    def cpu_meter(self):
        """A CpuMeter of the serving processes, or None if none was found."""
        return procstat.CpuMeter(self.pids) if self.pids else None

    def uring_instances(self):
        """io_uring instances the serving processes held once mounted (0: not on io-uring)."""
        return procstat.uring_fds({p: self.fds.get(p, []) for p in self.pids})

    def _wait_mounted(self, t0):
        while True:
            m = find_mount(self.mountpoint)
            if m is not None and m["fstype"].startswith("fuse"):
                return
            rc = self.proc.poll()
            if rc is not None and rc != 0:
                self._fail("the daemon exited with status %d before mounting %s"
                           % (rc, self.mountpoint))
            if rc == 0:
                self.daemonized = True  # forked: its child should mount
            if time.monotonic() - t0 > self.timeout:
                self._fail("the daemon did not mount %s within %.0f s"
                           % (self.mountpoint, self.timeout))
            time.sleep(0.01)

    def alive(self):
        """Is the daemon still serving? A process that exited 0 while its mount stays up
        forked into the background, which counts as alive."""
        if self.proc is None:
            return False
        if self.daemonized:
            return find_mount(self.mountpoint) is not None
        rc = self.proc.poll()
        if rc is None:
            return True
        if rc == 0 and find_mount(self.mountpoint) is not None:
            self.daemonized = True
            return True
        return False

    def stop(self, timeout=10.0):
        """Unmount and wait for the daemon; escalate to signals and a lazy unmount if needed."""
        if self.proc is None:
            return
        for attempt in range(20):
            if find_mount(self.mountpoint) is None:
                break
            ok, msg = unmount(self.mountpoint)
            if ok:
                break
            if attempt == 0 and msg:
                self.stop_messages.append("umount: " + msg)
            time.sleep(0.1)
        if not self.daemonized:
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.stop_messages.append("the daemon did not exit after unmount; SIGTERM")
                self._signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    self.stop_messages.append("SIGKILL")
                    self._signal(signal.SIGKILL)
                    self.proc.wait()
        self._reap_forked(timeout)
        if find_mount(self.mountpoint) is not None:
            ok, msg = unmount(self.mountpoint, lazy=True)
            self.stop_messages.append("lazy unmount: %s" % ("ok" if ok else msg))
        self.proc = None if self.daemonized else self.proc

    def _reap_forked(self, timeout):
        """Wait for the processes of a daemon that forked away (our children as a subreaper)
        to exit after the unmount, so that the next configuration does not run beside it."""
        rest = [p for p in self.pids if p != self.proc.pid]
        t0 = time.monotonic()
        sig = None
        while rest:
            left = []
            for pid in rest:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:  # not our child: watch /proc instead
                    done = pid if not os.path.exists("/proc/%d" % pid) else 0
                if not done:
                    left.append(pid)
            rest = left
            if not rest:
                break
            el = time.monotonic() - t0
            if el > timeout and sig is None or el > timeout + 3 and sig == signal.SIGTERM:
                sig = signal.SIGTERM if sig is None else signal.SIGKILL
                self.stop_messages.append("the daemon did not exit after unmount; %s"
                                          % sig.name)
                for pid in rest:
                    try:
                        os.kill(pid, sig)
                    except (ProcessLookupError, PermissionError):
                        pass
            elif el > timeout + 6:
                self.stop_messages.append("processes %s did not exit" % rest)
                break
            time.sleep(0.02)

    def _signal(self, sig):
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def returncode(self):
        return None if self.proc is None else self.proc.returncode

    def transport_seen(self):
        """The transport ringfuse says it uses ("ringfuse: transport X" in its log), or None."""
        found = re.findall(r"ringfuse: transport (\S+)", self.log_text(limit=1 << 20))
        return found[-1] if found else None
