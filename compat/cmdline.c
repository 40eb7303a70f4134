/*
 * The helpers a main() calls around the session: fuse_parse_cmdline() (both ABI versions),
 * the help and version texts, fuse_daemonize(), fuse_version() and fuse_pkgversion().
 *
 * fuse_parse_cmdline() takes -h/--help, -V/--version, -d/-o debug (which implies -f and stays
 * in args for the session's own parser), -f, -s, -o clone_fd, -o max_idle_threads=N and
 * -o max_threads=N, and the mountpoint (made absolute, or kept as /dev/fd/N); everything else
 * stays in args. Without -o fsname= or -o subtype=, it adds -o subtype=<program name>.
 */
#include "compat.h"
#include "ringfuse/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COMPAT_PKGVERSION "3.14.0"

int fuse_parse_cmdline_30(struct fuse_args *args, struct fuse_cmdline_opts *opts);
int fuse_parse_cmdline_312(struct fuse_args *args, struct fuse_cmdline_opts *opts);

/* fuse_parse_cmdline@FUSE_3.0 filled a struct that ended with max_idle_threads. */
__asm__(".symver fuse_parse_cmdline_30, fuse_parse_cmdline@FUSE_3.0");
__asm__(".symver fuse_parse_cmdline_312, fuse_parse_cmdline@@FUSE_3.12");

#define CMDLINE_FLAG(t, field)                                  \
	{                                                       \
		t, offsetof(struct fuse_cmdline_opts, field), 1 \
	}

static const struct fuse_opt cmdline_table[] = {
	CMDLINE_FLAG("-h", show_help),
	CMDLINE_FLAG("--help", show_help),
	CMDLINE_FLAG("-V", show_version),
	CMDLINE_FLAG("--version", show_version),
	CMDLINE_FLAG("-d", debug),
	CMDLINE_FLAG("-d", foreground),
	FUSE_OPT_KEY("-d", FUSE_OPT_KEY_KEEP),
	CMDLINE_FLAG("debug", debug),
	CMDLINE_FLAG("debug", foreground),
	FUSE_OPT_KEY("debug", FUSE_OPT_KEY_KEEP),
	CMDLINE_FLAG("-f", foreground),
	CMDLINE_FLAG("-s", singlethread),
	CMDLINE_FLAG("fsname=", nodefault_subtype),
	FUSE_OPT_KEY("fsname=", FUSE_OPT_KEY_KEEP),
	CMDLINE_FLAG("subtype=", nodefault_subtype),
	FUSE_OPT_KEY("subtype=", FUSE_OPT_KEY_KEEP),
	CMDLINE_FLAG("clone_fd", clone_fd),
	{"max_idle_threads=%u", offsetof(struct fuse_cmdline_opts, max_idle_threads), 0},
	{"max_threads=%u", offsetof(struct fuse_cmdline_opts, max_threads), 0},
	FUSE_OPT_END,
};

/* "/dev/fd/N": a /dev/fuse descriptor opened (and mounted) by whoever started us. */
int compat_parse_fd_mountpoint(const char *mountpoint)
{
	const char *p = mountpoint;
	long fd = 0;

	if (strncmp(p, "/dev/fd/", 8) != 0)
		return -1;
	p += 8;
	if (!*p)
		return -1;
	for (; *p; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		fd = fd * 10 + (*p - '0');
		if (fd > INT_MAX)
			return -1;
	}
	return (int)fd;
}

static int cmdline_arg(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct fuse_cmdline_opts *opts = data;
	char abs[PATH_MAX];

	(void)outargs;
	if (key != FUSE_OPT_KEY_NONOPT)
		return 1;
	if (opts->mountpoint) {
		fuse_log(FUSE_LOG_ERR, "fuse: unexpected argument `%s'\n", arg);
		return -1;
	}
	if (compat_parse_fd_mountpoint(arg) >= 0)
		return fuse_opt_add_opt(&opts->mountpoint, arg);
	if (!realpath(arg, abs)) {
		fuse_log(FUSE_LOG_ERR, "fuse: bad mount point `%s': %s\n", arg, strerror(errno));
		return -1;
	}
	return fuse_opt_add_opt(&opts->mountpoint, abs);
}

/* -o subtype=<basename of argv[0]>, as libfuse names mounts by default. */
static int add_default_subtype(struct fuse_args *args)
{
	const char *prog = args->argv[0];
	const char *slash = strrchr(prog, '/');
	const char *base = !slash ? prog : slash[1] ? slash + 1 : slash;
	char *opt = malloc(strlen(base) + sizeof("-osubtype="));
	int res;

	if (!opt) {
		fuse_log(FUSE_LOG_ERR, "fuse: out of memory\n");
		return -1;
	}
	strcpy(opt, "-osubtype=");
	strcat(opt, base);
	res = fuse_opt_add_arg(args, opt);
	free(opt);
	return res;
}

int fuse_parse_cmdline_312(struct fuse_args *args, struct fuse_cmdline_opts *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->max_idle_threads = UINT_MAX; /* "no limit", the default since 3.12 */
	opts->max_threads = 10;
	if (fuse_opt_parse(args, opts, cmdline_table, cmdline_arg) == -1)
		return -1;
	if (!opts->nodefault_subtype && args->argc > 0 && args->argv)
		return add_default_subtype(args) == -1 ? -1 : 0;
	return 0;
}

int fuse_parse_cmdline_30(struct fuse_args *args, struct fuse_cmdline_opts *opts)
{
	struct fuse_cmdline_opts full;
	int res = fuse_parse_cmdline_312(args, &full);

	if (res == 0)
		memcpy(opts, &full, offsetof(struct fuse_cmdline_opts, max_threads));
	return res;
}

void fuse_cmdline_help(void)
{
	printf("    -h   --help            show this help\n"
	       "    -V   --version         show the version\n"
	       "    -d   -o debug          trace every request (implies -f)\n"
	       "    -f                     stay in the foreground\n"
	       "    -s                     run every operation on one thread\n"
	       "    -o clone_fd            one /dev/fuse descriptor per thread (always, here)\n"
	       "    -o max_idle_threads    idle worker threads kept (ignored: ringfuse sizes its\n"
	       "                           threads by CPU)\n"
	       "    -o max_threads         most worker threads (ignored, as above)\n");
}

void fuse_lowlevel_help(void)
{
	printf("    -o allow_other         let every user in\n"
	       "    -o allow_root          let root in as well as the owner\n"
	       "    RINGFUSE_OPTIONS=...   ringfuse's own options, from the environment, e.g.\n"
	       "                           transport=uring|dev|uring-rw, stats, uring_depth=N\n");
}

void fuse_lowlevel_version(void)
{
	printf("using FUSE kernel interface version %d.%d\n", FUSE_KERNEL_VERSION,
	       FUSE_KERNEL_MINOR_VERSION);
	printf("ringfuse %d.%d serving the libfuse %s low-level API\n", RF_VERSION_MAJOR,
	       RF_VERSION_MINOR, COMPAT_PKGVERSION);
}

int fuse_version(void)
{
	return FUSE_VERSION;
}

const char *fuse_pkgversion(void)
{
	return COMPAT_PKGVERSION;
}

static void stdio_to_null(void)
{
	int fd = open("/dev/null", O_RDWR);

	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

/*
 * Background: the parent exits 0 once the child has a session of its own and has let go of
 * the terminal, so a shell sees the mount ready when the command returns.
 */
int fuse_daemonize(int foreground)
{
	int ready[2];
	char byte = 1;

	if (foreground) {
		if (chdir("/") < 0)
			fuse_log(FUSE_LOG_WARNING, "fuse: cannot change to /: %s\n",
				 strerror(errno));
		return 0;
	}
	if (pipe(ready) < 0) {
		fuse_log(FUSE_LOG_ERR, "fuse_daemonize: pipe: %s\n", strerror(errno));
		return -1;
	}
	switch (fork()) {
	case -1:
		fuse_log(FUSE_LOG_ERR, "fuse_daemonize: fork: %s\n", strerror(errno));
		close(ready[0]);
		close(ready[1]);
		return -1;
	case 0:
		break;
	default:
		/* Whatever the child says (or its death) ends the wait. */
		while (read(ready[0], &byte, 1) < 0 && errno == EINTR)
			;
		_exit(0);
	}
	if (setsid() < 0) {
		fuse_log(FUSE_LOG_ERR, "fuse_daemonize: setsid: %s\n", strerror(errno));
		return -1;
	}
	if (chdir("/") < 0)
		fuse_log(FUSE_LOG_WARNING, "fuse: cannot change to /: %s\n", strerror(errno));
	stdio_to_null();
	if (write(ready[1], &byte, 1) < 0)
		fuse_log(FUSE_LOG_WARNING, "fuse_daemonize: cannot tell the parent: %s\n",
			 strerror(errno));
	close(ready[0]);
	close(ready[1]);
	return 0;
}
