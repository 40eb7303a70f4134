/*
 * ringfuse-passthrough status replies. Every failure reaches the kernel as its errno; running
 * out of descriptors is also told to the administrator, once, since raising the limit fixes it.
 */
#include "passthrough.h"

/* Out of descriptors is the one resource failure an admin can fix: say so once. */
static void note_error(int err)
{
	static atomic_bool said;

	if ((err == -EMFILE || err == -ENFILE) && !atomic_exchange(&said, true))
		fprintf(stderr,
			"ringfuse-passthrough: out of file descriptors (%s); raise RLIMIT_NOFILE\n",
			strerror(-err));
}

/* err is 0 or -errno. */
void reply_status(rf_req *req, int err)
{
	note_error(err);
	rf_reply_err(req, -err);
}
