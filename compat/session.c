/*
 * fuse_session: creating one from libfuse's arguments, mounting it, taking it down, and the
 * exit flag its loops watch.
 *
 * fuse_session_new() parses the options as libfuse does (options.c), builds the trampoline
 * table (ops.c) and a ringfuse session from the translated options, then applies
 * RINGFUSE_OPTIONS from the environment: ringfuse's own options (transport=..., stats, ...)
 * reach a program that was never built for them, whose own parser would refuse them.
 */
#include "compat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ENV_OPTIONS "RINGFUSE_OPTIONS"

struct fuse_session *fuse_session_new(struct fuse_args *args, const struct fuse_lowlevel_ops *op,
				      size_t op_size, void *userdata)
{
	struct fuse_session *se;
	struct rf_ops table;
	char *list = NULL;

	compat_log_init();
	if (op_size > sizeof(struct fuse_lowlevel_ops)) {
		fuse_log(FUSE_LOG_ERR, "fuse: warning: the filesystem's operations table is newer "
				       "than this library; the extra operations are ignored\n");
		op_size = sizeof(struct fuse_lowlevel_ops);
	}
	if (!args || args->argc == 0 || !args->argv) {
		fuse_log(FUSE_LOG_ERR, "fuse: fuse_session_new() needs at least argv[0]\n");
		return NULL;
	}
	se = calloc(1, sizeof(*se));
	if (!se) {
		fuse_log(FUSE_LOG_ERR, "fuse: out of memory\n");
		return NULL;
	}
	memcpy(&se->op, op, op_size);
	se->userdata = userdata;
	se->owner = getuid();
	if (compat_parse_session_args(se, args, &list) < 0)
		goto fail;
	compat_build_ops(&se->op, &table);
	se->rs = rf_embed_new(&table, sizeof(table), se, args->argv[0]);
	if (!se->rs) {
		fuse_log(FUSE_LOG_ERR, "fuse: out of memory\n");
		goto fail;
	}
	if (rf_embed_opts(se->rs, list, "options") < 0 ||
	    rf_embed_opts(se->rs, getenv(ENV_OPTIONS), ENV_OPTIONS) < 0)
		goto fail;
	free(list);
	return se;
fail:
	free(list);
	rf_embed_destroy(se->rs);
	free(se);
	return NULL;
}

int fuse_session_mount(struct fuse_session *se, const char *mountpoint)
{
	int fd, ret;

	/* Descriptors 0-2 must be taken, or /dev/fuse could become someone's stdout. */
	do {
		fd = open("/dev/null", O_RDWR);
		if (fd > STDERR_FILENO)
			close(fd);
	} while (fd >= 0 && fd <= STDERR_FILENO);

	fd = compat_parse_fd_mountpoint(mountpoint);
	if (fd >= 0) {
		if (fcntl(fd, F_GETFD) < 0) {
			fuse_log(FUSE_LOG_ERR, "fuse: /dev/fd/%d is not an open descriptor\n", fd);
			return -1;
		}
		ret = rf_embed_adopt_fd(se->rs, fd);
	} else {
		se->mountpoint = strdup(mountpoint);
		if (!se->mountpoint)
			return -1;
		ret = rf_embed_mount(se->rs, mountpoint);
		if (ret < 0) {
			free(se->mountpoint);
			se->mountpoint = NULL;
		}
	}
	if (ret < 0) {
		errno = -ret;
		return -1;
	}
	return 0;
}

int fuse_session_fd(struct fuse_session *se)
{
	return rf_embed_fd(se->rs);
}

void fuse_session_unmount(struct fuse_session *se)
{
	if (!se->mountpoint)
		return;
	rf_embed_unmount(se->rs);
	free(se->mountpoint);
	se->mountpoint = NULL;
}

void fuse_session_destroy(struct fuse_session *se)
{
	if (!se)
		return;
	if (se->served)
		compat_report(se);
	rf_embed_chan_destroy(se->chan);
	if (se->got_init && !se->got_destroy) {
		se->got_destroy = true;
		if (se->op.destroy)
			se->op.destroy(se->userdata);
	}
	rf_embed_destroy(se->rs);
	free(se->mountpoint);
	free(se);
}

/* Async-signal-safe: the signal handlers call it. */
void fuse_session_exit(struct fuse_session *se)
{
	atomic_store(&se->exited, 1);
	if (se->rs)
		rf_embed_exit(se->rs);
}

void fuse_session_reset(struct fuse_session *se)
{
	atomic_store(&se->exited, 0);
	atomic_store(&se->error, 0);
	rf_embed_reset(se->rs);
}

int fuse_session_exited(struct fuse_session *se)
{
	return atomic_load(&se->exited);
}
