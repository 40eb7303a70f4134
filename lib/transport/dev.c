/*
 * The classic transport: worker threads, each reading /dev/fuse on its own cloned fd
 * (FUSE_DEV_IOC_CLONE), so the kernel hands requests to whichever worker is idle and replies
 * never contend on one fd. The session's main thread is worker 0 on the original fd; this
 * file adds the others. With -s nothing is added.
 *
 * Stopping: workers block in read(). When the connection ends every read returns ENODEV;
 * when the daemon is asked to stop while still mounted, a SIGUSR2 (no SA_RESTART) makes the
 * read return EINTR and the worker sees the exit flag.
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
	_Atomic bool done;
	struct rf_queue_stats stats;
};

struct dev_transport {
	unsigned int nworkers;
	struct dev_worker w[];
};

static void *worker_main(void *arg)
{
	struct dev_worker *w = arg;

	rf_dev_serve(w->se, w->fd, w->idx, &w->stats);
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

static void dev_stop(rf_session *se)
{
	struct dev_transport *t = se->tp_data;

	atomic_store(&se->exiting, true);
	if (!t)
		return;
	for (unsigned int i = 0; i < t->nworkers; i++)
		if (!atomic_load(&t->w[i].done))
			pthread_kill(t->w[i].thread, SIGUSR2);
}

static void dev_destroy(rf_session *se)
{
	struct dev_transport *t = se->tp_data;

	if (!t)
		return;
	for (unsigned int i = 0; i < t->nworkers; i++) {
		struct dev_worker *w = &t->w[i];

		/* A worker may be between its exit check and read(): keep nudging it. */
		while (!atomic_load(&w->done)) {
			pthread_kill(w->thread, SIGUSR2);
			usleep(1000);
		}
		pthread_join(w->thread, NULL);
		close(w->fd);
	}
	for (unsigned int i = 0; i < t->nworkers; i++)
		rf_session_retire_queue(se, t->w[i].idx);
	free(t);
	se->tp_data = NULL;
}

const struct rf_transport rf_transport_dev = {
	.name = "dev",
	.start = dev_start,
	.stop = dev_stop,
	.destroy = dev_destroy,
};
