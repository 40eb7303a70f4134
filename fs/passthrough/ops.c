/*
 * ringfuse-passthrough operations table, and the operations that concern the whole filesystem:
 * init (what to ask of the kernel), remount, statfs, syncfs.
 */
#include "passthrough.h"

#include <sys/statvfs.h>

static void pt_init(void *userdata, struct rf_conn_info *conn)
{
	int err;

	(void)userdata;
	/* Copying SOURCE's mount for the atime modes needs CAP_SYS_ADMIN: before the drop. */
	atime_init();
	/* On the thread that starts the transport's threads, before it does: they inherit. */
	if (fs.switch_creds && (err = caps_init()) < 0)
		fprintf(stderr, "ringfuse-passthrough: cannot drop capabilities: %s\n",
			strerror(-err));
	if (fs.passthrough_opt && !(conn->capable & RF_CAP_PASSTHROUGH)) {
		fprintf(stderr, "ringfuse-passthrough: the kernel offers no passthrough; file I/O "
				"goes through this daemon\n");
	} else if (fs.passthrough_opt) {
		conn->want |= RF_CAP_PASSTHROUGH;
		/* The kernel drops passthrough when both are asked for. */
		if (fs.writeback_opt)
			fprintf(stderr, "ringfuse-passthrough: passthrough and writeback exclude "
					"each other; using passthrough\n");
		fs.writeback_opt = false;
		conn->want &= ~RF_CAP_WRITEBACK_CACHE;
	}
	if (fs.writeback_opt) {
		if (conn->capable & RF_CAP_WRITEBACK_CACHE)
			conn->want |= RF_CAP_WRITEBACK_CACHE;
		else
			fprintf(stderr, "ringfuse-passthrough: the kernel offers no writeback "
					"cache; continuing without\n");
	}
	/* The kernel checks POSIX ACLs (fetched with getxattr) as the filesystem underneath would;
	 * it then also leaves the umask to us, since a directory's default ACL overrides it. */
	if ((conn->capable & (RF_CAP_POSIX_ACL | RF_CAP_DONT_MASK)) ==
	    (RF_CAP_POSIX_ACL | RF_CAP_DONT_MASK))
		conn->want |= RF_CAP_POSIX_ACL | RF_CAP_DONT_MASK;
	/* A local filesystem lets an O_DIRECT file be mapped. */
	conn->want |= conn->capable & RF_CAP_DIRECT_IO_ALLOW_MMAP;
	if (fs.cache == CACHE_ALWAYS)
		conn->want |= conn->capable & RF_CAP_CACHE_SYMLINKS;
	fs.writeback = (conn->want & conn->capable & RF_CAP_WRITEBACK_CACHE) != 0;
	fs.acl = (conn->want & conn->capable & RF_CAP_POSIX_ACL) != 0;
	fs.dont_mask = (conn->want & conn->capable & RF_CAP_DONT_MASK) != 0;
	atomic_store(&fs.passthrough, (conn->want & conn->capable & RF_CAP_PASSTHROUGH) != 0);
}

static void pt_remount(void *userdata, unsigned int mount_flags)
{
	(void)userdata;
	(void)mount_flags; /* atime_apply() reads the newest */
	atime_apply();
}

static void pt_statfs(rf_req *req, rf_ino ino)
{
	struct statvfs sv;

	if (fstatvfs(inode_of(ino)->fd, &sv) < 0)
		reply_status(req, neg_errno());
	else
		rf_reply_statfs(req, &sv);
}

static void pt_syncfs(rf_req *req, rf_ino ino)
{
	struct pt_inode *in = inode_of(ino);
	int fd, err = 0;

	/* syncfs() wants a real descriptor; any directory of the backing filesystem will do. */
	if (!S_ISDIR(in->type))
		in = &fs.root;
	creds_privileged();
	fd = openat(in->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	creds_settle();
	if (fd < 0)
		err = neg_errno();
	else {
		if (syncfs(fd) < 0)
			err = neg_errno();
		close(fd);
	}
	reply_status(req, err);
}

const struct rf_ops pt_ops = {
	.init = pt_init,
	.lookup = pt_lookup,
	.forget = pt_forget,
	.getattr = pt_getattr,
	.setattr = pt_setattr,
	.readlink = pt_readlink,
	.mknod = pt_mknod,
	.mkdir = pt_mkdir,
	.unlink = pt_unlink,
	.rmdir = pt_rmdir,
	.symlink = pt_symlink,
	.rename = pt_rename,
	.link = pt_link,
	.open = pt_open,
	.read = pt_read,
	.write = pt_write,
	.flush = pt_flush,
	.release = pt_release,
	.fsync = pt_fsync,
	.opendir = pt_opendir,
	.readdir = pt_readdir,
	.releasedir = pt_releasedir,
	.fsyncdir = pt_fsyncdir,
	.statfs = pt_statfs,
	.setxattr = pt_setxattr,
	.getxattr = pt_getxattr,
	.listxattr = pt_listxattr,
	.removexattr = pt_removexattr,
	.access = pt_access,
	.create = pt_create,
	.fallocate = pt_fallocate,
	.readdirplus = pt_readdirplus,
	.copy_file_range = pt_copy_file_range,
	.lseek = pt_lseek,
	.tmpfile = pt_tmpfile,
	.syncfs = pt_syncfs,
	.remount = pt_remount,
};
