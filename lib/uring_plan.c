/*
 * Which io-uring thread serves which of the kernel's queues, and where each thread runs.
 *
 * The kernel has one queue per possible CPU and hands a request to the queue of the CPU its
 * caller runs on; the thread holding a queue's entries copies the request in and serves it.
 * A thread serving several queues should sit close to the CPUs that feed them: same NUMA
 * node (its memory is allocated there), ideally the SMT siblings or neighbouring cores. So
 * threads are shared out to nodes first, in proportion to their queues, then within a node
 * to runs of whole cores, and each thread is pinned to the CPUs of its queues.
 *
 * A queue id without a possible CPU of that id (a possible mask with holes) receives no
 * requests, but the kernel still wants an entry on it: such queues go to the least loaded
 * threads, or to threads of their own when there are more threads than real queues.
 */
#include "uring_plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct qkey {
	unsigned int q;
	int node, package;
	unsigned int core;
};

static int cmp_qkey(const void *a, const void *b)
{
	const struct qkey *x = a, *y = b;

	if (x->node != y->node)
		return x->node < y->node ? -1 : 1;
	if (x->package != y->package)
		return x->package < y->package ? -1 : 1;
	if (x->core != y->core)
		return x->core < y->core ? -1 : 1;
	return x->q < y->q ? -1 : x->q > y->q;
}

/*
 * Cut n units of weights w into k contiguous parts (1 <= k <= n) as even as possible: each
 * part takes units while that brings it closer to its share of what is left. cut[i] is the
 * first unit of part i, cut[k] = n.
 */
static void partition(const unsigned int *w, unsigned int n, unsigned int k, unsigned int *cut)
{
	uint64_t left = 0;
	unsigned int u = 0;

	for (unsigned int i = 0; i < n; i++)
		left += w[i];
	for (unsigned int part = 0; part < k; part++) {
		uint64_t parts_left = k - part, taken;

		cut[part] = u;
		taken = w[u++];
		while (n - u > parts_left - 1 && (2 * taken + w[u]) * parts_left <= 2 * left)
			taken += w[u++];
		left -= taken;
	}
	cut[k] = n;
}

/*
 * Share k threads among n groups of size[i] queues (n <= k <= their sum): one each, then
 * every further one to the group with the most queues per thread that can still take one.
 */
static void share(const unsigned int *size, unsigned int n, unsigned int k, unsigned int *count)
{
	for (unsigned int i = 0; i < n; i++)
		count[i] = 1;
	for (unsigned int extra = k - n; extra > 0; extra--) {
		unsigned int best = n;

		for (unsigned int i = 0; i < n; i++) {
			if (count[i] >= size[i])
				continue;
			if (best == n ||
			    (uint64_t)size[i] * count[best] > (uint64_t)size[best] * count[i])
				best = i;
		}
		if (best == n)
			return;
		count[best]++;
	}
}

/* Working state of one planning run. */
struct planner {
	const struct rf_topology *t;
	struct qkey *real; /* queues with a CPU of their id, in node/package/core order */
	unsigned int nreal;
	unsigned int *group;   /* [nqueues]: group of each queue */
	unsigned int ngroups;  /* groups made so far */
	unsigned int *w, *cut; /* scratch, nqueues + 1 each */
	bool failed;	       /* out of memory */
};

/* Split real[from, to) (one node) into k groups along cores, or along queues when the node
 * has fewer cores than threads. */
static bool same_core(const struct qkey *a, const struct qkey *b)
{
	return a->core == b->core && a->package == b->package && a->node == b->node;
}

static bool same_node(const struct qkey *a, const struct qkey *b)
{
	return a->node == b->node;
}

static bool same_queue(const struct qkey *a, const struct qkey *b)
{
	return a->q == b->q;
}

/*
 * Make k groups of real[from, to): units are the runs that same() keeps together (nodes,
 * then cores, then single queues). With at most as many groups as units, whole units are
 * cut into contiguous, even groups; with more, every unit gets its share of the groups and is
 * split one level down.
 */
static void split_run(struct planner *pl, unsigned int from, unsigned int to, unsigned int k,
		      bool (*same)(const struct qkey *, const struct qkey *))
{
	unsigned int nunits = 0, *start, *size, *count;

	start = calloc((size_t)(to - from) + 1, sizeof(*start));
	size = calloc((size_t)(to - from) + 1, sizeof(*size));
	count = calloc((size_t)(to - from) + 1, sizeof(*count));
	if (!start || !size || !count) {
		pl->failed = true;
		goto out;
	}
	/* Unit u is real[start[u] .. start[u] + size[u]): one node, one core, or one queue. */
	for (unsigned int i = from; i < to; i++) {
		if (i == from || !same(&pl->real[i], &pl->real[i - 1])) {
			start[nunits] = i;
			size[nunits++] = 0;
		}
		size[nunits - 1]++;
	}
	start[nunits] = to;
	if (k <= nunits) {
		unsigned int *cut = count; /* k + 1 <= nunits + 1 entries */

		partition(size, nunits, k, cut);
		for (unsigned int g = 0; g < k; g++) {
			for (unsigned int i = start[cut[g]]; i < start[cut[g + 1]]; i++)
				pl->group[pl->real[i].q] = pl->ngroups;
			pl->ngroups++;
		}
		goto out;
	}
	/* More threads than units: each unit gets its share and is split further. */
	share(size, nunits, k, count);
	for (unsigned int u = 0; u < nunits; u++)
		split_run(pl, start[u], start[u + 1], count[u],
			  same == same_node ? same_core : same_queue);
out:
	free(start);
	free(size);
	free(count);
}

/* Queues without a CPU of their id: groups of their own if threads are left, else the
 * smallest groups. */
static void group_phantoms(struct planner *pl, const unsigned int *phantom, unsigned int n,
			   unsigned int threads_left, unsigned int *size)
{
	if (threads_left) {
		for (unsigned int i = 0; i < n; i++)
			pl->w[i] = 1;
		partition(pl->w, n, threads_left, pl->cut);
		for (unsigned int g = 0; g < threads_left; g++) {
			for (unsigned int i = pl->cut[g]; i < pl->cut[g + 1]; i++)
				pl->group[phantom[i]] = pl->ngroups;
			pl->ngroups++;
		}
		return;
	}
	for (unsigned int i = 0; i < n; i++) {
		unsigned int best = 0;

		for (unsigned int g = 1; g < pl->ngroups; g++)
			if (size[g] < size[best])
				best = g;
		pl->group[phantom[i]] = best;
		size[best]++;
	}
}

static void set_cpu(struct rf_uring_plan *p, unsigned int thread, unsigned int cpu)
{
	p->cpus[(size_t)thread * p->words + cpu / 64] |= 1ull << (cpu % 64);
}

/* Number the groups by their lowest queue, lay the queues out by thread, fill the sets. */
static void finish(struct rf_uring_plan *p, const struct planner *pl)
{
	const struct rf_topology *t = pl->t;
	unsigned int *rank = pl->w, *lowest = pl->cut; /* scratch of nqueues + 1 */

	for (unsigned int g = 0; g < pl->ngroups; g++)
		lowest[g] = p->nqueues;
	for (unsigned int q = 0; q < p->nqueues; q++)
		if (q < lowest[pl->group[q]])
			lowest[pl->group[q]] = q;
	/* Ascending queue ids meet each group's lowest queue in thread order. */
	for (unsigned int q = 0, next = 0; q < p->nqueues; q++)
		if (lowest[pl->group[q]] == q)
			rank[pl->group[q]] = next++;
	for (unsigned int q = 0; q < p->nqueues; q++) {
		unsigned int th = rank[pl->group[q]];

		p->thread_of[q] = th;
		p->thread[th].count++;
	}
	for (unsigned int th = 1; th < p->nthreads; th++)
		p->thread[th].first = p->thread[th - 1].first + p->thread[th - 1].count;
	for (unsigned int th = 0; th < p->nthreads; th++) {
		p->thread[th].node = -2; /* none seen yet */
		p->thread[th].count = 0;
	}
	for (unsigned int q = 0; q < p->nqueues; q++) {
		struct rf_uring_thread *th = &p->thread[p->thread_of[q]];

		p->queues[th->first + th->count++] = q;
		if (q >= t->nids || !t->cpu[q].possible)
			continue;
		set_cpu(p, p->thread_of[q], q);
		th->node = th->node == -2 || th->node == t->cpu[q].node ? t->cpu[q].node : -1;
	}
	/* The kernel sends the requests of CPUs past the queue count to queue 0. */
	for (unsigned int id = p->nqueues; id < t->nids; id++)
		if (t->cpu[id].possible)
			set_cpu(p, p->thread_of[0], id);
	for (unsigned int th = 0; th < p->nthreads; th++) {
		if (p->thread[th].node == -2)
			p->thread[th].node = -1;
		for (unsigned int w = 0; w < p->words; w++)
			p->thread[th].ncpus += (unsigned int)__builtin_popcountll(
				p->cpus[(size_t)th * p->words + w]);
	}
}

int rf_uring_plan_threads(const struct rf_topology *t, unsigned int nthreads,
			  struct rf_uring_plan *p)
{
	struct planner pl = {.t = t};
	unsigned int nq = t->npossible, nphantom = 0, *phantom = NULL, *size = NULL;
	int ret = -ENOMEM;

	memset(p, 0, sizeof(*p));
	if (nq == 0 || nthreads == 0 || nthreads > nq)
		return -EINVAL;
	p->nqueues = nq;
	p->nthreads = nthreads;
	p->nids = t->nids;
	p->words = (t->nids + 63) / 64;
	p->queues = calloc(nq, sizeof(*p->queues));
	p->thread_of = calloc(nq, sizeof(*p->thread_of));
	p->thread = calloc(nthreads, sizeof(*p->thread));
	p->cpus = calloc((size_t)nthreads * p->words, sizeof(*p->cpus));
	pl.real = calloc(nq, sizeof(*pl.real));
	pl.group = calloc(nq, sizeof(*pl.group));
	pl.w = calloc(nq + 1, sizeof(*pl.w));
	pl.cut = calloc(nq + 1, sizeof(*pl.cut));
	phantom = calloc(nq, sizeof(*phantom));
	size = calloc(nq, sizeof(*size));
	if (!p->queues || !p->thread_of || !p->thread || !p->cpus || !pl.real || !pl.group ||
	    !pl.w || !pl.cut || !phantom || !size)
		goto out;

	for (unsigned int q = 0; q < nq; q++) {
		if (q < t->nids && t->cpu[q].possible)
			pl.real[pl.nreal++] =
				(struct qkey){q, t->cpu[q].node, t->cpu[q].package, t->cpu[q].core};
		else
			phantom[nphantom++] = q;
	}
	qsort(pl.real, pl.nreal, sizeof(*pl.real), cmp_qkey);
	if (pl.nreal)
		split_run(&pl, 0, pl.nreal, nthreads < pl.nreal ? nthreads : pl.nreal, same_node);
	if (pl.failed)
		goto out;
	for (unsigned int q = 0; q < nq; q++)
		if (q < t->nids && t->cpu[q].possible)
			size[pl.group[q]]++;
	group_phantoms(&pl, phantom, nphantom, nthreads - pl.ngroups, size);
	finish(p, &pl);
	ret = 0;
out:
	free(pl.real);
	free(pl.group);
	free(pl.w);
	free(pl.cut);
	free(phantom);
	free(size);
	if (ret)
		rf_uring_plan_free(p);
	return ret;
}

void rf_uring_plan_free(struct rf_uring_plan *p)
{
	free(p->queues);
	free(p->thread_of);
	free(p->thread);
	free(p->cpus);
	memset(p, 0, sizeof(*p));
}

char *rf_uring_plan_cpulist(const struct rf_uring_plan *p, unsigned int thread, char *buf,
			    size_t len)
{
	size_t used = 0;

	if (len)
		buf[0] = '\0';
	for (unsigned int id = 0; id < p->nids; id++) {
		unsigned int last = id;
		int n;

		if (!rf_uring_plan_has_cpu(p, thread, id))
			continue;
		while (last + 1 < p->nids && rf_uring_plan_has_cpu(p, thread, last + 1))
			last++;
		n = last == id ? snprintf(buf + used, len - used, "%s%u", used ? "," : "", id)
			       : snprintf(buf + used, len - used, "%s%u-%u", used ? "," : "", id,
					  last);
		if (n < 0 || (size_t)n >= len - used)
			break;
		used += (size_t)n;
		id = last;
	}
	return buf;
}

unsigned int rf_uring_default_threads(const struct rf_topology *t)
{
	return t->npossible;
}

unsigned int rf_uring_threads_per_cpus(const struct rf_topology *t, unsigned int cpus_per_thread)
{
	unsigned int threads = 0;

	if (!cpus_per_thread)
		cpus_per_thread = 1;
	for (unsigned int node = 0; node < t->nnodes; node++) {
		unsigned int cpus = 0;

		for (unsigned int q = 0; q < t->npossible && q < t->nids; q++)
			cpus += t->cpu[q].possible && t->cpu[q].node == (int)node;
		threads += (cpus + cpus_per_thread - 1) / cpus_per_thread;
	}
	if (threads == 0)
		threads = 1;
	return threads < t->npossible ? threads : t->npossible;
}
