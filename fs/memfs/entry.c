/*
 * memfs names: lookup, creating nodes of every type (mknod, mkdir, symlink, create,
 * O_TMPFILE), hard links, readlink, and removing names (unlink, rmdir).
 */
#include "memfs.h"

void mfs_lookup(rf_req *req, rf_ino parent, const char *name)
{
	struct rf_entry_param e;
	struct node *p = node_get(parent), *c = NULL;
	size_t len = strlen(name);
	int err = 0;

	if (!p) {
		rf_reply_err(req, ENOENT);
		return;
	}
	if (p->type != S_IFDIR)
		err = -ENOTDIR;
	else if (len > NAME_LEN_MAX)
		err = -ENAMETOOLONG;
	else if (fs.perm_check)
		err = perm_node(req, p, X_OK);
	if (err)
		goto out;

	if (is_dot_or_dotdot(name, len)) {
		/* ".." of the root is the root: pinned twice, put once below. */
		c = len == 1 ? p : node_get(atomic_load(&p->dir->parent));
		if (!c) {
			err = -ENOENT;
			goto out;
		}
		rdlock(&c->lock);
		entry_fill(&e, c);
		unlock(&c->lock);
		node_add_lookup(c);
		if (len == 2)
			node_put(c);
	} else {
		struct dent *d;

		rdlock(&p->dir->lock);
		d = dir_find(p->dir, name, len, name_hash(name, len));
		if (d) {
			c = d->node;
			rdlock(&c->lock);
			entry_fill(&e, c);
			unlock(&c->lock);
			/* Counted before the reply: a forget may follow it at once. */
			node_add_lookup(c);
		}
		unlock(&p->dir->lock);
	}
out:
	node_put(p);
	if (err) {
		rf_reply_err(req, -err);
	} else if (c) {
		rf_reply_entry(req, &e);
	} else if (fs.neg_timeout > 0) {
		/* Only the kernel changes this tree, so absent names may be cached too. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs.neg_timeout;
		rf_reply_entry(req, &e);
	} else {
		rf_reply_err(req, ENOENT);
	}
}

void mfs_readlink(rf_req *req, rf_ino ino)
{
	struct node *n = node_get(ino);

	if (!n) {
		rf_reply_err(req, ENOENT);
		return;
	}
	if (n->type != S_IFLNK) {
		rf_reply_err(req, EINVAL);
	} else {
		bool touch;

		rdlock(&n->lock);
		touch = atime_due(req, n);
		unlock(&n->lock);
		if (touch)
			atime_update(n);
		rf_reply_readlink(req, n->target); /* immutable, and n is pinned */
	}
	node_put(n);
}

/*
 * Create name in p: a node of type with mode (before umask), a device number or a symlink
 * target. With fi set (create) the file is also opened, and an existing regular file is
 * opened instead unless O_EXCL. Fills e with the new entry, counted as one lookup.
 */
static int make_node(rf_req *req, struct node *p, const char *name, mode_t type, mode_t mode,
		     dev_t rdev, const char *target, struct rf_file_info *fi,
		     struct rf_entry_param *e)
{
	const struct rf_ctx *ctx = rf_req_ctx(req);
	size_t len = strlen(name);
	uint64_t hash = name_hash(name, len);
	struct node *n = NULL;
	struct dent *de = NULL, *old;
	struct dir *d;
	struct timespec now;
	int err = 0;

	if (p->type != S_IFDIR)
		return -ENOTDIR;
	if (len > NAME_LEN_MAX)
		return -ENAMETOOLONG;
	if (target && strlen(target) > SYMLINK_MAX)
		return -ENAMETOOLONG;
	d = p->dir;
	/* Allocate outside the directory lock: creates in one directory queue on it. */
	n = node_alloc(type, target, &err);
	if (!n)
		return err;
	de = dent_alloc(name, len, hash, &err);
	if (!de)
		goto fail_free;

	wrlock(&d->lock);
	if (d->removed) {
		err = -ENOENT;
		goto fail_unlock;
	}
	old = dir_find(d, name, len, hash);
	if (old) {
		struct node *c = old->node;

		err = -EEXIST;
		if (fi && !(fi->flags & O_EXCL)) {
			/* create on a name that exists: open(2) without O_EXCL opens it. */
			err = c->type == S_IFDIR ? -EISDIR : open_node(req, c, fi);
			if (!err) {
				rdlock(&c->lock);
				entry_fill(e, c);
				unlock(&c->lock);
				node_add_lookup(c);
			}
		}
		goto fail_unlock;
	}
	if (dir_reserve(d)) {
		err = -ENOMEM;
		goto fail_unlock;
	}

	ts_now(&now);
	wrlock(&p->lock);
	if (fs.perm_check && (err = perm_locked(req, p, W_OK | X_OK))) {
		unlock(&p->lock);
		goto fail_unlock;
	}
	n->uid = ctx->uid;
	n->gid = (p->mode & S_ISGID) ? p->gid : ctx->gid;
	if (type == S_IFLNK) {
		n->mode = 0777;
	} else {
		n->mode = mode & ~ctx->umask & 07777;
		if (type == S_IFDIR && (p->mode & S_ISGID))
			n->mode |= S_ISGID;
		else if (type != S_IFDIR && (p->mode & S_ISGID) &&
			 (n->mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) && ctx->uid != 0 &&
			 !in_group(req, p->gid))
			n->mode &= ~(mode_t)S_ISGID;
	}
	if (type == S_IFCHR || type == S_IFBLK)
		n->rdev = rdev;
	n->nlink = type == S_IFDIR ? 2 : 1;
	if (type == S_IFDIR) {
		n->size = 2 * DIRENT_BOGO;
		atomic_init(&n->dir->parent, p->ino);
	}
	n->atime = n->mtime = n->ctime = now;
	/* Links, the lookup the reply hands out, and the handle of a create. */
	atomic_init(&n->ref, n->nlink + 1 + (fi ? 1 : 0));
	atomic_init(&n->nlookup, 1);
	if (fi) {
		fi->fh = (uint64_t)(uintptr_t)n;
		open_flags(fi);
	}
	entry_fill(e, n);

	p->mtime = p->ctime = now;
	p->size += DIRENT_BOGO;
	if (type == S_IFDIR) {
		p->nlink++;
		node_ref(p, 1);
	}
	unlock(&p->lock);

	table_insert(n);
	de->node = n;
	dir_insert(d, de);
	unlock(&d->lock);
	return 0;

fail_unlock:
	unlock(&d->lock);
fail_free:
	dent_free(de);
	node_free(n);
	return err;
}

static void reply_made(rf_req *req, int err, const struct rf_entry_param *e,
		       const struct rf_file_info *fi)
{
	if (err)
		rf_reply_err(req, -err);
	else if (fi)
		rf_reply_create(req, e, fi);
	else
		rf_reply_entry(req, e);
}

void mfs_mknod(rf_req *req, rf_ino parent, const char *name, mode_t mode, dev_t rdev)
{
	struct rf_entry_param e;
	struct node *p = node_get(parent);
	mode_t type = mode & S_IFMT;
	int err;

	if (!p) {
		rf_reply_err(req, ENOENT);
		return;
	}
	if (type == 0)
		type = S_IFREG;
	if (type != S_IFREG && type != S_IFCHR && type != S_IFBLK && type != S_IFIFO &&
	    type != S_IFSOCK)
		err = type == S_IFDIR ? -EPERM : -EINVAL;
	else
		err = make_node(req, p, name, type, mode, rdev, NULL, NULL, &e);
	node_put(p);
	reply_made(req, err, &e, NULL);
}

void mfs_mkdir(rf_req *req, rf_ino parent, const char *name, mode_t mode)
{
	struct rf_entry_param e;
	struct node *p = node_get(parent);
	int err;

	if (!p) {
		rf_reply_err(req, ENOENT);
		return;
	}
	err = make_node(req, p, name, S_IFDIR, mode, 0, NULL, NULL, &e);
	node_put(p);
	reply_made(req, err, &e, NULL);
}

void mfs_symlink(rf_req *req, const char *link, rf_ino parent, const char *name)
{
	struct rf_entry_param e;
	struct node *p = node_get(parent);
	int err;

	if (!p) {
		rf_reply_err(req, ENOENT);
		return;
	}
	err = make_node(req, p, name, S_IFLNK, 0777, 0, link, NULL, &e);
	node_put(p);
	reply_made(req, err, &e, NULL);
}

void mfs_create(rf_req *req, rf_ino parent, const char *name, mode_t mode, struct rf_file_info *fi)
{
	struct rf_entry_param e;
	struct node *p = node_get(parent);
	int err;

	if (!p) {
		rf_reply_err(req, ENOENT);
		return;
	}
	err = make_node(req, p, name, S_IFREG, mode, 0, NULL, fi, &e);
	node_put(p);
	reply_made(req, err, &e, fi);
}

void mfs_tmpfile(rf_req *req, rf_ino parent, mode_t mode, struct rf_file_info *fi)
{
	const struct rf_ctx *ctx = rf_req_ctx(req);
	struct rf_entry_param e;
	struct node *p = node_get(parent), *n = NULL;
	struct timespec now;
	int err = 0;

	if (!p) {
		rf_reply_err(req, ENOENT);
		return;
	}
	if (p->type != S_IFDIR) {
		err = -ENOTDIR;
		goto out;
	}
	n = node_alloc(S_IFREG, NULL, &err);
	if (!n)
		goto out;
	rdlock(&p->dir->lock);
	rdlock(&p->lock);
	if (p->dir->removed)
		err = -ENOENT;
	else if (fs.perm_check)
		err = perm_locked(req, p, W_OK | X_OK);
	if (!err) {
		n->uid = ctx->uid;
		n->gid = (p->mode & S_ISGID) ? p->gid : ctx->gid;
		n->mode = mode & ~ctx->umask & 07777;
		if ((p->mode & S_ISGID) && (n->mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP) &&
		    ctx->uid != 0 && !in_group(req, p->gid))
			n->mode &= ~(mode_t)S_ISGID;
	}
	unlock(&p->lock);
	unlock(&p->dir->lock);
	if (err) {
		node_free(n);
		goto out;
	}
	ts_now(&now);
	n->nlink = 0;
	n->linkable = true;
	n->atime = n->mtime = n->ctime = now;
	atomic_init(&n->ref, 2); /* the lookup and the handle */
	atomic_init(&n->nlookup, 1);
	entry_fill(&e, n);
	fi->fh = (uint64_t)(uintptr_t)n;
	open_flags(fi);
	table_insert(n);
out:
	node_put(p);
	reply_made(req, err, &e, fi);
}

void mfs_link(rf_req *req, rf_ino ino, rf_ino newparent, const char *newname)
{
	struct rf_entry_param e;
	struct node *n = node_get(ino), *p = node_get(newparent);
	size_t len = strlen(newname);
	uint64_t hash = name_hash(newname, len);
	struct dent *de = NULL;
	struct timespec now;
	int err = 0;

	if (!n || !p) {
		err = -ENOENT;
		goto out;
	}
	if (p->type != S_IFDIR) {
		err = -ENOTDIR;
		goto out;
	}
	if (n->type == S_IFDIR) {
		err = -EPERM;
		goto out;
	}
	if (len > NAME_LEN_MAX) {
		err = -ENAMETOOLONG;
		goto out;
	}
	de = dent_alloc(newname, len, hash, &err);
	if (!de)
		goto out;
	wrlock(&p->dir->lock);
	if (p->dir->removed)
		err = -ENOENT;
	else if (dir_find(p->dir, newname, len, hash))
		err = -EEXIST;
	else if (dir_reserve(p->dir))
		err = -ENOMEM;
	else if (fs.perm_check)
		err = perm_node(req, p, W_OK | X_OK);
	if (err) {
		unlock(&p->dir->lock);
		goto out;
	}
	ts_now(&now);
	wrlock(&n->lock);
	if (n->nlink == 0 && !n->linkable)
		err = -ENOENT;
	else if (n->nlink >= FILE_LINK_MAX)
		err = -EMLINK;
	if (!err) {
		n->nlink++;
		n->linkable = false;
		n->ctime = now;
		node_ref(n, 1);
		entry_fill(&e, n);
		node_add_lookup(n);
	}
	unlock(&n->lock);
	if (!err) {
		de->node = n;
		dir_insert(p->dir, de);
		de = NULL;
		wrlock(&p->lock);
		p->mtime = p->ctime = now;
		p->size += DIRENT_BOGO;
		unlock(&p->lock);
	}
	unlock(&p->dir->lock);
out:
	dent_free(de);
	if (n)
		node_put(n);
	if (p)
		node_put(p);
	if (err)
		rf_reply_err(req, -err);
	else
		rf_reply_entry(req, &e);
}

/* unlink and rmdir; *child (if not NULL) gets the ino the name led to. */
int remove_entry(rf_req *req, struct node *p, const char *name, bool isdir, uint64_t *child)
{
	size_t len = strlen(name);
	struct dent *e;
	struct node *c;
	struct timespec now;
	uid_t cuid;
	uint64_t drop;
	int err = 0;

	if (p->type != S_IFDIR)
		return -ENOTDIR;
	if (len > NAME_LEN_MAX)
		return -ENAMETOOLONG;
	if (is_dot_or_dotdot(name, len))
		return !isdir ? -EISDIR : len == 1 ? -EINVAL : -ENOTEMPTY;

	wrlock(&p->dir->lock);
	e = dir_find(p->dir, name, len, name_hash(name, len));
	if (!e) {
		unlock(&p->dir->lock);
		return -ENOENT;
	}
	c = e->node;
	if (child)
		*child = c->ino;
	rdlock(&c->lock);
	cuid = c->uid;
	unlock(&c->lock);
	/* In the order Linux checks: the directory's permission, the sticky bit, the type of the
	 * victim, and last whether a directory is empty. */
	rdlock(&p->lock);
	if (fs.perm_check)
		err = perm_locked(req, p, W_OK | X_OK);
	if (!err && !sticky_ok(req, p->mode, p->uid, cuid))
		err = -EPERM;
	unlock(&p->lock);
	if (!err && isdir && c->type != S_IFDIR)
		err = -ENOTDIR;
	else if (!err && !isdir && c->type == S_IFDIR)
		err = -EISDIR;
	if (!err && isdir) {
		/* Held to the end: no entry may appear in c once it was found empty. */
		wrlock(&c->dir->lock);
		if (c->dir->count) {
			err = -ENOTEMPTY;
			unlock(&c->dir->lock);
		}
	}
	if (err) {
		unlock(&p->dir->lock);
		return err;
	}

	ts_now(&now);
	wrlock(&p->lock);
	p->mtime = p->ctime = now;
	p->size -= DIRENT_BOGO;
	if (isdir)
		p->nlink--;
	unlock(&p->lock);

	dir_remove(p->dir, e);
	dent_free(e);
	if (isdir) {
		c->dir->removed = true;
		unlock(&c->dir->lock);
	}
	wrlock(&c->lock);
	drop = isdir ? c->nlink : 1;
	c->nlink -= drop;
	c->ctime = now;
	unlock(&c->lock);
	unlock(&p->dir->lock);
	node_unref(c, drop);
	if (isdir)
		node_unref(p, 1); /* p is pinned by the caller: never the last */
	return 0;
}

void mfs_unlink(rf_req *req, rf_ino parent, const char *name)
{
	struct node *p = node_get(parent);
	int err;

	if (!p) {
		rf_reply_err(req, ENOENT);
		return;
	}
	err = remove_entry(req, p, name, false, NULL);
	node_put(p);
	rf_reply_err(req, -err);
}

void mfs_rmdir(rf_req *req, rf_ino parent, const char *name)
{
	struct node *p = node_get(parent);
	int err;

	if (!p) {
		rf_reply_err(req, ENOENT);
		return;
	}
	err = remove_entry(req, p, name, true, NULL);
	node_put(p);
	rf_reply_err(req, -err);
}
