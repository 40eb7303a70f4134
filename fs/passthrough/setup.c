/*
 * ringfuse-passthrough setup and teardown: the options, SOURCE and the refusal of a MOUNTPOINT
 * inside it, the inode table, the caller's identity, and what stays to be freed at the end.
 */
#include "passthrough.h"

#include <sys/resource.h>

#define TIMEOUT_AUTO   1.0
#define TIMEOUT_ALWAYS 86400.0

static int parse_options(rf_session *se)
{
	const char *v = rf_session_opt(se, "cache");

	fs.cache = CACHE_AUTO;
	if (v && !strcmp(v, "none"))
		fs.cache = CACHE_NONE;
	else if (v && !strcmp(v, "always"))
		fs.cache = CACHE_ALWAYS;
	else if (v && strcmp(v, "auto")) {
		fprintf(stderr, "ringfuse-passthrough: cache=%s: expected none, auto or always\n",
			v);
		return -EINVAL;
	}
	fs.timeout = fs.cache == CACHE_NONE   ? 0
		     : fs.cache == CACHE_AUTO ? TIMEOUT_AUTO
					      : TIMEOUT_ALWAYS;
	v = rf_session_opt(se, "writeback");
	fs.writeback_opt = v && (!*v || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"));
	v = rf_session_opt(se, "passthrough");
	fs.passthrough_opt = v && (!*v || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"));
	return 0;
}

/* Every inode the kernel knows costs a descriptor: take all the kernel allows. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* A mountpoint below SOURCE would make lookups walk into the mount being served. */
static int check_mountpoint(const char *mnt)
{
	struct stat st;
	int fd, err = 0;

	if (!mnt)
		return 0;
	fd = open(mnt, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return 0; /* the library reports a bad mountpoint */
	if (stat_fd(fd, &st) == 0 && !is_root_object(&st) && within_source(fd)) {
		fprintf(stderr, "ringfuse-passthrough: %s lies inside the source directory\n", mnt);
		err = -EINVAL;
	}
	close(fd);
	return err;
}

static int open_source(const char *source)
{
	struct stat st;

	if (!source) {
		fprintf(stderr, "ringfuse-passthrough: no source directory given "
				"(usage: ringfuse-passthrough [options] SOURCE MOUNTPOINT)\n");
		return -EINVAL;
	}
	fs.root.fd = open(source, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs.root.fd < 0 || stat_fd(fs.root.fd, &st) < 0) {
		int err = neg_errno();

		fprintf(stderr, "ringfuse-passthrough: %s: %s\n", source, strerror(-err));
		return err;
	}
	fs.root.type = S_IFDIR;
	fs.root.dev = st.st_dev;
	fs.root.ino = st.st_ino;
	fs.root.nlookup = 1;
	return 0;
}

/*
 * Everything before serving: the options, SOURCE, the check of MOUNTPOINT (NULL: none), the
 * inode table and whether callers' identities can be taken. Returns 0 or -errno, having said
 * why.
 */
int pt_setup(rf_session *se, const char *source, const char *mountpoint)
{
	int err;

	fs.se = se;
	err = parse_options(se);

	if (!err)
		err = open_source(source);
	if (!err)
		err = check_mountpoint(mountpoint);
	if (!err)
		err = table_init();
	if (err)
		return err;
	raise_fd_limit();
	/* Modes arrive with the caller's umask applied; ours must not apply a second one. */
	umask(0);
	creds_init();
	if ((fs.switch_creds || rf_session_allow_other(se)) &&
	    !rf_session_default_permissions(se)) {
		/* Lookups and reads run with our rights, on the strength of the kernel's checks;
		 * without allow_other only this process's own user reaches the mount. */
		fprintf(stderr, "ringfuse-passthrough: no_default_permissions would let every "
				"caller use SOURCE with this process's rights; refused\n");
		return -EINVAL;
	}
	if (!fs.switch_creds)
		fprintf(stderr, "ringfuse-passthrough: not running as root: everything is done "
				"with this process's own rights\n");
	return 0;
}

/* After the session: the inodes and directories the kernel did not give back, and SOURCE. */
void pt_teardown(void)
{
	table_clear();
	if (fs.root.fd >= 0)
		close(fs.root.fd);
	fs.root.fd = -1;
}
