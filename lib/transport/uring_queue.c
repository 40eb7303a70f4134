/*
 * The life cycle shared by the io_uring transports' queues (uring_queue.h says what a queue
 * is): starting their threads, rings and reports; the loop's wait; draining and stopping; a
 * queue's death; and the end, when a queue is freed only once no thread can touch it.
 */
#include "uring_queue.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define UQ_TIMED_WAIT_NS  (10ull * 1000 * 1000) /* draining or stopping: look around often */
#define UQ_FINISH_WAIT_US (500 * 1000)		/* finish: wait for handlers, all queues */

/* ---- set up ---- */

int rf_uq_set_init(struct rf_uq_set *set, rf_session *se, const char *kind, unsigned int n,
		   void (*free_queue)(struct rf_uq *q))
{
	pthread_condattr_t ca;

	memset(set, 0, sizeof(*set));
	set->q = calloc(n, sizeof(set->q[0]));
	if (!set->q)
		return -ENOMEM;
	set->se = se;
	set->kind = kind;
	set->n = n;
	set->free_queue = free_queue;
	pthread_mutex_init(&set->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&set->cond, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

int rf_uq_init(struct rf_uq *q, struct rf_uq_set *set, unsigned int idx)
{
	q->set = set;
	q->se = set->se;
	q->idx = idx;
	snprintf(q->name, sizeof(q->name), "%s %u", set->kind, idx);
	/* Blocking on purpose: a non-blocking eventfd read would complete with EAGAIN at once. */
	q->efd = eventfd(0, EFD_CLOEXEC);
	if (q->efd < 0)
		return -errno;
	set->q[idx] = q;
	return 0;
}

int rf_uq_start(struct rf_uq *q, void *(*fn)(void *))
{
	sigset_t all, old;
	int ret;

	/* Signals are for the session's main thread. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = -pthread_create(&q->thread, NULL, fn, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	q->thread_started = ret == 0;
	return ret;
}

void rf_uq_report_setup(struct rf_uq *q, int err)
{
	if (err)
		rf_log(RF_LOG_ERR, "ringfuse: %s: setup failed: %s", q->name, strerror(-err));
	pthread_mutex_lock(&q->set->lock);
	q->setup_err = err;
	q->setup_done = true;
	pthread_cond_broadcast(&q->set->cond);
	pthread_mutex_unlock(&q->set->lock);
}

int rf_uq_wait_setup(struct rf_uq_set *set)
{
	int err = 0;

	pthread_mutex_lock(&set->lock);
	for (unsigned int i = 0; i < set->n; i++) {
		struct rf_uq *q = set->q[i];

		if (!q || !q->thread_started)
			continue;
		while (!q->setup_done)
			pthread_cond_wait(&set->cond, &set->lock);
		if (q->setup_err && !err)
			err = q->setup_err;
	}
	pthread_mutex_unlock(&set->lock);
	return err;
}

/* Why a ring could not be created; ENOMEM there nearly always means the locked-memory limit. */
static void log_ring_error(const struct rf_uq *q, int err)
{
	struct rlimit rl;

	if (err == -ENOMEM && getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
		rf_log(RF_LOG_ERR,
		       "ringfuse: %s: cannot create its io_uring: %s (the locked memory limit, "
		       "RLIMIT_MEMLOCK, is %llu KiB: raise it, e.g. ulimit -l)",
		       q->name, strerror(-err), (unsigned long long)rl.rlim_cur / 1024);
	else
		rf_log(RF_LOG_ERR, "ringfuse: %s: cannot create its io_uring: %s", q->name,
		       strerror(-err));
}

int rf_uq_ring_init(struct rf_uq *q, unsigned int entries, unsigned int cq_entries,
		    const unsigned int *tries, size_t ntries)
{
	int ret = -EINVAL;

	for (size_t i = 0; i < ntries; i++) {
		struct io_uring_params p = {.flags = tries[i]};

		if (cq_entries) {
			p.flags |= IORING_SETUP_CQSIZE;
			p.cq_entries = cq_entries;
		}
		ret = io_uring_queue_init_params(entries, &q->ring, &p);
		if (ret != -EINVAL)
			break;
	}
	if (ret < 0) {
		log_ring_error(q, ret);
		return ret;
	}
	q->ring_ok = true;
	return 0;
}

int rf_uq_register_reqs(struct rf_uq *q, rf_req *first, size_t count, size_t stride)
{
	int ret = rf_session_register_reqs(q->se, first, count, stride);

	if (ret)
		return ret;
	q->reqs = first;
	q->nreqs = count;
	q->req_stride = stride;
	q->reqs_registered = true;
	return 0;
}

void rf_uq_publish_stats(struct rf_uq_set *set)
{
	for (unsigned int i = 0; i < set->n; i++)
		if (set->q[i])
			rf_session_register_queue(set->se, set->q[i]->idx, &set->q[i]->stats);
}

/* ---- the loop ---- */

struct io_uring_sqe *rf_uq_get_sqe(struct rf_uq *q)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);

	if (!sqe) {
		/* The SQ has a slot per request object plus spares, so this means a bug. */
		rf_log_once(RF_LOG_WARN, "ringfuse: %s: submission queue full", q->name);
		io_uring_submit(&q->ring);
		rf_stat_inc(q->stats.own.enters, 1);
		sqe = io_uring_get_sqe(&q->ring);
	}
	return sqe;
}

void rf_uq_arm_wake(struct rf_uq *q, uint64_t ud)
{
	struct io_uring_sqe *sqe;

	if (q->efd_armed)
		return;
	sqe = rf_uq_get_sqe(q);
	if (!sqe)
		return;
	io_uring_prep_read(sqe, q->efd, &q->efd_val, sizeof(q->efd_val), 0);
	sqe->user_data = ud;
	q->efd_armed = true;
}

void rf_uq_wait(struct rf_uq *q)
{
	int ret;

	if (atomic_load_explicit(&q->set->draining, memory_order_relaxed) || rf_uq_stopping(q)) {
		struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = UQ_TIMED_WAIT_NS};
		struct io_uring_cqe *cqe;

		ret = io_uring_submit_and_wait_timeout(&q->ring, &cqe, 1, &ts, NULL);
	} else {
		ret = io_uring_submit_and_wait(&q->ring, 1);
	}
	rf_stat_inc(q->stats.own.enters, 1);
	if (ret >= 0 || ret == -EINTR || ret == -EAGAIN || ret == -EBUSY || ret == -ETIME)
		return;
	rf_log(RF_LOG_ERR, "ringfuse: %s: io_uring_enter failed: %s", q->name, strerror(-ret));
	q->fatal = ret;
}

static void report_drained(struct rf_uq *q)
{
	pthread_mutex_lock(&q->set->lock);
	q->drained = true;
	pthread_cond_broadcast(&q->set->cond);
	pthread_mutex_unlock(&q->set->lock);
}

void rf_uq_check_drained(struct rf_uq *q, unsigned int held)
{
	if (!atomic_load_explicit(&q->set->draining, memory_order_relaxed))
		return;
	/* Replies made but not yet submitted are not delivered yet either. */
	if (held || atomic_load_explicit(&q->deferred, memory_order_relaxed) ||
	    io_uring_sq_ready(&q->ring))
		return;
	pthread_mutex_lock(&q->set->lock);
	if (!q->drained) {
		q->drained = true;
		pthread_cond_broadcast(&q->set->cond);
	}
	pthread_mutex_unlock(&q->set->lock);
}

void rf_uq_ended(struct rf_uq *q, const char *why)
{
	report_drained(q); /* nothing more will come of it */
	if (!why || rf_uq_stopping(q))
		return;
	rf_session_fail(q->se, q->fatal ? q->fatal : -EIO,
			"ringfuse: %s died (%s): ending the session, so that the kernel fails "
			"the requests it would still route there",
			q->name, why);
}

bool rf_uq_settle(struct rf_uq *q, const unsigned int *inflight, uint64_t wait_ns,
		  void (*reap)(struct rf_uq *q))
{
	struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = UQ_TIMED_WAIT_NS};
	uint64_t deadline = rf_now_ns() + wait_ns;

	while (*inflight && !q->fatal && rf_now_ns() < deadline) {
		struct io_uring_cqe *cqe;

		io_uring_submit_and_wait_timeout(&q->ring, &cqe, 1, &ts, NULL);
		reap(q);
	}
	return *inflight == 0;
}

/* ---- the end ---- */

void rf_uq_drain(struct rf_uq_set *set, uint64_t deadline_ns)
{
	struct timespec until = {.tv_sec = (time_t)(deadline_ns / 1000000000ull),
				 .tv_nsec = (long)(deadline_ns % 1000000000ull)};

	atomic_store(&set->draining, true);
	for (unsigned int i = 0; i < set->n; i++)
		if (set->q[i])
			rf_uq_wake(set->q[i]);
	pthread_mutex_lock(&set->lock);
	for (unsigned int i = 0; i < set->n; i++) {
		struct rf_uq *q = set->q[i];

		while (q && q->thread_started && !q->drained)
			if (pthread_cond_timedwait(&set->cond, &set->lock, &until) == ETIMEDOUT)
				goto out;
	}
out:
	for (unsigned int i = 0; i < set->n; i++)
		if (set->q[i] && set->q[i]->thread_started && !set->q[i]->drained)
			rf_log(RF_LOG_WARN,
			       "ringfuse: %s: requests still unanswered when the drain time "
			       "ran out; their callers get an error",
			       set->q[i]->name);
	pthread_mutex_unlock(&set->lock);
}

void rf_uq_stop(struct rf_uq_set *set)
{
	atomic_store(&set->stopping, true);
	for (unsigned int i = 0; i < set->n; i++)
		if (set->q[i])
			rf_uq_wake(set->q[i]);
}

/*
 * May another thread still touch q? Called once its thread is gone. A request is claimed
 * (REPLIED) before its reply reaches the transport, so REPLIED counts as busy until the reply
 * is on the deferred list; replies left there are taken back (nothing will commit them any
 * more: their callers get the connection's abort) and the senders count covers the rest of
 * rf_uq_defer().
 */
static bool busy(struct rf_uq *q)
{
	for (rf_req *r = rf_uq_take_deferred(q); r; r = r->next)
		rf_req_set_free(r);
	if (atomic_load(&q->senders))
		return true;
	for (size_t i = 0; i < q->nreqs; i++)
		if (rf_req_state((rf_req *)((char *)q->reqs + i * q->req_stride)) != RF_REQ_FREE)
			return true;
	return false;
}

/*
 * Queues kept because a late reply could still write into them; reachable from here so that
 * leak checkers see a deliberate decision rather than a leak.
 */
static struct rf_uq *_Atomic graveyard;

static void bury(struct rf_uq *q)
{
	q->grave_next = atomic_load(&graveyard);
	while (!atomic_compare_exchange_weak(&graveyard, &q->grave_next, q))
		;
}

static void finish_one(struct rf_uq_set *set, struct rf_uq *q, unsigned int *wait_us)
{
	if (q->reqs_registered)
		rf_session_unregister_reqs(q->se, q->reqs);
	if (q->ring_ok)
		io_uring_queue_exit(&q->ring); /* cancels what the kernel still holds */
	if (set->release_queue)
		set->release_queue(q);
	while (busy(q) && *wait_us > 0) {
		usleep(1000);
		*wait_us = *wait_us > 1000 ? *wait_us - 1000 : 0;
	}
	if (q->leak || busy(q)) {
		/* A late reply would write into its buffers and wake it: keep it all. */
		rf_log(RF_LOG_WARN,
		       "ringfuse: %s: requests still unanswered at exit; keeping its memory",
		       q->name);
		bury(q);
		return;
	}
	close(q->efd);
	set->free_queue(q);
}

void rf_uq_finish(struct rf_uq_set *set)
{
	unsigned int wait_us = UQ_FINISH_WAIT_US;

	rf_uq_stop(set);
	for (unsigned int i = 0; i < set->n; i++) {
		struct rf_uq *q = set->q[i];

		if (!q)
			continue;
		if (q->thread_started)
			pthread_join(q->thread, NULL);
		if (set->retire_stats)
			set->retire_stats(q);
		else
			rf_session_retire_queue(set->se, q->idx);
		finish_one(set, q, &wait_us);
	}
	pthread_mutex_destroy(&set->lock);
	pthread_cond_destroy(&set->cond);
	free(set->q);
	set->q = NULL;
}
