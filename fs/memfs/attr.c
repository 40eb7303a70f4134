/*
 * memfs attributes: getattr, setattr (mode, ownership, size, times, with the permission
 * rules of each), access, and access time updates by the mount's atime mode.
 */
#include "memfs.h"

/* Is an access worth recording, by the mount's atime mode (noatime, relatime, ...)? */
bool atime_due(rf_req *req, const struct node *n)
{
	return rf_atime_due(rf_req_session(req), n->type, &n->atime, &n->mtime, &n->ctime);
}

void atime_update(struct node *n)
{
	wrlock(&n->lock);
	ts_now(&n->atime);
	unlock(&n->lock);
}

void mfs_getattr(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	bool pinned;
	struct node *n = req_node(ino, fi, &pinned);
	struct stat st;

	if (!n) {
		rf_reply_err(req, ENOENT);
		return;
	}
	rdlock(&n->lock);
	stat_fill(n, &st);
	unlock(&n->lock);
	req_node_done(n, pinned);
	rf_reply_attr(req, &st, fs.attr_timeout);
}

/* Is t no later than a moment from now (the kernel's clock and ours may differ a little)? */
static bool not_future(const struct timespec *t, const struct timespec *now)
{
	return t->tv_sec <= now->tv_sec + 1;
}

static bool near_now(const struct timespec *t, const struct timespec *now)
{
	return not_future(t, now) && t->tv_sec >= now->tv_sec - 2;
}

/*
 * utimensat(2) for a caller who does not own n: only to the present, and only with the right
 * to write. With the writeback cache the kernel keeps the times itself and sends them as
 * explicit values with ctime, for a touch (the present) and when it writes back the time of
 * the last write (the past, never the future): there an access time must be the present and
 * the others must not lie ahead. n->lock held.
 */
static int times_allowed(rf_req *req, const struct node *n, const struct stat *attr, int to_set)
{
	bool atime = (to_set & RF_SET_ATTR_ATIME) && !(to_set & RF_SET_ATTR_ATIME_NOW);
	bool mtime = (to_set & RF_SET_ATTR_MTIME) && !(to_set & RF_SET_ATTR_MTIME_NOW);
	struct timespec now;

	if (fs.writeback && (to_set & RF_SET_ATTR_CTIME)) {
		ts_now(&now);
		if ((atime && !near_now(&attr->st_atim, &now)) ||
		    (mtime && !not_future(&attr->st_mtim, &now)) ||
		    !not_future(&attr->st_ctim, &now))
			return -EPERM;
	} else if (atime || mtime) {
		return -EPERM;
	}
	return perm_locked(req, n, W_OK) ? -EACCES : 0;
}

static int setattr_locked(rf_req *req, struct node *n, const struct stat *attr, int to_set,
			  bool have_fh)
{
	const struct rf_ctx *ctx = rf_req_ctx(req);
	const int times = RF_SET_ATTR_ATIME | RF_SET_ATTR_MTIME | RF_SET_ATTR_ATIME_NOW |
			  RF_SET_ATTR_MTIME_NOW;
	bool root = ctx->uid == 0, owner = root || ctx->uid == n->uid;
	mode_t mode = n->mode;
	uid_t uid = (to_set & RF_SET_ATTR_UID) ? attr->st_uid : n->uid;
	gid_t gid = (to_set & RF_SET_ATTR_GID) ? attr->st_gid : n->gid;
	struct timespec now;
	int err;

	/* Check everything first: a refused request changes nothing. */
	if (to_set & RF_SET_ATTR_SIZE) {
		if (n->type == S_IFDIR)
			return -EISDIR;
		if (n->type != S_IFREG)
			return -EINVAL;
		if ((uint64_t)attr->st_size > MAX_FILE_SIZE)
			return -EFBIG;
		if (fs.perm_check && !have_fh && (err = perm_locked(req, n, W_OK)))
			return err;
	}
	if (to_set & RF_SET_ATTR_UID) {
		if (!root && (ctx->uid != n->uid || uid != n->uid))
			return -EPERM;
	}
	if (to_set & RF_SET_ATTR_GID) {
		if (!root && (ctx->uid != n->uid || (gid != n->gid && !in_group(req, gid))))
			return -EPERM;
	}
	if (to_set & RF_SET_ATTR_MODE) {
		mode = attr->st_mode & 07777;
		if (!owner) {
			/* The kernel kills suid/sgid of a file written by a non-owner with a
			 * chmod in the writer's name when it does not leave that to us. */
			mode_t privs = S_ISUID | S_ISGID;

			if ((mode & ~privs) != (n->mode & ~privs) || (mode & ~n->mode) ||
			    mode == n->mode || perm_locked(req, n, W_OK))
				return -EPERM;
		} else if (!root && !in_group(req, gid)) {
			mode &= ~(mode_t)S_ISGID;
		}
	}
	if (((to_set & times) || (to_set & RF_SET_ATTR_CTIME)) && !owner &&
	    (err = times_allowed(req, n, attr, to_set)))
		return err;

	ts_now(&now);
	if ((to_set & RF_SET_ATTR_SIZE) && (uint64_t)attr->st_size != n->size) {
		file_truncate(n, (uint64_t)attr->st_size);
		n->mtime = n->ctime = now;
	}
	if (to_set & RF_SET_ATTR_MODE) {
		n->mode = mode;
		n->ctime = now;
	}
	if (to_set & (RF_SET_ATTR_UID | RF_SET_ATTR_GID)) {
		n->uid = uid;
		n->gid = gid;
		n->ctime = now;
		if (n->type != S_IFDIR && (!root || (to_set & RF_SET_ATTR_KILL_SUIDGID)))
			kill_suidgid(req, n, &now);
	}
	if (to_set & RF_SET_ATTR_KILL_SUIDGID)
		kill_suidgid(req, n, &now);
	if (to_set & RF_SET_ATTR_ATIME_NOW)
		n->atime = now;
	else if (to_set & RF_SET_ATTR_ATIME)
		n->atime = attr->st_atim;
	if (to_set & RF_SET_ATTR_MTIME_NOW)
		n->mtime = now;
	else if (to_set & RF_SET_ATTR_MTIME)
		n->mtime = attr->st_mtim;
	if (to_set & times)
		n->ctime = now;
	if (to_set & RF_SET_ATTR_CTIME)
		n->ctime = attr->st_ctim; /* writeback cache: the kernel keeps the times */
	return 0;
}

void mfs_setattr(rf_req *req, rf_ino ino, struct stat *attr, int to_set, struct rf_file_info *fi)
{
	bool pinned;
	struct node *n = req_node(ino, fi, &pinned);
	struct stat st;
	int err;

	if (!n) {
		rf_reply_err(req, ENOENT);
		return;
	}
	wrlock(&n->lock);
	err = setattr_locked(req, n, attr, to_set, fi && fi->fh);
	if (!err)
		stat_fill(n, &st);
	unlock(&n->lock);
	req_node_done(n, pinned);
	if (err)
		rf_reply_err(req, -err);
	else
		rf_reply_attr(req, &st, fs.attr_timeout);
}

void mfs_access(rf_req *req, rf_ino ino, int mask)
{
	struct node *n = node_get(ino);
	int err = 0;

	if (!n) {
		rf_reply_err(req, ENOENT);
		return;
	}
	if (mask != F_OK)
		err = perm_node(req, n, mask);
	node_put(n);
	rf_reply_err(req, -err);
}
