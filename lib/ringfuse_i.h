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
/* The system's page size (sysconf, read once): the kernel sizes requests in its pages. */
size_t rf_page_size(void);
#define RF_PAGE_SIZE rf_page_size()

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

/* The counters of one queue (see rf_stat_inc): own, written by the queue's thread; shared, by
 * any thread with atomic adds. Readers add both. The cache line where the halves meet holds
 * only own's last counters and shared's first ones (requests, by_opcode), which nobody but the
 * owner writes: no false sharing. */
struct rf_qstats {
	struct rf_queue_stats own;
	struct rf_queue_stats shared;
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
	unsigned int again; /* EAGAIN/EINTR results in a row, bounded */
};

/*
 * Request identity. A request object (one per ring entry or read slot) carries one request
 * after another, and a filesystem may keep its rf_req * past the reply by mistake (a duplicate
 * or late answer). So the rf_req * a filesystem holds is a handle: the object's address (the
 * object is aligned to RF_REQ_ALIGN) with the low bits of the object's generation in the bits
 * the alignment leaves free. Every public function that takes an rf_req * checks the handle
 * against the object's current generation (rf_req_of(): an AND, a load and a compare) and
 * refuses a stale one; internal code passes real pointers. The tag holds 12 bits: a stale
 * handle is recognised unless its object served exactly a multiple of 4096 requests since.
 * Plain address bits, so it works the same on 32-bit systems.
 *
 * Every rf_req is declared RF_REQ_ALIGNED (a slot struct's first member, a stand-in on the
 * stack), so the slot's own fields follow the rf_req on the same page instead of after a
 * page of padding; rf_session_register_reqs() refuses a misaligned table.
 */
#define RF_REQ_ALIGN	4096
#define RF_REQ_ALIGNED	_Alignas(RF_REQ_ALIGN)
#define RF_REQ_TAG_MASK ((uintptr_t)RF_REQ_ALIGN - 1)

/* Life of a request object: the low bits of rf_req.life. */
enum rf_req_state {
	RF_REQ_FREE = 0, /* slot holds no request */
	RF_REQ_ACTIVE,	 /* decoded, owned by a handler until it replies */
	RF_REQ_REPLIED,	 /* reply handed to the transport; slot may be reused after send */
};
/*
 * rf_req.life = generation << RF_LIFE_GEN_SHIFT | RF_LIFE_IO | state, one atomic word so that
 * claiming a reply (ACTIVE -> REPLIED) checks generation, state and I/O in one CAS: a stale
 * or second reply, or a reply while the request's backend I/O is in flight, cannot win.
 */
#define RF_LIFE_STATE	  3u
#define RF_LIFE_IO	  4u /* a backend operation (rf_io_*) of the request is in flight */
#define RF_LIFE_GEN_SHIFT 3

struct rf_req {
	/* Generation, I/O bit and state; the generation changes when a request begins. */
	_Atomic uint32_t life;
	uint32_t opcode;
	rf_session *se;
	const struct rf_reply_ops *rops;
	void *chan;	    /* transport-private: the ring entry or read slot holding this */
	unsigned int queue; /* index reported by rf_req_queue() */
	/* Written with an atomic store when the request begins: the interrupt scanner reads it
	 * from another thread. */
	uint64_t unique;
	uint64_t nodeid;
	struct rf_ctx ctx;
	char *out; /* reply body area, out_cap bytes, owned by the request */
	size_t out_cap;
	_Atomic uint64_t interrupted_unique; /* == unique once FUSE_INTERRUPT named this req */
	struct rf_qstats *stats;	     /* counters of the queue that received it */
	uint64_t t_start_ns;
	bool io_inline; /* rf_io_inline(): backend I/O runs on the calling thread */
	/* The request's trailing extensions (fuse_in_header.total_extlen), in the transport's
	 * buffer: valid until the reply, which may overwrite them. NULL when there are none. */
	const char *ext;
	uint32_t ext_len;
	rf_req *next;	 /* transport-private list link (deferred replies) */
	struct rf_io io; /* the backend operation in flight, if any */
};

static inline uint32_t rf_life_state(uint32_t life)
{
	return life & RF_LIFE_STATE;
}

static inline uintptr_t rf_life_tag(uint32_t life)
{
	return (uintptr_t)(life >> RF_LIFE_GEN_SHIFT) & RF_REQ_TAG_MASK;
}

/* State of a request object (enum rf_req_state), for its transport. */
static inline uint32_t rf_req_state(rf_req *req)
{
	return rf_life_state(atomic_load_explicit(&req->life, memory_order_acquire));
}

/* The object is free for the next request (its transport, on the owning thread). */
static inline void rf_req_set_free(rf_req *req)
{
	uint32_t life = atomic_load_explicit(&req->life, memory_order_relaxed);

	atomic_store_explicit(&req->life, life & ~(RF_LIFE_STATE | RF_LIFE_IO),
			      memory_order_release);
}

/* The handle filesystems hold for the request now in req. */
static inline rf_req *rf_req_handle(rf_req *req)
{
	uint32_t life = atomic_load_explicit(&req->life, memory_order_relaxed);

	return (rf_req *)((uintptr_t)req | rf_life_tag(life));
}

/* The object behind a handle, whatever its generation. */
static inline rf_req *rf_req_untag(const rf_req *h)
{
	return (rf_req *)((uintptr_t)h & ~RF_REQ_TAG_MASK);
}

/* The object behind a handle if the handle names its current request, else NULL. */
static inline rf_req *rf_req_of(const rf_req *h)
{
	rf_req *req = rf_req_untag(h);

	if (!req || rf_life_tag(atomic_load_explicit(&req->life, memory_order_relaxed)) !=
			    ((uintptr_t)h & RF_REQ_TAG_MASK))
		return NULL;
	return req;
}

/* The transport behind a session, chosen after FUSE_INIT. How a session ends, and what each
 * step must guarantee, is written down in lib/transport/README.md. */
struct rf_transport {
	const char *name;
	/* Start serving after the INIT reply was written. Returns 0 or -errno. */
	int (*start)(rf_session *se);
	/* Clean stop, connection still alive: deliver what exists (replies made or still owed,
	 * backend I/O in flight) until deadline_ns (CLOCK_MONOTONIC). Session thread. */
	void (*drain)(rf_session *se, uint64_t deadline_ns);
	/* Ask every queue thread to finish. Idempotent, any thread. */
	void (*stop)(rf_session *se);
	/* Join threads and free everything start() created; afterwards none of the transport's
	 * threads uses /dev/fuse, and its own fds are closed or retired. */
	void (*destroy)(rf_session *se);
	/* Optional. When start() set se->serve_here, the thread that read INIT (the session's
	 * serving thread) stops reading /dev/fuse itself and calls this: serve everything,
	 * /dev/fuse included, on this thread until the session exits or the connection ends.
	 * Returns 0 or -errno. drain, stop and destroy then run on the same thread. */
	int (*serve)(rf_session *se);
	/* Optional. Add to out what costs a system call to read (resident payload per queue);
	 * called by rf_session_stats() with se->lock held, after the counters were summed. */
	void (*sample)(rf_session *se, struct rf_stats *out);
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
	bool auto_unmount;	  /* fusermount3 unmounts when the daemon dies */
	char *fsname, *subtype;
	uint32_t max_write;	 /* 0: library default */
	uint32_t max_background; /* 0: sized from queues x depth */
	uint32_t max_read;	 /* 0: no limit; else passed to the kernel at mount */
	enum rf_transport_choice transport;
	unsigned int uring_depth; /* entries per queue */
	unsigned int uring_spin_us;
	unsigned int uring_queues;    /* 0: one per possible CPU (the kernel requires that) */
	unsigned int uring_threads;   /* 0: one per queue */
	unsigned int uring_depth_min; /* entries a queue starts with; 0: the default */
	uint64_t uring_payload_max;   /* bound on registered payload bytes; 0: none */
	unsigned int uring_trim_ms;   /* idle entries give their payload back; 0: never */
	unsigned int threads;	      /* dev workers; 0: one per online CPU */
	unsigned int drain_ms;	      /* clean stop: how long to wait for replies still owed */
	char *extra;		   /* "-o" options the library did not consume, comma separated */
	uint64_t queried_mask;	   /* bit i: the i-th extra option was asked for */
	unsigned long mount_flags; /* MS_* for mount(2) */
	/* The MS_* words given (the last of a kind wins): a remount changes only these. */
	unsigned long flags_set, flags_clear;
	bool ro_given; /* ro or rw was given */
	bool remount;  /* -o remount: change the flags of the existing mount, serve nothing */
};

/* Interrupts waiting for their request to begin (interrupt.c). */
#define RF_INTR_SETS	  16
#define RF_INTR_WAYS	  4
#define RF_INTR_FENCE_BIT (1u << 31) /* in npending: no membarrier, requests must fence */
struct rf_intr_ent {
	_Atomic uint64_t unique; /* 0: free */
	_Atomic uint64_t t_ns;	 /* when it was stored */
};
struct rf_intr {
	/* Read by every request as it begins; written only by interrupts (and the session sits
	 * where nothing nearby is written per request). */
	_Atomic unsigned int npending;
	bool membarrier;      /* MEMBARRIER_CMD_PRIVATE_EXPEDITED is registered */
	pthread_mutex_t lock; /* serialises interrupts that go pending */
	struct rf_intr_ent ent[RF_INTR_SETS * RF_INTR_WAYS];
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
	bool nonroot_mount;	 /* mounted through fusermount3: unmount the same way */
	bool fusermount_watches; /* auto_unmount: a fusermount3 holds the other end of: */
	int fusermount_sock;	 /* a socket kept open while we live; it unmounts at EOF */
	pid_t fusermount_pid;
	char mount_dev[64]; /* "major:minor" of our mount, to recognise it in mountinfo */
	_Atomic unsigned int mount_flags; /* RF_MOUNT_* of our mount, following remounts */
	pthread_t watch_thread;		  /* follows the mount table (mount_table.c) */
	bool watching;
	bool watch_wanted; /* rf_session_run() follows the mount table once INIT is answered */
	int watch_wake;	   /* eventfd that ends the watch */
	struct rf_conn_info conn;
	bool uring_active; /* INIT agreed on FUSE_OVER_IO_URING */
	uint32_t proto_minor;
	size_t dev_bufsize; /* size of a /dev/fuse read buffer for this connection */

	const struct rf_transport *tp;
	void *tp_data;	 /* set and cleared under lock (tp->sample reads it under lock) */
	bool serve_here; /* the transport serves on the session's serving thread (tp->serve) */
	_Atomic int serve_wake; /* eventfd that wakes it (stop, signals); -1 when none */

	_Atomic bool exiting;
	_Atomic bool conn_gone;		    /* the kernel ended the connection (unmount, abort) */
	_Atomic bool failed;		    /* ending on an error (rf_session_fail): no drain */
	_Atomic uint64_t drain_deadline_ns; /* set when the stop begins; 0 before */
	_Atomic bool initialized;	    /* INIT answered */
	bool uring_possible;		    /* the probe found io-uring usable for FUSE */
	_Atomic int exit_status;	    /* 0 or -errno returned by rf_session_run() */
	pthread_t main_thread;
	bool destroyed;	      /* ops.destroy ran */
	pthread_mutex_t lock; /* guards the registries below (setup/teardown only) */

	struct rf_qstats dev_stats; /* requests served by the main /dev/fuse reader */
	struct rf_qstats *qstats[RF_MAX_QUEUES];
	unsigned int nqueues;
	unsigned int nthreads;	   /* io-uring: threads serving the queues (0: another transport) */
	struct rf_qstats *retired; /* counters of queues whose threads have ended */
	struct rf_req_table *tables; /* grown as needed: transports add entries at run time */
	size_t ntables, tables_cap;
	struct rf_intr intr;
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

/* ---- reply.c ---- (h: a handle, as filesystems hold it; req: a real request object) */
/* Common tail of every reply: state check, stats, trace, then req->rops->send(). */
int rf_reply_finish(rf_req *h, int error, size_t len);
/* Finish a request without an answer (opcodes that take none, messages too short to answer). */
void rf_req_drop(rf_req *h);
/* Prepare a request object for a new message (state FREE -> ACTIVE, a new generation);
 * returns the handle for it. */
rf_req *rf_req_begin(rf_req *req, rf_session *se, const struct fuse_in_header *ih);

/* ---- aio.c ---- */
/* Run req->io synchronously with plain syscalls; returns the result (>= 0 or -errno). */
int rf_io_run_sync(struct rf_io *io);
/* A transport saw req->io finish with res: clear the I/O bit, run its callback. */
void rf_io_complete(rf_req *req, int res);

/* ---- session.c ---- */
/* What every session has, mounted or in memory: set up after calloc, freed before free. */
void rf_session_init_core(rf_session *se);
void rf_session_free_core(rf_session *se);
void rf_session_register_queue(rf_session *se, unsigned int idx, struct rf_qstats *st);
/* A queue's thread is about to free its counters: keep a copy readable by the session. */
void rf_session_retire_queue(rf_session *se, unsigned int idx);
/* Let the interrupt scanner see count request objects, stride bytes apart, from first on. Any
 * number of tables, at any time; returns 0 or -ENOMEM. */
int rf_session_register_reqs(rf_session *se, rf_req *first, size_t count, size_t stride);
void rf_session_unregister_reqs(rf_session *se, rf_req *first);

/* ---- interrupt.c ---- */
#if defined(__SANITIZE_THREAD__)
/* gcc's ThreadSanitizer does not model fences (-Wtsan): a seq_cst read-modify-write stands
 * in for it there (a full barrier on x86 all the same). */
extern _Atomic unsigned int rf_fence_word;
#define rf_full_fence() atomic_fetch_add_explicit(&rf_fence_word, 0, memory_order_seq_cst)
#else
#define rf_full_fence() atomic_thread_fence(memory_order_seq_cst)
#endif
/* Register for the barrier interrupts use (after any fork: it is per process image). */
void rf_intr_setup(rf_session *se);
/* FUSE_INTERRUPT for unique: marks the target if it is in a handler and returns its handle,
 * to which ops.interrupt is due; else keeps the interrupt for when the target begins (and
 * returns NULL). */
rf_req *rf_session_interrupt(rf_session *se, uint64_t unique);
/* Interrupts waiting for their request. */
unsigned int rf_intr_pending(rf_session *se);
bool rf_intr_take_slow(rf_session *se, rf_req *req);
/*
 * A request just began (rf_req_begin()): take an interrupt that overtook it. True when it
 * did: req is marked and ops.interrupt is due. While none is pending this is a compiler
 * barrier and one relaxed load (interrupt.c explains why that is enough).
 */
static inline bool rf_intr_take(rf_session *se, rf_req *req)
{
	atomic_signal_fence(memory_order_seq_cst);
	if (__builtin_expect(atomic_load_explicit(&se->intr.npending, memory_order_relaxed), 0))
		return rf_intr_take_slow(se, req);
	return false;
}
/* The main thread's reader was interrupted by a signal: act on pending SIGUSR1. */
void rf_session_poll_signals(rf_session *se);
/* Wake a transport serving on the session's thread (tp->serve) so it looks at the flags.
 * Async-signal-safe. */
void rf_session_wake_serve(rf_session *se);
/* The connection is gone (ENODEV/ENOTCONN seen by any thread): begin shutdown. */
void rf_session_conn_lost(rf_session *se);
/* Something the session cannot do without failed (a queue died): log the line, end the
 * session without a drain, exit status err (the first error wins). Any thread. */
void rf_session_fail(rf_session *se, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* When the drain of a stop ends (fixed by the first caller): now + drain_ms on a clean stop,
 * now when the connection is gone or the session failed. */
uint64_t rf_session_drain_deadline(rf_session *se);
/* Replace fd by /dev/null: the /dev/fuse file behind it is released (the last release
 * aborts the connection), and the number stays taken, so a late writer cannot hit a file
 * opened meanwhile. Close it once no thread can use it any more. */
void rf_retire_fd(int fd);
/* The classic read-dispatch-write loop on one /dev/fuse fd (shared by the dev transport and
 * the side channel of the io-uring transports). Returns when the connection ends or the
 * session exits, after draining; *leaked: a handler still owes a reply, which it may write
 * to fd at any time (keep the fd number from reuse). Allocates its own read buffers of
 * se->dev_bufsize bytes. */
int rf_dev_serve(rf_session *se, int fd, unsigned int queue, struct rf_qstats *stats, bool *leaked);
/* Write one message (header + body) to /dev/fuse; returns 0 or -errno. */
int rf_dev_write(int fd, const struct iovec *iov, int iovcnt);
/*
 * The slots of rf_dev_serve() for a loop that reads /dev/fuse its own way (an io_uring read
 * in the io-uring transport's ring when it serves on one thread). The thread that creates the
 * reader is its owner (it counts its own replies). rf_dev_reader_buf() gives a free slot's
 * read buffer (se->dev_bufsize bytes) and the slot, or NULL while handlers hold them all;
 * a read that completed with n bytes is dispatched with rf_dev_reader_dispatch(), which says
 * whether it was a forget (the next read may wait for the kernel to gather more); a read
 * that failed gives its slot back with rf_dev_reader_put(). rf_dev_reader_end() drains and
 * frees, or keeps the memory when a handler still owes a reply (*leaked).
 */
struct rf_dev_reader;
struct rf_dev_reader *rf_dev_reader_new(rf_session *se, int fd, unsigned int queue,
					struct rf_qstats *stats);
void *rf_dev_reader_buf(struct rf_dev_reader *r, rf_req **slot);
bool rf_dev_reader_dispatch(struct rf_dev_reader *r, rf_req *slot, size_t n);
void rf_dev_reader_put(struct rf_dev_reader *r, rf_req *slot);
void rf_dev_reader_end(struct rf_dev_reader *r, bool *leaked);
/* How long the /dev/fuse reader waits after a forget while io-uring carries the requests. */
#define RF_DEV_FORGET_GATHER_US 1000
/* The checks and sizing rf_session_run() does before mounting (mountpoint if set, transport
 * availability, buffer sizes), for embedders that mount and serve in separate steps
 * (lib/embed.c). Returns 0 or -errno. */
int rf_session_prepare(rf_session *se);

/* ---- stats.c ---- */
/* Every counter of the session summed (for tests and the library's own checks). */
struct rf_queue_stats rf_session_totals(rf_session *se);

/* ---- opts.c ---- */
/* Fill se->opts, mountpoint, source, progname. Returns 0, 1 (help/version printed, or a remount
 * done: nothing left to do) or -errno. */
int rf_opts_parse(rf_session *se, int argc, char *argv[]);
/* The option defaults rf_opts_parse() starts from. */
void rf_opts_defaults(struct rf_opts *o);
/* Parse one -o argument (comma separated); unknown options are kept in o->extra. */
int rf_opts_parse_list(struct rf_opts *o, const char *list);
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

/* ---- fault.c: fault injection for tests (RINGFUSE_FAULT, read once) ---- */
struct rf_faults {
	int uring_queue_fatal;	    /* queue index + 1 that fails at its first READ; 0: none */
	unsigned int read_delay_ms; /* READs wait this long before dispatch */
};
extern struct rf_faults rf_faults;
void rf_faults_init(void);

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
/* CPUs in a kernel CPU list such as "0-3,8-11" (8), or 0 if it does not parse. */
unsigned int rf_cpu_list_count(const char *list);
/* Possible CPUs as the kernel counts them (num_possible_cpus(): the CPUs in
 * /sys/devices/system/cpu/possible, not the highest id + 1): its number of io-uring queues. */
unsigned int rf_possible_cpus(void);
/* 0 if io_uring can carry FUSE here; else -errno and a one-line reason in why. */
int rf_probe_uring_usable(const struct rf_probe *p, char *why, size_t whylen);
/* Try to set enable_uring=Y (root only); returns 0 or -errno. */
int rf_probe_enable_uring(void);

/*
 * Counters. Each queue's are written by the thread that owns the queue only (rf_stat_inc: a
 * relaxed load and store, no locked instruction on the request path; readers on other threads
 * load them relaxed, so a snapshot is exact per counter). What other threads count, rare by
 * design (duplicate replies; on the dev transport replies written by a thread that is not the
 * reader), goes into the queue's shared half with an atomic add. Deferred replies of the
 * io-uring transports are counted by the queue thread when it commits them.
 */
#define rf_stat_inc(field, n)                                                                   \
	__atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (uint64_t)(n), \
			 __ATOMIC_RELAXED)
#define rf_stat_add_shared(field, n) __atomic_fetch_add(&(field), (uint64_t)(n), __ATOMIC_RELAXED)
#define rf_stat_get(field)	     __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* A reply that left the process: commits, errors and bytes_out of st (own or shared half). */
static inline void rf_stat_reply(struct rf_queue_stats *st, int error, size_t len, bool owner)
{
	if (owner) {
		rf_stat_inc(st->commits, 1);
		rf_stat_inc(st->errors, error != 0);
		rf_stat_inc(st->bytes_out, len);
	} else {
		rf_stat_add_shared(st->commits, 1);
		if (error)
			rf_stat_add_shared(st->errors, 1);
		rf_stat_add_shared(st->bytes_out, len);
	}
}

/* ---- time ---- */
static inline uint64_t rf_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif /* RINGFUSE_I_H */
