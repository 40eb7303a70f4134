/*
 * The memory transport: FUSE requests fed straight into the dispatcher from memory, replies
 * captured into memory. No mount, no /dev/fuse, no root: it exists for unit tests and fuzzing.
 *
 * A memory session behaves like a mounted one from the filesystem's side (same ops table, same
 * decoder, same reply encoders, deferred replies from any thread), except that no transport is
 * ever started: INIT is answered and recorded, nothing more. Requests start life uninitialised
 * just as on a real connection, so the first message fed should be a FUSE_INIT.
 *
 * Requests in flight live in a small fixed pool of slots (RF_MEM_SLOTS); feeding a request
 * while every slot is held by a deferred reply fails with -EBUSY. Each slot counts as a queue
 * in the statistics (rf_req_queue() is the slot's index).
 */
#ifndef RINGFUSE_TRANSPORT_MEM_H
#define RINGFUSE_TRANSPORT_MEM_H

#include "ringfuse.h"
#include "ringfuse/kernel.h"

#include <stdbool.h>

#define RF_MEM_SLOTS 8
/* Largest reply body captured; also the default size of the reply area. */
#define RF_MEM_BODY_MAX (1024 * 1024 + 4096)
/* Largest classic message accepted by rf_mem_feed_msg(). */
#define RF_MEM_MSG_MAX (2 * 1024 * 1024)

/* What became of one request. Large: allocate it, do not put it on a small stack. */
struct rf_mem_reply {
	unsigned int count; /* answers seen for this request (more than one is a bug) */
	bool replied;	    /* an answer was sent to the "kernel" */
	bool dropped;	    /* finished without an answer (forget, interrupt, notify reply) */
	uint32_t opcode;
	uint64_t unique;
	int error;  /* 0 or a negative errno, as it would go into fuse_out_header */
	size_t len; /* body length as sent (only the first RF_MEM_BODY_MAX bytes are kept) */
	unsigned char body[RF_MEM_BODY_MAX];
};

/*
 * A session served from memory. ops is copied (ops_size may be smaller than
 * sizeof(struct rf_ops) for older callers). Connection defaults: max_write 1 MiB.
 * Returns NULL with errno set on failure.
 */
rf_session *rf_mem_session_new(const struct rf_ops *ops, size_t ops_size, void *userdata);
/* Runs ops.destroy (if INIT happened and DESTROY did not) and frees everything. Requests
 * still waiting for a deferred reply must have been answered before. */
void rf_mem_session_destroy(rf_session *se);

/*
 * Feed one classic /dev/fuse message (fuse_in_header + arguments, len bytes, copied first so
 * any alignment is fine). out, if not NULL, is reset and receives the answer if it is given
 * before this call returns. Returns 1 if the request was answered (or dropped) synchronously,
 * 0 if its handler deferred the answer (see rf_mem_last_reply()), or a negative errno if it
 * could not be fed (-EMSGSIZE, -EBUSY, -ENOMEM).
 */
int rf_mem_feed_msg(rf_session *se, const void *msg, size_t len, struct rf_mem_reply *out);
/*
 * Feed one request in the io-uring ring layout: header, the opcode's argument struct
 * (op_in_len <= FUSE_URING_OP_IN_OUT_SZ) and the payload. As on a ring, the payload is placed
 * in the request's reply area, so replies overwrite it. Same results as rf_mem_feed_msg().
 */
int rf_mem_feed_split(rf_session *se, const struct fuse_in_header *ih, const void *op_in,
		      size_t op_in_len, const void *payload, size_t payload_len,
		      struct rf_mem_reply *out);

/* Answers and drops seen so far on the session, deferred ones included. */
unsigned long rf_mem_replies(rf_session *se);
/* Copy of the most recent answer or drop, whichever thread gave it: 0, or -ENOENT if none. */
int rf_mem_last_reply(rf_session *se, struct rf_mem_reply *out);
/* Requests dispatched and not answered yet. */
unsigned int rf_mem_pending(rf_session *se);
/* Size of the reply area for requests fed from now on (1 .. RF_MEM_BODY_MAX). */
int rf_mem_set_out_cap(rf_session *se, size_t cap);

/*
 * Backend I/O (rf_io_*). By default it runs as plain system calls, as on the dev transport.
 * Held: an operation is accepted as if queued on a ring and stays in flight until the test
 * completes it with rf_mem_io_complete(), which runs its callback on the calling thread (the
 * "queue thread" then); the operation itself is never performed.
 */
int rf_mem_set_io_held(rf_session *se, bool held);
/* Complete the oldest held operation with res. Returns 0, or -ENOENT if none is held. */
int rf_mem_io_complete(rf_session *se, int res);

#endif /* RINGFUSE_TRANSPORT_MEM_H */
