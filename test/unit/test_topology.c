/*
 * The io-uring sizing functions on machines we do not have: fake sysfs trees (8, 64 and 192
 * CPUs, one and two NUMA nodes, SMT on and off, siblings numbered the x86 way and side by
 * side, a possible mask with holes, offline CPUs, missing files) are written to a temporary
 * directory, read back by rf_topology_read(), and planned: which thread serves which queue,
 * where it runs, how deep the queues are and what memory they take.
 *
 * Exit status 0 when every check passed, 1 otherwise; each check prints one line.
 */
#include "check.h"
#include "topology.h"
#include "uring_plan.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KiB 1024ull
#define MiB (1024ull * 1024)

/* ---- fake sysfs trees ---- */

static char base[256];
static unsigned int ntrees;

static void mkdirs(const char *path)
{
	char buf[1024];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(buf, 0755);
			*p = '/';
		}
	}
	mkdir(buf, 0755);
}

static void put(const char *root, const char *text, const char *fmt, ...)
{
	char rel[512], path[1024], dir[1024];
	va_list ap;
	FILE *f;

	va_start(ap, fmt);
	vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	mkdirs(dir);
	f = fopen(path, "w");
	if (!f) {
		perror(path);
		exit(1);
	}
	fprintf(f, "%s\n", text);
	fclose(f);
}

/* A list of the ids i with pick(i, arg) among 0..n-1, as the kernel prints it. */
static void list_of(char *buf, size_t len, unsigned int n, bool (*pick)(unsigned int, const void *),
		    const void *arg)
{
	size_t used = 0;

	buf[0] = '\0';
	for (unsigned int i = 0; i < n; i++) {
		unsigned int last = i;

		if (!pick(i, arg))
			continue;
		while (last + 1 < n && pick(last + 1, arg))
			last++;
		used += (size_t)snprintf(buf + used, len - used, last == i ? "%s%u" : "%s%u-%u",
					 used ? "," : "", i, last);
		i = last;
	}
}

struct pick_arg {
	const struct rf_topology *t;
	int node;
	unsigned int core;
};

static bool pick_possible(unsigned int i, const void *a)
{
	return ((const struct pick_arg *)a)->t->cpu[i].possible;
}

static bool pick_online(unsigned int i, const void *a)
{
	return ((const struct pick_arg *)a)->t->cpu[i].online;
}

static bool pick_node(unsigned int i, const void *a)
{
	const struct pick_arg *p = a;

	return p->t->cpu[i].possible && p->t->cpu[i].online && p->t->cpu[i].node == p->node;
}

static bool pick_core(unsigned int i, const void *a)
{
	const struct pick_arg *p = a;

	return p->t->cpu[i].possible && p->t->cpu[i].online && p->t->cpu[i].core == p->core;
}

/* Write t out as a sysfs tree (only online CPUs have topology/ and are in node lists, as on
 * a real machine); returns its root. */
static const char *write_tree(const struct rf_topology *t, bool numa)
{
	static char root[512];
	static char line[65536];
	struct pick_arg a = {.t = t};

	snprintf(root, sizeof(root), "%s/tree%u", base, ntrees++);
	list_of(line, sizeof(line), t->nids, pick_possible, &a);
	put(root, line, "devices/system/cpu/possible");
	list_of(line, sizeof(line), t->nids, pick_online, &a);
	put(root, line, "devices/system/cpu/online");
	for (unsigned int n = 0; numa && n < t->nnodes; n++) {
		a.node = (int)n;
		list_of(line, sizeof(line), t->nids, pick_node, &a);
		put(root, line, "devices/system/node/node%u/cpulist", n);
	}
	if (numa)
		put(root, "0", "devices/system/node/possible"); /* not a nodeN: must be skipped */
	for (unsigned int id = 0; id < t->nids; id++) {
		char pkg[16];

		if (!t->cpu[id].possible || !t->cpu[id].online)
			continue;
		a.core = t->cpu[id].core;
		list_of(line, sizeof(line), t->nids, pick_core, &a);
		put(root, line, "devices/system/cpu/cpu%u/topology/thread_siblings_list", id);
		snprintf(pkg, sizeof(pkg), "%d", t->cpu[id].package);
		put(root, pkg, "devices/system/cpu/cpu%u/topology/physical_package_id", id);
	}
	return root;
}

static bool same_topology(const struct rf_topology *a, const struct rf_topology *b)
{
	if (a->nids != b->nids || a->npossible != b->npossible || a->nonline != b->nonline ||
	    a->nnodes != b->nnodes)
		return false;
	for (unsigned int i = 0; i < a->nids; i++)
		if (a->cpu[i].possible != b->cpu[i].possible ||
		    a->cpu[i].online != b->cpu[i].online ||
		    (a->cpu[i].possible &&
		     (a->cpu[i].node != b->cpu[i].node || a->cpu[i].core != b->cpu[i].core ||
		      a->cpu[i].package != b->cpu[i].package)))
			return false;
	return true;
}

/* ---- checks of a plan that hold on every machine ---- */

/* Every queue served by exactly one thread, the layout consistent, thread 0 serving queue 0,
 * and each thread's CPUs exactly the CPUs whose requests reach its queues. */
static bool plan_consistent(const struct rf_topology *t, const struct rf_uring_plan *p)
{
	unsigned int seen = 0, *count = calloc(p->nqueues, sizeof(*count));
	bool ok = count != NULL && p->thread_of[0] == 0;

	for (unsigned int th = 0; ok && th < p->nthreads; th++) {
		const struct rf_uring_thread *r = &p->thread[th];
		unsigned int ncpus = 0;

		ok = r->count > 0 && r->first == seen;
		for (unsigned int i = 0; ok && i < r->count; i++) {
			unsigned int q = p->queues[r->first + i];

			ok = q < p->nqueues && p->thread_of[q] == th && count[q]++ == 0 &&
			     (i == 0 || q > p->queues[r->first + i - 1]);
		}
		seen += r->count;
		for (unsigned int id = 0; ok && id < t->nids; id++) {
			unsigned int q = id < p->nqueues ? id : 0;
			bool want = t->cpu[id].possible && p->thread_of[q] == th;

			ok = rf_uring_plan_has_cpu(p, th, id) == want;
			ncpus += want;
		}
		ok = ok && ncpus == r->ncpus;
	}
	free(count);
	return ok && seen == p->nqueues;
}

/* No thread serves CPUs of two nodes. */
static bool plan_node_local(const struct rf_topology *t, const struct rf_uring_plan *p)
{
	for (unsigned int th = 0; th < p->nthreads; th++) {
		int node = -2;

		for (unsigned int id = 0; id < t->nids; id++) {
			if (!rf_uring_plan_has_cpu(p, th, id))
				continue;
			if (node != -2 && node != t->cpu[id].node)
				return false;
			node = t->cpu[id].node;
		}
		if (node != -2 && p->thread[th].node != node)
			return false;
	}
	return true;
}

/* SMT siblings are served by one thread whenever there are no more threads than cores; with
 * more, no thread spans two cores. */
static bool plan_keeps_cores(const struct rf_topology *t, const struct rf_uring_plan *p,
			     bool threads_le_cores)
{
	for (unsigned int a = 0; a < p->nqueues; a++) {
		for (unsigned int b = 0; b < p->nqueues; b++) {
			bool siblings = t->cpu[a].core == t->cpu[b].core;
			bool together = p->thread_of[a] == p->thread_of[b];

			if (threads_le_cores && siblings && !together)
				return false;
			if (!threads_le_cores && together && !siblings)
				return false;
		}
	}
	return true;
}

/* Largest minus smallest count of queues per thread among threads of one node. */
static unsigned int plan_spread(const struct rf_uring_plan *p, int node)
{
	unsigned int lo = ~0u, hi = 0;

	for (unsigned int th = 0; th < p->nthreads; th++) {
		if (p->thread[th].node != node)
			continue;
		lo = p->thread[th].count < lo ? p->thread[th].count : lo;
		hi = p->thread[th].count > hi ? p->thread[th].count : hi;
	}
	return hi >= lo ? hi - lo : 0;
}

/* ---- tests ---- */

static void test_cpulist(void)
{
	uint8_t set[16] = {0};
	unsigned int end;

	CHECK(rf_cpulist_parse("0\n", NULL, 0, &end) == 1 && end == 1, "cpulist: one id");
	CHECK(rf_cpulist_parse("0-3,8-11\n", NULL, 0, &end) == 8 && end == 12,
	      "cpulist: holes count only listed ids (num_possible_cpus), end is highest + 1");
	CHECK(rf_cpulist_parse("", NULL, 0, &end) == 0 && end == 0, "cpulist: empty");
	CHECK(rf_cpulist_parse("\n", NULL, 0, &end) == 0, "cpulist: empty line");
	CHECK(rf_cpulist_parse("3-1", NULL, 0, &end) == -EINVAL, "cpulist: backwards range");
	CHECK(rf_cpulist_parse("1,", NULL, 0, &end) == -EINVAL, "cpulist: trailing comma");
	CHECK(rf_cpulist_parse("a", NULL, 0, &end) == -EINVAL, "cpulist: garbage");
	CHECK(rf_cpulist_parse("1-", NULL, 0, &end) == -EINVAL, "cpulist: open range");
	CHECK(rf_cpulist_parse("0-8191", NULL, 0, &end) == 8192, "cpulist: NR_CPUS ids");
	CHECK(rf_cpulist_parse("0-8192", NULL, 0, &end) == -ERANGE, "cpulist: past NR_CPUS");
	CHECK(rf_cpulist_parse("2,5-6", set, sizeof(set), &end) == 3 && set[2] && set[5] &&
		      set[6] && !set[3] && end == 7,
	      "cpulist: into a set");
	CHECK(rf_cpulist_parse("16", set, sizeof(set), &end) == -ERANGE, "cpulist: past the set");
}

/* Synthetic machines written out and read back are the same machine. */
static void test_round_trip(void)
{
	static const unsigned int shapes[][3] = {
		{8, 1, 1}, {8, 1, 2}, {64, 1, 2}, {64, 2, 2}, {192, 1, 1}, {192, 2, 2}, {192, 2, 1},
	};

	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		struct rf_topology want, got;
		int ret;

		rf_topology_synthetic(&want, shapes[i][0], shapes[i][1], shapes[i][2]);
		ret = rf_topology_read(write_tree(&want, true), &got);
		CHECK(ret == 0 && same_topology(&want, &got),
		      "read: %u CPUs, %u node(s), SMT %u: as written (%d possible, %u nodes)",
		      shapes[i][0], shapes[i][1], shapes[i][2], ret ? ret : (int)got.npossible,
		      got.nnodes);
		rf_topology_free(&want);
		rf_topology_free(&got);
	}
}

static void test_read_odd_trees(void)
{
	char root[512];
	struct rf_topology t;
	int ret;

	/* A possible mask with holes: 8 queues; CPUs 4-7 do not exist, 8-11 go to queue 0. */
	snprintf(root, sizeof(root), "%s/sparse", base);
	put(root, "0-3,8-11", "devices/system/cpu/possible");
	put(root, "0-3,8-11", "devices/system/cpu/online");
	ret = rf_topology_read(root, &t);
	CHECK(ret == 0 && t.npossible == 8 && t.nids == 12 && t.nnodes == 1 && !t.cpu[5].possible &&
		      t.cpu[9].possible,
	      "sparse possible mask: 8 queues (the kernel's count), ids up to 11, no node info");
	CHECK(ret == 0 && t.cpu[9].core == 9 && t.cpu[9].package == -1 && t.cpu[9].node == 0,
	      "no topology files: every CPU its own core, node 0");
	rf_topology_free(&t);

	/* CPUs 6 and 7 offline: no topology directory, not in the node list. */
	snprintf(root, sizeof(root), "%s/offline", base);
	put(root, "0-7", "devices/system/cpu/possible");
	put(root, "0-5", "devices/system/cpu/online");
	put(root, "0-5", "devices/system/node/node0/cpulist");
	put(root, "", "devices/system/node/node1/cpulist"); /* a memory-only node */
	for (unsigned int id = 0; id < 6; id++) {
		char sib[16];

		snprintf(sib, sizeof(sib), "%u-%u", id & ~1u, id | 1u); /* side by side */
		put(root, sib, "devices/system/cpu/cpu%u/topology/core_cpus_list", id);
		put(root, "0", "devices/system/cpu/cpu%u/topology/physical_package_id", id);
	}
	ret = rf_topology_read(root, &t);
	CHECK(ret == 0 && t.npossible == 8 && t.nonline == 6 && !t.cpu[7].online &&
		      t.cpu[5].core == 4 && t.cpu[4].core == 4 && t.cpu[7].core == 7 &&
		      t.nnodes == 1,
	      "offline CPUs count as queues; core_cpus_list siblings side by side");
	rf_topology_free(&t);

	snprintf(root, sizeof(root), "%s/missing", base);
	mkdirs(root);
	CHECK(rf_topology_read(root, &t) == -ENOENT, "no cpu/possible: -ENOENT");
	put(root, "0-x", "devices/system/cpu/possible");
	CHECK(rf_topology_read(root, &t) == -EINVAL, "garbled cpu/possible: -EINVAL");
	CHECK(rf_topology_read("/sys", &t) == 0 && t.npossible >= 1 && t.nonline >= 1,
	      "this machine: %u possible CPUs, %u online, %u node(s)", t.npossible, t.nonline,
	      t.nnodes);
	rf_topology_free(&t);
}

/* A tree for ncpus/nnodes/smt, read back. */
static void machine(struct rf_topology *t, unsigned int ncpus, unsigned int nnodes,
		    unsigned int smt)
{
	struct rf_topology s;

	rf_topology_synthetic(&s, ncpus, nnodes, smt);
	if (rf_topology_read(write_tree(&s, true), t)) {
		fprintf(stderr, "cannot read back a tree of %u CPUs\n", ncpus);
		exit(1);
	}
	rf_topology_free(&s);
}

static void test_plans(void)
{
	static const unsigned int shapes[][3] = {
		{8, 1, 2},
		{64, 2, 2},
		{192, 1, 1},
		{192, 2, 2},
	};
	struct rf_uring_plan p;
	struct rf_topology t;
	char cpus[256];

	for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
		unsigned int n = shapes[s][0], nodes = shapes[s][1], smt = shapes[s][2];
		unsigned int cores = n / smt;
		static const unsigned int counts[] = {1,  2,  3,  4,  6,   7,  8,
						      24, 63, 64, 96, 191, 192};

		machine(&t, n, nodes, smt);
		for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
			unsigned int th = counts[c];
			bool ok;

			if (th > n)
				continue;
			ok = rf_uring_plan_threads(&t, th, &p) == 0 && p.nthreads == th &&
			     plan_consistent(&t, &p);
			ok = ok && (th < nodes || plan_node_local(&t, &p));
			ok = ok && (smt == 1 || plan_keeps_cores(&t, &p, th <= cores));
			/* Within a node, groups differ by at most one core. */
			for (unsigned int nd = 0; ok && th >= nodes && nd < nodes; nd++)
				ok = plan_spread(&p, (int)nd) <= smt;
			CHECK(ok,
			      "plan: %u CPUs, %u node(s), SMT %u, %u thread(s): every queue once, "
			      "node-local, cores kept, even",
			      n, nodes, smt, th);
			rf_uring_plan_free(&p);
		}
		rf_topology_free(&t);
	}

	/* One thread per queue: thread i serves queue i and runs on CPU i (today's layout). */
	machine(&t, 64, 2, 2);
	rf_uring_plan_threads(&t, rf_uring_default_threads(&t), &p);
	{
		bool ok = p.nthreads == 64;

		for (unsigned int i = 0; ok && i < 64; i++)
			ok = p.thread[i].count == 1 && p.queues[p.thread[i].first] == i &&
			     p.thread[i].ncpus == 1 && rf_uring_plan_has_cpu(&p, i, i) &&
			     p.thread[i].node == t.cpu[i].node;
		CHECK(ok, "default: one thread per queue, thread i on CPU i, on CPU i's node");
	}
	rf_uring_plan_free(&p);

	/* One thread: every queue, every CPU, no single node. */
	rf_uring_plan_threads(&t, 1, &p);
	CHECK(p.thread[0].count == 64 && p.thread[0].ncpus == 64 && p.thread[0].node == -1 &&
		      !strcmp(rf_uring_plan_cpulist(&p, 0, cpus, sizeof(cpus)), "0-63"),
	      "one thread: all 64 queues, CPUs %s, node -1", cpus);
	rf_uring_plan_free(&p);

	/* Two nodes, two threads: one per node (x86 numbering: node 0 = 0-15,32-47). */
	rf_uring_plan_threads(&t, 2, &p);
	CHECK(p.thread[0].node == 0 && p.thread[1].node == 1 && p.thread[0].count == 32 &&
		      !strcmp(rf_uring_plan_cpulist(&p, 0, cpus, sizeof(cpus)), "0-15,32-47"),
	      "two nodes, two threads: one per node (thread 0 on %s)", cpus);
	rf_uring_plan_free(&p);

	/* 4 threads on 8 CPUs with SMT: one core each, the two siblings together. */
	rf_topology_free(&t);
	machine(&t, 8, 1, 2);
	rf_uring_plan_threads(&t, 4, &p);
	CHECK(!strcmp(rf_uring_plan_cpulist(&p, 1, cpus, sizeof(cpus)), "1,5"),
	      "8 CPUs SMT, 4 threads: thread 1 serves the core of CPUs 1 and 5 (%s)", cpus);
	rf_uring_plan_free(&p);
	rf_uring_plan_threads(&t, 2, &p);
	CHECK(!strcmp(rf_uring_plan_cpulist(&p, 1, cpus, sizeof(cpus)), "2-3,6-7"),
	      "8 CPUs SMT, 2 threads: neighbouring cores together (thread 1: %s)", cpus);
	rf_uring_plan_free(&p);
	rf_topology_free(&t);

	/* Holes in the possible mask: queues 4-7 have no CPU; CPUs 8-11 feed queue 0. */
	{
		char root[512];

		snprintf(root, sizeof(root), "%s/sparse", base);
		rf_topology_read(root, &t);
	}
	rf_uring_plan_threads(&t, 8, &p);
	CHECK(plan_consistent(&t, &p) && p.thread[0].ncpus == 5 && p.thread[5].ncpus == 0 &&
		      !strcmp(rf_uring_plan_cpulist(&p, 0, cpus, sizeof(cpus)), "0,8-11"),
	      "sparse mask, 8 threads: thread 0 also runs where CPUs 8-11 are (%s); queue 5 "
	      "has no CPU",
	      cpus);
	rf_uring_plan_free(&p);
	rf_uring_plan_threads(&t, 2, &p);
	CHECK(plan_consistent(&t, &p) && p.thread[0].count == 4 && p.thread[1].count == 4,
	      "sparse mask, 2 threads: CPU-less queues go to the smaller groups (%u + %u)",
	      p.thread[0].count, p.thread[1].count);
	rf_uring_plan_free(&p);
	rf_uring_plan_threads(&t, 6, &p);
	CHECK(plan_consistent(&t, &p) && p.thread[4].ncpus == 0 && p.thread[5].ncpus == 0 &&
		      p.thread[4].count == 2,
	      "sparse mask, 6 threads: 4 for the real queues, 2 for the CPU-less ones");
	rf_uring_plan_free(&p);
	CHECK(rf_uring_plan_threads(&t, 9, &p) == -EINVAL && rf_uring_plan_threads(&t, 0, &p),
	      "more threads than queues, or none: -EINVAL");
	rf_topology_free(&t);

	machine(&t, 192, 2, 2);
	CHECK(rf_uring_threads_per_cpus(&t, 8) == 24 && rf_uring_threads_per_cpus(&t, 1000) == 2 &&
		      rf_uring_threads_per_cpus(&t, 1) == 192,
	      "one thread per 8 CPUs of each node: 24 on 192 CPUs; at least one per node");
	rf_topology_free(&t);
}

static void test_sizing(void)
{
	/* Measured on 6.18 as the smallest RLIMIT_MEMLOCK a non-root user's ring needs. */
	static const unsigned int measured[][3] = {
		{8, 16, 8},	   {64, 128, 12},     {256, 512, 44},	   {1024, 2048, 168},
		{2048, 4096, 332}, {4096, 8192, 660}, {8192, 16384, 1316},
	};
	struct rf_uring_config c = {.depth_min = 2, .depth_max = 16, .payload = MiB};
	struct rf_mem_limits lim;
	struct rf_uring_budget b;
	struct rf_uring_plan p;
	struct rf_topology t;
	unsigned int sq, cq;
	char why[512];
	int ret;

	CHECK(rf_uring_payload_size(1 << 20, 256, 1) == MiB, "payload: 1 MiB max_write");
	CHECK(rf_uring_payload_size(4096, 1, 0) == 128 * KiB,
	      "payload: without max_pages the kernel's 32 pages");
	CHECK(rf_uring_payload_size(0, 1, 1) == 8 * KiB, "payload: at least 8 KiB");
	CHECK(rf_uring_payload_size(5000, 1, 1) == 8 * KiB &&
		      rf_uring_payload_size(70000, 1, 1) == 72 * KiB,
	      "payload: whole pages");

	CHECK(rf_uring_depth_grow(2, 16) == 4 && rf_uring_depth_grow(12, 16) == 16 &&
		      rf_uring_depth_grow(16, 16) == 16 && rf_uring_depth_grow(1, 1024) == 2,
	      "depth grows by doubling, never past uring_depth");

	rf_uring_ring_size(16, &sq, &cq);
	CHECK(sq == 32 && cq == 64, "ring of 16 entries: SQ 32, CQ 64 (%u, %u)", sq, cq);
	rf_uring_ring_size(192 * 16, &sq, &cq);
	CHECK(sq == 4096 && cq == 8192, "ring of 192 x 16 entries: SQ 4096, CQ 8192");
	rf_uring_ring_size(256 * 1024, &sq, &cq);
	CHECK(sq == 32768 && cq == 65536, "ring of 256 x 1024 entries: the kernel's maximum");
	for (size_t i = 0; i < sizeof(measured) / sizeof(measured[0]); i++)
		CHECK(rf_uring_ring_bytes(measured[i][0], measured[i][1]) == measured[i][2] * KiB,
		      "ring memory, SQ %u: %u KiB as measured", measured[i][0], measured[i][2]);

	CHECK(rf_uring_max_background(2, 16) == 64 && rf_uring_max_background(192, 16) == 3072 &&
		      rf_uring_max_background(256, 1024) == 65535,
	      "max_background: queues x depth, 64..65535");

	machine(&t, 8, 1, 2);
	rf_uring_plan_threads(&t, 8, &p);
	ret = rf_uring_budget(&p, &c, &b, why, sizeof(why));
	CHECK(ret == 0 && b.depth_start == 2 && b.entries_start == 16 &&
		      b.payload_start == 16 * MiB && b.entries_max == 128 &&
		      b.payload_max == 128 * MiB && b.reserve == 8 * (8 * KiB + 16 * MiB) &&
		      b.ring_kernel == 8 * 8 * KiB && b.sq_max == 32 && b.max_background == 128,
	      "budget: 8 queues, depth 2..16, 1 MiB: 16 MiB at start, 128 MiB at most");
	rf_uring_plan_free(&p);
	rf_uring_plan_threads(&t, 1, &p);
	rf_uring_budget(&p, &c, &b, why, sizeof(why));
	CHECK(b.ring_kernel == 44 * KiB && b.sq_max == 256,
	      "budget: one thread holds one ring for all 128 entries (44 KiB)");

	c.payload_limit = 40 * MiB;
	ret = rf_uring_budget(&p, &c, &b, why, sizeof(why));
	CHECK(ret == 0 && b.entries_max == 40 && b.payload_max == 40 * MiB &&
		      b.ring_kernel == rf_uring_ring_bytes(64, 128),
	      "budget: uring_payload_max=40M caps the entries at 40");
	c.payload_limit = 15 * MiB;
	ret = rf_uring_budget(&p, &c, &b, why, sizeof(why));
	CHECK(ret == -EINVAL && strstr(why, "uring_payload_max=15 MiB") && strstr(why, "16 MiB"),
	      "budget: a bound below the start needs -EINVAL: %s", why);
	c.payload_limit = 0;
	c.depth_min = 32;
	rf_uring_budget(&p, &c, &b, why, sizeof(why));
	CHECK(b.depth_start == 16,
	      "budget: uring_depth_min above uring_depth starts at uring_depth");
	c.depth_min = 2;
	rf_uring_plan_free(&p);
	rf_topology_free(&t);

	machine(&t, 192, 2, 2);
	rf_uring_plan_threads(&t, 192, &p);
	rf_uring_budget(&p, &c, &b, why, sizeof(why));
	lim = (struct rf_mem_limits){.memlock = 8 * MiB, .as_free = UINT64_MAX};
	CHECK(rf_uring_check_limits(&b, &lim, why, sizeof(why)) == 0,
	      "limits: 192 rings of 8 KiB fit the default 8 MiB RLIMIT_MEMLOCK");
	lim.memlock = 64 * KiB;
	ret = rf_uring_check_limits(&b, &lim, why, sizeof(why));
	CHECK(ret == -ENOMEM && strstr(why, "RLIMIT_MEMLOCK") && strstr(why, "1.5 MiB"),
	      "limits: a small RLIMIT_MEMLOCK is refused, saying what is needed: %s", why);
	lim.ipc_lock = 1;
	CHECK(rf_uring_check_limits(&b, &lim, why, sizeof(why)) == 0,
	      "limits: with CAP_IPC_LOCK rings are not charged");
	lim.as_free = 1024 * MiB;
	ret = rf_uring_check_limits(&b, &lim, why, sizeof(why));
	CHECK(ret == -ENOMEM && strstr(why, "RLIMIT_AS"), "limits: address space: %s", why);
	lim.as_free = UINT64_MAX;
	lim.overcommit = 2;
	lim.commit_free = 1024 * MiB;
	ret = rf_uring_check_limits(&b, &lim, why, sizeof(why));
	CHECK(ret == 1 && strstr(why, "stop growing"),
	      "limits: strict overcommit below the ceiling only stops growth: %s", why);
	lim.commit_free = 100 * MiB;
	ret = rf_uring_check_limits(&b, &lim, why, sizeof(why));
	CHECK(ret == -ENOMEM && strstr(why, "384 MiB"),
	      "limits: strict overcommit below the start is refused: %s", why);
	rf_uring_plan_free(&p);
	rf_topology_free(&t);

	rf_mem_limits_read(&lim);
	CHECK(lim.memlock > 0 && lim.commit_free > 0, "limits of this process read");
}

int main(void)
{
	snprintf(base, sizeof(base), "%s/ringfuse-topo-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	test_cpulist();
	test_round_trip();
	test_read_odd_trees();
	test_plans();
	test_sizing();
	{
		char cmd[512];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", base);
	}
	return check_summary();
}
