"""Profiling cells with perf: --perf DIR records a CPU profile of every cell it runs.

perf samples the whole machine (-a, so that both the daemon and the caller's side of each
request are seen, kernel included) on the cpu-clock software event, which needs no hardware
counters (virtual machines often have none), with call graphs. One perf.data file per round,
configuration and cell; the daemon's pids are in the results file (mounts[].pids) to filter
with `perf report --pid`. Profiling costs CPU, so a profiled run's numbers are not for
comparison.
"""

import os
import shutil
import signal
import subprocess
import time


class ProfileError(Exception):
    pass


def find_perf():
    return shutil.which("perf")


def record_cmd(perf, path, frequency=2000):
    return [perf, "record", "-q", "-e", "cpu-clock", "-F", str(int(frequency)), "-a", "-g",
            "-o", path]


def data_path(directory, rnd, config, cell):
    return os.path.join(directory, "r%d-%s-%s.data" % (rnd + 1, config, cell))


class Recorder:
    """perf record running in the background until stop()."""

    def __init__(self, perf, path, log_path):
        self.path = path
        self.log = open(log_path, "ab")
        try:
            self.proc = subprocess.Popen(record_cmd(perf, path), stdin=subprocess.DEVNULL,
                                         stdout=self.log, stderr=subprocess.STDOUT)
        except OSError as e:
            self.log.close()
            raise ProfileError("cannot run perf: %s" % e.strerror) from None
        time.sleep(0.2)  # perf needs a moment to open its events
        if self.proc.poll() is not None:
            self.log.close()
            raise ProfileError("perf record exited with status %d (see %s)"
                               % (self.proc.returncode, log_path))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode
