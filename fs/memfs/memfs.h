/*
 * ringfuse-memfs: an in-memory filesystem on the ringfuse low-level API.
 *
 * This header holds what the files of memfs share: the data structures, the one filesystem
 * state, small inline helpers and each file's entry points. One file, one job:
 *   main.c    main()
 *   opts.c    the -o options and the help text
 *   ops.c     the operations table, and the filesystem-wide operations (init, statfs)
 *   inode.c   the inode table, node lifetime and lookup counts, setup and teardown
 *   perm.c    POSIX permission rules (used when the kernel leaves them to us)
 *   data.c    file contents: chunks in a radix tree, holes, truncate, seek, capacity
 *   dir.c     the entry table of a directory, and listing it (readdir)
 *   entry.c   names: lookup, creating nodes of every type, link, unlink, rmdir
 *   rename.c  rename, its ancestry checks and directory lock ordering
 *   attr.c    getattr, setattr, access, access times
 *   file.c    open files: open, read, write, release, fallocate, copy_file_range, lseek
 *   xattr.c   extended attributes
 * and, for tests of the library rather than of memfs:
 *   ctl.c     the control socket (-o ctl=PATH): changes made behind the kernel's back
 *   admin.c   those changes, and the notifications that tell the kernel about them
 *   defer.c   deferred replies (-o defer=N): every request answered from a thread pool
 *   defer_ops.c  the operations that hand requests to that pool
 *   testhooks.c  deliberate misbehaviour for the library's tests (-o test_*)
 *
 * It behaves like tmpfs and is what the transport benchmarks run against, so requests for
 * different files share no lock and the data path is a table lookup (or none) plus memcpy:
 *
 *   inode table  NSHARDS shards (ino modulo NSHARDS), each a hash table behind its own rwlock,
 *                mapping the kernel's node ids to nodes. Requests that carry an open handle
 *                skip it: the handle is the node pointer, kept alive by the open.
 *   node         attributes and file data under one rwlock per node, so reads and getattr of
 *                one file run in parallel and requests for different files never meet.
 *   file data    64 KiB chunks in a radix tree (a file's only chunk hangs off the node
 *                directly); a missing chunk is a hole that reads as zeros. The first chunk
 *                starts at 4 KiB and doubles as it fills, so small files cost what they hold.
 *   directory    a hash table of names plus an array of the entries in creation order. Each
 *                entry gets the next id of its directory and a readdir offset is the last id
 *                returned, so a listing resumes in the right place whatever was unlinked.
 *
 * Lifetime: node->ref counts everything that keeps a node alive: its links (nlink), kernel
 * lookups, open handles, and short pins held by requests. Whoever drops it to zero frees the
 * node. A zero count never rises again: table lookups increment unless zero, and every other
 * path reaches a node through something that is itself counted (a directory entry, a handle).
 *
 * Lock order, outermost first:
 *   rename_lock  renames between two directories; freezes every directory's parent link so
 *                the ancestry checks hold and the two directories can be locked ancestor first
 *   dir->lock    entries; nested only parent before child, or for two unrelated directories
 *                under rename_lock, lower ino first
 *   node->lock   never two at once, except copy_file_range (lower ino first)
 *   shard->lock  a leaf
 * A reference is dropped only after the node's own locks are released.
 */
#ifndef MEMFS_H
#define MEMFS_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "ringfuse.h"

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#ifndef XATTR_NAME_MAX
#define XATTR_NAME_MAX 255
#endif
#ifndef XATTR_SIZE_MAX
#define XATTR_SIZE_MAX 65536
#endif
#ifndef XATTR_LIST_MAX
#define XATTR_LIST_MAX 65536
#endif

#define WRITE_KILL_SUIDGID (1u << 2) /* FUSE_WRITE_KILL_SUIDGID in rf_file_info.write_flags */

#define NAME_LEN_MAX  255
#define SYMLINK_MAX   4095
#define FILE_LINK_MAX 65000
#define DIRENT_BOGO   20 /* directory st_size per entry, as tmpfs reports it */
#define MAX_FILE_SIZE ((uint64_t)INT64_MAX)
#define CFR_MAX	      (1u << 30) /* largest copy_file_range done in one request */

#define CHUNK_SHIFT 16
#define CHUNK_SIZE  (1u << CHUNK_SHIFT)
#define CHUNK_MASK  ((uint64_t)CHUNK_SIZE - 1)
#define CHUNK_MIN   4096u
#define RADIX_SHIFT 9
#define RADIX_FAN   (1u << RADIX_SHIFT)

#define NSHARD_BITS 6
#define NSHARDS	    (1u << NSHARD_BITS)

struct chunk {
	uint32_t cap; /* bytes of data[] allocated; past it the chunk reads as zeros */
	uint32_t pad[3];
	char data[];
};

struct rnode {
	void *slot[RADIX_FAN]; /* struct rnode * above the last level, struct chunk * on it */
};

/* File contents. height 0: root is the chunk at index 0 (or NULL); height h > 0: root is an
 * rnode covering chunk indices below 2^(9h). */
struct fdata {
	void *root;
	unsigned int height;
	uint64_t alloc; /* bytes held in chunks */
};

struct dent {
	struct dent *hnext; /* hash chain */
	struct node *node;
	uint64_t id; /* readdir cookie: ids only grow within a directory */
	uint64_t hash;
	uint64_t slot; /* index in dir->slots */
	uint16_t len;
	char name[];
};

struct dslot {
	uint64_t id;
	struct dent *e; /* NULL once unlinked, until the array is compacted */
};

struct dir {
	pthread_rwlock_t lock; /* everything below except parent */
	struct dent **buckets;
	uint64_t nbuckets; /* 0 or a power of two */
	uint64_t count;	   /* live entries */
	struct dslot *slots;
	uint64_t nslots, capslots;
	uint64_t next_id;
	bool removed;		 /* rmdir'ed or replaced by rename: no new entries */
	_Atomic uint64_t parent; /* ino of the parent; written under rename_lock or at mkdir */
};

struct xattr {
	struct xattr *next;
	uint32_t nlen, vlen;
	char data[]; /* name, NUL, value */
};

struct node {
	struct node *hnext; /* inode table chain, under the shard lock */
	uint64_t ino;	    /* immutable */
	mode_t type;	    /* S_IFMT bits, immutable */
	_Atomic uint64_t ref;
	_Atomic uint64_t nlookup;
	pthread_rwlock_t lock;
	/* Under lock: */
	mode_t mode; /* permission bits only */
	uid_t uid;
	gid_t gid;
	dev_t rdev;
	uint64_t nlink;
	uint64_t size;
	bool linkable; /* O_TMPFILE: may get its first link */
	struct timespec atime, mtime, ctime;
	struct xattr *xattrs;
	uint32_t xattr_names; /* listxattr size */
	struct fdata file;    /* S_IFREG */
	/* Immutable: */
	struct dir *dir; /* S_IFDIR */
	char *target;	 /* S_IFLNK */
};

struct shard {
	pthread_rwlock_t lock;
	struct node **buckets;
	uint64_t nbuckets, count;
} __attribute__((aligned(64)));

struct memfs {
	struct shard shards[NSHARDS];
	pthread_mutex_t rename_lock;
	pthread_rwlockattr_t rwattr;
	_Atomic uint64_t next_ino;
	_Atomic uint64_t used_bytes;
	_Atomic uint64_t ninodes;
	uint64_t max_bytes, max_inodes;
	double entry_timeout, attr_timeout, neg_timeout;
	bool keep_cache, cache_dir, perm_check, writeback, direct_io;
	bool killpriv_v2;
	mode_t root_mode;
	uid_t root_uid;
	gid_t root_gid;
};

/* The filesystem: one per process (inode.c). */
extern struct memfs fs;

/* The operations table (ops.c). A program that embeds memfs links memfs_sources (every file
 * but main.c, see fs/meson.build) and calls fs_setup() and root_create() itself. */
extern const struct rf_ops memfs_ops;

/* ---- small helpers ---- */

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static inline void ts_now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

static inline bool ts_le(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec <= b->tv_nsec);
}

static inline void rdlock(pthread_rwlock_t *l)
{
	pthread_rwlock_rdlock(l);
}

static inline void wrlock(pthread_rwlock_t *l)
{
	pthread_rwlock_wrlock(l);
}

static inline void unlock(pthread_rwlock_t *l)
{
	pthread_rwlock_unlock(l);
}

static inline bool is_dot_or_dotdot(const char *name, size_t len)
{
	return (len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.');
}

/* ---- perm.c ---- */
/* Is gid the caller's group or one of its supplementary groups? */
bool in_group(rf_req *req, gid_t gid);
/* 0 or -EACCES: may the caller access an inode with these attributes for mask (R/W/X_OK)?
 * req NULL is the administrator (the control socket): always allowed. */
int perm_vals(rf_req *req, mode_t type, mode_t mode, uid_t uid, gid_t gid, int mask);
int perm_locked(rf_req *req, const struct node *n, int mask); /* n->lock held */
int perm_node(rf_req *req, struct node *n, int mask);
bool sticky_ok(rf_req *req, mode_t dir_mode, uid_t dir_uid, uid_t victim_uid);
/* n->lock held for writing */
void kill_suidgid(rf_req *req, struct node *n, const struct timespec *now);

/* ---- inode.c ---- */
struct node *node_get(uint64_t ino); /* pinned, or NULL */
void table_insert(struct node *n);
void node_ref(struct node *n, uint64_t k);
void node_unref(struct node *n, uint64_t k);
void node_put(struct node *n);
void node_add_lookup(struct node *n);
struct node *req_node(rf_ino ino, const struct rf_file_info *fi, bool *pinned);
void req_node_done(struct node *n, bool pinned);
struct node *node_alloc(mode_t type, const char *target, int *err);
void node_free(struct node *n);
void stat_fill(const struct node *n, struct stat *st);
void entry_fill(struct rf_entry_param *e, const struct node *n);
int fs_setup(void);
int root_create(void);
void fs_teardown(void);
void mfs_forget(rf_req *req, rf_ino ino, uint64_t nlookup);

/* ---- data.c (every function but the space ones: n->lock held) ---- */
int space_charge(uint64_t bytes);
void space_release(uint64_t bytes);
void data_release(uint64_t bytes); /* file data freed: released, and given back in bulk */
void radix_free(void *p, unsigned int h);
struct chunk *chunk_at(const struct fdata *f, uint64_t idx);
struct chunk *chunk_prepare(struct fdata *f, uint64_t idx, uint32_t need, uint32_t a, uint32_t b,
			    int *err);
void file_read(const struct node *n, char *dst, uint64_t off, size_t len);
int file_write(struct node *n, const char *src, uint64_t off, size_t len, size_t *done);
void file_punch(struct node *n, uint64_t off, uint64_t end);
int file_alloc(struct node *n, uint64_t off, uint64_t end);
void file_truncate(struct node *n, uint64_t size);
int64_t file_seek_data(const struct node *n, uint64_t off);
int64_t file_seek_hole(const struct node *n, uint64_t off);

/* ---- dir.c (the table functions: dir->lock held) ---- */
uint64_t name_hash(const char *s, size_t len);
struct dent *dent_alloc(const char *name, size_t len, uint64_t hash, int *err);
void dent_free(struct dent *e); /* NULL is fine */
struct dent *dir_find(const struct dir *d, const char *name, size_t len, uint64_t hash);
int dir_reserve(struct dir *d);
void dir_insert(struct dir *d, struct dent *e);
void dir_remove(struct dir *d, struct dent *e);
uint64_t dir_seek(const struct dir *d, uint64_t off);
void mfs_opendir(rf_req *req, rf_ino ino, struct rf_file_info *fi);
void mfs_readdir(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi);
void mfs_readdirplus(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi);
void mfs_releasedir(rf_req *req, rf_ino ino, struct rf_file_info *fi);

/* ---- entry.c ---- */
void mfs_lookup(rf_req *req, rf_ino parent, const char *name);
void mfs_readlink(rf_req *req, rf_ino ino);
void mfs_mknod(rf_req *req, rf_ino parent, const char *name, mode_t mode, dev_t rdev);
void mfs_mkdir(rf_req *req, rf_ino parent, const char *name, mode_t mode);
void mfs_symlink(rf_req *req, const char *link, rf_ino parent, const char *name);
void mfs_create(rf_req *req, rf_ino parent, const char *name, mode_t mode, struct rf_file_info *fi);
void mfs_tmpfile(rf_req *req, rf_ino parent, mode_t mode, struct rf_file_info *fi);
void mfs_link(rf_req *req, rf_ino ino, rf_ino newparent, const char *newname);
/* unlink (isdir false) or rmdir name in p, pinned by the caller, for req (NULL: for the
 * administrator). *child (if not NULL) gets the ino the name led to. */
int remove_entry(rf_req *req, struct node *p, const char *name, bool isdir, uint64_t *child);
void mfs_unlink(rf_req *req, rf_ino parent, const char *name);
void mfs_rmdir(rf_req *req, rf_ino parent, const char *name);

/* ---- rename.c ---- */
void mfs_rename(rf_req *req, rf_ino parent, const char *name, rf_ino newparent, const char *newname,
		unsigned int flags);

/* ---- attr.c ---- */
bool atime_due(rf_req *req, const struct node *n); /* n->lock held */
void atime_update(struct node *n);
void mfs_getattr(rf_req *req, rf_ino ino, struct rf_file_info *fi);
void mfs_setattr(rf_req *req, rf_ino ino, struct stat *attr, int to_set, struct rf_file_info *fi);
void mfs_access(rf_req *req, rf_ino ino, int mask);

/* ---- file.c ---- */
/* The open flags of every memfs file handle. */
void open_flags(struct rf_file_info *fi);
int open_node(rf_req *req, struct node *n, struct rf_file_info *fi);
void mfs_open(rf_req *req, rf_ino ino, struct rf_file_info *fi);
void mfs_read(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi);
void mfs_write(rf_req *req, rf_ino ino, const char *buf, size_t size, off_t off,
	       struct rf_file_info *fi);
void mfs_flush(rf_req *req, rf_ino ino, struct rf_file_info *fi);
void mfs_release(rf_req *req, rf_ino ino, struct rf_file_info *fi);
void mfs_fsync(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi);
void mfs_fallocate(rf_req *req, rf_ino ino, int mode, off_t offset, off_t length,
		   struct rf_file_info *fi);
void mfs_copy_file_range(rf_req *req, rf_ino ino_in, off_t off_in, struct rf_file_info *fi_in,
			 rf_ino ino_out, off_t off_out, struct rf_file_info *fi_out, size_t len,
			 int flags);
void mfs_lseek(rf_req *req, rf_ino ino, off_t off, int whence, struct rf_file_info *fi);

/* ---- xattr.c ---- */
void xattr_free(struct xattr *x); /* gives its cost back to the capacity */
void mfs_setxattr(rf_req *req, rf_ino ino, const char *name, const char *value, size_t size,
		  int flags);
void mfs_getxattr(rf_req *req, rf_ino ino, const char *name, size_t size);
void mfs_listxattr(rf_req *req, rf_ino ino, size_t size);
void mfs_removexattr(rf_req *req, rf_ino ino, const char *name);

/* ---- opts.c ---- */
#define DEFER_THREADS_MAX  256
#define DEFER_DELAY_US_MAX 60000000u

/* What the options ask main() to set up beyond the filesystem state. */
struct memfs_opts {
	char *ctl;	    /* control socket path, or NULL */
	unsigned int defer; /* deferred-reply threads, 0: off */
	uint64_t delay_us;  /* hold deferred requests this long first */
	char *delay_ops;    /* which ones (':'-separated op names), NULL: the default */
};
bool want_defer(int argc, char *argv[]);
bool want_threads_log(int argc, char *argv[]);
bool asked_for_help(int argc, char *argv[]);
void print_help(void);
/* Fill fs's settings and *o from the session's options; prints why and fails on bad ones. */
int read_opts(rf_session *se, struct memfs_opts *o);

/* ---- admin.c: paths are '/'-separated from the root, and cut up by the call ---- */
enum admin_notify {
	ADMIN_NOTIFY_NONE,   /* leave the kernel's caches stale */
	ADMIN_NOTIFY_INVAL,  /* invalidate the changed pages, attributes or entry */
	ADMIN_NOTIFY_STORE,  /* write: push the new bytes into the page cache */
	ADMIN_NOTIFY_DELETE, /* remove: tell the kernel the entry and its inode are gone */
};
int admin_write(rf_session *se, char *path, uint64_t off, const void *data, size_t len,
		enum admin_notify how);
/* Set the mtime (NULL: now). */
int admin_touch(rf_session *se, char *path, const struct timespec *mtime, enum admin_notify how);
int admin_remove(rf_session *se, char *path, bool isdir, enum admin_notify how);

/* ---- ctl.c ---- */
/* Create the socket (before mounting, so a bad path fails the start). */
int ctl_open(rf_session *se, const char *path);
/* Start serving it (from init: after the daemon detached). */
int ctl_start(void);
void ctl_close(void);

/* ---- defer.c ---- */
/* Replace every operation that replies in ops by one that hands it to the pool. */
void defer_wrap(struct rf_ops *ops);
int defer_configure(unsigned int threads, uint64_t delay_us, const char *delay_ops);
int defer_start(void);
/* Answer everything still queued or held, and join the threads. */
void defer_stop(void);

/* ---- testhooks.c (test-only) ---- */
/* Whether a -o test_* option was given: then hooks_wrap() wraps the operations table. */
bool want_test_hooks(int argc, char *argv[]);
void hooks_wrap(struct rf_ops *ops);
/* Read the test_* options (prints why and fails on bad ones). */
int hooks_configure(rf_session *se);
/* Let lookups blocked by test_block go on (the control socket's "release"). */
void hooks_release(void);
/* After rf_session_run(): test_linger_ms. */
void hooks_after_run(void);
void hooks_free(void);

/* ---- threads.c (-o test_threads_log) ---- */
/* Wrap every operation in ops to note the thread it runs on. */
void threads_log_wrap(struct rf_ops *ops);
/* Print the threads the callbacks ran on, and how many ran at once, to stderr. */
void threads_log_report(void);

#endif /* MEMFS_H */
