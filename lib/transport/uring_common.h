/*
 * Pieces shared by the two io_uring transports (uring.c and uring_rw.c): the SQE for a
 * request's backend operation (rf_io_*), and the lock-free list that carries requests answered
 * on other threads to the queue thread that owns their ring.
 */
#ifndef RF_TRANSPORT_URING_COMMON_H
#define RF_TRANSPORT_URING_COMMON_H

#include "ringfuse_i.h"

#include <errno.h>
#include <liburing.h>
#include <string.h>
#include <sys/resource.h>

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

/* Log why a ring could not be created; ENOMEM there nearly always means the locked-memory limit. */
static inline void rf_uring_log_init_error(const char *who, unsigned int idx, int err)
{
	struct rlimit rl;

	if (err == -ENOMEM && getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		rf_log(RF_LOG_ERR,
		       "ringfuse: %s %u: cannot create its io_uring: %s (the locked memory limit, "
		       "RLIMIT_MEMLOCK, is %llu KiB: raise it, e.g. ulimit -l)",
		       who, idx, strerror(-err), (unsigned long long)rl.rlim_cur / 1024);
	else
		rf_log(RF_LOG_ERR, "ringfuse: %s %u: cannot create its io_uring: %s", who, idx,
		       strerror(-err));
}

/*
 * Multi-producer single-consumer list of requests, linked through req->next. Producers push
 * (any thread); the consumer takes the whole list at once, so there is no ABA. Returns true
 * when the list was empty: that producer must wake the consumer, later ones need not.
 */
static inline bool rf_mpsc_push(rf_req *_Atomic *head, rf_req *req)
{
	rf_req *old = atomic_load_explicit(head, memory_order_relaxed);

	do {
		req->next = old;
	} while (!atomic_compare_exchange_weak_explicit(head, &old, req, memory_order_release,
							memory_order_relaxed));
	return old == NULL;
}

/* Take everything pushed so far (newest first), or NULL. */
static inline rf_req *rf_mpsc_take_all(rf_req *_Atomic *head)
{
	/* A plain load first: the exchange would pull the line from the producers every time. */
	if (!atomic_load_explicit(head, memory_order_relaxed))
		return NULL;
	return atomic_exchange_explicit(head, NULL, memory_order_acquire);
}

#endif /* RF_TRANSPORT_URING_COMMON_H */
