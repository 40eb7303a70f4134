#!/usr/bin/env python3
"""Write the seed corpus of the dispatch fuzzer: test/fuzz/corpus/<opcode>.bin.

Every opcode of include/ringfuse/kernel.h gets one input ending in a valid request of that
opcode, preceded by what makes it meaningful on an empty memfs (a file to read, a handle to
release, an attribute to remove...), once in the /dev/fuse layout (<op>.bin) and once in the
io-uring layout (<op>-uring.bin). A few more inputs cover the session settings byte 0 selects.
The format is described in README.md; `replay --strict corpus/` checks that every request here
is well formed and succeeds (or gets ENOSYS where nobody implements the opcode), except in the
errors-*.bin inputs, whose requests are meant to fail.

Run from anywhere: python3 test/fuzz/gen_corpus.py [outdir]
"""

import os
import re
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
KERNEL_H = os.path.join(HERE, "..", "..", "include", "ringfuse", "kernel.h")

# Byte 0 (harness.h FUZZ_MODE_*).
SPLIT = 0x01
RAW = 0x02
OWN_INIT = 0x04
OUTCAP_4K = 2 << 3
OLD_KERNEL = 0x20
PERM_CHECK = 0x40
DEBUG = 0x80
DIRECT = 0x80000000  # in a record's length (harness.h FUZZ_RECORD_DIRECT)

S_IFREG, S_IFDIR, S_IFIFO = 0o100000, 0o040000, 0o010000
O_RDONLY, O_RDWR, O_CREAT = 0, 2, 0o100
FATTR_MODE, FATTR_SIZE, FATTR_MTIME, FATTR_FH = 1 << 0, 1 << 3, 1 << 5, 1 << 6
FUSE_GETATTR_FH = 1
FUSE_EXT_GROUPS = 32
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
O_EXCL = 0o200
XATTR_CREATE = 1
SEEK_DATA = 3
F_WRLCK = 1


def opcodes():
    """{name: value} of enum fuse_opcode, without the byte-swapped reserved values."""
    text = open(KERNEL_H).read()
    body = re.search(r"enum fuse_opcode \{(.*?)\};", text, re.S).group(1)
    ops = {}
    for name, value in re.findall(r"^\s*((?:FUSE|CUSE)_[A-Z0-9_]+)\s*=\s*(\d+)", body, re.M):
        if not name.endswith("_BSWAP_RESERVED"):
            ops[name] = int(value)
    return ops


OPS = opcodes()


class Session:
    """Requests of one input. unique numbers count up from 2 (the harness's INIT is 1)."""

    def __init__(self):
        self.records = []
        self.unique = 1

    def req(self, op, nodeid=0, fixed=b"", payload=b"", uid=0, gid=0, ext=b""):
        self.unique += 1
        assert len(ext) % 8 == 0
        body = fixed + payload + ext
        hdr = struct.pack("<IIQQIIIHH", 40 + len(body), OPS[op], self.unique, nodeid, uid, gid,
                          4242, len(ext) // 8, 0)
        self.records.append(hdr + body)
        return self.unique

    def data(self, mode, direct=False):
        """The input: byte 0, then each record behind its length (top bit: fed directly)."""
        out = bytes([mode])
        for r in self.records:
            out += struct.pack("<I", len(r) | (DIRECT if direct else 0)) + r
        return out


def names(*ns):
    return b"".join(n.encode() + b"\0" for n in ns)


# Fixed argument structs (include/ringfuse/kernel.h).
def create_in(flags=O_RDWR | O_CREAT, mode=S_IFREG | 0o644, umask=0o022):
    return struct.pack("<IIII", flags, mode, umask, 0)


def read_in(fh, offset=0, size=4096, flags=O_RDWR):
    return struct.pack("<QQIIQII", fh, offset, size, 0, 0, flags, 0)


def write_in(fh, offset, size):
    return struct.pack("<QQIIQII", fh, offset, size, 0, 0, O_RDWR, 0)


def release_in(fh, flags=O_RDWR):
    return struct.pack("<QIIQ", fh, flags, 0, 0)


def fsync_in(fh):
    return struct.pack("<QII", fh, 0, 0)


def setxattr_in(size, ext=True):
    return struct.pack("<IIII", size, 0, 0, 0) if ext else struct.pack("<II", size, 0)


def getxattr_in(size):
    return struct.pack("<II", size, 0)


def lk_in(fh):
    return struct.pack("<QQQQIIII", fh, 0, 0, 100, F_WRLCK, 4242, 0, 0)


def copy_in(fh_in, nodeid_out, fh_out, length):
    return struct.pack("<QQQQQQQ", fh_in, 0, nodeid_out, fh_out, 0, length, 0)


def init_in(minor=45):
    flags = 0xffffffff
    return struct.pack("<IIIII", 7, minor, 128 * 1024, flags, 0xffffffff) + b"\0" * 44


# memfs gives out inode numbers in order: the root is 1, the first object made is 2.
# Handles in requests are numbered from 1 in the order they were given out (see harness.h).
ROOT = 1


def with_file(s, data=b"hello, ringfuse\n"):
    """A regular file 'f' (inode 2) open as handle 1, holding data."""
    s.req("FUSE_CREATE", ROOT, create_in(), names("f"))
    if data:
        s.req("FUSE_WRITE", 2, write_in(1, 0, len(data)), data)


def seed(op):
    """The input for one opcode: a Session, or (Session, extra mode bits)."""
    s = Session()
    name = op[5:] if op.startswith("FUSE_") else op
    mode = 0
    if op == "FUSE_LOOKUP":
        s.req("FUSE_MKDIR", ROOT, struct.pack("<II", S_IFDIR | 0o755, 0o022), names("d"))
        s.req(op, ROOT, b"", names("d"))
    elif op == "FUSE_FORGET":
        with_file(s, b"")
        s.req("FUSE_LOOKUP", ROOT, b"", names("f"))
        s.req(op, 2, struct.pack("<Q", 2))
    elif op == "FUSE_GETATTR":
        with_file(s)
        s.req(op, 2, struct.pack("<IIQ", FUSE_GETATTR_FH, 0, 1))
    elif op == "FUSE_SETATTR":
        with_file(s)
        s.req(op, 2, struct.pack("<IIQQQQQQIIIIIIII", FATTR_MODE | FATTR_SIZE | FATTR_MTIME |
                                 FATTR_FH, 0, 1, 3, 0, 0, 1700000000, 0, 0, 5, 0,
                                 S_IFREG | 0o600, 0, 0, 0, 0))
    elif op == "FUSE_READLINK":
        s.req("FUSE_SYMLINK", ROOT, b"", names("l", "some/target"))
        s.req(op, 2)
    elif op == "FUSE_SYMLINK":
        s.req(op, ROOT, b"", names("l", "/absolute/target"))
    elif op == "FUSE_MKNOD":
        s.req(op, ROOT, struct.pack("<IIII", S_IFIFO | 0o644, 0, 0o022, 0), names("fifo"))
    elif op == "FUSE_MKDIR":
        s.req(op, ROOT, struct.pack("<II", S_IFDIR | 0o755, 0o022), names("d"))
    elif op == "FUSE_UNLINK":
        with_file(s)
        s.req("FUSE_RELEASE", 2, release_in(1))
        s.req(op, ROOT, b"", names("f"))
    elif op == "FUSE_RMDIR":
        s.req("FUSE_MKDIR", ROOT, struct.pack("<II", S_IFDIR | 0o755, 0o022), names("d"))
        s.req(op, ROOT, b"", names("d"))
    elif op == "FUSE_RENAME":
        with_file(s)
        s.req(op, ROOT, struct.pack("<Q", ROOT), names("f", "g"))
    elif op == "FUSE_RENAME2":
        with_file(s)
        s.req(op, ROOT, struct.pack("<QII", ROOT, RENAME_NOREPLACE, 0), names("f", "g"))
    elif op == "FUSE_LINK":
        with_file(s)
        s.req(op, ROOT, struct.pack("<Q", 2), names("hard"))
    elif op == "FUSE_OPEN":
        with_file(s)
        s.req(op, 2, struct.pack("<II", O_RDWR, 0))
    elif op == "FUSE_READ":
        with_file(s)
        s.req(op, 2, read_in(1))
    elif op == "FUSE_WRITE":
        with_file(s, b"")
        data = bytes(range(256)) * 4
        s.req(op, 2, write_in(1, 70000, len(data)), data)
    elif op == "FUSE_STATFS":
        s.req(op, ROOT)
    elif op == "FUSE_RELEASE":
        with_file(s)
        s.req(op, 2, release_in(1))
    elif op in ("FUSE_FSYNC",):
        with_file(s)
        s.req(op, 2, fsync_in(1))
    elif op == "FUSE_SETXATTR":
        with_file(s)
        s.req(op, 2, setxattr_in(5), names("user.test") + b"value")
    elif op in ("FUSE_GETXATTR", "FUSE_LISTXATTR", "FUSE_REMOVEXATTR"):
        with_file(s)
        s.req("FUSE_SETXATTR", 2, setxattr_in(5), names("user.test") + b"value")
        if op == "FUSE_GETXATTR":
            s.req(op, 2, getxattr_in(64), names("user.test"))
        elif op == "FUSE_LISTXATTR":
            s.req(op, 2, getxattr_in(256))
        else:
            s.req(op, 2, b"", names("user.test"))
    elif op == "FUSE_FLUSH":
        with_file(s)
        s.req(op, 2, struct.pack("<QIIQ", 1, 0, 0, 77))
    elif op == "FUSE_INIT":
        s.req(op, 0, init_in())
        s.req("FUSE_GETATTR", ROOT, struct.pack("<IIQ", 0, 0, 0))
        mode = OWN_INIT
    elif op in ("FUSE_OPENDIR", "FUSE_READDIR", "FUSE_READDIRPLUS", "FUSE_RELEASEDIR",
                "FUSE_FSYNCDIR"):
        s.req("FUSE_MKDIR", ROOT, struct.pack("<II", S_IFDIR | 0o755, 0o022), names("d"))
        s.req("FUSE_SYMLINK", ROOT, b"", names("l", "d"))
        s.req("FUSE_OPENDIR", ROOT, struct.pack("<II", O_RDONLY, 0))
        if op in ("FUSE_READDIR", "FUSE_READDIRPLUS"):
            s.req(op, ROOT, read_in(1, 0, 4096, O_RDONLY))
        elif op == "FUSE_RELEASEDIR":
            s.req(op, ROOT, release_in(1, O_RDONLY))
        elif op == "FUSE_FSYNCDIR":
            s.req(op, ROOT, fsync_in(1))
    elif op in ("FUSE_GETLK", "FUSE_SETLK", "FUSE_SETLKW"):
        with_file(s)
        s.req(op, 2, lk_in(1))
    elif op == "FUSE_ACCESS":
        s.req(op, ROOT, struct.pack("<II", 4, 0))
    elif op == "FUSE_CREATE":
        s.req(op, ROOT, create_in(), names("new"))
    elif op == "FUSE_INTERRUPT":
        with_file(s)
        s.req(op, 0, struct.pack("<Q", 3))
    elif op == "FUSE_BMAP":
        with_file(s)
        s.req(op, 2, struct.pack("<QII", 0, 4096, 0))
    elif op == "FUSE_DESTROY":
        with_file(s)
        s.req(op, 0)
    elif op == "FUSE_IOCTL":
        with_file(s)
        s.req(op, 2, struct.pack("<QIIQII", 1, 0, 0x5401, 0, 0, 0))
    elif op == "FUSE_POLL":
        with_file(s)
        s.req(op, 2, struct.pack("<QQII", 1, 9, 0, 1))
    elif op == "FUSE_NOTIFY_REPLY":
        s.req(op, 2, b"", struct.pack("<QQIIQQ", 0, 0, 5, 0, 0, 0) + b"hello")
    elif op == "FUSE_BATCH_FORGET":
        with_file(s, b"")
        s.req("FUSE_LOOKUP", ROOT, b"", names("f"))
        s.req(op, 0, struct.pack("<II", 2, 0), struct.pack("<QQQQ", 2, 1, 99, 1))
    elif op == "FUSE_FALLOCATE":
        with_file(s)
        s.req(op, 2, struct.pack("<QQQII", 1, 4096, 65536, 0, 0))
    elif op == "FUSE_LSEEK":
        with_file(s)
        s.req(op, 2, struct.pack("<QQII", 1, 0, SEEK_DATA, 0))
    elif op in ("FUSE_COPY_FILE_RANGE", "FUSE_COPY_FILE_RANGE_64"):
        with_file(s)
        s.req("FUSE_CREATE", ROOT, create_in(), names("g"))
        s.req(op, 2, copy_in(1, 3, 2, 10))
    elif op == "FUSE_SETUPMAPPING":
        with_file(s)
        s.req(op, 2, struct.pack("<QQQQQ", 1, 0, 4096, 0, 0))
    elif op == "FUSE_REMOVEMAPPING":
        s.req(op, 2, struct.pack("<I", 1), struct.pack("<QQ", 0, 4096))
    elif op == "FUSE_SYNCFS":
        s.req(op, ROOT, struct.pack("<Q", 0))
    elif op == "FUSE_TMPFILE":
        s.req(op, ROOT, create_in(O_RDWR, S_IFREG | 0o600), names("/"))
    elif op == "FUSE_STATX":
        with_file(s)
        s.req(op, 2, struct.pack("<IIQII", FUSE_GETATTR_FH, 0, 1, 0, 0x7ff))
    elif op == "CUSE_INIT":
        s.req(op, 0, struct.pack("<IIII", 7, 45, 0, 0))
    else:
        raise SystemExit("gen_corpus.py: no seed for %s: add one" % op)
    return name.lower(), s, mode


def extra_seeds():
    """Inputs for the session settings of byte 0 and for longer stories."""
    out = []

    # Kernels without FUSE_SETXATTR_EXT send the 8-byte compat struct.
    s = Session()
    with_file(s)
    s.req("FUSE_SETXATTR", 2, setxattr_in(3, ext=False), names("user.old") + b"abc")
    s.req("FUSE_GETXATTR", 2, getxattr_in(0), names("user.old"))
    out.append(("setxattr-old-kernel", s, OLD_KERNEL))

    # Supplementary groups trail the arguments as a request extension.
    s = Session()
    groups = struct.pack("<II", 16, FUSE_EXT_GROUPS) + struct.pack("<II", 1, 100)
    s.req("FUSE_CREATE", ROOT, create_in(), names("g"), uid=1000, gid=1000, ext=groups)
    out.append(("create-ext-groups", s, 0))

    # memfs checking permissions itself, as another user.
    s = Session()
    s.req("FUSE_MKDIR", ROOT, struct.pack("<II", S_IFDIR | 0o777, 0), names("pub"))
    s.req("FUSE_CREATE", 2, create_in(), names("mine"), uid=1000, gid=1000)
    s.req("FUSE_SETATTR", 3, struct.pack("<IIQQQQQQIIIIIIII", FATTR_MODE, 0, 0, 0, 0, 0, 0,
                                         0, 0, 0, 0, S_IFREG | 0o4755, 0, 0, 0, 0),
          uid=1000, gid=1000)
    s.req("FUSE_ACCESS", 3, struct.pack("<II", 2, 0), uid=1000, gid=1000)
    out.append(("permissions", s, PERM_CHECK))

    # A listing that needs several READDIRPLUS calls with a small reply area.
    s = Session()
    for i in range(12):
        s.req("FUSE_MKNOD", ROOT, struct.pack("<IIII", S_IFREG | 0o644, 0, 0, 0),
              names("file-with-a-longish-name-%02d" % i))
    s.req("FUSE_OPENDIR", ROOT, struct.pack("<II", O_RDONLY, 0))
    s.req("FUSE_READDIRPLUS", ROOT, read_in(1, 0, 2048, O_RDONLY))
    s.req("FUSE_READDIRPLUS", ROOT, read_in(1, 7, 2048, O_RDONLY))
    s.req("FUSE_READDIR", ROOT, read_in(1, 9, 100, O_RDONLY))
    s.req("FUSE_RELEASEDIR", ROOT, release_in(1, O_RDONLY))
    out.append(("readdirplus-small-area", s, OUTCAP_4K))

    # A day in the life of a file, in the ring layout with op_in only as long as present.
    s = Session()
    s.req("FUSE_MKDIR", ROOT, struct.pack("<II", S_IFDIR | 0o755, 0o022), names("d"))
    s.req("FUSE_CREATE", 2, create_in(), names("f"))
    s.req("FUSE_WRITE", 3, write_in(1, 0, 9), b"some data")
    s.req("FUSE_WRITE", 3, write_in(1, 200000, 4), b"tail")
    s.req("FUSE_READ", 3, read_in(1, 0, 65536))
    s.req("FUSE_RENAME2", 2, struct.pack("<QII", ROOT, 0, 0), names("f", "moved"))
    s.req("FUSE_SETXATTR", 3, setxattr_in(2), names("user.a") + b"xy")
    s.req("FUSE_LINK", 2, struct.pack("<Q", 3), names("again"))
    s.req("FUSE_UNLINK", ROOT, b"", names("moved"))
    s.req("FUSE_FLUSH", 3, struct.pack("<QIIQ", 1, 0, 0, 0))
    s.req("FUSE_RELEASE", 3, release_in(1))
    s.req("FUSE_LOOKUP", 2, b"", names("again"))
    s.req("FUSE_FORGET", 3, struct.pack("<Q", 1))
    s.req("FUSE_UNLINK", 2, b"", names("again"))
    s.req("FUSE_RMDIR", ROOT, b"", names("d"))
    s.req("FUSE_STATFS", ROOT)
    out.append(("file-lifecycle-uring-raw", s, SPLIT | RAW))
    out.append(("file-lifecycle-traced", s, DEBUG))
    out.append(("file-lifecycle-direct", s, 0, True))
    out.append(("file-lifecycle-direct-uring", s, SPLIT, True))
    # Swapping a directory and a file, and an O_TMPFILE file given a name.
    s = Session()
    s.req("FUSE_MKDIR", ROOT, struct.pack("<II", S_IFDIR | 0o755, 0o022), names("d"))
    s.req("FUSE_CREATE", ROOT, create_in(), names("f"))
    s.req("FUSE_WRITE", 3, write_in(1, 0, 5), b"hello")
    s.req("FUSE_RENAME2", ROOT, struct.pack("<QII", ROOT, RENAME_EXCHANGE, 0), names("d", "f"))
    s.req("FUSE_TMPFILE", 2, create_in(O_RDWR, S_IFREG | 0o600))
    s.req("FUSE_WRITE", 4, write_in(2, 0, 3), b"tmp")
    s.req("FUSE_LINK", ROOT, struct.pack("<Q", 4), names("named"))
    s.req("FUSE_READDIRPLUS", 2, read_in(0, 0, 4096, O_RDONLY))
    out.append(("rename-exchange-tmpfile-link", s, 0))

    # Requests that must fail, each in its own way (replayed without --strict's checks).
    s = Session()
    s.req("FUSE_MKDIR", ROOT, struct.pack("<II", S_IFDIR | 0o755, 0), names("a"))
    s.req("FUSE_MKDIR", 2, struct.pack("<II", S_IFDIR | 0o755, 0), names("b"))
    s.req("FUSE_RENAME", ROOT, struct.pack("<Q", 3), names("a", "c"))  # into itself
    s.req("FUSE_RENAME2", ROOT, struct.pack("<QII", ROOT, RENAME_EXCHANGE | RENAME_NOREPLACE, 0),
          names("a", "x"))
    s.req("FUSE_RMDIR", ROOT, b"", names("a"))  # not empty
    s.req("FUSE_LINK", ROOT, struct.pack("<Q", 2), names("dirlink"))
    s.req("FUSE_UNLINK", ROOT, b"", names("a"))
    s.req("FUSE_LOOKUP", ROOT, b"", names("n" * 300))
    s.req("FUSE_CREATE", ROOT, create_in(O_RDWR | O_CREAT | O_EXCL), names("e"))
    s.req("FUSE_CREATE", ROOT, create_in(O_RDWR | O_CREAT | O_EXCL), names("e"))
    s.req("FUSE_WRITE", 4, write_in(1, (1 << 63) - 2, 4), b"big!")
    s.req("FUSE_SETXATTR", 4, struct.pack("<IIII", 1, XATTR_CREATE, 0, 0), names("user.k") + b"1")
    s.req("FUSE_SETXATTR", 4, struct.pack("<IIII", 1, XATTR_CREATE, 0, 0), names("user.k") + b"2")
    s.req("FUSE_GETXATTR", 4, getxattr_in(0), names("user.none"))
    s.req("FUSE_READLINK", 4)
    s.req("FUSE_OPEN", 2, struct.pack("<II", O_RDWR, 0))
    s.req("FUSE_FALLOCATE", 4, struct.pack("<QQQII", 1, 0, 1 << 40, 0, 0))  # no space
    s.req("FUSE_LSEEK", 4, struct.pack("<QQII", 1, 1 << 30, SEEK_DATA, 0))
    s.req("FUSE_GETATTR", 99, struct.pack("<IIQ", 0, 0, 0))
    out.append(("errors-many", s, 0))
    return out


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    os.makedirs(outdir, exist_ok=True)
    written = 0
    for op in sorted(OPS, key=OPS.get):
        name, s, mode = seed(op)
        for suffix, layout in (("", 0), ("-uring", SPLIT)):
            with open(os.path.join(outdir, name + suffix + ".bin"), "wb") as f:
                f.write(s.data(mode | layout))
            written += 1
    for name, s, mode, *direct in extra_seeds():
        with open(os.path.join(outdir, name + ".bin"), "wb") as f:
            f.write(s.data(mode, bool(direct and direct[0])))
        written += 1
    print("gen_corpus.py: %d opcodes, %d inputs in %s" % (len(OPS), written, outdir))


if __name__ == "__main__":
    main()
