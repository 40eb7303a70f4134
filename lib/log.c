/*
 * Logging: every message the library emits goes through one settable hook, so an embedding
 * program decides where it lands. The default writes to stderr, or to syslog once the
 * daemon has detached from its terminal.
 */
#include "ringfuse_i.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

static rf_log_fn log_fn;
static void *log_arg;
static bool log_syslog;

void rf_set_log(rf_log_fn fn, void *arg)
{
	log_fn = fn;
	log_arg = arg;
}

void rf_log_to_syslog(void)
{
	log_syslog = true;
}

static void default_log(enum rf_log_level level, const char *msg)
{
	if (log_syslog) {
		syslog((int)level, "%s", msg);
		return;
	}
	/* One write per line keeps lines from concurrent threads whole. */
	fprintf(stderr, "%s\n", msg);
}

void rf_log(enum rf_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_fn)
		log_fn(level, msg, log_arg);
	else
		default_log(level, msg);
}
