/*
 * memfs rename (plain, RENAME_NOREPLACE, RENAME_EXCHANGE). A rename between two directories
 * takes the filesystem's rename_lock, which freezes every directory's parent link, so it can
 * check that no directory moves into its own subtree and lock the two directories ancestor
 * first, the order every other path nests directory locks in.
 */
#include "memfs.h"

/* Directories the tree walk found above a directory (itself included), up to the root. */
struct ancestry {
	uint64_t *ino;
	size_t n, cap;
	uint64_t inl[32];
};

static bool ancestry_has(const struct ancestry *a, uint64_t ino)
{
	for (size_t i = 0; i < a->n; i++)
		if (a->ino[i] == ino)
			return true;
	return false;
}

static void ancestry_free(struct ancestry *a)
{
	if (a->ino != a->inl)
		free(a->ino);
}

/* Under rename_lock, parent links hold still. A removed directory's chain may stop short; the
 * rename then fails on it anyway. */
static int ancestry_build(struct node *d, struct ancestry *a)
{
	struct node *cur = d;

	a->ino = a->inl;
	a->cap = sizeof(a->inl) / sizeof(a->inl[0]);
	a->n = 0;
	for (;;) {
		uint64_t parent;

		if (a->n == a->cap) {
			uint64_t *p = malloc(a->cap * 2 * sizeof(*p));

			if (!p) {
				if (cur != d)
					node_put(cur);
				ancestry_free(a);
				return -ENOMEM;
			}
			memcpy(p, a->ino, a->n * sizeof(*p));
			ancestry_free(a);
			a->ino = p;
			a->cap *= 2;
		}
		a->ino[a->n++] = cur->ino;
		parent = atomic_load(&cur->dir->parent);
		if (cur != d)
			node_put(cur);
		if (parent == a->ino[a->n - 1] || ancestry_has(a, parent))
			return 0; /* the root (its own parent) */
		cur = node_get(parent);
		if (!cur)
			return 0;
		if (cur->type != S_IFDIR) {
			node_put(cur);
			return 0;
		}
	}
}

/* Apply a change to a directory's link count, times and size after a rename. */
static void dir_touch(struct node *d, int64_t dlink, int64_t dsize, const struct timespec *now)
{
	wrlock(&d->lock);
	d->nlink = (uint64_t)((int64_t)d->nlink + dlink);
	d->size = (uint64_t)((int64_t)d->size + dsize);
	d->mtime = d->ctime = *now;
	unlock(&d->lock);
	if (dlink > 0)
		node_ref(d, (uint64_t)dlink);
	else if (dlink < 0)
		node_unref(d, (uint64_t)-dlink); /* pinned by the caller: never the last */
}

static void snapshot(struct node *n, mode_t *mode, uid_t *uid, gid_t *gid)
{
	rdlock(&n->lock);
	*mode = n->mode;
	*uid = n->uid;
	*gid = n->gid;
	unlock(&n->lock);
}

static int do_rename(rf_req *req, struct node *p1, const char *name, struct node *p2,
		     const char *newname, unsigned int flags)
{
	size_t len1 = strlen(name), len2 = strlen(newname);
	bool cross = p1 != p2, exchange = flags & RENAME_EXCHANGE;
	struct ancestry a1 = {0}, a2 = {0};
	struct node *first = p1, *second = NULL, *s, *t = NULL;
	struct dent *se, *te, *ne = NULL;
	bool tlocked = false;
	mode_t m1, m2, ms, mt = 0;
	uid_t u1, u2, us, ut = 0;
	gid_t g1, g2, gs, gt = 0;
	int64_t dl1 = 0, dl2 = 0, ds1 = 0, ds2 = 0;
	uint64_t tdrop = 0;
	struct timespec now;
	int err = 0;

	if ((flags & ~(unsigned int)(RENAME_NOREPLACE | RENAME_EXCHANGE)) ||
	    ((flags & RENAME_NOREPLACE) && exchange))
		return -EINVAL;
	if (p1->type != S_IFDIR || p2->type != S_IFDIR)
		return -ENOTDIR;
	if (len1 > NAME_LEN_MAX || len2 > NAME_LEN_MAX)
		return -ENAMETOOLONG;
	if (is_dot_or_dotdot(name, len1) || is_dot_or_dotdot(newname, len2))
		return -EBUSY;

	if (cross) {
		pthread_mutex_lock(&fs.rename_lock);
		err = ancestry_build(p1, &a1);
		if (!err) {
			err = ancestry_build(p2, &a2);
			if (err)
				ancestry_free(&a1);
		}
		if (err) {
			pthread_mutex_unlock(&fs.rename_lock);
			return err;
		}
		/* Ancestor first, like every other path that nests directory locks. */
		if (ancestry_has(&a2, p1->ino))
			first = p1;
		else if (ancestry_has(&a1, p2->ino))
			first = p2;
		else
			first = p1->ino < p2->ino ? p1 : p2;
		second = first == p1 ? p2 : p1;
		wrlock(&first->dir->lock);
		wrlock(&second->dir->lock);
	} else {
		wrlock(&p1->dir->lock);
	}

	if (p1->dir->removed || p2->dir->removed) {
		err = -ENOENT;
		goto out;
	}
	se = dir_find(p1->dir, name, len1, name_hash(name, len1));
	if (!se) {
		err = -ENOENT;
		goto out;
	}
	te = dir_find(p2->dir, newname, len2, name_hash(newname, len2));
	s = se->node;
	t = te ? te->node : NULL;
	if (te && (flags & RENAME_NOREPLACE)) {
		err = -EEXIST;
		goto out;
	}
	if (!te && exchange) {
		err = -ENOENT;
		goto out;
	}
	if (se == te || s == t)
		goto out; /* same entry, or two links to one file: nothing to do */
	if (cross && s->type == S_IFDIR && ancestry_has(&a2, s->ino)) {
		err = -EINVAL; /* into its own subtree */
		goto out;
	}
	if (cross && t && t->type == S_IFDIR && ancestry_has(&a1, t->ino)) {
		err = exchange ? -EINVAL : -ENOTEMPTY;
		goto out;
	}
	/* In the order Linux checks: the source directory's permission and sticky bit, the target
	 * directory's and the target's, the target's type, a moving directory's "..", and last
	 * whether a directory replaced is empty. */
	snapshot(p1, &m1, &u1, &g1);
	snapshot(p2, &m2, &u2, &g2);
	snapshot(s, &ms, &us, &gs);
	if (t)
		snapshot(t, &mt, &ut, &gt);
	if (fs.perm_check)
		err = perm_vals(req, S_IFDIR, m1, u1, g1, W_OK | X_OK);
	if (!err && !sticky_ok(req, m1, u1, us))
		err = -EPERM;
	if (!err && fs.perm_check && cross)
		err = perm_vals(req, S_IFDIR, m2, u2, g2, W_OK | X_OK);
	if (!err && t && !sticky_ok(req, m2, u2, ut))
		err = -EPERM;
	if (!err && t && !exchange) {
		if (s->type == S_IFDIR && t->type != S_IFDIR)
			err = -ENOTDIR;
		else if (s->type != S_IFDIR && t->type == S_IFDIR)
			err = -EISDIR;
	}
	/* A directory changing parents rewrites its "..". */
	if (!err && fs.perm_check && cross && s->type == S_IFDIR)
		err = perm_vals(req, S_IFDIR, ms, us, gs, W_OK);
	if (!err && fs.perm_check && cross && exchange && t->type == S_IFDIR)
		err = perm_vals(req, S_IFDIR, mt, ut, gt, W_OK);
	if (err)
		goto out;
	if (t && !exchange && t->type == S_IFDIR) {
		wrlock(&t->dir->lock);
		tlocked = true;
		if (t->dir->count) {
			err = -ENOTEMPTY;
			goto out;
		}
	}
	if (!te) {
		ne = dent_alloc(newname, len2, name_hash(newname, len2), &err);
		if (ne && dir_reserve(p2->dir))
			err = -ENOMEM;
		if (err) {
			dent_free(ne);
			goto out;
		}
	}

	/* Committed: nothing below fails. */
	ts_now(&now);
	if (exchange) {
		se->node = t;
		te->node = s;
		if (cross && s->type == S_IFDIR) {
			atomic_store(&s->dir->parent, p2->ino);
			dl1--;
			dl2++;
		}
		if (cross && t->type == S_IFDIR) {
			atomic_store(&t->dir->parent, p1->ino);
			dl2--;
			dl1++;
		}
	} else {
		if (te) {
			te->node = s; /* the entry keeps its id: a listing sees it once */
			if (t->type == S_IFDIR) {
				t->dir->removed = true;
				dl2--;
			}
		} else {
			ne->node = s;
			dir_insert(p2->dir, ne);
			ds2 += DIRENT_BOGO;
		}
		dir_remove(p1->dir, se);
		dent_free(se);
		ds1 -= DIRENT_BOGO;
		if (cross && s->type == S_IFDIR) {
			atomic_store(&s->dir->parent, p2->ino);
			dl1--;
			dl2++;
		}
	}
	if (!cross) {
		dl1 += dl2;
		ds1 += ds2;
	}
	dir_touch(p1, dl1, ds1, &now);
	if (cross)
		dir_touch(p2, dl2, ds2, &now);
	wrlock(&s->lock);
	s->ctime = now;
	unlock(&s->lock);
	if (t) {
		wrlock(&t->lock);
		if (!exchange) {
			tdrop = t->type == S_IFDIR ? t->nlink : 1;
			t->nlink -= tdrop;
		}
		t->ctime = now;
		unlock(&t->lock);
	}

out:
	if (tlocked)
		unlock(&t->dir->lock);
	if (cross) {
		unlock(&second->dir->lock);
		unlock(&first->dir->lock);
		pthread_mutex_unlock(&fs.rename_lock);
		ancestry_free(&a1);
		ancestry_free(&a2);
	} else {
		unlock(&p1->dir->lock);
	}
	if (tdrop)
		node_unref(t, tdrop);
	return err;
}

void mfs_rename(rf_req *req, rf_ino parent, const char *name, rf_ino newparent, const char *newname,
		unsigned int flags)
{
	struct node *p1 = node_get(parent), *p2 = node_get(newparent);
	int err = -ENOENT;

	if (p1 && p2)
		err = do_rename(req, p1, name, p2, newname, flags);
	if (p1)
		node_put(p1);
	if (p2)
		node_put(p2);
	rf_reply_err(req, -err);
}
