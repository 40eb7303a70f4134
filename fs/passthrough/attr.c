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
	if (err)
		reply_status(req, err);
	else
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
 * Does mode only take suid/sgid away from the current mode? The kernel sends such a change on
 * behalf of a writer or truncater who need not own the file (what a local filesystem does
 * internally, with ATTR_FORCE); a chmod(2) by a non-owner never reaches us with
 * default_permissions on.
 */
static bool only_drops_privs(struct pt_inode *in, mode_t mode)
{
	const mode_t privs = S_ISUID | S_ISGID;
	struct stat st;

	if (stat_fd(in->fd, &st) < 0)
		return false;
	return (mode & 07777 & ~privs) == (st.st_mode & 07777 & ~privs) &&
	       !(mode & privs & ~st.st_mode);
}

static int set_mode_for(struct creds *c, struct pt_inode *in, mode_t mode)
{
	int err = set_mode(in, mode);

	if (err == -EPERM && c->switched && only_drops_privs(in, mode)) {
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

/* Owner, size and times, then mode last, so the mode asked for is the one that stays. */
static int apply_setattr(rf_req *req, struct pt_inode *in, const struct stat *attr, int to_set,
			 const struct rf_file_info *fi)
{
	const int times = RF_SET_ATTR_ATIME | RF_SET_ATTR_MTIME | RF_SET_ATTR_ATIME_NOW |
			  RF_SET_ATTR_MTIME_NOW;
	struct creds c;
	int err = creds_enter(req, &c);

	if (err)
		return err;
	if (to_set & (RF_SET_ATTR_UID | RF_SET_ATTR_GID))
		err = set_owner(in, attr, to_set);
	if (!err && (to_set & RF_SET_ATTR_SIZE))
		err = set_size(in, attr->st_size, fi);
	if (!err && (to_set & times))
		err = set_times_for(&c, in, attr, to_set);
	if (!err && (to_set & RF_SET_ATTR_MODE))
		err = set_mode_for(&c, in, attr->st_mode);
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
	if (err)
		reply_status(req, err);
	else
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
