/*
 * What the 3.14 ABI has and ringfuse cannot do yet, failing loudly: one line per thing, the
 * first time it is asked for, then the error the caller can handle (ENOSYS, NULL, ...).
 * Covers CUSE (character devices), poll handles and custom I/O; operations of a filesystem's
 * table that the dispatcher does not deliver are announced from ops.c through here too.
 */
#include "compat.h"
#include <cuse_lowlevel.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>

#define MAX_ANNOUNCED 64

static pthread_mutex_t announced_lock = PTHREAD_MUTEX_INITIALIZER;
static const char *announced[MAX_ANNOUNCED];
static unsigned int nannounced;

void compat_unsupported(const char *what, const char *consequence)
{
	bool seen = false;

	pthread_mutex_lock(&announced_lock);
	for (unsigned int i = 0; i < nannounced && !seen; i++)
		seen = strcmp(announced[i], what) == 0;
	if (!seen && nannounced < MAX_ANNOUNCED)
		announced[nannounced++] = what;
	pthread_mutex_unlock(&announced_lock);
	if (!seen)
		fuse_log(FUSE_LOG_ERR, "ringfuse: %s is not supported yet: %s\n", what,
			 consequence);
}

int fuse_session_custom_io(struct fuse_session *se, const struct fuse_custom_io *io, int fd)
{
	(void)se, (void)io, (void)fd;
	compat_unsupported("fuse_session_custom_io()", "it fails with ENOSYS");
	return -ENOSYS;
}

int fuse_lowlevel_notify_poll(struct fuse_pollhandle *ph)
{
	/* No poll request ever reaches the filesystem, so there is no handle to notify. */
	if (!ph)
		return 0;
	compat_unsupported("fuse_lowlevel_notify_poll()", "it fails with ENOSYS");
	return -ENOSYS;
}

void fuse_pollhandle_destroy(struct fuse_pollhandle *ph)
{
	(void)ph;
}

struct fuse_session *cuse_lowlevel_new(struct fuse_args *args, const struct cuse_info *ci,
				       const struct cuse_lowlevel_ops *clop, void *userdata)
{
	(void)args, (void)ci, (void)clop, (void)userdata;
	compat_unsupported("CUSE (cuse_lowlevel_new())", "no session is created");
	errno = ENOSYS;
	return NULL;
}

struct fuse_session *cuse_lowlevel_setup(int argc, char *argv[], const struct cuse_info *ci,
					 const struct cuse_lowlevel_ops *clop, int *multithreaded,
					 void *userdata)
{
	(void)argc, (void)argv, (void)ci, (void)clop, (void)multithreaded, (void)userdata;
	compat_unsupported("CUSE (cuse_lowlevel_setup())", "no session is created");
	errno = ENOSYS;
	return NULL;
}

void cuse_lowlevel_teardown(struct fuse_session *se)
{
	(void)se;
}

int cuse_lowlevel_main(int argc, char *argv[], const struct cuse_info *ci,
		       const struct cuse_lowlevel_ops *clop, void *userdata)
{
	(void)argc, (void)argv, (void)ci, (void)clop, (void)userdata;
	compat_unsupported("CUSE (cuse_lowlevel_main())", "the device is not created");
	return 1;
}
