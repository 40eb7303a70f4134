#!/usr/bin/python3
"""A small in-memory filesystem on pyfuse3's documented API, run with its trio loop.

pyfuse3 reads /dev/fuse itself (fuse_session_fd(), fuse_session_receive_buf() and
fuse_session_process_buf()) and answers every request later, from a coroutine: the case of a
filesystem that owns its event loop. Reads sleep a little so that concurrent readers really
overlap (test_compat_pyfuse3.py checks they do).

    compat_pyfuse3fs.py MOUNTPOINT
"""

import errno
import os
import stat
import sys
import time

import pyfuse3
import trio

READ_DELAY = 0.02


class Node:
    def __init__(self, ino, mode, target=None):
        self.ino = ino
        self.mode = mode
        self.data = bytearray()
        self.children = {} if stat.S_ISDIR(mode) else None
        self.target = target
        self.nlink = 2 if stat.S_ISDIR(mode) else 1
        self.xattrs = {}
        now = time.time_ns()
        self.times = [now, now, now]


class MemFS(pyfuse3.Operations):
    def __init__(self):
        super().__init__()
        self.nodes = {pyfuse3.ROOT_INODE: Node(pyfuse3.ROOT_INODE, stat.S_IFDIR | 0o755)}
        self.next_ino = pyfuse3.ROOT_INODE + 1
        self.reads_in_flight = 0
        self.max_reads_in_flight = 0

    def _node(self, ino):
        try:
            return self.nodes[ino]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT)

    def _new(self, parent, name, mode, target=None):
        p = self._node(parent)
        if name in p.children:
            raise pyfuse3.FUSEError(errno.EEXIST)
        n = Node(self.next_ino, mode, target)
        self.next_ino += 1
        self.nodes[n.ino] = n
        p.children[name] = n.ino
        if stat.S_ISDIR(mode):
            p.nlink += 1
        return n

    async def getattr(self, inode, ctx=None):
        n = self._node(inode)
        a = pyfuse3.EntryAttributes()
        a.st_ino = n.ino
        a.st_mode = n.mode
        a.st_nlink = n.nlink
        a.st_uid = os.getuid()
        a.st_gid = os.getgid()
        a.st_size = len(n.target) if n.target is not None else len(n.data)
        a.st_blksize = 4096
        a.st_blocks = (a.st_size + 511) // 512
        a.st_atime_ns, a.st_mtime_ns, a.st_ctime_ns = n.times
        a.attr_timeout = 0
        a.entry_timeout = 0
        return a

    async def lookup(self, parent_inode, name, ctx=None):
        p = self._node(parent_inode)
        if name == b".":
            return await self.getattr(parent_inode)
        if name not in p.children:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return await self.getattr(p.children[name])

    async def forget(self, inode_list):
        pass

    async def opendir(self, inode, ctx):
        if self._node(inode).children is None:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        return inode

    async def readdir(self, fh, start_id, token):
        names = sorted(self._node(fh).children)
        for i, name in enumerate(names[start_id:], start_id):
            attr = await self.getattr(self.nodes[fh].children[name])
            if not pyfuse3.readdir_reply(token, name, attr, i + 1):
                break

    async def mkdir(self, parent_inode, name, mode, ctx):
        return await self.getattr(self._new(parent_inode, name, stat.S_IFDIR | mode).ino)

    async def create(self, parent_inode, name, mode, flags, ctx):
        n = self._new(parent_inode, name, stat.S_IFREG | mode)
        return pyfuse3.FileInfo(fh=n.ino), await self.getattr(n.ino)

    async def symlink(self, parent_inode, name, target, ctx):
        return await self.getattr(self._new(parent_inode, name, stat.S_IFLNK | 0o777,
                                            bytes(target)).ino)

    async def readlink(self, inode, ctx):
        return self._node(inode).target

    async def _remove(self, parent_inode, name, want_dir):
        p = self._node(parent_inode)
        if name not in p.children:
            raise pyfuse3.FUSEError(errno.ENOENT)
        n = self.nodes[p.children[name]]
        if want_dir != (n.children is not None):
            raise pyfuse3.FUSEError(errno.ENOTDIR if want_dir else errno.EISDIR)
        if want_dir and n.children:
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        del p.children[name]
        if want_dir:
            p.nlink -= 1
        n.nlink -= 1

    async def unlink(self, parent_inode, name, ctx):
        await self._remove(parent_inode, name, False)

    async def rmdir(self, parent_inode, name, ctx):
        await self._remove(parent_inode, name, True)

    async def rename(self, parent_inode_old, name_old, parent_inode_new, name_new, flags, ctx):
        old, new = self._node(parent_inode_old), self._node(parent_inode_new)
        if name_old not in old.children:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if flags:
            raise pyfuse3.FUSEError(errno.EINVAL)
        if name_new in new.children:
            victim = self.nodes[new.children[name_new]]
            if victim.children:
                raise pyfuse3.FUSEError(errno.ENOTEMPTY)
            victim.nlink -= 1
        new.children[name_new] = old.children.pop(name_old)

    async def open(self, inode, flags, ctx):
        n = self._node(inode)
        if flags & os.O_TRUNC:
            n.data = bytearray()
        return pyfuse3.FileInfo(fh=inode)

    async def read(self, fh, off, size):
        self.reads_in_flight += 1
        self.max_reads_in_flight = max(self.max_reads_in_flight, self.reads_in_flight)
        try:
            await trio.sleep(READ_DELAY)
            return bytes(self._node(fh).data[off:off + size])
        finally:
            self.reads_in_flight -= 1

    async def write(self, fh, off, buf):
        n = self._node(fh)
        if off > len(n.data):
            n.data.extend(bytes(off - len(n.data)))
        n.data[off:off + len(buf)] = buf
        n.times[1] = n.times[2] = time.time_ns()
        return len(buf)

    async def release(self, fh):
        pass

    async def setattr(self, inode, attr, fields, fh, ctx):
        n = self._node(inode)
        if fields.update_size:
            del n.data[attr.st_size:]
            n.data.extend(bytes(attr.st_size - len(n.data)))
        if fields.update_mode:
            n.mode = stat.S_IFMT(n.mode) | stat.S_IMODE(attr.st_mode)
        if fields.update_mtime:
            n.times[1] = attr.st_mtime_ns
        return await self.getattr(inode)

    async def setxattr(self, inode, name, value, ctx):
        self._node(inode).xattrs[name] = bytes(value)

    async def getxattr(self, inode, name, ctx):
        try:
            return self._node(inode).xattrs[name]
        except KeyError:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    async def listxattr(self, inode, ctx):
        return list(self._node(inode).xattrs)

    async def removexattr(self, inode, name, ctx):
        try:
            del self._node(inode).xattrs[name]
        except KeyError:
            raise pyfuse3.FUSEError(pyfuse3.ENOATTR)

    async def statfs(self, ctx):
        s = pyfuse3.StatvfsData()
        s.f_bsize = s.f_frsize = 4096
        s.f_blocks = s.f_bfree = s.f_bavail = 1 << 20
        s.f_files = s.f_ffree = s.f_favail = 1 << 20
        s.f_namemax = 255
        return s


def main():
    fs = MemFS()
    options = set(pyfuse3.default_options)
    options.add("fsname=pyfuse3-memfs")
    pyfuse3.init(fs, sys.argv[1], options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=False)
    print("max reads in flight %d" % fs.max_reads_in_flight, flush=True)


if __name__ == "__main__":
    main()
