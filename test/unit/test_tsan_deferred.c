/*
 * Deferred replies from foreign threads, on the memory transport: a test written for
 * ThreadSanitizer (meson setup -Dtsan=true), which also has to pass in every other build.
 *
 * The feeding thread (the "queue thread") sends a stream of requests while worker threads
 * answer them:
 *   GETATTR   deferred: a worker answers with rf_reply_attr() while new requests arrive
 *   READ      deferred: a worker fills rf_reply_payload() and sends it with rf_reply_data();
 *             some fed in the io-uring layout, where that buffer is the request's own
 *   FORGET    deferred: a worker finishes it with rf_reply_none()
 *   LOOKUP    a duplicate-reply race: two workers and the handler itself answer at once;
 *             exactly one reply must win and the others get -EALREADY (the handler waits for
 *             the racers, so the request object is not reused while they run)
 *   INTERRUPT for a request that may be being answered by a worker at that moment
 * A monitor thread reads the counters and the last reply all along. At the end every request
 * must have had exactly one answer: one winning reply per request, as many answers recorded
 * by the transport as requests fed, none pending, and as many refused replies counted by the
 * library as the racers lost.
 *
 * RINGFUSE_TSAN_REQUESTS sets the number of requests (default 20000).
 */
#include "ringfuse_i.h"
#include "transport/mem.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NWORKERS 4
#define QCAP	 64 /* > RF_MEM_SLOTS * 2: a push never waits */

static int checks, failures;

#define CHECK(cond, ...)                                              \
	do {                                                          \
		checks++;                                             \
		if (cond) {                                           \
			printf("ok   - ");                            \
		} else {                                              \
			failures++;                                   \
			printf("FAIL - %s:%d: ", __FILE__, __LINE__); \
		}                                                     \
		printf(__VA_ARGS__);                                  \
		printf("\n");                                         \
	} while (0)

/* ---- work queue to the workers ---- */

enum job_kind { JOB_STOP, JOB_ATTR, JOB_DATA, JOB_NONE, JOB_RACE };

struct race {
	rf_req *req;
	uint64_t id;	     /* the request's node id (req is a handle, not a struct to read) */
	_Atomic int arrived; /* racers that picked the job up (the handler counts too) */
	_Atomic int done;
	int result[3]; /* what each party's reply returned */
	int err[3];    /* the errno each party answered with (0: rf_reply_entry) */
};

struct job {
	enum job_kind kind;
	rf_req *req;
	uint64_t id; /* the request's node id: its index in the wins table */
	size_t size;
	struct race *race;
	int slot; /* racer index */
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job q[QCAP];
	unsigned int head, tail;
} wq = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, {{0}}, 0, 0};

static void push(struct job j)
{
	pthread_mutex_lock(&wq.lock);
	if (wq.tail - wq.head >= QCAP) {
		fprintf(stderr, "work queue overflow\n");
		abort();
	}
	wq.q[wq.tail++ % QCAP] = j;
	pthread_cond_signal(&wq.cond);
	pthread_mutex_unlock(&wq.lock);
}

static struct job pop(void)
{
	struct job j;

	pthread_mutex_lock(&wq.lock);
	while (wq.head == wq.tail)
		pthread_cond_wait(&wq.cond, &wq.lock);
	j = wq.q[wq.head++ % QCAP];
	pthread_mutex_unlock(&wq.lock);
	return j;
}

/* ---- bookkeeping ---- */

static _Atomic unsigned char *wins; /* per request id: replies that returned 0 */
static _Atomic unsigned long losers, bad_returns, race_mismatch;
static _Atomic int stop_monitor;

static void won(uint64_t id, int ret)
{
	if (ret == 0)
		atomic_fetch_add(&wins[id], 1);
	else if (ret == -EALREADY)
		atomic_fetch_add(&losers, 1);
	else
		atomic_fetch_add(&bad_returns, 1);
}

static struct rf_entry_param entry_of(uint64_t id)
{
	struct rf_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = id + 100;
	e.attr.st_ino = id + 100;
	e.attr.st_mode = S_IFREG | 0644;
	e.attr.st_nlink = 1;
	e.entry_timeout = e.attr_timeout = 1.0;
	return e;
}

/* One party of a duplicate-reply race: wait for the others, then answer. */
static void race_reply(struct race *r, int slot)
{
	struct rf_entry_param e;

	atomic_fetch_add(&r->arrived, 1);
	while (atomic_load(&r->arrived) < 3)
		sched_yield();
	if (r->err[slot] == 0) {
		e = entry_of(r->id);
		r->result[slot] = rf_reply_entry(r->req, &e);
	} else {
		r->result[slot] = rf_reply_err(r->req, r->err[slot]);
	}
	atomic_fetch_add(&r->done, 1);
}

static void *worker(void *arg)
{
	unsigned int k = 0;

	(void)arg;
	for (;;) {
		struct job j = pop();

		/* Now and then a slow answer, so every slot gets held and freed from here. */
		if (j.kind != JOB_RACE && ++k % 16 == 0) {
			struct timespec ts = {0, 50000};

			nanosleep(&ts, NULL);
		}

		switch (j.kind) {
		case JOB_STOP:
			return NULL;
		case JOB_ATTR: {
			struct stat st;

			memset(&st, 0, sizeof(st));
			st.st_ino = j.id;
			st.st_mode = S_IFREG | 0600;
			st.st_nlink = rf_req_interrupted(j.req) ? 2 : 1;
			won(j.id, rf_reply_attr(j.req, &st, 1.0));
			break;
		}
		case JOB_DATA: {
			size_t cap;
			char *buf = rf_reply_payload(j.req, &cap);
			size_t n = j.size < cap ? j.size : cap;

			memset(buf, (int)(j.id & 0xff), n);
			won(j.id, rf_reply_data(j.req, n));
			break;
		}
		case JOB_NONE:
			rf_reply_none(j.req);
			atomic_fetch_add(&wins[j.id], 1); /* rf_reply_none() returns nothing */
			break;
		case JOB_RACE:
			race_reply(j.race, j.slot);
			break;
		}
	}
}

/* ---- the filesystem ---- */

static void fs_getattr(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	(void)fi;
	push((struct job){.kind = JOB_ATTR, .req = req, .id = ino});
}

static void fs_read(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	(void)off;
	(void)fi;
	push((struct job){.kind = JOB_DATA, .req = req, .id = ino, .size = size});
}

static void fs_forget(rf_req *req, rf_ino ino, uint64_t nlookup)
{
	(void)nlookup;
	push((struct job){.kind = JOB_NONE, .req = req, .id = ino});
}

static unsigned int race_rounds;
static int race_expect; /* error of the winning reply of the last race (1: no winner) */

static void fs_lookup(rf_req *req, rf_ino parent, const char *name)
{
	struct race r;
	int nwin = 0, nlose = 0, winner = -1;

	(void)name;
	memset(&r, 0, sizeof(r));
	r.req = req;
	r.id = parent;
	/* Each round a different party answers with a body, the others with errors. */
	r.err[0] = ENOENT;
	r.err[1] = EACCES;
	r.err[2] = EPERM;
	r.err[race_rounds++ % 3] = 0;
	push((struct job){.kind = JOB_RACE, .race = &r, .slot = 0});
	push((struct job){.kind = JOB_RACE, .race = &r, .slot = 1});
	race_reply(&r, 2);
	while (atomic_load(&r.done) < 3)
		sched_yield();
	for (int i = 0; i < 3; i++) {
		if (r.result[i] == 0) {
			nwin++;
			winner = i;
		} else if (r.result[i] == -EALREADY) {
			nlose++;
		}
	}
	if (nwin != 1 || nlose != 2)
		atomic_fetch_add(&race_mismatch, 1);
	atomic_fetch_add(&wins[parent], (unsigned char)nwin);
	atomic_fetch_add(&losers, (unsigned long)nlose);
	/* The handler runs on the feeding thread: tell it which answer must have been given. */
	race_expect = winner >= 0 ? -r.err[winner] : 1;
}

static _Atomic unsigned long interrupts_seen;

static void fs_interrupt(rf_req *req, void *userdata)
{
	(void)userdata;
	if (rf_req_interrupted(req))
		atomic_fetch_add(&interrupts_seen, 1);
}

static const struct rf_ops ops = {
	.lookup = fs_lookup,
	.forget = fs_forget,
	.getattr = fs_getattr,
	.read = fs_read,
	.interrupt = fs_interrupt,
};

/* ---- the feeder ---- */

static void *monitor(void *arg)
{
	rf_session *se = arg;
	struct rf_mem_reply *r = malloc(sizeof(*r));
	struct rf_stats *st = malloc(sizeof(*st));

	while (r && st && !atomic_load(&stop_monitor)) {
		rf_mem_replies(se);
		rf_mem_pending(se);
		rf_mem_last_reply(se, r);
		rf_session_stats(se, st);
		sched_yield();
	}
	free(st);
	free(r);
	return NULL;
}

static void quiet(enum rf_log_level level, const char *msg, void *arg)
{
	(void)level;
	(void)msg;
	(void)arg;
}

static _Alignas(8) unsigned char msg[256];

static size_t build(uint32_t opcode, uint64_t unique, uint64_t nodeid, const void *arg,
		    size_t arglen, const char *name)
{
	struct fuse_in_header ih;
	size_t len = sizeof(ih) + arglen + (name ? strlen(name) + 1 : 0);

	memset(&ih, 0, sizeof(ih));
	ih.len = (uint32_t)len;
	ih.opcode = opcode;
	ih.unique = unique;
	ih.nodeid = nodeid;
	ih.pid = 1;
	memcpy(msg, &ih, sizeof(ih));
	if (arglen)
		memcpy(msg + sizeof(ih), arg, arglen);
	if (name)
		memcpy(msg + sizeof(ih) + arglen, name, strlen(name) + 1);
	return len;
}

int main(void)
{
	const char *env = getenv("RINGFUSE_TSAN_REQUESTS");
	unsigned long n = env ? strtoul(env, NULL, 0) : 20000;
	struct rf_mem_reply *out = malloc(sizeof(*out));
	pthread_t workers[NWORKERS], mon;
	unsigned long fed = 0, busy = 0, sync_answers = 0, race_wrong = 0, bad_feeds = 0;
	unsigned long interrupts = 0, multi = 0;
	struct fuse_init_in init;
	rf_session *se;
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (n < 10)
		n = 10;
	wins = calloc(n + 1, sizeof(*wins));
	se = rf_mem_session_new(&ops, sizeof(ops), NULL);
	if (!se || !out || !wins) {
		printf("FAIL - setup\n");
		return 1;
	}
	rf_set_log(quiet, NULL);
	memset(&init, 0, sizeof(init));
	init.major = FUSE_KERNEL_VERSION;
	init.minor = FUSE_KERNEL_MINOR_VERSION;
	init.flags = FUSE_INIT_EXT | FUSE_ASYNC_READ;
	ret = rf_mem_feed_msg(se, msg, build(FUSE_INIT, 1, 0, &init, sizeof(init), NULL), out);
	CHECK(ret == 1 && out->error == 0, "INIT answered (%d, error %d)", ret, out->error);

	for (int i = 0; i < NWORKERS; i++)
		pthread_create(&workers[i], NULL, worker, NULL);
	pthread_create(&mon, NULL, monitor, se);

	/* Request id i has unique i + 1 (INIT was 1) and node id i. */
	for (uint64_t id = 1; id <= n; id++) {
		uint64_t unique = id + 1;
		size_t len;
		uint32_t op;

		switch (id % 8) {
		case 0:
		case 3: {
			struct fuse_read_in ri = {.fh = 1, .size = 512 + (uint32_t)(id % 3000)};

			op = FUSE_READ;
			len = build(op, unique, id, &ri, sizeof(ri), NULL);
			break;
		}
		case 5: {
			struct fuse_forget_in fi = {.nlookup = 1};

			op = FUSE_FORGET;
			len = build(op, unique, id, &fi, sizeof(fi), NULL);
			break;
		}
		case 6:
			op = FUSE_LOOKUP;
			len = build(op, unique, id, NULL, 0, "racer");
			break;
		case 7: {
			/* Names a deferred request: a worker may be answering it right now. */
			struct fuse_interrupt_in ii = {.unique = unique - 4};

			op = FUSE_INTERRUPT;
			len = build(op, unique, 0, &ii, sizeof(ii), NULL);
			interrupts++;
			atomic_fetch_add(&wins[id], 1); /* answered by the library (a drop) */
			break;
		}
		default: {
			struct fuse_getattr_in gi = {0};

			op = FUSE_GETATTR;
			len = build(op, unique, id, &gi, sizeof(gi), NULL);
			break;
		}
		}
		/* A quarter of the READs in the ring layout: the worker's reply lands in the buffer
		 * that carried the request's payload. */
		while ((ret = (op == FUSE_READ && id % 16 == 3)
				      ? rf_mem_feed_split(se, (struct fuse_in_header *)msg,
							  msg + sizeof(struct fuse_in_header),
							  sizeof(struct fuse_read_in), NULL, 0, out)
				      : rf_mem_feed_msg(se, msg, len, out)) == -EBUSY) {
			busy++;
			sched_yield();
		}
		fed++;
		if (ret < 0) {
			bad_feeds++;
			continue;
		}
		if (ret == 1) {
			sync_answers++;
			if (out->count != 1)
				multi++;
		}
		if (op == FUSE_LOOKUP) {
			/* The handler waited for the race: the winner's answer is the one given,
			 * and a loser wrote nothing over it. */
			if (ret != 1 || out->count != 1 || out->error != race_expect ||
			    out->len != (out->error ? 0 : sizeof(struct fuse_entry_out)))
				race_wrong++;
		}
	}

	/* Everything deferred must come back. */
	for (int i = 0; i < 30000 && rf_mem_pending(se); i++) {
		struct timespec ts = {0, 1000000};

		nanosleep(&ts, NULL);
	}
	atomic_store(&stop_monitor, 1);
	pthread_join(mon, NULL);
	for (int i = 0; i < NWORKERS; i++)
		push((struct job){.kind = JOB_STOP});
	for (int i = 0; i < NWORKERS; i++)
		pthread_join(workers[i], NULL);

	{
		unsigned long zero = 0, twice = 0;
		uint64_t dups = rf_session_totals(se).dup_replies;
		uint64_t deferred = rf_session_totals(se).deferred;

		for (uint64_t id = 1; id <= n; id++) {
			unsigned char w = atomic_load(&wins[id]);

			if (w == 0)
				zero++;
			else if (w > 1)
				twice++;
		}
		CHECK(bad_feeds == 0,
		      "%lu requests fed (%lu times every slot was busy), none refused", fed, busy);
		CHECK(rf_mem_pending(se) == 0, "no request left pending (%u)", rf_mem_pending(se));
		CHECK(zero == 0 && twice == 0,
		      "every request won exactly one reply (%lu without, %lu with several)", zero,
		      twice);
		CHECK(rf_mem_replies(se) == fed + 1,
		      "the transport saw one answer per request (%lu answers, %lu requests + INIT)",
		      rf_mem_replies(se), fed);
		CHECK(multi == 0, "no synchronous answer was recorded twice (%lu)", multi);
		CHECK(atomic_load(&race_mismatch) == 0,
		      "every duplicate-reply race had one winner and two -EALREADY (%lu bad races)",
		      atomic_load(&race_mismatch));
		CHECK(race_wrong == 0,
		      "each race's answer reached the kernel once, well formed (%lu)", race_wrong);
		CHECK(atomic_load(&bad_returns) == 0,
		      "deferred replies returned 0 or -EALREADY only (%lu others)",
		      atomic_load(&bad_returns));
		CHECK(dups == atomic_load(&losers),
		      "the library counted every refused reply (%" PRIu64 " counted, %lu lost)",
		      dups, atomic_load(&losers));
		printf("# %lu answered before their feed returned, %" PRIu64
		       " deferred, %lu interrupts (%lu found their target)\n",
		       sync_answers, deferred, interrupts, atomic_load(&interrupts_seen));
	}

	rf_mem_session_destroy(se);
	free(wins);
	free(out);
	printf("%d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
