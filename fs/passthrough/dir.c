/*
 * ringfuse-passthrough directories: an open directory is a DIR stream whose d_off cookies are
 * the readdir offsets; readdirplus looks each name up like a lookup would.
 */
#include "passthrough.h"

static bool is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

static struct pt_dir *dir_of(const struct rf_file_info *fi)
{
	return (struct pt_dir *)(uintptr_t)fi->fh;
}

/* Open directories are listed by the shard of their inode: a session that ends (signal, abort)
 * without RELEASEDIR for them still frees them. */
static void dir_track(struct pt_dir *d, struct pt_inode *in)
{
	struct shard *s = shard_of(key_hash(in->dev, in->ino));

	d->shard = s;
	pthread_mutex_lock(&s->lock);
	d->prev = NULL;
	d->next = s->dirs;
	if (s->dirs)
		s->dirs->prev = d;
	s->dirs = d;
	pthread_mutex_unlock(&s->lock);
}

static void dir_close(struct pt_dir *d)
{
	struct shard *s = d->shard;

	pthread_mutex_lock(&s->lock);
	if (d->prev)
		d->prev->next = d->next;
	else
		s->dirs = d->next;
	if (d->next)
		d->next->prev = d->prev;
	pthread_mutex_unlock(&s->lock);
	closedir(d->dp);
	free(d);
}

/* The kernel checked the caller's right to list it; this thread may act for someone else. */
static int open_dir(struct pt_inode *in)
{
	int fd = openat(in->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		fd = neg_errno();
	if (creds_retry_privileged(fd)) {
		fd = openat(in->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			fd = neg_errno();
		creds_settle();
	}
	return fd;
}

void pt_opendir(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	struct pt_dir *d = calloc(1, sizeof(*d));
	int fd, err = 0;

	if (!d) {
		reply_status(req, -ENOMEM);
		return;
	}
	fd = open_dir(inode_of(ino));
	if (fd >= 0)
		atime_opened(fd, true);
	if (fd < 0)
		err = fd;
	else if (!(d->dp = fdopendir(fd))) {
		err = neg_errno();
		close(fd);
	}
	if (err) {
		free(d);
		reply_status(req, err);
		return;
	}
	dir_track(d, inode_of(ino));
	fi->fh = (uint64_t)(uintptr_t)d;
	fi->keep_cache = fs.cache == CACHE_ALWAYS;
	fi->cache_readdir = fs.cache == CACHE_ALWAYS;
	if (rf_reply_open(req, fi) < 0)
		dir_close(d);
}

/* Bytes used in buf, 0 when the entry does not fit, or -ENOENT when it vanished. */
static ssize_t add_dirent(rf_req *req, struct pt_inode *dir, char *buf, size_t room,
			  const struct dirent *de, bool plus)
{
	struct rf_entry_param e;
	size_t len;
	int err;

	memset(&e, 0, sizeof(e));
	/* Names in dir are on its filesystem (a mountpoint's d_ino is the covered directory's,
	 * as on the source). */
	e.attr.st_ino = ino_out(dir->dev, de->d_ino);
	e.attr.st_mode = DTTOIF(de->d_type);
	if (!plus) {
		len = rf_add_direntry(req, buf, room, de->d_name, &e.attr, de->d_off);
		return len > room ? 0 : (ssize_t)len;
	}
	/* The kernel takes no lookup on "." and ".." (and ignores their attributes). A name
	 * whose lookup fails for another reason than being gone (out of descriptors, say) is
	 * listed without attributes: the kernel looks it up when it is used. */
	if (!is_dot_or_dotdot(de->d_name)) {
		err = lookup_name(dir, de->d_name, &e);
		if (err == -ENOENT)
			return err;
		if (err) {
			e.ino = 0;
			e.attr_timeout = e.entry_timeout = 0;
		}
	}
	len = rf_add_direntry_plus(req, buf, room, de->d_name, &e, de->d_off);
	if (len > room) {
		if (e.ino)
			inode_put(inode_of(e.ino), 1);
		return 0;
	}
	return (ssize_t)len;
}

static void read_dir(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi,
		     bool plus)
{
	struct pt_dir *d = dir_of(fi);
	size_t cap, used = 0;
	char *buf = rf_reply_payload(req, &cap);
	int err = 0;

	if (!buf) {
		reply_status(req, -EIO);
		return;
	}
	if (size > cap)
		size = cap;
	atime_access(inode_of(ino), dirfd(d->dp));
	if (off != d->pos) {
		seekdir(d->dp, off);
		d->pos = off;
	}
	for (;;) {
		struct dirent *de;
		ssize_t n;

		errno = 0;
		de = readdir(d->dp);
		if (!de) {
			err = errno ? neg_errno() : 0;
			break;
		}
		d->pos = de->d_off;
		n = add_dirent(req, inode_of(ino), buf + used, size - used, de, plus);
		if (n == -ENOENT)
			continue;
		if (n < 0)
			err = (int)n;
		if (n <= 0)
			break;
		used += (size_t)n;
	}
	/* Entries already in the buffer carry lookups: send them and report the error, if it
	 * persists, on the next call (which seeks back to the entry that failed). */
	if (err && !used)
		reply_status(req, err);
	else
		rf_reply_data(req, used);
}

void pt_readdir(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	read_dir(req, ino, size, off, fi, false);
}

void pt_readdirplus(rf_req *req, rf_ino ino, size_t size, off_t off, struct rf_file_info *fi)
{
	read_dir(req, ino, size, off, fi, true);
}

void pt_releasedir(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	(void)ino;
	dir_close(dir_of(fi));
	rf_reply_err(req, 0);
}

void pt_fsyncdir(rf_req *req, rf_ino ino, int datasync, struct rf_file_info *fi)
{
	(void)ino;
	rf_io_reply_fsync(req, dirfd(dir_of(fi)->dp), datasync);
}
