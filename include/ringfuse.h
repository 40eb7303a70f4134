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
 *   - Functions returning int return >= 0 on success and a negative errno on failure.
 *   - rf_reply_err() takes a positive errno (as libfuse does); 0 means success without data.
 *   - Strings and buffers passed to callbacks are borrowed from the transport buffer: they are
 *     valid until the request is answered, and replying may overwrite them (the reply is encoded
 *     in place). Copy what you need before replying.
 *   - Callbacks run on the queue thread that received the request (one per CPU queue with the
 *     uring transport, one per worker with the dev transport). rf_req_queue() tells which.
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

/* Who issued a request. */
struct rf_ctx {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	mode_t umask; /* umask of the caller for create/mkdir/mknod/tmpfile, else 0 */
};

/* Open file state, shared between a request and its reply (open, create, opendir). */
struct rf_file_info {
	int flags;	      /* open(2) flags; for release: the flags of the open */
	uint64_t fh;	      /* set by open/create/opendir, passed back on later requests */
	uint64_t lock_owner;  /* for flush, release (when FUSE_RELEASE_FLUSH), read, write */
	uint32_t write_flags; /* FUSE_WRITE_* bits of a write request */
	int32_t backing_id;   /* kernel passthrough: id from rf_passthrough_open(), else 0 */
	unsigned int direct_io : 1;
	unsigned int keep_cache : 1;
	unsigned int nonseekable : 1;
	unsigned int cache_readdir : 1;
	unsigned int noflush : 1;
	unsigned int parallel_direct_writes : 1;
	unsigned int passthrough : 1; /* reply asks the kernel to do I/O on backing_id */
	unsigned int flush : 1;	      /* release: flush before releasing */
	unsigned int fh_valid : 1;    /* getattr/setattr: fh is meaningful */
};

/* An answer to lookup/mknod/mkdir/symlink/link/create. ino 0 is a negative entry. */
struct rf_entry_param {
	rf_ino ino;
	uint64_t generation;
	struct stat attr;
	double attr_timeout;  /* seconds */
	double entry_timeout; /* seconds */
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

/* Negotiated connection parameters; init() may lower limits and set RF_CAP_* bits in want. */
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
#define RF_CAP_OVER_IO_URING	    (1ULL << 41)

/*
 * The operations table. Every member may be NULL: the request is then answered ENOSYS (or, for
 * forget, silently dropped). Members are only ever added at the end; pass sizeof(struct rf_ops)
 * to rf_session_new() so an older filesystem binary keeps working with a newer library.
 * "Valid replies" lists the reply functions a callback may end with.
 */
struct rf_ops {
	/* Connection set up: adjust conn. Runs once, before any request. */
	void (*init)(void *userdata, struct rf_conn_info *conn);
	/* Connection ends (FUSE_DESTROY or unmount). Runs once, after every request. */
	void (*destroy)(void *userdata);

	/* Valid replies: rf_reply_entry, rf_reply_err. Each positive entry adds one lookup. */
	void (*lookup)(rf_req *req, rf_ino parent, const char *name);
	/* Drop nlookup lookups. Valid reply: rf_reply_none. */
	void (*forget)(rf_req *req, rf_ino ino, uint64_t nlookup);
	/* Valid replies: rf_reply_attr, rf_reply_err. fi is NULL unless the kernel sent a fh. */
	void (*getattr)(rf_req *req, rf_ino ino, struct rf_file_info *fi);
	/* to_set: RF_SET_ATTR_* bits. Valid replies: rf_reply_attr, rf_reply_err. */
	void (*setattr)(rf_req *req, rf_ino ino, struct stat *attr, int to_set,
			struct rf_file_info *fi);
	/* Valid replies: rf_reply_readlink, rf_reply_err. */
	void (*readlink)(rf_req *req, rf_ino ino);
	/* Valid replies: rf_reply_entry, rf_reply_err. */
	void (*mknod)(rf_req *req, rf_ino parent, const char *name, mode_t mode, dev_t rdev);
	/* Valid replies: rf_reply_entry, rf_reply_err. */
	void (*mkdir)(rf_req *req, rf_ino parent, const char *name, mode_t mode);
	/* Valid reply: rf_reply_err. */
	void (*unlink)(rf_req *req, rf_ino parent, const char *name);
	/* Valid reply: rf_reply_err. */
	void (*rmdir)(rf_req *req, rf_ino parent, const char *name);
	/* Valid replies: rf_reply_entry, rf_reply_err. */
	void (*symlink)(rf_req *req, const char *link, rf_ino parent, const char *name);
	/* flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE. Valid reply: rf_reply_err. */
	void (*rename)(rf_req *req, rf_ino parent, const char *name, rf_ino newparent,
		       const char *newname, unsigned int flags);
	/* Valid replies: rf_reply_entry, rf_reply_err. */
	void (*link)(rf_req *req, rf_ino ino, rf_ino newparent, const char *newname);
	/* Valid replies: rf_reply_open, rf_reply_err. NULL open means "always succeeds". */
	void (*open)(rf_req *req, rf_ino ino, struct rf_file_info *fi);
	/* Valid replies: rf_reply_buf, rf_reply_data (zero copy), rf_reply_err. */
	void (*read)(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi);
	/* buf is borrowed from the transport buffer. Valid replies: rf_reply_write, rf_reply_err.
	 */
	void (*write)(rf_req *req, rf_ino ino, const char *buf, size_t size, off_t off,
		      struct rf_file_info *fi);
	/* Valid reply: rf_reply_err. */
	void (*flush)(rf_req *req, rf_ino ino, struct rf_file_info *fi);
	/* Valid reply: rf_reply_err (the error is ignored by the kernel). */
	void (*release)(rf_req *req, rf_ino ino, struct rf_file_info *fi);
	/* Valid reply: rf_reply_err. */
	void (*fsync)(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi);
	/* Valid replies: rf_reply_open, rf_reply_err. */
	void (*opendir)(rf_req *req, rf_ino ino, struct rf_file_info *fi);
	/* Fill with rf_add_direntry(). Valid replies: rf_reply_buf, rf_reply_data, rf_reply_err. */
	void (*readdir)(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi);
	/* Valid reply: rf_reply_err. */
	void (*releasedir)(rf_req *req, rf_ino ino, struct rf_file_info *fi);
	/* Valid reply: rf_reply_err. */
	void (*fsyncdir)(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi);
	/* Valid replies: rf_reply_statfs, rf_reply_err. */
	void (*statfs)(rf_req *req, rf_ino ino);
	/* flags: XATTR_CREATE/XATTR_REPLACE. Valid reply: rf_reply_err. */
	void (*setxattr)(rf_req *req, rf_ino ino, const char *name, const char *value, size_t size,
			 int flags);
	/* size 0 asks for the length. Valid replies: rf_reply_xattr (size 0), rf_reply_buf,
	 * rf_reply_err (ERANGE if the value does not fit, ENODATA if absent). */
	void (*getxattr)(rf_req *req, rf_ino ino, const char *name, size_t size);
	/* Same contract as getxattr, with a list of NUL-terminated names. */
	void (*listxattr)(rf_req *req, rf_ino ino, size_t size);
	/* Valid reply: rf_reply_err. */
	void (*removexattr)(rf_req *req, rf_ino ino, const char *name);
	/* Valid reply: rf_reply_err. */
	void (*access)(rf_req *req, rf_ino ino, int mask);
	/* Valid replies: rf_reply_create, rf_reply_err. */
	void (*create)(rf_req *req, rf_ino parent, const char *name, mode_t mode,
		       struct rf_file_info *fi);
	/* Valid reply: rf_reply_err. */
	void (*fallocate)(rf_req *req, rf_ino ino, int mode, off_t offset, off_t length,
			  struct rf_file_info *fi);
	/* Fill with rf_add_direntry_plus(). Valid replies: as readdir. */
	void (*readdirplus)(rf_req *req, rf_ino ino, size_t size, off_t off,
			    struct rf_file_info *fi);
	/* Valid replies: rf_reply_write, rf_reply_err. */
	void (*copy_file_range)(rf_req *req, rf_ino ino_in, off_t off_in,
				struct rf_file_info *fi_in, rf_ino ino_out, off_t off_out,
				struct rf_file_info *fi_out, size_t len, int flags);
	/* Valid replies: rf_reply_lseek, rf_reply_err. */
	void (*lseek)(rf_req *req, rf_ino ino, off_t off, int whence, struct rf_file_info *fi);
	/* O_TMPFILE. Valid replies: rf_reply_create, rf_reply_err. */
	void (*tmpfile)(rf_req *req, rf_ino parent, mode_t mode, struct rf_file_info *fi);
	/* An interrupt for req arrived (runs on the thread that read the interrupt). */
	void (*interrupt)(rf_req *req, void *userdata);
	/* Filesystem-wide sync (syncfs(2)). Valid reply: rf_reply_err. */
	void (*syncfs)(rf_req *req, rf_ino ino);
};

/* ---- Requests ---- */

/* Caller of the request. Valid until the request is answered. */
const struct rf_ctx *rf_req_ctx(const rf_req *req);
/* The userdata given to rf_session_new(). */
void *rf_req_userdata(const rf_req *req);
/* The session a request belongs to. */
rf_session *rf_req_session(const rf_req *req);
/* Index of the queue (CPU queue or dev worker) that received req. */
unsigned int rf_req_queue(const rf_req *req);
/* Non-zero once the kernel sent FUSE_INTERRUPT for req: finish early with EINTR if you can. */
int rf_req_interrupted(const rf_req *req);
/* Number of supplementary groups of the caller (needs /proc), written to list up to size. */
int rf_req_getgroups(const rf_req *req, int size, gid_t list[]);

/* ---- Replies: each request gets exactly one. All may be called from any thread. ----
 * They return 0, or a negative errno when the reply could not be sent (the request is
 * finished either way). Replying twice is refused with -EALREADY and counted. */

int rf_reply_err(rf_req *req, int err);
void rf_reply_none(rf_req *req);
int rf_reply_entry(rf_req *req, const struct rf_entry_param *e);
int rf_reply_create(rf_req *req, const struct rf_entry_param *e, const struct rf_file_info *fi);
int rf_reply_attr(rf_req *req, const struct stat *attr, double attr_timeout);
int rf_reply_readlink(rf_req *req, const char *link);
int rf_reply_open(rf_req *req, const struct rf_file_info *fi);
int rf_reply_write(rf_req *req, size_t count);
/* Copies size bytes of buf into the reply. */
int rf_reply_buf(rf_req *req, const void *buf, size_t size);
/*
 * Zero-copy replies: rf_reply_payload() hands out the transport's reply buffer (the ring
 * entry's payload buffer, or the worker's reply buffer). Write up to *cap bytes into it, then
 * call rf_reply_data() with the count. The buffer is owned by the request until that call.
 * Request arguments that live in the payload (names, write data) are overwritten by it.
 */
void *rf_reply_payload(rf_req *req, size_t *cap);
int rf_reply_data(rf_req *req, size_t size);
int rf_reply_statfs(rf_req *req, const struct statvfs *st);
int rf_reply_xattr(rf_req *req, size_t count);
int rf_reply_lseek(rf_req *req, off_t off);

/*
 * Directory listing helpers: append one entry to buf (bufsize bytes free) and return the size
 * it needs. If that is larger than bufsize nothing was written: the listing is full. Only
 * st_ino and the file type bits of st_mode are used by rf_add_direntry. off is the offset of
 * the next entry (what a later readdir will be called with to continue after this one).
 */
size_t rf_add_direntry(rf_req *req, char *buf, size_t bufsize, const char *name,
		       const struct stat *st, off_t off);
size_t rf_add_direntry_plus(rf_req *req, char *buf, size_t bufsize, const char *name,
			    const struct rf_entry_param *e, off_t off);

/* ---- Backend I/O on the request's own queue ----
 *
 * A handler may hand its backend I/O to the queue that received the request instead of
 * blocking the queue thread: with the uring transport the operation becomes an SQE on that
 * queue's io_uring, submitted with the queue's next io_uring_enter together with the FUSE
 * commits, and its completion callback runs on the queue thread. Elsewhere (dev transport, or
 * a call from a thread that does not own the queue) the operation runs synchronously and the
 * callback is called before the function returns.
 *
 * One operation per request may be in flight at a time; a callback may start the next one.
 * cb gets the operation's result: >= 0 (bytes, or 0) or a negative errno. If the submitting
 * function returns an error, cb is never called. Buffers must stay valid until cb runs.
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
 * Whole-request helpers: read size bytes at off from fd straight into the request's reply
 * payload and reply with what was read (short reads are continued until EOF); write the
 * request's data (buf, as given to the write callback) to fd and reply with the count.
 * Errors become error replies. The request is answered in every case; returns 0.
 */
int rf_io_reply_read(rf_req *req, int fd, size_t size, off_t off);
int rf_io_reply_write(rf_req *req, int fd, const void *buf, size_t size, off_t off);
/* fsync/fdatasync fd, then reply with its result. */
int rf_io_reply_fsync(rf_req *req, int fd, int datasync);

/* ---- Kernel passthrough (FUSE_PASSTHROUGH, Linux 6.9+) ----
 * Ask for RF_CAP_PASSTHROUGH in init(). Register an open backing file with the kernel and put
 * the id in fi->backing_id with fi->passthrough = 1 in the open/create reply: reads and writes
 * on that file then go straight to the backing file without reaching the server. Needs root.
 * Returns the backing id (> 0) or -errno (e.g. -EOPNOTSUPP when the kernel refuses). */
int rf_passthrough_open(rf_session *se, int fd);
int rf_passthrough_close(rf_session *se, int backing_id);

/* ---- Sessions ---- */

/*
 * Parse FUSE command-line conventions and create a session:
 *   prog [options] [source] mountpoint
 *   -f foreground, -d debug trace (implies -f), -s single-threaded, -h help, -V version,
 *   -o opt[,opt...]: allow_other, default_permissions, no_default_permissions, ro, rw,
 *      fsname=, subtype=, max_write=N, max_background=N, transport=auto|uring|dev|uring-rw,
 *      uring_depth=N, uring_spin_us=N, uring_pin=0|1, threads=N, stats,
 *      plus the filesystem's own options, read with rf_session_opt().
 * Returns NULL with a message through the log hook on bad usage (errno = EINVAL). When -h or
 * -V were given, the text is printed and NULL is returned with errno = 0.
 */
rf_session *rf_session_new(int argc, char *argv[], const struct rf_ops *ops, size_t ops_size,
			   void *userdata);
/* The source argument (for filesystems that take one), or NULL. */
const char *rf_session_source(const rf_session *se);
/* The mountpoint as given (absolute once rf_session_run() has started). */
const char *rf_session_mountpoint(const rf_session *se);
/* Non-zero when the kernel checks permissions (default_permissions, the default). */
int rf_session_default_permissions(const rf_session *se);
/* The value of a -o key=value option the library did not consume, or NULL. "key" alone
 * yields "". Lets filesystems take their own options; ask before rf_session_run(), which
 * refuses options nobody asked for. The string is valid until the next call on this thread. */
const char *rf_session_opt(const rf_session *se, const char *key);
/* Mount, daemonise unless -f, serve until unmounted or signalled, unmount. Returns 0 on a clean
 * end or a negative errno. */
int rf_session_run(rf_session *se);
/* Ask a running session to stop (async-signal-safe). */
void rf_session_exit(rf_session *se);
void rf_session_destroy(rf_session *se);
/* Name of the transport in use: "uring", "dev", "uring-rw", or "none" before the mount. */
const char *rf_session_transport(const rf_session *se);
/* Convenience: new + run + destroy; returns a process exit status. */
int rf_main(int argc, char *argv[], const struct rf_ops *ops, size_t ops_size, void *userdata);

/* ---- Logging: the library never prints on its own except through this hook. ---- */
enum rf_log_level { RF_LOG_ERR = 3, RF_LOG_WARN = 4, RF_LOG_INFO = 6, RF_LOG_DEBUG = 7 };
typedef void (*rf_log_fn)(enum rf_log_level level, const char *msg, void *arg);
/* Default: messages at INFO and above go to stderr (syslog once daemonised). */
void rf_set_log(rf_log_fn fn, void *arg);

/* ---- Statistics: per-queue counters, summed on read. ---- */
#define RF_STATS_OPCODES 64
struct rf_queue_stats {
	uint64_t requests;		      /* requests handled by this queue */
	uint64_t by_opcode[RF_STATS_OPCODES]; /* requests per FUSE opcode (index = opcode) */
	uint64_t bytes_in;		      /* write payload bytes received */
	uint64_t bytes_out;		      /* reply payload bytes sent */
	uint64_t enters;		      /* io_uring_enter / read+write syscalls made */
	uint64_t commits;		      /* replies committed */
	uint64_t handler_ns;		      /* time spent in filesystem callbacks */
	uint64_t errors;		      /* replies carrying an error */
	uint64_t bad_requests;		      /* malformed requests refused by the decoder */
	uint64_t dup_replies;		      /* second replies refused */
	uint64_t deferred;		      /* replies sent from a foreign thread */
};
struct rf_stats {
	char transport[16];
	unsigned int nqueues;	   /* queues (CPU queues or dev workers) */
	struct rf_queue_stats dev; /* requests carried by /dev/fuse (INIT, interrupts, fallback) */
	struct rf_queue_stats total;	  /* everything, summed */
	struct rf_queue_stats queue[256]; /* per queue, nqueues valid */
};
/* Snapshot of the counters (out may be large: allocate it). */
int rf_session_stats(rf_session *se, struct rf_stats *out);
/* Print a readable summary to fd. */
void rf_stats_print(const struct rf_stats *st, int fd);

/* ---- Notifications (server to kernel; travel over /dev/fuse on every transport). ---- */
int rf_notify_inval_inode(rf_session *se, rf_ino ino, off_t off, off_t len);
int rf_notify_inval_entry(rf_session *se, rf_ino parent, const char *name, size_t namelen);
int rf_notify_delete(rf_session *se, rf_ino parent, rf_ino child, const char *name, size_t namelen);
int rf_notify_store(rf_session *se, rf_ino ino, off_t offset, const void *buf, size_t size);

#ifdef __cplusplus
}
#endif
#endif /* RINGFUSE_H */
