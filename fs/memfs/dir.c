/*
 * memfs directories: the entry table of a directory (a hash table of names plus an array in
 * creation order whose ids are the readdir offsets), and opendir/readdir/readdirplus on it.
 */
#include "memfs.h"

uint64_t name_hash(const char *s, size_t len)
{
	uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
	uint64_t w;

	while (len >= 8) {
		memcpy(&w, s, 8);
		h = (h ^ w) * 0xbf58476d1ce4e5b9ull;
		h ^= h >> 31;
		s += 8;
		len -= 8;
	}
	w = 0;
	memcpy(&w, s, len);
	h = (h ^ w) * 0x94d049bb133111ebull;
	h ^= h >> 29;
	h *= 0xbf58476d1ce4e5b9ull;
	return h ^ (h >> 32);
}

/* What a name costs against the capacity: a user who may create names could otherwise fill
 * the daemon's memory with links alone. */
static uint64_t dent_cost(size_t len)
{
	return sizeof(struct dent) + len + 1;
}

/* A directory entry, charged to the capacity; NULL with *err set (-ENOSPC or -ENOMEM). */
struct dent *dent_alloc(const char *name, size_t len, uint64_t hash, int *err)
{
	struct dent *e;

	*err = space_charge(dent_cost(len));
	if (*err)
		return NULL;
	e = malloc(sizeof(*e) + len + 1);
	if (!e) {
		space_release(dent_cost(len));
		*err = -ENOMEM;
		return NULL;
	}
	memset(e, 0, sizeof(*e));
	e->hash = hash;
	e->len = (uint16_t)len;
	memcpy(e->name, name, len + 1);
	return e;
}

void dent_free(struct dent *e)
{
	if (e) {
		space_release(dent_cost(e->len));
		free(e);
	}
}

struct dent *dir_find(const struct dir *d, const char *name, size_t len, uint64_t hash)
{
	struct dent *e;

	if (!d->nbuckets)
		return NULL;
	for (e = d->buckets[hash & (d->nbuckets - 1)]; e; e = e->hnext)
		if (e->hash == hash && e->len == len && !memcmp(e->name, name, len))
			return e;
	return NULL;
}

static void dir_compact(struct dir *d)
{
	uint64_t j = 0;

	for (uint64_t i = 0; i < d->nslots; i++) {
		if (!d->slots[i].e)
			continue;
		d->slots[j] = d->slots[i];
		d->slots[j].e->slot = j;
		j++;
	}
	d->nslots = j;
}

/* Make room for one more entry so dir_insert() cannot fail. */
int dir_reserve(struct dir *d)
{
	if (!d->nbuckets) {
		d->buckets = calloc(8, sizeof(*d->buckets));
		if (!d->buckets)
			return -ENOMEM;
		d->nbuckets = 8;
	}
	if (d->nslots < d->capslots)
		return 0;
	if (d->nslots - d->count >= d->nslots / 4 && d->nslots >= 16) {
		dir_compact(d);
		return 0;
	}
	uint64_t cap = d->capslots ? d->capslots * 2 : 8;
	struct dslot *s = realloc(d->slots, cap * sizeof(*s));

	if (!s)
		return -ENOMEM;
	d->slots = s;
	d->capslots = cap;
	return 0;
}

static void dir_rehash(struct dir *d)
{
	uint64_t nb = d->nbuckets * 2;
	struct dent **b = calloc(nb, sizeof(*b));

	if (!b)
		return; /* longer chains, still correct */
	for (uint64_t i = 0; i < d->nbuckets; i++) {
		struct dent *e = d->buckets[i], *next;

		for (; e; e = next) {
			next = e->hnext;
			e->hnext = b[e->hash & (nb - 1)];
			b[e->hash & (nb - 1)] = e;
		}
	}
	free(d->buckets);
	d->buckets = b;
	d->nbuckets = nb;
}

/* Add e (after dir_reserve()) with the next id of the directory. */
void dir_insert(struct dir *d, struct dent *e)
{
	uint64_t b = e->hash & (d->nbuckets - 1);

	e->id = d->next_id++;
	e->slot = d->nslots;
	d->slots[d->nslots].id = e->id;
	d->slots[d->nslots].e = e;
	d->nslots++;
	e->hnext = d->buckets[b];
	d->buckets[b] = e;
	d->count++;
	if (d->count > d->nbuckets)
		dir_rehash(d);
}

/* Unlink e from the directory (the caller frees or reuses it). */
void dir_remove(struct dir *d, struct dent *e)
{
	struct dent **pp = &d->buckets[e->hash & (d->nbuckets - 1)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	d->slots[e->slot].e = NULL;
	d->count--;
	if (d->count == 0)
		d->nslots = 0;
	else if (d->nslots >= 64 && d->nslots - d->count > d->nslots / 2)
		dir_compact(d);
}

/* Index of the first slot whose id is larger than off. */
uint64_t dir_seek(const struct dir *d, uint64_t off)
{
	uint64_t lo = 0, hi = d->nslots;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (d->slots[mid].id <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

void mfs_opendir(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	struct node *n = node_get(ino);
	int err = 0;

	if (!n) {
		rf_reply_err(req, ENOENT);
		return;
	}
	if (n->type != S_IFDIR)
		err = -ENOTDIR;
	else if (fs.perm_check)
		err = perm_node(req, n, R_OK);
	if (!err) {
		node_ref(n, 1);
		fi->fh = (uint64_t)(uintptr_t)n;
		fi->keep_cache = fs.cache_dir;
		fi->cache_readdir = fs.cache_dir;
	}
	node_put(n);
	if (err)
		rf_reply_err(req, -err);
	else
		rf_reply_open(req, fi);
}

static void dots_fill(struct stat *st, uint64_t ino)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = S_IFDIR;
}

/* "." and ".." go out as entries without a node id: the kernel takes no lookup for them. */
static size_t add_dot(rf_req *req, char *buf, size_t room, const char *name, uint64_t ino,
		      off_t next, bool plus)
{
	struct rf_entry_param e;

	if (!plus) {
		struct stat st;

		dots_fill(&st, ino);
		return rf_add_direntry(req, buf, room, name, &st, next);
	}
	memset(&e, 0, sizeof(e));
	dots_fill(&e.attr, ino);
	return rf_add_direntry_plus(req, buf, room, name, &e, next);
}

static void list_dir(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi,
		     bool plus)
{
	bool pinned, touch;
	struct node *n = req_node(ino, fi, &pinned);
	size_t cap, pos = 0, sz;
	struct dir *d;
	char *buf;

	if (!n) {
		rf_reply_err(req, EBADF);
		return;
	}
	if (n->type != S_IFDIR) {
		req_node_done(n, pinned);
		rf_reply_err(req, ENOTDIR);
		return;
	}
	d = n->dir;
	buf = rf_reply_payload(req, &cap);
	if (size > cap)
		size = cap;
	rdlock(&d->lock);
	if (off < 0)
		off = 0;
	if (off == 0) {
		sz = add_dot(req, buf + pos, size - pos, ".", n->ino, 1, plus);
		if (sz > size - pos)
			goto full;
		pos += sz;
	}
	if (off <= 1) {
		sz = add_dot(req, buf + pos, size - pos, "..", atomic_load(&d->parent), 2, plus);
		if (sz > size - pos)
			goto full;
		pos += sz;
	}
	for (uint64_t i = dir_seek(d, (uint64_t)off); i < d->nslots; i++) {
		struct dent *e = d->slots[i].e;
		struct rf_entry_param ep;

		if (!e)
			continue;
		if (plus) {
			rdlock(&e->node->lock);
			entry_fill(&ep, e->node);
			unlock(&e->node->lock);
			sz = rf_add_direntry_plus(req, buf + pos, size - pos, e->name, &ep,
						  (off_t)e->id);
			if (sz > size - pos)
				break;
			node_add_lookup(e->node); /* only for entries that made it in */
		} else {
			struct stat st;

			memset(&st, 0, sizeof(st));
			st.st_ino = e->node->ino;
			st.st_mode = e->node->type;
			sz = rf_add_direntry(req, buf + pos, size - pos, e->name, &st,
					     (off_t)e->id);
			if (sz > size - pos)
				break;
		}
		pos += sz;
	}
full:
	unlock(&d->lock);
	rdlock(&n->lock);
	touch = atime_due(req, n);
	unlock(&n->lock);
	if (touch)
		atime_update(n);
	req_node_done(n, pinned);
	rf_reply_data(req, pos);
}

void mfs_readdir(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	list_dir(req, ino, size, off, fi, false);
}

void mfs_readdirplus(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	list_dir(req, ino, size, off, fi, true);
}

void mfs_releasedir(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	mfs_release(req, ino, fi);
}
