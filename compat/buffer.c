/*
 * fuse_bufvec: fuse_buf_size() and fuse_buf_copy(), which move data between memory and file
 * descriptors (a filesystem's write_buf() copies the request's data to its file with it; reply
 * data can come from a descriptor).
 *
 * A copy walks both vectors from their current buffer and offset, one piece at a time (the
 * smaller of what is left in either buffer), advancing both by what each piece moved, and
 * stops at the end of either vector, at a short piece or at an error (returned only when
 * nothing was copied). A descriptor with FUSE_BUF_FD_SEEK is read or written at pos plus the
 * offset within the buffer, otherwise at its file position; FUSE_BUF_FD_RETRY keeps going
 * until the piece is done or EOF. Descriptor to descriptor goes through splice(2) unless
 * FUSE_BUF_NO_SPLICE, falling back to read and write where splice cannot join the two.
 */
#include "compat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#define BOUNCE_SIZE 16384

size_t fuse_buf_size(const struct fuse_bufvec *bufv)
{
	size_t total = 0;

	for (size_t i = 0; i < bufv->count; i++) {
		if (bufv->buf[i].size == SIZE_MAX)
			return SIZE_MAX;
		total += bufv->buf[i].size;
	}
	return total;
}

static bool seeks(const struct fuse_buf *b)
{
	return (b->flags & FUSE_BUF_FD_SEEK) != 0;
}

static bool retries(const struct fuse_buf *b)
{
	return (b->flags & FUSE_BUF_FD_RETRY) != 0;
}

/* Memory to descriptor. */
static ssize_t to_fd(const struct fuse_buf *dst, size_t dst_off, const char *src, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = seeks(dst) ? pwrite(dst->fd, src + done, len - done,
						dst->pos + (off_t)(dst_off + done))
				       : write(dst->fd, src + done, len - done);

		if (n < 0) {
			if (!done)
				return -errno;
			break;
		}
		if (n == 0)
			break;
		done += (size_t)n;
		if (!retries(dst))
			break;
	}
	return (ssize_t)done;
}

/* Descriptor to memory. */
static ssize_t from_fd(char *dst, const struct fuse_buf *src, size_t src_off, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = seeks(src) ? pread(src->fd, dst + done, len - done,
					       src->pos + (off_t)(src_off + done))
				       : read(src->fd, dst + done, len - done);

		if (n < 0) {
			if (!done)
				return -errno;
			break;
		}
		if (n == 0)
			break;
		done += (size_t)n;
		if (!retries(src))
			break;
	}
	return (ssize_t)done;
}

/* Descriptor to descriptor through a buffer on the stack. */
static ssize_t fd_to_fd(const struct fuse_buf *dst, size_t dst_off, const struct fuse_buf *src,
			size_t src_off, size_t len)
{
	char bounce[BOUNCE_SIZE];
	size_t done = 0;

	while (done < len) {
		size_t want = len - done < sizeof(bounce) ? len - done : sizeof(bounce);
		ssize_t got = from_fd(bounce, src, src_off + done, want);
		ssize_t put;

		if (got <= 0) {
			if (got < 0 && !done)
				return got;
			break;
		}
		put = to_fd(dst, dst_off + done, bounce, (size_t)got);
		if (put <= 0) {
			if (put < 0 && !done)
				return put;
			break;
		}
		done += (size_t)put;
		if ((size_t)put < want)
			break;
	}
	return (ssize_t)done;
}

static ssize_t spliced(const struct fuse_buf *dst, size_t dst_off, const struct fuse_buf *src,
		       size_t src_off, size_t len, enum fuse_buf_copy_flags flags)
{
	unsigned int how = 0;
	off_t in_pos = src->pos + (off_t)src_off, out_pos = dst->pos + (off_t)dst_off;
	size_t done = 0;

	if (flags & FUSE_BUF_SPLICE_MOVE)
		how |= SPLICE_F_MOVE;
	if (flags & FUSE_BUF_SPLICE_NONBLOCK)
		how |= SPLICE_F_NONBLOCK;
	while (done < len) {
		ssize_t n = splice(src->fd, seeks(src) ? &in_pos : NULL, dst->fd,
				   seeks(dst) ? &out_pos : NULL, len - done, how);

		if (n < 0) {
			if (done)
				break;
			if (errno == EINVAL && !(flags & FUSE_BUF_FORCE_SPLICE))
				return fd_to_fd(dst, dst_off, src, src_off, len);
			return -errno;
		}
		if (n == 0)
			break;
		done += (size_t)n;
		if (!retries(src) && !retries(dst))
			break;
	}
	return (ssize_t)done;
}

static ssize_t copy_piece(const struct fuse_buf *dst, size_t dst_off, const struct fuse_buf *src,
			  size_t src_off, size_t len, enum fuse_buf_copy_flags flags)
{
	bool src_fd = (src->flags & FUSE_BUF_IS_FD) != 0;
	bool dst_fd = (dst->flags & FUSE_BUF_IS_FD) != 0;

	if (!src_fd && !dst_fd) {
		char *d = (char *)dst->mem + dst_off;
		const char *s = (const char *)src->mem + src_off;

		if (d != s)
			memmove(d, s, len);
		return (ssize_t)len;
	}
	if (!src_fd)
		return to_fd(dst, dst_off, (const char *)src->mem + src_off, len);
	if (!dst_fd)
		return from_fd((char *)dst->mem + dst_off, src, src_off, len);
	if (flags & FUSE_BUF_NO_SPLICE)
		return fd_to_fd(dst, dst_off, src, src_off, len);
	return spliced(dst, dst_off, src, src_off, len, flags);
}

/* Move the vector's position on by len; false once it is at its end. */
static bool advance(struct fuse_bufvec *v, size_t len)
{
	if (v->idx >= v->count)
		return false;
	v->off += len;
	if (v->off < v->buf[v->idx].size)
		return true;
	v->idx++;
	if (v->idx >= v->count)
		return false;
	v->off = 0;
	return true;
}

ssize_t fuse_buf_copy(struct fuse_bufvec *dstv, struct fuse_bufvec *srcv,
		      enum fuse_buf_copy_flags flags)
{
	size_t copied = 0;

	if (dstv == srcv)
		return (ssize_t)fuse_buf_size(dstv);
	while (srcv->idx < srcv->count && dstv->idx < dstv->count) {
		const struct fuse_buf *src = &srcv->buf[srcv->idx];
		const struct fuse_buf *dst = &dstv->buf[dstv->idx];
		size_t src_left = src->size - srcv->off, dst_left = dst->size - dstv->off;
		size_t len = src_left < dst_left ? src_left : dst_left;
		ssize_t res = copy_piece(dst, dstv->off, src, srcv->off, len, flags);

		if (res < 0) {
			if (!copied)
				return res;
			break;
		}
		copied += (size_t)res;
		if (!advance(srcv, (size_t)res) || !advance(dstv, (size_t)res))
			break;
		if ((size_t)res < len)
			break;
	}
	return (ssize_t)copied;
}
