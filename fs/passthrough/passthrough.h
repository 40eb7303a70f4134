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
 * This header holds what the files of the daemon share: the data structures, the one filesystem
 * state, small inline helpers and each file's entry points. One file, one job:
 *   main.c     main()
 *   setup.c    the options, SOURCE and MOUNTPOINT, setup and teardown
 *   ops.c      the operations table, and the filesystem-wide operations (init, statfs, syncfs)
 *   status.c   replies that carry only a status, and the one failure an admin can fix
 *   inode.c    the inode table: inodes by (st_dev, st_ino), their lookup counts
 *   creds.c    acting for the caller: this thread's filesystem identity
 *   caps.c     the capabilities serving threads keep
 *   lookup.c   lookups of names beneath a directory, and entries for the kernel
 *   attr.c     getattr, setattr, access, readlink
 *   names.c    creating and removing names: mknod, mkdir, symlink, link, unlink, rmdir, rename
 *   open.c     opening files (open, create, tmpfile) and releasing them
 *   backing.c  kernel passthrough: the backing file an inode's passthrough opens share
 *   atime.c    access times: SOURCE's, kept by the rules of the mount's atime mode
 *   data.c     I/O on open files: read, write, flush, fsync, fallocate, lseek, copy_file_range
 *   dir.c      open directories and listing them
 *   xattr.c    extended attributes
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
 * Containment. Nothing outside SOURCE is reachable through the mount. Names from the kernel are
 * single components (checked again here); lookups open them relative to the parent's descriptor
 * with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) and O_NOFOLLOW, so a symlink is an inode of
 * its own, returned by readlink and never followed by the server: the kernel resolves it against
 * the mount, as it would on a local filesystem. ".." on the root stays at the root. Operations
 * on an inode itself go through its descriptor: *at(fd, "", AT_EMPTY_PATH) calls, or the
 * /proc/self/fd/N magic link, which lands on the object the descriptor holds (a symlink itself,
 * not its target). A MOUNTPOINT strictly inside SOURCE is refused: lookups would re-enter the
 * mount and could deadlock a queue on itself.
 */
#ifndef PASSTHROUGH_H
#define PASSTHROUGH_H

#include "ringfuse.h"
#include "ringfuse/kernel.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/capability.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
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

#define NSHARDS	      64 /* inode table shards; a power of two */
#define PROC_PATH_MAX 32 /* "/proc/self/fd/" + an int */

/* A file's fh: the backing fd in the low 32 bits, then: */
#define FH_DIRECT      (1ull << 32) /* the backing fd is O_DIRECT */
#define FH_PT	       (1ull << 33) /* kernel passthrough: holds a use of the inode's backing id */
#define FH_PLAIN       (1ull << 34) /* counted in the inode's opens without passthrough */
#define FH_INLINE      (1ull << 35) /* memory-backed: I/O on the calling thread (io_file()) */
#define FH_ALIGN_SHIFT 40	    /* 8 bits: log2 of the O_DIRECT memory alignment */

#define PT_INODE_MAGIC 0x70746e64u /* in a live struct pt_inode; cleared when it is freed */

/* A filesystem object the kernel holds lookups on. */
struct pt_inode {
	uint32_t magic;
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

/* The one filesystem of this process (inode.c). Options are set before the session runs, the
 * INIT results in init(), which precedes every request. */
struct pt_fs {
	struct pt_inode root;
	rf_session *se;
	enum cache_mode cache;
	double timeout; /* entry and attribute timeout, seconds */
	bool writeback_opt;
	bool writeback; /* negotiated at INIT */
	bool passthrough_opt;
	atomic_bool passthrough; /* negotiated at INIT; cleared when the kernel refuses for good */
	bool acl;		 /* negotiated at INIT: the kernel checks POSIX ACLs */
	bool dont_mask;		 /* negotiated at INIT: the kernel left the umask to us */
	bool switch_creds;
	uid_t uid; /* the daemon's own filesystem identity */
	gid_t gid;
	struct shard shards[NSHARDS];
};

extern struct pt_fs fs;

/* The operations table (ops.c). */
extern const struct rf_ops pt_ops;

/* A thread's filesystem identity while it acts for a caller (creds.c). */
struct creds {
	bool switched; /* an unprivileged caller's */
	uid_t uid;     /* the caller's */
	gid_t gid;
};

/* Whose rights a backend write runs with (creds_io_begin()). */
enum io_ident {
	IO_AS_ROOT, /* the daemon's (a root caller's write) */
	IO_UNPRIV,  /* an unprivileged user's */
	IO_ANON,    /* the anonymous identity (writeback of the kernel's cache) */
};

/* ---- small helpers ---- */

static inline rf_ino ino_of(struct pt_inode *in)
{
	return in == &fs.root ? RF_ROOT_INO : (rf_ino)(uintptr_t)in;
}

static inline struct pt_inode *inode_of(rf_ino ino)
{
	return ino == RF_ROOT_INO ? &fs.root : (struct pt_inode *)(uintptr_t)ino;
}

/* "/proc/self/fd/N": resolving it lands on exactly the object fd holds. */
static inline const char *proc_path(int fd, char buf[PROC_PATH_MAX])
{
	snprintf(buf, PROC_PATH_MAX, "/proc/self/fd/%d", fd);
	return buf;
}

/* The backing descriptor of an open file. */
static inline int fh_fd(const struct rf_file_info *fi)
{
	return (int)(uint32_t)fi->fh;
}

/* The dispatcher validates names; this keeps the containment argument local to this daemon. */
static inline int check_name(const char *name)
{
	if (!*name)
		return -ENOENT;
	if (strchr(name, '/'))
		return -EINVAL;
	return 0;
}

static inline int neg_errno(void)
{
	return -errno;
}

static inline int stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? neg_errno() : 0;
}

/* ---- setup.c ---- */
int pt_setup(rf_session *se, const char *source, const char *mountpoint);
void pt_teardown(void);

/* ---- status.c ---- */
void reply_status(rf_req *req, int err);

/* ---- inode.c ---- */
uint64_t key_hash(dev_t dev, ino_t ino);
struct shard *shard_of(uint64_t h);
int table_init(void);
struct pt_inode *inode_get(const struct stat *st, int *fd);
void inode_ref(struct pt_inode *in);
void inode_put(struct pt_inode *in, uint64_t n);
void table_clear(void);
ino_t ino_out(dev_t dev, ino_t ino);

/* ---- caps.c ---- */
int caps_init(void);
int caps_raise(int cap);
void caps_lower(int cap);

/* ---- creds.c ---- */
int creds_enter(rf_req *req, struct creds *c);
void creds_pause(struct creds *c);
void creds_resume(struct creds *c);
void creds_leave(struct creds *c);
void creds_settle(void);
bool creds_retry_privileged(int err);
void creds_privileged(void);
enum io_ident creds_io_begin(rf_req *req, const struct rf_file_info *fi);
void creds_io_end(enum io_ident kind);
int creds_backing_begin(void);
void creds_backing_end(void);
mode_t creds_create_mode(rf_req *req, mode_t mode);
void creds_init(void);

/* ---- lookup.c ---- */
bool is_root_object(const struct stat *st);
bool within_source(int dirfd);
int entry_from_fd(int fd, struct rf_entry_param *e);
int entry_of_inode(struct pt_inode *in, struct rf_entry_param *e);
int lookup_name(struct pt_inode *dir, const char *name, struct rf_entry_param *e);
void reply_entry(rf_req *req, const struct rf_entry_param *e);
void pt_lookup(rf_req *req, rf_ino parent, const char *name);
void pt_forget(rf_req *req, rf_ino ino, uint64_t nlookup);

/* ---- attr.c ---- */
void pt_getattr(rf_req *req, rf_ino ino, struct rf_file_info *fi);
void pt_setattr(rf_req *req, rf_ino ino, struct stat *attr, int to_set, struct rf_file_info *fi);
void pt_readlink(rf_req *req, rf_ino ino);
void pt_access(rf_req *req, rf_ino ino, int mask);

/* ---- names.c ---- */
void pt_mknod(rf_req *req, rf_ino parent, const char *name, mode_t mode, dev_t rdev);
void pt_mkdir(rf_req *req, rf_ino parent, const char *name, mode_t mode);
void pt_symlink(rf_req *req, const char *link, rf_ino parent, const char *name);
void pt_link(rf_req *req, rf_ino ino, rf_ino newparent, const char *newname);
void pt_unlink(rf_req *req, rf_ino parent, const char *name);
void pt_rmdir(rf_req *req, rf_ino parent, const char *name);
void pt_rename(rf_req *req, rf_ino parent, const char *name, rf_ino newparent, const char *newname,
	       unsigned int flags);

/* ---- open.c ---- */
void pt_open(rf_req *req, rf_ino ino, struct rf_file_info *fi);
void pt_create(rf_req *req, rf_ino parent, const char *name, mode_t mode, struct rf_file_info *fi);
void pt_tmpfile(rf_req *req, rf_ino parent, mode_t mode, struct rf_file_info *fi);
void pt_release(rf_req *req, rf_ino ino, struct rf_file_info *fi);

/* ---- atime.c ---- */
/* Learn SOURCE's atime mode and apply the mount's (from init). */
void atime_init(void);
/* The mount's atime mode changed (remount). */
void atime_apply(void);
/* A backing descriptor of a file or directory was just opened. */
void atime_opened(int fd, bool dir);
/* The caller reads in (a file or a directory) through fd, SOURCE's descriptor. */
void atime_access(const struct pt_inode *in, int fd);
/* readlinkat() of the link in, by the mount's atime mode. */
ssize_t atime_readlink(const struct pt_inode *in, char *buf, size_t size);

/* ---- backing.c ---- */
void passthrough_attach(rf_req *req, struct pt_inode *in, int fd, struct rf_file_info *fi);
void passthrough_detach(rf_req *req, struct pt_inode *in, uint64_t fh);

/* ---- data.c ---- */
void pt_read(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi);
void pt_write(rf_req *req, rf_ino ino, const char *buf, size_t size, off_t off,
	      struct rf_file_info *fi);
void pt_flush(rf_req *req, rf_ino ino, struct rf_file_info *fi);
void pt_fsync(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi);
void pt_fallocate(rf_req *req, rf_ino ino, int mode, off_t offset, off_t length,
		  struct rf_file_info *fi);
void pt_lseek(rf_req *req, rf_ino ino, off_t off, int whence, struct rf_file_info *fi);
void pt_copy_file_range(rf_req *req, rf_ino ino_in, off_t off_in, struct rf_file_info *fi_in,
			rf_ino ino_out, off_t off_out, struct rf_file_info *fi_out, size_t len,
			int flags);

/* ---- dir.c ---- */
void pt_opendir(rf_req *req, rf_ino ino, struct rf_file_info *fi);
void pt_readdir(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi);
void pt_readdirplus(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi);
void pt_releasedir(rf_req *req, rf_ino ino, struct rf_file_info *fi);
void pt_fsyncdir(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi);

/* ---- xattr.c ---- */
void pt_setxattr(rf_req *req, rf_ino ino, const char *name, const char *value, size_t size,
		 int flags);
void pt_getxattr(rf_req *req, rf_ino ino, const char *name, size_t size);
void pt_listxattr(rf_req *req, rf_ino ino, size_t size);
void pt_removexattr(rf_req *req, rf_ino ino, const char *name);

#endif /* PASSTHROUGH_H */
