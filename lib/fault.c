/*
 * Fault injection for tests, off unless RINGFUSE_FAULT is set in the environment when a
 * session is created (read once; the hot path pays a predictable branch on a global):
 *
 *   RINGFUSE_FAULT=name:value[,name:value...]
 *     uring_queue_fatal:Q   io-uring queue (or uring-rw worker) Q fails for good, as if
 *                           io_uring_enter had returned EIO, when the first READ request
 *                           reaches it (so a mount starts and runs until a file is read)
 *     read_delay_ms:N       every READ waits N ms between arriving and being dispatched, so
 *                           an interrupt can overtake it on any transport
 *
 * docs/reliability.md lists the tests that use them.
 */
#include "ringfuse_i.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rf_faults rf_faults;

void rf_faults_init(void)
{
	const char *env = getenv("RINGFUSE_FAULT");
	char name[32];

	memset(&rf_faults, 0, sizeof(rf_faults));
	if (!env || !*env)
		return;
	for (const char *p = env; *p;) {
		size_t len = strcspn(p, ":,");
		unsigned long v = 0;
		char *end = (char *)p + len;

		if (p[len] == ':')
			v = strtoul(p + len + 1, &end, 10);
		snprintf(name, sizeof(name), "%.*s", (int)(len < sizeof(name) ? len : 0), p);
		if (!strcmp(name, "uring_queue_fatal") && v < RF_MAX_QUEUES)
			rf_faults.uring_queue_fatal = (int)v + 1;
		else if (!strcmp(name, "read_delay_ms") && v <= 60000)
			rf_faults.read_delay_ms = (unsigned int)v;
		else
			rf_log(RF_LOG_WARN, "ringfuse: RINGFUSE_FAULT: unknown fault '%.*s'",
			       (int)strcspn(p, ","), p);
		p = end + strcspn(end, ",");
		if (*p == ',')
			p++;
	}
	rf_log(RF_LOG_WARN, "ringfuse: fault injection on (RINGFUSE_FAULT=%s)", env);
}
