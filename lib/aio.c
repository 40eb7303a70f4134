/*
 * Backend I/O for handlers (rf_io_*): the operation is stored in the request itself and handed
 * to the request's transport, which puts it on the owning queue's io_uring when it can; every
 * other case runs it synchronously here. The whole-request helpers chain operations until the
 * request can be answered: short reads continue to EOF, short writes continue to the end.
 *
 * While an operation is in flight the request's RF_LIFE_IO bit is set: replies are refused
 * meanwhile (reply.c), so the request, its buffers and its slot stay the ones the operation
 * completes into. Setting and clearing the bit are atomic read-modify-writes, one each per
 * operation, next to a system call or an io_uring operation that costs far more.
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

/* The operation is over: the request may be answered again. Returns its handle. */
static rf_req *io_end(rf_req *req)
{
	uint32_t life = atomic_fetch_and_explicit(&req->life, ~RF_LIFE_IO, memory_order_acq_rel);

	return (rf_req *)((uintptr_t)req | rf_life_tag(life));
}

void rf_io_complete(rf_req *req, int res)
{
	rf_io_cb cb = req->io.cb;
	void *arg = req->io.arg;
	rf_req *h;

	req->io.cb = NULL;
	h = io_end(req);
	if (cb)
		cb(h, res, arg);
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
		if (ret == 0)
			return 0;
		if (ret != -EAGAIN) {
			req->io.cb = NULL; /* not started: the callback is never called */
			io_end(req);
			return ret;
		}
	}
	rf_io_complete(req, rf_io_run_sync(&req->io));
	return 0;
}

void rf_io_inline(rf_req *h)
{
	rf_req *req = rf_req_of(h);

	if (req)
		req->io_inline = true;
}

/*
 * Take the request's one operation slot (sets RF_LIFE_IO) and fill in the common fields.
 * Returns the request object, or NULL with *err: -EINVAL (no callback, stale or answered
 * request), -EBUSY (an operation is in flight already).
 */
static rf_req *io_prep(rf_req *h, enum rf_io_op op, int fd, rf_io_cb cb, void *arg, int *err)
{
	rf_req *req = rf_req_untag(h);
	uintptr_t tag = (uintptr_t)h & RF_REQ_TAG_MASK;
	uint32_t life;

	*err = -EINVAL;
	if (!req || !cb)
		return NULL;
	life = atomic_load_explicit(&req->life, memory_order_relaxed);
	do {
		if (rf_life_tag(life) != tag || rf_life_state(life) != RF_REQ_ACTIVE)
			return NULL;
		if (life & RF_LIFE_IO) {
			*err = -EBUSY; /* one operation per request at a time */
			return NULL;
		}
	} while (!atomic_compare_exchange_weak_explicit(
		&req->life, &life, life | RF_LIFE_IO, memory_order_acquire, memory_order_relaxed));
	memset(&req->io, 0, offsetof(struct rf_io, done));
	req->io.op = op;
	req->io.fd = fd;
	req->io.cb = cb;
	req->io.arg = arg;
	return req;
}

int rf_io_read(rf_req *h, int fd, void *buf, size_t len, off_t off, rf_io_cb cb, void *arg)
{
	int ret;
	rf_req *req = io_prep(h, RF_IO_READ, fd, cb, arg, &ret);

	if (!req)
		return ret;
	req->io.buf = buf;
	req->io.len = len;
	req->io.off = off;
	return io_start(req);
}

int rf_io_write(rf_req *h, int fd, const void *buf, size_t len, off_t off, rf_io_cb cb, void *arg)
{
	int ret;
	rf_req *req = io_prep(h, RF_IO_WRITE, fd, cb, arg, &ret);

	if (!req)
		return ret;
	req->io.buf = (void *)buf;
	req->io.len = len;
	req->io.off = off;
	return io_start(req);
}

int rf_io_fsync(rf_req *h, int fd, int datasync, rf_io_cb cb, void *arg)
{
	int ret;
	rf_req *req = io_prep(h, RF_IO_FSYNC, fd, cb, arg, &ret);

	if (!req)
		return ret;
	req->io.flags = datasync ? 1 : 0;
	return io_start(req);
}

int rf_io_fallocate(rf_req *h, int fd, int mode, off_t off, off_t len, rf_io_cb cb, void *arg)
{
	int ret;
	rf_req *req;

	if (off < 0 || len <= 0)
		return -EINVAL;
	req = io_prep(h, RF_IO_FALLOCATE, fd, cb, arg, &ret);
	if (!req)
		return ret;
	req->io.flags = mode;
	req->io.off = off;
	req->io.len = (uint64_t)len;
	return io_start(req);
}

int rf_io_statx(rf_req *h, int dirfd, const char *path, int flags, unsigned int mask,
		struct statx *stx, rf_io_cb cb, void *arg)
{
	int ret;
	rf_req *req = io_prep(h, RF_IO_STATX, dirfd, cb, arg, &ret);

	if (!req)
		return ret;
	req->io.path = path;
	req->io.flags = flags;
	req->io.mask = mask;
	req->io.buf = stx;
	return io_start(req);
}

int rf_io_openat(rf_req *h, int dirfd, const char *path, int flags, mode_t mode, rf_io_cb cb,
		 void *arg)
{
	int ret;
	rf_req *req = io_prep(h, RF_IO_OPENAT, dirfd, cb, arg, &ret);

	if (!req)
		return ret;
	req->io.path = path;
	req->io.flags = flags;
	req->io.mode = mode;
	return io_start(req);
}

/* ---- whole-request helpers ----
 * Progress (done/want) lives in req->io and survives rf_io_* calls; it is set before each
 * continuation is submitted because a synchronous completion re-enters the step at once.
 * EAGAIN and EINTR are retried, but only so many times in a row: a non-blocking descriptor
 * with nothing to give would otherwise spin (and recurse, when the retries run synchronously). */
#define RF_IO_AGAIN_MAX 16

/* True when res is a transient failure worth another try (counted in req->io.again). */
static bool retry_again(rf_req *req, int res)
{
	if (res != -EAGAIN && res != -EINTR)
		return false;
	return ++req->io.again <= RF_IO_AGAIN_MAX;
}

static void reply_read_step(rf_req *req, int res, void *arg)
{
	rf_req *r = rf_req_untag(req); /* the callback's handle is the current one */
	char *base = arg;
	size_t done = r->io.done;
	off_t next = r->io.off;

	if (retry_again(r, res)) {
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
	} else {
		r->io.again = 0;
	}
	done += (size_t)res;
	next += res;
	if (done >= r->io.want) {
		rf_reply_data(req, done);
		return;
	}
	/* Short read before EOF (or EAGAIN): continue where it stopped. */
	r->io.done = done;
	if (rf_io_read(req, r->io.fd, base + done, r->io.want - done, next, reply_read_step, base))
		rf_reply_data(req, done);
}

/* The request h names, if a whole-request helper may start on it; else NULL and *ret is what
 * to return: a stale or answered request is refused as a reply would be, and one with an
 * operation in flight keeps its progress fields. */
static rf_req *helper_start(rf_req *h, int *ret)
{
	rf_req *r = rf_req_of(h);

	if (!r) {
		*ret = rf_reply_err(h, EIO);
		return NULL;
	}
	if (atomic_load_explicit(&r->life, memory_order_relaxed) & RF_LIFE_IO) {
		*ret = -EBUSY;
		return NULL;
	}
	return r;
}

int rf_io_reply_read(rf_req *req, int fd, size_t size, off_t off)
{
	size_t cap;
	char *buf = rf_reply_payload(req, &cap);
	int ret;
	rf_req *r = helper_start(req, &ret);

	if (!r)
		return ret;
	if (!buf)
		return rf_reply_err(req, EIO);
	if (size > cap)
		size = cap;
	if (size == 0)
		return rf_reply_data(req, 0);
	r->io.done = 0;
	r->io.want = size;
	r->io.again = 0;
	ret = rf_io_read(req, fd, buf, size, off, reply_read_step, buf);
	if (ret)
		return rf_reply_err(req, -ret);
	return 0;
}

static void reply_write_step(rf_req *req, int res, void *arg)
{
	rf_req *r = rf_req_untag(req);
	const char *base = arg;
	size_t done = r->io.done;
	off_t next = r->io.off;

	if (retry_again(r, res)) {
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
	} else {
		r->io.again = 0;
	}
	done += (size_t)res;
	next += res;
	if (done >= r->io.want) {
		rf_reply_write(req, done);
		return;
	}
	r->io.done = done;
	if (rf_io_write(req, r->io.fd, base + done, r->io.want - done, next, reply_write_step, arg))
		rf_reply_write(req, done);
}

int rf_io_reply_write(rf_req *req, int fd, const void *buf, size_t size, off_t off)
{
	int ret;
	rf_req *r = helper_start(req, &ret);

	if (!r)
		return ret;
	if (size == 0)
		return rf_reply_write(req, 0);
	r->io.done = 0;
	r->io.want = size;
	r->io.again = 0;
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
