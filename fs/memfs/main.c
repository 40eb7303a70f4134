/*
 * ringfuse-memfs main(): reads the options, picks the operations table (deferred replies, the
 * test hooks and the threads log wrap it), sets up the control socket, and serves until
 * unmounted.
 */
#include "memfs.h"

int main(int argc, char *argv[])
{
	struct rf_ops ops = memfs_ops;
	struct memfs_opts o = {0};
	bool threads_log = want_threads_log(argc, argv);
	rf_session *se;
	int ret = -1;

	if (fs_setup() < 0) {
		fprintf(stderr, "memfs: out of memory\n");
		return 1;
	}
	if (want_defer(argc, argv))
		defer_wrap(&ops);
	if (want_test_hooks(argc, argv))
		hooks_wrap(&ops);
	if (threads_log)
		threads_log_wrap(&ops);
	se = rf_session_new(argc, argv, &ops, sizeof(ops), &fs);
	if (!se) {
		int usage_error = errno != 0;

		if (!usage_error && asked_for_help(argc, argv))
			print_help();
		fs_teardown();
		return usage_error ? 1 : 0;
	}
	/* Whether the kernel checks permissions decides whether we must: the library's word on
	 * it, as it parsed the command line ("--" and all). */
	fs.perm_check = !rf_session_default_permissions(se);
	if (read_opts(se, &o) < 0 || hooks_configure(se) < 0 || root_create() < 0)
		goto out;
	if (defer_configure(o.defer, o.delay_us, o.delay_ops) < 0) {
		fprintf(stderr, "memfs: bad defer_delay_ops=%s\n", o.delay_ops);
		goto out;
	}
	if (o.ctl) {
		ret = ctl_open(se, o.ctl);
		if (ret < 0) {
			fprintf(stderr, "memfs: ctl=%s: %s\n", o.ctl, strerror(-ret));
			goto out;
		}
	}
	ret = rf_session_run(se);
	hooks_after_run();
out:
	defer_stop();
	ctl_close();
	rf_session_destroy(se);
	if (threads_log)
		threads_log_report();
	fs_teardown();
	free(o.ctl);
	free(o.delay_ops);
	hooks_free();
	return ret < 0 ? 1 : 0;
}
