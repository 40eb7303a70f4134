/*
 * ringfuse-passthrough extended attributes. No *xattr call takes an O_PATH descriptor, so they
 * go through the magic link, whose target is the object itself (for a symlink: the link, not
 * what it points to). Setting and removing run as the caller; reading runs with the thread's
 * identity, and with the daemon's rights where that is refused, since the kernel checked the
 * caller's. The namespaces that need a capability (trusted.* and security.* CAP_SYS_ADMIN,
 * security.capability CAP_SETFCAP) were checked by the kernel against the caller too, whatever
 * the mount options: the capability is raised for that one call.
 */
#include "passthrough.h"

#include <sys/xattr.h>

#ifndef XATTR_NAME_MAX
#define XATTR_NAME_MAX 255
#endif
#ifndef XATTR_LIST_MAX
#define XATTR_LIST_MAX 65536
#endif

/* The capability the kernel required of the caller for this attribute, or -1. */
static int cap_for(const char *name, bool write)
{
	if (write && !strcmp(name, "security.capability"))
		return CAP_SETFCAP;
	if (!strncmp(name, "trusted.", 8) || (write && !strncmp(name, "security.", 9)))
		return CAP_SYS_ADMIN;
	return -1;
}

static int cap_begin(int cap)
{
	return cap >= 0 && fs.switch_creds ? caps_raise(cap) : 0;
}

static void cap_end(int cap)
{
	if (cap >= 0 && fs.switch_creds)
		caps_lower(cap);
}

void pt_setxattr(rf_req *req, rf_ino ino, const char *name, const char *value, size_t size,
		 int flags)
{
	char path[PROC_PATH_MAX];
	int cap = cap_for(name, true);
	struct creds c;
	int err = creds_enter(req, &c);

	if (!err && !(err = cap_begin(cap))) {
		if (setxattr(proc_path(inode_of(ino)->fd, path), name, value, size, flags) < 0)
			err = neg_errno();
		cap_end(cap);
	}
	creds_leave(&c);
	reply_status(req, err);
}

void pt_removexattr(rf_req *req, rf_ino ino, const char *name)
{
	char path[PROC_PATH_MAX];
	int cap = cap_for(name, true);
	struct creds c;
	int err = creds_enter(req, &c);

	if (!err && !(err = cap_begin(cap))) {
		if (removexattr(proc_path(inode_of(ino)->fd, path), name) < 0)
			err = neg_errno();
		cap_end(cap);
	}
	creds_leave(&c);
	reply_status(req, err);
}

/* getxattr into buf (size 0: the length), for a caller the kernel let read it. */
static ssize_t read_xattr(const char *path, const char *key, char *buf, size_t size)
{
	int cap = cap_for(key, false);
	ssize_t n;

	if (cap_begin(cap) < 0)
		return -EPERM;
	n = getxattr(path, key, buf, size);
	if (n < 0)
		n = neg_errno();
	if (creds_retry_privileged((int)n)) {
		n = getxattr(path, key, buf, size);
		if (n < 0)
			n = neg_errno();
		creds_settle();
	}
	cap_end(cap);
	return n;
}

/*
 * Sizes. A size probe (size 0) always gets the size. A value or list larger than the reply
 * area cannot be sent at all: that is E2BIG, not ERANGE, which would have the caller probe
 * and try again forever.
 */
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
		n = read_xattr(path, key, NULL, 0);
		if (n < 0)
			reply_status(req, (int)n);
		else
			rf_reply_xattr(req, (size_t)n);
		return;
	}
	buf = rf_reply_payload(req, &cap);
	if (!buf) {
		reply_status(req, -EIO);
		return;
	}
	n = read_xattr(path, key, buf, size < cap ? size : cap);
	if (n == -ERANGE && size > cap) {
		n = read_xattr(path, key, NULL, 0);
		if (n >= 0)
			n = (size_t)n > size ? -ERANGE : -E2BIG;
	}
	if (n < 0)
		reply_status(req, (int)n);
	else
		rf_reply_data(req, (size_t)n);
}

/* trusted.* names are listed only to CAP_SYS_ADMIN, which the kernel does not check for a
 * listing: hide them from callers other than root (approximating the capability by uid 0). */
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

/* listxattr; for root callers with CAP_SYS_ADMIN, which lists trusted.* too. */
static ssize_t list_xattrs(const char *path, char *buf, size_t size, bool root)
{
	int cap = root ? CAP_SYS_ADMIN : -1;
	ssize_t n;

	if (cap_begin(cap) < 0)
		return -EPERM;
	n = listxattr(path, buf, size);
	if (n < 0)
		n = neg_errno();
	cap_end(cap);
	return n;
}

/*
 * The whole list, filtered for the caller, into the reply area, or when it is larger into a
 * buffer of its own (*list then points there; the caller frees it when it is not buf).
 * Returns its length or -errno.
 */
static ssize_t caller_list(const char *path, char *buf, size_t cap, bool root, char **list)
{
	ssize_t n = list_xattrs(path, buf, cap, root);

	*list = buf;
	if (n == -ERANGE) {
		/* Larger than the reply area (the kernel caps lists at XATTR_LIST_MAX). */
		*list = malloc(XATTR_LIST_MAX);
		if (!*list)
			return -ENOMEM;
		n = list_xattrs(path, *list, XATTR_LIST_MAX, root);
	}
	if (n > 0 && !root)
		n = (ssize_t)drop_trusted(*list, (size_t)n);
	return n;
}

void pt_listxattr(rf_req *req, rf_ino ino, size_t size)
{
	char path[PROC_PATH_MAX], *list;
	bool root = rf_req_ctx(req)->uid == 0;
	size_t cap;
	char *buf;
	ssize_t n;

	proc_path(inode_of(ino)->fd, path);
	if (!size && root) {
		n = list_xattrs(path, NULL, 0, true);
		if (n < 0)
			reply_status(req, (int)n);
		else
			rf_reply_xattr(req, (size_t)n);
		return;
	}
	buf = rf_reply_payload(req, &cap);
	if (!buf) {
		reply_status(req, -EIO);
		return;
	}
	n = caller_list(path, buf, cap, root, &list);
	if (n >= 0 && size && (size_t)n > size)
		n = -ERANGE;
	else if (n >= 0 && size && (size_t)n > cap)
		n = -E2BIG;
	if (n < 0)
		reply_status(req, (int)n);
	else if (!size)
		rf_reply_xattr(req, (size_t)n);
	else {
		if (list != buf)
			memcpy(buf, list, (size_t)n);
		rf_reply_data(req, (size_t)n);
	}
	if (list != buf)
		free(list);
}
