/*
 * The end-of-session report: which transport served the mount and, with -o stats, the
 * per-queue statistics.
 *
 * ringfuse-run passes its own stderr as RINGFUSE_REPORT_FD, so the report reaches whoever ran
 * the program even after fuse_daemonize() sent the program's stderr to /dev/null. The
 * descriptor is made close-on-exec when the library loads, so that programs the filesystem
 * starts do not inherit it. Without it, the statistics (if asked for) go to stderr.
 */
#include "compat.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define ENV_REPORT_FD "RINGFUSE_REPORT_FD"

static int report_fd(void)
{
	const char *v = getenv(ENV_REPORT_FD);
	char *end;
	long fd;

	if (!v || !*v)
		return -1;
	fd = strtol(v, &end, 10);
	if (*end || fd < 0 || fd > INT_MAX || fcntl((int)fd, F_GETFD) < 0)
		return -1;
	return (int)fd;
}

__attribute__((constructor)) static void keep_report_fd_private(void)
{
	int fd = report_fd();

	if (fd > STDERR_FILENO)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
}

void compat_report(struct fuse_session *se)
{
	int fd = report_fd();
	char label[PATH_MAX + 32];

	if (fd < 0) {
		rf_embed_report(se->rs, STDERR_FILENO, NULL);
		return;
	}
	const char *where = rf_session_mountpoint(se->rs);

	snprintf(label, sizeof(label), "ringfuse-run: %s", where ? where : "mount");
	rf_embed_report(se->rs, fd, label);
}
