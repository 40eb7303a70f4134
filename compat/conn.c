/*
 * INIT through libfuse 3.14's eyes: fuse_conn_info filled the way libfuse fills it before the
 * filesystem's init(), and the filesystem's choices taken back into ringfuse's negotiation.
 * Also fuse_parse_conn_info_opts() and fuse_apply_conn_info_opts().
 *
 * libfuse numbers its FUSE_CAP_* bits on its own: most equal the kernel's INIT flags, some do
 * not (POSIX_ACL and HANDLE_KILLPRIV are swapped), some have no kernel flag at all (splice,
 * EXPIRE_ONLY: features of the library). The table below maps one to the other and records
 * which wants libfuse 3.14 really sends: it asks filesystems about PARALLEL_DIROPS,
 * HANDLE_KILLPRIV and IOCTL_DIR (they are in want by default) but never tells the kernel, so
 * neither do we: the kernel then behaves for these filesystems as it always has.
 *
 * What ringfuse adds to the reply on its own: BIG_WRITES and MAX_PAGES (as libfuse does),
 * FUSE_OVER_IO_URING when the io-uring transport is chosen, and a max_background sized for its
 * queues unless the filesystem sets one.
 */
#include "compat.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct cap_map {
	unsigned int cap; /* FUSE_CAP_* */
	uint64_t kernel;  /* RF_CAP_* (the kernel's INIT flag), 0 if none */
	bool sent;	  /* libfuse 3.14 tells the kernel when the filesystem wants it */
};

static const struct cap_map caps[] = {
	{FUSE_CAP_ASYNC_READ, RF_CAP_ASYNC_READ, true},
	{FUSE_CAP_POSIX_LOCKS, RF_CAP_POSIX_LOCKS, true},
	{FUSE_CAP_ATOMIC_O_TRUNC, RF_CAP_ATOMIC_O_TRUNC, true},
	{FUSE_CAP_EXPORT_SUPPORT, RF_CAP_EXPORT_SUPPORT, true},
	{FUSE_CAP_DONT_MASK, RF_CAP_DONT_MASK, true},
	{FUSE_CAP_FLOCK_LOCKS, RF_CAP_FLOCK_LOCKS, true},
	{FUSE_CAP_AUTO_INVAL_DATA, RF_CAP_AUTO_INVAL_DATA, true},
	{FUSE_CAP_READDIRPLUS, RF_CAP_READDIRPLUS, true},
	{FUSE_CAP_READDIRPLUS_AUTO, RF_CAP_READDIRPLUS_AUTO, true},
	{FUSE_CAP_ASYNC_DIO, RF_CAP_ASYNC_DIO, true},
	{FUSE_CAP_WRITEBACK_CACHE, RF_CAP_WRITEBACK_CACHE, true},
	{FUSE_CAP_NO_OPEN_SUPPORT, RF_CAP_NO_OPEN_SUPPORT, false},
	{FUSE_CAP_PARALLEL_DIROPS, RF_CAP_PARALLEL_DIROPS, false},
	{FUSE_CAP_POSIX_ACL, RF_CAP_POSIX_ACL, true},
	{FUSE_CAP_HANDLE_KILLPRIV, RF_CAP_HANDLE_KILLPRIV, false},
	{FUSE_CAP_CACHE_SYMLINKS, RF_CAP_CACHE_SYMLINKS, true},
	{FUSE_CAP_NO_OPENDIR_SUPPORT, RF_CAP_NO_OPENDIR_SUPPORT, false},
	{FUSE_CAP_EXPLICIT_INVAL_DATA, RF_CAP_EXPLICIT_INVAL_DATA, true},
};

/* Offered by libfuse whatever the kernel says, from these protocol versions on. */
#define SPLICE_MINOR	  14
#define IOCTL_DIR_MINOR	  18
#define EXPIRE_ONLY_MINOR 38

/* Locks are the filesystem's only if ringfuse delivers lock requests, which it does not yet. */
static const unsigned int lock_caps = FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS;

static unsigned int capable_of(const struct rf_conn_info *rc)
{
	unsigned int capable = 0;

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (rc->capable & caps[i].kernel)
			capable |= caps[i].cap;
	/* Splicing is the library's business: ours copies, with the same result. */
	if (rc->proto_minor >= SPLICE_MINOR)
		capable |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE | FUSE_CAP_SPLICE_READ;
	if (rc->proto_minor >= IOCTL_DIR_MINOR)
		capable |= FUSE_CAP_IOCTL_DIR;
	if (rc->proto_minor >= EXPIRE_ONLY_MINOR)
		capable |= FUSE_CAP_EXPIRE_ONLY;
	return capable;
}

/* What libfuse 3.14 puts in want before calling init(). */
static unsigned int default_want(const struct fuse_session *se, unsigned int capable)
{
	const struct fuse_lowlevel_ops *op = &se->op;
	unsigned int want = FUSE_CAP_ASYNC_READ | FUSE_CAP_PARALLEL_DIROPS |
			    FUSE_CAP_AUTO_INVAL_DATA | FUSE_CAP_HANDLE_KILLPRIV |
			    FUSE_CAP_ASYNC_DIO | FUSE_CAP_IOCTL_DIR | FUSE_CAP_ATOMIC_O_TRUNC;

	if (op->write_buf)
		want |= FUSE_CAP_SPLICE_READ;
	if (op->getlk && op->setlk)
		want |= FUSE_CAP_POSIX_LOCKS;
	if (op->flock)
		want |= FUSE_CAP_FLOCK_LOCKS;
	if (op->readdirplus)
		want |= FUSE_CAP_READDIRPLUS;
	if (op->readdirplus && op->readdir)
		want |= FUSE_CAP_READDIRPLUS_AUTO;
	return want & capable;
}

static uint64_t kernel_want(unsigned int want)
{
	uint64_t flags = 0;

	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
		if (caps[i].sent && (want & caps[i].cap))
			flags |= caps[i].kernel;
	return flags;
}

static void refuse_init(struct fuse_session *se)
{
	atomic_store(&se->error, -EPROTO);
	fuse_session_exit(se);
}

void compat_conn_init(struct fuse_session *se, struct rf_conn_info *rc)
{
	struct fuse_conn_info *c = &se->conn;
	uint64_t library = rc->want & (RF_CAP_BIG_WRITES | RF_CAP_MAX_PAGES | RF_CAP_OVER_IO_URING);
	unsigned int unsupported;

	memset(c, 0, sizeof(*c));
	c->proto_major = rc->proto_major;
	c->proto_minor = rc->proto_minor;
	c->max_write = rc->max_write;
	c->max_readahead = rc->max_readahead;
	c->capable = capable_of(rc);
	c->want = default_want(se, c->capable);
	c->time_gran = 1;

	se->got_init = true;
	if (se->op.init)
		se->op.init(se->userdata, c);

	unsupported = c->want & ~c->capable;
	if (unsupported) {
		fuse_log(FUSE_LOG_ERR,
			 "fuse: the filesystem wants capabilities %#x the kernel does not offer; "
			 "ending the session\n",
			 unsupported);
		refuse_init(se);
	}
	if (c->max_read != se->max_read) {
		fuse_log(FUSE_LOG_ERR,
			 "fuse: init() and the mount options disagree on max_read (%u vs %u); "
			 "ending the session\n",
			 c->max_read, se->max_read);
		refuse_init(se);
	}
	if (c->want & lock_caps)
		compat_unsupported("locking through the filesystem (FUSE_CAP_POSIX_LOCKS, "
				   "FUSE_CAP_FLOCK_LOCKS)",
				   "the kernel keeps locks locally");

	rc->want = kernel_want(c->want & c->capable & ~lock_caps) | library;
	rc->max_write = c->max_write;
	rc->max_readahead = c->max_readahead;
	rc->time_gran = c->time_gran;
	if (c->max_background) {
		unsigned int bg = c->max_background < 65535 ? c->max_background : 65535;
		unsigned int cong = c->congestion_threshold;

		if (cong > bg)
			cong = bg;
		if (!cong)
			cong = bg * 3 / 4;
		rc->max_background = (uint16_t)bg;
		rc->congestion_threshold = (uint16_t)cong;
	}
}

/* ---- fuse_parse_conn_info_opts(), fuse_apply_conn_info_opts() ---- */

struct fuse_conn_info_opts {
	int set_max_write, set_max_readahead, set_max_background, set_congestion_threshold;
	int set_time_gran;
	unsigned int max_write, max_readahead, max_background, congestion_threshold, time_gran;
	int async_read, sync_read, atomic_o_trunc, no_remote_posix_lock, no_remote_flock;
	int splice_write, no_splice_write, splice_move, no_splice_move, splice_read, no_splice_read;
	int auto_inval_data, no_auto_inval_data, no_readdirplus, no_readdirplus_auto;
	int async_dio, no_async_dio, writeback_cache, no_writeback_cache;
};

#define CONN_OPT(t, field, v)                                     \
	{                                                         \
		t, offsetof(struct fuse_conn_info_opts, field), v \
	}

static const struct fuse_opt conn_opts_table[] = {
	CONN_OPT("max_write=%u", max_write, 0),
	CONN_OPT("max_write=", set_max_write, 1),
	CONN_OPT("max_readahead=%u", max_readahead, 0),
	CONN_OPT("max_readahead=", set_max_readahead, 1),
	CONN_OPT("max_background=%u", max_background, 0),
	CONN_OPT("max_background=", set_max_background, 1),
	CONN_OPT("congestion_threshold=%u", congestion_threshold, 0),
	CONN_OPT("congestion_threshold=", set_congestion_threshold, 1),
	CONN_OPT("time_gran=%u", time_gran, 0),
	CONN_OPT("time_gran=", set_time_gran, 1),
	CONN_OPT("async_read", async_read, 1),
	CONN_OPT("sync_read", sync_read, 1),
	CONN_OPT("atomic_o_trunc", atomic_o_trunc, 1),
	CONN_OPT("no_remote_lock", no_remote_posix_lock, 1),
	CONN_OPT("no_remote_lock", no_remote_flock, 1),
	CONN_OPT("no_remote_flock", no_remote_flock, 1),
	CONN_OPT("no_remote_posix_lock", no_remote_posix_lock, 1),
	CONN_OPT("splice_write", splice_write, 1),
	CONN_OPT("no_splice_write", no_splice_write, 1),
	CONN_OPT("splice_move", splice_move, 1),
	CONN_OPT("no_splice_move", no_splice_move, 1),
	CONN_OPT("splice_read", splice_read, 1),
	CONN_OPT("no_splice_read", no_splice_read, 1),
	CONN_OPT("auto_inval_data", auto_inval_data, 1),
	CONN_OPT("no_auto_inval_data", no_auto_inval_data, 1),
	CONN_OPT("readdirplus=no", no_readdirplus, 1),
	CONN_OPT("readdirplus=yes", no_readdirplus, 0),
	CONN_OPT("readdirplus=yes", no_readdirplus_auto, 1),
	CONN_OPT("readdirplus=auto", no_readdirplus, 0),
	CONN_OPT("readdirplus=auto", no_readdirplus_auto, 0),
	CONN_OPT("async_dio", async_dio, 1),
	CONN_OPT("no_async_dio", no_async_dio, 1),
	CONN_OPT("writeback_cache", writeback_cache, 1),
	CONN_OPT("no_writeback_cache", no_writeback_cache, 1),
	FUSE_OPT_END,
};

struct fuse_conn_info_opts *fuse_parse_conn_info_opts(struct fuse_args *args)
{
	struct fuse_conn_info_opts *opts = calloc(1, sizeof(*opts));

	if (!opts) {
		fuse_log(FUSE_LOG_ERR, "fuse: out of memory\n");
		return NULL;
	}
	if (fuse_opt_parse(args, opts, conn_opts_table, NULL) == -1) {
		free(opts);
		return NULL;
	}
	return opts;
}

static void want_bit(struct fuse_conn_info *conn, unsigned int cap, int on, int off)
{
	if (on)
		conn->want |= cap;
	if (off)
		conn->want &= ~cap;
}

void fuse_apply_conn_info_opts(struct fuse_conn_info_opts *opts, struct fuse_conn_info *conn)
{
	if (opts->set_max_write)
		conn->max_write = opts->max_write;
	if (opts->set_max_background)
		conn->max_background = opts->max_background;
	if (opts->set_congestion_threshold)
		conn->congestion_threshold = opts->congestion_threshold;
	if (opts->set_time_gran)
		conn->time_gran = opts->time_gran;
	if (opts->set_max_readahead)
		conn->max_readahead = opts->max_readahead;
	want_bit(conn, FUSE_CAP_SPLICE_READ, opts->splice_read, opts->no_splice_read);
	want_bit(conn, FUSE_CAP_SPLICE_WRITE, opts->splice_write, opts->no_splice_write);
	want_bit(conn, FUSE_CAP_SPLICE_MOVE, opts->splice_move, opts->no_splice_move);
	want_bit(conn, FUSE_CAP_AUTO_INVAL_DATA, opts->auto_inval_data, opts->no_auto_inval_data);
	want_bit(conn, FUSE_CAP_READDIRPLUS, 0, opts->no_readdirplus);
	want_bit(conn, FUSE_CAP_READDIRPLUS_AUTO, 0, opts->no_readdirplus_auto);
	want_bit(conn, FUSE_CAP_ASYNC_DIO, opts->async_dio, opts->no_async_dio);
	want_bit(conn, FUSE_CAP_WRITEBACK_CACHE, opts->writeback_cache, opts->no_writeback_cache);
	want_bit(conn, FUSE_CAP_ASYNC_READ, opts->async_read, opts->sync_read);
	want_bit(conn, FUSE_CAP_POSIX_LOCKS, 0, opts->no_remote_posix_lock);
	want_bit(conn, FUSE_CAP_FLOCK_LOCKS, 0, opts->no_remote_flock);
}
