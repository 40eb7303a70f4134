/*
 * The loops: fuse_session_loop() (one thread), fuse_session_loop_mt() in its three ABI
 * versions, the loop configuration object, and fuse_session_receive_buf() /
 * fuse_session_process_buf() for filesystems that run a loop of their own.
 *
 * The multi-threaded loop runs on ringfuse's transports as chosen by the options: io-uring by
 * default where the kernel offers it, /dev/fuse workers otherwise. The single-threaded loop
 * promises that every callback runs on the calling thread: ringfuse serves it so on every
 * transport (over io-uring, the calling thread serves every queue and /dev/fuse through one
 * ring). A filesystem with its own loop reads /dev/fuse itself: the classic transport,
 * without threads of the library's.
 *
 * Whatever the loop, it returns 0 when the filesystem is unmounted, the signal's number after
 * fuse_set_signal_handlers() saw one, or -errno; the exit flag is cleared on the way out.
 */
#include "compat.h"
#include "ringfuse/kernel.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int fuse_session_loop_mt_312(struct fuse_session *se, struct fuse_loop_config *config);
int fuse_session_loop_mt_32(struct fuse_session *se, struct fuse_loop_config_v1 *config);
int fuse_session_loop_mt_31(struct fuse_session *se, int clone_fd);

__asm__(".symver fuse_session_loop_mt_31, fuse_session_loop_mt@FUSE_3.0");
__asm__(".symver fuse_session_loop_mt_32, fuse_session_loop_mt@FUSE_3.2");
__asm__(".symver fuse_session_loop_mt_312, fuse_session_loop_mt@@FUSE_3.12");

/* The configuration object of 3.12: opaque, so ours. version marks it as one, since the 3.2
 * ABI passed a smaller public struct where this one now goes. */
#define LOOP_CONFIG_VERSION 0x72666c63
#define MAX_THREADS_LIMIT   100000

struct fuse_loop_config {
	int version;
	int clone_fd;
	int max_idle_threads;
	unsigned int max_threads;
};

static int serve(struct fuse_session *se, bool one_thread)
{
	int ret = 0;

	if (!atomic_load(&se->exited)) {
		se->served = true;
		ret = rf_embed_serve(se->rs, one_thread);
	}
	if (atomic_load(&se->error))
		ret = atomic_load(&se->error);
	fuse_session_reset(se);
	return ret;
}

int fuse_session_loop(struct fuse_session *se)
{
	return serve(se, true);
}

int fuse_session_loop_mt_312(struct fuse_session *se, struct fuse_loop_config *config)
{
	if (config && config->version != LOOP_CONFIG_VERSION)
		return -EINVAL;
	return serve(se, false);
}

int fuse_session_loop_mt_32(struct fuse_session *se, struct fuse_loop_config_v1 *config)
{
	(void)config;
	return serve(se, false);
}

int fuse_session_loop_mt_31(struct fuse_session *se, int clone_fd)
{
	(void)clone_fd;
	return serve(se, false);
}

struct fuse_loop_config *fuse_loop_cfg_create(void)
{
	struct fuse_loop_config *config = calloc(1, sizeof(*config));

	if (!config)
		return NULL;
	config->version = LOOP_CONFIG_VERSION;
	config->max_idle_threads = -1;
	config->max_threads = 10;
	return config;
}

void fuse_loop_cfg_destroy(struct fuse_loop_config *config)
{
	free(config);
}

void fuse_loop_cfg_set_idle_threads(struct fuse_loop_config *config, unsigned int value)
{
	if (value > MAX_THREADS_LIMIT) {
		fuse_log(FUSE_LOG_ERR, "fuse: max idle threads %u is too many; ignored\n", value);
		return;
	}
	config->max_idle_threads = (int)value;
}

void fuse_loop_cfg_set_max_threads(struct fuse_loop_config *config, unsigned int value)
{
	config->max_threads = value;
}

void fuse_loop_cfg_set_clone_fd(struct fuse_loop_config *config, unsigned int value)
{
	config->clone_fd = (int)value;
}

void fuse_loop_cfg_convert(struct fuse_loop_config *config, struct fuse_loop_config_v1 *v1)
{
	fuse_loop_cfg_set_idle_threads(config, v1->max_idle_threads);
	fuse_loop_cfg_set_clone_fd(config, (unsigned int)v1->clone_fd);
}

/* ---- the filesystem's own loop ---- */

static struct rf_embed_chan *channel(struct fuse_session *se)
{
	if (!se->chan) {
		se->chan = rf_embed_chan_new(se->rs);
		if (!se->chan)
			fuse_log(FUSE_LOG_ERR, "fuse: out of memory\n");
		se->served = true;
	}
	return se->chan;
}

int fuse_session_receive_buf(struct fuse_session *se, struct fuse_buf *buf)
{
	size_t size = rf_embed_bufsize(se->rs);
	int fd = rf_embed_fd(se->rs);
	ssize_t n;

	if (!channel(se))
		return -ENOMEM;
	if (!buf->mem) {
		buf->mem = malloc(size);
		if (!buf->mem) {
			fuse_log(FUSE_LOG_ERR, "fuse: out of memory for a read buffer\n");
			return -ENOMEM;
		}
	}
	for (;;) {
		n = read(fd, buf->mem, size);
		if (atomic_load(&se->exited))
			return 0;
		if (n >= 0)
			break;
		if (errno == ENOENT) /* interrupted before we read it: nothing to do */
			continue;
		if (errno == ENODEV || errno == ECONNABORTED) {
			/* Unmounted, or aborted through /sys/fs/fuse/connections. */
			fuse_session_exit(se);
			return 0;
		}
		if (errno != EINTR && errno != EAGAIN)
			fuse_log(FUSE_LOG_ERR, "fuse: reading /dev/fuse: %s\n", strerror(errno));
		return -errno;
	}
	if ((size_t)n < sizeof(struct fuse_in_header)) {
		fuse_log(FUSE_LOG_ERR, "fuse: short read on /dev/fuse\n");
		return -EIO;
	}
	buf->size = (size_t)n;
	return (int)n;
}

void fuse_session_process_buf(struct fuse_session *se, const struct fuse_buf *buf)
{
	struct rf_embed_chan *ch = channel(se);

	if (!ch)
		return;
	if (buf->flags & FUSE_BUF_IS_FD) {
		compat_unsupported("fuse_session_process_buf() with a descriptor buffer",
				   "the request is dropped");
		return;
	}
	rf_embed_chan_process(ch, buf->mem, buf->size);
}
