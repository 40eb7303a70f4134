/*
 * memfs permission rules: who may read, write or search a node, sticky directories, and the
 * set-user/group-ID bits that writes and ownership changes clear. The kernel applies these
 * itself under default_permissions (the default); memfs applies them when mounted with
 * no_default_permissions.
 */
#include "memfs.h"
#include "../common/caller.h"

/* Supplementary groups only when /proc shows the request's own ids (fs/common/caller.c). */
bool in_group(rf_req *req, gid_t gid)
{
	const struct rf_ctx *ctx = rf_req_ctx(req);
	gid_t small[64], *list;
	int n;
	bool found = false;

	if (ctx->gid == gid)
		return true;
	n = caller_groups(ctx, small, 64, &list);
	for (int i = 0; i < n; i++) {
		if (list[i] == gid) {
			found = true;
			break;
		}
	}
	if (list != small)
		free(list);
	return found;
}

/* May the caller access an inode with these attributes for mask (R_OK|W_OK|X_OK)? Root may
 * read and write anything and execute what has an x bit (directories are always searchable).
 * No request means the administrator's control socket, which may do anything. */
int perm_vals(rf_req *req, mode_t type, mode_t mode, uid_t uid, gid_t gid, int mask)
{
	const struct rf_ctx *ctx;
	unsigned int bits;

	if (!req)
		return 0;
	ctx = rf_req_ctx(req);
	mask &= R_OK | W_OK | X_OK;
	if (ctx->uid == 0) {
		if (!(mask & X_OK) || type == S_IFDIR || (mode & 0111))
			return 0;
		return -EACCES;
	}
	if (ctx->uid == uid) {
		bits = (mode >> 6) & 7;
	} else if ((((mode >> 3) ^ mode) & (unsigned int)mask) == 0) {
		bits = mode & 7; /* group and other agree: spare the group lookup */
	} else {
		bits = in_group(req, gid) ? (mode >> 3) & 7 : mode & 7;
	}
	return (bits & (unsigned int)mask) == (unsigned int)mask ? 0 : -EACCES;
}

/* Same, for a node whose lock the caller holds. */
int perm_locked(rf_req *req, const struct node *n, int mask)
{
	return perm_vals(req, n->type, n->mode, n->uid, n->gid, mask);
}

int perm_node(rf_req *req, struct node *n, int mask)
{
	int err;

	rdlock(&n->lock);
	err = perm_locked(req, n, mask);
	unlock(&n->lock);
	return err;
}

/* Sticky directories: only the owner of the entry or of the directory (or root) removes it. */
bool sticky_ok(rf_req *req, mode_t dir_mode, uid_t dir_uid, uid_t victim_uid)
{
	uid_t uid = req ? rf_req_ctx(req)->uid : 0;

	return !(dir_mode & S_ISVTX) || uid == 0 || uid == dir_uid || uid == victim_uid;
}

/* Drop set-user-ID, and set-group-ID when it means "setgid" (group exec set) or the caller is
 * outside the file's group and not root, as a local filesystem does on write, truncate and
 * chown by a caller without CAP_FSETID. */
void kill_suidgid(rf_req *req, struct node *n, const struct timespec *now)
{
	mode_t m = n->mode & ~(mode_t)S_ISUID;

	if (n->type == S_IFDIR)
		return;
	if ((m & S_ISGID) &&
	    ((m & S_IXGRP) || (req && rf_req_ctx(req)->uid != 0 && !in_group(req, n->gid))))
		m &= ~(mode_t)S_ISGID;
	if (m != n->mode) {
		n->mode = m;
		n->ctime = *now;
	}
}
