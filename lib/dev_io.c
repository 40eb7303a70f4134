/*
 * The classic /dev/fuse loop: read one request, dispatch it, write the reply.
 *
 * It serves three roles: the whole dev transport (one loop per worker, each on its own cloned
 * fd), the main thread's reader before INIT and for what the kernel keeps sending over
 * /dev/fuse while the io-uring ring is active (interrupts, forgets, requests that raced the
 * switch), and single-threaded mode.
 *
 * A loop owns a small pool of slots; each slot has a read buffer, a reply area and the rf_req.
 * A handler that answers at once hands the slot straight back; a handler that defers keeps its
 * slot until the reply (from any thread) is written, and the loop reads the next request into
 * another slot. Replies are written by whichever thread answers: write() on /dev/fuse is
 * thread-safe and a deferred reply needs no hop back to the reading thread. The loop's thread
 * counts its own replies in the queue's own counters, other threads in the shared half.
 *
 * When the loop stops (the session ends) it drains: it waits, until the session's drain
 * deadline, for the replies its handlers still owe. A slot still unanswered after that is
 * left to its handler, with the loop's memory; the caller of rf_dev_serve() is told, and keeps
 * the fd number from reuse (lib/transport/README.md).
 */
#include "ringfuse_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define DEV_MAX_SLOTS 16

struct dev_loop;

struct dev_slot {
	RF_REQ_ALIGNED rf_req req;
	struct dev_loop *loop;
	char *in;		    /* dev_bufsize bytes: the request as read */
	struct fuse_out_header *oh; /* reply header, immediately followed by the body */
	struct dev_slot *next_free;
};

struct dev_loop {
	rf_session *se;
	int fd;
	unsigned int queue;
	struct rf_qstats *stats;
	size_t out_cap;
	struct dev_slot *slots[DEV_MAX_SLOTS];
	unsigned int nslots;
	/* Free slots: pushed by any replying thread, popped only by the loop (so no ABA). */
	struct dev_slot *_Atomic free_head;
	pthread_mutex_t wait_lock; /* slow path only: every slot is held by a deferred reply */
	pthread_cond_t wait_cond;
	_Atomic int waiting;
	/* Replying threads still inside dev_send/dev_drop: the loop's memory lives until 0. */
	_Atomic int senders;
	struct dev_loop *grave_next; /* on the graveyard once kept for a late reply */
};

/*
 * Loops kept because a handler still owes a reply; reachable from here so that leak checkers
 * see a deliberate decision rather than a leak.
 */
static struct dev_loop *_Atomic graveyard;

static void loop_bury(struct dev_loop *l)
{
	l->grave_next = atomic_load(&graveyard);
	while (!atomic_compare_exchange_weak(&graveyard, &l->grave_next, l))
		;
}

/* The loop this thread runs, so a reply knows whether it is on the loop's own thread. */
static __thread struct dev_loop *tls_loop;

static void slot_release(struct dev_slot *s)
{
	struct dev_loop *l = s->loop;
	struct dev_slot *head = atomic_load_explicit(&l->free_head, memory_order_relaxed);

	rf_req_set_free(&s->req);
	do {
		s->next_free = head;
	} while (!atomic_compare_exchange_weak_explicit(
		&l->free_head, &head, s, memory_order_release, memory_order_relaxed));
	if (atomic_load(&l->waiting)) {
		pthread_mutex_lock(&l->wait_lock);
		pthread_cond_signal(&l->wait_cond);
		pthread_mutex_unlock(&l->wait_lock);
	}
}

int rf_dev_write(int fd, const struct iovec *iov, int iovcnt)
{
	ssize_t n;

	do {
		n = writev(fd, iov, iovcnt);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

static int dev_send(rf_req *req, int error, size_t len)
{
	struct dev_slot *s = req->chan;
	struct dev_loop *l = s->loop;
	struct iovec iov = {s->oh, sizeof(*s->oh) + len};
	int ret;

	bool owner = tls_loop == l;

	atomic_fetch_add(&l->senders, 1);
	s->oh->unique = req->unique;
	s->oh->error = error;
	s->oh->len = (uint32_t)iov.iov_len;
	ret = rf_dev_write(l->fd, &iov, 1);
	rf_stat_reply(owner ? &l->stats->own : &l->stats->shared, error, len, owner);
	if (owner)
		rf_stat_inc(l->stats->own.enters, 1);
	else
		rf_stat_add_shared(l->stats->shared.enters, 1);
	/* ENOENT: the request was interrupted and is gone; nothing is lost. */
	if (ret < 0 && ret != -ENOENT && ret != -ENODEV && ret != -ENOTCONN)
		rf_log_once(RF_LOG_WARN, "ringfuse: writing a reply to /dev/fuse failed: %s",
			    strerror(-ret));
	slot_release(s);
	atomic_fetch_sub(&l->senders, 1);
	return ret == -ENOENT ? 0 : ret;
}

static void dev_drop(rf_req *req)
{
	struct dev_slot *s = req->chan;
	struct dev_loop *l = s->loop;

	atomic_fetch_add(&l->senders, 1);
	slot_release(s);
	atomic_fetch_sub(&l->senders, 1);
}

static const struct rf_reply_ops dev_reply_ops = {
	.send = dev_send,
	.drop = dev_drop,
};

static void slot_free(struct dev_slot *s, size_t in_size, size_t out_size)
{
	if (!s)
		return;
	if (s->in)
		munmap(s->in, in_size);
	if (s->oh)
		munmap(s->oh, out_size);
	free(s);
}

static struct dev_slot *slot_new(struct dev_loop *l)
{
	rf_session *se = l->se;
	size_t out_size = sizeof(struct fuse_out_header) + l->out_cap;
	struct dev_slot *s = aligned_alloc(RF_REQ_ALIGN, sizeof(*s)); /* rf_req alignment */

	if (!s)
		return NULL;
	memset(s, 0, sizeof(*s));
	s->loop = l;
	/* mmap keeps large buffers page-aligned, which O_DIRECT pass-through needs. */
	s->in = mmap(NULL, se->dev_bufsize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
		     0);
	s->oh = mmap(NULL, out_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (s->in == MAP_FAILED || s->oh == MAP_FAILED) {
		if (s->in == MAP_FAILED)
			s->in = NULL;
		if (s->oh == MAP_FAILED)
			s->oh = NULL;
		slot_free(s, se->dev_bufsize, out_size);
		return NULL;
	}
	s->req.se = se;
	s->req.rops = &dev_reply_ops;
	s->req.chan = s;
	s->req.queue = l->queue;
	s->req.stats = l->stats;
	s->req.out = (char *)(s->oh + 1);
	s->req.out_cap = l->out_cap;
	if (rf_session_register_reqs(se, &s->req, 1, sizeof(*s)) < 0) {
		slot_free(s, se->dev_bufsize, out_size);
		return NULL;
	}
	return s;
}

/* Take a free slot, growing the pool while handlers hold slots, then waiting. */
static struct dev_slot *slot_get(struct dev_loop *l)
{
	for (;;) {
		struct dev_slot *head = atomic_load_explicit(&l->free_head, memory_order_acquire);

		while (head) {
			if (atomic_compare_exchange_weak_explicit(
				    &l->free_head, &head, head->next_free, memory_order_acquire,
				    memory_order_acquire))
				return head;
		}
		if (l->nslots < DEV_MAX_SLOTS) {
			struct dev_slot *s = slot_new(l);

			if (s) {
				l->slots[l->nslots++] = s;
				return s;
			}
		}
		if (atomic_load(&l->se->exiting))
			return NULL;
		pthread_mutex_lock(&l->wait_lock);
		atomic_store(&l->waiting, 1);
		if (!atomic_load(&l->free_head)) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 50 * 1000 * 1000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&l->wait_cond, &l->wait_lock, &ts);
		}
		atomic_store(&l->waiting, 0);
		pthread_mutex_unlock(&l->wait_lock);
	}
}

static size_t dev_out_cap(const rf_session *se)
{
	size_t cap = se->dev_bufsize;

	/* Replies to getxattr/listxattr may carry up to 64 KiB whatever max_write is. */
	if (cap < 65536 + RF_PAGE_SIZE)
		cap = 65536 + RF_PAGE_SIZE;
	return cap;
}

/* Wait until every deferred request of this loop has been answered, until the session's
 * drain deadline. */
static void loop_drain(struct dev_loop *l)
{
	uint64_t deadline = 0;

	for (;;) {
		unsigned int busy = 0;

		for (unsigned int i = 0; i < l->nslots; i++)
			if (rf_req_state(&l->slots[i]->req) != RF_REQ_FREE)
				busy++;
		if (!busy && !atomic_load(&l->senders))
			return;
		/* Fixed only when there is something to wait for: a reader that hands its thread
		 * over to the transport (after INIT) must not start the session's drain clock. */
		if (!deadline)
			deadline = rf_session_drain_deadline(l->se);
		if (rf_now_ns() >= deadline)
			break;
		usleep(1000);
	}
	rf_log(RF_LOG_WARN,
	       "ringfuse: /dev/fuse worker %u: requests still unanswered when the drain time ran "
	       "out; their callers get an error",
	       l->queue);
}

/*
 * With the io-uring transport active, this loop mostly reads forgets, which the kernel still
 * sends over /dev/fuse: one per evicted inode, each waking this thread on some CPU busy with
 * callers and their queues. Nothing waits for a forget, so after one the loop pauses and lets
 * the kernel gather the next ones into a single BATCH_FORGET. What else comes this way
 * (interrupts, retrieve replies) waits at most the pause. mdbench -t 2, 5000 files, memfs
 * cache=none, transport=uring: unlink 36.8k/40.7k -> 51.0k/45.3k/s, about 4400 reads of
 * forgets down to about 200.
 */
static bool is_forget(const char *msg, size_t len)
{
	uint32_t op;

	if (len < sizeof(struct fuse_in_header))
		return false;
	op = ((const struct fuse_in_header *)msg)->opcode;
	return op == FUSE_FORGET || op == FUSE_BATCH_FORGET;
}

static struct dev_loop *loop_new(rf_session *se, int fd, unsigned int queue,
				 struct rf_qstats *stats)
{
	struct dev_loop *l = calloc(1, sizeof(*l));

	if (!l)
		return NULL;
	tls_loop = l;
	l->se = se;
	l->fd = fd;
	l->queue = queue;
	l->stats = stats;
	l->out_cap = dev_out_cap(se);
	pthread_mutex_init(&l->wait_lock, NULL);
	pthread_cond_init(&l->wait_cond, NULL);
	return l;
}

/* Drain, then free the loop, or keep it (and say so) while a handler still owes a reply. */
static void loop_end(struct dev_loop *l, bool *leaked_out)
{
	rf_session *se = l->se;
	unsigned int leaked = 0;

	loop_drain(l);
	for (unsigned int i = 0; i < l->nslots; i++) {
		struct dev_slot *s = l->slots[i];

		rf_session_unregister_reqs(se, &s->req);
		/* A handler that never answered still owns its slot (and the loop): leaking them
		 * beats a late reply writing into freed memory. */
		if (rf_req_state(&s->req) == RF_REQ_FREE)
			slot_free(s, se->dev_bufsize, sizeof(struct fuse_out_header) + l->out_cap);
		else
			leaked++;
	}
	if (tls_loop == l)
		tls_loop = NULL;
	if (!leaked && !atomic_load(&l->senders)) {
		pthread_mutex_destroy(&l->wait_lock);
		pthread_cond_destroy(&l->wait_cond);
		free(l);
	} else {
		*leaked_out = true; /* a late reply may still write to fd */
		loop_bury(l);
	}
}

int rf_dev_serve(rf_session *se, int fd, unsigned int queue, struct rf_qstats *stats,
		 bool *leaked_out)
{
	struct dev_loop *l = loop_new(se, fd, queue, stats);
	int ret = 0;

	*leaked_out = false;
	if (!l)
		return -ENOMEM;
	/* A transport that serves on this thread (rf_transport.serve) takes over after INIT. */
	while (!atomic_load(&se->exiting) && !se->serve_here) {
		struct dev_slot *s = slot_get(l);
		ssize_t n;

		if (!s)
			break;
		n = read(fd, s->in, se->dev_bufsize);
		rf_stat_inc(stats->own.enters, 1);
		if (n < 0) {
			int err = errno;

			slot_release(s);
			if (err == EINTR || err == EAGAIN) {
				if (queue == 0 && fd == se->fd)
					rf_session_poll_signals(se);
				continue;
			}
			if (err == ENOENT) /* request interrupted before we read it */
				continue;
			/* The connection ending is not an error: ENODEV after unmount, and
			 * ECONNABORTED/ENOTCONN when a read races the teardown. */
			bool ended = err == ENODEV || err == ECONNABORTED || err == ENOTCONN;

			if (!ended)
				rf_log(RF_LOG_ERR, "ringfuse: reading /dev/fuse failed: %s",
				       strerror(err));
			ret = ended ? 0 : -err;
			rf_session_conn_lost(se);
			break;
		}
		/* Looked at before dispatch: the slot is not ours any more afterwards. */
		bool pause = se->uring_active && fd == se->fd && is_forget(s->in, (size_t)n);

		rf_dispatch_msg(se, &s->req, s->in, (size_t)n);
		if (pause)
			usleep(RF_DEV_FORGET_GATHER_US);
	}

	loop_end(l, leaked_out);
	return ret;
}

/* ---- a /dev/fuse reader driven by another loop (an io_uring read of the io-uring transport
 * serving on one thread) ---- */

struct rf_dev_reader *rf_dev_reader_new(rf_session *se, int fd, unsigned int queue,
					struct rf_qstats *stats)
{
	return (struct rf_dev_reader *)loop_new(se, fd, queue, stats);
}

void *rf_dev_reader_buf(struct rf_dev_reader *r, rf_req **slot)
{
	struct dev_loop *l = (struct dev_loop *)r;
	struct dev_slot *head = atomic_load_explicit(&l->free_head, memory_order_acquire);
	struct dev_slot *s = NULL;

	while (head &&
	       !atomic_compare_exchange_weak_explicit(&l->free_head, &head, head->next_free,
						      memory_order_acquire, memory_order_acquire))
		;
	s = head;
	if (!s && l->nslots < DEV_MAX_SLOTS) {
		s = slot_new(l);
		if (s)
			l->slots[l->nslots++] = s;
	}
	if (!s)
		return NULL;
	*slot = &s->req;
	return s->in;
}

bool rf_dev_reader_dispatch(struct rf_dev_reader *r, rf_req *slot, size_t n)
{
	struct dev_loop *l = (struct dev_loop *)r;
	struct dev_slot *s = slot->chan;
	/* Looked at before dispatch: the slot is not ours any more afterwards. */
	bool forget = is_forget(s->in, n);

	rf_stat_inc(l->stats->own.enters, 1);
	rf_dispatch_msg(l->se, slot, s->in, n);
	return forget;
}

void rf_dev_reader_put(struct rf_dev_reader *r, rf_req *slot)
{
	(void)r;
	slot_release(slot->chan);
}

void rf_dev_reader_end(struct rf_dev_reader *r, bool *leaked)
{
	*leaked = false;
	if (r)
		loop_end((struct dev_loop *)r, leaked);
}
