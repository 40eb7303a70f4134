/*
 * ringfuse-memfs: an in-memory filesystem on the ringfuse low-level API.
 *
 * It behaves like tmpfs and is what the transport benchmarks run against, so requests for
 * different files share no lock and the data path is a table lookup (or none) plus memcpy:
 *
 *   inode table  NSHARDS shards (ino modulo NSHARDS), each a hash table behind its own rwlock,
 *                mapping the kernel's node ids to nodes. Requests that carry an open handle
 *                skip it: the handle is the node pointer, kept alive by the open.
 *   node         attributes and file data under one rwlock per node, so reads and getattr of
 *                one file run in parallel and requests for different files never meet.
 *   file data    64 KiB chunks in a radix tree (a file's only chunk hangs off the node
 *                directly); a missing chunk is a hole that reads as zeros. The first chunk
 *                starts at 4 KiB and doubles as it fills, so small files cost what they hold.
 *   directory    a hash table of names plus an array of the entries in creation order. Each
 *                entry gets the next id of its directory and a readdir offset is the last id
 *                returned, so a listing resumes in the right place whatever was unlinked.
 *
 * Lifetime: node->ref counts everything that keeps a node alive: its links (nlink), kernel
 * lookups, open handles, and short pins held by requests. Whoever drops it to zero frees the
 * node. A zero count never rises again: table lookups increment unless zero, and every other
 * path reaches a node through something that is itself counted (a directory entry, a handle).
 *
 * Lock order, outermost first:
 *   rename_lock  renames between two directories; freezes every directory's parent link so
 *                the ancestry checks hold and the two directories can be locked ancestor first
 *   dir->lock    entries; nested only parent before child, or for two unrelated directories
 *                under rename_lock, lower ino first
 *   node->lock   never two at once, except copy_file_range (lower ino first)
 *   shard->lock  a leaf
 * A reference is dropped only after the node's own locks are released.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "ringfuse.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef XATTR_NAME_MAX
#define XATTR_NAME_MAX 255
#endif
#ifndef XATTR_SIZE_MAX
#define XATTR_SIZE_MAX 65536
#endif
#ifndef XATTR_LIST_MAX
#define XATTR_LIST_MAX 65536
#endif

#define WRITE_KILL_SUIDGID (1u << 2) /* FUSE_WRITE_KILL_SUIDGID in rf_file_info.write_flags */

#define NAME_LEN_MAX  255
#define SYMLINK_MAX   4095
#define FILE_LINK_MAX 65000
#define DIRENT_BOGO   20 /* directory st_size per entry, as tmpfs reports it */
#define MAX_FILE_SIZE ((uint64_t)INT64_MAX)
#define CFR_MAX	      (1u << 30) /* largest copy_file_range done in one request */

#define CHUNK_SHIFT 16
#define CHUNK_SIZE  (1u << CHUNK_SHIFT)
#define CHUNK_MASK  ((uint64_t)CHUNK_SIZE - 1)
#define CHUNK_MIN   4096u
#define RADIX_SHIFT 9
#define RADIX_FAN   (1u << RADIX_SHIFT)

#define NSHARD_BITS 6
#define NSHARDS	    (1u << NSHARD_BITS)

/* ---- data structures ---- */

struct chunk {
	uint32_t cap; /* bytes of data[] allocated; past it the chunk reads as zeros */
	uint32_t pad[3];
	char data[];
};

struct rnode {
	void *slot[RADIX_FAN]; /* struct rnode * above the last level, struct chunk * on it */
};

/* File contents. height 0: root is the chunk at index 0 (or NULL); height h > 0: root is an
 * rnode covering chunk indices below 2^(9h). */
struct fdata {
	void *root;
	unsigned int height;
	uint64_t alloc; /* bytes held in chunks */
};

struct dent {
	struct dent *hnext; /* hash chain */
	struct node *node;
	uint64_t id; /* readdir cookie: ids only grow within a directory */
	uint64_t hash;
	uint64_t slot; /* index in dir->slots */
	uint16_t len;
	char name[];
};

struct dslot {
	uint64_t id;
	struct dent *e; /* NULL once unlinked, until the array is compacted */
};

struct dir {
	pthread_rwlock_t lock; /* everything below except parent */
	struct dent **buckets;
	uint64_t nbuckets; /* 0 or a power of two */
	uint64_t count;	   /* live entries */
	struct dslot *slots;
	uint64_t nslots, capslots;
	uint64_t next_id;
	bool removed;		 /* rmdir'ed or replaced by rename: no new entries */
	_Atomic uint64_t parent; /* ino of the parent; written under rename_lock or at mkdir */
};

struct xattr {
	struct xattr *next;
	uint32_t nlen, vlen;
	char data[]; /* name, NUL, value */
};

struct node {
	struct node *hnext; /* inode table chain, under the shard lock */
	uint64_t ino;	    /* immutable */
	mode_t type;	    /* S_IFMT bits, immutable */
	_Atomic uint64_t ref;
	_Atomic uint64_t nlookup;
	pthread_rwlock_t lock;
	/* Under lock: */
	mode_t mode; /* permission bits only */
	uid_t uid;
	gid_t gid;
	dev_t rdev;
	uint64_t nlink;
	uint64_t size;
	bool linkable; /* O_TMPFILE: may get its first link */
	struct timespec atime, mtime, ctime;
	struct xattr *xattrs;
	uint32_t xattr_names; /* listxattr size */
	struct fdata file;    /* S_IFREG */
	/* Immutable: */
	struct dir *dir; /* S_IFDIR */
	char *target;	 /* S_IFLNK */
};

struct shard {
	pthread_rwlock_t lock;
	struct node **buckets;
	uint64_t nbuckets, count;
} __attribute__((aligned(64)));

struct memfs {
	struct shard shards[NSHARDS];
	pthread_mutex_t rename_lock;
	pthread_rwlockattr_t rwattr;
	_Atomic uint64_t next_ino;
	_Atomic uint64_t used_bytes;
	_Atomic uint64_t ninodes;
	uint64_t max_bytes, max_inodes;
	double entry_timeout, attr_timeout, neg_timeout;
	bool keep_cache, cache_dir, perm_check, writeback;
	bool killpriv_v2;
	mode_t root_mode;
	uid_t root_uid;
	gid_t root_gid;
};

static struct memfs fs;

/* ---- small helpers ---- */

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static void ts_now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

static bool ts_le(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec <= b->tv_nsec);
}

static void rdlock(pthread_rwlock_t *l)
{
	pthread_rwlock_rdlock(l);
}

static void wrlock(pthread_rwlock_t *l)
{
	pthread_rwlock_wrlock(l);
}

static void unlock(pthread_rwlock_t *l)
{
	pthread_rwlock_unlock(l);
}

static bool is_dot_or_dotdot(const char *name, size_t len)
{
	return (len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.');
}

static uint64_t name_hash(const char *s, size_t len)
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

/* Charge or release bytes against the capacity; charging fails with -ENOSPC when full. */
static int space_charge(uint64_t bytes)
{
	uint64_t old = atomic_fetch_add(&fs.used_bytes, bytes);

	if (old + bytes > fs.max_bytes) {
		atomic_fetch_sub(&fs.used_bytes, bytes);
		return -ENOSPC;
	}
	return 0;
}

static void space_release(uint64_t bytes)
{
	atomic_fetch_sub(&fs.used_bytes, bytes);
}

/* ---- permissions ---- */

static bool in_group(rf_req *req, gid_t gid)
{
	const struct rf_ctx *ctx = rf_req_ctx(req);
	gid_t small[64], *list = small;
	int n, size = 64;
	bool found = false;

	if (ctx->gid == gid)
		return true;
	n = rf_req_getgroups(req, size, list);
	if (n > size) {
		size = n;
		list = malloc(sizeof(*list) * (size_t)size);
		if (!list)
			return false;
		n = rf_req_getgroups(req, size, list);
		if (n > size)
			n = size;
	}
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
 * read and write anything and execute what has an x bit (directories are always searchable). */
static int perm_vals(rf_req *req, mode_t type, mode_t mode, uid_t uid, gid_t gid, int mask)
{
	const struct rf_ctx *ctx = rf_req_ctx(req);
	unsigned int bits;

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
static int perm_locked(rf_req *req, const struct node *n, int mask)
{
	return perm_vals(req, n->type, n->mode, n->uid, n->gid, mask);
}

static int perm_node(rf_req *req, struct node *n, int mask)
{
	int err;

	rdlock(&n->lock);
	err = perm_locked(req, n, mask);
	unlock(&n->lock);
	return err;
}

/* Sticky directories: only the owner of the entry or of the directory (or root) removes it. */
static bool sticky_ok(rf_req *req, mode_t dir_mode, uid_t dir_uid, uid_t victim_uid)
{
	uid_t uid = rf_req_ctx(req)->uid;

	return !(dir_mode & S_ISVTX) || uid == 0 || uid == dir_uid || uid == victim_uid;
}

/* Drop set-user-ID, and set-group-ID when it means "setgid" (group exec set), like the kernel
 * does on write, truncate and chown by the unprivileged. */
static void kill_suidgid(struct node *n, const struct timespec *now)
{
	mode_t m = n->mode & ~(mode_t)S_ISUID;

	if (n->type == S_IFDIR)
		return;
	if ((m & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		m &= ~(mode_t)S_ISGID;
	if (m != n->mode) {
		n->mode = m;
		n->ctime = *now;
	}
}

/* ---- inode table and node lifetime ---- */

static struct shard *shard_of(uint64_t ino)
{
	return &fs.shards[ino & (NSHARDS - 1)];
}

static uint64_t bucket_of(const struct shard *s, uint64_t ino)
{
	return (ino >> NSHARD_BITS) & (s->nbuckets - 1);
}

static bool ref_get_unless_zero(struct node *n)
{
	uint64_t r = atomic_load(&n->ref);

	do {
		if (r == 0)
			return false;
	} while (!atomic_compare_exchange_weak(&n->ref, &r, r + 1));
	return true;
}

/* Find a node by ino and pin it (node_put() when done); NULL if it does not exist. */
static struct node *node_get(uint64_t ino)
{
	struct shard *s = shard_of(ino);
	struct node *n;

	rdlock(&s->lock);
	for (n = s->buckets[bucket_of(s, ino)]; n; n = n->hnext)
		if (n->ino == ino)
			break;
	if (n && !ref_get_unless_zero(n))
		n = NULL;
	unlock(&s->lock);
	return n;
}

static void table_grow(struct shard *s)
{
	uint64_t nb = s->nbuckets * 2;
	struct node **b = calloc(nb, sizeof(*b));

	if (!b)
		return; /* longer chains, still correct */
	for (uint64_t i = 0; i < s->nbuckets; i++) {
		struct node *n = s->buckets[i], *next;

		for (; n; n = next) {
			uint64_t k = (n->ino >> NSHARD_BITS) & (nb - 1);

			next = n->hnext;
			n->hnext = b[k];
			b[k] = n;
		}
	}
	free(s->buckets);
	s->buckets = b;
	s->nbuckets = nb;
}

static void table_insert(struct node *n)
{
	struct shard *s = shard_of(n->ino);
	uint64_t b;

	wrlock(&s->lock);
	if (s->count >= s->nbuckets)
		table_grow(s);
	b = bucket_of(s, n->ino);
	n->hnext = s->buckets[b];
	s->buckets[b] = n;
	s->count++;
	unlock(&s->lock);
}

static void table_remove(struct node *n)
{
	struct shard *s = shard_of(n->ino);
	struct node **pp;

	wrlock(&s->lock);
	for (pp = &s->buckets[bucket_of(s, n->ino)]; *pp; pp = &(*pp)->hnext) {
		if (*pp == n) {
			*pp = n->hnext;
			s->count--;
			break;
		}
	}
	unlock(&s->lock);
}

static void radix_free(void *p, unsigned int h);
static void node_free(struct node *n);

static void node_destroy(struct node *n)
{
	table_remove(n);
	node_free(n);
}

static void node_ref(struct node *n, uint64_t k)
{
	atomic_fetch_add(&n->ref, k);
}

/* Drop k references; the last one frees the node. The caller holds none of its locks. */
static void node_unref(struct node *n, uint64_t k)
{
	if (k && atomic_fetch_sub(&n->ref, k) == k)
		node_destroy(n);
}

static void node_put(struct node *n)
{
	node_unref(n, 1);
}

/* The kernel got one more reference to n (a positive entry in a reply). */
static void node_add_lookup(struct node *n)
{
	node_ref(n, 1);
	atomic_fetch_add(&n->nlookup, 1);
}

/*
 * The node a request is about: the open handle's when the kernel sent one (kept alive by the
 * open), else the table's, pinned. *pinned tells whether node_put() is due.
 */
static struct node *req_node(rf_ino ino, const struct rf_file_info *fi, bool *pinned)
{
	if (fi && fi->fh) {
		struct node *n = (struct node *)(uintptr_t)fi->fh;

		if (n->ino == ino) {
			*pinned = false;
			return n;
		}
	}
	*pinned = true;
	return node_get(ino);
}

static void req_node_done(struct node *n, bool pinned)
{
	if (pinned)
		node_put(n);
}

/* A fresh node of type, counted against the inode limit; the caller sets its attributes and
 * references, then publishes it with table_insert(). */
static struct node *node_alloc(mode_t type, const char *target, int *err)
{
	struct node *n;

	if (atomic_fetch_add(&fs.ninodes, 1) >= fs.max_inodes) {
		atomic_fetch_sub(&fs.ninodes, 1);
		*err = -ENOSPC;
		return NULL;
	}
	n = calloc(1, sizeof(*n));
	if (!n)
		goto nomem;
	n->type = type;
	pthread_rwlock_init(&n->lock, &fs.rwattr);
	if (type == S_IFDIR) {
		n->dir = calloc(1, sizeof(*n->dir));
		if (!n->dir)
			goto nomem_node;
		pthread_rwlock_init(&n->dir->lock, &fs.rwattr);
		n->dir->next_id = 3; /* 1 and 2 are the offsets after "." and ".." */
	} else if (type == S_IFLNK) {
		n->target = strdup(target);
		if (!n->target)
			goto nomem_node;
		n->size = strlen(target);
	}
	n->ino = atomic_fetch_add(&fs.next_ino, 1);
	return n;

nomem_node:
	pthread_rwlock_destroy(&n->lock);
	free(n);
nomem:
	atomic_fetch_sub(&fs.ninodes, 1);
	*err = -ENOMEM;
	return NULL;
}

static void node_free(struct node *n)
{
	struct xattr *x, *next;

	if (n->type == S_IFREG) {
		radix_free(n->file.root, n->file.height);
		space_release(n->file.alloc);
	} else if (n->type == S_IFDIR) {
		struct dir *d = n->dir;

		/* Only at exit can a directory still hold entries; the children are freed
		 * through the table. */
		for (uint64_t i = 0; i < d->nslots; i++)
			free(d->slots[i].e);
		free(d->slots);
		free(d->buckets);
		pthread_rwlock_destroy(&d->lock);
		free(d);
	}
	for (x = n->xattrs; x; x = next) {
		next = x->next;
		free(x);
	}
	free(n->target);
	pthread_rwlock_destroy(&n->lock);
	free(n);
	atomic_fetch_sub(&fs.ninodes, 1);
}

static void stat_fill(const struct node *n, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_mode = n->type | n->mode;
	st->st_nlink = n->nlink;
	st->st_uid = n->uid;
	st->st_gid = n->gid;
	st->st_rdev = n->rdev;
	st->st_size = (off_t)n->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)(n->file.alloc / 512);
	st->st_atim = n->atime;
	st->st_mtim = n->mtime;
	st->st_ctim = n->ctime;
}

/* Fill a positive entry for n (its lock held). */
static void entry_fill(struct rf_entry_param *e, const struct node *n)
{
	memset(e, 0, sizeof(*e));
	e->ino = n->ino;
	e->generation = 1;
	stat_fill(n, &e->attr);
	e->attr_timeout = fs.attr_timeout;
	e->entry_timeout = fs.entry_timeout;
}

/* ---- file data: radix tree of chunks ---- */

/* Number of chunk indices a tree of height h covers (h <= 6 covers every file offset). */
static uint64_t radix_span(unsigned int h)
{
	return (uint64_t)1 << (RADIX_SHIFT * h);
}

static void radix_free(void *p, unsigned int h)
{
	struct rnode *r = p;

	if (!p)
		return;
	if (h > 0)
		for (unsigned int i = 0; i < RADIX_FAN; i++)
			radix_free(r->slot[i], h - 1);
	free(p);
}

static struct chunk *chunk_at(const struct fdata *f, uint64_t idx)
{
	void *p = f->root;

	if (idx >= radix_span(f->height))
		return NULL;
	for (unsigned int h = f->height; h > 0 && p; h--) {
		struct rnode *r = p;

		p = r->slot[(idx >> (RADIX_SHIFT * (h - 1))) & (RADIX_FAN - 1)];
	}
	return p;
}

/* The slot holding chunk idx, building the path to it when create is set; NULL if absent (or
 * out of memory when creating). */
static void **chunk_slot(struct fdata *f, uint64_t idx, bool create)
{
	void **pp = &f->root;

	if (idx >= radix_span(f->height)) {
		if (!create)
			return NULL;
		while (idx >= radix_span(f->height)) {
			struct rnode *r = calloc(1, sizeof(*r));

			if (!r)
				return NULL;
			r->slot[0] = f->root;
			f->root = r;
			f->height++;
		}
	}
	for (unsigned int h = f->height; h > 0; h--) {
		struct rnode *r = *pp;

		if (!r) {
			if (!create)
				return NULL;
			r = calloc(1, sizeof(*r));
			if (!r)
				return NULL;
			*pp = r;
		}
		pp = &r->slot[(idx >> (RADIX_SHIFT * (h - 1))) & (RADIX_FAN - 1)];
	}
	return pp;
}

/* Smallest present chunk index >= from in the subtree p of height h whose first index is base. */
static bool radix_next(void *p, unsigned int h, uint64_t base, uint64_t from, uint64_t *out)
{
	struct rnode *r = p;
	uint64_t span, i = 0;

	if (!p)
		return false;
	if (h == 0) {
		if (base < from)
			return false;
		*out = base;
		return true;
	}
	span = radix_span(h - 1);
	if (from > base) {
		i = (from - base) / span;
		if (i >= RADIX_FAN)
			return false;
	}
	for (; i < RADIX_FAN; i++)
		if (radix_next(r->slot[i], h - 1, base + i * span, from, out))
			return true;
	return false;
}

static bool chunk_next(const struct fdata *f, uint64_t from, uint64_t *out)
{
	return radix_next(f->root, f->height, 0, from, out);
}

/* Free every chunk with index >= from below *pp; returns the bytes released. */
static uint64_t radix_cut(void **pp, unsigned int h, uint64_t base, uint64_t from)
{
	struct rnode *r = *pp;
	uint64_t span, freed = 0;

	if (!r)
		return 0;
	if (h == 0) {
		if (base < from)
			return 0;
		freed = ((struct chunk *)r)->cap;
		free(r);
		*pp = NULL;
		return freed;
	}
	span = radix_span(h - 1);
	for (uint64_t i = 0; i < RADIX_FAN; i++) {
		if (base + (i + 1) * span <= from)
			continue;
		freed += radix_cut(&r->slot[i], h - 1, base + i * span, from);
	}
	if (base >= from) {
		free(r);
		*pp = NULL;
	}
	return freed;
}

static void chunks_cut(struct fdata *f, uint64_t from)
{
	uint64_t freed = radix_cut(&f->root, f->height, 0, from);

	f->alloc -= freed;
	space_release(freed);
	if (!f->root)
		f->height = 0;
}

static uint32_t chunk_cap_for(uint64_t idx, uint32_t need)
{
	uint32_t cap = CHUNK_MIN;

	/* Only the first chunk grows gradually: past it the file is big anyway, and doubling
	 * would cost a copy per step on sequential writes. */
	if (idx > 0)
		return CHUNK_SIZE;
	while (cap < need)
		cap <<= 1;
	return cap;
}

/*
 * The chunk idx with at least need bytes allocated. Newly allocated bytes read as zeros,
 * except those in [a, b) which the caller is about to overwrite.
 */
static struct chunk *chunk_prepare(struct fdata *f, uint64_t idx, uint32_t need, uint32_t a,
				   uint32_t b, int *err)
{
	void **slot = chunk_slot(f, idx, true);
	struct chunk *c, *nc;
	uint32_t oldcap, cap, hi;

	if (!slot) {
		*err = -ENOMEM;
		return NULL;
	}
	c = *slot;
	oldcap = c ? c->cap : 0;
	if (oldcap >= need)
		return c;
	cap = chunk_cap_for(idx, need);
	*err = space_charge(cap - oldcap);
	if (*err)
		return NULL;
	nc = realloc(c, sizeof(*nc) + cap);
	if (!nc) {
		space_release(cap - oldcap);
		*err = -ENOMEM;
		return NULL;
	}
	if (a > oldcap)
		memset(nc->data + oldcap, 0, a - oldcap);
	hi = b > oldcap ? b : oldcap;
	if (hi < cap)
		memset(nc->data + hi, 0, cap - hi);
	nc->cap = cap;
	*slot = nc;
	f->alloc += cap - oldcap;
	return nc;
}

/* Copy [off, off + len) of the file to dst, zeros for holes; the range lies within the file. */
static void file_read(const struct node *n, char *dst, uint64_t off, size_t len)
{
	while (len) {
		uint32_t in = (uint32_t)(off & CHUNK_MASK);
		size_t part = min_u64(len, CHUNK_SIZE - in);
		const struct chunk *c = chunk_at(&n->file, off >> CHUNK_SHIFT);
		size_t have = 0;

		if (c && in < c->cap) {
			have = min_u64(part, c->cap - in);
			memcpy(dst, c->data + in, have);
		}
		if (have < part)
			memset(dst + have, 0, part - have);
		dst += part;
		off += part;
		len -= part;
	}
}

/* Write src at off; *done tells how much landed even on error. Extends the size. */
static int file_write(struct node *n, const char *src, uint64_t off, size_t len, size_t *done)
{
	int err = 0;

	*done = 0;
	while (len) {
		uint32_t in = (uint32_t)(off & CHUNK_MASK);
		uint32_t part = (uint32_t)min_u64(len, CHUNK_SIZE - in);
		struct chunk *c =
			chunk_prepare(&n->file, off >> CHUNK_SHIFT, in + part, in, in + part, &err);

		if (!c)
			break;
		memcpy(c->data + in, src, part);
		src += part;
		off += part;
		len -= part;
		*done += part;
		if (off > n->size)
			n->size = off;
	}
	return err;
}

/* Zero [off, end): whole chunks are freed, partial ones cleared in place. */
static void file_punch(struct node *n, uint64_t off, uint64_t end)
{
	struct fdata *f = &n->file;

	while (off < end) {
		uint64_t idx = off >> CHUNK_SHIFT, next;
		uint32_t in;
		uint64_t part;
		struct chunk *c;

		if (!chunk_next(f, idx, &next) || next > ((end - 1) >> CHUNK_SHIFT))
			break;
		if (next > idx)
			off = next << CHUNK_SHIFT;
		idx = next;
		in = (uint32_t)(off & CHUNK_MASK);
		part = min_u64(end - off, CHUNK_SIZE - in);
		if (in == 0 && part == CHUNK_SIZE) {
			void **slot = chunk_slot(f, idx, false);

			c = *slot;
			f->alloc -= c->cap;
			space_release(c->cap);
			free(c);
			*slot = NULL;
		} else {
			c = chunk_at(f, idx);
			if (in < c->cap)
				memset(c->data + in, 0, min_u64(part, c->cap - in));
		}
		off += part;
	}
}

/* Allocate [off, end) as zeros where it is a hole. */
static int file_alloc(struct node *n, uint64_t off, uint64_t end)
{
	int err = 0;

	while (off < end) {
		uint32_t in = (uint32_t)(off & CHUNK_MASK);
		uint32_t part = (uint32_t)min_u64(end - off, CHUNK_SIZE - in);

		if (!chunk_prepare(&n->file, off >> CHUNK_SHIFT, in + part, 0, 0, &err))
			return err;
		off += part;
	}
	return 0;
}

static void file_truncate(struct node *n, uint64_t size)
{
	if (size < n->size) {
		uint32_t in = (uint32_t)(size & CHUNK_MASK);

		/* Bytes past EOF are kept zero, so growing later exposes no stale data. */
		if (in) {
			struct chunk *c = chunk_at(&n->file, size >> CHUNK_SHIFT);

			if (c && in < c->cap)
				memset(c->data + in, 0, c->cap - in);
		}
		chunks_cut(&n->file, (size + CHUNK_MASK) >> CHUNK_SHIFT);
	}
	n->size = size;
}

static int64_t file_seek_data(const struct node *n, uint64_t off)
{
	uint64_t idx = off >> CHUNK_SHIFT, next;

	if (off >= n->size)
		return -ENXIO;
	while (chunk_next(&n->file, idx, &next)) {
		const struct chunk *c = chunk_at(&n->file, next);
		uint64_t start = next << CHUNK_SHIFT;
		uint64_t pos = max_u64(off, start);

		if (pos >= n->size)
			break;
		if (pos < start + c->cap)
			return (int64_t)pos;
		idx = next + 1;
	}
	return -ENXIO;
}

static int64_t file_seek_hole(const struct node *n, uint64_t off)
{
	uint64_t pos = off;

	if (off >= n->size)
		return -ENXIO;
	while (pos < n->size) {
		uint64_t idx = pos >> CHUNK_SHIFT;
		const struct chunk *c = chunk_at(&n->file, idx);

		if (!c || (pos & CHUNK_MASK) >= c->cap)
			return (int64_t)pos;
		if (c->cap < CHUNK_SIZE)
			return (int64_t)min_u64(n->size, (idx << CHUNK_SHIFT) + c->cap);
		pos = (idx + 1) << CHUNK_SHIFT;
	}
	return (int64_t)n->size;
}

/* ---- directories ---- */

static struct dent *dent_alloc(const char *name, size_t len, uint64_t hash)
{
	struct dent *e = malloc(sizeof(*e) + len + 1);

	if (!e)
		return NULL;
	memset(e, 0, sizeof(*e));
	e->hash = hash;
	e->len = (uint16_t)len;
	memcpy(e->name, name, len + 1);
	return e;
}

static struct dent *dir_find(const struct dir *d, const char *name, size_t len, uint64_t hash)
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
static int dir_reserve(struct dir *d)
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
static void dir_insert(struct dir *d, struct dent *e)
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
static void dir_remove(struct dir *d, struct dent *e)
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
static uint64_t dir_seek(const struct dir *d, uint64_t off)
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

/* ---- options and setup ---- */

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	case 't':
	case 'T':
		v <<= 40;
		end++;
		break;
	}
	if (*end)
		return -EINVAL;
	*out = v;
	return 0;
}

/* The library consumes default_permissions itself; whether the kernel checks permissions
 * decides whether we must, so look at the command line for the last word on it. */
static bool want_own_perm_checks(int argc, char *argv[])
{
	bool own = false;

	for (int i = 1; i < argc; i++) {
		const char *list;

		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			list = argv[++i];
		else if (!strncmp(argv[i], "-o", 2))
			list = argv[i] + 2;
		else
			continue;
		for (const char *p = list; *p;) {
			size_t len = strcspn(p, ",");

			if (len == 22 && !strncmp(p, "no_default_permissions", len))
				own = true;
			else if (len == 19 && !strncmp(p, "default_permissions", len))
				own = false;
			p += len;
			if (*p == ',')
				p++;
		}
	}
	return own;
}

static bool asked_for_help(int argc, char *argv[])
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help"))
			return true;
	return false;
}

static void print_help(void)
{
	printf("\n"
	       "memfs options:\n"
	       "    cache=none|auto|always entry/attr timeouts 0, 1 s (default) or a day; always\n"
	       "                           also keeps file and directory caches across opens\n"
	       "    size=N[kmgt]           capacity in bytes (default: half the RAM)\n"
	       "    nr_inodes=N[kmgt]      most inodes (default: RAM / 8 KiB, at least 1M)\n"
	       "    mode=OCTAL, uid=N, gid=N  owner and mode of the root directory\n"
	       "    writeback              let the kernel cache writes (writeback cache)\n"
	       "With no_default_permissions memfs checks permissions itself; entries are then\n"
	       "not cached (unless cache= is given) so that every path walk reaches it.\n");
}

static int read_opts(rf_session *se)
{
	const char *v;
	uint64_t n;
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	uint64_t ram = pages > 0 && psize > 0 ? (uint64_t)pages * (uint64_t)psize : 1ull << 32;

	fs.max_bytes = ram / 2;
	fs.max_inodes = max_u64(ram / 8192, 1u << 20);
	fs.entry_timeout = fs.attr_timeout = fs.neg_timeout = 1.0;
	fs.root_mode = 0755;
	fs.root_uid = getuid();
	fs.root_gid = getgid();

	v = rf_session_opt(se, "cache");
	if (v) {
		if (!strcmp(v, "none")) {
			fs.entry_timeout = fs.attr_timeout = fs.neg_timeout = 0;
		} else if (!strcmp(v, "always")) {
			fs.entry_timeout = fs.attr_timeout = fs.neg_timeout = 86400.0;
			fs.keep_cache = fs.cache_dir = true;
		} else if (strcmp(v, "auto")) {
			fprintf(stderr, "memfs: cache=%s: expected none, auto or always\n", v);
			return -EINVAL;
		}
	} else if (fs.perm_check) {
		/* The kernel walks cached entries without asking us, so our search permission
		 * checks would be skipped for names someone else looked up. */
		fs.entry_timeout = fs.neg_timeout = 0;
	}
	v = rf_session_opt(se, "size");
	if (v) {
		if (parse_size(v, &n) < 0 || n < CHUNK_SIZE) {
			fprintf(stderr, "memfs: bad size=%s\n", v);
			return -EINVAL;
		}
		fs.max_bytes = n;
	}
	v = rf_session_opt(se, "nr_inodes");
	if (v) {
		if (parse_size(v, &n) < 0 || n < 2) {
			fprintf(stderr, "memfs: bad nr_inodes=%s\n", v);
			return -EINVAL;
		}
		fs.max_inodes = n;
	}
	v = rf_session_opt(se, "mode");
	if (v) {
		char *end;
		unsigned long m = strtoul(v, &end, 8);

		if (!*v || *end || m > 07777) {
			fprintf(stderr, "memfs: bad mode=%s\n", v);
			return -EINVAL;
		}
		fs.root_mode = (mode_t)m;
	}
	v = rf_session_opt(se, "uid");
	if (v) {
		if (parse_size(v, &n) < 0 || n >= UINT32_MAX) {
			fprintf(stderr, "memfs: bad uid=%s\n", v);
			return -EINVAL;
		}
		fs.root_uid = (uid_t)n;
	}
	v = rf_session_opt(se, "gid");
	if (v) {
		if (parse_size(v, &n) < 0 || n >= UINT32_MAX) {
			fprintf(stderr, "memfs: bad gid=%s\n", v);
			return -EINVAL;
		}
		fs.root_gid = (gid_t)n;
	}
	fs.writeback = rf_session_opt(se, "writeback") != NULL;
	return 0;
}

static int fs_setup(void)
{
	pthread_rwlockattr_init(&fs.rwattr);
	/* Writers (a write to a file being read by many) must not starve. */
	pthread_rwlockattr_setkind_np(&fs.rwattr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_mutex_init(&fs.rename_lock, NULL);
	atomic_init(&fs.next_ino, RF_ROOT_INO);
	for (unsigned int i = 0; i < NSHARDS; i++) {
		struct shard *s = &fs.shards[i];

		pthread_rwlock_init(&s->lock, NULL);
		s->nbuckets = 256;
		s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
		if (!s->buckets)
			return -ENOMEM;
	}
	return 0;
}

static int root_create(void)
{
	int err;
	struct node *root = node_alloc(S_IFDIR, NULL, &err);

	if (!root)
		return err;
	root->mode = fs.root_mode;
	root->uid = fs.root_uid;
	root->gid = fs.root_gid;
	root->nlink = 2;
	root->size = 2 * DIRENT_BOGO;
	ts_now(&root->mtime);
	root->atime = root->ctime = root->mtime;
	atomic_init(&root->dir->parent, root->ino);
	atomic_init(&root->ref, 3); /* two links, and one so that it lives forever */
	table_insert(root);
	return 0;
}

static void fs_teardown(void)
{
	for (unsigned int i = 0; i < NSHARDS; i++) {
		struct shard *s = &fs.shards[i];

		for (uint64_t b = 0; b < s->nbuckets && s->buckets; b++) {
			struct node *n = s->buckets[b], *next;

			for (; n; n = next) {
				next = n->hnext;
				node_free(n);
			}
		}
		free(s->buckets);
		s->buckets = NULL;
		pthread_rwlock_destroy(&s->lock);
	}
	pthread_mutex_destroy(&fs.rename_lock);
	pthread_rwlockattr_destroy(&fs.rwattr);
}

/* ---- operations ---- */

static void open_flags(struct rf_file_info *fi)
{
	fi->keep_cache = fs.keep_cache;
	fi->noflush = 1; /* nothing to flush, and no locks of ours to release */
	fi->parallel_direct_writes = 1;
}

static void mfs_init(void *userdata, struct rf_conn_info *conn)
{
	uint64_t want = RF_CAP_HANDLE_KILLPRIV_V2 | RF_CAP_ATOMIC_O_TRUNC | RF_CAP_CACHE_SYMLINKS |
			RF_CAP_PARALLEL_DIROPS;

	(void)userdata;
	if (fs.writeback)
		want |= RF_CAP_WRITEBACK_CACHE;
	conn->want |= want & conn->capable;
	conn->time_gran = 1;
	fs.killpriv_v2 = (conn->want & conn->capable & RF_CAP_HANDLE_KILLPRIV_V2) != 0;
}

static void mfs_destroy(void *userdata)
{
	(void)userdata;
}

static void mfs_lookup(rf_req *req, rf_ino parent, const char *name)
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

static void mfs_forget(rf_req *req, rf_ino ino, uint64_t nlookup)
{
	struct node *n = node_get(ino);

	if (n) {
		uint64_t cur = atomic_load(&n->nlookup), k;

		/* Never drop more than the kernel was given: a bad count must not free a node
		 * that is still linked or open. */
		do {
			k = min_u64(cur, nlookup);
		} while (!atomic_compare_exchange_weak(&n->nlookup, &cur, cur - k));
		node_unref(n, k + 1);
	}
	rf_reply_none(req);
}

static void mfs_getattr(rf_req *req, rf_ino ino, struct rf_file_info *fi)
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
	/* With the writeback cache the kernel keeps the times and sends them, with ctime, on
	 * truncate and writeback too; it checked utimensat() itself. */
	if ((to_set & times) && !(to_set & RF_SET_ATTR_CTIME)) {
		bool explicit =
			((to_set & RF_SET_ATTR_ATIME) && !(to_set & RF_SET_ATTR_ATIME_NOW)) ||
			((to_set & RF_SET_ATTR_MTIME) && !(to_set & RF_SET_ATTR_MTIME_NOW));

		if (explicit && !owner)
			return -EPERM;
		if (!owner && perm_locked(req, n, W_OK))
			return -EACCES;
	}

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
			kill_suidgid(n, &now);
	}
	if (to_set & RF_SET_ATTR_KILL_SUIDGID)
		kill_suidgid(n, &now);
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

static void mfs_setattr(rf_req *req, rf_ino ino, struct stat *attr, int to_set,
			struct rf_file_info *fi)
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

static void mfs_readlink(rf_req *req, rf_ino ino)
{
	struct node *n = node_get(ino);

	if (!n) {
		rf_reply_err(req, ENOENT);
		return;
	}
	if (n->type != S_IFLNK)
		rf_reply_err(req, EINVAL);
	else
		rf_reply_readlink(req, n->target); /* immutable, and n is pinned */
	node_put(n);
}

/*
 * Open n for a request: permission, O_TRUNC, and the reference the handle holds. The caller
 * keeps n alive meanwhile.
 */
static int open_node(rf_req *req, struct node *n, struct rf_file_info *fi)
{
	int acc = fi->flags & O_ACCMODE;
	int err;

	if (n->type == S_IFDIR && acc != O_RDONLY)
		return -EISDIR;
	if (fs.perm_check) {
		int mask = acc == O_RDONLY ? R_OK : acc == O_WRONLY ? W_OK : R_OK | W_OK;

		if (fi->flags & O_TRUNC)
			mask |= W_OK;
		err = perm_node(req, n, mask);
		if (err)
			return err;
	}
	if ((fi->flags & O_TRUNC) && n->type == S_IFREG) {
		struct timespec now;

		ts_now(&now);
		wrlock(&n->lock);
		file_truncate(n, 0);
		n->mtime = n->ctime = now;
		if (rf_req_ctx(req)->uid != 0)
			kill_suidgid(n, &now);
		unlock(&n->lock);
	}
	node_ref(n, 1);
	fi->fh = (uint64_t)(uintptr_t)n;
	open_flags(fi);
	return 0;
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
	de = dent_alloc(name, len, hash);
	if (!de) {
		err = -ENOMEM;
		goto fail_free;
	}

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
	free(de);
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

static void mfs_mknod(rf_req *req, rf_ino parent, const char *name, mode_t mode, dev_t rdev)
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

static void mfs_mkdir(rf_req *req, rf_ino parent, const char *name, mode_t mode)
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

static void mfs_symlink(rf_req *req, const char *link, rf_ino parent, const char *name)
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

static void mfs_create(rf_req *req, rf_ino parent, const char *name, mode_t mode,
		       struct rf_file_info *fi)
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

static void mfs_tmpfile(rf_req *req, rf_ino parent, mode_t mode, struct rf_file_info *fi)
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

static void mfs_link(rf_req *req, rf_ino ino, rf_ino newparent, const char *newname)
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
	de = dent_alloc(newname, len, hash);
	if (!de) {
		err = -ENOMEM;
		goto out;
	}
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
	free(de);
	if (n)
		node_put(n);
	if (p)
		node_put(p);
	if (err)
		rf_reply_err(req, -err);
	else
		rf_reply_entry(req, &e);
}

/* unlink and rmdir. */
static int remove_entry(rf_req *req, struct node *p, const char *name, bool isdir)
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
	if (isdir && c->type != S_IFDIR)
		err = -ENOTDIR;
	else if (!isdir && c->type == S_IFDIR)
		err = -EISDIR;
	if (err) {
		unlock(&p->dir->lock);
		return err;
	}
	if (isdir) {
		/* Held to the end: no entry may appear in c once it was found empty. */
		wrlock(&c->dir->lock);
		if (c->dir->count)
			err = -ENOTEMPTY;
	}
	rdlock(&c->lock);
	cuid = c->uid;
	unlock(&c->lock);

	ts_now(&now);
	wrlock(&p->lock);
	if (!err && fs.perm_check)
		err = perm_locked(req, p, W_OK | X_OK);
	if (!err && !sticky_ok(req, p->mode, p->uid, cuid))
		err = -EPERM;
	if (!err) {
		p->mtime = p->ctime = now;
		p->size -= DIRENT_BOGO;
		if (isdir)
			p->nlink--;
	}
	unlock(&p->lock);
	if (err) {
		if (isdir)
			unlock(&c->dir->lock);
		unlock(&p->dir->lock);
		return err;
	}

	dir_remove(p->dir, e);
	free(e);
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

static void mfs_unlink(rf_req *req, rf_ino parent, const char *name)
{
	struct node *p = node_get(parent);
	int err;

	if (!p) {
		rf_reply_err(req, ENOENT);
		return;
	}
	err = remove_entry(req, p, name, false);
	node_put(p);
	rf_reply_err(req, -err);
}

static void mfs_rmdir(rf_req *req, rf_ino parent, const char *name)
{
	struct node *p = node_get(parent);
	int err;

	if (!p) {
		rf_reply_err(req, ENOENT);
		return;
	}
	err = remove_entry(req, p, name, true);
	node_put(p);
	rf_reply_err(req, -err);
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
	if (t && !exchange) {
		if (s->type == S_IFDIR && t->type != S_IFDIR)
			err = -ENOTDIR;
		else if (s->type != S_IFDIR && t->type == S_IFDIR)
			err = -EISDIR;
		if (err)
			goto out;
		if (t->type == S_IFDIR) {
			wrlock(&t->dir->lock);
			tlocked = true;
			if (t->dir->count) {
				err = -ENOTEMPTY;
				goto out;
			}
		}
	}

	snapshot(p1, &m1, &u1, &g1);
	snapshot(p2, &m2, &u2, &g2);
	snapshot(s, &ms, &us, &gs);
	if (t)
		snapshot(t, &mt, &ut, &gt);
	if (fs.perm_check) {
		err = perm_vals(req, S_IFDIR, m1, u1, g1, W_OK | X_OK);
		if (!err && cross)
			err = perm_vals(req, S_IFDIR, m2, u2, g2, W_OK | X_OK);
		/* A directory changing parents rewrites its "..". */
		if (!err && cross && s->type == S_IFDIR)
			err = perm_vals(req, S_IFDIR, ms, us, gs, W_OK);
		if (!err && cross && exchange && t->type == S_IFDIR)
			err = perm_vals(req, S_IFDIR, mt, ut, gt, W_OK);
		if (err)
			goto out;
	}
	if (!sticky_ok(req, m1, u1, us) || (t && !sticky_ok(req, m2, u2, ut))) {
		err = -EPERM;
		goto out;
	}
	if (!te) {
		ne = dent_alloc(newname, len2, name_hash(newname, len2));
		if (!ne || dir_reserve(p2->dir)) {
			free(ne);
			err = -ENOMEM;
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
		free(se);
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

static void mfs_rename(rf_req *req, rf_ino parent, const char *name, rf_ino newparent,
		       const char *newname, unsigned int flags)
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

static void mfs_open(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	struct node *n = node_get(ino);
	int err;

	if (!n) {
		rf_reply_err(req, ENOENT);
		return;
	}
	err = open_node(req, n, fi);
	node_put(n);
	if (err)
		rf_reply_err(req, -err);
	else
		rf_reply_open(req, fi);
}

/* relatime: is an access worth recording? */
static bool atime_due(const struct node *n)
{
	struct timespec now;

	if (ts_le(&n->atime, &n->mtime) || ts_le(&n->atime, &n->ctime))
		return true;
	clock_gettime(CLOCK_REALTIME_COARSE, &now);
	return now.tv_sec - n->atime.tv_sec >= 24 * 3600;
}

static void atime_update(struct node *n)
{
	wrlock(&n->lock);
	ts_now(&n->atime);
	unlock(&n->lock);
}

static void mfs_read(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	bool pinned, touch = false;
	struct node *n = req_node(ino, fi, &pinned);
	size_t cap, count = 0;
	char *buf;

	if (!n) {
		rf_reply_err(req, EBADF);
		return;
	}
	if (n->type != S_IFREG) {
		req_node_done(n, pinned);
		rf_reply_err(req, n->type == S_IFDIR ? EISDIR : EINVAL);
		return;
	}
	buf = rf_reply_payload(req, &cap);
	if (size > cap)
		size = cap;
	rdlock(&n->lock);
	if (off >= 0 && (uint64_t)off < n->size) {
		count = min_u64(size, n->size - (uint64_t)off);
		file_read(n, buf, (uint64_t)off, count);
	}
	touch = atime_due(n);
	unlock(&n->lock);
	if (touch)
		atime_update(n);
	req_node_done(n, pinned);
	rf_reply_data(req, count);
}

static void mfs_write(rf_req *req, rf_ino ino, const char *buf, size_t size, off_t off,
		      struct rf_file_info *fi)
{
	bool pinned;
	struct node *n = req_node(ino, fi, &pinned);
	struct timespec now;
	size_t done = 0;
	int err = 0;

	if (!n) {
		rf_reply_err(req, EBADF);
		return;
	}
	if (n->type != S_IFREG)
		err = n->type == S_IFDIR ? -EISDIR : -EINVAL;
	else if (off < 0 || (uint64_t)off > MAX_FILE_SIZE - size)
		err = -EFBIG;
	if (!err && size) {
		ts_now(&now);
		wrlock(&n->lock);
		if (fi && (fi->write_flags & WRITE_KILL_SUIDGID))
			kill_suidgid(n, &now);
		err = file_write(n, buf, (uint64_t)off, size, &done);
		if (done)
			n->mtime = n->ctime = now;
		unlock(&n->lock);
	}
	req_node_done(n, pinned);
	if (done || !err)
		rf_reply_write(req, done);
	else
		rf_reply_err(req, -err);
}

static void mfs_flush(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	(void)ino;
	(void)fi;
	rf_reply_err(req, 0);
}

static void mfs_release(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	struct node *n = (struct node *)(uintptr_t)fi->fh;

	(void)ino;
	if (n)
		node_put(n); /* the handle's reference */
	rf_reply_err(req, 0);
}

static void mfs_fsync(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	rf_reply_err(req, 0);
}

static void mfs_opendir(rf_req *req, rf_ino ino, struct rf_file_info *fi)
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
	touch = atime_due(n);
	unlock(&n->lock);
	if (touch)
		atime_update(n);
	req_node_done(n, pinned);
	rf_reply_data(req, pos);
}

static void mfs_readdir(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	list_dir(req, ino, size, off, fi, false);
}

static void mfs_readdirplus(rf_req *req, rf_ino ino, size_t size, off_t off,
			    struct rf_file_info *fi)
{
	list_dir(req, ino, size, off, fi, true);
}

static void mfs_releasedir(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	mfs_release(req, ino, fi);
}

static void mfs_statfs(rf_req *req, rf_ino ino)
{
	struct statvfs st;
	uint64_t used = atomic_load(&fs.used_bytes), files = atomic_load(&fs.ninodes);

	(void)ino;
	memset(&st, 0, sizeof(st));
	st.f_bsize = 4096;
	st.f_frsize = 4096;
	st.f_blocks = fs.max_bytes / 4096;
	st.f_bfree = st.f_bavail = (fs.max_bytes - min_u64(used, fs.max_bytes)) / 4096;
	st.f_files = fs.max_inodes;
	st.f_ffree = st.f_favail = fs.max_inodes - min_u64(files, fs.max_inodes);
	st.f_namemax = NAME_LEN_MAX;
	rf_reply_statfs(req, &st);
}

/* ---- extended attributes ---- */

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

static struct xattr **xattr_find(struct node *n, const char *name)
{
	struct xattr **pp;

	for (pp = &n->xattrs; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->data, name))
			return pp;
	return NULL;
}

static void mfs_setxattr(rf_req *req, rf_ino ino, const char *name, const char *value, size_t size,
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
			free(old);
		} else {
			x->next = n->xattrs;
			n->xattrs = x;
			n->xattr_names += (uint32_t)(nlen + 1);
		}
		x = NULL;
		n->ctime = now;
	}
	unlock(&n->lock);
	free(x);
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

static void mfs_getxattr(rf_req *req, rf_ino ino, const char *name, size_t size)
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

static void mfs_listxattr(rf_req *req, rf_ino ino, size_t size)
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

static void mfs_removexattr(rf_req *req, rf_ino ino, const char *name)
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
	free(x);
	node_put(n);
	rf_reply_err(req, -err);
}

static void mfs_access(rf_req *req, rf_ino ino, int mask)
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

static void mfs_fallocate(rf_req *req, rf_ino ino, int mode, off_t offset, off_t length,
			  struct rf_file_info *fi)
{
	bool pinned;
	struct node *n = req_node(ino, fi, &pinned);
	uint64_t off = (uint64_t)offset, end = off + (uint64_t)length;
	bool keep = mode & FALLOC_FL_KEEP_SIZE;
	struct timespec now;
	int err = 0;

	if (!n) {
		rf_reply_err(req, EBADF);
		return;
	}
	if (n->type != S_IFREG) {
		err = n->type == S_IFDIR ? -EISDIR : -ENODEV;
		goto out;
	}
	if (offset < 0 || length <= 0) {
		err = -EINVAL;
		goto out;
	}
	if (off > MAX_FILE_SIZE - (uint64_t)length) {
		err = -EFBIG;
		goto out;
	}
	switch (mode) {
	case 0:
	case FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_ZERO_RANGE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		break;
	default:
		err = -EOPNOTSUPP;
		goto out;
	}

	ts_now(&now);
	wrlock(&n->lock);
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE))
		file_punch(n, off, end);
	if (!(mode & FALLOC_FL_PUNCH_HOLE))
		err = file_alloc(n, off, end);
	if (!err && !keep && end > n->size)
		n->size = end;
	if (!err || (mode & FALLOC_FL_ZERO_RANGE))
		n->mtime = n->ctime = now;
	unlock(&n->lock);
out:
	req_node_done(n, pinned);
	rf_reply_err(req, -err);
}

static void mfs_copy_file_range(rf_req *req, rf_ino ino_in, off_t off_in,
				struct rf_file_info *fi_in, rf_ino ino_out, off_t off_out,
				struct rf_file_info *fi_out, size_t len, int flags)
{
	bool pin_in, pin_out;
	struct node *src = req_node(ino_in, fi_in, &pin_in);
	struct node *dst = req_node(ino_out, fi_out, &pin_out);
	uint64_t count = 0, done = 0, oin = (uint64_t)off_in, oout = (uint64_t)off_out;
	struct timespec now;
	int err = 0;

	if (!src || !dst) {
		err = -EBADF;
		goto out;
	}
	if (src->type == S_IFDIR || dst->type == S_IFDIR) {
		err = -EISDIR;
		goto out;
	}
	if (src->type != S_IFREG || dst->type != S_IFREG || flags || off_in < 0 || off_out < 0) {
		err = -EINVAL;
		goto out;
	}
	if (len > CFR_MAX)
		len = CFR_MAX;

	ts_now(&now);
	if (src == dst) {
		wrlock(&src->lock);
	} else if (src->ino < dst->ino) {
		rdlock(&src->lock);
		wrlock(&dst->lock);
	} else {
		wrlock(&dst->lock);
		rdlock(&src->lock);
	}
	if (oin < src->size)
		count = min_u64(len, src->size - oin);
	if (src == dst && count && oin < oout + count && oout < oin + count)
		err = -EINVAL; /* overlapping ranges of one file */
	else if (oout > MAX_FILE_SIZE - count)
		err = -EFBIG;
	while (!err && done < count) {
		uint64_t pi = oin + done, po = oout + done;
		uint32_t sin = (uint32_t)(pi & CHUNK_MASK), din = (uint32_t)(po & CHUNK_MASK);
		uint32_t part = (uint32_t)min_u64(count - done, CHUNK_SIZE - max_u64(sin, din));
		struct chunk *sc = chunk_at(&src->file, pi >> CHUNK_SHIFT), *dc;

		if (!sc || sin >= sc->cap) {
			/* A hole stays a hole: clear what the destination holds there. */
			dc = chunk_at(&dst->file, po >> CHUNK_SHIFT);
			if (dc && din < dc->cap)
				memset(dc->data + din, 0, min_u64(part, dc->cap - din));
		} else {
			uint32_t have = (uint32_t)min_u64(part, sc->cap - sin);

			dc = chunk_prepare(&dst->file, po >> CHUNK_SHIFT, din + part, din,
					   din + part, &err);
			if (!dc)
				break;
			if (src == dst) /* growing dc may have moved sc */
				sc = chunk_at(&src->file, pi >> CHUNK_SHIFT);
			memmove(dc->data + din, sc->data + sin, have);
			if (have < part)
				memset(dc->data + din + have, 0, part - have);
		}
		done += part;
		if (po + part > dst->size)
			dst->size = po + part;
	}
	if (done)
		dst->mtime = dst->ctime = now;
	unlock(&src->lock);
	if (src != dst)
		unlock(&dst->lock);
out:
	if (src)
		req_node_done(src, pin_in);
	if (dst)
		req_node_done(dst, pin_out);
	if (done || !err)
		rf_reply_write(req, done);
	else
		rf_reply_err(req, -err);
}

static void mfs_lseek(rf_req *req, rf_ino ino, off_t off, int whence, struct rf_file_info *fi)
{
	bool pinned;
	struct node *n = req_node(ino, fi, &pinned);
	int64_t r;

	if (!n) {
		rf_reply_err(req, EBADF);
		return;
	}
	if (n->type != S_IFREG || (whence != SEEK_DATA && whence != SEEK_HOLE)) {
		r = -EINVAL;
	} else if (off < 0) {
		r = -ENXIO;
	} else {
		rdlock(&n->lock);
		r = whence == SEEK_DATA ? file_seek_data(n, (uint64_t)off)
					: file_seek_hole(n, (uint64_t)off);
		unlock(&n->lock);
	}
	req_node_done(n, pinned);
	if (r < 0)
		rf_reply_err(req, (int)-r);
	else
		rf_reply_lseek(req, (off_t)r);
}

static void mfs_syncfs(rf_req *req, rf_ino ino)
{
	(void)ino;
	rf_reply_err(req, 0);
}

static const struct rf_ops memfs_ops = {
	.init = mfs_init,
	.destroy = mfs_destroy,
	.lookup = mfs_lookup,
	.forget = mfs_forget,
	.getattr = mfs_getattr,
	.setattr = mfs_setattr,
	.readlink = mfs_readlink,
	.mknod = mfs_mknod,
	.mkdir = mfs_mkdir,
	.unlink = mfs_unlink,
	.rmdir = mfs_rmdir,
	.symlink = mfs_symlink,
	.rename = mfs_rename,
	.link = mfs_link,
	.open = mfs_open,
	.read = mfs_read,
	.write = mfs_write,
	.flush = mfs_flush,
	.release = mfs_release,
	.fsync = mfs_fsync,
	.opendir = mfs_opendir,
	.readdir = mfs_readdir,
	.releasedir = mfs_releasedir,
	.fsyncdir = mfs_fsync,
	.statfs = mfs_statfs,
	.setxattr = mfs_setxattr,
	.getxattr = mfs_getxattr,
	.listxattr = mfs_listxattr,
	.removexattr = mfs_removexattr,
	.access = mfs_access,
	.create = mfs_create,
	.fallocate = mfs_fallocate,
	.readdirplus = mfs_readdirplus,
	.copy_file_range = mfs_copy_file_range,
	.lseek = mfs_lseek,
	.tmpfile = mfs_tmpfile,
	.syncfs = mfs_syncfs,
};

int main(int argc, char *argv[])
{
	rf_session *se;
	int ret;

	if (fs_setup() < 0) {
		fprintf(stderr, "memfs: out of memory\n");
		return 1;
	}
	fs.perm_check = want_own_perm_checks(argc, argv);
	se = rf_session_new(argc, argv, &memfs_ops, sizeof(memfs_ops), &fs);
	if (!se) {
		int usage_error = errno != 0;

		if (!usage_error && asked_for_help(argc, argv))
			print_help();
		fs_teardown();
		return usage_error ? 1 : 0;
	}
	if (read_opts(se) < 0 || root_create() < 0) {
		rf_session_destroy(se);
		fs_teardown();
		return 1;
	}
	ret = rf_session_run(se);
	rf_session_destroy(se);
	fs_teardown();
	return ret < 0 ? 1 : 0;
}
