/*
 * What the mount table says about our mount: its device (to recognise it after an abort), and
 * the flags a FUSE server has to act on itself, followed as they change.
 *
 * The kernel never updates an access time on a FUSE inode (it marks every one S_NOATIME): the
 * server keeps atime, so it must know the mount's atime mode (noatime, nodiratime, relatime,
 * strictatime) and whether the mount is read-only, also after `mount -o remount,...` changed
 * them. FUSE does not tell the server about a remount, the mount table does: the
 * /proc/self/mountinfo of the daemon's mount namespace signals POLLPRI whenever a mount in it
 * changes, and a thread blocked in poll() otherwise then re-reads our mount's line. Nothing
 * here calls into the filesystem, so it is safe whatever the filesystem is doing.
 */
#include "ringfuse_i.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#define MOUNTINFO "/proc/self/mountinfo"

unsigned int rf_mount_flags_from_opts(const struct rf_opts *o)
{
	unsigned int f = 0;

	if (o->ro)
		f |= RF_MOUNT_RDONLY;
	if (o->mount_flags & MS_NOATIME)
		f |= RF_MOUNT_NOATIME;
	else if (o->mount_flags & MS_STRICTATIME)
		f |= RF_MOUNT_STRICTATIME;
	if (o->mount_flags & MS_NODIRATIME)
		f |= RF_MOUNT_NODIRATIME;
	return f;
}

/* Is word one of the comma-separated words of list? */
static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; p && *p;) {
		size_t len = strcspn(p, ",");

		if (len == n && !strncmp(p, word, n))
			return true;
		p += len;
		if (*p == ',')
			p++;
	}
	return false;
}

/* The kernel shows "relatime" or "noatime" for those modes and neither for strictatime. */
static unsigned int flags_of(const char *mnt_opts, const char *super_opts)
{
	unsigned int f = 0;

	if (has_word(mnt_opts, "ro") || has_word(super_opts, "ro"))
		f |= RF_MOUNT_RDONLY;
	if (has_word(mnt_opts, "noatime"))
		f |= RF_MOUNT_NOATIME;
	else if (!has_word(mnt_opts, "relatime"))
		f |= RF_MOUNT_STRICTATIME;
	if (has_word(mnt_opts, "nodiratime"))
		f |= RF_MOUNT_NODIRATIME;
	return f;
}

/* The MS_* flags a remount must pass to keep what the mount has. */
static unsigned long ms_flags_of(const char *mnt_opts, const char *super_opts)
{
	static const struct {
		const char *word;
		unsigned long flag;
		bool super; /* a superblock flag, shown with the filesystem's options */
	} words[] = {
		{"ro", MS_RDONLY, false},
		{"nosuid", MS_NOSUID, false},
		{"nodev", MS_NODEV, false},
		{"noexec", MS_NOEXEC, false},
		{"noatime", MS_NOATIME, false},
		{"relatime", MS_RELATIME, false},
		{"nodiratime", MS_NODIRATIME, false},
		{"nosymfollow", MS_NOSYMFOLLOW, false},
		{"sync", MS_SYNCHRONOUS, true},
		{"dirsync", MS_DIRSYNC, true},
		{"lazytime", MS_LAZYTIME, true},
	};
	unsigned long f = 0;

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (has_word(words[i].super ? super_opts : mnt_opts, words[i].word))
			f |= words[i].flag;
	if (!(f & (MS_NOATIME | MS_RELATIME)))
		f |= MS_STRICTATIME;
	return f;
}

/* Undo the octal escapes (\040 for a space) of a mount table path, in place. */
static void unescape(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') << 6 | (s[2] - '0') << 3 | (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/*
 * One mountinfo line: "id parent major:minor root mountpoint mount-options [optional...] -
 * fstype source super-options". Fills the pointers into line (cut up) and returns true if it
 * has them all.
 */
static bool split_line(char *line, char **dev, char **mpoint, char **mnt_opts, char **fstype,
		       char **super_opts)
{
	char *save = NULL, *tok;
	int field = 0;
	bool after_sep = false;
	int after = 0;

	*dev = *mpoint = *mnt_opts = *fstype = *super_opts = NULL;
	line[strcspn(line, "\n")] = '\0';
	for (tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
		if (after_sep) {
			if (after == 0)
				*fstype = tok;
			else if (after == 2)
				*super_opts = tok;
			after++;
			continue;
		}
		if (field == 2)
			*dev = tok;
		else if (field == 4)
			*mpoint = tok;
		else if (field == 5)
			*mnt_opts = tok;
		else if (field > 5 && !strcmp(tok, "-"))
			after_sep = true;
	}
	return after >= 3 && *dev && *mpoint && *mnt_opts;
}

int rf_mount_table_lookup(const rf_session *se, const char *want_dev, struct rf_mount_entry *e)
{
	FILE *f = fopen(MOUNTINFO, "re");
	char *line = NULL;
	size_t cap = 0;
	int ret = -ENOENT;

	if (!f)
		return -errno;
	while (getline(&line, &cap, f) >= 0) {
		char *ldev, *mpoint, *mnt_opts, *fstype, *super_opts;

		if (!split_line(line, &ldev, &mpoint, &mnt_opts, &fstype, &super_opts))
			continue;
		if (strncmp(fstype, "fuse", 4) || (fstype[4] && fstype[4] != '.'))
			continue;
		unescape(mpoint);
		if (strcmp(mpoint, se->mountpoint) || (want_dev && strcmp(ldev, want_dev)))
			continue;
		/* Mounts stack: the last line for the mountpoint is the one on top. */
		if (e) {
			snprintf(e->dev, sizeof(e->dev), "%s", ldev);
			e->flags = flags_of(mnt_opts, super_opts);
			e->ms_flags = ms_flags_of(mnt_opts, super_opts);
		}
		ret = 0;
	}
	free(line);
	fclose(f);
	return ret;
}

unsigned int rf_session_mount_flags(const rf_session *se)
{
	return atomic_load_explicit(&se->mount_flags, memory_order_relaxed);
}

/*
 * Store the flags of our mount as the table now has them. fusermount3 cannot mount with
 * nodiratime or strictatime, so on such a mount those keep what the options asked for.
 */
static unsigned int mount_flags_now(rf_session *se, unsigned int table)
{
	if (se->nonroot_mount) {
		unsigned int asked = rf_mount_flags_from_opts(&se->opts);
		unsigned int atime = RF_MOUNT_NOATIME | RF_MOUNT_STRICTATIME;

		table |= asked & RF_MOUNT_NODIRATIME;
		if (!(table & RF_MOUNT_NOATIME))
			table = (table & ~atime) | (asked & RF_MOUNT_STRICTATIME);
	}
	return table;
}

void rf_mount_flags_refresh(rf_session *se, bool announce)
{
	/* The watch and a STATFS may both look; one at a time, so remount calls never overlap. */
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	struct rf_mount_entry e;
	unsigned int now, old;

	if (!se->mount_dev[0])
		return;
	pthread_mutex_lock(&lock);
	if (rf_mount_table_lookup(se, se->mount_dev, &e) < 0) {
		pthread_mutex_unlock(&lock);
		return; /* unmounted: the last flags stay */
	}
	now = mount_flags_now(se, e.flags);
	old = atomic_exchange(&se->mount_flags, now);
	if (now == old || !announce) {
		pthread_mutex_unlock(&lock);
		return;
	}
	rf_log(RF_LOG_INFO, "ringfuse: %s remounted %s,%s%s", se->mountpoint,
	       now & RF_MOUNT_RDONLY ? "ro" : "rw",
	       now & RF_MOUNT_NOATIME	    ? "noatime"
	       : now & RF_MOUNT_STRICTATIME ? "strictatime"
					    : "relatime",
	       now & RF_MOUNT_NODIRATIME ? ",nodiratime" : "");
	if (se->ops.remount && atomic_load(&se->initialized) &&
	    !__atomic_load_n(&se->destroyed, __ATOMIC_ACQUIRE))
		se->ops.remount(se->userdata, now);
	pthread_mutex_unlock(&lock);
}

static void *watch_main(void *arg)
{
	rf_session *se = arg;
	int tab = open(MOUNTINFO, O_RDONLY | O_CLOEXEC);
	struct pollfd p[2] = {{.fd = tab, .events = POLLPRI},
			      {.fd = se->watch_wake, .events = POLLIN}};

	if (tab < 0) {
		rf_log(RF_LOG_WARN, "ringfuse: cannot watch %s (%s): remounts will go unnoticed",
		       MOUNTINFO, strerror(errno));
		return NULL;
	}
	/* A change between the mount and the open above would otherwise be missed. */
	rf_mount_flags_refresh(se, true);
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		/* poll() itself took note of the change; re-reading finds what it was. */
		if (p[0].revents & (POLLPRI | POLLERR))
			rf_mount_flags_refresh(se, true);
	}
	close(tab);
	return NULL;
}

void rf_mount_watch_start(rf_session *se)
{
	sigset_t old;

	if (!se->mounted || se->watching)
		return;
	se->watch_wake = eventfd(0, EFD_CLOEXEC);
	if (se->watch_wake < 0) {
		rf_log(RF_LOG_WARN, "ringfuse: no eventfd (%s): remounts will go unnoticed",
		       strerror(errno));
		return;
	}
	/* Signals stay with the thread in rf_session_run(). */
	rf_block_signals(&old);
	se->watching = pthread_create(&se->watch_thread, NULL, watch_main, se) == 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!se->watching) {
		close(se->watch_wake);
		rf_log(RF_LOG_WARN, "ringfuse: cannot start the mount table watch: remounts "
				    "will go unnoticed");
	}
}

void rf_mount_watch_stop(rf_session *se)
{
	uint64_t one = 1;

	if (!se->watching)
		return;
	if (write(se->watch_wake, &one, sizeof(one)) < 0)
		rf_log(RF_LOG_WARN, "ringfuse: waking the mount table watch failed");
	pthread_join(se->watch_thread, NULL);
	close(se->watch_wake);
	se->watching = false;
}

/* The kernel's rule (atime_needs_update(), relatime_need_update()) for a local filesystem. */
int rf_atime_due(const rf_session *se, mode_t mode, const struct timespec *atime,
		 const struct timespec *mtime, const struct timespec *ctime)
{
	unsigned int f = rf_session_mount_flags(se);
	struct timespec now;

	if (f & (RF_MOUNT_RDONLY | RF_MOUNT_NOATIME))
		return 0;
	if ((f & RF_MOUNT_NODIRATIME) && S_ISDIR(mode))
		return 0;
	if (f & RF_MOUNT_STRICTATIME)
		return 1;
	/* relatime: when atime is not newer than mtime or ctime, or is a day old */
	if (mtime->tv_sec > atime->tv_sec ||
	    (mtime->tv_sec == atime->tv_sec && mtime->tv_nsec >= atime->tv_nsec))
		return 1;
	if (ctime->tv_sec > atime->tv_sec ||
	    (ctime->tv_sec == atime->tv_sec && ctime->tv_nsec >= atime->tv_nsec))
		return 1;
	clock_gettime(CLOCK_REALTIME_COARSE, &now);
	return now.tv_sec - atime->tv_sec >= 24 * 3600;
}
