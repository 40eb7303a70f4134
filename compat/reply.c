/*
 * Every fuse_reply_*, the directory entry helpers and the fuse_req_* accessors, on ringfuse's
 * reply encoders.
 *
 * A fuse_req_t is the request's rf_req. fuse_entry_param and fuse_ctx have the layouts of
 * rf_entry_param and rf_ctx (asserted below) and are passed as they are; fuse_file_info is
 * translated field by field on the stack. Data replies (buf, data, iov, ioctl) are written
 * straight into the request's reply area, which for io-uring is the ring entry itself.
 *
 * Differences from libfuse that a filesystem can see: an error outside 1..511 is answered
 * ERANGE (negative or >= 1000, as libfuse) or EIO (512..999, which the kernel would refuse and
 * leave the caller waiting); a reply larger than the request's reply area is answered EIO
 * instead of being sent for the kernel to reject.
 */
#include "compat.h"
#include "ringfuse/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <string.h>

_Thread_local struct compat_write_reply compat_write_reply;

#define SAME_FIELD(a, b, f) (offsetof(a, f) == offsetof(b, f))
_Static_assert(sizeof(struct fuse_entry_param) == sizeof(struct rf_entry_param) &&
		       SAME_FIELD(struct fuse_entry_param, struct rf_entry_param, ino) &&
		       SAME_FIELD(struct fuse_entry_param, struct rf_entry_param, generation) &&
		       SAME_FIELD(struct fuse_entry_param, struct rf_entry_param, attr) &&
		       SAME_FIELD(struct fuse_entry_param, struct rf_entry_param, attr_timeout) &&
		       SAME_FIELD(struct fuse_entry_param, struct rf_entry_param, entry_timeout),
	       "fuse_entry_param is laid out as rf_entry_param");
_Static_assert(sizeof(struct fuse_ctx) == sizeof(struct rf_ctx) &&
		       SAME_FIELD(struct fuse_ctx, struct rf_ctx, uid) &&
		       SAME_FIELD(struct fuse_ctx, struct rf_ctx, gid) &&
		       SAME_FIELD(struct fuse_ctx, struct rf_ctx, pid) &&
		       SAME_FIELD(struct fuse_ctx, struct rf_ctx, umask),
	       "fuse_ctx is laid out as rf_ctx");
_Static_assert(sizeof(struct fuse_forget_data) == sizeof(struct fuse_forget_one),
	       "fuse_forget_data is the kernel's fuse_forget_one");

/* The kernel refuses error values below -511 (-ERESTARTSYS and beyond). */
#define KERNEL_MAX_ERRNO 511

static const struct rf_entry_param *entry_param(const struct fuse_entry_param *e)
{
	return (const struct rf_entry_param *)e;
}

/* The reply bits of an open, create or opendir answer. */
static void open_reply_info(struct rf_file_info *r, const struct fuse_file_info *f)
{
	memset(r, 0, sizeof(*r));
	if (!f)
		return;
	r->fh = f->fh;
	r->direct_io = f->direct_io;
	r->keep_cache = f->keep_cache;
	r->nonseekable = f->nonseekable;
	r->cache_readdir = f->cache_readdir;
	r->noflush = f->noflush;
}

int fuse_reply_err(fuse_req_t req, int err)
{
	rf_req *r = compat_rq(req);

	compat_req_done(r);
	if (err < 0 || err >= 1000) {
		fuse_log(FUSE_LOG_ERR, "fuse: bad error value %d (a positive errno is expected)\n",
			 err);
		err = ERANGE;
	} else if (err > KERNEL_MAX_ERRNO) {
		fuse_log(FUSE_LOG_ERR, "fuse: error value %d is beyond what the kernel takes\n",
			 err);
		err = EIO;
	}
	return rf_reply_err(r, err);
}

void fuse_reply_none(fuse_req_t req)
{
	rf_req *r = compat_rq(req);

	compat_req_done(r);
	rf_reply_none(r);
}

int fuse_reply_entry(fuse_req_t req, const struct fuse_entry_param *e)
{
	rf_req *r = compat_rq(req);

	compat_req_done(r);
	return rf_reply_entry(r, entry_param(e));
}

int fuse_reply_create(fuse_req_t req, const struct fuse_entry_param *e,
		      const struct fuse_file_info *fi)
{
	rf_req *r = compat_rq(req);
	struct rf_file_info rfi;

	compat_req_done(r);
	open_reply_info(&rfi, fi);
	return rf_reply_create(r, entry_param(e), &rfi);
}

int fuse_reply_attr(fuse_req_t req, const struct stat *attr, double attr_timeout)
{
	rf_req *r = compat_rq(req);

	compat_req_done(r);
	return rf_reply_attr(r, attr, attr_timeout);
}

int fuse_reply_readlink(fuse_req_t req, const char *link)
{
	rf_req *r = compat_rq(req);

	compat_req_done(r);
	return rf_reply_readlink(r, link);
}

int fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi)
{
	rf_req *r = compat_rq(req);
	struct rf_file_info rfi;

	compat_req_done(r);
	open_reply_info(&rfi, fi);
	return rf_reply_open(r, &rfi);
}

int fuse_reply_write(fuse_req_t req, size_t count)
{
	rf_req *r = compat_rq(req);
	struct compat_write_reply *wr = &compat_write_reply;

	compat_req_done(r);
	if (wr->req == r && !wr->pending) {
		/* Sent by the write trampoline once the handler returns (see compat.h). */
		wr->count = count;
		wr->pending = true;
		return 0;
	}
	return rf_reply_write(r, count);
}

int fuse_reply_buf(fuse_req_t req, const char *buf, size_t size)
{
	rf_req *r = compat_rq(req);

	compat_req_done(r);
	return rf_reply_buf(r, buf, size);
}

static int too_large(rf_req *r, size_t size, size_t cap)
{
	fuse_log(FUSE_LOG_ERR,
		 "fuse: a reply of %zu bytes does not fit the request's %zu; answering EIO\n", size,
		 cap);
	return rf_reply_err(r, EIO);
}

/* Bytes left in a vector from its current position (SIZE_MAX: unbounded). */
static size_t bufvec_left(const struct fuse_bufvec *v, bool *has_fd)
{
	size_t left = 0;

	*has_fd = false;
	for (size_t i = v->idx; i < v->count; i++) {
		size_t n = v->buf[i].size;

		if (v->buf[i].flags & FUSE_BUF_IS_FD)
			*has_fd = true;
		if (i == v->idx)
			n -= v->off;
		if (n == SIZE_MAX || left > SIZE_MAX - n)
			return SIZE_MAX;
		left += n;
	}
	return left;
}

/* Reading from a descriptor straight into the reply area: the data is copied once. */
int fuse_reply_data(fuse_req_t req, struct fuse_bufvec *bufv, enum fuse_buf_copy_flags flags)
{
	rf_req *r = compat_rq(req);
	size_t cap, left;
	char *area = rf_reply_payload(r, &cap);
	struct fuse_bufvec dst = FUSE_BUFVEC_INIT(0);
	bool has_fd;
	ssize_t n;

	compat_req_done(r);
	left = bufvec_left(bufv, &has_fd);
	/* A descriptor may hold less than its size says; memory holds exactly that much. */
	if (left > cap && !has_fd)
		return too_large(r, left, cap);
	dst.buf[0].mem = area;
	dst.buf[0].size = left < cap ? left : cap;
	n = fuse_buf_copy(&dst, bufv, flags);
	if (n < 0)
		return rf_reply_err(r, (int)-n);
	return rf_reply_data(r, (size_t)n);
}

/* Gather iov into the reply area after a header of hdr_len bytes (may be 0). */
static int gather(rf_req *r, const void *hdr, size_t hdr_len, const struct iovec *iov, size_t count)
{
	size_t cap, used = hdr_len;
	char *area = rf_reply_payload(r, &cap);

	for (size_t i = 0; i < count; i++) {
		if (used > cap || iov[i].iov_len > cap - used)
			return too_large(r, used + iov[i].iov_len, cap);
		used += iov[i].iov_len;
	}
	if (hdr_len > cap)
		return too_large(r, hdr_len, cap);
	if (hdr_len)
		memcpy(area, hdr, hdr_len);
	used = hdr_len;
	for (size_t i = 0; i < count; i++) {
		if (iov[i].iov_len)
			memmove(area + used, iov[i].iov_base, iov[i].iov_len);
		used += iov[i].iov_len;
	}
	return rf_reply_data(r, used);
}

int fuse_reply_iov(fuse_req_t req, const struct iovec *iov, int count)
{
	rf_req *r = compat_rq(req);

	compat_req_done(r);
	if (count < 0)
		return rf_reply_err(r, EINVAL);
	return gather(r, NULL, 0, iov, (size_t)count);
}

int fuse_reply_statfs(fuse_req_t req, const struct statvfs *stbuf)
{
	rf_req *r = compat_rq(req);

	compat_req_done(r);
	return rf_reply_statfs(r, stbuf);
}

int fuse_reply_xattr(fuse_req_t req, size_t count)
{
	rf_req *r = compat_rq(req);

	compat_req_done(r);
	return rf_reply_xattr(r, count);
}

int fuse_reply_lock(fuse_req_t req, const struct flock *lock)
{
	rf_req *r = compat_rq(req);
	struct fuse_lk_out out;

	compat_req_done(r);
	memset(&out, 0, sizeof(out));
	out.lk.type = (uint32_t)lock->l_type;
	if (lock->l_type != F_UNLCK) {
		out.lk.start = (uint64_t)lock->l_start;
		/* A length of 0 locks to the end of the file. */
		out.lk.end = lock->l_len == 0 ? (uint64_t)INT64_MAX
					      : (uint64_t)(lock->l_start + lock->l_len - 1);
	}
	out.lk.pid = (uint32_t)lock->l_pid;
	return rf_reply_buf(r, &out, sizeof(out));
}

int fuse_reply_bmap(fuse_req_t req, uint64_t idx)
{
	rf_req *r = compat_rq(req);
	struct fuse_bmap_out out = {.block = idx};

	compat_req_done(r);
	return rf_reply_buf(r, &out, sizeof(out));
}

int fuse_reply_ioctl(fuse_req_t req, int result, const void *buf, size_t size)
{
	rf_req *r = compat_rq(req);
	struct fuse_ioctl_out out = {.result = result};
	struct iovec data = {(void *)buf, size};

	compat_req_done(r);
	return gather(r, &out, sizeof(out), &data, size ? 1 : 0);
}

int fuse_reply_ioctl_iov(fuse_req_t req, int result, const struct iovec *iov, int count)
{
	rf_req *r = compat_rq(req);
	struct fuse_ioctl_out out = {.result = result};

	compat_req_done(r);
	if (count < 0)
		return rf_reply_err(r, EINVAL);
	return gather(r, &out, sizeof(out), iov, (size_t)count);
}

/* Ask the kernel to repeat the ioctl with these buffers: the iovecs go as fuse_ioctl_iovec. */
int fuse_reply_ioctl_retry(fuse_req_t req, const struct iovec *in_iov, size_t in_count,
			   const struct iovec *out_iov, size_t out_count)
{
	rf_req *r = compat_rq(req);
	struct fuse_ioctl_out out = {.flags = FUSE_IOCTL_RETRY,
				     .in_iovs = (uint32_t)in_count,
				     .out_iovs = (uint32_t)out_count};
	size_t cap, used = sizeof(out);
	char *area = rf_reply_payload(r, &cap);

	compat_req_done(r);
	if (in_count + out_count > FUSE_IOCTL_MAX_IOV ||
	    used + (in_count + out_count) * sizeof(struct fuse_ioctl_iovec) > cap)
		return rf_reply_err(r, EINVAL);
	memcpy(area, &out, sizeof(out));
	for (size_t i = 0; i < in_count + out_count; i++) {
		const struct iovec *v = i < in_count ? &in_iov[i] : &out_iov[i - in_count];
		struct fuse_ioctl_iovec fv = {.base = (uint64_t)(uintptr_t)v->iov_base,
					      .len = v->iov_len};

		memcpy(area + used, &fv, sizeof(fv));
		used += sizeof(fv);
	}
	return rf_reply_data(r, used);
}

int fuse_reply_poll(fuse_req_t req, unsigned revents)
{
	rf_req *r = compat_rq(req);
	struct fuse_poll_out out = {.revents = revents};

	compat_req_done(r);
	return rf_reply_buf(r, &out, sizeof(out));
}

int fuse_reply_lseek(fuse_req_t req, off_t off)
{
	rf_req *r = compat_rq(req);

	compat_req_done(r);
	return rf_reply_lseek(r, off);
}

size_t fuse_add_direntry(fuse_req_t req, char *buf, size_t bufsize, const char *name,
			 const struct stat *stbuf, off_t off)
{
	return rf_add_direntry(compat_rq(req), buf, bufsize, name, stbuf, off);
}

size_t fuse_add_direntry_plus(fuse_req_t req, char *buf, size_t bufsize, const char *name,
			      const struct fuse_entry_param *e, off_t off)
{
	return rf_add_direntry_plus(compat_rq(req), buf, bufsize, name, entry_param(e), off);
}

void *fuse_req_userdata(fuse_req_t req)
{
	return compat_session_of(compat_rq(req))->userdata;
}

const struct fuse_ctx *fuse_req_ctx(fuse_req_t req)
{
	return (const struct fuse_ctx *)rf_req_ctx(compat_rq(req));
}

int fuse_req_getgroups(fuse_req_t req, int size, gid_t list[])
{
	return rf_req_getgroups(compat_rq(req), size, list);
}
