/*
 * memfs file contents: 64 KiB chunks in a radix tree indexed by chunk number, with holes
 * that read as zeros; reading, writing, punching, allocating, truncating and SEEK_DATA /
 * SEEK_HOLE over it, and the capacity accounting every allocated byte is charged to.
 * Callers hold the node's lock (for writing when they change anything).
 */
#include "memfs.h"

#include <malloc.h>

/* Charge or release bytes against the capacity; charging fails with -ENOSPC when full. */
int space_charge(uint64_t bytes)
{
	uint64_t old = atomic_fetch_add(&fs.used_bytes, bytes);

	if (old + bytes > fs.max_bytes) {
		atomic_fetch_sub(&fs.used_bytes, bytes);
		return -ENOSPC;
	}
	return 0;
}

void space_release(uint64_t bytes)
{
	atomic_fetch_sub(&fs.used_bytes, bytes);
}

/*
 * File data comes in chunks of at most 64 KiB, below the allocator's mmap threshold, so what
 * a deleted or truncated file frees stays in the allocator's arenas and in the daemon's RSS
 * (771 MiB kept after 1 GiB of files was written and deleted). Once GIVE_BACK_BYTES of data were
 * released, the free pages go back to the kernel: one malloc_trim() per 64 MiB freed.
 */
#define GIVE_BACK_BYTES (64ull << 20)

static _Atomic uint64_t released_since_give_back;

void data_release(uint64_t bytes)
{
	space_release(bytes);
	if (atomic_fetch_add(&released_since_give_back, bytes) + bytes < GIVE_BACK_BYTES)
		return;
	if (atomic_exchange(&released_since_give_back, 0) < GIVE_BACK_BYTES)
		return; /* another thread gave it back just now */
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

/* Number of chunk indices a tree of height h covers (h <= 6 covers every file offset). */
static uint64_t radix_span(unsigned int h)
{
	return (uint64_t)1 << (RADIX_SHIFT * h);
}

void radix_free(void *p, unsigned int h)
{
	struct rnode *r = p;

	if (!p)
		return;
	if (h > 0)
		for (unsigned int i = 0; i < RADIX_FAN; i++)
			radix_free(r->slot[i], h - 1);
	free(p);
}

struct chunk *chunk_at(const struct fdata *f, uint64_t idx)
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
	data_release(freed);
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
 * The chunk idx with at least need bytes allocated, its growth charged against the capacity
 * unless the caller charged for it already (charge false). Newly allocated bytes read as zeros,
 * except those in [a, b) which the caller is about to overwrite.
 */
static struct chunk *chunk_grow(struct fdata *f, uint64_t idx, uint32_t need, uint32_t a,
				uint32_t b, bool charge, int *err)
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
	if (charge) {
		*err = space_charge(cap - oldcap);
		if (*err)
			return NULL;
	}
	nc = realloc(c, sizeof(*nc) + cap);
	if (!nc) {
		if (charge)
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

struct chunk *chunk_prepare(struct fdata *f, uint64_t idx, uint32_t need, uint32_t a, uint32_t b,
			    int *err)
{
	return chunk_grow(f, idx, need, a, b, true, err);
}

/* Copy [off, off + len) of the file to dst, zeros for holes; the range lies within the file. */
void file_read(const struct node *n, char *dst, uint64_t off, size_t len)
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
int file_write(struct node *n, const char *src, uint64_t off, size_t len, size_t *done)
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
void file_punch(struct node *n, uint64_t off, uint64_t end)
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
			uint32_t cap;

			c = *slot;
			cap = c->cap;
			f->alloc -= cap;
			free(c);
			*slot = NULL;
			data_release(cap);
		} else {
			c = chunk_at(f, idx);
			if (in < c->cap)
				memset(c->data + in, 0, min_u64(part, c->cap - in));
		}
		off += part;
	}
}

/*
 * Bytes that allocating [off, end) adds: every chunk of the range that is missing, and what the
 * first chunk, the only one that grows gradually, lacks. Walks the chunks present only, so a
 * range of any length over a sparse file costs what the file holds.
 */
static uint64_t alloc_need(const struct fdata *f, uint64_t off, uint64_t end)
{
	uint64_t first = off >> CHUNK_SHIFT, last = (end - 1) >> CHUNK_SHIFT, idx = first;
	uint64_t need = 0;

	if (first == 0) {
		const struct chunk *c = chunk_at(f, 0);
		uint32_t cap = chunk_cap_for(0, (uint32_t)min_u64(end, CHUNK_SIZE));
		uint32_t have = c ? c->cap : 0;

		need = cap > have ? cap - have : 0;
		idx = 1;
	}
	if (idx > last)
		return need;
	need += (last - idx + 1) * (uint64_t)CHUNK_SIZE;
	/* Every chunk past the first is whole: each one present needs nothing. */
	while (chunk_next(f, idx, &idx) && idx <= last) {
		need -= CHUNK_SIZE;
		idx++;
	}
	return need;
}

/*
 * Allocate [off, end) as zeros where it is a hole. The whole range is charged first, so a range
 * larger than the free capacity fails with -ENOSPC before anything is allocated, as a local
 * filesystem does, instead of filling memory and failing half way.
 */
int file_alloc(struct node *n, uint64_t off, uint64_t end)
{
	uint64_t need = alloc_need(&n->file, off, end), before = n->file.alloc;
	int err = space_charge(need);

	while (!err && off < end) {
		uint32_t in = (uint32_t)(off & CHUNK_MASK);
		uint32_t part = (uint32_t)min_u64(end - off, CHUNK_SIZE - in);

		if (!chunk_grow(&n->file, off >> CHUNK_SHIFT, in + part, 0, 0, false, &err))
			space_release(need - (n->file.alloc - before)); /* out of memory */
		off += part;
	}
	return err;
}

void file_truncate(struct node *n, uint64_t size)
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

int64_t file_seek_data(const struct node *n, uint64_t off)
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

int64_t file_seek_hole(const struct node *n, uint64_t off)
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
