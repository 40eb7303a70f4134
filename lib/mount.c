/*
 * Mounting, remounting and unmounting. As root: open /dev/fuse and mount(2) it directly. As any
 * other user: run fusermount3, the setuid helper every FUSE installation ships, which checks what
 * an unprivileged user may mount (it forces nosuid,nodev and honours user_allow_other in
 * /etc/fuse.conf) and passes the /dev/fuse fd back over a socket.
 */
#include "ringfuse_i.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <sys/fsuid.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define FUSERMOUNT "fusermount3"

static const char *fs_name(const rf_session *se)
{
	if (se->opts.fsname)
		return se->opts.fsname;
	if (se->source)
		return se->source;
	return se->progname;
}

/* Options both mount paths share; fusermount3 validates them again for unprivileged users. */
static int common_opts(const rf_session *se, char *buf, size_t size)
{
	char max_read[32] = "";
	int n;

	if (se->opts.max_read)
		snprintf(max_read, sizeof(max_read), ",max_read=%u", se->opts.max_read);
	n = snprintf(
		buf, size, "%s%s%s%s", se->opts.default_permissions ? ",default_permissions" : "",
		se->opts.allow_other ? ",allow_other" : "", se->opts.ro ? ",ro" : "", max_read);

	return n < 0 || (size_t)n >= size ? -E2BIG : 0;
}

static int mount_as_root(rf_session *se)
{
	char type[128], opts[512], common[128];
	struct stat st;
	unsigned long flags = se->opts.mount_flags | (se->opts.ro ? MS_RDONLY : 0);
	int fd, n;

	fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		int err = errno;

		rf_log(RF_LOG_ERR, "ringfuse: cannot open /dev/fuse: %s%s", strerror(err),
		       err == ENOENT ? " (is the fuse module loaded?)" : "");
		return -err;
	}
	if (stat(se->mountpoint, &st) < 0 || common_opts(se, common, sizeof(common))) {
		close(fd);
		return -EINVAL;
	}
	n = snprintf(opts, sizeof(opts), "fd=%d,rootmode=%o,user_id=%u,group_id=%u%s", fd,
		     st.st_mode & S_IFMT, getuid(), getgid(), common);
	if (n < 0 || (size_t)n >= sizeof(opts)) {
		close(fd);
		return -E2BIG;
	}
	snprintf(type, sizeof(type), "fuse%s%s", se->opts.subtype ? "." : "",
		 se->opts.subtype ? se->opts.subtype : "");
	if (mount(fs_name(se), se->mountpoint, type, flags, opts) < 0) {
		int err = errno;

		rf_log(RF_LOG_ERR, "ringfuse: mounting %s failed: %s", se->mountpoint,
		       strerror(err));
		close(fd);
		return -err;
	}
	se->fd = fd;
	return 0;
}

static int receive_fd(int sock)
{
	char byte;
	struct iovec iov = {&byte, 1};
	char ctl[CMSG_SPACE(sizeof(int))];
	struct msghdr msg = {.msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl,
			     .msg_controllen = sizeof(ctl)};
	struct cmsghdr *cm;
	ssize_t n;
	int fd;

	do {
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n <= 0)
		return -EIO;
	cm = CMSG_FIRSTHDR(&msg);
	if (!cm || cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
	    cm->cmsg_len != CMSG_LEN(sizeof(int)))
		return -EIO;
	memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
	return fd;
}

/* fusermount3 takes mount flags as option words; it enforces nosuid,nodev itself. It knows no
 * word for nodiratime or strictatime: the server honours those itself (mount_table.c). */
static void flag_words(const rf_session *se, char *buf, size_t size)
{
	static const struct {
		unsigned long flag;
		const char *word;
	} words[] = {{MS_NOEXEC, ",noexec"},
		     {MS_NOATIME, ",noatime"},
		     {MS_SYNCHRONOUS, ",sync"},
		     {MS_DIRSYNC, ",dirsync"}};
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
		if ((se->opts.mount_flags & words[i].flag) && used + strlen(words[i].word) < size) {
			strcpy(buf + used, words[i].word);
			used += strlen(words[i].word);
		}
	}
}

static int mount_with_fusermount(rf_session *se)
{
	char opts[512], common[128], flags[96];
	int sv[2], status, fd, n;
	pid_t pid;

	if (common_opts(se, common, sizeof(common)))
		return -EINVAL;
	flag_words(se, flags, sizeof(flags));
	n = snprintf(opts, sizeof(opts), "fsname=%s%s%s%s%s%s", fs_name(se),
		     se->opts.subtype ? ",subtype=" : "", se->opts.subtype ? se->opts.subtype : "",
		     common, flags, se->opts.auto_unmount ? ",auto_unmount" : "");
	if (n < 0 || (size_t)n >= sizeof(opts))
		return -E2BIG;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0) {
		char env[32];

		/* The child end must survive exec: it is how the fd comes back. */
		fcntl(sv[0], F_SETFD, 0);
		snprintf(env, sizeof(env), "%d", sv[0]);
		setenv("_FUSE_COMMFD", env, 1);
		execlp(FUSERMOUNT, FUSERMOUNT, "-o", opts, "--", se->mountpoint, (char *)NULL);
		fprintf(stderr, "ringfuse: cannot run %s: %s\n", FUSERMOUNT, strerror(errno));
		_exit(127);
	}
	close(sv[0]);
	fd = receive_fd(sv[1]);
	if (fd >= 0 && se->opts.auto_unmount) {
		/* fusermount3 stays and watches its end of the socket: it unmounts when the socket
		 * closes, that is when this process (or the daemon it forks) is gone. */
		se->fusermount_watches = true;
		se->fusermount_sock = sv[1];
		se->fusermount_pid = pid;
		se->fd = fd;
		se->nonroot_mount = true;
		return 0;
	}
	close(sv[1]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (fd < 0) {
		rf_log(RF_LOG_ERR, "ringfuse: %s could not mount %s (exit status %d)", FUSERMOUNT,
		       se->mountpoint, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return -EPERM;
	}
	se->fd = fd;
	se->nonroot_mount = true;
	return 0;
}

int rf_mount(rf_session *se)
{
	int ret;

	/* auto_unmount needs fusermount3 to watch the daemon, also for root. */
	if (geteuid() == 0 && !se->opts.auto_unmount)
		ret = mount_as_root(se);
	else
		ret = mount_with_fusermount(se);
	if (ret == 0) {
		struct rf_mount_entry e;

		se->mounted = true;
		/* Reading the table never calls into the filesystem: safe while nobody serves it.
		 */
		if (rf_mount_table_lookup(se, NULL, &e) == 0)
			snprintf(se->mount_dev, sizeof(se->mount_dev), "%s", e.dev);
		else
			se->mount_dev[0] = '\0';
		rf_mount_flags_refresh(se, false);
	}
	return ret;
}

int rf_remount(rf_session *se)
{
	const struct rf_opts *o = &se->opts;
	struct rf_mount_entry e;
	unsigned long flags;
	struct statfs sf;
	char *abs = realpath(se->mountpoint, NULL);

	if (!abs) {
		int err = errno;

		rf_log(RF_LOG_ERR, "ringfuse: cannot remount %s: %s", se->mountpoint,
		       strerror(err));
		return -err;
	}
	free(se->mountpoint);
	se->mountpoint = abs;
	if (rf_mount_table_lookup(se, NULL, &e) < 0) {
		rf_log(RF_LOG_ERR, "ringfuse: cannot remount %s: not a FUSE mount", se->mountpoint);
		return -EINVAL;
	}
	/* MS_REMOUNT sets every per-mount flag: keep those the options do not change. FUSE
	 * ignores filesystem options on a remount and refuses only mandatory locking. */
	flags = (e.ms_flags & ~o->flags_clear) | o->flags_set;
	if (o->ro_given)
		flags = o->ro ? flags | MS_RDONLY : flags & ~MS_RDONLY;
	if (mount(NULL, se->mountpoint, NULL, MS_REMOUNT | flags, NULL) < 0) {
		int err = errno;

		rf_log(RF_LOG_ERR, "ringfuse: remounting %s failed: %s%s", se->mountpoint,
		       strerror(err),
		       err == EPERM   ? " (remounting needs root)"
		       : err == EBUSY ? " (files are open for writing)"
				      : "");
		return -err;
	}
	/* The server learns of the new flags from the mount table, and reads it again for each
	 * statfs: once this one is answered, it acts on them. */
	if (statfs(se->mountpoint, &sf) < 0)
		rf_log(RF_LOG_WARN, "ringfuse: %s does not answer: %s", se->mountpoint,
		       strerror(errno));
	return 0;
}

bool rf_mount_still_there(const rf_session *se)
{
	struct rf_mount_entry e;

	/* Ours must be the top one: unmounting the mountpoint takes away whatever is on top. */
	return se->mounted && se->mount_dev[0] && rf_mount_table_lookup(se, NULL, &e) == 0 &&
	       strcmp(e.dev, se->mount_dev) == 0;
}

/*
 * A filesystem may have narrowed the identity and the capabilities of the thread that serves
 * /dev/fuse while it acted for callers (ringfuse-passthrough keeps CAP_SYS_ADMIN permitted but
 * not effective): unmounting needs the process's own filesystem ids and CAP_SYS_ADMIN back.
 */
static void regain_privileges(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct d[2];

	setfsuid(geteuid());
	setfsgid(getegid());
	if (syscall(SYS_capget, &h, d) == 0 &&
	    (d[0].effective != d[0].permitted || d[1].effective != d[1].permitted)) {
		d[0].effective = d[0].permitted;
		d[1].effective = d[1].permitted;
		syscall(SYS_capset, &h, d);
	}
}

void rf_unmount(rf_session *se)
{
	if (!se->mounted)
		return;
	se->mounted = false;
	if (!se->nonroot_mount) {
		/* Detach: a busy mount still goes away for new lookups; open files are failed
		 * when the fd closes and the connection is aborted. */
		regain_privileges();
		if (umount2(se->mountpoint, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
			rf_log(RF_LOG_WARN, "ringfuse: unmounting %s failed: %s", se->mountpoint,
			       strerror(errno));
		return;
	}
	pid_t pid = fork();

	if (pid == 0) {
		execlp(FUSERMOUNT, FUSERMOUNT, "-u", "-q", "-z", "--", se->mountpoint,
		       (char *)NULL);
		_exit(127);
	}
	if (pid > 0) {
		int status;

		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	if (se->fusermount_watches) {
		int status;

		/* The watcher finds nothing left to unmount and exits (not our child any more
		 * once the daemon detached: ECHILD). */
		se->fusermount_watches = false;
		close(se->fusermount_sock);
		while (waitpid(se->fusermount_pid, &status, 0) < 0 && errno == EINTR)
			;
	}
}
