/*
 * ringfuse-passthrough inode table: the inodes the kernel holds lookups on, found by
 * (st_dev, st_ino) so that every name of one object leads to one inode. One mutex per shard;
 * a shard's chains double as it fills. The shard lock also guards what hangs off its inodes:
 * their passthrough counts (backing.c) and the open directories (dir.c).
 */
#include "passthrough.h"

#define SHARD_MIN_SLOTS 64

/* The filesystem: one per process. */
struct pt_fs fs;

uint64_t key_hash(dev_t dev, ino_t ino)
{
	uint64_t x = (uint64_t)ino ^ (((uint64_t)dev << 32) | ((uint64_t)dev >> 32));

	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

struct shard *shard_of(uint64_t h)
{
	return &fs.shards[h % NSHARDS];
}

static struct pt_inode **chain_of(struct pt_inode **slots, size_t nslots, uint64_t h)
{
	return &slots[(h / NSHARDS) & (nslots - 1)];
}

int table_init(void)
{
	for (size_t i = 0; i < NSHARDS; i++) {
		struct shard *s = &fs.shards[i];

		pthread_mutex_init(&s->lock, NULL);
		s->nslots = SHARD_MIN_SLOTS;
		s->slots = calloc(s->nslots, sizeof(*s->slots));
		if (!s->slots)
			return -ENOMEM;
	}
	return 0;
}

/* Doubles a shard's chains; on allocation failure the chains just get longer. */
static void shard_grow(struct shard *s)
{
	size_t n = s->nslots * 2;
	struct pt_inode **slots = calloc(n, sizeof(*slots));

	if (!slots)
		return;
	for (size_t i = 0; i < s->nslots; i++) {
		struct pt_inode *in = s->slots[i], *next;

		for (; in; in = next) {
			struct pt_inode **c = chain_of(slots, n, key_hash(in->dev, in->ino));

			next = in->next;
			in->next = *c;
			*c = in;
		}
	}
	free(s->slots);
	s->slots = slots;
	s->nslots = n;
}

/*
 * Take one lookup on the inode of st. If it is new, it adopts *fd (set to -1); otherwise the
 * caller still owns *fd. Returns NULL when out of memory.
 */
struct pt_inode *inode_get(const struct stat *st, int *fd)
{
	uint64_t h = key_hash(st->st_dev, st->st_ino);
	struct shard *s = shard_of(h);
	struct pt_inode **c, *in;

	pthread_mutex_lock(&s->lock);
	c = chain_of(s->slots, s->nslots, h);
	for (in = *c; in; in = in->next)
		if (in->ino == st->st_ino && in->dev == st->st_dev)
			break;
	if (in) {
		in->nlookup++;
	} else {
		in = calloc(1, sizeof(*in));
		if (in) {
			in->magic = PT_INODE_MAGIC;
			in->fd = *fd;
			in->type = st->st_mode & S_IFMT;
			in->dev = st->st_dev;
			in->ino = st->st_ino;
			in->nlookup = 1;
			in->next = *c;
			*c = in;
			*fd = -1;
			if (++s->count > s->nslots)
				shard_grow(s);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return in;
}

/* One more lookup on an inode the kernel already holds. */
void inode_ref(struct pt_inode *in)
{
	struct shard *s;

	if (in == &fs.root)
		return;
	s = shard_of(key_hash(in->dev, in->ino));
	pthread_mutex_lock(&s->lock);
	in->nlookup++;
	pthread_mutex_unlock(&s->lock);
}

void inode_put(struct pt_inode *in, uint64_t n)
{
	uint64_t h;
	struct shard *s;
	struct pt_inode **c;

	if (in == &fs.root)
		return;
	h = key_hash(in->dev, in->ino);
	s = shard_of(h);
	pthread_mutex_lock(&s->lock);
	if (n < in->nlookup) {
		in->nlookup -= n;
		pthread_mutex_unlock(&s->lock);
		return;
	}
	for (c = chain_of(s->slots, s->nslots, h); *c != in; c = &(*c)->next)
		;
	*c = in->next;
	s->count--;
	pthread_mutex_unlock(&s->lock);
	close(in->fd);
	in->magic = 0;
	free(in);
}

/*
 * Inode numbers as the kernel sees them. SOURCE's own filesystem keeps its numbers; objects of
 * filesystems mounted below it get numbers of their own: the top bit set, a small index of
 * their device in bits 48..62 and their number below, so that two objects never share one
 * (tar, rsync -H and cp -a would take them for hard links). A number of 2^48 or more on such a
 * filesystem, or more devices than the index holds, get a hash of device and number instead:
 * unique in all likelihood, no longer by construction.
 */
#define DEV_INDEX_MAX 32767

static struct {
	pthread_mutex_t lock;
	_Atomic unsigned int count;
	dev_t devs[DEV_INDEX_MAX];
} devices = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* 1 + the index of dev, registering it on first sight; 0 when the table is full. */
static unsigned int dev_index(dev_t dev)
{
	unsigned int n = atomic_load_explicit(&devices.count, memory_order_acquire), i;

	for (i = 0; i < n; i++)
		if (devices.devs[i] == dev)
			return i + 1;
	pthread_mutex_lock(&devices.lock);
	n = atomic_load_explicit(&devices.count, memory_order_relaxed);
	for (i = 0; i < n && devices.devs[i] != dev; i++)
		;
	if (i == n && n < DEV_INDEX_MAX) {
		devices.devs[n] = dev;
		atomic_store_explicit(&devices.count, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&devices.lock);
	return i < DEV_INDEX_MAX ? i + 1 : 0;
}

ino_t ino_out(dev_t dev, ino_t ino)
{
	const uint64_t top = 1ull << 63, low = (1ull << 48) - 1;
	unsigned int idx;

	if (dev == fs.root.dev)
		return ino;
	idx = dev_index(dev);
	if (idx && !((uint64_t)ino & ~low))
		return (ino_t)(top | (uint64_t)idx << 48 | (uint64_t)ino);
	return (ino_t)(top | (key_hash(dev, ino) & ~top));
}

/* After the session: whatever the kernel did not forget or release. */
void table_clear(void)
{
	if (!fs.shards[0].slots)
		return;
	for (size_t i = 0; i < NSHARDS; i++) {
		struct shard *s = &fs.shards[i];

		while (s->dirs) {
			struct pt_dir *d = s->dirs;

			s->dirs = d->next;
			closedir(d->dp);
			free(d);
		}

		for (size_t j = 0; s->slots && j < s->nslots; j++) {
			struct pt_inode *in = s->slots[j], *next;

			for (; in; in = next) {
				next = in->next;
				close(in->fd);
				free(in);
			}
		}
		free(s->slots);
		s->slots = NULL;
		pthread_mutex_destroy(&s->lock);
	}
}
