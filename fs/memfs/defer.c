/*
 * memfs deferred replies (-o defer=N), the pool: a test mode for the library's "answer later,
 * from any thread" path. Every operation that takes a reply is handed to a pool of N threads and
 * answered from there; the handler the library called returns at once, its request still
 * unanswered. FORGET (no reply), INIT and DESTROY run where they arrive.
 *
 * -o defer_delay_us=U first holds operations on a timer thread for U microseconds, so a reply
 * comes long after the queue thread went on to other requests; -o defer_delay_ops=a:b:...
 * names which ones (default: all but release and releasedir, which the kernel may still send
 * while unmounting and which must not be held up then). An interrupt for a held or queued
 * request is honoured: the timer thread is woken and answers EINTR at once, without running
 * the operation (release and releasedir always run).
 *
 * A job (defer_ops.c makes them) owns its request until it answers it. Worker threads take
 * ready jobs in arrival order; the timer thread keeps the held ones on an unsorted list,
 * which is short: holding is for tests.
 */
#include "defer.h"

#include <signal.h>

static struct {
	unsigned int nthreads;
	uint64_t delay_ns;
	uint64_t delay_mask; /* bit per enum dop */
	pthread_mutex_t lock;
	pthread_cond_t work;  /* a job is ready, or the workers may exit */
	pthread_cond_t timer; /* a held job may be due or interrupted, or stop */
	/* Under lock: */
	struct job *ready, **ready_tail;
	struct job *held;
	bool running, stopping, workers_exit;
	/* Owned by start/stop: */
	pthread_t *workers;
	unsigned int nworkers;
	pthread_t timer_thread;
	bool timer_started;
} dq = {.lock = PTHREAD_MUTEX_INITIALIZER, .ready_tail = &dq.ready};

static _Thread_local struct job spare_job;

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Releases must run whatever happens: they drop the reference the open handle holds. */
static bool cancellable(const struct job *j)
{
	return !(NEVER_HELD & (1ull << j->op));
}

static void job_finish(struct job *j)
{
	if (cancellable(j) && rf_req_interrupted(j->req))
		rf_reply_err(j->req, EINTR);
	else
		job_run(j);
	if (!j->spare)
		free(j);
}

/* ---- the queue ---- */

static void ready_push(struct job *j)
{
	j->next = NULL;
	*dq.ready_tail = j;
	dq.ready_tail = &j->next;
	pthread_cond_signal(&dq.work);
}

struct job *job_new(rf_req *req, enum dop op)
{
	struct job *j = calloc(1, sizeof(*j));

	if (!j) {
		/* Out of memory: answer in place rather than not at all. */
		j = &spare_job;
		memset(j, 0, sizeof(*j));
		j->spare = true;
	}
	j->req = req;
	j->op = op;
	return j;
}

void job_submit(struct job *j)
{
	pthread_mutex_lock(&dq.lock);
	if (j->spare || !dq.running) {
		pthread_mutex_unlock(&dq.lock);
		job_finish(j);
		return;
	}
	if (dq.delay_ns && (dq.delay_mask & (1ull << j->op))) {
		j->due_ns = mono_ns() + dq.delay_ns;
		j->next = dq.held;
		dq.held = j;
		pthread_cond_signal(&dq.timer);
	} else {
		ready_push(j);
	}
	pthread_mutex_unlock(&dq.lock);
}

static void *worker_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&dq.lock);
	for (;;) {
		struct job *j = dq.ready;

		if (!j) {
			if (dq.workers_exit)
				break;
			pthread_cond_wait(&dq.work, &dq.lock);
			continue;
		}
		dq.ready = j->next;
		if (!dq.ready)
			dq.ready_tail = &dq.ready;
		pthread_mutex_unlock(&dq.lock);
		job_finish(j);
		pthread_mutex_lock(&dq.lock);
	}
	pthread_mutex_unlock(&dq.lock);
	return NULL;
}

/* Holds jobs until they are due, and answers the interrupted ones at once. */
static void *timer_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&dq.lock);
	for (;;) {
		struct job *cancel = NULL, **pp = &dq.held;
		uint64_t now = mono_ns(), next = UINT64_MAX;

		while (*pp) {
			struct job *j = *pp;

			if (cancellable(j) && rf_req_interrupted(j->req)) {
				*pp = j->next;
				j->next = cancel;
				cancel = j;
			} else if (dq.stopping || j->due_ns <= now) {
				*pp = j->next;
				ready_push(j);
			} else {
				next = min_u64(next, j->due_ns);
				pp = &j->next;
			}
		}
		if (cancel) {
			pthread_mutex_unlock(&dq.lock);
			while (cancel) {
				struct job *j = cancel;

				cancel = j->next;
				rf_reply_err(j->req, EINTR);
				free(j);
			}
			pthread_mutex_lock(&dq.lock);
			continue;
		}
		if (dq.stopping)
			break;
		if (next == UINT64_MAX) {
			pthread_cond_wait(&dq.timer, &dq.lock);
		} else {
			struct timespec ts = {.tv_sec = (time_t)(next / 1000000000ull),
					      .tv_nsec = (long)(next % 1000000000ull)};

			pthread_cond_timedwait(&dq.timer, &dq.lock, &ts);
		}
	}
	pthread_mutex_unlock(&dq.lock);
	return NULL;
}

/* FUSE_INTERRUPT arrived for req: the library marked it; have the timer look. */
void defer_interrupt(rf_req *req, void *userdata)
{
	(void)req;
	(void)userdata;
	pthread_mutex_lock(&dq.lock);
	pthread_cond_signal(&dq.timer);
	pthread_mutex_unlock(&dq.lock);
}

int defer_configure(unsigned int threads, uint64_t delay_us, const char *delay_ops)
{
	dq.nthreads = threads;
	dq.delay_ns = delay_us * 1000;
	dq.delay_mask = ((1ull << D_NOPS) - 1) & ~NEVER_HELD;
	if (!delay_ops)
		return 0;
	dq.delay_mask = 0;
	for (const char *p = delay_ops; *p;) {
		size_t len = strcspn(p, ":");
		int op = dop_by_name(p, len);

		if (op < 0 || (NEVER_HELD & (1ull << op)))
			return -EINVAL;
		dq.delay_mask |= 1ull << op;
		p += len;
		if (*p == ':')
			p++;
	}
	return 0;
}

int defer_start(void)
{
	pthread_condattr_t ca;
	sigset_t all, old;
	int err = 0;

	if (!dq.nthreads || dq.running)
		return 0;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&dq.timer, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&dq.work, NULL);
	dq.workers = calloc(dq.nthreads, sizeof(*dq.workers));
	if (!dq.workers)
		return -ENOMEM;
	/* Signals are for the library's threads: one caught here would not wake them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&dq.timer_thread, NULL, timer_main, NULL);
	dq.timer_started = err == 0;
	for (unsigned int i = 0; !err && i < dq.nthreads; i++) {
		err = pthread_create(&dq.workers[i], NULL, worker_main, NULL);
		if (!err)
			dq.nworkers++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (dq.nworkers && dq.timer_started) {
		pthread_mutex_lock(&dq.lock);
		dq.running = true;
		pthread_mutex_unlock(&dq.lock);
	}
	return err ? -err : 0;
}

void defer_stop(void)
{
	if (!dq.workers)
		return;
	/* The timer hands over what it holds, then the workers drain the queue. */
	pthread_mutex_lock(&dq.lock);
	dq.running = false;
	dq.stopping = true;
	pthread_cond_signal(&dq.timer);
	pthread_mutex_unlock(&dq.lock);
	if (dq.timer_started)
		pthread_join(dq.timer_thread, NULL);
	pthread_mutex_lock(&dq.lock);
	dq.workers_exit = true;
	pthread_cond_broadcast(&dq.work);
	pthread_mutex_unlock(&dq.lock);
	for (unsigned int i = 0; i < dq.nworkers; i++)
		pthread_join(dq.workers[i], NULL);
	free(dq.workers);
	dq.workers = NULL;
	dq.nworkers = 0;
	pthread_cond_destroy(&dq.work);
	pthread_cond_destroy(&dq.timer);
}
