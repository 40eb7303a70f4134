/*
 * ringfuse: a library for writing Linux FUSE filesystem servers.
 *
 * The kernel talks to a ringfuse server over one of three transports, chosen when the
 * filesystem is mounted and negotiated at FUSE_INIT:
 *   uring     FUSE-over-io-uring (Linux 6.14+): one pinned thread and one io_uring per CPU
 *             queue, requests and replies in registered ring entries (COMMIT_AND_FETCH).
 *   dev       classic read()/write() on /dev/fuse, one worker per cloned fd.
 *   uring-rw  the classic protocol driven by io_uring READ/WRITE SQEs on /dev/fuse.
 * The filesystem sees none of this: it fills an inode-based operations table (struct rf_ops,
 * modelled on libfuse's low-level API) and answers every request exactly once through one of
 * the rf_reply_*() functions, either inside the callback or later from any thread.
 *
 * Conventions:
 *   - Functions returning int return >= 0 on success and a negative errno on failure; errno is
 *     not set (rf_session_new(), which returns a pointer, is the exception).
 *   - rf_reply_err() takes a positive errno (as libfuse does); 0 means success without data.
 *   - Every request is answered exactly once. Once a reply function has returned, whatever it
 *     returned, req and everything borrowed from it are gone: the slot may already hold the
 *     next request.
 *
 * Buffer ownership, the words used below:
 *   borrowed      names, link targets, write data and xattr values passed to callbacks point
 *                 into the transport buffer that holds the request. Valid until the request is
 *                 answered (also when the reply is deferred), but the reply is encoded in the
 *                 same memory with the uring transport: replying, or writing into
 *                 rf_reply_payload(), overwrites them. Use or copy them first.
 *   call-scoped   struct rf_file_info and setattr's struct stat are the dispatcher's copies,
 *                 valid only until the callback returns. Copy them to reply later.
 *   ring-owned    the reply area of rf_reply_payload() belongs to the request until its reply,
 *                 then to the transport.
 *   copied        everything passed to a reply function, a notification or rf_session_new() is
 *                 copied before the call returns; nothing is kept.
 *   caller-owned  buffers handed to rf_io_*() stay the caller's and must outlive the callback.
 *
 * Threads: a callback runs on the thread that received its request: one queue thread per
 * possible CPU (pinned) with the uring transport, a worker with dev and uring-rw, or the thread
 * inside rf_session_run(), which always reads /dev/fuse (INIT, interrupts, forgets, requests
 * that raced the switch to the ring; with -s, every request the uring transport does not
 * carry). Requests run concurrently, also for the same inode, so a filesystem must be
 * thread-safe. A callback may return without replying and answer later from any thread; while
 * it blocks, its queue serves nothing else.
 */
#ifndef RINGFUSE_H
#define RINGFUSE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RF_VERSION_MAJOR 0
#define RF_VERSION_MINOR 1

#define RF_ROOT_INO 1

typedef uint64_t rf_ino;
typedef struct rf_req rf_req;
typedef struct rf_session rf_session;

/*
 * Who issued a request, as the kernel saw it (in the daemon's pid namespace). Requests the
 * kernel makes on its own behalf (writeback, release) need not name the process that caused
 * them.
 */
struct rf_ctx {
	uid_t uid;    /* filesystem uid of the caller */
	gid_t gid;    /* filesystem gid of the caller */
	pid_t pid;    /* thread id (gettid(2)) of the caller */
	mode_t umask; /* umask of the caller for create/mkdir/mknod/tmpfile, else 0 */
};

/*
 * Open file state. Requests on an open file carry it in; open, opendir, create and tmpfile
 * fill it for their reply (rf_reply_open(), rf_reply_create()), which reads fh and the reply
 * bits below. Call-scoped: the pointer a callback gets is valid only until it returns.
 */
struct rf_file_info {
	/* open(2) flags: of this open (open, create), or of the open file (read, write, release) */
	int flags;
	/* Set by open/create/opendir, passed back on later requests on the open file. */
	uint64_t fh;
	/* Lock owner: flush and release; read, write and setattr when the kernel sent one. */
	uint64_t lock_owner;
	/* FUSE_WRITE_* bits of a write: FUSE_WRITE_CACHE (writeback from the page cache),
	 * FUSE_WRITE_KILL_SUIDGID (clear suid/sgid). */
	uint32_t write_flags;
	/* Reply: kernel passthrough id from rf_passthrough_open(), with passthrough = 1. */
	int32_t backing_id;
	/* Reply bits of open/opendir/create/tmpfile: */
	unsigned int direct_io : 1;		 /* bypass the page cache for this open */
	unsigned int keep_cache : 1;		 /* keep cached pages from earlier opens */
	unsigned int nonseekable : 1;		 /* the file is a stream (no pread/pwrite) */
	unsigned int cache_readdir : 1;		 /* opendir: the kernel may cache the listing */
	unsigned int noflush : 1;		 /* no flush request on close(2) */
	unsigned int parallel_direct_writes : 1; /* direct writes need not be serialised */
	unsigned int passthrough : 1;		 /* the kernel does I/O on backing_id itself */
	/* Request bits: */
	unsigned int flush : 1;	   /* release: flush before releasing (also set for flush) */
	unsigned int fh_valid : 1; /* getattr/setattr: fh is meaningful */
};

/*
 * An answer to lookup/mknod/mkdir/symlink/link/create/tmpfile and an entry of readdirplus.
 * A non-zero ino adds one to that inode's lookup count (forget takes it away); ino 0 is a
 * negative entry, valid only for lookup, which the kernel caches for entry_timeout.
 * Timeouts are in seconds; negative or NaN mean 0.
 */
struct rf_entry_param {
	rf_ino ino;
	uint64_t generation; /* with ino, unique over the life of the filesystem */
	struct stat attr;
	double attr_timeout;  /* seconds */
	double entry_timeout; /* seconds */
};

/* One entry of a batch of forgets (the kernel's struct fuse_forget_one). */
struct rf_forget_data {
	rf_ino ino;
	uint64_t nlookup;
};

/* setattr's to_set bits (values match the kernel's FATTR_* bits). */
#define RF_SET_ATTR_MODE	 (1 << 0)
#define RF_SET_ATTR_UID		 (1 << 1)
#define RF_SET_ATTR_GID		 (1 << 2)
#define RF_SET_ATTR_SIZE	 (1 << 3)
#define RF_SET_ATTR_ATIME	 (1 << 4)
#define RF_SET_ATTR_MTIME	 (1 << 5)
#define RF_SET_ATTR_ATIME_NOW	 (1 << 7)
#define RF_SET_ATTR_MTIME_NOW	 (1 << 8)
#define RF_SET_ATTR_CTIME	 (1 << 10)
#define RF_SET_ATTR_KILL_SUIDGID (1 << 11)

/*
 * Negotiated connection parameters, handed to init(). want comes prefilled with what the
 * library asks for by default (among them ASYNC_READ, ATOMIC_O_TRUNC, BIG_WRITES,
 * AUTO_INVAL_DATA, ASYNC_DIO, PARALLEL_DIROPS, MAX_PAGES, SETXATTR_EXT, NO_EXPORT_SUPPORT;
 * READDIRPLUS and READDIRPLUS_AUTO when ops->readdirplus is set; OVER_IO_URING unless another
 * transport was asked for). init() may add bits of capable (others are dropped), clear bits
 * (clearing RF_CAP_OVER_IO_URING keeps the connection on /dev/fuse), lower max_write (not below
 * 4096), max_pages and max_readahead (never raise them), and set max_background,
 * congestion_threshold and time_gran.
 */
struct rf_conn_info {
	uint32_t proto_major;
	uint32_t proto_minor;
	uint32_t max_write;
	uint32_t max_read;
	uint32_t max_readahead;
	uint32_t max_pages;
	uint16_t max_background;
	uint16_t congestion_threshold;
	uint32_t time_gran;
	uint64_t capable; /* RF_CAP_* the kernel offers */
	uint64_t want;	  /* RF_CAP_* the filesystem asks for (prefilled with safe defaults) */
};

/* Capabilities (values match the kernel's 64-bit INIT flags). */
#define RF_CAP_ASYNC_READ	    (1ULL << 0)
#define RF_CAP_POSIX_LOCKS	    (1ULL << 1)
#define RF_CAP_ATOMIC_O_TRUNC	    (1ULL << 3)
#define RF_CAP_EXPORT_SUPPORT	    (1ULL << 4)
#define RF_CAP_BIG_WRITES	    (1ULL << 5)
#define RF_CAP_DONT_MASK	    (1ULL << 6)
#define RF_CAP_SPLICE_WRITE	    (1ULL << 7)
#define RF_CAP_SPLICE_MOVE	    (1ULL << 8)
#define RF_CAP_SPLICE_READ	    (1ULL << 9)
#define RF_CAP_FLOCK_LOCKS	    (1ULL << 10)
#define RF_CAP_AUTO_INVAL_DATA	    (1ULL << 12)
#define RF_CAP_READDIRPLUS	    (1ULL << 13)
#define RF_CAP_READDIRPLUS_AUTO	    (1ULL << 14)
#define RF_CAP_ASYNC_DIO	    (1ULL << 15)
#define RF_CAP_WRITEBACK_CACHE	    (1ULL << 16)
#define RF_CAP_NO_OPEN_SUPPORT	    (1ULL << 17)
#define RF_CAP_PARALLEL_DIROPS	    (1ULL << 18)
#define RF_CAP_HANDLE_KILLPRIV	    (1ULL << 19)
#define RF_CAP_POSIX_ACL	    (1ULL << 20)
#define RF_CAP_ABORT_ERROR	    (1ULL << 21)
#define RF_CAP_MAX_PAGES	    (1ULL << 22)
#define RF_CAP_CACHE_SYMLINKS	    (1ULL << 23)
#define RF_CAP_NO_OPENDIR_SUPPORT   (1ULL << 24)
#define RF_CAP_EXPLICIT_INVAL_DATA  (1ULL << 25)
#define RF_CAP_SETXATTR_EXT	    (1ULL << 29)
#define RF_CAP_HANDLE_KILLPRIV_V2   (1ULL << 28)
#define RF_CAP_CREATE_SUPP_GROUP    (1ULL << 34)
#define RF_CAP_DIRECT_IO_ALLOW_MMAP (1ULL << 36)
#define RF_CAP_PASSTHROUGH	    (1ULL << 37)
#define RF_CAP_NO_EXPORT_SUPPORT    (1ULL << 38)
#define RF_CAP_OVER_IO_URING	    (1ULL << 41) /* the uring transport (chosen at INIT) */

/*
 * The operations table. Members are only ever added at the end; pass sizeof(struct rf_ops) to
 * rf_session_new() so an older filesystem binary keeps working with a newer library.
 *
 * Every member may be NULL: the request is then answered ENOSYS, except that forget is
 * dropped, open and opendir succeed with fh 0, release and releasedir succeed, statfs gets a
 * default answer (512-byte blocks, 255-byte names, zero counts) and interrupt is skipped (the
 * request is still marked for rf_req_interrupted()). Opcodes without a member here (locks,
 * bmap, ioctl, poll, statx, DAX, newer ones) are answered ENOSYS by the library.
 *
 * "Valid replies" lists the reply functions a callback may end with, now or later from any
 * thread; rf_reply_err(req, 0) is a success without data. Arguments are checked before a
 * callback runs: names are non-empty, NUL-terminated and contain no '/' ("." and ".." only
 * reach lookup), file offsets and sizes are in range, write sizes match their data. Strings and
 * data are borrowed, fi and setattr's attr are call-scoped (see the top of this file). Callbacks
 * run on the thread that received the request unless said otherwise.
 */
struct rf_ops {
	/* Connection set up: adjust conn (see struct rf_conn_info). Runs once, on the thread in
	 * rf_session_run(), before any other callback and before the transport's threads exist.
	 * Start the filesystem's own threads here rather than before rf_session_run(): without
	 * -f the process forks after mounting. No reply. */
	void (*init)(void *userdata, struct rf_conn_info *conn);
	/* Connection ends. Runs once, only if init ran: on the thread in rf_session_run() after
	 * the transport's threads were joined, or on the thread that received FUSE_DESTROY.
	 * No reply. */
	void (*destroy)(void *userdata);

	/* Valid replies: rf_reply_entry (ino 0: negative entry), rf_reply_err. Each entry with
	 * ino != 0 adds one lookup. */
	void (*lookup)(rf_req *req, rf_ino parent, const char *name);
	/* Drop nlookup lookups. Valid reply: rf_reply_none, called before returning (without
	 * forget_multi, the entries of a batch forget are passed one at a time, each with a
	 * stand-in req). */
	void (*forget)(rf_req *req, rf_ino ino, uint64_t nlookup);
	/* Valid replies: rf_reply_attr, rf_reply_err. fi is NULL unless the kernel sent a fh. */
	void (*getattr)(rf_req *req, rf_ino ino, struct rf_file_info *fi);
	/* Apply the fields of attr named by to_set (RF_SET_ATTR_* bits). fi is NULL unless the
	 * kernel sent a fh. Valid replies: rf_reply_attr, rf_reply_err. */
	void (*setattr)(rf_req *req, rf_ino ino, struct stat *attr, int to_set,
			struct rf_file_info *fi);
	/* Valid replies: rf_reply_readlink, rf_reply_err. */
	void (*readlink)(rf_req *req, rf_ino ino);
	/* mode has the caller's umask applied (rf_req_ctx()->umask holds it).
	 * Valid replies: rf_reply_entry, rf_reply_err. */
	void (*mknod)(rf_req *req, rf_ino parent, const char *name, mode_t mode, dev_t rdev);
	/* As mknod. Valid replies: rf_reply_entry, rf_reply_err. */
	void (*mkdir)(rf_req *req, rf_ino parent, const char *name, mode_t mode);
	/* Valid reply: rf_reply_err. */
	void (*unlink)(rf_req *req, rf_ino parent, const char *name);
	/* Valid reply: rf_reply_err. */
	void (*rmdir)(rf_req *req, rf_ino parent, const char *name);
	/* link is the target. Valid replies: rf_reply_entry, rf_reply_err. */
	void (*symlink)(rf_req *req, const char *link, rf_ino parent, const char *name);
	/* flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE. Valid reply: rf_reply_err. */
	void (*rename)(rf_req *req, rf_ino parent, const char *name, rf_ino newparent,
		       const char *newname, unsigned int flags);
	/* ino is the existing inode. Valid replies: rf_reply_entry, rf_reply_err. */
	void (*link)(rf_req *req, rf_ino ino, rf_ino newparent, const char *newname);
	/* fi->flags: the open(2) flags; set fi->fh and the reply bits.
	 * Valid replies: rf_reply_open, rf_reply_err. */
	void (*open)(rf_req *req, rf_ino ino, struct rf_file_info *fi);
	/* At most size bytes (already limited to the reply area); fewer mean end of file unless
	 * direct_io. Valid replies: rf_reply_buf, rf_reply_data (zero copy), rf_io_reply_read,
	 * rf_reply_err. */
	void (*read)(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi);
	/* buf (size bytes) is borrowed: the reply overwrites it with the uring transport.
	 * Valid replies: rf_reply_write, rf_io_reply_write, rf_reply_err. */
	void (*write)(rf_req *req, rf_ino ino, const char *buf, size_t size, off_t off,
		      struct rf_file_info *fi);
	/* On every close(2) of a descriptor, unless the open set noflush.
	 * Valid reply: rf_reply_err. */
	void (*flush)(rf_req *req, rf_ino ino, struct rf_file_info *fi);
	/* The last reference to an open file is gone. Valid reply: rf_reply_err (the error is
	 * ignored by the kernel). */
	void (*release)(rf_req *req, rf_ino ino, struct rf_file_info *fi);
	/* datasync: fdatasync(2). Valid replies: rf_reply_err, rf_io_reply_fsync. */
	void (*fsync)(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi);
	/* Valid replies: rf_reply_open, rf_reply_err. */
	void (*opendir)(rf_req *req, rf_ino ino, struct rf_file_info *fi);
	/* Fill at most size bytes with rf_add_direntry(), starting after the entry whose offset
	 * is off (0: from the start); an empty reply ends the listing.
	 * Valid replies: rf_reply_buf, rf_reply_data, rf_reply_err. */
	void (*readdir)(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi);
	/* Valid reply: rf_reply_err (ignored by the kernel). */
	void (*releasedir)(rf_req *req, rf_ino ino, struct rf_file_info *fi);
	/* Valid reply: rf_reply_err. */
	void (*fsyncdir)(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi);
	/* Valid replies: rf_reply_statfs, rf_reply_err. */
	void (*statfs)(rf_req *req, rf_ino ino);
	/* value (size bytes, not NUL-terminated) is borrowed. flags: 0, XATTR_CREATE or
	 * XATTR_REPLACE. Valid reply: rf_reply_err. */
	void (*setxattr)(rf_req *req, rf_ino ino, const char *name, const char *value, size_t size,
			 int flags);
	/* size 0 asks for the length. Valid replies: rf_reply_xattr (size 0), rf_reply_buf or
	 * rf_reply_data (at most size bytes), rf_reply_err (ERANGE if the value does not fit,
	 * ENODATA if absent). */
	void (*getxattr)(rf_req *req, rf_ino ino, const char *name, size_t size);
	/* Same contract as getxattr, with a list of NUL-terminated names. */
	void (*listxattr)(rf_req *req, rf_ino ino, size_t size);
	/* Valid reply: rf_reply_err. */
	void (*removexattr)(rf_req *req, rf_ino ino, const char *name);
	/* Sent only without default_permissions; ENOSYS makes the kernel stop asking and allow
	 * everything. Valid reply: rf_reply_err. */
	void (*access)(rf_req *req, rf_ino ino, int mask);
	/* Create and open; fi->flags: the open(2) flags, mode as for mknod. ENOSYS makes the
	 * kernel use mknod and open instead. Valid replies: rf_reply_create, rf_reply_err. */
	void (*create)(rf_req *req, rf_ino parent, const char *name, mode_t mode,
		       struct rf_file_info *fi);
	/* mode: FALLOC_FL_* bits. Valid reply: rf_reply_err. */
	void (*fallocate)(rf_req *req, rf_ino ino, int mode, off_t offset, off_t length,
			  struct rf_file_info *fi);
	/* As readdir, filled with rf_add_direntry_plus(); setting it makes the library ask for
	 * RF_CAP_READDIRPLUS(_AUTO). Valid replies: as readdir. */
	void (*readdirplus)(rf_req *req, rf_ino ino, size_t size, off_t off,
			    struct rf_file_info *fi);
	/* Valid replies: rf_reply_write (bytes copied), rf_reply_err. */
	void (*copy_file_range)(rf_req *req, rf_ino ino_in, off_t off_in,
				struct rf_file_info *fi_in, rf_ino ino_out, off_t off_out,
				struct rf_file_info *fi_out, size_t len, int flags);
	/* The kernel asks for SEEK_DATA and SEEK_HOLE; ENOSYS makes it stop asking.
	 * Valid replies: rf_reply_lseek, rf_reply_err. */
	void (*lseek)(rf_req *req, rf_ino ino, off_t off, int whence, struct rf_file_info *fi);
	/* O_TMPFILE: create an unnamed file in parent and open it.
	 * Valid replies: rf_reply_create, rf_reply_err. */
	void (*tmpfile)(rf_req *req, rf_ino parent, mode_t mode, struct rf_file_info *fi);
	/* The kernel interrupted req. Runs once per interrupted request, either on the thread
	 * that read the interrupt, concurrently with whoever handles req: do not reply to req or
	 * touch its arguments here (it may be answered at any moment, and req then goes stale:
	 * rf_req_unique() returns 0); tell its handler, which can also poll
	 * rf_req_interrupted(). Or, when the interrupt overtook its request (it was still
	 * queued), on the request's own thread just before its callback, which then finds
	 * rf_req_interrupted() already true. No reply. */
	void (*interrupt)(rf_req *req, void *userdata);
	/* Filesystem-wide sync (syncfs(2)). Valid reply: rf_reply_err. */
	void (*syncfs)(rf_req *req, rf_ino ino);
	/* A batch of forgets (BATCH_FORGET, sent when forgets pile up) in one call; forgets
	 * (count entries) is borrowed. Valid reply: rf_reply_none, called before returning.
	 * Without it, forget is called for each entry. */
	void (*forget_multi)(rf_req *req, size_t count, const struct rf_forget_data *forgets);
	/* The mount was remounted with other flags (mount -o remount,...): mount_flags holds the
	 * new RF_MOUNT_* bits, which rf_session_mount_flags() returns from now on. Runs on a
	 * library thread that follows the mount table, once per change, never concurrently with
	 * itself, only after init. No reply. */
	void (*remount)(void *userdata, unsigned int mount_flags);
};

/* ---- Requests: accessors, callable from any thread until the request is answered ----
 *
 * An rf_req * names one request, not the slot that carries it: once a request is answered
 * its slot soon carries another, and the old rf_req * stays stale for good. Every function
 * here and below recognises a stale one: replies are refused (-EALREADY, counted as dup),
 * rf_io_*() return -EINVAL, rf_reply_payload() returns NULL, rf_add_direntry*() write
 * nothing, rf_req_unique() returns 0, rf_req_interrupted() 0 and rf_req_ctx() a caller who
 * may do nothing (uid and gid -1, umask 0777). Only after 4096 requests in the same slot can
 * a stale rf_req * pass for the current one. */

/* Caller of the request. Borrowed: valid until the request is answered. */
const struct rf_ctx *rf_req_ctx(const rf_req *req);
/* The userdata given to rf_session_new(). */
void *rf_req_userdata(const rf_req *req);
/* The session a request belongs to. */
rf_session *rf_req_session(const rf_req *req);
/* Index of the queue that received req: the CPU queue (uring) or the worker (dev, uring-rw).
 * Requests read by the thread in rf_session_run() report 0 too: it names a queue, not a
 * thread. */
unsigned int rf_req_queue(const rf_req *req);
/* Non-zero once the kernel sent FUSE_INTERRUPT for req: finish early with EINTR if you can. */
int rf_req_interrupted(const rf_req *req);
/* The kernel's id of the request (fuse_in_header.unique): unique over the life of the
 * connection, so filesystems (and ops.interrupt) can tell requests apart and match them up.
 * 0 for a stale rf_req *. */
uint64_t rf_req_unique(const rf_req *req);
/* The caller's supplementary groups, read from /proc/PID/task/PID/status: stores up to size of
 * them in list and returns how many there are (may be more than size), or -errno. */
int rf_req_getgroups(const rf_req *req, int size, gid_t list[]);
/* The groups the kernel sent with a request that creates (mknod, mkdir, symlink, create,
 * tmpfile) when RF_CAP_CREATE_SUPP_GROUP was agreed at INIT: the parent directory's group,
 * when the caller belongs to it through a supplementary group (it is not sent when it is the
 * caller's own gid or when the caller is not a member). Taken from the request itself, so
 * never out of date; no system call. Stores up to size of them in list and returns how many
 * were sent (0: none), or -errno. Call it before answering: the reply may overwrite them. */
int rf_req_create_groups(const rf_req *req, int size, gid_t list[]);

/* ---- Replies: each request gets exactly one. All may be called from any thread. ----
 * They return 0 once the reply is handed to the transport, or a negative errno: -EALREADY
 * when the request was already answered or req is stale (the extra reply is refused, counted
 * in dup_replies and logged once), -EBUSY while a backend operation of the request (rf_io_*)
 * is in flight (nothing is sent: answer from its callback), -ERANGE when the body does not
 * fit the reply area (the kernel gets EIO instead), or the transport's error (e.g. the
 * connection is gone). Except for -EBUSY the request is finished either way: do not touch
 * req afterwards. Arguments are copied (encoded into the reply area) before the call
 * returns. */

/* err: a positive errno, or 0 for success without data. Out of range (negative or > 511)
 * is answered EIO with a warning. */
int rf_reply_err(rf_req *req, int err);
/* Finish a request that takes no reply: forget only. On a request that takes a reply it is
 * refused (a warning, logged once) and the request is answered EIO instead, so its caller
 * does not wait for an answer that would never come. */
void rf_reply_none(rf_req *req);
/* Answer lookup/mknod/mkdir/symlink/link with e (see struct rf_entry_param). */
int rf_reply_entry(rf_req *req, const struct rf_entry_param *e);
/* Answer create/tmpfile: the new entry and the open file (fh and reply bits of fi; fi may be
 * NULL for fh 0). */
int rf_reply_create(rf_req *req, const struct rf_entry_param *e, const struct rf_file_info *fi);
/* Answer getattr/setattr; attr_timeout in seconds (negative or NaN: 0). */
int rf_reply_attr(rf_req *req, const struct stat *attr, double attr_timeout);
/* Answer readlink with the NUL-terminated target (sent without its NUL). */
int rf_reply_readlink(rf_req *req, const char *link);
/* Answer open/opendir with fi's fh and reply bits (fi may be NULL for fh 0). */
int rf_reply_open(rf_req *req, const struct rf_file_info *fi);
/* Answer write with the bytes written, or copy_file_range with the bytes copied. */
int rf_reply_write(rf_req *req, size_t count);
/* Answer with size bytes of data (read, readdir, readlink, getxattr, listxattr), copied from
 * buf, which may point into the reply area itself. Never more than the request asked for. */
int rf_reply_buf(rf_req *req, const void *buf, size_t size);
/*
 * Zero-copy replies: rf_reply_payload() returns the request's reply area (ring-owned: the
 * ring entry's payload buffer with the uring transport, else the slot's reply buffer) and
 * stores its size in *cap. Write up to *cap bytes into it, then call rf_reply_data() with the
 * count. The area belongs to the request until its reply; with the uring transport it also
 * holds the request's borrowed arguments (names, write data), which writing overwrites.
 * rf_reply_payload() does not answer the request and may be called more than once; it returns
 * NULL (and *cap 0) once the request is answered or req is stale.
 */
void *rf_reply_payload(rf_req *req, size_t *cap);
int rf_reply_data(rf_req *req, size_t size);
/* Answer statfs: f_blocks, f_bfree, f_bavail, f_files, f_ffree, f_bsize, f_frsize and
 * f_namemax are used. */
int rf_reply_statfs(rf_req *req, const struct statvfs *st);
/* Answer getxattr/listxattr asked with size 0: the size the value or the list needs. */
int rf_reply_xattr(rf_req *req, size_t count);
/* Answer lseek with the resulting offset. */
int rf_reply_lseek(rf_req *req, off_t off);

/*
 * Directory listing helpers: append one entry to buf (bufsize bytes free) and return the size
 * it needs. If that is larger than bufsize (or buf is NULL) nothing was written: the listing is
 * full. Only st_ino and the file type bits of st_mode are used by rf_add_direntry. off is the
 * offset of the next entry (what a later readdir will be called with to continue after this
 * one). name and st/e are copied. buf is usually rf_reply_payload() plus the bytes used so
 * far, bufsize what is left of min(size, cap); send the listing with rf_reply_data().
 * rf_add_direntry_plus: each entry with e->ino != 0 adds one lookup, except "." and "..";
 * e->ino 0 gives the name without attributes. Any thread; req is not modified.
 */
size_t rf_add_direntry(rf_req *req, char *buf, size_t bufsize, const char *name,
		       const struct stat *st, off_t off);
size_t rf_add_direntry_plus(rf_req *req, char *buf, size_t bufsize, const char *name,
			    const struct rf_entry_param *e, off_t off);

/* ---- Backend I/O on the request's own queue ----
 *
 * A handler may hand its backend I/O to the queue that received the request instead of
 * blocking the queue thread: with the io-uring transports (uring, uring-rw), called on the
 * thread that owns the request's queue, the operation becomes an SQE on that queue's io_uring,
 * submitted with the queue's next io_uring_enter together with its replies, and cb runs on the
 * queue thread when it completes. Elsewhere (dev transport, the thread in rf_session_run(), a
 * foreign thread, or a full ring) the operation runs as a plain system call and cb is called
 * on the calling thread before the function returns.
 *
 * Returns 0 once the operation is started (or done, cb included), -EINVAL if req is already
 * answered, cb is NULL or the range is invalid, -EBUSY while another operation of req is in
 * flight (one at a time; a callback may start the next), or another -errno; if it fails, cb
 * is never called. After a 0 return req may already be answered by cb: do not touch it.
 * cb gets the result: >= 0 (bytes, 0, or the new fd for rf_io_openat, which cb then owns) or
 * a negative errno. A read or write moves at most INT32_MAX bytes (longer ones complete short);
 * a fallocate range is passed on whole, whatever its length.
 * Buffers, paths and stx are caller-owned and must stay valid until cb runs.
 */
struct statx;
typedef void (*rf_io_cb)(rf_req *req, int res, void *arg);

int rf_io_read(rf_req *req, int fd, void *buf, size_t len, off_t off, rf_io_cb cb, void *arg);
int rf_io_write(rf_req *req, int fd, const void *buf, size_t len, off_t off, rf_io_cb cb,
		void *arg);
int rf_io_fsync(rf_req *req, int fd, int datasync, rf_io_cb cb, void *arg);
int rf_io_fallocate(rf_req *req, int fd, int mode, off_t off, off_t len, rf_io_cb cb, void *arg);
/* stx is filled before cb runs. */
int rf_io_statx(rf_req *req, int dirfd, const char *path, int flags, unsigned int mask,
		struct statx *stx, rf_io_cb cb, void *arg);
/* cb gets the new fd or -errno. */
int rf_io_openat(rf_req *req, int dirfd, const char *path, int flags, mode_t mode, rf_io_cb cb,
		 void *arg);

/*
 * Whole-request helpers, built on the above: read size bytes (at most the reply area) at off
 * from fd straight into the request's reply payload and reply with what was read (short reads
 * are continued until EOF); write the request's data (buf, as given to the write callback) to
 * fd and reply with the count (short writes are continued). An error becomes an error reply,
 * or a short reply when some data was already moved. The request is answered in every case;
 * they return 0, or the reply's result when the operation could not be started.
 */
int rf_io_reply_read(rf_req *req, int fd, size_t size, off_t off);
int rf_io_reply_write(rf_req *req, int fd, const void *buf, size_t size, off_t off);
/* fsync/fdatasync fd, then reply with its result. */
int rf_io_reply_fsync(rf_req *req, int fd, int datasync);
/*
 * Run this request's backend I/O (the rf_io_* calls above) on the calling thread rather than on
 * the queue's ring. For files that never wait for a device yet cannot be read or written
 * without blocking as io_uring asks (tmpfs, ramfs: no RWF_NOWAIT): io_uring would hand each
 * operation to a worker thread, which costs more than the operation.
 */
void rf_io_inline(rf_req *req);

/* ---- Kernel passthrough (FUSE_PASSTHROUGH, Linux 6.9+) ----
 * Ask for RF_CAP_PASSTHROUGH in init(). Register an open backing file with the kernel and put
 * the id in fi->backing_id with fi->passthrough = 1 in the open/create reply: reads, writes and
 * mmap of that file then go straight to the backing file without reaching the server. The
 * kernel takes its own reference to the file. Needs CAP_SYS_ADMIN. Any thread, once INIT was
 * answered. Returns the backing id (> 0) or -errno: -EINVAL (bad fd, no connection),
 * -EOPNOTSUPP (passthrough not agreed at INIT), or the kernel's refusal (e.g. -EPERM). */
int rf_passthrough_open(rf_session *se, int fd);
/* Drop a backing id; files already opened with it keep working. Returns 0 or -errno. */
int rf_passthrough_close(rf_session *se, int backing_id);

/* ---- Sessions ---- */

/*
 * Parse FUSE command-line conventions and create a session:
 *   prog [options] [source] mountpoint
 *   -f foreground, -d debug trace (implies -f), -s single-threaded (no extra dev/uring-rw
 *   workers), -h/--help, -V/--version, -- (end of options),
 *   -o opt[,opt...]: allow_other, auto_unmount, default_permissions (default),
 *      no_default_permissions, ro,
 *      rw, debug, stats, nosuid (default), suid, nodev (default), dev, noexec, exec,
 *      relatime (default), noatime, strictatime, atime, nodiratime, diratime, lazytime,
 *      nosymfollow, sync, async, dirsync, fsname=, subtype=, max_write=N, max_read=N,
 *      max_background=N, transport=auto|uring|dev|uring-rw, uring_depth=N, uring_spin_us=N,
 *      uring_pin=0|1, threads=N, remount, the words mount(8) and fstab use for themselves
 *      (defaults, _netdev, nofail, auto, noauto, user, users, owner, group, x-*, comment=...;
 *      ignored), plus the filesystem's own options, read with rf_session_opt(). The mount's
 *      type is fuse.PROGRAM unless subtype= says otherwise.
 * ops (ops_size bytes: pass sizeof(struct rf_ops)) is copied; members missing from a smaller
 * table are NULL, those beyond a larger one are ignored with a warning. userdata is passed to
 * init/destroy and returned by rf_req_userdata(). Returns NULL on bad usage (errno = EINVAL,
 * the message went through the log hook) or ENOMEM. When -h or -V were given, the text is
 * printed on stdout and NULL is returned with errno = 0. With -o remount, the flags the options
 * name are changed on the existing mount at the mountpoint (MS_REMOUNT, as mount -o remount
 * asks a helper to) and NULL is returned with errno 0, or the error.
 */
rf_session *rf_session_new(int argc, char *argv[], const struct rf_ops *ops, size_t ops_size,
			   void *userdata);
/* The source argument (for filesystems that take one), or NULL. Owned by the session. */
const char *rf_session_source(const rf_session *se);
/* The mountpoint as given (absolute once rf_session_run() has started). Owned by the
 * session. */
const char *rf_session_mountpoint(const rf_session *se);
/* Non-zero when the kernel checks permissions (default_permissions, the default). */
int rf_session_default_permissions(const rf_session *se);
/* Non-zero when users other than the one who mounted may use the mount (allow_other). */
int rf_session_allow_other(const rf_session *se);
/* The value of a -o key=value option the library did not consume, or NULL. "key" alone
 * yields "". Lets filesystems take their own options; ask before rf_session_run(), which
 * refuses options nobody asked for. The value is copied into a per-thread buffer (at most 255
 * bytes) valid until the next call on this thread. */
const char *rf_session_opt(const rf_session *se, const char *key);
/*
 * Check the options and the mountpoint, check that io-uring is usable when transport=uring was
 * asked for (-EOPNOTSUPP otherwise), mount, daemonise unless -f (the calling process forks and
 * the parent exits 0: threads started before this call are not in the child), serve on the
 * calling thread until unmounted, aborted or asked to stop, then unmount, stop the transport
 * and call destroy. For its duration SIGINT, SIGTERM and SIGHUP stop the session (a clean
 * end), SIGUSR1 prints the statistics to stderr, SIGUSR2 wakes the library's threads; SIGPIPE
 * is ignored. One running session per process. Returns 0 on a clean end or a negative errno.
 */
int rf_session_run(rf_session *se);
/* Ask a running session to stop, as the signals do (async-signal-safe). From a signal handler
 * it takes effect at once; from another thread, when the thread in rf_session_run() next wakes
 * up (the next request from the kernel, or a signal). */
void rf_session_exit(rf_session *se);
/* Free a session (NULL is fine), after rf_session_run() returned or instead of running it. */
void rf_session_destroy(rf_session *se);
/* Name of the transport in use: "uring", "dev", "uring-rw" (after a fallback, the one actually
 * in use), or "none" before INIT was answered. A static string. */
const char *rf_session_transport(const rf_session *se);
/*
 * Mount flags a filesystem has to act on itself. The kernel never updates access times on a
 * FUSE filesystem: the server keeps them, by the rules of the mount's atime mode, and not at
 * all on a read-only mount. The flags come from the options first, then from the mount table
 * once mounted, and follow remounts (see ops->remount). Neither NOATIME nor STRICTATIME means
 * relatime, the kernel's default.
 */
#define RF_MOUNT_RDONLY	     (1u << 0) /* ro */
#define RF_MOUNT_NOATIME     (1u << 1) /* noatime: no access changes atime */
#define RF_MOUNT_NODIRATIME  (1u << 2) /* nodiratime: listing a directory does not */
#define RF_MOUNT_STRICTATIME (1u << 3) /* strictatime: every access does */
/* The RF_MOUNT_* flags of the mount now; any thread, lock-free. */
unsigned int rf_session_mount_flags(const rf_session *se);
/*
 * Should an access now (a read of a file, a listing of a directory, a readlink) set the
 * access time of an object of this mode (S_IFMT bits) with these times to the current time?
 * The kernel's rule for a local filesystem under the mount's flags: never when read-only,
 * noatime, or nodiratime for a directory; always with strictatime; with relatime when atime
 * is not newer than mtime or ctime, or is a day old. Any thread.
 */
int rf_atime_due(const rf_session *se, mode_t mode, const struct timespec *atime,
		 const struct timespec *mtime, const struct timespec *ctime);
/* Convenience: new + run + destroy. Returns an exit status: 0 (also after -h or -V) or 1. */
int rf_main(int argc, char *argv[], const struct rf_ops *ops, size_t ops_size, void *userdata);

/* ---- Logging: the library never prints on its own except through this hook. ---- */
/* Levels have the values of the syslog(3) priorities; DEBUG is the -d request trace. */
enum rf_log_level { RF_LOG_ERR = 3, RF_LOG_WARN = 4, RF_LOG_INFO = 6, RF_LOG_DEBUG = 7 };
/* Called from any thread, concurrently. msg is one line without a newline (at most 1023
 * bytes), borrowed for the duration of the call. */
typedef void (*rf_log_fn)(enum rf_log_level level, const char *msg, void *arg);
/* Set the process-wide hook (NULL: the default, which writes every message to stderr, or to
 * syslog once daemonised). Set it before rf_session_new() to see command-line errors. */
void rf_set_log(rf_log_fn fn, void *arg);

/* ---- Statistics: per-queue counters, summed on read. ---- */
#define RF_STATS_OPCODES 64
struct rf_queue_stats {
	uint64_t requests;		      /* requests received by this queue */
	uint64_t by_opcode[RF_STATS_OPCODES]; /* requests per FUSE opcode (index = opcode) */
	uint64_t bytes_in;		      /* write payload bytes received */
	uint64_t bytes_out;		      /* reply body bytes sent */
	uint64_t enters;		      /* io_uring_enter / read / write syscalls made */
	uint64_t commits;		      /* replies sent (requests without reply excluded) */
	uint64_t handler_ns;		      /* time from receipt until the callback returned */
	uint64_t errors;		      /* replies carrying an error */
	uint64_t bad_requests;		      /* malformed requests refused by the decoder */
	uint64_t dup_replies;		      /* second replies refused */
	uint64_t deferred;		      /* requests unanswered when their callback returned */
	uint64_t spreads; /* io-uring: times the pinned queue thread was let onto every CPU */
	/* io-uring polling before sleeping (see -o uring_spin_us): */
	uint64_t spins;	    /* times the thread polled its ring instead of sleeping at once */
	uint64_t spin_hits; /* polls that found work before their deadline */
	uint64_t spin_ns;   /* time spent polling */
	/* io-uring queues (see -o uring_depth_min, uring_trim_ms): */
	uint64_t entries;	   /* ring entries registered now */
	uint64_t grows;		   /* times the queue registered more entries, all being busy */
	uint64_t trims;		   /* idle entries whose payload memory was given back */
	uint64_t payload_resident; /* bytes of the entries' payload buffers in memory now */
	uint64_t thread;	   /* the thread serving the queue (not summed in total) */
};
struct rf_stats {
	char transport[16];   /* as rf_session_transport() */
	unsigned int nqueues; /* queue[] entries in use (CPU queues or workers) */
	/* The /dev/fuse reader in rf_session_run(): INIT, interrupts, forgets, all requests of
	 * dev and uring-rw with -s, and worker 0 of the dev transport. */
	struct rf_queue_stats dev;
	struct rf_queue_stats total;	  /* dev and every queue, summed */
	struct rf_queue_stats queue[256]; /* per queue, nqueues valid */
	unsigned int nthreads;		  /* io-uring: threads serving the queues */
};
/* Snapshot of the counters, from any thread while the session exists; each counter is read
 * atomically, the set is not one instant. out is about 150 KiB: allocate it. Returns 0 or
 * -EINVAL. */
int rf_session_stats(rf_session *se, struct rf_stats *out);
/* Print a readable summary to fd: "ringfuse-stats:" lines for dev, each queue, the total and
 * the opcodes seen. */
void rf_stats_print(const struct rf_stats *st, int fd);

/* ---- Notifications (server to kernel; travel over /dev/fuse on every transport). ----
 * Any thread, once INIT was answered. The arguments are copied (written to the kernel) before
 * the call returns. Return 0, -ENOTCONN before INIT or without a connection, -EINVAL for bad
 * arguments, or the kernel's error (-ENOENT: nothing cached to act on, usually harmless).
 * The kernel may need locks that an unanswered request holds (the directory for inval_entry
 * and delete, the file's pages for inval_inode and store): do not notify about an object from
 * the thread handling a request on it; reply first, or notify from another thread. */

/* Drop cached attributes of ino and its cached data from off for len bytes (len <= 0: to the
 * end; off < 0: attributes only). */
int rf_notify_inval_inode(rf_session *se, rf_ino ino, off_t off, off_t len);
/* Drop the cached entry name (namelen <= 255 bytes, NUL at name[namelen]) in parent. */
int rf_notify_inval_entry(rf_session *se, rf_ino parent, const char *name, size_t namelen);
/* As inval_entry, also telling the kernel the entry was child (removed). */
int rf_notify_delete(rf_session *se, rf_ino parent, rf_ino child, const char *name, size_t namelen);
/* Put size bytes of buf into the kernel's page cache of ino at offset (>= 0). */
int rf_notify_store(rf_session *se, rf_ino ino, off_t offset, const void *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* RINGFUSE_H */
