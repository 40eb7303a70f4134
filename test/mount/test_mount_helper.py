"""mount(8), /etc/fstab and remount, as users mount filesystems.

For a type fuse.NAME, mount(8) runs /sbin/mount.fuse.NAME (our mount.ringfuse helper), which
runs the daemon. The tests that use mount(8) install the build where an installation would put
it, as symbolic links: the helper links in /sbin (the only place mount(8) looks), the daemons in
the bindir the helper falls back on (mount(8) runs helpers without PATH). That is machine-global,
so they are marked serial; whatever was there before is put back. fstab lines go to a private
file (mount -T) except for the one test of a user mount, which needs /etc/fstab itself.

The daemon a helper starts detaches: these tests find it by its command line, check that it
exits when unmounted, and kill it if it does not.
"""

import errno
import json
import os
import subprocess
import time

import pytest

import rfutil
from rfutil import make_file, read_file

HELPER_DIR = "/sbin"
FS_NAMES = {"memfs": "ringfuse-memfs", "passthrough": "ringfuse-passthrough"}
S = 1_000_000_000
UID = GID = 1000


def _bindir():
    out = subprocess.run(["meson", "introspect", rfutil.build_dir(), "--buildoptions"],
                         stdout=subprocess.PIPE, universal_newlines=True, check=True).stdout
    opts = {o["name"]: o["value"] for o in json.loads(out)}
    return os.path.join(opts["prefix"], opts["bindir"])


@pytest.fixture(scope="module")
def installed():
    """Link the helper and the daemons of the build where an installation puts them."""
    helper = os.path.join(rfutil.build_dir(), "tools", "mount.ringfuse")
    if not os.access(helper, os.X_OK):
        pytest.skip("%s not built" % helper)
    links = {}
    for fs, name in FS_NAMES.items():
        links[os.path.join(HELPER_DIR, "mount.fuse." + name)] = helper
        links[os.path.join(_bindir(), name)] = rfutil.fs_binary(fs)
    saved = []
    try:
        for path, target in links.items():
            if os.path.lexists(path):
                os.rename(path, path + ".rf-test-saved")
                saved.append(path)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            os.symlink(target, path)
        yield
    finally:
        for path, target in links.items():
            if os.path.islink(path) and os.readlink(path) == target:
                os.unlink(path)
        for path in saved:
            os.rename(path + ".rf-test-saved", path)


def sanitizer_log():
    """Where detached daemons of a sanitizer build report (their stderr is /dev/null)."""
    return os.path.join(rfutil.tmp_base(), "helper-sanitizer")


def sanitizer_reports():
    base = os.path.basename(sanitizer_log())
    return [os.path.join(rfutil.tmp_base(), f) for f in os.listdir(rfutil.tmp_base())
            if f.startswith(base + ".")]


def run(argv, user=None):
    env = dict(os.environ)
    for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        env[var] = ":".join(filter(None, [env.get(var), "log_path=" + sanitizer_log()]))
    if user is not None:
        argv = ["setpriv", "--reuid=%d" % user, "--regid=%d" % user, "--clear-groups"] + argv
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=30, env=env)


def must(argv, user=None):
    r = run(argv, user)
    assert r.returncode == 0, "%s: exit %d\n%s" % (" ".join(argv), r.returncode, r.stdout)
    return r.stdout


def daemons(mountpoint):
    """pids of ringfuse daemons whose command line names mountpoint."""
    out = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]).startswith(b"ringfuse-") and \
                os.fsencode(mountpoint) in argv:
            out.append(int(pid))
    return out


def mount_opts(mountpoint):
    """(per-mount options, filesystem type) of the mount at mountpoint."""
    for line in open("/proc/self/mountinfo"):
        f = line.split()
        if rfutil._unescape(f[4]) == mountpoint:
            found = (set(f[5].split(",")), f[f.index("-") + 1])
    return found


class Target:
    """A mountpoint (and passthrough's source) for mounts made by mount(8)."""

    def __init__(self, fs):
        self.fs = rfutil.base_fs(fs)
        self.variant = rfutil.FS_VARIANTS.get(fs, (fs, ()))[1]
        self.type = "fuse." + FS_NAMES[self.fs]
        self.path = rfutil.make_dir("mnt-")
        self.src = rfutil.make_dir("src-") if self.fs == "passthrough" else None
        self.source = self.src or "memfs"

    def p(self, *names):
        return os.path.join(self.path, *names)

    def opts(self, transport, *extra):
        o = ["allow_other"] + rfutil.transport_opts(transport) + list(self.variant)
        if self.fs == "memfs":
            o.append("size=64m")
        return ",".join(o + list(extra))

    def wait_gone(self, pids, timeout=5.0):
        deadline = time.monotonic() + timeout
        while any(os.path.exists("/proc/%d" % p) for p in pids):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self):
        pids = daemons(self.path)
        if rfutil.is_mounted(self.path) and rfutil.umount(self.path).returncode != 0:
            rfutil.abort_connection(rfutil.conn_id(self.path))
            rfutil.umount(self.path, lazy=True)
        if not self.wait_gone(pids):
            for p in pids:
                try:
                    os.kill(p, 9)
                except ProcessLookupError:
                    pass
            return "daemon %s did not exit after the unmount" % pids
        return None


@pytest.fixture
def target(fs, transport):
    if rfutil.base_transport(transport) == "uring" and rfutil.uring_unusable_reason():
        pytest.skip("FUSE over io_uring unavailable: " + rfutil.uring_unusable_reason())
    t = Target(fs)
    yield t
    problem = t.close()
    assert problem is None, problem
    reports = sanitizer_reports()
    assert not reports, "sanitizer reports of detached daemons:\n" + "\n".join(
        open(r).read()[:4000] for r in reports)


def fstab(t, options, name="fstab"):
    path = os.path.join(rfutil.tmp_base(), "%s-%d" % (name, time.monotonic_ns()))
    with open(path, "w") as f:
        f.write("# written by the ringfuse tests\n")
        f.write("%s %s %s %s 0 0\n" % (t.source, t.path, t.type, options))
    return path


def atime_of(t, name):
    st = os.stat(t.p(name))
    if t.src:
        assert os.stat(os.path.join(t.src, name)).st_atime_ns == st.st_atime_ns
    return st.st_atime_ns


def read(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def write_fails_erofs(path):
    with pytest.raises(OSError) as ei:
        make_file(path, b"x")
    assert ei.value.errno == errno.EROFS, ei.value


@pytest.mark.serial
def test_mount_t_type_and_umount(installed, target, transport):
    """mount -t fuse.ringfuse-NAME SOURCE MNT -o ...: the helper runs the daemon, which serves
    until umount, then exits."""
    t = target
    must(["mount", "-t", t.type, t.source, t.path, "-o", t.opts(transport)])
    opts, fstype = mount_opts(t.path)
    assert fstype == t.type
    # mount(8)'s defaults, as for a local filesystem: suid and dev.
    assert "rw" in opts and not opts & {"nosuid", "nodev"}, opts
    assert len(daemons(t.path)) == 1
    make_file(t.p("f"), b"through mount(8)")
    assert read_file(t.p("f")) == b"through mount(8)"
    pids = daemons(t.path)
    must(["umount", t.path])
    assert not rfutil.is_mounted(t.path)
    assert t.wait_gone(pids), "the daemon did not exit after umount"


@pytest.mark.serial
def test_fstab_mount_and_remount(installed, target, transport):
    """An fstab line with mount(8)'s own words mounts with `mount MNT`; `mount -o remount,ro`
    makes writes fail with EROFS while reads work (and leave atime alone), the daemon serving
    on; back to rw, writes work again; a remount changes only the flags it names."""
    t = target
    tab = fstab(t, "defaults,noauto,_netdev,x-systemd.requires=network.target,"
                   "comment=ringfuse," + t.opts(transport, "nosuid,nodev,strictatime"))
    must(["mount", "-T", tab, t.path])
    assert t.type == mount_opts(t.path)[1]
    make_file(t.p("f"), b"before")
    pids = daemons(t.path)

    must(["mount", "-T", tab, "-o", "remount,ro", t.path])
    opts = mount_opts(t.path)[0]
    assert {"ro", "nosuid", "nodev"} <= opts, opts
    write_fails_erofs(t.p("f"))
    write_fails_erofs(t.p("g"))
    with pytest.raises(OSError) as ei:
        os.mkdir(t.p("d"))
    assert ei.value.errno == errno.EROFS
    before = atime_of(t, "f")
    assert read(t.p("f")) == b"before"
    assert atime_of(t, "f") == before, "a read on a read-only mount changed atime"
    assert daemons(t.path) == pids

    must(["mount", "-T", tab, "-o", "remount,rw", t.path])
    assert "rw" in mount_opts(t.path)[0]
    make_file(t.p("f"), b"after")
    assert read(t.p("f")) == b"after"
    os.utime(t.p("f"), ns=(time.time_ns() + 3600 * S, time.time_ns()))
    before = atime_of(t, "f")
    read(t.p("f"))
    assert atime_of(t, "f") != before, "strictatime: a read left atime alone"

    # Only what is named changes: noexec and noatime join, nosuid and nodev stay.
    must(["mount", "-T", tab, "-o", "remount,noexec,noatime", t.path])
    opts = mount_opts(t.path)[0]
    assert {"rw", "noexec", "noatime", "nosuid", "nodev"} <= opts, opts
    os.utime(t.p("f"), ns=(time.time_ns() - 3600 * S, time.time_ns()))
    before = atime_of(t, "f")
    read(t.p("f"))
    assert atime_of(t, "f") == before, "noatime: a read changed atime"
    assert daemons(t.path) == pids


@pytest.mark.serial
@pytest.mark.transports("dev")
@pytest.mark.filesystems("passthrough")
def test_mount_all_and_nofail(installed, target):
    """mount -a skips a nofail line whose source is missing; without nofail it is an error."""
    t = target
    missing = os.path.join(rfutil.tmp_base(), "no-such-source")
    other = rfutil.make_dir("mnt-")
    tab = os.path.join(rfutil.tmp_base(), "fstab-all-%d" % time.monotonic_ns())
    with open(tab, "w") as f:
        f.write("%s %s %s nofail,%s 0 0\n" % (missing, other, t.type, t.opts("dev")))
        f.write("%s %s %s %s 0 0\n" % (t.source, t.path, t.type, t.opts("dev")))
    try:
        must(["mount", "-a", "-T", tab])
        assert rfutil.is_mounted(t.path)
        assert not rfutil.is_mounted(other)
        with open(tab, "w") as f:
            f.write("%s %s %s %s 0 0\n" % (missing, other, t.type, t.opts("dev")))
        r = run(["mount", "-T", tab, other])
        assert r.returncode != 0 and "No such file or directory" in r.stdout, r.stdout
        assert not rfutil.is_mounted(other)
    finally:
        if rfutil.is_mounted(other):
            rfutil.umount(other, lazy=True)


@pytest.mark.serial
@pytest.mark.transports("dev")
@pytest.mark.filesystems("memfs")
def test_user_mount_from_fstab(installed, target):
    """A user mounts and unmounts an fstab line marked `user`: mount(8) runs the helper as the
    user, the daemon mounts through fusermount3. Needs /etc/fstab itself (mount -T is root's)
    and a /dev/fuse users may open, as distributions ship it (mode 0666): both are restored."""
    t = target
    if subprocess.call(["which", "fusermount3"], stdout=subprocess.DEVNULL) != 0:
        pytest.skip("fusermount3 is not installed (Debian package fuse3)")
    os.chown(t.path, UID, GID)
    line = "%s %s %s user,noauto,transport=dev,size=64m 0 0\n" % (t.source, t.path, t.type)
    with open("/etc/fstab") as f:
        saved = f.read()
    dev_mode = os.stat("/dev/fuse").st_mode & 0o7777
    try:
        os.chmod("/dev/fuse", dev_mode | 0o666)
        with open("/etc/fstab", "a") as f:
            f.write(line)
        must(["mount", t.path], user=UID)
        opts = [l for l in open("/proc/self/mountinfo") if " %s " % t.path in l][0]
        assert "user_id=%d" % UID in opts and "nosuid" in opts, opts
        must(["sh", "-c", "echo hi > %s/f" % t.path], user=UID)
        # Without allow_other only the user gets in, root included out.
        assert must(["stat", "-c", "%u", t.p("f")], user=UID).strip() == str(UID)
        must(["umount", t.path], user=UID)
        assert not rfutil.is_mounted(t.path)
    finally:
        os.chmod("/dev/fuse", dev_mode)
        with open("/etc/fstab", "w") as f:
            f.write(saved)


def test_mount8_words_accepted(mounter, transport, fs):
    """The words mount(8) and fstab add for themselves do not stop a daemon run directly
    (mount.fuse3, for one, passes `defaults` on)."""
    m = mounter(transport, fs, opts=("defaults", "_netdev", "nofail", "auto", "noauto", "users",
                                     "x-systemd.automount", "X-mount.mkdir", "comment=x",
                                     "relatime", "lazytime"))
    make_file(m.p("f"), b"ok")
    assert read_file(m.p("f")) == b"ok"
    assert mount_opts(m.path)[1] == "fuse." + FS_NAMES[rfutil.base_fs(fs)]


def test_daemon_remount(mounter, transport, fs):
    """`DAEMON -o remount,ro MNT` (what the helper runs) remounts the existing mount and exits,
    the daemon serving on; the new flags apply to the next request."""
    m = mounter(transport, fs)
    make_file(m.p("f"), b"data")
    binary = rfutil.fs_binary(fs)
    args = [m.src] if m.src else []
    must([binary, "-o", "remount,ro,noexec"] + args + [m.path])
    opts = mount_opts(m.path)[0]
    assert {"ro", "noexec", "nosuid", "nodev"} <= opts, opts
    write_fails_erofs(m.p("f"))
    assert read_file(m.p("f")) == b"data"
    must([binary, "-o", "remount,rw"] + args + [m.path])
    assert "rw" in mount_opts(m.path)[0]
    make_file(m.p("f"), b"again")
    assert read_file(m.p("f")) == b"again"
    r = run([binary, "-o", "remount,ro", rfutil.make_dir("nomount-")])
    assert r.returncode == 1 and "not a FUSE mount" in r.stdout, r.stdout
    assert m.alive()
