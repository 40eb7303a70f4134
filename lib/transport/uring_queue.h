/*
 * What the two io_uring transports (uring.c and uring_rw.c) share: a queue is a thread that
 * owns one io_uring and a set of request objects, serves them in a loop of its transport's
 * making, takes replies made on other threads through a lock-free list and an eventfd, and
 * lives through one life cycle: set up, serve, drain, stop, finish. This file and
 * uring_queue.c hold everything of that but the transport's own protocol.
 *
 * Life of a queue (see README.md in this directory for the teardown rule behind it):
 *   setup     on its thread: buffers, ring, first SQEs; reported to rf_uq_wait_setup()
 *   serving   the transport's loop: wait (rf_uq_wait), reap, dispatch, commit deferred replies
 *   draining  (rf_uq_drain) the loop goes on, with short waits, until none of its requests is
 *             held by a handler or backend I/O and every reply is submitted (rf_uq_drained);
 *             then it says so, and goes on serving until stopped
 *   stopping  (rf_uq_stop) the loop ends; in-flight operations are settled on the thread
 *   finish    (rf_uq_finish, session thread) join, close the ring, wait (bounded) until no
 *             other thread can still touch the queue, then free it, or keep it for good
 *             (the graveyard) when a late reply could still arrive
 * A queue whose loop ends while the session still needs it (a fatal io_uring error, every
 * request object dead) has died: rf_uq_ended() ends the session with an error, so the kernel
 * fails that queue's callers instead of leaving them waiting.
 *
 * Threads: fields marked "queue thread" are touched only by the queue's own thread; the
 * deferred list, the senders count and the shared half of the counters by any thread; the
 * setup and drain reports under the set's lock.
 */
#ifndef RF_TRANSPORT_URING_QUEUE_H
#define RF_TRANSPORT_URING_QUEUE_H

#include "ringfuse_i.h"

#include <errno.h>
#include <liburing.h>
#include <string.h>

struct rf_uq_set;

struct rf_uq {
	struct rf_uq_set *set;
	rf_session *se;
	unsigned int idx; /* queue or worker index, also rf_req_queue() */
	char name[48];	  /* for messages: "io-uring queue 3" (set kind and idx, unless changed) */
	int efd;	  /* wake-up eventfd: written by stop/drain and by deferred replies */
	pthread_t thread;
	bool thread_started;

	/* Reports, under set->lock. */
	bool setup_done;
	int setup_err;
	bool drained;

	/* Queue thread. */
	struct io_uring ring;
	bool ring_ok;
	bool efd_armed;
	uint64_t efd_val;
	int fatal;		  /* the ring failed for good (-errno) */
	bool leak;		  /* something may still write into its buffers: keep them */
	rf_req *reqs;		  /* its request objects, for the scanner and the busy check */
	size_t nreqs, req_stride; /* registered with the session when reqs_registered */
	bool reqs_registered;
	struct rf_uq *grave_next; /* on the graveyard list once kept */

	/* Any thread. */
	_Alignas(64) rf_req *_Atomic deferred; /* MPSC list of replies to commit */
	_Atomic unsigned int senders;	       /* foreign threads inside rf_uq_defer() */

	_Alignas(64) struct rf_qstats stats;
};

struct rf_uq_set {
	rf_session *se;
	const char *kind; /* "io-uring queue", "uring-rw worker": for logs */
	_Atomic bool stopping;
	_Atomic bool draining;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned int n;
	struct rf_uq **q;
	/* After its thread and ring are gone: drop what no sender can reach (may be NULL). */
	void (*release_queue)(struct rf_uq *q);
	/* Free a queue's memory once nothing can touch it (its transport's part too). */
	void (*free_queue)(struct rf_uq *q);
	/* Its thread is gone: keep its counters readable (may be NULL: the session's queue
	 * q->idx is retired). For queues whose counters are published under other indices. */
	void (*retire_stats)(struct rf_uq *q);
};

/* ---- set up (session thread) ---- */
int rf_uq_set_init(struct rf_uq_set *set, rf_session *se, const char *kind, unsigned int n,
		   void (*free_queue)(struct rf_uq *q));
/* Initialise q (embedded first in the transport's queue) as queue idx of set. 0 or -errno. */
int rf_uq_init(struct rf_uq *q, struct rf_uq_set *set, unsigned int idx);
/* Start q's thread running fn(q), signals blocked (they are for the session's thread). */
int rf_uq_start(struct rf_uq *q, void *(*fn)(void *));
/* Wait until every started queue reported its setup; returns the first error. */
int rf_uq_wait_setup(struct rf_uq_set *set);
/* On the queue thread: setup finished with err. */
void rf_uq_report_setup(struct rf_uq *q, int err);
/* Create q's ring: the first of tries[] the kernel accepts, entries SQEs, cq_entries CQEs (0:
 * twice the SQEs). */
int rf_uq_ring_init(struct rf_uq *q, unsigned int entries, unsigned int cq_entries,
		    const unsigned int *tries, size_t ntries);
/* Let the session's interrupt scanner see q's request objects; 0 or -ENOMEM. */
int rf_uq_register_reqs(struct rf_uq *q, rf_req *first, size_t count, size_t stride);
/* Counters of every queue are the session's from now on. */
void rf_uq_publish_stats(struct rf_uq_set *set);

/* ---- the loop (queue thread) ---- */
/* A free SQE, submitting what is queued if the SQ is full (NULL only if even that fails). */
struct io_uring_sqe *rf_uq_get_sqe(struct rf_uq *q);
/* Keep a read armed on the wake-up eventfd; its CQE carries user_data ud. */
void rf_uq_arm_wake(struct rf_uq *q, uint64_t ud);
/* Submit and wait for at least one CQE; while draining or stopping, for at most 10 ms. A
 * fatal error is logged and left in q->fatal. */
void rf_uq_wait(struct rf_uq *q);
/* The queue was asked to stop (its loop should end). */
static inline bool rf_uq_stopping(struct rf_uq *q)
{
	return atomic_load_explicit(&q->set->stopping, memory_order_relaxed);
}
/* While draining, report once when nothing of the queue is left (held is what the transport
 * still has in handlers or backend I/O). */
void rf_uq_check_drained(struct rf_uq *q, unsigned int held);
/* The queue's loop ended. why: NULL when it was asked to stop or the connection ended; else
 * the reason the queue died, which ends the session with an error. */
void rf_uq_ended(struct rf_uq *q, const char *why);
/* Fault injection (RINGFUSE_FAULT=uring_queue_fatal:Q): true when q, about to dispatch a
 * request with this opcode for its queue idx, must fail instead. Logs why. */
static inline bool rf_uq_fault(struct rf_uq *q, unsigned int idx, uint32_t opcode)
{
	if (__builtin_expect(rf_faults.uring_queue_fatal == 0, 1) ||
	    rf_faults.uring_queue_fatal != (int)idx + 1 || opcode != FUSE_READ)
		return false;
	rf_log(RF_LOG_ERR, "ringfuse: %s: io_uring_enter failed: %s (injected fault)", q->name,
	       strerror(EIO));
	q->fatal = -EIO;
	return true;
}
/* Wait (bounded) for in-flight operations counted by *inflight to complete, reaping CQEs with
 * reap(q). Returns false if some did not: their buffers must then be kept (q->leak). */
bool rf_uq_settle(struct rf_uq *q, const unsigned int *inflight, uint64_t wait_ns,
		  void (*reap)(struct rf_uq *q));

/* ---- replies from any thread ---- */
static inline void rf_uq_wake(struct rf_uq *q)
{
	uint64_t one = 1;

	/* Can only fail if the counter were about to overflow, and then a wake-up is pending. */
	if (write(q->efd, &one, sizeof(one)) < 0)
		rf_log_once(RF_LOG_DEBUG, "ringfuse: io-uring wake-up: %s", strerror(errno));
}

/*
 * A reply made on a thread other than the queue's: hand req to the queue, never touch its
 * ring. Multi-producer single-consumer list linked through req->next; only the push that
 * makes the list non-empty wakes the queue, which takes the whole list at once (no ABA).
 */
static inline void rf_uq_defer(struct rf_uq *q, rf_req *req)
{
	rf_req *old;

	atomic_fetch_add_explicit(&q->senders, 1, memory_order_acquire);
	old = atomic_load_explicit(&q->deferred, memory_order_relaxed);
	do {
		req->next = old;
	} while (!atomic_compare_exchange_weak_explicit(
		&q->deferred, &old, req, memory_order_release, memory_order_relaxed));
	if (!old)
		rf_uq_wake(q);
	atomic_fetch_sub_explicit(&q->senders, 1, memory_order_release);
}

/* Queue thread: everything deferred so far (newest first), or NULL. */
static inline rf_req *rf_uq_take_deferred(struct rf_uq *q)
{
	/* A plain load first: the exchange would pull the line from the producers every time. */
	if (!atomic_load_explicit(&q->deferred, memory_order_relaxed))
		return NULL;
	return atomic_exchange_explicit(&q->deferred, NULL, memory_order_acquire);
}

/* ---- the end (session thread) ---- */
/* Let every queue finish what it holds, up to deadline (CLOCK_MONOTONIC ns). */
void rf_uq_drain(struct rf_uq_set *set, uint64_t deadline_ns);
/* Ask every queue's loop to end. Idempotent, any thread. */
void rf_uq_stop(struct rf_uq_set *set);
/* Join, close, free (or keep) every queue, then the set's own resources. */
void rf_uq_finish(struct rf_uq_set *set);

/* ---- helpers ---- */
/* Fill sqe with io (user_data is the caller's). Returns false if the ring cannot run it. */
static inline bool rf_uring_prep_io(struct io_uring_sqe *sqe, const struct rf_io *io)
{
	switch (io->op) {
	case RF_IO_READ:
		io_uring_prep_read(sqe, io->fd, io->buf, (unsigned int)io->len, (uint64_t)io->off);
		return true;
	case RF_IO_WRITE:
		io_uring_prep_write(sqe, io->fd, io->buf, (unsigned int)io->len, (uint64_t)io->off);
		return true;
	case RF_IO_FSYNC:
		io_uring_prep_fsync(sqe, io->fd, io->flags ? IORING_FSYNC_DATASYNC : 0);
		return true;
	case RF_IO_FALLOCATE:
		io_uring_prep_fallocate(sqe, io->fd, io->flags, io->off, (off_t)io->len);
		return true;
	case RF_IO_STATX:
		io_uring_prep_statx(sqe, io->fd, io->path, io->flags, io->mask, io->buf);
		return true;
	case RF_IO_OPENAT:
		io_uring_prep_openat(sqe, io->fd, io->path, io->flags, io->mode);
		return true;
	}
	return false;
}

static inline size_t rf_round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

#endif /* RF_TRANSPORT_URING_QUEUE_H */
