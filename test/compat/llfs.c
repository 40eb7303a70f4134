/*
 * llfs: a small filesystem on libfuse 3's low-level API, written for the tests of ringfuse's
 * libfuse3.so.3 (test/mount/test_compat_api.py). Built against the system's libfuse headers
 * and linked with the system's libfuse3, it is run under ringfuse-run like any other program.
 *
 * One flat directory of files kept in memory, cached by the kernel for a day (entries,
 * attributes, pages), plus files whose reads take the other reply paths:
 *   ctl       writing "COMMAND ARGS" runs a command (below); the write fails with its errno
 *   iov-file  read answered with fuse_reply_iov() in three pieces
 *   fd-file   read answered with fuse_reply_data() from a file descriptor
 *   negerr    open answered fuse_reply_err(req, -EIO) (a bad error value)
 * Writes to other files are answered before their data is copied, and lookups use the name
 * after answering: libfuse keeps a request's arguments until its handler returns.
 * Reading the extended attribute user.slow of any file waits until the kernel interrupts the
 * request (an interrupt callback), then fails with EINTR.
 * Extended attributes of the root report what the library showed the filesystem:
 * user.lastlookup, user.ctx ("uid gid pid"), user.groups, user.maxread (largest read seen),
 * user.interrupts, user.conn ("capable want"), user.threads (how many threads ran callbacks);
 * of a file, user.umask (at its creation).
 *
 * ctl commands: set NAME DATA (change content behind the kernel's back), inval_inode NAME,
 * inval_entry NAME, expire NAME, delete NAME (remove and tell the kernel), store NAME DATA
 * (into the kernel's cache only), retrieve NAME, exit (fuse_session_exit()).
 *
 *   llfs [FUSE options] [--loop=single|mt|mt32|mt30|own] [--max-read=N] MOUNTPOINT
 * mt uses fuse_session_loop_mt@FUSE_3.12, mt32 @FUSE_3.2, mt30 @FUSE_3.0; own reads
 * /dev/fuse itself (fuse_session_receive_buf() and fuse_session_process_buf()).
 */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

/* The older ABI versions of the multi-threaded loop, bound by version. */
int loop_mt_v32(struct fuse_session *se, struct fuse_loop_config_v1 *config);
int loop_mt_v30(struct fuse_session *se, int clone_fd);
__asm__(".symver loop_mt_v32, fuse_session_loop_mt@FUSE_3.2");
__asm__(".symver loop_mt_v30, fuse_session_loop_mt@FUSE_3.0");

#define MAX_FILES 64
#define DAY	  86400.0
#define SLOW_WAIT 20 /* seconds a slow read waits for its interrupt */
#define FIRST_INO 2

struct file {
	bool live;
	char name[256];
	mode_t mode;
	char *data;
	size_t size;
	mode_t umask;
	uint64_t lookups;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t interrupted;
	struct fuse_session *se;
	struct file files[MAX_FILES];
	char last_lookup[1100];
	size_t max_read_seen;
	unsigned int interrupts;
	unsigned int capable, want;
	unsigned int max_read;
	int backing_fd;
	pid_t threads[64]; /* the threads callbacks ran on */
	unsigned int nthreads;
} fs = {.lock = PTHREAD_MUTEX_INITIALIZER, .interrupted = PTHREAD_COND_INITIALIZER};

static const char iov_text[] = "one-two-three";
static const char fd_text[] = "data that comes from a file descriptor\n";

/* Called first thing by every callback. */
static void note_thread(void)
{
	pid_t tid = gettid();

	pthread_mutex_lock(&fs.lock);
	for (unsigned int i = 0; i < fs.nthreads; i++)
		if (fs.threads[i] == tid)
			goto out;
	if (fs.nthreads < sizeof(fs.threads) / sizeof(fs.threads[0]))
		fs.threads[fs.nthreads++] = tid;
out:
	pthread_mutex_unlock(&fs.lock);
}

static fuse_ino_t ino_of(int i)
{
	return (fuse_ino_t)i + FIRST_INO;
}

static struct file *file_of(fuse_ino_t ino)
{
	if (ino < FIRST_INO || ino >= FIRST_INO + MAX_FILES || !fs.files[ino - FIRST_INO].live)
		return NULL;
	return &fs.files[ino - FIRST_INO];
}

static int find(const char *name)
{
	for (int i = 0; i < MAX_FILES; i++)
		if (fs.files[i].live && strcmp(fs.files[i].name, name) == 0)
			return i;
	return -1;
}

static int add(const char *name, const char *data, mode_t mode)
{
	for (int i = 0; i < MAX_FILES; i++) {
		struct file *f = &fs.files[i];

		if (f->live)
			continue;
		memset(f, 0, sizeof(*f));
		f->live = true;
		snprintf(f->name, sizeof(f->name), "%s", name);
		f->mode = mode;
		f->size = strlen(data);
		f->data = strdup(data);
		return i;
	}
	return -1;
}

static void attr_of(fuse_ino_t ino, struct stat *st)
{
	struct file *f = file_of(ino);

	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	if (ino == FUSE_ROOT_ID) {
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		return;
	}
	st->st_mode = S_IFREG | f->mode;
	st->st_nlink = 1;
	st->st_size = (off_t)f->size;
	if (strcmp(f->name, "iov-file") == 0)
		st->st_size = sizeof(iov_text) - 1;
	if (strcmp(f->name, "fd-file") == 0)
		st->st_size = sizeof(fd_text) - 1;
}

static void ll_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	fs.capable = conn->capable;
	fs.want = conn->want;
	conn->max_read = fs.max_read;
}

static void ll_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e = {.attr_timeout = DAY, .entry_timeout = DAY};
	int i;

	note_thread();
	pthread_mutex_lock(&fs.lock);
	i = parent == FUSE_ROOT_ID ? find(name) : -1;
	if (i < 0) {
		pthread_mutex_unlock(&fs.lock);
		fuse_reply_err(req, ENOENT);
	} else {
		e.ino = ino_of(i);
		fs.files[i].lookups++;
		attr_of(e.ino, &e.attr);
		pthread_mutex_unlock(&fs.lock);
		fuse_reply_entry(req, &e);
	}
	/* After the reply: libfuse keeps the name valid until the handler returns. */
	pthread_mutex_lock(&fs.lock);
	snprintf(fs.last_lookup, sizeof(fs.last_lookup), "%s", name);
	pthread_mutex_unlock(&fs.lock);
}

static void ll_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct file *f;

	note_thread();
	pthread_mutex_lock(&fs.lock);
	f = file_of(ino);
	if (f)
		f->lookups -= nlookup < f->lookups ? nlookup : f->lookups;
	pthread_mutex_unlock(&fs.lock);
	fuse_reply_none(req);
}

static void ll_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;

	note_thread();
	(void)fi;
	pthread_mutex_lock(&fs.lock);
	if (ino != FUSE_ROOT_ID && !file_of(ino)) {
		pthread_mutex_unlock(&fs.lock);
		fuse_reply_err(req, ENOENT);
		return;
	}
	attr_of(ino, &st);
	pthread_mutex_unlock(&fs.lock);
	fuse_reply_attr(req, &st, DAY);
}

static void ll_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct file *f;
	struct stat st;

	note_thread();
	(void)fi;
	pthread_mutex_lock(&fs.lock);
	f = file_of(ino);
	if (!f) {
		pthread_mutex_unlock(&fs.lock);
		fuse_reply_err(req, ino == FUSE_ROOT_ID ? EPERM : ENOENT);
		return;
	}
	if (to_set & FUSE_SET_ATTR_SIZE) {
		f->data = realloc(f->data, (size_t)attr->st_size + 1);
		if ((size_t)attr->st_size > f->size)
			memset(f->data + f->size, 0, (size_t)attr->st_size - f->size);
		f->size = (size_t)attr->st_size;
	}
	if (to_set & FUSE_SET_ATTR_MODE)
		f->mode = attr->st_mode & 07777;
	attr_of(ino, &st);
	pthread_mutex_unlock(&fs.lock);
	fuse_reply_attr(req, &st, DAY);
}

static void list(fuse_req_t req, size_t size, off_t off, bool plus)
{
	char *buf = malloc(size);
	size_t used = 0;
	int idx = 0;

	pthread_mutex_lock(&fs.lock);
	for (int i = -2; i < MAX_FILES; i++) {
		const char *name = i == -2 ? "." : i == -1 ? ".." : fs.files[i].name;
		struct fuse_entry_param e = {.attr_timeout = DAY, .entry_timeout = DAY};
		size_t n;

		if (i >= 0 && !fs.files[i].live)
			continue;
		if (idx++ < off)
			continue;
		e.ino = i < 0 ? FUSE_ROOT_ID : ino_of(i);
		attr_of(e.ino, &e.attr);
		n = plus ? fuse_add_direntry_plus(req, buf + used, size - used, name, &e, idx)
			 : fuse_add_direntry(req, buf + used, size - used, name, &e.attr, idx);
		if (n > size - used)
			break;
		if (plus && i >= 0)
			fs.files[i].lookups++;
		used += n;
	}
	pthread_mutex_unlock(&fs.lock);
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void ll_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	note_thread();
	(void)ino, (void)fi;
	list(req, size, off, false);
}

static void ll_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	note_thread();
	(void)ino, (void)fi;
	list(req, size, off, true);
}

static void ll_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct file *f;

	note_thread();
	pthread_mutex_lock(&fs.lock);
	f = file_of(ino);
	if (f && strcmp(f->name, "negerr") == 0) {
		pthread_mutex_unlock(&fs.lock);
		fuse_reply_err(req, -EIO); /* a bad value on purpose: answered ERANGE */
		return;
	}
	pthread_mutex_unlock(&fs.lock);
	fi->keep_cache = 1;
	fi->fh = ino;
	fuse_reply_open(req, fi);
}

static void on_interrupt(fuse_req_t req, void *data)
{
	bool *flag = data;

	(void)req;
	pthread_mutex_lock(&fs.lock);
	*flag = true;
	fs.interrupts++;
	pthread_cond_broadcast(&fs.interrupted);
	pthread_mutex_unlock(&fs.lock);
}

/* A request the kernel waits for interruptibly (unlike page cache reads): getxattr. */
static void slow_getxattr(fuse_req_t req)
{
	bool interrupted = false;
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += SLOW_WAIT;
	fuse_req_interrupt_func(req, on_interrupt, &interrupted);
	pthread_mutex_lock(&fs.lock);
	while (!interrupted) {
		if (pthread_cond_timedwait(&fs.interrupted, &fs.lock, &until) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&fs.lock);
	if (interrupted && fuse_req_interrupted(req))
		fuse_reply_err(req, EINTR);
	else
		fuse_reply_err(req, ETIMEDOUT);
}

static size_t slice(size_t total, off_t off, size_t size, size_t *start)
{
	*start = (size_t)off < total ? (size_t)off : total;
	return total - *start < size ? total - *start : size;
}

static void ll_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct file *f;
	size_t start, n;

	note_thread();
	(void)fi;
	pthread_mutex_lock(&fs.lock);
	if (size > fs.max_read_seen)
		fs.max_read_seen = size;
	f = file_of(ino);
	if (!f) {
		pthread_mutex_unlock(&fs.lock);
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (strcmp(f->name, "iov-file") == 0) {
		struct iovec iov[3];

		pthread_mutex_unlock(&fs.lock);
		n = slice(sizeof(iov_text) - 1, off, size, &start);
		iov[0] = (struct iovec){(char *)iov_text + start, n / 3};
		iov[1] = (struct iovec){(char *)iov_text + start + n / 3, n / 3};
		iov[2] = (struct iovec){(char *)iov_text + start + 2 * (n / 3), n - 2 * (n / 3)};
		fuse_reply_iov(req, iov, 3);
	} else if (strcmp(f->name, "fd-file") == 0) {
		struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);

		pthread_mutex_unlock(&fs.lock);
		buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		buf.buf[0].fd = fs.backing_fd;
		buf.buf[0].pos = off;
		fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
	} else {
		char *copy;

		n = slice(f->size, off, size, &start);
		copy = malloc(n + 1);
		memcpy(copy, f->data + start, n);
		pthread_mutex_unlock(&fs.lock);
		fuse_reply_buf(req, copy, n);
		free(copy);
	}
}

static int ctl_command(char *cmd)
{
	char *verb = strtok(cmd, " \n"), *name = strtok(NULL, " \n"), *data = strtok(NULL, "\n");
	struct fuse_session *se = fs.se;
	int i, ret = 0;

	if (verb && strcmp(verb, "exit") == 0) {
		fuse_session_exit(se);
		return 0;
	}
	if (!verb || !name)
		return -EINVAL;
	pthread_mutex_lock(&fs.lock);
	i = find(name);
	pthread_mutex_unlock(&fs.lock);
	if (i < 0 && strcmp(verb, "inval_entry") != 0 && strcmp(verb, "expire") != 0)
		return -ENOENT;
	if (strcmp(verb, "set") == 0) {
		pthread_mutex_lock(&fs.lock);
		free(fs.files[i].data);
		fs.files[i].data = strdup(data ? data : "");
		fs.files[i].size = strlen(fs.files[i].data);
		pthread_mutex_unlock(&fs.lock);
	} else if (strcmp(verb, "inval_inode") == 0) {
		ret = fuse_lowlevel_notify_inval_inode(se, ino_of(i), 0, 0);
	} else if (strcmp(verb, "inval_entry") == 0) {
		ret = fuse_lowlevel_notify_inval_entry(se, FUSE_ROOT_ID, name, strlen(name));
	} else if (strcmp(verb, "expire") == 0) {
		ret = fuse_lowlevel_notify_expire_entry(se, FUSE_ROOT_ID, name, strlen(name),
							FUSE_LL_EXPIRE_ONLY);
	} else if (strcmp(verb, "delete") == 0) {
		pthread_mutex_lock(&fs.lock);
		fs.files[i].live = false;
		pthread_mutex_unlock(&fs.lock);
		ret = fuse_lowlevel_notify_delete(se, FUSE_ROOT_ID, ino_of(i), name, strlen(name));
	} else if (strcmp(verb, "store") == 0) {
		struct fuse_bufvec buf = FUSE_BUFVEC_INIT(data ? strlen(data) : 0);

		buf.buf[0].mem = data;
		ret = fuse_lowlevel_notify_store(se, ino_of(i), 0, &buf, 0);
	} else if (strcmp(verb, "retrieve") == 0) {
		ret = fuse_lowlevel_notify_retrieve(se, ino_of(i), 16, 0, NULL);
	} else {
		ret = -EINVAL;
	}
	return ret;
}

static void ll_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct file *f;

	note_thread();
	(void)fi;
	pthread_mutex_lock(&fs.lock);
	f = file_of(ino);
	if (f && strcmp(f->name, "ctl") == 0) {
		char cmd[512];
		int ret;

		pthread_mutex_unlock(&fs.lock);
		snprintf(cmd, sizeof(cmd), "%.*s", (int)size, buf);
		ret = ctl_command(cmd);
		if (ret < 0)
			fuse_reply_err(req, -ret);
		else
			fuse_reply_write(req, size);
		return;
	}
	if (!f) {
		pthread_mutex_unlock(&fs.lock);
		fuse_reply_err(req, ENOENT);
		return;
	}
	/* Answered before the data is read: libfuse keeps buf until the handler returns. */
	fuse_reply_write(req, size);
	if ((size_t)off + size > f->size) {
		f->data = realloc(f->data, (size_t)off + size + 1);
		if ((size_t)off > f->size)
			memset(f->data + f->size, 0, (size_t)off - f->size);
		f->size = (size_t)off + size;
	}
	memcpy(f->data + off, buf, size);
	pthread_mutex_unlock(&fs.lock);
}

static void ll_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fuse_entry_param e = {.attr_timeout = DAY, .entry_timeout = DAY};
	int i;

	note_thread();
	pthread_mutex_lock(&fs.lock);
	i = parent == FUSE_ROOT_ID && find(name) < 0 ? add(name, "", mode & 07777) : -1;
	if (i < 0) {
		pthread_mutex_unlock(&fs.lock);
		fuse_reply_err(req, EEXIST);
		return;
	}
	fs.files[i].umask = fuse_req_ctx(req)->umask;
	fs.files[i].lookups++;
	e.ino = ino_of(i);
	attr_of(e.ino, &e.attr);
	pthread_mutex_unlock(&fs.lock);
	fi->fh = e.ino;
	fuse_reply_create(req, &e, fi);
}

static void ll_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	int i;

	note_thread();
	pthread_mutex_lock(&fs.lock);
	i = parent == FUSE_ROOT_ID ? find(name) : -1;
	if (i >= 0)
		fs.files[i].live = false;
	pthread_mutex_unlock(&fs.lock);
	fuse_reply_err(req, i < 0 ? ENOENT : 0);
}

static void reply_text(fuse_req_t req, size_t size, const char *text)
{
	size_t n = strlen(text);

	if (size == 0)
		fuse_reply_xattr(req, n);
	else if (size < n)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, text, n);
}

static void ll_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char text[2048] = "";
	struct file *f;

	note_thread();
	if (strcmp(name, "user.slow") == 0) {
		slow_getxattr(req);
		return;
	}
	pthread_mutex_lock(&fs.lock);
	f = file_of(ino);
	if (ino == FUSE_ROOT_ID && strcmp(name, "user.lastlookup") == 0) {
		snprintf(text, sizeof(text), "%s", fs.last_lookup);
	} else if (ino == FUSE_ROOT_ID && strcmp(name, "user.ctx") == 0) {
		const struct fuse_ctx *c = fuse_req_ctx(req);

		snprintf(text, sizeof(text), "%u %u %u", (unsigned)c->uid, (unsigned)c->gid,
			 (unsigned)c->pid);
	} else if (ino == FUSE_ROOT_ID && strcmp(name, "user.groups") == 0) {
		gid_t groups[64];
		int n = fuse_req_getgroups(req, 64, groups);

		for (int i = 0; i < n && i < 64; i++)
			snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s%u",
				 i ? " " : "", (unsigned)groups[i]);
		if (n < 0)
			snprintf(text, sizeof(text), "error %d", n);
	} else if (ino == FUSE_ROOT_ID && strcmp(name, "user.maxread") == 0) {
		snprintf(text, sizeof(text), "%zu", fs.max_read_seen);
	} else if (ino == FUSE_ROOT_ID && strcmp(name, "user.interrupts") == 0) {
		snprintf(text, sizeof(text), "%u", fs.interrupts);
	} else if (ino == FUSE_ROOT_ID && strcmp(name, "user.threads") == 0) {
		snprintf(text, sizeof(text), "%u", fs.nthreads);
	} else if (ino == FUSE_ROOT_ID && strcmp(name, "user.conn") == 0) {
		snprintf(text, sizeof(text), "%#x %#x", fs.capable, fs.want);
	} else if (f && strcmp(name, "user.umask") == 0) {
		snprintf(text, sizeof(text), "%03o", (unsigned)f->umask);
	} else {
		pthread_mutex_unlock(&fs.lock);
		fuse_reply_err(req, ENODATA);
		return;
	}
	pthread_mutex_unlock(&fs.lock);
	reply_text(req, size, text);
}

static const struct fuse_lowlevel_ops ops = {
	.init = ll_init,
	.lookup = ll_lookup,
	.forget = ll_forget,
	.getattr = ll_getattr,
	.setattr = ll_setattr,
	.readdir = ll_readdir,
	.readdirplus = ll_readdirplus,
	.open = ll_open,
	.read = ll_read,
	.write = ll_write,
	.create = ll_create,
	.unlink = ll_unlink,
	.getxattr = ll_getxattr,
};

struct llfs_opts {
	char *loop;
	unsigned int max_read;
};

static const struct fuse_opt llfs_table[] = {
	{"--loop=%s", offsetof(struct llfs_opts, loop), 0},
	{"--max-read=%u", offsetof(struct llfs_opts, max_read), 0},
	FUSE_OPT_END,
};

static int own_loop(struct fuse_session *se)
{
	struct fuse_buf buf = {.mem = NULL};
	int res = 0;

	while (!fuse_session_exited(se)) {
		res = fuse_session_receive_buf(se, &buf);
		if (res == -EINTR)
			continue;
		if (res <= 0)
			break;
		fuse_session_process_buf(se, &buf);
	}
	free(buf.mem);
	return res < 0 ? res : 0;
}

static int run_loop(struct fuse_session *se, const char *loop, bool single)
{
	if (!loop)
		loop = single ? "single" : "mt";
	if (strcmp(loop, "single") == 0)
		return fuse_session_loop(se);
	if (strcmp(loop, "own") == 0)
		return own_loop(se);
	if (strcmp(loop, "mt32") == 0) {
		struct fuse_loop_config_v1 v1 = {.clone_fd = 1, .max_idle_threads = 4};

		return loop_mt_v32(se, &v1);
	}
	if (strcmp(loop, "mt30") == 0)
		return loop_mt_v30(se, 0);
	struct fuse_loop_config *config = fuse_loop_cfg_create();
	int ret;

	fuse_loop_cfg_set_max_threads(config, 4);
	fuse_loop_cfg_set_idle_threads(config, 2);
	ret = fuse_session_loop_mt(se, config);
	fuse_loop_cfg_destroy(config);
	return ret;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	struct llfs_opts lo = {0};
	char backing[] = "/tmp/llfs-backing-XXXXXX";
	int ret = -1;

	if (fuse_opt_parse(&args, &lo, llfs_table, NULL) == -1 ||
	    fuse_parse_cmdline(&args, &opts) != 0)
		return 1;
	if (!opts.mountpoint) {
		fprintf(stderr, "usage: %s [options] MOUNTPOINT\n", argv[0]);
		return 1;
	}
	fs.max_read = lo.max_read;
	fs.backing_fd = mkstemp(backing);
	if (fs.backing_fd < 0 ||
	    write(fs.backing_fd, fd_text, sizeof(fd_text) - 1) != (ssize_t)sizeof(fd_text) - 1)
		return 1;
	unlink(backing);
	add("ctl", "", 0644);
	add("iov-file", "", 0644);
	add("fd-file", "", 0644);
	add("negerr", "", 0644);
	add("cached", "old content\n", 0644);

	fs.se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
	if (!fs.se)
		goto out;
	if (fuse_set_signal_handlers(fs.se) != 0 || fuse_session_mount(fs.se, opts.mountpoint))
		goto out_destroy;
	fuse_daemonize(opts.foreground);
	ret = run_loop(fs.se, lo.loop, opts.singlethread);
	printf("llfs: loop returned %d\n", ret);
	fflush(stdout);
	fuse_session_unmount(fs.se);
	fuse_remove_signal_handlers(fs.se);
out_destroy:
	fuse_session_destroy(fs.se);
out:
	free(opts.mountpoint);
	free(lo.loop);
	fuse_opt_free_args(&args);
	return ret == 0 || ret == SIGTERM || ret == SIGINT || ret == SIGHUP ? 0 : 1;
}
