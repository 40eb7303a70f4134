/*
 * The io-uring transport: requests and replies travel through ring entries registered with
 * the kernel's FUSE-over-io-uring interface (IORING_OP_URING_CMD on the /dev/fuse fd).
 *
 * Design
 *
 * Queues and threads. The kernel keeps one queue per possible CPU (num_possible_cpus()), puts
 * each request on the queue of the CPU its caller runs on, and only switches from /dev/fuse
 * to the ring once every queue has a registered entry (until then new requests wait). The
 * queues are served by -o uring_threads=N threads (default one per queue), grouped along the
 * machine (lib/uring_plan.c: a node's queues share threads before two nodes do, SMT siblings
 * and neighbouring cores together). A thread owns one io_uring (single issuer) with the
 * entries of all its queues, allocates their buffers itself so they sit on its node, and runs
 * on its queues' CPUs. What a thread's life looks like from start to teardown is shared with
 * the uring-rw transport (uring_queue.h); this file holds the ring-entry protocol.
 *
 * Entries. A ring entry is a header buffer (struct fuse_uring_req_header: in/out header,
 * opcode argument, commit id and payload size), a payload buffer of max_payload bytes, and
 * the rf_req handed to the dispatcher. A request is decoded where the kernel put it and the
 * reply is encoded into the same payload buffer; one COMMIT_AND_FETCH SQE sends the reply and
 * re-arms the entry for the next request. Entry states (thread only):
 *   IDLE    made, not yet handed to the kernel
 *   KERNEL  a REGISTER or COMMIT_AND_FETCH is queued or in flight: waiting for a request
 *   USER    holds a request: in the dispatcher, a handler, or a deferred reply
 *   RETRY   REGISTER said EAGAIN; re-sent when the back-off timer fires
 *   DEAD    the connection ended (or the kernel refused the entry); never used again
 * A queue starts with -o uring_depth_min entries and registers more, up to uring_depth, when
 * all of them are busy; entries that sit idle give their payload memory back
 * (uring_elastic.c).
 *
 * The loop. One io_uring_enter per round submits everything the previous round produced and
 * waits for completions (optionally after spinning on the CQ); then every CQE is reaped,
 * requests are dispatched, and replies made on the thread only queue an SQE. A reply from
 * another thread (a deferred reply) writes the reply header and goes through the thread's
 * deferred list (rf_uq_defer); the thread commits those replies itself, so its submission
 * queue has exactly one writer, and counts every reply as it commits it. user_data says what
 * each SQE was (register, commit, wake-up, timers, backend I/O, /dev/fuse read) and, for
 * entries, which one: its slot in the thread's entry array (ud_*() helpers), so finding an
 * entry costs the same however many queues a thread serves.
 *
 * Backend I/O. A handler on the thread may hand its request's file operation (rf_io_*) to the
 * thread's ring: it goes out with the same io_uring_enter as the commits, and its completion
 * runs the handler's callback on the thread. From other threads, or with a full SQ,
 * io_submit() declines and the caller runs the operation synchronously. A thread lets its
 * backend I/O finish before it exits, since reads land in the entries' buffers.
 *
 * One thread. With uring_threads=1 (or -s) every callback runs on one thread, as on /dev/fuse
 * with -s: the ring is served by the session's own thread (the one that read INIT), which
 * also reads /dev/fuse through the ring (forgets, interrupts, requests that raced the switch)
 * instead of with read(2) beside it.
 *
 * The end. Drain: the threads keep serving (a commit always fetches the next request) until
 * no entry is held by a handler or backend I/O and every reply is submitted. Unmount or
 * abort completes the waiting entries with -ENOTCONN (aborted connections refuse new
 * commands with -ECONNABORTED; a dying ring cancels with -ECANCELED): a thread then exits
 * once nothing of it is left in the kernel. A thread whose ring fails for good, or a queue
 * whose entries all die while the connection lives, ends the session (rf_uq_ended): the
 * kernel would otherwise keep routing a CPU's requests to it.
 *
 * Start-up failure. New requests wait in the kernel while the ring is incomplete, and only a
 * failed REGISTER makes the kernel give up on the ring for this connection. If start() fails
 * before any REGISTER could fail, it sends one that must fail (bad iovec count), so requests
 * flow over /dev/fuse again.
 */
#include "uring_i.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/eventfd.h>
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

#define URING_RETRY_FIRST_NS (1000ull * 1000)		 /* 1 ms */
#define URING_RETRY_MAX_NS   (64ull * 1000 * 1000)	 /* 64 ms */
#define URING_RETRY_LIMIT_NS (5ull * 1000 * 1000 * 1000) /* give up after 5 s of EAGAIN */
#define URING_IO_WAIT_NS     (500ull * 1000 * 1000)	 /* exit: wait for backend I/O */

_Static_assert(sizeof(struct fuse_uring_req_header) <= RF_URING_HDR_STRIDE, "header stride");
_Static_assert(offsetof(struct io_uring_sqe, addr3) == 48, "SQE command area at byte 48");
_Static_assert(sizeof(struct fuse_uring_cmd_req) <= 80, "fuse_uring_cmd_req fits the SQE");

/* The thread running (or the session's thread while it serves the ring), so a reply knows
 * whether it is on the owning thread. */
static __thread struct uring_thread *tls_thread;

static inline struct uring_thread *uq_thread(struct rf_uq *uq)
{
	return (struct uring_thread *)uq;
}

static void flags_string(unsigned int f, char *buf, size_t len)
{
	snprintf(buf, len, "SQE128%s%s%s", f & IORING_SETUP_SINGLE_ISSUER ? "|SINGLE_ISSUER" : "",
		 f & IORING_SETUP_DEFER_TASKRUN ? "|DEFER_TASKRUN" : "",
		 f & IORING_SETUP_COOP_TASKRUN ? "|COOP_TASKRUN" : "");
}

/* ---- submission (thread only) ---- */

/* Queue a REGISTER or COMMIT_AND_FETCH for e; it goes out with the next io_uring_enter. */
bool ent_queue_cmd(struct uring_thread *t, struct ring_ent *e, uint32_t cmd_op)
{
	struct io_uring_sqe *sqe = rf_uq_get_sqe(&t->uq);
	struct fuse_uring_cmd_req *cmd;

	if (!sqe)
		return false;
	memset(sqe, 0, 2 * sizeof(*sqe)); /* SQE128: the command area is the second half */
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->flags = t->dev_sqe_flags;
	sqe->fd = t->dev_fd;
	sqe->cmd_op = cmd_op;
	cmd = (struct fuse_uring_cmd_req *)((char *)sqe + offsetof(struct io_uring_sqe, addr3));
	cmd->qid = (uint16_t)e->kq->qid;
	if (cmd_op == FUSE_IO_URING_CMD_REGISTER) {
		sqe->addr = (uintptr_t)e->iov;
		sqe->len = FUSE_URING_IOV_SEGS;
		sqe->user_data = ud_pack(UD_REGISTER, e->slot);
	} else {
		cmd->commit_id = e->commit_id;
		sqe->user_data = ud_pack(UD_COMMIT, e->slot);
	}
	e->state = ENT_KERNEL;
	e->kq->in_kernel++;
	t->in_kernel++;
	return true;
}

static void ent_kill(struct uring_kq *kq, struct ring_ent *e)
{
	if (e->state == ENT_DEAD)
		return;
	if (e->state == ENT_USER)
		kq->in_user--;
	e->state = ENT_DEAD;
	if (--kq->live == 0)
		kq->t->dead_queues++;
}

/* The reply header and size are in place: count it, send it and re-arm the entry. */
static void ent_commit(struct uring_thread *t, struct ring_ent *e)
{
	struct uring_kq *kq = e->kq;

	if (e->reply)
		rf_stat_reply(&kq->stats->own, ((struct fuse_out_header *)e->hdr->in_out)->error,
			      e->hdr->ring_ent_in_out.payload_sz, true);
	rf_req_set_free(&e->req);
	kq->in_user--;
	e->state = ENT_IDLE;
	if (!ent_queue_cmd(t, e, FUSE_IO_URING_CMD_COMMIT_AND_FETCH)) {
		kq->lost++;
		ent_kill(kq, e);
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
	struct uring_thread *t = e->kq->t;

	if (tls_thread == t)
		ent_commit(t, e);
	else
		rf_uq_defer(&t->uq, &e->req);
}

static int uring_send(rf_req *req, int error, size_t len)
{
	struct ring_ent *e = req->chan;

	if (len > req->out_cap) {
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

/* Backend I/O of a handler running on the thread goes on the thread's own ring. */
static int uring_io_submit(rf_req *req)
{
	struct ring_ent *e = req->chan;
	struct uring_thread *t = e->kq->t;
	struct io_uring_sqe *sqe;

	if (tls_thread != t)
		return -EAGAIN; /* foreign thread: the caller runs it synchronously */
	sqe = io_uring_get_sqe(&t->uq.ring);
	if (!sqe)
		return -EAGAIN;
	if (!rf_uring_prep_io(sqe, &req->io)) {
		/* Turn the claimed slot into a no-op: an SQE cannot be handed back. */
		io_uring_prep_nop(sqe);
		sqe->user_data = ud_pack(UD_NOP, 0);
		return -EAGAIN;
	}
	sqe->user_data = ud_pack(UD_IO, e->slot);
	t->io_inflight++;
	return 0;
}

static const struct rf_reply_ops uring_reply_ops = {
	.send = uring_send,
	.drop = uring_drop,
	.io_submit = uring_io_submit,
};

/* ---- completions (thread only) ---- */

static void thread_commit_deferred(struct uring_thread *t)
{
	rf_req *r = rf_uq_take_deferred(&t->uq);

	while (r) {
		rf_req *next = r->next;

		ent_commit(t, r->chan);
		r = next;
	}
}

static void ent_dispatch(struct uring_thread *t, struct ring_ent *e)
{
	struct uring_kq *kq = e->kq;
	struct fuse_uring_req_header *h = e->hdr;
	const struct fuse_in_header *ih = (const struct fuse_in_header *)h->in_out;
	uint32_t psz = h->ring_ent_in_out.payload_sz;

	e->state = ENT_USER;
	kq->in_user++;
	if (kq->depth < t->tp->depth_max && !kq->grow_stopped)
		kq_note_busy(kq);
	ent_mark_warm(t, e);
	e->commit_id = h->ring_ent_in_out.commit_id;
	if (e->commit_id == 0) {
		/* Nothing could ever answer it: the kernel would keep the request forever. */
		rf_log_once(RF_LOG_ERR, "ringfuse: io-uring queue %u: request without commit id",
			    kq->qid);
		rf_stat_inc(kq->stats->own.bad_requests, 1);
		kq->lost++;
		ent_kill(kq, e);
		return;
	}
	if (psz > e->req.out_cap) {
		rf_stat_inc(kq->stats->own.bad_requests, 1);
		ent_set_reply(e, ih->unique, -EIO, 0);
		e->reply = true;
		ent_commit(t, e);
		return;
	}
	e->req.out = e->payload;
	rf_dispatch_split(t->uq.se, &e->req, ih, h->op_in, sizeof(h->op_in), e->payload, psz);
}

static void thread_arm_timer(struct uring_thread *t)
{
	struct io_uring_sqe *sqe;

	if (t->timer_armed)
		return;
	sqe = rf_uq_get_sqe(&t->uq);
	if (!sqe)
		return;
	t->retry_ts.tv_sec = (long long)(t->retry_delay_ns / 1000000000ull);
	t->retry_ts.tv_nsec = (long long)(t->retry_delay_ns % 1000000000ull);
	io_uring_prep_timeout(sqe, &t->retry_ts, 0, 0);
	sqe->user_data = ud_pack(UD_TIMER, 0);
	t->timer_armed = true;
}

void reg_failed(struct uring_kq *kq, struct ring_ent *e, int err)
{
	if (!kq->reg_errors++)
		kq->first_reg_err = err;
	ent_kill(kq, e);
}

/* REGISTER before the kernel processed the INIT reply: try again after a back-off. */
static void ent_retry_later(struct uring_thread *t, struct ring_ent *e)
{
	uint64_t now = rf_now_ns();

	if (!t->retry_since_ns)
		t->retry_since_ns = now;
	if (now - t->retry_since_ns > URING_RETRY_LIMIT_NS) {
		rf_log_once(RF_LOG_ERR,
			    "ringfuse: io-uring queue %u: REGISTER still refused with EAGAIN "
			    "after 5 s; giving up on the entry",
			    e->kq->qid);
		reg_failed(e->kq, e, -EAGAIN);
		return;
	}
	rf_log_once(RF_LOG_DEBUG,
		    "ringfuse: io-uring queue %u: REGISTER before the INIT reply was processed "
		    "(EAGAIN); retrying",
		    e->kq->qid);
	e->state = ENT_RETRY;
	if (!t->retry_delay_ns)
		t->retry_delay_ns = URING_RETRY_FIRST_NS;
	thread_arm_timer(t);
}

static void thread_retry_registers(struct uring_thread *t)
{
	bool any = false;

	for (unsigned int k = 0; k < t->nkq; k++) {
		struct uring_kq *kq = t->kq[k];

		for (unsigned int i = 0; i < kq->depth; i++) {
			struct ring_ent *e = &kq->ents[i];

			if (e->state == ENT_RETRY) {
				any = true;
				if (!ent_queue_cmd(t, e, FUSE_IO_URING_CMD_REGISTER))
					reg_failed(kq, e, -EBUSY);
			}
		}
	}
	if (any && t->retry_delay_ns < URING_RETRY_MAX_NS)
		t->retry_delay_ns *= 2;
}

static void thread_conn_gone(struct uring_thread *t)
{
	if (t->conn_gone)
		return;
	t->conn_gone = true;
	rf_session_conn_lost(t->uq.se);
}

static void ent_error(struct uring_thread *t, struct ring_ent *e, enum ud_kind kind, int res)
{
	struct uring_kq *kq = e->kq;

	switch (res) {
	case -ENOTCONN:
	case -ECONNABORTED:
	case -ENODEV:
		thread_conn_gone(t);
		ent_kill(kq, e);
		return;
	case -ECANCELED: /* our ring is going away */
		ent_kill(kq, e);
		return;
	case -EAGAIN:
	case -EINTR:
		if (kind == UD_REGISTER) {
			ent_retry_later(t, e);
			return;
		}
		break;
	default:
		break;
	}
	if (kind == UD_REGISTER) {
		/* Usually every entry fails alike: say it once per queue. */
		if (!kq->reg_errors)
			rf_log(RF_LOG_ERR, "ringfuse: io-uring queue %u: REGISTER refused: %s",
			       kq->qid, strerror(-res));
		reg_failed(kq, e, res);
		return;
	}
	kq->lost++;
	if (res == -ENOENT) {
		/*
		 * The kernel no longer knows the request (gone while we answered it). The entry
		 * did not re-arm: register it again so the queue keeps its depth.
		 */
		rf_log_once(RF_LOG_WARN,
			    "ringfuse: io-uring queue %u: commit for an unknown request (ENOENT)",
			    kq->qid);
		if (!ent_queue_cmd(t, e, FUSE_IO_URING_CMD_REGISTER))
			ent_kill(kq, e);
		return;
	}
	rf_log_once(RF_LOG_ERR, "ringfuse: io-uring queue %u: COMMIT_AND_FETCH failed: %s", kq->qid,
		    strerror(-res));
	ent_kill(kq, e);
}

static void ent_complete(struct uring_thread *t, enum ud_kind kind, uint32_t slot, int res)
{
	struct ring_ent *e;

	assert(slot < t->nents);
	e = &t->ents[slot];
	assert(e->state == ENT_KERNEL);
	e->kq->in_kernel--;
	t->in_kernel--;
	if (res == 0)
		ent_dispatch(t, e);
	else
		ent_error(t, e, kind, res);
}

static void thread_handle_cqe(struct uring_thread *t, uint64_t ud, int res)
{
	switch (ud_kind(ud)) {
	case UD_REGISTER:
	case UD_COMMIT:
		ent_complete(t, ud_kind(ud), ud_slot(ud), res);
		break;
	case UD_WAKE:
		if (res < 0 && res != -ECANCELED)
			rf_log_once(RF_LOG_WARN, "ringfuse: %s: wake-up read: %s", t->uq.name,
				    strerror(-res));
		t->uq.efd_armed = false; /* re-armed before the next wait */
		break;
	case UD_TIMER:
		t->timer_armed = false;
		thread_retry_registers(t);
		break;
	case UD_IO:
		assert(ud_slot(ud) < t->nents && t->io_inflight > 0);
		t->io_inflight--;
		rf_io_complete(&t->ents[ud_slot(ud)].req, res);
		break;
	case UD_TRIM:
		t->trim_armed = false;
		t->trim_due = true; /* done at the end of the round */
		break;
	case UD_DEVREAD:
	case UD_DEVPAUSE:
		thread_devread_done(t, ud_kind(ud), res);
		break;
	case UD_NOP:
	case UD_CANCEL:
		break;
	default:
		rf_log_once(RF_LOG_WARN, "ringfuse: %s: stray completion %#llx", t->uq.name,
			    (unsigned long long)ud);
		break;
	}
}

/* Fault injection: queue qid's ring "fails" when a READ reaches it. */
static bool ent_fault(struct uring_thread *t, uint64_t ud)
{
	const struct ring_ent *e = &t->ents[ud_slot(ud)];
	const struct fuse_in_header *ih = (const struct fuse_in_header *)e->hdr->in_out;

	if (__builtin_expect(rf_faults.uring_queue_fatal == 0, 1) ||
	    rf_faults.uring_queue_fatal != (int)e->kq->qid + 1)
		return false;
	if (ih->opcode == FUSE_READ)
		snprintf(t->uq.name, sizeof(t->uq.name), "io-uring queue %u", e->kq->qid);
	return rf_uq_fault(&t->uq, e->kq->qid, ih->opcode);
}

static unsigned int thread_reap(struct uring_thread *t)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0, reqs = 0;

	/* Handlers may queue SQEs meanwhile; they go out with the next enter. */
	io_uring_for_each_cqe(&t->uq.ring, head, cqe)
	{
		enum ud_kind k = ud_kind(cqe->user_data);
		bool req = (k == UD_COMMIT || k == UD_REGISTER) && cqe->res == 0;

		if (req && ent_fault(t, cqe->user_data))
			break;
		reqs += req;
		thread_handle_cqe(t, cqe->user_data, cqe->res);
		n++;
	}
	io_uring_cq_advance(&t->uq.ring, n);
	return reqs;
}

void thread_reap_uq(struct rf_uq *uq)
{
	thread_reap(uq_thread(uq));
}

/*
 * Pinned, a thread shares its CPUs with the callers it serves, which is what makes single
 * requests fast. But when a caller keeps many requests in flight (a round brings
 * URING_SPREAD_BATCH of them or more), caller and thread both have CPU work to do, and on one
 * CPU they take turns while the others idle. Such a thread is let onto more CPUs (those of its
 * node), so the scheduler can run it beside its caller; after URING_CALM_ROUNDS rounds of
 * single requests it goes home. One sched_setaffinity() per change of load. 4K O_DIRECT
 * randread QD32 (fio io_uring engine), memfs cache=none: 192k IOPS pinned, 265k-288k with this.
 */
#define URING_SPREAD_BATCH 8
#define URING_CALM_ROUNDS  256

static void thread_adapt(struct uring_thread *t, unsigned int reqs)
{
	if (!t->pinned || !t->uq.se->opts.uring_spread || reqs == 0)
		return;
	if (!t->spread) {
		/* Shallow queues (uring_depth below the batch) spread when all of it is busy. */
		unsigned int depth = t->tp->depth_max, batch;

		batch = depth < URING_SPREAD_BATCH ? depth : URING_SPREAD_BATCH;
		if (reqs >= batch && batch >= 2 &&
		    sched_setaffinity(0, t->setsize, t->anywhere) == 0) {
			t->spread = true;
			t->calm = 0;
			rf_stat_inc(t->kq[0]->stats->own.spreads, 1);
		}
		return;
	}
	t->calm = reqs <= 1 ? t->calm + 1 : 0;
	if (t->calm >= URING_CALM_ROUNDS && sched_setaffinity(0, t->setsize, t->home) == 0)
		t->spread = false;
}

/*
 * Poll the CQ for up to spin_ns (rings without DEFER_TASKRUN); true if there is work. One
 * loop polls every queue of the thread: their completions share the ring.
 *
 * Why poll: the kernel queues a request on the caller's CPU, where this thread is pinned.
 * A thread asleep in io_uring_enter leaves that CPU idle, and the scheduler then wakes the
 * caller, once answered, on whichever CPU is idle, so the caller and its thread chase each
 * other across CPUs, each hop a wake-up from idle. Why yield rather than pause: the caller
 * shares this CPU, and between its requests it must run at once, not when our time slice
 * ends (pausing made one request in ten wait out the whole spin).
 *
 * Why the window is fixed: at QD1 most polls find the next request at once and the few that
 * miss burn the whole window, yet shortening it does not save CPU per request: sleeping and
 * being woken costs the same. Quiet runs, memfs 4K QD1 reads: 50 us 56.7k IOPS at 14.5 us of
 * daemon CPU per read, 10 us 50.6k at 14.5, none 35.8k at 15.2; a window halved on each miss
 * and doubled on late catches 42.5k at 15.3 (docs/performance.md).
 */
static bool thread_spin(struct uring_thread *t)
{
	struct rf_queue_stats *stats;
	uint64_t start, end, now;
	bool hit = false;

	if (io_uring_sq_ready(&t->uq.ring)) {
		io_uring_submit(&t->uq.ring);
		rf_stat_inc(t->uq.stats.own.enters, 1);
	}
	start = rf_now_ns();
	end = start + t->spin_ns;
	now = start;
	do {
		if (io_uring_cq_ready(&t->uq.ring) ||
		    atomic_load_explicit(&t->uq.deferred, memory_order_relaxed)) {
			hit = true;
			break;
		}
		sched_yield();
		now = rf_now_ns();
	} while (now < end);
	stats = &t->kq[0]->stats->own;
	rf_stat_inc(stats->spins, 1);
	rf_stat_inc(stats->spin_hits, hit);
	rf_stat_inc(stats->spin_ns, now - start);
	return hit;
}

static void thread_wait(struct uring_thread *t)
{
	if (t->spin_ns && !atomic_load_explicit(&t->uq.set->draining, memory_order_relaxed) &&
	    thread_spin(t))
		return;
	rf_uq_wait(&t->uq);
}

/* A queue whose entries all died while the connection lives leaves a CPU unserved. */
static struct uring_kq *thread_dead_queue(const struct uring_thread *t)
{
	for (unsigned int k = 0; k < t->nkq; k++)
		if (t->kq[k]->live == 0)
			return t->kq[k];
	return NULL;
}

static unsigned int thread_held(const struct uring_thread *t)
{
	unsigned int held = t->io_inflight;

	for (unsigned int k = 0; k < t->nkq; k++)
		held += t->kq[k]->in_user;
	return held;
}

static bool thread_done(struct uring_thread *t)
{
	rf_session *se = t->uq.se;

	if (rf_uq_stopping(&t->uq) || t->uq.fatal || t->dead_queues)
		return true;
	/* On the session's thread: back to the session when it ends (it drains and stops). */
	if (t->on_caller && atomic_load_explicit(&se->exiting, memory_order_relaxed) &&
	    !atomic_load_explicit(&t->uq.set->draining, memory_order_relaxed))
		return true;
	/* Entries still held by handlers can only fail now: do not wait for them. */
	return t->conn_gone && t->in_kernel == 0 && t->io_inflight == 0;
}

/* One round: submit and wait, give back idle payload, reap, commit deferred replies. */
static void thread_round(struct uring_thread *t)
{
	t->round++;
	rf_uq_arm_wake(&t->uq, ud_pack(UD_WAKE, 0));
	if (t->devr)
		thread_arm_devread(t);
	thread_wait(t);
	thread_adapt(t, thread_reap(t));
	thread_commit_deferred(t);
	if (t->trim_due) {
		/* The kernel reads the replies still queued when they are submitted: after that
		 * no payload holds anything of ours. */
		if (io_uring_sq_ready(&t->uq.ring)) {
			io_uring_submit(&t->uq.ring);
			rf_stat_inc(t->uq.stats.own.enters, 1);
		}
		thread_trim(t);
	}
	if (t->on_caller)
		rf_session_poll_signals(t->uq.se);
	/* What it holds is only counted (a walk over its queues) while draining. */
	if (atomic_load_explicit(&t->uq.set->draining, memory_order_relaxed))
		rf_uq_check_drained(&t->uq, thread_held(t));
}

static void thread_loop(struct uring_thread *t)
{
	while (!thread_done(t))
		thread_round(t);
}

/* Why the thread's loop ended, if the session cannot go on without it; else NULL. */
static const char *thread_death(struct uring_thread *t)
{
	struct uring_kq *dead = thread_dead_queue(t);

	if (t->uq.fatal)
		return "its io_uring failed";
	if (dead && !t->conn_gone) {
		snprintf(t->uq.name, sizeof(t->uq.name), "io-uring queue %u", dead->qid);
		return "the kernel refused all its ring entries";
	}
	return NULL;
}

/* After the loop: settle what still uses the buffers, say how it ended. */
static void thread_finish(struct uring_thread *t)
{
	const char *why = thread_death(t);
	uint64_t lost = 0;

	/* Backend reads must not land in the buffers after they are freed: let them finish. */
	if (!rf_uq_settle(&t->uq, &t->io_inflight, URING_IO_WAIT_NS, thread_reap_uq)) {
		rf_log(RF_LOG_WARN, "ringfuse: %s: %u backend operations pending at exit",
		       t->uq.name, t->io_inflight);
		t->uq.leak = true;
	}
	if (t->devr)
		thread_devread_end(t);
	for (unsigned int k = 0; k < t->nkq; k++)
		lost += t->kq[k]->lost;
	if (lost)
		rf_log(RF_LOG_WARN, "ringfuse: %s: %llu replies were refused", t->uq.name,
		       (unsigned long long)lost);
	rf_uq_ended(&t->uq, why);
}

/* ---- setup (on the thread) ---- */

/* Run on the CPUs of its queues (those the process may use), when that is not all of them. */
static void thread_pin(struct uring_thread *t)
{
	const struct rf_uring_plan *p = &t->tp->plan;
	const struct rf_topology *topo = &t->tp->topo;
	unsigned int th = t->uq.idx, n = 0, nodes = 0;
	int node = p->thread[th].node;

	if (!t->uq.se->opts.uring_pin || t->on_caller)
		return;
	if (sched_getaffinity(0, t->setsize, t->anywhere) < 0)
		return;
	CPU_ZERO_S(t->setsize, t->home);
	for (unsigned int id = 0; id < p->nids && id < t->setsize * 8; id++) {
		if (rf_uring_plan_has_cpu(p, th, id) && CPU_ISSET_S(id, t->setsize, t->anywhere)) {
			CPU_SET_S(id, t->setsize, t->home);
			n++;
		}
	}
	if (n == 0 || CPU_EQUAL_S(t->setsize, t->home, t->anywhere))
		return; /* nowhere it may run, or everywhere already */
	/* Spread within its node when the machine has several: its memory is there. */
	for (unsigned int id = 0; id < topo->nids; id++)
		nodes = topo->cpu[id].possible && (unsigned int)topo->cpu[id].node + 1 > nodes
				? (unsigned int)topo->cpu[id].node + 1
				: nodes;
	if (node >= 0 && nodes > 1) {
		for (unsigned int id = 0; id < topo->nids && id < t->setsize * 8; id++)
			if (topo->cpu[id].node != node)
				CPU_CLR_S(id, t->setsize, t->anywhere);
	}
	/* Fails for offline CPUs or ones outside our cpuset: serve unpinned then. */
	t->pinned = sched_setaffinity(0, t->setsize, t->home) == 0;
}

void ent_init(struct uring_kq *kq, struct ring_ent *e, unsigned int i)
{
	struct uring_thread *t = kq->t;
	char *hdr = rf_entry_mem_hdr(&kq->mem, i);
	char *payload = rf_entry_mem_payload(&kq->mem, i);

	e->kq = kq;
	e->slot = (uint32_t)(e - t->ents);
	e->state = ENT_IDLE;
	e->hdr = (struct fuse_uring_req_header *)hdr;
	e->payload = payload;
	e->iov[0] = (struct iovec){hdr, RF_URING_HDR_STRIDE};
	e->iov[1] = (struct iovec){payload, t->tp->max_payload};
	e->req.se = t->uq.se;
	e->req.rops = &uring_reply_ops;
	e->req.chan = e;
	e->req.queue = kq->qid;
	e->req.stats = kq->stats;
	e->req.out = payload;
	e->req.out_cap = t->tp->max_payload;
}

/*
 * The entry array (every slot a queue may grow into; a slot's pages are touched only when its
 * entry is made) and each queue's buffer reservation, made here so that what is touched is
 * local to the thread's node.
 */
static int thread_alloc(struct uring_thread *t)
{
	struct uring_tp *tp = t->tp;
	void *mem;

	t->nents = (size_t)t->nkq * tp->depth_max;
	t->ents_size = rf_round_up(t->nents * sizeof(struct ring_ent), RF_PAGE_SIZE);
	mem = mmap(NULL, t->ents_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED) {
		t->ents = NULL;
		return -errno;
	}
	t->ents = mem;
	for (unsigned int k = 0; k < t->nkq; k++) {
		struct uring_kq *kq = t->kq[k];
		int ret;

		kq->ents = &t->ents[(size_t)k * tp->depth_max];
		ret = rf_entry_mem_reserve(&kq->mem, tp->depth_max, RF_URING_HDR_STRIDE,
					   tp->max_payload);
		if (ret)
			return ret;
	}
	return 0;
}

static int thread_ring_init(struct uring_thread *t)
{
	const unsigned int base = IORING_SETUP_SQE128;
	/*
	 * Spinning needs completions posted without our help, so no deferred task work then.
	 * DEFER_TASKRUN is opt-in (uring_defer_taskrun=1): measured on the benchmark it adds a
	 * wake-up round trip per request, because the kernel hands each request to the thread as
	 * task work (docs/performance.md).
	 */
	const bool defer = !t->spin_ns && t->uq.se->opts.uring_defer_taskrun;
	const unsigned int tries[] = {
		defer ? base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
				IORING_SETUP_COOP_TASKRUN
		      : base | IORING_SETUP_SINGLE_ISSUER,
		t->spin_ns ? base : base | IORING_SETUP_COOP_TASKRUN,
		base,
	};
	uint64_t entries = (uint64_t)t->nkq * t->tp->depth_max;
	unsigned int sq, cq;
	int ret;

	if (entries > t->tp->budget.entries_max)
		entries = t->tp->budget.entries_max;
	rf_uring_ring_size(entries, &sq, &cq);
	ret = rf_uq_ring_init(&t->uq, sq, cq, tries, sizeof(tries) / sizeof(tries[0]));
	if (ret)
		return ret;
	t->ring_flags = t->uq.ring.flags;
	/* A fixed file saves an fget/fput per command; the plain fd works as well. */
	t->fixed_fd = io_uring_register_files(&t->uq.ring, &t->uq.se->fd, 1) == 0;
	t->dev_fd = t->fixed_fd ? 0 : t->uq.se->fd;
	t->dev_sqe_flags = t->fixed_fd ? IOSQE_FIXED_FILE : 0;
	return 0;
}

static int thread_register_entries(struct uring_thread *t)
{
	int ret = rf_uq_register_reqs(&t->uq, &t->ents[0].req, t->nents, sizeof(struct ring_ent));

	if (ret)
		return ret;
	rf_uq_arm_wake(&t->uq, ud_pack(UD_WAKE, 0));
	for (unsigned int k = 0; k < t->nkq; k++) {
		ret = kq_make_entries(t->kq[k], t->tp->depth_min);
		if (ret)
			return ret;
	}
	ret = io_uring_submit(&t->uq.ring);
	rf_stat_inc(t->uq.stats.own.enters, 1);
	if (ret < 0)
		return ret;
	/* Refusals are posted during the submit; successes stay silent until a request. */
	thread_reap(t);
	for (unsigned int k = 0; k < t->nkq; k++) {
		struct uring_kq *kq = t->kq[k];

		if (kq->reg_errors == kq->depth)
			return kq->first_reg_err;
		if (kq->reg_errors)
			rf_log(RF_LOG_WARN,
			       "ringfuse: io-uring queue %u: %u of %u entries could not be "
			       "registered (%s)",
			       kq->qid, kq->reg_errors, kq->depth, strerror(-kq->first_reg_err));
	}
	return 0;
}

static int thread_setup(struct uring_thread *t)
{
	int ret;

	thread_pin(t);
	ret = thread_alloc(t);
	if (!ret)
		ret = thread_ring_init(t);
	if (!ret && t->tp->trim_ns) {
		/* Without the means to trim safely, entries keep their memory. */
		t->trimming = rf_trimmer_init(&t->trimmer, t->tp->max_payload) == 0;
		if (!t->trimming)
			rf_log_once(RF_LOG_WARN, "ringfuse: idle ring entries cannot give their "
						 "memory back here (no /proc/self/pagemap?)");
	}
	if (!ret && t->on_caller)
		ret = thread_devread_setup(t);
	if (!ret)
		ret = thread_register_entries(t);
	return ret;
}

static void *thread_main(void *arg)
{
	struct uring_thread *t = arg;
	char name[16];
	int err;

	tls_thread = t;
	snprintf(name, sizeof(name), "rf-uring-%u", t->uq.idx);
	pthread_setname_np(pthread_self(), name);
	err = thread_setup(t);
	rf_uq_report_setup(&t->uq, err);
	if (!err) {
		thread_loop(t);
		thread_finish(t);
	}
	tls_thread = NULL;
	return NULL;
}

/* ---- transport ops (session thread) ---- */

static void thread_drop(struct uring_thread *t);

static void thread_free(struct rf_uq *uq)
{
	struct uring_thread *t = uq_thread(uq);

	for (unsigned int k = 0; k < t->nkq; k++)
		rf_entry_mem_release(&t->kq[k]->mem);
	if (t->trimming)
		rf_trimmer_release(&t->trimmer);
	if (t->ents)
		munmap(t->ents, t->ents_size);
	thread_drop(t);
}

/* Its queues' counters stay readable by the session after the thread is gone. */
static void thread_retire_stats(struct rf_uq *uq)
{
	struct uring_thread *t = uq_thread(uq);

	for (unsigned int k = 0; k < t->nkq; k++)
		rf_session_retire_queue(uq->se, t->kq[k]->qid);
}

static void thread_drop(struct uring_thread *t)
{
	for (unsigned int k = 0; k < t->nkq; k++)
		free(t->kq[k]);
	CPU_FREE(t->home);
	CPU_FREE(t->anywhere);
	free(t->kq);
	free(t);
}

static struct uring_thread *thread_new(struct uring_tp *tp, unsigned int idx)
{
	const struct rf_uring_thread *plan = &tp->plan.thread[idx];
	struct uring_thread *t = aligned_alloc(64, rf_round_up(sizeof(*t), 64));
	unsigned int ncpu = tp->plan.nids > CPU_SETSIZE ? tp->plan.nids : CPU_SETSIZE;

	if (!t)
		return NULL;
	memset(t, 0, sizeof(*t));
	t->tp = tp;
	t->on_caller = tp->on_caller;
	t->spin_ns = (uint64_t)tp->set.se->opts.uring_spin_us * 1000;
	t->kq = calloc(plan->count, sizeof(*t->kq));
	t->home = CPU_ALLOC(ncpu);
	t->anywhere = CPU_ALLOC(ncpu);
	t->setsize = CPU_ALLOC_SIZE(ncpu);
	if (!t->kq || !t->home || !t->anywhere) {
		thread_drop(t);
		return NULL;
	}
	for (unsigned int k = 0; k < plan->count; k++) {
		struct uring_kq *kq = aligned_alloc(64, rf_round_up(sizeof(*kq), 64));

		if (!kq) {
			thread_drop(t);
			return NULL;
		}
		memset(kq, 0, sizeof(*kq));
		kq->t = t;
		kq->qid = tp->plan.queues[plan->first + k];
		/* The first queue's counters are the thread's: they count its system calls. */
		kq->stats = k ? &kq->own_stats : &t->uq.stats;
		kq->stats->own.thread = idx;
		t->kq[t->nkq++] = kq;
	}
	if (rf_uq_init(&t->uq, &tp->set, idx) < 0) {
		thread_drop(t);
		return NULL;
	}
	if (t->nkq > 1)
		snprintf(t->uq.name, sizeof(t->uq.name), "io-uring thread %u (queues %u-%u)", idx,
			 t->kq[0]->qid, t->kq[t->nkq - 1]->qid);
	else
		snprintf(t->uq.name, sizeof(t->uq.name), "io-uring queue %u", t->kq[0]->qid);
	return t;
}

static void tp_free(struct uring_tp *tp)
{
	rf_uq_finish(&tp->set);
	rf_uring_plan_free(&tp->plan);
	rf_topology_free(&tp->topo);
	free(tp);
}

/* Whether the kernel refused some queue's REGISTERs (so it fell back to /dev/fuse itself). */
static bool kernel_refused(const struct uring_tp *tp)
{
	for (unsigned int i = 0; i < tp->set.n; i++) {
		const struct uring_thread *t = uq_thread(tp->set.q[i]);

		for (unsigned int k = 0; t && k < t->nkq; k++)
			if (t->kq[k]->reg_errors)
				return true;
	}
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
	const struct uring_thread *t0 = uq_thread(tp->set.q[0]);
	unsigned int pinned = 0;
	char flags[96], trim[48] = "", bound[48] = "";
	rf_session *se = tp->set.se;

	for (unsigned int i = 0; i < tp->set.n; i++)
		pinned += uq_thread(tp->set.q[i])->pinned;
	flags_string(t0->ring_flags, flags, sizeof(flags));
	if (tp->trim_ns)
		snprintf(trim, sizeof(trim), ", idle payload given back after %u ms",
			 se->opts.uring_trim_ms);
	if (se->opts.uring_payload_max)
		snprintf(bound, sizeof(bound), ", at most %llu entries",
			 (unsigned long long)tp->budget.entries_max);
	rf_log(RF_LOG_INFO,
	       "ringfuse: io-uring transport: %u queues on %u thread%s%s, depth %u..%u%s, payload "
	       "%zu KiB%s, flags %s%s, %u pinned%s, spin %u us",
	       tp->nq, tp->set.n, tp->set.n == 1 ? "" : "s",
	       tp->on_caller ? " (the session's own: single-threaded)" : "", tp->depth_min,
	       tp->depth_max, bound, tp->max_payload / 1024, trim, flags,
	       t0->fixed_fd ? "|fixed-fd" : "", pinned,
	       pinned && se->opts.uring_spread ? " (spread under load)" : "",
	       se->opts.uring_spin_us);
}

/* The machine, the threads' plan, and what the queues may grow to; logs why it cannot. */
static int tp_plan(struct uring_tp *tp, rf_session *se)
{
	struct rf_uring_config c = {0};
	struct rf_mem_limits lim;
	unsigned int threads;
	char why[512];
	int ret;

	/* The kernel's count (fuse_uring_create(): num_possible_cpus()); it maps a caller on
	 * CPU c to queue c. Without a readable sysfs, a machine of that many plain CPUs. */
	if (rf_topology_read(NULL, &tp->topo) < 0 &&
	    rf_topology_synthetic(&tp->topo, rf_possible_cpus(), 1, 1) < 0)
		return -ENOMEM;
	tp->nq = tp->topo.npossible;
	if (se->opts.uring_queues && se->opts.uring_queues != tp->nq)
		rf_log(RF_LOG_WARN,
		       "ringfuse: the kernel needs one io-uring queue per possible "
		       "CPU; using %u",
		       tp->nq);
	if (tp->nq > RF_MAX_QUEUES) {
		rf_log(RF_LOG_ERR, "ringfuse: %u possible CPUs, io-uring supports at most %u",
		       tp->nq, RF_MAX_QUEUES);
		return -E2BIG;
	}
	/* One thread runs every callback with -s or uring_threads=1: the session's own. */
	threads = se->opts.uring_threads ? se->opts.uring_threads
					 : rf_uring_default_threads(&tp->topo);
	if (se->opts.single_thread)
		threads = 1;
	if (threads > tp->nq) {
		rf_log(RF_LOG_ERR,
		       "ringfuse: uring_threads=%u, but this machine has %u io-uring queues (one "
		       "per possible CPU): at most %u threads can serve them",
		       threads, tp->nq, tp->nq);
		return -EINVAL;
	}
	tp->on_caller = threads == 1;
	ret = rf_uring_plan_threads(&tp->topo, threads, &tp->plan);
	if (ret)
		return ret;
	tp->depth_max = se->opts.uring_depth ? se->opts.uring_depth : RF_URING_DEPTH_DEFAULT;
	tp->depth_min =
		se->opts.uring_depth_min ? se->opts.uring_depth_min : RF_URING_DEPTH_MIN_DEFAULT;
	if (tp->depth_min > tp->depth_max)
		tp->depth_min = tp->depth_max;
	tp->max_payload = rf_uring_payload_size(se->conn.max_write, se->conn.max_pages,
						(se->conn.want & RF_CAP_MAX_PAGES) != 0);
	c.depth_min = tp->depth_min;
	c.depth_max = tp->depth_max;
	c.payload = tp->max_payload;
	c.payload_limit = se->opts.uring_payload_max;
	ret = rf_uring_budget(&tp->plan, &c, &tp->budget, why, sizeof(why));
	if (ret) {
		rf_log(RF_LOG_ERR, "ringfuse: %s", why);
		return ret;
	}
	rf_mem_limits_read(&lim);
	ret = rf_uring_check_limits(&tp->budget, &lim, why, sizeof(why));
	if (ret < 0) {
		rf_log(RF_LOG_ERR, "ringfuse: %s", why);
		return ret;
	}
	if (ret > 0)
		rf_log(RF_LOG_WARN, "ringfuse: %s", why);
	tp->trim_ns = (uint64_t)se->opts.uring_trim_ms * 1000000ull;
	return 0;
}

static struct uring_tp *tp_new(rf_session *se, int *err)
{
	struct uring_tp *tp = calloc(1, sizeof(*tp));

	*err = -ENOMEM;
	if (!tp)
		return NULL;
	*err = tp_plan(tp, se);
	if (*err == 0)
		*err = rf_uq_set_init(&tp->set, se, "io-uring thread", tp->plan.nthreads,
				      thread_free);
	if (*err) {
		rf_uring_plan_free(&tp->plan);
		rf_topology_free(&tp->topo);
		free(tp);
		return NULL;
	}
	tp->set.retire_stats = thread_retire_stats;
	return tp;
}

static int start_threads(struct uring_tp *tp)
{
	for (unsigned int i = 0; i < tp->set.n; i++) {
		struct uring_thread *t = thread_new(tp, i);
		int ret;

		if (!t)
			return -ENOMEM;
		ret = rf_uq_start(&t->uq, thread_main);
		if (ret)
			return ret;
	}
	return rf_uq_wait_setup(&tp->set);
}

/* Single-threaded: the one thread is the session's own, set up here (it read INIT). */
static int start_on_caller(struct uring_tp *tp)
{
	struct uring_thread *t = thread_new(tp, 0);
	int ret;

	if (!t)
		return -ENOMEM;
	tls_thread = t;
	ret = thread_setup(t);
	if (ret) {
		rf_log(RF_LOG_ERR, "ringfuse: %s: setup failed: %s", t->uq.name, strerror(-ret));
		tls_thread = NULL;
	}
	return ret;
}

static void publish_stats(struct uring_tp *tp)
{
	rf_session *se = tp->set.se;

	for (unsigned int i = 0; i < tp->set.n; i++) {
		struct uring_thread *t = uq_thread(tp->set.q[i]);

		for (unsigned int k = 0; k < t->nkq; k++)
			rf_session_register_queue(se, t->kq[k]->qid, t->kq[k]->stats);
	}
	se->nthreads = tp->set.n;
}

static void uring_destroy(rf_session *se);

static int uring_start(rf_session *se)
{
	struct uring_tp *tp;
	int ret;

	tp = tp_new(se, &ret);
	if (!tp) {
		force_dev_fallback(se);
		return ret;
	}
	pthread_mutex_lock(&se->lock);
	se->tp_data = tp;
	pthread_mutex_unlock(&se->lock);
	ret = tp->on_caller ? start_on_caller(tp) : start_threads(tp);
	if (ret) {
		bool refused = kernel_refused(tp);

		rf_uq_stop(&tp->set);
		uring_destroy(se);
		if (!refused)
			force_dev_fallback(se);
		return ret;
	}
	publish_stats(tp);
	if (tp->on_caller) {
		atomic_store(&se->serve_wake, uq_thread(tp->set.q[0])->uq.efd);
		se->serve_here = true;
	}
	log_started(tp);
	return 0;
}

/* Single-threaded: serve on this thread until the session ends. */
static int uring_serve(rf_session *se)
{
	struct uring_tp *tp = se->tp_data;

	struct uring_thread *t;

	if (!tp || !tp->on_caller)
		return 0;
	t = uq_thread(tp->set.q[0]);
	thread_loop(t);
	/* A death ends the session at once, without a drain (the rest comes in destroy). */
	if (thread_death(t))
		rf_uq_ended(&t->uq, thread_death(t));
	return 0;
}

static void uring_drain(rf_session *se, uint64_t deadline_ns)
{
	struct uring_tp *tp = se->tp_data;
	struct uring_thread *t;

	if (!tp)
		return;
	if (!tp->on_caller) {
		rf_uq_drain(&tp->set, deadline_ns);
		return;
	}
	/* The one thread is this one: go on serving until nothing is owed, or the deadline. */
	t = uq_thread(tp->set.q[0]);
	atomic_store(&tp->set.draining, true);
	while (!t->uq.drained && rf_now_ns() < deadline_ns && !thread_done(t))
		thread_round(t);
	if (!t->uq.drained && thread_held(t))
		rf_log(RF_LOG_WARN,
		       "ringfuse: %s: requests still unanswered when the drain time ran out; "
		       "their callers get an error",
		       t->uq.name);
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
	if (tp->on_caller && tp->set.q[0] && tls_thread == uq_thread(tp->set.q[0])) {
		atomic_store(&se->serve_wake, -1);
		rf_uq_stop(&tp->set);
		thread_finish(tls_thread);
		tls_thread = NULL;
	}
	pthread_mutex_lock(&se->lock);
	se->tp_data = NULL;
	pthread_mutex_unlock(&se->lock);
	tp_free(tp);
}

/* What the queues' payload holds in memory right now (with se->lock held). */
static void uring_sample(rf_session *se, struct rf_stats *out)
{
	struct uring_tp *tp = se->tp_data;

	if (!tp)
		return;
	for (unsigned int i = 0; i < tp->set.n; i++) {
		struct uring_thread *t = tp->set.q[i] ? uq_thread(tp->set.q[i]) : NULL;

		for (unsigned int k = 0; t && k < t->nkq; k++) {
			uint64_t bytes = rf_entry_mem_resident(&t->kq[k]->mem);

			if (t->kq[k]->qid < RF_MAX_QUEUES)
				out->queue[t->kq[k]->qid].payload_resident = bytes;
			out->total.payload_resident += bytes;
		}
	}
}

const struct rf_transport rf_transport_uring = {
	.name = "uring",
	.start = uring_start,
	.drain = uring_drain,
	.stop = uring_stop,
	.destroy = uring_destroy,
	.serve = uring_serve,
	.sample = uring_sample,
};
