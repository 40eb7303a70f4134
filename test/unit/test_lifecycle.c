/*
 * The life of a request on the memory transport, where a test decides every timing: replies
 * refused when they cannot be right (no reply where one is due, a reply while the request's
 * backend I/O is in flight), the whole-request I/O helpers giving up on endless EAGAIN, the
 * interrupt scanner finding requests in any number of request tables, and how the kernel's
 * CPU lists are counted.
 *
 * Exit status 0 when every check passed, 1 otherwise; each check prints one line.
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
#include <unistd.h>

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

/* ---- a filesystem whose behaviour each test sets ---- */

enum mode { M_NORMAL, M_NONE, M_IO_THEN_REPLY, M_READ_HELPER, M_HOLD };

static enum mode mode;
static rf_req *held;  /* the request of the last call, whatever mode */
static int reply_ret; /* what the extra reply of M_IO_THEN_REPLY returned */
static int io_ret;    /* what rf_io_read returned */
static char iobuf[4096];

static void io_done(rf_req *req, int res, void *arg)
{
	(void)arg;
	rf_reply_buf(req, iobuf, res > 0 ? (size_t)res : 0);
}

static void fs_getattr(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	struct stat st;

	(void)fi;
	held = req;
	memset(&st, 0, sizeof(st));
	st.st_ino = ino;
	st.st_mode = S_IFREG | 0644;
	st.st_nlink = 1;
	switch (mode) {
	case M_NONE:
		rf_reply_none(req);
		return;
	case M_HOLD:
		return;
	default:
		rf_reply_attr(req, &st, 1.0);
		return;
	}
}

static void fs_read(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	(void)ino;
	(void)fi;
	held = req;
	switch (mode) {
	case M_IO_THEN_REPLY:
		io_ret = rf_io_read(req, 0, iobuf, size, off, io_done, NULL);
		/* The bug this guards against: answering while the operation is in flight. */
		reply_ret = rf_reply_err(req, EIO);
		return;
	case M_READ_HELPER:
		io_ret = rf_io_reply_read(req, 0, size, off);
		return;
	default:
		rf_reply_buf(req, "data", 4);
		return;
	}
}

/* Calls of ops.interrupt per request (by unique), for the race below. */
#define RACE_ROUNDS 50000
#if defined(__SANITIZE_THREAD__)
#define RACE_ROUNDS_RUN 5000 /* ThreadSanitizer is some 50 times slower */
#else
#define RACE_ROUNDS_RUN RACE_ROUNDS
#endif
#define RACE_BASE 1000000 /* uniques of the race, away from the others */
static _Atomic unsigned char intr_calls[2 * RACE_ROUNDS + 64];
static _Atomic unsigned long intr_calls_elsewhere;

static void fs_interrupt(rf_req *req, void *userdata)
{
	uint64_t u = rf_req_unique(req);

	(void)userdata;
	if (u >= RACE_BASE && u - RACE_BASE < sizeof(intr_calls))
		atomic_fetch_add(&intr_calls[u - RACE_BASE], 1);
	else
		atomic_fetch_add(&intr_calls_elsewhere, 1);
}

static const struct rf_ops fs_ops = {
	.getattr = fs_getattr,
	.read = fs_read,
	.interrupt = fs_interrupt,
};

/* ---- feeding ---- */

static rf_session *se;
static struct rf_mem_reply *R;
static uint64_t next_unique = 2;
static _Alignas(8) unsigned char msg[512];

static int feed(uint32_t opcode, uint64_t nodeid, const void *arg, size_t arglen)
{
	struct fuse_in_header ih;

	memset(&ih, 0, sizeof(ih));
	ih.len = (uint32_t)(sizeof(ih) + arglen);
	ih.opcode = opcode;
	ih.unique = next_unique;
	ih.nodeid = nodeid;
	ih.pid = (uint32_t)getpid();
	next_unique += 2;
	memcpy(msg, &ih, sizeof(ih));
	if (arglen)
		memcpy(msg + sizeof(ih), arg, arglen);
	return rf_mem_feed_msg(se, msg, ih.len, R);
}

static int feed_getattr(void)
{
	struct fuse_getattr_in gi = {0};

	return feed(FUSE_GETATTR, 2, &gi, sizeof(gi));
}

static int feed_read(uint32_t size)
{
	struct fuse_read_in ri = {.fh = 1, .size = size};

	return feed(FUSE_READ, 2, &ri, sizeof(ri));
}

static void quiet(enum rf_log_level level, const char *m, void *arg)
{
	(void)level;
	(void)m;
	(void)arg;
}

/* ---- the tests ---- */

static void test_init(void)
{
	struct fuse_init_in init;
	int ret;

	memset(&init, 0, sizeof(init));
	init.major = FUSE_KERNEL_VERSION;
	init.minor = FUSE_KERNEL_MINOR_VERSION;
	init.flags = FUSE_INIT_EXT | FUSE_ASYNC_READ;
	ret = feed(FUSE_INIT, 0, &init, sizeof(init));
	CHECK(ret == 1 && R->replied && R->error == 0, "INIT answered");
}

static void test_cpu_lists(void)
{
	CHECK(rf_cpu_list_count("0-3,8-11\n") == 8,
	      "CPU list 0-3,8-11 counts 8 CPUs (num_possible_cpus), not the highest id + 1");
	CHECK(rf_cpu_list_count("0") == 1 && rf_cpu_list_count("0-1") == 2 &&
		      rf_cpu_list_count("0,2,4-5\n") == 4,
	      "CPU lists: single CPUs, ranges and mixtures");
	CHECK(rf_cpu_list_count("") == 0 && rf_cpu_list_count("x") == 0 &&
		      rf_cpu_list_count("3-1") == 0 && rf_cpu_list_count("0-") == 0,
	      "malformed CPU lists count 0 (the caller falls back)");
	CHECK(rf_possible_cpus() >= 1, "possible CPUs of this machine: %u", rf_possible_cpus());
}

static void test_reply_none_refused(void)
{
	int ret;

	mode = M_NONE;
	ret = feed_getattr();
	CHECK(ret == 1 && R->count == 1 && R->replied && R->error == -EIO,
	      "rf_reply_none() on GETATTR is refused: the caller gets EIO, not silence (%s %d)",
	      R->replied   ? "replied"
	      : R->dropped ? "dropped"
			   : "nothing",
	      R->error);
	mode = M_NORMAL;
}

static void test_reply_during_io(void)
{
	int ret;

	rf_mem_set_io_held(se, true);
	mode = M_IO_THEN_REPLY;
	memcpy(iobuf, "from the backend", 16);
	ret = feed_read(16);
	CHECK(ret == 0 && io_ret == 0 && R->count == 0,
	      "a reply while the request's backend read is in flight is not sent (%d)", ret);
	CHECK(reply_ret == -EBUSY, "that reply returns -EBUSY (%d)", reply_ret);
	ret = rf_mem_io_complete(se, 16);
	CHECK(ret == 0 && rf_mem_pending(se) == 0, "the read completes and its callback answers");
	{
		struct rf_mem_reply *last = malloc(sizeof(*last));

		CHECK(last && rf_mem_last_reply(se, last) == 0 && last->error == 0 &&
			      last->len == 16 && !memcmp(last->body, "from the backend", 16),
		      "the request got the backend's data, not the early EIO");
		free(last);
	}
	rf_mem_set_io_held(se, false);
	mode = M_NORMAL;
}

static void test_eagain_bounded(void)
{
	int rounds = 0, ret;

	rf_mem_set_io_held(se, true);
	mode = M_READ_HELPER;
	ret = feed_read(4096);
	CHECK(ret == 0 && io_ret == 0, "rf_io_reply_read() started its read");
	/* A descriptor that always says EAGAIN: the helper must give up, not spin forever. */
	while (rf_mem_pending(se) && rounds < 1000) {
		if (rf_mem_io_complete(se, -EAGAIN) < 0)
			break;
		rounds++;
	}
	CHECK(rf_mem_pending(se) == 0 && rounds < 1000,
	      "endless EAGAIN ends the request after %d tries", rounds);
	{
		struct rf_mem_reply *last = malloc(sizeof(*last));

		CHECK(last && rf_mem_last_reply(se, last) == 0 && last->error == -EAGAIN,
		      "and it is answered EAGAIN (%d)", last ? last->error : 0);
		free(last);
	}
	/* One short read, then EAGAIN, then the rest: transient EAGAIN is still retried. */
	ret = feed_read(100);
	rf_mem_io_complete(se, 40);
	rf_mem_io_complete(se, -EAGAIN);
	rf_mem_io_complete(se, 60);
	CHECK(ret == 0 && rf_mem_pending(se) == 0, "a transient EAGAIN is retried");
	{
		struct rf_mem_reply *last = malloc(sizeof(*last));

		CHECK(last && rf_mem_last_reply(se, last) == 0 && last->error == 0 &&
			      last->len == 100,
		      "and the read is answered whole (%zu bytes)", last ? last->len : 0);
		free(last);
	}
	rf_mem_set_io_held(se, false);
	mode = M_NORMAL;
}

static uint64_t dups(void)
{
	struct rf_stats *st = malloc(sizeof(*st));
	uint64_t n = 0;

	if (st && rf_session_stats(se, st) == 0)
		n = st->total.dup_replies;
	free(st);
	return n;
}

/* A reply through the handle of an answered request, after its slot took a new request. */
static void test_stale_reply(void)
{
	struct rf_mem_reply *last = malloc(sizeof(*last));
	rf_req *a, *b;
	uint64_t dup0 = dups(), unique_b;
	size_t cap;
	int ret;

	mode = M_HOLD;
	ret = feed_getattr();
	a = held;
	CHECK(ret == 0 && a && rf_req_unique(a) == next_unique - 2,
	      "request A held; rf_req_unique() names it");
	CHECK(rf_reply_err(a, 0) == 0 && rf_mem_pending(se) == 0, "A answered");
	ret = feed_getattr();
	b = held;
	unique_b = next_unique - 2;
	CHECK(ret == 0 && b && rf_req_untag(a) == rf_req_untag(b),
	      "request B held in the slot A had");
	CHECK(a != b && rf_req_unique(a) == 0 && rf_req_unique(b) == unique_b,
	      "A's handle is stale (unique 0), B's names B");
	ret = rf_reply_err(a, EIO);
	CHECK(ret == -EALREADY && rf_mem_pending(se) == 1,
	      "the stale reply through A is refused (%d); B is still waiting", ret);
	CHECK(dups() == dup0 + 1, "and counted as a duplicate reply");
	CHECK(rf_reply_payload(a, &cap) == NULL && cap == 0 && !rf_req_interrupted(a) &&
		      rf_req_ctx(a)->uid == (uid_t)-1 &&
		      rf_add_direntry(a, iobuf, sizeof(iobuf), "x", NULL, 1) == SIZE_MAX &&
		      rf_io_read(a, 0, iobuf, 1, 0, io_done, NULL) == -EINVAL,
	      "a stale handle gets no reply area, no context, no direntry, no I/O");
	CHECK(rf_req_ctx(b)->pid == getpid() && rf_reply_payload(b, &cap) != NULL,
	      "B's handle works");
	{
		struct stat st = {.st_ino = 77, .st_mode = S_IFREG | 0600, .st_nlink = 1};

		ret = rf_reply_attr(b, &st, 1.0);
	}
	CHECK(ret == 0 && last && rf_mem_last_reply(se, last) == 0 && last->unique == unique_b &&
		      last->error == 0 && last->len == sizeof(struct fuse_attr_out),
	      "B gets its own answer");
	free(last);
	mode = M_NORMAL;
}

/*
 * An interrupt and its request, fed at the same moment from two threads, over and over: the
 * interrupt scan and the request's begin race. Every request must end up interrupted, and
 * ops.interrupt must run once for each, whichever side won.
 */
struct racer {
	_Atomic unsigned int go, done;
	uint64_t unique;
	rf_req *held;
};

static struct racer race;

/* Wait for *v == want: spin (the race needs both threads running at once), but yield after a
 * while, as the machine may have fewer free CPUs than threads. */
static void await(_Atomic unsigned int *v, unsigned int want)
{
	for (unsigned int n = 0; atomic_load(v) != want; n++)
		if (n > 20000)
			sched_yield();
}

static void race_feed(uint32_t opcode, uint64_t unique, const void *arg, size_t arglen)
{
	_Alignas(8) unsigned char buf[128];
	struct fuse_in_header ih;

	memset(&ih, 0, sizeof(ih));
	ih.len = (uint32_t)(sizeof(ih) + arglen);
	ih.opcode = opcode;
	ih.unique = unique;
	ih.nodeid = 2;
	memcpy(buf, &ih, sizeof(ih));
	memcpy(buf + sizeof(ih), arg, arglen);
	while (rf_mem_feed_msg(se, buf, ih.len, NULL) == -EBUSY)
		;
}

static void *interrupter(void *arg)
{
	(void)arg;
	for (unsigned int round = 1; round <= RACE_ROUNDS_RUN; round++) {
		struct fuse_interrupt_in ii;

		await(&race.go, round);
		ii.unique = race.unique;
		race_feed(FUSE_INTERRUPT, race.unique + 1, &ii, sizeof(ii));
		atomic_store(&race.done, round);
	}
	return NULL;
}

static void test_interrupt_race(void)
{
	struct fuse_getattr_in gi = {0};
	unsigned long missed = 0, twice = 0;
	pthread_t t;

	mode = M_HOLD;
	atomic_store(&intr_calls_elsewhere, 0);
	pthread_create(&t, NULL, interrupter, NULL);
	for (unsigned int round = 1; round <= RACE_ROUNDS_RUN; round++) {
		race.unique = RACE_BASE + 2 * round + 1;
		atomic_store(&race.go, round);
		if (round & 1)
			sched_yield(); /* sometimes the interrupt goes first, sometimes not */
		race_feed(FUSE_GETATTR, race.unique, &gi, sizeof(gi));
		await(&race.done, round);
		if (!rf_req_interrupted(held))
			missed++;
		rf_reply_err(held, EINTR);
	}
	pthread_join(t, NULL);
	for (unsigned int round = 1; round <= RACE_ROUNDS_RUN; round++) {
		unsigned int n = atomic_load(&intr_calls[2 * round + 1]);

		if (n == 0)
			missed++;
		else if (n > 1)
			twice++;
	}
	CHECK(missed == 0 && twice == 0 && atomic_load(&intr_calls_elsewhere) == 0,
	      "%d interrupts racing their requests: none lost (%lu), none delivered twice (%lu)",
	      RACE_ROUNDS_RUN, missed, twice);
	CHECK(rf_mem_pending(se) == 0 && rf_intr_pending(se) == 0,
	      "nothing left pending (%u requests, %u interrupts)", rf_mem_pending(se),
	      rf_intr_pending(se));
	mode = M_NORMAL;
}

#define MANY_TABLES 1500

/* The interrupt scanner sees requests in every table, however many there are. */
static void test_many_tables(void)
{
	struct dummy {
		RF_REQ_ALIGNED rf_req req;
	} *dummies = aligned_alloc(RF_REQ_ALIGN, MANY_TABLES * sizeof(struct dummy));
	rf_req *last = &dummies[MANY_TABLES - 1].req, *h;
	struct fuse_in_header ih = {.opcode = FUSE_GETATTR, .unique = 999999, .nodeid = 2};
	struct fuse_interrupt_in ii = {.unique = ih.unique};
	int ret, ok = 1;

	if (!dummies) {
		CHECK(0, "out of memory");
		return;
	}
	memset(dummies, 0, MANY_TABLES * sizeof(struct dummy));
	for (int i = 0; i < MANY_TABLES; i++)
		ok &= rf_session_register_reqs(se, &dummies[i].req, 1, sizeof(struct dummy)) == 0;
	CHECK(ok, "%d more request tables registered", MANY_TABLES);
	/* A request in the last table, as a transport would begin it. */
	last->stats = &se->dev_stats;
	h = rf_req_begin(last, se, &ih);
	ret = feed(FUSE_INTERRUPT, 0, &ii, sizeof(ii));
	CHECK(ret == 1 && rf_req_interrupted(h), "an interrupt finds a request in table %d",
	      MANY_TABLES + 1);
	rf_req_set_free(last);
	for (int i = 0; i < MANY_TABLES; i++)
		rf_session_unregister_reqs(se, &dummies[i].req);
	free(dummies);
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	unsetenv("RINGFUSE_ABORT_ON_MISUSE");
	rf_set_log(quiet, NULL);
	R = malloc(sizeof(*R));
	se = rf_mem_session_new(&fs_ops, sizeof(fs_ops), NULL);
	if (!se || !R) {
		printf("FAIL - setup\n");
		return 1;
	}
	test_init();
	test_cpu_lists();
	test_reply_none_refused();
	test_reply_during_io();
	test_stale_reply();
	test_eagain_bounded();
	test_many_tables();
	test_interrupt_race();
	rf_mem_session_destroy(se);
	free(R);
	printf("%d/%d checks passed\n", checks - failures, checks);
	return failures ? 1 : 0;
}
