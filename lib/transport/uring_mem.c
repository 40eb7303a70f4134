/*
 * Ring entry memory of the io-uring transport: one reservation per queue, committed as the
 * queue grows, payload pages given back when entries idle. See uring_mem.h.
 *
 * Why moving and not dropping. An entry waiting in the kernel receives a request whenever the
 * kernel has one for its queue: the request is copied into the entry's buffers by task work
 * of the thread that owns the ring, which runs whenever that thread returns to user space
 * (after any system call, or an interrupt), and the completion is posted at the same time.
 * madvise(MADV_DONTNEED) on such an entry is therefore a race: the copy may land between our
 * last look at the completion queue and the madvise, and the request's bytes would be thrown
 * away (measured on 6.18: with entries trimmed every round, a few percent of trims lost data).
 * mremap(MREMAP_DONTUNMAP) moves the pages to a scratch area in one step instead; the entry
 * stays mapped and faults in fresh pages when written. A completion seen right after the move
 * is either from before it (the bytes are in the scratch area: the entry's first page was
 * never written since, which /proc/self/pagemap tells) or from after it (the bytes are in the
 * entry). Both cases keep the request intact.
 */
#include "uring_mem.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

#define PAGE 4096u

static size_t round_page(size_t n)
{
	return (n + PAGE - 1) / PAGE * PAGE;
}

int rf_entry_mem_reserve(struct rf_entry_mem *m, unsigned int depth_max, size_t hdr_stride,
			 size_t payload)
{
	void *p;

	/* Field by field: another thread may sample usable meanwhile (it stays 0 until then). */
	atomic_store_explicit(&m->usable, 0, memory_order_relaxed);
	m->base = NULL;
	m->hdr_stride = hdr_stride;
	m->hdr_area = round_page((size_t)depth_max * hdr_stride);
	m->payload = round_page(payload);
	m->depth_max = depth_max;
	m->reserved = m->hdr_area + (size_t)depth_max * m->payload;
	/* Address space only: nothing is committed until an entry is made usable. */
	p = mmap(NULL, m->reserved, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	m->base = p;
	/* Huge pages would make a small request cost 2 MiB and a trim split them: keep 4 KiB. */
	madvise(m->base + m->hdr_area, m->reserved - m->hdr_area, MADV_NOHUGEPAGE);
	return 0;
}

int rf_entry_mem_extend(struct rf_entry_mem *m, unsigned int depth)
{
	unsigned int usable = atomic_load_explicit(&m->usable, memory_order_relaxed);
	char *from;
	size_t len;

	if (depth > m->depth_max)
		return -EINVAL;
	if (depth <= usable)
		return 0;
	/* The headers of all entries at once (a few pages), then the new payloads. */
	from = usable ? rf_entry_mem_payload(m, usable) : m->base;
	len = (size_t)(rf_entry_mem_payload(m, depth) - from);
	if (mprotect(from, len, PROT_READ | PROT_WRITE) < 0)
		return -errno;
	atomic_store_explicit(&m->usable, depth, memory_order_release);
	return 0;
}

void rf_entry_mem_release(struct rf_entry_mem *m)
{
	if (m->base)
		munmap(m->base, m->reserved);
	memset(m, 0, sizeof(*m));
}

uint64_t rf_entry_mem_resident(const struct rf_entry_mem *m)
{
	unsigned int usable = atomic_load_explicit(&m->usable, memory_order_acquire);
	size_t len, done = 0;
	unsigned char vec[1024];
	uint64_t pages = 0;

	/* The layout fields were written before usable became non-zero (release). */
	if (!usable)
		return 0;
	len = (size_t)usable * m->payload;
	while (done < len) {
		size_t chunk = len - done < sizeof(vec) * PAGE ? len - done : sizeof(vec) * PAGE;

		if (mincore(m->base + m->hdr_area + done, chunk, vec) < 0)
			break;
		for (size_t i = 0; i < chunk / PAGE; i++)
			pages += vec[i] & 1;
		done += chunk;
	}
	return pages * PAGE;
}

/* Was the page at addr written (or swapped out after being written) since the move? */
static bool page_written(const struct rf_trimmer *t, const char *addr)
{
	uint64_t entry = 0;
	off_t off = (off_t)((uintptr_t)addr / PAGE * sizeof(entry));

	if (pread(t->pagemap_fd, &entry, sizeof(entry), off) != (ssize_t)sizeof(entry))
		return true;	  /* cannot happen once rf_trimmer_init() read it */
	return (entry >> 62) & 3; /* bit 63 present, bit 62 swapped */
}

int rf_trimmer_init(struct rf_trimmer *t, size_t payload)
{
	void *p;

	memset(t, 0, sizeof(*t));
	t->pagemap_fd = -1;
	t->size = round_page(payload);
	p = mmap(NULL, t->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	t->scratch = p;
	t->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (t->pagemap_fd < 0) {
		int err = -errno;

		rf_trimmer_release(t);
		return err;
	}
	/* Trimming relies on telling a written page from an empty one: check that it can. */
	t->scratch[0] = 1;
	if (!page_written(t, t->scratch)) {
		rf_trimmer_release(t);
		return -ENOTSUP;
	}
	rf_trim_end(t);
	return 0;
}

void rf_trimmer_release(struct rf_trimmer *t)
{
	if (t->scratch)
		munmap(t->scratch, t->size);
	if (t->pagemap_fd >= 0)
		close(t->pagemap_fd);
	memset(t, 0, sizeof(*t));
	t->pagemap_fd = -1;
}

int rf_trim_begin(struct rf_trimmer *t, char *payload)
{
	void *p = mremap(payload, t->size, t->size,
			 MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, t->scratch);

	if (p == MAP_FAILED)
		return -errno;
	return 0;
}

bool rf_trim_restore(struct rf_trimmer *t, char *payload, size_t len)
{
	if (len == 0 || page_written(t, payload))
		return false;
	memcpy(payload, t->scratch, len < t->size ? len : t->size);
	return true;
}

void rf_trim_end(struct rf_trimmer *t)
{
	madvise(t->scratch, t->size, MADV_DONTNEED);
}
