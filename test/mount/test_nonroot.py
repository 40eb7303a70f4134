"""An unprivileged user mounts through fusermount3 and unmounts with it; the mount carries the
user's identity and the flags fusermount3 enforces (nosuid, nodev), and with auto_unmount a
killed daemon leaves no mount behind.

Debian ships /dev/fuse as 0666. Where it is not (some images make it 0600), these tests, run as
root, open it up for their duration and put the mode back afterwards: they change
machine-global state and are marked serial. The user is nobody, which every Debian system has
(fusermount3 wants a user name)."""

import os
import pwd
import signal
import stat
import subprocess
import time

import pytest

import rfutil

NOBODY = pwd.getpwnam("nobody")
UID, GID = NOBODY.pw_uid, NOBODY.pw_gid


def as_user(argv):
    return ["setpriv", "--reuid=%d" % UID, "--regid=%d" % GID, "--clear-groups"] + argv


@pytest.fixture
def dev_fuse_for_users():
    """/dev/fuse usable by every user (as Debian ships it) for the test's duration."""
    if subprocess.call(["which", "fusermount3"], stdout=subprocess.DEVNULL) != 0:
        pytest.fail("fusermount3 is not installed (Debian package fuse3, scripts/deps.sh)")
    mode = stat.S_IMODE(os.stat("/dev/fuse").st_mode)
    opened = (mode & 0o666) != 0o666
    if opened:
        if os.geteuid() != 0:
            pytest.skip("/dev/fuse is %o and only root could open it up" % mode)
        os.chmod("/dev/fuse", mode | 0o666)
    try:
        yield
    finally:
        if opened:
            os.chmod("/dev/fuse", mode)


def user_mountpoint():
    mnt = rfutil.make_dir("user-mnt-")
    os.chown(mnt, UID, GID)
    return mnt


def start_user_daemon(argv, mnt, log):
    with open(log, "w") as logf:
        proc = subprocess.Popen(as_user(argv), stdout=logf, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + 10
    while not rfutil.is_mounted(mnt) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    if not rfutil.is_mounted(mnt):
        proc.kill()
        proc.wait()
        pytest.fail("the user's mount did not appear:\n" + open(log).read())
    return proc


def cleanup(mnt, proc):
    if rfutil.is_mounted(mnt):
        rfutil.umount(mnt, lazy=True)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.mark.serial
@pytest.mark.parametrize("tp", ["dev", "uring"])
def test_nonroot_mount_via_fusermount(tp, dev_fuse_for_users):
    if tp == "uring" and rfutil.uring_unusable_reason():
        pytest.skip(rfutil.uring_unusable_reason())
    mnt = user_mountpoint()
    log = mnt + ".log"
    proc = start_user_daemon([rfutil.fs_binary("memfs"), "-f", "-o", "transport=" + tp, mnt],
                             mnt, log)
    try:
        opts = [m for m in open("/proc/self/mountinfo") if " %s " % mnt in m][0]
        assert "nosuid" in opts and "nodev" in opts, opts
        assert "user_id=%d" % UID in opts, opts
        path = os.path.join(mnt, "f")
        subprocess.check_call(as_user(["sh", "-c", "echo hello > '%s'" % path]))
        assert subprocess.check_output(as_user(["cat", path])) == b"hello\n"
        assert "transport " + tp in open(log).read()
        subprocess.check_call(as_user(["fusermount3", "-u", mnt]))
        assert proc.wait(timeout=5) == 0
        assert not rfutil.is_mounted(mnt)
    finally:
        cleanup(mnt, proc)


FUSE_CONF = "/etc/fuse.conf"


@pytest.fixture
def users_may_allow_other():
    """user_allow_other in /etc/fuse.conf for the test's duration (the file is put back as it
    was). fusermount3 before 3.17 (Debian 12 has 3.14) can only tell that the daemon of a
    user's mount died when the mount lets root in (allow_other): otherwise it gets EACCES
    instead of ENOTCONN and leaves the mount."""
    try:
        with open(FUSE_CONF) as f:
            old = f.read()
    except FileNotFoundError:
        old = None
    lines = (old or "").splitlines()
    if "user_allow_other" not in [l.strip() for l in lines]:
        if os.geteuid() != 0:
            pytest.skip("user_allow_other is not set in %s" % FUSE_CONF)
        with open(FUSE_CONF, "w") as f:
            f.write("\n".join(lines + ["user_allow_other", ""]))
    try:
        yield
    finally:
        if old is None:
            os.unlink(FUSE_CONF)
        elif open(FUSE_CONF).read() != old:
            with open(FUSE_CONF, "w") as f:
                f.write(old)


def wait_unmounted(mnt, log):
    deadline = time.monotonic() + 10
    while rfutil.is_mounted(mnt) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not rfutil.is_mounted(mnt), "the mount outlived its daemon\n" + open(log).read()


@pytest.mark.serial
@pytest.mark.parametrize("which", ["memfs", "passthrough"])
def test_nonroot_auto_unmount_after_kill(which, dev_fuse_for_users, users_may_allow_other):
    """-o auto_unmount: fusermount3 stays to watch the daemon and unmounts when it dies, so a
    killed daemon leaves no dead mount behind."""
    mnt = user_mountpoint()
    argv = [rfutil.fs_binary(which), "-f", "-o", "auto_unmount,allow_other,transport=dev"]
    if which == "passthrough":
        src = rfutil.make_dir("user-src-")
        os.chown(src, UID, GID)
        argv.append(src)
    proc = start_user_daemon(argv + [mnt], mnt, mnt + ".log")
    try:
        subprocess.check_call(as_user(["touch", os.path.join(mnt, "f")]))
        os.kill(proc.pid, signal.SIGKILL)  # the daemon alone, not its watcher
        proc.wait(timeout=5)
        wait_unmounted(mnt, mnt + ".log")
    finally:
        cleanup(mnt, proc)


@pytest.mark.parametrize("which", ["memfs", "passthrough"])
def test_root_auto_unmount_after_kill(which):
    """auto_unmount makes a root daemon mount through fusermount3 too, and a killed one leaves
    no dead mount behind."""
    if os.geteuid() != 0:
        pytest.skip("for a daemon running as root")
    mnt = rfutil.make_dir("mnt-")
    argv = [rfutil.fs_binary(which), "-f", "-o", "auto_unmount,transport=dev"]
    if which == "passthrough":
        argv.append(rfutil.make_dir("src-"))
    d = rfutil.Daemon(argv + [mnt], mnt + ".log")
    try:
        deadline = time.monotonic() + 10
        while not rfutil.is_mounted(mnt) and d.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rfutil.is_mounted(mnt), d.log()
        open(os.path.join(mnt, "f"), "w").close()
        os.kill(d.pid, signal.SIGKILL)
        d.wait(5)
        wait_unmounted(mnt, mnt + ".log")
    finally:
        if rfutil.is_mounted(mnt):
            rfutil.umount(mnt, lazy=True)
        d.reap()


@pytest.mark.serial
def test_nonroot_clean_exit_with_auto_unmount(dev_fuse_for_users):
    """With auto_unmount, a daemon ended by a signal still unmounts and exits 0, and leaves no
    fusermount3 behind."""
    mnt = user_mountpoint()
    proc = start_user_daemon([rfutil.fs_binary("memfs"), "-f", "-o",
                              "auto_unmount,transport=dev", mnt], mnt, mnt + ".log")
    try:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=5) == 0, open(mnt + ".log").read()
        assert not rfutil.is_mounted(mnt)
        time.sleep(0.5)
        left = subprocess.run(["pgrep", "-f", "fusermount3.*%s" % mnt],
                              stdout=subprocess.PIPE).stdout
        assert not left, "fusermount3 still running: %r" % left
    finally:
        cleanup(mnt, proc)
