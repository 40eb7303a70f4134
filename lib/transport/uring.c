/*
 * The io-uring transport: requests and replies travel through ring entries registered with
 * the kernel's FUSE-over-io-uring interface (IORING_OP_URING_CMD on the /dev/fuse fd).
 *
 * Design
 *
 * Queues. The kernel keeps one queue per possible CPU (num_possible_cpus()), puts each request
 * on the queue of the CPU its caller runs on, and only switches from /dev/fuse to the ring once
 * every queue has a registered entry (until then new requests wait). So there is one queue per
 * possible CPU, each a thread pinned to its CPU that owns everything of its queue: its io_uring
 * (single issuer), its entries and their buffers, which it allocates itself so they sit on its
 * node. What a queue's life looks like from start to teardown is shared with the uring-rw
 * transport (uring_queue.h); this file holds the ring-entry protocol.
 *
 * Entries. A ring entry is a header buffer (struct fuse_uring_req_header: in/out header,
 * opcode argument, commit id and payload size), a payload buffer of max_payload bytes, and
 * the rf_req handed to the dispatcher. A request is decoded where the kernel put it and the
 * reply is encoded into the same payload buffer; one COMMIT_AND_FETCH SQE sends the reply and
 * re-arms the entry for the next request. Entry states (queue thread only):
 *   IDLE    allocated, not yet handed to the kernel
 *   KERNEL  a REGISTER or COMMIT_AND_FETCH is queued or in flight: waiting for a request
 *   USER    holds a request: in the dispatcher, a handler, or a deferred reply
 *   RETRY   REGISTER said EAGAIN; re-sent when the back-off timer fires
 *   DEAD    the connection ended (or the kernel refused the entry); never used again
 *
 * The loop. One io_uring_enter per round submits everything the previous round produced and
 * waits for completions (optionally after spinning on the CQ); then every CQE is reaped,
 * requests are dispatched, and replies made on the queue thread only queue an SQE. A reply
 * from another thread (a deferred reply) writes the reply header and goes through the queue's
 * deferred list (rf_uq_defer); the queue commits those replies itself, so its submission
 * queue has exactly one writer, and counts every reply as it commits it. user_data says what
 * each SQE was (register, commit, wake-up, timer, backend I/O) and for which entry, through
 * the asserted ud_*() helpers.
 *
 * Backend I/O. A handler on the queue thread may hand its request's file operation (rf_io_*)
 * to the queue's ring: it goes out with the same io_uring_enter as the commits, and its
 * completion runs the handler's callback on the queue thread. From other threads, or with a
 * full SQ, io_submit() declines and the caller runs the operation synchronously. A queue
 * lets its backend I/O finish before it exits, since reads land in the entry's buffers.
 *
 * The end. Drain: the queue keeps serving (a commit always fetches the next request) until
 * no entry is held by a handler or backend I/O and every reply is submitted. Unmount or
 * abort completes the waiting entries with -ENOTCONN (aborted connections refuse new
 * commands with -ECONNABORTED; a dying ring cancels with -ECANCELED): the queue then exits
 * once nothing of it is left in the kernel. A queue whose ring fails for good, or whose
 * entries all die while the connection lives, ends the session (rf_uq_ended): the kernel would
 * otherwise keep routing its CPU's requests to it.
 *
 * Start-up failure. New requests wait in the kernel while the ring is incomplete, and only a
 * failed REGISTER makes the kernel give up on the ring for this connection. If start() fails
 * before any REGISTER could fail, it sends one that must fail (bad iovec count), so requests
 * flow over /dev/fuse again.
 */
#include "ringfuse_i.h"
#include "uring_queue.h"

#include <assert.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* Newer than some liburing headers; values are the kernel's. */
#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_SQE128
#define IORING_SETUP_SQE128 (1U << 10)
#endif
#ifndef IORING_SETUP_SINGLE_ISSUER
#define IORING_SETUP_SINGLE_ISSUER (1U << 12)
#endif
#ifndef IORING_SETUP_DEFER_TASKRUN
#define IORING_SETUP_DEFER_TASKRUN (1U << 13)
#endif

#define URING_DEFAULT_DEPTH 16
/* Header buffer per entry: room for struct fuse_uring_req_header, cache-line multiple. */
#define URING_HDR_STRIDE 512
/* SQ slots beyond one per entry: eventfd read, retry timer, spare. */
#define URING_EXTRA_SQES 8
/* The kernel's request size when max_pages was not negotiated (FUSE_DEFAULT_MAX_PAGES_PER_REQ). */
#define URING_DEFAULT_MAX_PAGES 32
#define URING_RETRY_FIRST_NS	(1000ull * 1000)	    /* 1 ms */
#define URING_RETRY_MAX_NS	(64ull * 1000 * 1000)	    /* 64 ms */
#define URING_RETRY_LIMIT_NS	(5ull * 1000 * 1000 * 1000) /* give up after 5 s of EAGAIN */
#define URING_IO_WAIT_NS	(500ull * 1000 * 1000)	    /* exit: wait for backend I/O */

_Static_assert(sizeof(struct fuse_uring_req_header) <= URING_HDR_STRIDE, "header stride");
_Static_assert(offsetof(struct io_uring_sqe, addr3) == 48, "SQE command area at byte 48");
_Static_assert(sizeof(struct fuse_uring_cmd_req) <= 80, "fuse_uring_cmd_req fits the SQE");

enum ent_state { ENT_IDLE, ENT_KERNEL, ENT_USER, ENT_RETRY, ENT_DEAD };

struct uring_queue;

struct ring_ent {
	RF_REQ_ALIGNED rf_req req; /* handed to the dispatcher; req.chan points back here */
	struct uring_queue *q;
	struct fuse_uring_req_header *hdr;
	char *payload;
	uint64_t commit_id; /* of the request the entry holds */
	struct iovec iov[FUSE_URING_IOV_SEGS];
	uint32_t idx;
	uint8_t state; /* enum ent_state */
	bool reply;    /* the pending commit carries a reply (counted), not a drop */
};

struct uring_queue {
	struct rf_uq uq; /* first: the shared queue */
	unsigned int depth;
	size_t max_payload;
	uint64_t spin_ns;

	/* Set up by the queue thread, read by start() once its setup is reported. */
	unsigned int ring_flags;
	bool pinned;
	bool fixed_fd;

	/* Queue thread. */
	bool spread;		  /* pinned queue temporarily allowed on every CPU */
	unsigned int calm;	  /* rounds of at most one request while spread */
	cpu_set_t home, anywhere; /* its own CPU; the CPUs the process may use */
	int dev_fd;		  /* /dev/fuse: fixed-file index 0 or the plain fd */
	uint8_t dev_sqe_flags;	  /* IOSQE_FIXED_FILE or 0 */
	struct ring_ent *ents;
	void *bufs;
	size_t bufs_size;
	unsigned int live;	  /* entries not DEAD */
	unsigned int in_kernel;	  /* entries in KERNEL state */
	unsigned int in_user;	  /* entries in USER state */
	unsigned int io_inflight; /* backend operations on the ring */
	unsigned int reg_errors;
	int first_reg_err;
	uint64_t lost; /* entries whose commit the kernel refused */
	bool conn_gone;
	bool timer_armed;
	struct __kernel_timespec retry_ts;
	uint64_t retry_delay_ns;
	uint64_t retry_since_ns;
};

struct uring_tp {
	struct rf_uq_set set;
	unsigned int depth;
	size_t max_payload;
};

/* The queue whose thread is running, so a reply knows whether it is on the owning thread. */
static __thread struct uring_queue *tls_queue;

static inline struct uring_queue *uq_queue(struct rf_uq *uq)
{
	return (struct uring_queue *)uq;
}

/* ---- user_data: what an SQE was, and for which entry ---- */

enum ud_kind { UD_REGISTER = 1, UD_COMMIT, UD_WAKE, UD_TIMER, UD_IO, UD_NOP };

#define UD_KIND_SHIFT 56

static inline uint64_t ud_pack(enum ud_kind kind, uint32_t idx)
{
	assert(kind >= UD_REGISTER && kind <= UD_NOP);
	return (uint64_t)kind << UD_KIND_SHIFT | idx;
}

static inline enum ud_kind ud_kind(uint64_t ud)
{
	return (enum ud_kind)(ud >> UD_KIND_SHIFT);
}

static inline uint32_t ud_index(uint64_t ud)
{
	assert((ud & ((1ull << UD_KIND_SHIFT) - 1)) <= UINT32_MAX);
	return (uint32_t)ud;
}

/* ---- small helpers ---- */

/* What the kernel sizes the ring's payload by (fuse_uring_create()). */
static size_t payload_size(const rf_session *se)
{
	size_t pages = se->conn.max_pages;
	size_t sz = 8192;

	if (!(se->conn.want & RF_CAP_MAX_PAGES) && pages < URING_DEFAULT_MAX_PAGES)
		pages = URING_DEFAULT_MAX_PAGES;
	if (se->conn.max_write > sz)
		sz = se->conn.max_write;
	if (pages * RF_PAGE_SIZE > sz)
		sz = pages * RF_PAGE_SIZE;
	return rf_round_up(sz, RF_PAGE_SIZE);
}

static void flags_string(unsigned int f, char *buf, size_t len)
{
	snprintf(buf, len, "SQE128%s%s%s", f & IORING_SETUP_SINGLE_ISSUER ? "|SINGLE_ISSUER" : "",
		 f & IORING_SETUP_DEFER_TASKRUN ? "|DEFER_TASKRUN" : "",
		 f & IORING_SETUP_COOP_TASKRUN ? "|COOP_TASKRUN" : "");
}

/* ---- submission (queue thread only) ---- */

/* Queue a REGISTER or COMMIT_AND_FETCH for e; it goes out with the next io_uring_enter. */
static bool ent_queue_cmd(struct uring_queue *q, struct ring_ent *e, uint32_t cmd_op)
{
	struct io_uring_sqe *sqe = rf_uq_get_sqe(&q->uq);
	struct fuse_uring_cmd_req *cmd;

	if (!sqe)
		return false;
	memset(sqe, 0, 2 * sizeof(*sqe)); /* SQE128: the command area is the second half */
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->flags = q->dev_sqe_flags;
	sqe->fd = q->dev_fd;
	sqe->cmd_op = cmd_op;
	cmd = (struct fuse_uring_cmd_req *)((char *)sqe + offsetof(struct io_uring_sqe, addr3));
	cmd->qid = (uint16_t)q->uq.idx;
	if (cmd_op == FUSE_IO_URING_CMD_REGISTER) {
		sqe->addr = (uintptr_t)e->iov;
		sqe->len = FUSE_URING_IOV_SEGS;
		sqe->user_data = ud_pack(UD_REGISTER, e->idx);
	} else {
		cmd->commit_id = e->commit_id;
		sqe->user_data = ud_pack(UD_COMMIT, e->idx);
	}
	e->state = ENT_KERNEL;
	q->in_kernel++;
	return true;
}

static void ent_kill(struct uring_queue *q, struct ring_ent *e)
{
	if (e->state == ENT_DEAD)
		return;
	if (e->state == ENT_USER)
		q->in_user--;
	e->state = ENT_DEAD;
	q->live--;
}

/* The reply header and size are in place: count it, send it and re-arm the entry. */
static void ent_commit(struct uring_queue *q, struct ring_ent *e)
{
	if (e->reply)
		rf_stat_reply(&q->uq.stats.own, ((struct fuse_out_header *)e->hdr->in_out)->error,
			      e->hdr->ring_ent_in_out.payload_sz, true);
	rf_req_set_free(&e->req);
	q->in_user--;
	e->state = ENT_IDLE;
	if (!ent_queue_cmd(q, e, FUSE_IO_URING_CMD_COMMIT_AND_FETCH)) {
		q->lost++;
		ent_kill(q, e);
	}
}

static void ent_set_reply(struct ring_ent *e, uint64_t unique, int error, size_t len)
{
	struct fuse_out_header *oh = (struct fuse_out_header *)e->hdr->in_out;

	oh->len = (uint32_t)(sizeof(*oh) + len);
	oh->error = error;
	oh->unique = unique;
	e->hdr->ring_ent_in_out.payload_sz = (uint32_t)len;
}

/* ---- reply ops (any thread) ---- */

static void ent_hand_back(struct ring_ent *e)
{
	struct uring_queue *q = e->q;

	if (tls_queue == q)
		ent_commit(q, e);
	else
		rf_uq_defer(&q->uq, &e->req);
}

static int uring_send(rf_req *req, int error, size_t len)
{
	struct ring_ent *e = req->chan;

	if (len > e->q->max_payload) {
		rf_log_once(RF_LOG_ERR, "ringfuse: reply of %zu bytes exceeds the ring payload",
			    len);
		error = -EIO;
		len = 0;
	}
	ent_set_reply(e, req->unique, error, len);
	e->reply = true;
	ent_hand_back(e);
	return 0;
}

/*
 * A request that takes no reply (e.g. the retrieve reply FUSE_NOTIFY_REPLY) still occupies
 * the entry in the kernel until committed: commit an empty success to free and re-arm it.
 */
static void uring_drop(rf_req *req)
{
	struct ring_ent *e = req->chan;

	ent_set_reply(e, req->unique, 0, 0);
	e->reply = false;
	ent_hand_back(e);
}

/* Backend I/O of a handler running on the queue thread goes on the queue's own ring. */
static int uring_io_submit(rf_req *req)
{
	struct ring_ent *e = req->chan;
	struct uring_queue *q = e->q;
	struct io_uring_sqe *sqe;

	if (tls_queue != q)
		return -EAGAIN; /* foreign thread: the caller runs it synchronously */
	sqe = io_uring_get_sqe(&q->uq.ring);
	if (!sqe)
		return -EAGAIN;
	if (!rf_uring_prep_io(sqe, &req->io)) {
		/* Turn the claimed slot into a no-op: an SQE cannot be handed back. */
		io_uring_prep_nop(sqe);
		sqe->user_data = ud_pack(UD_NOP, 0);
		return -EAGAIN;
	}
	sqe->user_data = ud_pack(UD_IO, e->idx);
	q->io_inflight++;
	return 0;
}

static const struct rf_reply_ops uring_reply_ops = {
	.send = uring_send,
	.drop = uring_drop,
	.io_submit = uring_io_submit,
};

/* ---- completions (queue thread only) ---- */

static void queue_commit_deferred(struct uring_queue *q)
{
	rf_req *r = rf_uq_take_deferred(&q->uq);

	while (r) {
		rf_req *next = r->next;

		ent_commit(q, r->chan);
		r = next;
	}
}

static void ent_dispatch(struct uring_queue *q, struct ring_ent *e)
{
	struct fuse_uring_req_header *h = e->hdr;
	const struct fuse_in_header *ih = (const struct fuse_in_header *)h->in_out;
	uint32_t psz = h->ring_ent_in_out.payload_sz;

	e->state = ENT_USER;
	q->in_user++;
	e->commit_id = h->ring_ent_in_out.commit_id;
	if (e->commit_id == 0) {
		/* Nothing could ever answer it: the kernel would keep the request forever. */
		rf_log_once(RF_LOG_ERR, "ringfuse: io-uring queue %u: request without commit id",
			    q->uq.idx);
		rf_stat_inc(q->uq.stats.own.bad_requests, 1);
		q->lost++;
		ent_kill(q, e);
		return;
	}
	if (psz > q->max_payload) {
		rf_stat_inc(q->uq.stats.own.bad_requests, 1);
		ent_set_reply(e, ih->unique, -EIO, 0);
		e->reply = true;
		ent_commit(q, e);
		return;
	}
	e->req.out = e->payload;
	e->req.out_cap = q->max_payload;
	rf_dispatch_split(q->uq.se, &e->req, ih, h->op_in, sizeof(h->op_in), e->payload, psz);
}

static void queue_arm_timer(struct uring_queue *q)
{
	struct io_uring_sqe *sqe;

	if (q->timer_armed)
		return;
	sqe = rf_uq_get_sqe(&q->uq);
	if (!sqe)
		return;
	q->retry_ts.tv_sec = (long long)(q->retry_delay_ns / 1000000000ull);
	q->retry_ts.tv_nsec = (long long)(q->retry_delay_ns % 1000000000ull);
	io_uring_prep_timeout(sqe, &q->retry_ts, 0, 0);
	sqe->user_data = ud_pack(UD_TIMER, 0);
	q->timer_armed = true;
}

static void reg_failed(struct uring_queue *q, struct ring_ent *e, int err)
{
	if (!q->reg_errors++)
		q->first_reg_err = err;
	ent_kill(q, e);
}

/* REGISTER before the kernel processed the INIT reply: try again after a back-off. */
static void ent_retry_later(struct uring_queue *q, struct ring_ent *e)
{
	uint64_t now = rf_now_ns();

	if (!q->retry_since_ns)
		q->retry_since_ns = now;
	if (now - q->retry_since_ns > URING_RETRY_LIMIT_NS) {
		rf_log_once(RF_LOG_ERR,
			    "ringfuse: io-uring queue %u: REGISTER still refused with EAGAIN "
			    "after 5 s; giving up on the entry",
			    q->uq.idx);
		reg_failed(q, e, -EAGAIN);
		return;
	}
	rf_log_once(RF_LOG_DEBUG,
		    "ringfuse: io-uring queue %u: REGISTER before the INIT reply was processed "
		    "(EAGAIN); retrying",
		    q->uq.idx);
	e->state = ENT_RETRY;
	if (!q->retry_delay_ns)
		q->retry_delay_ns = URING_RETRY_FIRST_NS;
	queue_arm_timer(q);
}

static void queue_retry_registers(struct uring_queue *q)
{
	bool any = false;

	for (unsigned int i = 0; i < q->depth; i++) {
		struct ring_ent *e = &q->ents[i];

		if (e->state == ENT_RETRY) {
			any = true;
			if (!ent_queue_cmd(q, e, FUSE_IO_URING_CMD_REGISTER))
				reg_failed(q, e, -EBUSY);
		}
	}
	if (any && q->retry_delay_ns < URING_RETRY_MAX_NS)
		q->retry_delay_ns *= 2;
}

static void queue_conn_gone(struct uring_queue *q)
{
	if (q->conn_gone)
		return;
	q->conn_gone = true;
	rf_session_conn_lost(q->uq.se);
}

static void ent_error(struct uring_queue *q, struct ring_ent *e, enum ud_kind kind, int res)
{
	switch (res) {
	case -ENOTCONN:
	case -ECONNABORTED:
	case -ENODEV:
		queue_conn_gone(q);
		ent_kill(q, e);
		return;
	case -ECANCELED: /* our ring is going away */
		ent_kill(q, e);
		return;
	case -EAGAIN:
	case -EINTR:
		if (kind == UD_REGISTER) {
			ent_retry_later(q, e);
			return;
		}
		break;
	default:
		break;
	}
	if (kind == UD_REGISTER) {
		/* Usually every entry fails alike: say it once per queue. */
		if (!q->reg_errors)
			rf_log(RF_LOG_ERR, "ringfuse: io-uring queue %u: REGISTER refused: %s",
			       q->uq.idx, strerror(-res));
		reg_failed(q, e, res);
		return;
	}
	q->lost++;
	if (res == -ENOENT) {
		/*
		 * The kernel no longer knows the request (gone while we answered it). The entry
		 * did not re-arm: register it again so the queue keeps its depth.
		 */
		rf_log_once(RF_LOG_WARN,
			    "ringfuse: io-uring queue %u: commit for an unknown request (ENOENT)",
			    q->uq.idx);
		if (!ent_queue_cmd(q, e, FUSE_IO_URING_CMD_REGISTER))
			ent_kill(q, e);
		return;
	}
	rf_log_once(RF_LOG_ERR, "ringfuse: io-uring queue %u: COMMIT_AND_FETCH failed: %s",
		    q->uq.idx, strerror(-res));
	ent_kill(q, e);
}

static void ent_complete(struct uring_queue *q, enum ud_kind kind, uint32_t idx, int res)
{
	struct ring_ent *e;

	assert(idx < q->depth);
	e = &q->ents[idx];
	assert(e->state == ENT_KERNEL);
	q->in_kernel--;
	if (res == 0)
		ent_dispatch(q, e);
	else
		ent_error(q, e, kind, res);
}

static void queue_handle_cqe(struct uring_queue *q, uint64_t ud, int res)
{
	switch (ud_kind(ud)) {
	case UD_REGISTER:
	case UD_COMMIT:
		ent_complete(q, ud_kind(ud), ud_index(ud), res);
		break;
	case UD_WAKE:
		if (res < 0 && res != -ECANCELED)
			rf_log_once(RF_LOG_WARN, "ringfuse: io-uring queue %u: wake-up read: %s",
				    q->uq.idx, strerror(-res));
		q->uq.efd_armed = false; /* re-armed before the next wait */
		break;
	case UD_TIMER:
		q->timer_armed = false;
		queue_retry_registers(q);
		break;
	case UD_IO:
		assert(ud_index(ud) < q->depth && q->io_inflight > 0);
		q->io_inflight--;
		rf_io_complete(&q->ents[ud_index(ud)].req, res);
		break;
	case UD_NOP:
		break;
	default:
		rf_log_once(RF_LOG_WARN, "ringfuse: io-uring queue %u: stray completion %#llx",
			    q->uq.idx, (unsigned long long)ud);
		break;
	}
}

/* Opcode of the request an entry just received (for fault injection). */
static uint32_t ent_opcode(const struct uring_queue *q, uint64_t ud)
{
	const struct fuse_in_header *ih =
		(const struct fuse_in_header *)q->ents[ud_index(ud)].hdr->in_out;

	return ih->opcode;
}

static unsigned int queue_reap(struct uring_queue *q)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0, reqs = 0;

	/* Handlers may queue SQEs meanwhile; they go out with the next enter. */
	io_uring_for_each_cqe(&q->uq.ring, head, cqe)
	{
		enum ud_kind k = ud_kind(cqe->user_data);
		bool req = (k == UD_COMMIT || k == UD_REGISTER) && cqe->res == 0;

		if (req && rf_uq_fault(&q->uq, ent_opcode(q, cqe->user_data)))
			break;
		reqs += req;
		queue_handle_cqe(q, cqe->user_data, cqe->res);
		n++;
	}
	io_uring_cq_advance(&q->uq.ring, n);
	return reqs;
}

static void reap_uq(struct rf_uq *uq)
{
	queue_reap(uq_queue(uq));
}

/*
 * Pinned, a queue shares its CPU with the callers it serves, which is what makes single
 * requests fast. But when a caller keeps many requests in flight (a round brings
 * URING_SPREAD_BATCH of them or more), caller and queue thread both have CPU work to do, and on
 * one CPU they take turns while the others idle. Such a queue is let onto every CPU, so the
 * scheduler can run it beside its caller; after URING_CALM_ROUNDS rounds of single requests it
 * goes home. One sched_setaffinity() per change of load. 4K O_DIRECT randread QD32 (fio
 * io_uring engine), memfs cache=none: 192k IOPS pinned, 265k-288k with this.
 */
#define URING_SPREAD_BATCH 8
#define URING_CALM_ROUNDS  256

static void queue_adapt(struct uring_queue *q, unsigned int reqs)
{
	if (!q->pinned || !q->uq.se->opts.uring_spread || reqs == 0)
		return;
	if (!q->spread) {
		/* A shallow queue (uring_depth below the batch) spreads when all of it is busy. */
		unsigned int batch = q->depth < URING_SPREAD_BATCH ? q->depth : URING_SPREAD_BATCH;

		if (reqs >= batch && batch >= 2 &&
		    sched_setaffinity(0, sizeof(q->anywhere), &q->anywhere) == 0) {
			q->spread = true;
			q->calm = 0;
			rf_stat_inc(q->uq.stats.own.spreads, 1);
		}
		return;
	}
	q->calm = reqs <= 1 ? q->calm + 1 : 0;
	if (q->calm >= URING_CALM_ROUNDS && sched_setaffinity(0, sizeof(q->home), &q->home) == 0)
		q->spread = false;
}

/*
 * Poll the CQ for up to spin_ns (rings without DEFER_TASKRUN); true if there is work.
 *
 * Why poll: the kernel queues a request on the caller's CPU, where this thread is pinned.
 * A queue asleep in io_uring_enter leaves that CPU idle, and the scheduler then wakes the
 * caller, once answered, on whichever CPU is idle, so the caller and its queue chase each
 * other across CPUs, each hop a wake-up from idle. Why yield rather than pause: the caller
 * shares this CPU, and between its requests it must run at once, not when our time slice
 * ends (pausing made one request in ten wait out the whole spin).
 */
static bool queue_spin(struct uring_queue *q)
{
	uint64_t end;

	if (io_uring_sq_ready(&q->uq.ring)) {
		io_uring_submit(&q->uq.ring);
		rf_stat_inc(q->uq.stats.own.enters, 1);
	}
	end = rf_now_ns() + q->spin_ns;
	do {
		if (io_uring_cq_ready(&q->uq.ring) ||
		    atomic_load_explicit(&q->uq.deferred, memory_order_relaxed))
			return true;
		sched_yield();
	} while (rf_now_ns() < end);
	return false;
}

static void queue_wait(struct uring_queue *q)
{
	if (q->spin_ns && !atomic_load_explicit(&q->uq.set->draining, memory_order_relaxed) &&
	    queue_spin(q))
		return;
	rf_uq_wait(&q->uq);
}

static bool queue_done(struct uring_queue *q)
{
	if (rf_uq_stopping(&q->uq) || q->uq.fatal || q->live == 0)
		return true;
	/* Entries still held by handlers can only fail now: do not wait for them. */
	return q->conn_gone && q->in_kernel == 0 && q->io_inflight == 0;
}

static void queue_loop(struct uring_queue *q)
{
	while (!queue_done(q)) {
		rf_uq_arm_wake(&q->uq, ud_pack(UD_WAKE, 0));
		queue_wait(q);
		queue_adapt(q, queue_reap(q));
		queue_commit_deferred(q);
		rf_uq_check_drained(&q->uq, q->in_user + q->io_inflight);
	}
	/* Backend reads must not land in the buffers after they are freed: let them finish. */
	if (!rf_uq_settle(&q->uq, &q->io_inflight, URING_IO_WAIT_NS, reap_uq)) {
		rf_log(RF_LOG_WARN,
		       "ringfuse: io-uring queue %u: %u backend operations pending at exit",
		       q->uq.idx, q->io_inflight);
		q->uq.leak = true;
	}
	if (q->lost)
		rf_log(RF_LOG_WARN, "ringfuse: io-uring queue %u: %llu replies were refused",
		       q->uq.idx, (unsigned long long)q->lost);
	if (q->uq.fatal)
		rf_uq_ended(&q->uq, "its io_uring failed");
	else if (q->live == 0 && !q->conn_gone)
		rf_uq_ended(&q->uq, "the kernel refused all its ring entries");
	else
		rf_uq_ended(&q->uq, NULL);
}

/* ---- queue setup (on the queue thread) ---- */

static void queue_pin(struct uring_queue *q)
{
	unsigned int cpu = q->uq.idx;
	cpu_set_t set;

	if (!q->uq.se->opts.uring_pin || cpu >= CPU_SETSIZE)
		return;
	if (sched_getaffinity(0, sizeof(q->anywhere), &q->anywhere) < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	q->home = set;
	/* Fails for an offline CPU or one outside our cpuset: serve unpinned then. */
	q->pinned = sched_setaffinity(0, sizeof(set), &set) == 0;
}

static void ent_init(struct uring_queue *q, struct ring_ent *e, uint32_t idx, char *hdr,
		     char *payload)
{
	e->q = q;
	e->idx = idx;
	e->state = ENT_IDLE;
	e->hdr = (struct fuse_uring_req_header *)hdr;
	e->payload = payload;
	e->iov[0] = (struct iovec){hdr, URING_HDR_STRIDE};
	e->iov[1] = (struct iovec){payload, q->max_payload};
	e->req.se = q->uq.se;
	e->req.rops = &uring_reply_ops;
	e->req.chan = e;
	e->req.queue = q->uq.idx;
	e->req.stats = &q->uq.stats;
	e->req.out = payload;
	e->req.out_cap = q->max_payload;
}

/* Entries and buffers, allocated and first touched here so they are local to the queue's CPU. */
static int queue_alloc(struct uring_queue *q)
{
	size_t hdr_area = rf_round_up((size_t)q->depth * URING_HDR_STRIDE, RF_PAGE_SIZE);
	/* Each entry is a multiple of RF_REQ_ALIGN (its rf_req is aligned to that). */
	size_t ents_size = q->depth * sizeof(struct ring_ent);
	char *mem;

	q->bufs_size = hdr_area + (size_t)q->depth * q->max_payload;
	mem = mmap(NULL, q->bufs_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED)
		return -errno;
	q->bufs = mem;
	q->ents = aligned_alloc(RF_REQ_ALIGN, ents_size);
	if (!q->ents)
		return -ENOMEM;
	memset(q->ents, 0, ents_size);
	memset(mem, 0, hdr_area);
	for (uint32_t i = 0; i < q->depth; i++)
		ent_init(q, &q->ents[i], i, mem + (size_t)i * URING_HDR_STRIDE,
			 mem + hdr_area + (size_t)i * q->max_payload);
	q->live = q->depth;
	return 0;
}

static int queue_ring_init(struct uring_queue *q)
{
	const unsigned int base = IORING_SETUP_SQE128;
	/*
	 * Spinning needs completions posted without our help, so no deferred task work then.
	 * DEFER_TASKRUN is opt-in (uring_defer_taskrun=1): measured on the benchmark it adds a
	 * wake-up round trip per request, because the kernel hands each request to the queue as
	 * task work (docs/performance.md).
	 */
	const bool defer = !q->spin_ns && q->uq.se->opts.uring_defer_taskrun;
	const unsigned int tries[] = {
		defer ? base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
				IORING_SETUP_COOP_TASKRUN
		      : base | IORING_SETUP_SINGLE_ISSUER,
		q->spin_ns ? base : base | IORING_SETUP_COOP_TASKRUN,
		base,
	};
	int ret = rf_uq_ring_init(&q->uq, q->depth + URING_EXTRA_SQES, tries,
				  sizeof(tries) / sizeof(tries[0]));

	if (ret)
		return ret;
	q->ring_flags = q->uq.ring.flags;
	/* A fixed file saves an fget/fput per command; the plain fd works as well. */
	q->fixed_fd = io_uring_register_files(&q->uq.ring, &q->uq.se->fd, 1) == 0;
	q->dev_fd = q->fixed_fd ? 0 : q->uq.se->fd;
	q->dev_sqe_flags = q->fixed_fd ? IOSQE_FIXED_FILE : 0;
	return 0;
}

static int queue_register_entries(struct uring_queue *q)
{
	int ret = rf_uq_register_reqs(&q->uq, &q->ents[0].req, q->depth, sizeof(struct ring_ent));

	if (ret)
		return ret;
	rf_uq_arm_wake(&q->uq, ud_pack(UD_WAKE, 0));
	for (uint32_t i = 0; i < q->depth; i++)
		if (!ent_queue_cmd(q, &q->ents[i], FUSE_IO_URING_CMD_REGISTER))
			return -EBUSY;
	ret = io_uring_submit(&q->uq.ring);
	rf_stat_inc(q->uq.stats.own.enters, 1);
	if (ret < 0)
		return ret;
	/* Refusals are posted during the submit; successes stay silent until a request. */
	queue_reap(q);
	if (q->reg_errors == q->depth)
		return q->first_reg_err;
	if (q->reg_errors)
		rf_log(RF_LOG_WARN,
		       "ringfuse: io-uring queue %u: %u of %u entries could not be registered (%s)",
		       q->uq.idx, q->reg_errors, q->depth, strerror(-q->first_reg_err));
	return 0;
}

static int queue_setup(struct uring_queue *q)
{
	int ret;

	queue_pin(q);
	ret = queue_alloc(q);
	if (!ret)
		ret = queue_ring_init(q);
	if (!ret)
		ret = queue_register_entries(q);
	return ret;
}

static void *queue_thread(void *arg)
{
	struct uring_queue *q = arg;
	char name[16];
	int err;

	tls_queue = q;
	snprintf(name, sizeof(name), "rf-uring-%u", q->uq.idx);
	pthread_setname_np(pthread_self(), name);
	err = queue_setup(q);
	rf_uq_report_setup(&q->uq, err);
	if (!err)
		queue_loop(q);
	tls_queue = NULL;
	return NULL;
}

/* ---- transport ops (session thread) ---- */

static void queue_free(struct rf_uq *uq)
{
	struct uring_queue *q = uq_queue(uq);

	if (q->bufs)
		munmap(q->bufs, q->bufs_size);
	free(q->ents);
	free(q);
}

static struct uring_queue *queue_new(struct uring_tp *tp, unsigned int qid)
{
	struct uring_queue *q = aligned_alloc(64, rf_round_up(sizeof(*q), 64));

	if (!q)
		return NULL;
	memset(q, 0, sizeof(*q));
	q->depth = tp->depth;
	q->max_payload = tp->max_payload;
	q->spin_ns = (uint64_t)tp->set.se->opts.uring_spin_us * 1000;
	if (rf_uq_init(&q->uq, &tp->set, qid) < 0) {
		free(q);
		return NULL;
	}
	return q;
}

static struct uring_tp *tp_new(rf_session *se, unsigned int nq)
{
	struct uring_tp *tp = calloc(1, sizeof(*tp));

	if (!tp)
		return NULL;
	if (rf_uq_set_init(&tp->set, se, "io-uring queue", nq, queue_free) < 0) {
		free(tp);
		return NULL;
	}
	tp->depth = se->opts.uring_depth ? se->opts.uring_depth : URING_DEFAULT_DEPTH;
	tp->max_payload = payload_size(se);
	return tp;
}

static void tp_free(struct uring_tp *tp)
{
	rf_uq_finish(&tp->set);
	free(tp);
}

static int start_threads(struct uring_tp *tp)
{
	for (unsigned int i = 0; i < tp->set.n; i++) {
		struct uring_queue *q = queue_new(tp, i);
		int ret;

		if (!q)
			return -ENOMEM;
		ret = rf_uq_start(&q->uq, queue_thread);
		if (ret)
			return ret;
	}
	return 0;
}

/* Whether the kernel refused some queue's REGISTERs (so it fell back to /dev/fuse itself). */
static bool kernel_refused(const struct uring_tp *tp)
{
	for (unsigned int i = 0; i < tp->set.n; i++)
		if (tp->set.q[i] && uq_queue(tp->set.q[i])->reg_errors)
			return true;
	return false;
}

/* Make the kernel give up waiting for the ring: a REGISTER with a bad iovec count fails. */
static void force_dev_fallback(rf_session *se)
{
	struct io_uring ring;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	int ret = io_uring_queue_init(2, &ring, IORING_SETUP_SQE128);

	if (ret < 0) {
		rf_log(RF_LOG_ERR,
		       "ringfuse: cannot turn io-uring off for this mount (%s); requests may "
		       "wait until it is unmounted",
		       strerror(-ret));
		return;
	}
	sqe = io_uring_get_sqe(&ring);
	if (!sqe) {
		io_uring_queue_exit(&ring);
		return;
	}
	memset(sqe, 0, 2 * sizeof(*sqe));
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = se->fd;
	sqe->cmd_op = FUSE_IO_URING_CMD_REGISTER;
	sqe->len = 0; /* not FUSE_URING_IOV_SEGS: refused, and the kernel falls back */
	ret = io_uring_submit_and_wait(&ring, 1);
	if (ret >= 0 && io_uring_peek_cqe(&ring, &cqe) == 0)
		rf_log(RF_LOG_DEBUG, "ringfuse: io-uring fallback REGISTER: %d", cqe->res);
	io_uring_queue_exit(&ring);
}

static void log_started(const struct uring_tp *tp)
{
	const struct uring_queue *q0 = uq_queue(tp->set.q[0]);
	unsigned int pinned = 0;
	char flags[96];

	for (unsigned int i = 0; i < tp->set.n; i++)
		pinned += uq_queue(tp->set.q[i])->pinned;
	flags_string(q0->ring_flags, flags, sizeof(flags));
	rf_log(RF_LOG_INFO,
	       "ringfuse: io-uring transport: %u queues x depth %u, payload %zu KiB, flags %s%s, "
	       "%u pinned%s, spin %u us",
	       tp->set.n, tp->depth, tp->max_payload / 1024, flags, q0->fixed_fd ? "|fixed-fd" : "",
	       pinned, pinned && tp->set.se->opts.uring_spread ? " (spread under load)" : "",
	       tp->set.se->opts.uring_spin_us);
}

static int uring_start(rf_session *se)
{
	/* The kernel's count (fuse_uring_create(): num_possible_cpus()), and it maps a caller on
	 * CPU c to queue c. */
	unsigned int nq = rf_possible_cpus();
	struct uring_tp *tp;
	int ret, err;

	if (se->opts.uring_queues && se->opts.uring_queues != nq)
		rf_log(RF_LOG_WARN,
		       "ringfuse: the kernel needs one io-uring queue per possible "
		       "CPU; using %u",
		       nq);
	if (nq > RF_MAX_QUEUES) {
		rf_log(RF_LOG_ERR, "ringfuse: %u possible CPUs, io-uring supports at most %u", nq,
		       RF_MAX_QUEUES);
		force_dev_fallback(se);
		return -E2BIG;
	}
	tp = tp_new(se, nq);
	if (!tp) {
		force_dev_fallback(se);
		return -ENOMEM;
	}
	se->tp_data = tp;
	ret = start_threads(tp);
	if (ret)
		rf_uq_stop(&tp->set);
	err = rf_uq_wait_setup(&tp->set);
	if (!ret)
		ret = err;
	if (ret) {
		bool refused = kernel_refused(tp);

		se->tp_data = NULL;
		tp_free(tp);
		if (!refused)
			force_dev_fallback(se);
		return ret;
	}
	rf_uq_publish_stats(&tp->set);
	log_started(tp);
	return 0;
}

static void uring_drain(rf_session *se, uint64_t deadline_ns)
{
	struct uring_tp *tp = se->tp_data;

	if (tp)
		rf_uq_drain(&tp->set, deadline_ns);
}

static void uring_stop(rf_session *se)
{
	struct uring_tp *tp = se->tp_data;

	if (tp)
		rf_uq_stop(&tp->set);
}

static void uring_destroy(rf_session *se)
{
	struct uring_tp *tp = se->tp_data;

	if (!tp)
		return;
	se->tp_data = NULL;
	tp_free(tp);
}

const struct rf_transport rf_transport_uring = {
	.name = "uring",
	.start = uring_start,
	.drain = uring_drain,
	.stop = uring_stop,
	.destroy = uring_destroy,
};
