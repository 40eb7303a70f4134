/*
 * The supplementary groups of a request's caller, shared by the filesystems that act for
 * callers or check permissions themselves. The kernel sends uid, gid and pid only; the groups
 * come from /proc/PID/task/PID/status, and only when the ids shown there (real or filesystem)
 * are the ones the request carries. A request made with credentials its task does not hold
 * (the kernel acting for someone else, e.g. a file server thread, or a pid reused since) gets
 * no supplementary groups, which can only deny, never grant.
 */
#include "caller.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define STATUS_BYTES 4096 /* enough of /proc/PID/status for the lines before Groups */

/* The value after key in a /proc status text, or NULL. */
static const char *status_field(const char *text, const char *key)
{
	const char *p = strstr(text, key);

	return p ? p + strlen(key) : NULL;
}

/* Does an "Uid:"/"Gid:" line (real, effective, saved, filesystem) show id as the real or the
 * filesystem id? */
static bool line_has_id(const char *p, unsigned long id)
{
	unsigned long v[4];

	if (!p || sscanf(p, "%lu %lu %lu %lu", &v[0], &v[1], &v[2], &v[3]) != 4)
		return false;
	return v[0] == id || v[3] == id;
}

/* Read /proc/PID/task/PID/status of the caller into text (cap bytes); a longer one goes to a
 * buffer allocated here, which the caller frees when it is not text. NULL if unreadable. */
static char *read_status(pid_t pid, char *text, size_t cap)
{
	char path[64], *buf = text;
	size_t len = 0;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	while ((n = read(fd, buf + len, cap - 1 - len)) > 0) {
		len += (size_t)n;
		if (len == cap - 1) { /* a long Groups line: read the rest too */
			char *bigger = buf == text ? malloc(cap * 2) : realloc(buf, cap * 2);

			if (!bigger)
				break;
			if (buf == text)
				memcpy(bigger, text, len);
			buf = bigger;
			cap *= 2;
		}
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

/*
 * The caller's supplementary groups, into groups (max of them) or, for a longer list, into an
 * allocation *out then points to (the caller frees it when it is not groups). Returns how
 * many: 0 when they cannot be trusted to be the request's.
 */
int caller_groups(const struct rf_ctx *ctx, gid_t groups[], int max, gid_t **out)
{
	char stack[STATUS_BYTES], *text;
	const char *p;
	int count = 0;

	*out = groups;
	if (!ctx->pid || !(text = read_status(ctx->pid, stack, sizeof(stack))))
		return 0;
	if (line_has_id(status_field(text, "\nUid:"), ctx->uid) &&
	    line_has_id(status_field(text, "\nGid:"), ctx->gid))
		p = status_field(text, "\nGroups:");
	else
		p = NULL;
	while (p) {
		char *end;
		unsigned long g = strtoul(p, &end, 10);

		if (end == p)
			break;
		if (count == max) {
			gid_t *more = *out == groups
					      ? malloc((size_t)max * 2 * sizeof(gid_t))
					      : realloc(*out, (size_t)max * 2 * sizeof(gid_t));

			if (!more)
				break;
			if (*out == groups)
				memcpy(more, groups, (size_t)count * sizeof(gid_t));
			*out = more;
			max *= 2;
		}
		(*out)[count++] = (gid_t)g;
		p = end;
	}
	if (text != stack)
		free(text);
	return count;
}
