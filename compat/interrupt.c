/*
 * fuse_req_interrupt_func(): a callback the filesystem hangs on a request, run when the kernel
 * interrupts it (or at once if it already did).
 *
 * ringfuse marks interrupted requests itself (rf_req_interrupted()) and calls the ops table's
 * interrupt with the target; the callbacks live here, in a list under one mutex, used only by
 * filesystems that register them. A registration ends when the request is answered: every
 * reply calls compat_req_done() first, which costs one atomic load while the list is empty.
 * A reply waits for a callback of its request that is running on another thread, since the
 * callback's data commonly lives with the handler that is about to reply; a callback that
 * replies itself does not wait for itself.
 */
#include "compat.h"

#include <pthread.h>
#include <stdlib.h>

struct registration {
	struct registration *next;
	rf_req *req;
	uint64_t unique; /* the request it was made for; slots are reused */
	fuse_interrupt_func_t func;
	void *data;
	bool running;
	bool answered; /* the callback replied to its request itself */
	pthread_t runner;
};

_Atomic unsigned int compat_interrupt_funcs;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t finished = PTHREAD_COND_INITIALIZER;
static struct registration *live, *spare;

static struct registration **find(rf_req *req)
{
	struct registration **p = &live;

	while (*p && (*p)->req != req)
		p = &(*p)->next;
	return p;
}

static void release(struct registration **p)
{
	struct registration *reg = *p;

	*p = reg->next;
	reg->next = spare;
	spare = reg;
	atomic_fetch_sub(&compat_interrupt_funcs, 1);
}

/* Called with the lock held; returns with it held, the callback having run without it. */
static void run(struct registration *r, fuse_req_t req)
{
	fuse_interrupt_func_t func = r->func;
	void *data = r->data;

	r->running = true;
	r->answered = false;
	r->runner = pthread_self();
	pthread_mutex_unlock(&lock);
	func(req, data);
	pthread_mutex_lock(&lock);
	r->running = false;
	if (r->answered)
		release(find(r->req));
	pthread_cond_broadcast(&finished);
}

void fuse_req_interrupt_func(fuse_req_t req, fuse_interrupt_func_t func, void *data)
{
	rf_req *r = compat_rq(req);
	struct registration **p, *reg;

	pthread_mutex_lock(&lock);
	p = find(r);
	reg = *p;
	if (!func) {
		if (reg && !reg->running)
			release(p);
		pthread_mutex_unlock(&lock);
		return;
	}
	if (!reg) {
		reg = spare;
		if (reg)
			spare = reg->next;
		else
			reg = calloc(1, sizeof(*reg));
		if (!reg) {
			pthread_mutex_unlock(&lock);
			fuse_log(FUSE_LOG_ERR, "fuse: out of memory for an interrupt callback\n");
			return;
		}
		reg->req = r;
		reg->running = false;
		reg->next = live;
		live = reg;
		atomic_fetch_add(&compat_interrupt_funcs, 1);
	}
	reg->unique = rf_embed_req_unique(r);
	reg->func = func;
	reg->data = data;
	if (rf_req_interrupted(r) && !reg->running)
		run(reg, req);
	pthread_mutex_unlock(&lock);
}

void compat_interrupt_deliver(rf_req *req)
{
	struct registration *reg;

	if (!atomic_load(&compat_interrupt_funcs))
		return;
	pthread_mutex_lock(&lock);
	reg = *find(req);
	if (reg && reg->unique == rf_embed_req_unique(req) && !reg->running)
		run(reg, compat_fq(req));
	pthread_mutex_unlock(&lock);
}

void compat_interrupt_forget(rf_req *req)
{
	struct registration **p, *reg;

	pthread_mutex_lock(&lock);
	for (;;) {
		p = find(req);
		reg = *p;
		if (!reg || !reg->running || pthread_equal(reg->runner, pthread_self()))
			break;
		pthread_cond_wait(&finished, &lock);
	}
	if (reg && reg->running)
		reg->answered = true; /* by its own callback: released when that returns */
	else if (reg)
		release(p);
	pthread_mutex_unlock(&lock);
}

int fuse_req_interrupted(fuse_req_t req)
{
	return rf_req_interrupted(compat_rq(req));
}
