/*
 * Fuzz target: arbitrary bytes as kernel requests, through the real decoder and dispatcher
 * (the memory transport's rf_mem_feed_msg / rf_mem_feed_split) into a real filesystem (memfs).
 *
 * Each input runs on a fresh memory session and a fresh, empty memfs, so a finding replays
 * from its input alone. Byte 0 picks the layout (the /dev/fuse message or the io-uring ring
 * entry with header, op_in and payload apart) and a few session settings; the records after it
 * are fed one by one (the format is in harness.h and README.md), each through the memory
 * transport or, when its length's top bit says so, straight into rf_dispatch_msg() /
 * rf_dispatch_split() with every part in a heap block of exactly its size, where ASan sees any
 * read past the message. Unless the input brings its own, a valid INIT goes first, so requests
 * get past the "before INIT" check.
 *
 * The harness plays the kernel's part where memfs relies on it: the kernel only ever sends
 * back file handles the server gave out and has not had released (memfs's handle is its node
 * pointer). A nonzero fh in a request is therefore replaced by one of the live handles (or 0
 * when there is none); everything else reaches the decoder exactly as given.
 *
 * Besides what ASan and UBSan catch, every answer is checked the way the kernel would check
 * it: exactly one answer per request, given before the feed returns (memfs never defers), a
 * reply for every opcode that expects one and none for those that do not, errors in range
 * and without a body, bodies of the size the opcode's reply struct has, reads and listings
 * no larger than asked for, directory entries that parse. After the input, the filesystem
 * must account for no inode and no byte once torn down. Any violation aborts with a message.
 */
#include "ringfuse_i.h"
#include "transport/mem.h"

#include "harness.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int fuzz_strict;
unsigned long fuzz_strict_failures;
int fuzz_verbose;

#define FAIL(...)                                               \
	do {                                                    \
		fprintf(stderr, "fuzz_dispatch: " __VA_ARGS__); \
		fputc('\n', stderr);                            \
		abort();                                        \
	} while (0)

#define STRICT(...)                                                             \
	do {                                                                    \
		if (fuzz_strict) {                                              \
			fuzz_strict_failures++;                                 \
			fprintf(stderr, "fuzz_dispatch: strict: " __VA_ARGS__); \
			fputc('\n', stderr);                                    \
		}                                                               \
	} while (0)

static struct rf_mem_reply *reply; /* large: allocated once */
static unsigned char *scratch;	   /* the record being fed, patched */
static size_t scratch_cap;

/* ---- the kernel's view of open files ---- */

#define MAX_HANDLES 64

static uint64_t handles[MAX_HANDLES];
static unsigned int nhandles;

static void handle_add(uint64_t fh)
{
	if (fh == 0)
		return;
	if (nhandles < MAX_HANDLES)
		handles[nhandles++] = fh;
	/* A handle beyond the table is one the kernel never releases: memfs frees it at
	 * teardown, as it does a handle still open at unmount. */
}

static void handle_remove(uint64_t fh)
{
	for (unsigned int i = 0; i < nhandles; i++) {
		if (handles[i] == fh) {
			handles[i] = handles[--nhandles];
			return;
		}
	}
}

/* Replace the fh at off (if present) by a live handle: v != 0 names handle (v - 1) mod n. */
static uint64_t map_fh(unsigned char *p, size_t avail, size_t off)
{
	uint64_t v;

	if (off + sizeof(v) > avail)
		return 0;
	memcpy(&v, p + off, sizeof(v));
	if (v)
		v = nhandles ? handles[(v - 1) % nhandles] : 0;
	memcpy(p + off, &v, sizeof(v));
	return v;
}

/* Patch the handles of a fixed argument struct of avail bytes; returns the (first) fh. */
static uint64_t patch_handles(uint32_t opcode, unsigned char *p, size_t avail)
{
	switch (opcode) {
	case FUSE_GETATTR:
		return map_fh(p, avail, offsetof(struct fuse_getattr_in, fh));
	case FUSE_SETATTR:
		return map_fh(p, avail, offsetof(struct fuse_setattr_in, fh));
	case FUSE_READ:
	case FUSE_READDIR:
	case FUSE_READDIRPLUS:
		return map_fh(p, avail, offsetof(struct fuse_read_in, fh));
	case FUSE_WRITE:
		return map_fh(p, avail, offsetof(struct fuse_write_in, fh));
	case FUSE_RELEASE:
	case FUSE_RELEASEDIR:
		return map_fh(p, avail, offsetof(struct fuse_release_in, fh));
	case FUSE_FLUSH:
		return map_fh(p, avail, offsetof(struct fuse_flush_in, fh));
	case FUSE_FSYNC:
	case FUSE_FSYNCDIR:
		return map_fh(p, avail, offsetof(struct fuse_fsync_in, fh));
	case FUSE_FALLOCATE:
		return map_fh(p, avail, offsetof(struct fuse_fallocate_in, fh));
	case FUSE_LSEEK:
		return map_fh(p, avail, offsetof(struct fuse_lseek_in, fh));
	case FUSE_GETLK:
	case FUSE_SETLK:
	case FUSE_SETLKW:
		return map_fh(p, avail, offsetof(struct fuse_lk_in, fh));
	case FUSE_IOCTL:
		return map_fh(p, avail, offsetof(struct fuse_ioctl_in, fh));
	case FUSE_POLL:
		return map_fh(p, avail, offsetof(struct fuse_poll_in, fh));
	case FUSE_SETUPMAPPING:
		return map_fh(p, avail, offsetof(struct fuse_setupmapping_in, fh));
	case FUSE_STATX:
		return map_fh(p, avail, offsetof(struct fuse_statx_in, fh));
	case FUSE_COPY_FILE_RANGE:
	case FUSE_COPY_FILE_RANGE_64:
		map_fh(p, avail, offsetof(struct fuse_copy_file_range_in, fh_out));
		return map_fh(p, avail, offsetof(struct fuse_copy_file_range_in, fh_in));
	default:
		return 0;
	}
}

/* ---- what the kernel expects back ---- */

static bool no_reply_op(uint32_t opcode)
{
	return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT ||
	       opcode == FUSE_NOTIFY_REPLY;
}

/* Opcodes that neither the library nor memfs implement. */
static bool enosys_op(uint32_t opcode)
{
	switch (opcode) {
	case FUSE_GETLK:
	case FUSE_SETLK:
	case FUSE_SETLKW:
	case FUSE_BMAP:
	case FUSE_IOCTL:
	case FUSE_POLL:
	case FUSE_SETUPMAPPING:
	case FUSE_REMOVEMAPPING:
	case FUSE_STATX:
		return true;
	default:
		return opcode > FUSE_COPY_FILE_RANGE_64 || opcode == 0 || opcode == 7 ||
		       opcode == 19;
	}
}

/* Size of the fixed struct the decoder takes for opcode on this session. */
static size_t op_size(const rf_session *se, uint32_t opcode)
{
	if (opcode == FUSE_SETXATTR)
		return (se->conn.want & RF_CAP_SETXATTR_EXT) ? sizeof(struct fuse_setxattr_in)
							     : FUSE_COMPAT_SETXATTR_IN_SIZE;
	return rf_op_in_size(opcode);
}

static void check_attr(const struct fuse_attr *a, uint64_t ino, const char *what)
{
	mode_t t = a->mode & S_IFMT;

	if (ino && a->ino != ino)
		FAIL("%s: attributes of inode %" PRIu64 " for node %" PRIu64, what, a->ino, ino);
	if (t != S_IFREG && t != S_IFDIR && t != S_IFLNK && t != S_IFCHR && t != S_IFBLK &&
	    t != S_IFIFO && t != S_IFSOCK)
		FAIL("%s: file type %#o is none the kernel knows", what, (unsigned int)t);
	if (a->atimensec >= 1000000000u || a->mtimensec >= 1000000000u ||
	    a->ctimensec >= 1000000000u)
		FAIL("%s: nanoseconds out of range", what);
}

static void check_entry(const unsigned char *body, uint32_t opcode, bool negative_ok)
{
	struct fuse_entry_out eo;

	memcpy(&eo, body, sizeof(eo));
	if (eo.nodeid == 0) {
		if (!negative_ok)
			FAIL("%s: negative entry for an object just made", rf_opcode_name(opcode));
		return;
	}
	if (eo.nodeid == FUSE_ROOT_ID && opcode != FUSE_LOOKUP)
		FAIL("%s: new entry has the root's node id", rf_opcode_name(opcode));
	check_attr(&eo.attr, eo.nodeid, rf_opcode_name(opcode));
	if (eo.entry_valid_nsec >= 1000000000u || eo.attr_valid_nsec >= 1000000000u)
		FAIL("%s: timeout nanoseconds out of range", rf_opcode_name(opcode));
	if (opcode == FUSE_MKDIR && (eo.attr.mode & S_IFMT) != S_IFDIR)
		FAIL("MKDIR made a %#o", eo.attr.mode & S_IFMT);
	if (opcode == FUSE_SYMLINK && (eo.attr.mode & S_IFMT) != S_IFLNK)
		FAIL("SYMLINK made a %#o", eo.attr.mode & S_IFMT);
	if ((opcode == FUSE_CREATE || opcode == FUSE_TMPFILE) && (eo.attr.mode & S_IFMT) != S_IFREG)
		FAIL("%s made a %#o", rf_opcode_name(opcode), eo.attr.mode & S_IFMT);
	if ((opcode == FUSE_LINK || opcode == FUSE_MKNOD) && (eo.attr.mode & S_IFMT) == S_IFDIR)
		FAIL("%s made a directory", rf_opcode_name(opcode));
}

/* A READDIR or READDIRPLUS body, as fuse_parse_dirfile() would walk it. */
static void check_dirents(const unsigned char *body, size_t len, bool plus)
{
	size_t pos = 0;
	size_t name_off = plus ? FUSE_NAME_OFFSET_DIRENTPLUS : FUSE_NAME_OFFSET;
	size_t dirent_off = plus ? offsetof(struct fuse_direntplus, dirent) : 0;

	while (pos < len) {
		struct fuse_dirent d;
		size_t reclen;

		if (len - pos < name_off)
			FAIL("directory listing: %zu stray bytes at the end", len - pos);
		memcpy(&d, body + pos + dirent_off, sizeof(d));
		if (d.namelen == 0 || d.namelen > 255)
			FAIL("directory listing: name length %" PRIu32, d.namelen);
		reclen = FUSE_DIRENT_ALIGN(name_off + d.namelen);
		if (reclen > len - pos)
			FAIL("directory listing: entry of %zu bytes past the end", reclen);
		if (memchr(body + pos + name_off, '/', d.namelen) ||
		    memchr(body + pos + name_off, '\0', d.namelen))
			FAIL("directory listing: name with '/' or NUL");
		if (d.off == 0)
			FAIL("directory listing: entry with next offset 0");
		if (plus) {
			struct fuse_entry_out eo;

			memcpy(&eo, body + pos, sizeof(eo));
			if (eo.nodeid)
				check_attr(&eo.attr, eo.nodeid, "READDIRPLUS");
		}
		pos += reclen;
	}
}

/* A successful reply: the body the kernel would accept for this opcode. */
static void check_success(const rf_session *se, uint32_t opcode, const unsigned char *op,
			  uint64_t nodeid, size_t out_cap)
{
	const unsigned char *b = reply->body;
	size_t len = reply->len, want = 0;
	const char *name = rf_opcode_name(opcode);

	(void)se;
	if (len > out_cap)
		FAIL("%s: %zu byte reply in a %zu byte reply area", name, len, out_cap);
	switch (opcode) {
	case FUSE_LOOKUP:
	case FUSE_MKNOD:
	case FUSE_MKDIR:
	case FUSE_SYMLINK:
	case FUSE_LINK:
		want = sizeof(struct fuse_entry_out);
		if (len == want)
			check_entry(b, opcode, opcode == FUSE_LOOKUP);
		break;
	case FUSE_CREATE:
	case FUSE_TMPFILE:
		want = sizeof(struct fuse_entry_out) + sizeof(struct fuse_open_out);
		if (len == want) {
			struct fuse_open_out oo;

			check_entry(b, opcode, false);
			memcpy(&oo, b + sizeof(struct fuse_entry_out), sizeof(oo));
			handle_add(oo.fh);
		}
		break;
	case FUSE_OPEN:
	case FUSE_OPENDIR:
		want = sizeof(struct fuse_open_out);
		if (len == want) {
			struct fuse_open_out oo;

			memcpy(&oo, b, sizeof(oo));
			handle_add(oo.fh);
		}
		break;
	case FUSE_GETATTR:
	case FUSE_SETATTR:
		want = sizeof(struct fuse_attr_out);
		if (len == want) {
			struct fuse_attr_out ao;

			memcpy(&ao, b, sizeof(ao));
			check_attr(&ao.attr, nodeid, name);
		}
		break;
	case FUSE_READLINK:
		if (len == 0 || len > 4095)
			FAIL("READLINK: target of %zu bytes", len);
		return;
	case FUSE_READ:
	case FUSE_READDIR:
	case FUSE_READDIRPLUS: {
		struct fuse_read_in ri;

		memcpy(&ri, op, sizeof(ri));
		if (len > ri.size)
			FAIL("%s: %zu bytes for a %" PRIu32 " byte request", name, len, ri.size);
		if (opcode != FUSE_READ)
			check_dirents(b, len, opcode == FUSE_READDIRPLUS);
		return;
	}
	case FUSE_WRITE: {
		struct fuse_write_in wi;
		struct fuse_write_out wo;

		want = sizeof(wo);
		memcpy(&wi, op, sizeof(wi));
		if (len == want) {
			memcpy(&wo, b, sizeof(wo));
			if (wo.size > wi.size)
				FAIL("WRITE: %" PRIu32 " bytes written of %" PRIu32, wo.size,
				     wi.size);
		}
		break;
	}
	case FUSE_COPY_FILE_RANGE:
	case FUSE_COPY_FILE_RANGE_64: {
		struct fuse_copy_file_range_in ci;
		uint64_t done;

		memcpy(&ci, op, sizeof(ci));
		if (opcode == FUSE_COPY_FILE_RANGE) {
			struct fuse_write_out wo;

			want = sizeof(wo);
			memcpy(&wo, b, sizeof(wo));
			done = wo.size;
		} else {
			struct fuse_copy_file_range_out co;

			want = sizeof(co);
			memcpy(&co, b, sizeof(co));
			done = co.bytes_copied;
		}
		if (len == want && done > ci.len)
			FAIL("%s: %" PRIu64 " bytes copied of %" PRIu64, name, done, ci.len);
		break;
	}
	case FUSE_STATFS:
		want = sizeof(struct fuse_statfs_out);
		break;
	case FUSE_GETXATTR:
	case FUSE_LISTXATTR: {
		struct fuse_getxattr_in gi;

		memcpy(&gi, op, sizeof(gi));
		if (gi.size == 0) {
			want = sizeof(struct fuse_getxattr_out);
			break;
		}
		if (len > gi.size)
			FAIL("%s: %zu bytes for a %" PRIu32 " byte buffer", name, len, gi.size);
		if (opcode == FUSE_LISTXATTR && len && b[len - 1] != '\0')
			FAIL("LISTXATTR: list does not end with a NUL");
		return;
	}
	case FUSE_LSEEK:
		want = sizeof(struct fuse_lseek_out);
		break;
	case FUSE_INIT:
		if (len != sizeof(struct fuse_init_out) && len != FUSE_COMPAT_22_INIT_OUT_SIZE)
			FAIL("INIT: reply of %zu bytes", len);
		return;
	default:
		if (enosys_op(opcode))
			FAIL("%s: success for an opcode nobody implements", name);
		want = 0; /* error-only replies */
		break;
	}
	if (len != want)
		FAIL("%s: reply of %zu bytes, the kernel wants %zu", name, len, want);
}

/* ---- feeding ---- */

static size_t out_cap_of(unsigned int mode)
{
	static const size_t caps[4] = {RF_MEM_BODY_MAX, 64 * 1024, 4096, 100};

	return caps[(mode >> FUZZ_MODE_OUTCAP_SHIFT) & 3];
}

static void quiet_log(enum rf_log_level level, const char *msg, void *arg)
{
	(void)level;
	(void)arg;
	if (fuzz_verbose)
		fprintf(stderr, "  log: %s\n", msg);
}

static void send_init(rf_session *se, unsigned int mode)
{
	struct {
		struct fuse_in_header ih;
		struct fuse_init_in in;
	} msg;
	int ret;

	memset(&msg, 0, sizeof(msg));
	msg.ih.len = sizeof(msg);
	msg.ih.opcode = FUSE_INIT;
	msg.ih.unique = 1;
	msg.in.major = FUSE_KERNEL_VERSION;
	msg.in.max_readahead = 128 * 1024;
	if (mode & FUZZ_MODE_OLD_KERNEL) {
		msg.in.minor = 26;
		msg.in.flags = 0x003fffff & ~FUSE_INIT_EXT;
	} else {
		msg.in.minor = FUSE_KERNEL_MINOR_VERSION;
		msg.in.flags = 0xffffffff;
		msg.in.flags2 = 0xffffffff;
	}
	ret = rf_mem_feed_msg(se, &msg, sizeof(msg), reply);
	if (ret != 1 || !reply->replied || reply->error != 0)
		FAIL("the harness's INIT failed: feed %d, error %d", ret, reply->error);
}

static unsigned char *scratch_get(size_t len)
{
	if (len > scratch_cap) {
		unsigned char *p = realloc(scratch, len);

		if (!p)
			FAIL("out of memory for a %zu byte record", len);
		scratch = p;
		scratch_cap = len;
	}
	return scratch;
}

/*
 * Direct feeding: the same dispatcher entry points the transports call, with every part of
 * the request in a heap block of exactly its size (the memory transport copies into large
 * slot buffers, where ASan cannot see a read past the message). The answer is captured into
 * the same record the memory transport fills.
 */
static int direct_send(rf_req *req, int error, size_t len)
{
	reply->count++;
	reply->replied = true;
	reply->opcode = req->opcode;
	reply->unique = req->unique;
	reply->error = error;
	reply->len = len;
	if (len)
		memcpy(reply->body, req->out,
		       len < sizeof(reply->body) ? len : sizeof(reply->body));
	return 0;
}

static void direct_drop(rf_req *req)
{
	reply->count++;
	reply->dropped = true;
	reply->opcode = req->opcode;
	reply->unique = req->unique;
}

static const struct rf_reply_ops direct_rops = {.send = direct_send, .drop = direct_drop};

static void *exact_copy(const void *p, size_t len)
{
	void *q;

	if (!len)
		return NULL;
	q = malloc(len);
	if (!q)
		FAIL("out of memory for %zu bytes", len);
	memcpy(q, p, len);
	return q;
}

/* Returns as rf_mem_feed_*(): 1 answered, 0 left unanswered, -EMSGSIZE refused. */
static int feed_direct(rf_session *se, const struct fuse_in_header *ih, const void *msg, size_t len,
		       const void *op_in, size_t op_in_len, const void *payload, size_t payload_len,
		       bool split, size_t out_cap)
{
	RF_REQ_ALIGNED rf_req req;
	int answered;

	if (split && payload_len > out_cap)
		return -EMSGSIZE; /* a ring entry's payload never exceeds its buffer */
	memset(reply, 0, offsetof(struct rf_mem_reply, body));
	memset(&req, 0, sizeof(req));
	req.se = se;
	req.rops = &direct_rops;
	req.stats = &se->dev_stats;
	req.out = malloc(out_cap);
	req.out_cap = out_cap;
	if (!req.out)
		FAIL("out of memory for the reply area");
	if (split) {
		struct fuse_in_header *h = exact_copy(ih, sizeof(*ih));
		void *o = exact_copy(op_in, op_in_len);
		void *p = exact_copy(payload, payload_len);

		rf_dispatch_split(se, &req, h, o, op_in_len, p, payload_len);
		free(p);
		free(o);
		free(h);
	} else {
		void *m = exact_copy(msg, len);

		rf_dispatch_msg(se, &req, m, len);
		free(m);
	}
	answered = rf_req_state(&req) != RF_REQ_ACTIVE;
	free(req.out);
	return answered;
}

static void feed_record(rf_session *se, unsigned int mode, const uint8_t *data, size_t len,
			bool direct)
{
	_Alignas(8) unsigned char op_in[FUSE_URING_OP_IN_OUT_SZ];
	_Alignas(8) unsigned char op_copy[FUSE_URING_OP_IN_OUT_SZ];
	size_t out_cap = out_cap_of(mode);
	bool split = mode & FUZZ_MODE_SPLIT;
	struct fuse_in_header ih;
	unsigned char *rec = scratch_get(len ? len : 1);
	size_t body_len = len > sizeof(ih) ? len - sizeof(ih) : 0;
	size_t op_len, take, payload_len = 0;
	uint64_t bad_before = rf_session_totals(se).bad_requests;
	uint64_t fh = 0;
	bool refused;
	int ret;

	memcpy(rec, data, len);
	memset(&ih, 0, sizeof(ih));
	memcpy(&ih, rec, len < sizeof(ih) ? len : sizeof(ih));
	op_len = op_size(se, ih.opcode);
	if (op_len > sizeof(op_in))
		op_len = sizeof(op_in);
	take = body_len < op_len ? body_len : op_len;
	/*
	 * A ring entry's op_in always holds the whole struct (zero-padded here when the record is
	 * short), so handles are mapped in the padded copy; the checker reads the same copy. A
	 * classic message with a short struct is refused before any handle is used.
	 */
	memset(op_copy, 0, sizeof(op_copy));
	if (take)
		memcpy(op_copy, rec + sizeof(ih), take);
	fh = patch_handles(ih.opcode, op_copy, op_len);
	if (take)
		memcpy(rec + sizeof(ih), op_copy, take);

	if (split) {
		size_t op_in_len = (mode & FUZZ_MODE_RAW) ? take : sizeof(op_in);
		const unsigned char *payload;

		memcpy(op_in, op_copy, sizeof(op_in));
		payload_len = body_len - take;
		payload = payload_len ? rec + sizeof(ih) + take : NULL;
		if (direct)
			ret = feed_direct(se, &ih, NULL, 0, op_in, op_in_len, payload, payload_len,
					  true, out_cap);
		else
			ret = rf_mem_feed_split(se, &ih, op_in, op_in_len, payload, payload_len,
						reply);
	} else {
		if (!(mode & FUZZ_MODE_RAW) && len >= sizeof(uint32_t)) {
			uint32_t l = (uint32_t)len;

			memcpy(rec, &l, sizeof(l));
		}
		if (direct)
			ret = feed_direct(se, &ih, rec, len, NULL, 0, NULL, 0, false, out_cap);
		else
			ret = rf_mem_feed_msg(se, rec, len, reply);
	}
	if (fuzz_verbose)
		fprintf(stderr,
			"<- %s #%" PRIu64 " node %" PRIu64
			" %zu bytes: feed %d, %s %d, %zu bytes\n",
			rf_opcode_name(ih.opcode), ih.unique, ih.nodeid, len, ret,
			reply->dropped ? "dropped" : "error", reply->error, reply->len);

	if (ret == -EMSGSIZE) {
		if (split && payload_len > out_cap)
			return;
		FAIL("feed refused a %zu byte record with EMSGSIZE", len);
	}
	if (ret == 0)
		FAIL("%s #%" PRIu64 " was not answered before its feed returned (memfs never "
		     "defers: a path in the dispatcher lost the request)",
		     rf_opcode_name(ih.opcode), ih.unique);
	if (ret != 1)
		FAIL("feed failed: %d (%s)", ret, strerror(-ret));
	if (reply->count != 1)
		FAIL("%s #%" PRIu64 " got %u answers", rf_opcode_name(ih.opcode), ih.unique,
		     reply->count);
	if (!direct && rf_mem_pending(se) != 0)
		FAIL("%u requests pending after a synchronous answer", rf_mem_pending(se));
	refused = rf_session_totals(se).bad_requests != bad_before;

	if (reply->dropped) {
		/* Without a whole unique there is nobody to answer. */
		if (!no_reply_op(ih.opcode) &&
		    !(!split && len < offsetof(struct fuse_in_header, unique) + sizeof(uint64_t)))
			FAIL("%s #%" PRIu64 " was dropped without a reply",
			     rf_opcode_name(ih.opcode), ih.unique);
		return;
	}
	/* The kernel takes a header-only error for an INTERRUPT (EAGAIN: queue it again,
	 * ENOSYS: stop sending them) and rejects any other reply to these. */
	if (no_reply_op(ih.opcode) &&
	    !(ih.opcode == FUSE_INTERRUPT && reply->error < 0 && reply->len == 0))
		FAIL("%s got a reply the kernel would reject", rf_opcode_name(ih.opcode));
	if (reply->error > 0 || reply->error < -511)
		FAIL("%s: error %d out of range", rf_opcode_name(ih.opcode), reply->error);
	if (reply->error) {
		if (reply->len)
			FAIL("%s: error %d with a %zu byte body", rf_opcode_name(ih.opcode),
			     reply->error, reply->len);
		if (refused)
			STRICT("%s #%" PRIu64 " refused as malformed (error %d)",
			       rf_opcode_name(ih.opcode), ih.unique, reply->error);
		else if (!(reply->error == -ENOSYS && enosys_op(ih.opcode)) &&
			 !(reply->error == -EAGAIN && ih.opcode == FUSE_INTERRUPT))
			STRICT("%s #%" PRIu64 " failed: %s", rf_opcode_name(ih.opcode), ih.unique,
			       strerror(-reply->error));
		return;
	}
	if (refused)
		FAIL("%s: success for a request the decoder refused", rf_opcode_name(ih.opcode));
	if (enosys_op(ih.opcode))
		STRICT("%s #%" PRIu64 " succeeded but nobody implements it",
		       rf_opcode_name(ih.opcode), ih.unique);
	check_success(se, ih.opcode, op_copy, ih.nodeid, out_cap);
	if ((ih.opcode == FUSE_RELEASE || ih.opcode == FUSE_RELEASEDIR) && fh)
		handle_remove(fh);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	/* A second reply or an errno out of range is a bug here, not something to count. */
	setenv("RINGFUSE_ABORT_ON_MISUSE", "1", 0);
	if (getenv("RINGFUSE_FUZZ_VERBOSE"))
		fuzz_verbose = 1;
	rf_set_log(quiet_log, NULL);
	reply = calloc(1, sizeof(*reply));
	if (!reply)
		FAIL("out of memory");
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct rf_ops *ops;
	size_t ops_size, pos = 1;
	unsigned int mode, nrec = 0, fsflags = 0;
	rf_session *se;
	int ret;

	if (size < 1)
		return 0;
	if (!reply)
		LLVMFuzzerInitialize(NULL, NULL);
	mode = data[0];
	if (mode & FUZZ_MODE_PERM_CHECK)
		fsflags |= FUZZ_MEMFS_PERM_CHECK;
	ret = fuzz_memfs_start(fsflags);
	if (ret < 0)
		FAIL("memfs setup failed: %s", strerror(-ret));
	ops = fuzz_memfs_ops(&ops_size);
	se = rf_mem_session_new(ops, ops_size, NULL);
	if (!se)
		FAIL("rf_mem_session_new failed");
	/* The trace formats every request's fields and names: worth fuzzing too. */
	se->opts.debug = (mode & FUZZ_MODE_DEBUG) != 0;
	ret = rf_mem_set_out_cap(se, out_cap_of(mode));
	if (ret < 0)
		FAIL("rf_mem_set_out_cap: %d", ret);
	nhandles = 0;
	if (!(mode & FUZZ_MODE_OWN_INIT))
		send_init(se, mode);

	while (pos < size && nrec < FUZZ_MAX_RECORDS) {
		uint32_t len = 0;
		size_t n = size - pos < sizeof(len) ? size - pos : sizeof(len);
		bool direct;

		/* Little-endian hosts only, like the kernel ABI here. */
		memcpy(&len, data + pos, n);
		pos += n;
		direct = len & FUZZ_RECORD_DIRECT;
		len &= ~FUZZ_RECORD_DIRECT;
		if (len > size - pos)
			len = (uint32_t)(size - pos);
		feed_record(se, mode, data + pos, len, direct);
		pos += len;
		nrec++;
	}

	if (rf_session_totals(se).dup_replies)
		FAIL("%" PRIu64 " duplicate replies", rf_session_totals(se).dup_replies);
	rf_mem_session_destroy(se);
	fuzz_memfs_stop();
	if (fuzz_memfs_inodes() || fuzz_memfs_bytes())
		FAIL("memfs accounts for %" PRIu64 " inodes and %" PRIu64
		     " bytes after freeing everything",
		     fuzz_memfs_inodes(), fuzz_memfs_bytes());
	return 0;
}
