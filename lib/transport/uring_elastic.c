/*
 * What makes the io-uring transport's queues elastic, on the thread that owns them:
 *
 * Depth that grows with load. A queue starts with uring_depth_min entries. When, within one
 * round of its thread, every live entry of a queue has held a request (taken this round, or
 * still held by a handler from before), the kernel may have had more requests for it than
 * entries: the queue registers more, doubling up to uring_depth, within the mount's payload
 * bound (uring_payload_max, shared by all queues through one atomic counter). Decided by the
 * owning thread, on a request it received, with no lock.
 *
 * Memory that follows use. The kernel hands the next request to the entry it got back last
 * (its list of available entries is LIFO), so under light load the same few entries serve
 * and the others sit idle. An entry idle for uring_trim_ms gives its payload pages back (see
 * uring_mem.c for how that is safe while the kernel may copy a request into it). A timer runs
 * only while some entry still holds pages: an idle mount wakes nobody.
 *
 * Single-threaded serving. The thread that serves on the session's own thread also reads
 * /dev/fuse, with a READ in its ring (forced async: /dev/fuse cannot be polled by io_uring),
 * through the slots of the classic reader (rf_dev_reader_*); after a forget it waits a
 * millisecond before the next read, so that the kernel gathers the next ones, as the classic
 * reader does.
 */
#include "uring_i.h"

#include <stdio.h>

#define URING_TRIM_MIN_NS  (1000ull * 1000) /* never look more often than every ms */
#define URING_DEV_RETRY_US 1000		    /* every slot held: look again after this */
#define URING_DEV_WAIT_NS  (500ull * 1000 * 1000)

/* ---- depth ---- */

int kq_make_entries(struct uring_kq *kq, unsigned int want)
{
	struct uring_thread *t = kq->t;
	struct uring_tp *tp = t->tp;
	unsigned int have = kq->depth, add;
	uint64_t made;
	int ret;

	if (want > tp->depth_max)
		want = tp->depth_max;
	if (want <= have)
		return 0;
	add = want - have;
	/* The mount's bound: other threads grow their queues meanwhile. */
	made = atomic_load_explicit(&tp->entries_made, memory_order_relaxed);
	do {
		if (made >= tp->budget.entries_max) {
			kq->grow_stopped = true;
			rf_log_once(RF_LOG_INFO,
				    "ringfuse: io-uring queues stop growing: the payload bound "
				    "(uring_payload_max) is reached");
			return -ENOSPC;
		}
		if (add > tp->budget.entries_max - made)
			add = (unsigned int)(tp->budget.entries_max - made);
	} while (!atomic_compare_exchange_weak_explicit(
		&tp->entries_made, &made, made + add, memory_order_relaxed, memory_order_relaxed));
	ret = rf_entry_mem_extend(&kq->mem, have + add);
	if (ret) {
		atomic_fetch_sub_explicit(&tp->entries_made, add, memory_order_relaxed);
		kq->grow_stopped = true;
		rf_log_once(RF_LOG_WARN,
			    "ringfuse: io-uring queue %u cannot grow to %u entries: %s (the "
			    "system's commit limit?); it stays at %u",
			    kq->qid, have + add, strerror(-ret), have);
		return ret;
	}
	for (unsigned int i = have; i < have + add; i++) {
		struct ring_ent *e = &kq->ents[i];

		ent_init(kq, e, i);
		kq->depth++;
		kq->live++;
		if (!ent_queue_cmd(t, e, FUSE_IO_URING_CMD_REGISTER))
			reg_failed(kq, e, -EBUSY);
	}
	__atomic_store_n(&kq->stats->own.entries, kq->depth, __ATOMIC_RELAXED);
	return 0;
}

void kq_grow(struct uring_kq *kq)
{
	if (kq_make_entries(kq, rf_uring_depth_grow(kq->depth, kq->t->tp->depth_max)) == 0)
		rf_stat_inc(kq->stats->own.grows, 1);
}

/* ---- memory ---- */

static void ns_to_ts(uint64_t ns, struct __kernel_timespec *ts)
{
	ts->tv_sec = (long long)(ns / 1000000000ull);
	ts->tv_nsec = (long long)(ns % 1000000000ull);
}

void thread_arm_trim(struct uring_thread *t)
{
	uint64_t period = t->tp->trim_ns / 2;
	struct io_uring_sqe *sqe;

	if (t->trim_armed || !t->trimming)
		return;
	sqe = rf_uq_get_sqe(&t->uq);
	if (!sqe)
		return;
	/* Every entry idle for trim_ns is trimmed within 1.5 trim_ns of its last request. */
	ns_to_ts(period < URING_TRIM_MIN_NS ? URING_TRIM_MIN_NS : period, &t->trim_ts);
	io_uring_prep_timeout(sqe, &t->trim_ts, 0, 0);
	sqe->user_data = ud_pack(UD_TRIM, 0);
	t->trim_armed = true;
}

/* Has a request completed into e that the loop has not reaped yet? */
static bool request_waiting(struct uring_thread *t, const struct ring_ent *e)
{
	uint64_t commit = ud_pack(UD_COMMIT, e->slot), reg = ud_pack(UD_REGISTER, e->slot);
	struct io_uring_cqe *cqe;
	unsigned int head;

	io_uring_for_each_cqe(&t->uq.ring, head, cqe)
	{
		if ((cqe->user_data == commit || cqe->user_data == reg) && cqe->res == 0)
			return true;
	}
	return false;
}

static bool ent_trim(struct uring_thread *t, struct ring_ent *e)
{
	int ret = rf_trim_begin(&t->trimmer, e->payload);

	if (ret) {
		rf_log_once(RF_LOG_WARN,
			    "ringfuse: idle ring entries cannot give their memory back: %s",
			    strerror(-ret));
		t->trimming = false;
		return false;
	}
	/* The kernel may have copied a request in just before the move: it is in scratch. */
	if (request_waiting(t, e))
		rf_trim_restore(&t->trimmer, e->payload, e->hdr->ring_ent_in_out.payload_sz);
	rf_trim_end(&t->trimmer);
	return true;
}

void thread_trim(struct uring_thread *t)
{
	uint64_t now = rf_now_ns(), idle = t->tp->trim_ns;

	t->trim_due = false;
	for (unsigned int k = 0; k < t->nkq && t->trimming; k++) {
		struct uring_kq *kq = t->kq[k];

		for (unsigned int i = 0; i < kq->depth && t->trimming; i++) {
			struct ring_ent *e = &kq->ents[i];

			/* Waiting in the kernel, its last reply read (the SQ was submitted). */
			if (!e->warm || e->state != ENT_KERNEL || now - e->req.t_start_ns < idle)
				continue;
			if (!ent_trim(t, e))
				break;
			e->warm = false;
			t->warm--;
			rf_stat_inc(kq->stats->own.trims, 1);
		}
	}
	if (t->warm)
		thread_arm_trim(t);
}

/* ---- single-threaded serving: /dev/fuse in the ring ---- */

int thread_devread_setup(struct uring_thread *t)
{
	rf_session *se = t->uq.se;

	t->devr = rf_dev_reader_new(se, se->fd, 0, &se->dev_stats);
	return t->devr ? 0 : -ENOMEM;
}

static void dev_pause(struct uring_thread *t, unsigned int us)
{
	struct io_uring_sqe *sqe = rf_uq_get_sqe(&t->uq);

	if (!sqe)
		return;
	ns_to_ts((uint64_t)us * 1000, &t->dev_ts);
	io_uring_prep_timeout(sqe, &t->dev_ts, 0, 0);
	sqe->user_data = ud_pack(UD_DEVPAUSE, 0);
	t->dev_waiting = true;
}

void thread_arm_devread(struct uring_thread *t)
{
	rf_session *se = t->uq.se;
	struct io_uring_sqe *sqe;
	rf_req *slot;
	void *buf;

	/* Like the classic reader, it stops once the session ends (the drain needs no reads). */
	if (t->dev_inflight || t->dev_waiting || t->conn_gone || rf_uq_stopping(&t->uq) ||
	    atomic_load_explicit(&se->exiting, memory_order_relaxed))
		return;
	buf = rf_dev_reader_buf(t->devr, &slot);
	if (!buf) {
		dev_pause(t, URING_DEV_RETRY_US); /* every slot held by a handler */
		return;
	}
	sqe = rf_uq_get_sqe(&t->uq);
	if (!sqe) {
		rf_dev_reader_put(t->devr, slot);
		return;
	}
	io_uring_prep_read(sqe, t->dev_fd, buf, (unsigned int)se->dev_bufsize, 0);
	/* Waits in an io-wq worker: /dev/fuse has no non-blocking read io_uring could poll. */
	sqe->flags |= t->dev_sqe_flags | IOSQE_ASYNC;
	sqe->user_data = ud_pack(UD_DEVREAD, 0);
	t->dev_slot = slot;
	t->dev_inflight = 1;
}

void thread_devread_done(struct uring_thread *t, enum ud_kind kind, int res)
{
	rf_session *se = t->uq.se;
	rf_req *slot = t->dev_slot;

	if (kind == UD_DEVPAUSE) {
		t->dev_waiting = false; /* the next round reads again */
		return;
	}
	t->dev_inflight = 0;
	t->dev_slot = NULL;
	if (res > 0) {
		if (rf_dev_reader_dispatch(t->devr, slot, (size_t)res) && se->uring_active)
			dev_pause(t, RF_DEV_FORGET_GATHER_US);
		return;
	}
	rf_dev_reader_put(t->devr, slot);
	switch (res) {
	case -EINTR:
	case -EAGAIN:
	case -ENOENT: /* interrupted before we read it */
	case -ECANCELED:
		return;
	case 0:
	case -ENODEV:
	case -ECONNABORTED:
	case -ENOTCONN:
		/* The connection ending is not an error. */
		if (!t->conn_gone) {
			t->conn_gone = true;
			rf_session_conn_lost(se);
		}
		return;
	default:
		rf_session_fail(se, res, "ringfuse: reading /dev/fuse failed: %s", strerror(-res));
		return;
	}
}

void thread_devread_end(struct uring_thread *t)
{
	struct io_uring_sqe *sqe;
	bool leaked = false;

	if (t->dev_inflight && (sqe = rf_uq_get_sqe(&t->uq)) != NULL) {
		io_uring_prep_cancel64(sqe, ud_pack(UD_DEVREAD, 0), 0);
		sqe->user_data = ud_pack(UD_CANCEL, 0);
	}
	if (t->dev_inflight &&
	    !rf_uq_settle(&t->uq, &t->dev_inflight, URING_DEV_WAIT_NS, thread_reap_uq)) {
		/* The read may still land in its slot: keep the reader's memory. */
		rf_log(RF_LOG_WARN, "ringfuse: %s: a /dev/fuse read did not cancel", t->uq.name);
		t->devr = NULL;
		return;
	}
	rf_dev_reader_end(t->devr, &leaked);
	t->devr = NULL;
	t->dev_leaked = leaked;
}
