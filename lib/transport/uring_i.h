/*
 * The io-uring transport's own types, shared by its files: uring.c (the ring-entry protocol,
 * the threads' loop, setup and the transport operations) and uring_elastic.c (queues that
 * grow with load, idle payload given back, single-threaded serving of /dev/fuse in the ring).
 *
 * Three levels. The kernel has one queue per possible CPU (struct uring_kq, "queue qid"),
 * each with ring entries (struct ring_ent). A thread (struct uring_thread, on top of the
 * shared rf_uq: one io_uring, one owner) serves a group of queues: all their entries are
 * registered on its ring, and all their requests complete there. The transport (struct
 * uring_tp) holds the plan that groups queues onto threads and the budget they grow in.
 *
 * Fields marked "thread" are touched only by the thread that owns the queue or entry.
 */
#ifndef RF_TRANSPORT_URING_I_H
#define RF_TRANSPORT_URING_I_H

#include "ringfuse_i.h"
#include "uring_mem.h"
#include "uring_plan.h"
#include "uring_queue.h"

#include <assert.h>
#include <sched.h>

enum ent_state { ENT_IDLE, ENT_KERNEL, ENT_USER, ENT_RETRY, ENT_DEAD };

struct uring_kq;
struct uring_thread;

struct ring_ent {
	RF_REQ_ALIGNED rf_req req; /* handed to the dispatcher; req.chan points back here */
	struct uring_kq *kq;
	struct fuse_uring_req_header *hdr;
	char *payload;
	uint64_t commit_id; /* of the request the entry holds */
	struct iovec iov[FUSE_URING_IOV_SEGS];
	uint32_t slot; /* in its thread's entry array: what user_data names */
	uint8_t state; /* enum ent_state */
	bool reply;    /* the pending commit carries a reply (counted), not a drop */
	bool warm;     /* used since its payload was last given back */
};

/* One of the kernel's queues (thread). */
struct uring_kq {
	struct uring_thread *t;
	unsigned int qid;
	unsigned int depth;    /* entries made: registered, or refused since */
	struct ring_ent *ents; /* depth_max slots of the thread's array */
	struct rf_entry_mem mem;
	unsigned int live;	/* entries not DEAD */
	unsigned int in_kernel; /* entries in KERNEL state */
	unsigned int in_user;	/* entries in USER state */
	unsigned int reg_errors;
	int first_reg_err;
	uint64_t lost; /* entries whose commit the kernel refused */
	/* Growth: requests this queue took in the thread's current round, and how many of its
	 * entries were held by handlers when the round began. */
	uint32_t round;
	unsigned int round_reqs, round_held;
	bool grow_stopped;	 /* the budget or the system said no: stay at this depth */
	struct rf_qstats *stats; /* published as queue qid: its thread's for its first queue */
	_Alignas(64) struct rf_qstats own_stats;
};

struct uring_tp;

struct uring_thread {
	struct rf_uq uq; /* first: the shared queue life; uq.idx is the thread's index */
	struct uring_tp *tp;
	unsigned int nkq;
	struct uring_kq **kq;  /* its queues, ascending */
	struct ring_ent *ents; /* nents slots: depth_max per queue, made as queues grow */
	size_t nents, ents_size;
	uint64_t spin_ns; /* -o uring_spin_us */
	bool on_caller;	  /* serves on the session's serving thread (single-threaded) */

	/* Set up on the thread, read by start() once its setup is reported. */
	unsigned int ring_flags;
	bool pinned;
	bool fixed_fd;

	/* Thread. */
	bool spread;	       /* pinned thread temporarily allowed on more CPUs */
	unsigned int calm;     /* rounds of at most one request while spread */
	cpu_set_t *home;       /* the CPUs of its queues */
	cpu_set_t *anywhere;   /* where it may go when spread */
	size_t setsize;	       /* bytes of each set */
	int dev_fd;	       /* /dev/fuse: fixed-file index 0 or the plain fd */
	uint8_t dev_sqe_flags; /* IOSQE_FIXED_FILE or 0 */
	unsigned int io_inflight;
	unsigned int in_kernel;	  /* entries in KERNEL state, all queues */
	unsigned int dead_queues; /* queues with no live entry left */
	bool conn_gone;
	uint32_t round;
	bool timer_armed;
	struct __kernel_timespec retry_ts;
	uint64_t retry_delay_ns;
	uint64_t retry_since_ns;

	/* Thread: giving idle payload back (uring_elastic.c). */
	bool trimming; /* trimmer set up; uring_trim_ms > 0 */
	struct rf_trimmer trimmer;
	unsigned int warm; /* entries with warm set */
	bool trim_armed, trim_due;
	struct __kernel_timespec trim_ts;

	/* Thread: /dev/fuse read in this ring when serving single-threaded (uring_elastic.c). */
	struct rf_dev_reader *devr;
	rf_req *dev_slot;	   /* the slot the read in flight fills */
	unsigned int dev_inflight; /* 1 while a read or its cancel is in the kernel */
	bool dev_waiting;	   /* a pause before the next read is armed */
	bool dev_leaked;	   /* a handler still owes a reply of a /dev/fuse request */
	struct __kernel_timespec dev_ts;
};

struct uring_tp {
	struct rf_uq_set set; /* the threads */
	unsigned int nq;
	struct rf_uring_plan plan;
	struct rf_uring_budget budget;
	unsigned int depth_min, depth_max;
	size_t max_payload;
	uint64_t trim_ns;	       /* 0: entries keep their payload */
	_Atomic uint64_t entries_made; /* all queues, against budget.entries_max */
	bool on_caller;
	struct rf_topology topo;
};

/* ---- user_data: what an SQE was, and for which entry ---- */

enum ud_kind {
	UD_REGISTER = 1,
	UD_COMMIT,
	UD_WAKE,
	UD_TIMER, /* REGISTER retry back-off */
	UD_IO,
	UD_NOP,
	UD_TRIM,     /* the trim timer */
	UD_DEVREAD,  /* the /dev/fuse read of single-threaded serving */
	UD_DEVPAUSE, /* the pause before the next /dev/fuse read */
	UD_CANCEL,
};

#define UD_KIND_SHIFT 56

static inline uint64_t ud_pack(enum ud_kind kind, uint32_t slot)
{
	assert(kind >= UD_REGISTER && kind <= UD_CANCEL);
	return (uint64_t)kind << UD_KIND_SHIFT | slot;
}

static inline enum ud_kind ud_kind(uint64_t ud)
{
	return (enum ud_kind)(ud >> UD_KIND_SHIFT);
}

static inline uint32_t ud_slot(uint64_t ud)
{
	assert((ud & ((1ull << UD_KIND_SHIFT) - 1)) <= UINT32_MAX);
	return (uint32_t)ud;
}

/* ---- uring.c, for uring_elastic.c ---- */
void ent_init(struct uring_kq *kq, struct ring_ent *e, unsigned int i);
bool ent_queue_cmd(struct uring_thread *t, struct ring_ent *e, uint32_t cmd_op);
void reg_failed(struct uring_kq *kq, struct ring_ent *e, int err);
/* Reap every completion of the thread's ring (for rf_uq_settle()). */
void thread_reap_uq(struct rf_uq *uq);

/* ---- uring_elastic.c ---- */
/* Register more entries: all were busy. */
void kq_grow(struct uring_kq *kq);
/* A request just arrived in one of kq's entries (in_user counts it): grow the queue when all
 * its live entries have held a request during this round of its thread. */
static inline void kq_note_busy(struct uring_kq *kq)
{
	if (kq->round != kq->t->round) {
		kq->round = kq->t->round;
		kq->round_reqs = 0;
		kq->round_held = kq->in_user - 1; /* held from before; this request is counted */
	}
	if (++kq->round_reqs + kq->round_held >= kq->live)
		kq_grow(kq);
}
/* Entries [kq->depth, want): memory, then REGISTER. 0, or -errno when none could be made. */
int kq_make_entries(struct uring_kq *kq, unsigned int want);
void thread_arm_trim(struct uring_thread *t);
/* e got a request: it is a trim candidate once it idles. */
static inline void ent_mark_warm(struct uring_thread *t, struct ring_ent *e)
{
	if (__builtin_expect(e->warm, 1))
		return;
	e->warm = true;
	t->warm++;
	if (t->trimming && !t->trim_armed)
		thread_arm_trim(t);
}
/* The trim timer fired: give back the payload of entries idle for uring_trim_ms. Runs with
 * nothing queued in the SQ (the kernel has read every reply from the payloads). */
void thread_trim(struct uring_thread *t);
/* Single-threaded serving: keep a /dev/fuse read armed; handle its completions. */
int thread_devread_setup(struct uring_thread *t);
void thread_arm_devread(struct uring_thread *t);
void thread_devread_done(struct uring_thread *t, enum ud_kind kind, int res);
/* At the end: cancel the read, wait for it, drain the reader. */
void thread_devread_end(struct uring_thread *t);

#endif /* RF_TRANSPORT_URING_I_H */
