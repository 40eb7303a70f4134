/*
 * ringfuse-passthrough main(): reads the options, opens SOURCE and refuses a MOUNTPOINT inside
 * it, sets up the inode table and the caller's identity switching, and serves until unmounted.
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

/* The mountpoint as the library reads argv: the last argument that is not an option. */
static const char *find_mountpoint(int argc, char *argv[])
{
	const char *last = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-o"))
			i++;
		else if (argv[i][0] != '-')
			last = argv[i];
	}
	return last;
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

static int setup(rf_session *se, int argc, char *argv[])
{
	int err = parse_options(se);

	if (!err)
		err = open_source(rf_session_source(se));
	if (!err)
		err = check_mountpoint(find_mountpoint(argc, argv));
	if (!err)
		err = table_init();
	if (err)
		return err;
	raise_fd_limit();
	/* Modes arrive with the caller's umask applied; ours must not apply a second one. */
	umask(0);
	creds_init();
	if (fs.switch_creds && !rf_session_default_permissions(se)) {
		/* Lookups and reads run with our rights, on the strength of the kernel's checks. */
		fprintf(stderr, "ringfuse-passthrough: no_default_permissions would let every "
				"caller read SOURCE with this process's rights; refused\n");
		return -EINVAL;
	}
	if (!fs.switch_creds)
		fprintf(stderr, "ringfuse-passthrough: not running as root: everything is done "
				"with this process's own rights\n");
	return 0;
}

static void print_help(int argc, char *argv[])
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("ringfuse-passthrough: mirror SOURCE at MOUNTPOINT\n"
			       "    -o cache=none|auto|always  kernel caching (default auto)\n"
			       "    -o writeback               kernel writeback cache\n"
			       "    -o passthrough             kernel passthrough of file I/O "
			       "(root)\n"
			       "\n");
			return;
		}
	}
}

int main(int argc, char *argv[])
{
	rf_session *se;
	int ret;

	fs.root.fd = -1;
	print_help(argc, argv);
	se = rf_session_new(argc, argv, &pt_ops, sizeof(pt_ops), &fs);
	if (!se)
		return errno ? 1 : 0;
	fs.se = se;
	ret = setup(se, argc, argv);
	if (!ret)
		ret = rf_session_run(se);
	rf_session_destroy(se);
	table_clear();
	if (fs.root.fd >= 0)
		close(fs.root.fd);
	free(fs.groups);
	return ret ? 1 : 0;
}
