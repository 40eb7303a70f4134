/*
 * ringfuse-passthrough access times. The kernel never updates atime on a FUSE filesystem;
 * passthrough lets SOURCE's filesystem record the accesses the daemon makes for the caller
 * (reading a file, listing a directory, reading a link), so that SOURCE's atime is the one the
 * mount shows, under the rules of the FUSE mount's atime mode:
 *
 *   native  the mode is the one SOURCE is mounted with (relatime on relatime, the usual case):
 *           SOURCE's own updates are exactly right, and cost nothing.
 *   never   noatime, a read-only mount, or nodiratime for a directory: backing descriptors are
 *           opened O_NOATIME (the daemon as root may; otherwise only for the files it owns).
 *   ours    any other pairing (strictatime on a relatime SOURCE, relatime on a noatime one):
 *           descriptors are O_NOATIME and the daemon decides itself (rf_atime_due()); a due
 *           update is made by reading the object through a private copy of SOURCE's mount
 *           (open_tree(OPEN_TREE_CLONE), in no namespace) set to strictatime, reached by file
 *           handle. A read updates atime without touching ctime, which setting it would. Needs
 *           root, and covers SOURCE's own filesystem, not filesystems mounted below it.
 *
 * Links cannot be opened O_NOATIME: outside the native mode they are read through a second
 * private copy, set to noatime. Everything else keeps going through SOURCE's own mount, so
 * filesystems mounted below SOURCE at any time are seen.
 *
 * The mode follows remounts (the library's remount op). A descriptor opened under another mode
 * is brought in line at its next access, which costs an fcntl() per access once the mode was
 * ever changed by a remount, and nothing before.
 */
#include "passthrough.h"

#include <sys/mount.h>
#include <sys/statvfs.h>

enum policy { NATIVE, NEVER, OURS };

static pthread_mutex_t apply_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint mode;	 /* the FUSE mount's RF_MOUNT_* */
static unsigned int source_mode; /* SOURCE's mount's, as RF_MOUNT_* (read once, at init) */
static atomic_bool remounted;	 /* the atime mode changed since the start */
/* Private copies of SOURCE's mount, made once a mode needs them: one that records every
 * access (strictatime), one that records none (noatime, to read links quietly). */
static _Atomic int touch_fd = -1, quiet_fd = -1;

static enum policy policy(unsigned int m, bool dir)
{
	const unsigned int atime = RF_MOUNT_NOATIME | RF_MOUNT_STRICTATIME;

	if ((m & (RF_MOUNT_RDONLY | RF_MOUNT_NOATIME)) || (dir && (m & RF_MOUNT_NODIRATIME)))
		return NEVER;
	if ((m & atime) == (source_mode & atime) && !(dir && (source_mode & RF_MOUNT_NODIRATIME)))
		return NATIVE;
	return OURS;
}

static int copy_mount(unsigned int atime_attr)
{
	struct mount_attr attr = {.attr_set = atime_attr,
				  .attr_clr = MOUNT_ATTR__ATIME | MOUNT_ATTR_NODIRATIME};
	int fd = open_tree(fs.root.fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);

	if (fd >= 0 && mount_setattr(fd, "", AT_EMPTY_PATH, &attr, sizeof(attr)) == 0) {
		/* open_by_handle_at() wants a real descriptor, not open_tree()'s O_PATH one; this
		 * one keeps the copy alive. */
		int dir = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		close(fd);
		if (dir >= 0)
			return dir;
		fd = -1;
	}
	fprintf(stderr,
		"ringfuse-passthrough: cannot copy SOURCE's mount (%s): access times partly "
		"follow SOURCE's own mount\n",
		strerror(errno));
	if (fd >= 0)
		close(fd);
	return -1;
}

void atime_apply(void)
{
	unsigned int m, old;

	pthread_mutex_lock(&apply_lock);
	m = rf_session_mount_flags(fs.se);
	old = atomic_exchange(&mode, m);
	if (old != m)
		atomic_store(&remounted, true);
	/* Only root can copy mounts, and only root reads every object by handle. */
	if (fs.switch_creds && atomic_load(&touch_fd) < 0 &&
	    (policy(m, false) != NATIVE || policy(m, true) != NATIVE)) {
		/* A remount may come after init dropped CAP_SYS_ADMIN on this thread. */
		bool raised = caps_raise(CAP_SYS_ADMIN) == 0;

		atomic_store(&quiet_fd, copy_mount(MOUNT_ATTR_NOATIME));
		atomic_store(&touch_fd, copy_mount(MOUNT_ATTR_STRICTATIME));
		if (raised)
			caps_lower(CAP_SYS_ADMIN);
	}
	pthread_mutex_unlock(&apply_lock);
}

void atime_init(void)
{
	struct statvfs sv;

	if (fstatvfs(fs.root.fd, &sv) == 0) {
		if (sv.f_flag & ST_NOATIME)
			source_mode |= RF_MOUNT_NOATIME;
		else if (!(sv.f_flag & ST_RELATIME))
			source_mode |= RF_MOUNT_STRICTATIME;
		if (sv.f_flag & ST_NODIRATIME)
			source_mode |= RF_MOUNT_NODIRATIME;
	}
	atomic_store(&mode, rf_session_mount_flags(fs.se));
	atime_apply();
	atomic_store(&remounted, false);
}

/* Give fd O_NOATIME or take it away, as the mode asks. EPERM (not our file, not root) leaves
 * SOURCE's own mode in charge: nothing better is possible. */
static void set_noatime(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0 && !(fl & O_NOATIME) != !on)
		fcntl(fd, F_SETFL, on ? fl | O_NOATIME : fl & ~O_NOATIME);
}

void atime_opened(int fd, bool dir)
{
	if (policy(atomic_load_explicit(&mode, memory_order_relaxed), dir) != NATIVE)
		set_noatime(fd, true);
}

/* The object in on one of the private copies (by file handle), or -1. */
static int open_on(int mount_fd, const struct pt_inode *in, int flags)
{
	struct {
		struct file_handle h;
		unsigned char room[MAX_HANDLE_SZ];
	} fh;
	int mount_id;

	/* A handle only means something on its own filesystem: not one mounted below SOURCE. */
	if (mount_fd < 0 || in->dev != fs.root.dev)
		return -1;
	fh.h.handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(in->fd, "", &fh.h, &mount_id, AT_EMPTY_PATH) < 0)
		return -1;
	return open_by_handle_at(mount_fd, &fh.h, flags | O_CLOEXEC);
}

/* Access in through the strictatime copy: SOURCE records it. */
static void touch(const struct pt_inode *in)
{
	int fd =
		open_on(atomic_load(&touch_fd), in,
			S_ISLNK(in->type) ? O_PATH | O_NOFOLLOW : O_RDONLY | O_NONBLOCK | O_NOCTTY);
	char buf[512];
	ssize_t r = 0;

	if (fd < 0)
		return;
	if (S_ISREG(in->type))
		r = pread(fd, buf, 1, 0);
	else if (S_ISDIR(in->type))
		r = syscall(SYS_getdents64, fd, buf, sizeof(buf));
	else if (S_ISLNK(in->type))
		r = readlinkat(fd, "", buf, 1);
	(void)r; /* the caller's access succeeded; a missed update is not its error */
	close(fd);
}

static bool due(const struct pt_inode *in, int fd, unsigned int m)
{
	struct statx stx;
	struct timespec a, mt, c;

	if (m & RF_MOUNT_STRICTATIME)
		return true;
	if (statx(fd, "", AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW,
		  STATX_ATIME | STATX_MTIME | STATX_CTIME, &stx) < 0)
		return false;
	a = (struct timespec){stx.stx_atime.tv_sec, stx.stx_atime.tv_nsec};
	mt = (struct timespec){stx.stx_mtime.tv_sec, stx.stx_mtime.tv_nsec};
	c = (struct timespec){stx.stx_ctime.tv_sec, stx.stx_ctime.tv_nsec};
	return rf_atime_due(fs.se, in->type, &a, &mt, &c);
}

void atime_access(const struct pt_inode *in, int fd)
{
	unsigned int m = atomic_load_explicit(&mode, memory_order_relaxed);
	enum policy p = policy(m, S_ISDIR(in->type));

	if (atomic_load_explicit(&remounted, memory_order_relaxed))
		set_noatime(fd, p != NATIVE);
	if (p == OURS && due(in, fd, m))
		touch(in);
}

ssize_t atime_readlink(const struct pt_inode *in, char *buf, size_t size)
{
	unsigned int m = atomic_load_explicit(&mode, memory_order_relaxed);
	enum policy p = policy(m, false);
	int fd = p == NATIVE ? -1 : open_on(atomic_load(&quiet_fd), in, O_PATH | O_NOFOLLOW);
	ssize_t n;
	int err;

	/* A link cannot be opened O_NOATIME: outside the native mode it is read quietly through
	 * the noatime copy, and touched through the other one when the access is due. */
	n = readlinkat(fd >= 0 ? fd : in->fd, "", buf, size);
	err = errno;
	if (p == OURS && n >= 0 && due(in, in->fd, m))
		touch(in);
	if (fd >= 0)
		close(fd);
	errno = err;
	return n;
}
