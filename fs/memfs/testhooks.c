/*
 * memfs test hooks (-o test_*): deliberate misbehaviour and controllable timing, so the mount
 * tests can prove what the library does when a filesystem blocks, answers twice or answers
 * wrongly. Test-only: nothing here is meant for real use, and without a test_* option the
 * operations table is not touched at all.
 *
 *   test_block=NAME        a lookup of NAME blocks the thread that received it (so its queue
 *                          serves nothing else) until the control socket's "release" command,
 *                          at most 30 s; after a release, lookups of NAME pass again
 *   test_stale_reply=NAME  a lookup of NAME is answered as usual, then its rf_req * is kept
 *                          and answered again (EIO) at the start of each of the next 200
 *                          lookups, getattrs and reads, wherever their requests sit
 *   test_reply_none=NAME   a lookup of NAME is finished with rf_reply_none(), which a lookup
 *                          does not allow
 *   test_linger_ms=N       after rf_session_run() returns, wait N ms before anything else
 *                          (deferred replies still owed come after that), as a program that
 *                          goes on with other work would
 *   test_log_interrupts    only what all of them do:
 *
 * With any of them, every call of ops.interrupt is logged on stderr as
 * "memfs-test: interrupt #UNIQUE" (rf_req_unique()) and lookups that block log
 * "memfs-test: blocked in lookup of NAME", so tests can wait for and count them.
 */
#include "memfs.h"

#define HOOK_BLOCK_MAX_S 30
#define HOOK_STALE_TIMES 200

static struct rf_ops inner; /* the table the hooks wrap */

static struct {
	char *block, *stale, *reply_none; /* the names, or NULL */
	unsigned int linger_ms;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool released; /* under lock */
	rf_req *_Atomic stale_req;
	_Atomic int stale_left;
} hk = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static bool is(const char *name, const char *hook)
{
	return hook && !strcmp(name, hook);
}

/* Answer the kept request again, as a buggy filesystem would. */
static void stale_fire(void)
{
	rf_req *h = atomic_load(&hk.stale_req);

	if (h && atomic_fetch_sub(&hk.stale_left, 1) > 0)
		rf_reply_err(h, EIO);
}

static void block_here(const char *name)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += HOOK_BLOCK_MAX_S;
	pthread_mutex_lock(&hk.lock);
	if (!hk.released) {
		fprintf(stderr, "memfs-test: blocked in lookup of %s\n", name);
		while (!hk.released)
			if (pthread_cond_timedwait(&hk.cond, &hk.lock, &until) == ETIMEDOUT)
				break;
	}
	pthread_mutex_unlock(&hk.lock);
}

void hooks_release(void)
{
	pthread_mutex_lock(&hk.lock);
	hk.released = true;
	pthread_cond_broadcast(&hk.cond);
	pthread_mutex_unlock(&hk.lock);
}

static void h_lookup(rf_req *req, rf_ino parent, const char *name)
{
	stale_fire();
	if (is(name, hk.block))
		block_here(name);
	if (is(name, hk.reply_none)) {
		rf_reply_none(req);
		return;
	}
	inner.lookup(req, parent, name);
	if (is(name, hk.stale)) {
		atomic_store(&hk.stale_left, HOOK_STALE_TIMES);
		atomic_store(&hk.stale_req, req);
	}
}

static void h_getattr(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	stale_fire();
	inner.getattr(req, ino, fi);
}

static void h_read(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	stale_fire();
	inner.read(req, ino, size, off, fi);
}

static void h_interrupt(rf_req *req, void *userdata)
{
	fprintf(stderr, "memfs-test: interrupt #%llu\n", (unsigned long long)rf_req_unique(req));
	if (inner.interrupt)
		inner.interrupt(req, userdata);
}

bool want_test_hooks(int argc, char *argv[])
{
	for (int i = 1; i < argc; i++)
		if (strstr(argv[i], "test_"))
			return true;
	return false;
}

void hooks_wrap(struct rf_ops *ops)
{
	inner = *ops;
	ops->lookup = h_lookup;
	ops->getattr = h_getattr;
	ops->read = h_read;
	ops->interrupt = h_interrupt;
}

static int take(rf_session *se, const char *key, char **out)
{
	const char *v = rf_session_opt(se, key);

	if (!v)
		return 0;
	if (!*v || strchr(v, '/')) {
		fprintf(stderr, "memfs: bad %s=%s (a file name)\n", key, v);
		return -EINVAL;
	}
	*out = strdup(v);
	return *out ? 0 : -ENOMEM;
}

int hooks_configure(rf_session *se)
{
	int err = take(se, "test_block", &hk.block);

	if (!err)
		err = take(se, "test_stale_reply", &hk.stale);
	if (!err)
		err = take(se, "test_reply_none", &hk.reply_none);
	rf_session_opt(se, "test_log_interrupts"); /* a flag: asking is taking it */
	if (!err) {
		const char *v = rf_session_opt(se, "test_linger_ms");
		char *end;

		if (v) {
			unsigned long ms = strtoul(v, &end, 10);

			if (!*v || *end || ms > 60000) {
				fprintf(stderr, "memfs: bad test_linger_ms=%s\n", v);
				return -EINVAL;
			}
			hk.linger_ms = (unsigned int)ms;
		}
	}
	return err;
}

void hooks_after_run(void)
{
	if (hk.linger_ms)
		usleep(hk.linger_ms * 1000u);
}

void hooks_free(void)
{
	free(hk.block);
	free(hk.stale);
	free(hk.reply_none);
	hk.block = hk.stale = hk.reply_none = NULL;
}
