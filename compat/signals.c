/*
 * fuse_set_signal_handlers() and fuse_remove_signal_handlers(): SIGHUP, SIGINT and SIGTERM
 * end the session's loop (which then returns the signal's number), SIGPIPE is ignored. A
 * handler is only put where the default one is, and only ours is taken away again, so a
 * program's own handlers stay. Ignoring is done with a do-nothing handler rather than
 * SIG_IGN, so that removing can tell ours apart from a SIG_IGN the program set.
 */
#include "compat.h"

#include <errno.h>
#include <signal.h>
#include <string.h>

static struct fuse_session *_Atomic signal_session;

static void on_exit_signal(int sig)
{
	struct fuse_session *se = atomic_load(&signal_session);

	if (se) {
		atomic_store(&se->error, sig);
		fuse_session_exit(se);
	}
}

static void on_pipe(int sig)
{
	(void)sig;
}

/* Install handler where the default is (remove: put the default back where handler is). */
static int swap_handler(int sig, void (*handler)(int), bool remove)
{
	struct sigaction old, sa;

	if (sigaction(sig, NULL, &old) < 0) {
		fuse_log(FUSE_LOG_ERR, "fuse: cannot read the handler of signal %d: %s\n", sig,
			 strerror(errno));
		return -1;
	}
	if (old.sa_handler != (remove ? handler : SIG_DFL))
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = remove ? SIG_DFL : handler;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: a blocking read of /dev/fuse must return to see the session end. */
	if (sigaction(sig, &sa, NULL) < 0) {
		fuse_log(FUSE_LOG_ERR, "fuse: cannot set the handler of signal %d: %s\n", sig,
			 strerror(errno));
		return -1;
	}
	return 0;
}

int fuse_set_signal_handlers(struct fuse_session *se)
{
	if (swap_handler(SIGHUP, on_exit_signal, false) < 0 ||
	    swap_handler(SIGINT, on_exit_signal, false) < 0 ||
	    swap_handler(SIGTERM, on_exit_signal, false) < 0 ||
	    swap_handler(SIGPIPE, on_pipe, false) < 0)
		return -1;
	atomic_store(&signal_session, se);
	return 0;
}

void fuse_remove_signal_handlers(struct fuse_session *se)
{
	if (atomic_load(&signal_session) != se)
		fuse_log(FUSE_LOG_ERR, "fuse: fuse_remove_signal_handlers: not the session the "
				       "handlers were set for\n");
	else
		atomic_store(&signal_session, NULL);
	swap_handler(SIGHUP, on_exit_signal, true);
	swap_handler(SIGINT, on_exit_signal, true);
	swap_handler(SIGTERM, on_exit_signal, true);
	swap_handler(SIGPIPE, on_pipe, true);
}
