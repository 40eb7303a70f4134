/*
 * memfs test hook (-o test_threads_log): which threads the library runs memfs's callbacks on, and
 * how many of them run at once. The operations table is wrapped (outermost, around deferred
 * replies too); each callback notes its thread and the number of callbacks running, and at
 * exit one line reports both:
 *
 *   memfs: callbacks ran on N thread(s): TID[,TID...]; at most M at once; C callbacks
 *
 * A filesystem written for a single-threaded loop relies on N = 1 and M = 1: the tests of
 * single-threaded serving (-s, uring_threads=1) read that line from the daemon's log.
 */
#include "memfs.h"

#include <sys/syscall.h>

#define THREADS_MAX 64

static struct {
	struct rf_ops real;
	_Atomic pid_t tid[THREADS_MAX];
	_Atomic unsigned int ntids, overflow;
	_Atomic unsigned int running, most;
	_Atomic uint64_t calls;
} tl;

static void note_enter(void)
{
	pid_t me = (pid_t)syscall(SYS_gettid);
	unsigned int now = atomic_fetch_add(&tl.running, 1) + 1, most = atomic_load(&tl.most);
	unsigned int n = atomic_load(&tl.ntids);

	while (now > most && !atomic_compare_exchange_weak(&tl.most, &most, now))
		;
	atomic_fetch_add(&tl.calls, 1);
	for (unsigned int i = 0; i < n && i < THREADS_MAX; i++)
		if (atomic_load(&tl.tid[i]) == me)
			return;
	/* Claim a slot, then fill it; a reader between the two sees a 0 and skips it. */
	n = atomic_fetch_add(&tl.ntids, 1);
	if (n < THREADS_MAX)
		atomic_store(&tl.tid[n], me);
	else
		atomic_fetch_add(&tl.overflow, 1);
}

static void note_leave(void)
{
	atomic_fetch_sub(&tl.running, 1);
}

#define CALL(op, ...)                    \
	do {                             \
		note_enter();            \
		tl.real.op(__VA_ARGS__); \
		note_leave();            \
	} while (0)

static void t_init(void *u, struct rf_conn_info *c)
{
	CALL(init, u, c);
}
static void t_destroy(void *u)
{
	CALL(destroy, u);
}
static void t_remount(void *u, unsigned int flags)
{
	CALL(remount, u, flags);
}
static void t_lookup(rf_req *r, rf_ino p, const char *n)
{
	CALL(lookup, r, p, n);
}
static void t_forget(rf_req *r, rf_ino i, uint64_t n)
{
	CALL(forget, r, i, n);
}
static void t_getattr(rf_req *r, rf_ino i, struct rf_file_info *fi)
{
	CALL(getattr, r, i, fi);
}
static void t_setattr(rf_req *r, rf_ino i, struct stat *a, int s, struct rf_file_info *fi)
{
	CALL(setattr, r, i, a, s, fi);
}
static void t_readlink(rf_req *r, rf_ino i)
{
	CALL(readlink, r, i);
}
static void t_mknod(rf_req *r, rf_ino p, const char *n, mode_t m, dev_t d)
{
	CALL(mknod, r, p, n, m, d);
}
static void t_mkdir(rf_req *r, rf_ino p, const char *n, mode_t m)
{
	CALL(mkdir, r, p, n, m);
}
static void t_unlink(rf_req *r, rf_ino p, const char *n)
{
	CALL(unlink, r, p, n);
}
static void t_rmdir(rf_req *r, rf_ino p, const char *n)
{
	CALL(rmdir, r, p, n);
}
static void t_symlink(rf_req *r, const char *l, rf_ino p, const char *n)
{
	CALL(symlink, r, l, p, n);
}
static void t_rename(rf_req *r, rf_ino p, const char *n, rf_ino np, const char *nn, unsigned int f)
{
	CALL(rename, r, p, n, np, nn, f);
}
static void t_link(rf_req *r, rf_ino i, rf_ino np, const char *nn)
{
	CALL(link, r, i, np, nn);
}
static void t_open(rf_req *r, rf_ino i, struct rf_file_info *fi)
{
	CALL(open, r, i, fi);
}
static void t_read(rf_req *r, rf_ino i, size_t s, off_t o, struct rf_file_info *fi)
{
	CALL(read, r, i, s, o, fi);
}
static void t_write(rf_req *r, rf_ino i, const char *b, size_t s, off_t o, struct rf_file_info *fi)
{
	CALL(write, r, i, b, s, o, fi);
}
static void t_flush(rf_req *r, rf_ino i, struct rf_file_info *fi)
{
	CALL(flush, r, i, fi);
}
static void t_release(rf_req *r, rf_ino i, struct rf_file_info *fi)
{
	CALL(release, r, i, fi);
}
static void t_fsync(rf_req *r, rf_ino i, int d, struct rf_file_info *fi)
{
	CALL(fsync, r, i, d, fi);
}
static void t_opendir(rf_req *r, rf_ino i, struct rf_file_info *fi)
{
	CALL(opendir, r, i, fi);
}
static void t_readdir(rf_req *r, rf_ino i, size_t s, off_t o, struct rf_file_info *fi)
{
	CALL(readdir, r, i, s, o, fi);
}
static void t_releasedir(rf_req *r, rf_ino i, struct rf_file_info *fi)
{
	CALL(releasedir, r, i, fi);
}
static void t_fsyncdir(rf_req *r, rf_ino i, int d, struct rf_file_info *fi)
{
	CALL(fsyncdir, r, i, d, fi);
}
static void t_statfs(rf_req *r, rf_ino i)
{
	CALL(statfs, r, i);
}
static void t_setxattr(rf_req *r, rf_ino i, const char *n, const char *v, size_t s, int f)
{
	CALL(setxattr, r, i, n, v, s, f);
}
static void t_getxattr(rf_req *r, rf_ino i, const char *n, size_t s)
{
	CALL(getxattr, r, i, n, s);
}
static void t_listxattr(rf_req *r, rf_ino i, size_t s)
{
	CALL(listxattr, r, i, s);
}
static void t_removexattr(rf_req *r, rf_ino i, const char *n)
{
	CALL(removexattr, r, i, n);
}
static void t_access(rf_req *r, rf_ino i, int m)
{
	CALL(access, r, i, m);
}
static void t_create(rf_req *r, rf_ino p, const char *n, mode_t m, struct rf_file_info *fi)
{
	CALL(create, r, p, n, m, fi);
}
static void t_fallocate(rf_req *r, rf_ino i, int m, off_t o, off_t l, struct rf_file_info *fi)
{
	CALL(fallocate, r, i, m, o, l, fi);
}
static void t_readdirplus(rf_req *r, rf_ino i, size_t s, off_t o, struct rf_file_info *fi)
{
	CALL(readdirplus, r, i, s, o, fi);
}
static void t_copy_file_range(rf_req *r, rf_ino ii, off_t oi, struct rf_file_info *fii, rf_ino io,
			      off_t oo, struct rf_file_info *fio, size_t l, int f)
{
	CALL(copy_file_range, r, ii, oi, fii, io, oo, fio, l, f);
}
static void t_lseek(rf_req *r, rf_ino i, off_t o, int w, struct rf_file_info *fi)
{
	CALL(lseek, r, i, o, w, fi);
}
static void t_tmpfile(rf_req *r, rf_ino p, mode_t m, struct rf_file_info *fi)
{
	CALL(tmpfile, r, p, m, fi);
}
static void t_interrupt(rf_req *r, void *u)
{
	CALL(interrupt, r, u);
}
static void t_syncfs(rf_req *r, rf_ino i)
{
	CALL(syncfs, r, i);
}

void threads_log_wrap(struct rf_ops *ops)
{
	tl.real = *ops;
#define WRAP(op)                          \
	do {                              \
		if (ops->op)              \
			ops->op = t_##op; \
	} while (0)
	WRAP(init);
	WRAP(destroy);
	WRAP(remount);
	WRAP(lookup);
	WRAP(forget);
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
	WRAP(interrupt);
	WRAP(syncfs);
#undef WRAP
}

void threads_log_report(void)
{
	unsigned int n = atomic_load(&tl.ntids);
	char list[THREADS_MAX * 12] = "";
	size_t used = 0;

	for (unsigned int i = 0; i < n && i < THREADS_MAX; i++)
		used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%d", i ? "," : "",
					 (int)atomic_load(&tl.tid[i]));
	fprintf(stderr,
		"memfs: callbacks ran on %u thread(s): %s%s; at most %u at once; %llu callbacks\n",
		n, list, atomic_load(&tl.overflow) ? ",..." : "", atomic_load(&tl.most),
		(unsigned long long)atomic_load(&tl.calls));
}
