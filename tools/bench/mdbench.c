/*
 * ringfuse-mdbench: a metadata micro-benchmark driven by ringfuse-bench.
 *
 * It creates, stats and unlinks many empty files in a directory and reports the throughput of
 * each phase (ops/s) and its latency distribution as JSON on stdout. Every thread works in its
 * own subdirectory so the phases measure the round trip of each request rather than
 * contention on one parent directory's lock. Names are resolved relative to an open directory
 * fd, so each operation costs one name lookup, not a walk from the root of the mount.
 *
 * The stat phase can run for a fixed time (-d) instead of one pass, and can be tied to a load
 * process (-L PID): it then stops as soon as that process exits, so that every latency sample
 * is taken while the load was running. ringfuse-bench uses this with a background fio writer to
 * measure "stat latency under load".
 *
 * Latencies go into a log-linear histogram (64 sub-buckets per power of two, under 1.6%
 * error), one per thread, merged at the end: no allocation or lock inside the timed loops.
 *
 * Given the filesystem daemon's pids (-P), it also reports the CPU time those processes used
 * during each phase (user + system, all threads, from their process CPU-time clocks), read by
 * the main thread at the phase's barriers, so a phase's cost per request does not include the
 * others.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define SUB_BITS    6
#define SUB_COUNT   (1u << SUB_BITS)
#define HIST_LINEAR (2 * SUB_COUNT)
#define HIST_SIZE   (HIST_LINEAR + 64 * SUB_COUNT)

#define MAX_THREADS 1024
#define MAX_PIDS    16

enum phase { PH_CREATE, PH_STAT, PH_UNLINK, PH_COUNT };

static const char *const phase_names[PH_COUNT] = {"create", "stat", "unlink"};

struct hist {
	uint64_t count;
	uint64_t sum_ns;
	uint64_t max_ns;
	uint64_t bucket[HIST_SIZE];
};

struct worker {
	pthread_t thread;
	unsigned int id;
	int dirfd;
	unsigned int first; /* this thread's files are [first, first + nfiles) */
	unsigned int nfiles;
	int err; /* errno of the first failure, 0 if none */
	char errwhat[64];
	struct hist hist[PH_COUNT];
};

static struct {
	const char *dir;
	unsigned int files;
	unsigned int threads;
	bool run[PH_COUNT];
	double stat_seconds; /* 0: one pass */
	pid_t load_pid;
	pid_t cpu_pids[MAX_PIDS];
	unsigned int ncpu_pids;
	bool keep;
} cfg = {.files = 1000, .threads = 1};

static pthread_barrier_t barrier;
static struct worker *workers;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static unsigned int hist_index(uint64_t v)
{
	unsigned int msb, shift;

	if (v < HIST_LINEAR)
		return (unsigned int)v;
	msb = 63u - (unsigned int)__builtin_clzll(v);
	shift = msb - SUB_BITS;
	return HIST_LINEAR + (shift - 1) * SUB_COUNT + (unsigned int)((v >> shift) - SUB_COUNT);
}

/* Middle of the range of values that land in bucket i. */
static uint64_t hist_value(unsigned int i)
{
	unsigned int shift;
	uint64_t low;

	if (i < HIST_LINEAR)
		return i;
	shift = (i - HIST_LINEAR) / SUB_COUNT + 1;
	low = (uint64_t)(SUB_COUNT + (i - HIST_LINEAR) % SUB_COUNT) << shift;
	return low + ((1ull << shift) >> 1);
}

static inline void hist_add(struct hist *h, uint64_t v)
{
	h->bucket[hist_index(v)]++;
	h->count++;
	h->sum_ns += v;
	if (v > h->max_ns)
		h->max_ns = v;
}

static void hist_merge(struct hist *into, const struct hist *h)
{
	into->count += h->count;
	into->sum_ns += h->sum_ns;
	if (h->max_ns > into->max_ns)
		into->max_ns = h->max_ns;
	for (unsigned int i = 0; i < HIST_SIZE; i++)
		into->bucket[i] += h->bucket[i];
}

static uint64_t hist_percentile(const struct hist *h, double pct)
{
	uint64_t rank, seen = 0;

	if (!h->count)
		return 0;
	rank = (uint64_t)(pct / 100.0 * (double)h->count + 0.5);
	if (rank < 1)
		rank = 1;
	for (unsigned int i = 0; i < HIST_SIZE; i++) {
		seen += h->bucket[i];
		if (seen >= rank) {
			uint64_t v = hist_value(i);
			return v > h->max_ns ? h->max_ns : v;
		}
	}
	return h->max_ns;
}

static void fail(struct worker *w, const char *what, unsigned int i)
{
	if (w->err)
		return;
	w->err = errno ? errno : EIO;
	snprintf(w->errwhat, sizeof(w->errwhat), "%s f%07u", what, i);
}

static bool load_running(void)
{
	return cfg.load_pid <= 0 || kill(cfg.load_pid, 0) == 0 || errno == EPERM;
}

/*
 * User + system time of the -P processes in seconds (all threads, those that exited too), or -1
 * if one cannot be read (gone). The process CPU-time clock counts in nanoseconds, where
 * /proc/PID/stat counts in clock ticks, too coarse for a phase of a fraction of a second.
 */
static double daemon_cpu_seconds(void)
{
	double total = 0;

	for (unsigned int i = 0; i < cfg.ncpu_pids; i++) {
		struct timespec ts;
		clockid_t clk;

		if (clock_getcpuclockid(cfg.cpu_pids[i], &clk) != 0 || clock_gettime(clk, &ts) != 0)
			return -1;
		total += (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	}
	return total;
}

static void do_create(struct worker *w, bool timed)
{
	char name[32];

	for (unsigned int i = w->first; i < w->first + w->nfiles; i++) {
		uint64_t t0 = now_ns();
		int fd;

		snprintf(name, sizeof(name), "f%07u", i);
		fd = openat(w->dirfd, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0 || close(fd) < 0) {
			fail(w, "create", i);
			return;
		}
		if (timed)
			hist_add(&w->hist[PH_CREATE], now_ns() - t0);
	}
}

static void do_stat(struct worker *w, uint64_t deadline)
{
	char name[32];
	struct stat st;
	unsigned int i = 0;
	bool pass_done = false;

	if (!w->nfiles)
		return;
	for (;;) {
		uint64_t t0, t1;

		snprintf(name, sizeof(name), "f%07u", w->first + i);
		t0 = now_ns();
		if (fstatat(w->dirfd, name, &st, 0) < 0) {
			fail(w, "stat", w->first + i);
			return;
		}
		t1 = now_ns();
		hist_add(&w->hist[PH_STAT], t1 - t0);
		if (++i == w->nfiles) {
			i = 0;
			pass_done = true;
		}
		if (deadline == 0 ? pass_done : t1 >= deadline)
			return;
		/* A cheap syscall every 256 stats: stop as soon as the load is gone. */
		if ((w->hist[PH_STAT].count & 255) == 0 && !load_running())
			return;
	}
}

static void do_unlink(struct worker *w, bool timed)
{
	char name[32];

	for (unsigned int i = w->first; i < w->first + w->nfiles; i++) {
		uint64_t t0 = now_ns();

		snprintf(name, sizeof(name), "f%07u", i);
		if (unlinkat(w->dirfd, name, 0) < 0) {
			fail(w, "unlink", i);
			return;
		}
		if (timed)
			hist_add(&w->hist[PH_UNLINK], now_ns() - t0);
	}
}

/*
 * Every worker goes through the same sequence of barriers as the main thread: one before and
 * one after each phase, so the main thread's clock brackets the slowest worker. A worker that
 * failed keeps walking the barriers without working.
 */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t deadline;

	/* Untimed setup: files that the stat phase needs but the create phase won't make. */
	if (!cfg.run[PH_CREATE] && (cfg.run[PH_STAT] || cfg.run[PH_UNLINK]))
		do_create(w, false);
	pthread_barrier_wait(&barrier);

	for (int ph = 0; ph < PH_COUNT; ph++) {
		if (!cfg.run[ph])
			continue;
		pthread_barrier_wait(&barrier);
		if (!w->err) {
			switch (ph) {
			case PH_CREATE:
				do_create(w, true);
				break;
			case PH_STAT:
				deadline = cfg.stat_seconds > 0
						   ? now_ns() + (uint64_t)(cfg.stat_seconds * 1e9)
						   : 0;
				do_stat(w, deadline);
				break;
			case PH_UNLINK:
				do_unlink(w, true);
				break;
			}
		}
		pthread_barrier_wait(&barrier);
	}

	if (!cfg.run[PH_UNLINK] && !cfg.keep && !w->err)
		do_unlink(w, false);
	return NULL;
}

static void print_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void print_phase(int ph, const struct hist *h, double seconds, double cpu, bool *first)
{
	static const double pcts[] = {50, 90, 99, 99.9};
	static const char *const keys[] = {"p50", "p90", "p99", "p999"};

	printf("%s\n    \"%s\": {\"count\": %llu, \"seconds\": %.6f, \"ops_per_sec\": %.1f, "
	       "\"lat_ns\": {\"mean\": %llu",
	       *first ? "" : ",", phase_names[ph], (unsigned long long)h->count, seconds,
	       seconds > 0 ? (double)h->count / seconds : 0.0,
	       (unsigned long long)(h->count ? h->sum_ns / h->count : 0));
	for (unsigned int i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++)
		printf(", \"%s\": %llu", keys[i], (unsigned long long)hist_percentile(h, pcts[i]));
	printf(", \"max\": %llu}", (unsigned long long)h->max_ns);
	if (cfg.ncpu_pids && cpu >= 0)
		printf(", \"daemon_cpu_s\": %.6f", cpu);
	else if (cfg.ncpu_pids)
		printf(", \"daemon_cpu_s\": null"); /* a daemon process went away */
	putchar('}');
	*first = false;
}

static int parse_ops(const char *arg)
{
	char *copy = strdup(arg), *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		int ph;

		for (ph = 0; ph < PH_COUNT; ph++)
			if (!strcmp(tok, phase_names[ph]))
				break;
		if (ph == PH_COUNT) {
			fprintf(stderr, "mdbench: unknown operation '%s' (create, stat, unlink)\n",
				tok);
			free(copy);
			return -EINVAL;
		}
		cfg.run[ph] = true;
	}
	free(copy);
	return 0;
}

static int parse_pids(const char *arg)
{
	const char *p = arg;
	char *end;

	cfg.ncpu_pids = 0;
	for (;;) {
		long v;

		errno = 0;
		v = strtol(p, &end, 10);
		if (end == p || errno || v <= 0 || cfg.ncpu_pids == MAX_PIDS)
			return -1;
		cfg.cpu_pids[cfg.ncpu_pids++] = (pid_t)v;
		if (*end == '\0')
			return 0;
		if (*end != ',')
			return -1;
		p = end + 1;
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: ringfuse-mdbench [options] DIR\n"
		   "  -n N      files in total (default 1000)\n"
		   "  -t N      threads, each in its own subdirectory (default 1)\n"
		   "  -o OPS    comma-separated phases: create,stat,unlink (default all)\n"
		   "  -d SEC    run the stat phase for SEC seconds instead of one pass\n"
		   "  -L PID    a load process: stop the stat phase when it exits\n"
		   "  -P PIDS   comma-separated daemon pids: report their CPU time per phase\n"
		   "  -k        keep the files (no cleanup when unlink is not measured)\n"
		   "Prints JSON with ops/s and latency percentiles (ns) for each phase.\n");
}

static int parse_args(int argc, char *argv[])
{
	bool ops_given = false;
	char *end;
	int c;

	while ((c = getopt(argc, argv, "n:t:o:d:L:P:kh")) != -1) {
		errno = 0;
		switch (c) {
		case 'n':
			cfg.files = (unsigned int)strtoul(optarg, &end, 10);
			if (*end || errno || cfg.files == 0)
				goto bad;
			break;
		case 't':
			cfg.threads = (unsigned int)strtoul(optarg, &end, 10);
			if (*end || errno || cfg.threads == 0 || cfg.threads > MAX_THREADS)
				goto bad;
			break;
		case 'o':
			if (parse_ops(optarg) < 0)
				return -1;
			ops_given = true;
			break;
		case 'd':
			cfg.stat_seconds = strtod(optarg, &end);
			if (*end || errno || cfg.stat_seconds < 0)
				goto bad;
			break;
		case 'L':
			cfg.load_pid = (pid_t)strtol(optarg, &end, 10);
			if (*end || errno || cfg.load_pid <= 0)
				goto bad;
			break;
		case 'P':
			if (parse_pids(optarg) < 0)
				goto bad;
			break;
		case 'k':
			cfg.keep = true;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind != argc - 1) {
		usage(stderr);
		return -1;
	}
	cfg.dir = argv[optind];
	if (!ops_given)
		cfg.run[PH_CREATE] = cfg.run[PH_STAT] = cfg.run[PH_UNLINK] = true;
	if (cfg.threads > cfg.files)
		cfg.threads = cfg.files;
	return 0;
bad:
	fprintf(stderr, "mdbench: bad value for -%c: '%s'\n", c, optarg);
	return -1;
}

static int setup_workers(void)
{
	char sub[64];
	int topfd;

	topfd = open(cfg.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (topfd < 0) {
		fprintf(stderr, "mdbench: %s: %s\n", cfg.dir, strerror(errno));
		return -1;
	}
	workers = calloc(cfg.threads, sizeof(*workers));
	if (!workers) {
		fprintf(stderr, "mdbench: out of memory\n");
		close(topfd);
		return -1;
	}
	for (unsigned int t = 0; t < cfg.threads; t++) {
		struct worker *w = &workers[t];

		w->id = t;
		w->nfiles = cfg.files / cfg.threads + (t < cfg.files % cfg.threads);
		w->first = t == 0 ? 0 : workers[t - 1].first + workers[t - 1].nfiles;
		snprintf(sub, sizeof(sub), "mdb.%d.%u", (int)getpid(), t);
		if (mkdirat(topfd, sub, 0755) < 0 ||
		    (w->dirfd = openat(topfd, sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
			fprintf(stderr, "mdbench: %s/%s: %s\n", cfg.dir, sub, strerror(errno));
			close(topfd);
			return -1;
		}
	}
	close(topfd);
	return 0;
}

static void cleanup_workers(void)
{
	char sub[64];
	int topfd = open(cfg.dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	for (unsigned int t = 0; t < cfg.threads; t++) {
		close(workers[t].dirfd);
		if (cfg.keep || topfd < 0)
			continue;
		snprintf(sub, sizeof(sub), "mdb.%d.%u", (int)getpid(), t);
		unlinkat(topfd, sub, AT_REMOVEDIR);
	}
	if (topfd >= 0)
		close(topfd);
}

int main(int argc, char *argv[])
{
	double seconds[PH_COUNT] = {0}, cpu[PH_COUNT] = {0};
	bool load_at_start = false, first = true;
	struct hist *total;
	int status = 0, ret;

	if (parse_args(argc, argv) < 0)
		return 2;
	if (setup_workers() < 0)
		return 1;
	total = calloc(PH_COUNT, sizeof(*total));
	if (!total)
		return 1;
	ret = pthread_barrier_init(&barrier, NULL, cfg.threads + 1);
	if (ret) {
		fprintf(stderr, "mdbench: pthread_barrier_init: %s\n", strerror(ret));
		return 1;
	}
	for (unsigned int t = 0; t < cfg.threads; t++) {
		ret = pthread_create(&workers[t].thread, NULL, worker_main, &workers[t]);
		if (ret) {
			fprintf(stderr, "mdbench: pthread_create: %s\n", strerror(ret));
			return 1;
		}
	}

	pthread_barrier_wait(&barrier); /* setup done */
	for (int ph = 0; ph < PH_COUNT; ph++) {
		double cpu0 = 0;
		uint64_t t0;

		if (!cfg.run[ph])
			continue;
		if (ph == PH_STAT)
			load_at_start = load_running();
		if (cfg.ncpu_pids)
			cpu0 = daemon_cpu_seconds();
		t0 = now_ns();
		pthread_barrier_wait(&barrier);
		pthread_barrier_wait(&barrier);
		seconds[ph] = (double)(now_ns() - t0) / 1e9;
		if (cfg.ncpu_pids) {
			double cpu1 = daemon_cpu_seconds();

			cpu[ph] = cpu0 < 0 || cpu1 < 0 ? -1 : cpu1 - cpu0;
		}
	}
	for (unsigned int t = 0; t < cfg.threads; t++)
		pthread_join(workers[t].thread, NULL);

	for (unsigned int t = 0; t < cfg.threads; t++) {
		struct worker *w = &workers[t];

		if (w->err) {
			fprintf(stderr, "mdbench: %s/mdb.%d.%u/%s: %s\n", cfg.dir, (int)getpid(), t,
				w->errwhat, strerror(w->err));
			status = 1;
		}
		for (int ph = 0; ph < PH_COUNT; ph++)
			hist_merge(&total[ph], &w->hist[ph]);
	}

	printf("{\n  \"tool\": \"ringfuse-mdbench\",\n  \"dir\": ");
	print_json_string(cfg.dir);
	printf(",\n  \"files\": %u,\n  \"threads\": %u,\n  \"ok\": %s,\n  \"ops\": {", cfg.files,
	       cfg.threads, status ? "false" : "true");
	for (int ph = 0; ph < PH_COUNT; ph++)
		if (cfg.run[ph])
			print_phase(ph, &total[ph], seconds[ph], cpu[ph], &first);
	printf("\n  }");
	if (cfg.load_pid > 0)
		printf(",\n  \"load\": {\"pid\": %d, \"alive_at_start\": %s, \"alive_at_end\": %s}",
		       (int)cfg.load_pid, load_at_start ? "true" : "false",
		       load_running() ? "true" : "false");
	printf("\n}\n");

	cleanup_workers();
	free(total);
	free(workers);
	return status;
}
