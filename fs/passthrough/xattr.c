/*
 * ringfuse-passthrough extended attributes. No *xattr call takes an O_PATH descriptor, so they
 * go through the magic link, whose target is the object itself (for a symlink: the link, not
 * what it points to).
 */
#include "passthrough.h"

#include <sys/xattr.h>

#ifndef XATTR_NAME_MAX
#define XATTR_NAME_MAX 255
#endif

void pt_setxattr(rf_req *req, rf_ino ino, const char *name, const char *value, size_t size,
		 int flags)
{
	char path[PROC_PATH_MAX];
	struct creds c;
	int err = creds_enter(req, &c);

	if (!err) {
		if (setxattr(proc_path(inode_of(ino)->fd, path), name, value, size, flags) < 0)
			err = neg_errno();
		creds_leave(&c);
	}
	reply_status(req, err);
}

void pt_removexattr(rf_req *req, rf_ino ino, const char *name)
{
	char path[PROC_PATH_MAX];
	struct creds c;
	int err = creds_enter(req, &c);

	if (!err) {
		if (removexattr(proc_path(inode_of(ino)->fd, path), name) < 0)
			err = neg_errno();
		creds_leave(&c);
	}
	reply_status(req, err);
}

void pt_getxattr(rf_req *req, rf_ino ino, const char *name, size_t size)
{
	char path[PROC_PATH_MAX], key[XATTR_NAME_MAX + 1];
	size_t cap;
	char *buf;
	ssize_t n;

	/* The name may live in the payload the value is about to overwrite. */
	if (strlen(name) > XATTR_NAME_MAX) {
		reply_status(req, -ERANGE);
		return;
	}
	strcpy(key, name);
	proc_path(inode_of(ino)->fd, path);
	if (!size) {
		n = getxattr(path, key, NULL, 0);
		if (n < 0)
			reply_status(req, neg_errno());
		else
			rf_reply_xattr(req, (size_t)n);
		return;
	}
	buf = rf_reply_payload(req, &cap);
	n = buf ? getxattr(path, key, buf, size < cap ? size : cap) : -1;
	if (!buf)
		reply_status(req, -EIO);
	else if (n < 0)
		reply_status(req, neg_errno());
	else
		rf_reply_data(req, (size_t)n);
}

/* trusted.* names are listed only to CAP_SYS_ADMIN; we list as root, so hide them from other
 * callers, approximating the capability by uid 0. */
static size_t drop_trusted(char *list, size_t len)
{
	size_t in = 0, out = 0;

	while (in < len) {
		size_t n = strnlen(list + in, len - in) + 1;

		if (strncmp(list + in, "trusted.", 8)) {
			memmove(list + out, list + in, n);
			out += n;
		}
		in += n;
	}
	return out;
}

void pt_listxattr(rf_req *req, rf_ino ino, size_t size)
{
	char path[PROC_PATH_MAX];
	bool filter = rf_req_ctx(req)->uid != 0;
	size_t cap;
	char *buf;
	ssize_t n;

	proc_path(inode_of(ino)->fd, path);
	if (!size && !filter) {
		n = listxattr(path, NULL, 0);
		if (n < 0)
			reply_status(req, neg_errno());
		else
			rf_reply_xattr(req, (size_t)n);
		return;
	}
	/* The whole list fits any payload (the kernel caps it at 64 KiB): list it all, filter,
	 * then hold it against the size asked for. */
	buf = rf_reply_payload(req, &cap);
	if (!buf) {
		reply_status(req, -EIO);
		return;
	}
	n = listxattr(path, buf, cap);
	if (n < 0) {
		reply_status(req, neg_errno());
		return;
	}
	if (filter)
		n = (ssize_t)drop_trusted(buf, (size_t)n);
	if (!size)
		rf_reply_xattr(req, (size_t)n);
	else if ((size_t)n > size)
		reply_status(req, -ERANGE);
	else
		rf_reply_data(req, (size_t)n);
}
