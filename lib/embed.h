/*
 * Internal entry points for running the library under another API, such as the
 * libfuse3-compatible library in compat/: a session built from option lists rather than a
 * command line, mounted, served and unmounted in separate steps, served either by the library's
 * own loop or by a loop of the caller that hands over each message it read, plus the few
 * low-level operations such an API needs (raw notifications, the request's unique).
 *
 * None of this is public: libringfuse.so does not export it; the compat library links the
 * library's objects and reaches these through this header only. Conventions as in ringfuse.h:
 * ints are >= 0 or -errno, messages go through the log hook.
 */
#ifndef RINGFUSE_EMBED_H
#define RINGFUSE_EMBED_H

#include "ringfuse.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

/* A session with the default options, no mountpoint and no fd. ops (ops_size bytes) is copied;
 * progname names the mount when no fsname is given. NULL if out of memory. */
rf_session *rf_embed_new(const struct rf_ops *ops, size_t ops_size, void *userdata,
			 const char *progname);
/* Apply a comma-separated list of -o options in ringfuse's spelling (see rf_session_new()).
 * Options the library does not know are an error here: there is no filesystem to take them.
 * origin names the list in messages. Returns 0 or -EINVAL (the reason was logged). */
int rf_embed_opts(rf_session *se, const char *list, const char *origin);

/* Check the mountpoint and that the transport asked for can work, size the buffers and mount
 * (mount(2) as root, fusermount3 otherwise). Returns 0 or -errno. */
int rf_embed_mount(rf_session *se, const char *mountpoint);
/* Serve fd, a /dev/fuse descriptor some other process mounted (passed as /dev/fd/N), instead
 * of mounting. The session owns fd from now on. Returns 0 or -errno. */
int rf_embed_adopt_fd(rf_session *se, int fd);
/* The session's /dev/fuse descriptor, or -1. */
int rf_embed_fd(const rf_session *se);
/* Take away the mount made by rf_embed_mount() (lazily) and close the fd. Idempotent. */
void rf_embed_unmount(rf_session *se);

/*
 * Serve on the calling thread until the connection ends or rf_embed_exit() is called. The
 * calling thread reads /dev/fuse (INIT arrives there); the transport chosen at INIT adds its
 * own threads, except with one_thread, where the calling thread alone runs every callback on
 * every transport (io-uring: it serves every queue and /dev/fuse through one ring). Before
 * returning, the transport's threads are stopped and joined, so no callback runs afterwards.
 * Neither unmounts nor calls ops.destroy. Returns 0 or -errno.
 */
int rf_embed_serve(rf_session *se, bool one_thread);
/* Ask the session to stop: the serving thread (if any) is woken. Async-signal-safe. */
void rf_embed_exit(rf_session *se);
/* Has the session been asked to stop, or has its connection ended? */
bool rf_embed_exiting(const rf_session *se);
/* Clear a stop request so the session can be served again (not after the connection ended). */
void rf_embed_reset(rf_session *se);
/* Free the session: closes its fd, restores the signal handler the library installed. */
void rf_embed_destroy(rf_session *se);

/*
 * A loop of the caller's: it reads messages from rf_embed_fd() itself (rf_embed_bufsize()
 * bytes at a time) and hands each to rf_embed_chan_process(), from any thread. Requests are
 * served by the classic transport without threads of the library's, and may be answered later
 * from any thread: each holds a reply slot until then (slots are reused, allocated in chunks
 * as needed, never per request). The message is borrowed until the request is answered.
 * Create the channel before the first message (INIT) is processed.
 */
struct rf_embed_chan;
struct rf_embed_chan *rf_embed_chan_new(rf_session *se);
void rf_embed_chan_process(struct rf_embed_chan *ch, const void *msg, size_t len);
/* Waits a little for requests still being answered; slots they hold are leaked, not freed
 * under them. NULL is fine. */
void rf_embed_chan_destroy(struct rf_embed_chan *ch);
/* Size of a read buffer for one message of this session (known once mounted). */
size_t rf_embed_bufsize(const rf_session *se);

/* Write a notification (unique 0, code in the error field) to /dev/fuse. iov[0] is filled
 * with the header here; iov[1..iovcnt-1] carry the body. Returns 0 or -errno (-ENOTCONN
 * before INIT). */
int rf_embed_notify(rf_session *se, int code, struct iovec *iov, int iovcnt);
/* The kernel's id of the request a slot holds now: tells apart requests that reuse a slot. */
uint64_t rf_embed_req_unique(const rf_req *req);
/* Write "<label>: transport <name>" and, if -o stats was given, the statistics to fd. With
 * label NULL only the statistics, and only if they were asked for. */
void rf_embed_report(rf_session *se, int fd, const char *label);

#endif /* RINGFUSE_EMBED_H */
