/*
 * Running the library under another API (see embed.h): sessions built from option lists,
 * mounting, serving and unmounting as separate steps, and a reply channel for loops that read
 * /dev/fuse themselves.
 *
 * Serving reuses the pieces rf_session_run() is made of (rf_session_prepare(), rf_mount(),
 * rf_dev_serve(), the transport's stop and destroy) in the order an embedding API needs them;
 * a change to how rf_session_run() ends a session belongs in rf_embed_serve() too.
 *
 * The caller's loop: each message gets a slot holding its rf_req and a reply area (header and
 * body, one write). Slots come from a free list under a mutex (the caller already pays a read
 * and a write per request; the list is touched twice), grow in chunks while handlers hold them
 * (a loop whose handlers reply later, as Python's async ones do, may hold many), and are given
 * back by whichever thread replies.
 */
#include "embed.h"
#include "ringfuse_i.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The session whose rf_embed_serve() or caller loop runs, so rf_embed_exit() knows whom to
 * wake (one running session per process, as for rf_session_run()). */
static rf_session *_Atomic serving;
static struct sigaction saved_wake;
static bool wake_installed;

static void on_wake(int sig)
{
	(void)sig;
}

/* The serving thread blocks in read(): SIGUSR2 without SA_RESTART makes it return EINTR. */
static void install_wake(rf_session *se)
{
	struct sigaction sa = {0};

	se->main_thread = pthread_self();
	if (wake_installed)
		return;
	sa.sa_handler = on_wake;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGUSR2, &sa, &saved_wake) == 0)
		wake_installed = true;
}

rf_session *rf_embed_new(const struct rf_ops *ops, size_t ops_size, void *userdata,
			 const char *progname)
{
	rf_session *se = calloc(1, sizeof(*se));

	if (!se)
		return NULL;
	se->fd = -1;
	se->serve_wake = -1;
	pthread_mutex_init(&se->lock, NULL);
	if (ops_size > sizeof(se->ops))
		ops_size = sizeof(se->ops);
	memcpy(&se->ops, ops, ops_size);
	se->userdata = userdata;
	rf_opts_defaults(&se->opts);
	se->progname = strdup(progname && *progname ? progname : "ringfuse");
	if (!se->progname) {
		rf_session_destroy(se);
		return NULL;
	}
	return se;
}

int rf_embed_opts(rf_session *se, const char *list, const char *origin)
{
	int ret;

	if (!list || !*list)
		return 0;
	ret = rf_opts_parse_list(&se->opts, list);
	if (ret == 0 && se->opts.extra) {
		rf_log(RF_LOG_ERR, "ringfuse: %s: unknown option(s) '%s'", origin, se->opts.extra);
		ret = -EINVAL;
	}
	free(se->opts.extra);
	se->opts.extra = NULL;
	return ret;
}

int rf_embed_mount(rf_session *se, const char *mountpoint)
{
	int ret;

	if (se->fd >= 0)
		return -EBUSY;
	free(se->mountpoint);
	se->mountpoint = strdup(mountpoint);
	if (!se->mountpoint)
		return -ENOMEM;
	ret = rf_session_prepare(se);
	if (ret == 0)
		ret = rf_mount(se);
	return ret;
}

int rf_embed_adopt_fd(rf_session *se, int fd)
{
	int ret;

	if (se->fd >= 0)
		return -EBUSY;
	ret = rf_session_prepare(se);
	if (ret == 0)
		se->fd = fd;
	return ret;
}

int rf_embed_fd(const rf_session *se)
{
	return se->fd;
}

void rf_embed_unmount(rf_session *se)
{
	rf_unmount(se);
	/* As at the end of rf_session_run(): the connection ends here, and the number stays on
	 * /dev/null until the session is destroyed, for late replies (lib/transport/README.md). */
	if (se->fd >= 0) {
		atomic_store(&se->conn_gone, true);
		rf_retire_fd(se->fd);
	}
}

int rf_embed_serve(rf_session *se, bool one_thread)
{
	bool leaked = false;
	int ret = 0;

	if (se->fd < 0)
		return -ENOTCONN;
	se->opts.single_thread = one_thread;
	install_wake(se);
	atomic_store(&serving, se);
	if (!atomic_load(&se->exiting))
		ret = rf_dev_serve(se, se->fd, 0, &se->dev_stats, &leaked);
	if (ret == 0 && se->serve_here && se->tp && se->tp->serve)
		ret = se->tp->serve(se);
	atomic_store(&serving, NULL);
	if (ret < 0) {
		int none = 0;

		atomic_compare_exchange_strong(&se->exit_status, &none, ret);
	}
	/* As rf_session_run(): a clean stop delivers what is still owed first. */
	if (!atomic_load(&se->conn_gone) && !atomic_load(&se->failed) && se->tp && se->tp->drain)
		se->tp->drain(se, rf_session_drain_deadline(se));
	if (se->tp && se->tp->stop)
		se->tp->stop(se);
	if (se->tp && se->tp->destroy)
		se->tp->destroy(se);
	return atomic_load(&se->exit_status);
}

void rf_embed_exit(rf_session *se)
{
	atomic_store(&se->exiting, true);
	rf_session_wake_serve(se);
	if (atomic_load(&serving) == se && !pthread_equal(pthread_self(), se->main_thread))
		pthread_kill(se->main_thread, SIGUSR2);
}

bool rf_embed_exiting(const rf_session *se)
{
	return atomic_load(&se->exiting);
}

void rf_embed_reset(rf_session *se)
{
	if (!atomic_load(&se->conn_gone))
		atomic_store(&se->exiting, false);
}

void rf_embed_destroy(rf_session *se)
{
	if (!se)
		return;
	if (atomic_load(&serving) == se)
		atomic_store(&serving, NULL);
	if (wake_installed) {
		sigaction(SIGUSR2, &saved_wake, NULL);
		wake_installed = false;
	}
	rf_session_destroy(se);
}

/* ---- the caller's loop ---- */

#define CHAN_CHUNK	 16
#define CHAN_DRAIN_TRIES 100 /* x 10 ms */

struct chan_slot {
	RF_REQ_ALIGNED rf_req req;
	struct rf_embed_chan *ch;
	struct chan_slot *next_free;
	struct fuse_out_header *oh; /* reply header, the body follows it */
};

struct chan_chunk {
	struct chan_chunk *next;
	struct chan_slot slot[CHAN_CHUNK];
};

struct rf_embed_chan {
	rf_session *se;
	size_t out_cap; /* body bytes of a reply area */
	pthread_mutex_t lock;
	struct chan_slot *free; /* under lock */
	struct chan_chunk *chunks;
	_Atomic unsigned int held; /* slots out of the free list */
};

static size_t area_size(const struct rf_embed_chan *ch)
{
	return sizeof(struct fuse_out_header) + ch->out_cap;
}

static void slot_put(struct chan_slot *s)
{
	struct rf_embed_chan *ch = s->ch;

	rf_req_set_free(&s->req);
	pthread_mutex_lock(&ch->lock);
	s->next_free = ch->free;
	ch->free = s;
	atomic_fetch_sub(&ch->held, 1);
	pthread_mutex_unlock(&ch->lock);
}

static int chan_send(rf_req *req, int error, size_t len)
{
	struct chan_slot *s = req->chan;
	struct iovec iov = {s->oh, sizeof(*s->oh) + len};
	int ret;

	s->oh->unique = req->unique;
	s->oh->error = error;
	s->oh->len = (uint32_t)iov.iov_len;
	ret = rf_dev_write(s->ch->se->fd, &iov, 1);
	/* Any thread may reply (the caller's loop may defer): the shared counters. */
	rf_stat_reply(&req->stats->shared, error, len, false);
	rf_stat_add_shared(req->stats->shared.enters, 1);
	/* ENOENT: the request was interrupted and is gone; nothing is lost. */
	if (ret < 0 && ret != -ENOENT && ret != -ENODEV && ret != -ENOTCONN)
		rf_log_once(RF_LOG_WARN, "ringfuse: writing a reply to /dev/fuse failed: %s",
			    strerror(-ret));
	slot_put(s);
	return ret == -ENOENT ? 0 : ret;
}

static void chan_drop(rf_req *req)
{
	slot_put(req->chan);
}

static const struct rf_reply_ops chan_reply_ops = {.send = chan_send, .drop = chan_drop};

/* Called with the lock held. */
static int chan_grow(struct rf_embed_chan *ch)
{
	/* Request objects are aligned (their handles carry a generation in the low bits). */
	size_t size = (sizeof(struct chan_chunk) + RF_REQ_ALIGN - 1) / RF_REQ_ALIGN * RF_REQ_ALIGN;
	struct chan_chunk *c = aligned_alloc(RF_REQ_ALIGN, size);
	rf_session *se = ch->se;

	if (!c)
		return -ENOMEM;
	memset(c, 0, size);
	for (int i = 0; i < CHAN_CHUNK; i++) {
		struct chan_slot *s = &c->slot[i];
		void *area = mmap(NULL, area_size(ch), PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		if (area == MAP_FAILED) {
			while (i-- > 0)
				munmap(c->slot[i].oh, area_size(ch));
			free(c);
			return -ENOMEM;
		}
		s->ch = ch;
		s->oh = area;
		s->req.se = se;
		s->req.rops = &chan_reply_ops;
		s->req.chan = s;
		s->req.stats = &se->dev_stats;
		s->req.out = (char *)(s->oh + 1);
		s->req.out_cap = ch->out_cap;
		s->next_free = ch->free;
		ch->free = s;
	}
	if (rf_session_register_reqs(se, &c->slot[0].req, CHAN_CHUNK, sizeof(c->slot[0])) < 0) {
		for (int i = 0; i < CHAN_CHUNK; i++)
			munmap(c->slot[i].oh, area_size(ch));
		ch->free = c->slot[0].next_free; /* the chunk's slots were pushed in order */
		free(c);
		return -ENOMEM;
	}
	c->next = ch->chunks;
	ch->chunks = c;
	return 0;
}

static struct chan_slot *slot_get(struct rf_embed_chan *ch)
{
	struct chan_slot *s = NULL;

	pthread_mutex_lock(&ch->lock);
	if (ch->free || chan_grow(ch) == 0) {
		s = ch->free;
		ch->free = s->next_free;
		atomic_fetch_add(&ch->held, 1);
	}
	pthread_mutex_unlock(&ch->lock);
	return s;
}

size_t rf_embed_bufsize(const rf_session *se)
{
	return se->dev_bufsize ? se->dev_bufsize : FUSE_MIN_READ_BUFFER;
}

struct rf_embed_chan *rf_embed_chan_new(rf_session *se)
{
	struct rf_embed_chan *ch = calloc(1, sizeof(*ch));

	if (!ch)
		return NULL;
	if (se->opts.transport != RF_TP_DEV && se->opts.transport != RF_TP_AUTO)
		rf_log(RF_LOG_INFO, "ringfuse: the filesystem reads /dev/fuse in its own loop, "
				    "so the classic transport serves it");
	se->opts.transport = RF_TP_DEV;
	se->opts.single_thread = true;
	ch->se = se;
	/* As the dev loop's: replies to getxattr/listxattr may carry 64 KiB whatever max_write. */
	ch->out_cap = rf_embed_bufsize(se);
	if (ch->out_cap < 65536 + RF_PAGE_SIZE)
		ch->out_cap = 65536 + RF_PAGE_SIZE;
	pthread_mutex_init(&ch->lock, NULL);
	install_wake(se);
	atomic_store(&serving, se);
	return ch;
}

void rf_embed_chan_process(struct rf_embed_chan *ch, const void *msg, size_t len)
{
	struct chan_slot *s = slot_get(ch);

	if (!s) {
		rf_log_once(RF_LOG_ERR, "ringfuse: out of memory for a request; answering ENOMEM");
		if (len >= sizeof(struct fuse_in_header)) {
			struct fuse_out_header oh = {.len = sizeof(oh), .error = -ENOMEM};
			struct iovec iov = {&oh, sizeof(oh)};

			memcpy(&oh.unique,
			       (const char *)msg + offsetof(struct fuse_in_header, unique),
			       sizeof(oh.unique));
			rf_dev_write(ch->se->fd, &iov, 1);
		}
		return;
	}
	rf_dispatch_msg(ch->se, &s->req, msg, len);
}

void rf_embed_chan_destroy(struct rf_embed_chan *ch)
{
	bool leak;

	if (!ch)
		return;
	for (int i = 0; i < CHAN_DRAIN_TRIES && atomic_load(&ch->held); i++)
		usleep(10000);
	leak = atomic_load(&ch->held) != 0;
	if (leak)
		rf_log(RF_LOG_WARN, "ringfuse: %u requests still unanswered when the loop ended",
		       atomic_load(&ch->held));
	if (atomic_load(&serving) == ch->se)
		atomic_store(&serving, NULL);
	for (struct chan_chunk *c = ch->chunks, *next; c; c = next) {
		next = c->next;
		rf_session_unregister_reqs(ch->se, &c->slot[0].req);
		if (leak)
			continue;
		for (int i = 0; i < CHAN_CHUNK; i++)
			munmap(c->slot[i].oh, area_size(ch));
		free(c);
	}
	if (!leak) {
		pthread_mutex_destroy(&ch->lock);
		free(ch);
	}
}

/* ---- odds and ends ---- */

int rf_embed_notify(rf_session *se, int code, struct iovec *iov, int iovcnt)
{
	struct fuse_out_header oh = {0};
	size_t len = sizeof(oh);

	if (se->fd < 0 || !atomic_load(&se->initialized))
		return -ENOTCONN;
	for (int i = 1; i < iovcnt; i++)
		len += iov[i].iov_len;
	oh.len = (uint32_t)len;
	oh.error = code;
	iov[0].iov_base = &oh;
	iov[0].iov_len = sizeof(oh);
	return rf_dev_write(se->fd, iov, iovcnt);
}

uint64_t rf_embed_req_unique(const rf_req *req)
{
	return rf_req_unique(req);
}

void rf_embed_report(rf_session *se, int fd, const char *label)
{
	struct rf_stats *st;

	if (label)
		dprintf(fd, "%s: transport %s\n", label, rf_session_transport(se));
	if (!se->opts.stats)
		return;
	st = malloc(sizeof(*st));
	if (st && rf_session_stats(se, st) == 0)
		rf_stats_print(st, fd);
	free(st);
}
