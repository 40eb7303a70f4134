/*
 * ringfuse-passthrough main(): the help text, the session, setup (setup.c), serving until
 * unmounted, teardown.
 */
#include "passthrough.h"

static void print_help(int argc, char *argv[])
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("ringfuse-passthrough: mirror SOURCE at MOUNTPOINT\n"
			       "    -o cache=none|auto|always  kernel caching (default auto); "
			       "with\n"
			       "                               always, permission changes made on\n"
			       "                               SOURCE directly take up to a day\n"
			       "                               to show through the mount\n"
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
	/* The mountpoint as the library took it from argv ("--" and all). */
	ret = pt_setup(se, rf_session_source(se), rf_session_mountpoint(se));
	if (!ret)
		ret = rf_session_run(se);
	rf_session_destroy(se);
	pt_teardown();
	return ret ? 1 : 0;
}
