/*
 * ringfuse-passthrough names: mknod, mkdir, symlink, link, unlink, rmdir and rename, each done
 * as the caller so that the filesystem underneath applies its own rules.
 */
#include "passthrough.h"

enum node_kind { NODE_DIR, NODE_SYMLINK, NODE_OTHER };

static int make_node(struct pt_inode *dir, const char *name, enum node_kind kind, mode_t mode,
		     dev_t rdev, const char *link)
{
	int r;

	switch (kind) {
	case NODE_DIR:
		r = mkdirat(dir->fd, name, mode);
		break;
	case NODE_SYMLINK:
		r = symlinkat(link, dir->fd, name);
		break;
	default:
		r = mknodat(dir->fd, name, mode, rdev);
		break;
	}
	return r < 0 ? neg_errno() : 0;
}

/* mkdir, mknod and symlink: create as the caller, then look the new name up as ourselves. */
static void create_node(rf_req *req, rf_ino parent, const char *name, enum node_kind kind,
			mode_t mode, dev_t rdev, const char *link)
{
	struct pt_inode *dir = inode_of(parent);
	struct rf_entry_param e;
	struct creds c;
	int err = check_name(name);

	if (!err)
		err = creds_enter(req, &c);
	if (!err) {
		err = make_node(dir, name, kind, mode, rdev, link);
		creds_leave(&c);
	}
	if (!err)
		err = lookup_name(dir, name, &e);
	if (err)
		reply_status(req, err);
	else
		reply_entry(req, &e);
}

void pt_mknod(rf_req *req, rf_ino parent, const char *name, mode_t mode, dev_t rdev)
{
	create_node(req, parent, name, NODE_OTHER, (mode & S_IFMT) | creds_create_mode(req, mode),
		    rdev, NULL);
}

void pt_mkdir(rf_req *req, rf_ino parent, const char *name, mode_t mode)
{
	create_node(req, parent, name, NODE_DIR, creds_create_mode(req, mode), 0, NULL);
}

void pt_symlink(rf_req *req, const char *link, rf_ino parent, const char *name)
{
	create_node(req, parent, name, NODE_SYMLINK, 0, 0, link);
}

void pt_link(rf_req *req, rf_ino ino, rf_ino newparent, const char *newname)
{
	struct pt_inode *in = inode_of(ino);
	char path[PROC_PATH_MAX];
	struct rf_entry_param e;
	struct creds c;
	int err = check_name(newname);

	/* linkat(AT_EMPTY_PATH) needs CAP_DAC_READ_SEARCH, which the caller's fsuid drops;
	 * following the magic link does not, and still applies protected_hardlinks. */
	if (!err)
		err = creds_enter(req, &c);
	if (!err) {
		if (linkat(AT_FDCWD, proc_path(in->fd, path), inode_of(newparent)->fd, newname,
			   AT_SYMLINK_FOLLOW) < 0)
			err = neg_errno();
		creds_leave(&c);
	}
	if (!err)
		err = entry_of_inode(in, &e);
	if (err)
		reply_status(req, err);
	else
		reply_entry(req, &e);
}

static void remove_name(rf_req *req, rf_ino parent, const char *name, int flags)
{
	struct creds c;
	int err = check_name(name);

	if (!err)
		err = creds_enter(req, &c);
	if (!err) {
		if (unlinkat(inode_of(parent)->fd, name, flags) < 0)
			err = neg_errno();
		creds_leave(&c);
	}
	reply_status(req, err);
}

void pt_unlink(rf_req *req, rf_ino parent, const char *name)
{
	remove_name(req, parent, name, 0);
}

void pt_rmdir(rf_req *req, rf_ino parent, const char *name)
{
	remove_name(req, parent, name, AT_REMOVEDIR);
}

void pt_rename(rf_req *req, rf_ino parent, const char *name, rf_ino newparent, const char *newname,
	       unsigned int flags)
{
	struct creds c;
	int err = check_name(name);

	if (!err)
		err = check_name(newname);
	if (!err)
		err = creds_enter(req, &c);
	if (!err) {
		if (renameat2(inode_of(parent)->fd, name, inode_of(newparent)->fd, newname, flags) <
		    0)
			err = neg_errno();
		creds_leave(&c);
	}
	reply_status(req, err);
}
