/*
 * Decoding and dispatch: the one place where a request from the kernel is checked and turned
 * into a call of the filesystem's operation.
 *
 * Transports hand requests over in one of two layouts. /dev/fuse delivers one contiguous
 * message (fuse_in_header, the opcode's fixed argument struct, then the remaining arguments);
 * an io-uring ring entry keeps the header, the fixed struct ("op_in") and the remaining
 * arguments (the "payload") in three separate buffers. Opcodes whose first argument is a name
 * (LOOKUP, UNLINK, RMDIR, SYMLINK, REMOVEXATTR) have no fixed struct at all: the kernel sends a
 * zero-sized first argument, so in both layouts their names start the payload. Both entry
 * points reduce a request to (header, fixed struct, payload) and share everything after that.
 *
 * Nothing that arrives here is trusted: every length is checked against the bytes actually
 * present before it is used, names must be NUL-terminated inside the message, and a request
 * that does not add up is answered EIO, counted in bad_requests and logged once. The fixed
 * struct is copied into an aligned local union, so a message at any address and of any length
 * is safe to decode (the fuzzer feeds exactly that). Handlers get typed, checked arguments and
 * never see a request before INIT was answered or after DESTROY.
 *
 * Every path ends in exactly one reply (or drop, for the opcodes the kernel never expects an
 * answer to), either here or from the handler, now or later.
 */
#include "ringfuse_i.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct op_desc {
	const char *name;
	uint16_t in_size; /* fixed argument struct the kernel sends first, 0 if none */
};

static const struct op_desc op_descs[] = {
	[FUSE_LOOKUP] = {"LOOKUP", 0},
	[FUSE_FORGET] = {"FORGET", sizeof(struct fuse_forget_in)},
	[FUSE_GETATTR] = {"GETATTR", sizeof(struct fuse_getattr_in)},
	[FUSE_SETATTR] = {"SETATTR", sizeof(struct fuse_setattr_in)},
	[FUSE_READLINK] = {"READLINK", 0},
	[FUSE_SYMLINK] = {"SYMLINK", 0},
	[FUSE_MKNOD] = {"MKNOD", sizeof(struct fuse_mknod_in)},
	[FUSE_MKDIR] = {"MKDIR", sizeof(struct fuse_mkdir_in)},
	[FUSE_UNLINK] = {"UNLINK", 0},
	[FUSE_RMDIR] = {"RMDIR", 0},
	[FUSE_RENAME] = {"RENAME", sizeof(struct fuse_rename_in)},
	[FUSE_LINK] = {"LINK", sizeof(struct fuse_link_in)},
	[FUSE_OPEN] = {"OPEN", sizeof(struct fuse_open_in)},
	[FUSE_READ] = {"READ", sizeof(struct fuse_read_in)},
	[FUSE_WRITE] = {"WRITE", sizeof(struct fuse_write_in)},
	[FUSE_STATFS] = {"STATFS", 0},
	[FUSE_RELEASE] = {"RELEASE", sizeof(struct fuse_release_in)},
	[FUSE_FSYNC] = {"FSYNC", sizeof(struct fuse_fsync_in)},
	/* The extended struct is sent only when FUSE_SETXATTR_EXT was agreed on at INIT. */
	[FUSE_SETXATTR] = {"SETXATTR", FUSE_COMPAT_SETXATTR_IN_SIZE},
	[FUSE_GETXATTR] = {"GETXATTR", sizeof(struct fuse_getxattr_in)},
	[FUSE_LISTXATTR] = {"LISTXATTR", sizeof(struct fuse_getxattr_in)},
	[FUSE_REMOVEXATTR] = {"REMOVEXATTR", 0},
	[FUSE_FLUSH] = {"FLUSH", sizeof(struct fuse_flush_in)},
	[FUSE_INIT] = {"INIT", sizeof(struct fuse_init_in)},
	[FUSE_OPENDIR] = {"OPENDIR", sizeof(struct fuse_open_in)},
	[FUSE_READDIR] = {"READDIR", sizeof(struct fuse_read_in)},
	[FUSE_RELEASEDIR] = {"RELEASEDIR", sizeof(struct fuse_release_in)},
	[FUSE_FSYNCDIR] = {"FSYNCDIR", sizeof(struct fuse_fsync_in)},
	[FUSE_GETLK] = {"GETLK", sizeof(struct fuse_lk_in)},
	[FUSE_SETLK] = {"SETLK", sizeof(struct fuse_lk_in)},
	[FUSE_SETLKW] = {"SETLKW", sizeof(struct fuse_lk_in)},
	[FUSE_ACCESS] = {"ACCESS", sizeof(struct fuse_access_in)},
	[FUSE_CREATE] = {"CREATE", sizeof(struct fuse_create_in)},
	[FUSE_INTERRUPT] = {"INTERRUPT", sizeof(struct fuse_interrupt_in)},
	[FUSE_BMAP] = {"BMAP", sizeof(struct fuse_bmap_in)},
	[FUSE_DESTROY] = {"DESTROY", 0},
	[FUSE_IOCTL] = {"IOCTL", sizeof(struct fuse_ioctl_in)},
	[FUSE_POLL] = {"POLL", sizeof(struct fuse_poll_in)},
	[FUSE_NOTIFY_REPLY] = {"NOTIFY_REPLY", 0},
	[FUSE_BATCH_FORGET] = {"BATCH_FORGET", sizeof(struct fuse_batch_forget_in)},
	[FUSE_FALLOCATE] = {"FALLOCATE", sizeof(struct fuse_fallocate_in)},
	[FUSE_READDIRPLUS] = {"READDIRPLUS", sizeof(struct fuse_read_in)},
	[FUSE_RENAME2] = {"RENAME2", sizeof(struct fuse_rename2_in)},
	[FUSE_LSEEK] = {"LSEEK", sizeof(struct fuse_lseek_in)},
	[FUSE_COPY_FILE_RANGE] = {"COPY_FILE_RANGE", sizeof(struct fuse_copy_file_range_in)},
	[FUSE_SETUPMAPPING] = {"SETUPMAPPING", sizeof(struct fuse_setupmapping_in)},
	[FUSE_REMOVEMAPPING] = {"REMOVEMAPPING", 0},
	[FUSE_SYNCFS] = {"SYNCFS", sizeof(struct fuse_syncfs_in)},
	[FUSE_TMPFILE] = {"TMPFILE", sizeof(struct fuse_create_in)},
	[FUSE_STATX] = {"STATX", sizeof(struct fuse_statx_in)},
	[FUSE_COPY_FILE_RANGE_64] = {"COPY_FILE_RANGE_64", sizeof(struct fuse_copy_file_range_in)},
};

size_t rf_op_in_size(uint32_t opcode)
{
	return opcode < ARRAY_SIZE(op_descs) ? op_descs[opcode].in_size : 0;
}

const char *rf_opcode_name(uint32_t opcode)
{
	if (opcode < ARRAY_SIZE(op_descs) && op_descs[opcode].name)
		return op_descs[opcode].name;
	if (opcode == CUSE_INIT)
		return "CUSE_INIT";
	return "UNKNOWN";
}

/* An aligned home for the fixed argument struct, whatever the alignment of the source. */
union op_in {
	struct fuse_forget_in forget;
	struct fuse_getattr_in getattr;
	struct fuse_setattr_in setattr;
	struct fuse_mknod_in mknod;
	struct fuse_mkdir_in mkdir;
	struct fuse_rename_in rename;
	struct fuse_rename2_in rename2;
	struct fuse_link_in link;
	struct fuse_open_in open;
	struct fuse_create_in create;
	struct fuse_read_in read;
	struct fuse_write_in write;
	struct fuse_release_in release;
	struct fuse_flush_in flush;
	struct fuse_fsync_in fsync;
	struct fuse_setxattr_in setxattr;
	struct fuse_getxattr_in getxattr;
	struct fuse_access_in access;
	struct fuse_init_in init;
	struct fuse_interrupt_in interrupt;
	struct fuse_batch_forget_in batch_forget;
	struct fuse_fallocate_in fallocate;
	struct fuse_lseek_in lseek;
	struct fuse_copy_file_range_in copy;
	struct fuse_syncfs_in syncfs;
	unsigned char raw[FUSE_URING_OP_IN_OUT_SZ];
};

/* One request being decoded. args/args_len walk the payload as arguments are taken. */
struct msg {
	rf_session *se;
	rf_req *req; /* the request object, for the library's own use */
	rf_req *h;   /* its handle, for reply functions and callbacks */
	struct fuse_in_header ih;
	union op_in in;
	size_t op_len;	  /* bytes of the fixed struct that were present */
	const char *args; /* remaining arguments, trailing extensions excluded */
	size_t args_len;
	bool intr; /* an interrupt overtook the request: ops.interrupt is due */
};

/* The opcodes the kernel never expects an answer to: they are finished with a drop. */
static bool no_reply_op(uint32_t opcode)
{
	return opcode == FUSE_FORGET || opcode == FUSE_BATCH_FORGET || opcode == FUSE_INTERRUPT ||
	       opcode == FUSE_NOTIFY_REPLY;
}

static void refuse(struct msg *m, int err)
{
	rf_stat_inc(m->req->stats->own.bad_requests, 1);
	if (m->se->opts.debug)
		rf_log(RF_LOG_DEBUG, "ringfuse: <- %s #%" PRIu64 " node %" PRIu64 " refused: %s",
		       rf_opcode_name(m->ih.opcode), m->ih.unique, m->ih.nodeid, strerror(err));
	if (no_reply_op(m->ih.opcode))
		rf_req_drop(m->h);
	else
		rf_reply_err(m->h, err);
}

/* A request the kernel should never have sent: warn once per reason, count, answer err. */
#define BAD(m, err, why)                                                               \
	do {                                                                           \
		rf_log_once(RF_LOG_WARN, "ringfuse: malformed %s request refused: %s", \
			    rf_opcode_name((m)->ih.opcode), why);                      \
		refuse(m, err);                                                        \
		return;                                                                \
	} while (0)

#define TRACE(m, fmt, ...)                                                                     \
	do {                                                                                   \
		if ((m)->se->opts.debug)                                                       \
			rf_log(RF_LOG_DEBUG,                                                   \
			       "ringfuse: <- %s #%" PRIu64 " node %" PRIu64 " pid %" PRIu32    \
			       " " fmt,                                                        \
			       rf_opcode_name((m)->ih.opcode), (m)->ih.unique, (m)->ih.nodeid, \
			       (m)->ih.pid, __VA_ARGS__);                                      \
	} while (0)

/* Take the next NUL-terminated string off the payload; NULL if there is none. */
static const char *take_str(struct msg *m)
{
	const char *s = m->args;
	const char *nul;
	size_t n;

	if (!m->args_len)
		return NULL;
	nul = memchr(s, '\0', m->args_len);
	if (!nul)
		return NULL;
	n = (size_t)(nul - s) + 1;
	m->args += n;
	m->args_len -= n;
	return s;
}

/*
 * A directory entry name as the VFS hands it to a filesystem: non-empty, no '/', and "." or
 * ".." only where the kernel can legitimately ask for them (lookups for NFS export). A
 * filesystem passing names to openat() relies on this.
 */
static bool entry_name_ok(const char *s, bool dots_ok)
{
	if (!s || !*s || strchr(s, '/'))
		return false;
	if (!dots_ok && s[0] == '.' && (s[1] == '\0' || (s[1] == '.' && s[2] == '\0')))
		return false;
	return true;
}

static bool offset_ok(uint64_t off)
{
	return off <= (uint64_t)INT64_MAX;
}

static void do_lookup(struct msg *m)
{
	const char *name = take_str(m);

	if (!entry_name_ok(name, true))
		BAD(m, EIO, "bad name");
	TRACE(m, "name '%s'", name);
	if (!m->se->ops.lookup)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.lookup(m->h, m->ih.nodeid, name);
}

static void do_forget(struct msg *m)
{
	TRACE(m, "nlookup %" PRIu64, m->in.forget.nlookup);
	if (m->se->ops.forget) {
		m->se->ops.forget(m->h, m->ih.nodeid, m->in.forget.nlookup);
	} else if (m->se->ops.forget_multi) {
		struct rf_forget_data one = {m->ih.nodeid, m->in.forget.nlookup};

		m->se->ops.forget_multi(m->h, 1, &one);
	} else {
		rf_reply_none(m->h);
	}
}

/* Stand-in requests for the entries of a BATCH_FORGET: their rf_reply_none() goes nowhere. */
static int batch_send(rf_req *req, int error, size_t len)
{
	(void)req;
	(void)error;
	(void)len;
	return 0;
}

static void batch_drop(rf_req *req)
{
	(void)req;
}

static const struct rf_reply_ops batch_rops = {.send = batch_send, .drop = batch_drop};

static void do_batch_forget(struct msg *m)
{
	uint32_t count = m->in.batch_forget.count;
	rf_session *se = m->se;

	if (count > m->args_len / sizeof(struct fuse_forget_one))
		BAD(m, EIO, "entry count larger than the message");
	TRACE(m, "count %" PRIu32, count);
	/* The whole batch in one call, answered by the filesystem, where the entries can be
	 * handed over in place (transports' buffers are aligned; a fuzzed message may not be). */
	if (se->ops.forget_multi && (uintptr_t)m->args % _Alignof(struct rf_forget_data) == 0) {
		_Static_assert(sizeof(struct rf_forget_data) == sizeof(struct fuse_forget_one),
			       "rf_forget_data is fuse_forget_one");
		se->ops.forget_multi(m->h, count, (const struct rf_forget_data *)m->args);
		return;
	}
	if ((se->ops.forget || se->ops.forget_multi) && count) {
		/* Each forget callback answers its own stand-in before returning; the batch
		 * itself is dropped once, below. One stand-in for all (only its node id and
		 * state change): it is aligned like every request object. */
		RF_REQ_ALIGNED rf_req d = {
			.se = se,
			.rops = &batch_rops,
			.queue = m->req->queue,
			.opcode = FUSE_FORGET,
			.unique = m->req->unique,
			.ctx = m->req->ctx,
			.stats = m->req->stats,
			.t_start_ns = m->req->t_start_ns,
		};

		atomic_init(&d.interrupted_unique, 0);
		for (uint32_t i = 0; i < count; i++) {
			struct fuse_forget_one one;

			memcpy(&one, m->args + i * sizeof(one), sizeof(one));
			d.nodeid = one.nodeid;
			/* Generation 0 for ever: its handle is its address. */
			atomic_store_explicit(&d.life, RF_REQ_ACTIVE, memory_order_relaxed);
			if (se->ops.forget) {
				se->ops.forget(&d, one.nodeid, one.nlookup);
			} else {
				struct rf_forget_data fd = {one.nodeid, one.nlookup};

				se->ops.forget_multi(&d, 1, &fd);
			}
		}
	}
	rf_reply_none(m->h);
}

static void do_getattr(struct msg *m)
{
	struct rf_file_info fi = {0};
	struct rf_file_info *fip = NULL;

	if (m->in.getattr.getattr_flags & FUSE_GETATTR_FH) {
		fi.fh = m->in.getattr.fh;
		fi.fh_valid = 1;
		fip = &fi;
	}
	TRACE(m, "fh %s", fip ? "set" : "none");
	if (!m->se->ops.getattr)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.getattr(m->h, m->ih.nodeid, fip);
}

static bool nsec_ok(uint32_t ns)
{
	return ns < 1000000000u;
}

static void do_setattr(struct msg *m)
{
	const struct fuse_setattr_in *sa = &m->in.setattr;
	const int known = RF_SET_ATTR_MODE | RF_SET_ATTR_UID | RF_SET_ATTR_GID | RF_SET_ATTR_SIZE |
			  RF_SET_ATTR_ATIME | RF_SET_ATTR_MTIME | RF_SET_ATTR_ATIME_NOW |
			  RF_SET_ATTR_MTIME_NOW | RF_SET_ATTR_CTIME | RF_SET_ATTR_KILL_SUIDGID;
	struct rf_file_info fi = {0};
	struct rf_file_info *fip = NULL;
	struct stat st;
	int to_set = (int)(sa->valid & (uint32_t)known);

	if ((to_set & RF_SET_ATTR_SIZE) && !offset_ok(sa->size))
		BAD(m, EINVAL, "negative size");
	if (!nsec_ok(sa->atimensec) || !nsec_ok(sa->mtimensec) || !nsec_ok(sa->ctimensec))
		BAD(m, EIO, "nanoseconds out of range");
	memset(&st, 0, sizeof(st));
	st.st_mode = sa->mode;
	st.st_uid = sa->uid;
	st.st_gid = sa->gid;
	st.st_size = (off_t)sa->size;
	st.st_atim.tv_sec = (time_t)sa->atime;
	st.st_atim.tv_nsec = sa->atimensec;
	st.st_mtim.tv_sec = (time_t)sa->mtime;
	st.st_mtim.tv_nsec = sa->mtimensec;
	st.st_ctim.tv_sec = (time_t)sa->ctime;
	st.st_ctim.tv_nsec = sa->ctimensec;
	if (sa->valid & FATTR_FH) {
		fi.fh = sa->fh;
		fi.fh_valid = 1;
		if (sa->valid & FATTR_LOCKOWNER)
			fi.lock_owner = sa->lock_owner;
		fip = &fi;
	}
	TRACE(m, "valid %#x mode %#o uid %u gid %u size %" PRIu64, (unsigned int)to_set,
	      (unsigned int)sa->mode, (unsigned int)sa->uid, (unsigned int)sa->gid, sa->size);
	if (!m->se->ops.setattr)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.setattr(m->h, m->ih.nodeid, &st, to_set, fip);
}

static void do_readlink(struct msg *m)
{
	TRACE(m, "%s", "");
	if (!m->se->ops.readlink)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.readlink(m->h, m->ih.nodeid);
}

static void do_symlink(struct msg *m)
{
	const char *name = take_str(m);
	const char *link = take_str(m);

	if (!entry_name_ok(name, false))
		BAD(m, EIO, "bad name");
	if (!link || !*link)
		BAD(m, EIO, "bad link target");
	TRACE(m, "name '%s' target '%s'", name, link);
	if (!m->se->ops.symlink)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.symlink(m->h, link, m->ih.nodeid, name);
}

static void do_mknod(struct msg *m)
{
	const char *name = take_str(m);

	if (!entry_name_ok(name, false))
		BAD(m, EIO, "bad name");
	m->req->ctx.umask = m->in.mknod.umask;
	TRACE(m, "name '%s' mode %#o rdev %#x umask %#o", name, (unsigned int)m->in.mknod.mode,
	      (unsigned int)m->in.mknod.rdev, (unsigned int)m->in.mknod.umask);
	if (!m->se->ops.mknod)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.mknod(m->h, m->ih.nodeid, name, m->in.mknod.mode,
				 (dev_t)m->in.mknod.rdev);
}

static void do_mkdir(struct msg *m)
{
	const char *name = take_str(m);

	if (!entry_name_ok(name, false))
		BAD(m, EIO, "bad name");
	m->req->ctx.umask = m->in.mkdir.umask;
	TRACE(m, "name '%s' mode %#o umask %#o", name, (unsigned int)m->in.mkdir.mode,
	      (unsigned int)m->in.mkdir.umask);
	if (!m->se->ops.mkdir)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.mkdir(m->h, m->ih.nodeid, name, m->in.mkdir.mode);
}

static void do_unlink(struct msg *m)
{
	const char *name = take_str(m);
	void (*op)(rf_req *, rf_ino, const char *) =
		m->ih.opcode == FUSE_UNLINK ? m->se->ops.unlink : m->se->ops.rmdir;

	if (!entry_name_ok(name, false))
		BAD(m, EIO, "bad name");
	TRACE(m, "name '%s'", name);
	if (!op)
		rf_reply_err(m->h, ENOSYS);
	else
		op(m->h, m->ih.nodeid, name);
}

static void do_rename(struct msg *m)
{
	bool two = m->ih.opcode == FUSE_RENAME2;
	uint64_t newdir = two ? m->in.rename2.newdir : m->in.rename.newdir;
	unsigned int flags = two ? m->in.rename2.flags : 0;
	const char *name = take_str(m);
	const char *newname = take_str(m);

	if (!entry_name_ok(name, false) || !entry_name_ok(newname, false))
		BAD(m, EIO, "bad name");
	TRACE(m, "name '%s' newdir %" PRIu64 " newname '%s' flags %#x", name, newdir, newname,
	      flags);
	if (!m->se->ops.rename)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.rename(m->h, m->ih.nodeid, name, newdir, newname, flags);
}

static void do_link(struct msg *m)
{
	const char *newname = take_str(m);

	if (!entry_name_ok(newname, false))
		BAD(m, EIO, "bad name");
	TRACE(m, "oldnode %" PRIu64 " newname '%s'", m->in.link.oldnodeid, newname);
	if (!m->se->ops.link)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.link(m->h, m->in.link.oldnodeid, m->ih.nodeid, newname);
}

/* OPEN and OPENDIR: without an op every open succeeds with fh 0, as in libfuse. */
static void do_open(struct msg *m)
{
	struct rf_file_info fi = {0};
	void (*op)(rf_req *, rf_ino, struct rf_file_info *) =
		m->ih.opcode == FUSE_OPEN ? m->se->ops.open : m->se->ops.opendir;

	fi.flags = (int)m->in.open.flags;
	TRACE(m, "flags %#o", (unsigned int)fi.flags);
	if (!op)
		rf_reply_open(m->h, &fi);
	else
		op(m->h, m->ih.nodeid, &fi);
}

/* READ, READDIR, READDIRPLUS. */
static void do_read(struct msg *m)
{
	const struct fuse_read_in *ri = &m->in.read;
	struct rf_file_info fi = {0};
	size_t size = ri->size;
	void (*op)(rf_req *, rf_ino, size_t, off_t, struct rf_file_info *);

	/* Directory offsets are the filesystem's own cookies; file offsets are positions. */
	if (m->ih.opcode == FUSE_READ && !offset_ok(ri->offset))
		BAD(m, EINVAL, "negative offset");
	/* The kernel never asks for more than fits its buffer, and ours is as large. */
	if (size > m->req->out_cap)
		size = m->req->out_cap;
	fi.fh = ri->fh;
	fi.flags = (int)ri->flags;
	if (m->ih.opcode == FUSE_READ && (ri->read_flags & FUSE_READ_LOCKOWNER))
		fi.lock_owner = ri->lock_owner;
	switch (m->ih.opcode) {
	case FUSE_READ:
		op = m->se->ops.read;
		break;
	case FUSE_READDIR:
		op = m->se->ops.readdir;
		break;
	default:
		op = m->se->ops.readdirplus;
		break;
	}
	TRACE(m, "fh %" PRIu64 " size %zu off %" PRIu64, ri->fh, size, ri->offset);
	if (!op)
		rf_reply_err(m->h, ENOSYS);
	else
		op(m->h, m->ih.nodeid, size, (off_t)ri->offset, &fi);
}

static void do_write(struct msg *m)
{
	const struct fuse_write_in *wi = &m->in.write;
	uint32_t max_write = m->se->conn.max_write ? m->se->conn.max_write : RF_DEFAULT_MAX_WRITE;
	struct rf_file_info fi = {0};

	if (wi->size != m->args_len)
		BAD(m, EIO, "write size does not match the data");
	if (wi->size > max_write)
		BAD(m, EIO, "write larger than max_write");
	if (!offset_ok(wi->offset))
		BAD(m, EINVAL, "negative offset");
	if (wi->offset > (uint64_t)INT64_MAX - wi->size)
		BAD(m, EFBIG, "write past the largest offset");
	fi.fh = wi->fh;
	fi.flags = (int)wi->flags;
	fi.write_flags = wi->write_flags;
	if (wi->write_flags & FUSE_WRITE_LOCKOWNER)
		fi.lock_owner = wi->lock_owner;
	rf_stat_inc(m->req->stats->own.bytes_in, wi->size);
	TRACE(m, "fh %" PRIu64 " size %" PRIu32 " off %" PRIu64 " flags %#x", wi->fh, wi->size,
	      wi->offset, (unsigned int)wi->write_flags);
	if (!m->se->ops.write)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.write(m->h, m->ih.nodeid, m->args, wi->size, (off_t)wi->offset, &fi);
}

static void do_statfs(struct msg *m)
{
	TRACE(m, "%s", "");
	/* A remount (rf_remount()) ends with a statfs: once it is answered, the server acts on
	 * the new flags without waiting for the mount table watch to wake up. */
	rf_mount_flags_refresh(m->se, true);
	if (m->se->ops.statfs) {
		m->se->ops.statfs(m->h, m->ih.nodeid);
	} else {
		/* Like libfuse: enough for df and for path length limits to work. */
		struct statvfs st = {.f_bsize = 512, .f_frsize = 512, .f_namemax = 255};

		rf_reply_statfs(m->h, &st);
	}
}

/* RELEASE and RELEASEDIR: nothing to do without an op, so that is a success. */
static void do_release(struct msg *m)
{
	const struct fuse_release_in *ri = &m->in.release;
	struct rf_file_info fi = {0};
	void (*op)(rf_req *, rf_ino, struct rf_file_info *) =
		m->ih.opcode == FUSE_RELEASE ? m->se->ops.release : m->se->ops.releasedir;

	fi.fh = ri->fh;
	fi.flags = (int)ri->flags;
	fi.lock_owner = ri->lock_owner;
	fi.flush = (ri->release_flags & FUSE_RELEASE_FLUSH) ? 1 : 0;
	TRACE(m, "fh %" PRIu64 " flags %#o release_flags %#x", ri->fh, (unsigned int)ri->flags,
	      (unsigned int)ri->release_flags);
	if (!op)
		rf_reply_err(m->h, 0);
	else
		op(m->h, m->ih.nodeid, &fi);
}

/* FSYNC and FSYNCDIR. */
static void do_fsync(struct msg *m)
{
	struct rf_file_info fi = {0};
	int datasync = (m->in.fsync.fsync_flags & FUSE_FSYNC_FDATASYNC) ? 1 : 0;
	void (*op)(rf_req *, rf_ino, int, struct rf_file_info *) =
		m->ih.opcode == FUSE_FSYNC ? m->se->ops.fsync : m->se->ops.fsyncdir;

	fi.fh = m->in.fsync.fh;
	TRACE(m, "fh %" PRIu64 " datasync %d", fi.fh, datasync);
	if (!op)
		rf_reply_err(m->h, ENOSYS);
	else
		op(m->h, m->ih.nodeid, datasync, &fi);
}

static void do_flush(struct msg *m)
{
	struct rf_file_info fi = {0};

	fi.fh = m->in.flush.fh;
	fi.lock_owner = m->in.flush.lock_owner;
	fi.flush = 1;
	TRACE(m, "fh %" PRIu64, fi.fh);
	if (!m->se->ops.flush)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.flush(m->h, m->ih.nodeid, &fi);
}

static void do_setxattr(struct msg *m)
{
	uint32_t size = m->in.setxattr.size;
	const char *name = take_str(m);

	if (!name || !*name)
		BAD(m, EIO, "bad attribute name");
	if (m->args_len != size)
		BAD(m, EIO, "value size does not match the data");
	TRACE(m, "name '%s' size %" PRIu32 " flags %#x", name, size,
	      (unsigned int)m->in.setxattr.flags);
	if (!m->se->ops.setxattr)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.setxattr(m->h, m->ih.nodeid, name, m->args, size,
				    (int)m->in.setxattr.flags);
}

static void do_getxattr(struct msg *m)
{
	const char *name = take_str(m);

	if (!name || !*name)
		BAD(m, EIO, "bad attribute name");
	TRACE(m, "name '%s' size %" PRIu32, name, m->in.getxattr.size);
	if (!m->se->ops.getxattr)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.getxattr(m->h, m->ih.nodeid, name, m->in.getxattr.size);
}

static void do_listxattr(struct msg *m)
{
	TRACE(m, "size %" PRIu32, m->in.getxattr.size);
	if (!m->se->ops.listxattr)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.listxattr(m->h, m->ih.nodeid, m->in.getxattr.size);
}

static void do_removexattr(struct msg *m)
{
	const char *name = take_str(m);

	if (!name || !*name)
		BAD(m, EIO, "bad attribute name");
	TRACE(m, "name '%s'", name);
	if (!m->se->ops.removexattr)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.removexattr(m->h, m->ih.nodeid, name);
}

static void do_init(struct msg *m)
{
	rf_session *se = m->se;
	const struct fuse_init_in *in = &m->in.init;
	int n;

	if (atomic_load(&se->initialized))
		BAD(m, EIO, "INIT after the connection was set up");
	if (m->req->out_cap < sizeof(struct fuse_init_out))
		BAD(m, EIO, "reply area too small for INIT");
	TRACE(m, "protocol %" PRIu32 ".%" PRIu32 " flags %#" PRIx32 " flags2 %#" PRIx32, in->major,
	      in->minor, in->flags, in->flags2);
	/* in is the zero-padded local copy, so a short INIT from an old kernel reads as zeros. */
	n = rf_init_negotiate(se, in, m->op_len, m->req->out);
	if (n < 0) {
		rf_reply_err(m->h, -n);
		return;
	}
	rf_reply_finish(m->h, 0, (size_t)n);
	/* Only now may the transport start: io-uring registration needs the reply processed. */
	rf_session_init_done(se);
}

static void do_access(struct msg *m)
{
	TRACE(m, "mask %#o", (unsigned int)m->in.access.mask);
	if (!m->se->ops.access)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.access(m->h, m->ih.nodeid, (int)m->in.access.mask);
}

static void do_create(struct msg *m)
{
	const struct fuse_create_in *ci = &m->in.create;
	struct rf_file_info fi = {0};
	const char *name = take_str(m);

	if (!entry_name_ok(name, false))
		BAD(m, EIO, "bad name");
	fi.flags = (int)ci->flags;
	m->req->ctx.umask = ci->umask;
	TRACE(m, "name '%s' flags %#o mode %#o umask %#o", name, (unsigned int)ci->flags,
	      (unsigned int)ci->mode, (unsigned int)ci->umask);
	if (!m->se->ops.create)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.create(m->h, m->ih.nodeid, name, ci->mode, &fi);
}

static void do_tmpfile(struct msg *m)
{
	const struct fuse_create_in *ci = &m->in.create;
	struct rf_file_info fi = {0};

	/* The kernel names the dentry "/"; a filesystem has no use for it. */
	fi.flags = (int)ci->flags;
	m->req->ctx.umask = ci->umask;
	TRACE(m, "flags %#o mode %#o umask %#o", (unsigned int)ci->flags, (unsigned int)ci->mode,
	      (unsigned int)ci->umask);
	if (!m->se->ops.tmpfile)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.tmpfile(m->h, m->ih.nodeid, ci->mode, &fi);
}

static void do_interrupt(struct msg *m)
{
	rf_session *se = m->se;
	rf_req *target;

	TRACE(m, "target #%" PRIu64, m->in.interrupt.unique);
	/*
	 * Marks the target, so rf_req_interrupted() sees it even without an interrupt op. A
	 * target not in a handler yet (an interrupt overtakes its request on the ring, or in
	 * another reader's hands) is marked when it begins: never answer EAGAIN, which the
	 * kernel only honours on the fd holding the target.
	 */
	target = rf_session_interrupt(se, m->in.interrupt.unique);
	if (target && se->ops.interrupt)
		se->ops.interrupt(target, se->userdata);
	rf_req_drop(m->h);
}

static void do_destroy(struct msg *m)
{
	rf_session *se = m->se;

	TRACE(m, "%s", "");
	if (!__atomic_exchange_n(&se->destroyed, true, __ATOMIC_ACQ_REL) && se->ops.destroy)
		se->ops.destroy(se->userdata);
	rf_reply_err(m->h, 0);
	rf_session_conn_lost(se);
}

static void do_fallocate(struct msg *m)
{
	const struct fuse_fallocate_in *fa = &m->in.fallocate;
	struct rf_file_info fi = {0};

	if (!offset_ok(fa->offset) || !offset_ok(fa->length) || fa->length == 0)
		BAD(m, EINVAL, "bad range");
	if (fa->offset > (uint64_t)INT64_MAX - fa->length)
		BAD(m, EFBIG, "range past the largest offset");
	fi.fh = fa->fh;
	TRACE(m, "fh %" PRIu64 " mode %#x off %" PRIu64 " len %" PRIu64, fa->fh,
	      (unsigned int)fa->mode, fa->offset, fa->length);
	if (!m->se->ops.fallocate)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.fallocate(m->h, m->ih.nodeid, (int)fa->mode, (off_t)fa->offset,
				     (off_t)fa->length, &fi);
}

static void do_lseek(struct msg *m)
{
	const struct fuse_lseek_in *li = &m->in.lseek;
	struct rf_file_info fi = {0};

	fi.fh = li->fh;
	TRACE(m, "fh %" PRIu64 " off %" PRId64 " whence %" PRIu32, li->fh, (int64_t)li->offset,
	      li->whence);
	if (!m->se->ops.lseek)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.lseek(m->h, m->ih.nodeid, (off_t)li->offset, (int)li->whence, &fi);
}

/* COPY_FILE_RANGE and COPY_FILE_RANGE_64; rf_reply_write() picks the reply layout. */
static void do_copy_file_range(struct msg *m)
{
	const struct fuse_copy_file_range_in *ci = &m->in.copy;
	struct rf_file_info fi_in = {0}, fi_out = {0};
	uint64_t len = ci->len;

	if (!offset_ok(ci->off_in) || !offset_ok(ci->off_out))
		BAD(m, EINVAL, "negative offset");
	/* A shorter copy is a valid answer: keep the count within what the reply (32 bits for
	 * the old opcode, as the kernel asks it) and size_t can carry. */
	if (m->ih.opcode == FUSE_COPY_FILE_RANGE &&
	    len > (UINT32_MAX & ~(uint64_t)(RF_PAGE_SIZE - 1)))
		len = UINT32_MAX & ~(uint64_t)(RF_PAGE_SIZE - 1);
#if SIZE_MAX < UINT64_MAX
	if (len > SIZE_MAX)
		len = SIZE_MAX;
#endif
	fi_in.fh = ci->fh_in;
	fi_out.fh = ci->fh_out;
	TRACE(m, "off_in %" PRIu64 " node_out %" PRIu64 " off_out %" PRIu64 " len %" PRIu64,
	      ci->off_in, ci->nodeid_out, ci->off_out, ci->len);
	if (!m->se->ops.copy_file_range)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.copy_file_range(m->h, m->ih.nodeid, (off_t)ci->off_in, &fi_in,
					   ci->nodeid_out, (off_t)ci->off_out, &fi_out, (size_t)len,
					   (int)ci->flags);
}

static void do_syncfs(struct msg *m)
{
	TRACE(m, "%s", "");
	if (!m->se->ops.syncfs)
		rf_reply_err(m->h, ENOSYS);
	else
		m->se->ops.syncfs(m->h, m->ih.nodeid);
}

static void do_enosys(struct msg *m)
{
	TRACE(m, "%s", "no such operation: ENOSYS");
	rf_reply_err(m->h, ENOSYS);
}

static void do_drop(struct msg *m)
{
	TRACE(m, "%s", "dropped");
	rf_reply_none(m->h);
}

/* Bytes of the fixed struct a request must carry. */
static size_t op_in_need(const rf_session *se, uint32_t opcode)
{
	if (opcode == FUSE_SETXATTR && (se->conn.want & RF_CAP_SETXATTR_EXT))
		return sizeof(struct fuse_setxattr_in);
	/* Kernels before 7.36 sent only major, minor, max_readahead and flags. */
	if (opcode == FUSE_INIT)
		return offsetof(struct fuse_init_in, flags2);
	return rf_op_in_size(opcode);
}

typedef void (*op_handler)(struct msg *m);

/* Opcodes missing here (locks, BMAP, IOCTL, POLL, DAX mappings, STATX, CUSE, anything newer)
 * are answered ENOSYS without being decoded. */
static const op_handler handlers[] = {
	[FUSE_LOOKUP] = do_lookup,
	[FUSE_FORGET] = do_forget,
	[FUSE_GETATTR] = do_getattr,
	[FUSE_SETATTR] = do_setattr,
	[FUSE_READLINK] = do_readlink,
	[FUSE_SYMLINK] = do_symlink,
	[FUSE_MKNOD] = do_mknod,
	[FUSE_MKDIR] = do_mkdir,
	[FUSE_UNLINK] = do_unlink,
	[FUSE_RMDIR] = do_unlink,
	[FUSE_RENAME] = do_rename,
	[FUSE_LINK] = do_link,
	[FUSE_OPEN] = do_open,
	[FUSE_READ] = do_read,
	[FUSE_WRITE] = do_write,
	[FUSE_STATFS] = do_statfs,
	[FUSE_RELEASE] = do_release,
	[FUSE_FSYNC] = do_fsync,
	[FUSE_SETXATTR] = do_setxattr,
	[FUSE_GETXATTR] = do_getxattr,
	[FUSE_LISTXATTR] = do_listxattr,
	[FUSE_REMOVEXATTR] = do_removexattr,
	[FUSE_FLUSH] = do_flush,
	[FUSE_INIT] = do_init,
	[FUSE_OPENDIR] = do_open,
	[FUSE_READDIR] = do_read,
	[FUSE_RELEASEDIR] = do_release,
	[FUSE_FSYNCDIR] = do_fsync,
	[FUSE_ACCESS] = do_access,
	[FUSE_CREATE] = do_create,
	[FUSE_INTERRUPT] = do_interrupt,
	[FUSE_DESTROY] = do_destroy,
	/* No notify_retrieve API yet: the data has nobody to go to. */
	[FUSE_NOTIFY_REPLY] = do_drop,
	[FUSE_BATCH_FORGET] = do_batch_forget,
	[FUSE_FALLOCATE] = do_fallocate,
	[FUSE_READDIRPLUS] = do_read,
	[FUSE_RENAME2] = do_rename,
	[FUSE_LSEEK] = do_lseek,
	[FUSE_COPY_FILE_RANGE] = do_copy_file_range,
	[FUSE_SYNCFS] = do_syncfs,
	[FUSE_TMPFILE] = do_tmpfile,
	[FUSE_COPY_FILE_RANGE_64] = do_copy_file_range,
};

static op_handler handler_of(uint32_t opcode)
{
	return opcode < ARRAY_SIZE(handlers) ? handlers[opcode] : NULL;
}

/* The common path of both layouts; ih has been copied and begun already. */
static void dispatch(struct msg *m, const void *op_in, size_t op_len, const void *payload,
		     size_t payload_len)
{
	rf_session *se = m->se;
	rf_req *req = m->req;
	size_t ext = (size_t)m->ih.total_extlen * 8;
	size_t keep = op_len < sizeof(m->in) ? op_len : sizeof(m->in);
	op_handler handler;

	if (keep)
		memcpy(&m->in, op_in, keep);
	memset(m->in.raw + keep, 0, sizeof(m->in) - keep);
	m->op_len = op_len;

	if (payload_len && !payload)
		BAD(m, EIO, "payload missing");
	/* Extensions (security context, supplementary groups) trail the arguments. */
	if (ext > payload_len)
		BAD(m, EIO, "extensions larger than the message");
	/* Never hand a handler a NULL buffer, even for an empty write. */
	m->args = payload ? payload : "";
	m->args_len = payload_len - ext;

	if (m->ih.opcode != FUSE_INIT && !atomic_load(&se->initialized))
		BAD(m, EIO, "request before INIT");
	if (__atomic_load_n(&se->destroyed, __ATOMIC_ACQUIRE))
		BAD(m, EIO, "request after DESTROY");
	handler = handler_of(m->ih.opcode);
	if (!handler)
		handler = do_enosys;
	else if (op_len < op_in_need(se, m->ih.opcode))
		BAD(m, EIO, "argument struct truncated");

	if (m->intr && se->ops.interrupt)
		se->ops.interrupt(m->h, se->userdata);
	handler(m);

	/* The slot cannot be reused before we return, so ACTIVE here means "answered later". */
	if (rf_req_state(req) == RF_REQ_ACTIVE)
		rf_stat_inc(req->stats->own.deferred, 1);
	rf_stat_inc(req->stats->own.handler_ns, rf_now_ns() - req->t_start_ns);
}

/* RINGFUSE_FAULT=read_delay_ms:N (fault.c): let interrupts overtake READs. */
static inline void fault_delay(uint32_t opcode)
{
	if (__builtin_expect(rf_faults.read_delay_ms != 0, 0) && opcode == FUSE_READ)
		usleep(rf_faults.read_delay_ms * 1000u);
}

void rf_dispatch_split(rf_session *se, rf_req *req, const struct fuse_in_header *ih,
		       const void *op_in, size_t op_in_size, const void *payload,
		       size_t payload_len)
{
	struct msg m;

	fault_delay(ih->opcode);
	m.se = se;
	m.req = req;
	memcpy(&m.ih, ih, sizeof(m.ih));
	m.h = rf_req_begin(req, se, &m.ih);
	m.intr = rf_intr_take(se, req);
	if (!op_in)
		op_in_size = 0;
	dispatch(&m, op_in, op_in_size, payload, payload_len);
}

void rf_dispatch_msg(rf_session *se, rf_req *req, const void *msg, size_t len)
{
	const char *body;
	size_t body_len, op_len;
	struct msg m;

	m.se = se;
	m.req = req;
	memset(&m.ih, 0, sizeof(m.ih));
	if (msg && len)
		memcpy(&m.ih, msg, len < sizeof(m.ih) ? len : sizeof(m.ih));
	fault_delay(m.ih.opcode);
	m.h = rf_req_begin(req, se, &m.ih);
	m.intr = rf_intr_take(se, req);

	if (len < sizeof(m.ih)) {
		rf_log_once(RF_LOG_WARN,
			    "ringfuse: request of %zu bytes is shorter than its header", len);
		/* Without a whole unique there is nobody to answer: only drop the slot. */
		if (len < offsetof(struct fuse_in_header, unique) + sizeof(m.ih.unique)) {
			rf_stat_inc(req->stats->own.bad_requests, 1);
			rf_req_drop(m.h);
			return;
		}
		refuse(&m, EIO);
		return;
	}
	if (m.ih.len != len) {
		rf_log_once(RF_LOG_WARN,
			    "ringfuse: request length %" PRIu32
			    " does not match the %zu bytes read",
			    m.ih.len, len);
		refuse(&m, EIO);
		return;
	}
	body = (const char *)msg + sizeof(m.ih);
	body_len = len - sizeof(m.ih);
	if (m.ih.opcode == FUSE_INIT)
		op_len = sizeof(struct fuse_init_in);
	else if (m.ih.opcode == FUSE_SETXATTR)
		op_len = op_in_need(se, FUSE_SETXATTR);
	else
		op_len = rf_op_in_size(m.ih.opcode);
	/* A short fixed struct is passed on as short; dispatch() refuses it. */
	if (op_len > body_len)
		op_len = body_len;
	dispatch(&m, body, op_len, body + op_len, body_len - op_len);
}
