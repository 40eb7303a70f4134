/*
 * Interrupts: FUSE_INTERRUPT names a request by its unique, and this file finds it, even
 * when the interrupt overtook its request.
 *
 * The kernel sends interrupts over /dev/fuse, read by whichever reader is free, while the
 * request they name may sit in a ring entry no thread has looked at yet (its queue is busy
 * with a slow handler), or in another reader's hands between read() and dispatch. Answering
 * EAGAIN does not help: the kernel looks the target up only in the processing list of the fd
 * the answer is written to, fails with ENOENT, and forgets the interrupt. So the library
 * keeps what it cannot place yet.
 *
 * The registry. Every transport registers its request objects in tables (any number, at any
 * time, under se->lock); an interrupt scans them for an ACTIVE request with that unique.
 * Interrupts are rare: a scan beats any bookkeeping on the request path.
 *
 * Pending interrupts. An interrupt whose target is not found goes into a small table in the
 * session (RF_INTR_SETS sets of RF_INTR_WAYS entries, set chosen by the unique; a full set
 * gives up its oldest). When a request begins, rf_intr_take() looks for its unique there; the
 * hot path pays one relaxed load of the count of pending entries while there are none. An
 * entry leaves when its request begins, or when older than RF_INTR_MAX_AGE_NS (its target was
 * probably answered before the interrupt was read; the kernel then drops nothing we need).
 *
 * The race. An interrupt scanning while its target begins on another thread must not be
 * missed by both: the interrupt inserts its entry, then looks again; the beginning request
 * stores ACTIVE, then reads the pending count. Without a barrier between the store and the
 * load on the request path both could read stale values (store buffering), so the interrupt
 * path issues membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) between its insert and its second
 * scan, which orders every thread of the process as a full barrier would; the request path
 * keeps a compiler barrier only. Where membarrier is unavailable, the pending count carries
 * RF_INTR_FENCE_BIT for ever: every request then takes the slow path, which fences. Either
 * the request sees the entry or the scan sees the request; whoever removes the entry (a CAS on
 * its unique) delivers it, and a request is marked once (an exchange on interrupted_unique),
 * so ops.interrupt runs once per interrupted request.
 */
#include "ringfuse_i.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A pending interrupt older than this is dropped: 60 s covers a target stuck behind a slow
 * handler for long, and a full set gives up its oldest entry anyway. */
#define RF_INTR_MAX_AGE_NS (60ull * 1000 * 1000 * 1000)

#if defined(__SANITIZE_THREAD__)
_Atomic unsigned int rf_fence_word;
#endif

/* ---- the registry ---- */

int rf_session_register_reqs(rf_session *se, rf_req *first, size_t count, size_t stride)
{
	int ret = 0;

	if (((uintptr_t)first | stride) & RF_REQ_TAG_MASK) {
		rf_log(RF_LOG_ERR, "ringfuse: request objects not aligned to %d bytes",
		       RF_REQ_ALIGN);
		return -EINVAL;
	}
	pthread_mutex_lock(&se->lock);
	if (se->ntables == se->tables_cap) {
		size_t cap = se->tables_cap ? se->tables_cap * 2 : 64;
		struct rf_req_table *t = realloc(se->tables, cap * sizeof(*t));

		if (t) {
			se->tables = t;
			se->tables_cap = cap;
		}
	}
	if (se->ntables < se->tables_cap)
		se->tables[se->ntables++] = (struct rf_req_table){first, count, stride};
	else
		ret = -ENOMEM;
	pthread_mutex_unlock(&se->lock);
	return ret;
}

void rf_session_unregister_reqs(rf_session *se, rf_req *first)
{
	pthread_mutex_lock(&se->lock);
	for (size_t i = 0; i < se->ntables; i++) {
		if (se->tables[i].first == first) {
			se->tables[i] = se->tables[--se->ntables];
			break;
		}
	}
	pthread_mutex_unlock(&se->lock);
}

/* Mark req interrupted by unique; true the first time (only then is ops.interrupt due). */
static bool mark(rf_req *req, uint64_t unique)
{
	return atomic_exchange(&req->interrupted_unique, unique) != unique;
}

/*
 * The ACTIVE request with this unique: its object and, in *h, the handle of that request.
 * The generation is read again after the unique, so the handle belongs to that request even
 * when its object begins a new one meanwhile.
 */
static rf_req *scan(rf_session *se, uint64_t unique, rf_req **h)
{
	rf_req *found = NULL;

	pthread_mutex_lock(&se->lock);
	for (size_t t = 0; t < se->ntables && !found; t++) {
		const struct rf_req_table *tb = &se->tables[t];

		for (size_t i = 0; i < tb->count; i++) {
			rf_req *r = (rf_req *)((char *)tb->first + i * tb->stride);
			uint32_t life = atomic_load_explicit(&r->life, memory_order_acquire);

			/* Acquire: the generation is read again after the unique. */
			if (rf_life_state(life) != RF_REQ_ACTIVE ||
			    __atomic_load_n(&r->unique, __ATOMIC_ACQUIRE) != unique)
				continue;
			if (atomic_load_explicit(&r->life, memory_order_relaxed) != life)
				continue; /* it moved on: that request was answered */
			found = r;
			*h = (rf_req *)((uintptr_t)r | rf_life_tag(life));
			break;
		}
	}
	pthread_mutex_unlock(&se->lock);
	return found;
}

/* ---- pending interrupts ---- */

static struct rf_intr_ent *intr_set(rf_session *se, uint64_t unique)
{
	/* Uniques grow by small steps: mix the bits that change. */
	uint64_t h = unique * 0x9e3779b97f4a7c15ull;

	return &se->intr.ent[(h >> 60) % RF_INTR_SETS * RF_INTR_WAYS];
}

static void count_add(rf_session *se, int n)
{
	atomic_fetch_add_explicit(&se->intr.npending, (unsigned int)n, memory_order_seq_cst);
}

/* Remove e if it still holds unique; true if this call removed it. */
static bool ent_take(rf_session *se, struct rf_intr_ent *e, uint64_t unique)
{
	uint64_t v = unique;

	if (!atomic_compare_exchange_strong(&e->unique, &v, 0))
		return false;
	count_add(se, -1);
	return true;
}

/* Remember an interrupt (se->intr.lock held). Returns its entry. */
static struct rf_intr_ent *ent_insert(rf_session *se, uint64_t unique, uint64_t now)
{
	struct rf_intr_ent *set = intr_set(se, unique);

	for (;;) {
		struct rf_intr_ent *oldest = NULL;
		uint64_t v;

		for (int w = 0; w < RF_INTR_WAYS; w++) {
			if (atomic_load(&set[w].unique) == 0) {
				/* Only inserters fill entries, one at a time: it stays free. The
				 * time goes first, so nobody sees the entry with an old one. */
				atomic_store_explicit(&set[w].t_ns, now, memory_order_relaxed);
				atomic_store_explicit(&set[w].unique, unique, memory_order_release);
				count_add(se, 1);
				return &set[w];
			}
			if (!oldest ||
			    atomic_load_explicit(&set[w].t_ns, memory_order_relaxed) <
				    atomic_load_explicit(&oldest->t_ns, memory_order_relaxed))
				oldest = &set[w];
		}
		/* Full: the oldest gives way (unless its request takes it first). */
		v = atomic_load(&oldest->unique);
		if (v && ent_take(se, oldest, v))
			rf_log_once(RF_LOG_WARN,
				    "ringfuse: too many interrupts waiting for their requests; the "
				    "oldest are forgotten");
	}
}

/* Every CPU of the process runs a full barrier (see the top of the file). */
static void heavy_barrier(rf_session *se)
{
	if (!se->intr.membarrier ||
	    syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0)
		rf_full_fence();
}

void rf_intr_setup(rf_session *se)
{
	bool ok = syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;

	se->intr.membarrier = ok;
	if (ok) {
		atomic_fetch_and(&se->intr.npending, ~RF_INTR_FENCE_BIT);
	} else {
		rf_log_once(RF_LOG_INFO, "ringfuse: membarrier(2) unavailable; every request "
					 "pays a memory fence for interrupts");
		atomic_fetch_or(&se->intr.npending, RF_INTR_FENCE_BIT);
	}
}

bool rf_intr_take_slow(rf_session *se, rf_req *req)
{
	uint64_t unique = __atomic_load_n(&req->unique, __ATOMIC_RELAXED);
	struct rf_intr_ent *set;
	bool got = false;

	if (atomic_load_explicit(&se->intr.npending, memory_order_relaxed) & RF_INTR_FENCE_BIT) {
		rf_full_fence();
		if (!(atomic_load_explicit(&se->intr.npending, memory_order_relaxed) &
		      ~RF_INTR_FENCE_BIT))
			return false;
	}
	set = intr_set(se, unique);
	for (int w = 0; w < RF_INTR_WAYS; w++) {
		uint64_t v = atomic_load_explicit(&set[w].unique, memory_order_acquire);

		if (!v)
			continue;
		if (v == unique) {
			got |= ent_take(se, &set[w], unique);
		} else {
			uint64_t t = atomic_load_explicit(&set[w].t_ns, memory_order_relaxed);

			if (req->t_start_ns > t && req->t_start_ns - t > RF_INTR_MAX_AGE_NS)
				ent_take(se, &set[w], v);
		}
	}
	return got && mark(req, unique);
}

rf_req *rf_session_interrupt(rf_session *se, uint64_t unique)
{
	struct rf_intr_ent *e;
	rf_req *req, *h = NULL;
	bool deliver = false;

	if (!unique)
		return NULL;
	/* The usual case: the target is in a handler. */
	req = scan(se, unique, &h);
	if (req)
		return mark(req, unique) ? h : NULL;
	/* Not begun yet: remember it, then look again (see the top of the file). */
	pthread_mutex_lock(&se->intr.lock);
	e = ent_insert(se, unique, rf_now_ns());
	heavy_barrier(se);
	req = scan(se, unique, &h);
	if (req && ent_take(se, e, unique))
		deliver = mark(req, unique);
	pthread_mutex_unlock(&se->intr.lock);
	return deliver ? h : NULL;
}

unsigned int rf_intr_pending(rf_session *se)
{
	return atomic_load(&se->intr.npending) & ~RF_INTR_FENCE_BIT;
}
