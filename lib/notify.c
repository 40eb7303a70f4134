/*
 * Server-initiated messages (notifications). They always travel over /dev/fuse, with
 * unique = 0 and the notification code in the error field, whatever transport carries
 * requests: the kernel refuses them on the io-uring ring.
 */
#include "ringfuse_i.h"

#include <errno.h>
#include <string.h>

static int notify_send(rf_session *se, int code, struct iovec *iov, int iovcnt)
{
	struct fuse_out_header oh = {0};
	size_t len = sizeof(oh);

	if (se->fd < 0 || !atomic_load(&se->initialized) || atomic_load(&se->conn_gone))
		return -ENOTCONN;
	for (int i = 1; i < iovcnt; i++)
		len += iov[i].iov_len;
	oh.len = (uint32_t)len;
	oh.error = code;
	oh.unique = 0;
	iov[0].iov_base = &oh;
	iov[0].iov_len = sizeof(oh);
	return rf_dev_write(se->fd, iov, iovcnt);
}

int rf_notify_inval_inode(rf_session *se, rf_ino ino, off_t off, off_t len)
{
	struct fuse_notify_inval_inode_out o = {.ino = ino, .off = off, .len = len};
	struct iovec iov[2] = {{0}, {&o, sizeof(o)}};

	return notify_send(se, FUSE_NOTIFY_INVAL_INODE, iov, 2);
}

int rf_notify_inval_entry(rf_session *se, rf_ino parent, const char *name, size_t namelen)
{
	struct fuse_notify_inval_entry_out o = {.parent = parent, .namelen = (uint32_t)namelen};
	struct iovec iov[3] = {{0}, {&o, sizeof(o)}, {(void *)name, namelen + 1}};

	if (namelen > 255 || strnlen(name, namelen + 1) != namelen)
		return -EINVAL;
	return notify_send(se, FUSE_NOTIFY_INVAL_ENTRY, iov, 3);
}

int rf_notify_delete(rf_session *se, rf_ino parent, rf_ino child, const char *name, size_t namelen)
{
	struct fuse_notify_delete_out o = {
		.parent = parent, .child = child, .namelen = (uint32_t)namelen};
	struct iovec iov[3] = {{0}, {&o, sizeof(o)}, {(void *)name, namelen + 1}};

	if (namelen > 255 || strnlen(name, namelen + 1) != namelen)
		return -EINVAL;
	return notify_send(se, FUSE_NOTIFY_DELETE, iov, 3);
}

int rf_notify_store(rf_session *se, rf_ino ino, off_t offset, const void *buf, size_t size)
{
	struct fuse_notify_store_out o = {
		.nodeid = ino, .offset = (uint64_t)offset, .size = (uint32_t)size};
	struct iovec iov[3] = {{0}, {&o, sizeof(o)}, {(void *)buf, size}};

	if (offset < 0 || size > UINT32_MAX)
		return -EINVAL;
	return notify_send(se, FUSE_NOTIFY_STORE, iov, 3);
}
