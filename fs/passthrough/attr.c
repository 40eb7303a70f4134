/*
 * ringfuse-passthrough attributes: getattr, setattr (as the caller, with the two retries the
 * kernel's changes on behalf of non-owners need), access, readlink.
 */
#include "passthrough.h"

void pt_getattr(rf_req *req, rf_ino ino, struct rf_file_info *fi)
{
	struct stat st;
	int err = stat_fd(inode_of(ino)->fd, &st);

	(void)fi;
	if (err) {
		reply_status(req, err);
		return;
	}
	st.st_ino = ino_out(st.st_dev, st.st_ino);
	rf_reply_attr(req, &st, fs.timeout);
}

static int set_owner(struct pt_inode *in, const struct stat *attr, int to_set)
{
	uid_t uid = (to_set & RF_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
	gid_t gid = (to_set & RF_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

	if (fchownat(in->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	return 0;
}

static int set_size(struct pt_inode *in, off_t size, const struct rf_file_info *fi)
{
	char path[PROC_PATH_MAX];

	if (S_ISDIR(in->type))
		return -EISDIR;
	if (!S_ISREG(in->type))
		return -EINVAL;
	if (fi && fi->fh_valid)
		return ftruncate(fh_fd(fi), size) < 0 ? neg_errno() : 0;
	return truncate(proc_path(in->fd, path), size) < 0 ? neg_errno() : 0;
}

static int set_times(struct pt_inode *in, const struct stat *attr, int to_set)
{
	struct timespec tv[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};

	if (to_set & RF_SET_ATTR_ATIME_NOW)
		tv[0].tv_nsec = UTIME_NOW;
	else if (to_set & RF_SET_ATTR_ATIME)
		tv[0] = attr->st_atim;
	if (to_set & RF_SET_ATTR_MTIME_NOW)
		tv[1].tv_nsec = UTIME_NOW;
	else if (to_set & RF_SET_ATTR_MTIME)
		tv[1] = attr->st_mtim;
	if (utimensat(in->fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return neg_errno();
	return 0;
}

static int set_mode(struct pt_inode *in, mode_t mode)
{
	char path[PROC_PATH_MAX];

	return chmod(proc_path(in->fd, path), mode & 07777) < 0 ? neg_errno() : 0;
}

/*
 * Does mode only take suid/sgid away from before, the mode the file had when the request
 * came? The kernel sends such a change on behalf of a writer, truncater or chown caller who
 * need not own the file (what a local filesystem does internally, with ATTR_FORCE); a chmod(2)
 * by a non-owner never reaches us with default_permissions on.
 */
static bool only_drops_privs(mode_t mode, mode_t before)
{
	const mode_t privs = S_ISUID | S_ISGID;

	mode &= 07777;
	before &= 07777;
	return (mode & ~privs) == (before & ~privs) && !(mode & privs & ~before);
}

/*
 * The filesystem underneath, acting for the caller, may have cleared more than the kernel's
 * own rule asks for (sgid of a file the caller's groups do not own, on truncate): drop what the
 * request drops from what the file has now, and add nothing back.
 */
static int set_mode_for(struct creds *c, struct pt_inode *in, mode_t mode, mode_t before)
{
	struct stat st;
	int err;

	if (!only_drops_privs(mode, before))
		return set_mode(in, mode);
	err = stat_fd(in->fd, &st);
	if (err)
		return err;
	mode = st.st_mode & 07777 & ~(before & ~mode & (S_ISUID | S_ISGID));
	err = set_mode(in, mode);
	if (err == -EPERM && c->switched) {
		creds_pause(c);
		err = set_mode(in, mode);
		creds_resume(c);
	}
	return err;
}

/*
 * With writeback the kernel keeps c/mtime itself and sends them as explicit times, also for a
 * plain touch or after a write by someone who does not own the file, once it has checked the
 * caller's right (default_permissions). Explicit times need ownership underneath: for a caller
 * who may write the file, set them with the server's rights, which is what touch allows.
 */
static int set_times_for(struct creds *c, struct pt_inode *in, const struct stat *attr, int to_set)
{
	int err = set_times(in, attr, to_set);

	if (err != -EPERM || !fs.writeback || !c->switched)
		return err;
	if (syscall(SYS_faccessat2, in->fd, "", W_OK, AT_EMPTY_PATH | AT_EACCESS) < 0)
		return err;
	creds_pause(c);
	err = set_times(in, attr, to_set);
	creds_resume(c);
	return err;
}

/*
 * Size, times and mode, then the owner last: a request that fails half-way must not leave a
 * chown applied. The kernel sends a mode together with an owner only to clear suid/sgid, which
 * the chown underneath does by its own rules too.
 */
static int apply_setattr(rf_req *req, struct pt_inode *in, const struct stat *attr, int to_set,
			 const struct rf_file_info *fi)
{
	const int times = RF_SET_ATTR_ATIME | RF_SET_ATTR_MTIME | RF_SET_ATTR_ATIME_NOW |
			  RF_SET_ATTR_MTIME_NOW;
	struct stat before;
	struct creds c;
	int err = (to_set & RF_SET_ATTR_MODE) ? stat_fd(in->fd, &before) : 0;

	if (!err)
		err = creds_enter(req, &c);
	if (err)
		return err;
	if (to_set & RF_SET_ATTR_SIZE)
		err = set_size(in, attr->st_size, fi);
	if (!err && (to_set & times))
		err = set_times_for(&c, in, attr, to_set);
	if (!err && (to_set & RF_SET_ATTR_MODE))
		err = set_mode_for(&c, in, attr->st_mode, before.st_mode);
	if (!err && (to_set & (RF_SET_ATTR_UID | RF_SET_ATTR_GID)))
		err = set_owner(in, attr, to_set);
	creds_leave(&c);
	return err;
}

void pt_setattr(rf_req *req, rf_ino ino, struct stat *attr, int to_set, struct rf_file_info *fi)
{
	struct pt_inode *in = inode_of(ino);
	struct stat st;
	int err = apply_setattr(req, in, attr, to_set, fi);

	if (!err)
		err = stat_fd(in->fd, &st);
	if (err) {
		reply_status(req, err);
		return;
	}
	st.st_ino = ino_out(st.st_dev, st.st_ino);
	rf_reply_attr(req, &st, fs.timeout);
}

void pt_readlink(rf_req *req, rf_ino ino)
{
	char buf[PATH_MAX + 1];
	ssize_t n = atime_readlink(inode_of(ino), buf, sizeof(buf));

	if (n < 0)
		reply_status(req, neg_errno());
	else if ((size_t)n == sizeof(buf))
		reply_status(req, -ENAMETOOLONG);
	else {
		buf[n] = '\0';
		rf_reply_readlink(req, buf);
	}
}

void pt_access(rf_req *req, rf_ino ino, int mask)
{
	struct creds c;
	int err = creds_enter(req, &c);

	/* AT_EACCESS: check with the (switched) filesystem identity, not the real uid. */
	if (!err) {
		if (syscall(SYS_faccessat2, inode_of(ino)->fd, "", mask,
			    AT_EMPTY_PATH | AT_EACCESS | AT_SYMLINK_NOFOLLOW) < 0)
			err = neg_errno();
		creds_leave(&c);
	}
	reply_status(req, err);
}
