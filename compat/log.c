/*
 * fuse_log() and fuse_set_log_func(), and the hook that sends ringfuse's own messages the
 * same way, so a filesystem that captures libfuse's messages also gets the library's.
 */
#include "compat.h"

#include <stdarg.h>
#include <stdio.h>

static void to_stderr(enum fuse_log_level level, const char *fmt, va_list ap)
{
	(void)level;
	vfprintf(stderr, fmt, ap);
}

static fuse_log_func_t log_func = to_stderr;

void fuse_set_log_func(fuse_log_func_t func)
{
	log_func = func ? func : to_stderr;
}

void fuse_log(enum fuse_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_func(level, fmt, ap);
	va_end(ap);
}

/* ringfuse's levels have the syslog values, as libfuse's do. */
_Static_assert((int)RF_LOG_ERR == (int)FUSE_LOG_ERR && (int)RF_LOG_WARN == (int)FUSE_LOG_WARNING &&
		       (int)RF_LOG_INFO == (int)FUSE_LOG_INFO &&
		       (int)RF_LOG_DEBUG == (int)FUSE_LOG_DEBUG,
	       "log levels line up");

static void from_ringfuse(enum rf_log_level level, const char *msg, void *arg)
{
	(void)arg;
	fuse_log((enum fuse_log_level)level, "%s\n", msg);
}

void compat_log_init(void)
{
	rf_set_log(from_ringfuse, NULL);
}
