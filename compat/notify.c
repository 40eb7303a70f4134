/*
 * fuse_lowlevel_notify_*: messages from the filesystem to the kernel, written to /dev/fuse
 * whatever transport carries requests (the kernel takes them nowhere else).
 *
 * They are encoded here as libfuse encodes them, names with their NUL and up to the kernel's
 * own limit. fuse_lowlevel_notify_retrieve() is not supported yet: the kernel's answer comes
 * as a request that ringfuse's dispatcher does not route to the filesystem.
 */
#include "compat.h"
#include "ringfuse/kernel.h"

#include <errno.h>
#include <stdlib.h>

int fuse_lowlevel_notify_inval_inode(struct fuse_session *se, fuse_ino_t ino, off_t off, off_t len)
{
	struct fuse_notify_inval_inode_out out = {.ino = ino, .off = off, .len = len};
	struct iovec iov[2] = {{0}, {&out, sizeof(out)}};

	if (!se)
		return -EINVAL;
	return rf_embed_notify(se->rs, FUSE_NOTIFY_INVAL_INODE, iov, 2);
}

int fuse_lowlevel_notify_expire_entry(struct fuse_session *se, fuse_ino_t parent, const char *name,
				      size_t namelen, enum fuse_expire_flags flags)
{
	struct fuse_notify_inval_entry_out out = {
		.parent = parent,
		.namelen = (uint32_t)namelen,
		.flags = (flags & FUSE_LL_EXPIRE_ONLY) ? FUSE_EXPIRE_ONLY : 0,
	};
	struct iovec iov[3] = {{0}, {&out, sizeof(out)}, {(void *)name, namelen + 1}};

	if (!se)
		return -EINVAL;
	return rf_embed_notify(se->rs, FUSE_NOTIFY_INVAL_ENTRY, iov, 3);
}

int fuse_lowlevel_notify_inval_entry(struct fuse_session *se, fuse_ino_t parent, const char *name,
				     size_t namelen)
{
	return fuse_lowlevel_notify_expire_entry(se, parent, name, namelen, 0);
}

int fuse_lowlevel_notify_delete(struct fuse_session *se, fuse_ino_t parent, fuse_ino_t child,
				const char *name, size_t namelen)
{
	struct fuse_notify_delete_out out = {
		.parent = parent, .child = child, .namelen = (uint32_t)namelen};
	struct iovec iov[3] = {{0}, {&out, sizeof(out)}, {(void *)name, namelen + 1}};

	if (!se)
		return -EINVAL;
	return rf_embed_notify(se->rs, FUSE_NOTIFY_DELETE, iov, 3);
}

/* The data is gathered first: the kernel takes one message. Not a per-request path. */
int fuse_lowlevel_notify_store(struct fuse_session *se, fuse_ino_t ino, off_t offset,
			       struct fuse_bufvec *bufv, enum fuse_buf_copy_flags flags)
{
	size_t size = fuse_buf_size(bufv);
	struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
	struct fuse_notify_store_out out = {.nodeid = ino, .offset = (uint64_t)offset};
	struct iovec iov[3] = {{0}, {&out, sizeof(out)}, {0}};
	ssize_t n;
	int ret;

	if (!se)
		return -EINVAL;
	if (size > UINT32_MAX)
		return -EINVAL;
	dst.buf[0].mem = malloc(size ? size : 1);
	if (!dst.buf[0].mem)
		return -ENOMEM;
	n = fuse_buf_copy(&dst, bufv, flags);
	if (n < 0) {
		free(dst.buf[0].mem);
		return (int)n;
	}
	out.size = (uint32_t)n;
	iov[2].iov_base = dst.buf[0].mem;
	iov[2].iov_len = (size_t)n;
	ret = rf_embed_notify(se->rs, FUSE_NOTIFY_STORE, iov, 3);
	free(dst.buf[0].mem);
	return ret;
}

int fuse_lowlevel_notify_retrieve(struct fuse_session *se, fuse_ino_t ino, size_t size,
				  off_t offset, void *cookie)
{
	(void)ino, (void)size, (void)offset, (void)cookie;
	if (!se)
		return -EINVAL;
	compat_unsupported("fuse_lowlevel_notify_retrieve()", "it fails with ENOSYS");
	return -ENOSYS;
}
