/*
 * Sizing of the io-uring transport, as pure functions of the machine (topology.h) and the
 * options, so that the transport, ringfuse-probe --plan and the tests all use the same ones:
 *
 *   threads  which thread serves which of the kernel's queues (one per possible CPU), and on
 *            which CPUs each thread runs (uring_plan.c)
 *   depth    how many ring entries a queue registers at start and may grow to (uring_size.c)
 *   memory   payload memory registered at start, its ceiling, the address space reserved,
 *            the kernel memory of the rings, and whether the process limits allow them
 *
 * Queue q is the kernel's queue for CPU id q; CPUs whose id is past the queue count (a
 * possible mask with holes) are routed by the kernel to queue 0.
 */
#ifndef RF_URING_PLAN_H
#define RF_URING_PLAN_H

#include "topology.h"

#include <stddef.h>
#include <stdint.h>

/* Entries per queue at most (uring_depth), by default, and at start (uring_depth_min). */
#define RF_URING_DEPTH_LIMIT	   1024
#define RF_URING_DEPTH_DEFAULT	   16
#define RF_URING_DEPTH_MIN_DEFAULT 2
/* An entry idle this long gives its payload memory back (uring_trim_ms). */
#define RF_URING_TRIM_MS_DEFAULT 1000
/* Header buffer per entry: struct fuse_uring_req_header (288 bytes), cache-line multiple. */
#define RF_URING_HDR_STRIDE 512
/* SQ slots of a ring beyond one per entry: wake-up read, timers, spares. */
#define RF_URING_EXTRA_SQES 8
/* The kernel's largest SQ (IORING_MAX_ENTRIES) and CQ (IORING_MAX_CQ_ENTRIES). */
#define RF_URING_MAX_SQ 32768u
#define RF_URING_MAX_CQ 65536u

/* ---- threads ---- */

struct rf_uring_thread {
	unsigned int first, count; /* its queues: plan->queues[first .. first + count) */
	int node;		   /* NUMA node of its queues' CPUs; -1 if several or none */
	unsigned int ncpus;	   /* CPUs in its set */
};

struct rf_uring_plan {
	unsigned int nqueues, nthreads;
	unsigned int nids;	 /* CPU ids covered by the sets */
	unsigned int *queues;	 /* queue ids grouped by thread, ascending within a thread */
	unsigned int *thread_of; /* [nqueues]: the thread serving each queue */
	struct rf_uring_thread *thread;
	unsigned int words; /* 64-bit words per CPU set */
	uint64_t *cpus;	    /* nthreads sets of words words: where each thread runs */
};

/*
 * Group the topology's queues onto nthreads threads (1..t->npossible): the queues of one
 * NUMA node share threads before two nodes share one, whole cores (SMT siblings) before a
 * core is split, neighbouring cores together, groups as even as the machine allows. With
 * one thread per queue, thread i serves queue i. Each thread's CPU set is the CPUs whose
 * requests land on its queues. 0, -EINVAL or -ENOMEM.
 */
int rf_uring_plan_threads(const struct rf_topology *t, unsigned int nthreads,
			  struct rf_uring_plan *p);
void rf_uring_plan_free(struct rf_uring_plan *p);

static inline int rf_uring_plan_has_cpu(const struct rf_uring_plan *p, unsigned int thread,
					unsigned int cpu)
{
	return cpu < p->nids &&
	       (p->cpus[(size_t)thread * p->words + cpu / 64] >> (cpu % 64) & 1) != 0;
}

/* The CPU list ("0-3,8") of a thread's set into buf; returns buf. */
char *rf_uring_plan_cpulist(const struct rf_uring_plan *p, unsigned int thread, char *buf,
			    size_t len);

/* Threads when uring_threads is not given: one per queue. */
unsigned int rf_uring_default_threads(const struct rf_topology *t);

/* One thread per cpus_per_thread CPUs of each node, at least one per node (for projections
 * of smaller thread counts). */
unsigned int rf_uring_threads_per_cpus(const struct rf_topology *t, unsigned int cpus_per_thread);

/* ---- depth and memory ---- */

/* Payload bytes of an entry for a connection: what fuse_uring_create() sizes the ring by. */
size_t rf_uring_payload_size(uint32_t max_write, uint32_t max_pages, int max_pages_negotiated);

/* The depth a queue grows to from depth when all its entries are busy (never above max). */
unsigned int rf_uring_depth_grow(unsigned int depth, unsigned int max);

/* What the options ask for, defaults applied. */
struct rf_uring_config {
	unsigned int depth_min, depth_max; /* entries per queue at start, at most */
	size_t payload;			   /* bytes per entry (rf_uring_payload_size) */
	uint64_t payload_limit;		   /* bound on registered payload per mount; 0: none */
};

/* What a plan and a config come to. */
struct rf_uring_budget {
	unsigned int depth_start;    /* entries each queue registers at start */
	unsigned int depth_max;	     /* entries a queue may grow to */
	uint64_t entries_start;	     /* all queues, at start */
	uint64_t entries_max;	     /* all queues, the ceiling (payload_limit included) */
	uint64_t payload_start;	     /* payload bytes registered at start */
	uint64_t payload_max;	     /* payload bytes registered at most */
	uint64_t reserve;	     /* address space reserved for entries (headers and payload) */
	uint64_t ring_kernel;	     /* kernel memory of all rings: RLIMIT_MEMLOCK's charge */
	unsigned int sq_max;	     /* the largest ring's SQ size */
	unsigned int max_background; /* the INIT reply's default for it */
};

/* SQ and CQ sizes of the ring of a thread whose queues may hold entries in all. */
void rf_uring_ring_size(uint64_t entries, unsigned int *sq, unsigned int *cq);
/* Kernel memory of one ring (SQE128), charged to the user's locked memory unless the
 * process has CAP_IPC_LOCK: as the kernel accounts it (measured on 6.18). */
uint64_t rf_uring_ring_bytes(unsigned int sq, unsigned int cq);
/* Default max_background: queues x their largest depth, at least 64, at most 65535. */
unsigned int rf_uring_max_background(unsigned int nqueues, unsigned int depth_max);

/* Size plan with c. -EINVAL with a sentence in why when the config cannot work (the bound
 * is below what the queues need to start). */
int rf_uring_budget(const struct rf_uring_plan *plan, const struct rf_uring_config *c,
		    struct rf_uring_budget *b, char *why, size_t whylen);

/* The limits of this process and machine that the transport's memory must fit. */
struct rf_mem_limits {
	uint64_t memlock;     /* RLIMIT_MEMLOCK soft limit, bytes; UINT64_MAX: unlimited */
	int ipc_lock;	      /* the process has CAP_IPC_LOCK: rings are not charged */
	uint64_t as_free;     /* RLIMIT_AS minus the address space in use; UINT64_MAX: none */
	int overcommit;	      /* vm.overcommit_memory: 2 means commit is counted */
	uint64_t commit_free; /* CommitLimit - Committed_AS (bytes), when overcommit == 2 */
};
/* The limits of the calling process; what cannot be read is left unlimited. */
void rf_mem_limits_read(struct rf_mem_limits *l);
/*
 * Check b against l: 0 when it fits; -ENOMEM and a sentence in why saying what is needed and
 * how to get it when start-up would fail; 1 and a sentence when only growth would be cut
 * short (the transport starts and says so).
 */
int rf_uring_check_limits(const struct rf_uring_budget *b, const struct rf_mem_limits *l, char *why,
			  size_t whylen);

/*
 * Cores spent polling, summed over threads, when every CPU issues a request every
 * interval_us at random times and a thread polls spin_us after each request it serves: a
 * thread polls whenever any of its CPUs had a request in the last spin_us.
 */
double rf_uring_poll_cores(const struct rf_uring_plan *p, unsigned int spin_us,
			   unsigned int interval_us);

/* "1.5 GiB", "512 KiB": sizes as the messages and the plan print them. Returns buf. */
char *rf_uring_fmt_bytes(uint64_t n, char *buf, size_t len);

#endif /* RF_URING_PLAN_H */
