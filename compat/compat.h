/*
 * Inside the libfuse3-compatible library: libfuse 3.14's low-level API, implemented on
 * ringfuse's sessions, dispatcher and transports.
 *
 * Every structure a filesystem sees (fuse_file_info, fuse_conn_info, fuse_entry_param,
 * fuse_bufvec, fuse_args, ...) comes from the system's own <fuse_lowlevel.h>, so its layout is
 * libfuse's by construction. A fuse_req_t is the rf_req the transport holds (no wrapper, no
 * allocation); fuse_lowlevel_ops callbacks are reached through a table of rf_ops trampolines
 * (ops.c) that translate arguments on the stack. Which ABI symbol each file provides, and at
 * which symbol version, is in fuse3.map.
 *
 * Names beginning with compat_ are internal (the version script exports only the fuse_* ABI).
 */
#ifndef RINGFUSE_COMPAT_H
#define RINGFUSE_COMPAT_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "embed.h"

#include <stdatomic.h>
#include <stdbool.h>

/* The session of libfuse's API around a ringfuse session. */
struct fuse_session {
	rf_session *rs;
	struct fuse_lowlevel_ops op; /* the filesystem's table, zero-padded */
	void *userdata;
	struct fuse_conn_info conn; /* as init() left it */
	char *mountpoint;	    /* what fuse_session_mount() mounted; NULL for /dev/fd/N */
	struct rf_embed_chan *chan; /* the filesystem's own loop, once it received a message */
	_Atomic int exited;	    /* fuse_session_exit(), or the connection ended */
	_Atomic int error;	    /* returned by the loop: a signal number or -errno */
	bool got_init, got_destroy;
	bool debug;
	bool deny_others; /* -o allow_root: only the owner and root get in */
	uid_t owner;
	unsigned int max_read; /* -o max_read, which init() must agree with */
	bool served;	       /* a loop ran: report at the end */
};

static inline rf_req *compat_rq(fuse_req_t req)
{
	return (rf_req *)req;
}

static inline fuse_req_t compat_fq(rf_req *req)
{
	return (fuse_req_t)req;
}

static inline struct fuse_session *compat_session_of(rf_req *req)
{
	return rf_req_userdata(req);
}

/* ops.c: the rf_ops table of trampolines for a filesystem's fuse_lowlevel_ops. Logs one line
 * for each operation the filesystem has that ringfuse cannot deliver yet. */
void compat_build_ops(const struct fuse_lowlevel_ops *op, struct rf_ops *out);

/* conn.c: INIT: show the filesystem libfuse's view of the connection, take back its choices. */
void compat_conn_init(struct fuse_session *se, struct rf_conn_info *rc);

/* interrupt.c: interrupt callbacks registered with fuse_req_interrupt_func(). */
extern _Atomic unsigned int compat_interrupt_funcs;
void compat_interrupt_forget(rf_req *req);
void compat_interrupt_deliver(rf_req *req);
/* Every reply calls this first: a registered interrupt callback must not outlive its request.
 * Costs one load when nobody registered one. */
static inline void compat_req_done(rf_req *req)
{
	if (atomic_load_explicit(&compat_interrupt_funcs, memory_order_acquire))
		compat_interrupt_forget(req);
}

/* reply.c: a write's reply made on the handler's own thread waits until the handler returns
 * (ops.c sends it), so the reply never overwrites write data the handler is still reading (with
 * io-uring, request and reply share the ring entry's buffer; libfuse keeps a request's buffer
 * until the handler returns). */
struct compat_write_reply {
	rf_req *req; /* the write whose handler runs on this thread */
	size_t count;
	bool pending;
};
extern _Thread_local struct compat_write_reply compat_write_reply;

/* options.c: libfuse's low-level and mount options of fuse_session_new(), consumed from args
 * and turned into ringfuse options (*rf_list, malloc'd). Returns 0 or -1 (message logged). */
int compat_parse_session_args(struct fuse_session *se, struct fuse_args *args, char **rf_list);

/* cmdline.c: N for a mountpoint "/dev/fd/N" (a /dev/fuse descriptor mounted by whoever
 * started us), else -1. */
int compat_parse_fd_mountpoint(const char *mountpoint);

/* report.c: at the end of a session, which transport served it (and the statistics if asked
 * for), to ringfuse-run's report descriptor and the log. */
void compat_report(struct fuse_session *se);

/* log.c: route ringfuse's messages through fuse_log(), where fuse_set_log_func() sees them. */
void compat_log_init(void);

/* unsupported.c: one line, once per name, saying what is not supported yet. */
void compat_unsupported(const char *what, const char *consequence);

#endif /* RINGFUSE_COMPAT_H */
