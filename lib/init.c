/*
 * FUSE_INIT negotiation: what the kernel offers, what the filesystem wants, the limits of the
 * connection, and which transport carries it from now on. INIT always arrives on /dev/fuse;
 * io-uring queues may only register after its reply has been processed.
 */
#include "ringfuse_i.h"
#include "uring_plan.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define RF_MAX_PAGES_DEFAULT 256

/* What every ringfuse filesystem gets unless its init() says otherwise. */
static const uint64_t default_want = RF_CAP_ASYNC_READ | RF_CAP_ATOMIC_O_TRUNC | RF_CAP_BIG_WRITES |
				     RF_CAP_AUTO_INVAL_DATA | RF_CAP_ASYNC_DIO |
				     RF_CAP_PARALLEL_DIROPS | RF_CAP_MAX_PAGES |
				     RF_CAP_SETXATTR_EXT | RF_CAP_NO_EXPORT_SUPPORT;

/* Flags the library needs to see requests it can decode; never negotiated by filesystems. */
static const uint64_t library_flags = FUSE_INIT_EXT;

static uint32_t max_pages_limit(void)
{
	FILE *f = fopen("/proc/sys/fs/fuse/max_pages_limit", "re");
	unsigned int v = RF_MAX_PAGES_DEFAULT;

	if (f) {
		if (fscanf(f, "%u", &v) != 1 || v == 0)
			v = RF_MAX_PAGES_DEFAULT;
		fclose(f);
	}
	return v > 65535 ? 65535 : v;
}

static const struct rf_transport *choose_transport(rf_session *se, uint64_t offered)
{
	bool want_uring = se->opts.transport == RF_TP_URING || se->opts.transport == RF_TP_AUTO;

	se->uring_active = false;
	if (want_uring && se->uring_possible && (offered & FUSE_OVER_IO_URING) &&
	    (se->conn.want & RF_CAP_OVER_IO_URING)) {
		se->uring_active = true;
		return &rf_transport_uring;
	}
	if (se->opts.transport == RF_TP_URING) {
		rf_log(RF_LOG_ERR,
		       "ringfuse: transport=uring, but the kernel did not offer "
		       "FUSE_OVER_IO_URING at INIT (protocol 7.%u; enable_uring off?)",
		       se->proto_minor);
		return NULL;
	}
	if (se->opts.transport == RF_TP_URING_RW)
		return &rf_transport_uring_rw;
	return &rf_transport_dev;
}

static void default_limits(rf_session *se, const struct fuse_init_in *in)
{
	struct rf_conn_info *c = &se->conn;
	unsigned int depth = se->opts.uring_depth ? se->opts.uring_depth : RF_URING_DEPTH_DEFAULT;
	uint32_t limit = max_pages_limit();
	uint32_t max_write = se->dev_bufsize - RF_PAGE_SIZE;
	unsigned int bg;

	se->opts.uring_depth = depth;
	c->proto_major = in->major;
	c->proto_minor = in->minor;
	if (max_write > limit * RF_PAGE_SIZE)
		max_write = limit * RF_PAGE_SIZE;
	c->max_write = max_write;
	c->max_read = max_write;
	c->max_pages = (max_write + RF_PAGE_SIZE - 1) / RF_PAGE_SIZE;
	c->max_readahead = in->max_readahead;
	c->time_gran = 1;
	/* Async requests are capped by max_background on top of the ring depth: sized from
	 * queues x the depth they may grow to (rf_uring_max_background()). */
	bg = se->opts.max_background;
	if (!bg)
		bg = rf_uring_max_background(rf_possible_cpus(), depth);
	if (bg > 65535)
		bg = 65535;
	c->max_background = (uint16_t)bg;
	c->congestion_threshold = (uint16_t)(bg * 3 / 4);
}

int rf_init_negotiate(rf_session *se, const struct fuse_init_in *in, size_t in_len, void *out)
{
	struct fuse_init_out *o = out;
	struct rf_conn_info *c = &se->conn;
	uint64_t offered;
	uint32_t limit_write;

	if (in_len < 16 || in->major != FUSE_KERNEL_VERSION) {
		rf_log(RF_LOG_ERR, "ringfuse: unsupported FUSE protocol %u.%u from the kernel",
		       in->major, in->minor);
		return -EPROTO;
	}
	se->proto_minor = in->minor;
	offered = in->flags;
	if (in_len >= offsetof(struct fuse_init_in, flags2) + sizeof(in->flags2) &&
	    (in->flags & FUSE_INIT_EXT))
		offered |= (uint64_t)in->flags2 << 32;

	default_limits(se, in);
	c->capable = offered;
	c->want = default_want;
	if (se->ops.readdirplus)
		c->want |= RF_CAP_READDIRPLUS | RF_CAP_READDIRPLUS_AUTO;
	if (se->opts.transport == RF_TP_AUTO || se->opts.transport == RF_TP_URING)
		c->want |= RF_CAP_OVER_IO_URING;
	limit_write = c->max_write;

	if (se->ops.init)
		se->ops.init(se->userdata, c);

	/* The filesystem may lower limits, never raise them past our buffers. */
	if (c->max_write > limit_write || c->max_write < 4096)
		c->max_write = limit_write;
	if (c->max_pages * RF_PAGE_SIZE < c->max_write)
		c->max_pages = (c->max_write + RF_PAGE_SIZE - 1) / RF_PAGE_SIZE;
	if (c->max_pages > limit_write / RF_PAGE_SIZE + 1)
		c->max_pages = limit_write / RF_PAGE_SIZE + 1;
	if (c->max_readahead > in->max_readahead)
		c->max_readahead = in->max_readahead;
	c->want &= offered;

	/* A session without a device (the memory transport) has nothing to start. */
	se->tp = se->fd >= 0 ? choose_transport(se, offered) : NULL;
	if (!se->tp && se->fd >= 0) {
		se->exit_status = -EOPNOTSUPP;
		rf_session_exit(se);
		return -EPROTO;
	}
	if (!se->uring_active)
		c->want &= ~RF_CAP_OVER_IO_URING;

	memset(o, 0, sizeof(*o));
	o->major = FUSE_KERNEL_VERSION;
	o->minor = FUSE_KERNEL_MINOR_VERSION;
	o->max_readahead = c->max_readahead;
	o->flags = (uint32_t)c->want | (uint32_t)(offered & library_flags);
	o->flags2 = (uint32_t)(c->want >> 32);
	o->max_background = c->max_background;
	o->congestion_threshold = c->congestion_threshold;
	o->max_write = c->max_write;
	o->time_gran = c->time_gran;
	o->max_pages = (uint16_t)c->max_pages;
	if (c->want & RF_CAP_PASSTHROUGH)
		o->max_stack_depth = 1;

	rf_log(RF_LOG_INFO,
	       "ringfuse: INIT protocol 7.%u, max_write %u, max_background %u, io-uring %s",
	       in->minor, c->max_write, c->max_background,
	       se->uring_active			 ? "on"
	       : !(offered & FUSE_OVER_IO_URING) ? "off (not offered by the kernel)"
	       : (se->opts.transport == RF_TP_DEV || se->opts.transport == RF_TP_URING_RW)
		       ? "off (another transport was asked for)"
		       : "off (not usable here)");
	if (in->minor < 12)
		return FUSE_COMPAT_22_INIT_OUT_SIZE;
	return (int)sizeof(*o);
}
