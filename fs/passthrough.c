/*
 * ringfuse-passthrough: mirror a directory (SOURCE) at a mountpoint, behaving like the local
 * filesystem underneath.
 *
 *   ringfuse-passthrough [options] SOURCE MOUNTPOINT
 *     -o cache=none|auto|always   entry/attribute timeouts 0 / 1 s / 1 day; "always" also keeps
 *                                 page and readdir caches across opens (default: auto)
 *     -o writeback                kernel writeback cache
 *     -o passthrough              kernel passthrough: reads and writes of regular files go from
 *                                 the kernel straight to SOURCE (needs root; excludes writeback)
 *
 * Inodes. Every inode the kernel knows is a struct pt_inode holding an O_PATH descriptor of
 * the underlying object, found by (st_dev, st_ino) in a hash table split into shards with one
 * mutex each. The FUSE node id is the struct's address (the root is RF_ROOT_INO). Each positive
 * entry reply adds one lookup and forget takes them away; at zero the inode leaves the table and
 * its descriptor is closed. A descriptor follows its object through renames, so no paths are
 * kept anywhere.
 *
 * Files. An open file's fh is the real descriptor plus FH_* bits, so read, write, fsync and
 * friends touch no lock and no table. They are backend I/O on the request's own queue (rf_io_*):
 * with the io-uring transports an SQE on that queue's ring, answered from its completion while the
 * queue serves other requests; elsewhere a plain system call. Reads land straight in the reply
 * payload. O_DIRECT opens get an O_DIRECT backing descriptor and direct_io; fh records the memory
 * alignment the backing filesystem asks for, and only a transport buffer that misses it is
 * bounced: through the aligned part of the reply payload when the data fits there, else through
 * an aligned buffer allocated for that one request and freed by its completion (the only
 * allocation on the I/O path, for misaligned O_DIRECT only). A directory's fh points to a DIR
 * stream whose d_off cookies are the readdir offsets. With -o writeback, write-only opens are
 * widened to read-write (the kernel reads pages back), O_APPEND is left to the kernel, and
 * lseek(SEEK_DATA/SEEK_HOLE) is handed back to the kernel (ENOSYS), which knows about pages not
 * yet written back.
 *
 * Kernel passthrough (-o passthrough). An open regular file is registered as a backing file and
 * the open reply names it: the kernel then reads, writes and maps it itself, and the server only
 * sees the other requests of that file (flush, fsync, setattr, release...), still served through
 * the descriptor in fh. The kernel insists that all open files of one inode use the same backing
 * file and that passthrough and cached opens of an inode never overlap, so the backing id lives
 * in the inode, shared by its passthrough opens and dropped with the last of them; an inode with
 * opens served the ordinary way (registration refused) keeps getting ordinary opens until they
 * are all released. The kernel opens its own backing file per open file, with the flags of that
 * open and the credentials of the registration (the server's), and still removes suid/sgid on
 * write as the writer. A refusal is reported once per reason; one that concerns the connection
 * (no root, the kernel did not enable passthrough) ends the attempts.
 *
 * Containment. Nothing outside SOURCE is reachable through the mount. Names from the kernel are
 * single components (checked again here); lookups open them relative to the parent's descriptor
 * with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) and O_NOFOLLOW, so a symlink is an inode of
 * its own, returned by readlink and never followed by the server: the kernel resolves it against
 * the mount, as it would on a local filesystem. ".." on the root stays at the root. Operations
 * on an inode itself go through its descriptor: *at(fd, "", AT_EMPTY_PATH) calls, or the
 * /proc/self/fd/N magic link, which lands on the object the descriptor holds (a symlink itself,
 * not its target). A MOUNTPOINT strictly inside SOURCE is refused: lookups would re-enter the
 * mount and could deadlock a queue on itself.
 *
 * Acting for the caller. The daemon normally runs as root. Every operation that creates or
 * changes something (create, mknod, mkdir, symlink, link, tmpfile, setattr, unlink, rmdir,
 * rename, setxattr, removexattr, access, and opens for writing, truncating or O_NOATIME) runs
 * with the caller's filesystem uid and gid and supplementary groups, switched on the handling
 * thread only and switched back before the reply. That takes raw system calls: the glibc
 * setgroups() wrapper changes every thread of the process. With a non-root fsuid the kernel
 * drops CAP_CHOWN, CAP_DAC_*, CAP_FOWNER, CAP_FSETID and CAP_MKNOD, so the underlying
 * filesystem applies its own rules: ownership of new objects and the setgid directory,
 * sticky directories, chown/chmod/utimensat permissions, suid/sgid clearing, hard link
 * protection. Two changes the kernel sends on behalf of callers who need not own the file are
 * retried with the server's rights when the caller's fail: a mode change that only clears
 * suid/sgid (after a write or truncate by another user), and, with writeback, explicit times
 * for a caller who may write (the kernel turns touch and write into explicit c/mtime).
 * Plain reads and lookups keep the server's rights: the kernel checked them
 * (default_permissions) before asking. So does I/O on an open descriptor (read, write, fsync,
 * fallocate): the open was checked, and io_uring workers could not take a switched fsuid
 * anyway. The library does not negotiate FUSE_DONT_MASK, so the
 * kernel applies the caller's umask to create modes before sending them: the daemon runs with
 * umask 0 and passes modes through unchanged (ctx->umask is applied only if DONT_MASK ever is).
 */
#include "ringfuse.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<linux/openat2.h>)
#include <linux/magic.h>
#include <linux/openat2.h>
#endif
#endif

#ifndef RESOLVE_BENEATH
struct open_how {
	uint64_t flags;
	uint64_t mode;
	uint64_t resolve;
};
#define RESOLVE_NO_XDEV	      0x01
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS   0x04
#define RESOLVE_BENEATH	      0x08
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_faccessat2
#define SYS_faccessat2 439
#endif
#ifndef XATTR_NAME_MAX
#define XATTR_NAME_MAX 255
#endif

#define NSHARDS		 64 /* inode table shards; a power of two */
#define SHARD_MIN_SLOTS	 64
#define NGROUPS_ON_STACK 64
#define PROC_PATH_MAX	 32   /* "/proc/self/fd/" + an int */
#define DIO_ALIGN	 4096 /* O_DIRECT memory alignment when the filesystem does not say */
/* A file's fh: the backing fd in the low 32 bits, then: */
#define FH_DIRECT      (1ull << 32) /* the backing fd is O_DIRECT */
#define FH_PT	       (1ull << 33) /* kernel passthrough: holds a use of the inode's backing id */
#define FH_PLAIN       (1ull << 34) /* counted in the inode's opens without passthrough */
#define FH_INLINE      (1ull << 35) /* memory-backed: I/O on the calling thread (io_file()) */
#define FH_ALIGN_SHIFT 40	    /* 8 bits: log2 of the O_DIRECT memory alignment */
#define TIMEOUT_AUTO   1.0
#define TIMEOUT_ALWAYS 86400.0

/* A filesystem object the kernel holds lookups on. */
struct pt_inode {
	int fd;		       /* O_PATH; immutable while the kernel holds a lookup */
	mode_t type;	       /* S_IFMT bits, fixed for the object's life */
	dev_t dev;	       /* table key, with ino */
	ino_t ino;	       /* table key, with dev */
	uint64_t nlookup;      /* guarded by the shard lock */
	struct pt_inode *next; /* hash chain, guarded by the shard lock */
	/* Kernel passthrough, guarded by the shard lock: */
	int32_t backing_id; /* registered backing file shared by the passthrough opens, or 0 */
	uint32_t npt;	    /* open files using backing_id */
	uint32_t nplain;    /* open files served without passthrough */
};

/* An open directory; the kernel serialises readdir on one handle. */
struct pt_dir {
	DIR *dp;
	off_t pos;		    /* cookie of the stream's current position */
	struct shard *shard;	    /* whose list holds it, so it can be freed after the session */
	struct pt_dir *prev, *next; /* guarded by that shard's lock */
};

struct shard {
	pthread_mutex_t lock;
	struct pt_inode **slots; /* nslots chains */
	size_t nslots;		 /* a power of two */
	size_t count;
	struct pt_dir *dirs; /* open directories of this shard's inodes */
} __attribute__((aligned(64)));

enum cache_mode { CACHE_NONE, CACHE_AUTO, CACHE_ALWAYS };

/* The one filesystem of this process. Options are set before the session runs, the INIT
 * results in init(), which precedes every request. */
static struct pt_fs {
	struct pt_inode root;
	enum cache_mode cache;
	double timeout; /* entry and attribute timeout, seconds */
	bool writeback_opt;
	bool writeback; /* negotiated at INIT */
	bool passthrough_opt;
	atomic_bool passthrough; /* negotiated at INIT; cleared when the kernel refuses for good */
	bool dont_mask;		 /* negotiated at INIT: the kernel left the umask to us */
	bool switch_creds;
	uid_t uid; /* the daemon's own filesystem identity, restored after each switch */
	gid_t gid;
	int ngroups;
	gid_t *groups;
	struct shard shards[NSHARDS];
} fs;

/* ---- small helpers ---- */

static rf_ino ino_of(struct pt_inode *in)
{
	return in == &fs.root ? RF_ROOT_INO : (rf_ino)(uintptr_t)in;
}

static struct pt_inode *inode_of(rf_ino ino)
{
	return ino == RF_ROOT_INO ? &fs.root : (struct pt_inode *)(uintptr_t)ino;
}

/* "/proc/self/fd/N": resolving it lands on exactly the object fd holds. */
static const char *proc_path(int fd, char buf[PROC_PATH_MAX])
{
	snprintf(buf, PROC_PATH_MAX, "/proc/self/fd/%d", fd);
	return buf;
}

/* The backing descriptor of an open file. */
static int fh_fd(const struct rf_file_info *fi)
{
	return (int)(uint32_t)fi->fh;
}

/*
 * The backing fd for the request's backend I/O. tmpfs and ramfs cannot do I/O without blocking
 * the way io_uring asks (no RWF_NOWAIT), so the ring would pass each of their operations to a
 * worker thread; they never wait for a device, so the queue thread does them itself. fio 4K
 * O_DIRECT randread QD1 over a tmpfs source, cache=none, transport=uring: 45.0k -> 84.2k IOPS.
 */
static int io_file(rf_req *req, const struct rf_file_info *fi)
{
	if (fi->fh & FH_INLINE)
		rf_io_inline(req);
	return fh_fd(fi);
}

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

/* The dispatcher validates names; this keeps the containment argument local to this file. */
static int check_name(const char *name)
{
	if (!*name)
		return -ENOENT;
	if (strchr(name, '/'))
		return -EINVAL;
	return 0;
}

static int neg_errno(void)
{
	return -errno;
}

/* Out of descriptors is the one resource failure an admin can fix: say so once. */
static void note_error(int err)
{
	static atomic_bool said;

	if ((err == -EMFILE || err == -ENFILE) && !atomic_exchange(&said, true))
		fprintf(stderr,
			"ringfuse-passthrough: out of file descriptors (%s); raise RLIMIT_NOFILE\n",
			strerror(-err));
}

/* err is 0 or -errno. */
static void reply_status(rf_req *req, int err)
{
	note_error(err);
	rf_reply_err(req, -err);
}

static void fill_entry(struct rf_entry_param *e, rf_ino ino, const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->ino = ino;
	e->attr = *st;
	e->attr_timeout = fs.timeout;
	e->entry_timeout = fs.timeout;
}

static int stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? neg_errno() : 0;
}

static mode_t create_mode(rf_req *req, mode_t mode)
{
	if (fs.dont_mask)
		mode &= ~rf_req_ctx(req)->umask;
	return mode & 07777;
}

/* ---- inode table ---- */

static uint64_t key_hash(dev_t dev, ino_t ino)
{
	uint64_t x = (uint64_t)ino ^ (((uint64_t)dev << 32) | ((uint64_t)dev >> 32));

	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static struct shard *shard_of(uint64_t h)
{
	return &fs.shards[h % NSHARDS];
}

static struct pt_inode **chain_of(struct pt_inode **slots, size_t nslots, uint64_t h)
{
	return &slots[(h / NSHARDS) & (nslots - 1)];
}

static int table_init(void)
{
	for (size_t i = 0; i < NSHARDS; i++) {
		struct shard *s = &fs.shards[i];

		pthread_mutex_init(&s->lock, NULL);
		s->nslots = SHARD_MIN_SLOTS;
		s->slots = calloc(s->nslots, sizeof(*s->slots));
		if (!s->slots)
			return -ENOMEM;
	}
	return 0;
}

/* Doubles a shard's chains; on allocation failure the chains just get longer. */
static void shard_grow(struct shard *s)
{
	size_t n = s->nslots * 2;
	struct pt_inode **slots = calloc(n, sizeof(*slots));

	if (!slots)
		return;
	for (size_t i = 0; i < s->nslots; i++) {
		struct pt_inode *in = s->slots[i], *next;

		for (; in; in = next) {
			struct pt_inode **c = chain_of(slots, n, key_hash(in->dev, in->ino));

			next = in->next;
			in->next = *c;
			*c = in;
		}
	}
	free(s->slots);
	s->slots = slots;
	s->nslots = n;
}

/*
 * Take one lookup on the inode of st. If it is new, it adopts *fd (set to -1); otherwise the
 * caller still owns *fd. Returns NULL when out of memory.
 */
static struct pt_inode *inode_get(const struct stat *st, int *fd)
{
	uint64_t h = key_hash(st->st_dev, st->st_ino);
	struct shard *s = shard_of(h);
	struct pt_inode **c, *in;

	pthread_mutex_lock(&s->lock);
	c = chain_of(s->slots, s->nslots, h);
	for (in = *c; in; in = in->next)
		if (in->ino == st->st_ino && in->dev == st->st_dev)
			break;
	if (in) {
		in->nlookup++;
	} else {
		in = calloc(1, sizeof(*in));
		if (in) {
			in->fd = *fd;
			in->type = st->st_mode & S_IFMT;
			in->dev = st->st_dev;
			in->ino = st->st_ino;
			in->nlookup = 1;
			in->next = *c;
			*c = in;
			*fd = -1;
			if (++s->count > s->nslots)
				shard_grow(s);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return in;
}

/* One more lookup on an inode the kernel already holds. */
static void inode_ref(struct pt_inode *in)
{
	struct shard *s;

	if (in == &fs.root)
		return;
	s = shard_of(key_hash(in->dev, in->ino));
	pthread_mutex_lock(&s->lock);
	in->nlookup++;
	pthread_mutex_unlock(&s->lock);
}

static void inode_put(struct pt_inode *in, uint64_t n)
{
	uint64_t h;
	struct shard *s;
	struct pt_inode **c;

	if (in == &fs.root)
		return;
	h = key_hash(in->dev, in->ino);
	s = shard_of(h);
	pthread_mutex_lock(&s->lock);
	if (n < in->nlookup) {
		in->nlookup -= n;
		pthread_mutex_unlock(&s->lock);
		return;
	}
	for (c = chain_of(s->slots, s->nslots, h); *c != in; c = &(*c)->next)
		;
	*c = in->next;
	s->count--;
	pthread_mutex_unlock(&s->lock);
	close(in->fd);
	free(in);
}

/* After the session: whatever the kernel did not forget or release. */
static void table_clear(void)
{
	if (!fs.shards[0].slots)
		return;
	for (size_t i = 0; i < NSHARDS; i++) {
		struct shard *s = &fs.shards[i];

		while (s->dirs) {
			struct pt_dir *d = s->dirs;

			s->dirs = d->next;
			closedir(d->dp);
			free(d);
		}

		for (size_t j = 0; s->slots && j < s->nslots; j++) {
			struct pt_inode *in = s->slots[j], *next;

			for (; in; in = next) {
				next = in->next;
				close(in->fd);
				free(in);
			}
		}
		free(s->slots);
		s->slots = NULL;
		pthread_mutex_destroy(&s->lock);
	}
}

/* ---- acting for the caller ---- */

struct creds {
	bool switched;
	uid_t uid; /* the caller's, while switched */
	gid_t gid;
};

static int groups_of_caller(rf_req *req, gid_t *stack, gid_t **groups)
{
	int n = rf_req_getgroups(req, NGROUPS_ON_STACK, stack);

	*groups = stack;
	if (n > NGROUPS_ON_STACK) {
		int want = n;

		*groups = malloc((size_t)want * sizeof(gid_t));
		if (!*groups)
			return -ENOMEM;
		n = rf_req_getgroups(req, want, *groups);
		if (n > want)
			n = want;
	}
	/* No /proc entry (the caller exited, or a kernel-internal request): no extra groups,
	 * which can only deny, never grant. */
	return n < 0 ? 0 : n;
}

/* Switch this thread's filesystem identity to the caller's. */
static int creds_enter(rf_req *req, struct creds *c)
{
	const struct rf_ctx *ctx = rf_req_ctx(req);
	gid_t stack[NGROUPS_ON_STACK], *groups;
	int n, err = 0;

	c->switched = false;
	if (!fs.switch_creds || (ctx->uid == fs.uid && ctx->gid == fs.gid))
		return 0;
	n = groups_of_caller(req, stack, &groups);
	if (n < 0)
		return n;
	if (syscall(SYS_setgroups, (size_t)n, groups) < 0)
		err = neg_errno();
	if (groups != stack)
		free(groups);
	if (err)
		return err;
	/* Undone in reverse order by creds_leave(). */
	c->uid = ctx->uid;
	c->gid = ctx->gid;
	syscall(SYS_setfsgid, c->gid);
	syscall(SYS_setfsuid, c->uid);
	c->switched = true;
	return 0;
}

/* Step out of the caller's identity for one call (the caller's groups stay: root ignores them). */
static void creds_pause(struct creds *c)
{
	if (!c->switched)
		return;
	syscall(SYS_setfsuid, fs.uid);
	syscall(SYS_setfsgid, fs.gid);
}

static void creds_resume(struct creds *c)
{
	if (!c->switched)
		return;
	syscall(SYS_setfsgid, c->gid);
	syscall(SYS_setfsuid, c->uid);
}

static void creds_leave(struct creds *c)
{
	if (!c->switched)
		return;
	syscall(SYS_setfsuid, fs.uid);
	syscall(SYS_setfsgid, fs.gid);
	syscall(SYS_setgroups, (size_t)fs.ngroups, fs.groups);
	c->switched = false;
}

/* Root can switch; anyone else serves everything with their own rights. Checked once. */
static void creds_init(void)
{
	int n;

	fs.uid = geteuid();
	fs.gid = getegid();
	n = getgroups(0, NULL);
	if (n > 0) {
		fs.groups = calloc((size_t)n, sizeof(gid_t));
		if (fs.groups)
			fs.ngroups = getgroups(n, fs.groups);
		if (fs.ngroups < 0)
			fs.ngroups = 0;
	}
	if (fs.uid != 0)
		return;
	syscall(SYS_setfsuid, 65534);
	fs.switch_creds = (uid_t)syscall(SYS_setfsuid, fs.uid) == 65534;
	syscall(SYS_setfsuid, fs.uid);
}

/* ---- lookups ---- */

/* O_PATH descriptor of one component under dirfd, never following a symlink or a magic link. */
static int open_child(int dirfd, const char *name)
{
	static atomic_bool no_openat2;
	struct open_how how = {
		.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	if (!atomic_load_explicit(&no_openat2, memory_order_relaxed)) {
		fd = (int)syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
		if (fd >= 0)
			return fd;
		if (errno != ENOSYS)
			return neg_errno();
		atomic_store(&no_openat2, true);
	}
	fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? neg_errno() : fd;
}

static bool same_object(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static bool is_root_object(const struct stat *st)
{
	return st->st_dev == fs.root.dev && st->st_ino == fs.root.ino;
}

/* Is the directory dirfd SOURCE or below it? Walks ".." to the top: only for rare paths. */
static bool within_source(int dirfd)
{
	struct stat st, up_st;
	int cur = dirfd;
	bool found = false;

	for (int depth = 0; depth < 4096; depth++) {
		int up;

		if (stat_fd(cur, &st) < 0)
			break;
		if (is_root_object(&st)) {
			found = true;
			break;
		}
		up = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (up < 0)
			break;
		if (stat_fd(up, &up_st) < 0 || same_object(&st, &up_st)) {
			close(up);
			break;
		}
		if (cur != dirfd)
			close(cur);
		cur = up;
	}
	if (cur != dirfd)
		close(cur);
	return found;
}

/* Turn a fresh O_PATH descriptor into a counted inode and its entry. Consumes fd. */
static int entry_from_fd(int fd, struct rf_entry_param *e)
{
	struct pt_inode *in;
	struct stat st;
	int err = stat_fd(fd, &st);

	if (err) {
		close(fd);
		return err;
	}
	if (is_root_object(&st)) {
		close(fd);
		fill_entry(e, RF_ROOT_INO, &st);
		return 0;
	}
	in = inode_get(&st, &fd);
	if (fd >= 0)
		close(fd);
	if (!in)
		return -ENOMEM;
	fill_entry(e, ino_of(in), &st);
	return 0;
}

/* An entry for an inode the kernel already holds, with one more lookup on it. */
static int entry_of_inode(struct pt_inode *in, struct rf_entry_param *e)
{
	struct stat st;
	int err = stat_fd(in->fd, &st);

	if (err)
		return err;
	inode_ref(in);
	fill_entry(e, ino_of(in), &st);
	return 0;
}

/* The kernel only asks for ".." when exporting; answer it without leaving SOURCE. */
static int lookup_dotdot(struct pt_inode *dir, struct rf_entry_param *e)
{
	int fd;

	if (dir == &fs.root)
		return entry_of_inode(&fs.root, e);
	fd = openat(dir->fd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return neg_errno();
	if (!within_source(fd)) {
		close(fd);
		return -ENOENT;
	}
	return entry_from_fd(fd, e);
}

static int lookup_name(struct pt_inode *dir, const char *name, struct rf_entry_param *e)
{
	int fd, err = check_name(name);

	if (err)
		return err;
	if (!S_ISDIR(dir->type))
		return -ENOTDIR;
	if (!strcmp(name, "."))
		return entry_of_inode(dir, e);
	if (!strcmp(name, ".."))
		return lookup_dotdot(dir, e);
	fd = open_child(dir->fd, name);
	if (fd < 0)
		return fd;
	return entry_from_fd(fd, e);
}

/* If the kernel did not take the entry (the request was interrupted), take its lookup back. */
static void reply_entry(rf_req *req, const struct rf_entry_param *e)
{
	if (rf_reply_entry(req, e) < 0 && e->ino)
		inode_put(inode_of(e->ino), 1);
}

static void pt_lookup(rf_req *req, rf_ino parent, const char *name)
{
	struct rf_entry_param e;
	int err = lookup_name(inode_of(parent), name, &e);

	if (err == -ENOENT && fs.cache != CACHE_NONE) {
		/* A negative entry: the kernel caches the absence for the entry timeout. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = fs.timeout;
		rf_reply_entry(req, &e);
		return;
	}
	if (err) {
		reply_status(req, err);
		return;
	}
	reply_entry(req, &e);
}

static void pt_forget(rf_req *req, rf_ino ino, uint64_t nlookup)
{
	inode_put(inode_of(ino), nlookup);
	rf_reply_none(req);
}

/* ---- attributes ---- */

static void pt_getattr(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	struct stat st;
	int err = stat_fd(inode_of(ino)->fd, &st);

	(void)fi;
	if (err)
		reply_status(req, err);
	else
		rf_reply_attr(req, &st, fs.timeout);
}

static int set_owner(struct pt_inode *in, const struct stat *attr, int to_set)
{
	uid_t uid = (to_set & RF_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
	gid_t gid = (to_set & RF_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

	if (fchownat(in->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	return 0;
}

static int set_size(struct pt_inode *in, off_t size, const struct rf_file_info *fi)
{
	char path[PROC_PATH_MAX];

	if (S_ISDIR(in->type))
		return -EISDIR;
	if (!S_ISREG(in->type))
		return -EINVAL;
	if (fi && fi->fh_valid)
		return ftruncate(fh_fd(fi), size) < 0 ? neg_errno() : 0;
	return truncate(proc_path(in->fd, path), size) < 0 ? neg_errno() : 0;
}

static int set_times(struct pt_inode *in, const struct stat *attr, int to_set)
{
	struct timespec tv[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};

	if (to_set & RF_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (to_set & RF_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (to_set & RF_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (to_set & RF_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
	if (utimensat(in->fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	return 0;
}

static int set_mode(struct pt_inode *in, mode_t mode)
{
	char path[PROC_PATH_MAX];

	return chmod(proc_path(in->fd, path), mode & 07777) < 0 ? neg_errno() : 0;
}

/*
 * Does mode only take suid/sgid away from the current mode? The kernel sends such a change on
 * behalf of a writer or truncater who need not own the file (what a local filesystem does
 * internally, with ATTR_FORCE); a chmod(2) by a non-owner never reaches us with
 * default_permissions on.
 */
static bool only_drops_privs(struct pt_inode *in, mode_t mode)
{
	const mode_t privs = S_ISUID | S_ISGID;
	struct stat st;

	if (stat_fd(in->fd, &st) < 0)
		return false;
	return (mode & 07777 & ~privs) == (st.st_mode & 07777 & ~privs) &&
	       !(mode & privs & ~st.st_mode);
}

static int set_mode_for(struct creds *c, struct pt_inode *in, mode_t mode)
{
	int err = set_mode(in, mode);

	if (err == -EPERM && c->switched && only_drops_privs(in, mode)) {
		creds_pause(c);
		err = set_mode(in, mode);
		creds_resume(c);
	}
	return err;
}

/*
 * With writeback the kernel keeps c/mtime itself and sends them as explicit times, also for a
 * plain touch or after a write by someone who does not own the file, once it has checked the
 * caller's right (default_permissions). Explicit times need ownership underneath: for a caller
 * who may write the file, set them with the server's rights, which is what touch allows.
 */
static int set_times_for(struct creds *c, struct pt_inode *in, const struct stat *attr, int to_set)
{
	int err = set_times(in, attr, to_set);

	if (err != -EPERM || !fs.writeback || !c->switched)
		return err;
	if (syscall(SYS_faccessat2, in->fd, "", W_OK, AT_EMPTY_PATH | AT_EACCESS) < 0)
		return err;
	creds_pause(c);
	err = set_times(in, attr, to_set);
	creds_resume(c);
	return err;
}

/* Owner, size and times, then mode last, so the mode asked for is the one that stays. */
static int apply_setattr(rf_req *req, struct pt_inode *in, const struct stat *attr, int to_set,
			 const struct rf_file_info *fi)
{
	const int times = RF_SET_ATTR_ATIME | RF_SET_ATTR_MTIME | RF_SET_ATTR_ATIME_NOW |
			  RF_SET_ATTR_MTIME_NOW;
	struct creds c;
	int err = creds_enter(req, &c);

	if (err)
		return err;
	if (to_set & (RF_SET_ATTR_UID | RF_SET_ATTR_GID))
		err = set_owner(in, attr, to_set);
	if (!err && (to_set & RF_SET_ATTR_SIZE))
		err = set_size(in, attr->st_size, fi);
	if (!err && (to_set & times))
		err = set_times_for(&c, in, attr, to_set);
	if (!err && (to_set & RF_SET_ATTR_MODE))
		err = set_mode_for(&c, in, attr->st_mode);
	creds_leave(&c);
	return err;
}

static void pt_setattr(rf_req *req, rf_ino ino, struct stat *attr, int to_set,
		       struct rf_file_info *fi)
{
	struct pt_inode *in = inode_of(ino);
	struct stat st;
	int err = apply_setattr(req, in, attr, to_set, fi);

	if (!err)
		err = stat_fd(in->fd, &st);
	if (err)
		reply_status(req, err);
	else
		rf_reply_attr(req, &st, fs.timeout);
}

static void pt_readlink(rf_req *req, rf_ino ino)
{
	char buf[PATH_MAX + 1];
	ssize_t n = readlinkat(inode_of(ino)->fd, "", buf, sizeof(buf));

	if (n < 0)
		reply_status(req, neg_errno());
	else if ((size_t)n == sizeof(buf))
		reply_status(req, -ENAMETOOLONG);
	else {
		buf[n] = '\0';
		rf_reply_readlink(req, buf);
	}
}

/* ---- creating and removing names ---- */

enum node_kind { NODE_DIR, NODE_SYMLINK, NODE_OTHER };

static int make_node(struct pt_inode *dir, const char *name, enum node_kind kind, mode_t mode,
		     dev_t rdev, const char *link)
{
	int r;

	switch (kind) {
	case NODE_DIR:
		r = mkdirat(dir->fd, name, mode);
		break;
	case NODE_SYMLINK:
		r = symlinkat(link, dir->fd, name);
		break;
	default:
		r = mknodat(dir->fd, name, mode, rdev);
		break;
	}
	return r < 0 ? neg_errno() : 0;
}

/* mkdir, mknod and symlink: create as the caller, then look the new name up as ourselves. */
static void create_node(rf_req *req, rf_ino parent, const char *name, enum node_kind kind,
			mode_t mode, dev_t rdev, const char *link)
{
	struct pt_inode *dir = inode_of(parent);
	struct rf_entry_param e;
	struct creds c;
	int err = check_name(name);

	if (!err)
		err = creds_enter(req, &c);
	if (!err) {
		err = make_node(dir, name, kind, mode, rdev, link);
		creds_leave(&c);
	}
	if (!err)
		err = lookup_name(dir, name, &e);
	if (err)
		reply_status(req, err);
	else
		reply_entry(req, &e);
}

static void pt_mknod(rf_req *req, rf_ino parent, const char *name, mode_t mode, dev_t rdev)
{
	create_node(req, parent, name, NODE_OTHER, (mode & S_IFMT) | create_mode(req, mode), rdev,
		    NULL);
}

static void pt_mkdir(rf_req *req, rf_ino parent, const char *name, mode_t mode)
{
	create_node(req, parent, name, NODE_DIR, create_mode(req, mode), 0, NULL);
}

static void pt_symlink(rf_req *req, const char *link, rf_ino parent, const char *name)
{
	create_node(req, parent, name, NODE_SYMLINK, 0, 0, link);
}

static void pt_link(rf_req *req, rf_ino ino, rf_ino newparent, const char *newname)
{
	struct pt_inode *in = inode_of(ino);
	char path[PROC_PATH_MAX];
	struct rf_entry_param e;
	struct creds c;
	int err = check_name(newname);

	/* linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH, which the caller's fsuid drops;
	 * following the magic link does not, and still applies protected_hardlinks. */
	if (!err)
		err = creds_enter(req, &c);
	if (!err) {
		if (linkat(AT_FDCWD, proc_path(in->fd, path), inode_of(newparent)->fd, newname,
			   AT_SYMLINK_FOLLOW) < 0)
			err = neg_errno();
		creds_leave(&c);
	}
	if (!err)
		err = entry_of_inode(in, &e);
	if (err)
		reply_status(req, err);
	else
		reply_entry(req, &e);
}

static void remove_name(rf_req *req, rf_ino parent, const char *name, int flags)
{
	struct creds c;
	int err = check_name(name);

	if (!err)
		err = creds_enter(req, &c);
	if (!err) {
		if (unlinkat(inode_of(parent)->fd, name, flags) < 0)
			err = neg_errno();
		creds_leave(&c);
	}
	reply_status(req, err);
}

static void pt_unlink(rf_req *req, rf_ino parent, const char *name)
{
	remove_name(req, parent, name, 0);
}

static void pt_rmdir(rf_req *req, rf_ino parent, const char *name)
{
	remove_name(req, parent, name, AT_REMOVEDIR);
}

static void pt_rename(rf_req *req, rf_ino parent, const char *name, rf_ino newparent,
		      const char *newname, unsigned int flags)
{
	struct creds c;
	int err = check_name(name);

	if (!err)
		err = check_name(newname);
	if (!err)
		err = creds_enter(req, &c);
	if (!err) {
		if (renameat2(inode_of(parent)->fd, name, inode_of(newparent)->fd, newname, flags) <
		    0)
			err = neg_errno();
		creds_leave(&c);
	}
	reply_status(req, err);
}

/* ---- opening files ---- */

/* Where an open happens: a name under a directory, or an object's magic link. */
struct open_target {
	int dirfd;
	const char *name;
	mode_t mode; /* for O_CREAT / O_TMPFILE */
};

static int open_target(const struct open_target *t, int flags)
{
	int fd = openat(t->dirfd, t->name, flags, t->mode);

	return fd < 0 ? neg_errno() : fd;
}

/* Flags for the backing descriptor. */
static int backing_flags(int flags)
{
	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW);
	flags |= O_CLOEXEC;
	/* With writeback the kernel appends itself, at the end it knows. */
	if (fs.writeback)
		flags &= ~O_APPEND;
	return flags;
}

/* In writeback mode the kernel may read pages back of a file opened only for writing. */
static int widen(int flags)
{
	if (fs.writeback && (flags & O_ACCMODE) == O_WRONLY)
		return (flags & ~O_ACCMODE) | O_RDWR;
	return flags;
}

static bool open_needs_caller(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_NOATIME | O_CREAT)) ||
	       (flags & O_TMPFILE) == O_TMPFILE;
}

/* A read-write descriptor of the object fd is open on, with the server's rights. */
static int reopen_rdwr(int fd, int flags)
{
	char path[PROC_PATH_MAX];
	int keep = O_APPEND | O_DIRECT | O_DSYNC | O_SYNC | O_NOATIME | O_NONBLOCK | O_LARGEFILE;
	int r = open(proc_path(fd, path), (flags & keep) | O_RDWR | O_CLOEXEC);

	return r < 0 ? neg_errno() : r;
}

/*
 * Open as the caller when writing, truncating or creating. A write-only open that writeback
 * widened to read-write and that the caller may not read is retried as asked, which proves the
 * caller's right to write; the read-write descriptor the kernel needs then comes from that one.
 */
static int open_for_caller(rf_req *req, const struct open_target *t, int flags)
{
	int wide = widen(flags);
	struct creds c;
	int fd, narrow, err;

	if (!open_needs_caller(flags))
		return open_target(t, wide);
	err = creds_enter(req, &c);
	if (err)
		return err;
	fd = open_target(t, wide);
	if (fd != -EACCES || wide == flags) {
		creds_leave(&c);
		return fd;
	}
	narrow = open_target(t, flags);
	creds_leave(&c);
	if (narrow < 0)
		return narrow;
	fd = reopen_rdwr(narrow, flags);
	close(narrow);
	return fd;
}

/* log2 of the memory alignment O_DIRECT I/O on fd needs. */
static unsigned int dio_align_shift(int fd)
{
	unsigned int align = DIO_ALIGN;
#ifdef STATX_DIOALIGN
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_mem_align &&
	    !(stx.stx_dio_mem_align & (stx.stx_dio_mem_align - 1)))
		align = stx.stx_dio_mem_align;
#endif
	return (unsigned int)__builtin_ctz(align);
}

/* Whether fd's data lives in memory only, so that no read or write of it waits for a device. */
static bool memory_backed(int fd)
{
	struct statfs sf;

	if (fstatfs(fd, &sf) < 0)
		return false;
	return sf.f_type == TMPFS_MAGIC || sf.f_type == RAMFS_MAGIC;
}

static void set_open_reply(struct rf_file_info *fi, int fd)
{
	fi->fh = (uint64_t)(uint32_t)fd;
	if (memory_backed(fd))
		fi->fh |= FH_INLINE;
	if (fi->flags & O_DIRECT)
		fi->fh |= FH_DIRECT | (uint64_t)dio_align_shift(fd) << FH_ALIGN_SHIFT;
	fi->direct_io = (fi->flags & O_DIRECT) != 0;
	fi->parallel_direct_writes = fi->direct_io;
	fi->keep_cache = fs.cache == CACHE_ALWAYS;
}

/* Say once per reason why the kernel would not take a backing file; stop asking if the reason
 * holds for the whole connection. */
static void passthrough_refused(int err)
{
	static atomic_bool said[256];
	bool global = err == -EPERM || err == -EOPNOTSUPP || err == -ENOTTY || err == -ENOSYS;

	if (global)
		atomic_store(&fs.passthrough, false);
	if (-err > 0 && -err < 256 && atomic_exchange(&said[-err], true))
		return;
	fprintf(stderr, "ringfuse-passthrough: kernel passthrough refused (%s); %s\n",
		strerror(-err),
		global ? "files are served through this daemon from now on"
		       : "the files concerned are served through this daemon");
}

/*
 * Decide how the kernel does the I/O of a new open file of in (fd is its descriptor, fi the
 * reply being prepared): through the inode's backing file, registering fd as that if it has
 * none and no ordinary opens are left, or the ordinary way.
 */
static void passthrough_attach(rf_req *req, struct pt_inode *in, int fd, struct rf_file_info *fi)
{
	struct shard *s;
	int id;

	if (!atomic_load_explicit(&fs.passthrough, memory_order_relaxed) || !S_ISREG(in->type) ||
	    in == &fs.root)
		return;
	s = shard_of(key_hash(in->dev, in->ino));
	pthread_mutex_lock(&s->lock);
	if (!in->backing_id && !in->nplain) {
		/* The kernel keeps its own reference to the file behind fd. */
		id = rf_passthrough_open(rf_req_session(req), fd);
		if (id > 0)
			in->backing_id = id;
		else
			passthrough_refused(id);
	}
	if (in->backing_id) {
		in->npt++;
		fi->fh |= FH_PT;
		fi->passthrough = 1;
		fi->backing_id = in->backing_id;
		/* The kernel refuses these with passthrough: it does the I/O, O_DIRECT included
		 * (its backing file is opened with this open's flags). */
		fi->direct_io = 0;
		fi->parallel_direct_writes = 0;
		fi->keep_cache = 0;
	} else {
		in->nplain++;
		fi->fh |= FH_PLAIN;
	}
	pthread_mutex_unlock(&s->lock);
}

/* An open file of in is gone (released, or its open reply was not delivered). */
static void passthrough_detach(rf_req *req, struct pt_inode *in, uint64_t fh)
{
	struct shard *s;
	int id = 0;

	if (!(fh & (FH_PT | FH_PLAIN)))
		return;
	s = shard_of(key_hash(in->dev, in->ino));
	pthread_mutex_lock(&s->lock);
	if (fh & FH_PLAIN) {
		in->nplain--;
	} else if (--in->npt == 0) {
		/* Every file that used it is released: the kernel's inode let go of it too. */
		id = in->backing_id;
		in->backing_id = 0;
	}
	pthread_mutex_unlock(&s->lock);
	if (id)
		rf_passthrough_close(rf_req_session(req), id);
}

static void pt_open(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	struct pt_inode *in = inode_of(ino);
	char path[PROC_PATH_MAX];
	struct open_target t = {AT_FDCWD, proc_path(in->fd, path), 0};
	int fd = open_for_caller(req, &t, backing_flags(fi->flags));

	if (fd < 0) {
		reply_status(req, fd);
		return;
	}
	set_open_reply(fi, fd);
	passthrough_attach(req, in, fd, fi);
	if (rf_reply_open(req, fi) < 0) {
		passthrough_detach(req, in, fi->fh);
		close(fd);
	}
}

/* create and tmpfile: the inode comes from the opened descriptor, not from a second lookup of
 * the name, so it is the object we opened even if the name changed meanwhile. */
static void reply_created(rf_req *req, int fd, struct rf_file_info *fi)
{
	char path[PROC_PATH_MAX];
	struct rf_entry_param e;
	int ifd, err;

	ifd = open(proc_path(fd, path), O_PATH | O_CLOEXEC);
	err = ifd < 0 ? neg_errno() : entry_from_fd(ifd, &e);
	if (err) {
		close(fd);
		reply_status(req, err);
		return;
	}
	set_open_reply(fi, fd);
	passthrough_attach(req, inode_of(e.ino), fd, fi);
	if (rf_reply_create(req, &e, fi) < 0) {
		passthrough_detach(req, inode_of(e.ino), fi->fh);
		close(fd);
		inode_put(inode_of(e.ino), 1);
	}
}

static void pt_create(rf_req *req, rf_ino parent, const char *name, mode_t mode,
		      struct rf_file_info *fi)
{
	struct open_target t = {inode_of(parent)->fd, name, create_mode(req, mode)};
	int fd = check_name(name);

	/* O_NOFOLLOW: a symlink that appeared under the name since the kernel's lookup is not
	 * followed by us; O_EXCL is the caller's and must keep its meaning. */
	if (!fd)
		fd = open_for_caller(req, &t,
				     backing_flags(fi->flags) | (fi->flags & O_EXCL) | O_CREAT |
					     O_NOFOLLOW);
	if (fd < 0)
		reply_status(req, fd);
	else
		reply_created(req, fd, fi);
}

static void pt_tmpfile(rf_req *req, rf_ino parent, mode_t mode, struct rf_file_info *fi)
{
	struct open_target t = {inode_of(parent)->fd, ".", create_mode(req, mode)};
	/* O_EXCL stays: it makes the file unlinkable, as asked. */
	int flags = (fi->flags & ~(O_CREAT | O_TRUNC | O_NOCTTY | O_NOFOLLOW | O_TMPFILE)) |
		    O_TMPFILE | O_CLOEXEC;
	int fd;

	if (fs.writeback)
		flags &= ~O_APPEND;
	fd = open_for_caller(req, &t, flags);
	if (fd < 0)
		reply_status(req, fd);
	else
		reply_created(req, fd, fi);
}

/* ---- data ----
 * Every request here is answered by the completion of its backend I/O, which may run after the
 * handler returned: nothing a completion uses may live on the handler's stack. */

/* The memory alignment an O_DIRECT backing descriptor needs (1 for a buffered one). */
static size_t fh_align(const struct rf_file_info *fi)
{
	if (!(fi->fh & FH_DIRECT))
		return 1;
	return (size_t)1 << ((fi->fh >> FH_ALIGN_SHIFT) & 0xff);
}

/* Bytes from p to the next address aligned to align (a power of two). */
static size_t align_gap(const void *p, size_t align)
{
	return (align - ((uintptr_t)p & (align - 1))) & (align - 1);
}

/* Status-only completions: fsync, fallocate. */
static void status_done(rf_req *req, int res, void *arg)
{
	(void)arg;
	reply_status(req, res < 0 ? res : 0);
}

/*
 * O_DIRECT reads. When the payload is not aligned, the data is read to its first aligned
 * address and moved to its start afterwards. One call, no continuation: a short O_DIRECT read of
 * a regular file means end of file (a continuation would start misaligned and be refused), and
 * a short reply tells the kernel just that.
 */

/* arg is where the data went: inside the payload, at or past its start. */
static void shifted_read_done(rf_req *req, int res, void *arg)
{
	char *payload = rf_reply_payload(req, NULL);

	if (res < 0) {
		reply_status(req, res);
		return;
	}
	if (arg != payload)
		memmove(payload, arg, (size_t)res);
	rf_reply_data(req, (size_t)res);
}

/* arg is a bounce buffer of this request alone, allocated by read_direct(). */
static void bounced_read_done(rf_req *req, int res, void *arg)
{
	if (res >= 0)
		memcpy(rf_reply_payload(req, NULL), arg, (size_t)res);
	free(arg);
	if (res < 0)
		reply_status(req, res);
	else
		rf_reply_data(req, (size_t)res);
}

static void read_direct(rf_req *req, int fd, char *payload, size_t cap, size_t size, off_t off,
			size_t align)
{
	size_t gap = align_gap(payload, align);
	void *bounce;
	int err;

	if (size + gap <= cap) {
		err = rf_io_read(req, fd, payload + gap, size, off, shifted_read_done,
				 payload + gap);
	} else {
		/* The rare case that allocates: the aligned part of the payload is too small. */
		if (posix_memalign(&bounce, align, size)) {
			reply_status(req, -ENOMEM);
			return;
		}
		err = rf_io_read(req, fd, bounce, size, off, bounced_read_done, bounce);
		if (err)
			free(bounce);
	}
	if (err)
		reply_status(req, err);
}

static void pt_read(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	size_t cap, align = fh_align(fi);
	char *payload = rf_reply_payload(req, &cap);

	(void)ino;
	if (payload && align > 1) {
		if (size > cap)
			size = cap;
		if (size)
			read_direct(req, io_file(req, fi), payload, cap, size, off, align);
		else
			rf_reply_data(req, 0);
		return;
	}
	/* Into the payload, continuing short reads up to end of file. */
	rf_io_reply_read(req, io_file(req, fi), size, off);
}

/* The data was copied to an aligned place (arg), in the payload or a bounce buffer of its own. */
static bool in_payload(rf_req *req, const void *p)
{
	size_t cap;
	const char *payload = rf_reply_payload(req, &cap);

	return payload && (const char *)p >= payload && (const char *)p < payload + cap;
}

static void bounced_write_done(rf_req *req, int res, void *arg)
{
	if (!in_payload(req, arg))
		free(arg);
	if (res < 0)
		reply_status(req, res);
	else
		rf_reply_write(req, (size_t)res);
}

/*
 * O_DIRECT writes of data that is not aligned. The reply payload is ours until the reply (it may
 * even hold the data): move the data to its first aligned address when it fits, else to an
 * aligned buffer of this request alone. Like reads, one call: a short O_DIRECT write is a full
 * device, which the short count reports.
 */
static void write_direct(rf_req *req, int fd, const char *buf, size_t size, off_t off, size_t align)
{
	size_t cap;
	char *payload = rf_reply_payload(req, &cap);
	void *to;
	int err;

	if (payload && size + align_gap(payload, align) <= cap) {
		to = payload + align_gap(payload, align);
		memmove(to, buf, size);
	} else if (posix_memalign(&to, align, size)) {
		reply_status(req, -ENOMEM);
		return;
	} else {
		memcpy(to, buf, size);
	}
	err = rf_io_write(req, fd, to, size, off, bounced_write_done, to);
	if (err) {
		if (!in_payload(req, to))
			free(to);
		reply_status(req, err);
	}
}

static void pt_write(rf_req *req, rf_ino ino, const char *buf, size_t size, off_t off,
		     struct rf_file_info *fi)
{
	size_t align = fh_align(fi);

	(void)ino;
	if (align > 1 && size && align_gap(buf, align))
		write_direct(req, io_file(req, fi), buf, size, off, align);
	else
		rf_io_reply_write(req, io_file(req, fi), buf, size, off);
}

static void pt_flush(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	/* Closing a duplicate runs the backing filesystem's flush (and drops POSIX locks of
	 * ours) without giving up the descriptor. */
	int dup_fd = dup(fh_fd(fi));
	int err = 0;

	(void)ino;
	if (dup_fd < 0)
		err = (errno == EMFILE || errno == ENFILE) ? 0 : neg_errno();
	else if (close(dup_fd) < 0)
		err = neg_errno();
	rf_reply_err(req, -err);
}

static void pt_release(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	passthrough_detach(req, inode_of(ino), fi->fh);
	close(fh_fd(fi));
	rf_reply_err(req, 0);
}

static void pt_fsync(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi)
{
	(void)ino;
	rf_io_reply_fsync(req, io_file(req, fi), datasync);
}

static void pt_fallocate(rf_req *req, rf_ino ino, int mode, off_t offset, off_t length,
			 struct rf_file_info *fi)
{
	int err = rf_io_fallocate(req, io_file(req, fi), mode, offset, length, status_done, NULL);

	(void)ino;
	if (err)
		reply_status(req, err);
}

static void pt_lseek(rf_req *req, rf_ino ino, off_t off, int whence, struct rf_file_info *fi)
{
	off_t r;

	(void)ino;
	/* With writeback the newest data may still sit dirty in the kernel's cache, which FUSE
	 * does not write back before asking: our SEEK_DATA could skip it (and cp would lose it).
	 * ENOSYS makes the kernel answer from its own view: all data up to its size, no holes. */
	if (fs.writeback) {
		reply_status(req, -ENOSYS);
		return;
	}
	r = lseek(fh_fd(fi), off, whence);
	if (r < 0)
		reply_status(req, neg_errno());
	else
		rf_reply_lseek(req, r);
}

static void pt_copy_file_range(rf_req *req, rf_ino ino_in, off_t off_in, struct rf_file_info *fi_in,
			       rf_ino ino_out, off_t off_out, struct rf_file_info *fi_out,
			       size_t len, int flags)
{
	ssize_t n = copy_file_range(fh_fd(fi_in), &off_in, fh_fd(fi_out), &off_out, len,
				    (unsigned int)flags);

	(void)ino_in;
	(void)ino_out;
	if (n < 0)
		reply_status(req, neg_errno());
	else
		rf_reply_write(req, (size_t)n);
}

/* ---- directories ---- */

static struct pt_dir *dir_of(const struct rf_file_info *fi)
{
	return (struct pt_dir *)(uintptr_t)fi->fh;
}

/* Open directories are listed by the shard of their inode: a session that ends (signal, abort)
 * without RELEASEDIR for them still frees them. */
static void dir_track(struct pt_dir *d, struct pt_inode *in)
{
	struct shard *s = shard_of(key_hash(in->dev, in->ino));

	d->shard = s;
	pthread_mutex_lock(&s->lock);
	d->prev = NULL;
	d->next = s->dirs;
	if (s->dirs)
		s->dirs->prev = d;
	s->dirs = d;
	pthread_mutex_unlock(&s->lock);
}

static void dir_close(struct pt_dir *d)
{
	struct shard *s = d->shard;

	pthread_mutex_lock(&s->lock);
	if (d->prev)
		d->prev->next = d->next;
	else
		s->dirs = d->next;
	if (d->next)
		d->next->prev = d->prev;
	pthread_mutex_unlock(&s->lock);
	closedir(d->dp);
	free(d);
}

static void pt_opendir(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	struct pt_dir *d = calloc(1, sizeof(*d));
	int fd, err = 0;

	if (!d) {
		reply_status(req, -ENOMEM);
		return;
	}
	fd = openat(inode_of(ino)->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		err = neg_errno();
	else if (!(d->dp = fdopendir(fd))) {
		err = neg_errno();
		close(fd);
	}
	if (err) {
		free(d);
		reply_status(req, err);
		return;
	}
	dir_track(d, inode_of(ino));
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->keep_cache = fs.cache == CACHE_ALWAYS;
	fi->cache_readdir = fs.cache == CACHE_ALWAYS;
	if (rf_reply_open(req, fi) < 0)
		dir_close(d);
}

/* Bytes used in buf, 0 when the entry does not fit, or -errno (-ENOENT: it vanished). */
static ssize_t add_dirent(rf_req *req, struct pt_inode *dir, char *buf, size_t room,
			  const struct dirent *de, bool plus)
{
	struct rf_entry_param e;
	size_t len;
	int err;

	memset(&e, 0, sizeof(e));
	e.attr.st_ino = de->d_ino;
	e.attr.st_mode = DTTOIF(de->d_type);
	if (!plus) {
		len = rf_add_direntry(req, buf, room, de->d_name, &e.attr, de->d_off);
		return len > room ? 0 : (ssize_t)len;
	}
	/* The kernel takes no lookup on "." and ".." (and ignores their attributes). */
	if (!is_dot_or_dotdot(de->d_name)) {
		err = lookup_name(dir, de->d_name, &e);
		if (err)
			return err;
	}
	len = rf_add_direntry_plus(req, buf, room, de->d_name, &e, de->d_off);
	if (len > room) {
		if (e.ino)
			inode_put(inode_of(e.ino), 1);
		return 0;
	}
	return (ssize_t)len;
}

static void read_dir(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi,
		     bool plus)
{
	struct pt_dir *d = dir_of(fi);
	size_t cap, used = 0;
	char *buf = rf_reply_payload(req, &cap);
	int err = 0;

	if (!buf) {
		reply_status(req, -EIO);
		return;
	}
	if (size > cap)
		size = cap;
	if (off != d->pos) {
		seekdir(d->dp, off);
		d->pos = off;
	}
	for (;;) {
		struct dirent *de;
		ssize_t n;

		errno = 0;
		de = readdir(d->dp);
		if (!de) {
			err = errno ? neg_errno() : 0;
			break;
		}
		d->pos = de->d_off;
		n = add_dirent(req, inode_of(ino), buf + used, size - used, de, plus);
		if (n == -ENOENT)
			continue;
		if (n < 0)
			err = (int)n;
		if (n <= 0)
			break;
		used += (size_t)n;
	}
	/* Entries already in the buffer carry lookups: send them and report the error, if it
	 * persists, on the next call (which seeks back to the entry that failed). */
	if (err && !used)
		reply_status(req, err);
	else
		rf_reply_data(req, used);
}

static void pt_readdir(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	read_dir(req, ino, size, off, fi, false);
}

static void pt_readdirplus(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	read_dir(req, ino, size, off, fi, true);
}

static void pt_releasedir(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	(void)ino;
	dir_close(dir_of(fi));
	rf_reply_err(req, 0);
}

static void pt_fsyncdir(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi)
{
	(void)ino;
	rf_io_reply_fsync(req, dirfd(dir_of(fi)->dp), datasync);
}

/* ---- filesystem-wide ---- */

static void pt_statfs(rf_req *req, rf_ino ino)
{
	struct statvfs sv;

	if (fstatvfs(inode_of(ino)->fd, &sv) < 0)
		reply_status(req, neg_errno());
	else
		rf_reply_statfs(req, &sv);
}

static void pt_syncfs(rf_req *req, rf_ino ino)
{
	struct pt_inode *in = inode_of(ino);
	int fd, err = 0;

	/* syncfs() wants a real descriptor; any directory of the backing filesystem will do. */
	if (!S_ISDIR(in->type))
		in = &fs.root;
	fd = openat(in->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		err = neg_errno();
	else {
		if (syncfs(fd) < 0)
			err = neg_errno();
		close(fd);
	}
	reply_status(req, err);
}

static void pt_access(rf_req *req, rf_ino ino, int mask)
{
	struct creds c;
	int err = creds_enter(req, &c);

	/* AT_EACCESS: check with the (switched) filesystem identity, not the real uid. */
	if (!err) {
		if (syscall(SYS_faccessat2, inode_of(ino)->fd, "", mask,
			    AT_EMPTY_PATH | AT_EACCESS | AT_SYMLINK_NOFOLLOW) < 0)
			err = neg_errno();
		creds_leave(&c);
	}
	reply_status(req, err);
}

/* ---- extended attributes ----
 * No *xattr call takes an O_PATH descriptor, so they go through the magic link, whose target
 * is the object itself (for a symlink: the link, not what it points to). */

static void pt_setxattr(rf_req *req, rf_ino ino, const char *name, const char *value, size_t size,
			int flags)
{
	char path[PROC_PATH_MAX];
	struct creds c;
	int err = creds_enter(req, &c);

	if (!err) {
		if (setxattr(proc_path(inode_of(ino)->fd, path), name, value, size, flags) < 0)
			err = neg_errno();
		creds_leave(&c);
	}
	reply_status(req, err);
}

static void pt_removexattr(rf_req *req, rf_ino ino, const char *name)
{
	char path[PROC_PATH_MAX];
	struct creds c;
	int err = creds_enter(req, &c);

	if (!err) {
		if (removexattr(proc_path(inode_of(ino)->fd, path), name) < 0)
			err = neg_errno();
		creds_leave(&c);
	}
	reply_status(req, err);
}

static void pt_getxattr(rf_req *req, rf_ino ino, const char *name, size_t size)
{
	char path[PROC_PATH_MAX], key[XATTR_NAME_MAX + 1];
	size_t cap;
	char *buf;
	ssize_t n;

	/* The name may live in the payload the value is about to overwrite. */
	if (strlen(name) > XATTR_NAME_MAX) {
		reply_status(req, -ERANGE);
		return;
	}
	strcpy(key, name);
	proc_path(inode_of(ino)->fd, path);
	if (!size) {
		n = getxattr(path, key, NULL, 0);
		if (n < 0)
			reply_status(req, neg_errno());
		else
			rf_reply_xattr(req, (size_t)n);
		return;
	}
	buf = rf_reply_payload(req, &cap);
	n = buf ? getxattr(path, key, buf, size < cap ? size : cap) : -1;
	if (!buf)
		reply_status(req, -EIO);
	else if (n < 0)
		reply_status(req, neg_errno());
	else
		rf_reply_data(req, (size_t)n);
}

/* trusted.* names are listed only to CAP_SYS_ADMIN; we list as root, so hide them from other
 * callers, approximating the capability by uid 0. */
static size_t drop_trusted(char *list, size_t len)
{
	size_t in = 0, out = 0;

	while (in < len) {
		size_t n = strnlen(list + in, len - in) + 1;

		if (strncmp(list + in, "trusted.", 8)) {
			memmove(list + out, list + in, n);
			out += n;
		}
		in += n;
	}
	return out;
}

static void pt_listxattr(rf_req *req, rf_ino ino, size_t size)
{
	char path[PROC_PATH_MAX];
	bool filter = rf_req_ctx(req)->uid != 0;
	size_t cap;
	char *buf;
	ssize_t n;

	proc_path(inode_of(ino)->fd, path);
	if (!size && !filter) {
		n = listxattr(path, NULL, 0);
		if (n < 0)
			reply_status(req, neg_errno());
		else
			rf_reply_xattr(req, (size_t)n);
		return;
	}
	/* The whole list fits any payload (the kernel caps it at 64 KiB): list it all, filter,
	 * then hold it against the size asked for. */
	buf = rf_reply_payload(req, &cap);
	if (!buf) {
		reply_status(req, -EIO);
		return;
	}
	n = listxattr(path, buf, cap);
	if (n < 0) {
		reply_status(req, neg_errno());
		return;
	}
	if (filter)
		n = (ssize_t)drop_trusted(buf, (size_t)n);
	if (!size)
		rf_reply_xattr(req, (size_t)n);
	else if ((size_t)n > size)
		reply_status(req, -ERANGE);
	else
		rf_reply_data(req, (size_t)n);
}

/* ---- session ---- */

static void pt_init(void *userdata, struct rf_conn_info *conn)
{
	(void)userdata;
	if (fs.passthrough_opt && !(conn->capable & RF_CAP_PASSTHROUGH)) {
		fprintf(stderr, "ringfuse-passthrough: the kernel offers no passthrough; file I/O "
				"goes through this daemon\n");
	} else if (fs.passthrough_opt) {
		conn->want |= RF_CAP_PASSTHROUGH;
		/* The kernel drops passthrough when both are asked for. */
		if (fs.writeback_opt)
			fprintf(stderr, "ringfuse-passthrough: passthrough and writeback exclude "
					"each other; using passthrough\n");
		fs.writeback_opt = false;
		conn->want &= ~RF_CAP_WRITEBACK_CACHE;
	}
	if (fs.writeback_opt) {
		if (conn->capable & RF_CAP_WRITEBACK_CACHE)
			conn->want |= RF_CAP_WRITEBACK_CACHE;
		else
			fprintf(stderr, "ringfuse-passthrough: the kernel offers no writeback "
					"cache; continuing without\n");
	}
	/* A local filesystem lets an O_DIRECT file be mapped. */
	conn->want |= conn->capable & RF_CAP_DIRECT_IO_ALLOW_MMAP;
	if (fs.cache == CACHE_ALWAYS)
		conn->want |= conn->capable & RF_CAP_CACHE_SYMLINKS;
	fs.writeback = (conn->want & conn->capable & RF_CAP_WRITEBACK_CACHE) != 0;
	fs.dont_mask = (conn->want & conn->capable & RF_CAP_DONT_MASK) != 0;
	atomic_store(&fs.passthrough, (conn->want & conn->capable & RF_CAP_PASSTHROUGH) != 0);
}

static const struct rf_ops pt_ops = {
	.init = pt_init,
	.lookup = pt_lookup,
	.forget = pt_forget,
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.readlink = pt_readlink,
	.mknod = pt_mknod,
	.mkdir = pt_mkdir,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.symlink = pt_symlink,
	.rename = pt_rename,
	.link = pt_link,
	.open = pt_open,
	.read = pt_read,
	.write = pt_write,
	.flush = pt_flush,
	.release = pt_release,
	.fsync = pt_fsync,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.releasedir = pt_releasedir,
	.fsyncdir = pt_fsyncdir,
	.statfs = pt_statfs,
	.setxattr = pt_setxattr,
	.getxattr = pt_getxattr,
	.listxattr = pt_listxattr,
	.removexattr = pt_removexattr,
	.access = pt_access,
	.create = pt_create,
	.fallocate = pt_fallocate,
	.readdirplus = pt_readdirplus,
	.copy_file_range = pt_copy_file_range,
	.lseek = pt_lseek,
	.tmpfile = pt_tmpfile,
	.syncfs = pt_syncfs,
};

static int parse_options(rf_session *se)
{
	const char *v = rf_session_opt(se, "cache");

	fs.cache = CACHE_AUTO;
	if (v && !strcmp(v, "none"))
		fs.cache = CACHE_NONE;
	else if (v && !strcmp(v, "always"))
		fs.cache = CACHE_ALWAYS;
	else if (v && strcmp(v, "auto")) {
		fprintf(stderr, "ringfuse-passthrough: cache=%s: expected none, auto or always\n",
			v);
		return -EINVAL;
	}
	fs.timeout = fs.cache == CACHE_NONE   ? 0
		     : fs.cache == CACHE_AUTO ? TIMEOUT_AUTO
					      : TIMEOUT_ALWAYS;
	v = rf_session_opt(se, "writeback");
	fs.writeback_opt = v && (!*v || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"));
	v = rf_session_opt(se, "passthrough");
	fs.passthrough_opt = v && (!*v || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"));
	return 0;
}

/* Every inode the kernel knows costs a descriptor: take all the kernel allows. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* The mountpoint as the library reads argv: the last argument that is not an option. */
static const char *find_mountpoint(int argc, char *argv[])
{
	const char *last = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-o"))
			i++;
		else if (argv[i][0] != '-')
			last = argv[i];
	}
	return last;
}

/* A mountpoint below SOURCE would make lookups walk into the mount being served. */
static int check_mountpoint(const char *mnt)
{
	struct stat st;
	int fd, err = 0;

	if (!mnt)
		return 0;
	fd = open(mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* the library reports a bad mountpoint */
	if (stat_fd(fd, &st) == 0 && !is_root_object(&st) && within_source(fd)) {
		fprintf(stderr, "ringfuse-passthrough: %s lies inside the source directory\n", mnt);
		err = -EINVAL;
	}
	close(fd);
	return err;
}

static int open_source(const char *source)
{
	struct stat st;

	if (!source) {
		fprintf(stderr, "ringfuse-passthrough: no source directory given "
				"(usage: ringfuse-passthrough [options] SOURCE MOUNTPOINT)\n");
		return -EINVAL;
	}
	fs.root.fd = open(source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs.root.fd < 0 || stat_fd(fs.root.fd, &st) < 0) {
		int err = neg_errno();

		fprintf(stderr, "ringfuse-passthrough: %s: %s\n", source, strerror(-err));
		return err;
	}
	fs.root.type = S_IFDIR;
	fs.root.dev = st.st_dev;
	fs.root.ino = st.st_ino;
	fs.root.nlookup = 1;
	return 0;
}

static int setup(rf_session *se, int argc, char *argv[])
{
	int err = parse_options(se);

	if (!err)
		err = open_source(rf_session_source(se));
	if (!err)
		err = check_mountpoint(find_mountpoint(argc, argv));
	if (!err)
		err = table_init();
	if (err)
		return err;
	raise_fd_limit();
	/* Modes arrive with the caller's umask applied; ours must not apply a second one. */
	umask(0);
	creds_init();
	if (!fs.switch_creds)
		fprintf(stderr, "ringfuse-passthrough: not running as root: everything is done "
				"with this process's own rights\n");
	return 0;
}

static void print_help(int argc, char *argv[])
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("ringfuse-passthrough: mirror SOURCE at MOUNTPOINT\n"
			       "    -o cache=none|auto|always  kernel caching (default auto)\n"
			       "    -o writeback               kernel writeback cache\n"
			       "    -o passthrough             kernel passthrough of file I/O "
			       "(root)\n"
			       "\n");
			return;
		}
	}
}

int main(int argc, char *argv[])
{
	rf_session *se;
	int ret;

	fs.root.fd = -1;
	print_help(argc, argv);
	se = rf_session_new(argc, argv, &pt_ops, sizeof(pt_ops), &fs);
	if (!se)
		return errno ? 1 : 0;
	ret = setup(se, argc, argv);
	if (!ret)
		ret = rf_session_run(se);
	rf_session_destroy(se);
	table_clear();
	if (fs.root.fd >= 0)
		close(fs.root.fd);
	free(fs.groups);
	return ret ? 1 : 0;
}
