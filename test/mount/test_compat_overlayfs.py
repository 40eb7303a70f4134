"""fuse-overlayfs (Debian's, built on libfuse3's low-level API) running over ringfuse.

An overlay of a lower and an upper directory is mounted through ringfuse-run and worked on:
reads through both layers (the upper one wins), creating, appending to a lower file (copy-up),
deleting lower entries (whiteouts), renaming, replacing a lower directory (opaque), chmod,
symlinks, hard links, partial writes into lower files, a larger file written and read back.
After each step the merged view must be exactly the expected one (names, types, contents,
modes), the lower layer must never change, and the upper layer must hold what overlayfs puts
there. The overlay is then mounted again over the same directories and must show the same view.

fuse-overlayfs runs fuse_session_loop_mt() with -o threaded=1 and fuse_session_loop()
otherwise; both run on every transport.
"""

import hashlib
import os
import random
import stat

import pytest

import rfutil
from compat_util import assert_served_by, run_mounter  # noqa: F401

pytestmark = pytest.mark.transports("uring", "dev")


def _write(path, data):
    with open(path, "wb") as f:
        f.write(data)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def tree(root):
    """{relative path: ('f', content) | ('d', None) | ('l', target)} plus modes of files."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("d", None)
            else:
                out[rel] = ("f", _read(p), stat.S_IMODE(st.st_mode))
    return out


def digest(root):
    h = hashlib.sha256()
    for rel, entry in sorted(tree(root).items()):
        h.update(repr((rel, entry)).encode())
    return h.hexdigest()


def is_whiteout(upper, rel):
    p = os.path.join(upper, rel)
    d, n = os.path.split(p)
    try:
        st = os.lstat(p)
        if stat.S_ISCHR(st.st_mode) and st.st_rdev == 0:
            return True
    except FileNotFoundError:
        pass
    return os.path.lexists(os.path.join(d, ".wh." + n))


def is_opaque(upper, rel):
    p = os.path.join(upper, rel)
    for name in ("trusted.overlay.opaque", "user.fuseoverlayfs.opaque"):
        try:
            if os.getxattr(p, name) == b"y":
                return True
        except OSError:
            pass
    return os.path.lexists(os.path.join(p, ".wh..wh..opq"))


class Layers:
    def __init__(self):
        self.lower = rfutil.make_dir("lower-")
        self.upper = rfutil.make_dir("upper-")
        self.work = rfutil.make_dir("work-")
        low = {
            "keep.txt": b"lower keep\n",
            "modify.txt": b"lower modify\n",
            "delete.txt": b"lower delete\n",
            "rename-src.txt": b"rename me\n",
            "shadow.txt": b"lower shadow\n",
            "dir/a": b"a\n",
            "dir/b": b"b\n",
            "replace-dir/old": b"old\n",
            "sub/deep/x": b"0123456789\n",
        }
        for rel, data in low.items():
            os.makedirs(os.path.dirname(os.path.join(self.lower, rel)), exist_ok=True)
            _write(os.path.join(self.lower, rel), data)
        _write(os.path.join(self.upper, "shadow.txt"), b"upper shadow\n")
        _write(os.path.join(self.upper, "upper-only.txt"), b"upper only\n")
        self.lower_digest = digest(self.lower)
        # The merged view the overlay must show, kept up to date by the test.
        self.expected = {}
        for rel, entry in tree(self.lower).items():
            self.expected[rel] = entry
        self.expected.update(tree(self.upper))

    def argv(self, threaded):
        def build(mnt):
            o = "lowerdir=%s,upperdir=%s,workdir=%s" % (self.lower, self.upper, self.work)
            if threaded:
                o += ",threaded=1"
            return ["fuse-overlayfs", "-f", "-o", o, mnt]
        return build

    def check(self, mnt, step):
        got = tree(mnt)
        want = self.expected
        assert sorted(got) == sorted(want), "%s: names differ: extra %s, missing %s" % (
            step, sorted(set(got) - set(want)), sorted(set(want) - set(got)))
        for rel in want:
            assert got[rel][:2] == want[rel][:2], "%s: %s is %r, expected %r" % (
                step, rel, got[rel][:2], want[rel][:2])
            if want[rel][0] == "f":
                assert got[rel][2] == want[rel][2], "%s: mode of %s" % (step, rel)
        assert digest(self.lower) == self.lower_digest, "%s: the lower layer changed" % step

    def remove(self, rel):
        for k in [k for k in self.expected if k == rel or k.startswith(rel + "/")]:
            del self.expected[k]

    def file(self, rel, data, mode=0o644):
        self.expected[rel] = ("f", data, mode)


def work_on(L, mnt):
    p = lambda rel: os.path.join(mnt, rel)  # noqa: E731
    L.check(mnt, "mounted")
    assert _read(p("shadow.txt")) == b"upper shadow\n"

    _write(p("new.txt"), b"new\n")
    L.file("new.txt", b"new\n")
    L.check(mnt, "create")
    assert _read(os.path.join(L.upper, "new.txt")) == b"new\n"

    with open(p("modify.txt"), "ab") as f:
        f.write(b"more\n")
    L.file("modify.txt", b"lower modify\nmore\n")
    L.check(mnt, "copy-up append")
    assert _read(os.path.join(L.upper, "modify.txt")) == b"lower modify\nmore\n"

    os.unlink(p("delete.txt"))
    L.remove("delete.txt")
    L.check(mnt, "delete")
    assert is_whiteout(L.upper, "delete.txt"), os.listdir(L.upper)
    with pytest.raises(FileNotFoundError):
        os.stat(p("delete.txt"))

    os.rename(p("rename-src.txt"), p("renamed.txt"))
    L.remove("rename-src.txt")
    L.file("renamed.txt", b"rename me\n")
    L.check(mnt, "rename")

    os.unlink(p("replace-dir/old"))
    os.rmdir(p("replace-dir"))
    os.mkdir(p("replace-dir"))
    _write(p("replace-dir/fresh"), b"fresh\n")
    L.remove("replace-dir")
    L.expected["replace-dir"] = ("d", None)
    L.file("replace-dir/fresh", b"fresh\n")
    L.check(mnt, "replace a directory")
    assert is_opaque(L.upper, "replace-dir") or is_whiteout(L.upper, "replace-dir/old")

    os.unlink(p("dir/a"))
    L.remove("dir/a")
    L.check(mnt, "delete in a lower directory")

    os.makedirs(p("newdir/inner"))
    _write(p("newdir/inner/f"), b"inner\n")
    L.expected["newdir"] = ("d", None)
    L.expected["newdir/inner"] = ("d", None)
    L.file("newdir/inner/f", b"inner\n")
    L.check(mnt, "mkdir -p")

    os.chmod(p("keep.txt"), 0o600)
    L.file("keep.txt", b"lower keep\n", 0o600)
    L.check(mnt, "chmod copies up")

    os.symlink("keep.txt", p("link"))
    L.expected["link"] = ("l", "keep.txt")
    assert _read(p("link")) == b"lower keep\n"
    L.check(mnt, "symlink")

    os.link(p("new.txt"), p("hard.txt"))
    L.file("hard.txt", b"new\n")
    assert os.stat(p("hard.txt")).st_nlink == 2
    L.check(mnt, "hard link")

    fd = os.open(p("sub/deep/x"), os.O_WRONLY)
    os.pwrite(fd, b"ABC", 3)
    os.close(fd)
    L.file("sub/deep/x", b"012ABC6789\n")
    L.check(mnt, "partial write copies up")

    big = random.Random(5).randbytes(6 << 20)
    with open(p("big"), "wb") as f:
        for off in range(0, len(big), 300000):
            f.write(big[off:off + 300000])
    assert _read(p("big")) == big
    with open(p("big"), "rb") as f:
        assert os.pread(f.fileno(), 5000, 4 << 20) == big[4 << 20:(4 << 20) + 5000]
    L.file("big", big)
    L.check(mnt, "large file")


@pytest.mark.parametrize("loop", ["threaded", "single"])
def test_fuse_overlayfs_merged_view(run_mounter, transport, loop):
    L = Layers()
    threaded = loop == "threaded"
    served_by = "dev" if transport == "dev" else "uring"
    m = run_mounter(transport, L.argv(threaded), expect_transport=served_by)
    work_on(L, m.path)
    assert_served_by(m, served_by)

    # Everything lives in the layers: a new overlay over them shows the same view.
    again = run_mounter(transport, L.argv(threaded), expect_transport=served_by)
    L.check(again.path, "mounted again")
    assert _read(os.path.join(again.path, "big")) == L.expected["big"][1]
