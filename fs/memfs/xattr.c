/*
 * memfs extended attributes: the user., trusted. and security. namespaces with their
 * access rules, kept as a list per node.
 */
#include "memfs.h"

enum xattr_ns { XNS_USER, XNS_TRUSTED, XNS_SECURITY, XNS_NONE };

static enum xattr_ns xattr_ns(const char *name)
{
	static const struct {
		const char *prefix;
		size_t len;
		enum xattr_ns ns;
	} tab[] = {
		{"user.", 5, XNS_USER},
		{"trusted.", 8, XNS_TRUSTED},
		{"security.", 9, XNS_SECURITY},
	};

	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (!strncmp(name, tab[i].prefix, tab[i].len) && name[tab[i].len])
			return tab[i].ns;
	return XNS_NONE;
}

/* Namespace and permission rules; write says set/remove rather than get. n->lock held. */
static int xattr_allowed(rf_req *req, const struct node *n, const char *name, bool write)
{
	switch (xattr_ns(name)) {
	case XNS_USER:
		if (n->type != S_IFREG && n->type != S_IFDIR)
			return write ? -EPERM : -ENODATA;
		if (fs.perm_check)
			return perm_locked(req, n, write ? W_OK : R_OK);
		return 0;
	case XNS_TRUSTED:
		if (rf_req_ctx(req)->uid != 0)
			return write ? -EPERM : -ENODATA;
		return 0;
	case XNS_SECURITY:
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}

/* What an attribute costs against the capacity (a user who may write one file could otherwise
 * fill the daemon's memory with attributes). */
static uint64_t xattr_cost(const struct xattr *x)
{
	return sizeof(*x) + x->nlen + 1 + x->vlen;
}

void xattr_free(struct xattr *x)
{
	space_release(xattr_cost(x));
	free(x);
}

static struct xattr **xattr_find(struct node *n, const char *name)
{
	struct xattr **pp;

	for (pp = &n->xattrs; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->data, name))
			return pp;
	return NULL;
}

void mfs_setxattr(rf_req *req, rf_ino ino, const char *name, const char *value, size_t size,
		  int flags)
{
	struct node *n = node_get(ino);
	size_t nlen = strlen(name);
	struct xattr **pp, *x;
	struct timespec now;
	int err;

	if (!n) {
		rf_reply_err(req, ENOENT);
		return;
	}
	if (nlen > XATTR_NAME_MAX) {
		err = -ERANGE;
		goto out;
	}
	if (size > XATTR_SIZE_MAX) {
		err = -E2BIG;
		goto out;
	}
	if (flags & ~(XATTR_CREATE | XATTR_REPLACE)) {
		err = -EINVAL;
		goto out;
	}
	x = malloc(sizeof(*x) + nlen + 1 + size);
	if (!x) {
		err = -ENOMEM;
		goto out;
	}
	x->nlen = (uint32_t)nlen;
	x->vlen = (uint32_t)size;
	memcpy(x->data, name, nlen + 1);
	if (size)
		memcpy(x->data + nlen + 1, value, size);
	err = space_charge(xattr_cost(x));
	if (err) {
		free(x);
		goto out;
	}

	ts_now(&now);
	wrlock(&n->lock);
	err = xattr_allowed(req, n, name, true);
	if (!err) {
		pp = xattr_find(n, name);
		if (pp && (flags & XATTR_CREATE))
			err = -EEXIST;
		else if (!pp && (flags & XATTR_REPLACE))
			err = -ENODATA;
		else if (!pp && n->xattr_names + nlen + 1 > XATTR_LIST_MAX)
			err = -ENOSPC;
	}
	if (!err) {
		if (pp) {
			struct xattr *old = *pp;

			x->next = old->next;
			*pp = x;
			xattr_free(old);
		} else {
			x->next = n->xattrs;
			n->xattrs = x;
			n->xattr_names += (uint32_t)(nlen + 1);
		}
		x = NULL;
		n->ctime = now;
	}
	unlock(&n->lock);
	if (x)
		xattr_free(x);
out:
	node_put(n);
	rf_reply_err(req, -err);
}

/* Answer a getxattr/listxattr from bytes under n->lock, which the call releases. */
static void reply_locked_bytes(rf_req *req, struct node *n, const char *src, size_t len,
			       size_t size)
{
	size_t cap;
	char *buf, *copy;

	if (size == 0) {
		unlock(&n->lock);
		rf_reply_xattr(req, len);
		return;
	}
	if (size < len) {
		unlock(&n->lock);
		rf_reply_err(req, ERANGE);
		return;
	}
	/* Straight into the reply buffer; the request's name is no longer needed. */
	buf = rf_reply_payload(req, &cap);
	if (cap >= len) {
		if (len)
			memcpy(buf, src, len);
		unlock(&n->lock);
		rf_reply_data(req, len);
		return;
	}
	copy = malloc(len);
	if (copy)
		memcpy(copy, src, len);
	unlock(&n->lock);
	if (copy)
		rf_reply_buf(req, copy, len);
	else
		rf_reply_err(req, ENOMEM);
	free(copy);
}

void mfs_getxattr(rf_req *req, rf_ino ino, const char *name, size_t size)
{
	struct node *n = node_get(ino);
	struct xattr **pp;
	int err;

	if (!n) {
		rf_reply_err(req, ENOENT);
		return;
	}
	if (strlen(name) > XATTR_NAME_MAX) {
		node_put(n);
		rf_reply_err(req, ERANGE);
		return;
	}
	rdlock(&n->lock);
	err = xattr_allowed(req, n, name, false);
	pp = err ? NULL : xattr_find(n, name);
	if (!err && !pp)
		err = -ENODATA;
	if (err) {
		unlock(&n->lock);
		rf_reply_err(req, -err);
	} else {
		struct xattr *x = *pp;

		reply_locked_bytes(req, n, x->data + x->nlen + 1, x->vlen, size);
	}
	node_put(n);
}

void mfs_listxattr(rf_req *req, rf_ino ino, size_t size)
{
	struct node *n = node_get(ino);
	bool root = rf_req_ctx(req)->uid == 0;
	size_t len = 0;
	char *list = NULL, *p;

	if (!n) {
		rf_reply_err(req, ENOENT);
		return;
	}
	rdlock(&n->lock);
	/* trusted.* is invisible to the unprivileged, as on local filesystems. */
	for (struct xattr *x = n->xattrs; x; x = x->next)
		if (root || xattr_ns(x->data) != XNS_TRUSTED)
			len += x->nlen + 1;
	if (len && size >= len) {
		list = malloc(len);
		if (!list) {
			unlock(&n->lock);
			node_put(n);
			rf_reply_err(req, ENOMEM);
			return;
		}
		p = list;
		for (struct xattr *x = n->xattrs; x; x = x->next) {
			if (!root && xattr_ns(x->data) == XNS_TRUSTED)
				continue;
			memcpy(p, x->data, x->nlen + 1);
			p += x->nlen + 1;
		}
	}
	reply_locked_bytes(req, n, list, len, size);
	free(list);
	node_put(n);
}

void mfs_removexattr(rf_req *req, rf_ino ino, const char *name)
{
	struct node *n = node_get(ino);
	struct xattr **pp, *x = NULL;
	struct timespec now;
	int err;

	if (!n) {
		rf_reply_err(req, ENOENT);
		return;
	}
	ts_now(&now);
	wrlock(&n->lock);
	err = strlen(name) > XATTR_NAME_MAX ? -ERANGE : xattr_allowed(req, n, name, true);
	pp = err ? NULL : xattr_find(n, name);
	if (!err && !pp)
		err = -ENODATA;
	if (!err) {
		x = *pp;
		*pp = x->next;
		n->xattr_names -= x->nlen + 1;
		n->ctime = now;
	}
	unlock(&n->lock);
	if (x)
		xattr_free(x);
	node_put(n);
	rf_reply_err(req, -err);
}
