/*
 * How deep the io-uring queues are and what memory they take: entries at start and at most,
 * payload registered, address space reserved, the kernel memory of the rings, and whether
 * the process's limits allow all that. Pure functions of the plan (uring_plan.c) and the
 * options, shared by the transport, ringfuse-probe --plan and the tests; see uring_plan.h.
 *
 * Entries can be added to a queue at any time (REGISTER) but never taken back (6.18), so
 * depth only grows; memory follows use anyway because an idle entry's payload pages are
 * given back to the system and fault in again when the kernel next copies a request in.
 */
#include "uring_plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define PAGE 4096u
/* Bytes of the kernel's struct io_rings ahead of the SQ index array and the CQEs. */
#define RINGS_HEADER	 320u
#define CAP_IPC_LOCK_BIT 14

static uint64_t pages_of(uint64_t bytes)
{
	return (bytes + PAGE - 1) / PAGE;
}

static unsigned int pow2_at_least(uint64_t n, unsigned int cap)
{
	unsigned int p = 1;

	while (p < n && p < cap)
		p *= 2;
	return p;
}

size_t rf_uring_payload_size(uint32_t max_write, uint32_t max_pages, int max_pages_negotiated)
{
	/* Without FUSE_MAX_PAGES the kernel's requests are at most FUSE_DEFAULT_MAX_PAGES_PER_REQ
	 * (32) pages; the ring's payload is the largest of 8 KiB, max_write and max_pages. */
	uint64_t pages = max_pages, sz = 8192;

	if (!max_pages_negotiated && pages < 32)
		pages = 32;
	if (max_write > sz)
		sz = max_write;
	if (pages * PAGE > sz)
		sz = pages * PAGE;
	return (size_t)(pages_of(sz) * PAGE);
}

unsigned int rf_uring_depth_grow(unsigned int depth, unsigned int max)
{
	/* Doubling reaches a QD32 load's depth in a few rounds; a queue ends at most twice as
	 * deep as its peak load needed. */
	uint64_t next = depth ? (uint64_t)depth * 2 : 1;

	return next < max ? (unsigned int)next : max;
}

void rf_uring_ring_size(uint64_t entries, unsigned int *sq, unsigned int *cq)
{
	uint64_t want = entries + RF_URING_EXTRA_SQES;
	unsigned int c;

	/* A full SQ is submitted and refilled, so the SQ may be smaller than the entries; the
	 * CQ holds a completion of every entry at once, so nothing waits in the overflow list. */
	*sq = pow2_at_least(want, RF_URING_MAX_SQ);
	c = pow2_at_least(want, RF_URING_MAX_CQ);
	*cq = c > 2 * *sq ? c : 2 * *sq;
	if (*cq > RF_URING_MAX_CQ)
		*cq = RF_URING_MAX_CQ;
}

uint64_t rf_uring_ring_bytes(unsigned int sq, unsigned int cq)
{
	/* 128-byte SQEs in their own pages; then the rings: header, SQ index array, CQEs. */
	return (pages_of((uint64_t)sq * 128) +
		pages_of(RINGS_HEADER + (uint64_t)sq * 4 + (uint64_t)cq * 16)) *
	       PAGE;
}

unsigned int rf_uring_max_background(unsigned int nqueues, unsigned int depth_max)
{
	/* Async requests are capped by max_background on top of the ring depth: the two
	 * multiply, so size it from queues x depth rather than the kernel's 12. */
	uint64_t bg = (uint64_t)nqueues * depth_max;

	if (bg < 64)
		bg = 64;
	return bg > 65535 ? 65535 : (unsigned int)bg;
}

static char *fmt_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
	double v = (double)n;
	unsigned int u = 0;

	while (v >= 1024 && u + 1 < sizeof(unit) / sizeof(unit[0])) {
		v /= 1024;
		u++;
	}
	if (u == 0 || v >= 100 || v == (double)(uint64_t)v)
		snprintf(buf, len, "%.0f %s", v, unit[u]);
	else
		snprintf(buf, len, "%.1f %s", v, unit[u]);
	return buf;
}

int rf_uring_budget(const struct rf_uring_plan *plan, const struct rf_uring_config *c,
		    struct rf_uring_budget *b, char *why, size_t whylen)
{
	uint64_t nq = plan->nqueues, per_queue;
	char a[32], d[32];

	memset(b, 0, sizeof(*b));
	if (whylen)
		why[0] = '\0';
	if (!c->depth_max || !c->payload || !nq)
		return -EINVAL;
	b->depth_max = c->depth_max;
	b->depth_start = c->depth_min && c->depth_min < c->depth_max ? c->depth_min : c->depth_max;
	b->entries_start = nq * b->depth_start;
	b->payload_start = b->entries_start * c->payload;
	if (c->payload_limit && b->payload_start > c->payload_limit) {
		snprintf(why, whylen,
			 "uring_payload_max=%s is below the %s that %llu queues of %u entries of "
			 "%zu KiB need to start (raise it, or lower uring_depth_min or max_write)",
			 fmt_bytes(c->payload_limit, a, sizeof(a)),
			 fmt_bytes(b->payload_start, d, sizeof(d)), (unsigned long long)nq,
			 b->depth_start, c->payload / 1024);
		return -EINVAL;
	}
	b->entries_max = nq * b->depth_max;
	if (c->payload_limit && b->entries_max * c->payload > c->payload_limit)
		b->entries_max = c->payload_limit / c->payload;
	b->payload_max = b->entries_max * c->payload;
	/* Every queue reserves room for its deepest: which ones will grow is not known. */
	per_queue = pages_of((uint64_t)b->depth_max * RF_URING_HDR_STRIDE) * PAGE +
		    (uint64_t)b->depth_max * c->payload;
	b->reserve = nq * per_queue;
	for (unsigned int t = 0; t < plan->nthreads; t++) {
		uint64_t entries = (uint64_t)plan->thread[t].count * b->depth_max;
		unsigned int sq, cq;

		if (entries > b->entries_max)
			entries = b->entries_max;
		rf_uring_ring_size(entries, &sq, &cq);
		b->ring_kernel += rf_uring_ring_bytes(sq, cq);
		if (sq > b->sq_max)
			b->sq_max = sq;
	}
	b->max_background = rf_uring_max_background(plan->nqueues, b->depth_max);
	return 0;
}

/* "Name:  value kB" of a /proc file, in bytes; -1 if absent. */
static int64_t proc_kb(const char *path, const char *name)
{
	size_t nlen = strlen(name);
	char line[256];
	int64_t v = -1;
	FILE *f = fopen(path, "re");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, name, nlen) && line[nlen] == ':') {
			v = strtoll(line + nlen + 1, NULL, 10) * 1024;
			break;
		}
	}
	fclose(f);
	return v;
}

static bool has_ipc_lock(void)
{
	char line[256];
	bool yes = false;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "CapEff:", 7)) {
			yes = (strtoull(line + 7, NULL, 16) >> CAP_IPC_LOCK_BIT) & 1;
			break;
		}
	}
	fclose(f);
	return yes;
}

void rf_mem_limits_read(struct rf_mem_limits *l)
{
	struct rlimit r;
	int64_t vm, limit, committed;
	FILE *f;

	memset(l, 0, sizeof(*l));
	l->memlock = l->as_free = l->commit_free = UINT64_MAX;
	if (getrlimit(RLIMIT_MEMLOCK, &r) == 0 && r.rlim_cur != RLIM_INFINITY)
		l->memlock = r.rlim_cur;
	l->ipc_lock = has_ipc_lock();
	if (getrlimit(RLIMIT_AS, &r) == 0 && r.rlim_cur != RLIM_INFINITY) {
		vm = proc_kb("/proc/self/status", "VmSize");
		l->as_free = vm >= 0 && (uint64_t)vm < r.rlim_cur ? r.rlim_cur - (uint64_t)vm : 0;
	}
	f = fopen("/proc/sys/vm/overcommit_memory", "re");
	if (f) {
		if (fscanf(f, "%d", &l->overcommit) != 1)
			l->overcommit = 0;
		fclose(f);
	}
	limit = proc_kb("/proc/meminfo", "CommitLimit");
	committed = proc_kb("/proc/meminfo", "Committed_AS");
	if (l->overcommit == 2 && limit >= 0 && committed >= 0)
		l->commit_free = limit > committed ? (uint64_t)(limit - committed) : 0;
}

int rf_uring_check_limits(const struct rf_uring_budget *b, const struct rf_mem_limits *l, char *why,
			  size_t whylen)
{
	char need[32], have[32];

	if (whylen)
		why[0] = '\0';
	if (!l->ipc_lock && l->memlock != UINT64_MAX && b->ring_kernel > l->memlock) {
		snprintf(why, whylen,
			 "the io_uring rings need %s of locked memory, and RLIMIT_MEMLOCK allows "
			 "%s (shared by all of this user's io_urings): raise it (ulimit -l, "
			 "LimitMEMLOCK= for a service), run with CAP_IPC_LOCK, or use fewer "
			 "uring_threads or a smaller uring_depth",
			 fmt_bytes(b->ring_kernel, need, sizeof(need)),
			 fmt_bytes(l->memlock, have, sizeof(have)));
		return -ENOMEM;
	}
	if (l->as_free != UINT64_MAX && b->reserve + b->ring_kernel > l->as_free) {
		snprintf(why, whylen,
			 "the io-uring entries need %s of address space, and RLIMIT_AS leaves %s: "
			 "raise it (ulimit -v), or lower uring_depth or max_write",
			 fmt_bytes(b->reserve + b->ring_kernel, need, sizeof(need)),
			 fmt_bytes(l->as_free, have, sizeof(have)));
		return -ENOMEM;
	}
	if (l->overcommit == 2 && b->payload_start > l->commit_free) {
		snprintf(why, whylen,
			 "the io-uring entries need %s of committed memory at start, and the "
			 "commit limit leaves %s (vm.overcommit_memory=2): lower uring_depth_min "
			 "or max_write, or raise vm.overcommit_ratio",
			 fmt_bytes(b->payload_start, need, sizeof(need)),
			 fmt_bytes(l->commit_free, have, sizeof(have)));
		return -ENOMEM;
	}
	if (l->overcommit == 2 && b->payload_max > l->commit_free) {
		snprintf(why, whylen,
			 "queues may stop growing before uring_depth: their %s of payload exceed "
			 "the %s the commit limit leaves (vm.overcommit_memory=2; "
			 "uring_payload_max bounds it)",
			 fmt_bytes(b->payload_max, need, sizeof(need)),
			 fmt_bytes(l->commit_free, have, sizeof(have)));
		return 1;
	}
	return 0;
}

double rf_uring_poll_cores(const struct rf_uring_plan *p, unsigned int spin_us,
			   unsigned int interval_us)
{
	double quiet = interval_us > spin_us ? 1.0 - (double)spin_us / interval_us : 0.0;
	double cores = 0;

	if (!spin_us)
		return 0;
	for (unsigned int t = 0; t < p->nthreads; t++) {
		double all_quiet = 1.0;

		for (unsigned int c = 0; c < p->thread[t].ncpus; c++)
			all_quiet *= quiet;
		cores += p->thread[t].ncpus ? 1.0 - all_quiet : 0.0;
	}
	return cores;
}

char *rf_uring_fmt_bytes(uint64_t n, char *buf, size_t len)
{
	return fmt_bytes(n, buf, len);
}
