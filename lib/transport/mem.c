/*
 * The memory transport (see mem.h): a stand-in for the kernel, so the decoder, the reply
 * encoders and whole filesystems can be exercised without a mount.
 *
 * Each slot owns an rf_req, an input buffer for classic messages, the 128-byte op_in area of a
 * ring entry, and a reply area that doubles as the ring payload buffer (requests fed in the
 * ring layout find their names and data there, exactly as on a real ring). Slots are
 * registered with the session so FUSE_INTERRUPT can find them.
 *
 * A feed claims a free slot, dispatches, and if the handler answered before returning,
 * releases the slot at once. A deferred answer releases the slot from whichever thread gives
 * it. One mutex guards slot ownership and the capture record; none of this is a hot path.
 */
#include "transport/mem.h"
#include "ringfuse_i.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct mem_slot {
	RF_REQ_ALIGNED rf_req req;
	struct mem_transport *mt;
	/* Counters of the requests fed into this slot: one feeding thread at a time owns them
	 * (slot_get/slot_put hand the slot over under the lock), so several threads may feed. */
	struct rf_qstats stats;
	bool busy;		  /* holds a request that has not been answered */
	bool feeding;		  /* the feed call that dispatched it has not returned yet */
	bool answered;		  /* answered while feeding */
	struct rf_mem_reply *cap; /* the feed's capture record, while feeding */
	char *in;		  /* RF_MEM_MSG_MAX bytes, allocated on first use */
	char *out;		  /* RF_MEM_BODY_MAX bytes, allocated on first use */
	_Alignas(8) unsigned char op_in[FUSE_URING_OP_IN_OUT_SZ];
	_Alignas(8) struct fuse_in_header ih;
};

struct mem_transport {
	rf_session *se;
	pthread_mutex_t lock;
	bool io_held;		       /* backend I/O stays in flight until rf_mem_io_complete() */
	rf_req *held_io[RF_MEM_SLOTS]; /* requests with held I/O, oldest first */
	unsigned int nheld;
	size_t out_cap;
	unsigned long replies;
	unsigned int pending;
	bool have_last;
	struct rf_mem_reply *last;
	struct mem_slot slots[RF_MEM_SLOTS];
};

static struct mem_transport *mem_of(rf_session *se)
{
	return se->tp_data;
}

static void record(struct rf_mem_reply *r, const rf_req *req, bool replied, int error, size_t len)
{
	r->count++;
	r->replied = replied;
	r->dropped = !replied;
	r->opcode = req->opcode;
	r->unique = req->unique;
	r->error = error;
	r->len = len;
	if (len)
		memcpy(r->body, req->out, len < sizeof(r->body) ? len : sizeof(r->body));
}

/* The answer (or drop) of a slot's request, from any thread. */
static void finish(rf_req *req, bool replied, int error, size_t len)
{
	struct mem_slot *s = req->chan;
	struct mem_transport *mt = s->mt;

	if (replied)
		rf_stat_reply(&s->stats.shared, error, len, false);
	/*
	 * Memory sessions have no transport to start: INIT negotiation picks one for a real
	 * connection, and the dispatcher starts it right after this reply is sent. Clear the
	 * choice here, between the two.
	 */
	if (req->opcode == FUSE_INIT)
		mt->se->tp = NULL;

	pthread_mutex_lock(&mt->lock);
	mt->replies++;
	record(mt->last, req, replied, error, len);
	mt->last->count = 1;
	mt->have_last = true;
	if (s->feeding) {
		if (s->cap)
			record(s->cap, req, replied, error, len);
		s->answered = true;
	} else {
		s->busy = false;
		mt->pending--;
		rf_req_set_free(req);
	}
	pthread_mutex_unlock(&mt->lock);
}

static int mem_send(rf_req *req, int error, size_t len)
{
	finish(req, true, error, len);
	return 0;
}

static void mem_drop(rf_req *req)
{
	finish(req, false, 0, 0);
}

static int mem_io_submit(rf_req *req)
{
	struct mem_transport *mt = ((struct mem_slot *)req->chan)->mt;
	int ret = -EAGAIN; /* not held: the caller runs it as a system call */

	pthread_mutex_lock(&mt->lock);
	if (mt->io_held && mt->nheld < RF_MEM_SLOTS) {
		mt->held_io[mt->nheld++] = req;
		ret = 0;
	}
	pthread_mutex_unlock(&mt->lock);
	return ret;
}

static const struct rf_reply_ops mem_rops = {
	.send = mem_send,
	.drop = mem_drop,
	.io_submit = mem_io_submit,
};

int rf_mem_set_io_held(rf_session *se, bool held)
{
	struct mem_transport *mt = mem_of(se);

	pthread_mutex_lock(&mt->lock);
	mt->io_held = held;
	pthread_mutex_unlock(&mt->lock);
	return 0;
}

int rf_mem_io_complete(rf_session *se, int res)
{
	struct mem_transport *mt = mem_of(se);
	rf_req *req = NULL;

	pthread_mutex_lock(&mt->lock);
	if (mt->nheld) {
		req = mt->held_io[0];
		memmove(mt->held_io, mt->held_io + 1, --mt->nheld * sizeof(mt->held_io[0]));
	}
	pthread_mutex_unlock(&mt->lock);
	if (!req)
		return -ENOENT;
	rf_io_complete(req, res);
	return 0;
}

rf_session *rf_mem_session_new(const struct rf_ops *ops, size_t ops_size, void *userdata)
{
	rf_session *se = calloc(1, sizeof(*se));
	/* Its slots hold rf_req objects, which are RF_REQ_ALIGN aligned. */
	struct mem_transport *mt = aligned_alloc(RF_REQ_ALIGN, sizeof(*mt));

	if (mt)
		memset(mt, 0, sizeof(*mt));
	if (!se || !mt || !(mt->last = calloc(1, sizeof(*mt->last)))) {
		if (mt)
			free(mt->last);
		free(mt);
		free(se);
		errno = ENOMEM;
		return NULL;
	}
	if (ops_size > sizeof(se->ops))
		ops_size = sizeof(se->ops);
	if (ops)
		memcpy(&se->ops, ops, ops_size);
	se->userdata = userdata;
	/* Not mounted: no fd, no transport; rf_session_init_done() starts nothing. */
	rf_session_init_core(se);
	se->tp = NULL;
	se->tp_data = mt;
	se->main_thread = pthread_self();
	se->opts.foreground = true;
	se->opts.transport = RF_TP_DEV;
	se->conn.proto_major = FUSE_KERNEL_VERSION;
	se->conn.proto_minor = FUSE_KERNEL_MINOR_VERSION;
	se->conn.max_write = RF_DEFAULT_MAX_WRITE;
	se->conn.max_read = RF_DEFAULT_MAX_WRITE;
	se->conn.max_readahead = 128 * 1024;
	se->conn.max_pages = RF_DEFAULT_MAX_WRITE / RF_PAGE_SIZE;
	se->conn.time_gran = 1;
	se->dev_bufsize = RF_DEFAULT_MAX_WRITE + RF_PAGE_SIZE;

	mt->se = se;
	mt->out_cap = RF_MEM_BODY_MAX;
	pthread_mutex_init(&mt->lock, NULL);
	for (unsigned int i = 0; i < RF_MEM_SLOTS; i++) {
		struct mem_slot *s = &mt->slots[i];

		s->mt = mt;
		s->req.se = se;
		s->req.rops = &mem_rops;
		s->req.chan = s;
		s->req.queue = i;
		s->req.stats = &s->stats;
		rf_session_register_queue(se, i, &s->stats);
	}
	if (rf_session_register_reqs(se, &mt->slots[0].req, RF_MEM_SLOTS, sizeof(struct mem_slot)) <
	    0) {
		rf_mem_session_destroy(se);
		errno = ENOMEM;
		return NULL;
	}
	return se;
}

void rf_mem_session_destroy(rf_session *se)
{
	struct mem_transport *mt;

	if (!se)
		return;
	mt = mem_of(se);
	if (atomic_load(&se->initialized) && !se->destroyed) {
		se->destroyed = true;
		if (se->ops.destroy)
			se->ops.destroy(se->userdata);
	}
	if (mt) {
		rf_session_unregister_reqs(se, &mt->slots[0].req);
		for (unsigned int i = 0; i < RF_MEM_SLOTS; i++) {
			free(mt->slots[i].in);
			free(mt->slots[i].out);
		}
		pthread_mutex_destroy(&mt->lock);
		free(mt->last);
		free(mt);
	}
	rf_session_free_core(se);
	free(se);
}

/* Claim a free slot with buffers, ready to dispatch into. */
static int slot_get(struct mem_transport *mt, struct rf_mem_reply *out, struct mem_slot **sp)
{
	struct mem_slot *s = NULL;

	pthread_mutex_lock(&mt->lock);
	for (unsigned int i = 0; i < RF_MEM_SLOTS && !s; i++)
		if (!mt->slots[i].busy)
			s = &mt->slots[i];
	if (!s) {
		pthread_mutex_unlock(&mt->lock);
		return -EBUSY;
	}
	if (!s->in)
		s->in = malloc(RF_MEM_MSG_MAX);
	if (!s->out)
		s->out = malloc(RF_MEM_BODY_MAX);
	if (!s->in || !s->out) {
		pthread_mutex_unlock(&mt->lock);
		return -ENOMEM;
	}
	s->busy = true;
	s->feeding = true;
	s->answered = false;
	s->cap = out;
	s->req.out = s->out;
	s->req.out_cap = mt->out_cap;
	mt->pending++;
	pthread_mutex_unlock(&mt->lock);
	if (out) {
		out->count = 0;
		out->replied = false;
		out->dropped = false;
		out->opcode = 0;
		out->unique = 0;
		out->error = 0;
		out->len = 0;
	}
	*sp = s;
	return 0;
}

/* After dispatch returned: release the slot if it was answered, else leave it to the answer. */
static int slot_put(struct mem_transport *mt, struct mem_slot *s)
{
	int done;

	pthread_mutex_lock(&mt->lock);
	s->feeding = false;
	s->cap = NULL;
	done = s->answered;
	if (done) {
		s->busy = false;
		mt->pending--;
		rf_req_set_free(&s->req);
	}
	pthread_mutex_unlock(&mt->lock);
	return done;
}

int rf_mem_feed_msg(rf_session *se, const void *msg, size_t len, struct rf_mem_reply *out)
{
	struct mem_transport *mt = mem_of(se);
	struct mem_slot *s;
	int ret;

	if (len > RF_MEM_MSG_MAX)
		return -EMSGSIZE;
	ret = slot_get(mt, out, &s);
	if (ret)
		return ret;
	if (len)
		memcpy(s->in, msg, len);
	rf_dispatch_msg(se, &s->req, s->in, len);
	return slot_put(mt, s);
}

int rf_mem_feed_split(rf_session *se, const struct fuse_in_header *ih, const void *op_in,
		      size_t op_in_len, const void *payload, size_t payload_len,
		      struct rf_mem_reply *out)
{
	struct mem_transport *mt = mem_of(se);
	struct mem_slot *s;
	int ret;

	if (op_in_len > FUSE_URING_OP_IN_OUT_SZ || payload_len > mt->out_cap)
		return -EMSGSIZE;
	ret = slot_get(mt, out, &s);
	if (ret)
		return ret;
	memcpy(&s->ih, ih, sizeof(s->ih));
	if (op_in_len)
		memcpy(s->op_in, op_in, op_in_len);
	if (payload_len)
		memcpy(s->out, payload, payload_len);
	rf_dispatch_split(se, &s->req, &s->ih, s->op_in, op_in_len, payload_len ? s->out : NULL,
			  payload_len);
	return slot_put(mt, s);
}

unsigned long rf_mem_replies(rf_session *se)
{
	struct mem_transport *mt = mem_of(se);
	unsigned long n;

	pthread_mutex_lock(&mt->lock);
	n = mt->replies;
	pthread_mutex_unlock(&mt->lock);
	return n;
}

int rf_mem_last_reply(rf_session *se, struct rf_mem_reply *out)
{
	struct mem_transport *mt = mem_of(se);
	int ret = -ENOENT;

	pthread_mutex_lock(&mt->lock);
	if (mt->have_last) {
		size_t keep = mt->last->len < sizeof(out->body) ? mt->last->len : sizeof(out->body);

		memcpy(out, mt->last, offsetof(struct rf_mem_reply, body));
		memcpy(out->body, mt->last->body, keep);
		ret = 0;
	}
	pthread_mutex_unlock(&mt->lock);
	return ret;
}

unsigned int rf_mem_pending(rf_session *se)
{
	struct mem_transport *mt = mem_of(se);
	unsigned int n;

	pthread_mutex_lock(&mt->lock);
	n = mt->pending;
	pthread_mutex_unlock(&mt->lock);
	return n;
}

int rf_mem_set_out_cap(rf_session *se, size_t cap)
{
	struct mem_transport *mt = mem_of(se);

	if (cap == 0 || cap > RF_MEM_BODY_MAX)
		return -EINVAL;
	pthread_mutex_lock(&mt->lock);
	mt->out_cap = cap;
	pthread_mutex_unlock(&mt->lock);
	return 0;
}
