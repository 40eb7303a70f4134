/*
 * memfs deferred replies (-o defer=N): a test mode for the library's "answer later, from any
 * thread" path. Every operation that takes a reply is handed to a pool of N threads and
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
 * A job owns its request until it answers it. Names and write data live in the request's
 * buffer and stay valid until the reply, so the job points at them; rf_file_info and
 * struct stat arguments live on the dispatcher's stack and are copied into the job.
 */
#include "memfs.h"

#include <signal.h>

enum dop {
	D_LOOKUP,
	D_GETATTR,
	D_SETATTR,
	D_READLINK,
	D_MKNOD,
	D_MKDIR,
	D_UNLINK,
	D_RMDIR,
	D_SYMLINK,
	D_RENAME,
	D_LINK,
	D_OPEN,
	D_READ,
	D_WRITE,
	D_FLUSH,
	D_RELEASE,
	D_FSYNC,
	D_OPENDIR,
	D_READDIR,
	D_RELEASEDIR,
	D_FSYNCDIR,
	D_STATFS,
	D_SETXATTR,
	D_GETXATTR,
	D_LISTXATTR,
	D_REMOVEXATTR,
	D_ACCESS,
	D_CREATE,
	D_FALLOCATE,
	D_READDIRPLUS,
	D_COPY_FILE_RANGE,
	D_LSEEK,
	D_TMPFILE,
	D_SYNCFS,
	D_NOPS
};

static const char *const dop_names[D_NOPS] = {
	"lookup",  "getattr",	  "setattr", "readlink",   "mknod",	  "mkdir",
	"unlink",  "rmdir",	  "symlink", "rename",	   "link",	  "open",
	"read",	   "write",	  "flush",   "release",	   "fsync",	  "opendir",
	"readdir", "releasedir",  "fsyncdir", "statfs",	   "setxattr",	  "getxattr",
	"listxattr", "removexattr", "access", "create",	   "fallocate",	  "readdirplus",
	"copy_file_range", "lseek", "tmpfile", "syncfs",
};

#define NEVER_HELD ((1ull << D_RELEASE) | (1ull << D_RELEASEDIR))

struct job {
	struct job *next;
	rf_req *req;
	enum dop op;
	bool spare;	 /* the thread's fallback job: run at once, not freed */
	uint64_t due_ns; /* held until then (CLOCK_MONOTONIC) */
	rf_ino ino, ino2;
	const char *name, *name2, *buf; /* borrowed from the request */
	size_t size;
	off_t off, off2, len;
	int flags, mask;
	mode_t mode;
	dev_t rdev;
	struct stat attr;
	bool has_fi, has_fi2;
	struct rf_file_info fi, fi2;
};

static struct {
	struct rf_ops real; /* the operations the jobs run */
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

/* ---- running a job ---- */

static struct rf_file_info *job_fi(struct job *j)
{
	return j->has_fi ? &j->fi : NULL;
}

static void job_run(struct job *j)
{
	rf_req *r = j->req;
	const struct rf_ops *o = &dq.real;

	switch (j->op) {
	case D_LOOKUP:
		o->lookup(r, j->ino, j->name);
		break;
	case D_GETATTR:
		o->getattr(r, j->ino, job_fi(j));
		break;
	case D_SETATTR:
		o->setattr(r, j->ino, &j->attr, j->flags, job_fi(j));
		break;
	case D_READLINK:
		o->readlink(r, j->ino);
		break;
	case D_MKNOD:
		o->mknod(r, j->ino, j->name, j->mode, j->rdev);
		break;
	case D_MKDIR:
		o->mkdir(r, j->ino, j->name, j->mode);
		break;
	case D_UNLINK:
		o->unlink(r, j->ino, j->name);
		break;
	case D_RMDIR:
		o->rmdir(r, j->ino, j->name);
		break;
	case D_SYMLINK:
		o->symlink(r, j->name2, j->ino, j->name);
		break;
	case D_RENAME:
		o->rename(r, j->ino, j->name, j->ino2, j->name2, (unsigned int)j->flags);
		break;
	case D_LINK:
		o->link(r, j->ino, j->ino2, j->name);
		break;
	case D_OPEN:
		o->open(r, j->ino, job_fi(j));
		break;
	case D_READ:
		o->read(r, j->ino, j->size, j->off, job_fi(j));
		break;
	case D_WRITE:
		o->write(r, j->ino, j->buf, j->size, j->off, job_fi(j));
		break;
	case D_FLUSH:
		o->flush(r, j->ino, job_fi(j));
		break;
	case D_RELEASE:
		o->release(r, j->ino, job_fi(j));
		break;
	case D_FSYNC:
		o->fsync(r, j->ino, j->flags, job_fi(j));
		break;
	case D_OPENDIR:
		o->opendir(r, j->ino, job_fi(j));
		break;
	case D_READDIR:
		o->readdir(r, j->ino, j->size, j->off, job_fi(j));
		break;
	case D_RELEASEDIR:
		o->releasedir(r, j->ino, job_fi(j));
		break;
	case D_FSYNCDIR:
		o->fsyncdir(r, j->ino, j->flags, job_fi(j));
		break;
	case D_STATFS:
		o->statfs(r, j->ino);
		break;
	case D_SETXATTR:
		o->setxattr(r, j->ino, j->name, j->buf, j->size, j->flags);
		break;
	case D_GETXATTR:
		o->getxattr(r, j->ino, j->name, j->size);
		break;
	case D_LISTXATTR:
		o->listxattr(r, j->ino, j->size);
		break;
	case D_REMOVEXATTR:
		o->removexattr(r, j->ino, j->name);
		break;
	case D_ACCESS:
		o->access(r, j->ino, j->mask);
		break;
	case D_CREATE:
		o->create(r, j->ino, j->name, j->mode, job_fi(j));
		break;
	case D_FALLOCATE:
		o->fallocate(r, j->ino, j->flags, j->off, j->len, job_fi(j));
		break;
	case D_READDIRPLUS:
		o->readdirplus(r, j->ino, j->size, j->off, job_fi(j));
		break;
	case D_COPY_FILE_RANGE:
		o->copy_file_range(r, j->ino, j->off, job_fi(j), j->ino2, j->off2,
				   j->has_fi2 ? &j->fi2 : NULL, j->size, j->flags);
		break;
	case D_LSEEK:
		o->lseek(r, j->ino, j->off, j->flags, job_fi(j));
		break;
	case D_TMPFILE:
		o->tmpfile(r, j->ino, j->mode, job_fi(j));
		break;
	case D_SYNCFS:
		o->syncfs(r, j->ino);
		break;
	case D_NOPS:
		rf_reply_err(r, ENOSYS);
		break;
	}
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

static struct job *job_new(rf_req *req, enum dop op)
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

static void job_submit(struct job *j)
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

static void copy_fi(struct job *j, const struct rf_file_info *fi)
{
	if (fi) {
		j->fi = *fi;
		j->has_fi = true;
	}
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
static void d_interrupt(rf_req *req, void *userdata)
{
	(void)req;
	(void)userdata;
	pthread_mutex_lock(&dq.lock);
	pthread_cond_signal(&dq.timer);
	pthread_mutex_unlock(&dq.lock);
}

/* ---- the deferring operations ---- */

static void d_lookup(rf_req *req, rf_ino parent, const char *name)
{
	struct job *j = job_new(req, D_LOOKUP);

	j->ino = parent;
	j->name = name;
	job_submit(j);
}

static void d_getattr(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	struct job *j = job_new(req, D_GETATTR);

	j->ino = ino;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_setattr(rf_req *req, rf_ino ino, struct stat *attr, int to_set,
		      struct rf_file_info *fi)
{
	struct job *j = job_new(req, D_SETATTR);

	j->ino = ino;
	j->attr = *attr;
	j->flags = to_set;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_readlink(rf_req *req, rf_ino ino)
{
	struct job *j = job_new(req, D_READLINK);

	j->ino = ino;
	job_submit(j);
}

static void d_mknod(rf_req *req, rf_ino parent, const char *name, mode_t mode, dev_t rdev)
{
	struct job *j = job_new(req, D_MKNOD);

	j->ino = parent;
	j->name = name;
	j->mode = mode;
	j->rdev = rdev;
	job_submit(j);
}

static void d_mkdir(rf_req *req, rf_ino parent, const char *name, mode_t mode)
{
	struct job *j = job_new(req, D_MKDIR);

	j->ino = parent;
	j->name = name;
	j->mode = mode;
	job_submit(j);
}

static void d_unlink(rf_req *req, rf_ino parent, const char *name)
{
	struct job *j = job_new(req, D_UNLINK);

	j->ino = parent;
	j->name = name;
	job_submit(j);
}

static void d_rmdir(rf_req *req, rf_ino parent, const char *name)
{
	struct job *j = job_new(req, D_RMDIR);

	j->ino = parent;
	j->name = name;
	job_submit(j);
}

static void d_symlink(rf_req *req, const char *link, rf_ino parent, const char *name)
{
	struct job *j = job_new(req, D_SYMLINK);

	j->ino = parent;
	j->name = name;
	j->name2 = link;
	job_submit(j);
}

static void d_rename(rf_req *req, rf_ino parent, const char *name, rf_ino newparent,
		     const char *newname, unsigned int flags)
{
	struct job *j = job_new(req, D_RENAME);

	j->ino = parent;
	j->name = name;
	j->ino2 = newparent;
	j->name2 = newname;
	j->flags = (int)flags;
	job_submit(j);
}

static void d_link(rf_req *req, rf_ino ino, rf_ino newparent, const char *newname)
{
	struct job *j = job_new(req, D_LINK);

	j->ino = ino;
	j->ino2 = newparent;
	j->name = newname;
	job_submit(j);
}

/* open, flush, release, opendir, releasedir: (req, ino, fi). */
static void d_fi_op(rf_req *req, enum dop op, rf_ino ino, struct rf_file_info *fi)
{
	struct job *j = job_new(req, op);

	j->ino = ino;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_open(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	d_fi_op(req, D_OPEN, ino, fi);
}

static void d_flush(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	d_fi_op(req, D_FLUSH, ino, fi);
}

static void d_release(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	d_fi_op(req, D_RELEASE, ino, fi);
}

static void d_opendir(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	d_fi_op(req, D_OPENDIR, ino, fi);
}

static void d_releasedir(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	d_fi_op(req, D_RELEASEDIR, ino, fi);
}

/* read, readdir, readdirplus: (req, ino, size, off, fi). */
static void d_read_op(rf_req *req, enum dop op, rf_ino ino, size_t size, off_t off,
		      struct rf_file_info *fi)
{
	struct job *j = job_new(req, op);

	j->ino = ino;
	j->size = size;
	j->off = off;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_read(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	d_read_op(req, D_READ, ino, size, off, fi);
}

static void d_readdir(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	d_read_op(req, D_READDIR, ino, size, off, fi);
}

static void d_readdirplus(rf_req *req, rf_ino ino, size_t size, off_t off,
			  struct rf_file_info *fi)
{
	d_read_op(req, D_READDIRPLUS, ino, size, off, fi);
}

static void d_write(rf_req *req, rf_ino ino, const char *buf, size_t size, off_t off,
		    struct rf_file_info *fi)
{
	struct job *j = job_new(req, D_WRITE);

	j->ino = ino;
	j->buf = buf;
	j->size = size;
	j->off = off;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_fsync_op(rf_req *req, enum dop op, rf_ino ino, int datasync,
		       struct rf_file_info *fi)
{
	struct job *j = job_new(req, op);

	j->ino = ino;
	j->flags = datasync;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_fsync(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi)
{
	d_fsync_op(req, D_FSYNC, ino, datasync, fi);
}

static void d_fsyncdir(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi)
{
	d_fsync_op(req, D_FSYNCDIR, ino, datasync, fi);
}

static void d_statfs(rf_req *req, rf_ino ino)
{
	struct job *j = job_new(req, D_STATFS);

	j->ino = ino;
	job_submit(j);
}

static void d_setxattr(rf_req *req, rf_ino ino, const char *name, const char *value, size_t size,
		       int flags)
{
	struct job *j = job_new(req, D_SETXATTR);

	j->ino = ino;
	j->name = name;
	j->buf = value;
	j->size = size;
	j->flags = flags;
	job_submit(j);
}

static void d_getxattr(rf_req *req, rf_ino ino, const char *name, size_t size)
{
	struct job *j = job_new(req, D_GETXATTR);

	j->ino = ino;
	j->name = name;
	j->size = size;
	job_submit(j);
}

static void d_listxattr(rf_req *req, rf_ino ino, size_t size)
{
	struct job *j = job_new(req, D_LISTXATTR);

	j->ino = ino;
	j->size = size;
	job_submit(j);
}

static void d_removexattr(rf_req *req, rf_ino ino, const char *name)
{
	struct job *j = job_new(req, D_REMOVEXATTR);

	j->ino = ino;
	j->name = name;
	job_submit(j);
}

static void d_access(rf_req *req, rf_ino ino, int mask)
{
	struct job *j = job_new(req, D_ACCESS);

	j->ino = ino;
	j->mask = mask;
	job_submit(j);
}

static void d_create(rf_req *req, rf_ino parent, const char *name, mode_t mode,
		     struct rf_file_info *fi)
{
	struct job *j = job_new(req, D_CREATE);

	j->ino = parent;
	j->name = name;
	j->mode = mode;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_fallocate(rf_req *req, rf_ino ino, int mode, off_t offset, off_t length,
			struct rf_file_info *fi)
{
	struct job *j = job_new(req, D_FALLOCATE);

	j->ino = ino;
	j->flags = mode;
	j->off = offset;
	j->len = length;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_copy_file_range(rf_req *req, rf_ino ino_in, off_t off_in,
			      struct rf_file_info *fi_in, rf_ino ino_out, off_t off_out,
			      struct rf_file_info *fi_out, size_t len, int flags)
{
	struct job *j = job_new(req, D_COPY_FILE_RANGE);

	j->ino = ino_in;
	j->off = off_in;
	copy_fi(j, fi_in);
	j->ino2 = ino_out;
	j->off2 = off_out;
	if (fi_out) {
		j->fi2 = *fi_out;
		j->has_fi2 = true;
	}
	j->size = len;
	j->flags = flags;
	job_submit(j);
}

static void d_lseek(rf_req *req, rf_ino ino, off_t off, int whence, struct rf_file_info *fi)
{
	struct job *j = job_new(req, D_LSEEK);

	j->ino = ino;
	j->off = off;
	j->flags = whence;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_tmpfile(rf_req *req, rf_ino parent, mode_t mode, struct rf_file_info *fi)
{
	struct job *j = job_new(req, D_TMPFILE);

	j->ino = parent;
	j->mode = mode;
	copy_fi(j, fi);
	job_submit(j);
}

static void d_syncfs(rf_req *req, rf_ino ino)
{
	struct job *j = job_new(req, D_SYNCFS);

	j->ino = ino;
	job_submit(j);
}

/* ---- setup ---- */

void defer_wrap(struct rf_ops *ops)
{
	dq.real = *ops;
#define WRAP(op)                        \
	do {                            \
		if (ops->op)            \
			ops->op = d_##op; \
	} while (0)
	WRAP(lookup);
	WRAP(getattr);
	WRAP(setattr);
	WRAP(readlink);
	WRAP(mknod);
	WRAP(mkdir);
	WRAP(unlink);
	WRAP(rmdir);
	WRAP(symlink);
	WRAP(rename);
	WRAP(link);
	WRAP(open);
	WRAP(read);
	WRAP(write);
	WRAP(flush);
	WRAP(release);
	WRAP(fsync);
	WRAP(opendir);
	WRAP(readdir);
	WRAP(releasedir);
	WRAP(fsyncdir);
	WRAP(statfs);
	WRAP(setxattr);
	WRAP(getxattr);
	WRAP(listxattr);
	WRAP(removexattr);
	WRAP(access);
	WRAP(create);
	WRAP(fallocate);
	WRAP(readdirplus);
	WRAP(copy_file_range);
	WRAP(lseek);
	WRAP(tmpfile);
	WRAP(syncfs);
#undef WRAP
	ops->interrupt = d_interrupt;
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
		int op = -1;

		for (int i = 0; i < D_NOPS && op < 0; i++)
			if (strlen(dop_names[i]) == len && !strncmp(p, dop_names[i], len))
				op = i;
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
