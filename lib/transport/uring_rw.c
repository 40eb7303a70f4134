/*
 * The uring-rw transport: the classic /dev/fuse protocol (read one request, write its reply)
 * driven by io_uring READ and WRITE SQEs instead of read(2) and write(2) calls. Chosen with
 * -o transport=uring-rw; the connection does not use FUSE_OVER_IO_URING then.
 *
 * Design
 *
 * Workers. T worker threads (-o threads=N, default one per online CPU; none with -s, where
 * the session's main reader serves alone), each with its own cloned /dev/fuse fd and its own
 * ring, which only the worker thread submits to. A worker's life (setup, loop, drain, stop,
 * teardown) is the one all io_uring queues share (uring_queue.h); this file holds the
 * read/write protocol.
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
 * io_uring_enter. A reply from another thread goes through the worker's deferred list
 * (rf_uq_defer) rather than a write(2) from the replying thread: the ring keeps a single
 * submitter, the replying thread makes one cheap eventfd write instead of two syscalls, and
 * the reply is batched with the worker's other SQEs. Backend I/O (rf_io_*) of a handler on
 * the worker thread goes on the same ring. The worker counts every reply it writes.
 *
 * The end. Once the connection is gone every read completes with ENODEV and the worker ends
 * when nothing of it is in flight. Asked to stop (after the drain), the worker cancels its
 * reads and waits for their completions, so no read can land in a buffer after it was freed;
 * then its fd is closed, whatever else is kept: no other thread ever writes to it, and closing
 * it fails what the kernel still holds for it.
 */
#include "ringfuse_i.h"
#include "uring_queue.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
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

enum slot_state { SLOT_READING, SLOT_USER, SLOT_WRITING, SLOT_DEAD };

struct rw_worker;

struct rw_slot {
	RF_REQ_ALIGNED rf_req req; /* req.chan points back here */
	struct rw_worker *w;
	char *in;		    /* the request as read */
	struct fuse_out_header *oh; /* reply header, immediately followed by the body */
	uint32_t idx;
	uint8_t state; /* enum slot_state */
};

struct rw_worker {
	struct rf_uq uq; /* first: the shared queue */
	unsigned int nslots;
	int fd; /* cloned /dev/fuse fd */
	unsigned int ring_flags;

	/* Worker thread. */
	struct rw_slot *slots;
	char *bufs;
	size_t bufs_size;
	size_t in_size;
	size_t out_cap;
	unsigned int live;	/* slots not DEAD */
	unsigned int in_user;	/* slots in USER state */
	unsigned int in_flight; /* reads, writes and backend operations queued or in flight */
	bool conn_gone;
	bool cancelling; /* at exit: do not re-arm */
};

static __thread struct rw_worker *tls_worker;

static inline struct rw_worker *uq_worker(struct rf_uq *uq)
{
	return (struct rw_worker *)uq;
}

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

/* ---- submission (worker thread only) ---- */

static void slot_kill(struct rw_worker *w, struct rw_slot *s)
{
	if (s->state == SLOT_DEAD)
		return;
	if (s->state == SLOT_USER)
		w->in_user--;
	s->state = SLOT_DEAD;
	w->live--;
}

static void slot_arm_read(struct rw_worker *w, struct rw_slot *s)
{
	struct io_uring_sqe *sqe;

	if (w->conn_gone || w->cancelling || !(sqe = rf_uq_get_sqe(&w->uq))) {
		slot_kill(w, s);
		return;
	}
	io_uring_prep_read(sqe, w->fd, s->in, (unsigned int)w->in_size, 0);
	sqe->flags |= IOSQE_ASYNC;
	sqe->user_data = ud_pack(UD_READ, s->idx);
	s->state = SLOT_READING;
	w->in_flight++;
}

/* The reply is in s->oh (len 0: the request takes none): count it and write it. */
static void slot_finish(struct rw_worker *w, struct rw_slot *s)
{
	struct io_uring_sqe *sqe;

	rf_req_set_free(&s->req);
	w->in_user--;
	if (s->oh->len == 0) {
		s->state = SLOT_READING;
		slot_arm_read(w, s);
		return;
	}
	rf_stat_reply(&w->uq.stats.own, s->oh->error, s->oh->len - sizeof(*s->oh), true);
	sqe = rf_uq_get_sqe(&w->uq);
	if (!sqe) {
		s->state = SLOT_READING;
		slot_kill(w, s);
		return;
	}
	io_uring_prep_write(sqe, w->fd, s->oh, s->oh->len, 0);
	sqe->user_data = ud_pack(UD_WRITE, s->idx);
	s->state = SLOT_WRITING;
	w->in_flight++;
}

/* ---- reply ops (any thread) ---- */

static void slot_hand_back(struct rw_slot *s)
{
	struct rw_worker *w = s->w;

	if (tls_worker == w)
		slot_finish(w, s);
	else
		rf_uq_defer(&w->uq, &s->req);
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
	sqe = io_uring_get_sqe(&w->uq.ring);
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

static void worker_commit_deferred(struct rw_worker *w)
{
	rf_req *r = rf_uq_take_deferred(&w->uq);

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
	rf_session_conn_lost(w->uq.se);
}

static void slot_read_done(struct rw_worker *w, struct rw_slot *s, int res)
{
	if (res > 0) {
		s->state = SLOT_USER;
		w->in_user++;
		s->req.out = (char *)(s->oh + 1);
		s->req.out_cap = w->out_cap;
		rf_dispatch_msg(w->uq.se, &s->req, s->in, (size_t)res);
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
		/* ENOENT: the request was interrupted before we got it. While cancelling, this
		 * kills the slot instead. */
		slot_arm_read(w, s);
		return;
	case -ECANCELED:
		slot_kill(w, s);
		return;
	default:
		rf_log_once(RF_LOG_ERR, "ringfuse: uring-rw worker %u: reading /dev/fuse: %s",
			    w->uq.idx, res ? strerror(-res) : "end of file");
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
			    w->uq.idx, strerror(-res));
	slot_arm_read(w, s);
}

static void worker_handle_cqe(struct rw_worker *w, uint64_t ud, int res)
{
	enum ud_kind kind = ud_kind(ud);
	struct rw_slot *s;

	if (kind == UD_WAKE) {
		if (res < 0 && res != -ECANCELED && res != -EINTR)
			rf_log_once(RF_LOG_WARN, "ringfuse: uring-rw worker %u: wake-up read: %s",
				    w->uq.idx, strerror(-res));
		w->uq.efd_armed = false;
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
			    w->uq.idx, (unsigned long long)ud);
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

/* Opcode of the request a slot just read (for fault injection). */
static uint32_t slot_opcode(const struct rw_worker *w, uint64_t ud)
{
	const struct fuse_in_header *ih = (const struct fuse_in_header *)w->slots[ud_index(ud)].in;

	return ih->opcode;
}

static void worker_reap(struct rw_worker *w)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	io_uring_for_each_cqe(&w->uq.ring, head, cqe)
	{
		if (ud_kind(cqe->user_data) == UD_READ &&
		    cqe->res >= (int)sizeof(struct fuse_in_header) &&
		    rf_uq_fault(&w->uq, w->uq.idx, slot_opcode(w, cqe->user_data)))
			break;
		worker_handle_cqe(w, cqe->user_data, cqe->res);
		n++;
	}
	io_uring_cq_advance(&w->uq.ring, n);
}

static void reap_uq(struct rf_uq *uq)
{
	worker_reap(uq_worker(uq));
}

static bool worker_done(struct rw_worker *w)
{
	if (rf_uq_stopping(&w->uq) || w->uq.fatal || w->live == 0)
		return true;
	return w->conn_gone && w->in_flight == 0;
}

/* Cancel what is still in flight and wait for it, so no read lands in a freed buffer. */
static void worker_cancel_all(struct rw_worker *w)
{
	struct io_uring_sqe *sqe;

	w->cancelling = true;
	if (!w->in_flight)
		return;
	sqe = rf_uq_get_sqe(&w->uq);
	if (sqe) {
		io_uring_prep_cancel64(sqe, 0, IORING_ASYNC_CANCEL_ANY);
		sqe->user_data = ud_pack(UD_CANCEL, 0);
	}
	if (!rf_uq_settle(&w->uq, &w->in_flight, RW_CANCEL_WAIT_NS, reap_uq)) {
		rf_log(RF_LOG_WARN, "ringfuse: uring-rw worker %u: %u reads did not cancel",
		       w->uq.idx, w->in_flight);
		w->uq.leak = true;
	}
}

static void worker_loop(struct rw_worker *w)
{
	while (!worker_done(w)) {
		rf_uq_arm_wake(&w->uq, ud_pack(UD_WAKE, 0));
		rf_uq_wait(&w->uq);
		worker_reap(w);
		worker_commit_deferred(w);
		rf_uq_check_drained(&w->uq, w->in_user);
	}
	worker_cancel_all(w);
	if (w->uq.fatal)
		rf_uq_ended(&w->uq, "its io_uring failed");
	else if (w->live == 0 && !w->conn_gone)
		rf_uq_ended(&w->uq, "every read of /dev/fuse failed");
	else
		rf_uq_ended(&w->uq, NULL);
}

/* ---- worker setup (on the worker thread) ---- */

static void slot_init(struct rw_worker *w, struct rw_slot *s, uint32_t idx, char *mem)
{
	s->w = w;
	s->idx = idx;
	s->in = mem;
	s->oh = (struct fuse_out_header *)(mem + rf_round_up(w->in_size, RF_PAGE_SIZE));
	s->req.se = w->uq.se;
	s->req.rops = &rw_reply_ops;
	s->req.chan = s;
	s->req.queue = w->uq.idx;
	s->req.stats = &w->uq.stats;
	s->req.out = (char *)(s->oh + 1);
	s->req.out_cap = w->out_cap;
}

static int worker_alloc(struct rw_worker *w)
{
	size_t stride = rf_round_up(w->in_size, RF_PAGE_SIZE) +
			rf_round_up(sizeof(struct fuse_out_header) + w->out_cap, RF_PAGE_SIZE);
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

static int worker_setup(struct rw_worker *w)
{
	const unsigned int tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int ret = worker_alloc(w);

	if (!ret)
		ret = rf_uq_ring_init(&w->uq, w->nslots + RW_EXTRA_SQES, 0, tries,
				      sizeof(tries) / sizeof(tries[0]));
	if (!ret)
		ret = rf_uq_register_reqs(&w->uq, &w->slots[0].req, w->nslots,
					  sizeof(struct rw_slot));
	if (ret)
		return ret;
	w->ring_flags = w->uq.ring.flags;
	rf_uq_arm_wake(&w->uq, ud_pack(UD_WAKE, 0));
	for (uint32_t i = 0; i < w->nslots; i++)
		slot_arm_read(w, &w->slots[i]);
	ret = io_uring_submit(&w->uq.ring);
	rf_stat_inc(w->uq.stats.own.enters, 1);
	return ret < 0 ? ret : 0;
}

static void *worker_thread(void *arg)
{
	struct rw_worker *w = arg;
	char name[16];
	int err;

	tls_worker = w;
	snprintf(name, sizeof(name), "rf-urw-%u", w->uq.idx);
	pthread_setname_np(pthread_self(), name);
	err = worker_setup(w);
	rf_uq_report_setup(&w->uq, err);
	if (!err)
		worker_loop(w);
	else if (w->uq.ring_ok)
		worker_cancel_all(w);
	tls_worker = NULL;
	return NULL;
}

/* ---- transport ops (session thread) ---- */

/* Its ring is closed: nobody writes to its fd any more, and closing it fails what the kernel
 * still holds for it (lib/transport/README.md). */
static void worker_release(struct rf_uq *uq)
{
	struct rw_worker *w = uq_worker(uq);

	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

static void worker_free(struct rf_uq *uq)
{
	struct rw_worker *w = uq_worker(uq);

	if (w->bufs)
		munmap(w->bufs, w->bufs_size);
	free(w->slots);
	free(w);
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

static int worker_new(struct rf_uq_set *set, unsigned int idx, struct rw_worker **out)
{
	rf_session *se = set->se;
	struct rw_worker *w = aligned_alloc(64, rf_round_up(sizeof(*w), 64));
	int ret;

	if (!w)
		return -ENOMEM;
	memset(w, 0, sizeof(*w));
	w->nslots = se->opts.uring_depth ? se->opts.uring_depth : RW_DEFAULT_SLOTS;
	w->in_size = se->dev_bufsize;
	w->out_cap = reply_cap(se);
	/* Blocking: reads wait in io-wq (see the top of the file). */
	w->fd = rf_dev_clone_fd(se);
	if (w->fd < 0) {
		ret = w->fd;
		free(w);
		return ret;
	}
	ret = rf_uq_init(&w->uq, set, idx);
	if (ret) {
		close(w->fd);
		free(w);
		return ret;
	}
	*out = w;
	return 0;
}

static int start_threads(struct rf_uq_set *set)
{
	for (unsigned int i = 0; i < set->n; i++) {
		struct rw_worker *w = NULL;
		int ret = worker_new(set, i, &w);

		if (!ret)
			ret = rf_uq_start(&w->uq, worker_thread);
		if (ret)
			return ret;
	}
	return 0;
}

static void rw_free(struct rf_uq_set *set)
{
	rf_uq_finish(set);
	free(set);
}

static int rw_start(rf_session *se)
{
	unsigned int nw = se->opts.threads ? se->opts.threads : (unsigned int)get_nprocs();
	struct rf_uq_set *set;
	struct rw_worker *w0;
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
	set = malloc(sizeof(*set));
	if (!set)
		return -ENOMEM;
	ret = rf_uq_set_init(set, se, "uring-rw worker", nw, worker_free);
	if (ret) {
		free(set);
		return ret;
	}
	set->release_queue = worker_release;
	se->tp_data = set;
	ret = start_threads(set);
	if (ret)
		rf_uq_stop(set);
	err = rf_uq_wait_setup(set);
	if (!ret)
		ret = err;
	if (ret) {
		se->tp_data = NULL;
		rw_free(set);
		return ret;
	}
	rf_uq_publish_stats(set);
	w0 = uq_worker(set->q[0]);
	rf_log(RF_LOG_INFO,
	       "ringfuse: uring-rw transport: %u workers x %u reads, buffers %zu KiB in / %zu KiB "
	       "out%s",
	       nw, w0->nslots, w0->in_size / 1024, w0->out_cap / 1024,
	       w0->ring_flags & IORING_SETUP_DEFER_TASKRUN ? ", DEFER_TASKRUN" : "");
	return 0;
}

static void rw_drain(rf_session *se, uint64_t deadline_ns)
{
	if (se->tp_data)
		rf_uq_drain(se->tp_data, deadline_ns);
}

static void rw_stop(rf_session *se)
{
	if (se->tp_data)
		rf_uq_stop(se->tp_data);
}

static void rw_destroy(rf_session *se)
{
	struct rf_uq_set *set = se->tp_data;

	if (!set)
		return;
	se->tp_data = NULL;
	rw_free(set);
}

const struct rf_transport rf_transport_uring_rw = {
	.name = "uring-rw",
	.start = rw_start,
	.drain = rw_drain,
	.stop = rw_stop,
	.destroy = rw_destroy,
};
