/*
 * ringfuse-passthrough open files: open, create and tmpfile make the backing descriptor fh
 * carries (as the caller when the open writes or creates), release closes it.
 */
#include "passthrough.h"

#define DIO_ALIGN 4096 /* O_DIRECT memory alignment when the filesystem does not say */

/* Where an open happens: a name under a directory, or an object's magic link. */
struct open_target {
	int dirfd;
	const char *name;
	mode_t mode; /* for O_CREAT / O_TMPFILE */
};

static int open_target(const struct open_target *t, int flags)
{
	int fd = openat(t->dirfd, t->name, flags, t->mode);

	return fd < 0 ? neg_errno() : fd;
}

/* Flags for the backing descriptor of a regular file. O_NONBLOCK means nothing to one, except
 * to io_uring, which would then fail I/O that has to wait with EAGAIN instead of waiting. */
static int backing_flags(int flags)
{
	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
	flags |= O_CLOEXEC;
	/* With writeback the kernel appends itself, at the end it knows. */
	if (fs.writeback)
		flags &= ~O_APPEND;
	return flags;
}

/* In writeback mode the kernel may read pages back of a file opened only for writing. */
static int widen(int flags)
{
	if (fs.writeback && (flags & O_ACCMODE) == O_WRONLY)
		return (flags & ~O_ACCMODE) | O_RDWR;
	return flags;
}

static bool open_needs_caller(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & (O_TRUNC | O_NOATIME | O_CREAT)) ||
	       (flags & O_TMPFILE) == O_TMPFILE;
}

/* The caller's groups an open as the caller takes (creds.c): truncating an existing file clears
 * set-group-ID by them; a new one (O_EXCL) has nothing to truncate. */
static enum creds_need open_need(int flags)
{
	if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL) || (flags & O_TMPFILE) == O_TMPFILE)
		return NEED_CREATE;
	if (flags & O_TRUNC)
		return NEED_GROUPS;
	return NEED_PERMISSION;
}

/* A read-write descriptor of the object fd is open on, with the server's rights. */
static int reopen_rdwr(int fd, int flags)
{
	char path[PROC_PATH_MAX];
	int keep = O_APPEND | O_DIRECT | O_DSYNC | O_SYNC | O_NOATIME | O_LARGEFILE;
	int r = openat(proc_dir(), proc_name(fd, path), (flags & keep) | O_RDWR | O_CLOEXEC);

	return r < 0 ? neg_errno() : r;
}

/*
 * Open as the caller when writing, truncating or creating. A write-only open that writeback
 * widened to read-write and that the caller may not read is retried as asked, which proves the
 * caller's right to write; the read-write descriptor the kernel needs then comes from that one.
 */
static int open_for_caller(rf_req *req, const struct open_target *t, int flags)
{
	int wide = widen(flags);
	struct creds c;
	int fd, narrow, err;

	if (!open_needs_caller(flags)) {
		/* The kernel checked the caller's right to read; this thread may act for someone
		 * else. */
		fd = open_target(t, wide);
		if (creds_retry_privileged(fd)) {
			fd = open_target(t, wide);
			creds_settle();
		}
		return fd;
	}
	err = creds_enter(req, open_need(flags), &c);
	if (err)
		return err;
	fd = open_target(t, wide);
	if (creds_widen(req, &c, fd))
		fd = open_target(t, wide);
	if (fd == -EACCES && wide != flags) {
		narrow = open_target(t, flags);
		fd = narrow;
		if (narrow >= 0) {
			creds_pause(&c);
			fd = reopen_rdwr(narrow, flags);
			creds_resume(&c);
			close(narrow);
		}
	}
	creds_leave(&c);
	return fd;
}

/* log2 of the memory alignment O_DIRECT I/O on fd needs. */
static unsigned int dio_align_shift(int fd)
{
	unsigned int align = DIO_ALIGN;
#ifdef STATX_DIOALIGN
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_mem_align &&
	    !(stx.stx_dio_mem_align & (stx.stx_dio_mem_align - 1)))
		align = stx.stx_dio_mem_align;
#endif
	return (unsigned int)__builtin_ctz(align);
}

/* Whether the data of a file of device dev lives in memory only, so that no read or write of it
 * waits for a device: known for SOURCE's filesystem, asked for others (mounted below it). */
static bool memory_backed(int fd, dev_t dev)
{
	return dev == fs.root.dev ? fs.root_in_memory : fd_in_memory(fd);
}

static void set_open_reply(struct rf_file_info *fi, int fd, dev_t dev)
{
	atime_opened(fd, false);
	fi->fh = (uint64_t)(uint32_t)fd;
	if (memory_backed(fd, dev))
		fi->fh |= FH_INLINE;
	if (fi->flags & O_DIRECT)
		fi->fh |= FH_DIRECT | (uint64_t)dio_align_shift(fd) << FH_ALIGN_SHIFT;
	/* Closing a read-only descriptor flushes nothing anywhere (a backing filesystem's flush
	 * writes back or checks what its writers left), nor does closing a tmpfs or ramfs file
	 * (pt_flush() would answer at once), and the locks of the caller are the kernel's own:
	 * spare close(2) the round trip. */
	fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY || (fi->fh & FH_INLINE);
	fi->direct_io = (fi->flags & O_DIRECT) != 0;
	fi->parallel_direct_writes = fi->direct_io;
	fi->keep_cache = fs.cache == CACHE_ALWAYS;
}

void pt_open(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	struct pt_inode *in = inode_of(ino);
	char path[PROC_PATH_MAX];
	struct open_target t = {proc_dir(), proc_name(in->fd, path), 0};
	int fd = open_for_caller(req, &t, backing_flags(fi->flags));

	if (fd < 0) {
		reply_status(req, fd);
		return;
	}
	set_open_reply(fi, fd, in->dev);
	passthrough_attach(req, in, fd, fi);
	if (rf_reply_open(req, fi) < 0) {
		passthrough_detach(req, in, fi->fh);
		close(fd);
	}
}

/* create and tmpfile: the inode comes from the opened descriptor, not from a second lookup of
 * the name, so it is the object we opened even if the name changed meanwhile. */
static void reply_created(rf_req *req, int fd, struct rf_file_info *fi)
{
	char path[PROC_PATH_MAX];
	struct rf_entry_param e;
	int ifd, err;

	ifd = openat(proc_dir(), proc_name(fd, path), O_PATH | O_CLOEXEC);
	err = ifd < 0 ? neg_errno() : entry_from_fd(ifd, &e);
	if (err) {
		close(fd);
		reply_status(req, err);
		return;
	}
	set_open_reply(fi, fd, e.attr.st_dev);
	passthrough_attach(req, inode_of(e.ino), fd, fi);
	if (rf_reply_create(req, &e, fi) < 0) {
		passthrough_detach(req, inode_of(e.ino), fi->fh);
		close(fd);
		inode_put(inode_of(e.ino), 1);
	}
}

/*
 * The file of a create: a new one, or without O_EXCL an existing regular file, and never
 * anything else. The kernel asks only for a name it found absent, but something may have
 * appeared there since on the source (a symlink, a FIFO that would block this thread, a
 * device the mount's nodev forbids opening): an existing name is looked at through an O_PATH
 * descriptor first, which opens nothing, and only a regular file is then opened, through it.
 */
static int create_file(rf_req *req, const struct open_target *t, int flags)
{
	char path[PROC_PATH_MAX];
	struct open_target again = {proc_dir(), path, 0};
	struct stat st;
	int fd = open_for_caller(req, t, flags | O_CREAT | O_EXCL | O_NOFOLLOW), pfd, err;

	if (fd != -EEXIST || (flags & O_EXCL))
		return fd;
	pfd = openat(t->dirfd, t->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0)
		return neg_errno();
	err = stat_fd(pfd, &st);
	if (!err && !S_ISREG(st.st_mode))
		err = S_ISDIR(st.st_mode) ? -EISDIR : -EEXIST;
	if (!err) {
		/* O_CREAT only so that it opens as the caller, like any create. */
		proc_name(pfd, path);
		err = open_for_caller(req, &again, flags | O_CREAT);
	}
	close(pfd);
	return err;
}

void pt_create(rf_req *req, rf_ino parent, const char *name, mode_t mode, struct rf_file_info *fi)
{
	struct open_target t = {inode_of(parent)->fd, name, creds_create_mode(req, mode)};
	int fd = check_name(name);

	/* O_EXCL is the caller's and must keep its meaning. */
	if (!fd)
		fd = create_file(req, &t, backing_flags(fi->flags) | (fi->flags & O_EXCL));
	if (fd < 0)
		reply_status(req, fd);
	else
		reply_created(req, fd, fi);
}

void pt_tmpfile(rf_req *req, rf_ino parent, mode_t mode, struct rf_file_info *fi)
{
	struct open_target t = {inode_of(parent)->fd, ".", creds_create_mode(req, mode)};
	/* O_EXCL stays: it makes the file unlinkable, as asked. */
	int flags = (fi->flags & ~(O_CREAT | O_TRUNC | O_NOCTTY | O_NOFOLLOW | O_TMPFILE)) |
		    O_TMPFILE | O_CLOEXEC;
	int fd;

	if (fs.writeback)
		flags &= ~O_APPEND;
	fd = open_for_caller(req, &t, flags);
	if (fd < 0)
		reply_status(req, fd);
	else
		reply_created(req, fd, fi);
}

void pt_release(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	passthrough_detach(req, inode_of(ino), fi->fh);
	close(fh_fd(fi));
	rf_reply_err(req, 0);
}
