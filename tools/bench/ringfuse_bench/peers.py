"""libfuse as a peer: the configurations --libfuse DIR adds from a libfuse build directory.

libfuse's example servers are the reference points: passthrough_hp (its fastest passthrough
server, a C++ example) stands against ringfuse-passthrough, over io-uring and over /dev/fuse,
and memfs_ll against ringfuse-memfs over io-uring. Each runs with caching off, as the ringfuse
filesystems do (passthrough_hp: --nocache; memfs_ll: timeouts are 0 unless -o no_timeout), and
passthrough_hp without kernel passthrough (--nopassthrough) unless the kernel-passthrough
variant is asked for. Permissions are checked by the kernel everywhere: passthrough_hp always
mounts with default_permissions, as the ringfuse filesystems do by default, and memfs_ll
(which checks nothing itself) is given it, so that both sides see the same requests (with
caching off the kernel's checks cost GETATTRs). A configuration whose binary is missing, or
which needs io-uring from a libfuse configured without it, is kept and skipped with the
reason.
"""

import os

HP_URING = "hp-uring"
HP_DEV = "hp-dev"
HP_URING_KPT = "hp-uring-kpt"
MEMFS_LL_URING = "memfs_ll-uring"
URING_PEERS = (HP_URING, MEMFS_LL_URING)
PEER_FOR = {"passthrough": HP_URING, "memfs": MEMFS_LL_URING}

PASSTHROUGH_HP = os.path.join("example", "passthrough_hp")
MEMFS_LL = os.path.join("example", "memfs_ll")
CONFIG_H = "fuse_config.h"

# Neither example acts for the caller: passthrough_hp creates everything with its own identity,
# memfs_ll gives every new inode to root. Either way an unprivileged caller cannot create files
# in a directory it just made (the kernel checks permissions, see above).
NO_IDENTITY = ("%s does not give what it creates to the caller (it belongs to root), so an "
               "unprivileged caller cannot create files in a directory it made")


def uring_support(build_dir):
    """(True, "") if the build was configured with io-uring, (False, why) if not, (None, "")
    when this cannot be told (no fuse_config.h: a build system other than meson)."""
    path = os.path.join(build_dir, CONFIG_H)
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None, ""
    if any(line.split()[:2] == ["#define", "HAVE_URING"] for line in text.splitlines()):
        return True, ""
    return False, ("libfuse in %s was configured without io-uring (%s has no HAVE_URING: "
                   "liburing's development files were missing when it was configured)"
                   % (build_dir, CONFIG_H))


def _binary(build_dir, rel):
    path = os.path.join(os.path.abspath(build_dir), rel)
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path, ""
    return path, "%s is not there: libfuse's examples are not built in %s" % (path, build_dir)


def libfuse_configs(build_dir, fss, allow_other=False, kernel_passthrough=False):
    """The peer configurations for the filesystems fss (a Config list, imported late to keep
    this module free of the command line)."""
    from .configs import Config

    ok_uring, why_uring = uring_support(build_dir)
    extra = ["-o", "allow_other"] if allow_other else []
    out = []

    def add(name, label, rel, argv_tail, fs, uring, not_applicable=None):
        path, why = _binary(build_dir, rel)
        if not why and uring and ok_uring is False:
            why = why_uring
        out.append(Config(name, "compare", "", [path] + argv_tail, skip=why, fs=fs,
                          label=label, expect_uring=uring,
                          not_applicable=dict(not_applicable or {})))

    if "passthrough" in fss:
        hp = ["--foreground", "--nocache"]
        add(HP_URING, "libfuse passthrough_hp, io-uring", PASSTHROUGH_HP,
            hp + ["--nopassthrough", "-o", "io_uring"] + extra + ["{src}", "{mnt}"],
            "passthrough", True, {"meta-user": NO_IDENTITY % "passthrough_hp"})
        add(HP_DEV, "libfuse passthrough_hp, /dev/fuse", PASSTHROUGH_HP,
            hp + ["--nopassthrough"] + extra + ["{src}", "{mnt}"], "passthrough", False,
            {"meta-user": NO_IDENTITY % "passthrough_hp"})
        if kernel_passthrough:
            add(HP_URING_KPT, "libfuse passthrough_hp, io-uring, kernel passthrough",
                PASSTHROUGH_HP, hp + ["-o", "io_uring"] + extra + ["{src}", "{mnt}"],
                "passthrough", True, {"meta-user": NO_IDENTITY % "passthrough_hp"})
    if "memfs" in fss:
        add(MEMFS_LL_URING, "libfuse memfs_ll, io-uring", MEMFS_LL,
            ["-f", "-o", "io_uring,default_permissions"] + extra + ["{mnt}"], "memfs", True,
            {"meta-user": NO_IDENTITY % "memfs_ll"})
    return out
