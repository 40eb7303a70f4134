/*
 * The classic transport: worker threads, each reading /dev/fuse on its own cloned fd
 * (FUSE_DEV_IOC_CLONE), so the kernel hands requests to whichever worker is idle and replies
 * never contend on one fd. The session's main thread is worker 0 on the original fd; this
 * file adds the others. With -s nothing is added.
 *
 * Stopping: workers block in read(). When the connection ends every read returns ENODEV;
 * when the daemon is asked to stop while still mounted, a SIGUSR2 (no SA_RESTART) makes the
 * read return EINTR and the worker sees the exit flag. Each worker then drains its own slots
 * (rf_dev_serve) until the session's drain deadline. Replies are written by whichever thread
 * answers, straight to the worker's fd: when a slot is still owed a reply at the end, the fd
 * is retired onto /dev/null rather than closed, so the late reply cannot land in a file that
 * reused the number (lib/transport/README.md).
 */
#include "ringfuse_i.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysinfo.h>
#include <unistd.h>

struct dev_worker {
	rf_session *se;
	pthread_t thread;
	int fd;
	unsigned int idx;
	bool started;
	bool leaked; /* its loop still owes replies: keep fd's number */
	_Atomic bool done;
	struct rf_qstats stats;
};

struct dev_transport {
	unsigned int nworkers;
	struct dev_transport *grave_next; /* kept: a late reply still counts in its stats */
	struct dev_worker w[];
};

/* Transports kept for a late reply (reachable, so leak checkers see a decision). */
static struct dev_transport *_Atomic graveyard;

static void *worker_main(void *arg)
{
	struct dev_worker *w = arg;

	rf_dev_serve(w->se, w->fd, w->idx, &w->stats, &w->leaked);
	atomic_store(&w->done, true);
	return NULL;
}

int rf_dev_clone_fd(rf_session *se)
{
	uint32_t master = (uint32_t)se->fd;
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, FUSE_DEV_IOC_CLONE, &master) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

/* Threads started by the library take no signals except the SIGUSR2 used to wake them. */
void rf_block_signals(sigset_t *old)
{
	sigset_t all;

	sigfillset(&all);
	sigdelset(&all, SIGUSR2);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	pthread_sigmask(SIG_SETMASK, &all, old);
}

static int dev_start(rf_session *se)
{
	unsigned int n = se->opts.threads ? se->opts.threads : (unsigned int)get_nprocs();
	struct dev_transport *t;
	sigset_t old;
	int ret = 0;

	if (se->opts.single_thread || n <= 1)
		return 0;
	n--; /* the main thread is a worker too */
	t = calloc(1, sizeof(*t) + n * sizeof(t->w[0]));
	if (!t)
		return -ENOMEM;
	se->tp_data = t;
	rf_block_signals(&old);
	for (unsigned int i = 0; i < n; i++) {
		struct dev_worker *w = &t->w[i];

		w->se = se;
		w->idx = i + 1;
		w->fd = rf_dev_clone_fd(se);
		if (w->fd < 0) {
			ret = w->fd;
			break;
		}
		rf_session_register_queue(se, w->idx, &w->stats);
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			close(w->fd);
			ret = -EAGAIN;
			break;
		}
		w->started = true;
		t->nworkers++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return t->nworkers ? 0 : ret;
}

static void dev_stop_workers(rf_session *se)
{
	struct dev_transport *t = se->tp_data;

	if (!t)
		return;
	for (unsigned int i = 0; i < t->nworkers; i++)
		if (!atomic_load(&t->w[i].done))
			pthread_kill(t->w[i].thread, SIGUSR2);
}

/* The workers stop reading and drain their own slots until the deadline (rf_dev_serve);
 * dev_destroy() waits for them. */
static void dev_drain(rf_session *se, uint64_t deadline_ns)
{
	(void)deadline_ns; /* rf_session_drain_deadline() gives every loop the same one */
	atomic_store(&se->exiting, true);
	dev_stop_workers(se);
}

static void dev_stop(rf_session *se)
{
	atomic_store(&se->exiting, true);
	dev_stop_workers(se);
}

static void dev_destroy(rf_session *se)
{
	struct dev_transport *t = se->tp_data;

	if (!t)
		return;
	bool keep = false;

	for (unsigned int i = 0; i < t->nworkers; i++) {
		struct dev_worker *w = &t->w[i];

		/* A worker may be between its exit check and read(): keep nudging it. */
		while (!atomic_load(&w->done)) {
			pthread_kill(w->thread, SIGUSR2);
			usleep(1000);
		}
		pthread_join(w->thread, NULL);
		/* Releases its /dev/fuse file (the kernel fails what that fd still holds); the
		 * number is closed only when no late reply can be written to it. */
		rf_retire_fd(w->fd);
		if (!w->leaked)
			close(w->fd);
		keep |= w->leaked;
	}
	for (unsigned int i = 0; i < t->nworkers; i++)
		rf_session_retire_queue(se, t->w[i].idx);
	se->tp_data = NULL;
	if (!keep) {
		free(t);
		return;
	}
	/* A handler that still owes a reply will count it in its worker's stats. */
	t->grave_next = atomic_load(&graveyard);
	while (!atomic_compare_exchange_weak(&graveyard, &t->grave_next, t))
		;
}

const struct rf_transport rf_transport_dev = {
	.name = "dev",
	.start = dev_start,
	.drain = dev_drain,
	.stop = dev_stop,
	.destroy = dev_destroy,
};
