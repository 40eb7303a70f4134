/*
 * memfs inode table and node lifetime: the sharded table from node ids to nodes, the
 * reference count that keeps a node alive (links, kernel lookups, open handles, pins), the
 * kernel's lookup count and FORGET, node allocation, and setting up and tearing down the
 * whole filesystem.
 */
#include "memfs.h"

struct memfs fs;

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
struct node *node_get(uint64_t ino)
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

void table_insert(struct node *n)
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

static void node_destroy(struct node *n)
{
	table_remove(n);
	node_free(n);
}

void node_ref(struct node *n, uint64_t k)
{
	atomic_fetch_add(&n->ref, k);
}

/* Drop k references; the last one frees the node. The caller holds none of its locks. */
void node_unref(struct node *n, uint64_t k)
{
	if (k && atomic_fetch_sub(&n->ref, k) == k)
		node_destroy(n);
}

void node_put(struct node *n)
{
	node_unref(n, 1);
}

/* The kernel got one more reference to n (a positive entry in a reply). */
void node_add_lookup(struct node *n)
{
	node_ref(n, 1);
	atomic_fetch_add(&n->nlookup, 1);
}

/*
 * The node a request is about: the open handle's when the kernel sent one (kept alive by the
 * open), else the table's, pinned. *pinned tells whether node_put() is due.
 */
struct node *req_node(rf_ino ino, const struct rf_file_info *fi, bool *pinned)
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

void req_node_done(struct node *n, bool pinned)
{
	if (pinned)
		node_put(n);
}

/* A fresh node of type, counted against the inode limit; the caller sets its attributes and
 * references, then publishes it with table_insert(). */
struct node *node_alloc(mode_t type, const char *target, int *err)
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
		/* The target counts against the capacity, like a file's data. */
		*err = space_charge(strlen(target) + 1);
		if (*err)
			goto fail_node;
		n->target = strdup(target);
		if (!n->target) {
			space_release(strlen(target) + 1);
			goto nomem_node;
		}
		n->size = strlen(target);
	}
	n->ino = atomic_fetch_add(&fs.next_ino, 1);
	return n;

nomem_node:
	*err = -ENOMEM;
fail_node:
	pthread_rwlock_destroy(&n->lock);
	free(n);
	atomic_fetch_sub(&fs.ninodes, 1);
	return NULL;
nomem:
	atomic_fetch_sub(&fs.ninodes, 1);
	*err = -ENOMEM;
	return NULL;
}

void node_free(struct node *n)
{
	struct xattr *x, *next;

	if (n->type == S_IFREG) {
		radix_free(n->file.root, n->file.height);
		data_release(n->file.alloc);
	} else if (n->type == S_IFDIR) {
		struct dir *d = n->dir;

		/* Only at exit can a directory still hold entries; the children are freed
		 * through the table. */
		for (uint64_t i = 0; i < d->nslots; i++)
			dent_free(d->slots[i].e);
		free(d->slots);
		free(d->buckets);
		pthread_rwlock_destroy(&d->lock);
		free(d);
	}
	for (x = n->xattrs; x; x = next) {
		next = x->next;
		xattr_free(x);
	}
	if (n->target) {
		space_release(strlen(n->target) + 1);
		free(n->target);
	}
	pthread_rwlock_destroy(&n->lock);
	free(n);
	atomic_fetch_sub(&fs.ninodes, 1);
}

void stat_fill(const struct node *n, struct stat *st)
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
void entry_fill(struct rf_entry_param *e, const struct node *n)
{
	memset(e, 0, sizeof(*e));
	e->ino = n->ino;
	e->generation = 1;
	stat_fill(n, &e->attr);
	e->attr_timeout = fs.attr_timeout;
	e->entry_timeout = fs.entry_timeout;
}

int fs_setup(void)
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

int root_create(void)
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

void fs_teardown(void)
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

void mfs_forget(rf_req *req, rf_ino ino, uint64_t nlookup)
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
