/*
 * Replies: encoding every answer a filesystem can give into the request's reply area, and the
 * one-reply-per-request rule.
 *
 * A reply is built in place in req->out (out_cap bytes, owned by the transport): with the
 * io-uring transport that is the ring entry's payload buffer, which also holds the request's
 * names and write data, so a reply overwrites its own arguments. That is why every encoder
 * first claims the request (ACTIVE -> REPLIED, atomically) and only then writes: a second,
 * buggy reply must not scribble over a buffer that may already carry the next request. The
 * claim also checks the handle's generation (ringfuse_i.h, "Request identity"), so a late
 * reply through a handle whose slot has moved on to a new request is refused as well, and it
 * refuses while the request's backend I/O is in flight (-EBUSY), whose completion still
 * belongs to this request. A refused second or stale reply returns -EALREADY and is counted;
 * RINGFUSE_ABORT_ON_MISUSE=1 in the environment turns such misuse into an abort() for
 * debugging.
 *
 * A body that does not fit the reply area is not truncated: the kernel gets EIO and the
 * caller -ERANGE. Replies are counted by the transports (on the thread that owns the queue);
 * refused ones here, in the shared half of the counters, since any thread may make them.
 *
 * Also here: the request accessors, and rf_req_begin() which opens a request's life.
 */
#include "ringfuse_i.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The kernel rejects replies with error <= -ERESTARTSYS (512). */
#define RF_MAX_ERRNO 511

rf_req *rf_req_begin(rf_req *req, rf_session *se, const struct fuse_in_header *ih)
{
	assert(((uintptr_t)req & RF_REQ_TAG_MASK) == 0); /* RF_REQ_ALIGNED */
	uint32_t life = atomic_load_explicit(&req->life, memory_order_relaxed);
	uint32_t next = (((life >> RF_LIFE_GEN_SHIFT) + 1) << RF_LIFE_GEN_SHIFT) | RF_REQ_ACTIVE;

	req->se = se;
	req->opcode = ih->opcode;
	__atomic_store_n(&req->unique, ih->unique, __ATOMIC_RELAXED);
	req->nodeid = ih->nodeid;
	req->ctx.uid = ih->uid;
	req->ctx.gid = ih->gid;
	req->ctx.pid = (pid_t)ih->pid;
	req->ctx.umask = 0;
	if (!req->stats)
		req->stats = &se->dev_stats;
	rf_stat_inc(req->stats->own.requests, 1);
	if (ih->opcode < RF_STATS_OPCODES)
		rf_stat_inc(req->stats->own.by_opcode[ih->opcode], 1);
	req->t_start_ns = rf_now_ns();
	req->io_inline = false;
	/* interrupted_unique is left alone: it only ever matches the unique it was set for. */
	atomic_store_explicit(&req->life, next, memory_order_release);
	return (rf_req *)((uintptr_t)req | rf_life_tag(next));
}

/* ---- accessors ---- */

/* What rf_req_ctx() gives for a stale handle: nobody, who may create nothing. */
static const struct rf_ctx stale_ctx = {.uid = (uid_t)-1, .gid = (gid_t)-1, .umask = 0777};

const struct rf_ctx *rf_req_ctx(const rf_req *h)
{
	rf_req *req = rf_req_of(h);

	return req ? &req->ctx : &stale_ctx;
}

/* The session and queue of a request object never change: no generation check needed. */
void *rf_req_userdata(const rf_req *h)
{
	rf_req *req = rf_req_untag(h);

	return req && req->se ? req->se->userdata : NULL;
}

rf_session *rf_req_session(const rf_req *h)
{
	rf_req *req = rf_req_untag(h);

	return req ? req->se : NULL;
}

unsigned int rf_req_queue(const rf_req *h)
{
	rf_req *req = rf_req_untag(h);

	return req ? req->queue : 0;
}

uint64_t rf_req_unique(const rf_req *h)
{
	rf_req *req = rf_req_of(h);

	return req ? req->unique : 0;
}

int rf_req_interrupted(const rf_req *h)
{
	rf_req *req = rf_req_of(h);

	return req &&
	       atomic_load_explicit(&req->interrupted_unique, memory_order_relaxed) == req->unique;
}

int rf_req_getgroups(const rf_req *h, int size, gid_t list[])
{
	rf_req *req = rf_req_of(h);
	static const char key[] = "Groups:";
	char path[64];
	char *line = NULL;
	size_t cap = 0;
	int count = -EIO;
	FILE *f;

	if (!req)
		return -EINVAL;
	snprintf(path, sizeof(path), "/proc/%u/task/%u/status", (unsigned int)req->ctx.pid,
		 (unsigned int)req->ctx.pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (getline(&line, &cap, f) >= 0) {
		char *p, *end;

		if (strncmp(line, key, sizeof(key) - 1) != 0)
			continue;
		count = 0;
		p = line + sizeof(key) - 1;
		for (;;) {
			unsigned long g = strtoul(p, &end, 10);

			if (end == p)
				break;
			if (count < size)
				list[count] = (gid_t)g;
			count++;
			p = end;
		}
		break;
	}
	free(line);
	fclose(f);
	return count;
}

/* ---- the one-reply rule ---- */

static void misuse(void)
{
	const char *v = getenv("RINGFUSE_ABORT_ON_MISUSE");

	if (v && *v && strcmp(v, "0") != 0)
		abort();
}

/*
 * Take ownership of the reply of the request h names: its object, or NULL with *err set.
 * -EALREADY: answered already, or h is stale (its object serves another request now); counted
 * as a duplicate and logged once. -EBUSY: the request's backend I/O is still in flight.
 */
static rf_req *claim(const rf_req *h, int *err)
{
	rf_req *req = rf_req_untag(h);
	uintptr_t tag = (uintptr_t)h & RF_REQ_TAG_MASK;
	uint32_t life;

	if (!req) {
		*err = -EINVAL;
		return NULL;
	}
	life = atomic_load_explicit(&req->life, memory_order_relaxed);
	do {
		if (rf_life_tag(life) != tag || rf_life_state(life) != RF_REQ_ACTIVE) {
			if (req->stats)
				rf_stat_add_shared(req->stats->shared.dup_replies, 1);
			rf_log_once(
				RF_LOG_WARN,
				"ringfuse: a request was answered twice, or after its slot moved "
				"on to a new request (a stale rf_req); the extra reply was "
				"refused");
			misuse();
			*err = -EALREADY;
			return NULL;
		}
		if (life & RF_LIFE_IO) {
			rf_log_once(
				RF_LOG_WARN,
				"ringfuse: a reply while the request's backend I/O (rf_io_*) is "
				"in flight was refused; answer from its callback");
			misuse();
			*err = -EBUSY;
			return NULL;
		}
	} while (!atomic_compare_exchange_weak_explicit(
		&req->life, &life, (life & ~RF_LIFE_STATE) | RF_REQ_REPLIED, memory_order_acq_rel,
		memory_order_relaxed));
	return req;
}

/* The request h names while it is unanswered, else NULL. */
static rf_req *live(const rf_req *h)
{
	rf_req *req = rf_req_of(h);

	return req && rf_req_state(req) == RF_REQ_ACTIVE ? req : NULL;
}

static bool no_reply_op(uint32_t opcode)
{
	return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT ||
	       opcode == FUSE_NOTIFY_REPLY;
}

/* Hand a claimed request to its transport, which counts it. req must not be touched
 * afterwards. */
static int send_claimed(rf_req *req, int error, size_t len)
{
	rf_session *se = req->se;

	/* The kernel rejects any answer to these: they are just finished. */
	if (no_reply_op(req->opcode)) {
		if (se && se->opts.debug)
			rf_log(RF_LOG_DEBUG, "ringfuse: -> #%" PRIu64 " (no reply)", req->unique);
		req->rops->drop(req);
		return 0;
	}
	if (se && se->opts.debug) {
		if (error)
			rf_log(RF_LOG_DEBUG, "ringfuse: -> #%" PRIu64 " error %d (%s)", req->unique,
			       -error, strerror(-error));
		else
			rf_log(RF_LOG_DEBUG, "ringfuse: -> #%" PRIu64 " ok, %zu bytes", req->unique,
			       len);
	}
	return req->rops->send(req, error, len);
}

int rf_reply_finish(rf_req *h, int error, size_t len)
{
	int err;
	rf_req *req = claim(h, &err);

	if (!req)
		return err;
	if (len > req->out_cap) {
		rf_log_once(RF_LOG_WARN,
			    "ringfuse: reply of %zu bytes does not fit the %zu byte "
			    "reply area; answering EIO",
			    len, req->out_cap);
		send_claimed(req, -EIO, 0);
		return -ERANGE;
	}
	return send_claimed(req, error, len);
}

/* For encoders: after claim(), the body must fit or the request is answered EIO. */
static bool fits(rf_req *req, size_t len)
{
	if (len <= req->out_cap)
		return true;
	rf_log_once(RF_LOG_WARN,
		    "ringfuse: reply of %zu bytes does not fit the %zu byte reply area; "
		    "answering EIO",
		    len, req->out_cap);
	send_claimed(req, -EIO, 0);
	return false;
}

void rf_req_drop(rf_req *h)
{
	int err;
	rf_req *req = claim(h, &err);
	rf_session *se;

	if (!req)
		return;
	se = req->se;
	if (se && se->opts.debug)
		rf_log(RF_LOG_DEBUG, "ringfuse: -> #%" PRIu64 " (no reply)", req->unique);
	req->rops->drop(req);
}

void rf_reply_none(rf_req *h)
{
	rf_req *req = rf_req_of(h);
	int err;

	/* The kernel waits for an answer to everything else: dropping it would hang the caller
	 * (on /dev/fuse) or hand the kernel an empty success it did not ask for (io-uring). */
	if (req && !no_reply_op(req->opcode)) {
		req = claim(h, &err);
		if (!req)
			return;
		rf_log_once(RF_LOG_WARN,
			    "ringfuse: rf_reply_none() on a %s request, which takes a reply; "
			    "answering EIO",
			    rf_opcode_name(req->opcode));
		misuse();
		send_claimed(req, -EIO, 0);
		return;
	}
	rf_req_drop(h);
}

int rf_reply_err(rf_req *h, int err)
{
	rf_req *req;
	int ret;

	if (err < 0 || err > RF_MAX_ERRNO) {
		rf_log_once(
			RF_LOG_WARN,
			"ringfuse: rf_reply_err() takes a positive errno, got %d; answering EIO",
			err);
		misuse();
		err = EIO;
	}
	req = claim(h, &ret);
	if (!req)
		return ret;
	return send_claimed(req, -err, 0);
}

/* ---- encoders ---- */

/* Cache timeouts: whole seconds and the nanoseconds left over; negative or NaN means 0. */
static uint64_t timeout_sec(double t)
{
	if (!(t > 0.0))
		return 0;
	if (t >= 18446744073709551615.0)
		return UINT64_MAX;
	return (uint64_t)t;
}

static uint32_t timeout_nsec(double t)
{
	double frac;
	uint32_t ns;

	if (!(t > 0.0) || t >= 18446744073709551615.0)
		return 0;
	frac = t - (double)(uint64_t)t;
	ns = (uint32_t)(frac * 1e9);
	return ns > 999999999u ? 999999999u : ns;
}

static void fill_attr(struct fuse_attr *a, const struct stat *st)
{
	memset(a, 0, sizeof(*a));
	a->ino = st->st_ino;
	a->size = (uint64_t)st->st_size;
	a->blocks = (uint64_t)st->st_blocks;
	a->atime = (uint64_t)st->st_atim.tv_sec;
	a->mtime = (uint64_t)st->st_mtim.tv_sec;
	a->ctime = (uint64_t)st->st_ctim.tv_sec;
	a->atimensec = (uint32_t)st->st_atim.tv_nsec;
	a->mtimensec = (uint32_t)st->st_mtim.tv_nsec;
	a->ctimensec = (uint32_t)st->st_ctim.tv_nsec;
	a->mode = st->st_mode;
	a->nlink = (uint32_t)st->st_nlink;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	/* glibc's dev_t encoding agrees with the kernel's 32-bit one in its low bits. */
	a->rdev = (uint32_t)st->st_rdev;
	a->blksize = (uint32_t)st->st_blksize;
}

static void fill_entry(struct fuse_entry_out *eo, const struct rf_entry_param *e)
{
	memset(eo, 0, sizeof(*eo));
	eo->nodeid = e->ino;
	eo->generation = e->generation;
	eo->entry_valid = timeout_sec(e->entry_timeout);
	eo->entry_valid_nsec = timeout_nsec(e->entry_timeout);
	eo->attr_valid = timeout_sec(e->attr_timeout);
	eo->attr_valid_nsec = timeout_nsec(e->attr_timeout);
	fill_attr(&eo->attr, &e->attr);
}

static void fill_open(struct fuse_open_out *oo, const struct rf_file_info *fi)
{
	memset(oo, 0, sizeof(*oo));
	if (!fi)
		return;
	oo->fh = fi->fh;
	if (fi->direct_io)
		oo->open_flags |= FOPEN_DIRECT_IO;
	if (fi->keep_cache)
		oo->open_flags |= FOPEN_KEEP_CACHE;
	if (fi->nonseekable)
		oo->open_flags |= FOPEN_NONSEEKABLE;
	if (fi->cache_readdir)
		oo->open_flags |= FOPEN_CACHE_DIR;
	if (fi->noflush)
		oo->open_flags |= FOPEN_NOFLUSH;
	if (fi->parallel_direct_writes)
		oo->open_flags |= FOPEN_PARALLEL_DIRECT_WRITES;
	if (fi->passthrough) {
		oo->open_flags |= FOPEN_PASSTHROUGH;
		oo->backing_id = fi->backing_id;
	}
}

/* Copy a fixed-size body into the reply area (which need not be aligned) and send it. */
static int reply_struct(rf_req *h, const void *body, size_t len)
{
	int err;
	rf_req *req = claim(h, &err);

	if (!req)
		return err;
	if (!fits(req, len))
		return -ERANGE;
	memcpy(req->out, body, len);
	return send_claimed(req, 0, len);
}

int rf_reply_entry(rf_req *req, const struct rf_entry_param *e)
{
	struct fuse_entry_out eo;

	fill_entry(&eo, e);
	return reply_struct(req, &eo, sizeof(eo));
}

int rf_reply_create(rf_req *req, const struct rf_entry_param *e, const struct rf_file_info *fi)
{
	struct {
		struct fuse_entry_out entry;
		struct fuse_open_out open;
	} body;

	_Static_assert(sizeof(body) == sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out),
		       "CREATE reply is entry_out then open_out, unpadded");
	fill_entry(&body.entry, e);
	fill_open(&body.open, fi);
	return reply_struct(req, &body, sizeof(body));
}

int rf_reply_attr(rf_req *req, const struct stat *attr, double attr_timeout)
{
	struct fuse_attr_out ao;

	memset(&ao, 0, sizeof(ao));
	ao.attr_valid = timeout_sec(attr_timeout);
	ao.attr_valid_nsec = timeout_nsec(attr_timeout);
	fill_attr(&ao.attr, attr);
	return reply_struct(req, &ao, sizeof(ao));
}

int rf_reply_readlink(rf_req *req, const char *link)
{
	return rf_reply_buf(req, link, strlen(link));
}

int rf_reply_open(rf_req *req, const struct rf_file_info *fi)
{
	struct fuse_open_out oo;

	fill_open(&oo, fi);
	return reply_struct(req, &oo, sizeof(oo));
}

int rf_reply_write(rf_req *h, size_t count)
{
	rf_req *req = rf_req_of(h);
	int err;

	if (req && req->opcode == FUSE_COPY_FILE_RANGE_64) {
		struct fuse_copy_file_range_out co = {.bytes_copied = count};

		return reply_struct(h, &co, sizeof(co));
	} else {
		struct fuse_write_out wo = {.size = (uint32_t)count};

		if (count > UINT32_MAX) {
			req = claim(h, &err);
			if (!req)
				return err;
			rf_log_once(RF_LOG_WARN, "ringfuse: write count %zu does not fit the reply",
				    count);
			send_claimed(req, -EIO, 0);
			return -ERANGE;
		}
		return reply_struct(h, &wo, sizeof(wo));
	}
}

int rf_reply_buf(rf_req *h, const void *buf, size_t size)
{
	int err;
	rf_req *req = claim(h, &err);

	if (!req)
		return err;
	if (!fits(req, size))
		return -ERANGE;
	/* buf may point into the reply area itself (zero-copy helpers, in-place names). */
	if (size && buf != req->out)
		memmove(req->out, buf, size);
	return send_claimed(req, 0, size);
}

void *rf_reply_payload(rf_req *h, size_t *cap)
{
	rf_req *req = live(h);

	if (cap)
		*cap = req ? req->out_cap : 0;
	return req ? req->out : NULL;
}

int rf_reply_data(rf_req *h, size_t size)
{
	return rf_reply_finish(h, 0, size);
}

int rf_reply_statfs(rf_req *req, const struct statvfs *st)
{
	struct fuse_statfs_out so;

	memset(&so, 0, sizeof(so));
	so.st.blocks = st->f_blocks;
	so.st.bfree = st->f_bfree;
	so.st.bavail = st->f_bavail;
	so.st.files = st->f_files;
	so.st.ffree = st->f_ffree;
	so.st.bsize = (uint32_t)st->f_bsize;
	so.st.namelen = (uint32_t)st->f_namemax;
	so.st.frsize = (uint32_t)st->f_frsize;
	return reply_struct(req, &so, sizeof(so));
}

int rf_reply_xattr(rf_req *h, size_t count)
{
	struct fuse_getxattr_out xo = {.size = (uint32_t)count};
	rf_req *req;
	int err;

	if (count > UINT32_MAX) {
		req = claim(h, &err);
		if (!req)
			return err;
		rf_log_once(RF_LOG_WARN, "ringfuse: xattr size %zu does not fit the reply", count);
		send_claimed(req, -EIO, 0);
		return -ERANGE;
	}
	return reply_struct(h, &xo, sizeof(xo));
}

int rf_reply_lseek(rf_req *req, off_t off)
{
	struct fuse_lseek_out lo = {.offset = (uint64_t)off};

	return reply_struct(req, &lo, sizeof(lo));
}

/* ---- directory listings ---- */

/*
 * buf is usually the reply area of h: once h is stale that belongs to another request, so
 * nothing is written (SIZE_MAX: "does not fit"). A NULL h only sizes or fills buf.
 */
static bool direntry_refused(const rf_req *h)
{
	return h && !live(h);
}

size_t rf_add_direntry(rf_req *h, char *buf, size_t bufsize, const char *name,
		       const struct stat *st, off_t off)
{
	size_t namelen = strlen(name);
	size_t entlen = FUSE_NAME_OFFSET + namelen;
	size_t entsize = FUSE_DIRENT_ALIGN(entlen);
	struct fuse_dirent d;

	if (direntry_refused(h))
		return SIZE_MAX;
	if (!buf || entsize > bufsize)
		return entsize;
	memset(&d, 0, sizeof(d));
	d.ino = st ? st->st_ino : 0;
	d.off = (uint64_t)off;
	d.namelen = (uint32_t)namelen;
	d.type = st ? (st->st_mode & S_IFMT) >> 12 : 0;
	memcpy(buf, &d, FUSE_NAME_OFFSET);
	memcpy(buf + FUSE_NAME_OFFSET, name, namelen);
	memset(buf + entlen, 0, entsize - entlen);
	return entsize;
}

size_t rf_add_direntry_plus(rf_req *h, char *buf, size_t bufsize, const char *name,
			    const struct rf_entry_param *e, off_t off)
{
	size_t namelen = strlen(name);
	size_t entlen = FUSE_NAME_OFFSET_DIRENTPLUS + namelen;
	size_t entsize = FUSE_DIRENT_ALIGN(entlen);
	struct fuse_entry_out eo;
	struct fuse_dirent d;

	if (direntry_refused(h))
		return SIZE_MAX;
	if (!buf || entsize > bufsize)
		return entsize;
	fill_entry(&eo, e);
	memset(&d, 0, sizeof(d));
	d.ino = e->attr.st_ino;
	d.off = (uint64_t)off;
	d.namelen = (uint32_t)namelen;
	d.type = (e->attr.st_mode & S_IFMT) >> 12;
	memcpy(buf, &eo, sizeof(eo));
	memcpy(buf + offsetof(struct fuse_direntplus, dirent), &d, FUSE_NAME_OFFSET);
	memcpy(buf + FUSE_NAME_OFFSET_DIRENTPLUS, name, namelen);
	memset(buf + entlen, 0, entsize - entlen);
	return entsize;
}
