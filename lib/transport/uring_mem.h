/*
 * The memory of an io-uring queue's ring entries: reserved once for the deepest the queue may
 * grow, made usable entry by entry as it grows, and given back page by page when entries sit
 * idle (see uring_mem.c for why giving back needs care). Used by the queue's own thread only,
 * except rf_entry_mem_resident(), which any thread may call.
 */
#ifndef RF_TRANSPORT_URING_MEM_H
#define RF_TRANSPORT_URING_MEM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rf_entry_mem {
	char *base;		     /* the reservation: header area, then the payloads */
	size_t reserved;	     /* bytes reserved */
	size_t hdr_stride;	     /* bytes of one entry's header buffer */
	size_t hdr_area;	     /* bytes of all header buffers, page multiple */
	size_t payload;		     /* bytes of one entry's payload buffer, page multiple */
	unsigned int depth_max;	     /* entries reserved */
	_Atomic unsigned int usable; /* entries whose memory may be touched */
};

/* Reserve address space for depth_max entries (no memory is committed yet). 0 or -errno. */
int rf_entry_mem_reserve(struct rf_entry_mem *m, unsigned int depth_max, size_t hdr_stride,
			 size_t payload);
/* Make entries [usable, depth) usable: their memory is committed (strict overcommit counts
 * it) but only becomes resident when touched. 0, or -ENOMEM when the system refuses. */
int rf_entry_mem_extend(struct rf_entry_mem *m, unsigned int depth);
void rf_entry_mem_release(struct rf_entry_mem *m);

static inline char *rf_entry_mem_hdr(const struct rf_entry_mem *m, unsigned int i)
{
	return m->base + (size_t)i * m->hdr_stride;
}

static inline char *rf_entry_mem_payload(const struct rf_entry_mem *m, unsigned int i)
{
	return m->base + m->hdr_area + (size_t)i * m->payload;
}

/* Payload bytes of the usable entries that are resident right now (any thread). A page only
 * read since it was given back maps the shared zero page and counts too; the transport never
 * reads a payload beyond the request in it. */
uint64_t rf_entry_mem_resident(const struct rf_entry_mem *m);

/*
 * Giving an idle entry's payload back. The kernel copies a request into an entry it holds
 * as available at any moment our thread returns to user space (task work), so the pages are
 * moved away atomically rather than dropped:
 *
 *   rf_trim_begin()    the entry's pages go to a scratch area; the entry reads as zeros
 *                      and faults in fresh pages when next written
 *   (the caller looks for a request that completed into the entry meanwhile)
 *   rf_trim_restore()  if one did, and the kernel wrote it before the move, its bytes are
 *                      in the scratch area: copy them back
 *   rf_trim_end()      the scratch pages are freed
 */
struct rf_trimmer {
	char *scratch; /* an area of the entry payload size */
	size_t size;
	int pagemap_fd; /* /proc/self/pagemap: was a page written after the move? */
};

/* 0, or -errno when trimming cannot work here (the caller then keeps the memory). */
int rf_trimmer_init(struct rf_trimmer *t, size_t payload);
void rf_trimmer_release(struct rf_trimmer *t);
/* Move the pages of payload (t->size bytes) to the scratch area. 0 or -errno (nothing moved). */
int rf_trim_begin(struct rf_trimmer *t, char *payload);
/* A request of len payload bytes completed into payload around the move: put its bytes back
 * if they went to the scratch area. Returns true when it did. */
bool rf_trim_restore(struct rf_trimmer *t, char *payload, size_t len);
void rf_trim_end(struct rf_trimmer *t);

#endif /* RF_TRANSPORT_URING_MEM_H */
