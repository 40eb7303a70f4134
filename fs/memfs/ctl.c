/*
 * memfs control socket (-o ctl=PATH): a Unix stream socket of mode 0600, served by one
 * thread of its own, through which the administrator changes files behind the kernel's back
 * (admin.c does the changes and the notifications). One command per line, one reply line per
 * command, "ok" or "err <errno>":
 *
 *   write PATH OFFSET HEX [inval|store|nonotify]   write the bytes HEX spells at OFFSET
 *   touch PATH [MTIME] [inval|nonotify]            set the mtime (seconds; default now)
 *   unlink PATH [delete|inval|nonotify]            remove a name
 *   rmdir PATH [delete|inval|nonotify]             remove an empty directory
 *   ping                                           does nothing
 *   release                                        let lookups blocked by -o test_block go
 *
 * PATH is relative to the root of the filesystem, with %XX escapes for bytes that are spaces,
 * '%' or not printable. The last word says how the kernel hears of the change (the first one
 * listed is the default): invalidate the cached pages or attributes, store the new bytes in
 * the page cache, delete the cached entry, or nothing at all, which leaves the kernel's
 * caches stale and is how tests show that the caches are there.
 *
 * Clients are served one at a time; a peer must be root or the daemon's own user.
 */
#include "memfs.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>

#define CTL_DATA_MAX (1u << 20)			/* bytes one write may carry */
#define CTL_LINE_MAX (2 * CTL_DATA_MAX + 4096u) /* such a write in hex, plus the words */
#define CTL_WORDS    6

static struct {
	rf_session *se;
	int lfd;
	int stop[2]; /* a byte written to stop[1] ends the thread */
	char *path;  /* absolute, unlinked at exit */
	pthread_t thread;
	bool started;
} ctl = {.lfd = -1, .stop = {-1, -1}};

/* ---- parsing ---- */

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Undo %XX escapes in place; a NUL byte cannot be part of a path. */
static int unescape(char *s)
{
	char *w = s;

	for (const char *r = s; *r; r++) {
		if (*r != '%') {
			*w++ = *r;
			continue;
		}
		int hi = hexval((unsigned char)r[1]),
		    lo = hi < 0 ? -1 : hexval((unsigned char)r[2]);

		if (lo < 0 || (hi == 0 && lo == 0))
			return -EINVAL;
		*w++ = (char)(hi << 4 | lo);
		r += 2;
	}
	*w = '\0';
	return 0;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Decode hex into a new buffer (free() it); *len gets its size. */
static int parse_hex(const char *s, char **out, size_t *len)
{
	size_t n = strlen(s);
	char *buf;

	if (n % 2 || n / 2 > CTL_DATA_MAX)
		return n % 2 ? -EINVAL : -E2BIG;
	buf = malloc(n / 2 + 1);
	if (!buf)
		return -ENOMEM;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval((unsigned char)s[2 * i]), lo = hexval((unsigned char)s[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			free(buf);
			return -EINVAL;
		}
		buf[i] = (char)(hi << 4 | lo);
	}
	*out = buf;
	*len = n / 2;
	return 0;
}

/* If the last of the *nwords words is one of names, drop it and return its value; else the
 * first value (the default). */
static enum admin_notify parse_how(char **w, int *nwords, int min_words, const char *const *names,
				   const enum admin_notify *values)
{
	if (*nwords <= min_words)
		return values[0];
	for (int i = 0; names[i]; i++) {
		if (!strcmp(w[*nwords - 1], names[i])) {
			(*nwords)--;
			return values[i];
		}
	}
	return values[0];
}

static int cmd_write(char **w, int nw)
{
	static const char *const names[] = {"inval", "store", "nonotify", NULL};
	static const enum admin_notify values[] = {ADMIN_NOTIFY_INVAL, ADMIN_NOTIFY_STORE,
						   ADMIN_NOTIFY_NONE};
	enum admin_notify how = parse_how(w, &nw, 4, names, values);
	uint64_t off;
	char *data;
	size_t len;
	int err;

	if (nw != 4)
		return -EINVAL;
	err = unescape(w[1]);
	if (!err)
		err = parse_u64(w[2], (uint64_t)INT64_MAX, &off);
	if (!err)
		err = parse_hex(w[3], &data, &len);
	if (err)
		return err;
	err = admin_write(ctl.se, w[1], off, data, len, how);
	free(data);
	return err;
}

static int cmd_touch(char **w, int nw)
{
	static const char *const names[] = {"inval", "nonotify", NULL};
	static const enum admin_notify values[] = {ADMIN_NOTIFY_INVAL, ADMIN_NOTIFY_NONE};
	enum admin_notify how = parse_how(w, &nw, 2, names, values);
	struct timespec ts = {0};
	uint64_t sec;
	int err;

	if (nw < 2 || nw > 3)
		return -EINVAL;
	err = unescape(w[1]);
	if (err)
		return err;
	if (nw == 3) {
		err = parse_u64(w[2], (uint64_t)1 << 40, &sec);
		if (err)
			return err;
		ts.tv_sec = (time_t)sec;
	}
	return admin_touch(ctl.se, w[1], nw == 3 ? &ts : NULL, how);
}

static int cmd_remove(char **w, int nw, bool isdir)
{
	static const char *const names[] = {"delete", "inval", "nonotify", NULL};
	static const enum admin_notify values[] = {ADMIN_NOTIFY_DELETE, ADMIN_NOTIFY_INVAL,
						   ADMIN_NOTIFY_NONE};
	enum admin_notify how = parse_how(w, &nw, 2, names, values);
	int err;

	if (nw != 2)
		return -EINVAL;
	err = unescape(w[1]);
	if (err)
		return err;
	return admin_remove(ctl.se, w[1], isdir, how);
}

/* Run one command line (NUL-terminated, no newline); returns 0 or -errno. */
static int run_line(char *line)
{
	char *w[CTL_WORDS + 1], *save = NULL;
	int nw = 0;

	for (char *t = strtok_r(line, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (nw == CTL_WORDS)
			return -E2BIG;
		w[nw++] = t;
	}
	if (nw == 0)
		return -EINVAL;
	if (!strcmp(w[0], "write"))
		return cmd_write(w, nw);
	if (!strcmp(w[0], "touch"))
		return cmd_touch(w, nw);
	if (!strcmp(w[0], "unlink"))
		return cmd_remove(w, nw, false);
	if (!strcmp(w[0], "rmdir"))
		return cmd_remove(w, nw, true);
	if (!strcmp(w[0], "ping"))
		return nw == 1 ? 0 : -EINVAL;
	if (!strcmp(w[0], "release") && nw == 1) {
		hooks_release();
		return 0;
	}
	return -EINVAL;
}

/* ---- the socket ---- */

static bool send_reply(int fd, int err)
{
	char msg[32];
	int n = err ? snprintf(msg, sizeof(msg), "err %d\n", -err)
		    : snprintf(msg, sizeof(msg), "ok\n");

	return send(fd, msg, (size_t)n, MSG_NOSIGNAL) == n;
}

static bool peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

/* Serve one client until it hangs up or stop is asked; returns true on stop. */
static bool serve(int fd, char *buf)
{
	size_t have = 0;

	for (;;) {
		struct pollfd pfd[2] = {{.fd = fd, .events = POLLIN},
					{.fd = ctl.stop[0], .events = POLLIN}};
		char *nl;
		ssize_t n;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return false;
		}
		if (pfd[1].revents)
			return true;
		n = read(fd, buf + have, CTL_LINE_MAX - have);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return false;
		have += (size_t)n;
		while ((nl = memchr(buf, '\n', have))) {
			size_t used = (size_t)(nl - buf) + 1;

			*nl = '\0';
			if (nl > buf && nl[-1] == '\r')
				nl[-1] = '\0';
			if (!send_reply(fd, run_line(buf)))
				return false;
			have -= used;
			memmove(buf, buf + used, have);
		}
		if (have == CTL_LINE_MAX) {
			send_reply(fd, -E2BIG); /* a line this long is no command: hang up */
			return false;
		}
	}
}

static void *ctl_main(void *arg)
{
	char *buf = malloc(CTL_LINE_MAX);

	(void)arg;
	if (!buf) {
		fprintf(stderr, "memfs: control socket: out of memory\n");
		return NULL;
	}
	for (;;) {
		struct pollfd pfd[2] = {{.fd = ctl.lfd, .events = POLLIN},
					{.fd = ctl.stop[0], .events = POLLIN}};
		bool stop;
		int fd;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents)
			break;
		fd = accept4(ctl.lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* Out of descriptors or memory: the client stays queued; do not spin. */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM)
				usleep(100000);
			continue;
		}
		stop = peer_allowed(fd) && serve(fd, buf);
		close(fd);
		if (stop)
			break;
	}
	free(buf);
	return NULL;
}

int ctl_open(rf_session *se, const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	char cwd[PATH_MAX];
	mode_t old;
	int err;

	ctl.se = se;
	if (path[0] == '/') {
		ctl.path = strdup(path);
	} else if (getcwd(cwd, sizeof(cwd))) {
		/* The daemon changes directory when it detaches: remember where the socket is. */
		if (asprintf(&ctl.path, "%s/%s", cwd, path) < 0)
			ctl.path = NULL;
	}
	if (!ctl.path)
		return -ENOMEM;
	if (strlen(ctl.path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path, ctl.path, strlen(ctl.path) + 1);
	/* A socket left by a daemon that died is replaced; anything else is not ours. */
	if (lstat(ctl.path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		unlink(ctl.path);
	}
	if (pipe2(ctl.stop, O_CLOEXEC) < 0)
		return -errno;
	ctl.lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ctl.lfd < 0)
		return -errno;
	old = umask(0077);
	err = bind(ctl.lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	if (!err && chmod(ctl.path, 0600) < 0)
		err = -errno;
	if (!err && listen(ctl.lfd, 8) < 0)
		err = -errno;
	return err;
}

int ctl_start(void)
{
	sigset_t all, old;
	int err;

	if (ctl.lfd < 0 || ctl.started)
		return 0;
	/* Signals are for the library's threads: one caught here would not wake them. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = pthread_create(&ctl.thread, NULL, ctl_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err)
		return -err;
	ctl.started = true;
	return 0;
}

void ctl_close(void)
{
	if (ctl.started) {
		if (write(ctl.stop[1], "", 1) < 0)
			perror("memfs: stopping the control thread");
		pthread_join(ctl.thread, NULL);
		ctl.started = false;
	}
	if (ctl.lfd >= 0) {
		close(ctl.lfd);
		unlink(ctl.path);
	}
	for (int i = 0; i < 2; i++)
		if (ctl.stop[i] >= 0)
			close(ctl.stop[i]);
	free(ctl.path);
	ctl.lfd = ctl.stop[0] = ctl.stop[1] = -1;
	ctl.path = NULL;
}
