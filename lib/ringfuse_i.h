/*
 * Library-internal types shared by the session, the dispatcher and the transports.
 *
 * Ownership in one paragraph: a transport owns its buffers and the rf_req objects embedded in
 * them (one per ring entry or read slot). It fills a request's header fields, calls one of the
 * rf_dispatch_*() entry points, and gets the reply back through req->rops->send(), possibly
 * from another thread, possibly after the handler returned. The dispatcher owns nothing: it
 * validates, decodes and calls the filesystem's op; reply.c encodes the answer into req->out.
 */
#ifndef RINGFUSE_I_H
#define RINGFUSE_I_H

#include "ringfuse.h"
#include "ringfuse/kernel.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/uio.h>
#include <time.h>

#define RF_MAX_QUEUES	     256
#define RF_DEFAULT_MAX_WRITE (1024 * 1024)
#define RF_PAGE_SIZE	     4096

/* How a request's reply leaves the process; one table per transport channel. */
struct rf_reply_ops {
	/*
	 * Send the reply: error (0 or negative errno) and len bytes of body already encoded at
	 * req->out. May run on any thread. Must release the request's buffer when done.
	 */
	int (*send)(rf_req *req, int error, size_t len);
	/* The request is finished without a reply (forget, interrupt, notify reply). */
	void (*drop)(rf_req *req);
	/*
	 * Queue req->io on the request's own ring; returns 0, or -EAGAIN to have the caller run
	 * it synchronously (foreign thread, ring full), or another -errno. NULL: always sync.
	 * On completion the transport calls rf_io_complete(req, res) on the queue thread.
	 */
	int (*io_submit)(rf_req *req);
};

/* One backend operation of a request (rf_io_*), stored in the request: no allocation. */
enum rf_io_op { RF_IO_READ, RF_IO_WRITE, RF_IO_FSYNC, RF_IO_FALLOCATE, RF_IO_STATX, RF_IO_OPENAT };

struct rf_io {
	enum rf_io_op op;
	int fd;
	int flags; /* datasync, fallocate mode, statx/openat flags */
	unsigned int mask;
	mode_t mode;
	void *buf;
	uint64_t len; /* bytes to read or write (at most INT32_MAX), or fallocate's range */
	off_t off;
	const char *path;
	rf_io_cb cb;
	void *arg;
	/* whole-request helpers keep their progress here */
	size_t done;
	size_t want;
};

/* Life of a request object. Transitions are atomic: a second reply loses the race. */
enum rf_req_state {
	RF_REQ_FREE = 0, /* slot holds no request */
	RF_REQ_ACTIVE,	 /* decoded, owned by a handler until it replies */
	RF_REQ_REPLIED,	 /* reply handed to the transport; slot may be reused after send */
};

struct rf_req {
	rf_session *se;
	const struct rf_reply_ops *rops;
	void *chan;	    /* transport-private: the ring entry or read slot holding this */
	unsigned int queue; /* index reported by rf_req_queue() */
	uint32_t opcode;
	uint64_t unique;
	uint64_t nodeid;
	struct rf_ctx ctx;
	char *out; /* reply body area, out_cap bytes, owned by the request */
	size_t out_cap;
	_Atomic uint32_t state;		     /* enum rf_req_state */
	_Atomic uint64_t interrupted_unique; /* == unique once FUSE_INTERRUPT named this req */
	struct rf_queue_stats *stats;	     /* counters of the queue that received it */
	uint64_t t_start_ns;
	bool io_inline;	 /* rf_io_inline(): backend I/O runs on the calling thread */
	rf_req *next;	 /* transport-private list link (deferred replies) */
	struct rf_io io; /* the backend operation in flight, if any */
};

/* The transport behind a session, chosen after FUSE_INIT. */
struct rf_transport {
	const char *name;
	/* Start serving after the INIT reply was written. Returns 0 or -errno. */
	int (*start)(rf_session *se);
	/* Ask every queue thread to finish (connection ending). Idempotent, any thread. */
	void (*stop)(rf_session *se);
	/* Join threads and free everything start() created. */
	void (*destroy)(rf_session *se);
};

extern const struct rf_transport rf_transport_dev;
extern const struct rf_transport rf_transport_uring;
extern const struct rf_transport rf_transport_uring_rw;

enum rf_transport_choice { RF_TP_AUTO, RF_TP_URING, RF_TP_DEV, RF_TP_URING_RW };

/* Parsed options; see rf_session_new() for the spelling. */
struct rf_opts {
	bool foreground, debug, single_thread, allow_other, default_permissions, ro, stats;
	bool uring_pin;
	bool uring_spread;	  /* a pinned queue under load may run on every CPU */
	bool uring_defer_taskrun; /* IORING_SETUP_DEFER_TASKRUN on queue rings */
	char *fsname, *subtype;
	uint32_t max_write;	 /* 0: library default */
	uint32_t max_background; /* 0: sized from queues x depth */
	enum rf_transport_choice transport;
	unsigned int uring_depth; /* entries per queue */
	unsigned int uring_spin_us;
	unsigned int uring_queues; /* 0: one per possible CPU (the kernel requires that) */
	unsigned int uring_threads;   /* 0: one per queue */
	unsigned int uring_depth_min; /* entries a queue starts with; 0: the default */
	uint64_t uring_payload_max;   /* bound on registered payload bytes; 0: none */
	unsigned int uring_trim_ms;   /* idle entries give their payload back; 0: never */
	unsigned int threads;	   /* dev workers; 0: one per online CPU */
	char *extra;		   /* "-o" options the library did not consume, comma separated */
	uint64_t queried_mask;	   /* bit i: the i-th extra option was asked for */
	unsigned long mount_flags; /* MS_* for mount(2) */
	/* The MS_* words given (the last of a kind wins): a remount changes only these. */
	unsigned long flags_set, flags_clear;
	bool ro_given; /* ro or rw was given */
	bool remount;  /* -o remount: change the flags of the existing mount, serve nothing */
};

/* A set of request objects the interrupt scanner may look through. */
struct rf_req_table {
	rf_req *first;
	size_t count;
	size_t stride; /* bytes between consecutive rf_req objects */
};

struct rf_session {
	struct rf_ops ops;
	void *userdata;
	struct rf_opts opts;
	char *mountpoint; /* absolute */
	char *source;
	char *progname;

	int fd; /* the session's /dev/fuse fd, -1 before mount */
	bool mounted;
	bool nonroot_mount; /* mounted through fusermount3: unmount the same way */
	char mount_dev[64]; /* "major:minor" of our mount, to recognise it in mountinfo */
	_Atomic unsigned int mount_flags; /* RF_MOUNT_* of our mount, following remounts */
	pthread_t watch_thread;		  /* follows the mount table (mount_table.c) */
	bool watching;
	int watch_wake; /* eventfd that ends the watch */
	struct rf_conn_info conn;
	bool uring_active; /* INIT agreed on FUSE_OVER_IO_URING */
	uint32_t proto_minor;
	size_t dev_bufsize; /* size of a /dev/fuse read buffer for this connection */

	const struct rf_transport *tp;
	void *tp_data;

	_Atomic bool exiting;
	_Atomic bool conn_gone;	  /* the kernel ended the connection (unmount, abort) */
	_Atomic bool initialized; /* INIT answered */
	bool uring_possible;	  /* the probe found io-uring usable for FUSE */
	int exit_status;	  /* 0 or -errno returned by rf_session_run() */
	pthread_t main_thread;
	bool destroyed;	      /* ops.destroy ran */
	pthread_mutex_t lock; /* guards the registries below (setup/teardown only) */

	struct rf_queue_stats dev_stats; /* requests served by the main /dev/fuse reader */
	struct rf_queue_stats *qstats[RF_MAX_QUEUES];
	unsigned int nqueues;
	struct rf_queue_stats *retired; /* counters of queues whose threads have ended */
	struct rf_req_table tables[1024];
	unsigned int ntables;
};

/* ---- dispatch.c: the single entry point from transports into the filesystem ---- */

/*
 * Dispatch a request whose fuse_in_header, op argument struct and remaining arguments are in
 * three separate places (io-uring ring entry layout). req->out/out_cap must be set. The
 * request is answered (now or later) exactly once, including every error path.
 */
void rf_dispatch_split(rf_session *se, rf_req *req, const struct fuse_in_header *ih,
		       const void *op_in, size_t op_in_size, const void *payload,
		       size_t payload_len);
/* Dispatch a request read from /dev/fuse as one contiguous message of len bytes. */
void rf_dispatch_msg(rf_session *se, rf_req *req, const void *msg, size_t len);
/* Size of the fixed argument struct the kernel sends first for opcode (0 if none). */
size_t rf_op_in_size(uint32_t opcode);
/* Name of an opcode for traces ("LOOKUP"), or "UNKNOWN". */
const char *rf_opcode_name(uint32_t opcode);

/* ---- init.c: FUSE_INIT negotiation (always arrives on /dev/fuse) ---- */
/* Build the INIT reply body into out (>= sizeof(struct fuse_init_out)); returns its length or
 * -errno. Decides se->uring_active and fills se->conn. */
int rf_init_negotiate(rf_session *se, const struct fuse_init_in *in, size_t in_len, void *out);
/* Called by the dispatcher once the INIT reply is on its way: starts the transport. */
void rf_session_init_done(rf_session *se);

/* ---- reply.c ---- */
/* Common tail of every reply: state check, stats, trace, then req->rops->send(). */
int rf_reply_finish(rf_req *req, int error, size_t len);
/* Prepare a request object for a new message (state FREE -> ACTIVE). */
void rf_req_begin(rf_req *req, rf_session *se, const struct fuse_in_header *ih);

/* ---- aio.c ---- */
/* Run req->io synchronously with plain syscalls; returns the result (>= 0 or -errno). */
int rf_io_run_sync(struct rf_io *io);
/* A transport saw req->io finish with res: run its callback. */
void rf_io_complete(rf_req *req, int res);

/* ---- session.c ---- */
void rf_session_register_queue(rf_session *se, unsigned int idx, struct rf_queue_stats *st);
/* A queue's thread is about to free its counters: keep a copy readable by the session. */
void rf_session_retire_queue(rf_session *se, unsigned int idx);
void rf_session_register_reqs(rf_session *se, rf_req *first, size_t count, size_t stride);
void rf_session_unregister_reqs(rf_session *se, rf_req *first);
/* Mark the request with this unique as interrupted; returns it or NULL. */
rf_req *rf_session_find_req(rf_session *se, uint64_t unique);
/* The main thread's reader was interrupted by a signal: act on pending SIGUSR1. */
void rf_session_poll_signals(rf_session *se);
/* The connection is gone (ENODEV/ENOTCONN seen by any thread): begin shutdown. */
void rf_session_conn_lost(rf_session *se);
/* The classic read-dispatch-write loop on one /dev/fuse fd (shared by the dev transport and
 * the side channel of the io-uring transports). Returns when the connection ends or the
 * session exits. Allocates its own read buffers of se->dev_bufsize bytes. */
int rf_dev_serve(rf_session *se, int fd, unsigned int queue, struct rf_queue_stats *stats);
/* Write one message (header + body) to /dev/fuse; returns 0 or -errno. */
int rf_dev_write(int fd, const struct iovec *iov, int iovcnt);

/* ---- opts.c ---- */
/* Fill se->opts, mountpoint, source, progname. Returns 0, 1 (help/version printed, or a remount
 * done: nothing left to do) or -errno. */
int rf_opts_parse(rf_session *se, int argc, char *argv[]);
/* -EINVAL (with a message) if an option was neither the library's nor asked for. */
int rf_opts_check_unused(const rf_session *se);
void rf_opts_free(struct rf_opts *o);

/* ---- transport/dev.c helpers shared with the other transports ---- */
/* Open /dev/fuse and attach it to the session (FUSE_DEV_IOC_CLONE); returns fd or -errno. */
int rf_dev_clone_fd(rf_session *se);
/* Block every signal but SIGUSR2 (the wake-up) and synchronous faults; saves the old mask. */
#include <signal.h>
void rf_block_signals(sigset_t *old);

/* ---- mount.c ---- */
int rf_mount(rf_session *se);
void rf_unmount(rf_session *se);
/* -o remount: give the mount at se->mountpoint the flags the options change (MS_REMOUNT), as
 * mount(8) asks a helper to; returns 0 or -errno. */
int rf_remount(rf_session *se);
/* Our mount is still in the mount table (e.g. the connection was aborted, not unmounted). */
bool rf_mount_still_there(const rf_session *se);

/* ---- mount_table.c ---- */
/* RF_MOUNT_* as the options ask for them (before there is a mount to read them from). */
unsigned int rf_mount_flags_from_opts(const struct rf_opts *o);
struct rf_mount_entry {
	char dev[64];		/* "major:minor" */
	unsigned int flags;	/* RF_MOUNT_* */
	unsigned long ms_flags; /* MS_* a remount passes to keep them (atime mode included) */
};
/* The top FUSE mount at se->mountpoint (with device want_dev, if not NULL) in the mount table:
 * 0 and its entry (e may be NULL), or -ENOENT. Never calls into the filesystem. */
int rf_mount_table_lookup(const rf_session *se, const char *want_dev, struct rf_mount_entry *e);
/* Read our mount's flags from the table into se->mount_flags; announce: log a change and
 * call ops.remount. */
void rf_mount_flags_refresh(rf_session *se, bool announce);
/* Follow the mount table on a thread of its own from now (after the mount and any fork) until
 * stop; both are no-ops when not mounted. */
void rf_mount_watch_start(rf_session *se);
void rf_mount_watch_stop(rf_session *se);

/* ---- log.c ---- */
void rf_log(enum rf_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Log a message once per call site (for things the kernel can make us see repeatedly). */
#define rf_log_once(level, ...)                     \
	do {                                        \
		static _Atomic int rf_once_;        \
		if (!atomic_exchange(&rf_once_, 1)) \
			rf_log(level, __VA_ARGS__); \
	} while (0)
void rf_log_to_syslog(void);

/* ---- probe.c: what this machine supports for FUSE over io_uring ---- */
struct rf_probe {
	bool fuse_param_exists; /* the fuse module has enable_uring */
	bool fuse_param_on;	/* enable_uring is Y */
	int io_uring_disabled;	/* kernel.io_uring_disabled sysctl, -1 unknown */
	bool ring_sqe128;	/* an SQE128 ring could be created */
	int ring_error;		/* -errno of that attempt */
	unsigned int possible_cpus;
	unsigned int online_cpus;
	char kernel[64];
};
void rf_probe_run(struct rf_probe *p);
/* 0 if io_uring can carry FUSE here; else -errno and a one-line reason in why. */
int rf_probe_uring_usable(const struct rf_probe *p, char *why, size_t whylen);
/* Try to set enable_uring=Y (root only); returns 0 or -errno. */
int rf_probe_enable_uring(void);

/*
 * Counters are written by the queue that owns them and, for deferred replies, by foreign
 * threads; a relaxed atomic add on a core-local line costs a few cycles and keeps readers exact.
 */
#define rf_stat_add(field, n) __atomic_fetch_add(&(field), (uint64_t)(n), __ATOMIC_RELAXED)
#define rf_stat_get(field)    __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* ---- time ---- */
static inline uint64_t rf_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif /* RINGFUSE_I_H */
