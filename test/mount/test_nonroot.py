"""An unprivileged user mounts through fusermount3 and unmounts with it; the mount carries the
user's identity and the flags fusermount3 enforces (nosuid, nodev)."""

import os
import subprocess
import time

import pytest

import rfutil

UID = GID = 1000


def _as_user(argv, **kw):
    return ["setpriv", "--reuid=%d" % UID, "--regid=%d" % GID, "--clear-groups"] + argv


@pytest.mark.parametrize("tp", ["dev", "uring"])
def test_nonroot_mount_via_fusermount(tp):
    if subprocess.call(["which", "fusermount3"], stdout=subprocess.DEVNULL) != 0:
        pytest.skip("fusermount3 is not installed (Debian package fuse3)")
    if tp == "uring" and rfutil.uring_unusable_reason():
        pytest.skip(rfutil.uring_unusable_reason())
    mnt = rfutil.make_dir("user-mnt-")
    os.chown(mnt, UID, GID)
    log = mnt + ".log"
    with open(log, "w") as logf:
        proc = subprocess.Popen(_as_user([rfutil.fs_binary("memfs"), "-f", "-o",
                                          "transport=" + tp, mnt]),
                                stdout=logf, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not rfutil.is_mounted(mnt) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        text = open(log).read()
        if not rfutil.is_mounted(mnt):
            if "fusermount3" in text and ("Permission denied" in text or
                                          "Operation not permitted" in text):
                pytest.skip("fusermount3 cannot mount for users here: " + text.strip()[-200:])
            pytest.fail("the user's mount did not appear:\n" + text)
        opts = [m for m in open("/proc/self/mountinfo") if " %s " % mnt in m][0]
        assert "nosuid" in opts and "nodev" in opts, opts
        assert "user_id=%d" % UID in opts, opts
        path = os.path.join(mnt, "f")
        subprocess.check_call(_as_user(["sh", "-c", "echo hello > '%s'" % path]))
        assert open(path).read() == "hello\n"
        st = os.stat(path)
        assert (st.st_uid, st.st_gid) == (UID, GID)
        assert "transport " + tp in open(log).read()
        subprocess.check_call(_as_user(["fusermount3", "-u", mnt]))
        assert proc.wait(timeout=5) == 0
        assert not rfutil.is_mounted(mnt)
    finally:
        if rfutil.is_mounted(mnt):
            rfutil.umount(mnt, lazy=True)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
