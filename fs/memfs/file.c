/*
 * memfs open files: open and its O_TRUNC, read, write, release, fsync, fallocate,
 * copy_file_range and lseek. An open handle is the node pointer, holding a reference, so
 * requests that carry it skip the inode table.
 */
#include "memfs.h"

void open_flags(struct rf_file_info *fi)
{
	fi->keep_cache = fs.keep_cache;
	fi->direct_io = fs.direct_io;
	fi->noflush = 1; /* nothing to flush, and no locks of ours to release */
	fi->parallel_direct_writes = 1;
}

/*
 * Open n for a request: permission, O_TRUNC, and the reference the handle holds. The caller
 * keeps n alive meanwhile.
 */
int open_node(rf_req *req, struct node *n, struct rf_file_info *fi)
{
	int acc = fi->flags & O_ACCMODE;
	int err;

	if (n->type == S_IFDIR && acc != O_RDONLY)
		return -EISDIR;
	if (fs.perm_check) {
		int mask = acc == O_RDONLY ? R_OK : acc == O_WRONLY ? W_OK : R_OK | W_OK;

		if (fi->flags & O_TRUNC)
			mask |= W_OK;
		err = perm_node(req, n, mask);
		if (err)
			return err;
	}
	if ((fi->flags & O_TRUNC) && n->type == S_IFREG) {
		struct timespec now;

		ts_now(&now);
		wrlock(&n->lock);
		file_truncate(n, 0);
		n->mtime = n->ctime = now;
		if (rf_req_ctx(req)->uid != 0)
			kill_suidgid(req, n, &now);
		unlock(&n->lock);
	}
	node_ref(n, 1);
	fi->fh = (uint64_t)(uintptr_t)n;
	open_flags(fi);
	return 0;
}

void mfs_open(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	struct node *n = node_get(ino);
	int err;

	if (!n) {
		rf_reply_err(req, ENOENT);
		return;
	}
	err = open_node(req, n, fi);
	node_put(n);
	if (err)
		rf_reply_err(req, -err);
	else
		rf_reply_open(req, fi);
}

void mfs_read(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	bool pinned, touch = false;
	struct node *n = req_node(ino, fi, &pinned);
	size_t cap, count = 0;
	char *buf;

	if (!n) {
		rf_reply_err(req, EBADF);
		return;
	}
	if (n->type != S_IFREG) {
		req_node_done(n, pinned);
		rf_reply_err(req, n->type == S_IFDIR ? EISDIR : EINVAL);
		return;
	}
	buf = rf_reply_payload(req, &cap);
	if (size > cap)
		size = cap;
	rdlock(&n->lock);
	if (off >= 0 && (uint64_t)off < n->size) {
		count = min_u64(size, n->size - (uint64_t)off);
		file_read(n, buf, (uint64_t)off, count);
	}
	touch = atime_due(req, n);
	unlock(&n->lock);
	if (touch)
		atime_update(n);
	req_node_done(n, pinned);
	rf_reply_data(req, count);
}

void mfs_write(rf_req *req, rf_ino ino, const char *buf, size_t size, off_t off,
	       struct rf_file_info *fi)
{
	bool pinned;
	struct node *n = req_node(ino, fi, &pinned);
	struct timespec now;
	size_t done = 0;
	int err = 0;

	if (!n) {
		rf_reply_err(req, EBADF);
		return;
	}
	if (n->type != S_IFREG)
		err = n->type == S_IFDIR ? -EISDIR : -EINVAL;
	else if (off < 0 || (uint64_t)off > MAX_FILE_SIZE - size)
		err = -EFBIG;
	if (!err && size) {
		ts_now(&now);
		wrlock(&n->lock);
		if (fi && (fi->write_flags & WRITE_KILL_SUIDGID))
			kill_suidgid(req, n, &now);
		err = file_write(n, buf, (uint64_t)off, size, &done);
		if (done)
			n->mtime = n->ctime = now;
		unlock(&n->lock);
	}
	req_node_done(n, pinned);
	if (done || !err)
		rf_reply_write(req, done);
	else
		rf_reply_err(req, -err);
}

void mfs_flush(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	(void)ino;
	(void)fi;
	rf_reply_err(req, 0);
}

void mfs_release(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	struct node *n = (struct node *)(uintptr_t)fi->fh;

	(void)ino;
	if (n)
		node_put(n); /* the handle's reference */
	rf_reply_err(req, 0);
}

void mfs_fsync(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	rf_reply_err(req, 0);
}

void mfs_fallocate(rf_req *req, rf_ino ino, int mode, off_t offset, off_t length,
		   struct rf_file_info *fi)
{
	bool pinned;
	struct node *n = req_node(ino, fi, &pinned);
	uint64_t off = (uint64_t)offset, end = off + (uint64_t)length;
	bool keep = mode & FALLOC_FL_KEEP_SIZE;
	struct timespec now;
	int err = 0;

	if (!n) {
		rf_reply_err(req, EBADF);
		return;
	}
	if (n->type != S_IFREG) {
		err = n->type == S_IFDIR ? -EISDIR : -ENODEV;
		goto out;
	}
	if (offset < 0 || length <= 0) {
		err = -EINVAL;
		goto out;
	}
	if (off > MAX_FILE_SIZE - (uint64_t)length) {
		err = -EFBIG;
		goto out;
	}
	switch (mode) {
	case 0:
	case FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_ZERO_RANGE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		break;
	default:
		err = -EOPNOTSUPP;
		goto out;
	}

	ts_now(&now);
	wrlock(&n->lock);
	/* The kernel does not clear suid/sgid for an allocation; a local filesystem does, for a
	 * caller without CAP_FSETID (approximated by a uid other than root's). */
	if (rf_req_ctx(req)->uid != 0)
		kill_suidgid(req, n, &now);
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		file_punch(n, off, end);
	if (!(mode & FALLOC_FL_PUNCH_HOLE))
		err = file_alloc(n, off, end);
	if (!err && !keep && end > n->size)
		n->size = end;
	if (!err || (mode & FALLOC_FL_ZERO_RANGE))
		n->mtime = n->ctime = now;
	unlock(&n->lock);
out:
	req_node_done(n, pinned);
	rf_reply_err(req, -err);
}

void mfs_copy_file_range(rf_req *req, rf_ino ino_in, off_t off_in, struct rf_file_info *fi_in,
			 rf_ino ino_out, off_t off_out, struct rf_file_info *fi_out, size_t len,
			 int flags)
{
	bool pin_in, pin_out;
	struct node *src = req_node(ino_in, fi_in, &pin_in);
	struct node *dst = req_node(ino_out, fi_out, &pin_out);
	uint64_t count = 0, done = 0, oin = (uint64_t)off_in, oout = (uint64_t)off_out;
	struct timespec now;
	int err = 0;

	if (!src || !dst) {
		err = -EBADF;
		goto out;
	}
	if (src->type == S_IFDIR || dst->type == S_IFDIR) {
		err = -EISDIR;
		goto out;
	}
	if (src->type != S_IFREG || dst->type != S_IFREG || flags || off_in < 0 || off_out < 0) {
		err = -EINVAL;
		goto out;
	}
	if (len > CFR_MAX)
		len = CFR_MAX;

	ts_now(&now);
	if (src == dst) {
		wrlock(&src->lock);
	} else if (src->ino < dst->ino) {
		rdlock(&src->lock);
		wrlock(&dst->lock);
	} else {
		wrlock(&dst->lock);
		rdlock(&src->lock);
	}
	if (oin < src->size)
		count = min_u64(len, src->size - oin);
	if (src == dst && count && oin < oout + count && oout < oin + count)
		err = -EINVAL; /* overlapping ranges of one file */
	else if (oout > MAX_FILE_SIZE - count)
		err = -EFBIG;
	while (!err && done < count) {
		uint64_t pi = oin + done, po = oout + done;
		uint32_t sin = (uint32_t)(pi & CHUNK_MASK), din = (uint32_t)(po & CHUNK_MASK);
		uint32_t part = (uint32_t)min_u64(count - done, CHUNK_SIZE - max_u64(sin, din));
		struct chunk *sc = chunk_at(&src->file, pi >> CHUNK_SHIFT), *dc;

		if (!sc || sin >= sc->cap) {
			/* A hole stays a hole: clear what the destination holds there. */
			dc = chunk_at(&dst->file, po >> CHUNK_SHIFT);
			if (dc && din < dc->cap)
				memset(dc->data + din, 0, min_u64(part, dc->cap - din));
		} else {
			uint32_t have = (uint32_t)min_u64(part, sc->cap - sin);

			dc = chunk_prepare(&dst->file, po >> CHUNK_SHIFT, din + part, din,
					   din + part, &err);
			if (!dc)
				break;
			if (src == dst) /* growing dc may have moved sc */
				sc = chunk_at(&src->file, pi >> CHUNK_SHIFT);
			memmove(dc->data + din, sc->data + sin, have);
			if (have < part)
				memset(dc->data + din + have, 0, part - have);
		}
		done += part;
		if (po + part > dst->size)
			dst->size = po + part;
	}
	if (done) {
		dst->mtime = dst->ctime = now;
		/* Nor for a copy: as for fallocate. */
		if (rf_req_ctx(req)->uid != 0)
			kill_suidgid(req, dst, &now);
	}
	unlock(&src->lock);
	if (src != dst)
		unlock(&dst->lock);
out:
	if (src)
		req_node_done(src, pin_in);
	if (dst)
		req_node_done(dst, pin_out);
	if (done || !err)
		rf_reply_write(req, done);
	else
		rf_reply_err(req, -err);
}

void mfs_lseek(rf_req *req, rf_ino ino, off_t off, int whence, struct rf_file_info *fi)
{
	bool pinned;
	struct node *n = req_node(ino, fi, &pinned);
	int64_t r;

	if (!n) {
		rf_reply_err(req, EBADF);
		return;
	}
	if (n->type != S_IFREG || (whence != SEEK_DATA && whence != SEEK_HOLE)) {
		r = -EINVAL;
	} else if (off < 0) {
		r = -ENXIO;
	} else {
		rdlock(&n->lock);
		r = whence == SEEK_DATA ? file_seek_data(n, (uint64_t)off)
					: file_seek_hole(n, (uint64_t)off);
		unlock(&n->lock);
	}
	req_node_done(n, pinned);
	if (r < 0)
		rf_reply_err(req, (int)-r);
	else
		rf_reply_lseek(req, (off_t)r);
}
