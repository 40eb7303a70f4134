/*
 * Backend I/O for handlers (rf_io_*): the operation is stored in the request itself and handed
 * to the request's transport, which puts it on the owning queue's io_uring when it can; every
 * other case runs it synchronously here. The whole-request helpers chain operations until the
 * request can be answered: short reads continue to EOF, short writes continue to the end.
 */
#include "ringfuse_i.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int rf_io_run_sync(struct rf_io *io)
{
	ssize_t n;
	int ret;

	switch (io->op) {
	case RF_IO_READ:
		n = pread(io->fd, io->buf, io->len, io->off);
		return n < 0 ? -errno : (int)n;
	case RF_IO_WRITE:
		n = pwrite(io->fd, io->buf, io->len, io->off);
		return n < 0 ? -errno : (int)n;
	case RF_IO_FSYNC:
		ret = io->flags ? fdatasync(io->fd) : fsync(io->fd);
		return ret < 0 ? -errno : 0;
	case RF_IO_FALLOCATE:
		ret = fallocate(io->fd, io->flags, io->off, (off_t)io->len);
		return ret < 0 ? -errno : 0;
	case RF_IO_STATX:
		ret = statx(io->fd, io->path, io->flags, io->mask, io->buf);
		return ret < 0 ? -errno : 0;
	case RF_IO_OPENAT:
		ret = openat(io->fd, io->path, io->flags, io->mode);
		return ret < 0 ? -errno : ret;
	}
	return -EINVAL;
}

void rf_io_complete(rf_req *req, int res)
{
	rf_io_cb cb = req->io.cb;

	req->io.cb = NULL;
	if (cb)
		cb(req, res, req->io.arg);
}

static int io_start(rf_req *req)
{
	int ret;

	/* A read or write reports its byte count as an int: cut it, the callers continue short
	 * I/O. Any other length is a range (fallocate), whose result is a status: cutting it would
	 * allocate, punch or zero less than asked and still report success. */
	if ((req->io.op == RF_IO_READ || req->io.op == RF_IO_WRITE) && req->io.len > INT32_MAX)
		req->io.len = INT32_MAX;
	if (req->rops->io_submit && !req->io_inline) {
		ret = req->rops->io_submit(req);
		if (ret != -EAGAIN)
			return ret;
	}
	rf_io_complete(req, rf_io_run_sync(&req->io));
	return 0;
}

void rf_io_inline(rf_req *req)
{
	if (req)
		req->io_inline = true;
}

static int io_prep(rf_req *req, enum rf_io_op op, int fd, rf_io_cb cb, void *arg)
{
	if (!req || !cb || atomic_load(&req->state) != RF_REQ_ACTIVE)
		return -EINVAL;
	if (req->io.cb)
		return -EBUSY; /* one operation per request at a time */
	memset(&req->io, 0, offsetof(struct rf_io, done));
	req->io.op = op;
	req->io.fd = fd;
	req->io.cb = cb;
	req->io.arg = arg;
	return 0;
}

int rf_io_read(rf_req *req, int fd, void *buf, size_t len, off_t off, rf_io_cb cb, void *arg)
{
	int ret = io_prep(req, RF_IO_READ, fd, cb, arg);

	if (ret)
		return ret;
	req->io.buf = buf;
	req->io.len = len;
	req->io.off = off;
	return io_start(req);
}

int rf_io_write(rf_req *req, int fd, const void *buf, size_t len, off_t off, rf_io_cb cb, void *arg)
{
	int ret = io_prep(req, RF_IO_WRITE, fd, cb, arg);

	if (ret)
		return ret;
	req->io.buf = (void *)buf;
	req->io.len = len;
	req->io.off = off;
	return io_start(req);
}

int rf_io_fsync(rf_req *req, int fd, int datasync, rf_io_cb cb, void *arg)
{
	int ret = io_prep(req, RF_IO_FSYNC, fd, cb, arg);

	if (ret)
		return ret;
	req->io.flags = datasync ? 1 : 0;
	return io_start(req);
}

int rf_io_fallocate(rf_req *req, int fd, int mode, off_t off, off_t len, rf_io_cb cb, void *arg)
{
	int ret = io_prep(req, RF_IO_FALLOCATE, fd, cb, arg);

	if (ret)
		return ret;
	if (off < 0 || len <= 0) {
		req->io.cb = NULL;
		return -EINVAL;
	}
	req->io.flags = mode;
	req->io.off = off;
	req->io.len = (uint64_t)len;
	return io_start(req);
}

int rf_io_statx(rf_req *req, int dirfd, const char *path, int flags, unsigned int mask,
		struct statx *stx, rf_io_cb cb, void *arg)
{
	int ret = io_prep(req, RF_IO_STATX, dirfd, cb, arg);

	if (ret)
		return ret;
	req->io.path = path;
	req->io.flags = flags;
	req->io.mask = mask;
	req->io.buf = stx;
	return io_start(req);
}

int rf_io_openat(rf_req *req, int dirfd, const char *path, int flags, mode_t mode, rf_io_cb cb,
		 void *arg)
{
	int ret = io_prep(req, RF_IO_OPENAT, dirfd, cb, arg);

	if (ret)
		return ret;
	req->io.path = path;
	req->io.flags = flags;
	req->io.mode = mode;
	return io_start(req);
}

/* ---- whole-request helpers ----
 * Progress (done/want) lives in req->io and survives rf_io_* calls; it is set before each
 * continuation is submitted because a synchronous completion re-enters the step at once. */

static void reply_read_step(rf_req *req, int res, void *arg)
{
	char *base = arg;
	size_t done = req->io.done;
	off_t next = req->io.off;

	if (res == -EAGAIN || res == -EINTR) {
		res = 0;
	} else if (res < 0) {
		if (done)
			rf_reply_data(req, done);
		else
			rf_reply_err(req, -res);
		return;
	} else if (res == 0) { /* EOF */
		rf_reply_data(req, done);
		return;
	}
	done += (size_t)res;
	next += res;
	if (done >= req->io.want) {
		rf_reply_data(req, done);
		return;
	}
	/* Short read before EOF (or EAGAIN): continue where it stopped. */
	req->io.done = done;
	if (rf_io_read(req, req->io.fd, base + done, req->io.want - done, next, reply_read_step,
		       base))
		rf_reply_data(req, done);
}

int rf_io_reply_read(rf_req *req, int fd, size_t size, off_t off)
{
	size_t cap;
	char *buf = rf_reply_payload(req, &cap);
	int ret;

	if (!buf)
		return rf_reply_err(req, EIO);
	if (size > cap)
		size = cap;
	if (size == 0)
		return rf_reply_data(req, 0);
	req->io.done = 0;
	req->io.want = size;
	ret = rf_io_read(req, fd, buf, size, off, reply_read_step, buf);
	if (ret)
		return rf_reply_err(req, -ret);
	return 0;
}

static void reply_write_step(rf_req *req, int res, void *arg)
{
	const char *base = arg;
	size_t done = req->io.done;
	off_t next = req->io.off;

	if (res == -EAGAIN || res == -EINTR) {
		res = 0;
	} else if (res < 0) {
		if (done)
			rf_reply_write(req, done);
		else
			rf_reply_err(req, -res);
		return;
	} else if (res == 0) { /* no progress and no error: the device is full in practice */
		if (done)
			rf_reply_write(req, done);
		else
			rf_reply_err(req, ENOSPC);
		return;
	}
	done += (size_t)res;
	next += res;
	if (done >= req->io.want) {
		rf_reply_write(req, done);
		return;
	}
	req->io.done = done;
	if (rf_io_write(req, req->io.fd, base + done, req->io.want - done, next, reply_write_step,
			arg))
		rf_reply_write(req, done);
}

int rf_io_reply_write(rf_req *req, int fd, const void *buf, size_t size, off_t off)
{
	int ret;

	if (size == 0)
		return rf_reply_write(req, 0);
	req->io.done = 0;
	req->io.want = size;
	ret = rf_io_write(req, fd, buf, size, off, reply_write_step, (void *)buf);
	if (ret)
		return rf_reply_err(req, -ret);
	return 0;
}

static void reply_fsync_done(rf_req *req, int res, void *arg)
{
	(void)arg;
	rf_reply_err(req, res < 0 ? -res : 0);
}

int rf_io_reply_fsync(rf_req *req, int fd, int datasync)
{
	int ret = rf_io_fsync(req, fd, datasync, reply_fsync_done, NULL);

	if (ret)
		return rf_reply_err(req, -ret);
	return 0;
}
