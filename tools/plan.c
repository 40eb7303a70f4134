/*
 * ringfuse-probe --plan: what serving FUSE over io-uring costs on a machine, in threads,
 * payload memory, ring memory and polling CPU, for ringfuse's defaults, ringfuse with fewer
 * threads, ringfuse with every entry registered from the start, and libfuse's model (one
 * thread per CPU, depth 8, 1 MiB per entry, no polling, nothing given back).
 *
 * Every number comes from the library's own sizing functions (lib/uring_plan.h) applied to a
 * topology: this machine's, a sysfs tree given with --sysfs, or made-up machines of the CPU
 * counts given (SMT 2, numbered as on x86, on 1 and 2 NUMA nodes unless --nodes says
 * otherwise). So the projection changes when the code's sizing does.
 */
#include "plan.h"

#include "ringfuse_i.h"
#include "topology.h"
#include "uring_plan.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Loads for the polling estimate: every CPU issues a request every 10 ms, or every 200 us. */
#define LIGHT_INTERVAL_US 10000
#define BUSY_INTERVAL_US  200
#define RINGFUSE_SPIN_US  50
#define MiB		  (1024ull * 1024)

struct model {
	const char *name;
	unsigned int cpus_per_thread; /* 0: one thread per queue */
	unsigned int depth_min, depth_max;
	uint64_t payload_limit; /* uring_payload_max; 0: none */
	bool trims;		/* idle entries give their payload back */
	unsigned int spin;	/* us polled after each request */
	bool ring_is_depth;	/* libfuse: SQ of depth entries, CQ twice that */
};

struct options {
	const char *sysfs;
	unsigned int cpus[16], ncpus;
	unsigned int nodes[4], nnodes;
	unsigned int smt;
	unsigned int cpus_per_thread; /* the elastic model's */
	unsigned int depth_min;	      /* the elastic model's */
	uint64_t payload_limit;	      /* the elastic model's */
	uint32_t max_write;
	bool markdown;
};

struct row {
	unsigned int threads;
	uint64_t entries_start, entries_max;
	uint64_t registered, peak, idle, rings;
	double poll_max, poll_light, poll_busy;
};

static int project(const struct rf_topology *t, const struct model *m, const struct options *o,
		   struct row *r)
{
	unsigned int threads = m->cpus_per_thread ? rf_uring_threads_per_cpus(t, m->cpus_per_thread)
						  : rf_uring_default_threads(t);
	struct rf_uring_config c = {
		.depth_min = m->depth_min,
		.depth_max = m->depth_max,
		.payload = rf_uring_payload_size(o->max_write, o->max_write / RF_PAGE_SIZE, 1),
		.payload_limit = m->payload_limit,
	};
	struct rf_uring_budget b;
	struct rf_uring_plan p;
	char why[256];
	int ret = rf_uring_plan_threads(t, threads, &p);

	if (ret)
		return ret;
	ret = rf_uring_budget(&p, &c, &b, why, sizeof(why));
	if (ret) {
		fprintf(stderr, "ringfuse-probe: %s: %s\n", m->name, why);
		rf_uring_plan_free(&p);
		return ret;
	}
	memset(r, 0, sizeof(*r));
	r->threads = threads;
	r->entries_start = b.entries_start;
	r->entries_max = b.entries_max;
	r->registered = b.payload_start;
	/* Every queue busy at its full depth at some point: every entry's payload touched. */
	r->peak = b.payload_max;
	r->idle = m->trims ? 0 : r->peak;
	if (m->ring_is_depth) {
		unsigned int sq = 1;

		while (sq < m->depth_max)
			sq *= 2;
		r->rings = (uint64_t)threads * rf_uring_ring_bytes(sq, 2 * sq);
	} else {
		r->rings = b.ring_kernel;
	}
	r->poll_max = m->spin ? threads : 0;
	r->poll_light = rf_uring_poll_cores(&p, m->spin, LIGHT_INTERVAL_US);
	r->poll_busy = rf_uring_poll_cores(&p, m->spin, BUSY_INTERVAL_US);
	rf_uring_plan_free(&p);
	return 0;
}

static const char *bytes(uint64_t n, char *buf)
{
	if (!n)
		return strcpy(buf, "0");
	return rf_uring_fmt_bytes(n, buf, 32);
}

static void print_header(const struct options *o)
{
	static bool printed;

	if (printed)
		return;
	printed = true;
	if (o->markdown) {
		printf("| machine | model | threads | entries | payload registered | resident, "
		       "peak | resident, idle | ring memory | polling cores, max | polling cores, "
		       "100 req/s per CPU | polling cores, 5000 req/s per CPU |\n");
		printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
		return;
	}
	printf("%-17s %-58s %7s %10s %10s %8s %8s %8s %8s %8s %8s\n", "machine", "model", "threads",
	       "entries", "registered", "peak", "idle", "rings", "poll max", "poll 100", "poll 5k");
}

static void print_row(const struct options *o, const char *machine, const char *model,
		      const struct row *r)
{
	char entries[32], reg[32], peak[32], idle[32], rings[32];

	print_header(o);
	if (r->entries_start == r->entries_max)
		snprintf(entries, sizeof(entries), "%llu", (unsigned long long)r->entries_max);
	else
		snprintf(entries, sizeof(entries), "%llu..%llu",
			 (unsigned long long)r->entries_start, (unsigned long long)r->entries_max);
	bytes(r->registered, reg);
	bytes(r->peak, peak);
	bytes(r->idle, idle);
	bytes(r->rings, rings);
	if (o->markdown)
		printf("| %s | %s | %u | %s | %s | %s | %s | %s | %.0f | %.2f | %.1f |\n", machine,
		       model, r->threads, entries, reg, peak, idle, rings, r->poll_max,
		       r->poll_light, r->poll_busy);
	else
		printf("%-17s %-58s %7u %10s %10s %8s %8s %8s %8.0f %8.2f %8.1f\n", machine, model,
		       r->threads, entries, reg, peak, idle, rings, r->poll_max, r->poll_light,
		       r->poll_busy);
}

static int plan_machine(const struct rf_topology *t, const char *machine, const struct options *o)
{
	const struct model models[] = {
		{"libfuse 3.18 model", 0, 8, 8, 0, false, 0, true},
		{"ringfuse, every entry at start", 0, RF_URING_DEPTH_DEFAULT,
		 RF_URING_DEPTH_DEFAULT, 0, false, RINGFUSE_SPIN_US, false},
		{"ringfuse defaults", 0, RF_URING_DEPTH_MIN_DEFAULT, RF_URING_DEPTH_DEFAULT, 0,
		 true, RINGFUSE_SPIN_US, false},
		{"ringfuse elastic", o->cpus_per_thread, o->depth_min, RF_URING_DEPTH_DEFAULT,
		 o->payload_limit, true, RINGFUSE_SPIN_US, false},
	};

	for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
		char name[128];
		struct row r;
		int ret = project(t, &models[i], o, &r);

		if (ret) {
			fprintf(stderr, "ringfuse-probe: cannot plan %s: %s\n", machine,
				strerror(-ret));
			return ret;
		}
		if (models[i].cpus_per_thread) {
			char limit[32] = "";

			if (models[i].payload_limit)
				rf_uring_fmt_bytes(models[i].payload_limit, limit, sizeof(limit));
			snprintf(name, sizeof(name), "%s (%u CPUs/thread, depth %u..%u%s%s)",
				 models[i].name, models[i].cpus_per_thread, models[i].depth_min,
				 models[i].depth_max, *limit ? ", <= " : "", limit);
		} else
			snprintf(name, sizeof(name), "%s", models[i].name);
		print_row(o, machine, name, &r);
	}
	return 0;
}

static int parse_list(const char *s, unsigned int *out, unsigned int cap, unsigned int *n)
{
	char *end;

	*n = 0;
	for (;;) {
		unsigned long v = strtoul(s, &end, 10);

		if (end == s || v == 0 || v > RF_TOPO_MAX_IDS || *n == cap)
			return -EINVAL;
		out[(*n)++] = (unsigned int)v;
		if (*end != ',')
			break;
		s = end + 1;
	}
	return *end ? -EINVAL : 0;
}

static void usage(FILE *to)
{
	fprintf(to, "usage: ringfuse-probe --plan [CPUS[,CPUS...]] [--nodes N[,N...]] [--smt N]\n"
		    "                      [--sysfs DIR] [--cpus-per-thread N] [--depth-min N]\n"
		    "                      [--payload-max SIZE] [--max-write BYTES] [--markdown]\n"
		    "  CPUS         made-up machines of these CPU counts (default: this machine)\n"
		    "  --nodes      NUMA nodes of each made-up machine (default 1,2)\n"
		    "  --smt        threads per core of the made-up machines (default 2)\n"
		    "  --sysfs      plan the machine this sysfs tree describes\n"
		    "  --cpus-per-thread  the elastic model's CPUs per thread (default 8)\n"
		    "  --depth-min  the elastic model's entries per queue at start (default 1)\n"
		    "  --payload-max  the elastic model's bound on payload, e.g. 512M, 0 for none\n"
		    "               (default 512M)\n"
		    "  --max-write  bytes per write request, which sizes an entry's payload\n"
		    "               (4096..1048576, default 1048576)\n");
}

/* 0, 1 when only help was asked for, or -EINVAL (usage printed). */
static int parse_args(int argc, char *argv[], struct options *o)
{
	static const struct option longopts[] = {
		{"nodes", required_argument, NULL, 'n'},
		{"smt", required_argument, NULL, 's'},
		{"sysfs", required_argument, NULL, 'y'},
		{"cpus-per-thread", required_argument, NULL, 'c'},
		{"max-write", required_argument, NULL, 'w'},
		{"depth-min", required_argument, NULL, 'd'},
		{"payload-max", required_argument, NULL, 'p'},
		{"markdown", no_argument, NULL, 'm'},
		{"help", no_argument, NULL, 'h'},
		{0},
	};
	unsigned int one;
	int c;

	memset(o, 0, sizeof(*o));
	o->nodes[0] = 1;
	o->nodes[1] = 2;
	o->nnodes = 2;
	o->smt = 2;
	o->cpus_per_thread = 8;
	o->depth_min = 1;
	o->payload_limit = 512 * MiB;
	o->max_write = RF_DEFAULT_MAX_WRITE;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		int bad = 0;

		switch (c) {
		case 'n':
			bad = parse_list(optarg, o->nodes, 4, &o->nnodes);
			break;
		case 's':
			bad = parse_list(optarg, &o->smt, 1, &one);
			break;
		case 'y':
			o->sysfs = optarg;
			break;
		case 'c':
			bad = parse_list(optarg, &o->cpus_per_thread, 1, &one);
			break;
		case 'w': {
			char *end;
			unsigned long v = strtoul(optarg, &end, 0);

			bad = *end || v < RF_PAGE_SIZE || v > RF_DEFAULT_MAX_WRITE;
			o->max_write = (uint32_t)v;
			break;
		}
		case 'm':
			o->markdown = true;
			break;
		case 'd':
			bad = parse_list(optarg, &o->depth_min, 1, &one) ||
			      o->depth_min > RF_URING_DEPTH_DEFAULT;
			break;
		case 'p': {
			char *end;
			unsigned long long v = strtoull(optarg, &end, 0);

			/* M and G suffixes, or none (bytes); 0 for no bound */
			if (*end == 'M' || *end == 'm')
				v <<= 20, end++;
			else if (*end == 'G' || *end == 'g')
				v <<= 30, end++;
			bad = *end != '\0';
			o->payload_limit = v;
			break;
		}
		case 'h':
			usage(stdout);
			return 1;
		default:
			bad = 1;
		}
		if (bad) {
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc && parse_list(argv[optind++], o->cpus, 16, &o->ncpus)) {
		usage(stderr);
		return -EINVAL;
	}
	if (optind < argc || (o->sysfs && o->ncpus)) {
		usage(stderr);
		return -EINVAL;
	}
	return 0;
}

int rf_plan_main(int argc, char *argv[])
{
	struct options o;
	struct rf_topology t;
	char machine[64];
	int ret = parse_args(argc, argv, &o);

	if (ret)
		return ret > 0 ? 0 : 2;
	if (!o.ncpus) {
		ret = rf_topology_read(o.sysfs, &t);
		if (ret) {
			fprintf(stderr, "ringfuse-probe: cannot read the topology under %s: %s\n",
				o.sysfs ? o.sysfs : "/sys", strerror(-ret));
			return 1;
		}
		snprintf(machine, sizeof(machine), "%u CPUs, %u node%s", t.npossible, t.nnodes,
			 t.nnodes == 1 ? "" : "s");
		ret = plan_machine(&t, machine, &o);
		rf_topology_free(&t);
		return ret ? 1 : 0;
	}
	for (unsigned int i = 0; i < o.ncpus; i++) {
		for (unsigned int n = 0; n < o.nnodes; n++) {
			ret = rf_topology_synthetic(&t, o.cpus[i], o.nodes[n], o.smt);
			if (ret) {
				fprintf(stderr,
					"ringfuse-probe: cannot make up %u CPUs on %u node(s) with "
					"%u "
					"threads per core\n",
					o.cpus[i], o.nodes[n], o.smt);
				return 2;
			}
			snprintf(machine, sizeof(machine), "%u CPUs, %u node%s", o.cpus[i],
				 o.nodes[n], o.nodes[n] == 1 ? "" : "s");
			ret = plan_machine(&t, machine, &o);
			rf_topology_free(&t);
			if (ret)
				return 1;
		}
	}
	return 0;
}
