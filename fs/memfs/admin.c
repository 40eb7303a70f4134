/*
 * memfs administrative changes: edits made behind the kernel's back (the control socket,
 * ctl.c, asks for them), each followed by the notification that tells the kernel which of
 * its caches went stale: cached pages (or the new bytes themselves), attributes, entries.
 *
 * Notifications are sent with no lock held and never from a request handler: the kernel may
 * answer one by sending requests of its own and waiting for their replies (invalidating
 * dirty pages writes them back first, a dropped entry waits for the directory's lock held
 * by a request in flight), so the thread sending it must not be one those replies need.
 * The control thread is such a thread.
 */
#include "memfs.h"

/*
 * The pinned node at path (components separated by '/', relative to the root; empty ones are
 * skipped). With last set, stop at the parent of the final component, which *last then
 * points to inside path (the walk cuts path into its components).
 */
static int walk(char *path, struct node **out, char **last)
{
	struct node *cur = node_get(RF_ROOT_INO), *next;
	char *save = NULL, *comp = strtok_r(path, "/", &save);
	int err = 0;

	if (!cur)
		return -ENOENT;
	while (comp) {
		char *peek = strtok_r(NULL, "/", &save);
		size_t len = strlen(comp);
		struct dent *e;

		if (is_dot_or_dotdot(comp, len)) {
			err = -EINVAL;
			break;
		}
		if (len > NAME_LEN_MAX) {
			err = -ENAMETOOLONG;
			break;
		}
		if (last && !peek) {
			*last = comp;
			break;
		}
		if (cur->type != S_IFDIR) {
			err = -ENOTDIR;
			break;
		}
		rdlock(&cur->dir->lock);
		e = dir_find(cur->dir, comp, len, name_hash(comp, len));
		next = e ? e->node : NULL;
		if (next)
			node_ref(next, 1); /* linked, so counted: never zero here */
		unlock(&cur->dir->lock);
		node_put(cur);
		if (!next)
			return -ENOENT;
		cur = next;
		comp = peek;
	}
	if (!err && last && !*last)
		err = -EINVAL; /* the root has no name to remove */
	if (err) {
		node_put(cur);
		return err;
	}
	*out = cur;
	return 0;
}

/* A notification about something the kernel does not hold is not an error: it caches
 * nothing that could be stale. */
static int notified(int ret)
{
	return ret == -ENOENT ? 0 : ret;
}

int admin_write(rf_session *se, char *path, uint64_t off, const void *data, size_t len,
		enum admin_notify how)
{
	struct node *n;
	struct timespec now;
	size_t done = 0;
	int err = walk(path, &n, NULL), ret;

	if (err)
		return err;
	if (n->type != S_IFREG)
		err = n->type == S_IFDIR ? -EISDIR : -EINVAL;
	else if (off > MAX_FILE_SIZE - len)
		err = -EFBIG;
	if (!err && len) {
		ts_now(&now);
		wrlock(&n->lock);
		err = file_write(n, data, off, len, &done);
		if (done)
			n->mtime = n->ctime = now;
		unlock(&n->lock);
	}
	if (done && how == ADMIN_NOTIFY_STORE) {
		/* The new bytes go straight into the page cache (growing the size the kernel
		 * knows if they reach past it); the cached attributes are left alone. */
		ret = notified(rf_notify_store(se, n->ino, (off_t)off, data, done));
		err = err ? err : ret;
	} else if (done && how != ADMIN_NOTIFY_NONE) {
		ret = notified(rf_notify_inval_inode(se, n->ino, (off_t)off, (off_t)done));
		err = err ? err : ret;
	}
	node_put(n);
	return err;
}

int admin_touch(rf_session *se, char *path, const struct timespec *mtime, enum admin_notify how)
{
	struct node *n;
	struct timespec now;
	int err = walk(path, &n, NULL);

	if (err)
		return err;
	ts_now(&now);
	wrlock(&n->lock);
	n->mtime = mtime ? *mtime : now;
	n->ctime = now;
	unlock(&n->lock);
	/* A negative offset invalidates the attributes only, not the cached pages. */
	if (how != ADMIN_NOTIFY_NONE)
		err = notified(rf_notify_inval_inode(se, n->ino, -1, 0));
	node_put(n);
	return err;
}

int admin_remove(rf_session *se, char *path, bool isdir, enum admin_notify how)
{
	struct node *p;
	char *name = NULL;
	uint64_t child = 0;
	int err = walk(path, &p, &name);

	if (err)
		return err;
	err = remove_entry(NULL, p, name, isdir, &child);
	if (!err && how == ADMIN_NOTIFY_INVAL)
		err = notified(rf_notify_inval_entry(se, p->ino, name, strlen(name)));
	else if (!err && how != ADMIN_NOTIFY_NONE)
		err = notified(rf_notify_delete(se, p->ino, child, name, strlen(name)));
	node_put(p);
	return err;
}
