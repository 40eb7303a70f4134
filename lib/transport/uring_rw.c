/*
 * The uring-rw transport: the classic /dev/fuse protocol (read one request, write its reply)
 * driven by io_uring READ and WRITE SQEs instead of read(2) and write(2) calls. Chosen with
 * -o transport=uring-rw; the connection does not use FUSE_OVER_IO_URING then.
 *
 * Design
 *
 * Workers. T worker threads (-o threads=N, default one per online CPU; none with -s, where
 * the session's main reader serves alone), each with its own cloned /dev/fuse fd and its own
 * ring, which only the worker thread submits to.
 *
 * Slots. A worker keeps K slots (-o uring_depth=K, default 8), each with a read in flight. A
 * slot is a request buffer of dev_bufsize bytes, a reply area (struct fuse_out_header followed
 * by the body the reply functions encode) and the rf_req. Slot states (worker thread only):
 *   READING  a read is queued or in flight
 *   USER     holds a request: in the dispatcher, a handler, or a deferred reply
 *   WRITING  the reply write is queued or in flight; the read is re-armed when it completes
 *   DEAD     the connection ended or the slot failed for good
 *
 * Reads are forced async (IOSQE_ASYNC). /dev/fuse has no FMODE_NOWAIT: on an O_NONBLOCK fd
 * io_uring returns EAGAIN instead of polling, and on a blocking fd a read retried after a poll
 * wake-up blocks the worker thread itself whenever another reader took the request first. An
 * async read waits in an io-wq kernel thread instead, and the device's exclusive wait queue
 * hands each new request to exactly one waiting read. Writes to /dev/fuse never block and
 * complete inline.
 *
 * Replies. On the worker thread a reply becomes a WRITE SQE that goes out with the next
 * io_uring_enter. A reply from another thread goes through a lock-free MPSC list and an
 * eventfd the worker keeps a read armed on (as in the uring transport) rather than a write(2)
 * from the replying thread: the ring keeps a single submitter, the replying thread makes one
 * cheap eventfd write instead of two syscalls, and the reply is batched with the worker's
 * other SQEs. Backend I/O (rf_io_*) of a handler on the worker thread goes on the same ring.
 *
 * Teardown. Once the connection is gone every read completes with ENODEV and the worker ends
 * when nothing of it is in flight. Asked to stop while reads still wait (stop(), or the
 * session exiting), the worker cancels them and waits for their completions, so no read can
 * land in a buffer after it was freed.
 */
#include "ringfuse_i.h"
#include "uring_common.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif
#ifndef IORING_ASYNC_CANCEL_ANY
#define IORING_ASYNC_CANCEL_ANY (1U << 2)
#endif

#define RW_DEFAULT_SLOTS  8
#define RW_EXTRA_SQES	  8
#define RW_MIN_OUT	  (65536 + RF_PAGE_SIZE) /* getxattr/listxattr replies up to 64 KiB */
#define RW_CANCEL_WAIT_NS (500ull * 1000 * 1000)
#define RW_DRAIN_WAIT_US  (500 * 1000)

enum slot_state { SLOT_READING, SLOT_USER, SLOT_WRITING, SLOT_DEAD };

struct rw_worker;

struct rw_slot {
	rf_req req; /* req.chan points back here */
	struct rw_worker *w;
	char *in;		    /* the request as read */
	struct fuse_out_header *oh; /* reply header, immediately followed by the body */
	uint32_t idx;
	uint8_t state; /* enum slot_state */
};

struct rw_tp;

struct rw_worker {
	struct rw_tp *tp;
	rf_session *se;
	unsigned int idx;
	unsigned int nslots;
	int fd;	 /* cloned /dev/fuse fd */
	int efd; /* wake-up eventfd: written by stop() and by deferred replies */
	pthread_t thread;
	bool thread_started;

	bool setup_done; /* guarded by tp->lock */
	int setup_err;
	unsigned int ring_flags;
	bool reqs_registered;

	/* Owned by the worker thread. */
	struct io_uring ring;
	bool ring_ok;
	struct rw_slot *slots;
	char *bufs;
	size_t bufs_size;
	size_t in_size;
	size_t out_cap;
	unsigned int live;	/* slots not DEAD */
	unsigned int in_flight; /* reads and writes queued or in flight */
	bool conn_gone;
	bool draining;		      /* cancelling at exit: do not re-arm */
	bool leaked;		      /* reads survived the cancel: buffers must stay */
	struct rw_worker *grave_next; /* on the graveyard list once leaked */
	bool efd_armed;
	uint64_t efd_val;
	int fatal;

	/* Written by foreign threads. */
	_Alignas(64) rf_req *_Atomic deferred;
	_Atomic unsigned int senders;

	_Alignas(64) struct rf_queue_stats stats;
};

struct rw_tp {
	rf_session *se;
	unsigned int nw;
	_Atomic bool stopping;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct rw_worker *w[];
};

static __thread struct rw_worker *tls_worker;

/* ---- user_data ---- */

enum ud_kind { UD_READ = 1, UD_WRITE, UD_WAKE, UD_CANCEL, UD_IO, UD_NOP };

#define UD_KIND_SHIFT 56

static inline uint64_t ud_pack(enum ud_kind kind, uint32_t idx)
{
	assert(kind >= UD_READ && kind <= UD_NOP);
	return (uint64_t)kind << UD_KIND_SHIFT | idx;
}

static inline enum ud_kind ud_kind(uint64_t ud)
{
	return (enum ud_kind)(ud >> UD_KIND_SHIFT);
}

static inline uint32_t ud_index(uint64_t ud)
{
	return (uint32_t)ud;
}

static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

/* ---- submission (worker thread only) ---- */

static struct io_uring_sqe *worker_get_sqe(struct rw_worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);

	if (!sqe) {
		rf_log_once(RF_LOG_WARN, "ringfuse: uring-rw worker %u: submission queue full",
			    w->idx);
		io_uring_submit(&w->ring);
		rf_stat_add(w->stats.enters, 1);
		sqe = io_uring_get_sqe(&w->ring);
	}
	return sqe;
}

static void slot_kill(struct rw_worker *w, struct rw_slot *s)
{
	if (s->state == SLOT_DEAD)
		return;
	s->state = SLOT_DEAD;
	w->live--;
}

static void slot_arm_read(struct rw_worker *w, struct rw_slot *s)
{
	struct io_uring_sqe *sqe;

	if (w->conn_gone || w->draining || !(sqe = worker_get_sqe(w))) {
		slot_kill(w, s);
		return;
	}
	io_uring_prep_read(sqe, w->fd, s->in, (unsigned int)w->in_size, 0);
	sqe->flags |= IOSQE_ASYNC;
	sqe->user_data = ud_pack(UD_READ, s->idx);
	s->state = SLOT_READING;
	w->in_flight++;
}

/* The reply is in s->oh (len 0: the request takes none). */
static void slot_finish(struct rw_worker *w, struct rw_slot *s)
{
	struct io_uring_sqe *sqe;

	rf_req_set_free(&s->req);
	if (s->oh->len == 0) {
		slot_arm_read(w, s);
		return;
	}
	sqe = worker_get_sqe(w);
	if (!sqe) {
		slot_kill(w, s);
		return;
	}
	io_uring_prep_write(sqe, w->fd, s->oh, s->oh->len, 0);
	sqe->user_data = ud_pack(UD_WRITE, s->idx);
	s->state = SLOT_WRITING;
	w->in_flight++;
}

static void worker_wake(struct rw_worker *w)
{
	uint64_t one = 1;

	if (write(w->efd, &one, sizeof(one)) < 0)
		rf_log_once(RF_LOG_DEBUG, "ringfuse: uring-rw wake-up: %s", strerror(errno));
}

/* ---- reply ops (any thread) ---- */

static void defer_push(struct rw_worker *w, struct rw_slot *s)
{
	atomic_fetch_add_explicit(&w->senders, 1, memory_order_acquire);
	if (rf_mpsc_push(&w->deferred, &s->req))
		worker_wake(w);
	atomic_fetch_sub_explicit(&w->senders, 1, memory_order_release);
}

static void slot_hand_back(struct rw_slot *s)
{
	struct rw_worker *w = s->w;

	if (tls_worker == w)
		slot_finish(w, s);
	else
		defer_push(w, s);
}

static int rw_send(rf_req *req, int error, size_t len)
{
	struct rw_slot *s = req->chan;

	if (len > s->w->out_cap) {
		rf_log_once(RF_LOG_ERR, "ringfuse: reply of %zu bytes exceeds the reply buffer",
			    len);
		error = -EIO;
		len = 0;
	}
	s->oh->len = (uint32_t)(sizeof(*s->oh) + len);
	s->oh->error = error;
	s->oh->unique = req->unique;
	slot_hand_back(s);
	return 0;
}

static void rw_drop(rf_req *req)
{
	struct rw_slot *s = req->chan;

	s->oh->len = 0;
	slot_hand_back(s);
}

/* Backend I/O of a handler running on the worker thread goes on the worker's ring. */
static int rw_io_submit(rf_req *req)
{
	struct rw_slot *s = req->chan;
	struct rw_worker *w = s->w;
	struct io_uring_sqe *sqe;

	if (tls_worker != w)
		return -EAGAIN; /* foreign thread: the caller runs it synchronously */
	sqe = io_uring_get_sqe(&w->ring);
	if (!sqe)
		return -EAGAIN;
	if (!rf_uring_prep_io(sqe, &req->io)) {
		io_uring_prep_nop(sqe);
		sqe->user_data = ud_pack(UD_NOP, 0);
		return -EAGAIN;
	}
	sqe->user_data = ud_pack(UD_IO, s->idx);
	w->in_flight++;
	return 0;
}

static const struct rf_reply_ops rw_reply_ops = {
	.send = rw_send,
	.drop = rw_drop,
	.io_submit = rw_io_submit,
};

/* ---- completions (worker thread only) ---- */

static void worker_drain_deferred(struct rw_worker *w)
{
	rf_req *r = rf_mpsc_take_all(&w->deferred);

	while (r) {
		rf_req *next = r->next;

		slot_finish(w, r->chan);
		r = next;
	}
}

static void worker_conn_gone(struct rw_worker *w)
{
	if (w->conn_gone)
		return;
	w->conn_gone = true;
	rf_session_conn_lost(w->se);
}

static void slot_read_done(struct rw_worker *w, struct rw_slot *s, int res)
{
	if (res > 0) {
		s->state = SLOT_USER;
		s->req.out = (char *)(s->oh + 1);
		s->req.out_cap = w->out_cap;
		rf_dispatch_msg(w->se, &s->req, s->in, (size_t)res);
		return;
	}
	switch (res) {
	case -ENODEV:
	case -ENOTCONN:
	case -ECONNABORTED:
		worker_conn_gone(w);
		slot_kill(w, s);
		return;
	case -EINTR:
	case -EAGAIN:
	case -ENOENT:
		/* ENOENT: the request was interrupted before we got it. While draining, this
		 * kills the slot instead. */
		slot_arm_read(w, s);
		return;
	case -ECANCELED:
		slot_kill(w, s);
		return;
	default:
		rf_log_once(RF_LOG_ERR, "ringfuse: uring-rw worker %u: reading /dev/fuse: %s",
			    w->idx, res ? strerror(-res) : "end of file");
		slot_kill(w, s);
		return;
	}
}

static void slot_write_done(struct rw_worker *w, struct rw_slot *s, int res)
{
	/* ENOENT: the request was interrupted and is gone; nothing is lost. */
	if (res == -ENODEV || res == -ENOTCONN || res == -ECONNABORTED)
		worker_conn_gone(w);
	else if (res < 0 && res != -ENOENT)
		rf_log_once(RF_LOG_WARN, "ringfuse: uring-rw worker %u: writing a reply: %s",
			    w->idx, strerror(-res));
	slot_arm_read(w, s);
}

static void worker_handle_cqe(struct rw_worker *w, uint64_t ud, int res)
{
	enum ud_kind kind = ud_kind(ud);
	struct rw_slot *s;

	if (kind == UD_WAKE) {
		if (res < 0 && res != -ECANCELED && res != -EINTR)
			rf_log_once(RF_LOG_WARN, "ringfuse: uring-rw worker %u: wake-up read: %s",
				    w->idx, strerror(-res));
		w->efd_armed = false;
		return;
	}
	if (kind == UD_CANCEL || kind == UD_NOP)
		return;
	if (kind == UD_IO) {
		assert(ud_index(ud) < w->nslots && w->in_flight > 0);
		w->in_flight--;
		rf_io_complete(&w->slots[ud_index(ud)].req, res);
		return;
	}
	if (kind != UD_READ && kind != UD_WRITE) {
		rf_log_once(RF_LOG_WARN, "ringfuse: uring-rw worker %u: stray completion %#llx",
			    w->idx, (unsigned long long)ud);
		return;
	}
	assert(ud_index(ud) < w->nslots);
	s = &w->slots[ud_index(ud)];
	assert(s->state == (kind == UD_READ ? SLOT_READING : SLOT_WRITING));
	w->in_flight--;
	if (kind == UD_READ)
		slot_read_done(w, s, res);
	else
		slot_write_done(w, s, res);
}

static void worker_reap(struct rw_worker *w)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	io_uring_for_each_cqe(&w->ring, head, cqe)
	{
		worker_handle_cqe(w, cqe->user_data, cqe->res);
		n++;
	}
	io_uring_cq_advance(&w->ring, n);
}

static void worker_arm_wake(struct rw_worker *w)
{
	struct io_uring_sqe *sqe;

	if (w->efd_armed)
		return;
	sqe = worker_get_sqe(w);
	if (!sqe)
		return;
	io_uring_prep_read(sqe, w->efd, &w->efd_val, sizeof(w->efd_val), 0);
	sqe->user_data = ud_pack(UD_WAKE, 0);
	w->efd_armed = true;
}

static void worker_wait(struct rw_worker *w)
{
	int ret = io_uring_submit_and_wait(&w->ring, 1);

	rf_stat_add(w->stats.enters, 1);
	if (ret >= 0 || ret == -EINTR || ret == -EAGAIN || ret == -EBUSY || ret == -ETIME)
		return;
	rf_log(RF_LOG_ERR, "ringfuse: uring-rw worker %u: io_uring_enter failed: %s", w->idx,
	       strerror(-ret));
	w->fatal = ret;
}

static bool worker_done(struct rw_worker *w)
{
	if (atomic_load_explicit(&w->tp->stopping, memory_order_relaxed) ||
	    atomic_load_explicit(&w->se->exiting, memory_order_relaxed))
		return true;
	if (w->fatal || w->live == 0)
		return true;
	return w->conn_gone && w->in_flight == 0;
}

/* Cancel what is still in flight and wait for it, so no read lands in a freed buffer. */
static void worker_cancel_all(struct rw_worker *w)
{
	struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
	uint64_t deadline = rf_now_ns() + RW_CANCEL_WAIT_NS;
	struct io_uring_sqe *sqe;

	w->draining = true;
	if (w->fatal || !w->in_flight)
		return;
	sqe = worker_get_sqe(w);
	if (sqe) {
		io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
		sqe->user_data = ud_pack(UD_CANCEL, 0);
	}
	while (w->in_flight && rf_now_ns() < deadline) {
		struct io_uring_cqe *cqe;

		io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
		worker_reap(w);
	}
	if (w->in_flight) {
		rf_log(RF_LOG_WARN, "ringfuse: uring-rw worker %u: %u reads did not cancel", w->idx,
		       w->in_flight);
		w->leaked = true;
	}
}

static void worker_loop(struct rw_worker *w)
{
	while (!worker_done(w)) {
		worker_arm_wake(w);
		worker_wait(w);
		worker_reap(w);
		worker_drain_deferred(w);
	}
	worker_cancel_all(w);
}

/* ---- worker setup (on the worker thread) ---- */

static void slot_init(struct rw_worker *w, struct rw_slot *s, uint32_t idx, char *mem)
{
	s->w = w;
	s->idx = idx;
	s->in = mem;
	s->oh = (struct fuse_out_header *)(mem + round_up(w->in_size, RF_PAGE_SIZE));
	s->req.se = w->se;
	s->req.rops = &rw_reply_ops;
	s->req.chan = s;
	s->req.queue = w->idx;
	s->req.stats = &w->stats;
	s->req.out = (char *)(s->oh + 1);
	s->req.out_cap = w->out_cap;
}

static int worker_alloc(struct rw_worker *w)
{
	size_t stride = round_up(w->in_size, RF_PAGE_SIZE) +
			round_up(sizeof(struct fuse_out_header) + w->out_cap, RF_PAGE_SIZE);
	size_t slots_size = w->nslots * sizeof(struct rw_slot);

	w->bufs_size = w->nslots * stride;
	w->bufs = mmap(NULL, w->bufs_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		       0);
	if (w->bufs == MAP_FAILED) {
		w->bufs = NULL;
		return -errno;
	}
	w->slots = aligned_alloc(RF_REQ_ALIGN, slots_size); /* rf_req alignment */
	if (!w->slots)
		return -ENOMEM;
	memset(w->slots, 0, slots_size);
	for (uint32_t i = 0; i < w->nslots; i++)
		slot_init(w, &w->slots[i], i, w->bufs + i * stride);
	w->live = w->nslots;
	return 0;
}

static int worker_ring_init(struct rw_worker *w)
{
	const unsigned int tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int ret = -EINVAL;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p = {.flags = tries[i]};

		ret = io_uring_queue_init_params(w->nslots + RW_EXTRA_SQES, &w->ring, &p);
		if (ret != -EINVAL)
			break;
	}
	if (ret < 0) {
		rf_uring_log_init_error("uring-rw worker", w->idx, ret);
		return ret;
	}
	w->ring_ok = true;
	w->ring_flags = w->ring.flags;
	return 0;
}

static int worker_setup(struct rw_worker *w)
{
	int ret = worker_alloc(w);

	if (!ret)
		ret = worker_ring_init(w);
	if (ret)
		return ret;
	ret = rf_session_register_reqs(w->se, &w->slots[0].req, w->nslots, sizeof(struct rw_slot));
	if (ret)
		return ret;
	w->reqs_registered = true;
	worker_arm_wake(w);
	for (uint32_t i = 0; i < w->nslots; i++)
		slot_arm_read(w, &w->slots[i]);
	ret = io_uring_submit(&w->ring);
	rf_stat_add(w->stats.enters, 1);
	return ret < 0 ? ret : 0;
}

static void worker_report(struct rw_worker *w, int err)
{
	pthread_mutex_lock(&w->tp->lock);
	w->setup_err = err;
	w->setup_done = true;
	pthread_cond_broadcast(&w->tp->cond);
	pthread_mutex_unlock(&w->tp->lock);
}

static void *worker_thread(void *arg)
{
	struct rw_worker *w = arg;
	char name[16];
	int err;

	tls_worker = w;
	snprintf(name, sizeof(name), "rf-urw-%u", w->idx);
	pthread_setname_np(pthread_self(), name);
	err = worker_setup(w);
	if (err)
		rf_log(RF_LOG_ERR, "ringfuse: uring-rw worker %u: setup failed: %s", w->idx,
		       strerror(-err));
	worker_report(w, err);
	if (!err)
		worker_loop(w);
	else if (w->ring_ok)
		worker_cancel_all(w);
	tls_worker = NULL;
	return NULL;
}

/* ---- transport ops (session thread) ---- */

/* As in the uring transport: REPLIED is busy until the reply is on the list (taken back here). */
static bool worker_busy(struct rw_worker *w)
{
	for (rf_req *r = rf_mpsc_take_all(&w->deferred); r; r = r->next)
		rf_req_set_free(r);
	if (atomic_load(&w->senders))
		return true;
	for (unsigned int i = 0; w->slots && i < w->nslots; i++)
		if (rf_req_state(&w->slots[i].req) != RF_REQ_FREE)
			return true;
	return false;
}

/*
 * Workers kept because a handler or a read may still write into them; reachable from here
 * so that leak checkers see a deliberate decision rather than a leak.
 */
static struct rw_worker *_Atomic graveyard;

static void worker_bury(struct rw_worker *w)
{
	w->grave_next = atomic_load(&graveyard);
	while (!atomic_compare_exchange_weak(&graveyard, &w->grave_next, w))
		;
}

static void worker_free(struct rw_tp *tp, struct rw_worker *w, unsigned int *wait_us)
{
	if (w->reqs_registered)
		rf_session_unregister_reqs(tp->se, &w->slots[0].req);
	if (w->ring_ok)
		io_uring_queue_exit(&w->ring);
	while (worker_busy(w) && *wait_us > 0) {
		usleep(1000);
		*wait_us = *wait_us > 1000 ? *wait_us - 1000 : 0;
	}
	if (w->leaked || worker_busy(w)) {
		rf_log(RF_LOG_WARN,
		       "ringfuse: uring-rw worker %u: requests still in use at exit; leaking its "
		       "buffers",
		       w->idx);
		worker_bury(w);
		return;
	}
	if (w->fd >= 0)
		close(w->fd);
	if (w->efd >= 0)
		close(w->efd);
	if (w->bufs)
		munmap(w->bufs, w->bufs_size);
	free(w->slots);
	free(w);
}

static void tp_free(struct rw_tp *tp)
{
	unsigned int wait_us = RW_DRAIN_WAIT_US;

	for (unsigned int i = 0; i < tp->nw; i++) {
		struct rw_worker *w = tp->w[i];

		if (!w)
			continue;
		if (w->thread_started)
			pthread_join(w->thread, NULL);
		rf_session_retire_queue(tp->se, w->idx);
		worker_free(tp, w, &wait_us);
	}
	pthread_mutex_destroy(&tp->lock);
	pthread_cond_destroy(&tp->cond);
	free(tp);
}

static size_t reply_cap(const rf_session *se)
{
	size_t cap = se->dev_bufsize;

	if (cap < se->conn.max_write)
		cap = se->conn.max_write;
	if (cap < (size_t)se->conn.max_pages * RF_PAGE_SIZE)
		cap = (size_t)se->conn.max_pages * RF_PAGE_SIZE;
	if (cap < RW_MIN_OUT)
		cap = RW_MIN_OUT;
	return cap;
}

static int worker_new(struct rw_tp *tp, unsigned int idx, struct rw_worker **out)
{
	rf_session *se = tp->se;
	struct rw_worker *w = aligned_alloc(64, round_up(sizeof(*w), 64));
	int ret = 0;

	if (!w)
		return -ENOMEM;
	memset(w, 0, sizeof(*w));
	w->tp = tp;
	w->se = se;
	w->idx = idx;
	w->nslots = se->opts.uring_depth ? se->opts.uring_depth : RW_DEFAULT_SLOTS;
	w->in_size = se->dev_bufsize;
	w->out_cap = reply_cap(se);
	/* Blocking on purpose: a non-blocking eventfd read would complete with EAGAIN at once. */
	w->efd = eventfd(0, EFD_CLOEXEC);
	if (w->efd < 0)
		ret = -errno;
	/* Blocking too: reads wait in io-wq (see the top of the file). */
	w->fd = ret ? -1 : rf_dev_clone_fd(se);
	if (w->fd < 0 && !ret)
		ret = w->fd;
	if (ret) {
		if (w->efd >= 0)
			close(w->efd);
		free(w);
		return ret;
	}
	*out = w;
	return 0;
}

static int start_threads(struct rw_tp *tp)
{
	sigset_t all, old;
	int ret = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (unsigned int i = 0; i < tp->nw; i++) {
		struct rw_worker *w = NULL;

		ret = worker_new(tp, i, &w);
		if (ret)
			break;
		tp->w[i] = w;
		ret = -pthread_create(&w->thread, NULL, worker_thread, w);
		if (ret)
			break;
		w->thread_started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

static int wait_setup(struct rw_tp *tp)
{
	int err = 0;

	pthread_mutex_lock(&tp->lock);
	for (unsigned int i = 0; i < tp->nw; i++) {
		struct rw_worker *w = tp->w[i];

		if (!w || !w->thread_started)
			continue;
		while (!w->setup_done)
			pthread_cond_wait(&tp->cond, &tp->lock);
		if (w->setup_err && !err)
			err = w->setup_err;
	}
	pthread_mutex_unlock(&tp->lock);
	return err;
}

static void rw_stop(rf_session *se)
{
	struct rw_tp *tp = se->tp_data;

	if (!tp)
		return;
	atomic_store(&tp->stopping, true);
	for (unsigned int i = 0; i < tp->nw; i++)
		if (tp->w[i])
			worker_wake(tp->w[i]);
}

static int rw_start(rf_session *se)
{
	unsigned int nw = se->opts.threads ? se->opts.threads : (unsigned int)get_nprocs();
	struct rw_tp *tp;
	int ret, err;

	if (se->opts.single_thread) {
		rf_log(RF_LOG_INFO, "ringfuse: uring-rw transport: single-threaded (-s), "
				    "requests are served by the main reader");
		return 0;
	}
	if (nw < 1)
		nw = 1;
	if (nw > RF_MAX_QUEUES)
		nw = RF_MAX_QUEUES;
	tp = calloc(1, sizeof(*tp) + nw * sizeof(tp->w[0]));
	if (!tp)
		return -ENOMEM;
	tp->se = se;
	tp->nw = nw;
	pthread_mutex_init(&tp->lock, NULL);
	pthread_cond_init(&tp->cond, NULL);
	se->tp_data = tp;
	ret = start_threads(tp);
	if (ret)
		atomic_store(&tp->stopping, true);
	err = wait_setup(tp);
	if (!ret)
		ret = err;
	if (ret) {
		rw_stop(se);
		se->tp_data = NULL;
		tp_free(tp);
		return ret;
	}
	for (unsigned int i = 0; i < nw; i++)
		rf_session_register_queue(se, i, &tp->w[i]->stats);
	rf_log(RF_LOG_INFO,
	       "ringfuse: uring-rw transport: %u workers x %u reads, buffers %zu KiB in / %zu KiB "
	       "out%s",
	       nw, tp->w[0]->nslots, tp->w[0]->in_size / 1024, tp->w[0]->out_cap / 1024,
	       tp->w[0]->ring_flags & IORING_SETUP_DEFER_TASKRUN ? ", DEFER_TASKRUN" : "");
	return 0;
}

static void rw_destroy(rf_session *se)
{
	struct rw_tp *tp = se->tp_data;

	if (!tp)
		return;
	rw_stop(se);
	se->tp_data = NULL;
	tp_free(tp);
}

const struct rf_transport rf_transport_uring_rw = {
	.name = "uring-rw",
	.start = rw_start,
	.stop = rw_stop,
	.destroy = rw_destroy,
};
